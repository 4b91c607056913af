//! Folding a batch norm into the convolution before it (`docs/decomposition.md` §1.1).
//!
//! Per output channel `o`, with `s_o = γ_o / √(var_o + ε)`:
//! `w'[o][…] = w[o][…] · s_o` and `b'_o = (b_o − μ_o) · s_o + β_o` (`b_o = 0` without a conv
//! bias). Computed in f64, stored as f32. The folded bias becomes the tensor's bias, so the
//! integer conversion turns it into the layer's `bias_int` like any other bias.
//!
//! Which batch norm belongs to a weight `P.weight` (first match whose `running_mean` and
//! `running_var` the file holds; [`candidates`]): `…convN` → `…bnN` (torchvision ResNet,
//! `conv` → `bn` for timm's `ConvBnAct`), `…<seq>.<i>` → `…<seq>.<i+1>` (a `Sequential(conv, bn)`:
//! torchvision's `downsample.0` → `downsample.1`, `Conv2dNormActivation`, VGG-BN), then `P.bn`.

use crate::weights::{self, Tensor};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// PyTorch's default `eps` of `BatchNorm2d`.
pub const DEFAULT_EPS: f64 = 1e-5;

/// Which batch norms to fold.
#[derive(Debug, Clone, PartialEq)]
pub struct BnOptions {
    /// Find the batch norms of rank-4 weights by the naming rules ([`candidates`]).
    pub auto: bool,
    /// Tensor name → batch-norm prefix, overriding the rules (any rank).
    pub explicit: BTreeMap<String, String>,
    /// ε of `√(var + ε)`.
    pub eps: f64,
}

impl Default for BnOptions {
    fn default() -> Self {
        BnOptions {
            auto: true,
            explicit: BTreeMap::new(),
            eps: DEFAULT_EPS,
        }
    }
}

/// A batch norm that was folded into a weight (for the report).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Folded {
    /// The batch norm's prefix (`bn1` for `bn1.running_mean`, …).
    pub bn: String,
    pub eps: f64,
}

/// A batch norm's parameters, one value per channel. Without an affine part (`affine=False`)
/// `gamma` and `beta` are absent: 1 and 0.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchNorm {
    pub gamma: Option<Vec<f32>>,
    pub beta: Option<Vec<f32>>,
    pub mean: Vec<f32>,
    pub var: Vec<f32>,
}

/// The tensors of batch norm `bn`: `(suffix, required)`.
const PARTS: [(&str, bool); 4] = [
    ("running_mean", true),
    ("running_var", true),
    ("weight", false),
    ("bias", false),
];

/// Batch-norm prefixes that may belong to weight `tensor`, in the order they are tried.
pub fn candidates(tensor: &str) -> Vec<String> {
    let prefix = tensor.strip_suffix(".weight").unwrap_or(tensor);
    let (parent, last) = match prefix.rsplit_once('.') {
        Some((p, l)) => (Some(p), l),
        None => (None, prefix),
    };
    let sibling = |leaf: &str| match parent {
        Some(p) => format!("{p}.{leaf}"),
        None => leaf.to_string(),
    };
    let mut c = Vec::new();
    if let Some(n) = last.strip_prefix("conv") {
        if n.bytes().all(|b| b.is_ascii_digit()) {
            c.push(sibling(&format!("bn{n}")));
        }
    }
    if let (Some(_), Ok(i)) = (parent, last.parse::<u64>()) {
        if let Some(next) = i.checked_add(1) {
            c.push(sibling(&next.to_string()));
        }
    }
    c.push(format!("{prefix}.bn"));
    c
}

/// Folds `bn` into `t` (weights and bias, per output channel).
pub fn fold(t: &mut Tensor, bn: &BatchNorm, eps: f64) -> Result<(), String> {
    let outs = t.rows();
    let per = t.cols();
    let mut bias = Vec::with_capacity(outs);
    for o in 0..outs {
        let var = f64::from(bn.var[o]);
        let g = bn.gamma.as_ref().map_or(1.0, |g| f64::from(g[o]));
        let beta = bn.beta.as_ref().map_or(0.0, |b| f64::from(b[o]));
        if var + eps <= 0.0 {
            return Err(format!(
                "channel {o}: running_var {var} + ε {eps} is not positive"
            ));
        }
        let s = g / (var + eps).sqrt();
        for w in &mut t.data[o * per..(o + 1) * per] {
            *w = narrow(f64::from(*w) * s, o)?;
        }
        let b = t.bias.as_ref().map_or(0.0, |b| f64::from(b[o]));
        bias.push(narrow((b - f64::from(bn.mean[o])) * s + beta, o)?);
    }
    t.bias = Some(bias);
    Ok(())
}

fn narrow(v: f64, o: usize) -> Result<f32, String> {
    let n = v as f32;
    if n.is_finite() {
        Ok(n)
    } else {
        Err(format!(
            "channel {o}: the folded value {v:e} does not fit in f32"
        ))
    }
}

/// Finds the batch norm of every tensor (explicit ones first, then, with `o.auto`, by the naming
/// rules for rank-4 weights) in the weights file `path`, folds it, and returns what was folded
/// per tensor name. Errors (one line): an explicit batch norm the file lacks, a batch-norm tensor
/// whose shape is not `[out]`, one batch norm for two weights, a non-positive `var + ε`.
pub fn fold_batch_norms(
    path: &Path,
    tensors: &mut [Tensor],
    o: &BnOptions,
) -> Result<BTreeMap<String, Folded>, String> {
    // Every explicit pair must name a selected tensor (the caller resolves names first); a pair
    // naming none is an error rather than silently ignored.
    let names: BTreeSet<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
    if let Some(t) = o.explicit.keys().find(|t| !names.contains(t.as_str())) {
        return Err(format!("--bn names tensor `{t}`, which is not selected"));
    }
    let plans: Vec<(usize, Vec<String>, bool)> = tensors
        .iter()
        .enumerate()
        .filter_map(|(i, t)| match o.explicit.get(&t.name) {
            Some(bn) => Some((i, vec![bn.clone()], true)),
            None if o.auto && t.shape.len() == 4 => Some((i, candidates(&t.name), false)),
            None => None,
        })
        .collect();
    let wanted: Vec<String> = plans
        .iter()
        .flat_map(|(_, c, _)| c)
        .flat_map(|bn| PARTS.iter().map(move |(part, _)| format!("{bn}.{part}")))
        .collect();
    if wanted.is_empty() {
        return Ok(BTreeMap::new());
    }
    let arrays = weights::load_arrays(path, &wanted).map_err(|e| e.to_string())?;
    let mut folded = BTreeMap::new();
    let mut used: BTreeMap<String, String> = BTreeMap::new();
    for (i, cands, explicit) in plans {
        let t = &mut tensors[i];
        let has = |bn: &str, part: &str| arrays.contains_key(&format!("{bn}.{part}"));
        let found = cands
            .iter()
            .find(|bn| has(bn, "running_mean") && has(bn, "running_var"));
        let Some(bn) = found else {
            if explicit {
                let bn = &cands[0];
                let missing = PARTS
                    .iter()
                    .find(|(part, req)| *req && !has(bn, part))
                    .map_or("running_mean", |(part, _)| part);
                return Err(format!(
                    "{}: batch norm `{bn}` of tensor `{}`: the file has no `{bn}.{missing}`",
                    path.display(),
                    t.name
                ));
            }
            continue;
        };
        let what = format!(
            "{}: batch norm `{bn}` of tensor `{}`",
            path.display(),
            t.name
        );
        if let Some(other) = used.insert(bn.clone(), t.name.clone()) {
            return Err(format!(
                "{what}: it was already folded into `{other}` (name one with --bn, or use \
                 --no-fold-bn)"
            ));
        }
        let outs = t.rows();
        let part = |name: &str| -> Result<Option<Vec<f32>>, String> {
            let Some(a) = arrays.get(&format!("{bn}.{name}")) else {
                return Ok(None);
            };
            if a.shape != [outs] {
                return Err(format!(
                    "{what}: `{bn}.{name}` has shape {:?}, but the weight has {outs} output \
                     channels (expected [{outs}])",
                    a.shape
                ));
            }
            Ok(Some(a.data.clone()))
        };
        let norm = BatchNorm {
            mean: part("running_mean")?.unwrap_or_default(),
            var: part("running_var")?.unwrap_or_default(),
            gamma: part("weight")?,
            beta: part("bias")?,
        };
        fold(t, &norm, o.eps).map_err(|e| format!("{what}: {e}"))?;
        folded.insert(
            t.name.clone(),
            Folded {
                bn: bn.clone(),
                eps: o.eps,
            },
        );
    }
    Ok(folded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naming_rules() {
        assert_eq!(candidates("conv1.weight"), ["bn1", "conv1.bn"]);
        assert_eq!(
            candidates("layer1.0.conv2.weight"),
            ["layer1.0.bn2", "layer1.0.conv2.bn"]
        );
        assert_eq!(
            candidates("layer2.0.downsample.0.weight"),
            ["layer2.0.downsample.1", "layer2.0.downsample.0.bn"]
        );
        assert_eq!(
            candidates("blocks.3.conv.weight"),
            ["blocks.3.bn", "blocks.3.conv.bn"]
        );
        assert_eq!(candidates("stem.weight"), ["stem.bn"]);
        assert_eq!(candidates("convx.weight"), ["convx.bn"]);
    }

    fn tensor(shape: &[usize], data: Vec<f32>, bias: Option<Vec<f32>>) -> Tensor {
        Tensor {
            name: "c.weight".into(),
            shape: shape.to_vec(),
            data,
            bias,
        }
    }

    #[test]
    fn folding_follows_the_formula() {
        // 2 output channels × 1 input channel × 1×2 kernel (the shape does not matter).
        let mut t = tensor(
            &[2, 1, 1, 2],
            vec![1.0, -2.0, 0.5, 4.0],
            Some(vec![0.25, -1.0]),
        );
        let bn = BatchNorm {
            gamma: Some(vec![2.0, -0.5]),
            beta: Some(vec![0.1, 0.2]),
            mean: vec![1.0, -3.0],
            var: vec![4.0 - 1e-5, 0.25 - 1e-5],
        };
        fold(&mut t, &bn, 1e-5).unwrap();
        // s = 2 / 2 = 1, −0.5 / 0.5 = −1 (up to the f32 rounding of var).
        let close = |a: f32, b: f64| (f64::from(a) - b).abs() < 1e-5;
        for (got, want) in t.data.iter().zip([1.0, -2.0, -0.5, -4.0]) {
            assert!(close(*got, want), "{:?}", t.data);
        }
        let b = t.bias.unwrap();
        assert!(close(b[0], (0.25 - 1.0) * 1.0 + 0.1), "{b:?}");
        // (b − μ) · s + β with s = −1.
        assert!(close(b[1], -(-1.0 + 3.0) + 0.2), "{b:?}");
    }

    #[test]
    fn without_affine_part_or_conv_bias() {
        let mut t = tensor(&[1, 1, 1, 1], vec![3.0], None);
        let bn = BatchNorm {
            gamma: None,
            beta: None,
            mean: vec![0.5],
            var: vec![8.0],
        };
        fold(&mut t, &bn, 1.0).unwrap();
        assert_eq!(t.data, [1.0]);
        assert_eq!(t.bias, Some(vec![-0.5 / 3.0]));
        let bad = BatchNorm {
            var: vec![-2.0],
            ..bn
        };
        assert!(fold(&mut t, &bad, 1.0)
            .unwrap_err()
            .contains("not positive"));
    }
}
