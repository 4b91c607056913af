//! Conversion of a float decomposition to the accelerator's integer layer
//! (`smartdeal_core::FcLayer`, arithmetic in `docs/numerics.md`); the rules are written down in
//! `docs/decomposition.md` §4.
//!
//! 1. **B → int8**, per block: `B = Bq · 2^s` with `s` the smallest integer for which
//!    `max|B| / 2^s ≤ 2^(BB−1) − 1`; `Bq = round(B / 2^s)` (half away from zero). The scale is
//!    folded into the block's exponents: `Ce·B = (Ce · 2^s) · Bq`.
//! 2. **Exponent window**, per layer: a nonzero element becomes `±2^e`, `e = p + s`. The layer's
//!    `E`-bit codes cover `e_lo ..= e_lo + 2^E − 1`; `e_lo` minimizes the squared weight error of
//!    the elements that fall outside (below: zeroed, the nearest representable value in the linear
//!    domain with ties to zero; above: clipped to the top code). Both are counted.
//! 3. **Weight requant** (int8 mode), per output channel: the smallest shift `ws` for which the
//!    rebuilt integer weights round (half up) into int8 without saturating.
//! 4. **Output requant** from the activation scales: the real weight is
//!    `2^(e_lo + ws) · w8` (`2^e_lo · w_int` in exact mode), so `y/s_y = m · acc` with
//!    `m = s_x · 2^(e_lo + ws) / s_y`, encoded as `M / 2^sh` (`M` ≤ 16 bits, `sh` ≤ 31, as many
//!    bits of `m` as fit); `bias_int = round(b / (s_x · 2^(e_lo + ws)))`.

// Index loops over 3×3 matrices read like the formulas they implement.
#![allow(clippy::needless_range_loop)]

use crate::layer::FloatLayer;
use crate::linalg::M3;
use crate::pow2::{exponent_of, ldexp};
use serde::Serialize;
use smartdeal_core::params::{OUT_MULT_BITS, OUT_SHIFT_BITS};
use smartdeal_core::{Coef, FcLayer, WeightRequant};

/// What the integer conversion needs besides the float decomposition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntOptions {
    /// Exponent-code bits `E` (2..=4).
    pub exp_bits: u8,
    /// Basis bits `BB` (4..=8).
    pub basis_bits: u32,
    pub weight_requant: WeightRequant,
    /// Output channels per present-row bitmap.
    pub group_size: u32,
    /// Real value of one input activation step (`x = s_x · x_int`).
    pub act_scale: f64,
    /// Real value of one output step; `None`: `act_scale · max_o ‖W_o‖₂` (see
    /// `docs/decomposition.md` §4).
    pub out_scale: Option<f64>,
    /// Per-output-channel real values of one output step; when set, they replace
    /// [`IntOptions::out_scale`] (the output requant is per channel anyway, and a network whose
    /// outputs have a few outlier channels, as MiniLM's FFN outputs do, keeps the resolution of
    /// the others).
    pub out_scales: Option<Vec<f64>>,
    pub relu: bool,
}

/// What the integer conversion did, for the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntStats {
    pub e_lo: i8,
    /// Nonzero coefficients whose exponent fell below the window (zeroed).
    pub exp_underflow: u64,
    /// Nonzero coefficients whose exponent fell above the window (clipped to the top code).
    pub exp_overflow: u64,
    /// Blocks whose basis was all zero (their coefficients were dropped).
    pub zero_bases: u64,
    /// `‖W − W_hw‖ / ‖W‖` for the real weights the integer datapath represents.
    pub int_rel_error: f64,
    pub act_scale: f64,
    /// The output scale; with per-channel scales, the largest.
    pub out_scale: f64,
    /// Channels whose output multiplier had to saturate at 65535 (m too large).
    pub mult_saturated: u64,
    /// Channels whose output multiplier rounds to 0 even at shift 31 (m too small).
    pub mult_zero: u64,
    /// Channels whose bias did not fit 32 bits (saturated).
    pub bias_saturated: u64,
    pub weight_shift_min: u8,
    pub weight_shift_max: u8,
}

/// Converts a float decomposition to an integer layer (`conv: None`; the caller sets a
/// convolution's geometry).
pub fn to_int_layer(
    fl: &FloatLayer,
    bias: Option<&[f32]>,
    o: &IntOptions,
) -> Result<(FcLayer, IntStats), String> {
    check_options(fl, o)?;
    let (outs, rows) = (fl.outputs, fl.rows);

    // 1. B → int, per block, and the exponent shift s folded into the coefficients.
    let bases = int_bases(fl, o.basis_bits);

    // 2. The exponent window, then the E-bit codes and the present rows.
    let cm = (1i32 << o.exp_bits) - 1; // largest code
    let e_lo = exponent_window(fl, &bases.shift, cm);
    let e_lo_i8 = i8::try_from(e_lo).map_err(|_| {
        format!("weights need a coefficient exponent base 2^{e_lo}, outside the file's −128..=127")
    })?;
    let codes = exponent_codes(fl, &bases.shift, e_lo, cm);
    let gs = o.group_size.max(1) as usize;
    let row_present = present_rows(&codes.coef, outs, rows, gs);

    // 3. Rebuilt weights and the per-channel weight shift.
    let shifts = weight_shifts(fl, &bases.basis, &codes.coef, o, cm, e_lo);

    // 4. Output requantization.
    let out_scale = o.out_scale.unwrap_or(o.act_scale * shifts.w_norm_max);
    let out_scale = if out_scale > 0.0 && out_scale.is_finite() {
        out_scale
    } else {
        o.act_scale // an all-zero layer: any scale will do
    };
    let scales = match &o.out_scales {
        Some(v) => v.clone(),
        None => vec![out_scale; outs],
    };
    let out_scale = match &o.out_scales {
        Some(v) => v.iter().copied().fold(0.0, f64::max),
        None => out_scale,
    };
    let out = output_requant(o, &scales, e_lo, &shifts.wshift, bias);

    let layer = FcLayer {
        name: fl.name.clone(),
        inputs: fl.inputs as u32,
        outputs: outs as u32,
        rows_per_block: fl.rows_per_block as u32,
        group_size: gs as u32,
        exp_bits: o.exp_bits,
        e_lo: e_lo_i8,
        relu: o.relu,
        row_present,
        basis: bases.basis,
        coef: codes.coef,
        wshift: shifts.wshift.clone(),
        bias: out.bias_int,
        out_mult: out.out_mult,
        out_shift: out.out_shift,
        conv: None,
    };
    // Consistent by construction; the pipeline validates the whole model once.
    debug_assert_eq!(layer.validate(), Ok(()));
    let wshift = &shifts.wshift;
    let stats = IntStats {
        e_lo: e_lo_i8,
        exp_underflow: codes.under,
        exp_overflow: codes.over,
        zero_bases: bases.zero_bases,
        int_rel_error: if shifts.int_den == 0.0 {
            0.0
        } else {
            (shifts.int_num / shifts.int_den).sqrt()
        },
        act_scale: o.act_scale,
        out_scale,
        mult_saturated: out.msat,
        mult_zero: out.mzero,
        bias_saturated: out.bsat,
        weight_shift_min: wshift.iter().copied().min().unwrap_or(0),
        weight_shift_max: wshift.iter().copied().max().unwrap_or(0),
    };
    Ok((layer, stats))
}

/// The conversion's preconditions: `E` in 2..=4, `BB` in 4..=8, and a positive activation scale.
/// Any kind of layer converts: a 3×3 kernel's rows `ci·3 + kh` (taps `kw`) are exactly the rows
/// `r` (inputs `3r..3r+2`) of an `[out, cin·9]` matrix, the `FcLayer` layout of a convolution.
fn check_options(fl: &FloatLayer, o: &IntOptions) -> Result<(), String> {
    if !(2..=4).contains(&o.exp_bits) || !(4..=8).contains(&o.basis_bits) {
        return Err(format!(
            "exp_bits {} / basis_bits {} outside 2..=4 / 4..=8",
            o.exp_bits, o.basis_bits
        ));
    }
    if !(o.act_scale.is_finite() && o.act_scale > 0.0) {
        return Err(format!(
            "activation scale {} is not a positive number",
            o.act_scale
        ));
    }
    if let Some(v) = &o.out_scales {
        if o.out_scale.is_some() {
            return Err("out_scale and out_scales are both set: give one".into());
        }
        if v.len() != fl.outputs {
            return Err(format!(
                "{} output scales for {} output channels",
                v.len(),
                fl.outputs
            ));
        }
        if let Some(bad) = v.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(format!("output scale {bad} is not a positive number"));
        }
    }
    Ok(())
}

/// Step 1: every block's basis as `BB`-bit integers (stored in `i8`, `BB` ≤ 8).
struct IntBases {
    /// `Bq`, per block `[o · blocks + b]`.
    basis: Vec<[[i8; 3]; 3]>,
    /// The block's scale exponent `s` (`B = Bq · 2^s`); `None` for an all-zero (or non-finite)
    /// basis, whose coefficients are dropped.
    shift: Vec<Option<i32>>,
    /// Blocks whose basis was all zero.
    zero_bases: u64,
}

/// The exponent `s` of a block's basis step: the smallest integer for which
/// `max|B| / 2^s ≤ 2^(BB−1) − 1`; `None` for an all-zero (or non-finite) basis. A coefficient
/// `±2^p` of the block is stored with exponent `p + s` (the fine-tuner keeps `p + s` inside the
/// layer's code window with it).
pub fn basis_shift(b: &M3, basis_bits: u32) -> Option<i32> {
    let bmax = f64::from((1u32 << (basis_bits - 1)) - 1);
    let maxabs = b.iter().flatten().fold(0.0f64, |m, v| m.max(v.abs()));
    if maxabs == 0.0 || !maxabs.is_finite() {
        return None;
    }
    let mut s = (maxabs / bmax).log2().ceil() as i32;
    // Guard the log2 rounding: s is the smallest integer with maxabs ≤ bmax · 2^s.
    while maxabs > bmax * ldexp(1.0, s) {
        s += 1;
    }
    while maxabs <= bmax * ldexp(1.0, s - 1) {
        s -= 1;
    }
    Some(s)
}

/// The lowest exponent `e_lo` of the window of `2^exp_bits` stored exponents
/// `e_lo ..= e_lo + 2^exp_bits − 1` that [`to_int_layer`] keeps for `fl` (coefficient `±2^p` of
/// a block with basis shift `s`, [`basis_shift`], is stored as `p + s`; below the window it is
/// dropped, above it clipped).
pub fn code_window(fl: &FloatLayer, basis_bits: u32, exp_bits: u8) -> i32 {
    let bases = int_bases(fl, basis_bits);
    exponent_window(fl, &bases.shift, (1i32 << exp_bits) - 1)
}

/// Step 1: `B` (f64) → `Bq` of `BB` bits, `Bq = round(B / 2^s)` with `s` the smallest integer
/// for which `max|B| / 2^s ≤ 2^(BB−1) − 1`.
fn int_bases(fl: &FloatLayer, basis_bits: u32) -> IntBases {
    let mut zero_bases = 0u64;
    let mut basis = Vec::with_capacity(fl.fits.len());
    let mut shift = Vec::with_capacity(fl.fits.len());
    for fit in &fl.fits {
        let Some(s) = basis_shift(&fit.b, basis_bits) else {
            zero_bases += u64::from(fit.b.iter().flatten().all(|v| *v == 0.0));
            basis.push([[0i8; 3]; 3]);
            shift.push(None);
            continue;
        };
        let mut bq = [[0i8; 3]; 3];
        for k in 0..3 {
            for j in 0..3 {
                // |B / 2^s| ≤ bmax, so the rounded value fits BB bits.
                bq[k][j] = (fit.b[k][j] / ldexp(1.0, s)).round() as i8;
            }
        }
        basis.push(bq);
        shift.push(Some(s));
    }
    IntBases {
        basis,
        shift,
        zero_bases,
    }
}

/// Step 2: the window base `e_lo` whose `cm + 1` exponents lose the least squared weight, from
/// each nonzero coefficient's exponent `e = p + s`.
fn exponent_window(fl: &FloatLayer, shift: &[Option<i32>], cm: i32) -> i32 {
    // The squared weight error per exponent if the element is lost.
    // Exponents of finite doubles and the folded block shifts stay far inside ±4096.
    const OFF: i32 = 4096;
    let mut loss = vec![0.0f64; 2 * OFF as usize];
    let (mut lo, mut hi) = (i32::MAX, i32::MIN);
    for (fit, s) in fl.fits.iter().zip(shift) {
        let Some(s) = s else { continue };
        let brow: [f64; 3] = std::array::from_fn(|k| fit.b[k].iter().map(|v| v * v).sum());
        for c in &fit.ce {
            for k in 0..3 {
                if c[k] != 0.0 {
                    let e = (exponent_of(c[k]) + s).clamp(1 - OFF, OFF - 1);
                    loss[(e + OFF) as usize] += c[k] * c[k] * brow[k];
                    lo = lo.min(e);
                    hi = hi.max(e);
                }
            }
        }
    }
    if lo > hi {
        return 0; // no nonzero coefficient at all
    }
    let cost = |e_lo: i32| -> f64 {
        (lo..=hi)
            .map(|e| {
                let l = loss[(e + OFF) as usize];
                if e < e_lo {
                    l
                } else if e > e_lo + cm {
                    l * (1.0 - ldexp(1.0, e_lo + cm - e)).powi(2)
                } else {
                    0.0
                }
            })
            .sum()
    };
    // Candidates from "everything fits from the bottom" to "the top fits"; among equal
    // costs the highest base wins (smaller rebuilt integers, smaller weight shifts).
    let mut best = (f64::INFINITY, lo);
    for cand in lo.min(hi - cm)..=lo.max(hi - cm) {
        let c = cost(cand);
        if c <= best.0 {
            best = (c, cand);
        }
    }
    best.1
}

/// Step 2's codes: each coefficient as a sign and an `E`-bit code `e − e_lo`, with the counts of
/// those below the window (zeroed) and above it (clipped to the top code).
struct Codes {
    /// `[(o · rows + r) · 3 + k]`.
    coef: Vec<Coef>,
    under: u64,
    over: u64,
}

/// Step 2: the coefficients' exponents `e = p + s` (unbounded `i32`) → `E`-bit codes
/// `0..=cm` relative to `e_lo`.
fn exponent_codes(fl: &FloatLayer, shift: &[Option<i32>], e_lo: i32, cm: i32) -> Codes {
    let (outs, rows, blocks) = (fl.outputs, fl.rows, fl.blocks);
    let mut coef = vec![Coef::Zero; outs * rows * 3];
    let (mut under, mut over) = (0u64, 0u64);
    for ch in 0..outs {
        for r in 0..rows {
            let bi = ch * blocks + r / fl.rows_per_block;
            let Some(s) = shift[bi] else { continue };
            let c = &fl.fits[bi].ce[r % fl.rows_per_block];
            for k in 0..3 {
                if c[k] == 0.0 {
                    continue;
                }
                let e = exponent_of(c[k]) + s;
                let code = if e < e_lo {
                    under += 1;
                    continue;
                } else if e > e_lo + cm {
                    over += 1;
                    cm
                } else {
                    e - e_lo
                };
                coef[(ch * rows + r) * 3 + k] = Coef::Pow2 {
                    neg: c[k] < 0.0,
                    code: code as u8,
                };
            }
        }
    }
    Codes { coef, under, over }
}

/// Present rows per group: a row is present in a group of `gs` channels if any of them has a
/// nonzero coefficient in it.
fn present_rows(coef: &[Coef], outs: usize, rows: usize, gs: usize) -> Vec<Vec<bool>> {
    let groups = outs.div_ceil(gs);
    let mut row_present = vec![vec![false; rows]; groups];
    for ch in 0..outs {
        for r in 0..rows {
            if coef[(ch * rows + r) * 3..][..3]
                .iter()
                .any(|c| *c != Coef::Zero)
            {
                row_present[ch / gs][r] = true;
            }
        }
    }
    row_present
}

/// Step 3's result.
struct WeightShifts {
    /// Per channel, the shift `ws` of the rebuilt weights (0 in exact mode).
    wshift: Vec<u8>,
    /// `Σ (W − W_hw)²` and `Σ W²` over the real (unpadded) weights.
    int_num: f64,
    int_den: f64,
    /// `max_o ‖W_o‖₂`, for the default output scale.
    w_norm_max: f64,
}

/// Step 3: per channel, the integer weights `Σ_k ±Bq[k][j] · 2^code` (`BB + cm + 2` bits, in
/// `i64`) and, in int8 mode, the smallest shift `ws` that rounds them (half up) into 8 bits
/// without saturating; with the weight error of the result.
fn weight_shifts(
    fl: &FloatLayer,
    basis: &[[[i8; 3]; 3]],
    coef: &[Coef],
    o: &IntOptions,
    cm: i32,
    e_lo: i32,
) -> WeightShifts {
    let (outs, rows, blocks) = (fl.outputs, fl.rows, fl.blocks);
    let rb = o.basis_bits + cm as u32 + 2; // rebuilt-weight bits
    let ws_max = rb - 8;
    let rebuild = |ch: usize, r: usize| -> [i64; 3] {
        let b = &basis[ch * blocks + r / fl.rows_per_block];
        let mut w = [0i64; 3];
        for k in 0..3 {
            if let Coef::Pow2 { neg, code } = coef[(ch * rows + r) * 3 + k] {
                for j in 0..3 {
                    let t = i64::from(b[k][j]) << code;
                    w[j] += if neg { -t } else { t };
                }
            }
        }
        w
    };
    let requant = |w: i64, ws: u32| -> i64 {
        if ws == 0 {
            w
        } else {
            (w + (1 << (ws - 1))) >> ws
        }
    };
    let real_inputs = fl.inputs;
    let mut wshift = vec![0u8; outs];
    let mut int_num = 0.0;
    let mut int_den = 0.0;
    let mut w_norm_max = 0.0f64;
    for ch in 0..outs {
        let ws_row: Vec<[i64; 3]> = (0..rows).map(|r| rebuild(ch, r)).collect();
        // Padding weights are free.
        let real = |r: usize, j: usize| 3 * r + j < real_inputs;
        // requant(·, ws) is monotone in w, so the extremes decide whether ws saturates.
        let (lo, hi) = ws_row
            .iter()
            .enumerate()
            .flat_map(|(r, w)| (0..3).filter(move |&j| real(r, j)).map(move |j| w[j]))
            .fold((0i64, 0i64), |(lo, hi), w| (lo.min(w), hi.max(w)));
        let ws = match o.weight_requant {
            WeightRequant::Exact => 0,
            WeightRequant::Int8 => (0..=ws_max)
                .find(|&ws| requant(lo, ws) >= -128 && requant(hi, ws) <= 127)
                .unwrap_or(ws_max),
        };
        wshift[ch] = ws as u8;
        let unit = ldexp(1.0, e_lo + ws as i32);
        let mut norm = 0.0;
        for (r, w) in ws_row.iter().enumerate() {
            let orig = &fl.w[ch * rows + r];
            for j in 0..3 {
                if !real(r, j) {
                    continue;
                }
                let mac = match o.weight_requant {
                    WeightRequant::Exact => w[j],
                    WeightRequant::Int8 => requant(w[j], ws).clamp(-128, 127),
                };
                int_num += (orig[j] - unit * mac as f64).powi(2);
                int_den += orig[j].powi(2);
                norm += orig[j].powi(2);
            }
        }
        w_norm_max = w_norm_max.max(norm.sqrt());
    }
    WeightShifts {
        wshift,
        int_num,
        int_den,
        w_norm_max,
    }
}

/// Step 4's result: the per-channel output parameters and how many had to saturate.
struct OutRequant {
    out_mult: Vec<u16>,
    out_shift: Vec<u8>,
    bias_int: Vec<i32>,
    /// Multipliers saturated at `2^16 − 1`, multipliers 0, biases saturated to 32 bits.
    msat: u64,
    mzero: u64,
    bsat: u64,
}

/// Step 4: per channel, the real multiplier `m = s_x · 2^(e_lo + ws) / s_y` (f64) → `M / 2^sh`
/// with `M` of `OUT_MULT_BITS` (16) bits and `sh` of `OUT_SHIFT_BITS` (5, so ≤ 31), and the
/// bias (f32) in accumulator units → 32 bits, saturating.
fn output_requant(
    o: &IntOptions,
    out_scales: &[f64],
    e_lo: i32,
    wshift: &[u8],
    bias: Option<&[f32]>,
) -> OutRequant {
    let outs = wshift.len();
    let mmax = (1u64 << OUT_MULT_BITS) - 1;
    let shmax = (1u32 << OUT_SHIFT_BITS) - 1;
    let (mut msat, mut mzero, mut bsat) = (0u64, 0u64, 0u64);
    let mut out_mult = vec![0u16; outs];
    let mut out_shift = vec![0u8; outs];
    let mut bias_int = vec![0i32; outs];
    for ch in 0..outs {
        let unit = o.act_scale * ldexp(1.0, e_lo + i32::from(wshift[ch])); // real value of acc = 1
        let m = unit / out_scales[ch];
        let (mult, sh) = if m.round() > mmax as f64 {
            msat += 1;
            (mmax, 0)
        } else {
            // The largest shift that keeps round(m · 2^sh) within 16 bits.
            let mut sh = 0;
            while sh < shmax && (m * ldexp(1.0, sh as i32 + 1)).round() <= mmax as f64 {
                sh += 1;
            }
            (((m * ldexp(1.0, sh as i32)).round()) as u64, sh)
        };
        if mult == 0 {
            mzero += 1;
        }
        out_mult[ch] = mult as u16;
        out_shift[ch] = sh as u8;
        let b = bias.map_or(0.0, |b| f64::from(b[ch])) / unit;
        let br = b.round();
        if br > f64::from(i32::MAX) || br < f64::from(i32::MIN) {
            bsat += 1;
        }
        bias_int[ch] = br.clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32;
    }
    OutRequant {
        out_mult,
        out_shift,
        bias_int,
        msat,
        mzero,
        bsat,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::BlockFit;
    use crate::layer::LayerKind;

    fn one_block_layer(ce: Vec<[f64; 3]>, b: [[f64; 3]; 3], inputs: usize) -> FloatLayer {
        let rows = ce.len();
        let fit = BlockFit {
            ce,
            b,
            iterations: 1,
            threshold: 0.0,
        };
        let w: Vec<[f64; 3]> = (0..rows)
            .map(|r| {
                let c = &fit.ce[r];
                let mut w = [0.0; 3];
                for (j, wj) in w.iter_mut().enumerate() {
                    *wj = (0..3).map(|k| c[k] * fit.b[k][j]).sum();
                }
                w
            })
            .collect();
        FloatLayer {
            name: "l".into(),
            kind: LayerKind::FullyConnected,
            outputs: 1,
            inputs,
            rows,
            rows_per_block: rows,
            blocks: 1,
            w,
            fits: vec![fit],
            pruned_rows: 0,
        }
    }

    fn opts(exp_bits: u8) -> IntOptions {
        IntOptions {
            exp_bits,
            basis_bits: 8,
            weight_requant: WeightRequant::Int8,
            group_size: 1,
            act_scale: 0.5,
            out_scale: Some(0.25),
            out_scales: None,
            relu: false,
        }
    }

    /// Worked by hand in docs/decomposition.md §4 (same numbers).
    #[test]
    fn hand_checked_conversion() {
        let fl = one_block_layer(
            vec![[1.0, 0.0, 0.0], [0.5, 0.0, -0.25]],
            [[10.0, 20.0, -30.0], [0.0, 0.0, 0.0], [1.0, 2.0, 3.0]],
            6,
        );
        let (l, st) = to_int_layer(&fl, Some(&[1.0]), &opts(2)).unwrap();
        // max|B| = 30 → s = −2 (30·4 = 120 ≤ 127; 30·8 = 240 is not).
        assert_eq!(l.basis[0], [[40, 80, -120], [0, 0, 0], [4, 8, 12]]);
        // Exponents −2, −3, −4 → e_lo = −4 (the highest base with no loss), codes 2, 1, 0.
        assert_eq!(l.e_lo, -4);
        assert_eq!(
            l.coef,
            vec![
                Coef::Pow2 {
                    neg: false,
                    code: 2
                },
                Coef::Zero,
                Coef::Zero,
                Coef::Pow2 {
                    neg: false,
                    code: 1
                },
                Coef::Zero,
                Coef::Pow2 { neg: true, code: 0 },
            ]
        );
        // w_int: [160, 320, −480] and [76, 152, −252]; int8 needs ws = 2 (−480/2 = −240).
        assert_eq!(l.wshift, vec![2]);
        // m = 0.5 · 2^(−4+2) / 0.25 = 0.5 → M / 2^16 with M = 32768 (2^17 · 0.5 = 65536 > 65535).
        assert_eq!((l.out_mult[0], l.out_shift[0]), (32768, 16));
        assert_eq!(l.bias, vec![8]); // 1.0 / (0.5 · 2^−2)
        assert_eq!(st.int_rel_error, 0.0); // w8 = [40, 80, −120], [19, 38, −63] · 2^−2: exact
        assert_eq!((st.exp_underflow, st.exp_overflow), (0, 0));
        assert_eq!(l.row_present, vec![vec![true, true]]);
    }

    #[test]
    fn exponents_outside_the_window_are_zeroed_or_clipped_and_counted() {
        // Exponents 0 (value 1), −1, −6 with 2-bit codes (4 exponents): the window that loses
        // least keeps the large ones; the 2^−6 element underflows.
        let fl = one_block_layer(
            vec![[1.0, 0.0, 0.0], [0.5, 0.0, 0.0], [0.015625, 0.0, 0.0]],
            [[100.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]],
            9,
        );
        let (l, st) = to_int_layer(&fl, None, &opts(2)).unwrap();
        assert_eq!(st.exp_underflow, 1);
        assert_eq!(st.exp_overflow, 0);
        assert_eq!(l.coef[6], Coef::Zero);
        assert_eq!(l.row_present[0], vec![true, true, false]);
        assert!(st.int_rel_error > 0.0 && st.int_rel_error < 0.02);
        // With 4-bit codes (16 exponents) everything fits.
        let (_, st4) = to_int_layer(&fl, None, &opts(4)).unwrap();
        assert_eq!(st4.exp_underflow + st4.exp_overflow, 0);
    }

    #[test]
    fn an_all_zero_basis_drops_its_coefficients() {
        let fl = one_block_layer(vec![[1.0, 0.5, 0.0]], [[0.0; 3]; 3], 3);
        let (l, st) = to_int_layer(&fl, None, &opts(3)).unwrap();
        assert_eq!(st.zero_bases, 1);
        assert!(l.coef.iter().all(|c| *c == Coef::Zero));
        assert_eq!(l.row_present, vec![vec![false]]);
    }

    #[test]
    fn exact_mode_keeps_the_rebuilt_weights() {
        let fl = one_block_layer(
            vec![[1.0, 0.0, 0.0], [0.5, 0.0, -0.25]],
            [[10.0, 20.0, -30.0], [0.0, 0.0, 0.0], [1.0, 2.0, 3.0]],
            6,
        );
        let o = IntOptions {
            weight_requant: WeightRequant::Exact,
            ..opts(2)
        };
        let (l, st) = to_int_layer(&fl, None, &o).unwrap();
        assert_eq!(l.wshift, vec![0]);
        assert_eq!(st.int_rel_error, 0.0);
        // m = 0.5 · 2^−4 / 0.25 = 0.125 → 0.125 · 2^19 = 65536 > 65535, so sh = 18, M = 32768.
        assert_eq!((l.out_mult[0], l.out_shift[0]), (32768, 18));
    }

    /// Per-channel output scales replace the per-tensor one channel by channel: the same
    /// channel scale gives the same requant as the per-tensor scale, twice the scale half the
    /// multiplier; bad per-channel scales are errors.
    #[test]
    fn per_channel_output_scales() {
        let fl = one_block_layer(
            vec![[1.0, 0.0, 0.0], [0.5, 0.0, -0.25]],
            [[10.0, 20.0, -30.0], [0.0, 0.0, 0.0], [1.0, 2.0, 3.0]],
            6,
        );
        let (base, _) = to_int_layer(&fl, None, &opts(2)).unwrap();
        let per = |v: Vec<f64>| IntOptions {
            out_scale: None,
            out_scales: Some(v),
            ..opts(2)
        };
        let (same, st) = to_int_layer(&fl, None, &per(vec![0.25])).unwrap();
        assert_eq!(
            (same.out_mult, same.out_shift),
            (base.out_mult.clone(), base.out_shift.clone())
        );
        assert_eq!(st.out_scale, 0.25);
        let (half, _) = to_int_layer(&fl, None, &per(vec![0.5])).unwrap();
        let real = |l: &FcLayer| f64::from(l.out_mult[0]) / f64::from(1u32 << l.out_shift[0]);
        assert!((real(&half) * 2.0 - real(&base)).abs() < 1e-9 * real(&base));
        for (v, want) in [
            (vec![0.25, 0.25], "2 output scales for 1"),
            (vec![0.0], "not a positive number"),
            (vec![f64::NAN], "not a positive number"),
        ] {
            let e = to_int_layer(&fl, None, &per(v)).unwrap_err();
            assert!(e.contains(want), "{e}");
        }
        let both = IntOptions {
            out_scales: Some(vec![0.25]),
            ..opts(2)
        };
        assert!(to_int_layer(&fl, None, &both)
            .unwrap_err()
            .contains("both set"));
    }
}
