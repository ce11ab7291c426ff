//! The soak's figure: hub RSS, open fds, `mercure_subscribers` against the loadgen's
//! truth, and their difference with the allowed band, over time, in four stacked panels
//! of one SVG (plotters' SVG backend, as the
//! capacity figures), plus a PNG copy when `rsvg-convert` is installed.

use super::SoakSample;
use plotters::prelude::*;
use std::path::Path;

const BLUE: RGBColor = RGBColor(31, 119, 180);
const ORANGE: RGBColor = RGBColor(255, 127, 14);
const GREY: RGBColor = RGBColor(150, 150, 150);
const RED: RGBColor = RGBColor(214, 39, 40);

/// Writes `soak.svg` (and `soak.png` when possible) in `out`; `warmup_end_s` is drawn
/// as a vertical line on the RSS panel.
pub fn write(out: &Path, samples: &[SoakSample], warmup_end_s: f64) -> Result<(), String> {
    let svg = out.join("soak.svg");
    draw(&svg, samples, warmup_end_s)?;
    // Optional: a missing converter only means no PNG.
    let _ = std::process::Command::new("rsvg-convert")
        .arg("--background-color=white")
        .arg("-o")
        .arg(out.join("soak.png"))
        .arg(&svg)
        .status();
    Ok(())
}

type Series = Vec<(f64, f64)>;

fn draw(path: &Path, samples: &[SoakSample], warmup_end_s: f64) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let pts: Vec<&SoakSample> = samples.iter().filter(|s| s.phase != "settled").collect();
    let minutes = |s: &SoakSample| s.t_s / 60.0;
    let x_max = pts.iter().map(|s| s.t_s / 60.0).fold(1.0 / 60.0, f64::max);
    let rss: Series =
        pts.iter().filter(|s| s.rss_bytes > 0).map(|s| (minutes(s), s.rss_bytes as f64 / 1048576.0)).collect();
    let fds: Series = pts.iter().filter(|s| s.fds > 0).map(|s| (minutes(s), s.fds as f64)).collect();
    let hub: Series = pts.iter().filter_map(|s| s.metric("mercure_subscribers").map(|v| (minutes(s), v))).collect();
    let truth: Series = pts.iter().map(|s| (minutes(s), (s.held + s.stuck_open) as f64)).collect();
    let lo: Series = pts.iter().map(|s| (minutes(s), s.subscribers_lo as f64)).collect();
    let hi: Series = pts.iter().map(|s| (minutes(s), s.subscribers_hi as f64)).collect();
    let bad: Series = pts
        .iter()
        .filter(|s| !s.subscribers_ok)
        .map(|s| (minutes(s), s.metric("mercure_subscribers").unwrap_or(0.0)))
        .collect();
    // The same, relative to the truth: where the band is visible.
    let base = |s: &SoakSample| (s.held + s.stuck_open) as f64;
    let gap: Series =
        pts.iter().filter_map(|s| s.metric("mercure_subscribers").map(|v| (minutes(s), v - base(s)))).collect();
    let gap_lo: Series = pts.iter().map(|s| (minutes(s), s.subscribers_lo as f64 - base(s))).collect();
    let gap_hi: Series = pts.iter().map(|s| (minutes(s), s.subscribers_hi as f64 - base(s))).collect();
    let gap_bad: Series = pts
        .iter()
        .filter(|s| !s.subscribers_ok)
        .map(|s| (minutes(s), s.metric("mercure_subscribers").map_or(0.0, |v| v - base(s))))
        .collect();

    let root = SVGBackend::new(path, (1000, 1300)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let panels = root.split_evenly((4, 1));
    let ymax = |s: &[&Series]| s.iter().flat_map(|v| v.iter().map(|p| p.1)).fold(1.0, f64::max) * 1.15;

    // RSS.
    let y = ymax(&[&rss]);
    let mut c = ChartBuilder::on(&panels[0])
        .caption("Hub RSS (MiB)", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..x_max, 0f64..y)
        .map_err(|e| err(&e))?;
    c.configure_mesh().x_desc("minutes").y_desc("MiB").draw().map_err(|e| err(&e))?;
    c.draw_series(LineSeries::new(rss, BLUE.stroke_width(2)))
        .map_err(|e| err(&e))?
        .label("RSS")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    let w = warmup_end_s / 60.0;
    c.draw_series(DashedLineSeries::new(vec![(w, 0.0), (w, y)], 6, 4, GREY.stroke_width(1)))
        .map_err(|e| err(&e))?
        .label("end of warm-up")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], GREY));
    c.configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;

    // fds.
    let y = ymax(&[&fds]);
    let mut c = ChartBuilder::on(&panels[1])
        .caption("Hub open file descriptors", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..x_max, 0f64..y)
        .map_err(|e| err(&e))?;
    c.configure_mesh().x_desc("minutes").y_desc("fds").draw().map_err(|e| err(&e))?;
    c.draw_series(LineSeries::new(fds, BLUE.stroke_width(2))).map_err(|e| err(&e))?;

    // Subscribers vs truth.
    let y = ymax(&[&hub, &truth, &hi]);
    let mut c = ChartBuilder::on(&panels[2])
        .caption("mercure_subscribers vs the loadgen's truth", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..x_max, 0f64..y)
        .map_err(|e| err(&e))?;
    c.configure_mesh().x_desc("minutes").y_desc("subscribers").draw().map_err(|e| err(&e))?;
    c.draw_series(LineSeries::new(lo, GREY.stroke_width(1)))
        .map_err(|e| err(&e))?
        .label("allowed band")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], GREY));
    c.draw_series(LineSeries::new(hi, GREY.stroke_width(1))).map_err(|e| err(&e))?;
    c.draw_series(LineSeries::new(truth, ORANGE.stroke_width(2)))
        .map_err(|e| err(&e))?
        .label("truth: held + stuck open")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], ORANGE.stroke_width(2)));
    c.draw_series(LineSeries::new(hub, BLUE.stroke_width(2)))
        .map_err(|e| err(&e))?
        .label("hub mercure_subscribers")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    c.draw_series(bad.iter().map(|&(x, y)| Cross::new((x, y), 6, RED.stroke_width(2))))
        .map_err(|e| err(&e))?
        .label("outside the band")
        .legend(|(x, y)| Cross::new((x + 10, y), 5, RED.stroke_width(2)));
    c.configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;

    // Hub minus truth, with the band.
    let top = gap_hi.iter().chain(&gap).map(|p| p.1).fold(1.0, f64::max) * 1.15;
    let bottom = gap_lo.iter().chain(&gap).map(|p| p.1).fold(-1.0, f64::min) * 1.15;
    let mut c = ChartBuilder::on(&panels[3])
        .caption("mercure_subscribers − truth, and the allowed band", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..x_max, bottom..top)
        .map_err(|e| err(&e))?;
    c.configure_mesh().x_desc("minutes").y_desc("hub − truth").draw().map_err(|e| err(&e))?;
    c.draw_series(LineSeries::new(gap_lo, GREY.stroke_width(1)))
        .map_err(|e| err(&e))?
        .label("band (churn, in flight, stuck)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], GREY));
    c.draw_series(LineSeries::new(gap_hi, GREY.stroke_width(1))).map_err(|e| err(&e))?;
    c.draw_series(LineSeries::new(gap, BLUE.stroke_width(2)))
        .map_err(|e| err(&e))?
        .label("hub − truth")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    c.draw_series(gap_bad.iter().map(|&(x, y)| Cross::new((x, y), 6, RED.stroke_width(2)))).map_err(|e| err(&e))?;
    c.configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_an_svg() {
        let dir = std::env::temp_dir().join(format!("soak-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_default();
        let s: Vec<SoakSample> = (0..30)
            .map(|i| SoakSample {
                t_s: f64::from(i) * 10.0,
                phase: "publishing".into(),
                rss_bytes: 50 << 20,
                fds: 100,
                held: 90,
                subscribers_lo: 80,
                subscribers_hi: 110,
                subscribers_ok: i != 7,
                ..SoakSample::default()
            })
            .collect();
        assert_eq!(draw(&dir.join("soak.svg"), &s, 60.0), Ok(()));
        let svg = std::fs::read_to_string(dir.join("soak.svg")).unwrap_or_default();
        assert!(svg.contains("mercure_subscribers vs the loadgen"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
