//! `smartdeal`: the SmartDeal accelerator toolchain command line.
//!
//! Every error is reported as one line, `smartdeal: error: ...`, on stderr with exit code 1.

mod cli;

use clap::{Parser, Subcommand};
use std::io::Write;
use std::process::ExitCode;

/// SmartDeal accelerator toolchain: compressed (.sdm) models, the bit-exact golden model and
/// the generated accelerator in Verilator.
#[derive(Debug, Parser)]
#[command(
    name = "smartdeal",
    version,
    propagate_version = true,
    after_help = "Example:\n  smartdeal random-layer --inputs 48 --outputs 20 --out layer.sdm\n  \
                  smartdeal inspect layer.sdm --export-int ints/\n  \
                  smartdeal run --engine verilator --model layer.sdm --input x.npy --out y.npy"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate a seeded random layer and save it as a .sdm model
    ///
    /// The layer is sized for the accelerator configuration (block height rows_per_block,
    /// exponent-code width, basis range and weight-shift limit come from it) and checked to fit
    /// it. The same flags and seed always produce the same file. Prints a one-line summary.
    RandomLayer(cli::random_layer::Args),
    /// Show a .sdm model's layers and storage; optionally export its integer tensors
    ///
    /// Prints one table row per layer (outputs×inputs, Ce rows, blocks, group size, exp_bits,
    /// e_lo, row and Ce densities, relu, bytes per file section and bits per weight) and the
    /// totals, or the same as JSON. --export-int writes the integer tensors the MAC array uses,
    /// for checking the model outside this toolchain (the configuration, default preset tiny,
    /// decides how weights are requantized).
    Inspect(cli::inspect::Args),
    /// Run a model on int8 activations (golden model or Verilator)
    ///
    /// The input is an int8 ('|i1', C order) .npy of shape [in] or [T, in]; the output has
    /// shape [out] or [T, out]. Without --layer every layer runs in file order, each one's
    /// output feeding the next. Each layer is checked to fit the configuration (default preset
    /// tiny) and activations must lie in its act_bits range.
    Run(cli::run::Args),
    /// Decompose trained weights (.safetensors / .npy) into a SmartDeal .sdm model
    ///
    /// Each selected weight is cut into blocks as the authors' reference code does (fully
    /// connected / 1×1: per output channel, input triples, the reference's block-height table;
    /// 3×3 convolutions: per output channel, (cin·3)×3 blocks), every block is decomposed as
    /// W ≈ Ce·B with power-of-two Ce (alternating least squares, all cores), and fully connected
    /// layers and 1×1 / 3×3 convolutions (batch norms folded first; stride and padding from
    /// --stride / --padding) are converted to the accelerator's integers (int8 B with per-block
    /// power-of-two
    /// scales folded into the exponent codes, per-channel weight shifts, output requantization
    /// from the activation scales) and written to the .sdm. Prints a table per layer: float and
    /// integer relative error, Ce and row density, exponents lost below/above the code window,
    /// bits per weight in the file and by the paper's formula, compression vs fp32, time. The
    /// rules are in docs/decomposition.md.
    Decompose(cli::decompose::Args),
    /// FPGA bitstreams for the iCEBreaker and the ULX3S, and programming them
    #[command(subcommand)]
    Fpga(cli::fpga::FpgaCommand),
    /// Scores a whole network on public data: all-MiniLM-L6-v2 on STS-B (`eval sts`), the
    /// float model and the SmartDeal int8 model with every encoder linear layer compressed and
    /// run on an engine; prints the scores, bits per weight and row density, --json writes them
    #[command(subcommand)]
    Eval(cli::eval::EvalCommand),
    /// Compression sweep of a whole network (`sweep sts`, `sweep mnist`): threshold × structural
    /// prune ratio × exponent bits, each point compressed and scored on the golden engine;
    /// writes a JSON and a Markdown table and SVG plots of score vs bits per weight and vs row
    /// density with the Pareto front marked
    #[command(subcommand)]
    Sweep(cli::sweep::SweepCommand),
    /// SmartDeal fine-tuning by distillation (`finetune sts`, `finetune mnist`): rows masked at
    /// --row-density, the masked float network distilled from the float one, decomposed, then
    /// B and the coefficient exponents distilled; writes the int8 model (.sdm), a loss log,
    /// checkpoints and result.json, and prints its score
    #[command(subcommand)]
    Finetune(cli::finetune::FinetuneCommand),
}

/// Collapses any multi-line text into one line.
fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Turns clap's multi-paragraph error into one line (the usage block is dropped).
fn clap_message(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let mut msg = String::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        let line = line.strip_prefix("error: ").unwrap_or(line);
        if msg.is_empty() {
            msg = line.to_string();
        } else if msg.ends_with(':') || line.starts_with('[') {
            msg = format!("{msg} {line}");
        } else if line.starts_with("tip:") {
            msg = format!("{msg} ({line})");
        } else {
            msg = format!("{msg}, {line}");
        }
    }
    format!("{msg}; see --help")
}

fn fail(msg: &str) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "smartdeal: error: {}", one_line(msg));
    ExitCode::from(1)
}

fn main() -> ExitCode {
    // No input should ever panic; if a bug does, report it in the same one-line format.
    std::panic::set_hook(Box::new(|info| {
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let _ = writeln!(
            std::io::stderr(),
            "smartdeal: error: internal error ({}{at}); this is a bug",
            one_line(&what)
        );
        std::process::exit(1);
    }));

    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    let _ = e.print();
                    ExitCode::SUCCESS
                }
                ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    fail(
                        "a subcommand is required: random-layer, inspect, run, decompose, fpga, eval or \
                         sweep; \
                         see --help",
                    )
                }
                _ => fail(&clap_message(&e)),
            };
        }
    };
    let result = match cli.command {
        Command::RandomLayer(a) => cli::random_layer::main(a),
        Command::Inspect(a) => cli::inspect::main(a),
        Command::Run(a) => cli::run::main(a),
        Command::Decompose(a) => cli::decompose::main(a),
        Command::Fpga(c) => cli::fpga::main(c),
        Command::Eval(c) => cli::eval::main(c),
        Command::Sweep(c) => cli::sweep::main(c),
        Command::Finetune(c) => cli::finetune::main(c),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&format!("{e:#}")),
    }
}
