//! The state one worker process's subscribers share, and the types both the swarm
//! ([`crate::swarm`], which owns the shard) and each subscriber ([`crate::subscriber`])
//! read: the worker's configuration ([`SwarmConfig`]), what a subscriber does when its
//! lifetime ends or the hub drops it ([`EndAction`], [`DropAction`]), how it presents its
//! token ([`AuthVia`]), and the live counters ([`Progress`], [`Live`]) behind [`Shard`].
//!
//! Kept apart so the two modules that use them do not import each other: `swarm` spawns
//! subscribers, subscribers update the shard, and neither needs the other's internals.
//!
//! Invariant: a shard lives on one single-threaded runtime (`LocalSet`); its live state is
//! a `RefCell` borrowed for a few counter updates and never across an `.await`.

use crate::arrivals::Ramp;
use crate::histo;
use crate::nodes::{NodeAddr, NodeCounters};
use crate::topics::{SelectorKind, TopicSpace};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::IpAddr;
use tokio::sync::watch;

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

/// How the subscriber JWT is presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthVia {
    /// `Authorization: Bearer <jwt>`.
    Header,
    /// `Cookie: mercureAuthorization=<jwt>`.
    Cookie,
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
    pub sched: crate::os_priority::WorkerSched,
    /// Shortest random lifetime, seconds (lifetimes are drawn in `[min, lifetime_s)`).
    #[serde(default)]
    pub min_lifetime_s: f64,
    /// Short-lived tokens for a share of the subscribers (soak).
    #[serde(default)]
    pub expiring: Option<crate::expiring::ExpiringTokens>,
    /// Stuck consumers owned by all workers together (soak).
    #[serde(default)]
    pub stuck: Option<crate::stuck::StuckConfig>,
    /// Share of the subscribers that present no token at all (`--anonymous-share`).
    #[serde(default)]
    pub anonymous_share: f64,
}

impl SwarmConfig {
    /// Whether subscriber `g` connects without any token (`--anonymous-share`).
    pub fn anonymous(&self, g: u64) -> bool {
        self.anonymous_share > 0.0 && crate::topics::uniform_from(g, self.seed ^ 0x0a11_0a11) < self.anonymous_share
    }

    /// Whether subscriber `g` presents a token: the run's subscriber token or a
    /// short-lived one, unless it is one of the anonymous share.
    pub fn has_token(&self, g: u64) -> bool {
        !self.anonymous(g) && (self.subscriber_jwt.is_some() || self.expiring.as_ref().is_some_and(|e| e.applies(g)))
    }
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
    /// Cumulative latency histogram from the publish's scheduled time (µs),
    /// [`histo::to_hex`].
    pub hist: String,
    /// Cumulative latency histogram from the publish's actual send time (µs).
    #[serde(default)]
    pub hist_send: String,
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

/// Live state shared by the shard's subscribers.
#[derive(Debug)]
pub struct Live {
    /// Counters.
    pub p: Progress,
    /// Latency from the scheduled time, µs.
    pub hist: Histogram<u64>,
    /// Latency from the send time, µs.
    pub hist_send: Histogram<u64>,
    /// Late arrivals the shard's sessions may still keep for judging (16 bytes each); see
    /// [`crate::seqset`].
    pub late_budget: u64,
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

    /// The live counters with the histograms encoded, as sent to the coordinator.
    pub(crate) fn snapshot(&self) -> Progress {
        let l = self.live.borrow();
        let mut p = l.p.clone();
        p.hist = histo::to_hex(&l.hist);
        p.hist_send = histo::to_hex(&l.hist_send);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(share: f64, jwt: Option<&str>) -> SwarmConfig {
        SwarmConfig {
            worker: 0,
            workers: 1,
            nodes: vec![],
            source_addr: None,
            run_id: String::new(),
            topics: TopicSpace { base: String::new(), count: 1, dialect: Default::default() },
            selector: SelectorKind::Exact,
            subscriber_jwt: jwt.map(str::to_owned),
            auth_via: AuthVia::Header,
            private: true,
            initial_total: 0,
            connect_rate: 0.0,
            arrivals: Ramp::constant(0.0, std::time::Duration::ZERO),
            lifetime_s: 0.0,
            random_lifetime: false,
            lifetime_end: EndAction::Close,
            on_drop: DropAction::Resume,
            reconnect_delay_ms: 0,
            connect_retries: 0,
            connect_timeout_ms: 0,
            settle_ns: 0,
            seed: 42,
            stall_after: None,
            stall_ms: 0,
            sched: crate::os_priority::WorkerSched::Batch,
            min_lifetime_s: 0.0,
            expiring: None,
            stuck: None,
            anonymous_share: share,
        }
    }

    #[test]
    fn the_anonymous_share_presents_no_token() {
        let c = cfg(0.3, Some("t"));
        let anonymous = (0..10_000).filter(|&g| c.anonymous(g)).count();
        assert!((2700..3300).contains(&anonymous), "{anonymous}");
        assert!((0..10_000).all(|g| c.has_token(g) != c.anonymous(g)));
        assert!((0..100).all(|g| !cfg(0.0, Some("t")).anonymous(g) && cfg(0.0, Some("t")).has_token(g)));
        assert!((0..100).all(|g| !cfg(0.0, None).has_token(g)));
    }
}
