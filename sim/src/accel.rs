//! Drives the generated accelerator (`sd_top`) in Verilator through its documented host
//! interface (docs/interface.md), exactly as a host would: PUSH/WR_* commands to load the
//! buffers, START, wait for done, read the outputs back.

use crate::bridge;
use crate::harness::{self, Clocked, CosimError};
use smartdeal_core::image::{self, BandStart, RunImage, Word};
use smartdeal_core::protocol::op;
use smartdeal_core::{AccelConfig, FcLayer, ImageDims};
use smartdeal_gen::{generate, GenOptions};
use smartdeal_host::plan::{self, Device, PlanError, RunStats};
use smartdeal_host::{Engine, EngineError, Loaded, Slots};
use std::path::Path;
use std::sync::Arc;

/// The generated accelerator running in Verilator.
pub struct Accel {
    cfg: AccelConfig,
    m: Clocked,
    p: PortIdx,
    /// Layers loaded through [`Engine::load`], with their packed buffer images.
    loaded: Slots<Arc<(FcLayer, Vec<RunImage>)>>,
}

struct PortIdx {
    rst: usize,
    valid: usize,
    op: usize,
    addr: usize,
    data: usize,
    rd_addr: usize,
    rd_data: usize,
    done: usize,
    err: usize,
    cycles: usize,
}

impl Accel {
    /// Generates, verilates (cached) and loads the accelerator for `cfg`.
    pub fn new(cfg: &AccelConfig, opts: &GenOptions) -> Result<Accel, CosimError> {
        Self::with_cache(cfg, opts, &bridge::cache_root())
    }

    pub fn with_cache(
        cfg: &AccelConfig,
        opts: &GenOptions,
        cache_root: &Path,
    ) -> Result<Accel, CosimError> {
        cfg.validate()
            .map_err(|e| CosimError::Input(e.to_string()))?;
        let design = generate(cfg, opts);
        let dir = harness::write_sources(
            &cfg.name,
            &design
                .files
                .iter()
                .chain(&design.sim_models)
                .collect::<Vec<_>>(),
            cache_root,
            |d| design.write(d).map(drop),
        )?;
        // Simulation models of vendor primitives (the DSP blocks) first, then the design.
        let sources = design
            .sim_models
            .iter()
            .map(|(n, _)| dir.join("sim").join(n))
            .chain(design.files.iter().map(|(n, _)| dir.join(n)))
            .collect();
        let sim = harness::load(design.top_module(), sources, cache_root)?;
        let idx = |n: &str| sim.port_index(n);
        let p = PortIdx {
            rst: idx("rst_ni")?,
            valid: idx("cmd_valid_i")?,
            op: idx("cmd_op_i")?,
            addr: idx("cmd_addr_i")?,
            data: idx("cmd_data_i")?,
            rd_addr: idx("rd_addr_i")?,
            rd_data: idx("rd_data_o")?,
            done: idx("done_o")?,
            err: idx("err_o")?,
            cycles: idx("cycles_o")?,
        };
        let mut a = Accel {
            cfg: cfg.clone(),
            m: Clocked::new(sim)?,
            p,
            loaded: Slots::default(),
        };
        a.reset();
        Ok(a)
    }

    pub fn config(&self) -> &AccelConfig {
        &self.cfg
    }

    /// Starts writing a VCD of everything that follows.
    pub fn trace_to(&mut self, path: &Path) -> Result<(), CosimError> {
        self.m.trace_to(path)
    }

    /// Finishes the VCD.
    pub fn trace_close(&mut self) {
        self.m.trace_close();
    }

    fn tick(&mut self) {
        self.m.tick();
    }

    /// Asynchronous reset for two cycles.
    pub fn reset(&mut self) {
        for (i, v) in [
            (self.p.valid, 0),
            (self.p.op, 0),
            (self.p.addr, 0),
            (self.p.data, 0),
            (self.p.rd_addr, 0),
            (self.p.rst, 0),
        ] {
            self.m.sim.set_idx(i, v);
        }
        self.m.sim.eval();
        self.tick();
        self.tick();
        self.m.sim.set_idx(self.p.rst, 1);
        self.tick();
    }

    /// Issues one command (one cycle).
    fn cmd(&mut self, opcode: u32, addr: u32, data: u32) {
        self.m.sim.set_idx(self.p.valid, 1);
        self.m.sim.set_idx(self.p.op, u64::from(opcode));
        self.m.sim.set_idx(self.p.addr, u64::from(addr));
        self.m.sim.set_idx(self.p.data, u64::from(data));
        self.tick();
        self.m.sim.set_idx(self.p.valid, 0);
    }

    /// Loads one buffer word: PUSH its 32-bit chunks most significant first, then WR_*.
    fn write_word(&mut self, opcode: u32, addr: usize, w: &Word) {
        for &c in w.chunks.iter().rev() {
            self.cmd(op::PUSH, 0, c);
        }
        self.cmd(opcode, addr as u32, 0);
    }

    fn check_err(&mut self, during: &str) -> Result<(), CosimError> {
        if self.m.sim.get_idx(self.p.err) != 0 {
            return Err(CosimError::Device(during.to_string()));
        }
        Ok(())
    }

    /// Runs a layer on `x` (`[tokens][inputs]`, row-major) and returns `[tokens][outputs]`,
    /// planned by [`plan::run_layer`]; `total_cycles` counts every simulated clock, loading
    /// and read-back included.
    pub fn run_layer(
        &mut self,
        layer: &FcLayer,
        x: &[i8],
    ) -> Result<(Vec<i8>, RunStats), CosimError> {
        self.counting_cycles(|a| plan::run_layer(a, layer, x))
    }

    /// `run` with `RunStats::total_cycles` set to the clocks it simulated.
    fn counting_cycles(
        &mut self,
        run: impl FnOnce(&mut Accel) -> Result<(Vec<i8>, RunStats), CosimError>,
    ) -> Result<(Vec<i8>, RunStats), CosimError> {
        let start_cycles = self.m.cycles;
        let (y, mut stats) = run(self)?;
        stats.total_cycles = self.m.cycles - start_cycles;
        Ok((y, stats))
    }
}

impl From<PlanError> for CosimError {
    fn from(e: PlanError) -> CosimError {
        match e {
            PlanError::Layer(e) => CosimError::Layer(e),
            PlanError::Input(why) => CosimError::Input(why),
        }
    }
}

/// Input and layer problems are the planner's, as on every engine; the rest is the simulator's.
impl From<CosimError> for EngineError {
    fn from(e: CosimError) -> EngineError {
        match e {
            CosimError::Input(why) => EngineError::Plan(PlanError::Input(why)),
            CosimError::Layer(e) => EngineError::Plan(PlanError::Layer(e)),
            e => EngineError::Other(Box::new(e)),
        }
    }
}

impl Device for Accel {
    type Error = CosimError;

    fn config(&self) -> &AccelConfig {
        &self.cfg
    }

    fn load_activations(&mut self, at: u32, words: &[Word]) -> Result<(), CosimError> {
        for (a, w) in words.iter().enumerate() {
            self.write_word(op::WR_ACT, at as usize + a, w);
        }
        Ok(())
    }

    /// Loads the run's buffers.
    fn load_run(&mut self, run: &RunImage) -> Result<(), CosimError> {
        for (i, w) in run.coef.iter().enumerate() {
            self.write_word(op::WR_COEF, i, w);
        }
        for (i, w) in run.basis.iter().enumerate() {
            self.write_word(op::WR_B, i, w);
        }
        if self.cfg.has_wshift() {
            for (i, w) in run.wshift.iter().enumerate() {
                self.write_word(op::WR_WSHIFT, i, w);
            }
        }
        for (i, w) in run.oparam.iter().enumerate() {
            self.write_word(op::WR_OPARAM, i, w);
        }
        self.check_err("buffer loading")
    }

    /// Starts the loaded run (PUSHing a band run's parameters first) and waits for done.
    fn start(&mut self, run: &RunImage, band: Option<&BandStart>) -> Result<u64, CosimError> {
        if let Some(b) = band {
            for &c in b.word(&self.cfg).chunks.iter().rev() {
                self.cmd(op::PUSH, 0, c);
            }
        }
        let last = (run.coef.len() - 1) as u32;
        self.cmd(op::START, last, image::start_data(run.relu, band));
        // Generous bound: one entry per cycle plus pipeline and drain latency.
        let passes = u64::from(band.map_or(1, |b| b.groups));
        let limit =
            passes * (run.coef.len() as u64 + 4 * u64::from(self.cfg.lanes * self.cfg.slots)) + 64;
        let mut waited = 0;
        while self.m.sim.get_idx(self.p.done) == 0 {
            if waited > limit {
                return Err(CosimError::Timeout {
                    cycles: waited,
                    entries: run.coef.len(),
                });
            }
            self.tick();
            waited += 1;
        }
        self.check_err("the run")?;
        Ok(self.m.sim.get_idx(self.p.cycles))
    }

    fn read_outputs(&mut self, n: u32) -> Result<Vec<i8>, CosimError> {
        let mut y = Vec::with_capacity(n as usize);
        // The output buffer's read data comes a cycle after the address, two with the extra
        // stages (docs/interface.md).
        let latency = 1 + u32::from(self.cfg.extra_stages);
        for i in 0..n {
            self.m.sim.set_idx(self.p.rd_addr, u64::from(i));
            for _ in 0..latency {
                self.tick();
            }
            y.push(self.m.sim.get_idx(self.p.rd_data) as u8 as i8);
        }
        Ok(y)
    }
}

impl Engine for Accel {
    fn name(&self) -> &'static str {
        "verilator"
    }
    fn what(&self) -> String {
        "the simulated accelerator".into()
    }
    fn config(&self) -> &AccelConfig {
        &self.cfg
    }
    fn load(&mut self, layer: &FcLayer) -> Result<Loaded, EngineError> {
        let runs = plan::pack_for(&self.cfg, layer).map_err(PlanError::from)?;
        Ok(self.loaded.insert(Arc::new((layer.clone(), runs))))
    }
    fn unload(&mut self, layer: Loaded) {
        self.loaded.remove(layer);
    }
    fn run(&mut self, l: Loaded, x: &[i8]) -> Result<(Vec<i8>, RunStats), EngineError> {
        let entry = Arc::clone(self.loaded.get(l)?);
        let (layer, runs) = &*entry;
        Ok(self.counting_cycles(|a| plan::run_packed(a, layer, runs, x))?)
    }
    fn run_images(
        &mut self,
        l: Loaded,
        x: &[i8],
        dims: ImageDims,
    ) -> Result<(Vec<i8>, RunStats), EngineError> {
        let entry = Arc::clone(self.loaded.get(l)?);
        let (layer, runs) = &*entry;
        Ok(self.counting_cycles(|a| plan::run_images(a, layer, runs, x, dims))?)
    }
}
