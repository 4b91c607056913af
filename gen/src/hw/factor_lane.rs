//! One lane of the factorized dataflow (docs/numerics.md §4b, docs/interface.md): per row, the
//! nine block accumulators of every slot take `Ce[k] · x[j]` by shifts (`sd_factor_term`, S3)
//! and adds (`sd_factor_add`, S4); at a segment's end they are copied to a shadow register and
//! the next nine cycles multiply them by the block's basis, one term per cycle on one multiplier
//! per slot (F1 operands, F2 product, F3 add into the slot's channel accumulator).

use super::factor_ctrl::term_bits;
use super::factor_row::terms_bits;
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

pub fn module(cfg: &AccelConfig, term_mod: &Module, add_mod: &Module) -> Module {
    let (ab, bb, acc) = (cfg.act_bits, cfg.basis_bits, cfg.acc_bits);
    let wa = cfg.factor_acc_bits();
    let pb = cfg.factor_product_bits();
    let mut m = Module::new(
        NAME,
        "One output channel, factorized dataflow: each slot's nine block accumulators\n\
         acc[k][j] += Ce[k] * x[j] (S3 shifts, sd_factor_term; S4 adds, sd_factor_add); at a\n\
         segment's end they move to a shadow register, and the next nine cycles add\n\
         B[k][j] * acc[k][j] into the slot's channel accumulator (F1 operands, F2 product, F3 add; first_i restarts it).",
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
    let row_en = m.input("row_en_i", u(1), "S4: a valid row");
    let seg_end = m.input("seg_end_i", u(1), "S4: the row ends its block segment");
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
            "S3 terms, S4 block accumulators".to_string()
        } else {
            format!("Slot {p}: S3 terms, S4 block accumulators")
        });
        let terms = m.out_wire(
            &n("terms"),
            u(terms_bits(cfg)),
            "S3: the row's folded terms",
        );
        m.instance(
            term_mod,
            &if cfg.slots == 1 {
                "u_term".to_string()
            } else {
                format!("u_s{p}_term")
            },
            vec![
                ("ce_i", ce3.clone()),
                ("x_i", x.field(3 * ab * p, 3 * ab)),
                ("terms_o", terms.clone()),
            ],
        );
        // The shifts (S3) and the adds (S4) in separate cycles: each is one long operation.
        let terms_q = m.reg_next(
            &n("term"),
            terms,
            None,
            Reset::None,
            "S4: the row's folded terms and carries",
        );
        let blk = m.reg(
            &n("blk"),
            Ty::u(9 * wa),
            Reset::To(0),
            "acc[k][j] of the segment",
        );
        let next = m.out_wire(&n("blk_next"), u(9 * wa), "after this row");
        m.instance(
            add_mod,
            &if cfg.slots == 1 {
                "u_add".to_string()
            } else {
                format!("u_s{p}_add")
            },
            vec![
                ("terms_i", terms_q),
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
        accs.push(split_accumulator(&mut m, &n, &add, &first, &acc_en));
    }
    accs.reverse(); // slot 0 least significant
    m.assign(&acc_o, Expr::concat(accs));
    m
}

/// The slot's channel accumulator as two halves whose carry between them is registered, so no
/// add is longer than half the accumulator (a 35-bit carry chain alone misses 42 MHz on the
/// iCE40). It holds `{hi, lo} + (cy << LO)`: each term adds its low half into `lo`, its high half
/// and the previous cycle's carry into `hi`; the output adds the pending carry back. A restart
/// (`first`) drops the old carry with the old sum.
fn split_accumulator(
    m: &mut Module,
    n: &dyn Fn(&str) -> String,
    add: &Expr,
    first: &Expr,
    acc_en: &Expr,
) -> Expr {
    let acc = add.width();
    let lo_w = acc.div_ceil(2);
    let hi_w = acc - lo_w;
    let (add_lo, add_hi) = (add.slice(lo_w - 1, 0), add.slice(acc - 1, lo_w));
    let lo = m.reg(
        &n("acc_lo"),
        Ty::u(lo_w),
        Reset::To(0),
        "channel accumulator, low half",
    );
    let hi = m.reg(
        &n("acc_hi"),
        Ty::u(hi_w),
        Reset::To(0),
        "channel accumulator, high half",
    );
    let cy = m.reg(
        &n("acc_cy"),
        Ty::u(1),
        Reset::To(0),
        "the low half's pending carry",
    );
    // LO + LO → LO + 1 bits: the top bit is the carry into the high half.
    let lo_sum = m.wire(
        &n("acc_lo_sum"),
        lo.clone().zext(lo_w + 1).add(add_lo.clone().zext(lo_w + 1)),
        "low half plus the term's low half, with its carry out",
    );
    m.set_d(
        &lo,
        Expr::mux(first.clone(), add_lo, lo_sum.slice(lo_w - 1, 0)),
        Some(acc_en.clone()),
    );
    m.set_d(
        &cy,
        Expr::mux(first.clone(), Expr::lit(0, 1), lo_sum.bit(lo_w)),
        Some(acc_en.clone()),
    );
    // HI bits, wrapping as the whole accumulator does.
    m.set_d(
        &hi,
        Expr::mux(
            first.clone(),
            add_hi.clone(),
            hi.clone().add(add_hi).add(cy.clone().zext(hi_w)),
        ),
        Some(acc_en.clone()),
    );
    let hi_out = m.wire(
        &n("acc_hi_out"),
        hi.add(cy.zext(hi_w)),
        "the high half with the pending carry",
    );
    m.wire(
        &n("acc"),
        Expr::concat(vec![hi_out, lo]),
        "channel accumulator",
    )
}
