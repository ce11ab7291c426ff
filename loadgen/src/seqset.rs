//! What one subscriber session received on one topic: a set of sequence numbers kept as
//! sorted, disjoint, non-adjacent ranges, plus duplicate and out-of-order counts.
//!
//! In the normal case (in-order, lossless) the set is a single range and inserting is O(1).
//! A gap costs one more range; a late arrival that fills a gap is found by binary search.
//!
//! Definitions (per session, per topic):
//! - *duplicate*: a sequence number already in the set arrives again;
//! - *out of order*: a new sequence number arrives that is below the highest one received.

/// Received sequence numbers of one topic in one session.
#[derive(Debug, Default, Clone)]
pub struct SeqSet {
    /// Sorted, disjoint, non-adjacent inclusive ranges.
    ranges: Vec<(u64, u64)>,
    /// Repeated arrivals.
    pub duplicates: u64,
    /// New arrivals below the maximum already received.
    pub out_of_order: u64,
}

impl SeqSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an arrival; returns `false` if it was a duplicate.
    pub fn insert(&mut self, s: u64) -> bool {
        // Fast path: extends the last range.
        if let Some(last) = self.ranges.last_mut() {
            if s == last.1.wrapping_add(1) && last.1 != u64::MAX {
                last.1 = s;
                return true;
            }
            if s > last.1 {
                self.ranges.push((s, s));
                return true;
            }
        } else {
            self.ranges.push((s, s));
            return true;
        }
        // s <= max: duplicate or out of order.
        let i = self.ranges.partition_point(|r| r.1 < s);
        if let Some(r) = self.ranges.get(i)
            && r.0 <= s
        {
            self.duplicates += 1;
            return false;
        }
        self.out_of_order += 1;
        // Insert s before ranges[i], merging with neighbours.
        let joins_prev = i > 0 && self.ranges[i - 1].1 + 1 == s;
        let joins_next = self.ranges.get(i).is_some_and(|r| r.0 == s + 1);
        match (joins_prev, joins_next) {
            (true, true) => {
                self.ranges[i - 1].1 = self.ranges[i].1;
                self.ranges.remove(i);
            }
            (true, false) => self.ranges[i - 1].1 = s,
            (false, true) => self.ranges[i].0 = s,
            (false, false) => self.ranges.insert(i, (s, s)),
        }
        true
    }

    /// Number of distinct sequence numbers received.
    pub fn len(&self) -> u64 {
        self.ranges.iter().map(|r| r.1 - r.0 + 1).sum()
    }

    /// True if nothing was received.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Number of received sequence numbers in the inclusive range `[lo, hi]`.
    pub fn count_in(&self, lo: u64, hi: u64) -> u64 {
        if lo > hi {
            return 0;
        }
        let start = self.ranges.partition_point(|r| r.1 < lo);
        let mut n = 0;
        for r in &self.ranges[start..] {
            if r.0 > hi {
                break;
            }
            n += r.1.min(hi) - r.0.max(lo) + 1;
        }
        n
    }

    /// The received ranges, for callers that need to walk them.
    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.ranges
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_is_one_range() {
        let mut s = SeqSet::new();
        for i in 0..1000 {
            assert!(s.insert(i));
        }
        assert_eq!(s.ranges(), &[(0, 999)]);
        assert_eq!((s.duplicates, s.out_of_order), (0, 0));
    }

    #[test]
    fn gaps_dupes_and_reorder() {
        let mut s = SeqSet::new();
        for i in [0, 1, 2, 5, 6, 3, 3, 9, 4, 0] {
            s.insert(i);
        }
        assert_eq!(s.ranges(), &[(0, 6), (9, 9)]);
        assert_eq!(s.duplicates, 2);
        assert_eq!(s.out_of_order, 2); // 3 and 4 arrived after 6
        assert_eq!(s.len(), 8);
        assert_eq!(s.count_in(2, 9), 6);
        assert_eq!(s.count_in(7, 8), 0);
        assert_eq!(s.count_in(5, 3), 0);
    }
}
