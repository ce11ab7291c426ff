//! `summary.md` and `summary.json` of a capacity sweep: what ran (provenance, hubs,
//! shape), the knee per hub and subscriber count, the memory per subscriber fitted over
//! every run, the side-by-side comparison, and every point with its median and spread.

use super::CapacityArgs;
use super::point::Point;
use super::provenance::Provenance;
use super::stats::{Fit, linear_fit};
use serde_json::json;
use std::fmt::Write as _;
use std::path::Path;

/// Facts about the sweep itself.
pub struct Context {
    /// UTC date.
    pub date: String,
    /// Commit, toolchain, kernel, CPU.
    pub provenance: Provenance,
    /// Per hub: label, description, startup configuration lines.
    pub targets: Vec<(String, String, Vec<String>)>,
    /// Hub nodes per point.
    pub nodes: u32,
    /// What was asked for.
    pub args: CapacityArgs,
    /// Sweep wall time, s.
    pub elapsed_s: f64,
    /// Cut short by Ctrl-C.
    pub interrupted: bool,
    /// Cut short by Ctrl-C or the time budget.
    pub out_of_time: bool,
    /// 1-minute load average before and after the sweep.
    pub load_before: String,
    /// See `load_before`.
    pub load_after: String,
}

/// The knee of one hub at one subscriber count: the highest passing rate, and the lowest
/// failing one above it (the knee lies between).
#[derive(Debug, Clone)]
pub struct Knee<'a> {
    /// Hub label.
    pub label: &'a str,
    /// Subscribers.
    pub subscribers: u64,
    /// The highest passing point, if any.
    pub pass: Option<&'a Point>,
    /// The lowest failing rate above it, if one was run.
    pub fail_rate: Option<f64>,
}

/// The knee per hub and subscriber count, in sweep order.
pub fn knees<'a>(points: &'a [Point], slo_ms: f64) -> Vec<Knee<'a>> {
    let mut out: Vec<Knee<'a>> = Vec::new();
    for p in points {
        if !out.iter().any(|k| k.label == p.label && k.subscribers == p.subscribers) {
            out.push(Knee { label: &p.label, subscribers: p.subscribers, pass: None, fail_rate: None });
        }
    }
    for k in &mut out {
        let mine = || points.iter().filter(|p| p.label == k.label && p.subscribers == k.subscribers);
        k.pass = mine().filter(|p| p.pass(slo_ms)).max_by(|a, b| a.rate.total_cmp(&b.rate));
        let floor = k.pass.map_or(0.0, |p| p.rate);
        k.fail_rate = mine().filter(|p| !p.pass(slo_ms) && p.rate > floor).map(|p| p.rate).min_by(f64::total_cmp);
    }
    out
}

/// The least-squares fit of hub RSS when publishing started against subscribers held, over
/// every run of hub `label` (the slope is the marginal memory per subscriber).
pub fn rss_fit(points: &[Point], label: &str) -> Option<Fit> {
    let xy: Vec<(f64, f64)> = points
        .iter()
        .filter(|p| p.label == label)
        .flat_map(|p| p.reports())
        .filter_map(|r| r.per_delivery.as_ref())
        .filter(|d| d.hub_rss_connected_bytes > 0)
        .map(|d| (d.held_connected as f64, d.hub_rss_connected_bytes as f64))
        .collect();
    linear_fit(&xy)
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".into(), |v| format!("{v:.digits$}"))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if a > 0.0 => format!("{:.2}", b / a),
        _ => "–".into(),
    }
}

fn mib(b: f64) -> f64 {
    b / 1048576.0
}

/// The point's medians, as the tables show them.
struct Row<'a> {
    p: &'a Point,
    p50: Option<f64>,
    p99: Option<f64>,
    p99_spread: Option<(f64, f64)>,
    p99_send: Option<f64>,
    lag_p99: Option<f64>,
    deliveries: Option<f64>,
    hub_us: Option<f64>,
    hub_us_spread: Option<(f64, f64)>,
    loadgen_us: Option<f64>,
    rss_connected_mib: Option<f64>,
}

fn row(p: &Point) -> Row<'_> {
    let hub_us = |r: &crate::report::Report| r.per_delivery.as_ref().map(|d| d.hub_us_per_delivery);
    Row {
        p,
        p50: p.median(|r| r.latency_ms.p50),
        p99: p.median(|r| r.latency_ms.p99),
        p99_spread: p.spread(|r| r.latency_ms.p99),
        p99_send: p.median(|r| r.latency_from_send_ms.p99),
        lag_p99: p.median(|r| r.publish.lag_ms.p99),
        deliveries: p.median(|r| r.delivery.deliveries_per_s),
        hub_us: p.median_opt(hub_us),
        hub_us_spread: super::stats::spread(&p.reports().filter_map(hub_us).collect::<Vec<_>>()),
        loadgen_us: p.median_opt(|r| r.per_delivery.as_ref().map(|d| d.loadgen_us_per_delivery)),
        rss_connected_mib: p
            .median_opt(|r| r.per_delivery.as_ref().map(|d| mib(d.hub_rss_connected_bytes as f64)))
            .filter(|v| *v > 0.0),
    }
}

fn with_spread(m: Option<f64>, s: Option<(f64, f64)>, digits: usize) -> String {
    match (m, s) {
        (Some(m), Some((lo, hi))) if lo != hi => format!("{m:.digits$} [{lo:.digits$}–{hi:.digits$}]"),
        (m, _) => opt(m, digits),
    }
}

/// Writes `summary.md` and `summary.json`.
pub fn write(out: &Path, ctx: &Context, points: &[Point]) -> Result<(), String> {
    // Tables read by hub, then subscribers, then rate (the search runs rates out of order).
    let mut sorted: Vec<Point> = points.to_vec();
    let rank = |l: &str| ctx.targets.iter().position(|t| t.0 == l).unwrap_or(usize::MAX);
    sorted.sort_by(|x, y| {
        (rank(&x.label), x.subscribers).cmp(&(rank(&y.label), y.subscribers)).then(x.rate.total_cmp(&y.rate))
    });
    let points = sorted.as_slice();
    let a = &ctx.args;
    let slo = a.slo_ms;
    let knees = knees(points, slo);
    let mut md = String::new();
    let _ = writeln!(md, "# Capacity sweep, {}\n", ctx.date);
    let _ = writeln!(
        md,
        "{} 1-minute load average before the sweep {}, after {}. Sweep time {:.0} s{}.\n",
        ctx.provenance.markdown(),
        ctx.load_before,
        ctx.load_after,
        ctx.elapsed_s,
        if ctx.interrupted {
            " (interrupted)"
        } else if ctx.out_of_time {
            " (time budget reached: the last point is incomplete)"
        } else {
            ""
        }
    );
    let _ = writeln!(md, "Hubs (hub and load generator share this machine):\n");
    for (label, desc, config) in &ctx.targets {
        let _ = writeln!(md, "- **{label}**: {desc}");
        if !config.is_empty() {
            let _ = writeln!(md, "\n  ```");
            for l in config {
                let _ = writeln!(md, "  {l}");
            }
            let _ = writeln!(md, "  ```");
        }
    }
    let search = if a.rates.is_empty() {
        format!(
            "rates searched from {}/s, doubling while a point passes, then bisected to within {:.0} % (or 1/s), at most {}/s",
            a.rate_start,
            a.rate_precision * 100.0,
            a.rate_max
        )
    } else {
        format!(
            "rates {:?}{}",
            a.rates,
            if a.no_skip_after_failure { "" } else { ", stopping at the first failing one" }
        )
    };
    let _ = writeln!(
        md,
        "\nShape: {} topic{} (Zipf s = {}), {} publisher users, {} arrivals, {}{}; each run publishes at a \
         constant rate for {} s (at least {} publishes) to N subscribers connected before publishing \
         starts; {} runs per point{}; {}. Extra run flags: `{}`.\n",
        a.topics.max(1),
        if a.topics > 1 { "s" } else { "" },
        a.zipf_s,
        a.publishers,
        a.arrivals.as_str(),
        if ctx.nodes > 1 { format!("{} hub nodes on one Redis stream", ctx.nodes) } else { "one hub node".into() },
        if ctx.targets.len() > 1 { ", the two hubs' runs alternating at every point (A B, B A, …)" } else { "" },
        a.duration,
        a.min_publishes,
        a.repeat.max(1),
        if ctx.targets.len() > 1 { " per hub" } else { "" },
        search,
        a.run_args
    );
    let _ = writeln!(
        md,
        "A point passes when every run is exact (no loss, duplicate, reordering, unexpected event, \
         failed publish, untallied or unconnected subscriber), the **median p99 latency from the \
         scheduled send time** is under {slo} ms, and most runs met the offered rate \
         (`loadgen/README.md`, \"Capacity planning\").\n"
    );
    // Knees.
    let _ = writeln!(md, "## Knee\n");
    for (label, _, _) in &ctx.targets {
        let best = knees.iter().filter(|k| k.label == label).filter_map(|k| k.pass).max_by(|x, y| {
            let d = |p: &Point| p.median(|r| r.delivery.deliveries_per_s).unwrap_or(0.0);
            d(x).total_cmp(&d(y))
        });
        match best {
            Some(p) => {
                let _ = writeln!(
                    md,
                    "**{label}: {} subscribers × {} updates/s = {:.0} deliveries/s** (median of {} run(s); p99 from \
                     schedule {:.2} ms).\n",
                    p.subscribers,
                    p.rate,
                    p.median(|r| r.delivery.deliveries_per_s).unwrap_or(0.0),
                    p.reps.len(),
                    p.median(|r| r.latency_ms.p99).unwrap_or(0.0)
                );
            }
            None => {
                let _ = writeln!(md, "**{label}: no passing point.**\n");
            }
        }
    }
    let _ = writeln!(
        md,
        "| hub | subscribers | highest passing rate/s | lowest failing rate/s | deliveries/s there | p99 ms there | hub µs/delivery there |\n|---|---:|---:|---:|---:|---:|---:|"
    );
    for k in &knees {
        let r = k.pass.map(row);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} |",
            k.label,
            k.subscribers,
            k.pass.map_or("none".into(), |p| p.rate.to_string()),
            k.fail_rate.map_or("not reached".into(), |r| r.to_string()),
            opt(r.as_ref().and_then(|r| r.deliveries), 0),
            opt(r.as_ref().and_then(|r| r.p99), 2),
            opt(r.as_ref().and_then(|r| r.hub_us), 2),
        );
    }
    // Memory.
    let _ = writeln!(
        md,
        "\n## Memory per subscriber\n\nHub RSS when publishing starts (every subscriber connected) against \
         subscribers held, least squares over every run: the slope is what one more subscriber costs.\n"
    );
    let _ = writeln!(md, "| hub | KiB per subscriber | base MiB | R² | runs |\n|---|---:|---:|---:|---:|");
    let fits: Vec<(String, Option<Fit>)> =
        ctx.targets.iter().map(|(l, _, _)| (l.clone(), rss_fit(points, l))).collect();
    for (label, fit) in &fits {
        match fit {
            Some(f) => {
                let _ = writeln!(
                    md,
                    "| {label} | {:.2} | {:.1} | {:.3} | {} |",
                    f.slope / 1024.0,
                    mib(f.intercept),
                    f.r2,
                    f.n
                );
            }
            None => {
                let _ = writeln!(md, "| {label} | – (fewer than two subscriber counts) | | | |");
            }
        }
    }
    // Side by side.
    let mut comparison = Vec::new();
    if let [(la, _, _), (lb, _, _)] = ctx.targets.as_slice() {
        let _ = writeln!(
            md,
            "\n## {la} versus {lb}\n\nPoints both hubs ran (medians; ratio = {lb} / {la}, below 1 means {lb} is lower):\n"
        );
        let _ = writeln!(
            md,
            "| subscribers | rate/s | p99 ms {la} | p99 ms {lb} | ratio | hub µs/delivery {la} | {lb} | ratio | deliveries/s {la} | {lb} | RSS at connect MiB {la} | {lb} | ratio | pass {la} | pass {lb} |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:--:|:--:|"
        );
        for pa in points.iter().filter(|p| &p.label == la) {
            let Some(pb) =
                points.iter().find(|p| &p.label == lb && p.subscribers == pa.subscribers && p.rate == pa.rate)
            else {
                continue;
            };
            let (ra, rb) = (row(pa), row(pb));
            let yes = |p: &Point| if p.pass(slo) { "pass" } else { "FAIL" };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                pa.subscribers,
                pa.rate,
                opt(ra.p99, 2),
                opt(rb.p99, 2),
                ratio(ra.p99, rb.p99),
                opt(ra.hub_us, 2),
                opt(rb.hub_us, 2),
                ratio(ra.hub_us, rb.hub_us),
                opt(ra.deliveries, 0),
                opt(rb.deliveries, 0),
                opt(ra.rss_connected_mib, 1),
                opt(rb.rss_connected_mib, 1),
                ratio(ra.rss_connected_mib, rb.rss_connected_mib),
                yes(pa),
                yes(pb)
            );
            comparison.push(json!({
                "subscribers": pa.subscribers, "rate": pa.rate,
                "p99_ms": [ra.p99, rb.p99], "hub_us_per_delivery": [ra.hub_us, rb.hub_us],
                "deliveries_per_s": [ra.deliveries, rb.deliveries],
                "hub_rss_connected_mib": [ra.rss_connected_mib, rb.rss_connected_mib],
                "pass": [pa.pass(slo), pb.pass(slo)],
            }));
        }
        let _ = writeln!(
            md,
            "\nKnees (highest passing rate per subscriber count):\n\n| subscribers | {la} rate/s | {lb} rate/s | ratio |\n|---:|---:|---:|---:|"
        );
        let mut counts: Vec<u64> = knees.iter().map(|k| k.subscribers).collect();
        // Knees are listed hub by hub: sort so each count appears once.
        counts.sort_unstable();
        counts.dedup();
        for n in counts {
            let rate = |l: &str| {
                knees.iter().find(|k| k.label == l && k.subscribers == n).and_then(|k| k.pass).map(|p| p.rate)
            };
            let (ka, kb) = (rate(la), rate(lb));
            let _ = writeln!(md, "| {n} | {} | {} | {} |", opt(ka, 1), opt(kb, 1), ratio(ka, kb));
        }
        if let (Some(fa), Some(fb)) = (&fits[0].1, &fits[1].1) {
            let _ = writeln!(
                md,
                "\nMemory per subscriber: {la} {:.2} KiB, {lb} {:.2} KiB (ratio {:.2}).",
                fa.slope / 1024.0,
                fb.slope / 1024.0,
                fb.slope / fa.slope
            );
        }
    }
    // Every point.
    let _ = writeln!(
        md,
        "\n## Every point\n\nMedians over the runs, [min–max] where they differ; counts are summed over the runs. \
         p99 is from the scheduled send time unless marked; lag is how late publishes left.\n"
    );
    let _ = writeln!(
        md,
        "| hub | subscribers | rate/s | runs passed | p50 ms | p99 ms | p99 ms from send | lag p99 ms | deliveries/s | lost | dup | ooo | unexpected | failed publishes | hub µs/delivery | loadgen µs/delivery | hub RSS at connect MiB | point | runs |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:--|:--|"
    );
    let mut json_points = Vec::new();
    for p in points {
        let r = row(p);
        let t = |f: fn(&crate::report::Report) -> u64| r.p.sum(f);
        let files: Vec<String> = p.reps.iter().enumerate().map(|(i, rep)| format!("[{i}]({})", rep.file)).collect();
        let pass = p.pass(slo);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {}/{} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            p.label,
            p.subscribers,
            p.rate,
            p.reps_passed(),
            p.reps.len(),
            opt(r.p50, 2),
            with_spread(r.p99, r.p99_spread, 2),
            opt(r.p99_send, 2),
            opt(r.lag_p99, 2),
            opt(r.deliveries, 0),
            t(|r| r.delivery.tally.lost),
            t(|r| r.delivery.tally.duplicates),
            t(|r| r.delivery.tally.out_of_order),
            t(|r| r.delivery.tally.unexpected),
            t(|r| r.publish.rejected + r.publish.unknown),
            with_spread(r.hub_us, r.hub_us_spread, 2),
            opt(r.loadgen_us, 2),
            opt(r.rss_connected_mib, 1),
            if pass { "pass".to_string() } else { format!("FAIL: {}", p.why_failed(slo).replace('|', "/")) },
            files.join(" ")
        );
        json_points.push(json!({
            "label": p.label, "subscribers": p.subscribers, "rate": p.rate, "nodes": p.nodes,
            "runs": p.reps.len(), "runs_passed": p.reps_passed(), "pass": pass, "why_failed": p.why_failed(slo),
            "p50_ms": r.p50, "p99_ms": r.p99, "p99_ms_spread": r.p99_spread, "p99_from_send_ms": r.p99_send,
            "lag_p99_ms": r.lag_p99, "deliveries_per_s": r.deliveries,
            "hub_us_per_delivery": r.hub_us, "hub_us_per_delivery_spread": r.hub_us_spread,
            "loadgen_us_per_delivery": r.loadgen_us, "hub_rss_connected_mib": r.rss_connected_mib,
            "lost": t(|r| r.delivery.tally.lost), "duplicates": t(|r| r.delivery.tally.duplicates),
            "out_of_order": t(|r| r.delivery.tally.out_of_order), "unexpected": t(|r| r.delivery.tally.unexpected),
            "failed_publishes": t(|r| r.publish.rejected + r.publish.unknown),
            "files": p.reps.iter().map(|r| r.file.clone()).collect::<Vec<_>>(),
        }));
    }
    let _ = writeln!(
        md,
        "\n## Figures\n\n\
         - `p99-vs-rate.svg`: median p99 from the schedule against the publish rate, one line per hub and subscriber count; the dashed line is the SLO.\n\
         - `knee-vs-subscribers.svg`: deliveries per second at the highest passing rate, per subscriber count and hub.\n\
         - `rss-vs-subscribers.svg`: hub RSS when publishing starts against subscribers held, every run, with the fitted line per hub.\n\n\
         Column meanings are in `loadgen/README.md`."
    );
    std::fs::write(out.join("summary.md"), md).map_err(|e| e.to_string())?;
    let doc = json!({
        "date": ctx.date,
        "provenance": ctx.provenance,
        "loadavg_before": ctx.load_before,
        "loadavg_after": ctx.load_after,
        "elapsed_s": ctx.elapsed_s,
        "interrupted": ctx.interrupted,
        "out_of_time": ctx.out_of_time,
        "hubs": ctx.targets.iter().map(|(l, d, c)| json!({"label": l, "hub": d, "hub_config": c})).collect::<Vec<_>>(),
        "nodes": ctx.nodes,
        "shape": {
            "topics": a.topics.max(1), "zipf_s": a.zipf_s, "publishers": a.publishers,
            "arrivals": a.arrivals.as_str(), "duration_s": a.duration, "min_publishes": a.min_publishes,
            "repeat": a.repeat.max(1), "slo_ms": slo, "rates": a.rates, "rate_start": a.rate_start,
            "rate_max": a.rate_max, "rate_precision": a.rate_precision, "run_args": a.run_args,
        },
        "knees": knees.iter().map(|k| json!({
            "label": k.label, "subscribers": k.subscribers,
            "highest_passing_rate": k.pass.map(|p| p.rate), "lowest_failing_rate": k.fail_rate,
            "deliveries_per_s": k.pass.and_then(|p| p.median(|r| r.delivery.deliveries_per_s)),
        })).collect::<Vec<_>>(),
        "rss_fit": fits.iter().map(|(l, f)| json!({
            "label": l,
            "bytes_per_subscriber": f.map(|f| f.slope),
            "base_bytes": f.map(|f| f.intercept),
            "r2": f.map(|f| f.r2),
            "runs": f.map(|f| f.n),
        })).collect::<Vec<_>>(),
        "comparison": comparison,
        "points": json_points,
    });
    std::fs::write(out.join("summary.json"), serde_json::to_vec_pretty(&doc).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())
}
