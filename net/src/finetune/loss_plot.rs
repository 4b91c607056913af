//! The loss curve of a fine-tuning run (SVG, `plotters`): the distillation loss per step, one
//! line per phase.

use super::LogEntry;
use crate::NetError;
use plotters::prelude::*;

/// Image size in pixels.
const SIZE: (u32, u32) = (900, 480);

fn plot_err(e: impl std::fmt::Display) -> NetError {
    NetError::Tensor(format!("cannot draw the loss plot: {e}"))
}

/// Draws `log` into `path`: x = step counted over both phases, y = loss.
pub fn write(path: &std::path::Path, log: &[LogEntry], title: &str) -> Result<(), NetError> {
    let positive: Vec<f64> = log.iter().map(|e| e.loss).filter(|l| *l > 0.0).collect();
    if positive.is_empty() {
        return Ok(()); // nothing trained: no plot
    }
    let hi = positive.iter().cloned().fold(0.0, f64::max) * 1.1;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0usize..log.len().max(1), 0.0..hi)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("step (masked phase, then SmartDeal phase)")
        .y_desc("distillation loss")
        .y_labels(10)
        .y_label_formatter(&|v| format!("{v:.3}"))
        .draw()
        .map_err(plot_err)?;
    let colours = [RGBColor(31, 119, 180), RGBColor(44, 160, 44)];
    for (i, phase) in ["masked", "smartdeal"].into_iter().enumerate() {
        let pts: Vec<(usize, f64)> = log
            .iter()
            .enumerate()
            .filter(|(_, e)| e.phase == phase && e.loss > 0.0)
            .map(|(k, e)| (k, e.loss))
            .collect();
        if pts.is_empty() {
            continue;
        }
        let c = colours[i];
        chart
            .draw_series(LineSeries::new(pts, c.stroke_width(2)))
            .map_err(plot_err)?
            .label(format!("{phase} phase"))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE)
        .draw()
        .map_err(plot_err)?;
    root.present().map_err(plot_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_both_phases() {
        let dir = tempfile::tempdir().unwrap();
        let log: Vec<LogEntry> = (0..20)
            .map(|k| LogEntry {
                phase: if k < 12 { "masked" } else { "smartdeal" }.into(),
                step: k % 12,
                loss: 10.0 / (1.0 + k as f64),
                lr: 1e-3,
                seconds: k as f64,
            })
            .collect();
        let p = dir.path().join("loss.svg");
        write(&p, &log, "t").unwrap();
        let svg = std::fs::read_to_string(&p).unwrap();
        assert!(svg.contains("masked phase") && svg.contains("smartdeal phase"));
        assert!(svg.matches("<polyline").count() >= 2, "two loss lines");
    }
}
