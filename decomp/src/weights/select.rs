//! Tensor selection: which of a file's tensors a list of names and glob patterns picks, and the
//! "nothing matched" hints that list the closest names.

use std::collections::HashMap;
use std::path::Path;

use super::checks::check_shape;
use super::types::WeightsError;

/// How many names a "nothing matched" error lists.
const HINT_NAMES: usize = 6;

/// Indices (ascending, each once) of the entries `select` picks. `entries` are `(name, shape)` in
/// file order; with an empty `select`, `default` decides.
pub(super) fn select_indices(
    path: &Path,
    entries: &[(&str, &[usize])],
    select: &[String],
    default: impl Fn(&str, &[usize]) -> bool,
) -> Result<Vec<usize>, WeightsError> {
    if select.is_empty() {
        let picked: Vec<usize> = (0..entries.len())
            .filter(|&i| default(entries[i].0, entries[i].1))
            .collect();
        if picked.is_empty() {
            let order: Vec<usize> = (0..entries.len()).collect();
            return Err(WeightsError::NothingSelected {
                path: path.to_path_buf(),
                examples: describe_entries(entries, &order),
                total: entries.len(),
            });
        }
        return Ok(picked);
    }

    let by_name: HashMap<&str, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, (name, _))| (*name, i))
        .collect();
    let mut picked = vec![false; entries.len()];
    for pattern in select {
        if let Some(&i) = by_name.get(pattern.as_str()) {
            picked[i] = true;
            continue;
        }
        // Backslash escapes on every platform (globset's default differs on Windows), and `*`
        // crosses `.`: tensor names are not paths.
        let matcher = globset::GlobBuilder::new(pattern)
            .literal_separator(false)
            .backslash_escape(true)
            .build()
            .map_err(|e| WeightsError::BadPattern {
                path: path.to_path_buf(),
                pattern: pattern.clone(),
                reason: e.kind().to_string(),
            })?
            .compile_matcher();
        // A glob picks only tensors of a decomposable rank (2 or 4), so that `*.weight` on a
        // transformer skips the rank-1 LayerNorm scales; a glob that matches nothing else is an
        // error naming the first tensor it did match and its rank.
        let mut any = false;
        let mut wrong_rank = None;
        for (i, (name, shape)) in entries.iter().enumerate() {
            if matcher.is_match(name) {
                if matches!(shape.len(), 2 | 4) {
                    picked[i] = true;
                    any = true;
                } else if wrong_rank.is_none() {
                    wrong_rank = Some((*name, *shape));
                }
            }
        }
        if let (false, Some((name, shape))) = (any, wrong_rank) {
            check_shape(path, name, shape)?;
        }
        if !any {
            return Err(WeightsError::NoMatch {
                path: path.to_path_buf(),
                pattern: pattern.clone(),
                examples: describe_entries(entries, &closest_names(entries, pattern)),
                total: entries.len(),
            });
        }
    }
    Ok((0..entries.len()).filter(|&i| picked[i]).collect())
}

/// Entry indices ordered by how long a prefix their name shares with the literal start of
/// `pattern` (then file order), so that a mistyped `encoder.layer.*.attention.self.qurey.weight`
/// lists the `encoder.layer.…` tensors rather than the embeddings that happen to come first.
fn closest_names(entries: &[(&str, &[usize])], pattern: &str) -> Vec<usize> {
    let literal = pattern
        .find(['*', '?', '[', '{', '\\'])
        .map_or(pattern, |at| &pattern[..at]);
    let shared = |name: &str| {
        name.bytes()
            .zip(literal.bytes())
            .take_while(|(a, b)| a == b)
            .count()
    };
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(shared(entries[i].0)), i));
    order
}

/// The first few of `order`, each as `` `name` [shape] ``.
fn describe_entries(entries: &[(&str, &[usize])], order: &[usize]) -> Vec<String> {
    order
        .iter()
        .take(HINT_NAMES)
        .map(|&i| format!("`{}` {:?}", entries[i].0, entries[i].1))
        .collect()
}

/// The default selection: what a weight matrix or convolution kernel is called in PyTorch-style
/// state dicts. Rank-1 `…weight` tensors are LayerNorm/BatchNorm scales, not decomposable.
pub(super) fn is_default_weight(name: &str, shape: &[usize]) -> bool {
    matches!(shape.len(), 2 | 4) && name.ends_with("weight")
}

#[cfg(test)]
mod tests {
    use crate::weights::load;
    use crate::weights::test_util::*;

    #[test]
    fn default_selection_takes_rank2_weights_with_biases() {
        let dir = tempfile::tempdir().unwrap();
        let ts = load(&model(dir.path()), &[]).unwrap();
        assert_eq!(names(&ts), ["fc1.weight", "fc2.weight"]);
        assert_eq!(ts[0].shape, [2, 3]);
        assert_eq!(ts[0].data, [1., 2., 3., 4., 5., 6.]);
        assert_eq!(ts[0].bias.as_deref(), Some(&[0.5, -0.5][..]));
        assert_eq!((ts[0].rows(), ts[0].cols()), (2, 3));
        assert_eq!(ts[1].bias, None);
    }

    #[test]
    fn selection_by_exact_name() {
        let dir = tempfile::tempdir().unwrap();
        let ts = load(&model(dir.path()), &sel(&["fc2.weight"])).unwrap();
        assert_eq!(names(&ts), ["fc2.weight"]);
        assert_eq!(ts[0].data, [6., 5., 4., 3., 2., 1.]);
    }

    #[test]
    fn selection_by_glob_in_file_order_without_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let w = [0.25f32; 4];
        let path = st_file(
            dir.path(),
            &[
                f32_spec("encoder.layer.0.attention.self.query.weight", &[2, 2], &w),
                f32_spec("encoder.layer.0.attention.self.key.weight", &[2, 2], &w),
                f32_spec("encoder.layer.1.attention.self.query.weight", &[2, 2], &w),
                f32_spec("encoder.layer.1.attention.self.query.bias", &[2], &[1., 2.]),
                f32_spec("conv.weight", &[1, 1, 2, 2], &w),
            ],
        );
        let ts = load(
            &path,
            &sel(&["encoder.layer.*.attention.self.query.weight"]),
        )
        .unwrap();
        assert_eq!(
            names(&ts),
            [
                "encoder.layer.0.attention.self.query.weight",
                "encoder.layer.1.attention.self.query.weight"
            ]
        );
        assert_eq!(ts[0].bias, None);
        assert_eq!(ts[1].bias.as_deref(), Some(&[1., 2.][..]));

        // Overlapping selectors: each tensor once, in file order, not selector order.
        let ts = load(&path, &sel(&["*.weight", "conv.weight", "*query*weight"])).unwrap();
        assert_eq!(
            names(&ts),
            [
                "conv.weight",
                "encoder.layer.0.attention.self.key.weight",
                "encoder.layer.0.attention.self.query.weight",
                "encoder.layer.1.attention.self.query.weight"
            ]
        );
        assert_eq!(ts[0].shape, [1, 1, 2, 2]);
        assert_eq!(ts[0].cols(), 4);
    }

    #[test]
    fn exact_name_with_glob_characters_is_taken_literally() {
        let dir = tempfile::tempdir().unwrap();
        let path = st_file(dir.path(), &[f32_spec("blocks[0].weight", &[1, 1], &[3.])]);
        let ts = load(&path, &sel(&["blocks[0].weight"])).unwrap();
        assert_eq!(names(&ts), ["blocks[0].weight"]);
        // Not a name and not a valid glob.
        let msg = err(&path, &["blocks[0.weight"]);
        assert!(
            msg.contains("invalid selection pattern `blocks[0.weight`"),
            "{msg}"
        );
    }

    #[test]
    fn no_match_lists_available_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = model(dir.path());
        let msg = err(&path, &["fc1.weight", "fc3.*"]);
        assert!(msg.contains("`fc3.*` matches no tensor"), "{msg}");
        assert!(msg.contains("the file has 5 tensors"), "{msg}");
        assert!(msg.contains("`fc1.weight` [2, 3]"), "{msg}");
        assert!(msg.contains("`position_ids` [1, 3]"), "{msg}");

        // With many tensors only a few are listed, those closest to the pattern first.
        let specs: Vec<Spec> = (0..20)
            .map(|i| {
                let name: &'static str = Box::leak(format!("a{i:02}.weight").into_boxed_str());
                f32_spec(name, &[1, 1], &[1.])
            })
            .chain([f32_spec("zeta.weight", &[1, 1], &[1.])])
            .collect();
        let path = st_file(dir.path(), &specs);
        let msg = err(&path, &["zeta.wieght"]);
        assert!(
            msg.contains("the file has 21 tensors, e.g. `zeta.weight` [1, 1], "),
            "{msg}"
        );
        assert!(msg.ends_with(", …"), "{msg}");
    }

    #[test]
    fn nothing_to_select_by_default_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = st_file(dir.path(), &[f32_spec("ln.weight", &[3], &[1., 1., 1.])]);
        let msg = err(&path, &[]);
        assert!(msg.contains("no tensor of rank ≥ 2"), "{msg}");
        assert!(msg.contains("`ln.weight` [3]"), "{msg}");
    }
}
