//! The retained window: updates in sequence order, bounded by count, bytes and age, with an
//! index from update id to sequence number for `Last-Event-ID` look-ups.
//!
//! Invariants: `entries` is sorted by `seq` (appends come from under the dispatch lock, in
//! order); `bytes` is the sum of the retained updates' footprints (what they hold in memory,
//! see `footprint`); `by_id` maps each id to the sequence number of its earliest retained
//! copy (an id published twice resolves to the first copy still retained; see `dups`).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::update::Update;

use super::Retention;

/// What a subscriber asked to resume from.
pub const EARLIEST: &str = "earliest";

struct Entry {
    seq: u64,
    /// Milliseconds since the Unix epoch, for `max_age` (survives restarts, unlike `Instant`).
    at_ms: u64,
    update: Arc<Update>,
}

pub struct Window {
    entries: VecDeque<Entry>,
    by_id: HashMap<Box<str>, u64>,
    /// For ids retained more than once (publishers may reuse an id): the later copies'
    /// sequence numbers, oldest first. `by_id` points at the earliest copy, and when that
    /// one is trimmed it moves to the next from here. Empty unless ids repeat.
    dups: HashMap<Box<str>, std::collections::VecDeque<u64>>,
    bytes: usize,
    retention: Retention,
}

/// The part of the window a reconnecting subscriber gets.
pub struct Replay {
    /// Updates after the requested one, oldest first, up to the subscription point.
    pub updates: Vec<Arc<Update>>,
    /// The `Last-Event-ID` response header: the id of the update preceding the first one
    /// replayed, or `earliest`.
    pub last_event_id: String,
}

/// What one retained update costs in memory, as counted against `max_bytes`: the update itself
/// (one copy of its wire form and its routing fields, see [`Update::footprint`]), its slot in
/// `entries`, and its `by_id` entry (a second copy of the id and the map's slot). Allocator
/// rounding is not counted: it depends on the allocator's size classes.
fn footprint(update: &Update) -> usize {
    update.footprint() + size_of::<Entry>() + size_of::<(Box<str>, u64)>() + update.id.len()
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Window {
    pub fn new(retention: Retention) -> Self {
        Window { entries: VecDeque::new(), by_id: HashMap::new(), dups: HashMap::new(), bytes: 0, retention }
    }

    /// Appends an update and trims to the retention bounds. Returns the lowest sequence number
    /// still retained (everything below it may be deleted from disk).
    pub fn push(&mut self, seq: u64, update: Arc<Update>, at_ms: u64) -> u64 {
        self.bytes += footprint(&update);
        // A repeated id resolves to its earliest retained copy (as scanning a log from its start
        // would find it), so the later copies only wait their turn in `dups`.
        match self.by_id.entry(update.id.clone()) {
            std::collections::hash_map::Entry::Occupied(_) => {
                self.dups.entry(update.id.clone()).or_default().push_back(seq);
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(seq);
            }
        }
        self.entries.push_back(Entry { seq, at_ms, update });
        self.trim(at_ms);
        self.low_water(seq)
    }

    /// The lowest retained sequence number (or `next` when empty).
    fn low_water(&self, next: u64) -> u64 {
        self.entries.front().map_or(next, |e| e.seq)
    }

    fn trim(&mut self, now_ms: u64) {
        let max_events = self.retention.max_events.unwrap_or(usize::MAX);
        let oldest_ms = self.retention.max_age.map(|a| now_ms.saturating_sub(a.as_millis() as u64));
        while let Some(front) = self.entries.front() {
            let over = self.entries.len() > max_events
                || self.bytes > self.retention.max_bytes
                || oldest_ms.is_some_and(|o| front.at_ms < o);
            if !over {
                break;
            }
            let Some(e) = self.entries.pop_front() else { break };
            self.bytes -= footprint(&e.update);
            if self.by_id.get(&e.update.id) == Some(&e.seq) {
                let next = self.dups.get_mut(&e.update.id).and_then(VecDeque::pop_front);
                match next {
                    Some(later) => {
                        self.by_id.insert(e.update.id.clone(), later);
                        if self.dups.get(&e.update.id).is_some_and(VecDeque::is_empty) {
                            self.dups.remove(&e.update.id);
                        }
                    }
                    None => {
                        self.by_id.remove(&e.update.id);
                    }
                }
            }
        }
    }

    /// The updates after `from` (an id, or `earliest`) up to and including sequence `upto`.
    /// An unknown id replays the whole window: it was trimmed away or never seen here, and
    /// sending too much is safer than sending nothing.
    pub fn replay(&self, from: &str, upto: u64) -> Replay {
        let oldest_ms = self.retention.max_age.map(|a| now_ms().saturating_sub(a.as_millis() as u64));
        let (after_seq, header) = match (from != EARLIEST).then(|| self.by_id.get(from)).flatten() {
            Some(seq) => (*seq, from.to_owned()),
            None => (0, EARLIEST.to_owned()),
        };
        // Entries are sorted by seq: skip to the first one after `after_seq`.
        let start = self.entries.partition_point(|e| e.seq <= after_seq);
        let updates = self
            .entries
            .range(start..)
            .take_while(|e| e.seq <= upto)
            .filter(|e| oldest_ms.is_none_or(|o| e.at_ms >= o))
            .map(|e| e.update.clone())
            .collect();
        Replay { updates, last_event_id: header }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The id of the newest retained update.
    pub fn last_id(&self) -> Option<String> {
        self.entries.back().map(|e| e.update.id.to_string())
    }

    /// Clippy's companion to `len` when the type is public (benches' `internals` feature).
    #[cfg(feature = "internals")]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes retained, as counted against `max_bytes` (metrics, tests).
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(id: &str) -> Arc<Update> {
        Arc::new(Update::new(id.into(), vec!["t".into()], false, None, None, "d".into()))
    }

    fn ids(r: &Replay) -> Vec<&str> {
        r.updates.iter().map(|u| &*u.id).collect()
    }

    #[test]
    fn a_repeated_id_resolves_to_its_earliest_retained_copy() {
        let mut w = Window::new(Retention { max_events: Some(4), ..Retention::default() });
        for (seq, id) in [(1, "a"), (2, "x"), (3, "b"), (4, "x"), (5, "c")] {
            w.push(seq, up(id), now_ms());
        }
        // `a` was trimmed; `x` is retained twice (seq 2 and 4): replay starts after the first.
        assert_eq!(ids(&w.replay("x", 5)), ["b", "x", "c"]);
        w.push(6, up("d"), now_ms()); // trims seq 2: `x` now resolves to seq 4
        assert_eq!(ids(&w.replay("x", 6)), ["c", "d"]);
        w.push(7, up("e"), now_ms());
        w.push(8, up("f"), now_ms()); // trims seq 4: `x` is gone, read as unknown
        let r = w.replay("x", 8);
        assert_eq!((ids(&r), r.last_event_id.as_str()), (vec!["c", "d", "e", "f"], "earliest"));
        assert!(w.dups.is_empty() && !w.by_id.contains_key("x"));
    }

    #[test]
    fn replays_after_an_id_up_to_the_subscription_point() {
        let mut w = Window::new(Retention { max_events: Some(10), max_bytes: 1 << 20, max_age: None });
        for (i, id) in ["a", "b", "c", "d"].iter().enumerate() {
            w.push(i as u64 + 1, up(id), 0);
        }
        let r = w.replay("b", 3);
        assert_eq!(ids(&r), ["c"]);
        assert_eq!(r.last_event_id, "b");
        let r = w.replay(EARLIEST, 4);
        assert_eq!(ids(&r), ["a", "b", "c", "d"]);
        assert_eq!(r.last_event_id, "earliest");
        let r = w.replay("unknown", 4);
        assert_eq!(ids(&r).len(), 4);
        assert_eq!(r.last_event_id, "earliest");
    }

    #[test]
    fn trims_by_count_and_bytes_and_age() {
        let mut w = Window::new(Retention { max_events: Some(2), max_bytes: 1 << 20, max_age: None });
        w.push(1, up("a"), 0);
        w.push(2, up("b"), 0);
        assert_eq!(w.push(3, up("c"), 0), 2);
        assert_eq!(w.len(), 2);
        assert_eq!(w.replay("a", 9).last_event_id, "earliest");

        let one = footprint(&up("x"));
        let mut w = Window::new(Retention { max_events: None, max_bytes: one * 2, max_age: None });
        for i in 1..=5 {
            w.push(i, up("x"), 0);
        }
        assert_eq!(w.len(), 2);
        assert_eq!(w.bytes(), one * 2);

        let mut w = Window::new(Retention {
            max_events: None,
            max_bytes: 1 << 20,
            max_age: Some(std::time::Duration::from_secs(1)),
        });
        w.push(1, up("old"), 1_000);
        w.push(2, up("new"), 5_000);
        assert_eq!(w.len(), 1);
    }
}
