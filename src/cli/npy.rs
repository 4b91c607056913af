//! Strict `.npy` input and output for the CLI (int8 activations in, int8/int32 arrays out).
//!
//! Reading accepts exactly one kind of file: dtype `'|i1'` (int8), C order, and a data section
//! whose length matches the shape (no missing and no trailing bytes). Anything else is an error
//! that says what was found. Before `npyz` parses the header, the strict parser shared with the
//! weight loader ([`smartdeal_decomp::npy::parse_header`]) rejects any header numpy would not
//! write and every size that would make npyz allocate or compute absurdly (declared header
//! longer than the file, deeply nested literals, a shape whose element count overflows), so that
//! no input file can crash the CLI.

use anyhow::{anyhow, bail, Context, Result};
use npyz::{DType, TypeChar, WriterBuilder};
use smartdeal_decomp::npy::{parse_header, HeaderError};
use std::path::Path;

/// The only dtype string accepted for int8 arrays.
pub const INT8_DESCR: &str = "|i1";

/// A C-order int8 array read from a `.npy` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Int8Array {
    pub shape: Vec<u64>,
    pub data: Vec<i8>,
}

/// Reads the int8 `.npy` file at `path`. Errors name the file.
pub fn read_int8(path: &Path) -> Result<Int8Array> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_int8(&bytes).with_context(|| path.display().to_string())
}

/// Parses an int8 `.npy` file held in memory.
pub fn parse_int8(bytes: &[u8]) -> Result<Int8Array> {
    // The shared strict parser decides whether npyz may see the header at all, and where the
    // data starts; npyz then interprets the header it accepted (dtype names, order, shape).
    let start = match parse_header(bytes) {
        Ok(header) => header.header_len,
        Err(HeaderError::Structured) => bail!(
            "dtype is a structured record, not int8 ('{INT8_DESCR}'); convert with \
             .astype(numpy.int8)"
        ),
        Err(HeaderError::Malformed(why)) => bail!("not a valid .npy file: {why}"),
    };
    let (dtype, order, shape, count) = {
        let npy = npyz::NpyHeader::from_reader(bytes)
            .map_err(|e| anyhow!("not a valid .npy file: {}", one_line(&e.to_string())))?;
        (npy.dtype(), npy.order(), npy.shape().to_vec(), npy.len())
    };
    match &dtype {
        DType::Plain(ts) if ts.to_string() == INT8_DESCR => {}
        other => bail!(
            "dtype {} ({}) is not int8 ('{INT8_DESCR}'); convert with .astype(numpy.int8)",
            other.descr(),
            friendly_dtype(other)
        ),
    }
    if order == npyz::Order::Fortran {
        bail!(
            "the array is stored in Fortran order; save it in C order \
             (numpy.ascontiguousarray) instead"
        );
    }
    let have = (bytes.len() - start) as u64;
    if have < count {
        bail!(
            "truncated data: shape {} declares {count} int8 values but only {have} bytes follow \
             the header",
            shape_str(&shape)
        );
    }
    if have > count {
        bail!(
            "{} unexpected trailing bytes after the {count} int8 values of shape {}",
            have - count,
            shape_str(&shape)
        );
    }
    let data = bytes[start..].iter().map(|&b| b as i8).collect();
    Ok(Int8Array { shape, data })
}

/// Writes a C-order int8 array (`'|i1'`).
pub fn write_int8(path: &Path, shape: &[u64], data: &[i8]) -> Result<()> {
    write_array(path, shape, data)
}

/// Writes a C-order little-endian int32 array (`'<i4'`).
pub fn write_int32(path: &Path, shape: &[u64], data: &[i32]) -> Result<()> {
    write_array(path, shape, data)
}

fn write_array<T: npyz::AutoSerialize + Copy>(
    path: &Path,
    shape: &[u64],
    data: &[T],
) -> Result<()> {
    let want: u64 = shape.iter().product();
    if want != data.len() as u64 {
        bail!(
            "internal error: {} values do not fill shape {}",
            data.len(),
            shape_str(shape)
        );
    }
    let mut buf = Vec::new();
    let encode = |buf: &mut Vec<u8>| -> std::io::Result<()> {
        let mut w = npyz::WriteOptions::<T>::new()
            .default_dtype()
            .shape(shape)
            .writer(buf)
            .begin_nd()?;
        w.extend(data.iter().copied())?;
        w.finish()
    };
    encode(&mut buf).with_context(|| format!("cannot encode {}", path.display()))?;
    std::fs::write(path, &buf).with_context(|| format!("cannot write {}", path.display()))
}

/// `[3, 48]`-style rendering of a shape.
pub fn shape_str(shape: &[u64]) -> String {
    let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
    format!("[{}]", dims.join(", "))
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A readable name for a dtype (`float32`, `int64`, `record`, ...).
fn friendly_dtype(d: &DType) -> String {
    match d {
        DType::Plain(ts) => {
            let bits = ts.size_field() * 8;
            match ts.type_char() {
                TypeChar::Int => format!("int{bits}"),
                TypeChar::Uint => format!("uint{bits}"),
                TypeChar::Float => format!("float{bits}"),
                TypeChar::Complex => format!("complex{bits}"),
                TypeChar::Bool => "bool".into(),
                TypeChar::ByteStr | TypeChar::UnicodeStr => "string".into(),
                TypeChar::TimeDelta | TypeChar::DateTime => "datetime".into(),
                _ => "raw bytes".into(),
            }
        }
        DType::Record(_) => "structured record".into(),
        DType::Array(..) => "sub-array".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smartdeal_decomp::npy::test_support::{crafted_headers, npy_with_header};

    #[test]
    fn round_trip_int8() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        let data: Vec<i8> = (-3..3).collect();
        write_int8(&p, &[2, 3], &data).unwrap();
        let a = read_int8(&p).unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.data, data);
    }

    #[test]
    fn accepts_a_numpy_style_header() {
        let b = npy_with_header(
            "{'descr': '|i1', 'fortran_order': False, 'shape': (2,), }",
            &[1, 0xff],
        );
        let a = parse_int8(&b).unwrap();
        assert_eq!(a.shape, vec![2]);
        assert_eq!(a.data, vec![1, -1]);
    }

    #[test]
    fn rejects_bad_files_with_clear_messages() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"hello".to_vec(), "magic"),
            (
                npy_with_header(
                    "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }",
                    &[0; 4],
                ),
                "float32",
            ),
            (
                npy_with_header(
                    "{'descr': '|i1', 'fortran_order': True, 'shape': (2, 2), }",
                    &[0; 4],
                ),
                "Fortran",
            ),
            (
                npy_with_header(
                    "{'descr': '|i1', 'fortran_order': False, 'shape': (2, 2), }",
                    &[0; 3],
                ),
                "truncated",
            ),
            (
                npy_with_header(
                    "{'descr': '|i1', 'fortran_order': False, 'shape': (2, 2), }",
                    &[0; 5],
                ),
                "trailing",
            ),
            (
                npy_with_header(
                    "{'descr': '|i1', 'fortran_order': False, 'shape': (0, 4294967296, 4294967296), }",
                    &[],
                ),
                "too large",
            ),
            (
                npy_with_header(&format!("{}{}", "[".repeat(5000), "]".repeat(5000)), &[]),
                "nested",
            ),
        ];
        for (bytes, want) in cases {
            let e = format!("{:#}", parse_int8(&bytes).unwrap_err());
            assert!(e.contains(want), "{want}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
        let mut long = b"\x93NUMPY\x02\x00".to_vec();
        long.extend_from_slice(&u32::MAX.to_le_bytes());
        let e = format!("{:#}", parse_int8(&long).unwrap_err());
        assert!(e.contains("header declares"), "{e}");
    }

    /// Everything the shared header parser refuses (what the CLI's former pre-check and the
    /// weight loader's grammar each rejected) is refused here with a one-line message.
    #[test]
    fn rejects_crafted_headers() {
        for (bytes, want) in crafted_headers() {
            let e = format!("{:#}", parse_int8(&bytes).unwrap_err());
            assert!(e.contains(want), "{want}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    /// A header the shared parser accepts but npyz does not (a line break inside the dict) is
    /// still refused, with npyz's reason, as before the parser was shared.
    #[test]
    fn npyz_still_has_the_last_word() {
        let header = "{'descr': '|i1',\n 'fortran_order': False, 'shape': (2,), }";
        let b = npy_with_header(header, &[1, 2]);
        assert!(parse_header(&b).is_ok());
        let e = format!("{:#}", parse_int8(&b).unwrap_err());
        assert!(e.starts_with("not a valid .npy file: "), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }
}
