//! Strict `.npy` input and output for the CLI (int8 activations in, int8/int32 arrays out).
//!
//! Reading accepts exactly one kind of file: dtype `'|i1'` (int8), C order, and a data section
//! whose length matches the shape (no missing and no trailing bytes). Anything else is an error
//! that says what was found. Before `npyz` parses the header, a small pre-check rejects headers
//! that would make it allocate or compute absurd sizes (declared header longer than the file,
//! deeply nested literals, a shape whose element count overflows), so that no input file can
//! crash the CLI.

use anyhow::{anyhow, bail, Context, Result};
use npyz::{DType, TypeChar, WriterBuilder};
use std::io::Cursor;
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
    precheck(bytes).map_err(|why| anyhow!("not a valid .npy file: {why}"))?;
    let mut cur = Cursor::new(bytes);
    let (dtype, order, shape, count) = {
        let npy = npyz::NpyFile::new(&mut cur)
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
    let start = usize::try_from(cur.position()).expect("position within a slice");
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

/// Cheap structural checks on the raw header, before `npyz` parses it.
fn precheck(bytes: &[u8]) -> Result<(), String> {
    const MAGIC: &[u8] = b"\x93NUMPY";
    if bytes.len() < 8 || !bytes.starts_with(MAGIC) {
        return Err("it does not start with the \\x93NUMPY magic".into());
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (len_bytes, start) = match major {
        1 => (2, 10),
        2 | 3 => (4, 12),
        _ => return Err(format!("unsupported .npy format version {major}.{minor}")),
    };
    if bytes.len() < start {
        return Err("the file ends inside the header length field".into());
    }
    let mut hlen = 0usize;
    for (i, &b) in bytes[8..8 + len_bytes].iter().enumerate() {
        hlen |= usize::from(b) << (8 * i);
    }
    let have = bytes.len() - start;
    if hlen > have {
        return Err(format!(
            "the header declares {hlen} bytes but only {have} bytes follow"
        ));
    }
    let text = &bytes[start..start + hlen];
    let mut depth = 0usize;
    for &b in text {
        match b {
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > 8 {
                    return Err("the header literal is nested too deeply".into());
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    // The element count (and every stride) must fit in u64. Only checked when the shape tuple is
    // plainly readable; anything else is left to npyz's parser, which reports it.
    let text = String::from_utf8_lossy(text);
    if let Some(dims) = shape_dims(&text) {
        if dims.len() > 32 {
            return Err(format!("shape has {} dimensions", dims.len()));
        }
        let mut n: u64 = 1;
        for &d in dims.iter().filter(|&&d| d != 0) {
            n = n
                .checked_mul(d)
                .ok_or_else(|| format!("shape {} is too large", shape_str(&dims)))?;
        }
    }
    Ok(())
}

/// The integers of the `'shape': (..)` entry of a header dict, if it is plainly written.
fn shape_dims(text: &str) -> Option<Vec<u64>> {
    let at = text.find("'shape'").or_else(|| text.find("\"shape\""))?;
    let rest = text[at + 7..].trim_start().strip_prefix(':')?.trim_start();
    let close = match rest.chars().next()? {
        '(' => ')',
        '[' => ']',
        _ => return None,
    };
    let end = rest.find(close)?;
    rest[1..end]
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches(['L', 'l']).parse::<u64>().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
