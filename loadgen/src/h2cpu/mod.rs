//! `h2-cpu`: the hub's CPU per delivered update over HTTP/2 + TLS against HTTP/1.1 cleartext
//! (issue 12's measured target: within 1.3×, at 5,000 subscribers × 1 update/s).
//!
//! One run = one fresh hub process (cleartext or TLS), `subscribers` SSE subscriptions to one
//! topic, then a fixed window in which one update a second is published to it (so each
//! subscriber gets one update a second). The hub's CPU over the window (utime + stime from
//! `/proc/PID/stat`, in clock ticks; thread `schedstat` nanoseconds beside it) divided by the
//! deliveries the subscribers counted is the run's CPU per delivery. Runs of the variants are
//! interleaved (h2-TLS, h1, h2-TLS, h1, …) so a change in the machine's load hits both alike;
//! the summary gives each variant's median and the ratio of medians.
//!
//! Loopback only, bounded: every run ends after its window (plus at most 30 s of draining),
//! and every hub is stopped (SIGTERM to its own pid, then SIGKILL after 5 s).
//!
//! - [`hub`]: certificates, the hub process, its CPU counters and metrics.
//! - [`clients`]: subscribers and the publisher over both transports.

pub mod clients;
pub mod hub;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::Parser;
use serde::Serialize;

use clients::{Counters, Publisher, Transport};
use hub::{Hub, HubConfig};

#[derive(Parser, Debug, Clone)]
#[command(name = "h2-cpu", about = "Hub CPU per delivery: HTTP/2 over TLS against HTTP/1.1 cleartext")]
pub struct Args {
    /// The hub binary [default: MERCURE_HUB_BIN, else target/release/mercure-hub]
    #[arg(long)]
    pub hub_bin: Option<PathBuf>,
    /// Subscribers in every run
    #[arg(long, default_value_t = 5000)]
    pub subscribers: usize,
    /// HTTP/2 streams per TLS connection (the hub's max_concurrent_streams is set to it)
    #[arg(long, default_value_t = 100)]
    pub streams_per_connection: usize,
    /// Runs of each variant (interleaved)
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Seconds of publishing in each run (one update a second)
    #[arg(long, default_value_t = 30)]
    pub window: u64,
    /// Also run HTTP/2 over TLS with one stream per connection (one TLS connection per
    /// subscriber, as separate browsers are)
    #[arg(long)]
    pub one_stream_per_connection: bool,
    /// Run only these variants (h2-tls, h1-clear, h2-tls-1-stream-per-conn; repeatable), e.g.
    /// to profile one under perf
    #[arg(long)]
    pub only: Vec<String>,
    /// Where runs.jsonl, summary.txt and the hub logs go
    #[arg(long, default_value = "results/h2-tls")]
    pub out: PathBuf,
}

/// One transport configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Variant {
    /// HTTP/2 over TLS, many streams per connection.
    H2Tls,
    /// HTTP/1.1 cleartext, one connection per subscriber.
    H1Clear,
    /// HTTP/2 over TLS, one stream per connection.
    H2TlsSingle,
}

impl Variant {
    pub fn name(self) -> &'static str {
        match self {
            Variant::H2Tls => "h2-tls",
            Variant::H1Clear => "h1-clear",
            Variant::H2TlsSingle => "h2-tls-1-stream-per-conn",
        }
    }
}

/// What one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub variant: &'static str,
    pub repeat: usize,
    pub subscribers: usize,
    pub connections: usize,
    pub publishes: u64,
    pub deliveries: u64,
    pub expected_deliveries: u64,
    pub window_s: f64,
    /// Hub CPU (user + system) over the window, clock ticks (1/100 s) and seconds.
    pub cpu_ticks: u64,
    pub cpu_s: f64,
    /// The same from the threads' schedstat, nanoseconds.
    pub cpu_schedstat_ns: u64,
    /// Hub CPU over an idle window of the same subscribers before publishing (ticks, and
    /// its length in seconds).
    pub idle_ticks: u64,
    pub idle_s: f64,
    /// Microseconds of hub CPU per delivered update (ticks, and schedstat).
    pub cpu_us_per_delivery: f64,
    pub schedstat_us_per_delivery: f64,
    pub hub_rss_kib: u64,
}

const KEY: &str = "h2-cpu-benchmark-key";
const TOPIC: &str = "https://example.com/h2-cpu";
const IDLE: Duration = Duration::from_secs(5);

pub async fn run(args: Args) -> Result<Vec<RunResult>, String> {
    let bin = args
        .hub_bin
        .clone()
        .or_else(|| std::env::var_os("MERCURE_HUB_BIN").map(PathBuf::from))
        .or_else(|| Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/mercure-hub")))
        .filter(|p| p.is_file())
        .ok_or("no hub binary: build it (cargo build --release -p mercure-hub) or pass --hub-bin")?;
    // Absolute: each hub runs in a directory of its own.
    let bin = std::fs::canonicalize(&bin).map_err(|e| format!("{}: {e}", bin.display()))?;
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    // A throwaway CA and leaf, outside the results (private keys are never kept).
    let certs = std::env::temp_dir().join(format!("h2-cpu-certs-{}", std::process::id()));
    hub::make_certs(&certs)?;
    let outcome = run_all(&args, &bin, &certs).await;
    let _ = std::fs::remove_dir_all(&certs);
    outcome
}

async fn run_all(args: &Args, bin: &std::path::Path, certs: &std::path::Path) -> Result<Vec<RunResult>, String> {
    let tls = clients::tls_config(&certs.join("ca.pem"))?;
    let mut variants = vec![Variant::H2Tls, Variant::H1Clear];
    if args.one_stream_per_connection {
        variants.push(Variant::H2TlsSingle);
    }
    if !args.only.is_empty() {
        variants = [Variant::H2Tls, Variant::H1Clear, Variant::H2TlsSingle]
            .into_iter()
            .filter(|v| args.only.iter().any(|o| o == v.name()))
            .collect();
        if variants.is_empty() {
            return Err(format!("--only {:?}: no such variant", args.only));
        }
    }
    let jsonl = args.out.join("runs.jsonl");
    let _ = std::fs::remove_file(&jsonl);
    let mut results = Vec::new();
    for repeat in 0..args.repeats {
        for &variant in &variants {
            let r = run_one(args, bin, certs, &tls, variant, repeat).await?;
            println!(
                "{:<26} repeat {} : {} deliveries of {} in {:.1} s, hub CPU {} ticks ({:.3} s; idle {} ticks/{:.0} s) = {:.2} us/delivery (schedstat {:.2}), RSS {} MiB",
                r.variant,
                r.repeat,
                r.deliveries,
                r.expected_deliveries,
                r.window_s,
                r.cpu_ticks,
                r.cpu_s,
                r.idle_ticks,
                r.idle_s,
                r.cpu_us_per_delivery,
                r.schedstat_us_per_delivery,
                r.hub_rss_kib / 1024
            );
            let line = serde_json::to_string(&r).map_err(|e| e.to_string())?;
            append(&jsonl, &line)?;
            results.push(r);
        }
    }
    let summary = summarize(&results, &variants);
    println!("{summary}");
    std::fs::write(args.out.join("summary.txt"), &summary).map_err(|e| e.to_string())?;
    Ok(results)
}

fn append(path: &std::path::Path, line: &str) -> Result<(), String> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    writeln!(f, "{line}").map_err(|e| e.to_string())
}

async fn run_one(
    args: &Args,
    bin: &std::path::Path,
    certs: &std::path::Path,
    tls: &Arc<rustls::ClientConfig>,
    variant: Variant,
    repeat: usize,
) -> Result<RunResult, String> {
    let n = args.subscribers;
    let (transport, per_conn) = match variant {
        Variant::H1Clear => (Transport::H1, 1),
        Variant::H2Tls => {
            (Transport::H2Tls { tls: tls.clone(), per_conn: args.streams_per_connection }, args.streams_per_connection)
        }
        Variant::H2TlsSingle => (Transport::H2Tls { tls: tls.clone(), per_conn: 1 }, 1),
    };
    let config = HubConfig {
        bin,
        key: KEY,
        tls: (variant != Variant::H1Clear).then_some(certs),
        max_concurrent_streams: args.streams_per_connection.max(1),
        subscribers: n,
        log: args.out.join(format!("hub-{}-{repeat}.log", variant.name())),
    };
    let hub = Hub::start(&config).await?;
    let outcome = measure(args, &hub, &transport, variant, repeat, per_conn).await;
    hub.stop().await;
    outcome
}

async fn measure(
    args: &Args,
    hub: &Hub,
    transport: &Transport,
    variant: Variant,
    repeat: usize,
    per_conn: usize,
) -> Result<RunResult, String> {
    let n = args.subscribers;
    let counters = Arc::new(Counters::default());
    let path = format!(
        "/.well-known/mercure?topic={}",
        percent_encoding::utf8_percent_encode(TOPIC, percent_encoding::NON_ALPHANUMERIC)
    );
    let streams = clients::subscribe(transport, hub.addr, &path, n, &counters).await;
    let _close = Streams(streams);
    let (open, failed) = (counters.open.load(Ordering::Relaxed), counters.failed.load(Ordering::Relaxed));
    if open != n {
        return Err(format!("{}: {open} of {n} subscriptions open ({failed} failed)", variant.name()));
    }
    // The hub's own count, so nothing is still being registered when the window opens.
    let deadline = Instant::now() + Duration::from_secs(30);
    while hub.metric("mercure_subscribers").await? != n as u64 {
        if Instant::now() > deadline {
            return Err(format!("{}: the hub never counted {n} subscribers", variant.name()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let idle_from = (hub.cpu_ticks()?, Instant::now());
    tokio::time::sleep(IDLE).await;
    let idle = (hub.cpu_ticks()? - idle_from.0, idle_from.1.elapsed().as_secs_f64());

    let token = crate::jwt::publisher(KEY)?;
    let mut publisher = Publisher::connect(transport, hub.addr).await?;
    let events0 = counters.events.load(Ordering::Relaxed);
    let (ticks0, ns0, t0) = (hub.cpu_ticks()?, hub.cpu_ns(), Instant::now());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut publishes = 0u64;
    for i in 0..args.window {
        tick.tick().await;
        publisher.publish(hub.addr, &token, TOPIC, &format!("update {i}")).await?;
        publishes += 1;
    }
    // Every delivery of the last update, then the window closes.
    let expected = publishes * n as u64;
    let drain = Instant::now() + Duration::from_secs(30);
    while counters.events.load(Ordering::Relaxed) - events0 < expected && Instant::now() < drain {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (ticks1, ns1, window) = (hub.cpu_ticks()?, hub.cpu_ns(), t0.elapsed().as_secs_f64());
    let deliveries = counters.events.load(Ordering::Relaxed) - events0;
    let cpu_ticks = ticks1 - ticks0;
    let cpu_ns = ns1.saturating_sub(ns0);
    let per = |x: f64| if deliveries == 0 { f64::NAN } else { x / deliveries as f64 };
    Ok(RunResult {
        variant: variant.name(),
        repeat,
        subscribers: n,
        connections: n.div_ceil(per_conn),
        publishes,
        deliveries,
        expected_deliveries: expected,
        window_s: window,
        cpu_ticks,
        cpu_s: cpu_ticks as f64 / 100.0,
        cpu_schedstat_ns: cpu_ns,
        idle_ticks: idle.0,
        idle_s: idle.1,
        cpu_us_per_delivery: per(cpu_ticks as f64 * 10_000.0),
        schedstat_us_per_delivery: per(cpu_ns as f64 / 1000.0),
        hub_rss_kib: hub.rss_kib(),
    })
}

/// Aborts the subscriber tasks (closing their connections) when dropped.
struct Streams(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Streams {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Medians per variant and the ratio to HTTP/1.1 cleartext.
pub fn summarize(results: &[RunResult], variants: &[Variant]) -> String {
    use std::fmt::Write;
    let of = |v: Variant, f: fn(&RunResult) -> f64| {
        median(results.iter().filter(|r| r.variant == v.name()).map(f).collect())
    };
    let base = (of(Variant::H1Clear, |r| r.cpu_us_per_delivery), of(Variant::H1Clear, |r| r.schedstat_us_per_delivery));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nvariant                    runs  median us/delivery (ticks)  ratio  median us/delivery (schedstat)  ratio"
    );
    for &v in variants {
        let runs = results.iter().filter(|r| r.variant == v.name()).count();
        let (t, s) = (of(v, |r| r.cpu_us_per_delivery), of(v, |r| r.schedstat_us_per_delivery));
        let _ =
            writeln!(out, "{:<26} {runs:>4}  {t:>26.3}  {:>5.2}  {s:>30.3}  {:>5.2}", v.name(), t / base.0, s / base.1);
    }
    let ratio = of(Variant::H2Tls, |r| r.cpu_us_per_delivery) / base.0;
    let verdict = if ratio <= 1.3 { "met" } else { "MISSED" };
    let _ = writeln!(
        out,
        "\ntarget (h2-tls within 1.3x of h1-clear, median CPU per delivery from /proc ticks): {ratio:.2}x, {verdict}"
    );
    out
}
