//! An SSE client: opens a subscription, then yields events (`id`, `event`, `retry`, `data`)
//! and comment lines, parsed as the WHATWG EventSource parser does (lines end at CRLF, LF or
//! CR; `data` lines are joined with LF; one leading space after the colon is dropped).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

use super::http::{BodyReader, HttpConn, header};

/// Default bound on waiting for one event.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(5);

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    pub id: Option<String>,
    pub event: Option<String>,
    pub retry: Option<u64>,
    pub data: String,
}

/// What the stream produced next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Event(Event),
    /// A comment line, without its leading `:`.
    Comment(String),
}

#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    Item(Item),
    /// The response body ended or the connection closed.
    End,
    Timeout,
}

/// Asserts an event's id and data in one line.
#[track_caller]
pub fn assert_event(ev: &Event, id: &str, data: &str) {
    assert_eq!((ev.id.as_deref(), ev.data.as_str()), (Some(id), data), "unexpected event {ev:?}");
}

pub struct SseStream {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    body: BodyReader,
    /// Decoded body bytes not yet split into lines.
    pending: Vec<u8>,
    /// Every decoded body byte so far, up to 64 KiB (to check what the stream starts with).
    pub raw: Vec<u8>,
    current: Event,
    has_data: bool,
    items: VecDeque<Item>,
    ended: bool,
}

impl SseStream {
    /// Opens `GET path` (e.g. from `subscribe_path`) and reads the response head. Whatever the
    /// status; tests check `status` (a refused subscription has a short body, readable with
    /// [`SseStream::body_text`]).
    pub async fn open(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Self {
        Self::open_with(addr, "GET", path, headers, None).await
    }

    /// [`SseStream::open`] with another method and a body (Mercure 1.0's `QUERY`).
    pub async fn open_with(
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Self {
        let deadline = Instant::now() + Duration::from_secs(10);
        let stream = tokio::time::timeout_at(deadline, TcpStream::connect(addr))
            .await
            .expect("subscribe: connect timed out")
            .expect("subscribe: connect");
        Self::open_on(stream, method, path, headers, body).await
    }

    /// [`SseStream::open_with`] on a connection the caller made (a socket with its own
    /// options, say).
    pub async fn open_on(
        stream: TcpStream,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Self {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut conn = HttpConn::new(stream);
        let mut all = vec![("Accept", "text/event-stream")];
        if body.is_some() {
            all.push(("Content-Type", "application/x-www-form-urlencoded"));
        }
        all.extend_from_slice(headers);
        conn.send_request(method, path, &all, body, deadline).await;
        let head = conn.read_head(deadline).await.unwrap_or_else(|e| panic!("subscribe {path}: reading head: {e}"));
        let body = BodyReader::new(conn, &head, false);
        SseStream {
            status: head.status,
            headers: head.headers,
            body,
            pending: Vec::new(),
            raw: Vec::new(),
            current: Event::default(),
            has_data: false,
            items: VecDeque::new(),
            ended: false,
        }
    }

    /// Opens a subscription and asserts it was accepted (200, `text/event-stream`).
    pub async fn connect(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Self {
        Self::connect_with(addr, "GET", path, headers, None).await
    }

    /// [`SseStream::connect`] with another method and a body.
    pub async fn connect_with(
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Self {
        let mut s = Self::open_with(addr, method, path, headers, body).await;
        if s.status != 200 {
            let body = s.body_text().await;
            panic!("subscribe {path}: status {}: {body}", s.status);
        }
        assert_eq!(s.header("content-type"), Some("text/event-stream"), "subscribe {path}");
        s
    }

    /// Opens a subscription only to learn its status: the status and, when it was refused,
    /// the body (the reason); a stream that was accepted is dropped at once.
    pub async fn status_of(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
        let mut s = Self::open(addr, path, headers).await;
        if s.status == 200 {
            return (200, String::new());
        }
        let body = s.body_text().await;
        (s.status, body)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The client's end of the connection (to find the hub's end in `/proc/net/tcp`).
    pub fn local_addr(&self) -> SocketAddr {
        self.body.conn.stream.local_addr().expect("local address of a connected socket")
    }

    /// The whole body of a refused (non-streaming) response.
    pub async fn body_text(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut out = Vec::new();
        while let Ok(Some(b)) = self.body.next_bytes(deadline).await {
            out.extend_from_slice(&b);
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The next event or comment, the end of the stream, or a timeout.
    pub async fn next_item(&mut self, timeout: Duration) -> Next {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(item) = self.items.pop_front() {
                return Next::Item(item);
            }
            if self.ended {
                return Next::End;
            }
            match self.body.next_bytes(deadline).await {
                Ok(Some(bytes)) => self.feed(&bytes),
                Ok(None) => self.finish(),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return Next::Timeout,
                // Closed mid-chunk or reset: the stream is over either way.
                Err(_) => self.finish(),
            }
        }
    }

    /// The next event, skipping comments. Panics on the end of the stream or after `timeout`.
    pub async fn next_event_within(&mut self, timeout: Duration) -> Event {
        let deadline = Instant::now() + timeout;
        loop {
            match self.next_item(deadline.saturating_duration_since(Instant::now())).await {
                Next::Item(Item::Event(e)) => return e,
                Next::Item(Item::Comment(_)) => {}
                Next::End => panic!("stream ended while waiting for an event"),
                Next::Timeout => panic!("no event within {timeout:?}"),
            }
        }
    }

    /// The next event within [`EVENT_TIMEOUT`].
    pub async fn next_event(&mut self) -> Event {
        self.next_event_within(EVENT_TIMEOUT).await
    }

    /// The next comment line, skipping nothing else: an event first is a failure.
    pub async fn next_comment(&mut self, timeout: Duration) -> String {
        match self.next_item(timeout).await {
            Next::Item(Item::Comment(c)) => c,
            other => panic!("expected a comment line, got {other:?}"),
        }
    }

    /// Waits for the end of the stream, skipping comments; panics on an event or a timeout.
    /// Returns how long it took.
    pub async fn expect_end(&mut self, timeout: Duration) -> Duration {
        let start = Instant::now();
        let deadline = start + timeout;
        loop {
            match self.next_item(deadline.saturating_duration_since(Instant::now())).await {
                Next::End => return start.elapsed(),
                Next::Item(Item::Comment(_)) => {}
                Next::Item(Item::Event(e)) => panic!("expected the stream to end, got event {e:?}"),
                Next::Timeout => panic!("stream still open after {timeout:?}"),
            }
        }
    }

    /// Asserts that no event arrives for `period` (comments are fine) and the stream stays open.
    pub async fn expect_silence(&mut self, period: Duration) {
        let deadline = Instant::now() + period;
        loop {
            match self.next_item(deadline.saturating_duration_since(Instant::now())).await {
                Next::Timeout => return,
                Next::Item(Item::Comment(_)) => {}
                other => panic!("expected silence for {period:?}, got {other:?}"),
            }
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        if self.raw.len() < 64 * 1024 {
            self.raw.extend_from_slice(bytes);
        }
        self.pending.extend_from_slice(bytes);
        self.parse_lines(false);
    }

    fn finish(&mut self) {
        self.parse_lines(true);
        // An event without its terminating blank line is discarded, as a browser does.
        self.ended = true;
    }

    fn parse_lines(&mut self, at_eof: bool) {
        let mut start = 0;
        let mut i = 0;
        while i < self.pending.len() {
            let b = self.pending[i];
            if b == b'\n' || b == b'\r' {
                // A CR at the very end may be the first half of a CRLF still in flight.
                if b == b'\r' && i + 1 == self.pending.len() && !at_eof {
                    break;
                }
                let line = String::from_utf8_lossy(&self.pending[start..i]).into_owned();
                i += if b == b'\r' && self.pending.get(i + 1) == Some(&b'\n') { 2 } else { 1 };
                start = i;
                self.line(&line);
            } else {
                i += 1;
            }
        }
        self.pending.drain(..start);
    }

    fn line(&mut self, line: &str) {
        if line.is_empty() {
            let ev = std::mem::take(&mut self.current);
            if std::mem::take(&mut self.has_data) {
                let mut ev = ev;
                if ev.data.ends_with('\n') {
                    ev.data.pop();
                }
                self.items.push_back(Item::Event(ev));
            }
            return;
        }
        if let Some(comment) = line.strip_prefix(':') {
            self.items.push_back(Item::Comment(comment.to_owned()));
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => {
                self.current.data.push_str(value);
                self.current.data.push('\n');
                self.has_data = true;
            }
            "id" => self.current.id = Some(value.to_owned()),
            "event" => self.current.event = Some(value.to_owned()),
            "retry" => self.current.retry = value.parse().ok(),
            _ => {}
        }
    }
}
