//! Verification side of the toolchain.
//!
//! * [`golden`]: the bit-exact integer model of the accelerator (docs/numerics.md);
//! * [`naive`]: an obviously-correct dense reference the golden model is tested against;
//! * [`bridge`]: our own Verilator bridge (generated C++ shim, cached build, `libloading`);
//! * [`cosim`]: drives the generated top through its host interface;
//! * [`link`]: the host driver of the board link protocol (docs/protocol.md), over any byte
//!   transport; [`simboard`]: the board top in Verilator as such a transport, UART bit by bit;
//!   [`serial`]: a real serial port as such a transport;
//! * [`strategies`]: random configurations, layers and activations for the property tests.
//!
//! The golden model never imports the RTL generator; only the co-simulation harness uses both.

pub mod bridge;
pub mod cosim;
pub mod golden;
pub mod link;
pub mod naive;
pub mod serial;
pub mod simboard;
pub mod strategies;
