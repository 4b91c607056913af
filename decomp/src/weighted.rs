//! The block fit of the activation-aware ("output") objective: `Σ_r e_rᵀ H_r e_r`, `e_r = a_r −
//! Bᵀc_r`, instead of `Σ_r ‖e_r‖²` (docs/decomposition.md §2.1; `H_r` from [`crate::moments`]).
//!
//! The iteration is [`crate::block`]'s single-pass one with both least-squares steps weighted:
//! - C step, per row: `c = (B H Bᵀ)⁺ B H a`. When `B` is invertible this is `B⁻ᵀ a` whatever
//!   `H` is (the fit is exact before thresholding and projection), so the weighting only acts
//!   through a singular basis; we take the plain inverse then, as the weight objective does.
//! - B step: the 9×9 normal equations `Σ_r (c_r c_rᵀ) ⊗ H_r vec(B) = Σ_r vec(c_r (H_r a_r)ᵀ)`,
//!   `vec(B)[k·3 + j] = B[k][j]`, solved for the minimum-norm solution.

// Index loops over small matrices read like the formulas they implement.
#![allow(clippy::needless_range_loop)]

use crate::block::{BlockFit, Options};
use crate::linalg::{
    gram_pinv, inverse_checked, jacobi_eigen, matvec, transpose, GRAM_REL_TOL, M3,
};
use crate::pow2::project;

/// A 9×9 matrix: the B step's normal equations, unknown `B[k][j]` at index `k·3 + j`.
pub type M9 = [[f64; 9]; 9];

/// The weighted B step's normal equations, accumulated row by row.
#[derive(Clone)]
struct Normal9 {
    m: M9,
    rhs: [f64; 9],
}

impl Default for Normal9 {
    fn default() -> Self {
        Normal9 {
            m: [[0.0; 9]; 9],
            rhs: [0.0; 9],
        }
    }
}

impl Normal9 {
    /// Adds row `c` with moments `h` and `ha = h · a`.
    #[inline]
    fn add(&mut self, c: &[f64; 3], h: &M3, ha: &[f64; 3]) {
        for k in 0..3 {
            if c[k] == 0.0 {
                continue;
            }
            for j in 0..3 {
                self.rhs[k * 3 + j] += c[k] * ha[j];
            }
            for m in 0..3 {
                let ckm = c[k] * c[m];
                if ckm == 0.0 {
                    continue;
                }
                for j in 0..3 {
                    for l in 0..3 {
                        self.m[k * 3 + j][m * 3 + l] += ckm * h[j][l];
                    }
                }
            }
        }
    }

    /// The objective at basis `b`, less the constant `Σ aᵀ H a`: `xᵀ M x − 2 xᵀ rhs`.
    fn value(&self, b: &M3) -> f64 {
        let x: Vec<f64> = b.iter().flatten().copied().collect();
        (0..9)
            .map(|i| x[i] * ((0..9).map(|j| self.m[i][j] * x[j]).sum::<f64>() - 2.0 * self.rhs[i]))
            .sum()
    }

    fn solve(&self, rcond: f64) -> M3 {
        let x = sym9_solve(&self.m, &self.rhs, rcond);
        let mut b = [[0.0; 3]; 3];
        for k in 0..3 {
            for j in 0..3 {
                b[k][j] = x[k * 3 + j];
            }
        }
        b
    }
}

/// The minimum-norm solution of `m x = b` for a symmetric positive semi-definite `m`,
/// eigenvalues below `max(rcond², GRAM_REL_TOL) · λ_max` counted as zero (the cut of
/// [`gram_pinv`], for the same reason: these are normal equations).
pub fn sym9_solve(m: &M9, b: &[f64; 9], rcond: f64) -> [f64; 9] {
    if let Some(x) = cholesky_solve(m, b) {
        return x;
    }
    let (lam, v) = jacobi_eigen(m, 64);
    let lmax = lam.iter().cloned().fold(0.0, f64::max);
    let cut = (rcond * rcond).max(GRAM_REL_TOL) * lmax;
    let mut x = [0.0; 9];
    for k in 0..9 {
        if lam[k] > cut && lam[k] > 0.0 {
            let proj: f64 = (0..9).map(|i| v[i][k] * b[i]).sum::<f64>() / lam[k];
            for i in 0..9 {
                x[i] += v[i][k] * proj;
            }
        }
    }
    x
}

/// `m x = b` by Cholesky when every pivot exceeds `1e-10 ·` the largest diagonal entry, else
/// `None`. An unused basis row (a zero coefficient column) gives exact zero pivots and two
/// proportional coefficient columns tiny ones; both go to the eigen-decomposition, whose
/// minimum-norm cut this fast path would otherwise miss. (A pivot bounds the smallest
/// eigenvalue from above, not from below, so the check is a heuristic like `gram_pinv`'s
/// determinant test; between the two cuts both give the same solution up to rounding.)
fn cholesky_solve(m: &M9, b: &[f64; 9]) -> Option<[f64; 9]> {
    let dmax = (0..9).map(|i| m[i][i]).fold(0.0, f64::max);
    if dmax <= 0.0 || !dmax.is_finite() {
        return None;
    }
    let mut l = [[0.0; 9]; 9];
    for j in 0..9 {
        let mut d = m[j][j];
        for k in 0..j {
            d -= l[j][k] * l[j][k];
        }
        if d <= 1e-10 * dmax {
            return None;
        }
        let ljj = d.sqrt();
        l[j][j] = ljj;
        for i in j + 1..9 {
            let mut s = m[i][j];
            for k in 0..j {
                s -= l[i][k] * l[j][k];
            }
            l[i][j] = s / ljj;
        }
    }
    let mut y = [0.0; 9];
    for i in 0..9 {
        let s: f64 = (0..i).map(|k| l[i][k] * y[k]).sum();
        y[i] = (b[i] - s) / l[i][i];
    }
    let mut x = [0.0; 9];
    for i in (0..9).rev() {
        let s: f64 = (i + 1..9).map(|k| l[k][i] * x[k]).sum();
        x[i] = (y[i] - s) / l[i][i];
    }
    Some(x)
}

/// `B H Bᵀ`: the metric of a coefficient change's output error for a row with moments `h`.
#[inline]
fn metric(b: &M3, h: &M3) -> M3 {
    let mut bh = [[0.0; 3]; 3];
    for k in 0..3 {
        for l in 0..3 {
            bh[k][l] = (0..3).map(|j| b[k][j] * h[j][l]).sum();
        }
    }
    let mut g = [[0.0; 3]; 3];
    for k in 0..3 {
        for m in 0..3 {
            g[k][m] = (0..3).map(|l| bh[k][l] * b[m][l]).sum();
        }
    }
    g
}

/// The power-of-two neighbours of `v` (below and above, clipped to `max_c`; one if `v` is 0,
/// a power of two, or beyond `max_c`).
fn neighbours(v: f64, max_c: f64) -> ([f64; 2], usize) {
    const MANT: u64 = (1 << 52) - 1;
    if v == 0.0 {
        return ([0.0; 2], 1);
    }
    let near = project(v, max_c);
    if near.abs() >= max_c || v.to_bits() & MANT == 0 || !v.is_normal() {
        return ([near, near], 1);
    }
    let lo = f64::from_bits(v.to_bits() & !MANT);
    ([lo, (2.0 * lo).abs().min(max_c).copysign(v)], 2)
}

/// Rounds `c` to powers of two minimizing the output error `(a − Bᵀq)ᵀ H (a − Bᵀq) =
/// qᵀ G q − 2 qᵀ (B H a) + const` (`g = B H Bᵀ`, `bha = B H a`) over the up to 8 combinations
/// of each coefficient's two neighbours; the nearest powers win ties.
fn round_aware(c: &[f64; 3], g: &M3, bha: &[f64; 3], max_c: f64) -> [f64; 3] {
    let nb = c.map(|v| neighbours(v, max_c));
    let cost = |q: &[f64; 3]| -> f64 {
        let gq = matvec(g, q);
        (0..3).map(|k| q[k] * (gq[k] - 2.0 * bha[k])).sum()
    };
    let mut best = c.map(|v| project(v, max_c));
    let mut best_cost = cost(&best);
    for i in 0..nb[0].1 {
        for j in 0..nb[1].1 {
            for k in 0..nb[2].1 {
                let q = [nb[0].0[i], nb[1].0[j], nb[2].0[k]];
                let e = cost(&q);
                if e < best_cost {
                    best = q;
                    best_cost = e;
                }
            }
        }
    }
    best
}

/// Decomposes one block under the output objective: `a[r]` the weights of block row `r`, `h[r]`
/// its input moments (damped: [`crate::moments::damped`]). Options as [`crate::block`]'s;
/// `scale` is not supported (the caller refuses it).
pub fn decompose_block_weighted(a: &[[f64; 3]], h: &[M3], opts: &Options) -> BlockFit {
    fit(a, h, opts, true)
}

/// The weighted iteration; `aware` rounds each row's coefficients by [`round_aware`] instead
/// of to the nearest powers and returns the best iterate rather than the last (without it, and
/// with `H = I`, this is the weight objective's fit, which the tests use to check the weighted
/// least squares).
///
/// The alternation with a projection in between is not monotone: an iteration can raise the
/// objective, so with `aware` every thresholded iterate's coefficients, with their optimal
/// basis, are scored (the B step's normal equations give the objective for free) and the best
/// kept.
fn fit(a: &[[f64; 3]], h: &[M3], opts: &Options, aware: bool) -> BlockFit {
    let thr = opts.threshold;
    let ha: Vec<[f64; 3]> = a.iter().zip(h).map(|(ar, hr)| matvec(hr, ar)).collect();
    let mut cq: Vec<[f64; 3]> = Vec::with_capacity(a.len());
    let mut normal = Normal9::default();
    for ((ar, hr), har) in a.iter().zip(h).zip(&ha) {
        // Iteration 0 projects Ct = A (Bt = I), as the weight objective does.
        let q = ar.map(|v| project(v, opts.max_c));
        normal.add(&q, hr, har);
        cq.push(q);
    }
    let mut diff2 = f64::INFINITY;
    let mut iterations = 0;
    let mut best: Option<(f64, Vec<[f64; 3]>, Normal9)> = None;
    for i in 0..opts.iters.saturating_sub(1) {
        if i >= 1 && diff2.sqrt() <= opts.tol {
            break;
        }
        let b = normal.solve(opts.rcond);
        // Iterate 0 is the projection of the raw weights, which no threshold has thinned: it
        // often fits better and always costs more, so it does not compete.
        if aware && i >= 1 {
            let v = normal.value(&b);
            if best.as_ref().is_none_or(|(bv, _, _)| v < *bv) {
                best = Some((v, cq.clone(), normal.clone()));
            }
        }
        // See the module notes: with an invertible basis the C step ignores H.
        let inv = inverse_checked(&transpose(&b), opts.rcond);
        normal = Normal9::default();
        diff2 = 0.0;
        for (((q, ar), hr), har) in cq.iter_mut().zip(a).zip(h).zip(&ha) {
            let need_metric = aware || inv.is_none();
            let g = if need_metric {
                metric(&b, hr)
            } else {
                [[0.0; 3]; 3]
            };
            let bha = matvec(&b, har);
            let mut c = match &inv {
                Some(inv) => matvec(inv, ar),
                None => matvec(&gram_pinv(&g, opts.rcond), &bha),
            };
            if opts.threshold_row && c[0].abs() + c[1].abs() + c[2].abs() < 5.0 * thr {
                c = [0.0; 3];
            }
            for v in c.iter_mut() {
                if v.abs() < thr {
                    *v = 0.0;
                }
            }
            let next = if aware {
                round_aware(&c, &g, &bha, opts.max_c)
            } else {
                c.map(|v| project(v, opts.max_c))
            };
            for k in 0..3 {
                diff2 += (next[k] - q[k]) * (next[k] - q[k]);
            }
            normal.add(&next, hr, har);
            *q = next;
        }
        iterations += 1;
    }
    let mut b = normal.solve(1e-10);
    if let Some((v, bcq, bn)) = best {
        if v < normal.value(&b) {
            cq = bcq;
            b = bn.solve(1e-10);
        }
    }
    BlockFit {
        ce: cq,
        b,
        iterations,
        threshold: thr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::decompose_block;
    use rand::{Rng, SeedableRng};

    /// `Σ_r e_rᵀ H_r e_r` of a fit.
    fn output_error(fit: &BlockFit, a: &[[f64; 3]], h: &[M3]) -> f64 {
        fit.ce
            .iter()
            .zip(a)
            .zip(h)
            .map(|((c, ar), hr)| {
                let mut e = *ar;
                for j in 0..3 {
                    e[j] -= (0..3).map(|k| c[k] * fit.b[k][j]).sum::<f64>();
                }
                crate::layer::quad_form(hr, &e)
            })
            .sum()
    }

    fn random_block(rng: &mut impl Rng, rows: usize) -> Vec<[f64; 3]> {
        (0..rows)
            .map(|_| [0; 3].map(|_: i32| rng.gen_range(-0.2..0.2)))
            .collect()
    }

    #[test]
    fn the_9x9_solver_gives_the_minimum_norm_solution() {
        // M = G ⊗ I with G of rank 2 (coefficient column 1 = 2 × column 0): the solution
        // must satisfy the equations and be orthogonal to the null space, as gram_pinv's.
        let cs = [
            [1.0, 2.0, 0.5],
            [-0.5, -1.0, 2.0],
            [0.25, 0.5, 1.0],
            [2.0, 4.0, -1.0],
        ];
        let a = [
            [1.0, 0.0, 2.0],
            [0.5, -1.0, 0.0],
            [0.0, 3.0, 1.0],
            [1.0, 1.0, 1.0],
        ];
        let mut n = Normal9::default();
        let id = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
        let mut g = [[0.0; 3]; 3];
        let mut hh = [[0.0; 3]; 3];
        for (c, ar) in cs.iter().zip(&a) {
            n.add(c, &id, ar);
            for k in 0..3 {
                for l in 0..3 {
                    g[k][l] += c[k] * c[l];
                    hh[k][l] += c[k] * ar[l];
                }
            }
        }
        assert!(cholesky_solve(&n.m, &n.rhs).is_none());
        let b = n.solve(1e-10);
        let gp = gram_pinv(&g, 1e-10);
        for k in 0..3 {
            for j in 0..3 {
                let want: f64 = (0..3).map(|l| gp[k][l] * hh[l][j]).sum();
                assert!(
                    (b[k][j] - want).abs() < 1e-9,
                    "B[{k}][{j}] {} vs {want}",
                    b[k][j]
                );
            }
        }
    }

    #[test]
    fn with_identity_moments_the_fit_is_the_weight_objectives() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let id = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
        for case in 0..60 {
            let rows = rng.gen_range(3..120);
            let a = random_block(&mut rng, rows);
            let opts = Options {
                iters: rng.gen_range(2..30),
                threshold: [0.0, 1e-3, 1e-2][case % 3],
                ..Options::default()
            };
            let plain = decompose_block(&a, &opts);
            let w = fit(&a, &vec![id; rows], &opts, false);
            assert_eq!(w.ce, plain.ce, "case {case}");
            for k in 0..3 {
                for j in 0..3 {
                    assert!((w.b[k][j] - plain.b[k][j]).abs() < 1e-9, "case {case}");
                }
            }
        }
    }

    #[test]
    fn the_threshold_thins_the_coefficients_as_it_does_for_the_weight_objective() {
        // The unthresholded first projection often fits better and must still not be returned
        // (it has twice the weight objective's nonzeros here). The output objective's own
        // fixed points keep more coefficients than the weight objective's (about 1.4× here:
        // the price of the lower output error), but far fewer than that projection.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
        let (mut plain_nz, mut aware_nz) = (0, 0);
        for _ in 0..20 {
            let a = random_block(&mut rng, 64);
            let h: Vec<M3> = (0..64)
                .map(|_| {
                    let s = rng.gen_range(0.1..10.0);
                    [[s, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
                })
                .collect();
            let opts = Options {
                threshold: 0.1,
                ..Options::default()
            };
            let nz = |f: &BlockFit| f.ce.iter().flatten().filter(|v| **v != 0.0).count();
            plain_nz += nz(&decompose_block(&a, &opts));
            aware_nz += nz(&decompose_block_weighted(&a, &h, &opts));
        }
        assert!(
            plain_nz < 20 * 64 * 3 * 3 / 4,
            "the threshold thins: {plain_nz}"
        );
        assert!(aware_nz * 10 < plain_nz * 16, "{aware_nz} vs {plain_nz}");
    }

    #[test]
    fn anisotropic_moments_lower_the_output_error() {
        // Input 0 has 100× the variance of inputs 1 and 2: the same H for every row, and a
        // per-row scale with correlated inputs. The output objective's fit must reach a lower
        // output error than the weight objective's on every block, clearly lower on average.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        for varying in [false, true] {
            let mut ratios = Vec::new();
            for _ in 0..20 {
                let rows = 96;
                let a = random_block(&mut rng, rows);
                let h: Vec<M3> = (0..rows)
                    .map(|_| {
                        if varying {
                            let s = rng.gen_range(0.5..2.0);
                            [[100.0 * s, 3.0, 0.0], [3.0, s, 0.2], [0.0, 0.2, s]]
                        } else {
                            [[100.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
                        }
                    })
                    .collect();
                let opts = Options::default();
                let plain = output_error(&decompose_block(&a, &opts), &a, &h);
                let aware = output_error(&decompose_block_weighted(&a, &h, &opts), &a, &h);
                assert!(aware < plain, "{aware} vs {plain} (varying {varying})");
                ratios.push(aware / plain);
            }
            let mean = ratios.iter().sum::<f64>() / ratios.len() as f64;
            assert!(mean < 0.8, "mean ratio {mean} (varying {varying})");
        }
    }
}
