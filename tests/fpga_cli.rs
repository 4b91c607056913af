//! `smartdeal fpga build | flash | bench` end to end: the generated accelerator with its UART board
//! top through the real open-source flows (tools from `scripts/setup.sh`).

use serde_json::Value;
use smartdeal_core::AccelConfig;
use std::path::{Path, PathBuf};
use std::process::Output;

mod common;

use common::{fails, ok, p, read_json, smartdeal};

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
        // The ulx3s preset instantiates the ECP5's MULT18X18D (mac_mul = "mult18x18d").
        (
            vec!["--board", "icebreaker", "--preset", "ulx3s"],
            "is an iCE40 board",
        ),
        (
            vec!["--board", "ulx3s-85f", "--preset", "ulx3s", "--dsp", "off"],
            "instantiates MULT18X18D",
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

/// The ULX3S bitstream of the default preset (6 lanes × 4 slots, `extra_stages`, registered
/// MULT18X18D blocks) behind the ECP5 PLL at 100 MHz (`--clock-mhz 100`; 25 MHz × 4): timing
/// met, so its 72 MACs per cycle make at least 6 G MAC/s (issue 14); the multipliers in
/// MULT18X18D blocks (3 per lane and slot, and the output stage's, fit the 85F's 156, so
/// `--dsp auto` picks them). Bounded, as every ECP5 build here.
#[test]
fn ulx3s_bitstream_of_the_default_preset_meets_100_mhz_behind_the_pll() {
    let (dir, r) = build_with(
        "ulx3s-85f",
        &["--clock-mhz", "100", "--timeout-min", "40"],
        100.0,
        "TRELLIS_COMB",
    );
    eprintln!("{}", r["utilization"]);
    let cfg = AccelConfig::preset("ulx3s").unwrap();
    let fmax = r["clocks"][0]["achieved_mhz"].as_f64().unwrap();
    eprintln!("Fmax {fmax:.2} MHz at the 100 MHz target");
    let macs = 3 * cfg.lanes * cfg.slots;
    assert!(
        f64::from(macs) * 100e6 >= 6e9,
        "{macs} MACs per cycle at 100 MHz"
    );
    assert!(fmax >= 100.0, "{fmax}");
    let dsp = &r["utilization"]["dsp"];
    assert_eq!(dsp["kind"], "MULT18X18D");
    assert!(
        dsp["used"].as_u64().unwrap() >= u64::from(macs),
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

// ---------------------------------------------------------------------------------------------
// `fpga bench`: three designs (SmartDeal rebuild, SmartDeal factorized, the dense int8
// baseline) scored on the synthetic layer and on all-MiniLM-L6-v2's layer-0 query (the cache
// `scripts/setup.sh` fills)
// ---------------------------------------------------------------------------------------------

/// Design names in table order.
const DESIGNS: [&str; 3] = ["smartdeal-rebuild", "smartdeal-factorized", "dense-int8"];

fn minilm_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("cache/minilm")
}

/// The design row named `name`.
fn design<'a>(b: &'a Value, name: &str) -> &'a Value {
    b["designs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["design"] == name)
        .unwrap_or_else(|| panic!("no design {name}: {}", b["designs"]))
}

/// The layer named `name` (`synthetic`, `minilm`, `minilm-pruned`).
fn layer<'a>(b: &'a Value, name: &str) -> &'a Value {
    b["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["layer"] == name)
        .unwrap_or_else(|| panic!("no layer {name}: {}", b["layers"]))
}

/// A layer's cost on design `name`.
fn cost<'a>(l: &'a Value, name: &str) -> &'a Value {
    l["costs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["design"] == name)
        .unwrap_or_else(|| panic!("no cost of {name}: {l}"))
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
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

/// The row density `smartdeal inspect` gives the MiniLM query as `smartdeal decompose --preset
/// icebreaker EXTRA` writes it: what the bench's MiniLM layers must match.
fn decompose_row_density(dir: &Path, extra: &[&str]) -> f64 {
    let sdm = dir.join("q.sdm");
    let weights = minilm_dir().join("model.safetensors");
    let mut args = vec![
        "decompose",
        p(&weights),
        "--tensor",
        "encoder.layer.0.attention.self.query.weight",
        "--preset",
        "icebreaker",
        "--out",
        p(&sdm),
    ];
    args.extend(extra);
    ok(&args, dir);
    let json = ok(&["inspect", p(&sdm), "--json"], dir);
    let v: Value = serde_json::from_str(&json).unwrap();
    f(&v["layers"][0]["row_density"])
}

/// Checks one design row against its own definition and build.
fn check_design(b: &Value, d: &Value, out: &Path) {
    assert_eq!(d["status"], "ok", "{d}");
    let fmax = f(&d["build"]["fmax_mhz"]);
    assert!(fmax >= f(&b["target_mhz"]), "{d}");
    let macs = u(&d["lanes"]) * 3 * u(&d["slots"]);
    assert_eq!(u(&d["macs_per_cycle"]), macs, "{d}");
    assert!(
        close(f(&d["peak_mac_per_s"]), macs as f64 * fmax * 1e6),
        "{d}"
    );
    let used = u(&d["build"]["logic_used"]);
    assert!(
        used > 1000 && used <= u(&d["build"]["logic_available"]),
        "{d}"
    );
    let dir = out.join(d["design"].as_str().unwrap());
    assert!(dir.join("top.bin").exists(), "{d}");
    let report = read_json(&dir.join("report.json"));
    assert_eq!(
        report["utilization"]["logic"]["used"],
        d["build"]["logic_used"]
    );
}

/// Checks one layer's costs: rates from each design's own Fmax and logic, the dense baseline
/// streaming every row and moving more weight bytes than either SmartDeal design.
fn check_layer(b: &Value, l: &Value) {
    let (n_in, n_out) = (u(&l["inputs"]), u(&l["outputs"]));
    for name in DESIGNS {
        let c = cost(l, name);
        let d = design(b, name);
        let fmax = f(&d["build"]["fmax_mhz"]);
        let want = (n_in * n_out * u(&d["slots"])) as f64 * fmax * 1e6 / f(&c["stream_entries"]);
        assert!(close(f(&c["mac_per_s"]), want), "{name}: {c}");
        let klut = u(&d["build"]["logic_used"]) as f64 / 1000.0;
        assert!(close(f(&c["mac_per_s_per_klut"]), want / klut), "{c}");
        assert!(u(&c["runs"]) >= 1, "{c}");
    }
    let dense = cost(l, "dense-int8");
    assert_eq!(f(&dense["row_density"]), 1.0, "{dense}");
    // The dense stream carries every weight as int8.
    assert!(u(&dense["weight_bytes"]) >= n_in * n_out, "{dense}");
    for name in &DESIGNS[..2] {
        let c = cost(l, name);
        assert!(close(f(&c["row_density"]), f(&l["row_density"])), "{c}");
        assert!(
            u(&dense["weight_bytes"]) > u(&c["weight_bytes"]),
            "{}: dense {dense} vs {c}",
            l["layer"]
        );
        assert!(
            u(&dense["stream_entries"]) >= u(&c["stream_entries"]),
            "{c}"
        );
    }
    // Factorized blocks are padded to nine entries at least, never shortened.
    assert!(
        u(&cost(l, "smartdeal-factorized")["stream_entries"])
            >= u(&cost(l, "smartdeal-rebuild")["stream_entries"])
    );
}

/// The synthetic layer: the dense baseline streams every row of every tile, SmartDeal only
/// the present ones.
fn check_synthetic(b: &Value) {
    let syn = layer(b, "synthetic");
    let n = u(&syn["inputs"]);
    assert_eq!(n, 384);
    let lanes = u(&design(b, DESIGNS[0])["lanes"]);
    let (rows, tiles) = (n.div_ceil(3), n.div_ceil(lanes));
    let present = (f(&syn["row_density"]) * rows as f64).round() as u64;
    assert_eq!(present, (0.3 * rows as f64).round() as u64);
    assert_eq!(
        u(&cost(syn, "dense-int8")["stream_entries"]),
        tiles * rows.max(lanes)
    );
    assert_eq!(
        u(&cost(syn, "smartdeal-rebuild")["stream_entries"]),
        tiles * present.max(lanes)
    );
    check_layer(b, syn);
}

/// The MiniLM layers: the ones `smartdeal decompose` gives (unpruned and with --prune-ratio
/// 0.5); pruning shortens the SmartDeal streams, not the dense one.
fn check_minilm_layers(b: &Value, dir: &Path) {
    let (q, pruned) = (layer(b, "minilm"), layer(b, "minilm-pruned"));
    check_layer(b, q);
    check_layer(b, pruned);
    let rd = f(&q["row_density"]);
    assert!(close(rd, decompose_row_density(dir, &[])), "{q}");
    let rd_pruned = f(&pruned["row_density"]);
    let want = decompose_row_density(dir, &["--prune-ratio", "0.5"]);
    assert!(close(rd_pruned, want), "{pruned}");
    assert!(rd > 0.95 && rd_pruned <= 0.5 + 1e-12, "{rd} {rd_pruned}");
    assert_eq!(f(&pruned["prune_ratio"]), 0.5);
    for name in &DESIGNS[..2] {
        let entries = |l: &Value| u(&cost(l, name)["stream_entries"]);
        assert!(entries(pruned) < entries(q), "{name}");
    }
    assert_eq!(
        cost(pruned, "dense-int8")["stream_entries"],
        cost(q, "dense-int8")["stream_entries"]
    );
}

/// Replaces the first `from` in the file at `path` by `to`.
fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{}: no `{from}`", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

/// Changes the builds of a bench in `out` the way a rerun must notice: a comment in the
/// rebuild design (still the same design), the dense build's synth command (as an older flow
/// would have left it), and one constant of the factorized design and of the 2-lane candidate.
fn edit_builds(out: &Path) {
    edit(
        &out.join("smartdeal-rebuild/rtl/sd_top.v"),
        "// sd_top.v",
        "// sd_top.v (edited comment)",
    );
    edit(&out.join("dense-int8/synth.ys"), " -dsp", "");
    for d in ["smartdeal-factorized", "lanes-2"] {
        let ctrl = out.join(d).join("rtl/sd_ctrl.v");
        let text = std::fs::read_to_string(&ctrl).unwrap();
        let lit = text
            .lines()
            .find(|l| l.contains("1'd0"))
            .expect("a 1'd0 in sd_ctrl.v")
            .to_string();
        edit(&ctrl, &lit, &lit.replacen("1'd0", "1'd1", 1));
    }
}

/// The rerun after [`edit_builds`] with `--reuse --build-timeout-min 0.005` (`b2`, its
/// `stderr`) against the first run `b`: only the rebuild design is reused (and unchanged); the
/// others and the 2-lane candidate are stopped at the limit.
fn check_rerun(b: &Value, b2: &Value, stderr: &str, out: &Path) {
    let reused: Vec<&str> = stderr.lines().filter(|l| l.contains("reusing")).collect();
    assert_eq!(reused.len(), 1, "{stderr}");
    assert!(reused[0].contains("of `icebreaker-rebuild` in"), "{stderr}");
    assert_eq!(design(b2, DESIGNS[0]), design(b, DESIGNS[0]));
    let (syn, syn2) = (layer(b, "synthetic"), layer(b2, "synthetic"));
    assert_eq!(cost(syn2, DESIGNS[0]), cost(syn, DESIGNS[0]));
    for name in &DESIGNS[1..] {
        let d = design(b2, name);
        assert_eq!(d["status"], "timed_out", "{d}");
        assert!(d["detail"].as_str().unwrap().contains("yosys"), "{d}");
        assert_eq!(d["build"], Value::Null);
        let c = cost(syn2, name);
        assert_eq!(c["mac_per_s"], Value::Null, "no rate without a build");
        assert_eq!(c["weight_bytes"], cost(syn, name)["weight_bytes"]);
    }
    let (ls, ls2) = (&b["lane_search"], &b2["lane_search"]);
    assert_eq!(f(&ls2["build_timeout_min"]), 0.005, "{ls2}");
    assert_eq!(ls2["largest_fitting_lanes"], ls["largest_fitting_lanes"]);
    let t2 = trial_of(ls2, 2);
    assert_eq!(t2["outcome"], "timed_out", "{t2}");
    let md = std::fs::read_to_string(out.join("bench.md")).unwrap();
    assert!(
        md.contains("within the 0.005 min limit (2 lanes: timed out)")
            && md.contains("| smartdeal-factorized | `icebreaker` |"),
        "{md}"
    );
}

/// `fpga bench --search-lanes` on the iCEBreaker: the three designs build, each row and each
/// layer's costs follow from the bench's definitions and the builds, the MiniLM layers are the
/// ones `smartdeal decompose` writes, and `--reuse` / `--build-timeout-min` keep a run going.
#[test]
fn icebreaker_bench_compares_three_designs_on_three_layers() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bench");
    let with_minilm = minilm_dir().join("model.safetensors").exists();
    if !with_minilm {
        eprintln!("cache/minilm is missing (scripts/setup.sh fetches it): synthetic layer only");
    }
    let layers = if with_minilm {
        "synthetic,minilm,minilm-pruned"
    } else {
        "synthetic"
    };
    // The preset is factorized (1 lane × 2 slots); the rebuild design is the committed
    // one-slot config the README's bench uses.
    let rebuild =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/benchmarks/icebreaker-rebuild.toml");
    // `fpga bench --board icebreaker --search-lanes` into `out` with `extra`: stderr, bench.json.
    let bench = |extra: &[&str]| -> (String, Value) {
        let mut args = vec![
            "fpga",
            "bench",
            "--board",
            "icebreaker",
            "--rebuild-config",
            p(&rebuild),
            "--search-lanes",
            "--layers",
            layers,
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
    assert_eq!(f(&b["clock_mhz"]), 12.0);
    assert_eq!(b["pll"], Value::Null);
    let names: Vec<&str> = b["designs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["design"].as_str().unwrap())
        .collect();
    assert_eq!(names, DESIGNS);
    let (rb, fa, de) = (
        design(&b, DESIGNS[0]),
        design(&b, DESIGNS[1]),
        design(&b, DESIGNS[2]),
    );
    // The board's preset is the factorized design; the rebuild one is the given config.
    assert_eq!(fa["config"], "icebreaker");
    assert_eq!(rb["config"], "icebreaker-rebuild");
    assert_eq!(rb["dataflow"], "rebuild");
    assert_eq!(fa["dataflow"], "factorized");
    assert_eq!(fa["weight_requant"], "exact");
    assert!(
        u(&fa["acc_bits"]) > u(&rb["acc_bits"]),
        "exact weights grow more"
    );
    assert_eq!(de["weight_format"], "dense");
    assert_eq!(de["config"], "icebreaker-rebuild-dense");
    assert_eq!((&de["lanes"], &de["slots"]), (&rb["lanes"], &rb["slots"]));
    let preset = AccelConfig::preset("icebreaker").unwrap();
    assert_eq!((u(&fa["lanes"]), u(&fa["slots"])), (1, 2));
    assert_eq!((preset.lanes, preset.slots), (1, 2));
    for d in [rb, fa, de] {
        check_design(&b, d, &out);
    }

    check_synthetic(&b);
    if with_minilm {
        check_minilm_layers(&b, dir.path());
    }
    // The lane search (of the rebuild design): its verdict L built, L + 1 did not.
    let ls = &b["lane_search"];
    assert_eq!(ls["config"], "icebreaker-rebuild");
    assert_eq!(ls["complete"], true, "{ls}");
    let best = u(&ls["largest_fitting_lanes"]);
    assert_eq!(trial_of(ls, best)["outcome"], "ok");
    assert_ne!(trial_of(ls, best + 1)["outcome"], "ok");
    let md = std::fs::read_to_string(out.join("bench.md")).unwrap();
    for name in DESIGNS {
        assert!(md.contains(&format!("| {name} |")), "{md}");
    }
    assert!(
        md.contains("MAC/s per 1k LUT") && md.contains("### Lane search"),
        "{md}"
    );

    // --reuse with --build-timeout-min: a build of the same design is reused whatever its
    // comments; one of different Verilog or synthesis options is rebuilt, here stopped at the
    // limit (yosys needs longer than 0.3 s). A stopped design is a row with its status, a
    // stopped candidate counts as not fitting; the run goes on.
    edit_builds(&out);
    let (stderr, b2) = bench(&["--reuse", "--build-timeout-min", "0.005"]);
    check_rerun(&b, &b2, &stderr, &out);
}

/// Bad arguments, a missing MiniLM cache and designs of the wrong dataflow are one-line errors
/// before any build starts (nothing is written).
#[test]
fn bench_arguments_are_checked_before_any_build() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bench");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let nowhere = dir.path().join("no-minilm");
    for (extra, needles) in [
        (
            vec!["--model-dir", p(&nowhere)],
            vec!["scripts/setup.sh", "--layers synthetic", "no-minilm"],
        ),
        (
            vec!["--factorized-config", "tiny"],
            vec!["--factorized-config", "rebuild"],
        ),
        (
            vec!["--rebuild-config", "nosuch.toml"],
            vec!["--rebuild-config nosuch.toml", "tiny, icebreaker, ulx3s"],
        ),
        (vec!["--dense"], vec!["--dense"]),
        (vec!["--prune-ratio", "1"], vec!["--prune-ratio"]),
        (vec!["--layers", "nosuch"], vec!["nosuch"]),
        (vec!["--row-density", "0"], vec!["--row-density"]),
        // The iCE40 PLL makes 16 MHz at least.
        (vec!["--clock-mhz", "15"], vec!["SB_PLL40_PAD"]),
    ] {
        let mut args = vec!["fpga", "bench", "--board", "icebreaker", "--out", p(&out)];
        args.extend(&extra);
        fails(&args, root, &needles);
        assert!(!out.exists(), "{extra:?} wrote {}", out.display());
    }
}

/// The ULX3S path, wired without hours of ECP5 builds: every build is stopped at once, so each
/// design is a `timed_out` row, and the run still writes its tables. Behind the PLL at 40 MHz
/// (`--clock-mhz`, `--freq` passed through), each design's generated board top has the
/// EHXPLLL, and the factorized default is the `ulx3s` preset switched.
#[test]
fn ulx3s_bench_builds_three_designs_behind_the_pll() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bench");
    let o = smartdeal(
        &[
            "fpga",
            "bench",
            "--board",
            "ulx3s-85f",
            "--layers",
            "synthetic",
            "--clock-mhz",
            "40",
            "--freq",
            "41",
            "--build-timeout-min",
            "0.001",
            "--out",
            p(&out),
        ],
        None,
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    let b = read_json(&out.join("bench.json"));
    assert_eq!(f(&b["board_clock_mhz"]), 25.0);
    assert_eq!(f(&b["clock_mhz"]), 40.0);
    assert_eq!(f(&b["target_mhz"]), 41.0);
    assert!(b["pll"].as_str().unwrap().contains("EHXPLLL"), "{b}");
    let cfgs: Vec<&str> = DESIGNS
        .iter()
        .map(|n| design(&b, n)["config"].as_str().unwrap())
        .collect();
    assert_eq!(cfgs, ["ulx3s", "ulx3s-factorized", "ulx3s-dense"]);
    for name in DESIGNS {
        let d = design(&b, name);
        assert_eq!(d["status"], "timed_out", "{d}");
        assert_eq!(u(&d["macs_per_cycle"]), 3 * u(&d["lanes"]) * u(&d["slots"]));
        let board = read_json(&out.join(name).join("rtl/board.json"));
        assert_eq!(board["link"]["clock_hz"], 40_000_000, "{board}");
        assert_eq!(board["link"]["pll"]["settings"]["primitive"], "EHXPLLL");
    }
    assert_eq!(b["layers"].as_array().unwrap().len(), 1);
    check_layer_bytes(layer(&b, "synthetic"));
    let md = std::fs::read_to_string(out.join("bench.md")).unwrap();
    assert!(
        md.contains("from the PLL") && md.contains("timed_out"),
        "{md}"
    );
}

/// A layer's weight bytes without builds: dense > both SmartDeal designs.
fn check_layer_bytes(l: &Value) {
    let dense = u(&cost(l, "dense-int8")["weight_bytes"]);
    for name in &DESIGNS[..2] {
        assert!(dense > u(&cost(l, name)["weight_bytes"]), "{l}");
    }
}

/// The iCEBreaker default preset behind the iCE40 PLL at 42 MHz (12 MHz × 56 / 16): one
/// SB_PLL40_PAD, the core clock is the PLL's output and meets 42 MHz, the UART divisor in
/// board.json is the PLL clock's, and the preset's MACs per cycle at that clock make at least
/// 200 M MAC/s at full row density (issue 14).
#[test]
fn icebreaker_bitstream_behind_the_pll_meets_42_mhz() {
    let (dir, r) = build_with("icebreaker", &["--clock-mhz", "42"], 42.0, "ICESTORM_LC");
    assert_eq!(r["bels"]["ICESTORM_PLL"]["used"], 1, "{}", r["bels"]);
    assert_eq!(r["clocks"][0]["clock"], "clk_core");
    let board = read_json(&dir.path().join("build/rtl/board.json"));
    assert_eq!(board["link"]["clock_hz"], 42_000_000);
    assert_eq!(
        board["link"]["pll"]["settings"]["primitive"],
        "SB_PLL40_PAD"
    );
    assert_eq!(board["clks_per_bit"], 365, "42 MHz / 115200, rounded");
    let cfg = AccelConfig::preset("icebreaker").unwrap();
    let fmax = r["clocks"][0]["achieved_mhz"].as_f64().unwrap();
    let mac_per_s = f64::from(3 * cfg.lanes * cfg.slots) * fmax * 1e6;
    assert!(mac_per_s >= 200e6, "{mac_per_s} MAC/s at {fmax} MHz");
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
