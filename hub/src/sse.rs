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

/// Room for every prefix and line end of an event (`event: \n`, `retry: \n` with 20 digits,
/// `id: \n`, one `data: \n`, the closing `\n`): the encoding's buffer is the fields' lengths plus
/// this. Data of many lines needs more (7 bytes per extra line) and grows the buffer.
const ROOM: usize = 8 + 8 + 20 + 5 + 7 + 1;

/// Encodes one event, terminated by the blank line that dispatches it.
///
/// The result holds at most [`ROOM`] bytes more than its length: the retained history keeps it
/// as long as the update is retained, so a buffer that grew (doubling, for data of many lines)
/// is copied to its exact size rather than kept half empty. Lines are not counted up front: a
/// pass over the data would cost as much as the encoding itself, for the rare multi-line case.
pub fn encode(fields: &EventFields<'_>) -> Bytes {
    let estimate = fields.data.len() + fields.id.len() + fields.event_type.map_or(0, str::len) + ROOM;
    let mut buf = BytesMut::with_capacity(estimate);
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
    if buf.capacity() > buf.len() + ROOM {
        // It grew past the estimate.
        return Bytes::copy_from_slice(&buf);
    }
    buf.freeze()
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
    fn the_buffer_is_never_much_larger_than_the_event() {
        let many_lines = "l\n".repeat(1000);
        let long_type = "t".repeat(300);
        for data in ["", "a", "a\r\nb\rc\nd", many_lines.as_str(), "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n"] {
            for (event_type, retry) in [(None, None), (Some(long_type.as_str()), Some(u64::MAX))] {
                let b = encode(&EventFields { id: "x", event_type, retry, data });
                let len = b.len();
                let held = b.try_into_mut().expect("unshared").capacity();
                assert!(held <= len + ROOM, "{len} bytes held in {held} ({data:?})");
            }
        }
    }

    #[test]
    fn id_and_type_cannot_break_lines() {
        let b = encode(&EventFields { id: "a\nb", event_type: Some("t\r\nx"), retry: Some(5), data: "d" });
        assert_eq!(&b[..], b"event: tx\nretry: 5\nid: ab\ndata: d\n\n");
    }
}
