//! The trainable forms of one compressed layer.
//!
//! * [`MaskedDense`]: the float weights with the pruned Ce rows held at zero (the row mask is
//!   fixed; masked entries get no gradient), for the distillation before the decomposition;
//! * [`SmartDealParam`]: `W = Ce · B` per block with `B` float and every present coefficient
//!   `sign · 2^e`; the sign and the zero pattern are fixed, the exponent `e` is trained as a
//!   real number and rounded in the forward pass with a straight-through estimator
//!   (`round(e)` forward, identity backward), so the weights the loss sees are exactly the
//!   SmartDeal weights the `.sdm` will hold (before the integer conversion).

use crate::NetError;
use candle_core::{DType, Device, Tensor, Var};
use smartdeal_decomp::block::BlockFit;
use smartdeal_decomp::integer::{basis_shift, code_window};
use smartdeal_decomp::layer::FloatLayer;

/// A layer's weight tensor as the graph uses it: `[out, in]` or `[out, cin, 3, 3]`.
pub trait Weights {
    fn weight(&self) -> Result<Tensor, NetError>;
    fn bias(&self) -> &Tensor;
    /// The trainable variables: (slow group, fast group). The fast group gets its own learning
    /// rate (the exponents move in steps of 1, the weights in steps of their own size).
    fn vars(&self) -> (Vec<Var>, Vec<Var>);
}

/// A borrowed layer is a layer (the phases own theirs in typed maps and lend them to the graph).
impl<T: Weights + ?Sized> Weights for &T {
    fn weight(&self) -> Result<Tensor, NetError> {
        (**self).weight()
    }
    fn bias(&self) -> &Tensor {
        (**self).bias()
    }
    fn vars(&self) -> (Vec<Var>, Vec<Var>) {
        (**self).vars()
    }
}

/// Float weights under a fixed 0/1 mask.
pub struct MaskedDense {
    w: Var,
    b: Var,
    mask: Tensor,
}

impl MaskedDense {
    /// `w` (C order, `shape`) with the entries where `mask` is 0 zeroed.
    pub fn new(w: &[f32], shape: &[usize], mask: &[f32], bias: &[f32]) -> Result<Self, NetError> {
        let dev = Device::Cpu;
        let mask = Tensor::from_slice(mask, shape, &dev)?;
        let w0 = Tensor::from_slice(w, shape, &dev)?.mul(&mask)?;
        Ok(MaskedDense {
            w: Var::from_tensor(&w0)?,
            b: Var::from_slice(bias, bias.len(), &dev)?,
            mask,
        })
    }

    /// The masked weights, C order.
    pub fn values(&self) -> Result<Vec<f32>, NetError> {
        Ok(self.weight()?.flatten_all()?.to_vec1::<f32>()?)
    }

    pub fn bias_values(&self) -> Result<Vec<f32>, NetError> {
        Ok(self.b.as_tensor().to_vec1::<f32>()?)
    }

    /// The variables under their checkpoint names.
    pub fn named(&self, name: &str) -> Vec<(String, Var)> {
        vec![
            (format!("{name}.weight"), self.w.clone()),
            (format!("{name}.bias"), self.b.clone()),
        ]
    }
}

impl Weights for MaskedDense {
    fn weight(&self) -> Result<Tensor, NetError> {
        // The product (not a where/select) keeps masked entries' gradient exactly zero.
        Ok(self.w.as_tensor().mul(&self.mask)?)
    }
    fn bias(&self) -> &Tensor {
        self.b.as_tensor()
    }
    fn vars(&self) -> (Vec<Var>, Vec<Var>) {
        (vec![self.w.clone(), self.b.clone()], vec![])
    }
}

/// The integer conversion's exponent code (`smartdeal_decomp::integer`): `exp_bits` bits per
/// stored exponent, bases of `basis_bits` bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeWindow {
    pub exp_bits: u8,
    pub basis_bits: u32,
}

/// `W = Ce · B` with trainable `B` and coefficient exponents.
pub struct SmartDealParam {
    /// `[out·blocks, rpb, 3]`: the real-valued exponent of every coefficient (0 where absent).
    e: Var,
    /// `[out·blocks, 3, 3]`.
    b: Var,
    bias: Var,
    /// `[out·blocks, rpb, 3]`: ±1 where a coefficient is present, 0 elsewhere (padding rows of a
    /// short last block included).
    sign: Tensor,
    /// `[out·blocks, 1, 1]`: each block's lowest and highest exponent. With a code window,
    /// the exponents the integer conversion can store for the block (`e_lo − s ..= e_lo + 2^E −
    /// 1 − s`, `s` the block's basis shift); without, the layer's initial range.
    e_lo: Tensor,
    e_hi: Tensor,
    /// The geometry of the float layer this came from.
    template: FloatLayer,
    shape: Vec<usize>,
}

impl SmartDealParam {
    /// From a float decomposition; `shape` is the graph's weight shape (`[out, in]` or
    /// `[out, cin, 3, 3]`). With `window`, every coefficient the integer conversion would drop
    /// (its stored exponent below the layer's window, or its block's basis all zero) is dropped
    /// now, and exponents are kept inside the window, so training sees the weights the `.sdm`
    /// will hold; without, exponents stay in the layer's initial range.
    pub fn new(
        fl: &FloatLayer,
        bias: &[f32],
        shape: &[usize],
        window: Option<CodeWindow>,
    ) -> Result<Self, NetError> {
        let (nb, rpb) = (fl.outputs * fl.blocks, fl.rows_per_block);
        let mut e = vec![0f32; nb * rpb * 3];
        let mut sign = vec![0f32; nb * rpb * 3];
        let mut bv = vec![0f32; nb * 9];
        // Per block: the stored-exponent range, or None (no window: the layer's range below).
        let win = window.map(|w| (w, code_window(fl, w.basis_bits, w.exp_bits)));
        let mut bounds: Vec<Option<(f64, f64)>> = Vec::with_capacity(nb);
        let (mut e_min, mut e_max) = (f64::INFINITY, f64::NEG_INFINITY);
        for (i, fit) in fl.fits.iter().enumerate() {
            let block = win.map(|(w, e_lo)| {
                basis_shift(&fit.b, w.basis_bits).map(|s| {
                    let top = e_lo + (1 << w.exp_bits) - 1;
                    (f64::from(e_lo - s), f64::from(top - s))
                })
            });
            bounds.push(block.flatten());
            for (r, c) in fit.ce.iter().enumerate() {
                for (k, &v) in c.iter().enumerate() {
                    // p is exact: every coefficient is ±2^p.
                    let p = v.abs().log2();
                    let kept = match block {
                        None => v != 0.0,
                        Some(None) => false, // an all-zero basis: the conversion drops the block
                        Some(Some((lo, _))) => v != 0.0 && p >= lo,
                    };
                    if kept {
                        let at = (i * rpb + r) * 3 + k;
                        e[at] = p as f32;
                        sign[at] = v.signum() as f32;
                        e_min = e_min.min(p);
                        e_max = e_max.max(p);
                    }
                }
            }
            for (at, v) in bv[i * 9..][..9].iter_mut().zip(fit.b.iter().flatten()) {
                *at = *v as f32;
            }
        }
        if e_min > e_max {
            (e_min, e_max) = (0.0, 0.0); // an all-zero layer: nothing to train but B
        }
        let lo: Vec<f32> = bounds
            .iter()
            .map(|b| b.map_or(e_min, |b| b.0) as f32)
            .collect();
        let hi: Vec<f32> = bounds
            .iter()
            .map(|b| b.map_or(e_max, |b| b.1) as f32)
            .collect();
        let dev = Device::Cpu;
        Ok(SmartDealParam {
            e: Var::from_vec(e, (nb, rpb, 3), &dev)?,
            b: Var::from_vec(bv, (nb, 3, 3), &dev)?,
            bias: Var::from_slice(bias, bias.len(), &dev)?,
            sign: Tensor::from_vec(sign, (nb, rpb, 3), &dev)?,
            e_lo: Tensor::from_vec(lo, (nb, 1, 1), &dev)?,
            e_hi: Tensor::from_vec(hi, (nb, 1, 1), &dev)?,
            template: fl.clone(),
            shape: shape.to_vec(),
        })
    }

    /// The coefficients the forward pass uses: `sign · 2^round(clamp(e))`, with the gradient of
    /// `2^e` passed straight through the rounding.
    fn coefficients(&self) -> Result<Tensor, NetError> {
        let e = self
            .e
            .as_tensor()
            .broadcast_maximum(&self.e_lo)?
            .broadcast_minimum(&self.e_hi)?;
        let rounded = (&e + (e.round()? - &e)?.detach())?;
        let pow = (rounded * std::f64::consts::LN_2)?.exp()?;
        Ok(pow.mul(&self.sign)?)
    }

    /// The trained decomposition: the template's geometry and original weights, the new `Ce`
    /// (exponents rounded, as the forward pass uses them) and `B`.
    pub fn to_float_layer(&self) -> Result<FloatLayer, NetError> {
        let c = self
            .coefficients()?
            .to_dtype(DType::F64)?
            .to_vec3::<f64>()?;
        let b = self.b.as_tensor().to_dtype(DType::F64)?.to_vec3::<f64>()?;
        let mut fl = self.template.clone();
        for (i, fit) in fl.fits.iter_mut().enumerate() {
            let rows = fit.ce.len();
            *fit = BlockFit {
                ce: c[i][..rows].iter().map(|r| [r[0], r[1], r[2]]).collect(),
                b: [0, 1, 2].map(|k| [b[i][k][0], b[i][k][1], b[i][k][2]]),
                ..fit.clone()
            };
        }
        Ok(fl)
    }

    pub fn bias_values(&self) -> Result<Vec<f32>, NetError> {
        Ok(self.bias.as_tensor().to_vec1::<f32>()?)
    }

    /// The variables under their checkpoint names.
    pub fn named(&self, name: &str) -> Vec<(String, Var)> {
        vec![
            (format!("{name}.exponent"), self.e.clone()),
            (format!("{name}.basis"), self.b.clone()),
            (format!("{name}.bias"), self.bias.clone()),
        ]
    }
}

impl Weights for SmartDealParam {
    fn weight(&self) -> Result<Tensor, NetError> {
        let fl = &self.template;
        // [out·blocks, rpb, 3] × [out·blocks, 3, 3] → the rebuilt rows, then every channel's
        // rows in order; the padding beyond `inputs` (a short last triple) is cut off.
        let rows = self.coefficients()?.matmul(self.b.as_tensor())?;
        let flat = rows.reshape((fl.outputs, fl.blocks * fl.rows_per_block * 3))?;
        Ok(flat
            .narrow(1, 0, fl.inputs)?
            .reshape(self.shape.as_slice())?)
    }
    fn bias(&self) -> &Tensor {
        self.bias.as_tensor()
    }
    fn vars(&self) -> (Vec<Var>, Vec<Var>) {
        (
            vec![self.b.clone(), self.bias.clone()],
            vec![self.e.clone()],
        )
    }
}

/// The 0/1 mask (C order, `[out, in]` or `[out, cin, 3, 3]`) of the rows that survive
/// `pruned(o, r)`: row `r` of channel `o` covers inputs `3r .. 3r + 2` (the decomposition's
/// rows, `smartdeal_decomp::layer`).
pub fn row_mask(outputs: usize, inputs: usize, pruned: impl Fn(usize, usize) -> bool) -> Vec<f32> {
    let mut m = vec![1f32; outputs * inputs];
    for o in 0..outputs {
        for i in 0..inputs {
            if pruned(o, i / 3) {
                m[o * inputs + i] = 0.0;
            }
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use smartdeal_decomp::block::Options;
    use smartdeal_decomp::layer::{decompose_tensor, LayerOptions};

    fn layer(shape: &[usize]) -> (FloatLayer, Vec<f32>) {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 70.0)
            .collect();
        let lo = LayerOptions {
            block: Options::default(),
            group_size: 2,
            prune_ratio: 0.0,
        };
        (
            decompose_tensor("t", shape, &data, &lo, &|_| {}).unwrap(),
            data,
        )
    }

    /// `Ce · B` from the float layer itself, C order.
    fn reconstructed(fl: &FloatLayer) -> Vec<f32> {
        let mut out = Vec::new();
        for o in 0..fl.outputs {
            let mut row: Vec<f32> = (0..fl.rows)
                .flat_map(|r| fl.reconstruct_row(o, r).map(|v| v as f32))
                .collect();
            row.truncate(fl.inputs);
            out.extend(row);
        }
        out
    }

    #[test]
    fn the_parametrized_weight_is_the_decomposition_and_round_trips() {
        // 7 inputs: a short last triple; conv: blocks of several rows.
        for shape in [vec![5usize, 7], vec![4, 6, 3, 3]] {
            let (fl, _) = layer(&shape);
            let p = SmartDealParam::new(&fl, &vec![0.0; shape[0]], &shape, None).unwrap();
            let w = p.weight().unwrap();
            assert_eq!(w.dims(), shape.as_slice());
            let got = w.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            for (a, b) in got.iter().zip(reconstructed(&fl)) {
                assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{a} vs {b}");
            }
            let back = p.to_float_layer().unwrap();
            for (x, y) in back.fits.iter().zip(&fl.fits) {
                assert_eq!(x.ce, y.ce, "coefficients are powers of two: exact");
                for k in 0..3 {
                    for j in 0..3 {
                        assert!((x.b[k][j] - y.b[k][j]).abs() < 1e-6);
                    }
                }
            }
        }
    }

    #[test]
    fn exponent_gradients_pass_the_rounding_and_skip_absent_coefficients() {
        let (fl, _) = layer(&[3, 9]);
        let p = SmartDealParam::new(&fl, &[0.0; 3], &[3, 9], None).unwrap();
        let loss = p.weight().unwrap().sqr().unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        let ge = grads.get(&p.e).unwrap().flatten_all().unwrap();
        let ge = ge.to_vec1::<f32>().unwrap();
        let sign = p.sign.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        // Straight through: every present coefficient inside the clamp range gets a gradient
        // (‖W‖² falls when any |coefficient| shrinks unless B cancels it exactly); absent ones
        // get none.
        for (g, s) in ge.iter().zip(&sign) {
            if *s == 0.0 {
                assert_eq!(*g, 0.0);
            }
        }
        assert!(ge.iter().any(|g| *g != 0.0));
    }

    #[test]
    fn with_a_code_window_training_sees_the_stored_weights() {
        // A 2-bit code keeps 4 exponents per layer: the coefficients the conversion drops are
        // dropped at the start, so the parametrized weight is the integer layer's (in float).
        use smartdeal_decomp::integer::{to_int_layer, IntOptions};
        let (fl, _) = layer(&[6, 30]);
        let w = CodeWindow {
            exp_bits: 2,
            basis_bits: 8,
        };
        let p = SmartDealParam::new(&fl, &[0.0; 6], &[6, 30], Some(w)).unwrap();
        let back = p.to_float_layer().unwrap();
        let count = |f: &FloatLayer| {
            f.fits
                .iter()
                .flat_map(|b| b.ce.iter().flatten())
                .filter(|v| **v != 0.0)
                .count()
        };
        let io = IntOptions {
            exp_bits: 2,
            basis_bits: 8,
            weight_requant: smartdeal_core::WeightRequant::Exact,
            group_size: 2,
            act_scale: 1.0,
            out_scale: None,
            out_scales: None,
            relu: false,
        };
        let (_, before) = to_int_layer(&fl, None, &io).unwrap();
        let (_, after) = to_int_layer(&back, None, &io).unwrap();
        assert!(
            before.exp_underflow > 0,
            "the test needs a layer wider than 4 exponents"
        );
        assert_eq!(count(&fl) - count(&back), before.exp_underflow as usize);
        assert_eq!((after.exp_underflow, after.exp_overflow), (0, 0));
    }

    #[test]
    fn masked_entries_stay_zero_and_get_no_gradient() {
        let mask = row_mask(2, 7, |o, r| o == 1 && r == 1);
        assert_eq!(&mask[7..], &[1., 1., 1., 0., 0., 0., 1.]);
        let w: Vec<f32> = (0..14).map(|i| i as f32 + 1.0).collect();
        let d = MaskedDense::new(&w, &[2, 7], &mask, &[0.0, 0.0]).unwrap();
        let loss = d.weight().unwrap().sum_all().unwrap();
        let g = loss.backward().unwrap();
        let gw = g.get(&d.w).unwrap().flatten_all().unwrap();
        assert_eq!(gw.to_vec1::<f32>().unwrap(), mask);
        assert_eq!(d.values().unwrap()[10], 0.0);
    }
}
