//! One way to say "run this compressed layer on that engine": the [`Engine`] trait, with the
//! golden model ([`GoldenEngine`]) and a board over the link protocol ([`BoardEngine`], a real
//! one on a serial port or the simulated one) implemented here; the Verilator model of the
//! accelerator implements it in `smartdeal-sim`. `smartdeal run` and the network runner run
//! layers through it; the engines that drive the host interface share `crate::plan`.

use crate::activity::Counter;
use crate::link::{Board, LinkError, LinkStats, Transport};
use crate::plan::{self, PlanError, RunStats};
use smartdeal_core::image::RunImage;
use smartdeal_core::{AccelConfig, FcLayer, ImageDims};
use smartdeal_golden::PreparedLayer;
use std::collections::HashMap;

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

/// A layer loaded into an engine by [`Engine::load`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Loaded(usize);

/// What an engine keeps per loaded layer, by [`Loaded`] handle.
#[derive(Debug, Clone)]
pub struct Slots<T>(Vec<Option<T>>);

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Slots(Vec::new())
    }
}

impl<T> Slots<T> {
    pub fn insert(&mut self, v: T) -> Loaded {
        self.0.push(Some(v));
        Loaded(self.0.len() - 1)
    }
    /// The entry of `l`; an unloaded handle is an input error. Handles belong to the engine
    /// that gave them out (another engine's handle may name one of this engine's layers).
    pub fn get(&self, l: Loaded) -> Result<&T, EngineError> {
        self.0
            .get(l.0)
            .and_then(Option::as_ref)
            .ok_or_else(|| PlanError::Input(format!("layer handle {} is not loaded", l.0)).into())
    }
    /// [`Slots::get`], mutable.
    pub fn get_mut(&mut self, l: Loaded) -> Result<&mut T, EngineError> {
        self.0
            .get_mut(l.0)
            .and_then(Option::as_mut)
            .ok_or_else(|| PlanError::Input(format!("layer handle {} is not loaded", l.0)).into())
    }
    pub fn remove(&mut self, l: Loaded) {
        if let Some(slot) = self.0.get_mut(l.0) {
            *slot = None;
        }
    }
}

/// Something that computes a compressed layer's int8 outputs for a configuration: load a
/// layer once (checked against the configuration and prepared: the golden model rebuilds its
/// weights, a host-interface engine packs its buffer images), run it on any number of
/// activation batches.
pub trait Engine {
    /// The engine's name on the command line (`golden`, `verilator`, `sim-board`, `board`).
    fn name(&self) -> &'static str;
    /// What runs the layers, for messages ("the simulated accelerator", "the board on …").
    fn what(&self) -> String;
    /// The configuration the engine computes with.
    fn config(&self) -> &AccelConfig;
    /// Checks that `layer` fits the configuration and prepares it for [`Engine::run`].
    fn load(&mut self, layer: &FcLayer) -> Result<Loaded, EngineError>;
    /// Forgets a loaded layer.
    fn unload(&mut self, layer: Loaded);
    /// Runs a loaded layer on `x` (`[tokens][inputs]`, row-major): `[tokens][outputs]` and the
    /// counts the engine can observe.
    fn run(&mut self, layer: Loaded, x: &[i8]) -> Result<(Vec<i8>, RunStats), EngineError>;
    /// Runs a loaded convolution layer on `dims` images `x` (`[N][C][H][W]`, row-major):
    /// `[N][outputs][H'][W']` and the counts.
    fn run_images(
        &mut self,
        layer: Loaded,
        x: &[i8],
        dims: ImageDims,
    ) -> Result<(Vec<i8>, RunStats), EngineError>;
    /// Loads, runs and unloads `layer`: one run of a layer.
    fn run_layer(&mut self, layer: &FcLayer, x: &[i8]) -> Result<(Vec<i8>, RunStats), EngineError> {
        let l = self.load(layer)?;
        let out = self.run(l, x);
        self.unload(l);
        out
    }
    /// Loads, runs on images and unloads a convolution `layer`.
    fn run_layer_images(
        &mut self,
        layer: &FcLayer,
        x: &[i8],
        dims: ImageDims,
    ) -> Result<(Vec<i8>, RunStats), EngineError> {
        let l = self.load(layer)?;
        let out = self.run_images(l, x, dims);
        self.unload(l);
        out
    }
    /// The link's traffic counters, for engines behind the link protocol.
    fn link_stats(&self) -> Option<&LinkStats> {
        None
    }
}

/// The bit-exact golden model: no hardware. A loaded layer keeps its rebuilt weights, so a
/// network that runs the same layers sentence after sentence rebuilds them once. Its counts
/// (cycles, entries, bytes) come from a dry run of the planner against the documented cycle
/// model ([`crate::activity::Counter`]): what the accelerator would count.
#[derive(Debug, Clone)]
pub struct GoldenEngine {
    cfg: AccelConfig,
    loaded: Slots<GoldenLayer>,
}

/// A layer loaded into the golden engine: its rebuilt weights, its buffer images, and the
/// counts of the input shapes seen so far (they depend on the shape only: `[T]` tokens, or the
/// images' `(N, H, W)`), so a network that runs sentence after sentence dry-runs each shape
/// once.
#[derive(Debug, Clone)]
struct GoldenLayer {
    layer: FcLayer,
    prepared: PreparedLayer,
    runs: Vec<RunImage>,
    counts: HashMap<(usize, usize, usize), RunStats>,
}

impl GoldenEngine {
    pub fn new(cfg: &AccelConfig) -> GoldenEngine {
        GoldenEngine {
            cfg: cfg.clone(),
            loaded: Slots::default(),
        }
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
    fn load(&mut self, layer: &FcLayer) -> Result<Loaded, EngineError> {
        let runs = plan::pack_for(&self.cfg, layer).map_err(PlanError::from)?;
        Ok(self.loaded.insert(GoldenLayer {
            layer: layer.clone(),
            prepared: PreparedLayer::new(&self.cfg, layer),
            runs,
            counts: HashMap::new(),
        }))
    }
    fn unload(&mut self, layer: Loaded) {
        self.loaded.remove(layer);
    }
    fn run(&mut self, l: Loaded, x: &[i8]) -> Result<(Vec<i8>, RunStats), EngineError> {
        let cfg = &self.cfg;
        let g = self.loaded.get_mut(l)?;
        plan::check_input(cfg, &g.layer, x)?;
        let key = (x.len() / g.layer.inputs as usize, 0, 0);
        let stats = match g.counts.get(&key) {
            Some(s) => s.clone(),
            None => {
                let (_, s) = plan::run_packed(&mut Counter::new(cfg), &g.layer, &g.runs, x)?;
                g.counts.entry(key).or_insert(s).clone()
            }
        };
        Ok((g.prepared.run(x), stats))
    }
    fn run_images(
        &mut self,
        l: Loaded,
        x: &[i8],
        dims: ImageDims,
    ) -> Result<(Vec<i8>, RunStats), EngineError> {
        let cfg = &self.cfg;
        let g = self.loaded.get_mut(l)?;
        let (conv, _) = plan::check_images(cfg, &g.layer, x, dims)?;
        let key = (dims.images, dims.height, dims.width);
        let stats = match g.counts.get(&key) {
            Some(s) => s.clone(),
            None => {
                let mut dev = Counter::new(cfg);
                let (_, s) = plan::run_images(&mut dev, &g.layer, &g.runs, x, dims)?;
                g.counts.entry(key).or_insert(s).clone()
            }
        };
        Ok((g.prepared.run_conv(&conv, x, dims), stats))
    }
}

/// A board (real or simulated) behind the link protocol.
pub struct BoardEngine<T: Transport> {
    board: Board<T>,
    name: &'static str,
    what: String,
    loaded: Slots<(FcLayer, Vec<RunImage>)>,
}

impl<T: Transport> BoardEngine<T> {
    /// A connected board; `name` is the engine's command-line name, `what` its description.
    pub fn new(board: Board<T>, name: &'static str, what: impl Into<String>) -> BoardEngine<T> {
        BoardEngine {
            board,
            name,
            what: what.into(),
            loaded: Slots::default(),
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
    fn load(&mut self, layer: &FcLayer) -> Result<Loaded, EngineError> {
        let runs = plan::pack_for(self.board.config(), layer).map_err(PlanError::from)?;
        Ok(self.loaded.insert((layer.clone(), runs)))
    }
    fn unload(&mut self, layer: Loaded) {
        self.loaded.remove(layer);
    }
    fn run(&mut self, l: Loaded, x: &[i8]) -> Result<(Vec<i8>, RunStats), EngineError> {
        let (layer, runs) = self.loaded.get(l)?;
        Ok(plan::run_packed(&mut self.board, layer, runs, x)?)
    }
    fn run_images(
        &mut self,
        l: Loaded,
        x: &[i8],
        dims: ImageDims,
    ) -> Result<(Vec<i8>, RunStats), EngineError> {
        let (layer, runs) = self.loaded.get(l)?;
        Ok(plan::run_images(&mut self.board, layer, runs, x, dims)?)
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
        // Two loaded layers of the same name stay apart; a run after unloading is an error.
        let other = random_layer(&RandomLayerSpec::for_config(&cfg, 48, 10, 0.5, 8));
        assert_eq!(other.name, layer.name);
        let (a, b) = (e.load(&layer).unwrap(), e.load(&other).unwrap());
        assert_eq!(e.run(a, &x).unwrap().0, y);
        let y2 = e.run(b, &x).unwrap().0;
        assert_eq!(y2, smartdeal_golden::run_layer(&cfg, &other, &x));
        assert_ne!(y2, y);
        let err = e.run(a, &x[..47]).unwrap_err();
        assert!(err.to_string().contains("not a multiple"), "{err}");
        e.unload(a);
        let err = e.run(a, &x).unwrap_err();
        assert!(err.to_string().contains("not loaded"), "{err}");
    }
}
