//! The proof that the factorized dataflow's per-row update (`sd_factor_row`: nine
//! `acc[k][j] + Ce[k] · x[j]` by shifts, folded negation and adds) equals the plain multiplier
//! reference `hdl/formal/sd_factor_row_ref.v` for every input ([`prove_factor_row`]).
//!
//! Port layout (shared by the DUT and the reference):
//! * `ce_i`: 3 Ce elements of E = 2 + `exp_bits` bits, element k at `[k*E +: E]`: bit 0
//!   present, bit 1 negative, bits `[2 +: exp_bits]` the exponent code;
//! * `x_i`: 3 activations of `act_bits` bits, x[j] at `[j*act_bits +: act_bits]`;
//! * `acc_i`, `acc_o`: 9 accumulators of `acc_bits` bits, acc[k][j] at `[(k*3+j)*acc_bits +:
//!   acc_bits]`.
//!
//! The proof is a case split on the three exponent codes ([`FactorLayout::code_split`]: 3 ·
//! `exp_bits` bits, 512 cases for 3-bit codes), complete by construction ([`CaseSplit`]): the
//! activations, accumulators, present and negative bits stay free in every case. With the codes
//! constant, the reference's multiplier by `±2^code` is a fixed shift, and each of the nine
//! outputs is an adder against an adder, which a BDD decides quickly when every accumulator bit
//! `p` sits next to the activation bit `p − code_k` it is added to
//! ([`FactorLayout::bdd_order`]). The nine outputs share the activations but not the
//! accumulators, so one order serves all of them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::formal::{prove_equiv_split, BddOrder, CaseSplit, SplitCase, SplitField};
use crate::formal::{SplitOptions, SplitReport};
use crate::tools::ToolError;

/// DUT top module.
pub const DUT_TOP: &str = "sd_factor_row";
/// Reference top module (`hdl/formal/sd_factor_row_ref.v`).
pub const REF_TOP: &str = "sd_factor_row_ref";

/// Widths of the per-row update's ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FactorLayout {
    pub act_bits: usize,
    pub exp_bits: usize,
    /// The block accumulator width (`AccelConfig::factor_acc_bits`).
    pub acc_bits: usize,
}

impl FactorLayout {
    /// `act_bits` 2..=16, `exp_bits` 1..=6, and an accumulator wider than any shifted
    /// activation (`acc_bits ≥ act_bits + 2^exp_bits`, at most 64).
    pub fn new(act_bits: usize, exp_bits: usize, acc_bits: usize) -> Result<Self, ToolError> {
        if !(2..=16).contains(&act_bits)
            || !(1..=6).contains(&exp_bits)
            || acc_bits < act_bits + (1 << exp_bits)
            || acc_bits > 64
        {
            return Err(ToolError::InvalidInput(format!(
                "factor layout act_bits = {act_bits}, exp_bits = {exp_bits}, acc_bits = \
                 {acc_bits} out of range"
            )));
        }
        Ok(FactorLayout {
            act_bits,
            exp_bits,
            acc_bits,
        })
    }

    /// Bits of one Ce element: present, negative, code.
    pub fn ce_elem_bits(&self) -> usize {
        2 + self.exp_bits
    }

    /// The reference's parameters (`chparam` of `sd_factor_row_ref`).
    pub fn ref_params(&self) -> Vec<(String, i64)> {
        vec![
            ("ActBits".to_string(), self.act_bits as i64),
            ("ExpBits".to_string(), self.exp_bits as i64),
            ("AccBits".to_string(), self.acc_bits as i64),
        ]
    }

    /// The split on the three exponent codes, `ce_i[k*E+2 +: exp_bits]`; case value `k` is
    /// code k.
    pub fn code_split(&self) -> CaseSplit {
        CaseSplit::new(
            (0..3)
                .map(|k| SplitField::new("ce_i", k * self.ce_elem_bits() + 2, self.exp_bits))
                .collect(),
        )
        .expect("three disjoint code fields of at most 6 bits")
    }

    /// BDD order of a case of [`Self::code_split`]: the present/negative bits first, then by
    /// significance in the sums: x[j] bit i at 4·i + 1, acc[k][j] bit p at 4·(p − code_k) + 2
    /// (just after the activation bit it is added to), the constant codes last.
    pub fn bdd_order(&self) -> BddOrder {
        let layout = *self;
        Arc::new(move |case: &SplitCase, port: &str, bit: usize| -> i64 {
            let code = |k: usize| case.values.get(k).copied().unwrap_or(0) as i64;
            let e = layout.ce_elem_bits();
            match port {
                "ce_i" if bit % e < 2 => -1_000 + bit as i64,
                "x_i" => 4 * (bit % layout.act_bits) as i64 + 1,
                "acc_i" => {
                    let k = bit / layout.acc_bits / 3;
                    4 * ((bit % layout.acc_bits) as i64 - code(k)) + 2
                }
                _ => i64::MAX,
            }
        })
    }

    /// [`SplitOptions`] with [`Self::bdd_order`].
    pub fn split_options(&self) -> SplitOptions {
        SplitOptions {
            order: Some(self.bdd_order()),
            ..SplitOptions::default()
        }
    }
}

/// Proves the per-row update `dut_files` (top `sd_factor_row`) equal to the reference
/// (`reference`, top `sd_factor_row_ref`, parameters from `layout`) for every input, by the
/// case split of the module documentation; `opts` as for [`prove_equiv_split`] (the order
/// defaults to [`FactorLayout::bdd_order`]). Work files go to `work`.
pub fn prove_factor_row(
    dut_files: &[PathBuf],
    reference: &Path,
    layout: &FactorLayout,
    work: &Path,
    opts: &SplitOptions,
) -> Result<SplitReport, ToolError> {
    let opts = SplitOptions {
        order: opts.order.clone().or_else(|| Some(layout.bdd_order())),
        ..opts.clone()
    };
    prove_equiv_split(
        dut_files,
        DUT_TOP,
        &[reference.to_path_buf()],
        REF_TOP,
        &layout.ref_params(),
        work,
        &layout.code_split(),
        &opts,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_split_covers_every_code_triple_once() {
        let layout = FactorLayout::new(8, 3, 24).unwrap();
        let split = layout.code_split();
        let cases: Vec<_> = split.cases().collect();
        split.check_complete(&cases).unwrap();
        assert_eq!(cases.len(), 512);
        let fields: Vec<_> = split.fields().iter().map(|f| f.range()).collect();
        assert_eq!(fields, ["ce_i[4:2]", "ce_i[9:7]", "ce_i[14:12]"]);
    }

    #[test]
    fn order_puts_each_accumulator_bit_after_its_activation_bit() {
        let layout = FactorLayout::new(8, 3, 24).unwrap();
        let order = layout.bdd_order();
        let case = SplitCase {
            index: 0,
            values: vec![0, 5, 7],
        };
        // acc[1][0] bit 9 is added to x[0] bit 4 (code 5): right after it, before x bit 5.
        let acc10_bit9 = 3 * 24 + 9;
        assert!(order(&case, "acc_i", acc10_bit9) > order(&case, "x_i", 4));
        assert!(order(&case, "acc_i", acc10_bit9) < order(&case, "x_i", 5));
        // Present and negative bits first, codes last.
        assert!(order(&case, "ce_i", 6) < order(&case, "acc_i", 7 * 24));
        assert_eq!(order(&case, "ce_i", 2), i64::MAX);
    }

    #[test]
    fn layout_range() {
        assert!(FactorLayout::new(8, 3, 15).is_err());
        assert!(FactorLayout::new(8, 3, 16).is_ok());
        assert!(FactorLayout::new(8, 7, 200).is_err());
    }
}
