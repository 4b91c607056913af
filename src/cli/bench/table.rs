//! bench.md: one build table, one table per layer, the lane search, and what the columns mean.

use super::lanes::verdict_note;
use super::layers::LayerResult;
use super::{dataflow_name, Bench, DesignRow, Outcome, DENSE};
use smartdeal_core::WeightRequant;

/// `v` in millions, `–` when absent.
fn mega(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{:.1} M", v / 1e6))
}

/// What the columns mean (written under the tables, so the file stands alone).
const DEFINITIONS: &str = "\
Columns. **Fmax**: the lowest post-route clock frequency nextpnr reports for the build. \
**logic**: logic cells (iCE40 `ICESTORM_LC`) or LUTs (ECP5 `TRELLIS_COMB`), used / available; \
**BRAM**: block RAMs (iCE40 EBR, ECP5 DP16KD), plus the UP5K's SPRAMs; **DSP**: SB_MAC16 / \
MULT18X18D. **MACs / cycle** = 3 × lanes × slots (a lane multiplies one Ce row's three weights \
with `slots` activation triples per cycle). **MAC/s at 100 % rows** = MACs / cycle × Fmax: the \
rate on a layer whose Ce rows are all present, which is what the dense baseline always streams.\n\
\n\
Per layer: **weight bytes** = the stream entries, basis words and weight-shift words the host \
loads for the layer (activations and output parameters are the same for every design and left \
out); **stream entries** = cycles (one entry per cycle, the fixed pipeline latency aside); \
**runs** = buffer-sized runs the layer is split into; **rows streamed** = the fraction of the \
layer's Ce rows (over all output channels) that are in the stream: the layer's row density for \
SmartDeal (absent rows are never stored and cost no cycle), 100 % for the dense baseline; \
**MAC/s** = inputs × outputs × slots × Fmax / stream entries, what the design gets from the \
layer's packed stream (block padding and the union of a tile's row sets included); **MAC/s \
per 1k LUT** = that MAC/s divided by the design's logic column in thousands (effective MAC/s \
per 1k LUT). Rates need an `ok` build.\n";

/// The report as markdown.
pub fn markdown(b: &Bench) -> String {
    let clock = match &b.pll {
        None => format!("core clock {} MHz: the board clock", b.clock_mhz),
        Some(pll) => format!(
            "core clock {:.4} MHz from the PLL ({pll}), board clock {} MHz",
            b.clock_mhz, b.board_clock_mhz
        ),
    };
    let mut s = format!(
        "## {} ({}; {clock}; timing target {} MHz; UART {} baud)\n\n",
        b.board, b.device, b.target_mhz, b.baud
    );
    s.push_str(&design_table(&b.designs));
    for l in &b.layers {
        s.push_str(&layer_table(l, &b.designs));
    }
    if let Some(ls) = &b.lane_search {
        s.push_str(&format!(
            "\n### Lane search\n\nLargest lane count of `{}` (the rebuild design) that fits: \
             **{}**{}\n\n| lanes | outcome | Fmax (MHz) | logic | detail |\n\
             | ---: | --- | ---: | ---: | --- |\n",
            ls.config,
            ls.largest_fitting_lanes
                .map_or("none".to_string(), |l| l.to_string()),
            verdict_note(ls)
        ));
        for t in &ls.trials {
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                t.lanes,
                t.outcome.name(),
                t.fmax_mhz.map_or("–".into(), |f| format!("{f:.2}")),
                t.logic_percent.map_or("–".into(), |p| format!("{p:.1} %")),
                t.detail
            ));
        }
    }
    s.push('\n');
    s.push_str(DEFINITIONS);
    s
}

/// The build table, and a line for each design that did not build `ok`.
fn design_table(designs: &[DesignRow]) -> String {
    let mut s = String::from(
        "### Designs\n\n\
         | design | config | dataflow | lanes × slots | status | Fmax (MHz) | logic | FF | DSP \
         | BRAM | MACs / cycle | MAC/s at 100 % rows |\n\
         | --- | --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for d in designs {
        let dataflow = if d.design == DENSE {
            "dense int8 weights".to_string()
        } else {
            format!(
                "{}, {} weights",
                dataflow_name(d.dataflow),
                match d.weight_requant {
                    WeightRequant::Int8 => "int8",
                    WeightRequant::Exact => "exact",
                }
            )
        };
        let (fmax, logic, ff, dsp, bram) = match &d.build {
            None => Default::default(),
            Some(r) => (
                r.fmax_mhz.map_or("–".into(), |f| format!("{f:.2}")),
                format!("{} / {} {}", r.logic_used, r.logic_available, r.logic_kind),
                r.ff.to_string(),
                format!("{} / {}", r.dsp, r.dsp_available),
                format!(
                    "{} / {}{}",
                    r.bram,
                    r.bram_available,
                    match r.spram {
                        Some(n) if n > 0 => format!(" + {n} SPRAM"),
                        _ => String::new(),
                    }
                ),
            ),
        };
        s.push_str(&format!(
            "| {} | `{}` | {dataflow} | {} × {} | {} | {fmax} | {logic} | {ff} | {dsp} | {bram} \
             | {} | {} |\n",
            d.design,
            d.config,
            d.lanes,
            d.slots,
            d.status.name(),
            d.macs_per_cycle,
            mega(d.peak_mac_per_s),
        ));
    }
    for d in designs.iter().filter(|d| d.status != Outcome::Ok) {
        if let Some(why) = &d.detail {
            s.push_str(&format!("\n{}: {} ({why}).\n", d.design, d.status.name()));
        }
    }
    s
}

/// One layer's table and how each SmartDeal design compares with the dense baseline on it.
fn layer_table(l: &LayerResult, designs: &[DesignRow]) -> String {
    let mut s = format!(
        "\n### {}\n\n{}×{} (inputs × outputs), row density {:.1} %{}.\n\n\
         | design | weight bytes | stream entries (cycles) | runs | rows streamed | MAC/s \
         | MAC/s per 1k LUT |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n",
        l.title,
        l.inputs,
        l.outputs,
        l.row_density * 100.0,
        l.source
            .as_ref()
            .map_or(String::new(), |src| format!(", from `{src}`"))
    );
    for c in &l.costs {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {:.1} % | {} | {} |\n",
            c.design,
            c.weight_bytes,
            c.stream_entries,
            c.runs,
            c.row_density * 100.0,
            mega(c.mac_per_s),
            mega(c.mac_per_s_per_klut),
        ));
    }
    let Some(dense) = l.costs.iter().find(|c| c.design == DENSE) else {
        return s;
    };
    let vs: Vec<String> = l
        .costs
        .iter()
        .filter(|c| c.design != DENSE)
        .map(|c| {
            let bytes = dense.weight_bytes as f64 / c.weight_bytes as f64;
            let rate = match (c.mac_per_s, dense.mac_per_s) {
                (Some(a), Some(d)) => format!("{:.2}× the MAC/s", a / d),
                _ => "MAC/s not comparable (a build is not ok)".into(),
            };
            let area = match (c.mac_per_s_per_klut, dense.mac_per_s_per_klut) {
                (Some(a), Some(d)) => format!(", {:.2}× the MAC/s per 1k LUT", a / d),
                _ => String::new(),
            };
            format!("{}: {rate}{area}, {bytes:.2}× fewer weight bytes", c.design)
        })
        .collect();
    if !vs.is_empty() && designs.iter().any(|d| d.design == DENSE) {
        s.push_str(&format!("\nAgainst {DENSE}: {}.\n", vs.join("; ")));
    }
    s
}
