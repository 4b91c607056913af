//! The STS Benchmark format and how the field scores it: Spearman's rank correlation between the
//! cosine similarity of two sentences' embeddings and the gold score (as MTEB does).

use crate::NetError;
use std::path::Path;

/// One scored sentence pair.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    pub a: String,
    pub b: String,
    /// Gold similarity, 0–5.
    pub gold: f64,
}

/// Reads an STS-B file: tab-separated, no header, the gold score in the 5th column and the two
/// sentences in the 6th and 7th (later columns, e.g. sources, are ignored). Split on tabs only:
/// sentences contain quotes.
pub fn read(path: &Path) -> Result<Vec<Pair>, NetError> {
    let text = std::fs::read_to_string(path).map_err(|e| NetError::io(path, e))?;
    let bad = |line: usize, why: String| NetError::Data {
        path: path.to_path_buf(),
        line,
        why,
    };
    let mut pairs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() < 7 {
            return Err(bad(
                i + 1,
                format!(
                    "{} tab-separated columns, the STS-B format has at least 7 (score in the 5th, \
                     sentences in the 6th and 7th)",
                    cols.len()
                ),
            ));
        }
        let gold: f64 = cols[4]
            .trim()
            .parse()
            .map_err(|_| bad(i + 1, format!("score `{}` is not a number", cols[4])))?;
        if !(0.0..=5.0).contains(&gold) {
            return Err(bad(i + 1, format!("score {gold} outside 0–5")));
        }
        pairs.push(Pair {
            a: cols[5].to_string(),
            b: cols[6].to_string(),
            gold,
        });
    }
    if pairs.is_empty() {
        return Err(bad(0, "no sentence pairs".into()));
    }
    Ok(pairs)
}

/// The distinct sentences of `pairs`, in order of first appearance (calibration sets).
pub fn sentences(pairs: &[Pair]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for p in pairs {
        for s in [&p.a, &p.b] {
            if seen.insert(s.clone()) {
                out.push(s.clone());
            }
        }
    }
    out
}

/// Ranks 1..=n, ties given the mean of the ranks they span.
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let mean = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            r[k] = mean;
        }
        i = j + 1;
    }
    r
}

/// Pearson's correlation of `x` and `y` (0 when either is constant).
fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    if sxx == 0.0 || syy == 0.0 {
        0.0
    } else {
        sxy / (sxx * syy).sqrt()
    }
}

/// Spearman's rank correlation (Pearson's on tie-averaged ranks, as scipy computes it).
pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    assert_eq!(x.len(), y.len(), "spearman of unequal lengths");
    pearson(&ranks(x), &ranks(y))
}

/// Cosine similarity of two embeddings.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

/// The first `n` distinct sentences of `calib` that do not occur in `scored` (calibration never sees a
/// scored sentence: STS-B's splits share a few), and how many were skipped for occurring there.
pub fn calibration_sentences(scored: &[Pair], calib: &[Pair], n: usize) -> (Vec<String>, usize) {
    let seen: std::collections::HashSet<&str> = scored
        .iter()
        .flat_map(|p| [p.a.as_str(), p.b.as_str()])
        .collect();
    let mut out = Vec::new();
    let mut skipped = 0;
    for s in sentences(calib) {
        if out.len() == n {
            break;
        }
        if seen.contains(s.as_str()) {
            skipped += 1;
        } else {
            out.push(s);
        }
    }
    (out, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spearman_matches_hand_worked_values() {
        // Monotone: 1; reversed: −1.
        assert!((spearman(&[1.0, 2.0, 3.0], &[10.0, 20.0, 40.0]) - 1.0).abs() < 1e-12);
        assert!((spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        // scipy.stats.spearmanr([1, 2, 2, 3], [1, 3, 2, 4]) = 0.9486832980505138 (ties averaged).
        let r = spearman(&[1.0, 2.0, 2.0, 3.0], &[1.0, 3.0, 2.0, 4.0]);
        assert!((r - 0.9486832980505138).abs() < 1e-12, "{r}");
        assert_eq!(ranks(&[5.0, 1.0, 5.0, 3.0]), vec![3.5, 1.0, 3.5, 2.0]);
    }

    #[test]
    fn reads_the_format_and_rejects_malformed_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.csv");
        std::fs::write(
            &p,
            "main-captions\tMSRvid\t2012test\t0001\t5.000\tA man \"quoted\".\tA man.\n\
             g\tf\ty\t2\t0.5\tOne\tTwo\tsource\n",
        )
        .unwrap();
        let pairs = read(&p).unwrap();
        assert_eq!(pairs.len(), 2);
        assert_eq!(pairs[0].a, "A man \"quoted\".");
        assert_eq!(pairs[1].gold, 0.5);
        assert_eq!(sentences(&pairs).len(), 4);
        for (text, want) in [
            ("a\tb\tc\n", "columns"),
            ("a\tb\tc\td\tx\tS\tT\n", "not a number"),
            ("a\tb\tc\td\t7\tS\tT\n", "outside"),
            ("\n", "no sentence pairs"),
        ] {
            std::fs::write(&p, text).unwrap();
            let e = read(&p).unwrap_err().to_string();
            assert!(e.contains(want) && !e.contains('\n'), "{e}");
        }
    }
}
