//! Host-side packing of a layer into the accelerator's buffer words (`docs/interface.md`).
//!
//! This is the stream compiler that every host (the Verilator harness today, the UART driver
//! later) uses. It encodes data only: it never computes a weight or an output, so it cannot hide
//! an arithmetic disagreement between the golden model and the RTL.

use crate::layer::{Coef, FcLayer, LayerError};
use crate::params::{AccelConfig, BIAS_BITS, OUT_MULT_BITS};

/// A buffer word of any width, as little-endian 32-bit chunks.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Word {
    pub bits: u32,
    pub chunks: Vec<u32>,
}

impl Word {
    pub fn zero(bits: u32) -> Self {
        Word {
            bits,
            chunks: vec![0; bits.div_ceil(32) as usize],
        }
    }

    /// Writes the low `width` bits of `value` at bit `lo`.
    pub fn set(&mut self, lo: u32, width: u32, value: u64) {
        assert!(
            lo + width <= self.bits,
            "field {lo}+{width} outside {}-bit word",
            self.bits
        );
        for i in 0..width {
            let bit = (value >> i) & 1;
            let pos = lo + i;
            let (c, b) = ((pos / 32) as usize, pos % 32);
            self.chunks[c] = (self.chunks[c] & !(1 << b)) | ((bit as u32) << b);
        }
    }

    /// Reads `width` (≤ 64) bits at bit `lo`.
    pub fn get(&self, lo: u32, width: u32) -> u64 {
        (0..width).fold(0u64, |acc, i| {
            let pos = lo + i;
            let bit = (self.chunks[(pos / 32) as usize] >> (pos % 32)) & 1;
            acc | (u64::from(bit) << i)
        })
    }
}

/// One accelerator run: the buffer contents for a contiguous range of output tiles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunImage {
    /// First output channel of the run (a multiple of `lanes`).
    pub first_channel: u32,
    /// Output channels the run produces (the last tile may be partial).
    pub channels: u32,
    /// Coefficient stream entries, in issue order.
    pub coef: Vec<Word>,
    /// Basis words: `[local_tile * blocks + block]`.
    pub basis: Vec<Word>,
    /// Weight-shift words, one per tile.
    pub wshift: Vec<Word>,
    /// Output-parameter words, one per local output index `local_tile * lanes + lane`.
    pub oparam: Vec<Word>,
    pub relu: bool,
    /// Entries that carry a present row (the rest are padding that keeps the drain rule).
    pub useful_entries: u32,
}

/// Encodes one Ce element: `[present][sign][code]` from LSB: bit 0 present, bit 1 negative,
/// bits 2.. code.
pub fn encode_coef(c: Coef) -> u64 {
    match c {
        Coef::Zero => 0,
        Coef::Pow2 { neg, code } => 1 | (u64::from(neg) << 1) | (u64::from(code) << 2),
    }
}

/// Field positions of a coefficient entry (LSB first).
#[derive(Debug, Clone, Copy)]
pub struct CoefLayout {
    pub codes_lo: u32,
    pub bsel_lo: u32,
    pub row_lo: u32,
    pub first_bit: u32,
    pub last_bit: u32,
}

impl CoefLayout {
    pub fn of(cfg: &AccelConfig) -> Self {
        let bsel_lo = cfg.coef_codes_bits();
        let row_lo = bsel_lo + cfg.b_addr_bits();
        let first_bit = row_lo + cfg.act_addr_bits();
        CoefLayout {
            codes_lo: 0,
            bsel_lo,
            row_lo,
            first_bit,
            last_bit: first_bit + 1,
        }
    }
}

/// Packs the activation vector `x` (length `layer.inputs`) into activation words, one per Ce row;
/// padding inputs are zero.
pub fn pack_activations(cfg: &AccelConfig, layer: &FcLayer, x: &[i8]) -> Vec<Word> {
    let ab = cfg.act_bits;
    (0..layer.rows())
        .map(|r| {
            let mut w = Word::zero(cfg.act_word_bits());
            for j in 0..3 {
                let v = x.get(3 * r + j).copied().unwrap_or(0);
                // Two's complement, truncated to act_bits (range is checked by the caller).
                w.set(j as u32 * ab, ab, u64::from(v as u8) & ((1 << ab) - 1));
            }
            w
        })
        .collect()
}

/// Checks that every activation is representable in `cfg.act_bits` signed bits.
pub fn check_activations(cfg: &AccelConfig, x: &[i8]) -> Result<(), String> {
    let lo = -(1i16 << (cfg.act_bits - 1));
    let hi = (1i16 << (cfg.act_bits - 1)) - 1;
    match x
        .iter()
        .position(|&v| i16::from(v) < lo || i16::from(v) > hi)
    {
        Some(i) => Err(format!(
            "activation {i} = {} is outside the accelerator's {}-bit range {lo}..={hi}",
            x[i], cfg.act_bits
        )),
        None => Ok(()),
    }
}

/// Splits a layer into runs that fit the buffers and encodes each.
///
/// Stream rule (docs/interface.md): every tile has at least `lanes` entries, so the output drain
/// of one tile (one output per cycle) finishes before the next tile's accumulators are final.
/// Shorter tiles are padded with entries whose codes are all absent.
pub fn pack_layer(cfg: &AccelConfig, layer: &FcLayer) -> Result<Vec<RunImage>, LayerError> {
    layer.check_fits(cfg)?;
    let lanes = cfg.lanes as usize;
    let tiles = (layer.outputs as usize).div_ceil(lanes);
    let blocks = layer.blocks();
    let lay = CoefLayout::of(cfg);
    let eb = cfg.coef_elem_bits();
    let err = |why: String| LayerError {
        layer: layer.name.clone(),
        why,
    };

    let mut runs: Vec<RunImage> = Vec::new();
    let mut cur: Option<RunImage> = None;
    for t in 0..tiles {
        let chans: Vec<usize> =
            (t * lanes..((t + 1) * lanes).min(layer.outputs as usize)).collect();
        let present: Vec<usize> = (0..layer.rows())
            .filter(|&r| chans.iter().any(|&o| layer.row_is_present(o, r)))
            .collect();
        let entries = present.len().max(lanes);
        if entries > cfg.coef_depth as usize {
            return Err(err(format!(
                "output tile {t} needs {entries} stream entries but coef_depth = {}",
                cfg.coef_depth
            )));
        }
        let fits = |run: &RunImage| {
            let local_tiles = run.wshift.len() + 1;
            run.coef.len() + entries <= cfg.coef_depth as usize
                && local_tiles * blocks <= cfg.b_depth as usize
                && local_tiles <= cfg.wshift_depth() as usize
                && local_tiles * lanes <= cfg.out_depth as usize
        };
        if cur.as_ref().is_some_and(|run| !fits(run)) {
            runs.push(cur.take().expect("checked above"));
        }
        let run = cur.get_or_insert_with(|| RunImage {
            first_channel: (t * lanes) as u32,
            channels: 0,
            coef: Vec::new(),
            basis: Vec::new(),
            wshift: Vec::new(),
            oparam: Vec::new(),
            relu: layer.relu,
            useful_entries: 0,
        });
        let local_tile = run.wshift.len();
        if (local_tile + 1) * blocks > cfg.b_depth as usize {
            return Err(err(format!(
                "{blocks} blocks per channel exceed b_depth = {}",
                cfg.b_depth
            )));
        }

        // Basis words of this tile, one per block.
        for blk in 0..blocks {
            let mut w = Word::zero(cfg.b_word_bits());
            for (l, &o) in chans.iter().enumerate() {
                let b = &layer.basis[o * blocks + blk];
                for (k, brow) in b.iter().enumerate() {
                    for (j, &v) in brow.iter().enumerate() {
                        let idx = (l * 9 + k * 3 + j) as u32;
                        let bits = u64::from(v as u8) & ((1 << cfg.basis_bits) - 1);
                        w.set(idx * cfg.basis_bits, cfg.basis_bits, bits);
                    }
                }
            }
            run.basis.push(w);
        }
        // Weight shifts (one word per tile) and output parameters (one word per channel slot).
        let mut ws = Word::zero(cfg.wshift_word_bits());
        for (l, &o) in chans.iter().enumerate() {
            ws.set(
                l as u32 * cfg.wshift_bits(),
                cfg.wshift_bits(),
                u64::from(layer.wshift[o]),
            );
        }
        run.wshift.push(ws);
        for l in 0..lanes {
            let mut w = Word::zero(cfg.oparam_word_bits());
            if let Some(&o) = chans.get(l) {
                w.set(0, BIAS_BITS, u64::from(layer.bias[o] as u32));
                w.set(BIAS_BITS, OUT_MULT_BITS, u64::from(layer.out_mult[o]));
                w.set(BIAS_BITS + OUT_MULT_BITS, 5, u64::from(layer.out_shift[o]));
            }
            run.oparam.push(w);
        }
        // Stream entries: present rows in ascending order, then padding.
        for e in 0..entries {
            let mut w = Word::zero(cfg.coef_word_bits());
            let row = present.get(e).copied();
            let r = row.unwrap_or(0);
            if let Some(r) = row {
                for (l, &o) in chans.iter().enumerate() {
                    for (k, c) in layer.coef_row(o, r).into_iter().enumerate() {
                        let slot = (l * 3 + k) as u32;
                        w.set(lay.codes_lo + slot * eb, eb, encode_coef(c));
                    }
                }
                run.useful_entries += 1;
            }
            let bsel = local_tile * blocks + r / layer.rows_per_block as usize;
            w.set(lay.bsel_lo, cfg.b_addr_bits(), bsel as u64);
            w.set(lay.row_lo, cfg.act_addr_bits(), r as u64);
            w.set(lay.first_bit, 1, u64::from(e == 0));
            w.set(lay.last_bit, 1, u64::from(e + 1 == entries));
            run.coef.push(w);
        }
        run.channels += chans.len() as u32;
    }
    runs.extend(cur);
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_set_get_across_chunk_boundaries() {
        let mut w = Word::zero(100);
        w.set(28, 10, 0x3a5);
        w.set(90, 10, 0x2ff);
        assert_eq!(w.get(28, 10), 0x3a5);
        assert_eq!(w.get(90, 10), 0x2ff);
        assert_eq!(w.get(38, 52), 0);
        w.set(28, 10, 0);
        assert!(w.chunks[..2].iter().all(|&c| c == 0));
    }

    #[test]
    fn coef_encoding() {
        assert_eq!(encode_coef(Coef::Zero), 0);
        assert_eq!(
            encode_coef(Coef::Pow2 {
                neg: false,
                code: 0
            }),
            0b001
        );
        assert_eq!(encode_coef(Coef::Pow2 { neg: true, code: 5 }), 0b10111);
    }
}
