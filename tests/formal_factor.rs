//! Formal equivalence of the factorized dataflow's generated per-row update `sd_factor_row`
//! (`acc[k][j] += Ce[k] · x[j]` by shifts, folded negation and adds; docs/numerics.md §4b)
//! against the hand-written multiplier reference `hdl/formal/sd_factor_row_ref.v`, with Yosys and
//! its ABC, for every input:
//! * at small widths (4-bit activations, 2-bit codes) in one proof of the whole miter
//!   (`smartdeal_fpga::prove_equiv`);
//! * at every preset's widths made factorized (8-bit activations, 3-bit codes, the preset's
//!   block accumulator width) by a case split on the three exponent codes, 512 cases each
//!   (`smartdeal_fpga::prove_factor_row`), checked complete here.
//!
//! A generator that drops one negation carry (`Fault::FactorDropCarry`) is refuted by both.

use smartdeal_core::params::PRESETS;
use smartdeal_core::AccelConfig;
use smartdeal_fpga::{
    prove_equiv, prove_factor_row, FactorLayout, ProofResult, SplitField, SplitOptions, SplitReport,
};
use smartdeal_gen::design::generator_id;
use smartdeal_gen::hw::factor_row;
use smartdeal_gen::ir::emit;
use smartdeal_gen::Fault;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn reference() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("hdl/formal/sd_factor_row_ref.v")
}

/// `cfg` made factorized (`AccelConfig::on_factorized_dataflow`), validated.
fn factorized(cfg: AccelConfig) -> AccelConfig {
    let cfg = cfg.on_factorized_dataflow();
    cfg.validate().unwrap();
    cfg
}

/// The generated per-row update of `cfg` under `dir`: `sd_factor_term.v`, `sd_factor_add.v`
/// (the two halves the lane instantiates) and their composition `sd_factor_row.v`.
fn write_row(cfg: &AccelConfig, fault: Option<Fault>, dir: &Path) -> Vec<PathBuf> {
    factor_row::proof_modules(cfg, fault)
        .iter()
        .map(|m| {
            let path = dir.join(format!("{}.v", m.name));
            std::fs::write(&path, emit::module(m, &generator_id())).unwrap();
            path
        })
        .collect()
}

fn layout(cfg: &AccelConfig) -> FactorLayout {
    FactorLayout::new(
        cfg.act_bits as usize,
        cfg.exp_bits as usize,
        cfg.factor_acc_bits() as usize,
    )
    .unwrap()
}

fn prove_whole(cfg: &AccelConfig, fault: Option<Fault>) -> ProofResult {
    let dir = tempfile::tempdir().unwrap();
    let dut = write_row(cfg, fault, dir.path());
    prove_equiv(
        &dut,
        "sd_factor_row",
        &[reference()],
        "sd_factor_row_ref",
        &layout(cfg).ref_params(),
        &dir.path().join("proof"),
    )
    .unwrap_or_else(|e| panic!("config {}: the proof did not run: {e}", cfg.name))
}

/// The case split of `cfg`, checked complete: exactly the three code fields of the `ce_i`
/// layout, and every code triple once.
fn prove_by_cases(cfg: &AccelConfig, fault: Option<Fault>) -> SplitReport {
    let l = layout(cfg);
    let split = l.code_split();
    let e = cfg.coef_elem_bits() as usize;
    let eb = cfg.exp_bits as usize;
    let expected: Vec<SplitField> = (0..3)
        .map(|k| SplitField::new("ce_i", k * e + 2, eb))
        .collect();
    assert_eq!(split.fields(), &expected[..]);
    let cases: Vec<_> = split.cases().collect();
    assert_eq!(cases.len(), 1 << (3 * eb));
    split.check_complete(&cases).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dut = write_row(cfg, fault, dir.path());
    let opts = SplitOptions {
        timeout: Some(Duration::from_secs(600)),
        ..l.split_options()
    };
    let r = prove_factor_row(&dut, &reference(), &l, &dir.path().join("proof"), &opts)
        .unwrap_or_else(|e| panic!("config {}: the proof did not run: {e}", cfg.name));
    eprintln!(
        "{} (WA = {}){}: {:?}; {} cases ({} proved), case CPU max {:.2} s / sum {:.1} s, {:.1} s wall",
        cfg.name,
        cfg.factor_acc_bits(),
        if fault.is_some() { ", dropped carry" } else { "" },
        r.result,
        r.cases,
        r.proved_cases,
        r.case_secs_max,
        r.case_secs_total,
        r.elapsed_secs
    );
    r
}

fn small_config() -> AccelConfig {
    let mut cfg = AccelConfig::preset("tiny").unwrap();
    cfg.name = "formal_factor_4_2".into();
    cfg.act_bits = 4;
    cfg.exp_bits = 2;
    cfg.act_depth = 16;
    factorized(cfg)
}

#[test]
fn factor_row_equals_the_multiplier_reference_4bit_x_2bit_codes() {
    let cfg = small_config();
    assert_eq!(cfg.factor_acc_bits(), 4 + 4 + 3 + 1);
    assert_eq!(prove_whole(&cfg, None), ProofResult::Proved);
}

/// The check can fail: the whole-miter proof refutes a dropped negation carry.
#[test]
fn factor_row_with_a_dropped_carry_is_refuted_4bit_x_2bit_codes() {
    match prove_whole(&small_config(), Some(Fault::FactorDropCarry)) {
        ProofResult::Failed { counterexample } => {
            assert!(counterexample.contains("ce_i"), "{counterexample}")
        }
        ProofResult::Proved => panic!("the broken per-row update was proved"),
    }
}

/// ... and so does the case split at the presets' widths, naming the refuted case.
#[test]
fn factor_row_with_a_dropped_carry_is_refuted_at_preset_widths() {
    let cfg = factorized(AccelConfig::preset("tiny").unwrap());
    let r = prove_by_cases(&cfg, Some(Fault::FactorDropCarry));
    match &r.result {
        ProofResult::Failed { counterexample } => {
            assert!(
                counterexample.starts_with("case ") && counterexample.contains(" of 512 "),
                "{counterexample}"
            );
            assert!(counterexample.contains("in_x_i"), "{counterexample}");
        }
        ProofResult::Proved => panic!("the broken per-row update was proved"),
    }
    assert!(!r.failed_cases.is_empty());
}

/// Every preset made factorized: each distinct width triple (the block accumulator width
/// follows the buffer depths) is proved once, and every preset maps to a proved one.
#[test]
fn every_preset_factor_row_equals_the_multiplier_reference() {
    let mut by_layout: BTreeMap<(u32, u32, u32), Vec<AccelConfig>> = BTreeMap::new();
    for p in PRESETS {
        let cfg = factorized(AccelConfig::preset(p).unwrap());
        let key = (cfg.act_bits, cfg.exp_bits, cfg.factor_acc_bits());
        by_layout.entry(key).or_default().push(cfg);
    }
    let mut proved = Vec::new();
    for cfgs in by_layout.values() {
        let r = prove_by_cases(&cfgs[0], None);
        assert_eq!(r.result, ProofResult::Proved, "{}", cfgs[0].name);
        assert_eq!(r.proved_cases, r.cases);
        proved.extend(cfgs.iter().map(|c| c.name.clone()));
    }
    for p in PRESETS {
        assert!(proved.iter().any(|n| n == p), "preset {p} not proved");
    }
}
