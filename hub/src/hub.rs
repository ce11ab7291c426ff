//! The hub: publish → match → enqueue, and the subscriber lifecycle.
//!
//! ## Ordering
//! Every update gets a sequence number, and fan-outs happen in sequence order under the
//! *dispatch lock*. That lock covers only non-blocking work: the sequence number, the history
//! window's push (and its trim), the durable store's hand-over (a channel push of the
//! `Arc<Update>`, the sequence number, the publish time read once before the lock and the
//! trim point: the store encodes and writes on its own thread), and index look-ups and queue
//! pushes (tens of nanoseconds per recipient). Wakes, logging and I/O happen after it is
//! released.
//! What it buys: every subscriber sees updates in the same (publish) order, and a new
//! subscription is registered at a precise point of that order — the history replay (`lastEventID`)
//! sends exactly the updates before that point and the queue holds exactly those after it, so
//! replay and live traffic never overlap nor leave a gap.
//!
//! ## Several nodes
//! With a [`Relay`] (the Redis transport, see `cluster`), a publish is not dispatched here: it
//! is handed to the relay ([`Hub::submit`]), which appends it to the shared log, and every
//! node — this one included — dispatches the log's entries in log order with
//! [`Hub::dispatch_remote`]. The dispatch lock then orders the log's entries on this node
//! exactly as it orders local publishes on a single node, so the replay/live split above holds
//! unchanged.
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

use crate::history::{Ack, Persistence, Replay, Retention, Window, durable::Loaded, window::now_ms};
use crate::metrics::{DirectWrites, Metrics};
use crate::queue::{CloseReason, Push, QueueLimits, Wrote};
use crate::registry::{Registry, TooManyTemplates};
use crate::sse;
use crate::subscriber::Subscriber;
use crate::subscriptions;
use crate::topic::{CompileError, MatchKind, MatcherSpec, Selector, SelectorCompiler, TemplateError, TemplateLimits};
use crate::update::Update;

/// Settings of the in-process hub (the server adds HTTP-level ones).
#[derive(Debug, Clone)]
pub struct HubOptions {
    pub queue: QueueLimits,
    /// Most distinct templates subscribed to at once, hub-wide (`max_templates`). Default
    /// 1000.
    pub max_templates: usize,
    /// Most distinct templates in one subscription (`max_templates_per_subscription`).
    /// Default 16.
    pub max_templates_per_subscription: usize,
    /// What one template may contain (length, expressions, variables).
    pub template_limits: TemplateLimits,
    /// What the history keeps for replay.
    pub retention: Retention,
    /// Most publishes waiting for the durable store at once; further publishers wait for a
    /// place (back-pressure from the disk). Default 1024.
    pub max_pending_writes: usize,
    /// Publish an event when a subscription starts or ends (the `subscriptions` directive).
    pub subscription_events: bool,
    /// What relative URL patterns and topics are resolved against (the hub's public URL).
    pub pattern_base: Option<url::Url>,
    /// Publishes write to idle HTTP/1 subscribers' sockets themselves instead of waking each
    /// connection's task (`direct_writes`; see `queue`'s "Direct writes"). Default on.
    pub direct_writes: bool,
}

impl Default for HubOptions {
    fn default() -> Self {
        HubOptions {
            queue: QueueLimits::default(),
            max_templates: 1_000,
            max_templates_per_subscription: 16,
            template_limits: TemplateLimits::default(),
            retention: Retention::default(),
            max_pending_writes: 1024,
            subscription_events: false,
            direct_writes: true,
            pattern_base: None,
        }
    }
}

/// Why a subscription's selectors were refused (each is a 400 with this message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("{0}")]
    Template(#[from] TemplateError),
    #[error("{0}")]
    Pattern(#[from] crate::topic::PatternError),
    #[error("more than {0} distinct templates in one subscription")]
    TooManyInSubscription(usize),
    #[error("{0}")]
    TooManyInHub(#[from] TooManyTemplates),
}

/// What one publish did, and how to learn when it is durable.
pub struct Published {
    pub dispatched: Dispatched,
    /// Resolves once the durable store has the update; `None` without one.
    pub durable: Option<Ack>,
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

/// Where updates go when several nodes share one log (see the module docs).
pub trait Relay: Send + Sync {
    /// Appends `update` to the shared log. With `ack`, the returned receiver resolves once the
    /// log has it (the publisher's `200` waits for that); without, nobody waits (subscription
    /// events). Never blocks: called from synchronous code, the dispatch lock released.
    fn send(&self, update: Arc<Update>, ack: bool) -> Option<Ack>;
    /// A subscription started (`active`) or ended on this node: what other nodes list.
    /// Called before the matching events are sent, in the same order.
    fn subscription(&self, sub: &Subscriber, active: bool);
}

/// The subscription-event queue of [`Hub::announce`].
#[derive(Default)]
struct Announcements {
    queue: std::collections::VecDeque<Update>,
    /// A thread is publishing the queue; others only add to it.
    draining: bool,
}

pub struct Hub {
    registry: Registry,
    compiler: SelectorCompiler,
    /// The last sequence number handed out; the dispatch lock (see module docs). parking_lot:
    /// fair enough under contention and never held across an `.await`.
    dispatch: Mutex<u64>,
    /// The retained history. Appended under the dispatch lock; read by replays, which take
    /// only this lock (parking_lot: short critical sections, no `.await` inside).
    window: Mutex<Window>,
    persistence: Option<Box<dyn Persistence>>,
    /// Several nodes: publishes go to the shared log (see the module docs).
    relay: Option<Box<dyn Relay>>,
    /// Bounds the publishes waiting on the durable store (see `HubOptions`).
    admission: Arc<tokio::sync::Semaphore>,
    options: HubOptions,
    next_subscriber: AtomicU64,
    /// Subscription events waiting to be published (see [`Hub::announce`]). parking_lot: held
    /// for a push or a pop, never while publishing.
    announcements: Mutex<Announcements>,
    heartbeat: Bytes,
    pub metrics: Metrics,
}

impl Hub {
    /// A hub whose history lives in memory only.
    pub fn new(options: HubOptions) -> Self {
        Self::with_persistence(options, None, Vec::new())
    }

    /// A hub whose history is mirrored to `persistence`, starting from what it `loaded`.
    pub fn with_persistence(
        options: HubOptions,
        persistence: Option<Box<dyn Persistence>>,
        loaded: Vec<Loaded>,
    ) -> Self {
        let mut window = Window::new(options.retention.clone());
        let mut last_seq = 0;
        for (seq, at_ms, update) in loaded {
            window.push(seq, Arc::new(update), at_ms);
            last_seq = last_seq.max(seq);
        }
        Hub {
            registry: Registry::new(options.max_templates),
            compiler: match &options.pattern_base {
                Some(base) => SelectorCompiler::with_base(options.template_limits, base.clone()),
                None => SelectorCompiler::new(options.template_limits),
            },
            dispatch: Mutex::new(last_seq),
            window: Mutex::new(window),
            persistence,
            relay: None,
            admission: Arc::new(tokio::sync::Semaphore::new(options.max_pending_writes.max(1))),
            options,
            next_subscriber: AtomicU64::new(1),
            announcements: Mutex::new(Announcements::default()),
            heartbeat: Bytes::from_static(sse::HEARTBEAT),
            metrics: Metrics::default(),
        }
    }

    /// A hub whose updates go through `relay` (several nodes), starting from the log's tail
    /// (`loaded`, oldest first).
    pub fn with_relay(options: HubOptions, relay: Box<dyn Relay>, loaded: Vec<Loaded>) -> Self {
        let mut hub = Self::with_persistence(options, None, loaded);
        hub.relay = Some(relay);
        hub
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

    /// Builds a subscriber (not yet registered). Refused when a template is past the template
    /// limits, or when the subscription names more distinct templates than allowed.
    pub fn new_subscriber<S: AsRef<str>>(
        &self,
        selectors: &[S],
        private_allowed: Option<Arc<[Selector]>>,
        payload: Option<Arc<serde_json::Value>>,
    ) -> Result<Arc<Subscriber>, SelectorError> {
        self.build_subscriber(&MatcherSpec::legacy_all(selectors), private_allowed, payload).map(Arc::new)
    }

    /// Builds a subscriber from selectors of any kind (not yet registered, not yet shared, so
    /// the caller may still mark it 1.0). The per-subscription cap counts distinct 0.x
    /// templates and 1.0 URL patterns together.
    pub fn build_subscriber(
        &self,
        specs: &[MatcherSpec],
        private_allowed: Option<Arc<[Selector]>>,
        payload: Option<Arc<serde_json::Value>>,
    ) -> Result<Subscriber, SelectorError> {
        let max = self.options.max_templates_per_subscription;
        let mut patterns: Vec<&MatcherSpec> = Vec::new();
        for s in specs {
            let is_pattern = s.text != "*"
                && match s.kind {
                    MatchKind::Legacy => crate::topic::template::is_template(&s.text),
                    MatchKind::UrlPattern => true,
                    MatchKind::Exact => false,
                };
            if is_pattern && !patterns.contains(&s) {
                patterns.push(s);
                if patterns.len() > max {
                    return Err(SelectorError::TooManyInSubscription(max));
                }
            }
        }
        let selectors = specs
            .iter()
            .map(|s| {
                self.compiler.compile_spec(s).map_err(|e| match e {
                    CompileError::Template(t) => SelectorError::Template(t),
                    CompileError::Pattern(p) => SelectorError::Pattern(p),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let id = self.next_subscriber.fetch_add(1, Ordering::Relaxed);
        Ok(Subscriber::new(id, selectors, private_allowed, payload))
    }

    /// Registers a subscriber. Returns the sequence number of the last update published before
    /// it: every later update reaches its queue, no earlier one does.
    ///
    /// With subscription events on, the subscription's "created" events are published right
    /// after (so they are in the subscriber's own queue if it listens to them).
    ///
    /// Refused, with nothing registered, when its templates would take the hub past
    /// `max_templates`.
    pub fn subscribe(&self, sub: &Arc<Subscriber>) -> Result<u64, SelectorError> {
        let seq = {
            let seq = self.dispatch.lock();
            self.registry.insert(sub)?;
            *seq
        };
        self.metrics.subscribers.fetch_add(1, Ordering::Relaxed);
        self.metrics.subscribers_total.fetch_add(1, Ordering::Relaxed);
        self.mirror(sub, true);
        self.announce(sub, true);
        Ok(seq)
    }

    /// Publishes `sub`'s subscription events. Their durability is not awaited: nobody is
    /// waiting for a 200 here, and they are in the window (for replay) at once.
    ///
    /// Never recursive: publishing an announcement can evict a subscriber, whose end is
    /// announced in turn. Such nested announcements are only queued; the outermost call
    /// publishes the queue until it is empty, so a cascade of evictions is a loop, not a stack
    /// that grows with it. Always called with the dispatch lock released.
    fn announce(&self, sub: &Subscriber, active: bool) {
        if !self.options.subscription_events {
            return;
        }
        {
            let mut pending = self.announcements.lock();
            pending.queue.extend(subscriptions::events(sub, active));
            if pending.draining {
                return;
            }
            pending.draining = true;
        }
        loop {
            let next = {
                let mut pending = self.announcements.lock();
                match pending.queue.pop_front() {
                    Some(update) => update,
                    None => {
                        pending.draining = false;
                        return;
                    }
                }
            };
            match &self.relay {
                Some(relay) => {
                    relay.send(Arc::new(next), false);
                }
                None => {
                    self.publish(Arc::new(next));
                }
            }
        }
    }

    /// Tells the relay (several nodes) that `sub` started or ended, when subscriptions are
    /// listed at all.
    fn mirror(&self, sub: &Subscriber, active: bool) {
        if let (true, Some(relay)) = (self.options.subscription_events, &self.relay) {
            relay.subscription(sub, active);
        }
    }

    /// The Prometheus text of [`Metrics`], with the gauges read from their owners first.
    ///
    /// Queue depth visits every subscriber's queue (a short lock each, shard by shard, never
    /// blocking publishes for long): O(subscribers) per scrape (not measured yet), instead of a
    /// shared counter that every push on every core would touch.
    pub fn render_metrics(&self) -> String {
        self.metrics.templates.store(self.registry.template_count() as u64, Ordering::Relaxed);
        let mut sampled = crate::metrics::Sampled::default();
        self.registry.for_each(|sub| {
            let (events, bytes) = sub.queue.depth();
            sampled.queued_events += events as u64;
            sampled.queued_bytes += bytes as u64;
        });
        {
            let window = self.window.lock();
            sampled.history_updates = window.len() as u64;
            sampled.history_bytes = window.bytes() as u64;
        }
        let mut out = self.metrics.render(&sampled);
        if let Some(p) = &self.persistence {
            p.render_metrics(&mut out);
        }
        out
    }

    /// The durable store's health (always `Ok` without one).
    pub fn history_health(&self) -> crate::history::StoreHealth {
        self.persistence.as_ref().map_or(crate::history::StoreHealth::Ok, |p| p.health())
    }

    /// The id of the newest update in the history, if any (the API's `lastEventID`).
    pub fn last_event_id(&self) -> Option<String> {
        self.window.lock().last_id()
    }

    /// Removes a subscriber (idempotent) and closes its queue.
    pub fn unsubscribe(&self, sub: &Subscriber, reason: CloseReason) {
        let was_registered = self.registry.remove(sub);
        self.end(sub, reason, was_registered);
    }

    /// The one place a subscription ends: close the queue — which wakes its writer and
    /// signals `Queue::wait_closed`, on which every connection serving it stops waiting for a
    /// client that no longer reads — and, if the subscriber had still been registered, count
    /// and announce its end.
    fn end(&self, sub: &Subscriber, reason: CloseReason, was_registered: bool) {
        if let Some(w) = sub.queue.close(reason) {
            w.wake();
        }
        if was_registered {
            self.metrics.subscribers.fetch_sub(1, Ordering::Relaxed);
            self.mirror(sub, false);
            self.announce(sub, false);
        }
    }

    /// Waits for a place among the publishes pending on the durable store (immediate without
    /// one). Hold the permit until the publish's `durable` ack resolves.
    pub async fn admit(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        if self.persistence.is_none() && self.relay.is_none() {
            return None;
        }
        self.admission.clone().acquire_owned().await.ok()
    }

    /// The retained updates after `from` (an id or `earliest`) up to sequence `upto` (what
    /// [`Hub::subscribe`] returned), for a reconnecting subscriber.
    pub fn replay(&self, from: &str, upto: u64) -> Replay {
        self.window.lock().replay(from, upto)
    }

    /// Updates retained in the history now.
    pub fn history_len(&self) -> usize {
        self.window.lock().len()
    }

    /// Flushes and stops the durable store (shutdown).
    pub fn close_history(&self) {
        if let Some(p) = &self.persistence {
            p.close();
        }
    }

    /// A publisher's update: to the shared log with a relay (dispatched when it comes back
    /// from it), else [`Hub::publish`]ed here. The ack, if any, says when it is stored.
    pub fn submit(&self, update: Arc<Update>) -> Option<Ack> {
        match &self.relay {
            Some(relay) => relay.send(update, true),
            None => self.publish(update).durable,
        }
    }

    /// Records an update in the history, fans it out to every subscriber allowed to receive
    /// it, and hands it to the durable store.
    pub fn publish(&self, update: Arc<Update>) -> Published {
        self.dispatch(update, now_ms(), true)
    }

    /// An entry of the shared log (several nodes), published at `at_ms` by the log's clock:
    /// recorded in the window and fanned out, as [`Hub::publish`] does, without the durable
    /// store (the log is the store).
    pub fn dispatch_remote(&self, update: Arc<Update>, at_ms: u64) -> Dispatched {
        self.dispatch(update, at_ms, false).dispatched
    }

    fn dispatch(&self, update: Arc<Update>, at_ms: u64, persist: bool) -> Published {
        let now = Instant::now();
        let mut durable = None;
        let mut wakers = Vec::new();
        let mut direct = Vec::new();
        let mut evicted: Vec<(Arc<Subscriber>, CloseReason)> = Vec::new();
        let mut recipients = 0;
        let limits = &self.options.queue;
        // Direct writes while the last fan-outs' writes are done; while they are still being
        // written the hub is busy, and waking the writers lets each of them send everything
        // queued by then in one write (fewer, larger segments for the clients to read).
        let direct_ok = self.options.direct_writes && self.metrics.direct.in_flight.load(Ordering::Relaxed) == 0;
        // Template matching (regexes) before the lock, so the locked pass finds the answers
        // cached (see `registry`).
        self.registry.prematch(&update);
        let seq = {
            let mut last = self.dispatch.lock();
            *last += 1;
            let seq = *last;
            let trim_below = self.window.lock().push(seq, update.clone(), at_ms);
            if let (true, Some(p)) = (persist, &self.persistence) {
                durable = Some(p.append(seq, &update, at_ms, trim_below));
            }
            let update = &*update;
            let mut grant_memo = None;
            self.registry.for_each_candidate(update, |sub| {
                if !sub.may_receive_memo(update, &mut grant_memo) || !sub.claim(seq) {
                    return;
                }
                match sub.queue.push_with(&update.encoded, limits, now, direct_ok) {
                    Push::Queued => recipients += 1,
                    Push::Wake(w) => {
                        recipients += 1;
                        wakers.push(w);
                    }
                    Push::Direct => {
                        recipients += 1;
                        direct.push(sub.clone());
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
        flush_direct(direct, now, &self.metrics.direct);
        for (sub, reason) in &evicted {
            self.evict(sub, *reason);
        }
        self.metrics.published.fetch_add(1, Ordering::Relaxed);
        self.metrics.deliveries.fetch_add(recipients as u64, Ordering::Relaxed);
        Published { dispatched: Dispatched { seq, recipients, evicted: evicted.len() }, durable }
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
        let mut direct = Vec::new();
        let mut evicted = Vec::new();
        let direct_ok = self.options.direct_writes && self.metrics.direct.in_flight.load(Ordering::Relaxed) == 0;
        self.registry.for_each(|sub| match sub.queue.push_with(&self.heartbeat, &self.options.queue, now, direct_ok) {
            Push::Wake(w) => wakers.push(w),
            Push::Direct => direct.push(sub.clone()),
            Push::Evicted(reason, w) => {
                wakers.extend(w);
                evicted.push((sub.clone(), reason));
            }
            Push::Queued | Push::Closed => {}
        });
        wakers.into_iter().for_each(|w| w.wake());
        flush_direct(direct, now, &self.metrics.direct);
        for (sub, reason) in &evicted {
            self.evict(sub, reason.to_owned());
        }
    }

    /// Ends every stream (shutdown). Queued events are still written first. The registry is
    /// emptied in one go; each subscriber's queue is then closed and its end announced.
    pub fn close_all(&self) {
        for sub in self.registry.drain() {
            self.end(&sub, CloseReason::Closed, true);
        }
    }
}

/// One task of a split fan-out, counted in `DirectWrites::in_flight` until dropped.
struct InFlight(Arc<DirectWrites>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Fan-outs up to this many direct writes run on the publishing task; larger ones are split.
const DIRECT_INLINE: usize = 64;
/// Direct writes per task when a large fan-out is split (a few milliseconds of writes each).
const DIRECT_CHUNK: usize = 256;

/// Writes an update to the subscribers whose writers lent their sockets ([`Push::Direct`]).
/// A large fan-out is split into tasks of [`DIRECT_CHUNK`] writes, so every runtime worker
/// takes part and the publisher's own answer does not wait for all of them; outside a runtime
/// (tests, tools) everything runs here. Ordering is the queues': each flush writes what its
/// queue holds, in order, under that queue's lock.
fn flush_direct(mut subs: Vec<Arc<Subscriber>>, now: Instant, counts: &Arc<DirectWrites>) {
    fn flush(subs: &[Arc<Subscriber>], now: Instant, counts: &DirectWrites) {
        let (mut whole, mut partial) = (0, 0);
        for sub in subs {
            let flushed = sub.queue.flush_direct(now);
            match flushed.wrote {
                Wrote::All => whole += 1,
                Wrote::Part => partial += 1,
                Wrote::Nothing => {}
            }
            if let Some(w) = flushed.wake {
                w.wake();
            }
        }
        counts.whole.fetch_add(whole, Ordering::Relaxed);
        counts.partial.fetch_add(partial, Ordering::Relaxed);
    }
    if subs.is_empty() {
        return;
    }
    if subs.len() <= DIRECT_INLINE {
        return flush(&subs, now, counts);
    }
    let Ok(rt) = tokio::runtime::Handle::try_current() else { return flush(&subs, now, counts) };
    while !subs.is_empty() {
        let chunk: Vec<_> = subs.drain(subs.len().saturating_sub(DIRECT_CHUNK)..).collect();
        let counts = counts.clone();
        counts.in_flight.fetch_add(1, Ordering::Relaxed);
        // Counted down when the task ends or is dropped unrun, whatever happens.
        let done = InFlight(counts);
        rt.spawn(async move { flush(&chunk, now, &done.0) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::{Context, Poll, Waker};

    fn up(id: &str, topics: &[&str]) -> Arc<Update> {
        Arc::new(Update::new(id.into(), topics.iter().map(|t| t.to_string()).collect(), false, None, None, "d".into()))
    }

    fn drained(sub: &Subscriber) -> String {
        let mut cx = Context::from_waker(Waker::noop());
        match sub.queue.poll_drain(&mut cx, usize::MAX) {
            Poll::Ready(Some(b)) => String::from_utf8_lossy(&b).into_owned(),
            _ => String::new(),
        }
    }

    #[test]
    fn replay_and_queue_split_exactly_at_the_subscription_point() {
        let hub = Hub::new(HubOptions::default());
        hub.publish(up("a", &["t"]));
        hub.publish(up("b", &["t"]));
        let sub = hub.new_subscriber(&["t"], None, None).unwrap();
        let upto = hub.subscribe(&sub).unwrap();
        hub.publish(up("c", &["t"]));
        let replay: Vec<_> = hub.replay("a", upto).updates.iter().map(|u| u.id.to_string()).collect();
        assert_eq!(replay, ["b"], "the replay stops at the subscription point");
        assert_eq!(drained(&sub), "id: c\ndata: d\n\n", "the queue starts right after it");
    }

    #[test]
    fn private_updates_reach_exactly_the_granted_subscribers_with_shared_grants() {
        let hub = Hub::new(HubOptions::default());
        let spec = |s: &str| MatcherSpec::legacy_all(&[s]);
        let grant_a = hub.compiler().compile_grants(&spec("https://e.com/a/{id}")).unwrap();
        let grant_b = hub.compiler().compile_grants(&spec("https://e.com/b/{id}")).unwrap();
        assert!(Arc::ptr_eq(&grant_a, &hub.compiler().compile_grants(&spec("https://e.com/a/{id}")).unwrap()));
        // Interleaved, so the per-publish memo switches between grants.
        let subs: Vec<_> = (0..6)
            .map(|i| {
                let grant = match i % 3 {
                    0 => Some(grant_a.clone()),
                    1 => Some(grant_b.clone()),
                    _ => None,
                };
                let s = hub.new_subscriber(&["*"], grant, None).unwrap();
                hub.subscribe(&s).unwrap();
                s
            })
            .collect();
        let private = Arc::new(Update::new("p".into(), vec!["https://e.com/a/1".into()], true, None, None, "d".into()));
        assert_eq!(hub.publish(private).dispatched.recipients, 2);
        let got: Vec<usize> = subs.iter().map(|s| s.queue.len()).collect();
        assert_eq!(got, [1, 0, 0, 1, 0, 0]);
    }

    #[test]
    fn one_delivery_per_update_whatever_the_number_of_matching_paths() {
        let hub = Hub::new(HubOptions::default());
        let sub = hub.new_subscriber(&["https://e.com/a", "https://e.com/{x}", "*"], None, None).unwrap();
        hub.subscribe(&sub).unwrap();
        let d = hub.publish(up("1", &["https://e.com/a", "https://e.com/b"])).dispatched;
        assert_eq!(d.recipients, 1);
        assert_eq!(sub.queue.len(), 1);
    }

    #[test]
    fn an_overflowing_subscriber_is_evicted_and_the_others_are_not() {
        let options = HubOptions {
            queue: QueueLimits { max_events: 2, max_bytes: 1 << 20, stall_timeout: std::time::Duration::ZERO },
            ..HubOptions::default()
        };
        let hub = Hub::new(options);
        let slow = hub.new_subscriber(&["t"], None, None).unwrap();
        let fast = hub.new_subscriber(&["t"], None, None).unwrap();
        hub.subscribe(&slow).unwrap();
        hub.subscribe(&fast).unwrap();
        for i in 0..3 {
            hub.publish(up(&i.to_string(), &["t"]));
            drained(&fast);
        }
        assert_eq!(slow.queue.closed(), Some(CloseReason::FullEvents));
        assert_eq!(fast.queue.closed(), None);
        assert_eq!(hub.metrics.evictions.load(Ordering::Relaxed), 1);
        assert_eq!(hub.registry().len(), 1, "the evicted subscriber left the registry");
    }
}
