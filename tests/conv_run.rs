//! A 64 → 64 3×3 convolution decomposed from random float weights runs bit-identically on the
//! generated accelerator in Verilator (band runs, no host im2col), on the golden model, and in
//! numpy from `inspect --export-int`: at stride 1 (16×16 → 16×16) and stride 2 (→ 8×8), two
//! images each.

use rand::{Rng, SeedableRng};
use safetensors::tensor::{Dtype, TensorView};
use std::collections::HashMap;
use std::path::Path;

mod common;

use common::{numpy_reference, ok, p, run_model, write_npy};

/// Seeded float weights, roughly normal with standard deviation ≈ `scale`.
fn gaussian(n: usize, scale: f32, seed: u64) -> Vec<u8> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| (0..4).map(|_| rng.gen_range(-1.0f32..1.0)).sum::<f32>() * scale)
        .flat_map(f32::to_le_bytes)
        .collect()
}

fn write_conv(path: &Path) {
    let w = gaussian(64 * 64 * 9, 0.05, 64);
    let b = gaussian(64, 0.1, 65);
    let views: HashMap<String, TensorView> = [
        ("conv.weight", vec![64, 64, 3, 3], &w),
        ("conv.bias", vec![64], &b),
    ]
    .into_iter()
    .map(|(n, s, d)| (n.to_string(), TensorView::new(Dtype::F32, s, d).unwrap()))
    .collect();
    std::fs::write(path, safetensors::serialize(&views, &None).unwrap()).unwrap();
}

/// Reads an int8 .npy: (shape, data).
fn read_i8(path: &Path) -> (Vec<u64>, Vec<i8>) {
    let bytes = std::fs::read(path).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape = npy.shape().to_vec();
    (shape, npy.into_vec::<i8>().unwrap())
}

fn three_engines_agree(stride: &str, out_hw: u64) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let w = d.join("conv.safetensors");
    write_conv(&w);
    let model = d.join("conv.sdm");
    ok(
        &[
            "decompose",
            p(&w),
            "--out",
            p(&model),
            "--stride",
            &format!("conv={stride}"),
        ],
        d,
    );
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let x: Vec<i8> = (0..2 * 64 * 16 * 16).map(|_| rng.gen()).collect();
    let xp = d.join("x.npy");
    write_npy(&xp, &[2, 64, 16, 16], &x);
    let (yg, yv, yn) = (d.join("yg.npy"), d.join("yv.npy"), d.join("yn.npy"));
    run_model("golden", &model, &xp, &yg, d, &[]);
    let summary = run_model("verilator", &model, &xp, &yv, d, &[]);
    assert!(summary.contains("accelerator cycles"), "{summary}");
    let ints = d.join("ints");
    ok(&["inspect", p(&model), "--export-int", p(&ints)], d);
    numpy_reference(&ints, "conv", &xp, &yn);
    let (sg, g) = read_i8(&yg);
    assert_eq!(sg, [2, 64, out_hw, out_hw]);
    for (what, path) in [("verilator", &yv), ("numpy", &yn)] {
        let (s, y) = read_i8(path);
        assert_eq!(s, sg, "{what}: shape");
        let diff = y.iter().zip(&g).filter(|(a, b)| a != b).count();
        assert_eq!(
            diff, 0,
            "stride {stride}: {what} differs from golden in {diff} outputs"
        );
    }
    // Not a degenerate layer: the outputs vary.
    let distinct: std::collections::BTreeSet<i8> = g.iter().copied().collect();
    assert!(
        distinct.len() > 50,
        "only {} distinct outputs",
        distinct.len()
    );
}

#[test]
fn stride_1_conv_is_identical_on_verilator_golden_and_numpy() {
    three_engines_agree("1", 16);
}

#[test]
fn stride_2_conv_is_identical_on_verilator_golden_and_numpy() {
    three_engines_agree("2", 8);
}

/// Inputs that do not fit a convolution, and a convolution too wide for the band, are one-line
/// errors on every engine.
#[test]
fn wrong_conv_inputs_are_one_line_errors() {
    use common::{fails, make_layer};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = make_layer(
        d,
        "c.sdm",
        &[
            "--conv",
            "3x3",
            "--in-channels",
            "8",
            "--outputs",
            "4",
            "--padding",
            "0",
        ],
    );
    let cases: [(&str, Vec<u64>, &[&str]); 4] = [
        (
            "channels",
            vec![3, 9, 9],
            &["does not match", "8 input channels"],
        ),
        ("rank", vec![1, 1, 8, 9, 9], &["rank 5", "[8, H, W]"]),
        ("vector", vec![72], &["rank 1", "convolution"]),
        ("small", vec![8, 2, 5], &["too small", "3×3"]),
    ];
    for (name, shape, needles) in cases {
        let x = d.join(format!("{name}.npy"));
        let n: u64 = shape.iter().product();
        write_npy(&x, &shape, &vec![0i8; n as usize]);
        for engine in ["golden", "verilator"] {
            let y = d.join("y.npy");
            let args = [
                "run",
                "--engine",
                engine,
                "--model",
                p(&model),
                "--input",
                p(&x),
                "--out",
                p(&y),
            ];
            let err = fails(&args, d, needles);
            assert_eq!(err.trim().lines().count(), 1, "{name}/{engine}: {err}");
        }
    }
    // 3 × 100 channels do not fit the tiny preset's 256 activation words.
    let wide = make_layer(
        d,
        "w.sdm",
        &[
            "--conv",
            "3x3",
            "--in-channels",
            "100",
            "--outputs",
            "4",
            "--preset",
            "ulx3s",
        ],
    );
    let x = d.join("wide.npy");
    write_npy(&x, &[100, 4, 4], &vec![0i8; 1600]);
    for engine in ["golden", "verilator"] {
        let y = d.join("y.npy");
        let args = [
            "run",
            "--engine",
            engine,
            "--model",
            p(&wide),
            "--input",
            p(&x),
            "--out",
            p(&y),
        ];
        let err = fails(&args, d, &["act_depth = 256", "100 input channels"]);
        assert_eq!(err.trim().lines().count(), 1, "wide/{engine}: {err}");
    }
}
