//! Publish throughput through the history, per transport and fsync policy, with 1 and with 64
//! concurrent publishers.
//!
//! What it measures: the hub's own publish path as the HTTP handler drives it (admission,
//! `Hub::publish`, then waiting for the durable acknowledgement), without sockets. With one
//! publisher under `fsync=always`, every publish waits for its own fsync: the Go hub's model
//! (one fsync per publish under a global lock). With 64 publishers, group commit lets one
//! fsync cover every update waiting at that moment; the ratio between the two is the point.
//!
//! Names: `history_publish/<transport>/publishers=<n>`, throughput in updates.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mercure_hub::history::durable::RedbStore;
use mercure_hub::history::{FsyncPolicy, Persistence};
use mercure_hub::hub::{Hub, HubOptions};
use mercure_hub::update::Update;

/// Updates published per measured iteration (split across the publishers).
const UPDATES: usize = 512;

#[derive(Clone, Copy)]
enum Transport {
    Local,
    Redb(FsyncPolicy),
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::Local => "local",
            Transport::Redb(FsyncPolicy::Always) => "redb-fsync-always",
            Transport::Redb(FsyncPolicy::Interval(_)) => "redb-fsync-100ms",
        }
    }
}

fn hub(transport: Transport, dir: &std::path::Path) -> Arc<Hub> {
    let options = HubOptions::default();
    Arc::new(match transport {
        Transport::Local => Hub::new(options),
        Transport::Redb(fsync) => {
            let (store, loaded) = RedbStore::open(&dir.join("bench.redb"), fsync).expect("open redb");
            Hub::with_persistence(options, Some(Box::new(store) as Box<dyn Persistence>), loaded)
        }
    })
}

/// Publishes `UPDATES` updates from `publishers` tasks, each waiting for its acknowledgement
/// before the next publish, as an HTTP publisher waits for its 200.
async fn run(hub: &Arc<Hub>, publishers: usize) {
    let per = UPDATES / publishers;
    let tasks: Vec<_> = (0..publishers)
        .map(|p| {
            let hub = hub.clone();
            tokio::spawn(async move {
                for i in 0..per {
                    let permit = hub.admit().await;
                    let update = Update::new(
                        format!("urn:bench:{p}:{i}"),
                        vec!["https://example.com/bench".into()],
                        false,
                        None,
                        None,
                        "x".repeat(200),
                    );
                    if let Some(ack) = hub.publish(Arc::new(update)).durable {
                        ack.await.expect("writer alive").expect("durable write");
                    }
                    drop(permit);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("publisher task");
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let mut group = c.benchmark_group("history_publish");
    group.throughput(Throughput::Elements(UPDATES as u64));
    group.sample_size(10);
    group.measurement_time(benches::measurement(Duration::from_secs(8)));
    for transport in [
        Transport::Local,
        Transport::Redb(FsyncPolicy::Always),
        Transport::Redb(FsyncPolicy::Interval(Duration::from_millis(100))),
    ] {
        for publishers in [1usize, 64] {
            let dir = std::env::temp_dir().join(format!(
                "mercure-bench-{}-{}-{publishers}",
                std::process::id(),
                transport.name()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("bench dir");
            let hub = hub(transport, &dir);
            group.bench_with_input(
                BenchmarkId::new(transport.name(), format!("publishers={publishers}")),
                &publishers,
                |b, &p| {
                    b.iter_custom(|iters| {
                        let start = Instant::now();
                        for _ in 0..iters {
                            rt.block_on(run(&hub, p));
                        }
                        start.elapsed()
                    });
                },
            );
            hub.close_history();
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
