//! Open-model arrival schedules: when the i-th publish (or subscriber arrival) is due.
//!
//! A [`Ramp`] is a rate that moves linearly from `from` to `to` events per second over
//! `duration`, exactly like Gatling's `rampUsersPerSec(from) to (to) during (d)` that the
//! upstream Mercure load test uses. Events are placed deterministically: event `i` (0-based)
//! is due at the time `t` where the integral of the rate from 0 to `t` equals `i`, so the
//! schedule never drifts and never depends on how fast earlier events were served (open
//! model: a slow hub makes publishes late, it does not make fewer of them be asked for).
//!
//! A [`Schedule`] is what the publishers follow: the ramp's evenly spaced times
//! ([`Arrivals::Uniform`]) or, with [`Arrivals::Poisson`], the same number of events placed
//! as a Poisson process with the ramp's rate: the `total()` times are drawn uniformly in
//! the integrated rate and sorted (a Poisson process conditioned on its count), then mapped
//! back to time. Same offered load, same count (so runs compare), but bursts and gaps like
//! independent clients make, instead of a metronome that a hub's batching can lock onto.
//!
//! Invariants: `due(i)` is non-decreasing in `i`; `total()` events fall in `[0, duration)`.

use std::sync::Arc;
use std::time::Duration;

/// Largest Poisson schedule held in memory (8 bytes per publish: 160 MB).
pub const MAX_POISSON_EVENTS: u64 = 20_000_000;

/// How publishes are placed within the ramp (`--arrivals`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Arrivals {
    /// Evenly spaced: publish `i` when the integrated rate reaches `i`.
    #[default]
    Uniform,
    /// A Poisson process with the ramp's rate (exponential gaps), same count.
    Poisson,
}

impl Arrivals {
    /// The name used in flags and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Uniform => "uniform",
            Self::Poisson => "poisson",
        }
    }
}

/// The publishers' schedule: when publish `i` is due, from the schedule's origin.
#[derive(Debug, Clone)]
pub struct Schedule {
    ramp: Ramp,
    /// Poisson due times, ns from the origin, sorted; `None` for uniform arrivals.
    /// `Arc`: shared by every publisher task, never modified.
    poisson: Option<Arc<[u64]>>,
}

impl Schedule {
    /// A schedule over `ramp`; `seed` draws the Poisson times (deterministic per seed).
    pub fn new(ramp: Ramp, kind: Arrivals, seed: u64) -> Result<Self, String> {
        let poisson = match kind {
            Arrivals::Uniform => None,
            Arrivals::Poisson => {
                let n = ramp.total();
                if n > MAX_POISSON_EVENTS {
                    return Err(format!(
                        "--arrivals poisson holds every due time in memory: {n} publishes is over                          the {MAX_POISSON_EVENTS} limit; shorten the run or lower the rate"
                    ));
                }
                let area = ramp.area();
                // `uniform_from(i, s)` hashes `i + s`: hash the seed first, so nearby seeds
                // do not give shifted copies of one stream.
                let stream = crate::topics::uniform_from(seed, 0x9015_5011).to_bits();
                let mut t: Vec<u64> = (0..n)
                    .map(|i| {
                        let x = crate::topics::uniform_from(i, stream) * area;
                        ramp.at_area(x).as_nanos() as u64
                    })
                    .collect();
                t.sort_unstable();
                Some(t.into())
            }
        };
        Ok(Self { ramp, poisson })
    }

    /// Which kind of arrivals this is.
    pub fn kind(&self) -> Arrivals {
        if self.poisson.is_some() { Arrivals::Poisson } else { Arrivals::Uniform }
    }

    /// The ramp it follows.
    pub fn ramp(&self) -> &Ramp {
        &self.ramp
    }

    /// Number of publishes scheduled.
    pub fn total(&self) -> u64 {
        self.ramp.total()
    }

    /// When publish `i` is due, from the origin; `None` past the end.
    pub fn due(&self, i: u64) -> Option<Duration> {
        match &self.poisson {
            None => self.ramp.due(i),
            Some(t) => t.get(usize::try_from(i).ok()?).map(|&ns| Duration::from_nanos(ns)),
        }
    }
}

/// A linear rate ramp, in events per second, over a fixed duration.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Ramp {
    /// Rate at the start, events per second (>= 0).
    pub from: f64,
    /// Rate at the end, events per second (>= 0).
    pub to: f64,
    /// How long the ramp lasts.
    pub duration: Duration,
}

impl Ramp {
    /// A ramp; negative or non-finite rates are clamped to 0.
    pub fn new(from: f64, to: f64, duration: Duration) -> Self {
        let clean = |r: f64| if r.is_finite() && r > 0.0 { r } else { 0.0 };
        Self { from: clean(from), to: clean(to), duration }
    }

    /// A constant rate.
    pub fn constant(rate: f64, duration: Duration) -> Self {
        Self::new(rate, rate, duration)
    }

    /// Number of events the ramp schedules: the integral of the rate, rounded up, so a
    /// constant 1/s over 10 s gives 10 events (at 0 s, 1 s, ... 9 s).
    pub fn total(&self) -> u64 {
        let area = self.area();
        if area <= 0.0 {
            return 0;
        }
        // Events i with due(i) < d: i < area. Guard against float noise at exact integers.
        let n = area.ceil();
        if (n - area).abs() < 1e-9 { area.round() as u64 } else { n as u64 }
    }

    /// The integral of the rate over the whole ramp (expected events).
    pub fn area(&self) -> f64 {
        (self.from + self.to) * self.duration.as_secs_f64() / 2.0
    }

    /// When event `i` is due, measured from the start of the ramp; `None` past the end.
    pub fn due(&self, i: u64) -> Option<Duration> {
        if i >= self.total() {
            return None;
        }
        Some(self.at_area(i as f64))
    }

    /// The time at which the integral of the rate reaches `n` (clamped to the ramp).
    pub fn at_area(&self, n: f64) -> Duration {
        let d = self.duration.as_secs_f64();
        let a = self.from;
        let slope = (self.to - self.from) / d.max(f64::MIN_POSITIVE);
        // Solve a*t + slope*t^2/2 = n for the smallest t >= 0.
        let t = if slope.abs() < 1e-12 {
            if a <= 0.0 { 0.0 } else { n / a }
        } else {
            let disc = a * a + 2.0 * slope * n;
            if disc <= 0.0 { 0.0 } else { (-a + disc.sqrt()) / slope }
        };
        Duration::from_secs_f64(t.clamp(0.0, d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_rate_is_evenly_spaced() {
        let r = Ramp::constant(10.0, Duration::from_secs(2));
        assert_eq!(r.total(), 20);
        assert_eq!(r.due(0), Some(Duration::ZERO));
        let d5 = r.due(5).map(|d| d.as_secs_f64()).unwrap_or(-1.0);
        assert!((d5 - 0.5).abs() < 1e-9);
        assert_eq!(r.due(20), None);
    }

    #[test]
    fn ramp_integrates_to_the_area() {
        let r = Ramp::new(0.0, 20.0, Duration::from_secs(10));
        assert_eq!(r.total(), 100);
        let mut last = Duration::ZERO;
        for i in 0..100 {
            let d = r.due(i).unwrap_or(Duration::MAX);
            assert!(d >= last && d <= Duration::from_secs(10));
            last = d;
        }
        // Half the events happen in the last ~29% of the time for a ramp from zero.
        let half = r.due(50).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        assert!((half - 50f64.sqrt()).abs() < 1e-6);
    }

    #[test]
    fn zero_rate_schedules_nothing() {
        let r = Ramp::new(0.0, 0.0, Duration::from_secs(10));
        assert_eq!(r.total(), 0);
        assert_eq!(r.due(0), None);
    }

    /// Coefficient of variation of the gaps between consecutive due times.
    fn gap_cv(s: &Schedule) -> f64 {
        let t: Vec<f64> = (0..s.total()).filter_map(|i| s.due(i)).map(|d| d.as_secs_f64()).collect();
        let gaps: Vec<f64> = t.windows(2).map(|w| w[1] - w[0]).collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let var = gaps.iter().map(|g| (g - mean) * (g - mean)).sum::<f64>() / gaps.len() as f64;
        var.sqrt() / mean
    }

    #[test]
    fn poisson_keeps_the_count_and_rate_but_not_the_spacing() {
        let ramp = Ramp::constant(1000.0, Duration::from_secs(10));
        let uniform = Schedule::new(ramp, Arrivals::Uniform, 7).unwrap_or_else(|e| panic!("{e}"));
        let poisson = Schedule::new(ramp, Arrivals::Poisson, 7).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((uniform.kind(), poisson.kind()), (Arrivals::Uniform, Arrivals::Poisson));
        assert_eq!(poisson.total(), 10_000);
        assert_eq!(poisson.due(10_000), None);
        let mut last = Duration::ZERO;
        for i in 0..10_000 {
            let d = poisson.due(i).unwrap_or(Duration::MAX);
            assert!(d >= last && d < Duration::from_secs(10), "{i}: {d:?}");
            last = d;
        }
        // Exponential gaps have a coefficient of variation of 1; a metronome has 0.
        assert!(gap_cv(&uniform) < 1e-6);
        let cv = gap_cv(&poisson);
        assert!((0.9..1.1).contains(&cv), "cv {cv}");
        // Half the publishes in each half of the run, within the noise of 10,000 draws.
        let first_half = (0..10_000).filter(|&i| poisson.due(i).is_some_and(|d| d < Duration::from_secs(5))).count();
        assert!((4800..5200).contains(&first_half), "{first_half}");
        // Deterministic per seed, different across seeds.
        let again = Schedule::new(ramp, Arrivals::Poisson, 7).unwrap_or_else(|e| panic!("{e}"));
        let other = Schedule::new(ramp, Arrivals::Poisson, 8).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again.due(1234), poisson.due(1234));
        assert_ne!(other.due(1234), poisson.due(1234));
    }

    #[test]
    fn poisson_follows_a_ramp_and_has_a_size_limit() {
        let ramp = Ramp::new(0.0, 200.0, Duration::from_secs(10));
        let p = Schedule::new(ramp, Arrivals::Poisson, 1).unwrap_or_else(|e| panic!("{e}"));
        // A ramp from zero puts a quarter of its events in the first half.
        let first_half = (0..p.total()).filter(|&i| p.due(i).is_some_and(|d| d < Duration::from_secs(5))).count();
        assert!((200..300).contains(&first_half), "{first_half} of {}", p.total());
        let huge = Ramp::constant(1e6, Duration::from_secs(100));
        assert!(Schedule::new(huge, Arrivals::Poisson, 1).is_err_and(|e| e.contains("limit")));
    }
}
