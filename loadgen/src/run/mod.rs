//! The coordinator of one load run, phase by phase.
//!
//! 0. `plan`: resolve the hub URLs, mint tokens, choose the run id, count workers;
//!    `sampler` starts sampling the hub (baseline RSS before any connection).
//! 1. Connect (`workers`): spawn worker processes, which ramp up the initial
//!    subscribers; wait until every one connected or gave up. A CPU snapshot opens the
//!    per-delivery window.
//! 2. Publish (`publish`): `Start` (arrivals begin), goose dispatches the schedule.
//! 3. Settle: wait `--settle` so the last publishes are delivered; a CPU snapshot closes
//!    the window.
//! 4. Close and tally: `Stop` (all subscribers close), send the publish log, wait for the
//!    workers' final tallies.
//! 5. Merge (`merge`) the tallies, histograms and counters; finish the soak
//!    (`soak_end`) when there is one.
//! 6. Verdict ([`verdict`]) and report (`assemble`).
//!
//! Ctrl-C at any point stops publishing (goose's killswitch), skips to settle and
//! `Stop`, and still writes the report, marked `interrupted` (which fails the verdict).
//! A second Ctrl-C exits at once (handled in `main`).
//!
//! Several hub URLs (a multi-node hub, see [`crate::nodes`]): each is resolved here, the
//! workers get them all and connect subscriber `g` to node `g mod N`, the publisher
//! spreads publishes by `--publish-spread`, and the report adds `nodes[]` (held and
//! delivered per node) to totals that stay what they were: the accounting is per
//! session and never looks at nodes.

mod assemble;
mod merge;
mod plan;
mod publish;
mod sampler;
mod soak_end;
pub mod verdict;
mod workers;

use crate::config::RunArgs;
use crate::report::{Connections, Report};
use crate::swarm::Control;
use plan::Plan;
use sampler::{CpuSnapshot, HubSampler};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{Instant, sleep};
use workers::Workers;

/// Runs one load run; `stop` becomes `true` on Ctrl-C.
pub async fn run(args: RunArgs, mut stop: watch::Receiver<bool>) -> Result<Report, String> {
    let t_start = Instant::now();
    let started_at_unix_ms = crate::clock::unix_now_ns() / 1_000_000;
    // The coordinator holds one connection per publish in flight.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let plan = Plan::resolve(&args).await?;
    let hub_sampler = HubSampler::start(&plan.hub_sources, t_start).await;
    let mut workers = Workers::spawn(&args, &plan).await?;
    let publisher = publish::publisher(&args, &plan)?;
    let progress = crate::progress::Display::start(
        !args.no_progress,
        workers.handles.iter().map(|h| h.view.clone()).collect(),
        publisher.clone(),
        plan.total_subs,
    );
    // Soak sampling (--timeseries): the phase is shared with the sampler.
    let soak_phase: crate::soak::Phase = Arc::new(Mutex::new("connecting"));
    let set_phase = |p: &'static str| {
        progress.phase(p);
        if let Ok(mut g) = soak_phase.lock() {
            *g = p;
        }
    };
    let soak_sampler = match &args.timeseries {
        Some(path) => Some(crate::soak::Sampler::start(
            crate::soak::SamplerConfig {
                path: path.clone(),
                every: Duration::from_secs_f64(args.sample_every.max(0.5)),
                gauges: plan.gauges.clone(),
                pids: args.hub_pid.clone(),
                // The scrape itself and a connection being replaced, plus one per
                // publish in flight at the peak so far (the publishers' pool keeps them).
                extra_connections: 2,
                publisher_connections: Some(publisher.in_flight_peak()),
            },
            t_start,
            workers.handles.iter().map(|h| h.view.clone()).collect(),
            soak_phase.clone(),
        )?),
        None => None,
    };

    // Phase 1: initial subscribers.
    set_phase("connecting");
    if let Err(e) = workers.wait_connected(&args, &mut stop).await {
        progress.finish();
        return Err(e);
    }
    let connect_s = t_start.elapsed().as_secs_f64();
    let at_start = workers.aggregate();
    let cpu_start = CpuSnapshot::take(&plan.hub_sources, &workers.pids()).await;

    // Phase 2: publish.
    set_phase("publishing");
    workers.send_all(&Control::Start).await?;
    let t_pub = Instant::now();
    let pub_window_start = t_start.elapsed().as_secs_f64();
    let goose_reports = publish::run_goose(&args, &plan, &publisher, &mut stop).await?;
    let goose_s = t_pub.elapsed().as_secs_f64();
    let pub_window_end = t_start.elapsed().as_secs_f64();

    // Phase 3: settle.
    set_phase("settling");
    if !*stop.borrow() {
        tokio::select! {
            _ = sleep(Duration::from_secs_f64(args.settle.max(0.0))) => {}
            _ = stop.wait_for(|s| *s) => {}
        }
    }
    let cpu_end = CpuSnapshot::take(&plan.hub_sources, &workers.pids()).await;
    let at_stop = workers.aggregate();

    // Phase 4: close, send the log, collect the tallies.
    set_phase("closing");
    let _ = workers.send_all(&Control::Stop).await;
    let log = publisher.log().await;
    set_phase("tallying");
    let _ = workers.send_all(&Control::Log(log)).await;
    workers.wait_finals(Duration::from_secs(120)).await;
    let hub_series = hub_sampler.finish().await;
    progress.finish();

    // Phase 5: merge.
    let conns = Connections {
        requested: plan.total_subs,
        initial_requested: args.initial_subscribers,
        initial_held: at_start.held,
        initial_connected: at_start.initial_connected,
        held_at_stop: at_stop.held,
        ..Connections::default()
    };
    let merged = merge::merge(&workers, &plan, args.initial_subscribers, conns);
    let loadgen = merge::loadgen_cpu(&workers);
    workers.finish().await;
    // Every subscriber is closed now: a soak's gauges must come back to the truth.
    let soak = match (soak_sampler, &args.timeseries) {
        (Some(sampler), Some(path)) => Some(
            soak_end::finish(
                sampler,
                &args,
                path,
                &merged,
                publisher.rejected.load(std::sync::atomic::Ordering::Relaxed)
                    + publisher.unknown.load(std::sync::atomic::Ordering::Relaxed),
                plan.publish_s,
                (pub_window_start, pub_window_end),
            )
            .await,
        ),
        _ => None,
    };

    // Phase 6: verdict and report.
    let interrupted = *stop.borrow();
    let publish_phase_s = match publisher.finished() {
        0 => goose_s,
        _ if interrupted => publisher.answered_span_s(),
        _ => publisher.answered_span_s().max(plan.publish_s),
    };
    let report = assemble::report(assemble::Parts {
        args: &args,
        plan: &plan,
        publisher: &publisher,
        merged,
        at_start,
        at_stop,
        cpu: (cpu_start, cpu_end),
        hub_series,
        loadgen,
        soak,
        goose_reports,
        started_at_unix_ms,
        interrupted,
        connect_s,
        publish_phase_s,
        publish_window: (pub_window_start, pub_window_end),
        total_s: t_start.elapsed().as_secs_f64(),
    });
    write_report(&args.report, &report)?;
    Ok(report)
}

/// Writes the JSON report, creating parent directories.
pub fn write_report(path: &Path, r: &Report) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let json = serde_json::to_vec_pretty(r).map_err(|e| e.to_string())?;
    std::fs::write(path, json).map_err(|e| format!("{}: {e}", path.display()))
}
