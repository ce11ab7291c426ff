//! The subscribers' HTTP/1.1 client: one `GET`, its response head, then the body decoded
//! straight off the socket into the SSE parser.
//!
//! Why not hyper's client: on this 2-core machine the load generator shares the CPU with the
//! hub it measures, so every microsecond it spends per event is taken from the hub and shows
//! up as latency. Profiled at 10,000 subscribers × 1 update/s, two thirds of the load
//! generator's CPU was hyper's client machinery (its connection task, body channel and
//! dispatcher) rather than reading the socket; a subscriber needs none of it — one request,
//! then a byte stream. Here a readable socket is read into a per-thread scratch buffer and
//! de-chunked in place; a connection holds its socket, a few bytes of chunk-decoder state and
//! whatever the SSE parser keeps of a partial line.
//!
//! Invariants: [`Body::read`] is cancel safe (it awaits only socket readiness; bytes read are
//! decoded before it returns), so it can sit in a `select!`; anything malformed (head,
//! chunk sizes, framing) ends the stream as an error, never a guess.

use std::cell::RefCell;
use std::io;

use tokio::net::TcpStream;

/// Largest response head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Bytes read from a socket at once (shared by every connection of a worker thread).
const SCRATCH: usize = 64 * 1024;
/// Largest chunk size accepted (the hub writes at most 64 KiB per chunk).
const MAX_CHUNK: u64 = 1 << 40;

thread_local! {
    static SCRATCH_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; SCRATCH]);
}

/// Why a subscription could not be opened (the kinds the worker counts).
pub type OpenError = String;

/// An open event stream: the socket and how its body is framed.
pub struct Body {
    stream: TcpStream,
    framing: Framing,
    /// Body bytes that arrived with the head, handed out by the first [`Body::read`].
    early: Vec<u8>,
}

enum Framing {
    Chunked(Dechunk),
    /// `Content-Length`: bytes left.
    Length(u64),
    /// Delimited by the connection's close (HTTP/1.0 style).
    Close,
}

/// What a [`Body::read`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    /// Some bytes were decoded (possibly none, after a spurious wake-up).
    More,
    /// The body ended properly (last chunk, length reached, or close-delimited EOF).
    End,
}

/// Writes `request` (a complete head without body), reads the response head and checks for
/// `200` with `text/event-stream`. Bounded by the caller's timeout.
pub async fn open(stream: TcpStream, request: &[u8]) -> Result<Body, OpenError> {
    write_all(&stream, request).await.map_err(|_| "request".to_string())?;
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let head_len = loop {
        if buf.len() >= MAX_HEAD {
            return Err("response head too large".to_string());
        }
        if buf.capacity() - buf.len() < 512 {
            buf.reserve(1024);
        }
        stream.readable().await.map_err(|_| "response".to_string())?;
        match stream.try_read_buf(&mut buf) {
            Ok(0) => return Err("closed before response".to_string()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(_) => return Err("response".to_string()),
        }
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
    };
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(&buf[..head_len]) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err("response".to_string()),
    }
    let status = resp.code.unwrap_or(0);
    if status != 200 {
        return Err(format!("status {status}"));
    }
    let header = |name: &str| {
        resp.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).and_then(|h| std::str::from_utf8(h.value).ok())
    };
    if !header("content-type").unwrap_or("").starts_with("text/event-stream") {
        return Err("not an event stream".to_string());
    }
    let framing = if header("transfer-encoding").is_some_and(|te| te.to_ascii_lowercase().contains("chunked")) {
        Framing::Chunked(Dechunk::default())
    } else if let Some(len) = header("content-length") {
        Framing::Length(len.trim().parse().map_err(|_| "response".to_string())?)
    } else {
        Framing::Close
    };
    let early = buf.split_off(head_len);
    Ok(Body { stream, framing, early })
}

impl Body {
    /// Waits until the socket has bytes, reads what is there and hands each decoded body piece
    /// to `on_data`. Cancel safe. `Err` for a broken connection or malformed framing.
    pub async fn read(&mut self, mut on_data: impl FnMut(&[u8])) -> io::Result<Read> {
        if !self.early.is_empty() {
            let early = std::mem::take(&mut self.early);
            let r = self.framing.decode(&early, &mut on_data)?;
            if r == Read::End {
                return Ok(r);
            }
        }
        loop {
            self.stream.readable().await?;
            let got = SCRATCH_BUF.with_borrow_mut(|scratch| match self.stream.try_read(scratch) {
                Ok(0) => Some(match self.framing {
                    Framing::Close => Ok(Read::End),
                    _ => Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
                }),
                Ok(n) => Some(self.framing.decode(&scratch[..n], &mut on_data)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
                Err(e) => Some(Err(e)),
            });
            if let Some(r) = got {
                return r;
            }
        }
    }
}

impl Framing {
    fn decode(&mut self, bytes: &[u8], on_data: &mut impl FnMut(&[u8])) -> io::Result<Read> {
        match self {
            Framing::Chunked(d) => d.decode(bytes, on_data),
            Framing::Length(left) => {
                let take = (*left).min(bytes.len() as u64) as usize;
                if take > 0 {
                    on_data(&bytes[..take]);
                }
                *left -= take as u64;
                Ok(if *left == 0 { Read::End } else { Read::More })
            }
            Framing::Close => {
                on_data(bytes);
                Ok(Read::More)
            }
        }
    }
}

/// HTTP/1.1 chunked transfer coding, decoded incrementally (RFC 9112 section 7.1): any split
/// of the input gives the same output.
#[derive(Debug, Default)]
pub struct Dechunk {
    state: State,
    /// The size being read, or the data left in the current chunk.
    size: u64,
    /// In the trailer section: whether the current line is still empty.
    line_empty: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    #[default]
    Size,
    /// Chunk extensions, skipped to the end of the line.
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    Trailer,
    Done,
}

impl Dechunk {
    /// Decodes `input`, handing data pieces to `on_data`; `End` once the last chunk and the
    /// trailer section are complete (bytes after it are ignored).
    pub fn decode(&mut self, mut input: &[u8], on_data: &mut impl FnMut(&[u8])) -> io::Result<Read> {
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed chunked body");
        while !input.is_empty() {
            if self.state == State::Data {
                let take = self.size.min(input.len() as u64) as usize;
                on_data(&input[..take]);
                self.size -= take as u64;
                input = &input[take..];
                if self.size == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            let b = input[0];
            input = &input[1..];
            self.state = match (self.state, b) {
                (State::Size, b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F') => {
                    let digit = (b as char).to_digit(16).unwrap_or(0) as u64;
                    self.size = self.size * 16 + digit;
                    if self.size > MAX_CHUNK {
                        return Err(bad());
                    }
                    State::Size
                }
                (State::Size, b';' | b' ' | b'\t') => State::Extension,
                (State::Size, b'\r') => State::SizeLf,
                (State::Size | State::Extension | State::SizeLf, b'\n') => self.size_line_done(),
                (State::Extension, _) => State::Extension,
                (State::DataCr, b'\r') => State::DataLf,
                (State::DataCr | State::DataLf, b'\n') => State::Size,
                (State::Trailer, b'\r') => State::Trailer,
                (State::Trailer, b'\n') if self.line_empty => State::Done,
                (State::Trailer, b'\n') => {
                    self.line_empty = true;
                    State::Trailer
                }
                (State::Trailer, _) => {
                    self.line_empty = false;
                    State::Trailer
                }
                (State::Done, _) => return Ok(Read::End),
                _ => return Err(bad()),
            };
        }
        Ok(if self.state == State::Done { Read::End } else { Read::More })
    }

    fn size_line_done(&mut self) -> State {
        if self.size == 0 {
            self.line_empty = true;
            State::Trailer
        } else {
            State::Data
        }
    }
}

/// Writes all of `buf` on a socket shared by reference.
async fn write_all(stream: &TcpStream, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        stream.writable().await?;
        match stream.try_write(buf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The `GET` head of a subscription. `None` when a header value would not be a valid field
/// value (a control character in a token or a Last-Event-ID).
pub fn request_head(path_and_query: &str, host: &str, headers: &[(&str, &str)]) -> Option<Vec<u8>> {
    let valid = |v: &str| v.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f));
    if !valid(path_and_query) || path_and_query.contains(' ') || !valid(host) {
        return None;
    }
    let mut head = format!(
        "GET {path_and_query} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n"
    );
    for (name, value) in headers {
        if !valid(value) {
            return None;
        }
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    Some(head.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dechunk_split(input: &[u8], at: &[usize]) -> (Vec<u8>, io::Result<Read>) {
        let mut d = Dechunk::default();
        let mut out = Vec::new();
        let mut last = Ok(Read::More);
        let mut start = 0;
        for &end in at.iter().chain(std::iter::once(&input.len())) {
            last = d.decode(&input[start..end], &mut |p: &[u8]| out.extend_from_slice(p));
            if last.is_err() {
                break;
            }
            start = end;
        }
        (out, last)
    }

    #[test]
    fn decodes_chunks_whatever_the_split() {
        let wire = b"5\r\nhello\r\n1;ext=1\r\n \r\nA\r\n0123456789\r\n0\r\nx-trailer: 1\r\n\r\n";
        for i in 0..=wire.len() {
            for j in i..=wire.len() {
                let (out, last) = dechunk_split(wire, &[i, j]);
                assert_eq!(out, b"hello 0123456789", "split at {i},{j}");
                assert_eq!(last.expect("valid"), Read::End, "split at {i},{j}");
            }
        }
    }

    #[test]
    fn an_unfinished_body_is_more_and_garbage_is_an_error() {
        let (out, last) = dechunk_split(b"3\r\nab", &[]);
        assert_eq!((out.as_slice(), last.expect("valid")), (&b"ab"[..], Read::More));
        for bad in [&b"zz\r\n"[..], b"3\r\nabcX\r\n", b"ffffffffffffffffff\r\n"] {
            assert!(dechunk_split(bad, &[]).1.is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn request_heads_refuse_line_breaks() {
        let ok = request_head("/m?topic=a", "h", &[("Authorization", "Bearer x")]).expect("valid");
        assert!(ok.starts_with(b"GET /m?topic=a HTTP/1.1\r\nHost: h\r\n"));
        assert!(ok.ends_with(b"Authorization: Bearer x\r\n\r\n"));
        assert!(request_head("/m", "h", &[("Last-Event-ID", "a\r\nX: y")]).is_none());
        assert!(request_head("/m x", "h", &[]).is_none());
    }
}
