//! What one subscriber session received on one topic: a set of sequence numbers kept as
//! sorted, disjoint, non-adjacent ranges, plus duplicate and out-of-order counts.
//!
//! In the normal case (in-order, lossless) the set is a single range and inserting is O(1).
//! A gap costs one more range; a late arrival that fills a gap is found by binary search.
//!
//! Definitions (per session, per topic):
//! - *duplicate*: a sequence number already in the set arrives again;
//! - *late arrival*: a new sequence number arrives below the highest one received. Whether
//!   that is a fault depends on the publish log, which the set does not have: publishes in
//!   flight together may arrive in either order, but one acknowledged before the other was
//!   sent must arrive first. So each late arrival is kept as `(seq, highest received then)`
//!   and judged at tally time ([`crate::accounting`]); the highest one received is the
//!   strongest witness, because send times grow with sequence numbers.
//!
//! Memory: a late arrival costs 16 bytes, kept only while the caller's budget allows (the
//! worker shares one budget among its sessions); one that could not be kept is counted in
//! `late_unkept` and judged out of order, never silently passed.

/// Received sequence numbers of one topic in one session.
#[derive(Debug, Default, Clone)]
pub struct SeqSet {
    /// Sorted, disjoint, non-adjacent inclusive ranges.
    ranges: Vec<(u64, u64)>,
    /// Repeated arrivals.
    pub duplicates: u64,
    /// The first repeated sequence number, for the report's example.
    pub first_duplicate: Option<u64>,
    /// Late arrivals, `(seq, highest seq received before it)`, in arrival order.
    late: Vec<(u64, u64)>,
    /// Late arrivals that were not kept (the budget was spent).
    pub late_unkept: u64,
}

impl SeqSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an arrival, keeping a late arrival's pair (unlimited budget); returns
    /// `false` if it was a duplicate.
    pub fn insert(&mut self, s: u64) -> bool {
        self.insert_with(s, &mut || true)
    }

    /// Records an arrival; a late arrival's pair is kept only if `keep_late()` says so
    /// (called once per late arrival). Returns `false` if it was a duplicate.
    pub fn insert_with(&mut self, s: u64, keep_late: &mut dyn FnMut() -> bool) -> bool {
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
            self.first_duplicate.get_or_insert(s);
            return false;
        }
        let max = self.ranges.last().map_or(s, |r| r.1);
        if keep_late() {
            self.late.push((s, max));
        } else {
            self.late_unkept += 1;
        }
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

    /// Whether `s` was received.
    pub fn contains(&self, s: u64) -> bool {
        let i = self.ranges.partition_point(|r| r.1 < s);
        self.ranges.get(i).is_some_and(|r| r.0 <= s)
    }

    /// The kept late arrivals, `(seq, highest seq received before it)`.
    pub fn late(&self) -> &[(u64, u64)] {
        &self.late
    }

    /// Every late arrival, kept or not.
    pub fn late_count(&self) -> u64 {
        self.late.len() as u64 + self.late_unkept
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
        assert_eq!((s.duplicates, s.late_count()), (0, 0));
    }

    #[test]
    fn gaps_dupes_and_reorder() {
        let mut s = SeqSet::new();
        for i in [0, 1, 2, 5, 6, 3, 3, 9, 4, 0] {
            s.insert(i);
        }
        assert_eq!(s.ranges(), &[(0, 6), (9, 9)]);
        assert_eq!(s.duplicates, 2);
        assert_eq!(s.first_duplicate, Some(3));
        // 3 and 4 arrived after 6, each kept with the highest seen before it.
        assert_eq!(s.late(), &[(3, 6), (4, 9)]);
        assert!(s.contains(4) && s.contains(9) && !s.contains(7) && !s.contains(10));
        assert_eq!(s.len(), 8);
        assert_eq!(s.count_in(2, 9), 6);
        assert_eq!(s.count_in(7, 8), 0);
        assert_eq!(s.count_in(5, 3), 0);
    }

    #[test]
    fn late_pairs_beyond_the_budget_are_counted_not_kept() {
        let mut s = SeqSet::new();
        let mut budget = 1u32;
        let mut keep = || {
            let ok = budget > 0;
            budget = budget.saturating_sub(1);
            ok
        };
        for i in [5, 1, 2, 3] {
            s.insert_with(i, &mut keep);
        }
        assert_eq!(s.late(), &[(1, 5)]);
        assert_eq!((s.late_unkept, s.late_count()), (2, 3));
    }
}
