//! `smartdeal finetune`: a smoke run on the MNIST CNN (the full runs are documented commands,
//! docs/finetune.md), resuming from its checkpoints, and malformed options as one-line errors.

mod common;

use common::{fails, fails_after_notes, ok, p, read_json};
use std::path::{Path, PathBuf};

fn mnist_cache() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("cache/mnist")
}

fn smoke_args(out: &Path) -> Vec<String> {
    let c = mnist_cache();
    [
        "finetune",
        "mnist",
        "--teacher",
        p(&c.join("mnist.pth")),
        "--data",
        p(&c.join("digits")),
        "--calib-per-digit",
        "5",
        "--limit",
        "20",
        "--masked-steps",
        "3",
        "--steps",
        "2",
        "--batch",
        "8",
        "--budget",
        "layer",
        "--layer-density",
        "features.0=1",
        "--out",
        p(out),
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn finetune_mnist_smoke_run_writes_the_model_log_and_result_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ft");
    let args = smoke_args(&out);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let text = ok(&argv, dir.path());
    assert!(text.starts_with("finetune mnist: 20 test digits"), "{text}");
    let r = read_json(&out.join("result.json"));
    assert_eq!(r["method"], "finetuned");
    assert_eq!(r["task"], "mnist");
    let density = r["row_density"].as_f64().unwrap();
    assert!(density > 0.49 && density < 0.52, "{density}");
    let score = r["score"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&score));
    assert!(r["peak_memory_bytes"].as_u64().unwrap() > 1 << 20);
    let log = std::fs::read_to_string(out.join("loss.csv")).unwrap();
    assert_eq!(log.lines().count(), 1 + 3 + 2, "{log}");
    assert!(log.lines().nth(1).unwrap().starts_with("masked,0,"));
    let model = std::fs::read(out.join("model.sdm")).unwrap();
    let shown = ok(&["inspect", p(&out.join("model.sdm"))], dir.path());
    for layer in ["features.0", "features.3", "classifier.0", "classifier.2"] {
        assert!(shown.contains(layer), "{shown}");
    }

    // Resumed: both phases are finished in the checkpoints, so nothing is trained again and
    // the same model comes out.
    let mut resumed = argv.clone();
    resumed.push("--resume");
    ok(&resumed, dir.path());
    assert_eq!(std::fs::read_to_string(out.join("loss.csv")).unwrap(), log);
    assert_eq!(std::fs::read(out.join("model.sdm")).unwrap(), model);

    // Resumed with another density: the checkpoints' masks are not these; refused.
    resumed.extend(["--row-density", "0.4"]);
    fails_after_notes(&resumed, dir.path(), &["other settings", "--resume"]);
}

#[test]
fn finetune_malformed_options_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ft");
    let base = smoke_args(&out);
    let run = |extra: &[&str], needles: &[&str]| {
        let mut argv: Vec<&str> = base.iter().map(String::as_str).collect();
        argv.extend_from_slice(extra);
        fails(&argv, dir.path(), needles);
    };
    run(
        &["--row-density", "0"],
        &["--row-density must be in (0, 1]"],
    );
    run(&["--row-density", "1.5"], &["--row-density"]);
    run(
        &["--layer-density", "conv9=0.5"],
        &["no compressed layer `conv9`", "features.3"],
    );
    run(&["--layer-density", "features.3"], &["expected NAME=D"]);
    run(&["--layer-density", "features.3=2"], &["(0, 1]"]);
    run(&["--batch", "0"], &["--batch"]);
    run(&["--objective", "cosine"], &["cosine"]);
    run(&["--exp-bits", "7"], &["--exp-bits 7", "exp_bits"]);
    run(&["--lr", "nan"], &["--lr must be a non-negative number"]);
    fails(
        &["finetune", "mnist", "--layer-density", "features.3=0.5"],
        dir.path(),
        &["--layer-density needs --budget layer"],
    );
    fails(
        &["finetune", "mnist", "--teacher", "/nonexistent.pth"],
        dir.path(),
        &["cannot load the teacher", "/nonexistent.pth"],
    );
    fails(
        &["finetune", "sts", "--teacher", "/nonexistent-dir"],
        dir.path(),
        &["cannot load the teacher", "/nonexistent-dir"],
    );
}
