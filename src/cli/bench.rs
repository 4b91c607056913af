//! `smartdeal fpga bench`: the SmartDeal accelerator against its dense int8 baseline on one
//! board (both built with the same flow, the same lanes and the same buffers), and optionally
//! the largest lane count that fits the board. Writes `bench.json` and `bench.md`.

use super::board_build::{
    board_link, build_board, config_for_board, earlier_build, over_capacity, parse_baud,
    parse_minutes, BaudArg, BoardArg, BuildTarget, DspArg, Minutes,
};
use super::{note, print_out, show, ConfigArgs};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use smartdeal_core::random::{random_layer, RandomLayerSpec};
use smartdeal_core::AccelConfig;
use smartdeal_fpga::{Board, BuildReport, BuildStatus, ToolError};
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Target board
    #[arg(long, value_enum)]
    pub board: BoardArg,
    /// Accelerator preset or --config file [default: the board's preset]
    #[command(flatten)]
    pub config: ConfigArgs,
    /// UART baud rate of the board top, or `max` (see `fpga build --help`)
    #[arg(long, value_name = "BAUD", default_value = "115200", value_parser = parse_baud)]
    pub baud: BaudArg,
    /// Also find the largest lane count of this configuration that places, routes and meets
    /// timing at the board clock (one full build per candidate: hours on the ECP5)
    #[arg(long)]
    pub search_lanes: bool,
    /// Upper bound for --search-lanes
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub max_lanes: u32,
    /// Inputs × outputs of the benchmark layer
    #[arg(long, value_name = "N", default_value_t = 384)]
    pub layer_size: u32,
    /// Row density of the benchmark layer (fraction of Ce rows present)
    #[arg(long, value_name = "D", default_value_t = 0.3)]
    pub row_density: f64,
    /// Seed of the random benchmark layer
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output folder: one build folder per design, bench.json, bench.md
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Reuse a finished build already in DIR (from an interrupted or earlier run) when it is of
    /// the same design: same board and clock, the same generated Verilog (comments aside) and
    /// the same synthesis options. Reused builds are named on stderr. The lane search's
    /// bisection then tries such builds first (the one nearest the midpoint)
    #[arg(long)]
    pub reuse: bool,
    /// Limit for each build this run starts. A lane-search candidate over it is recorded as
    /// `timed_out` and counted as not fitting (nextpnr's router2 has no iteration limit and can
    /// negotiate congestion for hours on a nearly full ECP5); the two compared designs over it
    /// fail the run [default: no limit]
    #[arg(long, value_name = "MIN", value_parser = parse_minutes)]
    pub build_timeout_min: Option<Minutes>,
}

/// What one layer costs on one design, from the buffer images the host would load.
#[derive(Debug, Clone, Serialize)]
pub struct LayerCost {
    /// Bytes of weight data moved to the device: stream entries plus basis and weight-shift
    /// words (activations and output parameters are the same for both designs and excluded).
    pub weight_bytes: u64,
    /// Stream entries (= cycles, one per entry, without the fixed pipeline latency).
    pub stream_entries: u64,
    /// Runs the layer is split into (buffer capacity).
    pub runs: u32,
}

/// One row of the table.
#[derive(Debug, Clone, Serialize)]
pub struct BenchRow {
    pub design: String,
    pub config: String,
    pub lanes: u32,
    pub status: BuildStatus,
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
    pub fmax_mhz: Option<f64>,
    pub build_seconds: f64,
    pub layer: LayerCost,
    /// `3 × lanes × slots × Fmax / row density` for SmartDeal (absent rows cost no cycle),
    /// `3 × lanes × slots × Fmax` for the dense baseline (it streams every row), in MAC/s.
    pub effective_mac_per_s: Option<f64>,
    /// `inputs × outputs × slots × Fmax / stream entries`: the same, measured on the packed
    /// stream (includes padding and the union of row sets across a tile's lanes).
    pub stream_mac_per_s: Option<f64>,
    pub report: PathBuf,
}

/// One candidate of the lane search.
#[derive(Debug, Clone, Serialize)]
pub struct LaneTrial {
    pub lanes: u32,
    /// `ok`, `timing_failed`, `does_not_fit`, `invalid_config`, or `timed_out` (stopped at
    /// `--build-timeout-min`; counted as not fitting).
    pub outcome: String,
    pub detail: String,
    pub fmax_mhz: Option<f64>,
    pub logic_percent: Option<f64>,
}

impl LaneTrial {
    fn of(lanes: u32, r: &BuildReport, dir: &Path) -> LaneTrial {
        LaneTrial {
            lanes,
            outcome: match r.status {
                BuildStatus::Ok => "ok",
                BuildStatus::TimingFailed => "timing_failed",
                BuildStatus::DoesNotFit => "does_not_fit",
            }
            .into(),
            detail: match r.status {
                BuildStatus::DoesNotFit => over_capacity(r),
                _ => format!("report {}", show(&dir.join("report.json"))),
            },
            fmax_mhz: r.fmax_mhz(),
            logic_percent: Some(r.utilization.logic.percent()),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LaneSearch {
    pub config: String,
    /// Largest lane count that built; final only when `complete`.
    pub largest_fitting_lanes: Option<u32>,
    /// False while the search is still running (the files are rewritten after every candidate).
    pub complete: bool,
    /// The `--max-lanes` bound. When the verdict equals it, larger counts were not tried.
    pub max_lanes: u32,
    /// The `--build-timeout-min` limit of each candidate's build, if any.
    pub build_timeout_min: Option<f64>,
    pub trials: Vec<LaneTrial>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Bench {
    pub board: Board,
    pub device: String,
    pub clock_mhz: f64,
    /// UART baud rate of every build (`--baud`, `max` resolved).
    pub baud: u32,
    pub layer_inputs: u32,
    pub layer_outputs: u32,
    pub row_density: f64,
    pub seed: u64,
    pub rows: Vec<BenchRow>,
    pub lane_search: Option<LaneSearch>,
}

pub fn main(a: BenchArgs) -> Result<()> {
    if !(a.row_density > 0.0 && a.row_density <= 1.0) {
        bail!("--row-density {} must be in (0, 1]", a.row_density);
    }
    if a.max_lanes == 0 {
        bail!("--max-lanes must be positive");
    }
    if a.layer_size == 0 {
        bail!("--layer-size must be positive");
    }
    let board = a.board.board();
    let sd = config_for_board(a.board, &a.config)?;
    if sd.is_dense() {
        bail!(
            "fpga bench compares a SmartDeal configuration with its dense baseline: drop --dense"
        );
    }
    let dense = sd.dense_baseline();
    let layer = random_layer(&RandomLayerSpec::for_config(
        &sd,
        a.layer_size,
        a.layer_size,
        a.row_density,
        a.seed,
    ));
    std::fs::create_dir_all(&a.out).with_context(|| format!("cannot create {}", show(&a.out)))?;

    // `max` resolved once (the bench builds at the board clock), so it is reported once.
    let baud_rate = board_link(board, a.baud, None)?.baud;
    let baud = BaudArg::Rate(baud_rate);
    let opts = RunOptions {
        baud,
        max_lanes: a.max_lanes,
        reuse: a.reuse,
        build_timeout: a.build_timeout_min,
    };
    let mut rows = Vec::new();
    let mut reports = Vec::new();
    for (design, cfg) in [("smartdeal", &sd), ("dense-int8", &dense)] {
        let cost = layer_cost(cfg, &layer)?;
        let dir = a.out.join(design);
        let report = build_or_reuse(board, cfg, &opts, &dir)?;
        let density = if cfg.is_dense() { 1.0 } else { a.row_density };
        rows.push(row(design, cfg, &report, cost, density, a.layer_size, &dir));
        reports.push(report);
    }
    let mut bench = Bench {
        board,
        device: board.device().into(),
        clock_mhz: board.clock_mhz(),
        baud: baud_rate,
        layer_inputs: a.layer_size,
        layer_outputs: a.layer_size,
        row_density: a.row_density,
        seed: a.seed,
        rows,
        lane_search: None,
    };
    // Written now and after every lane-search candidate, so an interrupted search (hours on
    // the ECP5) leaves its results on disk.
    let write = |bench: &Bench| -> Result<String> {
        let json = a.out.join("bench.json");
        std::fs::write(&json, serde_json::to_string_pretty(bench)? + "\n")
            .with_context(|| format!("cannot write {}", show(&json)))?;
        let md = markdown(bench);
        let md_path = a.out.join("bench.md");
        std::fs::write(&md_path, &md)
            .with_context(|| format!("cannot write {}", show(&md_path)))?;
        Ok(md)
    };
    write(&bench)?;
    if a.search_lanes {
        let known = LaneTrial::of(sd.lanes, &reports[0], &a.out.join("smartdeal"));
        let search = search_lanes(board, &sd, &opts, &a.out, known, &mut |ls| {
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

/// Weight bytes and stream entries of `layer` on `cfg`, from the images the host loads.
pub fn layer_cost(cfg: &AccelConfig, layer: &smartdeal_core::FcLayer) -> Result<LayerCost> {
    let runs = smartdeal_host::pack_for(cfg, layer)
        .with_context(|| format!("the benchmark layer on config `{}`", cfg.name))?;
    let bits =
        |ws: &[smartdeal_core::image::Word]| ws.iter().map(|w| u64::from(w.bits)).sum::<u64>();
    let weight_bits: u64 = runs
        .iter()
        .map(|r| bits(&r.coef) + bits(&r.basis) + bits(&r.wshift))
        .sum();
    Ok(LayerCost {
        weight_bytes: weight_bits.div_ceil(8),
        stream_entries: runs.iter().map(|r| r.coef.len() as u64).sum(),
        runs: runs.len() as u32,
    })
}

fn row(
    design: &str,
    cfg: &AccelConfig,
    r: &BuildReport,
    layer: LayerCost,
    density: f64,
    size: u32,
    dir: &Path,
) -> BenchRow {
    let u = &r.utilization;
    let fmax = r.fmax_mhz();
    let ok = r.status == BuildStatus::Ok;
    BenchRow {
        design: design.into(),
        config: cfg.name.clone(),
        lanes: cfg.lanes,
        status: r.status,
        logic_kind: u.logic.kind.clone(),
        logic_used: u.logic.used,
        logic_available: u.logic.available,
        ff: u.ff.used,
        bram: u.bram.used,
        bram_available: u.bram.available,
        spram: u.spram.as_ref().map(|s| s.used),
        dsp: u.dsp.used,
        dsp_available: u.dsp.available,
        fmax_mhz: fmax,
        build_seconds: r.steps.iter().map(|s| s.seconds).sum(),
        effective_mac_per_s: fmax
            .filter(|_| ok)
            .map(|f| 3.0 * f64::from(cfg.lanes * cfg.slots) * f * 1e6 / density),
        stream_mac_per_s: fmax.filter(|_| ok).map(|f| {
            f64::from(size) * f64::from(size) * f64::from(cfg.slots) * f * 1e6
                / layer.stream_entries as f64
        }),
        layer,
        report: dir.join("report.json"),
    }
}

/// Builds `cfg` into `dir`, or with `opts.reuse` takes the finished build of the same design
/// already there ([`earlier_build`]).
fn build_or_reuse(
    board: Board,
    cfg: &AccelConfig,
    opts: &RunOptions,
    dir: &Path,
) -> Result<BuildReport> {
    if opts.reuse {
        if let Some(r) = earlier_build(board, cfg, opts.baud, dir)? {
            note(&format!(
                "reusing the build of `{}` in {} ({:?})",
                cfg.name,
                show(dir),
                r.status
            ));
            return Ok(r);
        }
    }
    build_board(
        cfg,
        &BuildTarget {
            board,
            baud: opts.baud,
            clock_mhz: None,
            freq: None,
            dsp: DspArg::Auto,
            timeout: opts.build_timeout,
            out: dir,
        },
    )
}

/// Settings of one bench run.
struct RunOptions {
    baud: BaudArg,
    max_lanes: u32,
    reuse: bool,
    build_timeout: Option<Minutes>,
}

/// The lane count to try strictly between `lo` (built) and `hi` (did not): the midpoint, or with
/// `--reuse` the finished reusable build in `out` nearest to it, which costs nothing to try.
fn next_candidate(
    board: Board,
    base: &AccelConfig,
    opts: &RunOptions,
    out: &Path,
    lo: u32,
    hi: u32,
) -> Result<u32> {
    let mut reusable = Vec::new();
    if opts.reuse {
        for lanes in lo + 1..hi {
            let dir = out.join(format!("lanes-{lanes}"));
            if !dir.join("report.json").exists() {
                continue;
            }
            let cfg = lane_config(base, lanes);
            if cfg.validate().is_ok() && earlier_build(board, &cfg, opts.baud, &dir)?.is_some() {
                reusable.push(lanes);
            }
        }
    }
    Ok(bisection_point(lo, hi, &reusable))
}

/// The midpoint of `lo..hi`, or the count in `reusable` nearest to it (the smaller on a tie).
/// Any count strictly between the bounds keeps the search correct; a free one saves a build.
fn bisection_point(lo: u32, hi: u32, reusable: &[u32]) -> u32 {
    let mid = lo + (hi - lo) / 2;
    reusable
        .iter()
        .copied()
        .filter(|&l| lo < l && l < hi)
        .min_by_key(|&l| (l.abs_diff(mid), l))
        .unwrap_or(mid)
}

/// `base` with `lanes` lanes, named for them.
fn lane_config(base: &AccelConfig, lanes: u32) -> AccelConfig {
    let mut cfg = base.clone();
    cfg.lanes = lanes;
    cfg.name = format!("{}-{lanes}lanes", base.name);
    cfg
}

/// Finds the largest lane count of `base` (all else equal) whose board build succeeds: up from
/// the configured count by doubling, then bisection between the last success and the first
/// failure (or down by bisection when the configured count itself fails). `known` is the
/// configured count's own build.
fn search_lanes(
    board: Board,
    base: &AccelConfig,
    opts: &RunOptions,
    out: &Path,
    known: LaneTrial,
    progress: &mut dyn FnMut(&LaneSearch) -> Result<()>,
) -> Result<LaneSearch> {
    let mut trials: Vec<LaneTrial> = vec![known];
    let partial = |trials: &[LaneTrial]| {
        let mut t = trials.to_vec();
        t.sort_by_key(|t| t.lanes);
        LaneSearch {
            config: base.name.clone(),
            largest_fitting_lanes: t
                .iter()
                .filter(|t| t.outcome == "ok")
                .map(|t| t.lanes)
                .max(),
            complete: false,
            max_lanes: opts.max_lanes,
            build_timeout_min: opts.build_timeout.map(|m| m.0),
            trials: t,
        }
    };
    let mut attempt = |lanes: u32| -> Result<bool> {
        if let Some(t) = trials.iter().find(|t| t.lanes == lanes) {
            return Ok(t.outcome == "ok");
        }
        let cfg = lane_config(base, lanes);
        note(&format!("lane search: trying {lanes} lanes"));
        let trial = match cfg.validate() {
            Err(e) => LaneTrial {
                lanes,
                outcome: "invalid_config".into(),
                detail: e.to_string(),
                fmax_mhz: None,
                logic_percent: None,
            },
            Ok(()) => {
                let dir = out.join(format!("lanes-{lanes}"));
                match build_or_reuse(board, &cfg, opts, &dir) {
                    Ok(r) => LaneTrial::of(lanes, &r, &dir),
                    Err(e) => match e.downcast_ref::<ToolError>() {
                        Some(ToolError::Timeout { tool, log, .. }) => LaneTrial {
                            lanes,
                            outcome: "timed_out".into(),
                            detail: format!(
                                "{tool} still running at the {} min limit; log {}",
                                opts.build_timeout.map_or(0.0, |m| m.0),
                                show(&under(&dir, log))
                            ),
                            fmax_mhz: None,
                            logic_percent: None,
                        },
                        _ => return Err(e),
                    },
                }
            }
        };
        note(&format!(
            "lane search: {lanes} lanes: {} ({})",
            trial.outcome, trial.detail
        ));
        let ok = trial.outcome == "ok";
        trials.push(trial);
        progress(&partial(&trials))?;
        Ok(ok)
    };
    let start = base.lanes;
    // (good, bad): largest known success, smallest known failure.
    let (mut good, mut bad) = if attempt(start)? {
        let mut good = start;
        let mut bad = None;
        while good < opts.max_lanes {
            let next = (good * 2).min(opts.max_lanes);
            if attempt(next)? {
                good = next;
            } else {
                bad = Some(next);
                break;
            }
        }
        (Some(good), bad)
    } else {
        (None, Some(start))
    };
    loop {
        let lo = good.unwrap_or(0);
        let Some(hi) = bad else { break };
        if hi - lo <= 1 {
            break;
        }
        let mid = next_candidate(board, base, opts, out, lo, hi)?;
        if attempt(mid)? {
            good = Some(mid);
        } else {
            bad = Some(mid);
        }
    }
    trials.sort_by_key(|t| t.lanes);
    Ok(LaneSearch {
        config: base.name.clone(),
        largest_fitting_lanes: good,
        complete: true,
        max_lanes: opts.max_lanes,
        build_timeout_min: opts.build_timeout.map(|m| m.0),
        trials,
    })
}

fn mega(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{:.1} M", v / 1e6))
}

/// What qualifies the lane search's verdict, if anything.
fn verdict_note(ls: &LaneSearch) -> String {
    let best = ls.largest_fitting_lanes.unwrap_or(0);
    let timed_out: Vec<String> = ls
        .trials
        .iter()
        .filter(|t| t.outcome == "timed_out" && t.lanes > best)
        .map(|t| t.lanes.to_string())
        .collect();
    if !ls.complete {
        " so far (search still running)".into()
    } else if ls.largest_fitting_lanes == Some(ls.max_lanes) {
        " (the --max-lanes bound: larger counts were not tried)".into()
    } else if !timed_out.is_empty() {
        format!(
            " among builds that finished within the {} min limit ({} lanes: timed out)",
            ls.build_timeout_min.unwrap_or(0.0),
            timed_out.join(", ")
        )
    } else {
        String::new()
    }
}

/// The table as markdown.
pub fn markdown(b: &Bench) -> String {
    let mut s = format!(
        "## {} ({}, {} MHz board clock)\n\n\
         Benchmark layer: {}×{}, row density {:.0} % (seed {}). Weight bytes: stream entries + \
         basis + weight shifts the host loads. Effective MAC/s = 3 × lanes × slots × Fmax / row \
         density (dense: / 1); stream MAC/s = MACs × slots × Fmax / stream entries (tokens go \
         `slots` at a time).\n\n",
        b.board,
        b.device,
        b.clock_mhz,
        b.layer_inputs,
        b.layer_outputs,
        b.row_density * 100.0,
        b.seed
    );
    s.push_str(
        "| design | lanes | status | logic | FF | BRAM | DSP | Fmax (MHz) | weight bytes / layer \
         | stream entries | effective MAC/s | stream MAC/s |\n\
         | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for r in &b.rows {
        s.push_str(&format!(
            "| {} | {} | {:?} | {} / {} {} | {} | {} / {}{} | {} / {} | {} | {} | {} | {} | {} |\n",
            r.design,
            r.lanes,
            r.status,
            r.logic_used,
            r.logic_available,
            r.logic_kind,
            r.ff,
            r.bram,
            r.bram_available,
            match r.spram {
                Some(n) if n > 0 => format!(" + {n} SPRAM"),
                _ => String::new(),
            },
            r.dsp,
            r.dsp_available,
            r.fmax_mhz.map_or("–".into(), |f| format!("{f:.2}")),
            r.layer.weight_bytes,
            r.layer.stream_entries,
            mega(r.effective_mac_per_s),
            mega(r.stream_mac_per_s),
        ));
    }
    if let [sd, dense] = &b.rows[..] {
        if let (Some(a), Some(d)) = (sd.effective_mac_per_s, dense.effective_mac_per_s) {
            s.push_str(&format!(
                "\nSmartDeal vs dense: {:.2}× effective MAC/s, {:.2}× fewer weight bytes.\n",
                a / d,
                dense.layer.weight_bytes as f64 / sd.layer.weight_bytes as f64
            ));
        }
    }
    if let Some(ls) = &b.lane_search {
        s.push_str(&format!(
            "\nLargest lane count of `{}` that fits: **{}**{}\n\n| lanes | outcome | Fmax (MHz) | logic | detail |\n| ---: | --- | ---: | ---: | --- |\n",
            ls.config,
            ls.largest_fitting_lanes
                .map_or("none".to_string(), |l| l.to_string()),
            verdict_note(ls)
        ));
        for t in &ls.trials {
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                t.lanes,
                t.outcome,
                t.fmax_mhz.map_or("–".into(), |f| format!("{f:.2}")),
                t.logic_percent.map_or("–".into(), |p| format!("{p:.1} %")),
                t.detail
            ));
        }
    }
    s
}

/// `path` (absolute, as the flow reports it) written under `dir` as the user gave it, like the
/// other rows' report paths, so the tables carry no path of the machine that wrote them.
fn under(dir: &std::path::Path, path: &std::path::Path) -> std::path::PathBuf {
    std::path::absolute(dir)
        .ok()
        .and_then(|abs| path.strip_prefix(abs).ok().map(|rel| dir.join(rel)))
        .unwrap_or_else(|| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::{bisection_point, under};

    #[test]
    fn logs_are_shown_under_the_folder_as_given() {
        let dir = std::path::Path::new("out/bench");
        let abs = std::path::absolute(dir).unwrap().join("lanes-36/pnr.log");
        assert_eq!(under(dir, &abs), dir.join("lanes-36/pnr.log"));
        let elsewhere = std::path::Path::new("/elsewhere/pnr.log");
        assert_eq!(under(dir, elsewhere), elsewhere);
    }

    #[test]
    fn bisection_prefers_a_free_count_near_the_midpoint() {
        assert_eq!(bisection_point(32, 40, &[]), 36);
        // The ULX3S search: 35, 37 and 38 built already, between 32 (ok) and 40 (not).
        assert_eq!(bisection_point(32, 40, &[35, 37, 38]), 35);
        assert_eq!(bisection_point(35, 40, &[35, 37, 38]), 37);
        assert_eq!(bisection_point(35, 37, &[35, 37, 38]), 36);
        // Counts outside the open interval are never chosen.
        assert_eq!(bisection_point(32, 36, &[32, 36, 40]), 34);
    }
}
