//! The loadgen's two clocks.
//!
//! - [`mono_ns`]: `CLOCK_MONOTONIC` in nanoseconds, for everything that is a duration:
//!   publish times in the payload and the publish log, receive times, session windows,
//!   latency. It never steps (NTP or an operator setting the date cannot make a latency
//!   negative or a session window swallow a publish), and on Linux it is one clock for
//!   the whole host, so a time taken in the coordinator (publishers) and one taken in a
//!   worker process (subscribers) subtract correctly. `std::time::Instant` reads the same
//!   clock but does not expose its value, and the two sides are separate processes, so
//!   an `Instant` cannot cross the pipe: hence the raw value.
//! - [`unix_now_ns`]: the wall clock, only for what must be calendar time: the report's
//!   start time, dates of result directories, and `exp` claims of minted tokens.
//!
//! Invariant: a `mono_ns` value is only ever compared with another `mono_ns` value taken
//! on the same host (the loadgen runs on one host; the hub never sees these values except
//! as opaque payload text).

use std::time::{SystemTime, UNIX_EPOCH};

/// `CLOCK_MONOTONIC`, nanoseconds (since an unspecified point, typically boot).
pub fn mono_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    // Both fields are non-negative for CLOCK_MONOTONIC.
    (t.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(t.tv_nsec as u64)
}

/// Now, in Unix nanoseconds (0 if the clock is before 1970).
pub fn unix_now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// UTC calendar date `YYYY-MM-DD` of a Unix time in seconds (civil-from-days).
pub fn utc_date(unix_s: u64) -> String {
    let days = (unix_s / 86_400) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn dates() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(1_795_320_000), "2026-11-22");
    }

    #[test]
    fn monotonic_ns_advance_with_instant() {
        // mono_ns is the clock Instant reads: over a sleep both advance alike.
        let (i0, m0) = (Instant::now(), mono_ns());
        std::thread::sleep(Duration::from_millis(30));
        let (m1, i1) = (mono_ns(), Instant::now());
        let di = i1.duration_since(i0).as_nanos() as i64;
        let dm = (m1 - m0) as i64;
        assert!(dm >= 30_000_000, "{dm}");
        assert!((di - dm).abs() < 1_000_000, "Instant {di} ns vs mono {dm} ns");
        assert!(mono_ns() >= m1);
    }
}
