//! Host-side packing of a layer into the accelerator's buffer words (`docs/interface.md`).
//!
//! This is the stream compiler that every host (the Verilator harness, the UART driver) uses. It
//! encodes data only: it never computes a weight or an output, so it cannot hide an arithmetic
//! disagreement between the golden model and the RTL. The dense baseline's int8 weights are
//! therefore computed by the caller and passed in ([`pack_layer_dense`]).

use crate::layer::{Coef, ConvShape, FcLayer, LayerError};
use crate::params::{AccelConfig, BIAS_BITS, FACTOR_FLUSH_CYCLES, OUT_MULT_BITS};

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

    /// Writes the low `width` (≤ 64) bits of `value` at bit `lo`.
    pub fn set(&mut self, lo: u32, width: u32, value: u64) {
        assert!(
            lo + width <= self.bits && width <= 64,
            "field {lo}+{width} outside {}-bit word",
            self.bits
        );
        // A field of ≤ 64 bits spans at most three 32-bit chunks: write it chunk by chunk.
        let mut done = 0;
        while done < width {
            let pos = lo + done;
            let (c, b) = ((pos / 32) as usize, pos % 32);
            let n = (32 - b).min(width - done);
            let mask = if n == 32 {
                u32::MAX
            } else {
                ((1u32 << n) - 1) << b
            };
            let bits = ((value >> done) as u32) << b;
            self.chunks[c] = (self.chunks[c] & !mask) | (bits & mask);
            done += n;
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
    /// Output channels the run produces (the last tile may be partial; 0 for a run that only
    /// accumulates one input chunk of an input-tiled layer).
    pub channels: u32,
    /// Ce rows of the layer whose activations the run reads: the host loads rows
    /// `act_rows` at activation addresses `0..act_rows.len()` before the run (all rows unless the
    /// layer is input-tiled).
    pub act_rows: std::ops::Range<u32>,
    /// Coefficient stream entries, in issue order.
    pub coef: Vec<Word>,
    /// Basis words: `[local_tile * blocks + block]` (none in the dense baseline).
    pub basis: Vec<Word>,
    /// Weight-shift words, one per tile (none in exact mode or the dense baseline).
    pub wshift: Vec<Word>,
    /// Output tiles of `lanes` channels in this run.
    pub tiles: u32,
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
    /// A convolution's kernel row (`KH_BITS` wide; 0 for other layers).
    pub kh_lo: u32,
    pub first_bit: u32,
    pub last_bit: u32,
}

impl CoefLayout {
    pub fn of(cfg: &AccelConfig) -> Self {
        let bsel_lo = cfg.coef_codes_bits();
        let row_lo = bsel_lo + cfg.bsel_bits();
        let kh_lo = row_lo + cfg.act_addr_bits();
        let first_bit = kh_lo + crate::params::KH_BITS;
        CoefLayout {
            codes_lo: 0,
            bsel_lo,
            row_lo,
            kh_lo,
            first_bit,
            last_bit: first_bit + 1,
        }
    }
}

/// Packs up to `cfg.slots` activation vectors `x` (`[tokens][layer.inputs]`, tokens ≤ slots)
/// into activation words, one per Ce row: slot `p`'s three activations of row `r` at
/// `(3p + j) · act_bits`. Padding inputs and slots past the last token are zero.
pub fn pack_activations(cfg: &AccelConfig, layer: &FcLayer, x: &[i8]) -> Vec<Word> {
    let n = layer.inputs as usize;
    let tokens = x.len() / n.max(1);
    assert!(
        x.len() == tokens * n && tokens <= cfg.slots as usize,
        "pack_activations takes at most slots = {} whole vectors",
        cfg.slots
    );
    (0..layer.rows())
        .map(|r| {
            let mut w = Word::zero(cfg.act_word_bits());
            for (p, xt) in x.chunks(n).enumerate() {
                for j in 0..3 {
                    let v = if 3 * r + j < n { xt[3 * r + j] } else { 0 };
                    set_act(cfg, &mut w, (3 * p + j) as u32, v);
                }
            }
            w
        })
        .collect()
}

/// Writes activation `v` as value `i` of an activation word (two's complement, truncated to
/// act_bits; the range is checked by the caller).
fn set_act(cfg: &AccelConfig, w: &mut Word, i: u32, v: i8) {
    let ab = cfg.act_bits;
    w.set(i * ab, ab, u64::from(v as u8) & ((1 << ab) - 1));
}

/// What START says about a band run (docs/interface.md): the activation address of each
/// kernel row's words (`bases[kh]`, the word of channel 0 of the run's first pixel group),
/// which kernel rows lie inside the image (`mask` bit kh), the stride, and how many
/// consecutive pixel groups the run computes (`groups` ≥ 1: the stream is issued once per
/// group, the bases one word further each time; its outputs follow each other in the output
/// buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BandStart {
    pub bases: [u32; 3],
    pub mask: u8,
    pub stride: u32,
    pub groups: u32,
}

/// START's data word: bit 0 ReLU, bit 1 a band run, bit 2 stride 2.
pub fn start_data(relu: bool, band: Option<&BandStart>) -> u32 {
    let conv = band.map_or(0, |b| 2 | (u32::from(b.stride == 2) << 2));
    u32::from(relu) | conv
}

impl BandStart {
    /// The staging word PUSHed before START: `[base0][base1][base2][mask: 3][groups − 1]`,
    /// `act_addr_bits` per base and `out_addr_bits` for the groups, LSB first.
    pub fn word(&self, cfg: &AccelConfig) -> Word {
        let aw = cfg.act_addr_bits();
        let mut w = Word::zero(cfg.band_param_bits());
        for (k, &b) in self.bases.iter().enumerate() {
            w.set(k as u32 * aw, aw, u64::from(b));
        }
        w.set(3 * aw, 3, u64::from(self.mask));
        w.set(3 * aw + 3, cfg.out_addr_bits(), u64::from(self.groups - 1));
        w
    }
}

/// Where a 3×3 convolution's activations sit in the activation buffer for one band run
/// (docs/interface.md): the band holds three input rows (ring slots `iy mod 3`) of a strip of
/// `groups` pixel groups of every input channel; the word of (slot `b`, channel `ci`, group
/// `g`) is at `(b · in_channels + ci) · groups + g` and holds the `stride · (slots − 1) + 3`
/// input pixels `g0 · slots · stride − padding + i` of that row (zeros outside the image),
/// `g0` being the group's index in the output row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BandLayout {
    pub in_channels: u32,
    /// Pixel groups (of `slots` output pixels) per strip.
    pub groups: u32,
    pub stride: u32,
    pub padding: u32,
}

impl BandLayout {
    /// The band for a 3×3 convolution over inputs `width` pixels wide: as many groups of the
    /// output row as fit three rows of every channel in the activation buffer (at least one).
    pub fn plan(cfg: &AccelConfig, conv: &ConvShape, out_width: usize) -> Result<Self, String> {
        let per_group = 3 * u64::from(conv.in_channels);
        if per_group > u64::from(cfg.act_depth) {
            return Err(format!(
                "a 3×3 convolution with {} input channels needs a band of 3 rows × {} channels                  = {per_group} activation words, more than act_depth = {}",
                conv.in_channels, conv.in_channels, cfg.act_depth
            ));
        }
        let all = out_width.div_ceil(cfg.slots as usize) as u64;
        let groups = (u64::from(cfg.act_depth) / per_group).min(all).max(1) as u32;
        Ok(BandLayout {
            in_channels: conv.in_channels,
            groups,
            stride: u32::from(conv.stride),
            padding: u32::from(conv.padding),
        })
    }

    /// The activation address of (ring slot `b`, channel `ci`, local group `g`).
    pub fn addr(&self, b: u32, ci: u32, g: u32) -> u32 {
        (b * self.in_channels + ci) * self.groups + g
    }

    /// Input pixels in a word: `stride · (slots − 1) + 3`.
    pub fn window(&self, cfg: &AccelConfig) -> u32 {
        self.stride * (cfg.slots - 1) + 3
    }

    /// The word of one input row `row` (`width` pixels of one channel) for output pixel group
    /// `g0` (of the whole output row).
    pub fn word(&self, cfg: &AccelConfig, row: &[i8], g0: u32) -> Word {
        let mut w = Word::zero(cfg.act_word_bits());
        let x0 = i64::from(g0 * cfg.slots * self.stride) - i64::from(self.padding);
        for i in 0..self.window(cfg) {
            let ix = x0 + i64::from(i);
            if ix >= 0 && (ix as usize) < row.len() {
                set_act(cfg, &mut w, i, row[ix as usize]);
            }
        }
        w
    }
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
    if cfg.is_dense() {
        return Err(layer.err(format!(
            "config `{}` is the dense baseline: it takes int8 weights (pack_layer_dense), not \
             a compressed layer",
            cfg.name
        )));
    }
    pack(cfg, layer, None, None)
}

/// Packs a 3×3 convolution for band runs with the activation layout `band`
/// ([`BandLayout::plan`]): entry row `r = 3·ci + kh` reads word `base[kh] + ci · groups`.
/// `dense` as in [`pack_layer_dense`] for the dense baseline (None: SmartDeal).
pub fn pack_layer_band(
    cfg: &AccelConfig,
    layer: &FcLayer,
    dense: Option<&[i32]>,
    band: &BandLayout,
) -> Result<Vec<RunImage>, LayerError> {
    if cfg.is_dense() != dense.is_some() {
        return Err(layer.err(format!(
            "config `{}` takes {}",
            cfg.name,
            if cfg.is_dense() {
                "int8 weights"
            } else {
                "the compressed layer"
            }
        )));
    }
    pack(cfg, layer, dense, Some(band))
}

/// Packs a layer for the dense int8 baseline: `weights` (`[outputs][inputs]`, each in
/// -128..=127) are the layer's int8 MAC weights, decompressed by the host. The layer supplies the
/// shape, output parameters and ReLU. Every row gets a stream entry (the baseline does not know
/// which rows are zero), so a tile takes `max(rows, lanes)` entries.
pub fn pack_layer_dense(
    cfg: &AccelConfig,
    layer: &FcLayer,
    weights: &[i32],
) -> Result<Vec<RunImage>, LayerError> {
    if !cfg.is_dense() {
        return Err(layer.err(format!(
            "config `{}` is a SmartDeal accelerator: it takes the compressed layer (pack_layer)",
            cfg.name
        )));
    }
    let n = layer.inputs as usize;
    if weights.len() != layer.outputs as usize * n {
        return Err(layer.err(format!(
            "{} dense weights for a {}×{n} layer",
            weights.len(),
            layer.outputs
        )));
    }
    if let Some(i) = weights.iter().position(|w| !(-128..=127).contains(w)) {
        return Err(layer.err(format!(
            "dense weight [{}][{}] = {} is not int8",
            i / n,
            i % n,
            weights[i]
        )));
    }
    pack(cfg, layer, Some(weights), None)
}

/// The activation address and kernel-row field of Ce row `r`: the row itself in a fully
/// connected run; `(ci · groups, kh)` in a band run.
fn row_fields(band: Option<&BandLayout>, r: usize) -> (u64, u64) {
    match band {
        None => (r as u64, 0),
        Some(b) => ((r as u64 / 3) * u64::from(b.groups), r as u64 % 3),
    }
}

fn pack(
    cfg: &AccelConfig,
    layer: &FcLayer,
    dense: Option<&[i32]>,
    band: Option<&BandLayout>,
) -> Result<Vec<RunImage>, LayerError> {
    layer.check_fits(cfg)?;
    let is_3x3 = layer.conv.is_some_and(|c| c.kernel == 3);
    if is_3x3 != band.is_some() {
        return Err(layer.err(
            "a 3×3 convolution runs in band runs (pack_layer_band), other layers do not"
                .to_string(),
        ));
    }
    if band.is_none() && (layer.rows() > cfg.act_depth as usize || factor_needs_tiling(cfg, layer))
    {
        return pack_input_tiled(cfg, layer, dense);
    }
    let lanes = cfg.lanes as usize;
    let tiles = (layer.outputs as usize).div_ceil(lanes);
    let blocks = layer.blocks();
    let lay = CoefLayout::of(cfg);
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
            .filter(|&r| dense.is_some() || chans.iter().any(|&o| layer.row_is_present(o, r)))
            .collect();
        // The drain rule: lanes × slots accumulators drain one per cycle.
        let order = tile_entries(cfg, layer, &present, lanes * cfg.slots as usize, 0);
        let entries = order.len();
        if entries > cfg.coef_depth as usize {
            return Err(err(format!(
                "output tile {t} needs {entries} stream entries but coef_depth = {}",
                cfg.coef_depth
            )));
        }
        // Basis words per tile (the dense baseline has no basis buffer).
        let tile_blocks = if cfg.has_basis() { blocks } else { 0 };
        let fits = |run: &RunImage| {
            let local_tiles = run.tiles as usize + 1;
            run.coef.len() + entries <= cfg.coef_depth as usize
                && local_tiles * tile_blocks <= cfg.b_depth as usize
                && local_tiles <= cfg.tiles_per_run() as usize
        };
        if cur.as_ref().is_some_and(|run| !fits(run)) {
            runs.push(cur.take().expect("checked above"));
        }
        let run = cur.get_or_insert_with(|| RunImage {
            first_channel: (t * lanes) as u32,
            channels: 0,
            act_rows: 0..layer.rows() as u32,
            coef: Vec::new(),
            basis: Vec::new(),
            wshift: Vec::new(),
            tiles: 0,
            oparam: Vec::new(),
            relu: layer.relu,
            useful_entries: 0,
        });
        let local_tile = run.tiles as usize;
        if (local_tile + 1) * tile_blocks > cfg.b_depth as usize {
            return Err(err(format!(
                "{blocks} blocks per channel exceed b_depth = {}",
                cfg.b_depth
            )));
        }

        // Basis words of this tile, one per block.
        for blk in 0..tile_blocks {
            run.basis.push(basis_word(cfg, layer, &chans, blk));
        }
        // Weight shifts (one word per tile) and output parameters (one word per channel slot).
        if cfg.has_wshift() {
            run.wshift.push(wshift_word(cfg, layer, &chans));
        }
        run.oparam.extend(oparam_words(cfg, layer, &chans));
        // Stream entries: present rows in ascending order, then padding.
        for (e, &(row, r)) in order.iter().enumerate() {
            let mut w = Word::zero(cfg.coef_word_bits());
            if let Some(r) = row {
                set_lane_codes(cfg, layer, dense, &chans, r, &mut w);
                run.useful_entries += 1;
            }
            let bsel = local_tile * blocks + r / layer.rows_per_block as usize;
            let (addr, kh) = row_fields(band, r);
            w.set(lay.bsel_lo, cfg.bsel_bits(), bsel as u64);
            w.set(lay.row_lo, cfg.act_addr_bits(), addr);
            w.set(lay.kh_lo, crate::params::KH_BITS, kh);
            w.set(lay.first_bit, 1, u64::from(e == 0));
            w.set(lay.last_bit, 1, u64::from(e + 1 == entries));
            run.coef.push(w);
        }
        run.channels += chans.len() as u32;
        run.tiles += 1;
    }
    runs.extend(cur);
    Ok(runs)
}

/// Writes every lane's three stream elements for layer row `r` into entry `w`: Ce codes, or for
/// the dense baseline the int8 weights `[o][3r+k]` (0 past the last input: its activation is
/// the zero padding anyway).
fn set_lane_codes(
    cfg: &AccelConfig,
    layer: &FcLayer,
    dense: Option<&[i32]>,
    chans: &[usize],
    r: usize,
    w: &mut Word,
) {
    let lay = CoefLayout::of(cfg);
    let eb = cfg.coef_elem_bits();
    let n = layer.inputs as usize;
    for (l, &o) in chans.iter().enumerate() {
        for k in 0..3 {
            let slot = (l * 3 + k) as u32;
            let v = match dense {
                Some(wt) if 3 * r + k < n => u64::from(wt[o * n + 3 * r + k] as u8),
                Some(_) => 0,
                None => encode_coef(layer.coef_row(o, r)[k]),
            };
            w.set(lay.codes_lo + slot * eb, eb, v);
        }
    }
}

/// Input tiling, for a layer with more Ce rows than the activation buffer holds.
///
/// Each output tile becomes one run per input chunk of [`chunk_rows`] rows; the
/// accumulators keep their values between runs (START does not clear them, only an entry's
/// `first` flag does), so only the tile's first entry carries `first` and only its last entry
/// carries `last` (which drains the tile into the output buffer). A chunk without present rows is
/// skipped unless it is the first or the last; those then get one entry with every coefficient
/// absent (it adds zero). Each run's basis words are the blocks its chunk touches, so `bsel`
/// is relative to the chunk's first block. The host reloads the chunk's activations before each
/// run (`RunImage::act_rows`), so a layer costs `tiles × chunks` activation loads: slower than an
/// untiled layer, but bit-exact: the accumulator sums the same products in the same order.
fn pack_input_tiled(
    cfg: &AccelConfig,
    layer: &FcLayer,
    dense: Option<&[i32]>,
) -> Result<Vec<RunImage>, LayerError> {
    let lanes = cfg.lanes as usize;
    let rows = layer.rows();
    let rpb = layer.rows_per_block as usize;
    let chunk = chunk_rows(cfg);
    let chunks = rows.div_ceil(chunk);
    let lay = CoefLayout::of(cfg);
    let tiles = (layer.outputs as usize).div_ceil(lanes);
    let mut runs = Vec::new();
    for t in 0..tiles {
        let chans: Vec<usize> =
            (t * lanes..((t + 1) * lanes).min(layer.outputs as usize)).collect();
        for c in 0..chunks {
            let (lo, hi) = (c * chunk, ((c + 1) * chunk).min(rows));
            let present: Vec<usize> = (lo..hi)
                .filter(|&r| dense.is_some() || chans.iter().any(|&o| layer.row_is_present(o, r)))
                .collect();
            let (first, last) = (c == 0, c + 1 == chunks);
            if present.is_empty() && !first && !last {
                continue;
            }
            let order = tile_entries(cfg, layer, &present, 1, lo);
            let entries = order.len();
            let (b_lo, b_hi) = (lo / rpb, (hi - 1) / rpb);
            let basis = if cfg.has_basis() {
                if b_hi - b_lo + 1 > cfg.b_depth as usize {
                    return Err(layer.err(format!(
                        "an input chunk of {chunk} rows spans {} blocks of {rpb} rows, more than \
                         b_depth = {}",
                        b_hi - b_lo + 1,
                        cfg.b_depth
                    )));
                }
                (b_lo..=b_hi)
                    .map(|blk| basis_word(cfg, layer, &chans, blk))
                    .collect()
            } else {
                Vec::new()
            };
            let mut run = RunImage {
                first_channel: (t * lanes) as u32,
                channels: if last { chans.len() as u32 } else { 0 },
                act_rows: lo as u32..hi as u32,
                coef: Vec::with_capacity(entries),
                basis,
                wshift: if cfg.has_wshift() {
                    vec![wshift_word(cfg, layer, &chans)]
                } else {
                    Vec::new()
                },
                tiles: 1,
                // Only the run that drains the tile needs the output parameters.
                oparam: if last {
                    oparam_words(cfg, layer, &chans)
                } else {
                    Vec::new()
                },
                relu: layer.relu,
                useful_entries: 0,
            };
            for (e, &(row, r)) in order.iter().enumerate() {
                let mut w = Word::zero(cfg.coef_word_bits());
                if let Some(r) = row {
                    set_lane_codes(cfg, layer, dense, &chans, r, &mut w);
                    run.useful_entries += 1;
                }
                w.set(lay.bsel_lo, cfg.bsel_bits(), (r / rpb - b_lo) as u64);
                w.set(lay.row_lo, cfg.act_addr_bits(), (r - lo) as u64);
                w.set(lay.first_bit, 1, u64::from(first && e == 0));
                w.set(lay.last_bit, 1, u64::from(last && e + 1 == entries));
                run.coef.push(w);
            }
            runs.push(run);
        }
    }
    Ok(runs)
}

/// The stream entries of one tile (or one input chunk of it), in issue order: `(Some(r), r)` for
/// present row `r`, `(None, r)` for an all-absent padding entry that carries row `r`'s block and
/// address. At least `min_entries` (the drain rule); padding carries `pad_row` in the rebuild
/// dataflow (where a padding entry's block does not matter), so its streams stay as they were.
///
/// The factorized dataflow flushes a lane's block accumulators when the block changes
/// (docs/interface.md): each run of entries of one block (a **segment**) is padded to at least
/// [`FACTOR_FLUSH_CYCLES`] entries with its own block, so one flush ends before the next begins,
/// and the drain rule's padding extends the last segment.
fn tile_entries(
    cfg: &AccelConfig,
    layer: &FcLayer,
    present: &[usize],
    min_entries: usize,
    pad_row: usize,
) -> Vec<(Option<usize>, usize)> {
    let mut out: Vec<(Option<usize>, usize)> = present.iter().map(|&r| (Some(r), r)).collect();
    if cfg.is_factorized() {
        let (rpb, f) = (layer.rows_per_block as usize, FACTOR_FLUSH_CYCLES as usize);
        out.clear();
        for seg in present.chunk_by(|a, b| a / rpb == b / rpb) {
            out.extend(seg.iter().map(|&r| (Some(r), r)));
            let last = seg[seg.len() - 1];
            out.extend(std::iter::repeat_n(
                (None, last),
                f.saturating_sub(seg.len()),
            ));
        }
        if out.is_empty() {
            out.extend(std::iter::repeat_n((None, pad_row), f));
        }
    }
    let pad = out.last().map_or(
        pad_row,
        |&(_, r)| if cfg.is_factorized() { r } else { pad_row },
    );
    while out.len() < min_entries {
        out.push((None, pad));
    }
    out
}

/// Rows of one input chunk: `min(act_depth, coef_depth)`; for the factorized dataflow at most
/// `coef_depth / FACTOR_FLUSH_CYCLES`, so a chunk's entries fit the stream even when every row
/// is its own padded segment.
fn chunk_rows(cfg: &AccelConfig) -> usize {
    let stream = if cfg.is_factorized() {
        cfg.coef_depth / FACTOR_FLUSH_CYCLES
    } else {
        cfg.coef_depth
    };
    (cfg.act_depth.min(stream) as usize).max(1)
}

/// Whether a factorized layer that fits the activation buffer still needs input tiling: some
/// tile's padded segments overflow the stream.
fn factor_needs_tiling(cfg: &AccelConfig, layer: &FcLayer) -> bool {
    if !cfg.is_factorized() {
        return false;
    }
    let lanes = cfg.lanes as usize;
    (0..(layer.outputs as usize).div_ceil(lanes)).any(|t| {
        let chans = t * lanes..((t + 1) * lanes).min(layer.outputs as usize);
        let present: Vec<usize> = (0..layer.rows())
            .filter(|&r| chans.clone().any(|o| layer.row_is_present(o, r)))
            .collect();
        tile_entries(cfg, layer, &present, lanes * cfg.slots as usize, 0).len()
            > cfg.coef_depth as usize
    })
}

/// The basis word of block `blk` for the channels `chans` of one tile (lane l = chans[l]).
fn basis_word(cfg: &AccelConfig, layer: &FcLayer, chans: &[usize], blk: usize) -> Word {
    let mut w = Word::zero(cfg.b_word_bits());
    for (l, &o) in chans.iter().enumerate() {
        let b = &layer.basis[o * layer.blocks() + blk];
        for (k, brow) in b.iter().enumerate() {
            for (j, &v) in brow.iter().enumerate() {
                let idx = (l * 9 + k * 3 + j) as u32;
                let bits = u64::from(v as u8) & ((1 << cfg.basis_bits) - 1);
                w.set(idx * cfg.basis_bits, cfg.basis_bits, bits);
            }
        }
    }
    w
}

/// The weight-shift word of one tile.
fn wshift_word(cfg: &AccelConfig, layer: &FcLayer, chans: &[usize]) -> Word {
    let mut ws = Word::zero(cfg.wshift_word_bits());
    for (l, &o) in chans.iter().enumerate() {
        ws.set(
            l as u32 * cfg.wshift_bits(),
            cfg.wshift_bits(),
            u64::from(layer.wshift[o]),
        );
    }
    ws
}

/// The output-parameter words of one tile (`lanes` words; slots past the last channel are 0).
fn oparam_words(cfg: &AccelConfig, layer: &FcLayer, chans: &[usize]) -> Vec<Word> {
    (0..cfg.lanes as usize)
        .map(|l| {
            let mut w = Word::zero(cfg.oparam_word_bits());
            if let Some(&o) = chans.get(l) {
                w.set(0, BIAS_BITS, u64::from(layer.bias[o] as u32));
                w.set(BIAS_BITS, OUT_MULT_BITS, u64::from(layer.out_mult[o]));
                w.set(BIAS_BITS + OUT_MULT_BITS, 5, u64::from(layer.out_shift[o]));
            }
            w
        })
        .collect()
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
    fn word_set_equals_setting_bit_by_bit() {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut w = Word::zero(200);
        let mut bits = [false; 200];
        for _ in 0..2000 {
            let width = (next() % 65) as u32;
            let lo = (next() % u64::from(201 - width)) as u32;
            let v = next();
            w.set(lo, width, v);
            for i in 0..width {
                bits[(lo + i) as usize] = (v >> i) & 1 == 1;
            }
            for (i, &b) in bits.iter().enumerate() {
                assert_eq!(w.get(i as u32, 1) == 1, b, "bit {i} after {lo}+{width}");
            }
        }
    }

    #[test]
    fn factorized_streams_pad_every_block_segment_to_the_flush_length() {
        use crate::random::{random_layer, RandomLayerSpec};
        let rebuild = AccelConfig::preset("tiny").unwrap();
        let mut cfg = rebuild.clone();
        cfg.dataflow = crate::params::Dataflow::Factorized;
        cfg.weight_requant = crate::params::WeightRequant::Exact;
        cfg.acc_bits = cfg.acc_bits_required();
        cfg.validate().unwrap();
        // 60 rows in blocks of 8, 40 % of them present: segments of 0–8 present rows.
        let mut spec = RandomLayerSpec::for_config(&cfg, 180, 8, 0.4, 11);
        spec.rows_per_block = 8;
        let layer = random_layer(&spec);
        let lay = CoefLayout::of(&cfg);
        let f = FACTOR_FLUSH_CYCLES as usize;
        let runs = pack_layer(&cfg, &layer).unwrap();
        let mut segments = 0;
        for run in &runs {
            // Split the stream where the controller ends a segment: a tile's last entry, or a
            // change of basis word.
            let mut len = 0;
            for (i, w) in run.coef.iter().enumerate() {
                len += 1;
                let next = run.coef.get(i + 1);
                let ends = w.get(lay.last_bit, 1) == 1
                    || next.is_none_or(|n| {
                        n.get(lay.bsel_lo, cfg.bsel_bits()) != w.get(lay.bsel_lo, cfg.bsel_bits())
                    });
                if ends {
                    assert!(len >= f, "a segment of {len} entries");
                    segments += 1;
                    len = 0;
                }
            }
        }
        assert!(segments > 8, "{segments} segments");
        // The same present rows as the rebuild dataflow, whose streams are unpadded.
        let useful = |runs: &[RunImage]| runs.iter().map(|r| r.useful_entries).sum::<u32>();
        let plain = pack_layer(&rebuild, &layer).unwrap();
        assert_eq!(useful(&runs), useful(&plain));
        let entries = |runs: &[RunImage]| runs.iter().map(|r| r.coef.len()).sum::<usize>();
        assert!(entries(&runs) > entries(&plain));
    }

    #[test]
    fn input_tiling_splits_rows_into_chunks_that_carry_the_accumulators() {
        use crate::random::{random_layer, RandomLayerSpec};
        let mut cfg = AccelConfig::preset("tiny").unwrap();
        cfg.act_depth = 8;
        cfg.coef_depth = 16;
        // 30 rows → chunks of 8: 0..8, 8..16, 16..24, 24..30; 6 outputs → 2 tiles of 4 lanes.
        let layer = random_layer(&RandomLayerSpec::for_config(&cfg, 90, 6, 1.0, 2));
        let runs = pack_layer(&cfg, &layer).unwrap();
        assert_eq!(runs.len(), 8);
        let lay = CoefLayout::of(&cfg);
        for (t, tile) in runs.chunks(4).enumerate() {
            let ranges: Vec<_> = tile.iter().map(|r| r.act_rows.clone()).collect();
            assert_eq!(ranges, vec![0..8, 8..16, 16..24, 24..30]);
            let flags = |bit| -> Vec<u64> {
                tile.iter()
                    .flat_map(|r| r.coef.iter().map(move |w| w.get(bit, 1)))
                    .collect()
            };
            let (first, last) = (flags(lay.first_bit), flags(lay.last_bit));
            // Exactly one first (the tile's first entry) and one last (its final entry).
            assert_eq!(first.iter().sum::<u64>(), 1);
            assert_eq!(first[0], 1);
            assert_eq!(last.iter().sum::<u64>(), 1);
            assert_eq!(*last.last().unwrap(), 1);
            // Only the draining run produces outputs and loads output parameters.
            let chans: Vec<u32> = tile.iter().map(|r| r.channels).collect();
            assert_eq!(chans, vec![0, 0, 0, if t == 0 { 4 } else { 2 }]);
            assert!(tile[..3].iter().all(|r| r.oparam.is_empty()));
            // Row addresses are chunk-relative.
            for r in tile {
                for w in &r.coef {
                    assert!(w.get(lay.row_lo, cfg.act_addr_bits()) < r.act_rows.len() as u64);
                }
            }
        }
        // More blocks per channel (8 of 4 rows) than the basis buffer holds (2): fine when
        // tiled, since each 8-row chunk touches 2; the words are the chunk's blocks in order.
        let mut small_b = cfg.clone();
        small_b.b_depth = 2;
        let mut spec = RandomLayerSpec::for_config(&small_b, 90, 6, 1.0, 2);
        spec.rows_per_block = 4;
        let fine = random_layer(&spec);
        let runs = pack_layer(&small_b, &fine).unwrap();
        assert!(runs.iter().all(|r| r.basis.len() <= 2));
        assert_eq!(
            runs[1].basis[0],
            basis_word(&small_b, &fine, &[0, 1, 2, 3], 2)
        );
        // A chunk of absent rows that is neither first nor last is skipped.
        let mut sparse = layer.clone();
        for g in &mut sparse.row_present {
            for (r, p) in g.iter_mut().enumerate() {
                *p = !(8..16).contains(&r);
            }
        }
        let rows = sparse.rows();
        for o in 0..6 {
            for r in 8..16 {
                for k in 0..3 {
                    sparse.coef[(o * rows + r) * 3 + k] = Coef::Zero;
                }
            }
        }
        let runs = pack_layer(&cfg, &sparse).unwrap();
        assert!(runs.iter().all(|r| r.act_rows != (8..16)));
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
