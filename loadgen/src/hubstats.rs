//! Hub resource sampling: RSS, CPU seconds and open file descriptors over the run.
//!
//! Two sources: `/proc/<pid>` when the hub runs on this machine (`--hub-pid`), or the
//! hub's Prometheus `/metrics` (`--hub-metrics-url`, the standard process collector's
//! `process_resident_memory_bytes`, `process_cpu_seconds_total`, `process_open_fds`).
//! `/proc` CPU times are in clock ticks of `USER_HZ`, which is 100 on every Linux ABI
//! we run on. A failed sample is skipped, not fatal: the hub may be gone.
//!
//! Several hub processes (a multi-node hub, `--hub-pid` or `--hub-metrics-url` given more
//! than once): every tick samples each of them; the report's series is their **sum**,
//! taken only at ticks where every process answered (a sum that silently left one out
//! would look like a drop in RSS), and each process also gets its own summary in
//! `processes[]`, in the order given.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One sample.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Sample {
    /// Seconds since the run started.
    pub t_s: f64,
    /// Resident set size, bytes.
    pub rss_bytes: u64,
    /// User + system CPU time consumed so far, seconds.
    pub cpu_s: f64,
    /// Open file descriptors (0 if unknown).
    pub fds: u64,
}

/// Where samples come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// `/proc/<pid>`.
    Pid(u32),
    /// A Prometheus text endpoint (http only).
    Metrics(String),
}

const USER_HZ: f64 = 100.0;

/// Samples a local process through `/proc`.
pub fn sample_pid(pid: u32) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesized command name; utime and stime are fields 14, 15.
    let after = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count() as u64).unwrap_or(0);
    Some(Sample { t_s: 0.0, rss_bytes: rss_kb * 1024, cpu_s: (utime + stime) / USER_HZ, fds })
}

/// Parses the process collector's metrics out of Prometheus text.
pub fn parse_metrics(text: &str) -> Option<Sample> {
    let mut s = Sample::default();
    let mut seen = false;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let mut it = line.split_whitespace();
        let (Some(name), Some(value)) = (it.next(), it.next()) else {
            continue;
        };
        let Ok(v) = value.parse::<f64>() else {
            continue;
        };
        match name {
            "process_resident_memory_bytes" => {
                s.rss_bytes = v as u64;
                seen = true;
            }
            "process_cpu_seconds_total" => s.cpu_s = v,
            "process_open_fds" => s.fds = v as u64,
            _ => {}
        }
    }
    seen.then_some(s)
}

/// Fetches `/metrics` over plain HTTP/1.1 and parses it.
pub async fn sample_metrics(url: &str) -> Option<Sample> {
    let text = crate::http::get_text(url, Duration::from_secs(2)).await.ok()?;
    parse_metrics(&text)
}

/// Takes one sample from `src`.
pub async fn sample(src: &Source) -> Option<Sample> {
    match src {
        Source::Pid(pid) => sample_pid(*pid),
        Source::Metrics(url) => sample_metrics(url).await,
    }
}

/// Summary of a series, as the report shows it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HubStats {
    /// `proc` or `metrics`.
    pub source: String,
    /// Process id, when sampled through `/proc`.
    pub pid: Option<u32>,
    /// RSS at the first sample (before subscribers connect), bytes.
    pub rss_start_bytes: u64,
    /// Highest RSS, bytes.
    pub rss_max_bytes: u64,
    /// `(rss_max - rss_start) / peak connections held`, bytes; 0 if none were held.
    pub rss_per_subscriber_bytes: f64,
    /// CPU seconds used between the first and the last sample.
    pub cpu_seconds: f64,
    /// CPU seconds used while publishing.
    pub cpu_seconds_publishing: f64,
    /// Highest open fd count.
    pub fds_max: u64,
    /// Every sample.
    pub samples: Vec<Sample>,
    /// With several hub processes: each one's own summary, in the order given (`samples`
    /// above are then their sums, and `pid` is absent). Empty for one process.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processes: Vec<HubStats>,
}

/// Samples every source once: their sum (`None` unless every source answered) and each
/// one's own sample.
pub async fn sample_each(srcs: &[Source]) -> (Option<Sample>, Vec<Option<Sample>>) {
    let mut each = Vec::with_capacity(srcs.len());
    for src in srcs {
        each.push(sample(src).await);
    }
    (sum(each.iter().copied()), each)
}

/// The sum of several processes' samples (`t_s` 0); `None` if any is missing or there
/// are none.
pub fn sum(samples: impl IntoIterator<Item = Option<Sample>>) -> Option<Sample> {
    let mut any = false;
    let total = samples.into_iter().try_fold(Sample::default(), |acc, s| {
        any = true;
        s.map(|s| Sample {
            t_s: 0.0,
            rss_bytes: acc.rss_bytes + s.rss_bytes,
            cpu_s: acc.cpu_s + s.cpu_s,
            fds: acc.fds + s.fds,
        })
    });
    total.filter(|_| any)
}

impl HubStats {
    /// Summarizes several processes: `sum` is the summed series, `each[i]` source `i`'s
    /// own, `peaks[i]` the connections it held at most (0 when unknown, which makes its
    /// `rss_per_subscriber_bytes` 0). One source gives exactly [`HubStats::from_samples`].
    pub fn from_processes(
        sources: &[Source],
        sum: Vec<Sample>,
        each: Vec<Vec<Sample>>,
        peak_held: u64,
        peaks: &[u64],
        publish_window: (f64, f64),
    ) -> Option<Self> {
        let first = sources.first()?;
        if sources.len() == 1 {
            return Some(Self::from_samples(first, sum, peak_held, publish_window));
        }
        let mut total = Self::from_samples(first, sum, peak_held, publish_window);
        total.pid = None;
        total.processes = sources
            .iter()
            .zip(each)
            .enumerate()
            .map(|(i, (src, v))| Self::from_samples(src, v, peaks.get(i).copied().unwrap_or(0), publish_window))
            .collect();
        Some(total)
    }

    /// Summarizes samples; `publish_window` is `[from, to]` in run seconds.
    pub fn from_samples(source: &Source, samples: Vec<Sample>, peak_held: u64, publish_window: (f64, f64)) -> Self {
        let first = samples.first().copied().unwrap_or_default();
        let last = samples.last().copied().unwrap_or_default();
        let rss_max = samples.iter().map(|s| s.rss_bytes).max().unwrap_or(0);
        let cpu_at = |t: f64| {
            samples.iter().min_by(|a, b| (a.t_s - t).abs().total_cmp(&(b.t_s - t).abs())).map_or(0.0, |s| s.cpu_s)
        };
        Self {
            source: match source {
                Source::Pid(_) => "proc".into(),
                Source::Metrics(_) => "metrics".into(),
            },
            pid: match source {
                Source::Pid(p) => Some(*p),
                Source::Metrics(_) => None,
            },
            rss_start_bytes: first.rss_bytes,
            rss_max_bytes: rss_max,
            rss_per_subscriber_bytes: if peak_held > 0 {
                rss_max.saturating_sub(first.rss_bytes) as f64 / peak_held as f64
            } else {
                0.0
            },
            cpu_seconds: last.cpu_s - first.cpu_s,
            cpu_seconds_publishing: (cpu_at(publish_window.1) - cpu_at(publish_window.0)).max(0.0),
            fds_max: samples.iter().map(|s| s.fds).max().unwrap_or(0),
            samples,
            processes: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_process_collector() {
        let t = "# HELP x\nprocess_resident_memory_bytes 1.2e+07\nprocess_cpu_seconds_total 3.5\nprocess_open_fds 42\nother 1\n";
        let s = parse_metrics(t);
        assert_eq!(s, Some(Sample { t_s: 0.0, rss_bytes: 12_000_000, cpu_s: 3.5, fds: 42 }));
        assert_eq!(parse_metrics("nothing 1"), None);
    }

    #[tokio::test]
    async fn several_processes_are_summed_only_when_all_answer() {
        let me = std::process::id();
        let (sum, each) = sample_each(&[Source::Pid(me), Source::Pid(me)]).await;
        let (Some(sum), [Some(a), Some(_)]) = (sum, each.as_slice()) else { panic!("no sample of ourselves") };
        assert!(sum.rss_bytes >= a.rss_bytes && sum.fds + 4 >= 2 * a.fds, "{sum:?} vs {a:?}");
        // A process that is gone makes the tick's sum absent, not smaller.
        let (sum, each) = sample_each(&[Source::Pid(me), Source::Pid(u32::MAX)]).await;
        assert!(sum.is_none() && each[0].is_some() && each[1].is_none());
        assert_eq!(super::sum([]), None, "no process, no sum");
        let s = |t: f64, rss: u64| Sample { t_s: t, rss_bytes: rss, cpu_s: t, fds: 1 };
        let h = HubStats::from_processes(
            &[Source::Pid(1), Source::Pid(2)],
            vec![s(0.0, 20), s(1.0, 40)],
            vec![vec![s(0.0, 10), s(1.0, 30)], vec![s(0.0, 10), s(1.0, 10)]],
            10,
            &[5, 5],
            (0.0, 1.0),
        );
        let h = h.unwrap_or_default();
        assert_eq!((h.pid, h.rss_max_bytes, h.processes.len()), (None, 40, 2));
        assert_eq!(h.processes[0].pid, Some(1));
        assert_eq!(h.processes[0].rss_per_subscriber_bytes, 4.0);
        assert_eq!(h.processes[1].rss_max_bytes, 10);
    }

    #[test]
    fn samples_self() {
        let s = sample_pid(std::process::id());
        assert!(s.is_some_and(|s| s.rss_bytes > 0 && s.fds > 0));
    }
}
