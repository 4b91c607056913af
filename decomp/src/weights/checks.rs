//! Checks shared by both formats: a decomposable rank and no zero-sized dimension, finite
//! values, and f64 → f32 narrowing that refuses values beyond the f32 range.

use std::path::Path;

use super::types::WeightsError;

pub(super) fn check_shape(path: &Path, tensor: &str, shape: &[usize]) -> Result<(), WeightsError> {
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
pub(super) fn check_finite(
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
pub(super) fn narrow_f64(
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

#[cfg(test)]
mod tests {
    use crate::weights::load;
    use crate::weights::test_util::*;
    use safetensors::tensor::Dtype;

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
}
