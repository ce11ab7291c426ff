//! History and reconnection (issue 3), against the real binary, for both transports:
//! `Last-Event-ID` / `lastEventID` replay and the response header, no gap and no duplicate
//! between replay and live under concurrent publishing, restart, `kill -9`, bounded file size.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use common::{HubProcess, KEY, SseStream, fresh_work_dir, publish_ok, publisher_token, subscribe_path};

const TOPIC: &str = "https://example.com/history";

/// The transports every replay test runs against: memory only, and the durable default.
const TRANSPORTS: [&str; 2] = ["transport_url local://local", "transport_url redb://history.redb"];

fn hub_with(directives: &str) -> HubProcess {
    HubProcess::with_directives(&format!("anonymous\n{directives}"))
}

fn hub_in(dir: &Path, directives: &str) -> HubProcess {
    let d = format!("anonymous\n{directives}");
    HubProcess::start_in(dir, &[("MERCURE_PUBLISHER_JWT_KEY", KEY), ("MERCURE_EXTRA_DIRECTIVES", &d)], &[])
}

async fn publish_ids(hub: &HubProcess, ids: &[&str]) {
    let token = publisher_token(&["*"]);
    for id in ids {
        publish_ok(hub.addr(), &token, &[("topic", TOPIC), ("id", id), ("data", &format!("data of {id}"))]).await;
    }
}

/// Reads events until one with id `marker` arrives; returns the ids before it.
async fn ids_until(stream: &mut SseStream, marker: &str) -> Vec<String> {
    let mut ids = Vec::new();
    loop {
        let ev = stream.next_event_within(Duration::from_secs(10)).await;
        let id = ev.id.clone().unwrap_or_default();
        if id == marker {
            return ids;
        }
        // Markers of earlier look-ups are history too; they are not what a test asserts on.
        if !id.starts_with("marker-") {
            ids.push(id);
        }
    }
}

/// Subscribes with the given resume point, publishes a marker, and returns what came before it
/// and the response's `Last-Event-ID` header.
async fn replay(hub: &HubProcess, query: &[(&str, &str)], headers: &[(&str, &str)]) -> (Vec<String>, Option<String>) {
    let mut s = SseStream::connect(hub.addr(), &subscribe_path(&[TOPIC], query), headers).await;
    let header = s.header("last-event-id").map(str::to_owned);
    let marker = format!("marker-{}", rand_suffix());
    publish_ids(hub, &[&marker]).await;
    (ids_until(&mut s, &marker).await, header)
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

#[tokio::test]
async fn replays_after_the_last_event_id_for_each_transport() {
    for transport in TRANSPORTS {
        let hub = hub_with(transport);
        publish_ids(&hub, &["a", "b", "c", "d"]).await;

        let (ids, header) = replay(&hub, &[], &[("Last-Event-ID", "b")]).await;
        assert_eq!((ids, header.as_deref()), (vec!["c".to_owned(), "d".to_owned()], Some("b")), "{transport}: header");

        let (ids, header) = replay(&hub, &[("lastEventID", "c")], &[]).await;
        assert_eq!(ids, ["d"], "{transport}: query parameter");
        assert_eq!(header.as_deref(), Some("c"));

        // The header wins over the query parameter.
        let (ids, _) = replay(&hub, &[("lastEventID", "a")], &[("Last-Event-ID", "c")]).await;
        assert_eq!(ids, ["d"], "{transport}: header over query");

        let (ids, header) = replay(&hub, &[("lastEventID", "earliest")], &[]).await;
        assert_eq!(&ids[..4], ["a", "b", "c", "d"], "{transport}: earliest");
        assert_eq!(header.as_deref(), Some("earliest"));

        let (ids, header) = replay(&hub, &[], &[("Last-Event-ID", "never-published")]).await;
        assert_eq!(&ids[..4], ["a", "b", "c", "d"], "{transport}: unknown id replays everything");
        assert_eq!(header.as_deref(), Some("earliest"));

        // Without a resume point there is no replay and no header.
        let (ids, header) = replay(&hub, &[], &[]).await;
        assert!(ids.is_empty() && header.is_none(), "{transport}: plain subscription replayed {ids:?}");
    }
}

#[tokio::test]
async fn replay_respects_selectors_and_private_updates() {
    let hub = hub_with("transport_url local://local");
    let token = publisher_token(&["*"]);
    let addr = hub.addr();
    publish_ok(addr, &token, &[("topic", TOPIC), ("id", "first")]).await;
    publish_ok(addr, &token, &[("topic", "https://example.com/other"), ("id", "other-topic")]).await;
    publish_ok(addr, &token, &[("topic", TOPIC), ("id", "secret"), ("private", "on")]).await;
    publish_ok(addr, &token, &[("topic", TOPIC), ("id", "public")]).await;

    let (ids, _) = replay(&hub, &[("lastEventID", "earliest")], &[]).await;
    assert_eq!(ids, ["first", "public"], "anonymous replay must skip other topics and private updates");

    let sub_token = common::subscriber_token(&[TOPIC]);
    let auth = format!("Bearer {sub_token}");
    let (ids, _) = replay(&hub, &[("lastEventID", "earliest")], &[("Authorization", &auth)]).await;
    assert_eq!(ids, ["first", "secret", "public"], "an authorized subscriber replays private updates");
}

/// Four publishers race while subscribers read part of the stream, drop, and come back with
/// `Last-Event-ID`. Each must see exactly the reference order: the one a subscriber that
/// never left saw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_gap_and_no_duplicate_between_replay_and_live() {
    for transport in TRANSPORTS {
        const PUBLISHERS: usize = 4;
        const PER_PUBLISHER: usize = 250;
        const TOTAL: usize = PUBLISHERS * PER_PUBLISHER;
        let hub = hub_with(transport);
        let addr = hub.addr();
        let path = subscribe_path(&[TOPIC], &[]);
        let mut reference = SseStream::connect(addr, &path, &[]).await;

        let publishers: Vec<_> = (0..PUBLISHERS)
            .map(|p| {
                tokio::spawn(async move {
                    let token = publisher_token(&["*"]);
                    for i in 0..PER_PUBLISHER {
                        publish_ok(addr, &token, &[("topic", TOPIC), ("id", &format!("p{p}-{i}"))]).await;
                    }
                })
            })
            .collect();

        // Reconnecting subscribers: each reads `k` events, leaves, and resumes from the last.
        let reconnecting: Vec<_> = [1usize, 50, 200, 600]
            .into_iter()
            .map(|k| {
                let path = path.clone();
                tokio::spawn(async move {
                    let mut first = SseStream::connect(addr, &path, &[]).await;
                    let mut seen = Vec::new();
                    for _ in 0..k {
                        seen.push(first.next_event_within(Duration::from_secs(20)).await.id.unwrap_or_default());
                    }
                    drop(first);
                    let last = seen.last().cloned().unwrap_or_default();
                    let mut again = SseStream::connect(addr, &path, &[("Last-Event-ID", &last)]).await;
                    (seen, again_ids(&mut again).await)
                })
            })
            .collect();

        let mut order = Vec::new();
        while order.len() < TOTAL {
            order.push(reference.next_event_within(Duration::from_secs(20)).await.id.unwrap_or_default());
        }
        for p in publishers {
            p.await.expect("publisher");
        }
        let unique: HashSet<_> = order.iter().collect();
        assert_eq!(unique.len(), TOTAL, "{transport}: the reference subscriber saw duplicates");
        for r in reconnecting {
            let (mut seen, rest) = r.await.expect("reconnecting subscriber");
            // It joined mid-burst: from its first event on, it must see the reference order.
            let start = order.iter().position(|id| *id == seen[0]).expect("first event is in the reference order");
            let expected = &order[start..];
            seen.extend(rest);
            assert_eq!(seen.len(), expected.len(), "{transport}: a reconnecting subscriber missed or repeated updates");
            assert!(seen == expected, "{transport}: replay + live differs from the publish order");
        }
    }
}

/// Reads events for a resumed subscription until no event comes for a while (the publishers
/// are done by then) or enough have arrived.
async fn again_ids(s: &mut SseStream) -> Vec<String> {
    let mut ids = Vec::new();
    while ids.len() < 1000 {
        match s.next_item(Duration::from_secs(5)).await {
            common::sse::Next::Item(common::sse::Item::Event(e)) => ids.push(e.id.unwrap_or_default()),
            common::sse::Next::Item(_) => {}
            _ => break,
        }
    }
    ids
}

#[tokio::test]
async fn history_survives_a_restart() {
    let dir = fresh_work_dir();
    let mut hub = hub_in(&dir, "");
    publish_ids(&hub, &["r1", "r2", "r3"]).await;
    hub.terminate();
    assert!(hub.wait_exit(Duration::from_secs(10)).is_some_and(|s| s.success()), "clean exit on SIGTERM");
    assert!(dir.join("mercure.redb").exists(), "the default transport writes mercure.redb in the working directory");

    let hub = hub_in(&dir, "");
    assert!(hub.logs().contains("history loaded"), "logs: {}", hub.logs());
    let (ids, header) = replay(&hub, &[], &[("Last-Event-ID", "r1")]).await;
    assert_eq!(ids, ["r2", "r3"]);
    assert_eq!(header.as_deref(), Some("r1"));
    // New updates continue after the old ones.
    publish_ids(&hub, &["r4"]).await;
    let (ids, _) = replay(&hub, &[], &[("Last-Event-ID", "r3")]).await;
    assert_eq!(ids, ["r4"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_keeps_every_acknowledged_update() {
    let dir = fresh_work_dir();
    let hub = hub_in(&dir, "");
    let addr = hub.addr();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publishers: Vec<_> = (0..8)
        .map(|p| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let token = publisher_token(&["*"]);
                let mut acked = Vec::new();
                for i in 0..5000 {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let id = format!("k{p}-{i}");
                    let (token, sent) = (token.clone(), id.clone());
                    // The harness panics on a dead connection; a spawned request turns that
                    // into an error here (expected once the hub is killed).
                    let resp =
                        tokio::spawn(
                            async move { common::publish(addr, &token, &[("topic", TOPIC), ("id", &sent)]).await },
                        )
                        .await;
                    match resp {
                        Ok(r) if r.status == 200 => acked.push(id),
                        _ => break,
                    }
                }
                acked
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    drop(hub); // SIGKILL in the middle of the burst
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acked = Vec::new();
    for p in publishers {
        acked.extend(p.await.expect("publisher"));
    }
    assert!(acked.len() > 50, "the burst published too little to mean anything: {}", acked.len());

    let hub = hub_in(&dir, "");
    let (ids, _) = replay(&hub, &[("lastEventID", "earliest")], &[]).await;
    let kept: HashSet<_> = ids.iter().collect();
    let lost: Vec<_> = acked.iter().filter(|id| !kept.contains(id)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged updates lost after kill -9 (of {}): {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_file_stops_growing_at_its_cap() {
    const CAP: usize = 100;
    let hub = hub_with(&format!("transport_url redb://capped.redb?size={CAP}"));
    let dir = work_dir_of(&hub);
    let file = dir.join("capped.redb");
    let payload = "x".repeat(1024);
    let publish_batch = |from: usize, to: usize| {
        let addr = hub.addr();
        let payload = payload.clone();
        async move {
            let tasks: Vec<_> = (0..4)
                .map(|t| {
                    let payload = payload.clone();
                    tokio::spawn(async move {
                        let token = publisher_token(&["*"]);
                        for i in (from + t..to).step_by(4) {
                            publish_ok(addr, &token, &[("topic", TOPIC), ("id", &format!("f{i}")), ("data", &payload)])
                                .await;
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.expect("publisher");
            }
        }
    };
    publish_batch(0, 2 * CAP).await;
    let at_2x = std::fs::metadata(&file).expect("history file").len();
    publish_batch(2 * CAP, 10 * CAP).await;
    let at_10x = std::fs::metadata(&file).expect("history file").len();
    assert!(
        at_10x <= at_2x + at_2x / 2,
        "file grew from {at_2x} bytes (2x cap) to {at_10x} bytes (10x cap): it should stay flat"
    );
    let (ids, _) = replay(&hub, &[("lastEventID", "earliest")], &[]).await;
    assert_eq!(ids.len(), CAP, "exactly the cap is retained");
}

/// The working directory of a hub started by the harness (read from /proc).
fn work_dir_of(hub: &HubProcess) -> std::path::PathBuf {
    std::fs::read_link(format!("/proc/{}/cwd", hub.pid())).expect("hub cwd")
}

#[tokio::test]
async fn go_hub_bolt_urls_and_the_relaxed_fsync_mode_work() {
    let hub = hub_with("transport_url bolt://mercure.db?size=1000&cleanup_frequency=0.3&cache_size=1048576");
    assert!(hub.logs().contains("cleanup_frequency"), "the Go-only option is mentioned: {}", hub.logs());
    assert!(hub.logs().contains("cache_bytes=1048576"), "the store's cache bound is logged: {}", hub.logs());
    publish_ids(&hub, &["b1", "b2"]).await;
    let (ids, _) = replay(&hub, &[], &[("Last-Event-ID", "b1")]).await;
    assert_eq!(ids, ["b2"]);
    assert!(work_dir_of(&hub).join("mercure.db").exists());

    let hub = hub_with("transport_url redb://relaxed.redb?fsync=interval&fsync_interval=50ms");
    publish_ids(&hub, &["i1", "i2"]).await;
    let (ids, _) = replay(&hub, &[], &[("Last-Event-ID", "i1")]).await;
    assert_eq!(ids, ["i2"]);
}

#[tokio::test]
async fn local_transport_is_bounded_and_leaves_nothing_on_disk() {
    let dir = fresh_work_dir();
    let mut hub = hub_in(&dir, "transport_url local://local?size=3");
    publish_ids(&hub, &["l1", "l2", "l3", "l4", "l5"]).await;
    let (ids, _) = replay(&hub, &[("lastEventID", "earliest")], &[]).await;
    assert_eq!(ids, ["l3", "l4", "l5"]);
    hub.terminate();
    hub.wait_exit(Duration::from_secs(10));
    let files: Vec<_> = std::fs::read_dir(&dir).expect("work dir").collect();
    assert!(files.is_empty(), "local transport wrote files: {files:?}");
}

#[tokio::test]
async fn a_foreign_history_file_stops_start_up_with_a_clear_message() {
    let dir = fresh_work_dir();
    std::fs::write(dir.join("mercure.db"), vec![0x42u8; 8192]).expect("write a fake bbolt file");
    let mut cmd = std::process::Command::new(common::BIN);
    cmd.current_dir(&dir)
        .env_clear()
        .env("SERVER_NAME", "127.0.0.1:0")
        .env("MERCURE_PUBLISHER_JWT_KEY", KEY)
        .env("MERCURE_EXTRA_DIRECTIVES", "transport_url bolt://mercure.db");
    let out = cmd.output().expect("run hub");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mercure.db") && err.contains("bbolt"), "message: {err}");
    assert_eq!(std::fs::read(dir.join("mercure.db")).expect("file kept").len(), 8192, "the file is left untouched");
}
