//! `smartdeal fpga build | flash`: the accelerator with its UART board top, through the
//! open-source FPGA flows, onto the iCEBreaker (iCE40UP5K) or the ULX3S (ECP5-85F).

use super::{note, print_out, show, ConfigArgs};
use anyhow::{anyhow, bail, Context, Result};
use smartdeal_core::AccelConfig;
use smartdeal_fpga::{build, Board, BuildOptions, BuildStatus, ToolError};
use smartdeal_gen::usb_uart::CLEAN_MISMATCH_PERMILLE;
use smartdeal_gen::{generate_board, BoardLink, GenOptions, Pll, PllFamily, UsbUart};
use std::path::PathBuf;
use std::process::Command;
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

#[derive(Debug, clap::Subcommand)]
pub enum FpgaCommand {
    /// Generate the board design and build its bitstream (Yosys, nextpnr, icepack / ecppack)
    ///
    /// Writes DIR/rtl (the generated Verilog, params.json, board.json), each tool's script and
    /// log, the bitstream, and DIR/report.json (device, LUT/LC, FF, BRAM, DSP use, Fmax, timing,
    /// tool versions, step times). nextpnr fails the build when Fmax is below the target clock
    /// (--freq, default the board clock); the command then exits 1 with the achieved Fmax.
    Build(BuildArgs),
    /// Program a built bitstream (iceprog for the iCEBreaker, openFPGALoader for the ULX3S)
    Flash(FlashArgs),
    /// Build the SmartDeal accelerator and its dense int8 baseline for a board and compare them
    ///
    /// Writes DIR/smartdeal and DIR/dense-int8 (full builds), DIR/bench.json and DIR/bench.md:
    /// lanes, logic, FF, BRAM, DSP, Fmax, weight bytes per layer and effective MAC/s on a
    /// random 384×384 layer at 30 % row density. --search-lanes adds the largest lane count
    /// that fits the board.
    Bench(super::bench::BenchArgs),
}

#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// Target board
    #[arg(long, value_enum)]
    pub board: BoardArg,
    /// Accelerator preset or --config file [default: the board's preset]
    #[command(flatten)]
    pub config: ConfigArgs,
    /// UART baud rate (8N1), or `max`: the fastest rate the board's USB-UART bridge (FTDI
    /// FT2232H / FT231X) makes that the core clock's whole-clock bit time matches within 1 %
    /// (printed; pass that number to `smartdeal run --baud`)
    #[arg(long, value_name = "BAUD", default_value = "115200", value_parser = parse_baud)]
    pub baud: BaudArg,
    /// Core clock in MHz, made from the board clock by a PLL (iCE40 SB_PLL40_PAD, ECP5
    /// EHXPLLL): the fastest the PLL can make at or below MHZ. The UART divisor and the link
    /// timeout are computed for it, and the core stays in reset until the PLL locks
    /// [default: no PLL, the core runs on the board clock]
    #[arg(long, value_name = "MHZ")]
    pub clock_mhz: Option<f64>,
    /// Timing target in MHz [default: the core clock]
    #[arg(long, value_name = "MHZ")]
    pub freq: Option<f64>,
    /// Map multipliers to DSP blocks
    #[arg(long, value_enum, default_value_t = DspArg::Auto)]
    pub dsp: DspArg,
    /// Stop the build and fail when it runs longer than MIN minutes (synthesis, place and
    /// route, packing together). nextpnr's router2 has no iteration limit: on a nearly full
    /// ECP5 it can negotiate congestion for hours [default: no limit]
    #[arg(long, value_name = "MIN", value_parser = parse_minutes)]
    pub timeout_min: Option<Minutes>,
    /// Output folder
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
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

#[derive(Debug, clap::Args)]
pub struct FlashArgs {
    /// Target board
    #[arg(long, value_enum)]
    pub board: BoardArg,
    /// A folder written by `fpga build` (its report.json names the bitstream)
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Print the programming command instead of running it
    #[arg(long)]
    pub dry_run: bool,
}

pub fn main(cmd: FpgaCommand) -> Result<()> {
    match cmd {
        FpgaCommand::Build(a) => build_main(a),
        FpgaCommand::Flash(a) => flash_main(a),
        FpgaCommand::Bench(a) => super::bench::main(a),
    }
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

/// A finished earlier build in `dir` of the same design, if there is one: same board, timing
/// target (the board clock: no PLL), generated Verilog (comments aside: headers name the
/// generator version) and synthesis command (DSP and SPRAM mapping). For long searches that
/// are resumed: nothing in it was rebuilt.
pub fn earlier_build(
    board: Board,
    cfg: &AccelConfig,
    baud: BaudArg,
    dir: &std::path::Path,
) -> Result<Option<smartdeal_fpga::BuildReport>> {
    let Ok(report) = smartdeal_fpga::BuildReport::read(&dir.join("report.json")) else {
        return Ok(None);
    };
    if report.board != board || report.target_mhz != board.clock_mhz() {
        return Ok(None);
    }
    let link = board_link(board, baud, None)?;
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
    let opts = synthesis_options(cfg, use_dsp(DspArg::Auto, board, cfg));
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

fn build_main(a: BuildArgs) -> Result<()> {
    let cfg = config_for_board(a.board, &a.config)?;
    let board = a.board.board();
    let report = build_board(
        &cfg,
        &BuildTarget {
            board,
            baud: a.baud,
            clock_mhz: a.clock_mhz,
            freq: a.freq,
            dsp: a.dsp,
            timeout: a.timeout_min,
            out: &a.out,
        },
    )?;
    print_out(&report.summary())?;
    if report.status == BuildStatus::DoesNotFit {
        bail!(
            "config `{}` does not fit the {}: {} (log: {})",
            cfg.name,
            board.device(),
            over_capacity(&report),
            show(&a.out.join("pnr.log"))
        );
    }
    if report.status == BuildStatus::TimingFailed {
        let worst = report
            .clocks
            .iter()
            .map(|c| c.achieved_mhz)
            .fold(f64::INFINITY, f64::min);
        bail!(
            "timing failed: Fmax {worst:.2} MHz is below the {} MHz target (report: {})",
            report.target_mhz,
            show(&a.out.join("report.json"))
        );
    }
    note(&format!("wrote {}", show(&a.out.join("report.json"))));
    Ok(())
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

fn flash_main(a: FlashArgs) -> Result<()> {
    let report = smartdeal_fpga::BuildReport::read(&a.dir.join("report.json"))
        .map_err(|e| anyhow!("{e}"))?;
    let board = a.board.board();
    if report.board != board {
        bail!(
            "{} was built for {}, not {}",
            show(&a.dir),
            report.board,
            board
        );
    }
    let bit = report
        .bitstream
        .as_ref()
        .ok_or_else(|| anyhow!("{} has no bitstream (timing failed?)", show(&a.dir)))?;
    let (prog, args): (&str, Vec<String>) = match board {
        Board::Icebreaker => ("iceprog", vec![bit.path.display().to_string()]),
        Board::Ulx3s85f => (
            "openFPGALoader",
            vec!["-b".into(), "ulx3s".into(), bit.path.display().to_string()],
        ),
    };
    if a.dry_run {
        return print_out(&format!("{prog} {}\n", args.join(" ")));
    }
    let st = Command::new(prog)
        .args(&args)
        .status()
        .with_context(|| format!("cannot run {prog} (is it installed?)"))?;
    if !st.success() {
        bail!("{prog} failed ({st})");
    }
    Ok(())
}
