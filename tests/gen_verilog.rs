//! `gen-verilog`: output folder contents, determinism, committed snapshots, errors.

use smartdeal_core::params::PRESETS;
use smartdeal_core::AccelConfig;
use smartdeal_gen::{generate, GenOptions};
use std::path::{Path, PathBuf};
use std::process::Command;

fn gen_verilog(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_gen-verilog"))
        .args(args)
        .output()
        .expect("run gen-verilog")
}

/// Every file under `dir` (with the simulation models in `sim/`) as `(relative path, bytes)`.
fn read_dir_sorted(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if e.path().is_dir() {
            for (n, bytes) in read_dir_sorted(&e.path()) {
                v.push((format!("{name}/{n}"), bytes));
            }
        } else {
            v.push((name, std::fs::read(e.path()).unwrap()));
        }
    }
    v.sort();
    v
}

#[test]
fn writes_one_file_per_module_params_json_and_a_file_list() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tiny");
    let o = gen_verilog(&["--preset", "tiny", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let list = std::fs::read_to_string(out.join("files.f")).unwrap();
    let files: Vec<&str> = list.lines().collect();
    assert_eq!(files.last(), Some(&"sd_top.v"), "top last");
    for f in &files {
        let text = std::fs::read_to_string(out.join(f)).unwrap();
        let module = f.trim_end_matches(".v");
        // One module per file, named after the file, with a header naming the config.
        assert_eq!(text.matches("\nmodule ").count(), 1, "{f}");
        assert!(text.contains(&format!("\nmodule {module} (")), "{f}");
        assert!(text.contains("// Config: tiny [fingerprint"), "{f}");
    }
    let params: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("params.json")).unwrap()).unwrap();
    let cfg = AccelConfig::preset("tiny").unwrap();
    assert_eq!(params["config"]["lanes"], 4);
    assert_eq!(params["derived"]["rebuild_bits"], cfg.rebuild_bits());
    assert_eq!(params["top"], "sd_top");
}

#[test]
fn generation_is_deterministic() {
    for p in PRESETS {
        let cfg = AccelConfig::preset(p).unwrap();
        let a = generate(&cfg, &GenOptions::default());
        let b = generate(&cfg, &GenOptions::default());
        assert_eq!(a.files, b.files, "{p}");
        assert_eq!(a.params_json, b.params_json, "{p}");
    }
}

/// The generated Verilog of every preset is committed under hdl/generated/ (for review and
/// diffs); this fails when the generator's output changes without the snapshot being updated.
#[test]
fn committed_snapshots_match_the_generator() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    for p in PRESETS {
        let out = dir.path().join(p);
        let o = gen_verilog(&["--preset", p, "--out", out.to_str().unwrap()]);
        assert!(o.status.success());
        let snap = root.join("hdl/generated").join(p);
        assert!(
            read_dir_sorted(&out) == read_dir_sorted(&snap),
            "hdl/generated/{p} is stale: run `cargo run --bin gen-verilog -- --preset {p} --out \
             hdl/generated/{p}` and commit the result"
        );
    }
}

#[test]
fn config_file_works_and_bad_configs_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = AccelConfig::preset("tiny").unwrap();
    cfg.lanes = 3;
    let good = dir.path().join("three.toml");
    std::fs::write(&good, cfg.to_toml()).unwrap();
    let out = dir.path().join("o");
    let o = gen_verilog(&[
        "--config",
        good.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let top = std::fs::read_to_string(out.join("sd_top.v")).unwrap();
    assert!(top.contains("lanes=3") && top.contains("u_lane2") && !top.contains("u_lane3"));

    for (text, needle) in [
        (cfg.to_toml().replace("lanes = 3", "lanes = 0"), "lanes"),
        (
            cfg.to_toml().replace("exp_bits = 3", "exp_bits = 7"),
            "exp_bits",
        ),
        (
            cfg.to_toml().replace("acc_bits = 32", "acc_bits = 18"),
            "acc_bits",
        ),
        (format!("{}\nwidth = 3\n", cfg.to_toml()), "width"),
        ("lanes = [".to_string(), "three.toml"),
    ] {
        let bad = dir.path().join("three.toml");
        std::fs::write(&bad, &text).unwrap();
        let o = gen_verilog(&[
            "--config",
            bad.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(
            err.contains(needle) && !err.contains("panicked"),
            "{needle}: {err}"
        );
    }
    let o = gen_verilog(&["--preset", "zcu104", "--out", out.to_str().unwrap()]);
    assert!(!o.status.success());
}
