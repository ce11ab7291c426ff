//! The per-subscriber bounded queue between the publish path and one connection writer.
//!
//! Publishers push already-encoded events (`Bytes`, shared by every recipient); the
//! connection's SSE body drains everything queued into one frame, so a burst costs one
//! write, not one per event.
//!
//! ## Memory
//! A queue that never received anything allocates nothing: the `VecDeque` grows on the first
//! push. A drained queue keeps a ring of at most 16 slots (256 bytes) so that steady traffic
//! does not allocate per delivery; a larger ring (after a burst) is released. So an idle
//! subscriber costs the size of [`Queue`] plus at most that, not a preallocated 1024-slot ring.
//!
//! ## Waking
//! Waking a task costs more than pushing to its queue, so a push wakes the writer only when
//! the writer has parked (found the queue empty and left its waker). The waker is handed back
//! to the caller, which wakes it *after* releasing every lock it holds.
//!
//! ## Slow consumers
//! Capacity is bounded twice: by count (`max_events`) and by bytes (`max_bytes`). A push that
//! would exceed either bound, or that finds the queue undrained for longer than the
//! `stall_timeout` (the `dispatch_timeout` directive), **evicts** the subscriber: the queue is
//! emptied, marked closed, and the writer is woken to end its stream. The client sees its
//! stream end and reconnects with `Last-Event-ID`, so the history replays what it missed;
//! nobody else waits for it. The caller logs and counts the eviction.

use std::collections::VecDeque;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;

/// Slots a drained queue keeps allocated (16 bytes each). Beyond it, the ring is freed.
const KEPT_SLOTS: usize = 16;

/// Bounds of one subscriber queue. Configurable with the `subscriber_queue_events`,
/// `subscriber_queue_bytes` and `dispatch_timeout` directives.
#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    /// Most events waiting for one subscriber. Default 1024.
    pub max_events: usize,
    /// Most bytes waiting for one subscriber. Default 4 MiB.
    pub max_bytes: usize,
    /// Longest time a non-empty queue may go without being drained before the subscriber is
    /// evicted. Default 5 s (the Go hub's `dispatch_timeout` default). Zero disables it.
    pub stall_timeout: Duration,
}

impl QueueLimits {
    /// The defaults, also those of the `subscriber_queue_*` and `dispatch_timeout` directives.
    pub const DEFAULT: QueueLimits =
        QueueLimits { max_events: 1024, max_bytes: 4 << 20, stall_timeout: Duration::from_secs(5) };
}

impl Default for QueueLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Why a queue stopped accepting events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Too many events waiting.
    FullEvents,
    /// Too many bytes waiting.
    FullBytes,
    /// Not drained within `stall_timeout`.
    Stalled,
    /// Closed by the hub (shutdown, token expiry, write timeout).
    Closed,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::FullEvents => "queue full (events)",
            CloseReason::FullBytes => "queue full (bytes)",
            CloseReason::Stalled => "queue not drained within dispatch_timeout",
            CloseReason::Closed => "closed",
        }
    }

    pub fn is_eviction(self) -> bool {
        !matches!(self, CloseReason::Closed)
    }
}

/// What a push did.
#[derive(Debug)]
pub enum Push {
    /// Queued; the writer was already awake or had data pending.
    Queued,
    /// Queued; the writer was parked and must be woken (after the caller drops its locks).
    Wake(Waker),
    /// This push evicted the subscriber; wake the writer so it ends the stream.
    Evicted(CloseReason, Option<Waker>),
    /// The queue was already closed; nothing to do.
    Closed,
}

pub struct Queue {
    /// parking_lot mutex: uncontended in the common case (one publisher dispatching, one
    /// writer draining), a few nanoseconds to take, and never held across an `.await`.
    inner: Mutex<Inner>,
}

struct Inner {
    events: VecDeque<Bytes>,
    bytes: usize,
    /// When the writer last drained (or the queue was created). Only read while non-empty.
    drained_at: Instant,
    /// The writer's waker while it is parked on an empty queue.
    parked: Option<Waker>,
    closed: Option<CloseReason>,
    /// The task awaiting [`Queue::wait_closed`] (the connection serving this subscriber),
    /// woken when the queue closes: the one signal that a subscription is over, whatever ended
    /// it (see the README's Lifecycle table). One waiter: a subscriber is served by one
    /// connection. A plain waker here, not a `Notify` beside the mutex: 16 bytes per subscriber
    /// instead of ~40, and no size change to what the publish path moves.
    close_waiter: Option<Waker>,
}

impl Default for Queue {
    fn default() -> Self {
        Self::new()
    }
}

impl Queue {
    pub fn new() -> Self {
        Queue {
            inner: Mutex::new(Inner {
                events: VecDeque::new(),
                bytes: 0,
                drained_at: Instant::now(),
                parked: None,
                closed: None,
                close_waiter: None,
            }),
        }
    }

    /// Pushes one event. Never blocks on the writer. `now` is taken once per fan-out by the
    /// caller, so a fan-out to many subscribers reads the clock once.
    pub fn push(&self, event: &Bytes, limits: &QueueLimits, now: Instant) -> Push {
        let mut inner = self.inner.lock();
        if inner.closed.is_some() {
            return Push::Closed;
        }
        let reason = if inner.events.len() >= limits.max_events {
            Some(CloseReason::FullEvents)
        } else if !inner.events.is_empty() && inner.bytes + event.len() > limits.max_bytes {
            // The byte bound limits the backlog: one event alone is always accepted, or an
            // update larger than the bound would evict every subscriber, again on every retry.
            Some(CloseReason::FullBytes)
        } else if !inner.events.is_empty()
            && !limits.stall_timeout.is_zero()
            && now.saturating_duration_since(inner.drained_at) > limits.stall_timeout
        {
            Some(CloseReason::Stalled)
        } else {
            None
        };
        if let Some(reason) = reason {
            let waker = inner.close(reason);
            return Push::Evicted(reason, waker);
        }
        if inner.events.is_empty() {
            inner.drained_at = now;
        }
        inner.bytes += event.len();
        inner.events.push_back(event.clone());
        match inner.parked.take() {
            Some(w) => Push::Wake(w),
            None => Push::Queued,
        }
    }

    /// Closes the queue (idempotent; the first reason stays) and signals
    /// [`Queue::wait_closed`]. Returns the writer's waker if it was parked, to be woken by the
    /// caller. Call it outside the dispatch lock: a push that evicts only marks the queue
    /// closed, and the hub calls this afterwards.
    pub fn close(&self, reason: CloseReason) -> Option<Waker> {
        let (writer, waiter) = {
            let mut inner = self.inner.lock();
            (inner.close(reason), inner.close_waiter.take())
        };
        if let Some(w) = waiter {
            w.wake();
        }
        writer
    }

    /// Resolves once the queue is closed (at once if it already is). Cancel safe. For the one
    /// task serving this subscriber's connection: a second concurrent waiter would replace the
    /// first one's waker.
    pub async fn wait_closed(&self) {
        std::future::poll_fn(|cx| {
            let mut inner = self.inner.lock();
            if inner.closed.is_some() {
                return Poll::Ready(());
            }
            match &mut inner.close_waiter {
                Some(w) => w.clone_from(cx.waker()),
                None => inner.close_waiter = Some(cx.waker().clone()),
            }
            Poll::Pending
        })
        .await
    }

    /// Why the queue is closed, if it is.
    pub fn closed(&self) -> Option<CloseReason> {
        self.inner.lock().closed
    }

    /// Number of events waiting (for metrics and tests).
    pub fn len(&self) -> usize {
        self.inner.lock().events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Events and bytes waiting (the queue-depth gauges, read at scrape time).
    pub fn depth(&self) -> (usize, usize) {
        let inner = self.inner.lock();
        (inner.events.len(), inner.bytes)
    }

    /// Drains everything queued, up to about `max_frame` bytes, into one buffer.
    ///
    /// `Ready(Some(bytes))` when something was queued; `Ready(None)` once the queue is closed
    /// and empty (the stream must end); `Pending` after leaving the waker to be woken by the
    /// next push. A single queued event is returned as is, without copying.
    pub fn poll_drain(&self, cx: &mut Context<'_>, max_frame: usize) -> Poll<Option<Bytes>> {
        let mut inner = self.inner.lock();
        if inner.events.is_empty() {
            if inner.closed.is_some() {
                return Poll::Ready(None);
            }
            match &mut inner.parked {
                Some(w) => w.clone_from(cx.waker()),
                None => inner.parked = Some(cx.waker().clone()),
            }
            return Poll::Pending;
        }
        inner.drained_at = Instant::now();
        let out = if inner.events.len() == 1 {
            let one = inner.events.pop_front().unwrap_or_default();
            inner.bytes -= one.len();
            one
        } else {
            let mut buf = BytesMut::with_capacity(inner.bytes.min(max_frame.max(1)));
            while let Some(front) = inner.events.front() {
                if !buf.is_empty() && buf.len() + front.len() > max_frame {
                    break;
                }
                let ev = inner.events.pop_front().unwrap_or_default();
                inner.bytes -= ev.len();
                buf.extend_from_slice(&ev);
            }
            buf.freeze()
        };
        if inner.events.is_empty() && inner.events.capacity() > KEPT_SLOTS {
            // Give a burst's memory back; a small ring is kept so that steady traffic does not
            // allocate and free on every delivery.
            inner.events = VecDeque::new();
        }
        Poll::Ready(Some(out))
    }
}

impl Inner {
    fn close(&mut self, reason: CloseReason) -> Option<Waker> {
        if self.closed.is_none() {
            self.closed = Some(reason);
            if reason.is_eviction() {
                // An evicted subscriber's backlog is useless: it will replay from history.
                self.events = VecDeque::new();
                self.bytes = 0;
            }
        }
        self.parked.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::task::Wake;

    struct Flag(std::sync::atomic::AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn limits(events: usize, bytes: usize) -> QueueLimits {
        QueueLimits { max_events: events, max_bytes: bytes, stall_timeout: Duration::ZERO }
    }

    #[test]
    fn drains_batches_in_order_and_parks_when_empty() {
        let q = Queue::new();
        let l = limits(10, 1000);
        let now = Instant::now();
        assert!(matches!(q.push(&Bytes::from_static(b"a"), &l, now), Push::Queued));
        assert!(matches!(q.push(&Bytes::from_static(b"b"), &l, now), Push::Queued));
        let flag = Arc::new(Flag(Default::default()));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        assert_eq!(q.poll_drain(&mut cx, 1024), Poll::Ready(Some(Bytes::from_static(b"ab"))));
        assert_eq!(q.poll_drain(&mut cx, 1024), Poll::Pending);
        match q.push(&Bytes::from_static(b"c"), &l, now) {
            Push::Wake(w) => w.wake(),
            other => panic!("expected a wake, got {other:?}"),
        }
        assert!(flag.0.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[test]
    fn respects_frame_cap() {
        let q = Queue::new();
        let l = limits(10, 1000);
        let now = Instant::now();
        for _ in 0..3 {
            q.push(&Bytes::from_static(b"xxxx"), &l, now);
        }
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert_eq!(q.poll_drain(&mut cx, 8), Poll::Ready(Some(Bytes::from_static(b"xxxxxxxx"))));
        assert_eq!(q.poll_drain(&mut cx, 8), Poll::Ready(Some(Bytes::from_static(b"xxxx"))));
    }

    #[test]
    fn evicts_on_event_and_byte_bounds() {
        let now = Instant::now();
        let q = Queue::new();
        let l = limits(2, 1000);
        q.push(&Bytes::from_static(b"a"), &l, now);
        q.push(&Bytes::from_static(b"b"), &l, now);
        assert!(matches!(q.push(&Bytes::from_static(b"c"), &l, now), Push::Evicted(CloseReason::FullEvents, _)));
        assert!(matches!(q.push(&Bytes::from_static(b"d"), &l, now), Push::Closed));
        let waker = Waker::noop();
        assert_eq!(q.poll_drain(&mut Context::from_waker(waker), 8), Poll::Ready(None));

        let q = Queue::new();
        let l = limits(100, 5);
        assert!(matches!(q.push(&Bytes::from_static(b"abcdefgh"), &l, now), Push::Queued), "one oversized event fits");
        let q = Queue::new();
        q.push(&Bytes::from_static(b"abc"), &l, now);
        assert!(matches!(q.push(&Bytes::from_static(b"def"), &l, now), Push::Evicted(CloseReason::FullBytes, _)));
    }

    #[test]
    fn evicts_a_stalled_queue() {
        let q = Queue::new();
        let l = QueueLimits { max_events: 100, max_bytes: 1000, stall_timeout: Duration::from_secs(1) };
        let t0 = Instant::now();
        q.push(&Bytes::from_static(b"a"), &l, t0);
        assert!(matches!(q.push(&Bytes::from_static(b"b"), &l, t0 + Duration::from_millis(500)), Push::Queued));
        assert!(matches!(
            q.push(&Bytes::from_static(b"c"), &l, t0 + Duration::from_secs(2)),
            Push::Evicted(CloseReason::Stalled, _)
        ));
    }

    #[test]
    fn closing_lets_the_writer_finish_what_is_queued() {
        let q = Queue::new();
        let l = limits(10, 1000);
        q.push(&Bytes::from_static(b"a"), &l, Instant::now());
        q.close(CloseReason::Closed);
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert_eq!(q.poll_drain(&mut cx, 8), Poll::Ready(Some(Bytes::from_static(b"a"))));
        assert_eq!(q.poll_drain(&mut cx, 8), Poll::Ready(None));
    }

    #[tokio::test]
    async fn wait_closed_resolves_on_close_and_at_once_after_it() {
        let q = Arc::new(Queue::new());
        let waiter = tokio::spawn({
            let q = q.clone();
            async move { q.wait_closed().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "not closed yet");
        // An eviction inside a push only marks the queue closed; the hub's `close` signals.
        let event = Bytes::from_static(b"x");
        let tight = limits(1, 1024);
        assert!(matches!(q.push(&event, &tight, Instant::now()), Push::Queued | Push::Wake(_)));
        assert!(matches!(q.push(&event, &tight, Instant::now()), Push::Evicted(..)));
        q.close(CloseReason::Closed);
        tokio::time::timeout(Duration::from_secs(5), waiter).await.expect("woken").expect("task");
        assert_eq!(q.closed(), Some(CloseReason::FullEvents), "the first reason stays");
        tokio::time::timeout(Duration::from_secs(1), q.wait_closed()).await.expect("already closed");
    }
}
