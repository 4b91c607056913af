//! `smartdeal fpga bench`: SmartDeal against its dense int8 baseline on one board, side by
//! side. One run builds three designs with the same flow at the same clock — SmartDeal with
//! the rebuild dataflow, SmartDeal with the factorized dataflow, and the dense int8 baseline of
//! the rebuild design (same lanes, slots and buffers) — and scores each on a seeded random layer
//! and on all-MiniLM-L6-v2's layer-0 attention query (decomposed as `smartdeal decompose` does,
//! unpruned and pruned), from the buffer images the host would load. Optionally it finds the
//! largest lane count of the rebuild design that fits the board. Writes `bench.json` and
//! `bench.md`.

mod lanes;
mod layers;
mod table;

use super::board_build::{
    board_link, build_board, config_for_board, earlier_build, over_capacity, parse_baud,
    parse_minutes, BaudArg, BoardArg, BuildTarget, DspArg, Minutes,
};
use super::{note, print_out, show, ConfigArgs};
use anyhow::{anyhow, bail, Context, Result};
use lanes::{search_lanes, LaneSearch, LaneTrial};
use layers::{layer_cost, layer_mac_per_s, per_klut, BenchLayer, LayerResult, LayerSources};
use serde::Serialize;
use smartdeal_core::params::PRESETS;
use smartdeal_core::{AccelConfig, ConfigError, Dataflow, WeightFormat, WeightRequant};
use smartdeal_fpga::{Board, BuildReport, BuildStatus, ToolError};
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Target board
    #[arg(long, value_enum)]
    pub board: BoardArg,
    /// Base SmartDeal configuration (--preset or --config) [default: the board's preset]. It is
    /// the design of its own dataflow (its `dataflow` field); the other dataflow's design is
    /// derived from it unless --rebuild-config / --factorized-config give it
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The SmartDeal rebuild design: a preset name or a TOML file [default: the base
    /// configuration if its dataflow is rebuild, else the base switched to rebuild, named
    /// `<base>-rebuild`: weight_requant = "int8", acc_bits = 32]. The dense baseline is this
    /// design's, and --search-lanes searches it
    #[arg(long, value_name = "PRESET|FILE")]
    pub rebuild_config: Option<String>,
    /// The SmartDeal factorized design: a preset name or a TOML file [default: the base
    /// configuration if its dataflow is factorized, else the base switched to factorized,
    /// named `<base>-factorized`: weight_requant = "exact" and acc_bits raised to what exact
    /// weights need for its activation buffer]
    #[arg(long, value_name = "PRESET|FILE")]
    pub factorized_config: Option<String>,
    /// Layers to score every design on, comma-separated. The MiniLM layers need
    /// all-MiniLM-L6-v2 in --model-dir (scripts/setup.sh fetches it)
    #[arg(
        long,
        value_enum,
        value_name = "LAYER,...",
        value_delimiter = ',',
        default_values = ["synthetic", "minilm", "minilm-pruned"]
    )]
    pub layers: Vec<BenchLayer>,
    /// Inputs × outputs of the synthetic layer
    #[arg(long, value_name = "N", default_value_t = 384)]
    pub layer_size: u32,
    /// Row density of the synthetic layer (fraction of Ce rows present)
    #[arg(long, value_name = "D", default_value_t = 0.3)]
    pub row_density: f64,
    /// Seed of the synthetic layer
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Folder with all-MiniLM-L6-v2's model.safetensors (as `eval sts --model-dir`)
    #[arg(long, value_name = "DIR", default_value = "cache/minilm")]
    pub model_dir: PathBuf,
    /// Structural prune ratio of the minilm-pruned layer (`decompose --prune-ratio`)
    #[arg(long, value_name = "R", default_value_t = 0.5)]
    pub prune_ratio: f64,
    /// UART baud rate of the board top, or `max` (see `fpga build --help`)
    #[arg(long, value_name = "BAUD", default_value = "115200", value_parser = parse_baud)]
    pub baud: BaudArg,
    /// Core clock in MHz, made from the board clock by the PLL, as `fpga build --clock-mhz`
    /// (every design and lane-search candidate is built behind it) [default: no PLL, the core
    /// runs on the board clock]
    #[arg(long, value_name = "MHZ")]
    pub clock_mhz: Option<f64>,
    /// Timing target in MHz of every build [default: the core clock]
    #[arg(long, value_name = "MHZ")]
    pub freq: Option<f64>,
    /// Also find the largest lane count of the rebuild design that places, routes and meets
    /// timing (one full build per candidate: hours on the ECP5)
    #[arg(long)]
    pub search_lanes: bool,
    /// Upper bound for --search-lanes
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub max_lanes: u32,
    /// Output folder: one build folder per design (smartdeal-rebuild, smartdeal-factorized,
    /// dense-int8) and lane-search candidate (lanes-N), bench.json, bench.md
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Reuse a finished build already in DIR (from an interrupted or earlier run) when it is of
    /// the same design: same board, clock and timing target, the same generated Verilog
    /// (comments aside) and the same synthesis options. Reused builds are named on stderr. The
    /// lane search's bisection then tries such builds first (the one nearest the midpoint)
    #[arg(long)]
    pub reuse: bool,
    /// Limit for each build this run starts. A build over it is stopped and recorded as
    /// `timed_out` (a design's row, or a lane-search candidate counted as not fitting):
    /// nextpnr's router2 has no iteration limit and can negotiate congestion for hours on a
    /// nearly full ECP5 [default: no limit]
    #[arg(long, value_name = "MIN", value_parser = parse_minutes)]
    pub build_timeout_min: Option<Minutes>,
}

/// Build folder and table name of each design.
const REBUILD: &str = "smartdeal-rebuild";
const FACTORIZED: &str = "smartdeal-factorized";
const DENSE: &str = "dense-int8";

/// How a build ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    TimingFailed,
    DoesNotFit,
    /// Stopped at `--build-timeout-min`.
    TimedOut,
    /// Not built: the configuration is invalid (lane-search candidates only).
    InvalidConfig,
}

impl Outcome {
    fn of(s: BuildStatus) -> Outcome {
        match s {
            BuildStatus::Ok => Outcome::Ok,
            BuildStatus::TimingFailed => Outcome::TimingFailed,
            BuildStatus::DoesNotFit => Outcome::DoesNotFit,
        }
    }

    /// The name bench.json uses.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::TimingFailed => "timing_failed",
            Outcome::DoesNotFit => "does_not_fit",
            Outcome::TimedOut => "timed_out",
            Outcome::InvalidConfig => "invalid_config",
        }
    }
}

/// What a finished build used and reached.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Resources {
    pub logic_kind: String,
    pub logic_used: u64,
    pub logic_available: u64,
    pub ff: u64,
    pub bram: u64,
    pub bram_available: u64,
    /// UP5K single-port RAMs (SB_SPRAM256KA) used; `None` on devices without them.
    pub spram: Option<u64>,
    pub dsp: u64,
    pub dsp_available: u64,
    /// Lowest post-route Fmax over the clocks (`None` when nothing was routed).
    pub fmax_mhz: Option<f64>,
    pub build_seconds: f64,
}

impl Resources {
    fn of(r: &BuildReport) -> Resources {
        let u = &r.utilization;
        Resources {
            logic_kind: u.logic.kind.clone(),
            logic_used: u.logic.used,
            logic_available: u.logic.available,
            ff: u.ff.used,
            bram: u.bram.used,
            bram_available: u.bram.available,
            spram: u.spram.as_ref().map(|s| s.used),
            dsp: u.dsp.used,
            dsp_available: u.dsp.available,
            fmax_mhz: r.fmax_mhz(),
            build_seconds: r.steps.iter().map(|s| s.seconds).sum(),
        }
    }
}

/// One design's build: the build table's row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DesignRow {
    /// `smartdeal-rebuild`, `smartdeal-factorized` or `dense-int8` (also its build folder).
    pub design: String,
    pub config: String,
    pub dataflow: Dataflow,
    pub weight_format: WeightFormat,
    pub weight_requant: WeightRequant,
    pub lanes: u32,
    pub slots: u32,
    pub acc_bits: u32,
    pub status: Outcome,
    /// What a design that does not fit is short of, or where a stopped build's log is.
    pub detail: Option<String>,
    /// `None` for a build stopped at the time limit (no report).
    pub build: Option<Resources>,
    /// `3 × lanes × slots`: a lane multiplies a row's three weights with `slots` activation
    /// triples per cycle.
    pub macs_per_cycle: u32,
    /// `macs_per_cycle × Fmax`: MAC/s on a layer with every row present (`ok` builds only).
    pub peak_mac_per_s: Option<f64>,
    pub report: PathBuf,
}

/// bench.json.
#[derive(Debug, Clone, Serialize)]
pub struct Bench {
    pub board: Board,
    pub device: String,
    pub board_clock_mhz: f64,
    /// The core clock every design was built for: the board clock, or the PLL's output
    /// (`--clock-mhz`).
    pub clock_mhz: f64,
    /// The PLL's settings, when there is one.
    pub pll: Option<String>,
    /// Timing target of every build (`--freq`, default the core clock).
    pub target_mhz: f64,
    /// UART baud rate of every build (`--baud`, `max` resolved).
    pub baud: u32,
    pub designs: Vec<DesignRow>,
    pub layers: Vec<LayerResult>,
    pub lane_search: Option<LaneSearch>,
}

/// The three designs of a run.
struct Designs {
    rebuild: AccelConfig,
    factorized: AccelConfig,
    dense: AccelConfig,
}

impl Designs {
    fn all(&self) -> [(&'static str, &AccelConfig); 3] {
        [
            (REBUILD, &self.rebuild),
            (FACTORIZED, &self.factorized),
            (DENSE, &self.dense),
        ]
    }
}

pub fn main(a: BenchArgs) -> Result<()> {
    check_args(&a)?;
    let board = a.board.board();
    let designs = designs(&a)?;
    let sources = LayerSources {
        size: a.layer_size,
        row_density: a.row_density,
        seed: a.seed,
        minilm: layers::minilm_weights(&a.model_dir),
        prune_ratio: a.prune_ratio,
    };
    if a.layers.iter().any(|l| l.needs_minilm()) {
        sources.check_minilm()?;
    }
    // Every layer is packed for every design before the first build, so a layer that does not
    // fit fails the run in seconds rather than after the builds.
    let mut layer_results = layer_costs(&a.layers, &sources, &designs)?;
    // The link once for the whole run: `max` baud resolved for the core clock and reported
    // once, the PLL planned (or refused) before anything is written.
    let link = board_link(board, a.baud, a.clock_mhz)?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("cannot create {}", show(&a.out)))?;
    let opts = RunOptions {
        baud: BaudArg::Rate(link.baud),
        clock_mhz: a.clock_mhz,
        freq: a.freq,
        max_lanes: a.max_lanes,
        reuse: a.reuse,
        build_timeout: a.build_timeout_min,
    };
    let mut rows = Vec::new();
    let mut rebuild_trial = None;
    for (name, cfg) in designs.all() {
        let dir = a.out.join(name);
        let built = build_design(board, cfg, &opts, &dir)?;
        if name == REBUILD {
            rebuild_trial = Some(LaneTrial::of(cfg.lanes, &built, &dir));
        }
        rows.push(design_row(name, cfg, &built, &dir));
    }
    for l in &mut layer_results {
        score(l, &rows);
    }
    let core_mhz = f64::from(link.clock_hz) / 1e6;
    let core_mhz = link.pll.map_or(core_mhz, |p| p.out_hz_exact() / 1e6);
    let mut bench = Bench {
        board,
        device: board.device().into(),
        board_clock_mhz: board.clock_mhz(),
        clock_mhz: core_mhz,
        pll: link.pll.map(|p| p.config_line()),
        target_mhz: a.freq.unwrap_or(core_mhz),
        baud: link.baud,
        designs: rows,
        layers: layer_results,
        lane_search: None,
    };
    // Written now and after every lane-search candidate, so an interrupted search (hours on
    // the ECP5) leaves its results on disk.
    let write = |bench: &Bench| -> Result<String> {
        let json = a.out.join("bench.json");
        std::fs::write(&json, serde_json::to_string_pretty(bench)? + "\n")
            .with_context(|| format!("cannot write {}", show(&json)))?;
        let md = table::markdown(bench);
        let md_path = a.out.join("bench.md");
        std::fs::write(&md_path, &md)
            .with_context(|| format!("cannot write {}", show(&md_path)))?;
        Ok(md)
    };
    write(&bench)?;
    if a.search_lanes {
        let known = rebuild_trial.expect("the rebuild design is built first");
        let search = search_lanes(board, &designs.rebuild, &opts, &a.out, known, &mut |ls| {
            bench.lane_search = Some(ls.clone());
            write(&bench).map(|_| ())
        })?;
        bench.lane_search = Some(search);
    }
    let md = write(&bench)?;
    print_out(&md)?;
    note(&format!(
        "wrote {} and {}",
        show(&a.out.join("bench.json")),
        show(&a.out.join("bench.md"))
    ));
    Ok(())
}

/// The checks clap cannot make.
fn check_args(a: &BenchArgs) -> Result<()> {
    if !(a.row_density > 0.0 && a.row_density <= 1.0) {
        bail!("--row-density {} must be in (0, 1]", a.row_density);
    }
    if !(a.prune_ratio.is_finite() && (0.0..1.0).contains(&a.prune_ratio)) {
        bail!(
            "--prune-ratio {} must be a fraction in [0, 1)",
            a.prune_ratio
        );
    }
    if a.max_lanes == 0 {
        bail!("--max-lanes must be positive");
    }
    if a.layer_size == 0 {
        bail!("--layer-size must be positive");
    }
    if let Some(f) = a.freq {
        if !(f.is_finite() && f > 0.0) {
            bail!("--freq {f}: not a frequency in MHz");
        }
    }
    Ok(())
}

/// The rebuild, factorized and dense designs the arguments select (see `BenchArgs`).
fn designs(a: &BenchArgs) -> Result<Designs> {
    if a.config.dense {
        bail!(
            "fpga bench compares SmartDeal configurations with the dense baseline it derives \
             itself: drop --dense"
        );
    }
    let base = config_for_board(a.board, &a.config)?;
    if base.is_dense() {
        bail!(
            "config `{}` is the dense baseline format; fpga bench wants a SmartDeal configuration \
             and derives the dense baseline itself",
            base.name
        );
    }
    let pick = |flag: &str, given: &Option<String>, want: Dataflow| -> Result<AccelConfig> {
        let cfg = match given {
            Some(s) => load_design(flag, s)?,
            None => {
                let c = with_dataflow(&base, want);
                c.validate().map_err(|e| {
                    anyhow!(
                        "the {} variant of `{}` is invalid ({e}): give one with {flag}",
                        dataflow_name(want),
                        base.name
                    )
                })?;
                c
            }
        };
        if cfg.is_dense() || cfg.dataflow != want {
            bail!(
                "{flag}: config `{}` is {}, not SmartDeal with dataflow = \"{}\"",
                cfg.name,
                if cfg.is_dense() {
                    "the dense baseline format".to_string()
                } else {
                    format!("dataflow = \"{}\"", dataflow_name(cfg.dataflow))
                },
                dataflow_name(want)
            );
        }
        Ok(cfg)
    };
    let rebuild = pick("--rebuild-config", &a.rebuild_config, Dataflow::Rebuild)?;
    let factorized = pick(
        "--factorized-config",
        &a.factorized_config,
        Dataflow::Factorized,
    )?;
    Ok(Designs {
        dense: rebuild.dense_baseline(),
        rebuild,
        factorized,
    })
}

fn dataflow_name(d: Dataflow) -> &'static str {
    match d {
        Dataflow::Rebuild => "rebuild",
        Dataflow::Factorized => "factorized",
    }
}

/// A preset name, else a TOML file.
fn load_design(flag: &str, s: &str) -> Result<AccelConfig> {
    if PRESETS.contains(&s) {
        return Ok(AccelConfig::preset(s)?);
    }
    let path = Path::new(s);
    if !path.is_file() {
        bail!(
            "{flag} {s}: neither a preset ({}) nor a configuration file",
            PRESETS.join(", ")
        );
    }
    AccelConfig::from_toml_file(path).map_err(|e| match e {
        // Read errors already name the file; field errors do not.
        ConfigError::Field { .. } => anyhow!(e).context(format!("{flag} {s}")),
        other => anyhow!(other),
    })
}

/// `cfg` made `dataflow`, named for it: the design of the dataflow no configuration was given
/// for. Factorized lanes never form the weights, so they cannot requantize them (exact
/// weights, and the wider accumulator those need); rebuild goes back to the presets' int8
/// weights and 32-bit accumulator (wider only if the buffers need it).
fn with_dataflow(cfg: &AccelConfig, dataflow: Dataflow) -> AccelConfig {
    if cfg.dataflow == dataflow {
        return cfg.clone();
    }
    let mut c = match dataflow {
        Dataflow::Factorized => cfg.on_factorized_dataflow(),
        Dataflow::Rebuild => {
            let mut c = cfg.clone();
            c.dataflow = dataflow;
            c.weight_requant = WeightRequant::Int8;
            c.acc_bits = 32.max(c.acc_bits_required());
            c
        }
    };
    c.name = format!("{}-{}", cfg.name, dataflow_name(dataflow));
    c
}

/// Every selected layer (once each, in the order given) packed for every design. Each
/// SmartDeal design gets the layer made for it; the dense baseline gets the rebuild design's,
/// which the host decompresses to the int8 weights the SmartDeal MAC array would use.
fn layer_costs(
    kinds: &[BenchLayer],
    src: &LayerSources,
    designs: &Designs,
) -> Result<Vec<LayerResult>> {
    let mut out: Vec<LayerResult> = Vec::new();
    for &kind in kinds {
        if out.iter().any(|r| r.layer == kind) {
            continue;
        }
        let rebuild = src.layer(kind, &designs.rebuild)?;
        let factorized = src.layer(kind, &designs.factorized)?;
        let mut r = LayerResult::new(kind, src, &rebuild);
        for ((name, cfg), layer) in designs
            .all()
            .into_iter()
            .zip([&rebuild, &factorized, &rebuild])
        {
            r.costs.push(layer_cost(name, cfg, layer)?);
        }
        out.push(r);
    }
    Ok(out)
}

/// Fills a layer's MAC/s from the designs' builds (only `ok` builds have them).
fn score(l: &mut LayerResult, designs: &[DesignRow]) {
    for c in &mut l.costs {
        let Some(d) = designs.iter().find(|d| d.design == c.design) else {
            continue;
        };
        let Some(b) = d.build.as_ref().filter(|_| d.status == Outcome::Ok) else {
            continue;
        };
        if let Some(f) = b.fmax_mhz {
            let m = layer_mac_per_s(l.inputs, l.outputs, d.slots, f, c.stream_entries);
            c.mac_per_s = Some(m);
            c.mac_per_s_per_klut = Some(per_klut(m, b.logic_used));
        }
    }
}

fn design_row(name: &str, cfg: &AccelConfig, built: &Built, dir: &Path) -> DesignRow {
    let macs_per_cycle = 3 * cfg.lanes * cfg.slots;
    let (status, detail, build) = match built {
        Built::Report(r) => {
            let status = Outcome::of(r.status);
            let detail = (status == Outcome::DoesNotFit).then(|| over_capacity(r));
            (status, detail, Some(Resources::of(r)))
        }
        Built::TimedOut(why) => (Outcome::TimedOut, Some(why.clone()), None),
    };
    let fmax = build.as_ref().and_then(|b| b.fmax_mhz);
    DesignRow {
        design: name.into(),
        config: cfg.name.clone(),
        dataflow: cfg.dataflow,
        weight_format: cfg.weight_format,
        weight_requant: cfg.weight_requant,
        lanes: cfg.lanes,
        slots: cfg.slots,
        acc_bits: cfg.acc_bits,
        status,
        detail,
        build,
        macs_per_cycle,
        peak_mac_per_s: fmax
            .filter(|_| status == Outcome::Ok)
            .map(|f| f64::from(macs_per_cycle) * f * 1e6),
        report: dir.join("report.json"),
    }
}

/// How one build ended: with a report (ok, timing failed, does not fit) or stopped at
/// `--build-timeout-min` (the detail names the tool and its log).
pub enum Built {
    // Boxed: the report is large and a bench holds one per design.
    Report(Box<BuildReport>),
    TimedOut(String),
}

/// Builds `cfg` into `dir`, or with `opts.reuse` takes the finished build of the same design
/// already there ([`earlier_build`]). A build stopped at the time limit is an outcome, not an
/// error: a bench or a lane search goes on without it.
fn build_design(board: Board, cfg: &AccelConfig, opts: &RunOptions, dir: &Path) -> Result<Built> {
    let target = opts.target(board, dir);
    if opts.reuse {
        if let Some(r) = earlier_build(cfg, &target)? {
            note(&format!(
                "reusing the build of `{}` in {} ({:?})",
                cfg.name,
                show(dir),
                r.status
            ));
            return Ok(Built::Report(Box::new(r)));
        }
    }
    match build_board(cfg, &target) {
        Ok(r) => Ok(Built::Report(Box::new(r))),
        Err(e) => match e.downcast_ref::<ToolError>() {
            Some(ToolError::Timeout { tool, log, .. }) => {
                let why = format!(
                    "{tool} still running at the {} min limit; log {}",
                    opts.build_timeout.map_or(0.0, |m| m.0),
                    show(&under(dir, log))
                );
                note(&format!("`{}`: {why}", cfg.name));
                Ok(Built::TimedOut(why))
            }
            _ => Err(e),
        },
    }
}

/// Settings of every build of one bench run.
struct RunOptions {
    baud: BaudArg,
    clock_mhz: Option<f64>,
    freq: Option<f64>,
    max_lanes: u32,
    reuse: bool,
    build_timeout: Option<Minutes>,
}

impl RunOptions {
    /// Where and how a design is built into `dir`.
    fn target<'a>(&self, board: Board, dir: &'a Path) -> BuildTarget<'a> {
        BuildTarget {
            board,
            baud: self.baud,
            clock_mhz: self.clock_mhz,
            freq: self.freq,
            dsp: DspArg::Auto,
            timeout: self.build_timeout,
            out: dir,
        }
    }
}

/// `path` (absolute, as the flow reports it) written under `dir` as the user gave it, like the
/// other rows' report paths, so the tables carry no path of the machine that wrote them.
fn under(dir: &Path, path: &Path) -> PathBuf {
    std::path::absolute(dir)
        .ok()
        .and_then(|abs| path.strip_prefix(abs).ok().map(|rel| dir.join(rel)))
        .unwrap_or_else(|| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_are_shown_under_the_folder_as_given() {
        let dir = Path::new("out/bench");
        let abs = std::path::absolute(dir).unwrap().join("lanes-36/pnr.log");
        assert_eq!(under(dir, &abs), dir.join("lanes-36/pnr.log"));
        let elsewhere = Path::new("/elsewhere/pnr.log");
        assert_eq!(under(dir, elsewhere), elsewhere);
    }

    #[test]
    fn each_preset_switches_to_a_valid_factorized_design_and_back() {
        for p in PRESETS {
            let preset = AccelConfig::preset(p).unwrap();
            // A factorized preset switches to rebuild and back; a rebuild one the other way.
            let (base, other) = match preset.dataflow {
                Dataflow::Rebuild => (preset.clone(), Dataflow::Factorized),
                Dataflow::Factorized => (
                    with_dataflow(&preset, Dataflow::Rebuild),
                    Dataflow::Factorized,
                ),
            };
            assert_eq!(base.dataflow, Dataflow::Rebuild, "{p}");
            base.validate().unwrap();
            assert_eq!(base.weight_requant, WeightRequant::Int8);
            let f = with_dataflow(&base, other);
            f.validate().unwrap();
            assert_eq!(f.dataflow, Dataflow::Factorized);
            assert_eq!(f.weight_requant, WeightRequant::Exact);
            assert_eq!(f.acc_bits, f.acc_bits_required().max(base.acc_bits));
            assert_eq!(f.name, format!("{}-factorized", base.name));
            // Everything else is the preset's.
            let same = |c: &AccelConfig| (c.lanes, c.slots, c.act_depth, c.coef_depth, c.b_depth);
            assert_eq!(same(&f), same(&preset));
            assert_eq!(same(&base), same(&preset));
            // Switching back gives the rebuild arithmetic again.
            let r = with_dataflow(&f, Dataflow::Rebuild);
            r.validate().unwrap();
            assert_eq!(
                (r.weight_requant, r.acc_bits, r.dataflow),
                (base.weight_requant, base.acc_bits, base.dataflow)
            );
            assert_eq!(with_dataflow(&base, Dataflow::Rebuild), base);
            assert_eq!(with_dataflow(&preset, preset.dataflow), preset);
        }
    }

    #[test]
    fn a_design_is_a_preset_or_a_file() {
        assert_eq!(
            load_design("--rebuild-config", "tiny").unwrap(),
            AccelConfig::preset("tiny").unwrap()
        );
        let e = load_design("--rebuild-config", "/no/such.toml").unwrap_err();
        let e = format!("{e:#}");
        assert!(
            e.contains("--rebuild-config /no/such.toml") && e.contains("tiny"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f.toml");
        let mut cfg = with_dataflow(&AccelConfig::preset("tiny").unwrap(), Dataflow::Factorized);
        cfg.name = "custom".into();
        std::fs::write(&f, cfg.to_toml()).unwrap();
        let got = load_design("--factorized-config", f.to_str().unwrap()).unwrap();
        assert_eq!(got.name, "f", "named after the file, as --config does");
        assert_eq!(got.dataflow, Dataflow::Factorized);
    }

    /// A design row of `cfg` as if built: `ok` at `fmax` MHz with `logic` LUTs, or timed out.
    fn built_row(name: &str, cfg: &AccelConfig, fmax: Option<(f64, u64)>) -> DesignRow {
        let mut row = design_row(
            name,
            cfg,
            &Built::TimedOut("stopped".into()),
            Path::new(name),
        );
        if let Some((f, logic)) = fmax {
            row.status = Outcome::Ok;
            row.build = Some(Resources {
                logic_kind: "LUT".into(),
                logic_used: logic,
                logic_available: 10 * logic,
                ff: 1,
                bram: 1,
                bram_available: 2,
                spram: None,
                dsp: 0,
                dsp_available: 0,
                fmax_mhz: Some(f),
                build_seconds: 1.0,
            });
        }
        row
    }

    #[test]
    fn layers_are_scored_from_ok_builds_only_and_tabled() {
        let tiny = AccelConfig::preset("tiny").unwrap();
        let designs = Designs {
            factorized: with_dataflow(&tiny, Dataflow::Factorized),
            dense: tiny.dense_baseline(),
            rebuild: tiny,
        };
        let src = LayerSources {
            size: 96,
            row_density: 0.5,
            seed: 2,
            minilm: PathBuf::from("unused"),
            prune_ratio: 0.5,
        };
        let kinds = [BenchLayer::Synthetic, BenchLayer::Synthetic];
        let mut layers = layer_costs(&kinds, &src, &designs).unwrap();
        assert_eq!(layers.len(), 1, "a layer given twice is scored once");
        let rows = vec![
            built_row(REBUILD, &designs.rebuild, Some((50.0, 2000))),
            built_row(FACTORIZED, &designs.factorized, None),
            built_row(DENSE, &designs.dense, Some((60.0, 1000))),
        ];
        score(&mut layers[0], &rows);
        let l = &layers[0];
        let [rb, fa, de] = [0, 1, 2].map(|i| &l.costs[i]);
        let want = 96.0 * 96.0 * f64::from(designs.rebuild.slots) * 50e6 / rb.stream_entries as f64;
        assert_eq!(rb.mac_per_s, Some(want));
        assert_eq!(rb.mac_per_s_per_klut, Some(want / 2.0));
        assert_eq!((fa.mac_per_s, fa.mac_per_s_per_klut), (None, None));
        assert!(de.mac_per_s.is_some() && de.row_density == 1.0);
        let md = table::markdown(&Bench {
            board: Board::Icebreaker,
            device: "dev".into(),
            board_clock_mhz: 12.0,
            clock_mhz: 12.0,
            pll: None,
            target_mhz: 12.0,
            baud: 115_200,
            designs: rows,
            layers,
            lane_search: None,
        });
        for needle in [
            "| smartdeal-rebuild | `tiny` | rebuild, int8 weights | 4 × 2 | ok | 50.00 |",
            "| smartdeal-factorized | `tiny-factorized` | factorized, exact weights | 4 × 2 | \
             timed_out |",
            "smartdeal-factorized: timed_out (stopped).",
            "Against dense-int8: smartdeal-rebuild: ",
            "smartdeal-factorized: MAC/s not comparable",
            "**MAC/s per 1k LUT** =",
        ] {
            assert!(md.contains(needle), "no {needle:?} in\n{md}");
        }
    }

    #[test]
    fn macs_per_cycle_and_peak_rate_follow_lanes_and_slots() {
        let cfg = AccelConfig::preset("tiny").unwrap();
        let row = design_row(REBUILD, &cfg, &Built::TimedOut("x".into()), Path::new("d"));
        assert_eq!(row.macs_per_cycle, 3 * cfg.lanes * cfg.slots);
        assert_eq!(row.status, Outcome::TimedOut);
        assert_eq!(row.peak_mac_per_s, None, "no rate without a build");
        assert_eq!(row.report, Path::new("d/report.json"));
    }
}
