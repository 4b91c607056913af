//! The golden side of the toolchain: what the accelerator must compute, bit for bit.
//!
//! * [`model`] (re-exported at the crate root): the bit-exact integer model of the accelerator
//!   (docs/numerics.md);
//! * [`factor`]: the factorized dataflow (`dataflow = "factorized"`), an independent model that
//!   never forms a weight;
//! * [`naive`]: an obviously-correct dense reference the golden model is tested against;
//! * [`strategies`] (feature `strategies`, for tests): random configurations, layers and
//!   activations for the property tests.
//!
//! This crate depends on `smartdeal-core` only, so the golden model cannot import the RTL
//! generator: the two agree only through the documented number formats.

pub mod factor;
pub mod model;
pub mod naive;
#[cfg(feature = "strategies")]
pub mod strategies;

pub use model::*;
