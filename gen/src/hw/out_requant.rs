//! Output requantization, six stages (each one long operation, for timing):
//! O1 `s = acc + bias` → O2 `p = s · M` (and the rounding constant `2^(sh-1)` from the shift) →
//! O3 `r = p + 2^(sh-1)`, low 32 bits → O3h the high bits take the carry → O4 `t = r >>> sh` →
//! O5 `y = sat8(t)`, optional ReLU.

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
    let (valid_in, valid, addr, acc) = if cfg.registered_reads {
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
    let lo = m.wire(
        "p_lo",
        p_q.slice(rl - 1, 0)
            .zext(rl + 1)
            .add(rnd_q.slice(rl - 1, 0).zext(rl + 1)),
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
    // pw → pw + 1 bits (sign extension) for the high part, so the carry cannot overflow.
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
    let sh_h = m.reg_next("sh_h", sh2_q, None, Reset::None, "O3h: shift");
    let vh = m.reg_next("vh", v2.clone(), None, Reset::To(0), "O3h valid");
    let ah = m.reg_next("ah", a2, None, Reset::None, "O3h address");

    m.comment("O3h: round half up, high bits");
    let r = Expr::concat(vec![hi_q.clone().add(cy_q.zext(pw + 1 - rl)), lo_q]);
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
    m.assign(&busy_o, valid_in.or(v1).or(v2).or(vh).or(v3).or(v4).or(v5));
    m
}
