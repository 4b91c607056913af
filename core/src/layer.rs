//! A fully connected / 1×1 layer in SmartDeal form, as the accelerator executes it.
//!
//! The weight row of output channel `o` (length `inputs`, zero-padded to `3 × rows`) is cut into
//! `rows` Ce rows of 3 weights; row `r` multiplies inputs `3r, 3r+1, 3r+2`. Rows are grouped into
//! blocks of `rows_per_block`; every (channel, block) pair has its own 3×3 basis `B`:
//!
//! `w[o][3r+j] = Σ_k Ce[o][r][k] · B[o][r / rows_per_block][k][j]`, with
//! `Ce[o][r][k] ∈ {0, ±2^(e_lo + code)}`.
//!
//! Output channels are grouped (`group_size` consecutive channels); a group shares one present-row
//! bitmap, so hardware lanes inside a group skip absent rows together. The integer arithmetic is
//! specified in `docs/numerics.md`; this module only holds and checks the data.
//!
//! A convolution keeps the same weights, read as the kernel `[outputs][in_channels][k][k]`
//! flattened (PyTorch's layout): for a 3×3 kernel `inputs = 9 · in_channels` and Ce row
//! `r = 3·ci + kh` holds the three weights `kw = 0, 1, 2` of input channel `ci`, kernel row `kh`
//! (exactly the rows × columns `smartdeal decompose` cuts a 3×3 kernel into); for a 1×1 kernel
//! `inputs = in_channels` and the rows are those of a fully connected layer applied at every
//! pixel. [`ConvShape`] says how the kernel slides.

use crate::params::{AccelConfig, OUT_SHIFT_BITS};
use serde::Serialize;
use thiserror::Error;

/// One Ce element: zero, or `±2^(e_lo + code)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
pub enum Coef {
    #[default]
    Zero,
    Pow2 {
        /// true: negative.
        neg: bool,
        /// Exponent code, `0..2^exp_bits`.
        code: u8,
    },
}

/// How a convolution layer's kernel slides over its `in_channels × H × W` input (any `H`, `W`
/// that leave at least one output pixel): square kernels, one group, the same stride and zero
/// padding on both axes. The output is `outputs × H' × W'` with `H' = (H + 2·padding − kernel) /
/// stride + 1` (rounded down), likewise `W'`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct ConvShape {
    /// Input channels.
    pub in_channels: u32,
    /// Kernel height and width: 1 or 3.
    pub kernel: u8,
    /// 1 or 2.
    pub stride: u8,
    /// Zero padding on each side: 0 or 1.
    pub padding: u8,
}

/// The spatial size of a convolution's input: `images × height × width` (per channel).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct ImageDims {
    pub images: usize,
    pub height: usize,
    pub width: usize,
}

impl ConvShape {
    /// The output size along an axis of `n` input pixels (`None`: no output pixel).
    pub fn out_len(&self, n: usize) -> Option<usize> {
        let (k, s, p) = (
            usize::from(self.kernel),
            usize::from(self.stride),
            usize::from(self.padding),
        );
        (n + 2 * p)
            .checked_sub(k)
            .map(|span| span / s + 1)
            .filter(|_| n > 0)
    }

    /// The output `(height, width)` for an input `dims`, or why there is none.
    pub fn out_dims(&self, dims: ImageDims) -> Result<(usize, usize), String> {
        match (self.out_len(dims.height), self.out_len(dims.width)) {
            (Some(h), Some(w)) => Ok((h, w)),
            _ => Err(format!(
                "a {}×{} input is too small for a {k}×{k} kernel with padding {}",
                dims.height,
                dims.width,
                self.padding,
                k = self.kernel
            )),
        }
    }

    /// Weights per output channel: `in_channels · kernel²`.
    pub fn inputs(&self) -> u64 {
        u64::from(self.in_channels) * u64::from(self.kernel) * u64::from(self.kernel)
    }

    /// Checks the fields (kernel, stride, padding) and that `inputs` is the kernel's size.
    pub fn validate(&self, inputs: u32) -> Result<(), String> {
        if self.in_channels == 0 {
            return Err("a convolution needs at least one input channel".into());
        }
        if !matches!(self.kernel, 1 | 3) {
            return Err(format!(
                "{k}×{k} kernels are not supported (1×1 and 3×3 are)",
                k = self.kernel
            ));
        }
        if !matches!(self.stride, 1 | 2) {
            return Err(format!(
                "stride {} is not supported (1 and 2 are)",
                self.stride
            ));
        }
        if self.padding > 1 {
            return Err(format!(
                "padding {} is not supported (0 and 1 are)",
                self.padding
            ));
        }
        if self.inputs() != u64::from(inputs) {
            return Err(format!(
                "{} input channels of a {k}×{k} kernel make {} weights per output channel, \
                 but the layer has {inputs}",
                self.in_channels,
                self.inputs(),
                k = self.kernel
            ));
        }
        Ok(())
    }
}

/// A layer's data is inconsistent, or does not fit an accelerator configuration.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("layer `{layer}`: {why}")]
pub struct LayerError {
    pub layer: String,
    pub why: String,
}

/// A fully connected (or 1×1 convolution) layer in SmartDeal form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FcLayer {
    pub name: String,
    /// Input features.
    pub inputs: u32,
    /// Output channels.
    pub outputs: u32,
    /// Ce rows per block (rows sharing one B).
    pub rows_per_block: u32,
    /// Output channels per row-bitmap group.
    pub group_size: u32,
    /// Bits of an exponent code (2..=4).
    pub exp_bits: u8,
    /// Exponent of code 0: a nonzero Ce element is ±2^(e_lo + code). Integer arithmetic never
    /// uses it; it scales the integer weights back to real ones.
    pub e_lo: i8,
    /// Apply ReLU to the outputs.
    pub relu: bool,
    /// Present-row bitmap, `[group][row]`.
    pub row_present: Vec<Vec<bool>>,
    /// Basis, `[o * blocks + block]`, `B[k][j]` (k: basis row, j: column).
    pub basis: Vec<[[i8; 3]; 3]>,
    /// Coefficients, `[(o * rows + r) * 3 + k]`.
    pub coef: Vec<Coef>,
    /// Per-channel weight-requant shift (int8 mode).
    pub wshift: Vec<u8>,
    /// Per-channel bias, added to the accumulator.
    pub bias: Vec<i32>,
    /// Per-channel output multiplier (unsigned 16-bit).
    pub out_mult: Vec<u16>,
    /// Per-channel output shift (0..=31).
    pub out_shift: Vec<u8>,
    /// `Some` for a convolution: how the kernel (the weights above) slides over an image.
    pub conv: Option<ConvShape>,
}

/// A model: an ordered list of layers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Model {
    pub layers: Vec<FcLayer>,
}

impl FcLayer {
    /// Ce rows: `ceil(inputs / 3)`.
    pub fn rows(&self) -> usize {
        (self.inputs as usize).div_ceil(3)
    }
    /// Blocks per output channel.
    pub fn blocks(&self) -> usize {
        self.rows().div_ceil(self.rows_per_block as usize)
    }
    /// Row-bitmap groups.
    pub fn groups(&self) -> usize {
        (self.outputs as usize).div_ceil(self.group_size as usize)
    }
    /// Group of output channel `o`.
    pub fn group_of(&self, o: usize) -> usize {
        o / self.group_size as usize
    }
    /// The three coefficients of row `r` of channel `o`.
    pub fn coef_row(&self, o: usize, r: usize) -> [Coef; 3] {
        let i = (o * self.rows() + r) * 3;
        [self.coef[i], self.coef[i + 1], self.coef[i + 2]]
    }
    /// The basis of channel `o` for row `r`'s block.
    pub fn basis_for(&self, o: usize, r: usize) -> &[[i8; 3]; 3] {
        &self.basis[o * self.blocks() + r / self.rows_per_block as usize]
    }
    /// Rows present for channel `o` (its group's bitmap).
    pub fn row_is_present(&self, o: usize, r: usize) -> bool {
        self.row_present[self.group_of(o)][r]
    }
    /// Fraction of rows present, over all groups.
    pub fn row_density(&self) -> f64 {
        let present: usize = self
            .row_present
            .iter()
            .map(|g| g.iter().filter(|&&p| p).count())
            .sum();
        present as f64 / (self.row_present.len() * self.rows()).max(1) as f64
    }
    /// Fraction of Ce elements that are nonzero.
    pub fn coef_density(&self) -> f64 {
        let nz = self.coef.iter().filter(|c| **c != Coef::Zero).count();
        nz as f64 / self.coef.len().max(1) as f64
    }

    pub fn err(&self, why: String) -> LayerError {
        LayerError {
            layer: self.name.clone(),
            why,
        }
    }

    /// Checks internal consistency: shapes, code ranges, absent rows empty, shift ranges.
    pub fn validate(&self) -> Result<(), LayerError> {
        if self.name.is_empty() || self.name.len() > 255 {
            return Err(self.err("name must be 1..=255 bytes".into()));
        }
        if self.inputs == 0 || self.outputs == 0 {
            return Err(self.err(format!(
                "shape {}×{} has a zero dimension",
                self.outputs, self.inputs
            )));
        }
        if let Some(c) = &self.conv {
            c.validate(self.inputs).map_err(|why| self.err(why))?;
        }
        if self.rows_per_block == 0 || self.group_size == 0 {
            return Err(self.err("rows_per_block and group_size must be ≥ 1".into()));
        }
        if !(2..=4).contains(&self.exp_bits) {
            return Err(self.err(format!("exp_bits {} is outside 2..=4", self.exp_bits)));
        }
        let (o, rows, blocks, groups) = (
            self.outputs as usize,
            self.rows(),
            self.blocks(),
            self.groups(),
        );
        let checks = [
            ("row_present groups", self.row_present.len(), groups),
            ("basis", self.basis.len(), o * blocks),
            ("coef", self.coef.len(), o * rows * 3),
            ("wshift", self.wshift.len(), o),
            ("bias", self.bias.len(), o),
            ("out_mult", self.out_mult.len(), o),
            ("out_shift", self.out_shift.len(), o),
        ];
        for (what, got, want) in checks {
            if got != want {
                return Err(self.err(format!("{what} has {got} entries, expected {want}")));
            }
        }
        if let Some(g) = self.row_present.iter().position(|g| g.len() != rows) {
            return Err(self.err(format!("row bitmap of group {g} does not have {rows} rows")));
        }
        let code_limit = 1u8 << self.exp_bits;
        for ch in 0..o {
            for r in 0..rows {
                let row = self.coef_row(ch, r);
                for c in row {
                    if let Coef::Pow2 { code, .. } = c {
                        if code >= code_limit {
                            return Err(self.err(format!(
                                "channel {ch} row {r}: code {code} needs more than {} bits",
                                self.exp_bits
                            )));
                        }
                    }
                }
                if !self.row_is_present(ch, r) && row.iter().any(|c| *c != Coef::Zero) {
                    return Err(self.err(format!(
                        "channel {ch} row {r}: nonzero coefficient in a row its group marks absent"
                    )));
                }
            }
            // Padding inputs (3·rows - inputs of them) are not real inputs: their weights would
            // multiply zero activations, so they are allowed to be anything.
            if u32::from(self.out_shift[ch]) >= 1 << OUT_SHIFT_BITS {
                return Err(self.err(format!(
                    "channel {ch}: out_shift {} is outside 0..=31",
                    self.out_shift[ch]
                )));
            }
        }
        Ok(())
    }

    /// Checks that this layer can run on `cfg` (beyond internal consistency).
    pub fn check_fits(&self, cfg: &AccelConfig) -> Result<(), LayerError> {
        self.validate()?;
        if let Some(c) = self.conv.filter(|c| c.kernel == 3) {
            // A band run holds three input rows of every channel (docs/interface.md); 3×3
            // convolutions are not input-tiled.
            let words = 3 * u64::from(c.in_channels);
            if words > u64::from(cfg.act_depth) {
                return Err(self.err(format!(
                    "a 3×3 convolution of {} input channels needs a band of {words} activation \
                     words (3 rows × {} channels), more than act_depth = {}",
                    c.in_channels, c.in_channels, cfg.act_depth
                )));
            }
        }
        if self.rows() > cfg.act_depth as usize {
            // Input tiling (image::pack_layer) accumulates across chunks; the accumulator's
            // no-overflow guarantee covers act_depth rows, so check this layer's own bound.
            let max_x = 1u128 << (cfg.act_bits - 1);
            let bound = 3 * self.rows() as u128 * max_x * cfg.max_abs_mac_weight();
            let need = crate::params::signed_bits_for(bound);
            if need > cfg.acc_bits {
                return Err(self.err(format!(
                    "{} inputs need {} Ce rows, more than act_depth = {} rows, and input tiling \
                     would need a {need}-bit accumulator (acc_bits = {})",
                    self.inputs,
                    self.rows(),
                    cfg.act_depth,
                    cfg.acc_bits
                )));
            }
        }
        if u32::from(self.exp_bits) > cfg.exp_bits {
            // Codes are checked against the layer's own exp_bits; they must also fit the hardware.
            let limit = cfg.code_max() as u8;
            if self
                .coef
                .iter()
                .any(|c| matches!(c, Coef::Pow2 { code, .. } if *code > limit))
            {
                return Err(self.err(format!(
                    "uses exponent codes above {limit}, the largest the accelerator's \
                     exp_bits = {} allows",
                    cfg.exp_bits
                )));
            }
        }
        let b_lo = -(1i16 << (cfg.basis_bits - 1));
        let b_hi = (1i16 << (cfg.basis_bits - 1)) - 1;
        if let Some(i) = self.basis.iter().position(|b| {
            b.iter()
                .flatten()
                .any(|&v| i16::from(v) < b_lo || i16::from(v) > b_hi)
        }) {
            return Err(self.err(format!(
                "basis of channel {} block {} has a value outside the {}-bit range {b_lo}..={b_hi}",
                i / self.blocks(),
                i % self.blocks(),
                cfg.basis_bits
            )));
        }
        if let Some(ch) = self
            .wshift
            .iter()
            .position(|&s| u32::from(s) > cfg.wshift_max())
        {
            return Err(self.err(format!(
                "channel {ch}: weight shift {} exceeds the accelerator's maximum {}",
                self.wshift[ch],
                cfg.wshift_max()
            )));
        }
        // An untiled tile needs all its blocks at once; an input-tiled one only a chunk's
        // (checked by the packer).
        let blocks_per_tile = self.blocks();
        let tiled = self.rows() > cfg.act_depth as usize;
        if cfg.has_basis() && !tiled && blocks_per_tile > cfg.b_depth as usize {
            return Err(self.err(format!(
                "{blocks_per_tile} blocks per channel exceed the basis buffer (b_depth = {})",
                cfg.b_depth
            )));
        }
        Ok(())
    }
}

impl Model {
    /// Validates every layer and checks that names are unique.
    pub fn validate(&self) -> Result<(), LayerError> {
        let mut seen = std::collections::HashSet::new();
        for l in &self.layers {
            l.validate()?;
            if !seen.insert(l.name.as_str()) {
                return Err(l.err("duplicate layer name".into()));
            }
        }
        Ok(())
    }
}
