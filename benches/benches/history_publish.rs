//! Publish throughput through the history, per transport and fsync policy, with 1 and with 64
//! concurrent publishers.
//!
//! What it measures: the hub's own publish path as the HTTP handler drives it (admission,
//! `Hub::publish`, then waiting for the durable acknowledgement), without sockets. With one
//! publisher under `fsync=always`, every publish waits for its own fsync: the Go hub's model
//! (one fsync per publish under a global lock). With 64 publishers, group commit lets one
//! fsync cover every update waiting at that moment; the ratio between the two is the point.
//!
//! The Redis transport (several nodes) is measured the same way through `Hub::submit`: the
//! acknowledgement is Redis's answer to the node's pipelined `XADD`s, from a private
//! `redis-server` this bench starts (`appendfsync always`, and without AOF); skipped, saying
//! so, when `redis-server` is not installed.
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
    /// A node on a private Redis; `true`: `appendonly yes` + `appendfsync always`.
    Redis(bool),
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::Local => "local",
            Transport::Redb(FsyncPolicy::Always) => "redb-fsync-always",
            Transport::Redb(FsyncPolicy::Interval(_)) => "redb-fsync-100ms",
            Transport::Redis(true) => "redis-appendfsync-always",
            Transport::Redis(false) => "redis-no-aof",
        }
    }
}

/// A private `redis-server` for one bench point, killed on drop.
struct RedisServer(std::process::Child);

impl RedisServer {
    fn start(dir: &std::path::Path, aof: bool) -> Option<(Self, u16)> {
        let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
        let mut cmd = std::process::Command::new("redis-server");
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""]).arg("--dir").arg(dir);
        if aof {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        }
        let child = cmd.stdout(std::process::Stdio::null()).spawn().ok()?;
        let server = RedisServer(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some((server, port));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn redis_hub(rt: &tokio::runtime::Runtime, port: u16) -> (Arc<Hub>, mercure_hub::cluster::Cluster) {
    let options = HubOptions::default();
    let mut ignored = Vec::new();
    let mut retention = options.retention.clone();
    let url = format!("redis://127.0.0.1:{port}/0?stream=bench");
    let spec = mercure_hub::cluster::spec::parse(&url, &mut retention, &mut ignored).expect("redis url");
    rt.block_on(async {
        let (cluster, loaded) = mercure_hub::cluster::Cluster::connect(&spec, &retention).await.expect("connect");
        let hub = Arc::new(Hub::with_relay(options, cluster.relay(), loaded));
        cluster.run(&hub);
        (hub, cluster)
    })
}

fn hub(transport: Transport, dir: &std::path::Path) -> Arc<Hub> {
    let options = HubOptions::default();
    Arc::new(match transport {
        Transport::Redis(_) => unreachable!("built by redis_hub"),
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
                    if let Some(ack) = hub.submit(Arc::new(update)) {
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
        Transport::Redis(true),
        Transport::Redis(false),
    ] {
        for publishers in [1usize, 64] {
            let dir = std::env::temp_dir().join(format!(
                "mercure-bench-{}-{}-{publishers}",
                std::process::id(),
                transport.name()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("bench dir");
            let mut redis = None;
            let hub = match transport {
                Transport::Redis(aof) => match RedisServer::start(&dir, aof) {
                    Some((server, port)) => {
                        let (hub, cluster) = redis_hub(&rt, port);
                        redis = Some((server, cluster));
                        hub
                    }
                    None => {
                        eprintln!("history_publish/{}: skipped: redis-server is not installed", transport.name());
                        continue;
                    }
                },
                _ => hub(transport, &dir),
            };
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
            if let Some((server, cluster)) = redis.take() {
                rt.block_on(cluster.leave());
                drop(server);
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
