//! TLS: HTTP/1.1 and HTTP/2 (ALPN) clients over TLS, 100 concurrent SSE streams on one HTTP/2
//! connection, and a certificate reload (SIGHUP) while streams stay open.
//!
//! Certificates are generated in the test with the `openssl` command line (a CA and leaves
//! for `localhost`/`127.0.0.1`, `common::certs`); nothing is committed.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::certs::{certs, make_leaf};
use common::*;
use http_body_util::{BodyExt, Empty, Full};
use hyper::Request;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

const TOPIC: &str = "https://example.com/books/1";

fn connector(dir: &Path, alpn: &[&[u8]]) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(dir.join("ca.pem")).expect("ca.pem")).expect("add the CA");
    let mut config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsConnector::from(Arc::new(config))
}

async fn tls_connect(dir: &Path, addr: SocketAddr, alpn: &[&[u8]]) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("server name");
    tokio::time::timeout(Duration::from_secs(10), connector(dir, alpn).connect(name, tcp))
        .await
        .expect("handshake in time")
        .expect("TLS handshake")
}

fn tls_hub(dir: &Path) -> HubProcess {
    let cert = dir.join("leaf1.pem");
    let key = dir.join("leaf1.key");
    HubProcess::start(&[
        ("MERCURE_PUBLISHER_JWT_KEY", KEY),
        (
            "MERCURE_EXTRA_DIRECTIVES",
            &format!("anonymous\nadmin 127.0.0.1:0\ntransport local\ntls {} {}", cert.display(), key.display()),
        ),
    ])
}

/// A gauge or counter read from the admin listener (cleartext; the public one speaks TLS).
async fn admin_metric(hub: &HubProcess, name: &str) -> u64 {
    assert!(hub.wait_for_log("admin_addr=", Duration::from_secs(10)), "logs:\n{}", hub.logs());
    let logs = hub.logs();
    let admin: SocketAddr = logs
        .split("admin_addr=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .expect("admin address");
    let text = request(admin, "GET", "/metrics", &[], None).await.text();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in:\n{text}"))
}

/// Publishes over HTTP/1.1 on TLS; returns the status and body.
async fn publish_tls(dir: &Path, addr: SocketAddr, data: &str) -> (u16, String) {
    let tls = tls_connect(dir, addr, &[b"http/1.1"]).await;
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await.expect("h1");
    tokio::spawn(conn);
    let body = form(&[("topic", TOPIC), ("data", data)]);
    let req = Request::post("/.well-known/mercure")
        .header("host", "localhost")
        .header("authorization", format!("Bearer {}", publisher_token(&["*"])))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    let resp = send.send_request(req).await.expect("publish response");
    let status = resp.status().as_u16();
    let text = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&text).into_owned())
}

type H2 = hyper::client::conn::http2::SendRequest<Empty<Bytes>>;

async fn h2(dir: &Path, addr: SocketAddr) -> (H2, Vec<u8>) {
    let tls = tls_connect(dir, addr, &[b"h2", b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]), "ALPN chose h2");
    let leaf = tls.get_ref().1.peer_certificates().expect("a certificate")[0].to_vec();
    let (send, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), hyper_util::rt::TokioIo::new(tls))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    (send, leaf)
}

async fn h2_subscribe(send: &mut H2) -> hyper::Response<hyper::body::Incoming> {
    let req =
        Request::get(format!("https://localhost{}", subscribe_path(&[TOPIC], &[]))).body(Empty::new()).expect("req");
    send.ready().await.expect("ready");
    let resp =
        tokio::time::timeout(Duration::from_secs(10), send.send_request(req)).await.expect("in time").expect("resp");
    assert_eq!(resp.status(), 200);
    resp
}

/// Reads a stream until its body holds `needle`; panics after 10 s.
async fn expect_in(resp: &mut hyper::Response<hyper::body::Incoming>, needle: &str) {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(&seen).contains(needle) {
        let frame = tokio::time::timeout_at(deadline, resp.body_mut().frame())
            .await
            .unwrap_or_else(|_| panic!("{needle:?} not received; got {:?}", String::from_utf8_lossy(&seen)))
            .expect("stream open")
            .expect("frame");
        if let Ok(data) = frame.into_data() {
            seen.extend_from_slice(&data);
        }
    }
}

#[tokio::test]
async fn http1_over_tls() {
    let dir = certs();
    let hub = tls_hub(&dir);
    let tls = tls_connect(&dir, hub.addr(), &[b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await.expect("h1");
    tokio::spawn(conn);
    let req = Request::get("/healthz").header("host", "localhost").body(Empty::<Bytes>::new()).expect("req");
    assert_eq!(send.send_request(req).await.expect("response").status(), 200);
    let (status, id) = publish_tls(&dir, hub.addr(), "over tls").await;
    assert_eq!(status, 200, "{id}");
    // Cleartext on a TLS listener is not served.
    let plain = tokio::time::timeout(Duration::from_secs(10), async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = TcpStream::connect(hub.addr()).await.expect("connect");
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf).await;
        buf
    })
    .await
    .expect("the hub closes a cleartext connection");
    assert!(!String::from_utf8_lossy(&plain).starts_with("HTTP/1.1 200"), "cleartext answered");
}

#[tokio::test]
async fn a_hundred_streams_on_one_http2_connection_over_tls() {
    let dir = certs();
    let hub = tls_hub(&dir);
    let (mut send, _) = h2(&dir, hub.addr()).await;
    let mut streams = Vec::new();
    for _ in 0..100 {
        streams.push(h2_subscribe(&mut send).await);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while admin_metric(&hub, "mercure_subscribers").await != 100 {
        assert!(tokio::time::Instant::now() < deadline, "not 100 subscribers");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(admin_metric(&hub, "mercure_connections").await, 1, "one HTTP/2 connection carries them");
    let (status, id) = publish_tls(&dir, hub.addr(), "to all hundred").await;
    assert_eq!(status, 200, "{id}");
    for s in &mut streams {
        expect_in(s, &format!("id: {id}\ndata: to all hundred\n")).await;
    }
}

#[tokio::test]
async fn a_new_certificate_is_used_after_sighup_and_open_streams_stay() {
    let dir = certs();
    let hub = tls_hub(&dir);
    let (mut send, before) = h2(&dir, hub.addr()).await;
    let mut stream = h2_subscribe(&mut send).await;

    // A second leaf replaces the first in place, then SIGHUP.
    let (cert2, key2) = make_leaf(&dir, "leaf2");
    std::fs::copy(&key2, dir.join("leaf1.key.new")).expect("copy");
    std::fs::copy(&cert2, dir.join("leaf1.pem.new")).expect("copy");
    std::fs::rename(dir.join("leaf1.key.new"), dir.join("leaf1.key")).expect("rename");
    std::fs::rename(dir.join("leaf1.pem.new"), dir.join("leaf1.pem")).expect("rename");
    let status = Command::new("kill").args(["-HUP", &hub.pid().to_string()]).status().expect("kill");
    assert!(status.success());
    assert!(hub.wait_for_log("TLS certificate reloaded", Duration::from_secs(10)), "logs:\n{}", hub.logs());

    let (_, after) = h2(&dir, hub.addr()).await;
    assert_ne!(before, after, "a new connection gets the new certificate");
    assert_eq!(after, CertificateDer::from_pem_file(&cert2).expect("leaf2").to_vec());
    // The stream opened before the reload still receives.
    let (status, id) = publish_tls(&dir, hub.addr(), "after reload").await;
    assert_eq!(status, 200, "{id}");
    expect_in(&mut stream, &format!("id: {id}\ndata: after reload\n")).await;
}

#[test]
fn a_missing_certificate_is_a_configuration_error() {
    let (code, out) = run_to_exit(
        &[
            ("MERCURE_PUBLISHER_JWT_KEY", KEY),
            ("MERCURE_EXTRA_DIRECTIVES", "admin off\ntls /nonexistent.pem /nonexistent.key"),
        ],
        &[],
        Duration::from_secs(10),
    );
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("/nonexistent.pem"), "{out}");
    let (code, out) = run_to_exit(&[("SERVER_NAME", "https://127.0.0.1:0")], &[], Duration::from_secs(10));
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("https://"), "{out}");
}

#[tokio::test]
async fn a_changed_certificate_file_is_reloaded_without_a_signal() {
    let dir = certs();
    let hub = tls_hub(&dir);
    let (_, before) = h2(&dir, hub.addr()).await;
    let (cert2, key2) = make_leaf(&dir, "leaf2");
    std::fs::copy(&key2, dir.join("leaf1.key")).expect("copy");
    std::fs::copy(&cert2, dir.join("leaf1.pem")).expect("copy");
    // The files are checked every 5 s.
    assert!(hub.wait_for_log("files changed", Duration::from_secs(15)), "logs:\n{}", hub.logs());
    let (_, after) = h2(&dir, hub.addr()).await;
    assert_ne!(before, after);
    assert_eq!(after, CertificateDer::from_pem_file(&cert2).expect("leaf2").to_vec());
}
