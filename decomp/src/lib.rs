//! SmartDeal decomposition: trained float weights → `W ≈ Ce·B` per block → the accelerator's
//! integer layer model (`smartdeal_core::FcLayer`).
//!
//! * [`weights`]: reading `.safetensors` / `.npy` tensors, with [`npy`]'s strict header parser
//!   (shared with the CLI);
//! * [`reshape`]: how a layer is cut into blocks (the reference's tables);
//! * [`block`]: `core_decompose` on one block, with [`pow2`] and [`linalg`]; [`weighted`]: the
//!   same under the activation-aware objective, with the input moments of [`moments`];
//! * [`layer`]: a whole tensor (blocks in parallel, structural row pruning); [`budget`]: one
//!   row density for a whole network, spread over its layers;
//! * [`integer`]: the float decomposition → the accelerator's integer layer.
//! * [`conv`]: convolution geometry (stride, padding, groups) and which kernels are supported;
//!   [`batchnorm`]: folding a batch norm into the convolution before it;
//! * [`pipeline`]: a whole job (tensors → model + report), [`report`]: its statistics.

pub mod batchnorm;
pub mod block;
pub mod budget;
pub mod conv;
pub mod integer;
pub mod layer;
pub mod linalg;
pub mod moments;
pub mod npy;
pub mod pipeline;
pub mod pow2;
pub mod report;
pub mod reshape;
pub mod weighted;
pub mod weights;
