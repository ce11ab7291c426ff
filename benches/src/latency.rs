//! Per-publish latencies, recorded beside criterion's own output.
//!
//! Criterion reports per-sample means; the fan-out summary also wants the p99 of single
//! publishes. The fan-out benches time every publish individually anyway (the queues are
//! drained between publishes, outside the timing), so each one is recorded here and written to
//! `target/criterion/<group>/<id>/latencies.json`.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Default)]
pub struct LatencyLog {
    samples: Vec<Duration>,
}

/// Publishes recorded before this many are dropped (cold caches, first queue allocations).
const SKIP_FIRST: usize = 5;

impl LatencyLog {
    pub fn record(&mut self, d: Duration) {
        self.samples.push(d);
    }

    /// Writes count, median, p99, min and max (nanoseconds), plus `extra` fields, and returns
    /// the JSON text.
    pub fn write(&mut self, group: &str, id: &str, extra: serde_json::Value) -> String {
        let skip = if self.samples.len() > 2 * SKIP_FIRST { SKIP_FIRST } else { 0 };
        let mut ns: Vec<u128> = self.samples[skip..].iter().map(Duration::as_nanos).collect();
        ns.sort_unstable();
        let pct = |p: f64| ns.get(((ns.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0);
        let mut json = serde_json::json!({
            "count": ns.len(),
            "median_ns": pct(0.5) as u64,
            "p99_ns": pct(0.99) as u64,
            "min_ns": ns.first().copied().unwrap_or(0) as u64,
            "max_ns": ns.last().copied().unwrap_or(0) as u64,
        });
        if let (Some(obj), serde_json::Value::Object(more)) = (json.as_object_mut(), extra) {
            obj.extend(more);
        }
        let text = serde_json::to_string_pretty(&json).unwrap_or_default();
        let dir = criterion_dir().join(group).join(id);
        if std::fs::create_dir_all(&dir).is_ok() {
            let _ = std::fs::write(dir.join("latencies.json"), &text);
        }
        self.samples.clear();
        text
    }
}

/// Where criterion writes (`$CRITERION_HOME`, else `$CARGO_TARGET_DIR/criterion`, else the
/// workspace's `target/criterion`), so the raw latencies land beside its estimates.
pub fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return home.into();
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("target"));
    target.join("criterion")
}
