//! A small typed Verilog IR: expressions with checked widths ([`expr`]), modules ([`module`]),
//! and the printer ([`emit`]).
//!
//! Why our own IR rather than rust-hdl: widths here are runtime values (they come from a TOML
//! config), the output must pass `verilator -Wall`, one module must be reusable by many
//! instances, and signed arithmetic must be emitted exactly (see README, design notes).

pub mod emit;
pub mod expr;
pub mod module;

pub use expr::{CmpOp, Expr, RedOp, Ty};
pub use module::{Dir, Item, Module, Port, Reset};
