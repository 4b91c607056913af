//! Building and caching `libsim.so`: hashing, running Verilator and g++, atomic publication.
//!
//! Layout of the cache root:
//!
//! * `<top>-<hash16>/` — one design: `libsim.so`, `shim.cpp`, `exports.map`, `obj/` (the
//!   Verilator output), `verilator.log`, `gxx.log`;
//! * `<top>-<hash16>.failed/` — the last failed attempt for that hash, logs included;
//! * `runtime-<hash16>/` — the Verilator runtime objects (`verilated.o`, ...), shared by all
//!   designs built with the same Verilator, compiler and defines;
//! * `.tmp-*` — builds in progress.
//!
//! Every directory is built under a unique `.tmp-*` name and then renamed into place, so
//! concurrent processes building the same hash never see a half-built directory (the loser
//! of the rename race discards its copy). Within one process, builds of the same hash are
//! also serialized by a mutex, so parallel test threads build once.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use sha2::{Digest, Sha256};

use super::shim;
use super::spec::{
    check_name, check_ports, port_signature, BridgeError, BuildSpec, PortDir, SHIM_VERSION,
};

/// Name of the built library inside a design directory.
const LIB_NAME: &str = "libsim.so";
/// Marker written last into a runtime directory.
const RUNTIME_STAMP: &str = "complete";
/// Lines of a failing tool's log kept in [`BridgeError::ToolFailed::tail`].
const TAIL_LINES: usize = 40;

/// Builds (or finds in the cache) the simulation library for `spec` and returns the path of
/// its `libsim.so`.
///
/// The cache key hashes the Verilog file contents (in order), the top name, the port list,
/// the trace flag, `verilator --version`, the compiler and [`SHIM_VERSION`]; the library
/// lives in `cache_root/<top>-<hash16>/`. A cache hit costs reading and hashing the sources
/// and one `stat` (plus, once per process, `verilator --version`); the returned path is
/// absolute.
///
/// Verilator comes from the `VERILATOR` environment variable, else from `PATH`; the C++
/// compiler from `CXX`, else `g++` (Verilator's own make uses the same variable).
pub fn build(spec: &BuildSpec, cache_root: &Path) -> Result<PathBuf, BridgeError> {
    check_name("top module", &spec.top)?;
    check_ports(&spec.ports)?;
    if spec.sources.is_empty() {
        return Err(BridgeError::NoSources {
            top: spec.top.clone(),
        });
    }
    // Absolute, so that the returned path does not depend on the working directory and
    // Verilator's make (which runs in the obj dir) sees usable paths.
    let cache_root = std::path::absolute(cache_root)
        .map_err(|e| BridgeError::io(format!("cannot resolve {}", cache_root.display()), e))?;
    let cache_root = cache_root.as_path();
    let tools = tools()?;

    let mut h = Hasher::new();
    h.field(SHIM_VERSION.as_bytes());
    h.field(tools.verilator_version.as_bytes());
    h.field(tools.cxx_version.as_bytes());
    h.field(spec.top.as_bytes());
    h.field(port_signature(&spec.ports).as_bytes());
    h.field(&[u8::from(spec.trace)]);
    for src in &spec.sources {
        let text = fs::read(src).map_err(|e| {
            BridgeError::io(format!("cannot read Verilog source {}", src.display()), e)
        })?;
        h.field(&text);
    }
    let hash = h.finish16();

    let final_dir = cache_root.join(format!("{}-{hash}", spec.top));
    let lib = final_dir.join(LIB_NAME);
    if lib.is_file() {
        return Ok(lib);
    }

    let lock = key_lock(&hash);
    let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
    if lib.is_file() {
        return Ok(lib); // another thread of this process built it meanwhile
    }

    fs::create_dir_all(cache_root).map_err(|e| {
        BridgeError::io(
            format!("cannot create cache directory {}", cache_root.display()),
            e,
        )
    })?;
    let tmp = fresh_tmp_dir(cache_root, &format!("{}-{hash}", spec.top))?;

    match build_design(spec, &tools, cache_root, &tmp) {
        Ok(()) => {
            publish(&tmp, &final_dir, LIB_NAME)?;
            Ok(final_dir.join(LIB_NAME))
        }
        Err(err) => {
            // Keep the logs of the failed attempt next to where the build would have gone.
            let failed = cache_root.join(format!("{}-{hash}.failed", spec.top));
            let _ = fs::remove_dir_all(&failed);
            if fs::rename(&tmp, &failed).is_err() {
                return Err(err); // logs stay in the tmp dir named by the error
            }
            Err(match err {
                BridgeError::ToolFailed {
                    tool,
                    status,
                    log,
                    summary,
                    tail,
                } => BridgeError::ToolFailed {
                    tool,
                    status,
                    log: log
                        .strip_prefix(&tmp)
                        .map(|rel| failed.join(rel))
                        .unwrap_or(log),
                    summary,
                    tail,
                },
                other => other,
            })
        }
    }
}

/// The default cache root: `SMARTDEAL_SIM_CACHE` if set, else
/// `<target dir>/verilator-cache`, where the target dir is `CARGO_TARGET_DIR` (relative paths
/// are taken from the workspace root) or `<workspace root>/target`. The workspace root is
/// found by walking up from this crate's manifest directory to the nearest `Cargo.lock`, or
/// else to the topmost `Cargo.toml` with a `[workspace]` table.
pub fn cache_root() -> PathBuf {
    if let Some(dir) = non_empty_env("SMARTDEAL_SIM_CACHE") {
        return PathBuf::from(dir);
    }
    let root = workspace_root(Path::new(env!("CARGO_MANIFEST_DIR")));
    let target = match non_empty_env("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir), // join keeps an absolute `dir` as is
        None => root.join("target"),
    };
    target.join("verilator-cache")
}

fn workspace_root(start: &Path) -> PathBuf {
    if let Some(dir) = start.ancestors().find(|d| d.join("Cargo.lock").is_file()) {
        return dir.to_path_buf();
    }
    start
        .ancestors()
        .filter(|d| {
            fs::read_to_string(d.join("Cargo.toml"))
                .is_ok_and(|t| t.lines().any(|l| l.trim() == "[workspace]"))
        })
        .last()
        .unwrap_or(start)
        .to_path_buf()
}

fn non_empty_env(name: &str) -> Option<OsString> {
    std::env::var_os(name).filter(|v| !v.is_empty())
}

/// Length-prefixed SHA-256, so that field boundaries cannot be shifted.
struct Hasher(Sha256);

impl Hasher {
    fn new() -> Self {
        Self(Sha256::new())
    }
    fn field(&mut self, bytes: &[u8]) {
        self.0.update((bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
    }
    fn finish16(self) -> String {
        self.0.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// The external tools and their identities, looked up once per process and per
/// (`VERILATOR`, `CXX`) setting.
struct Tools {
    verilator: OsString,
    verilator_version: String,
    /// `$VERILATOR_ROOT`, as reported by `verilator --getenv VERILATOR_ROOT`.
    root: PathBuf,
    cxx: OsString,
    cxx_version: String,
}

/// (`VERILATOR`, `CXX`) -> their identities.
type ToolCache = Mutex<HashMap<(OsString, OsString), Arc<Tools>>>;

fn tools() -> Result<Arc<Tools>, BridgeError> {
    static CACHE: OnceLock<ToolCache> = OnceLock::new();
    let verilator = non_empty_env("VERILATOR").unwrap_or_else(|| "verilator".into());
    let cxx = non_empty_env("CXX").unwrap_or_else(|| "g++".into());
    let key = (verilator.clone(), cxx.clone());
    let cache = CACHE.get_or_init(Default::default);
    if let Some(t) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(Arc::clone(t));
    }

    let not_found_v = || BridgeError::VerilatorNotFound {
        binary: verilator.to_string_lossy().into_owned(),
    };
    let verilator_version = query(&verilator, &["--version"], not_found_v)?;
    let root = query(&verilator, &["--getenv", "VERILATOR_ROOT"], not_found_v)?;
    let root = PathBuf::from(root.trim());
    if !root.join("include").join("verilated.cpp").is_file() {
        return Err(BridgeError::ToolQuery {
            command: format!("{} --getenv VERILATOR_ROOT", verilator.to_string_lossy()),
            detail: format!(
                "{} has no include/verilated.cpp (broken Verilator install?)",
                root.display()
            ),
        });
    }
    let cxx_version = query(&cxx, &["--version"], || BridgeError::CompilerNotFound {
        binary: cxx.to_string_lossy().into_owned(),
    })?;
    let cxx_version = cxx_version.lines().next().unwrap_or_default().to_owned();
    let t = Arc::new(Tools {
        verilator,
        verilator_version: verilator_version.trim().to_owned(),
        root,
        cxx,
        cxx_version,
    });
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, Arc::clone(&t));
    Ok(t)
}

/// Runs `bin args` and returns its stdout.
fn query(
    bin: &OsStr,
    args: &[&str],
    not_found: impl Fn() -> BridgeError,
) -> Result<String, BridgeError> {
    let command = || format!("{} {}", bin.to_string_lossy(), args.join(" "));
    let out = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => not_found(),
            _ => BridgeError::io(format!("cannot run `{}`", command()), e),
        })?;
    if !out.status.success() {
        return Err(BridgeError::ToolQuery {
            command: command(),
            detail: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A mutex per cache key, shared by all threads of the process.
fn key_lock(key: &str) -> Arc<Mutex<()>> {
    static LOCKS: OnceLock<Mutex<HashMap<String, Arc<Mutex<()>>>>> = OnceLock::new();
    let mut map = LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    Arc::clone(map.entry(key.to_owned()).or_default())
}

/// Creates an empty, uniquely named `.tmp-*` directory in `cache_root`.
fn fresh_tmp_dir(cache_root: &Path, name: &str) -> Result<PathBuf, BridgeError> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let dir = cache_root.join(format!(".tmp-{name}-{}-{seq}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir(&dir)
        .map_err(|e| BridgeError::io(format!("cannot create {}", dir.display()), e))?;
    Ok(dir)
}

/// Renames the finished `tmp` directory to `final_dir`. If another process got there first
/// (the target exists and contains `product`), our copy is discarded; a leftover target
/// without `product` is replaced.
fn publish(tmp: &Path, final_dir: &Path, product: &str) -> Result<(), BridgeError> {
    for _ in 0..3 {
        match fs::rename(tmp, final_dir) {
            Ok(()) => return Ok(()),
            Err(_) if final_dir.join(product).exists() => {
                let _ = fs::remove_dir_all(tmp);
                return Ok(());
            }
            Err(e) if !final_dir.exists() => {
                return Err(BridgeError::io(
                    format!("cannot rename {} to {}", tmp.display(), final_dir.display()),
                    e,
                ))
            }
            Err(_) => {
                let _ = fs::remove_dir_all(final_dir);
            }
        }
    }
    Err(BridgeError::io(
        format!("cannot publish {}", final_dir.display()),
        std::io::Error::other("the target directory keeps reappearing without its product"),
    ))
}

/// Runs Verilator, prepares the runtime and links `tmp/libsim.so`.
fn build_design(
    spec: &BuildSpec,
    tools: &Tools,
    cache_root: &Path,
    tmp: &Path,
) -> Result<(), BridgeError> {
    let write = |name: &str, text: &str| {
        let path = tmp.join(name);
        fs::write(&path, text)
            .map_err(|e| BridgeError::io(format!("cannot write {}", path.display()), e))
    };
    write("shim.cpp", &shim::generate(&spec.top, &spec.ports))?;
    write("exports.map", shim::EXPORTS_MAP)?;

    // Default warnings only, and no -Wno-fatal: designs must stay lint clean.
    let obj = tmp.join("obj");
    let mut cmd = Command::new(&tools.verilator);
    cmd.args(["--cc", "--build", "-O2"]);
    if spec.trace {
        cmd.arg("--trace");
    }
    cmd.arg("-Mdir")
        .arg(&obj)
        .arg("--top-module")
        .arg(&spec.top)
        .args(["-CFLAGS", "-fPIC"])
        .args(&spec.sources);
    run_logged(&mut cmd, "verilator", &tmp.join("verilator.log"), || {
        BridgeError::VerilatorNotFound {
            binary: tools.verilator.to_string_lossy().into_owned(),
        }
    })?;

    check_ports_against_header(spec, &obj.join(format!("V{}.h", spec.top)))?;

    let archive = obj.join(format!("V{}__ALL.a", spec.top));
    let classes = obj.join(format!("V{}_classes.mk", spec.top));
    let mk = MakeVars::read(&classes)?;
    let flags = compile_flags(tools, &mk);
    let runtime = runtime_objects(tools, &mk, &flags, cache_root)?;

    let mut cmd = Command::new(&tools.cxx);
    // Run in the build dir so that diagnostics say `shim.cpp:12:` rather than a long path.
    cmd.current_dir(tmp)
        .args(&flags)
        .arg("-I")
        .arg(&obj)
        .arg("-shared")
        .arg("-o")
        .arg(tmp.join(LIB_NAME))
        .arg("shim.cpp")
        .args(&runtime)
        .arg(&archive)
        .arg(format!(
            "-Wl,--version-script={}",
            tmp.join("exports.map").display()
        ))
        // Unresolved symbols are link errors here, not dlopen errors later.
        .args(["-Wl,-z,defs", "-pthread", "-latomic"]);
    run_logged(
        &mut cmd,
        "g++ (shim and link)",
        &tmp.join("gxx.log"),
        || BridgeError::CompilerNotFound {
            binary: tools.cxx.to_string_lossy().into_owned(),
        },
    )
}

/// Direction of a port as declared in the generated model header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeaderDir {
    In,
    Out,
    InOut,
}

/// The top-level ports declared in `V<top>.h`: `VL_IN8(&clk_i,0,0);`,
/// `VL_OUTW(&wide_o,99,0,4);`, ... as (name, direction, width).
fn header_ports(text: &str) -> Vec<(String, HeaderDir, u32)> {
    let mut ports = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.trim().strip_prefix("VL_") else {
            continue;
        };
        let Some((kind, args)) = rest.split_once("(&") else {
            continue;
        };
        let dir = if kind.starts_with("INOUT") {
            HeaderDir::InOut
        } else if kind.starts_with("IN") {
            HeaderDir::In
        } else if kind.starts_with("OUT") {
            HeaderDir::Out
        } else {
            continue;
        };
        let args: Vec<&str> = args.trim_end_matches(");").split(',').collect();
        let (Some(name), Some(msb), Some(lsb)) = (args.first(), args.get(1), args.get(2)) else {
            continue;
        };
        let (Ok(msb), Ok(lsb)) = (msb.trim().parse::<i64>(), lsb.trim().parse::<i64>()) else {
            continue;
        };
        ports.push((
            (*name).to_owned(),
            dir,
            (msb - lsb).unsigned_abs() as u32 + 1,
        ));
    }
    ports
}

/// Compares the requested ports with the model header, so that a wrong name, width or
/// direction is a clear error instead of a C++ compile error (or, for widths within one
/// C++ storage class, silent truncation). Skipped if the header format is not recognized.
fn check_ports_against_header(spec: &BuildSpec, header: &Path) -> Result<(), BridgeError> {
    let text = fs::read_to_string(header)
        .map_err(|e| BridgeError::io(format!("cannot read {}", header.display()), e))?;
    let actual = header_ports(&text);
    if actual.is_empty() {
        return Ok(());
    }
    let mismatch = |detail: String| BridgeError::SpecMismatch {
        top: spec.top.clone(),
        detail,
    };
    let dir_name = |d: HeaderDir| match d {
        HeaderDir::In => "input",
        HeaderDir::Out => "output",
        HeaderDir::InOut => "inout",
    };
    for p in &spec.ports {
        let Some(&(_, dir, width)) = actual.iter().find(|(n, _, _)| *n == p.name) else {
            let known: Vec<&str> = actual.iter().map(|(n, _, _)| n.as_str()).collect();
            return Err(mismatch(format!(
                "no port `{}` (ports: {})",
                p.name,
                known.join(", ")
            )));
        };
        if width != p.width {
            return Err(mismatch(format!(
                "port `{}` is {} bits wide, not {}",
                p.name, width, p.width
            )));
        }
        let dir_ok = match p.dir {
            PortDir::Input => dir != HeaderDir::Out,
            PortDir::Output => dir != HeaderDir::In,
        };
        if !dir_ok {
            return Err(mismatch(format!(
                "port `{}` is an {}, not an {}",
                p.name,
                dir_name(dir),
                match p.dir {
                    PortDir::Input => "input",
                    PortDir::Output => "output",
                }
            )));
        }
    }
    Ok(())
}

/// The variables of `V<top>_classes.mk` we need: scalar `VM_*` settings and the runtime file
/// lists (`VM_GLOBAL_FAST`, `VM_GLOBAL_SLOW`).
struct MakeVars {
    scalars: BTreeMap<String, String>,
    globals: Vec<String>,
}

impl MakeVars {
    fn read(path: &Path) -> Result<Self, BridgeError> {
        let text = fs::read_to_string(path)
            .map_err(|e| BridgeError::io(format!("cannot read {}", path.display()), e))?;
        let mut scalars = BTreeMap::new();
        let mut globals = Vec::new();
        // `Some(is_global)` while inside a `NAME += \` continuation list.
        let mut continuing: Option<bool> = None;
        for line in text.lines() {
            let (items, is_global) = match continuing {
                Some(is_global) => (line, is_global),
                None => match line.split_once(" += ") {
                    Some((name, value)) => (value, name.trim().starts_with("VM_GLOBAL_")),
                    None => {
                        if let Some((name, value)) = line.split_once(" = ") {
                            let name = name.trim();
                            if name.starts_with("VM_") {
                                scalars.insert(name.to_owned(), value.trim().to_owned());
                            }
                        }
                        continue;
                    }
                },
            };
            let items = items.trim_end();
            continuing = items.ends_with('\\').then_some(is_global);
            if is_global {
                let items = items.trim_end_matches('\\').split_whitespace();
                globals.extend(items.map(str::to_owned));
            }
        }
        if globals.is_empty() {
            return Err(BridgeError::io(
                format!("cannot parse {}", path.display()),
                std::io::Error::other("no VM_GLOBAL_FAST/VM_GLOBAL_SLOW runtime file list"),
            ));
        }
        Ok(Self { scalars, globals })
    }

    fn flag(&self, name: &str) -> &str {
        self.scalars.get(name).map_or("0", String::as_str)
    }
}

/// Compiler flags shared by the runtime objects and the shim: the same `-DVM_*` defines
/// Verilator's make used for the archive (see `verilated.mk`).
fn compile_flags(tools: &Tools, mk: &MakeVars) -> Vec<OsString> {
    let include = tools.root.join("include");
    let mut flags: Vec<OsString> = ["-O2", "-fPIC", "-std=c++17", "-faligned-new", "-pthread"]
        .into_iter()
        .map(Into::into)
        .collect();
    for name in [
        "VM_COVERAGE",
        "VM_SC",
        "VM_TRACE",
        "VM_TRACE_FST",
        "VM_TRACE_VCD",
    ] {
        flags.push(format!("-D{name}={}", mk.flag(name)).into());
    }
    if mk.flag("VM_TIMING") == "1" {
        flags.push("-fcoroutines".into());
    }
    // Our shim defines vl_finish (see shim.rs).
    flags.push("-DVL_USER_FINISH".into());
    flags.push("-I".into());
    flags.push(include.clone().into());
    flags.push("-I".into());
    flags.push(include.join("vltstd").into());
    flags
}

/// Returns the runtime object files for `mk`, compiling them into
/// `cache_root/runtime-<hash16>/` on first use (in parallel, one g++ per file).
fn runtime_objects(
    tools: &Tools,
    mk: &MakeVars,
    flags: &[OsString],
    cache_root: &Path,
) -> Result<Vec<PathBuf>, BridgeError> {
    let mut h = Hasher::new();
    h.field(SHIM_VERSION.as_bytes());
    h.field(tools.verilator_version.as_bytes());
    h.field(tools.root.as_os_str().as_encoded_bytes());
    h.field(tools.cxx.as_encoded_bytes());
    h.field(tools.cxx_version.as_bytes());
    for f in flags {
        h.field(f.as_encoded_bytes());
    }
    for g in &mk.globals {
        h.field(g.as_bytes());
    }
    let hash = h.finish16();
    let final_dir = cache_root.join(format!("runtime-{hash}"));
    let objects = |dir: &Path| -> Vec<PathBuf> {
        mk.globals
            .iter()
            .map(|g| dir.join(format!("{g}.o")))
            .collect()
    };
    if final_dir.join(RUNTIME_STAMP).is_file() {
        return Ok(objects(&final_dir));
    }

    let lock = key_lock(&format!("runtime-{hash}"));
    let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
    if final_dir.join(RUNTIME_STAMP).is_file() {
        return Ok(objects(&final_dir));
    }
    let tmp = fresh_tmp_dir(cache_root, &format!("runtime-{hash}"))?;
    let include = tools.root.join("include");
    let mut children: Vec<(Child, PathBuf)> = Vec::new();
    let mut result = Ok(());
    for g in &mk.globals {
        let log = tmp.join(format!("gxx-{g}.log"));
        let mut cmd = Command::new(&tools.cxx);
        cmd.args(flags)
            .arg("-c")
            .arg(include.join(format!("{g}.cpp")))
            .arg("-o")
            .arg(tmp.join(format!("{g}.o")));
        match spawn_logged(&mut cmd, &log, || BridgeError::CompilerNotFound {
            binary: tools.cxx.to_string_lossy().into_owned(),
        }) {
            Ok(child) => children.push((child, log)),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    for (mut child, log) in children {
        let status = child.wait();
        if result.is_ok() {
            result = check_status(status, "g++ (Verilator runtime)", &log);
        }
    }
    // Failed runtime builds are not cached; the error names the log in the tmp dir.
    result?;
    fs::write(tmp.join(RUNTIME_STAMP), "")
        .map_err(|e| BridgeError::io(format!("cannot write stamp in {}", tmp.display()), e))?;
    publish(&tmp, &final_dir, RUNTIME_STAMP)?;
    Ok(objects(&final_dir))
}

/// Starts `cmd` with stdout and stderr going to `log` (after a line with the command).
fn spawn_logged(
    cmd: &mut Command,
    log: &Path,
    not_found: impl Fn() -> BridgeError,
) -> Result<Child, BridgeError> {
    let io_err = |e| BridgeError::io(format!("cannot write {}", log.display()), e);
    let mut file = File::create(log).map_err(io_err)?;
    writeln!(file, "$ {cmd:?}").map_err(io_err)?;
    let out = file.try_clone().map_err(io_err)?;
    cmd.stdin(Stdio::null()).stdout(out).stderr(file);
    // Verilator's make must not pick up a jobserver from an enclosing make/cargo.
    for var in ["MAKEFLAGS", "MFLAGS", "MAKELEVEL"] {
        cmd.env_remove(var);
    }
    cmd.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => not_found(),
        _ => BridgeError::io(format!("cannot run {cmd:?}"), e),
    })
}

fn run_logged(
    cmd: &mut Command,
    tool: &str,
    log: &Path,
    not_found: impl Fn() -> BridgeError,
) -> Result<(), BridgeError> {
    let status = spawn_logged(cmd, log, not_found)?.wait();
    check_status(status, tool, log)
}

fn check_status(
    status: std::io::Result<std::process::ExitStatus>,
    tool: &str,
    log: &Path,
) -> Result<(), BridgeError> {
    let status = status.map_err(|e| BridgeError::io(format!("waiting for {tool} failed"), e))?;
    if status.success() {
        return Ok(());
    }
    let text = fs::read_to_string(log).unwrap_or_default();
    let (summary, tail) = summarize(&text);
    Err(BridgeError::ToolFailed {
        tool: tool.to_owned(),
        status: status.to_string(),
        log: log.to_path_buf(),
        summary,
        tail,
    })
}

/// One-line summary (the diagnostic lines, or else the last few lines) and verbatim tail of
/// a tool log.
fn summarize(log: &str) -> (String, String) {
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n");
    let is_diag = |l: &&&str| {
        let t = l.trim_start();
        t.starts_with("%Error")
            || t.starts_with("%Warning")
            || t.contains("error:")
            || t.contains("undefined reference")
    };
    let mut diags: Vec<&str> = Vec::new();
    for l in lines.iter().filter(is_diag).map(|l| l.trim()) {
        if diags.len() < 8 && !diags.contains(&l) {
            diags.push(l);
        }
    }
    let summary = if diags.is_empty() {
        lines[lines.len().saturating_sub(5)..]
            .iter()
            .map(|l| l.trim())
            .collect::<Vec<_>>()
            .join(" | ")
    } else {
        diags.join(" | ")
    };
    (summary, tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_picks_diagnostics() {
        let log = "$ verilator ...\n%Error: x.v:3:1: syntax error, unexpected endmodule\n    3 | \
                   endmodule\n%Error: Exiting due to 1 error(s)\n";
        let (summary, tail) = summarize(log);
        assert_eq!(
            summary,
            "%Error: x.v:3:1: syntax error, unexpected endmodule | %Error: Exiting due to 1 error(s)"
        );
        assert!(tail.contains("3 | endmodule"));
        let (summary, _) = summarize("a\nb\n\nc\n");
        assert_eq!(summary, "a | b | c");
    }

    #[test]
    fn parses_classes_mk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Vx_classes.mk");
        fs::write(
            &path,
            "# comment\nVM_C11 = 1\nVM_TRACE = 1\nVM_CLASSES_FAST += \\\n\tVx \\\n\nVM_GLOBAL_FAST \
             += \\\n\tverilated \\\n\tverilated_vcd_c \\\n\tverilated_threads \\\n\nVM_GLOBAL_SLOW \
             += \\\n\n",
        )
        .unwrap();
        let mk = MakeVars::read(&path).unwrap();
        assert_eq!(
            mk.globals,
            ["verilated", "verilated_vcd_c", "verilated_threads"]
        );
        assert_eq!(mk.flag("VM_TRACE"), "1");
        assert_eq!(mk.flag("VM_SC"), "0");
    }

    #[test]
    fn parses_model_header() {
        let h = "class Vx {\n    VL_IN8(&a_i,8,1);\n    VL_INOUT8(&d_io,0,0);\n    \
                 VL_OUT8(&e_o,7,0);\n    VL_IN(&b_i,31,0);\n    VL_OUTW(&f_o,64,0,3);\n    \
                 VL_IN64(&c_i,63,0);\n    VL_UNCOPYABLE(Vx);\n";
        assert_eq!(
            header_ports(h),
            [
                ("a_i".to_owned(), HeaderDir::In, 8),
                ("d_io".to_owned(), HeaderDir::InOut, 1),
                ("e_o".to_owned(), HeaderDir::Out, 8),
                ("b_i".to_owned(), HeaderDir::In, 32),
                ("f_o".to_owned(), HeaderDir::Out, 65),
                ("c_i".to_owned(), HeaderDir::In, 64),
            ]
        );
    }

    #[test]
    fn workspace_root_found() {
        let root = workspace_root(Path::new(env!("CARGO_MANIFEST_DIR")));
        assert!(root.join("Cargo.toml").is_file());
        assert_ne!(root, Path::new(env!("CARGO_MANIFEST_DIR")));
    }
}
