//! A minimal HTTP/1.1 client over a raw `TcpStream`: one request per connection
//! (`Connection: close`), responses framed by `Content-Length`, chunked encoding or EOF.
//! Raw on purpose: no pool, so a test controls exactly how many connections are open, and
//! the same reader serves the SSE client.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Bound on any one plain request, from connect to the last byte.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A complete response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// Sends one request and reads the whole response. Panics on connection errors and after
/// [`REQUEST_TIMEOUT`].
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Response {
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let stream = tokio::time::timeout_at(deadline, TcpStream::connect(addr))
        .await
        .unwrap_or_else(|_| panic!("{method} {path}: connect timed out"))
        .unwrap_or_else(|e| panic!("{method} {path}: connect: {e}"));
    let mut conn = HttpConn::new(stream);
    conn.send_request(method, path, headers, body, deadline).await;
    let head = conn.read_head(deadline).await.unwrap_or_else(|e| panic!("{method} {path}: reading the head: {e}"));
    let mut reader = BodyReader::new(conn, &head, method == "HEAD");
    let mut out = Vec::new();
    while let Some(chunk) =
        reader.next_bytes(deadline).await.unwrap_or_else(|e| panic!("{method} {path}: reading the body: {e}"))
    {
        out.extend_from_slice(&chunk);
    }
    Response { status: head.status, headers: head.headers, body: out }
}

/// `application/x-www-form-urlencoded` encoding of `pairs`.
pub fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// `/.well-known/mercure?topic=…&topic=…` (plus any extra query pairs).
pub fn subscribe_path(topics: &[&str], extra: &[(&str, &str)]) -> String {
    let pairs: Vec<(&str, &str)> = topics.iter().map(|t| ("topic", *t)).chain(extra.iter().copied()).collect();
    format!("/.well-known/mercure?{}", form(&pairs))
}

/// POSTs a publish form with a bearer token.
pub async fn publish(addr: SocketAddr, token: &str, fields: &[(&str, &str)]) -> Response {
    let auth = format!("Bearer {token}");
    let body = form(fields);
    request(
        addr,
        "POST",
        "/.well-known/mercure",
        &[("Authorization", &auth), ("Content-Type", "application/x-www-form-urlencoded")],
        Some(body.as_bytes()),
    )
    .await
}

/// Publishes and asserts 200; returns the update's id (the response body).
pub async fn publish_ok(addr: SocketAddr, token: &str, fields: &[(&str, &str)]) -> String {
    let resp = publish(addr, token, fields).await;
    assert_eq!(resp.status, 200, "publish {fields:?} refused: {}", resp.text());
    resp.text()
}

/// The parsed status line and headers of a response.
pub struct Head {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

/// A connection with a read buffer.
pub struct HttpConn {
    pub stream: TcpStream,
    /// Bytes read from the socket and not consumed yet.
    buf: Vec<u8>,
}

fn timed_out() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out")
}

fn eof() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed")
}

impl HttpConn {
    pub fn new(stream: TcpStream) -> Self {
        HttpConn { stream, buf: Vec::new() }
    }

    pub async fn send_request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        deadline: Instant,
    ) {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(b) = body {
            head.push_str(&format!("Content-Length: {}\r\n", b.len()));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body.unwrap_or_default());
        tokio::time::timeout_at(deadline, self.stream.write_all(&bytes))
            .await
            .unwrap_or_else(|_| panic!("{method} {path}: sending timed out"))
            .unwrap_or_else(|e| panic!("{method} {path}: sending: {e}"));
    }

    /// Reads more bytes into the buffer; `Ok(0)` at EOF.
    async fn fill(&mut self, deadline: Instant) -> std::io::Result<usize> {
        let mut tmp = [0u8; 16 * 1024];
        let n = tokio::time::timeout_at(deadline, self.stream.read(&mut tmp)).await.map_err(|_| timed_out())??;
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(n)
    }

    /// One CRLF-terminated line, without its CRLF.
    async fn read_line(&mut self, deadline: Instant) -> std::io::Result<String> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 2);
                return Ok(line);
            }
            if self.fill(deadline).await? == 0 {
                return Err(eof());
            }
        }
    }

    pub async fn read_head(&mut self, deadline: Instant) -> std::io::Result<Head> {
        let status_line = self.read_line(deadline).await?;
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {status_line:?}")))?;
        let mut headers = Vec::new();
        loop {
            let line = self.read_line(deadline).await?;
            if line.is_empty() {
                return Ok(Head { status, headers });
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_owned(), v.trim().to_owned()));
            }
        }
    }
}

enum Framing {
    Length(usize),
    Close,
    ChunkSize,
    ChunkData(usize),
    ChunkEnd,
    Trailer,
    Done,
}

/// Decodes a response body, whatever its framing.
pub struct BodyReader {
    pub conn: HttpConn,
    framing: Framing,
}

impl BodyReader {
    pub fn new(conn: HttpConn, head: &Head, no_body: bool) -> Self {
        let chunked = header(&head.headers, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        let length = header(&head.headers, "content-length").and_then(|v| v.parse().ok());
        let framing = if no_body || head.status == 204 || head.status == 304 {
            Framing::Done
        } else if chunked {
            Framing::ChunkSize
        } else if let Some(n) = length {
            Framing::Length(n)
        } else {
            Framing::Close
        };
        BodyReader { conn, framing }
    }

    /// The next decoded bytes of the body; `Ok(None)` at its end. Errors: timeout
    /// (`TimedOut`), the connection closing mid-body, resets.
    pub async fn next_bytes(&mut self, deadline: Instant) -> std::io::Result<Option<Vec<u8>>> {
        loop {
            match self.framing {
                Framing::Done | Framing::Length(0) => {
                    self.framing = Framing::Done;
                    return Ok(None);
                }
                Framing::Length(n) | Framing::ChunkData(n) => {
                    if self.conn.buf.is_empty() && self.conn.fill(deadline).await? == 0 {
                        return Err(eof());
                    }
                    let take = n.min(self.conn.buf.len());
                    let out: Vec<u8> = self.conn.buf.drain(..take).collect();
                    self.framing = match self.framing {
                        Framing::Length(_) => Framing::Length(n - take),
                        _ if n == take => Framing::ChunkEnd,
                        _ => Framing::ChunkData(n - take),
                    };
                    return Ok(Some(out));
                }
                Framing::Close => {
                    if self.conn.buf.is_empty() && self.conn.fill(deadline).await? == 0 {
                        self.framing = Framing::Done;
                        return Ok(None);
                    }
                    return Ok(Some(std::mem::take(&mut self.conn.buf)));
                }
                Framing::ChunkSize => {
                    let line = self.conn.read_line(deadline).await?;
                    let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                        .map_err(|_| std::io::Error::other(format!("bad chunk size {line:?}")))?;
                    self.framing = if size == 0 { Framing::Trailer } else { Framing::ChunkData(size) };
                }
                Framing::ChunkEnd => {
                    let line = self.conn.read_line(deadline).await?;
                    if !line.is_empty() {
                        return Err(std::io::Error::other("chunk not followed by CRLF"));
                    }
                    self.framing = Framing::ChunkSize;
                }
                Framing::Trailer => {
                    if self.conn.read_line(deadline).await?.is_empty() {
                        self.framing = Framing::Done;
                    }
                }
            }
        }
    }
}
