//! Output requantization, four stages (each one long operation, for timing):
//! O1 `s = acc + bias` → O2 `p = s · M` (and the rounding constant `2^(sh-1)` from the shift) →
//! O3 `r = p + 2^(sh-1)` → O4 `y = sat8(r >>> sh)`, optional ReLU.

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

    // Rounding constant 2^(sh-1) (0 when sh = 0) as (1 << sh) >> 1, pw + 1 bits: decoded from
    // the shift beside the multiply, so O3 is one add.
    let rnd = Expr::lit(1, pw + 1).shl(sh_q.clone()).shr(Expr::lit(1, 1));
    let rnd_q = m.reg_next(
        "rnd",
        rnd,
        None,
        Reset::None,
        "O3: 2^(sh-1), or 0 when sh = 0",
    );

    m.comment("O3: round half up");
    // pw → pw + 1 bits so the rounding add cannot overflow.
    let r = p_q.as_signed().sext(pw + 1).add(rnd_q);
    let r_q = m.reg_next("r", r, None, Reset::None, "O4: rounded product");
    let sh3_q = m.reg_next("sh3", sh2_q, None, Reset::None, "O4: shift");
    let v3 = m.reg_next("v3", v2.clone(), None, Reset::To(0), "O4 valid");
    let a3 = m.reg_next("a3", a2, None, Reset::None, "O4 address");

    m.comment("O4: shift, saturate, ReLU");
    let t = m
        .wire("t", r_q.as_signed().shr(sh3_q), "arithmetic shift")
        .as_signed();
    let y = saturate(&mut m, "ysat", &t, 8);
    let yr = Expr::mux(relu.and(y.bit(7)), Expr::lit(0, 8), y.as_unsigned());
    let y_q = m.reg_next("y", yr, None, Reset::None, "output");
    let v4 = m.reg_next("v4", v3.clone(), None, Reset::To(0), "output valid");
    let a4 = m.reg_next("a4", a3, None, Reset::None, "output address");
    m.assign(&valid_o, v4.clone());
    m.assign(&addr_o, a4);
    m.assign(&y_o, y_q);
    m.assign(&busy_o, valid.or(v1).or(v2).or(v3).or(v4));
    m
}
