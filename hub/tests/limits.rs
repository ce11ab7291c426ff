//! Limits on connections and subscriptions: the connection ceiling answers 503 with
//! `Retry-After`, and frees its slot when a client leaves; topic count, length and character
//! bounds; the header and body read timeouts.

mod common;

use std::time::{Duration, Instant};

use common::*;

const TOPIC: &str = "https://example.com/books/1";

#[tokio::test]
async fn past_max_connections_new_connections_get_503_with_retry_after() {
    let hub = HubProcess::with_directives("anonymous\nmax_connections 3\nheartbeat 100ms");
    let mut streams = Vec::new();
    for _ in 0..3 {
        streams.push(SseStream::connect(hub.addr(), &subscribe_path(&[TOPIC], &[]), &[]).await);
    }
    let refused = request(hub.addr(), "GET", "/healthz", &[], None).await;
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(refused.header("retry-after"), Some("1"));
    let (status, _) = SseStream::status_of(hub.addr(), &subscribe_path(&[TOPIC], &[]), &[]).await;
    assert_eq!(status, 503);
    assert!(hub.wait_for_log("refused connection", Duration::from_secs(2)), "logs:\n{}", hub.logs());

    // The three streams still work.
    let id = publish_after_slot_frees(&hub, &mut streams).await;
    for s in &mut streams {
        assert_event(&s.next_event().await, &id, "still here");
    }
    assert!(hub.metric("mercure_refused_connections_total").await >= 2);
}

/// Closes one stream, waits until its slot is free (retrying, as a client would after
/// `Retry-After`), then publishes to the remaining ones. Returns the update's id.
async fn publish_after_slot_frees(hub: &HubProcess, streams: &mut Vec<SseStream>) -> String {
    drop(streams.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let resp = publish(hub.addr(), &publisher_token(&["*"]), &[("topic", TOPIC), ("data", "still here")]).await;
        if resp.status == 200 {
            return resp.text();
        }
        assert_eq!(resp.status, 503, "{}", resp.text());
        assert!(Instant::now() < deadline, "the closed stream's slot was never freed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn subscriptions_past_the_topic_limits_are_400() {
    let hub = HubProcess::with_directives("anonymous\nmax_topics 2\nmax_topic_length 40");
    let addr = hub.addr();
    assert_eq!(SseStream::status_of(addr, &subscribe_path(&["a", "b", "c"], &[]), &[]).await.0, 400);
    assert_eq!(SseStream::status_of(addr, &subscribe_path(&[&"t".repeat(41)], &[]), &[]).await.0, 400);
    assert_eq!(SseStream::status_of(addr, &subscribe_path(&[""], &[]), &[]).await.0, 400);
    // Control characters (percent-encoded in the query, decoded by the hub) are refused too.
    for bad in ["a\0b", "a\rb", "a\nb", "a\tb", "a\x7f", "\x01"] {
        let (status, reason) = SseStream::status_of(addr, &subscribe_path(&["a", bad], &[]), &[]).await;
        assert_eq!(status, 400, "{bad:?}: {reason}");
        assert!(reason.contains("control character"), "{bad:?}: {reason:?}");
        assert_eq!(reason.trim_end().lines().count(), 1, "{reason:?}");
    }
    assert_eq!(hub.metric("mercure_subscribers").await, 0, "no refused subscription was registered");
    let mut ok = SseStream::connect(addr, &subscribe_path(&["a", &"t".repeat(40)], &[]), &[]).await;
    let id = publish_ok(addr, &publisher_token(&["*"]), &[("topic", &"t".repeat(40)), ("data", "edge")]).await;
    assert_event(&ok.next_event().await, &id, "edge");
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let hub = HubProcess::with_directives("anonymous\nheader_read_timeout 1s");
    let mut slow = tokio::net::TcpStream::connect(hub.addr()).await.expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ").await.expect("send");
    let start = Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "connection still open after 5 s with header_read_timeout 1s");
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(800), "closed after {took:?}, before header_read_timeout");
    // Other clients are served meanwhile and after.
    assert_eq!(request(hub.addr(), "GET", "/healthz", &[], None).await.status, 200);
}

/// A connection that never sends a byte holds a connection slot (and a task, an fd) forever:
/// hyper-util's `auto` builder sniffs the protocol before hyper's `header_read_timeout` starts,
/// and that read has no timeout (hyperium/hyper#3756, #3962). `max_connections` such sockets
/// make the hub answer 503 to everyone.
#[tokio::test]
async fn a_connection_that_never_sends_anything_is_disconnected() {
    use tokio::io::AsyncReadExt;
    let hub = HubProcess::with_directives("anonymous\nheader_read_timeout 1s\nmax_connections 2");
    let mut idle = tokio::net::TcpStream::connect(hub.addr()).await.expect("connect");
    let mut idle2 = tokio::net::TcpStream::connect(hub.addr()).await.expect("connect");
    let start = Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(4), idle.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "an idle connection is still open after 4 s with header_read_timeout 1s");
    assert!(start.elapsed() >= Duration::from_millis(800), "idle connection closed after {:?}", start.elapsed());
    let _ = tokio::time::timeout(Duration::from_secs(1), idle2.read_to_end(&mut buf)).await;
    assert_eq!(request(hub.addr(), "GET", "/healthz", &[], None).await.status, 200, "slots freed");
}

/// A publisher that sends its headers and then trickles (here: stops sending) its body gets
/// 408 once `body_read_timeout` has passed, its connection is closed, and nothing is published.
#[tokio::test]
async fn a_publish_body_that_does_not_arrive_in_time_gets_408_and_a_closed_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let hub = HubProcess::with_directives("anonymous\nbody_read_timeout 1s");
    let mut sub = SseStream::connect(hub.addr(), &subscribe_path(&[TOPIC], &[]), &[]).await;
    let mut slow = tokio::net::TcpStream::connect(hub.addr()).await.expect("connect");
    let head = format!(
        "POST /.well-known/mercure HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n",
        publisher_token(&["*"])
    );
    slow.write_all(head.as_bytes()).await.expect("send head");
    // 10 of the 100 announced bytes: a complete-looking form, so a hub that gave up reading
    // and parsed what it had would publish it.
    slow.write_all(b"topic=http").await.expect("send 10 bytes");
    let start = Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(6), slow.read_to_end(&mut buf)).await;
    let took = start.elapsed();
    assert!(
        read.is_ok(),
        "connection still open after 6 s with body_read_timeout 1s: {:?}",
        String::from_utf8_lossy(&buf)
    );
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
    assert!(text.to_ascii_lowercase().contains("connection: close"), "{text}");
    assert!(text.contains("request body not received within 1s"), "{text}");
    assert!(took >= Duration::from_millis(800), "408 after {took:?}, before body_read_timeout");
    assert!(took < Duration::from_secs(4), "408 only after {took:?}");

    assert_eq!(hub.metric("mercure_updates_published_total").await, 0, "the partial body was published");
    // A publish that sends its body at once is unaffected, and is the first thing the
    // subscriber receives.
    let id = publish_ok(hub.addr(), &publisher_token(&["*"]), &[("topic", TOPIC), ("data", "whole")]).await;
    assert_event(&sub.next_event().await, &id, "whole");
}

/// A body that is still arriving, slowly but in full before the deadline, is accepted.
#[tokio::test]
async fn a_slow_body_that_arrives_within_body_read_timeout_is_published() {
    use tokio::io::AsyncWriteExt;
    let hub = HubProcess::start_with_args(
        &[("MERCURE_PUBLISHER_JWT_KEY", KEY), ("MERCURE_EXTRA_DIRECTIVES", "anonymous")],
        &["--body-read-timeout", "3s"],
    );
    let mut sub = SseStream::connect(hub.addr(), &subscribe_path(&[TOPIC], &[]), &[]).await;
    let body = form(&[("topic", TOPIC), ("data", "slow but whole")]);
    let stream = tokio::net::TcpStream::connect(hub.addr()).await.expect("connect");
    let mut conn = common::http::HttpConn::new(stream);
    let head = format!(
        "POST /.well-known/mercure HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        publisher_token(&["*"]),
        body.len()
    );
    conn.stream.write_all(head.as_bytes()).await.expect("send head");
    let (first, rest) = body.as_bytes().split_at(body.len() / 2);
    conn.stream.write_all(first).await.expect("send half");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    conn.stream.write_all(rest).await.expect("send the rest");
    let head = conn.read_head(tokio::time::Instant::now() + Duration::from_secs(5)).await.expect("response");
    assert_eq!(head.status, 200);
    assert_eq!(sub.next_event().await.data, "slow but whole");
}

/// The limits added for hostile clients have flags as well as directives.
#[tokio::test]
async fn max_subscribers_has_a_flag_and_the_tcp_options_are_listed() {
    let hub = HubProcess::start_with_args(
        &[("MERCURE_PUBLISHER_JWT_KEY", KEY), ("MERCURE_EXTRA_DIRECTIVES", "anonymous\nmax_subscribers 5")],
        &["--max-subscribers", "1", "--tcp-keepalive", "0s", "--tcp-user-timeout", "0s"],
    );
    let _one = SseStream::connect(hub.addr(), &subscribe_path(&[TOPIC], &[]), &[]).await;
    let (status, reason) = SseStream::status_of(hub.addr(), &subscribe_path(&[TOPIC], &[]), &[]).await;
    assert_eq!(status, 503, "--max-subscribers 1 overrides the directive: {reason}");
    let (code, help) = run_to_exit(&[], &["--help"], Duration::from_secs(10));
    assert_eq!(code, Some(0), "{help}");
    for flag in [
        "--body-read-timeout",
        "--tcp-keepalive",
        "--tcp-user-timeout",
        "--max-subscribers",
        "--max-concurrent-streams",
    ] {
        assert!(help.contains(flag), "--help does not list {flag}");
    }
}
