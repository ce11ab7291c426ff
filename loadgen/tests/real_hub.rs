//! The loadgen against the real hub on loopback, at small scale: zero loss and sane
//! latency on a clean run; and, with a tiny per-subscriber queue so the hub evicts
//! subscribers under a burst, the eviction shows up as hub drops and loss.

mod common;

use common::{f, hub, run_loadgen, scratch, u};

#[test]
fn two_hundred_subscribers_fifty_updates_per_second_lose_nothing() {
    let dir = scratch("real-clean");
    let h = hub::start("", &dir);
    let pid = h.pid.to_string();
    let r = run_loadgen(
        "real-clean",
        &h.url,
        &[
            "--initial-subscribers",
            "200",
            "--publishers-rate-from",
            "50",
            "--publishers-rate-to",
            "50",
            "--duration",
            "3",
            "--settle",
            "1",
            "--hub-pid",
            &pid,
        ],
    );
    assert_eq!(u(&r, &["connections", "peak_held"]), 200);
    assert_eq!(u(&r, &["connections", "errors"]), 0);
    assert_eq!(u(&r, &["publish", "accepted"]), 150);
    assert_eq!(u(&r, &["delivery", "expected"]), 200 * 150);
    assert_eq!(u(&r, &["delivery", "lost"]), 0);
    assert_eq!(u(&r, &["delivery", "duplicates"]), 0);
    assert_eq!(u(&r, &["delivery", "out_of_order"]), 0);
    assert_eq!(u(&r, &["delivery", "unexpected"]), 0);
    // Sane: a debug-built hub on a shared 2-core CI box still stays well under 1 s.
    let p99 = f(&r, &["latency_ms", "p99"]);
    assert!(p99 > 0.0 && p99 < 1000.0, "p99 {p99} ms");
    assert!(u(&r, &["hub", "rss_max_bytes"]) > 0);
    assert!(u(&r, &["hub", "fds_max"]) >= 200);
    assert_eq!(r["config"]["worker_sched"], "batch", "workers run under SCHED_BATCH by default");
}

#[test]
fn private_updates_with_cookie_auth_lose_nothing() {
    let dir = scratch("real-private");
    let h = hub::start("", &dir);
    let r = run_loadgen(
        "real-private",
        &h.url,
        &[
            "--initial-subscribers",
            "50",
            "--publishers-rate-from",
            "20",
            "--publishers-rate-to",
            "20",
            "--duration",
            "2",
            "--settle",
            "1",
            "--private-updates",
            "true",
            "--subscriber-auth",
            "cookie",
            "--topics",
            "5",
            "--selector",
            "template",
            "--worker-sched",
            "normal",
        ],
    );
    assert_eq!(r["config"]["subscriber_auth"], "cookie");
    // The policy asked for is the one the report records (the default is covered above).
    assert_eq!(r["config"]["worker_sched"], "normal");
    assert_eq!(u(&r, &["delivery", "expected"]), 50 * 40);
    assert_eq!(u(&r, &["delivery", "lost"]), 0);
    assert_eq!(u(&r, &["delivery", "unexpected"]), 0);
}

#[test]
fn the_1_0_dialect_url_patterns_and_access_tokens_lose_nothing_and_leak_nothing() {
    // `--dialect 1.0`: subscribers send `match_urlpattern={base}/:id`, tokens are RFC 9068
    // access tokens (`aud` derived from the hub URL). Private updates reach the subscribers
    // holding a token and no one else (a quarter connect anonymously): a wrong `aud`, a
    // token the hub refuses or a pattern it reads otherwise would show as loss or leak. The
    // hub serves strict 1.0 (`legacy_dialect off`), so a 0.x `topic=` or `mercure` claim
    // would be refused outright.
    let dir = scratch("real-v1");
    let h = hub::start("legacy_dialect off", &dir);
    let r = run_loadgen(
        "real-v1",
        &h.url,
        &[
            "--dialect",
            "1.0",
            "--initial-subscribers",
            "40",
            "--publishers-rate-from",
            "20",
            "--publishers-rate-to",
            "20",
            "--duration",
            "2",
            "--settle",
            "1",
            "--private-updates",
            "true",
            "--anonymous-share",
            "0.25",
            "--topics",
            "5",
            "--selector",
            "template",
        ],
    );
    assert_eq!(r["config"]["dialect"], "1.0");
    assert_eq!(u(&r, &["publish", "accepted"]), 40, "every 1.0 publish accepted");
    assert_eq!(u(&r, &["connections", "errors"]), 0);
    // The anonymous share is drawn per subscriber (about a quarter): the tokened ones are
    // owed every publish, the others none.
    let expected = u(&r, &["delivery", "expected"]);
    assert!(expected > 20 * 40 && expected < 40 * 40 && expected.is_multiple_of(40), "expected {expected}");
    assert_eq!(u(&r, &["delivery", "delivered"]), expected);
    assert_eq!(u(&r, &["delivery", "lost"]), 0);
    assert_eq!(u(&r, &["delivery", "unexpected"]), 0, "no private update reached an anonymous subscriber");
}

#[test]
fn hub_eviction_of_a_slow_subscriber_is_reported_as_drops_and_loss() {
    // A small per-subscriber queue, big payloads, and subscribers that stop reading
    // for 6 s after their first event: the hub evicts them ("queue full"). They do not
    // come back (--on-drop stop), so every update they were owed after the eviction
    // must be reported lost, and the eviction itself as a hub drop.
    let dir = scratch("real-evict");
    let h = hub::start("subscriber_queue_bytes 262144\nsubscriber_queue_events 16", &dir);
    let r = run_loadgen(
        "real-evict",
        &h.url,
        &[
            "--initial-subscribers",
            "10",
            "--publishers-rate-from",
            "50",
            "--publishers-rate-to",
            "50",
            "--duration",
            "2",
            "--settle",
            "5",
            "--payload-size",
            "65536",
            "--stall-after",
            "1",
            "--stall-ms",
            "6000",
            "--on-drop",
            "stop",
        ],
    );
    assert_eq!(u(&r, &["delivery", "expected"]), 10 * 100);
    assert_eq!(u(&r, &["connections", "server_drops"]), 10);
    let lost = u(&r, &["delivery", "lost"]);
    assert!(lost > 0, "evicted subscribers must show loss");
    assert_eq!(u(&r, &["delivery", "sessions_with_loss"]), 10);
    assert_eq!(u(&r, &["delivery", "delivered"]) + lost, u(&r, &["delivery", "expected"]));
    assert_eq!(r["verdict"]["zero_loss"], false);
}

#[test]
fn churning_subscribers_resume_with_last_event_id_and_lose_nothing() {
    // Gatling-style arrivals and random lifetimes, but each subscriber comes back with
    // Last-Event-ID when its lifetime ends: the hub's history must replay the gap.
    let dir = scratch("real-churn");
    let h = hub::start("", &dir);
    let r = run_loadgen(
        "real-churn",
        &h.url,
        &[
            "--initial-subscribers",
            "100",
            "--subscribers-rate-from",
            "10",
            "--subscribers-rate-to",
            "30",
            "--injection-duration",
            "3",
            "--connection-duration",
            "1.5",
            "--random-connection-duration",
            "true",
            "--lifetime-end",
            "resume",
            "--publishers-rate-from",
            "20",
            "--publishers-rate-to",
            "20",
            "--duration",
            "4",
            "--settle",
            "1",
        ],
    );
    assert_eq!(u(&r, &["connections", "requested"]), 100 + 60);
    assert!(u(&r, &["connections", "reconnects"]) > 100);
    assert!(u(&r, &["delivery", "replayed"]) > 0, "resumed connections must get replays");
    assert_eq!(u(&r, &["delivery", "lost"]), 0);
    assert_eq!(u(&r, &["delivery", "duplicates"]), 0);
    assert_eq!(u(&r, &["delivery", "out_of_order"]), 0);
}
