//! The layers `fpga bench` scores each design on: a seeded random layer and all-MiniLM-L6-v2's
//! layer-0 attention query, decomposed as `smartdeal decompose` does (unpruned and pruned), and
//! what each costs on a design, from the buffer images the host would load.

use crate::cli::decompose;
use crate::cli::show;
use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use serde::Serialize;
use smartdeal_core::random::{random_layer, RandomLayerSpec};
use smartdeal_core::{AccelConfig, FcLayer};
use smartdeal_decomp::{pipeline, weights};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The MiniLM weight the bench decomposes: the first encoder layer's attention query.
pub const MINILM_TENSOR: &str = "encoder.layer.0.attention.self.query.weight";

/// A layer of the bench (`--layers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum BenchLayer {
    /// The seeded random layer (--layer-size, --row-density, --seed)
    Synthetic,
    /// all-MiniLM-L6-v2 encoder layer 0 attention query, `smartdeal decompose` defaults
    Minilm,
    /// The same with `--prune-ratio R` (--prune-ratio, default 0.5)
    MinilmPruned,
}

impl BenchLayer {
    pub fn needs_minilm(self) -> bool {
        self != BenchLayer::Synthetic
    }
}

/// What the layers are made from (the bench's arguments).
pub struct LayerSources {
    pub size: u32,
    pub row_density: f64,
    pub seed: u64,
    /// all-MiniLM-L6-v2's `model.safetensors`.
    pub minilm: PathBuf,
    pub prune_ratio: f64,
}

impl LayerSources {
    /// A one-line error naming what to do when the MiniLM weights are not there, checked before
    /// any build starts.
    pub fn check_minilm(&self) -> Result<()> {
        if !self.minilm.is_file() {
            bail!(
                "all-MiniLM-L6-v2 is not in the cache ({} is missing): run `bash \
                 scripts/setup.sh` to fetch it, or pass --layers synthetic",
                show(&self.minilm)
            );
        }
        Ok(())
    }

    /// `kind` made for the SmartDeal design `cfg`: the random layer sized for it, or the MiniLM
    /// weight decomposed for it (its exponent bits, basis bits and weight-requant mode, as
    /// `smartdeal decompose --config` would).
    pub fn layer(&self, kind: BenchLayer, cfg: &AccelConfig) -> Result<FcLayer> {
        match kind {
            BenchLayer::Synthetic => Ok(random_layer(&RandomLayerSpec::for_config(
                cfg,
                self.size,
                self.size,
                self.row_density,
                self.seed,
            ))),
            BenchLayer::Minilm => self.decompose(cfg, None),
            BenchLayer::MinilmPruned => self.decompose(cfg, Some(self.prune_ratio)),
        }
    }

    /// The MiniLM query decomposed with `smartdeal decompose`'s own settings: its flags are
    /// parsed by its own argument definitions, so every default is the command's.
    fn decompose(&self, cfg: &AccelConfig, prune_ratio: Option<f64>) -> Result<FcLayer> {
        #[derive(Parser)]
        struct Decompose {
            #[command(flatten)]
            args: decompose::Args,
        }
        let mut argv: Vec<OsString> = vec![
            "decompose".into(),
            self.minilm.clone().into(),
            "--tensor".into(),
            MINILM_TENSOR.into(),
            // Required by the command, never written here.
            "--out".into(),
            "unused.sdm".into(),
        ];
        if let Some(r) = prune_ratio {
            argv.extend(["--prune-ratio".into(), r.to_string().into()]);
        }
        let a = Decompose::try_parse_from(argv)
            .map_err(|e| {
                let msg = e.to_string();
                anyhow!(
                    "decompose settings: {}",
                    msg.lines().next().unwrap_or_default()
                )
            })?
            .args;
        let mut s = decompose::settings(&a, cfg)?;
        let mut tensors = weights::load(&a.weights, &a.tensors).map_err(|e| anyhow!("{e}"))?;
        s.conv = decompose::conv_settings(&a, &mut tensors)?;
        let (model, _) = pipeline::run(&tensors, &s, cfg, &|_| {}).map_err(|e| anyhow!("{e}"))?;
        model.layers.into_iter().next().ok_or_else(|| {
            anyhow!(
                "{} in {}: not a fully connected layer",
                MINILM_TENSOR,
                show(&self.minilm)
            )
        })
    }

    /// A title for tables.
    pub fn title(&self, kind: BenchLayer) -> String {
        match kind {
            BenchLayer::Synthetic => format!(
                "synthetic {n}×{n}, row density {:.0} % (seed {})",
                self.row_density * 100.0,
                self.seed,
                n = self.size
            ),
            BenchLayer::Minilm => "all-MiniLM-L6-v2 layer 0 attention query (`smartdeal \
                                   decompose` defaults)"
                .into(),
            BenchLayer::MinilmPruned => format!(
                "all-MiniLM-L6-v2 layer 0 attention query, `--prune-ratio {}`",
                self.prune_ratio
            ),
        }
    }
}

/// What one layer costs on one design, from the buffer images the host would load.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerCost {
    pub design: String,
    /// Bytes of weight data moved to the device: stream entries plus basis and weight-shift
    /// words (activations and output parameters are the same for every design and excluded).
    pub weight_bytes: u64,
    /// Stream entries (= cycles, one per entry, without the fixed pipeline latency).
    pub stream_entries: u64,
    /// Runs the layer is split into (buffer capacity).
    pub runs: u32,
    /// Fraction of the layer's Ce rows (over all output channels) the design streams: the
    /// layer's row density for SmartDeal, 1 for the dense baseline, which streams every row.
    pub row_density: f64,
    /// `inputs × outputs × slots × Fmax / stream entries`: MAC/s on this layer's packed stream
    /// (padding and the union of row sets across a tile's lanes included); builds that are not
    /// `ok` have none.
    pub mac_per_s: Option<f64>,
    /// `mac_per_s` per thousand logic cells / LUTs the design uses.
    pub mac_per_s_per_klut: Option<f64>,
}

/// One layer's results on every design.
#[derive(Debug, Clone, Serialize)]
pub struct LayerResult {
    pub layer: BenchLayer,
    pub title: String,
    pub inputs: u32,
    pub outputs: u32,
    /// Present Ce rows over all (channel, row) pairs of the layer (the rebuild design's copy).
    pub row_density: f64,
    /// The random layer's seed (`synthetic` only).
    pub seed: Option<u64>,
    /// The weight file and tensor (MiniLM only).
    pub source: Option<String>,
    /// The structural prune ratio given to the decomposition (MiniLM only).
    pub prune_ratio: Option<f64>,
    pub costs: Vec<LayerCost>,
}

impl LayerResult {
    pub fn new(kind: BenchLayer, src: &LayerSources, layer: &FcLayer) -> LayerResult {
        let minilm = kind.needs_minilm();
        LayerResult {
            layer: kind,
            title: src.title(kind),
            inputs: layer.inputs,
            outputs: layer.outputs,
            row_density: row_density(layer),
            seed: (!minilm).then_some(src.seed),
            source: minilm.then(|| format!("{} {}", show(&src.minilm), MINILM_TENSOR)),
            prune_ratio: match kind {
                BenchLayer::Synthetic => None,
                BenchLayer::Minilm => Some(0.0),
                BenchLayer::MinilmPruned => Some(src.prune_ratio),
            },
            costs: Vec::new(),
        }
    }
}

/// Weight bytes, stream entries and runs of `layer` on `cfg`, from the images the host loads
/// (for the dense baseline: the layer's int8 weights, decompressed as the host does).
pub fn layer_cost(design: &str, cfg: &AccelConfig, layer: &FcLayer) -> Result<LayerCost> {
    let runs = smartdeal_host::pack_for(cfg, layer)
        .with_context(|| format!("layer `{}` on config `{}`", layer.name, cfg.name))?;
    let bits =
        |ws: &[smartdeal_core::image::Word]| ws.iter().map(|w| u64::from(w.bits)).sum::<u64>();
    let weight_bits: u64 = runs
        .iter()
        .map(|r| bits(&r.coef) + bits(&r.basis) + bits(&r.wshift))
        .sum();
    Ok(LayerCost {
        design: design.into(),
        weight_bytes: weight_bits.div_ceil(8),
        stream_entries: runs.iter().map(|r| r.coef.len() as u64).sum(),
        runs: runs.len() as u32,
        row_density: if cfg.is_dense() {
            1.0
        } else {
            row_density(layer)
        },
        mac_per_s: None,
        mac_per_s_per_klut: None,
    })
}

/// Present Ce rows over all (output channel, row) pairs: each channel has its group's rows.
pub fn row_density(layer: &FcLayer) -> f64 {
    let present: usize = (0..layer.outputs as usize)
        .map(|o| {
            layer.row_present[layer.group_of(o)]
                .iter()
                .filter(|&&p| p)
                .count()
        })
        .sum();
    present as f64 / (layer.outputs as usize * layer.rows()) as f64
}

/// `inputs × outputs × slots × Fmax / stream entries`: every stream entry takes one cycle and
/// serves `slots` tokens, so a token's `inputs × outputs` MACs take `entries / slots` cycles.
pub fn layer_mac_per_s(inputs: u32, outputs: u32, slots: u32, fmax_mhz: f64, entries: u64) -> f64 {
    f64::from(inputs) * f64::from(outputs) * f64::from(slots) * fmax_mhz * 1e6 / entries as f64
}

/// `mac_per_s` per thousand logic cells / LUTs.
pub fn per_klut(mac_per_s: f64, logic_used: u64) -> f64 {
    mac_per_s / (logic_used as f64 / 1000.0)
}

/// `model_dir/model.safetensors`, the file `eval sts --model-dir` reads too.
pub fn minilm_weights(model_dir: &Path) -> PathBuf {
    model_dir.join("model.safetensors")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One lane, one slot, rebuild dataflow: one stream entry per present row and channel.
    fn cfg() -> AccelConfig {
        let mut c = AccelConfig::preset("tiny").unwrap();
        c.lanes = 1;
        c.slots = 1;
        c.validate().unwrap();
        c
    }

    #[test]
    fn row_density_counts_each_channels_group_rows() {
        let spec = RandomLayerSpec::for_config(&cfg(), 96, 8, 0.5, 3);
        let mut layer = random_layer(&RandomLayerSpec {
            group_size: 4,
            ..spec
        });
        // 32 rows, 16 present in both groups of 4 channels.
        assert!((row_density(&layer) - 0.5).abs() < 1e-12);
        // One more row in the second group: 4 of 8 × 32 (channel, row) pairs.
        let r = layer.row_present[1].iter().position(|p| !p).unwrap();
        layer.row_present[1][r] = true;
        assert!((row_density(&layer) - (16.0 * 8.0 + 4.0) / 256.0).abs() < 1e-12);
    }

    #[test]
    fn dense_streams_every_row_and_more_bytes() {
        let sd = cfg();
        let layer = random_layer(&RandomLayerSpec::for_config(&sd, 96, 16, 0.25, 1));
        let a = layer_cost("sd", &sd, &layer).unwrap();
        let d = layer_cost("dense", &sd.dense_baseline(), &layer).unwrap();
        assert_eq!(d.row_density, 1.0);
        assert!((a.row_density - 0.25).abs() < 1e-12);
        // One lane: one entry per present row and channel, one per row for the dense design.
        assert_eq!(a.stream_entries, 8 * 16);
        assert_eq!(d.stream_entries, 32 * 16);
        assert!(d.weight_bytes > a.weight_bytes);
    }

    #[test]
    fn mac_rates() {
        // 384 × 384 MACs per token, 2 tokens per entry, 1536 entries at 10 MHz.
        let m = layer_mac_per_s(384, 384, 2, 10.0, 1536);
        assert!((m - 384.0 * 384.0 * 2.0 * 1e7 / 1536.0).abs() < 1e-6);
        assert!((per_klut(3e6, 1500) - 2e6).abs() < 1e-9);
    }

    #[test]
    fn a_missing_minilm_is_one_line_naming_setup() {
        let src = LayerSources {
            size: 48,
            row_density: 0.5,
            seed: 1,
            minilm: minilm_weights(Path::new("/nonexistent/minilm")),
            prune_ratio: 0.5,
        };
        let e = src.check_minilm().unwrap_err().to_string();
        assert!(!e.contains('\n'), "{e}");
        assert!(
            e.contains("scripts/setup.sh") && e.contains("--layers synthetic"),
            "{e}"
        );
    }
}
