//! Operations: the admin listener, health probes (the history store's included) and the
//! Go hub's metric names beside ours.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;

const TOPIC: &str = "https://example.com/books/1";

/// The admin listener's address from the `admin_addr=…` log line.
fn admin_addr(hub: &HubProcess) -> Option<SocketAddr> {
    let logs = hub.logs();
    let rest = logs.split("admin_addr=").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

fn wait_admin(hub: &HubProcess) -> SocketAddr {
    assert!(hub.wait_for_log("admin_addr=", Duration::from_secs(10)), "no admin listener; logs:\n{}", hub.logs());
    admin_addr(hub).expect("admin address")
}

/// The value of `name` in Prometheus text (a line `name value`).
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test]
async fn the_admin_listener_serves_health_and_metrics_only() {
    let hub = HubProcess::with_directives("anonymous\nadmin 127.0.0.1:0");
    let admin = wait_admin(&hub);
    assert_ne!(admin, hub.addr());
    for path in ["/healthz", "/mercure/health/live", "/mercure/health/ready", "/mercure/health/default/ready"] {
        let r = request(admin, "GET", path, &[], None).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
    let metrics = request(admin, "GET", "/metrics", &[], None).await;
    assert_eq!(metrics.status, 200);
    assert!(metric(&metrics.text(), "mercure_subscribers_connected").is_some(), "{}", metrics.text());
    // Not the hub: no subscriptions, no publishing there.
    assert_eq!(request(admin, "GET", &subscribe_path(&[TOPIC], &[]), &[], None).await.status, 404);
    assert_eq!(request(admin, "POST", "/metrics", &[], Some(b"x")).await.status, 405);
    // The public listener serves the same health paths.
    assert_eq!(request(hub.addr(), "GET", "/mercure/health/ready", &[], None).await.status, 200);
}

#[tokio::test]
async fn a_taken_admin_port_is_logged_and_the_hub_serves_anyway() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let hub = HubProcess::with_directives(&format!("admin {addr}"));
    assert!(hub.wait_for_log("admin listener not started", Duration::from_secs(5)), "logs:\n{}", hub.logs());
    assert!(admin_addr(&hub).is_none());
    assert_eq!(request(hub.addr(), "GET", "/mercure/health/ready", &[], None).await.status, 200);
}

#[tokio::test]
async fn admin_off_binds_nothing() {
    let hub = HubProcess::with_directives("admin off");
    assert_eq!(request(hub.addr(), "GET", "/healthz", &[], None).await.status, 200);
    assert!(!hub.logs().contains("admin_addr="), "logs:\n{}", hub.logs());
    assert!(!hub.logs().contains("admin listener not started"), "logs:\n{}", hub.logs());
}

#[tokio::test]
async fn readiness_and_liveness_follow_the_history_writer() {
    // Default transport: the redb file in the hub's own working directory.
    let hub = HubProcess::start(&[
        ("MERCURE_PUBLISHER_JWT_KEY", KEY),
        ("MERCURE_EXTRA_DIRECTIVES", "admin 127.0.0.1:0"),
        ("MERCURE_FAULT_INJECTION", "1"),
    ]);
    let admin = wait_admin(&hub);
    let token = publisher_token(&["*"]);
    publish_ok(hub.addr(), &token, &[("topic", TOPIC), ("data", "stored")]).await;
    assert_eq!(request(admin, "GET", "/mercure/health/ready", &[], None).await.status, 200);

    // The writer thread panics on this update (debug builds with fault injection only).
    let r = publish(hub.addr(), &token, &[("topic", TOPIC), ("id", "urn:mercure:fault:history-writer")]).await;
    assert_eq!(r.status, 503, "{}", r.text());
    for addr in [admin, hub.addr()] {
        let ready = request(addr, "GET", "/mercure/health/ready", &[], None).await;
        assert_eq!(ready.status, 503, "{}", ready.text());
        assert!(ready.text().contains("history writer stopped"), "{}", ready.text());
        assert_eq!(request(addr, "GET", "/mercure/health/live", &[], None).await.status, 503);
        assert_eq!(request(addr, "GET", "/healthz", &[], None).await.status, 200, "healthz: the process only");
    }
    let metrics = request(admin, "GET", "/metrics", &[], None).await.text();
    assert_eq!(metric(&metrics, "mercure_updates_failed_total"), Some(1.0), "{metrics}");
}

#[tokio::test]
async fn a_failed_commit_makes_the_hub_unready_until_a_commit_succeeds() {
    let hub = HubProcess::start(&[
        ("MERCURE_PUBLISHER_JWT_KEY", KEY),
        ("MERCURE_EXTRA_DIRECTIVES", "admin off"),
        ("MERCURE_FAULT_INJECTION", "1"),
    ]);
    let token = publisher_token(&["*"]);
    // This update's commit fails (debug builds with fault injection only).
    let r = publish(hub.addr(), &token, &[("topic", TOPIC), ("id", "urn:mercure:fault:history-commit")]).await;
    assert_eq!(r.status, 503, "{}", r.text());
    let ready = request(hub.addr(), "GET", "/mercure/health/ready", &[], None).await;
    assert_eq!(ready.status, 503, "{}", ready.text());
    assert!(ready.text().contains("history write failed"), "{}", ready.text());
    assert_eq!(request(hub.addr(), "GET", "/mercure/health/live", &[], None).await.status, 200, "still live");
    let text = request(hub.addr(), "GET", "/metrics", &[], None).await.text();
    assert_eq!(metric(&text, "mercure_history_failed_commits_total"), Some(1.0), "{text}");
    // The next commit succeeds: ready again.
    publish_ok(hub.addr(), &token, &[("topic", TOPIC), ("data", "fine")]).await;
    assert_eq!(request(hub.addr(), "GET", "/mercure/health/ready", &[], None).await.status, 200);
}

#[tokio::test]
async fn go_metric_names_and_ours_count_the_same_things() {
    let hub = HubProcess::with_directives("anonymous\nadmin off");
    let mut a = SseStream::connect(hub.addr(), &subscribe_path(&[TOPIC], &[]), &[]).await;
    let b = SseStream::connect(hub.addr(), &subscribe_path(&[TOPIC], &[]), &[]).await;
    drop(b);
    let token = publisher_token(&["*"]);
    for i in 0..3 {
        let id = publish_ok(hub.addr(), &token, &[("topic", TOPIC), ("data", &format!("u{i}"))]).await;
        assert_event(&a.next_event().await, &id, &format!("u{i}"));
    }
    assert_eq!(hub.wait_metric("mercure_subscribers_connected", 1, Duration::from_secs(5)).await, 1);
    let text = request(hub.addr(), "GET", "/metrics", &[], None).await.text();
    let m = |name: &str| metric(&text, name).unwrap_or_else(|| panic!("{name} missing:\n{text}"));
    assert_eq!(m("mercure_subscribers_connected"), m("mercure_subscribers"));
    assert_eq!(m("mercure_subscribers_total"), 2.0);
    assert_eq!(m("mercure_subscriptions_total"), 2.0);
    assert_eq!(m("mercure_updates_total"), 3.0);
    assert_eq!(m("mercure_updates_published_total"), 3.0);
    assert_eq!(m("mercure_updates_failed_total"), 0.0);
    assert_eq!(m("mercure_history_updates"), 3.0);
    assert!(m("mercure_history_bytes") > 0.0);
    assert_eq!(m("mercure_queued_events"), 0.0, "the subscriber read everything");
    // One durable commit per publish here (each publisher waits for its own fsync).
    assert!(m("mercure_history_fsync_duration_seconds_count") >= 3.0, "{text}");
    assert_eq!(
        m("mercure_history_fsync_duration_seconds_count"),
        m("mercure_history_fsync_duration_seconds_bucket{le=\"+Inf\"}")
    );
    assert!(text.contains("# TYPE mercure_history_fsync_duration_seconds histogram"), "{text}");
}

#[tokio::test]
async fn queue_depth_counts_what_a_stuck_subscriber_has_not_read() {
    // A queue big enough to hold what the kernel's socket buffers (up to `tcp_wmem`'s 4 MiB
    // maximum) do not.
    let hub = HubProcess::with_directives("anonymous\nadmin off\ndispatch_timeout 0s\nsubscriber_queue_bytes 67108864");
    let _stuck = raw::stuck_subscriber(hub.addr(), &[TOPIC]).await;
    assert_eq!(hub.wait_metric("mercure_subscribers", 1, Duration::from_secs(5)).await, 1);
    // 10 MiB: more than the socket buffers take, so some stays queued in the hub.
    raw::publish_big(hub.addr(), TOPIC, 256 * 1024, 40).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let text = request(hub.addr(), "GET", "/metrics", &[], None).await.text();
        let (events, bytes) = (metric(&text, "mercure_queued_events"), metric(&text, "mercure_queued_bytes"));
        if events.unwrap_or(0.0) > 0.0 {
            assert!(bytes.unwrap_or(0.0) >= 256.0 * 1024.0 * events.unwrap_or(0.0), "{text}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "nothing ever counted as queued:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
