//! Decomposition of a whole weight tensor: cut it into blocks ([`crate::reshape`]), optionally
//! prune rows structurally, decompose every block in parallel ([`crate::block`]).

use crate::block::{decompose_block, BlockFit, Options};
use crate::reshape::{conv3x3_block_rows, fc_split};
use rayon::prelude::*;
use serde::Serialize;

/// What kind of layer a tensor is, by shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LayerKind {
    /// `[out, in]`, or a 1×1 convolution `[out, in, 1, 1]`: row `r` = inputs `3r..3r+2`.
    FullyConnected,
    /// `[out, cin, 3, 3]`: row `ci·3 + kh` = the 3 taps `kw` of input channel `ci`, kernel row `kh`.
    Conv3x3 { cin: usize },
}

impl LayerKind {
    /// The kind of a tensor of this shape, or why it cannot be decomposed.
    pub fn of_shape(shape: &[usize]) -> Result<LayerKind, String> {
        match shape {
            [_, _] | [_, _, 1, 1] => Ok(LayerKind::FullyConnected),
            [_, cin, 3, 3] => Ok(LayerKind::Conv3x3 { cin: *cin }),
            [_, _, kh, kw] => Err(format!(
                "a {kh}×{kw} convolution is not decomposable (only fully connected, 1×1 and 3×3 are)"
            )),
            other => Err(format!(
                "shape {other:?} is neither [out, in] nor [out, cin, kh, kw]"
            )),
        }
    }
}

/// Options of a layer's decomposition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerOptions {
    pub block: Options,
    /// Output channels that share one present-row bitmap (and one pruned-row set).
    pub group_size: usize,
    /// Structural row pruning before the decomposition: the fraction of rows zeroed in each
    /// group (0 = none).
    pub prune_ratio: f64,
}

/// A decomposed tensor, in float.
#[derive(Debug, Clone)]
pub struct FloatLayer {
    pub name: String,
    pub kind: LayerKind,
    pub outputs: usize,
    /// Weights per output channel (`in`, or `cin · 9`).
    pub inputs: usize,
    /// Ce rows per output channel.
    pub rows: usize,
    pub rows_per_block: usize,
    /// Blocks per output channel.
    pub blocks: usize,
    /// The original weights as rows, `[o · rows + r]`, zero-padded (the reference pads too).
    pub w: Vec<[f64; 3]>,
    /// Block fits, `[o · blocks + b]`.
    pub fits: Vec<BlockFit>,
    /// Rows zeroed by structural pruning, summed over groups.
    pub pruned_rows: usize,
}

impl FloatLayer {
    /// `Ce · B` for row `r` of channel `o`.
    pub fn reconstruct_row(&self, o: usize, r: usize) -> [f64; 3] {
        let fit = &self.fits[o * self.blocks + r / self.rows_per_block];
        let c = &fit.ce[r % self.rows_per_block];
        let mut w = [0.0; 3];
        for (j, wj) in w.iter_mut().enumerate() {
            *wj = (0..3).map(|k| c[k] * fit.b[k][j]).sum();
        }
        w
    }

    /// Relative Frobenius error `‖W − Ce·B‖ / ‖W‖` over the real (unpadded) weights.
    pub fn relative_error(&self) -> f64 {
        let (mut num, mut den) = (0.0, 0.0);
        for o in 0..self.outputs {
            for r in 0..self.rows {
                let rec = self.reconstruct_row(o, r);
                let orig = &self.w[o * self.rows + r];
                for j in 0..3 {
                    num += (orig[j] - rec[j]).powi(2);
                    den += orig[j].powi(2);
                }
            }
        }
        if den == 0.0 {
            0.0
        } else {
            (num / den).sqrt()
        }
    }

    /// Nonzero fraction of all Ce elements (padding rows included, as the reference counts).
    pub fn ce_density(&self) -> f64 {
        let nz: usize = self
            .fits
            .iter()
            .flat_map(|f| f.ce.iter().flatten())
            .filter(|v| **v != 0.0)
            .count();
        nz as f64 / (self.outputs * self.rows * 3).max(1) as f64
    }
}

/// Cuts `data` (C order, `shape`) into per-channel rows of 3.
fn to_rows(kind: LayerKind, shape: &[usize], data: &[f32]) -> (usize, usize, Vec<[f64; 3]>) {
    let outputs = shape[0];
    let per_out: usize = shape[1..].iter().product();
    let rows = match kind {
        LayerKind::FullyConnected => per_out.div_ceil(3),
        LayerKind::Conv3x3 { cin } => cin * 3,
    };
    let mut w = vec![[0.0f64; 3]; outputs * rows];
    for o in 0..outputs {
        let src = &data[o * per_out..(o + 1) * per_out];
        // FC: element i → row i/3, column i%3. Conv [cin][3][3] in C order: element
        // (ci·3 + kh)·3 + kw → row ci·3 + kh, column kw: the same rule.
        for (i, v) in src.iter().enumerate() {
            w[o * rows + i / 3][i % 3] = f64::from(*v);
        }
    }
    (outputs, per_out, w)
}

/// Structural group pruning: in each group of `group_size` consecutive output channels, score
/// every row by its L1 norm summed over the group and zero the `ceil(ratio · rows)` lowest rows
/// for all channels of the group (ties: the lower row index is pruned first). Returns the number
/// of (group, row) pairs pruned.
pub fn prune_rows(
    w: &mut [[f64; 3]],
    outputs: usize,
    rows: usize,
    group: usize,
    ratio: f64,
) -> usize {
    if ratio <= 0.0 {
        return 0;
    }
    let k = ((ratio * rows as f64).ceil() as usize).min(rows);
    let mut pruned = 0;
    for g0 in (0..outputs).step_by(group) {
        let chans = g0..(g0 + group).min(outputs);
        let mut score: Vec<(f64, usize)> = (0..rows)
            .map(|r| {
                let s = chans
                    .clone()
                    .map(|o| w[o * rows + r].iter().map(|v| v.abs()).sum::<f64>())
                    .sum();
                (s, r)
            })
            .collect();
        score.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        for &(_, r) in &score[..k] {
            for o in chans.clone() {
                w[o * rows + r] = [0.0; 3];
            }
        }
        pruned += k;
    }
    pruned
}

/// Decomposes one weight tensor. `progress(n)` is called (from worker threads) as blocks finish.
pub fn decompose_tensor(
    name: &str,
    shape: &[usize],
    data: &[f32],
    opts: &LayerOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<FloatLayer, String> {
    let kind = LayerKind::of_shape(shape)?;
    let expect: usize = shape.iter().product();
    if data.len() != expect || expect == 0 {
        return Err(format!(
            "tensor has {} values, shape {shape:?} needs {expect}",
            data.len()
        ));
    }
    let (outputs, inputs, w) = to_rows(kind, shape, data);
    let rows = w.len() / outputs;
    let rows_per_block = match kind {
        LayerKind::FullyConnected => fc_split(inputs).1,
        LayerKind::Conv3x3 { cin } => conv3x3_block_rows(cin),
    };
    let blocks = rows.div_ceil(rows_per_block);
    let mut a = w.clone();
    let pruned_rows = prune_rows(
        &mut a,
        outputs,
        rows,
        opts.group_size.max(1),
        opts.prune_ratio,
    );
    let mut block_opts = opts.block.clone();
    // The reference thresholds whole rows for 3×3 convolutions only.
    block_opts.threshold_row &= matches!(kind, LayerKind::Conv3x3 { .. });
    let fits: Vec<BlockFit> = (0..outputs * blocks)
        .into_par_iter()
        .map(|i| {
            let (o, b) = (i / blocks, i % blocks);
            let lo = o * rows + b * rows_per_block;
            let hi = o * rows + ((b + 1) * rows_per_block).min(rows);
            let fit = decompose_block(&a[lo..hi], &block_opts);
            progress(1);
            fit
        })
        .collect();
    Ok(FloatLayer {
        name: name.to_string(),
        kind,
        outputs,
        inputs,
        rows,
        rows_per_block,
        blocks,
        w,
        fits,
        pruned_rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> LayerOptions {
        LayerOptions {
            block: Options::default(),
            group_size: 2,
            prune_ratio: 0.0,
        }
    }

    #[test]
    fn kinds_by_shape() {
        assert_eq!(LayerKind::of_shape(&[4, 5]), Ok(LayerKind::FullyConnected));
        assert_eq!(
            LayerKind::of_shape(&[4, 5, 1, 1]),
            Ok(LayerKind::FullyConnected)
        );
        assert_eq!(
            LayerKind::of_shape(&[4, 5, 3, 3]),
            Ok(LayerKind::Conv3x3 { cin: 5 })
        );
        assert!(LayerKind::of_shape(&[4, 5, 7, 7])
            .unwrap_err()
            .contains("7×7 convolution is not decomposable"));
        assert!(LayerKind::of_shape(&[4]).is_err());
    }

    #[test]
    fn fc_rows_are_input_triples_zero_padded() {
        let data: Vec<f32> = (0..10).map(|i| i as f32).collect(); // 2 × 5
        let (o, i, w) = to_rows(LayerKind::FullyConnected, &[2, 5], &data);
        assert_eq!((o, i), (2, 5));
        assert_eq!(
            w,
            vec![[0., 1., 2.], [3., 4., 0.], [5., 6., 7.], [8., 9., 0.]]
        );
    }

    #[test]
    fn conv_rows_are_kernel_rows() {
        // 1 output, 2 input channels, 3×3: row ci·3 + kh holds taps kw.
        let data: Vec<f32> = (0..18).map(|i| i as f32).collect();
        let (_, _, w) = to_rows(LayerKind::Conv3x3 { cin: 2 }, &[1, 2, 3, 3], &data);
        assert_eq!(w.len(), 6);
        assert_eq!(w[4], [12., 13., 14.]); // ci = 1, kh = 1
    }

    #[test]
    fn pruning_zeroes_the_weakest_rows_of_each_group() {
        // 2 channels × 4 rows, one group: row scores (summed over the group) 2, 20, 0.5, 8.
        let mut w = vec![
            [1., 0., 0.],
            [10., 0., 0.],
            [0.25, 0., 0.],
            [4., 0., 0.],
            [1., 0., 0.],
            [10., 0., 0.],
            [0.25, 0., 0.],
            [4., 0., 0.],
        ];
        assert_eq!(prune_rows(&mut w, 2, 4, 2, 0.5), 2);
        for o in 0..2 {
            assert_eq!(w[o * 4], [0.; 3]);
            assert_eq!(w[o * 4 + 2], [0.; 3]);
            assert_eq!(w[o * 4 + 1], [10., 0., 0.]);
        }
        // ceil(0.3 · 4) = 2 rows as well; ratio 0 prunes nothing.
        assert_eq!(prune_rows(&mut w.clone(), 2, 4, 1, 0.3), 4);
        assert_eq!(prune_rows(&mut w, 2, 4, 2, 0.0), 0);
    }

    #[test]
    fn a_layer_decomposes_block_by_block_and_reports_its_error() {
        // 3 outputs × 20 inputs: 7 rows (last padded), one block of 7 rows per channel.
        let data: Vec<f32> = (0..60)
            .map(|i| ((i * 37 % 17) as f32 - 8.0) / 16.0)
            .collect();
        let count = std::sync::atomic::AtomicU64::new(0);
        let l = decompose_tensor("fc", &[3, 20], &data, &opts(), &|n| {
            count.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        })
        .unwrap();
        assert_eq!((l.rows, l.rows_per_block, l.blocks), (7, 7, 1));
        assert_eq!(count.into_inner(), 3);
        let e = l.relative_error();
        assert!(e > 0.0 && e < 0.6, "{e}");
        assert!(l.ce_density() > 0.3);
        // Deterministic: the same input gives the same fits.
        let again = decompose_tensor("fc", &[3, 20], &data, &opts(), &|_| {}).unwrap();
        assert_eq!(l.fits, again.fits);
    }

    #[test]
    fn shape_mismatch_is_an_error() {
        assert!(decompose_tensor("x", &[2, 3], &[0.0; 5], &opts(), &|_| {}).is_err());
    }
}
