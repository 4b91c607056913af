//! A whole decomposition job: tensors in, a `.sdm`-ready model and a report out.

use crate::batchnorm::Folded;
use crate::conv::ConvSettings;
use crate::integer::{to_int_layer, IntOptions, IntStats};
use crate::layer::{decompose_tensor_with, LayerKind, LayerOptions, Objective};
use crate::linalg::M3;
use crate::moments::RowMoments;
use crate::report::{c_bits, float_stats, FloatStats};
use crate::reshape::{conv3x3_block_rows, fc_split};
use crate::weights::Tensor;
use rayon::prelude::*;
use serde::Serialize;
use smartdeal_core::sdm::{self, layer_storage};
use smartdeal_core::{AccelConfig, ConvShape, FcLayer, Model};
use std::time::Instant;

/// A float activation sample `[t, n]` used to calibrate the scales of layers with `n` inputs.
#[derive(Debug, Clone)]
pub struct Calibration {
    pub n: usize,
    pub data: Vec<f32>,
}

/// Everything a job needs besides the tensors.
#[derive(Debug, Clone)]
pub struct Settings {
    pub layer: LayerOptions,
    /// One structural pruning ratio per selected tensor, in order (overrides `layer.prune_ratio`).
    pub prune_ratios: Option<Vec<f64>>,
    pub int: IntOptions,
    pub calib: Option<Calibration>,
    /// Stride, padding and groups of convolutions, and the batch norms folded into them.
    pub conv: ConvSettings,
    /// [`Objective::Output`] takes each layer's input moments from `calib` (a layer whose
    /// input count it does not match is an error).
    pub objective: Objective,
}

/// Where a layer's activation scales came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScaleSource {
    /// `--act-scale`, and the output scale from the weight-norm rule (or `--out-scale`).
    Given,
    /// Maximum absolute input and output over the calibration sample.
    Calibrated,
}

/// One tensor's line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct LayerReport {
    pub tensor: String,
    /// Layer name in the `.sdm` (the tensor name without `.weight`); `None` if not written.
    pub layer: Option<String>,
    pub shape: Vec<usize>,
    #[serde(flatten)]
    pub kind: LayerKind,
    /// The written layer's convolution geometry (`None`: fully connected, or not written).
    pub conv: Option<ConvShape>,
    /// The batch norm folded into the weights before the decomposition, if any.
    pub batch_norm: Option<Folded>,
    pub rows: usize,
    pub rows_per_block: usize,
    pub blocks: usize,
    pub pruned_rows: usize,
    #[serde(flatten)]
    pub float: FloatStats,
    /// The integer conversion (fully connected layers only).
    pub int: Option<IntStats>,
    pub scale_source: Option<ScaleSource>,
    /// Bits per weight of the layer's record in the `.sdm` file (its real bytes).
    pub file_bits_per_weight: Option<f64>,
    pub file_bytes: Option<u64>,
    pub compression_vs_fp32: Option<f64>,
    pub compression_vs_int8: Option<f64>,
    /// Whether the layer fits the accelerator configuration (written layers only).
    pub fits_config: Option<bool>,
    /// Why it does not fit, if it does not.
    pub fit_problem: Option<String>,
    /// Why the tensor was not written to the model, if it was not.
    pub note: Option<String>,
    pub seconds: f64,
}

/// Totals over the tensors that were decomposed.
#[derive(Debug, Clone, Serialize)]
pub struct Totals {
    pub tensors: usize,
    pub layers_written: usize,
    pub weights: u64,
    pub float_rel_error: f64,
    pub int_rel_error: Option<f64>,
    pub ce_density: f64,
    pub row_density: f64,
    /// Distinct coefficient magnitudes over the whole network and the paper's `C_bit`.
    pub distinct_magnitudes: usize,
    pub c_bits: u32,
    pub paper_bits_per_weight: f64,
    /// The whole `.sdm` file (header and trailer included) per weight written.
    pub file_bytes: u64,
    pub file_bits_per_weight: f64,
    pub compression_vs_fp32: f64,
    pub compression_vs_int8: f64,
    pub seconds: f64,
    pub weights_per_second: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub format_version: u32,
    pub layers: Vec<LayerReport>,
    pub total: Totals,
}

/// Decomposition blocks a tensor will need (for a progress bar), 0 if it is not decomposable.
pub fn blocks_of(t: &Tensor) -> u64 {
    let rows_blocks = match LayerKind::of_shape(&t.shape) {
        Ok(LayerKind::FullyConnected) => {
            let per_out: usize = t.shape[1..].iter().product();
            let rows = per_out.div_ceil(3);
            rows.div_ceil(fc_split(per_out).1)
        }
        Ok(LayerKind::Conv3x3 { cin }) => (cin * 3).div_ceil(conv3x3_block_rows(cin)),
        Err(_) => 0,
    };
    (t.shape[0] * rows_blocks) as u64
}

/// `sdm` layer name for a tensor: without a trailing `.weight`.
pub fn layer_name(tensor: &str) -> String {
    tensor.strip_suffix(".weight").unwrap_or(tensor).to_string()
}

/// Runs the job. `cfg` is the accelerator the model is meant for (its weight-requant mode is
/// used; fitting is reported, not enforced).
pub fn run(
    tensors: &[Tensor],
    s: &Settings,
    cfg: &AccelConfig,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<(Model, Report), String> {
    if let Some(r) = &s.prune_ratios {
        if r.len() != tensors.len() {
            return Err(format!(
                "{} pruning ratios given for {} selected tensors",
                r.len(),
                tensors.len()
            ));
        }
    }
    let start = Instant::now();
    // Tensors in parallel (each also splits its blocks over the pool), so that one tensor's
    // sequential integer conversion overlaps other tensors' decompositions.
    let outcomes: Vec<Result<Outcome, String>> = tensors
        .par_iter()
        .enumerate()
        .map(|(i, t)| {
            let mut lo = s.layer.clone();
            if let Some(r) = &s.prune_ratios {
                lo.prune_ratio = r[i];
            }
            one_tensor(t, &lo, s, cfg, progress)
        })
        .collect();
    let mut model = Model::default();
    let mut reports = Vec::new();
    let mut magnitudes = std::collections::BTreeSet::new();
    let (mut err_num, mut err_den, mut int_num, mut int_den) = (0.0, 0.0, 0.0, 0.0);
    let (mut nnz, mut numel_ce, mut rows_nz, mut rows_all, mut numel_b, mut weights) =
        (0.0, 0usize, 0.0, 0usize, 0usize, 0u64);
    for o in outcomes {
        let o = o?;
        if let Some(g) = &o.geometry {
            let rep = &o.report;
            weights += g.weights;
            err_num += rep.float.float_rel_error.powi(2) * g.wnorm2;
            err_den += g.wnorm2;
            magnitudes.extend(rep.float.exponents.iter().copied());
            nnz += rep.float.ce_density * g.ce_elems as f64;
            numel_ce += g.ce_elems;
            rows_nz += rep.float.row_density * g.ce_rows as f64;
            rows_all += g.ce_rows;
            numel_b += g.b_elems;
            if let Some(st) = &rep.int {
                int_num += st.int_rel_error.powi(2) * g.wnorm2;
                int_den += g.wnorm2;
            }
        }
        if let Some(layer) = o.layer {
            model.layers.push(layer);
        }
        reports.push(o.report);
    }
    // Each layer was validated by `check_fits`; what is left is the model-level rule.
    let mut names = std::collections::HashSet::new();
    if let Some(l) = model.layers.iter().find(|l| !names.insert(l.name.as_str())) {
        return Err(format!("two tensors map to the layer name `{}`", l.name));
    }
    let seconds = start.elapsed().as_secs_f64();
    let file_bytes = model_file_bytes(&model);
    let written_weights: u64 = model
        .layers
        .iter()
        .map(|l| u64::from(l.inputs) * u64::from(l.outputs))
        .sum();
    let file_bpw = file_bytes as f64 * 8.0 / written_weights.max(1) as f64;
    let cb = c_bits(magnitudes.len());
    let total = Totals {
        tensors: tensors.len(),
        layers_written: model.layers.len(),
        weights,
        float_rel_error: ratio(err_num, err_den),
        int_rel_error: (int_den > 0.0).then(|| ratio(int_num, int_den)),
        ce_density: nnz / numel_ce.max(1) as f64,
        row_density: rows_nz / rows_all.max(1) as f64,
        distinct_magnitudes: magnitudes.len(),
        c_bits: cb,
        paper_bits_per_weight: (f64::from(cb) * nnz + numel_ce as f64 + 8.0 * numel_b as f64)
            / weights.max(1) as f64,
        file_bytes,
        file_bits_per_weight: file_bpw,
        compression_vs_fp32: 32.0 / file_bpw,
        compression_vs_int8: 8.0 / file_bpw,
        seconds,
        weights_per_second: weights as f64 / seconds.max(1e-9),
    };
    Ok((
        model,
        Report {
            format_version: 1,
            layers: reports,
            total,
        },
    ))
}

/// Size of `model`'s `.sdm` file: header, layer records, trailer (`docs/sdm-format.md`), without
/// encoding it.
pub fn model_file_bytes(model: &Model) -> u64 {
    let records: u64 = model.layers.iter().map(|l| layer_storage(l).total).sum();
    (sdm::HEADER_LEN + sdm::TRAILER_LEN) as u64 + records
}

/// Sizes of a decomposed tensor that the totals need.
struct Geometry {
    weights: u64,
    wnorm2: f64,
    ce_elems: usize,
    ce_rows: usize,
    b_elems: usize,
}

struct Outcome {
    report: LayerReport,
    layer: Option<FcLayer>,
    /// `None` for a tensor that was not decomposed.
    geometry: Option<Geometry>,
}

fn one_tensor(
    t: &Tensor,
    lo: &LayerOptions,
    s: &Settings,
    cfg: &AccelConfig,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Outcome, String> {
    let t0 = Instant::now();
    let decomposed = match s.conv.unsupported(t) {
        Some(why) => Err(why),
        None => {
            let h = moments_of(t, s)?;
            decompose_tensor_with(&t.name, &t.shape, &t.data, lo, h.as_deref(), progress)
        }
    };
    let fl = match decomposed {
        Ok(fl) => fl,
        Err(why) => {
            // Not decomposable (e.g. a 7×7 stem, a depthwise convolution): reported, kept out of
            // the model.
            return Ok(Outcome {
                report: skipped(t, why),
                layer: None,
                geometry: None,
            });
        }
    };
    let conv = s
        .conv
        .shape_of(t)
        .map_err(|e| format!("tensor `{}`: {e}", t.name))?;
    let fs = float_stats(&fl);
    let geometry = Geometry {
        weights: (fl.outputs * fl.inputs) as u64,
        wnorm2: t.data.iter().map(|v| f64::from(*v).powi(2)).sum(),
        ce_elems: fl.outputs * fl.rows * 3,
        ce_rows: fl.outputs * fl.rows,
        b_elems: fl.fits.len() * 9,
    };
    let mut rep = LayerReport::new(t, fl.kind, fs);
    rep.batch_norm = s.conv.batch_norms.get(&t.name).cloned();
    rep.rows = fl.rows;
    rep.rows_per_block = fl.rows_per_block;
    rep.blocks = fl.blocks;
    rep.pruned_rows = fl.pruned_rows;
    let mut io = s.int.clone();
    let mut source = ScaleSource::Given;
    if let Some(c) = s.calib.as_ref().filter(|c| c.n == fl.inputs) {
        if let Some((sx, sy)) = calibrate(c, t) {
            io.act_scale = sx;
            io.out_scale = Some(sy);
            source = ScaleSource::Calibrated;
        }
    }
    let (mut layer, st) = to_int_layer(&fl, t.bias.as_deref(), &io)
        .map_err(|e| format!("tensor `{}`: {e}", t.name))?;
    layer.name = layer_name(&t.name);
    layer.conv = conv;
    rep.conv = conv;
    let storage = layer_storage(&layer);
    rep.layer = Some(layer.name.clone());
    rep.int = Some(st);
    rep.scale_source = Some(source);
    rep.file_bits_per_weight = Some(storage.bits_per_weight);
    rep.file_bytes = Some(storage.total);
    rep.compression_vs_fp32 = Some(32.0 / storage.bits_per_weight);
    rep.compression_vs_int8 = Some(8.0 / storage.bits_per_weight);
    let fit = layer.check_fits(cfg);
    rep.fits_config = Some(fit.is_ok());
    rep.fit_problem = fit.err().map(|e| e.why);
    rep.seconds = t0.elapsed().as_secs_f64();
    Ok(Outcome {
        report: rep,
        layer: Some(layer),
        geometry: Some(geometry),
    })
}

fn ratio(num: f64, den: f64) -> f64 {
    if den == 0.0 {
        0.0
    } else {
        (num / den).sqrt()
    }
}

fn skipped(t: &Tensor, why: String) -> LayerReport {
    let mut rep = LayerReport::new(t, LayerKind::FullyConnected, FloatStats::default());
    rep.note = Some(format!("not decomposed: {why}"));
    rep
}

impl LayerReport {
    /// A report line with the tensor's identity and float statistics, everything else empty.
    fn new(t: &Tensor, kind: LayerKind, float: FloatStats) -> LayerReport {
        LayerReport {
            tensor: t.name.clone(),
            layer: None,
            shape: t.shape.clone(),
            kind,
            conv: None,
            batch_norm: None,
            rows: 0,
            rows_per_block: 0,
            blocks: 0,
            pruned_rows: 0,
            float,
            int: None,
            scale_source: None,
            file_bits_per_weight: None,
            file_bytes: None,
            compression_vs_fp32: None,
            compression_vs_int8: None,
            fits_config: None,
            fit_problem: None,
            note: None,
            seconds: 0.0,
        }
    }
}

/// Under the output objective, the input moments of decomposable tensor `t` from the
/// calibration sample (its rows are the layer's inputs: a convolution's im2col patches).
fn moments_of(t: &Tensor, s: &Settings) -> Result<Option<Vec<M3>>, String> {
    if s.objective == Objective::Weight || LayerKind::of_shape(&t.shape).is_err() {
        return Ok(None);
    }
    let n: usize = t.shape[1..].iter().product();
    let c = s.calib.as_ref().filter(|c| c.n == n).ok_or_else(|| {
        format!(
            "tensor `{}`: the output objective needs a calibration sample with {n} inputs \
             (--calib [T, {n}])",
            t.name
        )
    })?;
    let mut m = RowMoments::new(n.div_ceil(3));
    m.add_vectors(&c.data, n);
    Ok(Some(m.mean()))
}

/// Input and output scales from a sample: `max|x| / 127` and `max|x·Wᵀ + b| / 127`
/// (`None` if the sample or the outputs are all zero).
fn calibrate(c: &Calibration, t: &Tensor) -> Option<(f64, f64)> {
    let n = c.n;
    let outs = t.shape[0];
    let xmax = c
        .data
        .iter()
        .fold(0.0f64, |m, v| m.max(f64::from(*v).abs()));
    let mut ymax = 0.0f64;
    for x in c.data.chunks_exact(n) {
        for o in 0..outs {
            let w = &t.data[o * n..(o + 1) * n];
            let y: f64 = x
                .iter()
                .zip(w)
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum::<f64>()
                + t.bias.as_ref().map_or(0.0, |b| f64::from(b[o]));
            ymax = ymax.max(y.abs());
        }
    }
    (xmax > 0.0 && ymax > 0.0).then(|| (xmax / 127.0, ymax / 127.0))
}
