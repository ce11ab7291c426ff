//! A shard of the subscriber swarm: the subscribers one worker process owns.
//!
//! The coordinator splits N subscribers over W worker processes (the open-file cap is
//! per process and loopback source ports are per source address). Worker `w` owns the
//! global subscriber indices `g` with `g % W == w`: initial subscriber `g` starts at
//! `g / connect_rate` seconds (so all workers together ramp at `connect_rate`), and
//! arrival `j` of the `SUBSCRIBERS_RATE_FROM/TO` ramp starts at `Ramp::due(j)` after the
//! coordinator's `Start`.
//!
//! The shard runs on a single-threaded runtime (`LocalSet`): its shared state is a
//! `RefCell`, borrowed for a few counter updates and never across an `.await`. Protocol
//! with the coordinator ([`Control`] in, [`WorkerMsg`] out): `Config`, then `Start`
//! when publishing begins, `Stop` when the run ends (all connections close), then the
//! publish `Log`, against which every session is tallied ([`crate::accounting`]); the
//! shard answers with one `Final` message and exits.
//!
//! With several hub nodes ([`crate::nodes`]) subscriber `g` connects to node `g mod N`;
//! the shard keeps its counters per node as well as in total, and tallies per node too.

use crate::accounting::{Examples, IndexedTopic, Judge, PublishLog, Tally, session_examples, tally_session};
use crate::histo;
use crate::nodes::NodeCounters;
use crate::shard::{Live, Progress, Shard, SwarmConfig};
use crate::subscriber::{self, SubscriberResult};
use crate::topics::uniform_from;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Coordinator → worker.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Control {
    /// First message.
    Config(Box<SwarmConfig>),
    /// Publishing starts: arrivals begin.
    Start,
    /// The run ends: close every connection.
    Stop,
    /// The publish log, to tally against.
    Log(PublishLog),
}

/// Worker → coordinator.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum WorkerMsg {
    /// Periodic snapshot.
    Progress(Box<Progress>),
    /// Last message.
    Final(Box<ShardFinal>),
    /// The worker could not run.
    Failed {
        /// Why.
        error: String,
    },
}

/// A shard's final report.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ShardFinal {
    /// Final counters.
    pub progress: Progress,
    /// Connection errors by kind.
    pub error_kinds: BTreeMap<String, u64>,
    /// Delivery accounting.
    pub tally: Tally,
    /// Subscribers started.
    pub subscribers: u64,
    /// Subscribers whose sessions were tallied (their task ended and handed them back).
    #[serde(default)]
    pub tallied: u64,
    /// Subscribers started but not tallied (their task panicked or vanished), and why
    /// for the first one.
    #[serde(default)]
    pub untallied: u64,
    /// See `untallied`.
    #[serde(default)]
    pub untallied_example: Option<String>,
    /// One example of each delivery fault the shard's sessions show.
    #[serde(default)]
    pub examples: Examples,
    /// Subscribers that never connected.
    pub never_connected: u64,
    /// Delivery accounting per hub node (of the sessions of its subscribers).
    #[serde(default)]
    pub node_tallies: Vec<Tally>,
}

/// Late arrivals a shard keeps for judging the order at tally time, all its sessions
/// together (16 bytes each: 64 MiB). Beyond it a late arrival is counted out of order
/// without being judged (see [`crate::seqset`]), so the budget can only make a verdict
/// stricter. A correct hub produces late arrivals only among publishes of one topic in
/// flight together, a small share of them.
pub const LATE_BUDGET: u64 = 4 << 20;

/// Subscriber tasks' results, and the ones that did not hand theirs back.
#[derive(Debug, Default)]
struct Results {
    done: Vec<SubscriberResult>,
    untallied: u64,
    untallied_example: Option<String>,
}

impl Results {
    /// Takes one finished task: its result, or the reason it has none (a panic, or a task
    /// cancelled), which leaves its subscriber untallied.
    fn take(&mut self, joined: Result<SubscriberResult, tokio::task::JoinError>) {
        match joined {
            Ok(r) => self.done.push(r),
            Err(e) => {
                self.untallied += 1;
                if self.untallied_example.is_none() {
                    let why = if e.is_panic() {
                        let p = e.into_panic();
                        let msg = p
                            .downcast_ref::<&str>()
                            .map(|s| (*s).to_string())
                            .or_else(|| p.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "non-text panic".into());
                        format!("a subscriber task panicked: {msg}")
                    } else {
                        "a subscriber task was cancelled".to_string()
                    };
                    self.untallied_example = Some(why);
                }
            }
        }
    }
}

/// Runs a shard until the coordinator's `Log` arrives (or its channel closes); every
/// message for the coordinator goes to `out`. Must run inside a `LocalSet`.
pub async fn run_shard(
    cfg: SwarmConfig,
    mut control: mpsc::UnboundedReceiver<Control>,
    out: mpsc::UnboundedSender<WorkerMsg>,
) {
    // Before any connection opens; this is the runtime's only thread (current_thread).
    if let Err(e) = crate::os_priority::apply(cfg.sched) {
        eprintln!("worker {}: {e}; continuing with the inherited policy", cfg.worker);
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let p = Progress { nodes: vec![NodeCounters::default(); cfg.nodes.len()], ..Progress::default() };
    let shard = Rc::new(Shard {
        live: RefCell::new(Live {
            p,
            hist: histo::new(),
            hist_send: histo::new(),
            late_budget: LATE_BUDGET,
            error_kinds: BTreeMap::new(),
        }),
        stop: stop_rx,
        cfg,
    });
    let cfg = &shard.cfg;
    let workers = u64::from(cfg.workers.max(1));
    let w = u64::from(cfg.worker);
    let mut tasks: JoinSet<SubscriberResult> = JoinSet::new();
    let t0 = Instant::now();
    let rate = if cfg.connect_rate > 0.0 { cfg.connect_rate } else { f64::INFINITY };
    let mut g = w;
    while g < cfg.initial_total {
        let at = t0 + Duration::from_secs_f64(g as f64 / rate);
        spawn_one(&mut tasks, &shard, g, at, true);
        g += workers;
    }
    let mut started = tasks.len() as u64;
    // Stuck consumers: outside the accounting (they owe nothing and are owed nothing),
    // started with the initial ramp, stopped with the run.
    let mut stuck_tasks: JoinSet<()> = JoinSet::new();
    if let Some(st) = cfg.stuck.clone() {
        let mut k = w;
        while k < st.count {
            let at = t0 + Duration::from_secs_f64(k as f64 / st.count.max(1) as f64 * st.spread_s.max(0.0));
            stuck_tasks.spawn_local(crate::stuck::run(shard.clone(), k, at, st.clone()));
            k += workers;
        }
    }
    let mut results = Results::default();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    // Phase 1: until Stop (or the coordinator vanishes).
    loop {
        tokio::select! {
            _ = tick.tick() => { let _ = out.send(WorkerMsg::Progress(Box::new(shard.snapshot()))); }
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                // A subscriber that ended early (closed at lifetime end, gave up):
                // keep its result for the tally.
                results.take(done);
            }
            msg = control.recv() => match msg {
                Some(Control::Start) => {
                    let start = Instant::now();
                    let ramp = cfg.arrivals;
                    let mut j = w;
                    while let Some(due) = ramp.due(j) {
                        spawn_one(&mut tasks, &shard, cfg.initial_total + j, start + due, false);
                        started += 1;
                        j += workers;
                    }
                }
                Some(Control::Config(_)) | Some(Control::Log(_)) => {}
                Some(Control::Stop) | None => break,
            }
        }
    }
    let _ = stop_tx.send(true);
    while stuck_tasks.join_next().await.is_some() {}
    while let Some(done) = tasks.join_next().await {
        results.take(done);
    }
    let _ = out.send(WorkerMsg::Progress(Box::new(shard.snapshot())));
    // Phase 2: wait for the publish log.
    let log = loop {
        match control.recv().await {
            Some(Control::Log(log)) => break log,
            Some(_) => continue,
            None => break PublishLog::default(),
        }
    };
    let fin = tally_shard(&shard, &log, results, started);
    let _ = out.send(WorkerMsg::Final(Box::new(fin)));
}

/// Tallies every session of the shard's subscribers against the publish log.
fn tally_shard(shard: &Shard, log: &PublishLog, results: Results, started: u64) -> ShardFinal {
    let cfg = &shard.cfg;
    let indexed: Vec<IndexedTopic<'_>> = log.topics.iter().map(IndexedTopic::new).collect();
    let mut tally = Tally::default();
    let mut node_tallies = vec![Tally::default(); cfg.nodes.len()];
    let mut examples = Examples::default();
    let mut never = 0;
    // MERCURE_LOADGEN_DEBUG_LOSS=1: print each lossy session on stderr.
    let debug_loss = std::env::var_os("MERCURE_LOADGEN_DEBUG_LOSS").is_some();
    for r in &results.done {
        if r.sessions.is_empty() {
            never += 1;
        }
        let judge = Judge {
            matched: cfg.topics.selector_for(cfg.selector, r.index).topics,
            private: cfg.private,
            has_token: cfg.has_token(r.index),
        };
        for s in &r.sessions {
            let t = tally_session(s, &indexed, judge);
            if t.lost > 0 && debug_loss {
                // Diagnostics for a lossy session: its window and what it received.
                let ranges: Vec<String> =
                    s.received.iter().map(|(k, set)| format!("topic {k}: {:?}", set.ranges())).collect();
                eprintln!(
                    "loss: subscriber {} window [{}, {}] closed {} lost {} of {}; received {}",
                    r.index,
                    s.start,
                    s.end,
                    s.closed,
                    t.lost,
                    t.expected,
                    ranges.join("; ")
                );
            }
            let wants = |have: &Option<String>, n: u64| have.is_none() && n > 0;
            if wants(&examples.lost, t.lost)
                || wants(&examples.duplicate, t.duplicates)
                || wants(&examples.out_of_order, t.out_of_order)
                || wants(&examples.unexpected, t.unexpected)
            {
                let mut ex = session_examples(s, &indexed, judge);
                for e in [&mut ex.lost, &mut ex.duplicate, &mut ex.out_of_order, &mut ex.unexpected] {
                    if let Some(text) = e.take() {
                        *e = Some(format!("subscriber {}: {text}", r.index));
                    }
                }
                examples.fill_from(ex);
            }
            tally.add(&t);
            if let Some(nt) = node_tallies.get_mut(crate::nodes::subscriber_node(r.index, cfg.nodes.len())) {
                nt.add(&t);
            }
        }
    }
    let tallied = results.done.len() as u64;
    let l = shard.live.borrow();
    ShardFinal {
        progress: shard.snapshot(),
        error_kinds: l.error_kinds.clone(),
        tally,
        subscribers: started,
        tallied,
        untallied: started.saturating_sub(tallied).max(results.untallied),
        untallied_example: results.untallied_example,
        examples,
        never_connected: never,
        node_tallies,
    }
}

fn spawn_one(tasks: &mut JoinSet<SubscriberResult>, shard: &Rc<Shard>, g: u64, at: Instant, initial: bool) {
    let cfg = &shard.cfg;
    let selector = cfg.topics.selector_for(cfg.selector, g);
    let lifetime = if cfg.lifetime_s > 0.0 {
        let min = cfg.min_lifetime_s.clamp(0.0, cfg.lifetime_s);
        let l =
            if cfg.random_lifetime { min + (cfg.lifetime_s - min) * uniform_from(g, cfg.seed) } else { cfg.lifetime_s };
        Some(Duration::from_secs_f64(l))
    } else {
        None
    };
    tasks.spawn_local(subscriber::run(shard.clone(), g, selector, at, lifetime, initial));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_subscriber_task_that_panics_is_counted_untallied_with_its_message() {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let mut tasks: JoinSet<SubscriberResult> = JoinSet::new();
                tasks.spawn_local(async { SubscriberResult { index: 1, sessions: Vec::new() } });
                tasks.spawn_local(async { panic!("stand-in subscriber bug") });
                tasks.spawn_local(async { SubscriberResult { index: 3, sessions: Vec::new() } });
                let mut results = Results::default();
                while let Some(done) = tasks.join_next().await {
                    results.take(done);
                }
                let mut tallied: Vec<u64> = results.done.iter().map(|r| r.index).collect();
                tallied.sort_unstable();
                assert_eq!(tallied, [1, 3]);
                assert_eq!(results.untallied, 1);
                assert_eq!(
                    results.untallied_example.as_deref(),
                    Some("a subscriber task panicked: stand-in subscriber bug")
                );
            })
            .await;
    }
}
