//! Matching work too large for an async worker thread.
//!
//! Matching an update's topics against every subscribed URI template costs up to a few
//! microseconds per (template, topic) pair with the template limits in force; with thousands of
//! templates and long topics one publish can cost tens of milliseconds of CPU. Run inline on a
//! tokio worker, that would hold up every other connection scheduled on it, so a publisher (or
//! the subscribers who chose the templates) could starve unrelated traffic even though the
//! dispatch lock is not held. Above [`HEAVY_MATCH_COST`], the work moves off the worker
//! (`block_in_place`: the worker's other tasks are handed to another thread), and a semaphore
//! lets at most one fewer such jobs run than there are cores, so at least one core is always
//! left to the rest of the hub.

use tokio::sync::Semaphore;

use crate::hub::Hub;
use crate::update::Update;

/// Estimated cost (subscribed templates × bytes of the update's topics) above which matching
/// is moved off the async workers. Below it (e.g. 100 templates and a 600-byte topic) matching
/// takes well under a millisecond and moving it would cost more than doing it.
pub const HEAVY_MATCH_COST: usize = 64 * 1024;

/// Admits heavy matching jobs: at most `cores − 1` at once (at least 1).
pub struct HeavyMatching {
    slots: Semaphore,
}

impl HeavyMatching {
    pub fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        HeavyMatching { slots: Semaphore::new(cores.saturating_sub(1).max(1)) }
    }

    /// Fills the template caches for `update` (see `Registry::prematch`) when that is heavy,
    /// off the async workers; does nothing otherwise (`Hub::publish` matches inline then).
    pub async fn prematch(&self, hub: &Hub, update: &Update) {
        let topic_bytes: usize = update.topics.iter().map(|t| t.len()).sum();
        if hub.registry().template_count().saturating_mul(topic_bytes) < HEAVY_MATCH_COST {
            return;
        }
        // The semaphore is never closed, so `acquire` cannot fail; if it ever did, matching
        // inline is still correct, only slower for others.
        let _slot = self.slots.acquire().await.ok();
        tokio::task::block_in_place(|| hub.registry().prematch(update));
    }
}

impl Default for HeavyMatching {
    fn default() -> Self {
        Self::new()
    }
}
