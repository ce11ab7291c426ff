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
            queue: Queue::new(),
            last_seq: AtomicU64::new(0),
        }
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
    pub(crate) fn may_receive_memo(&self, update: &Update, memo: &mut Option<(*const Selector, bool)>) -> bool {
        if !update.private {
            return true;
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
        topic::any_matches(&self.selectors, &update.topics)
    }
}
