//! End-to-end tests of `smartdeal decompose`: synthetic weight files, malformed inputs, and the
//! real all-MiniLM-L6-v2 weights (fetched by `scripts/fetch_minilm.sh`, which
//! `scripts/setup.sh` runs).

use rand::{Rng, SeedableRng};
use safetensors::tensor::{Dtype, TensorView};
use serde_json::Value;
use smartdeal_core::sdm;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

mod common;

use common::{fails_after_notes, numpy_reference, ok, p, read_json, run_model, write_npy};

/// Writes an F32 safetensors file.
fn write_safetensors(path: &Path, tensors: &[(&str, Vec<usize>, Vec<f32>)]) {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, s, d)| {
            (
                n.to_string(),
                s.clone(),
                d.iter().flat_map(|v| v.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views: HashMap<String, TensorView> = bytes
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    std::fs::write(path, safetensors::serialize(&views, &None).unwrap()).unwrap();
}

fn gaussian(n: usize, scale: f32, seed: u64) -> Vec<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            // Sum of 4 uniforms: roughly normal, plenty for weights.
            let s: f32 = (0..4).map(|_| rng.gen_range(-1.0f32..1.0)).sum();
            s * scale
        })
        .collect()
}

/// Writes `rows` × `cols` seeded random int8 activations.
fn write_x(path: &Path, rows: usize, cols: usize, seed: u64) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let x: Vec<i8> = (0..rows * cols).map(|_| rng.gen()).collect();
    write_npy(path, &[rows as u64, cols as u64], &x);
}

/// Runs `model` on `x` with the golden model and with `engine`; returns the bytes of both y.npy.
fn golden_and(engine: &str, model: &Path, x: &Path, cwd: &Path) -> (Vec<u8>, Vec<u8>) {
    let yg = cwd.join("y-golden.npy");
    let ye = cwd.join(format!("y-{engine}.npy"));
    run_model("golden", model, x, &yg, cwd, &[]);
    run_model(engine, model, x, &ye, cwd, &[]);
    (std::fs::read(&yg).unwrap(), std::fs::read(&ye).unwrap())
}

/// A synthetic model: two linear layers with a bias, a 1×1 and a 3×3 convolution and a 7×7 stem.
fn synthetic(dir: &Path) -> PathBuf {
    let f = dir.join("w.safetensors");
    write_safetensors(
        &f,
        &[
            ("fc1.weight", vec![40, 96], gaussian(40 * 96, 0.05, 1)),
            ("fc1.bias", vec![40], gaussian(40, 0.1, 2)),
            ("fc2.weight", vec![24, 40], gaussian(24 * 40, 0.1, 3)),
            ("pw.weight", vec![16, 32, 1, 1], gaussian(16 * 32, 0.1, 4)),
            (
                "conv.weight",
                vec![8, 16, 3, 3],
                gaussian(8 * 16 * 9, 0.1, 5),
            ),
            (
                "stem.weight",
                vec![8, 3, 7, 7],
                gaussian(8 * 3 * 49, 0.1, 6),
            ),
        ],
    );
    f
}

#[test]
fn synthetic_model_every_layer_kind_is_handled_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let w = synthetic(dir.path());
    let out = dir.path().join("m.sdm");
    let js = dir.path().join("r.json");
    let table = ok(
        &["decompose", p(&w), "--out", p(&out), "--json", p(&js)],
        dir.path(),
    );
    assert!(table.contains("fc1") && table.contains("total:"), "{table}");
    let r = read_json(&js);
    let layers = r["layers"].as_array().unwrap();
    let by = |t: &str| layers.iter().find(|l| l["tensor"] == t).unwrap().clone();
    // Fully connected, 1×1 and 3×3 are written (tests/conv_decompose.rs has the convolution
    // details); 7×7 is skipped.
    assert_eq!(by("fc1.weight")["layer"], "fc1");
    assert_eq!(by("pw.weight")["layer"], "pw");
    assert_eq!(by("conv.weight")["kind"], "conv3x3");
    assert_eq!(by("conv.weight")["layer"], "conv");
    assert!(by("conv.weight")["float_rel_error"].as_f64().unwrap() > 0.0);
    assert!(by("stem.weight")["note"]
        .as_str()
        .unwrap()
        .contains("7×7 convolution is not decomposable"));
    // 96 inputs → the reference table: 32 rows, one block.
    assert_eq!(by("fc1.weight")["rows_per_block"], 32);
    // 3×3 conv with 16 input channels: 48 rows per channel, one block.
    assert_eq!(by("conv.weight")["rows_per_block"], 48);
    let model = sdm::load(&out).unwrap();
    let names: Vec<&str> = model.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["conv", "fc1", "fc2", "pw"]);
    // The bias of fc1 was found and converted (nonzero integers); fc2 has none.
    assert!(model.layers[1].bias.iter().any(|b| *b != 0));
    assert!(model.layers[2].bias.iter().all(|b| *b == 0));
    for l in layers.iter().filter(|l| !l["layer"].is_null()) {
        let e = l["float_rel_error"].as_f64().unwrap();
        let ie = l["int"]["int_rel_error"].as_f64().unwrap();
        // Random (not low-rank) weights: a 3-row basis cannot be exact, but the fit is real.
        assert!(e > 0.05 && e < 0.6, "{l}");
        assert!(
            ie >= e * 0.9 && ie < e + 0.1,
            "integer error close to float: {l}"
        );
    }
    assert_eq!(r["total"]["layers_written"], 4);
    // The reported size is the file's real size.
    assert_eq!(
        r["total"]["file_bytes"],
        std::fs::metadata(&out).unwrap().len()
    );
}

#[test]
fn output_is_deterministic_across_runs_and_thread_counts() {
    let dir = tempfile::tempdir().unwrap();
    let w = synthetic(dir.path());
    let a = dir.path().join("a.sdm");
    let b = dir.path().join("b.sdm");
    ok(&["decompose", p(&w), "--out", p(&a)], dir.path());
    ok(
        &["decompose", p(&w), "--out", p(&b), "--threads", "1"],
        dir.path(),
    );
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
}

#[test]
fn structural_pruning_removes_rows_for_whole_groups() {
    let dir = tempfile::tempdir().unwrap();
    let w = synthetic(dir.path());
    let out = dir.path().join("m.sdm");
    let js = dir.path().join("r.json");
    ok(
        &[
            "decompose",
            p(&w),
            "--tensor",
            "fc1.weight",
            "--out",
            p(&out),
            "--json",
            p(&js),
            "--prune-ratio",
            "0.5",
            "--group-size",
            "8",
        ],
        dir.path(),
    );
    let l = &sdm::load(&out).unwrap().layers[0];
    assert_eq!(l.group_size, 8);
    assert_eq!(l.row_present.len(), 5);
    for g in &l.row_present {
        // 32 rows, ceil(0.5 · 32) = 16 pruned for the whole group.
        assert!(g.iter().filter(|p| **p).count() <= 16, "{g:?}");
    }
    let r = read_json(&js);
    assert_eq!(r["layers"][0]["pruned_rows"], 5 * 16);
    // Per-tensor ratios from a file, one per selected tensor.
    let ratios = dir.path().join("ratios.txt");
    std::fs::write(&ratios, "0.25\n0.0\n").unwrap();
    ok(
        &[
            "decompose",
            p(&w),
            "--tensor",
            "fc*.weight",
            "--out",
            p(&out),
            "--json",
            p(&js),
            "--prune-ratios",
            p(&ratios),
        ],
        dir.path(),
    );
    let r = read_json(&js);
    assert!(r["layers"][0]["pruned_rows"].as_u64().unwrap() > 0);
    assert_eq!(r["layers"][1]["pruned_rows"], 0);
    std::fs::write(&ratios, "0.25\n").unwrap();
    fails_after_notes(
        &[
            "decompose",
            p(&w),
            "--tensor",
            "fc*.weight",
            "--out",
            p(&out),
            "--prune-ratios",
            p(&ratios),
        ],
        dir.path(),
        &["1 pruning ratios given for 2 selected tensors"],
    );
}

#[test]
fn decomposed_layers_run_identically_on_golden_and_verilator() {
    let dir = tempfile::tempdir().unwrap();
    let w = synthetic(dir.path());
    let out = dir.path().join("m.sdm");
    ok(
        &[
            "decompose",
            p(&w),
            "--tensor",
            "fc1.weight",
            "--out",
            p(&out),
        ],
        dir.path(),
    );
    let x = dir.path().join("x.npy");
    write_x(&x, 3, 96, 9);
    let (g, v) = golden_and("verilator", &out, &x, dir.path());
    assert_eq!(g, v);
}

#[test]
fn bad_inputs_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let w = synthetic(d);
    let out = d.join("m.sdm");
    let o = p(&out);
    fails_after_notes(
        &["decompose", "missing.safetensors", "--out", o],
        d,
        &["missing.safetensors"],
    );
    let junk = d.join("junk.safetensors");
    std::fs::write(&junk, b"not a safetensors file at all").unwrap();
    fails_after_notes(
        &["decompose", p(&junk), "--out", o],
        d,
        &["junk.safetensors"],
    );
    let txt = d.join("w.txt");
    std::fs::write(&txt, b"1 2 3").unwrap();
    fails_after_notes(&["decompose", p(&txt), "--out", o], d, &["w.txt"]);
    fails_after_notes(
        &["decompose", p(&w), "--tensor", "nope.*", "--out", o],
        d,
        &["nope.*"],
    );
    // Only a 7×7 stem selected: nothing can be written.
    fails_after_notes(
        &["decompose", p(&w), "--tensor", "stem.weight", "--out", o],
        d,
        &["7×7"],
    );
    // NaN and a 1-D weight.
    let mut bad = gaussian(12, 0.1, 1);
    bad[5] = f32::NAN;
    let nan = d.join("nan.safetensors");
    write_safetensors(&nan, &[("a.weight", vec![3, 4], bad)]);
    fails_after_notes(&["decompose", p(&nan), "--out", o], d, &["a.weight", "nan"]);
    let vec1 = d.join("v.safetensors");
    write_safetensors(&vec1, &[("v.weight", vec![12], gaussian(12, 0.1, 1))]);
    fails_after_notes(
        &["decompose", p(&vec1), "--tensor", "v.weight", "--out", o],
        d,
        &["v.weight"],
    );
    // Bad option values.
    for (flag, val, needle) in [
        ("--threshold", "-1", "--threshold"),
        ("--iters", "0", "--iters"),
        ("--exp-bits", "5", "--exp-bits"),
        ("--group-size", "0", "--group-size"),
        ("--prune-ratio", "1.5", "--prune-ratio"),
        ("--act-scale", "0", "--act-scale"),
        ("--decay", "2", "--decay"),
    ] {
        fails_after_notes(&["decompose", p(&w), "--out", o, flag, val], d, &[needle]);
    }
    fails_after_notes(
        &["decompose", p(&w), "--out", o, "--preset", "nosuch"],
        d,
        &["nosuch"],
    );
    assert!(!out.exists(), "no model is written on error");
}

#[test]
fn calibration_sample_sets_the_scales_of_matching_layers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let w = synthetic(d);
    // A float sample [8, 96]: matches fc1 (96 inputs) only.
    let x: Vec<f32> = gaussian(8 * 96, 0.5, 21);
    let xf = d.join("calib.npy");
    write_npy(&xf, &[8, 96], &x);
    let out = d.join("m.sdm");
    let js = d.join("r.json");
    ok(
        &[
            "decompose",
            p(&w),
            "--tensor",
            "fc*.weight",
            "--out",
            p(&out),
            "--json",
            p(&js),
            "--calib",
            p(&xf),
            "--act-scale",
            "0.01",
        ],
        d,
    );
    let r = read_json(&js);
    let (fc1, fc2) = (&r["layers"][0], &r["layers"][1]);
    assert_eq!(fc1["scale_source"], "calibrated");
    assert_eq!(fc2["scale_source"], "given");
    let xmax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let sx = fc1["int"]["act_scale"].as_f64().unwrap();
    assert!((sx - f64::from(xmax) / 127.0).abs() < 1e-9, "{sx}");
    assert_eq!(fc2["int"]["act_scale"].as_f64().unwrap(), 0.01);
    // A sample of the wrong rank is an error.
    let bad = d.join("bad.npy");
    write_npy(&bad, &[1, 2, 3, 4, 5], &[0.5f32; 120]);
    fails_after_notes(
        &["decompose", p(&w), "--out", p(&out), "--calib", p(&bad)],
        d,
        &["--calib"],
    );
}

#[test]
fn the_output_objective_prunes_the_rows_whose_inputs_are_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let w = synthetic(d);
    // fc1 has 96 inputs (32 rows): in the sample, inputs 48..95 are 30× quieter than 0..47.
    // At row density 0.5 the output objective keeps rows 0..15 (inputs 0..47) for every
    // channel; the weight objective, by L1 norm of i.i.d. weights, keeps a mix.
    let x: Vec<f32> = gaussian(64 * 96, 1.0, 22)
        .iter()
        .enumerate()
        .map(|(i, v)| if i % 96 < 48 { *v } else { v / 30.0 })
        .collect();
    let xf = d.join("calib.npy");
    write_npy(&xf, &[64, 96], &x);
    let kept_loud_rows = |objective: &str| -> f64 {
        let out = d.join(format!("{objective}.sdm"));
        let args = [
            "decompose",
            p(&w),
            "--tensor",
            "fc1.weight",
            "--out",
            p(&out),
            "--calib",
            p(&xf),
            "--row-density",
            "0.5",
            "--objective",
            objective,
        ];
        ok(&args, d);
        let ints = d.join(format!("ints-{objective}"));
        ok(&["inspect", p(&out), "--export-int", p(&ints)], d);
        let bytes = std::fs::read(ints.join("fc1.w_int8.npy")).unwrap();
        let w8: Vec<i8> = npyz::NpyFile::new(&bytes[..]).unwrap().into_vec().unwrap();
        let (mut loud, mut present) = (0usize, 0usize);
        for ch in w8.chunks(96) {
            for (r, t) in ch.chunks(3).enumerate() {
                if t.iter().any(|v| *v != 0) {
                    present += 1;
                    loud += usize::from(r < 16);
                }
            }
        }
        loud as f64 / present as f64
    };
    assert_eq!(kept_loud_rows("output"), 1.0);
    let plain = kept_loud_rows("weight");
    assert!(plain < 0.8, "{plain}");
    // Without a sample of the layer's input count the output objective is an error naming it;
    // --row-density with --prune-ratio is an error too.
    let out = d.join("x.sdm");
    fails_after_notes(
        &[
            "decompose",
            p(&w),
            "--tensor",
            "fc*.weight",
            "--out",
            p(&out),
            "--calib",
            p(&xf),
            "--objective",
            "output",
        ],
        d,
        &["fc2.weight", "40 inputs"],
    );
    fails_after_notes(
        &[
            "decompose",
            p(&w),
            "--out",
            p(&out),
            "--row-density",
            "0.5",
            "--prune-ratio",
            "0.5",
        ],
        d,
        &["--row-density", "--prune-ratio"],
    );
}

#[test]
fn an_integer_tensor_is_an_unsupported_dtype_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data: Vec<u8> = (0..12i32).flat_map(|v| v.to_le_bytes()).collect();
    let views: HashMap<String, TensorView> = [(
        "ints.weight".to_string(),
        TensorView::new(Dtype::I32, vec![3, 4], &data).unwrap(),
    )]
    .into_iter()
    .collect();
    let f = d.join("ints.safetensors");
    std::fs::write(&f, safetensors::serialize(&views, &None).unwrap()).unwrap();
    fails_after_notes(
        &[
            "decompose",
            p(&f),
            "--tensor",
            "ints.weight",
            "--out",
            p(&d.join("m.sdm")),
        ],
        d,
        &["ints.weight", "I32"],
    );
}

// ---------------------------------------------------------------------------------------------
// The real weights: all-MiniLM-L6-v2
// ---------------------------------------------------------------------------------------------

fn minilm() -> PathBuf {
    let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("cache/minilm/model.safetensors");
    assert!(
        f.exists(),
        "{} is missing: run `bash scripts/fetch_minilm.sh` (scripts/setup.sh does)",
        f.display()
    );
    f
}

const QUERY: &str = "encoder.layer.0.attention.self.query.weight";

/// The authors' reference implementation gives, on this exact tensor with 30 iterations,
/// threshold 1e-2 and decay 0.5: relative error 0.179 and Ce density 0.91.
#[test]
fn minilm_query_matches_the_reference_figures_and_runs_bit_exact_on_verilator() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let w = minilm();
    let out = d.join("q.sdm");
    let js = d.join("q.json");
    ok(
        &[
            "decompose",
            p(&w),
            "--tensor",
            QUERY,
            "--iters",
            "30",
            "--threshold",
            "1e-2",
            "--decay",
            "0.5",
            "--out",
            p(&out),
            "--json",
            p(&js),
        ],
        d,
    );
    let r = read_json(&js);
    let l = &r["layers"][0];
    let err = l["float_rel_error"].as_f64().unwrap();
    let dens = l["ce_density"].as_f64().unwrap();
    assert!(
        (err - 0.179).abs() <= 0.02 * 0.179,
        "error {err} vs the reference's 0.179"
    );
    assert!(
        (dens - 0.91).abs() <= 0.02,
        "Ce density {dens} vs the reference's 0.91"
    );
    // The integers the hardware uses lose little on top of the float decomposition.
    let ie = l["int"]["int_rel_error"].as_f64().unwrap();
    assert!(ie >= err && ie < err + 0.01, "integer error {ie}");
    assert_eq!(l["fits_config"], true, "{l}");
    assert!(l["fit_problem"].is_null());

    // Golden model and Verilator, bit for bit, on random int8 activations; and numpy's
    // recomputation from the exported integers.
    let x = d.join("x.npy");
    write_x(&x, 4, 384, 11);
    let (g, v) = golden_and("verilator", &out, &x, d);
    assert_eq!(g, v, "golden and Verilator differ on the MiniLM layer");
    let ints = d.join("ints");
    ok(&["inspect", p(&out), "--export-int", p(&ints)], d);
    let y_np = d.join("y_numpy.npy");
    numpy_reference(&ints, "encoder.layer.0.attention.self.query", &x, &y_np);
    let y = std::fs::read(&y_np).unwrap();
    // Same array; numpy's writer may format the header differently, so compare the data.
    assert_eq!(y[y.len() - 4 * 384..], v[v.len() - 4 * 384..]);
    // Outputs use the int8 range without collapsing to zero or saturating wholesale.
    let data = &v[v.len() - 4 * 384..];
    let zeros = data.iter().filter(|b| **b == 0).count();
    let sat = data.iter().filter(|b| **b == 127 || **b == 128).count();
    assert!(
        zeros < data.len() / 4 && sat < data.len() / 20,
        "zeros {zeros}, saturated {sat}"
    );
}

/// Every encoder linear layer of MiniLM decomposes; the 384-input ones fit the tiny preset.
#[test]
fn minilm_all_encoder_linear_layers_decompose() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let w = minilm();
    let out = d.join("all.sdm");
    let js = d.join("all.json");
    ok(
        // The glob also matches the LayerNorm scales (rank 1): they are skipped.
        &[
            "decompose",
            p(&w),
            "--tensor",
            "encoder.layer.*.weight",
            "--out",
            p(&out),
            "--json",
            p(&js),
        ],
        d,
    );
    let r = read_json(&js);
    let layers = r["layers"].as_array().unwrap();
    // 6 layers × (query, key, value, attention output, intermediate, output).
    let linear: Vec<&Value> = layers.iter().filter(|l| !l["layer"].is_null()).collect();
    assert_eq!(
        linear.len(),
        36,
        "{:#?}",
        layers.iter().map(|l| &l["tensor"]).collect::<Vec<_>>()
    );
    assert_eq!(r["total"]["weights"], 36 * 384 * 384 * 2);
    for l in &linear {
        let e = l["float_rel_error"].as_f64().unwrap();
        assert!(e > 0.1 && e < 0.3, "{l}");
        // 1536 inputs need 512 Ce rows, more than tiny's activation buffer (256): they fit
        // through input tiling.
        assert_eq!(l["fits_config"], true, "{l}");
    }
    assert_eq!(sdm::load(&out).unwrap().layers.len(), 36);
}

/// The decomposed real layer through the board protocol: the Verilator model of the whole board
/// top, UART simulated bit by bit, equals the golden model (one token: the host streams the
/// layer's 387 kB over the simulated UART for it).
#[test]
fn minilm_query_runs_identically_on_the_simulated_board() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = d.join("q.sdm");
    ok(
        &[
            "decompose",
            p(&minilm()),
            "--tensor",
            QUERY,
            "--out",
            p(&out),
        ],
        d,
    );
    let x = d.join("x.npy");
    write_x(&x, 1, 384, 12);
    let (g, s) = golden_and("sim-board", &out, &x, d);
    assert_eq!(g, s);
}

/// The MiniLM FFN output layer (1536 → 384): 512 Ce rows, twice tiny's activation buffer, so
/// the host tiles the inputs; Verilator equals the golden model on two tokens.
#[test]
fn minilm_ffn_output_layer_runs_input_tiled_on_verilator() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = d.join("ffn.sdm");
    ok(
        &[
            "decompose",
            p(&minilm()),
            "--tensor",
            "encoder.layer.0.output.dense.weight",
            "--out",
            p(&out),
        ],
        d,
    );
    let x = d.join("x.npy");
    write_x(&x, 2, 1536, 13);
    let (g, v) = golden_and("verilator", &out, &x, d);
    assert_eq!(g, v);
}
