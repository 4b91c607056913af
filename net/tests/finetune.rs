//! Fine-tuning by distillation on the real MNIST CNN (cache/mnist, fetched by scripts/setup.sh):
//! a short run of both phases lowers the distillation loss, keeps the row masks, and the
//! fine-tuned int8 model runs on the Verilator engine bit for bit as on the golden engine.
//! (Full-length runs are documented commands, docs/finetune.md.)

use smartdeal_core::AccelConfig;
use smartdeal_host::{Engine, GoldenEngine};
use smartdeal_net::cnn::{self, IntCnn};
use smartdeal_net::digits;
use smartdeal_net::finetune::run::{self, Densities, Observer, Recipe};
use smartdeal_net::finetune::TrainOptions;
use smartdeal_net::mnist::{self, MnistNet};
use smartdeal_net::quant::{footprint, CompressOptions, QLayer};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn cache() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../cache/mnist")
}

struct Quiet;
impl Observer for Quiet {
    fn phase(&self, _: &str, _: usize) {}
    fn step(&self, _: usize, _: f64) {}
}

fn logits(layers: &[QLayer], engine: &mut dyn Engine, pixels: &[f32]) -> Vec<f32> {
    IntCnn::new(engine, layers).unwrap().logits(pixels).unwrap()
}

#[test]
fn a_short_fine_tune_learns_keeps_the_masks_and_runs_bit_identically_on_verilator() {
    let net = MnistNet::load(&cache().join("mnist.pth")).expect("cache/mnist (scripts/setup.sh)");
    let split = digits::read_dir(&cache().join("digits")).unwrap().split(20);
    let cal = cnn::calibrate(&net, &split.calib, 100).unwrap();
    let phase = |steps| TrainOptions {
        steps,
        lr: 1e-3,
        lr_exponent: 1e-2,
        checkpoint_every: 0,
    };
    let dir = tempfile::tempdir().unwrap();
    let recipe = Recipe {
        densities: Densities {
            default: 0.5,
            per_layer: BTreeMap::from([("features.0".to_string(), 1.0)]),
        },
        block: Default::default(),
        group_size: 32,
        moments: BTreeMap::new(),
        budget: Default::default(),
        window: Some(smartdeal_net::finetune::param::CodeWindow {
            exp_bits: 3,
            basis_bits: 8,
        }),
        masked: phase(6),
        smartdeal: phase(4),
        batch: 16,
        seed: 7,
        dir: Some(dir.path().to_path_buf()),
    };
    let (tuned, log) = run::mnist(&net, &split.calib.pixels, &recipe, &Quiet).unwrap();
    assert_eq!(log.len(), 10);
    assert!(log.iter().all(|e| e.loss.is_finite() && e.loss > 0.0));
    let masked: Vec<f64> = log
        .iter()
        .filter(|e| e.phase == "masked")
        .map(|e| e.loss)
        .collect();
    assert!(masked[5] < masked[0], "the masked phase learns: {masked:?}");
    for phase in ["masked", "smartdeal"] {
        assert!(dir.path().join(format!("{phase}.safetensors")).exists());
    }

    let floats: Vec<_> = tuned
        .into_iter()
        .map(|t| (t.name, t.layer, t.bias))
        .collect();
    let cfg = AccelConfig::preset("tiny").unwrap();
    let layers = cnn::int_layers(&floats, &cal, &cfg, &CompressOptions::default(), &|| {}).unwrap();
    // Half the rows of every layer but the first (whose three rows per channel are all kept).
    let fp = footprint(&layers);
    assert!(fp.row_density > 0.49 && fp.row_density < 0.52, "{fp:?}");

    let images = split.test.take(10);
    let gold = logits(&layers, &mut GoldenEngine::new(&cfg), &images.pixels);
    let mut accel = smartdeal_sim::Accel::new(&cfg, &Default::default()).unwrap();
    let rtl = logits(&layers, &mut accel, &images.pixels);
    assert_eq!(
        gold, rtl,
        "the fine-tuned model on Verilator differs from golden"
    );
    let pred = mnist::top1(&gold, 10);
    let right = pred
        .iter()
        .zip(&images.labels)
        .filter(|(p, l)| p == l)
        .count();
    assert!(
        right >= 7,
        "a short fine-tune still classifies: {pred:?} vs {:?}",
        images.labels
    );
}
