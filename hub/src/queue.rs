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
//! ## Direct writes
//! A connection written by the hub's own HTTP/1 writer may lend its socket to the queue
//! ([`Queue::set_direct`]). Then a push that finds the writer parked does not wake it: the
//! publisher, after releasing its locks, calls [`Queue::flush_direct`], which writes what is
//! queued straight to the socket with one non-blocking vectored write, under this queue's lock.
//! A 10,000-subscriber fan-out so costs 10,000 writes instead of 10,000 task wake-ups, polls
//! and writes. Invariants that keep the stream intact:
//! - `parked` is `Some` only while the writer has nothing in flight: it is set when
//!   [`Queue::poll_drain`] finds the queue empty and cleared when it hands out bytes, so a
//!   direct write never interleaves with one of the writer's.
//! - A direct write that the socket takes only in part leaves the rest, already framed, as the
//!   *spill*; the writer is woken and writes the spill ([`Queue::take_spill`]) before anything
//!   else, and no direct write happens while a spill waits.
//! - A socket that would block gets nothing written: the events stay queued and the writer is
//!   woken, which waits for the socket as it always did.
//! - The writer takes the socket back ([`Queue::set_direct`] with `None`) before it writes
//!   anything after the stream's end, and a closed queue is never written directly.
//!
//! ## Slow consumers
//! Capacity is bounded twice: by count (`max_events`) and by bytes (`max_bytes`). A push that
//! would exceed either bound, or that finds the queue undrained for longer than the
//! `stall_timeout` (the `dispatch_timeout` directive), **evicts** the subscriber: the queue is
//! emptied, marked closed, and the writer is woken to end its stream. The client sees its
//! stream end and reconnects with `Last-Event-ID`, so the history replays what it missed;
//! nobody else waits for it. The caller logs and counts the eviction.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;

/// Slots a drained queue keeps allocated (16 bytes each). Beyond it, the ring is freed.
const KEPT_SLOTS: usize = 16;

/// Most bytes written in one frame, by the writer or directly; a larger backlog goes out over
/// several frames.
pub const MAX_FRAME: usize = 64 * 1024;

/// Most queued events one direct write carries (a longer backlog is the writer's job).
const DIRECT_MAX_EVENTS: usize = 8;
/// Frames up to this size are copied into one stack buffer for a plain `send` (see
/// [`Queue::flush_direct`]); larger ones go out as a vectored write.
const DIRECT_COPY: usize = 1024;

/// A socket the publish path may write to directly (see the module docs): the connection's
/// writer lends it while it streams.
pub trait DirectSink: Send + Sync {
    /// One non-blocking write; `WouldBlock` when the socket's buffer is full.
    fn try_write(&self, buf: &[u8]) -> io::Result<usize>;
    /// One non-blocking vectored write; `WouldBlock` when the socket's buffer is full.
    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
    /// Whether the stream uses HTTP/1.1 chunked encoding (else bytes go out as they are).
    fn chunked(&self) -> bool;
}

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
    /// Queued; the writer is parked and lent its socket: call [`Queue::flush_direct`] (after
    /// the caller drops its locks) instead of waking it.
    Direct,
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
    /// The connection's socket while its writer lends it (see the module docs). Boxed: the
    /// queue of a subscriber without one (HTTP/2, TLS, in-process) grows by a pointer only.
    lent: Option<Box<Lent>>,
}

/// A lent socket and what a direct write left unwritten.
struct Lent {
    sink: Arc<dyn DirectSink>,
    /// The unwritten rest of a direct write, already framed: the writer's next bytes.
    /// Invariant: while it is `Some`, the writer is not parked until it has taken it (it was
    /// woken when it was set, and takes it before it polls the queue again), so no push offers
    /// a direct write behind it; [`Queue::flush_direct`] checks it anyway.
    spill: Option<Bytes>,
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
                lent: None,
            }),
        }
    }

    /// Pushes one event. Never blocks on the writer. `now` is taken once per fan-out by the
    /// caller, so a fan-out to many subscribers reads the clock once.
    #[inline]
    pub fn push(&self, event: &Bytes, limits: &QueueLimits, now: Instant) -> Push {
        self.push_with(event, limits, now, true)
    }

    /// [`Queue::push`], with `direct` saying whether a direct write may be offered
    /// ([`Push::Direct`]); without it a parked writer is woken as usual.
    #[inline]
    pub fn push_with(&self, event: &Bytes, limits: &QueueLimits, now: Instant, direct: bool) -> Push {
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
        // The lent socket first: without one (hyper-served streams, in-process subscribers)
        // this costs one test.
        if direct && inner.lent.is_some() && inner.parked.is_some() {
            return Push::Direct;
        }
        match inner.parked.take() {
            Some(w) => Push::Wake(w),
            None => Push::Queued,
        }
    }

    /// Lends (`Some`) or takes back (`None`) the connection's socket for direct writes. The
    /// writer takes it back before it writes anything after the stream's end.
    pub fn set_direct(&self, sink: Option<Arc<dyn DirectSink>>) {
        self.inner.lock().lent = sink.map(|sink| Box::new(Lent { sink, spill: None }));
    }

    /// The rest of a direct write that the socket took only in part, already framed: the
    /// writer must send it before anything else. Direct writes resume once it is taken.
    pub fn take_spill(&self) -> Option<Bytes> {
        self.inner.lock().lent.as_mut()?.spill.take()
    }

    /// After a [`Push::Direct`]: writes what is queued straight to the lent socket if the
    /// writer is still parked, else leaves it to the writer. Returns what was written and the
    /// writer's waker when it must be woken (the socket would block, took only part, or
    /// failed); wake it without holding other locks. Holds this queue's lock across one
    /// non-blocking write.
    pub fn flush_direct(&self, now: Instant) -> Flushed {
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        if inner.closed.is_some() || inner.parked.is_none() || inner.events.is_empty() {
            // Closed: the close woke the writer. Not parked: the writer is running and drains
            // what is queued itself. Nothing queued: nothing to do here.
            return Flushed::NOTHING;
        }
        let Some(lent) = inner.lent.as_ref() else { return Flushed::wake(Wrote::Nothing, inner.parked.take()) };
        if lent.spill.is_some() {
            // The writer was woken for it and writes it first, then what is queued.
            return Flushed::NOTHING;
        }
        let sink = &lent.sink;
        let mut count = 0;
        let mut len = 0;
        for ev in inner.events.iter().take(DIRECT_MAX_EVENTS) {
            if count > 0 && len + ev.len() > MAX_FRAME {
                break;
            }
            count += 1;
            len += ev.len();
        }
        let mut header_buf = [0u8; 18];
        let (header, trailer): (&[u8], &[u8]) =
            if sink.chunked() { (chunk_header(len, &mut header_buf), b"\r\n") } else { (b"", b"") };
        let mut slices: [IoSlice<'_>; DIRECT_MAX_EVENTS + 2] = [IoSlice::new(b""); DIRECT_MAX_EVENTS + 2];
        slices[0] = IoSlice::new(header);
        for (slot, ev) in slices[1..].iter_mut().zip(inner.events.iter().take(count)) {
            *slot = IoSlice::new(ev);
        }
        slices[count + 1] = IoSlice::new(trailer);
        let total = header.len() + len + trailer.len();
        let slices = &slices[..count + 2];
        let written = if total <= DIRECT_COPY {
            // A small frame is copied into one buffer and sent with `send(2)`, which skips the
            // VFS layer (`writev`'s file-position lock and iovec import): measurably cheaper per
            // delivery than the copy of a few hundred bytes it costs.
            let mut frame = [0u8; DIRECT_COPY];
            let mut at = 0;
            for s in slices {
                frame[at..at + s.len()].copy_from_slice(s);
                at += s.len();
            }
            sink.try_write(&frame[..total])
        } else {
            sink.try_write_vectored(slices)
        };
        let written = match written {
            Ok(n) if n > 0 => n,
            Ok(_) => return Flushed::wake(Wrote::Nothing, inner.parked.take()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Flushed::wake(Wrote::Nothing, inner.parked.take()),
            Err(_) => {
                // The writer finds the failure itself on its next write; stop writing here.
                inner.lent = None;
                return Flushed::wake(Wrote::Nothing, inner.parked.take());
            }
        };
        let rest = (written < total).then(|| {
            let mut rest = BytesMut::with_capacity(total - written);
            let mut skip = written;
            for s in slices {
                let s: &[u8] = s;
                if skip >= s.len() {
                    skip -= s.len();
                } else {
                    rest.extend_from_slice(&s[skip..]);
                    skip = 0;
                }
            }
            rest.freeze()
        });
        for _ in 0..count {
            if let Some(ev) = inner.events.pop_front() {
                inner.bytes -= ev.len();
            }
        }
        inner.drained_at = now;
        if inner.events.is_empty() && inner.events.capacity() > KEPT_SLOTS {
            inner.events = VecDeque::new();
        }
        match rest {
            None if inner.events.is_empty() => Flushed { wrote: Wrote::All, wake: None },
            // More is queued than one direct write carries: the writer takes it from here.
            None => Flushed::wake(Wrote::All, inner.parked.take()),
            Some(rest) => {
                if let Some(lent) = inner.lent.as_mut() {
                    lent.spill = Some(rest);
                }
                Flushed::wake(Wrote::Part, inner.parked.take())
            }
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
        // The writer is about to write: it is no longer parked (see the module docs).
        inner.parked = None;
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

/// What [`Queue::flush_direct`] did.
#[derive(Debug)]
pub struct Flushed {
    pub wrote: Wrote,
    /// The writer's waker, when it must take over.
    pub wake: Option<Waker>,
}

/// How much of a direct write the socket took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrote {
    /// Nothing was written (nothing to write, the writer is running, or the socket is full).
    Nothing,
    /// The whole frame.
    All,
    /// Part of the frame; the rest is the spill.
    Part,
}

impl Flushed {
    const NOTHING: Flushed = Flushed { wrote: Wrote::Nothing, wake: None };

    fn wake(wrote: Wrote, wake: Option<Waker>) -> Self {
        Flushed { wrote, wake }
    }
}

/// `{len:x}\r\n` without allocating: the header of one chunk of HTTP/1.1 chunked encoding.
pub(crate) fn chunk_header(len: usize, buf: &mut [u8; 18]) -> &[u8] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut i = 16;
    let mut n = len;
    loop {
        i -= 1;
        buf[i] = HEX[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    buf[16] = b'\r';
    buf[17] = b'\n';
    &buf[i..]
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

    /// A socket that takes at most `room` bytes per write (0 = would block), recording them.
    struct FakeSocket {
        room: std::sync::Mutex<usize>,
        got: std::sync::Mutex<Vec<u8>>,
        chunked: bool,
    }

    impl DirectSink for FakeSocket {
        fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
            self.try_write_vectored(&[IoSlice::new(buf)])
        }
        fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            let mut room = self.room.lock().unwrap();
            if *room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let mut n = 0;
            let mut got = self.got.lock().unwrap();
            for b in bufs {
                let take = b.len().min(*room - n);
                got.extend_from_slice(&b[..take]);
                n += take;
            }
            *room -= n;
            Ok(n)
        }
        fn chunked(&self) -> bool {
            self.chunked
        }
    }

    fn fake(room: usize, chunked: bool) -> Arc<FakeSocket> {
        Arc::new(FakeSocket { room: std::sync::Mutex::new(room), got: Default::default(), chunked })
    }

    /// A queue whose writer has parked, with `sock` lent.
    fn parked_with(sock: &Arc<FakeSocket>) -> (Queue, Arc<Flag>) {
        let q = Queue::new();
        q.set_direct(Some(sock.clone()));
        let flag = Arc::new(Flag(Default::default()));
        let waker = Waker::from(flag.clone());
        assert_eq!(q.poll_drain(&mut Context::from_waker(&waker), 1024), Poll::Pending);
        (q, flag)
    }

    #[test]
    fn a_parked_writer_is_written_for_without_being_woken() {
        let sock = fake(usize::MAX, true);
        let (q, flag) = parked_with(&sock);
        let l = limits(10, 1000);
        let now = Instant::now();
        assert!(matches!(q.push(&Bytes::from_static(b"hello"), &l, now), Push::Direct));
        assert!(matches!(q.push(&Bytes::from_static(b"!"), &l, now), Push::Direct), "still parked");
        let f = q.flush_direct(now);
        assert!(f.wake.is_none() && f.wrote == Wrote::All, "fully written: no wake");
        assert_eq!(&sock.got.lock().unwrap()[..], b"6\r\nhello!\r\n", "both events, one chunk");
        assert_eq!(q.flush_direct(now).wrote, Wrote::Nothing, "a second flush finds nothing");
        assert!(!flag.0.load(std::sync::atomic::Ordering::SeqCst));
        assert!(q.is_empty());
        // The writer is still parked: the next push goes direct too.
        assert!(matches!(q.push(&Bytes::from_static(b"x"), &l, now), Push::Direct));
    }

    #[test]
    fn a_running_writer_is_never_written_around() {
        let sock = fake(usize::MAX, false);
        let (q, _flag) = parked_with(&sock);
        let l = limits(10, 1000);
        let now = Instant::now();
        assert!(matches!(q.push(&Bytes::from_static(b"a"), &l, now), Push::Direct));
        // The writer woke for another reason and drained before the flush: it is writing now.
        let waker = Waker::noop();
        assert_eq!(q.poll_drain(&mut Context::from_waker(waker), 1024), Poll::Ready(Some(Bytes::from_static(b"a"))));
        assert!(matches!(q.push(&Bytes::from_static(b"b"), &l, now), Push::Queued), "not parked: no direct write");
        assert!(q.flush_direct(now).wake.is_none());
        assert!(sock.got.lock().unwrap().is_empty(), "nothing written behind the writer's back");
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn a_partial_write_leaves_a_framed_spill_and_wakes_the_writer() {
        let sock = fake(4, true);
        let (q, flag) = parked_with(&sock);
        let l = limits(10, 1000);
        let now = Instant::now();
        assert!(matches!(q.push(&Bytes::from_static(b"hello"), &l, now), Push::Direct));
        let f = q.flush_direct(now);
        assert_eq!(f.wrote, Wrote::Part);
        f.wake.expect("the writer must finish the frame").wake();
        assert!(flag.0.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(&sock.got.lock().unwrap()[..], b"5\r\nh");
        assert!(q.is_empty(), "the event left the queue");
        // No direct write while the spill waits, and the writer sends the spill first.
        assert!(matches!(q.push(&Bytes::from_static(b"next"), &l, now), Push::Queued));
        assert_eq!(q.take_spill(), Some(Bytes::from_static(b"ello\r\n")));
        assert_eq!(q.take_spill(), None);
    }

    #[test]
    fn a_full_socket_leaves_the_events_to_the_writer() {
        let sock = fake(0, true);
        let (q, _flag) = parked_with(&sock);
        let l = limits(10, 1000);
        let now = Instant::now();
        assert!(matches!(q.push(&Bytes::from_static(b"a"), &l, now), Push::Direct));
        assert!(q.flush_direct(now).wake.is_some(), "the writer waits for the socket");
        assert_eq!(q.len(), 1, "nothing lost");
        assert_eq!(q.take_spill(), None);
    }

    #[test]
    fn a_closed_or_taken_back_socket_is_not_written() {
        let sock = fake(usize::MAX, true);
        let (q, _flag) = parked_with(&sock);
        let l = limits(10, 1000);
        let now = Instant::now();
        assert!(matches!(q.push(&Bytes::from_static(b"a"), &l, now), Push::Direct));
        q.close(CloseReason::Closed);
        assert!(q.flush_direct(now).wake.is_none());
        assert!(sock.got.lock().unwrap().is_empty());

        let (q, _flag) = parked_with(&sock);
        q.set_direct(None);
        assert!(matches!(q.push(&Bytes::from_static(b"a"), &l, now), Push::Wake(_)));
        assert!(sock.got.lock().unwrap().is_empty());
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
