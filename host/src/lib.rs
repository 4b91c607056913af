//! The host runtime: how layers are run on an accelerator, whichever it is.
//!
//! * [`engine`]: the [`Engine`] trait, the golden engine and the board engine;
//! * [`plan`]: run planning (buffer images, output and input tiling, the load/run/read order),
//!   once for every engine that drives the host interface;
//! * [`link`]: the host driver of the board link protocol (docs/protocol.md) over any byte
//!   [`link::Transport`]; [`serial`]: a real serial port as such a transport.
//!
//! This crate does not depend on the RTL generator: the protocol's vocabulary is in
//! `smartdeal-core`. The Verilator engines (`smartdeal-sim`) implement [`Engine`] and
//! [`link::Transport`] on top of it.

pub mod activity;
pub mod device;
pub mod energy;
pub mod engine;
pub mod link;
pub mod plan;
pub mod serial;

pub use engine::{BoardEngine, Engine, EngineError, GoldenEngine, Loaded, Slots};
pub use plan::{pack_for, RunStats};
