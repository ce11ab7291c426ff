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

mod hub_process;
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
    /// Sweep a hub that is already running at this URL instead of starting ours.
    #[arg(long)]
    pub hub_url: Option<String>,

    /// Our hub's binary (default: MERCURE_HUB_BIN, then target/release/mercure-hub).
    #[arg(long)]
    pub hub_bin: Option<PathBuf>,

    /// Port for the hub we start.
    #[arg(long, default_value_t = 3999)]
    pub port: u16,

    /// Extra Caddy-style directives for the hub we start (appended after `anonymous`).
    #[arg(long, default_value = "")]
    pub hub_directives: String,

    /// Extra environment for the hub we start, `KEY=VALUE`, repeatable.
    #[arg(long = "hub-env")]
    pub hub_env: Vec<String>,

    /// Pid of an already running hub, for RSS/CPU/fds (with --hub-url).
    #[arg(long)]
    pub hub_pid: Option<u32>,

    /// Metrics URL of an already running hub (with --hub-url, without --hub-pid).
    #[arg(long)]
    pub hub_metrics_url: Option<String>,

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
        let Some(rest) = name.strip_prefix("subs-").and_then(|r| r.strip_suffix(".json")) else {
            continue;
        };
        let Some((n, rate)) = rest.split_once("-rate-") else { continue };
        let (Ok(n), Ok(rate)) = (n.parse::<u64>(), rate.parse::<f64>()) else { continue };
        let report = std::fs::read_to_string(e.path())
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<Report>(&t).map_err(|e| e.to_string()));
        points.push(Point { subscribers: n, rate, report, file: format!("points/{name}") });
    }
    Ok(points)
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
    let started = Instant::now();
    let load_before = loadavg();
    let date = crate::clock::utc_date(crate::clock::now_ns() / 1_000_000_000);
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from(format!("results/capacity-{date}")));
    std::fs::create_dir_all(out.join("points")).map_err(|e| format!("{}: {e}", out.display()))?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let hub_bin = match &a.hub_url {
        Some(_) => None,
        None => Some(locate(a.hub_bin.as_deref()).ok_or(
            "no hub binary: build it (cargo build --release -p mercure-hub), or give \
             --hub-bin, MERCURE_HUB_BIN, or --hub-url for a running hub",
        )?),
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
            let file = format!("points/subs-{n}-rate-{rate}.json");
            let report_path = out.join(&file);
            eprintln!("point: {n} subscribers × {rate} updates/s");
            let hub = match &hub_bin {
                Some(bin) => {
                    let log = out.join(format!("tmp/hub-{n}-{rate}.log"));
                    Some(HubProcess::start(bin, a.port, &a.jwt_key, &a.hub_directives, &hub_env, &log).await?)
                }
                None => None,
            };
            let url = hub.as_ref().map(|h| h.url.clone()).or_else(|| a.hub_url.clone()).unwrap_or_default();
            let mut cmd = tokio::process::Command::new(&exe);
            cmd.arg("run")
                .arg("--hub-url")
                .arg(&url)
                .arg("--jwt-key")
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
            match (&hub, a.hub_pid, &a.hub_metrics_url) {
                (Some(h), _, _) => {
                    cmd.arg("--hub-pid").arg(h.pid.to_string());
                }
                (None, Some(pid), _) => {
                    cmd.arg("--hub-pid").arg(pid.to_string());
                }
                (None, None, Some(m)) => {
                    cmd.arg("--hub-metrics-url").arg(m);
                }
                _ => {}
            }
            let status = cmd.status().await;
            if let Some(h) = hub {
                if hub_config.is_empty() {
                    hub_config = hub_config_lines(&out.join(format!("tmp/hub-{n}-{rate}.log")));
                }
                h.stop().await;
            }
            let report = match status {
                Err(e) => Err(format!("cannot run loadgen: {e}")),
                Ok(_) => std::fs::read_to_string(&report_path)
                    .map_err(|e| format!("no report: {e}"))
                    .and_then(|t| serde_json::from_str::<Report>(&t).map_err(|e| e.to_string())),
            };
            let p = Point { subscribers: n, rate, report, file };
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
        hub: a.hub_url.clone().unwrap_or_else(|| hub_bin.map(|b| b.display().to_string()).unwrap_or_default()),
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
