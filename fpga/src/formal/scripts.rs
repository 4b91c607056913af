//! The Yosys scripts of the proofs, as text: the miter, the `sat` proof and the AIG exports
//! that ABC reads. Their own module because both the SAT/ABC miter proof and the ABC runner
//! write them.

use std::path::PathBuf;

use crate::tools::{self, ToolError};

/// Yosys selection of every state-holding cell type (coarse and fine-grained).
pub const STATE_SELECTION: &str =
    "t:$ff t:$*dff* t:$*dlatch* t:$mem* t:$_*FF* t:$_*DLATCH* t:$_SR_*";

/// The miter-building script (`equiv_prepare.ys`).
pub fn prepare_script(
    dut_files: &[PathBuf],
    dut_top: &str,
    ref_files: &[PathBuf],
    ref_top: &str,
    ref_params: &[(String, i64)],
) -> Result<String, ToolError> {
    let mut s = String::new();
    for f in dut_files.iter().chain(ref_files) {
        s.push_str(&format!("read_verilog {}\n", tools::yosys_quote(f)?));
    }
    if !ref_params.is_empty() {
        s.push_str("chparam");
        for (name, value) in ref_params {
            s.push_str(&format!(" -set {name} {}", yosys_param_value(*value)));
        }
        s.push_str(&format!(" {ref_top}\n"));
    }
    s.push_str("hierarchy -check\nproc\nflatten\nopt_clean\n");
    s.push_str(&format!(
        "miter -equiv -flatten -make_outputs {ref_top} {dut_top} miter\n"
    ));
    s.push_str("hierarchy -top miter\nopt -fast\n");
    s.push_str(&format!(
        "tee -q -o state.txt select -list {STATE_SELECTION}\n"
    ));
    s.push_str("write_rtlil miter.il\n");
    Ok(s)
}

/// A parameter value as `chparam` accepts it: it cannot decode `-3`, so negative values are
/// written as 64-bit signed hex constants.
fn yosys_param_value(value: i64) -> String {
    if value >= 0 {
        value.to_string()
    } else {
        format!("64'sh{:016x}", value as u64)
    }
}

/// The yosys `sat` proof script (`equiv_sat.ys`).
pub fn sat_script(sequential: bool, max_induction_steps: Option<u32>) -> String {
    let sat = if sequential {
        let max = max_induction_steps
            .map(|n| format!(" -maxsteps {n}"))
            .unwrap_or_default();
        format!(
            "sat -verify -tempinduct -prove trigger 0 -set-init-zero{max} -show-inputs -show-outputs miter"
        )
    } else {
        // No state: one SAT call over all inputs is the whole proof (the induction step of
        // -tempinduct would only double the problem).
        "sat -verify -prove trigger 0 -show-inputs -show-outputs miter".to_string()
    };
    format!("read_rtlil miter.il\n{sat}\n")
}

/// The AIG-export script (`equiv_aig.ys`): only `trigger` stays an output; undriven wires
/// become free inputs; undefined constants left by techmap become 0 (as yosys `sat` treats them).
pub fn aig_script() -> String {
    "read_rtlil miter.il\n\
     delete -port miter/o:gold_* miter/o:gate_*\n\
     techmap\n\
     opt -fast\n\
     aigmap\n\
     opt_clean\n\
     setundef -undriven -expose\n\
     setundef -zero\n\
     write_aiger -zinit -map miter.aim miter.aig\n"
        .to_string()
}

/// The AIG-export script of the case-split proof (`equiv_split_aig.ys`). As [`aig_script`],
/// plus:
/// * an AIGER symbol table (`-symbols`): ABC then names the inputs `in_<port>[<bit>]`
///   (`in_<port>` for 1-bit ports), which the per-case commands (`cof`, `order`) address;
/// * `wreduce` before `techmap`: drops the sign-extension bits of the reference's
///   multiplier operands (an 8 × 17 instead of a 17 × 17 array at 8/3);
/// * no `opt`/`opt_clean` after `techmap`: on the bit-level netlist they cost 3–4 s at 8/3
///   and ABC's structural hashing does the same (dangling logic is dropped by `strash`).
///
/// `-keepdc` keeps explicit don't-care bits as they are (the only ones here are dead `x`
/// branches of the reference's `if`, which `setundef -zero` then makes 0, as yosys `sat` does).
pub fn split_aig_script() -> String {
    "read_rtlil miter.il\n\
     delete -port miter/o:gold_* miter/o:gate_*\n\
     opt_expr -keepdc\n\
     wreduce -keepdc\n\
     opt_clean\n\
     techmap\n\
     aigmap\n\
     setundef -undriven -expose\n\
     setundef -zero\n\
     write_aiger -zinit -symbols -map miter.aim miter.aig\n"
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_parameters_are_hex() {
        assert_eq!(yosys_param_value(8), "8");
        assert_eq!(yosys_param_value(-3), "64'shfffffffffffffffd");
    }
}
