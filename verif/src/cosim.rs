//! Drives the generated accelerator (`sd_top`) in Verilator through its documented host
//! interface (docs/interface.md), exactly as a host would: PUSH/WR_* commands to load the
//! buffers, START, wait for done, read the outputs back.

use crate::bridge::{self, BridgeError, BuildSpec, PortDir, PortSpec, Sim};
use sha2::{Digest, Sha256};
use smartdeal_core::image::{check_activations, pack_activations, RunImage, Word};
use smartdeal_core::{AccelConfig, FcLayer};
use smartdeal_gen::hw::host_if::op;
use smartdeal_gen::{generate, Design, GenOptions};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Something went wrong simulating.
#[derive(Debug, thiserror::Error)]
pub enum CosimError {
    #[error(transparent)]
    Bridge(#[from] BridgeError),
    #[error("writing the generated Verilog to {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Layer(#[from] smartdeal_core::LayerError),
    #[error("{0}")]
    Input(String),
    #[error("the accelerator did not finish within {cycles} cycles (run of {entries} entries)")]
    Timeout { cycles: u64, entries: usize },
    #[error("the accelerator flagged a command error (err_o) during {0}")]
    Device(String),
}

/// Cycle counts of one layer execution.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunStats {
    /// Cycles the accelerator reported busy (cycles_o), summed over runs and tokens.
    pub run_cycles: u64,
    /// All simulated clock cycles, including buffer loading and read-back.
    pub total_cycles: u64,
    /// Accelerator runs (a layer is split when it does not fit the buffers).
    pub runs: u64,
    /// Stream entries carrying a present row.
    pub useful_entries: u64,
    /// All stream entries (present rows plus drain-rule padding).
    pub entries: u64,
}

static SRC_LOCK: Mutex<()> = Mutex::new(());

/// Writes the design into a content-addressed folder under `cache_root` and returns the files.
fn write_sources(
    design: &Design,
    cfg: &AccelConfig,
    cache_root: &Path,
) -> Result<Vec<PathBuf>, CosimError> {
    let mut h = Sha256::new();
    for (n, t) in &design.files {
        h.update(n.as_bytes());
        h.update(t.as_bytes());
    }
    let hash: String = h
        .finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    let dir = cache_root.join("src").join(format!("{}-{hash}", cfg.name));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CosimError::Io { path, source }
    };
    let _guard = SRC_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if !dir.join("files.f").exists() {
        let tmp =
            cache_root
                .join("src")
                .join(format!(".tmp-{}-{hash}-{}", cfg.name, std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        design.write(&tmp).map_err(io(&tmp))?;
        if let Err(e) = std::fs::rename(&tmp, &dir) {
            // Another process won the race: its copy is identical.
            let _ = std::fs::remove_dir_all(&tmp);
            if !dir.join("files.f").exists() {
                return Err(io(&dir)(e));
            }
        }
    }
    Ok(design.files.iter().map(|(n, _)| dir.join(n)).collect())
}

/// The generated accelerator running in Verilator.
pub struct Accel {
    cfg: AccelConfig,
    sim: Sim,
    time: u64,
    tracing: bool,
    p: PortIdx,
    total_cycles: u64,
}

struct PortIdx {
    clk: usize,
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
        let sources = write_sources(&design, cfg, cache_root)?;
        let ports: Vec<PortSpec> = design
            .top_module()
            .ports
            .iter()
            .map(|p| PortSpec {
                name: p.name.clone(),
                width: p.ty.width,
                dir: match p.dir {
                    smartdeal_gen::ir::Dir::In => PortDir::Input,
                    smartdeal_gen::ir::Dir::Out => PortDir::Output,
                },
            })
            .collect();
        let spec = BuildSpec {
            top: design.top.clone(),
            sources,
            ports,
            trace: true,
        };
        let sim = Sim::from_spec(&spec, cache_root)?;
        let idx = |n: &str| sim.port_index(n);
        let p = PortIdx {
            clk: idx("clk_i")?,
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
            sim,
            time: 0,
            tracing: false,
            p,
            total_cycles: 0,
        };
        a.reset();
        Ok(a)
    }

    pub fn config(&self) -> &AccelConfig {
        &self.cfg
    }

    /// Starts writing a VCD of everything that follows.
    pub fn trace_to(&mut self, path: &Path) -> Result<(), CosimError> {
        self.sim.trace_open(path)?;
        self.tracing = true;
        self.sim.trace_dump(self.time);
        Ok(())
    }

    /// Finishes the VCD.
    pub fn trace_close(&mut self) {
        if self.tracing {
            self.sim.trace_close();
            self.tracing = false;
        }
    }

    /// One clock cycle: inputs set before the call are sampled at the rising edge.
    fn tick(&mut self) {
        self.sim.set_idx(self.p.clk, 0);
        self.sim.eval();
        self.time += 1;
        if self.tracing {
            self.sim.trace_dump(self.time);
        }
        self.sim.set_idx(self.p.clk, 1);
        self.sim.eval();
        self.time += 1;
        if self.tracing {
            self.sim.trace_dump(self.time);
        }
        self.total_cycles += 1;
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
            self.sim.set_idx(i, v);
        }
        self.sim.eval();
        self.tick();
        self.tick();
        self.sim.set_idx(self.p.rst, 1);
        self.tick();
    }

    /// Issues one command (one cycle).
    fn cmd(&mut self, opcode: u32, addr: u32, data: u32) {
        self.sim.set_idx(self.p.valid, 1);
        self.sim.set_idx(self.p.op, u64::from(opcode));
        self.sim.set_idx(self.p.addr, u64::from(addr));
        self.sim.set_idx(self.p.data, u64::from(data));
        self.tick();
        self.sim.set_idx(self.p.valid, 0);
    }

    /// Loads one buffer word: PUSH its 32-bit chunks most significant first, then WR_*.
    fn write_word(&mut self, opcode: u32, addr: usize, w: &Word) {
        for &c in w.chunks.iter().rev() {
            self.cmd(op::PUSH, 0, c);
        }
        self.cmd(opcode, addr as u32, 0);
    }

    fn check_err(&mut self, during: &str) -> Result<(), CosimError> {
        if self.sim.get_idx(self.p.err) != 0 {
            return Err(CosimError::Device(during.to_string()));
        }
        Ok(())
    }

    /// Executes one run whose activations are already loaded; returns the run's outputs
    /// (`run.channels` values) and the cycles the accelerator reported.
    fn run(&mut self, run: &RunImage) -> Result<(Vec<i8>, u64), CosimError> {
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
        self.check_err("buffer loading")?;
        let last = (run.coef.len() - 1) as u32;
        self.cmd(op::START, last, u32::from(run.relu));
        // Generous bound: one entry per cycle plus pipeline and drain latency.
        let limit = run.coef.len() as u64 + 4 * u64::from(self.cfg.lanes) + 64;
        let mut waited = 0;
        while self.sim.get_idx(self.p.done) == 0 {
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
        let cycles = self.sim.get_idx(self.p.cycles);
        let mut y = Vec::with_capacity(run.channels as usize);
        for i in 0..run.channels {
            self.sim.set_idx(self.p.rd_addr, u64::from(i));
            self.tick();
            y.push(self.sim.get_idx(self.p.rd_data) as u8 as i8);
        }
        Ok((y, cycles))
    }

    /// Runs a layer on `x` (`[tokens][inputs]`, row-major) and returns `[tokens][outputs]`.
    pub fn run_layer(
        &mut self,
        layer: &FcLayer,
        x: &[i8],
    ) -> Result<(Vec<i8>, RunStats), CosimError> {
        let n = layer.inputs as usize;
        if x.is_empty() || !x.len().is_multiple_of(n) {
            return Err(CosimError::Input(format!(
                "activations have {} values, not a multiple of the layer's {n} inputs",
                x.len()
            )));
        }
        check_activations(&self.cfg, x).map_err(CosimError::Input)?;
        let runs = crate::golden::pack_for(&self.cfg, layer)?;
        let start_cycles = self.total_cycles;
        let mut stats = RunStats::default();
        let mut y = vec![0i8; x.len() / n * layer.outputs as usize];
        for (t, xt) in x.chunks(n).enumerate() {
            let acts = pack_activations(&self.cfg, layer, xt);
            let mut loaded = None;
            for run in &runs {
                // Input-tiled layers read one chunk of rows per run (RunImage::act_rows).
                if loaded.as_ref() != Some(&run.act_rows) {
                    let rows = run.act_rows.start as usize..run.act_rows.end as usize;
                    for (a, w) in acts[rows].iter().enumerate() {
                        self.write_word(op::WR_ACT, a, w);
                    }
                    loaded = Some(run.act_rows.clone());
                }
                let (yr, cycles) = self.run(run)?;
                let base = t * layer.outputs as usize + run.first_channel as usize;
                y[base..base + yr.len()].copy_from_slice(&yr);
                stats.run_cycles += cycles;
                stats.runs += 1;
                stats.entries += run.coef.len() as u64;
                stats.useful_entries += u64::from(run.useful_entries);
            }
        }
        stats.total_cycles = self.total_cycles - start_cycles;
        Ok((y, stats))
    }
}

impl Drop for Accel {
    fn drop(&mut self) {
        self.trace_close();
    }
}
