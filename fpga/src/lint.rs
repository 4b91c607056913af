//! `verilator --lint-only -Wall` driver.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::tools::{self, Capture, Tool, ToolError};

/// Options beyond the plain [`lint`] call.
#[derive(Debug, Clone, Default)]
pub struct LintOptions {
    /// A Verilator configuration file (`.vlt`, e.g. `hdl/lint/waivers.vlt`), passed before the sources.
    pub waivers: Option<PathBuf>,
    /// Top-level parameter overrides, passed as `-G<name>=<value>`.
    pub params: Vec<(String, i64)>,
    /// Kill verilator after this long (`None`: no limit).
    pub timeout: Option<Duration>,
}

/// One `%Warning-CODE:` or `%Error:` message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LintMessage {
    /// The warning/error code (`WIDTH`, `UNUSEDSIGNAL`, ...); `None` for a plain `%Error:`.
    pub code: Option<String>,
    pub file: Option<PathBuf>,
    pub line: Option<u32>,
    pub column: Option<u32>,
    /// The message text after the location.
    pub message: String,
}

impl std::fmt::Display for LintMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(code) = &self.code {
            write!(f, "{code}: ")?;
        }
        if let Some(file) = &self.file {
            write!(f, "{}", file.display())?;
            if let Some(line) = self.line {
                write!(f, ":{line}")?;
                if let Some(col) = self.column {
                    write!(f, ":{col}")?;
                }
            }
            write!(f, ": ")?;
        }
        f.write_str(&self.message)
    }
}

/// What `verilator --lint-only -Wall` said.
#[derive(Debug, Clone, Serialize)]
pub struct LintReport {
    pub top: String,
    /// Every `%Warning-XXX:` line, parsed.
    pub warnings: Vec<LintMessage>,
    /// Every `%Error...:` line except the closing "Exiting due to N ..." summary
    /// (syntax errors, a missing top module, ...).
    pub errors: Vec<LintMessage>,
    /// Whether verilator exited with status 0.
    pub exit_ok: bool,
    /// The saved verilator output (`<work>/lint.log`).
    pub log: PathBuf,
    pub elapsed_secs: f64,
}

impl LintReport {
    /// Lint passes iff verilator reported no warning and no error.
    pub fn passed(&self) -> bool {
        self.exit_ok && self.warnings.is_empty() && self.errors.is_empty()
    }

    /// One line per message, for assertion messages and reports.
    pub fn summary(&self) -> String {
        self.errors
            .iter()
            .chain(&self.warnings)
            .map(|m| m.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Runs `verilator --lint-only -Wall --top-module TOP [waivers.vlt] files...` in `work`,
/// saving the output as `work/lint.log`. Lint findings are returned in the report; `Err`
/// only when verilator cannot be found or run, or produced no diagnosable output.
pub fn lint(
    files: &[PathBuf],
    top: &str,
    waivers: Option<&Path>,
    work: &Path,
) -> Result<LintReport, ToolError> {
    lint_with(
        files,
        top,
        &LintOptions {
            waivers: waivers.map(Path::to_path_buf),
            ..LintOptions::default()
        },
        work,
    )
}

/// [`lint`] with parameter overrides and a time limit.
pub fn lint_with(
    files: &[PathBuf],
    top: &str,
    opts: &LintOptions,
    work: &Path,
) -> Result<LintReport, ToolError> {
    tools::check_identifier("top module", top)?;
    let verilator = tools::find_tool(Tool::Verilator)?;
    let work = tools::prepare_work_dir(work)?;
    let files = tools::absolute_inputs(files)?;
    let mut args: Vec<OsString> = vec![
        "--lint-only".into(),
        "-Wall".into(),
        "--top-module".into(),
        top.into(),
        // Nothing should be written for lint, but keep anything verilator creates inside `work`.
        "--Mdir".into(),
        work.join("verilator_lint").into(),
    ];
    for (name, value) in &opts.params {
        tools::check_identifier("parameter", name)?;
        args.push(format!("-G{name}={value}").into());
    }
    if let Some(waivers) = &opts.waivers {
        let waivers = tools::absolute_inputs(std::slice::from_ref(waivers))?;
        args.push(waivers[0].clone().into());
    }
    args.extend(files.iter().map(|f| f.clone().into()));

    let log = work.join("lint.log");
    let outcome = tools::run(
        Tool::Verilator,
        &verilator,
        &args,
        &work,
        Capture::Both(&log),
        &log,
        opts.timeout,
    )?;
    let text = tools::read_text(&log)?;
    let (warnings, errors, saw_summary) = parse_verilator_output(&text);
    let exit_ok = outcome.status.success();
    if !exit_ok && warnings.is_empty() && errors.is_empty() && !saw_summary {
        // Non-zero exit without a single diagnostic: verilator itself misbehaved.
        return Err(ToolError::Failed {
            tool: Tool::Verilator,
            status: tools::describe_status(&outcome.status),
            log: log.clone(),
            tail: tools::tail_lines(&text, tools::LOG_TAIL_LINES),
        });
    }
    Ok(LintReport {
        top: top.to_string(),
        warnings,
        errors,
        exit_ok,
        log,
        elapsed_secs: outcome.elapsed.as_secs_f64(),
    })
}

/// Splits verilator output into warnings and errors. The third value tells whether the
/// "Exiting due to ..." summary was seen.
pub(crate) fn parse_verilator_output(text: &str) -> (Vec<LintMessage>, Vec<LintMessage>, bool) {
    let mut warnings = Vec::new();
    let mut errors = Vec::new();
    let mut saw_summary = false;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix('%') else {
            continue;
        };
        let (is_warning, head_rest) = if let Some(r) = rest.strip_prefix("Warning") {
            (true, r)
        } else if let Some(r) = rest.strip_prefix("Error") {
            (false, r)
        } else {
            continue;
        };
        // head_rest is "-CODE: body" or ": body".
        let (code, body) = if let Some(r) = head_rest.strip_prefix('-') {
            match r.split_once(": ") {
                Some((code, body)) => (Some(code.to_string()), body),
                None => (Some(r.trim_end_matches(':').to_string()), ""),
            }
        } else if let Some(body) = head_rest.strip_prefix(": ") {
            (None, body)
        } else if head_rest == ":" {
            (None, "")
        } else {
            continue;
        };
        if !is_warning && code.is_none() && body.starts_with("Exiting due to") {
            saw_summary = true;
            continue;
        }
        let msg = parse_location(code, body);
        if is_warning {
            warnings.push(msg);
        } else {
            errors.push(msg);
        }
    }
    (warnings, errors, saw_summary)
}

/// Parses `file:line:col: message` (or `file:line: message`) at the start of `body`.
fn parse_location(code: Option<String>, body: &str) -> LintMessage {
    for (i, _) in body.match_indices(':') {
        // Try "<digits>:<digits>: " or "<digits>: " after this colon.
        let after = &body[i + 1..];
        let line_digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if line_digits == 0 || i == 0 {
            continue;
        }
        let line: Option<u32> = after[..line_digits].parse().ok();
        let rest = &after[line_digits..];
        let (column, message) = if let Some(r) = rest.strip_prefix(':') {
            let col_digits = r.bytes().take_while(u8::is_ascii_digit).count();
            if col_digits > 0 && r[col_digits..].starts_with(": ") {
                (r[..col_digits].parse().ok(), &r[col_digits + 2..])
            } else if r.starts_with(' ') {
                (None, r.trim_start())
            } else {
                continue;
            }
        } else {
            continue;
        };
        return LintMessage {
            code,
            file: Some(PathBuf::from(&body[..i])),
            line,
            column,
            message: message.to_string(),
        };
    }
    LintMessage {
        code,
        file: None,
        line: None,
        column: None,
        message: body.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
%Warning-WIDTH: /tmp/x/w.v:2:12: Operator ASSIGNW expects 4 bits on the Assign RHS, but Assign RHS's VARREF 'a' generates 8 bits.
                        : ... In instance w
    2 |   assign y = a;
      |            ^
                ... For warning description see https://verilator.org/warn/WIDTH?v=5.006
%Warning-UNUSEDSIGNAL: /tmp/x/w.v:1:27: Bits of signal are not used: 'a'[7:4]
%Error: /tmp/x/s.v:2:3: syntax error, unexpected assign, expecting ';'
%Error: Specified --top-module 'nope' was not found in design.
%Error: Exiting due to 2 warning(s)
";

    #[test]
    fn parses_verilator_messages() {
        let (w, e, summary) = parse_verilator_output(SAMPLE);
        assert!(summary);
        assert_eq!(w.len(), 2);
        assert_eq!(w[0].code.as_deref(), Some("WIDTH"));
        assert_eq!(w[0].file.as_deref(), Some(Path::new("/tmp/x/w.v")));
        assert_eq!((w[0].line, w[0].column), (Some(2), Some(12)));
        assert!(w[0].message.starts_with("Operator ASSIGNW"));
        assert_eq!(w[1].code.as_deref(), Some("UNUSEDSIGNAL"));
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].code, None);
        assert_eq!(e[0].line, Some(2));
        assert!(e[0].message.starts_with("syntax error"));
        assert_eq!(e[1].file, None);
        assert!(e[1].message.contains("nope"));
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn clean_design_passes() {
        let dir = tempfile::tempdir().unwrap();
        let f = write(
            dir.path(),
            "inv.v",
            "`default_nettype none\nmodule inv (\n    input  wire [3:0] a,\n    output wire [3:0] y\n);\n    assign y = ~a;\nendmodule\n",
        );
        let r = lint(&[f], "inv", None, &dir.path().join("work")).unwrap();
        assert!(r.passed(), "{}", r.summary());
        assert!(r.log.is_file());
    }

    #[test]
    fn width_mismatch_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let f = write(
            dir.path(),
            "trunc.v",
            "module trunc (\n    input  wire [7:0] a,\n    output wire [3:0] y\n);\n    assign y = a;\nendmodule\n",
        );
        let r = lint(
            std::slice::from_ref(&f),
            "trunc",
            None,
            &dir.path().join("work"),
        )
        .unwrap();
        assert!(!r.passed());
        let width = r
            .warnings
            .iter()
            .find(|w| w.code.as_deref().is_some_and(|c| c.starts_with("WIDTH")))
            .unwrap_or_else(|| panic!("no WIDTH warning in\n{}", r.summary()));
        assert_eq!(width.line, Some(5));
        assert_eq!(
            width
                .file
                .as_deref()
                .map(std::fs::canonicalize)
                .unwrap()
                .unwrap(),
            std::fs::canonicalize(&f).unwrap()
        );
    }

    #[test]
    fn syntax_error_is_a_failed_report_not_err() {
        let dir = tempfile::tempdir().unwrap();
        let f = write(
            dir.path(),
            "bad.v",
            "module bad (input wire a, output wire y)\n    assign y = a;\nendmodule\n",
        );
        let r = lint(&[f], "bad", None, &dir.path().join("work")).unwrap();
        assert!(!r.passed());
        assert!(!r.errors.is_empty());
    }

    #[test]
    fn reference_model_is_lint_clean_for_several_parameter_sets() {
        let reference =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../hdl/formal/sd_rebuild_ref.v");
        let dir = tempfile::tempdir().unwrap();
        for (b, e) in [(8, 3), (4, 2), (6, 4), (8, 1)] {
            let opts = LintOptions {
                params: vec![("BasisBits".into(), b), ("ExpBits".into(), e)],
                ..LintOptions::default()
            };
            let r = lint_with(
                std::slice::from_ref(&reference),
                "sd_rebuild_ref",
                &opts,
                &dir.path().join(format!("w{b}_{e}")),
            )
            .unwrap();
            assert!(r.passed(), "BasisBits={b} ExpBits={e}:\n{}", r.summary());
        }
    }
}
