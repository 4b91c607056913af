//! Cycle benchmark (`cargo bench -p smartdeal-sim --bench cycles`).
//!
//! For a random 384→384 layer at 30 % row density on the `tiny` and `icebreaker` presets it runs
//! the generated RTL in Verilator and reports the accelerator's cycles against the ideal
//! `present_rows × ceil(outputs / lanes)` (one present row of one tile per cycle), plus the
//! simulation speed. Writes `target/bench/cycles.json`. Overhead target: ≤ 10 %.

use serde::Serialize;
use smartdeal_core::random::{random_activations, random_layer, RandomLayerSpec};
use smartdeal_core::AccelConfig;
use smartdeal_golden as golden;
use smartdeal_sim::Accel;
use std::time::Instant;

#[derive(Serialize)]
struct Row {
    preset: String,
    lanes: u32,
    inputs: u32,
    outputs: u32,
    row_density: f64,
    present_rows: usize,
    ideal_cycles: u64,
    run_cycles: u64,
    overhead_pct: f64,
    runs: u64,
    padding_entries: u64,
    simulated_cycles_total: u64,
    wall_seconds: f64,
    simulated_cycles_per_second: f64,
    outputs_match_golden: bool,
    overhead_target_met: bool,
}

fn main() {
    let (inputs, outputs, density) = (384, 384, 0.3);
    let mut rows = Vec::new();
    for preset in ["tiny", "icebreaker"] {
        let cfg = AccelConfig::preset(preset).expect("preset");
        let spec = RandomLayerSpec::for_config(&cfg, inputs, outputs, density, 384);
        let layer = random_layer(&spec);
        let x = random_activations(cfg.act_bits, 1, inputs as usize, 7);
        let mut accel = Accel::new(&cfg, &Default::default()).expect("build the simulator");
        let t = Instant::now();
        let (y, st) = accel.run_layer(&layer, &x).expect("run");
        let wall = t.elapsed().as_secs_f64();
        let present = layer.row_present[0].iter().filter(|&&p| p).count();
        let ideal = present as u64 * u64::from(outputs.div_ceil(cfg.lanes));
        let overhead = 100.0 * (st.run_cycles as f64 / ideal as f64 - 1.0);
        rows.push(Row {
            preset: preset.into(),
            lanes: cfg.lanes,
            inputs,
            outputs,
            row_density: density,
            present_rows: present,
            ideal_cycles: ideal,
            run_cycles: st.run_cycles,
            overhead_pct: overhead,
            runs: st.runs,
            padding_entries: st.entries - st.useful_entries,
            simulated_cycles_total: st.total_cycles,
            wall_seconds: wall,
            simulated_cycles_per_second: st.total_cycles as f64 / wall,
            outputs_match_golden: y == golden::run_layer(&cfg, &layer, &x),
            overhead_target_met: overhead <= 10.0,
        });
    }
    println!(
        "{:<11} {:>5} {:>8} {:>8} {:>8} {:>9} {:>5} {:>14} {:>6}",
        "preset",
        "lanes",
        "ideal",
        "cycles",
        "overhead",
        "cycles/s",
        "runs",
        "sim cycles",
        "golden"
    );
    for r in &rows {
        println!(
            "{:<11} {:>5} {:>8} {:>8} {:>7.2}% {:>9.2e} {:>5} {:>14} {:>6}",
            r.preset,
            r.lanes,
            r.ideal_cycles,
            r.run_cycles,
            r.overhead_pct,
            r.simulated_cycles_per_second,
            r.runs,
            r.simulated_cycles_total,
            if r.outputs_match_golden {
                "equal"
            } else {
                "DIFF"
            }
        );
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&dir).expect("create target/bench");
    let path = dir.join("cycles.json");
    let json = serde_json::json!({ "format_version": 1, "benchmark": "cycles", "rows": rows });
    std::fs::write(&path, serde_json::to_string_pretty(&json).expect("json")).expect("write");
    println!("wrote {}", path.display());
    if rows.iter().any(|r| !r.outputs_match_golden) {
        eprintln!("error: RTL outputs differ from the golden model");
        std::process::exit(1);
    }
}
