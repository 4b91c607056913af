//! What the bridge is asked to build and load (the port table, the build specification), what
//! can go wrong, and the checks and port arithmetic the builder and the loader share. Its own
//! module so that both (`build`, `sim`) import from here, not from each other.

use std::path::PathBuf;

/// Version of the generated shim and its C ABI. Part of the build hash (changing the shim
/// generator must invalidate cached libraries) and checked by [`Sim::load`](super::Sim::load).
pub const SHIM_VERSION: &str = "smartdeal-bridge-shim-1";

/// Direction of a top-level port, seen from the design.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortDir {
    Input,
    Output,
}

/// One top-level port of the design. The order of the port list defines the port indices
/// used by [`Sim::set_idx`](super::Sim::set_idx) and friends; it does not have to follow the Verilog.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PortSpec {
    pub name: String,
    pub width: u32,
    pub dir: PortDir,
}

impl PortSpec {
    /// An input port.
    pub fn input(name: impl Into<String>, width: u32) -> Self {
        Self {
            name: name.into(),
            width,
            dir: PortDir::Input,
        }
    }

    /// An output port.
    pub fn output(name: impl Into<String>, width: u32) -> Self {
        Self {
            name: name.into(),
            width,
            dir: PortDir::Output,
        }
    }

    /// Number of little-endian 32-bit words that carry a value of this port.
    pub fn words(&self) -> usize {
        self.width.div_ceil(32) as usize
    }
}

/// What to build: a top module, its sources and the ports the shim exposes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSpec {
    /// Name of the top module (`--top-module`); the C++ model class is `V<top>`.
    pub top: String,
    /// Verilog sources, passed to Verilator in this order. Files pulled in with `` `include``
    /// are not hashed: list every file that can change.
    pub sources: Vec<PathBuf>,
    /// Ports exposed through the shim (a subset of the top's ports is fine).
    pub ports: Vec<PortSpec>,
    /// Build with VCD tracing (`--trace`).
    pub trace: bool,
}

/// Everything that can go wrong building or driving a simulation.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error(
        "verilator binary `{binary}` not found: install Verilator (run scripts/setup.sh) or set \
         the VERILATOR environment variable to its path"
    )]
    VerilatorNotFound { binary: String },
    #[error("C++ compiler `{binary}` not found: install g++ (run scripts/setup.sh) or set CXX")]
    CompilerNotFound { binary: String },
    #[error("`{command}` failed: {detail}")]
    ToolQuery { command: String, detail: String },
    #[error("{tool} failed ({status}): {summary} [full log: {}]", log.display())]
    ToolFailed {
        tool: String,
        status: String,
        /// The log file, kept in the build directory (`<cache>/<top>-<hash>.failed/` on failure).
        log: PathBuf,
        /// The diagnostic lines of the log (Verilator `%Error`/`%Warning`, compiler `error:`).
        summary: String,
        /// The last lines of the log, verbatim.
        tail: String,
    },
    #[error(
        "invalid {what} name `{name}`: only plain identifiers ([A-Za-z_][A-Za-z0-9_]*, no `__`) \
         are supported, Verilator escapes everything else"
    )]
    InvalidName { what: &'static str, name: String },
    #[error("port list does not match module `{top}`: {detail}")]
    SpecMismatch { top: String, detail: String },
    #[error("port `{name}` has invalid width {width}: must be at least 1")]
    InvalidWidth { name: String, width: u32 },
    #[error("port `{name}` is listed more than once")]
    DuplicatePort { name: String },
    #[error("build spec for `{top}` has no Verilog sources")]
    NoSources { top: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot load simulation library {}: {source}", path.display())]
    Load {
        path: PathBuf,
        #[source]
        source: libloading::Error,
    },
    #[error("{} was built by shim `{found}`, this crate expects `{expected}`: rebuild it", path.display())]
    ShimMismatch {
        path: PathBuf,
        expected: String,
        found: String,
    },
    #[error("{} was built for ports [{built}], but was loaded with ports [{given}]", path.display())]
    PortMismatch {
        path: PathBuf,
        built: String,
        given: String,
    },
    #[error("sim_new failed in {} (out of memory?)", path.display())]
    SimNew { path: PathBuf },
    #[error("no port named `{name}` (ports: {known})")]
    UnknownPort { name: String, known: String },
    #[error("port `{name}` is an output and cannot be set")]
    NotAnInput { name: String },
    #[error("port `{name}` is {width} bits wide: use set_wide/get_wide")]
    TooWide { name: String, width: u32 },
    #[error("the model was built without tracing: set BuildSpec::trace = true")]
    TraceNotEnabled,
    #[error("cannot open VCD file {}", path.display())]
    TraceOpen { path: PathBuf },
    #[error("path {} contains a NUL byte", path.display())]
    NulInPath { path: PathBuf },
}

impl BridgeError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

/// Checks a top or port name: a plain identifier without `__`, so the C++ member is spelled
/// exactly like the Verilog name.
pub(super) fn check_name(what: &'static str, name: &str) -> Result<(), BridgeError> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let ok = first_ok
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.contains("__");
    if ok {
        Ok(())
    } else {
        Err(BridgeError::InvalidName {
            what,
            name: name.to_owned(),
        })
    }
}

/// Validates a port list: names, widths and uniqueness.
pub(super) fn check_ports(ports: &[PortSpec]) -> Result<(), BridgeError> {
    let mut seen = std::collections::HashSet::new();
    for p in ports {
        check_name("port", &p.name)?;
        if p.width == 0 {
            return Err(BridgeError::InvalidWidth {
                name: p.name.clone(),
                width: p.width,
            });
        }
        if !seen.insert(p.name.as_str()) {
            return Err(BridgeError::DuplicatePort {
                name: p.name.clone(),
            });
        }
    }
    Ok(())
}

/// Canonical one-line form of a port list (`name:width:i|o,...`): hashed into the build
/// key, embedded in the shim and compared by [`Sim::load`](super::Sim::load).
pub(super) fn port_signature(ports: &[PortSpec]) -> String {
    ports
        .iter()
        .map(|p| {
            let dir = match p.dir {
                PortDir::Input => 'i',
                PortDir::Output => 'o',
            };
            format!("{}:{}:{}", p.name, p.width, dir)
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Mask of the low `width` bits of a `u64`.
pub(super) fn mask64(width: u32) -> u64 {
    if width >= 64 {
        u64::MAX
    } else {
        (1u64 << width) - 1
    }
}

/// Mask of the valid bits in the most significant 32-bit word of a `width`-bit value.
pub(super) fn top_word_mask(width: u32) -> u32 {
    match width % 32 {
        0 => u32::MAX,
        r => (1u32 << r) - 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["clk_i", "_x", "a1", "cmd_data_i", "x_"] {
            assert!(check_name("port", ok).is_ok(), "{ok}");
        }
        for bad in ["", "1a", "a__b", "a.b", "a b", "\\esc", "a$b", "é"] {
            assert!(check_name("port", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ports_checked() {
        assert!(check_ports(&[PortSpec::input("a", 0)]).is_err());
        assert!(check_ports(&[PortSpec::input("a", 1), PortSpec::output("a", 2)]).is_err());
        assert!(check_ports(&[PortSpec::input("a", 1), PortSpec::output("b", 200)]).is_ok());
        assert_eq!(
            port_signature(&[PortSpec::input("a", 1), PortSpec::output("b", 200)]),
            "a:1:i,b:200:o"
        );
        assert_eq!(PortSpec::input("w", 100).words(), 4);
        assert_eq!(PortSpec::input("w", 64).words(), 2);
        assert_eq!(PortSpec::input("w", 1).words(), 1);
    }
}
