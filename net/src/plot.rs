//! The compression sweep's plots (SVG, `plotters`): score against bits per weight or row
//! density, one series per compression method (plain, aware, fine-tuned) — colour from the
//! method, marker from exp_bits — each method's Pareto front as a staircase in its colour
//! through ringed, labelled points, and the float model's score as a dashed line.

use crate::sweep::{fmt_threshold, Method, PointResult, Sweep};
use crate::NetError;
use plotters::coord::Shift;
use plotters::element::DynElement;
use plotters::prelude::*;

/// The quantity on the x axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XAxis {
    BitsPerWeight,
    RowDensity,
}

impl XAxis {
    pub const ALL: [XAxis; 2] = [XAxis::BitsPerWeight, XAxis::RowDensity];

    /// The point's value on this axis.
    pub fn value(self, r: &PointResult) -> f64 {
        match self {
            XAxis::BitsPerWeight => r.bits_per_weight,
            XAxis::RowDensity => r.row_density,
        }
    }

    /// Whether the point is on this axis' Pareto front.
    pub fn on_front(self, r: &PointResult) -> bool {
        match self {
            XAxis::BitsPerWeight => r.pareto_bits,
            XAxis::RowDensity => r.pareto_row_density,
        }
    }

    pub fn file_name(self) -> &'static str {
        match self {
            XAxis::BitsPerWeight => "score_vs_bits.svg",
            XAxis::RowDensity => "score_vs_row_density.svg",
        }
    }

    fn label(self) -> &'static str {
        match self {
            XAxis::BitsPerWeight => "bits per weight (.sdm file bytes × 8 / weights)",
            XAxis::RowDensity => "row density (present Ce rows / all rows)",
        }
    }

    fn short(self) -> &'static str {
        match self {
            XAxis::BitsPerWeight => "bits per weight",
            XAxis::RowDensity => "row density",
        }
    }
}

/// Image size in pixels.
pub const SIZE: (u32, u32) = (1200, 640);

/// Width of the legend column right of the plot.
const LEGEND_WIDTH: u32 = 310;

/// A method's colour.
fn colour(m: Method) -> RGBColor {
    match m {
        Method::Plain => RGBColor(31, 119, 180),
        Method::Aware => RGBColor(214, 39, 40),
        Method::Finetuned => RGBColor(44, 160, 44),
    }
}

/// exp_bits 3: filled circle, 2: triangle, 4: cross, others: an empty circle.
fn marker<'e, 'b, C: Clone + 'static>(
    exp_bits: u32,
    at: C,
    c: RGBColor,
) -> DynElement<'e, SVGBackend<'b>, C> {
    match exp_bits {
        2 => TriangleMarker::new(at, 7, c.filled()).into_dyn(),
        4 => Cross::new(at, 5, c.stroke_width(3)).into_dyn(),
        3 => Circle::new(at, 5, c.filled()).into_dyn(),
        _ => Circle::new(at, 5, c.stroke_width(2)).into_dyn(),
    }
}

/// `[lo, hi]` of `v` widened by 6 % on each side (a fixed width when all values are equal).
fn range(v: impl Iterator<Item = f64>, min_width: f64) -> (f64, f64) {
    let (lo, hi) = v
        .filter(|x| x.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
            (a.min(x), b.max(x))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.06).max(min_width / 2.0);
    (lo - pad, hi + pad)
}

/// The sweep's plot against `x`, as SVG text.
pub fn svg(s: &Sweep, x: XAxis) -> Result<String, NetError> {
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, SIZE).into_drawing_area();
        draw(&root, s, x).map_err(|e| NetError::Compress(format!("cannot draw the plot: {e}")))?;
        root.present()
            .map_err(|e| NetError::Compress(format!("cannot draw the plot: {e}")))?;
    }
    Ok(text)
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// A legend entry's symbol.
enum Key {
    /// The float model's dashed line.
    Float,
    /// A method: its colour, front line and ring.
    Method(RGBColor),
    /// An exp_bits marker (in grey).
    ExpBits(u32),
}

const GREY: RGBColor = RGBColor(90, 90, 90);

fn draw(root: &DrawingArea<SVGBackend, Shift>, s: &Sweep, x: XAxis) -> DrawResult {
    root.fill(&WHITE)?;
    let (plot_area, legend_area) = root.split_horizontally(SIZE.0 - LEGEND_WIDTH);
    let pts = &s.points;
    let (x0, x1) = range(pts.iter().map(|r| x.value(r)), 0.1);
    // Room on the right for the labels of the last points.
    let x1 = x1 + (x1 - x0) * 0.06;
    let (y0, y1) = range(pts.iter().map(|r| r.score).chain(s.float_score), 0.02);
    let caption = format!("sweep `{}`: {} vs {}", s.task, s.metric, x.short());
    let mut chart = ChartBuilder::on(&plot_area)
        .caption(caption, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    chart
        .configure_mesh()
        .x_desc(x.label())
        .y_desc(s.metric.as_str())
        .axis_desc_style(("sans-serif", 16))
        .label_style(("sans-serif", 14))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    let mut keys: Vec<(Key, String)> = Vec::new();

    if let Some(f) = s.float_score {
        chart.draw_series(DashedLineSeries::new(
            [(x0, f), (x1, f)],
            8,
            5,
            GREY.stroke_width(2),
        ))?;
        keys.push((Key::Float, format!("float model ({f:.4})")));
    }

    for m in s.methods() {
        let c = colour(m);
        let mine: Vec<&PointResult> = pts.iter().filter(|r| r.point.method == m).collect();
        chart.draw_series(
            mine.iter()
                .map(|r| marker(r.point.exp_bits, (x.value(r), r.score), c)),
        )?;
        front_of(&mut chart, &mine, x, c)?;
        keys.push((
            Key::Method(c),
            format!("{}: points, Pareto front", m.name()),
        ));
    }
    let mut exps: Vec<u32> = pts.iter().map(|r| r.point.exp_bits).collect();
    exps.sort();
    exps.dedup();
    for e in exps {
        keys.push((Key::ExpBits(e), format!("exp_bits {e}")));
    }
    legend(&legend_area, s, &keys)
}

type Chart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// One method's Pareto front (of `pts`, its points) as a staircase, the best score reachable
/// within each budget, through ringed points labelled threshold / prune ratio / exp_bits.
fn front_of(chart: &mut Chart, pts: &[&PointResult], x: XAxis, c: RGBColor) -> DrawResult {
    let mut front: Vec<&PointResult> = pts.iter().copied().filter(|r| x.on_front(r)).collect();
    front.sort_by(|a, b| x.value(a).total_cmp(&x.value(b)));
    let mut stairs: Vec<(f64, f64)> = Vec::new();
    for r in &front {
        let p = (x.value(r), r.score);
        if let Some(&(_, y)) = stairs.last() {
            stairs.push((p.0, y));
        }
        stairs.push(p);
    }
    chart.draw_series(LineSeries::new(stairs, c.stroke_width(2)))?;
    // Labels alternate below and above the ring so neighbours stay readable.
    chart.draw_series(front.iter().enumerate().map(|(i, r)| {
        let at = (x.value(r), r.score);
        let tag = format!(
            "{} / {} / {}",
            fmt_threshold(r.point.threshold),
            r.point.prune_ratio,
            r.point.exp_bits
        );
        let dy = if i % 2 == 0 { 6 } else { -18 };
        EmptyElement::at(at)
            + Circle::new((0, 0), 9, c.stroke_width(2))
            + Text::new(tag, (10, dy), ("sans-serif", 12).into_font().color(&c))
    }))?;
    Ok(())
}

/// The legend column: the entries, then what the front's labels and the run were.
fn legend(area: &DrawingArea<SVGBackend, Shift>, s: &Sweep, keys: &[(Key, String)]) -> DrawResult {
    let font = ("sans-serif", 14).into_font();
    let (x, mut y) = (12, 60);
    for (key, text) in keys {
        match key {
            Key::Float => {
                for a in [x, x + 13] {
                    area.draw(&PathElement::new(
                        [(a, y), (a + 8, y)],
                        GREY.stroke_width(2),
                    ))?;
                }
            }
            Key::ExpBits(e) => area.draw(&marker(*e, (x + 10, y), GREY))?,
            Key::Method(c) => {
                area.draw(&PathElement::new([(x, y), (x + 21, y)], c.stroke_width(2)))?;
                area.draw(&Circle::new((x + 10, y), 7, c.stroke_width(2)))?;
            }
        }
        area.draw(&Text::new(text.as_str(), (x + 30, y - 8), font.clone()))?;
        y += 24;
    }
    let notes = [
        "Front labels: threshold / prune ratio / exp_bits".to_string(),
        format!("{} items, {} engine", s.settings.items, s.settings.engine),
        format!(
            "config `{}`, group size {}",
            s.settings.config, s.settings.group_size
        ),
    ];
    let small = ("sans-serif", 13).into_font().color(&GREY);
    for n in notes {
        y += 6;
        area.draw(&Text::new(n, (x, y), small.clone()))?;
        y += 12;
    }
    Ok(())
}
