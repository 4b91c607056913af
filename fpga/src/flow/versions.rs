//! Tool versions for the report, asked once per program and process.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::tools::{self, Capture, Tool};

/// Versions are asked once per program and process (a YoWASP start costs a second or two).
fn version_cache() -> &'static Mutex<HashMap<PathBuf, String>> {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, String>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// First non-empty output line of `program args` (run in `work`, output kept in
/// `version_<program>.log`), or "unknown (...)". A version is informative, so never an error.
pub(super) fn tool_version(
    tool: Tool,
    program: &Path,
    args: &[&str],
    env: &[(&str, OsString)],
    work: &Path,
) -> String {
    if let Some(v) = version_cache()
        .lock()
        .ok()
        .and_then(|c| c.get(program).cloned())
    {
        return v;
    }
    let log = work.join(format!("version_{}.log", tool.program()));
    let args: Vec<OsString> = args.iter().map(OsString::from).collect();
    let version = match tools::run_with_env(
        tool,
        program,
        &args,
        env,
        work,
        Capture::Both(&log),
        &log,
        Some(Duration::from_secs(120)),
    ) {
        Ok(_) => tools::read_text(&log)
            .ok()
            .and_then(|t| {
                t.lines()
                    .map(str::trim)
                    // A YoWASP tool announces a cold WebAssembly cache first.
                    .find(|l| !l.is_empty() && !l.starts_with("Preparing to run"))
                    .map(str::to_string)
            })
            .unwrap_or_else(|| "unknown (no output)".into()),
        Err(e) => format!("unknown ({e})"),
    };
    if let Ok(mut c) = version_cache().lock() {
        c.insert(program.to_path_buf(), version.clone());
    }
    version
}

/// icepack has no version option: ask dpkg for the package that owns it (Debian's
/// `fpga-icestorm`), else "unknown".
pub(super) fn icestorm_version(icepack: &Path) -> String {
    if let Some(v) = version_cache()
        .lock()
        .ok()
        .and_then(|c| c.get(icepack).cloned())
    {
        return v;
    }
    let version = std::process::Command::new("dpkg-query")
        .args(["-W", "-f", "${Package} ${Version}", "fpga-icestorm"])
        .stdin(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success() && icepack.starts_with("/usr"))
        .map(|o| format!("icepack ({})", String::from_utf8_lossy(&o.stdout).trim()))
        .unwrap_or_else(|| "icepack (version unknown: no version option)".into());
    if let Ok(mut c) = version_cache().lock() {
        c.insert(icepack.to_path_buf(), version.clone());
    }
    version
}
