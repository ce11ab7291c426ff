//! Merging the workers' final reports: tallies, histograms, connection counters, per-node
//! counts, fault examples, and the subscribers nobody tallied.
//!
//! Invariant: every requested subscriber is either tallied by a worker or counted in
//! `untallied` — a subscriber task that panicked, or every subscriber of a worker that
//! exited without its final report. Nothing is dropped silently.

use super::plan::Plan;
use super::workers::Workers;
use crate::accounting::{Examples, Tally};
use crate::histo;
use crate::hubstats;
use crate::nodes::NodeCounters;
use crate::report::{Connections, LoadgenCpu};
use crate::shard::Progress;
use hdrhistogram::Histogram;

/// The workers' final reports, added up.
#[derive(Debug)]
pub struct Merged {
    /// Delivery accounting.
    pub tally: Tally,
    /// Per node (position in `--hub-url`).
    pub node_tallies: Vec<Tally>,
    /// Connection counters per node.
    pub node_counts: Vec<NodeCounters>,
    /// Latency from the schedule, µs.
    pub hist: Histogram<u64>,
    /// Latency from the send, µs.
    pub hist_send: Histogram<u64>,
    /// Connection counts (`requested` … `held_at_stop` are filled by the caller).
    pub conns: Connections,
    /// Events read, foreign ones, replays.
    pub events: u64,
    /// See `events`.
    pub foreign: u64,
    /// See `events`.
    pub replayed: u64,
    /// Soak counters (token expiries, stuck consumers).
    pub soak_counts: Progress,
    /// One example per delivery fault.
    pub examples: Examples,
    /// Subscribers tallied.
    pub tallied: u64,
    /// Subscribers not tallied, and why for the first.
    pub untallied: u64,
    /// See `untallied`.
    pub untallied_example: Option<String>,
}

/// Adds up the workers' final reports; workers without one count as untallied.
pub fn merge(workers: &Workers, plan: &Plan, initial: u64, conns: Connections) -> Merged {
    let mut m = Merged {
        tally: Tally::default(),
        node_tallies: vec![Tally::default(); plan.nodes.len()],
        node_counts: Vec::new(),
        hist: histo::new(),
        hist_send: histo::new(),
        conns,
        events: 0,
        foreign: 0,
        replayed: 0,
        soak_counts: Progress::default(),
        examples: Examples::default(),
        tallied: 0,
        untallied: 0,
        untallied_example: None,
    };
    for (i, h) in workers.handles.iter().enumerate() {
        let v = h.view();
        let Some(f) = v.fin else {
            let n = plan.subscribers_of(initial, i as u32);
            m.untallied += n;
            if m.untallied_example.is_none() {
                m.untallied_example = Some(format!(
                    "worker {i}{} ended without its final report ({}): its {n} subscribers were not tallied",
                    h.pid.map_or_else(String::new, |p| format!(" (pid {p})")),
                    v.failed.unwrap_or_else(|| "no reason given".into())
                ));
            }
            continue;
        };
        m.tally.add(&f.tally);
        for (t, ft) in m.node_tallies.iter_mut().zip(&f.node_tallies) {
            t.add(ft);
        }
        crate::nodes::add_all(&mut m.node_counts, &f.progress.nodes);
        if let Some(wh) = histo::from_hex(&f.progress.hist) {
            let _ = m.hist.add(&wh);
        }
        if let Some(wh) = histo::from_hex(&f.progress.hist_send) {
            let _ = m.hist_send.add(&wh);
        }
        let p = &f.progress;
        m.conns.peak_held += p.peak_held;
        m.conns.attempts += p.connect_attempts;
        m.conns.errors += p.connect_errors;
        m.conns.server_drops += p.drops;
        m.conns.reconnects += p.reconnects;
        m.conns.pending_at_stop += p.pending_at_stop;
        m.conns.never_connected += f.never_connected;
        for (k, v) in f.error_kinds {
            *m.conns.error_kinds.entry(k).or_default() += v;
        }
        m.events += p.events;
        m.foreign += p.foreign;
        m.replayed += p.replayed;
        let s = &mut m.soak_counts;
        s.token_expiries += p.token_expiries;
        s.stuck_cycles += p.stuck_cycles;
        s.stuck_evicted += p.stuck_evicted;
        s.stuck_not_evicted += p.stuck_not_evicted;
        s.stuck_reset += p.stuck_reset;
        s.stuck_errors += p.stuck_errors;
        m.examples.fill_from(f.examples);
        m.tallied += f.tallied;
        // A worker's own count is what it started; what it could not tally is the rest.
        let short = plan.subscribers_of(initial, i as u32).saturating_sub(f.tallied);
        m.untallied += short.max(f.untallied);
        if m.untallied_example.is_none() {
            m.untallied_example = f.untallied_example.map(|e| format!("worker {i}: {e}"));
        }
    }
    m
}

/// The load generator's own CPU over the whole run (workers are sampled after their final
/// report, before they exit).
pub fn loadgen_cpu(workers: &Workers) -> LoadgenCpu {
    let mut l = LoadgenCpu { workers: workers.handles.len() as u32, ..LoadgenCpu::default() };
    for h in &workers.handles {
        if let Some(s) = h.pid.and_then(hubstats::sample_pid) {
            l.workers_cpu_s += s.cpu_s;
            l.workers_rss_max_bytes = l.workers_rss_max_bytes.max(s.rss_bytes);
        }
    }
    if let Some(s) = hubstats::sample_pid(std::process::id()) {
        l.coordinator_cpu_s = s.cpu_s;
    }
    l
}
