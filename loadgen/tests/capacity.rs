//! The capacity sweep end to end, at a tiny scale: side by side against two stand-in hubs
//! (one delivering 150 ms late), with repetitions alternating between them and a rate
//! search that must find each one's knee; and against two real hubs started from a binary,
//! where every run must carry hub and load-generator CPU per delivery, the RSS fit must
//! come out of two subscriber counts, and the summary must say what it ran on.

mod common;

use common::standin::{self, Faults};
use common::{hub, scratch};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn capacity(out: &Path, args: &[&str]) -> (Value, String) {
    let run = Command::new(env!("CARGO_BIN_EXE_mercure-loadgen"))
        .arg("capacity")
        .arg("--out")
        .arg(out)
        .args(args)
        .env_remove("MERCURE_PUBLISHER_JWT_KEY")
        .output()
        .expect("run mercure-loadgen capacity");
    let summary = std::fs::read_to_string(out.join("summary.json")).unwrap_or_else(|e| {
        panic!("no summary ({e}); status {:?}\nstderr:\n{}", run.status, String::from_utf8_lossy(&run.stderr))
    });
    eprintln!("{}", String::from_utf8_lossy(&run.stderr));
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap_or_default();
    (serde_json::from_str(&summary).expect("summary is JSON"), md)
}

fn report(out: &Path, file: &str) -> Value {
    let text = std::fs::read_to_string(out.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    serde_json::from_str(&text).expect("report is JSON")
}

fn point<'a>(s: &'a Value, label: &str, subscribers: u64, rate: f64) -> &'a Value {
    s["points"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|p| p["label"] == label && p["subscribers"] == subscribers && p["rate"].as_f64() == Some(rate))
        })
        .unwrap_or_else(|| panic!("no point {label} {subscribers} × {rate}: {}", s["points"]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn side_by_side_alternates_runs_and_finds_each_hubs_knee() {
    let fast = standin::start(Faults::default()).await;
    let slow = standin::start(Faults { delay_delivery_ms: 150, ..Faults::default() }).await;
    let (a, b) = (fast.url(), slow.url());
    let out = scratch("capacity-sbs").join("out");
    let o = out.clone();
    let (s, md) = tokio::task::spawn_blocking(move || {
        capacity(
            &o,
            &[
                "--hub-url",
                &a,
                "--label",
                "fast",
                "--compare-hub-url",
                &b,
                "--compare-label",
                "slow",
                "--subscribers",
                "20",
                "--rate-start",
                "5",
                "--rate-max",
                "10",
                "--repeat",
                "2",
                "--duration",
                "1",
                "--min-publishes",
                "0",
                "--run-args",
                "--settle 0.5",
            ],
        )
    })
    .await
    .expect("capacity task");
    // The search: fast passes 5 and 10 (the max); slow fails its first rate.
    let knees = s["knees"].as_array().cloned().unwrap_or_default();
    let knee = |l: &str| knees.iter().find(|k| k["label"] == l).cloned().unwrap_or_default();
    assert_eq!(knee("fast")["highest_passing_rate"], 10.0, "{knees:?}");
    assert!(knee("fast")["lowest_failing_rate"].is_null());
    assert!(knee("slow")["highest_passing_rate"].is_null());
    assert_eq!(knee("slow")["lowest_failing_rate"], 5.0);
    assert!(s["points"].as_array().is_some_and(|p| p.len() == 3), "fast 5, fast 10, slow 5: {}", s["points"]);
    // Two runs per point; at the shared point they alternate fast, slow, slow, fast.
    let files = |l: &str| -> Vec<String> {
        point(&s, l, 20, 5.0)["files"]
            .as_array()
            .map(|a| a.iter().filter_map(|f| f.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    let (ff, sf) = (files("fast"), files("slow"));
    assert_eq!(ff, ["points/fast/subs-20-rate-5-rep-0.json", "points/fast/subs-20-rate-5-rep-1.json"]);
    assert_eq!(sf.len(), 2);
    let start = |f: &str| report(&out, f)["started_at_unix_ms"].as_u64().unwrap_or(0);
    let order = [start(&ff[0]), start(&sf[0]), start(&sf[1]), start(&ff[1])];
    assert!(order.windows(2).all(|w| w[0] < w[1]), "A B B A: {order:?}");
    // The comparison: one row, slow's p99 at least 150 ms against fast's few.
    let cmp = s["comparison"].as_array().cloned().unwrap_or_default();
    assert_eq!(cmp.len(), 1, "{cmp:?}");
    let p99 = |i: usize| cmp[0]["p99_ms"][i].as_f64().unwrap_or(0.0);
    assert!(p99(1) >= 150.0 && p99(0) < 50.0, "{cmp:?}");
    assert_eq!(cmp[0]["pass"], serde_json::json!([true, false]));
    assert!(md.contains("## fast versus slow") && md.contains("| 20 | 5 |"), "{md}");
    assert!(point(&s, "slow", 20, 5.0)["why_failed"].as_str().is_some_and(|w| w.contains("median p99")));
    for f in ["p99-vs-rate.svg", "knee-vs-subscribers.svg", "rss-vs-subscribers.svg"] {
        assert!(out.join(f).is_file(), "{f}");
    }
}

#[test]
fn two_builds_side_by_side_carry_cpu_per_delivery_rss_slope_and_provenance() {
    // The same binary twice stands for two builds: what is checked is the plumbing (hubs
    // started per run, both measured, every column filled), not which one is faster.
    let bin = hub::binary();
    let bin = bin.display().to_string();
    let out = scratch("capacity-builds").join("out");
    let (s, md) = capacity(
        &out,
        &[
            "--hub-bin",
            &bin,
            "--compare-hub-bin",
            &bin,
            "--label",
            "ours",
            "--compare-label",
            "other",
            "--port",
            "0",
            "--subscribers",
            "20,60",
            "--rates",
            "10",
            "--repeat",
            "1",
            "--duration",
            "1",
            "--min-publishes",
            "0",
            "--topics",
            "4",
            "--run-args",
            "--settle 0.5",
        ],
    );
    for l in ["ours", "other"] {
        for n in [20, 60] {
            let p = point(&s, l, n, 10.0);
            assert_eq!(p["lost"], 0, "{p}");
            assert!(p["hub_us_per_delivery"].as_f64().is_some_and(|v| v > 0.0), "{p}");
            assert!(p["loadgen_us_per_delivery"].as_f64().is_some_and(|v| v > 0.0), "{p}");
            assert!(p["hub_rss_connected_mib"].as_f64().is_some_and(|v| v > 1.0), "{p}");
            let r = report(&out, p["files"][0].as_str().unwrap_or(""));
            assert_eq!(r["config"]["topics"], 4);
            assert_eq!(r["per_delivery"]["held_connected"], n);
            assert!(r["per_delivery"]["events"].as_u64().is_some_and(|e| e >= n * 10 / 4), "{}", r["per_delivery"]);
        }
        let fit = s["rss_fit"].as_array().and_then(|a| a.iter().find(|f| f["label"] == l)).cloned().unwrap_or_default();
        assert_eq!(fit["runs"], 2, "{fit}");
        assert!(fit["bytes_per_subscriber"].is_number(), "{fit}");
    }
    let prov = &s["provenance"];
    assert!(prov["commit"].as_str().is_some_and(|c| c.len() >= 40), "{prov}");
    assert!(prov["rustc"].as_str().is_some_and(|c| c.starts_with("rustc ")), "{prov}");
    assert!(prov["cores"].as_u64().is_some_and(|c| c > 0));
    assert!(md.contains("Machine and build: commit `") && md.contains("kernel"), "{md}");
    assert!(md.contains("## ours versus other") && md.contains("KiB per subscriber"), "{md}");
    assert_eq!(s["comparison"].as_array().map(Vec::len), Some(2));
}
