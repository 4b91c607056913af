//! ccexam's MNIST CNN (cache/mnist, fetched by scripts/setup.sh): the float forward pass against
//! a direct loop implementation and on real digits, the dense int8 layers against plain int8
//! arithmetic, and the whole SmartDeal CNN on the Verilator engine against the golden engine,
//! every layer's int8 outputs bit for bit.

use smartdeal_core::{AccelConfig, FcLayer, ImageDims};
use smartdeal_host::{Engine, EngineError, GoldenEngine, Loaded, RunStats};
use smartdeal_net::cnn::{self, CnnCalibration, IntCnn};
use smartdeal_net::digits::{self, Digits, Split};
use smartdeal_net::eval::{agreement, mnist_float, mnist_int};
use smartdeal_net::mnist::{self, MnistNet, LAYERS};
use smartdeal_net::quant::{CompressOptions, QLayer};
use std::collections::HashMap;
use std::path::PathBuf;

fn cache() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../cache/mnist")
}

fn net() -> MnistNet {
    MnistNet::load(&cache().join("mnist.pth")).expect("cache/mnist (run scripts/setup.sh)")
}

fn split() -> Split {
    digits::read_dir(&cache().join("digits"))
        .expect("cache/mnist/digits (run scripts/setup.sh)")
        .split(50)
}

fn calibration(net: &MnistNet, s: &Split) -> CnnCalibration {
    cnn::calibrate(net, &s.calib, 100).unwrap()
}

/// The float network written as plain loops over the weights (f64 sums).
fn naive_logits(net: &MnistNet, pixels: &[f32]) -> Vec<f32> {
    let mut x: Vec<f64> = pixels
        .iter()
        .map(|&p| f64::from(mnist::normalize(p)))
        .collect();
    let (mut c, mut side) = (1, 28);
    for (i, spec) in LAYERS.iter().enumerate() {
        let w = net
            .weight(i)
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let b = net.bias(i).to_vec1::<f32>().unwrap();
        let m = spec.outputs();
        if spec.is_conv() {
            let at = |ch: usize, y: isize, xx: isize| -> f64 {
                let s = side as isize;
                if (0..s).contains(&y) && (0..s).contains(&xx) {
                    x[(ch * side + y as usize) * side + xx as usize]
                } else {
                    0.0
                }
            };
            let mut y = vec![0.0; m * side * side];
            for o in 0..m {
                for py in 0..side {
                    for px in 0..side {
                        let mut s = f64::from(b[o]);
                        for ci in 0..c {
                            for k in 0..9 {
                                let (kh, kw) = ((k / 3) as isize, (k % 3) as isize);
                                let v = at(ci, py as isize + kh - 1, px as isize + kw - 1);
                                s += f64::from(w[(o * c + ci) * 9 + k]) * v;
                            }
                        }
                        y[(o * side + py) * side + px] = s.max(0.0);
                    }
                }
            }
            let half = side / 2;
            x = (0..m * half * half)
                .map(|j| {
                    let (o, py, px) = (j / (half * half), j / half % half, j % half);
                    let v = |dy: usize, dx: usize| y[(o * side + 2 * py + dy) * side + 2 * px + dx];
                    v(0, 0).max(v(0, 1)).max(v(1, 0)).max(v(1, 1))
                })
                .collect();
            (c, side) = (m, half);
        } else {
            let n = x.len();
            x = (0..m)
                .map(|o| {
                    let s: f64 = (0..n).map(|k| f64::from(w[o * n + k]) * x[k]).sum();
                    let s = s + f64::from(b[o]);
                    if i + 1 < LAYERS.len() {
                        s.max(0.0)
                    } else {
                        s
                    }
                })
                .collect();
        }
    }
    x.into_iter().map(|v| v as f32).collect()
}

#[test]
fn float_network_equals_direct_loops_and_classifies_digits() {
    let (net, s) = (net(), split());
    assert_eq!(net.weight_count(), 421_408);
    assert_eq!(s.calib.len(), 500);
    assert_eq!(s.test.len(), 9_500);
    let two = s.test.take(2);
    let got = net
        .logits(&mnist::input(&two.pixels).unwrap())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    for k in 0..2 {
        let want = naive_logits(&net, two.image(k));
        for (a, b) in got[k * 10..(k + 1) * 10].iter().zip(&want) {
            assert!((a - b).abs() < 1e-3 * (1.0 + b.abs()), "{a} vs {b}");
        }
    }
    let test = s.test.take(300);
    let pred = mnist_float(&net, &test, 64, &|_| {}).unwrap();
    let acc = agreement(&pred, &test.labels);
    assert!(acc >= 0.99, "float top-1 {acc}");
}

/// An engine that keeps every layer run's input and int8 output.
struct Recording<'a> {
    inner: &'a mut dyn Engine,
    names: HashMap<Loaded, String>,
    runs: Vec<Run>,
}

struct Run {
    layer: String,
    x: Vec<i8>,
    dims: Option<ImageDims>,
    y: Vec<i8>,
}

impl Recording<'_> {
    fn keep(&mut self, l: Loaded, x: &[i8], dims: Option<ImageDims>, y: &[i8]) {
        self.runs.push(Run {
            layer: self.names[&l].clone(),
            x: x.to_vec(),
            dims,
            y: y.to_vec(),
        });
    }
}

impl Engine for Recording<'_> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn what(&self) -> String {
        self.inner.what()
    }
    fn config(&self) -> &AccelConfig {
        self.inner.config()
    }
    fn load(&mut self, l: &FcLayer) -> Result<Loaded, EngineError> {
        let h = self.inner.load(l)?;
        self.names.insert(h, l.name.clone());
        Ok(h)
    }
    fn unload(&mut self, l: Loaded) {
        self.inner.unload(l);
    }
    fn run(&mut self, l: Loaded, x: &[i8]) -> Result<(Vec<i8>, RunStats), EngineError> {
        let (y, st) = self.inner.run(l, x)?;
        self.keep(l, x, None, &y);
        Ok((y, st))
    }
    fn run_images(
        &mut self,
        l: Loaded,
        x: &[i8],
        dims: ImageDims,
    ) -> Result<(Vec<i8>, RunStats), EngineError> {
        let (y, st) = self.inner.run_images(l, x, dims)?;
        self.keep(l, x, Some(dims), &y);
        Ok((y, st))
    }
}

/// Every layer run and the logits of `images` (in batches of 10) on `engine`.
fn run_all(layers: &[QLayer], engine: &mut dyn Engine, images: &Digits) -> (Vec<Run>, Vec<f32>) {
    let mut rec = Recording {
        inner: engine,
        names: HashMap::new(),
        runs: Vec::new(),
    };
    let mut logits = Vec::new();
    {
        let mut cnn = IntCnn::new(&mut rec, layers).unwrap();
        for k in (0..images.len()).step_by(10) {
            let batch = images.slice(k..(k + 10).min(images.len()));
            logits.extend(cnn.logits(&batch.pixels).unwrap());
        }
    }
    (rec.runs, logits)
}

/// Output requantization as docs/numerics.md gives it.
fn requant(acc: i64, q: &FcLayer, o: usize) -> i8 {
    let t = (acc + i64::from(q.bias[o])) * i64::from(q.out_mult[o]);
    let sh = q.out_shift[o];
    let r = if sh == 0 {
        t
    } else {
        (t + (1 << (sh - 1))) >> sh
    };
    let y = r.clamp(-128, 127);
    (if q.relu { y.max(0) } else { y }) as i8
}

/// A layer run recomputed with plain int8 weights quantized here from the float weights
/// (per output channel, `max|w| / 127`), the bias and output parameters taken from the layer.
fn plain_int8(net: &MnistNet, i: usize, q: &FcLayer, r: &Run) -> Vec<i8> {
    let w = net
        .weight(i)
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let m = LAYERS[i].outputs();
    let n = w.len() / m;
    let w8: Vec<i64> = (0..m)
        .flat_map(|o| {
            let wo = &w[o * n..(o + 1) * n];
            let s = wo.iter().fold(0.0f32, |a, v| a.max(v.abs())) / 127.0;
            wo.iter().map(move |v| (v / s).round() as i64)
        })
        .collect();
    let Some(d) = r.dims else {
        let t = r.x.len() / n;
        return (0..t * m)
            .map(|j| {
                let (tok, o) = (j / m, j % m);
                let acc: i64 = (0..n)
                    .map(|k| w8[o * n + k] * i64::from(r.x[tok * n + k]))
                    .sum();
                requant(acc, q, o)
            })
            .collect();
    };
    let (c, h, wd) = (n / 9, d.height, d.width);
    let mut out = Vec::with_capacity(d.images * m * h * wd);
    for img in 0..d.images {
        for o in 0..m {
            for y in 0..h {
                for x in 0..wd {
                    let mut acc = 0i64;
                    for ci in 0..c {
                        for k in 0..9 {
                            let (iy, ix) = ((y + k / 3) as isize - 1, (x + k % 3) as isize - 1);
                            if (0..h as isize).contains(&iy) && (0..wd as isize).contains(&ix) {
                                let px = ((img * c + ci) * h + iy as usize) * wd + ix as usize;
                                acc += w8[(o * c + ci) * 9 + k] * i64::from(r.x[px]);
                            }
                        }
                    }
                    out.push(requant(acc, q, o));
                }
            }
        }
    }
    out
}

#[test]
fn dense_int8_layers_compute_with_plain_int8_weights() {
    let (net, s) = (net(), split());
    let cal = calibration(&net, &s);
    let cfg = AccelConfig::preset("tiny").unwrap();
    let layers = cnn::dense(&net, &cal, &cfg).unwrap();
    let images = s.test.take(3);
    let (runs, _) = run_all(
        &layers,
        &mut GoldenEngine::new(&cfg.dense_baseline()),
        &images,
    );
    assert_eq!(runs.len(), 4);
    for (i, r) in runs.iter().enumerate() {
        assert_eq!(r.layer, LAYERS[i].name);
        assert!(
            r.y == plain_int8(&net, i, &layers[i].fc, r),
            "layer `{}`: the dense model is not plain int8 arithmetic",
            r.layer
        );
    }
    // The dense baseline's RTL computes the same.
    let mut accel = smartdeal_sim::Accel::new(&cfg.dense_baseline(), &Default::default()).unwrap();
    let (rtl, _) = run_all(&layers, &mut accel, &images);
    for (g, r) in runs.iter().zip(&rtl) {
        assert!(g.y == r.y, "layer `{}`: dense Verilator differs", g.layer);
    }
}

#[test]
fn whole_cnn_on_verilator_equals_golden() {
    let (net, s) = (net(), split());
    let cal = calibration(&net, &s);
    let cfg = AccelConfig::preset("tiny").unwrap();
    let layers = cnn::compress(&net, &cal, &cfg, &CompressOptions::default(), &|| {}).unwrap();
    // 20 digits, two of each.
    let images = s.test.take(20);
    let (gold, gold_logits) = run_all(&layers, &mut GoldenEngine::new(&cfg), &images);
    let mut accel = smartdeal_sim::Accel::new(&cfg, &Default::default()).unwrap();
    let (rtl, rtl_logits) = run_all(&layers, &mut accel, &images);
    assert_eq!(gold.len(), 4 * 2);
    assert_eq!(rtl.len(), gold.len());
    for (g, r) in gold.iter().zip(&rtl) {
        assert_eq!(g.layer, r.layer);
        assert!(
            g.y == r.y,
            "layer `{}`: Verilator output differs from golden",
            g.layer
        );
    }
    assert_eq!(gold_logits, rtl_logits);
    // Not a degenerate network: the int8 model gets the digits right.
    let pred = mnist::top1(&gold_logits, 10);
    assert!(agreement(&pred, &images.labels) >= 0.9, "{pred:?}");
    let (again, _) = mnist_int(&layers, &mut GoldenEngine::new(&cfg), &images, 7, &|_| {}).unwrap();
    assert_eq!(again, pred, "the batch size changes nothing");
}
