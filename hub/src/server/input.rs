//! Checks on client-supplied strings shared by publish and subscribe.
//!
//! Invariant: no topic, id or event type that reaches the hub contains a control character
//! (U+0000–U+001F or U+007F). CR and LF would end an SSE field early, and clients drop an
//! `id:` line holding NUL, so their `Last-Event-ID` stops advancing and every reconnection
//! replays what they already had; the other control characters have no legitimate use in a
//! topic IRI, an id or a type and are refused for the same price. `data` is not checked here:
//! the SSE encoder splits it on line breaks, and any other byte is the publisher's payload.

use crate::config::Limits;

use super::response::Refusal;

/// True when `s` holds a C0 control character or DEL. Bytewise: every byte of a multi-byte
/// UTF-8 sequence is ≥ 0x80, so no such byte is mistaken for one.
pub fn has_control(s: &str) -> bool {
    s.bytes().any(|b| b < 0x20 || b == 0x7f)
}

/// The one check of a publish's or a subscription's topics: at least one, at most
/// `max_topics`, each non-empty, at most `max_topic_length` bytes, and free of control
/// characters. The first failure becomes a 400 with a one-line reason.
pub fn validate_topics(topics: &[String], limits: &Limits) -> Result<(), Refusal> {
    if topics.is_empty() {
        return Err(Refusal::bad_request("missing topic"));
    }
    if topics.len() > limits.max_topics {
        return Err(Refusal::bad_request(format!("more than {} topics", limits.max_topics)));
    }
    if topics.iter().any(|t| t.is_empty() || t.len() > limits.max_topic_length) {
        return Err(Refusal::bad_request(format!("topic empty or longer than {} bytes", limits.max_topic_length)));
    }
    if topics.iter().any(|t| has_control(t)) {
        return Err(Refusal::bad_request("topic contains a control character (U+0000-U+001F or U+007F)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_c0_and_del_only() {
        for c in (0u8..0x20).chain([0x7f]) {
            assert!(has_control(&format!("a{}b", c as char)), "{c:#x}");
        }
        assert!(!has_control("https://example.com/books/{id}?q=é€😀 ~"));
        // C1 controls are outside the refused range (U+0080 is two bytes ≥ 0x80 in UTF-8).
        assert!(!has_control("\u{80}\u{9f}"));
    }

    #[test]
    fn topics_are_counted_measured_and_scanned() {
        let limits = Limits { max_topics: 2, max_topic_length: 8, ..Limits::default() };
        let t = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(validate_topics(&t(&["a", "b"]), &limits).is_ok());
        for bad in [&[][..], &["a", "b", "c"], &[""], &["123456789"], &["a\0"], &["a\r\nb"], &["\x7f"]] {
            let r = validate_topics(&t(bad), &limits).expect_err("refused");
            assert_eq!(r.status, 400, "{bad:?}");
            assert!(!r.reason.contains('\n'), "one-line reason: {:?}", r.reason);
        }
    }
}
