//! Rebuild engine for one lane: `w[j] = Σ_k ±B[k][j] << code_k` with shifts and adds only.
//!
//! Folded negation: a negative term is `~(b << c) + 1`; the inversion is applied to the 8-bit
//! operand before the shifter and the vacated bits are filled with ones (the decoder's fill
//! mask), and the three "+1"s are summed once as a 2-bit carry. This costs fewer LUTs than
//! negating each shifted term (toolchain.md: 57 vs 89 iCE40 LUTs per PE).

use super::{config_line, signed_net, u};
use crate::ir::{Expr, Module};
use crate::options::Fault;
use smartdeal_core::AccelConfig;

pub const NAME: &str = "sd_rebuild";

pub fn module(cfg: &AccelConfig, dec: &Module, fault: Option<Fault>) -> Module {
    let bb = cfg.basis_bits;
    let eb = cfg.exp_bits;
    let rb = cfg.rebuild_bits();
    let e = cfg.coef_elem_bits();
    let mut m = Module::new(
        NAME,
        "Rebuild engine of one lane: three exact weights of one Ce row,\n\
         w[j] = sum_k (present_k ? (negative_k ? -1 : 1) * B[k][j] << code_k : 0).\n\
         b_i: B[k][j] (signed, basis_bits) at [(k*3+j)*basis_bits +: basis_bits].\n\
         w_o: w[j] (signed, RB = basis_bits + 2^exp_bits - 1 + 2 bits) at [j*RB +: RB].",
        &config_line(cfg),
    );
    let b = m.input(
        "b_i",
        u(9 * bb),
        "basis B[k][j] at [(k*3+j)*basis_bits +: basis_bits]",
    );
    let ce = m.input("ce_i", u(3 * e), "Ce row (see sd_decoder)");
    let w_o = m.output("w_o", u(3 * rb), "rebuilt weights w[j] at [j*RB +: RB]");

    let en = m.out_wire("en", u(3), "element present");
    let neg = m.out_wire("neg", u(3), "element negative (and present)");
    let code = m.out_wire("code", u(3 * eb), "exponent codes");
    let fill = m.out_wire("fill", u(3 * rb), "vacated-bit masks");
    m.instance(
        dec,
        "u_decoder",
        vec![
            ("ce_i", ce),
            ("en_o", en.clone()),
            ("neg_o", neg.clone()),
            ("code_o", code.clone()),
            ("fill_o", fill.clone()),
        ],
    );

    // Sum of the three negation carries: 2 bits (0..=3), zero-extended to RB.
    let carries: Vec<Expr> = (0..3)
        .filter(|&k| !(fault == Some(Fault::RebuildDropCarry) && k == 2))
        .map(|k| neg.bit(k).zext(2))
        .collect();
    let carry_sum = carries
        .into_iter()
        .reduce(Expr::add)
        .expect("at least one carry");
    let carry = m.wire(
        "carry",
        carry_sum,
        "number of negative elements: the folded +1s",
    );

    let mut ws = Vec::new();
    for j in (0..3).rev() {
        let mut terms = Vec::new();
        for k in 0..3 {
            let bkj = b.field((k * 3 + j) * bb, bb);
            // Gate and conditionally invert the basis_bits-bit operand before shifting.
            let op = signed_net(
                &mut m,
                &format!("op{k}{j}"),
                bkj.xor(neg.bit(k).splat(bb)).and(en.bit(k).splat(bb)),
                &format!("B[{k}][{j}] gated by present, inverted when negative"),
            );
            // basis_bits → RB bits (sign extension), shift by code_k (≤ 2^exp_bits - 1, fits),
            // vacated bits filled from the decoder's mask.
            let shifted = op
                .sext(rb)
                .shl(code.field(k * eb, eb))
                .or(fill.field(k * rb, rb));
            terms.push(m.wire(&format!("term{k}{j}"), shifted, "").as_signed());
        }
        // RB-bit sum cannot overflow: |Σ| ≤ 3 · 2^(basis_bits-1) · 2^code_max < 2^(RB-1).
        let sum = terms[0]
            .clone()
            .add(terms[1].clone())
            .add(terms[2].clone())
            .add(carry.zext(rb));
        ws.push(m.wire(&format!("w{j}"), sum, &format!("rebuilt weight j = {j}")));
    }
    m.assign(&w_o, Expr::concat(ws));
    m
}
