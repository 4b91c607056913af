//! End-to-end tests of the Verilator bridge: a small hand-written design is Verilated,
//! linked into `libsim.so` and driven clock by clock from Rust.
//!
//! Builds go to the shared cache (`bridge::cache_root()`), so re-runs are fast; tests that
//! need a fresh build use a unique design text or a temporary cache root.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use rand::{Rng, SeedableRng};
use smartdeal_sim::bridge::{self, BridgeError, BuildSpec, PortSpec, Sim};

/// Registered 8-bit adder, a 16-bit counter, a 40-bit (`QData`) incrementer and a 100-bit
/// (`VlWide<4>`) passthrough. `verilator --lint-only -Wall` clean.
const DUT: &str = r#"// Test design for the Verilator bridge.
module bridge_dut (
    input  wire         clk_i,
    input  wire         rst_ni,
    input  wire         finish_i,
    input  wire [7:0]   a_i,
    input  wire [7:0]   b_i,
    output reg  [7:0]   sum_o,
    output reg  [15:0]  count_o,
    input  wire [39:0]  mid_i,
    output wire [39:0]  mid_o,
    input  wire [99:0]  wide_i,
    output wire [99:0]  wide_o
);
    assign mid_o  = mid_i + 40'd1;
    assign wide_o = wide_i;

    always @(posedge clk_i) begin
        if (!rst_ni) begin
            sum_o   <= 8'd0;
            count_o <= 16'd0;
        end else begin
            sum_o   <= a_i + b_i;
            count_o <= count_o + 16'd1;
        end
        if (finish_i) begin
            $finish;
        end
    end
endmodule
"#;

fn ports() -> Vec<PortSpec> {
    vec![
        PortSpec::input("clk_i", 1),
        PortSpec::input("rst_ni", 1),
        PortSpec::input("finish_i", 1),
        PortSpec::input("a_i", 8),
        PortSpec::input("b_i", 8),
        PortSpec::output("sum_o", 8),
        PortSpec::output("count_o", 16),
        PortSpec::input("mid_i", 40),
        PortSpec::output("mid_o", 40),
        PortSpec::input("wide_i", 100),
        PortSpec::output("wide_o", 100),
    ]
}

/// Writes `text` as `bridge_dut.v` into `dir` and returns the spec.
fn spec_in(dir: &Path, text: &str, trace: bool) -> BuildSpec {
    let src = dir.join("bridge_dut.v");
    fs::write(&src, text).unwrap();
    BuildSpec {
        top: "bridge_dut".into(),
        sources: vec![src],
        ports: ports(),
        trace,
    }
}

/// Builds the standard design (shared cache) and returns the library path.
fn build_dut(trace: bool) -> PathBuf {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec_in(dir.path(), DUT, trace);
    bridge::build(&spec, &bridge::cache_root()).unwrap_or_else(|e| panic!("build failed: {e}"))
}

/// Port indices of the test design, looked up once.
struct Idx {
    clk: usize,
    rst: usize,
    finish: usize,
    a: usize,
    b: usize,
    sum: usize,
    count: usize,
    mid_i: usize,
    mid_o: usize,
    wide_i: usize,
    wide_o: usize,
}

impl Idx {
    fn of(sim: &Sim) -> Self {
        let i = |n: &str| sim.port_index(n).unwrap();
        Self {
            clk: i("clk_i"),
            rst: i("rst_ni"),
            finish: i("finish_i"),
            a: i("a_i"),
            b: i("b_i"),
            sum: i("sum_o"),
            count: i("count_o"),
            mid_i: i("mid_i"),
            mid_o: i("mid_o"),
            wide_i: i("wide_i"),
            wide_o: i("wide_o"),
        }
    }
}

/// One clock cycle: rising edge, then falling edge.
fn tick(sim: &mut Sim, clk: usize) {
    sim.set_idx(clk, 1);
    sim.eval();
    sim.set_idx(clk, 0);
    sim.eval();
}

fn reset(sim: &mut Sim, ix: &Idx) {
    sim.set_idx(ix.rst, 0);
    sim.set_idx(ix.clk, 0);
    sim.eval();
    tick(sim, ix.clk);
    tick(sim, ix.clk);
    sim.set_idx(ix.rst, 1);
    sim.eval();
}

/// Drives `cycles` random additions and checks sum, counter and the 40-bit path; returns
/// the number of checked cycles.
fn run_adder(sim: &mut Sim, seed: u64, cycles: u32) -> u32 {
    let ix = Idx::of(sim);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    reset(sim, &ix);
    assert_eq!(sim.get_idx(ix.sum), 0);
    assert_eq!(sim.get_idx(ix.count), 0);
    for cycle in 1..=cycles {
        let a: u64 = rng.gen_range(0..256);
        let b: u64 = rng.gen_range(0..256);
        sim.set_idx(ix.a, a);
        sim.set_idx(ix.b, b);
        tick(sim, ix.clk);
        assert_eq!(sim.get_idx(ix.sum), (a + b) % 256, "cycle {cycle}: {a}+{b}");
        assert_eq!(sim.get_idx(ix.count), u64::from(cycle), "counter");

        let mid: u64 = rng.gen_range(0..1u64 << 40);
        sim.set_idx(ix.mid_i, mid);
        sim.eval();
        assert_eq!(
            sim.get_idx(ix.mid_o),
            (mid + 1) & ((1 << 40) - 1),
            "mid {mid:#x}"
        );
    }
    cycles
}

#[test]
fn adder_computes_sums() {
    let so = build_dut(false);
    let mut sim = Sim::load(&so, &ports()).unwrap();
    assert_eq!(run_adder(&mut sim, 1, 300), 300);

    // Carry out of the low 32-bit word of the 40-bit port, and the all-ones wrap.
    let ix = Idx::of(&sim);
    sim.set_idx(ix.mid_i, 0xff_ffff_ffff);
    sim.eval();
    assert_eq!(sim.get_idx(ix.mid_o), 0);
    sim.set_idx(ix.mid_i, 0x00_ffff_ffff);
    sim.eval();
    assert_eq!(sim.get_idx(ix.mid_o), 0x01_0000_0000);

    // Values are masked to the port width (inputs read back).
    sim.set("a_i", 0x1ff).unwrap();
    assert_eq!(sim.get("a_i").unwrap(), 0xff);
    sim.set_idx(ix.mid_i, u64::MAX);
    assert_eq!(sim.get_idx(ix.mid_i), (1 << 40) - 1);
}

#[test]
fn wide_port_round_trip() {
    let so = build_dut(false);
    let mut sim = Sim::load(&so, &ports()).unwrap();
    let ix = Idx::of(&sim);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for _ in 0..100 {
        let words: Vec<u32> = (0..4).map(|_| rng.gen()).collect();
        sim.set_wide(ix.wide_i, &words);
        sim.eval();
        let mut expected = words.clone();
        expected[3] &= 0xf; // 100 bits = 3 words + 4 bits
        assert_eq!(sim.get_wide(ix.wide_o), expected);
    }
    // Short slices are zero-extended, extra words ignored; set_idx zero-extends.
    sim.set_wide(ix.wide_i, &[1, 2]);
    sim.eval();
    assert_eq!(sim.get_wide(ix.wide_o), [1, 2, 0, 0]);
    sim.set_wide(ix.wide_i, &[5, 6, 7, 0xffff_ffff, 9]);
    sim.eval();
    assert_eq!(sim.get_wide(ix.wide_o), [5, 6, 7, 0xf]);
    sim.set_idx(ix.wide_i, 0x1234_5678_9abc_def0);
    sim.eval();
    assert_eq!(sim.get_wide(ix.wide_o), [0x9abc_def0, 0x1234_5678, 0, 0]);
    // get_wide works on narrow ports too.
    assert_eq!(sim.get_wide(ix.count).len(), 1);
}

#[test]
fn bad_names_are_errors_not_panics() {
    let so = build_dut(false);
    let mut sim = Sim::load(&so, &ports()).unwrap();
    assert!(matches!(
        sim.set("nope", 1),
        Err(BridgeError::UnknownPort { .. })
    ));
    assert!(matches!(
        sim.get("nope"),
        Err(BridgeError::UnknownPort { .. })
    ));
    assert!(matches!(
        sim.port_index("nope"),
        Err(BridgeError::UnknownPort { .. })
    ));
    assert!(matches!(
        sim.set("sum_o", 1),
        Err(BridgeError::NotAnInput { .. })
    ));
    assert!(matches!(
        sim.set("wide_i", 1),
        Err(BridgeError::TooWide { .. })
    ));
    assert!(matches!(
        sim.get("wide_o"),
        Err(BridgeError::TooWide { .. })
    ));
    let msg = sim.set("nope", 1).unwrap_err().to_string();
    assert!(msg.contains("nope") && msg.contains("clk_i"), "{msg}");

    // The port list is checked against the one compiled into the library.
    let mut other = ports();
    other.swap(3, 4);
    assert!(matches!(
        Sim::load(&so, &other),
        Err(BridgeError::PortMismatch { .. })
    ));
    // Names Verilator would escape are rejected up front.
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec_in(dir.path(), DUT, false);
    spec.ports.push(PortSpec::input("a__b", 1));
    let err = bridge::build(&spec, dir.path()).unwrap_err();
    assert!(matches!(err, BridgeError::InvalidName { .. }), "{err}");
    spec.ports.pop();
    spec.ports.push(PortSpec::input("x", 0));
    let err = bridge::build(&spec, dir.path()).unwrap_err();
    assert!(matches!(err, BridgeError::InvalidWidth { .. }), "{err}");
}

fn mtime(p: &Path) -> SystemTime {
    fs::metadata(p).unwrap().modified().unwrap()
}

#[test]
fn second_build_hits_the_cache() {
    // A design text of its own, so the first build really runs Verilator even on re-runs.
    let unique = format!(
        "// cache test {} {:?}\n{DUT}",
        std::process::id(),
        SystemTime::now()
    );
    let dir = tempfile::tempdir().unwrap();
    let spec = spec_in(dir.path(), &unique, false);
    let root = bridge::cache_root();
    let so = bridge::build(&spec, &root).unwrap();
    let build_dir = so.parent().unwrap().to_path_buf();
    let log = build_dir.join("verilator.log");
    assert!(
        log.is_file(),
        "verilator.log kept in {}",
        build_dir.display()
    );
    assert!(build_dir.join("gxx.log").is_file());
    let (so_time, log_time) = (mtime(&so), mtime(&log));

    let start = Instant::now();
    let again = bridge::build(&spec, &root).unwrap();
    let elapsed = start.elapsed();
    assert_eq!(again, so);
    assert_eq!(mtime(&so), so_time, "libsim.so rebuilt");
    assert_eq!(mtime(&log), log_time, "verilator re-ran");
    assert!(elapsed.as_secs() < 2, "cache hit took {elapsed:?}");

    // The same sources under another path hash the same; a changed port list does not.
    let dir2 = tempfile::tempdir().unwrap();
    let spec2 = spec_in(dir2.path(), &unique, false);
    assert_eq!(bridge::build(&spec2, &root).unwrap(), so);

    let mut sim = Sim::load(&so, &ports()).unwrap();
    assert_eq!(run_adder(&mut sim, 3, 20), 20);
    drop(sim);
    fs::remove_dir_all(&build_dir).unwrap();
}

#[test]
fn trace_writes_vcd() {
    let so = build_dut(true);
    let dir = tempfile::tempdir().unwrap();
    let mut sim = Sim::load(&so, &ports()).unwrap();
    let ix = Idx::of(&sim);
    let vcd = dir.path().join("wave.vcd");
    sim.trace_open(&vcd).unwrap();
    let mut t = 0;
    sim.set_idx(ix.rst, 0);
    for cycle in 0..10u64 {
        if cycle == 2 {
            sim.set_idx(ix.rst, 1);
        }
        sim.set_idx(ix.a, cycle);
        sim.set_idx(ix.b, 3);
        for clk in [1, 0] {
            sim.set_idx(ix.clk, clk);
            sim.eval();
            sim.trace_dump(t);
            t += 5;
        }
    }
    sim.trace_close();
    let text = fs::read_to_string(&vcd).unwrap();
    assert!(text.contains("$enddefinitions"), "{text}");
    assert!(text.contains("sum_o") && text.contains("wide_i"));
    assert!(text.contains("#95"), "last timestamp dumped");
    assert_eq!(sim.get_idx(ix.sum), 9 + 3);

    // A second trace file on the same instance.
    let vcd2 = dir.path().join("again.vcd");
    sim.trace_open(&vcd2).unwrap();
    tick(&mut sim, ix.clk);
    sim.trace_dump(100);
    drop(sim); // closes the file
    assert!(fs::read_to_string(&vcd2)
        .unwrap()
        .contains("$enddefinitions"));

    // Unwritable path, and a library built without tracing.
    let mut sim = Sim::load(&so, &ports()).unwrap();
    let bad = dir.path().join("missing-dir").join("x.vcd");
    assert!(matches!(
        sim.trace_open(&bad),
        Err(BridgeError::TraceOpen { .. })
    ));
    let mut plain = Sim::load(&build_dut(false), &ports()).unwrap();
    assert!(matches!(
        plain.trace_open(&dir.path().join("no.vcd")),
        Err(BridgeError::TraceNotEnabled)
    ));
}

#[test]
fn syntax_error_reports_verilator_message() {
    let dir = tempfile::tempdir().unwrap();
    let broken = DUT.replace("assign wide_o = wide_i;", "assign wide_o = wide_i +;");
    let spec = spec_in(dir.path(), &broken, false);
    let cache = dir.path().join("cache");
    let err = bridge::build(&spec, &cache).unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("verilator failed"), "{msg}");
    assert!(msg.contains("%Error"), "{msg}");
    assert!(msg.contains("bridge_dut.v:16"), "{msg}");
    assert!(msg.contains("syntax error"), "{msg}");
    match err {
        BridgeError::ToolFailed { log, tail, .. } => {
            assert!(log.is_file(), "log kept at {}", log.display());
            assert!(log.ends_with("verilator.log"));
            assert!(tail.contains("syntax error"));
        }
        other => panic!("unexpected error {other:?}"),
    }
    // Nothing was cached.
    let cached: Vec<_> = fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("libsim.so").exists())
        .collect();
    assert!(cached.is_empty(), "{cached:?}");
}

#[test]
fn two_sims_in_two_threads() {
    let so = build_dut(false);
    // One created here and moved into a thread (Sim is Send), one created in its thread.
    let moved = Sim::load(&so, &ports()).unwrap();
    let t1 = std::thread::spawn(move || {
        let mut sim = moved;
        run_adder(&mut sim, 11, 2000)
    });
    let so2 = so.clone();
    let t2 = std::thread::spawn(move || {
        let mut sim = Sim::load(&so2, &ports()).unwrap();
        run_adder(&mut sim, 22, 2000)
    });
    assert_eq!(t1.join().unwrap(), 2000);
    assert_eq!(t2.join().unwrap(), 2000);

    // Interleaved instances in one thread keep separate state.
    let mut a = Sim::load(&so, &ports()).unwrap();
    let mut b = Sim::load(&so, &ports()).unwrap();
    let (ia, ib) = (Idx::of(&a), Idx::of(&b));
    reset(&mut a, &ia);
    reset(&mut b, &ib);
    for _ in 0..5 {
        tick(&mut a, ia.clk);
    }
    tick(&mut b, ib.clk);
    assert_eq!(a.get_idx(ia.count), 5);
    assert_eq!(b.get_idx(ib.count), 1);
}

#[test]
fn finish_is_per_instance_and_never_exits() {
    let so = build_dut(false);
    let mut a = Sim::load(&so, &ports()).unwrap();
    let b = Sim::load(&so, &ports()).unwrap();
    let ia = Idx::of(&a);
    // Run `a` in another thread than the one that created it: $finish must land in a's
    // own context, not in the thread's default one.
    let a = std::thread::spawn(move || {
        reset(&mut a, &ia);
        a.set_idx(ia.finish, 1);
        // Stock Verilator would std::exit(0) on the second $finish.
        tick(&mut a, ia.clk);
        tick(&mut a, ia.clk);
        tick(&mut a, ia.clk);
        a
    })
    .join()
    .unwrap();
    assert!(a.finished());
    assert!(!a.got_error());
    assert!(!b.finished());
}

#[test]
fn ports_are_checked_against_the_design() {
    let dir = tempfile::tempdir().unwrap();
    let root = bridge::cache_root();
    let mut spec = spec_in(dir.path(), DUT, false);
    // 15 instead of 16 bits: same C++ storage class, so only the header check catches it.
    let count = spec.ports.iter_mut().find(|p| p.name == "count_o").unwrap();
    count.width = 15;
    let err = bridge::build(&spec, &root).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, BridgeError::SpecMismatch { .. }), "{msg}");
    assert!(msg.contains("`count_o` is 16 bits wide, not 15"), "{msg}");

    let mut spec = spec_in(dir.path(), DUT, false);
    spec.ports.push(PortSpec::output("nosuch_o", 3));
    spec.ports[5] = PortSpec::input("sum_o", 8);
    let msg = bridge::build(&spec, &root).unwrap_err().to_string();
    assert!(msg.contains("`sum_o` is an output, not an input"), "{msg}");
}

#[test]
fn missing_verilator_names_the_variable() {
    // Runs itself in a child process, so that setting VERILATOR cannot race other tests.
    if std::env::var_os("BRIDGE_TEST_CHILD").is_some() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spec_in(dir.path(), DUT, false);
        let err = bridge::build(&spec, dir.path()).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, BridgeError::VerilatorNotFound { .. }),
            "{msg}"
        );
        assert!(
            msg.contains("VERILATOR") && msg.contains("scripts/setup.sh"),
            "{msg}"
        );
        assert!(msg.contains("/nonexistent/verilator"), "{msg}");
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "missing_verilator_names_the_variable"])
        .env("BRIDGE_TEST_CHILD", "1")
        .env("VERILATOR", "/nonexistent/verilator")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("1 passed"), "{stdout}");
}
