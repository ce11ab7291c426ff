//! The run report: a JSON document with a stable, documented schema
//! (`mercure-loadgen/report/v2`, see `loadgen/README.md`), and its human summary.
//!
//! Compatibility rule for the schema: fields are only ever added within a version; a
//! renamed or removed field or a changed meaning bumps it. v2 (issue 13): `latency_ms` is
//! measured from each publish's scheduled time (v1: from its send time, now
//! `latency_from_send_ms`); `delivery.out_of_order` counts only arrivals after a publish
//! sent once they had been acknowledged (v1: any arrival below a higher sequence number);
//! the verdict has more checks and lists its failures; times in the publish log are
//! monotonic.

use crate::accounting::Tally;
use crate::histo::Summary;
use crate::hubstats::HubStats;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Schema identifier written in every report.
pub const SCHEMA: &str = "mercure-loadgen/report/v2";

/// The whole report.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// Version of the loadgen that wrote it.
    pub loadgen_version: String,
    /// Run id (also carried in every payload).
    pub run_id: String,
    /// Unix ms when the run started.
    pub started_at_unix_ms: u64,
    /// True if Ctrl-C cut the run short (the numbers cover what ran).
    pub interrupted: bool,
    /// What was asked for.
    pub config: ConfigEcho,
    /// Phase durations, seconds.
    pub phases: Phases,
    /// Connection counts.
    pub connections: Connections,
    /// Publish counts and timings.
    pub publish: Publish,
    /// Delivery accounting.
    pub delivery: Delivery,
    /// Latency from each publish's scheduled time to its receipt, ms (updates published
    /// while the receiving connection was up; replays excluded). The primary figure: it
    /// counts the time a publish waited to be sent.
    pub latency_ms: Summary,
    /// Latency from each publish's actual send time to its receipt, ms (same samples).
    #[serde(default)]
    pub latency_from_send_ms: Summary,
    /// CPU and memory per delivery over the publish phase (publishing start to the end of
    /// the settle), when the hub's resources were sampled.
    #[serde(default)]
    pub per_delivery: Option<PerDelivery>,
    /// Hub resources, when `--hub-pid` or `--hub-metrics-url` was given.
    pub hub: Option<HubStats>,
    /// The verdict against the SLO.
    pub verdict: Verdict,
    /// Goose's own report files.
    pub goose_reports: Vec<String>,
    /// The loadgen's own resource use (added in v1.1; absent in older reports).
    #[serde(default)]
    pub loadgen: Option<LoadgenCpu>,
    /// Soak checks (with `--timeseries`; absent otherwise): gauges against the truth,
    /// RSS drift, stuck consumers, token expiries, and the soak verdict, which then
    /// decides the exit code.
    #[serde(default)]
    pub soak: Option<crate::soak::SoakReport>,
    /// Per hub node, in `--hub-url` order (one entry for a single hub; added in v1.3,
    /// absent in older reports): subscribers held and deliveries through each.
    #[serde(default)]
    pub nodes: Vec<crate::nodes::NodeReport>,
}

/// The loadgen's own CPU: when it is near the machine's cores, latency and throughput
/// measure the loadgen as much as the hub.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LoadgenCpu {
    /// Worker processes.
    pub workers: u32,
    /// CPU seconds of all workers (subscriber swarm).
    pub workers_cpu_s: f64,
    /// Largest worker RSS, bytes.
    pub workers_rss_max_bytes: u64,
    /// CPU seconds of the coordinator (goose publishers, progress, tally merge).
    pub coordinator_cpu_s: f64,
}

/// CPU per delivery and memory per subscriber, measured between two snapshots: when
/// publishing starts (every initial subscriber connected) and when the settle ends.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PerDelivery {
    /// Seconds between the snapshots.
    pub window_s: f64,
    /// Events the subscribers read in the window.
    pub events: u64,
    /// Hub CPU seconds in the window (all hub processes), from `/proc/<pid>/stat` or the
    /// metrics endpoint.
    pub hub_cpu_s: f64,
    /// `hub_cpu_s / events`, µs.
    pub hub_us_per_delivery: f64,
    /// Worker processes' CPU seconds in the window (the SSE swarm).
    pub loadgen_workers_cpu_s: f64,
    /// The coordinator's CPU seconds in the window (publishers, progress).
    pub loadgen_coordinator_cpu_s: f64,
    /// `(workers + coordinator) / events`, µs: the load generator's own cost.
    pub loadgen_us_per_delivery: f64,
    /// Hub RSS when publishing started (all initial subscribers held), bytes.
    pub hub_rss_connected_bytes: u64,
    /// Hub RSS before any subscriber connected, bytes.
    pub hub_rss_baseline_bytes: u64,
    /// Connections held when publishing started.
    pub held_connected: u64,
}

/// The run's configuration, echoed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConfigEcho {
    /// Hub URL (the first node's, with several).
    pub hub_url: String,
    /// Every hub URL (node), in order (added in v1.3).
    #[serde(default)]
    pub hub_urls: Vec<String>,
    /// Which node each publish went to, `round-robin` or `topic` (added in v1.3).
    #[serde(default)]
    pub publish_spread: String,
    /// Topics.
    pub topics: u32,
    /// Zipf exponent.
    pub zipf_s: f64,
    /// Selector kind.
    pub selector: String,
    /// Protocol dialect, `0.x` or `1.0` (v2).
    #[serde(default)]
    pub dialect: String,
    /// Private updates.
    pub private_updates: bool,
    /// Subscribers authenticate with a JWT (`header`, `cookie`) or not (`none`).
    pub subscriber_auth: String,
    /// Share of the subscribers that present no token anyway (v2).
    #[serde(default)]
    pub anonymous_share: f64,
    /// Payload size, bytes.
    pub payload_size: usize,
    /// Publish rate ramp, per second.
    pub publish_rate_from: f64,
    /// Publish rate ramp, per second.
    pub publish_rate_to: f64,
    /// Publish duration, seconds.
    pub publish_duration_s: f64,
    /// Initial subscribers.
    pub initial_subscribers: u64,
    /// Arrival ramp, per second.
    pub subscribers_rate_from: f64,
    /// Arrival ramp, per second.
    pub subscribers_rate_to: f64,
    /// Subscriber lifetime, seconds (0 = whole run).
    pub connection_duration_s: f64,
    /// Random lifetimes.
    pub random_connection_duration: bool,
    /// Lifetime end action.
    pub lifetime_end: String,
    /// Drop action.
    pub on_drop: String,
    /// Goose users.
    pub publishers: usize,
    /// `uniform` or `poisson` arrivals (v2).
    #[serde(default)]
    pub arrivals: String,
    /// Most publish POSTs outstanding at once (v2).
    #[serde(default)]
    pub max_in_flight: usize,
    /// Worker processes.
    pub workers: u32,
    /// Their scheduling policy, `batch` or `normal` (added in v1.2; older reports ran `normal`).
    #[serde(default)]
    pub worker_sched: String,
    /// Source addresses used.
    pub source_addrs: Vec<String>,
    /// Settle / grace, seconds.
    pub settle_s: f64,
    /// SLO, ms.
    pub slo_ms: f64,
}

/// Phase durations, seconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Phases {
    /// Start until the initial subscribers were connected (or gave up).
    pub connect_s: f64,
    /// The publish phase: the schedule's span, or first send to last response if that
    /// was longer (shorter only when interrupted). Rates divide by this.
    pub publish_s: f64,
    /// Wait after publishing before closing.
    pub settle_s: f64,
    /// Whole run.
    pub total_s: f64,
}

/// Connection counts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Connections {
    /// Subscribers asked for: initial + scheduled arrivals.
    pub requested: u64,
    /// Initial subscribers asked for.
    pub initial_requested: u64,
    /// Connections open when publishing started (with short lifetimes, some initial
    /// subscribers may already be between connections).
    pub initial_held: u64,
    /// Initial subscribers that had connected at least once when publishing started.
    #[serde(default)]
    pub initial_connected: u64,
    /// Most connections open at once (sum of the workers' peaks: an upper bound when
    /// subscribers churn, exact for a constant population).
    pub peak_held: u64,
    /// Connections open when the run stopped.
    pub held_at_stop: u64,
    /// Connection attempts.
    pub attempts: u64,
    /// Failed attempts.
    pub errors: u64,
    /// Failed attempts by kind.
    pub error_kinds: BTreeMap<String, u64>,
    /// Subscribers that never connected.
    pub never_connected: u64,
    /// Streams ended by the hub.
    pub server_drops: u64,
    /// Reconnections.
    pub reconnects: u64,
    /// Subscriptions still waiting for the hub's response headers when the run stopped.
    #[serde(default)]
    pub pending_at_stop: u64,
}

/// Publish counts and timings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Publish {
    /// Publishes the schedule held.
    pub scheduled: u64,
    /// 200 answers.
    pub accepted: u64,
    /// Other answers.
    pub rejected: u64,
    /// No answer (timeout, connection error).
    pub unknown: u64,
    /// Due publishes never sent (the run was stopping).
    #[serde(default)]
    pub skipped: u64,
    /// Publishes per second the schedule offered (scheduled / publish duration).
    #[serde(default)]
    pub offered_per_s: f64,
    /// Accepted per second of the publish phase (the schedule's span, or from its origin
    /// to the last acknowledgement if that was longer).
    pub rate_per_s: f64,
    /// Most POSTs outstanding at once.
    #[serde(default)]
    pub in_flight_max: u64,
    /// Publishes that found `--max-in-flight` POSTs outstanding and waited.
    #[serde(default)]
    pub cap_waits: u64,
    /// POST round trip, ms.
    pub response_ms: Summary,
    /// How late publishes left against their schedule, ms (the dispatcher's own delay:
    /// timer granularity, CPU, the in-flight cap).
    pub lag_ms: Summary,
}

/// Delivery accounting (see `accounting.rs` for exact definitions).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Delivery {
    /// Per-session counts, summed.
    #[serde(flatten)]
    pub tally: Tally,
    /// `lost / expected` (0 when nothing was expected).
    pub loss_ratio: f64,
    /// Events received, all kinds.
    pub events_received: u64,
    /// Events of other runs or publishers.
    pub foreign: u64,
    /// Our events that arrived on a connection opened after they were published.
    pub replayed: u64,
    /// `delivered / publish phase seconds`.
    pub deliveries_per_s: f64,
    /// Subscribers whose sessions were tallied (v2).
    #[serde(default)]
    pub tallied_subscribers: u64,
    /// Subscribers requested but not tallied: their task panicked, or their worker
    /// process vanished (v2).
    #[serde(default)]
    pub untallied_subscribers: u64,
}

/// Pass/fail: every check, and each failed one with its count and an example.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Verdict {
    /// p99 of the latency from the schedule under the SLO (and at least one sample).
    pub p99_within_slo: bool,
    /// Nothing lost.
    pub zero_loss: bool,
    /// No publish received twice in a session.
    #[serde(default)]
    pub no_duplicates: bool,
    /// No arrival after a publish sent once it had been acknowledged.
    #[serde(default)]
    pub in_order: bool,
    /// Nothing received that was not owed (a leaked private update, a rejected publish, a
    /// publish from outside the session or on another topic).
    #[serde(default)]
    pub no_unexpected: bool,
    /// Every publish answered 200 (none rejected, none without an answer).
    #[serde(default)]
    pub publishes_accepted: bool,
    /// Every due publish was sent when due: none waited for the in-flight cap, none skipped.
    #[serde(default)]
    pub on_schedule: bool,
    /// Every requested subscriber's sessions were tallied.
    #[serde(default)]
    pub all_tallied: bool,
    /// Every requested initial subscriber held, and none never connected (connect
    /// errors recovered by a retry are reported but do not fail this).
    pub all_connected: bool,
    /// The hub answered publishes at the pace they were offered: the last answer came no
    /// later than `rate_tolerance` of the schedule's length after it ended (rejected and
    /// unanswered publishes have their own checks).
    #[serde(default)]
    pub rate_met: bool,
    /// The share of the offered rate that may be missing (see `run/verdict.rs`).
    #[serde(default)]
    pub rate_tolerance: f64,
    /// All of the above.
    pub pass: bool,
    /// The checks that failed, in the order above.
    #[serde(default)]
    pub failures: Vec<Failure>,
}

/// One failed check.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// Which check (`loss`, `duplicates`, `out_of_order`, `unexpected`, …).
    pub check: String,
    /// How many (events, publishes or subscribers; for `p99` and `rate`, 1).
    pub count: u64,
    /// One instance, or the numbers that failed.
    pub example: String,
}

fn n(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

impl Report {
    /// Human summary for the terminal.
    pub fn human(&self) -> String {
        let mut s = String::new();
        let c = &self.connections;
        let p = &self.publish;
        let d = &self.delivery;
        let l = &self.latency_ms;
        let _ = writeln!(
            s,
            "mercure-loadgen {} — run {}{}",
            self.loadgen_version,
            self.run_id,
            if self.interrupted { " (INTERRUPTED)" } else { "" }
        );
        if self.config.hub_urls.len() > 1 {
            let _ = writeln!(
                s,
                "hub          {} nodes, publishes spread {}",
                self.config.hub_urls.len(),
                self.config.publish_spread
            );
        } else {
            let _ = writeln!(s, "hub          {}", self.config.hub_url);
        }
        let _ = writeln!(
            s,
            "connections  requested {}  held {} (initial {}/{})  at stop {}  errors {}  never connected {}",
            n(c.requested),
            n(c.peak_held),
            n(c.initial_held),
            n(c.initial_requested),
            n(c.held_at_stop),
            n(c.errors),
            n(c.never_connected)
        );
        for (k, v) in &c.error_kinds {
            let _ = writeln!(s, "               {k}: {}", n(*v));
        }
        let _ = writeln!(
            s,
            "             hub drops {}  reconnects {}  unanswered at stop {}",
            n(c.server_drops),
            n(c.reconnects),
            n(c.pending_at_stop)
        );
        let _ = writeln!(
            s,
            "published    {} accepted / {} scheduled  ({} rejected, {} unknown, {} skipped)  {:.1}/s of {:.1}/s offered  POST p99 {:.2} ms  lag p99 {:.2} ms  in flight max {}",
            n(p.accepted),
            n(p.scheduled),
            n(p.rejected),
            n(p.unknown),
            n(p.skipped),
            p.rate_per_s,
            p.offered_per_s,
            p.response_ms.p99,
            p.lag_ms.p99,
            n(p.in_flight_max)
        );
        let _ = writeln!(
            s,
            "deliveries   expected {}  delivered {}  lost {} ({:.4}%)  duplicates {}  out-of-order {}",
            n(d.tally.expected),
            n(d.tally.delivered),
            n(d.tally.lost),
            d.loss_ratio * 100.0,
            n(d.tally.duplicates),
            n(d.tally.out_of_order)
        );
        let _ = writeln!(
            s,
            "             ambiguous {}  unexpected {}  reordered in flight {}  replayed {}  foreign {}  sessions with loss {}  untallied subscribers {}",
            n(d.tally.ambiguous),
            n(d.tally.unexpected),
            n(d.tally.reordered_concurrent),
            n(d.replayed),
            n(d.foreign),
            n(d.tally.sessions_with_loss),
            n(d.untallied_subscribers)
        );
        let _ = writeln!(s, "throughput   {:.0} deliveries/s", d.deliveries_per_s);
        let _ = writeln!(
            s,
            "latency      from schedule p50 {:.2} ms  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}  ({} samples)",
            l.p50,
            l.p90,
            l.p99,
            l.p999,
            l.max,
            n(l.count)
        );
        let ls = &self.latency_from_send_ms;
        let _ = writeln!(
            s,
            "             from send     p50 {:.2} ms  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
            ls.p50, ls.p90, ls.p99, ls.p999, ls.max
        );
        if let Some(h) = &self.hub {
            let _ = writeln!(
                s,
                "hub process  RSS {} → max {} ({:.1} KiB/subscriber)  CPU {:.1} s ({:.1} s publishing)  fds max {}",
                mib(h.rss_start_bytes),
                mib(h.rss_max_bytes),
                h.rss_per_subscriber_bytes / 1024.0,
                h.cpu_seconds,
                h.cpu_seconds_publishing,
                n(h.fds_max)
            );
        }
        if let Some(pd) = &self.per_delivery {
            let _ = writeln!(
                s,
                "per delivery hub {:.2} µs CPU  loadgen {:.2} µs CPU  ({} events in {:.1} s)  hub RSS with {} held {}",
                pd.hub_us_per_delivery,
                pd.loadgen_us_per_delivery,
                n(pd.events),
                pd.window_s,
                n(pd.held_connected),
                mib(pd.hub_rss_connected_bytes)
            );
        }
        if let Some(l) = &self.loadgen {
            let _ = writeln!(
                s,
                "loadgen      CPU {:.1} s in {} workers (max RSS {}), {:.1} s coordinator",
                l.workers_cpu_s,
                l.workers,
                mib(l.workers_rss_max_bytes),
                l.coordinator_cpu_s
            );
        }
        if self.nodes.len() > 1 {
            for (i, nd) in self.nodes.iter().enumerate() {
                let _ = writeln!(
                    s,
                    "node {i:<7} {}  held {} (initial {}/{})  published {}/{}  delivered {}/{}  lost {}",
                    nd.url,
                    n(nd.peak_held),
                    n(nd.initial_held),
                    n(nd.requested),
                    n(nd.publishes_accepted),
                    n(nd.publishes_sent),
                    n(nd.delivery.delivered),
                    n(nd.delivery.expected),
                    n(nd.delivery.lost)
                );
            }
        }
        for (i, h) in self.hub.iter().flat_map(|h| h.processes.iter()).enumerate() {
            let _ = writeln!(
                s,
                "hub proc {i:<3} {}RSS {} → max {}  CPU {:.1} s  fds max {}",
                h.pid.map_or_else(String::new, |p| format!("pid {p}  ")),
                mib(h.rss_start_bytes),
                mib(h.rss_max_bytes),
                h.cpu_seconds,
                n(h.fds_max)
            );
        }
        let v = &self.verdict;
        let _ = writeln!(
            s,
            "verdict      {}  (p99 from schedule < {} ms: {}, zero loss: {}, no duplicates: {}, in order: {}, \
             nothing unexpected: {}, publishes accepted: {}, on schedule: {}, all tallied: {}, all connected: {}, \
             offered rate met: {})",
            if v.pass { "PASS" } else { "FAIL" },
            self.config.slo_ms,
            v.p99_within_slo,
            v.zero_loss,
            v.no_duplicates,
            v.in_order,
            v.no_unexpected,
            v.publishes_accepted,
            v.on_schedule,
            v.all_tallied,
            v.all_connected,
            v.rate_met
        );
        for f in &v.failures {
            let _ = writeln!(s, "  failed     {} ({}): {}", f.check, n(f.count), f.example);
        }
        s
    }
}
