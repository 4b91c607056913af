//! Convolution and token-slot benchmark (`cargo bench -p smartdeal-sim --bench conv`).
//!
//! 1. The ResNet-18 `layer1[0].conv1` shape (64 → 64, 3×3, stride 1, padding 1, one 56×56
//!    image) with random SmartDeal weights at 100 % and 50 % row density, on the `tiny`,
//!    `icebreaker` and `ulx3s` presets, run as band runs on the generated RTL in Verilator:
//!    the accelerator's cycles against the ideal `present_rows × ⌈cout / lanes⌉ × ⌈pixels / P⌉`
//!    (P = the configuration's pixel slots), MACs per cycle, and the activation bytes the host
//!    loaded.
//! 2. A random 384 → 384 fully connected layer at 30 % row density on T = 1, 4, 16, 64 tokens:
//!    cycles per token (tokens go P at a time).
//!
//! Every output is checked against the golden model. Writes `target/bench/conv.json` and
//! `target/bench/conv.md` (the committed copy is `docs/benchmarks/conv.md`). Targets: conv
//! overhead ≤ 10 %; FC cycles per token at T = 16 at least 0.9 · P times below T = 1.

use serde::Serialize;
use smartdeal_core::random::{random_activations, random_layer, RandomLayerSpec};
use smartdeal_core::{AccelConfig, ConvShape, ImageDims};
use smartdeal_golden as golden;
use smartdeal_host::Engine;
use smartdeal_sim::Accel;
use std::fmt::Write as _;
use std::time::Instant;

#[derive(Serialize)]
struct ConvRow {
    preset: String,
    lanes: u32,
    slots: u32,
    row_density: f64,
    present_rows: usize,
    ideal_cycles: u64,
    run_cycles: u64,
    overhead_pct: f64,
    runs: u64,
    /// Dense-equivalent MACs (cout · cin · 9 · pixels) per accelerator cycle.
    effective_macs_per_cycle: f64,
    /// MACs on present rows per cycle, against the peak 3 · lanes · slots.
    useful_macs_per_cycle: f64,
    peak_macs_per_cycle: u32,
    activation_bytes_loaded: u64,
    input_bytes: u64,
    simulated_cycles_total: u64,
    wall_seconds: f64,
    outputs_match_golden: bool,
    overhead_target_met: bool,
}

#[derive(Serialize)]
struct FcRow {
    preset: String,
    lanes: u32,
    slots: u32,
    tokens: usize,
    run_cycles: u64,
    cycles_per_token: f64,
    outputs_match_golden: bool,
}

fn conv_row(cfg: &AccelConfig, density: f64) -> ConvRow {
    let (cin, cout, hw) = (64u32, 64u32, 56usize);
    let conv = ConvShape {
        in_channels: cin,
        kernel: 3,
        stride: 1,
        padding: 1,
    };
    let mut spec = RandomLayerSpec::for_config(cfg, cin * 9, cout, density, 18);
    spec.name = "layer1.0.conv1".into();
    let mut layer = random_layer(&spec);
    layer.conv = Some(conv);
    let dims = ImageDims {
        images: 1,
        height: hw,
        width: hw,
    };
    let x = random_activations(cfg.act_bits, 1, cin as usize * hw * hw, 5);
    let mut accel = Accel::new(cfg, &Default::default()).expect("build the simulator");
    let t = Instant::now();
    let (y, st) = accel
        .run_layer_images(&layer, &x, dims)
        .expect("run the convolution");
    let wall = t.elapsed().as_secs_f64();
    let present = layer.row_present[0].iter().filter(|&&p| p).count();
    let pixels = (hw * hw) as u64;
    let slots = u64::from(cfg.slots);
    let ideal = present as u64 * u64::from(cout.div_ceil(cfg.lanes)) * pixels.div_ceil(slots);
    let overhead = 100.0 * (st.run_cycles as f64 / ideal as f64 - 1.0);
    let dense_macs = u64::from(cout) * u64::from(cin) * 9 * pixels;
    let useful_macs = present as u64 * 3 * u64::from(cout) * pixels;
    ConvRow {
        preset: cfg.name.clone(),
        lanes: cfg.lanes,
        slots: cfg.slots,
        row_density: density,
        present_rows: present,
        ideal_cycles: ideal,
        run_cycles: st.run_cycles,
        overhead_pct: overhead,
        runs: st.runs,
        effective_macs_per_cycle: dense_macs as f64 / st.run_cycles as f64,
        useful_macs_per_cycle: useful_macs as f64 / st.run_cycles as f64,
        peak_macs_per_cycle: 3 * cfg.lanes * cfg.slots,
        activation_bytes_loaded: st.act_words * u64::from(cfg.act_word_bits().div_ceil(8)),
        input_bytes: u64::from(cin) * pixels,
        simulated_cycles_total: st.total_cycles,
        wall_seconds: wall,
        outputs_match_golden: y == golden::run_conv(cfg, &layer, &x, dims).expect("a convolution"),
        overhead_target_met: overhead <= 10.0,
    }
}

fn fc_rows(cfg: &AccelConfig) -> Vec<FcRow> {
    let (inputs, outputs) = (384u32, 384u32);
    let layer = random_layer(&RandomLayerSpec::for_config(cfg, inputs, outputs, 0.3, 384));
    let mut accel = Accel::new(cfg, &Default::default()).expect("build the simulator");
    [1usize, 4, 16, 64]
        .into_iter()
        .map(|tokens| {
            let x = random_activations(cfg.act_bits, tokens, inputs as usize, 7);
            let (y, st) = accel.run_layer(&layer, &x).expect("run");
            FcRow {
                preset: cfg.name.clone(),
                lanes: cfg.lanes,
                slots: cfg.slots,
                tokens,
                run_cycles: st.run_cycles,
                cycles_per_token: st.run_cycles as f64 / tokens as f64,
                outputs_match_golden: y == golden::run_layer(cfg, &layer, &x),
            }
        })
        .collect()
}

fn markdown(conv: &[ConvRow], fc: &[FcRow]) -> String {
    let mut s = String::from(
        "# Convolutions and pixel/token slots (`cargo bench -p smartdeal-sim --bench conv`)\n\n\
         ResNet-18 `layer1[0].conv1` shape: 64 → 64, 3×3, stride 1, padding 1, one 56×56 image, \
         random SmartDeal weights; band runs on the generated RTL in Verilator. Ideal = \
         present rows × ⌈cout / lanes⌉ × ⌈pixels / slots⌉.\n\n\
         | preset | lanes × slots | row density | ideal cycles | cycles | overhead | runs | \
         effective MAC/cycle | useful MAC/cycle (peak) | activation bytes loaded (input bytes) \
         | golden |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n",
    );
    for r in conv {
        let _ =
            writeln!(
            s,
            "| {} | {} × {} | {:.2} | {} | {} | {:.2} % | {} | {:.1} | {:.1} ({}) | {} ({}) | {} |",
            r.preset,
            r.lanes,
            r.slots,
            r.row_density,
            r.ideal_cycles,
            r.run_cycles,
            r.overhead_pct,
            r.runs,
            r.effective_macs_per_cycle,
            r.useful_macs_per_cycle,
            r.peak_macs_per_cycle,
            r.activation_bytes_loaded,
            r.input_bytes,
            if r.outputs_match_golden { "equal" } else { "DIFF" }
        );
    }
    s.push_str(
        "\nFully connected 384 → 384, 30 % row density: cycles per token (tokens go `slots` at \
         a time).\n\n| preset | lanes × slots | T = 1 | T = 4 | T = 16 | T = 64 | T=1 / T=16 |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for rows in fc.chunks(4) {
        let per = |t: usize| {
            rows.iter()
                .find(|r| r.tokens == t)
                .map_or(0.0, |r| r.cycles_per_token)
        };
        let _ = writeln!(
            s,
            "| {} | {} × {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} |",
            rows[0].preset,
            rows[0].lanes,
            rows[0].slots,
            per(1),
            per(4),
            per(16),
            per(64),
            per(1) / per(16)
        );
    }
    s
}

fn main() {
    let mut conv = Vec::new();
    let mut fc = Vec::new();
    for preset in ["tiny", "icebreaker", "ulx3s"] {
        let cfg = AccelConfig::preset(preset).expect("preset");
        for density in [1.0, 0.5] {
            let r = conv_row(&cfg, density);
            println!(
                "conv {preset} density {density}: {} cycles (ideal {}, {:+.2} %), {:.1} s",
                r.run_cycles, r.ideal_cycles, r.overhead_pct, r.wall_seconds
            );
            conv.push(r);
        }
        let rows = fc_rows(&cfg);
        for r in &rows {
            println!(
                "fc {preset} T = {}: {:.1} cycles per token",
                r.tokens, r.cycles_per_token
            );
        }
        fc.extend(rows);
    }
    let md = markdown(&conv, &fc);
    print!("{md}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&dir).expect("create target/bench");
    let json = serde_json::json!({
        "format_version": 1, "benchmark": "conv", "conv": conv, "fc": fc
    });
    std::fs::write(
        dir.join("conv.json"),
        serde_json::to_string_pretty(&json).expect("json"),
    )
    .expect("write conv.json");
    std::fs::write(dir.join("conv.md"), md).expect("write conv.md");
    println!("wrote {}", dir.join("conv.{json,md}").display());
    let bad =
        conv.iter().any(|r| !r.outputs_match_golden) || fc.iter().any(|r| !r.outputs_match_golden);
    if bad {
        eprintln!("error: RTL outputs differ from the golden model");
        std::process::exit(1);
    }
}
