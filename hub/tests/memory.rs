//! Memory under stuck consumers (issue 9, item 6), against the real binary: 20 subscribers
//! that never read and 50 that do, while 1,500 updates of 8 KiB are published, then everyone
//! leaves.
//!
//! The bounds are computed from the configured limits, not from a measurement:
//! - at the peak, RSS growth ≤ 2 × the retained bytes (one copy in the window, the same again
//!   for the durable store's cache and the allocator) + every subscriber's queue bound and
//!   in-flight frame. `subscriber_queue_bytes` is set small (64 KiB) so that the queue term does
//!   not swamp the history term: a second copy of the history would not fit.
//! - once everyone has left, what remains is the history and nothing per subscriber: the
//!   retained bytes in the allocator's size classes, the store's cache (twice its nominal
//!   size: its page buffers fall in size classes too, and evicted ones leave holes), and a
//!   fixed slack for memory the allocator keeps for reuse.
//!
//! Before the change that introduced this test (one copy per retained update, a bounded redb
//! cache) the durable case grew by 65 MiB and stayed there: see
//! `results/stuck-consumer-memory-2026-12-03/summary.md`.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::raw::{publish_big, stuck_subscriber};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOPIC: &str = "https://example.com/memory";
const STUCK: usize = 20;
const READERS: usize = 50;
const UPDATES: usize = 1500;
const DATA: usize = 8 * 1024;
/// `subscriber_queue_bytes`: small, so the bound is tight (8 updates of 8 KiB).
const QUEUE_BYTES: usize = 64 * 1024;
/// What one subscriber may hold besides its queue: the frame its connection is writing
/// (`server::body::MAX_FRAME`), kept by hyper while the socket does not take it.
const FRAME_BYTES: usize = 64 * 1024;
/// Wire size of one published update: `id: urn:uuid:<36>\n`, `data: <8192 x>\n`, `\n`.
const WIRE: usize = "id: urn:uuid:\n".len() + 36 + "data: \n".len() + DATA + 1;
/// The durable store's page cache at its default (`cache_size` in the transport URL,
/// `history::spec::DEFAULT_CACHE_BYTES`).
const CACHE_BYTES: usize = 4 << 20;
/// mimalloc's size classes are 1/4 apart at this size: an 8,250-byte event takes a 10,240-byte
/// block, so the retained updates occupy up to 5/4 of what the window counts.
const SIZE_CLASS_NUM: usize = 5;
const SIZE_CLASS_DEN: usize = 4;
/// Memory the allocator keeps for reuse once everyone has left: freed pages are purged lazily
/// (mimalloc does it on a later allocation in the same thread, so an idle hub keeps them), and
/// the publish path's and redb's working buffers stay in the heaps. Measured at 3–4 MiB each
/// with no subscriber at all (1,500 publishes, local and redb with `cache_size=0`), flat over
/// repeated rounds; 8 MiB is both with a margin, and below one copy of the history (12 MiB).
const SLACK_AFTER: usize = 8 << 20;

/// A subscriber that reads and discards its stream until it sees the `end` update (or the hub
/// closes it). Returns the stream, so the connection stays open until the caller drops it.
async fn reader(addr: SocketAddr, seen_end: Arc<AtomicUsize>) -> tokio::task::JoinHandle<TcpStream> {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let path = subscribe_path(&[TOPIC], &[]);
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n");
    stream.write_all(req.as_bytes()).await.expect("send request");
    tokio::spawn(async move {
        const END: &[u8] = b"data: end\n";
        let mut buf = vec![0u8; 64 * 1024];
        // The tail of the previous read, so a marker split across reads is still found.
        let mut tail: Vec<u8> = Vec::new();
        loop {
            match tokio::time::timeout(Duration::from_secs(120), stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return stream,
                Ok(Ok(n)) => {
                    tail.extend_from_slice(&buf[..n]);
                    if tail.windows(END.len()).any(|w| w == END) {
                        seen_end.fetch_add(1, Ordering::Relaxed);
                        return stream;
                    }
                    let keep = tail.len().saturating_sub(END.len());
                    tail.drain(..keep);
                }
                Err(_) => panic!("a reader got nothing for 120 s"),
            }
        }
    })
}

/// `VmHWM` (peak resident memory) of a process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

/// Runs the scenario on a hub with these extra directives; asserts the bounds and returns a
/// one-line report.
async fn stuck_consumers(transport: &str) -> String {
    // `tcp_user_timeout 0s`: on a busy machine the publishes can take longer than the default
    // 30 s, and the kernel would then reset the stuck connections (zero window) before their
    // queues overflow; this test is about the queue bound, so only eviction may end them.
    let hub = HubProcess::with_directives(&format!(
        "anonymous\nsubscriber_queue_bytes {QUEUE_BYTES}\nsubscriber_queue_events 1024\nshutdown_grace 1s\n\
         tcp_user_timeout 0s\n{transport}"
    ));
    let addr = hub.addr();
    let token = publisher_token(&["*"]);
    if !transport.contains("local://") {
        // The store's cache is what the bound below assumes, and says so at start-up.
        assert!(hub.logs().contains(&format!("cache_bytes={CACHE_BYTES}")), "logs: {}", hub.logs());
    }

    let mut stuck = Vec::with_capacity(STUCK);
    for _ in 0..STUCK {
        stuck.push(stuck_subscriber(addr, &[TOPIC]).await);
    }
    let seen_end = Arc::new(AtomicUsize::new(0));
    let mut readers = Vec::with_capacity(READERS);
    for _ in 0..READERS {
        readers.push(reader(addr, seen_end.clone()).await);
    }
    let subscribers = (STUCK + READERS) as u64;
    assert_eq!(hub.wait_metric("mercure_subscribers", subscribers, Duration::from_secs(10)).await, subscribers);
    // Warm the publish path (one small update, retained like the others).
    publish_ok(addr, &token, &[("topic", TOPIC), ("id", "warm"), ("data", "warm")]).await;
    let baseline = hub.rss_kib();

    publish_big(addr, TOPIC, DATA, UPDATES).await;
    publish_ok(addr, &token, &[("topic", TOPIC), ("id", "end"), ("data", "end")]).await;
    let mut streams = Vec::with_capacity(READERS);
    for r in readers {
        streams.push(tokio::time::timeout(Duration::from_secs(120), r).await.expect("reader").expect("reader task"));
    }
    let loaded = hub.rss_kib();
    let peak = peak_rss_kib(hub.pid());
    let evictions = hub.metric("mercure_evictions_total").await;

    // Everyone leaves.
    drop(stuck);
    drop(streams);
    assert_eq!(hub.wait_metric("mercure_subscribers", 0, Duration::from_secs(10)).await, 0, "subscribers left");
    // Only the metrics request itself is still connected.
    assert_eq!(hub.wait_metric("mercure_connections", 1, Duration::from_secs(10)).await, 1, "connections closed");

    let kib = |b: usize| (b / 1024) as u64;
    let retained = kib(UPDATES * WIRE);
    let queues = kib((STUCK + READERS) * (QUEUE_BYTES + FRAME_BYTES));
    let bound_peak = 2 * retained + queues;
    let cache = if transport.contains("local://") { 0 } else { kib(2 * CACHE_BYTES) };
    let bound_after = retained * SIZE_CLASS_NUM as u64 / SIZE_CLASS_DEN as u64 + cache + kib(SLACK_AFTER);
    // mimalloc purges freed memory after a short delay: give it a moment, bounded.
    let mut after = hub.rss_kib();
    for _ in 0..40 {
        if after.saturating_sub(baseline) <= bound_after {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        after = hub.rss_kib();
    }
    let transport = if transport.is_empty() { "default transport" } else { transport };
    let report = format!(
        "{transport}: baseline {baseline} KiB; growth at peak {} KiB (bound {bound_peak}), after publishing {} KiB, \
         after everyone left {} KiB (bound {bound_after}); retained {retained} KiB; {evictions} evictions; \
         {} of {READERS} readers saw the end",
        peak.saturating_sub(baseline),
        loaded.saturating_sub(baseline),
        after.saturating_sub(baseline),
        seen_end.load(Ordering::Relaxed),
    );
    eprintln!("{report}");
    assert!(evictions >= STUCK as u64, "the stuck subscribers were not all evicted: {report}");
    assert!(peak.saturating_sub(baseline) <= bound_peak, "RSS grew past the bound: {report}");
    assert!(after.saturating_sub(baseline) <= bound_after, "RSS did not come back down: {report}");
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_consumers_with_durable_history_stay_within_the_memory_bound() {
    // The default transport: redb://mercure.redb with its default cache.
    stuck_consumers("").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_consumers_with_local_history_stay_within_the_memory_bound() {
    stuck_consumers("transport_url local://local").await;
}
