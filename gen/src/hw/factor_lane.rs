//! One lane of the factorized dataflow (docs/numerics.md §4b, docs/interface.md): per row, the
//! nine block accumulators of every slot take `Ce[k] · x[j]` by shifts and adds
//! (`sd_factor_row`, S3); at a segment's end they are copied to a shadow register and the next
//! nine cycles multiply them by the block's basis, one term per cycle on one multiplier per slot
//! (F1 operands, F2 product, F3 add into the slot's channel accumulator).

use super::factor_ctrl::term_bits;
use super::{config_line, u};
use crate::ir::{Expr, Module, Reset, Ty};
use smartdeal_core::AccelConfig;

pub const NAME: &str = "sd_factor_lane";

/// A net name of slot `p`: the plain name with one slot, `s<p>_<name>` with several.
fn slot_name(cfg: &AccelConfig, p: u32, name: &str) -> String {
    if cfg.slots == 1 {
        name.to_string()
    } else {
        format!("s{p}_{name}")
    }
}

/// `items[sel]` as a balanced tree of 2:1 muxes on the bits of `sel` (indices past the end read
/// the last item; the flush never selects them).
fn select(items: &[Expr], sel: &Expr) -> Expr {
    fn level(items: Vec<Expr>, sel: &Expr, bit: u32) -> Expr {
        if items.len() == 1 {
            return items.into_iter().next().expect("one item");
        }
        let pairs = items
            .chunks(2)
            .map(|c| match c {
                [a, b] => Expr::mux(sel.bit(bit), b.clone(), a.clone()),
                [a] => a.clone(),
                _ => unreachable!("chunks of two"),
            })
            .collect();
        level(pairs, sel, bit + 1)
    }
    level(items.to_vec(), sel, 0)
}

pub fn module(cfg: &AccelConfig, row: &Module) -> Module {
    let (ab, bb, acc) = (cfg.act_bits, cfg.basis_bits, cfg.acc_bits);
    let wa = cfg.factor_acc_bits();
    let pb = cfg.factor_product_bits();
    let mut m = Module::new(
        NAME,
        "One output channel, factorized dataflow: each slot's nine block accumulators\n\
         acc[k][j] += Ce[k] * x[j] (S3, shifts and adds, sd_factor_row); at a segment's end they\n\
         move to a shadow register, and the next nine cycles add B[k][j] * acc[k][j] into the\n\
         slot's channel accumulator (F1 operands, F2 product, F3 add; first_i restarts it).",
        &config_line(cfg),
    );
    m.clock_reset();
    let b = m.input(
        "b_i",
        u(9 * bb),
        "F1: basis of the block being flushed, B[k][j] at [(k*3+j)*basis_bits +: basis_bits]",
    );
    let ce = m.input(
        "ce_i",
        u(3 * cfg.coef_elem_bits()),
        "S2: this lane's Ce row",
    );
    let x = m.input(
        "x_i",
        u(3 * ab * cfg.slots),
        "S3: slot p's activations x[3r+j] at [(3p+j)*act_bits +: act_bits]",
    );
    let row_en = m.input("row_en_i", u(1), "S3: a valid row");
    let seg_end = m.input("seg_end_i", u(1), "S3: the row ends its block segment");
    let flush = m.input("flush_i", u(1), "F1: a flush term is selected");
    let term = m.input("term_i", u(term_bits()), "F1: the term t = 3k + j");
    let acc_en = m.input("acc_en_i", u(1), "F3: add the product");
    let first = m.input("first_i", u(1), "F3: the tile's first term (restart)");
    let acc_o = m.output(
        "acc_o",
        u(acc * cfg.slots),
        "slot p's channel accumulator (signed) at [p*acc_bits +: acc_bits]",
    );
    let ce3 = m.reg_next("ce", ce, None, Reset::None, "S3: the row's Ce elements");
    m.comment("F1: the term's basis element, shared by the slots");
    let elems: Vec<Expr> = (0..9).map(|t| b.field(t * bb, bb)).collect();
    let b_t = m.wire("b_t", select(&elems, &term), "B[k][j] of term t");
    let mb = m
        .reg_next("mb", b_t, None, Reset::None, "F2: basis operand")
        .as_signed();
    let mut accs = Vec::new();
    for p in 0..cfg.slots {
        let n = |s: &str| slot_name(cfg, p, s);
        m.comment(&if cfg.slots == 1 {
            "S3: block accumulators".to_string()
        } else {
            format!("Slot {p}: S3 block accumulators")
        });
        let blk = m.reg(
            &n("blk"),
            Ty::u(9 * wa),
            Reset::To(0),
            "acc[k][j] of the segment",
        );
        let next = m.out_wire(&n("blk_next"), u(9 * wa), "after this row");
        m.instance(
            row,
            &if cfg.slots == 1 {
                "u_row".to_string()
            } else {
                format!("u_s{p}_row")
            },
            vec![
                ("ce_i", ce3.clone()),
                ("x_i", x.field(3 * ab * p, 3 * ab)),
                ("acc_i", blk.clone()),
                ("acc_o", next.clone()),
            ],
        );
        // A segment's end starts the next one from zero; its sums go to the shadow.
        m.set_d(
            &blk,
            Expr::mux(seg_end.clone(), Expr::lit(0, 9 * wa), next.clone()),
            Some(row_en.clone()),
        );
        let shadow = m.reg(
            &n("shadow"),
            Ty::u(9 * wa),
            Reset::None,
            "the flushed segment's sums, term t lowest after t flush cycles",
        );
        let shifted = Expr::concat(vec![Expr::lit(0, wa), shadow.slice(9 * wa - 1, wa)]);
        m.set_d(
            &shadow,
            Expr::mux(seg_end.clone(), next, shifted),
            Some(seg_end.clone().or(flush.clone())),
        );
        let ms = m
            .reg_next(
                &n("ms"),
                shadow.field(0, wa),
                None,
                Reset::None,
                "F2: accumulator operand",
            )
            .as_signed();
        // basis_bits × WA → BB + WA bits: both operands sign-extended to the product width so
        // the truncated product is the exact signed product; marked signed so that synthesis
        // sees an 8 × WA multiplier, not a (BB + WA)-bit square one.
        let prod = m.reg_next(
            &n("prod"),
            mb.sext(pb).mul_signed(ms.sext(pb)),
            None,
            Reset::None,
            "F3: B[k][j] * acc[k][j]",
        );
        // BB + WA → acc_bits: sign-extended, or truncated (exact modulo 2^acc_bits, the
        // accumulator's own arithmetic) when the product is wider.
        let add = if pb <= acc {
            prod.as_signed().sext(acc)
        } else {
            prod.slice(acc - 1, 0)
        };
        let add = m.wire(&n("add"), add, "the product at the accumulator's width");
        let chan = m.reg(&n("acc"), Ty::u(acc), Reset::To(0), "channel accumulator");
        m.set_d(
            &chan,
            Expr::mux(first.clone(), add.clone(), chan.clone().add(add)),
            Some(acc_en.clone()),
        );
        accs.push(chan);
    }
    accs.reverse(); // slot 0 least significant
    m.assign(&acc_o, Expr::concat(accs));
    m
}
