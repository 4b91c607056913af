//! Helpers shared by the weight loader's unit tests: building safetensors and `.npy` files in
//! memory, loading them and checking the error messages, and mutating files for the proptests.

use std::path::{Path, PathBuf};

use half::{bf16, f16};
use npyz::WriterBuilder;
use proptest::prelude::*;
use safetensors::tensor::{Dtype, TensorView};

use super::load;
use super::types::Tensor;

pub(super) fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(super) fn f16_bytes(v: &[f32]) -> Vec<u8> {
    v.iter()
        .flat_map(|&x| f16::from_f32(x).to_le_bytes())
        .collect()
}

pub(super) fn bf16_bytes(v: &[f32]) -> Vec<u8> {
    v.iter()
        .flat_map(|&x| bf16::from_f32(x).to_le_bytes())
        .collect()
}

pub(super) fn f64_bytes(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(super) fn i32_bytes(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// One tensor for [`safetensors_bytes`]: name, dtype, shape, raw little-endian data.
pub(super) type Spec = (&'static str, Dtype, Vec<usize>, Vec<u8>);

pub(super) fn f32_spec(name: &'static str, shape: &[usize], v: &[f32]) -> Spec {
    (name, Dtype::F32, shape.to_vec(), f32_bytes(v))
}

pub(super) fn safetensors_bytes(specs: &[Spec]) -> Vec<u8> {
    let views: Vec<(&str, TensorView)> = specs
        .iter()
        .map(|(name, dtype, shape, data)| {
            (*name, TensorView::new(*dtype, shape.clone(), data).unwrap())
        })
        .collect();
    safetensors::serialize(views, &None).unwrap()
}

pub(super) fn write(dir: &Path, file: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(file);
    std::fs::write(&path, bytes).unwrap();
    path
}

pub(super) fn st_file(dir: &Path, specs: &[Spec]) -> PathBuf {
    write(dir, "model.safetensors", &safetensors_bytes(specs))
}

pub(crate) fn npy_bytes<T: npyz::AutoSerialize + Copy>(
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

pub(super) fn names(ts: &[Tensor]) -> Vec<&str> {
    ts.iter().map(|t| t.name.as_str()).collect()
}

pub(super) fn sel(s: &[&str]) -> Vec<String> {
    s.iter().map(|s| s.to_string()).collect()
}

pub(super) fn err(path: &Path, select: &[&str]) -> String {
    let e = load(path, &sel(select)).unwrap_err();
    let msg = e.to_string();
    assert!(!msg.contains('\n'), "multi-line message: {msg}");
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    msg
}

/// A small model: two linear layers (one with a bias), a LayerNorm and an integer buffer.
pub(super) fn model(dir: &Path) -> PathBuf {
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

/// Applies `edits` (position chosen among the first `span` bytes, new byte) and an optional
/// truncation to `good`.
pub(super) fn mutate(
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
pub(super) fn edit_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        any::<u8>(),
        prop::sample::select(b"0123456789,:[](){}\"' -.e".to_vec()),
    ]
}

pub(super) fn edits() -> impl Strategy<Value = Vec<(prop::sample::Index, u8)>> {
    prop::collection::vec((any::<prop::sample::Index>(), edit_byte()), 0..6)
}
