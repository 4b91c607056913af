//! The bit-exact golden model of the SmartDeal accelerator (`docs/numerics.md`).
//!
//! Each function models one hardware block and carries the same name as the generator module
//! (`decoder`, `rebuild`, `wrequant`, `mac`, `out_requant`), but shares no code with it: the two
//! agree only through the documented number formats. Convolutions ([`PreparedLayer::run_conv`])
//! use the same weights read as the kernel `[out][in_channels][k][k]` (`smartdeal_core::layer`).

use num_traits::{PrimInt, Signed};
use rayon::prelude::*;
use smartdeal_core::{AccelConfig, Coef, ConvShape, FcLayer, ImageDims, LayerError, WeightRequant};

/// Sparse power-of-two decoder + one rebuild term: `±b << code`, or 0 for an absent element.
/// Width: basis_bits + code_max + 1 signed bits (the negated minimum needs the extra bit).
pub fn rebuild_term(b: i8, c: Coef) -> i32 {
    match c {
        Coef::Zero => 0,
        Coef::Pow2 { neg, code } => {
            let t = i32::from(b) << code;
            if neg {
                -t
            } else {
                t
            }
        }
    }
}

/// Rebuild engine for one Ce row: `w[j] = Σ_k ±B[k][j] << code_k` (exact; rebuild_bits wide).
pub fn rebuild_row(basis: &[[i8; 3]; 3], coefs: [Coef; 3]) -> [i32; 3] {
    std::array::from_fn(|j| (0..3).map(|k| rebuild_term(basis[k][j], coefs[k])).sum())
}

/// Saturates to the signed `bits`-bit range. Generic so that one definition serves the i32
/// weight path and the i64 output path.
pub fn saturate<T: PrimInt + Signed>(v: T, bits: u32) -> T {
    let hi = (T::one() << (bits as usize - 1)) - T::one();
    let lo = -(T::one() << (bits as usize - 1));
    v.max(lo).min(hi)
}

/// Arithmetic shift right by `shift` with round half up: `(v + 2^(shift-1)) >> shift`, no
/// rounding term when `shift` = 0. (`>>` on signed primitives is arithmetic.)
pub fn shift_round_half_up<T: PrimInt + Signed>(v: T, shift: u32) -> T {
    if shift == 0 {
        v
    } else {
        (v + (T::one() << (shift as usize - 1))) >> shift as usize
    }
}

/// Rebuilt-weight requantization (int8 mode): shift right by the channel's shift, round half up,
/// saturate to [-128, 127].
///
/// ```
/// use smartdeal_golden::wrequant;
/// assert_eq!(wrequant(3, 1), 2); // 1.5 rounds up
/// assert_eq!(wrequant(-3, 1), -1); // -1.5 rounds up too (towards +inf)
/// assert_eq!(wrequant(1000, 2), 127); // 250 saturates
/// ```
pub fn wrequant(w: i32, shift: u32) -> i8 {
    // |w| < 2^(RB-1) ≤ 2^25 and shift ≤ RB - 8: the rounding add fits i32.
    saturate(shift_round_half_up(w, shift), 8) as i8
}

/// The weight the MAC array multiplies by, for the configured mode.
pub fn mac_weight(cfg: &AccelConfig, w: i32, shift: u32) -> i32 {
    match cfg.weight_requant {
        WeightRequant::Int8 => i32::from(wrequant(w, shift)),
        WeightRequant::Exact => w,
    }
}

/// Wraps to a signed `bits`-bit register (the accumulator width). Validated configurations never
/// reach the wrap; modelling it keeps the model equal to the register in every case.
pub fn wrap_signed(v: i64, bits: u32) -> i64 {
    let sh = 64 - bits;
    (v << sh) >> sh
}

/// Output requantization: `sat_int8(((acc + bias) * M + 2^(sh-1)) >> sh)`, then optional ReLU.
pub fn out_requant(acc: i64, bias: i32, mult: u16, shift: u8, relu: bool) -> i8 {
    // acc: ≤ 40 bits, + bias: 41 bits, × M (16-bit unsigned): 57 bits, + round: 58 bits ≤ i64.
    let t = (acc + i64::from(bias)) * i64::from(mult);
    let y = saturate(shift_round_half_up(t, u32::from(shift)), 8);
    if relu {
        y.max(0) as i8
    } else {
        y as i8
    }
}

/// The weights the MAC array uses, `[out][in]` (int8 values in int8 mode, exact rebuilt values in
/// exact mode). Padding inputs are dropped.
pub fn mac_weights(cfg: &AccelConfig, layer: &FcLayer) -> Vec<i32> {
    let n = layer.inputs as usize;
    let mut w = vec![0i32; layer.outputs as usize * n];
    for o in 0..layer.outputs as usize {
        let shift = u32::from(layer.wshift[o]);
        for r in 0..layer.rows() {
            if !layer.row_is_present(o, r) {
                continue;
            }
            let row = rebuild_row(layer.basis_for(o, r), layer.coef_row(o, r));
            for (j, &wj) in row.iter().enumerate() {
                let i = 3 * r + j;
                if i < n {
                    w[o * n + i] = mac_weight(cfg, wj, shift);
                }
            }
        }
    }
    w
}

/// A prepared layer's weights `[out][in]` ([`mac_weights`]), as i16 when every sum is exact in
/// i32 (see [`PreparedLayer::accumulators`]), else as i32 with i64 sums.
#[derive(Debug, Clone)]
enum Weights {
    Narrow(Vec<i16>),
    Wide(Vec<i32>),
}

/// A layer with its MAC weights rebuilt once: what the accelerator computes for any number of
/// activation vectors, without rebuilding the weights per call (the network runner's golden
/// engine runs every layer once per sentence).
#[derive(Debug, Clone)]
pub struct PreparedLayer {
    acc_bits: u32,
    inputs: usize,
    outputs: usize,
    w: Weights,
    bias: Vec<i32>,
    out_mult: Vec<u16>,
    out_shift: Vec<u8>,
    relu: bool,
}

impl PreparedLayer {
    pub fn new(cfg: &AccelConfig, layer: &FcLayer) -> PreparedLayer {
        let n = layer.inputs as usize;
        let w = mac_weights(cfg, layer);
        let wmax = w
            .iter()
            .map(|w| i64::from(w.unsigned_abs()))
            .max()
            .unwrap_or(0);
        // |x| ≤ 128, so every partial sum is below n · 128 · max|w|.
        let narrow = wmax <= i64::from(i16::MAX) && (n as i64) * 128 * wmax < (1i64 << 31);
        PreparedLayer {
            acc_bits: cfg.acc_bits,
            inputs: n,
            outputs: layer.outputs as usize,
            w: if narrow {
                Weights::Narrow(w.iter().map(|&v| v as i16).collect())
            } else {
                Weights::Wide(w)
            },
            bias: layer.bias.clone(),
            out_mult: layer.out_mult.clone(),
            out_shift: layer.out_shift.clone(),
            relu: layer.relu,
        }
    }

    /// Accumulators (before bias) for activation vectors `x` (`[tokens][inputs]`), as
    /// `[tokens][out]`: exact sums, then wrapped to the accumulator's `acc_bits` as the
    /// hardware's adders do. When every weight fits 16 bits and `inputs · 128 · max|w|` stays
    /// below 2^31 (int8 weights: up to 131,071 inputs) the sums are exact as i16 × i16 products
    /// added in i32, which vectorizes on any x86-64 (pmaddwd); otherwise (exact-mode weights of
    /// up to 26 bits) in i64. Tokens are spread over the cores.
    pub fn accumulators(&self, x: &[i8]) -> Vec<i64> {
        let (n, m) = (self.inputs, self.outputs);
        if n == 0 || m == 0 {
            return vec![0; x.len().checked_div(n).unwrap_or(0) * m];
        }
        let mut acc = vec![0i64; x.len() / n * m];
        acc.par_chunks_mut(m)
            .zip(x.par_chunks(n))
            .for_each(|(row, xt)| match &self.w {
                Weights::Narrow(w) => {
                    let x16: Vec<i16> = xt.iter().map(|&v| i16::from(v)).collect();
                    for (a, wo) in row.iter_mut().zip(w.chunks(n)) {
                        let sum: i32 = x16
                            .iter()
                            .zip(wo)
                            .map(|(&xi, &wi)| i32::from(xi) * i32::from(wi))
                            .sum();
                        *a = wrap_signed(i64::from(sum), self.acc_bits);
                    }
                }
                Weights::Wide(w) => {
                    for (a, wo) in row.iter_mut().zip(w.chunks(n)) {
                        let sum: i64 = xt
                            .iter()
                            .zip(wo)
                            .map(|(&xi, &wi)| i64::from(xi) * i64::from(wi))
                            .sum();
                        *a = wrap_signed(sum, self.acc_bits);
                    }
                }
            });
        acc
    }

    /// The int8 outputs `[tokens][out]` for `x` (`[tokens][inputs]`).
    pub fn run(&self, x: &[i8]) -> Vec<i8> {
        let m = self.outputs;
        self.accumulators(x)
            .into_iter()
            .enumerate()
            .map(|(i, acc)| self.requant(acc, i % m))
            .collect()
    }

    /// Output channel `o`'s requantization of an accumulator.
    fn requant(&self, acc: i64, o: usize) -> i8 {
        out_requant(
            acc,
            self.bias[o],
            self.out_mult[o],
            self.out_shift[o],
            self.relu,
        )
    }

    /// Checks a convolution's input against this layer and returns its output geometry.
    ///
    /// # Panics
    ///
    /// When `conv`'s kernel does not have this layer's `inputs` weights per output channel,
    /// `x.len()` is not `images · in_channels · height · width`, or the output has no pixel (the
    /// caller validates shapes first).
    fn conv_geometry(&self, conv: &ConvShape, x_len: usize, dims: ImageDims) -> ConvGeometry {
        assert_eq!(
            conv.inputs(),
            self.inputs as u64,
            "a {k}×{k} kernel over {c} input channels has {} weights per output channel, but \
             the layer has {} inputs",
            conv.inputs(),
            self.inputs,
            k = conv.kernel,
            c = conv.in_channels
        );
        let channels = conv.in_channels as usize;
        let want = dims.images * channels * dims.height * dims.width;
        assert_eq!(
            x_len, want,
            "convolution input has {x_len} activations, expected images × channels × height × \
             width = {} × {channels} × {} × {} = {want}",
            dims.images, dims.height, dims.width
        );
        let (out_h, out_w) = conv.out_dims(dims).unwrap_or_else(|e| panic!("{e}"));
        ConvGeometry {
            channels,
            kernel: usize::from(conv.kernel),
            stride: usize::from(conv.stride),
            padding: usize::from(conv.padding),
            height: dims.height,
            width: dims.width,
            out_h,
            out_w,
        }
    }

    /// Accumulators (before bias) of the convolution `conv` of images `x` (`[images][in_channels]
    /// [height][width]`, row-major), as `[images][out][H'][W']`: the direct convolution
    /// `Σ_{ci,kh,kw} w[o][ci·k² + kh·k + kw] · x[n][ci][y·s + kh − p][x·s + kw − p]` (zero outside
    /// the image), the exact sum wrapped to `acc_bits` like [`accumulators`](Self::accumulators).
    /// Each output plane accumulates shifted input rows tap by tap, in i32 when the layer's
    /// weights are narrow (see [`accumulators`](Self::accumulators); the partial sums are then
    /// exact), else in i64; the `images × out` planes are spread over the cores.
    ///
    /// # Panics
    ///
    /// On shapes that do not match (see [`run_conv`](Self::run_conv)).
    pub fn accumulators_conv(&self, conv: &ConvShape, x: &[i8], dims: ImageDims) -> Vec<i64> {
        let g = self.conv_geometry(conv, x.len(), dims);
        let (n, m) = (self.inputs, self.outputs);
        let plane = g.plane_len();
        let image = g.channels * g.height * g.width;
        let mut acc = vec![0i64; dims.images * m * plane];
        acc.par_chunks_mut(plane).enumerate().for_each(|(i, out)| {
            let (img, o) = (i / m, i % m);
            let xi = &x[img * image..(img + 1) * image];
            match &self.w {
                Weights::Narrow(w) => {
                    let mut sum = vec![0i32; plane];
                    g.convolve_plane(&w[o * n..(o + 1) * n], xi, &mut sum);
                    for (a, s) in out.iter_mut().zip(sum) {
                        *a = wrap_signed(i64::from(s), self.acc_bits);
                    }
                }
                Weights::Wide(w) => {
                    g.convolve_plane(&w[o * n..(o + 1) * n], xi, out);
                    for a in out.iter_mut() {
                        *a = wrap_signed(*a, self.acc_bits);
                    }
                }
            }
        });
        acc
    }

    /// The int8 outputs `[images][out][H'][W']` of the convolution `conv` of `x`
    /// (`[images][in_channels][height][width]`, row-major); `(H', W') = conv.out_dims(dims)`.
    ///
    /// # Panics
    ///
    /// When the shapes do not match, which the caller checks first: `conv` must have this
    /// layer's `inputs` weights per output channel (`in_channels · kernel²`), `x.len()` must be
    /// `images · in_channels · height · width`, and the output must have at least one pixel.
    pub fn run_conv(&self, conv: &ConvShape, x: &[i8], dims: ImageDims) -> Vec<i8> {
        let m = self.outputs;
        let plane = self.conv_geometry(conv, x.len(), dims).plane_len();
        self.accumulators_conv(conv, x, dims)
            .into_iter()
            .enumerate()
            .map(|(i, acc)| self.requant(acc, i / plane % m))
            .collect()
    }
}

/// The sizes of one convolution run, in pixels.
#[derive(Debug, Clone, Copy)]
struct ConvGeometry {
    channels: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    height: usize,
    width: usize,
    out_h: usize,
    out_w: usize,
}

impl ConvGeometry {
    fn plane_len(&self) -> usize {
        self.out_h * self.out_w
    }

    /// The output columns `ox` whose input column `ox·s + kw − p` lies inside the image.
    fn columns(&self, kw: usize) -> std::ops::Range<usize> {
        let (s, p) = (self.stride, self.padding);
        let lo = p.saturating_sub(kw).div_ceil(s);
        // ox·s + kw − p ≤ width − 1  ⇔  ox ≤ (width − 1 + p − kw) / s.
        let hi = (self.width + p)
            .checked_sub(kw + 1)
            .map_or(0, |span| span / s + 1)
            .min(self.out_w);
        lo..hi.max(lo)
    }

    /// Direct convolution of one image `x` (`[channels][height][width]`) with one output
    /// channel's kernel `w` (`[channels][k][k]` flattened) into the plane `acc` (`[H'][W']`),
    /// adding tap by tap: for every kernel tap, every output row gets the tap's weight times the
    /// input row it covers. Absent (zero) weights are skipped.
    fn convolve_plane<W, A>(&self, w: &[W], x: &[i8], acc: &mut [A])
    where
        W: Copy + PartialEq + Default,
        A: Copy + From<W> + From<i8> + std::ops::Mul<Output = A> + std::ops::AddAssign,
    {
        let (k, s, p) = (self.kernel, self.stride, self.padding);
        let (h, wd, ow) = (self.height, self.width, self.out_w);
        for ci in 0..self.channels {
            let xc = &x[ci * h * wd..(ci + 1) * h * wd];
            for kh in 0..k {
                for kw in 0..k {
                    let wv = w[(ci * k + kh) * k + kw];
                    if wv == W::default() {
                        continue;
                    }
                    let wv = A::from(wv);
                    let cols = self.columns(kw);
                    if cols.is_empty() {
                        continue;
                    }
                    for oy in 0..self.out_h {
                        let Some(iy) = (oy * s + kh).checked_sub(p).filter(|&iy| iy < h) else {
                            continue;
                        };
                        let xs = &xc[iy * wd + cols.start * s + kw - p..(iy + 1) * wd];
                        let row = &mut acc[oy * ow + cols.start..oy * ow + cols.end];
                        if s == 1 {
                            for (a, &xv) in row.iter_mut().zip(xs) {
                                *a += wv * A::from(xv);
                            }
                        } else {
                            for (a, &xv) in row.iter_mut().zip(xs.iter().step_by(s)) {
                                *a += wv * A::from(xv);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Accumulators (before bias) for `tokens` activation vectors `x` (`[tokens][inputs]`), as
/// `[tokens][out]`.
pub fn accumulators(cfg: &AccelConfig, layer: &FcLayer, x: &[i8]) -> Vec<i64> {
    PreparedLayer::new(cfg, layer).accumulators(x)
}

/// Runs a layer on `tokens` activation vectors (`x.len() = tokens × inputs`); returns
/// `[tokens][out]` int8 outputs.
pub fn run_layer(cfg: &AccelConfig, layer: &FcLayer, x: &[i8]) -> Vec<i8> {
    PreparedLayer::new(cfg, layer).run(x)
}

/// Runs a convolution layer (`layer.conv` is `Some`) on `dims.images` images `x`
/// (`[images][in_channels][height][width]`, row-major); returns the int8 outputs
/// `[images][out][H'][W']` (see [`PreparedLayer::run_conv`]).
///
/// # Errors
///
/// A fully connected layer (`layer.conv` is `None`): "layer `name`: not a convolution …".
///
/// # Panics
///
/// When the shapes do not match (the caller checks them): `x.len()` must be `images ·
/// in_channels · height · width` and the output must have at least one pixel.
pub fn run_conv(
    cfg: &AccelConfig,
    layer: &FcLayer,
    x: &[i8],
    dims: ImageDims,
) -> Result<Vec<i8>, LayerError> {
    let conv = layer.conv.ok_or_else(|| LayerError {
        layer: layer.name.clone(),
        why: "not a convolution (the layer has no kernel shape)".into(),
    })?;
    Ok(PreparedLayer::new(cfg, layer).run_conv(&conv, x, dims))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebuild_term_exhaustive_matches_multiplication() {
        for b in i8::MIN..=i8::MAX {
            for code in 0..16u8 {
                for neg in [false, true] {
                    let want = i32::from(b) * (1 << code) * if neg { -1 } else { 1 };
                    assert_eq!(rebuild_term(b, Coef::Pow2 { neg, code }), want);
                }
            }
            assert_eq!(rebuild_term(b, Coef::Zero), 0);
        }
    }

    #[test]
    fn wrequant_rounds_half_up_and_saturates() {
        assert_eq!(wrequant(3, 1), 2); // 1.5 → 2
        assert_eq!(wrequant(-3, 1), -1); // -1.5 → -1 (half up)
        assert_eq!(wrequant(-5, 1), -2); // -2.5 → -2
        assert_eq!(wrequant(255, 1), 127); // 127.5 → 128 → saturate
        assert_eq!(wrequant(-257, 1), -128); // -128.5 → -128
        assert_eq!(wrequant(-259, 1), -128); // -129.5 → -129 → saturate
        assert_eq!(wrequant(200, 0), 127);
        assert_eq!(wrequant(-200, 0), -128);
    }

    #[test]
    fn out_requant_examples() {
        // (10 + 2) * 3 = 36, >> 3 with rounding: (36 + 4) >> 3 = 5
        assert_eq!(out_requant(10, 2, 3, 3, false), 5);
        assert_eq!(out_requant(-100, 0, 1, 0, false), -100);
        assert_eq!(out_requant(-100, 0, 1, 0, true), 0);
        assert_eq!(out_requant(1 << 30, 0, u16::MAX, 0, false), 127);
        assert_eq!(
            out_requant(-(1 << 30), -(1 << 30), u16::MAX, 31, false),
            -128
        );
    }

    #[test]
    fn wrap_signed_edges() {
        assert_eq!(wrap_signed(1 << 31, 32), -(1 << 31));
        assert_eq!(wrap_signed(-5, 16), -5);
        assert_eq!(wrap_signed(40000, 16), 40000 - 65536);
    }
}
