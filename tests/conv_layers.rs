//! Convolution layers outside the decomposition: `random-layer --conv`, `inspect` and its
//! `--export-int` of 4-D kernels, and `scripts/numpy_reference.py` recomputing a convolution
//! from those exports, checked against the golden model.

use rand::{Rng, SeedableRng};
use smartdeal_core::{sdm, AccelConfig, ConvShape, FcLayer, ImageDims};
use std::path::Path;

mod common;

use common::{fails, make_layer, numpy_reference, ok, p, read_json, write_npy};

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
    (shape, npy.into_vec::<T>().unwrap())
}

/// `random-layer --conv KERNEL --in-channels C --outputs M EXTRA...`; returns the file and layer.
fn conv_layer(dir: &Path, file: &str, kernel: &str, c: &str, m: &str, extra: &[&str]) -> FcLayer {
    let mut args = vec!["--conv", kernel, "--in-channels", c, "--outputs", m];
    args.extend_from_slice(extra);
    let path = make_layer(dir, file, &args);
    let mut model = sdm::load(&path).unwrap();
    model.layers.remove(0)
}

#[test]
fn random_layer_conv_makes_valid_convolution_layers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let l = conv_layer(
        d,
        "a.sdm",
        "3x3",
        "5",
        "7",
        &["--stride", "2", "--seed", "4"],
    );
    let want = ConvShape {
        in_channels: 5,
        kernel: 3,
        stride: 2,
        padding: 1,
    };
    assert_eq!(l.conv, Some(want));
    assert_eq!((l.inputs, l.outputs), (45, 7));
    l.check_fits(&AccelConfig::preset("tiny").unwrap()).unwrap();
    let l = conv_layer(d, "b.sdm", "1x1", "6", "4", &[]);
    assert_eq!(
        l.conv.map(|c| (c.kernel, c.stride, c.padding)),
        Some((1, 1, 0))
    );
    let l = conv_layer(d, "c.sdm", "3x3", "2", "4", &["--padding", "0", "--relu"]);
    assert_eq!(l.conv.map(|c| c.padding), Some(0));
    assert!(l.relu);

    // inspect shows the geometry, in the table and in --json.
    let table = ok(&["inspect", p(&d.join("a.sdm"))], d);
    assert!(
        table.contains("layer0: 3×3 convolution, 5 input channels, stride 2, padding 1"),
        "{table}"
    );
    let js: serde_json::Value =
        serde_json::from_str(&ok(&["inspect", p(&d.join("a.sdm")), "--json"], d)).unwrap();
    let c = &js["layers"][0]["conv"];
    assert_eq!((&c["in_channels"], &c["kernel"]), (&5.into(), &3.into()));
    assert_eq!((&c["stride"], &c["padding"]), (&2.into(), &1.into()));
    // A fully connected layer has no "conv" entry.
    let fc = make_layer(d, "fc.sdm", &["--inputs", "10", "--outputs", "3"]);
    let js: serde_json::Value =
        serde_json::from_str(&ok(&["inspect", p(&fc), "--json"], d)).unwrap();
    assert!(js["layers"][0].get("conv").is_none(), "{js}");

    let help = ok(&["random-layer", "--help"], d);
    for f in [
        "--conv",
        "1x1",
        "3x3",
        "--in-channels",
        "--stride",
        "--padding",
    ] {
        assert!(help.contains(f), "{f}: {help}");
    }
}

#[test]
fn random_layer_conv_flag_errors_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = d.join("x.sdm");
    let cases: [(&[&str], &[&str]); 8] = [
        (&["--conv", "5x5", "--in-channels", "2"], &["5x5"]),
        (&["--conv", "3x3"], &["--in-channels"]),
        (&["--in-channels", "4"], &["--conv"]),
        (&["--stride", "2", "--inputs", "9"], &["--conv"]),
        (
            &["--inputs", "9", "--conv", "3x3", "--in-channels", "1"],
            &["--inputs", "--conv"],
        ),
        (
            &["--conv", "3x3", "--in-channels", "2", "--stride", "3"],
            &["--stride", "3"],
        ),
        (
            &["--conv", "1x1", "--in-channels", "2", "--padding", "2"],
            &["--padding", "2"],
        ),
        (&["--conv", "3x3", "--in-channels", "0"], &["--in-channels"]),
    ];
    for (extra, needles) in cases {
        let mut args = vec!["random-layer", "--outputs", "3", "--out", p(&out)];
        args.extend_from_slice(extra);
        fails(&args, d, needles);
    }
    assert!(!out.exists());
}

#[test]
fn export_int_writes_a_convolution_kernel_as_4d() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let l = conv_layer(d, "m.sdm", "3x3", "4", "6", &["--seed", "2"]);
    let ints = d.join("ints");
    ok(
        &["inspect", p(&d.join("m.sdm")), "--export-int", p(&ints)],
        d,
    );
    let (shape, w) = read_npy::<i8>(&ints.join("layer0.w_int8.npy"), "|i1");
    assert_eq!(shape, [6, 4, 3, 3]);
    let cfg = AccelConfig::preset("tiny").unwrap();
    let want: Vec<i8> = smartdeal_golden::mac_weights(&cfg, &l)
        .into_iter()
        .map(|v| v as i8)
        .collect();
    assert_eq!(w, want, "the [out][in] weights, read as [out][cin][kh][kw]");
    let (bshape, bias) = read_npy::<i32>(&ints.join("layer0.bias_int32.npy"), "<i4");
    assert_eq!((bshape, bias), (vec![6], l.bias.clone()));
    let rq = read_json(&ints.join("layer0.requant.json"));
    assert_eq!(rq["multiplier"].as_array().unwrap().len(), 6);
    let c = &rq["conv"];
    assert_eq!((&c["in_channels"], &c["kernel"]), (&4.into(), &3.into()));
    assert_eq!((&c["stride"], &c["padding"]), (&1.into(), &1.into()));
    // A 1×1 kernel is [out, cin, 1, 1]; a fully connected layer stays [out, in], no "conv".
    conv_layer(d, "pw.sdm", "1x1", "5", "3", &[]);
    ok(
        &[
            "inspect",
            p(&d.join("pw.sdm")),
            "--export-int",
            p(&d.join("pw")),
        ],
        d,
    );
    let (shape, _) = read_npy::<i8>(&d.join("pw/layer0.w_int8.npy"), "|i1");
    assert_eq!(shape, [3, 5, 1, 1]);
    let fc = make_layer(d, "fc.sdm", &["--inputs", "10", "--outputs", "3"]);
    ok(&["inspect", p(&fc), "--export-int", p(&d.join("fc"))], d);
    let (shape, _) = read_npy::<i8>(&d.join("fc/layer0.w_int8.npy"), "|i1");
    assert_eq!(shape, [3, 10]);
    assert!(read_json(&d.join("fc/layer0.requant.json"))
        .get("conv")
        .is_none());
}

/// The convolution as the golden model's fully connected arithmetic applied to every output
/// pixel's zero-padded patch (`[ci][kh][kw]`, the layer's input order): `[images][out][H'][W']`.
fn per_pixel(cfg: &AccelConfig, l: &FcLayer, x: &[i8], dims: ImageDims) -> Vec<i8> {
    let c = l.conv.unwrap();
    let (k, s, pad) = (c.kernel as usize, c.stride as usize, c.padding as usize);
    let (ho, wo) = c.out_dims(dims).unwrap();
    let (cin, h, w) = (c.in_channels as usize, dims.height, dims.width);
    let mut patches = Vec::new();
    for n in 0..dims.images {
        for i in 0..ho {
            for j in 0..wo {
                for ci in 0..cin {
                    for kh in 0..k {
                        for kw in 0..k {
                            let (y, xx) = ((i * s + kh) as isize, (j * s + kw) as isize);
                            let (y, xx) = (y - pad as isize, xx - pad as isize);
                            let inside =
                                (0..h as isize).contains(&y) && (0..w as isize).contains(&xx);
                            patches.push(if inside {
                                x[((n * cin + ci) * h + y as usize) * w + xx as usize]
                            } else {
                                0
                            });
                        }
                    }
                }
            }
        }
    }
    let fc = FcLayer {
        conv: None,
        ..l.clone()
    };
    let y = smartdeal_golden::run_layer(cfg, &fc, &patches); // [n][pixel][out]
    let m = l.outputs as usize;
    let mut out = vec![0i8; y.len()];
    for (t, v) in y.iter().enumerate() {
        let (n, pix, o) = (t / (ho * wo * m), t / m % (ho * wo), t % m);
        out[(n * m + o) * ho * wo + pix] = *v;
    }
    out
}

#[test]
fn numpy_reference_recomputes_convolutions_like_the_golden_model() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = AccelConfig::preset("tiny").unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(31);
    // (kernel, stride, padding, relu, input shape [N, C, H, W] or [C, H, W])
    let cases: [(&str, &str, &str, bool, &[usize]); 5] = [
        ("3x3", "1", "1", false, &[4, 7, 6]),
        ("3x3", "2", "0", true, &[2, 3, 8, 7]),
        ("3x3", "2", "1", false, &[1, 5, 5, 9]),
        ("1x1", "1", "0", false, &[2, 6, 3, 4]),
        ("1x1", "2", "1", true, &[6, 5, 5]),
    ];
    for (i, (kernel, stride, padding, relu, xshape)) in cases.into_iter().enumerate() {
        let c = xshape[xshape.len() - 3];
        let file = format!("m{i}.sdm");
        let seed = i.to_string();
        let mut extra = vec!["--stride", stride, "--padding", padding, "--seed", &seed];
        extra.extend(["--row-density", "0.7"]);
        if relu {
            extra.push("--relu");
        }
        let l = conv_layer(d, &file, kernel, &c.to_string(), "5", &extra);
        let ints = d.join(format!("ints{i}"));
        ok(&["inspect", p(&d.join(&file)), "--export-int", p(&ints)], d);
        let x: Vec<i8> = (0..xshape.iter().product()).map(|_| rng.gen()).collect();
        let xs: Vec<u64> = xshape.iter().map(|&v| v as u64).collect();
        let (xp, yp) = (d.join(format!("x{i}.npy")), d.join(format!("y{i}.npy")));
        write_npy(&xp, &xs, &x);
        numpy_reference(&ints, "layer0", &xp, &yp);
        let (yshape, y) = read_npy::<i8>(&yp, "|i1");
        let images = if xshape.len() == 4 { xshape[0] } else { 1 };
        let dims = ImageDims {
            images,
            height: xshape[xshape.len() - 2],
            width: xshape[xshape.len() - 1],
        };
        let (ho, wo) = l.conv.unwrap().out_dims(dims).unwrap();
        assert_eq!(yshape, [images as u64, 5, ho as u64, wo as u64], "case {i}");
        let golden = smartdeal_golden::run_conv(&cfg, &l, &x, dims).unwrap();
        assert_eq!(y, golden, "case {i}: numpy vs golden");
        assert_eq!(
            y,
            per_pixel(&cfg, &l, &x, dims),
            "case {i}: numpy vs per pixel"
        );
        assert!(
            y.iter().any(|v| *v != 0),
            "case {i}: all-zero outputs test little"
        );
    }
}
