//! Exact delivery accounting: what each subscriber session was owed, what it got.
//!
//! # The publish log
//! Publishes on one topic are serialized by the publisher (at most one in flight per
//! topic), so on each topic sequence number `s` is assigned in send order and
//! `start[s] <= ack[s] <= start[s+1]`: both columns of the [`TopicLog`] are sorted. That is
//! what makes the hub's order observable (any out-of-order arrival is the hub's doing) and
//! what lets a session's expectations be computed with two binary searches.
//!
//! # A session's window
//! A *session* is a run of connections of one subscriber joined by `Last-Event-ID`
//! resumption (a fresh connection starts a new session). Its window is `[start, end]`:
//! - `start` is when the first connection's response headers arrived (both our hub and
//!   dunglas/mercure register the subscriber before sending headers);
//! - `end` is when the last connection closed; if the loadgen closed it (lifetime over,
//!   end of run) the settle grace is subtracted, because updates acknowledged just
//!   before a client-side close may still be on the wire. At the end of a run publishing
//!   stops a full grace before subscribers close, so nothing is lost to this rule there.
//!
//! # Classification of a publish `p` on a topic the session's selector matches
//! - **expected**: `start <= p.start` and `p.ack <= end`, and the hub accepted it (200).
//!   Publishes made while a resumed session was reconnecting are expected too: that is
//!   what `Last-Event-ID` replay promises;
//! - **ambiguous**: it straddles a window edge (`p.start < start <= p.ack`, or it was
//!   sent before the session actually closed but not acknowledged by `end`), or the
//!   POST's outcome is unknown (timeout, reset). If it arrives it is counted as
//!   ambiguous, if not it is not a loss;
//! - everything else received is **unexpected** (published before the session, rejected
//!   by the hub, or on a topic the selector does not match).
//!
//! `lost = expected - delivered`, where `delivered` counts distinct expected sequence
//! numbers received. Duplicates and out-of-order arrivals are counted as they happen
//! (see [`crate::seqset`]). Private updates are expected only by subscribers that
//! present a JWT.

use crate::seqset::SeqSet;
use crate::topics::Matched;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Outcome of one publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Outcome {
    /// The hub answered 200.
    Accepted = 0,
    /// The hub answered something else.
    Rejected = 1,
    /// No answer (timeout, connection error): the hub may or may not have taken it.
    Unknown = 2,
}

/// One topic's publishes, indexed by sequence number.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TopicLog {
    /// Unix ns just before the POST was sent.
    pub start: Vec<u64>,
    /// Unix ns when the response (or the failure) came back.
    pub ack: Vec<u64>,
    /// [`Outcome`] as `u8`.
    pub outcome: Vec<u8>,
}

impl TopicLog {
    /// Appends the next sequence number's record; returns that sequence number.
    pub fn push(&mut self, start: u64, ack: u64, outcome: Outcome) -> u64 {
        self.start.push(start);
        self.ack.push(ack);
        self.outcome.push(outcome as u8);
        (self.start.len() - 1) as u64
    }

    /// Number of publishes logged.
    pub fn len(&self) -> usize {
        self.start.len()
    }

    /// True if nothing was published on this topic.
    pub fn is_empty(&self) -> bool {
        self.start.is_empty()
    }
}

/// Every topic's log, indexed by topic number.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PublishLog {
    /// One log per topic of the run.
    pub topics: Vec<TopicLog>,
}

/// A topic log with prefix sums, ready for window queries.
#[derive(Debug)]
pub struct IndexedTopic<'a> {
    log: &'a TopicLog,
    /// `accepted[i]` = accepted publishes among seq `< i`.
    accepted: Vec<u64>,
    /// `unknown[i]` = unknown-outcome publishes among seq `< i`.
    unknown: Vec<u64>,
}

impl<'a> IndexedTopic<'a> {
    /// Indexes one topic's log.
    pub fn new(log: &'a TopicLog) -> Self {
        let n = log.len();
        let mut accepted = Vec::with_capacity(n + 1);
        let mut unknown = Vec::with_capacity(n + 1);
        let (mut a, mut u) = (0, 0);
        accepted.push(0);
        unknown.push(0);
        for &o in &log.outcome {
            if o == Outcome::Accepted as u8 {
                a += 1;
            } else if o == Outcome::Unknown as u8 {
                u += 1;
            }
            accepted.push(a);
            unknown.push(u);
        }
        Self { log, accepted, unknown }
    }

    fn accepted_in(&self, lo: u64, hi_excl: u64) -> u64 {
        let n = self.log.len() as u64;
        let (lo, hi) = (lo.min(n) as usize, hi_excl.min(n) as usize);
        if lo >= hi { 0 } else { self.accepted[hi] - self.accepted[lo] }
    }

    fn unknown_in(&self, lo: u64, hi_excl: u64) -> u64 {
        let n = self.log.len() as u64;
        let (lo, hi) = (lo.min(n) as usize, hi_excl.min(n) as usize);
        if lo >= hi { 0 } else { self.unknown[hi] - self.unknown[lo] }
    }
}

/// Counts of one session, one subscriber, or a whole run (they add up).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Accepted publishes the subscribers were owed.
    pub expected: u64,
    /// Distinct expected publishes received.
    pub delivered: u64,
    /// `expected - delivered`.
    pub lost: u64,
    /// Received publishes on a window edge or with an unknown outcome.
    pub ambiguous: u64,
    /// Received publishes that were not owed (before the session, rejected, wrong topic).
    pub unexpected: u64,
    /// Repeated arrivals of the same sequence number in one session.
    pub duplicates: u64,
    /// Arrivals below the highest sequence number already received on that topic.
    pub out_of_order: u64,
    /// Sessions counted.
    pub sessions: u64,
    /// Sessions with at least one loss.
    pub sessions_with_loss: u64,
}

impl Tally {
    /// Adds another tally into this one.
    pub fn add(&mut self, o: &Tally) {
        self.expected += o.expected;
        self.delivered += o.delivered;
        self.lost += o.lost;
        self.ambiguous += o.ambiguous;
        self.unexpected += o.unexpected;
        self.duplicates += o.duplicates;
        self.out_of_order += o.out_of_order;
        self.sessions += o.sessions;
        self.sessions_with_loss += o.sessions_with_loss;
    }
}

/// What a session received, and its window.
#[derive(Debug, Default)]
pub struct SessionRecord {
    /// Window start, Unix ns (first connection's headers).
    pub start: u64,
    /// Window end, Unix ns: what is owed was acknowledged by then (the close minus the
    /// grace).
    pub end: u64,
    /// When the session actually closed, Unix ns: publishes sent between `end` and this
    /// may legitimately arrive (ambiguous, not unexpected).
    pub closed: u64,
    /// Received sequence numbers, per topic.
    pub received: HashMap<u32, SeqSet>,
}

/// Tallies one session against the publish log.
///
/// `matched` is the session's selector; `owed_private` says whether private updates are
/// owed to it (it presented a JWT) when `private` is set for the run.
pub fn tally_session(
    s: &SessionRecord,
    topics: &[IndexedTopic<'_>],
    matched: Matched,
    private: bool,
    owed_private: bool,
) -> Tally {
    let mut t = Tally { sessions: 1, ..Tally::default() };
    let owed = !private || owed_private;
    let mut visit = |k: u32, set: Option<&SeqSet>| {
        let (dup, ooo) = set.map_or((0, 0), |s| (s.duplicates, s.out_of_order));
        t.duplicates += dup;
        t.out_of_order += ooo;
        let received_total = set.map_or(0, SeqSet::len);
        let Some(topic) = topics.get(k as usize) else {
            t.unexpected += received_total;
            return;
        };
        let log = topic.log;
        // [lo, hi): fully inside the window.
        let lo = log.start.partition_point(|&x| x < s.start) as u64;
        let hi = log.ack.partition_point(|&x| x <= s.end) as u64;
        // [lo_amb, lo) and [hi, hi_amb): straddling an edge.
        let lo_amb = log.ack.partition_point(|&x| x < s.start) as u64;
        let hi_amb = log.start.partition_point(|&x| x <= s.end.max(s.closed)) as u64;
        let expected = if owed && hi > lo { topic.accepted_in(lo, hi) } else { 0 };
        let mut delivered = 0;
        let mut ambiguous = 0;
        if let Some(set) = set {
            if hi > lo {
                for &(a, b) in set.ranges() {
                    let (ca, cb) = (a.max(lo), b.saturating_add(1).min(hi));
                    if ca < cb {
                        if owed {
                            delivered += topic.accepted_in(ca, cb);
                        }
                        ambiguous += topic.unknown_in(ca, cb);
                    }
                }
            }
            if lo > lo_amb {
                ambiguous += set.count_in(lo_amb, lo - 1);
            }
            if hi_amb > hi {
                ambiguous += set.count_in(hi, hi_amb - 1);
            }
        }
        t.expected += expected;
        t.delivered += delivered;
        t.ambiguous += ambiguous;
        t.unexpected += received_total.saturating_sub(delivered + ambiguous);
    };
    match matched {
        Matched::One(k) => {
            visit(k, s.received.get(&k));
            for (&other, set) in &s.received {
                if other != k {
                    t.unexpected += set.len();
                    t.duplicates += set.duplicates;
                    t.out_of_order += set.out_of_order;
                }
            }
        }
        Matched::All => {
            let n = topics.len() as u32;
            for k in 0..n {
                visit(k, s.received.get(&k));
            }
            for (&other, set) in &s.received {
                if other >= n {
                    t.unexpected += set.len();
                }
            }
        }
    }
    t.lost = t.expected.saturating_sub(t.delivered);
    if t.lost > 0 {
        t.sessions_with_loss = 1;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ten accepted publishes at t = 10, 20, ... 100 (ack 5 ns later).
    fn log10() -> TopicLog {
        let mut l = TopicLog::default();
        for i in 1..=10u64 {
            l.push(i * 10, i * 10 + 5, Outcome::Accepted);
        }
        l
    }

    fn session(start: u64, end: u64, got: &[u64]) -> SessionRecord {
        let mut set = SeqSet::new();
        for &s in got {
            set.insert(s);
        }
        let mut received = HashMap::new();
        received.insert(0, set);
        SessionRecord { start, end, closed: end, received }
    }

    #[test]
    fn sent_before_a_client_close_is_ambiguous_not_unexpected() {
        let log = log10();
        let idx = [IndexedTopic::new(&log)];
        // Owed until 55 (close at 85 minus a grace of 30): seqs 0..=4 owed; seqs 5..=7
        // were sent before the close, so receiving them is fine; seq 8 (sent at 90) is not.
        let mut s = session(0, 55, &[0, 1, 2, 3, 4, 5, 6, 7, 8]);
        s.closed = 85;
        let t = tally_session(&s, &idx, Matched::One(0), false, false);
        assert_eq!((t.expected, t.delivered, t.lost), (5, 5, 0));
        assert_eq!((t.ambiguous, t.unexpected), (3, 1));
    }

    #[test]
    fn lossless_window() {
        let log = log10();
        let idx = [IndexedTopic::new(&log)];
        // Window [30, 75]: seqs 2..=6 expected (start 30..70, ack 35..75).
        let s = session(30, 75, &[2, 3, 4, 5, 6]);
        let t = tally_session(&s, &idx, Matched::One(0), false, false);
        assert_eq!((t.expected, t.delivered, t.lost, t.unexpected), (5, 5, 0, 0));
    }

    #[test]
    fn loss_edges_and_unexpected() {
        let log = log10();
        let idx = [IndexedTopic::new(&log)];
        // Window [33, 72]: seq 2 (30..35) and seq 6 (70..75) straddle the edges.
        // Received: 0 (before), 2 (edge), 3, 5 (4 lost), 6 (edge).
        let s = session(33, 72, &[0, 2, 3, 5, 6]);
        let t = tally_session(&s, &idx, Matched::One(0), false, false);
        assert_eq!(t.expected, 3); // 3, 4, 5
        assert_eq!(t.delivered, 2);
        assert_eq!(t.lost, 1);
        assert_eq!(t.ambiguous, 2);
        assert_eq!(t.unexpected, 1);
        assert_eq!(t.sessions_with_loss, 1);
    }

    #[test]
    fn rejected_and_unknown() {
        let mut log = TopicLog::default();
        log.push(10, 15, Outcome::Accepted);
        log.push(20, 25, Outcome::Rejected);
        log.push(30, 35, Outcome::Unknown);
        log.push(40, 45, Outcome::Accepted);
        let idx = [IndexedTopic::new(&log)];
        let s = session(0, 100, &[0, 1, 2]);
        let t = tally_session(&s, &idx, Matched::All, false, false);
        assert_eq!((t.expected, t.delivered, t.lost), (2, 1, 1));
        assert_eq!((t.ambiguous, t.unexpected), (1, 1));
    }

    #[test]
    fn private_not_owed_without_jwt() {
        let log = log10();
        let idx = [IndexedTopic::new(&log)];
        let s = session(0, 1000, &[]);
        let t = tally_session(&s, &idx, Matched::One(0), true, false);
        assert_eq!((t.expected, t.lost), (0, 0));
        let t = tally_session(&s, &idx, Matched::One(0), true, true);
        assert_eq!((t.expected, t.lost), (10, 10));
    }

    #[test]
    fn wrong_topic_is_unexpected() {
        let log = log10();
        let idx = [IndexedTopic::new(&log), IndexedTopic::new(&log)];
        let mut s = session(0, 1000, &[]);
        let mut other = SeqSet::new();
        other.insert(1);
        s.received.insert(1, other);
        let t = tally_session(&s, &idx, Matched::One(0), false, false);
        assert_eq!((t.expected, t.lost, t.unexpected), (10, 10, 1));
    }
}
