//! What every Verilator harness of a generated design needs, written once: the generated
//! sources written into the content-addressed cache (one writer, one lock policy), the port
//! table taken from the IR's top module, and a clocked model that ticks and traces.

use crate::bridge::{BridgeError, BuildSpec, PortDir, PortSpec, Sim};
use sha2::{Digest, Sha256};
use smartdeal_gen::ir::{Dir, Module};
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

/// Serializes the writers of this process; the temporary folder's name (process and thread)
/// keeps other processes apart, and the final rename decides between racing writers.
static SRC_LOCK: Mutex<()> = Mutex::new(());

/// Writes a generated design into `root/src/<prefix>-<hash of files>/` unless it is there
/// already, and returns that folder. `files` are every `(name, text)` the folder holds (they
/// are hashed); `write` writes them into the folder it is given.
pub fn write_sources(
    prefix: &str,
    files: &[&(String, String)],
    root: &Path,
    write: impl FnOnce(&Path) -> std::io::Result<()>,
) -> Result<PathBuf, CosimError> {
    let mut h = Sha256::new();
    for (n, t) in files {
        h.update(n.as_bytes());
        h.update(t.as_bytes());
    }
    let hash: String = h
        .finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    let dir = root.join("src").join(format!("{prefix}-{hash}"));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CosimError::Io { path, source }
    };
    let _guard = SRC_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if !dir.join("files.f").exists() {
        let tmp = root.join("src").join(format!(
            ".tmp-{prefix}-{hash}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&tmp);
        write(&tmp).map_err(io(&tmp))?;
        if let Err(e) = std::fs::rename(&tmp, &dir) {
            // Another process won the race: its copy is identical.
            let _ = std::fs::remove_dir_all(&tmp);
            if !dir.join("files.f").exists() {
                return Err(io(&dir)(e));
            }
        }
    }
    Ok(dir)
}

/// The shim's port table: every port of the IR module `top`.
pub fn port_specs(top: &Module) -> Vec<PortSpec> {
    top.ports
        .iter()
        .map(|p| PortSpec {
            name: p.name.clone(),
            width: p.ty.width,
            dir: match p.dir {
                Dir::In => PortDir::Input,
                Dir::Out => PortDir::Output,
            },
        })
        .collect()
}

/// Verilates (cached) and loads `top` from `sources`, with tracing built in.
pub fn load(top: &Module, sources: Vec<PathBuf>, root: &Path) -> Result<Sim, CosimError> {
    let spec = BuildSpec {
        top: top.name.clone(),
        sources,
        ports: port_specs(top),
        trace: true,
    };
    Ok(Sim::from_spec(&spec, root)?)
}

/// A loaded model with one clock: ticks, counts cycles and writes an optional VCD.
pub struct Clocked {
    pub sim: Sim,
    clk: usize,
    time: u64,
    tracing: bool,
    /// Clock cycles simulated since the model was loaded.
    pub cycles: u64,
}

impl Clocked {
    /// `sim` clocked through its port `clk_i`.
    pub fn new(sim: Sim) -> Result<Clocked, CosimError> {
        let clk = sim.port_index("clk_i")?;
        Ok(Clocked {
            sim,
            clk,
            time: 0,
            tracing: false,
            cycles: 0,
        })
    }

    /// One clock cycle: inputs set before the call are sampled at the rising edge.
    pub fn tick(&mut self) {
        for level in [0, 1] {
            self.sim.set_idx(self.clk, level);
            self.sim.eval();
            self.time += 1;
            if self.tracing {
                self.sim.trace_dump(self.time);
            }
        }
        self.cycles += 1;
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
}

impl Drop for Clocked {
    fn drop(&mut self) {
        self.trace_close();
    }
}
