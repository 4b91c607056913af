//! Board flows end to end on a small hand-written design (`tests/designs/sd_flow_test.v`: UART
//! echo + LED blinker with the board-top port names): synthesis, place and route and bitstream
//! for the iCEBreaker (Debian yosys / nextpnr-ice40 / icepack) and the ULX3S 85F (YoWASP
//! yosys / nextpnr-ecp5 / ecppack), plus the typed timing failure at an impossible clock.
//!
//! These tests are never skipped: CI runs `scripts/setup.sh` first, and a missing tool fails
//! with the `find_tool` message that names the environment variable and scripts/setup.sh.
//!
//! Set `SMARTDEAL_FLOW_KEEP=1` to keep the work directories (their paths are printed).

use std::path::{Path, PathBuf};

use smartdeal_fpga::{build, Board, BuildOptions, BuildReport, BuildStatus};

const TOP: &str = "sd_flow_test";

fn design() -> Vec<PathBuf> {
    vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/designs/sd_flow_test.v")]
}

/// Parameters that fit the test design to the board (clock for the UART divider, LED count).
fn params(board: Board) -> Vec<(String, i64)> {
    vec![
        ("ClkHz".into(), (board.clock_mhz() * 1e6) as i64),
        ("LedCount".into(), i64::from(board.led_count())),
    ]
}

/// A work directory under /tmp on purpose: the YoWASP tools cannot see absolute /tmp paths,
/// so this checks that the flow really only uses relative ones.
fn work_dir(name: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(&format!("sd_flow_{name}_"))
        .tempdir()
        .expect("create a temporary work directory");
    if std::env::var_os("SMARTDEAL_FLOW_KEEP").is_some() {
        eprintln!("{name}: work directory {}", dir.path().display());
    }
    dir
}

fn keep(dir: tempfile::TempDir) {
    if std::env::var_os("SMARTDEAL_FLOW_KEEP").is_some() {
        let _ = dir.keep();
    }
}

fn run(board: Board, name: &str, freq_mhz: Option<f64>) -> (BuildReport, tempfile::TempDir) {
    let dir = work_dir(name);
    let opts = BuildOptions {
        freq_mhz,
        params: params(board),
        ..BuildOptions::default()
    };
    let report = build(board, &design(), TOP, &dir.path().join("work"), &opts)
        .unwrap_or_else(|e| panic!("{board} flow failed (tools come from scripts/setup.sh): {e}"));
    eprintln!("{}", report.summary());
    (report, dir)
}

fn check_passing_build(board: Board, report: &BuildReport) {
    assert_eq!(report.board, board);
    assert_eq!(report.device, board.device());
    assert_eq!(report.package, board.package());
    assert_eq!(report.top, TOP);
    assert_eq!(report.status, BuildStatus::Ok, "{}", report.summary());
    assert!(report.passed() && report.timing_passed);

    // Timing at the board clock, per clock and overall.
    assert_eq!(report.target_mhz, board.clock_mhz());
    assert_eq!(report.clocks.len(), 1, "one clock: {:?}", report.clocks);
    let clk = &report.clocks[0];
    assert!(clk.clock.contains("clk_i"), "{clk:?}");
    assert!(clk.passed, "{clk:?}");
    assert_eq!(clk.target_mhz, board.clock_mhz());
    assert!(
        clk.achieved_mhz >= board.clock_mhz() && clk.achieved_mhz < 1000.0,
        "{clk:?}"
    );

    // Utilization: everything within the device, and the design's own numbers plausible.
    let u = &report.utilization;
    for (name, r) in u.all() {
        assert!(r.available > 0, "{name}: {r:?}");
        assert!(r.used <= r.available, "{name}: {r:?}");
    }
    // A UART echo plus blinker: roughly 100 flip-flops and a few hundred LUTs at most.
    assert!((50..1000).contains(&u.logic.used), "logic {:?}", u.logic);
    assert!((50..300).contains(&u.ff.used), "ff {:?}", u.ff);
    assert_eq!(u.bram.used, 0, "{:?}", u.bram);
    assert_eq!(u.dsp.used, 0, "{:?}", u.dsp);
    // clk, rx, tx and the LEDs.
    assert_eq!(u.io.used, 3 + u64::from(board.led_count()), "{:?}", u.io);
    match board {
        Board::Icebreaker => {
            assert_eq!(u.logic.available, 5280);
            assert_eq!(u.bram.available, 30);
            assert_eq!(u.dsp.available, 8);
            assert_eq!(
                u.spram.as_ref().map(|s| (s.used, s.available)),
                Some((0, 4))
            );
        }
        Board::Ulx3s85f => {
            assert_eq!(u.logic.available, 83640);
            assert_eq!(u.bram.available, 208);
            assert_eq!(u.dsp.available, 156);
            assert!(u.spram.is_none());
        }
    }

    // Bitstream.
    let bit = report.bitstream.as_ref().expect("a bitstream");
    let on_disk = std::fs::metadata(&bit.path)
        .unwrap_or_else(|e| panic!("{}: {e}", bit.path.display()))
        .len();
    assert!(on_disk > 0 && on_disk == bit.bytes, "{bit:?}");

    // Every step ran, was timed and left its log.
    for step in ["synth", "pnr", "pack"] {
        let s = report
            .steps
            .iter()
            .find(|s| s.step == step)
            .unwrap_or_else(|| panic!("no {step} step in {:?}", report.steps));
        assert!(s.seconds > 0.0, "{s:?}");
        assert!(s.log.is_file(), "{s:?}");
    }
    // Versions are what the tools said, not the fallback text.
    assert!(
        report.versions.yosys.contains("Yosys"),
        "{:?}",
        report.versions
    );
    assert!(
        report.versions.nextpnr.contains("nextpnr") || report.versions.nextpnr.contains("Version"),
        "{:?}",
        report.versions
    );
    assert!(!report.versions.packer.is_empty());
}

fn check_round_trip(report: &BuildReport) {
    let path = report.work_dir.join("report.json");
    let back = BuildReport::read(&path).unwrap();
    assert_eq!(&back, report);
}

#[test]
fn icebreaker_builds_and_meets_12_mhz() {
    let (report, dir) = run(Board::Icebreaker, "icebreaker", None);
    check_passing_build(Board::Icebreaker, &report);
    check_round_trip(&report);
    // An iCE40UP5K bitstream (uncompressed) is always the same size.
    assert_eq!(report.bitstream.as_ref().unwrap().bytes, 104_090);
    keep(dir);
}

#[test]
fn ulx3s_85f_builds_and_meets_25_mhz() {
    let (report, dir) = run(Board::Ulx3s85f, "ulx3s", None);
    check_passing_build(Board::Ulx3s85f, &report);
    check_round_trip(&report);
    keep(dir);
}

/// 500 MHz (iCE40) / 1 GHz (ECP5) is far beyond either device: nextpnr must refuse, and the
/// flow must report that as a timing failure with the achieved Fmax, not as an error.
fn check_timing_failure(board: Board, freq: f64) {
    let (report, dir) = run(board, &format!("{board}_fail"), Some(freq));
    assert_eq!(
        report.status,
        BuildStatus::TimingFailed,
        "{}",
        report.summary()
    );
    assert!(!report.passed() && !report.timing_passed);
    assert_eq!(report.target_mhz, freq);
    assert!(report.bitstream.is_none());
    assert!(!report.steps.iter().any(|s| s.step == "pack"));
    let clk = report.clocks.first().expect("a parsed Fmax");
    assert!(!clk.passed);
    assert_eq!(clk.target_mhz, freq);
    assert!(
        clk.achieved_mhz > board.clock_mhz() && clk.achieved_mhz < freq,
        "{clk:?}"
    );
    assert_eq!(report.fmax_mhz(), Some(clk.achieved_mhz));
    assert!(report.utilization.logic.used > 0);
    check_round_trip(&report);
    keep(dir);
}

#[test]
fn icebreaker_impossible_clock_is_a_typed_timing_failure() {
    check_timing_failure(Board::Icebreaker, 500.0);
}

#[test]
fn ulx3s_impossible_clock_is_a_typed_timing_failure() {
    check_timing_failure(Board::Ulx3s85f, 1000.0);
}

#[test]
fn unconstrained_port_is_an_error() {
    // 8 LEDs on the iCEBreaker: led_o[7] has no pin (the pin file has 7), and nextpnr must
    // refuse rather than put it on an arbitrary pin.
    let dir = work_dir("unconstrained");
    let opts = BuildOptions {
        params: vec![("LedCount".into(), 8)],
        ..BuildOptions::default()
    };
    let err = build(
        Board::Icebreaker,
        &design(),
        TOP,
        &dir.path().join("work"),
        &opts,
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("led_o[7]") && msg.contains("unconstrained"),
        "{msg}"
    );
}
