//! Formal equivalence of the generated decoder + rebuild lane against the hand-written plain
//! multiplier reference `hdl/formal/sd_rebuild_ref.v` (`w_j = Σ_k ±B[k][j] · 2^code_k`), with
//! Yosys (miter, `sat`) and the ABC that ships with it.
//!
//! Every proof covers every input. Two methods:
//! * `smartdeal_fpga::prove_equiv` — one proof of the whole miter (ABC `iprove`). 4-bit B /
//!   2-bit codes take seconds; the presets' 8-bit B / 3-bit codes 1.5–7 minutes.
//! * `smartdeal_fpga::prove_rebuild` — column-symmetry lemmas for both designs, then a case
//!   split of column 0 on the three exponent codes (3 × 3 bits = 512 cases at the presets'
//!   widths, each a BDD in its own variable order); see `smartdeal_fpga::rebuild_proof` for
//!   why the pieces cover every input. About 20 s of CPU for 8/3 (two ABC processes at a
//!   time). The case list is generated from the config widths and checked complete here
//!   (`code_split`). This is how every preset is proved.
//!
//! The presets share basis_bits = 8 / exp_bits = 3, and the generated `sd_decoder.v` /
//! `sd_rebuild.v` differ only in their header comments, so each distinct netlist is proved
//! once and every preset name is checked to map to a proved netlist.

use smartdeal_core::params::PRESETS;
use smartdeal_core::AccelConfig;
use smartdeal_fpga::{
    prove_equiv, prove_rebuild, CaseSplit, ColumnCoverage, ProofResult, RebuildLayout,
    RebuildProof, SplitField, SplitOptions,
};
use smartdeal_gen::design::generator_id;
use smartdeal_gen::hw::rebuild;
use smartdeal_gen::ir::emit;
use smartdeal_gen::{generate, Fault, GenOptions};
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The generated files the proofs read: the rebuild engine's two halves and the decoder they
/// instantiate (their composition `sd_rebuild` is written beside them, [`write_lane`]).
const LANE_FILES: [&str; 3] = ["sd_decoder.v", "sd_rebuild_terms.v", "sd_rebuild_add.v"];

fn reference() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("hdl/formal/sd_rebuild_ref.v")
}

/// Writes the generated design of `cfg` under `dir` and returns the lane's files: the design's
/// decoder and rebuild halves, and `sd_rebuild.v`, the composition of exactly those halves
/// (`rebuild::module`) that the lane instantiates with a register between them.
fn write_lane(cfg: &AccelConfig, fault: Option<Fault>, dir: &Path) -> Vec<PathBuf> {
    let rtl = dir.join("rtl");
    let design = generate(cfg, &GenOptions { fault });
    design.write(&rtl).unwrap();
    let decoder = smartdeal_gen::hw::decoder::module(cfg);
    let terms = rebuild::terms_module(cfg, &decoder, fault);
    let add = rebuild::add_module(cfg);
    let row = rebuild::module(cfg, &terms, &add);
    let path = rtl.join("sd_rebuild.v");
    std::fs::write(&path, emit::module(&row, &generator_id())).unwrap();
    let mut files: Vec<PathBuf> = LANE_FILES.iter().map(|f| rtl.join(f)).collect();
    files.push(path);
    files
}

fn ref_params(cfg: &AccelConfig) -> Vec<(String, i64)> {
    vec![
        ("BasisBits".to_string(), i64::from(cfg.basis_bits)),
        ("ExpBits".to_string(), i64::from(cfg.exp_bits)),
    ]
}

/// Proves (or refutes) the generated `sd_rebuild` of `cfg` against the reference in one
/// proof of the whole miter.
fn prove(cfg: &AccelConfig, fault: Option<Fault>) -> ProofResult {
    let dir = tempfile::tempdir().unwrap();
    let dut = write_lane(cfg, fault, dir.path());
    prove_equiv(
        &dut,
        "sd_rebuild",
        &[reference()],
        "sd_rebuild_ref",
        &ref_params(cfg),
        &dir.path().join("proof"),
    )
    .unwrap_or_else(|e| panic!("config {}: the proof did not run: {e}", cfg.name))
}

/// The case split of `cfg`, generated from its widths, and checked complete: the fields are
/// exactly the three exponent codes of the reference's `ce_i` layout (element k at
/// `[k*E +: E]`, E = 2 + exp_bits, code at `[2 +: exp_bits]`), and the cases are every code
/// triple (c0, c1, c2) ∈ [0, 2^exp_bits)^3 exactly once. The other inputs (B, present,
/// negative) are free in every case, so the cases together cover every input.
fn code_split(cfg: &AccelConfig) -> (RebuildLayout, CaseSplit) {
    let (bb, eb) = (cfg.basis_bits as usize, cfg.exp_bits as usize);
    let layout = RebuildLayout::new(bb, eb).unwrap();
    let split = layout.code_split();
    let e = cfg.coef_elem_bits() as usize;
    let expected: Vec<SplitField> = (0..3)
        .map(|k| SplitField::new("ce_i", k * e + 2, eb))
        .collect();
    assert_eq!(split.fields(), &expected[..], "{}", cfg.name);
    let cases: Vec<_> = split.cases().collect();
    assert_eq!(cases.len(), 1 << (3 * eb), "{}", cfg.name);
    split.check_complete(&cases).unwrap();
    let triples: BTreeSet<Vec<u64>> = cases.iter().map(|c| c.values.clone()).collect();
    let all: BTreeSet<Vec<u64>> = (0..1u64 << eb)
        .flat_map(|c0| {
            (0..1u64 << eb).flat_map(move |c1| (0..1u64 << eb).map(move |c2| vec![c0, c1, c2]))
        })
        .collect();
    assert_eq!(
        triples, all,
        "{}: the cases are not every code triple",
        cfg.name
    );
    (layout, split)
}

/// Proves (or refutes) the generated `sd_rebuild` of `cfg` against the reference with
/// `prove_rebuild` (symmetry lemmas + the case split on the exponent codes).
fn prove_by_cases(cfg: &AccelConfig, fault: Option<Fault>) -> RebuildProof {
    let dir = tempfile::tempdir().unwrap();
    let dut = write_lane(cfg, fault, dir.path());
    let (layout, split) = code_split(cfg);
    assert_eq!(layout.code_split(), split);
    let opts = SplitOptions {
        timeout: Some(Duration::from_secs(600)),
        ..layout.split_options()
    };
    prove_rebuild(
        &dut,
        &reference(),
        &layout,
        &dir.path().join("proof"),
        &opts,
    )
    .unwrap_or_else(|e| panic!("config {}: the proof did not run: {e}", cfg.name))
}

/// One line for the test log (`cargo test -- --nocapture`).
fn summary(what: &str, r: &RebuildProof) -> String {
    let s = &r.split;
    let verdict = match &r.result {
        ProofResult::Proved => "proved".to_string(),
        ProofResult::Failed { counterexample } => {
            format!("refuted, {}", counterexample.lines().next().unwrap_or(""))
        }
    };
    format!(
        "{what}: {verdict}; columns {:?}; lemmas {:.1} s + {:.1} s; {} cases ({} proved) in {} ABC runs \
         on {} jobs, case CPU max {:.2} s / sum {:.1} s; {:.1} s wall",
        r.columns,
        r.lemma_secs[0],
        r.lemma_secs[1],
        s.cases,
        s.proved_cases,
        s.abc_runs,
        s.jobs,
        s.case_secs_max,
        s.case_secs_total,
        r.elapsed_secs
    )
}

fn small_config() -> AccelConfig {
    let mut cfg = AccelConfig::preset("tiny").unwrap();
    cfg.name = "formal_4_2".into();
    cfg.basis_bits = 4;
    cfg.exp_bits = 2;
    cfg.validate().unwrap();
    cfg
}

/// The lane's netlist without comments (the headers name the preset and its fingerprint).
fn lane_netlist(cfg: &AccelConfig) -> String {
    let design = generate(cfg, &GenOptions::default());
    let mut text = String::new();
    for name in LANE_FILES {
        let (_, file) = design
            .files
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{}: no {name}", cfg.name));
        text.push_str(&format!("// file {name}\n"));
        for line in file.lines() {
            let code = line.split("//").next().unwrap().trim_end();
            if !code.is_empty() {
                text.push_str(code);
                text.push('\n');
            }
        }
    }
    text
}

#[test]
fn generated_rebuild_equals_the_multiplier_reference_4bit_basis_2bit_codes() {
    assert_eq!(prove(&small_config(), None), ProofResult::Proved);
}

/// The check can fail: a generator that drops one folded-negation carry is refuted, with a
/// counterexample, by the whole-miter proof at 4/2.
#[test]
fn generated_rebuild_with_a_dropped_carry_is_refuted_4bit_basis_2bit_codes() {
    match prove(&small_config(), Some(Fault::RebuildDropCarry)) {
        ProofResult::Failed { counterexample } => {
            assert!(counterexample.contains("ce_i"), "{counterexample}")
        }
        ProofResult::Proved => panic!("the broken rebuild was proved"),
    }
}

/// ... and by the case-split proof at the presets' widths (8-bit B, 3-bit codes): the report
/// names the refuted case and gives yosys' counterexample for it.
#[test]
fn generated_rebuild_with_a_dropped_carry_is_refuted_at_preset_widths() {
    let cfg = AccelConfig::preset("tiny").unwrap();
    assert_eq!((cfg.basis_bits, cfg.exp_bits), (8, 3));
    let r = prove_by_cases(&cfg, Some(Fault::RebuildDropCarry));
    eprintln!("{}", summary("tiny, dropped carry", &r));
    match &r.result {
        ProofResult::Failed { counterexample } => {
            eprintln!("{counterexample}");
            assert!(
                counterexample.starts_with("case ")
                    && counterexample.contains(" of 512 (ce_i[4:2]="),
                "{counterexample}"
            );
            assert!(counterexample.contains("in_b_i"), "{counterexample}");
            assert!(counterexample.contains("in_ce_i"), "{counterexample}");
            assert!(counterexample.contains("gate_w_o"), "{counterexample}");
        }
        ProofResult::Proved => panic!("the broken rebuild was proved"),
    }
    assert!(!r.split.failed_cases.is_empty());
    assert_eq!(r.columns, ColumnCoverage::Symmetry);
}

/// Every preset on the rebuild dataflow: each distinct lane netlist is proved once by
/// `prove_rebuild` (they share one today), and every such preset must map to a proved netlist.
/// Presets on the factorized dataflow have no rebuild lane; `tests/formal_factor.rs` proves
/// their per-row update.
#[test]
fn every_preset_rebuild_equals_the_multiplier_reference() {
    let start = Instant::now();
    let mut netlists: BTreeMap<String, Vec<AccelConfig>> = BTreeMap::new();
    let rebuild: Vec<&str> = PRESETS
        .into_iter()
        .filter(|p| !AccelConfig::preset(p).unwrap().is_factorized())
        .collect();
    assert!(rebuild.len() >= 2, "{rebuild:?}");
    for &p in &rebuild {
        let cfg = AccelConfig::preset(p).unwrap();
        // The widths are part of the key: the reference's parameters come from them.
        let key = format!(
            "basis_bits={} exp_bits={}\n{}",
            cfg.basis_bits,
            cfg.exp_bits,
            lane_netlist(&cfg)
        );
        netlists.entry(key).or_default().push(cfg);
    }
    let mut proved: BTreeSet<String> = BTreeSet::new();
    for (key, cfgs) in &netlists {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        let names: Vec<&str> = cfgs.iter().map(|c| c.name.as_str()).collect();
        let r = prove_by_cases(&cfgs[0], None);
        eprintln!(
            "{}",
            summary(
                &format!("netlist {:016x} ({})", h.finish(), names.join(", ")),
                &r
            )
        );
        assert_eq!(r.result, ProofResult::Proved, "{names:?}");
        assert_eq!(r.split.proved_cases, r.split.cases, "{names:?}");
        proved.extend(names.iter().map(|n| n.to_string()));
    }
    for p in &rebuild {
        assert!(proved.contains(*p), "preset {p} has no proved netlist");
    }
    eprintln!(
        "{} rebuild presets, {} distinct netlist(s), {:.1} s",
        rebuild.len(),
        netlists.len(),
        start.elapsed().as_secs_f64()
    );
}
