//! Server-Sent Events encoding.
//!
//! An update is encoded to its wire form exactly once, at publish time, into one `Bytes` that
//! every recipient shares (cloning `Bytes` is a reference-count increment).
//!
//! Invariant: no field value can forge another field or end the event early. `id` and `event`
//! are single-line by construction (the publish path rejects every control character in them,
//! and this module strips CR/LF again as a second line of defence); `data` is split on CR, LF
//! and CRLF and each piece becomes its own `data:` line, which is exactly how an SSE parser
//! rebuilds it.

use bytes::{BufMut, Bytes, BytesMut};

/// The heartbeat: an SSE comment line, ignored by every client, that keeps proxies from
/// closing an idle stream. Prebuilt once.
pub const HEARTBEAT: &[u8] = b":\n";

/// What goes on the wire for one update.
pub struct EventFields<'a> {
    pub id: &'a str,
    pub event_type: Option<&'a str>,
    pub retry: Option<u64>,
    pub data: &'a str,
}

/// Encodes one event, terminated by the blank line that dispatches it. The buffer is
/// allocated once at exactly the event's size: the retained history holds it for as long as
/// the update is retained, so a buffer that had to grow (doubling) would be held half empty.
pub fn encode(fields: &EventFields<'_>) -> Bytes {
    let len = encoded_len(fields);
    let mut buf = BytesMut::with_capacity(len);
    if let Some(t) = fields.event_type {
        put_single_line(&mut buf, b"event: ", t);
    }
    if let Some(r) = fields.retry {
        buf.put_slice(b"retry: ");
        buf.put_slice(r.to_string().as_bytes());
        buf.put_u8(b'\n');
    }
    put_single_line(&mut buf, b"id: ", fields.id);
    for line in split_lines(fields.data) {
        buf.put_slice(b"data: ");
        buf.put_slice(line.as_bytes());
        buf.put_u8(b'\n');
    }
    buf.put_u8(b'\n');
    debug_assert_eq!(buf.len(), len, "encoded_len must be exact");
    buf.freeze()
}

/// The exact length of `encode(fields)`. Line breaks are counted in a byte pass (which
/// vectorizes), and CRLF pairs only when there is a CR at all.
fn encoded_len(fields: &EventFields<'_>) -> usize {
    let is_break = |b: &u8| *b == b'\r' || *b == b'\n';
    let single_line = |v: &str| v.len() - v.bytes().filter(is_break).count();
    let data = fields.data.as_bytes();
    let breaks = data.iter().filter(|b| is_break(b)).count();
    let crlf = if data.contains(&b'\r') { data.windows(2).filter(|w| *w == b"\r\n").count() } else { 0 };
    let lines = 1 + breaks - crlf;
    let mut len = "id: \n".len() + single_line(fields.id) + lines * "data: \n".len() + data.len() - breaks + 1;
    if let Some(t) = fields.event_type {
        len += "event: \n".len() + single_line(t);
    }
    if let Some(r) = fields.retry {
        len += "retry: \n".len() + r.checked_ilog10().map_or(1, |d| d as usize + 1);
    }
    len
}

/// Writes `prefix value\n`, dropping any CR/LF so the value cannot start a new field.
fn put_single_line(buf: &mut BytesMut, prefix: &[u8], value: &str) {
    buf.put_slice(prefix);
    for b in value.bytes().filter(|b| *b != b'\r' && *b != b'\n') {
        buf.put_u8(b);
    }
    buf.put_u8(b'\n');
}

/// Splits on CRLF, CR and LF, as the SSE parser does. An empty string yields one empty line,
/// so an update with empty data still dispatches an event with `data` = "".
pub fn split_lines(data: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let s = rest?;
        match s.find(['\r', '\n']) {
            None => {
                rest = None;
                Some(s)
            }
            Some(i) => {
                let skip = if s[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = Some(&s[i + skip..]);
                Some(&s[..i])
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(data: &str) -> String {
        let b = encode(&EventFields { id: "x", event_type: None, retry: None, data });
        String::from_utf8(b.to_vec()).unwrap()
    }

    #[test]
    fn splits_every_line_break_kind() {
        assert_eq!(enc("a\r\nb\rc\nd"), "id: x\ndata: a\ndata: b\ndata: c\ndata: d\n\n");
    }

    #[test]
    fn empty_data_is_one_empty_line() {
        assert_eq!(enc(""), "id: x\ndata: \n\n");
    }

    #[test]
    fn trailing_newline_keeps_an_empty_last_line() {
        assert_eq!(enc("a\n"), "id: x\ndata: a\ndata: \n\n");
    }

    #[test]
    fn injected_fields_stay_inside_data() {
        let out = enc("hi\n\nid: forged\nevent: evil");
        assert_eq!(out, "id: x\ndata: hi\ndata: \ndata: id: forged\ndata: event: evil\n\n");
    }

    #[test]
    fn the_buffer_is_sized_exactly() {
        for data in ["", "a", "a\n", "\r\n", "\r\r\n\n", "a\rb\nc\r\nd", "x\r", "\n\n\n", "é\r\nü"] {
            for (id, event_type, retry) in
                [("x", None, None), ("a\r\nb", Some("t\ny"), Some(0)), ("", Some(""), Some(u64::MAX))]
            {
                let f = EventFields { id, event_type, retry, data };
                assert_eq!(encoded_len(&f), encode(&f).len(), "{data:?} {id:?} {event_type:?} {retry:?}");
            }
        }
    }

    #[test]
    fn id_and_type_cannot_break_lines() {
        let b = encode(&EventFields { id: "a\nb", event_type: Some("t\r\nx"), retry: Some(5), data: "d" });
        assert_eq!(&b[..], b"event: tx\nretry: 5\nid: ab\ndata: d\n\n");
    }
}
