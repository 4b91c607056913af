//! Yosys synthesis drivers: iCE40 synthesis with cell statistics, and a quick generic
//! structural check (latches, multiple drivers, undriven wires, logic loops).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::tools::{self, Tool, ToolError};

/// Yosys selection of every latch cell type, coarse (after `proc`) and fine-grained.
pub const LATCH_SELECTION: &str = "t:$dlatch t:$adlatch t:$dlatchsr t:$_DLATCH_* t:$_DLATCHSR_*";

/// Options beyond the plain [`synth_ice40`] call.
#[derive(Debug, Clone, Default)]
pub struct Ice40Options {
    /// Map multipliers to SB_MAC16 (`synth_ice40 -dsp`). Yosys then maps *every* multiplier to
    /// a DSP and never falls back; the UP5K has 8.
    pub dsp: bool,
    /// Map single-port memories to SB_SPRAM256KA (`synth_ice40 -spram`).
    pub spram: bool,
    /// Kill yosys after this long (`None`: no limit).
    pub timeout: Option<Duration>,
}

/// Result of [`synth_ice40`].
#[derive(Debug, Clone, Serialize)]
pub struct SynthReport {
    pub top: String,
    /// Latch cells found right after `proc` (before any optimisation), counted per module
    /// definition (a latch in a module instantiated twice counts once).
    pub latch_count: u64,
    /// Those latch cells as `module/cell`.
    pub latch_cells: Vec<String>,
    /// Signals yosys reported as "Latch inferred for signal ..." (`module.signal`).
    pub latch_signals: Vec<String>,
    /// Cell counts of the synthesized netlist by type (`SB_LUT4`, `SB_DFF`, `SB_CARRY`, ...).
    pub cells: BTreeMap<String, u64>,
    pub total_cells: u64,
    /// Logic-cell estimate if yosys printed one ("Estimated number of LCs"); Yosys 0.23 does
    /// not for iCE40, nextpnr's report is the real number.
    pub lc_estimate: Option<u64>,
    /// Full yosys log.
    pub log: PathBuf,
    /// `stat` text output and the synthesized netlist.
    pub stat: PathBuf,
    pub json: PathBuf,
    pub elapsed_secs: f64,
}

impl SynthReport {
    fn count_where(&self, pred: impl Fn(&str) -> bool) -> u64 {
        self.cells
            .iter()
            .filter(|(k, _)| pred(k))
            .map(|(_, v)| *v)
            .sum()
    }
    /// `SB_LUT4` cells.
    pub fn luts(&self) -> u64 {
        self.count_where(|k| k == "SB_LUT4")
    }
    /// All `SB_DFF*` flip-flop variants.
    pub fn flip_flops(&self) -> u64 {
        self.count_where(|k| k.starts_with("SB_DFF"))
    }
    /// `SB_CARRY` cells.
    pub fn carries(&self) -> u64 {
        self.count_where(|k| k == "SB_CARRY")
    }
    /// Block RAMs (`SB_RAM40_4K*`).
    pub fn block_rams(&self) -> u64 {
        self.count_where(|k| k.starts_with("SB_RAM40_4K"))
    }
    /// UP5K single-port RAMs (`SB_SPRAM256KA`).
    pub fn sprams(&self) -> u64 {
        self.count_where(|k| k == "SB_SPRAM256KA")
    }
    /// DSP blocks (`SB_MAC16`).
    pub fn dsps(&self) -> u64 {
        self.count_where(|k| k == "SB_MAC16")
    }
}

/// Result of [`synth_generic_check`].
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub top: String,
    /// Latch cells after `proc` (see [`SynthReport::latch_count`]).
    pub latch_count: u64,
    pub latch_cells: Vec<String>,
    pub latch_signals: Vec<String>,
    /// Problems found by yosys `check` (multiple drivers, used-but-undriven wires, logic loops).
    pub problem_count: u64,
    /// The `Warning:` lines `check` printed.
    pub problems: Vec<String>,
    pub log: PathBuf,
    pub elapsed_secs: f64,
}

impl CheckReport {
    /// No latches and no `check` problems.
    pub fn passed(&self) -> bool {
        self.latch_count == 0 && self.problem_count == 0
    }
}

fn read_commands(files: &[PathBuf]) -> Result<String, ToolError> {
    let mut s = String::new();
    for f in files {
        s.push_str("read_verilog ");
        s.push_str(&tools::yosys_quote(f)?);
        s.push('\n');
    }
    Ok(s)
}

/// The yosys script used by [`synth_ice40`] (file names are relative to the work directory).
pub fn ice40_script(
    files: &[PathBuf],
    top: &str,
    opts: &Ice40Options,
) -> Result<String, ToolError> {
    let mut s = read_commands(files)?;
    s.push_str(&format!("hierarchy -check -top {top}\n"));
    s.push_str("proc\n");
    s.push_str(&format!(
        "tee -q -o latches.txt select -list {LATCH_SELECTION}\n"
    ));
    s.push_str(&format!(
        "synth_ice40 -top {top} -json top.json{}{}\n",
        if opts.dsp { " -dsp" } else { "" },
        if opts.spram { " -spram" } else { "" }
    ));
    s.push_str("tee -o stat.txt stat\n");
    s.push_str("tee -q -o stat.json stat -json\n");
    Ok(s)
}

/// The yosys script used by [`synth_generic_check`].
pub fn generic_check_script(files: &[PathBuf], top: &str) -> Result<String, ToolError> {
    let mut s = read_commands(files)?;
    s.push_str(&format!("hierarchy -check -top {top}\n"));
    s.push_str("proc\n");
    s.push_str(&format!(
        "tee -q -o latches.txt select -list {LATCH_SELECTION}\n"
    ));
    s.push_str("opt\n");
    s.push_str("tee -o check.txt check\n");
    Ok(s)
}

/// Synthesizes for iCE40 with the default options (no DSP mapping). See [`synth_ice40_with`].
pub fn synth_ice40(files: &[PathBuf], top: &str, work: &Path) -> Result<SynthReport, ToolError> {
    synth_ice40_with(files, top, work, &Ice40Options::default())
}

/// Runs [`ice40_script`] in `work` (log `synth_ice40.log`, netlist `top.json`, statistics
/// `stat.txt`/`stat.json`, latch list `latches.txt`). Latches are reported, not an error;
/// `Err` when yosys fails (syntax error, missing module, ...) or cannot run.
pub fn synth_ice40_with(
    files: &[PathBuf],
    top: &str,
    work: &Path,
    opts: &Ice40Options,
) -> Result<SynthReport, ToolError> {
    tools::check_identifier("top module", top)?;
    let yosys = tools::find_tool(Tool::Yosys)?;
    let work = tools::prepare_work_dir(work)?;
    let files = tools::absolute_inputs(files)?;
    let script = ice40_script(&files, top, opts)?;
    let run = tools::run_yosys_script(&yosys, &work, "synth_ice40", &script, opts.timeout)?;
    run.ensure_success()?;
    let (latch_count, latch_cells, latch_signals) = read_latches(&work, &run.log)?;
    let stat_json = work.join("stat.json");
    let stat_text = tools::read_text(&stat_json)?;
    let (cells, total_cells) =
        parse_stat_json(&stat_text, top).map_err(|what| ToolError::UnexpectedOutput {
            tool: Tool::Yosys,
            what,
            log: run.log_path.clone(),
            tail: tools::tail_lines(&run.log, tools::LOG_TAIL_LINES),
        })?;
    Ok(SynthReport {
        top: top.to_string(),
        latch_count,
        latch_cells,
        latch_signals,
        cells,
        total_cells,
        lc_estimate: parse_lc_estimate(&run.log),
        log: run.log_path,
        stat: work.join("stat.txt"),
        json: work.join("top.json"),
        elapsed_secs: run.elapsed.as_secs_f64(),
    })
}

/// Quick structural check with yosys: `hierarchy -check -top TOP; proc;` latch count;
/// `opt; check`. Problems are reported, not an error.
pub fn synth_generic_check(
    files: &[PathBuf],
    top: &str,
    work: &Path,
) -> Result<CheckReport, ToolError> {
    tools::check_identifier("top module", top)?;
    let yosys = tools::find_tool(Tool::Yosys)?;
    let work = tools::prepare_work_dir(work)?;
    let files = tools::absolute_inputs(files)?;
    let script = generic_check_script(&files, top)?;
    let run = tools::run_yosys_script(&yosys, &work, "generic_check", &script, None)?;
    run.ensure_success()?;
    let (latch_count, latch_cells, latch_signals) = read_latches(&work, &run.log)?;
    let check_text = tools::read_text(&work.join("check.txt"))?;
    let (problem_count, problems) =
        parse_check(&check_text).ok_or_else(|| ToolError::UnexpectedOutput {
            tool: Tool::Yosys,
            what: "no \"Found and reported N problems\" line in the check output".into(),
            log: run.log_path.clone(),
            tail: tools::tail_lines(&run.log, tools::LOG_TAIL_LINES),
        })?;
    Ok(CheckReport {
        top: top.to_string(),
        latch_count,
        latch_cells,
        latch_signals,
        problem_count,
        problems,
        log: run.log_path,
        elapsed_secs: run.elapsed.as_secs_f64(),
    })
}

fn read_latches(work: &Path, log: &str) -> Result<(u64, Vec<String>, Vec<String>), ToolError> {
    let text = tools::read_text(&work.join("latches.txt"))?;
    let cells: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    Ok((cells.len() as u64, cells, parse_latch_signals(log)))
}

/// "Latch inferred for signal `\top.\q' from process ..." → `top.q`.
fn parse_latch_signals(log: &str) -> Vec<String> {
    const KEY: &str = "Latch inferred for signal `";
    let mut out: Vec<String> = log
        .lines()
        .filter_map(|l| {
            let rest = &l[l.find(KEY)? + KEY.len()..];
            let name = &rest[..rest.find('\'')?];
            Some(name.replace('\\', ""))
        })
        .collect();
    out.dedup();
    out
}

/// Cell counts from `stat -json`: the "design" totals when present, else the top module.
pub(crate) fn parse_stat_json(
    text: &str,
    top: &str,
) -> Result<(BTreeMap<String, u64>, u64), String> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("stat -json is not JSON: {e}"))?;
    let section = v
        .get("design")
        .or_else(|| v.get("modules").and_then(|m| m.get(format!("\\{top}"))))
        .ok_or_else(|| format!("stat -json has neither a design section nor module {top}"))?;
    let mut cells = BTreeMap::new();
    if let Some(map) = section.get("num_cells_by_type").and_then(|m| m.as_object()) {
        for (k, n) in map {
            let n = n
                .as_u64()
                .ok_or_else(|| format!("cell count of {k} is not a number"))?;
            cells.insert(k.clone(), n);
        }
    }
    let total = section
        .get("num_cells")
        .and_then(|n| n.as_u64())
        .unwrap_or_else(|| cells.values().sum());
    Ok((cells, total))
}

fn parse_lc_estimate(log: &str) -> Option<u64> {
    log.lines().rev().find_map(|l| {
        let rest = l.split("Estimated number of LCs:").nth(1)?;
        rest.trim().parse().ok()
    })
}

/// `check` output: (problem count, warning lines). `None` without the summary line.
fn parse_check(text: &str) -> Option<(u64, Vec<String>)> {
    let count = text.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("Found and reported ")?;
        rest.split_whitespace().next()?.parse().ok()
    })?;
    let problems = text
        .lines()
        .filter(|l| l.trim_start().starts_with("Warning:"))
        .map(|l| l.trim().to_string())
        .collect();
    Some((count, problems))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    const RAM: &str = "\
module ram256x16 (
    input  wire        clk,
    input  wire        we,
    input  wire [7:0]  waddr,
    input  wire [7:0]  raddr,
    input  wire [15:0] wdata,
    output reg  [15:0] rdata
);
    reg [15:0] mem [0:255];
    always @(posedge clk) begin
        if (we) mem[waddr] <= wdata;
        rdata <= mem[raddr];
    end
endmodule
";

    const LATCH: &str = "\
module latchy (
    input  wire       en,
    input  wire [3:0] d,
    output reg  [3:0] q
);
    always @* begin
        if (en) q = d;
    end
endmodule
";

    #[test]
    fn ram_maps_to_block_ram_without_latches() {
        let dir = tempfile::tempdir().unwrap();
        let f = write(dir.path(), "ram256x16.v", RAM);
        let r = synth_ice40(&[f], "ram256x16", &dir.path().join("work")).unwrap();
        assert_eq!(r.latch_count, 0, "{:?}", r.latch_cells);
        assert_eq!(r.block_rams(), 1, "{:?}", r.cells);
        assert!(r.total_cells >= 1);
        assert!(r.json.is_file() && r.stat.is_file() && r.log.is_file());
        let stat = std::fs::read_to_string(&r.stat).unwrap();
        assert!(stat.contains("SB_RAM40_4K"), "{stat}");
    }

    #[test]
    fn inferred_latch_is_counted() {
        let dir = tempfile::tempdir().unwrap();
        let f = write(dir.path(), "latchy.v", LATCH);
        let r = synth_ice40(std::slice::from_ref(&f), "latchy", &dir.path().join("work")).unwrap();
        assert!(r.latch_count >= 1, "{r:?}");
        assert_eq!(r.latch_signals, vec!["latchy.q".to_string()]);

        let c = synth_generic_check(&[f], "latchy", &dir.path().join("check")).unwrap();
        assert!(!c.passed());
        assert!(c.latch_count >= 1);
    }

    #[test]
    fn generic_check_passes_clean_and_flags_multiple_drivers() {
        let dir = tempfile::tempdir().unwrap();
        let ram = write(dir.path(), "ram256x16.v", RAM);
        let c = synth_generic_check(&[ram], "ram256x16", &dir.path().join("ok")).unwrap();
        assert!(c.passed(), "{c:?}");

        let multi = write(
            dir.path(),
            "multi.v",
            "module multi (\n    input  wire a,\n    input  wire b,\n    output wire y\n);\n    assign y = a;\n    assign y = b;\nendmodule\n",
        );
        let c = synth_generic_check(&[multi], "multi", &dir.path().join("multi")).unwrap();
        assert!(!c.passed(), "{c:?}");
        assert!(c.problem_count >= 1);
        assert!(
            c.problems
                .iter()
                .any(|p| p.contains("multiple conflicting drivers")),
            "{c:?}"
        );
    }

    #[test]
    fn syntax_error_is_err_with_log_tail() {
        let dir = tempfile::tempdir().unwrap();
        let f = write(
            dir.path(),
            "broken.v",
            "module broken (input wire a output wire y);\nendmodule\n",
        );
        let err = synth_ice40(&[f], "broken", &dir.path().join("work")).unwrap_err();
        match &err {
            ToolError::Failed { log, tail, .. } => {
                assert!(log.is_file());
                assert!(tail.contains("ERROR"), "{tail}");
            }
            other => panic!("expected Failed, got {other}"),
        }
    }

    #[test]
    fn parses_stat_json_and_check_output() {
        let json = r#"{"modules": {"\\t": {"num_cells": 3, "num_cells_by_type": {"SB_LUT4": 2, "SB_DFF": 1}}}}"#;
        let (cells, total) = parse_stat_json(json, "t").unwrap();
        assert_eq!(total, 3);
        assert_eq!(cells["SB_LUT4"], 2);
        let check = "\n9. Executing CHECK pass.\nWarning: multiple conflicting drivers for multi.\\y:\n    port Y[0] of cell $a\nFound and reported 1 problems.\n";
        let (n, p) = parse_check(check).unwrap();
        assert_eq!(n, 1);
        assert_eq!(p.len(), 1);
        assert_eq!(
            parse_lc_estimate("   Estimated number of LCs:        123\n"),
            Some(123)
        );
    }
}
