//! The case split itself: which input fields a case-split proof fixes to constants, the cases
//! (every combination of their values) and why they cover every input. Its own module because
//! both the proof driver (`case_split`) and the ABC runner (`abc`) work with it.

use serde::Serialize;

use std::collections::BTreeMap;

use crate::tools::{self, ToolError};

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
pub(super) fn bin_const(value: u64, width: usize) -> String {
    format!("{width}'b{value:0width$b}")
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
