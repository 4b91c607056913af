//! `smartdeal fpga build | flash` end to end: the generated accelerator with its UART board top
//! through the real open-source flows (tools from `scripts/setup.sh`).

use serde_json::Value;
use std::path::Path;
use std::process::Output;

mod common;

use common::{p, read_json, smartdeal};

/// Builds the board's default preset and checks the report: timing met at the board clock, a
/// bitstream, utilization within the device.
fn build_default(board: &str, clock_mhz: f64, logic_kind: &str) -> (tempfile::TempDir, Value) {
    build_with(board, &[], clock_mhz, logic_kind)
}

/// [`build_default`] with more `fpga build` arguments; `clock_mhz` is the core clock.
fn build_with(
    board: &str,
    extra: &[&str],
    clock_mhz: f64,
    logic_kind: &str,
) -> (tempfile::TempDir, Value) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("build");
    let mut args = vec!["fpga", "build", "--board", board, "--out", p(&out)];
    args.extend(extra);
    let o = smartdeal(&args, None);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "fpga build {board} failed: {stderr}");
    let r = read_json(&out.join("report.json"));
    assert_eq!(r["status"], "ok", "{r}");
    assert_eq!(r["timing_passed"], true);
    assert_eq!(r["target_mhz"].as_f64(), Some(clock_mhz));
    // Every clock nextpnr timed (the core clock; the board clock too when it drives logic)
    // met its own target, and the core's target is the core clock.
    let clocks = r["clocks"].as_array().unwrap();
    assert!(!clocks.is_empty(), "{r}");
    for c in clocks {
        assert_eq!(c["passed"], true, "{c}");
        assert!(
            c["achieved_mhz"].as_f64() >= c["target_mhz"].as_f64(),
            "{c}"
        );
    }
    let core = &clocks[0];
    assert!(
        (core["target_mhz"].as_f64().unwrap() - clock_mhz).abs() < 1e-6,
        "{core}"
    );
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
    let board_json = read_json(&out.join("rtl/board.json"));
    assert!(board_json["fingerprint"].is_string(), "{board_json}");
    (dir, r)
}

/// `smartdeal fpga flash --board BOARD DIR --dry-run`.
fn flash_dry_run(board: &str, dir: &Path) -> Output {
    smartdeal(
        &["fpga", "flash", "--board", board, p(dir), "--dry-run"],
        None,
    )
}

#[test]
fn icebreaker_bitstream_of_the_default_preset_meets_12_mhz() {
    let (dir, r) = build_default("icebreaker", 12.0, "ICESTORM_LC");
    eprintln!("{}", r["utilization"]);
    // flash --dry-run names the programmer and the bitstream; the wrong board is refused.
    let out = dir.path().join("build");
    let o = flash_dry_run("icebreaker", &out);
    assert!(o.status.success());
    let cmd = String::from_utf8(o.stdout).unwrap();
    assert!(
        cmd.starts_with("iceprog ") && cmd.trim_end().ends_with("top.bin"),
        "{cmd}"
    );
    let o = flash_dry_run("ulx3s-85f", &out);
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
        // The iCE40 PLL makes 16 MHz at least.
        (
            vec!["--board", "icebreaker", "--clock-mhz", "15"],
            "SB_PLL40_PAD",
        ),
        (vec!["--board", "icebreaker", "--clock-mhz", "-3"], "-3"),
        (
            vec!["--board", "icebreaker", "--timeout-min", "0"],
            "--timeout-min",
        ),
        (
            vec!["--board", "icebreaker", "--timeout-min", "x"],
            "--timeout-min",
        ),
    ] {
        let mut a = vec!["fpga", "build"];
        a.extend(args);
        a.extend(["--out", p(&out)]);
        let o = smartdeal(&a, None);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{a:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(needle), "{stderr}");
    }
    // A build over its limit is stopped (here in yosys, 0.3 s in) and fails without a report.
    let o = smartdeal(
        &[
            "fpga",
            "build",
            "--board",
            "icebreaker",
            "--timeout-min",
            "0.005",
            "--out",
            p(&out),
        ],
        None,
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    let last = stderr.lines().last().unwrap();
    assert!(
        last.contains("build stopped at its 0.005 min time limit") && last.contains("yosys"),
        "{stderr}"
    );
    assert!(!out.join("report.json").exists());
    let o = flash_dry_run("icebreaker", &out);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("report.json"));
}

/// `--baud max` reaches the generated design: the board link in board.json carries the rate
/// docs/protocol.md works out by hand for each board's FTDI bridge and clock, and the note names
/// it for `run --baud`. (The build itself is stopped at once: only the generated files matter.)
#[test]
fn baud_max_is_the_fastest_clean_rate_of_the_board() {
    let dir = tempfile::tempdir().unwrap();
    for (board, extra, baud, clks_per_bit) in [
        ("icebreaker", None, 3_000_000, 4),
        ("ulx3s-85f", None, 1_200_000, 21),
        ("ulx3s-85f", Some("40"), 2_000_000, 20),
    ] {
        let out = dir.path().join(board);
        let mut args = vec![
            "fpga",
            "build",
            "--board",
            board,
            "--baud",
            "max",
            "--timeout-min",
            "0.001",
            "--out",
            p(&out),
        ];
        if let Some(mhz) = extra {
            args.extend(["--clock-mhz", mhz]);
        }
        let o = smartdeal(&args, None);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(
            stderr.contains(&format!("pass --baud {baud} to `smartdeal run`")),
            "{stderr}"
        );
        let b = read_json(&out.join("rtl/board.json"));
        assert_eq!(b["link"]["baud"], baud, "{b}");
        assert_eq!(b["clks_per_bit"], clks_per_bit, "{b}");
    }
}

/// The ULX3S bitstream of the default preset (16 lanes × 2 slots): multipliers in MULT18X18D
/// blocks (the design's 98 — 3 per lane and slot, and the output stage's — fit the 85F's 156, so
/// `--dsp auto` picks them), timing met at 25 MHz.
#[test]
fn ulx3s_bitstream_of_the_default_preset_meets_25_mhz() {
    let (dir, r) = build_default("ulx3s-85f", 25.0, "TRELLIS_COMB");
    eprintln!("{}", r["utilization"]);
    let dsp = &r["utilization"]["dsp"];
    assert_eq!(dsp["kind"], "MULT18X18D");
    assert!(
        dsp["used"].as_u64().unwrap() >= 96,
        "3 per lane and slot: {dsp}"
    );
    let out = dir.path().join("build");
    let o = flash_dry_run("ulx3s-85f", &out);
    assert!(o.status.success());
    let cmd = String::from_utf8(o.stdout).unwrap();
    assert!(
        cmd.starts_with("openFPGALoader -b ulx3s ") && cmd.trim_end().ends_with("top.bit"),
        "{cmd}"
    );
}

/// The lane search's trial with `lanes` lanes.
fn trial_of(lane_search: &Value, lanes: u64) -> Value {
    lane_search["trials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["lanes"].as_u64() == Some(lanes))
        .unwrap_or_else(|| panic!("no trial with {lanes} lanes: {lane_search}"))
        .clone()
}

/// `fpga bench --search-lanes` on the iCEBreaker: both designs build, the table's derived columns
/// follow from the benchmark's definition (the dense baseline streams every row of every tile; the
/// SmartDeal stream only the present ones) and from each row's own Fmax.
#[test]
fn icebreaker_bench_compares_smartdeal_with_its_dense_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bench");
    // `fpga bench --board icebreaker --search-lanes` into `out` with `extra`: stderr, bench.json.
    let bench = |extra: &[&str]| -> (String, Value) {
        let mut args = vec![
            "fpga",
            "bench",
            "--board",
            "icebreaker",
            "--search-lanes",
            "--out",
            p(&out),
        ];
        args.extend(extra);
        let o = smartdeal(&args, None);
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "fpga bench {extra:?} failed: {stderr}");
        (stderr, read_json(&out.join("bench.json")))
    };
    let (_, b) = bench(&[]);
    let rows = b["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let (sd, dense) = (&rows[0], &rows[1]);
    assert_eq!(sd["design"], "smartdeal");
    assert_eq!(dense["design"], "dense-int8");
    let n = b["layer_inputs"].as_u64().unwrap();
    assert_eq!(n, 384);
    let density = b["row_density"].as_f64().unwrap();
    let lanes = sd["lanes"].as_u64().unwrap();
    assert_eq!(dense["lanes"].as_u64().unwrap(), lanes, "same lanes");
    let rows_per_channel = n.div_ceil(3);
    let tiles = n.div_ceil(lanes);
    let present = (density * rows_per_channel as f64).round() as u64;
    assert_eq!(
        dense["layer"]["stream_entries"].as_u64().unwrap(),
        tiles * rows_per_channel.max(lanes)
    );
    assert_eq!(
        sd["layer"]["stream_entries"].as_u64().unwrap(),
        tiles * present.max(lanes)
    );
    for (r, d) in [(sd, density), (dense, 1.0)] {
        assert_eq!(r["status"], "ok", "{r}");
        let fmax = r["fmax_mhz"].as_f64().unwrap();
        assert!(fmax >= 12.0, "{r}");
        let eff = r["effective_mac_per_s"].as_f64().unwrap();
        let want = 3.0 * lanes as f64 * fmax * 1e6 / d;
        assert!((eff - want).abs() <= 1e-6 * want, "{eff} vs {want}");
        assert!(Path::new(&out.join(r["design"].as_str().unwrap()).join("top.bin")).exists());
    }
    // Compressed weights move fewer bytes than int8 ones (here ≈ 3.5× fewer).
    let (wb_sd, wb_dense) = (
        sd["layer"]["weight_bytes"].as_u64().unwrap(),
        dense["layer"]["weight_bytes"].as_u64().unwrap(),
    );
    assert!(wb_sd * 2 < wb_dense, "{wb_sd} vs {wb_dense}");
    // The dense baseline's stream carries every weight as int8.
    assert!(wb_dense >= n * n, "{wb_dense}");
    // The lane search's verdict L is backed by its trials: L built, L + 1 did not.
    let ls = &b["lane_search"];
    assert_eq!(ls["complete"], true, "{ls}");
    let best = ls["largest_fitting_lanes"].as_u64().expect("one lane fits");
    let trial = |l: u64| trial_of(ls, l);
    assert_eq!(trial(best)["outcome"], "ok");
    assert_ne!(trial(best + 1)["outcome"], "ok");
    let md = std::fs::read_to_string(out.join("bench.md")).unwrap();
    assert!(
        md.contains("| smartdeal |") && md.contains("| dense-int8 |"),
        "{md}"
    );

    // --reuse: the same run again reuses each build of the same design and writes the same
    // tables. Comments do not matter (here an edited one in the SmartDeal build); different
    // synthesis options (the dense build's synth command, as an older flow would have left it)
    // or different Verilog (one changed constant in the 2-lane build) mean a rebuild.
    let edit = |path: &Path, from: &str, to: &str| {
        let text = std::fs::read_to_string(path).unwrap();
        assert!(text.contains(from), "{}: no `{from}`", path.display());
        std::fs::write(path, text.replacen(from, to, 1)).unwrap();
    };
    edit(
        &out.join("smartdeal/rtl/sd_top.v"),
        "// sd_top.v",
        "// sd_top.v (edited comment)",
    );
    edit(&out.join("dense-int8/synth.ys"), " -dsp", "");
    let two = out.join("lanes-2/rtl/sd_ctrl.v");
    let ctrl = std::fs::read_to_string(&two).unwrap();
    let lit = ctrl
        .lines()
        .find(|l| l.contains("1'd0"))
        .expect("a 1'd0 in sd_ctrl.v")
        .to_string();
    edit(&two, &lit, &lit.replacen("1'd0", "1'd1", 1));
    let (stderr, b2) = bench(&["--reuse"]);
    let reused: Vec<&str> = stderr.lines().filter(|l| l.contains("reusing")).collect();
    assert_eq!(reused.len(), 1, "{stderr}");
    assert!(reused[0].contains("of `icebreaker` in"), "{stderr}");
    assert_eq!(b2["lane_search"], b["lane_search"]);
    assert_eq!(b2["rows"][0], b["rows"][0]);
    assert_eq!(
        b2["rows"][1]["fmax_mhz"], b["rows"][1]["fmax_mhz"],
        "same tools, same seed"
    );

    // --build-timeout-min: a candidate whose build is stopped at the limit (the 2-lane one,
    // changed again so that it is rebuilt; yosys needs longer than 0.3 s) is `timed_out`,
    // counts as not fitting, and the verdict says so. The reused builds run no tool.
    edit(&two, &lit, &lit.replacen("1'd0", "1'd1", 1));
    let (_, b3) = bench(&["--reuse", "--build-timeout-min", "0.005"]);
    let ls3 = &b3["lane_search"];
    assert_eq!(ls3["build_timeout_min"].as_f64(), Some(0.005), "{ls3}");
    assert_eq!(ls3["largest_fitting_lanes"], ls["largest_fitting_lanes"]);
    let t2 = trial_of(ls3, 2);
    assert_eq!(t2["outcome"], "timed_out", "{t2}");
    assert!(t2["detail"].as_str().unwrap().contains("yosys"), "{t2}");
    let md = std::fs::read_to_string(out.join("bench.md")).unwrap();
    assert!(
        md.contains("within the 0.005 min limit (2 lanes: timed out)"),
        "{md}"
    );
}

/// The iCEBreaker default preset behind the iCE40 PLL at 16.5 MHz (12 MHz × 88 / 64): one
/// SB_PLL40_PAD, the core clock is the PLL's output and meets 16.5 MHz, and the UART divisor in
/// board.json is the PLL clock's.
#[test]
fn icebreaker_bitstream_behind_the_pll_meets_16_5_mhz() {
    let (dir, r) = build_with("icebreaker", &["--clock-mhz", "16.5"], 16.5, "ICESTORM_LC");
    assert_eq!(r["bels"]["ICESTORM_PLL"]["used"], 1, "{}", r["bels"]);
    assert_eq!(r["clocks"][0]["clock"], "clk_core");
    let board = read_json(&dir.path().join("build/rtl/board.json"));
    assert_eq!(board["link"]["clock_hz"], 16_500_000);
    assert_eq!(
        board["link"]["pll"]["settings"]["primitive"],
        "SB_PLL40_PAD"
    );
    assert_eq!(board["clks_per_bit"], 143, "16.5 MHz / 115200");
}

/// ECP5: the `tiny` preset on the ULX3S behind an EHXPLLL at 40 MHz (25 MHz × 8 / 5). nextpnr
/// derives the PLL output's constraint from the board clock's; the derived 40 MHz must be met.
#[test]
fn ulx3s_bitstream_behind_the_pll_meets_40_mhz() {
    let (dir, r) = build_with(
        "ulx3s-85f",
        &["--preset", "tiny", "--clock-mhz", "40"],
        40.0,
        "TRELLIS_COMB",
    );
    assert_eq!(r["bels"]["EHXPLLL"]["used"], 1, "{}", r["bels"]);
    let pnr = std::fs::read_to_string(dir.path().join("build/pnr.log")).unwrap();
    assert!(
        pnr.contains("Derived frequency constraint of 40.0 MHz for net clk_core"),
        "nextpnr derived another PLL constraint"
    );
}
