//! Phase 6 of a run: the report, from the merged tallies, the publisher's counters, the
//! resource samples and the verdict.

use super::merge::Merged;
use super::plan::Plan;
use super::sampler::{CpuSnapshot, Series};
use super::verdict;
use crate::config::RunArgs;
use crate::histo;
use crate::hubstats::HubStats;
use crate::publisher::Publisher;
use crate::report::{ConfigEcho, Delivery, LoadgenCpu, PerDelivery, Phases, Publish, Report, SCHEMA};
use crate::shard::Progress;
use crate::soak::SoakReport;
use std::sync::atomic::Ordering;

/// Everything the report is made of.
pub struct Parts<'a> {
    pub args: &'a RunArgs,
    pub plan: &'a Plan,
    pub publisher: &'a Publisher,
    pub merged: Merged,
    /// Live counters when publishing started and when the settle ended.
    pub at_start: Progress,
    pub at_stop: Progress,
    /// CPU snapshots around the publish phase.
    pub cpu: (CpuSnapshot, CpuSnapshot),
    pub hub_series: Series,
    pub loadgen: LoadgenCpu,
    pub soak: Option<SoakReport>,
    pub goose_reports: Vec<String>,
    pub started_at_unix_ms: u64,
    pub interrupted: bool,
    pub connect_s: f64,
    /// The publish phase: schedule origin to the later of its end and the last answer.
    pub publish_phase_s: f64,
    /// Publishing's start and end, run seconds (for the hub's CPU while publishing).
    pub publish_window: (f64, f64),
    pub total_s: f64,
}

/// Builds the report.
pub fn report(p: Parts<'_>) -> Report {
    let Parts { args, plan, publisher, merged: m, .. } = p;
    let (resp_h, lag_h) = publisher.histograms();
    let accepted = publisher.accepted.load(Ordering::Relaxed);
    let rejected = publisher.rejected.load(Ordering::Relaxed);
    let unknown = publisher.unknown.load(Ordering::Relaxed);
    let (in_flight_max, cap_waits) = publisher.in_flight_stats();
    let latency = histo::summary(&m.hist);
    let offered_per_s = if plan.publish_s > 0.0 { publisher.scheduled() as f64 / plan.publish_s } else { 0.0 };
    let rate_per_s = accepted as f64 / p.publish_phase_s.max(1e-9);
    let (sum_samples, each_samples) = p.hub_series;
    if !plan.hub_sources.is_empty() && sum_samples.is_empty() {
        eprintln!(
            "warning: no hub resource sample was taken from {:?} (for a metrics URL: it must expose \
             process_resident_memory_bytes, process_cpu_seconds_total, process_open_fds)",
            plan.hub_sources
        );
    }
    let rss_baseline = sum_samples.first().map_or(0, |s| s.rss_bytes);
    // A process's own RSS per subscriber needs its node's peak: known when there is one
    // process per node, in the same order.
    let peaks: Vec<u64> = if plan.hub_sources.len() == plan.nodes.len() {
        m.node_counts.iter().map(|c| c.peak_held).collect()
    } else {
        Vec::new()
    };
    let hub = HubStats::from_processes(
        &plan.hub_sources,
        sum_samples,
        each_samples,
        m.conns.peak_held,
        &peaks,
        p.publish_window,
    );
    let per_delivery = per_delivery(&p.cpu, m.events.saturating_sub(p.at_start.events), p.at_start.held, rss_baseline);
    let per_node_pub = publisher.per_node();
    let node_reports: Vec<crate::nodes::NodeReport> = plan
        .hub_urls
        .iter()
        .enumerate()
        .map(|(i, url)| {
            let c = m.node_counts.get(i).cloned().unwrap_or_default();
            let (sent, accepted) = per_node_pub.get(i).copied().unwrap_or_default();
            crate::nodes::NodeReport {
                url: url.clone(),
                requested: crate::nodes::subscribers_on(i, plan.total_subs, plan.nodes.len()),
                initial_held: p.at_start.nodes.get(i).map_or(0, |c| c.held),
                peak_held: c.peak_held,
                held_at_stop: p.at_stop.nodes.get(i).map_or(0, |c| c.held),
                attempts: c.connect_attempts,
                errors: c.connect_errors,
                server_drops: c.drops,
                publishes_sent: sent,
                publishes_accepted: accepted,
                delivery: m.node_tallies.get(i).copied().unwrap_or_default(),
                events_received: c.events,
            }
        })
        .collect();
    let verdict = verdict::judge(&verdict::Inputs {
        slo_ms: args.slo_ms,
        latency,
        tally: m.tally,
        examples: m.examples.clone(),
        scheduled: publisher.scheduled(),
        accepted,
        rejected,
        unknown,
        skipped: publisher.skipped(),
        cap_waits,
        publish_examples: publisher.examples(),
        schedule_s: plan.publish_s,
        phase_s: p.publish_phase_s,
        untallied: m.untallied,
        untallied_example: m.untallied_example.clone(),
        initial_requested: args.initial_subscribers,
        initial_connected: m.conns.initial_connected,
        never_connected: m.conns.never_connected,
        first_error_kind: m.conns.error_kinds.iter().max_by_key(|(_, v)| **v).map(|(k, v)| format!("{k} ×{v}")),
        interrupted: p.interrupted,
    });
    let sub_creds = &plan.sub_creds;
    Report {
        schema: SCHEMA.into(),
        loadgen_version: env!("CARGO_PKG_VERSION").into(),
        run_id: plan.run_id.clone(),
        started_at_unix_ms: p.started_at_unix_ms,
        interrupted: p.interrupted,
        config: ConfigEcho {
            hub_url: plan.hub_urls.first().cloned().unwrap_or_default(),
            hub_urls: plan.hub_urls.clone(),
            publish_spread: args.publish_spread.as_str().into(),
            topics: plan.topics.count,
            zipf_s: args.zipf_s,
            selector: format!("{:?}", args.selector).to_lowercase(),
            dialect: match args.dialect {
                crate::topics::Dialect::Legacy => "0.x".into(),
                crate::topics::Dialect::V1 => "1.0".into(),
            },
            private_updates: args.private_updates,
            subscriber_auth: match sub_creds {
                None => "none".into(),
                Some((_, via)) => format!("{via:?}").to_lowercase(),
            },
            anonymous_share: args.anonymous_share.clamp(0.0, 1.0),
            payload_size: args.payload_size,
            publish_rate_from: args.publishers_rate_from,
            publish_rate_to: args.publishers_rate_to,
            publish_duration_s: plan.publish_s,
            initial_subscribers: args.initial_subscribers,
            subscribers_rate_from: args.subscribers_rate_from,
            subscribers_rate_to: args.subscribers_rate_to,
            connection_duration_s: args.connection_duration,
            random_connection_duration: args.random_connection_duration,
            lifetime_end: format!("{:?}", args.lifetime_end).to_lowercase(),
            on_drop: format!("{:?}", args.on_drop).to_lowercase(),
            publishers: args.publishers,
            arrivals: args.arrivals.as_str().into(),
            max_in_flight: args.max_in_flight.max(1),
            workers: plan.workers,
            worker_sched: args.worker_sched.as_str().into(),
            source_addrs: plan.sources.iter().map(|s| s.map_or("auto".into(), |a| a.to_string())).collect(),
            settle_s: args.settle,
            slo_ms: args.slo_ms,
        },
        phases: Phases {
            connect_s: p.connect_s,
            publish_s: p.publish_phase_s,
            settle_s: args.settle,
            total_s: p.total_s,
        },
        publish: Publish {
            scheduled: publisher.scheduled(),
            accepted,
            rejected,
            unknown,
            skipped: publisher.skipped(),
            offered_per_s,
            rate_per_s,
            in_flight_max,
            cap_waits,
            response_ms: histo::summary(&resp_h),
            lag_ms: histo::summary(&lag_h),
        },
        delivery: Delivery {
            loss_ratio: if m.tally.expected > 0 { m.tally.lost as f64 / m.tally.expected as f64 } else { 0.0 },
            deliveries_per_s: m.tally.delivered as f64 / p.publish_phase_s.max(1e-9),
            tally: m.tally,
            events_received: m.events,
            foreign: m.foreign,
            replayed: m.replayed,
            tallied_subscribers: m.tallied,
            untallied_subscribers: m.untallied,
        },
        connections: m.conns,
        latency_ms: latency,
        latency_from_send_ms: histo::summary(&m.hist_send),
        per_delivery,
        hub,
        verdict,
        goose_reports: p.goose_reports,
        loadgen: Some(p.loadgen),
        soak: p.soak,
        nodes: node_reports,
    }
}

/// CPU per delivery between the two snapshots; `None` unless the hub and every worker
/// were sampled both times.
fn per_delivery(cpu: &(CpuSnapshot, CpuSnapshot), events: u64, held: u64, rss_baseline: u64) -> Option<PerDelivery> {
    let (a, b) = cpu;
    let (ha, hb) = (a.hub?, b.hub?);
    let workers = b.workers_cpu_s? - a.workers_cpu_s?;
    let coordinator = b.coordinator_cpu_s? - a.coordinator_cpu_s?;
    let hub_cpu_s = (hb.cpu_s - ha.cpu_s).max(0.0);
    let per = |s: f64| if events > 0 { s * 1e6 / events as f64 } else { 0.0 };
    Some(PerDelivery {
        window_s: b.at.saturating_duration_since(a.at).as_secs_f64(),
        events,
        hub_cpu_s,
        hub_us_per_delivery: per(hub_cpu_s),
        loadgen_workers_cpu_s: workers.max(0.0),
        loadgen_coordinator_cpu_s: coordinator.max(0.0),
        loadgen_us_per_delivery: per((workers + coordinator).max(0.0)),
        hub_rss_connected_bytes: ha.rss_bytes,
        hub_rss_baseline_bytes: rss_baseline,
        held_connected: held,
    })
}
