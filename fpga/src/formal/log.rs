//! Reading what the tools wrote: yosys `sat` counterexample tables, ABC counterexamples
//! mapped back to miter inputs through the yosys AIGER map, the AIG's input names, and the
//! per-case verdicts of a case-split ABC log.

use std::collections::BTreeMap;

/// The signal table yosys `sat -show-*` prints for a model (header `[Time] Signal Name Dec
/// Hex Bin`), from its header line to the end of the table.
pub(super) fn counterexample_table(log: &str) -> Option<String> {
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

/// Combines ABC's `write_cex -n` output (`pi<N>@0=<bit>` lines) with the yosys AIGER map
/// (`input <N> <bit> <wire>` lines) into `wire -> <width>'b<bits>` (unknown bits are `x`).
pub(super) fn cex_to_assignment(cex: &str, map: &str) -> Result<BTreeMap<String, String>, String> {
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

/// One input bit of the AIG: its index, port bit and ABC name.
#[derive(Debug, Clone)]
pub(super) struct AigInput {
    pub(super) index: usize,
    pub(super) wire: String,
    pub(super) bit: usize,
    pub(super) name: String,
}

/// The inputs listed in a yosys AIGER map (`input <index> <bit> <wire>`), named as
/// `write_aiger -symbols` names them for ABC: `wire[bit]`, or `wire` for 1-bit wires.
pub(super) fn aiger_inputs(map: &str) -> Result<Vec<AigInput>, String> {
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

/// `(case index, Some(proved) or None without a clear verdict, seconds)` per `SDCASE` marker.
pub(super) fn parse_split_log(text: &str) -> Vec<(u64, Option<bool>, f64)> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cex_mapping() {
        let cex =
            "# FALSIFYING OUTPUTS: po0\n# COUNTEREXAMPLE LENGTH: 1\npi00@0=1\npi01@0=0\npi02@0=1\n";
        let map = "input 0 0 in_a\ninput 1 1 in_a\ninput 2 0 in_b\noutput 0 0 trigger\n";
        let a = cex_to_assignment(cex, map).unwrap();
        assert_eq!(a["in_a"], "2'b01");
        assert_eq!(a["in_b"], "1'b1");
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
}
