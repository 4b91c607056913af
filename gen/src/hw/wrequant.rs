//! Rebuilt-weight requantization (int8 mode): `sat8((w + 2^(s-1)) >>> s)`, no rounding term
//! when s = 0.
//!
//! Implemented as `t = (2w) >>> s; q = sat8((t >>> 1) + t[0])`: the bit shifted out last is the
//! rounding bit, so the rounding add is one bit wide instead of a shifted constant (same result:
//! floor((floor(2w / 2^s) + 1) / 2) = floor(w / 2^s + 1/2)). Two stages for timing: the barrel
//! shift, registered, then the rounding add and the saturation (combinational: the lane
//! registers the result).

use super::{config_line, saturate, u};
use crate::ir::{Expr, Module, Reset};
use smartdeal_core::AccelConfig;

pub const NAME: &str = "sd_wrequant";

pub fn module(cfg: &AccelConfig) -> Module {
    let rb = cfg.rebuild_bits();
    let sb = cfg.wshift_bits();
    let mut m = Module::new(
        NAME,
        "Weight requantization of one rebuilt weight to int8: shift right by the output\n\
         channel's shift (registered), then round half up and saturate to [-128, 127]; q_o\n\
         is the weight presented one cycle earlier.",
        &config_line(cfg),
    );
    let _clk = m.input("clk_i", u(1), "clock");
    let w = m.input("w_i", u(rb), "rebuilt weight (signed)");
    let s = m.input("shift_i", u(sb), "right shift");
    let q_o = m.output(
        "q_o",
        u(8),
        "requantized weight (signed int8) of w_i and shift_i one cycle ago",
    );
    // RB → RB+1 bits: append a zero LSB (2w), then arithmetic shift.
    let w2 = m.wire("w2", Expr::concat(vec![w, Expr::lit(0, 1)]), "2w");
    let t = m
        .reg_next(
            "t",
            w2.as_signed().shr(s),
            None,
            Reset::None,
            "2w >>> shift",
        )
        .as_signed();
    // (t >>> 1) + t[0]: RB+1 bits, no overflow (|t >>> 1| < 2^(RB-1)).
    let h = m
        .wire(
            "h",
            t.clone()
                .shr(Expr::lit(1, 1))
                .add(t.bit(0).zext(rb + 1).as_signed()),
            "rounded, before saturation",
        )
        .as_signed();
    let q = saturate(&mut m, "q", &h, 8);
    m.assign(&q_o, q);
    m
}
