//! The sweep's figures, as SVG (plotters' SVG backend: no system fonts needed), with PNG
//! copies when `rsvg-convert` is installed.
//!
//! - `p99-vs-rate.svg`: median p99 from the schedule against the publish rate (log
//!   scale), one line per hub and subscriber count, the SLO dashed; failing points are
//!   crosses, passing ones dots.
//! - `knee-vs-subscribers.svg`: deliveries per second at the highest passing rate, per
//!   subscriber count, one line per hub.
//! - `rss-vs-subscribers.svg`: hub RSS when publishing starts against subscribers held,
//!   every run a dot, and each hub's least-squares line.

use super::point::Point;
use super::summary::{knees, rss_fit};
use plotters::coord::Shift;
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

/// Base names of the figures.
pub const FIGURES: [&str; 3] = ["p99-vs-rate", "knee-vs-subscribers", "rss-vs-subscribers"];

/// One line (or scatter) of a figure: `(x, y, pass)` points.
struct Series {
    label: String,
    points: Vec<(f64, f64, bool)>,
    line: bool,
}

/// Writes the figures (SVG, plus PNG copies when `rsvg-convert` is installed).
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

fn labels(points: &[Point]) -> Vec<String> {
    let mut l: Vec<String> = Vec::new();
    for p in points {
        if !l.contains(&p.label) {
            l.push(p.label.clone());
        }
    }
    l
}

fn draw_all(out: &Path, points: &[Point], slo_ms: f64) -> Result<(), String> {
    let labels = labels(points);
    let several = labels.len() > 1;
    let name = |label: &str, what: String| if several { format!("{label}: {what}") } else { what };
    // p99 against rate, per hub and subscriber count.
    let mut p99 = Vec::new();
    for l in &labels {
        let mut counts: Vec<u64> = points.iter().filter(|p| &p.label == l).map(|p| p.subscribers).collect();
        counts.sort_unstable();
        counts.dedup();
        for n in counts {
            let mut pts: Vec<(f64, f64, bool)> = points
                .iter()
                .filter(|p| &p.label == l && p.subscribers == n)
                .filter_map(|p| p.median(|r| r.latency_ms.p99).map(|v| (p.rate, v, p.pass(slo_ms))))
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            p99.push(Series { label: name(l, format!("{n} subscribers")), points: pts, line: true });
        }
    }
    chart(
        &out.join("p99-vs-rate.svg"),
        "p99 latency from the scheduled send time",
        "publish rate, updates/s (log scale)",
        "p99 (ms)",
        true,
        &p99,
        Some(slo_ms),
    )?;
    // Deliveries per second at the knee.
    let ks = knees(points, slo_ms);
    let knee_series: Vec<Series> = labels
        .iter()
        .map(|l| Series {
            label: name(l, "at the highest passing rate".into()),
            points: ks
                .iter()
                .filter(|k| k.label == l)
                .filter_map(|k| k.pass)
                .filter_map(|p| p.median(|r| r.delivery.deliveries_per_s).map(|d| (p.subscribers as f64, d, true)))
                .collect(),
            line: true,
        })
        .collect();
    chart(
        &out.join("knee-vs-subscribers.svg"),
        "Deliveries per second at the knee",
        "subscribers",
        "deliveries/s",
        false,
        &knee_series,
        None,
    )?;
    // RSS against subscribers, with the fit.
    let mut rss = Vec::new();
    for l in &labels {
        let dots: Vec<(f64, f64, bool)> = points
            .iter()
            .filter(|p| &p.label == l)
            .flat_map(|p| p.reports())
            .filter_map(|r| r.per_delivery.as_ref())
            .filter(|d| d.hub_rss_connected_bytes > 0)
            .map(|d| (d.held_connected as f64, d.hub_rss_connected_bytes as f64 / 1048576.0, true))
            .collect();
        let x_max = dots.iter().map(|d| d.0).fold(0.0, f64::max);
        if let Some(f) = rss_fit(points, l) {
            let y = |x: f64| (f.intercept + f.slope * x) / 1048576.0;
            rss.push(Series {
                label: name(l, format!("{:.2} KiB per subscriber", f.slope / 1024.0)),
                points: vec![(0.0, y(0.0), true), (x_max, y(x_max), true)],
                line: true,
            });
        }
        rss.push(Series { label: name(l, "runs".into()), points: dots, line: false });
    }
    chart(
        &out.join("rss-vs-subscribers.svg"),
        "Hub RSS with every subscriber connected",
        "subscribers held",
        "hub RSS (MiB)",
        false,
        &rss,
        None,
    )
}

fn chart(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    log_x: bool,
    series: &[Series],
    hline: Option<f64>,
) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let all = || series.iter().flat_map(|s| s.points.iter());
    let x_max = all().map(|p| p.0).fold(0.0f64, f64::max).max(1.0) * 1.1;
    let x_min = all().map(|p| p.0).filter(|x| *x > 0.0).fold(f64::INFINITY, f64::min);
    let x_min = if x_min.is_finite() { x_min / 1.5 } else { 0.5 };
    // Headroom: the legend sits top-left, above the data.
    let y_max = all().map(|p| p.1).chain(hline).fold(0.0f64, f64::max).max(1e-3) * 1.6;
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    if log_x {
        // 1, 2, 5 × 10^k within the range (plotters' own picks can leave a short log
        // axis unlabelled), and the rates themselves when there are only a few.
        let mut keys: Vec<f64> = (-2..7)
            .flat_map(|e| [1.0, 2.0, 5.0].map(|m| m * 10f64.powi(e)))
            .filter(|k| (x_min..=x_max).contains(k))
            .collect();
        if keys.len() < 3 {
            keys.extend(all().map(|p| p.0));
            keys.sort_by(f64::total_cmp);
            keys.dedup();
        }
        let mut c = builder(&root, title)
            .build_cartesian_2d((x_min..x_max).log_scale().with_key_points(keys), 0f64..y_max)
            .map_err(|e| err(&e))?;
        c.configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_label_formatter(&|x| format!("{x}"))
            .draw()
            .map_err(|e| err(&e))?;
        draw_series(&mut c, series, hline, (x_min, x_max)).map_err(|e| err(&e))?;
        legend(&mut c).map_err(|e| err(&e))?;
    } else {
        let mut c = builder(&root, title).build_cartesian_2d(0f64..x_max, 0f64..y_max).map_err(|e| err(&e))?;
        c.configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| if y_max >= 100.0 { format!("{y:.0}") } else { format!("{y:.1}") })
            .draw()
            .map_err(|e| err(&e))?;
        draw_series(&mut c, series, hline, (0.0, x_max)).map_err(|e| err(&e))?;
        legend(&mut c).map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))
}

fn builder<'a, 'b>(root: &'a DrawingArea<SVGBackend<'b>, Shift>, title: &str) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut b = ChartBuilder::on(root);
    b.caption(title, ("sans-serif", 22)).margin(15).x_label_area_size(45).y_label_area_size(70);
    b
}

type Chart<'a, X> = ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, plotters::coord::types::RangedCoordf64>>;

fn draw_series<X>(
    c: &mut Chart<'_, X>,
    series: &[Series],
    hline: Option<f64>,
    x_span: (f64, f64),
) -> Result<(), DrawingAreaErrorKind<std::io::Error>>
where
    X: Ranged<ValueType = f64>,
{
    if let Some(h) = hline {
        c.draw_series(DashedLineSeries::new(vec![(x_span.0, h), (x_span.1, h)], 6, 4, BLACK.stroke_width(1)))?
            .label(format!("SLO {h} ms"))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
    }
    for (i, s) in series.iter().enumerate() {
        if s.points.is_empty() {
            continue;
        }
        let color = PALETTE[i % PALETTE.len()];
        if s.line {
            c.draw_series(LineSeries::new(s.points.iter().map(|&(x, y, _)| (x, y)), color.stroke_width(2)))?
                .label(s.label.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        }
        let marks = c.draw_series(s.points.iter().map(|&(x, y, pass)| {
            if pass {
                Circle::new((x, y), 4, color.filled()).into_dyn()
            } else {
                Cross::new((x, y), 5, color.stroke_width(2)).into_dyn()
            }
        }))?;
        if !s.line {
            marks.label(s.label.clone()).legend(move |(x, y)| Circle::new((x + 10, y), 4, color.filled()));
        }
    }
    Ok(())
}

fn legend<X>(c: &mut Chart<'_, X>) -> Result<(), DrawingAreaErrorKind<std::io::Error>>
where
    X: Ranged<ValueType = f64>,
{
    c.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
}
