//! A deliberately naive reference: dense i128 weights rebuilt with multiplications and powers,
//! rounding by floor division; convolutions by im2col (a patch matrix, zeros in the padding) and
//! an i128 matrix product, where the golden model convolves directly. It shares nothing with
//! [`crate::model`] except the layer data, so the two can be tested against each other.

use smartdeal_core::{AccelConfig, Coef, FcLayer, ImageDims, WeightRequant};

fn floor_div_pow2(v: i128, s: u32) -> i128 {
    v.div_euclid(1i128 << s)
}

/// round(v / 2^s) with ties toward +∞, as floor(v / 2^s + 1/2) = floor((2v + 2^s) / 2^(s+1)).
pub fn round_half_up(v: i128, s: u32) -> i128 {
    if s == 0 {
        v
    } else {
        floor_div_pow2(2 * v + (1i128 << s), s + 1)
    }
}

/// Saturates to the signed `bits`-bit range.
pub fn clamp_bits(v: i128, bits: u32) -> i128 {
    v.max(-(1i128 << (bits - 1))).min((1i128 << (bits - 1)) - 1)
}

/// Dense weights `[out][in]` as the MAC array sees them.
pub fn dense_weights(cfg: &AccelConfig, layer: &FcLayer) -> Vec<i128> {
    let n = layer.inputs as usize;
    let rows = layer.rows();
    let blocks = layer.blocks();
    let mut w = Vec::with_capacity(layer.outputs as usize * n);
    for o in 0..layer.outputs as usize {
        for i in 0..n {
            let r = i / 3;
            let j = i % 3;
            let b = &layer.basis[o * blocks + r / layer.rows_per_block as usize];
            let mut exact: i128 = 0;
            for (k, brow) in b.iter().enumerate() {
                let c = layer.coef[(o * rows + r) * 3 + k];
                let ce: i128 = match c {
                    Coef::Zero => 0,
                    Coef::Pow2 { neg, code } => (if neg { -1 } else { 1 }) * 2i128.pow(code.into()),
                };
                exact += ce * i128::from(brow[j]);
            }
            w.push(match cfg.weight_requant {
                WeightRequant::Exact => exact,
                WeightRequant::Int8 => {
                    clamp_bits(round_half_up(exact, u32::from(layer.wshift[o])), 8)
                }
            });
        }
    }
    w
}

/// Outputs `[tokens][out]` for activations `[tokens][in]`.
pub fn run_layer(cfg: &AccelConfig, layer: &FcLayer, x: &[i8]) -> Vec<i8> {
    let n = layer.inputs as usize;
    let m = layer.outputs as usize;
    let w = dense_weights(cfg, layer);
    let mut y = Vec::new();
    for xt in x.chunks(n) {
        for o in 0..m {
            let acc: i128 = (0..n).map(|i| i128::from(xt[i]) * w[o * n + i]).sum();
            y.push(out_requant(
                acc,
                layer.bias[o],
                layer.out_mult[o],
                layer.out_shift[o],
                layer.relu,
            ));
        }
    }
    y
}

/// `sat_int8(round((acc + bias) · M / 2^sh))`, ties up, then ReLU.
pub fn out_requant(acc: i128, bias: i32, mult: u16, shift: u8, relu: bool) -> i8 {
    let t = (acc + i128::from(bias)) * i128::from(mult);
    let v = clamp_bits(round_half_up(t, shift.into()), 8);
    (if relu { v.max(0) } else { v }) as i8
}

/// The value of the signed `bits`-bit register holding `v`: `v` modulo `2^bits`, taken in
/// `[−2^(bits−1), 2^(bits−1))`.
pub fn wrap_bits(v: i128, bits: u32) -> i128 {
    let m = 1i128 << bits;
    let r = v.rem_euclid(m);
    if r >= m / 2 {
        r - m
    } else {
        r
    }
}

/// The im2col patch matrix of a convolution layer's input `x` (`[images][in_channels][height]
/// [width]`): one row per output pixel, `[images · H' · W'][in_channels · k · k]`, column
/// `ci·k² + kh·k + kw` holding the input the kernel tap `(ci, kh, kw)` sees, zero in the padding.
/// Also returns `(H', W')`.
///
/// # Panics
///
/// When `layer` is not a convolution or `x` does not have `images · in_channels · height ·
/// width` activations.
pub fn im2col(layer: &FcLayer, x: &[i8], dims: ImageDims) -> (Vec<Vec<i128>>, (usize, usize)) {
    let conv = layer.conv.expect("naive::im2col needs a convolution layer");
    let (c, k, s, p) = (
        conv.in_channels as i64,
        i64::from(conv.kernel),
        i64::from(conv.stride),
        i64::from(conv.padding),
    );
    let (h, w) = (dims.height as i64, dims.width as i64);
    assert_eq!(x.len() as i64, dims.images as i64 * c * h * w, "input size");
    // Output positions: the top-left corners y·s − p with the whole kernel inside the padded image.
    let out_h = (0..).take_while(|&y| y * s + k <= h + 2 * p).count();
    let out_w = (0..).take_while(|&x| x * s + k <= w + 2 * p).count();
    let mut rows = Vec::new();
    for n in 0..dims.images as i64 {
        for oy in 0..out_h as i64 {
            for ox in 0..out_w as i64 {
                let mut patch = Vec::new();
                for ci in 0..c {
                    for kh in 0..k {
                        for kw in 0..k {
                            let (iy, ix) = (oy * s - p + kh, ox * s - p + kw);
                            let inside = (0..h).contains(&iy) && (0..w).contains(&ix);
                            patch.push(if inside {
                                i128::from(x[(((n * c + ci) * h + iy) * w + ix) as usize])
                            } else {
                                0
                            });
                        }
                    }
                }
                rows.push(patch);
            }
        }
    }
    (rows, (out_h, out_w))
}

/// Accumulators of a convolution layer, `[images][out][H'][W']`: the im2col matrix times the
/// transposed dense weights, summed in i128 and wrapped to `acc_bits`.
pub fn conv_accumulators(
    cfg: &AccelConfig,
    layer: &FcLayer,
    x: &[i8],
    dims: ImageDims,
) -> Vec<i128> {
    let (patches, (out_h, out_w)) = im2col(layer, x, dims);
    let n = layer.inputs as usize;
    let m = layer.outputs as usize;
    let w = dense_weights(cfg, layer);
    let pixels = out_h * out_w;
    let mut acc = vec![0i128; patches.len() * m];
    for (row, patch) in patches.iter().enumerate() {
        let (image, pixel) = (row / pixels, row % pixels);
        for o in 0..m {
            let sum: i128 = (0..n).map(|i| patch[i] * w[o * n + i]).sum();
            acc[(image * m + o) * pixels + pixel] = wrap_bits(sum, cfg.acc_bits);
        }
    }
    acc
}

/// Outputs `[images][out][H'][W']` of a convolution layer on `x` (`[images][in_channels]
/// [height][width]`), by im2col and a matrix product.
pub fn run_conv(cfg: &AccelConfig, layer: &FcLayer, x: &[i8], dims: ImageDims) -> Vec<i8> {
    let m = layer.outputs as usize;
    let acc = conv_accumulators(cfg, layer, x, dims);
    let pixels = acc.len() / (dims.images * m);
    acc.iter()
        .enumerate()
        .map(|(i, &a)| {
            let o = i / pixels % m;
            out_requant(
                a,
                layer.bias[o],
                layer.out_mult[o],
                layer.out_shift[o],
                layer.relu,
            )
        })
        .collect()
}
