//! `summary.md` and `summary.json` of a capacity sweep: one table row per point, the
//! knee, and the headline numbers (fan-out at 1 update/s per subscriber count).

use super::Point;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;

/// Facts about the sweep itself.
pub struct Context {
    /// UTC date.
    pub date: String,
    /// The hub (binary path or URLs).
    pub hub: String,
    /// Hub nodes per point (1: a single hub; more: hubs sharing one Redis stream).
    pub nodes: u32,
    /// SLO, ms.
    pub slo_ms: f64,
    /// Publish seconds per point.
    pub duration_s: f64,
    /// Sweep wall time, s.
    pub elapsed_s: f64,
    /// Cut short by Ctrl-C.
    pub interrupted: bool,
    /// 1-minute load average before the sweep.
    pub load_before: String,
    /// 1-minute load average after the sweep.
    pub load_after: String,
    /// The hub's own description of its configuration (startup log lines).
    pub hub_config: Vec<String>,
}

#[derive(Serialize)]
struct Row<'a> {
    nodes: u32,
    subscribers: u64,
    rate: f64,
    file: &'a str,
    pass: bool,
    error: Option<&'a str>,
    held: u64,
    published: u64,
    expected: u64,
    delivered: u64,
    lost: u64,
    duplicates: u64,
    out_of_order: u64,
    deliveries_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
    hub_rss_max_mib: Option<f64>,
    hub_rss_per_subscriber_kib: Option<f64>,
    hub_cpu_publishing_s: Option<f64>,
    loadgen_cpu_s: Option<f64>,
}

fn row(p: &Point) -> Row<'_> {
    let mut r = Row {
        nodes: p.nodes,
        subscribers: p.subscribers,
        rate: p.rate,
        file: &p.file,
        pass: p.pass(),
        error: p.report.as_ref().err().map(String::as_str),
        held: 0,
        published: 0,
        expected: 0,
        delivered: 0,
        lost: 0,
        duplicates: 0,
        out_of_order: 0,
        deliveries_per_s: 0.0,
        p50_ms: 0.0,
        p99_ms: 0.0,
        p999_ms: 0.0,
        max_ms: 0.0,
        hub_rss_max_mib: None,
        hub_rss_per_subscriber_kib: None,
        hub_cpu_publishing_s: None,
        loadgen_cpu_s: None,
    };
    if let Ok(rep) = &p.report {
        let d = &rep.delivery;
        r.held = rep.connections.peak_held;
        r.published = rep.publish.accepted;
        r.expected = d.tally.expected;
        r.delivered = d.tally.delivered;
        r.lost = d.tally.lost;
        r.duplicates = d.tally.duplicates;
        r.out_of_order = d.tally.out_of_order;
        r.deliveries_per_s = d.deliveries_per_s;
        r.p50_ms = rep.latency_ms.p50;
        r.p99_ms = rep.latency_ms.p99;
        r.p999_ms = rep.latency_ms.p999;
        r.max_ms = rep.latency_ms.max;
        r.loadgen_cpu_s = rep.loadgen.as_ref().map(|l| l.workers_cpu_s + l.coordinator_cpu_s);
        if let Some(h) = &rep.hub {
            r.hub_rss_max_mib = Some(h.rss_max_bytes as f64 / 1048576.0);
            r.hub_rss_per_subscriber_kib = Some(h.rss_per_subscriber_bytes / 1024.0);
            r.hub_cpu_publishing_s = Some(h.cpu_seconds_publishing);
        }
    }
    r
}

/// The knee: the passing point with the most deliveries per second.
pub fn knee(points: &[Point]) -> Option<&Point> {
    points.iter().filter(|p| p.pass()).max_by(|a, b| {
        let d = |p: &Point| p.report.as_ref().map_or(0.0, |r| r.delivery.deliveries_per_s);
        d(a).total_cmp(&d(b))
    })
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".into(), |v| format!("{v:.digits$}"))
}

/// Writes `summary.md` and `summary.json`.
pub fn write(out: &Path, ctx: &Context, points: &[Point]) -> Result<(), String> {
    let rows: Vec<Row<'_>> = points.iter().map(row).collect();
    let knee = knee(points);
    let mut md = String::new();
    let _ = writeln!(md, "# Capacity sweep, {}\n", ctx.date);
    if ctx.nodes > 1 {
        // How publishes were spread, as the runs recorded it.
        let spread = points
            .iter()
            .find_map(|p| p.report.as_ref().ok().map(|r| r.config.publish_spread.clone()))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "round-robin".into());
        let _ = writeln!(
            md,
            "**{} hub nodes** per point, sharing one Redis stream (a fresh `redis-server` and \
             stream name per point, no persistence): subscriber i on node i mod {}, publishes \
             spread `{spread}` (`--publish-spread`); every number below is the sum over the \
             nodes, and each point's JSON has them per node (`nodes[]`, `hub.processes[]`).\n",
            ctx.nodes, ctx.nodes
        );
    }
    let _ = writeln!(
        md,
        "Hub: `{}`. One topic; each point publishes for {} s at a constant rate to N \
         subscribers (all connected before publishing starts), then settles 2 s. Hub and \
         loadgen share this machine ({} cores). SLO: p99 publish→receive < {} ms with \
         zero loss and every subscriber held. Sweep time {:.0} s{}. 1-minute load average \
         before the sweep {}, after {}.\n",
        ctx.hub,
        ctx.duration_s,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        ctx.slo_ms,
        ctx.elapsed_s,
        if ctx.interrupted { " (interrupted)" } else { "" },
        ctx.load_before,
        ctx.load_after
    );
    if !ctx.hub_config.is_empty() {
        let _ = writeln!(md, "Hub configuration (from its startup log):\n\n```");
        for l in &ctx.hub_config {
            let _ = writeln!(md, "{l}");
        }
        let _ = writeln!(md, "```\n");
    }
    match knee {
        Some(k) => {
            let r = k.report.as_ref().ok();
            let _ = writeln!(
                md,
                "**Knee: {} subscribers × {} updates/s = {:.0} deliveries/s{}** with p99 {:.2} ms, zero loss.\n",
                k.subscribers,
                k.rate,
                if k.nodes > 1 { format!(" on {} nodes", k.nodes) } else { String::new() },
                r.map_or(0.0, |r| r.delivery.deliveries_per_s),
                r.map_or(0.0, |r| r.latency_ms.p99),
            );
        }
        None => {
            let _ = writeln!(md, "**Knee: none** — no point met the SLO with zero loss.\n");
        }
    }
    let _ = writeln!(md, "## Fan-out at the lowest rate\n");
    let _ = writeln!(
        md,
        "| nodes | subscribers | rate/s | p50 ms | p99 ms | deliveries/s | lost | RSS/subscriber KiB |\n|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let low = points.iter().map(|p| p.rate).min_by(f64::total_cmp).unwrap_or(1.0);
    for r in rows.iter().filter(|r| r.rate == low) {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.2} | {:.2} | {:.0} | {} | {} |",
            r.nodes,
            r.subscribers,
            r.rate,
            r.p50_ms,
            r.p99_ms,
            r.deliveries_per_s,
            r.lost,
            opt(r.hub_rss_per_subscriber_kib, 1)
        );
    }
    let _ = writeln!(md, "\n## Every point\n");
    let _ = writeln!(
        md,
        "| nodes | subscribers | rate/s | held | published | expected | delivered | lost | dup | ooo | deliveries/s | p50 ms | p99 ms | p99.9 ms | max ms | hub RSS MiB | RSS/sub KiB | hub CPU s (publishing) | loadgen CPU s (whole run) | pass |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:--:|"
    );
    for r in &rows {
        if let Some(e) = r.error {
            let _ = writeln!(
                md,
                "| {} | {} | {} | – | – | – | – | – | – | – | – | – | – | – | – | – | – | – | error: {} |",
                r.nodes,
                r.subscribers,
                r.rate,
                e.replace('|', "/")
            );
            continue;
        }
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {} | [{}]({}) |",
            r.nodes,
            r.subscribers,
            r.rate,
            r.held,
            r.published,
            r.expected,
            r.delivered,
            r.lost,
            r.duplicates,
            r.out_of_order,
            r.deliveries_per_s,
            r.p50_ms,
            r.p99_ms,
            r.p999_ms,
            r.max_ms,
            opt(r.hub_rss_max_mib, 1),
            opt(r.hub_rss_per_subscriber_kib, 1),
            opt(r.hub_cpu_publishing_s, 1),
            opt(r.loadgen_cpu_s, 1),
            if r.pass { "pass" } else { "FAIL" },
            r.file
        );
    }
    let _ = writeln!(
        md,
        "\n## Figures\n\n\
         - `p99-vs-subscribers.svg`: p99 publish→receive latency against subscribers, one line per publish rate; the dashed line is the SLO.\n\
         - `deliveries-vs-subscribers.svg`: delivered updates per second (subscribers × rate when nothing is lost) against subscribers.\n\
         - `rss-per-subscriber.svg`: (hub peak RSS − RSS before connections) / subscribers held, KiB.\n\n\
         Column meanings are in `loadgen/README.md`. Rates above a failing point at the same subscriber count are not run."
    );
    std::fs::write(out.join("summary.md"), md).map_err(|e| e.to_string())?;
    let json = serde_json::json!({
        "date": ctx.date,
        "hub": ctx.hub,
        "nodes": ctx.nodes,
        "slo_ms": ctx.slo_ms,
        "duration_s": ctx.duration_s,
        "elapsed_s": ctx.elapsed_s,
        "interrupted": ctx.interrupted,
        "loadavg_before": ctx.load_before,
        "loadavg_after": ctx.load_after,
        "hub_config": ctx.hub_config,
        "knee": knee.map(|k| serde_json::json!({"nodes": k.nodes, "subscribers": k.subscribers, "rate": k.rate, "file": k.file})),
        "points": rows,
    });
    std::fs::write(out.join("summary.json"), serde_json::to_vec_pretty(&json).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())
}
