//! `smartdeal fpga build | flash`: the accelerator with its UART board top, through the
//! open-source FPGA flows, onto the iCEBreaker (iCE40UP5K) or the ULX3S (ECP5-85F).

use super::{note, print_out, show, ConfigArgs};
use anyhow::{anyhow, bail, Context, Result};
use smartdeal_core::AccelConfig;
use smartdeal_fpga::{build, Board, BuildOptions, BuildStatus};
use smartdeal_gen::{generate_board, BoardLink, GenOptions};
use std::path::PathBuf;
use std::process::Command;

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
    fn board(self) -> Board {
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
}

#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// Target board
    #[arg(long, value_enum)]
    pub board: BoardArg,
    /// Accelerator preset or --config file [default: the board's preset]
    #[command(flatten)]
    pub config: ConfigArgs,
    /// UART baud rate (8N1)
    #[arg(long, value_name = "BAUD", default_value_t = 115_200)]
    pub baud: u32,
    /// Timing target in MHz [default: the board clock]
    #[arg(long, value_name = "MHZ")]
    pub freq: Option<f64>,
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
    }
}

fn config_for(a: &BuildArgs) -> Result<AccelConfig> {
    if a.config.preset.is_none() && a.config.config.is_none() {
        return Ok(AccelConfig::preset(a.board.default_preset())?);
    }
    a.config.load()
}

fn build_main(a: BuildArgs) -> Result<()> {
    let cfg = config_for(&a)?;
    let board = a.board.board();
    let link = BoardLink {
        baud: a.baud,
        ..BoardLink::uart((board.clock_mhz() * 1e6).round() as u32)
    };
    let design = generate_board(&cfg, &link, &GenOptions::default())
        .map_err(|e| anyhow!("board link: {e}"))?;
    let rtl = a.out.join("rtl");
    let files = design
        .write(&rtl)
        .with_context(|| format!("cannot write {}", show(&rtl)))?;
    note(&format!(
        "building config `{}` for {} ({} {}): synthesis, place and route, bitstream ...",
        cfg.name,
        board,
        board.device(),
        board.package()
    ));
    let opts = BuildOptions {
        freq_mhz: a.freq,
        ..BuildOptions::default()
    };
    let report =
        build(board, &files, &design.design.top, &a.out, &opts).map_err(|e| anyhow!("{e}"))?;
    print_out(&report.summary())?;
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
