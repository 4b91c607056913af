//! The `.sdm` compressed-model file: a versioned, checksummed binary container for a [`Model`].
//!
//! The byte layout is specified in `docs/sdm-format.md`; this module is its reference
//! implementation. In short:
//!
//! ```text
//! header   magic "SDMODEL\0" | u16 version (1, or 2 with convolutions) | u16 flags = 0 | u32 layer count | u64 payload length
//! payload  one record per layer (kind, name, shape, [convolution shape,] row bitmap, basis,
//!          coefficient bit stream, per-channel parameters)
//! trailer  u32 CRC-32 (IEEE) of every preceding byte
//! ```
//!
//! A file with a convolution layer (kind 1, [`FcLayer::conv`] set) is version 2; a file without
//! one is version 1, byte for byte what version 1 writers wrote.
//!
//! All integers are little-endian; bit streams are packed LSB first. The encoding is canonical:
//! every valid model has exactly one encoding and [`read_model`] accepts nothing else (reserved
//! and padding bits must be zero, lengths must be exact), so `write_model(&read_model(b)?)` is `b`.
//!
//! [`read_model`] never panics on any input. It allocates a layer only after that layer's
//! fixed-size sections (bitmap, basis, per-channel) are known to fit in the bytes that remain, and
//! a layer may hold at most [`MAX_WEIGHTS`] coefficient slots.

use crate::layer::{Coef, ConvShape, FcLayer, LayerError, Model};
use crate::sdm_conv;
use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;
use thiserror::Error;

/// The first 8 bytes of every `.sdm` file.
pub const MAGIC: [u8; 8] = *b"SDMODEL\0";
pub use crate::sdm_conv::{LAYER_KIND_CONV, LAYER_KIND_FC, VERSION_CONV, VERSION_FC};
/// The newest format version; this module reads versions [`VERSION_FC`]`..=VERSION`.
pub const VERSION: u16 = VERSION_CONV;
/// Bytes of the file header (magic, version, flags, layer count, payload length).
pub const HEADER_LEN: usize = 24;
/// Bytes of the trailer (CRC-32).
pub const TRAILER_LEN: usize = 4;
/// Largest number of coefficient slots (`outputs × 3 × ceil(inputs / 3)`, i.e. weights including
/// the zero padding of the last Ce row) a layer may have, for writing and reading alike.
/// 2^26 (67 M weights, 16× a 4096 × 1024 layer) bounds what a small crafted file with all rows
/// absent can make the reader allocate (absent rows cost no bytes) to a few hundred MB.
pub const MAX_WEIGHTS: u64 = 1 << 26;

/// Layer flag bit 0: apply ReLU. The other 7 bits are reserved and must be 0.
const LAYER_FLAG_RELU: u8 = 1;
/// Bytes of a layer record header apart from the name: kind (1), name length (2), inputs,
/// outputs, rows_per_block, group_size (4 each), exp_bits, e_lo, flags (1 each).
const LAYER_FIXED_LEN: u64 = 22;
/// Bytes of the per-channel section per output channel: wshift (1), bias (4), out_mult (2),
/// out_shift (1).
const PER_CHANNEL_LEN: u64 = 8;

/// Why a model cannot be written, or a byte string is not a valid `.sdm` file.
///
/// Every message is one line saying what is wrong and where (layer index and name once known,
/// absolute byte offset in the file where useful).
#[derive(Debug, Error)]
pub enum SdmError {
    /// The file does not start with [`MAGIC`].
    #[error("not an .sdm file: it starts with \"{found}\" instead of the magic \"SDMODEL\\0\"")]
    BadMagic {
        /// The first (up to 8) bytes, escaped.
        found: String,
    },
    /// The header names a format version this reader does not know.
    #[error(
        "unsupported .sdm format version {found} (this reader supports versions {} and {})",
        VERSION_FC,
        VERSION_CONV
    )]
    UnsupportedVersion { found: u16 },
    /// A version 2 file without a convolution layer (its canonical encoding is version 1).
    #[error(
        "format version {} at byte 8 is for files with convolution layers, and none of this \
         file's {layer_count} layers is one (such a file is version {})",
        VERSION_CONV,
        VERSION_FC
    )]
    VersionWithoutConv { layer_count: u32 },
    /// The file ends before something it declares.
    #[error("truncated file: {what} at byte {offset} needs {need} bytes but only {have} remain")]
    Truncated {
        what: String,
        offset: u64,
        need: u64,
        have: u64,
    },
    /// Bytes left over after the structure the header declares.
    #[error("{count} unexpected trailing bytes at byte {offset} ({after})")]
    TrailingBytes {
        after: String,
        offset: u64,
        count: u64,
    },
    /// The trailer CRC does not match the bytes.
    #[error("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    ChecksumMismatch { stored: u32, computed: u32 },
    /// A reserved or padding bit is set.
    #[error("reserved bits set in {what} at byte {offset}: {value:#x}")]
    ReservedBits {
        what: String,
        offset: u64,
        value: u64,
    },
    /// A layer record's kind byte is neither [`LAYER_KIND_FC`] nor [`LAYER_KIND_CONV`].
    #[error(
        "layer {index}: unsupported layer kind {kind} at byte {offset} \
         (0 = fully connected and 1 = convolution are defined)"
    )]
    UnsupportedLayerKind { index: usize, kind: u8, offset: u64 },
    /// A convolution record in a version 1 file.
    #[error(
        "layer {index}: layer kind 1 (convolution) at byte {offset} needs format version {}, \
         but the file is version {}",
        VERSION_CONV,
        VERSION_FC
    )]
    ConvNeedsVersion2 { index: usize, offset: u64 },
    /// A layer name is not UTF-8.
    #[error("layer {index}: name at byte {offset} is not valid UTF-8 ({why})")]
    InvalidName {
        index: usize,
        offset: u64,
        why: String,
    },
    /// A layer header field has a value the format does not allow.
    #[error("{layer}: field `{field}` at byte {offset}: {why}")]
    BadField {
        layer: String,
        field: &'static str,
        offset: u64,
        why: String,
    },
    /// A layer has more coefficient slots than [`MAX_WEIGHTS`].
    #[error(
        "{layer}: {outputs}×{inputs} layer has {slots} coefficient slots, above the limit of {max}"
    )]
    TooLarge {
        layer: String,
        inputs: u32,
        outputs: u32,
        slots: u64,
        max: u64,
    },
    /// The coefficient bit stream does not match the row bitmap (too short or too long).
    #[error("{layer}: coefficient stream at byte {offset}: {why}")]
    CoefStream {
        layer: String,
        offset: u64,
        why: String,
    },
    /// A decoded layer fails [`FcLayer::validate`].
    #[error("layer {index} is invalid: {error}")]
    InvalidLayer { index: usize, error: LayerError },
    /// Two layers of a file have the same name.
    #[error("layer {index}: duplicate layer name `{name}` (also the name of layer {first})")]
    DuplicateName {
        index: usize,
        first: usize,
        name: String,
    },
    /// [`write_model`] was given a model that fails [`Model::validate`].
    #[error("cannot write an invalid model: {0}")]
    InvalidModel(LayerError),
    /// [`write_model`] was given more layers than a u32 counts.
    #[error(
        "cannot write {count} layers: the header counts at most {} layers",
        u32::MAX
    )]
    TooManyLayers { count: usize },
    /// Reading or writing a file failed.
    #[error("cannot {op} {path}: {error}")]
    Io {
        op: &'static str,
        path: String,
        error: std::io::Error,
    },
    /// An error about the contents of the file at `path` ([`load`], [`save`]).
    #[error("{path}: {error}")]
    File { path: String, error: Box<SdmError> },
}

/// Exact bytes of one layer record in a `.sdm` file, by section (see `docs/sdm-format.md`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StorageStats {
    /// Record header: kind, name length and name, shape fields, exp_bits, e_lo, flags
    /// (`22 + name bytes`), and for a convolution its 7 shape bytes (`29 + name bytes`).
    pub header: u64,
    /// Row bitmap: `groups × ceil(rows / 8)`.
    pub bitmap: u64,
    /// Basis: `outputs × blocks × 9`.
    pub basis: u64,
    /// Coefficient section: the 4-byte length field plus the bit stream padded to whole bytes.
    pub coef_stream: u64,
    /// Per-channel parameters: `8 × outputs`.
    pub per_channel: u64,
    /// Sum of the sections: the whole record.
    pub total: u64,
    /// Record bits per weight: `8 × total / (inputs × outputs)`.
    pub bits_per_weight: f64,
}

/// The exact size of `layer`'s record as [`write_model`] writes it, split by section.
///
/// For a layer that passes [`FcLayer::validate`] the sizes are exact; for an inconsistent one
/// they are computed from what is there (missing bitmap rows count as absent) and never panic.
pub fn layer_storage(layer: &FcLayer) -> StorageStats {
    // Saturating arithmetic: an absurd (invalid) shape gives huge numbers, not a panic.
    let outputs = u64::from(layer.outputs);
    let rows = u64::from(layer.inputs).div_ceil(3);
    let blocks = rows.div_ceil(u64::from(layer.rows_per_block.max(1)));
    let groups = outputs.div_ceil(u64::from(layer.group_size.max(1)));
    let header = LAYER_FIXED_LEN + sdm_conv::extra_header_len(layer) + layer.name.len() as u64;
    let bitmap = groups.saturating_mul(rows.div_ceil(8));
    let basis = outputs.saturating_mul(blocks).saturating_mul(9);
    let coef_stream = 4 + coef_stream_bits(layer).div_ceil(8);
    let per_channel = PER_CHANNEL_LEN * outputs;
    let total = [bitmap, basis, coef_stream, per_channel]
        .into_iter()
        .fold(header, u64::saturating_add);
    let weights = (u64::from(layer.inputs) * outputs).max(1);
    StorageStats {
        header,
        bitmap,
        basis,
        coef_stream,
        per_channel,
        total,
        bits_per_weight: total as f64 * 8.0 / weights as f64,
    }
}

/// Bits of `layer`'s coefficient stream before padding (what the writer emits for a valid layer;
/// never panics on an invalid one).
fn coef_stream_bits(layer: &FcLayer) -> u64 {
    let rows = layer.rows();
    let gs = layer.group_size.max(1) as usize;
    let channels = (layer.outputs as usize).min(layer.row_present.len().saturating_mul(gs));
    let elem_bits = 1 + u64::from(layer.exp_bits);
    let mut bits = 0u64;
    for o in 0..channels {
        let bitmap = &layer.row_present[o / gs];
        for (r, _) in bitmap.iter().take(rows).enumerate().filter(|(_, p)| **p) {
            let first = o.saturating_mul(rows).saturating_add(r).saturating_mul(3);
            let nonzero = layer
                .coef
                .get(first..first.saturating_add(3))
                .map_or(0, |row| row.iter().filter(|c| **c != Coef::Zero).count());
            bits = bits.saturating_add(3 + nonzero as u64 * elem_bits);
        }
    }
    bits
}

// ---------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------

/// Encodes `model` as a `.sdm` file. The model is validated first ([`Model::validate`]).
pub fn write_model(model: &Model) -> Result<Vec<u8>, SdmError> {
    model.validate().map_err(SdmError::InvalidModel)?;
    let count = u32::try_from(model.layers.len()).map_err(|_| SdmError::TooManyLayers {
        count: model.layers.len(),
    })?;
    let mut payload = Vec::new();
    for (index, layer) in model.layers.iter().enumerate() {
        write_layer(&mut payload, layer, index)?;
    }
    let version = sdm_conv::file_version(model);
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len() + TRAILER_LEN);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// Appends the record of a validated layer.
fn write_layer(out: &mut Vec<u8>, layer: &FcLayer, index: usize) -> Result<(), SdmError> {
    let rows = layer.rows();
    let slots = u64::from(layer.outputs) * rows as u64 * 3;
    if slots > MAX_WEIGHTS {
        return Err(SdmError::TooLarge {
            layer: label(index, &layer.name),
            inputs: layer.inputs,
            outputs: layer.outputs,
            slots,
            max: MAX_WEIGHTS,
        });
    }
    out.push(sdm_conv::layer_kind(layer));
    // `validate` bounds names to 255 bytes.
    out.extend_from_slice(&(layer.name.len() as u16).to_le_bytes());
    out.extend_from_slice(layer.name.as_bytes());
    for v in [
        layer.inputs,
        layer.outputs,
        layer.rows_per_block,
        layer.group_size,
    ] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.push(layer.exp_bits);
    out.extend_from_slice(&layer.e_lo.to_le_bytes());
    out.push(if layer.relu { LAYER_FLAG_RELU } else { 0 });
    if let Some(c) = &layer.conv {
        out.extend_from_slice(&sdm_conv::encode(c));
    }

    // 1. Row bitmap: each group's `rows` bits LSB first, padded to whole bytes.
    for group in &layer.row_present {
        let start = out.len();
        out.resize(start + rows.div_ceil(8), 0);
        for (r, _) in group.iter().enumerate().filter(|(_, p)| **p) {
            out[start + r / 8] |= 1 << (r % 8);
        }
    }
    // 2. Basis: B[k][j] row-major, channel-major.
    for b in &layer.basis {
        out.extend(b.iter().flatten().map(|v| v.to_le_bytes()[0]));
    }
    // 3. Coefficient stream, preceded by its byte length.
    let mut bits = BitWriter::default();
    for o in 0..layer.outputs as usize {
        for r in (0..rows).filter(|&r| layer.row_is_present(o, r)) {
            let row = layer.coef_row(o, r);
            let mask = (0..3)
                .filter(|&k| row[k] != Coef::Zero)
                .fold(0u32, |m, k| m | 1 << k);
            bits.put(mask, 3);
            for c in row {
                if let Coef::Pow2 { neg, code } = c {
                    bits.put(u32::from(neg), 1);
                    bits.put(u32::from(code), u32::from(layer.exp_bits));
                }
            }
        }
    }
    let stream_len = u32::try_from(bits.bytes.len()).map_err(|_| SdmError::TooLarge {
        layer: label(index, &layer.name),
        inputs: layer.inputs,
        outputs: layer.outputs,
        slots,
        max: MAX_WEIGHTS,
    })?;
    out.extend_from_slice(&stream_len.to_le_bytes());
    out.extend_from_slice(&bits.bytes);
    // 4. Per-channel parameters, one array per field.
    out.extend_from_slice(&layer.wshift);
    for b in &layer.bias {
        out.extend_from_slice(&b.to_le_bytes());
    }
    for m in &layer.out_mult {
        out.extend_from_slice(&m.to_le_bytes());
    }
    out.extend_from_slice(&layer.out_shift);
    Ok(())
}

/// LSB-first bit packer.
#[derive(Default)]
struct BitWriter {
    bytes: Vec<u8>,
    bit: usize,
}

impl BitWriter {
    /// Appends the low `n` bits of `v`, least significant first.
    fn put(&mut self, v: u32, n: u32) {
        for i in 0..n {
            if self.bit == 8 * self.bytes.len() {
                self.bytes.push(0);
            }
            if v >> i & 1 == 1 {
                self.bytes[self.bit / 8] |= 1 << (self.bit % 8);
            }
            self.bit += 1;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

/// Decodes a `.sdm` file. Never panics; every malformation is an [`SdmError`].
///
/// Checks, in order: magic, version, file flags, total length against the header's payload
/// length, CRC, then each layer record (structure, a convolution only in a version 2 file,
/// reserved bits, exact section lengths, [`FcLayer::validate`]) and unique layer names, that the
/// records fill the payload exactly, and that a version 2 file has a convolution.
pub fn read_model(bytes: &[u8]) -> Result<Model, SdmError> {
    let n = bytes.len();
    let magic_len = n.min(MAGIC.len());
    if bytes[..magic_len] != MAGIC[..magic_len] {
        return Err(SdmError::BadMagic {
            found: bytes[..magic_len].escape_ascii().to_string(),
        });
    }
    if n < HEADER_LEN + TRAILER_LEN {
        return Err(SdmError::Truncated {
            what: "file header and CRC trailer".into(),
            offset: 0,
            need: (HEADER_LEN + TRAILER_LEN) as u64,
            have: n as u64,
        });
    }
    let le_u16 = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
    let le_u32 =
        |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let version = le_u16(8);
    if !(VERSION_FC..=VERSION).contains(&version) {
        return Err(SdmError::UnsupportedVersion { found: version });
    }
    let flags = le_u16(10);
    if flags != 0 {
        return Err(SdmError::ReservedBits {
            what: "file header flags".into(),
            offset: 10,
            value: u64::from(flags),
        });
    }
    let layer_count = le_u32(12);
    let mut len_bytes = [0u8; 8];
    len_bytes.copy_from_slice(&bytes[16..24]);
    let payload_len = u64::from_le_bytes(len_bytes);
    let available = (n - HEADER_LEN - TRAILER_LEN) as u64;
    if payload_len > available {
        return Err(SdmError::Truncated {
            what: format!("payload of {payload_len} bytes plus CRC trailer"),
            offset: HEADER_LEN as u64,
            need: payload_len.saturating_add(TRAILER_LEN as u64),
            have: (n - HEADER_LEN) as u64,
        });
    }
    if payload_len < available {
        return Err(SdmError::TrailingBytes {
            after: format!(
                "the file ends at byte {} by its header's payload length of {payload_len}",
                HEADER_LEN as u64 + payload_len + TRAILER_LEN as u64
            ),
            offset: HEADER_LEN as u64 + payload_len + TRAILER_LEN as u64,
            count: available - payload_len,
        });
    }
    let stored = le_u32(n - TRAILER_LEN);
    let computed = crc32fast::hash(&bytes[..n - TRAILER_LEN]);
    if stored != computed {
        return Err(SdmError::ChecksumMismatch { stored, computed });
    }

    let mut r = Reader {
        buf: &bytes[HEADER_LEN..n - TRAILER_LEN],
        pos: 0,
        base: HEADER_LEN as u64,
        ctx: String::new(),
    };
    let mut layers = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    for index in 0..layer_count as usize {
        let layer = read_layer(&mut r, index, version)?;
        if let Some(&first) = names.get(&layer.name) {
            return Err(SdmError::DuplicateName {
                index,
                first,
                name: layer.name.escape_debug().to_string(),
            });
        }
        names.insert(layer.name.clone(), index);
        layers.push(layer);
    }
    if r.remaining() > 0 {
        return Err(SdmError::TrailingBytes {
            after: format!("in the payload after the last of {layer_count} layers"),
            offset: r.offset(),
            count: r.remaining() as u64,
        });
    }
    if version == VERSION_CONV && layers.iter().all(|l| l.conv.is_none()) {
        return Err(SdmError::VersionWithoutConv { layer_count });
    }
    Ok(Model { layers })
}

/// "layer 3 `fc1`", with the name escaped so messages stay on one line.
fn label(index: usize, name: &str) -> String {
    format!("layer {index} `{}`", name.escape_debug())
}

/// A bounds-checked little-endian cursor over the payload.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// File offset of `buf[0]`.
    base: u64,
    /// Prefix of truncation messages ("layer 0 `fc1`").
    ctx: String,
}

impl<'a> Reader<'a> {
    fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, len: usize, what: &str) -> Result<&'a [u8], SdmError> {
        if len > self.remaining() {
            return Err(SdmError::Truncated {
                what: format!("{} {what}", self.ctx),
                offset: self.offset(),
                need: len as u64,
                have: self.remaining() as u64,
            });
        }
        let s = &self.buf[self.pos..self.pos + len];
        self.pos += len;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], SdmError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    fn u8(&mut self, what: &str) -> Result<u8, SdmError> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16, SdmError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    fn u32(&mut self, what: &str) -> Result<u32, SdmError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
}

/// Reads and validates one layer record of a file of format `version`.
fn read_layer(r: &mut Reader<'_>, index: usize, version: u16) -> Result<FcLayer, SdmError> {
    let head = read_layer_fields(r, index, version)?;
    let sizes = layer_sizes(r, &head)?;
    let o_count = head.outputs as usize;

    // 1. Row bitmap.
    let bitmap = read_row_bitmap(r, &head.label, &sizes)?;

    // 2. Basis: 9 int8 entries per block, row-major.
    let basis = r
        .take(sizes.basis_len, "basis")?
        .chunks_exact(9)
        .map(|c| {
            let v = |i: usize| i8::from_le_bytes([c[i]]);
            [[v(0), v(1), v(2)], [v(3), v(4), v(5)], [v(6), v(7), v(8)]]
        })
        .collect();

    // 3. Coefficient stream.
    let coef = read_coef_stream(r, &head, &sizes, &bitmap.present_rows)?;

    // 4. Per-channel parameters: wshift u8, bias i32, out_mult u16, out_shift u8.
    let wshift = r.take(o_count, "wshift")?.to_vec();
    let bias = r
        .take(4 * o_count, "bias")?
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let out_mult = r
        .take(2 * o_count, "out_mult")?
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let out_shift = r.take(o_count, "out_shift")?.to_vec();

    let decoded = FcLayer {
        name: head.name,
        inputs: head.inputs,
        outputs: head.outputs,
        rows_per_block: head.rows_per_block,
        group_size: head.group_size,
        exp_bits: head.exp_bits,
        e_lo: head.e_lo,
        relu: head.relu,
        row_present: bitmap.row_present,
        basis,
        coef,
        wshift,
        bias,
        out_mult,
        out_shift,
        conv: head.conv,
    };
    decoded
        .validate()
        .map_err(|error| SdmError::InvalidLayer { index, error })?;
    Ok(decoded)
}

/// The fixed-size fields at the start of a layer record, each checked on its own.
struct LayerFields {
    name: String,
    /// "layer 3 `fc1`", for messages.
    label: String,
    inputs: u32,
    outputs: u32,
    rows_per_block: u32,
    group_size: u32,
    exp_bits: u8,
    e_lo: i8,
    relu: bool,
    /// The shape bytes of a convolution record (kind 1).
    conv: Option<ConvShape>,
}

/// Reads the kind, name and shape fields of layer `index` (and a convolution's shape bytes) in a
/// file of format `version`, and points `r`'s messages at the layer by name once it is known.
fn read_layer_fields(
    r: &mut Reader<'_>,
    index: usize,
    version: u16,
) -> Result<LayerFields, SdmError> {
    r.ctx = format!("layer {index}");
    let kind_at = r.offset();
    let is_conv = match r.u8("kind")? {
        LAYER_KIND_FC => false,
        LAYER_KIND_CONV if version >= VERSION_CONV => true,
        LAYER_KIND_CONV => {
            return Err(SdmError::ConvNeedsVersion2 {
                index,
                offset: kind_at,
            })
        }
        kind => {
            return Err(SdmError::UnsupportedLayerKind {
                index,
                kind,
                offset: kind_at,
            })
        }
    };
    let name_len = r.u16("name length")?;
    let name_at = r.offset();
    let name = std::str::from_utf8(r.take(usize::from(name_len), "name")?)
        .map_err(|e| SdmError::InvalidName {
            index,
            offset: name_at,
            why: e.to_string(),
        })?
        .to_string();
    let layer = label(index, &name);
    r.ctx.clone_from(&layer);

    let bad = |field: &'static str, offset: u64, why: String| SdmError::BadField {
        layer: layer.clone(),
        field,
        offset,
        why,
    };
    let fields_at = r.offset();
    let inputs = r.u32("inputs")?;
    let outputs = r.u32("outputs")?;
    let rows_per_block = r.u32("rows_per_block")?;
    let group_size = r.u32("group_size")?;
    let exp_bits = r.u8("exp_bits")?;
    let e_lo = i8::from_le_bytes(r.array("e_lo")?);
    let flags_at = r.offset();
    let flags = r.u8("flags")?;
    for (i, (field, v)) in [
        ("inputs", inputs),
        ("outputs", outputs),
        ("rows_per_block", rows_per_block),
        ("group_size", group_size),
    ]
    .into_iter()
    .enumerate()
    {
        if v == 0 {
            return Err(bad(
                field,
                fields_at + 4 * i as u64,
                "must be at least 1".into(),
            ));
        }
    }
    if !(2..=4).contains(&exp_bits) {
        return Err(bad(
            "exp_bits",
            fields_at + 16,
            format!("{exp_bits} is outside 2..=4"),
        ));
    }
    if flags & !LAYER_FLAG_RELU != 0 {
        return Err(SdmError::ReservedBits {
            what: format!("{layer} flags"),
            offset: flags_at,
            value: u64::from(flags & !LAYER_FLAG_RELU),
        });
    }
    let conv = if is_conv {
        let at = r.offset();
        let bytes = r.array("convolution shape (in_channels, kernel, stride, padding)")?;
        Some(
            sdm_conv::decode(bytes, at, inputs).map_err(|(field, offset, why)| {
                SdmError::BadField {
                    layer: layer.clone(),
                    field,
                    offset,
                    why,
                }
            })?,
        )
    } else {
        None
    };
    Ok(LayerFields {
        name,
        label: layer,
        inputs,
        outputs,
        rows_per_block,
        group_size,
        exp_bits,
        e_lo,
        relu: flags & LAYER_FLAG_RELU != 0,
        conv,
    })
}

/// A layer's section sizes, derived from its fields and known to fit (`coef` in
/// [`MAX_WEIGHTS`], the fixed-size sections in the bytes that remain).
struct LayerSizes {
    /// Ce rows per output channel, `ceil(inputs / 3)`.
    rows: usize,
    /// Coefficient slots, `outputs · rows · 3`.
    slots: usize,
    /// Bitmap groups, `ceil(outputs / group_size)`.
    groups: usize,
    /// Bytes of one group's bitmap, one bit per row.
    row_bytes: usize,
    bitmap_len: usize,
    basis_len: usize,
    /// Bytes of the per-channel section.
    channel_len: u64,
}

/// Computes the section sizes of `head`'s layer and checks them against [`MAX_WEIGHTS`] and the
/// bytes left in `r`, before anything is allocated.
fn layer_sizes(r: &Reader<'_>, head: &LayerFields) -> Result<LayerSizes, SdmError> {
    let (inputs, outputs) = (head.inputs, head.outputs);
    // Sizes, in u64 so that no product overflows before the checks; after the slot cap every
    // count below fits easily.
    let rows = u64::from(inputs).div_ceil(3);
    let slots = u64::from(outputs) * rows * 3;
    if slots > MAX_WEIGHTS {
        return Err(SdmError::TooLarge {
            layer: head.label.clone(),
            inputs,
            outputs,
            slots,
            max: MAX_WEIGHTS,
        });
    }
    let blocks = rows.div_ceil(u64::from(head.rows_per_block));
    let groups = u64::from(outputs).div_ceil(u64::from(head.group_size));
    let row_bytes = rows.div_ceil(8);
    let bitmap_len = groups * row_bytes;
    let basis_len = u64::from(outputs) * blocks * 9;
    let channel_len = u64::from(outputs) * PER_CHANNEL_LEN;
    let fixed = bitmap_len + basis_len + 4 + channel_len;
    if fixed > r.remaining() as u64 {
        return Err(SdmError::Truncated {
            what: format!(
                "{} sections ({outputs}×{inputs}, {groups} bitmap groups, {blocks} blocks \
                 per channel)",
                head.label
            ),
            offset: r.offset(),
            need: fixed,
            have: r.remaining() as u64,
        });
    }
    // Everything below is bounded by the bytes that remain (or by MAX_WEIGHTS for `coef`), so
    // the u64 → usize casts are lossless.
    Ok(LayerSizes {
        rows: rows as usize,
        slots: slots as usize,
        groups: groups as usize,
        row_bytes: row_bytes as usize,
        bitmap_len: bitmap_len as usize,
        basis_len: basis_len as usize,
        channel_len,
    })
}

/// A layer's row bitmap, per group.
struct RowBitmap {
    /// Every row as a flag (`FcLayer::row_present`).
    row_present: Vec<Vec<bool>>,
    /// The indices of the present rows, the ones the coefficient stream holds.
    present_rows: Vec<Vec<usize>>,
}

/// Reads the row bitmap (per group, one bit per row, LSB first, each group padded to whole bytes
/// with zero bits).
fn read_row_bitmap(
    r: &mut Reader<'_>,
    layer: &str,
    sizes: &LayerSizes,
) -> Result<RowBitmap, SdmError> {
    let (rows, row_bytes) = (sizes.rows, sizes.row_bytes);
    let bitmap_at = r.offset();
    let bitmap = r.take(sizes.bitmap_len, "row bitmap")?;
    let mut row_present = Vec::with_capacity(sizes.groups);
    let mut present_rows: Vec<Vec<usize>> = Vec::with_capacity(sizes.groups);
    for (g, bits) in bitmap.chunks_exact(row_bytes).enumerate() {
        let group: Vec<bool> = (0..rows).map(|i| bits[i / 8] >> (i % 8) & 1 == 1).collect();
        // Bits of the group's last byte that hold rows (1..=8); the rest are padding.
        let used = rows - 8 * (row_bytes - 1);
        let pad = u64::from(bits[row_bytes - 1]) >> used << used;
        if pad != 0 {
            return Err(SdmError::ReservedBits {
                what: format!("{layer} row bitmap padding of group {g}"),
                offset: bitmap_at + ((g + 1) * row_bytes - 1) as u64,
                value: pad,
            });
        }
        present_rows.push((0..rows).filter(|&i| group[i]).collect());
        row_present.push(group);
    }
    Ok(RowBitmap {
        row_present,
        present_rows,
    })
}

/// Reads the coefficient stream (a u32 byte length, then LSB-first bits): for every present row
/// of every channel a 3-bit mask, then for each set bit a sign bit and an `exp_bits`-bit code,
/// widened to [`Coef::Pow2`]; zero padding to a whole byte, and not one byte more.
fn read_coef_stream(
    r: &mut Reader<'_>,
    head: &LayerFields,
    sizes: &LayerSizes,
    present_rows: &[Vec<usize>],
) -> Result<Vec<Coef>, SdmError> {
    let layer = &head.label;
    let (rows, channel_len) = (sizes.rows, sizes.channel_len);
    let stream_len = r.u32("coefficient stream length")?;
    let stream_at = r.offset();
    if u64::from(stream_len) + channel_len > r.remaining() as u64 {
        return Err(SdmError::Truncated {
            what: format!(
                "{layer} coefficient stream ({stream_len} bytes) and per-channel section"
            ),
            offset: stream_at,
            need: u64::from(stream_len) + channel_len,
            have: r.remaining() as u64,
        });
    }
    let stream = r.take(stream_len as usize, "coefficient stream")?;
    let mut bits = BitReader {
        bytes: stream,
        bit: 0,
    };
    let mut coef = vec![Coef::Zero; sizes.slots];
    for o in 0..head.outputs as usize {
        for &row in &present_rows[o / head.group_size as usize] {
            let short = |bit: u64| SdmError::CoefStream {
                layer: layer.clone(),
                offset: stream_at,
                why: format!(
                    "its {stream_len} bytes end at bit {bit}, inside channel {o} row {row} \
                     (stream too short for the row bitmap)"
                ),
            };
            let mask = bits.get(3).ok_or_else(|| short(bits.bit))?;
            for k in 0..3 {
                if mask >> k & 1 == 1 {
                    let neg = bits.get(1).ok_or_else(|| short(bits.bit))? == 1;
                    let code = bits
                        .get(u32::from(head.exp_bits))
                        .ok_or_else(|| short(bits.bit))?;
                    coef[(o * rows + row) * 3 + k] = Coef::Pow2 {
                        neg,
                        code: code as u8,
                    };
                }
            }
        }
    }
    let used = bits.bit.div_ceil(8);
    if used < u64::from(stream_len) {
        return Err(SdmError::CoefStream {
            layer: layer.clone(),
            offset: stream_at,
            why: format!(
                "declares {stream_len} bytes but the present rows use only {used} \
                 (stream too long)"
            ),
        });
    }
    let pad_bits = 8 * used - bits.bit;
    if pad_bits > 0 {
        let pad = stream[used as usize - 1] >> (8 - pad_bits);
        if pad != 0 {
            return Err(SdmError::ReservedBits {
                what: format!("{layer} coefficient stream padding"),
                offset: stream_at + used - 1,
                value: u64::from(pad) << (8 - pad_bits),
            });
        }
    }
    Ok(coef)
}

/// LSB-first bit reader.
struct BitReader<'a> {
    bytes: &'a [u8],
    bit: u64,
}

impl BitReader<'_> {
    /// The next `n` (≤ 32) bits, least significant first; `None` past the end.
    fn get(&mut self, n: u32) -> Option<u32> {
        if self.bit + u64::from(n) > self.bytes.len() as u64 * 8 {
            return None;
        }
        let mut v = 0;
        for i in 0..n {
            let b = self.bit + u64::from(i);
            if self.bytes[(b / 8) as usize] >> (b % 8) & 1 == 1 {
                v |= 1 << i;
            }
        }
        self.bit += u64::from(n);
        Some(v)
    }
}

// ---------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------

/// Writes `model` to `path` as a `.sdm` file. Errors name the path.
pub fn save(path: impl AsRef<Path>, model: &Model) -> Result<(), SdmError> {
    let path = path.as_ref();
    let bytes = write_model(model).map_err(|e| SdmError::File {
        path: path.display().to_string(),
        error: Box::new(e),
    })?;
    std::fs::write(path, bytes).map_err(|error| SdmError::Io {
        op: "write",
        path: path.display().to_string(),
        error,
    })
}

/// Reads the `.sdm` file at `path`. Errors name the path.
pub fn load(path: impl AsRef<Path>) -> Result<Model, SdmError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|error| SdmError::Io {
        op: "read",
        path: path.display().to_string(),
        error,
    })?;
    read_model(&bytes).map_err(|e| SdmError::File {
        path: path.display().to_string(),
        error: Box::new(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The worked example of `docs/sdm-format.md`: one 2×4 layer, exp_bits 3, two bitmap groups.
    fn golden_model() -> Model {
        let p = |neg, code| Coef::Pow2 { neg, code };
        let z = Coef::Zero;
        Model {
            layers: vec![FcLayer {
                name: "fc".into(),
                inputs: 4,
                outputs: 2,
                rows_per_block: 2,
                group_size: 1,
                exp_bits: 3,
                e_lo: -2,
                relu: true,
                row_present: vec![vec![true, false], vec![true, true]],
                basis: vec![
                    [[1, 2, 3], [4, 5, 6], [7, 8, -9]],
                    [[-1, 0, 0], [0, -128, 0], [0, 0, 127]],
                ],
                coef: vec![
                    p(false, 5),
                    z,
                    p(true, 0), // channel 0 row 0
                    z,
                    z,
                    z, // channel 0 row 1 (absent)
                    z,
                    z,
                    z, // channel 1 row 0 (present, all zero)
                    z,
                    p(true, 7),
                    z, // channel 1 row 1
                ],
                wshift: vec![3, 9],
                bias: vec![1000, -2],
                out_mult: vec![0x1234, 0xffff],
                out_shift: vec![7, 31],
                conv: None,
            }],
        }
    }

    /// The golden file, derived by hand from `docs/sdm-format.md` (see its worked example).
    #[rustfmt::skip]
    const GOLDEN: [u8; 95] = [
        // header
        b'S', b'D', b'M', b'O', b'D', b'E', b'L', 0, // magic
        0x01, 0x00,                                   // version 1
        0x00, 0x00,                                   // flags
        0x01, 0x00, 0x00, 0x00,                       // 1 layer
        0x43, 0, 0, 0, 0, 0, 0, 0,                    // payload: 67 bytes
        // layer record header (byte 24)
        0x00,                                         // kind: fully connected
        0x02, 0x00, b'f', b'c',                       // name "fc"
        0x04, 0x00, 0x00, 0x00,                       // inputs 4 (rows 2)
        0x02, 0x00, 0x00, 0x00,                       // outputs 2
        0x02, 0x00, 0x00, 0x00,                       // rows_per_block 2 (blocks 1)
        0x01, 0x00, 0x00, 0x00,                       // group_size 1 (groups 2)
        0x03,                                         // exp_bits 3
        0xfe,                                         // e_lo -2
        0x01,                                         // flags: relu
        // 1. row bitmap (byte 48): group 0 rows {0}, group 1 rows {0, 1}
        0b0000_0001, 0b0000_0011,
        // 2. basis (byte 50): channel 0, then channel 1, B[k][j] row-major
        1, 2, 3, 4, 5, 6, 7, 8, 0xf7,
        0xff, 0, 0, 0, 0x80, 0, 0, 0, 0x7f,
        // 3. coefficient stream (byte 68): 3 bytes, 21 bits used
        0x03, 0x00, 0x00, 0x00,
        0xd5, 0x80, 0x1e,
        // 4. per-channel (byte 75)
        3, 9,                                         // wshift
        0xe8, 0x03, 0x00, 0x00, 0xfe, 0xff, 0xff, 0xff, // bias 1000, -2
        0x34, 0x12, 0xff, 0xff,                       // out_mult 0x1234, 0xffff
        7, 31,                                        // out_shift
        // trailer (byte 91): CRC-32 of bytes 0..91
        0x7c, 0x11, 0xa2, 0x9f,
    ];

    /// Bitwise CRC-32 (IEEE, reflected, poly 0xEDB88320), independent of crc32fast.
    fn reference_crc(bytes: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    crc >> 1 ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    /// Recomputes the trailer CRC after patching.
    fn fix_crc(bytes: &mut [u8]) {
        let n = bytes.len();
        let crc = crc32fast::hash(&bytes[..n - 4]);
        bytes[n - 4..].copy_from_slice(&crc.to_le_bytes());
    }

    /// Sets the header's payload length to match the file, then the CRC.
    fn fix_len_and_crc(bytes: &mut [u8]) {
        let payload = (bytes.len() - HEADER_LEN - TRAILER_LEN) as u64;
        bytes[16..24].copy_from_slice(&payload.to_le_bytes());
        fix_crc(bytes);
    }

    /// A layer with a deterministic pattern of present rows, coefficients, bases and
    /// per-channel parameters; `i` varies the pattern.
    fn patterned_layer(
        name: String,
        (inputs, outputs): (u32, u32),
        (exp_bits, rpb, gs): (u8, u32, u32),
        i: usize,
    ) -> FcLayer {
        let rows = (inputs as usize).div_ceil(3);
        let groups = (outputs as usize).div_ceil(gs as usize);
        let blocks = rows.div_ceil(rpb as usize);
        let row_present: Vec<Vec<bool>> = (0..groups)
            .map(|g| {
                (0..rows)
                    .map(|r| !(r * 7 + g * 3 + i).is_multiple_of(4))
                    .collect()
            })
            .collect();
        let mut coef = vec![Coef::Zero; outputs as usize * rows * 3];
        for o in 0..outputs as usize {
            for r in 0..rows {
                if row_present[o / gs as usize][r] {
                    for k in 0..3 {
                        if (o + r + k) % 3 != 0 {
                            coef[(o * rows + r) * 3 + k] = Coef::Pow2 {
                                neg: (o * r + k) % 2 == 0,
                                code: ((o + 2 * r + k) % (1 << exp_bits)) as u8,
                            };
                        }
                    }
                }
            }
        }
        FcLayer {
            name,
            inputs,
            outputs,
            rows_per_block: rpb,
            group_size: gs,
            exp_bits,
            e_lo: -7 + i as i8,
            relu: i % 2 == 1,
            row_present,
            basis: (0..outputs as usize * blocks)
                .map(|b| {
                    let v = |x: usize| ((b * 31 + x * 17) % 256) as u8 as i8;
                    [[v(0), v(1), v(2)], [v(3), v(4), v(5)], [v(6), v(7), v(8)]]
                })
                .collect(),
            coef,
            wshift: (0..outputs).map(|o| o as u8).collect(),
            bias: (0..outputs as i32).map(|o| o * -1_000_003).collect(),
            out_mult: (0..outputs).map(|o| (o * 9_999) as u16).collect(),
            out_shift: (0..outputs).map(|o| (o * 7 % 32) as u8).collect(),
            conv: None,
        }
    }

    /// A second, bigger layer: bitmap padding inside multi-byte groups, exp_bits 4 and 2, a
    /// group larger than the layer, inputs not a multiple of 3.
    fn varied_model() -> Model {
        let mut layers = golden_model().layers;
        // 29 inputs: rows 10 → 2 bitmap bytes per group.
        for (i, blocking) in [(4u8, 3u32, 2u32), (2, 100, 7)].into_iter().enumerate() {
            layers.push(patterned_layer(
                format!("layer_{i}_é"),
                (29, 5),
                blocking,
                i,
            ));
        }
        Model { layers }
    }

    /// `varied_model` with convolutions among its FC layers: a 3×3 one (3 input channels, stride
    /// 1, padding 1: 27 inputs, 9 rows) and a strided 1×1 one.
    fn mixed_model() -> Model {
        let mut layers = varied_model().layers;
        let shape = |in_channels, kernel, stride, padding| ConvShape {
            in_channels,
            kernel,
            stride,
            padding,
        };
        let mut c3 = patterned_layer("conv3x3".into(), (27, 6), (3, 4, 4), 2);
        c3.conv = Some(shape(3, 3, 1, 1));
        let mut c1 = patterned_layer("conv1x1/s2".into(), (5, 3), (4, 1, 1), 3);
        c1.conv = Some(shape(5, 1, 2, 0));
        layers.insert(1, c3);
        layers.push(c1);
        Model { layers }
    }

    /// The golden layer as a strided 1×1 convolution named "cv" (4 input channels, stride 2,
    /// padding 0): the second worked example of `docs/sdm-format.md`.
    fn conv_golden_model() -> Model {
        let mut m = golden_model();
        m.layers[0].name = "cv".into();
        m.layers[0].conv = Some(ConvShape {
            in_channels: 4,
            kernel: 1,
            stride: 2,
            padding: 0,
        });
        m
    }

    /// The file of `conv_golden_model`, derived by hand from `docs/sdm-format.md`: `GOLDEN` with
    /// version 2, kind 1, the name, and the 7 shape bytes after the flags.
    #[rustfmt::skip]
    const GOLDEN_CONV: [u8; 102] = [
        // header
        b'S', b'D', b'M', b'O', b'D', b'E', b'L', 0, // magic
        0x02, 0x00,                                   // version 2
        0x00, 0x00,                                   // flags
        0x01, 0x00, 0x00, 0x00,                       // 1 layer
        0x4a, 0, 0, 0, 0, 0, 0, 0,                    // payload: 74 bytes
        // layer record header (byte 24)
        0x01,                                         // kind: convolution
        0x02, 0x00, b'c', b'v',                       // name "cv"
        0x04, 0x00, 0x00, 0x00,                       // inputs 4 (rows 2)
        0x02, 0x00, 0x00, 0x00,                       // outputs 2
        0x02, 0x00, 0x00, 0x00,                       // rows_per_block 2 (blocks 1)
        0x01, 0x00, 0x00, 0x00,                       // group_size 1 (groups 2)
        0x03,                                         // exp_bits 3
        0xfe,                                         // e_lo -2
        0x01,                                         // flags: relu
        0x04, 0x00, 0x00, 0x00,                       // in_channels 4 (byte 48)
        0x01,                                         // kernel 1 (byte 52)
        0x02,                                         // stride 2 (byte 53)
        0x00,                                         // padding 0 (byte 54)
        // 1. row bitmap (byte 55)
        0b0000_0001, 0b0000_0011,
        // 2. basis (byte 57)
        1, 2, 3, 4, 5, 6, 7, 8, 0xf7,
        0xff, 0, 0, 0, 0x80, 0, 0, 0, 0x7f,
        // 3. coefficient stream (byte 75)
        0x03, 0x00, 0x00, 0x00,
        0xd5, 0x80, 0x1e,
        // 4. per-channel (byte 82)
        3, 9,
        0xe8, 0x03, 0x00, 0x00, 0xfe, 0xff, 0xff, 0xff,
        0x34, 0x12, 0xff, 0xff,
        7, 31,
        // trailer (byte 98): CRC-32 of bytes 0..98
        0xf5, 0x49, 0x3f, 0x9d,
    ];

    /// The reader's error for `base` with bytes `v` written at `at` (CRC fixed up).
    fn patched_err(base: &[u8], at: usize, v: &[u8]) -> SdmError {
        let mut b = base.to_vec();
        b[at..at + v.len()].copy_from_slice(v);
        fix_crc(&mut b);
        err(&b)
    }

    fn err(bytes: &[u8]) -> SdmError {
        match read_model(bytes) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e,
        }
    }

    #[test]
    fn reference_crc_is_crc32_ieee() {
        assert_eq!(reference_crc(b"123456789"), 0xcbf4_3926);
        assert_eq!(reference_crc(b"123456789"), crc32fast::hash(b"123456789"));
    }

    #[test]
    fn golden_bytes_pin_the_layout() {
        assert_eq!(
            reference_crc(&GOLDEN[..91]),
            u32::from_le_bytes([GOLDEN[91], GOLDEN[92], GOLDEN[93], GOLDEN[94]])
        );
        let bytes = write_model(&golden_model()).unwrap();
        assert_eq!(bytes, GOLDEN);
        assert_eq!(read_model(&GOLDEN).unwrap(), golden_model());
    }

    #[test]
    fn golden_storage_stats() {
        let s = layer_storage(&golden_model().layers[0]);
        assert_eq!(
            (
                s.header,
                s.bitmap,
                s.basis,
                s.coef_stream,
                s.per_channel,
                s.total
            ),
            (24, 2, 18, 7, 16, 67)
        );
        assert_eq!(s.bits_per_weight, 67.0 * 8.0 / 8.0);
    }

    #[test]
    fn layer_storage_of_inconsistent_layers_does_not_panic() {
        let mut l = golden_model().layers[0].clone();
        l.inputs = u32::MAX;
        l.outputs = u32::MAX;
        l.rows_per_block = 0;
        l.group_size = 0;
        let s = layer_storage(&l);
        assert!(s.total >= s.basis && s.bits_per_weight.is_finite());
        l.row_present = vec![vec![true; 5]; 3];
        l.coef.clear();
        l.outputs = 0;
        l.inputs = 0;
        let _ = layer_storage(&l);
    }

    #[test]
    fn empty_model_is_header_and_trailer() {
        let bytes = write_model(&Model::default()).unwrap();
        assert_eq!(bytes.len(), HEADER_LEN + TRAILER_LEN);
        assert_eq!(&bytes[..8], b"SDMODEL\0");
        assert_eq!(read_model(&bytes).unwrap(), Model::default());
    }

    #[test]
    fn hand_built_models_round_trip_and_sizes_are_exact() {
        let model = varied_model();
        model.validate().unwrap();
        let bytes = write_model(&model).unwrap();
        assert_eq!(read_model(&bytes).unwrap(), model);
        let records: u64 = model.layers.iter().map(|l| layer_storage(l).total).sum();
        assert_eq!(bytes.len() as u64, records + 28);
        // Each record alone has the size layer_storage says.
        for l in &model.layers {
            let one = write_model(&Model {
                layers: vec![l.clone()],
            })
            .unwrap();
            let s = layer_storage(l);
            assert_eq!(one.len() as u64, s.total + 28, "{}", l.name);
            assert_eq!(
                s.total,
                s.header + s.bitmap + s.basis + s.coef_stream + s.per_channel
            );
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        for bytes in [varied_model(), mixed_model()].map(|m| write_model(&m).unwrap()) {
            every_truncation_of(&bytes);
        }
    }

    fn every_truncation_of(bytes: &[u8]) {
        for n in 0..bytes.len() {
            assert!(read_model(&bytes[..n]).is_err(), "prefix of {n} bytes");
            // Also with the header and CRC made consistent, so the layer parser sees the cut.
            if n >= HEADER_LEN + TRAILER_LEN {
                let mut cut = bytes[..n - TRAILER_LEN].to_vec();
                cut.extend_from_slice(&[0; 4]);
                fix_len_and_crc(&mut cut);
                let e = err(&cut);
                assert!(!matches!(e, SdmError::ChecksumMismatch { .. }), "{n}: {e}");
            }
        }
    }

    #[test]
    fn every_single_byte_flip_is_an_error() {
        for bytes in [varied_model(), mixed_model()].map(|m| write_model(&m).unwrap()) {
            every_single_byte_flip_of(&bytes);
        }
    }

    fn every_single_byte_flip_of(bytes: &[u8]) {
        for i in 0..bytes.len() {
            for x in [0x01u8, 0x80, 0xff] {
                let mut b = bytes.to_vec();
                b[i] ^= x;
                let e = err(&b);
                if i >= HEADER_LEN {
                    assert!(
                        matches!(e, SdmError::ChecksumMismatch { .. }),
                        "byte {i} ^ {x:#x}: {e}"
                    );
                }
            }
        }
    }

    #[test]
    fn header_checks() {
        let mut b = GOLDEN.to_vec();
        b[0] = b'X';
        let e = err(&b);
        assert!(matches!(e, SdmError::BadMagic { .. }), "{e}");
        assert!(e.to_string().contains("XDMODEL\\x00"), "{e}");
        assert!(matches!(err(b"PK\x03\x04"), SdmError::BadMagic { .. }));
        assert!(matches!(err(b""), SdmError::Truncated { .. }));
        assert!(matches!(err(b"SDMOD"), SdmError::Truncated { .. }));

        for version in [0u16, 3, 0x100] {
            let mut b = GOLDEN.to_vec();
            b[8..10].copy_from_slice(&version.to_le_bytes());
            fix_crc(&mut b);
            let e = err(&b);
            assert!(
                matches!(e, SdmError::UnsupportedVersion { found } if found == version),
                "{e}"
            );
            assert_eq!(
                e.to_string(),
                format!(
                    "unsupported .sdm format version {version} (this reader supports versions \
                     1 and 2)"
                )
            );
        }

        let mut b = GOLDEN.to_vec();
        b[11] = 0x40;
        fix_crc(&mut b);
        let e = err(&b);
        assert!(
            matches!(
                e,
                SdmError::ReservedBits {
                    offset: 10,
                    value: 0x4000,
                    ..
                }
            ),
            "{e}"
        );

        let mut b = GOLDEN.to_vec();
        b[50] ^= 1;
        let e = err(&b);
        let computed = crc32fast::hash(&b[..91]);
        assert_eq!(
            e.to_string(),
            format!("checksum mismatch: stored 0x9fa2117c, computed {computed:#010x}")
        );

        let mut b = GOLDEN.to_vec();
        b.push(0);
        let e = err(&b);
        assert!(
            matches!(
                e,
                SdmError::TrailingBytes {
                    offset: 95,
                    count: 1,
                    ..
                }
            ),
            "{e}"
        );

        // Layer count larger than the records in the payload.
        let mut b = GOLDEN.to_vec();
        b[12] = 2;
        fix_crc(&mut b);
        let e = err(&b);
        assert!(matches!(e, SdmError::Truncated { offset: 91, .. }), "{e}");
        // Layer count smaller: the payload has bytes left over.
        let mut b = GOLDEN.to_vec();
        b[12] = 0;
        fix_crc(&mut b);
        let e = err(&b);
        assert!(
            matches!(
                e,
                SdmError::TrailingBytes {
                    offset: 24,
                    count: 67,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn layer_header_checks() {
        let patched = |at: usize, v: &[u8]| patched_err(&GOLDEN, at, v);
        let e = patched(24, &[2]);
        assert!(
            matches!(
                e,
                SdmError::UnsupportedLayerKind {
                    index: 0,
                    kind: 2,
                    offset: 24
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("1 = convolution"), "{e}");
        // Kind 1 in a version 1 file (followed by bytes that would not parse as a convolution
        // anyway: the kind is checked first).
        let e = patched(24, &[1]);
        assert!(
            matches!(
                e,
                SdmError::ConvNeedsVersion2 {
                    index: 0,
                    offset: 24
                }
            ),
            "{e}"
        );
        let e = patched(27, &[0xff]);
        assert!(
            matches!(
                e,
                SdmError::InvalidName {
                    index: 0,
                    offset: 27,
                    ..
                }
            ),
            "{e}"
        );
        let e = patched(47, &[0x03]);
        assert!(
            matches!(
                e,
                SdmError::ReservedBits {
                    offset: 47,
                    value: 2,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("layer 0 `fc` flags"), "{e}");
        let e = patched(45, &[5]);
        assert!(
            matches!(
                e,
                SdmError::BadField {
                    field: "exp_bits",
                    offset: 45,
                    ..
                }
            ),
            "{e}"
        );
        for (at, field) in [
            (29, "inputs"),
            (33, "outputs"),
            (37, "rows_per_block"),
            (41, "group_size"),
        ] {
            let e = patched(at, &[0]);
            assert!(
                matches!(e, SdmError::BadField { field: f, offset, .. } if f == field && offset == at as u64),
                "{e}"
            );
        }
        // Name length beyond the payload.
        let e = patched(25, &[0xff, 0xff]);
        assert!(matches!(e, SdmError::Truncated { offset: 27, .. }), "{e}");
        // Empty name: parses, then FcLayer::validate rejects it.
        let mut b = GOLDEN.to_vec();
        b.drain(27..29);
        b[25] = 0;
        fix_len_and_crc(&mut b);
        let e = err(&b);
        assert!(matches!(e, SdmError::InvalidLayer { index: 0, .. }), "{e}");
        // out_shift 32 is a LayerError too.
        let e = patched(90, &[32]);
        assert!(matches!(e, SdmError::InvalidLayer { index: 0, .. }), "{e}");
        assert!(e.to_string().contains("out_shift 32"), "{e}");
    }

    #[test]
    fn impossible_sizes_are_rejected_before_allocating() {
        // 2^32-1 outputs × 2^32-1 inputs.
        let mut b = GOLDEN.to_vec();
        b[29..37].copy_from_slice(&[0xff; 8]);
        fix_crc(&mut b);
        let e = err(&b);
        assert!(matches!(e, SdmError::TooLarge { .. }), "{e}");
        // Just under the slot cap, but the sections need far more bytes than the file has.
        let mut b = GOLDEN.to_vec();
        b[29..33].copy_from_slice(&(3u32 << 14).to_le_bytes());
        b[33..37].copy_from_slice(&(1u32 << 10).to_le_bytes());
        fix_crc(&mut b);
        let e = err(&b);
        assert!(matches!(e, SdmError::Truncated { offset: 48, .. }), "{e}");
        // A huge declared coefficient stream.
        let e = {
            let mut b = GOLDEN.to_vec();
            b[68..72].copy_from_slice(&u32::MAX.to_le_bytes());
            fix_crc(&mut b);
            err(&b)
        };
        assert!(matches!(e, SdmError::Truncated { offset: 72, .. }), "{e}");
        // A huge payload length.
        let mut b = GOLDEN.to_vec();
        b[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(err(&b), SdmError::Truncated { offset: 24, .. }));
    }

    #[test]
    fn bitmap_and_stream_checks() {
        // A padding bit in group 0's bitmap byte (rows 0..2 are real, bit 2 is padding).
        let mut b = GOLDEN.to_vec();
        b[48] |= 0b100;
        fix_crc(&mut b);
        let e = err(&b);
        assert!(
            matches!(
                e,
                SdmError::ReservedBits {
                    offset: 48,
                    value: 4,
                    ..
                }
            ),
            "{e}"
        );
        // Stream padding bit (bits 21..24 of the stream are padding).
        let mut b = GOLDEN.to_vec();
        b[74] |= 0x80;
        fix_crc(&mut b);
        let e = err(&b);
        assert!(
            matches!(
                e,
                SdmError::ReservedBits {
                    offset: 74,
                    value: 0x80,
                    ..
                }
            ),
            "{e}"
        );
        // Stream one byte too long.
        let mut b = GOLDEN.to_vec();
        b.insert(75, 0);
        b[68] = 4;
        fix_len_and_crc(&mut b);
        let e = err(&b);
        assert!(matches!(e, SdmError::CoefStream { offset: 72, .. }), "{e}");
        assert!(e.to_string().contains("too long"), "{e}");
        // Stream one byte too short.
        let mut b = GOLDEN.to_vec();
        b.remove(74);
        b[68] = 2;
        fix_len_and_crc(&mut b);
        let e = err(&b);
        assert!(matches!(e, SdmError::CoefStream { offset: 72, .. }), "{e}");
        assert!(e.to_string().contains("too short"), "{e}");
        assert!(e.to_string().contains("channel 1 row 1"), "{e}");
    }

    #[test]
    fn duplicate_names_are_rejected_both_ways() {
        let mut m = golden_model();
        m.layers.push(m.layers[0].clone());
        assert!(matches!(write_model(&m), Err(SdmError::InvalidModel(_))));
        // Hand-assemble the duplicate file.
        let mut b = GOLDEN[..91].to_vec();
        b.extend_from_slice(&GOLDEN[24..91]);
        b.extend_from_slice(&[0; 4]);
        b[12] = 2;
        fix_len_and_crc(&mut b);
        let e = err(&b);
        assert!(
            matches!(
                e,
                SdmError::DuplicateName {
                    index: 1,
                    first: 0,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn invalid_models_are_not_written() {
        let mut m = golden_model();
        m.layers[0].coef[3] = Coef::Pow2 {
            neg: false,
            code: 1,
        }; // in an absent row
        let e = write_model(&m).unwrap_err();
        assert!(matches!(e, SdmError::InvalidModel(_)), "{e}");
        assert!(e.to_string().contains("absent"), "{e}");
    }

    #[test]
    fn messages_are_one_line() {
        let mut m = golden_model();
        m.layers[0].name = "a\nb".into();
        let mut b = write_model(&m).unwrap();
        let flags_at = HEADER_LEN + 1 + 2 + 3 + 16 + 2;
        b[flags_at] = 0x81;
        fix_crc(&mut b);
        let e = err(&b).to_string();
        assert!(!e.contains('\n') && e.contains("a\\nb"), "{e}");
    }

    #[test]
    fn save_and_load_name_the_path() {
        let dir = std::env::temp_dir().join(format!("sdm-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.sdm");
        save(&path, &varied_model()).unwrap();
        assert_eq!(load(&path).unwrap(), varied_model());
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[40] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let e = load(&path).unwrap_err().to_string();
        assert!(
            e.contains("m.sdm") && e.contains("checksum mismatch"),
            "{e}"
        );
        let missing = dir.join("missing.sdm");
        let e = load(&missing).unwrap_err().to_string();
        assert!(
            e.contains("cannot read") && e.contains("missing.sdm"),
            "{e}"
        );
        let mut bad = golden_model();
        bad.layers[0].exp_bits = 9;
        let e = save(&path, &bad).unwrap_err().to_string();
        assert!(e.contains("m.sdm") && e.contains("exp_bits"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn conv_golden_bytes_pin_the_layout() {
        assert_eq!(
            reference_crc(&GOLDEN_CONV[..98]),
            u32::from_le_bytes([
                GOLDEN_CONV[98],
                GOLDEN_CONV[99],
                GOLDEN_CONV[100],
                GOLDEN_CONV[101]
            ])
        );
        assert_eq!(write_model(&conv_golden_model()).unwrap(), GOLDEN_CONV);
        assert_eq!(read_model(&GOLDEN_CONV).unwrap(), conv_golden_model());
        let s = layer_storage(&conv_golden_model().layers[0]);
        assert_eq!(
            (
                s.header,
                s.bitmap,
                s.basis,
                s.coef_stream,
                s.per_channel,
                s.total
            ),
            (31, 2, 18, 7, 16, 74)
        );
    }

    #[test]
    fn the_version_is_2_exactly_when_a_layer_is_a_convolution() {
        for (model, version) in [
            (Model::default(), 1),
            (golden_model(), 1),
            (varied_model(), 1),
            (mixed_model(), 2),
            (conv_golden_model(), 2),
        ] {
            model.validate().unwrap();
            let bytes = write_model(&model).unwrap();
            assert_eq!(bytes[8..10], [version, 0], "{model:?}");
            assert_eq!(read_model(&bytes).unwrap(), model);
            let records: u64 = model.layers.iter().map(|l| layer_storage(l).total).sum();
            assert_eq!(bytes.len() as u64, records + 28);
        }
        // Each conv record alone has the size layer_storage says.
        for l in mixed_model().layers.iter().filter(|l| l.conv.is_some()) {
            let one = write_model(&Model {
                layers: vec![l.clone()],
            })
            .unwrap();
            let s = layer_storage(l);
            assert_eq!(one.len() as u64, s.total + 28, "{}", l.name);
            assert_eq!(s.header, 29 + l.name.len() as u64, "{}", l.name);
        }
    }

    #[test]
    fn version_2_without_a_convolution_is_not_canonical() {
        let mut b = GOLDEN.to_vec();
        b[8] = 2;
        fix_crc(&mut b);
        let e = err(&b);
        assert!(
            matches!(e, SdmError::VersionWithoutConv { layer_count: 1 }),
            "{e}"
        );
        assert!(
            e.to_string()
                .contains("version 2 at byte 8 is for files with convolution layers"),
            "{e}"
        );
        let mut b = write_model(&Model::default()).unwrap();
        b[8] = 2;
        fix_crc(&mut b);
        let e = err(&b);
        assert!(
            matches!(e, SdmError::VersionWithoutConv { layer_count: 0 }),
            "{e}"
        );
        // The version 1 file of a convolution is rejected at the record.
        let mut b = GOLDEN_CONV.to_vec();
        b[8] = 1;
        fix_crc(&mut b);
        let e = err(&b);
        assert!(
            matches!(
                e,
                SdmError::ConvNeedsVersion2 {
                    index: 0,
                    offset: 24
                }
            ),
            "{e}"
        );
        assert!(
            e.to_string()
                .contains("layer kind 1 (convolution) at byte 24 needs format version 2"),
            "{e}"
        );
    }

    #[test]
    fn conv_shape_checks() {
        let patched = |at: usize, v: &[u8]| patched_err(&GOLDEN_CONV, at, v);
        for (at, v, field, offset, why) in [
            (
                52,
                &[5u8][..],
                "kernel",
                52,
                "5×5 kernels are not supported",
            ),
            (52, &[0], "kernel", 52, "0×0 kernels are not supported"),
            (53, &[3], "stride", 53, "stride 3 is not supported"),
            (53, &[0], "stride", 53, "stride 0 is not supported"),
            (54, &[2], "padding", 54, "padding 2 is not supported"),
            (48, &[0], "in_channels", 48, "at least one input channel"),
            (
                48,
                &[2],
                "in_channels",
                48,
                "2 input channels of a 1×1 kernel make 2 weights per output channel, \
                 but the layer has 4",
            ),
            (
                52,
                &[3],
                "in_channels",
                48,
                "4 input channels of a 3×3 kernel make 36 weights",
            ),
            (
                48,
                &[0, 0, 0, 0x40],
                "in_channels",
                48,
                "1073741824 input channels",
            ),
        ] {
            let e = patched(at, v);
            assert!(
                matches!(&e, SdmError::BadField { field: f, offset: o, .. }
                    if *f == field && *o == offset),
                "{at} {v:?}: {e}"
            );
            let msg = e.to_string();
            assert!(
                msg.contains(why) && msg.contains("layer 0 `cv`"),
                "{at} {v:?}: {msg}"
            );
            assert!(!msg.contains('\n'), "{msg}");
        }
        // A record that ends inside its shape bytes.
        for keep in 48..55 {
            let mut b = GOLDEN_CONV[..keep].to_vec();
            b.extend_from_slice(&[0; 4]);
            fix_len_and_crc(&mut b);
            let e = err(&b);
            assert!(
                matches!(
                    e,
                    SdmError::Truncated {
                        offset: 48,
                        need: 7,
                        ..
                    }
                ),
                "{keep}: {e}"
            );
            assert!(e.to_string().contains("convolution shape"), "{e}");
        }
    }

    // ---- property tests ----

    /// The inputs of a random layer, and a third of the time a convolution shape that has them:
    /// 1..40 inputs, or 1..12 input channels of a 1×1 or 3×3 kernel with any stride and padding.
    fn arb_shape() -> impl Strategy<Value = (u32, Option<ConvShape>)> {
        prop_oneof![
            2 => (1u32..40).prop_map(|inputs| (inputs, None)),
            1 => (1u32..12, prop_oneof![Just(1u8), Just(3)], 1u8..=2, 0u8..=1).prop_map(
                |(in_channels, kernel, stride, padding)| {
                    let conv = ConvShape { in_channels, kernel, stride, padding };
                    (conv.inputs() as u32, Some(conv))
                }
            ),
        ]
    }

    /// Random valid layers: `arb_shape`'s inputs (FC or convolution), 1..20 outputs, any
    /// blocking and grouping, random bitmaps, coefficients only in present rows, exp_bits 2..=4.
    fn arb_layer() -> impl Strategy<Value = FcLayer> {
        (arb_shape(), 1u32..20, 1u32..16, 1u32..24, 2u8..=4).prop_flat_map(
            |((inputs, conv), outputs, rows_per_block, group_size, exp_bits)| {
                let o = outputs as usize;
                let rows = (inputs as usize).div_ceil(3);
                let blocks = rows.div_ceil(rows_per_block as usize);
                let groups = o.div_ceil(group_size as usize);
                (
                    (
                        prop_oneof!["[a-z][a-z0-9_]{0,12}", "\\PC{1,20}"],
                        any::<i8>(),
                        any::<bool>(),
                        proptest::collection::vec(
                            proptest::collection::vec(any::<bool>(), rows),
                            groups,
                        ),
                        proptest::collection::vec(any::<[[i8; 3]; 3]>(), o * blocks),
                        proptest::collection::vec(
                            (0u8..3, any::<bool>(), 0u8..(1 << exp_bits)),
                            o * rows * 3,
                        ),
                    ),
                    (
                        proptest::collection::vec(any::<u8>(), o),
                        proptest::collection::vec(any::<i32>(), o),
                        proptest::collection::vec(any::<u16>(), o),
                        proptest::collection::vec(0u8..32, o),
                    ),
                )
                    .prop_map(
                        move |(
                            (name, e_lo, relu, row_present, basis, raw),
                            (wshift, bias, out_mult, out_shift),
                        )| {
                            let coef = raw
                                .iter()
                                .enumerate()
                                .map(|(i, &(z, neg, code))| {
                                    let (ch, r) = (i / 3 / rows, i / 3 % rows);
                                    if z == 0 || !row_present[ch / group_size as usize][r] {
                                        Coef::Zero
                                    } else {
                                        Coef::Pow2 { neg, code }
                                    }
                                })
                                .collect();
                            FcLayer {
                                name,
                                inputs,
                                outputs,
                                rows_per_block,
                                group_size,
                                exp_bits,
                                e_lo,
                                relu,
                                row_present,
                                basis,
                                coef,
                                wshift,
                                bias,
                                out_mult,
                                out_shift,
                                conv,
                            }
                        },
                    )
            },
        )
    }

    fn arb_model() -> impl Strategy<Value = Model> {
        proptest::collection::vec(arb_layer(), 0..4).prop_map(|mut layers| {
            for (i, l) in layers.iter_mut().enumerate() {
                l.name = format!("{}#{i}", l.name);
            }
            Model { layers }
        })
    }

    /// A mutation of a file: overwrite, insert, remove or truncate.
    #[derive(Debug, Clone)]
    enum Mutation {
        Set(usize, u8),
        Xor(usize, u8),
        Insert(usize, u8),
        Remove(usize),
        Truncate(usize),
    }

    fn arb_mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            4 => (any::<usize>(), any::<u8>()).prop_map(|(i, v)| Mutation::Set(i, v)),
            4 => (any::<usize>(), 0u32..8).prop_map(|(i, b)| Mutation::Xor(i, 1 << b)),
            1 => (any::<usize>(), any::<u8>()).prop_map(|(i, v)| Mutation::Insert(i, v)),
            1 => any::<usize>().prop_map(Mutation::Remove),
            1 => any::<usize>().prop_map(Mutation::Truncate),
        ]
    }

    fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
        if bytes.is_empty() {
            return;
        }
        let n = bytes.len();
        match *m {
            Mutation::Set(i, v) => bytes[i % n] = v,
            Mutation::Xor(i, x) => bytes[i % n] ^= x,
            Mutation::Insert(i, v) => bytes.insert(i % (n + 1), v),
            Mutation::Remove(i) => {
                bytes.remove(i % n);
            }
            Mutation::Truncate(i) => bytes.truncate(i % (n + 1)),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn random_models_round_trip(model in arb_model()) {
            prop_assert!(model.validate().is_ok());
            let bytes = write_model(&model).unwrap();
            let convs = model.layers.iter().any(|l| l.conv.is_some());
            prop_assert_eq!(bytes[8], if convs { 2 } else { 1 });
            prop_assert_eq!(read_model(&bytes).unwrap(), model.clone());
            let records: u64 = model.layers.iter().map(|l| layer_storage(l).total).sum();
            prop_assert_eq!(bytes.len() as u64, records + 28);
        }

        #[test]
        fn random_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
            with_header in any::<bool>(),
            version in 1u8..=2,
        ) {
            let mut b = bytes;
            if with_header {
                // Get past the magic/version/length/CRC checks into the layer parser.
                let mut f = MAGIC.to_vec();
                f.extend_from_slice(&[version, 0, 0, 0]);
                f.extend_from_slice(&(1 + b.len() as u32 % 3).to_le_bytes());
                f.extend_from_slice(&[0; 8]);
                f.extend_from_slice(&b);
                f.extend_from_slice(&[0; 4]);
                fix_len_and_crc(&mut f);
                b = f;
            }
            if let Ok(m) = read_model(&b) {
                prop_assert_eq!(write_model(&m).unwrap(), b);
            }
        }

        #[test]
        fn mutated_files_never_panic_and_accepted_ones_are_canonical(
            model in arb_model(),
            mutations in proptest::collection::vec(arb_mutation(), 1..4),
            fix_header in any::<bool>(),
        ) {
            let original = write_model(&model).unwrap();
            let mut b = original.clone();
            for m in &mutations {
                apply(&mut b, m);
            }
            if fix_header && b.len() >= HEADER_LEN + TRAILER_LEN {
                fix_len_and_crc(&mut b);
            }
            match read_model(&b) {
                Ok(m) => {
                    // The format is canonical: whatever is accepted re-encodes to the same bytes.
                    prop_assert_eq!(&write_model(&m).unwrap(), &b);
                    // Without fix-ups, any change is caught (the CRC, at the latest).
                    if !fix_header {
                        prop_assert_eq!(&b, &original);
                    }
                }
                Err(e) => {
                    let msg = e.to_string();
                    prop_assert!(!msg.is_empty() && !msg.contains('\n'), "{}", msg);
                }
            }
        }
    }
}
