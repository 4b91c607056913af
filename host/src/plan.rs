//! Run planning, written once for every engine that drives the accelerator through its host
//! interface (the Verilator model of `sd_top`, a board over the link): which buffer images a
//! layer needs ([`pack_for`]: output tiles, and input chunks for layers wider than the
//! activation buffer), and the order a host loads and runs them in ([`run_layer`]).

use smartdeal_core::image::{
    self, check_activations, pack_activations, BandLayout, BandStart, RunImage, Word,
};
use smartdeal_core::{AccelConfig, ConvShape, FcLayer, ImageDims, LayerError};
use std::ops::Range;

/// The buffer images a host loads to run `layer` (fully connected or 1×1) on `cfg`: the
/// compressed layer for a SmartDeal accelerator; for the dense int8 baseline, the int8 weights,
/// decompressed on the host by the golden model's [`smartdeal_golden::mac_weights`] (what a
/// deployment of a dense accelerator would store). A 3×3 convolution's images depend on the
/// input's width ([`pack_band`]), so they are packed when it runs.
pub fn pack_for(cfg: &AccelConfig, layer: &FcLayer) -> Result<Vec<RunImage>, LayerError> {
    if is_3x3(layer) {
        layer.check_fits(cfg)?;
        return Ok(Vec::new());
    }
    if cfg.is_dense() {
        layer.check_fits(cfg)?;
        image::pack_layer_dense(cfg, layer, &smartdeal_golden::mac_weights(cfg, layer))
    } else {
        image::pack_layer(cfg, layer)
    }
}

/// A 3×3 convolution's buffer images for band runs over output rows `out_width` pixels wide.
pub fn pack_band(
    cfg: &AccelConfig,
    layer: &FcLayer,
    conv: &ConvShape,
    out_width: usize,
) -> Result<(BandLayout, Vec<RunImage>), PlanError> {
    let band = BandLayout::plan(cfg, conv, out_width).map_err(|why| layer.err(why))?;
    let dense = cfg
        .is_dense()
        .then(|| smartdeal_golden::mac_weights(cfg, layer));
    let runs = image::pack_layer_band(cfg, layer, dense.as_deref(), &band)?;
    Ok((band, runs))
}

/// Pixel groups one band START of `run` computes: its outputs (`tiles × lanes × slots` per
/// group) must fit the output buffer.
fn per_start(cfg: &AccelConfig, run: &RunImage) -> usize {
    (cfg.tiles_per_run() / run.tiles).max(1) as usize
}

fn is_3x3(layer: &FcLayer) -> bool {
    layer.conv.is_some_and(|c| c.kernel == 3)
}

use crate::activity::run_bytes;
pub use crate::activity::RunStats;
pub use crate::device::{Device, PlanError};

/// Checks that `x` is whole `[tokens][inputs]` vectors of a fully connected `layer` that `cfg`
/// can hold.
pub fn check_input(cfg: &AccelConfig, layer: &FcLayer, x: &[i8]) -> Result<(), PlanError> {
    if let Some(c) = &layer.conv {
        return Err(PlanError::Input(format!(
            "layer `{}` is a {k}×{k} convolution: it takes images [N, {}, H, W], not vectors",
            layer.name,
            c.in_channels,
            k = c.kernel
        )));
    }
    let n = layer.inputs as usize;
    if x.is_empty() || !x.len().is_multiple_of(n) {
        return Err(PlanError::Input(format!(
            "activations have {} values, not a multiple of the layer's {n} inputs",
            x.len()
        )));
    }
    check_activations(cfg, x).map_err(PlanError::Input)
}

/// Checks that `x` is `dims` images of a convolution `layer` with at least one output pixel;
/// returns the layer's kernel geometry and the output `(height, width)`.
pub fn check_images(
    cfg: &AccelConfig,
    layer: &FcLayer,
    x: &[i8],
    dims: ImageDims,
) -> Result<(ConvShape, (usize, usize)), PlanError> {
    let Some(conv) = layer.conv else {
        return Err(PlanError::Input(format!(
            "layer `{}` is fully connected: it takes vectors [T, {}], not images",
            layer.name, layer.inputs
        )));
    };
    let c = conv.in_channels as usize;
    let want = dims.images * c * dims.height * dims.width;
    if dims.images == 0 || x.len() != want {
        return Err(PlanError::Input(format!(
            "{} activations are not {} image(s) of {c}×{}×{}",
            x.len(),
            dims.images,
            dims.height,
            dims.width
        )));
    }
    let out = conv.out_dims(dims).map_err(PlanError::Input)?;
    check_activations(cfg, x).map_err(PlanError::Input)?;
    Ok((conv, out))
}

/// Runs a layer on `x` (`[tokens][inputs]`, row-major) and returns `[tokens][outputs]` and the
/// counts (`total_cycles` is left to the device).
pub fn run_layer<D: Device>(
    dev: &mut D,
    layer: &FcLayer,
    x: &[i8],
) -> Result<(Vec<i8>, RunStats), D::Error> {
    check_input(dev.config(), layer, x)?;
    let runs = pack_for(dev.config(), layer).map_err(PlanError::from)?;
    run_checked(dev, layer, &runs, x)
}

/// [`run_layer`] with the layer's buffer images already packed (`runs = pack_for(cfg, layer)`),
/// for engines that run one layer many times.
pub fn run_packed<D: Device>(
    dev: &mut D,
    layer: &FcLayer,
    runs: &[RunImage],
    x: &[i8],
) -> Result<(Vec<i8>, RunStats), D::Error> {
    check_input(dev.config(), layer, x)?;
    run_checked(dev, layer, runs, x)
}

/// [`run_packed`] on an input already checked. Tokens go `slots` at a time (a token group);
/// each run reads `channels × slots` outputs, slot-minor, and a run with no output channels (an
/// input chunk of an input-tiled layer, whose accumulators carry into the tile's next run)
/// reads nothing. Two loop orders compute the same outputs: token groups outside and runs
/// inside (a group's activations load once, every run's weights once per group), or, when that
/// moves fewer bytes and the layer is not input-tiled, runs outside (every run's weights load
/// once, each group's activations once per run) — [`runs_outside`].
fn run_checked<D: Device>(
    dev: &mut D,
    layer: &FcLayer,
    runs: &[RunImage],
    x: &[i8],
) -> Result<(Vec<i8>, RunStats), D::Error> {
    let n = layer.inputs as usize;
    let slots = dev.config().slots as usize;
    let mut stats = RunStats::default();
    let mut y = vec![0i8; x.len() / n * layer.outputs as usize];
    let groups: Vec<(usize, Vec<Word>)> = x
        .chunks(n * slots)
        .map(|xg| (xg.len() / n, pack_activations(dev.config(), layer, xg)))
        .collect();
    if runs_outside(dev.config(), runs, &groups) {
        for run in runs {
            stats.load_run(dev, run)?;
            for (g, (tokens, acts)) in groups.iter().enumerate() {
                stats.load(dev, 0, acts)?;
                run_group(dev, &mut stats, layer, run, (g, *tokens), &mut y)?;
            }
        }
        return Ok((y, stats));
    }
    for (g, (tokens, acts)) in groups.iter().enumerate() {
        let mut loaded: Option<Range<u32>> = None;
        for run in runs {
            if loaded.as_ref() != Some(&run.act_rows) {
                let rows = run.act_rows.start as usize..run.act_rows.end as usize;
                stats.load(dev, 0, &acts[rows])?;
                loaded = Some(run.act_rows.clone());
            }
            stats.load_run(dev, run)?;
            run_group(dev, &mut stats, layer, run, (g, *tokens), &mut y)?;
        }
    }
    Ok((y, stats))
}

/// Whether to loop over runs outside token groups: only for a layer that is not input-tiled
/// (every run drains its tiles and reads all rows), and only when reloading each group's
/// activations per run moves fewer bytes than reloading every run's weights per group.
fn runs_outside(cfg: &AccelConfig, runs: &[RunImage], groups: &[(usize, Vec<Word>)]) -> bool {
    let tiled = runs.iter().any(|r| r.channels == 0);
    if tiled || runs.len() < 2 || groups.len() < 2 {
        return false;
    }
    let weights: u64 = runs.iter().map(|r| run_bytes(cfg, r)).sum();
    let acts = groups[0].1.len() as u64 * u64::from(cfg.act_word_bits().div_ceil(8));
    let (r, g) = (runs.len() as u64, groups.len() as u64);
    // Runs outside: W + g·r·A bytes; groups outside: g·W + g·A.
    weights + g * r * acts < g * weights + g * acts
}

/// Starts the loaded `run` on the loaded activations of token group `g` (`tokens` of them) and
/// reads its outputs into `y`.
fn run_group<D: Device>(
    dev: &mut D,
    stats: &mut RunStats,
    layer: &FcLayer,
    run: &RunImage,
    (g, tokens): (usize, usize),
    y: &mut [i8],
) -> Result<(), D::Error> {
    let slots = dev.config().slots as usize;
    let outs = layer.outputs as usize;
    stats.count_run(dev, run, None)?;
    if run.channels == 0 {
        return Ok(());
    }
    let yr = stats.read_outputs(dev, run.channels * slots as u32)?;
    for (c, vals) in yr.chunks(slots).enumerate() {
        for (p, &v) in vals.iter().take(tokens).enumerate() {
            y[(g * slots + p) * outs + run.first_channel as usize + c] = v;
        }
    }
    Ok(())
}

/// Runs a convolution `layer` on `dims` images `x` (`[N][C][H][W]`) and returns
/// `[N][outputs][H'][W']` and the counts. A 3×3 kernel runs as band runs
/// (`run_band`); a 1×1 kernel as a fully connected layer on the output pixels' channel
/// vectors (gathered with the stride; zero vectors in the padding).
pub fn run_images<D: Device>(
    dev: &mut D,
    layer: &FcLayer,
    runs: &[RunImage],
    x: &[i8],
    dims: ImageDims,
) -> Result<(Vec<i8>, RunStats), D::Error> {
    let (conv, (ho, wo)) = check_images(dev.config(), layer, x, dims)?;
    if conv.kernel == 3 {
        return run_band(dev, layer, &conv, x, dims, (ho, wo));
    }
    let (c, h, w) = (conv.in_channels as usize, dims.height, dims.width);
    let (s, p) = (usize::from(conv.stride), usize::from(conv.padding));
    let mut tokens = Vec::with_capacity(dims.images * ho * wo * c);
    for n in 0..dims.images {
        for oy in 0..ho {
            for ox in 0..wo {
                let (iy, ix) = ((oy * s).wrapping_sub(p), (ox * s).wrapping_sub(p));
                for ci in 0..c {
                    let inside = iy < h && ix < w;
                    tokens.push(if inside {
                        x[((n * c + ci) * h + iy) * w + ix]
                    } else {
                        0
                    });
                }
            }
        }
    }
    let (yt, stats) = run_checked(dev, layer, runs, &tokens)?;
    Ok((
        to_images(&yt, layer.outputs as usize, dims.images, ho * wo),
        stats,
    ))
}

/// `[N][pixels][C]` → `[N][C][pixels]`.
fn to_images(yt: &[i8], c: usize, images: usize, pixels: usize) -> Vec<i8> {
    let mut y = vec![0i8; yt.len()];
    for n in 0..images {
        for px in 0..pixels {
            for o in 0..c {
                y[(n * c + o) * pixels + px] = yt[(n * pixels + px) * c + o];
            }
        }
    }
    y
}

/// A 3×3 convolution as band runs (docs/interface.md). For each stream run, image and strip
/// of output pixel groups, the band slides down the image: before output row `y` the host
/// loads the input rows `y·stride − padding + kh` not yet in the band's three ring slots (only
/// the new rows), then starts one run per pixel group of the strip with the kernel rows' bases
/// and inside-the-image mask, and reads the run's `channels × slots` outputs.
fn run_band<D: Device>(
    dev: &mut D,
    layer: &FcLayer,
    conv: &ConvShape,
    x: &[i8],
    dims: ImageDims,
    (ho, wo): (usize, usize),
) -> Result<(Vec<i8>, RunStats), D::Error> {
    let cfg = dev.config().clone();
    let (band, runs) = pack_band(&cfg, layer, conv, wo)?;
    let slots = cfg.slots as usize;
    let (c, h, w) = (conv.in_channels as usize, dims.height, dims.width);
    let outs = layer.outputs as usize;
    let groups = wo.div_ceil(slots);
    let strip = band.groups as usize;
    let mut stats = RunStats::default();
    let mut y = vec![0i8; dims.images * outs * ho * wo];
    // Runs outside images: each run's weights load once for the whole batch.
    for run in &runs {
        stats.load_run(dev, run)?;
        for n in 0..dims.images {
            let image = &x[n * c * h * w..(n + 1) * c * h * w];
            for g_lo in (0..groups).step_by(strip) {
                let mut ring: [Option<usize>; 3] = [None; 3];
                for oy in 0..ho {
                    let rows: [Option<usize>; 3] = std::array::from_fn(|kh| {
                        (oy * usize::from(conv.stride) + kh)
                            .checked_sub(usize::from(conv.padding))
                            .filter(|&iy| iy < h)
                    });
                    for iy in rows.into_iter().flatten() {
                        if ring[iy % 3] != Some(iy) {
                            let words: Vec<Word> = (0..c)
                                .flat_map(|ci| {
                                    let row = &image[(ci * h + iy) * w..(ci * h + iy + 1) * w];
                                    (0..strip).map(move |g| (row, g))
                                })
                                .map(|(row, g)| band.word(&cfg, row, (g_lo + g) as u32))
                                .collect();
                            stats.load(dev, band.addr((iy % 3) as u32, 0, 0), &words)?;
                            ring[iy % 3] = Some(iy);
                        }
                    }
                    // One START computes as many consecutive pixel groups as the output
                    // buffer holds: `per_start` passes over the stream.
                    let g_hi = (g_lo + strip).min(groups);
                    for g0 in (g_lo..g_hi).step_by(per_start(&cfg, run)) {
                        let n_groups = per_start(&cfg, run).min(g_hi - g0);
                        let start = BandStart {
                            bases: std::array::from_fn(|kh| {
                                rows[kh].map_or(0, |iy| {
                                    band.addr((iy % 3) as u32, 0, (g0 - g_lo) as u32)
                                })
                            }),
                            mask: (0..3)
                                .filter(|&kh| rows[kh].is_some())
                                .map(|kh| 1u8 << kh)
                                .sum(),
                            stride: u32::from(conv.stride),
                            groups: n_groups as u32,
                        };
                        stats.count_run(dev, run, Some(&start))?;
                        let pass = (run.tiles * cfg.lanes * cfg.slots) as usize;
                        let count = (n_groups - 1) * pass + run.channels as usize * slots;
                        let yr = stats.read_outputs(dev, count as u32)?;
                        for (k, g) in (g0..g0 + n_groups).enumerate() {
                            let end = (k * pass + pass).min(yr.len());
                            for (ch, vals) in yr[k * pass..end].chunks(slots).enumerate() {
                                if ch >= run.channels as usize {
                                    break;
                                }
                                let o = run.first_channel as usize + ch;
                                for (p, &v) in vals.iter().enumerate() {
                                    let ox = g * slots + p;
                                    if ox < wo {
                                        y[((n * outs + o) * ho + oy) * wo + ox] = v;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    Ok((y, stats))
}

#[cfg(test)]
mod tests {
    use super::*;
    use smartdeal_core::random::{random_layer, RandomLayerSpec};

    /// Records what the planner asks of a device; outputs are the run's first channel plus
    /// the read index, so the test can see which run wrote which output.
    struct Recorder {
        cfg: AccelConfig,
        calls: Vec<String>,
        current: Option<RunImage>,
    }

    impl Device for Recorder {
        type Error = PlanError;
        fn config(&self) -> &AccelConfig {
            &self.cfg
        }
        fn load_activations(&mut self, _at: u32, words: &[Word]) -> Result<(), PlanError> {
            self.calls.push(format!("act {}", words.len()));
            Ok(())
        }
        fn load_run(&mut self, run: &RunImage) -> Result<(), PlanError> {
            self.current = Some(run.clone());
            Ok(())
        }
        fn start(&mut self, run: &RunImage, _band: Option<&BandStart>) -> Result<u64, PlanError> {
            assert_eq!(self.current.as_ref(), Some(run), "start the loaded run");
            self.calls.push(format!("run {}", run.first_channel));
            Ok(10)
        }
        fn read_outputs(&mut self, n: u32) -> Result<Vec<i8>, PlanError> {
            let run = self.current.as_ref().expect("a run before its read");
            let slots = self.cfg.slots;
            assert_eq!(n, run.channels * slots);
            self.calls.push(format!("read {n}"));
            Ok((0..n)
                .map(|k| (run.first_channel + k / slots) as i8)
                .collect())
        }
    }

    /// An 8-row activation buffer against a 150-input layer: several input chunks per output
    /// tile, so the planner must reload activations per chunk and read only after the last one.
    fn tiled() -> (AccelConfig, FcLayer) {
        let mut cfg = AccelConfig::preset("tiny").unwrap();
        cfg.act_depth = 8;
        cfg.coef_depth = 16;
        cfg.validate().unwrap();
        let layer = random_layer(&RandomLayerSpec::for_config(&cfg, 150, 20, 0.7, 3));
        (cfg, layer)
    }

    #[test]
    fn every_output_is_read_once_per_token_and_chunks_load_on_change() {
        let (cfg, layer) = tiled();
        let runs = pack_for(&cfg, &layer).unwrap();
        assert!(
            runs.iter().any(|r| r.channels == 0),
            "the layer is input-tiled"
        );
        let mut dev = Recorder {
            cfg: cfg.clone(),
            calls: Vec::new(),
            current: None,
        };
        let x = vec![1i8; 2 * 150];
        let (y, stats) = run_layer(&mut dev, &layer, &x).unwrap();
        let want: Vec<i8> = (0..2).flat_map(|_| (0..20).map(|o| o as i8)).collect();
        assert_eq!(y, want);
        // Tokens go `slots` at a time: one pass over the runs per group of tokens.
        let passes = 2usize.div_ceil(cfg.slots as usize);
        assert_eq!(stats.runs, (passes * runs.len()) as u64);
        assert_eq!(stats.run_cycles, 10 * stats.runs);
        let changes = runs
            .iter()
            .enumerate()
            .filter(|(i, r)| *i == 0 || runs[i - 1].act_rows != r.act_rows)
            .count();
        let loads = dev.calls.iter().filter(|c| c.starts_with("act")).count();
        assert_eq!(loads, passes * changes);
        let reads = dev.calls.iter().filter(|c| c.starts_with("read")).count();
        assert_eq!(
            reads,
            passes * runs.iter().filter(|r| r.channels > 0).count()
        );
    }

    /// Many tokens on a layer of several runs that is not input-tiled: the planner loads each
    /// run's weights once and each token group's activations once per run, and every output
    /// still lands at its token and channel.
    #[test]
    fn many_tokens_load_each_run_once() {
        let mut cfg = AccelConfig::preset("tiny").unwrap();
        cfg.coef_depth = 64;
        cfg.validate().unwrap();
        let layer = random_layer(&RandomLayerSpec::for_config(&cfg, 90, 20, 1.0, 3));
        let runs = pack_for(&cfg, &layer).unwrap();
        assert!(runs.len() > 1 && runs.iter().all(|r| r.channels > 0));
        let mut dev = Recorder {
            cfg: cfg.clone(),
            calls: Vec::new(),
            current: None,
        };
        let tokens = 16;
        let (y, stats) = run_layer(&mut dev, &layer, &vec![1i8; tokens * 90]).unwrap();
        let want: Vec<i8> = (0..tokens).flat_map(|_| (0..20).map(|o| o as i8)).collect();
        assert_eq!(y, want);
        let weights: u64 = runs.iter().map(|r| run_bytes(&cfg, r)).sum();
        assert_eq!(stats.weight_bytes, weights, "every run's weights once");
        let groups = tokens.div_ceil(cfg.slots as usize);
        let loads = dev.calls.iter().filter(|c| c.starts_with("act")).count();
        assert_eq!(loads, runs.len() * groups);
    }

    #[test]
    fn inputs_that_are_not_whole_vectors_are_refused() {
        let (cfg, layer) = tiled();
        for x in [vec![], vec![0i8; 149], vec![0i8; 151]] {
            let e = check_input(&cfg, &layer, &x).unwrap_err();
            assert!(e.to_string().contains("not a multiple"), "{e}");
        }
        assert!(check_input(&cfg, &layer, &[0i8; 300]).is_ok());
    }
}
