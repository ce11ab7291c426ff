//! Latency histograms: one shape for the whole tool, and a text encoding to move them
//! between worker processes and into the report.
//!
//! Values are microseconds from 1 µs to 1 hour with 3 significant digits (0.1 % error);
//! larger values saturate at the top bucket instead of being dropped. Histograms cross
//! process boundaries in HdrHistogram's V2 binary format, hex-encoded in a JSON string,
//! so merging across workers is exact.

use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use serde::{Deserialize, Serialize};

/// Highest trackable latency, µs (1 hour).
pub const MAX_US: u64 = 3_600_000_000;

/// A fresh latency histogram.
pub fn new() -> Histogram<u64> {
    // Bounds are constants that satisfy hdrhistogram's preconditions (low >= 1,
    // high >= 2 * low, sigfig <= 5), so this cannot fail.
    Histogram::new_with_bounds(1, MAX_US, 3).unwrap_or_else(|_| unreachable!())
}

/// Records one latency in µs, clamped into the trackable range.
pub fn record(h: &mut Histogram<u64>, us: u64) {
    h.saturating_record(us.clamp(1, MAX_US));
}

/// Hex of the V2 serialization.
pub fn to_hex(h: &Histogram<u64>) -> String {
    let mut buf = Vec::new();
    if V2Serializer::new().serialize(h, &mut buf).is_err() {
        return String::new();
    }
    let mut s = String::with_capacity(buf.len() * 2);
    for b in buf {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 15)]));
    }
    s
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Parses [`to_hex`] output; `None` if it is malformed.
pub fn from_hex(s: &str) -> Option<Histogram<u64>> {
    if s.is_empty() {
        return Some(new());
    }
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) {
        return None;
    }
    let nib = |c: u8| -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    };
    let mut bytes = Vec::with_capacity(b.len() / 2);
    for pair in b.chunks_exact(2) {
        bytes.push((nib(pair[0])? << 4) | nib(pair[1])?);
    }
    let h: Histogram<u64> = Deserializer::new().deserialize(&mut &bytes[..]).ok()?;
    let mut out = new();
    out.add(&h).ok()?;
    Some(out)
}

/// Percentile summary in milliseconds, as the report shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Samples.
    pub count: u64,
    /// Mean, ms.
    pub mean: f64,
    /// Median, ms.
    pub p50: f64,
    /// 90th percentile, ms.
    pub p90: f64,
    /// 99th percentile, ms.
    pub p99: f64,
    /// 99.9th percentile, ms.
    pub p999: f64,
    /// Maximum, ms.
    pub max: f64,
}

/// Summarizes a µs histogram in ms.
pub fn summary(h: &Histogram<u64>) -> Summary {
    let ms = |us: u64| us as f64 / 1000.0;
    if h.is_empty() {
        return Summary::default();
    }
    Summary {
        count: h.len(),
        mean: h.mean() / 1000.0,
        p50: ms(h.value_at_quantile(0.50)),
        p90: ms(h.value_at_quantile(0.90)),
        p99: ms(h.value_at_quantile(0.99)),
        p999: ms(h.value_at_quantile(0.999)),
        max: ms(h.max()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let mut h = new();
        for v in [1, 5, 1000, 250_000, MAX_US * 2] {
            record(&mut h, v);
        }
        let back = from_hex(&to_hex(&h));
        assert_eq!(back.as_ref().map(|b| b.len()), Some(5));
        assert_eq!(back.map(|b| b.max()), Some(h.max()));
        assert!(from_hex("zz").is_none());
    }
}
