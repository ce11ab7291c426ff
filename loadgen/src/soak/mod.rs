//! Soak checks: a time series of the hub's resources and gauges next to the loadgen's
//! own truth, and the verdict on gauge drift and RSS drift.
//!
//! The sampler ([`Sampler`]) ticks every second: it keeps the workers' cumulative
//! connect/disconnect counters of the last few seconds (the churn), and every
//! `--sample-every` seconds it scrapes the hub's `/metrics`, reads `/proc/<pid>` and
//! writes one JSON line ([`SoakSample`]).
//!
//! # Gauge truth
//! The loadgen knows how many subscriptions it holds: `held` (connected, not yet
//! closed) plus `stuck_open` (stuck consumers connecting or connected, not yet closed by
//! us). The hub's `mercure_subscribers` can differ only by what is in flight when the
//! two are read, so at every sample it must lie within
//! `[held − churn, held + stuck_open + in_flight + churn]`, where `churn` is the
//! connects + disconnects seen in the last [`CHURN_WINDOW_S`] seconds (the workers'
//! counters are up to 0.5 s old when read), `in_flight` the subscription requests not
//! yet answered (the hub registers before it answers), and `stuck_open` may already be
//! evicted on the hub's side. `mercure_connections` gets the same band plus the
//! publishers' and the scrape's own connections. After the run, once every subscriber
//! closed, `mercure_subscribers` must come back to exactly 0 (and
//! `mercure_connections` to at most 1, the scrape) within `--gauge-settle-timeout`.
//!
//! # Several hub nodes
//! Each hub is checked against the subscriptions it holds, not the run's total: the
//! nodes are grouped by their gauges URL (default each node's origin + `/metrics`), so
//! distinct hubs form one group each and a hub given twice (or one `--hub-gauges-url`
//! for every node) forms one group covering its nodes. Per group the band above is
//! computed from that group's own `held`, `stuck_open`, `in_flight` and `churn` (the
//! workers count per node), and a sample is in band only if every group is; each
//! group's values are in the sample's `nodes[]`. The sample's `metrics` are then the
//! groups' sums (only when every group answered) and its band the sum of theirs, for the
//! figure. At the end every group must settle (0 subscribers, at most 1 connection).
//!
//! # RSS drift
//! Samples of the publish phase after the warm-up: the median RSS of their last
//! quarter against the median of their first quarter; more than `--rss-drift-max`
//! growth fails. A least-squares slope is reported too (per hour, relative).

pub mod plot;

use crate::hubstats;
use crate::shard::Progress;
use crate::worker::WorkerView;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Seconds of worker counters the churn allowance covers.
pub const CHURN_WINDOW_S: usize = 3;

/// One line of the time series.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SoakSample {
    /// Seconds since the run started.
    pub t_s: f64,
    /// Run phase (`connecting`, `publishing`, `settling`, `closing`, `settled`).
    pub phase: String,
    /// Hub RSS, bytes (0 when unknown).
    pub rss_bytes: u64,
    /// Hub CPU seconds so far.
    pub cpu_s: f64,
    /// Hub open fds.
    pub fds: u64,
    /// Every `mercure_*` and `process_*` series of the hub's `/metrics` (with labels in the
    /// name), if the scrape succeeded.
    pub metrics: BTreeMap<String, f64>,
    /// Subscribers connected now (loadgen side).
    pub held: u64,
    /// Stuck consumers connecting or connected now.
    pub stuck_open: u64,
    /// Subscription requests not answered yet.
    pub in_flight: u64,
    /// Connects + disconnects in the last [`CHURN_WINDOW_S`] seconds.
    pub churn: u64,
    /// Allowed band for `mercure_subscribers`.
    pub subscribers_lo: u64,
    /// Upper end of it.
    pub subscribers_hi: u64,
    /// `mercure_subscribers` is inside its band (false if it was not scraped).
    pub subscribers_ok: bool,
    /// `mercure_connections` is inside its band (false if it was not scraped).
    pub connections_ok: bool,
    /// Cumulative counters, for the record: connects, disconnects, hub drops, token
    /// expiries, stuck cycles, stuck evicted, events.
    pub connects: u64,
    /// See `connects`.
    pub disconnects: u64,
    /// See `connects`.
    pub drops: u64,
    /// See `connects`.
    pub token_expiries: u64,
    /// See `connects`.
    pub stuck_cycles: u64,
    /// See `connects`.
    pub stuck_evicted: u64,
    /// See `connects`.
    pub events: u64,
    /// With several gauge groups (distinct hubs): each one's check. Empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<GroupGauge>,
}

/// One hub's (gauge group's) part of a sample.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct GroupGauge {
    /// Its `/metrics` URL.
    pub url: String,
    /// The nodes (positions in `--hub-url`) it serves.
    pub nodes: Vec<usize>,
    /// Its `mercure_subscribers` and `mercure_connections` (absent if not scraped).
    pub subscribers: Option<f64>,
    /// See `subscribers`.
    pub connections: Option<f64>,
    /// Its truth: subscribers held on its nodes.
    pub held: u64,
    /// Its band for `mercure_subscribers`.
    pub subscribers_lo: u64,
    /// See `subscribers_lo`.
    pub subscribers_hi: u64,
    /// Both gauges inside their bands.
    pub subscribers_ok: bool,
    /// See `subscribers_ok`.
    pub connections_ok: bool,
}

impl SoakSample {
    /// A metric by exact name.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics.get(name).copied()
    }

    /// The gauges once everything closed: `mercure_subscribers` (summed over the hubs)
    /// and `mercure_connections` (the largest of any hub: each may keep its scrape's).
    pub fn final_gauges(&self) -> (Option<f64>, Option<f64>) {
        if self.nodes.is_empty() {
            return (self.metric("mercure_subscribers"), self.metric("mercure_connections"));
        }
        let subs = self.nodes.iter().map(|g| g.subscribers).sum::<Option<f64>>();
        let conns = self.nodes.iter().map(|g| g.connections).try_fold(0.0f64, |m, c| c.map(|c| m.max(c)));
        (subs, conns)
    }

    /// How far outside its band `mercure_subscribers` was (infinite if not scraped), and
    /// `(hub value, lo, hi)` of the worst hub.
    fn violation(&self) -> (f64, (f64, u64, u64)) {
        let dist = |v: Option<f64>, lo: u64, hi: u64| {
            let v = v.unwrap_or(f64::NAN);
            let d = if v.is_nan() { f64::INFINITY } else { (lo as f64 - v).max(v - hi as f64) };
            (d, (v, lo, hi))
        };
        if self.nodes.is_empty() {
            return dist(self.metric("mercure_subscribers"), self.subscribers_lo, self.subscribers_hi);
        }
        self.nodes
            .iter()
            .map(|g| dist(g.subscribers, g.subscribers_lo, g.subscribers_hi))
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .unwrap_or((f64::INFINITY, (f64::NAN, 0, 0)))
    }
}

/// What the loadgen knows at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Truth {
    /// Subscribers connected.
    pub held: u64,
    /// Stuck consumers connecting or connected.
    pub stuck_open: u64,
    /// Subscription requests not answered yet.
    pub in_flight: u64,
    /// Connects + disconnects in the churn window.
    pub churn: u64,
}

impl Truth {
    /// From the workers' summed counters and the churn.
    pub fn from_progress(p: &Progress, churn: u64) -> Self {
        Self {
            held: p.held,
            stuck_open: p.stuck_open,
            in_flight: p.connect_attempts.saturating_sub(p.connects + p.connect_errors),
            churn,
        }
    }

    /// The band `mercure_subscribers` must lie in.
    pub fn subscribers_band(&self) -> (u64, u64) {
        (self.held.saturating_sub(self.churn), self.held + self.stuck_open + self.in_flight + self.churn)
    }

    /// The band `mercure_connections` must lie in; `extra` covers connections that are not
    /// subscriptions (publishers, the scrape).
    pub fn connections_band(&self, extra: u64) -> (u64, u64) {
        let (lo, hi) = self.subscribers_band();
        (lo, hi + extra)
    }
}

/// Whether `value` lies in `band`.
pub fn within(value: Option<f64>, band: (u64, u64)) -> bool {
    value.is_some_and(|v| v >= band.0 as f64 && v <= band.1 as f64)
}

/// RSS drift after the warm-up.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RssDrift {
    /// Samples used (publish phase, after the warm-up).
    pub samples: usize,
    /// Median RSS of their first quarter, bytes.
    pub first_quarter_median_bytes: u64,
    /// Median RSS of their last quarter, bytes.
    pub last_quarter_median_bytes: u64,
    /// `last / first − 1`.
    pub growth: f64,
    /// Least-squares slope, as a fraction of the first-quarter median per hour.
    pub slope_per_hour: f64,
    /// Enough samples to judge (at least 8).
    pub checked: bool,
    /// `growth ≤ max` (true when not checked).
    pub ok: bool,
}

fn median(v: &mut [u64]) -> u64 {
    v.sort_unstable();
    match v.len() {
        0 => 0,
        n if !n.is_multiple_of(2) => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2,
    }
}

/// RSS drift of `(t_s, rss_bytes)` points (already restricted to after the warm-up).
pub fn rss_drift(points: &[(f64, u64)], max_growth: f64) -> RssDrift {
    let n = points.len();
    if n < 8 {
        return RssDrift { samples: n, ok: true, ..RssDrift::default() };
    }
    let q = n / 4;
    let first = median(&mut points[..q].iter().map(|p| p.1).collect::<Vec<_>>());
    let last = median(&mut points[n - q..].iter().map(|p| p.1).collect::<Vec<_>>());
    let growth = if first > 0 { last as f64 / first as f64 - 1.0 } else { 0.0 };
    let (mx, my) = points.iter().fold((0.0, 0.0), |a, p| (a.0 + p.0, a.1 + p.1 as f64));
    let (mx, my) = (mx / n as f64, my / n as f64);
    let (sxy, sxx) = points.iter().fold((0.0, 0.0), |a, p| {
        let dx = p.0 - mx;
        (a.0 + dx * (p.1 as f64 - my), a.1 + dx * dx)
    });
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    RssDrift {
        samples: n,
        first_quarter_median_bytes: first,
        last_quarter_median_bytes: last,
        growth,
        slope_per_hour: if first > 0 { slope * 3600.0 / first as f64 } else { 0.0 },
        checked: true,
        ok: growth <= max_growth,
    }
}

/// The soak's part of the report.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SoakReport {
    /// Time series file.
    pub timeseries: String,
    /// Sampling period, seconds.
    pub sample_every_s: f64,
    /// Warm-up, seconds of the publish phase.
    pub warmup_s: f64,
    /// Allowed RSS growth.
    pub rss_drift_max: f64,
    /// Samples written.
    pub samples: usize,
    /// Samples where `mercure_subscribers` was outside its band (or not scraped).
    pub subscriber_gauge_violations: usize,
    /// Samples where `mercure_connections` was outside its band (or not scraped).
    pub connection_gauge_violations: usize,
    /// The worst violation: `(t_s, hub value, lo, hi)`.
    pub worst_violation: Option<(f64, f64, u64, u64)>,
    /// Largest |hub − held| over the samples (informative).
    pub max_abs_gap: f64,
    /// `mercure_subscribers` and `mercure_connections` after every subscriber closed.
    pub final_subscribers: Option<f64>,
    /// See `final_subscribers`.
    pub final_connections: Option<f64>,
    /// Seconds the gauges took to settle after the close (or the timeout).
    pub settle_s: f64,
    /// RSS drift after the warm-up.
    pub rss: RssDrift,
    /// Stuck consumers asked for, connections made, seen evicted, not evicted, failed.
    pub stuck: u64,
    /// See `stuck`.
    pub stuck_cycles: u64,
    /// See `stuck`.
    pub stuck_evicted: u64,
    /// Of `stuck_evicted`: ended by a reset (the hub's kernel dropped the connection)
    /// rather than an end of stream (the hub closed it: an eviction).
    #[serde(default)]
    pub stuck_reset: u64,
    /// See `stuck`.
    pub stuck_not_evicted: u64,
    /// See `stuck`.
    pub stuck_errors: u64,
    /// `mercure_evictions_total` growth over the run.
    pub hub_evictions: f64,
    /// Streams ended by token expiry.
    pub token_expiries: u64,
    /// Verdict.
    pub verdict: SoakVerdict,
}

/// Pass/fail of the soak.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SoakVerdict {
    /// Nothing lost.
    pub zero_loss: bool,
    /// Both gauges inside their bands at every sample.
    pub gauges_tracked: bool,
    /// `mercure_subscribers` back to 0 and `mercure_connections` ≤ 1 after the close.
    pub gauges_settled: bool,
    /// RSS growth after the warm-up within the limit.
    pub rss_flat: bool,
    /// With stuck consumers: every stuck cycle that was checked had been ended by the hub,
    /// at least one was, and `mercure_evictions_total` counted at least the ones it closed
    /// itself (end of stream; resets come from its kernel, e.g. `TCP_USER_TIMEOUT`, and
    /// are not evictions).
    pub stuck_evicted: bool,
    /// No duplicate, out-of-order or unexpected delivery, no rejected or unanswered publish,
    /// no untallied subscriber (added with report v2; absent in older reports).
    #[serde(default)]
    pub exact: bool,
    /// All of the above.
    pub pass: bool,
}

/// Inputs of the verdict besides the samples.
#[derive(Debug, Clone, Copy)]
pub struct VerdictInputs {
    /// Updates lost.
    pub lost: u64,
    /// Faults other than loss: duplicates, out-of-order and unexpected deliveries,
    /// rejected and unanswered publishes, untallied subscribers.
    pub faults: u64,
    /// Stuck consumers asked for.
    pub stuck: u64,
    /// Stuck cycles seen ended by the hub / ended by a reset / still streaming.
    pub stuck_evicted: u64,
    /// See `stuck_evicted`.
    pub stuck_reset: u64,
    /// See `stuck_evicted`.
    pub stuck_not_evicted: u64,
    /// `mercure_evictions_total` growth.
    pub hub_evictions: f64,
    /// Final gauges.
    pub final_subscribers: Option<f64>,
    /// See `final_subscribers`.
    pub final_connections: Option<f64>,
}

/// Judges a soak from its samples; fills every field of the report but the file names.
pub fn judge(
    samples: &[SoakSample],
    publish_window: (f64, f64),
    warmup_s: f64,
    rss_drift_max: f64,
    inp: VerdictInputs,
) -> SoakReport {
    let sub_bad: Vec<&SoakSample> = samples.iter().filter(|s| s.phase != "settled" && !s.subscribers_ok).collect();
    let conn_bad = samples.iter().filter(|s| s.phase != "settled" && !s.connections_ok).count();
    let worst = sub_bad
        .iter()
        .map(|s| {
            let (dist, (v, lo, hi)) = s.violation();
            (dist, (s.t_s, v, lo, hi))
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|x| x.1);
    let max_abs_gap = samples
        .iter()
        .filter(|s| s.phase != "settled")
        .filter_map(|s| s.metric("mercure_subscribers").map(|v| (v - s.held as f64).abs()))
        .fold(0.0, f64::max);
    let from = publish_window.0 + warmup_s;
    let pts: Vec<(f64, u64)> = samples
        .iter()
        .filter(|s| s.phase == "publishing" && s.t_s >= from && s.t_s <= publish_window.1 && s.rss_bytes > 0)
        .map(|s| (s.t_s, s.rss_bytes))
        .collect();
    let rss = rss_drift(&pts, rss_drift_max);
    let settled = inp.final_subscribers == Some(0.0) && inp.final_connections.is_some_and(|c| (0.0..=1.0).contains(&c));
    let stuck_ok = inp.stuck == 0
        || (inp.stuck_evicted > 0
            && inp.stuck_not_evicted == 0
            && inp.hub_evictions >= inp.stuck_evicted.saturating_sub(inp.stuck_reset) as f64);
    let tracked = sub_bad.is_empty() && conn_bad == 0 && !samples.is_empty();
    let verdict = SoakVerdict {
        zero_loss: inp.lost == 0,
        gauges_tracked: tracked,
        gauges_settled: settled,
        rss_flat: rss.ok,
        stuck_evicted: stuck_ok,
        exact: inp.faults == 0,
        pass: inp.lost == 0 && inp.faults == 0 && tracked && settled && rss.ok && stuck_ok,
    };
    SoakReport {
        samples: samples.len(),
        subscriber_gauge_violations: sub_bad.len(),
        connection_gauge_violations: conn_bad,
        worst_violation: worst,
        max_abs_gap,
        final_subscribers: inp.final_subscribers,
        final_connections: inp.final_connections,
        rss,
        warmup_s,
        rss_drift_max,
        stuck: inp.stuck,
        stuck_evicted: inp.stuck_evicted,
        stuck_reset: inp.stuck_reset,
        stuck_not_evicted: inp.stuck_not_evicted,
        hub_evictions: inp.hub_evictions,
        verdict,
        ..SoakReport::default()
    }
}

/// Parses every unlabelled or labelled `mercure_*` / `process_*` series of Prometheus text.
pub fn parse_gauges(text: &str) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with('#') || !(line.starts_with("mercure_") || line.starts_with("process_")) {
            continue;
        }
        // The value is the last field; labels may contain spaces only inside quotes,
        // which our hub does not emit, so splitting at the last space is enough.
        let Some((name, value)) = line.trim_end().rsplit_once(' ') else {
            continue;
        };
        if let Ok(v) = value.parse::<f64>() {
            m.insert(name.trim().to_string(), v);
        }
    }
    m
}

/// The run's phase, shared between the coordinator and the sampler.
pub type Phase = Arc<Mutex<&'static str>>;

/// The sampler's settings.
#[derive(Debug, Clone)]
pub struct SamplerConfig {
    /// Time series path (JSON lines).
    pub path: PathBuf,
    /// Sampling period.
    pub every: Duration,
    /// The hubs' `/metrics`, each with the nodes it serves (one group for a single hub).
    pub gauges: Vec<GaugeGroup>,
    /// Hub pids for `/proc` sampling (summed).
    pub pids: Vec<u32>,
    /// Connections that are not subscriptions, allowed on top of the band.
    pub extra_connections: u64,
    /// The publishers' connections, allowed on top of that: their client opens one per
    /// publish in flight and keeps it, so the most in flight so far (read at each sample).
    pub publisher_connections: Option<Arc<std::sync::atomic::AtomicU64>>,
}

impl SamplerConfig {
    /// Connections that are not subscriptions, now.
    fn extra_now(&self) -> u64 {
        self.extra_connections
            + self.publisher_connections.as_ref().map_or(0, |a| a.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// One hub's `/metrics` and the nodes (positions in `--hub-url`) it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GaugeGroup {
    /// `/metrics` URL.
    pub url: String,
    /// Nodes it serves.
    pub nodes: Vec<usize>,
}

/// Groups nodes by gauges URL: `urls` has one URL per node, or one for all of them.
pub fn gauge_groups(urls: &[String], nodes: usize) -> Result<Vec<GaugeGroup>, String> {
    if urls.len() != 1 && urls.len() != nodes {
        return Err(format!(
            "--hub-gauges-url: give one (a hub serving every node) or one per --hub-url ({nodes}), not {}",
            urls.len()
        ));
    }
    let mut groups: Vec<GaugeGroup> = Vec::new();
    for node in 0..nodes {
        let url = if urls.len() == 1 { &urls[0] } else { &urls[node] };
        match groups.iter_mut().find(|g| &g.url == url) {
            Some(g) => g.nodes.push(node),
            None => groups.push(GaugeGroup { url: url.clone(), nodes: vec![node] }),
        }
    }
    Ok(groups)
}

/// The running sampler.
pub struct Sampler {
    task: tokio::task::JoinHandle<Vec<SoakSample>>,
    halt: watch::Sender<bool>,
    cfg: SamplerConfig,
    t_start: Instant,
}

/// Sums the workers' latest counters.
pub fn sum_views(views: &[Arc<Mutex<WorkerView>>]) -> Progress {
    let mut a = Progress::default();
    for v in views {
        let Ok(v) = v.lock() else { continue };
        let p = &v.progress;
        a.held += p.held;
        a.connect_attempts += p.connect_attempts;
        a.connects += p.connects;
        a.connect_errors += p.connect_errors;
        a.disconnects += p.disconnects;
        a.drops += p.drops;
        a.events += p.events;
        a.token_expiries += p.token_expiries;
        a.stuck_open += p.stuck_open;
        a.stuck_cycles += p.stuck_cycles;
        a.stuck_evicted += p.stuck_evicted;
        a.stuck_not_evicted += p.stuck_not_evicted;
        a.stuck_reset += p.stuck_reset;
        a.stuck_errors += p.stuck_errors;
        crate::nodes::add_all(&mut a.nodes, &p.nodes);
    }
    a
}

/// The counters of a group of nodes, as a [`Progress`] the band functions read.
fn group_progress(p: &Progress, nodes: &[usize]) -> Progress {
    let mut g = Progress::default();
    for c in nodes.iter().filter_map(|&i| p.nodes.get(i)) {
        g.held += c.held;
        g.stuck_open += c.stuck_open;
        g.connect_attempts += c.connect_attempts;
        g.connects += c.connects;
        g.connect_errors += c.connect_errors;
        g.disconnects += c.disconnects;
    }
    g
}

/// Connects + disconnects: in total (index 0), then per gauge group.
fn churn_counts(cfg: &SamplerConfig, p: &Progress) -> Vec<u64> {
    let mut v = vec![p.connects + p.disconnects];
    if cfg.gauges.len() > 1 {
        v.extend(cfg.gauges.iter().map(|g| {
            let gp = group_progress(p, &g.nodes);
            gp.connects + gp.disconnects
        }));
    }
    v
}

async fn take(
    cfg: &SamplerConfig,
    t_s: f64,
    phase: &str,
    p: &Progress,
    churn: &[u64],
    scraped: Vec<Option<BTreeMap<String, f64>>>,
) -> SoakSample {
    let proc = hubstats::sum(cfg.pids.iter().map(|&pid| hubstats::sample_pid(pid)));
    let truth = Truth::from_progress(p, churn.first().copied().unwrap_or(0));
    let mut band = truth.subscribers_band();
    let mut groups = Vec::new();
    let (metrics, subscribers_ok, connections_ok) = if cfg.gauges.len() <= 1 {
        let metrics = scraped.into_iter().next().flatten().unwrap_or_default();
        let subscribers_ok = within(metrics.get("mercure_subscribers").copied(), band);
        let connections_ok =
            within(metrics.get("mercure_connections").copied(), truth.connections_band(cfg.extra_now()));
        (metrics, subscribers_ok, connections_ok)
    } else {
        // Each hub against its own nodes' truth; the sample's metrics and band are sums.
        band = (0, 0);
        let all = scraped.iter().all(Option::is_some);
        let mut sum: BTreeMap<String, f64> = BTreeMap::new();
        for (i, (g, m)) in cfg.gauges.iter().zip(scraped).enumerate() {
            let t = Truth::from_progress(&group_progress(p, &g.nodes), churn.get(i + 1).copied().unwrap_or(0));
            let b = t.subscribers_band();
            band = (band.0 + b.0, band.1 + b.1);
            let m = m.unwrap_or_default();
            let subscribers = m.get("mercure_subscribers").copied();
            let connections = m.get("mercure_connections").copied();
            groups.push(GroupGauge {
                url: g.url.clone(),
                nodes: g.nodes.clone(),
                subscribers,
                connections,
                held: t.held,
                subscribers_lo: b.0,
                subscribers_hi: b.1,
                subscribers_ok: within(subscribers, b),
                connections_ok: within(connections, t.connections_band(cfg.extra_now())),
            });
            if all {
                for (k, v) in m {
                    *sum.entry(k).or_default() += v;
                }
            }
        }
        let ok = groups.iter().all(|g| g.subscribers_ok);
        let conn_ok = groups.iter().all(|g| g.connections_ok);
        (sum, ok, conn_ok)
    };
    SoakSample {
        t_s,
        phase: phase.to_string(),
        rss_bytes: proc.map_or(0, |s| s.rss_bytes),
        cpu_s: proc.map_or(0.0, |s| s.cpu_s),
        fds: proc.map_or(0, |s| s.fds),
        metrics,
        held: p.held,
        stuck_open: p.stuck_open,
        in_flight: truth.in_flight,
        churn: truth.churn,
        subscribers_lo: band.0,
        subscribers_hi: band.1,
        subscribers_ok,
        connections_ok,
        connects: p.connects,
        disconnects: p.disconnects,
        drops: p.drops,
        token_expiries: p.token_expiries,
        stuck_cycles: p.stuck_cycles,
        stuck_evicted: p.stuck_evicted,
        events: p.events,
        nodes: groups,
    }
}

async fn scrape(url: &str) -> Option<BTreeMap<String, f64>> {
    let text = crate::http::get_text(url, Duration::from_secs(5)).await.ok()?;
    Some(parse_gauges(&text))
}

/// Scrapes every group's `/metrics`, in order.
async fn scrape_all(groups: &[GaugeGroup]) -> Vec<Option<BTreeMap<String, f64>>> {
    let mut v = Vec::with_capacity(groups.len());
    for g in groups {
        v.push(scrape(&g.url).await);
    }
    v
}

/// Every hub is back to 0 subscribers and at most 1 connection (the scrape's).
fn all_settled(scraped: &[Option<BTreeMap<String, f64>>]) -> bool {
    !scraped.is_empty()
        && scraped.iter().all(|m| {
            m.as_ref().is_some_and(|m| {
                m.get("mercure_subscribers") == Some(&0.0) && m.get("mercure_connections").is_some_and(|c| *c <= 1.0)
            })
        })
}

fn append(file: &mut Option<std::fs::File>, s: &SoakSample) {
    if let Some(f) = file
        && let Ok(mut line) = serde_json::to_vec(s)
    {
        line.push(b'\n');
        if f.write_all(&line).is_err() {
            *file = None;
        }
    }
}

impl Sampler {
    /// Starts sampling; `views` are the workers' live views, `phase` the run's phase.
    pub fn start(
        cfg: SamplerConfig,
        t_start: Instant,
        views: Vec<Arc<Mutex<WorkerView>>>,
        phase: Phase,
    ) -> Result<Self, String> {
        if let Some(dir) = cfg.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let mut file = Some(std::fs::File::create(&cfg.path).map_err(|e| format!("{}: {e}", cfg.path.display()))?);
        let (halt, mut halted) = watch::channel(false);
        let c = cfg.clone();
        let task = tokio::spawn(async move {
            let mut out = Vec::new();
            let mut churn_hist: VecDeque<Vec<u64>> = VecDeque::new();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut next = Instant::now();
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = halted.wait_for(|h| *h) => break,
                }
                let p = sum_views(&views);
                churn_hist.push_back(churn_counts(&c, &p));
                while churn_hist.len() > CHURN_WINDOW_S + 1 {
                    churn_hist.pop_front();
                }
                if Instant::now() < next {
                    continue;
                }
                next += c.every;
                // Scrape first, then read the counters again: they are then at most one
                // progress period older than the scrape.
                let scraped = scrape_all(&c.gauges).await;
                let p = sum_views(&views);
                let front = churn_hist.front().cloned().unwrap_or_default();
                let churn: Vec<u64> = churn_counts(&c, &p)
                    .iter()
                    .enumerate()
                    .map(|(i, now)| now.saturating_sub(front.get(i).copied().unwrap_or(0)))
                    .collect();
                let phase = phase.lock().map(|p| *p).unwrap_or("?");
                let s = take(&c, t_start.elapsed().as_secs_f64(), phase, &p, &churn, scraped).await;
                append(&mut file, &s);
                out.push(s);
            }
            out
        });
        Ok(Self { task, halt, cfg, t_start })
    }

    /// Stops sampling, then waits (up to `settle`) for the hub's gauges to come back to 0
    /// subscribers and at most 1 connection (the scrape) and appends that last sample
    /// (phase `settled`). Returns all samples and the seconds the settling took.
    pub async fn finish(self, settle: Duration) -> (Vec<SoakSample>, f64) {
        let _ = self.halt.send(true);
        let mut samples = self.task.await.unwrap_or_default();
        let t0 = Instant::now();
        let mut metrics: Vec<Option<BTreeMap<String, f64>>> = vec![None; self.cfg.gauges.len()];
        loop {
            let scraped = scrape_all(&self.cfg.gauges).await;
            let done = all_settled(&scraped);
            // Keep each hub's last answer: a scrape that failed once does not erase it.
            for (kept, m) in metrics.iter_mut().zip(scraped) {
                if m.is_some() {
                    *kept = m;
                }
            }
            if done || t0.elapsed() >= settle {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let settle_s = t0.elapsed().as_secs_f64();
        let zero = Progress::default();
        let s = take(&self.cfg, self.t_start.elapsed().as_secs_f64(), "settled", &zero, &[0], metrics).await;
        let mut file = std::fs::OpenOptions::new().append(true).open(&self.cfg.path).ok();
        append(&mut file, &s);
        samples.push(s);
        (samples, settle_s)
    }
}

impl SoakReport {
    /// Markdown summary of the verdict and the numbers.
    pub fn human(&self) -> String {
        let mut s = String::new();
        let v = &self.verdict;
        let pf = |b: bool| if b { "pass" } else { "**FAIL**" };
        let _ = writeln!(s, "## Verdict: {}\n", if v.pass { "PASS" } else { "**FAIL**" });
        let _ = writeln!(s, "| check | result | evidence |\n|---|---|---|");
        let _ = writeln!(s, "| zero loss | {} | see the delivery table |", pf(v.zero_loss));
        let _ = writeln!(
            s,
            "| exact | {} | duplicates, out of order, unexpected, failed publishes, untallied subscribers: see the report's `verdict.failures` |",
            pf(v.exact)
        );
        let worst = self
            .worst_violation
            .map_or_else(String::new, |w| format!("; worst at t={:.0}s: hub {} outside [{}, {}]", w.0, w.1, w.2, w.3));
        let _ = writeln!(
            s,
            "| gauges track the truth | {} | {} samples; `mercure_subscribers` outside its band in {}, `mercure_connections` in {}; max abs(hub − held) {:.0}{worst} |",
            pf(v.gauges_tracked),
            self.samples,
            self.subscriber_gauge_violations,
            self.connection_gauge_violations,
            self.max_abs_gap
        );
        let _ = writeln!(
            s,
            "| gauges settle at the end | {} | `mercure_subscribers` {}, `mercure_connections` {} after {:.1} s |",
            pf(v.gauges_settled),
            self.final_subscribers.map_or("not scraped".into(), |v| v.to_string()),
            self.final_connections.map_or("not scraped".into(), |v| v.to_string()),
            self.settle_s
        );
        let r = &self.rss;
        let rss_ev = if r.checked {
            format!(
                "{} samples after a {:.0} s warm-up: first-quarter median {:.1} MiB, last-quarter median {:.1} MiB, growth {:+.2} % (max {:.0} %); slope {:+.2} %/h",
                r.samples,
                self.warmup_s,
                r.first_quarter_median_bytes as f64 / 1048576.0,
                r.last_quarter_median_bytes as f64 / 1048576.0,
                r.growth * 100.0,
                self.rss_drift_max * 100.0,
                r.slope_per_hour * 100.0
            )
        } else {
            format!("not checked: {} samples after the warm-up (8 needed)", r.samples)
        };
        let _ = writeln!(s, "| RSS flat after warm-up | {} | {rss_ev} |", pf(v.rss_flat));
        let _ = writeln!(
            s,
            "| stuck consumers ended by the hub | {} | {} stuck; {} stuck connections checked after their hold: {} ended by the hub ({} by an end of stream = evictions, {} by a reset = the hub's kernel gave up, e.g. `TCP_USER_TIMEOUT`), {} still streaming; {} failed to connect; hub `mercure_evictions_total` +{:.0} |",
            pf(v.stuck_evicted),
            self.stuck,
            self.stuck_cycles,
            self.stuck_evicted,
            self.stuck_evicted.saturating_sub(self.stuck_reset),
            self.stuck_reset,
            self.stuck_not_evicted,
            self.stuck_errors,
            self.hub_evictions
        );
        let _ = writeln!(s, "\nStreams ended by token expiry (and resumed): {}.", self.token_expiries);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: f64, phase: &str, hub: f64, held: u64) -> SoakSample {
        let truth = Truth { held, stuck_open: 2, in_flight: 1, churn: 3 };
        let band = truth.subscribers_band();
        let mut metrics = BTreeMap::new();
        metrics.insert("mercure_subscribers".to_string(), hub);
        metrics.insert("mercure_connections".to_string(), hub + 1.0);
        SoakSample {
            t_s: t,
            phase: phase.into(),
            rss_bytes: 100 << 20,
            subscribers_lo: band.0,
            subscribers_hi: band.1,
            subscribers_ok: within(Some(hub), band),
            connections_ok: within(Some(hub + 1.0), truth.connections_band(4)),
            held,
            metrics,
            ..SoakSample::default()
        }
    }

    fn ok_inputs() -> VerdictInputs {
        VerdictInputs {
            lost: 0,
            faults: 0,
            stuck: 2,
            stuck_evicted: 5,
            stuck_reset: 0,
            stuck_not_evicted: 0,
            hub_evictions: 5.0,
            final_subscribers: Some(0.0),
            final_connections: Some(1.0),
        }
    }

    #[test]
    fn bands() {
        let t = Truth { held: 100, stuck_open: 5, in_flight: 2, churn: 10 };
        assert_eq!(t.subscribers_band(), (90, 117));
        assert_eq!(t.connections_band(6), (90, 123));
        assert!(within(Some(90.0), (90, 117)) && within(Some(117.0), (90, 117)));
        assert!(!within(Some(89.0), (90, 117)) && !within(Some(118.0), (90, 117)) && !within(None, (0, 1)));
        let p = Progress {
            held: 7,
            stuck_open: 1,
            connect_attempts: 20,
            connects: 15,
            connect_errors: 3,
            ..Progress::default()
        };
        assert_eq!(Truth::from_progress(&p, 4), Truth { held: 7, stuck_open: 1, in_flight: 2, churn: 4 });
    }

    #[test]
    fn honest_soak_passes() {
        let s: Vec<SoakSample> = (0..40).map(|i| sample(f64::from(i), "publishing", 101.0, 100)).collect();
        let r = judge(&s, (0.0, 40.0), 5.0, 0.05, ok_inputs());
        assert!(r.verdict.pass, "{r:?}");
        assert_eq!(r.subscriber_gauge_violations, 0);
        assert!(r.rss.checked && r.rss.growth.abs() < 1e-9);
    }

    #[test]
    fn each_failure_fails() {
        let good: Vec<SoakSample> = (0..40).map(|i| sample(f64::from(i), "publishing", 101.0, 100)).collect();
        // Loss.
        let r = judge(&good, (0.0, 40.0), 5.0, 0.05, VerdictInputs { faults: 1, ..ok_inputs() });
        assert!(!r.verdict.pass && !r.verdict.exact && r.verdict.zero_loss, "a duplicate fails a soak");
        let r = judge(&good, (0.0, 40.0), 5.0, 0.05, VerdictInputs { lost: 1, ..ok_inputs() });
        assert!(!r.verdict.pass && !r.verdict.zero_loss && r.verdict.gauges_tracked);
        // A gauge that lies by more than the in-flight allowance, at one sample.
        let mut lying = good.clone();
        lying[20] = sample(20.0, "publishing", 120.0, 100);
        let r = judge(&lying, (0.0, 40.0), 5.0, 0.05, ok_inputs());
        assert!(!r.verdict.pass && !r.verdict.gauges_tracked);
        assert_eq!(r.subscriber_gauge_violations, 1);
        assert_eq!(r.worst_violation.map(|w| w.1), Some(120.0));
        // Too low is as bad as too high.
        lying[20] = sample(20.0, "publishing", 90.0, 100);
        assert!(!judge(&lying, (0.0, 40.0), 5.0, 0.05, ok_inputs()).verdict.gauges_tracked);
        // A gauge that was not scraped counts as a violation.
        let mut unscraped = good.clone();
        unscraped[3].metrics.clear();
        unscraped[3].subscribers_ok = false;
        assert!(!judge(&unscraped, (0.0, 40.0), 5.0, 0.05, ok_inputs()).verdict.pass);
        // Gauges that do not return to zero.
        let r = judge(&good, (0.0, 40.0), 5.0, 0.05, VerdictInputs { final_subscribers: Some(1.0), ..ok_inputs() });
        assert!(!r.verdict.pass && !r.verdict.gauges_settled);
        let r = judge(&good, (0.0, 40.0), 5.0, 0.05, VerdictInputs { final_connections: Some(3.0), ..ok_inputs() });
        assert!(!r.verdict.gauges_settled);
        let r = judge(&good, (0.0, 40.0), 5.0, 0.05, VerdictInputs { final_subscribers: None, ..ok_inputs() });
        assert!(!r.verdict.gauges_settled);
        // RSS growing 10 % after the warm-up.
        let mut growing = good.clone();
        for (i, s) in growing.iter_mut().enumerate() {
            s.rss_bytes = (100 << 20) + (i as u64) * (100 << 20) / 300;
        }
        let r = judge(&growing, (0.0, 40.0), 5.0, 0.05, ok_inputs());
        assert!(!r.verdict.pass && !r.verdict.rss_flat && r.rss.growth > 0.05, "{:?}", r.rss);
        // Growth during the warm-up only does not count.
        let mut warm = good.clone();
        for s in warm.iter_mut().filter(|s| s.t_s < 10.0) {
            s.rss_bytes = 50 << 20;
        }
        assert!(judge(&warm, (0.0, 40.0), 10.0, 0.05, ok_inputs()).verdict.rss_flat);
        // Stuck consumers the hub did not evict, or evictions the hub did not count.
        let r = judge(&good, (0.0, 40.0), 5.0, 0.05, VerdictInputs { stuck_not_evicted: 1, ..ok_inputs() });
        assert!(!r.verdict.pass && !r.verdict.stuck_evicted);
        let r = judge(&good, (0.0, 40.0), 5.0, 0.05, VerdictInputs { hub_evictions: 4.0, ..ok_inputs() });
        assert!(!r.verdict.stuck_evicted);
        let r = judge(&good, (0.0, 40.0), 5.0, 0.05, VerdictInputs { stuck_evicted: 0, ..ok_inputs() });
        assert!(!r.verdict.stuck_evicted);
        // Resets are the hub's kernel, not evictions: only the rest must be counted.
        let r =
            judge(&good, (0.0, 40.0), 5.0, 0.05, VerdictInputs { stuck_reset: 5, hub_evictions: 0.0, ..ok_inputs() });
        assert!(r.verdict.stuck_evicted, "{r:?}");
        let r =
            judge(&good, (0.0, 40.0), 5.0, 0.05, VerdictInputs { stuck_reset: 3, hub_evictions: 1.0, ..ok_inputs() });
        assert!(!r.verdict.stuck_evicted, "two closed by the hub, one counted");
    }

    #[test]
    fn rss_drift_medians_and_slope() {
        let flat: Vec<(f64, u64)> = (0..100).map(|i| (f64::from(i) * 10.0, 1000 + (i % 3) as u64)).collect();
        let d = rss_drift(&flat, 0.05);
        assert!(d.ok && d.checked && d.growth.abs() < 0.01);
        let up: Vec<(f64, u64)> = (0..100).map(|i| (f64::from(i) * 36.0, 1000 + i as u64)).collect();
        let d = rss_drift(&up, 0.05);
        assert!(!d.ok && d.growth > 0.05);
        // 1 byte per 36 s = 100 bytes/h on 1000-ish: ~0.1/h.
        assert!((d.slope_per_hour - 0.1).abs() < 0.02, "{}", d.slope_per_hour);
        assert!(!rss_drift(&up[..5], 0.05).checked);
    }

    #[test]
    fn nodes_are_grouped_by_gauges_url() {
        let urls = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // Two distinct hubs: one group each.
        let g = gauge_groups(&urls(&["http://a/metrics", "http://b/metrics"]), 2).unwrap_or_default();
        assert_eq!(g.iter().map(|g| g.nodes.clone()).collect::<Vec<_>>(), [vec![0], vec![1]]);
        // The same hub given twice: one group, checked against both nodes' subscribers.
        let g = gauge_groups(&urls(&["http://a/metrics", "http://a/metrics"]), 2).unwrap_or_default();
        assert_eq!(g, [GaugeGroup { url: "http://a/metrics".into(), nodes: vec![0, 1] }]);
        // One URL for every node.
        assert_eq!(gauge_groups(&urls(&["http://a/metrics"]), 3).map(|g| g.len()), Ok(1));
        assert!(gauge_groups(&urls(&["http://a/m", "http://b/m"]), 3).is_err());
    }

    #[tokio::test]
    async fn each_hub_is_checked_against_its_own_nodes() {
        // Node 0 holds 10, node 1 holds 30; hub A reports 30 and hub B 10: the sums agree
        // (40 = 40) but each hub is wrong about its own subscribers, which must fail.
        let cfg = SamplerConfig {
            path: PathBuf::new(),
            every: Duration::from_secs(1),
            gauges: vec![
                GaugeGroup { url: "a".into(), nodes: vec![0] },
                GaugeGroup { url: "b".into(), nodes: vec![1] },
            ],
            pids: vec![],
            extra_connections: 4,
            publisher_connections: None,
        };
        let node = |held| crate::nodes::NodeCounters { held, connects: held, ..Default::default() };
        let p = Progress { held: 40, connects: 40, nodes: vec![node(10), node(30)], ..Progress::default() };
        let gauges = |subs: f64| {
            let mut m = BTreeMap::new();
            m.insert("mercure_subscribers".to_string(), subs);
            m.insert("mercure_connections".to_string(), subs + 1.0);
            Some(m)
        };
        let swapped = take(&cfg, 1.0, "publishing", &p, &[0, 0, 0], vec![gauges(30.0), gauges(10.0)]).await;
        assert!(!swapped.subscribers_ok, "{swapped:?}");
        assert_eq!(swapped.metric("mercure_subscribers"), Some(40.0));
        assert_eq!(swapped.violation().0, 20.0);
        let honest = take(&cfg, 1.0, "publishing", &p, &[0, 0, 0], vec![gauges(10.0), gauges(30.0)]).await;
        assert!(honest.subscribers_ok && honest.connections_ok, "{honest:?}");
        assert_eq!((honest.subscribers_lo, honest.subscribers_hi), (40, 40));
        // A hub that did not answer fails its group, and the sums are left out.
        let missing = take(&cfg, 1.0, "publishing", &p, &[0, 0, 0], vec![gauges(10.0), None]).await;
        assert!(!missing.subscribers_ok && missing.metrics.is_empty());
        assert_eq!(missing.violation().0, f64::INFINITY);
        // Settled: subscribers summed, connections the largest of any hub.
        let zero = Progress::default();
        let fin = take(&cfg, 2.0, "settled", &zero, &[0], vec![gauges(0.0), gauges(0.0)]).await;
        assert_eq!(fin.final_gauges(), (Some(0.0), Some(1.0)));
    }

    #[test]
    fn parses_hub_metrics() {
        let t = "# TYPE mercure_subscribers gauge\nmercure_subscribers 12\nmercure_connections 14\n\
                 mercure_rejected_requests_total{reason=\"auth\"} 3\nprocess_open_fds 40\nother 1\n";
        let m = parse_gauges(t);
        assert_eq!(m.get("mercure_subscribers"), Some(&12.0));
        assert_eq!(m.get("mercure_rejected_requests_total{reason=\"auth\"}"), Some(&3.0));
        assert_eq!(m.get("process_open_fds"), Some(&40.0));
        assert_eq!(m.len(), 4);
    }
}
