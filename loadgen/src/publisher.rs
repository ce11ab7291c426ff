//! Publishers: an open-model schedule of POSTs, dispatched by goose users.
//!
//! Goose provides the users (their number and hatch rate), the run control, the request
//! metrics and the HTML/JSON report; this module provides the transaction. Every goose user
//! loops on one transaction that claims the next publish number `i` from a shared counter,
//! sleeps until it is due ([`Schedule::due`]), and **dispatches** it: the POST runs on a
//! task of its own and the user goes back to claim the next one at once. So a publish is
//! sent at its scheduled time whether or not earlier ones were answered (an open model, as
//! independent clients behave): a hub that answers slowly gets more publishes in flight,
//! not fewer publishes. Goose still sees every POST: each answer is recorded into goose's
//! metrics (`POST publish`) by the next user iteration. Every POST goes through one HTTP
//! client (the first user's), so its pool holds at most one connection per publish that
//! was in flight at once.
//!
//! # Send time, schedule time, lag
//! The schedule time is `origin + due(i)`; the send time is [`mono_ns`] just before the
//! POST is handed to the client. Their difference, the *lag*, is the dispatcher's own
//! lateness (the tokio timer's millisecond granularity, a busy CPU, or the in-flight cap
//! below); it is in the payload (`l`) so subscribers measure latency from the schedule,
//! which counts it, as well as from the send, which does not.
//!
//! # Several publishes of one topic in flight
//! Sequence numbers are per topic, assigned with the send time under the topic's log lock,
//! so `start` is sorted by sequence number; acknowledgements may come back in any order.
//! The order a hub owes is the order it acknowledged in: if publish `a` was acknowledged
//! before publish `b` was sent, every subscriber must receive `a` before `b`; publishes in
//! flight together may be delivered in either order. [`crate::accounting`] checks exactly
//! that. (Per-publisher sequences would only say the same for publishes one publisher
//! serialized itself; the hub's own update ids are opaque and, for some hubs, random.)
//!
//! # In-flight cap
//! At most `max_in_flight` POSTs are outstanding (`--max-in-flight`): a due publish that
//! finds none free waits for one, which makes it late (counted in the lag and in latency
//! from the schedule) and is counted in `cap_waits`; the verdict fails on it, because the
//! load was then no longer offered as scheduled.
//!
//! Several hub nodes: each publish goes to the node [`crate::nodes::publish_node`] picks
//! from its topic and sequence number (`--publish-spread`).
//!
//! When every scheduled publish is answered (or skipped after Ctrl-C) and recorded into
//! goose, the transaction triggers goose's killswitch, so the goose run ends with the
//! schedule and writes its report.

use crate::accounting::{Outcome, PublishLog, TopicLog};
use crate::arrivals::Schedule;
use crate::clock::mono_ns;
use crate::histo;
use crate::payload;
use crate::topics::{TopicSpace, Zipf, uniform_from};
use goose::prelude::*;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::Semaphore;
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
    /// When each publish is due.
    pub schedule: Schedule,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Most POSTs outstanding at once (at least 1).
    pub max_in_flight: usize,
}

/// The first example of each kind of failed publish, for the verdict.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PublishExamples {
    /// The first publish the hub answered with something other than 200.
    pub rejected: Option<String>,
    /// The first publish without an answer (timeout, connection error).
    pub unknown: Option<String>,
}

/// One answered POST, waiting to be recorded into goose's metrics.
#[derive(Debug)]
struct Answered {
    rtt: Duration,
    status: Option<u16>,
    error: Option<String>,
}

/// Shared publisher state: the schedule cursor, per-topic logs and counters.
pub struct Publisher {
    spec: PublishSpec,
    zipf: Zipf,
    topic_names: Vec<String>,
    /// Schedule origin, set by [`Publisher::begin`]: the timer's instant and the same
    /// moment on the monotonic clock the payloads carry.
    origin: OnceLock<(Instant, u64)>,
    /// Next publish number to claim.
    next: AtomicU64,
    /// Publishes answered or skipped.
    done: AtomicU64,
    /// Due publishes not sent because the run was stopping (Ctrl-C).
    skipped: AtomicU64,
    /// Answers recorded into goose's metrics.
    recorded: AtomicU64,
    /// Set on Ctrl-C: users stop claiming publishes.
    stopped: AtomicBool,
    /// One log per topic. std `Mutex`: held only to append a publish (sequence number and
    /// send time together, which keeps `start` sorted) or to fill in its answer, never
    /// across `.await`.
    logs: Vec<Mutex<TopicLog>>,
    /// Accepted / rejected / unknown counts, for live progress.
    pub accepted: AtomicU64,
    /// Non-200 answers.
    pub rejected: AtomicU64,
    /// No answer.
    pub unknown: AtomicU64,
    /// Per node (index = position in `hub_urls`): publishes sent, and accepted.
    per_node: Vec<(AtomicU64, AtomicU64)>,
    /// Free in-flight slots (`max_in_flight` permits).
    slots: Arc<Semaphore>,
    /// POSTs outstanding now, and the most at once (`Arc`: the soak's gauge check reads
    /// it live, since the client keeps a connection per publish that was in flight).
    in_flight: AtomicU64,
    in_flight_max: Arc<AtomicU64>,
    /// The HTTP client every publish goes through: the first goose user's, so one
    /// connection pool holds at most one connection per publish in flight (each user's
    /// own client would keep its own). `reqwest::Client` is an `Arc` inside.
    client: OnceLock<reqwest::Client>,
    /// Publishes that waited for a free slot.
    cap_waits: AtomicU64,
    /// POST round trip (µs) and schedule lag (µs). std `Mutex`: a record per publish,
    /// never held across `.await`.
    hists: Mutex<(Histogram<u64>, Histogram<u64>)>,
    /// Answers not yet recorded into goose (drained by every user iteration). std `Mutex`:
    /// a push or a swap, never held across `.await`.
    answered: Mutex<Vec<Answered>>,
    /// First failures of each kind.
    examples: Mutex<PublishExamples>,
    /// Latest answer, accepted or rejected (monotonic ns), for the publish phase's length.
    /// Publishes without an answer do not move it: their own check reports them.
    last_answer: AtomicU64,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").finish_non_exhaustive()
    }
}

/// A publish's log entry before its answer: never a valid acknowledgement time.
const PENDING: u64 = u64::MAX;

impl Publisher {
    /// A publisher for `spec`.
    pub fn new(spec: PublishSpec) -> Arc<Self> {
        let n = spec.topics.count.max(1);
        Arc::new(Self {
            zipf: Zipf::new(n, spec.zipf_s),
            topic_names: (0..n).map(|k| spec.topics.topic(k)).collect(),
            logs: (0..n).map(|_| Mutex::new(TopicLog::default())).collect(),
            origin: OnceLock::new(),
            next: AtomicU64::new(0),
            done: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            recorded: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
            accepted: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            unknown: AtomicU64::new(0),
            per_node: (0..spec.hub_urls.len().max(1)).map(|_| (AtomicU64::new(0), AtomicU64::new(0))).collect(),
            slots: Arc::new(Semaphore::new(spec.max_in_flight.clamp(1, Semaphore::MAX_PERMITS))),
            in_flight: AtomicU64::new(0),
            in_flight_max: Arc::new(AtomicU64::new(0)),
            client: OnceLock::new(),
            cap_waits: AtomicU64::new(0),
            hists: Mutex::new((histo::new(), histo::new())),
            answered: Mutex::new(Vec::new()),
            examples: Mutex::new(PublishExamples::default()),
            last_answer: AtomicU64::new(0),
            spec,
        })
    }

    /// The schedule's origin: set by the first dispatch, so goose's own start-up (launching
    /// users) is not counted as lateness; the hub is not waiting for anything before it.
    fn origin(&self) -> (Instant, u64) {
        *self.origin.get_or_init(|| (Instant::now(), mono_ns()))
    }

    /// Publishes the schedule holds.
    pub fn scheduled(&self) -> u64 {
        self.spec.schedule.total()
    }

    /// Stops claiming new publishes (in-flight ones finish).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
    }

    /// Publishes answered or skipped so far.
    pub fn finished(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Due publishes never sent because the run was stopping.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// `(most POSTs outstanding at once, publishes that waited for a free slot)`.
    pub fn in_flight_stats(&self) -> (u64, u64) {
        (self.in_flight_max.load(Ordering::Relaxed), self.cap_waits.load(Ordering::Relaxed))
    }

    /// The most POSTs outstanding at once so far, live.
    pub fn in_flight_peak(&self) -> Arc<AtomicU64> {
        self.in_flight_max.clone()
    }

    /// The first failed publishes, by kind.
    pub fn examples(&self) -> PublishExamples {
        self.examples.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// Seconds from the schedule's origin to the last answer (0 before any).
    pub fn answered_span_s(&self) -> f64 {
        let last = self.last_answer.load(Ordering::Relaxed);
        match self.origin.get() {
            Some(&(_, o)) if last > o => (last - o) as f64 / 1e9,
            _ => 0.0,
        }
    }

    /// Per node: `(sent, accepted)` publishes.
    pub fn per_node(&self) -> Vec<(u64, u64)> {
        self.per_node.iter().map(|(s, a)| (s.load(Ordering::Relaxed), a.load(Ordering::Relaxed))).collect()
    }

    /// POST round-trip and schedule-lag histograms (µs).
    pub fn histograms(&self) -> (Histogram<u64>, Histogram<u64>) {
        self.hists.lock().map(|h| (h.0.clone(), h.1.clone())).unwrap_or_else(|_| (histo::new(), histo::new()))
    }

    /// Snapshot of the publish log. Waits (up to the publish timeout and a second) for
    /// POSTs still in flight; any still unanswered then is logged as unknown, answered now.
    pub async fn log(&self) -> PublishLog {
        let deadline = Instant::now() + self.spec.timeout + Duration::from_secs(1);
        while self.in_flight.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let now = mono_ns();
        let mut topics = Vec::with_capacity(self.logs.len());
        for l in &self.logs {
            let mut t = l.lock().map(|t| t.clone()).unwrap_or_default();
            for (ack, outcome) in t.ack.iter_mut().zip(t.outcome.iter_mut()) {
                if *ack == PENDING {
                    *ack = now;
                    *outcome = Outcome::Unknown as u8;
                }
            }
            topics.push(t);
        }
        PublishLog { topics }
    }

    /// The goose scenario whose users run this publisher.
    pub fn scenario(self: &Arc<Self>) -> Scenario {
        let me = self.clone();
        let f: TransactionFunction = Arc::new(move |user| {
            let me = me.clone();
            Box::pin(async move { me.dispatch_next(user).await })
        });
        scenario!("Publish").register_transaction(Transaction::new(f).set_name("publish"))
    }

    /// One goose iteration: record answers into goose, then claim the next publish, wait
    /// for its time and send it on a task of its own.
    async fn dispatch_next(self: &Arc<Self>, user: &mut GooseUser) -> TransactionResult {
        self.record_answers(user).await;
        let idle = Duration::from_millis(50);
        if self.finished() >= self.scheduled() {
            if self.recorded.load(Ordering::SeqCst) + self.skipped() >= self.scheduled() {
                goose::trigger_killswitch("publish schedule complete");
            }
            tokio::time::sleep(idle).await;
            return Ok(());
        }
        if self.stopped.load(Ordering::SeqCst) {
            tokio::time::sleep(idle).await;
            return Ok(());
        }
        let (origin, origin_ns) = self.origin();
        let i = self.next.fetch_add(1, Ordering::SeqCst);
        let Some(due) = self.spec.schedule.due(i) else {
            tokio::time::sleep(idle).await;
            return Ok(());
        };
        tokio::time::sleep_until(origin + due).await;
        if self.stopped.load(Ordering::SeqCst) {
            self.skipped.fetch_add(1, Ordering::SeqCst);
            self.done.fetch_add(1, Ordering::SeqCst);
            return Ok(());
        }
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                self.cap_waits.fetch_add(1, Ordering::Relaxed);
                match self.slots.clone().acquire_owned().await {
                    Ok(p) => p,
                    // The semaphore is never closed; count it as skipped if it ever is.
                    Err(_) => {
                        self.skipped.fetch_add(1, Ordering::SeqCst);
                        self.done.fetch_add(1, Ordering::SeqCst);
                        return Ok(());
                    }
                }
            }
        };
        let due_ns = origin_ns + due.as_nanos() as u64;
        let k = self.zipf.sample(uniform_from(i, self.spec.seed));
        let (Some(lock), Some(topic)) = (self.logs.get(k as usize), self.topic_names.get(k as usize)) else {
            // The Zipf sampler only returns topics of the run.
            self.skipped.fetch_add(1, Ordering::SeqCst);
            self.done.fetch_add(1, Ordering::SeqCst);
            return Ok(());
        };
        // Sequence number and send time together, under the topic's lock: `start` stays
        // sorted by sequence number.
        let (seq, start) = {
            let Ok(mut log) = lock.lock() else {
                self.skipped.fetch_add(1, Ordering::SeqCst);
                self.done.fetch_add(1, Ordering::SeqCst);
                return Ok(());
            };
            let start = mono_ns();
            (log.push(start, PENDING, Outcome::Unknown), start)
        };
        let late = start.saturating_sub(due_ns);
        let node = crate::nodes::publish_node(self.spec.spread, k, seq, self.spec.hub_urls.len());
        let url = self.spec.hub_urls.get(node).or(self.spec.hub_urls.first()).cloned().unwrap_or_default();
        if let Some(c) = self.per_node.get(node) {
            c.0.fetch_add(1, Ordering::Relaxed);
        }
        let data = payload::encode(&self.spec.run_id, k, seq, start, late, self.spec.payload_size);
        let body = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("topic", topic);
            form.append_pair("data", &data);
            if self.spec.private {
                form.append_pair("private", "on");
            }
            form.finish()
        };
        let client = self.client.get_or_init(|| user.client.clone());
        let request = client
            .post(&url)
            .header("authorization", format!("Bearer {}", self.spec.jwt))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .timeout(self.spec.timeout);
        let now_in_flight = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.in_flight_max.fetch_max(now_in_flight, Ordering::Relaxed);
        let me = self.clone();
        tokio::spawn(async move {
            let sent = request.send().await;
            // The answer's headers are the acknowledgement.
            let ack = mono_ns();
            let (outcome, status, error) = match sent {
                Ok(resp) if resp.status().as_u16() == 200 => {
                    // Read the (small) body, so the connection goes back to the pool.
                    let _ = resp.bytes().await;
                    (Outcome::Accepted, Some(200), None)
                }
                Ok(mut resp) => {
                    let code = resp.status().as_u16();
                    // The first chunk is enough for a one-line reason.
                    let body = match resp.chunk().await {
                        Ok(Some(b)) => String::from_utf8_lossy(&b[..b.len().min(160)]).trim().to_string(),
                        _ => String::new(),
                    };
                    (Outcome::Rejected, Some(code), Some(format!("status {code}: {body}")))
                }
                Err(e) if e.is_timeout() => (
                    Outcome::Unknown,
                    None,
                    Some(format!("no answer within {:.1} s (timeout)", me.spec.timeout.as_secs_f64())),
                ),
                Err(e) => (Outcome::Unknown, None, Some(format!("no answer: {e}"))),
            };
            drop(permit);
            me.answered(Done { k, seq, node, i, start, ack, late, outcome, status, error });
        });
        Ok(())
    }

    /// Logs an answered publish and updates the counters.
    fn answered(&self, d: Done) {
        if let Some(Ok(mut log)) = self.logs.get(d.k as usize).map(|l| l.lock()) {
            log.answer(d.seq, d.ack, d.outcome);
        }
        match d.outcome {
            Outcome::Accepted => {
                if let Some(c) = self.per_node.get(d.node) {
                    c.1.fetch_add(1, Ordering::Relaxed);
                }
                &self.accepted
            }
            Outcome::Rejected => &self.rejected,
            Outcome::Unknown => &self.unknown,
        }
        .fetch_add(1, Ordering::Relaxed);
        if let Some(e) = &d.error
            && let Ok(mut ex) = self.examples.lock()
        {
            let slot = if d.outcome == Outcome::Rejected { &mut ex.rejected } else { &mut ex.unknown };
            if slot.is_none() {
                *slot = Some(format!("publish #{} (topic {}, seq {}): {e}", d.i, d.k, d.seq));
            }
        }
        if let Ok(mut h) = self.hists.lock() {
            histo::record(&mut h.0, d.ack.saturating_sub(d.start) / 1000);
            histo::record(&mut h.1, d.late / 1000);
        }
        if d.outcome != Outcome::Unknown {
            self.last_answer.fetch_max(d.ack, Ordering::Relaxed);
        }
        if let Ok(mut a) = self.answered.lock() {
            a.push(Answered {
                rtt: Duration::from_nanos(d.ack.saturating_sub(d.start)),
                status: d.status,
                error: d.error,
            });
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.done.fetch_add(1, Ordering::SeqCst);
    }

    /// Records the answers gathered since the last call into goose's request metrics.
    async fn record_answers(&self, user: &mut GooseUser) {
        let batch = match self.answered.lock() {
            Ok(mut a) if !a.is_empty() => std::mem::take(&mut *a),
            _ => return,
        };
        let n = batch.len() as u64;
        for a in batch {
            let ok = a.status == Some(200);
            // Goose counts a failure to record as its own error; the run's own counters
            // above are what the report uses.
            let _ =
                user.record_custom_request_duration("POST", "publish", a.rtt, ok, a.status, a.error.as_deref()).await;
        }
        self.recorded.fetch_add(n, Ordering::SeqCst);
    }
}

/// What a finished POST hands back to the publisher.
struct Done {
    k: u32,
    seq: u64,
    node: usize,
    i: u64,
    start: u64,
    ack: u64,
    late: u64,
    outcome: Outcome,
    status: Option<u16>,
    error: Option<String>,
}
