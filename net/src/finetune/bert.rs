//! all-MiniLM-L6-v2 for training: the host graph of [`crate::minilm`] over a batch of
//! sentences, with every encoder linear layer's weights from a [`LayerSource`] (the float
//! teacher, or a student's trainable [`super::param::Weights`]), and the distillation loss.
//!
//! The batch is packed without padding: the linear layers, LayerNorm, GELU and residual adds
//! work on all the batch's tokens at once (`[ΣT, hidden]`, one large matrix product per layer),
//! attention and mean pooling sentence by sentence. So no padding token ever enters a softmax
//! or a mean pool, and no attention mask is needed. Softmax is candle-nn's composed
//! `softmax` (its fused `softmax_last_dim` has no backward pass).

use super::param::Weights;
use crate::minilm::{MiniLm, Tokens};
use crate::NetError;
use candle_core::{Tensor, D};
use std::collections::BTreeMap;

/// Where a linear layer's weight (`[out, in]`) and bias come from.
pub trait LayerSource {
    fn weights(&self, name: &str) -> Result<(Tensor, Tensor), NetError>;
}

/// The model's own float weights.
pub struct Teacher<'a>(pub &'a MiniLm);

impl LayerSource for Teacher<'_> {
    fn weights(&self, name: &str) -> Result<(Tensor, Tensor), NetError> {
        Ok((
            self.0.tensor(&format!("{name}.weight"))?.clone(),
            self.0.tensor(&format!("{name}.bias"))?.clone(),
        ))
    }
}

/// Trainable layers by name.
pub struct Student<'a>(pub &'a BTreeMap<String, Box<dyn Weights + 'a>>);

impl LayerSource for Student<'_> {
    fn weights(&self, name: &str) -> Result<(Tensor, Tensor), NetError> {
        let p = self
            .0
            .get(name)
            .ok_or_else(|| NetError::Compress(format!("no trainable layer `{name}`")))?;
        Ok((p.weight()?, p.bias().clone()))
    }
}

/// A batch's forward pass.
pub struct Forward {
    /// Every encoder layer's output, `[ΣT, hidden]`.
    pub hidden: Vec<Tensor>,
    /// The L2-normalized mean-pooled sentence embeddings, `[B, hidden]`.
    pub pooled: Tensor,
}

fn linear(src: &dyn LayerSource, name: &str, x: &Tensor) -> Result<Tensor, NetError> {
    let (w, b) = src.weights(name)?;
    Ok(x.matmul(&w.t()?)?.broadcast_add(&b)?)
}

/// The encoder on `batch` (sentences of `lens` tokens each, packed).
pub fn forward(m: &MiniLm, batch: &[Tokens], src: &dyn LayerSource) -> Result<Forward, NetError> {
    let lens: Vec<usize> = batch.iter().map(|t| t.ids.len()).collect();
    let embedded = batch
        .iter()
        .map(|t| m.embed(t))
        .collect::<Result<Vec<_>, _>>()?;
    let mut h = Tensor::cat(&embedded, 0)?;
    let mut hidden = Vec::with_capacity(m.config.num_hidden_layers);
    for i in 0..m.config.num_hidden_layers {
        h = layer(m, i, &h, &lens, src)?;
        hidden.push(h.clone());
    }
    let mut pooled = Vec::with_capacity(lens.len());
    let mut at = 0;
    for &n in &lens {
        pooled.push(h.narrow(0, at, n)?.mean(0)?);
        at += n;
    }
    let pooled = Tensor::stack(&pooled, 0)?;
    let norm = pooled
        .sqr()?
        .sum_keepdim(1)?
        .sqrt()?
        .clamp(1e-12, f64::MAX)?;
    Ok(Forward {
        hidden,
        pooled: pooled.broadcast_div(&norm)?,
    })
}

/// One encoder layer (as `MiniLm::layer`, attention per sentence).
fn layer(
    m: &MiniLm,
    i: usize,
    h: &Tensor,
    lens: &[usize],
    src: &dyn LayerSource,
) -> Result<Tensor, NetError> {
    let p = format!("encoder.layer.{i}");
    let (_, hidden) = h.dims2()?;
    let heads = m.config.num_attention_heads;
    let hd = hidden / heads;
    let q = linear(src, &format!("{p}.attention.self.query"), h)?;
    let k = linear(src, &format!("{p}.attention.self.key"), h)?;
    let v = linear(src, &format!("{p}.attention.self.value"), h)?;
    let mut ctx = Vec::with_capacity(lens.len());
    let mut at = 0;
    for &t in lens {
        // [t, hidden] → [heads, t, hd]
        let split = |x: &Tensor| -> Result<Tensor, NetError> {
            Ok(x.narrow(0, at, t)?
                .reshape((t, heads, hd))?
                .transpose(0, 1)?
                .contiguous()?)
        };
        let (qs, ks, vs) = (split(&q)?, split(&k)?, split(&v)?);
        let scores = (qs.matmul(&ks.t()?)? / (hd as f64).sqrt())?;
        let probs = candle_nn::ops::softmax(&scores, D::Minus1)?;
        ctx.push(probs.matmul(&vs)?.transpose(0, 1)?.reshape((t, hidden))?);
        at += t;
    }
    let ctx = Tensor::cat(&ctx, 0)?;
    let a = linear(src, &format!("{p}.attention.output.dense"), &ctx)?;
    let h1 = m.layer_norm(&(a + h)?, &format!("{p}.attention.output.LayerNorm"))?;
    let inter = linear(src, &format!("{p}.intermediate.dense"), &h1)?.gelu_erf()?;
    let o = linear(src, &format!("{p}.output.dense"), &inter)?;
    m.layer_norm(&(o + h1)?, &format!("{p}.output.LayerNorm"))
}

/// Weight of the pooled-embedding term against the per-layer terms.
pub const POOLED_WEIGHT: f64 = 10.0;

/// The distillation loss: `Σ_layers ‖h_s − h_t‖² / ‖h_t‖²` over the batch's tokens, plus
/// [`POOLED_WEIGHT`] · (1 − the mean cosine of the student's and teacher's sentence
/// embeddings). The teacher's tensors carry no gradient.
pub fn loss(student: &Forward, teacher: &Forward) -> Result<Tensor, NetError> {
    let mut total = Tensor::zeros((), candle_core::DType::F32, &candle_core::Device::Cpu)?;
    for (s, t) in student.hidden.iter().zip(&teacher.hidden) {
        let denom = f64::from(t.sqr()?.sum_all()?.to_scalar::<f32>()?).max(1e-12);
        total = (total + ((s - t)?.sqr()?.sum_all()? / denom)?)?;
    }
    let cos = (&student.pooled * &teacher.pooled)?.sum(1)?.mean(0)?;
    Ok((total + ((1.0 - cos)? * POOLED_WEIGHT)?)?)
}

/// Indices of `lens` cut into batches of about `batch` sentences of similar length (sorted by
/// length, so a batch's tokens are few when its sentences are short).
pub fn length_batches(lens: &[usize], batch: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lens.len()).collect();
    order.sort_by_key(|&i| (lens[i], i));
    order.chunks(batch.max(1)).map(|c| c.to_vec()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_cover_every_sentence_once_by_length() {
        let lens = [5, 1, 9, 3, 3, 7, 2];
        let b = length_batches(&lens, 3);
        assert_eq!(b.len(), 3);
        let mut all: Vec<usize> = b.concat();
        let firsts: Vec<usize> = all.iter().map(|&i| lens[i]).collect();
        assert!(firsts.windows(2).all(|w| w[0] <= w[1]), "{firsts:?}");
        all.sort_unstable();
        assert_eq!(all, (0..7).collect::<Vec<_>>());
    }
}
