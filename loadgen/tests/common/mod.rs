//! Shared test helpers: the stand-in hub, the real hub launcher, and a runner for the
//! loadgen binary that returns its parsed JSON report.

#![allow(dead_code)]

pub mod hub;
pub mod standin;

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

/// A fresh scratch directory under the target dir.
pub fn scratch(name: &str) -> PathBuf {
    let base = std::env::var_os("CARGO_TARGET_TMPDIR").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!("loadgen-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Runs `mercure-loadgen run` with `args` against `hub_url` and returns the report.
/// Environment variables of the Gatling test are cleared so the caller's shell cannot
/// change the test.
pub fn run_loadgen(name: &str, hub_url: &str, args: &[&str]) -> Value {
    let (mut cmd, report) = loadgen_command(name, hub_url, args);
    let out = cmd.output().expect("run mercure-loadgen");
    read_report(&report, &out)
}

/// Reads a run's report, or panics with the run's output.
pub fn read_report(report: &std::path::Path, out: &std::process::Output) -> Value {
    let text = std::fs::read_to_string(report).unwrap_or_else(|e| {
        panic!(
            "no report ({e}); status {:?}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    serde_json::from_str(&text).expect("report is JSON")
}

/// The `mercure-loadgen run` command of [`run_loadgen`], and where its report goes.
pub fn loadgen_command(name: &str, hub_url: &str, args: &[&str]) -> (Command, PathBuf) {
    let dir = scratch(name);
    let report = dir.join("report.json");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mercure-loadgen"));
    for v in [
        "HUB_URL",
        "JWT",
        "SUBSCRIBER_JWT",
        "INITIAL_SUBSCRIBERS",
        "SUBSCRIBERS_RATE_FROM",
        "SUBSCRIBERS_RATE_TO",
        "PUBLISHERS_RATE_FROM",
        "PUBLISHERS_RATE_TO",
        "INJECTION_DURATION",
        "CONNECTION_DURATION",
        "RANDOM_CONNECTION_DURATION",
        "PRIVATE_UPDATES",
        "MERCURE_PUBLISHER_JWT_KEY",
        "MERCURE_SUBSCRIBER_JWT_KEY",
    ] {
        cmd.env_remove(v);
    }
    cmd.arg("run").arg("--hub-url").arg(hub_url).arg("--report").arg(&report).arg("--no-progress").args(args);
    (cmd, report)
}

/// The verdict's failed checks as `(check, count)`, in report order.
pub fn failed(r: &Value) -> Vec<(String, u64)> {
    r["verdict"]["failures"]
        .as_array()
        .map(|a| a.iter().map(|f| (f["check"].as_str().unwrap_or("").to_string(), u(f, &["count"]))).collect())
        .unwrap_or_default()
}

/// The example of failed check `check` ("" when it did not fail).
pub fn example(r: &Value, check: &str) -> String {
    r["verdict"]["failures"]
        .as_array()
        .and_then(|a| a.iter().find(|f| f["check"] == check))
        .and_then(|f| f["example"].as_str())
        .unwrap_or("")
        .to_string()
}

/// `report[a][b]...` as u64 (panics with the path if absent).
pub fn u(v: &Value, path: &[&str]) -> u64 {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_u64().unwrap_or_else(|| panic!("{} is not a u64: {cur}", path.join(".")))
}

/// `report[a][b]...` as f64.
pub fn f(v: &Value, path: &[&str]) -> f64 {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_f64().unwrap_or_else(|| panic!("{} is not a number: {cur}", path.join(".")))
}
