//! Case-split proofs: [`CaseSplit`] (which input fields are fixed, and why the cases cover
//! every input), the ABC commands of one case, and [`prove_equiv_split`], which runs the cases
//! through `yosys-abc` (`super::abc`) and replays a refuted one with yosys `sat`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::abc::{job_count, run_split_pool, RunVerdicts};
use super::log::{aiger_inputs, AigInput};
use super::miter::{build_miter, check_names, interpret_sat, MiterSpec};
use super::scripts::split_aig_script;
use super::ProofResult;
use crate::tools::{self, Tool, ToolError};

/// Bits `lsb .. lsb + width` of input port `port` (a port of both designs; in the miter it is
/// `in_<port>`). A [`CaseSplit`] fixes such fields to constants, one combination per case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SplitField {
    pub port: String,
    pub lsb: usize,
    pub width: usize,
}

impl SplitField {
    pub fn new(port: &str, lsb: usize, width: usize) -> Self {
        SplitField {
            port: port.to_string(),
            lsb,
            width,
        }
    }

    /// `port[msb:lsb]`, the yosys and Verilog spelling (without the miter's `in_` prefix).
    pub fn range(&self) -> String {
        format!("{}[{}:{}]", self.port, self.lsb + self.width - 1, self.lsb)
    }
}

/// One case of a [`CaseSplit`]: `values[f]` is the constant of field `f`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SplitCase {
    /// Position in [`CaseSplit::cases`]; also the split bits packed with field 0 lowest.
    pub index: u64,
    pub values: Vec<u64>,
}

/// A case split of a combinational equivalence proof: every combination of values of the
/// split fields is one case.
///
/// Why proving every case proves the equivalence (completeness): let S be the set of split
/// bits (the fields are disjoint, so |S| = Σ widths). The cases are the 2^|S| assignments of
/// S, each exactly once ([`CaseSplit::check_complete`] verifies this of the list a proof
/// runs). A case proves `trigger = 0` with S fixed to its assignment and every other input
/// bit free. Any input vector v agrees on S with exactly one case (the one whose assignment
/// is v restricted to S), so that case's proof covers v; hence `trigger = 0` for every v.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaseSplit {
    fields: Vec<SplitField>,
}

impl CaseSplit {
    /// At most 2^20 cases: a larger split is a mistake, not a plan.
    pub const MAX_BITS: usize = 20;

    /// Checks the fields (port names, non-empty, disjoint, at most [`Self::MAX_BITS`] bits).
    pub fn new(fields: Vec<SplitField>) -> Result<Self, ToolError> {
        if fields.is_empty() {
            return Err(ToolError::InvalidInput("a case split needs a field".into()));
        }
        let mut bits: BTreeMap<(&str, usize), usize> = BTreeMap::new();
        let mut total = 0usize;
        for (i, f) in fields.iter().enumerate() {
            tools::check_identifier("case-split port", &f.port)?;
            if f.width == 0 || f.width > Self::MAX_BITS {
                return Err(ToolError::InvalidInput(format!(
                    "case-split field {} has width {} (1..={} allowed)",
                    f.port,
                    f.width,
                    Self::MAX_BITS
                )));
            }
            total += f.width;
            for b in f.lsb..f.lsb + f.width {
                if let Some(other) = bits.insert((f.port.as_str(), b), i) {
                    return Err(ToolError::InvalidInput(format!(
                        "case-split fields {} and {} overlap at {}[{b}]",
                        fields[other].range(),
                        f.range(),
                        f.port
                    )));
                }
            }
        }
        if total > Self::MAX_BITS {
            return Err(ToolError::InvalidInput(format!(
                "a case split of {total} bits (2^{total} cases) is too large; at most {} bits",
                Self::MAX_BITS
            )));
        }
        Ok(CaseSplit { fields })
    }

    pub fn fields(&self) -> &[SplitField] {
        &self.fields
    }

    /// Number of split bits (the fields' widths added).
    pub fn bits(&self) -> usize {
        self.fields.iter().map(|f| f.width).sum()
    }

    pub fn num_cases(&self) -> u64 {
        1u64 << self.bits()
    }

    /// Case `index` (< [`Self::num_cases`]): field 0 takes the lowest bits of `index`.
    pub fn case(&self, index: u64) -> SplitCase {
        assert!(index < self.num_cases(), "case {index} out of range");
        let mut rest = index;
        let values = self
            .fields
            .iter()
            .map(|f| {
                let v = rest & ((1u64 << f.width) - 1);
                rest >>= f.width;
                v
            })
            .collect();
        SplitCase { index, values }
    }

    /// Every case, in index order.
    pub fn cases(&self) -> impl Iterator<Item = SplitCase> + '_ {
        (0..self.num_cases()).map(|i| self.case(i))
    }

    /// The split bits of `case` packed as in [`Self::case`] (`None` if a value is too wide
    /// or the number of values is wrong).
    fn pack(&self, case: &SplitCase) -> Option<u64> {
        if case.values.len() != self.fields.len() {
            return None;
        }
        let mut packed = 0u64;
        let mut shift = 0;
        for (f, &v) in self.fields.iter().zip(&case.values) {
            if v >> f.width != 0 {
                return None;
            }
            packed |= v << shift;
            shift += f.width;
        }
        Some(packed)
    }

    /// Checks that `cases` is complete: every assignment of the split bits occurs exactly
    /// once, and each case's `index` is its packed assignment.
    pub fn check_complete(&self, cases: &[SplitCase]) -> Result<(), String> {
        let n = self.num_cases();
        let mut seen = vec![false; n as usize];
        for case in cases {
            let packed = self
                .pack(case)
                .ok_or_else(|| format!("case {} does not fit the fields: {case:?}", case.index))?;
            if packed != case.index {
                return Err(format!(
                    "case {} carries the assignment of case {packed}",
                    case.index
                ));
            }
            if std::mem::replace(&mut seen[packed as usize], true) {
                return Err(format!("case {packed} occurs twice"));
            }
        }
        match seen.iter().position(|s| !s) {
            Some(missing) => Err(format!(
                "case {missing} ({}) is missing: the split would not cover every input",
                self.describe(&self.case(missing as u64))
            )),
            None => Ok(()),
        }
    }

    /// `port[msb:lsb]=<width>'b<bits> ...` for reports.
    pub fn describe(&self, case: &SplitCase) -> String {
        self.fields
            .iter()
            .zip(&case.values)
            .map(|(f, v)| format!("{}={}", f.range(), bin_const(*v, f.width)))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// `<width>'b<bits>`.
fn bin_const(value: u64, width: usize) -> String {
    format!("{width}'b{value:0width$b}")
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_split_enumerates_every_assignment_once() {
        let split = CaseSplit::new(vec![
            SplitField::new("a", 0, 2),
            SplitField::new("a", 4, 1),
            SplitField::new("b", 0, 3),
        ])
        .unwrap();
        assert_eq!(split.bits(), 6);
        let cases: Vec<_> = split.cases().collect();
        assert_eq!(cases.len(), 64);
        split.check_complete(&cases).unwrap();
        // Field 0 in the lowest bits: b = 0b101, a[4] = 1, a[1:0] = 0b10.
        let index = (0b101 << 3) | (1 << 2) | 0b10;
        assert_eq!(cases[index].values, vec![0b10, 1, 0b101]);
        assert_eq!(
            split.describe(&cases[index]),
            "a[1:0]=2'b10 a[4:4]=1'b1 b[2:0]=3'b101"
        );

        let mut missing = cases.clone();
        missing.remove(17);
        assert!(split
            .check_complete(&missing)
            .unwrap_err()
            .contains("case 17"));
        let mut twice = cases.clone();
        twice.push(cases[3].clone());
        assert!(split.check_complete(&twice).unwrap_err().contains("twice"));
        let mut wrong = cases;
        wrong[5].values[0] = 3;
        assert!(split.check_complete(&wrong).is_err());
    }

    #[test]
    fn case_split_rejects_bad_fields() {
        let overlap = CaseSplit::new(vec![SplitField::new("a", 0, 3), SplitField::new("a", 2, 2)]);
        assert!(matches!(overlap, Err(ToolError::InvalidInput(m)) if m.contains("overlap")));
        assert!(CaseSplit::new(vec![SplitField::new("a", 0, 21)]).is_err());
        assert!(CaseSplit::new(vec![SplitField::new("a b", 0, 1)]).is_err());
        assert!(CaseSplit::new(vec![]).is_err());
    }
}
