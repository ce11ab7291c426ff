//! Slow consumers: a subscriber that never reads is evicted — counted, logged, its
//! connection closed — while a thousand others keep receiving every update in order, and the
//! hub's memory stays bounded although far more was published to the stuck one.

mod common;

use std::time::{Duration, Instant};

use common::raw::{drain_until_closed, publish_big, stuck_subscriber};
use common::*;

const SMALL: &str = "https://example.com/small";
const BIG: &str = "https://example.com/big";
/// A topic nobody subscribes to, to warm the hub's allocator up before measuring its RSS.
const WARM: &str = "https://example.com/warm-up";
const READERS: usize = 1000;
/// Size of a big update's data.
const BIG_DATA: usize = 256 * 1024;
/// Rounds of two big updates (to the stuck subscriber's second topic) and one small update
/// (to everyone): 24 MiB published to the stuck subscriber, 24 times its queue bound.
/// (A debug build parses ~3 MB/s of form body per core: the volume is what fits in seconds.)
const ROUNDS: usize = 48;
/// The stuck subscriber's queue bound (`subscriber_queue_bytes`).
const QUEUE_BYTES: usize = 1 << 20;
/// Bound on the hub's RSS growth while the 24 MiB are published. Without eviction the queue
/// alone would hold about 20 MiB of them (the rest sits in socket buffers).
const MAX_RSS_GROWTH_KIB: u64 = 10 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_subscriber_is_evicted_and_the_others_miss_nothing() {
    let hub = HubProcess::with_directives(
        // History is kept small: this test measures what the queues hold, not the history.
        &format!(
            "anonymous\nsubscriber_queue_bytes {QUEUE_BYTES}\nsubscriber_queue_events 1024\nshutdown_grace 1s\n\
             transport_url local://local?max_bytes=1048576"
        ),
    );
    let addr = hub.addr();
    let mut stuck = stuck_subscriber(addr, &[SMALL, BIG]).await;

    // A thousand readers, connected a few dozen at a time.
    let mut readers = Vec::with_capacity(READERS);
    let path = subscribe_path(&[SMALL], &[]);
    for batch in 0..READERS / 50 {
        let opens: Vec<_> = (0..50)
            .map(|_| {
                let path = path.clone();
                tokio::spawn(async move { SseStream::connect(addr, &path, &[]).await })
            })
            .collect();
        for o in opens {
            readers.push(o.await.unwrap_or_else(|e| panic!("batch {batch}: {e}")));
        }
    }
    assert_eq!(hub.metric("mercure_subscribers").await, READERS as u64 + 1);
    let readers: Vec<_> = readers
        .into_iter()
        .map(|mut s| {
            tokio::spawn(async move {
                let mut got = Vec::with_capacity(ROUNDS);
                loop {
                    let ev = s.next_event_within(Duration::from_secs(30)).await;
                    if ev.data == "end" {
                        // The stream is handed back, so the connection stays open.
                        return (got, s);
                    }
                    got.push(ev.data);
                }
            })
        })
        .collect();
    let token = publisher_token(&["*"]);
    let auth = format!("Bearer {token}");
    let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/x-www-form-urlencoded")];
    // Encoded once: the test measures the hub, not the test's form encoder.
    let data = "x".repeat(BIG_DATA);
    let big_body = form(&[("topic", BIG), ("data", &data)]);
    let warm_body = form(&[("topic", WARM), ("data", &data)]);
    let post = |body: &str| {
        let body = body.to_owned();
        async move {
            let resp = request(addr, "POST", "/.well-known/mercure", &headers, Some(body.as_bytes())).await;
            assert_eq!(resp.status, 200, "big update: {}", resp.text());
        }
    };

    // Warm-up: the same work (parse, encode, history) for a topic nobody reads, so the RSS
    // baseline already includes the allocator's caches for 256 KiB updates.
    for _ in 0..8 {
        tokio::join!(post(&warm_body), post(&warm_body));
    }
    let rss_before = hub.rss_kib();

    let start = Instant::now();
    let mut evicted_at = None;
    for round in 0..ROUNDS {
        tokio::join!(post(&big_body), post(&big_body));
        publish_ok(addr, &token, &[("topic", SMALL), ("data", &format!("s{round}"))]).await;
        if evicted_at.is_none() && round % 4 == 3 && hub.metric("mercure_evictions_total").await > 0 {
            evicted_at = Some((round, start.elapsed()));
        }
    }
    publish_ok(addr, &token, &[("topic", SMALL), ("data", "end")]).await;
    let published_for = start.elapsed();
    let rss_after = hub.rss_kib();

    let expected: Vec<String> = (0..ROUNDS).map(|r| format!("s{r}")).collect();
    let mut still_open = Vec::with_capacity(READERS);
    for (n, r) in readers.into_iter().enumerate() {
        let (got, stream) =
            tokio::time::timeout(Duration::from_secs(30), r).await.expect("reader timed out").expect("reader");
        assert!(got == expected, "reader {n} received {} of {ROUNDS} updates, or out of order", got.len());
        still_open.push(stream);
    }

    eprintln!(
        "evicted at (round, time) {evicted_at:?}; {ROUNDS} rounds in {published_for:?}; \
         RSS {rss_before} KiB -> {rss_after} KiB"
    );
    let growth = rss_after.saturating_sub(rss_before);
    assert!(
        growth < MAX_RSS_GROWTH_KIB,
        "hub RSS grew by {growth} KiB while {} MiB were published to the stuck subscriber",
        (2 * ROUNDS * BIG_DATA) >> 20
    );
    assert!(evicted_at.is_some(), "the stuck subscriber was never evicted");
    assert_eq!(hub.metric("mercure_evictions_total").await, 1, "only the stuck subscriber is evicted");
    assert_eq!(hub.metric("mercure_subscribers").await, READERS as u64);
    assert!(hub.wait_for_log("evicted slow subscriber", Duration::from_secs(2)), "logs:\n{}", hub.logs());

    // The hub closed the stuck connection (after shutdown_grace) although the client never
    // read: only the readers' connections (and this metrics request) remain.
    let open = hub.wait_metric("mercure_connections", READERS as u64 + 1, Duration::from_secs(5)).await;
    assert_eq!(open, READERS as u64 + 1, "connections still open");
    let drained = drain_until_closed(&mut stuck, Duration::from_secs(5)).await;
    eprintln!("drained {drained} bytes from the stuck connection before EOF");
}

#[tokio::test]
async fn a_queue_left_undrained_past_dispatch_timeout_is_evicted() {
    // Bounds too large to overflow: only the stall bound can evict.
    let hub = HubProcess::with_directives(
        "anonymous\nsubscriber_queue_bytes 268435456\ndispatch_timeout 1s\nheartbeat 200ms\nshutdown_grace 1s\n\
         transport_url local://local?max_bytes=1048576",
    );
    let addr = hub.addr();
    let mut stuck = stuck_subscriber(addr, &[BIG]).await;
    let mut reader = SseStream::connect(addr, &subscribe_path(&[SMALL], &[]), &[]).await;
    assert_eq!(hub.wait_metric("mercure_subscribers", 2, Duration::from_secs(5)).await, 2);
    // 6 MiB: more than the socket buffers and hyper's buffer absorb, so the queue stays full.
    publish_big(addr, BIG, BIG_DATA, 24).await;

    // The heartbeats keep pushing to the stalled queue; one of them finds it stalled.
    assert_eq!(hub.wait_metric("mercure_evictions_total", 1, Duration::from_secs(6)).await, 1, "not evicted");
    assert!(hub.wait_for_log("dispatch_timeout", Duration::from_secs(2)), "logs:\n{}", hub.logs());
    drain_until_closed(&mut stuck, Duration::from_secs(5)).await;
    // The reader, which drains its queue, is not evicted.
    let id = publish_ok(addr, &publisher_token(&["*"]), &[("topic", SMALL), ("data", "fine")]).await;
    assert_event(&reader.next_event().await, &id, "fine");
    assert_eq!(hub.metric("mercure_evictions_total").await, 1);
}
