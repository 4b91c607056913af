//! Decomposition of a whole weight tensor: cut it into blocks ([`crate::reshape`]), optionally
//! prune rows structurally, decompose every block in parallel ([`crate::block`]).

use crate::block::{decompose_block, BlockFit, Options};
use crate::linalg::M3;
use crate::moments::damped;
use crate::reshape::{conv3x3_block_rows, fc_split};
use crate::weighted::decompose_block_weighted;
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

/// What the decomposition minimizes (docs/decomposition.md §2.1); callers choose it by passing
/// input moments to [`decompose_tensor_with`] or not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// `‖W − Ce·B‖²`, the reference's; rows pruned by their L1 norm.
    #[default]
    Weight,
    /// The expected squared output error `Σ_r e_rᵀ H_r e_r` under the layer's input moments
    /// `H_r`; rows pruned by their expected output contribution.
    Output,
}

impl std::str::FromStr for Objective {
    type Err = String;
    fn from_str(s: &str) -> Result<Objective, String> {
        match s {
            "weight" => Ok(Objective::Weight),
            "output" => Ok(Objective::Output),
            other => Err(format!(
                "objective `{other}` is neither `weight` nor `output`"
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

/// Which rows structural pruning removes: for each group of `group_size` consecutive output
/// channels, the rows zeroed for every channel of the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowMask {
    pub outputs: usize,
    /// Ce rows per output channel.
    pub rows: usize,
    pub group_size: usize,
    /// `pruned[g · rows + r]`: row `r` is zeroed in group `g` (channels `g·group_size ..`).
    pub pruned: Vec<bool>,
}

impl RowMask {
    /// Whether row `r` of output channel `o` is pruned.
    pub fn is_pruned(&self, o: usize, r: usize) -> bool {
        self.pruned[(o / self.group_size) * self.rows + r]
    }

    /// The number of (group, row) pairs pruned.
    pub fn count(&self) -> usize {
        self.pruned.iter().filter(|p| **p).count()
    }

    /// Zeroes the pruned rows of `w` (`[o · rows + r]`, as [`FloatLayer::w`]).
    pub fn zero_rows(&self, w: &mut [[f64; 3]]) {
        for o in 0..self.outputs {
            for r in 0..self.rows {
                if self.is_pruned(o, r) {
                    w[o * self.rows + r] = [0.0; 3];
                }
            }
        }
    }

    /// Zeroes the pruned weights of a tensor in its own layout (C order, `outputs` channels of
    /// `data.len() / outputs` weights each; row `r` = weights `3r..3r+2` of a channel, for
    /// fully connected and 3×3 kernels alike).
    pub fn zero_weights(&self, data: &mut [f32]) {
        let per_out = data.len() / self.outputs.max(1);
        for (o, chan) in data.chunks_mut(per_out.max(1)).enumerate() {
            for (r, triple) in chan.chunks_mut(3).enumerate() {
                if self.is_pruned(o, r) {
                    triple.fill(0.0);
                }
            }
        }
    }
}

/// How much row `r` of the group `chans` matters: with input second moments `h` (one 3×3
/// matrix per row), the expected squared contribution of the row to the group's outputs,
/// `Σ_o w_{o,r}ᵀ H_r w_{o,r}`; without, its L1 norm summed over the group.
pub(crate) fn row_score_of(
    w: &[[f64; 3]],
    rows: usize,
    chans: std::ops::Range<usize>,
    r: usize,
    h: Option<&[M3]>,
) -> f64 {
    chans
        .map(|o| {
            let v = &w[o * rows + r];
            match h {
                Some(h) => quad_form(&h[r], v),
                None => v.iter().map(|x| x.abs()).sum::<f64>(),
            }
        })
        .sum()
}

/// `vᵀ H v`.
pub fn quad_form(h: &M3, v: &[f64; 3]) -> f64 {
    (0..3)
        .map(|i| v[i] * (0..3).map(|j| h[i][j] * v[j]).sum::<f64>())
        .sum()
}

/// The structural row mask without changing the weights: in each group of `group_size`
/// consecutive output channels, every row is scored ([`row_score_of`]: the L1 norm summed over
/// the group, or with `moments` the expected squared output contribution) and the
/// `ceil(ratio · rows)` lowest rows are pruned (ties: the lower row index first; a product a
/// rounding above an integer counts as that integer).
pub fn prune_mask(
    w: &[[f64; 3]],
    outputs: usize,
    rows: usize,
    group: usize,
    ratio: f64,
    moments: Option<&[M3]>,
) -> RowMask {
    let group = group.max(1);
    let groups = outputs.div_ceil(group);
    let mut pruned = vec![false; groups * rows];
    if ratio > 0.0 {
        // `ceil(ratio · rows)`, the product shrunk by a relative 1e-12 first: a ratio given as
        // `1 − density` is a rounding above the intended value (1 − 0.3 = 0.7000000000000001,
        // times 10 rows = 7.000000000000001), which must not prune an extra row.
        let k = ((ratio * rows as f64 * (1.0 - 1e-12)).ceil() as usize).min(rows);
        for g in 0..groups {
            let chans = g * group..((g + 1) * group).min(outputs);
            let mut score: Vec<(f64, usize)> = (0..rows)
                .map(|r| (row_score_of(w, rows, chans.clone(), r, moments), r))
                .collect();
            score.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            for &(_, r) in &score[..k] {
                pruned[g * rows + r] = true;
            }
        }
    }
    RowMask {
        outputs,
        rows,
        group_size: group,
        pruned,
    }
}

/// [`prune_mask`] of a weight tensor as stored (`shape` and C-order `data`, as
/// [`decompose_tensor`] takes them); `moments`, if given, has one 3×3 matrix per Ce row.
pub fn tensor_prune_mask(
    shape: &[usize],
    data: &[f32],
    group_size: usize,
    ratio: f64,
    moments: Option<&[M3]>,
) -> Result<RowMask, String> {
    let (outputs, rows, w) = tensor_rows(shape, data, moments)?;
    Ok(prune_mask(&w, outputs, rows, group_size, ratio, moments))
}

/// A tensor's output channels, Ce rows per channel and rows (`[o · rows + r]`), checked
/// against its shape and the moments' row count.
pub(crate) fn tensor_rows(
    shape: &[usize],
    data: &[f32],
    moments: Option<&[M3]>,
) -> Result<(usize, usize, Vec<[f64; 3]>), String> {
    let kind = LayerKind::of_shape(shape)?;
    check_len(shape, data)?;
    let (outputs, _, w) = to_rows(kind, shape, data);
    let rows = w.len() / outputs;
    check_moments(moments, rows)?;
    Ok((outputs, rows, w))
}

fn check_len(shape: &[usize], data: &[f32]) -> Result<(), String> {
    let expect: usize = shape.iter().product();
    if data.len() != expect || expect == 0 {
        return Err(format!(
            "tensor has {} values, shape {shape:?} needs {expect}",
            data.len()
        ));
    }
    Ok(())
}

fn check_moments(moments: Option<&[M3]>, rows: usize) -> Result<(), String> {
    match moments {
        Some(h) if h.len() != rows => Err(format!(
            "input moments for {} rows, the layer has {rows}",
            h.len()
        )),
        _ => Ok(()),
    }
}

/// Structural group pruning by L1 norm ([`prune_mask`] without moments), applied to `w`.
/// Returns the number of (group, row) pairs pruned.
pub fn prune_rows(
    w: &mut [[f64; 3]],
    outputs: usize,
    rows: usize,
    group: usize,
    ratio: f64,
) -> usize {
    let mask = prune_mask(w, outputs, rows, group, ratio, None);
    mask.zero_rows(w);
    mask.count()
}

/// Decomposes one weight tensor under the weight objective. `progress(n)` is called (from
/// worker threads) as blocks finish.
pub fn decompose_tensor(
    name: &str,
    shape: &[usize],
    data: &[f32],
    opts: &LayerOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<FloatLayer, String> {
    decompose_tensor_with(name, shape, data, opts, None, progress)
}

/// Decomposes one weight tensor: under the weight objective without `moments`, under
/// [`Objective::Output`] with them (`H_r`, one per Ce row, e.g.
/// [`crate::moments::RowMoments::mean`]), which then choose the pruned rows
/// ([`prune_mask`]) and weigh the block fits ([`decompose_block_weighted`]).
pub fn decompose_tensor_with(
    name: &str,
    shape: &[usize],
    data: &[f32],
    opts: &LayerOptions,
    moments: Option<&[M3]>,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<FloatLayer, String> {
    decompose_tensor_masked(name, shape, data, opts, moments, None, progress)
}

/// [`decompose_tensor_with`] with the pruned rows given (`mask`, e.g. from
/// [`crate::budget::global_masks`]; `opts.prune_ratio` is then not read) instead of chosen
/// per layer. The layer keeps the unpruned weights as its reference ([`FloatLayer::w`]).
pub fn decompose_tensor_masked(
    name: &str,
    shape: &[usize],
    data: &[f32],
    opts: &LayerOptions,
    moments: Option<&[M3]>,
    mask: Option<&RowMask>,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<FloatLayer, String> {
    let kind = LayerKind::of_shape(shape)?;
    check_len(shape, data)?;
    let (outputs, inputs, w) = to_rows(kind, shape, data);
    let rows = w.len() / outputs;
    let rows_per_block = match kind {
        LayerKind::FullyConnected => fc_split(inputs).1,
        LayerKind::Conv3x3 { cin } => conv3x3_block_rows(cin),
    };
    let blocks = rows.div_ceil(rows_per_block);
    if let Some(h) = moments {
        check_moments(Some(h), rows)?;
        if opts.block.scale {
            return Err("the output objective does not support `scale`".into());
        }
    }
    let h = moments;
    let mut a = w.clone();
    let mask = match mask {
        Some(m) if (m.outputs, m.rows) != (outputs, rows) => {
            return Err(format!(
                "row mask for {} channels × {} rows, the layer has {outputs} × {rows}",
                m.outputs, m.rows
            ))
        }
        Some(m) => m.clone(),
        None => prune_mask(&a, outputs, rows, opts.group_size, opts.prune_ratio, h),
    };
    mask.zero_rows(&mut a);
    let hd = h.map(damped);
    let mut block_opts = opts.block.clone();
    // The reference thresholds whole rows for 3×3 convolutions only.
    block_opts.threshold_row &= matches!(kind, LayerKind::Conv3x3 { .. });
    let fits: Vec<BlockFit> = (0..outputs * blocks)
        .into_par_iter()
        .map(|i| {
            let (o, b) = (i / blocks, i % blocks);
            let (r0, r1) = (b * rows_per_block, ((b + 1) * rows_per_block).min(rows));
            let rows_of = &a[o * rows + r0..o * rows + r1];
            let fit = match &hd {
                None => decompose_block(rows_of, &block_opts),
                Some(hd) => decompose_block_weighted(rows_of, &hd[r0..r1], &block_opts),
            };
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
        pruned_rows: mask.count(),
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
    fn the_mask_zeroes_the_same_rows_in_the_tensor_layout() {
        // 3 channels × 7 inputs (3 rows, the last padded), groups of 2: group 0 = channels
        // 0–1, group 1 = channel 2. Row L1 scores: group 0 rows (2, 12, 0.5) → prune rows 2
        // and 0 at ratio 0.5 (ceil 1.5 = 2); group 1 rows (9, 1, 3) → rows 1 and 2.
        #[rustfmt::skip]
        let data: Vec<f32> = vec![
            1., 0., 0., 6., 0., 0., 0.5,
            1., 0., 0., 6., 0., 0., 0.0,
            9., 0., 0., 1., 0., 0., 3.0,
        ];
        let m = tensor_prune_mask(&[3, 7], &data, 2, 0.5, None).unwrap();
        assert_eq!(m.pruned, vec![true, false, true, false, true, true]);
        assert!(m.is_pruned(1, 0) && !m.is_pruned(2, 0) && m.is_pruned(2, 2));
        assert_eq!(m.count(), 4);
        let mut z = data.clone();
        m.zero_weights(&mut z);
        #[rustfmt::skip]
        assert_eq!(z, vec![
            0., 0., 0., 6., 0., 0., 0.0,
            0., 0., 0., 6., 0., 0., 0.0,
            9., 0., 0., 0., 0., 0., 0.0,
        ]);
        // Decomposing the zeroed tensor without pruning = decomposing with pruning.
        let lo = LayerOptions {
            prune_ratio: 0.5,
            ..opts()
        };
        let a = decompose_tensor("fc", &[3, 7], &data, &lo, &|_| {}).unwrap();
        let b = decompose_tensor("fc", &[3, 7], &z, &opts(), &|_| {}).unwrap();
        assert_eq!(a.fits, b.fits);
        assert!(tensor_prune_mask(&[3, 7], &data, 2, 0.5, Some(&[[[0.0; 3]; 3]; 2])).is_err());
    }

    #[test]
    fn output_moments_change_which_rows_are_pruned() {
        // One channel, 2 rows with the same L1 norm; the first row's inputs carry 100× the
        // variance, so by expected output contribution the second row goes.
        let w = vec![[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]];
        let by_l1 = prune_mask(&w, 1, 2, 1, 0.5, None);
        assert_eq!(by_l1.pruned, vec![true, false]); // tie: the lower index
        let mut big = [[0.0; 3]; 3];
        big[0][0] = 100.0;
        big[1][1] = 1.0;
        let h = vec![big, big];
        let by_out = prune_mask(&w, 1, 2, 1, 0.5, Some(&h));
        assert_eq!(by_out.pruned, vec![false, true]);
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
    fn the_output_objective_lowers_the_layers_output_error() {
        // 8 outputs × 30 inputs (10 rows); the inputs of rows 0–4 carry 50× the variance of
        // rows 5–8, row 9's inputs are dead (H = 0: the damping keeps the fit finite).
        let data: Vec<f32> = (0..240)
            .map(|i| ((i * 53 % 29) as f32 - 14.0) / 20.0)
            .collect();
        let h: Vec<M3> = (0..10)
            .map(|r| {
                let s = if r < 5 {
                    50.0
                } else if r < 9 {
                    1.0
                } else {
                    0.0
                };
                [
                    [s, 0.3 * s, 0.0],
                    [0.3 * s, s, 0.1 * s],
                    [0.0, 0.1 * s, 2.0 * s],
                ]
            })
            .collect();
        let out_err = |l: &FloatLayer| -> f64 {
            let mut e = 0.0;
            for o in 0..l.outputs {
                for (r, hr) in h.iter().enumerate() {
                    let rec = l.reconstruct_row(o, r);
                    let d = [0, 1, 2].map(|j| l.w[o * l.rows + r][j] - rec[j]);
                    e += quad_form(hr, &d);
                }
            }
            e
        };
        let plain = decompose_tensor("fc", &[8, 30], &data, &opts(), &|_| {}).unwrap();
        let aware =
            decompose_tensor_with("fc", &[8, 30], &data, &opts(), Some(&h), &|_| {}).unwrap();
        assert!(aware
            .fits
            .iter()
            .all(|f| f.b.iter().flatten().all(|v| v.is_finite())));
        assert!(
            out_err(&aware) < 0.9 * out_err(&plain),
            "{} vs {}",
            out_err(&aware),
            out_err(&plain)
        );
        // Pruning half the rows by output contribution keeps the high-variance rows.
        let lo = LayerOptions {
            prune_ratio: 0.5,
            ..opts()
        };
        let p = decompose_tensor_with("fc", &[8, 30], &data, &lo, Some(&h), &|_| {}).unwrap();
        assert_eq!(p.pruned_rows, 4 * 5);
        for o in 0..8 {
            for r in 0..5 {
                assert_ne!(p.reconstruct_row(o, r), [0.0; 3], "row {r} of channel {o}");
            }
        }
        assert!(decompose_tensor_with("fc", &[8, 30], &data, &lo, Some(&h[..9]), &|_| {}).is_err());
    }

    #[test]
    fn shape_mismatch_is_an_error() {
        assert!(decompose_tensor("x", &[2, 3], &[0.0; 5], &opts(), &|_| {}).is_err());
    }
}
