//! STS-B evaluation: the float model (the oracle) and the SmartDeal int8 model on an engine,
//! scored the way the field scores sentence embeddings.

use crate::minilm::MiniLm;
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
