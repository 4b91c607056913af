//! FPGA and formal tool drivers for the SmartDeal accelerator.
//!
//! Every function takes Verilog file paths and a work directory; each tool run leaves its
//! script and log there, and errors quote the last lines of the log.
//!
//! * [`lint`] — `verilator --lint-only -Wall`;
//! * [`synth_ice40`] — Yosys `synth_ice40` with latch count and cell statistics;
//! * [`synth_generic_check`] — quick Yosys structural check (latches, multiple drivers, ...);
//! * [`prove_equiv`] — formal equivalence of a DUT against a reference module
//!   (e.g. `hdl/formal/sd_rebuild_ref.v`);
//! * [`prove_equiv_split`] — the same proof split into cases (one per value of chosen input
//!   fields), each decided by a BDD; [`rebuild_proof`] holds the rebuild lane's split,
//!   [`factor_proof`] the factorized dataflow's per-row update's.
//!
//! Tools are found through the `VERILATOR`, `YOSYS` and `YOSYS_ABC` environment variables,
//! falling back to `PATH` (see [`tools`]).

pub mod factor_proof;
pub mod flow;
pub mod formal;
pub mod lint;
pub mod rebuild_proof;
pub mod synth;
pub mod tools;

pub use factor_proof::{prove_factor_row, FactorLayout};
pub use flow::{
    build, Bitstream, Board, BuildOptions, BuildReport, BuildStatus, ClockTiming, Family, Resource,
    StepTime, ToolVersions, Utilization,
};
pub use formal::{
    prove_equiv, prove_equiv_split, prove_equiv_with, BddOrder, CaseSplit, ProofEngine,
    ProofOptions, ProofReport, ProofResult, SplitCase, SplitField, SplitOptions, SplitReport,
};
pub use lint::{lint, lint_with, LintMessage, LintOptions, LintReport};
pub use rebuild_proof::{prove_rebuild, ColumnCoverage, RebuildLayout, RebuildProof};
pub use synth::{
    synth_generic_check, synth_ice40, synth_ice40_with, CheckReport, Ice40Options, SynthReport,
};
pub use tools::{find_tool, Tool, ToolError};
