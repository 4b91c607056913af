//! proptest strategies and seeded generators shared by the property tests: random valid
//! accelerator configurations, random layers (shapes, densities 0–100 %, extreme exponents,
//! B = minimum), random convolutions ([`conv_case`]) and random activations.

use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use smartdeal_core::random::{random_layer, RandomLayerSpec};
use smartdeal_core::{AccelConfig, ConvShape, FcLayer, ImageDims, WeightRequant};

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

/// A random valid configuration, small enough to verilate quickly (≤ 8 lanes, ≤ 4 slots, small
/// buffers).
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
            dataflow: smartdeal_core::Dataflow::Rebuild,
            extra_stages: false,
            mac_mul: smartdeal_core::MacMul::Inferred,
        };
        let need = cfg.acc_bits_required().max(16);
        cfg.acc_bits = (need + rng.gen_range(0..=2)).min(40);
        // One pixel/token slot in two configurations, else 2–4 (the output buffer must hold a
        // tile of lanes × slots).
        cfg.slots = if rng.gen_bool(0.5) {
            1
        } else {
            rng.gen_range(2..=4)
        };
        cfg.extra_stages = rng.gen_bool(0.5);
        // The ECP5's registered DSP block needs the extra stages (and at most 18-bit weights).
        if cfg.extra_stages && rng.gen_bool(0.5) {
            cfg.mac_mul = smartdeal_core::MacMul::Mult18x18d;
        }
        if cfg.validate().is_ok() {
            return cfg;
        }
    }
}

/// A random valid configuration of the factorized dataflow (exact weights, as it requires): the
/// [`random_config`] of `slot` with `dataflow = "factorized"`, `weight_requant = "exact"` and an
/// accumulator as wide as exact weights need, or of the next slots (offset by 2^32) when that
/// exceeds 40 bits.
pub fn random_factorized_config(seed: u64, slot: u64) -> AccelConfig {
    (0..)
        .find_map(|i: u64| {
            let mut cfg = random_config(seed, slot + (i << 32));
            cfg.name = format!("rand{slot}-factorized");
            factorized(&mut cfg).then_some(cfg)
        })
        .expect("some slot makes a valid configuration")
}

/// Turns `cfg` into its factorized variant (`AccelConfig::on_factorized_dataflow`):
/// `dataflow = "factorized"`, exact weights, inferred multipliers and the accumulator they need
/// (at least the current one). False (and `cfg` invalid) when the exact
/// accumulator would exceed 40 bits.
pub fn factorized(cfg: &mut AccelConfig) -> bool {
    *cfg = cfg.on_factorized_dataflow();
    cfg.validate().is_ok()
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
        apply_out_mode(&mut layer, self.out_mode, &mut rng);
        let x = random_x(
            cfg,
            self.tokens * layer.inputs as usize,
            self.x_min_fraction,
            &mut rng,
        );
        (layer, x)
    }
}

/// Overwrites the output requantization of `layer` as `mode` says.
fn apply_out_mode(layer: &mut FcLayer, mode: OutMode, rng: &mut ChaCha8Rng) {
    match mode {
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
}

/// `len` activations in the `act_bits` range, a fraction `min_fraction` of them the minimum.
fn random_x(cfg: &AccelConfig, len: usize, min_fraction: f64, rng: &mut ChaCha8Rng) -> Vec<i8> {
    let lo = -(1i16 << (cfg.act_bits - 1));
    let hi = (1i16 << (cfg.act_bits - 1)) - 1;
    (0..len)
        .map(|_| {
            if rng.gen_bool(min_fraction) {
                lo as i8
            } else {
                rng.gen_range(lo..=hi) as i8
            }
        })
        .collect()
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

/// The parameters of one random convolution case (shrinkable): the kernel's shape, the input
/// images' size, and the layer's weights and requantization as for a [`LayerCase`].
#[derive(Debug, Clone)]
pub struct ConvCase {
    pub shape: ConvShape,
    pub dims: ImageDims,
    /// The weights: `inputs = in_channels · kernel²`, `outputs` = output channels.
    pub spec: RandomLayerSpec,
    pub out_mode: OutMode,
    /// Fraction of activations forced to the minimum value.
    pub x_min_fraction: f64,
}

impl ConvCase {
    /// Builds the convolution layer (`conv = Some(shape)`) and its input images
    /// (`[images][in_channels][height][width]`, in the `act_bits` range).
    pub fn build(&self, cfg: &AccelConfig) -> (FcLayer, Vec<i8>) {
        let mut layer = random_layer(&self.spec);
        layer.conv = Some(self.shape);
        let mut rng = ChaCha8Rng::seed_from_u64(self.spec.seed ^ 0xc04e_c0de);
        apply_out_mode(&mut layer, self.out_mode, &mut rng);
        let d = self.dims;
        let len = d.images * self.shape.in_channels as usize * d.height * d.width;
        let x = random_x(cfg, len, self.x_min_fraction, &mut rng);
        (layer, x)
    }

    /// The output's `(H', W')` (never empty: the strategy only makes cases with output pixels).
    pub fn out_dims(&self) -> (usize, usize) {
        self.shape
            .out_dims(self.dims)
            .expect("conv cases have output pixels")
    }

    /// Whether the hardware can hold this case on `cfg`: always, for the cases [`conv_case`]
    /// makes for `cfg`, except its fallback for a configuration too small for any 3×3 kernel
    /// (see [`conv_case`]), which callers skip.
    pub fn fits(&self, cfg: &AccelConfig) -> bool {
        let stream = 3 * self.shape.in_channels;
        (self.shape.kernel != 3 || (stream <= cfg.act_depth && stream <= stream_rows(cfg)))
            && self.build(cfg).0.check_fits(cfg).is_ok()
    }
}

/// Present rows one tile's stream surely holds: `coef_depth`, or in the factorized dataflow
/// `coef_depth / FACTOR_FLUSH_CYCLES` (each block segment is padded to that many entries, and a
/// band run cannot be input-tiled).
fn stream_rows(cfg: &AccelConfig) -> u32 {
    if cfg.is_factorized() {
        cfg.coef_depth / smartdeal_core::params::FACTOR_FLUSH_CYCLES
    } else {
        cfg.coef_depth
    }
}

/// Most input channels of a `kernel`×`kernel` convolution on `cfg` (at most 70), 0 if none fits:
/// a 3×3 kernel streams `3 · in_channels` Ce rows per tile, which must fit the activation buffer
/// and the stream buffer; a 1×1 kernel's `ceil(in_channels / 3)` rows likewise (no input tiling).
pub fn max_conv_in_channels(cfg: &AccelConfig, kernel: u8) -> u32 {
    let rows = cfg.act_depth.min(stream_rows(cfg));
    match kernel {
        3 => rows / 3,
        _ => 3 * rows,
    }
    .min(70)
}

/// Random convolution cases that fit `cfg`: 3×3 (4 in 5) or 1×1 kernels, 1–70 input channels
/// (within [`max_conv_in_channels`]), 1–70 output channels, stride 1 or 2, padding 0 or 1, 1–2
/// images of 1–20 × 1–20 pixels with at least one output pixel, row and element densities
/// 0–100 % (the endpoints favoured), and the output modes and extreme values of [`layer_case`].
/// The layer passes `check_fits(cfg)`: its Ce rows fit one tile's activation and stream buffers
/// and its blocks the basis buffer.
///
/// Every valid configuration holds a 3×3 kernel over one channel (`act_depth`, `coef_depth` ≥
/// 4); for one that cannot (`act_depth` or `coef_depth` < 3) the 3×3 cases have one input
/// channel and do not fit: callers skip them ([`ConvCase::fits`]).
///
/// Shrinking goes to the shape first (kernel, channels, stride, padding, image size, images),
/// then to the weights and requantization.
pub fn conv_case(cfg: &AccelConfig) -> impl Strategy<Value = ConvCase> {
    conv_case_with(cfg, &[(1, 1), (4, 3)])
}

/// Like [`conv_case`] with only `kernel`×`kernel` kernels (1 or 3).
pub fn conv_case_with_kernel(cfg: &AccelConfig, kernel: u8) -> impl Strategy<Value = ConvCase> {
    conv_case_with(cfg, &[(1, kernel)])
}

/// [`conv_case`] over the kernels `(weight, kernel)`.
fn conv_case_with(cfg: &AccelConfig, kernels: &[(u32, u8)]) -> impl Strategy<Value = ConvCase> {
    let kernel_and_channels = proptest::strategy::Union::new_weighted(
        kernels
            .iter()
            .map(|&(weight, k)| {
                let max_in = max_conv_in_channels(cfg, k).max(1);
                (weight, (Just(k), 1..=max_in).boxed())
            })
            .collect(),
    );
    let shape = (
        kernel_and_channels,
        1..=70u32,
        1..=2u8,
        0..=1u8,
        0..20usize,
        0..20usize,
        1..=2usize,
    );
    let density = prop_oneof![
        1 => Just(0.0),
        1 => Just(1.0),
        4 => 0.0..=1.0f64,
    ];
    let weights = (
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
        prop_oneof![Just(0.0), Just(0.2), Just(1.0)],
    );
    let cfg = cfg.clone();
    (shape, weights).prop_map(
        move |(
            ((kernel, in_channels), outputs, stride, padding, h_extra, w_extra, images),
            (rd, ed, group, rpb, extreme, relu, seed, out_mode, xmin),
        )| {
            let shape = ConvShape {
                in_channels,
                kernel,
                stride,
                padding,
            };
            // The smallest image with an output pixel, plus the extra pixels (at most 20).
            let min_side = usize::from(kernel.saturating_sub(2 * padding).max(1));
            let dims = ImageDims {
                images,
                height: (min_side + h_extra).min(20),
                width: (min_side + w_extra).min(20),
            };
            let inputs = shape.inputs() as u32;
            let rows = inputs.div_ceil(3);
            let mut spec = RandomLayerSpec::for_config(&cfg, inputs, outputs, rd, seed);
            spec.name = "conv0".into();
            spec.elem_density = ed;
            spec.group_size = if group == 0 { 0 } else { group.min(outputs) };
            // Keep blocks per tile within the basis buffer.
            let min_rpb = rows.div_ceil(cfg.b_depth).max(1);
            spec.rows_per_block = rpb.clamp(min_rpb, rows.max(min_rpb));
            spec.extreme = extreme;
            spec.relu = relu;
            ConvCase {
                shape,
                dims,
                spec,
                out_mode,
                x_min_fraction: xmin,
            }
        },
    )
}
