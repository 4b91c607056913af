//! Seeded random valid layers, for demos (`smartdeal random-layer`) and tests.
//!
//! The same spec and seed always give the same layer (ChaCha8, independent of platform).

use crate::layer::{Coef, ConvShape, FcLayer};
use crate::params::AccelConfig;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct RandomLayerSpec {
    pub name: String,
    pub inputs: u32,
    pub outputs: u32,
    /// Fraction of Ce rows present (per row group), 0..=1.
    pub row_density: f64,
    /// Fraction of elements nonzero inside a present row, 0..=1.
    pub elem_density: f64,
    pub rows_per_block: u32,
    /// Output channels sharing a row bitmap; 0 means all outputs share one.
    pub group_size: u32,
    pub exp_bits: u8,
    /// Basis values are drawn from the signed `basis_bits` range.
    pub basis_bits: u32,
    /// Probability that a value is drawn from the extremes (B = min/max, code = 0/max).
    pub extreme: f64,
    pub relu: bool,
    /// Largest weight shift allowed (the accelerator's `wshift_max`).
    pub wshift_max: u32,
    pub act_bits: u32,
    pub seed: u64,
}

impl RandomLayerSpec {
    /// A spec sized for `cfg` with the given shape and densities.
    pub fn for_config(
        cfg: &AccelConfig,
        inputs: u32,
        outputs: u32,
        row_density: f64,
        seed: u64,
    ) -> Self {
        RandomLayerSpec {
            name: "layer0".into(),
            inputs,
            outputs,
            row_density,
            elem_density: 0.8,
            rows_per_block: cfg.rows_per_block,
            group_size: 0,
            exp_bits: cfg.exp_bits as u8,
            basis_bits: cfg.basis_bits,
            extreme: 0.05,
            relu: false,
            wshift_max: cfg.wshift_max(),
            act_bits: cfg.act_bits,
            seed,
        }
    }
}

/// Generates a valid layer; exactly `round(row_density × rows)` rows are present per group.
pub fn random_layer(spec: &RandomLayerSpec) -> FcLayer {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let rows = (spec.inputs as usize).div_ceil(3);
    let group_size = if spec.group_size == 0 {
        spec.outputs
    } else {
        spec.group_size
    };
    let groups = (spec.outputs as usize).div_ceil(group_size as usize);
    let blocks = rows.div_ceil(spec.rows_per_block as usize);
    let b_max = (1i32 << (spec.basis_bits - 1)) - 1;
    let b_min = -(1i32 << (spec.basis_bits - 1));
    let code_max = (1u8 << spec.exp_bits) - 1;
    let n_present = ((spec.row_density.clamp(0.0, 1.0) * rows as f64).round() as usize).min(rows);

    let row_present: Vec<Vec<bool>> = (0..groups)
        .map(|_| {
            // Choose exactly n_present rows: a partial Fisher–Yates shuffle.
            let mut idx: Vec<usize> = (0..rows).collect();
            for i in 0..n_present {
                let j = rng.gen_range(i..rows);
                idx.swap(i, j);
            }
            let mut bm = vec![false; rows];
            for &r in &idx[..n_present] {
                bm[r] = true;
            }
            bm
        })
        .collect();

    let pick_b = |rng: &mut ChaCha8Rng| -> i8 {
        if rng.gen_bool(spec.extreme.clamp(0.0, 1.0)) {
            if rng.gen_bool(0.5) {
                b_min as i8
            } else {
                b_max as i8
            }
        } else {
            rng.gen_range(b_min..=b_max) as i8
        }
    };
    let basis: Vec<[[i8; 3]; 3]> = (0..spec.outputs as usize * blocks)
        .map(|_| {
            let mut b = [[0i8; 3]; 3];
            for row in &mut b {
                for v in row.iter_mut() {
                    *v = pick_b(&mut rng);
                }
            }
            b
        })
        .collect();

    let mut coef = vec![Coef::Zero; spec.outputs as usize * rows * 3];
    for o in 0..spec.outputs as usize {
        let g = o / group_size as usize;
        for r in 0..rows {
            if !row_present[g][r] {
                continue;
            }
            for k in 0..3 {
                if rng.gen_bool(spec.elem_density.clamp(0.0, 1.0)) {
                    let code = if rng.gen_bool(spec.extreme.clamp(0.0, 1.0)) {
                        if rng.gen_bool(0.5) {
                            code_max
                        } else {
                            0
                        }
                    } else {
                        rng.gen_range(0..=code_max)
                    };
                    coef[(o * rows + r) * 3 + k] = Coef::Pow2 {
                        neg: rng.gen_bool(0.5),
                        code,
                    };
                }
            }
        }
    }

    // Requantization parameters chosen so outputs mostly land inside int8 (a few saturate).
    let mut wshift = Vec::new();
    let mut bias = Vec::new();
    let mut out_mult = Vec::new();
    let mut out_shift = Vec::new();
    for o in 0..spec.outputs as usize {
        // Upper bound of |rebuilt weight| for this channel: Σ_k |B[k][j]| · 2^code_k.
        let mut bound: i64 = 0;
        for r in 0..rows {
            let b = &basis[o * blocks + r / spec.rows_per_block as usize];
            let cr = &coef[(o * rows + r) * 3..(o * rows + r) * 3 + 3];
            for j in 0..3 {
                let s: i64 = cr
                    .iter()
                    .zip(b.iter())
                    .map(|(c, brow)| match *c {
                        Coef::Zero => 0,
                        Coef::Pow2 { code, .. } => i64::from(brow[j]).abs() << code,
                    })
                    .sum();
                bound = bound.max(s);
            }
        }
        let mut s = 0u32;
        while s < spec.wshift_max && (bound >> s) > 127 {
            s += 1;
        }
        // Occasionally a smaller shift than needed, so saturation paths are exercised.
        if s > 0 && rng.gen_bool(spec.extreme.clamp(0.0, 1.0)) {
            s -= 1;
        }
        wshift.push(s as u8);
        let w_typ = ((bound >> s).clamp(1, 127) as f64) / 2.0;
        let x_typ = f64::from(1u32 << (spec.act_bits - 1)) / 2.0;
        let present = row_present[o / group_size as usize]
            .iter()
            .filter(|&&p| p)
            .count();
        let acc_typ = (3.0 * present.max(1) as f64).sqrt() * w_typ * x_typ;
        let m: u16 = rng.gen_range(1 << 13..=u16::MAX);
        let sh = ((acc_typ * f64::from(m) / 48.0).log2().round()).clamp(0.0, 31.0) as u8;
        out_mult.push(m);
        out_shift.push(sh);
        let bmag = acc_typ.min(1e9) as i32;
        bias.push(rng.gen_range(-bmag..=bmag));
    }

    FcLayer {
        name: spec.name.clone(),
        inputs: spec.inputs,
        outputs: spec.outputs,
        rows_per_block: spec.rows_per_block,
        group_size,
        exp_bits: spec.exp_bits,
        e_lo: -(rng.gen_range(4..12) as i8),
        relu: spec.relu,
        row_present,
        basis,
        coef,
        wshift,
        bias,
        out_mult,
        out_shift,
        conv: None,
    }
}

/// Generates a valid convolution layer: [`random_layer`] with `inputs = conv.inputs()`
/// (`in_channels · kernel²`; `spec.inputs` is ignored) and `conv` set, so its weights read as the
/// kernel `[outputs][in_channels][kernel][kernel]`. Errors (one line) when `conv` is not a
/// supported geometry ([`ConvShape::validate`]).
pub fn random_conv_layer(spec: &RandomLayerSpec, conv: ConvShape) -> Result<FcLayer, String> {
    let inputs = u32::try_from(conv.inputs()).map_err(|_| {
        format!(
            "{} input channels of a {k}×{k} kernel are too many",
            conv.in_channels,
            k = conv.kernel
        )
    })?;
    conv.validate(inputs)?;
    let spec = RandomLayerSpec {
        inputs,
        ..spec.clone()
    };
    Ok(FcLayer {
        conv: Some(conv),
        ..random_layer(&spec)
    })
}

/// Seeded random int8 activations in the `act_bits` range, `[tokens][inputs]` row-major.
pub fn random_activations(act_bits: u32, tokens: usize, inputs: usize, seed: u64) -> Vec<i8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_ac71_0000_0001);
    let lo = -(1i16 << (act_bits - 1));
    let hi = (1i16 << (act_bits - 1)) - 1;
    (0..tokens * inputs)
        .map(|_| rng.gen_range(lo..=hi) as i8)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_layers_are_valid_deterministic_and_have_the_asked_density() {
        let cfg = AccelConfig::preset("tiny").unwrap();
        for seed in 0..20 {
            let spec = RandomLayerSpec::for_config(&cfg, 30 + seed as u32, 9, 0.3, seed);
            let a = random_layer(&spec);
            a.validate().unwrap();
            a.check_fits(&cfg).unwrap();
            assert_eq!(a, random_layer(&spec));
            let want = (0.3 * a.rows() as f64).round() / a.rows() as f64;
            assert!((a.row_density() - want).abs() < 1e-9);
        }
    }

    #[test]
    fn random_conv_layers_are_valid_convolutions() {
        let cfg = AccelConfig::preset("tiny").unwrap();
        let spec = RandomLayerSpec::for_config(&cfg, 999, 6, 0.5, 3);
        for (kernel, stride, padding) in [(3, 1, 1), (3, 2, 0), (1, 1, 0), (1, 2, 1)] {
            let conv = ConvShape {
                in_channels: 5,
                kernel,
                stride,
                padding,
            };
            let l = random_conv_layer(&spec, conv).unwrap();
            assert_eq!(l.conv, Some(conv));
            assert_eq!(l.inputs, 5 * u32::from(kernel) * u32::from(kernel));
            l.validate().unwrap();
            l.check_fits(&cfg).unwrap();
            assert_eq!(l, random_conv_layer(&spec, conv).unwrap());
        }
        let bad = ConvShape {
            in_channels: 5,
            kernel: 5,
            stride: 1,
            padding: 0,
        };
        assert!(random_conv_layer(&spec, bad).unwrap_err().contains("5×5"));
    }

    #[test]
    fn empty_and_full_densities() {
        let cfg = AccelConfig::preset("tiny").unwrap();
        let mut spec = RandomLayerSpec::for_config(&cfg, 12, 5, 0.0, 1);
        assert_eq!(random_layer(&spec).row_density(), 0.0);
        spec.row_density = 1.0;
        spec.elem_density = 1.0;
        let l = random_layer(&spec);
        assert_eq!(l.row_density(), 1.0);
        assert_eq!(l.coef_density(), 1.0);
    }
}
