//! A panic inside a request is contained (issue 9): the client gets a 500 with a one-line
//! reason, the panic is logged once, every gauge stays exact, and the hub goes on serving.
//! The panics are injected through the debug-build hook (`server/fault.rs`).

mod common;

use std::time::Duration;

use common::*;

const TOPIC: &str = "https://example.com/panics";

#[tokio::test]
async fn a_panicking_request_gets_500_and_leaves_every_gauge_exact() {
    let hub = HubProcess::start(&[
        ("MERCURE_PUBLISHER_JWT_KEY", KEY),
        ("MERCURE_EXTRA_DIRECTIVES", "anonymous"),
        ("MERCURE_FAULT_INJECTION", "1"),
    ]);
    let token = publisher_token(&["*"]);
    let auth = format!("Bearer {token}");
    let mut watcher = SseStream::connect(hub.addr(), &subscribe_path(&[TOPIC], &[]), &[]).await;

    // Publish: panics after the token check (hyper's path).
    let body = form(&[("topic", TOPIC), ("data", "never")]);
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("X-Mercure-Fault", "publish"),
    ];
    let resp = request(hub.addr(), "POST", "/.well-known/mercure", &headers, Some(body.as_bytes())).await;
    assert_eq!((resp.status, resp.text().trim()), (500, "internal error"));

    // Subscribe: panics after the subscriber was registered (the native HTTP/1 path).
    let (status, text) =
        SseStream::status_of(hub.addr(), &subscribe_path(&[TOPIC], &[]), &[("X-Mercure-Fault", "subscribe")]).await;
    assert_eq!((status, text.trim()), (500, "internal error"));

    // Any route through hyper (here /healthz).
    let resp = request(hub.addr(), "GET", "/healthz", &[("X-Mercure-Fault", "route")], None).await;
    assert_eq!(resp.status, 500);

    // The half-registered subscriber is gone, every connection above is closed: only the
    // watcher's subscription and the scrape's own connection remain.
    assert_eq!(hub.wait_metric("mercure_subscribers", 1, Duration::from_secs(5)).await, 1);
    assert_eq!(hub.wait_metric("mercure_connections", 2, Duration::from_secs(5)).await, 2);
    assert_eq!(hub.metric("mercure_panics_total").await, 3);

    // Nothing was published by the panicking publish, and the hub still works.
    let id = publish_ok(hub.addr(), &token, &[("topic", TOPIC), ("data", "after")]).await;
    assert_event(&watcher.next_event().await, &id, "after");
    assert_eq!(hub.metric("mercure_updates_published_total").await, 1);

    // Each panic is one log line.
    let logs = hub.logs();
    let lines: Vec<&str> = logs.lines().filter(|l| l.contains("fault injected at")).collect();
    assert_eq!(lines.len(), 3, "one log line per panic:\n{logs}");
    assert!(lines.iter().all(|l| l.contains("panicked")), "{lines:?}");
}

#[tokio::test]
async fn the_fault_hook_is_off_unless_asked_for() {
    let hub = HubProcess::with_directives("anonymous");
    let resp = request(hub.addr(), "GET", "/healthz", &[("X-Mercure-Fault", "route")], None).await;
    assert_eq!(resp.status, 200);
}
