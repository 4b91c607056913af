//! The generated Verilog as the tools see it: `verilator --lint-only -Wall` clean for every
//! preset and for random valid configurations, and Yosys `synth_ice40` without latches and with
//! the buffers in block RAM.

use smartdeal_core::params::PRESETS;
use smartdeal_core::AccelConfig;
use smartdeal_gen::{generate, GenOptions};
use smartdeal_verif::strategies::{random_config, test_seed};
use std::path::{Path, PathBuf};
use std::process::Command;

fn tool(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_string())
}

/// Writes the design for `cfg` into `dir` and returns its files (top last).
fn write(cfg: &AccelConfig, dir: &Path) -> Vec<PathBuf> {
    generate(cfg, &GenOptions::default())
        .write(dir)
        .expect("write the generated Verilog")
}

fn lint(cfg: &AccelConfig) {
    let dir = tempfile::tempdir().unwrap();
    let files = write(cfg, dir.path());
    let out = Command::new(tool("VERILATOR", "verilator"))
        // No waiver file: the generated code needs none.
        .args(["--lint-only", "-Wall", "--top-module", "sd_top"])
        .args(&files)
        .output()
        .expect("run verilator (install it with scripts/setup.sh, or set VERILATOR)");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !log.contains("%Warning") && !log.contains("%Error"),
        "verilator -Wall on config {}:\n{log}\n{}",
        cfg.name,
        cfg.to_toml()
    );
}

#[test]
fn every_preset_lints_clean_with_verilator_wall() {
    for p in PRESETS {
        lint(&AccelConfig::preset(p).unwrap());
    }
}

#[test]
fn random_configs_lint_clean_with_verilator_wall() {
    for slot in 0..24 {
        lint(&random_config(test_seed(), 100 + slot));
    }
}

/// The lint check itself can fail: a width mismatch is reported.
#[test]
fn lint_reports_a_width_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.v");
    std::fs::write(
        &f,
        "module bad (input wire [7:0] a_i, output wire [3:0] y_o);\n  assign y_o = a_i;\nendmodule\n",
    )
    .unwrap();
    let out = Command::new(tool("VERILATOR", "verilator"))
        .args(["--lint-only", "-Wall"])
        .arg(&f)
        .output()
        .expect("run verilator");
    assert!(String::from_utf8_lossy(&out.stderr).contains("WIDTH"));
}

/// Yosys cell counts from `stat` (the flattened top), or the tail of the log when Yosys fails
/// (a latch fails the `select -assert-none`).
/// With `map = false` only elaboration, `proc` and the latch check run (seconds, any size).
fn synth_ice40(
    files: &[PathBuf],
    work: &Path,
    map: bool,
) -> Result<std::collections::BTreeMap<String, u64>, String> {
    let list: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let stat = work.join("stat.txt");
    let mapping = if map {
        "synth_ice40 -top sd_top; select -assert-none t:$_DLATCH_*;"
    } else {
        ""
    };
    let script = format!(
        "read_verilog {}; hierarchy -check -top sd_top; proc; \
         select -assert-none t:$dlatch t:$adlatch t:$dlatchsr t:$sr; {mapping} \
         tee -q -o {} stat",
        list.join(" "),
        stat.display()
    );
    let out = Command::new(tool("YOSYS", "yosys"))
        .args(["-q", "-l"])
        .arg(work.join("yosys.log"))
        .args(["-p", &script])
        .output()
        .expect("run yosys (install it with scripts/setup.sh, or set YOSYS)");
    let log = std::fs::read_to_string(work.join("yosys.log")).unwrap_or_default();
    if !out.status.success() {
        return Err(format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            log.lines().rev().take(20).collect::<Vec<_>>().join("\n")
        ));
    }
    let text = std::fs::read_to_string(stat).unwrap();
    Ok(text
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let (name, n) = (it.next()?, it.next()?);
            (name.starts_with("SB_") || name.starts_with('$'))
                .then(|| Some((name.to_string(), n.parse().ok()?)))
                .flatten()
        })
        .collect())
}

#[test]
fn every_preset_and_random_config_is_latch_free() {
    let cfgs = PRESETS
        .iter()
        .map(|p| AccelConfig::preset(p).unwrap())
        .chain((0..4).map(|i| random_config(test_seed(), 200 + i)));
    for cfg in cfgs {
        let dir = tempfile::tempdir().unwrap();
        let files = write(&cfg, dir.path());
        synth_ice40(&files, dir.path(), false).unwrap_or_else(|e| panic!("{}: {e}", cfg.name));
    }
}

/// Full iCE40 synthesis of the two small presets (ulx3s is an ECP5 design: the FPGA issue
/// synthesizes it with synth_ecp5).
#[test]
fn presets_synthesize_for_ice40_without_latches_and_with_block_ram() {
    for p in ["tiny", "icebreaker"] {
        let cfg = AccelConfig::preset(p).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let files = write(&cfg, dir.path());
        let cells = synth_ice40(&files, dir.path(), true).unwrap_or_else(|e| panic!("{p}: {e}"));
        let brams = cells.get("SB_RAM40_4K").copied().unwrap_or(0);
        assert!(brams > 0, "{p}: no block RAM inferred: {cells:?}");
        assert!(
            !cells
                .keys()
                .any(|c| c.contains("LATCH") || c.contains("DFFL")),
            "{p}: latches: {cells:?}"
        );
        eprintln!("{p}: {cells:?}");
    }
}

/// The latch check can fail: an incomplete `always @*` assignment is caught.
#[test]
fn synth_check_catches_a_latch() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("sd_top.v");
    std::fs::write(
        &f,
        "module sd_top (input wire en_i, input wire d_i, output reg q_o);\n  \
         always @* if (en_i) q_o = d_i;\nendmodule\n",
    )
    .unwrap();
    let err = synth_ice40(&[f], dir.path(), false).expect_err("a latch must fail the check");
    assert!(
        err.contains("Assertion failed") && err.contains("dlatch"),
        "{err}"
    );
}
