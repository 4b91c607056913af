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
//!
//! Measured on this project's 2-core machine (yosys 0.23), DUT = shift-add rebuild with folded
//! negation vs `hdl/formal/sd_rebuild_ref.v`: yosys `sat` (MiniSAT) does not finish the 3-term
//! rebuild proof in 5 minutes even at BasisBits = 4, ExpBits = 2 (differently associated adders
//! around variable shifts are hard for plain CDCL); ABC `iprove` proves 4/2 in about 4 s and
//! 8/3 in 1.5 to 7 minutes (the time swings with the AIG's node order). Counterexamples of
//! broken designs take about a second with either engine.
//!
//! A counterexample is [`ProofResult::Failed`]; a yosys/ABC failure (syntax error, port
//! mismatch, crash, time limit, induction that does not close) is a [`ToolError`].

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
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
    let yosys = tools::find_tool(Tool::Yosys)?;
    let work = tools::prepare_work_dir(work)?;
    let dut_files = tools::absolute_inputs(dut_files)?;
    let ref_files = tools::absolute_inputs(ref_files)?;
    let mut logs = Vec::new();

    // 1. Miter.
    let script = prepare_script(&dut_files, dut_top, &ref_files, ref_top, ref_params)?;
    let run = tools::run_yosys_script(
        &yosys,
        &work,
        "equiv_prepare",
        &script,
        tools::remaining(deadline),
    )?;
    logs.push(run.log_path.clone());
    run.ensure_success()?;
    let state_cells: Vec<String> = tools::read_text(&work.join("state.txt"))?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn reference() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../hdl/formal/sd_rebuild_ref.v")
    }

    /// Independent shift-add rebuild, BasisBits = 8, ExpBits = 3 (RB = 17): the operand is
    /// gated with `present` and XORed with `neg = present & negative` before the shift, the
    /// vacated bits are filled with `neg`, and the three `neg` carries are added at the end
    /// (x ^ -1 = -x - 1, so ((~b) << c | (2^c - 1)) + 1 = -(b << c)).
    const DUT_8_3: &str = "\
`default_nettype none
module sd_rebuild (
    input  wire [71:0] b_i,
    input  wire [14:0] ce_i,
    output wire [50:0] w_o
);
    genvar j, k;
    generate
        for (j = 0; j < 3; j = j + 1) begin : g_col
            wire [16:0] sh [0:2];
            wire [2:0]  s;
            for (k = 0; k < 3; k = k + 1) begin : g_row
                wire       p = ce_i[k*5];
                wire       n = ce_i[k*5+1] & p;
                wire [2:0] c = ce_i[k*5+2 +: 3];
                wire [7:0] x = (b_i[(k*3+j)*8 +: 8] & {8{p}}) ^ {8{n}};
                wire [16:0] xe = {{9{x[7]}}, x};
                assign sh[k] = (xe << c) | (~(17'h1ffff << c) & {17{n}});
                assign s[k] = n;
            end
            assign w_o[j*17 +: 17] = sh[0] + sh[1] + sh[2]
                                   + {16'd0, s[0]} + {16'd0, s[1]} + {16'd0, s[2]};
        end
    endgenerate
endmodule
";

    /// The same for BasisBits = 4, ExpBits = 2 (RB = 9), written out separately.
    const DUT_4_2: &str = "\
`default_nettype none
module sd_rebuild (
    input  wire [35:0] b_i,
    input  wire [11:0] ce_i,
    output wire [26:0] w_o
);
    genvar j, k;
    generate
        for (j = 0; j < 3; j = j + 1) begin : g_col
            wire [8:0] sh [0:2];
            wire [2:0] s;
            for (k = 0; k < 3; k = k + 1) begin : g_row
                wire       p = ce_i[k*4];
                wire       n = ce_i[k*4+1] & p;
                wire [1:0] c = ce_i[k*4+2 +: 2];
                wire [3:0] x = (b_i[(k*3+j)*4 +: 4] & {4{p}}) ^ {4{n}};
                wire [8:0] xe = {{5{x[3]}}, x};
                assign sh[k] = (xe << c) | (~(9'h1ff << c) & {9{n}});
                assign s[k] = n;
            end
            assign w_o[j*9 +: 9] = sh[0] + sh[1] + sh[2]
                                 + {8'd0, s[0]} + {8'd0, s[1]} + {8'd0, s[2]};
        end
    endgenerate
endmodule
";

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
        for (i, text) in [DUT_8_3, DUT_4_2].iter().enumerate() {
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
        let good = write(dir.path(), "good.v", DUT_4_2);
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

        let bad = write(dir.path(), "bad.v", &drop_last_carry(DUT_4_2));
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
        let bad = write(dir.path(), "bad.v", &drop_last_carry(DUT_8_3));
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

    /// The full 8/3 proof: ~1.5 min with ABC on a 2-core machine (yosys sat alone does not
    /// finish in 5 min). Run with `cargo test -p smartdeal-fpga -- --ignored`.
    #[test]
    #[ignore = "slow: full 8/3 rebuild proof (minutes)"]
    fn rebuild_8_3_is_proved() {
        let dir = tempfile::tempdir().unwrap();
        let good = write(dir.path(), "good.v", DUT_8_3);
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
