//! An energy estimate from a layer execution's counts ([`RunStats`]): per-operation energies
//! from Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014,
//! 45 nm at 0.9 V — the table SmartDeal's and most accelerator papers' estimates start from.
//! It is a model, not a measurement: it says where the energy goes and how SmartDeal and the
//! dense int8 baseline compare for the same network, not what a given FPGA draws.

use crate::activity::RunStats;
use smartdeal_core::AccelConfig;

/// Horowitz (ISSCC 2014), 45 nm, in picojoules.
pub mod pj {
    /// 32-bit DRAM read (off-chip traffic: weights streamed in, activations in and out).
    pub const DRAM_READ_32: f64 = 640.0;
    /// 32-bit read of an 8 kB SRAM (every on-chip buffer read or write).
    pub const SRAM_8KB_READ_32: f64 = 5.0;
    /// 8-bit integer add.
    pub const ADD_8: f64 = 0.03;
    /// 32-bit integer add.
    pub const ADD_32: f64 = 0.1;
    /// 8-bit integer multiply.
    pub const MULT_8: f64 = 0.2;
    /// 32-bit integer multiply.
    pub const MULT_32: f64 = 3.1;
}

/// Where the weights live while a network runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightHome {
    /// Off chip: every run streams its weights in (one sentence or image at a time, T = 1).
    OffChip,
    /// On chip: loaded once and reused, so weight traffic is not counted.
    OnChip,
}

/// Energy by component, in picojoules.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Energy {
    /// Weight bytes streamed from off-chip memory (0 with the weights on chip).
    pub weights_dram: f64,
    /// Activation bytes in and output bytes out, through off-chip memory.
    pub activations_dram: f64,
    /// On-chip buffer reads: stream, activations, basis and weight shifts per issued entry;
    /// output parameters and the output write per drained output.
    pub buffers: f64,
    /// Rebuild shift-adds (SmartDeal only): adds of `rebuild_bits`, scaled from the 8-bit add.
    pub rebuild: f64,
    /// MACs: an 8-bit multiply and a 32-bit accumulate each.
    pub macs: f64,
    /// Output stage: bias add and the 32-bit requantization multiply per drained output.
    pub output_stage: f64,
    pub total: f64,
}

/// The estimate for the counts `s` of an execution on `cfg`.
pub fn estimate(cfg: &AccelConfig, s: &RunStats, home: WeightHome) -> Energy {
    let dram_byte = pj::DRAM_READ_32 / 4.0;
    let sram_bit = pj::SRAM_8KB_READ_32 / 32.0;
    let entry_bits = cfg.coef_word_bits()
        + cfg.act_word_bits()
        + if cfg.has_basis() {
            cfg.b_word_bits()
        } else {
            0
        }
        + if cfg.has_wshift() {
            cfg.wshift_word_bits()
        } else {
            0
        };
    let output_bits = cfg.oparam_word_bits() + 8;
    let mut e = Energy {
        weights_dram: match home {
            WeightHome::OffChip => s.weight_bytes as f64 * dram_byte,
            WeightHome::OnChip => 0.0,
        },
        activations_dram: (s.act_bytes + s.out_bytes) as f64 * dram_byte,
        buffers: (s.entries * u64::from(entry_bits) + s.outputs * u64::from(output_bits)) as f64
            * sram_bit,
        rebuild: s.rebuild_terms(cfg) as f64 * pj::ADD_8 * f64::from(cfg.rebuild_bits()) / 8.0,
        macs: s.macs(cfg) as f64 * (pj::MULT_8 + pj::ADD_32),
        output_stage: s.outputs as f64 * (pj::ADD_32 + pj::MULT_32),
        total: 0.0,
    };
    e.total = e.weights_dram + e.activations_dram + e.buffers + e.rebuild + e.macs + e.output_stage;
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_follow_the_counts_and_the_table() {
        let cfg = AccelConfig::preset("tiny").unwrap();
        let s = RunStats {
            entries: 10,
            weight_bytes: 100,
            act_bytes: 30,
            out_bytes: 8,
            outputs: 8,
            ..RunStats::default()
        };
        let off = estimate(&cfg, &s, WeightHome::OffChip);
        let on = estimate(&cfg, &s, WeightHome::OnChip);
        assert_eq!(off.weights_dram, 100.0 * 160.0);
        assert_eq!(on.weights_dram, 0.0);
        assert_eq!(off.activations_dram, 38.0 * 160.0);
        // 10 entries × 4 lanes × 2 slots × 3 MACs, 0.3 pJ each.
        assert!((off.macs - 240.0 * 0.3).abs() < 1e-9);
        // 10 entries × 4 lanes × 9 terms of 17-bit adds.
        assert!((off.rebuild - 360.0 * 0.03 * 17.0 / 8.0).abs() < 1e-9);
        assert!((off.total - on.total - off.weights_dram).abs() < 1e-6);
        let dense = estimate(&cfg.dense_baseline(), &s, WeightHome::OffChip);
        assert_eq!(dense.rebuild, 0.0);
        assert!(
            dense.buffers < off.buffers,
            "no basis or weight-shift reads"
        );
    }
}
