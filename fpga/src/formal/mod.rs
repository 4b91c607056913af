//! Formal equivalence of a DUT against a reference module with plain Debian Yosys (and the
//! ABC that ships with it).
//!
//! Flow (all files are kept in the work directory):
//! 1. `equiv_prepare.ys` — read both designs, `chparam` the reference, `hierarchy -check; proc;
//!    flatten; opt_clean`, build the miter (`miter -equiv -flatten -make_outputs REF DUT miter`,
//!    gold = reference, gate = DUT), `opt -fast`, list the state elements, write `miter.il`.
//! 2. The proof, by engine:
//!    * [`ProofEngine::YosysSat`] — `equiv_sat.ys`: toolchain.md's `sat -verify ...`. A
//!      combinational miter gets one `sat -prove` (which covers every input); a sequential one
//!      `sat -tempinduct -set-init-zero` (both designs start from all-zero state).
//!    * [`ProofEngine::Abc`] (combinational only) — `equiv_aig.ys` turns the miter into an AIG
//!      (`miter.aig` + `miter.aim` map) and `yosys-abc -c "read_aiger miter.aig; iprove"` proves
//!      the trigger output constant 0 by SAT sweeping (fraiging). A counterexample from ABC is
//!      replayed with yosys `sat` (`equiv_cex.ys`) so it is reported in yosys' table format and
//!      cross-checked by a second tool.
//!    * [`ProofEngine::Auto`] (default) — ABC for combinational miters (yosys `sat` when
//!      `yosys-abc` is missing), yosys `sat -tempinduct` for sequential ones.
//! 3. Or, with [`prove_equiv_split`], a case split: the same miter, one AIG with input names
//!    (`equiv_split_aig.ys`), then per case (one value of chosen input fields) a BDD of the
//!    trigger in ABC, cases batched into a few `yosys-abc` runs (`split_NNNN.abc`), two or
//!    more at a time; a refuted case is replayed with yosys `sat` (`equiv_split_cex.ys`).
//!    [`CaseSplit`] documents why the cases cover every input.
//!
//! Measured on this project's 2-core machine (yosys 0.23), DUT = shift-add rebuild with folded
//! negation vs `hdl/formal/sd_rebuild_ref.v`: yosys `sat` (MiniSAT) does not finish the 3-term
//! rebuild proof in 5 minutes even at BasisBits = 4, ExpBits = 2 (differently associated adders
//! around variable shifts are hard for plain CDCL); ABC `iprove` proves 4/2 in 4–10 s and
//! 8/3 in 1.5 to 7 minutes (the time swings with the AIG's node order). Counterexamples of
//! broken designs take about a second with either engine. Split on the exponent codes
//! (`crate::rebuild_proof`), 8/3 takes ~0.1 s of CPU per case for the whole lane and ~35 ms
//! for one column, against 0.4–2.5 s per case with `sat` or `iprove`.
//!
//! A counterexample is [`ProofResult::Failed`]; a yosys/ABC failure (syntax error, port
//! mismatch, crash, time limit, induction that does not close) is a
//! [`ToolError`](crate::ToolError).

mod abc;
mod case_split;
mod log;
mod miter;
mod scripts;
mod split;
mod verdict;

pub use abc::ABC_COMMANDS;
pub use case_split::{prove_equiv_split, BddOrder, SplitOptions, SplitReport};
pub use miter::{prove_equiv, prove_equiv_with};
pub use scripts::{aig_script, prepare_script, sat_script, split_aig_script, STATE_SELECTION};
pub use split::{CaseSplit, SplitCase, SplitField};
pub use verdict::{ProofEngine, ProofOptions, ProofReport, ProofResult};

#[cfg(test)]
mod tests;
