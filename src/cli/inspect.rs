//! `smartdeal inspect`: what a `.sdm` model holds and where its bytes go; optionally exports the
//! integer tensors the accelerator computes with.

use super::npy::{write_int32, write_int8};
use super::{file_stem_for, note, print_out, show, ConfigArgs};
use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use smartdeal_core::sdm::{self, StorageStats};
use smartdeal_core::{AccelConfig, ConvShape, FcLayer, Model, WeightRequant};
use smartdeal_golden as golden;
use std::path::{Path, PathBuf};

/// Version of the `--json` output layout.
pub const JSON_FORMAT_VERSION: u32 = 1;

// Flags of the subcommand (its description is on `Command` in main.rs).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The .sdm model
    #[arg(value_name = "MODEL_SDM")]
    pub model: PathBuf,
    /// Print JSON (with "format_version": 1) instead of a table
    #[arg(long)]
    pub json: bool,
    /// Write, per layer, <layer>.w_int8.npy (int8 [out, in]: the weights the MAC array
    /// multiplies by, after weight requantization; a convolution's as the kernel
    /// [out, in_channels, k, k]), <layer>.bias_int32.npy (int32 [out]) and <layer>.requant.json
    /// ({"multiplier", "shift", "relu"}, and for a convolution "conv": {"in_channels", "kernel",
    /// "stride", "padding"}) into DIR (created if missing). Needs a configuration in int8
    /// weight_requant mode.
    #[arg(long, value_name = "DIR")]
    pub export_int: Option<PathBuf>,
    #[command(flatten)]
    pub config: ConfigArgs,
}

#[derive(Debug, Serialize)]
struct LayerInfo {
    name: String,
    outputs: u32,
    inputs: u32,
    weights: u64,
    rows: usize,
    rows_per_block: u32,
    blocks: usize,
    group_size: u32,
    groups: usize,
    exp_bits: u8,
    e_lo: i8,
    row_density: f64,
    coef_density: f64,
    relu: bool,
    /// A convolution's geometry (absent for a fully connected layer).
    #[serde(skip_serializing_if = "Option::is_none")]
    conv: Option<ConvShape>,
    storage: StorageStats,
}

#[derive(Debug, Serialize)]
struct Totals {
    layers: usize,
    weights: u64,
    /// Bytes of all layer records.
    record_bytes: u64,
    /// The whole file: header, records and CRC trailer.
    file_bytes: u64,
    bits_per_weight: f64,
    /// Dense int8 storage of the same weights, divided by `file_bytes`.
    compression_vs_int8: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    format_version: u32,
    file: String,
    layers: Vec<LayerInfo>,
    totals: Totals,
}

fn layer_info(l: &FcLayer) -> LayerInfo {
    LayerInfo {
        name: l.name.clone(),
        outputs: l.outputs,
        inputs: l.inputs,
        weights: u64::from(l.outputs) * u64::from(l.inputs),
        rows: l.rows(),
        rows_per_block: l.rows_per_block,
        blocks: l.blocks(),
        group_size: l.group_size,
        groups: l.groups(),
        exp_bits: l.exp_bits,
        e_lo: l.e_lo,
        row_density: l.row_density(),
        coef_density: l.coef_density(),
        relu: l.relu,
        conv: l.conv,
        storage: sdm::layer_storage(l),
    }
}

fn report(path: &Path, model: &Model) -> Report {
    let layers: Vec<LayerInfo> = model.layers.iter().map(layer_info).collect();
    let weights: u64 = layers.iter().map(|l| l.weights).sum();
    let record_bytes: u64 = layers.iter().map(|l| l.storage.total).sum();
    // The encoding is canonical, so this is exactly the size of the file that was read.
    let file_bytes = (sdm::HEADER_LEN + sdm::TRAILER_LEN) as u64 + record_bytes;
    let totals = Totals {
        layers: layers.len(),
        weights,
        record_bytes,
        file_bytes,
        bits_per_weight: file_bytes as f64 * 8.0 / weights.max(1) as f64,
        compression_vs_int8: weights as f64 / file_bytes as f64,
    };
    Report {
        format_version: JSON_FORMAT_VERSION,
        file: show(path),
        layers,
        totals,
    }
}

/// Renders rows of cells as a left/right-aligned text table.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let parts: Vec<String> = cells
            .iter()
            .zip(&width)
            .enumerate()
            .map(|(i, (c, &w))| {
                if i == 0 {
                    format!("{c:<w$}")
                } else {
                    format!("{c:>w$}")
                }
            })
            .collect();
        format!("{}\n", parts.join("  ").trim_end())
    };
    let mut out = line(header.to_vec());
    let rule: Vec<String> = width.iter().map(|&w| "-".repeat(w)).collect();
    out += &line(rule.iter().map(String::as_str).collect());
    for r in rows {
        out += &line(r.iter().map(String::as_str).collect());
    }
    out
}

fn render_text(rep: &Report) -> String {
    let header = [
        "layer", "out×in", "rows", "blocks", "group", "exp_bits", "e_lo", "row dens", "Ce dens",
        "relu", "hdr B", "bitmap B", "basis B", "coef B", "chan B", "total B", "bits/w",
    ];
    let mut rows: Vec<Vec<String>> = rep
        .layers
        .iter()
        .map(|l| {
            let s = &l.storage;
            vec![
                l.name.clone(),
                format!("{}×{}", l.outputs, l.inputs),
                l.rows.to_string(),
                l.blocks.to_string(),
                l.group_size.to_string(),
                l.exp_bits.to_string(),
                l.e_lo.to_string(),
                format!("{:.4}", l.row_density),
                format!("{:.4}", l.coef_density),
                if l.relu { "yes" } else { "no" }.to_string(),
                s.header.to_string(),
                s.bitmap.to_string(),
                s.basis.to_string(),
                s.coef_stream.to_string(),
                s.per_channel.to_string(),
                s.total.to_string(),
                format!("{:.3}", s.bits_per_weight),
            ]
        })
        .collect();
    let sum = |f: fn(&StorageStats) -> u64| -> String {
        rep.layers
            .iter()
            .map(|l| f(&l.storage))
            .sum::<u64>()
            .to_string()
    };
    let t = &rep.totals;
    let mut total_row = vec![String::new(); header.len()];
    total_row[0] = "total".into();
    total_row[10] = sum(|s| s.header);
    total_row[11] = sum(|s| s.bitmap);
    total_row[12] = sum(|s| s.basis);
    total_row[13] = sum(|s| s.coef_stream);
    total_row[14] = sum(|s| s.per_channel);
    total_row[15] = t.record_bytes.to_string();
    total_row[16] = format!(
        "{:.3}",
        t.record_bytes as f64 * 8.0 / t.weights.max(1) as f64
    );
    rows.push(total_row);
    let mut out = format!(
        "{}: {} layer{}, {} weights\n\n",
        rep.file,
        t.layers,
        if t.layers == 1 { "" } else { "s" },
        t.weights
    );
    out += &table(&header, &rows);
    out += &format!(
        "\nfile: {} bytes ({}-byte header + {} bytes of layer records + {}-byte CRC), \
         {:.3} bits/weight, {:.2}× smaller than dense int8\n",
        t.file_bytes,
        sdm::HEADER_LEN,
        t.record_bytes,
        sdm::TRAILER_LEN,
        t.bits_per_weight,
        t.compression_vs_int8
    );
    for l in &rep.layers {
        if let Some(c) = &l.conv {
            out += &format!(
                "{}: {k}×{k} convolution, {} input channels, stride {}, padding {}\n",
                l.name,
                c.in_channels,
                c.stride,
                c.padding,
                k = c.kernel
            );
        }
    }
    out
}

#[derive(Serialize)]
struct RequantJson<'a> {
    multiplier: &'a [u16],
    shift: &'a [u8],
    relu: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    conv: Option<ConvShape>,
}

/// Writes the integer tensors of every layer into `dir`.
fn export_int(cfg: &AccelConfig, model: &Model, dir: &Path) -> Result<()> {
    if cfg.weight_requant == WeightRequant::Exact {
        bail!(
            "--export-int writes int8 weights, but config `{}` has weight_requant = \"exact\": the \
             MAC array multiplies by {}-bit rebuilt weights, which do not fit int8; use a config \
             in \"int8\" mode",
            cfg.name,
            cfg.rebuild_bits()
        );
    }
    let mut stems = Vec::new();
    for l in &model.layers {
        l.check_fits(cfg)
            .with_context(|| format!("cannot export for config `{}`", cfg.name))?;
        stems.push(file_stem_for(&l.name)?);
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", show(dir)))?;
    for (l, stem) in model.layers.iter().zip(stems) {
        let w: Vec<i8> = golden::mac_weights(cfg, l)
            .into_iter()
            .map(|v| {
                i8::try_from(v).map_err(|_| {
                    anyhow!(
                        "layer `{}`: MAC weight {v} does not fit int8 (internal error)",
                        l.name
                    )
                })
            })
            .collect::<Result<_>>()?;
        let o = u64::from(l.outputs);
        // A convolution's [out][in] rows are its kernel [out][cin][k][k] flattened.
        let shape = match l.conv {
            Some(c) => vec![
                o,
                u64::from(c.in_channels),
                u64::from(c.kernel),
                u64::from(c.kernel),
            ],
            None => vec![o, u64::from(l.inputs)],
        };
        write_int8(&dir.join(format!("{stem}.w_int8.npy")), &shape, &w)?;
        write_int32(&dir.join(format!("{stem}.bias_int32.npy")), &[o], &l.bias)?;
        let rq = RequantJson {
            multiplier: &l.out_mult,
            shift: &l.out_shift,
            relu: l.relu,
            conv: l.conv,
        };
        let path = dir.join(format!("{stem}.requant.json"));
        let text = serde_json::to_string_pretty(&rq)? + "\n";
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", show(&path)))?;
    }
    note(&format!(
        "exported int8 weights, int32 biases and requant parameters of {} layer{} to {}",
        model.layers.len(),
        if model.layers.len() == 1 { "" } else { "s" },
        show(dir)
    ));
    Ok(())
}

pub fn main(args: Args) -> Result<()> {
    let cfg = args.config.load()?;
    let model = sdm::load(&args.model)?;
    if let Some(dir) = &args.export_int {
        export_int(&cfg, &model, dir)?;
    }
    let rep = report(&args.model, &model);
    let text = if args.json {
        serde_json::to_string_pretty(&rep)? + "\n"
    } else {
        render_text(&rep)
    };
    print_out(&text)
}
