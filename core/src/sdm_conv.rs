//! The convolution parts of the `.sdm` format (version 2, layer kind 1), next to [`crate::sdm`]:
//! which version and kind the writer picks, and the 7 shape bytes a convolution record has right
//! after its flags byte (`docs/sdm-format.md`).

use crate::layer::{ConvShape, FcLayer, Model};

/// The format version of a file without convolution layers.
pub const VERSION_FC: u16 = 1;
/// The format version of a file with at least one convolution layer (and only of such a file,
/// so that the encoding stays canonical).
pub const VERSION_CONV: u16 = 2;
/// Layer kind code of a fully connected layer (`conv: None`).
pub const LAYER_KIND_FC: u8 = 0;
/// Layer kind code of a convolution (`conv: Some`); version 2 files only.
pub const LAYER_KIND_CONV: u8 = 1;

/// Extra record header bytes of a convolution, after the flags: in_channels (u32), kernel,
/// stride, padding (u8 each).
pub(crate) const CONV_FIELDS_LEN: usize = 7;

/// The version a file of `model` has: 2 when a layer is a convolution, else 1.
pub(crate) fn file_version(model: &Model) -> u16 {
    if model.layers.iter().any(|l| l.conv.is_some()) {
        VERSION_CONV
    } else {
        VERSION_FC
    }
}

/// The kind byte of `layer`'s record.
pub(crate) fn layer_kind(layer: &FcLayer) -> u8 {
    match layer.conv {
        Some(_) => LAYER_KIND_CONV,
        None => LAYER_KIND_FC,
    }
}

/// Bytes the record header of `layer` has beyond the fully connected one's.
pub(crate) fn extra_header_len(layer: &FcLayer) -> u64 {
    match layer.conv {
        Some(_) => CONV_FIELDS_LEN as u64,
        None => 0,
    }
}

/// The shape bytes of a convolution record.
pub(crate) fn encode(c: &ConvShape) -> [u8; CONV_FIELDS_LEN] {
    let [c0, c1, c2, c3] = c.in_channels.to_le_bytes();
    [c0, c1, c2, c3, c.kernel, c.stride, c.padding]
}

/// Decodes the shape bytes read at file offset `at` and checks them with
/// [`ConvShape::validate`] against the record's `inputs`; an error names the field at fault,
/// its offset and why.
pub(crate) fn decode(
    bytes: [u8; CONV_FIELDS_LEN],
    at: u64,
    inputs: u32,
) -> Result<ConvShape, (&'static str, u64, String)> {
    let [c0, c1, c2, c3, kernel, stride, padding] = bytes;
    let shape = ConvShape {
        in_channels: u32::from_le_bytes([c0, c1, c2, c3]),
        kernel,
        stride,
        padding,
    };
    shape.validate(inputs).map_err(|why| {
        // The field `validate` stopped at, in its order; a kernel that does not have `inputs`
        // weights is blamed on in_channels.
        let (field, offset) = if shape.in_channels == 0 {
            ("in_channels", at)
        } else if !matches!(kernel, 1 | 3) {
            ("kernel", at + 4)
        } else if !matches!(stride, 1 | 2) {
            ("stride", at + 5)
        } else if padding > 1 {
            ("padding", at + 6)
        } else {
            ("in_channels", at)
        };
        (field, offset, why)
    })?;
    Ok(shape)
}
