//! Reading one weight array from a `.npy` file: the header through the shared strict parser
//! ([`crate::npy::parse_header`]), the data through npyz, Fortran order transposed to C order.

use std::path::Path;

use half::f16;

use super::checks::{check_finite, check_shape, narrow_f64};
use super::select::select_indices;
use super::types::{one_line, Tensor, WeightsError};
use crate::npy::{parse_header, HeaderError};

const NPY_SUPPORTED: &str = "'<f2', '<f4', '<f8' (float16/32/64)";

pub(super) fn load_npy(
    path: &Path,
    bytes: &[u8],
    select: &[String],
) -> Result<Vec<Tensor>, WeightsError> {
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
    // literals recurse in its parser. So the header is first parsed with the shared strict
    // grammar (exactly what numpy writes) and every size checked; npyz only sees headers that
    // pass.
    let layout = match parse_header(bytes) {
        Ok(layout) => layout,
        Err(HeaderError::Malformed(reason)) => return Err(malformed(reason)),
        Err(HeaderError::Structured) => return Err(unsupported("structured record")),
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
    let have = (bytes.len() - layout.header_len) as u64;
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
    let expected_order = if layout.fortran_order {
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
    let reader = npyz::NpyFile::with_header(header, &bytes[layout.header_len..]);
    let io_error = |e: std::io::Error| malformed(one_line(&e.to_string()));
    let values = match item_size {
        2 => {
            let raw: Vec<f16> = reader.into_vec().map_err(io_error)?;
            let values: Vec<f32> = reorder(raw, &shape, layout.fortran_order)
                .into_iter()
                .map(f16::to_f32)
                .collect();
            check_finite(path, &name, &shape, &values)?;
            values
        }
        4 => {
            let raw: Vec<f32> = reader.into_vec().map_err(io_error)?;
            let values = reorder(raw, &shape, layout.fortran_order);
            check_finite(path, &name, &shape, &values)?;
            values
        }
        _ => {
            let raw: Vec<f64> = reader.into_vec().map_err(io_error)?;
            let values = reorder(raw, &shape, layout.fortran_order);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::npy::test_support::{crafted_headers, npy_with_header};
    use crate::weights::test_util::*;
    use crate::weights::{load, load_bytes, Format};
    use proptest::prelude::*;

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

    /// Everything the shared header parser refuses (what the weight loader's own grammar and
    /// the CLI's pre-check each rejected) is refused by the weight loader with a one-line message.
    #[test]
    fn crafted_headers_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        for (bytes, want) in crafted_headers() {
            let path = write(dir.path(), "c.npy", &bytes);
            let msg = err(&path, &[]);
            assert!(msg.contains(want), "{want}: {msg}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

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
    }
}
