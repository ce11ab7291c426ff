//! The update: what a publisher sent, validated, kept as its wire form only.
//!
//! Invariants: `topics` is non-empty and its first entry is the canonical topic (the others are
//! alternates, matched the same way); `encoded` is the complete SSE event for this update and
//! never changes after construction, so every recipient can share it.
//!
//! ## Memory
//! One copy per update: the wire form, plus the little that routing and authorization need
//! (`id`, `topics`, `private`). The data, type and retry live only inside `encoded` — nothing
//! reads them back (the durable store keeps the wire form too), so a retained update costs
//! about its wire size, not twice it. See [`Update::footprint`].

use bytes::Bytes;

use crate::sse;

#[derive(Debug)]
pub struct Update {
    pub id: Box<str>,
    pub topics: Box<[Box<str>]>,
    pub private: bool,
    /// The SSE event, shared by every recipient.
    pub encoded: Bytes,
    /// For a subscription event, the dialect whose subscribers receive it (read from its topic,
    /// so it survives the durable store and the cluster log unchanged); `None` otherwise.
    pub shape: Option<crate::subscriber::Dialect>,
}

impl Update {
    /// Builds an update and encodes its SSE form. Callers validate the fields first
    /// (see `server::publish`); this never fails.
    pub fn new(
        id: String,
        topics: Vec<String>,
        private: bool,
        event_type: Option<String>,
        retry: Option<u64>,
        data: String,
    ) -> Self {
        let encoded = sse::encode(&sse::EventFields { id: &id, event_type: event_type.as_deref(), retry, data: &data });
        Self::from_wire(id.into(), topics.into_iter().map(Into::into).collect(), private, encoded)
    }

    /// Rebuilds an update from its parts as the durable store keeps them. `encoded` must be
    /// what [`Update::new`] produced for the same id (the store checks it is one whole event).
    pub fn from_wire(id: Box<str>, topics: Box<[Box<str>]>, private: bool, encoded: Bytes) -> Self {
        let shape = topics.first().and_then(|t| crate::subscriptions::shape_of(t));
        Update { id, topics, private, encoded, shape }
    }

    /// Bytes this update holds on the heap, as the allocator is asked for them: the wire form
    /// (whose buffer may hold a few dozen bytes more, see `sse::encode`), the id, the topics
    /// (each a pointer and its text) and the shared allocation itself (the `Arc`'s counts and
    /// this struct, plus the header `Bytes` allocates when first shared). What the retained
    /// window counts against `max_bytes`.
    pub fn footprint(&self) -> usize {
        /// `bytes`' shared header, allocated when a `Bytes` built from a `Vec` is first cloned.
        const SHARED_BYTES_HEADER: usize = 24;
        2 * size_of::<usize>()
            + size_of::<Update>()
            + self.encoded.len()
            + SHARED_BYTES_HEADER
            + self.id.len()
            + self.topics.iter().map(|t| size_of::<Box<str>>() + t.len()).sum::<usize>()
    }

    /// A new random id in the form the Go hub generates.
    pub fn generate_id() -> String {
        uuid::Uuid::new_v4().urn().to_string()
    }
}
