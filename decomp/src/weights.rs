//! Loading trained weight tensors (`.safetensors` or `.npy`) for the SmartDeal decomposition.
//!
//! [`load`] returns each selected weight as `f32` in C order, with its bias when the file has
//! one, after checking everything the decomposition relies on: rank 2 (`[out, in]`, fully
//! connected) or rank 4 (`[cout, cin, kh, kw]`, convolution), no zero-sized dimension, and every
//! value finite. Weight files come from elsewhere and are treated as untrusted: a malformed,
//! truncated or crafted file gives a one-line [`WeightsError`] that names the file (and the
//! tensor), never a panic and never an allocation sized by an unchecked header field.
//!
//! # Order of the result
//!
//! * `.safetensors`: the order in which the tensors' data is stored in the file (ascending
//!   `data_offsets`; ties, which only empty tensors can have, are broken by name). Files written
//!   by the `safetensors` library (Python `save_file`, Rust `serialize`) store tensors sorted by
//!   dtype and then by name, so for a single-dtype file this is plain byte-wise name order
//!   (`layer.10` comes before `layer.2`). When several selectors match, the union is returned in
//!   this order, each tensor once.
//! * `.npy`: the file holds one array; it is returned at most once.
//!
//! # Formats
//!
//! * safetensors: dtypes F32, F16, BF16 (exactly widened to f32) and F64 (rounded to f32; a
//!   finite value beyond the f32 range is an error). Other dtypes are errors when selected.
//! * npy: `'<f2'`, `'<f4'`, `'<f8'` (and their big-endian `'>'` forms); any rank is read, and as
//!   for safetensors only rank 2 or 4 passes the checks. Fortran-order arrays are transposed into
//!   C order, so `np.save(w.T)` loads with the values and shape of `w.T`. npy files have no bias.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use half::{bf16, f16};
use safetensors::tensor::{Dtype, TensorInfo};
use safetensors::{SafeTensorError, SafeTensors};

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

/// How many names a "nothing matched" error lists.
const HINT_NAMES: usize = 6;

const SAFETENSORS_SUPPORTED: &str = "F32, F16, BF16, F64";
const NPY_SUPPORTED: &str = "'<f2', '<f4', '<f8' (float16/32/64)";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Safetensors,
    Npy,
}

/// Loads tensors from `path` (.safetensors or .npy, chosen by extension; anything else: error
/// naming the supported ones).
///
/// `select`: tensor names or glob patterns (`encoder.layer.*.attention.self.query.weight`,
/// `*.weight`); empty = every tensor of rank ≥ 2 whose name ends in `weight` (for .npy the single
/// array, named after the file stem).
///
/// A selector that is exactly the name of a tensor selects that tensor, even if it contains glob
/// characters; otherwise it is a glob (`*`, `?`, `[a-z]`, `{a,b}`; `*` also matches `.`). Every
/// selector must match at least one tensor. Every tensor a selector matches must pass the checks
/// (rank 2 or 4, no zero dimension, supported dtype, finite values): a pattern such as `*.weight`
/// that also matches a LayerNorm weight (rank 1) is an error rather than a silent skip, so a
/// selection never loads less than it appears to. A `<prefix>.weight` tensor gets the
/// `<prefix>.bias` of the same file as its bias (safetensors only).
///
/// The order of the result is described in the module documentation: file storage order for
/// safetensors, deterministic for a given file.
pub fn load(path: &Path, select: &[String]) -> Result<Vec<Tensor>, WeightsError> {
    let format = format_of(path)?;
    // Read rather than memory-map: mapping is `unsafe` and undefined behaviour if another process
    // truncates the file while we hold it, and a 100 MB read costs a fraction of a second.
    let bytes = std::fs::read(path).map_err(|source| WeightsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    load_bytes(path, format, &bytes, select)
}

fn format_of(path: &Path) -> Result<Format, WeightsError> {
    let ext = path.extension().map(|e| e.to_string_lossy().into_owned());
    match ext.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("safetensors") => Ok(Format::Safetensors),
        Some("npy") => Ok(Format::Npy),
        _ => Err(WeightsError::UnsupportedFormat {
            path: path.to_path_buf(),
            extension: ext,
        }),
    }
}

/// [`load`] on file contents already in memory; `path` is only used in messages (and, for npy,
/// for the array's name).
fn load_bytes(
    path: &Path,
    format: Format,
    bytes: &[u8],
    select: &[String],
) -> Result<Vec<Tensor>, WeightsError> {
    match format {
        Format::Safetensors => load_safetensors(path, bytes, select),
        Format::Npy => load_npy(path, bytes, select),
    }
}

// ---------------------------------------------------------------------------------------------
// Selection

/// Indices (ascending, each once) of the entries `select` picks. `entries` are `(name, shape)` in
/// file order; with an empty `select`, `default` decides.
fn select_indices(
    path: &Path,
    entries: &[(&str, &[usize])],
    select: &[String],
    default: impl Fn(&str, &[usize]) -> bool,
) -> Result<Vec<usize>, WeightsError> {
    if select.is_empty() {
        let picked: Vec<usize> = (0..entries.len())
            .filter(|&i| default(entries[i].0, entries[i].1))
            .collect();
        if picked.is_empty() {
            let order: Vec<usize> = (0..entries.len()).collect();
            return Err(WeightsError::NothingSelected {
                path: path.to_path_buf(),
                examples: describe_entries(entries, &order),
                total: entries.len(),
            });
        }
        return Ok(picked);
    }

    let by_name: HashMap<&str, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, (name, _))| (*name, i))
        .collect();
    let mut picked = vec![false; entries.len()];
    for pattern in select {
        if let Some(&i) = by_name.get(pattern.as_str()) {
            picked[i] = true;
            continue;
        }
        // Backslash escapes on every platform (globset's default differs on Windows), and `*`
        // crosses `.`: tensor names are not paths.
        let matcher = globset::GlobBuilder::new(pattern)
            .literal_separator(false)
            .backslash_escape(true)
            .build()
            .map_err(|e| WeightsError::BadPattern {
                path: path.to_path_buf(),
                pattern: pattern.clone(),
                reason: e.kind().to_string(),
            })?
            .compile_matcher();
        // A glob picks only tensors of a decomposable rank (2 or 4), so that `*.weight` on a
        // transformer skips the rank-1 LayerNorm scales; a glob that matches nothing else is an
        // error naming the first tensor it did match and its rank.
        let mut any = false;
        let mut wrong_rank = None;
        for (i, (name, shape)) in entries.iter().enumerate() {
            if matcher.is_match(name) {
                if matches!(shape.len(), 2 | 4) {
                    picked[i] = true;
                    any = true;
                } else if wrong_rank.is_none() {
                    wrong_rank = Some((*name, *shape));
                }
            }
        }
        if let (false, Some((name, shape))) = (any, wrong_rank) {
            check_shape(path, name, shape)?;
        }
        if !any {
            return Err(WeightsError::NoMatch {
                path: path.to_path_buf(),
                pattern: pattern.clone(),
                examples: describe_entries(entries, &closest_names(entries, pattern)),
                total: entries.len(),
            });
        }
    }
    Ok((0..entries.len()).filter(|&i| picked[i]).collect())
}

/// Entry indices ordered by how long a prefix their name shares with the literal start of
/// `pattern` (then file order), so that a mistyped `encoder.layer.*.attention.self.qurey.weight`
/// lists the `encoder.layer.…` tensors rather than the embeddings that happen to come first.
fn closest_names(entries: &[(&str, &[usize])], pattern: &str) -> Vec<usize> {
    let literal = pattern
        .find(['*', '?', '[', '{', '\\'])
        .map_or(pattern, |at| &pattern[..at]);
    let shared = |name: &str| {
        name.bytes()
            .zip(literal.bytes())
            .take_while(|(a, b)| a == b)
            .count()
    };
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(shared(entries[i].0)), i));
    order
}

/// The first few of `order`, each as `` `name` [shape] ``.
fn describe_entries(entries: &[(&str, &[usize])], order: &[usize]) -> Vec<String> {
    order
        .iter()
        .take(HINT_NAMES)
        .map(|&i| format!("`{}` {:?}", entries[i].0, entries[i].1))
        .collect()
}

/// The default selection: what a weight matrix or convolution kernel is called in PyTorch-style
/// state dicts. Rank-1 `…weight` tensors are LayerNorm/BatchNorm scales, not decomposable.
fn is_default_weight(name: &str, shape: &[usize]) -> bool {
    matches!(shape.len(), 2 | 4) && name.ends_with("weight")
}

// ---------------------------------------------------------------------------------------------
// Checks shared by both formats

fn check_shape(path: &Path, tensor: &str, shape: &[usize]) -> Result<(), WeightsError> {
    if !matches!(shape.len(), 2 | 4) {
        return Err(WeightsError::BadRank {
            path: path.to_path_buf(),
            tensor: tensor.to_string(),
            shape: shape.to_vec(),
        });
    }
    if shape.contains(&0) {
        return Err(WeightsError::ZeroDim {
            path: path.to_path_buf(),
            tensor: tensor.to_string(),
            shape: shape.to_vec(),
        });
    }
    Ok(())
}

/// The C-order multi-index of flat index `i` (for error messages).
fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut coords = vec![0; shape.len()];
    for (c, &d) in coords.iter_mut().zip(shape).rev() {
        if d == 0 {
            return Vec::new();
        }
        *c = i % d;
        i /= d;
    }
    coords
}

/// Rejects NaN/±Inf: the decomposition's least squares would turn one into garbage everywhere.
fn check_finite(
    path: &Path,
    tensor: &str,
    shape: &[usize],
    values: &[f32],
) -> Result<(), WeightsError> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(index) => Err(WeightsError::NonFinite {
            path: path.to_path_buf(),
            tensor: tensor.to_string(),
            index,
            coords: unravel(index, shape),
            shape: shape.to_vec(),
            value: f64::from(values[index]),
        }),
    }
}

/// f64 → f32, rejecting non-finite values and finite ones the narrowing would turn into ±Inf.
fn narrow_f64(
    path: &Path,
    tensor: &str,
    shape: &[usize],
    values: impl ExactSizeIterator<Item = f64>,
) -> Result<Vec<f32>, WeightsError> {
    let mut out = Vec::with_capacity(values.len());
    for (index, v) in values.enumerate() {
        let narrowed = v as f32;
        if !narrowed.is_finite() {
            let (path, tensor) = (path.to_path_buf(), tensor.to_string());
            let (coords, shape) = (unravel(index, shape), shape.to_vec());
            return Err(if v.is_finite() {
                WeightsError::OutOfRange {
                    path,
                    tensor,
                    index,
                    coords,
                    shape,
                    value: v,
                }
            } else {
                WeightsError::NonFinite {
                    path,
                    tensor,
                    index,
                    coords,
                    shape,
                    value: v,
                }
            });
        }
        out.push(narrowed);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// safetensors

fn load_safetensors(
    path: &Path,
    bytes: &[u8],
    select: &[String],
) -> Result<Vec<Tensor>, WeightsError> {
    let (header_len, metadata) =
        SafeTensors::read_metadata(bytes).map_err(|e| safetensors_error(path, bytes, &e))?;
    let malformed = |reason: String| WeightsError::Malformed {
        path: path.to_path_buf(),
        format: "safetensors",
        reason,
    };
    // read_metadata has checked that 8 + header + data is exactly the file; `get` keeps a broken
    // invariant an error rather than a panic.
    let data = 8usize
        .checked_add(header_len)
        .and_then(|start| bytes.get(start..))
        .ok_or_else(|| malformed("the header runs past the end of the file".into()))?;

    let mut infos: Vec<(String, &TensorInfo)> = metadata.tensors().into_iter().collect();
    infos.sort_by(|(an, a), (bn, b)| a.data_offsets.cmp(&b.data_offsets).then(an.cmp(bn)));
    let entries: Vec<(&str, &[usize])> = infos
        .iter()
        .map(|(name, info)| (name.as_str(), info.shape.as_slice()))
        .collect();
    let picked = select_indices(path, &entries, select, is_default_weight)?;

    let mut out = Vec::with_capacity(picked.len());
    for i in picked {
        let (name, info) = &infos[i];
        check_shape(path, name, &info.shape)?;
        let values = decode_safetensor(path, name, info, data)?;
        let bias = match name.strip_suffix(".weight") {
            None => None,
            Some(prefix) => {
                let bias_name = format!("{prefix}.bias");
                match metadata.info(&bias_name) {
                    None => None,
                    Some(bias_info) => {
                        let out_channels = info.shape[0];
                        if bias_info.shape != [out_channels] {
                            return Err(WeightsError::BadBias {
                                path: path.to_path_buf(),
                                weight: name.clone(),
                                bias: bias_name,
                                bias_shape: bias_info.shape.clone(),
                                out: out_channels,
                            });
                        }
                        Some(decode_safetensor(path, &bias_name, bias_info, data)?)
                    }
                }
            }
        };
        out.push(Tensor {
            name: name.clone(),
            shape: info.shape.clone(),
            data: values,
            bias,
        });
    }
    Ok(out)
}

/// The tensor's values as f32, checked finite. `data` is the file after the header.
fn decode_safetensor(
    path: &Path,
    name: &str,
    info: &TensorInfo,
    data: &[u8],
) -> Result<Vec<f32>, WeightsError> {
    let malformed = |reason: String| WeightsError::Malformed {
        path: path.to_path_buf(),
        format: "safetensors",
        reason,
    };
    let (start, end) = info.data_offsets;
    let raw = data
        .get(start..end)
        .ok_or_else(|| malformed(format!("tensor `{name}`'s data lies outside the file")))?;
    let count = info
        .shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| malformed(format!("tensor `{name}`'s shape is too large")))?;
    let size = info.dtype.size();
    if count.checked_mul(size) != Some(raw.len()) {
        return Err(malformed(format!(
            "tensor `{name}` has {} data bytes, but shape {:?} of {:?} needs {count} × {size}",
            raw.len(),
            info.shape,
            info.dtype
        )));
    }
    let shape = info.shape.as_slice();
    let values: Vec<f32> = match info.dtype {
        Dtype::F32 => raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => raw
            .chunks_exact(2)
            .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => raw
            .chunks_exact(2)
            .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::F64 => {
            let wide = raw
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]));
            return narrow_f64(path, name, shape, wide);
        }
        other => {
            return Err(WeightsError::UnsupportedDtype {
                path: path.to_path_buf(),
                tensor: name.to_string(),
                dtype: format!("{other:?}"),
                supported: SAFETENSORS_SUPPORTED,
            })
        }
    };
    check_finite(path, name, shape, &values)?;
    Ok(values)
}

/// Turns a `read_metadata` failure into an error that says what is wrong and where. The crate's
/// own errors are terse (`InvalidHeaderDeserialization`, `MetadataIncompleteBuffer`) and do not
/// name the tensor, so the header is re-examined here; the crate's verdict is only the fallback.
fn safetensors_error(path: &Path, bytes: &[u8], err: &SafeTensorError) -> WeightsError {
    let reason = match diagnose_safetensors(bytes) {
        Diagnosis::Dtype { tensor, dtype } => {
            return WeightsError::UnsupportedDtype {
                path: path.to_path_buf(),
                tensor,
                dtype,
                supported: SAFETENSORS_SUPPORTED,
            }
        }
        Diagnosis::Problem(reason) => reason,
        Diagnosis::Unknown => describe_safetensors_error(err),
    };
    WeightsError::Malformed {
        path: path.to_path_buf(),
        format: "safetensors",
        reason,
    }
}

enum Diagnosis {
    /// A tensor has a dtype string the `safetensors` crate does not know (`F8_E8M0`, `C64`, …).
    Dtype {
        tensor: String,
        dtype: String,
    },
    Problem(String),
    Unknown,
}

/// The crate's limit on the header size; anything larger is not a safetensors file.
const SAFETENSORS_MAX_HEADER: u64 = 100_000_000;

/// Finds the first thing wrong with a safetensors file, in the order a reader meets it. Uses
/// only checked arithmetic: the input is whatever made `read_metadata` fail.
fn diagnose_safetensors(bytes: &[u8]) -> Diagnosis {
    use serde_json::Value;
    let problem = Diagnosis::Problem;
    let len = bytes.len() as u64;
    let Some(prefix) = bytes.get(..8) else {
        return problem(format!(
            "the file is only {len} bytes; a safetensors file starts with an 8-byte header length \
             (truncated, or not a safetensors file)"
        ));
    };
    let mut n = [0u8; 8];
    n.copy_from_slice(prefix);
    let n = u64::from_le_bytes(n);
    if n > len - 8 {
        return problem(format!(
            "the header length field says {n} bytes but only {} bytes follow it (truncated, or \
             not a safetensors file)",
            len - 8
        ));
    }
    if n > SAFETENSORS_MAX_HEADER {
        return problem(format!(
            "the header length field says {n} bytes, more than the 100 MB limit (not a \
             safetensors file?)"
        ));
    }
    // n ≤ len - 8, so the slice is in bounds and the casts lossless.
    let header_end = 8 + n as usize;
    let Ok(text) = std::str::from_utf8(&bytes[8..header_end]) else {
        return problem("the header is not UTF-8 text (not a safetensors file?)".into());
    };
    let map: serde_json::Map<String, Value> = match serde_json::from_str(text) {
        Ok(map) => map,
        Err(e) => return problem(format!("the header is not a JSON object: {e}")),
    };

    let mut spans: Vec<(u64, u64, &str)> = Vec::with_capacity(map.len());
    for (name, value) in &map {
        if name == "__metadata__" {
            let ok = value
                .as_object()
                .is_some_and(|m| m.values().all(Value::is_string));
            if !ok {
                return problem("`__metadata__` must map strings to strings".into());
            }
            continue;
        }
        let field = |key: &str| value.as_object().and_then(|o| o.get(key));
        let Some(dtype_text) = field("dtype").and_then(Value::as_str) else {
            return problem(format!("tensor `{name}` has no `dtype` string"));
        };
        // Ask the crate itself which dtype names it knows, rather than keeping a copy of its list.
        let Ok(dtype) = serde_json::from_value::<Dtype>(Value::String(dtype_text.to_string()))
        else {
            return Diagnosis::Dtype {
                tensor: name.clone(),
                dtype: dtype_text.to_string(),
            };
        };
        let shape: Option<Vec<u64>> = field("shape")
            .and_then(Value::as_array)
            .and_then(|dims| dims.iter().map(Value::as_u64).collect());
        let Some(shape) = shape else {
            return problem(format!(
                "tensor `{name}` has no `shape` list of non-negative integers"
            ));
        };
        let offsets: Option<Vec<u64>> = field("data_offsets")
            .and_then(Value::as_array)
            .and_then(|o| o.iter().map(Value::as_u64).collect());
        let Some(&[start, end]) = offsets.as_deref() else {
            return problem(format!(
                "tensor `{name}` has no `data_offsets` pair of non-negative integers"
            ));
        };
        let need = shape
            .iter()
            .try_fold(dtype.size() as u64, |n, &d| n.checked_mul(d));
        let Some(need) = need else {
            return problem(format!(
                "tensor `{name}` has shape {shape:?}, which is too large"
            ));
        };
        if end < start || end - start != need {
            return problem(format!(
                "tensor `{name}` has data_offsets [{start}, {end}], but shape {shape:?} of \
                 {dtype:?} needs {need} bytes"
            ));
        }
        spans.push((start, end, name));
    }

    spans.sort_unstable();
    let mut at = 0u64;
    for &(start, end, name) in &spans {
        if start != at {
            let what = if start < at {
                "overlaps"
            } else {
                "leaves a gap after"
            };
            return problem(format!(
                "tensor `{name}`'s data (bytes {start}..{end}) {what} the previous tensor's \
                 (which ends at {at})"
            ));
        }
        at = end;
    }
    let expected = at.checked_add(header_end as u64);
    match expected {
        Some(e) if e > len => problem(format!(
            "the file is truncated: the header describes {e} bytes but the file has {len}"
        )),
        Some(e) if e < len => problem(format!(
            "{} unexpected bytes follow the last tensor's data",
            len - e
        )),
        None => problem("the tensor data is too large".into()),
        Some(_) => Diagnosis::Unknown,
    }
}

fn describe_safetensors_error(err: &SafeTensorError) -> String {
    match err {
        SafeTensorError::HeaderTooSmall => "the file is too short for a safetensors header".into(),
        SafeTensorError::HeaderTooLarge | SafeTensorError::InvalidHeaderLength => {
            "the header length field is larger than the file (truncated, or not a safetensors \
             file)"
                .into()
        }
        SafeTensorError::InvalidHeader | SafeTensorError::InvalidHeaderStart => {
            "the header is not UTF-8 JSON".into()
        }
        SafeTensorError::InvalidHeaderDeserialization => {
            "the header is not a valid safetensors JSON header".into()
        }
        SafeTensorError::InvalidOffset(name) => format!("tensor `{name}` has invalid data_offsets"),
        SafeTensorError::TensorInvalidInfo => {
            "a tensor's data_offsets do not match its shape and dtype".into()
        }
        SafeTensorError::MetadataIncompleteBuffer => {
            "the tensor data does not end at the end of the file".into()
        }
        SafeTensorError::ValidationOverflow => "a tensor's shape is too large".into(),
        other => one_line(&format!("{other:?}")),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

// ---------------------------------------------------------------------------------------------
// npy

/// What the strict header parser found; see [`parse_npy_header`].
struct NpyLayout {
    descr: String,
    fortran: bool,
    shape: Vec<u64>,
    data_start: usize,
}

enum NpyProblem {
    Malformed(String),
    /// `descr` is a list: a structured (record) dtype.
    Structured,
}

/// Longest header accepted. numpy's own `np.load` refuses headers over 10 000 bytes by default;
/// a float array's header is about 100.
const NPY_MAX_HEADER: usize = 65_536;
/// numpy allows at most 64 dimensions; far fewer make sense for weights.
const NPY_MAX_RANK: usize = 32;

fn load_npy(path: &Path, bytes: &[u8], select: &[String]) -> Result<Vec<Tensor>, WeightsError> {
    let malformed = |reason: String| WeightsError::Malformed {
        path: path.to_path_buf(),
        format: ".npy",
        reason,
    };
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let unsupported = |descr: &str| WeightsError::UnsupportedDtype {
        path: path.to_path_buf(),
        tensor: name.clone(),
        dtype: format!("'{descr}'"),
        supported: NPY_SUPPORTED,
    };

    // npyz trusts its header: a crafted shape overflows its element count (a panic in debug
    // builds), a huge declared header length is allocated before it is read, and deeply nested
    // literals recurse in its parser. So the header is first parsed here with a strict grammar
    // (exactly what numpy writes) and every size checked; npyz only sees headers that pass.
    let layout = match parse_npy_header(bytes) {
        Ok(layout) => layout,
        Err(NpyProblem::Malformed(reason)) => return Err(malformed(reason)),
        Err(NpyProblem::Structured) => return Err(unsupported("structured record")),
    };
    let typestr: npyz::TypeStr = layout
        .descr
        .parse()
        .map_err(|_| unsupported(&layout.descr))?;
    let item_size: u64 = match (
        typestr.endianness(),
        typestr.type_char(),
        typestr.size_field(),
    ) {
        (
            npyz::Endianness::Little | npyz::Endianness::Big,
            npyz::TypeChar::Float,
            s @ (2 | 4 | 8),
        ) if typestr.time_units().is_none() => s,
        _ => return Err(unsupported(&layout.descr)),
    };
    let count = layout
        .shape
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d))
        .ok_or_else(|| malformed(format!("shape {:?} is too large", layout.shape)))?;
    let have = (bytes.len() - layout.data_start) as u64;
    match count.checked_mul(item_size) {
        Some(need) if need == have => {}
        Some(need) if need > have => {
            return Err(malformed(format!(
                "the data is truncated: shape {:?} of '{}' needs {need} bytes but {have} follow \
                 the header",
                layout.shape, layout.descr
            )))
        }
        Some(need) => {
            return Err(malformed(format!(
                "{} unexpected bytes follow the {need} data bytes of shape {:?} of '{}'",
                have - need,
                layout.shape,
                layout.descr
            )))
        }
        None => return Err(malformed(format!("shape {:?} is too large", layout.shape))),
    }
    // Every dimension is now at most the element count, which fits in memory.
    let shape: Vec<usize> = layout
        .shape
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<_, _>>()
        .map_err(|_| malformed(format!("shape {:?} is too large", layout.shape)))?;

    let entries = [(name.as_str(), shape.as_slice())];
    if select_indices(path, &entries, select, |_, _| true)?.is_empty() {
        return Ok(Vec::new());
    }
    check_shape(path, &name, &shape)?;

    let header =
        npyz::NpyHeader::from_reader(bytes).map_err(|e| malformed(one_line(&e.to_string())))?;
    let expected_order = if layout.fortran {
        npyz::Order::Fortran
    } else {
        npyz::Order::C
    };
    if header.shape() != layout.shape.as_slice()
        || header.order() != expected_order
        || header.dtype() != npyz::DType::Plain(typestr)
    {
        // Cannot happen for headers our grammar accepts; refuse rather than guess.
        return Err(malformed("npyz reads the header differently".into()));
    }
    let reader = npyz::NpyFile::with_header(header, &bytes[layout.data_start..]);
    let io_error = |e: std::io::Error| malformed(one_line(&e.to_string()));
    let values = match item_size {
        2 => {
            let raw: Vec<f16> = reader.into_vec().map_err(io_error)?;
            let values: Vec<f32> = reorder(raw, &shape, layout.fortran)
                .into_iter()
                .map(f16::to_f32)
                .collect();
            check_finite(path, &name, &shape, &values)?;
            values
        }
        4 => {
            let raw: Vec<f32> = reader.into_vec().map_err(io_error)?;
            let values = reorder(raw, &shape, layout.fortran);
            check_finite(path, &name, &shape, &values)?;
            values
        }
        _ => {
            let raw: Vec<f64> = reader.into_vec().map_err(io_error)?;
            let values = reorder(raw, &shape, layout.fortran);
            narrow_f64(path, &name, &shape, values.into_iter())?
        }
    };
    if values.len() != shape.iter().product::<usize>() {
        return Err(malformed("the data does not fill the shape".into()));
    }
    Ok(vec![Tensor {
        name,
        shape,
        data: values,
        bias: None,
    }])
}

/// `data` in C order: unchanged if it already is, else transposed from Fortran order (first
/// index fastest). Dimensions are non-zero and `data.len()` is their product.
fn reorder<T: Copy>(data: Vec<T>, shape: &[usize], fortran: bool) -> Vec<T> {
    if !fortran || shape.len() < 2 || data.is_empty() {
        return data;
    }
    // Fortran stride of axis k: the product of the dimensions before it.
    let strides: Vec<usize> = shape
        .iter()
        .scan(1usize, |acc, &d| {
            let stride = *acc;
            *acc *= d;
            Some(stride)
        })
        .collect();
    let mut out = Vec::with_capacity(data.len());
    let mut index = vec![0usize; shape.len()];
    let mut src = 0usize;
    for _ in 0..data.len() {
        out.push(data[src]);
        // Step the C-order multi-index (last axis fastest), keeping `src` in step with it.
        for k in (0..shape.len()).rev() {
            index[k] += 1;
            src += strides[k];
            if index[k] < shape[k] {
                break;
            }
            src -= strides[k] * shape[k];
            index[k] = 0;
        }
    }
    out
}

/// Parses the preamble and header dict of a `.npy` file with a strict grammar: exactly the dict
/// numpy (and npyz) write — keys `descr` (a string), `fortran_order` (`True`/`False`) and
/// `shape` (a tuple of decimal integers) in any order, quotes `'` or `"`, optional trailing
/// commas, then only whitespace. Anything this accepts means the same thing to npyz's general
/// Python-literal parser, so the sizes checked here are the sizes npyz will use.
fn parse_npy_header(bytes: &[u8]) -> Result<NpyLayout, NpyProblem> {
    const MAGIC: &[u8] = b"\x93NUMPY";
    let bad = |s: String| Err(NpyProblem::Malformed(s));
    if !bytes.starts_with(MAGIC) {
        return if MAGIC.starts_with(bytes) {
            bad("the file ends inside the \\x93NUMPY magic".into())
        } else {
            bad("it does not start with the \\x93NUMPY magic".into())
        };
    }
    let (Some(&major), Some(&minor)) = (bytes.get(6), bytes.get(7)) else {
        return bad("the file ends inside the format version".into());
    };
    // Version 1 has a 2-byte header length, versions 2 and 3 a 4-byte one.
    let text_start = match (major, minor) {
        (1, 0) => 10,
        (2, 0) | (3, 0) => 12,
        _ => return bad(format!("unsupported .npy format version {major}.{minor}")),
    };
    let Some(len_field) = bytes.get(8..text_start) else {
        return bad("the file ends inside the header length field".into());
    };
    let header_len = len_field
        .iter()
        .rev()
        .fold(0usize, |n, &b| (n << 8) | usize::from(b));
    let available = bytes.len() - text_start;
    if header_len > available {
        return bad(format!(
            "the header declares {header_len} bytes but only {available} follow (truncated)"
        ));
    }
    if header_len > NPY_MAX_HEADER {
        return bad(format!(
            "the header declares {header_len} bytes, more than the {NPY_MAX_HEADER} accepted"
        ));
    }
    let data_start = text_start + header_len;
    let text = &bytes[text_start..data_start];

    let mut p = Parser { s: text, i: 0 };
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    p.ws();
    p.expect(b'{')?;
    loop {
        p.ws();
        if p.eat(b'}') {
            break;
        }
        let key = p.string()?;
        p.ws();
        p.expect(b':')?;
        p.ws();
        let duplicate = match key {
            "descr" => {
                if p.peek() == Some(b'[') {
                    return Err(NpyProblem::Structured);
                }
                descr.replace(p.string()?.to_string()).is_some()
            }
            "fortran_order" => {
                let value = if p.eat_word(b"True") {
                    true
                } else if p.eat_word(b"False") {
                    false
                } else {
                    return bad("'fortran_order' is not True or False".into());
                };
                fortran.replace(value).is_some()
            }
            "shape" => shape.replace(p.shape()?).is_some(),
            other => return bad(format!("unexpected key '{other}' in the header")),
        };
        if duplicate {
            return bad(format!("the header repeats the key '{key}'"));
        }
        p.ws();
        if !p.eat(b',') {
            p.ws();
            p.expect(b'}')?;
            break;
        }
    }
    p.ws();
    if p.i != text.len() {
        return bad("unexpected text after the header dict".into());
    }
    let (Some(descr), Some(fortran), Some(shape)) = (descr, fortran, shape) else {
        return bad("the header lacks one of 'descr', 'fortran_order', 'shape'".into());
    };
    // npyz also multiplies the dimensions partially (strides), where a zero does not help, so
    // the non-zero dimensions alone must not overflow either.
    let nonzero = shape
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(1u64, |n, &d| n.checked_mul(d));
    if nonzero.is_none() {
        return bad(format!("shape {shape:?} is too large"));
    }
    Ok(NpyLayout {
        descr,
        fortran,
        shape,
        data_start,
    })
}

/// A cursor over the header text for [`parse_npy_header`].
struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// A keyword not followed by more identifier characters (`True`, not `Trueish`).
    fn eat_word(&mut self, word: &[u8]) -> bool {
        let rest = &self.s[self.i..];
        let follows = rest.get(word.len()).copied();
        if rest.starts_with(word)
            && !follows.is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_')
        {
            self.i += word.len();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), NpyProblem> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("`{}`", char::from(c))))
        }
    }

    fn unexpected(&self, wanted: &str) -> NpyProblem {
        let found = match self.peek() {
            None => "the end of the header".to_string(),
            Some(c) if c.is_ascii_graphic() => format!("`{}`", char::from(c)),
            Some(c) => format!("byte 0x{c:02x}"),
        };
        NpyProblem::Malformed(format!(
            "header dict: expected {wanted} at offset {}, found {found}",
            self.i
        ))
    }

    /// A quoted string without escapes (numpy never writes any in these headers).
    fn string(&mut self) -> Result<&'a str, NpyProblem> {
        let quote = match self.peek() {
            Some(q @ (b'\'' | b'"')) => q,
            _ => return Err(self.unexpected("a quoted string")),
        };
        let start = self.i + 1;
        let len = self.s[start..]
            .iter()
            .position(|&c| c == quote || c == b'\\' || c == b'\n')
            .ok_or_else(|| self.unexpected("a closing quote"))?;
        let end = start + len;
        if self.s[end] != quote {
            self.i = end;
            return Err(self.unexpected("a closing quote"));
        }
        self.i = end + 1;
        std::str::from_utf8(&self.s[start..end])
            .map_err(|_| NpyProblem::Malformed("header dict: a string is not UTF-8".into()))
    }

    /// A decimal integer as Python writes it (no sign, no leading zeros, no `_`).
    fn uint(&mut self) -> Result<u64, NpyProblem> {
        let start = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        let digits = &self.s[start..self.i];
        if digits.is_empty() {
            return Err(self.unexpected("a dimension"));
        }
        if digits.len() > 1 && digits[0] == b'0' {
            self.i = start;
            return Err(self.unexpected("a dimension without leading zeros"));
        }
        std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| NpyProblem::Malformed("header dict: a dimension is too large".into()))
    }

    /// `()`, `(3,)`, `(2, 3)`, `(2, 3, )`. A bare `(3)` is rejected: in Python it is the integer
    /// 3, not a tuple.
    fn shape(&mut self) -> Result<Vec<u64>, NpyProblem> {
        self.expect(b'(')?;
        self.ws();
        let mut dims = Vec::new();
        if self.eat(b')') {
            return Ok(dims);
        }
        loop {
            dims.push(self.uint()?);
            if dims.len() > NPY_MAX_RANK {
                return Err(NpyProblem::Malformed(format!(
                    "header dict: the shape has more than {NPY_MAX_RANK} dimensions"
                )));
            }
            self.ws();
            if self.eat(b')') {
                if dims.len() == 1 {
                    return Err(NpyProblem::Malformed(
                        "header dict: 'shape' is a parenthesised integer, not a tuple".into(),
                    ));
                }
                return Ok(dims);
            }
            self.expect(b',')?;
            self.ws();
            if self.eat(b')') {
                return Ok(dims);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use npyz::WriterBuilder;
    use proptest::prelude::*;
    use safetensors::tensor::TensorView;

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn f16_bytes(v: &[f32]) -> Vec<u8> {
        v.iter()
            .flat_map(|&x| f16::from_f32(x).to_le_bytes())
            .collect()
    }

    fn bf16_bytes(v: &[f32]) -> Vec<u8> {
        v.iter()
            .flat_map(|&x| bf16::from_f32(x).to_le_bytes())
            .collect()
    }

    fn f64_bytes(v: &[f64]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn i32_bytes(v: &[i32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    /// One tensor for [`safetensors_bytes`]: name, dtype, shape, raw little-endian data.
    type Spec = (&'static str, Dtype, Vec<usize>, Vec<u8>);

    fn f32_spec(name: &'static str, shape: &[usize], v: &[f32]) -> Spec {
        (name, Dtype::F32, shape.to_vec(), f32_bytes(v))
    }

    fn safetensors_bytes(specs: &[Spec]) -> Vec<u8> {
        let views: Vec<(&str, TensorView)> = specs
            .iter()
            .map(|(name, dtype, shape, data)| {
                (*name, TensorView::new(*dtype, shape.clone(), data).unwrap())
            })
            .collect();
        safetensors::serialize(views, &None).unwrap()
    }

    fn write(dir: &Path, file: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(file);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn st_file(dir: &Path, specs: &[Spec]) -> PathBuf {
        write(dir, "model.safetensors", &safetensors_bytes(specs))
    }

    fn npy_bytes<T: npyz::AutoSerialize + Copy>(
        shape: &[u64],
        order: npyz::Order,
        data: &[T],
    ) -> Vec<u8> {
        let mut buf = Vec::new();
        let mut w = npyz::WriteOptions::<T>::new()
            .default_dtype()
            .shape(shape)
            .order(order)
            .writer(&mut buf)
            .begin_nd()
            .unwrap();
        w.extend(data.iter().copied()).unwrap();
        w.finish().unwrap();
        buf
    }

    /// A v1 `.npy` file with a hand-written header dict (padded the way numpy pads it).
    fn npy_with_header(header: &str, data: &[u8]) -> Vec<u8> {
        let mut h = header.to_string();
        let pad = (64 - (10 + h.len() + 1) % 64) % 64;
        h.push_str(&" ".repeat(pad));
        h.push('\n');
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend_from_slice(&(h.len() as u16).to_le_bytes());
        b.extend_from_slice(h.as_bytes());
        b.extend_from_slice(data);
        b
    }

    fn names(ts: &[Tensor]) -> Vec<&str> {
        ts.iter().map(|t| t.name.as_str()).collect()
    }

    fn sel(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    fn err(path: &Path, select: &[&str]) -> String {
        let e = load(path, &sel(select)).unwrap_err();
        let msg = e.to_string();
        assert!(!msg.contains('\n'), "multi-line message: {msg}");
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        msg
    }

    /// A small model: two linear layers (one with a bias), a LayerNorm and an integer buffer.
    fn model(dir: &Path) -> PathBuf {
        st_file(
            dir,
            &[
                f32_spec("fc1.weight", &[2, 3], &[1., 2., 3., 4., 5., 6.]),
                f32_spec("fc1.bias", &[2], &[0.5, -0.5]),
                f32_spec("fc2.weight", &[3, 2], &[6., 5., 4., 3., 2., 1.]),
                f32_spec("ln.weight", &[3], &[1., 1., 1.]),
                (
                    "position_ids",
                    Dtype::I32,
                    vec![1, 3],
                    i32_bytes(&[0, 1, 2]),
                ),
            ],
        )
    }

    #[test]
    fn default_selection_takes_rank2_weights_with_biases() {
        let dir = tempfile::tempdir().unwrap();
        let ts = load(&model(dir.path()), &[]).unwrap();
        assert_eq!(names(&ts), ["fc1.weight", "fc2.weight"]);
        assert_eq!(ts[0].shape, [2, 3]);
        assert_eq!(ts[0].data, [1., 2., 3., 4., 5., 6.]);
        assert_eq!(ts[0].bias.as_deref(), Some(&[0.5, -0.5][..]));
        assert_eq!((ts[0].rows(), ts[0].cols()), (2, 3));
        assert_eq!(ts[1].bias, None);
    }

    #[test]
    fn selection_by_exact_name() {
        let dir = tempfile::tempdir().unwrap();
        let ts = load(&model(dir.path()), &sel(&["fc2.weight"])).unwrap();
        assert_eq!(names(&ts), ["fc2.weight"]);
        assert_eq!(ts[0].data, [6., 5., 4., 3., 2., 1.]);
    }

    #[test]
    fn selection_by_glob_in_file_order_without_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let w = [0.25f32; 4];
        let path = st_file(
            dir.path(),
            &[
                f32_spec("encoder.layer.0.attention.self.query.weight", &[2, 2], &w),
                f32_spec("encoder.layer.0.attention.self.key.weight", &[2, 2], &w),
                f32_spec("encoder.layer.1.attention.self.query.weight", &[2, 2], &w),
                f32_spec("encoder.layer.1.attention.self.query.bias", &[2], &[1., 2.]),
                f32_spec("conv.weight", &[1, 1, 2, 2], &w),
            ],
        );
        let ts = load(
            &path,
            &sel(&["encoder.layer.*.attention.self.query.weight"]),
        )
        .unwrap();
        assert_eq!(
            names(&ts),
            [
                "encoder.layer.0.attention.self.query.weight",
                "encoder.layer.1.attention.self.query.weight"
            ]
        );
        assert_eq!(ts[0].bias, None);
        assert_eq!(ts[1].bias.as_deref(), Some(&[1., 2.][..]));

        // Overlapping selectors: each tensor once, in file order, not selector order.
        let ts = load(&path, &sel(&["*.weight", "conv.weight", "*query*weight"])).unwrap();
        assert_eq!(
            names(&ts),
            [
                "conv.weight",
                "encoder.layer.0.attention.self.key.weight",
                "encoder.layer.0.attention.self.query.weight",
                "encoder.layer.1.attention.self.query.weight"
            ]
        );
        assert_eq!(ts[0].shape, [1, 1, 2, 2]);
        assert_eq!(ts[0].cols(), 4);
    }

    #[test]
    fn exact_name_with_glob_characters_is_taken_literally() {
        let dir = tempfile::tempdir().unwrap();
        let path = st_file(dir.path(), &[f32_spec("blocks[0].weight", &[1, 1], &[3.])]);
        let ts = load(&path, &sel(&["blocks[0].weight"])).unwrap();
        assert_eq!(names(&ts), ["blocks[0].weight"]);
        // Not a name and not a valid glob.
        let msg = err(&path, &["blocks[0.weight"]);
        assert!(
            msg.contains("invalid selection pattern `blocks[0.weight`"),
            "{msg}"
        );
    }

    #[test]
    fn no_match_lists_available_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = model(dir.path());
        let msg = err(&path, &["fc1.weight", "fc3.*"]);
        assert!(msg.contains("`fc3.*` matches no tensor"), "{msg}");
        assert!(msg.contains("the file has 5 tensors"), "{msg}");
        assert!(msg.contains("`fc1.weight` [2, 3]"), "{msg}");
        assert!(msg.contains("`position_ids` [1, 3]"), "{msg}");

        // With many tensors only a few are listed, those closest to the pattern first.
        let specs: Vec<Spec> = (0..20)
            .map(|i| {
                let name: &'static str = Box::leak(format!("a{i:02}.weight").into_boxed_str());
                f32_spec(name, &[1, 1], &[1.])
            })
            .chain([f32_spec("zeta.weight", &[1, 1], &[1.])])
            .collect();
        let path = st_file(dir.path(), &specs);
        let msg = err(&path, &["zeta.wieght"]);
        assert!(
            msg.contains("the file has 21 tensors, e.g. `zeta.weight` [1, 1], "),
            "{msg}"
        );
        assert!(msg.ends_with(", …"), "{msg}");
    }

    #[test]
    fn nothing_to_select_by_default_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = st_file(dir.path(), &[f32_spec("ln.weight", &[3], &[1., 1., 1.])]);
        let msg = err(&path, &[]);
        assert!(msg.contains("no tensor of rank ≥ 2"), "{msg}");
        assert!(msg.contains("`ln.weight` [3]"), "{msg}");
    }

    #[test]
    fn bias_of_wrong_shape() {
        let dir = tempfile::tempdir().unwrap();
        let path = st_file(
            dir.path(),
            &[
                f32_spec("fc.weight", &[2, 3], &[0.; 6]),
                f32_spec("fc.bias", &[3], &[0.; 3]),
            ],
        );
        let msg = err(&path, &[]);
        assert!(
            msg.ends_with(
                "bias `fc.bias` has shape [3], but `fc.weight` has 2 outputs (expected shape [2])"
            ),
            "{msg}"
        );
    }

    #[test]
    fn nan_and_inf_are_errors_naming_tensor_and_index() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = [0.0f32; 6];
        w[4] = f32::NAN;
        let path = st_file(dir.path(), &[f32_spec("fc.weight", &[2, 3], &w)]);
        let msg = err(&path, &[]);
        assert!(
            msg.ends_with(
                "tensor `fc.weight` has a non-finite value NaN at flat index 4 (index [1, 1] of \
                 shape [2, 3])"
            ),
            "{msg}"
        );

        w[4] = 0.0;
        w[5] = f32::NEG_INFINITY;
        let path = st_file(dir.path(), &[f32_spec("fc.weight", &[2, 3], &w)]);
        let msg = err(&path, &[]);
        assert!(
            msg.contains("non-finite value -inf at flat index 5"),
            "{msg}"
        );

        // In the bias too.
        let path = st_file(
            dir.path(),
            &[
                f32_spec("fc.weight", &[2, 3], &[0.; 6]),
                f32_spec("fc.bias", &[2], &[0., f32::INFINITY]),
            ],
        );
        let msg = err(&path, &[]);
        assert!(
            msg.contains("tensor `fc.bias` has a non-finite value inf at flat index 1"),
            "{msg}"
        );

        // F16 infinities are caught after widening.
        let path = st_file(
            dir.path(),
            &[(
                "h.weight",
                Dtype::F16,
                vec![1, 2],
                f16_bytes(&[1., f32::INFINITY]),
            )],
        );
        assert!(err(&path, &[]).contains("value inf at flat index 1"));
    }

    #[test]
    fn wrong_rank_and_zero_dims() {
        let dir = tempfile::tempdir().unwrap();
        let path = st_file(
            dir.path(),
            &[
                f32_spec("conv1d.weight", &[2, 1, 3], &[0.; 6]),
                f32_spec("ln.weight", &[3], &[0.; 3]),
                f32_spec("empty.weight", &[0, 3], &[]),
            ],
        );
        let msg = err(&path, &["conv1d.weight"]);
        assert!(
            msg.contains("tensor `conv1d.weight` has shape [2, 1, 3] (rank 3); only rank 2"),
            "{msg}"
        );
        // A glob that catches only a LayerNorm weight is an error naming it; next to a matrix it
        // is skipped.
        let msg = err(&path, &["ln.*"]);
        assert!(msg.contains("`ln.weight` has shape [3] (rank 1)"), "{msg}");
        let msg = err(&path, &["empty.weight"]);
        assert!(
            msg.contains("`empty.weight` has shape [0, 3], which has a zero-sized"),
            "{msg}"
        );
        let other = tempfile::tempdir().unwrap();
        let both = st_file(
            other.path(),
            &[
                f32_spec("fc.weight", &[2, 3], &[0.5; 6]),
                f32_spec("ln.weight", &[3], &[1.; 3]),
            ],
        );
        assert_eq!(
            names(&load(&both, &sel(&["*.weight"])).unwrap()),
            ["fc.weight"]
        );
    }

    #[test]
    fn unsupported_dtypes() {
        let dir = tempfile::tempdir().unwrap();
        let path = model(dir.path());
        let msg = err(&path, &["position_ids"]);
        assert!(
            msg.ends_with(
                "tensor `position_ids` has dtype I32, which cannot be loaded (supported: F32, \
                 F16, BF16, F64)"
            ),
            "{msg}"
        );

        // A dtype the safetensors crate itself does not know: the header fails to parse, and the
        // diagnosis still names the tensor.
        let header = r#"{"w.weight":{"dtype":"F8_E8M0","shape":[1,1],"data_offsets":[0,1]}}"#;
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.push(0);
        let path = write(dir.path(), "f8.safetensors", &bytes);
        let msg = err(&path, &[]);
        assert!(msg.contains("tensor `w.weight` has dtype F8_E8M0"), "{msg}");
    }

    #[test]
    fn half_precision_values_widen_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let vals = [1.5f32, -0.25, 65504.0, 6.1035156e-5, 0.0, -2.0];
        let bf = [3.140625f32, -1.0e30, 1.0, -0.0078125];
        let path = st_file(
            dir.path(),
            &[
                ("h.weight", Dtype::F16, vec![2, 3], f16_bytes(&vals)),
                ("b.weight", Dtype::BF16, vec![2, 2], bf16_bytes(&bf)),
                ("d.weight", Dtype::F64, vec![1, 2], f64_bytes(&[0.1, -3.0])),
            ],
        );
        let ts = load(&path, &[]).unwrap();
        // Stored sorted by dtype alignment, then name (the safetensors writer's order).
        assert_eq!(names(&ts), ["d.weight", "b.weight", "h.weight"]);
        assert_eq!(ts[0].data, [0.1f64 as f32, -3.0]);
        // bf16 keeps f32's exponent, so -1e30 survives (rounded to 8 mantissa bits).
        assert_eq!(
            ts[1].data,
            [3.140625, bf16::from_f32(-1.0e30).to_f32(), 1.0, -0.0078125]
        );
        assert!((ts[1].data[1] / -1.0e30 - 1.0).abs() < 1e-2);
        assert_eq!(ts[2].data, vals);
    }

    #[test]
    fn f64_beyond_f32_range_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = st_file(
            dir.path(),
            &[("d.weight", Dtype::F64, vec![1, 2], f64_bytes(&[1.0, 1e300]))],
        );
        let msg = err(&path, &[]);
        assert!(
            msg.contains("value 1e300 at flat index 1 (index [0, 1] of shape [1, 2]), which does not fit in f32"),
            "{msg}"
        );
        let path = st_file(
            dir.path(),
            &[(
                "d.weight",
                Dtype::F64,
                vec![1, 2],
                f64_bytes(&[f64::NAN, 1.0]),
            )],
        );
        assert!(err(&path, &[]).contains("non-finite value NaN at flat index 0"));
    }

    #[test]
    fn malformed_safetensors_files() {
        let dir = tempfile::tempdir().unwrap();
        let good = safetensors_bytes(&[f32_spec("fc.weight", &[2, 3], &[0.; 6])]);

        let path = write(dir.path(), "t.safetensors", &good[..good.len() - 5]);
        let msg = err(&path, &[]);
        assert!(
            msg.contains("not a valid safetensors file: the file is truncated"),
            "{msg}"
        );

        let path = write(dir.path(), "t.safetensors", &good[..20]);
        let msg = err(&path, &[]);
        assert!(msg.contains("only 12 bytes follow it (truncated"), "{msg}");

        let path = write(dir.path(), "t.safetensors", &good[..3]);
        assert!(err(&path, &[]).contains("the file is only 3 bytes"));

        let mut extra = good.clone();
        extra.extend_from_slice(&[0; 4]);
        let path = write(dir.path(), "t.safetensors", &extra);
        assert!(err(&path, &[]).contains("4 unexpected bytes follow"));

        let mut bad_json = good.clone();
        bad_json[8] = b'[';
        let path = write(dir.path(), "t.safetensors", &bad_json);
        assert!(err(&path, &[]).contains("the header is not a JSON object"));

        let path = write(
            dir.path(),
            "t.safetensors",
            b"just some text, not a model at all",
        );
        assert!(err(&path, &[]).contains("not a valid safetensors file"));

        // A shape that does not match the data size names the tensor.
        let header = r#"{"w.weight":{"dtype":"F32","shape":[2,2],"data_offsets":[0,4]}}"#;
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&[0; 4]);
        let path = write(dir.path(), "t.safetensors", &bytes);
        let msg = err(&path, &[]);
        assert!(
            msg.contains(
                "tensor `w.weight` has data_offsets [0, 4], but shape [2, 2] of F32 needs 16 bytes"
            ),
            "{msg}"
        );
    }

    #[test]
    fn file_level_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "w.pt", b"");
        let msg = err(&path, &[]);
        assert!(
            msg.ends_with(
                "`.pt` is not a weight file type this loader reads (supported: .safetensors, .npy)"
            ),
            "{msg}"
        );
        let path = write(dir.path(), "weights", b"");
        assert!(err(&path, &[]).contains("has no extension"));
        let path = dir.path().join("missing.safetensors");
        assert!(err(&path, &[]).contains("cannot read the file"));
        // Extensions are matched case-insensitively.
        let bytes = safetensors_bytes(&[f32_spec("fc.weight", &[1, 1], &[2.])]);
        let path = write(dir.path(), "W.SafeTensors", &bytes);
        assert_eq!(load(&path, &[]).unwrap()[0].data, [2.]);
    }

    #[test]
    fn npy_float_types_and_selection_by_stem() {
        let dir = tempfile::tempdir().unwrap();
        let v = [1.0f32, -2.5, 3.25, 0.0, 4.0, -1.0];
        let path = write(
            dir.path(),
            "fc1.weight.npy",
            &npy_bytes(&[2, 3], npyz::Order::C, &v),
        );
        let ts = load(&path, &[]).unwrap();
        assert_eq!(ts.len(), 1);
        assert_eq!(ts[0].name, "fc1.weight");
        assert_eq!(ts[0].shape, [2, 3]);
        assert_eq!(ts[0].data, v);
        assert_eq!(ts[0].bias, None);
        assert_eq!(load(&path, &sel(&["fc1.weight"])).unwrap(), ts);
        assert_eq!(load(&path, &sel(&["*.weight"])).unwrap(), ts);
        let msg = err(&path, &["fc2.*"]);
        assert!(
            msg.contains("`fc2.*` matches no tensor; the file has 1 tensor: `fc1.weight` [2, 3]"),
            "{msg}"
        );

        let d: Vec<f64> = v.iter().map(|&x| f64::from(x)).collect();
        let path = write(dir.path(), "d.npy", &npy_bytes(&[3, 2], npyz::Order::C, &d));
        assert_eq!(load(&path, &[]).unwrap()[0].data, v);

        let h: Vec<f16> = v.iter().map(|&x| f16::from_f32(x)).collect();
        let path = write(dir.path(), "h.npy", &npy_bytes(&[1, 6], npyz::Order::C, &h));
        assert_eq!(load(&path, &[]).unwrap()[0].data, v);

        // Big-endian float32, written by hand.
        let be: Vec<u8> = v.iter().flat_map(|x| x.to_be_bytes()).collect();
        let bytes = npy_with_header(
            "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }",
            &be,
        );
        let path = write(dir.path(), "be.npy", &bytes);
        assert_eq!(load(&path, &[]).unwrap()[0].data, v);
    }

    #[test]
    fn npy_fortran_order_is_transposed_to_c_order() {
        let dir = tempfile::tempdir().unwrap();
        // numpy stores a Fortran-order [[0, 1, 2], [3, 4, 5]] column by column.
        let path = write(
            dir.path(),
            "f.npy",
            &npy_bytes(&[2, 3], npyz::Order::Fortran, &[0f32, 3., 1., 4., 2., 5.]),
        );
        let t = &load(&path, &[]).unwrap()[0];
        assert_eq!(t.shape, [2, 3]);
        assert_eq!(t.data, [0., 1., 2., 3., 4., 5.]);

        // Rank 4: element [a, b, c, d] = 1000a + 100b + 10c + d, stored first-index-fastest.
        let shape = [2usize, 3, 2, 2];
        let mut fortran = Vec::new();
        for d in 0..shape[3] {
            for c in 0..shape[2] {
                for b in 0..shape[1] {
                    for a in 0..shape[0] {
                        fortran.push((1000 * a + 100 * b + 10 * c + d) as f32);
                    }
                }
            }
        }
        let shape64: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        let path = write(
            dir.path(),
            "f4.npy",
            &npy_bytes(&shape64, npyz::Order::Fortran, &fortran),
        );
        let t = &load(&path, &[]).unwrap()[0];
        let mut c_order = Vec::new();
        for a in 0..shape[0] {
            for b in 0..shape[1] {
                for c in 0..shape[2] {
                    for d in 0..shape[3] {
                        c_order.push((1000 * a + 100 * b + 10 * c + d) as f32);
                    }
                }
            }
        }
        assert_eq!(t.data, c_order);

        // The NaN index refers to the returned (C-order) layout.
        let path = write(
            dir.path(),
            "fn.npy",
            &npy_bytes(
                &[2, 3],
                npyz::Order::Fortran,
                &[0f32, f32::NAN, 1., 4., 2., 5.],
            ),
        );
        assert!(err(&path, &[]).contains("NaN at flat index 3 (index [1, 0] of shape [2, 3])"));
    }

    #[test]
    fn npy_errors() {
        let dir = tempfile::tempdir().unwrap();
        let good = npy_bytes(&[2, 3], npyz::Order::C, &[0f32; 6]);

        let path = write(dir.path(), "t.npy", &good[..good.len() - 4]);
        let msg = err(&path, &[]);
        assert!(
            msg.contains(
                "the data is truncated: shape [2, 3] of '<f4' needs 24 bytes but 20 follow"
            ),
            "{msg}"
        );
        let path = write(dir.path(), "t.npy", &good[..30]);
        assert!(err(&path, &[]).contains("only 20 follow (truncated)"));
        let path = write(dir.path(), "t.npy", &good[..4]);
        assert!(err(&path, &[]).contains("ends inside the \\x93NUMPY magic"));
        let mut long = good.clone();
        long.push(0);
        let path = write(dir.path(), "t.npy", &long);
        assert!(err(&path, &[]).contains("1 unexpected bytes follow"));

        let path = write(
            dir.path(),
            "v.npy",
            &npy_bytes(&[3], npyz::Order::C, &[0f32; 3]),
        );
        assert!(err(&path, &[]).contains("tensor `v` has shape [3] (rank 1)"));
        let path = write(
            dir.path(),
            "s.npy",
            &npy_bytes(&[], npyz::Order::C, &[0f32]),
        );
        assert!(err(&path, &[]).contains("shape [] (rank 0)"));

        let path = write(
            dir.path(),
            "i.npy",
            &npy_bytes(&[2, 2], npyz::Order::C, &[1i32; 4]),
        );
        let msg = err(&path, &[]);
        assert!(msg.ends_with("tensor `i` has dtype '<i4', which cannot be loaded (supported: '<f2', '<f4', '<f8' (float16/32/64))"), "{msg}");

        let path = write(
            dir.path(),
            "n.npy",
            &npy_bytes(&[1, 2], npyz::Order::C, &[1f32, f32::INFINITY]),
        );
        assert!(err(&path, &[]).contains("tensor `n` has a non-finite value inf at flat index 1"));

        // Crafted headers: each an error, none a panic or a huge allocation.
        let crafted = [
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 2), }",
                "too large",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 4294967296, 4294967296), }",
                "too large",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,), }",
                "too large",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'shape': (1, 1), }",
                "repeats the key 'shape'",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (6), }",
                "not a tuple",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': ((((((((6,),),),),),),),), }",
                "expected a dimension",
            ),
            (
                "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2, 3), }",
                "structured record",
            ),
            ("{'descr': '<f4', 'fortran_order': False, }", "lacks one of"),
            (
                "{'descr': '<f4', 'fortran_order': 0, 'shape': (2, 3), }",
                "not True or False",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'x': 1}",
                "unexpected key 'x'",
            ),
        ];
        for (header, want) in crafted {
            let path = write(dir.path(), "c.npy", &npy_with_header(header, &[0; 24]));
            let msg = err(&path, &[]);
            assert!(msg.contains(want), "{header}: {msg}");
        }

        // A version 2 header that claims 4 GB.
        let mut bytes = b"\x93NUMPY\x02\x00".to_vec();
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        bytes.extend_from_slice(b"{}");
        let path = write(dir.path(), "big.npy", &bytes);
        assert!(err(&path, &[]).contains("the header declares 4294967295 bytes but only 2 follow"));
    }

    /// Applies `edits` (position chosen among the first `span` bytes, new byte) and an optional
    /// truncation to `good`.
    fn mutate(
        good: &[u8],
        edits: &[(prop::sample::Index, u8)],
        header_only: bool,
        header_len: usize,
        cut: Option<prop::sample::Index>,
    ) -> Vec<u8> {
        let mut bytes = good.to_vec();
        let span = if header_only {
            header_len.min(bytes.len())
        } else {
            bytes.len()
        };
        for (at, byte) in edits {
            let i = at.index(span);
            bytes[i] = *byte;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        bytes
    }

    /// Random bytes, or digits and JSON/Python punctuation, which reach deeper into the parsers.
    fn edit_byte() -> impl Strategy<Value = u8> {
        prop_oneof![
            any::<u8>(),
            prop::sample::select(b"0123456789,:[](){}\"' -.e".to_vec()),
        ]
    }

    fn edits() -> impl Strategy<Value = Vec<(prop::sample::Index, u8)>> {
        prop::collection::vec((any::<prop::sample::Index>(), edit_byte()), 0..6)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn mutated_safetensors_never_panic(
            edits in edits(),
            header_only in any::<bool>(),
            cut in prop::option::weighted(0.3, any::<prop::sample::Index>()),
            glob in any::<bool>(),
        ) {
            let good = safetensors_bytes(&[
                f32_spec("fc.weight", &[2, 3], &[1., 2., 3., 4., 5., 6.]),
                f32_spec("fc.bias", &[2], &[1., 2.]),
                ("h.weight", Dtype::F16, vec![1, 1, 1, 2], f16_bytes(&[1., 2.])),
                ("b.weight", Dtype::BF16, vec![2, 1], bf16_bytes(&[1., 2.])),
                ("d.weight", Dtype::F64, vec![1, 1], f64_bytes(&[1.])),
            ]);
            let header_len = 8 + u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
            let bytes = mutate(&good, &edits, header_only, header_len, cut);
            let select = if glob { sel(&["*weight*"]) } else { Vec::new() };
            let path = Path::new("fuzz.safetensors");
            if let Err(e) = load_bytes(path, Format::Safetensors, &bytes, &select) {
                let msg = e.to_string();
                prop_assert!(!msg.contains('\n'), "{}", msg);
                prop_assert!(msg.starts_with("fuzz.safetensors: "), "{}", msg);
            }
        }

        #[test]
        fn mutated_npy_never_panics(
            edits in edits(),
            header_only in any::<bool>(),
            cut in prop::option::weighted(0.3, any::<prop::sample::Index>()),
            kind in 0u8..3,
        ) {
            let good = match kind {
                0 => npy_bytes(&[2, 3], npyz::Order::C, &[1f32, 2., 3., 4., 5., 6.]),
                1 => npy_bytes(&[1, 2, 1, 2], npyz::Order::Fortran, &[1f64, 2., 3., 4.]),
                _ => npy_bytes(&[2, 2], npyz::Order::C, &[f16::ONE; 4]),
            };
            let header_len = 10 + usize::from(u16::from_le_bytes([good[8], good[9]]));
            let bytes = mutate(&good, &edits, header_only, header_len, cut);
            let path = Path::new("fuzz.weight.npy");
            match load_bytes(path, Format::Npy, &bytes, &[]) {
                Ok(ts) => {
                    prop_assert_eq!(ts.len(), 1);
                    prop_assert_eq!(ts[0].data.len(), ts[0].shape.iter().product::<usize>());
                }
                Err(e) => {
                    let msg = e.to_string();
                    prop_assert!(!msg.contains('\n'), "{}", msg);
                    prop_assert!(msg.starts_with("fuzz.weight.npy: "), "{}", msg);
                }
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let mut npy = b"\x93NUMPY\x01\x00".to_vec();
            npy.extend_from_slice(&bytes);
            let _ = load_bytes(Path::new("x.npy"), Format::Npy, &npy, &[]);
            let _ = load_bytes(Path::new("x.safetensors"), Format::Safetensors, &bytes, &[]);
        }
    }

    /// The proptests call the in-memory entry point; this checks a mutated file goes through
    /// `load` the same way.
    #[test]
    fn load_and_load_bytes_agree() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = npy_bytes(&[2, 3], npyz::Order::C, &[0f32; 6]);
        bytes.truncate(bytes.len() - 1);
        let path = write(dir.path(), "w.npy", &bytes);
        let a = load(&path, &[]).unwrap_err().to_string();
        let b = load_bytes(&path, Format::Npy, &bytes, &[])
            .unwrap_err()
            .to_string();
        assert_eq!(a, b);
    }
}
