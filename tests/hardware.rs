//! The generated Verilog as the tools see it (through the `smartdeal-fpga` drivers, whose own
//! tests show that each check can fail): `verilator --lint-only -Wall` clean for every preset and
//! for random valid configurations, latch-free with no multiple drivers, and Yosys `synth_ice40`
//! without latches and with the buffers in block RAM.

use smartdeal_core::params::PRESETS;
use smartdeal_core::AccelConfig;
use smartdeal_gen::{generate, GenOptions};
use smartdeal_golden::strategies::{
    factorized, random_config, random_factorized_config, test_seed,
};
use std::path::{Path, PathBuf};

/// Writes the design for `cfg` into `dir` and returns its files: the simulation models of the
/// vendor primitives it instantiates (`mac_mul = "mult18x18d"`), then the modules, top last.
fn write(cfg: &AccelConfig, dir: &Path) -> Vec<PathBuf> {
    generate(cfg, &GenOptions::default())
        .write_for_simulation(dir)
        .expect("write the generated Verilog")
}

fn lint_clean(cfg: &AccelConfig) {
    let dir = tempfile::tempdir().unwrap();
    let files = write(cfg, &dir.path().join("rtl"));
    // No waiver file: the generated code needs none.
    let r = smartdeal_fpga::lint(&files, "sd_top", None, &dir.path().join("lint"))
        .expect("run verilator (install it with scripts/setup.sh)");
    assert!(
        r.passed(),
        "verilator -Wall on config {}:\n{}\n{}",
        cfg.name,
        r.summary(),
        cfg.to_toml()
    );
}

#[test]
fn every_preset_and_its_dense_baseline_lints_clean_with_verilator_wall() {
    for p in PRESETS {
        let cfg = AccelConfig::preset(p).unwrap();
        lint_clean(&cfg);
        lint_clean(&cfg.dense_baseline());
    }
}

#[test]
fn random_configs_lint_clean_with_verilator_wall() {
    for slot in 0..24 {
        let cfg = random_config(test_seed(), 100 + slot);
        if slot % 4 == 0 {
            lint_clean(&cfg.dense_baseline());
        }
        lint_clean(&cfg);
    }
}

/// The factorized dataflow's design (`sd_factor_lane`, `sd_factor_row`, the controller's flush)
/// for every preset made factorized and random factorized configurations.
#[test]
fn factorized_configs_lint_clean_with_verilator_wall() {
    for p in PRESETS {
        let mut cfg = AccelConfig::preset(p).unwrap();
        assert!(factorized(&mut cfg), "{p}");
        lint_clean(&cfg);
    }
    for slot in 0..6 {
        lint_clean(&random_factorized_config(test_seed(), 300 + slot));
    }
}

#[test]
fn every_preset_and_random_config_is_latch_free_with_single_drivers() {
    let cfgs = PRESETS
        .iter()
        .map(|p| AccelConfig::preset(p).unwrap())
        .flat_map(|c| [c.dense_baseline(), c])
        .chain((0..4).map(|i| random_config(test_seed(), 200 + i)));
    for cfg in cfgs {
        let dir = tempfile::tempdir().unwrap();
        let files = write(&cfg, &dir.path().join("rtl"));
        let r = smartdeal_fpga::synth_generic_check(&files, "sd_top", &dir.path().join("yosys"))
            .expect("run yosys (install it with scripts/setup.sh)");
        assert!(r.passed(), "{}: {r:?}", cfg.name);
    }
}

/// Full iCE40 synthesis of every preset: no latches, buffers in block RAM. (ulx3s targets an
/// ECP5 and does not fit an iCE40, but `synth_ice40` still maps all its logic, which is what the
/// latch check needs; it has its own test so it runs beside the small ones.)
#[test]
fn small_presets_synthesize_for_ice40_without_latches_and_with_block_ram() {
    synth_presets(&["tiny", "icebreaker"]);
}

#[test]
fn ulx3s_preset_synthesizes_for_ice40_without_latches_and_with_block_ram() {
    synth_presets(&["ulx3s"]);
}

fn synth_presets(presets: &[&str]) {
    for &p in presets {
        let cfg = AccelConfig::preset(p).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let files = write(&cfg, &dir.path().join("rtl"));
        let opts = smartdeal_fpga::synth::Ice40Options {
            spram: cfg.single_port_buffers,
            ..Default::default()
        };
        let r =
            smartdeal_fpga::synth_ice40_with(&files, "sd_top", &dir.path().join("synth"), &opts)
                .expect("run yosys");
        assert_eq!(r.latch_count, 0, "{p}: latches {:?}", r.latch_cells);
        assert!(
            r.block_rams() > 0,
            "{p}: no block RAM inferred: {:?}",
            r.cells
        );
        if cfg.single_port_buffers {
            assert!(
                r.cells.get("SB_SPRAM256KA").copied().unwrap_or(0) > 0,
                "{p}: single-port buffers but no SPRAM: {:?}",
                r.cells
            );
        }
        eprintln!(
            "{p}: {} SB_LUT4, {} flip-flops, {} SB_RAM40_4K",
            r.luts(),
            r.flip_flops(),
            r.block_rams()
        );
    }
}
