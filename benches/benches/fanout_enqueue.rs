//! Fan-out, enqueue side: one `Hub::publish` until the update sits in the queue of every
//! subscriber of its topic, for 1k, 10k, 100k and 1M subscribers on one topic.
//!
//! Why: this is the work done under the hub's dispatch lock, the serial part of every publish;
//! the target is ≤ 100 ns per recipient per core. Every subscriber has a writer parked on its
//! queue (a no-op waker), so each push takes the real `Wake` path. Between publishes, outside
//! the timing, every queue is drained and re-parked, as the connection writers would do.
//! Each publish is timed on its own; median and p99 land in `latencies.json` next to
//! criterion's estimates. `--quick` skips 1M.

use std::hint::black_box;
use std::time::{Duration, Instant};

use benches::fixtures::{self, TOPIC};
use benches::latency::LatencyLog;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// The hub binary's allocator: a fan-out allocates per recipient, so the allocator shows in it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn fanout_enqueue(c: &mut Criterion) {
    let sizes: &[usize] =
        if benches::quick() { &[1_000, 10_000, 100_000] } else { &[1_000, 10_000, 100_000, 1_000_000] };
    let mut group = c.benchmark_group("fanout_enqueue");
    for &n in sizes {
        let hub = fixtures::hub();
        let subs = fixtures::subscribers_on(&hub, n, TOPIC);
        fixtures::drain_and_park(&subs);
        let update = fixtures::update(TOPIC, 100);
        group.throughput(Throughput::Elements(n as u64));
        benches::size_fanout_group(&mut group, n, 50);
        let mut log = LatencyLog::default();
        let id = format!("subs={n}");
        group.bench_function(&id, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let done = black_box(fixtures::publish(&hub, black_box(&update)));
                    let took = start.elapsed();
                    assert_eq!(done.recipients, n, "every subscriber must get the update");
                    total += took;
                    log.record(took);
                    fixtures::drain_and_park(&subs);
                }
                total
            })
        });
        let json = log.write(
            "fanout_enqueue",
            &id,
            serde_json::json!({ "subscribers": n, "threads": 1, "payload_bytes": update.encoded.len() }),
        );
        eprintln!("fanout_enqueue/{id}: {}", json.replace('\n', " "));
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = benches::config();
    targets = fanout_enqueue
}
criterion_main!(benches);
