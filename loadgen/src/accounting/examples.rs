//! One example of each delivery fault, for the verdict: which subscriber, topic and
//! sequence number, and why. Slow on purpose (a walk over the session's window): a shard
//! calls it only for the first session that shows a fault it has no example of yet.

use super::{IndexedTopic, Judge, Outcome, Place, SessionRecord, Window, is_out_of_order};
use crate::seqset::SeqSet;
use crate::topics::Matched;
use serde::{Deserialize, Serialize};

/// One example of each fault a session shows, for the report (`None` where it has none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Examples {
    /// An expected publish that never arrived.
    pub lost: Option<String>,
    /// A publish received twice.
    pub duplicate: Option<String>,
    /// A publish received after one sent only once it had been acknowledged.
    pub out_of_order: Option<String>,
    /// A publish received that was not owed, and why.
    pub unexpected: Option<String>,
}

impl Examples {
    /// Fills every empty example from `other`.
    pub fn fill_from(&mut self, other: Examples) {
        self.lost = self.lost.take().or(other.lost);
        self.duplicate = self.duplicate.take().or(other.duplicate);
        self.out_of_order = self.out_of_order.take().or(other.out_of_order);
        self.unexpected = self.unexpected.take().or(other.unexpected);
    }

    /// Whether every kind has its example.
    pub fn is_full(&self) -> bool {
        self.lost.is_some() && self.duplicate.is_some() && self.out_of_order.is_some() && self.unexpected.is_some()
    }
}

/// The first example of each fault the session has (slow: call it only for a session
/// whose [`Tally`] shows faults, once per kind and shard).
pub fn session_examples(s: &SessionRecord, topics: &[IndexedTopic<'_>], judge: Judge) -> Examples {
    let mut ex = Examples::default();
    let w = s.window();
    let ms = |ns: u64| ns as f64 / 1e6;
    let mut keys: Vec<u32> = s.received.keys().copied().collect();
    if let Matched::One(k) = judge.matched {
        keys.push(k);
    } else {
        keys.extend(0..topics.len() as u32);
    }
    keys.sort_unstable();
    keys.dedup();
    for k in keys {
        let set = s.received.get(&k);
        let topic = topics.get(k as usize);
        if let Some(set) = set {
            if ex.duplicate.is_none()
                && let Some(d) = set.first_duplicate
            {
                ex.duplicate = Some(format!("topic {k}: seq {d} received more than once"));
            }
            if ex.out_of_order.is_none() {
                let bad =
                    topic.and_then(|tp| set.late().iter().find(|&&(a, m)| is_out_of_order(tp, a, m)).map(|p| (tp, p)));
                ex.out_of_order = match bad {
                    Some((tp, &(a, m))) => Some(format!(
                        "topic {k}: seq {a} arrived after seq {m}, which was sent {:.3} ms after seq {a} was acknowledged",
                        ms(tp.log.start[m as usize].saturating_sub(tp.log.ack[a as usize]))
                    )),
                    None if set.late_unkept > 0 => Some(format!(
                        "topic {k}: {} arrivals below a higher sequence number were not kept for judging \
                         (memory budget) and are counted out of order",
                        set.late_unkept
                    )),
                    None => None,
                };
            }
        }
        let Some(topic) = topic.filter(|_| judge.matches(k)) else {
            if ex.unexpected.is_none()
                && let Some(first) = set.and_then(|s| s.ranges().first())
            {
                let why = if (k as usize) < topics.len() {
                    "on a topic its selector does not match"
                } else {
                    "on a topic the run never published to"
                };
                ex.unexpected = Some(format!("topic {k}: seq {} received {why}", first.0));
            }
            continue;
        };
        let b = topic.bounds(w);
        if ex.lost.is_none() && judge.owed() {
            let missing = (b.lo..b.c).find(|&i| {
                topic.outcome(i) == Some(Outcome::Accepted as u8)
                    && topic.place(i, w) == Place::Inside
                    && !set.is_some_and(|s| s.contains(i))
            });
            if let Some(i) = missing {
                ex.lost = Some(format!(
                    "topic {k}: seq {i} (acknowledged {:.3} ms into the session, which owed until {:.3} ms) \
                     never arrived",
                    ms(topic.log.ack[i as usize].saturating_sub(w.start)),
                    ms(w.end.saturating_sub(w.start))
                ));
            }
        }
        if ex.unexpected.is_none()
            && let Some(set) = set
        {
            ex.unexpected = first_unexpected(set, topic, w, judge.owed())
                .map(|(i, why)| format!("topic {k}: seq {i} received but not owed: {why}"));
        }
    }
    ex
}

/// The first received sequence number that is unexpected, and why.
fn first_unexpected(set: &SeqSet, topic: &IndexedTopic<'_>, w: Window, owed: bool) -> Option<(u64, &'static str)> {
    for &(x, y) in set.ranges() {
        for i in x..=y {
            if i >= topic.len() {
                return Some((i, "not in the publish log"));
            }
            let o = topic.outcome(i);
            if o == Some(Outcome::Unknown as u8) {
                continue;
            }
            if o == Some(Outcome::Rejected as u8) {
                return Some((i, "the hub rejected that publish"));
            }
            match topic.place(i, w) {
                _ if !owed => return Some((i, "a private update to a subscriber without a token")),
                Place::Before => return Some((i, "acknowledged before the session started")),
                Place::After => return Some((i, "published after the session closed")),
                Place::Inside | Place::Edge => {}
            }
        }
    }
    None
}
