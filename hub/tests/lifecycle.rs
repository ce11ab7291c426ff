//! The process: configuration errors stop start-up with exit code 2, flags mirror the
//! directives, development mode, start-up logs, and SIGTERM ending every stream.

mod common;

use std::time::{Duration, Instant};

use common::*;

const TOPIC: &str = "https://example.com/books/1";

#[tokio::test]
async fn sigterm_ends_every_stream_and_exits_0() {
    let mut hub = HubProcess::with_directives("anonymous");
    let mut streams = Vec::new();
    for topic in [TOPIC, "*", "https://example.com/books/{id}"] {
        streams.push(SseStream::connect(hub.addr(), &subscribe_path(&[topic], &[]), &[]).await);
    }
    let id = publish_ok(hub.addr(), &publisher_token(&["*"]), &[("topic", TOPIC), ("data", "bye")]).await;
    for s in &mut streams {
        assert_event(&s.next_event().await, &id, "bye");
    }

    let start = Instant::now();
    hub.terminate();
    for s in &mut streams {
        s.expect_end(Duration::from_secs(10)).await;
    }
    let status =
        hub.wait_exit(Duration::from_secs(10)).unwrap_or_else(|| panic!("still running; logs:\n{}", hub.logs()));
    assert_eq!(status.code(), Some(0), "logs:\n{}", hub.logs());
    let took = start.elapsed();
    assert!(took < Duration::from_secs(10), "shutdown took {took:?}");
    assert!(hub.logs().contains("SIGTERM received"), "logs:\n{}", hub.logs());
    // New connections are no longer accepted.
    assert!(tokio::net::TcpStream::connect(hub.addr()).await.is_err(), "still accepting after exit");
}

#[tokio::test]
async fn sigterm_exits_within_the_grace_even_with_a_client_that_never_reads() {
    let mut hub = HubProcess::with_directives(
        "anonymous\nshutdown_grace 1s\nsubscriber_queue_bytes 268435456\ndispatch_timeout 0s\n\
         transport_url local://local?max_bytes=1048576",
    );
    let big = "https://example.com/big";
    let mut stuck = common::raw::stuck_subscriber(hub.addr(), &[big]).await;
    let mut reader = SseStream::connect(hub.addr(), &subscribe_path(&[TOPIC], &[]), &[]).await;
    assert_eq!(hub.wait_metric("mercure_subscribers", 2, Duration::from_secs(5)).await, 2);
    // More than the socket buffers hold: the stuck stream can never finish writing.
    common::raw::publish_big(hub.addr(), big, 256 * 1024, 16).await;

    let start = Instant::now();
    hub.terminate();
    reader.expect_end(Duration::from_secs(5)).await;
    let status =
        hub.wait_exit(Duration::from_secs(8)).unwrap_or_else(|| panic!("still running; logs:\n{}", hub.logs()));
    let took = start.elapsed();
    assert_eq!(status.code(), Some(0), "logs:\n{}", hub.logs());
    // shutdown_grace (1 s) plus the server's one-second margin, plus process exit.
    assert!(took < Duration::from_secs(4), "exit took {took:?} with shutdown_grace 1s");
    common::raw::drain_until_closed(&mut stuck, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn without_any_key_the_hub_runs_in_development_mode_with_a_working_token() {
    let hub = HubProcess::start(&[]);
    assert!(hub.wait_for_log("DEVELOPMENT MODE", Duration::from_secs(2)), "logs:\n{}", hub.logs());
    let logs = hub.logs();
    let token = logs
        .split_whitespace()
        .find_map(|w| w.strip_prefix("token="))
        .map(|t| t.trim_matches('"'))
        .unwrap_or_else(|| panic!("no token= in logs:\n{logs}"))
        .to_owned();

    let auth = format!("Bearer {token}");
    let mut sub = SseStream::connect(hub.addr(), &subscribe_path(&[TOPIC], &[]), &[("Authorization", &auth)]).await;
    let id = publish_ok(hub.addr(), &token, &[("topic", TOPIC), ("data", "dev"), ("private", "on")]).await;
    assert_event(&sub.next_event().await, &id, "dev");
    // The generated key is random: the shared test key does not work.
    assert_eq!(publish(hub.addr(), &publisher_token(&["*"]), &[("topic", TOPIC)]).await.status, 401);
}

#[tokio::test]
async fn start_up_logs_the_open_file_limit_and_the_configuration() {
    let hub = HubProcess::with_directives("anonymous");
    let logs = hub.logs();
    assert!(logs.contains("open-file limit"), "logs:\n{logs}");
    assert!(logs.contains("configuration"), "logs:\n{logs}");
    assert!(!logs.contains(KEY), "the key must never be logged:\n{logs}");
}

#[test]
fn an_unknown_directive_stops_start_up_naming_its_line() {
    let (code, out) = run_to_exit(
        &[("MERCURE_PUBLISHER_JWT_KEY", KEY), ("MERCURE_EXTRA_DIRECTIVES", "anonymous\nbogus_directive 1\n")],
        &[],
        Duration::from_secs(10),
    );
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("line 2") && out.contains("bogus_directive"), "{out}");
}

#[test]
fn malformed_directive_values_stop_start_up() {
    for (directives, needle) in [
        ("heartbeat soon", "heartbeat"),
        ("max_connections -3", "max_connections"),
        ("subscriber_queue_bytes 0", "subscriber_queue_bytes"),
        ("cors_origins * https://a.example", "cors_origins"),
        ("anonymous yes", "anonymous"),
        ("transport ftp", "ftp"),
        ("cors_origins \"unterminated", "line 1"),
    ] {
        let (code, out) = run_to_exit(
            &[("MERCURE_PUBLISHER_JWT_KEY", KEY), ("MERCURE_EXTRA_DIRECTIVES", directives)],
            &[],
            Duration::from_secs(10),
        );
        assert_eq!(code, Some(2), "{directives:?}: {out}");
        assert!(out.contains(needle), "{directives:?}: message does not name {needle:?}: {out}");
    }
}

#[test]
fn every_directive_has_a_flag_in_help() {
    let (code, out) = run_to_exit(&[], &["--help"], Duration::from_secs(10));
    assert_eq!(code, Some(0), "{out}");
    for flag in [
        "--anonymous",
        "--cors-origins",
        "--publish-origins",
        "--cookie-name",
        "--heartbeat",
        "--write-timeout",
        "--dispatch-timeout",
        "--max-connections",
        "--max-body-size",
        "--max-topics",
        "--max-topic-length",
        "--subscriber-queue-events",
        "--subscriber-queue-bytes",
        "--transport-url",
        "--ui",
        "--demo",
        "--publisher-jwt-key",
        "--publisher-jwt-alg",
        "--subscriber-jwt-key",
        "--subscriber-jwt-alg",
    ] {
        assert!(out.contains(flag), "--help does not list {flag}:\n{out}");
    }
}

/// `shutdown_grace` and `header_read_timeout` are directives (config/settings.rs) with no flag
/// in `Cli` (config/mod.rs), unlike every other setting.
#[test]
fn shutdown_grace_and_header_read_timeout_have_flags() {
    let (code, out) = run_to_exit(&[], &["--help"], Duration::from_secs(10));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("--shutdown-grace") && out.contains("--header-read-timeout"), "{out}");
}

#[tokio::test]
async fn flags_override_the_environment() {
    let hub = HubProcess::start_with_args(
        &[("MERCURE_PUBLISHER_JWT_KEY", KEY), ("MERCURE_EXTRA_DIRECTIVES", "max_topics 5")],
        &["--anonymous", "--max-topics", "1", "--heartbeat", "100ms"],
    );
    let (status, body) = SseStream::status_of(hub.addr(), &subscribe_path(&["a", "b"], &[]), &[]).await;
    assert_eq!(status, 400, "--max-topics 1 overrides the directive: {body}");
    let mut sub = SseStream::connect(hub.addr(), &subscribe_path(&[TOPIC], &[]), &[]).await;
    sub.next_comment(Duration::from_secs(1)).await; // opening
    sub.next_comment(Duration::from_secs(1)).await; // a heartbeat within 1 s: --heartbeat 100ms
}
