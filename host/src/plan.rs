//! Run planning, written once for every engine that drives the accelerator through its host
//! interface (the Verilator model of `sd_top`, a board over the link): which buffer images a
//! layer needs ([`pack_for`]: output tiles, and input chunks for layers wider than the
//! activation buffer), and the order a host loads and runs them in ([`run_layer`]).

use smartdeal_core::image::{self, check_activations, pack_activations, RunImage, Word};
use smartdeal_core::{AccelConfig, FcLayer, LayerError};
use std::ops::Range;

/// The buffer images a host loads to run `layer` on `cfg`: the compressed layer for a SmartDeal
/// accelerator; for the dense int8 baseline, the int8 weights, decompressed on the host by the
/// golden model's [`smartdeal_golden::mac_weights`] (what a deployment of a dense accelerator
/// would store).
pub fn pack_for(cfg: &AccelConfig, layer: &FcLayer) -> Result<Vec<RunImage>, LayerError> {
    if cfg.is_dense() {
        layer.check_fits(cfg)?;
        image::pack_layer_dense(cfg, layer, &smartdeal_golden::mac_weights(cfg, layer))
    } else {
        image::pack_layer(cfg, layer)
    }
}

/// Why a layer cannot be planned on its input.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Layer(#[from] LayerError),
    /// Activations that do not fit the layer or the configuration (the message says why).
    #[error("{0}")]
    Input(String),
}

/// An accelerator driven through its host interface (docs/interface.md): what
/// [`run_layer`] needs, one step at a time.
pub trait Device {
    type Error: From<PlanError>;
    fn config(&self) -> &AccelConfig;
    /// Writes activation words to buffer addresses `0..words.len()`.
    fn load_activations(&mut self, words: &[Word]) -> Result<(), Self::Error>;
    /// Loads a run's stream, basis, weight-shift and output-parameter words, starts it and
    /// waits until it is done; returns the cycles the accelerator reported (cycles_o).
    fn execute(&mut self, run: &RunImage) -> Result<u64, Self::Error>;
    /// Reads output buffer entries `0..n`.
    fn read_outputs(&mut self, n: u32) -> Result<Vec<i8>, Self::Error>;
}

/// Counts of one layer execution. Every engine fills what it can observe: the Verilator
/// model counts every simulated clock, a board only the cycles it reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunStats {
    /// Cycles the accelerator reported busy (cycles_o), summed over runs and tokens.
    pub run_cycles: u64,
    /// All simulated clock cycles, including buffer loading and read-back.
    pub total_cycles: u64,
    /// Accelerator runs (a layer is split when it does not fit the buffers).
    pub runs: u64,
    /// Stream entries carrying a present row.
    pub useful_entries: u64,
    /// All stream entries (present rows plus drain-rule padding).
    pub entries: u64,
}

impl RunStats {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &RunStats) {
        self.run_cycles += other.run_cycles;
        self.total_cycles += other.total_cycles;
        self.runs += other.runs;
        self.useful_entries += other.useful_entries;
        self.entries += other.entries;
    }
}

/// Checks that `x` is whole `[tokens][inputs]` vectors of `layer` that `cfg` can hold.
pub fn check_input(cfg: &AccelConfig, layer: &FcLayer, x: &[i8]) -> Result<(), PlanError> {
    let n = layer.inputs as usize;
    if x.is_empty() || !x.len().is_multiple_of(n) {
        return Err(PlanError::Input(format!(
            "activations have {} values, not a multiple of the layer's {n} inputs",
            x.len()
        )));
    }
    check_activations(cfg, x).map_err(PlanError::Input)
}

/// Runs a layer on `x` (`[tokens][inputs]`, row-major) and returns `[tokens][outputs]` and the
/// counts (`total_cycles` is left to the device). Per token: each run's activation chunk is
/// loaded when it differs from the loaded one (input-tiled layers read one chunk of rows per
/// run, `RunImage::act_rows`), then the run is loaded, executed and its outputs read; a run
/// with no output channels (an input chunk that only accumulates) reads nothing.
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

/// [`run_packed`] on an input already checked.
fn run_checked<D: Device>(
    dev: &mut D,
    layer: &FcLayer,
    runs: &[RunImage],
    x: &[i8],
) -> Result<(Vec<i8>, RunStats), D::Error> {
    let n = layer.inputs as usize;
    let mut stats = RunStats::default();
    let mut y = vec![0i8; x.len() / n * layer.outputs as usize];
    for (t, xt) in x.chunks(n).enumerate() {
        let acts = pack_activations(dev.config(), layer, xt);
        let mut loaded: Option<Range<u32>> = None;
        for run in runs {
            if loaded.as_ref() != Some(&run.act_rows) {
                let rows = run.act_rows.start as usize..run.act_rows.end as usize;
                dev.load_activations(&acts[rows])?;
                loaded = Some(run.act_rows.clone());
            }
            stats.run_cycles += dev.execute(run)?;
            stats.runs += 1;
            stats.entries += run.coef.len() as u64;
            stats.useful_entries += u64::from(run.useful_entries);
            if run.channels == 0 {
                continue;
            }
            let yr = dev.read_outputs(run.channels)?;
            let base = t * layer.outputs as usize + run.first_channel as usize;
            y[base..base + yr.len()].copy_from_slice(&yr);
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
        fn load_activations(&mut self, words: &[Word]) -> Result<(), PlanError> {
            self.calls.push(format!("act {}", words.len()));
            Ok(())
        }
        fn execute(&mut self, run: &RunImage) -> Result<u64, PlanError> {
            self.calls.push(format!("run {}", run.first_channel));
            self.current = Some(run.clone());
            Ok(10)
        }
        fn read_outputs(&mut self, n: u32) -> Result<Vec<i8>, PlanError> {
            let run = self.current.as_ref().expect("a run before its read");
            assert_eq!(n, run.channels);
            self.calls.push(format!("read {n}"));
            Ok((0..n).map(|k| (run.first_channel + k) as i8).collect())
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
        assert_eq!(stats.runs, 2 * runs.len() as u64);
        assert_eq!(stats.run_cycles, 10 * stats.runs);
        let changes = runs
            .iter()
            .enumerate()
            .filter(|(i, r)| *i == 0 || runs[i - 1].act_rows != r.act_rows)
            .count();
        let loads = dev.calls.iter().filter(|c| c.starts_with("act")).count();
        assert_eq!(loads, 2 * changes);
        let reads = dev.calls.iter().filter(|c| c.starts_with("read")).count();
        assert_eq!(reads, 2 * runs.iter().filter(|r| r.channels > 0).count());
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
