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
//!
//! # Parts
//!
//! This file holds the types and the entry point; the private submodules hold the rest: `select`
//! (which tensors a list of names and globs picks), `checks` (rank, dimensions, finite values,
//! f64 narrowing), and one reader per format, `safetensors_file` and `npy_file` (whose header
//! goes through the strict parser in [`crate::npy`] first).

use std::path::Path;

mod checks;
mod npy_file;
mod safetensors_file;
mod select;

mod types;

use npy_file::load_npy;
use safetensors_file::{load_safetensors, load_safetensors_arrays};
pub use types::{Array, Tensor, WeightsError};

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

/// The arrays named in `names` that `path` holds, of any rank (absent names are left out): the
/// tensors a weight is combined with, such as a batch norm's `running_mean`. A `.npy` file holds
/// a single weight array, so it has none.
pub fn load_arrays(
    path: &Path,
    names: &[String],
) -> Result<std::collections::BTreeMap<String, Array>, WeightsError> {
    match format_of(path)? {
        Format::Npy => Ok(Default::default()),
        Format::Safetensors => {
            let bytes = std::fs::read(path).map_err(|source| WeightsError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            load_safetensors_arrays(path, &bytes, names)
        }
    }
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

#[cfg(test)]
pub(crate) mod test_util;

#[cfg(test)]
mod tests {
    use super::test_util::*;
    use super::*;
    use proptest::prelude::*;

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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let mut npy = b"\x93NUMPY\x01\x00".to_vec();
            npy.extend_from_slice(&bytes);
            let _ = load_bytes(Path::new("x.npy"), Format::Npy, &npy, &[]);
            let _ = load_bytes(Path::new("x.safetensors"), Format::Safetensors, &bytes, &[]);
        }
    }

    #[test]
    fn arrays_of_any_rank_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = model(dir.path());
        let got = load_arrays(
            &path,
            &sel(&["ln.weight", "fc1.weight", "nope", "ln.weight"]),
        )
        .unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got["ln.weight"].shape, [3]);
        assert_eq!(got["ln.weight"].data, [1., 1., 1.]);
        assert_eq!(got["fc1.weight"].shape, [2, 3]);
        // A .npy file holds one weight array and nothing else.
        let npy = write(
            dir.path(),
            "w.npy",
            &npy_bytes(&[1, 2], npyz::Order::C, &[1f32, 2.]),
        );
        assert!(load_arrays(&npy, &sel(&["w"])).unwrap().is_empty());
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
