//! Capacity planning: sweep subscriber counts × publish rates, one load run per point,
//! and name the knee.
//!
//! For each subscriber count (ascending) and each publish rate (ascending) the sweep
//! runs `mercure-loadgen run` as a child process (a crash stays one failed point) on
//! one topic, with a fresh hub per point when it manages the hub (so RSS per
//! subscriber is measured from a clean baseline). At a given subscriber count, rates
//! above the first failing one are skipped: they can only fail harder, and the sweep
//! has a time budget. Output, in `results/capacity-<date>/`:
//! `points/*.json` (every run's report), `summary.md`, `summary.json`, and the plots
//! `p99-vs-subscribers.svg`, `deliveries-vs-subscribers.svg`,
//! `rss-per-subscriber.svg`.
//!
//! The knee is the passing point (p99 under the SLO, zero loss, every subscriber held)
//! with the most deliveries per second.
//!
//! `--nodes N` (N ≥ 2) sweeps a multi-node hub instead: per point a fresh `redis-server`
//! and N hubs sharing one Redis stream ([`nodes`]), the run pointed at all N URLs and
//! pids; `--nodes 1` (the default) is the single hub above, unchanged. Point files then
//! end in `-nodes-N.json`, and the summary states the node count.

mod hub_process;
mod nodes;
mod plot;
mod summary;

pub use hub_process::{HubProcess, locate};

use crate::report::Report;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// `mercure-loadgen capacity`.
#[derive(Debug, Clone, clap::Args)]
pub struct CapacityArgs {
    /// Sweep a hub that is already running at this URL instead of starting ours. Several
    /// (repeated or comma-separated) for the nodes of a running multi-node hub.
    #[arg(long, value_delimiter = ',')]
    pub hub_url: Vec<String>,

    /// Hub nodes per point: with 2 or more, each point starts a `redis-server` (which
    /// must be on PATH) and this many hubs sharing one Redis stream, and drives them all.
    #[arg(long, default_value_t = 1)]
    pub nodes: u32,

    /// Our hub's binary (default: MERCURE_HUB_BIN, then target/release/mercure-hub).
    #[arg(long)]
    pub hub_bin: Option<PathBuf>,

    /// Port for the hub we start (with --nodes 1; several nodes take free ports).
    #[arg(long, default_value_t = 3999)]
    pub port: u16,

    /// Extra Caddy-style directives for the hub we start (appended after `anonymous`).
    #[arg(long, default_value = "")]
    pub hub_directives: String,

    /// Extra environment for the hub we start, `KEY=VALUE`, repeatable.
    #[arg(long = "hub-env")]
    pub hub_env: Vec<String>,

    /// Pid of an already running hub, for RSS/CPU/fds (with --hub-url; several like it).
    #[arg(long, value_delimiter = ',')]
    pub hub_pid: Vec<u32>,

    /// Metrics URL of an already running hub (with --hub-url, without --hub-pid; several
    /// like it).
    #[arg(long, value_delimiter = ',')]
    pub hub_metrics_url: Vec<String>,

    /// JWT key for minting tokens (and for the hub we start).
    #[arg(long, env = "MERCURE_PUBLISHER_JWT_KEY", hide_env_values = true,
          default_value = crate::jwt::DEMO_KEY)]
    pub jwt_key: String,

    /// Subscriber counts, comma-separated.
    #[arg(long, default_value = "1000,2000,5000,10000,19000", value_delimiter = ',')]
    pub subscribers: Vec<u64>,

    /// Publish rates (updates per second), comma-separated.
    #[arg(long, default_value = "1,2,5,10,20,50,100", value_delimiter = ',')]
    pub rates: Vec<f64>,

    /// Publish seconds per point.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,

    /// Latency SLO for p99, ms.
    #[arg(long, default_value_t = 100.0)]
    pub slo_ms: f64,

    /// Output directory (default: results/capacity-<UTC date>).
    #[arg(long)]
    pub out: Option<PathBuf>,

    /// Stop starting new points after this many minutes.
    #[arg(long, default_value_t = 15.0)]
    pub max_minutes: f64,

    /// Keep sweeping higher rates at a subscriber count after a failure.
    #[arg(long)]
    pub no_skip_after_failure: bool,

    /// Only redraw the figures of an existing output directory from its points/*.json.
    #[arg(long)]
    pub replot: Option<PathBuf>,

    /// Extra `mercure-loadgen run` flags for every point, whitespace-separated.
    #[arg(long, allow_hyphen_values = true, default_value = "")]
    pub run_args: String,
}

/// One swept point: its coordinates and its report (if the run produced one).
#[derive(Debug, Clone)]
pub struct Point {
    /// Subscribers asked for.
    pub subscribers: u64,
    /// Publish rate asked for.
    pub rate: f64,
    /// The report, or why there is none.
    pub report: Result<Report, String>,
    /// Report path, relative to the output directory.
    pub file: String,
    /// Hub nodes driven at this point.
    pub nodes: u32,
}

impl Point {
    /// Passed the SLO with zero loss and every subscriber held.
    pub fn pass(&self) -> bool {
        self.report.as_ref().is_ok_and(|r| r.verdict.pass)
    }
}

/// The hub's startup lines that describe its configuration (our hub logs them at
/// info level with `configuration`, `history` or `open-file limit`), for the summary.
fn hub_config_lines(log: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|l| l.contains("configuration") || l.contains("history transport") || l.contains("open-file limit"))
        // Drop the timestamp: everything before the level.
        .map(|l| l.split_once(" INFO ").map_or(l, |(_, rest)| rest).trim().to_string())
        .take(5)
        .collect()
}

/// Reads `dir/points/subs-N-rate-R.json` back into points.
fn load_points(dir: &std::path::Path) -> Result<Vec<Point>, String> {
    let mut points = Vec::new();
    let entries = std::fs::read_dir(dir.join("points")).map_err(|e| format!("{}: {e}", dir.display()))?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some((n, rate, nodes)) = parse_point_name(&name) else { continue };
        let report = std::fs::read_to_string(e.path())
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<Report>(&t).map_err(|e| e.to_string()));
        points.push(Point { subscribers: n, rate, report, file: format!("points/{name}"), nodes });
    }
    Ok(points)
}

/// A point's file name: `subs-N-rate-R.json`, or `subs-N-rate-R-nodes-K.json` for K ≥ 2
/// hub nodes.
fn point_name(n: u64, rate: f64, nodes: u32) -> String {
    if nodes > 1 { format!("subs-{n}-rate-{rate}-nodes-{nodes}.json") } else { format!("subs-{n}-rate-{rate}.json") }
}

/// The inverse of [`point_name`]: `(subscribers, rate, nodes)`.
fn parse_point_name(name: &str) -> Option<(u64, f64, u32)> {
    let rest = name.strip_prefix("subs-")?.strip_suffix(".json")?;
    let (n, rest) = rest.split_once("-rate-")?;
    let (rate, nodes) = match rest.split_once("-nodes-") {
        Some((r, k)) => (r, k.parse::<u32>().ok()?),
        None => (rest, 1),
    };
    Some((n.parse().ok()?, rate.parse().ok()?, nodes))
}

/// The 1-minute load average, to show whether the machine was quiet.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// Runs the sweep.
pub async fn run(a: CapacityArgs, stop: watch::Receiver<bool>) -> Result<(), String> {
    if let Some(dir) = &a.replot {
        let points = load_points(dir)?;
        return plot::write_all(dir, &points, a.slo_ms);
    }
    let external = !a.hub_url.is_empty();
    if a.nodes == 0 {
        return Err("--nodes must be at least 1".into());
    }
    if external && a.nodes > 1 {
        return Err("--nodes starts the hubs; to sweep running nodes, give each one's --hub-url".into());
    }
    // Before anything starts: a multi-node sweep without Redis fails here, loudly.
    let redis_bin = if a.nodes > 1 { Some(nodes::locate_redis(a.nodes)?) } else { None };
    let started = Instant::now();
    let load_before = loadavg();
    let date = crate::clock::utc_date(crate::clock::unix_now_ns() / 1_000_000_000);
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from(format!("results/capacity-{date}")));
    std::fs::create_dir_all(out.join("points")).map_err(|e| format!("{}: {e}", out.display()))?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let hub_bin = if external {
        None
    } else {
        Some(locate(a.hub_bin.as_deref()).ok_or(
            "no hub binary: build it (cargo build --release -p mercure-hub), or give \
             --hub-bin, MERCURE_HUB_BIN, or --hub-url for a running hub",
        )?)
    };
    let hub_env: Vec<(String, String)> =
        a.hub_env.iter().filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string()))).collect();
    let mut subs = a.subscribers.clone();
    subs.sort_unstable();
    let mut rates = a.rates.clone();
    rates.sort_by(f64::total_cmp);
    let mut points: Vec<Point> = Vec::new();
    let mut hub_config: Vec<String> = Vec::new();
    let budget = Duration::from_secs_f64(a.max_minutes * 60.0);
    'outer: for &n in &subs {
        for &rate in &rates {
            if *stop.borrow() {
                break 'outer;
            }
            if started.elapsed() >= budget {
                eprintln!("time budget reached; remaining points skipped");
                break 'outer;
            }
            let file = format!("points/{}", point_name(n, rate, a.nodes));
            let report_path = out.join(&file);
            let nodes_note = if a.nodes > 1 { format!(" on {} hub nodes", a.nodes) } else { String::new() };
            eprintln!("point: {n} subscribers × {rate} updates/s{nodes_note}");
            let tag = if a.nodes > 1 { format!("hub-{n}-{rate}-nodes-{}", a.nodes) } else { format!("hub-{n}-{rate}") };
            let tmp_dir = out.join("tmp");
            let stream = format!("loadgen-{}-{}", crate::clock::unix_now_ns() / 1_000_000, points.len());
            let cluster_spec = match (&hub_bin, &redis_bin) {
                (Some(hub_bin), Some(redis_bin)) => Some(nodes::ClusterSpec {
                    nodes: a.nodes,
                    hub_bin,
                    redis_bin,
                    key: &a.jwt_key,
                    directives: &a.hub_directives,
                    env: &hub_env,
                    tmp: &tmp_dir,
                    tag: &tag,
                    stream: &stream,
                }),
                _ => None,
            };
            // The hubs of this point: one (--nodes 1), or N sharing a fresh Redis.
            let (hubs, cluster) = match (&hub_bin, &cluster_spec) {
                (_, Some(spec)) => {
                    let c = nodes::Cluster::start(spec).await?;
                    (Vec::new(), Some(c))
                }
                (Some(bin), None) => {
                    let log = out.join(format!("tmp/{tag}.log"));
                    (vec![HubProcess::start(bin, a.port, &a.jwt_key, &a.hub_directives, &hub_env, &log).await?], None)
                }
                (None, None) => (Vec::new(), None),
            };
            let started: &[HubProcess] = cluster.as_ref().map_or(&hubs, |c| &c.hubs);
            let urls: Vec<String> =
                if started.is_empty() { a.hub_url.clone() } else { started.iter().map(|h| h.url.clone()).collect() };
            let mut cmd = tokio::process::Command::new(&exe);
            cmd.arg("run");
            for url in &urls {
                cmd.arg("--hub-url").arg(url);
            }
            cmd.arg("--jwt-key")
                .arg(&a.jwt_key)
                .arg("--initial-subscribers")
                .arg(n.to_string())
                .arg("--publishers-rate-from")
                .arg(rate.to_string())
                .arg("--publishers-rate-to")
                .arg(rate.to_string())
                .arg("--duration")
                .arg(a.duration.to_string())
                .arg("--slo-ms")
                .arg(a.slo_ms.to_string())
                .arg("--report")
                .arg(&report_path)
                .arg("--no-progress")
                .arg("--source-base")
                .arg((2 + (points.len() * 4) % 248).to_string())
                .args(a.run_args.split_whitespace())
                .kill_on_drop(true);
            // The run's own summary and any errors go to a log beside the hub's.
            let run_log = out.join(format!("tmp/loadgen-{n}-{rate}.log"));
            if let Some(dir) = run_log.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            if let Ok(f) = std::fs::File::create(&run_log)
                && let Ok(f2) = f.try_clone()
            {
                cmd.stdout(f).stderr(f2);
            }
            let pids: Vec<u32> =
                if started.is_empty() { a.hub_pid.clone() } else { started.iter().map(|h| h.pid).collect() };
            for pid in &pids {
                cmd.arg("--hub-pid").arg(pid.to_string());
            }
            if pids.is_empty() {
                for m in &a.hub_metrics_url {
                    cmd.arg("--hub-metrics-url").arg(m);
                }
            }
            let status = cmd.status().await;
            if hub_config.is_empty() && !started.is_empty() {
                let log =
                    cluster_spec.as_ref().map_or_else(|| out.join(format!("tmp/{tag}.log")), nodes::Cluster::first_log);
                hub_config = hub_config_lines(&log);
            }
            for h in hubs {
                h.stop().await;
            }
            if let Some(c) = cluster {
                c.stop().await;
            }
            let report = match status {
                Err(e) => Err(format!("cannot run loadgen: {e}")),
                Ok(_) => std::fs::read_to_string(&report_path)
                    .map_err(|e| format!("no report: {e}"))
                    .and_then(|t| serde_json::from_str::<Report>(&t).map_err(|e| e.to_string())),
            };
            let p = Point { subscribers: n, rate, report, file, nodes: a.nodes };
            let pass = p.pass();
            if let Ok(r) = &p.report {
                eprintln!(
                    "  held {}/{}  lost {}  p99 {:.2} ms  {:.0} deliveries/s  {}",
                    r.connections.peak_held,
                    n,
                    r.delivery.tally.lost,
                    r.latency_ms.p99,
                    r.delivery.deliveries_per_s,
                    if pass { "pass" } else { "FAIL" }
                );
                if r.nodes.len() > 1 {
                    let per: Vec<String> = r
                        .nodes
                        .iter()
                        .map(|nd| {
                            format!("{}/{} held, {} delivered", nd.peak_held, nd.requested, nd.delivery.delivered)
                        })
                        .collect();
                    eprintln!("  per node: {}", per.join("; "));
                }
            } else if let Err(e) = &p.report {
                eprintln!("  no report: {e}");
            }
            points.push(p);
            if !pass && !a.no_skip_after_failure {
                break;
            }
            // Let TIME_WAIT sockets and the kernel settle between points.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    let ctx = summary::Context {
        date,
        hub: if external { a.hub_url.join(", ") } else { hub_bin.map(|b| b.display().to_string()).unwrap_or_default() },
        nodes: if external { a.hub_url.len() as u32 } else { a.nodes },
        slo_ms: a.slo_ms,
        duration_s: a.duration,
        elapsed_s: started.elapsed().as_secs_f64(),
        interrupted: *stop.borrow(),
        load_before,
        load_after: loadavg(),
        hub_config,
    };
    summary::write(&out, &ctx, &points)?;
    plot::write_all(&out, &points, a.slo_ms)?;
    println!("{}", std::fs::read_to_string(out.join("summary.md")).unwrap_or_default());
    println!("results: {}", out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn point_names_carry_the_node_count_from_two_nodes() {
        assert_eq!(point_name(1000, 5.0, 1), "subs-1000-rate-5.json");
        assert_eq!(point_name(1000, 2.5, 3), "subs-1000-rate-2.5-nodes-3.json");
        assert_eq!(parse_point_name("subs-1000-rate-5.json"), Some((1000, 5.0, 1)));
        assert_eq!(parse_point_name("subs-1000-rate-2.5-nodes-3.json"), Some((1000, 2.5, 3)));
        assert_eq!(parse_point_name("subs-x-rate-5.json"), None);
        assert_eq!(parse_point_name("summary.json"), None);
    }
}
