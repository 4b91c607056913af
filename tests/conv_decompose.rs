//! `smartdeal decompose` on convolutions: 3×3 and 1×1 kernels become `.sdm` convolution layers
//! (stride and padding from options), unsupported kernels are left out or refused, and batch
//! norms are folded into the weights first.

use rand::{Rng, SeedableRng};
use safetensors::tensor::{Dtype, TensorView};
use serde_json::Value;
use smartdeal_core::{sdm, AccelConfig, ConvShape, FcLayer};
use smartdeal_decomp::batchnorm::{fold_batch_norms, BnOptions};
use smartdeal_decomp::weights;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

mod common;

use common::{fails_after_notes, ok, p, read_json};

/// Writes an F32 safetensors file.
fn write_safetensors(path: &Path, tensors: &[(&str, Vec<usize>, Vec<f32>)]) {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, s, d)| {
            let b = d.iter().flat_map(|v| v.to_le_bytes()).collect();
            (n.to_string(), s.clone(), b)
        })
        .collect();
    let views: HashMap<String, TensorView> = bytes
        .iter()
        .map(|(n, s, b)| {
            let view = TensorView::new(Dtype::F32, s.clone(), b).unwrap();
            (n.clone(), view)
        })
        .collect();
    std::fs::write(path, safetensors::serialize(&views, &None).unwrap()).unwrap();
}

/// Seeded values, roughly normal with standard deviation ≈ `scale`.
fn gaussian(n: usize, scale: f32, seed: u64) -> Vec<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| (0..4).map(|_| rng.gen_range(-1.0f32..1.0)).sum::<f32>() * scale)
        .collect()
}

/// Seeded values uniform in `lo..hi`.
fn uniform(n: usize, lo: f32, hi: f32, seed: u64) -> Vec<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.gen_range(lo..hi)).collect()
}

/// A 3×3 and a 1×1 convolution, a linear layer, a 7×7 stem and a depthwise 3×3.
fn network(dir: &Path) -> PathBuf {
    let f = dir.join("net.safetensors");
    write_safetensors(
        &f,
        &[
            ("conv3.weight", vec![8, 4, 3, 3], gaussian(8 * 36, 0.1, 1)),
            ("conv3.bias", vec![8], gaussian(8, 0.1, 2)),
            ("pw.weight", vec![6, 8, 1, 1], gaussian(6 * 8, 0.1, 3)),
            ("fc.weight", vec![5, 12], gaussian(5 * 12, 0.1, 4)),
            (
                "stem.weight",
                vec![4, 3, 7, 7],
                gaussian(4 * 3 * 49, 0.1, 5),
            ),
            ("dw.weight", vec![8, 1, 3, 3], gaussian(8 * 9, 0.1, 6)),
        ],
    );
    f
}

/// The real weights a layer's MAC array computes with: `2^(e_lo + ws[o]) · w8[o][i]`.
fn real_weights(cfg: &AccelConfig, l: &FcLayer) -> Vec<f64> {
    let w8 = smartdeal_golden::mac_weights(cfg, l);
    let n = l.inputs as usize;
    w8.iter()
        .enumerate()
        .map(|(i, &w)| f64::from(w) * 2f64.powi(i32::from(l.e_lo) + i32::from(l.wshift[i / n])))
        .collect()
}

fn rel_error(got: &[f64], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let num: f64 = got
        .iter()
        .zip(want)
        .map(|(g, w)| (g - f64::from(*w)).powi(2))
        .sum();
    let den: f64 = want.iter().map(|w| f64::from(*w).powi(2)).sum();
    (num / den).sqrt()
}

fn layer_report<'a>(r: &'a Value, tensor: &str) -> &'a Value {
    r["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["tensor"] == tensor)
        .unwrap_or_else(|| panic!("no report line for {tensor}: {r}"))
}

#[test]
fn convolutions_become_conv_layers_whose_weights_approximate_the_kernels() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let w = network(d);
    let (out, js) = (d.join("m.sdm"), d.join("r.json"));
    let table = ok(&["decompose", p(&w), "--out", p(&out), "--json", p(&js)], d);
    assert!(
        table.contains("conv 3×3, 4 input channels, stride 1, padding 1"),
        "{table}"
    );
    let r = read_json(&js);
    let model = sdm::load(&out).unwrap();
    let names: Vec<&str> = model.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["conv3", "fc", "pw"]);
    let conv = |in_channels, kernel, padding| ConvShape {
        in_channels,
        kernel,
        stride: 1,
        padding,
    };
    assert_eq!(model.layers[0].conv, Some(conv(4, 3, 1)));
    assert_eq!(model.layers[0].inputs, 36);
    assert_eq!(model.layers[1].conv, None);
    assert_eq!(model.layers[2].conv, Some(conv(8, 1, 0)));
    assert_eq!(layer_report(&r, "conv3.weight")["conv"]["kernel"], 3);
    assert_eq!(layer_report(&r, "fc.weight")["conv"], Value::Null);
    // The kernels, as rebuilt by the integer datapath, approximate the originals: random (not
    // low-rank) weights, so the error is real but bounded, and it is what the report says.
    let cfg = AccelConfig::preset("tiny").unwrap();
    let originals = weights::load(&w, &[]).unwrap();
    for l in &model.layers {
        let t = originals
            .iter()
            .find(|t| t.name == format!("{}.weight", l.name))
            .unwrap();
        let e = rel_error(&real_weights(&cfg, l), &t.data);
        let reported = layer_report(&r, &t.name)["int"]["int_rel_error"]
            .as_f64()
            .unwrap();
        assert!(e < 0.5, "{}: {e}", l.name);
        assert!((e - reported).abs() < 1e-4, "{}: {e} vs {reported}", l.name);
    }
    // The conv bias was converted; the others have none.
    assert!(model.layers[0].bias.iter().any(|b| *b != 0));
    // Left out, with the reason: the 7×7 stem and the depthwise kernel.
    let note = |t: &str| layer_report(&r, t)["note"].as_str().unwrap().to_string();
    assert!(note("stem.weight").contains("7×7"), "{r}");
    assert!(note("dw.weight").contains("depthwise"), "{r}");
}

#[test]
fn stride_padding_and_groups_options_reach_the_layers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let w = network(d);
    let out = d.join("m.sdm");
    ok(
        &[
            "decompose",
            p(&w),
            "--tensor",
            "conv3.weight",
            "--tensor",
            "pw.weight",
            "--tensor",
            "dw.weight",
            "--out",
            p(&out),
            "--stride",
            "conv3=2",
            "--padding",
            "conv3=0",
            "--padding",
            "pw.weight=1",
            "--stride",
            "pw=2",
            "--groups",
            "dw=1",
        ],
        d,
    );
    let model = sdm::load(&out).unwrap();
    let shapes: Vec<_> = model.layers.iter().map(|l| l.conv.unwrap()).collect();
    let c = |in_channels, kernel, stride, padding| ConvShape {
        in_channels,
        kernel,
        stride,
        padding,
    };
    assert_eq!(shapes, [c(4, 3, 2, 0), c(1, 3, 1, 1), c(8, 1, 2, 1)]);
}

#[test]
fn unsupported_kernels_and_bad_options_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let w = network(d);
    let out = d.join("m.sdm");
    let base = ["decompose", p(&w), "--out", p(&out)];
    let cases: [(&[&str], &[&str]); 13] = [
        (
            &["--stride", "nope=2"],
            &["--stride nope=…", "no selected tensor"],
        ),
        (
            &["--stride", "conv3=3"],
            &["--stride conv3=3", "3 is not one of"],
        ),
        (&["--padding", "conv3=2"], &["--padding conv3=2"]),
        (&["--padding", "conv3"], &["expected NAME=VALUE"]),
        (&["--stride", "fc=2"], &["`fc.weight` is not a convolution"]),
        (&["--stride", "stem=2"], &["stem.weight", "7×7"]),
        (&["--padding", "dw=0"], &["dw.weight", "depthwise"]),
        (
            &["--tensor", "stem.weight", "--tensor", "fc.weight"],
            &["--tensor stem.weight", "7×7"],
        ),
        (
            &["--tensor", "dw.weight"],
            &["--tensor dw.weight", "depthwise"],
        ),
        (
            &["--tensor", "conv3.weight", "--groups", "conv3=2"],
            &["conv3.weight", "groups = 2"],
        ),
        (&["--groups", "conv3=0"], &["--groups conv3=0"]),
        (&["--bn-eps", "0"], &["--bn-eps"]),
        (&["--bn", "conv3=bn9"], &["bn9.running_mean"]),
    ];
    for (extra, needles) in cases {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        fails_after_notes(&args, d, needles);
    }
    assert!(!out.exists(), "no model is written on error");
    // A glob that only catches an unsupported kernel: nothing to write.
    fails_after_notes(
        &["decompose", p(&w), "--out", p(&out), "--tensor", "st*"],
        d,
        &["none of the 1 selected tensor(s)", "7×7"],
    );
}

/// `conv1` (3 output channels of one input channel, declared ungrouped: each channel's kernel
/// is a single 3×3 block, which a basis decomposes exactly) with a conv bias and batch norm
/// `bn1`.
fn conv_bn(dir: &Path) -> (PathBuf, [Vec<f32>; 6]) {
    let w = uniform(27, 0.25, 1.0, 11)
        .iter()
        .zip(uniform(27, -1.0, 1.0, 12))
        .map(|(m, s)| m.copysign(s))
        .collect::<Vec<f32>>();
    let parts = [
        w,
        vec![0.5, -0.25, 0.0],     // conv bias
        vec![1.5, -0.75, 0.5],     // γ
        vec![0.1, -0.2, 0.3],      // β
        vec![0.3, -0.6, 1.2],      // μ
        uniform(3, 0.25, 4.0, 13), // var
    ];
    let f = dir.join("bn.safetensors");
    write_safetensors(
        &f,
        &[
            ("conv1.weight", vec![3, 1, 3, 3], parts[0].clone()),
            ("conv1.bias", vec![3], parts[1].clone()),
            ("bn1.weight", vec![3], parts[2].clone()),
            ("bn1.bias", vec![3], parts[3].clone()),
            ("bn1.running_mean", vec![3], parts[4].clone()),
            ("bn1.running_var", vec![3], parts[5].clone()),
            ("bn1.num_batches_tracked", vec![1], vec![7.0]),
        ],
    );
    (f, parts)
}

/// `w' = w·γ/√(var+ε)`, `b' = (b − μ)·γ/√(var+ε) + β`, in f64.
fn folded(parts: &[Vec<f32>; 6], eps: f64) -> (Vec<f64>, Vec<f64>) {
    let [w, b, g, beta, mu, var] = parts
        .each_ref()
        .map(|v| v.iter().map(|x| f64::from(*x)).collect::<Vec<_>>());
    let s: Vec<f64> = (0..3).map(|o| g[o] / (var[o] + eps).sqrt()).collect();
    let w2 = w.iter().enumerate().map(|(i, v)| v * s[i / 9]).collect();
    let b2 = (0..3).map(|o| (b[o] - mu[o]) * s[o] + beta[o]).collect();
    (w2, b2)
}

#[test]
fn batch_norm_is_folded_by_the_formula() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (f, parts) = conv_bn(d);
    // The library's folding, on the file: exactly the formula (up to f32 rounding).
    for eps in [1e-5, 0.5] {
        let mut ts = weights::load(&f, &[]).unwrap();
        let opts = BnOptions {
            eps,
            ..BnOptions::default()
        };
        let done = fold_batch_norms(&f, &mut ts, &opts).unwrap();
        assert_eq!(done["conv1.weight"].bn, "bn1");
        let (w2, b2) = folded(&parts, eps);
        for (got, want) in ts[0].data.iter().zip(&w2) {
            assert!(
                (f64::from(*got) - want).abs() <= 1e-6 * want.abs(),
                "{got} {want}"
            );
        }
        for (got, want) in ts[0].bias.as_ref().unwrap().iter().zip(&b2) {
            assert!((f64::from(*got) - want).abs() <= 1e-6 * want.abs().max(1.0));
        }
    }

    // End to end: the layer's integer weights and bias are the folded ones.
    let cfg = AccelConfig::preset("tiny").unwrap();
    let (out, js) = (d.join("m.sdm"), d.join("r.json"));
    let mut args = vec!["decompose", p(&f), "--out", p(&out), "--json", p(&js)];
    args.extend(["--groups", "conv1=1", "--bn-eps", "0.5"]);
    let table = ok(&args, d);
    assert!(table.contains("batch norm `bn1` folded"), "{table}");
    assert_eq!(
        layer_report(&read_json(&js), "conv1.weight")["batch_norm"]["bn"],
        "bn1"
    );
    let l = &sdm::load(&out).unwrap().layers[0];
    let (w2, b2) = folded(&parts, 0.5);
    let w2f: Vec<f32> = w2.iter().map(|v| *v as f32).collect();
    let e = rel_error(&real_weights(&cfg, l), &w2f);
    // One exactly decomposable block per channel: what is left is the integer rounding.
    assert!(e < 0.05, "{e}");
    let sx = 4.0 / 127.0; // the default activation scale
    for (o, want) in b2.iter().enumerate() {
        let u = sx * 2f64.powi(i32::from(l.e_lo) + i32::from(l.wshift[o]));
        let got = f64::from(l.bias[o]) * u;
        assert!(
            (got - want).abs() <= u / 2.0 + 1e-9,
            "channel {o}: {got} vs {want}"
        );
    }

    // --no-fold-bn: the weights as stored, the conv bias alone.
    let mut args = vec!["decompose", p(&f), "--out", p(&out), "--no-fold-bn"];
    args.extend(["--groups", "conv1=1"]);
    ok(&args, d);
    let l = &sdm::load(&out).unwrap().layers[0];
    assert!(rel_error(&real_weights(&cfg, l), &parts[0]) < 0.05);
    // An explicit --bn names the batch norm; one with the wrong channel count is an error.
    let mut args = vec!["decompose", p(&f), "--out", p(&out), "--no-fold-bn"];
    args.extend(["--groups", "conv1=1", "--bn", "conv1=bn1"]);
    ok(&args, d);
    let l2 = &sdm::load(&out).unwrap().layers[0];
    let default_eps: Vec<f32> = folded(&parts, 1e-5).0.iter().map(|v| *v as f32).collect();
    let e2 = rel_error(&real_weights(&cfg, l2), &default_eps);
    assert!(e2 < 0.05, "{e2}");
    let bad = d.join("bad.safetensors");
    write_safetensors(
        &bad,
        &[
            ("conv1.weight", vec![3, 2, 1, 1], vec![0.5; 6]),
            ("bn1.running_mean", vec![2], vec![0.0; 2]),
            ("bn1.running_var", vec![2], vec![1.0; 2]),
        ],
    );
    fails_after_notes(
        &["decompose", p(&bad), "--out", p(&out)],
        d,
        &["`bn1.running_mean` has shape [2]", "3 output channels"],
    );
}
