//! `smartdeal eval sts`: all-MiniLM-L6-v2 on STS-B — the float model, then the same network with
//! its 36 encoder linear layers SmartDeal-compressed and run in int8 on an engine.

use super::{note, print_out, show, ConfigArgs};
use anyhow::{anyhow, bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use smartdeal_core::AccelConfig;
use smartdeal_decomp::block::Options;
use smartdeal_gen::GenOptions;
use smartdeal_host::{Engine, GoldenEngine, RunStats};
use smartdeal_net::eval::{float_score, int_score};
use smartdeal_net::minilm::MiniLm;
use smartdeal_net::quant::{calibrate, compress, footprint, CompressOptions, Footprint};
use smartdeal_net::sts;
use std::path::PathBuf;
use std::time::Instant;

/// Tasks.
#[derive(Debug, clap::Subcommand)]
pub enum EvalCommand {
    /// all-MiniLM-L6-v2 on STS-B: Spearman of the cosine similarity of mean-pooled sentence
    /// embeddings against the gold scores, for the float model and for the SmartDeal int8
    /// model (every encoder linear layer compressed and run on --engine)
    Sts(StsArgs),
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
    /// Decomposition: element threshold
    #[arg(long, value_name = "T", default_value_t = 1e-2)]
    pub threshold: f64,
    /// Decomposition: maximum iterations
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub iters: u32,
    /// Structural pruning: fraction of Ce rows zeroed per channel group before decomposing
    #[arg(long, value_name = "R", default_value_t = 0.0)]
    pub prune_ratio: f64,
    /// Output channels sharing one present-row bitmap
    #[arg(long, value_name = "G", default_value_t = 32)]
    pub group_size: usize,
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Also write the results as JSON
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

#[derive(Serialize)]
struct Scored {
    spearman: f64,
    seconds: f64,
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
    smartdeal: SmartDealResult,
}

fn bar(len: usize, what: &str) -> Result<ProgressBar> {
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

fn engine_for(kind: NetEngine, cfg: &AccelConfig) -> Result<Box<dyn Engine>> {
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
    if !(0.0..1.0).contains(&a.prune_ratio) {
        bail!("--prune-ratio must be in [0, 1)");
    }
    if !(a.threshold.is_finite() && a.threshold >= 0.0) {
        bail!("--threshold must be a non-negative number");
    }
    if a.iters == 0 || a.group_size == 0 {
        bail!("--iters and --group-size must be at least 1");
    }
    Ok(())
}

pub fn main(cmd: EvalCommand) -> Result<()> {
    let EvalCommand::Sts(a) = cmd;
    check(&a)?;
    let cfg = a.config.load()?;
    let model = MiniLm::load(&a.model_dir).with_context(|| {
        format!(
            "cannot load the model from {} (scripts/setup.sh fetches it)",
            show(&a.model_dir)
        )
    })?;
    let all_pairs = sts::read(&a.data)?;
    // Calibration never sees a sentence of --data (STS-B's splits share a few), whatever
    // --limit scores: the same model for any --limit.
    let scored: std::collections::HashSet<&str> = all_pairs
        .iter()
        .flat_map(|p| [p.a.as_str(), p.b.as_str()])
        .collect();
    let mut calib: Vec<String> = Vec::new();
    let mut skipped = 0;
    for s in sts::sentences(&sts::read(&a.calib)?) {
        if calib.len() == a.calib_sentences {
            break;
        }
        if scored.contains(s.as_str()) {
            skipped += 1;
        } else {
            calib.push(s);
        }
    }
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
    let opts = CompressOptions {
        block: Options {
            threshold: a.threshold,
            iters: a.iters,
            ..Options::default()
        },
        group_size: a.group_size,
        prune_ratio: a.prune_ratio,
    };
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
        threshold: a.threshold,
        prune_ratio: a.prune_ratio,
        calibration_sentences: cal.sentences,
        counts,
    };
    let report = Report {
        format_version: 1,
        task: "sts",
        model: show(&a.model_dir),
        data: show(&a.data),
        pairs: pairs.len(),
        float,
        smartdeal: sd,
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
    let s = &report.smartdeal;
    print_out(&format!(
        "sts: {} pairs of {}: {f}SmartDeal int8 {:.4} on {} (config `{}`; {:.2} bits per weight, \
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
    ))
}
