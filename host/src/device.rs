//! What the run planner (`crate::plan`) drives: an accelerator behind its host interface, one
//! step at a time, and why a layer cannot be planned.

use smartdeal_core::image::{BandStart, RunImage, Word};
use smartdeal_core::{AccelConfig, LayerError};

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
/// [`crate::plan::run_layer`] needs, one step at a time.
pub trait Device {
    type Error: From<PlanError>;
    fn config(&self) -> &AccelConfig;
    /// Writes activation words to buffer addresses `at .. at + words.len()`.
    fn load_activations(&mut self, at: u32, words: &[Word]) -> Result<(), Self::Error>;
    /// Loads a run's stream, basis, weight-shift and output-parameter words.
    fn load_run(&mut self, run: &RunImage) -> Result<(), Self::Error>;
    /// Starts the loaded run `run` (a band run with `band`'s parameters) and waits until it is
    /// done; returns the cycles the accelerator reported (cycles_o).
    fn start(&mut self, run: &RunImage, band: Option<&BandStart>) -> Result<u64, Self::Error>;
    /// Reads output buffer entries `0..n`.
    fn read_outputs(&mut self, n: u32) -> Result<Vec<i8>, Self::Error>;
}
