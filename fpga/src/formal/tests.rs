//! Proofs on real designs (yosys and ABC): the rebuild lane at 4/2 and 8/3 against
//! `hdl/formal/sd_rebuild_ref.v`, broken copies of it, and small sequential and split designs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::tools::{Tool, ToolError};

fn reference() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../hdl/formal/sd_rebuild_ref.v")
}

/// An independent shift-add rebuild written directly in Verilog (`bb` = BasisBits,
/// `eb` = ExpBits, `RB = bb + 2^eb − 1 + 2` result bits): the operand is gated with
/// `present` and XORed with `neg = present & negative` before the shift, the vacated bits
/// are filled with `neg`, and the three `neg` carries are added at the end
/// (x ^ -1 = -x - 1, so ((~b) << c | (2^c - 1)) + 1 = -(b << c)).
fn dut(bb: u32, eb: u32) -> String {
    let rb = bb + (1 << eb) - 1 + 2; // rebuilt-weight bits
    let f = eb + 2; // Ce element field: present, negative, code
    let (hi, mask) = (rb - 1, (1u64 << rb) - 1);
    let sh_decl = format!("[{hi}:0]");
    let s_decl = format!("{:<w$}", "[2:0]", w = sh_decl.len());
    let sum = format!("            assign w_o[j*{rb} +: {rb}] = ");
    let cont = " ".repeat(sum.len() - 2);
    format!(
        "`default_nettype none
module sd_rebuild (
    input  wire [{b_hi}:0] b_i,
    input  wire [{ce_hi}:0] ce_i,
    output wire [{w_hi}:0] w_o
);
    genvar j, k;
    generate
        for (j = 0; j < 3; j = j + 1) begin : g_col
            wire {sh_decl} sh [0:2];
            wire {s_decl} s;
            for (k = 0; k < 3; k = k + 1) begin : g_row
                wire       p = ce_i[k*{f}];
                wire       n = ce_i[k*{f}+1] & p;
                wire [{c_hi}:0] c = ce_i[k*{f}+2 +: {eb}];
                wire [{x_hi}:0] x = (b_i[(k*3+j)*{bb} +: {bb}] & {{{bb}{{p}}}}) ^ {{{bb}{{n}}}};
                wire {sh_decl} xe = {{{{{ext}{{x[{x_hi}]}}}}, x}};
                assign sh[k] = (xe << c) | (~({rb}'h{mask:x} << c) & {{{rb}{{n}}}});
                assign s[k] = n;
            end
{sum}sh[0] + sh[1] + sh[2]
{cont}+ {{{hi}'d0, s[0]}} + {{{hi}'d0, s[1]}} + {{{hi}'d0, s[2]}};
        end
    endgenerate
endmodule
",
        b_hi = 9 * bb - 1,
        ce_hi = 3 * f - 1,
        w_hi = 3 * rb - 1,
        c_hi = eb - 1,
        x_hi = bb - 1,
        ext = rb - bb,
    )
}

static DUT_8_3: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| dut(8, 3));
static DUT_4_2: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| dut(4, 2));

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn params(b: i64, e: i64) -> Vec<(String, i64)> {
    vec![("BasisBits".into(), b), ("ExpBits".into(), e)]
}

fn drop_last_carry(dut: &str) -> String {
    let broken = dut
        .replace(" + {16'd0, s[2]}", "")
        .replace(" + {8'd0, s[2]}", "");
    assert_ne!(broken, dut);
    broken
}

#[test]
fn test_duts_are_lint_clean() {
    let dir = tempfile::tempdir().unwrap();
    for (i, text) in [&*DUT_8_3, &*DUT_4_2].iter().enumerate() {
        let sub = dir.path().join(format!("d{i}"));
        std::fs::create_dir_all(&sub).unwrap();
        let f = write(&sub, "sd_rebuild.v", text);
        let r = crate::lint(&[f], "sd_rebuild", None, &sub.join("work")).unwrap();
        assert!(r.passed(), "{}", r.summary());
    }
}

#[test]
fn rebuild_4_2_is_proved_and_broken_copy_fails() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.v", &DUT_4_2);
    let r = prove_equiv_with(
        &[good],
        "sd_rebuild",
        &[reference()],
        "sd_rebuild_ref",
        &params(4, 2),
        &dir.path().join("good"),
        &ProofOptions {
            timeout: Some(Duration::from_secs(300)),
            ..ProofOptions::default()
        },
    )
    .unwrap();
    assert_eq!(r.result, ProofResult::Proved);
    assert_eq!(r.engine, ProofEngine::Abc);
    assert!(!r.sequential);

    let bad = write(dir.path(), "bad.v", &drop_last_carry(&DUT_4_2));
    let r = prove_equiv(
        &[bad],
        "sd_rebuild",
        &[reference()],
        "sd_rebuild_ref",
        &params(4, 2),
        &dir.path().join("bad"),
    )
    .unwrap();
    match r {
        ProofResult::Failed { counterexample } => {
            assert!(counterexample.contains("in_ce_i"), "{counterexample}");
            assert!(counterexample.contains("gate_w_o"), "{counterexample}");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
}

#[test]
fn broken_rebuild_8_3_fails_with_both_engines() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(dir.path(), "bad.v", &drop_last_carry(&DUT_8_3));
    for engine in [ProofEngine::YosysSat, ProofEngine::Abc] {
        let r = prove_equiv_with(
            std::slice::from_ref(&bad),
            "sd_rebuild",
            &[reference()],
            "sd_rebuild_ref",
            &params(8, 3),
            &dir.path().join(format!("{engine:?}")),
            &ProofOptions {
                engine,
                timeout: Some(Duration::from_secs(120)),
                ..ProofOptions::default()
            },
        )
        .unwrap();
        match r.result {
            ProofResult::Failed { counterexample } => {
                assert!(counterexample.contains("in_b_i"), "{counterexample}")
            }
            other => panic!("{engine:?}: expected Failed, got {other:?}"),
        }
    }
}

#[test]
fn syntax_error_is_err_not_failed() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "sd_rebuild.v",
        &DUT_4_2.replace("assign s[k] = n;", "assign s[k] = n"),
    );
    let err = prove_equiv(
        &[bad],
        "sd_rebuild",
        &[reference()],
        "sd_rebuild_ref",
        &params(4, 2),
        &dir.path().join("work"),
    )
    .unwrap_err();
    match &err {
        ToolError::Failed { tool, tail, .. } => {
            assert_eq!(*tool, Tool::Yosys);
            assert!(tail.contains("ERROR"), "{tail}");
        }
        other => panic!("expected Failed, got {other}"),
    }
}

#[test]
fn same_module_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = prove_equiv(
        &[reference()],
        "sd_rebuild_ref",
        &[reference()],
        "sd_rebuild_ref",
        &[],
        dir.path(),
    )
    .unwrap_err();
    assert!(matches!(err, ToolError::InvalidInput(_)), "{err}");
}

#[test]
fn sequential_equivalence_uses_temporal_induction() {
    // Two different formulations of a registered accumulator.
    let dir = tempfile::tempdir().unwrap();
    let a = write(
        dir.path(),
        "acc_a.v",
        "module acc_a (input wire clk, input wire [7:0] x, output reg [7:0] y);\n\
         always @(posedge clk) y <= y + x;\nendmodule\n",
    );
    let b = write(
        dir.path(),
        "acc_b.v",
        "module acc_b (input wire clk, input wire [7:0] x, output reg [7:0] y);\n\
         always @(posedge clk) y <= y - (~x) - 8'd1;\nendmodule\n",
    );
    let r = prove_equiv_with(
        std::slice::from_ref(&a),
        "acc_a",
        std::slice::from_ref(&b),
        "acc_b",
        &[],
        &dir.path().join("ok"),
        &ProofOptions::default(),
    )
    .unwrap();
    assert_eq!(r.result, ProofResult::Proved);
    assert!(r.sequential);
    assert_eq!(r.engine, ProofEngine::YosysSat);

    let c = write(
        dir.path(),
        "acc_c.v",
        "module acc_c (input wire clk, input wire [7:0] x, output reg [7:0] y);\n\
         always @(posedge clk) y <= y + x + {7'd0, y[7]};\nendmodule\n",
    );
    let r = prove_equiv(&[c], "acc_c", &[b], "acc_b", &[], &dir.path().join("bad")).unwrap();
    assert!(matches!(r, ProofResult::Failed { .. }), "{r:?}");
}

// ---- case-split proofs ----

fn split_4_2() -> (CaseSplit, SplitOptions) {
    let layout = crate::RebuildLayout::new(4, 2).unwrap();
    (layout.code_split(), layout.split_options())
}

#[test]
fn rebuild_4_2_split_proof_proves_and_refutes() {
    let dir = tempfile::tempdir().unwrap();
    let (split, opts) = split_4_2();
    let good = write(dir.path(), "good.v", &DUT_4_2);
    let r = prove_equiv_split(
        &[good],
        "sd_rebuild",
        &[reference()],
        "sd_rebuild_ref",
        &params(4, 2),
        &dir.path().join("good"),
        &split,
        &opts,
    )
    .unwrap();
    assert_eq!(r.result, ProofResult::Proved, "{r:?}");
    assert_eq!((r.cases, r.proved_cases), (64, 64));

    let bad = write(dir.path(), "bad.v", &drop_last_carry(&DUT_4_2));
    let r = prove_equiv_split(
        &[bad],
        "sd_rebuild",
        &[reference()],
        "sd_rebuild_ref",
        &params(4, 2),
        &dir.path().join("bad"),
        &split,
        &opts,
    )
    .unwrap();
    match r.result {
        ProofResult::Failed { counterexample } => {
            assert!(
                counterexample.starts_with("case 0 of 64 (ce_i[3:2]=2'b00 "),
                "{counterexample}"
            );
            assert!(counterexample.contains("in_b_i"), "{counterexample}");
            assert!(counterexample.contains("gate_w_o"), "{counterexample}");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    assert_eq!(r.failed_cases.first(), Some(&0));
}

/// The cofactors pin exactly the split bits: the gate adds `c[1] & c[0]`, so of the four
/// cases of a split on c[0] and c[1] exactly case 3 (both 1) fails.
#[test]
fn split_cofactors_pin_the_chosen_bits() {
    let dir = tempfile::tempdir().unwrap();
    let gold = write(
        dir.path(),
        "gold.v",
        "module add_gold (input wire [7:0] a, input wire [7:0] b, input wire [2:0] c,\n\
         output wire [7:0] y);\n  assign y = a + b + {7'd0, c[2]};\nendmodule\n",
    );
    let gate = write(
        dir.path(),
        "gate.v",
        "module add_gate (input wire [7:0] a, input wire [7:0] b, input wire [2:0] c,\n\
         output wire [7:0] y);\n  assign y = b + a + {7'd0, c[2]} + {7'd0, c[1] & c[0]};\nendmodule\n",
    );
    let split =
        CaseSplit::new(vec![SplitField::new("c", 0, 1), SplitField::new("c", 1, 1)]).unwrap();
    let r = prove_equiv_split(
        &[gate],
        "add_gate",
        &[gold],
        "add_gold",
        &[],
        &dir.path().join("w"),
        &split,
        &SplitOptions {
            jobs: 1,
            cases_per_run: 4,
            ..SplitOptions::default()
        },
    )
    .unwrap();
    assert_eq!(r.failed_cases, vec![3]);
    assert_eq!(r.proved_cases, 3);
    match r.result {
        ProofResult::Failed { counterexample } => assert!(
            counterexample.starts_with("case 3 of 4 (c[0:0]=1'b1 c[1:1]=1'b1) fails:"),
            "{counterexample}"
        ),
        other => panic!("expected Failed, got {other:?}"),
    }
}

/// [`crate::prove_rebuild`] at 8/3: symmetry lemmas + column 0, refutes the dropped
/// carry with a counterexample of the column-0 wrappers.
#[test]
fn prove_rebuild_8_3_refutes_a_dropped_carry() {
    let dir = tempfile::tempdir().unwrap();
    let layout = crate::RebuildLayout::new(8, 3).unwrap();
    let bad = write(dir.path(), "bad.v", &drop_last_carry(&DUT_8_3));
    let r = crate::prove_rebuild(
        &[bad],
        &reference(),
        &layout,
        &dir.path().join("bad"),
        &SplitOptions {
            timeout: Some(Duration::from_secs(300)),
            ..layout.split_options()
        },
    )
    .unwrap();
    assert_eq!(r.columns, crate::ColumnCoverage::Symmetry);
    match r.result {
        ProofResult::Failed { counterexample } => {
            assert!(
                counterexample.contains(" of 512 (ce_i[4:2]="),
                "{counterexample}"
            );
            assert!(counterexample.contains("in_ce_i"), "{counterexample}");
            assert!(counterexample.contains("in_b_i"), "{counterexample}");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
}

/// [`crate::prove_rebuild`] at 4/2: proved through the symmetry lemmas; a DUT whose
/// columns differ (the carry dropped in column 2 only) fails the DUT lemma, falls back to
/// all columns and is refuted there.
#[test]
fn prove_rebuild_4_2_symmetry_and_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let layout = crate::RebuildLayout::new(4, 2).unwrap();
    let opts = SplitOptions {
        timeout: Some(Duration::from_secs(300)),
        ..layout.split_options()
    };
    let good = write(dir.path(), "good.v", &DUT_4_2);
    let r = crate::prove_rebuild(
        &[good],
        &reference(),
        &layout,
        &dir.path().join("good"),
        &opts,
    )
    .unwrap();
    assert_eq!(r.result, ProofResult::Proved, "{r:?}");
    assert_eq!(r.columns, crate::ColumnCoverage::Symmetry);
    assert_eq!(r.split.proved_cases, 64);

    let skewed = DUT_4_2.replace(" + {8'd0, s[2]}", " + {8'd0, s[2] & (j != 2)}");
    assert_ne!(skewed, *DUT_4_2);
    let bad = write(dir.path(), "skewed.v", &skewed);
    let r = crate::prove_rebuild(
        &[bad],
        &reference(),
        &layout,
        &dir.path().join("skewed"),
        &opts,
    )
    .unwrap();
    match &r.columns {
        crate::ColumnCoverage::AllColumns(why) => assert!(why.contains("DUT"), "{why}"),
        other => panic!("expected the all-columns fallback, got {other:?}"),
    }
    match r.result {
        ProofResult::Failed { counterexample } => {
            assert!(counterexample.contains("gate_w_o"), "{counterexample}")
        }
        other => panic!("expected Failed, got {other:?}"),
    }
}

#[test]
fn rotation_wrapper_rotates_columns() {
    let layout = crate::RebuildLayout::new(4, 2).unwrap();
    let text = layout.rotation_wrapper("sd_rebuild");
    // B[1][2] <- B[1][0]: bits [(1*3+2)*4 +: 4] = [20 +: 4] <- [12 +: 4].
    assert!(
        text.contains("assign b_rot[20 +: 4] = b_i[12 +: 4];"),
        "{text}"
    );
    // w_o[0] <- w_rot[2] (RB = 9).
    assert!(
        text.contains("assign w_o[0 +: 9] = w_rot[18 +: 9];"),
        "{text}"
    );
    assert!(layout
        .rotation_wrapper("sd_rebuild_ref")
        .contains("sd_rebuild_ref #(.BasisBits(4), .ExpBits(2)) u_inner"));
}

#[test]
fn split_on_a_missing_port_is_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.v", &DUT_4_2);
    for field in [
        SplitField::new("nope", 0, 1),
        SplitField::new("ce_i", 11, 2),
    ] {
        let err = prove_equiv_split(
            std::slice::from_ref(&good),
            "sd_rebuild",
            &[reference()],
            "sd_rebuild_ref",
            &params(4, 2),
            &dir.path().join("w"),
            &CaseSplit::new(vec![field]).unwrap(),
            &SplitOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(err, ToolError::InvalidInput(_)), "{err}");
    }
}

/// The full 8/3 proof: ~1.5 min with ABC on a 2-core machine (yosys sat alone does not
/// finish in 5 min). Run with `cargo test -p smartdeal-fpga -- --ignored`.
#[test]
#[ignore = "slow: full 8/3 rebuild proof (minutes)"]
fn rebuild_8_3_is_proved() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.v", &DUT_8_3);
    let r = prove_equiv_with(
        &[good],
        "sd_rebuild",
        &[reference()],
        "sd_rebuild_ref",
        &params(8, 3),
        &dir.path().join("good"),
        &ProofOptions {
            timeout: Some(Duration::from_secs(1200)),
            ..ProofOptions::default()
        },
    )
    .unwrap();
    assert_eq!(r.result, ProofResult::Proved, "{r:?}");
}
