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

use crate::dense::int8_layer;
use crate::digits::{Digits, PIXELS};
use crate::mnist::{input, top1, LayerSpec, MnistNet, Trace, LAYERS, SIDE};
use crate::quant::{
    decompose_sources, int_options, quantize, scale_of, CompressOptions, FloatLinear, QLayer,
    Source,
};
use crate::NetError;
use smartdeal_core::{AccelConfig, ConvShape, FcLayer, ImageDims};
use smartdeal_decomp::integer::to_int_layer;
use smartdeal_decomp::moments::RowMoments;
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
    /// Each layer's input moments per Ce row (a convolution's over every output pixel, zero
    /// padding included; docs/decomposition.md §2.1).
    pub moments: Vec<RowMoments>,
    /// Images seen.
    pub images: usize,
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
        moments: LAYERS
            .iter()
            .map(|s| RowMoments::new(row_count(s)))
            .collect(),
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
        add_moments(&mut cal.moments, &t)?;
        cal.images += end - start;
    }
    Ok(cal)
}

/// Ce rows of a layer: a 3×3 convolution's `cin · 3` kernel rows, a linear layer's input
/// triples.
fn row_count(s: &LayerSpec) -> usize {
    if s.is_conv() {
        s.in_channels() * 3
    } else {
        s.in_channels().div_ceil(3)
    }
}

/// Adds every layer's float input in `t` to its moments: the image, then the pooled outputs
/// of the convolutions (flattened for the first linear layer), then the hidden linear output.
fn add_moments(moments: &mut [RowMoments], t: &Trace) -> Result<(), NetError> {
    let mut x = t.input.clone();
    for (i, spec) in LAYERS.iter().enumerate() {
        let v = x.flatten_all()?.to_vec1::<f32>()?;
        if spec.is_conv() {
            let (_, c, h, w) = x.dims4()?;
            moments[i].add_conv3x3(&v, c, (h, w), 1, 1);
            x = t.outputs[i].max_pool2d(2)?;
        } else {
            moments[i].add_vectors(&v, spec.in_channels());
            x = t.outputs[i].clone();
        }
    }
    Ok(())
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

/// The float SmartDeal decomposition of the four layers (decomposed like `smartdeal
/// decompose` does, the kernels as 3×3 convolutions; `progress` once per layer); under the
/// output objective with `cal`'s input moments.
pub fn decompose_layers(
    net: &MnistNet,
    cal: &CnnCalibration,
    opts: &CompressOptions,
    progress: &dyn Fn(),
) -> Result<Vec<FloatLinear>, NetError> {
    let mut sources = Vec::new();
    for (i, spec) in LAYERS.iter().enumerate() {
        sources.push(Source {
            name: spec.name.to_string(),
            shape: spec.shape.to_vec(),
            data: net.weight(i).flatten_all()?.to_vec1::<f32>()?,
            bias: net.bias(i).to_vec1::<f32>()?,
            moments: opts.moments_for(|| Ok(cal.moments[i].mean()))?,
        });
    }
    decompose_sources(sources, opts, progress)
}

/// The accelerator's integer layers for `cfg` of the decomposed four layers
/// ([`decompose_layers`], in [`LAYERS`] order) with the calibrated scales, the convolution
/// geometry and ReLU on the hidden layers; each checked to fit `cfg`.
pub fn int_layers(
    floats: &[FloatLinear],
    cal: &CnnCalibration,
    cfg: &AccelConfig,
    opts: &CompressOptions,
    progress: &dyn Fn(),
) -> Result<Vec<QLayer>, NetError> {
    if floats.len() != LAYERS.len() || floats.iter().zip(LAYERS).any(|(f, s)| f.0 != s.name) {
        return Err(NetError::Compress(
            "the layers are not the MNIST CNN's four layers".into(),
        ));
    }
    let mut out = Vec::new();
    for (i, (name, fl, b)) in floats.iter().enumerate() {
        let why = |w: String| NetError::Compress(format!("layer `{name}`: {w}"));
        let s_in = cal.input_scale(i);
        let s_out = cal.output_scales(i);
        let io = int_options(cfg, opts, s_in, &s_out, i + 1 < LAYERS.len());
        let (mut fc, _) = to_int_layer(fl, Some(b), &io).map_err(why)?;
        fc.conv = conv_shape(i);
        fc.check_fits(cfg).map_err(|e| why(e.why))?;
        out.push(QLayer { fc, s_in, s_out });
        progress();
    }
    Ok(out)
}

/// The SmartDeal form of the four layers, converted to the accelerator's integers for `cfg`
/// with the calibrated scales: [`decompose_layers`], then [`int_layers`].
pub fn compress(
    net: &MnistNet,
    cal: &CnnCalibration,
    cfg: &AccelConfig,
    opts: &CompressOptions,
    progress: &dyn Fn(),
) -> Result<Vec<QLayer>, NetError> {
    let floats = decompose_layers(net, cal, opts, progress)?;
    int_layers(&floats, cal, cfg, opts, &|| {})
}

/// One layer of the dense int8 model ([`int8_layer`]): layer `i` of the network with its
/// calibrated scales.
fn dense_layer(net: &MnistNet, cal: &CnnCalibration, i: usize) -> Result<FcLayer, NetError> {
    let spec = LAYERS[i];
    let w = net.weight(i).flatten_all()?.to_vec1::<f32>()?;
    let b = net.bias(i).to_vec1::<f32>()?;
    Ok(int8_layer(
        spec.name,
        &w,
        &b,
        cal.input_scale(i),
        &cal.output_scales(i),
        i + 1 < LAYERS.len(),
        conv_shape(i),
    ))
}

/// The dense int8 model: the four layers with plain per-channel int8 weights ([`crate::dense::int8_layer`])
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
}
