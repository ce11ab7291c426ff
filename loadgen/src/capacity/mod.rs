//! Capacity planning: sweep subscriber counts × publish rates against one hub (or two,
//! side by side), with repetitions, and find the knee.
//!
//! For each subscriber count (ascending) the sweep looks for the highest publish rate the
//! hub sustains ([`search`]): doubling from `--rate-start` while points pass, then
//! bisecting between the last pass and the first failure; or, with `--rates`, a fixed grid.
//! Every point is run `--repeat` times (default 3), each as a `mercure-loadgen run` child
//! process (a crash stays one failed repetition) against a fresh hub when the sweep manages
//! it; a point passes on the rule in [`point`] (every repetition exact, the median p99
//! from the schedule under the SLO). The run's shape is set by `--topics`, `--publishers`,
//! `--arrivals` (and anything in `--run-args`): several topics make concurrent publishes,
//! which is what exercises the hub's group commit.
//!
//! **Side by side** (`--compare-hub-bin` or `--compare-hub-url`): the same sweep against a
//! second hub; at every point the repetitions alternate between the two (A B, B A, A B …),
//! so drift in the machine's load falls on both, and the summary puts them in one table
//! with ratios. Each hub has its own search, so each gets its own knee.
//!
//! Output, in `results/capacity-<date>/`: `points/<label>/…-rep-I.json` (every run's
//! report), `summary.md` and `summary.json` (provenance, knees, tables, RSS fit,
//! comparison), and the figures (`plot`).
//!
//! `--nodes N` (N ≥ 2) sweeps a multi-node hub instead: per repetition a fresh
//! `redis-server` and N hubs sharing one Redis stream (`nodes`), the run pointed at all
//! N URLs and pids.

mod hub_process;
mod nodes;
mod plot;
pub mod point;
mod provenance;
pub mod search;
mod stats;
mod summary;
mod target;

pub use hub_process::{HubProcess, locate};

use point::Point;
use search::RateSearch;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use target::{Kind, Shared, Target};
use tokio::sync::watch;

/// `mercure-loadgen capacity`.
#[derive(Debug, Clone, clap::Args)]
pub struct CapacityArgs {
    /// Sweep a hub that is already running at this URL instead of starting ours. Several
    /// (repeated or comma-separated) for the nodes of a running multi-node hub.
    #[arg(long, value_delimiter = ',')]
    pub hub_url: Vec<String>,

    /// Hub nodes per point: with 2 or more, each repetition starts a `redis-server` (which
    /// must be on PATH) and this many hubs sharing one Redis stream, and drives them all.
    #[arg(long, default_value_t = 1)]
    pub nodes: u32,

    /// Our hub's binary (default: MERCURE_HUB_BIN, then target/release/mercure-hub).
    #[arg(long)]
    pub hub_bin: Option<PathBuf>,

    /// Port for the hub we start (with --nodes 1; several nodes take free ports; 0: a
    /// free port per run).
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

    /// Name of the hub under test in file names and tables.
    #[arg(long, default_value = "A")]
    pub label: String,

    /// Side by side: a second hub binary, started like the first (same directives unless
    /// --compare-hub-directives, same environment plus --compare-hub-env).
    #[arg(long)]
    pub compare_hub_bin: Option<PathBuf>,

    /// Side by side: a second hub already running at this URL (several for its nodes).
    #[arg(long, value_delimiter = ',')]
    pub compare_hub_url: Vec<String>,

    /// The second running hub's pids (with --compare-hub-url).
    #[arg(long, value_delimiter = ',')]
    pub compare_hub_pid: Vec<u32>,

    /// The second running hub's metrics URLs (with --compare-hub-url, without pids).
    #[arg(long, value_delimiter = ',')]
    pub compare_hub_metrics_url: Vec<String>,

    /// Directives for the second hub binary (default: --hub-directives).
    #[arg(long)]
    pub compare_hub_directives: Option<String>,

    /// Extra environment for the second hub binary, `KEY=VALUE`, repeatable.
    #[arg(long = "compare-hub-env")]
    pub compare_hub_env: Vec<String>,

    /// Name of the second hub.
    #[arg(long, default_value = "B")]
    pub compare_label: String,

    /// JWT key for minting tokens (and for the hubs we start).
    #[arg(long, env = "MERCURE_PUBLISHER_JWT_KEY", hide_env_values = true,
          default_value = crate::jwt::DEMO_KEY)]
    pub jwt_key: String,

    /// Subscriber counts, comma-separated.
    #[arg(long, default_value = "1000,2000,5000,10000,19000", value_delimiter = ',')]
    pub subscribers: Vec<u64>,

    /// A fixed grid of publish rates (updates per second), comma-separated, instead of the
    /// search for the highest passing rate.
    #[arg(long, value_delimiter = ',')]
    pub rates: Vec<f64>,

    /// Search: the first rate tried at each subscriber count.
    #[arg(long, default_value_t = 1.0)]
    pub rate_start: f64,

    /// Search: the highest rate tried.
    #[arg(long, default_value_t = 100_000.0)]
    pub rate_max: f64,

    /// Search: stop bisecting when the highest pass and the lowest failure are this close
    /// (relative; at least 1 update/s apart).
    #[arg(long, default_value_t = 0.1)]
    pub rate_precision: f64,

    /// Runs per point; the point is judged on their median (see loadgen/README.md).
    #[arg(long, default_value_t = 3)]
    pub repeat: u32,

    /// Publish seconds per run.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,

    /// At least this many publishes per run: low rates run longer, so their p99 covers
    /// enough fan-outs to be a tail and not the spread of one.
    #[arg(long, default_value_t = 30)]
    pub min_publishes: u64,

    /// Topics publishes are spread over (uniformly unless --zipf-s); with several,
    /// publishes to different topics are in flight together (group commit).
    #[arg(long, default_value_t = 1)]
    pub topics: u32,

    /// Zipf exponent of topic popularity (0 = uniform).
    #[arg(long, default_value_t = 0.0)]
    pub zipf_s: f64,

    /// Goose users dispatching publishes.
    #[arg(long, default_value_t = 4)]
    pub publishers: usize,

    /// Publish arrivals: `uniform` or `poisson`.
    #[arg(long, value_enum, default_value_t = crate::arrivals::Arrivals::Uniform)]
    pub arrivals: crate::arrivals::Arrivals,

    /// Latency SLO for p99 from the schedule, ms.
    #[arg(long, default_value_t = 100.0)]
    pub slo_ms: f64,

    /// Output directory (default: results/capacity-<UTC date>).
    #[arg(long)]
    pub out: Option<PathBuf>,

    /// Stop starting new runs after this many minutes.
    #[arg(long, default_value_t = 60.0)]
    pub max_minutes: f64,

    /// With --rates: keep sweeping higher rates at a subscriber count after a failure.
    #[arg(long)]
    pub no_skip_after_failure: bool,

    /// Only redraw the figures of an existing output directory from its points.
    #[arg(long)]
    pub replot: Option<PathBuf>,

    /// Extra `mercure-loadgen run` flags for every run, whitespace-separated.
    #[arg(long, allow_hyphen_values = true, default_value = "")]
    pub run_args: String,
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

/// The 1-minute load average, to show whether the machine was quiet.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// Parses `KEY=VALUE` pairs.
fn env_pairs(v: &[String]) -> Vec<(String, String)> {
    v.iter().filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string()))).collect()
}

/// The targets of the sweep: the hub under test and, side by side, the second one.
fn targets(a: &CapacityArgs) -> Result<Vec<Target>, String> {
    let env = env_pairs(&a.hub_env);
    let first = if a.hub_url.is_empty() {
        let bin = locate(a.hub_bin.as_deref()).ok_or(
            "no hub binary: build it (cargo build --release -p mercure-hub), or give \
             --hub-bin, MERCURE_HUB_BIN, or --hub-url for a running hub",
        )?;
        Kind::Managed { bin, directives: a.hub_directives.clone(), env: env.clone() }
    } else {
        Kind::External { urls: a.hub_url.clone(), pids: a.hub_pid.clone(), metrics: a.hub_metrics_url.clone() }
    };
    let mut t = vec![Target { label: a.label.clone(), kind: first, hub_config: Vec::new() }];
    let second = match (&a.compare_hub_bin, a.compare_hub_url.is_empty()) {
        (Some(_), false) => return Err("give --compare-hub-bin or --compare-hub-url, not both".into()),
        (Some(bin), true) => Some(Kind::Managed {
            bin: bin.clone(),
            directives: a.compare_hub_directives.clone().unwrap_or_else(|| a.hub_directives.clone()),
            env: [env, env_pairs(&a.compare_hub_env)].concat(),
        }),
        (None, false) => Some(Kind::External {
            urls: a.compare_hub_url.clone(),
            pids: a.compare_hub_pid.clone(),
            metrics: a.compare_hub_metrics_url.clone(),
        }),
        (None, true) => None,
    };
    if let Some(kind) = second {
        if a.compare_label == a.label {
            return Err("--label and --compare-label must differ".into());
        }
        t.push(Target { label: a.compare_label.clone(), kind, hub_config: Vec::new() });
    }
    for x in &t {
        let bad = x.label.is_empty() || !x.label.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if bad {
            return Err(format!("label {:?}: use letters, digits, '-', '_' or '.'", x.label));
        }
    }
    Ok(t)
}

/// Runs the sweep.
pub async fn run(a: CapacityArgs, stop: watch::Receiver<bool>) -> Result<(), String> {
    if let Some(dir) = &a.replot {
        let points = point::load_points(dir)?;
        return plot::write_all(dir, &points, a.slo_ms);
    }
    if a.nodes == 0 {
        return Err("--nodes must be at least 1".into());
    }
    let mut targets = targets(&a)?;
    let managed = targets.iter().any(|t| matches!(t.kind, Kind::Managed { .. }));
    if a.nodes > 1 && targets.iter().any(|t| matches!(t.kind, Kind::External { .. })) {
        return Err("--nodes starts the hubs; to sweep running nodes, give each one's --hub-url".into());
    }
    // Before anything starts: a multi-node sweep without Redis fails here, loudly.
    let redis_bin = if a.nodes > 1 && managed { Some(nodes::locate_redis(a.nodes)?) } else { None };
    let started = Instant::now();
    let load_before = loadavg();
    let provenance = provenance::Provenance::collect();
    let date = crate::clock::utc_date(crate::clock::unix_now_ns() / 1_000_000_000);
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from(format!("results/capacity-{date}")));
    std::fs::create_dir_all(out.join("points")).map_err(|e| format!("{}: {e}", out.display()))?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut subs = a.subscribers.clone();
    subs.sort_unstable();
    subs.dedup();
    let mut run_flags: Vec<String> = vec![
        "--topics".into(),
        a.topics.max(1).to_string(),
        "--zipf-s".into(),
        a.zipf_s.to_string(),
        "--publishers".into(),
        a.publishers.max(1).to_string(),
        "--arrivals".into(),
        a.arrivals.as_str().into(),
    ];
    run_flags.extend(a.run_args.split_whitespace().map(str::to_owned));
    let duration = |rate: f64| a.duration.max(a.min_publishes as f64 / rate.max(1e-9));
    let shared = Shared {
        exe: &exe,
        out: &out,
        nodes: a.nodes,
        redis_bin: redis_bin.as_deref(),
        port: a.port,
        jwt_key: &a.jwt_key,
        duration: &duration,
        slo_ms: a.slo_ms,
        run_flags: &run_flags,
    };
    let budget = Duration::from_secs_f64(a.max_minutes * 60.0);
    let mut points: Vec<Point> = Vec::new();
    let mut seq = 0usize;
    let mut out_of_time = false;
    'counts: for &n in &subs {
        let mut searches: Vec<RateSearch> = targets
            .iter()
            .map(|_| {
                if a.rates.is_empty() {
                    RateSearch::search(a.rate_start, a.rate_max, a.rate_precision)
                } else {
                    RateSearch::grid(&a.rates, a.no_skip_after_failure)
                }
            })
            .collect();
        loop {
            let next: Vec<Option<f64>> = searches.iter().map(RateSearch::next).collect();
            if next.iter().all(Option::is_none) {
                break;
            }
            // Targets at the same rate share the point, their repetitions interleaved;
            // targets whose searches diverged take their own points in turn.
            let mut groups: Vec<(f64, Vec<usize>)> = Vec::new();
            for (t, r) in next.iter().enumerate() {
                if let Some(r) = *r {
                    match groups.iter_mut().find(|g| g.0 == r) {
                        Some(g) => g.1.push(t),
                        None => groups.push((r, vec![t])),
                    }
                }
            }
            for (rate, members) in groups {
                let mut pts: Vec<Point> =
                    members.iter().map(|&t| Point::new(&targets[t].label, n, rate, a.nodes)).collect();
                let labels: Vec<&str> = members.iter().map(|&t| targets[t].label.as_str()).collect();
                eprintln!("point: {n} subscribers × {rate} updates/s ({})", labels.join(", "));
                for rep in 0..a.repeat.max(1) {
                    // A B, then B A, …: drift in the machine's load falls on both.
                    let mut order: Vec<usize> = (0..members.len()).collect();
                    if rep % 2 == 1 {
                        order.reverse();
                    }
                    for k in order {
                        if *stop.borrow() {
                            out_of_time = true;
                        } else if started.elapsed() >= budget {
                            eprintln!("time budget reached; remaining runs skipped");
                            out_of_time = true;
                        }
                        if out_of_time {
                            // Keep what ran (the summary says the last point is
                            // incomplete), not points that never ran.
                            points.extend(pts.into_iter().filter(|p| !p.reps.is_empty()));
                            break 'counts;
                        }
                        let t = &mut targets[members[k]];
                        let r = t.measure(&shared, n, rate, rep, seq).await;
                        seq += 1;
                        match &r.report {
                            Ok(rep) => eprintln!(
                                "  {} rep {}: held {}/{n}  lost {}  p99 {:.2} ms (from send {:.2})  {:.0} deliveries/s  hub {:.2} µs/delivery  {}",
                                t.label,
                                pts[k].reps.len(),
                                rep.connections.peak_held,
                                rep.delivery.tally.lost,
                                rep.latency_ms.p99,
                                rep.latency_from_send_ms.p99,
                                rep.delivery.deliveries_per_s,
                                rep.per_delivery.as_ref().map_or(0.0, |p| p.hub_us_per_delivery),
                                if rep.verdict.pass { "pass" } else { "FAIL" }
                            ),
                            Err(e) => eprintln!("  {} rep {}: no report: {e}", t.label, pts[k].reps.len()),
                        }
                        pts[k].reps.push(r);
                    }
                }
                for (k, p) in pts.into_iter().enumerate() {
                    let pass = p.pass(a.slo_ms);
                    eprintln!(
                        "  {}: {}",
                        p.label,
                        if pass {
                            "point passes".to_string()
                        } else {
                            format!("point fails: {}", p.why_failed(a.slo_ms))
                        }
                    );
                    searches[members[k]].record(rate, pass);
                    points.push(p);
                }
            }
        }
    }
    let ctx = summary::Context {
        date,
        provenance,
        targets: targets.iter().map(|t| (t.label.clone(), t.describe(), t.hub_config.clone())).collect(),
        nodes: a.nodes,
        args: a.clone(),
        elapsed_s: started.elapsed().as_secs_f64(),
        interrupted: *stop.borrow(),
        out_of_time,
        load_before,
        load_after: loadavg(),
    };
    summary::write(&out, &ctx, &points)?;
    plot::write_all(&out, &points, a.slo_ms)?;
    println!("{}", std::fs::read_to_string(out.join("summary.md")).unwrap_or_default());
    println!("results: {}", out.display());
    Ok(())
}
