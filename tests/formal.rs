//! Formal equivalence of the generated decoder + rebuild lane against the hand-written plain
//! multiplier reference `hdl/formal/sd_rebuild_ref.v` (`w_j = Σ_k ±B[k][j] · 2^code_k`), with
//! Yosys (miter) and the ABC that ships with it (`smartdeal_fpga::prove_equiv`).
//!
//! The proof covers every input. Its cost grows steeply with the widths: 4-bit B / 2-bit codes
//! take seconds, the presets' 8-bit B / 3-bit codes 1.5–7 minutes, so that proof is an ignored
//! test (`cargo test --test formal -- --ignored`).

use smartdeal_core::params::PRESETS;
use smartdeal_core::AccelConfig;
use smartdeal_fpga::{prove_equiv, ProofResult};
use smartdeal_gen::{generate, Fault, GenOptions};
use std::path::{Path, PathBuf};

fn reference() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("hdl/formal/sd_rebuild_ref.v")
}

/// Proves (or refutes) the generated `sd_rebuild` of `cfg` against the reference.
fn prove(cfg: &AccelConfig, fault: Option<Fault>) -> ProofResult {
    let dir = tempfile::tempdir().unwrap();
    let design = generate(cfg, &GenOptions { fault });
    let rtl = dir.path().join("rtl");
    design.write(&rtl).unwrap();
    let dut = vec![rtl.join("sd_decoder.v"), rtl.join("sd_rebuild.v")];
    let params = vec![
        ("BasisBits".to_string(), i64::from(cfg.basis_bits)),
        ("ExpBits".to_string(), i64::from(cfg.exp_bits)),
    ];
    prove_equiv(
        &dut,
        "sd_rebuild",
        &[reference()],
        "sd_rebuild_ref",
        &params,
        &dir.path().join("proof"),
    )
    .unwrap_or_else(|e| panic!("config {}: the proof did not run: {e}", cfg.name))
}

fn small_config() -> AccelConfig {
    let mut cfg = AccelConfig::preset("tiny").unwrap();
    cfg.name = "formal_4_2".into();
    cfg.basis_bits = 4;
    cfg.exp_bits = 2;
    cfg.validate().unwrap();
    cfg
}

#[test]
fn generated_rebuild_equals_the_multiplier_reference_4bit_basis_2bit_codes() {
    assert_eq!(prove(&small_config(), None), ProofResult::Proved);
}

/// The check can fail: a generator that drops one folded-negation carry is refuted, with a
/// counterexample, at the presets' widths.
#[test]
fn generated_rebuild_with_a_dropped_carry_is_refuted() {
    for cfg in [small_config(), AccelConfig::preset("tiny").unwrap()] {
        match prove(&cfg, Some(Fault::RebuildDropCarry)) {
            ProofResult::Failed { counterexample } => {
                assert!(counterexample.contains("ce_i"), "{counterexample}")
            }
            ProofResult::Proved => panic!("{}: the broken rebuild was proved", cfg.name),
        }
    }
}

/// Every preset (8-bit B, 3-bit codes): minutes per proof on two cores.
#[test]
#[ignore = "slow: 1.5–7 minutes per preset"]
fn every_preset_rebuild_equals_the_multiplier_reference() {
    for p in PRESETS {
        assert_eq!(
            prove(&AccelConfig::preset(p).unwrap(), None),
            ProofResult::Proved,
            "{p}"
        );
    }
}
