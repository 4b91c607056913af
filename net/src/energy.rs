//! A network's energy estimate: the counts its layers' runs add up to (`RunStats`, from the
//! golden engine's dry run of the planner or from the Verilator engine; they are equal,
//! `sim/tests/activity.rs`), turned into picojoules by `smartdeal_host::energy` for the SmartDeal
//! accelerator and for its dense int8 baseline on the same inputs, with the weights off chip
//! (streamed in for every sentence or image) and on chip.

use smartdeal_core::AccelConfig;
use smartdeal_host::energy::{estimate, Energy, WeightHome};
use smartdeal_host::RunStats;
use std::fmt::Write as _;

/// One design's estimate per scored item (sentence or image).
#[derive(Debug, Clone, serde::Serialize)]
pub struct EnergyRow {
    /// `smartdeal` or `dense int8`.
    pub design: &'static str,
    pub config: String,
    pub weights: WeightHome,
    /// Per item, in picojoules.
    pub energy: Energy,
    /// Per item.
    pub cycles: f64,
    pub weight_bytes: f64,
    pub activation_bytes: f64,
    pub macs: f64,
}

/// The rows for SmartDeal (`sd`, counted on `cfg`) and the dense baseline (`dense`, counted on
/// `cfg.dense_baseline()`), both over `items` sentences or images.
pub fn rows(cfg: &AccelConfig, sd: &RunStats, dense: &RunStats, items: usize) -> Vec<EnergyRow> {
    let n = items.max(1) as f64;
    let dcfg = cfg.dense_baseline();
    let mut out = Vec::new();
    for home in [WeightHome::OffChip, WeightHome::OnChip] {
        for (design, c, s) in [("smartdeal", cfg, sd), ("dense int8", &dcfg, dense)] {
            let e = estimate(c, s, home);
            let per = |v: f64| v / n;
            out.push(EnergyRow {
                design,
                config: c.name.clone(),
                weights: home,
                energy: Energy {
                    weights_dram: per(e.weights_dram),
                    activations_dram: per(e.activations_dram),
                    buffers: per(e.buffers),
                    rebuild: per(e.rebuild),
                    macs: per(e.macs),
                    output_stage: per(e.output_stage),
                    total: per(e.total),
                },
                cycles: per(s.run_cycles as f64),
                weight_bytes: per(s.weight_bytes as f64),
                activation_bytes: per((s.act_bytes + s.out_bytes) as f64),
                macs: per(s.macs(c) as f64),
            });
        }
    }
    out
}

/// The rows as a markdown table, in microjoules per `unit`, with SmartDeal's gain over the
/// dense baseline for each weight placement.
pub fn markdown(rows: &[EnergyRow], unit: &str) -> String {
    let uj = |pj: f64| pj / 1e6;
    let mut s = format!(
        "| design | weights | µJ / {unit} | weights (DRAM) | activations (DRAM) | buffers | \
         rebuild | MACs | output stage | cycles / {unit} | weight bytes / {unit} |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
    );
    for r in rows {
        let e = &r.energy;
        let _ = writeln!(
            s,
            "| {} (`{}`) | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.3} | {:.3} | {:.3} | {:.0} | {:.0} |",
            r.design,
            r.config,
            match r.weights {
                WeightHome::OffChip => "off chip",
                WeightHome::OnChip => "on chip",
            },
            uj(e.total),
            uj(e.weights_dram),
            uj(e.activations_dram),
            uj(e.buffers),
            uj(e.rebuild),
            uj(e.macs),
            uj(e.output_stage),
            r.cycles,
            r.weight_bytes
        );
    }
    for pair in rows.chunks(2) {
        if let [sd, dense] = pair {
            let _ = writeln!(
                s,
                "\nWeights {}: SmartDeal needs {:.2}× the dense int8 baseline's energy per {unit} \
                 ({:.0} vs {:.0} cycles).",
                match sd.weights {
                    WeightHome::OffChip => "off chip",
                    WeightHome::OnChip => "on chip",
                },
                sd.energy.total / dense.energy.total,
                sd.cycles,
                dense.cycles
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_per_item_and_pair_smartdeal_with_dense() {
        let cfg = AccelConfig::preset("tiny").unwrap();
        let sd = RunStats {
            entries: 100,
            weight_bytes: 1000,
            run_cycles: 120,
            ..RunStats::default()
        };
        let dense = RunStats {
            entries: 300,
            weight_bytes: 3000,
            run_cycles: 320,
            ..RunStats::default()
        };
        let r = rows(&cfg, &sd, &dense, 10);
        assert_eq!(r.len(), 4);
        assert_eq!((r[0].design, r[1].design), ("smartdeal", "dense int8"));
        assert_eq!(r[0].cycles, 12.0);
        assert_eq!(r[1].weight_bytes, 300.0);
        assert_eq!(r[2].energy.weights_dram, 0.0, "on chip: no weight traffic");
        let md = markdown(&r, "sentence");
        assert!(md.contains("energy per sentence"), "{md}");
        assert_eq!(md.matches("| smartdeal").count(), 2);
    }
}
