//! One subscriber: its selectors, what its token allows, and its queue.
//!
//! A `Subscriber` lives in an `Arc` shared by the registry (so publishes can reach it) and by
//! its connection's SSE body (which drains the queue). The body removes it from the registry
//! when the connection ends, whatever the reason. Its queue's close is the one signal that the
//! subscription is over (see `queue` and the README's Lifecycle table).

use std::sync::Arc;

use std::sync::atomic::{AtomicU64, Ordering};

use crate::queue::Queue;
use crate::topic::{self, Selector};
use crate::update::Update;

/// The protocol a subscription was made in: it decides the shape of the subscription events
/// it receives (see `subscriptions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Mercure 0.x (`topic=`).
    Legacy,
    /// Mercure 1.0 (`match=`, `match_urlpattern=`).
    V1,
}

pub struct Subscriber {
    /// Registry key, unique for the process lifetime.
    pub id: u64,
    /// Public identifier (`urn:uuid:…`), the same across all of this subscriber's topics.
    pub uuid: uuid::Uuid,
    /// The `topic` selectors of the subscription request.
    pub selectors: Box<[Selector]>,
    /// The token's `mercure.subscribe` selectors: which private updates it may receive.
    /// `None` for anonymous subscribers, who receive public updates only.
    pub private_allowed: Option<Arc<[Selector]>>,
    /// The token's `mercure.payload` claim, published with subscription events.
    pub payload: Option<Arc<serde_json::Value>>,
    /// The protocol of the subscription request.
    pub dialect: Dialect,
    /// 1.0 access tokens: the payload of each selector (same order as `selectors`), from the
    /// first `subscribe` detail matching it. Empty for 0.x tokens (then `payload` serves all).
    pub matcher_payloads: Box<[Option<Arc<serde_json::Value>>]>,
    pub queue: Queue,
    /// The sequence number of the last update pushed to this subscriber. A subscriber reached
    /// through several selectors or topics of one update is skipped after the first push, so
    /// it receives each update once. Written only under the hub's dispatch lock.
    last_seq: AtomicU64,
}

impl Subscriber {
    pub fn new(
        id: u64,
        selectors: Vec<Selector>,
        private_allowed: Option<Arc<[Selector]>>,
        payload: Option<Arc<serde_json::Value>>,
    ) -> Self {
        Subscriber {
            id,
            uuid: uuid::Uuid::new_v4(),
            selectors: selectors.into(),
            private_allowed,
            payload,
            dialect: Dialect::Legacy,
            matcher_payloads: Box::new([]),
            queue: Queue::new(),
            last_seq: AtomicU64::new(0),
        }
    }

    /// Sets the protocol the subscription was made in.
    pub fn in_dialect(mut self, dialect: Dialect) -> Self {
        self.dialect = dialect;
        self
    }

    /// Sets each selector's payload (1.0 access tokens; same order as `selectors`).
    pub fn with_matcher_payloads(mut self, payloads: Vec<Option<Arc<serde_json::Value>>>) -> Self {
        self.matcher_payloads = payloads.into();
        self
    }

    /// The payload published with the subscription of `selectors[index]`.
    pub fn payload_of(&self, index: usize) -> Option<&Arc<serde_json::Value>> {
        if self.matcher_payloads.is_empty() {
            return self.payload.as_ref();
        }
        self.matcher_payloads.get(index)?.as_ref()
    }

    /// Marks `seq` as delivered; false when it already was (a duplicate path to this
    /// subscriber within one fan-out). Called only under the dispatch lock, so relaxed ordering
    /// suffices: the lock orders every access.
    pub(crate) fn claim(&self, seq: u64) -> bool {
        if self.last_seq.load(Ordering::Relaxed) >= seq {
            return false;
        }
        self.last_seq.store(seq, Ordering::Relaxed);
        true
    }

    /// Whether the token lets this subscriber receive `update` (always, for public updates).
    pub fn may_receive(&self, update: &Update) -> bool {
        !update.private
            || self.private_allowed.as_deref().is_some_and(|allowed| topic::any_matches(allowed, &update.topics))
    }

    /// [`Subscriber::may_receive`], remembering the answer for the last grant list seen: within
    /// one fan-out, subscribers sharing an interned grant list are checked once.
    /// Also applies [`Subscriber::takes_shape`]: subscription events are always private, so
    /// public updates (the hot path) pay nothing for it.
    pub(crate) fn may_receive_memo(&self, update: &Update, memo: &mut Option<(*const Selector, bool)>) -> bool {
        if !update.private {
            return true;
        }
        if !self.takes_shape(update) {
            return false;
        }
        let Some(allowed) = self.private_allowed.as_deref() else { return false };
        let key = allowed.as_ptr();
        if let Some((k, answer)) = *memo
            && k == key
        {
            return answer;
        }
        let answer = topic::any_matches(allowed, &update.topics);
        *memo = Some((key, answer));
        answer
    }

    /// Whether the subscription's selectors match one of the update's topics. The registry's
    /// indexes already guarantee this for the candidates they return; replay from history
    /// uses it directly.
    pub fn wants(&self, update: &Update) -> bool {
        self.takes_shape(update) && topic::any_matches(&self.selectors, &update.topics)
    }

    /// A subscription event reaches only subscribers of its own dialect (each subscription is
    /// announced in both shapes; see `subscriptions`); every other update reaches anyone.
    pub fn takes_shape(&self, update: &Update) -> bool {
        update.shape.is_none_or(|d| d == self.dialect)
    }
}
