//! What the generator is asked for beyond the accelerator configuration: so far only the
//! deliberately injected faults that show the checks can fail. Its own module because both the
//! design assembly and the hardware blocks read it.

/// A deliberately injected bug, used to show that the checks can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The rebuild engine forgets one +1 carry of the folded negation.
    RebuildDropCarry,
    /// The factorized per-row update (`sd_factor_row`) forgets the negation carry of element 2.
    FactorDropCarry,
}

/// Generator options beyond the accelerator configuration.
#[derive(Debug, Clone, Default)]
pub struct GenOptions {
    pub fault: Option<Fault>,
}
