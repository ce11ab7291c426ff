//! Go `time.ParseDuration`-compatible duration parser, plus Caddy's `d`
//! (day) unit, for configuration values such as `heartbeat 40s` or
//! `MERCURE_..._TTL=1h30m`.
//!
//! Grammar (as Go): an optional `+` sign, then one or more
//! `<decimal><unit>` components, where `<decimal>` is digits with an
//! optional fraction (`1`, `1.5`, `.5`, `5.`) and `<unit>` is one of
//! `ns us µs μs ms s m h d`. The bare string `0` (optionally signed) is
//! the only unit-less input allowed.
//!
//! Invariants:
//! - Results never exceed Go's range (`i64::MAX` nanoseconds, ~292 years),
//!   so any value we accept is also representable by the Go hub.
//! - Negative durations are rejected (`-0s` is accepted: it is zero).
//! - Fractions are computed in integer arithmetic and truncated to whole
//!   nanoseconds; Go uses `float64` for this step, so results can differ
//!   by at most a nanosecond on exotic inputs.
//! - Never panics; errors are short, lowercase and quote the input.

use std::time::Duration;

/// Go's limit: a `time.Duration` is an `int64` of nanoseconds.
const MAX_NANOS: u128 = i64::MAX as u128;

/// Inputs longer than this are rejected outright (Caddy uses the same cap);
/// bounds the work done on hostile configuration values.
const MAX_INPUT_LEN: usize = 1024;

/// Fraction digits kept; later ones only affect sub-nanosecond precision
/// (the largest unit, a day, is < 10^14 ns), and capping keeps the
/// arithmetic inside `u128`.
const MAX_FRACTION_DIGITS: u32 = 18;

const NANOS_PER_SECOND: u128 = 1_000_000_000;

/// Parses a Go/Caddy duration string such as `1h30m`, `1.5h`, `300ms`,
/// `2d` or `0`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if s.len() > MAX_INPUT_LEN {
        return Err(format!("duration too long ({} bytes)", s.len()));
    }
    let invalid = || format!("invalid duration {s:?}");

    let (negative, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    // Go special-cases a lone zero; any other number needs a unit.
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }

    let mut total: u128 = 0;
    while !rest.is_empty() {
        let (int_part, after_int) = split_digits(rest);
        let (frac_part, after_frac) = match after_int.strip_prefix('.') {
            Some(after_dot) => split_digits(after_dot),
            None => ("", after_int),
        };
        // Needs at least one digit on either side of an optional dot.
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }

        // The unit runs until the next digit or dot, as in Go.
        let unit_len = after_frac.find(|c: char| c == '.' || c.is_ascii_digit()).unwrap_or(after_frac.len());
        let unit = &after_frac[..unit_len];
        rest = &after_frac[unit_len..];
        if unit.is_empty() {
            return Err(format!("missing unit in duration {s:?}"));
        }
        let unit_nanos = unit_nanos(unit).ok_or_else(|| format!("unknown unit {unit:?} in duration {s:?}"))?;

        let component =
            component_nanos(int_part, frac_part, unit_nanos).ok_or_else(|| format!("duration out of range {s:?}"))?;
        total = total
            .checked_add(component)
            .filter(|t| *t <= MAX_NANOS)
            .ok_or_else(|| format!("duration out of range {s:?}"))?;
    }

    if negative && total != 0 {
        return Err(format!("negative duration {s:?}"));
    }
    let secs = u64::try_from(total / NANOS_PER_SECOND).map_err(|_| invalid())?;
    // The remainder is < 10^9, so it always fits.
    let nanos = u32::try_from(total % NANOS_PER_SECOND).map_err(|_| invalid())?;
    Ok(Duration::new(secs, nanos))
}

/// Splits a leading run of ASCII digits off `s`.
fn split_digits(s: &str) -> (&str, &str) {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s.split_at(end)
}

/// Nanoseconds per unit; `None` for an unknown unit.
fn unit_nanos(unit: &str) -> Option<u128> {
    const NS: u128 = 1;
    const US: u128 = 1_000 * NS;
    const MS: u128 = 1_000 * US;
    const S: u128 = 1_000 * MS;
    const M: u128 = 60 * S;
    const H: u128 = 60 * M;
    Some(match unit {
        "ns" => NS,
        // U+00B5 micro sign and U+03BC Greek small mu, both accepted by Go.
        "us" | "\u{b5}s" | "\u{3bc}s" => US,
        "ms" => MS,
        "s" => S,
        "m" => M,
        "h" => H,
        // Caddy extension: a day is exactly 24h (no calendar/DST logic).
        "d" => 24 * H,
        _ => return None,
    })
}

/// `int.frac * unit` in nanoseconds, truncated; `None` on overflow.
fn component_nanos(int_part: &str, frac_part: &str, unit: u128) -> Option<u128> {
    let mut int_value: u128 = 0;
    for b in int_part.bytes() {
        int_value = int_value.checked_mul(10)?.checked_add(u128::from(b - b'0'))?;
        // Early exit keeps absurdly long digit runs from doing more work.
        if int_value > MAX_NANOS {
            return None;
        }
    }
    let whole = int_value.checked_mul(unit)?;
    if whole > MAX_NANOS {
        return None;
    }

    let mut frac_value: u128 = 0;
    let mut scale: u128 = 1;
    for b in frac_part.bytes().take(MAX_FRACTION_DIGITS as usize) {
        frac_value = frac_value * 10 + u128::from(b - b'0');
        scale *= 10;
    }
    // frac_value < 10^18 and unit < 10^14, so this cannot overflow u128.
    whole.checked_add(frac_value * unit / scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Duration {
        match parse_duration(s) {
            Ok(d) => d,
            Err(e) => panic!("{s:?} failed: {e}"),
        }
    }

    fn err(s: &str) -> String {
        match parse_duration(s) {
            Ok(d) => panic!("{s:?} unexpectedly parsed as {d:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn zero() {
        assert_eq!(ok("0"), Duration::ZERO);
        assert_eq!(ok("+0"), Duration::ZERO);
        assert_eq!(ok("-0"), Duration::ZERO);
        assert_eq!(ok("0s"), Duration::ZERO);
        assert_eq!(ok("-0s"), Duration::ZERO);
        assert_eq!(ok("0h0m0s"), Duration::ZERO);
        assert_eq!(ok("0.0s"), Duration::ZERO);
    }

    #[test]
    fn each_unit() {
        assert_eq!(ok("7ns"), Duration::from_nanos(7));
        assert_eq!(ok("7us"), Duration::from_micros(7));
        assert_eq!(ok("7µs"), Duration::from_micros(7)); // U+00B5
        assert_eq!(ok("7μs"), Duration::from_micros(7)); // U+03BC
        assert_eq!(ok("300ms"), Duration::from_millis(300));
        assert_eq!(ok("40s"), Duration::from_secs(40));
        assert_eq!(ok("5m"), Duration::from_secs(300));
        assert_eq!(ok("2h"), Duration::from_secs(7200));
        assert_eq!(ok("1d"), Duration::from_secs(86_400));
    }

    #[test]
    fn sequences_and_fractions() {
        assert_eq!(ok("1h30m"), Duration::from_secs(5400));
        assert_eq!(ok("1.5h"), Duration::from_secs(5400));
        assert_eq!(ok("2h45m30.5s"), Duration::from_millis(9_930_500));
        assert_eq!(ok("1d12h"), Duration::from_secs(129_600));
        assert_eq!(ok("1.5d"), Duration::from_secs(129_600));
        assert_eq!(ok(".5s"), Duration::from_millis(500));
        assert_eq!(ok("5.s"), Duration::from_secs(5));
        assert_eq!(ok("+5s"), Duration::from_secs(5));
        assert_eq!(ok("1s1s"), Duration::from_secs(2)); // Go sums repeats.
        assert_eq!(ok("1m1ms1ns"), Duration::new(60, 1_000_001));
        assert_eq!(ok("1.000000001s"), Duration::new(1, 1));
        // Sub-nanosecond digits are truncated, as Go does.
        assert_eq!(ok("1.9ns"), Duration::from_nanos(1));
        assert_eq!(ok("0.1234567890123456789012345s"), Duration::from_nanos(123_456_789));
        assert_eq!(ok("000001s"), Duration::from_secs(1));
    }

    #[test]
    fn bare_number_needs_unit() {
        assert_eq!(err("1"), r#"missing unit in duration "1""#);
        assert_eq!(err("1.5"), r#"missing unit in duration "1.5""#);
        assert_eq!(err("1h30"), r#"missing unit in duration "1h30""#);
        assert_eq!(err("00"), r#"missing unit in duration "00""#);
    }

    #[test]
    fn unknown_units() {
        assert_eq!(err("1x"), r#"unknown unit "x" in duration "1x""#);
        assert_eq!(err("1 s"), r#"unknown unit " s" in duration "1 s""#);
        assert_eq!(err("1S"), r#"unknown unit "S" in duration "1S""#);
        assert_eq!(err("1sec"), r#"unknown unit "sec" in duration "1sec""#);
        assert_eq!(err("1w"), r#"unknown unit "w" in duration "1w""#);
        assert!(err("1s ").contains("unknown unit"));
    }

    #[test]
    fn malformed() {
        for s in ["", "+", "-", "s", ".s", ".", "1..5s", "1.5.s", " 1s", "1s-1s", "1s+1s", "--1s"] {
            let e = err(s);
            assert!(e.contains(&format!("{s:?}")), "{s:?}: {e}");
            assert_eq!(e, e.to_lowercase());
        }
    }

    #[test]
    fn negative_rejected() {
        assert_eq!(err("-1s"), r#"negative duration "-1s""#);
        assert_eq!(err("-1.5h"), r#"negative duration "-1.5h""#);
    }

    #[test]
    fn range_limits() {
        // Go's maximum: 9223372036854775807ns = 2562047h47m16.854775807s.
        assert_eq!(ok("9223372036854775807ns"), Duration::new(9_223_372_036, 854_775_807));
        assert_eq!(ok("2562047h47m16.854775807s"), Duration::new(9_223_372_036, 854_775_807));
        assert!(err("9223372036854775808ns").contains("out of range"));
        assert!(err("2562048h").contains("out of range"));
        assert!(err("106752d").contains("out of range"));
        assert!(err("2562047h47m16.854775808s").contains("out of range"));
        assert!(err("99999999999999999999999999999999999999999999s").contains("out of range"));
        assert!(err("1h9223372036854775807ns").contains("out of range"));
    }

    #[test]
    fn long_input_rejected() {
        let long = "1s".repeat(600);
        assert!(err(&long).starts_with("duration too long"));
    }
}
