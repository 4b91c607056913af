//! The golden convolution (direct, tap by tap) against the naive one (im2col and an i128 matrix
//! product): property tests on random configurations and the presets, hand-checked examples, and
//! 1×1 convolutions against the fully connected model applied at every pixel.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{
    Config as ProptestConfig, FileFailurePersistence, RngSeed, TestRunner,
};
use smartdeal_core::{AccelConfig, Coef, ConvShape, FcLayer, ImageDims};
use smartdeal_golden::strategies::{
    conv_case, conv_case_with_kernel, random_config, test_seed, ConvCase,
};
use smartdeal_golden::{self as golden, naive, PreparedLayer};

/// A runner of `cases` cases seeded from the test seed and `salt`.
fn runner(cases: u32, salt: u64) -> TestRunner {
    TestRunner::new(ProptestConfig {
        cases,
        rng_seed: RngSeed::Fixed(test_seed() ^ salt),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/conv.txt",
        ))),
        source_file: Some(file!()),
        ..ProptestConfig::default()
    })
}

/// Golden equals naive on `cases` random convolutions for `cfg`.
fn golden_equals_naive(cfg: &AccelConfig, cases: u32, salt: u64) {
    runner(cases, salt)
        .run(&conv_case(cfg), |case| {
            prop_assert!(case.fits(cfg), "{case:?} does not fit {}", cfg.to_toml());
            let (layer, x) = case.build(cfg);
            let (oh, ow) = case.out_dims();
            let g = golden::run_conv(cfg, &layer, &x, case.dims).unwrap();
            prop_assert_eq!(g.len(), case.dims.images * layer.outputs as usize * oh * ow);
            prop_assert_eq!(
                &g,
                &naive::run_conv(cfg, &layer, &x, case.dims),
                "{:?}\n{}",
                case.shape,
                cfg.to_toml()
            );
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn golden_conv_matches_naive_im2col_on_random_configs() {
    // 16 configurations × 16 cases = 256 random convolutions.
    for slot in 0..16 {
        golden_equals_naive(&random_config(test_seed(), slot), 16, slot);
    }
}

#[test]
fn golden_conv_matches_naive_im2col_on_the_presets() {
    for (i, name) in ["tiny", "icebreaker", "ulx3s"].into_iter().enumerate() {
        let cfg = AccelConfig::preset(name).unwrap();
        golden_equals_naive(&cfg, 64, 0x9e5e_7000 + i as u64);
    }
}

/// A 1×1 convolution is the fully connected layer applied to the channel vector of the input
/// pixel under every output pixel (`(y·s − p, x·s − p)`; zeros in the padding).
fn one_by_one_is_fc(cfg: &AccelConfig, case: &ConvCase) -> Result<(), TestCaseError> {
    let (layer, x) = case.build(cfg);
    let (c, m) = (case.shape.in_channels as usize, layer.outputs as usize);
    let (s, p) = (
        usize::from(case.shape.stride),
        usize::from(case.shape.padding),
    );
    let ImageDims {
        images,
        height: h,
        width: w,
    } = case.dims;
    let (oh, ow) = case.out_dims();
    let mut vectors = Vec::new();
    for n in 0..images {
        for oy in 0..oh {
            for ox in 0..ow {
                let (iy, ix) = ((oy * s).checked_sub(p), (ox * s).checked_sub(p));
                for ci in 0..c {
                    vectors.push(match (iy, ix) {
                        (Some(iy), Some(ix)) if iy < h && ix < w => {
                            x[((n * c + ci) * h + iy) * w + ix]
                        }
                        _ => 0,
                    });
                }
            }
        }
    }
    let mut fc_layer = layer.clone();
    fc_layer.conv = None;
    // [pixels][out] from the FC model; the convolution's is [images][out][H'][W'].
    let fc = golden::run_layer(cfg, &fc_layer, &vectors);
    let conv = golden::run_conv(cfg, &layer, &x, case.dims).unwrap();
    let pixels = oh * ow;
    for n in 0..images {
        for o in 0..m {
            for px in 0..pixels {
                prop_assert_eq!(
                    conv[(n * m + o) * pixels + px],
                    fc[(n * pixels + px) * m + o],
                    "image {} channel {} pixel {} of {:?}",
                    n,
                    o,
                    px,
                    case.shape
                );
            }
        }
    }
    Ok(())
}

#[test]
fn one_by_one_conv_is_the_fc_layer_at_every_strided_pixel() {
    for slot in 0..8 {
        let cfg = random_config(test_seed(), slot);
        runner(16, 0x1b1 + slot)
            .run(&conv_case_with_kernel(&cfg, 1), |case| {
                one_by_one_is_fc(&cfg, &case)
            })
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

/// A layer whose MAC weights are exactly `w` (`[out][in_channels · k²]`, every value 0 or
/// ±2^code, code ≤ 7): B = identity, so the Ce row holds the weights themselves; no weight
/// shift, bias 0, M = 1, output shift 0 (outputs are the saturated accumulators).
fn kernel_layer(kernel: u8, in_channels: u32, w: &[Vec<i32>]) -> FcLayer {
    let inputs = in_channels * u32::from(kernel) * u32::from(kernel);
    let outputs = w.len();
    let rows = inputs.div_ceil(3) as usize;
    let mut coef = vec![Coef::Zero; outputs * rows * 3];
    for (o, wo) in w.iter().enumerate() {
        assert_eq!(wo.len(), inputs as usize);
        for (i, &v) in wo.iter().enumerate() {
            if v != 0 {
                assert!(v.unsigned_abs().is_power_of_two(), "{v}");
                coef[o * rows * 3 + i] = Coef::Pow2 {
                    neg: v < 0,
                    code: v.unsigned_abs().trailing_zeros() as u8,
                };
            }
        }
    }
    let identity = [[1, 0, 0], [0, 1, 0], [0, 0, 1]];
    let layer = FcLayer {
        name: "hand".into(),
        inputs,
        outputs: outputs as u32,
        rows_per_block: rows as u32,
        group_size: outputs as u32,
        exp_bits: 3,
        e_lo: 0,
        relu: false,
        row_present: vec![vec![true; rows]],
        basis: vec![identity; outputs],
        coef,
        wshift: vec![0; outputs],
        bias: vec![0; outputs],
        out_mult: vec![1; outputs],
        out_shift: vec![0; outputs],
        conv: Some(ConvShape {
            in_channels,
            kernel,
            stride: 1,
            padding: 0,
        }),
    };
    layer.validate().unwrap();
    let cfg = AccelConfig::preset("tiny").unwrap();
    assert_eq!(golden::mac_weights(&cfg, &layer), w.concat());
    layer
}

/// Runs `layer` with `stride` and `padding` on golden and naive (which must agree) and returns
/// the output.
fn conv(layer: &FcLayer, stride: u8, padding: u8, x: &[i8], dims: ImageDims) -> Vec<i8> {
    let mut layer = layer.clone();
    let shape = layer.conv.as_mut().unwrap();
    shape.stride = stride;
    shape.padding = padding;
    let cfg = AccelConfig::preset("tiny").unwrap();
    let g = golden::run_conv(&cfg, &layer, x, dims).unwrap();
    assert_eq!(g, naive::run_conv(&cfg, &layer, x, dims));
    g
}

fn one_image(height: usize, width: usize) -> ImageDims {
    ImageDims {
        images: 1,
        height,
        width,
    }
}

#[test]
fn a_centred_delta_returns_the_kernel_rotated_half_a_turn() {
    // Cross-correlation, as PyTorch: out[y][x] = Σ K[kh][kw] · in[y + kh − 1][x + kw − 1], so a
    // delta at the centre reads the kernel backwards.
    let k = vec![1, 2, 4, 8, 16, 32, 64, -1, -2];
    let layer = kernel_layer(3, 1, &[k]);
    let delta = [0, 0, 0, 0, 1, 0, 0, 0, 0];
    let d = one_image(3, 3);
    assert_eq!(
        conv(&layer, 1, 1, &delta, d),
        [-2, -1, 64, 32, 16, 8, 4, 2, 1]
    );
    assert_eq!(conv(&layer, 1, 0, &delta, d), [16]);
    assert_eq!(conv(&layer, 2, 1, &delta, d), [-2, 64, 4, 1]);
    assert_eq!(conv(&layer, 2, 0, &delta, d), [16]);
}

#[test]
fn a_box_filter_sums_each_neighbourhood_with_zero_padding() {
    let layer = kernel_layer(3, 1, &[vec![1; 9]]);
    let x = [1, 2, 3, 4, 5, 6, 7, 8, 9];
    let d = one_image(3, 3);
    assert_eq!(
        conv(&layer, 1, 1, &x, d),
        [12, 21, 16, 27, 45, 33, 24, 39, 28]
    );
    assert_eq!(conv(&layer, 2, 1, &x, d), [12, 16, 24, 28]);
    assert_eq!(conv(&layer, 1, 0, &x, d), [45]);
    // 4×5: the middle row of outputs sums whole 3×3 windows.
    let x: Vec<i8> = (1..=20).collect();
    assert_eq!(
        conv(&layer, 1, 0, &x, one_image(4, 5)),
        [63, 72, 81, 108, 117, 126]
    );
}

#[test]
fn weights_are_read_as_out_in_channel_kernel_row_kernel_column() {
    // Output 0: tap (ci 0, kh 0, kw 0) = 1 and tap (ci 1, kh 2, kw 2) = 2; output 1: the centre
    // of channel 1, negated.
    let mut w0 = vec![0; 18];
    w0[0] = 1;
    w0[9 + 8] = 2;
    let mut w1 = vec![0; 18];
    w1[9 + 4] = -1;
    let layer = kernel_layer(3, 2, &[w0, w1]);
    // Image 0: channel 0 = 1..9, channel 1 = 10..18; image 1: all ones.
    let mut x: Vec<i8> = (1..=18).collect();
    x.extend([1; 18]);
    let two = ImageDims {
        images: 2,
        height: 3,
        width: 3,
    };
    // out0 = x0[0][0] + 2·x1[2][2], out1 = −x1[1][1]; per image.
    assert_eq!(conv(&layer, 1, 0, &x, two), [1 + 36, -14, 3, -1]);
    // Padding 1, stride 2: the windows centred on the corners (0,0), (0,2), (2,0), (2,2).
    // out0 = x0[y−1][x−1] + 2·x1[y+1][x+1]: 2·14, 0, 0, 5; out1 = −x1[y][x].
    assert_eq!(
        conv(&layer, 2, 1, &x[..18], one_image(3, 3)),
        [28, 0, 0, 5, -10, -12, -16, -18]
    );
}

#[test]
fn output_sizes_follow_the_stride_and_padding() {
    let cfg = AccelConfig::preset("tiny").unwrap();
    // (kernel, stride, padding, H, W) → (H', W') = ((H + 2p − k) / s + 1, …).
    let table = [
        ((3, 2, 0, 7, 6), (3, 2)),
        ((3, 2, 1, 7, 6), (4, 3)),
        ((3, 1, 0, 3, 3), (1, 1)),
        ((3, 1, 1, 1, 1), (1, 1)),
        ((3, 2, 1, 2, 2), (1, 1)),
        ((3, 1, 1, 5, 2), (5, 2)),
        ((1, 2, 0, 5, 4), (3, 2)),
        ((1, 2, 1, 5, 4), (4, 3)),
        ((1, 1, 1, 1, 1), (3, 3)),
    ];
    for ((kernel, stride, padding, h, w), (oh, ow)) in table {
        let (cin, cout) = (2u32, 3usize);
        let inputs = cin * u32::from(kernel) * u32::from(kernel);
        let spec = smartdeal_core::random::RandomLayerSpec::for_config(&cfg, inputs, 3, 1.0, 7);
        let mut layer = smartdeal_core::random::random_layer(&spec);
        let shape = ConvShape {
            in_channels: cin,
            kernel,
            stride,
            padding,
        };
        layer.conv = Some(shape);
        let dims = ImageDims {
            images: 2,
            height: h,
            width: w,
        };
        assert_eq!(shape.out_dims(dims), Ok((oh, ow)));
        let x = smartdeal_core::random::random_activations(8, 2, cin as usize * h * w, 3);
        let g = golden::run_conv(&cfg, &layer, &x, dims).unwrap();
        assert_eq!(g.len(), 2 * cout * oh * ow, "{shape:?} on {h}×{w}");
        assert_eq!(g, naive::run_conv(&cfg, &layer, &x, dims), "{shape:?}");
        let (patches, out) = naive::im2col(&layer, &x, dims);
        assert_eq!((patches.len(), out), (2 * oh * ow, (oh, ow)));
    }
}

#[test]
fn accumulators_wrap_to_acc_bits_like_the_register() {
    // act_depth 4 with int8 activations and weights needs 19 accumulator bits; a 3×3 kernel over
    // 8 channels of 64s on 127s sums to 72 · 64 · 127 = 585,216, which a 19-bit register holds as
    // 585,216 − 2^19 = 60,928.
    let mut cfg = AccelConfig::preset("tiny").unwrap();
    cfg.act_depth = 4;
    cfg.acc_bits = 19;
    cfg.validate().unwrap();
    let layer = kernel_layer(3, 8, &[vec![64; 72]]);
    let x = vec![127i8; 72];
    let d = one_image(3, 3);
    let conv = layer.conv.unwrap();
    let prepared = PreparedLayer::new(&cfg, &layer);
    assert_eq!(prepared.accumulators_conv(&conv, &x, d), [60_928]);
    assert_eq!(naive::conv_accumulators(&cfg, &layer, &x, d), [60_928]);
    cfg.acc_bits = 40;
    let prepared = PreparedLayer::new(&cfg, &layer);
    assert_eq!(prepared.accumulators_conv(&conv, &x, d), [585_216]);
    assert_eq!(naive::conv_accumulators(&cfg, &layer, &x, d), [585_216]);
}

#[test]
fn a_prepared_layer_gives_the_same_output_on_every_call() {
    let cfg = AccelConfig::preset("tiny").unwrap();
    let mut runner = runner(8, 0x5a3e);
    let case = conv_case(&cfg).new_tree(&mut runner).unwrap().current();
    let (layer, x) = case.build(&cfg);
    let prepared = PreparedLayer::new(&cfg, &layer);
    let conv = layer.conv.unwrap();
    let first = prepared.run_conv(&conv, &x, case.dims);
    assert_eq!(prepared.run_conv(&conv, &x, case.dims), first);
    assert_eq!(
        golden::run_conv(&cfg, &layer, &x, case.dims).unwrap(),
        first
    );
}

#[test]
fn a_fully_connected_layer_is_not_a_convolution() {
    let cfg = AccelConfig::preset("tiny").unwrap();
    let mut layer = kernel_layer(1, 3, &[vec![1, 2, 4]]);
    layer.conv = None;
    let err = golden::run_conv(&cfg, &layer, &[1, 2, 3], one_image(1, 1)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "layer `hand`: not a convolution (the layer has no kernel shape)"
    );
}

#[test]
#[should_panic(expected = "convolution input has 8 activations, expected images × channels")]
fn a_wrong_input_length_panics_with_the_shapes() {
    let cfg = AccelConfig::preset("tiny").unwrap();
    let layer = kernel_layer(3, 1, &[vec![1; 9]]);
    let _ = golden::run_conv(&cfg, &layer, &[0; 8], one_image(3, 3));
}

#[test]
#[should_panic(expected = "a 2×2 input is too small for a 3×3 kernel with padding 0")]
fn an_image_without_output_pixels_panics() {
    let cfg = AccelConfig::preset("tiny").unwrap();
    let layer = kernel_layer(3, 1, &[vec![1; 9]]);
    let _ = golden::run_conv(&cfg, &layer, &[0; 4], one_image(2, 2));
}

#[test]
fn every_config_holds_a_conv_case_and_small_ones_are_capped() {
    use smartdeal_golden::strategies::max_conv_in_channels;
    let mut cfg = AccelConfig::preset("tiny").unwrap();
    assert_eq!(max_conv_in_channels(&cfg, 3), 70);
    cfg.act_depth = 16;
    assert_eq!(max_conv_in_channels(&cfg, 3), 5);
    assert_eq!(max_conv_in_channels(&cfg, 1), 48);
    cfg.coef_depth = 8;
    assert_eq!(max_conv_in_channels(&cfg, 3), 2);
    // A configuration no valid one is (act_depth < 3): 3×3 cases have one channel, and do not fit.
    cfg.act_depth = 2;
    assert_eq!(max_conv_in_channels(&cfg, 3), 0);
    let mut runner = runner(1, 0);
    for _ in 0..32 {
        let case = conv_case_with_kernel(&cfg, 3)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        assert_eq!(case.shape.in_channels, 1);
        assert!(!case.fits(&cfg));
    }
}
