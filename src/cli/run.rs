//! `smartdeal run`: executes a model on int8 activations with the golden model or the generated
//! accelerator in Verilator.

use super::npy::{read_int8, shape_str, write_int8};
use super::{note, print_out, show, ConfigArgs};
use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use smartdeal_core::image::check_activations;
use smartdeal_core::{sdm, AccelConfig, FcLayer};
use smartdeal_gen::GenOptions;
use smartdeal_verif::cosim::{Accel, RunStats};
use smartdeal_verif::golden;
use smartdeal_verif::link::{Board, LinkOptions, LinkStats};
use smartdeal_verif::simboard::SimBoard;
use std::path::PathBuf;
use std::time::Instant;

/// Which implementation computes the outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    /// The bit-exact golden model (pure Rust, instant)
    Golden,
    /// The generated Verilog accelerator, simulated with Verilator (built once, then cached)
    Verilator,
    /// The generated board top (UART, link protocol engine, accelerator) in Verilator, driven
    /// by the host link driver bit by bit over its UART pins (docs/protocol.md)
    SimBoard,
}

// Flags of the subcommand (its description is on `Command` in main.rs).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Implementation to run
    #[arg(long, value_enum, value_name = "ENGINE")]
    pub engine: Engine,
    /// The .sdm model
    #[arg(long, value_name = "MODEL_SDM")]
    pub model: PathBuf,
    /// Input activations: int8 .npy of shape [in] or [T, in]
    #[arg(long, value_name = "X_NPY")]
    pub input: PathBuf,
    /// Output file: int8 .npy of shape [out] or [T, out] (same rank as the input)
    #[arg(long, value_name = "Y_NPY")]
    pub out: PathBuf,
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Run only the layer with this name (default: all layers, chained in order)
    #[arg(long, value_name = "NAME")]
    pub layer: Option<String>,
    /// Write the accelerator's cycle counts as JSON (verilator engine only)
    #[arg(long, value_name = "FILE")]
    pub stats_json: Option<PathBuf>,
}

#[derive(Serialize)]
struct LayerStats<'a> {
    layer: &'a str,
    #[serde(flatten)]
    stats: RunStats,
}

#[derive(Serialize)]
struct StatsJson<'a> {
    format_version: u32,
    engine: &'static str,
    config: &'a str,
    tokens: usize,
    /// Sums over all layers.
    #[serde(flatten)]
    total: RunStats,
    layers: Vec<LayerStats<'a>>,
}

fn add(a: &mut RunStats, b: &RunStats) {
    a.run_cycles += b.run_cycles;
    a.total_cycles += b.total_cycles;
    a.runs += b.runs;
    a.useful_entries += b.useful_entries;
    a.entries += b.entries;
}

/// The layers to run, in order, checked to chain and to fit `cfg`.
fn select_layers<'m>(
    cfg: &AccelConfig,
    layers: &'m [FcLayer],
    only: Option<&str>,
) -> Result<Vec<&'m FcLayer>> {
    let chosen: Vec<&FcLayer> = match only {
        Some(name) => {
            let l = layers.iter().find(|l| l.name == name).ok_or_else(|| {
                let names: Vec<&str> = layers.iter().map(|l| l.name.as_str()).collect();
                anyhow!(
                    "the model has no layer `{name}` (its layers: {})",
                    names.join(", ")
                )
            })?;
            vec![l]
        }
        None => layers.iter().collect(),
    };
    if chosen.is_empty() {
        bail!("the model has no layers");
    }
    for pair in chosen.windows(2) {
        if pair[0].outputs != pair[1].inputs {
            bail!(
                "cannot chain layer `{}` ({} outputs) into layer `{}` ({} inputs); pick one \
                 layer with --layer",
                pair[0].name,
                pair[0].outputs,
                pair[1].name,
                pair[1].inputs
            );
        }
    }
    for l in &chosen {
        l.check_fits(cfg)
            .with_context(|| format!("the model does not fit config `{}`", cfg.name))?;
    }
    Ok(chosen)
}

pub fn main(args: Args) -> Result<()> {
    if args.stats_json.is_some() && args.engine != Engine::Verilator {
        bail!("--stats-json needs --engine verilator (the golden model counts no cycles)");
    }
    let cfg = args.config.load()?;
    let model = sdm::load(&args.model)?;
    let layers = select_layers(&cfg, &model.layers, args.layer.as_deref())?;
    let first = layers[0];
    let last = layers[layers.len() - 1];

    let x = read_int8(&args.input)?;
    let n = u64::from(first.inputs);
    let tokens = match x.shape.as_slice() {
        [i] if *i == n => 1,
        [t, i] if *i == n && *t >= 1 => *t as usize,
        [0, i] if *i == n => bail!(
            "{}: shape {} has no tokens",
            show(&args.input),
            shape_str(&x.shape)
        ),
        [_] | [_, _] => bail!(
            "{}: shape {} does not match layer `{}`, which takes {n} inputs (expected [{n}] or \
             [T, {n}])",
            show(&args.input),
            shape_str(&x.shape),
            first.name
        ),
        _ => bail!(
            "{}: shape {} has rank {}, expected [{n}] or [T, {n}]",
            show(&args.input),
            shape_str(&x.shape),
            x.shape.len()
        ),
    };

    let mut accel = None;
    if args.engine == Engine::Verilator {
        // Check the input before spending time on the simulator.
        check_activations(&cfg, &x.data).map_err(|why| anyhow!("{}: {why}", show(&args.input)))?;
        note(&format!(
            "verilating the accelerator for config `{}` (cached in {}; a first build takes a \
             minute) ...",
            cfg.name,
            show(&smartdeal_verif::bridge::cache_root())
        ));
        let t0 = Instant::now();
        let a = Accel::new(&cfg, &GenOptions::default())
            .with_context(|| format!("cannot build the simulator for config `{}`", cfg.name))?;
        note(&format!(
            "simulator ready in {:.1} s",
            t0.elapsed().as_secs_f64()
        ));
        accel = Some(a);
    }

    let mut sim_board = None;
    if args.engine == Engine::SimBoard {
        check_activations(&cfg, &x.data).map_err(|why| anyhow!("{}: {why}", show(&args.input)))?;
        let link = smartdeal_gen::BoardLink::simulation();
        note(&format!(
            "verilating the board top for config `{}` ({}; cached in {}; a first build takes a \
             minute or two) ...",
            cfg.name,
            link.config_line(),
            show(&smartdeal_verif::bridge::cache_root())
        ));
        let t0 = Instant::now();
        let b = SimBoard::new(&cfg, &link).with_context(|| {
            format!("cannot build the simulated board for config `{}`", cfg.name)
        })?;
        let board = Board::connect(b, &cfg, LinkOptions::for_link(&link))
            .context("cannot connect to the simulated board")?;
        note(&format!(
            "simulated board ready in {:.1} s (link protocol version {})",
            t0.elapsed().as_secs_f64(),
            board.info().version
        ));
        sim_board = Some((board, Instant::now()));
    }

    let mut act = x.data;
    let mut total = RunStats::default();
    let mut per_layer = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let source = if i == 0 {
            show(&args.input)
        } else {
            format!("output of layer `{}`", layers[i - 1].name)
        };
        check_activations(&cfg, &act)
            .map_err(|why| anyhow!("input of layer `{}` ({source}): {why}", l.name))?;
        act = match accel.as_mut() {
            None if sim_board.is_some() => {
                let (board, _) = sim_board.as_mut().expect("sim-board engine");
                board
                    .run_layer(l, &act)
                    .with_context(|| format!("layer `{}` on the simulated board", l.name))?
            }
            None => golden::run_layer(&cfg, l, &act),
            Some(a) => {
                let (y, stats) = a
                    .run_layer(l, &act)
                    .with_context(|| format!("layer `{}` on the simulated accelerator", l.name))?;
                add(&mut total, &stats);
                per_layer.push(LayerStats {
                    layer: &l.name,
                    stats,
                });
                y
            }
        };
    }

    let m = u64::from(last.outputs);
    let shape: Vec<u64> = if x.shape.len() == 1 {
        vec![m]
    } else {
        vec![tokens as u64, m]
    };
    write_int8(&args.out, &shape, &act)?;
    if let Some(path) = &args.stats_json {
        let js = StatsJson {
            format_version: 1,
            engine: "verilator",
            config: &cfg.name,
            tokens,
            total: total.clone(),
            layers: per_layer,
        };
        let text = serde_json::to_string_pretty(&js)? + "\n";
        std::fs::write(path, text).with_context(|| format!("cannot write {}", show(path)))?;
    }

    let names: Vec<&str> = layers.iter().map(|l| l.name.as_str()).collect();
    let engine = match args.engine {
        Engine::Golden => "golden",
        Engine::Verilator => "verilator",
        Engine::SimBoard => "sim-board",
    };
    let cycles = if args.engine == Engine::Verilator {
        format!(
            ", {} accelerator cycles ({} simulated)",
            total.run_cycles, total.total_cycles
        )
    } else if let Some((board, t0)) = &sim_board {
        let st: &LinkStats = board.stats();
        let secs = t0.elapsed().as_secs_f64();
        format!(
            ", {} accelerator cycles; link: {} frames, {} bytes in {:.1} s",
            st.run_cycles,
            st.frames,
            st.bytes_sent + st.bytes_received,
            secs
        )
    } else {
        String::new()
    };
    print_out(&format!(
        "{engine}: ran {} on {tokens} token{} (config `{}`){cycles}: wrote {} {}\n",
        names.join(" → "),
        if tokens == 1 { "" } else { "s" },
        cfg.name,
        show(&args.out),
        shape_str(&shape)
    ))
}
