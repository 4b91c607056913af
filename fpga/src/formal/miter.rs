//! The miter and its SAT proof: `equiv_prepare.ys` builds the miter of the two designs, and
//! [`prove_equiv_with`] decides it with yosys `sat` or hands it to the ABC engine
//! (`super::abc`); the name checks and the reading of a `sat` verdict (the scripts' text is
//! `super::scripts`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::abc::prove_with_abc;
use super::log::counterexample_table;
use super::scripts::{prepare_script, sat_script};
use super::verdict::{ProofEngine, ProofOptions, ProofReport, ProofResult};
use crate::tools::{self, Tool, ToolError, YosysRun};

/// Proves `dut_top` (from `dut_files`) equivalent to `ref_top` (from `ref_files`, with
/// `ref_params` applied by `chparam`) with the default options. See the [`formal`](super)
/// module documentation.
pub fn prove_equiv(
    dut_files: &[PathBuf],
    dut_top: &str,
    ref_files: &[PathBuf],
    ref_top: &str,
    ref_params: &[(String, i64)],
    work: &Path,
) -> Result<ProofResult, ToolError> {
    prove_equiv_with(
        dut_files,
        dut_top,
        ref_files,
        ref_top,
        ref_params,
        work,
        &ProofOptions::default(),
    )
    .map(|r| r.result)
}

/// [`prove_equiv`] with a chosen engine and time limit, returning the full report.
pub fn prove_equiv_with(
    dut_files: &[PathBuf],
    dut_top: &str,
    ref_files: &[PathBuf],
    ref_top: &str,
    ref_params: &[(String, i64)],
    work: &Path,
    opts: &ProofOptions,
) -> Result<ProofReport, ToolError> {
    let start = Instant::now();
    let deadline = opts.timeout.map(|t| start + t);
    check_names(dut_top, ref_top, ref_params)?;
    let yosys = tools::find_tool(Tool::Yosys)?;
    let work = tools::prepare_work_dir(work)?;
    let mut logs = Vec::new();

    // 1. Miter.
    let state_cells = build_miter(
        &yosys,
        &work,
        MiterSpec {
            dut_files,
            dut_top,
            ref_files,
            ref_top,
            ref_params,
        },
        deadline,
        &mut logs,
    )?;
    let sequential = !state_cells.is_empty();

    let engine = match opts.engine {
        ProofEngine::Auto if sequential => ProofEngine::YosysSat,
        // Without yosys-abc (e.g. some YoWASP installs) fall back to yosys sat.
        ProofEngine::Auto if tools::find_tool(Tool::YosysAbc).is_err() => ProofEngine::YosysSat,
        ProofEngine::Auto => ProofEngine::Abc,
        ProofEngine::Abc if sequential => {
            return Err(ToolError::InvalidInput(format!(
                "the ABC engine handles combinational miters only; this one has state: {}",
                state_cells.join(", ")
            )))
        }
        e => e,
    };

    // 2. Proof.
    let result = match engine {
        ProofEngine::Abc => prove_with_abc(&yosys, &work, deadline, &mut logs)?,
        _ => {
            let script = sat_script(sequential, opts.max_induction_steps);
            let run = tools::run_yosys_script(
                &yosys,
                &work,
                "equiv_sat",
                &script,
                tools::remaining(deadline),
            )?;
            logs.push(run.log_path.clone());
            interpret_sat(&run)?
        }
    };
    Ok(ProofReport {
        result,
        engine,
        sequential,
        state_cells,
        logs,
        elapsed_secs: start.elapsed().as_secs_f64(),
    })
}

/// Checks the module and parameter names of a proof request.
pub(super) fn check_names(
    dut_top: &str,
    ref_top: &str,
    ref_params: &[(String, i64)],
) -> Result<(), ToolError> {
    tools::check_identifier("DUT top module", dut_top)?;
    tools::check_identifier("reference top module", ref_top)?;
    if dut_top == ref_top {
        return Err(ToolError::InvalidInput(format!(
            "the DUT and the reference are both named {dut_top:?}: yosys needs distinct module names"
        )));
    }
    for (name, _) in ref_params {
        tools::check_identifier("reference parameter", name)?;
    }
    Ok(())
}

/// The two designs of a proof.
pub(super) struct MiterSpec<'a> {
    pub(super) dut_files: &'a [PathBuf],
    pub(super) dut_top: &'a str,
    pub(super) ref_files: &'a [PathBuf],
    pub(super) ref_top: &'a str,
    pub(super) ref_params: &'a [(String, i64)],
}

/// Runs `equiv_prepare.ys` in `work` (which must exist): writes `miter.il` and returns the
/// miter's state cells (empty for a combinational miter).
pub(super) fn build_miter(
    yosys: &Path,
    work: &Path,
    spec: MiterSpec<'_>,
    deadline: Option<Instant>,
    logs: &mut Vec<PathBuf>,
) -> Result<Vec<String>, ToolError> {
    let dut_files = tools::absolute_inputs(spec.dut_files)?;
    let ref_files = tools::absolute_inputs(spec.ref_files)?;
    let script = prepare_script(
        &dut_files,
        spec.dut_top,
        &ref_files,
        spec.ref_top,
        spec.ref_params,
    )?;
    let run = tools::run_yosys_script(
        yosys,
        work,
        "equiv_prepare",
        &script,
        tools::remaining(deadline),
    )?;
    logs.push(run.log_path.clone());
    run.ensure_success()?;
    Ok(tools::read_text(&work.join("state.txt"))?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

/// Reads the verdict of a yosys `sat -verify` run.
pub(super) fn interpret_sat(run: &YosysRun) -> Result<ProofResult, ToolError> {
    let log = &run.log;
    let found_model = log.contains("SAT proof finished - model found: FAIL!")
        || log.contains("model found for base case: FAIL!");
    if found_model {
        // -verify makes yosys exit with "Called with -verify and proof did fail!".
        return match counterexample_table(log) {
            Some(table) => Ok(ProofResult::Failed {
                counterexample: table,
            }),
            None => Err(ToolError::UnexpectedOutput {
                tool: Tool::Yosys,
                what: "sat found a model but printed no counterexample table".into(),
                log: run.log_path.clone(),
                tail: tools::tail_lines(log, tools::LOG_TAIL_LINES),
            }),
        };
    }
    if run.status.success() {
        let proved = log.contains("SAT proof finished - no model found: SUCCESS!")
            || log.contains("Induction step proven: SUCCESS!");
        return if proved {
            Ok(ProofResult::Proved)
        } else {
            Err(ToolError::UnexpectedOutput {
                tool: Tool::Yosys,
                what: "sat finished without a SUCCESS or FAIL verdict".into(),
                log: run.log_path.clone(),
                tail: tools::tail_lines(log, tools::LOG_TAIL_LINES),
            })
        };
    }
    if log.contains("Reached maximum number of time steps") {
        return Err(ToolError::ProofInconclusive {
            tool: Tool::Yosys,
            reason:
                "temporal induction did not close within -maxsteps (no counterexample from the \
                     initial state either)"
                    .into(),
            log: run.log_path.clone(),
            tail: tools::tail_lines(log, tools::LOG_TAIL_LINES),
        });
    }
    Err(run.failure())
}
