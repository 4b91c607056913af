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
    /// Exponents are kept in the layer's initial range `[e_min, e_max]`: the integer
    /// conversion keeps one window of `2^E` exponents per layer, and a coefficient trained far
    /// outside the initial range would only fall out of it.
    e_min: f64,
    e_max: f64,
    /// The geometry of the float layer this came from.
    template: FloatLayer,
    shape: Vec<usize>,
}

impl SmartDealParam {
    /// From a float decomposition; `shape` is the graph's weight shape (`[out, in]` or
    /// `[out, cin, 3, 3]`).
    pub fn new(fl: &FloatLayer, bias: &[f32], shape: &[usize]) -> Result<Self, NetError> {
        let (nb, rpb) = (fl.outputs * fl.blocks, fl.rows_per_block);
        let mut e = vec![0f32; nb * rpb * 3];
        let mut sign = vec![0f32; nb * rpb * 3];
        let mut bv = vec![0f32; nb * 9];
        let (mut e_min, mut e_max) = (f64::INFINITY, f64::NEG_INFINITY);
        for (i, fit) in fl.fits.iter().enumerate() {
            for (r, c) in fit.ce.iter().enumerate() {
                for (k, &v) in c.iter().enumerate() {
                    if v != 0.0 {
                        let at = (i * rpb + r) * 3 + k;
                        let p = v.abs().log2();
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
        let dev = Device::Cpu;
        Ok(SmartDealParam {
            e: Var::from_vec(e, (nb, rpb, 3), &dev)?,
            b: Var::from_vec(bv, (nb, 3, 3), &dev)?,
            bias: Var::from_slice(bias, bias.len(), &dev)?,
            sign: Tensor::from_vec(sign, (nb, rpb, 3), &dev)?,
            e_min,
            e_max,
            template: fl.clone(),
            shape: shape.to_vec(),
        })
    }

    /// The coefficients the forward pass uses: `sign · 2^round(clamp(e))`, with the gradient of
    /// `2^e` passed straight through the rounding.
    fn coefficients(&self) -> Result<Tensor, NetError> {
        let e = self.e.as_tensor().clamp(self.e_min, self.e_max)?;
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
            let p = SmartDealParam::new(&fl, &vec![0.0; shape[0]], &shape).unwrap();
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
        let p = SmartDealParam::new(&fl, &[0.0; 3], &[3, 9]).unwrap();
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
