//! `smartdeal finetune sts|mnist`: SmartDeal fine-tuning by distillation (docs/finetune.md).
//! The network's rows are masked at the given density, the masked float network is distilled
//! from the float one, decomposed, and its `B` and coefficient exponents are distilled again;
//! then it is converted to the accelerator's integers, written as a `.sdm` and scored.

use super::eval::{bar, engine_for, NetEngine};
use super::{note, print_out, show, ConfigArgs};
use anyhow::{anyhow, bail, Context, Result};
use indicatif::ProgressBar;
use smartdeal_core::{sdm, AccelConfig, Model};
use smartdeal_decomp::block::Options;
use smartdeal_decomp::budget::Budget;
use smartdeal_decomp::layer::Objective;
use smartdeal_decomp::linalg::M3;
use smartdeal_net::digits;
use smartdeal_net::eval::{agreement, float_score, int_score, mnist_float, mnist_int};
use smartdeal_net::finetune::param::CodeWindow;
use smartdeal_net::finetune::run::{self, Densities, Observer, Recipe, Tuned};
use smartdeal_net::finetune::{loss_plot, peak_memory_bytes, write_log, LogEntry, TrainOptions};
use smartdeal_net::minilm::MiniLm;
use smartdeal_net::mnist::MnistNet;
use smartdeal_net::quant::{self, footprint, CompressOptions, Footprint, QLayer};
use smartdeal_net::{cnn, sts};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Networks.
#[derive(Debug, clap::Subcommand)]
pub enum FinetuneCommand {
    /// all-MiniLM-L6-v2: distilled on STS-B train sentences (never the scored ones), scored by
    /// STS-B Spearman
    Sts(StsArgs),
    /// ccexam's MNIST CNN: distilled on shifted copies of the digits set aside from scoring,
    /// scored by top-1 accuracy
    Mnist(MnistArgs),
}

/// The recipe's settings, shared by both networks.
#[derive(Debug, clap::Args)]
pub struct RecipeArgs {
    /// Fraction of Ce rows kept in every compressed layer (the rows of least L1 norm in each
    /// channel group are dropped)
    #[arg(long, value_name = "D", default_value_t = 0.5)]
    pub row_density: f64,
    /// Row density of one layer instead of --row-density (with --budget layer); repeatable
    #[arg(long = "layer-density", value_name = "NAME=D")]
    pub layer_density: Vec<String>,
    /// Which rows go and what the decomposition minimizes: `output`, by their expected effect
    /// on the layer's outputs under the calibration inputs' second moments; `weight`, by their
    /// L1 norm and ‖W − Ce·B‖ (docs/decomposition.md)
    #[arg(long, value_name = "OBJ", default_value = "output")]
    pub objective: Objective,
    /// How --row-density is spread: `global`, one density for the whole network, rows ranked
    /// by the share of their layer's output they carry; `layer`, the same in every layer
    #[arg(long, value_name = "B", default_value = "global")]
    pub budget: Budget,
    /// Decomposition of the distilled weights: element threshold
    #[arg(long, value_name = "T", default_value_t = 1e-2)]
    pub threshold: f64,
    /// Decomposition: maximum iterations
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub iters: u32,
    /// Output channels sharing one row mask (and one present-row bitmap)
    #[arg(long, value_name = "G", default_value_t = 32)]
    pub group_size: usize,
    /// Steps of the masked phase (float weights, pruned rows held at zero) [default: sts 500,
    /// mnist 600]
    #[arg(long, value_name = "N")]
    pub masked_steps: Option<usize>,
    /// Steps of the SmartDeal phase (B and the coefficient exponents) [default: sts 100,
    /// mnist 400]
    #[arg(long, value_name = "N")]
    pub steps: Option<usize>,
    /// Sentences or images per step [default: 64]
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub batch: usize,
    /// Learning rate of weights, bases and biases at the first step (falls linearly to 0)
    /// [default: sts 3e-4, mnist 1e-3]
    #[arg(long, value_name = "LR")]
    pub lr: Option<f64>,
    /// Learning rate of the coefficient exponents at the first step
    #[arg(long, value_name = "LR", default_value_t = 1e-2)]
    pub lr_exponent: f64,
    /// Seed of the batch order (and of the digits' shifts)
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,
    /// Write a checkpoint every N steps (and at the end of each phase)
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub checkpoint_every: usize,
    /// Output folder: model.sdm, result.json, loss.csv, loss.svg and the checkpoints
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Continue from the checkpoints in --out (a finished phase is skipped; without this flag
    /// old checkpoints there are removed first)
    #[arg(long)]
    pub resume: bool,
    /// Engine the fine-tuned int8 model is scored on
    #[arg(long, value_enum, default_value = "golden")]
    pub engine: NetEngine,
    /// Skip scoring the float model
    #[arg(long)]
    pub no_float: bool,
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Exponent-code bits of the coefficients (2..=4) instead of the configuration's
    #[arg(long, value_name = "E")]
    pub exp_bits: Option<u32>,
}

#[derive(Debug, clap::Args)]
pub struct StsArgs {
    /// The float model to distill from (folder with model.safetensors, tokenizer.json,
    /// config.json)
    #[arg(long, value_name = "DIR", default_value = "cache/minilm")]
    pub teacher: PathBuf,
    /// Scored sentence pairs (STS-B format); their sentences are never trained or calibrated on
    #[arg(long, value_name = "FILE", default_value = "cache/stsb/sts-test.csv")]
    pub data: PathBuf,
    /// Training sentences (STS-B format): every distinct sentence not in --data; the first
    /// --calib-sentences of them also set the activation scales
    #[arg(long, value_name = "FILE", default_value = "cache/stsb/sts-train.csv")]
    pub train: PathBuf,
    /// Train on the first N sentences only
    #[arg(long, value_name = "N")]
    pub train_sentences: Option<usize>,
    /// Calibration sentences (activation scales), as eval sts
    #[arg(long, value_name = "N", default_value_t = 512)]
    pub calib_sentences: usize,
    /// Score only the first N pairs
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    #[command(flatten)]
    pub recipe: RecipeArgs,
}

#[derive(Debug, clap::Args)]
pub struct MnistArgs {
    /// The float model to distill from (ccexam's MNISTNet state dict)
    #[arg(long, value_name = "FILE", default_value = "cache/mnist/mnist.pth")]
    pub teacher: PathBuf,
    /// Folder with the digit files 0.json … 9.json
    #[arg(long, value_name = "DIR", default_value = "cache/mnist/digits")]
    pub data: PathBuf,
    /// The first N images of every digit are set aside: calibration and training; the rest
    /// are scored
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub calib_per_digit: usize,
    /// Score only the first N test images
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    #[command(flatten)]
    pub recipe: RecipeArgs,
}

/// Task defaults for the options that have none.
struct Defaults {
    task: &'static str,
    masked_steps: usize,
    steps: usize,
    lr: f64,
}

impl RecipeArgs {
    fn check(&self) -> Result<()> {
        let density_ok = |d: f64| d > 0.0 && d <= 1.0;
        if !density_ok(self.row_density) {
            bail!("--row-density must be in (0, 1]");
        }
        if self.budget == Budget::Global && !self.layer_density.is_empty() {
            bail!(
                "--layer-density needs --budget layer (a global budget sets every layer's density)"
            );
        }
        if self.batch == 0 || self.iters == 0 || self.group_size == 0 {
            bail!("--batch, --iters and --group-size must be at least 1");
        }
        if !(self.threshold.is_finite() && self.threshold >= 0.0) {
            bail!("--threshold must be a non-negative number");
        }
        for (flag, v) in [("--lr", self.lr), ("--lr-exponent", Some(self.lr_exponent))] {
            if v.is_some_and(|v| !(v.is_finite() && v >= 0.0)) {
                bail!("{flag} must be a non-negative number");
            }
        }
        Ok(())
    }

    /// The per-layer densities, each NAME one of `layers`.
    fn densities(&self, layers: &[String]) -> Result<Densities> {
        let mut per_layer = BTreeMap::new();
        for spec in &self.layer_density {
            let (name, v) = spec
                .rsplit_once('=')
                .ok_or_else(|| anyhow!("--layer-density {spec:?}: expected NAME=D"))?;
            let d: f64 = v
                .parse()
                .map_err(|_| anyhow!("--layer-density {spec:?}: {v:?} is not a number"))?;
            if !(d > 0.0 && d <= 1.0) {
                bail!("--layer-density {spec:?}: the density must be in (0, 1]");
            }
            if !layers.iter().any(|l| l == name) {
                bail!(
                    "--layer-density {spec:?}: no compressed layer `{name}` (they are {})",
                    layers.join(", ")
                );
            }
            per_layer.insert(name.to_string(), d);
        }
        Ok(Densities {
            default: self.row_density,
            per_layer,
        })
    }

    /// `moments(layer)` gives a layer's calibrated input moments (read only under the output
    /// objective).
    fn recipe(
        &self,
        cfg: &AccelConfig,
        d: &Defaults,
        layers: &[String],
        dir: &Path,
        moments: &dyn Fn(&str) -> Result<Vec<M3>>,
    ) -> Result<Recipe> {
        let moments = match self.objective {
            Objective::Weight => BTreeMap::new(),
            Objective::Output => layers
                .iter()
                .map(|l| Ok((l.clone(), moments(l)?)))
                .collect::<Result<_>>()?,
        };
        let lr = self.lr.unwrap_or(d.lr);
        let phase = |steps| TrainOptions {
            steps,
            lr,
            lr_exponent: self.lr_exponent,
            checkpoint_every: self.checkpoint_every,
        };
        Ok(Recipe {
            densities: self.densities(layers)?,
            block: Options {
                threshold: self.threshold,
                iters: self.iters,
                ..Options::default()
            },
            group_size: self.group_size,
            moments,
            budget: self.budget,
            window: Some(CodeWindow {
                exp_bits: cfg.exp_bits as u8,
                basis_bits: cfg.basis_bits,
            }),
            masked: phase(self.masked_steps.unwrap_or(d.masked_steps)),
            smartdeal: phase(self.steps.unwrap_or(d.steps)),
            batch: self.batch,
            seed: self.seed,
            dir: Some(dir.to_path_buf()),
        })
    }

    /// The accelerator configuration, with --exp-bits if given.
    fn config(&self) -> Result<AccelConfig> {
        let mut cfg = self.config.load()?;
        if let Some(e) = self.exp_bits {
            cfg.exp_bits = e;
            cfg.validate().map_err(|err| {
                anyhow!("--exp-bits {e} with configuration `{}`: {err}", cfg.name)
            })?;
        }
        Ok(cfg)
    }

    fn compress_options(&self) -> CompressOptions {
        CompressOptions {
            group_size: self.group_size,
            ..CompressOptions::default()
        }
    }

    /// The output folder, created; old checkpoints removed unless --resume.
    fn out_dir(&self, task: &str) -> Result<PathBuf> {
        let dir = self
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("out/finetune/{task}")));
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", show(&dir)))?;
        if !self.resume {
            for phase in ["masked", "smartdeal"] {
                for ext in ["safetensors", "json"] {
                    let p = dir.join(format!("{phase}.{ext}"));
                    if p.exists() {
                        std::fs::remove_file(&p)
                            .with_context(|| format!("cannot remove {}", show(&p)))?;
                    }
                }
            }
        }
        Ok(dir)
    }
}

/// Progress bars per phase, the loss in the message.
#[derive(Default)]
struct Bars {
    bar: RefCell<Option<ProgressBar>>,
}

impl Observer for Bars {
    fn phase(&self, name: &str, steps: usize) {
        if let Some(b) = self.bar.borrow_mut().take() {
            b.finish_and_clear();
        }
        let what = if name == "decompose" {
            "layers decomposed".to_string()
        } else {
            format!("steps, {name} phase")
        };
        *self.bar.borrow_mut() = bar(steps, &what).ok();
    }
    fn step(&self, _: usize, loss: f64) {
        if let Some(b) = self.bar.borrow().as_ref() {
            b.inc(1);
            if loss > 0.0 {
                b.set_message(format!("loss {loss:.4}"));
            }
        }
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        if let Some(b) = self.bar.borrow_mut().take() {
            b.finish_and_clear();
        }
    }
}

pub fn main(cmd: FinetuneCommand) -> Result<()> {
    match cmd {
        FinetuneCommand::Sts(a) => sts_main(a),
        FinetuneCommand::Mnist(a) => mnist_main(a),
    }
}

/// What the run reports (`result.json`): one row in the format of a sweep's results (so
/// `smartdeal sweep --extra` can draw it), plus the run's own figures.
/// A run's measured figures.
struct Outcome {
    fp: Footprint,
    score: f64,
    float: Option<f64>,
    train_s: f64,
    score_s: f64,
}

fn result_json(
    d: &Defaults,
    r: &RecipeArgs,
    cfg: &AccelConfig,
    o: &Outcome,
    log: &[LogEntry],
) -> serde_json::Value {
    let (fp, train_s) = (&o.fp, o.train_s);
    let last = |phase: &str| log.iter().rev().find(|e| e.phase == phase).map(|e| e.loss);
    serde_json::json!({
        "method": "finetuned",
        "threshold": r.threshold,
        "prune_ratio": 1.0 - r.row_density,
        "exp_bits": cfg.exp_bits,
        "score": o.score,
        "bits_per_weight": fp.bits_per_weight,
        "file_bytes": fp.file_bytes,
        "weights": fp.weights,
        "row_density": fp.row_density,
        "weight_rel_error": null,
        "compress_seconds": train_s,
        "score_seconds": o.score_s,
        "task": d.task,
        "float_score": o.float,
        "config": cfg.name,
        "layer_density": r.layer_density,
        "objective": format!("{:?}", r.objective).to_lowercase(),
        "budget": format!("{:?}", r.budget).to_lowercase(),
        "masked_steps": r.masked_steps.unwrap_or(d.masked_steps),
        "steps": r.steps.unwrap_or(d.steps),
        "batch": r.batch,
        "seed": r.seed,
        "final_loss_masked": last("masked"),
        "final_loss_smartdeal": last("smartdeal"),
        "train_seconds": train_s,
        "peak_memory_bytes": peak_memory_bytes(),
    })
}

/// Writes `model.sdm`, `loss.csv`, `loss.svg` and `result.json` into `dir`.
fn write_outputs(
    dir: &Path,
    layers: &[QLayer],
    log: &[LogEntry],
    result: &serde_json::Value,
) -> Result<()> {
    let model = Model {
        layers: layers.iter().map(|q| q.fc.clone()).collect(),
    };
    let sdm_path = dir.join("model.sdm");
    sdm::save(&sdm_path, &model).with_context(|| format!("cannot write {}", show(&sdm_path)))?;
    write_log(&dir.join("loss.csv"), log)?;
    let title = format!(
        "fine-tuning `{}`: distillation loss",
        result["task"].as_str().unwrap_or("")
    );
    loss_plot::write(&dir.join("loss.svg"), log, &title)?;
    let p = dir.join("result.json");
    std::fs::write(&p, serde_json::to_string_pretty(result)? + "\n")
        .with_context(|| format!("cannot write {}", show(&p)))
}

fn floats(tuned: Vec<Tuned>) -> Vec<quant::FloatLinear> {
    tuned
        .into_iter()
        .map(|t| (t.name, t.layer, t.bias))
        .collect()
}

fn sts_main(a: StsArgs) -> Result<()> {
    let r = &a.recipe;
    r.check()?;
    if a.calib_sentences == 0 || a.limit == Some(0) || a.train_sentences == Some(0) {
        bail!("--calib-sentences, --limit and --train-sentences must be at least 1");
    }
    let d = Defaults {
        task: "sts",
        masked_steps: 500,
        steps: 100,
        lr: 3e-4,
    };
    let cfg = r.config()?;
    let model = MiniLm::load(&a.teacher).with_context(|| {
        format!(
            "cannot load the teacher from {} (scripts/setup.sh fetches it)",
            show(&a.teacher)
        )
    })?;
    let all_pairs = sts::read(&a.data)?;
    let (train, skipped) =
        sts::calibration_sentences(&all_pairs, &sts::read(&a.train)?, usize::MAX);
    if skipped > 0 {
        note(&format!(
            "training: left out {skipped} sentences of {} that occur in the scored data",
            show(&a.train)
        ));
    }
    let train = &train[..a.train_sentences.unwrap_or(train.len()).min(train.len())];
    if train.is_empty() {
        bail!(
            "{}: no training sentences outside the scored data",
            show(&a.train)
        );
    }
    let calib = &train[..a.calib_sentences.min(train.len())];
    let pairs = &all_pairs[..a.limit.unwrap_or(all_pairs.len()).min(all_pairs.len())];
    let dir = r.out_dir(d.task)?;
    let b = bar(calib.len(), "calibration sentences")?;
    let cal = quant::calibrate(&model, calib, &|| b.inc(1))?;
    b.finish_and_clear();
    let recipe = r.recipe(&cfg, &d, &model.linear_names(), &dir, &|l| {
        Ok(cal.row_moments(l)?)
    })?;
    let tokens = train
        .iter()
        .map(|s| model.tokenize(s))
        .collect::<Result<Vec<_>, _>>()?;
    note(&format!(
        "distilling on {} sentences ({} tokens), batches of {}",
        tokens.len(),
        tokens.iter().map(|t| t.ids.len()).sum::<usize>(),
        r.batch
    ));
    let t0 = Instant::now();
    let (tuned, log) = run::minilm(&model, &tokens, &recipe, &Bars::default())?;
    let train_s = t0.elapsed().as_secs_f64();
    let layers = quant::int_layers(&floats(tuned), &cal, &cfg, &r.compress_options(), &|| {})?;
    let fp = footprint(&layers);

    let float = if r.no_float {
        None
    } else {
        let b = bar(pairs.len(), "pairs, float")?;
        let s = float_score(&model, pairs, &|| b.inc(1))?;
        b.finish_and_clear();
        Some(s)
    };
    let mut engine = engine_for(r.engine, &cfg)?;
    let t1 = Instant::now();
    let b = bar(
        pairs.len(),
        &format!("pairs, fine-tuned int8 on {}", engine.name()),
    )?;
    let (score, _) = int_score(&model, &layers, engine.as_mut(), pairs, &|| b.inc(1))?;
    b.finish_and_clear();
    let outcome = Outcome {
        fp,
        score,
        float,
        train_s,
        score_s: t1.elapsed().as_secs_f64(),
    };
    let result = result_json(&d, r, &cfg, &outcome, &log);
    write_outputs(&dir, &layers, &log, &result)?;
    let f = float.map(|f| format!("float {f:.4}, ")).unwrap_or_default();
    print_out(&format!(
        "finetune sts: {} pairs: {f}fine-tuned SmartDeal int8 {score:.4} on {} (config `{}`; \
         {:.2} bits per weight, row density {:.3}); trained {:.0} s, peak memory {}; wrote {}\n",
        pairs.len(),
        engine.name(),
        cfg.name,
        fp.bits_per_weight,
        fp.row_density,
        train_s,
        mib(peak_memory_bytes()),
        show(&dir)
    ))
}

fn mib(b: Option<u64>) -> String {
    b.map_or("unknown".into(), |b| {
        format!("{:.0} MiB", b as f64 / 1048576.0)
    })
}

fn mnist_main(a: MnistArgs) -> Result<()> {
    let r = &a.recipe;
    r.check()?;
    if a.calib_per_digit == 0 || a.limit == Some(0) {
        bail!("--calib-per-digit and --limit must be at least 1");
    }
    let d = Defaults {
        task: "mnist",
        masked_steps: 600,
        steps: 400,
        lr: 1e-3,
    };
    let cfg = r.config()?;
    let net = MnistNet::load(&a.teacher).with_context(|| {
        format!(
            "cannot load the teacher from {} (scripts/setup.sh fetches it)",
            show(&a.teacher)
        )
    })?;
    let split = digits::read_dir(&a.data)?.split(a.calib_per_digit);
    if split.test.is_empty() {
        bail!("{}: no digits left to score", show(&a.data));
    }
    let test = split.test.take(a.limit.unwrap_or(usize::MAX));
    let names: Vec<String> = smartdeal_net::mnist::LAYERS
        .iter()
        .map(|s| s.name.to_string())
        .collect();
    let dir = r.out_dir(d.task)?;
    let cal = cnn::calibrate(&net, &split.calib, 100)?;
    let moments = |l: &str| -> Result<Vec<M3>> {
        let i = names
            .iter()
            .position(|n| n == l)
            .expect("a layer of the network");
        Ok(cal.moments[i].mean())
    };
    let recipe = r.recipe(&cfg, &d, &names, &dir, &moments)?;
    note(&format!(
        "distilling on shifted copies of the {} set-aside digits, batches of {}",
        split.calib.len(),
        r.batch
    ));
    let t0 = Instant::now();
    let (tuned, log) = run::mnist(&net, &split.calib.pixels, &recipe, &Bars::default())?;
    let train_s = t0.elapsed().as_secs_f64();
    let layers = cnn::int_layers(&floats(tuned), &cal, &cfg, &r.compress_options(), &|| {})?;
    let fp = footprint(&layers);

    let float_pred = mnist_float(&net, &test, 100, &|_| {})?;
    let float = agreement(&float_pred, &test.labels);
    let mut engine = engine_for(r.engine, &cfg)?;
    let t1 = Instant::now();
    let b = bar(
        test.len(),
        &format!("digits, fine-tuned int8 on {}", engine.name()),
    )?;
    let (pred, _) = mnist_int(&layers, engine.as_mut(), &test, 100, &|k| b.inc(k as u64))?;
    b.finish_and_clear();
    let score = agreement(&pred, &test.labels);
    let outcome = Outcome {
        fp,
        score,
        float: Some(float),
        train_s,
        score_s: t1.elapsed().as_secs_f64(),
    };
    let result = result_json(&d, r, &cfg, &outcome, &log);
    write_outputs(&dir, &layers, &log, &result)?;
    print_out(&format!(
        "finetune mnist: {} test digits: float {:.2} %, fine-tuned SmartDeal int8 {:.2} % on {} \
         (agreement with float {:.2} %; config `{}`; {:.2} bits per weight, row density {:.3}); \
         trained {:.0} s, peak memory {}; wrote {}\n",
        test.len(),
        100.0 * float,
        100.0 * score,
        engine.name(),
        100.0 * agreement(&pred, &float_pred),
        cfg.name,
        fp.bits_per_weight,
        fp.row_density,
        train_s,
        mib(peak_memory_bytes()),
        show(&dir)
    ))
}
