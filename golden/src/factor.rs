//! The factorized dataflow (`dataflow = "factorized"`, docs/numerics.md §4b), written
//! independently of the rebuild model in [`crate::model`]: it never forms a weight. Per block and
//! output channel, nine accumulators collect `Ce[r][k] · x[r][j]` over the block's present rows
//! (a power of two times an activation: a shift and an add or subtract), and the block then adds
//! `Σ_k Σ_j B[k][j] · acc[k][j]` to the channel's sum. With exact weights this is the same
//! integer as the rebuild dataflow's `Σ_r Σ_j x[r][j] · Σ_k Ce[r][k] · B[k][j]` (the property
//! tests in `golden/tests/factor.rs` demand bit equality); the output stage is the shared
//! [`out_requant`](crate::model::out_requant).

use crate::model::{out_requant, wrap_signed};
use smartdeal_core::{AccelConfig, Coef, ConvShape, FcLayer, ImageDims, LayerError};

/// One per-row term `Ce · x`: 0 for an absent element, else `±x · 2^code`, exact
/// (|term| ≤ 2^(act_bits − 1 + code_max): `AccelConfig::factor_term_bits` signed bits).
pub fn term(c: Coef, x: i8) -> i64 {
    match c {
        Coef::Zero => 0,
        Coef::Pow2 { neg, code } => {
            let t = i64::from(x) * (1i64 << code);
            if neg {
                -t
            } else {
                t
            }
        }
    }
}

/// The nine block accumulators of one lane and slot: `acc[k][j]`.
pub type BlockAcc = [[i64; 3]; 3];

/// One row's update of the nine accumulators: `acc[k][j] += Ce[r][k] · x[r][j]`.
pub fn row_update(acc: &mut BlockAcc, coefs: [Coef; 3], x: [i8; 3]) {
    for (k, &c) in coefs.iter().enumerate() {
        for (j, &xj) in x.iter().enumerate() {
            acc[k][j] += term(c, xj);
        }
    }
}

/// A block's contribution to the channel's sum: `Σ_k Σ_j B[k][j] · acc[k][j]`.
pub fn flush(basis: &[[i8; 3]; 3], acc: &BlockAcc) -> i64 {
    let mut s = 0;
    for k in 0..3 {
        for j in 0..3 {
            s += i64::from(basis[k][j]) * acc[k][j];
        }
    }
    s
}

/// The channel sum of output `o` for one input vector `x` (padded with zeros to `3 · rows`),
/// block by block, wrapped to `acc_bits` like the channel accumulator register.
fn channel_sum(cfg: &AccelConfig, layer: &FcLayer, o: usize, x: &[i8]) -> i64 {
    let rows = layer.rows();
    let rpb = layer.rows_per_block as usize;
    let at = |i: usize| x.get(i).copied().unwrap_or(0);
    let mut sum = 0i64;
    for blk in 0..layer.blocks() {
        let mut acc: BlockAcc = [[0; 3]; 3];
        for r in blk * rpb..((blk + 1) * rpb).min(rows) {
            if layer.row_is_present(o, r) {
                row_update(
                    &mut acc,
                    layer.coef_row(o, r),
                    [at(3 * r), at(3 * r + 1), at(3 * r + 2)],
                );
            }
        }
        sum += flush(&layer.basis[o * layer.blocks() + blk], &acc);
    }
    wrap_signed(sum, cfg.acc_bits)
}

/// Accumulators (before bias) for activation vectors `x` (`[tokens][inputs]`), as
/// `[tokens][out]`.
pub fn accumulators(cfg: &AccelConfig, layer: &FcLayer, x: &[i8]) -> Vec<i64> {
    let n = layer.inputs as usize;
    let m = layer.outputs as usize;
    x.chunks(n)
        .flat_map(|xt| (0..m).map(move |o| channel_sum(cfg, layer, o, xt)))
        .collect()
}

/// The int8 outputs `[tokens][out]` of the factorized dataflow for `x` (`[tokens][inputs]`).
pub fn run_layer(cfg: &AccelConfig, layer: &FcLayer, x: &[i8]) -> Vec<i8> {
    let m = layer.outputs as usize;
    accumulators(cfg, layer, x)
        .into_iter()
        .enumerate()
        .map(|(i, acc)| requant(layer, acc, i % m))
        .collect()
}

fn requant(layer: &FcLayer, acc: i64, o: usize) -> i8 {
    out_requant(
        acc,
        layer.bias[o],
        layer.out_mult[o],
        layer.out_shift[o],
        layer.relu,
    )
}

/// The int8 outputs `[images][out][H'][W']` of the convolution `layer.conv` on images `x`
/// (`[images][in_channels][height][width]`): each output pixel's inputs, in the layer's weight
/// order `(ci · k + kh) · k + kw` (zero outside the image), run through the same factorized sum
/// as a fully connected input vector.
///
/// # Errors
///
/// A fully connected layer, or an input whose length or size does not fit the kernel.
pub fn run_conv(
    cfg: &AccelConfig,
    layer: &FcLayer,
    x: &[i8],
    dims: ImageDims,
) -> Result<Vec<i8>, LayerError> {
    let conv: ConvShape = layer
        .conv
        .ok_or_else(|| layer.err("not a convolution (the layer has no kernel shape)".into()))?;
    let (oh, ow) = conv.out_dims(dims).map_err(|why| layer.err(why))?;
    let (c, h, w) = (conv.in_channels as usize, dims.height, dims.width);
    if x.len() != dims.images * c * h * w {
        return Err(layer.err(format!(
            "{} activations for {} images of {c} × {h} × {w}",
            x.len(),
            dims.images
        )));
    }
    let (k, s, p) = (
        usize::from(conv.kernel),
        usize::from(conv.stride),
        usize::from(conv.padding),
    );
    let m = layer.outputs as usize;
    let mut y = vec![0i8; dims.images * m * oh * ow];
    let mut patch = vec![0i8; layer.inputs as usize];
    for img in 0..dims.images {
        let xi = &x[img * c * h * w..(img + 1) * c * h * w];
        for oy in 0..oh {
            for ox in 0..ow {
                for (i, v) in patch.iter_mut().enumerate() {
                    let (ci, kh, kw) = (i / (k * k), i / k % k, i % k);
                    let iy = (oy * s + kh).checked_sub(p).filter(|&iy| iy < h);
                    let ix = (ox * s + kw).checked_sub(p).filter(|&ix| ix < w);
                    *v = match (iy, ix) {
                        (Some(iy), Some(ix)) => xi[(ci * h + iy) * w + ix],
                        _ => 0,
                    };
                }
                for o in 0..m {
                    let acc = channel_sum(cfg, layer, o, &patch);
                    y[((img * m + o) * oh + oy) * ow + ox] = requant(layer, acc, o);
                }
            }
        }
    }
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn term_is_a_signed_power_of_two_times_x_for_every_input() {
        for x in i8::MIN..=i8::MAX {
            assert_eq!(term(Coef::Zero, x), 0);
            for code in 0..16u8 {
                let p = i64::from(x) << code;
                assert_eq!(term(Coef::Pow2 { neg: false, code }, x), p);
                assert_eq!(term(Coef::Pow2 { neg: true, code }, x), -p);
            }
        }
    }

    #[test]
    fn one_block_by_hand() {
        // Two rows; B = [[1,2,3],[4,5,6],[7,8,-9]].
        let b = [[1, 2, 3], [4, 5, 6], [7, 8, -9]];
        let mut acc: BlockAcc = [[0; 3]; 3];
        let c = |neg, code| Coef::Pow2 { neg, code };
        row_update(&mut acc, [c(false, 1), Coef::Zero, c(true, 0)], [1, -2, 3]);
        row_update(&mut acc, [c(false, 0), c(true, 2), Coef::Zero], [5, 0, -1]);
        assert_eq!(acc, [[7, -4, 5], [-20, 0, 4], [-1, 2, -3]]);
        // Σ B·acc = 7 − 8 + 15 − 80 + 0 + 24 − 7 + 16 + 27 = −6
        assert_eq!(flush(&b, &acc), -6);
        // The same as the rebuilt weights: row 0 w = 2·B[0] − B[2] = [−5, −4, 15],
        // row 1 w = B[0] − 4·B[1] = [−15, −18, −21]; x·w = −5 + 8 + 45 − 75 + 0 + 21 = −6.
    }
}
