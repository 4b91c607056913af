//! The `yosys-abc` runs: the ABC engine of [`prove_equiv_with`](super::prove_equiv_with)
//! (`iprove` on the whole miter) and the case-split runs of
//! [`prove_equiv_split`](super::prove_equiv_split), several at a time, each started with
//! glibc `malloc` settings that suit ABC's BDDs.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use super::log::{cex_to_assignment, counterexample_table, parse_split_log};
use super::scripts::aig_script;
use super::split::CaseSplit;
use super::verdict::ProofResult;
use crate::tools::{self, Capture, Tool, ToolError};

/// The `yosys-abc` command line of the ABC engine.
pub const ABC_COMMANDS: &str = "read_aiger miter.aig; iprove; write_cex -n miter.cex";

/// [`ProofEngine::Abc`](super::ProofEngine::Abc): exports the miter as an AIG
/// (`equiv_aig.ys`), runs [`ABC_COMMANDS`] and replays a counterexample with yosys `sat`
/// (`equiv_cex.ys`).
pub(super) fn prove_with_abc(
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

/// Verdicts of one ABC run: `(case index, proved, seconds)`.
pub(super) struct RunVerdicts {
    pub(super) log: PathBuf,
    pub(super) verdicts: Vec<(u64, bool, f64)>,
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

/// Parallel `yosys-abc` processes: `jobs`, or the number of CPUs for 0, but no more than
/// there are `runs` and at least one.
pub(super) fn job_count(jobs: usize, runs: usize) -> usize {
    match jobs {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .min(runs)
    .max(1)
}

/// Runs the case-split ABC scripts `runs` (`(name, case indices)`: `<name>.abc` in `work`),
/// `jobs` at a time; stops taking new runs once a case is refuted (or a run fails). Returns
/// the outcome of every run that was started, in run order.
pub(super) fn run_split_pool(
    abc: &Path,
    work: &Path,
    runs: &[(String, Vec<u64>)],
    jobs: usize,
    split: &CaseSplit,
    deadline: Option<Instant>,
) -> Vec<(usize, Result<RunVerdicts, ToolError>)> {
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
                let outcome = run_split_abc(abc, work, name, indices, split, deadline);
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
    outcomes
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
