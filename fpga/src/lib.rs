//! FPGA and formal tool drivers for the SmartDeal accelerator.
//!
//! Every function takes Verilog file paths and a work directory; each tool run leaves its
//! script and log there, and errors quote the last lines of the log.
//!
//! * [`lint`] — `verilator --lint-only -Wall`;
//! * [`synth_ice40`] — Yosys `synth_ice40` with latch count and cell statistics;
//! * [`synth_generic_check`] — quick Yosys structural check (latches, multiple drivers, ...);
//! * [`prove_equiv`] — formal equivalence of a DUT against a reference module
//!   (e.g. `hdl/formal/sd_rebuild_ref.v`).
//!
//! Tools are found through the `VERILATOR`, `YOSYS` and `YOSYS_ABC` environment variables,
//! falling back to `PATH` (see [`tools`]).

pub mod formal;
pub mod lint;
pub mod synth;
pub mod tools;

pub use formal::{
    prove_equiv, prove_equiv_with, ProofEngine, ProofOptions, ProofReport, ProofResult,
};
pub use lint::{lint, lint_with, LintMessage, LintOptions, LintReport};
pub use synth::{
    synth_generic_check, synth_ice40, synth_ice40_with, CheckReport, Ice40Options, SynthReport,
};
pub use tools::{find_tool, Tool, ToolError};
