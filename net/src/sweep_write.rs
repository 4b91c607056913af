//! Writing a sweep's files: `sweep.json`, `sweep.md` ([`crate::sweep`]) and the two plots
//! ([`crate::plot`]), so that neither of those two modules needs the other's writer.

use crate::plot::{svg, XAxis};
use crate::sweep::{write_whole, Sweep, JSON_FILE, MARKDOWN_FILE};
use crate::NetError;
use std::path::{Path, PathBuf};

impl Sweep {
    /// Writes `sweep.json`, `sweep.md` and the two plots into `dir` (each file replaced whole,
    /// so an interrupted run leaves the last complete set).
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>, NetError> {
        std::fs::create_dir_all(dir).map_err(|e| NetError::io(dir, e))?;
        let json = serde_json::to_string_pretty(self)
            .map_err(|e| NetError::Compress(format!("cannot serialize the sweep: {e}")))?
            + "\n";
        let mut files = Vec::new();
        for (name, text) in [(JSON_FILE, json), (MARKDOWN_FILE, self.to_markdown())] {
            let path = dir.join(name);
            write_whole(&path, &text)?;
            files.push(path);
        }
        for x in XAxis::ALL {
            let path = dir.join(x.file_name());
            write_whole(&path, &svg(self, x)?)?;
            files.push(path);
        }
        Ok(files)
    }
}
