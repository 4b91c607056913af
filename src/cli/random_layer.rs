//! `smartdeal random-layer`: a seeded random SmartDeal layer, saved as a one-layer `.sdm` model.

use super::{print_out, show, ConfigArgs};
use anyhow::{bail, Context, Result};
use smartdeal_core::random::{random_layer, RandomLayerSpec};
use smartdeal_core::{sdm, Model};
use std::path::PathBuf;

// Flags of the subcommand (its description is on `Command` in main.rs).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Input features (N ≥ 1; beyond 3 × act_depth of the configuration the host tiles the inputs)
    #[arg(long, value_name = "N")]
    pub inputs: u32,
    /// Output channels (M ≥ 1)
    #[arg(long, value_name = "M")]
    pub outputs: u32,
    /// Fraction of Ce rows present in each row group, 0..=1 (exactly round(D × rows) rows)
    #[arg(
        long,
        value_name = "D",
        default_value_t = 0.3,
        allow_negative_numbers = true
    )]
    pub row_density: f64,
    /// Fraction of nonzero Ce elements inside a present row, 0..=1
    #[arg(
        long,
        value_name = "E",
        default_value_t = 0.8,
        allow_negative_numbers = true
    )]
    pub elem_density: f64,
    /// Output channels sharing one present-row bitmap (0 = all outputs share one bitmap)
    #[arg(long, value_name = "G", default_value_t = 0)]
    pub group_size: u32,
    /// Apply ReLU to the layer's outputs
    #[arg(long)]
    pub relu: bool,
    /// Random seed
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// Layer name stored in the model
    #[arg(long, value_name = "NAME", default_value = "layer0")]
    pub name: String,
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Output .sdm file
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

fn check_fraction(flag: &str, v: f64) -> Result<()> {
    if !v.is_finite() || !(0.0..=1.0).contains(&v) {
        bail!("{flag} {v} is not a fraction in 0..=1");
    }
    Ok(())
}

pub fn main(args: Args) -> Result<()> {
    check_fraction("--row-density", args.row_density)?;
    check_fraction("--elem-density", args.elem_density)?;
    if args.inputs == 0 {
        bail!("--inputs must be at least 1");
    }
    if args.outputs == 0 {
        bail!("--outputs must be at least 1");
    }
    if args.name.is_empty() || args.name.len() > 255 {
        bail!("--name must be 1..=255 bytes long");
    }
    let cfg = args.config.load()?;
    let slots = u64::from(args.outputs) * 3 * u64::from(args.inputs).div_ceil(3);
    if slots > sdm::MAX_WEIGHTS {
        bail!(
            "a {}×{} layer has {slots} coefficient slots, above the .sdm limit of {}",
            args.outputs,
            args.inputs,
            sdm::MAX_WEIGHTS
        );
    }

    let mut spec =
        RandomLayerSpec::for_config(&cfg, args.inputs, args.outputs, args.row_density, args.seed);
    spec.name = args.name.clone();
    spec.elem_density = args.elem_density;
    // A group larger than the layer is the same as one group of all outputs.
    spec.group_size = args.group_size.min(args.outputs);
    spec.relu = args.relu;
    let layer = random_layer(&spec);
    // Full check against the configuration, including the stream and basis buffer budgets.
    smartdeal_host::pack_for(&cfg, &layer)
        .with_context(|| format!("the generated layer does not fit config `{}`", cfg.name))?;

    let model = Model {
        layers: vec![layer],
    };
    sdm::save(&args.out, &model)?;
    let bytes = std::fs::metadata(&args.out)
        .with_context(|| format!("cannot stat {}", show(&args.out)))?
        .len();
    let l = &model.layers[0];
    print_out(&format!(
        "wrote layer `{}` ({} outputs × {} inputs, {} Ce rows, row density {:.4}, Ce density \
         {:.4}{}) to {}: {bytes} bytes\n",
        l.name,
        l.outputs,
        l.inputs,
        l.rows(),
        l.row_density(),
        l.coef_density(),
        if l.relu { ", relu" } else { "" },
        show(&args.out)
    ))
}
