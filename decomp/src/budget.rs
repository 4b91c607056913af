//! One row-density budget for a whole network, spread over its layers by sensitivity
//! (docs/decomposition.md §1, "Global budget").
//!
//! Every (layer, channel group, row) is scored like [`crate::layer::prune_mask`] scores it (its
//! expected squared output contribution with input moments, its L1 norm without), divided by
//! the sum of the layer's scores: the fraction of the layer's output energy the row carries.
//! The rows are kept best first, each costing its group's channel count, until the kept
//! channel-rows reach `density` of all the network's channel-rows. Treating a fraction of one
//! layer's output energy as worth the same in every layer is the sensitivity model: a layer
//! whose energy is spread over many rows gives up more of them than one that depends on a few
//! (the MNIST CNN's first convolution has three).

use crate::layer::{row_score_of, tensor_rows, RowMask};
use serde::Serialize;

/// How a prune ratio (row density) applies to a network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Budget {
    /// Every layer (and every channel group) loses the same fraction of its rows.
    #[default]
    Layer,
    /// One density for the whole network, spread by [`global_masks`].
    Global,
}

impl std::str::FromStr for Budget {
    type Err = String;
    fn from_str(s: &str) -> Result<Budget, String> {
        match s {
            "layer" => Ok(Budget::Layer),
            "global" => Ok(Budget::Global),
            other => Err(format!("budget `{other}` is neither `layer` nor `global`")),
        }
    }
}
use crate::linalg::M3;

/// A layer as [`global_masks`] needs it.
#[derive(Debug, Clone, Copy)]
pub struct LayerRows<'a> {
    /// `[out, in]`, `[out, in, 1, 1]` or `[out, cin, 3, 3]`.
    pub shape: &'a [usize],
    /// C-order weights.
    pub data: &'a [f32],
    /// Input moments per Ce row (the output objective's score), or `None` (L1 norms).
    pub moments: Option<&'a [M3]>,
}

/// The row masks of every layer for one network-wide `density` (the fraction of channel-rows
/// kept, in `(0, 1]`), groups of `group_size` output channels.
pub fn global_masks(
    layers: &[LayerRows],
    group_size: usize,
    density: f64,
) -> Result<Vec<RowMask>, String> {
    if !(density > 0.0 && density <= 1.0) {
        return Err(format!("row density {density} is outside (0, 1]"));
    }
    let group = group_size.max(1);
    // (normalized score per channel, layer, group, row, channels)
    let mut items: Vec<(f64, usize, usize, usize, usize)> = Vec::new();
    let mut masks = Vec::new();
    let mut total = 0usize;
    for (l, layer) in layers.iter().enumerate() {
        let (outputs, rows, w) = tensor_rows(layer.shape, layer.data, layer.moments)?;
        let groups = outputs.div_ceil(group);
        let mut scores = Vec::with_capacity(groups * rows);
        for g in 0..groups {
            let chans = g * group..((g + 1) * group).min(outputs);
            for r in 0..rows {
                scores.push((
                    row_score_of(&w, rows, chans.clone(), r, layer.moments),
                    g,
                    r,
                    chans.len(),
                ));
            }
        }
        let sum: f64 = scores.iter().map(|s| s.0).sum();
        let norm = if sum > 0.0 { sum } else { 1.0 };
        for (s, g, r, n) in scores {
            items.push((s / norm / n as f64, l, g, r, n));
        }
        total += outputs * rows;
        masks.push(RowMask {
            outputs,
            rows,
            group_size: group,
            pruned: vec![true; groups * rows],
        });
    }
    items.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then(a.1.cmp(&b.1))
            .then(a.2.cmp(&b.2))
            .then(a.3.cmp(&b.3))
    });
    // The same rounding rule as a per-layer ratio: keep until the kept share reaches density
    // (a product a rounding below an integer counts as that integer).
    let want = (density * total as f64 * (1.0 - 1e-12)).ceil() as usize;
    let mut kept = 0usize;
    for (_, l, g, r, n) in items {
        if kept >= want {
            break;
        }
        let rows = masks[l].rows;
        masks[l].pruned[g * rows + r] = false;
        kept += n;
    }
    Ok(masks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_goes_where_the_layers_depend_on_few_rows() {
        // Layer A: 2 channels × 3 rows, all its energy in row 0. Layer B: 2 channels × 6
        // rows, energy spread evenly. One group each; 18 channel-rows in all, density 1/3 keeps
        // 6: A's row 0 (2 channel-rows, fraction 1 of A) first, then B's rows 0–1 (1/6 each),
        // ties in row order... until 6 channel-rows are kept.
        let a: Vec<f32> = vec![
            1., 1., 1., 0., 0., 0., 0., 0., 0.0, 2., 0., 0., 0., 0., 0., 0., 0., 0.,
        ];
        let b: Vec<f32> = vec![1.0; 36];
        let layers = [
            LayerRows {
                shape: &[2, 9],
                data: &a,
                moments: None,
            },
            LayerRows {
                shape: &[2, 18],
                data: &b,
                moments: None,
            },
        ];
        let m = global_masks(&layers, 32, 1.0 / 3.0).unwrap();
        assert_eq!(m[0].pruned, vec![false, true, true]);
        assert_eq!(m[1].pruned, vec![false, false, true, true, true, true]);
        // Density 1 keeps everything; 0 is an error.
        assert!(global_masks(&layers, 32, 1.0)
            .unwrap()
            .iter()
            .all(|m| m.count() == 0));
        assert!(global_masks(&layers, 32, 0.0).is_err());
    }

    #[test]
    fn moments_decide_the_score() {
        // Two two-row layers of equal weights; in the first, moments make row 1 matter 100×
        // more than row 0, so at density 3/4 its row 0 goes, although by L1 norm all tie.
        let w: Vec<f32> = vec![1.0; 6];
        let mut big = [[0.0; 3]; 3];
        big[0][0] = 100.0;
        let mut small = [[0.0; 3]; 3];
        small[0][0] = 1.0;
        let hb = [small, big];
        let layers = [
            LayerRows {
                shape: &[1, 6],
                data: &w,
                moments: Some(&hb),
            },
            LayerRows {
                shape: &[1, 6],
                data: &w,
                moments: None,
            },
        ];
        let m = global_masks(&layers, 1, 0.75).unwrap();
        assert_eq!(m[0].pruned, vec![true, false]);
        assert_eq!(m[1].pruned, vec![false, false]);
    }
}
