//! Projection of real coefficients onto signed powers of two (step (a) of `core_decompose`).

/// Nearest power of two to `v > 0` in the linear domain; a tie goes to the smaller power
/// (`0.75 → 0.5`, `3 → 2`, `1.5 → 1`), as the reference's `nearestpow2` does.
///
/// The reference computes `e = ceil(log2 v)` and picks `2^(e-1)` when `v - 2^(e-1) <= 2^e - v`,
/// i.e. when `v <= 0.75 · 2^e`. With `v = f · 2^x`, `f ∈ [0.5, 1)` (frexp), `ceil(log2 v)` is
/// `x` unless `f = 0.5` (then `v` is itself a power of two), so the rule is `f <= 0.75 → 2^(x-1)`,
/// else `2^x`: exact, with no `log2` rounding to worry about.
pub fn nearest_pow2(v: f64) -> f64 {
    debug_assert!(v > 0.0 && v.is_finite());
    let (f, x) = frexp(v);
    if f <= 0.75 {
        ldexp(1.0, x - 1)
    } else {
        ldexp(1.0, x)
    }
}

/// Exponent `p` of a nonzero projected coefficient `±2^p`.
pub fn exponent_of(p2: f64) -> i32 {
    let (f, x) = frexp(p2.abs());
    debug_assert_eq!(f, 0.5, "{p2} is not a power of two");
    x - 1
}

/// Projects one coefficient: `0 → 0`, else `sign(c) · min(nearest_pow2(|c|), max_c)`.
///
/// `max_c` is the reference's `max_C` (32): the magnitude is clipped after rounding, as
/// `np.clip(Ce_abs, 0, max_C)` does (the reference clips, it does not renormalize).
///
/// This is the decomposition's innermost operation, so it works on the bits: a normal `c` is
/// `±1.m · 2^E`; `nearest_pow2` keeps `2^E` when `1.m ≤ 1.5` (mantissa field ≤ 2^51, the tie
/// included) and rounds up to `2^(E+1)` otherwise; clearing the mantissa field and adding one
/// to the exponent field does exactly that. Zero and subnormals take the slow path.
#[inline]
pub fn project(c: f64, max_c: f64) -> f64 {
    const EXP: u64 = 0x7ff << 52;
    const MANT: u64 = (1 << 52) - 1;
    let bits = c.to_bits();
    if bits & EXP == 0 {
        if c == 0.0 {
            return 0.0;
        }
        return nearest_pow2(c.abs()).min(max_c).copysign(c);
    }
    let up = u64::from(bits & MANT > 1 << 51);
    let q = f64::from_bits((bits & !MANT) + (up << 52));
    if q.abs() > max_c {
        max_c.copysign(c)
    } else {
        q
    }
}

/// `v = f · 2^x` with `f ∈ [0.5, 1)` for finite `v > 0` (subnormals included).
#[inline]
pub fn frexp(v: f64) -> (f64, i32) {
    let bits = v.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    if biased == 0 {
        // Subnormal: scale into the normal range first (2^64 is exact).
        let (f, x) = frexp(v * 18446744073709551616.0);
        return (f, x - 64);
    }
    // Replace the exponent field by 1022 (value in [0.5, 1)) and keep the mantissa.
    let f = f64::from_bits((bits & !(0x7ffu64 << 52)) | (1022u64 << 52));
    (f, biased - 1022)
}

/// `m · 2^x`, exact whenever the result is representable.
pub fn ldexp(m: f64, x: i32) -> f64 {
    // 2^x built from its exponent field while that is a normal number; beyond, in two steps.
    if (-1022..=1023).contains(&x) {
        m * f64::from_bits(((x + 1023) as u64) << 52)
    } else if x < -1022 {
        ldexp(m * f64::from_bits(1u64 << 52), x + 1022) // 2^-1022, then the rest
    } else {
        ldexp(m * f64::from_bits(2046u64 << 52), x - 1023) // 2^1023, then the rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_go_to_the_smaller_power() {
        assert_eq!(nearest_pow2(0.75), 0.5);
        assert_eq!(nearest_pow2(3.0), 2.0);
        assert_eq!(nearest_pow2(1.5), 1.0);
        assert_eq!(nearest_pow2(6.0), 4.0);
        assert_eq!(nearest_pow2(0.375), 0.25);
    }

    #[test]
    fn powers_of_two_are_fixed_points_and_neighbours_round_to_nearest() {
        for x in -40..40 {
            let p = ldexp(1.0, x);
            assert_eq!(nearest_pow2(p), p);
            assert_eq!(nearest_pow2(p * 1.49), p);
            assert_eq!(nearest_pow2(p * 1.51), 2.0 * p);
            assert_eq!(nearest_pow2(p * 0.76), p);
            assert_eq!(nearest_pow2(p * 0.74), p / 2.0);
            assert_eq!(exponent_of(p), x);
            assert_eq!(exponent_of(-p), x);
        }
    }

    #[test]
    fn matches_the_reference_log2_formula_away_from_ties() {
        // The reference: e = ceil(log2 v); 2^(e-1) if v - 2^(e-1) <= 2^e - v else 2^e.
        let mut v: f64 = 1.0e-6;
        while v < 1.0e6 {
            let e = v.log2().ceil();
            let lo = 2f64.powf(e - 1.0);
            let hi = 2f64.powf(e);
            let want = if v - lo <= hi - v { lo } else { hi };
            assert_eq!(nearest_pow2(v), want, "v = {v}");
            v *= 1.0137;
        }
    }

    #[test]
    fn projection_keeps_sign_clips_and_keeps_zero() {
        assert_eq!(project(0.0, 32.0), 0.0);
        assert_eq!(project(-0.3, 32.0), -0.25);
        assert_eq!(project(0.2, 32.0), 0.25);
        assert_eq!(project(100.0, 32.0), 32.0);
        assert_eq!(project(-47.0, 32.0), -32.0);
        assert_eq!(project(-49.0, 32.0), -32.0);
    }

    #[test]
    fn the_bit_level_projection_equals_the_definition() {
        let mut v: f64 = 1.0e-9;
        while v < 1.0e9 {
            let tie = 0.75 * ldexp(1.0, v.log2().round() as i32);
            for c in [v, -v, tie, -tie] {
                let want = if c == 0.0 {
                    0.0
                } else {
                    nearest_pow2(c.abs()).min(32.0).copysign(c)
                };
                assert_eq!(project(c, 32.0), want, "c = {c}");
            }
            v *= 1.0173;
        }
        let sub = f64::from_bits(5);
        assert_eq!(project(-sub, 32.0), -f64::from_bits(4));
    }

    #[test]
    fn frexp_handles_subnormals() {
        let v = f64::from_bits(3); // 3 · 2^-1074
        let (f, x) = frexp(v);
        assert_eq!(f, 0.75);
        assert_eq!(x, -1072);
        assert_eq!(nearest_pow2(v), f64::from_bits(2));
    }
}
