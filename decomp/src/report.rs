//! Statistics of a decomposition, as `smartdeal decompose` reports them.

use crate::layer::FloatLayer;
use crate::pow2::exponent_of;
use serde::Serialize;
use std::collections::BTreeSet;

/// Float-side statistics of one decomposed tensor.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct FloatStats {
    /// `‖W − Ce·B‖ / ‖W‖` over the real weights (pruned rows count as error).
    pub float_rel_error: f64,
    /// Nonzero fraction of Ce elements (padding rows included, as the reference counts).
    pub ce_density: f64,
    /// Fraction of Ce rows with a nonzero element (per output channel).
    pub row_density: f64,
    /// Exponents `p` of the nonzero `±2^p` coefficients in use.
    pub exponents: Vec<i32>,
    /// The paper's storage formula, bits per weight:
    /// `(C_bit · nnz(Ce) + numel(Ce) + 8 · numel(B)) / weights`, `C_bit = ceil(log2 #magnitudes) + 1`.
    pub paper_bits_per_weight: f64,
    /// Mean alternating iterations per block.
    pub mean_iterations: f64,
}

/// `ceil(log2 n) + 1` for `n ≥ 1` distinct magnitudes (sign bit plus code); 1 when there are none.
///
/// The reference counts the distinct values of |Ce| including 0, which under-counts by one bit
/// when Ce has no zero; we count nonzero magnitudes only (the zeros live in the bitmap).
pub fn c_bits(distinct: usize) -> u32 {
    if distinct <= 1 {
        1
    } else {
        (usize::BITS - (distinct - 1).leading_zeros()) + 1
    }
}

pub fn float_stats(fl: &FloatLayer) -> FloatStats {
    let mut exps = BTreeSet::new();
    // Seen-before check in a flat table first: the set sees each exponent once, not every
    // coefficient (finite doubles have exponents within ±1100).
    let mut seen = vec![false; 4096];
    let (mut nnz, mut rows_nz) = (0usize, 0usize);
    for fit in &fl.fits {
        for c in &fit.ce {
            let mut any = false;
            for v in c.iter().filter(|v| **v != 0.0) {
                let e = exponent_of(*v);
                let slot = &mut seen[(e + 2048).clamp(0, 4095) as usize];
                if !*slot {
                    *slot = true;
                    exps.insert(e);
                }
                nnz += 1;
                any = true;
            }
            rows_nz += usize::from(any);
        }
    }
    let numel_ce = fl.outputs * fl.rows * 3;
    let numel_b = fl.fits.len() * 9;
    let weights = (fl.outputs * fl.inputs).max(1);
    let bits = c_bits(exps.len()) as usize * nnz + numel_ce + 8 * numel_b;
    FloatStats {
        float_rel_error: fl.relative_error(),
        ce_density: nnz as f64 / numel_ce.max(1) as f64,
        row_density: rows_nz as f64 / (fl.outputs * fl.rows).max(1) as f64,
        exponents: exps.into_iter().collect(),
        paper_bits_per_weight: bits as f64 / weights as f64,
        mean_iterations: fl.fits.iter().map(|f| f64::from(f.iterations)).sum::<f64>()
            / fl.fits.len().max(1) as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_bits_count_sign_plus_code() {
        assert_eq!(c_bits(0), 1);
        assert_eq!(c_bits(1), 1);
        assert_eq!(c_bits(2), 2);
        assert_eq!(c_bits(8), 4); // the reference's "4-bit codes" for 8 magnitudes
        assert_eq!(c_bits(9), 5);
        assert_eq!(c_bits(11), 5);
        assert_eq!(c_bits(16), 5);
    }
}
