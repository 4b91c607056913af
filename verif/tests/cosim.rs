//! Co-simulation: the generated Verilog (in Verilator) against the golden model, bit for bit,
//! on random layers for the presets and for random valid configurations.
//!
//! Each configuration is one test, so the test threads verilate configurations in parallel.
//! Seed: `SMARTDEAL_TEST_SEED` (printed); cases per configuration: `SMARTDEAL_COSIM_CASES`.
//! A failing case is shrunk by proptest, stored in `verif/proptest-regressions/`, and re-run with
//! tracing: the VCD path is in the failure message.

use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use smartdeal_core::random::{random_activations, random_layer, RandomLayerSpec};
use smartdeal_core::AccelConfig;
use smartdeal_gen::{Fault, GenOptions};
use smartdeal_verif::cosim::Accel;
use smartdeal_verif::golden;
use smartdeal_verif::strategies::{layer_case, random_config, test_seed, LayerCase};
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
        // Shrunk failures are stored here (relative to verif/) and replayed first on every run.
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct("proptest-regressions/cosim.txt"),
        )),
        source_file: Some(file!()),
        ..Config::default()
    });
    let checked = RefCell::new(0u64);
    let result = runner.run(&layer_case(&cfg), |case: LayerCase| {
        let (layer, x) = case.build(&cfg);
        let want = golden::run_layer(&cfg, &layer, &x);
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
