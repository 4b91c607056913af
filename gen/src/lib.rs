//! The SmartDeal accelerator generator.
//!
//! * [`ir`]: a small typed Verilog IR (widths checked when expressions are built, explicit sign
//!   extension) and its emitter;
//! * [`hw`]: one file per hardware block, each building one Verilog module from the
//!   [`AccelConfig`];
//! * [`design`]: the whole accelerator as a list of modules, written one `.v` per module with
//!   `params.json` and a file list.

pub mod board;
pub mod design;
pub mod hw;
pub mod ir;
pub mod options;
pub mod pll;
pub mod usb_uart;

pub use board::{generate_board, BoardDesign};
pub use design::{generate, multipliers, Design, Fault, GenOptions};
pub use pll::{Pll, PllFamily};
pub use smartdeal_core::protocol::BoardLink;
pub use smartdeal_core::AccelConfig;
pub use usb_uart::{CleanBaud, UsbUart};
