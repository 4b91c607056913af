//! `smartdeal eval sts`: a smoke run on a few pairs (the whole test set is a documented command,
//! not a test) and malformed inputs as one-line errors.

mod common;

use common::{fails, ok, p, read_json};
use std::path::{Path, PathBuf};

fn minilm() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("cache/minilm")
}

/// A few STS-B-format lines, the scored pairs disjoint from the calibration sentences.
fn write_sts(dir: &Path) -> (PathBuf, PathBuf) {
    let data = dir.join("pairs.csv");
    std::fs::write(
        &data,
        "g\tf\ty\t1\t5.0\tA man is playing a guitar.\tA man plays the guitar.\n\
         g\tf\ty\t2\t0.2\tA woman slices an onion.\tThe stock market fell today.\n\
         g\tf\ty\t3\t3.0\tKids are playing football.\tChildren play soccer outside.\n\
         g\tf\ty\t4\t1.0\tA dog runs on the beach.\tA cat sleeps on a sofa.\n",
    )
    .unwrap();
    let calib = dir.join("calib.csv");
    std::fs::write(
        &calib,
        "g\tf\ty\t1\t2.0\tA man is playing a guitar.\tA plane is taking off.\n\
         g\tf\ty\t2\t4.0\tTwo birds sit on a wire.\tBirds are sitting on a line.\n",
    )
    .unwrap();
    (data, calib)
}

#[test]
fn eval_sts_scores_a_small_file_and_writes_json() {
    let dir = tempfile::tempdir().unwrap();
    let (data, calib) = write_sts(dir.path());
    let json = dir.path().join("r.json");
    let out = ok(
        &[
            "eval",
            "sts",
            "--model-dir",
            p(&minilm()),
            "--data",
            p(&data),
            "--calib",
            p(&calib),
            "--json",
            p(&json),
        ],
        dir.path(),
    );
    assert!(out.starts_with("sts: 4 pairs"), "{out}");
    let r = read_json(&json);
    assert_eq!(r["pairs"], 4);
    let f = r["float"]["spearman"].as_f64().unwrap();
    let s = r["smartdeal"]["spearman"].as_f64().unwrap();
    // Four pairs whose gold order is obvious to any sentence model.
    assert!(f > 0.7, "float {f}");
    assert!(s > 0.7, "smartdeal {s}");
    // The calibration skipped the one sentence shared with the scored pairs: 3 remain.
    assert_eq!(r["smartdeal"]["calibration_sentences"], 3);
    let bpw = r["smartdeal"]["bits_per_weight"].as_f64().unwrap();
    assert!(bpw > 1.0 && bpw < 8.0, "{bpw}");
    assert_eq!(
        r["smartdeal"]["weights"],
        6 * (4 * 384 * 384 + 2 * 384 * 1536)
    );
}

#[test]
fn eval_sts_malformed_inputs_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (data, calib) = write_sts(d);
    let run = |model: &Path, data: &Path, needles: &[&str]| {
        fails(
            &[
                "eval",
                "sts",
                "--model-dir",
                p(model),
                "--data",
                p(data),
                "--calib",
                p(&calib),
            ],
            d,
            needles,
        );
    };
    // A model folder without its tokenizer.
    let m = d.join("no_tok");
    std::fs::create_dir(&m).unwrap();
    std::fs::copy(minilm().join("config.json"), m.join("config.json")).unwrap();
    run(&m, &data, &["tokenizer.json"]);
    // Weights with a NaN, and weights of another layout.
    std::fs::copy(minilm().join("tokenizer.json"), m.join("tokenizer.json")).unwrap();
    let st = |name: &str, v: f32| {
        let bytes: Vec<u8> = [v, 1.0].iter().flat_map(|x| x.to_le_bytes()).collect();
        let view =
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2], &bytes).unwrap();
        safetensors::serialize([(name, view)], &None).unwrap()
    };
    std::fs::write(m.join("model.safetensors"), st("fc.weight", f32::NAN)).unwrap();
    run(&m, &data, &["NaN"]);
    std::fs::write(m.join("model.safetensors"), st("fc.weight", 0.5)).unwrap();
    run(&m, &data, &["not a BERT encoder"]);
    // Data that is not in the STS-B format.
    let bad = d.join("bad.csv");
    std::fs::write(&bad, "just one column\n").unwrap();
    run(&minilm(), &bad, &["line 1", "columns"]);
    run(&minilm(), &d.join("missing.csv"), &["missing.csv"]);
}
