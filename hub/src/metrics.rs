//! Counters, gauges and one histogram, exposed at `GET /metrics` (public and admin listeners)
//! in the Prometheus text format.
//!
//! Plain relaxed atomics: each is independent, and a scrape needs no consistent snapshot
//! across them. Nothing here is per event beyond one `fetch_add` per publish; gauges that
//! have an owner (templates, queue depth, history size) are read from it at scrape time
//! instead of being kept up to date on the hot path.
//!
//! ## Names
//! Ours, and beside them the Go hub's (`mercure_subscribers_connected`,
//! `mercure_subscribers_total`, `mercure_updates_total`, `mercure_updates_failed_total`), read
//! from the same atomics, so dashboards written for the Go hub keep working. The README lists
//! both sets. Neither set carries labels (the Go hub's have none either).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Default)]
pub struct Metrics {
    pub published: AtomicU64,
    pub deliveries: AtomicU64,
    pub evictions: AtomicU64,
    pub subscribers: AtomicU64,
    /// Subscriptions ever registered (the Go hub's `mercure_subscribers_total`).
    pub subscribers_total: AtomicU64,
    /// Publishes that failed after validation: the store or the shared log did not take them
    /// (answered 5xx). The Go hub's `mercure_updates_failed_total`.
    pub updates_failed: AtomicU64,
    pub connections: AtomicU64,
    pub refused_connections: AtomicU64,
    pub rejected_requests: AtomicU64,
    /// Requests whose handler panicked (answered 500; the panic is logged once).
    pub panics: AtomicU64,
    /// Distinct URI templates subscribed to now; read from the registry at each scrape.
    pub templates: AtomicU64,
    /// Direct writes of the publish path (see `queue`), shared with the tasks a large fan-out
    /// is split into.
    pub direct: std::sync::Arc<DirectWrites>,
}

/// Counted once per flushed batch, not per write.
#[derive(Default)]
pub struct DirectWrites {
    /// Frames written whole to a subscriber's socket by the publish path.
    pub whole: AtomicU64,
    /// Frames the socket took only in part (the connection's writer sent the rest).
    pub partial: AtomicU64,
    /// Tasks of a split fan-out still writing: while any is, publishes wake the writers
    /// instead (see `Hub::dispatch`).
    pub in_flight: std::sync::atomic::AtomicUsize,
}

/// Gauges read from their owners at scrape time (see [`Metrics::render`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct Sampled {
    /// Events waiting in every subscriber queue, and their bytes.
    pub queued_events: u64,
    pub queued_bytes: u64,
    /// Updates retained in the history window, and the bytes counted against `max_bytes`.
    pub history_updates: u64,
    pub history_bytes: u64,
}

impl Metrics {
    pub fn render(&self, sampled: &Sampled) -> String {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let rows: [(&str, &str, &str, u64); 21] = [
            ("mercure_updates_published_total", "counter", "Updates published.", load(&self.published)),
            ("mercure_deliveries_total", "counter", "Updates queued for a subscriber.", load(&self.deliveries)),
            ("mercure_evictions_total", "counter", "Subscribers evicted as slow consumers.", load(&self.evictions)),
            ("mercure_subscribers", "gauge", "Subscribers connected now.", load(&self.subscribers)),
            ("mercure_connections", "gauge", "HTTP connections open now.", load(&self.connections)),
            ("mercure_panics_total", "counter", "Requests whose handler panicked (answered 500).", load(&self.panics)),
            ("mercure_templates", "gauge", "Distinct URI templates subscribed to now.", load(&self.templates)),
            (
                "mercure_refused_connections_total",
                "counter",
                "Connections refused at the connection ceiling.",
                load(&self.refused_connections),
            ),
            (
                "mercure_rejected_requests_total",
                "counter",
                "Requests answered with a 4xx status.",
                load(&self.rejected_requests),
            ),
            (
                "mercure_direct_writes_total",
                "counter",
                "Frames the publish path wrote whole to idle subscribers' sockets (direct_writes).",
                load(&self.direct.whole),
            ),
            (
                "mercure_direct_writes_partial_total",
                "counter",
                "Direct writes the socket took only in part (the connection's writer sent the rest).",
                load(&self.direct.partial),
            ),
            ("mercure_queued_events", "gauge", "Events waiting in subscriber queues now.", sampled.queued_events),
            ("mercure_queued_bytes", "gauge", "Bytes waiting in subscriber queues now.", sampled.queued_bytes),
            ("mercure_history_updates", "gauge", "Updates retained in the history now.", sampled.history_updates),
            (
                "mercure_history_bytes",
                "gauge",
                "Bytes retained in the history now (as counted against max_bytes).",
                sampled.history_bytes,
            ),
            (
                "mercure_subscriptions_total",
                "counter",
                "Subscriptions registered since start.",
                load(&self.subscribers_total),
            ),
            (
                "mercure_publish_failures_total",
                "counter",
                "Publishes the store or shared log did not take (answered 5xx).",
                load(&self.updates_failed),
            ),
            // The Go hub's names.
            (
                "mercure_subscribers_connected",
                "gauge",
                "Current number of connected subscribers (Go hub name).",
                load(&self.subscribers),
            ),
            (
                "mercure_subscribers_total",
                "counter",
                "Total number of subscribers handled since the hub started (Go hub name).",
                load(&self.subscribers_total),
            ),
            (
                "mercure_updates_total",
                "counter",
                "Total number of updates dispatched since the hub started (Go hub name).",
                load(&self.published),
            ),
            (
                "mercure_updates_failed_total",
                "counter",
                "Updates that failed dispatch (Go hub name).",
                load(&self.updates_failed),
            ),
        ];
        let mut out = String::with_capacity(4096);
        for (name, kind, help, value) in rows {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        }
        out
    }
}

/// Upper bounds of [`Histogram`]'s buckets, in seconds: 0.5 ms to 2.5 s, what an fsync takes
/// from a fast NVMe disk to a struggling network volume.
pub const BUCKETS_SECONDS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// A fixed-bucket latency histogram of atomics: one bucket increment, the count and the sum per
/// observation, no lock and no allocation. Buckets are stored non-cumulative and summed at
/// render time, as Prometheus wants them (`le` cumulative, then `+Inf`).
#[derive(Default)]
pub struct Histogram {
    /// Observations per bucket of [`BUCKETS_SECONDS`], the last one for "above every bound".
    buckets: [AtomicU64; BUCKETS_SECONDS.len() + 1],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = BUCKETS_SECONDS.iter().position(|b| secs <= *b).unwrap_or(BUCKETS_SECONDS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, bound) in BUCKETS_SECONDS.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.buckets[BUCKETS_SECONDS.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {}", self.count.load(Ordering::Relaxed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(300));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(10));
        let mut out = String::new();
        h.render(&mut out, "x", "help");
        assert!(out.contains("x_bucket{le=\"0.0005\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.0025\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.005\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"2.5\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("x_count 3\n"), "{out}");
        assert!(out.contains("x_sum 10.0033"), "{out}");
    }
}
