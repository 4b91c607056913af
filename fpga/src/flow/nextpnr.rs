//! Reading nextpnr's output: why it stopped (timing, capacity), the Fmax per clock, and the
//! utilization from its `--report` JSON or its log, picked into the board's [`Utilization`].

use std::collections::{BTreeMap, HashMap};

use super::board::{Board, Family};
use super::report::{ClockTiming, Resource, Utilization};

/// nextpnr stopped because the device is too small for the design.
pub(super) fn is_capacity_failure(log: &str) -> bool {
    log.lines()
        .filter(|l| l.trim_start().starts_with("ERROR:"))
        .any(|l| {
            l.contains("no BELs remaining to implement cell type")
                || l.contains("at utilisation limit")
                || l.contains("check constraints and utilisation")
        })
}

/// nextpnr exited non-zero because a clock missed its target (and for no other reason that
/// the log shows). nextpnr 0.4 ends with `ERROR: Max frequency for clock '...': ... (FAIL at
/// ...)`; later versions phrase the error differently but still print the FAIL line.
pub(super) fn is_timing_failure(log: &str) -> bool {
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.trim_start().starts_with("ERROR:"))
        .collect();
    let timing_error = |l: &&str| {
        let l = l.to_ascii_lowercase();
        l.contains("max frequency") || l.contains("timing") || l.contains("fmax")
    };
    !errors.is_empty()
        && errors.iter().all(timing_error)
        && parse_fmax(log).iter().any(|c| !c.passed)
}

/// Per clock, the last `Max frequency for clock 'NAME': A MHz (PASS|FAIL at T MHz)` line
/// (nextpnr prints an estimate after placement and the real value after routing), in the order
/// the clocks first appear.
pub(crate) fn parse_fmax(log: &str) -> Vec<ClockTiming> {
    const KEY: &str = "Max frequency for clock ";
    let mut order: Vec<String> = Vec::new();
    let mut last: HashMap<String, ClockTiming> = HashMap::new();
    for line in log.lines() {
        let Some(pos) = line.find(KEY) else { continue };
        let rest = &line[pos + KEY.len()..];
        let Some(parsed) = parse_fmax_line(rest) else {
            continue;
        };
        if !last.contains_key(&parsed.clock) {
            order.push(parsed.clock.clone());
        }
        last.insert(parsed.clock.clone(), parsed);
    }
    order.into_iter().filter_map(|c| last.remove(&c)).collect()
}

/// `'clk': 33.76 MHz (PASS at 12.00 MHz)` → a [`ClockTiming`].
fn parse_fmax_line(rest: &str) -> Option<ClockTiming> {
    let rest = rest.strip_prefix('\'')?;
    let close = rest.find("':")?;
    let clock = rest[..close].to_string();
    let rest = rest[close + 2..].trim_start();
    let (achieved, rest) = rest.split_once(" MHz")?;
    let achieved_mhz: f64 = achieved.trim().parse().ok()?;
    let rest = rest.trim_start().strip_prefix('(')?;
    let (verdict, rest) = rest.split_once(" at ")?;
    let passed = match verdict.trim() {
        "PASS" => true,
        "FAIL" => false,
        _ => return None,
    };
    let (target, _) = rest.split_once(" MHz")?;
    let target_mhz: f64 = target.trim().parse().ok()?;
    Some(ClockTiming {
        clock,
        achieved_mhz,
        target_mhz,
        passed,
    })
}

/// The `utilization` object of nextpnr's `--report` JSON.
pub(crate) fn parse_report_utilization(text: &str) -> Result<BTreeMap<String, Resource>, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let util = v
        .get("utilization")
        .and_then(|u| u.as_object())
        .ok_or("no utilization object")?;
    let mut out = BTreeMap::new();
    for (kind, entry) in util {
        let get = |k: &str| {
            entry
                .get(k)
                .and_then(|n| n.as_u64())
                .ok_or_else(|| format!("utilization of {kind} has no numeric {k}"))
        };
        out.insert(
            kind.clone(),
            Resource {
                kind: kind.clone(),
                used: get("used")?,
                available: get("available")?,
            },
        );
    }
    Ok(out)
}

/// The `Device utilisation:` table of a nextpnr log (`Info:  ICESTORM_LC:   132/ 5280   2%`).
pub(crate) fn parse_log_utilization(log: &str) -> BTreeMap<String, Resource> {
    let mut out = BTreeMap::new();
    let mut in_table = false;
    for line in log.lines() {
        if line.contains("Device utilisation:") || line.contains("Device utilization:") {
            in_table = true;
            out.clear();
            continue;
        }
        if !in_table {
            continue;
        }
        let body = line
            .trim_start()
            .strip_prefix("Info:")
            .unwrap_or(line)
            .trim();
        let parsed = body.split_once(':').and_then(|(kind, nums)| {
            let (used, rest) = nums.split_once('/')?;
            let available = rest.split_whitespace().next()?;
            Some(Resource {
                kind: kind.trim().to_string(),
                used: used.trim().parse().ok()?,
                available: available.parse().ok()?,
            })
        });
        match parsed {
            Some(r) if !r.kind.is_empty() && !r.kind.contains(' ') => {
                out.insert(r.kind.clone(), r);
            }
            _ => in_table = false,
        }
    }
    out
}

/// Picks the board's resources out of nextpnr's table (see [`Utilization`]).
pub(super) fn utilization(
    board: Board,
    bels: &BTreeMap<String, Resource>,
    synth_cells: &BTreeMap<String, u64>,
) -> Result<Utilization, String> {
    let get = |kind: &str| {
        bels.get(kind).cloned().ok_or_else(|| {
            format!(
                "nextpnr's utilization has no {kind} (has: {})",
                bels.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })
    };
    Ok(match board.family() {
        Family::Ice40 => {
            let logic = get("ICESTORM_LC")?;
            let ffs = synth_cells
                .iter()
                .filter(|(k, _)| k.starts_with("SB_DFF"))
                .map(|(_, n)| *n)
                .sum();
            Utilization {
                ff: Resource {
                    kind: "SB_DFF* (yosys) in ICESTORM_LC".into(),
                    used: ffs,
                    available: logic.available,
                },
                logic,
                bram: get("ICESTORM_RAM")?,
                spram: Some(get("ICESTORM_SPRAM")?),
                dsp: get("ICESTORM_DSP")?,
                io: get("SB_IO")?,
            }
        }
        Family::Ecp5 => Utilization {
            logic: get("TRELLIS_COMB")?,
            ff: get("TRELLIS_FF")?,
            bram: get("DP16KD")?,
            spram: None,
            dsp: get("MULT18X18D")?,
            io: get("TRELLIS_IO")?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ICE40_FAIL_LOG: &str = "\
Info: Device utilisation:
Info: \t         ICESTORM_LC:   132/ 5280     2%
Info: \t        ICESTORM_RAM:     0/   30     0%
Info: \t               SB_IO:     5/   96     5%
Info: \t      ICESTORM_SPRAM:     0/    4     0%

Info: Placed 0 cells based on constraints.
Info: Max frequency for clock 'clk_i$SB_IO_IN_$glb_clk': 38.41 MHz (FAIL at 500.00 MHz)
Info: Routing..
ERROR: Max frequency for clock 'clk_i$SB_IO_IN_$glb_clk': 33.76 MHz (FAIL at 500.00 MHz)
0 warnings, 1 error
";

    #[test]
    fn parses_the_last_fmax_per_clock() {
        let c = parse_fmax(ICE40_FAIL_LOG);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].clock, "clk_i$SB_IO_IN_$glb_clk");
        assert_eq!(c[0].achieved_mhz, 33.76);
        assert_eq!(c[0].target_mhz, 500.0);
        assert!(!c[0].passed);
        assert!(is_timing_failure(ICE40_FAIL_LOG));
        assert!(!is_timing_failure(
            "ERROR: Unable to place cell 'x'\nInfo: Max frequency for clock 'c': 1.00 MHz (FAIL at 2.00 MHz)\n"
        ));
        assert!(!is_capacity_failure(ICE40_FAIL_LOG));
        assert!(is_capacity_failure(
            "Info: Placed 7 cells based on constraints.\nERROR: Unable to place cell 'u_buf.mem.0.3', \
             no BELs remaining to implement cell type 'DP16KD'\n0 warnings, 1 error\n"
        ));
        assert!(is_capacity_failure(
            "ERROR: Unable to find legal placement for all cells, design is probably at \
             utilisation limit.\n"
        ));
        // The phrase outside an ERROR line (a cell name, an Info line) is not a verdict.
        assert!(!is_capacity_failure(
            "Info: no BELs remaining to implement cell type 'X' was fixed\nERROR: other\n"
        ));
        let two = "Info: Max frequency for clock 'a': 10.00 MHz (PASS at 5.00 MHz)\n\
                   Info: Max frequency for clock 'b': 20.50 MHz (PASS at 5.00 MHz)\n\
                   Info: Max frequency for clock 'a': 9.00 MHz (PASS at 5.00 MHz)\n";
        let c = parse_fmax(two);
        assert_eq!(
            c.iter()
                .map(|c| (c.clock.as_str(), c.achieved_mhz))
                .collect::<Vec<_>>(),
            vec![("a", 9.0), ("b", 20.5)]
        );
    }

    #[test]
    fn parses_log_and_report_utilization() {
        let u = parse_log_utilization(ICE40_FAIL_LOG);
        assert_eq!(u.len(), 4, "{u:?}");
        assert_eq!(u["ICESTORM_LC"].used, 132);
        assert_eq!(u["ICESTORM_LC"].available, 5280);
        assert_eq!(u["SB_IO"].used, 5);
        let rpt =
            r#"{"fmax": {}, "utilization": {"ICESTORM_LC": {"available": 5280, "used": 132}}}"#;
        let r = parse_report_utilization(rpt).unwrap();
        assert_eq!(r["ICESTORM_LC"], u["ICESTORM_LC"]);
        assert!(parse_report_utilization("{}").is_err());
    }
}
