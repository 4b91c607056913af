//! The accelerator parameter struct: one value drives the Verilog generator, the golden model,
//! the simulation harness and (later) the FPGA flow.
//!
//! Only independent choices are configured; every width that follows from them is derived by a
//! method here, so no width is ever configured twice.

use serde::{Deserialize, Serialize};
use std::path::Path;
use thiserror::Error;

/// How rebuilt weights enter the MAC array (see `docs/numerics.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum WeightRequant {
    /// Paper-faithful: each rebuilt weight is shifted right by its output channel's shift,
    /// rounded half up and saturated to int8 before an int8 × int8 MAC.
    Int8,
    /// No requantization: the full-width rebuilt weight feeds a wider multiplier.
    Exact,
}

/// How a layer's weights travel to the MAC array (see `docs/parameters.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash, Default)]
#[serde(rename_all = "lowercase")]
pub enum WeightFormat {
    /// The SmartDeal accelerator: the stream carries Ce codes, the basis buffer holds B, and each
    /// lane rebuilds its weights with shifts and adds.
    #[default]
    Smartdeal,
    /// The dense int8 baseline for like-for-like comparisons: the same lanes, buffers, pipeline
    /// and output stage, but the stream carries every row's int8 weights (decompressed by the
    /// host), there is no basis or weight-shift buffer, and lanes are plain multipliers.
    Dense,
}

impl WeightFormat {
    fn is_smartdeal(&self) -> bool {
        *self == WeightFormat::Smartdeal
    }
}

/// How a lane turns Ce rows and activations into a channel's sum (see `docs/numerics.md` §4b).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash, Default)]
#[serde(rename_all = "lowercase")]
pub enum Dataflow {
    /// Rebuild each row's three weights `w = Ce·B` with shifts and adds, then multiply them by
    /// the activations (three multipliers per lane and slot).
    #[default]
    Rebuild,
    /// Never form the weights: per row, shift-add `Ce[r][k]·x[r][j]` into nine block
    /// accumulators; per block, add `Σ_k Σ_j B[k][j]·acc[k][j]` to the channel's sum with one
    /// multiplier per lane and slot sequenced over the nine terms. Needs exact weights.
    Factorized,
}

impl Dataflow {
    fn is_rebuild(&self) -> bool {
        *self == Dataflow::Rebuild
    }
}

/// How the rebuild and dense lanes make their MAC products.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash, Default)]
#[serde(rename_all = "lowercase")]
pub enum MacMul {
    /// A Verilog `*` between registers; the FPGA flow maps it to a DSP block or LUTs.
    #[default]
    Inferred,
    /// Each product is the ECP5's `MULT18X18D` instantiated with its input and output
    /// registers (Yosys maps `*` to the block without them), one cycle longer than `inferred`
    /// (docs/interface.md). ECP5 boards only; needs `extra_stages`.
    Mult18x18d,
}

impl MacMul {
    fn is_inferred(&self) -> bool {
        *self == MacMul::Inferred
    }
}

/// Cycles a factorized lane's block flush takes: one product `B[k][j]·acc[k][j]` per cycle on
/// its one multiplier per slot. The stream keeps every block segment at least this long
/// (docs/interface.md), so a flush always ends before the next one starts.
pub const FACTOR_FLUSH_CYCLES: u32 = 9;

/// The accelerator's parameters. Every field is an independent design choice.
///
/// ```
/// use smartdeal_core::AccelConfig;
/// let mut cfg = AccelConfig::preset("tiny").unwrap();
/// assert_eq!(cfg.rebuild_bits(), 17); // 8-bit B, codes up to 7, three terms
/// cfg.lanes = 0;
/// let err = cfg.validate().unwrap_err().to_string();
/// assert!(err.contains("`lanes`"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(deny_unknown_fields)]
pub struct AccelConfig {
    /// Name written into generated headers (the preset's name, or the config file's stem).
    #[serde(default = "default_name")]
    pub name: String,
    /// Output channels computed in parallel (one lane = 3 MACs per cycle). 1..=64.
    pub lanes: u32,
    /// Activation width in bits (signed, two's complement). 4..=8.
    pub act_bits: u32,
    /// Basis (B) element width in bits (signed). 4..=8.
    pub basis_bits: u32,
    /// Bits of a Ce exponent code; a nonzero Ce element is ±2^(e_lo + code), code in
    /// `0..2^exp_bits`. 2..=4.
    pub exp_bits: u32,
    /// Accumulator width in bits (signed). Must cover the worst-case growth of a layer that fills
    /// the activation buffer. 16..=40.
    pub acc_bits: u32,
    /// Block height (Ce rows sharing one B) used for layers made for this accelerator. 1..=1024.
    pub rows_per_block: u32,
    /// Activation buffer depth in Ce rows (3 activations each): the largest layer input is
    /// `3 × act_depth`. Power of two, 4..=65536.
    pub act_depth: u32,
    /// Coefficient stream buffer depth in entries (one entry = one present row of one tile of
    /// `lanes` output channels). Power of two, 4..=65536.
    pub coef_depth: u32,
    /// Basis buffer depth in words (one word = the B of `lanes` output channels for one block).
    /// Power of two, 2..=65536.
    pub b_depth: u32,
    /// Output buffer depth in int8 outputs (also the depth of the output-parameter buffer; the
    /// weight-shift buffer holds `out_depth / lanes` tiles). Power of two, ≥ `lanes`.
    pub out_depth: u32,
    /// Rebuilt-weight requantization mode.
    pub weight_requant: WeightRequant,
    /// SmartDeal (default) or the dense int8 baseline. Omitted from the TOML text when it is the
    /// default, so SmartDeal configs keep their fingerprints.
    #[serde(default, skip_serializing_if = "WeightFormat::is_smartdeal")]
    pub weight_format: WeightFormat,
    /// Generate every buffer as a single-port RAM (one address, no read on a write cycle), the
    /// shape Yosys maps to the iCE40UP5K's 256-kbit SB_SPRAM256KA. Safe because the host writes
    /// buffers only while no run is in progress and reads outputs only after one. Default false
    /// (omitted from the TOML text).
    #[serde(default, skip_serializing_if = "is_false")]
    pub single_port_buffers: bool,
    /// Pixel/token slots per lane (`P`, 1..=16): each stream entry's rebuilt weights are applied
    /// to `slots` activation triples at once — adjacent output pixels of a convolution row, or
    /// tokens of a fully connected layer — so a lane does `3 · slots` MACs per cycle and the
    /// stream is read, decoded and rebuilt once per `slots` pixels or tokens. Default 1 (omitted
    /// from the TOML text).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub slots: u32,
    /// `"rebuild"` (default, omitted from the TOML text so existing fingerprints stay) or
    /// `"factorized"`: the DSP-free lane of `docs/numerics.md` §4b (needs
    /// `weight_requant = "exact"`).
    #[serde(default, skip_serializing_if = "Dataflow::is_rebuild")]
    pub dataflow: Dataflow,
    /// Extra register stages for a fast device (the ECP5; docs/parameters.md has the list and
    /// docs/interface.md the cycle model): the buffers' read data is registered once more before
    /// any logic uses it (the DP16KD's clock-to-out is 5.8 ns), the output multiplier's 16 × 16
    /// partial products are registered before they are added, the rebuild and dense lanes
    /// register each product twice and sum a row's three in a cycle of their own, each slot has
    /// its own MAC weights and each lane its own reset register. Three more cycles per START
    /// (one on the factorized dataflow), five (three) more when the run drains a tile. The iCE40
    /// does not need them at its clocks. Default false (omitted from the TOML text).
    #[serde(default, skip_serializing_if = "is_false")]
    pub extra_stages: bool,
    /// How the rebuild and dense lanes make their MAC products: `inferred` (default, omitted
    /// from the TOML text) or `mult18x18d`, the ECP5's DSP block with its own input and output
    /// registers (docs/parameters.md).
    #[serde(default, skip_serializing_if = "MacMul::is_inferred")]
    pub mac_mul: MacMul,
}

fn one() -> u32 {
    1
}

fn is_one(v: &u32) -> bool {
    *v == 1
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Collapses a (possibly multi-line) parser message into one line.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn default_name() -> String {
    "custom".to_string()
}

/// An invalid configuration: names the field and says why.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("invalid config field `{field}`: {why}")]
    Field { field: &'static str, why: String },
    #[error("unknown preset `{0}` (known presets: {list})", list = PRESETS.join(", "))]
    UnknownPreset(String),
    #[error("cannot read config {path}: {why}")]
    Read { path: String, why: String },
}

/// Names of the built-in presets, in the order `--help` lists them.
pub const PRESETS: [&str; 3] = ["tiny", "icebreaker", "ulx3s"];

/// Output multiplier width (unsigned), fixed by the numerics spec.
pub const OUT_MULT_BITS: u32 = 16;
/// Output shift field width: shifts 0..=31.
pub const OUT_SHIFT_BITS: u32 = 5;
/// Bias width (signed).
pub const BIAS_BITS: u32 = 32;
/// Width of a stream entry's kernel-row field (a convolution's `kh`, 0..=2; 0 otherwise).
pub const KH_BITS: u32 = 2;

/// Number of bits needed to hold the values `0..n` (at least 1).
pub fn clog2(n: u64) -> u32 {
    if n <= 2 {
        1
    } else {
        64 - (n - 1).leading_zeros()
    }
}

/// Bits of a signed two's-complement number that holds every value in `[-bound, bound]`.
pub fn signed_bits_for(bound: u128) -> u32 {
    // A w-bit signed number holds [-2^(w-1), 2^(w-1) - 1]; `bound` must be ≤ 2^(w-1) - 1.
    let mut w = 1;
    while (1u128 << (w - 1)) <= bound {
        w += 1;
    }
    w
}

impl AccelConfig {
    /// A named preset.
    pub fn preset(name: &str) -> Result<Self, ConfigError> {
        let c = match name {
            // Smallest useful accelerator: quick to verilate, used by most tests.
            "tiny" => AccelConfig {
                name: "tiny".into(),
                lanes: 4,
                act_bits: 8,
                basis_bits: 8,
                exp_bits: 3,
                acc_bits: 32,
                rows_per_block: 64,
                act_depth: 256,
                coef_depth: 1024,
                b_depth: 128,
                out_depth: 256,
                weight_requant: WeightRequant::Int8,
                weight_format: WeightFormat::Smartdeal,
                single_port_buffers: false,
                slots: 2,
                dataflow: Dataflow::Rebuild,
                extra_stages: false,
                mac_mul: MacMul::Inferred,
            },
            // iCE40UP5K (iCEBreaker): one lane of two slots on the factorized dataflow (6 MACs
            // per cycle). Its rows need no multiplier; each slot's block multiplier (8 × 25
            // bits) takes 2 SB_MAC16 and the output requantizer (36 × 16) 4: all 8 DSPs. The
            // rebuild dataflow would need 3 per slot, 10 in all. Exact weights, so a 35-bit
            // accumulator (`acc_bits_required`). Single-port buffers so the 16384-entry stream
            // sits in two of the four 256-kbit SPRAMs (a 384×384 layer's stream in one load);
            // 512 activation rows (1536 inputs) and the rest in EBRs (docs/parameters.md has the
            // measured budget). Meets 42 MHz behind the PLL (README).
            "icebreaker" => AccelConfig {
                name: "icebreaker".into(),
                lanes: 1,
                act_bits: 8,
                basis_bits: 8,
                exp_bits: 3,
                acc_bits: 35,
                rows_per_block: 128,
                act_depth: 512,
                coef_depth: 16384,
                b_depth: 64,
                out_depth: 128,
                weight_requant: WeightRequant::Exact,
                weight_format: WeightFormat::Smartdeal,
                single_port_buffers: true,
                slots: 2,
                dataflow: Dataflow::Factorized,
                extra_stages: false,
                mac_mul: MacMul::Inferred,
            },
            // ECP5-85F (ULX3S): 6 lanes × 4 slots (72 MACs per cycle; it meets 100 MHz, where
            // 16 × 2 reached 81), buffers for layers up to 3072 inputs; the extra register
            // stages (`extra_stages`) and registered DSP blocks for the ECP5's clock.
            "ulx3s" => AccelConfig {
                name: "ulx3s".into(),
                lanes: 6,
                act_bits: 8,
                basis_bits: 8,
                exp_bits: 3,
                acc_bits: 32,
                rows_per_block: 128,
                act_depth: 1024,
                coef_depth: 4096,
                b_depth: 512,
                out_depth: 1024,
                weight_requant: WeightRequant::Int8,
                weight_format: WeightFormat::Smartdeal,
                single_port_buffers: false,
                slots: 4,
                dataflow: Dataflow::Rebuild,
                extra_stages: true,
                mac_mul: MacMul::Mult18x18d,
            },
            other => return Err(ConfigError::UnknownPreset(other.to_string())),
        };
        c.validate()?;
        Ok(c)
    }

    /// Parses and validates a TOML config.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let c: AccelConfig = toml::from_str(text).map_err(|e| ConfigError::Read {
            path: "<toml>".into(),
            why: one_line(e.message()),
        })?;
        c.validate()?;
        Ok(c)
    }

    /// Reads and validates a TOML config file.
    pub fn from_toml_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            why: e.to_string(),
        })?;
        let mut c: AccelConfig = toml::from_str(&text).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            why: one_line(e.message()),
        })?;
        if c.name == "custom" {
            if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                c.name = stem.to_string();
            }
        }
        c.validate()?;
        Ok(c)
    }

    /// Serializes to TOML (round-trips through [`AccelConfig::from_toml_str`]).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("AccelConfig always serializes")
    }

    /// Checks every field and every cross-field rule; the error names the field and says why.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn bad(field: &'static str, why: String) -> Result<(), ConfigError> {
            Err(ConfigError::Field { field, why })
        }
        fn range(field: &'static str, v: u32, lo: u32, hi: u32) -> Result<(), ConfigError> {
            if v < lo || v > hi {
                return bad(field, format!("{v} is outside {lo}..={hi}"));
            }
            Ok(())
        }
        fn pow2(field: &'static str, v: u32, lo: u32, hi: u32) -> Result<(), ConfigError> {
            range(field, v, lo, hi)?;
            if !v.is_power_of_two() {
                return bad(field, format!("{v} is not a power of two"));
            }
            Ok(())
        }
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        {
            return bad(
                "name",
                format!(
                    "{:?} must be non-empty ASCII letters, digits, '_', '-' or '.'",
                    self.name
                ),
            );
        }
        range("lanes", self.lanes, 1, 64)?;
        range("act_bits", self.act_bits, 4, 8)?;
        range("basis_bits", self.basis_bits, 4, 8)?;
        range("exp_bits", self.exp_bits, 2, 4)?;
        range("acc_bits", self.acc_bits, 16, 40)?;
        range("rows_per_block", self.rows_per_block, 1, 1024)?;
        pow2("act_depth", self.act_depth, 4, 65536)?;
        pow2("coef_depth", self.coef_depth, 4, 65536)?;
        pow2("b_depth", self.b_depth, 2, 65536)?;
        pow2("out_depth", self.out_depth, 2, 65536)?;
        range("slots", self.slots, 1, 16)?;
        if self.out_depth < self.lanes * self.slots {
            return bad(
                "out_depth",
                format!(
                    "{} holds less than one tile of lanes × slots = {} × {} outputs",
                    self.out_depth, self.lanes, self.slots
                ),
            );
        }
        if self.is_dense() && self.weight_requant != WeightRequant::Int8 {
            return bad(
                "weight_requant",
                "the dense baseline stores int8 weights, so it needs weight_requant = \"int8\""
                    .to_string(),
            );
        }
        if self.is_factorized() && self.is_dense() {
            return bad(
                "dataflow",
                "the dense baseline streams int8 weights, not Ce codes to factor: it needs \
                 dataflow = \"rebuild\""
                    .to_string(),
            );
        }
        if self.is_factorized() && self.weight_requant != WeightRequant::Exact {
            return bad(
                "dataflow",
                "\"factorized\" never forms the rebuilt weights, so it cannot requantize them \
                 to int8: it needs weight_requant = \"exact\""
                    .to_string(),
            );
        }
        if self.mac_mul == MacMul::Mult18x18d {
            if self.is_factorized() {
                return bad(
                    "mac_mul",
                    "the factorized lane has no MAC multipliers: \"mult18x18d\" needs \
                     dataflow = \"rebuild\""
                        .to_string(),
                );
            }
            if !self.extra_stages {
                return bad(
                    "mac_mul",
                    "\"mult18x18d\" takes the place of the extra stages' product register: it \
                     needs extra_stages = true"
                        .to_string(),
                );
            }
            if self.mac_weight_bits() > 18 {
                return bad(
                    "mac_mul",
                    format!(
                        "\"mult18x18d\" multiplies 18-bit operands, but the MAC weights are {} bits \
                         (weight_requant = \"exact\"; \"int8\" makes them 8)",
                        self.mac_weight_bits()
                    ),
                );
            }
        }
        let need = self.acc_bits_required();
        if self.acc_bits < need {
            return bad(
                "acc_bits",
                format!(
                    "{} is below the worst-case growth of {need} bits for a layer of act_depth = {} \
                     rows (3 × rows × max|x| × max|w| with {}-bit activations and {} weights)",
                    self.acc_bits,
                    self.act_depth,
                    self.act_bits,
                    match self.weight_requant {
                        WeightRequant::Int8 => "int8-requantized".to_string(),
                        WeightRequant::Exact => format!("{}-bit exact", self.rebuild_bits()),
                    }
                ),
            );
        }
        if self.coef_word_bits() > 4096 || self.b_word_bits() > 4096 {
            return bad(
                "lanes",
                format!(
                    "{} lanes make a buffer word wider than 4096 bits",
                    self.lanes
                ),
            );
        }
        Ok(())
    }

    /// This configuration on the factorized dataflow, same name: exact weights (its lanes never
    /// form a weight to requantize), the accumulator those need (at least the current one) and
    /// inferred multipliers (it has no MAC multipliers for `mac_mul`). Not validated: the
    /// accumulator may need more than 40 bits.
    pub fn on_factorized_dataflow(&self) -> AccelConfig {
        let mut c = self.clone();
        c.dataflow = Dataflow::Factorized;
        c.weight_requant = WeightRequant::Exact;
        c.mac_mul = MacMul::Inferred;
        c.acc_bits = c.acc_bits.max(c.acc_bits_required());
        c
    }

    /// The dense int8 baseline of this configuration: same lanes, buffer depths, accumulator and
    /// output stage; named `<name>-dense`.
    pub fn dense_baseline(&self) -> AccelConfig {
        let mut c = self.clone();
        if !self.is_dense() {
            c.name = format!("{}-dense", self.name);
        }
        c.weight_format = WeightFormat::Dense;
        c.weight_requant = WeightRequant::Int8;
        c.dataflow = Dataflow::Rebuild;
        c
    }

    // ---- derived quantities (never configured) ----

    /// The dense int8 baseline (no rebuild engine, no basis or weight-shift buffers).
    pub fn is_dense(&self) -> bool {
        self.weight_format == WeightFormat::Dense
    }

    /// The factorized dataflow (docs/numerics.md §4b).
    pub fn is_factorized(&self) -> bool {
        self.dataflow == Dataflow::Factorized
    }

    /// Most rows one block can present to a factorized lane between two flushes: a flush ends
    /// every block segment, and a segment lies inside one tile of one run, whose present rows
    /// are distinct activation rows (at most `act_depth`) and stream entries (at most
    /// `coef_depth`). Bounds the block accumulators whatever a layer's `rows_per_block`.
    pub fn factor_rows_max(&self) -> u32 {
        self.act_depth.min(self.coef_depth)
    }

    /// Width of one exact per-row term `Ce·x = ±x·2^code`: |term| ≤ 2^(act_bits−1+code_max),
    /// reached by −(−2^(act_bits−1))·2^code_max, so act_bits + code_max + 1 signed bits.
    pub fn factor_term_bits(&self) -> u32 {
        signed_bits_for(1u128 << (self.act_bits - 1 + self.code_max()))
    }

    /// Width of a factorized lane's block accumulator `acc[k][j] = Σ_r Ce[r][k]·x[r][j]`: at
    /// most [`factor_rows_max`](Self::factor_rows_max) terms of |term| ≤ 2^(act_bits−1+code_max).
    pub fn factor_acc_bits(&self) -> u32 {
        let bound = u128::from(self.factor_rows_max()) << (self.act_bits - 1 + self.code_max());
        signed_bits_for(bound)
    }

    /// Width of one block product `B[k][j]·acc[k][j]` (exact: basis_bits + factor_acc_bits).
    pub fn factor_product_bits(&self) -> u32 {
        self.basis_bits + self.factor_acc_bits()
    }

    /// The basis buffer exists (SmartDeal only).
    pub fn has_basis(&self) -> bool {
        !self.is_dense()
    }

    /// The weight-shift buffer exists (SmartDeal in int8 mode).
    pub fn has_wshift(&self) -> bool {
        !self.is_dense() && self.weight_requant == WeightRequant::Int8
    }

    /// Largest exponent code, `2^exp_bits - 1`.
    pub fn code_max(&self) -> u32 {
        (1 << self.exp_bits) - 1
    }

    /// Width of one stream element: an encoded Ce element (present bit + sign bit + code), or an
    /// int8 weight in the dense baseline.
    pub fn coef_elem_bits(&self) -> u32 {
        if self.is_dense() {
            8
        } else {
            2 + self.exp_bits
        }
    }

    /// Width of an exactly rebuilt weight `Σ_k ±B[k][j] << code_k`:
    /// basis_bits + code_max (shift) + 2 (sum of three terms, and the negated minimum).
    pub fn rebuild_bits(&self) -> u32 {
        self.basis_bits + self.code_max() + 2
    }

    /// Largest per-channel weight-requant shift: brings a rebuilt weight down to 8 bits.
    pub fn wshift_max(&self) -> u32 {
        self.rebuild_bits() - 8
    }

    /// Width of the per-channel weight-requant shift field.
    pub fn wshift_bits(&self) -> u32 {
        clog2(u64::from(self.wshift_max()) + 1)
    }

    /// Width of the weight operand of the MAC array.
    pub fn mac_weight_bits(&self) -> u32 {
        match self.weight_requant {
            WeightRequant::Int8 => 8,
            WeightRequant::Exact => self.rebuild_bits(),
        }
    }

    /// Largest |weight| the MAC array can see.
    pub fn max_abs_mac_weight(&self) -> u128 {
        match self.weight_requant {
            WeightRequant::Int8 => 128,
            // |Σ_k ±B·2^code| ≤ 3 · 2^(basis_bits-1) · 2^code_max
            WeightRequant::Exact => 3u128 << (self.basis_bits - 1 + self.code_max()),
        }
    }

    /// Accumulator width that no layer fitting the activation buffer can overflow.
    pub fn acc_bits_required(&self) -> u32 {
        let max_x = 1u128 << (self.act_bits - 1);
        let bound = 3 * u128::from(self.act_depth) * max_x * self.max_abs_mac_weight();
        signed_bits_for(bound)
    }

    /// Tiles of `lanes` output channels the weight-shift buffer holds (`out_depth / lanes`).
    pub fn wshift_depth(&self) -> u32 {
        self.out_depth.div_ceil(self.lanes)
    }

    /// Address widths of the buffers.
    pub fn act_addr_bits(&self) -> u32 {
        clog2(u64::from(self.act_depth))
    }
    pub fn coef_addr_bits(&self) -> u32 {
        clog2(u64::from(self.coef_depth))
    }
    pub fn b_addr_bits(&self) -> u32 {
        clog2(u64::from(self.b_depth))
    }
    pub fn out_addr_bits(&self) -> u32 {
        clog2(u64::from(self.out_depth))
    }
    pub fn wshift_addr_bits(&self) -> u32 {
        clog2(u64::from(self.wshift_depth()))
    }

    /// Coefficient stream entry layout, LSB first (see docs/interface.md):
    /// `[lane codes: lanes × 3 × coef_elem_bits][bsel: b_addr_bits][row: act_addr_bits][kh: 2]
    /// [first][last]`.
    pub fn coef_word_bits(&self) -> u32 {
        self.coef_codes_bits() + self.bsel_bits() + self.act_addr_bits() + KH_BITS + 2
    }

    /// Output tiles of `lanes` channels one run can produce: each takes `lanes × slots` output
    /// buffer entries.
    pub fn tiles_per_run(&self) -> u32 {
        self.out_depth / (self.lanes * self.slots)
    }

    /// A convolution run's band parameters (PUSHed before START, docs/interface.md):
    /// `[base0][base1][base2]` activation addresses (`act_addr_bits` each), the 3-bit mask of
    /// kernel rows inside the image, then the run's pixel groups minus one (`out_addr_bits`).
    pub fn band_param_bits(&self) -> u32 {
        3 * self.act_addr_bits() + 3 + self.out_addr_bits()
    }
    /// Width of the entry's basis-select field: `b_addr_bits`, or 0 in the dense baseline.
    pub fn bsel_bits(&self) -> u32 {
        if self.has_basis() {
            self.b_addr_bits()
        } else {
            0
        }
    }
    /// Bits of all lanes' codes in one coefficient entry.
    pub fn coef_codes_bits(&self) -> u32 {
        self.lanes * 3 * self.coef_elem_bits()
    }
    /// Basis word: lane l's `B[k][j]` at element index `l*9 + k*3 + j`, `basis_bits` each.
    pub fn b_word_bits(&self) -> u32 {
        self.lanes * 9 * self.basis_bits
    }
    /// Weight-shift word (one tile): lane l's weight-requant shift at `l * wshift_bits`.
    pub fn wshift_word_bits(&self) -> u32 {
        self.lanes * self.wshift_bits()
    }
    /// Output-parameter word (one output channel), LSB first: `[bias: 32][mult: 16][oshift: 5]`.
    pub fn oparam_word_bits(&self) -> u32 {
        BIAS_BITS + OUT_MULT_BITS + OUT_SHIFT_BITS
    }
    /// Activation word: `3 · slots` activations. Fully connected: slot `p`'s three
    /// activations of one Ce row, `x_p[3r+j]` at `(3p + j) · act_bits`; convolution: a window of
    /// consecutive pixels of one input row and channel (docs/interface.md).
    pub fn act_word_bits(&self) -> u32 {
        3 * self.act_bits * self.slots
    }
    /// Host staging register: wide enough for any buffer word, in whole 32-bit chunks.
    pub fn staging_bits(&self) -> u32 {
        // Only the buffers this configuration has count: the dense baseline must not pay for
        // a basis word it never loads.
        let b = if self.has_basis() {
            self.b_word_bits()
        } else {
            0
        };
        let ws = if self.has_wshift() {
            self.wshift_word_bits()
        } else {
            0
        };
        let w = self
            .coef_word_bits()
            .max(b)
            .max(ws)
            .max(self.oparam_word_bits())
            .max(self.act_word_bits())
            .max(self.band_param_bits());
        w.div_ceil(32) * 32
    }

    /// A short stable fingerprint of the configuration (FNV-1a over its TOML text), written into
    /// generated file headers.
    pub fn fingerprint(&self) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.to_toml().bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        format!("{h:016x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_validate_and_round_trip_toml() {
        for p in PRESETS {
            let c = AccelConfig::preset(p).unwrap();
            let back = AccelConfig::from_toml_str(&c.to_toml()).unwrap();
            assert_eq!(c, back, "{p}");
        }
    }

    #[test]
    fn unknown_preset_is_an_error_listing_the_known_ones() {
        let e = AccelConfig::preset("zcu104").unwrap_err().to_string();
        assert!(
            e.contains("zcu104") && e.contains("tiny") && e.contains("ulx3s"),
            "{e}"
        );
    }

    #[test]
    fn validate_names_the_bad_field() {
        let base = AccelConfig::preset("tiny").unwrap();
        type Mutation = Box<dyn Fn(&mut AccelConfig)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("lanes", Box::new(|c| c.lanes = 0)),
            ("exp_bits", Box::new(|c| c.exp_bits = 5)),
            ("act_bits", Box::new(|c| c.act_bits = 9)),
            ("act_depth", Box::new(|c| c.act_depth = 100)),
            ("out_depth", Box::new(|c| c.out_depth = 2)),
            ("acc_bits", Box::new(|c| c.acc_bits = 20)),
            ("name", Box::new(|c| c.name = "a b".into())),
        ];
        for (field, f) in cases {
            let mut c = base.clone();
            f(&mut c);
            match c.validate() {
                Err(ConfigError::Field { field: got, why }) => {
                    assert_eq!(got, field, "{why}");
                    assert!(!why.is_empty());
                }
                other => panic!("{field}: expected a field error, got {other:?}"),
            }
        }
    }

    #[test]
    fn mult18x18d_needs_the_extra_stages_the_rebuild_lanes_and_18_bit_weights() {
        let field_error = |c: &AccelConfig, needle: &str| match c.validate() {
            Err(ConfigError::Field { field, why }) => {
                assert_eq!(field, "mac_mul", "{why}");
                assert!(why.contains(needle), "{why}");
            }
            other => panic!("expected a mac_mul error, got {other:?}"),
        };
        let mut c = AccelConfig::preset("tiny").unwrap();
        c.mac_mul = MacMul::Mult18x18d;
        field_error(&c, "extra_stages");
        c.extra_stages = true;
        c.validate().unwrap();
        c.dense_baseline().validate().unwrap();
        let mut f = c.clone();
        f.dataflow = Dataflow::Factorized;
        f.weight_requant = WeightRequant::Exact;
        f.acc_bits = 40;
        field_error(&f, "dataflow");
        // Made factorized the supported way, it takes inferred multipliers.
        let f = c.on_factorized_dataflow();
        assert_eq!(f.mac_mul, MacMul::Inferred);
        f.validate().unwrap();
        let mut e = c.clone();
        e.weight_requant = WeightRequant::Exact;
        e.exp_bits = 4;
        e.acc_bits = 40;
        assert!(e.mac_weight_bits() > 18, "{}", e.mac_weight_bits());
        field_error(&e, "18-bit");
        // The TOML text names it only when it is not the default.
        assert!(c.to_toml().contains("mac_mul = \"mult18x18d\""));
        c.mac_mul = MacMul::Inferred;
        assert!(!c.to_toml().contains("mac_mul"));
    }

    #[test]
    fn exact_mode_needs_a_wider_accumulator() {
        let mut c = AccelConfig::preset("tiny").unwrap();
        c.weight_requant = WeightRequant::Exact;
        // 3 · 256 · 128 · (3 · 128 · 128) = 4 831 838 208 ∈ [2^32, 2^33) → 34 signed bits.
        assert_eq!(c.acc_bits_required(), 34);
        assert!(c.validate().is_err());
        c.acc_bits = 33;
        assert!(c.validate().is_err());
        c.acc_bits = 34;
        assert!(c.validate().is_ok());
    }

    #[test]
    fn derived_widths_of_the_tiny_preset() {
        let c = AccelConfig::preset("tiny").unwrap();
        assert_eq!(c.rebuild_bits(), 17); // 8 + 7 + 2
        assert_eq!(c.wshift_max(), 9);
        assert_eq!(c.wshift_bits(), 4);
        // 3 · 256 · 128 · 128 = 12 582 912 < 2^24 → 25 signed bits
        assert_eq!(c.acc_bits_required(), 25);
        assert_eq!(c.coef_word_bits(), 4 * 3 * 5 + 7 + 8 + 2 + 2);
    }

    #[test]
    fn toml_rejects_unknown_fields_and_missing_ones() {
        let mut t = AccelConfig::preset("tiny").unwrap().to_toml();
        t.push_str("bogus = 3\n");
        let e = AccelConfig::from_toml_str(&t).unwrap_err().to_string();
        assert!(e.contains("bogus"), "{e}");
        let e = AccelConfig::from_toml_str("lanes = 4")
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing field"), "{e}");
    }

    #[test]
    fn dense_baseline_keeps_the_datapath_and_drops_the_basis() {
        let s = AccelConfig::preset("tiny").unwrap();
        let d = s.dense_baseline();
        assert!(d.validate().is_ok());
        assert_eq!(d.name, "tiny-dense");
        assert_eq!((d.lanes, d.act_depth, d.coef_depth), (4, 256, 1024));
        // 4 lanes × 3 int8 weights, no bsel, 8 row bits, first, last.
        assert_eq!(d.coef_word_bits(), 4 * 3 * 8 + 8 + 2 + 2);
        assert!(!d.has_basis() && !d.has_wshift());
        // The staging register covers the widest buffer this design has: the 108-bit entry.
        assert_eq!(d.staging_bits(), 128);
        assert_ne!(d.fingerprint(), s.fingerprint());
        let back = AccelConfig::from_toml_str(&d.to_toml()).unwrap();
        assert_eq!(back, d);
        // SmartDeal configs do not write the field, so their TOML (and fingerprint) is unchanged.
        assert!(!s.to_toml().contains("weight_format"));
        let mut bad = d.clone();
        bad.weight_requant = WeightRequant::Exact;
        match bad.validate() {
            Err(ConfigError::Field { field, .. }) => assert_eq!(field, "weight_requant"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn factorized_dataflow_needs_exact_smartdeal_and_keeps_rebuild_toml() {
        let tiny = AccelConfig::preset("tiny").unwrap();
        // Existing configs do not write the field, and TOML without it loads as rebuild.
        assert!(!tiny.to_toml().contains("dataflow"));
        assert_eq!(tiny.dataflow, Dataflow::Rebuild);
        let mut f = tiny.clone();
        f.dataflow = Dataflow::Factorized;
        let field = |c: &AccelConfig| match c.validate() {
            Err(ConfigError::Field { field, why }) => {
                assert!(!why.contains('\n'), "{why}");
                field
            }
            other => panic!("{other:?}"),
        };
        // int8 weight requant is refused, naming the field.
        assert_eq!(field(&f), "dataflow");
        let e = f.validate().unwrap_err().to_string();
        assert!(e.contains("weight_requant = \"exact\""), "{e}");
        f.weight_requant = WeightRequant::Exact;
        assert_eq!(field(&f), "acc_bits"); // exact mode's 34 bits
        f.acc_bits = 34;
        f.validate().unwrap();
        let text = f.to_toml();
        assert!(text.contains("dataflow = \"factorized\""), "{text}");
        assert_eq!(AccelConfig::from_toml_str(&text).unwrap(), f);
        assert_ne!(f.fingerprint(), tiny.fingerprint());
        // Its dense baseline is the plain dense design.
        assert_eq!(f.dense_baseline().dataflow, Dataflow::Rebuild);
        f.dense_baseline().validate().unwrap();
        let mut d = f.clone();
        d.weight_format = WeightFormat::Dense;
        d.weight_requant = WeightRequant::Int8;
        assert_eq!(field(&d), "dataflow");
        let e = AccelConfig::from_toml_str(&text.replace("factorized", "dense"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("dense"), "{e}");
    }

    #[test]
    fn factorized_widths() {
        let mut c = AccelConfig::preset("tiny").unwrap();
        c.dataflow = Dataflow::Factorized;
        c.weight_requant = WeightRequant::Exact;
        c.acc_bits = 34;
        // min(act_depth 256, coef_depth 1024) rows of |±x·2^code| ≤ 128 · 128 = 2^14:
        // |acc| ≤ 2^22 → 24 signed bits; a term alone 2^14 → 16 bits; B·acc 8 + 24 bits.
        assert_eq!(c.factor_rows_max(), 256);
        assert_eq!(c.factor_term_bits(), 16);
        assert_eq!(c.factor_acc_bits(), 24);
        assert_eq!(c.factor_product_bits(), 32);
        c.coef_depth = 64;
        assert_eq!(c.factor_acc_bits(), 22);
    }

    #[test]
    fn signed_bits_for_edges() {
        assert_eq!(signed_bits_for(0), 1);
        assert_eq!(signed_bits_for(1), 2);
        assert_eq!(signed_bits_for(127), 8);
        assert_eq!(signed_bits_for(128), 9);
        assert_eq!(clog2(1), 1);
        assert_eq!(clog2(256), 8);
        assert_eq!(clog2(257), 9);
    }
}
