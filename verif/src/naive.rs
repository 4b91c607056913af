//! A deliberately naive reference: dense i128 weights rebuilt with multiplications and powers,
//! rounding by floor division. It shares nothing with [`crate::golden`] except the layer data, so
//! the two can be tested against each other.

use smartdeal_core::{AccelConfig, Coef, FcLayer, WeightRequant};

fn floor_div_pow2(v: i128, s: u32) -> i128 {
    v.div_euclid(1i128 << s)
}

/// round(v / 2^s) with ties toward +∞, as floor(v / 2^s + 1/2) = floor((2v + 2^s) / 2^(s+1)).
fn round_half_up(v: i128, s: u32) -> i128 {
    if s == 0 {
        v
    } else {
        floor_div_pow2(2 * v + (1i128 << s), s + 1)
    }
}

fn clamp_bits(v: i128, bits: u32) -> i128 {
    v.max(-(1i128 << (bits - 1))).min((1i128 << (bits - 1)) - 1)
}

/// Dense weights `[out][in]` as the MAC array sees them.
pub fn dense_weights(cfg: &AccelConfig, layer: &FcLayer) -> Vec<i128> {
    let n = layer.inputs as usize;
    let rows = layer.rows();
    let blocks = layer.blocks();
    let mut w = Vec::with_capacity(layer.outputs as usize * n);
    for o in 0..layer.outputs as usize {
        for i in 0..n {
            let r = i / 3;
            let j = i % 3;
            let b = &layer.basis[o * blocks + r / layer.rows_per_block as usize];
            let mut exact: i128 = 0;
            for k in 0..3 {
                let c = layer.coef[(o * rows + r) * 3 + k];
                let ce: i128 = match c {
                    Coef::Zero => 0,
                    Coef::Pow2 { neg, code } => (if neg { -1 } else { 1 }) * 2i128.pow(code.into()),
                };
                exact += ce * i128::from(b[k][j]);
            }
            w.push(match cfg.weight_requant {
                WeightRequant::Exact => exact,
                WeightRequant::Int8 => {
                    clamp_bits(round_half_up(exact, u32::from(layer.wshift[o])), 8)
                }
            });
        }
    }
    w
}

/// Outputs `[tokens][out]` for activations `[tokens][in]`.
pub fn run_layer(cfg: &AccelConfig, layer: &FcLayer, x: &[i8]) -> Vec<i8> {
    let n = layer.inputs as usize;
    let m = layer.outputs as usize;
    let w = dense_weights(cfg, layer);
    let mut y = Vec::new();
    for xt in x.chunks(n) {
        for o in 0..m {
            let acc: i128 = (0..n).map(|i| i128::from(xt[i]) * w[o * n + i]).sum();
            let t = (acc + i128::from(layer.bias[o])) * i128::from(layer.out_mult[o]);
            let mut v = clamp_bits(round_half_up(t, layer.out_shift[o].into()), 8);
            if layer.relu && v < 0 {
                v = 0;
            }
            y.push(v as i8);
        }
    }
    y
}
