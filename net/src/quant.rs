//! The int8 network: calibration, SmartDeal compression of the linear layers, and the layers
//! run on an engine.
//!
//! Number formats (docs/networks.md): every linear layer's input is quantized with one
//! symmetric per-tensor scale, `x_int = clamp(round(x / s_x), −127, 127)`, `s_x = max|x| / 127`
//! over the calibration sentences; its int8 output means `y = s_y[o] · y_int[o]` with one scale
//! per output channel, `s_y[o] = max|y[·, o]| / 127` (the accelerator's output requant is per
//! channel, and MiniLM's FFN outputs have a few outlier channels that one per-tensor scale would
//! let swamp the rest). Everything between linear layers is f32 on the host.

use crate::minilm::{FloatLinears, Linears, MiniLm};
use crate::NetError;
use candle_core::{Device, Tensor};
use smartdeal_core::{AccelConfig, FcLayer, Model};
use smartdeal_decomp::block::Options as BlockOptions;
use smartdeal_decomp::budget::{global_masks, Budget, LayerRows};
use smartdeal_decomp::integer::{to_int_layer, IntOptions};
use smartdeal_decomp::layer::{decompose_tensor_masked, FloatLayer, LayerOptions, Objective};
use smartdeal_decomp::linalg::M3;
use smartdeal_decomp::moments::RowMoments;
use smartdeal_host::{Engine, Loaded, RunStats};
use std::collections::BTreeMap;

/// Largest int8 code used for activations: symmetric, so −128 is never produced.
pub const ACT_MAX: f32 = 127.0;

/// What calibration measured, per linear layer.
#[derive(Debug, Clone, Default)]
pub struct Calibration {
    /// `max |x|` over the layer's inputs.
    pub in_max: BTreeMap<String, f32>,
    /// `max |y[·, o]|` per output channel.
    pub out_max: BTreeMap<String, Vec<f32>>,
    /// Per Ce row of the layer, `Σ x_r x_rᵀ` over every token's input (the activation-aware
    /// objective's statistics, docs/decomposition.md §2.1).
    pub moments: BTreeMap<String, RowMoments>,
    /// Sentences seen.
    pub sentences: usize,
}

impl Calibration {
    /// Layer `name`'s input moments `H_r` (means over the calibration tokens).
    pub fn row_moments(&self, name: &str) -> Result<Vec<M3>, NetError> {
        self.moments.get(name).map(RowMoments::mean).ok_or_else(|| {
            NetError::Compress(format!("layer `{name}` has no calibrated input moments"))
        })
    }

    /// Layer `name`'s input scale and per-output-channel scales (`max / 127`).
    pub fn scales(&self, name: &str) -> Result<(f32, Vec<f32>), NetError> {
        let missing = || NetError::Compress(format!("layer `{name}` was not calibrated"));
        let s_in = scale_of(*self.in_max.get(name).ok_or_else(missing)?);
        let s_out = self
            .out_max
            .get(name)
            .ok_or_else(missing)?
            .iter()
            .map(|&v| scale_of(v))
            .collect();
        Ok((s_in, s_out))
    }
}

/// Float layers that record their input and output ranges.
struct Recorder<'a> {
    float: FloatLinears<'a>,
    cal: &'a mut Calibration,
}

impl Linears for Recorder<'_> {
    fn linear(&mut self, name: &str, x: &Tensor) -> Result<Tensor, NetError> {
        let y = self.float.linear(name, x)?;
        let xm = x.abs()?.max_all()?.to_scalar::<f32>()?;
        let e = self.cal.in_max.entry(name.to_string()).or_insert(0.0);
        *e = e.max(xm);
        let inputs = x.dim(candle_core::D::Minus1)?;
        self.cal
            .moments
            .entry(name.to_string())
            .or_insert_with(|| RowMoments::new(inputs.div_ceil(3)))
            .add_vectors(&x.flatten_all()?.to_vec1::<f32>()?, inputs);
        let ym = y.abs()?.max(0)?.to_vec1::<f32>()?;
        let o = self
            .cal
            .out_max
            .entry(name.to_string())
            .or_insert_with(|| vec![0.0; ym.len()]);
        for (a, b) in o.iter_mut().zip(ym) {
            *a = a.max(b);
        }
        Ok(y)
    }
}

/// Runs the float graph on `sentences` and records every linear layer's ranges.
pub fn calibrate(
    m: &MiniLm,
    sentences: &[String],
    progress: &dyn Fn(),
) -> Result<Calibration, NetError> {
    let mut cal = Calibration::default();
    for s in sentences {
        let t = m.tokenize(s)?;
        let mut rec = Recorder {
            float: FloatLinears { model: m },
            cal: &mut cal,
        };
        m.encode(&t, &mut rec)?;
        cal.sentences += 1;
        progress();
    }
    Ok(cal)
}

/// How the linear layers are compressed.
#[derive(Debug, Clone)]
pub struct CompressOptions {
    pub block: BlockOptions,
    pub group_size: usize,
    pub prune_ratio: f64,
    /// What the decomposition minimizes; [`Objective::Output`] reads the calibration's input
    /// moments, for the block fits and for choosing the pruned rows.
    pub objective: Objective,
    /// Whether `prune_ratio` applies to every layer or to the network as a whole.
    pub budget: Budget,
}

impl CompressOptions {
    /// The input moments layer `name`'s decomposition reads (`None` under the weight objective):
    /// `moments()` gives them.
    pub fn moments_for(
        &self,
        moments: impl FnOnce() -> Result<Vec<M3>, NetError>,
    ) -> Result<Option<Vec<M3>>, NetError> {
        match self.objective {
            Objective::Weight => Ok(None),
            Objective::Output => moments().map(Some),
        }
    }

    /// The decomposition's options for one layer.
    pub fn layer_options(&self) -> LayerOptions {
        LayerOptions {
            block: self.block.clone(),
            group_size: self.group_size,
            prune_ratio: self.prune_ratio,
        }
    }
}

impl Default for CompressOptions {
    fn default() -> Self {
        CompressOptions {
            block: BlockOptions::default(),
            group_size: 32,
            prune_ratio: 0.0,
            objective: Objective::Weight,
            budget: Budget::Layer,
        }
    }
}

/// A compressed linear layer and its activation scales.
#[derive(Debug, Clone)]
pub struct QLayer {
    pub fc: FcLayer,
    /// Real value of one input step.
    pub s_in: f32,
    /// Real value of one output step, per output channel.
    pub s_out: Vec<f32>,
}

/// A decomposed layer before the integer conversion: its name, the float decomposition and
/// its bias.
pub type FloatLinear = (String, FloatLayer, Vec<f32>);

/// A layer to decompose: its name, weight shape and C-order weights, bias, and input moments
/// (under the output objective).
pub(crate) struct Source {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
    pub bias: Vec<f32>,
    pub moments: Option<Vec<M3>>,
}

/// The float SmartDeal decomposition of `sources` (`progress` once per layer): each layer
/// pruned by its own ratio, or, with [`Budget::Global`], all by one mask set
/// ([`global_masks`]) at row density `1 − prune_ratio`.
pub(crate) fn decompose_sources(
    sources: Vec<Source>,
    opts: &CompressOptions,
    progress: &dyn Fn(),
) -> Result<Vec<FloatLinear>, NetError> {
    let lo = opts.layer_options();
    let masks = if opts.budget == Budget::Global && opts.prune_ratio > 0.0 {
        let rows: Vec<LayerRows> = sources
            .iter()
            .map(|s| LayerRows {
                shape: &s.shape,
                data: &s.data,
                moments: s.moments.as_deref(),
            })
            .collect();
        Some(
            global_masks(&rows, opts.group_size, 1.0 - opts.prune_ratio)
                .map_err(NetError::Compress)?,
        )
    } else {
        None
    };
    let mut out = Vec::new();
    for (i, s) in sources.into_iter().enumerate() {
        let mask = masks.as_ref().map(|m| &m[i]);
        let h = s.moments.as_deref();
        let fl = decompose_tensor_masked(&s.name, &s.shape, &s.data, &lo, h, mask, &|_| {})
            .map_err(|why| NetError::Compress(format!("layer `{}`: {why}", s.name)))?;
        out.push((s.name, fl, s.bias));
        progress();
    }
    Ok(out)
}

/// The float SmartDeal decomposition of every encoder linear layer (`progress` once per
/// layer); under the output objective with `cal`'s input moments.
pub fn decompose_layers(
    m: &MiniLm,
    cal: &Calibration,
    opts: &CompressOptions,
    progress: &dyn Fn(),
) -> Result<Vec<FloatLinear>, NetError> {
    let mut sources = Vec::new();
    for name in m.linear_names() {
        let w = m.tensor(&format!("{name}.weight"))?;
        let (rows, cols) = w.dims2()?;
        sources.push(Source {
            shape: vec![rows, cols],
            data: w.flatten_all()?.to_vec1::<f32>()?,
            bias: m.tensor(&format!("{name}.bias"))?.to_vec1::<f32>()?,
            moments: opts.moments_for(|| cal.row_moments(&name))?,
            name,
        });
    }
    decompose_sources(sources, opts, progress)
}

/// The accelerator's integer layers for `cfg` of decomposed layers ([`decompose_layers`]),
/// with the calibrated scales; each checked to fit `cfg` (`progress` once per layer).
pub fn int_layers(
    floats: &[FloatLinear],
    cal: &Calibration,
    cfg: &AccelConfig,
    opts: &CompressOptions,
    progress: &dyn Fn(),
) -> Result<Vec<QLayer>, NetError> {
    let mut out = Vec::new();
    for (name, fl, b) in floats {
        let (s_in, s_out) = cal.scales(name)?;
        let io = int_options(cfg, opts, s_in, &s_out, false);
        let (fc, _) = to_int_layer(fl, Some(b), &io)
            .map_err(|why| NetError::Compress(format!("layer `{name}`: {why}")))?;
        fc.check_fits(cfg)
            .map_err(|e| NetError::Compress(format!("layer `{name}`: {e}")))?;
        out.push(QLayer { fc, s_in, s_out });
        progress();
    }
    Ok(out)
}

/// The integer conversion's options for `cfg` with the given activation scales.
pub(crate) fn int_options(
    cfg: &AccelConfig,
    opts: &CompressOptions,
    s_in: f32,
    s_out: &[f32],
    relu: bool,
) -> IntOptions {
    IntOptions {
        exp_bits: cfg.exp_bits as u8,
        basis_bits: cfg.basis_bits,
        weight_requant: cfg.weight_requant,
        group_size: opts.group_size as u32,
        act_scale: f64::from(s_in),
        out_scale: None,
        out_scales: Some(s_out.iter().map(|&s| f64::from(s)).collect()),
        relu,
    }
}

/// The SmartDeal form of every encoder linear layer, converted to the accelerator's integers
/// for `cfg` with the calibrated scales: [`decompose_layers`], then [`int_layers`].
pub fn compress(
    m: &MiniLm,
    cal: &Calibration,
    cfg: &AccelConfig,
    opts: &CompressOptions,
    progress: &dyn Fn(),
) -> Result<Vec<QLayer>, NetError> {
    let floats = decompose_layers(m, cal, opts, progress)?;
    int_layers(&floats, cal, cfg, opts, &|| {})
}

/// The scale that maps `max` to the largest code (a zero range gets scale 1: all codes 0).
pub(crate) fn scale_of(max: f32) -> f32 {
    if max > 0.0 && max.is_finite() {
        max / ACT_MAX
    } else {
        1.0
    }
}

/// What the compressed layers cost: bits per weight (the `.sdm` file's bytes over the weights
/// it encodes) and the fraction of Ce rows present.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Footprint {
    pub weights: u64,
    pub file_bytes: u64,
    pub bits_per_weight: f64,
    pub row_density: f64,
}

pub fn footprint(layers: &[QLayer]) -> Footprint {
    let model = Model {
        layers: layers.iter().map(|q| q.fc.clone()).collect(),
    };
    let file_bytes = smartdeal_decomp::pipeline::model_file_bytes(&model);
    let weights: u64 = layers
        .iter()
        .map(|q| u64::from(q.fc.inputs) * u64::from(q.fc.outputs))
        .sum();
    let (present, total) = layers.iter().fold((0u64, 0u64), |(p, t), q| {
        let rows = q.fc.rows() as u64 * u64::from(q.fc.outputs);
        let pr = (0..q.fc.outputs as usize)
            .map(|o| {
                (0..q.fc.rows())
                    .filter(|&r| q.fc.row_is_present(o, r))
                    .count() as u64
            })
            .sum::<u64>();
        (p + pr, t + rows)
    });
    Footprint {
        weights,
        file_bytes,
        bits_per_weight: file_bytes as f64 * 8.0 / weights as f64,
        row_density: present as f64 / total as f64,
    }
}

/// The linear layers as int8 layers on an engine, each loaded once.
pub struct IntLinears<'a> {
    engine: &'a mut dyn Engine,
    /// By layer name: the engine's handle, the input scale and the per-channel output scales.
    layers: BTreeMap<String, (Loaded, f32, Vec<f32>)>,
    /// The engine's counts, summed over every layer run.
    pub stats: RunStats,
}

impl<'a> IntLinears<'a> {
    /// Loads every layer of `layers` into `engine`.
    pub fn new(engine: &'a mut dyn Engine, layers: &[QLayer]) -> Result<IntLinears<'a>, NetError> {
        let mut loaded = BTreeMap::new();
        for q in layers {
            let h = engine.load(&q.fc).map_err(|err| NetError::Engine {
                layer: q.fc.name.clone(),
                err,
            })?;
            loaded.insert(q.fc.name.clone(), (h, q.s_in, q.s_out.clone()));
        }
        Ok(IntLinears {
            engine,
            layers: loaded,
            stats: RunStats::default(),
        })
    }
}

/// `x` (f32, `[T, in]`) as int8 codes of scale `s`.
pub fn quantize(x: &Tensor, s: f32) -> Result<Vec<i8>, NetError> {
    Ok(x.flatten_all()?
        .to_vec1::<f32>()?
        .into_iter()
        .map(|v| (v / s).round().clamp(-ACT_MAX, ACT_MAX) as i8)
        .collect())
}

impl Linears for IntLinears<'_> {
    fn linear(&mut self, name: &str, x: &Tensor) -> Result<Tensor, NetError> {
        let (h, s_in, s_out) = self
            .layers
            .get(name)
            .ok_or_else(|| NetError::Compress(format!("no compressed layer `{name}`")))?;
        let (t, _) = x.dims2()?;
        let xi = quantize(x, *s_in)?;
        let (yi, st) = self.engine.run(*h, &xi).map_err(|err| NetError::Engine {
            layer: name.to_string(),
            err,
        })?;
        self.stats.add(&st);
        let m = s_out.len();
        let y: Vec<f32> = yi
            .iter()
            .enumerate()
            .map(|(i, &v)| f32::from(v) * s_out[i % m])
            .collect();
        Ok(Tensor::from_vec(y, (t, m), &Device::Cpu)?)
    }
}
