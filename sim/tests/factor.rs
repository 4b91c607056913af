//! Co-simulation of the factorized dataflow (`dataflow = "factorized"`, docs/numerics.md §4b):
//! the generated Verilog (in Verilator) against its golden model `golden::factor`, bit for bit,
//! on random fully connected layers (densities 0–100 %, blocks of 1–64 rows, extreme exponents
//! and basis values, 1–3 tokens, input-tiled widths) and convolutions (band runs and 1×1), for
//! the presets made factorized and random factorized configurations; the RTL's cycle counter
//! against the documented cycle model; and a fault the co-simulation must catch.
//!
//! Seed: `SMARTDEAL_TEST_SEED`; fully connected cases per configuration:
//! `SMARTDEAL_FACTOR_CASES` (default 90: 6 configurations × 90 = 540 cases).

use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use smartdeal_core::random::{random_activations, random_layer, RandomLayerSpec};
use smartdeal_core::AccelConfig;
use smartdeal_gen::{Fault, GenOptions};
use smartdeal_golden::factor;
use smartdeal_golden::strategies::{
    conv_case, factorized, layer_case_up_to, random_factorized_config, test_seed, ConvCase,
    LayerCase,
};
use smartdeal_host::{Engine, GoldenEngine};
use smartdeal_sim::Accel;
use std::cell::RefCell;

fn cases() -> u32 {
    std::env::var("SMARTDEAL_FACTOR_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(90)
}

fn preset(name: &str) -> AccelConfig {
    let mut cfg = AccelConfig::preset(name).unwrap();
    cfg.name = format!("{name}-factorized");
    assert!(factorized(&mut cfg), "{name}");
    cfg
}

fn runner(cfg: &AccelConfig, cases: u32, salt: u64) -> TestRunner {
    TestRunner::new(Config {
        cases,
        rng_seed: RngSeed::Fixed(
            test_seed() ^ salt ^ u64::from_str_radix(&cfg.fingerprint(), 16).unwrap_or(0),
        ),
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct(
                "proptest-regressions/factor.txt",
            ),
        )),
        source_file: Some(file!()),
        ..Config::default()
    })
}

/// `cases()` random fully connected layers of up to `max_in` inputs on `cfg`: the RTL's outputs
/// equal `golden::factor::run_layer`'s, and its cycle count (`cycles_o`) the documented cycle
/// model's (the golden engine's dry run). Returns the outputs compared.
fn cosim_fc(cfg: &AccelConfig, max_in: u32) -> usize {
    eprintln!(
        "factor cosim {}: seed {}\n{}",
        cfg.name,
        test_seed(),
        cfg.to_toml()
    );
    let accel = RefCell::new(Accel::new(cfg, &Default::default()).expect("simulator"));
    let golden = RefCell::new(GoldenEngine::new(cfg));
    let outputs = RefCell::new(0usize);
    runner(cfg, cases(), 0xfac)
        .run(&layer_case_up_to(cfg, max_in), |case: LayerCase| {
            let (layer, x) = case.build(cfg);
            let want = factor::run_layer(cfg, &layer, &x);
            let mut a = accel.borrow_mut();
            a.reset();
            let (got, stats) = a
                .run_layer(&layer, &x)
                .map_err(|e| TestCaseError::fail(format!("{}: {e}", cfg.name)))?;
            if got != want {
                return Err(TestCaseError::fail(format!(
                    "{}: RTL != golden::factor\nRTL:    {got:?}\ngolden: {want:?}",
                    cfg.name
                )));
            }
            let (_, model) = golden
                .borrow_mut()
                .run_layer(&layer, &x)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            if (stats.run_cycles, stats.entries) != (model.run_cycles, model.entries) {
                return Err(TestCaseError::fail(format!(
                    "{}: RTL {} cycles for {} entries, cycle model {} for {}",
                    cfg.name, stats.run_cycles, stats.entries, model.run_cycles, model.entries
                )));
            }
            *outputs.borrow_mut() += want.len();
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let n = outputs.into_inner();
    eprintln!(
        "factor cosim {}: {} cases, {n} outputs equal",
        cfg.name,
        cases()
    );
    n
}

/// Random convolutions on `cfg` (band runs and 1×1) against `golden::factor::run_conv`.
fn cosim_conv(cfg: &AccelConfig, cases: u32) -> u32 {
    let accel = RefCell::new(Accel::new(cfg, &Default::default()).expect("simulator"));
    let checked = RefCell::new(0);
    runner(cfg, cases, 0xc0)
        .run(&conv_case(cfg), |case: ConvCase| {
            if !case.fits(cfg) {
                return Ok(());
            }
            let (layer, x) = case.build(cfg);
            let want = factor::run_conv(cfg, &layer, &x, case.dims).expect("a conv layer");
            let mut a = accel.borrow_mut();
            a.reset();
            let (got, _) = a
                .run_layer_images(&layer, &x, case.dims)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            if got != want {
                return Err(TestCaseError::fail(format!(
                    "{}: conv {:?} RTL != golden::factor",
                    cfg.name, case.shape
                )));
            }
            *checked.borrow_mut() += 1;
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    checked.into_inner()
}

#[test]
fn factorized_tiny_matches_its_golden_model() {
    let cfg = preset("tiny");
    assert!(cosim_fc(&cfg, 150) > 0);
    let conv = cosim_conv(&cfg, 40);
    eprintln!("{}: {conv} convolutions equal", cfg.name);
    assert!(conv >= 36, "only {conv} of 40 convolutions fit");
}

#[test]
fn factorized_icebreaker_matches_its_golden_model() {
    assert!(cosim_fc(&preset("icebreaker"), 150) > 0);
}

#[test]
fn factorized_random_configs_match_their_golden_model() {
    for slot in 0..3 {
        let cfg = random_factorized_config(test_seed(), 10 + slot);
        // Up to twice the activation buffer: input tiling carries the channel sums.
        assert!(cosim_fc(&cfg, (6 * cfg.act_depth).min(150)) > 0);
    }
}

/// A small activation buffer and stream (8 rows, 16 entries: one block segment per chunk at
/// most) against layers of up to 150 inputs: every layer is input-tiled, so blocks are split
/// across runs and the channel sums carry over.
#[test]
fn factorized_input_tiled_layers_match_its_golden_model() {
    let mut cfg = preset("tiny");
    cfg.name = "tiny-act8-factorized".into();
    cfg.act_depth = 8;
    cfg.coef_depth = 16;
    cfg.acc_bits = cfg.acc_bits_required().max(cfg.acc_bits);
    cfg.validate().unwrap();
    assert!(cosim_fc(&cfg, 150) > 0);
}

/// The co-simulation can fail: the per-row update without one negation carry gives wrong
/// outputs on dense random layers.
#[test]
fn factorized_cosim_detects_an_injected_fault() {
    let cfg = preset("tiny");
    let opts = GenOptions {
        fault: Some(Fault::FactorDropCarry),
    };
    let mut a = Accel::new(&cfg, &opts).expect("the faulty simulator");
    let mut mismatches = 0;
    for seed in 0..10 {
        let mut spec = RandomLayerSpec::for_config(&cfg, 60, 8, 1.0, seed);
        spec.elem_density = 1.0;
        let layer = random_layer(&spec);
        let x = random_activations(cfg.act_bits, 1, 60, seed);
        let (y, _) = a.run_layer(&layer, &x).expect("run");
        let want = factor::run_layer(&cfg, &layer, &x);
        mismatches += y.iter().zip(&want).filter(|(p, q)| p != q).count();
    }
    assert!(mismatches > 0, "the injected fault went unnoticed");
}
