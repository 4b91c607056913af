//! Output requantization, one long operation per stage (for timing):
//! O1 `s = acc + bias` → O2 the partial products `s_k · M` of `p = s · M` (and the rounding
//! constant `2^(sh-1)` from the shift) → O2b their unsigned sum `q` → O3 `r = p + 2^(sh-1)`, low
//! 32 bits, and the high bits `q >> 32 + s2 · M` → O3h the high bits take the carry → O4
//! `t = r >>> sh` → O5 `y = sat8(t)`, optional ReLU.

use super::{config_line, saturate, u};
use crate::ir::{Expr, Module, Reset};
use smartdeal_core::params::{BIAS_BITS, OUT_MULT_BITS, OUT_SHIFT_BITS};
use smartdeal_core::AccelConfig;

pub const NAME: &str = "sd_out_requant";

/// Signed operand widths of the O2 multiplier after Yosys drops the sign-extension copies:
/// `acc + bias` (sb bits) × the unsigned 16-bit M (Yosys sees its zero-extension bit is 0; measured:
/// 3 SB_MAC16 on iCE40, 2 MULT18X18D on ECP5 for 33 × 16).
pub fn multiplier_widths(cfg: &AccelConfig) -> (u32, u32) {
    (cfg.acc_bits.max(BIAS_BITS) + 1, OUT_MULT_BITS)
}

pub fn module(cfg: &AccelConfig) -> Module {
    let ab = cfg.acc_bits;
    let oaw = cfg.out_addr_bits();
    let sb = ab.max(BIAS_BITS) + 1; // acc + bias without overflow
    let pw = sb + OUT_MULT_BITS; // signed sb × unsigned 16 bits
    let mut m = Module::new(
        NAME,
        "Output requantization of one accumulator per cycle:\n\
         y = sat_int8(((acc + bias) * M + 2^(sh-1)) >>> sh), no rounding term when sh = 0;\n\
         then y = max(0, y) when relu_i. oparam_i = {oshift[4:0], mult[15:0], bias[31:0]}.",
        &config_line(cfg),
    );
    m.clock_reset();
    let valid = m.input("valid_i", u(1), "an accumulator is presented");
    let addr = m.input("addr_i", u(oaw), "its output-buffer address");
    let acc = m.input("acc_i", u(ab), "accumulator (signed)");
    let op = m.input(
        "oparam_i",
        u(BIAS_BITS + OUT_MULT_BITS + OUT_SHIFT_BITS),
        "output parameters",
    );
    let relu = m.input("relu_i", u(1), "apply ReLU");
    let valid_o = m.output("valid_o", u(1), "y_o is valid");
    let addr_o = m.output("addr_o", u(oaw), "address of y_o");
    let y_o = m.output("y_o", u(8), "output (signed int8)");
    let busy_o = m.output("busy_o", u(1), "a value is in flight");
    // With registered reads the output parameters come a cycle later than the drain's value:
    // O0 holds the value back one cycle to meet them.
    let (valid_in, valid, addr, acc) = if cfg.extra_stages {
        m.comment("O0: wait for the output parameters");
        let v0 = m.reg_next("v0", valid.clone(), None, Reset::To(0), "O0 valid");
        let a0 = m.reg_next("a0", addr, None, Reset::None, "O0 address");
        let c0 = m.reg_next("acc0", acc, None, Reset::None, "O0 accumulator");
        (valid.or(v0.clone()), v0, a0, c0)
    } else {
        (valid.clone(), valid, addr, acc)
    };

    m.comment("O1: acc + bias");
    let bias = m.wire("bias", op.field(0, BIAS_BITS), "").as_signed();
    let mult = m.wire("mult", op.field(BIAS_BITS, OUT_MULT_BITS), "");
    let sh = m.wire(
        "sh",
        op.field(BIAS_BITS + OUT_MULT_BITS, OUT_SHIFT_BITS),
        "",
    );
    // acc_bits, 32 → sb = max + 1 bits: the sum cannot overflow.
    let s = acc.as_signed().sext(sb).add(bias.sext(sb));
    let s_q = m.reg_next("s", s, None, Reset::None, "O2: acc + bias");
    let mult_q = m.reg_next("mult", mult, None, Reset::None, "O2: multiplier");
    let sh_q = m.reg_next("sh", sh, None, Reset::None, "O2: shift");
    let v1 = m.reg_next("v1", valid.clone(), None, Reset::To(0), "O2 valid");
    let a1 = m.reg_next("a1", addr, None, Reset::None, "O2 address");

    // O2 … O3: with the extra stages the product goes through registered partial products.
    let o3 = O2Inputs {
        s_q,
        mult_q,
        sh_q,
        v1: v1.clone(),
        a1,
        sb,
        pw,
    };
    let (lo_q, cy_q, hi_q, sh2_q, v2, a2, mid_valids) = if cfg.extra_stages {
        product_in_parts(&mut m, o3)
    } else {
        product_whole(&mut m, o3)
    };
    let sh_h = m.reg_next("sh_h", sh2_q, None, Reset::None, "O3h: shift");
    let vh = m.reg_next("vh", v2.clone(), None, Reset::To(0), "O3h valid");
    let ah = m.reg_next("ah", a2, None, Reset::None, "O3h address");

    m.comment("O3h: round half up, high bits");
    // The high bits are pw + 1 − 32 wide (the rounding add's low part is 32 bits).
    let r = Expr::concat(vec![hi_q.clone().add(cy_q.zext(pw + 1 - 32)), lo_q]);
    let r_q = m.reg_next("r", r, None, Reset::None, "O4: rounded product");
    let sh3_q = m.reg_next("sh3", sh_h, None, Reset::None, "O4: shift");
    let v3 = m.reg_next("v3", vh.clone(), None, Reset::To(0), "O4 valid");
    let a3 = m.reg_next("a3", ah, None, Reset::None, "O4 address");

    m.comment("O4: shift");
    // pw + 1 bits, arithmetic shift by 0..31: the barrel shifter alone (five mux levels).
    let t = r_q.as_signed().shr(sh3_q);
    let t_q = m
        .reg_next("t", t, None, Reset::None, "O5: shifted")
        .as_signed();
    let v4 = m.reg_next("v4", v3.clone(), None, Reset::To(0), "O5 valid");
    let a4 = m.reg_next("a4", a3, None, Reset::None, "O5 address");

    m.comment("O5: saturate, ReLU");
    let t = m.wire("t", t_q, "the shifted value").as_signed();
    let y = saturate(&mut m, "ysat", &t, 8);
    let yr = Expr::mux(relu.and(y.bit(7)), Expr::lit(0, 8), y.as_unsigned());
    let y_q = m.reg_next("y", yr, None, Reset::None, "output");
    let v5 = m.reg_next("v5", v4.clone(), None, Reset::To(0), "output valid");
    let a5 = m.reg_next("a5", a4, None, Reset::None, "output address");
    m.assign(&valid_o, v5.clone());
    m.assign(&addr_o, a5);
    m.assign(&y_o, y_q);
    let mid = mid_valids.into_iter().fold(valid_in.or(v1), Expr::or);
    m.assign(&busy_o, mid.or(v2).or(vh).or(v3).or(v4).or(v5));
    m
}

/// What O2 takes from O1.
struct O2Inputs {
    s_q: Expr,
    mult_q: Expr,
    sh_q: Expr,
    v1: Expr,
    a1: Expr,
    /// Width of `acc + bias`.
    sb: u32,
    /// Width of the product.
    pw: u32,
}

/// What O3h takes: the low 32 bits of the rounded product, their carry, the high bits, the
/// shift, valid and address; and the valids of any stages in between (for busy).
type O3Out = (Expr, Expr, Expr, Expr, Expr, Expr, Vec<Expr>);

/// O2 `p = s · M` in one product (one DSP cascade), O3 the rounding add's low 32 bits.
fn product_whole(m: &mut Module, i: O2Inputs) -> O3Out {
    let O2Inputs {
        s_q,
        mult_q,
        sh_q,
        v1,
        a1,
        sb: _,
        pw,
    } = i;
    m.comment("O2: multiply");
    // sb signed × 16-bit unsigned (zero-extended, so non-negative) → pw = sb + 16 bits holds
    // the product exactly.
    let p = s_q.as_signed().sext(pw).mul(mult_q.zext(pw).as_signed());
    let p_q = m.reg_next("p", p, None, Reset::None, "O3: (acc + bias) * M");
    let sh2_q = m.reg_next("sh2", sh_q.clone(), None, Reset::None, "O3: shift");
    let v2 = m.reg_next("v2", v1.clone(), None, Reset::To(0), "O3 valid");
    let a2 = m.reg_next("a2", a1, None, Reset::None, "O3 address");

    // Rounding constant 2^(sh-1) (0 when sh = 0) as (1 << sh) >> 1, RL = 32 bits (sh ≤ 31 with
    // a 5-bit shift, so it is at most 2^30): decoded from the shift beside the multiply, so O3
    // is one add. Only the low RL bits of the rounding add see it; the high bits take its carry
    // in O3h (a pw + 1-bit add in one cycle is a carry chain the iCE40 cannot run at 42 MHz).
    let rl = 32.min(pw);
    let rnd = Expr::lit(1, rl).shl(sh_q.clone()).shr(Expr::lit(1, 1));
    let rnd_q = m.reg_next(
        "rnd",
        rnd,
        None,
        Reset::None,
        "O3: 2^(sh-1), or 0 when sh = 0",
    );

    m.comment("O3: round half up, low bits");
    let (lo_q, cy_q) = round_low(m, p_q.slice(rl - 1, 0), rnd_q.slice(rl - 1, 0));
    // pw - RL bits, sign-extended by one so that the carry cannot overflow.
    let p_top = m
        .wire("p_top", p_q.slice(pw - 1, rl), "high bits of p")
        .as_signed();
    let hi_q = m.reg_next(
        "p_hi",
        p_top.sext(pw + 1 - rl),
        None,
        Reset::None,
        "O3h: high bits of p",
    );
    (lo_q, cy_q, hi_q, sh2_q, v2, a2, Vec::new())
}

/// O2 the three 16 × 16 partial products of `s · M`, O2b their unsigned sum, O3 the rounding
/// add's low 32 bits and the high bits.
fn product_in_parts(m: &mut Module, i: O2Inputs) -> O3Out {
    let O2Inputs {
        s_q,
        mult_q,
        sh_q,
        v1,
        a1,
        sb,
        pw,
    } = i;
    m.comment("O2: multiply, as three partial products");
    // s = s2·2^32 + s1·2^16 + s0 (s0, s1 unsigned 16-bit, s2 the signed top sb − 32 bits), so
    // each product is one 16 × 16 DSP block (SB_MAC16, MULT18X18D) with nothing after it in the
    // cycle; the partial products are added in O2b and O3. A single sb × 16 product had the
    // DSP's carry-chain combine in the same cycle (the ECP5's worst path at 85 MHz).
    assert!(sb > 32, "acc + bias is at least 33 bits");
    let w2 = sb - 32;
    let s0 = m.wire("s0", s_q.slice(15, 0), "low 16 bits of acc + bias");
    let s1 = m.wire("s1", s_q.slice(31, 16), "middle 16 bits");
    let s2 = m
        .wire("s2", s_q.slice(sb - 1, 32), "top bits (signed)")
        .as_signed();
    // 16 × 16 unsigned → 32 bits, exact.
    let pp0 = m.reg_next(
        "pp0",
        s0.zext(32).mul(mult_q.zext(32)),
        None,
        Reset::None,
        "O2b: s0 · M",
    );
    let pp1 = m.reg_next(
        "pp1",
        s1.zext(32).mul(mult_q.zext(32)),
        None,
        Reset::None,
        "O2b: s1 · M",
    );
    // w2 signed × 16 unsigned (zero-extended, non-negative) → w2 + 16 bits, exact.
    let pp2 = m.reg_next(
        "pp2",
        s2.sext(w2 + 16).mul(mult_q.zext(w2 + 16).as_signed()),
        None,
        Reset::None,
        "O2b: s2 · M",
    );
    // Kept as plain registers: Yosys 0.23 would otherwise fold them and the O2b add into an
    // iCE40 SB_MAC16's accumulator and then fail on the unconnected carry out.
    for pp in [&pp0, &pp1, &pp2] {
        m.keep_apart(pp);
    }
    let sh2_q = m.reg_next("sh2", sh_q.clone(), None, Reset::None, "O2b: shift");
    let v2 = m.reg_next("v2", v1.clone(), None, Reset::To(0), "O2b valid");
    let a2 = m.reg_next("a2", a1, None, Reset::None, "O2b address");
    // Rounding constant 2^(sh-1) (0 when sh = 0) as (1 << sh) >> 1, RL = 32 bits (sh ≤ 31 with
    // a 5-bit shift, so it is at most 2^30): decoded from the shift beside the multiply, so O3
    // is one add. Only the low 32 bits of the rounding add see it; the high bits take its carry
    // in O3h (a pw + 1-bit add in one cycle is a carry chain the iCE40 cannot run at 42 MHz).
    let rl = 32;
    let rnd = Expr::lit(1, rl).shl(sh_q.clone()).shr(Expr::lit(1, 1));
    let rnd_q = m.reg_next(
        "rnd",
        rnd,
        None,
        Reset::None,
        "O2b: 2^(sh-1), or 0 when sh = 0",
    );

    m.comment("O2b: the two unsigned partial products");
    // q = pp0 + pp1·2^16: its low 16 bits are pp0's; above them pp0[31:16] + pp1 (32 + 1 bits).
    let q_mid = m.wire(
        "q_mid",
        pp0.slice(31, 16).zext(33).add(pp1.zext(33)),
        "pp0[31:16] + pp1",
    );
    let q = m.reg_next(
        "q",
        Expr::concat(vec![q_mid, pp0.slice(15, 0)]),
        None,
        Reset::None,
        "O3: s0·M + s1·M·2^16 (49 bits, non-negative)",
    );
    let pp2_q = m
        .reg_next("pp2d", pp2, None, Reset::None, "O3: s2 · M")
        .as_signed();
    let sh3a_q = m.reg_next("sh3a", sh2_q, None, Reset::None, "O3: shift");
    let rnd3_q = m.reg_next("rnd3", rnd_q, None, Reset::None, "O3: rounding constant");
    let v2b = m.reg_next("v2b", v2.clone(), None, Reset::To(0), "O3 valid");
    let a2b = m.reg_next("a2b", a2, None, Reset::None, "O3 address");

    m.comment("O3: round half up, low bits; the high bits take s2·M");
    // p = q + pp2·2^32: p's low 32 bits are q's, so the rounding add sees only q there.
    let (lo_q, cy_q) = round_low(m, q.slice(rl - 1, 0), rnd3_q);
    // HW = pw + 1 − 32 bits: p >> 32 (q's top 17 bits, unsigned, plus s2·M, signed) holds in
    // HW − 1 bits, one more so that the rounding carry cannot overflow.
    let hw = pw + 1 - rl;
    let q_top = m.wire("q_top", q.slice(48, rl), "q >> 32 (17 bits)");
    let hi_q = m.reg_next(
        "p_hi",
        q_top.zext(hw).add(pp2_q.sext(hw)),
        None,
        Reset::None,
        "O3h: high bits of p",
    );
    let (sh2_q, v2_busy, v2, a2) = (sh3a_q, v2, v2b, a2b);
    (lo_q, cy_q, hi_q, sh2_q, v2, a2, vec![v2_busy])
}

/// O3, the rounding add's low part: `low + rnd` (both RL bits) → RL + 1 bits, registered for
/// O3h as the RL-bit sum and its carry. Returns `(r_lo, r_cy)`.
fn round_low(m: &mut Module, low: Expr, rnd: Expr) -> (Expr, Expr) {
    let rl = low.width();
    let lo = m.wire(
        "p_lo",
        low.zext(rl + 1).add(rnd.zext(rl + 1)),
        "low bits of p plus the rounding constant, with the carry out (RL + 1 bits)",
    );
    let lo_q = m.reg_next(
        "r_lo",
        lo.slice(rl - 1, 0),
        None,
        Reset::None,
        "O3h: low bits",
    );
    let cy_q = m.reg_next("r_cy", lo.bit(rl), None, Reset::None, "O3h: their carry");
    (lo_q, cy_q)
}
