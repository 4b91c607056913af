//! `smartdeal run`: executes a model on int8 activations with the golden model, the generated
//! accelerator in Verilator, or a board (simulated or real) over the link protocol.

use super::npy::{read_int8, shape_str, write_int8};
use super::{note, print_out, show, ConfigArgs};
use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use smartdeal_core::image::check_activations;
use smartdeal_core::{sdm, AccelConfig, ConvShape, FcLayer, ImageDims};
use smartdeal_gen::GenOptions;
use smartdeal_host::link::{Board, LinkError, LinkOptions};
use smartdeal_host::serial::SerialTransport;
use smartdeal_host::{BoardEngine, GoldenEngine, RunStats};
use smartdeal_sim::{Accel, SimBoard};
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
    /// Input activations: int8 .npy of shape [in] or [T, in]; for a convolution, images
    /// [C, H, W] or [N, C, H, W]
    #[arg(long, value_name = "X_NPY")]
    pub input: PathBuf,
    /// Output file: int8 .npy of shape [out] or [T, out] (same rank as the input); for a
    /// convolution [N, Cout, H', W']
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

/// The generated board top in Verilator (`--engine sim-board`), identified.
fn connect_sim_board(cfg: &AccelConfig) -> Result<BoardEngine<SimBoard>> {
    let link = smartdeal_gen::BoardLink::simulation();
    note(&format!(
        "verilating the board top for config `{}` ({}; cached in {}; a first build takes a \
         minute or two) ...",
        cfg.name,
        link.config_line(),
        show(&smartdeal_sim::bridge::cache_root())
    ));
    let t0 = Instant::now();
    let b = SimBoard::new(cfg, &link)
        .with_context(|| format!("cannot build the simulated board for config `{}`", cfg.name))?;
    let board = Board::connect(b, cfg, LinkOptions::for_link(&link))
        .context("cannot connect to the simulated board")?;
    note(&format!(
        "simulated board ready in {:.1} s (link protocol version {})",
        t0.elapsed().as_secs_f64(),
        board.info().version
    ));
    Ok(BoardEngine::new(board, "sim-board", "the simulated board"))
}

/// A real board on serial port `port` (`--engine board`), identified: a device speaking another
/// protocol version or built for another configuration is an error naming what differs.
/// Bounded: the driver's retries and timeouts give up within a second or so when nothing
/// answers.
fn connect_serial_board(
    cfg: &AccelConfig,
    port: &str,
    baud: u32,
) -> Result<BoardEngine<SerialTransport>> {
    let t0 = Instant::now();
    let t = SerialTransport::open(port, baud)?;
    let opts = t.link_options();
    let board = Board::connect(t, cfg, opts).map_err(|e| match e {
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
    Ok(BoardEngine::new(
        board,
        "board",
        format!("the board on {port}"),
    ))
}

/// The generated accelerator in Verilator (`--engine verilator`).
fn build_accel(cfg: &AccelConfig) -> Result<Accel> {
    note(&format!(
        "verilating the accelerator for config `{}` (cached in {}; a first build takes a \
         minute) ...",
        cfg.name,
        show(&smartdeal_sim::bridge::cache_root())
    ));
    let t0 = Instant::now();
    let a = Accel::new(cfg, &GenOptions::default())
        .with_context(|| format!("cannot build the simulator for config `{}`", cfg.name))?;
    note(&format!(
        "simulator ready in {:.1} s",
        t0.elapsed().as_secs_f64()
    ));
    Ok(a)
}

/// The engine `args` ask for, ready to run (input `x` already checked for the engines that
/// take long to start).
fn open_engine(
    args: &Args,
    cfg: &AccelConfig,
    build_baud: Option<u32>,
    x: &[i8],
) -> Result<Box<dyn smartdeal_host::Engine>> {
    if args.engine != Engine::Golden {
        // Check the input before building a simulator or talking to a board.
        check_activations(cfg, x).map_err(|why| anyhow!("{}: {why}", show(&args.input)))?;
    }
    Ok(match args.engine {
        Engine::Golden => Box::new(GoldenEngine::new(cfg)),
        Engine::Verilator => Box::new(build_accel(cfg)?),
        Engine::SimBoard => Box::new(connect_sim_board(cfg)?),
        Engine::Board => {
            let port = args.port.as_deref().expect("--port checked above");
            let baud = build_baud.or(args.baud).unwrap_or(DEFAULT_BAUD);
            Box::new(connect_serial_board(cfg, port, baud)?)
        }
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
        let (a, b) = (pair[0], pair[1]);
        let fits = match (&a.conv, &b.conv) {
            (None, None) => a.outputs == b.inputs,
            (Some(_), Some(c)) => a.outputs == c.in_channels,
            _ => false,
        };
        if !fits {
            bail!(
                "cannot chain layer `{}` ({} outputs{}) into layer `{}` ({}); pick one layer \
                 with --layer",
                a.name,
                a.outputs,
                if a.conv.is_some() {
                    ", a convolution"
                } else {
                    ""
                },
                b.name,
                match &b.conv {
                    Some(c) => format!("a convolution of {} input channels", c.in_channels),
                    None => format!("{} inputs", b.inputs),
                }
            );
        }
    }
    for l in &chosen {
        l.check_fits(cfg)
            .with_context(|| format!("the model does not fit config `{}`", cfg.name))?;
    }
    Ok(chosen)
}

/// Rejects flags that do not go with `--engine`.
fn check_flags(args: &Args) -> Result<()> {
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
    Ok(())
}

/// The activations between layers: token vectors, or images (`C` channels of `dims`).
#[derive(Debug, Clone, Copy)]
enum Shape {
    Tokens(usize),
    Images(usize, ImageDims),
}

/// The images in input `x` of shape `shape` for a first layer `first`, a convolution.
fn images_of(args: &Args, shape: &[u64], first: &FcLayer, conv: &ConvShape) -> Result<Shape> {
    let c = u64::from(conv.in_channels);
    let (n, ch, h, w) = match *shape {
        [ch, h, w] => (1, ch, h, w),
        [n, ch, h, w] => (n, ch, h, w),
        _ => bail!(
            "{}: shape {} has rank {}, but layer `{}` is a convolution: expected [{c}, H, W] or \
             [N, {c}, H, W]",
            show(&args.input),
            shape_str(shape),
            shape.len(),
            first.name
        ),
    };
    if ch != c || n == 0 || h == 0 || w == 0 {
        bail!(
            "{}: shape {} does not match layer `{}`, a convolution of {c} input channels \
             (expected [{c}, H, W] or [N, {c}, H, W] with nothing empty)",
            show(&args.input),
            shape_str(shape),
            first.name
        );
    }
    let dims = ImageDims {
        images: n as usize,
        height: h as usize,
        width: w as usize,
    };
    conv.out_dims(dims)
        .map_err(|why| anyhow!("{}: layer `{}`: {why}", show(&args.input), first.name))?;
    Ok(Shape::Images(c as usize, dims))
}

/// The number of tokens in input `x` of shape `shape` for a first layer `first`.
fn tokens_of(args: &Args, shape: &[u64], first: &FcLayer) -> Result<usize> {
    let n = u64::from(first.inputs);
    Ok(match shape {
        [i] if *i == n => 1,
        [t, i] if *i == n && *t >= 1 => *t as usize,
        [0, i] if *i == n => bail!(
            "{}: shape {} has no tokens",
            show(&args.input),
            shape_str(shape)
        ),
        [_] | [_, _] => bail!(
            "{}: shape {} does not match layer `{}`, which takes {n} inputs (expected [{n}] or \
             [T, {n}])",
            show(&args.input),
            shape_str(shape),
            first.name
        ),
        _ => bail!(
            "{}: shape {} has rank {}, expected [{n}] or [T, {n}]",
            show(&args.input),
            shape_str(shape),
            shape.len()
        ),
    })
}

/// What the summary line adds after the layer names: the cycles, and the link's traffic.
fn cycles_note(
    kind: Engine,
    engine: &dyn smartdeal_host::Engine,
    total: &RunStats,
    t0: Instant,
) -> String {
    if kind == Engine::Verilator {
        format!(
            ", {} accelerator cycles ({} simulated)",
            total.run_cycles, total.total_cycles
        )
    } else if let Some(st) = engine.link_stats() {
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
            t0.elapsed().as_secs_f64()
        )
    } else {
        String::new()
    }
}

pub fn main(args: Args) -> Result<()> {
    check_flags(&args)?;
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
    let last = layers[layers.len() - 1];
    let x = read_int8(&args.input)?;
    let mut shape = match &layers[0].conv {
        Some(conv) => images_of(&args, &x.shape, layers[0], conv)?,
        None => Shape::Tokens(tokens_of(&args, &x.shape, layers[0])?),
    };
    let mut engine = open_engine(&args, &cfg, build_baud, &x.data)?;

    let t0 = Instant::now();
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
        let (y, stats) = match (shape, &l.conv) {
            (Shape::Images(_, dims), Some(conv)) => {
                let (h, w) = conv
                    .out_dims(dims)
                    .map_err(|why| anyhow!("layer `{}`: {why}", l.name))?;
                shape = Shape::Images(
                    l.outputs as usize,
                    ImageDims {
                        height: h,
                        width: w,
                        ..dims
                    },
                );
                engine.run_layer_images(l, &act, dims)
            }
            _ => engine.run_layer(l, &act),
        }
        .with_context(|| format!("layer `{}` on {}", l.name, engine.what()))?;
        total.add(&stats);
        per_layer.push(LayerStats {
            layer: &l.name,
            stats,
        });
        act = y;
    }

    let m = u64::from(last.outputs);
    let (tokens, what) = match shape {
        Shape::Tokens(t) => (t, format!("{t} token{}", if t == 1 { "" } else { "s" })),
        Shape::Images(_, d) => (
            d.images,
            format!("{} image{}", d.images, if d.images == 1 { "" } else { "s" }),
        ),
    };
    let shape: Vec<u64> = match shape {
        Shape::Images(c, d) => vec![d.images as u64, c as u64, d.height as u64, d.width as u64],
        Shape::Tokens(_) if x.shape.len() == 1 => vec![m],
        Shape::Tokens(t) => vec![t as u64, m],
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
    print_out(&format!(
        "{}: ran {} on {what} (config `{}`){}: wrote {} {}\n",
        engine.name(),
        names.join(" → "),
        cfg.name,
        cycles_note(args.engine, engine.as_ref(), &total, t0),
        show(&args.out),
        shape_str(&shape)
    ))
}
