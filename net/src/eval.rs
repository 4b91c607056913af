//! Whole-network evaluation: STS-B (the float MiniLM, the oracle, and the SmartDeal int8 model
//! on an engine, scored the way the field scores sentence embeddings) and MNIST (the float CNN
//! and its int8 forms on an engine, top-1 classes).

use crate::cnn::IntCnn;
use crate::digits::{Digits, PIXELS};
use crate::minilm::MiniLm;
use crate::mnist::{self, MnistNet};
use crate::quant::{IntLinears, QLayer};
use crate::sts::{cosine, spearman, Pair};
use crate::NetError;
use smartdeal_host::{Engine, RunStats};

/// Spearman of cosine similarity vs gold over `pairs`, with embeddings from `embed`.
pub fn score(
    pairs: &[Pair],
    mut embed: impl FnMut(&str) -> Result<Vec<f32>, NetError>,
    progress: &dyn Fn(),
) -> Result<f64, NetError> {
    let mut sims = Vec::with_capacity(pairs.len());
    for p in pairs {
        let a = embed(&p.a)?;
        let b = embed(&p.b)?;
        sims.push(cosine(&a, &b));
        progress();
    }
    let gold: Vec<f64> = pairs.iter().map(|p| p.gold).collect();
    Ok(spearman(&sims, &gold))
}

/// The float model's score (candle-transformers' BERT).
pub fn float_score(m: &MiniLm, pairs: &[Pair], progress: &dyn Fn()) -> Result<f64, NetError> {
    score(pairs, |s| m.oracle_embedding(&m.tokenize(s)?), progress)
}

/// The compressed int8 model's score, every linear layer run on `engine`; returns the score
/// and the engine's summed counts.
pub fn int_score(
    m: &MiniLm,
    layers: &[QLayer],
    engine: &mut dyn Engine,
    pairs: &[Pair],
    progress: &dyn Fn(),
) -> Result<(f64, RunStats), NetError> {
    let mut lin = IntLinears::new(engine, layers)?;
    let s = score(pairs, |s| m.embedding(&m.tokenize(s)?, &mut lin), progress)?;
    Ok((s, lin.stats))
}

/// The float MNIST CNN's top-1 class of every image of `images`, in batches of `batch`;
/// `progress(k)` after each batch of `k` images.
pub fn mnist_float(
    net: &MnistNet,
    images: &Digits,
    batch: usize,
    progress: &dyn Fn(usize),
) -> Result<Vec<u8>, NetError> {
    let mut out = Vec::with_capacity(images.len());
    for start in (0..images.len()).step_by(batch.max(1)) {
        let end = (start + batch.max(1)).min(images.len());
        let x = mnist::input(&images.pixels[start * PIXELS..end * PIXELS])?;
        out.extend(mnist::top1_of(&net.logits(&x)?)?);
        progress(end - start);
    }
    Ok(out)
}

/// The int8 MNIST CNN's top-1 classes, its four layers (`cnn::compress` or `cnn::dense`) run
/// on `engine`, in batches of `batch` images; returns the classes and the engine's counts.
pub fn mnist_int(
    layers: &[QLayer],
    engine: &mut dyn Engine,
    images: &Digits,
    batch: usize,
    progress: &dyn Fn(usize),
) -> Result<(Vec<u8>, RunStats), NetError> {
    let mut cnn = IntCnn::new(engine, layers)?;
    let mut out = Vec::with_capacity(images.len());
    for start in (0..images.len()).step_by(batch.max(1)) {
        let end = (start + batch.max(1)).min(images.len());
        out.extend(cnn.classify(&images.pixels[start * PIXELS..end * PIXELS])?);
        progress(end - start);
    }
    Ok((out, cnn.stats))
}

/// The fraction of `a` equal to `b` at the same index (top-1 accuracy against labels, or
/// agreement between two models).
pub fn agreement(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len(), "agreement of unequal lengths");
    if a.is_empty() {
        return 0.0;
    }
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64
}
