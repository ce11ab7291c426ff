//! The loadgen's exactness, proven against a stand-in hub with injected faults: every
//! skipped, duplicated or swapped event and every dropped stream must show up in the
//! report as loss, duplicates, out-of-order or hub drops, with exact counts, and fail the
//! verdict under its own check with an example.

mod common;

use common::standin::{self, Faults};
use common::{example, failed, run_loadgen, u};
use std::sync::atomic::Ordering;

const BASE: &[&str] = &[
    "--initial-subscribers",
    "40",
    "--publishers-rate-from",
    "50",
    "--publishers-rate-to",
    "50",
    "--duration",
    "2",
    "--settle",
    "1",
    "--publishers",
    "2",
];

async fn loadgen(name: &'static str, url: String, extra: &'static [&'static str]) -> serde_json::Value {
    tokio::task::spawn_blocking(move || {
        let mut args: Vec<&str> = BASE.to_vec();
        args.extend_from_slice(extra);
        run_loadgen(name, &url, &args)
    })
    .await
    .expect("loadgen task")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_hub_gives_exact_zero_loss() {
    let hub = standin::start(Faults::default()).await;
    let r = loadgen("clean", hub.url(), &[]).await;
    assert_eq!(u(&r, &["publish", "accepted"]), 100);
    assert_eq!(u(&r, &["connections", "peak_held"]), 40);
    assert_eq!(u(&r, &["delivery", "expected"]), 40 * 100);
    assert_eq!(u(&r, &["delivery", "delivered"]), 40 * 100);
    assert_eq!(u(&r, &["delivery", "lost"]), 0);
    assert_eq!(u(&r, &["delivery", "duplicates"]), 0);
    assert_eq!(u(&r, &["delivery", "out_of_order"]), 0);
    assert_eq!(u(&r, &["delivery", "unexpected"]), 0);
    assert_eq!(u(&r, &["latency_ms", "count"]), 40 * 100);
    assert_eq!(u(&r, &["latency_from_send_ms", "count"]), 40 * 100);
    assert_eq!(u(&r, &["delivery", "tallied_subscribers"]), 40);
    assert_eq!(r["verdict"]["pass"], true, "{:?}", failed(&r));
    assert_eq!(r["schema"], "mercure-loadgen/report/v2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skipped_events_are_reported_as_loss() {
    let hub = standin::start(Faults { skip_every: Some(7), ..Faults::default() }).await;
    let r = loadgen("skip", hub.url(), &[]).await;
    let skipped = hub.stats.skipped.load(Ordering::SeqCst);
    assert_eq!(skipped, 40 * (100 / 7));
    assert_eq!(u(&r, &["delivery", "lost"]), skipped);
    assert_eq!(u(&r, &["delivery", "sessions_with_loss"]), 40);
    assert_eq!(r["verdict"]["zero_loss"], false);
    assert_eq!(r["verdict"]["pass"], false);
    assert_eq!(failed(&r), [("loss".to_string(), skipped)]);
    let ex = example(&r, "loss");
    assert!(ex.starts_with("subscriber ") && ex.contains("never arrived"), "{ex}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_and_reordering_are_reported() {
    let hub = standin::start(Faults { duplicate_every: Some(10), swap_every: Some(9), ..Faults::default() }).await;
    let r = loadgen("dupswap", hub.url(), &[]).await;
    assert_eq!(u(&r, &["delivery", "duplicates"]), hub.stats.duplicated.load(Ordering::SeqCst));
    // A swap delivers n+1 before n: one out-of-order arrival per swap, unless the held
    // event is the last one (released by nothing): then it is lost instead.
    let swapped = hub.stats.swapped.load(Ordering::SeqCst);
    assert_eq!(u(&r, &["delivery", "out_of_order"]), swapped);
    assert_eq!(u(&r, &["delivery", "lost"]), 0);
    // Publishes were answered long before the next was sent: none was in flight with
    // another, so every swap is a fault, not a concurrent reordering.
    assert_eq!(u(&r, &["delivery", "reordered_concurrent"]), 0);
    let duplicated = hub.stats.duplicated.load(Ordering::SeqCst);
    assert_eq!(failed(&r), [("duplicates".to_string(), duplicated), ("out_of_order".to_string(), swapped)]);
    assert!(example(&r, "duplicates").contains("received more than once"));
    let ex = example(&r, "out_of_order");
    assert!(ex.contains("arrived after seq") && ex.contains("was acknowledged"), "{ex}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_subscriber_that_stays_away_loses_the_rest() {
    let hub = standin::start(Faults { close_after: Some(30), ..Faults::default() }).await;
    let r = loadgen("drop-stop", hub.url(), &["--on-drop", "stop"]).await;
    assert_eq!(hub.stats.closed.load(Ordering::SeqCst), 40);
    assert_eq!(u(&r, &["connections", "server_drops"]), 40);
    assert_eq!(u(&r, &["delivery", "expected"]), 40 * 100);
    assert_eq!(u(&r, &["delivery", "delivered"]), 40 * 30);
    assert_eq!(u(&r, &["delivery", "lost"]), 40 * 70);
    assert_eq!(failed(&r), [("loss".to_string(), 40 * 70)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_subscriber_resumes_with_last_event_id_and_missing_replay_is_loss() {
    // The stand-in drops each connection after 30 events and keeps no history, so
    // whatever was published while a subscriber was reconnecting is never replayed.
    let hub = standin::start(Faults { close_after: Some(30), ..Faults::default() }).await;
    let r = loadgen("drop-resume", hub.url(), &["--on-drop", "resume", "--reconnect-delay-ms", "100"]).await;
    assert!(hub.stats.resumed.load(Ordering::SeqCst) >= 40);
    assert!(u(&r, &["connections", "reconnects"]) >= 40);
    // One session per subscriber (resumed connections continue it).
    assert_eq!(u(&r, &["delivery", "sessions"]), 40);
    let lost = u(&r, &["delivery", "lost"]);
    assert!(lost > 0, "gap during reconnection must be reported as loss");
    assert_eq!(u(&r, &["delivery", "delivered"]) + lost, u(&r, &["delivery", "expected"]));
}
