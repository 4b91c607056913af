//! all-MiniLM-L6-v2 (fetched by scripts/setup.sh into cache/minilm): the host graph against the
//! float oracle, and the whole compressed encoder on the Verilator engine against the golden
//! engine, bit for bit.

use smartdeal_core::{AccelConfig, FcLayer, ImageDims};
use smartdeal_host::{Engine, EngineError, GoldenEngine, Loaded, RunStats};
use smartdeal_net::minilm::{FloatLinears, MiniLm};
use smartdeal_net::quant::{calibrate, compress, CompressOptions, IntLinears, QLayer};
use std::collections::HashMap;
use std::path::PathBuf;

fn model() -> MiniLm {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../cache/minilm");
    MiniLm::load(&dir).expect("cache/minilm (run scripts/setup.sh)")
}

const SENTENCES: [&str; 5] = [
    "A man is playing a guitar.",
    "Two dogs run on the beach.",
    "The stock market fell sharply today.",
    "A woman slices an onion.",
    "Kids are playing football.",
];

#[test]
fn host_graph_in_float_equals_the_oracle() {
    let m = model();
    for s in SENTENCES {
        let t = m.tokenize(s).unwrap();
        assert_eq!(t.ids.first(), Some(&101), "[CLS] first");
        assert_eq!(t.ids.last(), Some(&102), "[SEP] last");
        let a = m.oracle_embedding(&t).unwrap();
        let b = m.embedding(&t, &mut FloatLinears { model: &m }).unwrap();
        let d = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(d < 1e-5, "`{s}`: host graph and oracle differ by {d}");
        let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
    }
}

/// An engine that keeps every layer's int8 output.
struct Recording<'a> {
    inner: &'a mut dyn Engine,
    names: HashMap<Loaded, String>,
    outputs: Vec<(String, Vec<i8>)>,
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
        self.outputs.push((self.names[&l].clone(), y.clone()));
        Ok((y, st))
    }
    fn run_images(
        &mut self,
        l: Loaded,
        x: &[i8],
        dims: ImageDims,
    ) -> Result<(Vec<i8>, RunStats), EngineError> {
        let (y, st) = self.inner.run_images(l, x, dims)?;
        self.outputs.push((self.names[&l].clone(), y.clone()));
        Ok((y, st))
    }
}

/// Every layer's int8 outputs (by layer name, in execution order) and the embeddings.
type Trace = (Vec<(String, Vec<i8>)>, Vec<Vec<f32>>);

fn run_all(m: &MiniLm, layers: &[QLayer], engine: &mut dyn Engine) -> Trace {
    let mut rec = Recording {
        inner: engine,
        names: HashMap::new(),
        outputs: Vec::new(),
    };
    let mut emb = Vec::new();
    {
        let mut lin = IntLinears::new(&mut rec, layers).unwrap();
        for s in SENTENCES {
            emb.push(m.embedding(&m.tokenize(s).unwrap(), &mut lin).unwrap());
        }
    }
    (rec.outputs, emb)
}

#[test]
fn whole_encoder_on_verilator_equals_golden() {
    let m = model();
    let calib: Vec<String> = [
        "A cat sits on the mat.",
        "Nobody knows the answer to that question.",
    ]
    .map(String::from)
    .to_vec();
    let cal = calibrate(&m, &calib, &|| {}).unwrap();
    let cfg = AccelConfig::preset("tiny").unwrap();
    let layers = compress(&m, &cal, &cfg, &CompressOptions::default(), &|| {}).unwrap();
    assert_eq!(layers.len(), 36);
    let (gold_out, gold_emb) = run_all(&m, &layers, &mut GoldenEngine::new(&cfg));
    let mut accel = smartdeal_sim::Accel::new(&cfg, &Default::default()).unwrap();
    let (rtl_out, rtl_emb) = run_all(&m, &layers, &mut accel);
    assert_eq!(gold_out.len(), 36 * SENTENCES.len());
    assert_eq!(rtl_out.len(), gold_out.len());
    for (g, r) in gold_out.iter().zip(&rtl_out) {
        assert_eq!(g.0, r.0);
        assert!(
            g.1 == r.1,
            "layer `{}`: Verilator output differs from golden",
            g.0
        );
    }
    assert_eq!(gold_emb, rtl_emb);
    // Not a degenerate network: the sentences' embeddings differ.
    assert!(gold_emb[0] != gold_emb[1]);
}
