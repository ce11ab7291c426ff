//! Several hub nodes in one run: their addresses, who talks to which, and per-node counts.
//!
//! A multi-node hub is several processes sharing one ordered stream (our hub with a Redis
//! `transport_url`): an update published on any node reaches the matching subscribers on
//! every node, in the same order. The run is given the nodes' URLs (`--hub-url`, repeated
//! or comma-separated); a node is a *position* in that list, not a distinct URL, so the
//! same URL given twice makes two nodes that happen to be one hub.
//!
//! # Assignment (round-robin, fixed for the run)
//! - subscriber `g` (its global index, initial subscribers first, then arrivals) talks to
//!   node `g mod N` for its whole life, reconnections included ([`subscriber_node`]);
//!   stuck consumer `k` likewise to node `k mod N`;
//! - the publish with sequence number `s` on topic `k` goes to node `(k + s) mod N`
//!   ([`PublishSpread::RoundRobin`], the default), or every publish on topic `k` goes to
//!   node `k mod N` ([`PublishSpread::Topic`]).
//!
//! # Why the ordering check stays meaningful
//! Publishes on one topic are serialized (see [`crate::publisher`]): publish `s + 1` is
//! sent only after the hub acknowledged `s`. With round-robin consecutive publishes of a
//! topic go to different nodes, so an update arriving below a higher sequence number
//! means the hub delivered in an order other than the one its nodes acknowledged in: the
//! shared stream did not keep acknowledgement order (for example a node acknowledged
//! before appending). With `topic` the order is through one node only, and the check is
//! the single-node one, carried across nodes. The accounting itself never looks at
//! nodes: a subscriber is owed every matching publish acknowledged during its session,
//! whichever node took the publish and whichever node it is connected to.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// Which node a publish is sent to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum PublishSpread {
    /// Publish `s` on topic `k` to node `(k + s) mod N`: consecutive publishes of a topic
    /// alternate nodes.
    #[default]
    RoundRobin,
    /// Every publish on topic `k` to node `k mod N`.
    Topic,
}

impl PublishSpread {
    /// The name used in flags and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RoundRobin => "round-robin",
            Self::Topic => "topic",
        }
    }
}

/// The node subscriber (or stuck consumer) `g` talks to, out of `nodes`.
pub fn subscriber_node(g: u64, nodes: usize) -> usize {
    (g % nodes.max(1) as u64) as usize
}

/// The node the publish with sequence `seq` on topic `k` goes to, out of `nodes`.
pub fn publish_node(spread: PublishSpread, k: u32, seq: u64, nodes: usize) -> usize {
    let n = nodes.max(1) as u64;
    match spread {
        PublishSpread::RoundRobin => ((u64::from(k) % n + seq % n) % n) as usize,
        PublishSpread::Topic => (u64::from(k) % n) as usize,
    }
}

/// How many of subscribers `0..total` [`subscriber_node`] gives to node `node`.
pub fn subscribers_on(node: usize, total: u64, nodes: usize) -> u64 {
    let n = nodes.max(1) as u64;
    total / n + u64::from((node as u64) < total % n)
}

/// Splits `--hub-url`-style values: each may hold several comma-separated URLs; blanks
/// are dropped.
pub fn split_urls(values: &[String]) -> Vec<String> {
    values.iter().flat_map(|v| v.split(',')).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// Where a worker connects for one node: resolved once by the coordinator.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeAddr {
    /// Resolved hub address.
    pub target: SocketAddr,
    /// `Host` header value.
    pub host_header: String,
    /// Path (and query, if any) of the hub URL.
    pub path: String,
}

/// Live counters of one node, as one worker sees them (cumulative, except `held` and
/// `stuck_open`, which are current).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeCounters {
    /// Subscriber connections open now.
    pub held: u64,
    /// Most subscriber connections open at once.
    pub peak_held: u64,
    /// Connection attempts.
    pub connect_attempts: u64,
    /// Successful connections.
    pub connects: u64,
    /// Failed connection attempts.
    pub connect_errors: u64,
    /// Connections closed (either side) after they were established.
    pub disconnects: u64,
    /// Streams ended by the hub.
    pub drops: u64,
    /// Events received (ours or not).
    pub events: u64,
    /// Stuck consumers connecting or connected now.
    pub stuck_open: u64,
}

impl NodeCounters {
    /// Adds another node's counters (for `held`/`stuck_open`: the sum of current values;
    /// for `peak_held`: the sum of peaks, an upper bound with churn).
    pub fn add(&mut self, o: &NodeCounters) {
        self.held += o.held;
        self.peak_held += o.peak_held;
        self.connect_attempts += o.connect_attempts;
        self.connects += o.connects;
        self.connect_errors += o.connect_errors;
        self.disconnects += o.disconnects;
        self.drops += o.drops;
        self.events += o.events;
        self.stuck_open += o.stuck_open;
    }
}

/// Sums per-node vectors element-wise into `into` (growing it as needed).
pub fn add_all(into: &mut Vec<NodeCounters>, from: &[NodeCounters]) {
    if into.len() < from.len() {
        into.resize(from.len(), NodeCounters::default());
    }
    for (a, b) in into.iter_mut().zip(from) {
        a.add(b);
    }
}

/// One node's part of the report (`nodes[]`): what was held on it and delivered through
/// it. The totals of the report are the sums of these (peaks: the sum is an upper bound
/// of the whole run's peak with churn).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NodeReport {
    /// The node's URL, as given.
    pub url: String,
    /// Subscribers assigned to it (initial + scheduled arrivals).
    pub requested: u64,
    /// Its connections open when publishing started.
    pub initial_held: u64,
    /// Its most connections open at once (sum of the workers' peaks).
    pub peak_held: u64,
    /// Its connections open when the run stopped.
    pub held_at_stop: u64,
    /// Connection attempts / failures / streams it ended.
    pub attempts: u64,
    /// See `attempts`.
    pub errors: u64,
    /// See `attempts`.
    pub server_drops: u64,
    /// Publishes sent to it / accepted by it.
    pub publishes_sent: u64,
    /// See `publishes_sent`.
    pub publishes_accepted: u64,
    /// Delivery accounting of the sessions of its subscribers (whichever node took the
    /// publishes).
    pub delivery: crate::accounting::Tally,
    /// Events its subscribers read (ours or not).
    pub events_received: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribers_round_robin_and_counts_add_up() {
        let n = 3;
        let got: Vec<usize> = (0..7).map(|g| subscriber_node(g, n)).collect();
        assert_eq!(got, [0, 1, 2, 0, 1, 2, 0]);
        let per: Vec<u64> = (0..n).map(|j| subscribers_on(j, 7, n)).collect();
        assert_eq!(per, [3, 2, 2]);
        for total in 0..50u64 {
            for n in 1..6 {
                let counted: Vec<u64> =
                    (0..n).map(|j| (0..total).filter(|&g| subscriber_node(g, n) == j).count() as u64).collect();
                let formula: Vec<u64> = (0..n).map(|j| subscribers_on(j, total, n)).collect();
                assert_eq!(counted, formula, "total {total} nodes {n}");
            }
        }
        // One node (or a nonsensical zero) is today's behaviour: everything on node 0.
        assert!((0..10).all(|g| subscriber_node(g, 1) == 0 && subscriber_node(g, 0) == 0));
    }

    #[test]
    fn publishes_alternate_nodes_per_topic_or_stay_on_the_topics_node() {
        // Round-robin: consecutive publishes of one topic never hit the same node twice
        // in a row (with 2+ nodes), and topics start on different nodes.
        let rr: Vec<usize> = (0..4).map(|s| publish_node(PublishSpread::RoundRobin, 0, s, 2)).collect();
        assert_eq!(rr, [0, 1, 0, 1]);
        let rr1: Vec<usize> = (0..4).map(|s| publish_node(PublishSpread::RoundRobin, 1, s, 2)).collect();
        assert_eq!(rr1, [1, 0, 1, 0]);
        // Even spread over 3 nodes for a single topic.
        let mut per = [0u32; 3];
        for s in 0..300 {
            per[publish_node(PublishSpread::RoundRobin, 0, s, 3)] += 1;
        }
        assert_eq!(per, [100, 100, 100]);
        // Topic: fixed per topic.
        assert!((0..10).all(|s| publish_node(PublishSpread::Topic, 4, s, 3) == 1));
        assert!((0..10).all(|s| publish_node(PublishSpread::RoundRobin, 7, s, 1) == 0));
        // No overflow at the edges.
        assert!(publish_node(PublishSpread::RoundRobin, u32::MAX, u64::MAX, 7) < 7);
    }

    #[test]
    fn urls_split_on_commas_and_repeats() {
        let v = vec!["http://a/x, http://b/x".to_string(), "http://a/x".to_string(), " ,".to_string()];
        assert_eq!(split_urls(&v), ["http://a/x", "http://b/x", "http://a/x"]);
    }

    #[test]
    fn counters_add_element_wise() {
        let mut a = vec![NodeCounters { held: 1, ..NodeCounters::default() }];
        add_all(
            &mut a,
            &[NodeCounters { held: 2, ..Default::default() }, NodeCounters { held: 5, ..Default::default() }],
        );
        assert_eq!(a.iter().map(|c| c.held).collect::<Vec<_>>(), [3, 5]);
    }
}
