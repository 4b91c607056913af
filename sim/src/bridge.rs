//! Our own Verilator bridge: generate a C++ shim for a Verilog top, build it into a
//! cached `libsim.so` and drive it from Rust through `libloading`.
//!
//! # Why our own bridge
//!
//! The `verilated`/`verilator` crates target the Verilator 4 build layout and runtime API and
//! do not work with Verilator 5 (5.006 is what we run). Instead we keep a tiny C ABI
//! (`sim_new`, `sim_set`, `sim_get`, `sim_eval`, `sim_trace_*`, ...) generated per design
//! by [`build()`], and a safe Rust wrapper, [`Sim`].
//!
//! # Verilator 5 traps this module works around (measured on 5.006)
//!
//! * `verilator --cc --build` without `--exe` produces only `obj/V<top>__ALL.a` (no `lib`
//!   prefix, so it has to be linked by path) and **no runtime**: we compile `verilated.cpp`,
//!   `verilated_threads.cpp`, `verilated_vcd_c.cpp`, ... ourselves. The list of runtime files
//!   and the `-DVM_TRACE=...`-style defines are read back from `obj/V<top>_classes.mk`, so that
//!   the runtime, the shim and the archive are compiled with identical settings (a mismatch
//!   silently breaks the one-definition rule). The runtime objects are cached separately
//!   (`<cache>/runtime-<hash>/`) because they dominate the build time and do not depend on
//!   the design.
//! * The archive must be compiled with `-CFLAGS -fPIC` to go into a shared library.
//! * Every model gets its own `VerilatedContext`, so several instances (cargo test runs tests
//!   in parallel threads) do not share time, `$finish` state or random seeds. But
//!   `Verilated::threadContextp()` is a *thread-local* that only the constructors set, on the
//!   constructing thread, while `$finish`, `$stop`, `$random`, `$time` and file I/O go
//!   through it. The shim therefore re-points it at the instance's context on every call;
//!   that is what makes [`Sim`] safe to move between threads.
//! * Stock `vl_finish` calls `std::exit(0)` on a *second* `$finish` — inside `cargo test`
//!   that ends the whole test process with status 0, skipping the remaining tests while the
//!   run still looks green. The runtime is compiled with `-DVL_USER_FINISH` and the shim
//!   supplies a `vl_finish` that only records the finish ([`Sim::finished`]).
//! * `VerilatedContext::fatalOnError` defaults to true, so `$stop` aborts the process; the
//!   shim turns it off ([`Sim::got_error`] reports it instead).
//! * Tracing needs `traceEverOn(true)` on the *context* before the VCD file is opened, and
//!   `V<top>::trace()` must be called before `VerilatedVcdC::open()`; the shim does both.
//! * Port names that are not plain identifiers are hex-escaped in the generated C++, and so
//!   is a double underscore (`a__b` becomes `a___05Fb`); C++ keywords get a `__SYM__`
//!   prefix (and a fatal `SYMRSVDWORD` warning). We only accept plain identifiers without
//!   `__` and reject the rest with [`BridgeError::InvalidName`].
//! * Each `libsim.so` carries its own copy of the Verilator runtime (with its globals). A
//!   linker version script exports only the `sim_*` functions, so two different designs
//!   loaded into one process can never bind to each other's runtime or `V<top>` classes.
//!
//! Port widths are checked at shim compile time only up to the C++ storage class
//! (`CData`/`SData`/`IData`/`QData`/`VlWide<N>`): declaring a 7-bit port as 8 bits is not
//! detected, but values are always masked to the declared width.

mod build;
mod shim;
mod sim;
mod spec;

pub use build::{build, cache_root};
pub use sim::Sim;
pub use spec::{BridgeError, BuildSpec, PortDir, PortSpec, SHIM_VERSION};
