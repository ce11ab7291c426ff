//! The end of a soak (`--timeseries`): once every subscriber closed, the sampler watches
//! the hub's gauges settle, then the soak is judged, plotted and its verdict written.

use super::merge::Merged;
use crate::config::RunArgs;
use crate::soak::{Sampler, SoakReport, SoakSample, VerdictInputs};
use std::path::Path;
use std::time::Duration;

/// Finishes the soak sampler and judges the soak; `publish_window` is in run seconds.
pub async fn finish(
    sampler: Sampler,
    args: &RunArgs,
    path: &Path,
    merged: &Merged,
    failed_publishes: u64,
    publish_s: f64,
    publish_window: (f64, f64),
) -> SoakReport {
    let (samples, settle_s) = sampler.finish(Duration::from_secs_f64(args.gauge_settle_timeout.max(0.0))).await;
    let evictions = |s: Option<&SoakSample>| s.and_then(|s| s.metric("mercure_evictions_total")).unwrap_or(0.0);
    let first = samples.iter().find(|s| !s.metrics.is_empty());
    let last = samples.iter().rev().find(|s| !s.metrics.is_empty());
    let (final_subscribers, final_connections) =
        samples.last().filter(|s| s.phase == "settled").map_or((None, None), |s| s.final_gauges());
    let warmup_s = args.warmup.unwrap_or(publish_s / 6.0).max(0.0);
    let c = &merged.soak_counts;
    let mut r = crate::soak::judge(
        &samples,
        publish_window,
        warmup_s,
        args.rss_drift_max,
        VerdictInputs {
            lost: merged.tally.lost,
            faults: merged.tally.duplicates
                + merged.tally.out_of_order
                + merged.tally.unexpected
                + failed_publishes
                + merged.untallied,
            stuck: args.stuck,
            stuck_evicted: c.stuck_evicted,
            stuck_reset: c.stuck_reset,
            stuck_not_evicted: c.stuck_not_evicted,
            hub_evictions: evictions(last) - evictions(first),
            final_subscribers,
            final_connections,
        },
    );
    r.timeseries = path.display().to_string();
    r.sample_every_s = args.sample_every;
    r.settle_s = settle_s;
    r.stuck_cycles = c.stuck_cycles;
    r.stuck_errors = c.stuck_errors;
    r.token_expiries = c.token_expiries;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if let Err(e) = crate::soak::plot::write(dir, &samples, publish_window.0 + warmup_s) {
        eprintln!("warning: soak plot: {e}");
    }
    if let Err(e) = std::fs::write(dir.join("verdict.md"), r.human()) {
        eprintln!("warning: verdict.md: {e}");
    }
    r
}
