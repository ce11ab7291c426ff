//! The clients of `h2-cpu`: SSE subscribers over HTTP/1.1 cleartext (one connection each) or
//! over HTTP/2 + TLS (many streams on each connection), and a publisher on one persistent
//! connection of the same kind.
//!
//! Every subscriber parses its stream with [`crate::sse::Parser`] and adds one to a shared
//! counter per event (one relaxed `fetch_add`: a few thousand a second). Connections are
//! opened with at most [`CONNECTING`] handshakes in flight, so the hub's accept backlog never
//! overflows and no SYN is retried.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// Handshakes (TCP, TLS, first request) in flight at once while connecting.
pub const CONNECTING: usize = 256;

/// What the subscribers saw.
#[derive(Default)]
pub struct Counters {
    /// Events received, all subscribers together.
    pub events: AtomicU64,
    /// Subscriptions answered `200`.
    pub open: AtomicUsize,
    /// Subscriptions that failed (connect, handshake or status).
    pub failed: AtomicUsize,
}

/// The transport of one run.
#[derive(Clone)]
pub enum Transport {
    /// HTTP/1.1 over TCP, one connection per subscriber.
    H1,
    /// HTTP/2 over TLS (ALPN `h2`), `per_conn` streams per connection.
    H2Tls { tls: Arc<rustls::ClientConfig>, per_conn: usize },
}

/// A TLS client configuration trusting `ca.pem`, offering `h2` only.
pub fn tls_config(ca_pem: &std::path::Path) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let ca = CertificateDer::from_pem_file(ca_pem).map_err(|e| format!("{}: {e}", ca_pem.display()))?;
    roots.add(ca).map_err(|e| format!("CA: {e}"))?;
    let mut config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

async fn tls_connect(
    addr: SocketAddr,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let stream =
        tokio_rustls::TlsConnector::from(tls.clone()).connect(name, tcp).await.map_err(|e| format!("TLS: {e}"))?;
    if stream.get_ref().1.alpn_protocol() != Some(b"h2") {
        return Err("the hub did not choose h2".into());
    }
    Ok(stream)
}

async fn h2_handshake<B>(addr: SocketAddr, tls: &Arc<rustls::ClientConfig>) -> Result<http2::SendRequest<B>, String>
where
    B: hyper::body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = tls_connect(addr, tls).await?;
    let (send, conn) = http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("h2 handshake: {e}"))?;
    tokio::spawn(conn);
    Ok(send)
}

async fn h1_handshake<B>(addr: SocketAddr) -> Result<http1::SendRequest<B>, String>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tcp = TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let (send, conn) = http1::handshake(TokioIo::new(tcp)).await.map_err(|e| format!("h1 handshake: {e}"))?;
    tokio::spawn(conn);
    Ok(send)
}

fn uri(transport: &Transport, addr: SocketAddr, path: &str) -> String {
    match transport {
        Transport::H1 => path.to_owned(),
        Transport::H2Tls { .. } => format!("https://{addr}{path}"),
    }
}

/// Opens `n` subscriptions to `path`; returns when every one is open or failed. The tasks
/// reading the streams are returned (abort them to close the streams).
pub async fn subscribe(
    transport: &Transport,
    addr: SocketAddr,
    path: &str,
    n: usize,
    counters: &Arc<Counters>,
) -> Vec<JoinHandle<()>> {
    let gate = Arc::new(Semaphore::new(CONNECTING));
    let mut tasks = Vec::with_capacity(n);
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<()>(n.max(1));
    match transport {
        Transport::H1 => {
            for _ in 0..n {
                let (gate, counters, done, path) = (gate.clone(), counters.clone(), done_tx.clone(), path.to_owned());
                tasks.push(tokio::spawn(async move {
                    let permit = gate.acquire_owned().await;
                    let opened = async {
                        let mut send = h1_handshake::<Empty<Bytes>>(addr).await?;
                        let req = Request::get(path).header("host", addr.to_string()).body(Empty::new());
                        send.send_request(req.map_err(|e| e.to_string())?).await.map_err(|e| e.to_string())
                    }
                    .await;
                    drop(permit);
                    stream(opened, &counters, done).await;
                }));
            }
        }
        Transport::H2Tls { tls, per_conn } => {
            let conns = n.div_ceil((*per_conn).max(1));
            for c in 0..conns {
                let streams = (*per_conn).min(n - c * per_conn);
                let (gate, counters, done, tls) = (gate.clone(), counters.clone(), done_tx.clone(), tls.clone());
                let uri = uri(transport, addr, path);
                tasks.push(tokio::spawn(async move {
                    let permit = gate.acquire_owned().await;
                    let send = match h2_handshake::<Empty<Bytes>>(addr, &tls).await {
                        Ok(s) => s,
                        Err(e) => {
                            eprintln!("h2 connection: {e}");
                            counters.failed.fetch_add(streams, Ordering::Relaxed);
                            for _ in 0..streams {
                                let _ = done.send(()).await;
                            }
                            return;
                        }
                    };
                    let mut readers = Vec::with_capacity(streams);
                    for _ in 0..streams {
                        let (mut send, counters, done, uri) =
                            (send.clone(), counters.clone(), done.clone(), uri.clone());
                        readers.push(tokio::spawn(async move {
                            let opened = async {
                                send.ready().await.map_err(|e| e.to_string())?;
                                let req = Request::get(uri).body(Empty::new()).map_err(|e| e.to_string())?;
                                send.send_request(req).await.map_err(|e| e.to_string())
                            }
                            .await;
                            stream(opened, &counters, done).await;
                        }));
                    }
                    drop(permit);
                    // Aborting this task must end its streams too.
                    let _guard = AbortOnDrop(readers);
                    std::future::pending::<()>().await;
                }));
            }
        }
    }
    drop(done_tx);
    for _ in 0..n {
        if done_rx.recv().await.is_none() {
            break;
        }
    }
    tasks
}

struct AbortOnDrop(Vec<JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// Counts a subscription as open or failed, then reads its events until it ends.
async fn stream(opened: Result<Response<Incoming>, String>, counters: &Counters, done: tokio::sync::mpsc::Sender<()>) {
    let mut body = match opened {
        Ok(resp) if resp.status() == 200 => {
            counters.open.fetch_add(1, Ordering::Relaxed);
            let _ = done.send(()).await;
            resp.into_body()
        }
        Ok(resp) => {
            eprintln!("subscription answered {}", resp.status());
            counters.failed.fetch_add(1, Ordering::Relaxed);
            let _ = done.send(()).await;
            return;
        }
        Err(e) => {
            eprintln!("subscription failed: {e}");
            counters.failed.fetch_add(1, Ordering::Relaxed);
            let _ = done.send(()).await;
            return;
        }
    };
    drop(done);
    let mut parser = crate::sse::Parser::new();
    while let Some(Ok(frame)) = body.frame().await {
        if let Ok(data) = frame.into_data()
            && parser
                .feed(&data, |_, _| {
                    counters.events.fetch_add(1, Ordering::Relaxed);
                })
                .is_err()
        {
            return;
        }
    }
}

/// A publisher on one persistent connection of the run's transport.
pub enum Publisher {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

impl Publisher {
    pub async fn connect(transport: &Transport, addr: SocketAddr) -> Result<Self, String> {
        Ok(match transport {
            Transport::H1 => Publisher::H1(h1_handshake(addr).await?),
            Transport::H2Tls { tls, .. } => Publisher::H2(h2_handshake(addr, tls).await?),
        })
    }

    /// Publishes one update; `Err` unless the hub answers `200`.
    pub async fn publish(&mut self, addr: SocketAddr, token: &str, topic: &str, data: &str) -> Result<(), String> {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("topic", topic)
            .append_pair("data", data)
            .finish();
        let path = "/.well-known/mercure";
        let req = |uri: String| {
            Request::post(uri)
                .header("host", addr.to_string())
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Full::new(Bytes::from(body.clone())))
                .map_err(|e| e.to_string())
        };
        let resp = match self {
            Publisher::H1(s) => {
                s.ready().await.map_err(|e| e.to_string())?;
                s.send_request(req(path.to_owned())?).await
            }
            Publisher::H2(s) => {
                s.ready().await.map_err(|e| e.to_string())?;
                s.send_request(req(format!("https://{addr}{path}"))?).await
            }
        }
        .map_err(|e| format!("publish: {e}"))?;
        let status = resp.status();
        let _ = resp.into_body().collect().await;
        if status != 200 {
            return Err(format!("publish answered {status}"));
        }
        Ok(())
    }
}

/// `GET path` over plain HTTP/1.1 with `Connection: close`; the body as text.
pub async fn get_text(addr: SocketAddr, path: &str) -> Result<String, String> {
    let work = async {
        let mut tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        tcp.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        tcp.read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP head")?;
        if !head.starts_with("HTTP/1.1 200") {
            return Err(format!("GET {path}: {}", head.lines().next().unwrap_or("")));
        }
        Ok(body.to_owned())
    };
    tokio::time::timeout(Duration::from_secs(10), work).await.map_err(|_| format!("GET {path}: timeout"))?
}
