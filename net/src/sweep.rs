//! Compression sweeps: a network compressed at many settings (decomposition threshold ×
//! structural prune ratio × exponent-code bits), each point scored on its data set, and what the
//! points cost (bits per weight, row density) set against the score, Pareto front marked.
//!
//! * [`Point`], [`default_grid`], [`product`]: the grid;
//! * [`SweepTask`]: one network and data set (calibrated once, then compressed and scored per
//!   point): [`StsTask`] is all-MiniLM-L6-v2 on STS-B, [`MnistTask`] the MNIST CNN on the
//!   digits;
//! * [`Sweep`]: the results, written after every point as `sweep.json`, `sweep.md` and two plots
//!   ([`crate::plot`]), and read back to resume an interrupted run;
//! * [`pareto_front`]: which points no other point beats on both axes.

use crate::cnn::{self, CnnCalibration};
use crate::digits::Digits;
use crate::eval::{agreement, int_score, mnist_float, mnist_int};
use crate::minilm::MiniLm;
use crate::mnist::{MnistNet, LAYERS};
use crate::quant::{
    calibrate, compress, footprint, Calibration, CompressOptions, Footprint, QLayer,
};
use crate::sts::Pair;
use crate::NetError;
use serde::{Deserialize, Serialize};
use smartdeal_core::{AccelConfig, WeightRequant};
use smartdeal_decomp::block::Options as BlockOptions;
use smartdeal_decomp::budget::Budget;
use smartdeal_decomp::layer::Objective;
use smartdeal_host::GoldenEngine;
use std::path::Path;
use std::time::Instant;

/// Version of `sweep.json`'s layout.
pub const FORMAT_VERSION: u32 = 1;

/// The default grid's decomposition thresholds.
pub const DEFAULT_THRESHOLDS: [f64; 3] = [1e-3, 1e-2, 3e-2];
/// The default grid's structural prune ratios.
pub const DEFAULT_PRUNE_RATIOS: [f64; 4] = [0.0, 0.25, 0.5, 0.75];
/// The default grid's exponent-code widths besides 3: each at threshold 1e-2 and prune ratios 0
/// and 0.5.
pub const DEFAULT_EXTRA_EXP_BITS: [u32; 2] = [2, 4];

/// How a point's layers are compressed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// The reference's decomposition, rows pruned by their L1 norm.
    #[default]
    Plain,
    /// The activation-aware decomposition and row selection (objective `output`), the row
    /// density as one budget for the whole network (`Budget::Global`).
    Aware,
    /// Fine-tuned by distillation: measured elsewhere, only read from `--extra` files.
    Finetuned,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Plain => "plain",
            Method::Aware => "aware",
            Method::Finetuned => "finetuned",
        }
    }

    /// The decomposition objective of a method the sweep runs itself.
    pub fn objective(self) -> Option<Objective> {
        match self {
            Method::Plain => Some(Objective::Weight),
            Method::Aware => Some(Objective::Output),
            Method::Finetuned => None,
        }
    }
}

impl std::str::FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Method, String> {
        match s.trim() {
            "plain" => Ok(Method::Plain),
            "aware" => Ok(Method::Aware),
            "finetuned" => Ok(Method::Finetuned),
            other => Err(format!(
                "method `{other}` is none of plain, aware, finetuned"
            )),
        }
    }
}

/// One compression setting.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// How the layers are compressed (a `sweep.json` without it is `plain`, the only method
    /// before there were more).
    #[serde(default)]
    pub method: Method,
    /// Decomposition element threshold (`|c| < threshold` → 0).
    pub threshold: f64,
    /// Fraction of Ce rows zeroed per channel group before decomposing.
    pub prune_ratio: f64,
    /// Exponent-code bits `E` of the accelerator (its other fields from the configuration).
    pub exp_bits: u32,
}

impl Point {
    /// Why the point cannot be run, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        if !(self.threshold.is_finite() && self.threshold >= 0.0) {
            return Err(format!(
                "threshold {} is not a non-negative number",
                self.threshold
            ));
        }
        if !(0.0..1.0).contains(&self.prune_ratio) {
            return Err(format!(
                "prune ratio {} is outside [0, 1)",
                self.prune_ratio
            ));
        }
        if !(2..=4).contains(&self.exp_bits) {
            return Err(format!("exp_bits {} is outside 2..=4", self.exp_bits));
        }
        if self.method.objective().is_none() {
            return Err(format!(
                "method `{}` is not one the sweep runs (only from --extra files)",
                self.method.name()
            ));
        }
        Ok(())
    }

    /// `plain, threshold 1e-2, prune 0.25, exp_bits 3`.
    pub fn label(&self) -> String {
        format!(
            "{}, threshold {}, prune {}, exp_bits {}",
            self.method.name(),
            fmt_threshold(self.threshold),
            self.prune_ratio,
            self.exp_bits
        )
    }

    /// The compression options of this point.
    pub fn compress_options(&self, iters: u32, group_size: usize) -> CompressOptions {
        CompressOptions {
            block: BlockOptions {
                threshold: self.threshold,
                iters,
                ..BlockOptions::default()
            },
            group_size,
            prune_ratio: self.prune_ratio,
            objective: self.method.objective().unwrap_or_default(),
            budget: match self.method {
                Method::Aware => Budget::Global,
                _ => Budget::Layer,
            },
        }
    }

    /// `cfg` with this point's exponent-code width, validated.
    pub fn config(&self, cfg: &AccelConfig) -> Result<AccelConfig, NetError> {
        let mut c = cfg.clone();
        c.exp_bits = self.exp_bits;
        c.validate().map_err(|e| {
            NetError::Compress(format!(
                "configuration `{}` with exp_bits {}: {e}",
                cfg.name, self.exp_bits
            ))
        })?;
        Ok(c)
    }
}

/// `1e-3`, `3e-2`, `0`.
pub fn fmt_threshold(t: f64) -> String {
    if t == 0.0 {
        "0".into()
    } else {
        format!("{t:e}")
    }
}

/// Every combination of the three lists, exp_bits outermost, then prune ratio, then threshold
/// (method plain).
pub fn product(thresholds: &[f64], prune_ratios: &[f64], exp_bits: &[u32]) -> Vec<Point> {
    let mut out = Vec::new();
    for &e in exp_bits {
        for &r in prune_ratios {
            for &t in thresholds {
                out.push(Point {
                    method: Method::Plain,
                    threshold: t,
                    prune_ratio: r,
                    exp_bits: e,
                });
            }
        }
    }
    out
}

/// `points` once per method, methods outermost.
pub fn with_methods(points: &[Point], methods: &[Method]) -> Vec<Point> {
    methods
        .iter()
        .flat_map(|&m| points.iter().map(move |p| Point { method: m, ..*p }))
        .collect()
}

/// The default grid, 16 points: thresholds {1e-3, 1e-2, 3e-2} × prune ratios {0, 0.25, 0.5,
/// 0.75} at exp_bits 3, and exp_bits 2 and 4 at threshold 1e-2, prune ratios 0 and 0.5.
pub fn default_grid() -> Vec<Point> {
    let mut g = product(&DEFAULT_THRESHOLDS, &DEFAULT_PRUNE_RATIOS, &[3]);
    g.extend(product(&[1e-2], &[0.0, 0.5], &DEFAULT_EXTRA_EXP_BITS));
    g
}

/// For each `(x, y)`, whether it is Pareto-optimal with `x` to be small and `y` large: no other
/// point has `x' ≤ x` and `y' ≥ y` with one of them strict. Equal points are all optimal;
/// non-finite points are never optimal and never beat another.
pub fn pareto_front(xy: &[(f64, f64)]) -> Vec<bool> {
    let ok = |p: &(f64, f64)| p.0.is_finite() && p.1.is_finite();
    xy.iter()
        .map(|p| {
            ok(p)
                && !xy
                    .iter()
                    .any(|q| ok(q) && q.0 <= p.0 && q.1 >= p.1 && (q.0 < p.0 || q.1 > p.1))
        })
        .collect()
}

/// What one point measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointResult {
    #[serde(flatten)]
    pub point: Point,
    /// The task's metric (Spearman for STS-B, top-1 accuracy for digits).
    pub score: f64,
    /// The `.sdm` file's bytes × 8 over the weights it encodes.
    pub bits_per_weight: f64,
    pub file_bytes: u64,
    pub weights: u64,
    /// Fraction of Ce rows present (a row is present for a channel group when any channel of
    /// the group has a nonzero coefficient in it).
    pub row_density: f64,
    /// `‖W − W_hw‖ / ‖W‖` over every compressed layer: the float weights against the weights
    /// the MAC array uses, scaled back to real values.
    pub weight_rel_error: Option<f64>,
    /// Compression (decomposition, integer conversion, weight error) of all layers.
    pub compress_seconds: f64,
    /// Scoring the data on the engine.
    pub score_seconds: f64,
    /// On the Pareto front of score vs bits per weight.
    #[serde(default)]
    pub pareto_bits: bool,
    /// On the Pareto front of score vs row density.
    #[serde(default)]
    pub pareto_row_density: bool,
}

impl PointResult {
    /// A point's result, off both Pareto fronts until [`Sweep::record`] marks them.
    pub fn new(
        point: Point,
        score: f64,
        fp: &Footprint,
        weight_rel_error: Option<f64>,
        compress_seconds: f64,
        score_seconds: f64,
    ) -> PointResult {
        PointResult {
            point,
            score,
            bits_per_weight: fp.bits_per_weight,
            file_bytes: fp.file_bytes,
            weights: fp.weights,
            row_density: fp.row_density,
            weight_rel_error,
            compress_seconds,
            score_seconds,
            pareto_bits: false,
            pareto_row_density: false,
        }
    }
}

/// What makes two sweeps' points comparable (a resumed run reuses points only when equal).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// The model (folder or file).
    pub model: String,
    /// The scored data.
    pub data: String,
    /// Items scored (sentence pairs, images).
    pub items: usize,
    /// Calibration items (sentences, images).
    pub calibration: usize,
    /// The accelerator configuration (its exp_bits replaced by each point's).
    pub config: String,
    pub engine: String,
    /// Decomposition iterations.
    pub iters: u32,
    /// Output channels per present-row bitmap (and per pruned-row set).
    pub group_size: usize,
}

/// A sweep's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sweep {
    pub format_version: u32,
    /// `sts`, `mnist`.
    pub task: String,
    /// What the score is, e.g. `STS-B test Spearman`.
    pub metric: String,
    pub settings: Settings,
    /// The float model's score on the same items (the reference line).
    pub float_score: Option<f64>,
    pub float_seconds: Option<f64>,
    /// In the order measured.
    pub points: Vec<PointResult>,
}

/// The files [`Sweep::write`] writes into its folder.
pub const JSON_FILE: &str = "sweep.json";
pub const MARKDOWN_FILE: &str = "sweep.md";

impl Sweep {
    pub fn new(task: &str, metric: &str, settings: Settings) -> Sweep {
        Sweep {
            format_version: FORMAT_VERSION,
            task: task.into(),
            metric: metric.into(),
            settings,
            float_score: None,
            float_seconds: None,
            points: Vec::new(),
        }
    }

    /// Reads a `sweep.json`.
    pub fn read(path: &Path) -> Result<Sweep, NetError> {
        let text = std::fs::read_to_string(path).map_err(|e| NetError::io(path, e))?;
        let s: Sweep = serde_json::from_str(&text).map_err(|e| NetError::Model {
            path: path.to_path_buf(),
            why: format!("not a sweep result: {e}"),
        })?;
        if s.format_version != FORMAT_VERSION {
            return Err(NetError::Model {
                path: path.to_path_buf(),
                why: format!(
                    "sweep format version {}, this tool writes {FORMAT_VERSION}",
                    s.format_version
                ),
            });
        }
        Ok(s)
    }

    /// Whether `other`'s points were measured the same way as this sweep's would be.
    pub fn compatible(&self, other: &Sweep) -> bool {
        self.format_version == other.format_version
            && self.task == other.task
            && self.metric == other.metric
            && self.settings == other.settings
    }

    /// The result of `p`, if measured.
    pub fn find(&self, p: &Point) -> Option<&PointResult> {
        self.points.iter().find(|r| r.point == *p)
    }

    /// Adds (or replaces) a point's result and marks both Pareto fronts again.
    pub fn record(&mut self, r: PointResult) {
        match self.points.iter_mut().find(|q| q.point == r.point) {
            Some(q) => *q = r,
            None => self.points.push(r),
        }
        self.mark_pareto();
    }

    /// Sets `pareto_bits` and `pareto_row_density` of every point: one front per method.
    pub fn mark_pareto(&mut self) {
        for m in self.methods() {
            let idx: Vec<usize> = (0..self.points.len())
                .filter(|&i| self.points[i].point.method == m)
                .collect();
            let xy = |f: fn(&PointResult) -> f64| -> Vec<(f64, f64)> {
                idx.iter()
                    .map(|&i| (f(&self.points[i]), self.points[i].score))
                    .collect()
            };
            let fb = pareto_front(&xy(|r| r.bits_per_weight));
            let fd = pareto_front(&xy(|r| r.row_density));
            for (k, &i) in idx.iter().enumerate() {
                self.points[i].pareto_bits = fb[k];
                self.points[i].pareto_row_density = fd[k];
            }
        }
    }

    /// The methods of the points, in [`Method`] order.
    pub fn methods(&self) -> Vec<Method> {
        let mut m: Vec<Method> = self.points.iter().map(|r| r.point.method).collect();
        m.sort();
        m.dedup();
        m
    }

    /// Adds result rows measured elsewhere (e.g. a fine-tuned model's, `"method":
    /// "finetuned"`) from `path`: one `sweep.json` result row, or an array of them.
    pub fn add_extra(&mut self, path: &Path) -> Result<usize, NetError> {
        let text = std::fs::read_to_string(path).map_err(|e| NetError::io(path, e))?;
        let bad = |e: serde_json::Error| NetError::Model {
            path: path.to_path_buf(),
            why: format!("not a sweep result row or an array of them: {e}"),
        };
        let v: serde_json::Value = serde_json::from_str(&text).map_err(bad)?;
        let rows: Vec<PointResult> = if v.is_array() {
            serde_json::from_value(v).map_err(bad)?
        } else {
            vec![serde_json::from_value(v).map_err(bad)?]
        };
        let n = rows.len();
        for r in rows {
            self.record(r);
        }
        Ok(n)
    }

    /// The points sorted by bits per weight (then score, best first).
    pub fn sorted_by_bits(&self) -> Vec<&PointResult> {
        let mut v: Vec<&PointResult> = self.points.iter().collect();
        v.sort_by(|a, b| {
            a.bits_per_weight
                .total_cmp(&b.bits_per_weight)
                .then(b.score.total_cmp(&a.score))
        });
        v
    }

    /// The table of `sweep.md`, sorted by bits per weight.
    pub fn to_markdown(&self) -> String {
        let s = &self.settings;
        let mut t = format!(
            "# Compression sweep: `{}`\n\n\
             Model `{}`, data `{}` ({} items), metric: {}. Engine {}, configuration `{}` (its \
             exp_bits replaced by each point's), {} decomposition iterations, group size {}, \
             {} calibration items.\n\n",
            self.task,
            s.model,
            s.data,
            s.items,
            self.metric,
            s.engine,
            s.config,
            s.iters,
            s.group_size,
            s.calibration
        );
        match self.float_score {
            Some(f) => t += &format!("Float model: **{f:.4}**.\n\n"),
            None => t += "Float model: not measured (`--no-float`).\n\n",
        }
        t += "Sorted by bits per weight. Pareto, per method: optimal in score vs bits per weight \
              (`bits`, score in bold) and in score vs row density (`density`): no other point \
              of the same method is at least as good on both axes and better on one. Methods: \
              `plain` (the reference's decomposition, rows pruned by L1 norm in every layer \
              alike), `aware` (objective output: fit and row selection weighted by the \
              calibration inputs' second moments, the prune ratio as one budget for the whole \
              network), `finetuned` (measured elsewhere, added with --extra).\n\n";
        t += "| method | threshold | prune ratio | exp bits | score | vs float | bits / weight | \
              weight bytes | row density | weight rel. error | compress (s) | score (s) | \
              Pareto |\n";
        t += "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n";
        for r in self.sorted_by_bits() {
            let score = if r.pareto_bits {
                format!("**{:.4}**", r.score)
            } else {
                format!("{:.4}", r.score)
            };
            let delta = self
                .float_score
                .map(|f| format!("{:+.4}", r.score - f))
                .unwrap_or_else(|| "—".into());
            let err = r
                .weight_rel_error
                .map(|e| format!("{e:.4}"))
                .unwrap_or_else(|| "—".into());
            let pareto: Vec<&str> = [(r.pareto_bits, "bits"), (r.pareto_row_density, "density")]
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, w)| *w)
                .collect();
            t += &format!(
                "| {} | {} | {} | {} | {score} | {delta} | {:.3} | {} | {:.3} | {err} | {:.0} | {:.0} | {} |\n",
                r.point.method.name(),
                fmt_threshold(r.point.threshold),
                r.point.prune_ratio,
                r.point.exp_bits,
                r.bits_per_weight,
                r.file_bytes,
                r.row_density,
                r.compress_seconds,
                r.score_seconds,
                pareto.join(", ")
            );
        }
        t
    }
}

/// Writes `text` to `path` through a temporary file renamed over it.
pub(crate) fn write_whole(path: &Path, text: &str) -> Result<(), NetError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(|e| NetError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| NetError::io(path, e))
}

/// Stages of a point's work, for progress bars.
pub trait Progress {
    /// A stage of `len` steps begins (`what`: the steps' name).
    fn stage(&self, what: &str, len: u64);
    /// One step done.
    fn tick(&self);
    /// `n` steps done.
    fn advance(&self, n: u64) {
        for _ in 0..n {
            self.tick();
        }
    }
}

/// No progress display.
pub struct NoProgress;

impl Progress for NoProgress {
    fn stage(&self, _: &str, _: u64) {}
    fn tick(&self) {}
}

/// A network and a data set to sweep: calibrated once when built, then compressed and scored
/// at each point.
pub trait SweepTask {
    /// The subcommand's name (`sts`).
    fn name(&self) -> &'static str;
    /// What the score is (axis label and table header).
    fn metric(&self) -> &'static str;
    /// The float model's score on the same items.
    fn float_score(&mut self, progress: &dyn Progress) -> Result<f64, NetError>;
    /// Compresses the network at `point` for `cfg` (whose exp_bits is the point's) and scores
    /// it on the golden engine.
    fn evaluate(
        &mut self,
        point: &Point,
        cfg: &AccelConfig,
        progress: &dyn Progress,
    ) -> Result<PointResult, NetError>;
}

/// `‖W − W_hw‖ / ‖W‖` over all of `layers`: the float weights (`float(name)`, C order, as
/// decomposed) against the weights the MAC array uses (`smartdeal_golden::naive::dense_weights`)
/// times their real unit, `2^(e_lo + ws[o])` with int8 weight requantization, `2^e_lo` exact.
pub fn weight_error(
    layers: &[QLayer],
    cfg: &AccelConfig,
    float: &dyn Fn(&str) -> Result<Vec<f32>, NetError>,
) -> Result<f64, NetError> {
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for q in layers {
        let w = float(&q.fc.name)?;
        let hw = smartdeal_golden::naive::dense_weights(cfg, &q.fc);
        let n = q.fc.inputs as usize;
        if w.len() != hw.len() {
            return Err(NetError::Compress(format!(
                "layer `{}`: {} float weights, {} compressed",
                q.fc.name,
                w.len(),
                hw.len()
            )));
        }
        for (o, (wo, ho)) in w.chunks(n).zip(hw.chunks(n)).enumerate() {
            let ws = match cfg.weight_requant {
                WeightRequant::Int8 => i32::from(q.fc.wshift[o]),
                WeightRequant::Exact => 0,
            };
            let unit = 2f64.powi(i32::from(q.fc.e_lo) + ws);
            for (&a, &b) in wo.iter().zip(ho) {
                let a = f64::from(a);
                num += (a - unit * b as f64).powi(2);
                den += a * a;
            }
        }
    }
    Ok(if den == 0.0 { 0.0 } else { (num / den).sqrt() })
}

/// all-MiniLM-L6-v2 on STS-B: Spearman of the cosine similarities of the embeddings against the
/// gold scores, every encoder linear layer compressed and run on the golden engine.
pub struct StsTask {
    model: MiniLm,
    pairs: Vec<Pair>,
    cal: Calibration,
    iters: u32,
    group_size: usize,
}

impl StsTask {
    /// Calibrates `model` on `calib` (every point shares the scales).
    pub fn new(
        model: MiniLm,
        pairs: Vec<Pair>,
        calib: &[String],
        iters: u32,
        group_size: usize,
        progress: &dyn Progress,
    ) -> Result<StsTask, NetError> {
        progress.stage("calibration sentences", calib.len() as u64);
        let cal = calibrate(&model, calib, &|| progress.tick())?;
        Ok(StsTask {
            model,
            pairs,
            cal,
            iters,
            group_size,
        })
    }
}

impl SweepTask for StsTask {
    fn name(&self) -> &'static str {
        "sts"
    }

    fn metric(&self) -> &'static str {
        "STS-B Spearman"
    }

    fn float_score(&mut self, progress: &dyn Progress) -> Result<f64, NetError> {
        progress.stage("pairs, float", self.pairs.len() as u64);
        crate::eval::float_score(&self.model, &self.pairs, &|| progress.tick())
    }

    fn evaluate(
        &mut self,
        point: &Point,
        cfg: &AccelConfig,
        progress: &dyn Progress,
    ) -> Result<PointResult, NetError> {
        let t0 = Instant::now();
        let opts = point.compress_options(self.iters, self.group_size);
        progress.stage("layers compressed", self.model.linear_names().len() as u64);
        let layers = compress(&self.model, &self.cal, cfg, &opts, &|| progress.tick())?;
        let fp = footprint(&layers);
        let m = &self.model;
        let err = weight_error(&layers, cfg, &|name| {
            Ok(m.tensor(&format!("{name}.weight"))?
                .flatten_all()?
                .to_vec1::<f32>()?)
        })?;
        let compress_seconds = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let mut engine = GoldenEngine::new(cfg);
        progress.stage("pairs, SmartDeal int8 on golden", self.pairs.len() as u64);
        let (score, _) = int_score(&self.model, &layers, &mut engine, &self.pairs, &|| {
            progress.tick()
        })?;
        Ok(PointResult::new(
            *point,
            score,
            &fp,
            Some(err),
            compress_seconds,
            t1.elapsed().as_secs_f64(),
        ))
    }
}

/// The MNIST CNN (ccexam's `MNISTNet`) on the digits: top-1 accuracy against the labels, its two
/// convolutions and two linear layers compressed and run on the golden engine (as `smartdeal eval
/// mnist` does).
pub struct MnistTask {
    net: MnistNet,
    test: Digits,
    cal: CnnCalibration,
    iters: u32,
    group_size: usize,
    batch: usize,
}

impl MnistTask {
    /// Calibrates `net` on `calib` (every point shares the scales); `test` is scored in batches
    /// of `batch` images.
    pub fn new(
        net: MnistNet,
        calib: &Digits,
        test: Digits,
        iters: u32,
        group_size: usize,
        batch: usize,
    ) -> Result<MnistTask, NetError> {
        let cal = cnn::calibrate(&net, calib, batch)?;
        Ok(MnistTask {
            net,
            test,
            cal,
            iters,
            group_size,
            batch,
        })
    }
}

impl SweepTask for MnistTask {
    fn name(&self) -> &'static str {
        "mnist"
    }

    fn metric(&self) -> &'static str {
        "top-1 accuracy"
    }

    fn float_score(&mut self, progress: &dyn Progress) -> Result<f64, NetError> {
        progress.stage("digits, float", self.test.len() as u64);
        let pred = mnist_float(&self.net, &self.test, self.batch, &|k| {
            progress.advance(k as u64)
        })?;
        Ok(agreement(&pred, &self.test.labels))
    }

    fn evaluate(
        &mut self,
        point: &Point,
        cfg: &AccelConfig,
        progress: &dyn Progress,
    ) -> Result<PointResult, NetError> {
        let t0 = Instant::now();
        let opts = point.compress_options(self.iters, self.group_size);
        progress.stage("layers compressed", LAYERS.len() as u64);
        let layers = cnn::compress(&self.net, &self.cal, cfg, &opts, &|| progress.tick())?;
        let fp = footprint(&layers);
        let net = &self.net;
        let err = weight_error(&layers, cfg, &|name| {
            let i = LAYERS
                .iter()
                .position(|l| l.name == name)
                .ok_or_else(|| NetError::Compress(format!("no layer `{name}`")))?;
            Ok(net.weight(i).flatten_all()?.to_vec1::<f32>()?)
        })?;
        let compress_seconds = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let mut engine = GoldenEngine::new(cfg);
        progress.stage("digits, SmartDeal int8 on golden", self.test.len() as u64);
        let (pred, _) = mnist_int(&layers, &mut engine, &self.test, self.batch, &|k| {
            progress.advance(k as u64)
        })?;
        Ok(PointResult::new(
            *point,
            agreement(&pred, &self.test.labels),
            &fp,
            Some(err),
            compress_seconds,
            t1.elapsed().as_secs_f64(),
        ))
    }
}
