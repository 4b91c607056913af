//! STS-B benchmark (`cargo bench -p smartdeal-net --bench sts`): all-MiniLM-L6-v2 on the whole
//! STS-B test set (cache/, from scripts/setup.sh), float and SmartDeal int8 on the golden engine
//! (the defaults of `smartdeal eval sts`), with the time of each. Writes
//! `target/bench/sts.json`. Target: the golden scoring of the whole test set within 120 s on
//! two cores.

use smartdeal_core::AccelConfig;
use smartdeal_host::GoldenEngine;
use smartdeal_net::eval::{float_score, int_score};
use smartdeal_net::minilm::MiniLm;
use smartdeal_net::quant::{calibrate, compress, footprint, CompressOptions};
use smartdeal_net::sts;
use std::collections::HashSet;
use std::path::Path;
use std::time::Instant;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let model = MiniLm::load(&root.join("cache/minilm")).expect("cache/minilm (scripts/setup.sh)");
    let pairs = sts::read(&root.join("cache/stsb/sts-test.csv")).expect("cache/stsb");
    let scored: HashSet<&str> = pairs
        .iter()
        .flat_map(|p| [p.a.as_str(), p.b.as_str()])
        .collect();
    let calib: Vec<String> =
        sts::sentences(&sts::read(&root.join("cache/stsb/sts-train.csv")).unwrap())
            .into_iter()
            .filter(|s| !scored.contains(s.as_str()))
            .take(512)
            .collect();

    let t = Instant::now();
    let float = float_score(&model, &pairs, &|| {}).unwrap();
    let float_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let cal = calibrate(&model, &calib, &|| {}).unwrap();
    let cfg = AccelConfig::preset("tiny").unwrap();
    let layers = compress(&model, &cal, &cfg, &CompressOptions::default(), &|| {}).unwrap();
    let prepare_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let (sd, _) = int_score(
        &model,
        &layers,
        &mut GoldenEngine::new(&cfg),
        &pairs,
        &|| {},
    )
    .unwrap();
    let golden_s = t.elapsed().as_secs_f64();
    let fp = footprint(&layers);

    println!(
        "sts: {} pairs: float {float:.4} ({float_s:.1} s); calibration + compression {prepare_s:.1} s; \
         SmartDeal int8 on golden {sd:.4} ({golden_s:.1} s, target 120 s); {:.2} bits per weight",
        pairs.len(),
        fp.bits_per_weight
    );
    let json = serde_json::json!({
        "format_version": 1,
        "benchmark": "sts",
        "pairs": pairs.len(),
        "float_spearman": float,
        "float_seconds": float_s,
        "calibration_and_compression_seconds": prepare_s,
        "smartdeal_spearman": sd,
        "golden_seconds": golden_s,
        "golden_target_seconds": 120.0,
        "golden_target_met": golden_s <= 120.0,
        "bits_per_weight": fp.bits_per_weight,
        "threads": std::thread::available_parallelism().map_or(1, |n| n.get()),
    });
    let dir = root.join("target/bench");
    std::fs::create_dir_all(&dir).expect("create target/bench");
    let path = dir.join("sts.json");
    std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap() + "\n").expect("write");
    println!("wrote {}", path.display());
}
