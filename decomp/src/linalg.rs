//! The 3×3 linear algebra of the decomposition: minimum-norm least squares with singular
//! values below `rcond · σ_max` dropped (numpy's `lstsq`, LAPACK `gelsd`, semantics).
//!
//! Every least-squares problem of `core_decompose` has 3 unknowns per right-hand side, so we never
//! factor a tall matrix: the B step works on the 3×3 normal equations (see [`gram_pinv`]), the C
//! step on the 3×3 basis itself (see [`pinv`], an SVD by one-sided Jacobi rotations).

// Index loops over 3×3 matrices read like the formulas they implement.
#![allow(clippy::needless_range_loop)]

/// A 3×3 matrix, row major: `m[row][col]`.
pub type M3 = [[f64; 3]; 3];

/// The smallest relative eigenvalue of a Gram matrix that [`gram_pinv`] keeps.
///
/// gelsd drops singular values below `rcond · σ_max` (`rcond` = 1e-10 in the reference). The
/// normal equations square the condition number: an exactly rank-deficient coefficient matrix
/// shows up as an eigenvalue of about `1e-16 · λ_max` rather than 0, i.e. a "singular value" of
/// `1e-8 · σ_max`, which gelsd would drop but a `1e-20` eigenvalue threshold would keep (and
/// then amplify noise by 1e8). So eigenvalues below `1e-12 · λ_max` (`σ < 1e-6 · σ_max`) count
/// as zero. A 3-column coefficient block with a condition number between 1e6 and 1e10 is the only
/// case where this differs from gelsd; the powers-of-two coefficients make it practically absent.
pub const GRAM_REL_TOL: f64 = 1e-12;

pub fn transpose(m: &M3) -> M3 {
    let mut t = [[0.0; 3]; 3];
    for (i, row) in m.iter().enumerate() {
        for (j, v) in row.iter().enumerate() {
            t[j][i] = *v;
        }
    }
    t
}

pub fn matmul(a: &M3, b: &M3) -> M3 {
    let mut c = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            c[i][j] = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    c
}

#[inline]
pub fn matvec(m: &M3, v: &[f64; 3]) -> [f64; 3] {
    [
        m[0][0] * v[0] + m[0][1] * v[1] + m[0][2] * v[2],
        m[1][0] * v[0] + m[1][1] * v[1] + m[1][2] * v[2],
        m[2][0] * v[0] + m[2][1] * v[1] + m[2][2] * v[2],
    ]
}

/// Eigen-decomposition of a symmetric 3×3 matrix by cyclic Jacobi rotations: returns the
/// eigenvalues and the eigenvectors as the columns of `V` (`g = V · diag(λ) · Vᵀ`).
///
/// A row and column that are exactly zero stay exactly zero under the rotations, so an unused
/// basis row gives an eigenvalue of exactly 0.
pub fn sym_eigen(g: &M3) -> ([f64; 3], M3) {
    jacobi_eigen(g, 32)
}

/// Eigen-decomposition of a symmetric `N×N` matrix by cyclic Jacobi rotations (at most
/// `max_sweeps` sweeps over the pairs `p < q`): the eigenvalues and the eigenvectors as `V`'s
/// columns. [`sym_eigen`] is the 3×3 case; the output objective's 9×9 B step uses it too.
pub fn jacobi_eigen<const N: usize>(
    g: &[[f64; N]; N],
    max_sweeps: usize,
) -> ([f64; N], [[f64; N]; N]) {
    let mut a = *g;
    let mut v = [[0.0; N]; N];
    for (i, row) in v.iter_mut().enumerate() {
        row[i] = 1.0;
    }
    for _sweep in 0..max_sweeps {
        let mut rotated = false;
        for p in 0..N {
            for q in p + 1..N {
                let apq = a[p][q];
                // Negligible against the diagonal: treat as converged (exactly zero stays zero).
                if apq == 0.0 || apq.abs() <= 1e-3 * f64::EPSILON * (a[p][p].abs() + a[q][q].abs())
                {
                    continue;
                }
                rotated = true;
                // The rotation angle that zeroes a[p][q] (smaller of the two solutions).
                let theta = (a[q][q] - a[p][p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..N {
                    let (akp, akq) = (a[k][p], a[k][q]);
                    a[k][p] = c * akp - s * akq;
                    a[k][q] = s * akp + c * akq;
                }
                for k in 0..N {
                    let (apk, aqk) = (a[p][k], a[q][k]);
                    a[p][k] = c * apk - s * aqk;
                    a[q][k] = s * apk + c * aqk;
                }
                // Zero by construction; drop the rounding residue.
                a[p][q] = 0.0;
                a[q][p] = 0.0;
                for row in v.iter_mut() {
                    let (vkp, vkq) = (row[p], row[q]);
                    row[p] = c * vkp - s * vkq;
                    row[q] = s * vkp + c * vkq;
                }
            }
        }
        if !rotated {
            break;
        }
    }
    (std::array::from_fn(|i| a[i][i]), v)
}

/// Pseudo-inverse of a Gram matrix `G = Mᵀ·M` (symmetric positive semi-definite), keeping the
/// eigenvalues above `max(rcond², GRAM_REL_TOL) · λ_max`, so that `G⁺ · Mᵀ·b` is the
/// minimum-norm least-squares solution of `M·x ≈ b`.
pub fn gram_pinv(g: &M3, rcond: f64) -> M3 {
    // Fast path: λ_min/λ_max ≥ det/tr³, so det > 1e-6·tr³ means a condition number below 1e6:
    // every eigenvalue is kept and the plain inverse is accurate to ~1e-10.
    let tr = g[0][0] + g[1][1] + g[2][2];
    if let Some(inv) = inverse_if_well_conditioned(g, tr * tr * tr) {
        return inv;
    }
    let (lam, v) = sym_eigen(g);
    let lmax = lam.iter().cloned().fold(0.0, f64::max);
    let cut = (rcond * rcond).max(GRAM_REL_TOL) * lmax;
    let mut p = [[0.0; 3]; 3];
    for (k, &l) in lam.iter().enumerate() {
        if l > cut && l > 0.0 {
            let inv = 1.0 / l;
            for i in 0..3 {
                for j in 0..3 {
                    p[i][j] += v[i][k] * v[j][k] * inv;
                }
            }
        }
    }
    p
}

/// `m⁻¹` by the adjugate when `|det m| > 1e-6 · scale` (`scale` bounds the product of the three
/// largest possible singular values), else `None`.
fn inverse_if_well_conditioned(m: &M3, scale: f64) -> Option<M3> {
    let c00 = m[1][1] * m[2][2] - m[1][2] * m[2][1];
    let c01 = m[1][2] * m[2][0] - m[1][0] * m[2][2];
    let c02 = m[1][0] * m[2][1] - m[1][1] * m[2][0];
    let det = m[0][0] * c00 + m[0][1] * c01 + m[0][2] * c02;
    if det.abs() <= 1e-6 * scale || !det.is_finite() || !scale.is_finite() {
        return None;
    }
    let inv = 1.0 / det;
    Some([
        [
            c00 * inv,
            (m[0][2] * m[2][1] - m[0][1] * m[2][2]) * inv,
            (m[0][1] * m[1][2] - m[0][2] * m[1][1]) * inv,
        ],
        [
            c01 * inv,
            (m[0][0] * m[2][2] - m[0][2] * m[2][0]) * inv,
            (m[0][2] * m[1][0] - m[0][0] * m[1][2]) * inv,
        ],
        [
            c02 * inv,
            (m[0][1] * m[2][0] - m[0][0] * m[2][1]) * inv,
            (m[0][0] * m[1][1] - m[0][1] * m[1][0]) * inv,
        ],
    ])
}

/// `m⁻¹` when [`pinv`] would take its fast path (the plain inverse, same bits), else `None`.
pub fn inverse_checked(m: &M3, rcond: f64) -> Option<M3> {
    let f2: f64 = m.iter().flatten().map(|v| v * v).sum();
    if rcond < 1e-6 {
        inverse_if_well_conditioned(m, f2 * f2.sqrt())
    } else {
        None
    }
}

/// Singular value decomposition `m = U · diag(σ) · Vᵀ` by one-sided Jacobi rotations on the
/// columns (accurate to high relative precision, so `rcond` cuts behave like gelsd's).
pub fn svd(m: &M3) -> (M3, [f64; 3], M3) {
    // Columns of `w` start as m's columns and end as σ_i · u_i.
    let mut w = *m;
    let mut v = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    for _sweep in 0..40 {
        let mut rotated = false;
        for (p, q) in [(0, 1), (0, 2), (1, 2)] {
            let (mut alpha, mut beta, mut gamma) = (0.0, 0.0, 0.0);
            for row in w.iter() {
                alpha += row[p] * row[p];
                beta += row[q] * row[q];
                gamma += row[p] * row[q];
            }
            if gamma == 0.0 || gamma.abs() <= f64::EPSILON * (alpha * beta).sqrt() {
                continue;
            }
            rotated = true;
            let zeta = (beta - alpha) / (2.0 * gamma);
            let t = zeta.signum() / (zeta.abs() + (1.0 + zeta * zeta).sqrt());
            let c = 1.0 / (1.0 + t * t).sqrt();
            let s = c * t;
            for row in w.iter_mut().chain(v.iter_mut()) {
                let (xp, xq) = (row[p], row[q]);
                row[p] = c * xp - s * xq;
                row[q] = s * xp + c * xq;
            }
        }
        if !rotated {
            break;
        }
    }
    let mut sigma = [0.0; 3];
    let mut u = [[0.0; 3]; 3];
    for k in 0..3 {
        sigma[k] = (0..3).map(|i| w[i][k] * w[i][k]).sum::<f64>().sqrt();
        if sigma[k] > 0.0 {
            for i in 0..3 {
                u[i][k] = w[i][k] / sigma[k];
            }
        }
    }
    (u, sigma, v)
}

/// Moore–Penrose pseudo-inverse of a 3×3 matrix, dropping singular values below
/// `rcond · σ_max` (numpy `lstsq(m, b, rcond)` = `pinv(m) · b`).
pub fn pinv(m: &M3, rcond: f64) -> M3 {
    // Fast path: σ_min/σ_max ≥ |det|/‖m‖_F³; above 1e-6 no singular value is dropped (rcond is
    // far smaller) and the adjugate inverse is accurate.
    if let Some(inv) = inverse_checked(m, rcond) {
        return inv;
    }
    let (u, sigma, v) = svd(m);
    let smax = sigma.iter().cloned().fold(0.0, f64::max);
    let mut p = [[0.0; 3]; 3];
    for k in 0..3 {
        if sigma[k] > rcond * smax && sigma[k] > 0.0 {
            let inv = 1.0 / sigma[k];
            for i in 0..3 {
                for j in 0..3 {
                    p[i][j] += v[i][k] * u[j][k] * inv;
                }
            }
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &M3, b: &M3, tol: f64) -> bool {
        a.iter()
            .flatten()
            .zip(b.iter().flatten())
            .all(|(x, y)| (x - y).abs() <= tol)
    }

    const M: M3 = [[2.0, -1.0, 0.5], [0.25, 3.0, 1.0], [-1.5, 0.0, 4.0]];

    #[test]
    fn pinv_of_an_invertible_matrix_is_its_inverse() {
        let p = pinv(&M, 1e-10);
        let id = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
        assert!(close(&matmul(&M, &p), &id, 1e-12), "{:?}", matmul(&M, &p));
        let g = matmul(&transpose(&M), &M);
        let gp = gram_pinv(&g, 1e-10);
        assert!(close(&matmul(&gp, &g), &id, 1e-12));
    }

    #[test]
    fn a_zero_column_gives_a_zero_row_of_the_solution() {
        // Column 1 of the coefficient matrix is unused: the min-norm solution has x[1] = 0
        // (gelsd drops the zero singular value instead of dividing by it).
        let m: M3 = [[1.0, 0.0, 2.0], [0.5, 0.0, -1.0], [4.0, 0.0, 0.25]];
        let p = pinv(&m, 1e-10);
        assert_eq!(p[1], [0.0, 0.0, 0.0]);
        let g = matmul(&transpose(&m), &m);
        let gp = gram_pinv(&g, 1e-10);
        assert_eq!(gp[1], [0.0, 0.0, 0.0]);
        assert_eq!([gp[0][1], gp[2][1]], [0.0, 0.0]);
        // On the remaining two columns it is the ordinary inverse of the normal equations.
        let mut sub_check = matmul(&gp, &g);
        sub_check[1][1] = 1.0;
        assert!(close(
            &sub_check,
            &[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
            1e-12
        ));
    }

    #[test]
    fn rank_one_matrix_pinv_satisfies_the_penrose_conditions() {
        // m = u·vᵀ: rank 1, two exact zero singular values that rounding makes ~1e-17.
        let (u, v) = ([1.0, -2.0, 0.5], [0.25, 1.0, -4.0]);
        let mut m = [[0.0; 3]; 3];
        for i in 0..3 {
            for j in 0..3 {
                m[i][j] = u[i] * v[j];
            }
        }
        for p in [pinv(&m, 1e-10), {
            let g = matmul(&transpose(&m), &m);
            matmul(&gram_pinv(&g, 1e-10), &transpose(&m))
        }] {
            // m·p·m = m and p·m·p = p.
            assert!(close(&matmul(&matmul(&m, &p), &m), &m, 1e-12));
            assert!(close(&matmul(&matmul(&p, &m), &p), &p, 1e-12));
        }
    }

    #[test]
    fn the_fast_inverse_agrees_with_the_svd_pseudo_inverse() {
        // Well conditioned: fast path; compare with the SVD route directly.
        let (u, s, v) = svd(&M);
        let mut slow = [[0.0; 3]; 3];
        for k in 0..3 {
            for i in 0..3 {
                for j in 0..3 {
                    slow[i][j] += v[i][k] * u[j][k] / s[k];
                }
            }
        }
        assert!(close(&pinv(&M, 1e-10), &slow, 1e-13));
        // Nearly singular (σ ratio ~1e-9): the fast path must not be taken; rcond 1e-8 drops it.
        let mut m = [[1.0, 2.0, 3.0], [2.0, 4.0, 6.0 + 1e-9], [0.5, -1.0, 0.25]];
        let p = pinv(&m, 1e-8);
        assert!(p.iter().flatten().all(|x| x.abs() < 10.0), "{p:?}");
        m[1][2] = 6.0;
        assert!(close(&matmul(&matmul(&m, &pinv(&m, 1e-10)), &m), &m, 1e-12));
    }

    #[test]
    fn svd_reconstructs_and_orders_nothing_it_should_not() {
        let (u, s, v) = svd(&M);
        let mut us = u;
        for row in us.iter_mut() {
            for k in 0..3 {
                row[k] *= s[k];
            }
        }
        assert!(close(&matmul(&us, &transpose(&v)), &M, 1e-12));
        assert!(close(
            &matmul(&transpose(&v), &v),
            &[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
            1e-12
        ));
    }
}
