//! [`Sim`]: a loaded `libsim.so` and one model instance in it.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

use libloading::Library;

use super::build::build;
use super::spec::{
    check_ports, mask64, port_signature, top_word_mask, BridgeError, BuildSpec, PortDir, PortSpec,
    SHIM_VERSION,
};

type StrFn = unsafe extern "C" fn() -> *const c_char;
type NewFn = unsafe extern "C" fn() -> *mut c_void;
type HandleFn = unsafe extern "C" fn(*mut c_void);
type SetFn = unsafe extern "C" fn(*mut c_void, u32, *const u32);
type GetFn = unsafe extern "C" fn(*mut c_void, u32, *mut u32);
type StatusFn = unsafe extern "C" fn(*mut c_void) -> u32;
type TimeFn = unsafe extern "C" fn(*mut c_void, u64);
type TraceOpenFn = unsafe extern "C" fn(*mut c_void, *const c_char) -> c_int;

/// The shim's C ABI, as plain function pointers copied out of the library. They stay valid
/// as long as the [`Library`] they came from, which [`Sim`] owns.
struct Api {
    delete: HandleFn,
    eval: HandleFn,
    set: SetFn,
    get: GetFn,
    status: StatusFn,
    set_time: TimeFn,
    trace_open: TraceOpenFn,
    trace_dump: TimeFn,
    trace_close: HandleFn,
}

/// One instance of a Verilated model, loaded from a `libsim.so` produced by [`build()`].
///
/// Ports are addressed by name ([`Sim::set`], [`Sim::get`], which return errors for unknown
/// names) or, in hot loops, by index: look the index up once with [`Sim::port_index`], then
/// use [`Sim::set_idx`] / [`Sim::get_idx`] (and [`Sim::set_wide`] / [`Sim::get_wide`] for
/// ports wider than 64 bits). Values are little-endian; written values are masked to the
/// port width.
///
/// Every instance owns its own `VerilatedContext`, so instances in different threads (or
/// several in one thread) are independent, and a `Sim` may be moved to another thread.
/// Dropping it runs the design's `final` blocks, closes the trace and deletes the model.
pub struct Sim {
    handle: NonNull<c_void>,
    api: Api,
    ports: Vec<PortSpec>,
    index: HashMap<String, usize>,
    path: PathBuf,
    /// Declared last and only dropped after `Drop::drop` has deleted the model: the function
    /// pointers in `api` point into it.
    _lib: Library,
}

// SAFETY: the model is only reachable through this value, every call into it goes through
// `&self`/`&mut self` (and `Sim` is not `Sync`, so never from two threads at once), and the
// shim re-points Verilator's thread-local context pointer at the instance's own context on
// every call, so the thread that created the model does not matter.
unsafe impl Send for Sim {}

impl Sim {
    /// Loads `so_path` (built by [`build()`] for exactly these `ports`) and creates a model.
    ///
    /// The port list is compared with the one compiled into the library, because port
    /// indices are positional: a mismatch is an error, not silent misbehaviour.
    pub fn load(so_path: &Path, ports: &[PortSpec]) -> Result<Sim, BridgeError> {
        check_ports(ports)?;
        let load_err = |source| BridgeError::Load {
            path: so_path.to_path_buf(),
            source,
        };
        // SAFETY: loading runs the library's static initializers; the library is our own
        // generated shim plus the Verilator runtime, whose initializers have no preconditions.
        let lib = unsafe { Library::new(so_path) }.map_err(load_err)?;

        // SAFETY (all `symbol` calls): the types match the `extern "C"` definitions the shim
        // generator writes for this SHIM_VERSION (checked right below before any other use).
        let shim_version: StrFn =
            unsafe { symbol(&lib, b"sim_shim_version\0") }.map_err(load_err)?;
        // SAFETY: returns a pointer to a static NUL-terminated string.
        let found = unsafe { CStr::from_ptr(shim_version()) }
            .to_string_lossy()
            .into_owned();
        if found != SHIM_VERSION {
            return Err(BridgeError::ShimMismatch {
                path: so_path.to_path_buf(),
                expected: SHIM_VERSION.to_owned(),
                found,
            });
        }
        let port_list: StrFn = unsafe { symbol(&lib, b"sim_port_list\0") }.map_err(load_err)?;
        // SAFETY: returns a pointer to a static NUL-terminated string.
        let built = unsafe { CStr::from_ptr(port_list()) }
            .to_string_lossy()
            .into_owned();
        let given = port_signature(ports);
        if built != given {
            return Err(BridgeError::PortMismatch {
                path: so_path.to_path_buf(),
                built,
                given,
            });
        }

        let new: NewFn = unsafe { symbol(&lib, b"sim_new\0") }.map_err(load_err)?;
        let api = Api {
            delete: unsafe { symbol(&lib, b"sim_delete\0") }.map_err(load_err)?,
            eval: unsafe { symbol(&lib, b"sim_eval\0") }.map_err(load_err)?,
            set: unsafe { symbol(&lib, b"sim_set\0") }.map_err(load_err)?,
            get: unsafe { symbol(&lib, b"sim_get\0") }.map_err(load_err)?,
            status: unsafe { symbol(&lib, b"sim_status\0") }.map_err(load_err)?,
            set_time: unsafe { symbol(&lib, b"sim_set_time\0") }.map_err(load_err)?,
            trace_open: unsafe { symbol(&lib, b"sim_trace_open\0") }.map_err(load_err)?,
            trace_dump: unsafe { symbol(&lib, b"sim_trace_dump\0") }.map_err(load_err)?,
            trace_close: unsafe { symbol(&lib, b"sim_trace_close\0") }.map_err(load_err)?,
        };
        // SAFETY: no preconditions; returns null only on allocation failure.
        let handle = NonNull::new(unsafe { new() }).ok_or_else(|| BridgeError::SimNew {
            path: so_path.to_path_buf(),
        })?;
        let index = ports
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name.clone(), i))
            .collect();
        Ok(Sim {
            handle,
            api,
            ports: ports.to_vec(),
            index,
            path: so_path.to_path_buf(),
            _lib: lib,
        })
    }

    /// [`build()`]s `spec` in `cache_root` (a cache hit is cheap) and loads it.
    pub fn from_spec(spec: &BuildSpec, cache_root: &Path) -> Result<Sim, BridgeError> {
        let so = build(spec, cache_root)?;
        Self::load(&so, &spec.ports)
    }

    /// The port list, in index order.
    pub fn ports(&self) -> &[PortSpec] {
        &self.ports
    }

    /// The library this instance was loaded from.
    pub fn library_path(&self) -> &Path {
        &self.path
    }

    /// Index of the port called `name`, for [`Sim::set_idx`] and friends.
    pub fn port_index(&self, name: &str) -> Result<usize, BridgeError> {
        self.index
            .get(name)
            .copied()
            .ok_or_else(|| BridgeError::UnknownPort {
                name: name.to_owned(),
                known: self
                    .ports
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Sets input `name` (at most 64 bits wide) to `value`, masked to the port width.
    pub fn set(&mut self, name: &str, value: u64) -> Result<(), BridgeError> {
        let idx = self.port_index(name)?;
        let p = &self.ports[idx];
        if p.dir != PortDir::Input {
            return Err(BridgeError::NotAnInput {
                name: name.to_owned(),
            });
        }
        if p.width > 64 {
            return Err(BridgeError::TooWide {
                name: name.to_owned(),
                width: p.width,
            });
        }
        self.set_idx(idx, value);
        Ok(())
    }

    /// Reads port `name` (input or output, at most 64 bits wide).
    pub fn get(&self, name: &str) -> Result<u64, BridgeError> {
        let idx = self.port_index(name)?;
        let p = &self.ports[idx];
        if p.width > 64 {
            return Err(BridgeError::TooWide {
                name: name.to_owned(),
                width: p.width,
            });
        }
        Ok(self.get_idx(idx))
    }

    /// Sets input port `idx` to `value` (zero-extended for ports wider than 64 bits, masked
    /// to the port width).
    ///
    /// # Panics
    /// If `idx` is out of range or the port is an output (both programming errors; get the
    /// index from [`Sim::port_index`]).
    pub fn set_idx(&mut self, idx: usize, value: u64) {
        let p = self.input(idx);
        if p.width <= 64 {
            let v = value & mask64(p.width);
            let words = [v as u32, (v >> 32) as u32];
            // SAFETY: `idx` is a valid input port of this library; the shim reads
            // ceil(width / 32) <= 2 words.
            unsafe { (self.api.set)(self.handle.as_ptr(), idx as u32, words.as_ptr()) };
        } else {
            self.set_wide(idx, &[value as u32, (value >> 32) as u32]);
        }
    }

    /// Reads port `idx` (at most 64 bits wide).
    ///
    /// # Panics
    /// If `idx` is out of range or the port is wider than 64 bits (use [`Sim::get_wide`]).
    pub fn get_idx(&self, idx: usize) -> u64 {
        let p = self.port(idx);
        assert!(
            p.width <= 64,
            "port `{}` is {} bits wide: use get_wide",
            p.name,
            p.width
        );
        let mut words = [0u32; 2];
        // SAFETY: `idx` is a valid port; the shim writes ceil(width / 32) <= 2 words.
        unsafe { (self.api.get)(self.handle.as_ptr(), idx as u32, words.as_mut_ptr()) };
        (u64::from(words[1]) << 32 | u64::from(words[0])) & mask64(p.width)
    }

    /// Sets input port `idx` from little-endian 32-bit words. Missing words are zero, extra
    /// words and bits above the port width are ignored.
    ///
    /// # Panics
    /// If `idx` is out of range or the port is an output.
    pub fn set_wide(&mut self, idx: usize, words: &[u32]) {
        let p = self.input(idx);
        let n = p.words();
        let mut buf = vec![0u32; n];
        let k = words.len().min(n);
        buf[..k].copy_from_slice(&words[..k]);
        buf[n - 1] &= top_word_mask(p.width);
        // SAFETY: `idx` is a valid input port; the shim reads exactly `n` words.
        unsafe { (self.api.set)(self.handle.as_ptr(), idx as u32, buf.as_ptr()) };
    }

    /// Reads port `idx` as ceil(width / 32) little-endian 32-bit words (any width).
    ///
    /// # Panics
    /// If `idx` is out of range.
    pub fn get_wide(&self, idx: usize) -> Vec<u32> {
        let p = self.port(idx);
        let mut buf = vec![0u32; p.words()];
        // SAFETY: `idx` is a valid port; the shim writes exactly `words()` words.
        unsafe { (self.api.get)(self.handle.as_ptr(), idx as u32, buf.as_mut_ptr()) };
        if let Some(last) = buf.last_mut() {
            *last &= top_word_mask(p.width);
        }
        buf
    }

    /// Evaluates the model (settles combinational logic, runs triggered processes).
    pub fn eval(&mut self) {
        // SAFETY: valid handle.
        unsafe { (self.api.eval)(self.handle.as_ptr()) }
    }

    /// Sets the simulation time seen by `$time` (also done by [`Sim::trace_dump`]).
    pub fn set_time(&mut self, time: u64) {
        // SAFETY: valid handle.
        unsafe { (self.api.set_time)(self.handle.as_ptr(), time) }
    }

    /// True once the design executed `$finish` (or `$stop`). Unlike stock Verilator, a second
    /// `$finish` does not exit the process.
    pub fn finished(&self) -> bool {
        // SAFETY: valid handle.
        unsafe { (self.api.status)(self.handle.as_ptr()) & 1 != 0 }
    }

    /// True once the design executed `$stop` or a failing assertion (`$error`); these do not
    /// abort the process here.
    pub fn got_error(&self) -> bool {
        // SAFETY: valid handle.
        unsafe { (self.api.status)(self.handle.as_ptr()) & 2 != 0 }
    }

    /// Starts writing a VCD file to `path` (closing any previous one). Needs a library built
    /// with [`BuildSpec::trace`].
    pub fn trace_open(&mut self, path: &Path) -> Result<(), BridgeError> {
        use std::os::unix::ffi::OsStrExt as _;
        let c_path =
            CString::new(path.as_os_str().as_bytes()).map_err(|_| BridgeError::NulInPath {
                path: path.to_path_buf(),
            })?;
        // SAFETY: valid handle and NUL-terminated path.
        match unsafe { (self.api.trace_open)(self.handle.as_ptr(), c_path.as_ptr()) } {
            0 => Ok(()),
            -1 => Err(BridgeError::TraceNotEnabled),
            _ => Err(BridgeError::TraceOpen {
                path: path.to_path_buf(),
            }),
        }
    }

    /// Sets the simulation time to `time` and, if a trace is open, dumps all signals at it.
    pub fn trace_dump(&mut self, time: u64) {
        // SAFETY: valid handle.
        unsafe { (self.api.trace_dump)(self.handle.as_ptr(), time) }
    }

    /// Flushes and closes the trace file, if any.
    pub fn trace_close(&mut self) {
        // SAFETY: valid handle.
        unsafe { (self.api.trace_close)(self.handle.as_ptr()) }
    }

    fn port(&self, idx: usize) -> &PortSpec {
        match self.ports.get(idx) {
            Some(p) => p,
            None => panic!(
                "port index {idx} out of range ({} ports in {})",
                self.ports.len(),
                self.path.display()
            ),
        }
    }

    fn input(&self, idx: usize) -> &PortSpec {
        let p = self.port(idx);
        assert!(
            p.dir == PortDir::Input,
            "port `{}` is an output and cannot be set",
            p.name
        );
        p
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        // SAFETY: valid handle, deleted exactly once; the library is still loaded (`_lib` is
        // dropped after this).
        unsafe { (self.api.delete)(self.handle.as_ptr()) }
    }
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("path", &self.path)
            .field("ports", &self.ports)
            .finish_non_exhaustive()
    }
}

/// Copies a function pointer out of `lib`.
///
/// # Safety
/// `T` must be the exact function pointer type of the symbol.
unsafe fn symbol<T: Copy>(lib: &Library, name: &[u8]) -> Result<T, libloading::Error> {
    // SAFETY: forwarded to the caller.
    unsafe { lib.get::<T>(name).map(|s| *s) }
}
