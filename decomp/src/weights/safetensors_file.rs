//! Reading `.safetensors` files: the header (re-examined when the `safetensors` crate rejects
//! it, so that the message says what is wrong and where), tensors decoded to f32, and biases.

use std::collections::BTreeMap;
use std::path::Path;

use half::{bf16, f16};
use safetensors::tensor::{Dtype, TensorInfo};
use safetensors::{SafeTensorError, SafeTensors};

use super::checks::{check_finite, check_shape, narrow_f64};
use super::select::{is_default_weight, select_indices};
use super::types::{one_line, Array, Tensor, WeightsError};

const SAFETENSORS_SUPPORTED: &str = "F32, F16, BF16, F64";

pub(super) fn load_safetensors(
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

/// The tensors of `bytes` named in `names` (any rank; absent names are left out), as f32.
pub(super) fn load_safetensors_arrays(
    path: &Path,
    bytes: &[u8],
    names: &[String],
) -> Result<BTreeMap<String, Array>, WeightsError> {
    let (header_len, metadata) =
        SafeTensors::read_metadata(bytes).map_err(|e| safetensors_error(path, bytes, &e))?;
    let data = 8usize
        .checked_add(header_len)
        .and_then(|start| bytes.get(start..))
        .ok_or_else(|| WeightsError::Malformed {
            path: path.to_path_buf(),
            format: "safetensors",
            reason: "the header runs past the end of the file".into(),
        })?;
    let mut out = BTreeMap::new();
    for name in names {
        if out.contains_key(name) {
            continue;
        }
        if let Some(info) = metadata.info(name) {
            let values = decode_safetensor(path, name, info, data)?;
            out.insert(
                name.clone(),
                Array {
                    shape: info.shape.clone(),
                    data: values,
                },
            );
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::test_util::*;
    use crate::weights::{load, load_bytes, Format};
    use proptest::prelude::*;

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
    }
}
