//! Response bodies: a complete buffer, or a subscriber's event stream.
//!
//! The stream ([`SseBody`]) drains its subscriber's queue: each `poll_frame` takes everything
//! queued (up to [`MAX_FRAME`]) as one frame, and hyper keeps polling while frames are ready,
//! so a burst of updates costs one write. Returning `None` ends the stream; that happens when
//! the queue is closed (eviction, shutdown, token expiry, write timeout) and drained.
//!
//! Invariant: whatever ends the connection, dropping the body unregisters the subscriber and
//! gives back its `max_subscribers` slot.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, Sleep};

use crate::hub::Hub;
use crate::queue::CloseReason;
use crate::subscriber::Subscriber;

pub use crate::queue::MAX_FRAME;

pub enum HubBody {
    Full(Option<Bytes>),
    Sse(Box<SseBody>),
}

impl HubBody {
    pub fn full(b: impl Into<Bytes>) -> Self {
        HubBody::Full(Some(b.into()))
    }

    pub fn empty() -> Self {
        HubBody::Full(None)
    }
}

pub struct SseBody {
    hub: Arc<Hub>,
    sub: Arc<Subscriber>,
    /// Bytes sent before the live queue: the opening comment, then the history replay.
    prelude: VecDeque<Bytes>,
    /// When the stream must end (token expiry or write timeout), if ever.
    deadline: Option<Pin<Box<Sleep>>>,
    /// This stream's place under `max_subscribers`, given back when the body is dropped.
    _slot: OwnedSemaphorePermit,
}

impl SseBody {
    pub fn new(
        hub: Arc<Hub>,
        sub: Arc<Subscriber>,
        prelude: Vec<Bytes>,
        deadline: Option<Instant>,
        slot: OwnedSemaphorePermit,
    ) -> Self {
        SseBody {
            hub,
            sub,
            prelude: prelude.into(),
            deadline: deadline.map(|d| Box::pin(tokio::time::sleep_until(d))),
            _slot: slot,
        }
    }
}

impl Body for HubBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            HubBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            HubBody::Sse(s) => s.poll_next(cx).map(|o| o.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, HubBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            HubBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            HubBody::Full(None) => SizeHint::with_exact(0),
            HubBody::Sse(_) => SizeHint::default(),
        }
    }
}

impl SseBody {
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        if !self.prelude.is_empty() {
            return Poll::Ready(Some(self.take_prelude()));
        }
        if let Some(d) = self.deadline.as_mut()
            && d.as_mut().poll(cx).is_ready()
        {
            self.deadline = None;
            tracing::debug!(subscriber = %self.sub.uuid.urn(), "stream reached its deadline");
            self.hub.unsubscribe(&self.sub, CloseReason::Closed);
        }
        self.sub.queue.poll_drain(cx, MAX_FRAME)
    }
}

impl SseBody {
    /// The next frame of the prelude: as many queued pieces as fit in [`MAX_FRAME`].
    fn take_prelude(&mut self) -> Bytes {
        if self.prelude.len() == 1 {
            return self.prelude.pop_front().unwrap_or_default();
        }
        let mut buf = BytesMut::new();
        while let Some(p) = self.prelude.front() {
            if !buf.is_empty() && buf.len() + p.len() > MAX_FRAME {
                break;
            }
            if let Some(p) = self.prelude.pop_front() {
                buf.extend_from_slice(&p);
            }
        }
        buf.freeze()
    }
}

impl Drop for SseBody {
    fn drop(&mut self) {
        self.hub.unsubscribe(&self.sub, CloseReason::Closed);
    }
}

impl SseBody {
    pub fn subscriber(&self) -> &Arc<Subscriber> {
        &self.sub
    }

    /// Appends to what is sent before the live queue (the history replay).
    pub fn extend_prelude(&mut self, pieces: impl IntoIterator<Item = Bytes>) {
        self.prelude.extend(pieces);
    }
}
