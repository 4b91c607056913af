//! `smartdeal run`: executes a model on int8 activations with the golden model, the generated
//! accelerator in Verilator, or a board (simulated or real) over the link protocol.

use super::npy::{read_int8, shape_str, write_int8};
use super::{note, print_out, show, ConfigArgs};
use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use smartdeal_core::image::check_activations;
use smartdeal_core::{sdm, AccelConfig, FcLayer};
use smartdeal_gen::GenOptions;
use smartdeal_verif::cosim::{Accel, RunStats};
use smartdeal_verif::golden;
use smartdeal_verif::link::{Board, LinkError, LinkOptions, LinkStats, Transport, TransportError};
use smartdeal_verif::serial::SerialTransport;
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
    /// A real board on a serial port (--port, --baud), running a bitstream from `smartdeal fpga
    /// build`: the same link protocol and host driver as sim-board
    Board,
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
    /// The board's serial port, e.g. /dev/ttyUSB1 (board engine only)
    #[arg(long, value_name = "DEV")]
    pub port: Option<String>,
    /// The board's UART baud rate, as built with `fpga build --baud` (board engine only)
    /// [default: 115200]
    #[arg(long, value_name = "N")]
    pub baud: Option<u32>,
    /// The `fpga build` output folder of the bitstream on the board: its configuration and
    /// baud rate are taken from DIR/rtl/params.json and DIR/rtl/board.json, instead of
    /// --preset/--config/--dense and --baud (board engine only)
    #[arg(long, value_name = "DIR", conflicts_with_all = ["preset", "config", "dense", "baud"])]
    pub build: Option<PathBuf>,
}

/// The configuration and baud rate of the bitstream built into `dir` by `fpga build`.
fn from_build(dir: &std::path::Path) -> Result<(AccelConfig, u32)> {
    let read = |name: &str| -> Result<serde_json::Value> {
        let path = dir.join("rtl").join(name);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "--build {}: cannot read {} (is it an `fpga build` output folder?)",
                show(dir),
                show(&path)
            )
        })?;
        serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", show(&path)))
    };
    let params = read("params.json")?;
    let cfg: AccelConfig = serde_json::from_value(params["config"].clone())
        .with_context(|| format!("--build {}: params.json has no valid `config`", show(dir)))?;
    cfg.validate()
        .with_context(|| format!("--build {}: params.json's config", show(dir)))?;
    // A config read back differently (another generator version) would fail IDENTIFY later
    // with a less helpful message.
    if params["fingerprint"].as_str() != Some(cfg.fingerprint().as_str()) {
        bail!(
            "--build {}: params.json's config does not match its fingerprint {} (written by \
             another version of smartdeal?)",
            show(dir),
            params["fingerprint"]
        );
    }
    let board = read("board.json")?;
    let baud = board["link"]["baud"]
        .as_u64()
        .and_then(|b| u32::try_from(b).ok())
        .filter(|&b| b > 0)
        .ok_or_else(|| anyhow!("--build {}: board.json has no valid link.baud", show(dir)))?;
    Ok((cfg, baud))
}

/// Default `--baud` (that of `smartdeal fpga build`).
const DEFAULT_BAUD: u32 = 115_200;

/// Either board transport behind one type, so both board engines share one code path.
struct AnyTransport(Box<dyn Transport>);

impl Transport for AnyTransport {
    fn send(&mut self, bytes: &[u8]) -> Result<(), TransportError> {
        self.0.send(bytes)
    }
    fn recv(&mut self, n: usize, timeout: std::time::Duration) -> Result<Vec<u8>, TransportError> {
        self.0.recv(n, timeout)
    }
}

/// A connected board (simulated or real), what to call it in messages, and when it became
/// ready.
struct LinkedBoard {
    board: Board<AnyTransport>,
    what: String,
    t0: Instant,
}

/// The generated board top in Verilator (`--engine sim-board`), identified.
fn connect_sim_board(cfg: &AccelConfig) -> Result<LinkedBoard> {
    let link = smartdeal_gen::BoardLink::simulation();
    note(&format!(
        "verilating the board top for config `{}` ({}; cached in {}; a first build takes a \
         minute or two) ...",
        cfg.name,
        link.config_line(),
        show(&smartdeal_verif::bridge::cache_root())
    ));
    let t0 = Instant::now();
    let b = SimBoard::new(cfg, &link)
        .with_context(|| format!("cannot build the simulated board for config `{}`", cfg.name))?;
    let board = Board::connect(AnyTransport(Box::new(b)), cfg, LinkOptions::for_link(&link))
        .context("cannot connect to the simulated board")?;
    note(&format!(
        "simulated board ready in {:.1} s (link protocol version {})",
        t0.elapsed().as_secs_f64(),
        board.info().version
    ));
    Ok(LinkedBoard {
        board,
        what: "the simulated board".into(),
        t0: Instant::now(),
    })
}

/// A real board on serial port `port` (`--engine board`), identified: a device speaking another
/// protocol version or built for another configuration is an error naming what differs.
/// Bounded: the driver's retries and timeouts give up within a second or so when nothing
/// answers.
fn connect_serial_board(cfg: &AccelConfig, port: &str, baud: u32) -> Result<LinkedBoard> {
    let t0 = Instant::now();
    let t = SerialTransport::open(port, baud)?;
    let opts = t.link_options();
    let board = Board::connect(AnyTransport(Box::new(t)), cfg, opts).map_err(|e| match e {
        LinkError::NoReply { .. } => anyhow!(
            "no SmartDeal board answers on {port} at {baud} baud ({e}); is the bitstream \
             loaded, and are --port and --baud right?"
        ),
        e => anyhow!(e).context(format!("the board on {port} ({baud} baud)")),
    })?;
    let info = board.info();
    note(&format!(
        "board on {port} ready in {:.1} s (link protocol version {}, config `{}`, {} clocks per \
         bit)",
        t0.elapsed().as_secs_f64(),
        info.version,
        cfg.name,
        info.clks_per_bit
    ));
    Ok(LinkedBoard {
        board,
        what: format!("the board on {port}"),
        t0: Instant::now(),
    })
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
    if args.engine == Engine::Board {
        if args.port.is_none() {
            bail!("--engine board needs --port DEV, the board's serial port (e.g. /dev/ttyUSB1)");
        }
        if args.baud == Some(0) {
            bail!("--baud must be positive");
        }
    } else if args.port.is_some() || args.baud.is_some() || args.build.is_some() {
        bail!("--port, --baud and --build are for --engine board only");
    }
    let (cfg, build_baud) = match &args.build {
        Some(dir) => {
            let (cfg, baud) = from_build(dir)?;
            note(&format!(
                "the bitstream in {}: config `{}`, {baud} baud",
                show(dir),
                cfg.name
            ));
            (cfg, Some(baud))
        }
        None => (args.config.load()?, None),
    };
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

    let mut linked = None;
    if matches!(args.engine, Engine::SimBoard | Engine::Board) {
        // Check the input before building the simulator or talking to the board.
        check_activations(&cfg, &x.data).map_err(|why| anyhow!("{}: {why}", show(&args.input)))?;
        linked = Some(if args.engine == Engine::SimBoard {
            connect_sim_board(&cfg)?
        } else {
            let port = args.port.as_deref().expect("--port checked above");
            let baud = build_baud.or(args.baud).unwrap_or(DEFAULT_BAUD);
            connect_serial_board(&cfg, port, baud)?
        });
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
            None if linked.is_some() => {
                let lb = linked.as_mut().expect("a board engine");
                lb.board
                    .run_layer(l, &act)
                    .with_context(|| format!("layer `{}` on {}", l.name, lb.what))?
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
        Engine::Board => "board",
    };
    let cycles = if args.engine == Engine::Verilator {
        format!(
            ", {} accelerator cycles ({} simulated)",
            total.run_cycles, total.total_cycles
        )
    } else if let Some(lb) = &linked {
        let st: &LinkStats = lb.board.stats();
        let secs = lb.t0.elapsed().as_secs_f64();
        format!(
            ", {} accelerator cycles; link: {} frames{}, {} bytes in {:.1} s",
            st.run_cycles,
            st.frames,
            match st.retries {
                0 => String::new(),
                1 => " (1 resent)".into(),
                r => format!(" ({r} resent)"),
            },
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
