//! What a proof is asked for and what it answers: the engine, the options, the verdict and the
//! report. Its own module because every proof engine (`miter`, `case_split`, `abc`) speaks it.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

/// Verdict of an equivalence proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum ProofResult {
    /// Equivalent for every input (and, for sequential designs, every cycle from the all-zero state).
    Proved,
    /// Not equivalent: `counterexample` is the table yosys printed (time step, signal, values;
    /// `in_*` are the inputs, `gold_*` the reference outputs, `gate_*` the DUT outputs).
    Failed { counterexample: String },
}

/// Which prover to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum ProofEngine {
    /// ABC `iprove` for combinational miters, yosys `sat -tempinduct` for sequential ones.
    #[default]
    Auto,
    /// Yosys `sat` only (toolchain.md's flow).
    YosysSat,
    /// ABC `iprove` (combinational miters only).
    Abc,
}

/// Options of [`prove_equiv_with`].
#[derive(Debug, Clone)]
pub struct ProofOptions {
    pub engine: ProofEngine,
    /// Overall time limit for all tool runs of the proof (`None`: no limit).
    pub timeout: Option<Duration>,
    /// `-maxsteps` of `sat -tempinduct` (sequential designs). An induction that has not closed
    /// by then is reported as
    /// [`ToolError::ProofInconclusive`](crate::ToolError::ProofInconclusive). `None`: unbounded.
    pub max_induction_steps: Option<u32>,
}

impl Default for ProofOptions {
    fn default() -> Self {
        ProofOptions {
            engine: ProofEngine::Auto,
            timeout: None,
            max_induction_steps: Some(32),
        }
    }
}

/// Everything [`prove_equiv_with`] found out.
#[derive(Debug, Clone, Serialize)]
pub struct ProofReport {
    pub result: ProofResult,
    /// The engine that produced the verdict (never `Auto`).
    pub engine: ProofEngine,
    /// Whether the miter has state (flip-flops, latches, memories).
    pub sequential: bool,
    /// The state cells found, as `module/cell`.
    pub state_cells: Vec<String>,
    /// Logs of every tool run, in order.
    pub logs: Vec<PathBuf>,
    pub elapsed_secs: f64,
}
