//! Fan-out, write side: one publish until every subscriber's task has drained the update from
//! its queue into an in-memory sink, for 1k, 10k and 100k subscribers on one topic.
//!
//! Why: the enqueue bench stops when the event is queued; a client sees it only once its
//! connection task has been woken, scheduled and has drained the queue. Here each subscriber
//! is a tokio task on a 2-worker runtime (the machine's core count) doing what the SSE body
//! does: `poll_drain` into a frame, then "write" it to a sink that counts bytes (no socket, so
//! the open-file limit does not apply and kernel write costs are excluded). The last task to
//! drain unparks the bench thread. The publish itself runs in a task on the runtime, like the
//! server's publish handler, and is included in the time. `--quick` skips 100k.

use std::future::poll_fn;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use benches::fixtures::{self, MAX_FRAME, TOPIC};
use benches::latency::LatencyLog;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mercure_hub::queue::CloseReason;

/// The hub binary's allocator: a fan-out allocates per recipient, so the allocator shows in it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn fanout_drain(c: &mut Criterion) {
    let sizes: &[usize] = if benches::quick() { &[1_000, 10_000] } else { &[1_000, 10_000, 100_000] };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().expect("runtime");
    let mut group = c.benchmark_group("fanout_drain");
    for &n in sizes {
        let hub = Arc::new(fixtures::hub());
        let subs = fixtures::subscribers_on(&hub, n, TOPIC);
        let remaining = Arc::new(AtomicUsize::new(0));
        let sink = Arc::new(AtomicU64::new(0));
        let bench_thread = std::thread::current();
        let tasks: Vec<_> = subs
            .iter()
            .map(|sub| {
                let (sub, remaining, sink, bench_thread) =
                    (sub.clone(), remaining.clone(), sink.clone(), bench_thread.clone());
                rt.spawn(async move {
                    let mut written = 0u64;
                    while let Some(frame) = poll_fn(|cx| sub.queue.poll_drain(cx, MAX_FRAME)).await {
                        written += black_box(&frame).len() as u64;
                        if remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                            bench_thread.unpark();
                        }
                    }
                    sink.fetch_add(written, Ordering::Relaxed);
                })
            })
            .collect();
        let update = fixtures::update(TOPIC, 100);
        group.throughput(Throughput::Elements(n as u64));
        benches::size_fanout_group(&mut group, n, 30);
        let mut log = LatencyLog::default();
        let id = format!("subs={n}");
        group.bench_function(&id, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    remaining.store(n, Ordering::Release);
                    let start = Instant::now();
                    // Published from a task, as the server's publish handler does: wakes from a
                    // worker thread go to its local run queue, not through the global one.
                    let (hub, update) = (hub.clone(), update.clone());
                    let publisher = rt.spawn(async move { fixtures::publish(&hub, &update).recipients });
                    while remaining.load(Ordering::Acquire) != 0 {
                        std::thread::park();
                    }
                    let took = start.elapsed();
                    assert_eq!(rt.block_on(publisher).ok(), Some(n));
                    total += took;
                    log.record(took);
                }
                total
            })
        });
        // Teardown: end every task by closing its queue directly. (`Hub::close_all` would also
        // unregister each subscriber, and `Registry::remove` scans the topic's whole list: at
        // 100k subscribers on one topic that is quadratic and takes minutes.)
        for sub in &subs {
            if let Some(waker) = sub.queue.close(CloseReason::Closed) {
                waker.wake();
            }
        }
        rt.block_on(async {
            for t in tasks {
                let _ = t.await;
            }
        });
        let json = log.write(
            "fanout_drain",
            &id,
            serde_json::json!({ "subscribers": n, "worker_threads": 2, "bytes_written": sink.load(Ordering::Relaxed) }),
        );
        eprintln!("fanout_drain/{id}: {}", json.replace('\n', " "));
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = benches::config();
    targets = fanout_drain
}
criterion_main!(benches);
