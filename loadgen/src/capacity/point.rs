//! One swept point (a hub, a subscriber count, a publish rate), its repetitions, and how
//! they are summarized: medians and spreads, and the rule that decides whether the point
//! passes.
//!
//! # When a point passes
//! Exactness is not noisy: **every** repetition must have a report whose verdict failed on
//! nothing but the two timing checks (`p99_from_schedule`, `offered_rate`) — no loss,
//! duplicate, reordering, leak, failed publish, untallied or unconnected subscriber. Timing
//! is noisy on a shared machine: the **median** repetition's p99 from the schedule must be
//! under the SLO, and a majority must have met the offered rate. So one noisy repetition
//! does not fail a point (nor skip every rate above it), and one lost update always does.
//!
//! # Files
//! `points/<label>/subs-N-rate-R[-nodes-K]-rep-I.json`, one per repetition; sweeps written
//! before repetitions existed (`points/subs-N-rate-R[-nodes-K].json`) read back as one
//! repetition of label `A`.

use super::stats;
use crate::report::Report;

/// The timing checks a repetition may fail without failing the point by itself.
const TIMING_CHECKS: [&str; 2] = ["p99_from_schedule", "offered_rate"];

/// One repetition: its report, or why there is none.
#[derive(Debug, Clone)]
pub struct Rep {
    /// The report, or why there is none.
    pub report: Result<Report, String>,
    /// Report path, relative to the output directory.
    pub file: String,
}

impl Rep {
    /// The report, if the run produced one.
    pub fn ok(&self) -> Option<&Report> {
        self.report.as_ref().ok()
    }

    /// The run failed on nothing but timing (see the module docs).
    pub fn exact(&self) -> bool {
        self.ok().is_some_and(|r| r.verdict.failures.iter().all(|f| TIMING_CHECKS.contains(&f.check.as_str())))
    }
}

/// A point and its repetitions.
#[derive(Debug, Clone)]
pub struct Point {
    /// Which hub (the label of a sweep target).
    pub label: String,
    /// Subscribers asked for.
    pub subscribers: u64,
    /// Publish rate asked for.
    pub rate: f64,
    /// Hub nodes driven.
    pub nodes: u32,
    /// Its repetitions, in the order run.
    pub reps: Vec<Rep>,
}

impl Point {
    /// A point with no repetition yet.
    pub fn new(label: &str, subscribers: u64, rate: f64, nodes: u32) -> Self {
        Self { label: label.to_string(), subscribers, rate, nodes, reps: Vec::new() }
    }

    /// The reports of the repetitions that produced one.
    pub fn reports(&self) -> impl Iterator<Item = &Report> {
        self.reps.iter().filter_map(Rep::ok)
    }

    /// Median over the repetitions' reports.
    pub fn median(&self, f: impl Fn(&Report) -> f64) -> Option<f64> {
        stats::median(&self.reports().map(f).collect::<Vec<_>>())
    }

    /// Median of an optional value over the repetitions that have it.
    pub fn median_opt(&self, f: impl Fn(&Report) -> Option<f64>) -> Option<f64> {
        stats::median(&self.reports().filter_map(f).collect::<Vec<_>>())
    }

    /// `(min, max)` over the repetitions' reports.
    pub fn spread(&self, f: impl Fn(&Report) -> f64) -> Option<(f64, f64)> {
        stats::spread(&self.reports().map(f).collect::<Vec<_>>())
    }

    /// Sum over the repetitions' reports.
    pub fn sum(&self, f: impl Fn(&Report) -> u64) -> u64 {
        self.reports().map(f).sum()
    }

    /// Repetitions whose own verdict passed.
    pub fn reps_passed(&self) -> usize {
        self.reports().filter(|r| r.verdict.pass).count()
    }

    /// The point passes (see the module docs).
    pub fn pass(&self, slo_ms: f64) -> bool {
        let n = self.reps.len();
        n > 0
            && self.reps.iter().all(Rep::exact)
            && self.median(|r| r.latency_ms.p99).is_some_and(|p| p < slo_ms)
            && self.reports().all(|r| r.latency_ms.count > 0)
            && 2 * self.reports().filter(|r| r.verdict.rate_met).count() > n
    }

    /// Why the point failed, in a few words (empty if it passed).
    pub fn why_failed(&self, slo_ms: f64) -> String {
        if self.pass(slo_ms) {
            return String::new();
        }
        if self.reps.is_empty() {
            return "not run".into();
        }
        let mut why: Vec<String> = Vec::new();
        for (i, rep) in self.reps.iter().enumerate() {
            match &rep.report {
                Err(e) => why.push(format!("rep {i}: no report ({e})")),
                Ok(r) => {
                    for f in r.verdict.failures.iter().filter(|f| !TIMING_CHECKS.contains(&f.check.as_str())) {
                        why.push(format!("rep {i}: {} ×{}", f.check, f.count));
                    }
                }
            }
        }
        if let Some(p) = self.median(|r| r.latency_ms.p99)
            && p >= slo_ms
        {
            why.push(format!("median p99 {p:.1} ms ≥ {slo_ms} ms"));
        }
        let met = self.reports().filter(|r| r.verdict.rate_met).count();
        if 2 * met <= self.reps.len() {
            why.push(format!("offered rate met in {met} of {}", self.reps.len()));
        }
        why.join("; ")
    }
}

/// A repetition's file name, relative to the output directory.
pub fn rep_file(label: &str, n: u64, rate: f64, nodes: u32, rep: u32) -> String {
    let nodes = if nodes > 1 { format!("-nodes-{nodes}") } else { String::new() };
    format!("points/{label}/subs-{n}-rate-{rate}{nodes}-rep-{rep}.json")
}

/// The inverse of [`rep_file`] (and of the older `subs-N-rate-R[-nodes-K].json`): the file
/// name's `(subscribers, rate, nodes, rep)`.
pub fn parse_rep_name(name: &str) -> Option<(u64, f64, u32, u32)> {
    let rest = name.strip_prefix("subs-")?.strip_suffix(".json")?;
    let (rest, rep) = match rest.rsplit_once("-rep-") {
        Some((r, k)) => (r, k.parse::<u32>().ok()?),
        None => (rest, 0),
    };
    let (n, rest) = rest.split_once("-rate-")?;
    let (rate, nodes) = match rest.split_once("-nodes-") {
        Some((r, k)) => (r, k.parse::<u32>().ok()?),
        None => (rest, 1),
    };
    Some((n.parse().ok()?, rate.parse().ok()?, nodes, rep))
}

/// Reads `dir/points/` back into points (for `--replot`).
pub fn load_points(dir: &std::path::Path) -> Result<Vec<Point>, String> {
    let mut files: Vec<(String, String)> = Vec::new();
    let top = dir.join("points");
    let entries = std::fs::read_dir(&top).map_err(|e| format!("{}: {e}", top.display()))?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if e.path().is_dir() {
            for f in std::fs::read_dir(e.path()).map_err(|e| e.to_string())?.flatten() {
                files.push((name.clone(), f.file_name().to_string_lossy().into_owned()));
            }
        } else {
            files.push(("A".into(), name));
        }
    }
    files.sort();
    let mut points: Vec<Point> = Vec::new();
    for (label, name) in files {
        let Some((n, rate, nodes, _rep)) = parse_rep_name(&name) else { continue };
        let file = if label == "A" && top.join(&name).is_file() {
            format!("points/{name}")
        } else {
            format!("points/{label}/{name}")
        };
        let report = std::fs::read_to_string(dir.join(&file))
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<Report>(&t).map_err(|e| e.to_string()));
        let rep = Rep { report, file };
        match points.iter_mut().find(|p| p.label == label && p.subscribers == n && p.rate == rate && p.nodes == nodes) {
            Some(p) => p.reps.push(rep),
            None => {
                let mut p = Point::new(&label, n, rate, nodes);
                p.reps.push(rep);
                points.push(p);
            }
        }
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Failure, Verdict};

    fn rep(p99: f64, failures: &[&str], rate_met: bool) -> Rep {
        let mut r = Report::default();
        r.latency_ms.p99 = p99;
        r.latency_ms.count = 100;
        r.verdict = Verdict {
            rate_met,
            pass: failures.is_empty(),
            failures: failures
                .iter()
                .map(|c| Failure { check: (*c).into(), count: 1, example: String::new() })
                .collect(),
            ..Verdict::default()
        };
        Rep { report: Ok(r), file: String::new() }
    }

    fn point(reps: Vec<Rep>) -> Point {
        Point { reps, ..Point::new("A", 1000, 10.0, 1) }
    }

    #[test]
    fn one_noisy_repetition_does_not_fail_a_point_but_one_lost_update_does() {
        let slow = rep(150.0, &["p99_from_schedule"], true);
        let p = point(vec![rep(50.0, &[], true), slow.clone(), rep(60.0, &[], true)]);
        assert!(p.pass(100.0), "median 60 ms");
        assert_eq!(p.median(|r| r.latency_ms.p99), Some(60.0));
        assert_eq!(p.spread(|r| r.latency_ms.p99), Some((50.0, 150.0)));
        assert_eq!(p.reps_passed(), 2);
        let p = point(vec![rep(50.0, &[], true), slow.clone(), slow.clone()]);
        assert!(!p.pass(100.0));
        assert_eq!(p.why_failed(100.0), "median p99 150.0 ms ≥ 100 ms");
        let p = point(vec![rep(50.0, &[], true), rep(50.0, &["loss"], true), rep(50.0, &[], true)]);
        assert!(!p.pass(100.0));
        assert_eq!(p.why_failed(100.0), "rep 1: loss ×1");
        let p =
            point(vec![rep(50.0, &["offered_rate"], false), rep(50.0, &["offered_rate"], false), rep(50.0, &[], true)]);
        assert!(!p.pass(100.0));
        let p = point(vec![rep(50.0, &[], true), Rep { report: Err("crashed".into()), file: String::new() }]);
        assert!(!p.pass(100.0) && p.why_failed(100.0).contains("crashed"));
        assert!(!point(vec![]).pass(100.0));
    }

    #[test]
    fn file_names_round_trip_and_old_names_read_as_one_repetition() {
        assert_eq!(rep_file("ours", 1000, 2.5, 1, 2), "points/ours/subs-1000-rate-2.5-rep-2.json");
        assert_eq!(rep_file("B", 1000, 96.0, 3, 0), "points/B/subs-1000-rate-96-nodes-3-rep-0.json");
        assert_eq!(parse_rep_name("subs-1000-rate-2.5-rep-2.json"), Some((1000, 2.5, 1, 2)));
        assert_eq!(parse_rep_name("subs-1000-rate-96-nodes-3-rep-0.json"), Some((1000, 96.0, 3, 0)));
        assert_eq!(parse_rep_name("subs-1000-rate-5.json"), Some((1000, 5.0, 1, 0)));
        assert_eq!(parse_rep_name("subs-1000-rate-2.5-nodes-3.json"), Some((1000, 2.5, 3, 0)));
        assert_eq!(parse_rep_name("subs-x-rate-5.json"), None);
        assert_eq!(parse_rep_name("summary.json"), None);
    }
}
