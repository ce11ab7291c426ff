//! The soak checks at a tiny scale: against the real hub (churn, Last-Event-ID resumes,
//! short-lived tokens, stuck consumers) everything must pass and each mechanism must
//! actually have happened; against the stand-in hub with a lying `mercure_subscribers`
//! the gauge check must fail, while the same stand-in telling the truth passes it.

mod common;

use common::standin::{self, Faults};
use common::{f, hub, run_loadgen, scratch, u};

#[test]
fn tiny_soak_against_the_real_hub_passes_and_exercises_every_mechanism() {
    let dir = scratch("soak-real-hub");
    // A stuck consumer's few KiB/s fit in the hub's socket buffer, so its queue never
    // stalls; the kernel's TCP_USER_TIMEOUT behind the zero window is what ends it, and a
    // short one makes that happen within the 8 s hold.
    let h = hub::start("dispatch_timeout 2s\ntcp_user_timeout 3s", &dir);
    let pid = h.pid.to_string();
    let ts_dir = scratch("soak-real-ts");
    let ts = ts_dir.join("timeseries.jsonl");
    let ts_s = ts.display().to_string();
    let r = run_loadgen(
        "soak-real",
        &h.url,
        &[
            "--initial-subscribers",
            "50",
            "--publishers-rate-from",
            "20",
            "--publishers-rate-to",
            "20",
            "--payload-size",
            "512",
            "--duration",
            "20",
            "--connection-duration",
            "10",
            "--min-connection-duration",
            "4",
            "--random-connection-duration",
            "true",
            "--lifetime-end",
            "resume",
            "--expiring-share",
            "0.3",
            "--expiring-min",
            "3",
            "--expiring-max",
            "6",
            "--stuck",
            "3",
            "--stuck-hold",
            "8",
            "--stuck-drain",
            "5",
            "--timeseries",
            &ts_s,
            "--sample-every",
            "1",
            "--warmup",
            "5",
            // A debug hub's RSS still moves in its first seconds; the RSS failure itself
            // is proven by the unit tests of `soak::judge`.
            "--rss-drift-max",
            "1.0",
            "--hub-pid",
            &pid,
        ],
    );
    let s = &r["soak"];
    assert_eq!(u(&r, &["delivery", "lost"]), 0, "{s}");
    assert!(u(&r, &["delivery", "expected"]) > 0);
    assert!(u(&r, &["connections", "reconnects"]) > 0, "churn happened");
    assert!(u(&r, &["delivery", "replayed"]) > 0, "Last-Event-ID replays happened");
    assert!(u(s, &["token_expiries"]) > 0, "tokens expired: {s}");
    assert!(u(s, &["stuck_evicted"]) > 0, "stuck consumers were evicted: {s}");
    assert_eq!(u(s, &["stuck_not_evicted"]), 0, "{s}");
    // Evictions the hub made itself (end of stream) are counted; resets are its kernel's.
    let closed_by_hub = u(s, &["stuck_evicted"]) - u(s, &["stuck_reset"]);
    assert!(f(s, &["hub_evictions"]) >= closed_by_hub as f64, "{s}");
    assert_eq!(s["verdict"]["gauges_tracked"], true, "{s}");
    assert_eq!(s["verdict"]["gauges_settled"], true, "{s}");
    assert_eq!(s["final_subscribers"], 0.0);
    assert_eq!(s["rss"]["checked"], true, "{s}");
    assert_eq!(s["verdict"]["pass"], true, "{s}");
    let lines = std::fs::read_to_string(&ts).expect("time series");
    assert!(lines.lines().count() >= 15, "{} samples", lines.lines().count());
    let first: serde_json::Value = serde_json::from_str(lines.lines().next().unwrap_or("{}")).expect("JSON line");
    assert!(first["metrics"]["mercure_subscribers"].is_number(), "{first}");
    assert!(first["rss_bytes"].as_u64().unwrap_or(0) > 0, "{first}");
    assert!(ts_dir.join("soak.svg").is_file());
    assert!(ts_dir.join("verdict.md").is_file());
}

async fn standin_soak(name: &'static str, offset: i64) -> serde_json::Value {
    let hub = standin::start(Faults { gauge_offset: offset, ..Faults::default() }).await;
    let url = hub.url();
    tokio::task::spawn_blocking(move || {
        let ts = scratch(&format!("{name}-ts")).join("ts.jsonl");
        let ts = ts.display().to_string();
        run_loadgen(
            name,
            &url,
            &[
                "--initial-subscribers",
                "40",
                "--publishers-rate-from",
                "20",
                "--publishers-rate-to",
                "20",
                "--duration",
                "4",
                "--settle",
                "1",
                "--publishers",
                "2",
                "--timeseries",
                &ts,
                "--sample-every",
                "1",
                "--gauge-settle-timeout",
                "5",
            ],
        )
    })
    .await
    .expect("loadgen task")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truthful_gauge_passes_the_gauge_checks() {
    let r = standin_soak("soak-gauge-true", 0).await;
    let s = &r["soak"];
    assert_eq!(u(&r, &["delivery", "lost"]), 0);
    assert!(u(s, &["samples"]) >= 4, "{s}");
    assert_eq!(u(s, &["subscriber_gauge_violations"]), 0, "{s}");
    assert_eq!(s["verdict"]["gauges_tracked"], true, "{s}");
    assert_eq!(s["verdict"]["gauges_settled"], true, "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_gauge_fails_the_soak() {
    // 25 more than it holds: beyond the in-flight allowance once the 40 are connected.
    let r = standin_soak("soak-gauge-lies", 25).await;
    let s = &r["soak"];
    assert_eq!(u(&r, &["delivery", "lost"]), 0, "only the gauge is wrong");
    assert!(u(s, &["subscriber_gauge_violations"]) >= 3, "{s}");
    assert_eq!(s["verdict"]["gauges_tracked"], false, "{s}");
    assert_eq!(s["verdict"]["gauges_settled"], false, "it reports 25 after all closed: {s}");
    assert_eq!(s["final_subscribers"], 25.0);
    assert_eq!(s["verdict"]["pass"], false, "{s}");
}
