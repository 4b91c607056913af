//! `smartdeal random-layer`: a seeded random SmartDeal layer, saved as a one-layer `.sdm` model.

use super::{print_out, show, ConfigArgs};
use anyhow::{anyhow, bail, Context, Result};
use smartdeal_core::random::{random_conv_layer, random_layer, RandomLayerSpec};
use smartdeal_core::{sdm, ConvShape, Model};
use std::path::PathBuf;

// Flags of the subcommand (its description is on `Command` in main.rs).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Input features (N ≥ 1; beyond 3 × act_depth of the configuration the host tiles the inputs);
    /// a convolution (--conv) has in_channels × kernel² instead
    #[arg(
        long,
        value_name = "N",
        required_unless_present = "conv",
        conflicts_with = "conv"
    )]
    pub inputs: Option<u32>,
    /// Make a convolution layer with this kernel (1x1 or 3x3; needs --in-channels); its weights
    /// read as the kernel [outputs][in_channels][k][k]
    #[arg(long, value_name = "KERNEL", requires = "in_channels")]
    pub conv: Option<Kernel>,
    /// Input channels of the convolution (C ≥ 1; with --conv)
    #[arg(long, value_name = "C", requires = "conv")]
    pub in_channels: Option<u32>,
    /// Stride of the convolution: 1 or 2 (with --conv)
    #[arg(
        long,
        value_name = "S",
        requires = "conv",
        default_value_t = 1,
        value_parser = clap::value_parser!(u8).range(1..=2)
    )]
    pub stride: u8,
    /// Zero padding on each side of the convolution's input: 0 or 1 (with --conv) [default: 1
    /// for 3x3, 0 for 1x1]
    #[arg(
        long,
        value_name = "P",
        requires = "conv",
        value_parser = clap::value_parser!(u8).range(0..=1)
    )]
    pub padding: Option<u8>,
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

/// A convolution kernel `--conv` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kernel {
    /// 1×1: a fully connected layer applied at every pixel
    #[value(name = "1x1")]
    K1,
    /// 3×3
    #[value(name = "3x3")]
    K3,
}

/// The convolution geometry the flags ask for (`None` without --conv).
fn conv_shape(args: &Args) -> Result<Option<ConvShape>> {
    let Some(kernel) = args.conv else {
        return Ok(None);
    };
    let kernel: u8 = match kernel {
        Kernel::K1 => 1,
        Kernel::K3 => 3,
    };
    let in_channels = args.in_channels.unwrap_or(0);
    if in_channels == 0 {
        bail!("--in-channels must be at least 1");
    }
    Ok(Some(ConvShape {
        in_channels,
        kernel,
        stride: args.stride,
        padding: args.padding.unwrap_or(u8::from(kernel == 3)),
    }))
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
    let conv = conv_shape(&args)?;
    let inputs = match (conv, args.inputs) {
        (Some(c), _) => u32::try_from(c.inputs()).unwrap_or(u32::MAX),
        (None, Some(n)) => n,
        (None, None) => bail!("--inputs or --conv is required"),
    };
    if inputs == 0 {
        bail!("--inputs must be at least 1");
    }
    if args.outputs == 0 {
        bail!("--outputs must be at least 1");
    }
    if args.name.is_empty() || args.name.len() > 255 {
        bail!("--name must be 1..=255 bytes long");
    }
    let cfg = args.config.load()?;
    let slots = u64::from(args.outputs) * 3 * u64::from(inputs).div_ceil(3);
    if slots > sdm::MAX_WEIGHTS {
        bail!(
            "a {}×{} layer has {slots} coefficient slots, above the .sdm limit of {}",
            args.outputs,
            inputs,
            sdm::MAX_WEIGHTS
        );
    }

    let mut spec =
        RandomLayerSpec::for_config(&cfg, inputs, args.outputs, args.row_density, args.seed);
    spec.name = args.name.clone();
    spec.elem_density = args.elem_density;
    // A group larger than the layer is the same as one group of all outputs.
    spec.group_size = args.group_size.min(args.outputs);
    spec.relu = args.relu;
    let layer = match conv {
        Some(c) => random_conv_layer(&spec, c).map_err(|e| anyhow!("--conv: {e}"))?,
        None => random_layer(&spec),
    };
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
    let kind = l.conv.map_or(String::new(), |c| {
        format!(
            "{k}×{k} convolution of {} input channels, stride {}, padding {}: ",
            c.in_channels,
            c.stride,
            c.padding,
            k = c.kernel
        )
    });
    print_out(&format!(
        "wrote layer `{}` ({kind}{} outputs × {} inputs, {} Ce rows, row density {:.4}, Ce density \
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
