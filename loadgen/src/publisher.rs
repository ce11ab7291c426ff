//! Publishers: goose users POSTing updates on an open-model schedule.
//!
//! Goose provides the users (their number and hatch rate), the request metrics and the
//! HTML/JSON report; this module provides the transaction. Every goose user loops on one
//! transaction that claims the next publish number `i` from a shared counter, sleeps
//! until `Ramp::due(i)` (so the offered rate follows `PUBLISHERS_RATE_FROM → TO`
//! whatever the number of users, as long as there are enough of them to cover the
//! hub's response time), picks a topic with Zipf popularity, and POSTs.
//!
//! Ordering invariant: publishes on one topic are serialized by that topic's async
//! mutex, held from sequence assignment to the response. The hub therefore sees each
//! topic's updates in sequence order, so subscribers can report out-of-order delivery
//! as the hub's doing, and the [`TopicLog`] columns stay sorted (see
//! [`crate::accounting`]). The cost: one topic carries at most one publish per round
//! trip (thousands per second on loopback), which `publish.lag_ms` in the report shows.
//!
//! Several hub nodes: each publish goes to the node [`crate::nodes::publish_node`] picks
//! from its topic and sequence number (`--publish-spread`); the serialization above is
//! per topic, across nodes, which is what keeps the ordering check meaningful there.
//!
//! When the last scheduled publish is done the transaction triggers goose's killswitch,
//! so the goose run ends with the schedule and writes its report.

use crate::accounting::{Outcome, PublishLog, TopicLog};
use crate::arrivals::Ramp;
use crate::clock::now_ns;
use crate::histo;
use crate::payload;
use crate::topics::{TopicSpace, Zipf, uniform_from};
use goose::prelude::*;
use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::time::Instant;

/// Static description of what to publish.
#[derive(Debug, Clone)]
pub struct PublishSpec {
    /// Full hub URLs, one per node (at least one).
    pub hub_urls: Vec<String>,
    /// Which node each publish goes to.
    pub spread: crate::nodes::PublishSpread,
    /// Publisher JWT.
    pub jwt: String,
    /// Send `private=on`.
    pub private: bool,
    /// Minimum `data` size, bytes.
    pub payload_size: usize,
    /// Run id for payloads.
    pub run_id: String,
    /// Topics.
    pub topics: TopicSpace,
    /// Zipf exponent.
    pub zipf_s: f64,
    /// Seed for topic choice.
    pub seed: u64,
    /// Offered rate.
    pub ramp: Ramp,
    /// Per-request timeout.
    pub timeout: Duration,
}

/// Shared publisher state: the schedule cursor, per-topic logs and counters.
pub struct Publisher {
    spec: PublishSpec,
    zipf: Zipf,
    topic_names: Vec<String>,
    /// Schedule origin, set by [`Publisher::begin`].
    origin: OnceLock<Instant>,
    /// Next publish number to claim.
    next: AtomicU64,
    /// Publishes finished (any outcome).
    done: AtomicU64,
    /// Set on Ctrl-C: users stop claiming publishes.
    stopped: AtomicBool,
    /// One log per topic. tokio `Mutex`: it is held across the POST on purpose (see the
    /// module docs), which a blocking mutex must never be.
    logs: Vec<tokio::sync::Mutex<TopicLog>>,
    /// Accepted / rejected / unknown counts, for live progress.
    pub accepted: AtomicU64,
    /// Non-200 answers.
    pub rejected: AtomicU64,
    /// No answer.
    pub unknown: AtomicU64,
    /// Per node (index = position in `hub_urls`): publishes sent, and accepted.
    per_node: Vec<(AtomicU64, AtomicU64)>,
    /// POST round trip (µs) and schedule lag (µs). std `Mutex`: a record per publish,
    /// never held across `.await`.
    hists: Mutex<(Histogram<u64>, Histogram<u64>)>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").finish_non_exhaustive()
    }
}

impl Publisher {
    /// A publisher for `spec`.
    pub fn new(spec: PublishSpec) -> Arc<Self> {
        let n = spec.topics.count.max(1);
        Arc::new(Self {
            zipf: Zipf::new(n, spec.zipf_s),
            topic_names: (0..n).map(|k| spec.topics.topic(k)).collect(),
            logs: (0..n).map(|_| tokio::sync::Mutex::new(TopicLog::default())).collect(),
            origin: OnceLock::new(),
            next: AtomicU64::new(0),
            done: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
            accepted: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            unknown: AtomicU64::new(0),
            per_node: (0..spec.hub_urls.len().max(1)).map(|_| (AtomicU64::new(0), AtomicU64::new(0))).collect(),
            hists: Mutex::new((histo::new(), histo::new())),
            spec,
        })
    }

    /// Starts the schedule clock (idempotent).
    pub fn begin(&self) {
        let _ = self.origin.set(Instant::now());
    }

    /// Publishes the schedule holds.
    pub fn scheduled(&self) -> u64 {
        self.spec.ramp.total()
    }

    /// Stops claiming new publishes (in-flight ones finish).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
    }

    /// Publishes finished so far.
    pub fn finished(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Per node: `(sent, accepted)` publishes.
    pub fn per_node(&self) -> Vec<(u64, u64)> {
        self.per_node.iter().map(|(s, a)| (s.load(Ordering::Relaxed), a.load(Ordering::Relaxed))).collect()
    }

    /// POST round-trip and schedule-lag histograms (µs).
    pub fn histograms(&self) -> (Histogram<u64>, Histogram<u64>) {
        self.hists.lock().map(|h| (h.0.clone(), h.1.clone())).unwrap_or_else(|_| (histo::new(), histo::new()))
    }

    /// Snapshot of the publish log (waits for in-flight publishes).
    pub async fn log(&self) -> PublishLog {
        let mut topics = Vec::with_capacity(self.logs.len());
        for l in &self.logs {
            topics.push(l.lock().await.clone());
        }
        PublishLog { topics }
    }

    /// The goose scenario whose users run this publisher.
    pub fn scenario(self: &Arc<Self>) -> Scenario {
        let me = self.clone();
        let f: TransactionFunction = Arc::new(move |user| {
            let me = me.clone();
            Box::pin(async move { me.publish_next(user).await })
        });
        scenario!("Publish").register_transaction(Transaction::new(f).set_name("publish"))
    }

    async fn publish_next(&self, user: &mut GooseUser) -> TransactionResult {
        let idle = Duration::from_millis(50);
        if self.stopped.load(Ordering::SeqCst) {
            tokio::time::sleep(idle).await;
            return Ok(());
        }
        let origin = *self.origin.get_or_init(Instant::now);
        let i = self.next.fetch_add(1, Ordering::SeqCst);
        let Some(due) = self.spec.ramp.due(i) else {
            tokio::time::sleep(idle).await;
            return Ok(());
        };
        tokio::time::sleep_until(origin + due).await;
        if self.stopped.load(Ordering::SeqCst) {
            self.finish_one();
            return Ok(());
        }
        let k = self.zipf.sample(uniform_from(i, self.spec.seed));
        let Some(lock) = self.logs.get(k as usize) else {
            self.finish_one();
            return Ok(());
        };
        let mut log = lock.lock().await;
        let seq = log.len() as u64;
        let node = crate::nodes::publish_node(self.spec.spread, k, seq, self.spec.hub_urls.len());
        let (Some(url), Some(counts)) = (self.spec.hub_urls.get(node), self.per_node.get(node)) else {
            drop(log);
            self.finish_one();
            return Ok(());
        };
        counts.0.fetch_add(1, Ordering::Relaxed);
        let start = now_ns();
        let lag_us = Instant::now().saturating_duration_since(origin + due).as_micros() as u64;
        let data = payload::encode(&self.spec.run_id, k, seq, start, self.spec.payload_size);
        let body = {
            // Built in a block: the serializer is not `Send` and must not live across
            // the `.await` below.
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("topic", &self.topic_names[k as usize]);
            form.append_pair("data", &data);
            if self.spec.private {
                form.append_pair("private", "on");
            }
            form.finish()
        };
        let sent = user.get_request_builder(&GooseMethod::Post, url).map(|rb| {
            rb.header("authorization", format!("Bearer {}", self.spec.jwt))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .timeout(self.spec.timeout)
        });
        let res = match sent {
            Ok(rb) => {
                let req = GooseRequest::builder()
                    .method(GooseMethod::Post)
                    .path(url.as_str())
                    .name("publish")
                    .expect_status_code(200)
                    .set_request_builder(rb)
                    .build();
                user.request(req).await
            }
            Err(e) => Err(e),
        };
        let outcome = match &res {
            Ok(g) => match &g.response {
                Ok(r) if r.status().as_u16() == 200 => Outcome::Accepted,
                Ok(_) => Outcome::Rejected,
                Err(_) => Outcome::Unknown,
            },
            Err(_) => Outcome::Unknown,
        };
        let ack = now_ns();
        log.push(start, ack, outcome);
        drop(log);
        if outcome == Outcome::Accepted {
            counts.1.fetch_add(1, Ordering::Relaxed);
        }
        match outcome {
            Outcome::Accepted => &self.accepted,
            Outcome::Rejected => &self.rejected,
            Outcome::Unknown => &self.unknown,
        }
        .fetch_add(1, Ordering::Relaxed);
        if let Ok(mut h) = self.hists.lock() {
            histo::record(&mut h.0, ack.saturating_sub(start) / 1000);
            histo::record(&mut h.1, lag_us);
        }
        self.finish_one();
        res.map(|_| ())
    }

    fn finish_one(&self) {
        let done = self.done.fetch_add(1, Ordering::SeqCst) + 1;
        if done >= self.scheduled() {
            goose::trigger_killswitch("publish schedule complete");
        }
    }
}
