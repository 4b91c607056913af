//! Co-simulation: the generated Verilog (in Verilator) against the golden model, bit for bit,
//! on random layers for the presets and for random valid configurations.
//!
//! Each configuration is one test, so the test threads verilate configurations in parallel.
//! Seed: `SMARTDEAL_TEST_SEED` (printed); cases per configuration: `SMARTDEAL_COSIM_CASES`.
//! A failing case is shrunk by proptest, stored in `sim/proptest-regressions/`, and re-run with
//! tracing: the VCD path is in the failure message.

use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use smartdeal_core::random::{random_activations, random_layer, RandomLayerSpec};
use smartdeal_core::{AccelConfig, FcLayer};
use smartdeal_gen::{Fault, GenOptions};
use smartdeal_golden::strategies::{
    layer_case, layer_case_up_to, random_config, test_seed, LayerCase,
};
use smartdeal_golden::{self as golden, naive};
use smartdeal_sim::Accel;
use std::cell::RefCell;
use std::path::PathBuf;

fn cases() -> u32 {
    std::env::var("SMARTDEAL_COSIM_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(80)
}

fn failure_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("cosim-failures");
    std::fs::create_dir_all(&d).expect("create target/cosim-failures");
    d
}

fn cosim_config(cfg: AccelConfig) {
    cosim_against(cfg, golden::run_layer)
}

fn cosim_against(cfg: AccelConfig, reference: fn(&AccelConfig, &FcLayer, &[i8]) -> Vec<i8>) {
    let strategy = layer_case(&cfg);
    cosim_cases(cfg, reference, strategy)
}

/// Co-simulates `cfg` against `reference` (the golden model, or for the dense baseline the naive
/// model, which shares no weight code with the host's decompression in `smartdeal_host::pack_for`) on
/// cases drawn from `strategy`.
fn cosim_cases(
    cfg: AccelConfig,
    reference: fn(&AccelConfig, &FcLayer, &[i8]) -> Vec<i8>,
    strategy: impl proptest::strategy::Strategy<Value = LayerCase>,
) {
    let seed = test_seed();
    eprintln!(
        "cosim {}: seed {seed} (set SMARTDEAL_TEST_SEED to change), {} cases\n{}",
        cfg.name,
        cases(),
        cfg.to_toml()
    );
    let accel = RefCell::new(Accel::new(&cfg, &Default::default()).expect("build the simulator"));
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        // One seed per configuration, so configurations see different cases.
        rng_seed: RngSeed::Fixed(seed ^ u64::from_str_radix(&cfg.fingerprint(), 16).unwrap_or(0)),
        // Shrunk failures are stored here (relative to sim/) and replayed first on every run.
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct("proptest-regressions/cosim.txt"),
        )),
        source_file: Some(file!()),
        ..Config::default()
    });
    let checked = RefCell::new(0u64);
    let result = runner.run(&strategy, |case: LayerCase| {
        let (layer, x) = case.build(&cfg);
        let want = reference(&cfg, &layer, &x);
        let mut a = accel.borrow_mut();
        a.reset();
        let got = a.run_layer(&layer, &x);
        let ok = matches!(&got, Ok((y, _)) if *y == want);
        if !ok {
            // Re-run the case with a fresh simulator and a VCD for the post-mortem.
            let vcd = failure_dir().join(format!("{}-{}.vcd", cfg.name, layer.inputs));
            let mut fresh = Accel::new(&cfg, &Default::default()).expect("simulator");
            let _ = fresh.trace_to(&vcd);
            let _ = fresh.run_layer(&layer, &x);
            fresh.trace_close();
            return Err(TestCaseError::fail(format!(
                "{}: RTL != golden (seed {seed}); VCD: {}\nRTL:    {:?}\ngolden: {want:?}",
                cfg.name,
                vcd.display(),
                got.map(|g| g.0).map_err(|e| e.to_string())
            )));
        }
        *checked.borrow_mut() += want.len() as u64;
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    eprintln!(
        "cosim {}: {} cases, {} outputs compared, all equal",
        cfg.name,
        cases(),
        checked.borrow()
    );
}

#[test]
fn cosim_matches_golden_tiny() {
    cosim_config(AccelConfig::preset("tiny").unwrap());
}

#[test]
fn cosim_matches_golden_icebreaker() {
    cosim_config(AccelConfig::preset("icebreaker").unwrap());
}

#[test]
fn cosim_matches_golden_ulx3s() {
    cosim_config(AccelConfig::preset("ulx3s").unwrap());
}

#[test]
fn cosim_matches_golden_random_config_0() {
    cosim_config(random_config(test_seed(), 0));
}

#[test]
fn cosim_matches_golden_random_config_1() {
    cosim_config(random_config(test_seed(), 1));
}

#[test]
fn cosim_matches_golden_random_config_2() {
    cosim_config(random_config(test_seed(), 2));
}

#[test]
fn cosim_matches_golden_random_config_3() {
    cosim_config(random_config(test_seed(), 3));
}

/// The dense int8 baseline (same lanes and buffers, int8 weights in the stream, plain
/// multipliers) computes exactly what the SmartDeal accelerator computes for the same layer.
#[test]
fn cosim_dense_baseline_tiny_matches_the_naive_model() {
    cosim_against(
        AccelConfig::preset("tiny").unwrap().dense_baseline(),
        naive::run_layer,
    );
}

#[test]
fn cosim_dense_baseline_icebreaker_matches_the_naive_model() {
    cosim_against(
        AccelConfig::preset("icebreaker").unwrap().dense_baseline(),
        naive::run_layer,
    );
}

#[test]
fn cosim_dense_baseline_random_config_matches_the_naive_model() {
    cosim_against(
        random_config(test_seed(), 4).dense_baseline(),
        naive::run_layer,
    );
}

/// A small activation buffer (8 rows = 24 inputs) and stream (16 entries) against layers of up
/// to 150 inputs: the host tiles the inputs into chunks, the accumulators carry over between the
/// chunk runs, and the outputs still equal the golden model's, for SmartDeal and the dense
/// baseline.
fn input_tiling_config() -> AccelConfig {
    let mut cfg = AccelConfig::preset("tiny").unwrap();
    cfg.name = "tiny-act8".into();
    cfg.act_depth = 8;
    cfg.coef_depth = 16;
    cfg.validate().unwrap();
    cfg
}

#[test]
fn cosim_input_tiled_layers_match_golden() {
    let cfg = input_tiling_config();
    let s = layer_case_up_to(&cfg, 150);
    cosim_cases(cfg, golden::run_layer, s);
}

#[test]
fn cosim_input_tiled_layers_on_the_dense_baseline_match_the_naive_model() {
    let cfg = input_tiling_config().dense_baseline();
    let s = layer_case_up_to(&cfg, 150);
    cosim_cases(cfg, naive::run_layer, s);
}

/// The harness can fail: a generator with one dropped negation carry in the rebuild engine must
/// produce mismatches on dense random layers.
#[test]
fn cosim_detects_an_injected_rebuild_fault() {
    let cfg = AccelConfig::preset("tiny").unwrap();
    let opts = GenOptions {
        fault: Some(Fault::RebuildDropCarry),
    };
    let mut a = Accel::new(&cfg, &opts).expect("build the faulty simulator");
    let mut mismatches = 0;
    for seed in 0..10 {
        let mut spec = RandomLayerSpec::for_config(&cfg, 30, 8, 1.0, seed);
        spec.elem_density = 1.0;
        let layer = random_layer(&spec);
        let x = random_activations(cfg.act_bits, 1, 30, seed);
        let (y, _) = a.run_layer(&layer, &x).expect("run");
        let want = golden::run_layer(&cfg, &layer, &x);
        mismatches += y.iter().zip(&want).filter(|(p, q)| p != q).count();
    }
    assert!(mismatches > 0, "the injected fault went unnoticed");
    eprintln!("injected fault: {mismatches} of 80 outputs differ");
}

/// Cycles are affine in the number of present rows: each present row of each tile costs exactly
/// one cycle, absent rows cost none, and the rest is a fixed pipeline latency per run.
#[test]
fn absent_rows_cost_no_cycles() {
    let cfg = AccelConfig::preset("tiny").unwrap();
    let mut a = Accel::new(&cfg, &Default::default()).expect("simulator");
    let (inputs, outputs) = (96u32, 8u32); // 32 rows, 2 tiles of 4 lanes, one run
    let mut latency = None;
    for density in [0.25, 0.5, 0.75, 1.0] {
        let spec = RandomLayerSpec::for_config(&cfg, inputs, outputs, density, 3);
        let layer = random_layer(&spec);
        let present = layer.row_present[0].iter().filter(|&&p| p).count() as u64;
        let x = random_activations(cfg.act_bits, 1, inputs as usize, 3);
        let (y, st) = a.run_layer(&layer, &x).expect("run");
        assert_eq!(y, golden::run_layer(&cfg, &layer, &x));
        assert_eq!(st.runs, 1);
        assert_eq!(
            st.useful_entries,
            present * 2,
            "one entry per present row and tile"
        );
        assert_eq!(
            st.entries, st.useful_entries,
            "no padding: every tile has ≥ lanes rows"
        );
        let l = st.run_cycles - st.entries;
        assert_eq!(
            *latency.get_or_insert(l),
            l,
            "density {density}: latency changed"
        );
    }
    eprintln!("pipeline latency per run: {} cycles", latency.unwrap());
}

/// The dense baseline streams every row whatever the row density, with the SmartDeal
/// accelerator's pipeline latency: the speed-up of skipping absent rows is 1 / row density.
#[test]
fn dense_baseline_streams_every_row_with_the_same_latency() {
    let sd = AccelConfig::preset("tiny").unwrap();
    let dense = sd.dense_baseline();
    let mut a = Accel::new(&sd, &Default::default()).expect("simulator");
    let mut d = Accel::new(&dense, &Default::default()).expect("dense simulator");
    let (inputs, outputs) = (96u32, 8u32); // 32 rows, 2 tiles
    for density in [0.25, 0.5, 1.0] {
        let spec = RandomLayerSpec::for_config(&sd, inputs, outputs, density, 5);
        let layer = random_layer(&spec);
        let x = random_activations(sd.act_bits, 1, inputs as usize, 5);
        let (ys, ss) = a.run_layer(&layer, &x).expect("run");
        let (yd, sdn) = d.run_layer(&layer, &x).expect("dense run");
        assert_eq!(yd, ys, "density {density}: dense != SmartDeal");
        assert_eq!(
            sdn.entries,
            2 * 32,
            "density {density}: one entry per row and tile"
        );
        assert_eq!(
            sdn.run_cycles - sdn.entries,
            ss.run_cycles - ss.entries,
            "density {density}: pipeline latency differs"
        );
        eprintln!(
            "density {density}: SmartDeal {} cycles, dense {} cycles",
            ss.run_cycles, sdn.run_cycles
        );
    }
}
