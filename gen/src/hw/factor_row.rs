//! The factorized dataflow's per-row update (docs/numerics.md §4b): one Ce row and one slot's
//! three activations added into the nine block accumulators, `acc[k][j] += Ce[r][k] · x[j]`,
//! with shifts and adds only.
//!
//! It is two combinational modules with the lane's register between them (S3 → S4), so that
//! neither the barrel shifts nor the accumulator adds share a clock cycle with the other
//! (the iCE40 needs every stage to be one long operation):
//! * `sd_factor_term` (S3): the nine folded terms `((x XOR s) << code) | fill` and the three
//!   negation carries;
//! * `sd_factor_add` (S4): `acc + term + carry`, one add per accumulator.
//!
//! `sd_factor_row` composes exactly those two modules with no register; it exists for the
//! formal proof (`tests/formal_factor.rs`, against the multiplier reference
//! `hdl/formal/sd_factor_row_ref.v`), which thereby covers all the arithmetic the lane
//! instantiates. The register between them only delays the terms by one cycle (co-simulation
//! covers the timing).
//!
//! Folded negation, as in the rebuild engine: a negative term is `~(x << code) + 1`; the
//! activation is inverted before the shifter, the vacated low bits are filled with ones, and the
//! `+1` is the accumulator add's carry in.

use super::{config_line, signed_net, u};
use crate::ir::{Expr, Module};
use crate::options::Fault;
use smartdeal_core::AccelConfig;

pub const NAME: &str = "sd_factor_row";
pub const TERM_NAME: &str = "sd_factor_term";
pub const ADD_NAME: &str = "sd_factor_add";

/// Width of a folded term `((x XOR s) << code) | fill`: act_bits + code_max (it holds
/// `x << code` and its one's complement exactly; the +1 of a negation is added separately).
pub fn folded_term_bits(cfg: &AccelConfig) -> u32 {
    cfg.act_bits + cfg.code_max()
}

/// Width of the term bundle between the two halves: nine folded terms and three carries.
pub fn terms_bits(cfg: &AccelConfig) -> u32 {
    9 * folded_term_bits(cfg) + 3
}

const TERMS_DOC: &str =
    "terms: term[k][j] (tw = act_bits + code_max bits) at [(k*3+j)*tw +: tw],\n\
     the negation carry of element k at bit 9*tw + k.";

/// S3: the row's nine folded terms and three carries.
pub fn term_module(cfg: &AccelConfig) -> Module {
    let ab = cfg.act_bits;
    let eb = cfg.exp_bits;
    let e = cfg.coef_elem_bits();
    let tw = folded_term_bits(cfg);
    let mut m = Module::new(
        TERM_NAME,
        &format!(
            "Factorized dataflow, one row of one slot, first half: the folded terms of\n\
             Ce[k] * x[j] for k, j = 0..2, where Ce[k] * x = present_k ? (negative_k ? -1 : 1) *\n\
             (x << code_k) : 0, a negative term being ~(x << code) with the +1 left as a carry.\n\
             ce_i: element k at [k*E +: E], E = 2 + exp_bits: bit 0 present, bit 1 negative,\n\
             bits [2 +: exp_bits] exponent code. x_i: x[j] (signed, act_bits) at [j*act_bits +: act_bits].\n\
             {TERMS_DOC}"
        ),
        &config_line(cfg),
    );
    let ce = m.input("ce_i", u(3 * e), "the row's three Ce elements");
    let x = m.input("x_i", u(3 * ab), "the slot's three activations");
    let terms_o = m.output("terms_o", u(terms_bits(cfg)), "folded terms and carries");
    let mut terms = Vec::new();
    let mut carries = Vec::new();
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
            terms.push(m.wire(
                &format!("term{k}{j}"),
                op.sext(tw).shl(code.clone()).or(fill.clone()),
                "",
            ));
        }
        carries.push(s);
    }
    // term[0][0] least significant, the carries on top.
    let mut parts = carries;
    parts.reverse();
    terms.reverse();
    parts.extend(terms);
    m.assign(&terms_o, Expr::concat(parts));
    m
}

/// S4: the nine accumulators plus their terms and carries.
pub fn add_module(cfg: &AccelConfig, fault: Option<Fault>) -> Module {
    let wa = cfg.factor_acc_bits();
    let tw = folded_term_bits(cfg);
    let mut m = Module::new(
        ADD_NAME,
        &format!(
            "Factorized dataflow, one row of one slot, second half:\n\
             acc_o[k][j] = acc_i[k][j] + term[k][j] + carry[k], one WA-bit add each.\n\
             {TERMS_DOC}\n\
             acc_i / acc_o: acc[k][j] (signed, WA bits) at [(k*3+j)*WA +: WA]; the sums wrap at WA bits,\n\
             which a block segment never reaches (docs/numerics.md 4b)."
        ),
        &config_line(cfg),
    );
    let terms = m.input("terms_i", u(terms_bits(cfg)), "folded terms and carries");
    let acc = m.input("acc_i", u(9 * wa), "the nine block accumulators");
    let acc_o = m.output("acc_o", u(9 * wa), "the accumulators after this row");
    let mut outs = Vec::new();
    for k in 0..3 {
        let s = terms.bit(9 * tw + k);
        for j in 0..3 {
            let t = (k * 3 + j) * tw;
            let term = signed_net(
                &mut m,
                &format!("term{k}{j}"),
                terms.field(t, tw),
                "folded term",
            );
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

/// The composition `sd_factor_add(sd_factor_term(ce, x), acc)` without the lane's register,
/// for the formal proof: ports `ce_i`, `x_i`, `acc_i`, `acc_o` as the reference's.
pub fn module(cfg: &AccelConfig, term: &Module, add: &Module) -> Module {
    let ab = cfg.act_bits;
    let wa = cfg.factor_acc_bits();
    let mut m = Module::new(
        NAME,
        "Factorized dataflow, one row of one slot (for the formal proof): acc_o[k][j] =\n\
         acc_i[k][j] + Ce[k] * x[j], computed by sd_factor_term then sd_factor_add, the two halves\n\
         the lane instantiates with a register between them. Ports as sd_factor_row_ref.",
        &config_line(cfg),
    );
    let ce = m.input(
        "ce_i",
        u(3 * cfg.coef_elem_bits()),
        "the row's three Ce elements",
    );
    let x = m.input("x_i", u(3 * ab), "the slot's three activations");
    let acc = m.input("acc_i", u(9 * wa), "the nine block accumulators");
    let acc_o = m.output("acc_o", u(9 * wa), "the accumulators after this row");
    let terms = m.out_wire("terms", u(terms_bits(cfg)), "folded terms and carries");
    m.instance(
        term,
        "u_term",
        vec![("ce_i", ce), ("x_i", x), ("terms_o", terms.clone())],
    );
    m.instance(
        add,
        "u_add",
        vec![("terms_i", terms), ("acc_i", acc), ("acc_o", acc_o)],
    );
    m
}

/// The proof's modules, `sd_factor_row` last: the two halves and their composition.
pub fn proof_modules(cfg: &AccelConfig, fault: Option<Fault>) -> Vec<Module> {
    let term = term_module(cfg);
    let add = add_module(cfg, fault);
    let row = module(cfg, &term, &add);
    vec![term, add, row]
}
