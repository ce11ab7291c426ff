//! A hub under test in a sweep, and one measurement (repetition) against it.
//!
//! A target is either **managed** — a binary the sweep starts fresh for every repetition
//! (one hub, or with `--nodes N` a `redis-server` and N hubs sharing a stream), so each
//! repetition starts from a clean baseline and RSS per subscriber is measured from it — or
//! **external**: a hub already running at given URLs, with pids or metrics URLs for its
//! resources. A side-by-side sweep has two targets and runs them one after the other at
//! every point, never at the same time.

use super::nodes;
use super::point::{Rep, rep_file};
use super::{HubProcess, hub_config_lines};
use crate::report::Report;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How a target's hub is reached.
#[derive(Debug, Clone)]
pub enum Kind {
    /// A binary started fresh per repetition.
    Managed {
        /// The hub binary.
        bin: PathBuf,
        /// Extra directives after `anonymous`.
        directives: String,
        /// Extra environment.
        env: Vec<(String, String)>,
    },
    /// A running hub.
    External {
        /// Its URLs (nodes).
        urls: Vec<String>,
        /// Its pids, for `/proc` sampling.
        pids: Vec<u32>,
        /// Its metrics URLs, when no pid is given.
        metrics: Vec<String>,
    },
}

/// One hub under test.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its name in file names and tables.
    pub label: String,
    /// How it is reached.
    pub kind: Kind,
    /// The hub's startup lines describing its configuration (managed hubs, first start).
    pub hub_config: Vec<String>,
}

/// What every measurement of a sweep shares.
pub struct Shared<'a> {
    /// The load generator binary (this one).
    pub exe: &'a Path,
    /// The output directory.
    pub out: &'a Path,
    /// Hub nodes per point (managed targets).
    pub nodes: u32,
    /// `redis-server` for several nodes.
    pub redis_bin: Option<&'a Path>,
    /// Port for a single managed hub.
    pub port: u16,
    /// JWT key.
    pub jwt_key: &'a str,
    /// Publish seconds at a rate: at least the duration, and enough for the minimum
    /// number of publishes.
    pub duration: &'a dyn Fn(f64) -> f64,
    /// SLO, ms.
    pub slo_ms: f64,
    /// `mercure-loadgen run` flags every point gets (shape, run args).
    pub run_flags: &'a [String],
}

impl Target {
    /// Runs repetition `rep` of the point `(n, rate)`; `seq` counts measurements of the
    /// sweep (it moves the source addresses, so no run reuses ports in TIME_WAIT).
    pub async fn measure(&mut self, s: &Shared<'_>, n: u64, rate: f64, rep: u32, seq: usize) -> Rep {
        let file = rep_file(&self.label, n, rate, s.nodes, rep);
        let report_path = s.out.join(&file);
        let report = self.run_once(s, n, rate, seq, &report_path).await.and_then(|()| {
            std::fs::read_to_string(&report_path)
                .map_err(|e| format!("no report: {e}"))
                .and_then(|t| serde_json::from_str::<Report>(&t).map_err(|e| e.to_string()))
        });
        Rep { report, file }
    }

    async fn run_once(&mut self, s: &Shared<'_>, n: u64, rate: f64, seq: usize, report: &Path) -> Result<(), String> {
        let tmp = s.out.join("tmp");
        let tag = format!("{}-{n}-{rate}-{seq}", self.label);
        // The hubs of this repetition: none (external), one, or N sharing a fresh Redis.
        let (hubs, cluster, urls, pids, metrics) = match &self.kind {
            Kind::External { urls, pids, metrics } => (Vec::new(), None, urls.clone(), pids.clone(), metrics.clone()),
            Kind::Managed { bin, directives, env } => {
                if let (Some(redis_bin), true) = (s.redis_bin, s.nodes > 1) {
                    let stream = format!("loadgen-{}-{seq}", crate::clock::unix_now_ns() / 1_000_000);
                    let spec = nodes::ClusterSpec {
                        nodes: s.nodes,
                        hub_bin: bin,
                        redis_bin,
                        key: s.jwt_key,
                        directives,
                        env,
                        tmp: &tmp,
                        tag: &tag,
                        stream: &stream,
                    };
                    let c = nodes::Cluster::start(&spec).await?;
                    if self.hub_config.is_empty() {
                        self.hub_config = hub_config_lines(&nodes::Cluster::first_log(&spec));
                    }
                    let urls = c.hubs.iter().map(|h| h.url.clone()).collect();
                    let pids = c.hubs.iter().map(|h| h.pid).collect();
                    (Vec::new(), Some(c), urls, pids, Vec::new())
                } else {
                    let log = tmp.join(format!("{tag}.log"));
                    let port = if s.port == 0 { nodes::free_port()? } else { s.port };
                    let h = HubProcess::start(bin, port, s.jwt_key, directives, env, &log).await?;
                    if self.hub_config.is_empty() {
                        self.hub_config = hub_config_lines(&log);
                    }
                    let (url, pid) = (h.url.clone(), h.pid);
                    (vec![h], None, vec![url], vec![pid], Vec::new())
                }
            }
        };
        let mut cmd = tokio::process::Command::new(s.exe);
        cmd.arg("run");
        for url in &urls {
            cmd.arg("--hub-url").arg(url);
        }
        cmd.arg("--jwt-key")
            .arg(s.jwt_key)
            .arg("--initial-subscribers")
            .arg(n.to_string())
            .arg("--publishers-rate-from")
            .arg(rate.to_string())
            .arg("--publishers-rate-to")
            .arg(rate.to_string())
            .arg("--duration")
            .arg((s.duration)(rate).to_string())
            .arg("--slo-ms")
            .arg(s.slo_ms.to_string())
            .arg("--report")
            .arg(report)
            .arg("--no-progress")
            .arg("--source-base")
            .arg((2 + (seq * 4) % 248).to_string())
            .args(s.run_flags)
            .kill_on_drop(true);
        for pid in &pids {
            cmd.arg("--hub-pid").arg(pid.to_string());
        }
        if pids.is_empty() {
            for m in &metrics {
                cmd.arg("--hub-metrics-url").arg(m);
            }
        }
        // The run's own summary and any errors go to a log beside the hub's.
        let run_log = tmp.join(format!("loadgen-{tag}.log"));
        let _ = std::fs::create_dir_all(&tmp);
        if let Some(dir) = report.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Ok(f) = std::fs::File::create(&run_log)
            && let Ok(f2) = f.try_clone()
        {
            cmd.stdout(f).stderr(f2);
        }
        let status = cmd.status().await;
        for h in hubs {
            h.stop().await;
        }
        if let Some(c) = cluster {
            c.stop().await;
        }
        // Let TIME_WAIT sockets and the kernel settle between runs.
        tokio::time::sleep(Duration::from_secs(1)).await;
        status.map(|_| ()).map_err(|e| format!("cannot run loadgen: {e}"))
    }

    /// How the summary names the target's hub.
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::Managed { bin, directives, .. } => {
                let d = if directives.is_empty() { String::new() } else { format!(", directives `{directives}`") };
                format!("`{}`{d}", super::provenance::binary_facts(bin))
            }
            Kind::External { urls, .. } => format!("running hub at {}", urls.join(", ")),
        }
    }
}
