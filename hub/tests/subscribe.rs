//! Subscribing: the stream itself, topic selectors, delivering each update once, private
//! updates, the SSE encoding of data, token expiry, heartbeats and the write timeout.

mod common;

use std::time::{Duration, SystemTime};

use common::tokens::{exp_instant, unix_time};
use common::*;
use serde_json::json;

const BOOK: &str = "https://example.com/books/1";
const MARKER_TOPIC: &str = "https://example.com/marker";

/// Publishes a public marker update on `MARKER_TOPIC` plus `also` topics; returns its id.
async fn marker(hub: &HubProcess, data: &str) -> String {
    publish_ok(hub.addr(), &publisher_token(&["*"]), &[("topic", MARKER_TOPIC), ("data", data)]).await
}

#[tokio::test]
async fn a_stream_opens_with_sse_headers_and_a_comment() {
    let hub = HubProcess::with_directives("anonymous");
    let mut sub = SseStream::connect(hub.addr(), &subscribe_path(&[BOOK], &[]), &[]).await;
    assert_eq!(sub.header("cache-control"), Some("no-cache"));
    assert_eq!(sub.header("x-accel-buffering"), Some("no"));
    // The opening comment arrives without any update published.
    sub.next_comment(Duration::from_secs(2)).await;
    assert_eq!(sub.raw.first(), Some(&b':'), "first bytes {:?}", String::from_utf8_lossy(&sub.raw));
}

#[tokio::test]
async fn subscribing_without_topic_is_400_and_without_token_is_401_unless_anonymous() {
    let hub = HubProcess::start(&[("MERCURE_PUBLISHER_JWT_KEY", KEY)]);
    let (status, body) = SseStream::status_of(hub.addr(), "/.well-known/mercure", &[]).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = SseStream::status_of(hub.addr(), &subscribe_path(&[BOOK], &[]), &[]).await;
    assert_eq!(status, 401, "{body}");
    // With a token (no claims at all), public updates are allowed.
    let token = hs256(KEY, &json!({}));
    let auth = format!("Bearer {token}");
    let mut s = SseStream::connect(hub.addr(), &subscribe_path(&[BOOK], &[]), &[("Authorization", &auth)]).await;
    let id = publish_ok(hub.addr(), &publisher_token(&["*"]), &[("topic", BOOK), ("data", "public")]).await;
    assert_event(&s.next_event().await, &id, "public");

    let anonymous = HubProcess::with_directives("anonymous");
    let (status, body) = SseStream::status_of(anonymous.addr(), &subscribe_path(&[BOOK], &[]), &[]).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn selectors_wildcard_exact_and_uri_templates() {
    let hub = HubProcess::with_directives("anonymous");
    let addr = hub.addr();
    let mut all = SseStream::connect(addr, &subscribe_path(&["*"], &[]), &[]).await;
    let mut exact = SseStream::connect(addr, &subscribe_path(&[BOOK], &[]), &[]).await;
    let mut template = SseStream::connect(addr, &subscribe_path(&["https://example.com/books/{id}"], &[]), &[]).await;
    let mut authors = SseStream::connect(addr, &subscribe_path(&["https://example.com/authors/{id}"], &[]), &[]).await;
    let token = publisher_token(&["*"]);

    let b1 = publish_ok(addr, &token, &[("topic", BOOK), ("data", "b1")]).await;
    let b2 = publish_ok(addr, &token, &[("topic", "https://example.com/books/2"), ("data", "b2")]).await;
    // Not matched by `{id}`: a variable never spans a `/`.
    let deep = publish_ok(addr, &token, &[("topic", "https://example.com/books/1/reviews"), ("data", "r")]).await;
    let a1 = publish_ok(addr, &token, &[("topic", "https://example.com/authors/1"), ("data", "a1")]).await;

    for (id, data) in [(&b1, "b1"), (&b2, "b2"), (&deep, "r"), (&a1, "a1")] {
        assert_event(&all.next_event().await, id, data);
    }
    let end = marker(&hub, "end").await;
    assert_event(&all.next_event().await, &end, "end");

    exact_only(&mut exact, &[(&b1, "b1")]).await;
    exact_only(&mut template, &[(&b1, "b1"), (&b2, "b2")]).await;
    exact_only(&mut authors, &[(&a1, "a1")]).await;
}

/// Asserts the stream holds exactly these events now, then nothing more for a short while.
async fn exact_only(sub: &mut SseStream, expected: &[(&str, &str)]) {
    for (id, data) in expected {
        assert_event(&sub.next_event().await, id, data);
    }
    sub.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn an_update_matched_several_ways_is_received_once() {
    let hub = HubProcess::with_directives("anonymous");
    let addr = hub.addr();
    let alternate = "https://example.com/alternate/1";
    let path = subscribe_path(&[BOOK, "https://example.com/books/{id}", alternate, "*"], &[]);
    let mut sub = SseStream::connect(addr, &path, &[]).await;
    let token = publisher_token(&["*"]);
    let id = publish_ok(addr, &token, &[("topic", BOOK), ("topic", alternate), ("data", "once")]).await;
    // Matched only through its alternate topic: still delivered.
    let mut alt_only = SseStream::connect(addr, &subscribe_path(&[alternate], &[]), &[]).await;
    let id2 = publish_ok(addr, &token, &[("topic", BOOK), ("topic", alternate), ("data", "alt")]).await;
    let end = marker(&hub, "end").await;

    assert_event(&sub.next_event().await, &id, "once");
    assert_event(&sub.next_event().await, &id2, "alt");
    assert_event(&sub.next_event().await, &end, "end");
    exact_only(&mut alt_only, &[(&id2, "alt")]).await;
}

#[tokio::test]
async fn private_updates_reach_only_subscribers_whose_token_allows_them() {
    // The example of the Mercure specification (section "Authorization").
    let hub = HubProcess::with_directives("anonymous");
    let addr = hub.addr();
    let alternate = "https://example.com/users/dunglas/?topic=https%3A%2F%2Fexample.com%2Fbooks%2F1";
    let subscription = subscribe_path(&["https://example.com/books/{id}", MARKER_TOPIC], &[]);
    let bearer = |selectors: &[&str]| format!("Bearer {}", subscriber_token(selectors));

    let allowed_auth = bearer(&["https://example.com/users/dunglas/{?topic}"]);
    let mut allowed = SseStream::connect(addr, &subscription, &[("Authorization", &allowed_auth)]).await;
    let mut anonymous = SseStream::connect(addr, &subscription, &[]).await;
    let other_auth = bearer(&["https://example.com/users/kevin/{?topic}"]);
    let mut other = SseStream::connect(addr, &subscription, &[("Authorization", &other_auth)]).await;
    let none_auth = bearer(&[]);
    let mut no_selectors = SseStream::connect(addr, &subscription, &[("Authorization", &none_auth)]).await;
    // The token may also name the canonical topic directly, here through the query parameter.
    let by_query = subscribe_path(
        &["https://example.com/books/{id}", MARKER_TOPIC],
        &[("authorization", &subscriber_token(&[BOOK]))],
    );
    let mut canonical = SseStream::connect(addr, &by_query, &[]).await;

    let id = publish_ok(
        addr,
        &publisher_token(&["*"]),
        &[("topic", BOOK), ("topic", alternate), ("data", "secret"), ("private", "on")],
    )
    .await;
    let end = marker(&hub, "public marker").await;

    assert_event(&allowed.next_event().await, &id, "secret");
    assert_event(&allowed.next_event().await, &end, "public marker");
    assert_event(&canonical.next_event().await, &id, "secret");
    assert_event(&canonical.next_event().await, &end, "public marker");
    for (who, sub) in
        [("anonymous", &mut anonymous), ("other selectors", &mut other), ("no selectors", &mut no_selectors)]
    {
        let ev = sub.next_event().await;
        assert_eq!(ev.data, "public marker", "{who} received {ev:?} before the marker");
        assert_event(&ev, &end, "public marker");
    }
}

#[tokio::test]
async fn line_breaks_in_data_cannot_forge_fields_or_events() {
    let hub = HubProcess::with_directives("anonymous");
    let mut sub = SseStream::connect(hub.addr(), &subscribe_path(&[BOOK], &[]), &[]).await;
    let token = publisher_token(&["*"]);
    let injected = "a\n\nid: forged\nevent: x\r\nretry: 1\rdata: y\n";
    let id = publish_ok(hub.addr(), &token, &[("topic", BOOK), ("data", injected)]).await;
    let end = publish_ok(hub.addr(), &token, &[("topic", BOOK), ("data", "after")]).await;

    let ev = sub.next_event().await;
    assert_eq!(ev.id.as_deref(), Some(id.as_str()), "{ev:?}");
    assert_eq!((ev.event.as_deref(), ev.retry), (None, None), "{ev:?}");
    // CRLF and CR normalize to LF, as an EventSource reports them.
    assert_eq!(ev.data, "a\n\nid: forged\nevent: x\nretry: 1\ndata: y\n");
    assert_event(&sub.next_event().await, &end, "after");
}

#[tokio::test]
async fn token_expiry_ends_the_stream_at_that_instant() {
    let hub = HubProcess::with_directives("heartbeat 100ms");
    let exp = unix_time(3);
    let token = hs256(KEY, &json!({"mercure": {"subscribe": ["*"]}, "exp": exp}));
    let auth = format!("Bearer {token}");
    let mut sub = SseStream::connect(hub.addr(), &subscribe_path(&[BOOK], &[]), &[("Authorization", &auth)]).await;
    let id = publish_ok(hub.addr(), &publisher_token(&["*"]), &[("topic", BOOK), ("data", "before")]).await;
    assert_event(&sub.next_event().await, &id, "before");

    sub.expect_end(Duration::from_secs(6)).await;
    let ended = SystemTime::now();
    let at = exp_instant(exp);
    let early = at.duration_since(ended).unwrap_or_default();
    let late = ended.duration_since(at).unwrap_or_default();
    assert!(early <= Duration::from_millis(50), "the stream ended {early:?} before exp");
    assert!(late <= Duration::from_secs(1), "the stream ended {late:?} after exp");
}

#[tokio::test]
async fn heartbeats_are_comment_lines_at_the_configured_period() {
    let hub = HubProcess::with_directives("anonymous\nheartbeat 200ms");
    let mut sub = SseStream::connect(hub.addr(), &subscribe_path(&[BOOK], &[]), &[]).await;
    sub.next_comment(Duration::from_secs(2)).await; // the opening comment
    let start = std::time::Instant::now();
    for _ in 0..4 {
        sub.next_comment(Duration::from_secs(2)).await;
    }
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(550), "4 heartbeats in {took:?}: faster than every 200ms");
    assert!(took <= Duration::from_millis(2000), "4 heartbeats in {took:?}");

    // With the default heartbeat (40 s), nothing but the opening comment for a second.
    let quiet = HubProcess::with_directives("anonymous");
    let mut sub = SseStream::connect(quiet.addr(), &subscribe_path(&[BOOK], &[]), &[]).await;
    sub.next_comment(Duration::from_secs(2)).await;
    assert_eq!(sub.next_item(Duration::from_secs(1)).await, common::sse::Next::Timeout);
}

#[tokio::test]
async fn write_timeout_ends_streams() {
    let hub = HubProcess::with_directives("anonymous\nwrite_timeout 1s");
    let start = std::time::Instant::now();
    let mut sub = SseStream::connect(hub.addr(), &subscribe_path(&[BOOK], &[]), &[]).await;
    let id = publish_ok(hub.addr(), &publisher_token(&["*"]), &[("topic", BOOK), ("data", "live")]).await;
    assert_event(&sub.next_event().await, &id, "live");
    sub.expect_end(Duration::from_secs(4)).await;
    let lived = start.elapsed();
    assert!(lived >= Duration::from_millis(900), "stream ended after {lived:?}, before write_timeout");
    assert!(lived <= Duration::from_millis(2500), "stream ended after {lived:?}");
    assert_eq!(hub.wait_metric("mercure_subscribers", 0, Duration::from_secs(3)).await, 0);
}

/// Fuzz finding (`fuzz::http_head`): a subscription head whose lines end with a bare LF is
/// valid for the parser, but the hub waited for `\r\n\r\n` and left it unanswered until the
/// header timeout. It is answered at once now, like a CRLF one.
#[tokio::test]
async fn a_head_with_bare_lf_line_ends_is_answered() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let hub = HubProcess::with_directives("anonymous");
    for head in [
        "GET /.well-known/mercure?topic=a HTTP/1.1\nHost: x\n\n",
        "GET /.well-known/mercure?topic=a HTTP/1.1\nHost: x\n\r\n",
    ] {
        let mut conn = tokio::net::TcpStream::connect(hub.addr()).await.expect("connect");
        conn.write_all(head.as_bytes()).await.expect("send the head");
        let mut got = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(3), async {
            let mut buf = [0u8; 256];
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = conn.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            std::io::Result::Ok(())
        })
        .await;
        assert!(matches!(read, Ok(Ok(()))), "{head:?}: no complete answer within 3 s: {read:?}");
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 200 "), "{head:?}: {text}");
        assert!(text.to_ascii_lowercase().contains("content-type: text/event-stream"), "{head:?}: {text}");
    }
}
