//! `core_decompose` for one block: a tall `m0 × 3` weight block `A0 ≈ Ce · B`, with `Ce`'s
//! entries `0` or `±2^p` and `B` a dense 3×3 basis (`../shared/docs/smartdeal-algorithm.md` §3,
//! and `docs/decomposition.md`).
//!
//! Notation as in the reference: `A = A0ᵀ` (3 × m0) is fitted as `A ≈ Bt · Ct`; column `r` of
//! `Ct` is row `r` of `Ce`, and `B = Btᵀ`. We store `A` and `Ct` by columns (`[f64; 3]` per
//! block row), which is what every step iterates over.

// Index loops over 3×3 matrices read like the formulas they implement.
#![allow(clippy::needless_range_loop)]

use crate::linalg::{gram_pinv, matvec, pinv, transpose, M3};
use crate::pow2::project;
use serde::Serialize;

/// Options of the decomposition (the reference's `opts`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Options {
    /// `iternum`: at most `iters − 1` alternating iterations, then the final projection.
    pub iters: u32,
    /// Element threshold: coefficients with `|c| < threshold` are zeroed after each C step.
    pub threshold: f64,
    /// With `scale`: factor applied to the threshold when a basis row loses all its
    /// coefficients (the block is then decomposed again).
    pub decay: f64,
    /// Stop when the projected coefficients change by at most `tol` (Frobenius norm).
    pub tol: f64,
    /// Singular values below `rcond · σ_max` are dropped in the least-squares steps.
    pub rcond: f64,
    /// Largest coefficient magnitude (`max_C`, 32 = 2^5).
    pub max_c: f64,
    /// Zero every Ce row whose L1 norm is below `5 · threshold` (the reference does this for
    /// 3×3 convolutions only).
    pub threshold_row: bool,
    /// The reference's `decompose_scale`: before each projection, scale each basis row's
    /// coefficients by `2^mean(round(log2 c) − log2 c)` to reduce the rounding error.
    pub scale: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            iters: 30,
            threshold: 1e-2,
            decay: 0.5,
            tol: 1e-10,
            rcond: 1e-10,
            max_c: 32.0,
            threshold_row: false,
            scale: false,
        }
    }
}

/// The decomposition of one block.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockFit {
    /// `Ce`, one `[f64; 3]` per block row; each entry is 0 or `±2^p`, `|·| ≤ max_c`.
    pub ce: Vec<[f64; 3]>,
    /// `B[k][j]`: basis row `k`, column `j` (`w[r][j] = Σ_k Ce[r][k] · B[k][j]`).
    pub b: M3,
    /// Alternating iterations run (fewer than `iters − 1` when the tolerance stopped it).
    pub iterations: u32,
    /// The element threshold finally used (smaller than the option after decay restarts).
    pub threshold: f64,
}

/// With `scale`, how many times a block is restarted with a decayed threshold before the
/// empty basis rows are left unscaled (the reference recurses without a bound, which never
/// ends on an all-zero block).
pub const MAX_RESTARTS: u32 = 64;

/// Decomposes one block (`a[r]` = the 3 weights of block row `r`).
pub fn decompose_block(a: &[[f64; 3]], opts: &Options) -> BlockFit {
    let mut threshold = opts.threshold;
    let mut restarts = 0;
    loop {
        if !opts.scale {
            // Without scaling there is no restart: the single-pass form applies.
            return fused(a, opts);
        }
        let last_try = restarts >= MAX_RESTARTS;
        if let Some(fit) = attempt(a, opts, threshold, last_try) {
            return fit;
        }
        threshold *= opts.decay;
        restarts += 1;
    }
}

/// One run of the alternating algorithm; `None` when `scale` finds a basis row without
/// coefficients (the caller restarts with a smaller threshold).
fn attempt(a: &[[f64; 3]], opts: &Options, threshold: f64, last_try: bool) -> Option<BlockFit> {
    let m0 = a.len();
    let mut ct: Vec<[f64; 3]> = a.to_vec(); // Ct = A, Bt = I
    let mut cq = vec![[0.0; 3]; m0];
    let mut cq_prev = vec![[0.0; 3]; m0];
    let mut iterations = 0;
    for i in 0..opts.iters.saturating_sub(1) {
        if !quantize(&ct, &mut cq, opts, last_try) {
            return None;
        }
        if i >= 1 {
            let diff: f64 = cq
                .iter()
                .zip(&cq_prev)
                .flat_map(|(x, y)| (0..3).map(move |k| (x[k] - y[k]) * (x[k] - y[k])))
                .sum::<f64>()
                .sqrt();
            if diff <= opts.tol {
                break;
            }
        }
        std::mem::swap(&mut cq, &mut cq_prev);
        let cq = &cq_prev; // this iteration's projection

        // B step: Bt = lstsq(Cqᵀ, Aᵀ)ᵀ.
        let x = basis_step(cq, a, opts.rcond);
        let bt = transpose(&x);

        // C step: Ct = lstsq(Bt, A) = pinv(Bt) · A, column by column.
        let p = pinv(&bt, opts.rcond);
        for (c, ar) in ct.iter_mut().zip(a) {
            *c = matvec(&p, ar);
        }

        // Sparsify: whole rows first (L1 norm), then elements.
        for c in ct.iter_mut() {
            if opts.threshold_row && c[0].abs() + c[1].abs() + c[2].abs() < 5.0 * threshold {
                *c = [0.0; 3];
            }
            for v in c.iter_mut() {
                if v.abs() < threshold {
                    *v = 0.0;
                }
            }
        }
        iterations += 1;
    }
    // Final projection and basis refit (the reference hard-codes rcond = 1e-10 here).
    if !quantize(&ct, &mut cq, opts, last_try) {
        return None;
    }
    let b = basis_step(&cq, a, 1e-10);
    Some(BlockFit {
        ce: cq,
        b,
        iterations,
        threshold,
    })
}

/// The least-squares basis for fixed coefficients: `X = lstsq(Cqᵀ, Aᵀ)` (so `B = X`,
/// `Bt = Xᵀ`), through the 3×3 normal equations `(Cq·Cqᵀ) X = Cq·Aᵀ`.
fn basis_step(cq: &[[f64; 3]], a: &[[f64; 3]], rcond: f64) -> M3 {
    let mut normal = Normal::default();
    for (c, ar) in cq.iter().zip(a) {
        normal.add(c, ar);
    }
    normal.solve(rcond)
}

/// The normal equations of the B step, accumulated row by row.
#[derive(Default)]
struct Normal {
    /// `Cq · Cqᵀ`
    g: M3,
    /// `Cq · Aᵀ`: `h[k][j] = Σ_r c_r[k] · a_r[j]`
    h: M3,
}

impl Normal {
    #[inline]
    fn add(&mut self, c: &[f64; 3], ar: &[f64; 3]) {
        for k in 0..3 {
            if c[k] == 0.0 {
                continue;
            }
            for l in 0..3 {
                self.g[k][l] += c[k] * c[l];
                self.h[k][l] += c[k] * ar[l];
            }
        }
    }

    /// `X = G⁺ · H`, the minimum-norm solution.
    fn solve(&self, rcond: f64) -> M3 {
        let (g, h) = (&self.g, &self.h);
        let gp = gram_pinv(g, rcond);
        let mut x = [[0.0; 3]; 3];
        for k in 0..3 {
            for j in 0..3 {
                x[k][j] = (0..3).map(|l| gp[k][l] * h[l][j]).sum();
            }
        }
        x
    }
}

/// The algorithm without `scale`, in one pass over the rows per iteration: the C step of row
/// `r`, its sparsification, its projection, the change against the previous projection and its
/// share of the next B step's normal equations are computed together. It performs the same
/// floating-point operations in the same order as [`attempt`] (the tests check bit equality);
/// it only never stores the unprojected `Ct`, which the algorithm reads only to project it.
fn fused(a: &[[f64; 3]], opts: &Options) -> BlockFit {
    let thr = opts.threshold;
    let mut cq: Vec<[f64; 3]> = Vec::with_capacity(a.len());
    let mut normal = Normal::default();
    for ar in a {
        // Iteration 0 projects Ct = A.
        let q = ar.map(|v| project(v, opts.max_c));
        normal.add(&q, ar);
        cq.push(q);
    }
    let mut diff2 = f64::INFINITY;
    let mut iterations = 0;
    for i in 0..opts.iters.saturating_sub(1) {
        if i >= 1 && diff2.sqrt() <= opts.tol {
            break;
        }
        let bt = transpose(&normal.solve(opts.rcond));
        let p = pinv(&bt, opts.rcond);
        normal = Normal::default();
        diff2 = 0.0;
        for (q, ar) in cq.iter_mut().zip(a) {
            let mut c = matvec(&p, ar);
            if opts.threshold_row && c[0].abs() + c[1].abs() + c[2].abs() < 5.0 * thr {
                c = [0.0; 3];
            }
            let mut next = [0.0; 3];
            for k in 0..3 {
                let v = if c[k].abs() < thr { 0.0 } else { c[k] };
                next[k] = project(v, opts.max_c);
                diff2 += (next[k] - q[k]) * (next[k] - q[k]);
            }
            normal.add(&next, ar);
            *q = next;
        }
        iterations += 1;
    }
    let b = normal.solve(1e-10);
    BlockFit {
        ce: cq,
        b,
        iterations,
        threshold: thr,
    }
}

/// Projects `ct` onto signed powers of two into `cq`. With `scale`, returns false when a basis
/// row (a row of Ct) has no nonzero coefficient, unless `last_try` (then that row is unscaled).
fn quantize(ct: &[[f64; 3]], cq: &mut [[f64; 3]], opts: &Options, last_try: bool) -> bool {
    let mut d = [1.0f64; 3];
    if opts.scale {
        for (k, dk) in d.iter_mut().enumerate() {
            let (mut sum, mut n) = (0.0, 0usize);
            for c in ct {
                let v = c[k].abs();
                if v > 0.0 {
                    let l = v.log2();
                    sum += l.round_ties_even() - l; // numpy's round is half to even
                    n += 1;
                }
            }
            if n == 0 {
                if !last_try {
                    return false;
                }
            } else {
                *dk = (sum / n as f64).exp2();
            }
        }
    }
    for (q, c) in cq.iter_mut().zip(ct) {
        for k in 0..3 {
            q[k] = project(c[k] * d[k], opts.max_c);
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reconstruct(fit: &BlockFit) -> Vec<[f64; 3]> {
        fit.ce
            .iter()
            .map(|c| {
                let mut w = [0.0; 3];
                for (j, wj) in w.iter_mut().enumerate() {
                    *wj = (0..3).map(|k| c[k] * fit.b[k][j]).sum();
                }
                w
            })
            .collect()
    }

    #[test]
    fn an_exact_power_of_two_combination_is_recovered_exactly() {
        // A = Ce·B with Ce entries powers of two and B = I: the first projection is exact, the
        // B step returns I, and nothing changes after that.
        let a: Vec<[f64; 3]> = vec![
            [1.0, 0.0, -0.5],
            [0.25, 2.0, 0.0],
            [-4.0, 0.125, 1.0],
            [0.0, -1.0, 0.5],
        ];
        let fit = decompose_block(&a, &Options::default());
        assert_eq!(fit.ce, a);
        for (w, x) in reconstruct(&fit).iter().zip(&a) {
            for j in 0..3 {
                assert!((w[j] - x[j]).abs() < 1e-12, "{w:?} vs {x:?}");
            }
        }
        assert!(fit.iterations <= 2, "{}", fit.iterations);
    }

    #[test]
    fn hand_checked_two_row_block() {
        // A0 = [[3, 0, 0], [0.3, 0, 0]]: only basis row 0 can carry weight.
        // Iteration 0: Ct = A; projection: 3 → 2 (tie to the smaller power), 0.3 → 0.25.
        // B step: min-norm least squares with Cq = [[2,0,0],[0.25,0,0]]: B row 0 =
        // (2·3 + 0.25·0.3) / (4 + 0.0625) = 6.075 / 4.0625 = 1.495384…, rows 1 and 2 = 0
        // (their coefficient columns are zero, so gelsd sets them to zero).
        // C step: Ct = pinv(Bt)·A: c = a / 1.4954 → [2.006, 0.2006] → projection [2, 0.25] again:
        // converged, the final refit gives the same B.
        let a = vec![[3.0, 0.0, 0.0], [0.3, 0.0, 0.0]];
        let fit = decompose_block(&a, &Options::default());
        assert_eq!(fit.ce, vec![[2.0, 0.0, 0.0], [0.25, 0.0, 0.0]]);
        let want = 6.075 / 4.0625;
        assert!((fit.b[0][0] - want).abs() < 1e-12, "{:?}", fit.b);
        for (k, row) in fit.b.iter().enumerate() {
            for (j, v) in row.iter().enumerate() {
                if (k, j) != (0, 0) {
                    assert_eq!(*v, 0.0, "B[{k}][{j}]");
                }
            }
        }
    }

    #[test]
    fn element_threshold_zeroes_small_coefficients() {
        // One tiny row among large ones: after the C step its coefficients fall below the
        // threshold and are zeroed.
        // Well-conditioned rows (no weak basis direction that would amplify the tiny row).
        let mut a: Vec<[f64; 3]> = (0..20)
            .map(|r| {
                let x = r as f64;
                [x.sin(), (1.7 * x).cos(), (0.6 * x + 1.0).sin()]
            })
            .collect();
        a.push([1e-4, -2e-4, 5e-5]);
        let opts = Options {
            threshold: 1e-2,
            ..Options::default()
        };
        let fit = decompose_block(&a, &opts);
        assert_eq!(fit.ce[20], [0.0; 3]);
        assert!(fit.ce[..20].iter().all(|c| c.iter().any(|v| *v != 0.0)));
    }

    #[test]
    fn row_threshold_zeroes_rows_with_a_small_l1_norm() {
        // Row 5's coefficients are each above the element threshold but their L1 norm is below
        // 5 × threshold: only row thresholding removes it.
        let mut a: Vec<[f64; 3]> = (0..12)
            .map(|r| [1.0 + r as f64, 2.0 - r as f64, 0.5 * r as f64 - 1.0])
            .collect();
        a[5] = [0.015, -0.015, 0.015];
        let base = Options {
            threshold: 0.01,
            ..Options::default()
        };
        let without = decompose_block(&a, &base);
        let with = decompose_block(
            &a,
            &Options {
                threshold_row: true,
                ..base
            },
        );
        assert!(
            without.ce[5].iter().any(|v| *v != 0.0),
            "{:?}",
            without.ce[5]
        );
        assert_eq!(with.ce[5], [0.0; 3]);
    }

    #[test]
    fn an_all_zero_coefficient_column_gives_a_zero_basis_row() {
        // Column 2 of the weights is zero and rows are multiples of (1, 2, 0): after the first
        // iteration only one basis row is used; the unused rows of B must be exactly zero
        // (minimum-norm least squares), not noise.
        let a: Vec<[f64; 3]> = [1.0, -0.5, 2.0, 0.25, -4.0]
            .iter()
            .map(|s| [*s, 2.0 * s, 0.0])
            .collect();
        let fit = decompose_block(&a, &Options::default());
        let used: Vec<usize> = (0..3)
            .filter(|&k| fit.ce.iter().any(|c| c[k] != 0.0))
            .collect();
        for k in 0..3 {
            if !used.contains(&k) {
                assert_eq!(fit.b[k], [0.0; 3], "B row {k} of {:?}", fit.b);
            }
        }
        let err: f64 = reconstruct(&fit)
            .iter()
            .zip(&a)
            .flat_map(|(w, x)| (0..3).map(move |j| (w[j] - x[j]).powi(2)))
            .sum();
        assert!(err < 1e-20, "rank-one block is represented exactly: {err}");
    }

    #[test]
    fn coefficients_are_signed_powers_of_two_within_max_c() {
        let a: Vec<[f64; 3]> = (0..64)
            .map(|r| {
                let x = r as f64 * 0.37;
                [x.sin() * 80.0, (1.3 * x).cos(), (0.7 * x).sin() * 0.02]
            })
            .collect();
        let fit = decompose_block(&a, &Options::default());
        for v in fit.ce.iter().flatten().filter(|v| **v != 0.0) {
            let m = v.abs();
            assert!(m <= 32.0);
            assert_eq!(crate::pow2::nearest_pow2(m), m);
        }
    }

    #[test]
    fn the_single_pass_form_is_bit_identical_to_the_step_by_step_one() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for case in 0..200 {
            let rows = rng.gen_range(1..150);
            let a: Vec<[f64; 3]> = (0..rows)
                .map(|_| [0; 3].map(|_: i32| rng.gen_range(-0.2..0.2)))
                .collect();
            let opts = Options {
                iters: rng.gen_range(1..40),
                threshold: [0.0, 1e-3, 1e-2, 5e-2][case % 4],
                threshold_row: case % 3 == 0,
                ..Options::default()
            };
            let step = attempt(&a, &opts, opts.threshold, true).unwrap();
            assert_eq!(fused(&a, &opts), step, "case {case}");
        }
    }

    #[test]
    fn scale_with_an_all_zero_block_terminates() {
        let a = vec![[0.0; 3]; 8];
        let fit = decompose_block(
            &a,
            &Options {
                scale: true,
                ..Options::default()
            },
        );
        assert!(fit.ce.iter().flatten().all(|v| *v == 0.0));
        assert_eq!(fit.b, [[0.0; 3]; 3]);
    }
}
