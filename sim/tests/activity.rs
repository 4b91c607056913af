//! The counts behind the energy model: what the Verilator engine observes driving the RTL
//! (cycles from the RTL's own counter, the planner's counts of entries, bytes and outputs) equals
//! what the golden engine derives from a dry run against the documented cycle model, for fully
//! connected layers (token slots, output and input tiling) and convolutions (band runs, 1×1),
//! SmartDeal (both dataflows) and the dense baseline.

use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use smartdeal_core::random::RandomLayerSpec;
use smartdeal_core::AccelConfig;
use smartdeal_golden::strategies::{
    conv_case, factorized, layer_case_up_to, test_seed, ConvCase, LayerCase, OutMode,
};
use smartdeal_host::{Engine, GoldenEngine, RunStats};
use smartdeal_sim::Accel;
use std::cell::RefCell;

fn cases() -> u32 {
    std::env::var("SMARTDEAL_ACTIVITY_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(24)
}

fn runner(cfg: &AccelConfig) -> TestRunner {
    let fp = u64::from_str_radix(&cfg.fingerprint(), 16).unwrap_or(0);
    TestRunner::new(Config {
        cases: cases(),
        rng_seed: RngSeed::Fixed(test_seed() ^ fp ^ 0xac71),
        failure_persistence: None,
        source_file: Some(file!()),
        ..Config::default()
    })
}

fn same(what: &str, mut v: RunStats, g: RunStats) -> Result<(), TestCaseError> {
    v.total_cycles = 0;
    if v == g {
        Ok(())
    } else {
        Err(TestCaseError::fail(format!(
            "{what}: Verilator counts {v:?} != golden's derived counts {g:?}"
        )))
    }
}

fn activity_matches(cfg: AccelConfig) {
    let accel = RefCell::new(Accel::new(&cfg, &Default::default()).expect("simulator"));
    let golden = RefCell::new(GoldenEngine::new(&cfg));
    let (fc_seen, conv_seen) = (RefCell::new(0), RefCell::new(0));
    runner(&cfg)
        .run(
            &layer_case_up_to(&cfg, 3 * cfg.act_depth + 60),
            |case: LayerCase| {
                let (layer, x) = case.build(&cfg);
                let mut a = accel.borrow_mut();
                a.reset();
                let (yv, sv) = a
                    .run_layer(&layer, &x)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let (yg, sg) = golden
                    .borrow_mut()
                    .run_layer(&layer, &x)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                assert_eq!(yv, yg);
                *fc_seen.borrow_mut() += 1;
                same("fully connected", sv, sg)
            },
        )
        .unwrap_or_else(|e| panic!("{}: {e}", cfg.name));
    runner(&cfg)
        .run(&conv_case(&cfg), |case: ConvCase| {
            if !case.fits(&cfg) {
                return Ok(());
            }
            let (layer, x) = case.build(&cfg);
            let mut a = accel.borrow_mut();
            a.reset();
            let run = |e: &mut dyn Engine| {
                e.run_layer_images(&layer, &x, case.dims)
                    .map_err(|e| TestCaseError::fail(e.to_string()))
            };
            let (yv, sv) = run(&mut *a)?;
            let (yg, sg) = run(&mut *golden.borrow_mut())?;
            assert_eq!(yv, yg);
            *conv_seen.borrow_mut() += 1;
            same("convolution", sv, sg)
        })
        .unwrap_or_else(|e| panic!("{}: {e}", cfg.name));
    let (fc, conv) = (*fc_seen.borrow(), *conv_seen.borrow());
    eprintln!(
        "{}: counts equal on {fc} fully connected and {conv} convolution cases",
        cfg.name
    );
    assert!(fc > 0 && conv > 0);
}

#[test]
fn activity_tiny() {
    activity_matches(AccelConfig::preset("tiny").unwrap());
}

#[test]
fn activity_ulx3s() {
    activity_matches(AccelConfig::preset("ulx3s").unwrap());
}

#[test]
fn activity_icebreaker_dense_baseline() {
    activity_matches(AccelConfig::preset("icebreaker").unwrap().dense_baseline());
}

/// `tiny` with an 8-row activation buffer and a 16-entry stream: layers of more than 24
/// inputs are input-tiled.
fn input_tiling_config(name: &str, extra_stages: bool) -> AccelConfig {
    let mut cfg = AccelConfig::preset("tiny").unwrap();
    cfg.name = name.into();
    cfg.act_depth = 8;
    cfg.coef_depth = 16;
    cfg.extra_stages = extra_stages;
    cfg.validate().unwrap();
    cfg
}

#[test]
fn activity_input_tiled() {
    activity_matches(input_tiling_config("tiny-act8", false));
}

/// The factorized dataflow: padded block segments and its longer latency per START.
#[test]
fn activity_tiny_factorized() {
    let mut cfg = AccelConfig::preset("tiny").unwrap();
    cfg.name = "tiny-factorized".into();
    assert!(factorized(&mut cfg));
    activity_matches(cfg);
}

/// A run of one stream entry with the extra stages: a layer of 27 inputs (9 rows) on an
/// 8-row activation buffer is two input chunks per tile, the second a single row, so a single
/// entry. Its outputs and cycle counts equal the golden engine's (the controller once let such
/// a run finish while its entry was still in S1).
#[test]
fn one_entry_runs_with_extra_stages() {
    let cfg = input_tiling_config("tiny-act8-extra", true);
    let mut accel = Accel::new(&cfg, &Default::default()).expect("simulator");
    let mut golden = GoldenEngine::new(&cfg);
    for seed in 0..4 {
        let spec = RandomLayerSpec::for_config(&cfg, 27, 6, 1.0, seed);
        let case = LayerCase {
            spec,
            out_mode: OutMode::Typical,
            tokens: 1,
            x_min_fraction: 0.0,
        };
        let (layer, x) = case.build(&cfg);
        accel.reset();
        let (yv, sv) = accel.run_layer(&layer, &x).expect("Verilator run");
        let (yg, sg) = golden.run_layer(&layer, &x).expect("golden run");
        assert_eq!(yv, yg, "outputs, seed {seed}");
        same("one-entry runs", sv, sg).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    }
}
