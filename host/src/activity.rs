//! What the accelerator does for a layer execution — cycles, stream entries issued, bytes the
//! host moves, outputs drained — counted by the run planner as it drives a device
//! ([`RunStats`]), and the same counts derived without hardware by a dry run of the planner
//! against the documented cycle model ([`Counter`], what the golden engine reports). The energy
//! model (`crate::energy`) turns them into picojoules.

use crate::device::{Device, PlanError};
use smartdeal_core::image::{BandStart, RunImage, Word};
use smartdeal_core::{AccelConfig, MacMul};

/// Counts of one layer execution. Every engine fills what it can observe: the Verilator model
/// reports the cycles the RTL counted (`cycles_o`) and every simulated clock, a board the cycles
/// it reports, the golden engine the cycles of the documented cycle model ([`start_latency`]);
/// the planner counts the rest the same way for all of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunStats {
    /// Cycles the accelerator was busy (cycles_o), summed over runs and tokens.
    pub run_cycles: u64,
    /// All simulated clock cycles, including buffer loading and read-back (Verilator only).
    pub total_cycles: u64,
    /// STARTs (a layer is split into runs when it does not fit the buffers; a band run of a
    /// convolution computes several pixel groups per START).
    pub runs: u64,
    /// Stream entries issued that carry a present row.
    pub useful_entries: u64,
    /// All stream entries issued (present rows plus drain-rule padding), each one read of the
    /// stream, activation, basis and weight-shift buffers and one rebuild per lane.
    pub entries: u64,
    /// Activation words the host wrote.
    pub act_words: u64,
    /// Activation bytes the host wrote (words rounded up to whole bytes).
    pub act_bytes: u64,
    /// Weight bytes the host loaded: stream, basis, weight-shift and output-parameter words.
    pub weight_bytes: u64,
    /// Accumulators drained through the output stage (each one output-parameter read and one
    /// output-buffer write).
    pub outputs: u64,
    /// Output bytes the host read back.
    pub out_bytes: u64,
}

impl RunStats {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &RunStats) {
        self.run_cycles += other.run_cycles;
        self.total_cycles += other.total_cycles;
        self.runs += other.runs;
        self.useful_entries += other.useful_entries;
        self.entries += other.entries;
        self.act_words += other.act_words;
        self.act_bytes += other.act_bytes;
        self.weight_bytes += other.weight_bytes;
        self.outputs += other.outputs;
        self.out_bytes += other.out_bytes;
    }

    /// MAC operations the array performs: three per lane and slot of every issued entry
    /// (including idle lanes of a partial tile and idle slots; they multiply zeros).
    pub fn macs(&self, cfg: &AccelConfig) -> u64 {
        self.entries * 3 * u64::from(cfg.lanes * cfg.slots)
    }

    /// Rebuild terms (one gated shift-add of `±B[k][j] << code`): nine per lane of every issued
    /// entry; none in the dense baseline.
    pub fn rebuild_terms(&self, cfg: &AccelConfig) -> u64 {
        if cfg.is_dense() {
            0
        } else {
            self.entries * 9 * u64::from(cfg.lanes)
        }
    }

    pub(crate) fn load_run<D: Device>(
        &mut self,
        dev: &mut D,
        run: &RunImage,
    ) -> Result<(), D::Error> {
        self.weight_bytes += run_bytes(dev.config(), run);
        dev.load_run(run)
    }

    pub(crate) fn count_run<D: Device>(
        &mut self,
        dev: &mut D,
        run: &RunImage,
        band: Option<&BandStart>,
    ) -> Result<(), D::Error> {
        let cfg = dev.config();
        let passes = u64::from(band.map_or(1, |b| b.groups));
        if run.channels > 0 {
            self.outputs += passes * u64::from(run.tiles * cfg.lanes * cfg.slots);
        }
        self.run_cycles += dev.start(run, band)?;
        self.runs += 1;
        self.entries += passes * run.coef.len() as u64;
        self.useful_entries += passes * u64::from(run.useful_entries);
        Ok(())
    }

    pub(crate) fn load<D: Device>(
        &mut self,
        dev: &mut D,
        at: u32,
        words: &[Word],
    ) -> Result<(), D::Error> {
        self.act_words += words.len() as u64;
        self.act_bytes += words.len() as u64 * u64::from(dev.config().act_word_bits().div_ceil(8));
        dev.load_activations(at, words)
    }

    pub(crate) fn read_outputs<D: Device>(
        &mut self,
        dev: &mut D,
        n: u32,
    ) -> Result<Vec<i8>, D::Error> {
        self.out_bytes += u64::from(n);
        dev.read_outputs(n)
    }
}

/// Bytes of a run's stream, basis, weight-shift and output-parameter words, each word rounded
/// up to whole bytes.
pub fn run_bytes(cfg: &AccelConfig, run: &RunImage) -> u64 {
    let bytes = |n: usize, bits: u32| n as u64 * u64::from(bits.div_ceil(8));
    bytes(run.coef.len(), cfg.coef_word_bits())
        + bytes(run.basis.len(), cfg.b_word_bits())
        + bytes(run.wshift.len(), cfg.wshift_word_bits())
        + bytes(run.oparam.len(), cfg.oparam_word_bits())
}

/// The cycles a START of `run` costs beyond its issued entries (the documented cycle model,
/// docs/interface.md): 9 to drain the pipeline (S0r, S1, S2, S2b, S3..S6 and the run's last
/// cycle); a run that ends a tile (it has output channels) 8 more for the drain's and the
/// output requantizer's registers, plus one cycle per accumulator of the last tile (`lanes × slots`; earlier tiles
/// drain while later ones stream). The factorized dataflow adds [`FACTOR_EXTRA_LATENCY`]: its
/// last channel add comes after the last block's flush. `extra_stages` adds three cycles (S1r,
/// and S5p and S5s in the rebuild and dense lanes; one on the factorized dataflow), and two more
/// to a run that drains (O0, O2b); `mac_mul = "mult18x18d"` one more (S5d, the DSP blocks'
/// operand registers).
pub fn start_latency(cfg: &AccelConfig, run: &RunImage) -> u64 {
    let extra = if cfg.is_factorized() {
        FACTOR_EXTRA_LATENCY
    } else {
        0
    };
    // Extra stages: S1r, S5p and S5s in the rebuild and dense lanes (the factorized lane has
    // neither), and O0 and O2b in the output stage.
    let (pipe, out) = if cfg.extra_stages {
        (1 + 2 * u64::from(!cfg.is_factorized()), 2)
    } else {
        (0, 0)
    };
    let dsp = u64::from(cfg.mac_mul == MacMul::Mult18x18d);
    extra
        + pipe
        + dsp
        + if run.channels > 0 {
            17 + out + u64::from(cfg.lanes * cfg.slots)
        } else {
            9
        }
}

/// The factorized dataflow's extra latency per START: the rebuild dataflow adds a run's last
/// entry into the channel accumulators at S6 (after S2b, its seventh stage); the factorized lane
/// shifts it into terms at S3, adds them into its block accumulators at S4, and the block's
/// nine flush terms reach the channel accumulators at S7 … S15 (operands S5 … S13, products S6
/// … S14): 8 cycles later.
pub const FACTOR_EXTRA_LATENCY: u64 = 8;

/// A device that computes nothing: the planner's dry run. It accepts every load, reports the
/// cycle model's cycles for every START (`passes × entries + start_latency`) and reads zeros, so
/// [`RunStats`] from a dry run are what the hardware would count.
#[derive(Debug, Clone)]
pub struct Counter {
    cfg: AccelConfig,
}

impl Counter {
    pub fn new(cfg: &AccelConfig) -> Counter {
        Counter { cfg: cfg.clone() }
    }
}

impl Device for Counter {
    type Error = PlanError;
    fn config(&self) -> &AccelConfig {
        &self.cfg
    }
    fn load_activations(&mut self, _at: u32, _words: &[Word]) -> Result<(), PlanError> {
        Ok(())
    }
    fn load_run(&mut self, _run: &RunImage) -> Result<(), PlanError> {
        Ok(())
    }
    fn start(&mut self, run: &RunImage, band: Option<&BandStart>) -> Result<u64, PlanError> {
        let passes = u64::from(band.map_or(1, |b| b.groups));
        Ok(passes * run.coef.len() as u64 + start_latency(&self.cfg, run))
    }
    fn read_outputs(&mut self, n: u32) -> Result<Vec<i8>, PlanError> {
        Ok(vec![0; n as usize])
    }
}
