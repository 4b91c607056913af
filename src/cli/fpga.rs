//! `smartdeal fpga build | flash`: the accelerator with its UART board top, through the
//! open-source FPGA flows, onto the iCEBreaker (iCE40UP5K) or the ULX3S (ECP5-85F).

use super::board_build::{
    build_board, config_for_board, over_capacity, parse_baud, parse_minutes, BaudArg, BoardArg,
    BuildTarget, DspArg, Minutes,
};
use super::{note, print_out, show, ConfigArgs};
use anyhow::{anyhow, bail, Context, Result};
use smartdeal_fpga::{Board, BuildStatus};
use std::path::PathBuf;
use std::process::Command;

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
    /// Build SmartDeal (rebuild and factorized dataflows) and the dense int8 baseline for a
    /// board and compare them on synthetic and real layers
    ///
    /// Builds three designs with the same flow and clock: DIR/smartdeal-rebuild,
    /// DIR/smartdeal-factorized and DIR/dense-int8 (the rebuild design's dense baseline). The
    /// board's preset (or --preset / --config) is the design of its own dataflow, and the other
    /// dataflow's design is it switched, unless --rebuild-config / --factorized-config give
    /// them. Writes DIR/bench.json and DIR/bench.md: per design status, Fmax, logic, FF, DSP,
    /// BRAM, MACs per cycle and MAC/s at 100 % row density; per layer (--layers: a random
    /// 384×384 layer at 30 % row density, all-MiniLM-L6-v2's layer-0 attention query as
    /// `smartdeal decompose` gives it, and the same with --prune-ratio 0.5) and design weight
    /// bytes, stream entries (cycles), runs, rows streamed, MAC/s and MAC/s per 1k LUT. A
    /// design that does not fit or misses timing is a row with its status. --search-lanes
    /// adds the largest lane count of the rebuild design that fits the board.
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
