//! The update: what a publisher sent, validated, with its wire form encoded once.
//!
//! Invariants: `topics` is non-empty and its first entry is the canonical topic (the others are
//! alternates, matched the same way); `encoded` is the complete SSE event for this update and
//! never changes after construction, so every recipient can share it.

use bytes::Bytes;

use crate::sse;

#[derive(Debug)]
pub struct Update {
    pub id: Box<str>,
    pub topics: Box<[Box<str>]>,
    pub private: bool,
    pub event_type: Option<Box<str>>,
    pub retry: Option<u64>,
    pub data: Box<str>,
    /// The SSE event, shared by every recipient.
    pub encoded: Bytes,
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
        Update {
            id: id.into(),
            topics: topics.into_iter().map(Into::into).collect(),
            private,
            event_type: event_type.map(Into::into),
            retry,
            data: data.into(),
            encoded,
        }
    }

    /// A new random id in the form the Go hub generates.
    pub fn generate_id() -> String {
        uuid::Uuid::new_v4().urn().to_string()
    }
}
