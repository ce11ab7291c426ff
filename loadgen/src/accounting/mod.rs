//! Exact delivery accounting: what each subscriber session was owed, what it got.
//!
//! # The publish log
//! On each topic, sequence number `s` is assigned together with the send time under the
//! topic's lock ([`crate::publisher`]), so the `start` column of a [`TopicLog`] is sorted.
//! Several publishes of a topic may be in flight at once, so acknowledgements come back in
//! any order and the `ack` column is not sorted; [`IndexedTopic`] keeps its running maximum
//! and its suffix minimum, which are sorted. A window query is then a handful of binary
//! searches plus a look at each publish whose acknowledgement straddles a window edge (those
//! in flight at that moment).
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
//!   `closed` is the actual close.
//!
//! # Classification of a publish `p` on a topic the session's selector matches
//! | where `p` is | accepted (200) | rejected | unknown outcome |
//! |---|---|---|---|
//! | *inside*: `start <= p.start` and `p.ack <= end` | **expected** | unexpected if received | ambiguous if received |
//! | *edge*: `p.start < start <= p.ack`, or `p.start >= start`, `p.ack > end` and `p.start <= closed` | ambiguous if received | unexpected if received | ambiguous if received |
//! | *before* (`p.ack < start`) or *after* (`p.start > closed`) | unexpected if received | unexpected if received | ambiguous if received |
//!
//! Publishes made while a resumed session was reconnecting are expected: that is what
//! `Last-Event-ID` replay promises. A rejected publish is never owed and must never be
//! delivered; a publish without a known outcome (timeout) may have been taken by the hub
//! at any time. When the run publishes private updates and the session presented no JWT,
//! nothing is expected and every accepted publish received is **unexpected**: a leak.
//! Received publishes on a topic the selector does not match, or beyond the log, are
//! unexpected too. `lost = expected - delivered`, where `delivered` counts distinct
//! expected sequence numbers received.
//!
//! # Order
//! A hub owes the order in which it acknowledged: if publish `a` was acknowledged before
//! publish `b` (same topic) was sent, `a` must arrive before `b`. A late arrival kept by the
//! [`SeqSet`] as `(s, m)` (`s` arrived after `m > s`) is therefore **out of order** when `s`
//! was accepted and acknowledged no later than `m` was sent; otherwise the two were in flight
//! together and either order is correct (counted as `reordered_concurrent`, not a fault).
//! With one publish in flight per topic this is exactly "a lower sequence number after a
//! higher one". Late arrivals the set could not keep are counted out of order.

mod examples;

pub use examples::{Examples, session_examples};

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
    /// Monotonic ns just before the POST was sent; non-decreasing in the sequence number.
    pub start: Vec<u64>,
    /// Monotonic ns when the response (or the failure) came back; any order.
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

    /// Fills in the answer of sequence number `seq` (no-op if there is none).
    pub fn answer(&mut self, seq: u64, ack: u64, outcome: Outcome) {
        let i = seq as usize;
        if let (Some(a), Some(o)) = (self.ack.get_mut(i), self.outcome.get_mut(i)) {
            *a = ack;
            *o = outcome as u8;
        }
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

/// A topic log with prefix sums and monotone views of `ack`, ready for window queries.
#[derive(Debug)]
pub struct IndexedTopic<'a> {
    pub(crate) log: &'a TopicLog,
    /// `accepted[i]` = accepted publishes among seq `< i`.
    accepted: Vec<u64>,
    /// `unknown[i]` = unknown-outcome publishes among seq `< i`.
    unknown: Vec<u64>,
    /// `ack_max[i]` = max of `ack[..=i]` (non-decreasing).
    ack_max: Vec<u64>,
    /// `ack_min_after[i]` = min of `ack[i..]` (non-decreasing).
    ack_min_after: Vec<u64>,
}

/// Where a publish is with respect to a session's window (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    Before,
    Edge,
    Inside,
    After,
}

/// A session's window.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    pub(crate) start: u64,
    pub(crate) end: u64,
    /// `max(end, closed)`: publishes sent by then may legitimately arrive.
    pub(crate) closed: u64,
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
        let mut ack_max = Vec::with_capacity(n);
        let mut m = 0;
        for &x in &log.ack {
            m = m.max(x);
            ack_max.push(m);
        }
        let mut ack_min_after = vec![0; n];
        let mut m = u64::MAX;
        for i in (0..n).rev() {
            m = m.min(log.ack[i]);
            ack_min_after[i] = m;
        }
        Self { log, accepted, unknown, ack_max, ack_min_after }
    }

    pub(crate) fn len(&self) -> u64 {
        self.log.len() as u64
    }

    fn clip(&self, lo: u64, hi_excl: u64) -> (usize, usize) {
        let n = self.len();
        (lo.min(n) as usize, hi_excl.min(n) as usize)
    }

    fn accepted_in(&self, lo: u64, hi_excl: u64) -> u64 {
        let (lo, hi) = self.clip(lo, hi_excl);
        if lo >= hi { 0 } else { self.accepted[hi] - self.accepted[lo] }
    }

    fn unknown_in(&self, lo: u64, hi_excl: u64) -> u64 {
        let (lo, hi) = self.clip(lo, hi_excl);
        if lo >= hi { 0 } else { self.unknown[hi] - self.unknown[lo] }
    }

    pub(crate) fn outcome(&self, i: u64) -> Option<u8> {
        self.log.outcome.get(i as usize).copied()
    }

    /// Where publish `i` (< len) is with respect to `w`.
    pub(crate) fn place(&self, i: u64, w: Window) -> Place {
        let (s, a) = (self.log.start[i as usize], self.log.ack[i as usize]);
        if s < w.start {
            if a < w.start { Place::Before } else { Place::Edge }
        } else if a <= w.end {
            Place::Inside
        } else if s <= w.closed {
            Place::Edge
        } else {
            Place::After
        }
    }

    /// The window's boundaries in sequence numbers (see [`Bounds`]).
    pub(crate) fn bounds(&self, w: Window) -> Bounds {
        let st = &self.log.start;
        let lo = st.partition_point(|&x| x < w.start) as u64;
        let a = self.ack_max.partition_point(|&x| x < w.start) as u64;
        let b = (self.ack_max.partition_point(|&x| x <= w.end) as u64).max(lo);
        let c = (self.ack_min_after.partition_point(|&x| x <= w.end) as u64).max(b);
        let hi = (st.partition_point(|&x| x <= w.closed) as u64).max(c);
        Bounds { a, lo, b, c, hi, n: self.len() }
    }
}

/// A window in sequence numbers, `0 <= a <= lo <= b <= c <= hi <= n`:
/// `[0, a)` before; `[a, lo)` before or edge (look at each); `[lo, b)` inside; `[b, c)`
/// inside or edge/after (look at each); `[c, hi)` edge; `[hi, n)` after.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    pub(crate) a: u64,
    pub(crate) lo: u64,
    pub(crate) b: u64,
    pub(crate) c: u64,
    pub(crate) hi: u64,
    pub(crate) n: u64,
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
    /// Received publishes that were not owed (before or after the session, rejected,
    /// private to a subscriber without a token, wrong topic).
    pub unexpected: u64,
    /// Repeated arrivals of the same sequence number in one session.
    pub duplicates: u64,
    /// Arrivals after a publish that was sent only once they had been acknowledged.
    pub out_of_order: u64,
    /// Arrivals after a higher sequence number that was in flight together with them:
    /// either order is correct (reported, not a fault).
    #[serde(default)]
    pub reordered_concurrent: u64,
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
        self.reordered_concurrent += o.reordered_concurrent;
        self.sessions += o.sessions;
        self.sessions_with_loss += o.sessions_with_loss;
    }
}

/// What a session received, and its window.
#[derive(Debug, Default)]
pub struct SessionRecord {
    /// Window start, monotonic ns (first connection's headers).
    pub start: u64,
    /// Window end, monotonic ns: what is owed was acknowledged by then (the close minus
    /// the grace).
    pub end: u64,
    /// When the session actually closed, monotonic ns: publishes sent between `end` and
    /// this may legitimately arrive (ambiguous, not unexpected).
    pub closed: u64,
    /// Received sequence numbers, per topic.
    pub received: HashMap<u32, SeqSet>,
}

impl SessionRecord {
    pub(crate) fn window(&self) -> Window {
        Window { start: self.start, end: self.end, closed: self.end.max(self.closed) }
    }
}

/// How a session is judged: its selector, and whether private updates are owed to it.
#[derive(Debug, Clone, Copy)]
pub struct Judge {
    /// The run topics its selector matches.
    pub matched: Matched,
    /// The run publishes private updates.
    pub private: bool,
    /// The session presented a JWT (private updates are owed to it).
    pub has_token: bool,
}

impl Judge {
    pub(crate) fn owed(&self) -> bool {
        !self.private || self.has_token
    }

    pub(crate) fn matches(&self, k: u32) -> bool {
        match self.matched {
            Matched::One(x) => x == k,
            Matched::All => true,
        }
    }
}

/// Tallies one session against the publish log.
pub fn tally_session(s: &SessionRecord, topics: &[IndexedTopic<'_>], judge: Judge) -> Tally {
    let mut t = Tally { sessions: 1, ..Tally::default() };
    let w = s.window();
    let owed = judge.owed();
    let mut visit = |k: u32, set: Option<&SeqSet>| {
        let topic = topics.get(k as usize).filter(|_| judge.matches(k));
        if let Some(set) = set {
            t.duplicates += set.duplicates;
            let (ooo, concurrent) = topics.get(k as usize).map_or((set.late_count(), 0), |tp| judge_order(set, tp));
            t.out_of_order += ooo;
            t.reordered_concurrent += concurrent;
        }
        let received_total = set.map_or(0, SeqSet::len);
        let Some(topic) = topic else {
            t.unexpected += received_total;
            return;
        };
        let b = topic.bounds(w);
        let mut expected = 0;
        if owed {
            expected += topic.accepted_in(b.lo, b.b);
            for i in b.b..b.c {
                if topic.outcome(i) == Some(Outcome::Accepted as u8) && topic.place(i, w) == Place::Inside {
                    expected += 1;
                }
            }
        }
        let (mut delivered, mut ambiguous) = (0, 0);
        if let Some(set) = set {
            for &(x, y) in set.ranges() {
                let (d, a) = received_range(topic, &b, w, owed, x, y.saturating_add(1));
                delivered += d;
                ambiguous += a;
            }
        }
        t.expected += expected;
        t.delivered += delivered;
        t.ambiguous += ambiguous;
        t.unexpected += received_total.saturating_sub(delivered + ambiguous);
    };
    match judge.matched {
        Matched::One(k) => visit(k, s.received.get(&k)),
        Matched::All => {
            for k in 0..topics.len() as u32 {
                visit(k, s.received.get(&k));
            }
        }
    }
    // Received on topics the loop above did not visit: not matched, or not in the run.
    for (&k, set) in &s.received {
        let visited = match judge.matched {
            Matched::One(x) => x == k,
            Matched::All => (k as usize) < topics.len(),
        };
        if !visited {
            t.unexpected += set.len();
            t.duplicates += set.duplicates;
            let (ooo, concurrent) = topics.get(k as usize).map_or((set.late_count(), 0), |tp| judge_order(set, tp));
            t.out_of_order += ooo;
            t.reordered_concurrent += concurrent;
        }
    }
    t.lost = t.expected.saturating_sub(t.delivered);
    if t.lost > 0 {
        t.sessions_with_loss = 1;
    }
    t
}

/// `(delivered, ambiguous)` among received sequence numbers `[x, y)` of one topic.
fn received_range(topic: &IndexedTopic<'_>, b: &Bounds, w: Window, owed: bool, x: u64, y: u64) -> (u64, u64) {
    let (mut delivered, mut ambiguous) = (0, 0);
    let seg = |lo: u64, hi: u64| -> Option<(u64, u64)> {
        let (l, h) = (x.max(lo), y.min(hi));
        (l < h).then_some((l, h))
    };
    // Before and after: only an unknown outcome is excused.
    for (lo, hi) in [(0, b.a), (b.hi, b.n)] {
        if let Some((l, h)) = seg(lo, hi) {
            ambiguous += topic.unknown_in(l, h);
        }
    }
    // Inside for sure.
    if let Some((l, h)) = seg(b.lo, b.b) {
        if owed {
            delivered += topic.accepted_in(l, h);
        }
        ambiguous += topic.unknown_in(l, h);
    }
    // Edge for sure: accepted ones (if owed) and unknown ones are excused.
    if let Some((l, h)) = seg(b.c, b.hi) {
        ambiguous += topic.unknown_in(l, h) + if owed { topic.accepted_in(l, h) } else { 0 };
    }
    // Mixed: look at each.
    for (lo, hi) in [(b.a, b.lo), (b.b, b.c)] {
        if let Some((l, h)) = seg(lo, hi) {
            for i in l..h {
                match (topic.outcome(i), topic.place(i, w)) {
                    (Some(o), _) if o == Outcome::Unknown as u8 => ambiguous += 1,
                    (Some(o), Place::Inside) if o == Outcome::Accepted as u8 && owed => delivered += 1,
                    (Some(o), Place::Edge) if o == Outcome::Accepted as u8 && owed => ambiguous += 1,
                    _ => {}
                }
            }
        }
    }
    (delivered, ambiguous)
}

/// `(out of order, reordered among concurrent publishes)` of one topic's late arrivals.
fn judge_order(set: &SeqSet, topic: &IndexedTopic<'_>) -> (u64, u64) {
    let (mut bad, mut concurrent) = (set.late_unkept, 0);
    for &(s, m) in set.late() {
        if is_out_of_order(topic, s, m) {
            bad += 1;
        } else {
            concurrent += 1;
        }
    }
    (bad, concurrent)
}

/// `s` arrived after `m`: wrong if `s` was accepted and acknowledged before `m` was sent.
pub(crate) fn is_out_of_order(topic: &IndexedTopic<'_>, s: u64, m: u64) -> bool {
    let log = topic.log;
    match (log.ack.get(s as usize), log.start.get(m as usize), topic.outcome(s)) {
        (Some(&ack), Some(&start), Some(o)) => o == Outcome::Accepted as u8 && ack <= start,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topics::uniform_from;

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

    fn one(k: u32) -> Judge {
        Judge { matched: Matched::One(k), private: false, has_token: false }
    }

    const ALL: Judge = Judge { matched: Matched::All, private: false, has_token: false };

    #[test]
    fn sent_before_a_client_close_is_ambiguous_not_unexpected() {
        let log = log10();
        let idx = [IndexedTopic::new(&log)];
        // Owed until 55 (close at 85 minus a grace of 30): seqs 0..=4 owed; seqs 5..=7
        // were sent before the close, so receiving them is fine; seq 8 (sent at 90) is not.
        let mut s = session(0, 55, &[0, 1, 2, 3, 4, 5, 6, 7, 8]);
        s.closed = 85;
        let t = tally_session(&s, &idx, one(0));
        assert_eq!((t.expected, t.delivered, t.lost), (5, 5, 0));
        assert_eq!((t.ambiguous, t.unexpected), (3, 1));
        let ex = session_examples(&s, &idx, one(0));
        assert_eq!(
            ex.unexpected.as_deref(),
            Some("topic 0: seq 8 received but not owed: published after the session closed")
        );
    }

    #[test]
    fn lossless_window() {
        let log = log10();
        let idx = [IndexedTopic::new(&log)];
        // Window [30, 75]: seqs 2..=6 expected (start 30..70, ack 35..75).
        let s = session(30, 75, &[2, 3, 4, 5, 6]);
        let t = tally_session(&s, &idx, one(0));
        assert_eq!((t.expected, t.delivered, t.lost, t.unexpected), (5, 5, 0, 0));
        assert_eq!(session_examples(&s, &idx, one(0)), Examples::default());
    }

    #[test]
    fn loss_edges_and_unexpected() {
        let log = log10();
        let idx = [IndexedTopic::new(&log)];
        // Window [33, 72]: seq 2 (30..35) and seq 6 (70..75) straddle the edges.
        // Received: 0 (before), 2 (edge), 3, 5 (4 lost), 6 (edge).
        let s = session(33, 72, &[0, 2, 3, 5, 6]);
        let t = tally_session(&s, &idx, one(0));
        assert_eq!(t.expected, 3); // 3, 4, 5
        assert_eq!(t.delivered, 2);
        assert_eq!(t.lost, 1);
        assert_eq!(t.ambiguous, 2);
        assert_eq!(t.unexpected, 1);
        assert_eq!(t.sessions_with_loss, 1);
        let ex = session_examples(&s, &idx, one(0));
        assert!(ex.lost.as_deref().is_some_and(|l| l.starts_with("topic 0: seq 4 ")), "{ex:?}");
        assert!(ex.unexpected.as_deref().is_some_and(|l| l.contains("seq 0") && l.contains("before the session")));
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
        let t = tally_session(&s, &idx, ALL);
        assert_eq!((t.expected, t.delivered, t.lost), (2, 1, 1));
        assert_eq!((t.ambiguous, t.unexpected), (1, 1));
        let ex = session_examples(&s, &idx, ALL);
        assert!(ex.unexpected.as_deref().is_some_and(|u| u.contains("seq 1") && u.contains("rejected")), "{ex:?}");
    }

    #[test]
    fn private_updates_are_neither_owed_to_nor_allowed_for_a_subscriber_without_a_token() {
        let log = log10();
        let idx = [IndexedTopic::new(&log)];
        let anonymous = Judge { matched: Matched::One(0), private: true, has_token: false };
        let t = tally_session(&session(0, 1000, &[]), &idx, anonymous);
        assert_eq!((t.expected, t.lost, t.unexpected), (0, 0, 0));
        // A hub that delivers them anyway leaks: every one is unexpected.
        let leaked = session(0, 1000, &[3, 4]);
        let t = tally_session(&leaked, &idx, anonymous);
        assert_eq!((t.expected, t.delivered, t.unexpected), (0, 0, 2));
        let ex = session_examples(&leaked, &idx, anonymous);
        assert!(ex.unexpected.as_deref().is_some_and(|u| u.contains("without a token")), "{ex:?}");
        let with_token = Judge { has_token: true, ..anonymous };
        let t = tally_session(&session(0, 1000, &[]), &idx, with_token);
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
        let t = tally_session(&s, &idx, one(0));
        assert_eq!((t.expected, t.lost, t.unexpected), (10, 10, 1));
        let ex = session_examples(&s, &idx, one(0));
        assert!(ex.unexpected.as_deref().is_some_and(|u| u.contains("does not match")), "{ex:?}");
    }

    #[test]
    fn order_is_judged_against_acknowledgements() {
        // seq 0: sent 10, acked 50; seq 1: sent 20 (while 0 was in flight), acked 30;
        // seq 2: sent 60 (after both were acknowledged), acked 70.
        let mut log = TopicLog::default();
        log.push(10, 50, Outcome::Accepted);
        log.push(20, 30, Outcome::Accepted);
        log.push(60, 70, Outcome::Accepted);
        let idx = [IndexedTopic::new(&log)];
        // 1 before 0: they were in flight together, either order is right.
        let t = tally_session(&session(0, 100, &[1, 0, 2]), &idx, one(0));
        assert_eq!((t.out_of_order, t.reordered_concurrent, t.lost), (0, 1, 0));
        // 2 before 1: 2 was sent after 1 was acknowledged.
        let s = session(0, 100, &[0, 2, 1]);
        let t = tally_session(&s, &idx, one(0));
        assert_eq!((t.out_of_order, t.reordered_concurrent), (1, 0));
        let ex = session_examples(&s, &idx, one(0));
        assert_eq!(
            ex.out_of_order.as_deref(),
            Some("topic 0: seq 1 arrived after seq 2, which was sent 0.000 ms after seq 1 was acknowledged")
        );
        // Duplicates are counted and shown.
        let t = tally_session(&session(0, 100, &[0, 1, 1, 2]), &idx, one(0));
        assert_eq!(t.duplicates, 1);
    }

    /// The classification table, one publish at a time: the reference the fast path must
    /// agree with.
    fn reference(s: &SessionRecord, logs: &[TopicLog], judge: Judge) -> (u64, u64, u64, u64) {
        let w = s.window();
        let owed = judge.owed();
        let (mut expected, mut delivered, mut ambiguous, mut unexpected) = (0, 0, 0, 0);
        for (k, log) in logs.iter().enumerate() {
            let k = k as u32;
            let set = s.received.get(&k);
            let got = |i: u64| set.is_some_and(|s| s.contains(i));
            for i in 0..log.len() as u64 {
                let (st, ack, o) = (log.start[i as usize], log.ack[i as usize], log.outcome[i as usize]);
                let place = if st < w.start {
                    if ack < w.start { Place::Before } else { Place::Edge }
                } else if ack <= w.end {
                    Place::Inside
                } else if st <= w.closed {
                    Place::Edge
                } else {
                    Place::After
                };
                let accepted = o == Outcome::Accepted as u8;
                let matched = judge.matches(k);
                if matched && owed && accepted && place == Place::Inside {
                    expected += 1;
                }
                if !got(i) {
                    continue;
                }
                if !matched {
                    unexpected += 1;
                } else if o == Outcome::Unknown as u8 {
                    ambiguous += 1;
                } else if !accepted || !owed {
                    unexpected += 1;
                } else {
                    match place {
                        Place::Inside => delivered += 1,
                        Place::Edge => ambiguous += 1,
                        Place::Before | Place::After => unexpected += 1,
                    }
                }
            }
            // Received beyond the log.
            unexpected += set.map_or(0, |s| s.count_in(log.len() as u64, u64::MAX));
        }
        (expected, delivered, ambiguous, unexpected)
    }

    #[test]
    fn fast_path_agrees_with_the_table_on_random_concurrent_logs() {
        let mut checked = 0;
        for seed in 0..300u64 {
            let r = |i: u64| uniform_from(i, seed * 7919);
            // Two topics; sends 0..100 apart; acks after 1..400 (many in flight), a few
            // very slow ones; random outcomes.
            let mut logs = vec![TopicLog::default(), TopicLog::default()];
            let mut t = 0;
            for i in 0..120u64 {
                t += (r(i) * 100.0) as u64;
                let rtt = if r(i + 1000) < 0.05 { 5000 } else { 1 + (r(i + 2000) * 400.0) as u64 };
                let o = match r(i + 3000) {
                    x if x < 0.8 => Outcome::Accepted,
                    x if x < 0.9 => Outcome::Rejected,
                    _ => Outcome::Unknown,
                };
                logs[(r(i + 4000) * 2.0) as usize].push(t, t + rtt, o);
            }
            let start = (r(5000) * 4000.0) as u64;
            let end = start + (r(5001) * 6000.0) as u64;
            let closed = end + (r(5002) * 500.0) as u64;
            let mut received = HashMap::new();
            for k in 0..2u32 {
                let mut set = SeqSet::new();
                for i in 0..130u64 {
                    if r(6000 + u64::from(k) * 200 + i) < 0.6 {
                        set.insert(i);
                    }
                }
                received.insert(k, set);
            }
            let s = SessionRecord { start, end, closed, received };
            let idx: Vec<IndexedTopic<'_>> = logs.iter().map(IndexedTopic::new).collect();
            for judge in [
                ALL,
                one(0),
                one(1),
                Judge { matched: Matched::All, private: true, has_token: false },
                Judge { matched: Matched::One(1), private: true, has_token: true },
            ] {
                let t = tally_session(&s, &idx, judge);
                assert_eq!(
                    (t.expected, t.delivered, t.ambiguous, t.unexpected),
                    reference(&s, &logs, judge),
                    "seed {seed}, {judge:?}"
                );
                assert_eq!(t.lost, t.expected - t.delivered);
                checked += 1;
            }
        }
        assert_eq!(checked, 1500);
    }
}
