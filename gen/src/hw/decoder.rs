//! Sparse power-of-two decoder: unpacks one Ce row (three elements) of one lane into gate,
//! negate and shift controls for the rebuild engine.

use super::{config_line, u};
use crate::ir::{Expr, Module};
use smartdeal_core::AccelConfig;

pub const NAME: &str = "sd_decoder";

pub fn module(cfg: &AccelConfig) -> Module {
    let e = cfg.coef_elem_bits();
    let eb = cfg.exp_bits;
    let rb = cfg.rebuild_bits();
    let mut m = Module::new(
        NAME,
        "Sparse power-of-two decoder for one Ce row of one lane.\n\
         Element k of ce_i (bits [k*E +: E], E = 2 + exp_bits): bit 0 present, bit 1 negative,\n\
         bits [2 +: exp_bits] exponent code. A Ce element is 0 or +/-2^(e_lo + code).\n\
         fill_o[k] is the thermometer mask of the bits a left shift by code_k vacates, set only\n\
         for a negative element: the rebuild engine ORs it in so that (~b << code) | fill equals\n\
         ~(b << code), and one carry completes the two's-complement negation.",
        &config_line(cfg),
    );
    let ce = m.input(
        "ce_i",
        u(3 * e),
        "three Ce elements, element k at [k*E +: E]",
    );
    let en_o = m.output("en_o", u(3), "element k present");
    let neg_o = m.output("neg_o", u(3), "element k present and negative");
    let code_o = m.output(
        "code_o",
        u(3 * eb),
        "exponent code of element k at [k*exp_bits +: exp_bits]",
    );
    let fill_o = m.output(
        "fill_o",
        u(3 * rb),
        "vacated-bit mask of element k at [k*RB +: RB]",
    );
    let mut en = Vec::new();
    let mut neg = Vec::new();
    let mut code = Vec::new();
    let mut fill = Vec::new();
    for k in (0..3).rev() {
        let lo = k * e;
        let p = ce.bit(lo);
        let n = m.wire(&format!("neg{k}"), ce.bit(lo + 1).and(p.clone()), "");
        let c = m.wire(&format!("code{k}"), ce.field(lo + 2, eb), "");
        // ones << code: the low `code` bits are zero; their complement is the fill mask.
        // Width: rb bits, code ≤ 2^exp_bits - 1 < rb, so the mask never covers the whole word.
        let shifted = Expr::lit((1u128 << rb) - 1, rb).shl(c.clone());
        let f = m.wire(
            &format!("fill{k}"),
            shifted.not().and(n.clone().splat(rb)),
            "",
        );
        en.push(p);
        neg.push(n);
        code.push(c);
        fill.push(f);
    }
    m.assign(&en_o, Expr::concat(en));
    m.assign(&neg_o, Expr::concat(neg));
    m.assign(&code_o, Expr::concat(code));
    m.assign(&fill_o, Expr::concat(fill));
    m
}
