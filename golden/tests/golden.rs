//! The golden model against the naive reference: exhaustive where the input space is small,
//! property tests elsewhere.

use proptest::prelude::*;
use smartdeal_core::{AccelConfig, Coef, FcLayer, WeightRequant};
use smartdeal_golden::strategies::{layer_case, random_config, test_seed};
use smartdeal_golden::{self as golden, naive};

/// A layer of 256 outputs × 3 inputs whose output `o` has B[k][j] = o - 128 everywhere and the
/// single coefficient `c` in element k of its only row.
fn one_term_layer(k: usize, c: Coef) -> FcLayer {
    let outputs = 256u32;
    let mut coef = vec![Coef::Zero; outputs as usize * 3];
    for o in 0..outputs as usize {
        coef[o * 3 + k] = c;
    }
    FcLayer {
        name: "exhaustive".into(),
        inputs: 3,
        outputs,
        rows_per_block: 1,
        group_size: outputs,
        exp_bits: 4,
        e_lo: 0,
        relu: false,
        row_present: vec![vec![true]],
        basis: (0..outputs)
            .map(|o| [[(o as i32 - 128) as i8; 3]; 3])
            .collect(),
        coef,
        wshift: vec![0; outputs as usize],
        bias: vec![0; outputs as usize],
        out_mult: vec![1; outputs as usize],
        out_shift: vec![0; outputs as usize],
        conv: None,
    }
}

fn exact_cfg(exp_bits: u32) -> AccelConfig {
    let mut c = AccelConfig::preset("tiny").unwrap();
    c.exp_bits = exp_bits;
    c.weight_requant = WeightRequant::Exact;
    c.act_depth = 4;
    c.acc_bits = 40;
    c.validate().unwrap();
    c
}

#[test]
fn rebuild_matches_naive_for_every_code_sign_and_int8_basis_value() {
    let cfg = exact_cfg(4);
    let mut checked = 0;
    for k in 0..3 {
        for code in 0..16u8 {
            for neg in [false, true] {
                let layer = one_term_layer(k, Coef::Pow2 { neg, code });
                let g = golden::mac_weights(&cfg, &layer);
                let n = naive::dense_weights(&cfg, &layer);
                for (o, (gw, nw)) in g.iter().zip(&n).enumerate() {
                    assert_eq!(
                        i128::from(*gw),
                        *nw,
                        "k {k} code {code} neg {neg} output {o}"
                    );
                    // And the value itself: ±B · 2^code.
                    let b = o as i128 / 3 - 128;
                    let sign = if neg { -1 } else { 1 };
                    assert_eq!(*nw, sign * b * (1i128 << code));
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 3 * 16 * 2 * 256 * 3);
}

#[test]
fn wrequant_matches_naive_rounding_for_every_rebuilt_value_and_shift() {
    // The whole 17-bit rebuilt-weight range of exp_bits = 3 (RB = 8 + 7 + 2) and every shift.
    let cfg = AccelConfig::preset("tiny").unwrap();
    let half = 1i32 << (cfg.rebuild_bits() - 1);
    for w in -half..half {
        for s in 0..=cfg.wshift_max() {
            let want = naive::clamp_bits(naive::round_half_up(w.into(), s), 8);
            assert_eq!(i128::from(golden::wrequant(w, s)), want, "w {w} shift {s}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        rng_seed: proptest::test_runner::RngSeed::Fixed(test_seed()),
        ..ProptestConfig::default()
    })]

    #[test]
    fn out_requant_matches_naive(
        acc in -(1i64 << 39)..(1i64 << 39),
        bias: i32,
        mult: u16,
        shift in 0u8..=31,
        relu: bool,
    ) {
        let g = golden::out_requant(acc, bias, mult, shift, relu);
        let n = naive::out_requant(acc.into(), bias, mult, shift, relu);
        prop_assert_eq!(g, n);
    }
}

fn golden_equals_naive(slot: u64) {
    let cfg = random_config(test_seed(), slot);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 200,
        rng_seed: proptest::test_runner::RngSeed::Fixed(test_seed() ^ slot),
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct(
                "proptest-regressions/golden.txt",
            ),
        )),
        source_file: Some(file!()),
        ..ProptestConfig::default()
    });
    runner
        .run(&layer_case(&cfg), |case| {
            let (layer, x) = case.build(&cfg);
            prop_assert_eq!(
                golden::run_layer(&cfg, &layer, &x),
                naive::run_layer(&cfg, &layer, &x),
                "{}",
                cfg.to_toml()
            );
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn golden_matches_naive_on_random_configs_and_layers() {
    for slot in 0..16 {
        golden_equals_naive(slot);
    }
}
