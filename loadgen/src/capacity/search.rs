//! Which publish rate a sweep runs next at one subscriber count, so that the knee is found
//! rather than assumed.
//!
//! **Search** (the default): start at `start`, double while the point passes, up to `max`;
//! once a rate fails, bisect between the highest passing rate and the lowest failing one
//! until they are within `precision` of each other (relative, or 1 update/s, whichever is
//! larger). Midpoints are rounded to two significant digits, so reports show rates like 96
//! or 110, never 103.125. If the start rate fails the search stops: the knee at that
//! subscriber count is below it. **Grid** (`--rates`): the given rates in ascending order,
//! stopping at the first failure unless told to keep going.
//!
//! Invariant: `lo < hi` whenever both are known (a rate passes below every failing one
//! the search has seen), and no rate is proposed twice.

/// The state of one search.
#[derive(Debug, Clone)]
pub struct RateSearch {
    mode: Mode,
    /// Highest passing rate so far.
    lo: Option<f64>,
    /// Lowest failing rate so far.
    hi: Option<f64>,
    next: Option<f64>,
    tried: Vec<f64>,
}

#[derive(Debug, Clone)]
enum Mode {
    Search { max: f64, precision: f64 },
    Grid { rates: Vec<f64>, i: usize, keep_going: bool },
}

impl RateSearch {
    /// Doubling from `start` up to `max`, then bisection to `precision` (e.g. 0.1).
    pub fn search(start: f64, max: f64, precision: f64) -> Self {
        let start = start.max(f64::MIN_POSITIVE);
        let mode = Mode::Search { max: max.max(start), precision: precision.max(0.0) };
        Self { mode, lo: None, hi: None, next: Some(start), tried: Vec::new() }
    }

    /// The given rates, ascending; stops at the first failure unless `keep_going`.
    pub fn grid(rates: &[f64], keep_going: bool) -> Self {
        let mut rates: Vec<f64> = rates.iter().copied().filter(|r| r.is_finite() && *r > 0.0).collect();
        rates.sort_by(f64::total_cmp);
        rates.dedup();
        let next = rates.first().copied();
        Self { mode: Mode::Grid { rates, i: 0, keep_going }, lo: None, hi: None, next, tried: Vec::new() }
    }

    /// The rate to run next; `None` when done.
    pub fn next(&self) -> Option<f64> {
        self.next
    }

    /// `(highest passing, lowest failing)` rate so far: the knee lies between them.
    pub fn bracket(&self) -> (Option<f64>, Option<f64>) {
        (self.lo, self.hi)
    }

    /// Records the outcome of `rate` and chooses the next one.
    pub fn record(&mut self, rate: f64, pass: bool) {
        self.tried.push(rate);
        if pass {
            self.lo = Some(self.lo.map_or(rate, |l| l.max(rate)));
        } else {
            self.hi = Some(self.hi.map_or(rate, |h| h.min(rate)));
        }
        self.next = match &mut self.mode {
            Mode::Grid { rates, i, keep_going } => {
                *i += 1;
                if !pass && !*keep_going { None } else { rates.get(*i).copied() }
            }
            Mode::Search { max, precision } => {
                let (max, precision) = (*max, *precision);
                match (self.lo, self.hi) {
                    (Some(lo), None) if lo < max => Some((lo * 2.0).min(max)),
                    (Some(_), None) => None,
                    (None, _) => None,
                    (Some(lo), Some(hi)) => {
                        if hi - lo <= (lo * precision).max(1.0) {
                            None
                        } else {
                            Some(round2((lo + hi) / 2.0)).filter(|m| *m > lo && *m < hi)
                        }
                    }
                }
            }
        };
        if let Some(n) = self.next
            && self.tried.contains(&n)
        {
            self.next = None;
        }
    }
}

/// `x` rounded to two significant digits (96, 110, 2.5, 0.75).
fn round2(x: f64) -> f64 {
    if x <= 0.0 || !x.is_finite() {
        return x;
    }
    let e = x.log10().floor() - 1.0;
    let p = 10f64.powf(e);
    let r = (x / p).round() * p;
    // Clean representation: 110 rather than 110.00000000000001.
    let digits = (-e).max(0.0) as i32;
    let q = 10f64.powi(digits);
    (r * q).round() / q
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a search against a hub whose knee is `knee` (rates ≤ knee pass).
    fn run(mut s: RateSearch, knee: f64) -> (Vec<f64>, (Option<f64>, Option<f64>)) {
        let mut seen = Vec::new();
        while let Some(r) = s.next() {
            assert!(!seen.contains(&r), "{r} proposed twice: {seen:?}");
            seen.push(r);
            s.record(r, r <= knee);
            assert!(seen.len() < 100);
        }
        (seen, s.bracket())
    }

    #[test]
    fn doubling_then_bisection_brackets_the_knee() {
        let (seen, (lo, hi)) = run(RateSearch::search(1.0, 100_000.0, 0.1), 100.0);
        assert_eq!(&seen[..8], &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]);
        let (lo, hi) = (lo.unwrap_or(0.0), hi.unwrap_or(0.0));
        assert!(lo <= 100.0 && hi > 100.0 && hi - lo <= (lo * 0.1).max(1.0), "{lo}..{hi}: {seen:?}");
        assert!(seen.len() <= 13, "{seen:?}");
    }

    #[test]
    fn a_noisy_knee_between_doublings_is_still_found() {
        let (seen, (lo, hi)) = run(RateSearch::search(1.0, 1e5, 0.1), 5.0);
        assert_eq!(&seen[..4], &[1.0, 2.0, 4.0, 8.0]);
        assert_eq!((lo, hi), (Some(5.0), Some(6.0)), "{seen:?}");
    }

    #[test]
    fn the_start_failing_or_the_max_passing_ends_the_search() {
        let (seen, b) = run(RateSearch::search(1.0, 1e5, 0.1), 0.5);
        assert_eq!((seen, b), (vec![1.0], (None, Some(1.0))));
        let (seen, b) = run(RateSearch::search(10.0, 50.0, 0.1), 1e9);
        assert_eq!((seen, b), (vec![10.0, 20.0, 40.0, 50.0], (Some(50.0), None)));
    }

    #[test]
    fn a_grid_stops_at_the_first_failure_unless_told_not_to() {
        let (seen, b) = run(RateSearch::grid(&[10.0, 1.0, 5.0, 20.0], false), 7.0);
        assert_eq!((seen, b), (vec![1.0, 5.0, 10.0], (Some(5.0), Some(10.0))));
        let (seen, _) = run(RateSearch::grid(&[10.0, 1.0, 5.0, 20.0], true), 7.0);
        assert_eq!(seen, [1.0, 5.0, 10.0, 20.0]);
    }

    #[test]
    fn two_significant_digits() {
        assert_eq!(round2(96.0), 96.0);
        assert_eq!(round2(112.0), 110.0);
        assert_eq!(round2(103.125), 100.0);
        assert_eq!(round2(2.5), 2.5);
        assert_eq!(round2(0.751), 0.75);
        assert_eq!(round2(1536.0), 1500.0);
    }
}
