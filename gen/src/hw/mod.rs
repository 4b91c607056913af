//! One file per hardware block; each function builds one Verilog module from the config.
//!
//! Pipeline (one coefficient-stream entry per cycle, see docs/interface.md):
//! S0 read the stream entry → S1 read activations, basis and weight shifts → S2 rebuild →
//! S3/S4 weight requant (shift; round and saturate) → S5 multiply → S6 accumulate → S7 drain →
//! output requant (4 stages) → output buffer. The factorized dataflow (`factor_*`): S3 block
//! accumulators → per block F1..F3 (B·acc, nine terms) → drain.

pub mod board_top;
pub mod buffers;
pub mod ctrl;
pub mod decoder;
pub mod drain;
pub mod factor_ctrl;
pub mod factor_lane;
pub mod factor_row;
pub mod host_if;
pub mod lane;
pub mod link;
pub mod mac_mul;
pub mod out_requant;
pub mod rebuild;
pub mod top;
pub mod uart_rx;
pub mod uart_tx;
pub mod wrequant;

use crate::ir::{Expr, Module, Ty};
use smartdeal_core::AccelConfig;

/// One line naming the configuration, written into every file header.
pub fn config_line(cfg: &AccelConfig) -> String {
    format!(
        "{} [fingerprint {}]: lanes={} act_bits={} basis_bits={} exp_bits={} acc_bits={} \
         rows_per_block={} act_depth={} coef_depth={} b_depth={} out_depth={} weight_requant={}{}{}{}{}{}",
        cfg.name,
        cfg.fingerprint(),
        cfg.lanes,
        cfg.act_bits,
        cfg.basis_bits,
        cfg.exp_bits,
        cfg.acc_bits,
        cfg.rows_per_block,
        cfg.act_depth,
        cfg.coef_depth,
        cfg.b_depth,
        cfg.out_depth,
        match cfg.weight_requant {
            smartdeal_core::WeightRequant::Int8 => "int8",
            smartdeal_core::WeightRequant::Exact => "exact",
        },
        if cfg.is_dense() {
            " weight_format=dense (int8 baseline)"
        } else {
            ""
        },
        if cfg.is_factorized() {
            " dataflow=factorized"
        } else {
            ""
        },
        if cfg.single_port_buffers {
            " single_port_buffers"
        } else {
            ""
        },
        if cfg.extra_stages {
            " extra_stages"
        } else {
            ""
        },
        match cfg.mac_mul {
            smartdeal_core::MacMul::Inferred => "",
            smartdeal_core::MacMul::Mult18x18d => " mac_mul=mult18x18d",
        }
    )
}

/// Saturates the signed net `x` (width W > `to`) to `to` signed bits: if the bits
/// `x[W-1:to-1]` are not all equal the value does not fit, and the result is the bound of x's
/// sign.
pub fn saturate(m: &mut Module, name: &str, x: &Expr, to: u32) -> Expr {
    let w = x.width();
    assert!(w > to, "saturate {name}: {w} bits into {to}");
    let top = x.slice(w - 1, to - 1); // w - to + 1 bits
    let ovf = m.wire(
        &format!("{name}_ovf"),
        top.clone()
            .reduce(crate::ir::RedOp::And)
            .or(top.reduce(crate::ir::RedOp::Or).not())
            .not(),
        "value outside the target range",
    );
    let max = Expr::lit((1u128 << (to - 1)) - 1, to);
    let min = Expr::lit(1u128 << (to - 1), to);
    let sat = Expr::mux(ovf, Expr::mux(x.bit(w - 1), min, max), x.slice(to - 1, 0));
    m.wire(name, sat, &format!("saturated to {to} bits"))
        .as_signed()
}

/// Binds a 1-bit-or-wider slice to a named signed net (needed before sign-extending it).
pub fn signed_net(m: &mut Module, name: &str, e: Expr, doc: &str) -> Expr {
    m.wire(name, e, doc).as_signed()
}

/// Type helpers used across blocks.
pub fn u(w: u32) -> Ty {
    Ty::u(w)
}

/// Whether the lanes hold the S2 codes register themselves (the controller then hands them its
/// S1r codes): rebuild lanes with the extra stages, which keep one copy per weight column so no
/// Ce bit drives all nine of a lane's shifters (`rebuild::columns`). The dense and factorized
/// lanes take the controller's S2 codes.
pub fn codes_in_lanes(cfg: &AccelConfig) -> bool {
    cfg.extra_stages && !cfg.is_dense() && !cfg.is_factorized()
}
