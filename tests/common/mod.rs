//! Helpers shared by the integration tests (`mod common;` in each test file): running the
//! `smartdeal` binary and checking how it ends, paths as arguments, and .npy / JSON files.
//!
//! Each test file is its own crate and uses only some of these, hence the `dead_code` allowances.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

// ---------------------------------------------------------------------------------------------
// Running the binary
// ---------------------------------------------------------------------------------------------

/// Runs the `smartdeal` binary with `args` in `cwd`, or where the test runs (the package root)
/// for `None`.
pub fn smartdeal<'a>(args: &[&str], cwd: impl Into<Option<&'a Path>>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_smartdeal"));
    cmd.args(args);
    if let Some(dir) = cwd.into() {
        cmd.current_dir(dir);
    }
    cmd.output().expect("the smartdeal binary runs")
}

/// Runs `smartdeal args` and asserts success without a panic; returns stdout.
#[allow(dead_code)]
pub fn ok(args: &[&str], cwd: &Path) -> String {
    let out = smartdeal(args, cwd);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "smartdeal {args:?} failed ({}): {stderr}",
        out.status
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// Runs `smartdeal args`, asserts exit code 1, no panic or backtrace, and a stderr that is a
/// single `smartdeal: error:` line mentioning every one of `needles` (in any case); returns the
/// line.
#[allow(dead_code)]
pub fn fails(args: &[&str], cwd: &Path, needles: &[&str]) -> String {
    check_failure(args, cwd, needles, false)
}

/// [`fails`] for commands that report progress: notes may precede the error line, which must be
/// the only `smartdeal: error:` line and the last line.
#[allow(dead_code)]
pub fn fails_after_notes(args: &[&str], cwd: &Path, needles: &[&str]) -> String {
    check_failure(args, cwd, needles, true)
}

fn check_failure(args: &[&str], cwd: &Path, needles: &[&str], notes: bool) -> String {
    let out = smartdeal(args, cwd);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(
        out.status.code(),
        Some(1),
        "smartdeal {args:?}: expected exit code 1, got {} (stderr: {stderr})",
        out.status
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("backtrace"), "{stderr}");
    assert!(stderr.ends_with('\n'), "{stderr:?}");
    if !notes {
        assert_eq!(
            stderr.lines().count(),
            1,
            "stderr is not one line: {stderr:?}"
        );
    }
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("smartdeal: error: "))
        .collect();
    assert_eq!(errors.len(), 1, "not one error line: {stderr}");
    assert_eq!(
        stderr.lines().last(),
        Some(errors[0]),
        "the error line is not the last: {stderr}"
    );
    for n in needles {
        assert!(
            errors[0].to_lowercase().contains(&n.to_lowercase()),
            "stderr should mention {n:?}: {stderr}"
        );
    }
    errors[0].to_string()
}

/// Makes a random layer with `smartdeal random-layer --out DIR/FILE EXTRA...`; returns its path.
#[allow(dead_code)]
pub fn make_layer(dir: &Path, file: &str, extra: &[&str]) -> PathBuf {
    let path = dir.join(file);
    let mut args = vec!["random-layer", "--out", p(&path)];
    args.extend_from_slice(extra);
    let summary = ok(&args, dir);
    assert!(summary.contains("bytes"), "{summary}");
    path
}

/// `smartdeal run --engine ENGINE --model MODEL --input X --out Y EXTRA...` in `cwd`, which must
/// succeed; returns stdout (the run's summary).
#[allow(dead_code)]
pub fn run_model(
    engine: &str,
    model: &Path,
    x: &Path,
    y: &Path,
    cwd: &Path,
    extra: &[&str],
) -> String {
    let mut args = vec![
        "run",
        "--engine",
        engine,
        "--model",
        p(model),
        "--input",
        p(x),
        "--out",
        p(y),
    ];
    args.extend_from_slice(extra);
    ok(&args, cwd)
}

// ---------------------------------------------------------------------------------------------
// Paths and files
// ---------------------------------------------------------------------------------------------

/// A path as a command-line argument.
pub fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

/// [`p`], owned.
#[allow(dead_code)]
pub fn s(path: &Path) -> String {
    p(path).to_string()
}

/// Writes a C-order .npy array with npyz (the dtype is `T`'s default, `'|i1'` for i8).
#[allow(dead_code)]
pub fn write_npy<T: npyz::AutoSerialize + Copy>(path: &Path, shape: &[u64], data: &[T]) {
    use npyz::WriterBuilder;
    let mut buf = Vec::new();
    {
        let mut w = npyz::WriteOptions::<T>::new()
            .default_dtype()
            .shape(shape)
            .writer(&mut buf)
            .begin_nd()
            .unwrap();
        w.extend(data.iter().copied()).unwrap();
        w.finish().unwrap();
    }
    std::fs::write(path, buf).unwrap();
}

/// Reads a JSON file.
#[allow(dead_code)]
pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// numpy
// ---------------------------------------------------------------------------------------------

/// Runs `scripts/numpy_reference.py INTS LAYER X Y`: numpy's recomputation of `layer` from the
/// integers that `inspect --export-int` wrote into `ints`, on the input `x`, into `y`. The python
/// is `$SMARTDEAL_PYTHON`, or the venv that `scripts/setup.sh` makes.
#[allow(dead_code)]
pub fn numpy_reference(ints: &Path, layer: &str, x: &Path, y: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = std::env::var("SMARTDEAL_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join(".venv/bin/python3"));
    let st = Command::new(&python)
        .arg(root.join("scripts/numpy_reference.py"))
        .args([p(ints), layer, p(x), p(y)])
        .status()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}): run scripts/setup.sh, or set SMARTDEAL_PYTHON to a python \
                 with numpy",
                python.display()
            )
        });
    assert!(st.success(), "numpy_reference.py failed");
}
