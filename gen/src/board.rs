//! The board build: the accelerator (`sd_top`) behind a UART link (docs/protocol.md).
//!
//! [`generate_board`] writes every module of the accelerator plus the UART receiver and
//! transmitter, the protocol engine and the board top `sd_board_top`, for an [`AccelConfig`] and
//! a [`BoardLink`] (the serial-link parameters). The protocol's vocabulary, which the host
//! driver shares, is `smartdeal_core::protocol`.

use crate::design::{generate, generator_id, Design, GenOptions};
use crate::hw::{board_top, link, uart_rx, uart_tx};
use crate::ir::emit;
use crate::pll;
use serde::Serialize;
use smartdeal_core::protocol::{self as proto, identify_payload, BoardLink, LinkError, LinkSizes};
use smartdeal_core::AccelConfig;
use std::path::{Path, PathBuf};

/// The board design: the accelerator's modules, then the UART, the engine and the board top.
#[derive(Debug, Clone)]
pub struct BoardDesign {
    /// All modules (top `sd_board_top` last); `design.params_json` is the accelerator's.
    pub design: Design,
    /// `board.json`: link parameters, derived sizes, protocol version and the board top's ports.
    pub board_json: String,
    /// `(file name, text)` of simulation models of the vendor primitives the design instantiates
    /// (the accelerator's DSP blocks, the PLL), for Verilator only: synthesis has the real
    /// cells. Written to `sim/`.
    pub sim_models: Vec<(String, String)>,
}

#[derive(Serialize)]
struct BoardJson<'a> {
    format_version: u32,
    generator: String,
    fingerprint: String,
    protocol_version: u8,
    top: &'a str,
    link: &'a BoardLink,
    clks_per_bit: u32,
    timeout_clks: u64,
    sizes: LinkSizes,
    identify_payload_hex: String,
}

impl BoardDesign {
    pub fn top_module(&self) -> &crate::ir::Module {
        self.design.top_module()
    }

    /// Writes every `.v`, `params.json`, `files.f` and `board.json` into `dir`, and the
    /// simulation models into `dir/sim`. Returns the synthesis sources (no models).
    pub fn write(&self, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        self.write_with_models(dir).map(|(design, _)| design)
    }

    /// [`BoardDesign::write`], returning the sources Verilator needs: the simulation models
    /// first, then the design.
    pub fn write_for_simulation(&self, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        let (design, mut paths) = self.write_with_models(dir)?;
        paths.extend(design);
        Ok(paths)
    }

    /// Writes everything; returns the design's sources and the models' paths.
    fn write_with_models(&self, dir: &Path) -> std::io::Result<(Vec<PathBuf>, Vec<PathBuf>)> {
        let paths = self.design.write(dir)?;
        std::fs::write(dir.join("board.json"), &self.board_json)?;
        let models = crate::design::write_sim_models(dir, &self.sim_models)?;
        Ok((paths, models))
    }
}

/// Builds the board design for a validated accelerator configuration and link. The
/// accelerator's modules are exactly those of [`generate`].
pub fn generate_board(
    cfg: &AccelConfig,
    link: &BoardLink,
    opts: &GenOptions,
) -> Result<BoardDesign, LinkError> {
    link.validate()?;
    let mut design = generate(cfg, opts);
    let accel_top = design.top_module().clone();
    let rx = uart_rx::module(cfg, link);
    let tx = uart_tx::module(cfg, link);
    let engine = link::module(cfg, link);
    let top = board_top::module(
        cfg,
        link,
        &board_top::Parts {
            accel: &accel_top,
            rx: &rx,
            tx: &tx,
            link: &engine,
        },
    );
    let gen = generator_id();
    let mut mods = vec![rx, tx, engine];
    // The accelerator's models (its DSP blocks), then the PLL's.
    let mut sim_models = design.sim_models.clone();
    if let Some(pll) = &link.pll {
        let wrapper = board_top::pll_wrapper(cfg, link, &top);
        mods.extend([top, wrapper]);
        sim_models.push(pll::sim_model(pll, &gen));
    } else {
        mods.push(top);
    }
    for m in mods {
        design
            .files
            .push((format!("{}.v", m.name), emit::module(&m, &gen)));
        design.modules.push(m);
    }
    design.top = board_top::NAME.to_string();
    let bj = BoardJson {
        format_version: 1,
        generator: gen,
        fingerprint: cfg.fingerprint(),
        protocol_version: proto::VERSION,
        top: board_top::NAME,
        link,
        clks_per_bit: link.clks_per_bit(),
        timeout_clks: link.timeout_clks(),
        sizes: LinkSizes::of(cfg),
        identify_payload_hex: identify_payload(cfg, link)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    };
    let mut board_json = serde_json::to_string_pretty(&bj).expect("board.json serializes");
    board_json.push('\n');
    Ok(BoardDesign {
        design,
        board_json,
        sim_models,
    })
}
