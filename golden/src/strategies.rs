//! proptest strategies and seeded generators shared by the property tests: random valid
//! accelerator configurations, random layers (shapes, densities 0–100 %, extreme exponents,
//! B = minimum) and random activations.

use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use smartdeal_core::random::{random_layer, RandomLayerSpec};
use smartdeal_core::{AccelConfig, FcLayer, WeightRequant};

/// Environment variable that overrides the seed of the random configurations and of proptest.
pub const SEED_ENV: &str = "SMARTDEAL_TEST_SEED";
/// Default seed: fixed, so CI is reproducible; set the variable to explore.
pub const DEFAULT_SEED: u64 = 0x5d_2026;

/// The test seed (from [`SEED_ENV`] or the default).
pub fn test_seed() -> u64 {
    std::env::var(SEED_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED)
}

/// A random valid configuration, small enough to verilate quickly (≤ 8 lanes, small buffers).
/// Slot `i` of the same seed always gives the same configuration.
pub fn random_config(seed: u64, slot: u64) -> AccelConfig {
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ slot);
    loop {
        let mode = if rng.gen_bool(0.3) {
            WeightRequant::Exact
        } else {
            WeightRequant::Int8
        };
        let lanes = rng.gen_range(1..=8);
        let mut cfg = AccelConfig {
            name: format!("rand{slot}"),
            lanes,
            act_bits: rng.gen_range(4..=8),
            basis_bits: rng.gen_range(4..=8),
            exp_bits: rng.gen_range(2..=4),
            acc_bits: 16,
            rows_per_block: rng.gen_range(1..=64),
            act_depth: 1 << rng.gen_range(2..=7),
            coef_depth: 1 << rng.gen_range(5..=9),
            b_depth: 1 << rng.gen_range(3..=7),
            out_depth: (lanes.next_power_of_two()) << rng.gen_range(0..=3),
            weight_requant: mode,
            weight_format: smartdeal_core::WeightFormat::Smartdeal,
            single_port_buffers: false,
            slots: 1,
        };
        let need = cfg.acc_bits_required().max(16);
        cfg.acc_bits = (need + rng.gen_range(0..=2)).min(40);
        if cfg.validate().is_ok() {
            return cfg;
        }
    }
}

/// How a random layer's output requantization is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutMode {
    /// Scaled so outputs spread over int8 (as `random_layer` makes them).
    Typical,
    /// Any multiplier and shift: exercises saturation and rounding at the extremes.
    Extreme,
    /// M = 1, shift = 0: the output is the saturated accumulator + bias.
    Identity,
}

/// The parameters of one random layer case (shrinkable).
#[derive(Debug, Clone)]
pub struct LayerCase {
    pub spec: RandomLayerSpec,
    pub out_mode: OutMode,
    pub tokens: usize,
    /// Fraction of activations forced to the minimum value.
    pub x_min_fraction: f64,
}

impl LayerCase {
    /// Builds the layer and its activations (`[tokens][inputs]`).
    pub fn build(&self, cfg: &AccelConfig) -> (FcLayer, Vec<i8>) {
        let mut layer = random_layer(&self.spec);
        let mut rng = ChaCha8Rng::seed_from_u64(self.spec.seed ^ 0xa11c_e5ed);
        match self.out_mode {
            OutMode::Typical => {}
            OutMode::Extreme => {
                for o in 0..layer.outputs as usize {
                    layer.out_mult[o] = if rng.gen_bool(0.2) {
                        u16::MAX
                    } else {
                        rng.gen()
                    };
                    layer.out_shift[o] = rng.gen_range(0..=31);
                    layer.bias[o] = if rng.gen_bool(0.2) {
                        if rng.gen_bool(0.5) {
                            i32::MIN
                        } else {
                            i32::MAX
                        }
                    } else {
                        rng.gen()
                    };
                }
            }
            OutMode::Identity => {
                for o in 0..layer.outputs as usize {
                    layer.out_mult[o] = 1;
                    layer.out_shift[o] = 0;
                    layer.bias[o] = rng.gen_range(-64..=64);
                }
            }
        }
        let lo = -(1i16 << (cfg.act_bits - 1));
        let hi = (1i16 << (cfg.act_bits - 1)) - 1;
        let x = (0..self.tokens * layer.inputs as usize)
            .map(|_| {
                if rng.gen_bool(self.x_min_fraction) {
                    lo as i8
                } else {
                    rng.gen_range(lo..=hi) as i8
                }
            })
            .collect();
        (layer, x)
    }
}

/// Random layer cases that fit `cfg`: shapes up to the activation buffer, outputs up to two
/// output buffers (so layers split into several runs), densities 0..=1 with the endpoints
/// favoured, extreme exponents and basis values.
pub fn layer_case(cfg: &AccelConfig) -> impl Strategy<Value = LayerCase> {
    // Rows within the activation buffer and one tile's stream entries (no input tiling).
    layer_case_up_to(cfg, (3 * cfg.act_depth.min(cfg.coef_depth)).min(150))
}

/// Like [`layer_case`], with up to `max_in` inputs: beyond `3 · act_depth` the host tiles the
/// inputs (`image::pack_layer`).
pub fn layer_case_up_to(cfg: &AccelConfig, max_in: u32) -> impl Strategy<Value = LayerCase> {
    let max_out = (2 * cfg.out_depth).clamp(1, 40);
    let density = prop_oneof![
        1 => Just(0.0),
        1 => Just(1.0),
        4 => 0.0..=1.0f64,
    ];
    let cfg = cfg.clone();
    (
        1..=max_in,
        1..=max_out,
        density.clone(),
        density,
        0..=8u32,
        1..=64u32,
        prop_oneof![Just(0.0), Just(0.3), Just(1.0)],
        any::<bool>(),
        any::<u64>(),
        prop_oneof![
            3 => Just(OutMode::Typical),
            1 => Just(OutMode::Extreme),
            1 => Just(OutMode::Identity)
        ],
        1..=3usize,
        prop_oneof![Just(0.0), Just(0.2), Just(1.0)],
    )
        .prop_map(
            move |(
                inputs,
                outputs,
                rd,
                ed,
                group,
                rpb,
                extreme,
                relu,
                seed,
                out_mode,
                tokens,
                xmin,
            )| {
                let rows = inputs.div_ceil(3);
                let mut spec = RandomLayerSpec::for_config(&cfg, inputs, outputs, rd, seed);
                spec.elem_density = ed;
                spec.group_size = if group == 0 { 0 } else { group.min(outputs) };
                // Keep blocks per tile within the basis buffer.
                let min_rpb = rows.div_ceil(cfg.b_depth).max(1);
                spec.rows_per_block = rpb.clamp(min_rpb, rows.max(min_rpb));
                spec.extreme = extreme;
                spec.relu = relu;
                LayerCase {
                    spec,
                    out_mode,
                    tokens,
                    x_min_fraction: xmin,
                }
            },
        )
}
