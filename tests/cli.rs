//! End-to-end tests of the `smartdeal` binary: every test runs the real executable.

use rand::{Rng, SeedableRng};
use smartdeal_core::random::{random_layer, RandomLayerSpec};
use smartdeal_core::{sdm, AccelConfig, Model};
use std::path::{Path, PathBuf};

mod common;

use common::{fails, make_layer, numpy_reference, ok, p, read_json, run_model, write_npy};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Reads a .npy file with npyz, checking its dtype string and C order.
fn read_npy<T: npyz::Deserialize>(path: &Path, descr: &str) -> (Vec<u64>, Vec<T>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    assert_eq!(
        npy.dtype().descr(),
        format!("'{descr}'"),
        "{}",
        path.display()
    );
    assert_eq!(npy.order(), npyz::Order::C);
    let shape = npy.shape().to_vec();
    let data = npy.into_vec::<T>().unwrap();
    assert_eq!(data.len() as u64, shape.iter().product::<u64>());
    (shape, data)
}

fn random_x(tokens: usize, inputs: usize, seed: u64) -> Vec<i8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..tokens * inputs).map(|_| rng.gen::<i8>()).collect()
}

fn inspect_json(model: &Path, cwd: &Path) -> serde_json::Value {
    let text = ok(&["inspect", p(model), "--json"], cwd);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("inspect --json: {e}: {text}"))
}

/// The layer's outputs recomputed from `inspect --export-int`, independently of the toolchain's
/// arithmetic: y = sat_int8(((x @ w.T + bias) * M + round) >> sh), then optional ReLU.
fn recompute(model: &Path, layer: &str, x: &[i8], dir: &Path) -> Vec<i8> {
    let ints = dir.join(format!("ints-{layer}"));
    ok(&["inspect", p(model), "--export-int", p(&ints)], dir);
    let (wshape, w) = read_npy::<i8>(&ints.join(format!("{layer}.w_int8.npy")), "|i1");
    let (bshape, bias) = read_npy::<i32>(&ints.join(format!("{layer}.bias_int32.npy")), "<i4");
    let rq = read_json(&ints.join(format!("{layer}.requant.json")));
    let (outs, ins) = (wshape[0] as usize, wshape[1] as usize);
    assert_eq!(bshape, vec![outs as u64]);
    let mult: Vec<i64> = rq["multiplier"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    let shift: Vec<i64> = rq["shift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    let relu = rq["relu"].as_bool().unwrap();
    assert_eq!((mult.len(), shift.len()), (outs, outs));
    assert_eq!(x.len() % ins, 0);
    let mut y = Vec::new();
    for xt in x.chunks(ins) {
        for o in 0..outs {
            let acc: i64 = (0..ins)
                .map(|i| i64::from(xt[i]) * i64::from(w[o * ins + i]))
                .sum();
            let t = (acc + i64::from(bias[o])) * mult[o];
            let sh = shift[o];
            let r = if sh > 0 { 1i64 << (sh - 1) } else { 0 };
            // `>>` on i64 is an arithmetic shift, i.e. floor division by 2^sh.
            let mut v = ((t + r) >> sh).clamp(-128, 127);
            if relu {
                v = v.max(0);
            }
            y.push(v as i8);
        }
    }
    y
}

struct RunOut {
    bytes: Vec<u8>,
    shape: Vec<u64>,
    y: Vec<i8>,
}

fn run_engine(engine: &str, model: &Path, x: &Path, dir: &Path, extra: &[&str]) -> RunOut {
    let out = dir.join(format!("y-{engine}.npy"));
    let summary = run_model(engine, model, x, &out, dir, extra);
    assert!(summary.starts_with(engine), "{summary}");
    let (shape, y) = read_npy::<i8>(&out, "|i1");
    RunOut {
        bytes: std::fs::read(&out).unwrap(),
        shape,
        y,
    }
}

// ---------------------------------------------------------------------------------------------
// random-layer and inspect
// ---------------------------------------------------------------------------------------------

#[test]
fn random_layer_then_inspect_reports_the_requested_shape_and_density() {
    let dir = tempfile::tempdir().unwrap();
    for (inputs, outputs, density, group) in [
        (48u32, 20u32, 0.3f64, 0u32),
        (100, 7, 0.55, 3),
        (384, 384, 0.3, 0),
        (5, 1, 1.0, 0),
        (30, 4, 0.0, 2),
    ] {
        let file = format!("l{inputs}x{outputs}.sdm");
        let model = make_layer(
            dir.path(),
            &file,
            &[
                "--inputs",
                &inputs.to_string(),
                "--outputs",
                &outputs.to_string(),
                "--row-density",
                &density.to_string(),
                "--group-size",
                &group.to_string(),
            ],
        );
        let js = inspect_json(&model, dir.path());
        assert_eq!(js["format_version"], 1);
        let layers = js["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 1);
        let l = &layers[0];
        assert_eq!(l["name"], "layer0");
        assert_eq!(l["inputs"], inputs);
        assert_eq!(l["outputs"], outputs);
        let rows = inputs.div_ceil(3);
        assert_eq!(l["rows"], rows);
        let want_group = if group == 0 { outputs } else { group };
        assert_eq!(l["group_size"], want_group);
        let got = l["row_density"].as_f64().unwrap();
        assert!(
            (got - density).abs() <= 1.0 / f64::from(rows),
            "{inputs}×{outputs}: row density {got}, asked {density}"
        );
        assert_eq!(l["relu"], false);
        // Storage: the sections add up, and the file is exactly header + records + CRC.
        let s = &l["storage"];
        let sum: u64 = ["header", "bitmap", "basis", "coef_stream", "per_channel"]
            .iter()
            .map(|k| s[*k].as_u64().unwrap())
            .sum();
        assert_eq!(s["total"].as_u64().unwrap(), sum);
        let file_len = std::fs::metadata(&model).unwrap().len();
        assert_eq!(js["totals"]["file_bytes"].as_u64().unwrap(), file_len);
        assert_eq!(file_len, 24 + sum + 4);

        // The human-readable table names the layer and its shape.
        let table = ok(&["inspect", p(&model)], dir.path());
        assert!(table.contains("layer0"), "{table}");
        assert!(table.contains(&format!("{outputs}×{inputs}")), "{table}");
        assert!(table.contains(&format!("{file_len} bytes")), "{table}");
    }
}

#[test]
fn random_layer_flags_reach_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let model = make_layer(
        dir.path(),
        "r.sdm",
        &[
            "--inputs",
            "40",
            "--outputs",
            "9",
            "--relu",
            "--name",
            "fc_1",
            "--elem-density",
            "1",
            "--row-density",
            "1",
            "--preset",
            "icebreaker",
        ],
    );
    let js = inspect_json(&model, dir.path());
    let l = &js["layers"][0];
    assert_eq!(l["name"], "fc_1");
    assert_eq!(l["relu"], true);
    assert_eq!(l["row_density"].as_f64().unwrap(), 1.0);
    assert_eq!(l["coef_density"].as_f64().unwrap(), 1.0);
    // icebreaker: rows_per_block = 128, exp_bits = 3.
    assert_eq!(l["rows_per_block"], 128);
    assert_eq!(l["exp_bits"], 3);
}

#[test]
fn random_layer_is_deterministic_in_its_seed() {
    let dir = tempfile::tempdir().unwrap();
    let shape = ["--inputs", "60", "--outputs", "12"];
    let with_seed = |file: &str, seed: &str| {
        let mut a = shape.to_vec();
        a.extend(["--seed", seed]);
        std::fs::read(make_layer(dir.path(), file, &a)).unwrap()
    };
    let a = with_seed("a.sdm", "7");
    let b = with_seed("b.sdm", "7");
    let c = with_seed("c.sdm", "8");
    assert_eq!(a, b, "same seed, same bytes");
    assert_ne!(a, c, "different seed, different bytes");
    // The default seed is 0.
    let d = std::fs::read(make_layer(dir.path(), "d.sdm", &shape)).unwrap();
    assert_eq!(d, with_seed("e.sdm", "0"));
}

#[test]
fn export_int_writes_the_documented_files() {
    let dir = tempfile::tempdir().unwrap();
    let model = make_layer(dir.path(), "m.sdm", &["--inputs", "10", "--outputs", "6"]);
    let ints = dir.path().join("out/ints");
    ok(
        &["inspect", p(&model), "--export-int", p(&ints)],
        dir.path(),
    );
    let (ws, w) = read_npy::<i8>(&ints.join("layer0.w_int8.npy"), "|i1");
    assert_eq!(ws, vec![6, 10]);
    assert!(w.iter().any(|&v| v != 0));
    let (bs, _) = read_npy::<i32>(&ints.join("layer0.bias_int32.npy"), "<i4");
    assert_eq!(bs, vec![6]);
    let rq = read_json(&ints.join("layer0.requant.json"));
    assert_eq!(rq["multiplier"].as_array().unwrap().len(), 6);
    assert_eq!(rq["shift"].as_array().unwrap().len(), 6);
    assert_eq!(rq["relu"], false);
    // --json output stays pure JSON when exporting.
    let text = ok(
        &["inspect", p(&model), "--json", "--export-int", p(&ints)],
        dir.path(),
    );
    serde_json::from_str::<serde_json::Value>(&text).unwrap();
}

// ---------------------------------------------------------------------------------------------
// run: golden vs Verilator vs an independent recomputation
// ---------------------------------------------------------------------------------------------

#[test]
fn golden_and_verilator_agree_with_the_recomputation_48x20() {
    let dir = tempfile::tempdir().unwrap();
    let model = make_layer(
        dir.path(),
        "m.sdm",
        &["--inputs", "48", "--outputs", "20", "--seed", "3"],
    );
    let x = random_x(3, 48, 11);
    let xp = dir.path().join("x.npy");
    write_npy(&xp, &[3, 48], &x);
    let stats = dir.path().join("stats.json");
    let g = run_engine("golden", &model, &xp, dir.path(), &[]);
    let v = run_engine(
        "verilator",
        &model,
        &xp,
        dir.path(),
        &["--stats-json", p(&stats)],
    );
    assert_eq!(g.shape, vec![3, 20]);
    assert_eq!(g.bytes, v.bytes, "golden and verilator y.npy differ");
    let want = recompute(&model, "layer0", &x, dir.path());
    assert_eq!(g.y, want, "golden differs from the recomputation");
    assert!(want.iter().any(|&y| y != 0), "a degenerate all-zero output");

    let s = read_json(&stats);
    assert_eq!(s["format_version"], 1);
    assert_eq!(s["tokens"], 3);
    let run_cycles = s["run_cycles"].as_u64().unwrap();
    assert!(run_cycles > 0);
    assert!(s["total_cycles"].as_u64().unwrap() > run_cycles);
    assert!(s["entries"].as_u64().unwrap() >= s["useful_entries"].as_u64().unwrap());
    assert_eq!(s["layers"][0]["layer"], "layer0");
    assert_eq!(s["layers"][0]["run_cycles"].as_u64().unwrap(), run_cycles);
}

#[test]
fn acceptance_384x384_golden_and_verilator_are_identical() {
    let dir = tempfile::tempdir().unwrap();
    let model = make_layer(
        dir.path(),
        "big.sdm",
        &[
            "--inputs",
            "384",
            "--outputs",
            "384",
            "--row-density",
            "0.3",
            "--seed",
            "5",
        ],
    );
    let js = inspect_json(&model, dir.path());
    let d = js["layers"][0]["row_density"].as_f64().unwrap();
    assert!((d - 0.3).abs() <= 1.0 / 128.0, "{d}");
    let x = random_x(1, 384, 2);
    let xp = dir.path().join("x.npy");
    write_npy(&xp, &[1, 384], &x);
    let g = run_engine("golden", &model, &xp, dir.path(), &[]);
    let v = run_engine("verilator", &model, &xp, dir.path(), &[]);
    assert_eq!(g.shape, vec![1, 384]);
    assert_eq!(g.bytes, v.bytes, "golden and verilator y.npy differ");
    assert_eq!(g.y, recompute(&model, "layer0", &x, dir.path()));
    // And numpy itself (scripts/numpy_reference.py, in the venv that scripts/setup.sh makes).
    let ints = dir.path().join("ints");
    ok(
        &["inspect", p(&model), "--export-int", p(&ints)],
        dir.path(),
    );
    let y_np = dir.path().join("y_numpy.npy");
    numpy_reference(&ints, "layer0", &xp, &y_np);
    let (shape, y_numpy) = read_npy::<i8>(&y_np, "|i1");
    assert_eq!(shape, vec![1, 384]);
    assert_eq!(
        v.y, y_numpy,
        "Verilator output differs from numpy's recomputation"
    );
}

#[test]
fn golden_matches_the_recomputation_with_relu_groups_and_a_1d_input() {
    let dir = tempfile::tempdir().unwrap();
    let model = make_layer(
        dir.path(),
        "m.sdm",
        &[
            "--inputs",
            "77",
            "--outputs",
            "13",
            "--group-size",
            "4",
            "--relu",
            "--row-density",
            "0.6",
            "--seed",
            "9",
        ],
    );
    let x = random_x(1, 77, 4);
    let xp = dir.path().join("x.npy");
    write_npy(&xp, &[77], &x);
    let g = run_engine("golden", &model, &xp, dir.path(), &[]);
    assert_eq!(g.shape, vec![13], "a 1-D input gives a 1-D output");
    assert!(g.y.iter().all(|&y| y >= 0), "relu");
    assert_eq!(g.y, recompute(&model, "layer0", &x, dir.path()));
}

#[test]
fn layers_chain_in_order_and_can_be_run_one_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = AccelConfig::preset("tiny").unwrap();
    let layer = |name: &str, inputs, outputs, seed| {
        let mut spec = RandomLayerSpec::for_config(&cfg, inputs, outputs, 0.5, seed);
        spec.name = name.into();
        spec.relu = true;
        random_layer(&spec)
    };
    let model = dir.path().join("two.sdm");
    sdm::save(
        &model,
        &Model {
            layers: vec![layer("fc1", 30, 12, 1), layer("fc2", 12, 5, 2)],
        },
    )
    .unwrap();
    let x = random_x(2, 30, 6);
    let xp = dir.path().join("x.npy");
    write_npy(&xp, &[2, 30], &x);
    let both = run_engine("golden", &model, &xp, dir.path(), &[]);
    assert_eq!(both.shape, vec![2, 5]);

    let h = recompute(&model, "fc1", &x, dir.path());
    let want = recompute(&model, "fc2", &h, dir.path());
    assert_eq!(both.y, want);

    let one = run_engine("golden", &model, &xp, dir.path(), &["--layer", "fc1"]);
    assert_eq!(one.shape, vec![2, 12]);
    assert_eq!(one.y, h);

    // Verilator runs the chain too.
    let v = run_engine("verilator", &model, &xp, dir.path(), &[]);
    assert_eq!(v.bytes, both.bytes);
}

// ---------------------------------------------------------------------------------------------
// Errors: exit code 1, one line, the right subject, never a panic
// ---------------------------------------------------------------------------------------------

/// A valid 48-input model and input in a temp dir.
fn fixture() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let model = make_layer(dir.path(), "m.sdm", &["--inputs", "48", "--outputs", "20"]);
    let xp = dir.path().join("x.npy");
    write_npy(&xp, &[2, 48], &random_x(2, 48, 1));
    (dir, model, xp)
}

fn run_args<'a>(model: &'a str, x: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "run", "--engine", "golden", "--model", model, "--input", x, "--out", "y.npy",
    ];
    a.extend_from_slice(extra);
    a
}

#[test]
fn error_nonexistent_model_file() {
    let (dir, _, xp) = fixture();
    fails(
        &run_args("missing.sdm", p(&xp), &[]),
        dir.path(),
        &["missing.sdm", "no such file"],
    );
    fails(&["inspect", "missing.sdm"], dir.path(), &["missing.sdm"]);
    assert!(!dir.path().join("y.npy").exists());
}

#[test]
fn error_truncated_sdm() {
    let (dir, model, xp) = fixture();
    let bytes = std::fs::read(&model).unwrap();
    for cut in [bytes.len() - 1, bytes.len() / 2, 10, 0] {
        let t = dir.path().join("t.sdm");
        std::fs::write(&t, &bytes[..cut]).unwrap();
        fails(&["inspect", p(&t)], dir.path(), &["t.sdm", "truncated"]);
        fails(&run_args(p(&t), p(&xp), &[]), dir.path(), &["truncated"]);
    }
}

#[test]
fn error_corrupted_sdm_byte() {
    let (dir, model, xp) = fixture();
    let mut bytes = std::fs::read(&model).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    let c = dir.path().join("c.sdm");
    std::fs::write(&c, &bytes).unwrap();
    fails(&["inspect", p(&c)], dir.path(), &["c.sdm", "checksum"]);
    fails(&run_args(p(&c), p(&xp), &[]), dir.path(), &["checksum"]);
}

#[test]
fn error_float32_input() {
    let (dir, model, _) = fixture();
    let xf = dir.path().join("xf.npy");
    write_npy(&xf, &[2, 48], &[0.5f32; 96]);
    fails(
        &run_args(p(&model), p(&xf), &[]),
        dir.path(),
        &["xf.npy", "float32", "int8"],
    );
    assert!(!dir.path().join("y.npy").exists());
}

#[test]
fn error_input_with_the_wrong_length_or_rank() {
    let (dir, model, _) = fixture();
    let x = dir.path().join("x47.npy");
    write_npy(&x, &[2, 47], &[0i8; 94]);
    fails(
        &run_args(p(&model), p(&x), &[]),
        dir.path(),
        &["x47.npy", "[2, 47]", "48 inputs"],
    );
    let x = dir.path().join("x1d.npy");
    write_npy(&x, &[50], &[0i8; 50]);
    fails(
        &run_args(p(&model), p(&x), &[]),
        dir.path(),
        &["[50]", "48"],
    );
    let x = dir.path().join("x3d.npy");
    write_npy(&x, &[1, 2, 48], &[0i8; 96]);
    fails(&run_args(p(&model), p(&x), &[]), dir.path(), &["rank 3"]);
    let x = dir.path().join("x0.npy");
    write_npy(&x, &[0, 48], &[0i8; 0]);
    fails(&run_args(p(&model), p(&x), &[]), dir.path(), &["no tokens"]);
}

/// `bytes` with the first occurrence of `from` (in the header) replaced by the same-length `to`.
fn replace_bytes(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let at = bytes
        .windows(from.len())
        .position(|w| w == from.as_bytes())
        .unwrap_or_else(|| panic!("{from:?} not in {:?}", String::from_utf8_lossy(bytes)));
    let mut out = bytes.to_vec();
    out[at..at + to.len()].copy_from_slice(to.as_bytes());
    out
}

#[test]
fn error_malformed_npy_files() {
    let (dir, model, xp) = fixture();
    let good = std::fs::read(&xp).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("short.npy", good[..good.len() - 3].to_vec(), "truncated"),
        ("long.npy", [good.clone(), vec![0; 5]].concat(), "trailing"),
        (
            "junk.npy",
            b"not an npy file at all".to_vec(),
            "not a valid .npy",
        ),
        (
            "fortran.npy",
            replace_bytes(&good, "'fortran_order': False", "'fortran_order': True "),
            "fortran",
        ),
        ("le.npy", replace_bytes(&good, "'|i1'", "'<u1'"), "uint8"),
    ];
    for (name, bytes, needle) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        fails(
            &run_args(p(&model), p(&path), &[]),
            dir.path(),
            &[name, needle],
        );
    }
}

#[test]
fn error_bad_config_file_names_the_field() {
    let (dir, model, xp) = fixture();
    let text = AccelConfig::preset("tiny").unwrap().to_toml();
    assert!(text.contains("lanes = 4"), "{text}");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, text.replace("lanes = 4", "lanes = 0")).unwrap();
    let cfg = ["--config", p(&bad)];
    fails(
        &run_args(p(&model), p(&xp), &cfg),
        dir.path(),
        &["`lanes`", "bad.toml"],
    );
    fails(
        &["inspect", p(&model), "--config", p(&bad)],
        dir.path(),
        &["`lanes`"],
    );
    let mut rl = vec![
        "random-layer",
        "--inputs",
        "3",
        "--outputs",
        "3",
        "--out",
        "n.sdm",
    ];
    rl.extend(cfg);
    fails(&rl, dir.path(), &["lanes"]);
    // Unknown fields and missing files are reported too.
    std::fs::write(&bad, format!("{text}bogus = 1\n")).unwrap();
    fails(
        &["inspect", p(&model), "--config", p(&bad)],
        dir.path(),
        &["bogus"],
    );
    fails(
        &["inspect", p(&model), "--config", "nope.toml"],
        dir.path(),
        &["nope.toml"],
    );
}

#[test]
fn error_unknown_preset() {
    let (dir, model, xp) = fixture();
    fails(
        &run_args(p(&model), p(&xp), &["--preset", "zcu104"]),
        dir.path(),
        &["unknown preset", "zcu104", "tiny"],
    );
    fails(
        &[
            "random-layer",
            "--inputs",
            "3",
            "--outputs",
            "3",
            "--out",
            "n.sdm",
            "--preset",
            "x9",
        ],
        dir.path(),
        &["unknown preset"],
    );
}

#[test]
fn error_random_layer_flag_validation() {
    let dir = tempfile::tempdir().unwrap();
    let base = ["random-layer", "--out", "n.sdm"];
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["--inputs", "9", "--outputs", "3", "--row-density", "1.5"],
            vec!["--row-density", "1.5"],
        ),
        (
            vec!["--inputs", "9", "--outputs", "3", "--row-density", "NaN"],
            vec!["--row-density"],
        ),
        (
            vec!["--inputs", "9", "--outputs", "3", "--elem-density", "-0.1"],
            vec!["--elem-density"],
        ),
        (vec!["--inputs", "0", "--outputs", "3"], vec!["--inputs"]),
        (vec!["--inputs", "9", "--outputs", "0"], vec!["--outputs"]),
        (
            vec!["--inputs", "9", "--outputs", "3", "--name", ""],
            vec!["--name"],
        ),
        (vec!["--inputs", "nine", "--outputs", "3"], vec!["--inputs"]),
        (vec!["--outputs", "3"], vec!["--inputs"]),
    ];
    for (extra, needles) in cases {
        let mut a = base.to_vec();
        a.extend(extra);
        fails(&a, dir.path(), &needles);
    }
    assert!(!dir.path().join("n.sdm").exists());
    // 768 inputs fill the tiny preset's activation buffer; 769 need input tiling, also accepted.
    for n in ["768", "769"] {
        ok(
            &[&base[..], &["--inputs", n, "--outputs", "2"]].concat(),
            dir.path(),
        );
    }
}

#[test]
fn error_export_int_in_exact_mode() {
    let (dir, model, _) = fixture();
    let mut cfg = AccelConfig::preset("tiny").unwrap();
    cfg.weight_requant = smartdeal_core::WeightRequant::Exact;
    cfg.acc_bits = cfg.acc_bits_required();
    cfg.validate().unwrap();
    let exact = dir.path().join("exact.toml");
    std::fs::write(&exact, cfg.to_toml()).unwrap();
    fails(
        &[
            "inspect",
            p(&model),
            "--config",
            p(&exact),
            "--export-int",
            "ints",
        ],
        dir.path(),
        &["exact", "int8"],
    );
    assert!(!dir.path().join("ints").exists());
    // Inspecting (without the export) works in any mode.
    ok(&["inspect", p(&model), "--config", p(&exact)], dir.path());
}

#[test]
fn error_run_checks_the_model_against_the_config_and_inputs() {
    let (dir, model, xp) = fixture();
    // Unknown --layer.
    fails(
        &run_args(p(&model), p(&xp), &["--layer", "fc9"]),
        dir.path(),
        &["fc9", "layer0"],
    );
    // Activations outside a 4-bit config's range.
    let mut cfg = AccelConfig::preset("tiny").unwrap();
    cfg.act_bits = 4;
    let small = dir.path().join("act4.toml");
    std::fs::write(&small, cfg.to_toml()).unwrap();
    let x = dir.path().join("big.npy");
    write_npy(&x, &[48], &[100i8; 48]);
    fails(
        &run_args(p(&model), p(&x), &["--config", p(&small)]),
        dir.path(),
        &["activation", "4-bit", "-8..=7"],
    );

    // Layers whose shapes do not chain.
    let cfg = AccelConfig::preset("tiny").unwrap();
    let mk = |name: &str, i, o| {
        let mut s = RandomLayerSpec::for_config(&cfg, i, o, 0.5, 1);
        s.name = name.into();
        random_layer(&s)
    };
    let bad_chain = dir.path().join("chain.sdm");
    sdm::save(
        &bad_chain,
        &Model {
            layers: vec![mk("a", 48, 20), mk("b", 30, 5)],
        },
    )
    .unwrap();
    fails(
        &run_args(p(&bad_chain), p(&xp), &[]),
        dir.path(),
        &["chain", "`a`", "`b`"],
    );
    // --stats-json is a Verilator feature.
    fails(
        &run_args(p(&model), p(&xp), &["--stats-json", "s.json"]),
        dir.path(),
        &["--stats-json", "verilator"],
    );
    assert!(!dir.path().join("y.npy").exists());
}

#[test]
fn error_usage_mistakes_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    fails(&[], dir.path(), &["subcommand"]);
    fails(&["frobnicate"], dir.path(), &["frobnicate"]);
    fails(
        &[
            "run", "--engine", "fpga", "--model", "m", "--input", "x", "--out", "y",
        ],
        dir.path(),
        &["fpga", "golden"],
    );
    fails(
        &["inspect", "m.sdm", "--preset", "tiny", "--config", "c.toml"],
        dir.path(),
        &["--preset", "--config"],
    );
}

#[test]
fn help_lists_every_subcommand_and_flag() {
    let dir = tempfile::tempdir().unwrap();
    let top = ok(&["--help"], dir.path());
    for s in ["random-layer", "inspect", "run"] {
        assert!(top.contains(s), "{top}");
    }
    let rl = ok(&["random-layer", "--help"], dir.path());
    for f in [
        "--inputs",
        "--outputs",
        "--row-density",
        "--elem-density",
        "--group-size",
        "--relu",
        "--seed",
        "--name",
        "--preset",
        "--config",
        "--out",
    ] {
        assert!(rl.contains(f), "{f}: {rl}");
    }
    let ins = ok(&["inspect", "--help"], dir.path());
    for f in ["--json", "--export-int", "--preset", "--config"] {
        assert!(ins.contains(f), "{f}: {ins}");
    }
    let run = ok(&["run", "--help"], dir.path());
    for f in [
        "--engine",
        "golden",
        "verilator",
        "--model",
        "--input",
        "--out",
        "--layer",
        "--stats-json",
    ] {
        assert!(run.contains(f), "{f}: {run}");
    }
}

/// A layer wider than the activation buffer (900 inputs = 300 Ce rows; the default tiny preset
/// holds 256): the host tiles the inputs, and Verilator, the golden model and the independent
/// recomputation from the exported integers agree on two tokens.
#[test]
fn wide_layer_runs_input_tiled_on_verilator() {
    let dir = tempfile::tempdir().unwrap();
    let wide = make_layer(
        dir.path(),
        "wide.sdm",
        &[
            "--inputs",
            "900",
            "--outputs",
            "3",
            "--row-density",
            "0.7",
            "--seed",
            "4",
        ],
    );
    let x: Vec<i8> = (0..1800)
        .map(|i| ((i * 53 + 7) % 256) as u8 as i8)
        .collect();
    let xp = dir.path().join("x900.npy");
    write_npy(&xp, &[2, 900], &x);
    let g = run_engine("golden", &wide, &xp, dir.path(), &[]);
    let v = run_engine("verilator", &wide, &xp, dir.path(), &[]);
    assert_eq!(g.shape, vec![2, 3]);
    assert_eq!(
        v.bytes, g.bytes,
        "verilator != golden on the input-tiled layer"
    );
    assert_eq!(g.y, recompute(&wide, "layer0", &x, dir.path()));
}
