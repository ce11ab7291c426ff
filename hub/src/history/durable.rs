//! The embedded durable store: the retained window mirrored to one redb file.
//!
//! One writer thread owns all writes (redb allows one write transaction at a time, and a
//! dedicated OS thread keeps blocking fsyncs off the async workers). It takes every update
//! waiting at that moment and commits them in one transaction: one fsync per batch, not per
//! update (group commit). Each transaction also deletes what retention has dropped, so in a
//! steady state the file stops growing (redb reuses freed pages).
//!
//! Layout: one table, `updates`, keyed by the big-endian `u64` sequence number (redb's `u64`
//! key), valued by a JSON [`Record`]. JSON because it is self-describing and the cost is
//! dwarfed by the fsync; the id → sequence index is rebuilt in memory at load.
//!
//! Crash safety is redb's: copy-on-write pages and checksummed commits, so a `kill -9`
//! leaves the last committed state, which under `fsync=always` includes every acknowledged
//! update.

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::update::Update;

use super::{Ack, FsyncPolicy, Persistence};

const UPDATES: TableDefinition<u64, &[u8]> = TableDefinition::new("updates");

/// Most updates written in one transaction; a larger backlog takes several.
const MAX_BATCH: usize = 8192;

/// One stored update.
#[derive(Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub topics: Vec<String>,
    #[serde(default)]
    pub private: bool,
    #[serde(default, rename = "type")]
    pub event_type: Option<String>,
    #[serde(default)]
    pub retry: Option<u64>,
    pub data: String,
    /// Milliseconds since the Unix epoch when it was published.
    pub at_ms: u64,
}

impl Record {
    pub fn of(update: &Update, at_ms: u64) -> Self {
        Record {
            id: update.id.to_string(),
            topics: update.topics.iter().map(|t| t.to_string()).collect(),
            private: update.private,
            event_type: update.event_type.as_deref().map(str::to_owned),
            retry: update.retry,
            data: update.data.to_string(),
            at_ms,
        }
    }

    pub fn into_update(self) -> (Update, u64) {
        (Update::new(self.id, self.topics, self.private, self.event_type, self.retry, self.data), self.at_ms)
    }
}

struct Job {
    seq: u64,
    record: Vec<u8>,
    trim_below: u64,
    ack: oneshot::Sender<Result<(), String>>,
}

pub struct RedbStore {
    /// `Some` while the writer runs; taken (dropped) to stop it. parking_lot: taken once per
    /// publish under the dispatch lock, so never contended.
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

/// An update loaded from disk at start-up: its sequence number, publish time, and content.
pub type Loaded = (u64, u64, Update);

impl RedbStore {
    /// Opens (or creates) the file, loads what it holds, and starts the writer.
    pub fn open(path: &Path, fsync: FsyncPolicy) -> Result<(Self, Vec<Loaded>), String> {
        let db = Database::create(path).map_err(|e| {
            format!(
                "cannot open history file {}: {e} (a bbolt file from the Go hub cannot be read: move it away or set transport_url)",
                path.display()
            )
        })?;
        let loaded = load(&db).map_err(|e| format!("cannot read history file {}: {e}", path.display()))?;
        let (tx, rx) = mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("history-writer".into())
            .spawn(move || write_loop(db, rx, fsync))
            .map_err(|e| format!("cannot start the history writer: {e}"))?;
        Ok((RedbStore { tx: Mutex::new(Some(tx)), writer: Mutex::new(Some(writer)) }, loaded))
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
        match serde_json::from_slice::<Record>(v.value()) {
            Ok(r) => {
                let (update, at_ms) = r.into_update();
                out.push((k.value(), at_ms, update));
            }
            Err(e) => tracing::warn!(seq = k.value(), error = %e, "skipping unreadable history record"),
        }
    }
    Ok(out)
}

fn write_loop(db: Database, rx: mpsc::Receiver<Job>, fsync: FsyncPolicy) {
    let mut last_sync = Instant::now();
    let mut dirty = false;
    let mut open = true;
    while open || dirty {
        let first = match fsync {
            FsyncPolicy::Interval(every) if dirty => {
                rx.recv_timeout(every.saturating_sub(last_sync.elapsed()).max(Duration::from_millis(1)))
            }
            _ if !open => Err(RecvTimeoutError::Disconnected),
            _ => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        let mut batch = Vec::new();
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
        let result = commit(&db, &batch, sync);
        if let Err(e) = &result {
            tracing::error!(error = %e, updates = batch.len(), "history write failed");
        }
        if sync {
            last_sync = Instant::now();
            dirty = false;
        } else {
            dirty = true;
        }
        for job in batch {
            let _ = job.ack.send(result.clone());
        }
    }
}

fn commit(db: &Database, batch: &[Job], sync: bool) -> Result<(), String> {
    let mut txn = db.begin_write().map_err(|e| e.to_string())?;
    txn.set_durability(if sync { Durability::Immediate } else { Durability::None }).map_err(|e| e.to_string())?;
    {
        let mut table = txn.open_table(UPDATES).map_err(|e| e.to_string())?;
        for job in batch {
            table.insert(job.seq, job.record.as_slice()).map_err(|e| e.to_string())?;
        }
        if let Some(trim) = batch.iter().map(|j| j.trim_below).max() {
            table.retain_in(..trim, |_, _| false).map_err(|e| e.to_string())?;
        }
    }
    txn.commit().map_err(|e| e.to_string())
}

impl Persistence for RedbStore {
    fn append(&self, seq: u64, update: &Arc<Update>, trim_below: u64) -> Ack {
        let (ack, rx) = oneshot::channel();
        let record = serde_json::to_vec(&Record::of(update, super::window::now_ms())).unwrap_or_default();
        match &*self.tx.lock() {
            Some(tx) => {
                if let Err(mpsc::SendError(job)) = tx.send(Job { seq, record, trim_below, ack }) {
                    let _ = job.ack.send(Err("history writer stopped".into()));
                }
            }
            None => {
                let _ = ack.send(Err("history closed".into()));
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
}
