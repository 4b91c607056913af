//! How a layer's weights are cut into decomposition blocks (the reference's reshaping rules,
//! `../shared/docs/smartdeal-algorithm.md` §2).

/// Largest block for the conv rule and for fully connected sizes outside [`FC_SPLIT_TABLE`]:
/// `64 · n0` rows with `n0 = 3`.
pub const MAX_BLOCK_ROWS: usize = 192;

/// The reference's padding table for fully connected inputs: `n → (num_split, size_split)`. The
/// vector is zero-padded to `3 · num_split · size_split` and cut into `num_split` blocks of
/// `size_split` rows.
pub const FC_SPLIT_TABLE: [(usize, (usize, usize)); 19] = [
    (4096, (8, 171)),
    (2048, (4, 171)),
    (1280, (3, 143)),
    (1024, (2, 171)),
    (960, (2, 160)),
    (576, (1, 192)),
    (512, (1, 171)),
    (384, (1, 128)),
    (320, (1, 107)),
    (256, (1, 86)),
    (192, (1, 64)),
    (160, (1, 54)),
    (144, (1, 48)),
    (128, (1, 43)),
    (96, (1, 32)),
    (64, (1, 22)),
    (32, (1, 11)),
    (24, (1, 8)),
    (16, (1, 6)),
];

/// Ascending prime factors of `m` (with multiplicity).
fn prime_factors(mut m: usize) -> Vec<usize> {
    let mut f = Vec::new();
    let mut p = 2;
    while p * p <= m {
        while m.is_multiple_of(p) {
            f.push(p);
            m /= p;
        }
        p += 1;
    }
    if m > 1 {
        f.push(m);
    }
    f
}

/// The reference's `factor_long(m, 3)`: block rows for a tall `m × 3` matrix, always a divisor
/// of `m`. `m` itself when `m ≤ 192` or `m` is prime; the presets `(3072, 3) → 192`,
/// `(1638, 3) → 171`, `(8364, 3) → 204`; otherwise the largest product of a suffix of `m`'s
/// ascending prime factors that is `≤ 192`.
///
/// Where no such suffix exists (the largest prime factor exceeds 192, e.g. `394 = 2 · 197`) the
/// reference returns `False` and crashes; we use `m` (one block), as for a prime. The preset
/// 1638 → 171 does not divide (the reference then leaves the last 99 rows undecomposed, i.e.
/// zero); our layers end with a shorter block instead.
pub fn factor_long(m: usize) -> usize {
    match m {
        3072 => return 192,
        1638 => return 171,
        8364 => return 204,
        _ => {}
    }
    let f = prime_factors(m);
    if m <= MAX_BLOCK_ROWS || f.len() <= 1 {
        return m;
    }
    (0..f.len())
        .map(|i| f[i..].iter().product::<usize>())
        .find(|&p| p <= MAX_BLOCK_ROWS)
        .unwrap_or(m)
}

/// Block geometry of a fully connected row of `n` inputs: `(num_split, size_split)`.
/// Our layer keeps `rows = ceil(n / 3)` Ce rows and blocks of `size_split` rows; the table's
/// extra padding rows (e.g. 4096 → 1368 instead of 1366 rows) are all-zero and would be
/// decomposed to zero coefficients, so leaving them out changes nothing.
pub fn fc_split(n: usize) -> (usize, usize) {
    if let Some((_, s)) = FC_SPLIT_TABLE.iter().find(|(k, _)| *k == n) {
        return *s;
    }
    let m = n.div_ceil(3);
    let m0 = factor_long(m);
    (m / m0, m0)
}

/// Block rows for a 3×3 convolution with `cin` input channels: each output channel's
/// `(cin·3) × 3` matrix (row `ci·3 + kh`, column `kw`) is cut into blocks of
/// `factor_long(cin · 3)` rows.
pub fn conv3x3_block_rows(cin: usize) -> usize {
    factor_long(cin * 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_entries_are_the_reference_ones() {
        assert_eq!(fc_split(512), (1, 171)); // 512 → padded to 513: one 171 × 3 block
        assert_eq!(fc_split(384), (1, 128));
        assert_eq!(fc_split(4096), (8, 171));
        assert_eq!(fc_split(1280), (3, 143));
    }

    #[test]
    fn sizes_outside_the_table_use_factor_long() {
        assert_eq!(fc_split(1536), (4, 128)); // 512 rows = 2^9 → 128
        assert_eq!(fc_split(3072), (8, 128)); // 1024 rows
        assert_eq!(fc_split(100), (1, 34)); // 34 rows ≤ 192
        assert_eq!(fc_split(600), (2, 100)); // 200 = 2·2·2·5·5 → 100
    }

    #[test]
    fn the_table_agrees_with_factor_long_on_its_padded_sizes() {
        // The table exists for sizes whose ceil(n/3) factors badly (4096 → 1366 = 2·683); on
        // the padded sizes it is exactly factor_long.
        for (n, (num, size)) in FC_SPLIT_TABLE {
            let padded_rows = num * size;
            assert!(padded_rows * 3 >= n);
            assert_eq!(factor_long(padded_rows), size, "n = {n}");
            assert_eq!(
                n.div_ceil(3).div_ceil(size),
                num,
                "n = {n}: blocks of our rows"
            );
        }
    }

    #[test]
    fn factor_long_rules() {
        assert_eq!(factor_long(192), 192);
        assert_eq!(factor_long(197), 197); // prime
        assert_eq!(factor_long(3072), 192); // preset
        assert_eq!(factor_long(1638), 171);
        assert_eq!(factor_long(8364), 204);
        assert_eq!(factor_long(1368), 171); // 2·2·2·3·3·19 → 3·3·19
        assert_eq!(factor_long(394), 394); // 2·197: no suffix ≤ 192 (reference crashes)
        assert_eq!(conv3x3_block_rows(64), 192);
        assert_eq!(conv3x3_block_rows(128), 192); // 384 = 2^7·3 → 2·2·... suffix 192
        assert_eq!(conv3x3_block_rows(3), 9);
        for m in (1..9000).filter(|m| ![3072, 1638, 8364].contains(m)) {
            assert_eq!(m % factor_long(m), 0, "m = {m}");
        }
    }
}
