//! Rebuild engine for one lane: `w[j] = Σ_k ±B[k][j] << code_k` with shifts and adds only.
//!
//! Folded negation: a negative term is `~(b << c) + 1`; the inversion is applied to the 8-bit
//! operand before the shifter and the vacated bits are filled with ones (the decoder's fill
//! mask), and the three "+1"s are summed once as a 2-bit carry. This costs fewer LUTs than
//! negating each shifted term (toolchain.md: 57 vs 89 iCE40 LUTs per PE).
//!
//! Two combinational halves with the lane's register between them (S2 → S2b), so the shifts and
//! the four-operand adds are not one cycle (the ECP5 at 100 MHz): `sd_rebuild_terms` (decode,
//! gate, invert, shift; the carry count) for one weight column `j`, three of them per lane, and
//! `sd_rebuild_add` (the sums). One column per instance lets a lane feed each column its own
//! copy of the Ce row (`extra_stages`), so no Ce bit drives all nine shifters: on the ECP5 at
//! 94 MHz that fan-out was the worst path, 8.9 ns of routing. Without copies the three
//! decoders see the same row and synthesis merges them (the `tiny` lane on the iCE40, Yosys
//! 0.23: 2,541 LUT against 2,494 with one nine-term module, the same flip-flops; the
//! `icebreaker` preset has no rebuild lane). `sd_rebuild` composes exactly those
//! modules with no register, for the formal proof against the multiplier reference
//! (`tests/formal.rs`), which so covers all the arithmetic the lane instantiates.

use super::{config_line, signed_net, u};
use crate::ir::{Expr, Module};
use crate::options::Fault;
use smartdeal_core::AccelConfig;

pub const NAME: &str = "sd_rebuild";

pub const TERMS_NAME: &str = "sd_rebuild_terms";
pub const ADD_NAME: &str = "sd_rebuild_add";

/// Width of one column's term bundle: three RB-bit shifted terms and the 2-bit carry count.
pub fn column_bits(cfg: &AccelConfig) -> u32 {
    3 * cfg.rebuild_bits() + 2
}

/// Width of a lane's term bundle: its three columns'.
pub fn terms_bits(cfg: &AccelConfig) -> u32 {
    3 * column_bits(cfg)
}

const TERMS_DOC: &str = "column j's bundle at [j*(3*RB+2) +: 3*RB+2]: term[k][j] (RB bits) \
     at [k*RB +: RB], the carry count (2 bits: negative elements) at [3*RB +: 2].";

/// S2, one weight column `j`: decode the Ce row, gate, invert and shift the column's three
/// basis elements, count the carries.
pub fn terms_module(cfg: &AccelConfig, dec: &Module, fault: Option<Fault>) -> Module {
    let bb = cfg.basis_bits;
    let eb = cfg.exp_bits;
    let rb = cfg.rebuild_bits();
    let e = cfg.coef_elem_bits();
    let mut m = Module::new(
        TERMS_NAME,
        "Rebuild engine of one lane, first half, for one weight column j: the folded terms\n\
         of w[j] = sum_k (present_k ? (negative_k ? -1 : 1) * B[k][j] << code_k : 0).\n\
         b_i: B[k][j] (signed, basis_bits) at [k*basis_bits +: basis_bits].\n\
         RB = basis_bits + 2^exp_bits - 1 + 2. terms_o: term[k][j] (RB bits) at\n\
         [k*RB +: RB], the carry count (2 bits: negative elements) at [3*RB +: 2].",
        &config_line(cfg),
    );
    let b = m.input(
        "b_i",
        u(3 * bb),
        "the column's basis B[k][j] at [k*basis_bits +: basis_bits]",
    );
    let ce = m.input("ce_i", u(3 * e), "Ce row (see sd_decoder)");
    let terms_o = m.output(
        "terms_o",
        u(column_bits(cfg)),
        "the column's shifted terms and carry count",
    );

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

    // Sum of the three negation carries: 2 bits (0..=3).
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

    let mut terms = Vec::new();
    for k in 0..3 {
        let bk = b.field(k * bb, bb);
        // Gate and conditionally invert the basis_bits-bit operand before shifting.
        let op = signed_net(
            &mut m,
            &format!("op{k}"),
            bk.xor(neg.bit(k).splat(bb)).and(en.bit(k).splat(bb)),
            &format!("B[{k}][j] gated by present, inverted when negative"),
        );
        // basis_bits → RB bits (sign extension), shift by code_k (≤ 2^exp_bits - 1, fits),
        // vacated bits filled from the decoder's mask.
        let shifted = op
            .sext(rb)
            .shl(code.field(k * eb, eb))
            .or(fill.field(k * rb, rb));
        terms.push(m.wire(&format!("term{k}"), shifted, ""));
    }
    terms.reverse(); // term[0][j] least significant
    let mut parts = vec![carry];
    parts.extend(terms);
    m.assign(&terms_o, Expr::concat(parts));
    m
}

/// S2b: the three weights, each the sum of its three terms and the carry count.
pub fn add_module(cfg: &AccelConfig) -> Module {
    let rb = cfg.rebuild_bits();
    let mut m = Module::new(
        ADD_NAME,
        &format!(
            "Rebuild engine of one lane, second half: w[j] = term[0][j] + term[1][j] +\n\
             term[2][j] + carry[j]. terms_i: {TERMS_DOC}\n\
             w_o: w[j] (signed, RB bits) at [j*RB +: RB]."
        ),
        &config_line(cfg),
    );
    let terms = m.input(
        "terms_i",
        u(terms_bits(cfg)),
        "shifted terms and carry count",
    );
    let w_o = m.output("w_o", u(3 * rb), "rebuilt weights w[j] at [j*RB +: RB]");
    let cb = column_bits(cfg);
    let mut ws = Vec::new();
    for j in (0..3).rev() {
        let carry = m.wire(
            &format!("carry{j}"),
            terms.field(j * cb + 3 * rb, 2),
            "the folded +1s",
        );
        let t: Vec<Expr> = (0..3)
            .map(|k| {
                let term = terms.field(j * cb + k * rb, rb);
                signed_net(&mut m, &format!("term{k}{j}"), term, "")
            })
            .collect();
        // RB-bit sum cannot overflow: |Σ| ≤ 3 · 2^(basis_bits-1) · 2^code_max < 2^(RB-1).
        let sum = t[0]
            .clone()
            .add(t[1].clone())
            .add(t[2].clone())
            .add(carry.zext(rb));
        ws.push(m.wire(&format!("w{j}"), sum, &format!("rebuilt weight j = {j}")));
    }
    m.assign(&w_o, Expr::concat(ws));
    m
}

/// S2 of a lane: one `sd_rebuild_terms` per weight column `j`, fed the column's basis elements
/// (of `b`, B[k][j] at [(k*3+j)*basis_bits]) and `ces[j]` (a Ce row); returns the lane's term
/// bundle (see [`TERMS_DOC`]).
pub fn columns(
    m: &mut Module,
    cfg: &AccelConfig,
    terms: &Module,
    b: &Expr,
    ces: [Expr; 3],
) -> Expr {
    let bb = cfg.basis_bits;
    let t = m.out_wire(
        "terms",
        u(terms_bits(cfg)),
        "S2: shifted terms of the three columns",
    );
    let cb = column_bits(cfg);
    for (j, ce) in (0..3).zip(ces) {
        // B[2][j], B[1][j], B[0][j]: the column's elements, k = 0 least significant.
        let bj = Expr::concat(
            (0..3)
                .rev()
                .map(|k| b.field((k * 3 + j) * bb, bb))
                .collect(),
        );
        m.instance(
            terms,
            &format!("u_terms{j}"),
            vec![("b_i", bj), ("ce_i", ce), ("terms_o", t.field(j * cb, cb))],
        );
    }
    t
}

/// `sd_rebuild_add(sd_rebuild_terms(b, ce))` without the lane's register, for the formal
/// proof: ports `b_i`, `ce_i`, `w_o` as the reference's.
pub fn module(cfg: &AccelConfig, terms: &Module, add: &Module) -> Module {
    let bb = cfg.basis_bits;
    let rb = cfg.rebuild_bits();
    let mut m = Module::new(
        NAME,
        "Rebuild engine of one lane (for the formal proof): three exact weights of one Ce row,\n\
         w[j] = sum_k (present_k ? (negative_k ? -1 : 1) * B[k][j] << code_k : 0), computed by\n\
         three sd_rebuild_terms (one per weight column) then sd_rebuild_add, the two halves\n\
         the lane instantiates with a register between them.\n\
         b_i: B[k][j] (signed, basis_bits) at [(k*3+j)*basis_bits +: basis_bits].\n\
         w_o: w[j] (signed, RB = basis_bits + 2^exp_bits - 1 + 2 bits) at [j*RB +: RB].",
        &config_line(cfg),
    );
    let b = m.input(
        "b_i",
        u(9 * bb),
        "basis B[k][j] at [(k*3+j)*basis_bits +: basis_bits]",
    );
    let ce = m.input(
        "ce_i",
        u(3 * cfg.coef_elem_bits()),
        "Ce row (see sd_decoder)",
    );
    let w_o = m.output("w_o", u(3 * rb), "rebuilt weights w[j] at [j*RB +: RB]");
    let t = columns(&mut m, cfg, terms, &b, [ce.clone(), ce.clone(), ce]);
    m.instance(add, "u_add", vec![("terms_i", t), ("w_o", w_o)]);
    m
}
