//! The run report: a JSON document with a stable, documented schema
//! (`mercure-loadgen/report/v1`, see `loadgen/README.md`), and its human summary.
//!
//! Compatibility rule for the schema: fields are only ever added within `v1`; a
//! renamed or removed field or a changed meaning bumps the version.

use crate::accounting::Tally;
use crate::histo::Summary;
use crate::hubstats::HubStats;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Schema identifier written in every report.
pub const SCHEMA: &str = "mercure-loadgen/report/v1";

/// The whole report.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// Publish→receive latency, ms (updates published while the receiving connection
    /// was up; replays excluded).
    pub latency_ms: Summary,
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
    /// Private updates.
    pub private_updates: bool,
    /// Subscribers authenticate with a JWT (`header`, `cookie`) or not (`none`).
    pub subscriber_auth: String,
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
    /// Publishes per second the schedule offered (scheduled / publish duration).
    #[serde(default)]
    pub offered_per_s: f64,
    /// Accepted per second of the publish phase.
    pub rate_per_s: f64,
    /// POST round trip, ms.
    pub response_ms: Summary,
    /// How late publishes left against their schedule, ms.
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
}

/// Pass/fail against the SLO.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Verdict {
    /// p99 under the SLO.
    pub p99_within_slo: bool,
    /// Nothing lost (and something expected).
    pub zero_loss: bool,
    /// Every requested initial subscriber held, and none never connected (connect
    /// errors recovered by a retry are reported but do not fail this).
    pub all_connected: bool,
    /// The hub absorbed at least 95 % of the offered publish rate (publishes on a topic
    /// are serialized, so a hub whose POST takes longer than 1/rate falls behind).
    #[serde(default)]
    pub rate_met: bool,
    /// All four.
    pub pass: bool,
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
            "published    {} accepted / {} scheduled  ({} rejected, {} unknown)  {:.1}/s of {:.1}/s offered  POST p99 {:.2} ms  lag p99 {:.2} ms",
            n(p.accepted),
            n(p.scheduled),
            n(p.rejected),
            n(p.unknown),
            p.rate_per_s,
            p.offered_per_s,
            p.response_ms.p99,
            p.lag_ms.p99
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
            "             ambiguous {}  unexpected {}  replayed {}  foreign {}  sessions with loss {}",
            n(d.tally.ambiguous),
            n(d.tally.unexpected),
            n(d.replayed),
            n(d.foreign),
            n(d.tally.sessions_with_loss)
        );
        let _ = writeln!(s, "throughput   {:.0} deliveries/s", d.deliveries_per_s);
        let _ = writeln!(
            s,
            "latency      p50 {:.2} ms  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}  ({} samples)",
            l.p50,
            l.p90,
            l.p99,
            l.p999,
            l.max,
            n(l.count)
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
            "verdict      {}  (p99 < {} ms: {}, zero loss: {}, all connected: {}, offered rate met: {})",
            if v.pass { "PASS" } else { "FAIL" },
            self.config.slo_ms,
            v.p99_within_slo,
            v.zero_loss,
            v.all_connected,
            v.rate_met
        );
        s
    }
}
