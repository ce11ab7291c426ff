//! The update payload: what a publisher puts in `data` so subscribers can measure.
//!
//! Format (fixed field order, one line of JSON):
//! `{"r":"<run id>","k":<topic>,"s":<seq>,"t":<mono ns>,"l":<ns>,"p":"<padding>"}`
//!
//! - `r` run id: events of other runs or other publishers on the same hub are ignored
//!   (counted as `foreign`), never mistaken for ours;
//! - `k` topic index in the run's topic space; `s` the per-topic sequence number, dense from
//!   0 in send order; `t` the publisher's monotonic clock ([`crate::clock::mono_ns`]) just
//!   before the POST was sent; `l` how late that was against the publish's scheduled
//!   time, ns, so the schedule time is `t - l` (latency from the schedule counts the time
//!   a publish waited to be sent, which latency from `t` would omit);
//! - `p` padding of `x` up to the configured payload size.
//!
//! Decoding is a hand-written prefix parser: it runs once per delivery (100k+/s) and must
//! not allocate. Anything that does not parse is `None`, never a panic.

/// A decoded payload header (the padding is skipped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp<'a> {
    /// Run id.
    pub run: &'a [u8],
    /// Topic index.
    pub topic: u32,
    /// Per-topic sequence number.
    pub seq: u64,
    /// When the POST was sent, monotonic ns.
    pub sent_ns: u64,
    /// How late the send was against the schedule, ns.
    pub late_ns: u64,
}

impl Stamp<'_> {
    /// When the publish was due by the schedule, monotonic ns.
    pub fn due_ns(&self) -> u64 {
        self.sent_ns.saturating_sub(self.late_ns)
    }
}

/// Encodes a payload of at least `size` bytes (padding only grows it).
pub fn encode(run: &str, topic: u32, seq: u64, sent_ns: u64, late_ns: u64, size: usize) -> String {
    let mut s = format!(r#"{{"r":"{run}","k":{topic},"s":{seq},"t":{sent_ns},"l":{late_ns},"p":""#);
    let fixed = s.len() + 2; // closing `"}`
    if size > fixed {
        s.extend(std::iter::repeat_n('x', size - fixed));
    }
    s.push_str("\"}");
    s
}

/// Decodes the header of a payload; `None` if it is not one of ours.
pub fn decode(data: &[u8]) -> Option<Stamp<'_>> {
    let rest = data.strip_prefix(br#"{"r":""#)?;
    let end = rest.iter().position(|&b| b == b'"')?;
    let (run, rest) = rest.split_at(end);
    let rest = rest.strip_prefix(br#"","k":"#)?;
    let (topic, rest) = number(rest)?;
    let rest = rest.strip_prefix(br#","s":"#)?;
    let (seq, rest) = number(rest)?;
    let rest = rest.strip_prefix(br#","t":"#)?;
    let (sent_ns, rest) = number(rest)?;
    let rest = rest.strip_prefix(br#","l":"#)?;
    let (late_ns, _) = number(rest)?;
    Some(Stamp { run, topic: u32::try_from(topic).ok()?, seq, sent_ns, late_ns })
}

fn number(b: &[u8]) -> Option<(u64, &[u8])> {
    let len = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if len == 0 || len > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in &b[..len] {
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some((v, &b[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_size() {
        let p = encode("ab12", 3, 42, 1_700_000_000_123_456_789, 1_250_000, 200);
        assert_eq!(p.len(), 200);
        let s = decode(p.as_bytes());
        let want = Stamp { run: b"ab12", topic: 3, seq: 42, sent_ns: 1_700_000_000_123_456_789, late_ns: 1_250_000 };
        assert_eq!(s, Some(want));
        assert_eq!(want.due_ns(), 1_700_000_000_122_206_789);
        let small = encode("r", 0, 0, 1, 0, 0);
        assert!(decode(small.as_bytes()).is_some());
        assert!(serde_json::from_str::<serde_json::Value>(&p).is_ok());
    }

    #[test]
    fn garbage_is_none() {
        assert_eq!(decode(b"Hi"), None);
        assert_eq!(decode(br#"{"r":"x","k":-1,"s":1,"t":2}"#), None);
        assert_eq!(decode(br#"{"r":"x","k":1,"s":99999999999999999999999,"t":2}"#), None);
        assert_eq!(decode(br#"{"r":"x"#), None);
        // The v1 stamp (no `l`) is not ours any more: counted as foreign, never misread.
        assert_eq!(decode(br#"{"r":"x","k":1,"s":1,"t":2,"p":""}"#), None);
    }
}
