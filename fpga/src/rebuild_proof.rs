//! The proof that the SmartDeal rebuild lane (`sd_decoder` + `sd_rebuild`) equals the plain
//! multiplier reference `hdl/formal/sd_rebuild_ref.v` for every input, in seconds instead of
//! minutes ([`prove_rebuild`]).
//!
//! Port layout (shared by the DUT and the reference; see `sd_rebuild_ref.v`):
//! * `b_i`: 9 basis elements `B[k][j]` of `basis_bits` bits, element (k, j) at
//!   `[(k*3+j)*basis_bits +: basis_bits]` (k = row / term, j = column);
//! * `ce_i`: 3 Ce elements of E = 2 + `exp_bits` bits, element k at `[k*E +: E]`: bit 0
//!   present, bit 1 negative, bits `[2 +: exp_bits]` the exponent code;
//! * `w_o`: 3 weights w_j of RB = `basis_bits` + 2^`exp_bits` - 1 + 2 bits at `[j*RB +: RB]`.
//!
//! The decomposition (D = DUT, R = reference, both functions of (b, ce)):
//! 1. **Column symmetry lemmas.** With `rot(b)[k][j] = b[k][(j+1) mod 3]` (a bijection of the
//!    B inputs), the wrapper `<top>_rot` computes `W(b)_j = F(rot b)_{(j+2) mod 3}`; proving
//!    `W ≡ F` (all outputs, all inputs) for F = D and F = R shows `F(b)_j = F(rot b)_{j-1}`,
//!    hence `F(b)_j = F(rot^j b)_0`. Both designs build their columns from the same cells, so
//!    after flattening yosys' `opt_merge` merges the two copies and `sat` proves each lemma in
//!    well under a second.
//! 2. **Column 0** (`<top>_col0` wrappers expose `w_o[0 +: RB]` only): `D(b)_0 = R(b)_0` for
//!    every input, proved by a case split on the three exponent codes
//!    ([`RebuildLayout::code_split`], 3 · `exp_bits` bits: 512 cases for the presets' 3-bit
//!    codes). It is complete ([`crate::CaseSplit`]): every code triple is one case, and B,
//!    present and negative are free in every case. With the codes constant, the reference's
//!    `b * 2^code` becomes a fixed shift and each case is an adder-versus-adder problem (the
//!    DUT folds the negations into one carry added at the end, the reference negates each
//!    term), which a BDD decides in ~30 ms of CPU when B's bits are ordered by their
//!    significance after the shift, `i + code_k` ([`RebuildLayout::bdd_order`]). The cases
//!    run 16 to a `yosys-abc` process, two processes at a time on two cores.
//! 3. Together: `D(b)_j = D(rot^j b)_0 = R(rot^j b)_0 = R(b)_j` for every j, b and ce.
//!
//! If a symmetry lemma does not hold (or does not finish within [`LEMMA_TIME_LIMIT`]), the
//! case split runs on all three columns instead (about 2.5 times the work), so a DUT whose
//! columns differ is still proved or refuted with a direct counterexample. (If D ≡ R then D
//! has R's symmetry, so a failed DUT lemma already means the DUT is wrong.)
//!
//! Measured on the project's 2-core machine (yosys 0.23): yosys `sat` needs ~2.5 s per case
//! and ABC `iprove` 0.4–1.7 s (the two adder trees are associated differently, which CDCL
//! handles badly); a BDD with a code left free blows up (2–20 s per case: no single order
//! suits all its shifts); all three columns in one case take ~0.1 s per case.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::formal::{
    prove_equiv_split, prove_equiv_with, BddOrder, CaseSplit, ProofEngine, ProofOptions,
    ProofResult, SplitCase, SplitField, SplitOptions, SplitReport,
};
use crate::tools::{self, ToolError};

/// DUT top module.
pub const DUT_TOP: &str = "sd_rebuild";
/// Reference top module (`hdl/formal/sd_rebuild_ref.v`).
pub const REF_TOP: &str = "sd_rebuild_ref";
/// Time limit of each symmetry lemma; beyond it the proof falls back to all columns.
pub const LEMMA_TIME_LIMIT: Duration = Duration::from_secs(60);

/// Widths of the rebuild lane's ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RebuildLayout {
    pub basis_bits: usize,
    pub exp_bits: usize,
}

impl RebuildLayout {
    /// `basis_bits` 2..=16, `exp_bits` 1..=6 (the split has 3 · `exp_bits` bits, at most
    /// [`CaseSplit::MAX_BITS`]).
    pub fn new(basis_bits: usize, exp_bits: usize) -> Result<Self, ToolError> {
        if !(2..=16).contains(&basis_bits) || !(1..=6).contains(&exp_bits) {
            return Err(ToolError::InvalidInput(format!(
                "rebuild layout basis_bits = {basis_bits}, exp_bits = {exp_bits} out of range"
            )));
        }
        Ok(RebuildLayout {
            basis_bits,
            exp_bits,
        })
    }

    /// Bits of one Ce element: present, negative, code.
    pub fn ce_elem_bits(&self) -> usize {
        2 + self.exp_bits
    }

    /// Width of one rebuilt weight.
    pub fn rebuild_bits(&self) -> usize {
        self.basis_bits + (1 << self.exp_bits) - 1 + 2
    }

    /// The reference's parameters (`chparam` of `sd_rebuild_ref`).
    pub fn ref_params(&self) -> Vec<(String, i64)> {
        vec![
            ("BasisBits".to_string(), self.basis_bits as i64),
            ("ExpBits".to_string(), self.exp_bits as i64),
        ]
    }

    /// Field `k` (element k's exponent code): `ce_i[k*E+2 +: exp_bits]`.
    pub fn code_field(&self, k: usize) -> SplitField {
        SplitField::new("ce_i", k * self.ce_elem_bits() + 2, self.exp_bits)
    }

    /// The split on the three exponent codes; case value `k` is code k. Complete by
    /// construction ([`CaseSplit`]: every combination of the 3 · `exp_bits` code bits is one
    /// case), B and the present/negative bits stay free in every case.
    pub fn code_split(&self) -> CaseSplit {
        CaseSplit::new((0..3).map(|k| self.code_field(k)).collect())
            .expect("three disjoint code fields of at most 6 bits")
    }

    /// BDD order of a case of [`Self::code_split`]: `B[k][j]` bit i by its weight i + code_k in
    /// the sum (ties: element order), element k's present/negative bits just before its lowest
    /// B bit, the (constant) codes last.
    pub fn bdd_order(&self) -> BddOrder {
        let layout = *self;
        Arc::new(move |case: &SplitCase, port: &str, bit: usize| -> i64 {
            let code = |k: usize| case.values.get(k).copied().unwrap_or(0) as i64;
            match port {
                "b_i" => {
                    let k = bit / layout.basis_bits / 3;
                    let i = (bit % layout.basis_bits) as i64;
                    4 * (i + code(k)) + 2
                }
                "ce_i" if bit % layout.ce_elem_bits() < 2 => 4 * code(bit / layout.ce_elem_bits()),
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

    /// The port list of the lane and of every wrapper.
    fn ports(&self) -> String {
        format!(
            "    input  wire [{}:0] b_i,\n    input  wire [{}:0] ce_i,\n",
            9 * self.basis_bits - 1,
            3 * self.ce_elem_bits() - 1
        )
    }

    /// `inner` instantiated with `params` (`#(...)` text or empty).
    fn instance(inner: &str, params: &str, b: &str, w: &str) -> String {
        format!("    {inner} {params}u_inner (.b_i({b}), .ce_i(ce_i), .w_o({w}));\n")
    }

    /// `#(.BasisBits(..), .ExpBits(..))` for the reference, nothing for the DUT.
    fn params_of(&self, inner: &str) -> String {
        if inner == REF_TOP {
            format!(
                "#(.BasisBits({}), .ExpBits({})) ",
                self.basis_bits, self.exp_bits
            )
        } else {
            String::new()
        }
    }

    /// Wrapper `<inner>_id`: `inner` as it is, with the reference's parameters set (the
    /// reference side of its symmetry lemma).
    pub fn identity_wrapper(&self, inner: &str) -> String {
        format!(
            "`default_nettype none\n\
             // {inner} unchanged (formal wrapper written by smartdeal-fpga).\n\
             module {inner}_id (\n{}    output wire [{}:0] w_o\n);\n{}endmodule\n",
            self.ports(),
            3 * self.rebuild_bits() - 1,
            Self::instance(inner, &self.params_of(inner), "b_i", "w_o")
        )
    }

    /// Wrapper `<inner>_rot`: `w_o[j] = inner(rot b)[(j+2) mod 3]` with
    /// `rot(b)[k][j] = b[k][(j+1) mod 3]` (see the module documentation).
    pub fn rotation_wrapper(&self, inner: &str) -> String {
        let (bb, rb) = (self.basis_bits, self.rebuild_bits());
        let mut body = format!(
            "    wire [{}:0] b_rot;\n    wire [{}:0] w_rot;\n",
            9 * bb - 1,
            3 * rb - 1
        );
        for k in 0..3 {
            for j in 0..3 {
                body.push_str(&format!(
                    "    assign b_rot[{} +: {bb}] = b_i[{} +: {bb}];  // B[{k}][{j}] <- B[{k}][{}]\n",
                    (k * 3 + j) * bb,
                    (k * 3 + (j + 1) % 3) * bb,
                    (j + 1) % 3
                ));
            }
        }
        body.push_str(&Self::instance(
            inner,
            &self.params_of(inner),
            "b_rot",
            "w_rot",
        ));
        for j in 0..3 {
            body.push_str(&format!(
                "    assign w_o[{} +: {rb}] = w_rot[{} +: {rb}];\n",
                j * rb,
                ((j + 2) % 3) * rb
            ));
        }
        format!(
            "`default_nettype none\n\
             // {inner} with its B columns rotated (formal wrapper written by smartdeal-fpga).\n\
             module {inner}_rot (\n{}    output wire [{}:0] w_o\n);\n{body}endmodule\n",
            self.ports(),
            3 * rb - 1
        )
    }

    /// Wrapper `<inner>_col0`: only column 0, `w_o = inner(b)[0 +: RB]`.
    pub fn column0_wrapper(&self, inner: &str) -> String {
        let rb = self.rebuild_bits();
        format!(
            "`default_nettype none\n\
             // Column 0 of {inner} (formal wrapper written by smartdeal-fpga).\n\
             module {inner}_col0 (\n{}    output wire [{}:0] w_o\n);\n    wire [{}:0] w_all;\n{}    assign w_o = w_all[{}:0];\nendmodule\n",
            self.ports(),
            rb - 1,
            3 * rb - 1,
            Self::instance(inner, &self.params_of(inner), "b_i", "w_all"),
            rb - 1
        )
    }
}

/// How [`prove_rebuild`] covered the three columns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum ColumnCoverage {
    /// Both symmetry lemmas proved; the case split ran on column 0.
    Symmetry,
    /// A lemma failed or did not finish (the reason); the case split ran on all columns.
    AllColumns(String),
}

/// Everything [`prove_rebuild`] found out.
#[derive(Debug, Clone, Serialize)]
pub struct RebuildProof {
    pub result: ProofResult,
    pub columns: ColumnCoverage,
    /// Seconds of the DUT and the reference symmetry lemma.
    pub lemma_secs: [f64; 2],
    pub split: SplitReport,
    pub elapsed_secs: f64,
}

/// Proves the rebuild lane `dut_files` (top `sd_rebuild`) equal to the reference
/// (`reference`, top `sd_rebuild_ref`) at `layout`'s widths, for every input, by the
/// decomposition of the module documentation. `opts` are the case split's options (its
/// timeout covers the whole proof). Work files go to `work` (`wrappers/`, `lemma_dut/`,
/// `lemma_ref/`, `split/`).
pub fn prove_rebuild(
    dut_files: &[PathBuf],
    reference: &Path,
    layout: &RebuildLayout,
    work: &Path,
    opts: &SplitOptions,
) -> Result<RebuildProof, ToolError> {
    let start = Instant::now();
    let deadline = opts.timeout.map(|t| start + t);
    let wrappers = work.join("wrappers");
    std::fs::create_dir_all(&wrappers).map_err(|e| ToolError::io(&wrappers, e))?;
    let write = |name: &str, text: String| -> Result<PathBuf, ToolError> {
        let path = wrappers.join(format!("{name}.v"));
        std::fs::write(&path, text).map_err(|e| ToolError::io(&path, e))?;
        Ok(path)
    };
    let dut_rot = write("sd_rebuild_rot", layout.rotation_wrapper(DUT_TOP))?;
    let dut_col0 = write("sd_rebuild_col0", layout.column0_wrapper(DUT_TOP))?;
    let ref_rot = write("sd_rebuild_ref_rot", layout.rotation_wrapper(REF_TOP))?;
    let ref_id = write("sd_rebuild_ref_id", layout.identity_wrapper(REF_TOP))?;
    let ref_col0 = write("sd_rebuild_ref_col0", layout.column0_wrapper(REF_TOP))?;
    let with = |files: &[PathBuf], extra: &PathBuf| -> Vec<PathBuf> {
        let mut v = files.to_vec();
        v.push(extra.clone());
        v
    };

    // 1. Symmetry lemmas: `<top>_id ≡ <top>_rot`, yosys `sat` (trivial once `opt_merge` has
    //    merged the two copies), bounded by LEMMA_TIME_LIMIT.
    let lemma = |files: Vec<PathBuf>, id: &str, rot: &PathBuf, rot_top: &str, dir: &str| {
        let limit = match tools::remaining(deadline) {
            Some(left) => left.min(LEMMA_TIME_LIMIT),
            None => LEMMA_TIME_LIMIT,
        };
        let t = Instant::now();
        let r = prove_equiv_with(
            &files,
            id,
            std::slice::from_ref(rot),
            rot_top,
            &[],
            &work.join(dir),
            &ProofOptions {
                engine: ProofEngine::YosysSat,
                timeout: Some(limit),
                max_induction_steps: None,
            },
        );
        (r, t.elapsed().as_secs_f64())
    };
    // The DUT side is `sd_rebuild` itself: `miter` then also checks its port widths
    // against the layout's (the wrappers would silently truncate or extend). The two lemmas
    // are independent: run them side by side.
    let ((dut_lemma, dut_secs), (ref_lemma, ref_secs)) = std::thread::scope(|scope| {
        let dut = scope.spawn(|| {
            lemma(
                dut_files.to_vec(),
                DUT_TOP,
                &dut_rot,
                "sd_rebuild_rot",
                "lemma_dut",
            )
        });
        let reference = lemma(
            vec![reference.to_path_buf(), ref_id.clone()],
            "sd_rebuild_ref_id",
            &ref_rot,
            "sd_rebuild_ref_rot",
            "lemma_ref",
        );
        (dut.join().expect("DUT lemma thread"), reference)
    });
    let verdict = |what: &str, r: Result<crate::ProofReport, ToolError>| match r {
        Ok(rep) if rep.result == ProofResult::Proved => None,
        Ok(rep) => Some(format!(
            "the {what} is not column-symmetric: {:?}",
            rep.result
        )),
        Err(e) => Some(format!("the {what} symmetry lemma did not finish: {e}")),
    };
    let columns = match verdict("DUT", dut_lemma).or_else(|| verdict("reference", ref_lemma)) {
        None => ColumnCoverage::Symmetry,
        Some(reason) => ColumnCoverage::AllColumns(reason),
    };

    // 2. The case split on the exponent codes: column 0, or every column.
    let split_opts = SplitOptions {
        timeout: tools::remaining(deadline),
        ..opts.clone()
    };
    let split = match &columns {
        ColumnCoverage::Symmetry => prove_equiv_split(
            &with(dut_files, &dut_col0),
            "sd_rebuild_col0",
            &[reference.to_path_buf(), ref_col0],
            "sd_rebuild_ref_col0",
            &[],
            &work.join("split"),
            &layout.code_split(),
            &split_opts,
        )?,
        ColumnCoverage::AllColumns(_) => prove_equiv_split(
            dut_files,
            DUT_TOP,
            &[reference.to_path_buf()],
            REF_TOP,
            &layout.ref_params(),
            &work.join("split"),
            &layout.code_split(),
            &split_opts,
        )?,
    };
    Ok(RebuildProof {
        result: split.result.clone(),
        columns,
        lemma_secs: [dut_secs, ref_secs],
        split,
        elapsed_secs: start.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_split_covers_every_code_triple_once() {
        for (bb, eb) in [(8, 3), (4, 2), (8, 4)] {
            let layout = RebuildLayout::new(bb, eb).unwrap();
            let split = layout.code_split();
            let cases: Vec<_> = split.cases().collect();
            split.check_complete(&cases).unwrap();
            assert_eq!(cases.len(), 1 << (3 * eb));
            let e = 2 + eb;
            let fields: Vec<_> = split.fields().iter().map(|f| f.range()).collect();
            let expect: Vec<_> = (0..3)
                .map(|k| format!("ce_i[{}:{}]", k * e + 2 + eb - 1, k * e + 2))
                .collect();
            assert_eq!(fields, expect);
            let mut seen = std::collections::BTreeSet::new();
            for c in &cases {
                assert!(c.values.iter().all(|&v| v < 1 << eb));
                assert!(seen.insert(c.values.clone()), "{c:?}");
            }
            assert_eq!(seen.len(), 1 << (3 * eb));
        }
    }

    #[test]
    fn order_follows_significance() {
        let layout = RebuildLayout::new(8, 3).unwrap();
        let order = layout.bdd_order();
        let case = SplitCase {
            index: 0,
            values: vec![5, 0, 7],
        };
        // B[0][1] bit 0 (weight 5) after B[1][0] bit 4 (weight 4), before B[2][2] bit 0 (7).
        assert!(order(&case, "b_i", 8) > order(&case, "b_i", 3 * 8 + 4));
        assert!(order(&case, "b_i", 8) < order(&case, "b_i", 8 * 8));
        // Element 2's present bit just before its lowest B bit.
        assert!(order(&case, "ce_i", 10) < order(&case, "b_i", 6 * 8));
        assert!(order(&case, "ce_i", 10) > order(&case, "b_i", 3 * 8 + 6));
        assert_eq!(order(&case, "ce_i", 2), i64::MAX);
    }

    #[test]
    fn layout_range() {
        assert!(RebuildLayout::new(8, 7).is_err());
        assert_eq!(RebuildLayout::new(8, 3).unwrap().rebuild_bits(), 17);
    }
}
