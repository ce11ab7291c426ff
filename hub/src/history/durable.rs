//! The embedded durable store: the retained window mirrored to one redb file.
//!
//! One writer thread owns all writes (redb allows one write transaction at a time, and a
//! dedicated OS thread keeps blocking fsyncs off the async workers). It takes every update
//! waiting at that moment and commits them in one transaction: one fsync per batch, not per
//! update (group commit). Each transaction also deletes what retention has dropped, so in a
//! steady state the file stops growing (redb reuses freed pages).
//!
//! Under the dispatch lock, [`RedbStore::append`](Persistence::append) only pushes the shared
//! `Arc<Update>`, its sequence number, publish time and trim point on the writer's channel (one
//! small allocation for the acknowledgement, none for the update). The writer encodes each
//! record itself, into one reused buffer. An update that cannot be encoded is not written (no
//! empty record) and its publisher gets [`WriteError::Encode`]; the rest of its batch is.
//!
//! Layout: one table, `updates`, keyed by the big-endian `u64` sequence number (redb's `u64`
//! key), valued by a [record](encode_record): the update's wire form (the SSE event, exactly
//! as sent) behind a small header with what replay needs to route it (publish time, private
//! flag, id, topics). Storing the wire form rather than the fields means a load rebuilds the
//! same [`Update`] without re-encoding, and the window holds one copy of it, as after a publish.
//! Records written before this layout (JSON of the fields, starting with `{`) are still read.
//! The id → sequence index is rebuilt in memory at load.
//!
//! Memory: redb's page cache is bounded by `cache_size` (default
//! [`DEFAULT_CACHE_BYTES`](super::spec::DEFAULT_CACHE_BYTES)), not left at redb's 1 GiB.
//!
//! Crash safety is redb's: copy-on-write pages and checksummed commits, so a `kill -9`
//! leaves the last committed state, which under `fsync=always` includes every acknowledged
//! update.

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use redb::{Builder, Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Deserialize;
use tokio::sync::oneshot;

use crate::update::Update;

use super::{Ack, FsyncPolicy, Persistence, StoreHealth, WriteError};
use crate::metrics::Histogram;

const UPDATES: TableDefinition<u64, &[u8]> = TableDefinition::new("updates");

/// Most updates written in one transaction; a larger backlog takes several.
const MAX_BATCH: usize = 8192;

/// The first byte of a record in the current layout. A legacy JSON record starts with `{`.
const WIRE_RECORD: u8 = 2;

/// Encodes one update as a record, appended to `out`:
///
/// | bytes | what |
/// |---|---|
/// | 1 | `WIRE_RECORD` (2) |
/// | 8 | publish time, ms since the Unix epoch (little-endian, as every integer here) |
/// | 1 | flags: bit 0 = private |
/// | 4 + n | id: length, then UTF-8 |
/// | 4 | topic count; then per topic, 4 + n: length, then UTF-8 |
/// | rest | the SSE wire form |
///
/// Fails (never writes a partial record: `out` is left as it was) if a length does not fit
/// in 32 bits.
pub fn encode_record(update: &Update, at_ms: u64, out: &mut Vec<u8>) -> Result<(), String> {
    let len32 = |n: usize, what: &str| {
        u32::try_from(n).map(u32::to_le_bytes).map_err(|_| format!("{what} of {n} bytes does not fit a history record"))
    };
    let id_len = len32(update.id.len(), "an id")?;
    let count = len32(update.topics.len(), "a topic list")?;
    let topic_lens = update.topics.iter().map(|t| len32(t.len(), "a topic")).collect::<Result<Vec<_>, _>>()?;
    let size = 1 + 8 + 1 + 4 + update.id.len() + 4 + update.topics.iter().map(|t| 4 + t.len()).sum::<usize>();
    out.reserve(size + update.encoded.len());
    out.push(WIRE_RECORD);
    out.extend_from_slice(&at_ms.to_le_bytes());
    out.push(u8::from(update.private));
    out.extend_from_slice(&id_len);
    out.extend_from_slice(update.id.as_bytes());
    out.extend_from_slice(&count);
    for (topic, len) in update.topics.iter().zip(topic_lens) {
        out.extend_from_slice(&len);
        out.extend_from_slice(topic.as_bytes());
    }
    out.extend_from_slice(&update.encoded);
    Ok(())
}

/// Decodes a record (either layout) into the update and its publish time.
pub fn decode_record(record: &[u8]) -> Result<(Update, u64), String> {
    match record.first() {
        Some(&WIRE_RECORD) => decode_wire_record(&record[1..]),
        Some(b'{') => {
            let r: LegacyRecord = serde_json::from_slice(record).map_err(|e| e.to_string())?;
            if r.topics.is_empty() {
                return Err("a record without topics".into());
            }
            Ok((Update::new(r.id, r.topics, r.private, r.event_type, r.retry, r.data), r.at_ms))
        }
        _ => Err("unknown record layout".into()),
    }
}

fn decode_wire_record(mut rest: &[u8]) -> Result<(Update, u64), String> {
    fn take<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
        if rest.len() < n {
            return Err("truncated record".into());
        }
        let (head, tail) = rest.split_at(n);
        *rest = tail;
        Ok(head)
    }
    fn len32(rest: &mut &[u8]) -> Result<usize, String> {
        let b = take(rest, 4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }
    fn text(rest: &mut &[u8]) -> Result<Box<str>, String> {
        let n = len32(rest)?;
        std::str::from_utf8(take(rest, n)?).map(Into::into).map_err(|_| "a field is not UTF-8".into())
    }
    let at = take(&mut rest, 8)?;
    let at_ms = u64::from_le_bytes([at[0], at[1], at[2], at[3], at[4], at[5], at[6], at[7]]);
    let private = take(&mut rest, 1)?[0] & 1 == 1;
    let id = text(&mut rest)?;
    let count = len32(&mut rest)?;
    // Each topic takes at least its 4-byte length: a corrupt count cannot make this allocate
    // more than the record's size.
    if count == 0 || count > rest.len() / 4 {
        return Err("a bad topic count".into());
    }
    let topics = (0..count).map(|_| text(&mut rest)).collect::<Result<Box<[_]>, _>>()?;
    // Exactly one whole event: a damaged wire form must not merge with the next event or
    // inject one.
    let event_end = rest.windows(2).position(|w| w == b"\n\n");
    if event_end != Some(rest.len().wrapping_sub(2)) {
        return Err("the wire form is not one whole SSE event".into());
    }
    Ok((Update::from_wire(id, topics, private, Bytes::copy_from_slice(rest)), at_ms))
}

/// A record as written before the wire layout: JSON of the update's fields. Read only.
#[derive(Deserialize)]
struct LegacyRecord {
    id: String,
    topics: Vec<String>,
    #[serde(default)]
    private: bool,
    #[serde(default, rename = "type")]
    event_type: Option<String>,
    #[serde(default)]
    retry: Option<u64>,
    data: String,
    at_ms: u64,
}

/// One update handed to the writer: what `append` does under the dispatch lock is build this
/// (an `Arc` clone and three numbers) and push it on the channel. The writer encodes it.
struct Job {
    seq: u64,
    update: Arc<Update>,
    /// Publish time, ms since the Unix epoch: the hub's one clock reading for this publish.
    at_ms: u64,
    trim_below: u64,
    ack: oneshot::Sender<Result<(), WriteError>>,
}

/// How the writer turns an update into a record: [`encode_record`] (tests inject a failing
/// one to exercise that path).
type Encoder = fn(&Update, u64, &mut Vec<u8>) -> Result<(), String>;

/// The writer's record buffer is reused from one update to the next; past this capacity (after
/// a big update) it is released rather than kept for the life of the hub.
const KEPT_RECORD_CAPACITY: usize = 64 * 1024;

pub struct RedbStore {
    /// `Some` while the writer runs; taken (dropped) to stop it. parking_lot: taken once per
    /// publish under the dispatch lock, so never contended.
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// What the writer thread reports about itself (probes, metrics).
    status: Arc<WriterStatus>,
}

/// The writer thread's state as the rest of the hub sees it. Written by the writer once per
/// batch, read by probes and scrapes.
#[derive(Default)]
struct WriterStatus {
    /// Set when the writer thread ends, by a guard, so a panic sets it too.
    stopped: std::sync::atomic::AtomicBool,
    /// The last commit's error, `None` after a successful one. parking_lot: written once per
    /// batch by the writer, read by probes; never held across anything else.
    last_error: Mutex<Option<String>>,
    /// Duration of each durable commit (page writes and fsync), one observation per batch.
    fsync: Histogram,
    /// Commits that failed (each fails its whole batch's publishes).
    failed_commits: std::sync::atomic::AtomicU64,
}

/// Marks the writer stopped when dropped: at the end of `write_loop`, or while unwinding.
struct StoppedOnDrop(Arc<WriterStatus>);

impl Drop for StoppedOnDrop {
    fn drop(&mut self) {
        self.0.stopped.store(true, std::sync::atomic::Ordering::Release);
    }
}

/// Marks the writer stopped if the thread is unwinding. Declared after a batch, it is dropped
/// before it while unwinding: the writer reads as stopped (`/mercure/health/ready` 503) before
/// any publisher of that batch learns, from its dropped acknowledgement, that its write failed.
struct StoppedIfUnwinding<'a>(&'a WriterStatus);

impl Drop for StoppedIfUnwinding<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.stopped.store(true, std::sync::atomic::Ordering::Release);
        }
    }
}

/// An update loaded from disk at start-up: its sequence number, publish time, and content.
pub type Loaded = (u64, u64, Update);

impl RedbStore {
    /// Opens (or creates) the file with the default page cache, loads what it holds, and
    /// starts the writer. (The server passes the configured cache; benches and tests use this.)
    #[cfg(any(test, feature = "internals"))]
    pub fn open(path: &Path, fsync: FsyncPolicy) -> Result<(Self, Vec<Loaded>), String> {
        Self::open_with_cache(path, fsync, super::spec::DEFAULT_CACHE_BYTES)
    }

    /// [`RedbStore::open`] with redb's page cache bounded at `cache_bytes`.
    pub fn open_with_cache(path: &Path, fsync: FsyncPolicy, cache_bytes: usize) -> Result<(Self, Vec<Loaded>), String> {
        Self::open_with_encoder(path, fsync, cache_bytes, encode_record)
    }

    fn open_with_encoder(
        path: &Path,
        fsync: FsyncPolicy,
        cache_bytes: usize,
        encode: Encoder,
    ) -> Result<(Self, Vec<Loaded>), String> {
        let db = Builder::new().set_cache_size(cache_bytes).create(path).map_err(|e| {
            format!(
                "cannot open history file {}: {e} (a bbolt file from the Go hub cannot be read: move it away or set transport_url)",
                path.display()
            )
        })?;
        let loaded = load(&db).map_err(|e| format!("cannot read history file {}: {e}", path.display()))?;
        tracing::info!(file = %path.display(), cache_bytes, "history store opened");
        let (tx, rx) = mpsc::channel();
        let status = Arc::new(WriterStatus::default());
        let guard = StoppedOnDrop(status.clone());
        let writer = std::thread::Builder::new()
            .name("history-writer".into())
            .spawn(move || write_loop(db, rx, fsync, encode, guard))
            .map_err(|e| format!("cannot start the history writer: {e}"))?;
        Ok((RedbStore { tx: Mutex::new(Some(tx)), writer: Mutex::new(Some(writer)), status }, loaded))
    }
}

fn load(db: &Database) -> Result<Vec<Loaded>, String> {
    let txn = db.begin_read().map_err(|e| e.to_string())?;
    let table = match txn.open_table(UPDATES) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.to_string()),
    };
    let mut out = Vec::new();
    for row in table.iter().map_err(|e| e.to_string())? {
        let (k, v) = row.map_err(|e| e.to_string())?;
        match decode_record(v.value()) {
            Ok((update, at_ms)) => out.push((k.value(), at_ms, update)),
            Err(e) => tracing::warn!(seq = k.value(), error = %e, "skipping unreadable history record"),
        }
    }
    Ok(out)
}

fn write_loop(db: Database, rx: mpsc::Receiver<Job>, fsync: FsyncPolicy, encode: Encoder, guard: StoppedOnDrop) {
    let status = &guard.0;
    let mut last_sync = Instant::now();
    let mut dirty = false;
    let mut open = true;
    let mut record = Vec::new();
    while open || dirty {
        let first = match fsync {
            FsyncPolicy::Interval(every) if dirty => {
                rx.recv_timeout(every.saturating_sub(last_sync.elapsed()).max(Duration::from_millis(1)))
            }
            _ if !open => Err(RecvTimeoutError::Disconnected),
            _ => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        let mut batch = Vec::new();
        let _unwinding = StoppedIfUnwinding(status);
        match first {
            Ok(job) => {
                batch.push(job);
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(j) => batch.push(j),
                        Err(_) => break,
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => open = false,
        }
        if batch.is_empty() && !dirty {
            continue;
        }
        let sync = match fsync {
            FsyncPolicy::Always => true,
            FsyncPolicy::Interval(every) => !open || last_sync.elapsed() >= every,
        };
        fault::maybe_panic(&batch);
        let mut unencodable = vec![None; batch.len()];
        let started = Instant::now();
        let result = match fault::failed_commit(&batch) {
            Some(e) => Err(e),
            None => commit(&db, &batch, sync, encode, &mut record, &mut unencodable),
        };
        if sync {
            status.fsync.observe(started.elapsed());
        }
        if result.is_err() {
            status.failed_commits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        *status.last_error.lock() = result.as_ref().err().cloned();
        if record.capacity() > KEPT_RECORD_CAPACITY {
            record = Vec::new();
        }
        if let Err(e) = &result {
            tracing::error!(error = %e, updates = batch.len(), "history write failed");
        }
        if sync {
            last_sync = Instant::now();
            dirty = false;
        } else {
            dirty = true;
        }
        for (job, bad) in batch.into_iter().zip(unencodable) {
            let outcome = match (bad, &result) {
                (Some(e), _) => Err(WriteError::Encode(e)),
                (None, Err(e)) => Err(WriteError::Store(e.clone())),
                (None, Ok(())) => Ok(()),
            };
            let _ = job.ack.send(outcome);
        }
    }
}

/// Writes one batch in one transaction. An update that cannot be encoded is left out (its
/// error in `unencodable`, at its index) and the others are written: nothing is stored for it,
/// never an empty or partial record.
fn commit(
    db: &Database,
    batch: &[Job],
    sync: bool,
    encode: Encoder,
    record: &mut Vec<u8>,
    unencodable: &mut [Option<String>],
) -> Result<(), String> {
    let mut txn = db.begin_write().map_err(|e| e.to_string())?;
    txn.set_durability(if sync { Durability::Immediate } else { Durability::None }).map_err(|e| e.to_string())?;
    {
        let mut table = txn.open_table(UPDATES).map_err(|e| e.to_string())?;
        for (job, bad) in batch.iter().zip(unencodable.iter_mut()) {
            record.clear();
            if let Err(e) = encode(&job.update, job.at_ms, record) {
                tracing::error!(seq = job.seq, id = %job.update.id, error = %e, "history record not written");
                *bad = Some(e);
                continue;
            }
            table.insert(job.seq, record.as_slice()).map_err(|e| e.to_string())?;
        }
        if let Some(trim) = batch.iter().map(|j| j.trim_below).max() {
            table.retain_in(..trim, |_, _| false).map_err(|e| e.to_string())?;
        }
    }
    txn.commit().map_err(|e| e.to_string())
}

impl Persistence for RedbStore {
    fn append(&self, seq: u64, update: &Arc<Update>, at_ms: u64, trim_below: u64) -> Ack {
        let (ack, rx) = oneshot::channel();
        let job = Job { seq, update: update.clone(), at_ms, trim_below, ack };
        match &*self.tx.lock() {
            Some(tx) => {
                if let Err(mpsc::SendError(job)) = tx.send(job) {
                    let _ = job.ack.send(Err(WriteError::Store("history writer stopped".into())));
                }
            }
            None => {
                let _ = job.ack.send(Err(WriteError::Store("history closed".into())));
            }
        }
        rx
    }

    fn close(&self) {
        drop(self.tx.lock().take());
        if let Some(w) = self.writer.lock().take() {
            let _ = w.join();
        }
    }

    fn health(&self) -> StoreHealth {
        if self.status.stopped.load(std::sync::atomic::Ordering::Acquire) {
            return StoreHealth::Stopped("history writer stopped".into());
        }
        match &*self.status.last_error.lock() {
            Some(e) => StoreHealth::Failing(format!("history write failed: {e}")),
            None => StoreHealth::Ok,
        }
    }

    fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        self.status.fsync.render(
            out,
            "mercure_history_fsync_duration_seconds",
            "Duration of a durable history commit (page writes and fsync), one per group commit.",
        );
        let failed = self.status.failed_commits.load(std::sync::atomic::Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP mercure_history_failed_commits_total History commits that failed.\n\
             # TYPE mercure_history_failed_commits_total counter\nmercure_history_failed_commits_total {failed}"
        );
    }
}

/// Fault injection for the integration tests, like `server::fault`: only in debug builds and
/// with `MERCURE_FAULT_INJECTION=1`, a batch holding an update whose id is [`fault::PANIC_ID`]
/// makes the writer thread panic, and one holding [`fault::FAIL_ID`] fails its commit (nothing
/// is written), so the probes' view of a dead or failing writer can be tested on the real
/// binary. Release builds compile both to nothing.
mod fault {
    #[cfg(debug_assertions)]
    pub const PANIC_ID: &str = "urn:mercure:fault:history-writer";
    #[cfg(debug_assertions)]
    pub const FAIL_ID: &str = "urn:mercure:fault:history-commit";

    #[cfg(debug_assertions)]
    fn asked(batch: &[super::Job], id: &str) -> bool {
        static ENABLED: std::sync::LazyLock<bool> =
            std::sync::LazyLock::new(|| std::env::var_os("MERCURE_FAULT_INJECTION").is_some_and(|v| v == "1"));
        *ENABLED && batch.iter().any(|j| &*j.update.id == id)
    }

    #[cfg(debug_assertions)]
    pub fn maybe_panic(batch: &[super::Job]) {
        if asked(batch, PANIC_ID) {
            panic!("fault injected in the history writer");
        }
    }

    #[cfg(debug_assertions)]
    pub fn failed_commit(batch: &[super::Job]) -> Option<String> {
        asked(batch, FAIL_ID).then(|| "fault injected in the commit".to_owned())
    }

    #[cfg(not(debug_assertions))]
    #[inline(always)]
    pub fn maybe_panic(_batch: &[super::Job]) {}

    #[cfg(not(debug_assertions))]
    #[inline(always)]
    pub fn failed_commit(_batch: &[super::Job]) -> Option<String> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rich() -> Update {
        Update::new(
            "urn:x:1".into(),
            vec!["https://e.com/a".into(), "https://e.com/alt".into()],
            true,
            Some("kind".into()),
            Some(1500),
            "line 1\r\nline 2\n\nend".into(),
        )
    }

    fn same(a: &Update, b: &Update) {
        assert_eq!((&a.id, &a.topics, a.private, &a.encoded), (&b.id, &b.topics, b.private, &b.encoded));
    }

    #[test]
    fn a_record_rebuilds_the_same_update() {
        let u = rich();
        let mut rec = Vec::new();
        encode_record(&u, 42, &mut rec).unwrap();
        assert!(rec.ends_with(&u.encoded), "the wire form is stored as is");
        let (back, at_ms) = decode_record(&rec).unwrap();
        same(&back, &u);
        assert_eq!(at_ms, 42);
    }

    #[test]
    fn records_of_the_json_layout_still_load() {
        let json = br#"{"id":"urn:x:1","topics":["https://e.com/a","https://e.com/alt"],"private":true,
            "type":"kind","retry":1500,"data":"line 1\r\nline 2\n\nend","at_ms":42}"#;
        let (back, at_ms) = decode_record(json).unwrap();
        same(&back, &rich());
        assert_eq!(at_ms, 42);
    }

    #[test]
    fn damaged_records_are_refused() {
        let mut rec = Vec::new();
        encode_record(&rich(), 42, &mut rec).unwrap();
        for cut in [0, 1, 9, 12, 20, rec.len() - 1] {
            assert!(decode_record(&rec[..cut]).is_err(), "a record cut at {cut} bytes was accepted");
        }
        let mut two_events = rec.clone();
        two_events.extend_from_slice(b"id: forged\ndata: x\n\n");
        assert!(decode_record(&two_events).is_err(), "a second event was accepted");
        let mut huge_count = rec.clone();
        let at = 1 + 8 + 1 + 4 + "urn:x:1".len();
        huge_count[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_record(&huge_count).is_err());
        assert!(decode_record(b"\x07junk").is_err());
    }

    #[test]
    fn health_and_fsync_metrics_follow_the_writer() {
        let dir = std::env::temp_dir().join(format!("mercure-durable-{}-health", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (store, _) = RedbStore::open_with_cache(&dir.join("h.redb"), FsyncPolicy::Always, 64 << 10).unwrap();
        assert_eq!(store.health(), StoreHealth::Ok);
        let u = Arc::new(rich());
        assert_eq!(store.append(1, &u, 1000, 1).blocking_recv().unwrap(), Ok(()));
        let mut text = String::new();
        store.render_metrics(&mut text);
        assert!(text.contains("mercure_history_fsync_duration_seconds_count 1\n"), "{text}");
        assert!(text.contains("mercure_history_failed_commits_total 0\n"), "{text}");
        store.close();
        assert!(matches!(store.health(), StoreHealth::Stopped(_)), "a closed writer is stopped");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_store_reloads_what_it_acknowledged() {
        let dir = std::env::temp_dir().join(format!("mercure-durable-{}-reload", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("h.redb");
        let (store, loaded) = RedbStore::open_with_cache(&path, FsyncPolicy::Always, 64 << 10).unwrap();
        assert!(loaded.is_empty());
        let updates =
            [Arc::new(rich()), Arc::new(Update::new("2".into(), vec!["t".into()], false, None, None, "".into()))];
        for (i, u) in updates.iter().enumerate() {
            assert_eq!(store.append(i as u64 + 1, u, 1000 + i as u64, 1).blocking_recv().unwrap(), Ok(()));
        }
        store.close();
        drop(store);
        let (store, loaded) = RedbStore::open(&path, FsyncPolicy::Always).unwrap();
        assert_eq!(loaded.len(), 2);
        for ((seq, at_ms, back), (i, u)) in loaded.iter().zip(updates.iter().enumerate()) {
            assert_eq!(*seq, i as u64 + 1);
            assert_eq!(*at_ms, 1000 + i as u64, "the publish time the hub passed is the one stored");
            same(back, u);
        }
        store.close();
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Encodes like the store, except for the update with id `bad`, for which it fails after
    /// writing part of a record (what a real failure midway could leave in the buffer).
    fn refuse_bad(update: &Update, at_ms: u64, out: &mut Vec<u8>) -> Result<(), String> {
        if &*update.id == "bad" {
            out.extend_from_slice(b"partial");
            return Err("injected failure".into());
        }
        encode_record(update, at_ms, out)
    }

    #[test]
    fn an_update_that_cannot_be_encoded_fails_its_publish_and_writes_nothing() {
        let dir = std::env::temp_dir().join(format!("mercure-durable-{}-unencodable", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("h.redb");
        let (store, _) = RedbStore::open_with_encoder(&path, FsyncPolicy::Always, 64 << 10, refuse_bad).unwrap();
        let hub = crate::hub::Hub::with_persistence(Default::default(), Some(Box::new(store)), Vec::new());
        let up = |id: &str| Arc::new(Update::new(id.into(), vec!["t".into()], false, None, None, "d".into()));
        // Published back to back, so they are likely in one batch: the good ones must be
        // written around the bad one.
        let acks: Vec<_> = ["good-1", "bad", "good-2"]
            .iter()
            .map(|id| hub.publish(up(id)).durable.expect("a durable store"))
            .collect();
        let outcomes: Vec<_> = acks.into_iter().map(|a| a.blocking_recv().expect("acknowledged")).collect();
        assert_eq!(outcomes[0], Ok(()));
        assert!(matches!(&outcomes[1], Err(WriteError::Encode(e)) if e.contains("injected")), "{:?}", outcomes[1]);
        assert_eq!(outcomes[2], Ok(()));
        hub.close_history();
        drop(hub);

        // The raw table, not a reload (a reload would skip an unreadable record silently).
        let db = Database::create(&path).unwrap();
        let txn = db.begin_read().unwrap();
        let table = txn.open_table(UPDATES).unwrap();
        let rows: Vec<_> =
            table.iter().unwrap().map(|r| r.unwrap()).map(|(k, v)| (k.value(), v.value().to_vec())).collect();
        let keys: Vec<u64> = rows.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, [1, 3], "no record, empty or partial, for the update that failed");
        for (_, v) in &rows {
            decode_record(v).expect("every stored record reads back");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
