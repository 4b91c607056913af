//! Co-simulation of convolutions: the generated Verilog (in Verilator), driven by the host's
//! band runs (3×3) and pixel gathering (1×1), against the golden model's direct convolution
//! (SmartDeal) or the naive im2col model (the dense baseline), bit for bit, on random conv
//! shapes for the presets and random configurations with several pixel slots.
//!
//! Seed: `SMARTDEAL_TEST_SEED` (printed); cases per configuration: `SMARTDEAL_CONV_CASES`
//! (default 90). A failing case is shrunk by proptest and stored in `sim/proptest-regressions/`.

use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use smartdeal_core::{AccelConfig, FcLayer, ImageDims};
use smartdeal_golden::strategies::{conv_case, random_config, test_seed, ConvCase};
use smartdeal_golden::{self as golden, naive};
use smartdeal_host::Engine;
use smartdeal_sim::Accel;
use std::cell::RefCell;

fn cases() -> u32 {
    std::env::var("SMARTDEAL_CONV_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(90)
}

type Reference = fn(&AccelConfig, &FcLayer, &[i8], ImageDims) -> Vec<i8>;

fn golden_conv(cfg: &AccelConfig, layer: &FcLayer, x: &[i8], dims: ImageDims) -> Vec<i8> {
    golden::run_conv(cfg, layer, x, dims).expect("a conv layer")
}

/// Runs `cases()` random conv cases on `cfg` against `reference`; returns the cases checked.
fn cosim_conv(cfg: AccelConfig, reference: Reference) -> u32 {
    let seed = test_seed();
    eprintln!(
        "conv cosim {}: seed {seed}, {} cases\n{}",
        cfg.name,
        cases(),
        cfg.to_toml()
    );
    let accel = RefCell::new(Accel::new(&cfg, &Default::default()).expect("build the simulator"));
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        rng_seed: RngSeed::Fixed(seed ^ u64::from_str_radix(&cfg.fingerprint(), 16).unwrap_or(0)),
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct("proptest-regressions/conv.txt"),
        )),
        source_file: Some(file!()),
        ..Config::default()
    });
    let (checked, outputs) = (RefCell::new(0u32), RefCell::new(0usize));
    let result = runner.run(&conv_case(&cfg), |case: ConvCase| {
        if !case.fits(&cfg) {
            return Ok(());
        }
        let (layer, x) = case.build(&cfg);
        let want = reference(&cfg, &layer, &x, case.dims);
        let mut a = accel.borrow_mut();
        a.reset();
        let l = a.load(&layer).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let got = a.run_images(l, &x, case.dims);
        a.unload(l);
        match got {
            Ok((y, _)) if y == want => {
                *checked.borrow_mut() += 1;
                *outputs.borrow_mut() += y.len();
                Ok(())
            }
            other => Err(TestCaseError::fail(format!(
                "{}: RTL != reference for {:?} on {:?} (seed {seed})\nRTL:       {:?}\nreference: {want:?}",
                cfg.name,
                case.shape,
                case.dims,
                other.map(|g| g.0).map_err(|e| e.to_string())
            ))),
        }
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let n = *checked.borrow();
    eprintln!(
        "conv cosim {}: {n} cases, {} outputs compared, all equal",
        cfg.name,
        outputs.borrow()
    );
    assert!(n * 10 >= cases() * 9, "too few cases fit {}: {n}", cfg.name);
    n
}

/// A random configuration with 2–4 pixel slots (its output buffer grown to hold a tile).
fn random_config_with_slots(slot: u64) -> AccelConfig {
    let mut cfg = random_config(test_seed(), slot);
    cfg.name = format!("rand{slot}-slots");
    cfg.slots = 2 + (slot % 3) as u32;
    while cfg.out_depth < cfg.lanes * cfg.slots {
        cfg.out_depth *= 2;
    }
    cfg.validate().expect("a valid config");
    cfg
}

#[test]
fn conv_cosim_tiny() {
    cosim_conv(AccelConfig::preset("tiny").unwrap(), golden_conv);
}

#[test]
fn conv_cosim_icebreaker() {
    cosim_conv(AccelConfig::preset("icebreaker").unwrap(), golden_conv);
}

#[test]
fn conv_cosim_ulx3s() {
    cosim_conv(AccelConfig::preset("ulx3s").unwrap(), golden_conv);
}

#[test]
fn conv_cosim_random_config_with_slots_0() {
    cosim_conv(random_config_with_slots(10), golden_conv);
}

#[test]
fn conv_cosim_random_config_with_slots_1() {
    cosim_conv(random_config_with_slots(11), golden_conv);
}

#[test]
fn conv_cosim_dense_baseline_tiny_matches_the_naive_model() {
    cosim_conv(
        AccelConfig::preset("tiny").unwrap().dense_baseline(),
        naive::run_conv,
    );
}

/// The harness can fail on convolutions too: a generator with one dropped negation carry in the
/// rebuild engine must produce mismatches on dense random 3×3 layers, for both strides.
#[test]
fn conv_cosim_detects_an_injected_rebuild_fault() {
    use smartdeal_core::random::{random_activations, random_layer, RandomLayerSpec};
    use smartdeal_core::ConvShape;
    use smartdeal_gen::{Fault, GenOptions};
    let cfg = AccelConfig::preset("tiny").unwrap();
    let opts = GenOptions {
        fault: Some(Fault::RebuildDropCarry),
    };
    let mut a = Accel::new(&cfg, &opts).expect("build the faulty simulator");
    for stride in [1u8, 2] {
        let mut spec = RandomLayerSpec::for_config(&cfg, 4 * 9, 8, 1.0, u64::from(stride));
        spec.elem_density = 1.0;
        let mut layer = random_layer(&spec);
        layer.conv = Some(ConvShape {
            in_channels: 4,
            kernel: 3,
            stride,
            padding: 1,
        });
        let dims = ImageDims {
            images: 1,
            height: 6,
            width: 7,
        };
        let x = random_activations(cfg.act_bits, 1, 4 * 6 * 7, 9);
        let l = a.load(&layer).expect("load");
        let (y, _) = a.run_images(l, &x, dims).expect("run");
        let want = golden_conv(&cfg, &layer, &x, dims);
        let bad = y.iter().zip(&want).filter(|(p, q)| p != q).count();
        assert!(
            bad > 0,
            "stride {stride}: the injected fault went unnoticed"
        );
        eprintln!("stride {stride}: {bad} of {} outputs differ", y.len());
    }
}
