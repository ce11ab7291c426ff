//! HTTP/1.x subscriptions served without hyper's connection machinery.
//!
//! Why: a subscriber connection carries one request and then one endless response. hyper's
//! HTTP/1 connection keeps an 8 KiB read buffer and an 8 KiB header buffer (its minimum) plus
//! its state machine for the connection's whole life; measured, ~32 KiB of RSS per idle
//! subscriber. Here the request head is read into a buffer that is freed once parsed, and the
//! stream is written straight from the subscriber's queue, which keeps an idle subscriber to
//! its queue, its registry entries and this task.
//!
//! Every connection starts here: its head is read (bounded in size and time) and parsed with
//! `httparse`, hyper's own parser. An HTTP/1.x `GET /.well-known/mercure` is served by this
//! module; anything else (publishes, the API, HTTP/2 prior knowledge, `HEAD`) is handed to
//! hyper with the bytes already read replayed in front ([`Prefixed`]), so hyper sees the
//! connection exactly as the client sent it.
//!
//! While the stream waits for events, its socket is lent to the subscriber's queue, so a
//! publish writes to it directly instead of waking this task (`queue`'s "Direct writes"; the
//! `direct_writes` directive). The socket is shared (`Arc<TcpStream>`) for that reason, and
//! written here through `&TcpStream` (readiness, then a non-blocking write).
//!
//! The stream uses chunked encoding (HTTP/1.1) or close-delimiting (HTTP/1.0). It ends when
//! the body ends (eviction, expiry, shutdown): the last chunk is written within
//! `shutdown_grace`, then the socket is closed. A client that goes away is noticed by a read
//! returning end-of-file, and its subscriber is dropped at once.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::Body;
use hyper::{Request, Response, Version};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::body::HubBody;
use crate::queue::{DirectSink, chunk_header};
use crate::subscriber::Subscriber;

/// Largest request head accepted (larger gets 431 from hyper's rules: here, a closed
/// connection after a one-line reason).
pub const MAX_HEAD: usize = 16 * 1024;
/// Most headers parsed in a request head.
pub(crate) const MAX_HEADERS: usize = 64;

/// What the first bytes of a connection turned out to be.
pub enum Sniffed {
    /// An HTTP/1.x `GET` of the hub endpoint, parsed; the head buffer is already freed.
    Subscribe(Request<()>),
    /// Anything else: hand these bytes and the connection to hyper.
    Other(Vec<u8>),
}

/// Reads until the end of the request head (or `MAX_HEAD`, or EOF) and decides.
pub async fn sniff(stream: &mut TcpStream, timeout: Duration, endpoint: &str) -> io::Result<Sniffed> {
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let read_head = async {
        loop {
            if buf.capacity() - buf.len() < 512 {
                buf.reserve(1024);
            }
            stream.readable().await?;
            match stream.try_read_buf(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
            if head_complete(&buf) || buf.len() >= MAX_HEAD {
                return Ok(());
            }
        }
    };
    match tokio::time::timeout(timeout, read_head).await {
        Ok(r) => r?,
        Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "request head not received in time")),
    }
    Ok(match parse_subscribe(&buf, endpoint) {
        Some(req) => Sniffed::Subscribe(req),
        None => Sniffed::Other(buf),
    })
}

/// True once `buf` holds the blank line that ends a request head. `httparse` (like RFC 9112
/// section 2.2) also takes a bare LF as a line end, so `\n\n` and `\n\r\n` end a head too;
/// waiting for `\r\n\r\n` alone left such a subscription unanswered until the header timeout
/// (found by the fuzz target `fuzz::http_head`). Stopping early costs nothing: bytes that are
/// not a whole head go to hyper, which reads on.
pub(crate) fn head_complete(buf: &[u8]) -> bool {
    buf.windows(2).any(|w| w == b"\n\n") || buf.windows(3).any(|w| w == b"\n\r\n")
}

/// A complete HTTP/1.x `GET` head for `endpoint` with no body, as a `Request`.
pub(crate) fn parse_subscribe(buf: &[u8], endpoint: &str) -> Option<Request<()>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(len) = parsed.parse(buf).ok()? else { return None };
    let path = parsed.path?;
    if parsed.method? != "GET" || path.split('?').next()? != endpoint || len != buf.len() {
        // Not ours, or the client already sent more (a body or a pipelined request): hyper
        // handles those correctly.
        return None;
    }
    let version = if parsed.version? == 0 { Version::HTTP_10 } else { Version::HTTP_11 };
    let mut req = Request::builder().method("GET").uri(path).version(version);
    for h in parsed.headers.iter() {
        req = req.header(h.name, h.value);
    }
    let req = req.body(()).ok()?;
    if req.headers().contains_key(hyper::header::CONTENT_LENGTH)
        || req.headers().contains_key(hyper::header::TRANSFER_ENCODING)
    {
        return None;
    }
    Some(req)
}

/// Writes a response to a natively served request, streaming an SSE body until it ends.
/// With `direct`, the socket is lent to the subscriber's queue while the stream waits (see the
/// module docs).
pub async fn respond(
    stream: &Arc<TcpStream>,
    version: Version,
    resp: Response<HubBody>,
    grace: Duration,
    direct: bool,
) {
    let (parts, mut body) = resp.into_parts();
    // The subscription's end (eviction, expiry, shutdown) is its queue closing: then a write
    // blocked on a client that stopped reading is abandoned after `grace`, not awaited forever.
    let sub = match &body {
        HubBody::Sse(sse) => Some(sse.subscriber().clone()),
        HubBody::Full(_) => None,
    };
    let mut ending = false;
    let streaming = matches!(body, HubBody::Sse(_));
    let chunked = streaming && version == Version::HTTP_11;
    let length = (!streaming).then(|| body.size_hint().exact().unwrap_or(0));
    // `parts` is consumed here, so its header map is freed before the stream starts.
    let head = encode_head(parts, version, chunked, length);
    if write_all(stream, &head).await.is_err() {
        return;
    }
    drop(head);
    // Lent after the head is written; taken back (the guard) whichever way this ends, before
    // the last chunk.
    let _lent = match (&sub, direct) {
        (Some(sub), true) => Some(Lent::new(sub, stream, chunked)),
        _ => None,
    };

    loop {
        let frame = match std::future::poll_fn(|cx| next_frame(cx, &mut body, sub.as_deref(), stream)).await {
            Next::Frame(f) => f,
            Next::ClientGone => return,
        };
        let (data, framed) = match frame {
            Frame::Spill(rest) => (rest, true),
            Frame::Body(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => (data, false),
                Err(_) => continue,
            },
            Frame::Body(_) => break,
        };
        let write =
            async { if framed { write_all(stream, &data).await } else { write_frame(stream, &data, chunked).await } };
        tokio::pin!(write);
        let written = if ending {
            tokio::time::timeout(grace, write).await.unwrap_or(Err(io::ErrorKind::TimedOut.into()))
        } else {
            tokio::select! {
                biased;
                r = &mut write => r,
                _ = ended(sub.as_deref()) => {
                    ending = true;
                    tokio::time::timeout(grace, write).await.unwrap_or(Err(io::ErrorKind::TimedOut.into()))
                }
            }
        };
        if written.is_err() {
            return;
        }
    }
    drop(_lent);
    // The body ended (eviction, expiry, shutdown): finish politely, but never wait on a
    // client that stopped reading.
    let _ = tokio::time::timeout(grace, async {
        if chunked {
            write_all(stream, b"0\r\n\r\n").await?;
        }
        socket2::SockRef::from(&**stream).shutdown(std::net::Shutdown::Write)
    })
    .await;
}

/// The socket lent to a subscriber's queue for direct writes, taken back on drop.
struct Lent<'a> {
    sub: &'a Subscriber,
}

impl<'a> Lent<'a> {
    fn new(sub: &'a Subscriber, stream: &Arc<TcpStream>, chunked: bool) -> Self {
        sub.queue.set_direct(Some(Arc::new(SharedSocket { stream: stream.clone(), chunked })));
        Lent { sub }
    }
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        self.sub.queue.set_direct(None);
    }
}

/// A natively written connection's socket, as the queue writes to it.
struct SharedSocket {
    stream: Arc<TcpStream>,
    chunked: bool,
}

impl DirectSink for SharedSocket {
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.stream.try_write(buf)
    }

    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.stream.try_write_vectored(bufs)
    }

    fn chunked(&self) -> bool {
        self.chunked
    }
}

/// Writes all of `buf`, waiting for the socket whenever it would block.
async fn write_all(stream: &TcpStream, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match stream.try_write(buf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => stream.writable().await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Resolves when the subscription of this response is over; never for a plain response.
async fn ended(sub: Option<&crate::subscriber::Subscriber>) {
    match sub {
        Some(sub) => sub.queue.wait_closed().await,
        None => std::future::pending().await,
    }
}

/// The status line and headers of a natively written response.
fn encode_head(parts: hyper::http::response::Parts, version: Version, chunked: bool, length: Option<u64>) -> Vec<u8> {
    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(if version == Version::HTTP_10 { b"HTTP/1.0 " } else { b"HTTP/1.1 " });
    head.extend_from_slice(parts.status.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(parts.status.canonical_reason().unwrap_or("").as_bytes());
    head.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    if chunked {
        head.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if let Some(len) = length {
        head.extend_from_slice(format!("content-length: {len}\r\n").as_bytes());
    }
    head.extend_from_slice(b"connection: close\r\n\r\n");
    head
}

enum Next {
    Frame(Frame),
    ClientGone,
}

enum Frame {
    /// The rest of a direct write, already framed.
    Spill(Bytes),
    /// The body's next frame.
    Body(Option<Result<http_body::Frame<Bytes>, std::convert::Infallible>>),
}

/// The next bytes to write — the rest of a direct write first, then the body's next frame —
/// unless the client closes its side first. Polls the socket's read readiness directly (one
/// stored waker, no waiter registered and dropped per event); bytes a client sends after its
/// request are read and dropped.
fn next_frame(cx: &mut Context<'_>, body: &mut HubBody, sub: Option<&Subscriber>, stream: &TcpStream) -> Poll<Next> {
    if let Some(rest) = sub.and_then(|s| s.queue.take_spill()) {
        return Poll::Ready(Next::Frame(Frame::Spill(rest)));
    }
    if let Poll::Ready(f) = Pin::new(&mut *body).poll_frame(cx) {
        return Poll::Ready(Next::Frame(Frame::Body(f)));
    }
    loop {
        match stream.poll_read_ready(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(_)) => return Poll::Ready(Next::ClientGone),
            Poll::Ready(Ok(())) => {
                let mut scratch = [0u8; 256];
                match stream.try_read(&mut scratch) {
                    Ok(0) => return Poll::Ready(Next::ClientGone),
                    // Readiness is cleared by WouldBlock; loop to re-arm it.
                    Ok(_) => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(_) => return Poll::Ready(Next::ClientGone),
                }
            }
        }
    }
}

/// One write per frame: the chunk header, the data and the trailing CRLF as one vectored write
/// (the remainder of a partial write is finished with plain writes).
pub(super) async fn write_frame(stream: &TcpStream, data: &Bytes, chunked: bool) -> io::Result<()> {
    if !chunked {
        return write_all(stream, data).await;
    }
    let mut header_buf = [0u8; 18];
    let header = chunk_header(data.len(), &mut header_buf);
    let parts: [&[u8]; 3] = [header, data, b"\r\n"];
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let slices = [IoSlice::new(parts[0]), IoSlice::new(parts[1]), IoSlice::new(parts[2])];
    let mut written = loop {
        match stream.try_write_vectored(&slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => break n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => stream.writable().await?,
            Err(e) => return Err(e),
        }
    };
    for part in parts {
        if written >= part.len() {
            written -= part.len();
            continue;
        }
        write_all(stream, &part[written..]).await?;
        written = 0;
    }
    debug_assert!(total > 0);
    Ok(())
}

/// An I/O object that first yields `prefix`, then reads from `inner`; writes go to `inner`.
/// Lets hyper read a connection whose first bytes were already consumed by [`sniff`].
pub struct Prefixed<T> {
    prefix: Bytes,
    inner: T,
}

impl<T> Prefixed<T> {
    pub fn new(prefix: Vec<u8>, inner: T) -> Self {
        Prefixed { prefix: Bytes::from(prefix), inner }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Prefixed<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            let head = self.prefix.split_to(n);
            buf.put_slice(&head);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Prefixed<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_headers_are_lowercase_hex() {
        let mut b = [0u8; 18];
        assert_eq!(chunk_header(0, &mut b), b"0\r\n");
        assert_eq!(chunk_header(255, &mut b), b"ff\r\n");
        assert_eq!(chunk_header(65536, &mut b), b"10000\r\n");
        assert_eq!(chunk_header(usize::MAX, &mut b), b"ffffffffffffffff\r\n");
    }

    #[test]
    fn recognizes_only_complete_bodiless_gets_of_the_endpoint() {
        let ep = "/.well-known/mercure";
        let ok = b"GET /.well-known/mercure?topic=a HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 5\r\n\r\n";
        let req = parse_subscribe(ok, ep).expect("a subscription");
        assert_eq!(req.uri().query(), Some("topic=a"));
        assert_eq!(req.headers()["last-event-id"], "5");
        assert!(parse_subscribe(b"POST /.well-known/mercure HTTP/1.1\r\n\r\n", ep).is_none());
        assert!(parse_subscribe(b"GET /healthz HTTP/1.1\r\n\r\n", ep).is_none());
        assert!(parse_subscribe(b"GET /.well-known/mercure/subscriptions HTTP/1.1\r\n\r\n", ep).is_none());
        assert!(parse_subscribe(b"GET /.well-known/mercure HTTP/1.1\r\nHost: x\r\n", ep).is_none(), "incomplete");
        assert!(parse_subscribe(b"GET /.well-known/mercure HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n", ep).is_none());
        assert!(parse_subscribe(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", ep).is_none());
    }
}
