//! The factorized dataflow's per-row update (docs/numerics.md §4b): one Ce row and one slot's
//! three activations added into the nine block accumulators, `acc[k][j] += Ce[r][k] · x[j]`,
//! with shifts and adds only. Combinational, so the formal proof (`tests/formal_factor.rs`,
//! against the multiplier reference `hdl/formal/sd_factor_row_ref.v`) covers exactly the logic
//! the lane registers.
//!
//! Folded negation, as in the rebuild engine: a negative term is `~(x << code) + 1`; the
//! activation is inverted before the shifter, the vacated low bits are filled with ones, and the
//! `+1` is the accumulator add's carry in.

use super::{config_line, signed_net, u};
use crate::ir::{Expr, Module};
use crate::options::Fault;
use smartdeal_core::AccelConfig;

pub const NAME: &str = "sd_factor_row";

/// Width of a folded term `((x XOR s) << code) | fill`: act_bits + code_max (it holds
/// `x << code` and its one's complement exactly; the +1 of a negation is added separately).
pub fn folded_term_bits(cfg: &AccelConfig) -> u32 {
    cfg.act_bits + cfg.code_max()
}

pub fn module(cfg: &AccelConfig, fault: Option<Fault>) -> Module {
    let ab = cfg.act_bits;
    let eb = cfg.exp_bits;
    let e = cfg.coef_elem_bits();
    let wa = cfg.factor_acc_bits();
    let tw = folded_term_bits(cfg);
    let mut m = Module::new(
        NAME,
        "Factorized dataflow, one row of one slot: acc_o[k][j] = acc_i[k][j] + Ce[k] * x[j]\n\
         for k, j = 0..2, where Ce[k] * x = present_k ? (negative_k ? -1 : 1) * (x << code_k) : 0.\n\
         ce_i: element k at [k*E +: E], E = 2 + exp_bits: bit 0 present, bit 1 negative,\n\
         bits [2 +: exp_bits] exponent code. x_i: x[j] (signed, act_bits) at [j*act_bits +: act_bits].\n\
         acc_i / acc_o: acc[k][j] (signed, WA bits) at [(k*3+j)*WA +: WA]; the sums wrap at WA bits,\n\
         which a block segment never reaches (docs/numerics.md 4b).",
        &config_line(cfg),
    );
    let ce = m.input("ce_i", u(3 * e), "the row's three Ce elements");
    let x = m.input("x_i", u(3 * ab), "the slot's three activations");
    let acc = m.input("acc_i", u(9 * wa), "the nine block accumulators");
    let acc_o = m.output("acc_o", u(9 * wa), "the accumulators after this row");
    let mut outs = Vec::new();
    for k in 0..3 {
        let lo = k * e;
        let p = m.wire(&format!("present{k}"), ce.bit(lo), "");
        let s = m.wire(
            &format!("neg{k}"),
            ce.bit(lo + 1).and(p.clone()),
            "present and negative: invert, fill and carry",
        );
        let code = m.wire(&format!("code{k}"), ce.field(lo + 2, eb), "");
        // ones << code leaves the low `code` bits zero; their complement is the fill mask
        // (tw bits; code ≤ code_max < tw, so the mask never covers the whole term).
        let fill = m.wire(
            &format!("fill{k}"),
            Expr::lit((1u128 << tw) - 1, tw)
                .shl(code.clone())
                .not()
                .and(s.clone().splat(tw)),
            "vacated bits of a negative term",
        );
        for j in 0..3 {
            let xj = x.field(j * ab, ab);
            // Gate (absent: 0) and conditionally invert the act_bits-bit activation.
            let op = signed_net(
                &mut m,
                &format!("op{k}{j}"),
                xj.xor(s.clone().splat(ab)).and(p.clone().splat(ab)),
                &format!("x[{j}] gated by present_{k}, inverted when negative"),
            );
            // act_bits → tw bits (sign extension), shift by code_k ≤ code_max: exact.
            let term = m
                .wire(
                    &format!("term{k}{j}"),
                    op.sext(tw).shl(code.clone()).or(fill.clone()),
                    "",
                )
                .as_signed();
            // tw → WA bits (sign extension) plus the negation's carry: one WA-bit add.
            let carry = if fault == Some(Fault::FactorDropCarry) && k == 2 {
                Expr::lit(0, wa)
            } else {
                s.clone().zext(wa)
            };
            let a = acc.field((k * 3 + j) * wa, wa);
            outs.push(m.wire(
                &format!("acc{k}{j}"),
                a.add(term.sext(wa)).add(carry),
                &format!("acc[{k}][{j}] + Ce[{k}] * x[{j}]"),
            ));
        }
    }
    outs.reverse(); // acc[0][0] least significant
    m.assign(&acc_o, Expr::concat(outs));
    m
}
