//! Several hub nodes in one run (issue 10). Against ONE real hub given twice
//! (`--hub-url A --hub-url A`: two "nodes" that are the same hub) the multi-URL plumbing
//! must spread subscribers and publishes over both, lose nothing, and report per-node
//! counts that add up to the totals; the soak's gauge check must treat the two as one
//! hub. `capacity --nodes 2` must fail clearly without `redis-server`, and must show
//! cross-node delivery with two real nodes sharing a Redis stream.

mod common;

use common::{f, hub, run_loadgen, scratch, u};
use serde_json::Value;
use std::process::Command;

/// Sum of `nodes[*][path]`.
fn node_sum(r: &Value, path: &[&str]) -> u64 {
    r["nodes"].as_array().map_or(0, |a| a.iter().map(|n| u(n, path)).sum())
}

#[test]
fn one_hub_given_twice_is_two_nodes_that_lose_nothing_and_add_up() {
    let dir = scratch("nodes-twice");
    let h = hub::start("", &dir);
    let pid = h.pid.to_string();
    let ts = scratch("nodes-twice-ts").join("timeseries.jsonl");
    let ts = ts.display().to_string();
    let r = run_loadgen(
        "nodes-twice",
        &h.url,
        &[
            "--hub-url",
            &h.url,
            "--initial-subscribers",
            "200",
            "--publishers-rate-from",
            "20",
            "--publishers-rate-to",
            "20",
            "--duration",
            "3",
            "--settle",
            "1",
            "--topics",
            "3",
            "--zipf-s",
            "0",
            "--hub-pid",
            &format!("{pid},{pid}"),
            // Soak mode too: both nodes share one /metrics, so they are one hub whose
            // gauge must match both nodes' subscribers together.
            "--timeseries",
            &ts,
            "--sample-every",
            "1",
            "--rss-drift-max",
            "1.0",
        ],
    );
    assert_eq!(r["config"]["hub_urls"].as_array().map(Vec::len), Some(2));
    assert_eq!(r["config"]["hub_url"], h.url.as_str());
    assert_eq!(r["config"]["publish_spread"], "round-robin");
    let nodes = r["nodes"].as_array().cloned().unwrap_or_default();
    assert_eq!(nodes.len(), 2, "{}", r["nodes"]);
    // Round-robin: subscriber i on node i mod 2, all held.
    for n in &nodes {
        assert_eq!(n["url"], h.url.as_str());
        assert_eq!(u(n, &["requested"]), 100);
        assert_eq!(u(n, &["initial_held"]), 100);
        assert_eq!(u(n, &["peak_held"]), 100);
        assert_eq!(u(n, &["errors"]), 0);
        assert!(u(n, &["publishes_accepted"]) > 0, "every node took publishes: {n}");
        assert!(u(n, &["delivery", "delivered"]) > 0);
        assert_eq!(u(n, &["delivery", "lost"]), 0, "{n}");
        assert_eq!(u(n, &["delivery", "delivered"]), u(n, &["delivery", "expected"]));
    }
    // The per-node counts add up to the totals.
    assert_eq!(u(&r, &["publish", "accepted"]), 60);
    assert_eq!(node_sum(&r, &["publishes_accepted"]), 60);
    assert_eq!(node_sum(&r, &["publishes_sent"]), 60);
    assert_eq!(node_sum(&r, &["peak_held"]), u(&r, &["connections", "peak_held"]));
    assert_eq!(node_sum(&r, &["initial_held"]), u(&r, &["connections", "initial_held"]));
    assert_eq!(node_sum(&r, &["requested"]), u(&r, &["connections", "requested"]));
    assert_eq!(node_sum(&r, &["attempts"]), u(&r, &["connections", "attempts"]));
    for k in ["expected", "delivered", "lost", "duplicates", "out_of_order", "sessions"] {
        assert_eq!(node_sum(&r, &["delivery", k]), u(&r, &["delivery", k]), "delivery.{k}");
    }
    assert_eq!(node_sum(&r, &["events_received"]), u(&r, &["delivery", "events_received"]));
    assert_eq!(u(&r, &["delivery", "lost"]), 0);
    assert_eq!(u(&r, &["delivery", "out_of_order"]), 0);
    assert_eq!(u(&r, &["delivery", "unexpected"]), 0);
    // 3 topics, exact selectors: each subscriber is owed its topic's share, whichever
    // node it is on and whichever node took the publish.
    assert!(u(&r, &["delivery", "expected"]) > 0);
    // Two pids (the same process twice): summed, and each listed.
    let procs = r["hub"]["processes"].as_array().cloned().unwrap_or_default();
    assert_eq!(procs.len(), 2);
    assert!(procs.iter().all(|p| p["pid"] == h.pid));
    assert!(r["hub"]["pid"].is_null());
    assert!(u(&r, &["hub", "rss_max_bytes"]) >= u(&procs[0], &["rss_max_bytes"]));
    assert!(f(&r, &["hub", "rss_per_subscriber_bytes"]) >= 0.0);
    // The soak's gauge check: one hub behind both URLs, one group, in band throughout.
    let s = &r["soak"];
    assert_eq!(s["verdict"]["gauges_tracked"], true, "{s}");
    assert_eq!(s["verdict"]["gauges_settled"], true, "{s}");
    assert_eq!(s["verdict"]["zero_loss"], true);
}

#[test]
fn capacity_with_several_nodes_and_no_redis_fails_clearly() {
    let dir = scratch("nodes-no-redis");
    let out = Command::new(env!("CARGO_BIN_EXE_mercure-loadgen"))
        .args(["capacity", "--nodes", "2", "--subscribers", "10", "--rates", "1", "--out"])
        .arg(dir.join("out"))
        .arg("--hub-bin")
        .arg(hub::binary())
        .env("PATH", "/nonexistent")
        .output()
        .expect("run mercure-loadgen capacity");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--nodes 2") && err.contains("redis-server"), "{err}");
    assert!(!dir.join("out").exists(), "it failed before writing anything");
}

#[test]
fn capacity_with_two_real_nodes_delivers_across_nodes() {
    // Two hubs sharing one Redis stream. Every publish goes to node 0 (one topic,
    // `--publish-spread topic`), so node 1's subscribers get only what crossed over
    // through Redis: they must get all of it, in order.
    let dir = scratch("nodes-redis");
    let out_dir = dir.join("out");
    let out = Command::new(env!("CARGO_BIN_EXE_mercure-loadgen"))
        .args(["capacity", "--nodes", "2", "--subscribers", "100", "--rates", "10", "--duration", "3", "--repeat", "1"])
        .args(["--max-minutes", "2", "--run-args", "--publish-spread topic --settle 1"])
        .arg("--out")
        .arg(&out_dir)
        .arg("--hub-bin")
        .arg(hub::binary())
        .output()
        .expect("run mercure-loadgen capacity");
    let point = out_dir.join("points/A/subs-100-rate-10-nodes-2-rep-0.json");
    let text = std::fs::read_to_string(&point).unwrap_or_else(|e| {
        panic!(
            "no point report {} ({e}); status {:?}\nstderr:\n{}",
            point.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let r: Value = serde_json::from_str(&text).expect("point report is JSON");
    let nodes = r["nodes"].as_array().cloned().unwrap_or_default();
    assert_eq!(nodes.len(), 2);
    assert_ne!(nodes[0]["url"], nodes[1]["url"], "two distinct hubs");
    assert_eq!(u(&r, &["publish", "accepted"]), 30);
    assert_eq!(u(&nodes[0], &["publishes_accepted"]), 30);
    assert_eq!(u(&nodes[1], &["publishes_sent"]), 0, "node 1 took no publish");
    for n in &nodes {
        assert_eq!(u(n, &["peak_held"]), 50);
        assert_eq!(u(n, &["delivery", "expected"]), 50 * 30, "{n}");
        assert_eq!(u(n, &["delivery", "lost"]), 0, "{n}");
        assert_eq!(u(n, &["delivery", "out_of_order"]), 0, "{n}");
        assert_eq!(u(n, &["delivery", "duplicates"]), 0, "{n}");
    }
    let procs = r["hub"]["processes"].as_array().cloned().unwrap_or_default();
    assert_eq!(procs.len(), 2);
    assert_ne!(procs[0]["pid"], procs[1]["pid"]);
    assert_eq!(r["verdict"]["zero_loss"], true);
    let summary = std::fs::read_to_string(out_dir.join("summary.md")).unwrap_or_default();
    assert!(summary.contains("2 hub nodes"), "{summary}");
}
