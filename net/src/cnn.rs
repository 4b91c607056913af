//! The MNIST CNN in int8 on an engine: calibration, the SmartDeal and the dense int8 forms of
//! its four layers, and the network run with int8 activations between layers.
//!
//! Number formats (docs/networks.md, "MNIST CNN"):
//! - the input is quantized on the host with one symmetric scale, `s_0 = max|x| / 127` over the
//!   calibration images (`x` normalized);
//! - a hidden layer's output requantization (on the engine, ReLU flag set) produces int8 codes
//!   at the next layer's input scale, `s_{i+1} = max(ReLU output) / 127` over the calibration
//!   images: the codes go from layer to layer unchanged, max pooling and flatten in between on
//!   the host (max pooling commutes with the monotone output requantization, so pooling the
//!   int8 outputs is exact);
//! - the logits have one scale per class, `s[o] = max|logit_o| / 127`, and the top-1 class is
//!   the largest `s[o] · y_int[o]`.

use crate::digits::{Digits, PIXELS};
use crate::mnist::{input, top1, MnistNet, LAYERS, SIDE};
use crate::quant::{quantize, CompressOptions, QLayer, ACT_MAX};
use crate::NetError;
use smartdeal_core::{AccelConfig, Coef, ConvShape, FcLayer, ImageDims};
use smartdeal_decomp::integer::{to_int_layer, IntOptions};
use smartdeal_decomp::layer::{decompose_tensor, LayerOptions};
use smartdeal_host::{Engine, Loaded, RunStats};

/// What calibration measured on the float network.
#[derive(Debug, Clone, PartialEq)]
pub struct CnnCalibration {
    /// `max |x|` of the normalized input.
    pub input_max: f32,
    /// The largest ReLU output of each hidden layer (pooling keeps the maximum).
    pub hidden_max: Vec<f32>,
    /// `max |logit|` per class.
    pub logit_max: Vec<f32>,
    /// Images seen.
    pub images: usize,
}

/// The scale that maps `max` to the largest code (a zero range gets scale 1: all codes 0).
fn scale_of(max: f32) -> f32 {
    if max > 0.0 && max.is_finite() {
        max / ACT_MAX
    } else {
        1.0
    }
}

impl CnnCalibration {
    /// The input scale of layer `i`.
    pub fn input_scale(&self, i: usize) -> f32 {
        scale_of(if i == 0 {
            self.input_max
        } else {
            self.hidden_max[i - 1]
        })
    }

    /// The output scales of layer `i`, per output channel: the next layer's input scale for a
    /// hidden layer, one per class for the logits.
    pub fn output_scales(&self, i: usize) -> Vec<f32> {
        if i + 1 < LAYERS.len() {
            vec![self.input_scale(i + 1); LAYERS[i].outputs()]
        } else {
            self.logit_max.iter().map(|&m| scale_of(m)).collect()
        }
    }
}

/// Runs the float network on `images` (in batches of `batch`) and records the ranges.
pub fn calibrate(
    net: &MnistNet,
    images: &Digits,
    batch: usize,
) -> Result<CnnCalibration, NetError> {
    let mut cal = CnnCalibration {
        input_max: 0.0,
        hidden_max: vec![0.0; LAYERS.len() - 1],
        logit_max: vec![0.0; LAYERS[LAYERS.len() - 1].outputs()],
        images: 0,
    };
    for start in (0..images.len()).step_by(batch.max(1)) {
        let end = (start + batch.max(1)).min(images.len());
        let t = net.trace(&input(&images.pixels[start * PIXELS..end * PIXELS])?)?;
        let max_of = |x: &candle_core::Tensor| -> Result<f32, NetError> {
            Ok(x.abs()?.max_all()?.to_scalar::<f32>()?)
        };
        cal.input_max = cal.input_max.max(max_of(&t.input)?);
        for (m, y) in cal.hidden_max.iter_mut().zip(&t.outputs) {
            *m = m.max(max_of(y)?);
        }
        let logits = t.outputs.last().expect("four layers");
        let per_class = logits.abs()?.max(0)?.to_vec1::<f32>()?;
        for (m, v) in cal.logit_max.iter_mut().zip(per_class) {
            *m = m.max(v);
        }
        cal.images += end - start;
    }
    Ok(cal)
}

/// The convolution geometry of the network's 3×3 layers.
fn conv_shape(i: usize) -> Option<ConvShape> {
    LAYERS[i].is_conv().then(|| ConvShape {
        in_channels: LAYERS[i].in_channels() as u32,
        kernel: 3,
        stride: 1,
        padding: 1,
    })
}

/// The SmartDeal form of the four layers (decomposed like `smartdeal decompose` does, the
/// kernels as 3×3 convolutions), converted to the accelerator's integers for `cfg` with the
/// calibrated scales.
pub fn compress(
    net: &MnistNet,
    cal: &CnnCalibration,
    cfg: &AccelConfig,
    opts: &CompressOptions,
    progress: &dyn Fn(),
) -> Result<Vec<QLayer>, NetError> {
    let mut out = Vec::new();
    for (i, spec) in LAYERS.iter().enumerate() {
        let name = spec.name;
        let why = |w: String| NetError::Compress(format!("layer `{name}`: {w}"));
        let data = net.weight(i).flatten_all()?.to_vec1::<f32>()?;
        let b = net.bias(i).to_vec1::<f32>()?;
        let lo = LayerOptions {
            block: opts.block.clone(),
            group_size: opts.group_size,
            prune_ratio: opts.prune_ratio,
        };
        let fl = decompose_tensor(name, spec.shape, &data, &lo, &|_| {}).map_err(why)?;
        let s_in = cal.input_scale(i);
        let s_out = cal.output_scales(i);
        let io = IntOptions {
            exp_bits: cfg.exp_bits as u8,
            basis_bits: cfg.basis_bits,
            weight_requant: cfg.weight_requant,
            group_size: opts.group_size as u32,
            act_scale: f64::from(s_in),
            out_scale: None,
            out_scales: Some(s_out.iter().map(|&s| f64::from(s)).collect()),
            relu: i + 1 < LAYERS.len(),
        };
        let (mut fc, _) = to_int_layer(&fl, Some(&b), &io).map_err(why)?;
        fc.conv = conv_shape(i);
        fc.check_fits(cfg).map_err(|e| why(e.why))?;
        out.push(QLayer { fc, s_in, s_out });
        progress();
    }
    Ok(out)
}

/// `m` as the output stage's `M / 2^sh`: the largest `sh ≤ 31` for which `M = round(m · 2^sh)`
/// fits 16 bits (`M = 65535, sh = 0` if `m` itself does not) — the rule of
/// `docs/decomposition.md` §4.5.
fn out_multiplier(m: f64) -> (u16, u8) {
    let mmax = f64::from(u16::MAX);
    if m.round() > mmax {
        return (u16::MAX, 0);
    }
    let mut sh = 0;
    while sh < 31 && (m * 2f64.powi(sh + 1)).round() <= mmax {
        sh += 1;
    }
    ((m * 2f64.powi(sh)).round() as u16, sh as u8)
}

/// One layer with plain int8 weights: per-output-channel symmetric quantization
/// `w8 = clamp(round(w / s_w[o]), −127, 127)`, `s_w[o] = max|w[o, ·]| / 127`, written in the
/// layer format so that the MAC array sees exactly `w8` (every row its own block whose basis'
/// first row holds the row's three weights, coefficient `+2^0` on it, weight shift 0). A dense
/// accelerator configuration streams these int8 weights; the SmartDeal decomposition is not
/// involved.
fn dense_layer(net: &MnistNet, cal: &CnnCalibration, i: usize) -> Result<FcLayer, NetError> {
    let spec = LAYERS[i];
    let outs = spec.outputs();
    let w = net.weight(i).flatten_all()?.to_vec1::<f32>()?;
    let b = net.bias(i).to_vec1::<f32>()?;
    let ins = w.len() / outs;
    let rows = ins.div_ceil(3);
    let s_in = f64::from(cal.input_scale(i));
    let s_out = cal.output_scales(i);
    let mut basis = Vec::with_capacity(outs * rows);
    let (mut bias, mut out_mult, mut out_shift) = (vec![], vec![], vec![]);
    for o in 0..outs {
        let wo = &w[o * ins..(o + 1) * ins];
        let wmax = wo.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let s_w = f64::from(scale_of(wmax));
        let q = |j: usize| -> i8 {
            wo.get(j).map_or(0, |&v| {
                (f64::from(v) / s_w).round().clamp(-127.0, 127.0) as i8
            })
        };
        for r in 0..rows {
            basis.push([[q(3 * r), q(3 * r + 1), q(3 * r + 2)], [0; 3], [0; 3]]);
        }
        let unit = s_in * s_w; // the real value of one accumulator step
        let bi = (f64::from(b[o]) / unit).round();
        bias.push(bi.clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32);
        let (m, sh) = out_multiplier(unit / f64::from(s_out[o]));
        out_mult.push(m);
        out_shift.push(sh);
    }
    let one = Coef::Pow2 {
        neg: false,
        code: 0,
    };
    let group_size = 32;
    let layer = FcLayer {
        name: spec.name.to_string(),
        inputs: ins as u32,
        outputs: outs as u32,
        rows_per_block: 1,
        group_size,
        exp_bits: 3,
        e_lo: 0,
        relu: i + 1 < LAYERS.len(),
        row_present: vec![vec![true; rows]; outs.div_ceil(group_size as usize)],
        basis,
        coef: (0..outs * rows)
            .flat_map(|_| [one, Coef::Zero, Coef::Zero])
            .collect(),
        wshift: vec![0; outs],
        bias,
        out_mult,
        out_shift,
        conv: conv_shape(i),
    };
    Ok(layer)
}

/// The dense int8 model: the four layers with plain per-channel int8 weights ([`dense_layer`])
/// and the same activation scales as the SmartDeal model, for `cfg`'s dense baseline
/// ([`AccelConfig::dense_baseline`]).
pub fn dense(
    net: &MnistNet,
    cal: &CnnCalibration,
    cfg: &AccelConfig,
) -> Result<Vec<QLayer>, NetError> {
    let dense_cfg = cfg.dense_baseline();
    (0..LAYERS.len())
        .map(|i| {
            let fc = dense_layer(net, cal, i)?;
            fc.check_fits(&dense_cfg)
                .map_err(|e| NetError::Compress(e.to_string()))?;
            Ok(QLayer {
                fc,
                s_in: cal.input_scale(i),
                s_out: cal.output_scales(i),
            })
        })
        .collect()
}

/// 2×2 max pooling, stride 2 (odd sizes rounded down, as PyTorch's `MaxPool2d(2)`), of
/// `planes` planes `[h][w]`.
pub fn max_pool2(x: &[i8], planes: usize, h: usize, w: usize) -> Vec<i8> {
    let (oh, ow) = (h / 2, w / 2);
    let mut out = Vec::with_capacity(planes * oh * ow);
    for p in x.chunks(h * w).take(planes) {
        for y in 0..oh {
            for xx in 0..ow {
                let at = |dy: usize, dx: usize| p[(2 * y + dy) * w + 2 * xx + dx];
                out.push(at(0, 0).max(at(0, 1)).max(at(1, 0)).max(at(1, 1)));
            }
        }
    }
    out
}

/// The four int8 layers loaded into an engine.
pub struct IntCnn<'a> {
    engine: &'a mut dyn Engine,
    handles: Vec<Loaded>,
    names: Vec<String>,
    s_in: f32,
    s_logits: Vec<f32>,
    /// The engine's counts, summed over every layer run.
    pub stats: RunStats,
}

impl<'a> IntCnn<'a> {
    /// Loads `layers` (the four layers of [`LAYERS`], e.g. from [`compress`] or [`dense`]).
    pub fn new(engine: &'a mut dyn Engine, layers: &[QLayer]) -> Result<IntCnn<'a>, NetError> {
        let shapes_ok = layers.len() == LAYERS.len()
            && layers.iter().zip(LAYERS).enumerate().all(|(i, (q, s))| {
                q.fc.outputs as usize == s.outputs()
                    && q.fc.inputs as usize == s.shape[1..].iter().product::<usize>()
                    && q.fc.conv == conv_shape(i)
            });
        if !shapes_ok {
            return Err(NetError::Compress(
                "the layers are not the MNIST CNN's four layers".into(),
            ));
        }
        let mut handles = Vec::new();
        for q in layers {
            handles.push(engine.load(&q.fc).map_err(|err| NetError::Engine {
                layer: q.fc.name.clone(),
                err,
            })?);
        }
        Ok(IntCnn {
            engine,
            handles,
            names: layers.iter().map(|q| q.fc.name.clone()).collect(),
            s_in: layers[0].s_in,
            s_logits: layers[LAYERS.len() - 1].s_out.clone(),
            stats: RunStats::default(),
        })
    }

    fn run(&mut self, i: usize, x: &[i8], dims: Option<ImageDims>) -> Result<Vec<i8>, NetError> {
        let h = self.handles[i];
        let r = match dims {
            Some(d) => self.engine.run_images(h, x, d),
            None => self.engine.run(h, x),
        };
        let (y, st) = r.map_err(|err| NetError::Engine {
            layer: self.names[i].clone(),
            err,
        })?;
        self.stats.add(&st);
        Ok(y)
    }

    /// The logits `[n][10]` (real values: `s[o] · y_int[o]`) of images `pixels` (`[n][784]`).
    pub fn logits(&mut self, pixels: &[f32]) -> Result<Vec<f32>, NetError> {
        let n = pixels.len() / PIXELS;
        let mut x = quantize(&input(pixels)?, self.s_in)?;
        let mut side = SIDE;
        for (i, spec) in LAYERS.iter().enumerate() {
            x = if spec.is_conv() {
                let dims = ImageDims {
                    images: n,
                    height: side,
                    width: side,
                };
                let y = self.run(i, &x, Some(dims))?;
                let pooled = max_pool2(&y, n * spec.outputs(), side, side);
                side /= 2;
                pooled // [n][C][side][side]: flattened in C·H·W order for the linear layers
            } else {
                self.run(i, &x, None)?
            };
        }
        let m = self.s_logits.len();
        Ok(x.iter()
            .enumerate()
            .map(|(k, &v)| f32::from(v) * self.s_logits[k % m])
            .collect())
    }

    /// The top-1 classes of images `pixels`.
    pub fn classify(&mut self, pixels: &[f32]) -> Result<Vec<u8>, NetError> {
        let l = self.logits(pixels)?;
        Ok(top1(&l, self.s_logits.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_pool_takes_the_largest_of_each_window() {
        #[rustfmt::skip]
        let x: Vec<i8> = vec![
            1, 2, 0, -5, 9,
            3, 4, -1, -2, 9,
            5, 6, 7, 8, 9,
            // two planes of 3×5: the odd row and column are dropped
            -1, -2, -3, -4, 0,
            -5, -6, -7, -8, 0,
            0, 0, 0, 0, 0,
        ];
        assert_eq!(max_pool2(&x, 2, 3, 5), vec![4, 0, -1, -3]);
    }

    #[test]
    fn out_multiplier_keeps_16_bits() {
        assert_eq!(out_multiplier(0.5), (32768, 16));
        assert_eq!(out_multiplier(1e6), (u16::MAX, 0));
        let (m, sh) = out_multiplier(0.001234);
        assert!(m > 32767 && (f64::from(m) / 2f64.powi(i32::from(sh)) - 0.001234).abs() < 1e-8);
    }
}
