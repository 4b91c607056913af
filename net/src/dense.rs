//! The dense int8 models' layers: plain per-output-channel int8 weights (no SmartDeal
//! decomposition) in the layer format, for a dense accelerator configuration
//! ([`smartdeal_core::AccelConfig::dense_baseline`]) — the "dense int8" rows of `eval sts` and
//! `eval mnist` — and the output-stage multiplier rule both int8 models use.

use crate::minilm::MiniLm;
use crate::quant::{scale_of, Calibration, QLayer};
use crate::NetError;
use smartdeal_core::{AccelConfig, Coef, ConvShape, FcLayer};

/// `m` as the output stage's `M / 2^sh`: the largest `sh ≤ 31` for which `M = round(m · 2^sh)`
/// fits 16 bits (`M = 65535, sh = 0` if `m` itself does not) — the rule of
/// `docs/decomposition.md` §4.5.
pub fn out_multiplier(m: f64) -> (u16, u8) {
    let mmax = f64::from(u16::MAX);
    if m.round() > mmax {
        return (u16::MAX, 0);
    }
    let mut sh = 0;
    while sh < 31 && (m * 2f64.powi(sh + 1)).round() <= mmax {
        sh += 1;
    }
    ((m * 2f64.powi(sh)).round() as u16, sh as u8)
}

/// One layer with plain int8 weights: per-output-channel symmetric quantization
/// `w8 = clamp(round(w / s_w[o]), −127, 127)`, `s_w[o] = max|w[o, ·]| / 127`, written in the
/// layer format so that the MAC array sees exactly `w8` (every row its own block whose basis'
/// first row holds the row's three weights, coefficient `+2^0` on it, weight shift 0). A dense
/// accelerator configuration streams these int8 weights; the SmartDeal decomposition is not
/// involved.
#[allow(clippy::too_many_arguments)]
pub fn int8_layer(
    name: &str,
    w: &[f32],
    b: &[f32],
    s_in: f32,
    s_out: &[f32],
    relu: bool,
    conv: Option<ConvShape>,
) -> FcLayer {
    let outs = b.len();
    let ins = w.len() / outs;
    let rows = ins.div_ceil(3);
    let s_in = f64::from(s_in);
    let mut basis = Vec::with_capacity(outs * rows);
    let (mut bias, mut out_mult, mut out_shift) = (vec![], vec![], vec![]);
    for o in 0..outs {
        let wo = &w[o * ins..(o + 1) * ins];
        let wmax = wo.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let s_w = f64::from(scale_of(wmax));
        let q = |j: usize| -> i8 {
            wo.get(j).map_or(0, |&v| {
                (f64::from(v) / s_w).round().clamp(-127.0, 127.0) as i8
            })
        };
        for r in 0..rows {
            basis.push([[q(3 * r), q(3 * r + 1), q(3 * r + 2)], [0; 3], [0; 3]]);
        }
        let unit = s_in * s_w; // the real value of one accumulator step
        let bi = (f64::from(b[o]) / unit).round();
        bias.push(bi.clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32);
        let (m, sh) = out_multiplier(unit / f64::from(s_out[o]));
        out_mult.push(m);
        out_shift.push(sh);
    }
    let one = Coef::Pow2 {
        neg: false,
        code: 0,
    };
    let group_size = 32;
    FcLayer {
        name: name.to_string(),
        inputs: ins as u32,
        outputs: outs as u32,
        rows_per_block: 1,
        group_size,
        exp_bits: 3,
        e_lo: 0,
        relu,
        row_present: vec![vec![true; rows]; outs.div_ceil(group_size as usize)],
        basis,
        coef: (0..outs * rows)
            .flat_map(|_| [one, Coef::Zero, Coef::Zero])
            .collect(),
        wshift: vec![0; outs],
        bias,
        out_mult,
        out_shift,
        conv,
    }
}

/// The dense int8 model of every encoder linear layer: plain per-output-channel int8 weights
/// ([`int8_layer`]) with the same activation scales as the SmartDeal model, for
/// `cfg`'s dense baseline ([`AccelConfig::dense_baseline`]).
pub fn minilm(m: &MiniLm, cal: &Calibration, cfg: &AccelConfig) -> Result<Vec<QLayer>, NetError> {
    let dense_cfg = cfg.dense_baseline();
    m.linear_names()
        .into_iter()
        .map(|name| {
            let w = m.tensor(&format!("{name}.weight"))?;
            let b = m.tensor(&format!("{name}.bias"))?.to_vec1::<f32>()?;
            let w = w.flatten_all()?.to_vec1::<f32>()?;
            let (s_in, s_out) = cal.scales(&name)?;
            let fc = int8_layer(&name, &w, &b, s_in, &s_out, false, None);
            fc.check_fits(&dense_cfg)
                .map_err(|e| NetError::Compress(format!("layer `{name}`: {e}")))?;
            Ok(QLayer { fc, s_in, s_out })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_multiplier_keeps_16_bits() {
        assert_eq!(out_multiplier(0.5), (32768, 16));
        assert_eq!(out_multiplier(1e6), (u16::MAX, 0));
        let (m, sh) = out_multiplier(0.001234);
        assert!(m > 32767 && (f64::from(m) / 2f64.powi(i32::from(sh)) - 0.001234).abs() < 1e-8);
    }

    #[test]
    fn int8_layer_weights_are_the_rounded_per_channel_codes() {
        let w = [0.5f32, -1.0, 0.25, 0.1, 0.2, -0.4];
        let l = int8_layer("t", &w, &[0.0, 0.0], 0.1, &[1.0, 1.0], false, None);
        l.validate().unwrap();
        assert_eq!(l.basis[0][0], [64, -127, 32]); // max 1.0 → 127
        assert_eq!(l.basis[1][0], [32, 64, -127]); // max 0.4 → 127
    }
}
