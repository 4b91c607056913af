//! all-MiniLM-L6-v2: its files, the float oracle and the host-side graph.
//!
//! The graph is BERT's encoder written with candle tensor ops, its linear layers behind
//! [`Linears`] so they can be float ([`FloatLinears`]), recorded for calibration, or int8 layers
//! on an engine (`crate::quant`). Everything else — embeddings, LayerNorm, softmax attention,
//! GELU, residual adds, mean pooling — stays on the host in f32. One sentence at a time, no
//! padding: padding tokens would enter the mean pool (the model's `tokenizer.json` pads to 128
//! by default; it is switched off here).

use crate::NetError;
use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tokenizers::{Tokenizer, TruncationParams};

/// The sentence-transformers model's `max_seq_length`: longer sentences are truncated.
pub const MAX_TOKENS: usize = 256;

/// The linear layers of one encoder layer, in the order the graph applies them (suffixes of
/// `encoder.layer.<i>.`).
pub const LINEARS: [&str; 6] = [
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
];

/// A tokenized sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
}

/// The model: configuration, tokenizer, weights and the float oracle.
pub struct MiniLm {
    pub config: Config,
    tokenizer: Tokenizer,
    weights: HashMap<String, Tensor>,
    oracle: BertModel,
    dir: PathBuf,
}

/// Applies a named linear layer (`encoder.layer.<i>.<LINEARS[k]>`) to `x` (`[T, in]`, f32).
pub trait Linears {
    fn linear(&mut self, name: &str, x: &Tensor) -> Result<Tensor, NetError>;
}

/// The float weights: `y = x Wᵀ + b`.
pub struct FloatLinears<'a> {
    pub model: &'a MiniLm,
}

impl Linears for FloatLinears<'_> {
    fn linear(&mut self, name: &str, x: &Tensor) -> Result<Tensor, NetError> {
        let w = self.model.tensor(&format!("{name}.weight"))?;
        let b = self.model.tensor(&format!("{name}.bias"))?;
        Ok(x.matmul(&w.t()?)?.broadcast_add(b)?)
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, NetError> {
    std::fs::read(path).map_err(|e| NetError::io(path, e))
}

impl MiniLm {
    /// Loads `dir/config.json`, `dir/tokenizer.json` and `dir/model.safetensors`.
    pub fn load(dir: &Path) -> Result<MiniLm, NetError> {
        let bad = |path: PathBuf, why: String| NetError::Model { path, why };
        let cfg_path = dir.join("config.json");
        let config: Config = serde_json::from_slice(&read_file(&cfg_path)?)
            .map_err(|e| bad(cfg_path.clone(), format!("not a BERT configuration: {e}")))?;
        if config.num_attention_heads == 0
            || !config
                .hidden_size
                .is_multiple_of(config.num_attention_heads)
        {
            return Err(bad(
                cfg_path,
                "hidden_size is not a multiple of num_attention_heads".into(),
            ));
        }
        let tok_path = dir.join("tokenizer.json");
        let mut tokenizer = Tokenizer::from_bytes(read_file(&tok_path)?)
            .map_err(|e| bad(tok_path.clone(), format!("not a tokenizer: {e}")))?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(|e| bad(tok_path, format!("cannot set truncation: {e}")))?;
        let w_path = dir.join("model.safetensors");
        let weights = candle_core::safetensors::load_buffer(&read_file(&w_path)?, &Device::Cpu)
            .map_err(|e| bad(w_path.clone(), format!("not a safetensors file: {e}")))?;
        for (name, t) in &weights {
            if t.dtype() == DType::F32 {
                let bad_value = t
                    .flatten_all()?
                    .to_vec1::<f32>()?
                    .iter()
                    .any(|v| !v.is_finite());
                if bad_value {
                    return Err(bad(
                        w_path,
                        format!("tensor `{name}` has NaN or infinite values"),
                    ));
                }
            }
        }
        let vb = VarBuilder::from_tensors(weights.clone(), DType::F32, &Device::Cpu);
        let oracle = BertModel::load(vb, &config).map_err(|e| {
            bad(
                w_path.clone(),
                format!(
                    "not a BERT encoder with this configuration: {}",
                    first_line(&e)
                ),
            )
        })?;
        let m = MiniLm {
            config,
            tokenizer,
            weights,
            oracle,
            dir: dir.to_path_buf(),
        };
        for i in 0..m.config.num_hidden_layers {
            for l in LINEARS {
                m.tensor(&format!("encoder.layer.{i}.{l}.weight"))?;
            }
        }
        Ok(m)
    }

    /// A weight tensor by name.
    pub fn tensor(&self, name: &str) -> Result<&Tensor, NetError> {
        self.weights.get(name).ok_or_else(|| NetError::Model {
            path: self.dir.join("model.safetensors"),
            why: format!("no tensor `{name}` (unknown model layout)"),
        })
    }

    /// Names of the encoder's linear layers, in execution order.
    pub fn linear_names(&self) -> Vec<String> {
        (0..self.config.num_hidden_layers)
            .flat_map(|i| {
                LINEARS
                    .iter()
                    .map(move |l| format!("encoder.layer.{i}.{l}"))
            })
            .collect()
    }

    /// Tokenizes one sentence (`[CLS] … [SEP]`, at most [`MAX_TOKENS`]).
    pub fn tokenize(&self, s: &str) -> Result<Tokens, NetError> {
        let e = self
            .tokenizer
            .encode(s, true)
            .map_err(|e| NetError::Tensor(format!("tokenizing `{s}`: {e}")))?;
        Ok(Tokens {
            ids: e.get_ids().to_vec(),
            type_ids: e.get_type_ids().to_vec(),
        })
    }

    /// The float oracle's sentence embedding: candle-transformers' BERT, mean-pooled over the
    /// tokens and L2-normalized (sentence-transformers' Pooling + Normalize).
    pub fn oracle_embedding(&self, t: &Tokens) -> Result<Vec<f32>, NetError> {
        let ids = Tensor::new(t.ids.as_slice(), &Device::Cpu)?.unsqueeze(0)?;
        let types = Tensor::new(t.type_ids.as_slice(), &Device::Cpu)?.unsqueeze(0)?;
        let h = self.oracle.forward(&ids, &types, None)?.squeeze(0)?;
        pooled(&h)
    }

    /// The host graph's last hidden states (`[T, hidden]`), its linear layers from `lin`.
    pub fn encode(&self, t: &Tokens, lin: &mut dyn Linears) -> Result<Tensor, NetError> {
        let mut h = self.embed(t)?;
        for i in 0..self.config.num_hidden_layers {
            h = self.layer(i, &h, lin)?;
        }
        Ok(h)
    }

    /// The host graph's sentence embedding.
    pub fn embedding(&self, t: &Tokens, lin: &mut dyn Linears) -> Result<Vec<f32>, NetError> {
        pooled(&self.encode(t, lin)?)
    }

    pub(crate) fn layer_norm(&self, x: &Tensor, name: &str) -> Result<Tensor, NetError> {
        let w = self.tensor(&format!("{name}.weight"))?;
        let b = self.tensor(&format!("{name}.bias"))?;
        let mean = x.mean_keepdim(D::Minus1)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        let xn = xc.broadcast_div(&(var + self.config.layer_norm_eps)?.sqrt()?)?;
        Ok(xn.broadcast_mul(w)?.broadcast_add(b)?)
    }

    /// Word + position + token-type embeddings, then LayerNorm.
    pub(crate) fn embed(&self, t: &Tokens) -> Result<Tensor, NetError> {
        let n = t.ids.len();
        let ids = Tensor::new(t.ids.as_slice(), &Device::Cpu)?;
        let types = Tensor::new(t.type_ids.as_slice(), &Device::Cpu)?;
        let word = self
            .tensor("embeddings.word_embeddings.weight")?
            .index_select(&ids, 0)?;
        let pos = self
            .tensor("embeddings.position_embeddings.weight")?
            .narrow(0, 0, n)?;
        let ty = self
            .tensor("embeddings.token_type_embeddings.weight")?
            .index_select(&types, 0)?;
        let e = ((word + pos)? + ty)?;
        self.layer_norm(&e, "embeddings.LayerNorm")
    }

    /// One encoder layer: self-attention with its output projection, residual and LayerNorm;
    /// then the GELU feed-forward, residual and LayerNorm.
    fn layer(&self, i: usize, h: &Tensor, lin: &mut dyn Linears) -> Result<Tensor, NetError> {
        let p = format!("encoder.layer.{i}");
        let (t, hidden) = h.dims2()?;
        let heads = self.config.num_attention_heads;
        let hd = hidden / heads;
        // [T, hidden] → [heads, T, hd]
        let split = |x: Tensor| -> Result<Tensor, NetError> {
            Ok(x.reshape((t, heads, hd))?.transpose(0, 1)?.contiguous()?)
        };
        let q = split(lin.linear(&format!("{p}.attention.self.query"), h)?)?;
        let k = split(lin.linear(&format!("{p}.attention.self.key"), h)?)?;
        let v = split(lin.linear(&format!("{p}.attention.self.value"), h)?)?;
        let scores = (q.matmul(&k.t()?)? / (hd as f64).sqrt())?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let ctx = probs.matmul(&v)?.transpose(0, 1)?.reshape((t, hidden))?;
        let a = lin.linear(&format!("{p}.attention.output.dense"), &ctx)?;
        let h1 = self.layer_norm(&(a + h)?, &format!("{p}.attention.output.LayerNorm"))?;
        let inter = lin
            .linear(&format!("{p}.intermediate.dense"), &h1)?
            .gelu_erf()?;
        let o = lin.linear(&format!("{p}.output.dense"), &inter)?;
        self.layer_norm(&(o + h1)?, &format!("{p}.output.LayerNorm"))
    }
}

/// Mean over the tokens, then L2 normalization.
fn pooled(h: &Tensor) -> Result<Vec<f32>, NetError> {
    let m = h.mean(0)?;
    let norm = m.sqr()?.sum_all()?.sqrt()?.to_scalar::<f32>()?;
    Ok((m / f64::from(norm.max(1e-12)))?.to_vec1::<f32>()?)
}

fn first_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or("").to_string()
}
