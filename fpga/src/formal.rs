//! Formal equivalence of a DUT against a reference module with plain Debian Yosys (and the
//! ABC that ships with it).
//!
//! Flow (all files are kept in the work directory):
//! 1. `equiv_prepare.ys` — read both designs, `chparam` the reference, `hierarchy -check; proc;
//!    flatten; opt_clean`, build the miter (`miter -equiv -flatten -make_outputs REF DUT miter`,
//!    gold = reference, gate = DUT), `opt -fast`, list the state elements, write `miter.il`.
//! 2. The proof, by engine:
//!    * [`ProofEngine::YosysSat`] — `equiv_sat.ys`: toolchain.md's `sat -verify ...`. A
//!      combinational miter gets one `sat -prove` (which covers every input); a sequential one
//!      `sat -tempinduct -set-init-zero` (both designs start from all-zero state).
//!    * [`ProofEngine::Abc`] (combinational only) — `equiv_aig.ys` turns the miter into an AIG
//!      (`miter.aig` + `miter.aim` map) and `yosys-abc -c "read_aiger miter.aig; iprove"` proves
//!      the trigger output constant 0 by SAT sweeping (fraiging). A counterexample from ABC is
//!      replayed with yosys `sat` (`equiv_cex.ys`) so it is reported in yosys' table format and
//!      cross-checked by a second tool.
//!    * [`ProofEngine::Auto`] (default) — ABC for combinational miters (yosys `sat` when
//!      `yosys-abc` is missing), yosys `sat -tempinduct` for sequential ones.
//! 3. Or, with [`prove_equiv_split`], a case split: the same miter, one AIG with input names
//!    (`equiv_split_aig.ys`), then per case (one value of chosen input fields) a BDD of the
//!    trigger in ABC, cases batched into a few `yosys-abc` runs (`split_NNNN.abc`), two or
//!    more at a time; a refuted case is replayed with yosys `sat` (`equiv_split_cex.ys`).
//!    [`CaseSplit`] documents why the cases cover every input.
//!
//! Measured on this project's 2-core machine (yosys 0.23), DUT = shift-add rebuild with folded
//! negation vs `hdl/formal/sd_rebuild_ref.v`: yosys `sat` (MiniSAT) does not finish the 3-term
//! rebuild proof in 5 minutes even at BasisBits = 4, ExpBits = 2 (differently associated adders
//! around variable shifts are hard for plain CDCL); ABC `iprove` proves 4/2 in 4–10 s and
//! 8/3 in 1.5 to 7 minutes (the time swings with the AIG's node order). Counterexamples of
//! broken designs take about a second with either engine. Split on the exponent codes
//! (`crate::rebuild_proof`), 8/3 takes ~0.1 s of CPU per case for the whole lane and ~35 ms
//! for one column, against 0.4–2.5 s per case with `sat` or `iprove`.
//!
//! A counterexample is [`ProofResult::Failed`]; a yosys/ABC failure (syntax error, port
//! mismatch, crash, time limit, induction that does not close) is a [`ToolError`].

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::tools::{self, Capture, Tool, ToolError, YosysRun};

/// Yosys selection of every state-holding cell type (coarse and fine-grained).
pub const STATE_SELECTION: &str =
    "t:$ff t:$*dff* t:$*dlatch* t:$mem* t:$_*FF* t:$_*DLATCH* t:$_SR_*";

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
    /// by then is reported as [`ToolError::ProofInconclusive`]. `None`: unbounded.
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

/// Proves `dut_top` (from `dut_files`) equivalent to `ref_top` (from `ref_files`, with
/// `ref_params` applied by `chparam`) with the default options. See the module documentation.
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
fn check_names(
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
struct MiterSpec<'a> {
    dut_files: &'a [PathBuf],
    dut_top: &'a str,
    ref_files: &'a [PathBuf],
    ref_top: &'a str,
    ref_params: &'a [(String, i64)],
}

/// Runs `equiv_prepare.ys` in `work` (which must exist): writes `miter.il` and returns the
/// miter's state cells (empty for a combinational miter).
fn build_miter(
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

/// The miter-building script (`equiv_prepare.ys`).
pub fn prepare_script(
    dut_files: &[PathBuf],
    dut_top: &str,
    ref_files: &[PathBuf],
    ref_top: &str,
    ref_params: &[(String, i64)],
) -> Result<String, ToolError> {
    let mut s = String::new();
    for f in dut_files.iter().chain(ref_files) {
        s.push_str(&format!("read_verilog {}\n", tools::yosys_quote(f)?));
    }
    if !ref_params.is_empty() {
        s.push_str("chparam");
        for (name, value) in ref_params {
            s.push_str(&format!(" -set {name} {}", yosys_param_value(*value)));
        }
        s.push_str(&format!(" {ref_top}\n"));
    }
    s.push_str("hierarchy -check\nproc\nflatten\nopt_clean\n");
    s.push_str(&format!(
        "miter -equiv -flatten -make_outputs {ref_top} {dut_top} miter\n"
    ));
    s.push_str("hierarchy -top miter\nopt -fast\n");
    s.push_str(&format!(
        "tee -q -o state.txt select -list {STATE_SELECTION}\n"
    ));
    s.push_str("write_rtlil miter.il\n");
    Ok(s)
}

/// A parameter value as `chparam` accepts it: it cannot decode `-3`, so negative values are
/// written as 64-bit signed hex constants.
fn yosys_param_value(value: i64) -> String {
    if value >= 0 {
        value.to_string()
    } else {
        format!("64'sh{:016x}", value as u64)
    }
}

/// The yosys `sat` proof script (`equiv_sat.ys`).
pub fn sat_script(sequential: bool, max_induction_steps: Option<u32>) -> String {
    let sat = if sequential {
        let max = max_induction_steps
            .map(|n| format!(" -maxsteps {n}"))
            .unwrap_or_default();
        format!(
            "sat -verify -tempinduct -prove trigger 0 -set-init-zero{max} -show-inputs -show-outputs miter"
        )
    } else {
        // No state: one SAT call over all inputs is the whole proof (the induction step of
        // -tempinduct would only double the problem).
        "sat -verify -prove trigger 0 -show-inputs -show-outputs miter".to_string()
    };
    format!("read_rtlil miter.il\n{sat}\n")
}

/// The AIG-export script (`equiv_aig.ys`): only `trigger` stays an output; undriven wires
/// become free inputs; undefined constants left by techmap become 0 (as yosys `sat` treats them).
pub fn aig_script() -> String {
    "read_rtlil miter.il\n\
     delete -port miter/o:gold_* miter/o:gate_*\n\
     techmap\n\
     opt -fast\n\
     aigmap\n\
     opt_clean\n\
     setundef -undriven -expose\n\
     setundef -zero\n\
     write_aiger -zinit -map miter.aim miter.aig\n"
        .to_string()
}

/// The AIG-export script of the case-split proof (`equiv_split_aig.ys`). As [`aig_script`],
/// plus:
/// * an AIGER symbol table (`-symbols`): ABC then names the inputs `in_<port>[<bit>]`
///   (`in_<port>` for 1-bit ports), which the per-case commands (`cof`, `order`) address;
/// * `wreduce` before `techmap`: drops the sign-extension bits of the reference's
///   multiplier operands (an 8 × 17 instead of a 17 × 17 array at 8/3);
/// * no `opt`/`opt_clean` after `techmap`: on the bit-level netlist they cost 3–4 s at 8/3
///   and ABC's structural hashing does the same (dangling logic is dropped by `strash`).
///
/// `-keepdc` keeps explicit don't-care bits as they are (the only ones here are dead `x`
/// branches of the reference's `if`, which `setundef -zero` then makes 0, as yosys `sat` does).
pub fn split_aig_script() -> String {
    "read_rtlil miter.il\n\
     delete -port miter/o:gold_* miter/o:gate_*\n\
     opt_expr -keepdc\n\
     wreduce -keepdc\n\
     opt_clean\n\
     techmap\n\
     aigmap\n\
     setundef -undriven -expose\n\
     setundef -zero\n\
     write_aiger -zinit -symbols -map miter.aim miter.aig\n"
        .to_string()
}

/// The `yosys-abc` command line of the ABC engine.
pub const ABC_COMMANDS: &str = "read_aiger miter.aig; iprove; write_cex -n miter.cex";

fn prove_with_abc(
    yosys: &Path,
    work: &Path,
    deadline: Option<Instant>,
    logs: &mut Vec<PathBuf>,
) -> Result<ProofResult, ToolError> {
    let abc = tools::find_tool(Tool::YosysAbc)?;
    let run = tools::run_yosys_script(
        yosys,
        work,
        "equiv_aig",
        &aig_script(),
        tools::remaining(deadline),
    )?;
    logs.push(run.log_path.clone());
    run.ensure_success()?;

    let log = work.join("equiv_abc.log");
    let cex_path = work.join("miter.cex");
    let _ = std::fs::remove_file(&cex_path);
    let args: Vec<OsString> = vec!["-c".into(), ABC_COMMANDS.into()];
    let outcome = tools::run(
        Tool::YosysAbc,
        &abc,
        &args,
        work,
        Capture::Both(&log),
        &log,
        tools::remaining(deadline),
    )?;
    logs.push(log.clone());
    let text = tools::read_text(&log)?;
    let tail = || tools::tail_lines(&text, tools::LOG_TAIL_LINES);
    let verdict = text.lines().find_map(|l| {
        let l = l.trim_start();
        if l.starts_with("UNSATISFIABLE") {
            Some(AbcVerdict::Unsat)
        } else if l.starts_with("SATISFIABLE") {
            Some(AbcVerdict::Sat)
        } else if l.starts_with("UNDECIDED") {
            Some(AbcVerdict::Undecided)
        } else {
            None
        }
    });
    if !outcome.status.success() {
        return Err(ToolError::Failed {
            tool: Tool::YosysAbc,
            status: tools::describe_status(&outcome.status),
            log,
            tail: tail(),
        });
    }
    match verdict {
        Some(AbcVerdict::Unsat) => Ok(ProofResult::Proved),
        Some(AbcVerdict::Undecided) => Err(ToolError::ProofInconclusive {
            tool: Tool::YosysAbc,
            reason: "ABC iprove returned UNDECIDED".into(),
            log,
            tail: tail(),
        }),
        None => Err(ToolError::UnexpectedOutput {
            tool: Tool::YosysAbc,
            what: "no SATISFIABLE/UNSATISFIABLE/UNDECIDED verdict".into(),
            log,
            tail: tail(),
        }),
        Some(AbcVerdict::Sat) => {
            let unexpected = |what: String| ToolError::UnexpectedOutput {
                tool: Tool::YosysAbc,
                what,
                log: log.clone(),
                tail: tail(),
            };
            let cex = tools::read_text(&cex_path)
                .map_err(|e| unexpected(format!("no counterexample file: {e}")))?;
            let map = tools::read_text(&work.join("miter.aim"))?;
            let assignment = cex_to_assignment(&cex, &map).map_err(unexpected)?;
            // Replay in yosys: fixes every input, so this is a single evaluation.
            let mut sat = String::from("read_rtlil miter.il\nsat -prove trigger 0");
            for (wire, value) in &assignment {
                sat.push_str(&format!(" -set {} {value}", yosys_wire(wire)));
            }
            sat.push_str(" -show-inputs -show-outputs miter\n");
            let run = tools::run_yosys_script(
                yosys,
                work,
                "equiv_cex",
                &sat,
                tools::remaining(deadline),
            )?;
            logs.push(run.log_path.clone());
            run.ensure_success()?;
            match counterexample_table(&run.log) {
                Some(table) if run.log.contains("model found: FAIL!") => Ok(ProofResult::Failed {
                    counterexample: table,
                }),
                _ => Err(ToolError::UnexpectedOutput {
                    tool: Tool::Yosys,
                    what: "ABC found a counterexample that yosys sat does not reproduce".into(),
                    log: run.log_path.clone(),
                    tail: tools::tail_lines(&run.log, tools::LOG_TAIL_LINES),
                }),
            }
        }
    }
}

enum AbcVerdict {
    Unsat,
    Sat,
    Undecided,
}

/// A wire name from the AIGER map as a yosys `sat -set` signal.
fn yosys_wire(name: &str) -> String {
    if name.starts_with('\\') || name.starts_with('$') {
        name.to_string()
    } else {
        format!("\\{name}")
    }
}

/// Combines ABC's `write_cex -n` output (`pi<N>@0=<bit>` lines) with the yosys AIGER map
/// (`input <N> <bit> <wire>` lines) into `wire -> <width>'b<bits>` (unknown bits are `x`).
fn cex_to_assignment(cex: &str, map: &str) -> Result<BTreeMap<String, String>, String> {
    let mut pi_values: BTreeMap<usize, char> = BTreeMap::new();
    for line in cex.lines().map(str::trim) {
        let Some(rest) = line.strip_prefix("pi") else {
            continue;
        };
        let (idx, rest) = rest
            .split_once('@')
            .ok_or_else(|| format!("bad counterexample line {line:?}"))?;
        let (_, bit) = rest
            .split_once('=')
            .ok_or_else(|| format!("bad counterexample line {line:?}"))?;
        let idx: usize = idx
            .parse()
            .map_err(|_| format!("bad input index in {line:?}"))?;
        let bit = match bit.trim() {
            "0" => '0',
            "1" => '1',
            _ => 'x',
        };
        pi_values.insert(idx, bit);
    }
    if pi_values.is_empty() {
        return Err("counterexample has no input values".into());
    }
    let mut wires: BTreeMap<String, BTreeMap<usize, char>> = BTreeMap::new();
    for line in map.lines() {
        let parts: Vec<&str> = line.splitn(4, ' ').collect();
        if parts.len() != 4 || parts[0] != "input" {
            continue;
        }
        let idx: usize = parts[1]
            .parse()
            .map_err(|_| format!("bad AIGER map line {line:?}"))?;
        let bit: usize = parts[2]
            .parse()
            .map_err(|_| format!("bad AIGER map line {line:?}"))?;
        let value = pi_values.get(&idx).copied().unwrap_or('x');
        wires
            .entry(parts[3].to_string())
            .or_default()
            .insert(bit, value);
    }
    Ok(wires
        .into_iter()
        .map(|(wire, bits)| {
            let width = bits.keys().max().map_or(0, |m| m + 1);
            let text: String = (0..width)
                .rev()
                .map(|i| bits.get(&i).copied().unwrap_or('x'))
                .collect();
            (wire, format!("{width}'b{text}"))
        })
        .collect())
}

/// Reads the verdict of a yosys `sat -verify` run.
fn interpret_sat(run: &YosysRun) -> Result<ProofResult, ToolError> {
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

/// The signal table yosys `sat -show-*` prints for a model (header `[Time] Signal Name Dec
/// Hex Bin`), from its header line to the end of the table.
fn counterexample_table(log: &str) -> Option<String> {
    let lines: Vec<&str> = log.lines().collect();
    let start = lines
        .iter()
        .rposition(|l| l.contains("Signal Name") && l.contains("Hex"))?;
    let mut table = Vec::new();
    for l in &lines[start..] {
        if l.trim().is_empty() {
            break;
        }
        table.push(l.trim_end());
    }
    Some(table.join("\n"))
}

// ---------------------------------------------------------------------------------------------
// Case-split proofs
// ---------------------------------------------------------------------------------------------

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
/// (`equiv_prepare.ys`, as [`prove_equiv_with`]) is turned into one AIG with input names
/// (`equiv_split_aig.ys`); then, for each case of `split`, `yosys-abc` reads the AIG,
/// replaces the split bits by the case's constants (`cof`), re-hashes (constant propagation:
/// a multiplier by a constant power of two becomes wiring), builds the BDD of `trigger` in the
/// case's variable order (`collapse -r`: no dynamic reordering) and checks it is constant 0
/// (`iprove` on the collapsed network answers `UNSATISFIABLE` at once for a constant 0, and
/// finds a model otherwise).
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
    if !state_cells.is_empty() {
        return Err(ToolError::InvalidInput(format!(
            "the case-split proof handles combinational miters only; this one has state: {}",
            state_cells.join(", ")
        )));
    }
    let run = tools::run_yosys_script(
        &yosys,
        &work,
        "equiv_split_aig",
        &split_aig_script(),
        tools::remaining(deadline),
    )?;
    logs.push(run.log_path.clone());
    run.ensure_success()?;
    let inputs = aiger_inputs(&tools::read_text(&work.join("miter.aim"))?)
        .map_err(ToolError::InvalidInput)?;
    check_split_ports(split, &inputs)?;

    // 2. The ABC scripts, `cases_per_run` cases each.
    let per_run = opts.cases_per_run.max(1);
    let mut runs = Vec::new();
    for (r, chunk) in cases.chunks(per_run).enumerate() {
        let mut script = String::from("time\n");
        for case in chunk {
            script.push_str(&case_commands(
                split,
                case,
                &inputs,
                &work,
                opts.order.as_ref(),
                opts.bdd_node_limit,
            )?);
        }
        let name = format!("split_{r:04}");
        let path = work.join(format!("{name}.abc"));
        std::fs::write(&path, script).map_err(|e| ToolError::io(&path, e))?;
        runs.push((name, chunk.iter().map(|c| c.index).collect::<Vec<_>>()));
    }

    // 3. Run them, `jobs` at a time; stop taking new runs once a case is refuted.
    let jobs = match opts.jobs {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .min(runs.len())
    .max(1);
    let next = AtomicUsize::new(0);
    let refuted = AtomicBool::new(false);
    let outcomes: Mutex<Vec<(usize, Result<RunVerdicts, ToolError>)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| loop {
                if refuted.load(Ordering::SeqCst) {
                    break;
                }
                let r = next.fetch_add(1, Ordering::SeqCst);
                let Some((name, indices)) = runs.get(r) else {
                    break;
                };
                let outcome = run_split_abc(&abc, &work, name, indices, split, deadline);
                let stop = match &outcome {
                    Ok(v) => v.verdicts.iter().any(|(_, proved, _)| !proved),
                    Err(_) => true,
                };
                if stop {
                    refuted.store(true, Ordering::SeqCst);
                }
                outcomes.lock().unwrap().push((r, outcome));
            });
        }
    });
    let mut outcomes = outcomes.into_inner().unwrap();
    outcomes.sort_by_key(|(r, _)| *r);
    let abc_runs = outcomes.len();

    // 4. Verdict.
    let mut proved = vec![false; cases.len()];
    let mut failed_cases = Vec::new();
    let mut first_error = None;
    let (mut case_secs_max, mut case_secs_total) = (0f64, 0f64);
    for (_, outcome) in outcomes {
        match outcome {
            Ok(v) => {
                logs.push(v.log);
                for (index, ok, secs) in v.verdicts {
                    case_secs_max = case_secs_max.max(secs);
                    case_secs_total += secs;
                    if ok {
                        proved[index as usize] = true;
                    } else {
                        failed_cases.push(index);
                    }
                }
            }
            Err(e) => {
                if first_error.is_none() {
                    first_error = Some(e);
                }
            }
        }
    }
    failed_cases.sort_unstable();
    let proved_cases = proved.iter().filter(|p| **p).count() as u64;
    let result = if let Some(&index) = failed_cases.first() {
        // A counterexample is definitive even if another run had trouble.
        let case = split.case(index);
        let table = replay_case(&yosys, &work, split, &case, deadline, &mut logs)?;
        ProofResult::Failed {
            counterexample: format!(
                "case {index} of {} ({}) fails:\n{table}",
                cases.len(),
                split.describe(&case)
            ),
        }
    } else if let Some(e) = first_error {
        return Err(e);
    } else if let Some(missing) = proved.iter().position(|p| !p) {
        // Cannot happen unless a run skipped a case without an error: never call that proved.
        return Err(ToolError::UnexpectedOutput {
            tool: Tool::YosysAbc,
            what: format!(
                "case {missing} ({}) has no verdict",
                split.describe(&split.case(missing as u64))
            ),
            log: work.clone(),
            tail: String::new(),
        });
    } else {
        ProofResult::Proved
    };
    Ok(SplitReport {
        result,
        cases: cases.len() as u64,
        proved_cases,
        failed_cases,
        abc_runs,
        jobs,
        case_secs_max,
        case_secs_total,
        logs,
        elapsed_secs: start.elapsed().as_secs_f64(),
    })
}

/// One input bit of the AIG: its index, port bit and ABC name.
#[derive(Debug, Clone)]
struct AigInput {
    index: usize,
    wire: String,
    bit: usize,
    name: String,
}

/// The inputs listed in a yosys AIGER map (`input <index> <bit> <wire>`), named as
/// `write_aiger -symbols` names them for ABC: `wire[bit]`, or `wire` for 1-bit wires.
fn aiger_inputs(map: &str) -> Result<Vec<AigInput>, String> {
    let mut inputs = Vec::new();
    for line in map.lines() {
        let parts: Vec<&str> = line.splitn(4, ' ').collect();
        if parts.len() != 4 || parts[0] != "input" {
            continue;
        }
        let bad = || format!("bad AIGER map line {line:?}");
        inputs.push(AigInput {
            index: parts[1].parse().map_err(|_| bad())?,
            bit: parts[2].parse().map_err(|_| bad())?,
            wire: parts[3].to_string(),
            name: String::new(),
        });
    }
    let mut widths: BTreeMap<String, usize> = BTreeMap::new();
    for i in &inputs {
        let w = widths.entry(i.wire.clone()).or_default();
        *w = (*w).max(i.bit + 1);
    }
    for i in &mut inputs {
        i.name = if widths[&i.wire] == 1 {
            i.wire.clone()
        } else {
            format!("{}[{}]", i.wire, i.bit)
        };
        if i.name.chars().any(char::is_whitespace) {
            return Err(format!("AIG input name {:?} contains a space", i.name));
        }
    }
    inputs.sort_by_key(|i| i.index);
    Ok(inputs)
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

/// Verdicts of one ABC run: `(case index, proved, seconds)`.
struct RunVerdicts {
    log: PathBuf,
    verdicts: Vec<(u64, bool, f64)>,
}

fn run_split_abc(
    abc: &Path,
    work: &Path,
    name: &str,
    indices: &[u64],
    split: &CaseSplit,
    deadline: Option<Instant>,
) -> Result<RunVerdicts, ToolError> {
    let log = work.join(format!("{name}.log"));
    let (program, mut args) = abc_launcher(abc);
    args.extend(["-f".into(), format!("{name}.abc").into()]);
    let outcome = tools::run(
        Tool::YosysAbc,
        &program,
        &args,
        work,
        Capture::Both(&log),
        &log,
        tools::remaining(deadline),
    )?;
    let text = tools::read_text(&log)?;
    let tail = || tools::tail_lines(&text, tools::LOG_TAIL_LINES);
    if !outcome.status.success() {
        return Err(ToolError::Failed {
            tool: Tool::YosysAbc,
            status: tools::describe_status(&outcome.status),
            log,
            tail: tail(),
        });
    }
    if text.contains("Cannot use this order") {
        return Err(ToolError::UnexpectedOutput {
            tool: Tool::YosysAbc,
            what: "ABC refused a BDD variable order file".into(),
            log,
            tail: tail(),
        });
    }
    let parsed = parse_split_log(&text);
    let mut verdicts = Vec::new();
    for (pos, &index) in indices.iter().enumerate() {
        let describe = || split.describe(&split.case(index));
        match parsed.get(pos) {
            Some(&(i, Some(ok), secs)) if i == index => verdicts.push((index, ok, secs)),
            Some(&(i, None, _)) if i == index => {
                return Err(ToolError::ProofInconclusive {
                    tool: Tool::YosysAbc,
                    reason: format!(
                        "case {index} ({}) has no verdict (BDD node limit exceeded, \
                         UNDECIDED or aborted script)",
                        describe()
                    ),
                    log,
                    tail: tail(),
                })
            }
            _ => {
                return Err(ToolError::UnexpectedOutput {
                    tool: Tool::YosysAbc,
                    what: format!("case {index} ({}) was not run", describe()),
                    log,
                    tail: tail(),
                })
            }
        }
    }
    if parsed.len() != indices.len() {
        return Err(ToolError::UnexpectedOutput {
            tool: Tool::YosysAbc,
            what: format!("{} case markers for {} cases", parsed.len(), indices.len()),
            log,
            tail: tail(),
        });
    }
    Ok(RunVerdicts { log, verdicts })
}

/// glibc `malloc` settings for the case-split ABC runs. Each case's BDD manager allocates and
/// frees ~20 MB; with glibc's defaults those blocks are mmap'ed and unmapped every case, and
/// the page faults cost nearly as much (system) time as the BDDs (user): 0.34 s against
/// 0.52 s for 16 cases at 8/3. Served from a heap that is never trimmed, they cost 0.03 s.
/// Only speed depends on this (and only with glibc; other C libraries ignore the variable).
const ABC_MALLOC_TUNABLES: &str =
    "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824";

/// How to start `abc`: through `/usr/bin/env GLIBC_TUNABLES=...` on Linux/glibc (appended
/// to a `GLIBC_TUNABLES` the caller set), directly elsewhere.
fn abc_launcher(abc: &Path) -> (PathBuf, Vec<OsString>) {
    let env = Path::new("/usr/bin/env");
    if cfg!(all(target_os = "linux", target_env = "gnu")) && env.is_file() {
        let tunables = match std::env::var("GLIBC_TUNABLES") {
            Ok(user) if !user.is_empty() => format!("{user}:{ABC_MALLOC_TUNABLES}"),
            _ => ABC_MALLOC_TUNABLES.to_string(),
        };
        (
            env.to_path_buf(),
            vec![
                format!("GLIBC_TUNABLES={tunables}").into(),
                abc.as_os_str().to_owned(),
            ],
        )
    } else {
        (abc.to_path_buf(), Vec::new())
    }
}

/// `(case index, Some(proved) or None without a clear verdict, seconds)` per `SDCASE` marker.
fn parse_split_log(text: &str) -> Vec<(u64, Option<bool>, f64)> {
    let mut out: Vec<(u64, Option<bool>, f64)> = Vec::new();
    // Verdict lines seen for the current case; more than one is no verdict.
    let mut seen = 0;
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("SDCASE ") {
            if let Ok(index) = rest.trim().parse() {
                out.push((index, None, 0.0));
                seen = 0;
            }
            continue;
        }
        let Some(current) = out.last_mut() else {
            continue;
        };
        let verdict = if line.starts_with("UNSATISFIABLE") {
            Some(true)
        } else if line.starts_with("SATISFIABLE") {
            Some(false)
        } else if line.starts_with("UNDECIDED") {
            None
        } else {
            if let Some(rest) = line.strip_prefix("elapse:") {
                if let Some(secs) = rest.split_whitespace().next().and_then(|s| s.parse().ok()) {
                    current.2 = secs;
                }
            }
            continue;
        };
        seen += 1;
        current.1 = if seen == 1 { verdict } else { None };
    }
    out
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

    fn reference() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../hdl/formal/sd_rebuild_ref.v")
    }

    /// An independent shift-add rebuild written directly in Verilog (`bb` = BasisBits,
    /// `eb` = ExpBits, `RB = bb + 2^eb − 1 + 2` result bits): the operand is gated with
    /// `present` and XORed with `neg = present & negative` before the shift, the vacated bits
    /// are filled with `neg`, and the three `neg` carries are added at the end
    /// (x ^ -1 = -x - 1, so ((~b) << c | (2^c - 1)) + 1 = -(b << c)).
    fn dut(bb: u32, eb: u32) -> String {
        let rb = bb + (1 << eb) - 1 + 2; // rebuilt-weight bits
        let f = eb + 2; // Ce element field: present, negative, code
        let (hi, mask) = (rb - 1, (1u64 << rb) - 1);
        let sh_decl = format!("[{hi}:0]");
        let s_decl = format!("{:<w$}", "[2:0]", w = sh_decl.len());
        let sum = format!("            assign w_o[j*{rb} +: {rb}] = ");
        let cont = " ".repeat(sum.len() - 2);
        format!(
            "`default_nettype none
module sd_rebuild (
    input  wire [{b_hi}:0] b_i,
    input  wire [{ce_hi}:0] ce_i,
    output wire [{w_hi}:0] w_o
);
    genvar j, k;
    generate
        for (j = 0; j < 3; j = j + 1) begin : g_col
            wire {sh_decl} sh [0:2];
            wire {s_decl} s;
            for (k = 0; k < 3; k = k + 1) begin : g_row
                wire       p = ce_i[k*{f}];
                wire       n = ce_i[k*{f}+1] & p;
                wire [{c_hi}:0] c = ce_i[k*{f}+2 +: {eb}];
                wire [{x_hi}:0] x = (b_i[(k*3+j)*{bb} +: {bb}] & {{{bb}{{p}}}}) ^ {{{bb}{{n}}}};
                wire {sh_decl} xe = {{{{{ext}{{x[{x_hi}]}}}}, x}};
                assign sh[k] = (xe << c) | (~({rb}'h{mask:x} << c) & {{{rb}{{n}}}});
                assign s[k] = n;
            end
{sum}sh[0] + sh[1] + sh[2]
{cont}+ {{{hi}'d0, s[0]}} + {{{hi}'d0, s[1]}} + {{{hi}'d0, s[2]}};
        end
    endgenerate
endmodule
",
            b_hi = 9 * bb - 1,
            ce_hi = 3 * f - 1,
            w_hi = 3 * rb - 1,
            c_hi = eb - 1,
            x_hi = bb - 1,
            ext = rb - bb,
        )
    }

    static DUT_8_3: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| dut(8, 3));
    static DUT_4_2: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| dut(4, 2));

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn params(b: i64, e: i64) -> Vec<(String, i64)> {
        vec![("BasisBits".into(), b), ("ExpBits".into(), e)]
    }

    fn drop_last_carry(dut: &str) -> String {
        let broken = dut
            .replace(" + {16'd0, s[2]}", "")
            .replace(" + {8'd0, s[2]}", "");
        assert_ne!(broken, dut);
        broken
    }

    #[test]
    fn test_duts_are_lint_clean() {
        let dir = tempfile::tempdir().unwrap();
        for (i, text) in [&*DUT_8_3, &*DUT_4_2].iter().enumerate() {
            let sub = dir.path().join(format!("d{i}"));
            std::fs::create_dir_all(&sub).unwrap();
            let f = write(&sub, "sd_rebuild.v", text);
            let r = crate::lint(&[f], "sd_rebuild", None, &sub.join("work")).unwrap();
            assert!(r.passed(), "{}", r.summary());
        }
    }

    #[test]
    fn rebuild_4_2_is_proved_and_broken_copy_fails() {
        let dir = tempfile::tempdir().unwrap();
        let good = write(dir.path(), "good.v", &DUT_4_2);
        let r = prove_equiv_with(
            &[good],
            "sd_rebuild",
            &[reference()],
            "sd_rebuild_ref",
            &params(4, 2),
            &dir.path().join("good"),
            &ProofOptions {
                timeout: Some(Duration::from_secs(300)),
                ..ProofOptions::default()
            },
        )
        .unwrap();
        assert_eq!(r.result, ProofResult::Proved);
        assert_eq!(r.engine, ProofEngine::Abc);
        assert!(!r.sequential);

        let bad = write(dir.path(), "bad.v", &drop_last_carry(&DUT_4_2));
        let r = prove_equiv(
            &[bad],
            "sd_rebuild",
            &[reference()],
            "sd_rebuild_ref",
            &params(4, 2),
            &dir.path().join("bad"),
        )
        .unwrap();
        match r {
            ProofResult::Failed { counterexample } => {
                assert!(counterexample.contains("in_ce_i"), "{counterexample}");
                assert!(counterexample.contains("gate_w_o"), "{counterexample}");
            }
            other => panic!("expected Failed, got {other:?}"),
        }
    }

    #[test]
    fn broken_rebuild_8_3_fails_with_both_engines() {
        let dir = tempfile::tempdir().unwrap();
        let bad = write(dir.path(), "bad.v", &drop_last_carry(&DUT_8_3));
        for engine in [ProofEngine::YosysSat, ProofEngine::Abc] {
            let r = prove_equiv_with(
                std::slice::from_ref(&bad),
                "sd_rebuild",
                &[reference()],
                "sd_rebuild_ref",
                &params(8, 3),
                &dir.path().join(format!("{engine:?}")),
                &ProofOptions {
                    engine,
                    timeout: Some(Duration::from_secs(120)),
                    ..ProofOptions::default()
                },
            )
            .unwrap();
            match r.result {
                ProofResult::Failed { counterexample } => {
                    assert!(counterexample.contains("in_b_i"), "{counterexample}")
                }
                other => panic!("{engine:?}: expected Failed, got {other:?}"),
            }
        }
    }

    #[test]
    fn syntax_error_is_err_not_failed() {
        let dir = tempfile::tempdir().unwrap();
        let bad = write(
            dir.path(),
            "sd_rebuild.v",
            &DUT_4_2.replace("assign s[k] = n;", "assign s[k] = n"),
        );
        let err = prove_equiv(
            &[bad],
            "sd_rebuild",
            &[reference()],
            "sd_rebuild_ref",
            &params(4, 2),
            &dir.path().join("work"),
        )
        .unwrap_err();
        match &err {
            ToolError::Failed { tool, tail, .. } => {
                assert_eq!(*tool, Tool::Yosys);
                assert!(tail.contains("ERROR"), "{tail}");
            }
            other => panic!("expected Failed, got {other}"),
        }
    }

    #[test]
    fn same_module_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = prove_equiv(
            &[reference()],
            "sd_rebuild_ref",
            &[reference()],
            "sd_rebuild_ref",
            &[],
            dir.path(),
        )
        .unwrap_err();
        assert!(matches!(err, ToolError::InvalidInput(_)), "{err}");
    }

    #[test]
    fn sequential_equivalence_uses_temporal_induction() {
        // Two different formulations of a registered accumulator.
        let dir = tempfile::tempdir().unwrap();
        let a = write(
            dir.path(),
            "acc_a.v",
            "module acc_a (input wire clk, input wire [7:0] x, output reg [7:0] y);\n\
             always @(posedge clk) y <= y + x;\nendmodule\n",
        );
        let b = write(
            dir.path(),
            "acc_b.v",
            "module acc_b (input wire clk, input wire [7:0] x, output reg [7:0] y);\n\
             always @(posedge clk) y <= y - (~x) - 8'd1;\nendmodule\n",
        );
        let r = prove_equiv_with(
            std::slice::from_ref(&a),
            "acc_a",
            std::slice::from_ref(&b),
            "acc_b",
            &[],
            &dir.path().join("ok"),
            &ProofOptions::default(),
        )
        .unwrap();
        assert_eq!(r.result, ProofResult::Proved);
        assert!(r.sequential);
        assert_eq!(r.engine, ProofEngine::YosysSat);

        let c = write(
            dir.path(),
            "acc_c.v",
            "module acc_c (input wire clk, input wire [7:0] x, output reg [7:0] y);\n\
             always @(posedge clk) y <= y + x + {7'd0, y[7]};\nendmodule\n",
        );
        let r = prove_equiv(&[c], "acc_c", &[b], "acc_b", &[], &dir.path().join("bad")).unwrap();
        assert!(matches!(r, ProofResult::Failed { .. }), "{r:?}");
    }

    #[test]
    fn negative_parameters_are_hex() {
        assert_eq!(yosys_param_value(8), "8");
        assert_eq!(yosys_param_value(-3), "64'shfffffffffffffffd");
    }

    #[test]
    fn cex_mapping() {
        let cex =
            "# FALSIFYING OUTPUTS: po0\n# COUNTEREXAMPLE LENGTH: 1\npi00@0=1\npi01@0=0\npi02@0=1\n";
        let map = "input 0 0 in_a\ninput 1 1 in_a\ninput 2 0 in_b\noutput 0 0 trigger\n";
        let a = cex_to_assignment(cex, map).unwrap();
        assert_eq!(a["in_a"], "2'b01");
        assert_eq!(a["in_b"], "1'b1");
    }

    // ---- case-split proofs ----

    fn split_4_2() -> (CaseSplit, SplitOptions) {
        let layout = crate::RebuildLayout::new(4, 2).unwrap();
        (layout.code_split(), layout.split_options())
    }

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

    #[test]
    fn split_log_parsing() {
        let log = "time\nSDCASE 4 \nUNSATISFIABLE  Time =     0.00 sec\nelapse: 0.07 seconds, total: 0.07 seconds\n\
                   SDCASE 5 \nSATISFIABLE  Time = 0.0 sec\nelapse: 0.02 seconds, total: 0.09 seconds\n\
                   SDCASE 6 \nError: Collapsing has failed.\n";
        let p = parse_split_log(log);
        assert_eq!(p.len(), 3);
        assert_eq!((p[0].0, p[0].1), (4, Some(true)));
        assert!((p[0].2 - 0.07).abs() < 1e-9);
        assert_eq!((p[1].0, p[1].1), (5, Some(false)));
        assert_eq!((p[2].0, p[2].1), (6, None));
    }

    #[test]
    fn aiger_input_names_follow_yosys_symbols() {
        let map = "input 0 0 a\ninput 1 0 b\ninput 2 1 b\noutput 0 0 y\n";
        let inputs = aiger_inputs(map).unwrap();
        let names: Vec<_> = inputs.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["a", "b[0]", "b[1]"]);
    }

    #[test]
    fn rebuild_4_2_split_proof_proves_and_refutes() {
        let dir = tempfile::tempdir().unwrap();
        let (split, opts) = split_4_2();
        let good = write(dir.path(), "good.v", &DUT_4_2);
        let r = prove_equiv_split(
            &[good],
            "sd_rebuild",
            &[reference()],
            "sd_rebuild_ref",
            &params(4, 2),
            &dir.path().join("good"),
            &split,
            &opts,
        )
        .unwrap();
        assert_eq!(r.result, ProofResult::Proved, "{r:?}");
        assert_eq!((r.cases, r.proved_cases), (64, 64));

        let bad = write(dir.path(), "bad.v", &drop_last_carry(&DUT_4_2));
        let r = prove_equiv_split(
            &[bad],
            "sd_rebuild",
            &[reference()],
            "sd_rebuild_ref",
            &params(4, 2),
            &dir.path().join("bad"),
            &split,
            &opts,
        )
        .unwrap();
        match r.result {
            ProofResult::Failed { counterexample } => {
                assert!(
                    counterexample.starts_with("case 0 of 64 (ce_i[3:2]=2'b00 "),
                    "{counterexample}"
                );
                assert!(counterexample.contains("in_b_i"), "{counterexample}");
                assert!(counterexample.contains("gate_w_o"), "{counterexample}");
            }
            other => panic!("expected Failed, got {other:?}"),
        }
        assert_eq!(r.failed_cases.first(), Some(&0));
    }

    /// The cofactors pin exactly the split bits: the gate adds `c[1] & c[0]`, so of the four
    /// cases of a split on c[0] and c[1] exactly case 3 (both 1) fails.
    #[test]
    fn split_cofactors_pin_the_chosen_bits() {
        let dir = tempfile::tempdir().unwrap();
        let gold = write(
            dir.path(),
            "gold.v",
            "module add_gold (input wire [7:0] a, input wire [7:0] b, input wire [2:0] c,\n\
             output wire [7:0] y);\n  assign y = a + b + {7'd0, c[2]};\nendmodule\n",
        );
        let gate = write(
            dir.path(),
            "gate.v",
            "module add_gate (input wire [7:0] a, input wire [7:0] b, input wire [2:0] c,\n\
             output wire [7:0] y);\n  assign y = b + a + {7'd0, c[2]} + {7'd0, c[1] & c[0]};\nendmodule\n",
        );
        let split =
            CaseSplit::new(vec![SplitField::new("c", 0, 1), SplitField::new("c", 1, 1)]).unwrap();
        let r = prove_equiv_split(
            &[gate],
            "add_gate",
            &[gold],
            "add_gold",
            &[],
            &dir.path().join("w"),
            &split,
            &SplitOptions {
                jobs: 1,
                cases_per_run: 4,
                ..SplitOptions::default()
            },
        )
        .unwrap();
        assert_eq!(r.failed_cases, vec![3]);
        assert_eq!(r.proved_cases, 3);
        match r.result {
            ProofResult::Failed { counterexample } => assert!(
                counterexample.starts_with("case 3 of 4 (c[0:0]=1'b1 c[1:1]=1'b1) fails:"),
                "{counterexample}"
            ),
            other => panic!("expected Failed, got {other:?}"),
        }
    }

    /// [`crate::prove_rebuild`] at 8/3: symmetry lemmas + column 0, refutes the dropped
    /// carry with a counterexample of the column-0 wrappers.
    #[test]
    fn prove_rebuild_8_3_refutes_a_dropped_carry() {
        let dir = tempfile::tempdir().unwrap();
        let layout = crate::RebuildLayout::new(8, 3).unwrap();
        let bad = write(dir.path(), "bad.v", &drop_last_carry(&DUT_8_3));
        let r = crate::prove_rebuild(
            &[bad],
            &reference(),
            &layout,
            &dir.path().join("bad"),
            &SplitOptions {
                timeout: Some(Duration::from_secs(300)),
                ..layout.split_options()
            },
        )
        .unwrap();
        assert_eq!(r.columns, crate::ColumnCoverage::Symmetry);
        match r.result {
            ProofResult::Failed { counterexample } => {
                assert!(
                    counterexample.contains(" of 512 (ce_i[4:2]="),
                    "{counterexample}"
                );
                assert!(counterexample.contains("in_ce_i"), "{counterexample}");
                assert!(counterexample.contains("in_b_i"), "{counterexample}");
            }
            other => panic!("expected Failed, got {other:?}"),
        }
    }

    /// [`crate::prove_rebuild`] at 4/2: proved through the symmetry lemmas; a DUT whose
    /// columns differ (the carry dropped in column 2 only) fails the DUT lemma, falls back to
    /// all columns and is refuted there.
    #[test]
    fn prove_rebuild_4_2_symmetry_and_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let layout = crate::RebuildLayout::new(4, 2).unwrap();
        let opts = SplitOptions {
            timeout: Some(Duration::from_secs(300)),
            ..layout.split_options()
        };
        let good = write(dir.path(), "good.v", &DUT_4_2);
        let r = crate::prove_rebuild(
            &[good],
            &reference(),
            &layout,
            &dir.path().join("good"),
            &opts,
        )
        .unwrap();
        assert_eq!(r.result, ProofResult::Proved, "{r:?}");
        assert_eq!(r.columns, crate::ColumnCoverage::Symmetry);
        assert_eq!(r.split.proved_cases, 64);

        let skewed = DUT_4_2.replace(" + {8'd0, s[2]}", " + {8'd0, s[2] & (j != 2)}");
        assert_ne!(skewed, *DUT_4_2);
        let bad = write(dir.path(), "skewed.v", &skewed);
        let r = crate::prove_rebuild(
            &[bad],
            &reference(),
            &layout,
            &dir.path().join("skewed"),
            &opts,
        )
        .unwrap();
        match &r.columns {
            crate::ColumnCoverage::AllColumns(why) => assert!(why.contains("DUT"), "{why}"),
            other => panic!("expected the all-columns fallback, got {other:?}"),
        }
        match r.result {
            ProofResult::Failed { counterexample } => {
                assert!(counterexample.contains("gate_w_o"), "{counterexample}")
            }
            other => panic!("expected Failed, got {other:?}"),
        }
    }

    #[test]
    fn rotation_wrapper_rotates_columns() {
        let layout = crate::RebuildLayout::new(4, 2).unwrap();
        let text = layout.rotation_wrapper("sd_rebuild");
        // B[1][2] <- B[1][0]: bits [(1*3+2)*4 +: 4] = [20 +: 4] <- [12 +: 4].
        assert!(
            text.contains("assign b_rot[20 +: 4] = b_i[12 +: 4];"),
            "{text}"
        );
        // w_o[0] <- w_rot[2] (RB = 9).
        assert!(
            text.contains("assign w_o[0 +: 9] = w_rot[18 +: 9];"),
            "{text}"
        );
        assert!(layout
            .rotation_wrapper("sd_rebuild_ref")
            .contains("sd_rebuild_ref #(.BasisBits(4), .ExpBits(2)) u_inner"));
    }

    #[test]
    fn split_on_a_missing_port_is_invalid_input() {
        let dir = tempfile::tempdir().unwrap();
        let good = write(dir.path(), "good.v", &DUT_4_2);
        for field in [
            SplitField::new("nope", 0, 1),
            SplitField::new("ce_i", 11, 2),
        ] {
            let err = prove_equiv_split(
                std::slice::from_ref(&good),
                "sd_rebuild",
                &[reference()],
                "sd_rebuild_ref",
                &params(4, 2),
                &dir.path().join("w"),
                &CaseSplit::new(vec![field]).unwrap(),
                &SplitOptions::default(),
            )
            .unwrap_err();
            assert!(matches!(err, ToolError::InvalidInput(_)), "{err}");
        }
    }

    /// The full 8/3 proof: ~1.5 min with ABC on a 2-core machine (yosys sat alone does not
    /// finish in 5 min). Run with `cargo test -p smartdeal-fpga -- --ignored`.
    #[test]
    #[ignore = "slow: full 8/3 rebuild proof (minutes)"]
    fn rebuild_8_3_is_proved() {
        let dir = tempfile::tempdir().unwrap();
        let good = write(dir.path(), "good.v", &DUT_8_3);
        let r = prove_equiv_with(
            &[good],
            "sd_rebuild",
            &[reference()],
            "sd_rebuild_ref",
            &params(8, 3),
            &dir.path().join("good"),
            &ProofOptions {
                timeout: Some(Duration::from_secs(1200)),
                ..ProofOptions::default()
            },
        )
        .unwrap();
        assert_eq!(r.result, ProofResult::Proved, "{r:?}");
    }
}
