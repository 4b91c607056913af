//! `smartdeal fpga build | flash` end to end: the generated accelerator with its UART board top
//! through the real open-source flows (tools from `scripts/setup.sh`).

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn smartdeal(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_smartdeal"))
        .args(args)
        .output()
        .expect("the smartdeal binary runs")
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Builds the board's default preset and checks the report: timing met at the board clock, a
/// bitstream, utilization within the device.
fn build_default(board: &str, clock_mhz: f64, logic_kind: &str) -> (tempfile::TempDir, Value) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("build");
    let o = smartdeal(&["fpga", "build", "--board", board, "--out", p(&out)]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "fpga build {board} failed: {stderr}");
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(r["status"], "ok", "{r}");
    assert_eq!(r["timing_passed"], true);
    assert_eq!(r["target_mhz"].as_f64(), Some(clock_mhz));
    let fmax = r["clocks"][0]["achieved_mhz"].as_f64().unwrap();
    assert!(fmax >= clock_mhz, "Fmax {fmax}");
    let logic = &r["utilization"]["logic"];
    assert_eq!(logic["kind"], logic_kind);
    let (used, avail) = (
        logic["used"].as_u64().unwrap(),
        logic["available"].as_u64().unwrap(),
    );
    assert!(used > 1000 && used <= avail, "{logic}");
    assert!(
        r["utilization"]["bram"]["used"].as_u64().unwrap() > 0,
        "buffers in block RAM"
    );
    let bit = Path::new(r["bitstream"]["path"].as_str().unwrap());
    assert!(std::fs::metadata(bit).unwrap().len() > 10_000);
    // The generated design is kept next to the build, with the link parameters.
    let board_json: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("rtl/board.json")).unwrap())
            .unwrap();
    assert!(board_json["fingerprint"].is_string(), "{board_json}");
    (dir, r)
}

#[test]
fn icebreaker_bitstream_of_the_default_preset_meets_12_mhz() {
    let (dir, r) = build_default("icebreaker", 12.0, "ICESTORM_LC");
    eprintln!("{}", r["utilization"]);
    // flash --dry-run names the programmer and the bitstream; the wrong board is refused.
    let out = dir.path().join("build");
    let o = smartdeal(&[
        "fpga",
        "flash",
        "--board",
        "icebreaker",
        p(&out),
        "--dry-run",
    ]);
    assert!(o.status.success());
    let cmd = String::from_utf8(o.stdout).unwrap();
    assert!(
        cmd.starts_with("iceprog ") && cmd.trim_end().ends_with("top.bin"),
        "{cmd}"
    );
    let o = smartdeal(&[
        "fpga",
        "flash",
        "--board",
        "ulx3s-85f",
        p(&out),
        "--dry-run",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("was built for icebreaker"));
}

#[test]
fn bad_board_arguments_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x");
    for (args, needle) in [
        (vec!["--board", "nosuch"], "nosuch"),
        (
            vec!["--board", "icebreaker", "--baud", "5000000"],
            "too fast",
        ),
        (vec!["--board", "icebreaker", "--preset", "nope"], "nope"),
    ] {
        let mut a = vec!["fpga", "build"];
        a.extend(args);
        a.extend(["--out", p(&out)]);
        let o = smartdeal(&a);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{a:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(needle), "{stderr}");
    }
    let o = smartdeal(&[
        "fpga",
        "flash",
        "--board",
        "icebreaker",
        p(&out),
        "--dry-run",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("report.json"));
}
