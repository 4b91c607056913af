//! One way to say "run this compressed layer on that engine": the [`Engine`] trait, with the
//! golden model ([`GoldenEngine`]) and a board over the link protocol ([`BoardEngine`], a real
//! one on a serial port or the simulated one) implemented here; the Verilator model of the
//! accelerator implements it in `smartdeal-sim`. `smartdeal run`, `fpga bench`, the tests and
//! the network runner all run layers through it.

use crate::link::{Board, LinkError, LinkStats, Transport};
use crate::plan::{self, PlanError, RunStats};
use smartdeal_core::{AccelConfig, FcLayer};

/// Why an engine could not run a layer. The message is the underlying error's.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Link(#[from] LinkError),
    /// An engine-specific failure (e.g. the simulator's), boxed so this crate needs not know it.
    #[error(transparent)]
    Other(Box<dyn std::error::Error + Send + Sync + 'static>),
}

/// Something that computes a compressed layer's int8 outputs for a configuration.
pub trait Engine {
    /// The engine's name on the command line (`golden`, `verilator`, `sim-board`, `board`).
    fn name(&self) -> &'static str;
    /// What runs the layers, for messages ("the simulated accelerator", "the board on …").
    fn what(&self) -> String;
    /// The configuration the engine computes with.
    fn config(&self) -> &AccelConfig;
    /// Runs `layer` on `x` (`[tokens][inputs]`, row-major): `[tokens][outputs]` and the counts
    /// the engine can observe.
    fn run_layer(&mut self, layer: &FcLayer, x: &[i8]) -> Result<(Vec<i8>, RunStats), EngineError>;
    /// The link's traffic counters, for engines behind the link protocol.
    fn link_stats(&self) -> Option<&LinkStats> {
        None
    }
}

/// The bit-exact golden model: no cycles, no hardware.
#[derive(Debug, Clone)]
pub struct GoldenEngine {
    cfg: AccelConfig,
}

impl GoldenEngine {
    pub fn new(cfg: &AccelConfig) -> GoldenEngine {
        GoldenEngine { cfg: cfg.clone() }
    }
}

impl Engine for GoldenEngine {
    fn name(&self) -> &'static str {
        "golden"
    }
    fn what(&self) -> String {
        "the golden model".into()
    }
    fn config(&self) -> &AccelConfig {
        &self.cfg
    }
    fn run_layer(&mut self, layer: &FcLayer, x: &[i8]) -> Result<(Vec<i8>, RunStats), EngineError> {
        plan::check_input(&self.cfg, layer, x)?;
        layer.check_fits(&self.cfg).map_err(PlanError::from)?;
        let y = smartdeal_golden::run_layer(&self.cfg, layer, x);
        Ok((y, RunStats::default()))
    }
}

/// A board (real or simulated) behind the link protocol.
pub struct BoardEngine<T: Transport> {
    board: Board<T>,
    name: &'static str,
    what: String,
}

impl<T: Transport> BoardEngine<T> {
    /// A connected board; `name` is the engine's command-line name, `what` its description.
    pub fn new(board: Board<T>, name: &'static str, what: impl Into<String>) -> BoardEngine<T> {
        BoardEngine {
            board,
            name,
            what: what.into(),
        }
    }
    pub fn board(&self) -> &Board<T> {
        &self.board
    }
}

impl<T: Transport> Engine for BoardEngine<T> {
    fn name(&self) -> &'static str {
        self.name
    }
    fn what(&self) -> String {
        self.what.clone()
    }
    fn config(&self) -> &AccelConfig {
        self.board.config()
    }
    fn run_layer(&mut self, layer: &FcLayer, x: &[i8]) -> Result<(Vec<i8>, RunStats), EngineError> {
        Ok(plan::run_layer(&mut self.board, layer, x)?)
    }
    fn link_stats(&self) -> Option<&LinkStats> {
        Some(self.board.stats())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smartdeal_core::random::{random_layer, RandomLayerSpec};

    #[test]
    fn golden_engine_is_the_golden_model_and_checks_its_input() {
        let cfg = AccelConfig::preset("tiny").unwrap();
        let layer = random_layer(&RandomLayerSpec::for_config(&cfg, 48, 10, 0.5, 7));
        let x: Vec<i8> = (0..96).map(|i| (i * 37 % 256) as u8 as i8).collect();
        let mut e = GoldenEngine::new(&cfg);
        let (y, _) = e.run_layer(&layer, &x).unwrap();
        assert_eq!(y, smartdeal_golden::run_layer(&cfg, &layer, &x));
        let err = e.run_layer(&layer, &x[..47]).unwrap_err();
        assert!(err.to_string().contains("not a multiple"), "{err}");
    }
}
