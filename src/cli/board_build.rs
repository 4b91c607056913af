//! Building a board design, shared by `fpga build` and `fpga bench`: the board, `--dsp`,
//! `--baud` and time-limit arguments, the board top's clock and UART link, the synthesis
//! options, the build itself and the check that an earlier build can be reused. A module of
//! its own so that `fpga` (which nests `fpga bench`) and `bench` both use it without either
//! importing from the other.

use super::{note, show, ConfigArgs};
use anyhow::{anyhow, bail, Context, Result};
use smartdeal_core::{AccelConfig, MacMul};
use smartdeal_fpga::{build, Board, BuildOptions, ToolError};
use smartdeal_gen::usb_uart::CLEAN_MISMATCH_PERMILLE;
use smartdeal_gen::{generate_board, BoardLink, GenOptions, Pll, PllFamily, UsbUart};
use std::time::Duration;

/// A board the flows support.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BoardArg {
    /// iCEBreaker: iCE40UP5K-SG48, 12 MHz, FTDI UART (default preset `icebreaker`)
    Icebreaker,
    /// ULX3S with an LFE5U-85F, CABGA381, 25 MHz, FTDI UART (default preset `ulx3s`)
    #[value(name = "ulx3s-85f")]
    Ulx3s85f,
}

impl BoardArg {
    pub fn board(self) -> Board {
        match self {
            BoardArg::Icebreaker => Board::Icebreaker,
            BoardArg::Ulx3s85f => Board::Ulx3s85f,
        }
    }
    fn default_preset(self) -> &'static str {
        match self {
            BoardArg::Icebreaker => "icebreaker",
            BoardArg::Ulx3s85f => "ulx3s",
        }
    }
}

/// Whether multipliers go to DSP blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DspArg {
    /// DSP blocks when all the design's multipliers fit the device's (Yosys maps every
    /// multiplier or none), LUT multipliers otherwise
    Auto,
    /// Always DSP blocks (place and route fails if the device has too few)
    On,
    /// Always LUT multipliers
    Off,
}

/// `--baud`: a rate, or the fastest clean one of the board.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaudArg {
    Rate(u32),
    Max,
}

/// A positive baud rate or `max`.
pub fn parse_baud(s: &str) -> Result<BaudArg, String> {
    if s == "max" {
        return Ok(BaudArg::Max);
    }
    match s.parse::<u32>() {
        Ok(0) => Err("the baud rate must be positive".into()),
        Ok(b) => Ok(BaudArg::Rate(b)),
        Err(_) => Err(format!("`{s}` is neither a baud rate nor `max`")),
    }
}

/// The board's USB-UART bridge.
pub fn usb_uart(board: Board) -> UsbUart {
    match board {
        Board::Icebreaker => UsbUart::Ft2232h,
        Board::Ulx3s85f => UsbUart::Ft231x,
    }
}

/// A time limit in minutes, as given (kept as given for messages and bench.json).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Minutes(pub f64);

impl Minutes {
    pub fn duration(self) -> Duration {
        Duration::from_secs_f64(self.0 * 60.0)
    }
}

/// A positive, finite number of minutes (fractions allowed).
pub fn parse_minutes(s: &str) -> Result<Minutes, String> {
    let min: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of minutes"))?;
    if !(min.is_finite() && min > 0.0 && min <= 100_000.0) {
        return Err(format!("{s} minutes: want a positive number up to 100000"));
    }
    Ok(Minutes(min))
}

/// The selected configuration, or the board's preset when none is given.
pub fn config_for_board(board: BoardArg, c: &ConfigArgs) -> Result<AccelConfig> {
    if c.preset.is_none() && c.config.is_none() {
        let cfg = AccelConfig::preset(board.default_preset())?;
        return Ok(if c.dense { cfg.dense_baseline() } else { cfg });
    }
    c.load()
}

/// Resolves `--dsp` for this design on this board.
pub fn use_dsp(dsp: DspArg, board: Board, cfg: &AccelConfig) -> bool {
    match dsp {
        DspArg::On => true,
        DspArg::Off => false,
        DspArg::Auto => board.dsps_fit(&smartdeal_gen::multipliers(cfg)),
    }
}

/// `mac_mul = "mult18x18d"` instantiates the ECP5's DSP block: refused on an iCE40 board and
/// with `--dsp off`, which it would silently contradict.
fn check_mac_mul(cfg: &AccelConfig, board: Board, dsp: DspArg) -> Result<()> {
    if cfg.mac_mul != MacMul::Mult18x18d {
        return Ok(());
    }
    if board.family() != smartdeal_fpga::Family::Ecp5 {
        bail!(
            "config `{}` has mac_mul = \"mult18x18d\", the ECP5's DSP block, but {board} is an \
             iCE40 board: use mac_mul = \"inferred\"",
            cfg.name
        );
    }
    if dsp == DspArg::Off {
        bail!(
            "--dsp off, but config `{}` instantiates MULT18X18D DSP blocks (mac_mul = \
             \"mult18x18d\"): use --dsp auto or on, or mac_mul = \"inferred\"",
            cfg.name
        );
    }
    Ok(())
}

/// How the flow maps `cfg`: multipliers to DSP blocks or not, single-port buffers to SPRAM.
/// One place, so that [`earlier_build`] judges a build by the options [`build_board`] uses.
fn synthesis_options(cfg: &AccelConfig, use_dsp: bool) -> BuildOptions {
    BuildOptions {
        dsp: use_dsp,
        spram: cfg.single_port_buffers,
        ..BuildOptions::default()
    }
}

/// The board's PLL family.
fn pll_family(board: Board) -> PllFamily {
    match board.family() {
        smartdeal_fpga::Family::Ice40 => PllFamily::Ice40,
        smartdeal_fpga::Family::Ecp5 => PllFamily::Ecp5,
    }
}

/// The board top's clock and link: the board clock, or a PLL's output at or below
/// `clock_mhz`; `max` baud is the board bridge's [`UsbUart::fastest_clean_baud`] at that clock.
pub fn board_link(board: Board, baud: BaudArg, clock_mhz: Option<f64>) -> Result<BoardLink> {
    let board_hz = (board.clock_mhz() * 1e6).round() as u32;
    let base = match clock_mhz {
        None => BoardLink::uart(board_hz),
        Some(mhz) => {
            if !(mhz.is_finite() && mhz > 0.0 && mhz < 4000.0) {
                bail!("--clock-mhz {mhz}: not a clock frequency in MHz");
            }
            let pll = Pll::plan(pll_family(board), board_hz, (mhz * 1e6).round() as u32)
                .map_err(|e| anyhow!("--clock-mhz {mhz}: {e}"))?;
            note(&format!("core clock from the PLL: {}", pll.config_line()));
            BoardLink::uart_with_pll(pll)
        }
    };
    let baud = match baud {
        BaudArg::Rate(b) => b,
        BaudArg::Max => {
            let uart = usb_uart(board);
            let c = uart.fastest_clean_baud(base.clock_hz).ok_or_else(|| {
                anyhow!(
                    "--baud max: no rate of the {}'s {} is within {} % of a bit rate of the \
                     {} Hz core clock",
                    board,
                    uart.name(),
                    f64::from(CLEAN_MISMATCH_PERMILLE) / 10.0,
                    base.clock_hz
                )
            })?;
            note(&format!(
                "UART at {} baud: the fastest rate the {} makes that the {} Hz core clock \
                 matches within {} % ({} clocks per bit = {:.0} baud, {:.2} % off); pass --baud \
                 {} to `smartdeal run`",
                c.baud,
                uart.name(),
                base.clock_hz,
                f64::from(CLEAN_MISMATCH_PERMILLE) / 10.0,
                c.clks_per_bit,
                c.device_baud,
                c.mismatch_permille / 10.0,
                c.baud
            ));
            c.baud
        }
    };
    Ok(BoardLink {
        baud,
        led_active_low: board.led_active_low(),
        ..base
    })
}

/// Where and how [`build_board`] builds.
pub struct BuildTarget<'a> {
    pub board: Board,
    pub baud: BaudArg,
    /// Core clock from a PLL (`--clock-mhz`); `None`: the board clock.
    pub clock_mhz: Option<f64>,
    /// Timing target (`--freq`); `None`: the core clock.
    pub freq: Option<f64>,
    pub dsp: DspArg,
    /// Limit for the whole flow.
    pub timeout: Option<Minutes>,
    pub out: &'a std::path::Path,
}

/// Generates the board design for `cfg` and runs the flow into `t.out`; any finished build
/// (including timing failures and designs that do not fit) is `Ok` with its report. The timing
/// target is `freq`, else the core clock (`clock_mhz`'s PLL output, else the board clock). A
/// build stopped by `timeout` is an error that downcasts to [`ToolError::Timeout`], so that a
/// lane search can tell it from a broken flow.
pub fn build_board(cfg: &AccelConfig, t: &BuildTarget<'_>) -> Result<smartdeal_fpga::BuildReport> {
    let BuildTarget {
        board,
        baud,
        clock_mhz,
        freq,
        dsp,
        timeout,
        out,
    } = *t;
    check_mac_mul(cfg, board, dsp)?;
    let link = board_link(board, baud, clock_mhz)?;
    let design = generate_board(cfg, &link, &GenOptions::default())
        .map_err(|e| anyhow!("board link: {e}"))?;
    let rtl = out.join("rtl");
    let files = design
        .write(&rtl)
        .with_context(|| format!("cannot write {}", show(&rtl)))?;
    let use_dsp = use_dsp(dsp, board, cfg);
    note(&format!(
        "building config `{}` for {} ({} {}), multipliers in {}: synthesis, place and route, \
         bitstream ...",
        cfg.name,
        board,
        board.device(),
        board.package(),
        match (use_dsp, dsp) {
            (true, _) => "DSP blocks",
            (false, DspArg::Off) => "LUTs (--dsp off)",
            (false, _) => "LUTs (they need more DSP blocks than the device has)",
        }
    ));
    let opts = BuildOptions {
        freq_mhz: freq,
        pll_mhz: link.pll.map(|p| p.out_hz_exact() / 1e6),
        timeout: timeout.map(Minutes::duration),
        ..synthesis_options(cfg, use_dsp)
    };
    build(board, &files, &design.design.top, out, &opts).map_err(|e| match e {
        // The tool's own message gives the time it had left; the user set the whole build's.
        ToolError::Timeout { .. } => anyhow::Error::new(e).context(format!(
            "build stopped at its {} min time limit",
            timeout.map_or(0.0, |m| m.0)
        )),
        e => anyhow!("{e}"),
    })
}

/// A finished earlier build in `t.out` of the same design as [`build_board`]`(cfg, t)` would
/// make, if there is one: same board, core clock (the board clock or the same PLL) and timing
/// target, generated Verilog (comments aside: headers name the generator version) and
/// synthesis command (DSP and SPRAM mapping). For long searches that are resumed: nothing in
/// it was rebuilt.
pub fn earlier_build(
    cfg: &AccelConfig,
    t: &BuildTarget<'_>,
) -> Result<Option<smartdeal_fpga::BuildReport>> {
    let (board, dir) = (t.board, t.out);
    let Ok(report) = smartdeal_fpga::BuildReport::read(&dir.join("report.json")) else {
        return Ok(None);
    };
    let link = board_link(board, t.baud, t.clock_mhz)?;
    // The target the flow would set (see `ClockTargets` in the fpga crate), compared with a
    // tolerance: report.json holds it as parsed back from decimal text.
    let core_mhz = link
        .pll
        .map_or(board.clock_mhz(), |p| p.out_hz_exact() / 1e6);
    let target = t.freq.unwrap_or(core_mhz);
    if report.board != board || (report.target_mhz - target).abs() > 1e-9 * target {
        return Ok(None);
    }
    let design = generate_board(cfg, &link, &GenOptions::default())
        .map_err(|e| anyhow!("board link: {e}"))?;
    let rtl = dir.join("rtl");
    let listed = std::fs::read_to_string(rtl.join("files.f")).unwrap_or_default();
    let names: Vec<&str> = design
        .design
        .files
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    if listed.lines().collect::<Vec<_>>() != names {
        return Ok(None);
    }
    for (name, text) in &design.design.files {
        let old = std::fs::read_to_string(rtl.join(name)).unwrap_or_default();
        if without_comments(&old) != without_comments(text) {
            return Ok(None);
        }
    }
    let opts = synthesis_options(cfg, use_dsp(t.dsp, board, cfg));
    let synth_cmd = |script: &str| {
        script
            .lines()
            .find(|l| l.starts_with("synth_"))
            .map(str::to_string)
    };
    let fresh = smartdeal_fpga::flow::synth_script(board, &[], &design.design.top, &opts)
        .map_err(|e| anyhow!("{e}"))?;
    let old = std::fs::read_to_string(dir.join("synth.ys")).unwrap_or_default();
    if synth_cmd(&old).is_none() || synth_cmd(&old) != synth_cmd(&fresh) {
        return Ok(None);
    }
    Ok(Some(report))
}

/// Verilog text without `//` comments and blank lines (the generator writes no string
/// literals that contain `//`).
fn without_comments(text: &str) -> Vec<&str> {
    text.lines()
        .map(|l| l.split("//").next().unwrap_or("").trim_end())
        .filter(|l| !l.is_empty())
        .collect()
}

/// The resources a DoesNotFit report asks more of than the device has.
pub fn over_capacity(report: &smartdeal_fpga::BuildReport) -> String {
    let over: Vec<String> = report
        .utilization
        .all()
        .into_iter()
        .filter(|(_, r)| r.used > r.available)
        .map(|(n, r)| format!("{n} {} of {} ({})", r.used, r.available, r.kind))
        .collect();
    if over.is_empty() {
        "nextpnr found no legal placement near the utilisation limit".into()
    } else {
        over.join(", ")
    }
}
