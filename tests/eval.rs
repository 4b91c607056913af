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

fn mnist_cache() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("cache/mnist")
}

/// A data folder with the first `per_digit` images of every digit file of the cache.
fn write_digits(dir: &Path, per_digit: usize) -> PathBuf {
    let out = dir.join("digits");
    std::fs::create_dir_all(&out).unwrap();
    for d in 0..10 {
        let src = mnist_cache().join(format!("digits/{d}.json"));
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(src).unwrap()).unwrap();
        let px = &v["data"].as_array().unwrap()[..per_digit * 784];
        let text = serde_json::json!({ "data": px }).to_string();
        std::fs::write(out.join(format!("{d}.json")), text).unwrap();
    }
    out
}

#[test]
fn eval_mnist_scores_a_small_folder_and_writes_json() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_digits(dir.path(), 4);
    let json = dir.path().join("r.json");
    let weights = mnist_cache().join("mnist.pth");
    let out = ok(
        &[
            "eval",
            "mnist",
            "--weights",
            p(&weights),
            "--data",
            p(&data),
            "--calib-per-digit",
            "2",
            "--batch",
            "7",
            "--json",
            p(&json),
        ],
        dir.path(),
    );
    assert!(out.starts_with("mnist: 20 test digits"), "{out}");
    for row in ["float", "dense int8", "SmartDeal int8"] {
        assert!(out.lines().any(|l| l.starts_with(row)), "{out}");
    }
    let r = read_json(&json);
    assert_eq!(r["images"], 40);
    assert_eq!(r["calibration_images"], 20);
    assert_eq!(r["test_images"], 20);
    for m in ["float", "dense_int8", "smartdeal_int8"] {
        // Twenty clean training digits: a 99 % model gets (nearly) all of them.
        let top1 = r[m]["top1"].as_f64().unwrap();
        assert!(top1 >= 0.9, "{m}: top-1 {top1}");
        let agree = r[m]["agreement"].as_f64().unwrap();
        assert!(agree >= 0.9, "{m}: agreement {agree}");
        assert_eq!(
            r[m]["weights"],
            32 * 9 + 64 * 32 * 9 + 3136 * 128 + 128 * 10
        );
    }
    assert_eq!(r["float"]["bits_per_weight"], 32.0);
    assert_eq!(r["dense_int8"]["bits_per_weight"], 8.0);
    assert_eq!(r["dense_int8"]["config"], "tiny-dense");
    let bpw = r["smartdeal_int8"]["bits_per_weight"].as_f64().unwrap();
    assert!(bpw > 1.0 && bpw < 8.0, "{bpw}");
    assert_eq!(r["smartdeal_int8"]["engine"], "golden");
}

#[test]
fn eval_mnist_output_objective_at_a_row_density() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_digits(dir.path(), 4);
    let json = dir.path().join("r.json");
    let weights = mnist_cache().join("mnist.pth");
    let args = |extra: &[&'static str]| {
        let mut a = vec![
            "eval",
            "mnist",
            "--weights",
            p(&weights),
            "--data",
            p(&data),
            "--calib-per-digit",
            "2",
            "--json",
            p(&json),
        ];
        a.extend(extra);
        a
    };
    ok(
        &args(&["--objective", "output", "--row-density", "0.5"]),
        dir.path(),
    );
    let r = read_json(&json);
    assert_eq!(r["objective"], "output");
    assert_eq!(r["prune_ratio"], 0.5);
    let sd = &r["smartdeal_int8"];
    // Half of every group's rows pruned (the first convolution's 3 rows: 2 of them).
    let density = sd["row_density"].as_f64().unwrap();
    assert!((0.45..=0.5).contains(&density), "{density}");
    assert!(sd["top1"].as_f64().unwrap() >= 0.5, "{sd}");
    // One budget for the network keeps the first convolution's three kernel rows, which the
    // same ratio in every layer takes all of at R = 0.7 (ceil(2.1) = 3): 10 % (one class for
    // every digit) against a working network.
    let top1 = |budget: &'static str| -> f64 {
        ok(
            &args(&[
                "--objective",
                "output",
                "--row-density",
                "0.3",
                "--budget",
                budget,
            ]),
            dir.path(),
        );
        let r = read_json(&json);
        assert_eq!(r["budget"], budget);
        let density = r["smartdeal_int8"]["row_density"].as_f64().unwrap();
        assert!((0.28..=0.301).contains(&density), "{density}");
        r["smartdeal_int8"]["top1"].as_f64().unwrap()
    };
    assert!(top1("layer") <= 0.15);
    assert!(top1("global") >= 0.8);
    fails(
        &args(&["--row-density", "0.5", "--prune-ratio", "0.5"]),
        dir.path(),
        &["--prune-ratio", "--row-density"],
    );
    fails(
        &args(&["--row-density", "0"]),
        dir.path(),
        &["--row-density"],
    );
    fails(
        &args(&["--objective", "outputs"]),
        dir.path(),
        &["outputs", "weight"],
    );
}

/// `mnist.pth` rewritten: every entry through `edit(name, bytes)`.
fn rewrite_pth(to: &Path, edit: impl Fn(&str, Vec<u8>) -> Vec<u8>) {
    use std::io::{Read, Write};
    let src = std::fs::File::open(mnist_cache().join("mnist.pth")).unwrap();
    let mut z = zip::ZipArchive::new(src).unwrap();
    let mut w = zip::ZipWriter::new(std::fs::File::create(to).unwrap());
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for i in 0..z.len() {
        let mut f = z.by_index(i).unwrap();
        let name = f.name().unwrap().to_string();
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).unwrap();
        w.start_file(name.as_str(), opts).unwrap();
        w.write_all(&edit(&name, bytes)).unwrap();
    }
    w.finish().unwrap();
}

/// `bytes` with every `from` replaced by `to` (same length).
fn replace(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let mut i = 0;
    while i + from.len() <= out.len() {
        if &out[i..i + from.len()] == from {
            out[i..i + from.len()].copy_from_slice(to);
        }
        i += 1;
    }
    out
}

#[test]
fn eval_mnist_malformed_inputs_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = write_digits(d, 2);
    let run = |weights: &Path, data: &Path, needles: &[&str]| {
        fails(
            &[
                "eval",
                "mnist",
                "--weights",
                p(weights),
                "--data",
                p(data),
                "--calib-per-digit",
                "1",
            ],
            d,
            needles,
        );
    };
    let good = mnist_cache().join("mnist.pth");
    // A state dict with a renamed layer, one with NaN weights, a file that is no .pth, none.
    let renamed = d.join("renamed.pth");
    rewrite_pth(&renamed, |name, b| {
        if name.ends_with("data.pkl") {
            replace(&b, b"features.3", b"features.4")
        } else {
            b
        }
    });
    run(&renamed, &data, &["features.3", "unknown model layout"]);
    let nan = d.join("nan.pth");
    rewrite_pth(&nan, |name, b| {
        if name.contains("/data/") {
            f32::NAN.to_le_bytes().repeat(b.len() / 4)
        } else {
            b
        }
    });
    run(&nan, &data, &["NaN"]);
    let text = d.join("text.pth");
    std::fs::write(&text, "not a zip").unwrap();
    run(&text, &data, &["text.pth", "not a PyTorch state dict"]);
    run(&d.join("missing.pth"), &data, &["missing.pth"]);
    // A digit file whose pixel count is not a multiple of 784, and a missing data folder.
    let bad = d.join("bad");
    std::fs::create_dir(&bad).unwrap();
    for f in 0..10 {
        let from = data.join(format!("{f}.json"));
        std::fs::copy(from, bad.join(format!("{f}.json"))).unwrap();
    }
    std::fs::write(bad.join("7.json"), r#"{"data": [0, 0.5, 1]}"#).unwrap();
    run(&good, &bad, &["7.json", "wrong image size"]);
    run(
        &good,
        &d.join("nowhere"),
        &["nowhere", "no such data folder"],
    );
}
