//! HTTP/2 (h2c, prior knowledge) subscriptions against the connection and subscription
//! ceilings: one connection carries many streams, so `max_subscribers` bounds subscriptions
//! across HTTP/1 and HTTP/2 (503 + `Retry-After` past it, the slot given back when a stream
//! closes) and `max_concurrent_streams` bounds the streams of one connection.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};

const TOPIC: &str = "https://example.com/books/1";

/// An h2c connection (HTTP/2 with prior knowledge), driven by a task of its own.
async fn h2_connect(addr: SocketAddr) -> SendRequest<Empty<Bytes>> {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)).await.expect("h2 handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    send
}

/// Sends a subscription on the connection; the response head (its body unread), or `None`
/// if none came within `timeout`.
async fn h2_subscribe(
    send: &mut SendRequest<Empty<Bytes>>,
    addr: SocketAddr,
    timeout: Duration,
) -> Option<hyper::Response<Incoming>> {
    let uri = format!("http://{addr}{}", subscribe_path(&[TOPIC], &[]));
    let req = Request::get(uri).body(Empty::new()).expect("request");
    send.ready().await.expect("connection ready");
    let resp = send.send_request(req);
    tokio::time::timeout(timeout, resp).await.ok().map(|r| r.expect("h2 response"))
}

/// The body text of a complete (refused) response.
async fn body_text(resp: hyper::Response<Incoming>) -> String {
    let body = tokio::time::timeout(Duration::from_secs(5), resp.into_body().collect())
        .await
        .expect("refusal body in time")
        .expect("refusal body");
    String::from_utf8_lossy(&body.to_bytes()).into_owned()
}

/// Reads a stream until its body holds `needle`; panics after 5 s.
async fn h2_expect(resp: &mut hyper::Response<Incoming>, needle: &str) {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !String::from_utf8_lossy(&seen).contains(needle) {
        let frame = tokio::time::timeout_at(deadline, resp.body_mut().frame())
            .await
            .unwrap_or_else(|_| panic!("{needle:?} not received; got {:?}", String::from_utf8_lossy(&seen)))
            .expect("stream still open")
            .expect("frame");
        if let Ok(data) = frame.into_data() {
            seen.extend_from_slice(&data);
        }
    }
}

#[tokio::test]
async fn max_subscribers_bounds_http2_streams_and_http1_together() {
    let hub = HubProcess::with_directives("anonymous\nmax_subscribers 3\nmax_connections 50");
    let addr = hub.addr();
    let mut conn = h2_connect(addr).await;
    let mut streams = Vec::new();
    let mut refused = 0;
    for i in 0..6 {
        let resp = h2_subscribe(&mut conn, addr, Duration::from_secs(5)).await.expect("an answer");
        if i < 3 {
            assert_eq!(resp.status(), 200, "stream {i}");
            streams.push(resp);
        } else {
            assert_eq!(resp.status(), 503, "stream {i}");
            assert_eq!(resp.headers().get("retry-after").map(|v| v.as_bytes()), Some(&b"1"[..]));
            let reason = body_text(resp).await;
            assert!(reason.contains("too many subscribers"), "{reason:?}");
            assert_eq!(reason.trim_end().lines().count(), 1, "{reason:?}");
            refused += 1;
        }
    }
    assert_eq!(refused, 3);
    assert_eq!(hub.metric("mercure_subscribers").await, 3);
    // HTTP/1 subscriptions count against the same ceiling.
    let (status, reason) = SseStream::status_of(addr, &subscribe_path(&[TOPIC], &[]), &[]).await;
    assert_eq!((status, reason.trim_end()), (503, "too many subscribers (max_subscribers 3), try again"));

    // The three accepted streams work.
    let id = publish_ok(addr, &publisher_token(&["*"]), &[("topic", TOPIC), ("data", "over h2")]).await;
    for s in &mut streams {
        h2_expect(s, &format!("id: {id}\ndata: over h2\n")).await;
    }

    // Closing one stream gives its slot back: an HTTP/1 subscriber takes it.
    drop(streams.pop());
    assert_eq!(hub.wait_metric("mercure_subscribers", 2, Duration::from_secs(5)).await, 2);
    let mut http1 = SseStream::connect(addr, &subscribe_path(&[TOPIC], &[]), &[]).await;
    assert_eq!(hub.metric("mercure_subscribers").await, 3);
    let id = publish_ok(addr, &publisher_token(&["*"]), &[("topic", TOPIC), ("data", "mixed")]).await;
    assert_event(&http1.next_event().await, &id, "mixed");
    assert_eq!(SseStream::status_of(addr, &subscribe_path(&[TOPIC], &[]), &[]).await.0, 503);

    // Everything closed: the gauge is exact and every slot is free again.
    drop(http1);
    drop(streams);
    drop(conn);
    assert_eq!(hub.wait_metric("mercure_subscribers", 0, Duration::from_secs(5)).await, 0);
    let mut conn = h2_connect(addr).await;
    let mut again = Vec::new();
    for i in 0..3 {
        let resp = h2_subscribe(&mut conn, addr, Duration::from_secs(5)).await.expect("an answer");
        assert_eq!(resp.status(), 200, "after the others left, stream {i}");
        again.push(resp);
    }
    assert_eq!(hub.metric("mercure_subscribers").await, 3);
}

#[tokio::test]
async fn max_concurrent_streams_bounds_the_streams_of_one_connection() {
    let hub = HubProcess::start_with_args(
        &[("MERCURE_PUBLISHER_JWT_KEY", KEY), ("MERCURE_EXTRA_DIRECTIVES", "anonymous")],
        &["--max-concurrent-streams", "2"],
    );
    let addr = hub.addr();
    let mut conn = h2_connect(addr).await;
    // The first answer means the server's SETTINGS (with its stream limit) have arrived.
    let first = h2_subscribe(&mut conn, addr, Duration::from_secs(5)).await.expect("an answer");
    let second = h2_subscribe(&mut conn, addr, Duration::from_secs(5)).await.expect("an answer");
    assert_eq!((first.status().as_u16(), second.status().as_u16()), (200, 200));
    // A third stream waits in the client until one of the two closes.
    let mut conn2 = conn.clone();
    let third = tokio::spawn(async move { h2_subscribe(&mut conn2, addr, Duration::from_secs(10)).await });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!third.is_finished(), "a third concurrent stream was answered");
    assert_eq!(hub.metric("mercure_subscribers").await, 2);
    drop(first);
    let third = third.await.expect("task").expect("the third stream is answered once a stream closes");
    assert_eq!(third.status(), 200);
    assert_eq!(hub.wait_metric("mercure_subscribers", 2, Duration::from_secs(5)).await, 2);
}

/// Without `max_subscribers`, the ceiling is `max_connections`: one HTTP/2 connection cannot
/// carry more subscriptions than the hub would accept connections.
#[tokio::test]
async fn the_default_max_subscribers_is_the_connection_ceiling() {
    let hub = HubProcess::with_directives("anonymous\nmax_connections 3");
    let addr = hub.addr();
    let mut conn = h2_connect(addr).await;
    let mut streams = Vec::new();
    for i in 0..3 {
        let resp = h2_subscribe(&mut conn, addr, Duration::from_secs(5)).await.expect("an answer");
        assert_eq!(resp.status(), 200, "stream {i}");
        streams.push(resp);
    }
    let fourth = h2_subscribe(&mut conn, addr, Duration::from_secs(5)).await.expect("an answer");
    assert_eq!(fourth.status(), 503);
    assert!(body_text(fourth).await.contains("max_subscribers 3"));
}
