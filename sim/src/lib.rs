//! The generated hardware in Verilator, as host engines.
//!
//! * [`bridge`]: our own Verilator bridge (generated C++ shim, cached build, `libloading`);
//! * [`harness`]: what every harness shares: the source cache, the port table, clock and trace;
//! * [`accel`]: the accelerator `sd_top` driven through its host interface, an
//!   `smartdeal_host::Engine` (`--engine verilator`);
//! * [`board`]: the board top `sd_board_top`, UART bit by bit, an `smartdeal_host::link`
//!   transport (`--engine sim-board`).

pub mod accel;
pub mod board;
pub mod bridge;
pub mod harness;

pub use accel::Accel;
pub use board::{SimBoard, UartDecoder};
pub use harness::CosimError;
