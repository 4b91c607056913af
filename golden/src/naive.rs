//! A deliberately naive reference: dense i128 weights rebuilt with multiplications and powers,
//! rounding by floor division. It shares nothing with [`crate::model`] except the layer data, so
//! the two can be tested against each other.

use smartdeal_core::{AccelConfig, Coef, FcLayer, WeightRequant};

fn floor_div_pow2(v: i128, s: u32) -> i128 {
    v.div_euclid(1i128 << s)
}

/// round(v / 2^s) with ties toward +∞, as floor(v / 2^s + 1/2) = floor((2v + 2^s) / 2^(s+1)).
pub fn round_half_up(v: i128, s: u32) -> i128 {
    if s == 0 {
        v
    } else {
        floor_div_pow2(2 * v + (1i128 << s), s + 1)
    }
}

/// Saturates to the signed `bits`-bit range.
pub fn clamp_bits(v: i128, bits: u32) -> i128 {
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
            for (k, brow) in b.iter().enumerate() {
                let c = layer.coef[(o * rows + r) * 3 + k];
                let ce: i128 = match c {
                    Coef::Zero => 0,
                    Coef::Pow2 { neg, code } => (if neg { -1 } else { 1 }) * 2i128.pow(code.into()),
                };
                exact += ce * i128::from(brow[j]);
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
            y.push(out_requant(
                acc,
                layer.bias[o],
                layer.out_mult[o],
                layer.out_shift[o],
                layer.relu,
            ));
        }
    }
    y
}

/// `sat_int8(round((acc + bias) · M / 2^sh))`, ties up, then ReLU.
pub fn out_requant(acc: i128, bias: i32, mult: u16, shift: u8, relu: bool) -> i8 {
    let t = (acc + i128::from(bias)) * i128::from(mult);
    let v = clamp_bits(round_half_up(t, shift.into()), 8);
    (if relu { v.max(0) } else { v }) as i8
}
