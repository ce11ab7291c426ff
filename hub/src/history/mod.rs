//! History: the retained window of past updates, replayed to subscribers that reconnect with
//! `Last-Event-ID` (or `lastEventID`).
//!
//! ## Shape
//! The retained window always lives in memory ([`window::Window`]), so a replay never touches
//! the disk and never blocks publishing. A durable transport ([`durable`], redb) mirrors every
//! update to one database file through a single writer thread, and reloads the window from it
//! at start-up. Retention (count, bytes, age) bounds both the memory and the file.
//!
//! ## Memory
//! A retained update is held once: its wire form (shared with every queue it sits in) and its
//! routing fields (see `update`); `max_bytes` counts exactly that ([`window`]'s footprint),
//! short of the allocator's rounding. The durable store adds its page cache, bounded by
//! `cache_size` (default 4 MiB, see [`spec::DEFAULT_CACHE_BYTES`]), and nothing per update.
//!
//! ## Ordering with the live stream
//! Updates are appended to the window under the hub's dispatch lock, before they are fanned
//! out. A subscription is registered under the same lock and remembers the last sequence
//! number at that instant; its replay is the part of the window up to that number, and its
//! queue holds everything after. So replay and live traffic neither overlap nor leave a gap.
//!
//! What history does under the dispatch lock, exactly: the window push (an `Arc` clone, the id
//! into the index, trimming by the bounds) and, with a durable store, [`Persistence::append`]:
//! one channel push of the `Arc<Update>`, its sequence number, the publish time read once by
//! the hub, and the trim point. Encoding the record, copying it and the disk all happen on the
//! writer thread.
//!
//! ## Durability
//! Under the default policy (`fsync=always`) the publisher's `200` is sent only once the update
//! is fsynced; live subscribers may receive it before that (the fan-out does not wait for the
//! disk). One fsync covers every update waiting for the writer at that moment (group commit),
//! so concurrent publishers share the cost. With `fsync=interval`, commits reach the OS at
//! once and are fsynced every `fsync_interval`: a crash of the machine (not of the process)
//! can lose that interval.
//!
//! ## Other transports
//! Several nodes (`cluster`, Redis) replace the window's source of truth rather than mirror it:
//! the shared stream is the store, and the window is a cache of its tail, fed by the node's
//! reader through `Hub::dispatch_remote` (no [`Persistence`] then).

pub mod durable;
pub mod spec;
pub mod window;

use std::sync::Arc;

use tokio::sync::oneshot;

use crate::update::Update;

pub use spec::{FsyncPolicy, HistorySpec, Retention};
pub use window::{Replay, Window};

/// The outcome of a durable write: `Ok` once the update is as durable as the policy promises.
pub type Ack = oneshot::Receiver<Result<(), WriteError>>;

/// Why an update is not durable. Either way it was already dispatched live and is in the
/// window (fan-out never waits for the disk); the publisher learns it is not on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    /// The update could not be encoded as a record (nothing was written for it): a fault of
    /// this update, not of the store (the server answers 500).
    Encode(String),
    /// The store failed or is stopped (the server answers 503).
    Store(String),
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteError::Encode(e) => write!(f, "cannot encode the update: {e}"),
            WriteError::Store(e) => f.write_str(e),
        }
    }
}

/// Where the window is mirrored for durability.
pub trait Persistence: Send + Sync {
    /// Hands over one update, published at `at_ms` (milliseconds since the Unix epoch, the
    /// hub's one clock reading for this publish). Called under the dispatch lock: it must only
    /// enqueue (no encoding, copying, blocking or clock reading). `trim_below` is the lowest
    /// sequence number still retained; everything below may be deleted.
    fn append(&self, seq: u64, update: &Arc<Update>, at_ms: u64, trim_below: u64) -> Ack;
    /// Flushes and stops the writer (shutdown). Blocks until done.
    fn close(&self);
    /// Whether the store takes writes now (readiness and liveness probes). Cheap: an atomic
    /// load and, when failing, a short lock.
    fn health(&self) -> StoreHealth {
        StoreHealth::Ok
    }
    /// Appends the store's own metrics (Prometheus text) to `out`.
    fn render_metrics(&self, _out: &mut String) {}
}

/// A durable store's state, as the probes report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreHealth {
    Ok,
    /// The last commit failed (the reason); the writer still runs and the next commit may
    /// succeed (a full disk that was freed). Not ready, still live.
    Failing(String),
    /// The writer thread has ended (shutdown, or a panic): nothing will be stored again until
    /// a restart. Neither ready nor live.
    Stopped(String),
}
