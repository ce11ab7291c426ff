//! Open-model arrival schedules: when the i-th publish (or subscriber arrival) is due.
//!
//! A [`Ramp`] is a rate that moves linearly from `from` to `to` events per second over
//! `duration`, exactly like Gatling's `rampUsersPerSec(from) to (to) during (d)` that the
//! upstream Mercure load test uses. Events are placed deterministically: event `i` (0-based)
//! is due at the time `t` where the integral of the rate from 0 to `t` equals `i`, so the
//! schedule never drifts and never depends on how fast earlier events were served (open
//! model: a slow hub makes publishes late, it does not make fewer of them be asked for).
//!
//! Invariants: `due(i)` is non-decreasing in `i`; `total()` events fall in `[0, duration)`.

use std::time::Duration;

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
        let d = self.duration.as_secs_f64();
        let area = (self.from + self.to) * d / 2.0;
        if area <= 0.0 {
            return 0;
        }
        // Events i with due(i) < d: i < area. Guard against float noise at exact integers.
        let n = area.ceil();
        if (n - area).abs() < 1e-9 { area.round() as u64 } else { n as u64 }
    }

    /// When event `i` is due, measured from the start of the ramp; `None` past the end.
    pub fn due(&self, i: u64) -> Option<Duration> {
        if i >= self.total() {
            return None;
        }
        let d = self.duration.as_secs_f64();
        let a = self.from;
        let slope = (self.to - self.from) / d.max(f64::MIN_POSITIVE);
        let n = i as f64;
        // Solve a*t + slope*t^2/2 = n for the smallest t >= 0.
        let t = if slope.abs() < 1e-12 {
            if a <= 0.0 { 0.0 } else { n / a }
        } else {
            let disc = a * a + 2.0 * slope * n;
            if disc <= 0.0 { 0.0 } else { (-a + disc.sqrt()) / slope }
        };
        Some(Duration::from_secs_f64(t.clamp(0.0, d)))
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
}
