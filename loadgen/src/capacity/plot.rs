//! The sweep's figures, as SVG (plotters' SVG backend: no system fonts needed).
//!
//! Each figure has subscribers on x and one line per publish rate; points without a
//! report are left out; failing points are drawn as crosses, passing ones as dots.

use super::Point;
use plotters::prelude::*;
use std::path::Path;

const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Writes the three figures (SVG, plus PNG copies when `rsvg-convert` is installed).
pub fn write_all(out: &Path, points: &[Point], slo_ms: f64) -> Result<(), String> {
    draw_all(out, points, slo_ms)?;
    for name in FIGURES {
        let svg = out.join(format!("{name}.svg"));
        let png = out.join(format!("{name}.png"));
        // Optional: a missing converter only means no PNG.
        let _ = std::process::Command::new("rsvg-convert")
            .arg("--background-color=white")
            .arg("-o")
            .arg(&png)
            .arg(&svg)
            .status();
    }
    Ok(())
}

/// Base names of the figures.
pub const FIGURES: [&str; 3] = ["p99-vs-subscribers", "deliveries-vs-subscribers", "rss-per-subscriber"];

fn draw_all(out: &Path, points: &[Point], slo_ms: f64) -> Result<(), String> {
    figure(
        &out.join("p99-vs-subscribers.svg"),
        "p99 publish→receive latency",
        "p99 (ms)",
        points,
        |p| p.report.as_ref().ok().map(|r| r.latency_ms.p99),
        Some(slo_ms),
    )?;
    figure(
        &out.join("deliveries-vs-subscribers.svg"),
        "Deliveries per second",
        "deliveries/s",
        points,
        |p| p.report.as_ref().ok().map(|r| r.delivery.deliveries_per_s),
        None,
    )?;
    figure(
        &out.join("rss-per-subscriber.svg"),
        "Hub RSS per subscriber",
        "KiB per subscriber",
        points,
        |p| p.report.as_ref().ok().and_then(|r| r.hub.as_ref()).map(|h| h.rss_per_subscriber_bytes / 1024.0),
        None,
    )
}

fn figure(
    path: &Path,
    title: &str,
    y_desc: &str,
    points: &[Point],
    value: impl Fn(&Point) -> Option<f64>,
    hline: Option<f64>,
) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let mut rates: Vec<f64> = points.iter().map(|p| p.rate).collect();
    rates.sort_by(f64::total_cmp);
    rates.dedup();
    let x_max = points.iter().map(|p| p.subscribers).max().unwrap_or(1) as f64 * 1.05;
    let y_max = points.iter().filter_map(&value).chain(hline).fold(0.0f64, f64::max).max(1e-3) * 1.6; // headroom: the legend sits top-left, above the data
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("subscribers (one topic)")
        .y_desc(y_desc)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| if y_max >= 100.0 { format!("{y:.0}") } else { format!("{y:.1}") })
        .draw()
        .map_err(|e| err(&e))?;
    if let Some(h) = hline {
        chart
            .draw_series(DashedLineSeries::new(vec![(0.0, h), (x_max, h)], 6, 4, BLACK.stroke_width(1)))
            .map_err(|e| err(&e))?
            .label(format!("SLO {h} ms"))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
    }
    for (i, &rate) in rates.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let mut series: Vec<(f64, f64, bool)> = points
            .iter()
            .filter(|p| p.rate == rate)
            .filter_map(|p| value(p).map(|v| (p.subscribers as f64, v, p.pass())))
            .collect();
        series.sort_by(|a, b| a.0.total_cmp(&b.0));
        if series.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(series.iter().map(|&(x, y, _)| (x, y)), color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(format!("{rate} updates/s"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        chart
            .draw_series(series.iter().map(|&(x, y, pass)| {
                if pass {
                    Circle::new((x, y), 4, color.filled()).into_dyn()
                } else {
                    Cross::new((x, y), 5, color.stroke_width(2)).into_dyn()
                }
            }))
            .map_err(|e| err(&e))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))
}
