//! An incremental `text/event-stream` parser (the WHATWG SSE event stream format).
//!
//! Bytes arrive in arbitrary chunks; [`Parser::feed`] calls back once per dispatched event
//! with the event's data (several `data:` lines joined with `\n`) and the last event id.
//! Lines end in `\n`, `\r\n` or `\r`; comment lines (starting with `:`) are counted as
//! heartbeats; `retry:` sets the reconnection delay; unknown fields are ignored. An event
//! with no `data` field is not dispatched, but its `id` still updates the last event id,
//! as the spec says.
//!
//! Memory: a partial line is buffered until its end arrives; a line longer than
//! [`MAX_LINE`] is an error (a misbehaving server must not grow the buffer unboundedly).

/// Longest line accepted, in bytes.
pub const MAX_LINE: usize = 1 << 20;

/// Stream-level parse failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// A line exceeded [`MAX_LINE`].
    LineTooLong,
}

/// Parser state for one connection.
#[derive(Debug, Default)]
pub struct Parser {
    /// Bytes of the current, not yet terminated, line.
    line: Vec<u8>,
    /// Data of the event being built.
    data: Vec<u8>,
    has_data: bool,
    /// The last event id seen (persists across events, per the spec).
    last_id: Option<String>,
    /// Set when the previous chunk ended in `\r`, so a leading `\n` must be skipped.
    skip_lf: bool,
    /// Reconnection delay requested by the server, in milliseconds.
    pub retry_ms: Option<u64>,
    /// Comment lines seen (heartbeats).
    pub comments: u64,
}

impl Parser {
    /// A fresh parser.
    pub fn new() -> Self {
        Self::default()
    }

    /// The last event id seen, for `Last-Event-ID` on reconnect.
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// Feeds a chunk; `on_event(data, last_id)` runs for every complete event.
    pub fn feed<F: FnMut(&[u8], Option<&str>)>(&mut self, mut chunk: &[u8], mut on_event: F) -> Result<(), ParseError> {
        if self.skip_lf {
            self.skip_lf = false;
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
            }
        }
        while let Some(pos) = chunk.iter().position(|&b| b == b'\n' || b == b'\r') {
            let (head, tail) = chunk.split_at(pos);
            let is_cr = tail.first() == Some(&b'\r');
            let mut rest = &tail[1..];
            if is_cr {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    Some(_) => {}
                    None => self.skip_lf = true,
                }
            }
            if self.line.is_empty() {
                self.line_done(head, &mut on_event);
            } else {
                self.line.extend_from_slice(head);
                let line = std::mem::take(&mut self.line);
                self.line_done(&line, &mut on_event);
                self.line = line;
                self.line.clear();
            }
            chunk = rest;
        }
        if self.line.len() + chunk.len() > MAX_LINE {
            return Err(ParseError::LineTooLong);
        }
        self.line.extend_from_slice(chunk);
        Ok(())
    }

    fn line_done<F: FnMut(&[u8], Option<&str>)>(&mut self, line: &[u8], on_event: &mut F) {
        if line.is_empty() {
            if self.has_data {
                on_event(&self.data, self.last_id.as_deref());
            }
            self.data.clear();
            self.has_data = false;
            return;
        }
        if line[0] == b':' {
            self.comments += 1;
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"id" if !value.contains(&0) => {
                self.last_id = Some(String::from_utf8_lossy(value).into_owned());
            }
            b"retry" => {
                if let Some(ms) = std::str::from_utf8(value).ok().and_then(|s| s.parse::<u64>().ok()) {
                    self.retry_ms = Some(ms);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(chunks: &[&[u8]]) -> (Vec<(String, Option<String>)>, Parser) {
        let mut p = Parser::new();
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, |d, id| out.push((String::from_utf8_lossy(d).into_owned(), id.map(str::to_owned)))).ok();
        }
        (out, p)
    }

    #[test]
    fn events_across_chunk_boundaries() {
        let (ev, p) =
            collect(&[b":hb\n\nid: 1\nda", b"ta: a\ndata: b\n", b"\nid: 2\r", b"\ndata:c\r\n\r\n", b"retry: 250\n\n"]);
        assert_eq!(ev, vec![("a\nb".to_string(), Some("1".to_string())), ("c".to_string(), Some("2".to_string()))]);
        assert_eq!(p.comments, 1);
        assert_eq!(p.retry_ms, Some(250));
        assert_eq!(p.last_event_id(), Some("2"));
    }

    #[test]
    fn id_without_data_updates_last_id_only() {
        let (ev, p) = collect(&[b"id: 7\n\n"]);
        assert!(ev.is_empty());
        assert_eq!(p.last_event_id(), Some("7"));
    }

    #[test]
    fn lone_cr_line_endings() {
        let (ev, _) = collect(&[b"data: x\r\rdata: y\r", b"\r"]);
        assert_eq!(ev.len(), 2);
    }
}
