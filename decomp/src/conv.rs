//! What a weights file does not say about a convolution: how its kernel slides (stride,
//! padding) and whether it is grouped, per tensor, and which 4-D weights become `.sdm`
//! convolution layers (`docs/decomposition.md` §1).

use crate::batchnorm::Folded;
use crate::layer::LayerKind;
use crate::weights::Tensor;
use smartdeal_core::ConvShape;
use std::collections::BTreeMap;

/// Per-tensor convolution settings, keyed by tensor name. Absent entries take the defaults:
/// stride 1, padding 1 for 3×3 and 0 for 1×1 ("same" output size at stride 1), one group.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConvSettings {
    pub stride: BTreeMap<String, u8>,
    pub padding: BTreeMap<String, u8>,
    /// Declared group counts. Without one, a `[C, 1, 3, 3]` kernel (`C > 1`) is taken to be
    /// depthwise.
    pub groups: BTreeMap<String, u32>,
    /// The batch norms folded into the weights (reported; folding happens before the job, see
    /// [`crate::batchnorm::fold_batch_norms`]).
    pub batch_norms: BTreeMap<String, Folded>,
}

/// Why a tensor of this shape (with `groups` declared, if any) cannot become a layer: kernels
/// other than 1×1 and 3×3, grouped convolutions, and `[C, 1, 3, 3]` kernels with `C > 1` unless
/// declared ungrouped (they are what a depthwise 3×3 convolution stores).
pub fn unsupported(shape: &[usize], groups: Option<u32>) -> Option<String> {
    if let Err(why) = LayerKind::of_shape(shape) {
        return Some(why);
    }
    let &[cout, cin, k, _] = shape else {
        return groups
            .filter(|&g| g != 1)
            .map(|_| "--groups applies to convolutions only".into());
    };
    match groups {
        Some(1) => None,
        Some(g) => Some(format!(
            "a grouped convolution (groups = {g}) is not supported (only groups = 1)"
        )),
        None if k == 3 && cin == 1 && cout > 1 => Some(format!(
            "a [{cout}, 1, 3, 3] kernel is what a depthwise convolution stores, and grouped / \
             depthwise convolutions are not supported (declare --groups NAME=1 if it is an \
             ordinary convolution of one input channel)"
        )),
        None => None,
    }
}

impl ConvSettings {
    /// Why tensor `t` cannot become a layer ([`unsupported`]).
    pub fn unsupported(&self, t: &Tensor) -> Option<String> {
        unsupported(&t.shape, self.groups.get(&t.name).copied())
    }

    /// The convolution geometry of `t`: `None` for a fully connected `[out, in]` weight, the
    /// kernel `[cout, cin, k, k]` with its stride and padding otherwise.
    pub fn shape_of(&self, t: &Tensor) -> Result<Option<ConvShape>, String> {
        let &[_, cin, k, _] = t.shape.as_slice() else {
            return Ok(None);
        };
        let kernel = u8::try_from(k).map_err(|_| format!("{k}×{k} kernel"))?;
        let shape = ConvShape {
            in_channels: u32::try_from(cin)
                .map_err(|_| format!("{cin} input channels are too many"))?,
            kernel,
            stride: self.stride.get(&t.name).copied().unwrap_or(1),
            padding: self
                .padding
                .get(&t.name)
                .copied()
                .unwrap_or(u8::from(kernel == 3)),
        };
        let inputs = u32::try_from(t.cols())
            .map_err(|_| format!("{} weights per output channel are too many", t.cols()))?;
        shape.validate(inputs)?;
        Ok(Some(shape))
    }
}

/// The selected tensor that `name` refers to: the one named exactly `name`, else the one whose
/// layer name (tensor name without `.weight`) is `name`.
pub fn resolve<'a>(tensors: &'a [Tensor], name: &str) -> Option<&'a Tensor> {
    tensors.iter().find(|t| t.name == name).or_else(|| {
        tensors
            .iter()
            .find(|t| t.name.strip_suffix(".weight") == Some(name))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, shape: &[usize]) -> Tensor {
        Tensor {
            name: name.into(),
            shape: shape.to_vec(),
            data: vec![0.0; shape.iter().product()],
            bias: None,
        }
    }

    #[test]
    fn defaults_and_overrides() {
        let mut s = ConvSettings::default();
        let c3 = t("a.weight", &[4, 2, 3, 3]);
        let c1 = t("b.weight", &[4, 2, 1, 1]);
        let fc = t("c.weight", &[4, 2]);
        let want = |kernel, stride, padding| {
            Ok(Some(ConvShape {
                in_channels: 2,
                kernel,
                stride,
                padding,
            }))
        };
        assert_eq!(s.shape_of(&c3), want(3, 1, 1));
        assert_eq!(s.shape_of(&c1), want(1, 1, 0));
        assert_eq!(s.shape_of(&fc), Ok(None));
        s.stride.insert("a.weight".into(), 2);
        s.padding.insert("a.weight".into(), 0);
        assert_eq!(s.shape_of(&c3), want(3, 2, 0));
        s.stride.insert("b.weight".into(), 3);
        assert!(s.shape_of(&c1).unwrap_err().contains("stride 3"));
    }

    #[test]
    fn refused_kernels() {
        assert!(unsupported(&[4, 2, 5, 5], None)
            .unwrap()
            .contains("5×5 convolution"));
        assert!(unsupported(&[4, 2, 1, 3], None).is_some());
        assert!(unsupported(&[8, 1, 3, 3], None)
            .unwrap()
            .contains("depthwise"));
        assert_eq!(unsupported(&[8, 1, 3, 3], Some(1)), None);
        assert_eq!(unsupported(&[1, 1, 3, 3], None), None);
        assert_eq!(unsupported(&[8, 1, 1, 1], None), None);
        assert!(unsupported(&[8, 4, 3, 3], Some(2))
            .unwrap()
            .contains("groups = 2"));
        assert_eq!(unsupported(&[8, 4], None), None);
    }

    #[test]
    fn names_resolve_to_tensors() {
        let ts = [
            t("x.weight", &[1, 1]),
            t("x", &[2, 2]),
            t("y.weight", &[1, 1]),
        ];
        assert_eq!(resolve(&ts, "x").unwrap().shape, [2, 2]);
        assert_eq!(resolve(&ts, "x.weight").unwrap().shape, [1, 1]);
        assert_eq!(resolve(&ts, "y").unwrap().name, "y.weight");
        assert!(resolve(&ts, "z").is_none());
    }
}
