//! `gen-verilog`: writes the SmartDeal accelerator's Verilog for a preset or a TOML config.

use anyhow::{Context, Result};
use clap::Parser;
use smartdeal_core::params::PRESETS;
use smartdeal_core::AccelConfig;
use smartdeal_gen::{generate, GenOptions};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "gen-verilog",
    version,
    about = "Generate the SmartDeal accelerator's Verilog (one .v per module, params.json, files.f)",
    after_help = "Presets: tiny (4 lanes), icebreaker (iCE40UP5K), ulx3s (ECP5-85F).\n\
                  Example: gen-verilog --preset tiny --out build/tiny"
)]
struct Args {
    /// Built-in configuration.
    #[arg(long, conflicts_with = "config", value_parser = clap::builder::PossibleValuesParser::new(PRESETS))]
    preset: Option<String>,
    /// TOML configuration file (see docs/parameters.md).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Generate the dense int8 baseline of the configuration (same lanes and buffers, int8
    /// weights in the stream, plain multipliers), for like-for-like comparisons.
    #[arg(long)]
    dense: bool,
    /// Output folder (created if missing).
    #[arg(long)]
    out: PathBuf,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("gen-verilog: error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args = Args::parse();
    let cfg = match (&args.preset, &args.config) {
        (_, Some(path)) => AccelConfig::from_toml_file(path)?,
        (Some(p), None) => AccelConfig::preset(p)?,
        (None, None) => AccelConfig::preset("tiny")?,
    };
    let cfg = if args.dense {
        cfg.dense_baseline()
    } else {
        cfg
    };
    let design = generate(&cfg, &GenOptions::default());
    design
        .write(&args.out)
        .with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!(
        "gen-verilog: {} modules for config `{}` written to {}",
        design.files.len(),
        cfg.name,
        args.out.display()
    );
    Ok(())
}
