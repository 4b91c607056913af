//! The weight reader's vocabulary: a loaded [`Tensor`] and every [`WeightsError`] (each one line,
//! starting with the file). Its own module because the entry point and each format's reader all
//! use it.

use std::path::PathBuf;

/// One weight tensor, as f32, C order.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// The tensor's name in the file (for `.npy`, the file stem, e.g. `fc1.weight` for
    /// `fc1.weight.npy`).
    pub name: String,
    /// `[out, in]` (fully connected) or `[cout, cin, kh, kw]` (convolution); no dimension is 0.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` finite values in C (row-major) order.
    pub data: Vec<f32>,
    /// the matching bias (`<prefix>.bias` for `<prefix>.weight`), if the file has one
    pub bias: Option<Vec<f32>>,
}

impl Tensor {
    /// Output channels: `shape[0]`.
    pub fn rows(&self) -> usize {
        self.shape.first().copied().unwrap_or(0)
    }

    /// Inputs per output channel (`in`, or `cin·kh·kw` for a convolution): the weight seen as a
    /// `rows() × cols()` matrix, which is how the decomposition treats both kinds.
    pub fn cols(&self) -> usize {
        self.shape.iter().skip(1).product()
    }
}

/// A named array of any rank loaded by [`super::load_arrays`] (a batch norm's statistics), as
/// f32, C order, every value finite.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Everything that can go wrong in [`load`]. Every message is one line and starts with the file.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("{}: cannot read the file: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {} (supported: .safetensors, .npy)", path.display(), extension_problem(extension))]
    UnsupportedFormat {
        path: PathBuf,
        /// The extension found, without the dot, if there is one.
        extension: Option<String>,
    },
    #[error("{}: not a valid {format} file: {reason}", path.display())]
    Malformed {
        path: PathBuf,
        /// `safetensors` or `.npy`.
        format: &'static str,
        reason: String,
    },
    #[error(
        "{}: tensor `{tensor}` has dtype {dtype}, which cannot be loaded (supported: {supported})",
        path.display()
    )]
    UnsupportedDtype {
        path: PathBuf,
        tensor: String,
        dtype: String,
        supported: &'static str,
    },
    #[error("{}: invalid selection pattern `{pattern}`: {reason}", path.display())]
    BadPattern {
        path: PathBuf,
        pattern: String,
        reason: String,
    },
    #[error("{}: `{pattern}` matches no tensor; {}", path.display(), names_hint(examples, *total))]
    NoMatch {
        path: PathBuf,
        pattern: String,
        /// Up to a few `name [shape]` entries, the ones most like `pattern` first.
        examples: Vec<String>,
        /// How many tensors the file has.
        total: usize,
    },
    #[error(
        "{}: no tensor of rank ≥ 2 has a name ending in `weight`; {}; name the tensors to load",
        path.display(),
        names_hint(examples, *total)
    )]
    NothingSelected {
        path: PathBuf,
        examples: Vec<String>,
        total: usize,
    },
    #[error(
        "{}: tensor `{tensor}` has shape {shape:?} (rank {}); only rank 2 [out, in] (fully \
         connected) and rank 4 [cout, cin, kh, kw] (convolution) can be decomposed",
        path.display(),
        shape.len()
    )]
    BadRank {
        path: PathBuf,
        tensor: String,
        shape: Vec<usize>,
    },
    #[error("{}: tensor `{tensor}` has shape {shape:?}, which has a zero-sized dimension", path.display())]
    ZeroDim {
        path: PathBuf,
        tensor: String,
        shape: Vec<usize>,
    },
    #[error(
        "{}: tensor `{tensor}` has a non-finite value {value} at flat index {index} \
         (index {coords:?} of shape {shape:?})",
        path.display()
    )]
    NonFinite {
        path: PathBuf,
        tensor: String,
        index: usize,
        coords: Vec<usize>,
        shape: Vec<usize>,
        value: f64,
    },
    #[error(
        "{}: tensor `{tensor}` has value {value:e} at flat index {index} (index {coords:?} of \
         shape {shape:?}), which does not fit in f32",
        path.display()
    )]
    OutOfRange {
        path: PathBuf,
        tensor: String,
        index: usize,
        coords: Vec<usize>,
        shape: Vec<usize>,
        value: f64,
    },
    #[error(
        "{}: bias `{bias}` has shape {bias_shape:?}, but `{weight}` has {out} outputs \
         (expected shape [{out}])",
        path.display()
    )]
    BadBias {
        path: PathBuf,
        weight: String,
        bias: String,
        bias_shape: Vec<usize>,
        out: usize,
    },
}

fn extension_problem(extension: &Option<String>) -> String {
    match extension {
        Some(ext) => format!("`.{ext}` is not a weight file type this loader reads"),
        None => "the file name has no extension, so its format is unknown".into(),
    }
}

/// ``the file has 3 tensors: `a` [2, 3], …``: the tail of the "nothing matched" messages.
fn names_hint(examples: &[String], total: usize) -> String {
    if total == 0 {
        return "the file has no tensors".into();
    }
    let list = examples
        .iter()
        .map(|e| e.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let noun = if total == 1 { "tensor" } else { "tensors" };
    if examples.len() < total {
        format!("the file has {total} {noun}, e.g. {list}, …")
    } else {
        format!("the file has {total} {noun}: {list}")
    }
}

/// A library's error message on one line (some span several).
pub(super) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
