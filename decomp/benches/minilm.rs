//! Decomposition speed benchmark (`cargo bench -p smartdeal-decomp --bench minilm`).
//!
//! Decomposes all 36 encoder linear-layer weight matrices of all-MiniLM-L6-v2 (10.6 M weights;
//! `scripts/fetch_minilm.sh` fetches them) with the reference options (30 iterations, threshold
//! 1e-2, decay 0.5) on all cores, converts them to the accelerator's integers (preset `tiny`),
//! and reports total seconds and weights per second. Goal: the whole model in ≤ 2 s on the
//! 2-core machine (the reference Python code needs about 1.5 s per 384×384 matrix).
//! Writes `target/bench/decompose.json`. Loading the file is timed separately.

use serde::Serialize;
use smartdeal_core::AccelConfig;
use smartdeal_decomp::block::Options;
use smartdeal_decomp::integer::IntOptions;
use smartdeal_decomp::layer::LayerOptions;
use smartdeal_decomp::pipeline::{run, Settings};
use smartdeal_decomp::weights::load;
use std::path::Path;
use std::time::Instant;

#[derive(Serialize)]
struct Bench {
    model: &'static str,
    tensors: usize,
    weights: u64,
    threads: usize,
    load_seconds: f64,
    runs: Vec<f64>,
    best_seconds: f64,
    median_seconds: f64,
    weights_per_second: f64,
    goal_seconds: f64,
    goal_met: bool,
    float_rel_error: f64,
    int_rel_error: Option<f64>,
    ce_density: f64,
    file_bits_per_weight: f64,
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let file = root.join("cache/minilm/model.safetensors");
    if !file.exists() {
        eprintln!(
            "{} is missing: run `bash scripts/fetch_minilm.sh`",
            file.display()
        );
        std::process::exit(1);
    }
    let t = Instant::now();
    let tensors = load(
        &file,
        &[
            "encoder.layer.*.attention.self.*.weight".into(),
            "encoder.layer.*.dense.weight".into(),
        ],
    )
    .expect("load MiniLM");
    let load_seconds = t.elapsed().as_secs_f64();
    assert_eq!(tensors.len(), 36);
    let cfg = AccelConfig::preset("tiny").unwrap();
    let settings = Settings {
        layer: LayerOptions {
            block: Options::default(),
            group_size: 32,
            prune_ratio: 0.0,
        },
        prune_ratios: None,
        objective: smartdeal_decomp::layer::Objective::Weight,
        int: IntOptions {
            exp_bits: cfg.exp_bits as u8,
            basis_bits: cfg.basis_bits,
            weight_requant: cfg.weight_requant,
            group_size: 32,
            act_scale: 4.0 / 127.0,
            out_scale: None,
            out_scales: None,
            relu: false,
        },
        calib: None,
        conv: Default::default(),
    };
    let mut runs = Vec::new();
    let mut last = None;
    for _ in 0..3 {
        let t = Instant::now();
        let (_, report) = run(&tensors, &settings, &cfg, &|_| {}).expect("decompose");
        runs.push(t.elapsed().as_secs_f64());
        last = Some(report);
    }
    let report = last.unwrap();
    let mut sorted = runs.clone();
    sorted.sort_by(f64::total_cmp);
    let b = Bench {
        model: "all-MiniLM-L6-v2 encoder linear layers",
        tensors: tensors.len(),
        weights: report.total.weights,
        threads: rayon::current_num_threads(),
        load_seconds,
        best_seconds: sorted[0],
        median_seconds: sorted[1],
        weights_per_second: report.total.weights as f64 / sorted[1],
        goal_seconds: 2.0,
        goal_met: sorted[1] <= 2.0,
        runs,
        float_rel_error: report.total.float_rel_error,
        int_rel_error: report.total.int_rel_error,
        ce_density: report.total.ce_density,
        file_bits_per_weight: report.total.file_bits_per_weight,
    };
    let json = serde_json::to_string_pretty(&b).unwrap();
    println!("{json}");
    println!(
        "\n| model | tensors | weights | threads | median s | M weights/s | goal ≤ 2 s |\n\
         | --- | --- | --- | --- | --- | --- | --- |\n\
         | MiniLM-L6 encoder | {} | {} | {} | {:.2} | {:.2} | {} |",
        b.tensors,
        b.weights,
        b.threads,
        b.median_seconds,
        b.weights_per_second / 1e6,
        if b.goal_met { "met" } else { "not met" }
    );
    let out = root.join("target/bench");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("decompose.json"), json + "\n").unwrap();
}
