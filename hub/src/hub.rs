//! The hub: publish → match → enqueue, and the subscriber lifecycle.
//!
//! ## Ordering
//! Every update gets a sequence number, and fan-outs happen in sequence order under the
//! *dispatch lock*. That lock covers only non-blocking work (index look-ups and queue pushes,
//! tens of nanoseconds per recipient); wakes, logging and I/O happen after it is released.
//! What it buys: every subscriber sees updates in the same (publish) order, and a new
//! subscription is registered at a precise point of that order — the history replay (`lastEventID`)
//! sends exactly the updates before that point and the queue holds exactly those after it, so
//! replay and live traffic never overlap nor leave a gap.
//!
//! ## Eviction
//! A push that overflows a subscriber's queue evicts that subscriber (see `queue`): it is
//! removed from the registry at once, its stream ends, a counter is bumped and one log line
//! says who and why. Nobody else waits.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;

use crate::metrics::Metrics;
use crate::queue::{CloseReason, Push, QueueLimits};
use crate::registry::Registry;
use crate::sse;
use crate::subscriber::Subscriber;
use crate::topic::{Selector, SelectorCompiler};
use crate::update::Update;

/// Settings of the in-process hub (the server adds HTTP-level ones).
#[derive(Debug, Clone)]
pub struct HubOptions {
    pub queue: QueueLimits,
    /// Most distinct compiled templates kept interned. Default 10 000.
    pub max_templates: usize,
}

impl Default for HubOptions {
    fn default() -> Self {
        HubOptions { queue: QueueLimits::default(), max_templates: 10_000 }
    }
}

/// What one publish did.
#[derive(Debug, Clone, Copy)]
pub struct Dispatched {
    /// The update's position in the hub's total order.
    pub seq: u64,
    /// Subscribers it was queued for.
    pub recipients: usize,
    /// Subscribers evicted because their queue overflowed.
    pub evicted: usize,
}

pub struct Hub {
    registry: Registry,
    compiler: SelectorCompiler,
    /// The last sequence number handed out; the dispatch lock (see module docs). parking_lot:
    /// fair enough under contention and never held across an `.await`.
    dispatch: Mutex<u64>,
    options: HubOptions,
    next_subscriber: AtomicU64,
    heartbeat: Bytes,
    pub metrics: Metrics,
}

impl Hub {
    pub fn new(options: HubOptions) -> Self {
        Hub {
            registry: Registry::new(),
            compiler: SelectorCompiler::new(options.max_templates),
            dispatch: Mutex::new(0),
            options,
            next_subscriber: AtomicU64::new(1),
            heartbeat: Bytes::from_static(sse::HEARTBEAT),
            metrics: Metrics::default(),
        }
    }

    pub fn options(&self) -> &HubOptions {
        &self.options
    }

    pub fn compiler(&self) -> &SelectorCompiler {
        &self.compiler
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Builds a subscriber (not yet registered).
    pub fn new_subscriber<S: AsRef<str>>(
        &self,
        selectors: &[S],
        private_allowed: Option<Arc<[Selector]>>,
        payload: Option<Arc<serde_json::Value>>,
    ) -> Arc<Subscriber> {
        let selectors = self.compiler.compile_all(selectors);
        let id = self.next_subscriber.fetch_add(1, Ordering::Relaxed);
        Arc::new(Subscriber::new(id, selectors, private_allowed, payload))
    }

    /// Registers a subscriber. Returns the sequence number of the last update published before
    /// it: every later update reaches its queue, no earlier one does.
    pub fn subscribe(&self, sub: &Arc<Subscriber>) -> u64 {
        let seq = self.dispatch.lock();
        self.registry.insert(sub);
        self.metrics.subscribers.fetch_add(1, Ordering::Relaxed);
        *seq
    }

    /// Removes a subscriber (idempotent) and closes its queue.
    pub fn unsubscribe(&self, sub: &Subscriber, reason: CloseReason) {
        if let Some(w) = sub.queue.close(reason) {
            w.wake();
        }
        if self.registry.remove(sub) {
            self.metrics.subscribers.fetch_sub(1, Ordering::Relaxed);
        }
        if let Some(abort) = sub.conn_abort.get() {
            abort.notify_one();
        }
    }

    /// Fans an update out to every subscriber allowed to receive it.
    pub fn publish(&self, update: &Update) -> Dispatched {
        let now = Instant::now();
        let mut wakers = Vec::new();
        let mut evicted: Vec<(Arc<Subscriber>, CloseReason)> = Vec::new();
        let mut recipients = 0;
        let limits = &self.options.queue;
        let seq = {
            let mut last = self.dispatch.lock();
            *last += 1;
            let seq = *last;
            self.registry.for_each_candidate(update, |sub| {
                if !sub.may_receive(update) || !sub.claim(seq) {
                    return;
                }
                match sub.queue.push(&update.encoded, limits, now) {
                    Push::Queued => recipients += 1,
                    Push::Wake(w) => {
                        recipients += 1;
                        wakers.push(w);
                    }
                    Push::Evicted(reason, w) => {
                        wakers.extend(w);
                        evicted.push((sub.clone(), reason));
                    }
                    Push::Closed => {}
                }
            });
            seq
        };
        // The dispatch lock is released: now the costly part.
        for w in wakers {
            w.wake();
        }
        for (sub, reason) in &evicted {
            self.evict(sub, *reason);
        }
        self.metrics.published.fetch_add(1, Ordering::Relaxed);
        self.metrics.deliveries.fetch_add(recipients as u64, Ordering::Relaxed);
        Dispatched { seq, recipients, evicted: evicted.len() }
    }

    fn evict(&self, sub: &Subscriber, reason: CloseReason) {
        self.unsubscribe(sub, reason);
        self.metrics.evictions.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(subscriber = %sub.uuid.urn(), reason = reason.as_str(), "evicted slow subscriber");
    }

    /// Queues a heartbeat comment for every subscriber. Also how a stalled queue that receives
    /// no updates gets noticed (the push checks the stall bound).
    pub fn heartbeat(&self) {
        let now = Instant::now();
        let mut wakers = Vec::new();
        let mut evicted = Vec::new();
        self.registry.for_each(|sub| match sub.queue.push(&self.heartbeat, &self.options.queue, now) {
            Push::Wake(w) => wakers.push(w),
            Push::Evicted(reason, w) => {
                wakers.extend(w);
                evicted.push((sub.clone(), reason));
            }
            Push::Queued | Push::Closed => {}
        });
        wakers.into_iter().for_each(|w| w.wake());
        for (sub, reason) in &evicted {
            self.evict(sub, reason.to_owned());
        }
    }

    /// Ends every stream (shutdown). Queued events are still written first.
    pub fn close_all(&self) {
        for sub in self.registry.snapshot() {
            self.unsubscribe(&sub, CloseReason::Closed);
        }
    }
}
