//! The PLL planner against the vendor-neutral calculators it follows: IceStorm's `icepll` for
//! the iCE40 `SB_PLL40_PAD` and Project Trellis' `ecppll` for the ECP5 `EHXPLLL`. For each
//! request the planner picks the fastest clock at or below it; asked for exactly that clock,
//! the tool must choose the same dividers (and loop filter / phase).

use smartdeal_fpga::{find_tool, tools::yowasp_cache_dir, Tool};
use smartdeal_gen::pll::{Pll, PllFamily, PllSettings};
use std::path::Path;
use std::process::Command;

/// `KEY: value` or `.KEY(value)` → value, as an integer.
fn field(text: &str, key: &str) -> u32 {
    for line in text.lines() {
        let l = line.trim();
        if let Some(rest) = l.strip_prefix(&format!("{key}:")) {
            let v = rest.split_whitespace().next().unwrap_or("");
            return v.parse().unwrap_or_else(|_| panic!("{key} in `{l}`"));
        }
        if let Some(rest) = l.strip_prefix(&format!(".{key}(")) {
            let v = rest.split(')').next().unwrap_or("");
            return v.parse().unwrap_or_else(|_| panic!("{key} in `{l}`"));
        }
    }
    panic!("no {key} in:\n{text}")
}

fn mhz_arg(p: &Pll) -> String {
    // Exact to 1 Hz: both tools take MHz as a float.
    format!("{:.6}", p.out_hz_exact() / 1e6)
}

#[test]
fn ice40_plans_match_icepll() {
    let icepll = find_tool(Tool::Icepll).expect("icepll (fpga-icestorm; scripts/setup.sh)");
    for want in [
        17, 18, 20, 24, 25, 30, 33, 36, 40, 48, 50, 66, 100, 133, 200,
    ] {
        let p = Pll::plan(PllFamily::Ice40, 12_000_000, want * 1_000_000).unwrap();
        let out = Command::new(&icepll)
            .args(["-i", "12", "-o", &mhz_arg(&p)])
            .output()
            .expect("run icepll");
        assert!(out.status.success(), "icepll failed for {want} MHz");
        let text = String::from_utf8_lossy(&out.stdout);
        let PllSettings::Ice40 {
            divr,
            divf,
            divq,
            filter_range,
        } = p.settings
        else {
            panic!("an iCE40 plan")
        };
        let tool = (
            field(&text, "DIVR"),
            field(&text, "DIVF"),
            field(&text, "DIVQ"),
            field(&text, "FILTER_RANGE"),
        );
        assert_eq!(
            tool,
            (divr.into(), divf.into(), divq.into(), filter_range.into()),
            "request {want} MHz, planned {}:\n{text}",
            p.config_line()
        );
    }
}

#[test]
fn ecp5_plans_match_ecppll() {
    let ecppll = find_tool(Tool::Ecppll).expect("yowasp-ecppll (scripts/setup.sh)");
    // YoWASP tools cannot write under /tmp: work in Cargo's target tmpdir.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    for want in [12, 20, 30, 33, 40, 48, 50, 62, 75, 100, 133] {
        let p = Pll::plan(PllFamily::Ecp5, 25_000_000, want * 1_000_000).unwrap();
        let file = format!("pll{want}.v");
        let out = Command::new(&ecppll)
            .current_dir(dir.path())
            .env("YOWASP_CACHE_DIR", yowasp_cache_dir())
            .args(["-i", "25", "-o", &mhz_arg(&p), "-f", &file])
            .output()
            .expect("run ecppll");
        assert!(out.status.success(), "ecppll failed for {want} MHz");
        let text = std::fs::read_to_string(Path::new(dir.path()).join(&file)).unwrap();
        let PllSettings::Ecp5 {
            clki_div,
            clkfb_div,
            clkop_div,
            clkop_cphase,
        } = p.settings
        else {
            panic!("an ECP5 plan")
        };
        let tool = (
            field(&text, "CLKI_DIV"),
            field(&text, "CLKFB_DIV"),
            field(&text, "CLKOP_DIV"),
            field(&text, "CLKOP_CPHASE"),
        );
        assert_eq!(
            tool,
            (
                clki_div.into(),
                clkfb_div.into(),
                clkop_div.into(),
                clkop_cphase.into()
            ),
            "request {want} MHz, planned {}:\n{text}",
            p.config_line()
        );
    }
}
