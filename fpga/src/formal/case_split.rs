//! Case-split proofs: the ABC commands of one case, and [`prove_equiv_split`], which runs the
//! cases of a [`CaseSplit`] (`super::split`) through `yosys-abc` (`super::abc`) and replays a
//! refuted one with yosys `sat`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::abc::{job_count, run_split_pool, RunVerdicts};
use super::log::{aiger_inputs, AigInput};
use super::miter::{build_miter, check_names, interpret_sat, MiterSpec};
use super::scripts::split_aig_script;
use super::split::{bin_const, CaseSplit, SplitCase};
use super::verdict::ProofResult;
use crate::tools::{self, Tool, ToolError};

/// BDD variable order of one case: `order(case, port, bit)` is a sort key for input bit `bit`
/// of `port` (lower = nearer the BDD root; ties keep the AIGER input order). It only
/// affects speed, never the verdict.
pub type BddOrder = Arc<dyn Fn(&SplitCase, &str, usize) -> i64 + Send + Sync>;

/// Options of [`prove_equiv_split`].
#[derive(Clone)]
pub struct SplitOptions {
    /// Overall time limit (`None`: no limit).
    pub timeout: Option<Duration>,
    /// Parallel `yosys-abc` processes; 0 = the number of CPUs.
    pub jobs: usize,
    /// Cases per `yosys-abc` process. Smaller runs stop a refuted proof sooner.
    pub cases_per_run: usize,
    /// `collapse -B`: live BDD node limit of one case; exceeding it makes the proof
    /// inconclusive (an error naming the case), never a wrong verdict.
    pub bdd_node_limit: u64,
    /// Variable order hint (`None`: the AIGER input order).
    pub order: Option<BddOrder>,
}

impl Default for SplitOptions {
    fn default() -> Self {
        SplitOptions {
            timeout: None,
            jobs: 0,
            cases_per_run: 16,
            bdd_node_limit: 20_000_000,
            order: None,
        }
    }
}

impl std::fmt::Debug for SplitOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SplitOptions")
            .field("timeout", &self.timeout)
            .field("jobs", &self.jobs)
            .field("cases_per_run", &self.cases_per_run)
            .field("bdd_node_limit", &self.bdd_node_limit)
            .field("order", &self.order.as_ref().map(|_| "custom"))
            .finish()
    }
}

/// Everything [`prove_equiv_split`] found out.
#[derive(Debug, Clone, Serialize)]
pub struct SplitReport {
    /// [`ProofResult::Failed`] carries the refuted case (its split values) on its first line,
    /// then yosys' counterexample table for that case.
    pub result: ProofResult,
    pub cases: u64,
    /// Cases ABC proved (all of them when the result is `Proved`).
    pub proved_cases: u64,
    /// Cases ABC refuted, ascending. The runs stop once one is found, so for a failed proof
    /// this is a non-empty subset of the failing cases.
    pub failed_cases: Vec<u64>,
    /// `yosys-abc` processes run (fewer than planned when a refuted case stopped the
    /// proof) and how many ran at once.
    pub abc_runs: usize,
    pub jobs: usize,
    /// Slowest case and the sum over cases, in CPU seconds (ABC's `time`, which excludes
    /// system time).
    pub case_secs_max: f64,
    pub case_secs_total: f64,
    /// Logs of every tool run.
    pub logs: Vec<PathBuf>,
    pub elapsed_secs: f64,
}

/// Proves a combinational `dut_top` equivalent to `ref_top` by a case split: one miter
/// (`equiv_prepare.ys`, as [`prove_equiv_with`](super::prove_equiv_with)) is turned into one
/// AIG with input names (`equiv_split_aig.ys`); then, for each case of `split`, `yosys-abc`
/// reads the AIG, replaces the split bits by the case's constants (`cof`), re-hashes
/// (constant propagation: a multiplier by a constant power of two becomes wiring), builds the
/// BDD of `trigger` in the case's variable order (`collapse -r`: no dynamic reordering) and
/// checks it is constant 0 (`iprove` on the collapsed network answers `UNSATISFIABLE` at once
/// for a constant 0, and finds a model otherwise).
///
/// Cases run `cases_per_run` to a `yosys-abc` process, `jobs` processes at a time; each case
/// is bracketed by `echo SDCASE <index>` so every verdict is attributed to its case, and the
/// proof only counts as proved when every case of [`CaseSplit::cases`] (checked complete by
/// [`CaseSplit::check_complete`]) has an `UNSATISFIABLE` verdict. A refuted case is replayed
/// with yosys `sat` restricted to that case, which prints the counterexample (and
/// cross-checks ABC). A case without a verdict (BDD node limit, crash, time limit) is an
/// error naming the case.
///
/// Why: BDDs handle adders whose operands are interleaved by bit significance in linear size,
/// whatever the association of the additions, while SAT (yosys `sat`, ABC `iprove`) needs
/// 0.4–2.5 s per case on the rebuild lane's differently associated adders; with variable
/// shift amounts, however, no single variable order suits every shift, so the shift amounts
/// are split off.
#[allow(clippy::too_many_arguments)]
pub fn prove_equiv_split(
    dut_files: &[PathBuf],
    dut_top: &str,
    ref_files: &[PathBuf],
    ref_top: &str,
    ref_params: &[(String, i64)],
    work: &Path,
    split: &CaseSplit,
    opts: &SplitOptions,
) -> Result<SplitReport, ToolError> {
    let start = Instant::now();
    let deadline = opts.timeout.map(|t| start + t);
    check_names(dut_top, ref_top, ref_params)?;
    let cases: Vec<SplitCase> = split.cases().collect();
    split
        .check_complete(&cases)
        .map_err(|e| ToolError::InvalidInput(format!("incomplete case split: {e}")))?;
    let yosys = tools::find_tool(Tool::Yosys)?;
    let abc = tools::find_tool(Tool::YosysAbc)?;
    let work = tools::prepare_work_dir(work)?;
    let mut logs = Vec::new();

    // 1. Miter and AIG (one yosys process each).
    let spec = MiterSpec {
        dut_files,
        dut_top,
        ref_files,
        ref_top,
        ref_params,
    };
    let inputs = build_split_aig(&yosys, &work, spec, deadline, &mut logs)?;
    check_split_ports(split, &inputs)?;

    // 2. The ABC scripts, `cases_per_run` cases each.
    let runs = write_case_scripts(split, &cases, &inputs, &work, opts)?;

    // 3. Run them, `jobs` at a time; stop taking new runs once a case is refuted.
    let jobs = job_count(opts.jobs, runs.len());
    let outcomes = run_split_pool(&abc, &work, &runs, jobs, split, deadline);
    let abc_runs = outcomes.len();

    // 4. Verdict.
    let mut tally = CaseTally::collect(outcomes, cases.len(), &mut logs);
    let result = split_verdict(&yosys, &work, split, &mut tally, deadline, &mut logs)?;
    Ok(SplitReport {
        result,
        cases: cases.len() as u64,
        proved_cases: tally.proved_cases(),
        failed_cases: tally.failed_cases,
        abc_runs,
        jobs,
        case_secs_max: tally.case_secs_max,
        case_secs_total: tally.case_secs_total,
        logs,
        elapsed_secs: start.elapsed().as_secs_f64(),
    })
}

/// Builds the miter (`equiv_prepare.ys`) and its AIG with input names (`equiv_split_aig.ys`),
/// one yosys process each, and returns the AIG's inputs. A miter with state is refused: the
/// case split handles combinational miters only.
fn build_split_aig(
    yosys: &Path,
    work: &Path,
    spec: MiterSpec<'_>,
    deadline: Option<Instant>,
    logs: &mut Vec<PathBuf>,
) -> Result<Vec<AigInput>, ToolError> {
    let state_cells = build_miter(yosys, work, spec, deadline, logs)?;
    if !state_cells.is_empty() {
        return Err(ToolError::InvalidInput(format!(
            "the case-split proof handles combinational miters only; this one has state: {}",
            state_cells.join(", ")
        )));
    }
    let run = tools::run_yosys_script(
        yosys,
        work,
        "equiv_split_aig",
        &split_aig_script(),
        tools::remaining(deadline),
    )?;
    logs.push(run.log_path.clone());
    run.ensure_success()?;
    aiger_inputs(&tools::read_text(&work.join("miter.aim"))?).map_err(ToolError::InvalidInput)
}

/// Writes the ABC scripts `split_NNNN.abc` (`cases_per_run` cases each, plus the cases'
/// order files) to `work` and returns each run's name and case indices, in case order.
fn write_case_scripts(
    split: &CaseSplit,
    cases: &[SplitCase],
    inputs: &[AigInput],
    work: &Path,
    opts: &SplitOptions,
) -> Result<Vec<(String, Vec<u64>)>, ToolError> {
    let per_run = opts.cases_per_run.max(1);
    let mut runs = Vec::new();
    for (r, chunk) in cases.chunks(per_run).enumerate() {
        let mut script = String::from("time\n");
        for case in chunk {
            script.push_str(&case_commands(
                split,
                case,
                inputs,
                work,
                opts.order.as_ref(),
                opts.bdd_node_limit,
            )?);
        }
        let name = format!("split_{r:04}");
        let path = work.join(format!("{name}.abc"));
        std::fs::write(&path, script).map_err(|e| ToolError::io(&path, e))?;
        runs.push((name, chunk.iter().map(|c| c.index).collect::<Vec<_>>()));
    }
    Ok(runs)
}

/// The per-case verdicts of the ABC runs that ran.
struct CaseTally {
    /// `proved[index]`: case `index` has an `UNSATISFIABLE` verdict.
    proved: Vec<bool>,
    /// Refuted cases, ascending.
    failed_cases: Vec<u64>,
    /// The error of the first failed run, in run order.
    first_error: Option<ToolError>,
    case_secs_max: f64,
    case_secs_total: f64,
}

impl CaseTally {
    /// Gathers the outcomes of the runs (in run order) for a split of `cases` cases; every
    /// run's log goes to `logs`.
    fn collect(
        outcomes: Vec<(usize, Result<RunVerdicts, ToolError>)>,
        cases: usize,
        logs: &mut Vec<PathBuf>,
    ) -> Self {
        let mut tally = CaseTally {
            proved: vec![false; cases],
            failed_cases: Vec::new(),
            first_error: None,
            case_secs_max: 0.0,
            case_secs_total: 0.0,
        };
        for (_, outcome) in outcomes {
            match outcome {
                Ok(v) => {
                    logs.push(v.log);
                    for (index, ok, secs) in v.verdicts {
                        tally.case_secs_max = tally.case_secs_max.max(secs);
                        tally.case_secs_total += secs;
                        if ok {
                            tally.proved[index as usize] = true;
                        } else {
                            tally.failed_cases.push(index);
                        }
                    }
                }
                Err(e) => {
                    if tally.first_error.is_none() {
                        tally.first_error = Some(e);
                    }
                }
            }
        }
        tally.failed_cases.sort_unstable();
        tally
    }

    fn proved_cases(&self) -> u64 {
        self.proved.iter().filter(|p| **p).count() as u64
    }
}

/// The proof's verdict: the lowest refuted case, replayed with yosys `sat` for its
/// counterexample; else the first run's error; else proved, but only if every case has a
/// verdict.
fn split_verdict(
    yosys: &Path,
    work: &Path,
    split: &CaseSplit,
    tally: &mut CaseTally,
    deadline: Option<Instant>,
    logs: &mut Vec<PathBuf>,
) -> Result<ProofResult, ToolError> {
    if let Some(&index) = tally.failed_cases.first() {
        // A counterexample is definitive even if another run had trouble.
        let case = split.case(index);
        let table = replay_case(yosys, work, split, &case, deadline, logs)?;
        Ok(ProofResult::Failed {
            counterexample: format!(
                "case {index} of {} ({}) fails:\n{table}",
                tally.proved.len(),
                split.describe(&case)
            ),
        })
    } else if let Some(e) = tally.first_error.take() {
        Err(e)
    } else if let Some(missing) = tally.proved.iter().position(|p| !p) {
        // Cannot happen unless a run skipped a case without an error: never call that proved.
        Err(ToolError::UnexpectedOutput {
            tool: Tool::YosysAbc,
            what: format!(
                "case {missing} ({}) has no verdict",
                split.describe(&split.case(missing as u64))
            ),
            log: work.to_path_buf(),
            tail: String::new(),
        })
    } else {
        Ok(ProofResult::Proved)
    }
}

/// Every split bit must be an input bit of the miter (`in_<port>`).
fn check_split_ports(split: &CaseSplit, inputs: &[AigInput]) -> Result<(), ToolError> {
    for f in split.fields() {
        let wire = format!("in_{}", f.port);
        for b in f.lsb..f.lsb + f.width {
            if !inputs.iter().any(|i| i.wire == wire && i.bit == b) {
                let width = inputs.iter().filter(|i| i.wire == wire).count();
                return Err(ToolError::InvalidInput(if width == 0 {
                    format!("case-split port {} is not an input of the designs", f.port)
                } else {
                    format!(
                        "case-split field {} exceeds input {} ({width} bits)",
                        f.range(),
                        f.port
                    )
                }));
            }
        }
    }
    Ok(())
}

/// The ABC commands of one case (and its order file, written to `work`).
fn case_commands(
    split: &CaseSplit,
    case: &SplitCase,
    inputs: &[AigInput],
    work: &Path,
    order: Option<&BddOrder>,
    bdd_node_limit: u64,
) -> Result<String, ToolError> {
    let mut s = format!("echo SDCASE {}\nread_aiger miter.aig\nlogic\n", case.index);
    for (f, &value) in split.fields().iter().zip(&case.values) {
        let wire = format!("in_{}", f.port);
        for b in 0..f.width {
            let input = inputs
                .iter()
                .find(|i| i.wire == wire && i.bit == f.lsb + b)
                .expect("checked by check_split_ports");
            s.push_str(&format!("cof {} {}\n", input.name, (value >> b) & 1));
        }
    }
    s.push_str("strash\n");
    if let Some(order) = order {
        let mut keyed: Vec<(i64, usize, &str)> = inputs
            .iter()
            .map(|i| {
                let port = i.wire.strip_prefix("in_").unwrap_or(&i.wire);
                (order(case, port, i.bit), i.index, i.name.as_str())
            })
            .collect();
        keyed.sort();
        let mut text = String::new();
        for (_, _, name) in keyed {
            text.push_str(name);
            text.push('\n');
        }
        let file = format!("case_{}.order", case.index);
        let path = work.join(&file);
        std::fs::write(&path, text).map_err(|e| ToolError::io(&path, e))?;
        s.push_str(&format!("order {file}\n"));
    }
    s.push_str(&format!(
        "collapse -r -B {bdd_node_limit}\nstrash\niprove\ntime\n"
    ));
    Ok(s)
}

/// Yosys `sat` on `miter.il` with the split fields of `case` fixed: prints the
/// counterexample table of a case ABC refuted.
fn replay_case(
    yosys: &Path,
    work: &Path,
    split: &CaseSplit,
    case: &SplitCase,
    deadline: Option<Instant>,
    logs: &mut Vec<PathBuf>,
) -> Result<String, ToolError> {
    let mut sat = String::from("read_rtlil miter.il\nsat -verify -prove trigger 0");
    for (f, &v) in split.fields().iter().zip(&case.values) {
        sat.push_str(&format!(" -set in_{} {}", f.range(), bin_const(v, f.width)));
    }
    sat.push_str(" -show-inputs -show-outputs miter\n");
    let run = tools::run_yosys_script(
        yosys,
        work,
        "equiv_split_cex",
        &sat,
        tools::remaining(deadline),
    )?;
    logs.push(run.log_path.clone());
    match interpret_sat(&run)? {
        ProofResult::Failed { counterexample } => Ok(counterexample),
        ProofResult::Proved => Err(ToolError::UnexpectedOutput {
            tool: Tool::Yosys,
            what: format!(
                "ABC refuted case {} ({}) but yosys sat proves it",
                case.index,
                split.describe(case)
            ),
            log: run.log_path.clone(),
            tail: tools::tail_lines(&run.log, tools::LOG_TAIL_LINES),
        }),
    }
}
