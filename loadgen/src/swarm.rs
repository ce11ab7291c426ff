//! A shard of the subscriber swarm: the subscribers one worker process owns.
//!
//! The coordinator splits N subscribers over W worker processes (the open-file cap is
//! per process and loopback source ports are per source address). Worker `w` owns the
//! global subscriber indices `g` with `g % W == w`: initial subscriber `g` starts at
//! `g / connect_rate` seconds (so all workers together ramp at `connect_rate`), and
//! arrival `j` of the `SUBSCRIBERS_RATE_FROM/TO` ramp starts at `Ramp::due(j)` after the
//! coordinator's `Start`.
//!
//! The shard runs on a single-threaded runtime (`LocalSet`): its shared state is a
//! `RefCell`, borrowed for a few counter updates and never across an `.await`. Protocol
//! with the coordinator ([`Control`] in, [`WorkerMsg`] out): `Config`, then `Start`
//! when publishing begins, `Stop` when the run ends (all connections close), then the
//! publish `Log`, against which every session is tallied ([`crate::accounting`]); the
//! shard answers with one `Final` message and exits.
//!
//! With several hub nodes ([`crate::nodes`]) subscriber `g` connects to node `g mod N`;
//! the shard keeps its counters per node as well as in total, and tallies per node too.

use crate::accounting::{IndexedTopic, PublishLog, Tally, tally_session};
use crate::histo;
use crate::nodes::{NodeAddr, NodeCounters};
use crate::schedule::Ramp;
use crate::subscriber::{self, AuthVia, SubscriberResult};
use crate::topics::{SelectorKind, TopicSpace, uniform_from};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// What a subscriber does when its lifetime ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum EndAction {
    /// Leave (the upstream Gatling test's behaviour).
    Close,
    /// Reconnect afresh, without `Last-Event-ID`: a new session.
    Reconnect,
    /// Reconnect with `Last-Event-ID`: the hub owes a replay of what was missed.
    Resume,
}

/// What a subscriber does when the hub ends its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DropAction {
    /// Reconnect with `Last-Event-ID` (what browsers' `EventSource` does).
    Resume,
    /// Reconnect afresh.
    Reconnect,
    /// Stay disconnected: everything published afterwards is counted as lost.
    Stop,
}

/// Everything a worker needs, sent by the coordinator as the first control message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SwarmConfig {
    /// This worker's number and the number of workers.
    pub worker: u32,
    /// Number of workers.
    pub workers: u32,
    /// The hub nodes, in `--hub-url` order (one for a single hub).
    pub nodes: Vec<NodeAddr>,
    /// Source address to bind, if any.
    pub source_addr: Option<IpAddr>,
    /// Run id carried in payloads.
    pub run_id: String,
    /// Topic space and selector kind.
    pub topics: TopicSpace,
    /// Selector kind.
    pub selector: SelectorKind,
    /// Subscriber JWT, if subscribers authenticate.
    pub subscriber_jwt: Option<String>,
    /// How the JWT is presented.
    pub auth_via: AuthVia,
    /// Whether the run publishes private updates.
    pub private: bool,
    /// Initial subscribers, all workers together.
    pub initial_total: u64,
    /// Initial connection ramp, connections per second, all workers together.
    pub connect_rate: f64,
    /// Arrivals after `Start`, all workers together.
    pub arrivals: Ramp,
    /// Subscriber lifetime in seconds (0 = until the run stops).
    pub lifetime_s: f64,
    /// Draw each lifetime uniformly in `[0, lifetime_s)`.
    pub random_lifetime: bool,
    /// At lifetime end.
    pub lifetime_end: EndAction,
    /// When the hub drops a subscriber.
    pub on_drop: DropAction,
    /// Reconnection delay when the hub sent no `retry:`, ms.
    pub reconnect_delay_ms: u64,
    /// Connection attempts given up after this many consecutive failures.
    pub connect_retries: u32,
    /// Connect + headers timeout, ms.
    pub connect_timeout_ms: u64,
    /// Grace subtracted from client-side closes, ns (see [`crate::accounting`]).
    pub settle_ns: u64,
    /// Seed for lifetimes.
    pub seed: u64,
    /// Slow-consumer model: after this many events on a connection, stop reading.
    pub stall_after: Option<u64>,
    /// For how long, ms (once per connection).
    pub stall_ms: u64,
    /// Scheduling policy of this worker's runtime thread.
    #[serde(default)]
    pub sched: crate::sched::WorkerSched,
    /// Shortest random lifetime, seconds (lifetimes are drawn in `[min, lifetime_s)`).
    #[serde(default)]
    pub min_lifetime_s: f64,
    /// Short-lived tokens for a share of the subscribers (soak).
    #[serde(default)]
    pub expiring: Option<crate::expiring::ExpiringTokens>,
    /// Stuck consumers owned by all workers together (soak).
    #[serde(default)]
    pub stuck: Option<crate::stuck::StuckConfig>,
}

/// Coordinator → worker.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Control {
    /// First message.
    Config(Box<SwarmConfig>),
    /// Publishing starts: arrivals begin.
    Start,
    /// The run ends: close every connection.
    Stop,
    /// The publish log, to tally against.
    Log(PublishLog),
}

/// Worker → coordinator.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum WorkerMsg {
    /// Periodic snapshot.
    Progress(Progress),
    /// Last message.
    Final(Box<ShardFinal>),
    /// The worker could not run.
    Failed {
        /// Why.
        error: String,
    },
}

/// Live counters of a shard (cumulative).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Progress {
    /// Connections open now.
    pub held: u64,
    /// Most connections open at once.
    pub peak_held: u64,
    /// Initial subscribers that connected at least once.
    pub initial_connected: u64,
    /// Initial subscribers that gave up without ever connecting.
    pub initial_failed: u64,
    /// Connection attempts.
    pub connect_attempts: u64,
    /// Successful connections.
    pub connects: u64,
    /// Failed connection attempts.
    pub connect_errors: u64,
    /// Streams ended by the hub.
    pub drops: u64,
    /// Reconnections (after a drop or a lifetime end).
    pub reconnects: u64,
    /// Subscriptions the hub had not answered (no response headers) when the run stopped.
    #[serde(default)]
    pub pending_at_stop: u64,
    /// Events received (ours or not).
    pub events: u64,
    /// Events that were not this run's.
    pub foreign: u64,
    /// Our events published before the connection that received them (replays).
    pub replayed: u64,
    /// Cumulative latency histogram (µs), [`histo::to_hex`].
    pub hist: String,
    /// Connections closed (by either side) after they were established; with
    /// `connects` it gives the churn between two snapshots.
    #[serde(default)]
    pub disconnects: u64,
    /// Streams the hub ended at (or after) the connection's token expiry.
    #[serde(default)]
    pub token_expiries: u64,
    /// Stuck consumers connecting or connected now (not yet seen closed by us).
    #[serde(default)]
    pub stuck_open: u64,
    /// Stuck-consumer connections made.
    #[serde(default)]
    pub stuck_cycles: u64,
    /// Stuck consumers the hub ended (seen as end of stream once we read again).
    #[serde(default)]
    pub stuck_evicted: u64,
    /// Of `stuck_evicted`, those whose end was a reset rather than an end of stream (the
    /// hub's kernel dropped the connection, e.g. on `TCP_USER_TIMEOUT`).
    #[serde(default)]
    pub stuck_reset: u64,
    /// Stuck consumers still streaming after the hold and the drain: not evicted.
    #[serde(default)]
    pub stuck_not_evicted: u64,
    /// Stuck-consumer connection attempts that failed.
    #[serde(default)]
    pub stuck_errors: u64,
    /// The connection counters per hub node (index = position in `--hub-url`).
    #[serde(default)]
    pub nodes: Vec<NodeCounters>,
}

/// A shard's final report.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ShardFinal {
    /// Final counters.
    pub progress: Progress,
    /// Connection errors by kind.
    pub error_kinds: BTreeMap<String, u64>,
    /// Delivery accounting.
    pub tally: Tally,
    /// Subscribers started.
    pub subscribers: u64,
    /// Subscribers that never connected.
    pub never_connected: u64,
    /// Delivery accounting per hub node (of the sessions of its subscribers).
    #[serde(default)]
    pub node_tallies: Vec<Tally>,
}

/// Live state shared by the shard's subscribers.
#[derive(Debug)]
pub struct Live {
    /// Counters.
    pub p: Progress,
    /// Latency histogram, µs.
    pub hist: Histogram<u64>,
    /// Connection errors by kind.
    pub error_kinds: BTreeMap<String, u64>,
}

/// The shard: configuration and live state, shared by its subscriber tasks.
#[derive(Debug)]
pub struct Shard {
    /// Configuration.
    pub cfg: SwarmConfig,
    /// Counters and histogram. `RefCell`: the shard is single-threaded; borrows are
    /// short and never held across `.await`.
    pub live: RefCell<Live>,
    /// Becomes `true` when the run stops.
    pub stop: watch::Receiver<bool>,
}

impl Shard {
    /// The node subscriber (or stuck consumer) `g` talks to, and its address.
    pub(crate) fn node(&self, g: u64) -> Option<(usize, &NodeAddr)> {
        let i = crate::nodes::subscriber_node(g, self.cfg.nodes.len());
        self.cfg.nodes.get(i).map(|a| (i, a))
    }
    /// Updates node `node`'s counters (no-op for an unknown node).
    pub(crate) fn on_node(&self, node: usize, f: impl FnOnce(&mut NodeCounters)) {
        if let Some(c) = self.live.borrow_mut().p.nodes.get_mut(node) {
            f(c);
        }
    }
    pub(crate) fn attempt(&self, node: usize) {
        self.live.borrow_mut().p.connect_attempts += 1;
        self.on_node(node, |c| c.connect_attempts += 1);
    }
    pub(crate) fn connect_failed(&self, node: usize, kind: &str) {
        let mut l = self.live.borrow_mut();
        l.p.connect_errors += 1;
        *l.error_kinds.entry(kind.to_string()).or_default() += 1;
        drop(l);
        self.on_node(node, |c| c.connect_errors += 1);
    }
    pub(crate) fn connected(&self, node: usize) {
        let mut l = self.live.borrow_mut();
        l.p.connects += 1;
        l.p.held += 1;
        l.p.peak_held = l.p.peak_held.max(l.p.held);
        drop(l);
        self.on_node(node, |c| {
            c.connects += 1;
            c.held += 1;
            c.peak_held = c.peak_held.max(c.held);
        });
    }
    pub(crate) fn first_connect(&self, initial: bool) {
        if initial {
            self.live.borrow_mut().p.initial_connected += 1;
        }
    }
    pub(crate) fn gave_up(&self, initial: bool) {
        if initial {
            self.live.borrow_mut().p.initial_failed += 1;
        }
    }
    pub(crate) fn disconnected(&self, node: usize) {
        let mut l = self.live.borrow_mut();
        l.p.held = l.p.held.saturating_sub(1);
        l.p.disconnects += 1;
        drop(l);
        self.on_node(node, |c| {
            c.held = c.held.saturating_sub(1);
            c.disconnects += 1;
        });
    }
    pub(crate) fn token_expired(&self) {
        self.live.borrow_mut().p.token_expiries += 1;
    }
    /// Counter updates of the stuck consumers ([`crate::stuck`]).
    pub(crate) fn stuck(&self, f: impl FnOnce(&mut Progress)) {
        f(&mut self.live.borrow_mut().p);
    }
    pub(crate) fn dropped(&self, node: usize) {
        self.live.borrow_mut().p.drops += 1;
        self.on_node(node, |c| c.drops += 1);
    }
    pub(crate) fn pending_at_stop(&self) {
        self.live.borrow_mut().p.pending_at_stop += 1;
    }
    pub(crate) fn reconnecting(&self) {
        self.live.borrow_mut().p.reconnects += 1;
    }

    fn snapshot(&self) -> Progress {
        let l = self.live.borrow();
        let mut p = l.p.clone();
        p.hist = histo::to_hex(&l.hist);
        p
    }
}

/// Runs a shard until the coordinator's `Log` arrives (or its channel closes); every
/// message for the coordinator goes to `out`. Must run inside a `LocalSet`.
pub async fn run_shard(
    cfg: SwarmConfig,
    mut control: mpsc::UnboundedReceiver<Control>,
    out: mpsc::UnboundedSender<WorkerMsg>,
) {
    // Before any connection opens; this is the runtime's only thread (current_thread).
    if let Err(e) = crate::sched::apply(cfg.sched) {
        eprintln!("worker {}: {e}; continuing with the inherited policy", cfg.worker);
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let p = Progress { nodes: vec![NodeCounters::default(); cfg.nodes.len()], ..Progress::default() };
    let shard = Rc::new(Shard {
        live: RefCell::new(Live { p, hist: histo::new(), error_kinds: BTreeMap::new() }),
        stop: stop_rx,
        cfg,
    });
    let cfg = &shard.cfg;
    let workers = u64::from(cfg.workers.max(1));
    let w = u64::from(cfg.worker);
    let mut tasks: JoinSet<SubscriberResult> = JoinSet::new();
    let t0 = Instant::now();
    let rate = if cfg.connect_rate > 0.0 { cfg.connect_rate } else { f64::INFINITY };
    let mut g = w;
    while g < cfg.initial_total {
        let at = t0 + Duration::from_secs_f64(g as f64 / rate);
        spawn_one(&mut tasks, &shard, g, at, true);
        g += workers;
    }
    let mut started = tasks.len() as u64;
    // Stuck consumers: outside the accounting (they owe nothing and are owed nothing),
    // started with the initial ramp, stopped with the run.
    let mut stuck_tasks: JoinSet<()> = JoinSet::new();
    if let Some(st) = cfg.stuck.clone() {
        let mut k = w;
        while k < st.count {
            let at = t0 + Duration::from_secs_f64(k as f64 / st.count.max(1) as f64 * st.spread_s.max(0.0));
            stuck_tasks.spawn_local(crate::stuck::run(shard.clone(), k, at, st.clone()));
            k += workers;
        }
    }
    let mut results: Vec<SubscriberResult> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    // Phase 1: until Stop (or the coordinator vanishes).
    loop {
        tokio::select! {
            _ = tick.tick() => { let _ = out.send(WorkerMsg::Progress(shard.snapshot())); }
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                // A subscriber that ended early (closed at lifetime end, gave up):
                // keep its result for the tally.
                if let Ok(r) = done { results.push(r); }
            }
            msg = control.recv() => match msg {
                Some(Control::Start) => {
                    let start = Instant::now();
                    let ramp = cfg.arrivals;
                    let mut j = w;
                    while let Some(due) = ramp.due(j) {
                        spawn_one(&mut tasks, &shard, cfg.initial_total + j, start + due, false);
                        started += 1;
                        j += workers;
                    }
                }
                Some(Control::Config(_)) | Some(Control::Log(_)) => {}
                Some(Control::Stop) | None => break,
            }
        }
    }
    let _ = stop_tx.send(true);
    while stuck_tasks.join_next().await.is_some() {}
    while let Some(done) = tasks.join_next().await {
        if let Ok(r) = done {
            results.push(r);
        }
    }
    let _ = out.send(WorkerMsg::Progress(shard.snapshot()));
    // Phase 2: wait for the publish log.
    let log = loop {
        match control.recv().await {
            Some(Control::Log(log)) => break log,
            Some(_) => continue,
            None => break PublishLog::default(),
        }
    };
    let indexed: Vec<IndexedTopic<'_>> = log.topics.iter().map(IndexedTopic::new).collect();
    let mut tally = Tally::default();
    let mut node_tallies = vec![Tally::default(); cfg.nodes.len()];
    let mut never = 0;
    let owed_private = cfg.subscriber_jwt.is_some();
    // MERCURE_LOADGEN_DEBUG_LOSS=1: print each lossy session on stderr.
    let debug_loss = std::env::var_os("MERCURE_LOADGEN_DEBUG_LOSS").is_some();
    for r in &results {
        if r.sessions.is_empty() {
            never += 1;
        }
        let matched = cfg.topics.selector_for(cfg.selector, r.index).topics;
        for s in &r.sessions {
            let t = tally_session(s, &indexed, matched, cfg.private, owed_private);
            if t.lost > 0 && debug_loss {
                // Diagnostics for a lossy session: its window and what it received.
                let ranges: Vec<String> =
                    s.received.iter().map(|(k, set)| format!("topic {k}: {:?}", set.ranges())).collect();
                eprintln!(
                    "loss: subscriber {} window [{}, {}] closed {} lost {} of {}; received {}",
                    r.index,
                    s.start,
                    s.end,
                    s.closed,
                    t.lost,
                    t.expected,
                    ranges.join("; ")
                );
            }
            tally.add(&t);
            if let Some(nt) = node_tallies.get_mut(crate::nodes::subscriber_node(r.index, cfg.nodes.len())) {
                nt.add(&t);
            }
        }
    }
    let l = shard.live.borrow();
    let fin = ShardFinal {
        progress: shard.snapshot(),
        error_kinds: l.error_kinds.clone(),
        tally,
        subscribers: started,
        never_connected: never,
        node_tallies,
    };
    let _ = out.send(WorkerMsg::Final(Box::new(fin)));
}

fn spawn_one(tasks: &mut JoinSet<SubscriberResult>, shard: &Rc<Shard>, g: u64, at: Instant, initial: bool) {
    let cfg = &shard.cfg;
    let selector = cfg.topics.selector_for(cfg.selector, g);
    let lifetime = if cfg.lifetime_s > 0.0 {
        let min = cfg.min_lifetime_s.clamp(0.0, cfg.lifetime_s);
        let l =
            if cfg.random_lifetime { min + (cfg.lifetime_s - min) * uniform_from(g, cfg.seed) } else { cfg.lifetime_s };
        Some(Duration::from_secs_f64(l))
    } else {
        None
    };
    tasks.spawn_local(subscriber::run(shard.clone(), g, selector, at, lifetime, initial));
}
