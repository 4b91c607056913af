//! The typed result of a build ([`BuildReport`], also `report.json`) and its parts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::board::Board;
use crate::tools::{self, ToolError};

/// How a build that ran to the end came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuildStatus {
    /// Placed, routed, timing met, bitstream written.
    Ok,
    /// Placed and routed, but a clock misses its target: nextpnr refused (no
    /// `--timing-allow-fail`) and no bitstream was packed. [`BuildReport::clocks`] holds the
    /// achieved Fmax; the routed layout (`top.asc` / `top.config`) stays in the work
    /// directory for inspection.
    TimingFailed,
    /// Place and route stopped because the design needs more of some resource than the device
    /// has (nextpnr: "no BELs remaining to implement cell type ..." or "Unable to find legal
    /// placement ... at utilisation limit"). [`BuildReport::utilization`] shows the demand (from
    /// the log's table, printed before placement); no bitstream.
    DoesNotFit,
}

/// Used and available count of one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    /// Where the numbers come from: the nextpnr bel type (`ICESTORM_LC`, `MULT18X18D`, ...).
    pub kind: String,
    pub used: u64,
    pub available: u64,
}

impl Resource {
    /// Used fraction in percent (0 when nothing is available).
    pub fn percent(&self) -> f64 {
        if self.available == 0 {
            0.0
        } else {
            100.0 * self.used as f64 / self.available as f64
        }
    }
}

/// The resources that matter for sizing the accelerator, from nextpnr's utilization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Utilization {
    /// iCE40: logic cells (`ICESTORM_LC`: LUT4 + carry + FF each). ECP5: LUT4s (`TRELLIS_COMB`).
    pub logic: Resource,
    /// Flip-flops. ECP5: `TRELLIS_FF`. iCE40 has no separate FF bel: used = yosys' `SB_DFF*`
    /// cell count, available = the logic cells (one FF each); `kind` says so.
    pub ff: Resource,
    /// Block RAM: `ICESTORM_RAM` (SB_RAM40_4K, 4 kbit) / `DP16KD` (18 kbit).
    pub bram: Resource,
    /// UP5K single-port RAM (`ICESTORM_SPRAM`, SB_SPRAM256KA, 256 kbit); `None` on ECP5.
    pub spram: Option<Resource>,
    /// DSP: `ICESTORM_DSP` (SB_MAC16) / `MULT18X18D`.
    pub dsp: Resource,
    /// IO pins: `SB_IO` / `TRELLIS_IO`.
    pub io: Resource,
}

impl Utilization {
    /// Every resource with its name, for checks and printing.
    pub fn all(&self) -> Vec<(&'static str, &Resource)> {
        let mut v = vec![
            ("logic", &self.logic),
            ("ff", &self.ff),
            ("bram", &self.bram),
        ];
        if let Some(s) = &self.spram {
            v.push(("spram", s));
        }
        v.push(("dsp", &self.dsp));
        v.push(("io", &self.io));
        v
    }
}

/// Post-route Fmax of one clock (the last "Max frequency for clock" line nextpnr printed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClockTiming {
    /// nextpnr's clock net name (e.g. `clk_i$SB_IO_IN_$glb_clk`, `clk_i$TRELLIS_IO_IN`).
    pub clock: String,
    pub achieved_mhz: f64,
    /// The constraint nextpnr checked against.
    pub target_mhz: f64,
    pub passed: bool,
}

/// Tool versions as the tools print them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolVersions {
    /// `yosys -V`.
    pub yosys: String,
    /// `nextpnr-* --version`.
    pub nextpnr: String,
    /// `ecppack --version`; icepack has no version option, so the Debian package version
    /// (`dpkg-query`) or "unknown".
    pub packer: String,
}

/// Wall time of one flow step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepTime {
    /// `synth`, `pnr` or `pack`.
    pub step: String,
    /// The program that ran.
    pub program: String,
    pub seconds: f64,
    /// The step's log in the work directory.
    pub log: PathBuf,
}

/// The packed bitstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bitstream {
    pub path: PathBuf,
    pub bytes: u64,
}

/// Result of [`build`](super::build), also written as `<work>/report.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildReport {
    pub board: Board,
    pub device: String,
    pub package: String,
    pub top: String,
    pub status: BuildStatus,
    /// The `--freq` target in MHz.
    pub target_mhz: f64,
    /// Post-route Fmax per clock.
    pub clocks: Vec<ClockTiming>,
    /// Every clock met its target (what nextpnr's exit status said).
    pub timing_passed: bool,
    pub utilization: Utilization,
    /// nextpnr's whole utilization table (bel type → used/available).
    pub bels: BTreeMap<String, Resource>,
    /// Yosys cell counts of the synthesized netlist by type.
    pub synth_cells: BTreeMap<String, u64>,
    pub versions: ToolVersions,
    pub steps: Vec<StepTime>,
    /// `None` when timing failed (nothing is packed then).
    pub bitstream: Option<Bitstream>,
    pub work_dir: PathBuf,
}

impl BuildReport {
    /// Timing met and a bitstream was written.
    pub fn passed(&self) -> bool {
        self.status == BuildStatus::Ok
    }

    /// The lowest achieved Fmax over all clocks (`None` for a design without clocks).
    pub fn fmax_mhz(&self) -> Option<f64> {
        self.clocks
            .iter()
            .map(|c| c.achieved_mhz)
            .min_by(|a, b| a.total_cmp(b))
    }

    /// Seconds spent in `step` (`synth`, `pnr`, `pack`), if it ran.
    pub fn step_seconds(&self, step: &str) -> Option<f64> {
        self.steps
            .iter()
            .find(|s| s.step == step)
            .map(|s| s.seconds)
    }

    /// Reads a `report.json` written by [`build`](super::build).
    pub fn read(path: &Path) -> Result<BuildReport, ToolError> {
        let text = tools::read_text(path)?;
        serde_json::from_str(&text).map_err(|e| {
            ToolError::InvalidInput(format!("{} is not a build report: {e}", path.display()))
        })
    }

    /// A few human-readable lines (utilization, Fmax, times).
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} ({} {}), top {}: {:?}, target {} MHz\n",
            self.board, self.device, self.package, self.top, self.status, self.target_mhz
        );
        for c in &self.clocks {
            s.push_str(&format!(
                "  Fmax {}: {:.2} MHz ({} at {} MHz)\n",
                c.clock,
                c.achieved_mhz,
                if c.passed { "PASS" } else { "FAIL" },
                c.target_mhz
            ));
        }
        for (name, r) in self.utilization.all() {
            s.push_str(&format!(
                "  {name:<5} {:>6} / {:<6} {:>5.1} %  ({})\n",
                r.used,
                r.available,
                r.percent(),
                r.kind
            ));
        }
        for st in &self.steps {
            s.push_str(&format!(
                "  {:<5} {:>7.2} s  {}\n",
                st.step, st.seconds, st.program
            ));
        }
        if let Some(b) = &self.bitstream {
            s.push_str(&format!(
                "  bitstream {} ({} bytes)\n",
                b.path.display(),
                b.bytes
            ));
        }
        s
    }
}
