//! Counters, exposed at `GET /metrics` in the Prometheus text format.
//!
//! Plain relaxed atomics: each is independent, and a scrape needs no consistent snapshot
//! across them. Nothing here is per event beyond one `fetch_add` per publish.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct Metrics {
    pub published: AtomicU64,
    pub deliveries: AtomicU64,
    pub evictions: AtomicU64,
    pub subscribers: AtomicU64,
    pub connections: AtomicU64,
    pub refused_connections: AtomicU64,
    pub rejected_requests: AtomicU64,
    /// Requests whose handler panicked (answered 500; the panic is logged once).
    pub panics: AtomicU64,
    /// Distinct URI templates subscribed to now; read from the registry at each scrape.
    pub templates: AtomicU64,
}

impl Metrics {
    pub fn render(&self) -> String {
        let rows: [(&str, &str, &str, &AtomicU64); 9] = [
            ("mercure_updates_published_total", "counter", "Updates published.", &self.published),
            ("mercure_deliveries_total", "counter", "Updates queued for a subscriber.", &self.deliveries),
            ("mercure_evictions_total", "counter", "Subscribers evicted as slow consumers.", &self.evictions),
            ("mercure_subscribers", "gauge", "Subscribers connected now.", &self.subscribers),
            ("mercure_connections", "gauge", "HTTP connections open now.", &self.connections),
            ("mercure_panics_total", "counter", "Requests whose handler panicked (answered 500).", &self.panics),
            ("mercure_templates", "gauge", "Distinct URI templates subscribed to now.", &self.templates),
            (
                "mercure_refused_connections_total",
                "counter",
                "Connections refused at the connection ceiling.",
                &self.refused_connections,
            ),
            (
                "mercure_rejected_requests_total",
                "counter",
                "Requests answered with a 4xx status.",
                &self.rejected_requests,
            ),
        ];
        let mut out = String::with_capacity(1024);
        for (name, kind, help, value) in rows {
            let _ =
                writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}", value.load(Ordering::Relaxed));
        }
        out
    }
}
