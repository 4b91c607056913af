//! The `smartdeal` subcommands (one module each) and what they share.

pub mod bench;
pub mod board_build;
pub mod decompose;
pub mod eval;
pub mod finetune;
pub mod fpga;
pub mod inspect;
pub mod npy;
pub mod random_layer;
pub mod run;
pub mod sweep;

use anyhow::{anyhow, Context, Result};
use smartdeal_core::{AccelConfig, ConfigError};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Selects the accelerator configuration: a built-in preset or a TOML file.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArgs {
    /// Built-in accelerator preset: tiny, icebreaker or ulx3s [default: tiny]
    #[arg(long, value_name = "PRESET", conflicts_with = "config")]
    pub preset: Option<String>,
    /// Accelerator configuration file (TOML with the fields of AccelConfig)
    #[arg(long, value_name = "CFG_TOML")]
    pub config: Option<PathBuf>,
    /// Use the dense int8 baseline of that configuration: the same lanes, buffers and output
    /// stage, but weights stored uncompressed (int8, decompressed by the host) and plain
    /// multipliers instead of the rebuild engine
    #[arg(long)]
    pub dense: bool,
}

impl ConfigArgs {
    /// Loads and validates the selected configuration.
    pub fn load(&self) -> Result<AccelConfig> {
        let cfg = self.load_selected()?;
        Ok(if self.dense {
            cfg.dense_baseline()
        } else {
            cfg
        })
    }

    fn load_selected(&self) -> Result<AccelConfig> {
        match (&self.preset, &self.config) {
            (_, Some(path)) => AccelConfig::from_toml_file(path).map_err(|e| match e {
                // Read errors already name the file; field errors do not.
                ConfigError::Field { .. } => {
                    anyhow!(e).context(format!("config file {}", path.display()))
                }
                other => anyhow!(other),
            }),
            (Some(p), None) => Ok(AccelConfig::preset(p)?),
            (None, None) => Ok(AccelConfig::preset("tiny")?),
        }
    }
}

/// Writes `text` to stdout. A closed pipe (`smartdeal inspect m.sdm | head`) is not an error.
pub fn print_out(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("cannot write to standard output")
        }
        _ => Ok(()),
    }
}

/// A progress note on stderr (`smartdeal: ...`).
pub fn note(text: &str) {
    let _ = writeln!(std::io::stderr(), "smartdeal: {text}");
}

/// Checks that `name` can be used as a file-name prefix inside an output folder.
pub fn file_stem_for(name: &str) -> Result<&str> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == '\\' || c == '\0' || c.is_control());
    if bad {
        anyhow::bail!("layer name {name:?} cannot be used as a file name");
    }
    Ok(name)
}

/// `path` rendered for messages.
pub fn show(path: &Path) -> String {
    path.display().to_string()
}
