//! Shared vocabulary of the SmartDeal toolchain.
//!
//! * [`params`]: the one accelerator parameter struct (presets, TOML, validation, derived widths);
//! * [`layer`]: a fully connected / 1×1 layer in SmartDeal form (B, Ce, requant parameters);
//! * [`sdm`]: the `.sdm` compressed-model file;
//! * [`image`]: the host-side packing of a layer into the accelerator's memory words;
//! * [`random`]: seeded random valid layers (demos and tests);
//! * [`protocol`]: the board link protocol's vocabulary and the host-interface opcodes, which
//!   the generated hardware and the host driver share;
//! * [`pll`]: the boards' PLL divider planning (the core clock the link runs at).
//!
//! Neither the golden model nor the RTL generator lives here, so the two can only agree
//! through the documented formats, never through shared arithmetic code.

pub mod image;
pub mod layer;
pub mod params;
pub mod pll;
pub mod protocol;
pub mod random;
pub mod sdm;
mod sdm_conv;

pub use layer::{Coef, ConvShape, FcLayer, ImageDims, LayerError, Model};
pub use params::{AccelConfig, ConfigError, Dataflow, MacMul, WeightFormat, WeightRequant};
