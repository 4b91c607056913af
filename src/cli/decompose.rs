//! `smartdeal decompose`: trained weights → SmartDeal decomposition → a `.sdm` model + report.

use super::{note, print_out, show, ConfigArgs};
use anyhow::{anyhow, bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use smartdeal_core::sdm;
use smartdeal_decomp::batchnorm::{self, BnOptions};
use smartdeal_decomp::block::Options;
use smartdeal_decomp::conv::{self, ConvSettings};
use smartdeal_decomp::integer::IntOptions;
use smartdeal_decomp::layer::{LayerOptions, Objective};
use smartdeal_decomp::pipeline::{self, Calibration, LayerReport, Report, Settings};
use smartdeal_decomp::weights::{self, Tensor};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Default activation scale: int8 codes cover ±4.0, i.e. ±4σ of unit-variance activations (the
/// output of a LayerNorm, say).
pub const DEFAULT_ACT_SCALE: f64 = 4.0 / 127.0;

// Flags of the subcommand (its description is on `Command` in main.rs).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Weights: a .safetensors file (2-D tensors are fully connected layers, 4-D convolutions)
    /// or a .npy array
    #[arg(value_name = "WEIGHTS")]
    pub weights: PathBuf,
    /// Tensor to decompose: a name or a glob (`encoder.layer.*.attention.self.query.weight`);
    /// repeatable [default: every tensor of rank ≥ 2 whose name ends in `weight`]
    #[arg(long = "tensor", value_name = "NAME|GLOB")]
    pub tensors: Vec<String>,
    /// Output model (.sdm): fully connected layers, and 1×1 and 3×3 convolutions (other kernels,
    /// and grouped / depthwise convolutions, are reported and left out; naming one with --tensor
    /// is an error)
    #[arg(long, value_name = "MODEL_SDM")]
    pub out: PathBuf,
    /// Also write the report as JSON
    #[arg(long, value_name = "REPORT_JSON")]
    pub json: Option<PathBuf>,
    /// Maximum iterations of the alternating algorithm (the reference's iternum)
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub iters: u32,
    /// Element threshold: coefficients below it are zeroed after each least-squares C step
    #[arg(
        long,
        value_name = "T",
        default_value_t = 1e-2,
        allow_negative_numbers = true
    )]
    pub threshold: f64,
    /// Threshold decay when a basis row loses all coefficients (only with --scale)
    #[arg(
        long,
        value_name = "D",
        default_value_t = 0.5,
        allow_negative_numbers = true
    )]
    pub decay: f64,
    /// Stop when the projected coefficients change by at most this (Frobenius norm)
    #[arg(
        long,
        value_name = "TOL",
        default_value_t = 1e-10,
        allow_negative_numbers = true
    )]
    pub tol: f64,
    /// Relative cut-off for small singular values in the least-squares steps
    #[arg(
        long,
        value_name = "R",
        default_value_t = 1e-10,
        allow_negative_numbers = true
    )]
    pub rcond: f64,
    /// Largest coefficient magnitude (max_C)
    #[arg(
        long,
        value_name = "C",
        default_value_t = 32.0,
        allow_negative_numbers = true
    )]
    pub max_coef: f64,
    /// Zero whole Ce rows with L1 norm below 5 × threshold (3×3 convolutions, as the reference)
    #[arg(long)]
    pub threshold_row: bool,
    /// The reference's per-basis-row scaling before each power-of-two projection
    #[arg(long)]
    pub scale: bool,
    /// Exponent-code bits [default: the configuration's exp_bits]
    #[arg(long, value_name = "E")]
    pub exp_bits: Option<u8>,
    /// Output channels sharing one present-row bitmap and one pruned-row set
    #[arg(long, value_name = "G", default_value_t = 32)]
    pub group_size: u32,
    /// Structural pruning: zero this fraction of rows in every channel group before decomposing
    #[arg(
        long,
        value_name = "R",
        conflicts_with = "prune_ratios",
        allow_negative_numbers = true
    )]
    pub prune_ratio: Option<f64>,
    /// Structural pruning ratios, one per selected tensor in order (whitespace-separated numbers)
    #[arg(long, value_name = "FILE")]
    pub prune_ratios: Option<PathBuf>,
    /// Structural pruning given as the fraction of rows kept in every channel group, 1 − R
    #[arg(
        long,
        value_name = "D",
        conflicts_with_all = ["prune_ratio", "prune_ratios"],
        allow_negative_numbers = true
    )]
    pub row_density: Option<f64>,
    /// What the decomposition minimizes: `weight`, ‖W − Ce·B‖ with rows pruned by L1 norm; or
    /// `output`, the expected output error under the input moments of the --calib sample (every
    /// decomposed layer needs one with its input count), rows pruned by their expected output
    /// contribution (docs/decomposition.md §2.1)
    #[arg(long, value_name = "OBJ", default_value = "weight")]
    pub objective: Objective,
    /// Real value of one input activation step (x = S · x_int) [default: 4/127]
    #[arg(long, value_name = "S", allow_negative_numbers = true)]
    pub act_scale: Option<f64>,
    /// Real value of one output step [default: act scale × the largest output-channel L2 norm]
    #[arg(long, value_name = "S", allow_negative_numbers = true)]
    pub out_scale: Option<f64>,
    /// Float activation sample [T, in] (.npy): calibrates both scales of layers with `in` inputs
    #[arg(long, value_name = "X_NPY")]
    pub calib: Option<PathBuf>,
    /// Set the ReLU flag on every written layer
    #[arg(long)]
    pub relu: bool,
    /// Stride of convolution NAME (layer name, i.e. the tensor name without `.weight`, or the
    /// tensor name): 1 or 2 [default: 1]; repeatable
    #[arg(long = "stride", value_name = "NAME=S")]
    pub strides: Vec<String>,
    /// Zero padding of convolution NAME on each side: 0 or 1 [default: 1 for 3×3, 0 for 1×1];
    /// repeatable
    #[arg(long = "padding", value_name = "NAME=P")]
    pub paddings: Vec<String>,
    /// Groups of convolution NAME: 1 declares a [C, 1, 3, 3] kernel an ordinary convolution of
    /// one input channel (by default it is taken to be depthwise and left out); any other value
    /// leaves the tensor out (grouped convolutions are not supported); repeatable
    #[arg(long = "groups", value_name = "NAME=G")]
    pub groups: Vec<String>,
    /// Fold batch norm BN (BN.running_mean, BN.running_var, and BN.weight / BN.bias if present)
    /// into the weights of CONV, instead of the one the naming rules find (conv1 → bn1,
    /// layerX.Y.convN → layerX.Y.bnN, downsample.0 → downsample.1, CONV.bn); repeatable
    #[arg(long = "bn", value_name = "CONV=BN")]
    pub bns: Vec<String>,
    /// Do not fold the batch norms the naming rules find (--bn still folds)
    #[arg(long)]
    pub no_fold_bn: bool,
    /// ε of the batch-norm folding, w·γ/√(var + ε)
    #[arg(
        long,
        value_name = "EPS",
        default_value_t = batchnorm::DEFAULT_EPS,
        allow_negative_numbers = true
    )]
    pub bn_eps: f64,
    /// Worker threads [default: all cores]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub config: ConfigArgs,
}

fn positive(flag: &str, v: f64) -> Result<f64> {
    if !(v.is_finite() && v > 0.0) {
        bail!("{flag} {v} must be a positive number");
    }
    Ok(v)
}

fn fraction(flag: &str, v: f64) -> Result<f64> {
    if !(v.is_finite() && (0.0..1.0).contains(&v)) {
        bail!("{flag} {v} must be a fraction in [0, 1)");
    }
    Ok(v)
}

fn read_ratios(path: &PathBuf) -> Result<Vec<f64>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", show(path)))?;
    text.split_whitespace()
        .enumerate()
        .map(|(i, w)| {
            let v: f64 = w
                .parse()
                .map_err(|_| anyhow!("{}: entry {} `{w}` is not a number", show(path), i + 1))?;
            fraction(&format!("{}: entry {}", show(path), i + 1), v)
        })
        .collect()
}

pub fn settings(a: &Args, cfg: &smartdeal_core::AccelConfig) -> Result<Settings> {
    if a.iters == 0 {
        bail!("--iters must be at least 1");
    }
    if !(a.threshold.is_finite() && a.threshold >= 0.0) {
        bail!("--threshold {} must be a number ≥ 0", a.threshold);
    }
    if !(a.decay.is_finite() && a.decay > 0.0 && a.decay < 1.0) {
        bail!("--decay {} must be in (0, 1)", a.decay);
    }
    if !(a.tol.is_finite() && a.tol >= 0.0 && a.rcond.is_finite() && a.rcond >= 0.0) {
        bail!("--tol and --rcond must be numbers ≥ 0");
    }
    positive("--max-coef", a.max_coef)?;
    if a.group_size == 0 {
        bail!("--group-size must be at least 1");
    }
    let exp_bits = a.exp_bits.unwrap_or(cfg.exp_bits as u8);
    if u32::from(exp_bits) > cfg.exp_bits || exp_bits < 2 {
        bail!(
            "--exp-bits {exp_bits}: must be 2..={} (the configuration's exp_bits)",
            cfg.exp_bits
        );
    }
    let calib = match &a.calib {
        None => None,
        Some(p) => {
            let t = weights::load(p, &[]).map_err(|e| anyhow!("--calib: {e}"))?;
            let t = t
                .into_iter()
                .next()
                .ok_or_else(|| anyhow!("--calib {}: no array", show(p)))?;
            if t.shape.len() != 2 {
                bail!("--calib {}: shape {:?} is not [T, in]", show(p), t.shape);
            }
            Some(Calibration {
                n: t.shape[1],
                data: t.data,
            })
        }
    };
    Ok(Settings {
        layer: LayerOptions {
            block: Options {
                iters: a.iters,
                threshold: a.threshold,
                decay: a.decay,
                tol: a.tol,
                rcond: a.rcond,
                max_c: a.max_coef,
                threshold_row: a.threshold_row,
                scale: a.scale,
            },
            group_size: a.group_size as usize,
            prune_ratio: match (a.prune_ratio, a.row_density) {
                (Some(r), _) => fraction("--prune-ratio", r)?,
                (None, Some(d)) if d > 0.0 && d <= 1.0 => 1.0 - d,
                (None, Some(d)) => bail!("--row-density {d}: must be in (0, 1]"),
                (None, None) => 0.0,
            },
        },
        prune_ratios: a.prune_ratios.as_ref().map(read_ratios).transpose()?,
        int: IntOptions {
            exp_bits,
            basis_bits: cfg.basis_bits,
            weight_requant: cfg.weight_requant,
            group_size: a.group_size,
            act_scale: positive("--act-scale", a.act_scale.unwrap_or(DEFAULT_ACT_SCALE))?,
            out_scale: a
                .out_scale
                .map(|s| positive("--out-scale", s))
                .transpose()?,
            out_scales: None,
            relu: a.relu,
        },
        calib,
        conv: ConvSettings::default(),
        objective: a.objective,
    })
}

/// `NAME=VALUE` of option `flag`, split at the last `=`.
fn assignment<'a>(flag: &str, text: &'a str) -> Result<(&'a str, &'a str)> {
    match text.rsplit_once('=') {
        Some((name, value)) if !name.is_empty() && !value.is_empty() => Ok((name, value)),
        _ => bail!("{flag} {text}: expected NAME=VALUE"),
    }
}

/// The selected tensor `name` (from option `flag`) refers to.
fn resolve<'a>(flag: &str, tensors: &'a [Tensor], name: &str) -> Result<&'a Tensor> {
    conv::resolve(tensors, name).ok_or_else(|| {
        let names: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).take(6).collect();
        anyhow!(
            "{flag} {name}=…: no selected tensor is named `{name}` or `{name}.weight` (selected: \
             {}{})",
            names.join(", "),
            if tensors.len() > names.len() {
                ", …"
            } else {
                ""
            }
        )
    })
}

/// `--FLAG NAME=V` options with `V` in `allowed`, by tensor name; each NAME must be a selected,
/// supported convolution.
fn per_conv(
    flag: &str,
    opts: &[String],
    allowed: &[u8],
    tensors: &[Tensor],
    groups: &BTreeMap<String, u32>,
) -> Result<BTreeMap<String, u8>> {
    let mut out = BTreeMap::new();
    for text in opts {
        let (name, value) = assignment(flag, text)?;
        let v: u8 = value
            .parse()
            .ok()
            .filter(|v| allowed.contains(v))
            .ok_or_else(|| anyhow!("{flag} {text}: {value} is not one of {allowed:?}"))?;
        let t = resolve(flag, tensors, name)?;
        if t.shape.len() != 4 {
            bail!("{flag} {text}: `{}` is not a convolution", t.name);
        }
        if let Some(why) = conv::unsupported(&t.shape, groups.get(&t.name).copied()) {
            bail!("{flag} {text}: tensor `{}`: {why}", t.name);
        }
        out.insert(t.name.clone(), v);
    }
    Ok(out)
}

/// The convolution options by tensor name; checks that a tensor named exactly by --tensor can
/// become a layer, then folds the batch norms into `tensors`.
pub fn conv_settings(a: &Args, tensors: &mut [Tensor]) -> Result<ConvSettings> {
    let mut groups = BTreeMap::new();
    for text in &a.groups {
        let (name, value) = assignment("--groups", text)?;
        let g: u32 = value
            .parse()
            .ok()
            .filter(|g| *g >= 1)
            .ok_or_else(|| anyhow!("--groups {text}: {value} is not a positive integer"))?;
        let t = resolve("--groups", tensors, name)?;
        if t.shape.len() != 4 {
            bail!("--groups {text}: `{}` is not a convolution", t.name);
        }
        groups.insert(t.name.clone(), g);
    }
    let stride = per_conv("--stride", &a.strides, &[1, 2], tensors, &groups)?;
    let padding = per_conv("--padding", &a.paddings, &[0, 1], tensors, &groups)?;
    for t in tensors.iter().filter(|t| a.tensors.contains(&t.name)) {
        if let Some(why) = conv::unsupported(&t.shape, groups.get(&t.name).copied()) {
            bail!("--tensor {}: {why}", t.name);
        }
    }
    let mut explicit = BTreeMap::new();
    for text in &a.bns {
        let Some((name, bn)) = text
            .split_once('=')
            .filter(|(n, b)| !n.is_empty() && !b.is_empty())
        else {
            bail!("--bn {text}: expected CONV=BN");
        };
        let t = resolve("--bn", tensors, name)?;
        explicit.insert(t.name.clone(), bn.to_string());
    }
    if !(a.bn_eps.is_finite() && a.bn_eps > 0.0) {
        bail!("--bn-eps {} must be a positive number", a.bn_eps);
    }
    let bn = BnOptions {
        auto: !a.no_fold_bn,
        explicit,
        eps: a.bn_eps,
    };
    let batch_norms =
        batchnorm::fold_batch_norms(&a.weights, tensors, &bn).map_err(|e| anyhow!("{e}"))?;
    Ok(ConvSettings {
        stride,
        padding,
        groups,
        batch_norms,
    })
}

pub fn main(a: Args) -> Result<()> {
    let cfg = a.config.load()?;
    let mut s = settings(&a, &cfg)?;
    if let Some(n) = a.threads {
        if n == 0 {
            bail!("--threads must be at least 1");
        }
        // The global pool can only be built once per process; the CLI builds it here only.
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .map_err(|e| anyhow!("cannot start {n} worker threads: {e}"))?;
    }
    let mut tensors = weights::load(&a.weights, &a.tensors).map_err(|e| anyhow!("{e}"))?;
    s.conv = conv_settings(&a, &mut tensors)?;
    let total: u64 = tensors.iter().map(pipeline::blocks_of).sum();
    note(&format!(
        "decomposing {} tensor(s), {} blocks, from {}",
        tensors.len(),
        total,
        show(&a.weights)
    ));
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} blocks ({per_sec}, eta {eta})",
        )
        .map_err(|e| anyhow!("{e}"))?
        .progress_chars("=> "),
    );
    let result = pipeline::run(&tensors, &s, &cfg, &|n| bar.inc(n));
    bar.finish_and_clear();
    let (model, report) = result.map_err(|e| anyhow!("{e}"))?;
    if model.layers.is_empty() {
        bail!(
            "none of the {} selected tensor(s) can be written to a .sdm model (see the report: {})",
            tensors.len(),
            report
                .layers
                .iter()
                .filter_map(|l| l.note.as_deref())
                .next()
                .unwrap_or("no decomposable layer")
        );
    }
    sdm::save(&a.out, &model).with_context(|| format!("cannot write {}", show(&a.out)))?;
    if let Some(j) = &a.json {
        let text = serde_json::to_string_pretty(&report)? + "\n";
        std::fs::write(j, text).with_context(|| format!("cannot write {}", show(j)))?;
    }
    print_out(&table(&report))?;
    note(&format!(
        "wrote {} ({} layer(s))",
        show(&a.out),
        model.layers.len()
    ));
    Ok(())
}

fn opt(v: Option<f64>, prec: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.prec$}"))
}

fn row(l: &LayerReport) -> String {
    let i = l.int.as_ref();
    format!(
        "{:<44} {:>11} {:>8.4} {:>8} {:>6.3} {:>6.3} {:>7} {:>6} {:>7} {:>6} {:>7.2}",
        l.layer.as_deref().unwrap_or(&l.tensor),
        l.shape
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("×"),
        l.float.float_rel_error,
        opt(i.map(|i| i.int_rel_error), 4),
        l.float.ce_density,
        l.float.row_density,
        i.map_or("-".into(), |i| format!(
            "{}/{}",
            i.exp_underflow, i.exp_overflow
        )),
        opt(l.file_bits_per_weight, 2),
        opt(l.compression_vs_fp32, 2),
        format!("{:.2}", l.float.paper_bits_per_weight),
        l.seconds,
    )
}

fn table(r: &Report) -> String {
    let mut s = format!(
        "{:<44} {:>11} {:>8} {:>8} {:>6} {:>6} {:>7} {:>6} {:>7} {:>6} {:>7}\n",
        "layer", "shape", "err", "int_err", "ce", "rows", "exp-/+", "b/w", "x_fp32", "paper", "s"
    );
    for l in &r.layers {
        s += &row(l);
        s.push('\n');
        if let Some(c) = &l.conv {
            s += &format!(
                "    conv {k}×{k}, {} input channels, stride {}, padding {}\n",
                c.in_channels,
                c.stride,
                c.padding,
                k = c.kernel
            );
        }
        if let Some(b) = &l.batch_norm {
            s += &format!("    batch norm `{}` folded (ε = {:e})\n", b.bn, b.eps);
        }
        if let Some(n) = &l.note {
            s += &format!("    note: {n}\n");
        }
        if let Some(why) = &l.fit_problem {
            s += &format!("    does not fit the configuration: {why}\n");
        }
    }
    let t = &r.total;
    s += &format!(
        "total: {} weights, error {:.4} (integer {}), Ce density {:.3}, row density {:.3}, \
         {} magnitudes (C_bit {}), {:.2} bits/weight in the file ({:.2}× vs fp32, {:.2}× vs int8), \
         paper formula {:.2} b/w, {:.2} s ({:.2} M weights/s)\n",
        t.weights,
        t.float_rel_error,
        opt(t.int_rel_error, 4),
        t.ce_density,
        t.row_density,
        t.distinct_magnitudes,
        t.c_bits,
        t.file_bits_per_weight,
        t.compression_vs_fp32,
        t.compression_vs_int8,
        t.paper_bits_per_weight,
        t.seconds,
        t.weights_per_second / 1e6,
    );
    s
}
