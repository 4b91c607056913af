//! Input second moments per Ce row, the statistics the activation-aware ("output") objective
//! weighs the decomposition and the row selection with (docs/decomposition.md §2.1).
//!
//! A layer's output error for an input `x` is `Σ_r (w_r − ŵ_r)ᵀ x_r`, `x_r` the three inputs
//! that meet Ce row `r`. Its expected square, keeping only the diagonal blocks of the input
//! covariance, is `Σ_r e_rᵀ H_r e_r` with `H_r = E[x_r x_rᵀ]`: what this module accumulates.

use crate::linalg::M3;

/// Sums of `x_r x_rᵀ` per Ce row over the samples seen.
#[derive(Debug, Clone, PartialEq)]
pub struct RowMoments {
    /// `Σ x_r x_rᵀ`, one 3×3 matrix per row.
    pub sums: Vec<M3>,
    /// Samples (vectors, or output positions of a convolution) added.
    pub samples: u64,
}

impl RowMoments {
    /// No samples yet, for a layer with `rows` Ce rows.
    pub fn new(rows: usize) -> RowMoments {
        RowMoments {
            sums: vec![[[0.0; 3]; 3]; rows],
            samples: 0,
        }
    }

    fn add_triple(&mut self, r: usize, v: [f64; 3]) {
        let h = &mut self.sums[r];
        for i in 0..3 {
            for j in 0..3 {
                h[i][j] += v[i] * v[j];
            }
        }
    }

    /// Adds input vectors `x` (`[T, inputs]`, C order): row `r` = inputs `3r..3r+2`, zero
    /// padded past `inputs` (a fully connected layer, or a convolution's im2col patches in
    /// `(ci, kh, kw)` order).
    pub fn add_vectors(&mut self, x: &[f32], inputs: usize) {
        for v in x.chunks_exact(inputs.max(1)) {
            for (r, t) in v.chunks(3).enumerate() {
                let mut tri = [0.0; 3];
                for (d, s) in tri.iter_mut().zip(t) {
                    *d = f64::from(*s);
                }
                self.add_triple(r, tri);
            }
            self.samples += 1;
        }
    }

    /// Adds the input images `x` (`[N, cin, height, width]`, C order) of a 3×3 convolution with
    /// `stride` and zero `padding`: row `ci·3 + kh` sees taps `kw = 0..2` of input channel
    /// `ci`, kernel row `kh`, at every output position (zeros where the kernel overlaps the
    /// padding, which is what the accelerator multiplies there too).
    pub fn add_conv3x3(
        &mut self,
        x: &[f32],
        cin: usize,
        (height, width): (usize, usize),
        stride: usize,
        padding: usize,
    ) {
        let (oh, ow) = (
            (height + 2 * padding).saturating_sub(3) / stride + 1,
            (width + 2 * padding).saturating_sub(3) / stride + 1,
        );
        let at = |plane: &[f32], y: isize, xx: isize| -> f64 {
            if y < 0 || xx < 0 || y >= height as isize || xx >= width as isize {
                0.0
            } else {
                f64::from(plane[y as usize * width + xx as usize])
            }
        };
        for img in x.chunks_exact(cin * height * width) {
            for (ci, plane) in img.chunks_exact(height * width).enumerate() {
                for kh in 0..3 {
                    for oy in 0..oh {
                        let y = (oy * stride + kh) as isize - padding as isize;
                        for ox in 0..ow {
                            let x0 = (ox * stride) as isize - padding as isize;
                            let v = [at(plane, y, x0), at(plane, y, x0 + 1), at(plane, y, x0 + 2)];
                            self.add_triple(ci * 3 + kh, v);
                        }
                    }
                }
            }
            self.samples += (oh * ow) as u64;
        }
    }

    /// `H_r = Σ x_r x_rᵀ / samples` (all zero before any sample).
    pub fn mean(&self) -> Vec<M3> {
        let n = self.samples.max(1) as f64;
        self.sums
            .iter()
            .map(|h| h.map(|row| row.map(|v| v / n)))
            .collect()
    }
}

/// Relative diagonal damping of the moments the decomposition solves with.
pub const DAMPING: f64 = 1e-3;

/// `H_r + DAMPING · d · I` with `d` the mean diagonal entry over all rows of the layer.
///
/// An input that is always zero (a dead ReLU channel, padding, a constant-zero feature) makes
/// `H_r` singular: the weighted least-squares steps would leave those coefficients undefined
/// (minimum norm: zero) and a coefficient a block shares with live rows unconstrained. The small
/// ridge keeps every step well posed and, for such rows, falls back to the plain weight fit at
/// a negligible weight; it also scales with the layer, so the objective's minimizer does not
/// depend on the activations' units.
pub fn damped(h: &[M3]) -> Vec<M3> {
    let d =
        h.iter().map(|m| m[0][0] + m[1][1] + m[2][2]).sum::<f64>() / (3 * h.len()).max(1) as f64;
    // A layer whose inputs were all zero: any positive ridge gives the plain weight fit.
    let ridge = if d > 0.0 { DAMPING * d } else { 1.0 };
    h.iter()
        .map(|m| {
            let mut m = *m;
            for (i, row) in m.iter_mut().enumerate() {
                row[i] += ridge;
            }
            m
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_are_cut_into_zero_padded_triples() {
        // 2 samples of 4 inputs: rows (x0, x1, x2) and (x3, 0, 0).
        let mut m = RowMoments::new(2);
        m.add_vectors(&[1.0, 2.0, 0.0, 3.0, -1.0, 0.0, 1.0, 1.0], 4);
        assert_eq!(m.samples, 2);
        assert_eq!(
            m.sums[0],
            [[2.0, 2.0, -1.0], [2.0, 4.0, 0.0], [-1.0, 0.0, 1.0]]
        );
        assert_eq!(m.sums[1], [[10.0, 0.0, 0.0], [0.0; 3], [0.0; 3]]);
        assert_eq!(m.mean()[1][0][0], 5.0);
    }

    #[test]
    fn conv_moments_equal_those_of_the_im2col_patches() {
        // One 2-channel 3×4 image, padding 1, stride 1 and 2: the moments from the images
        // equal the moments of explicitly built patches (zeros in the padding).
        let (cin, h, w) = (2usize, 3usize, 4usize);
        let x: Vec<f32> = (0..cin * h * w)
            .map(|i| ((i * 7) % 5) as f32 - 2.0)
            .collect();
        for stride in [1usize, 2] {
            let mut direct = RowMoments::new(cin * 3);
            direct.add_conv3x3(&x, cin, (h, w), stride, 1);
            let mut patches = Vec::new();
            let (oh, ow) = ((h - 1) / stride + 1, (w - 1) / stride + 1);
            for oy in 0..oh {
                for ox in 0..ow {
                    for ci in 0..cin {
                        for kh in 0..3 {
                            for kw in 0..3 {
                                let (y, xx) = (oy * stride + kh, ox * stride + kw);
                                let inside = (1..=h).contains(&y) && (1..=w).contains(&xx);
                                patches.push(if inside {
                                    x[ci * h * w + (y - 1) * w + xx - 1]
                                } else {
                                    0.0
                                });
                            }
                        }
                    }
                }
            }
            let mut via = RowMoments::new(cin * 3);
            via.add_vectors(&patches, cin * 9);
            assert_eq!(direct, via, "stride {stride}");
        }
    }

    #[test]
    fn damping_adds_a_ridge_relative_to_the_mean_diagonal() {
        let mut a = [[0.0; 3]; 3];
        a[0][0] = 6.0; // mean diagonal over 2 rows: 6 / 6 = 1
        let d = damped(&[a, [[0.0; 3]; 3]]);
        assert_eq!(d[0][0][0], 6.0 + DAMPING);
        assert_eq!(d[1][2][2], DAMPING);
        assert_eq!(d[1][0][1], 0.0);
        assert_eq!(damped(&[[[0.0; 3]; 3]])[0][1][1], 1.0);
    }
}
