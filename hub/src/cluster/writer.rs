//! The writer: every change this node makes to Redis goes through one task, in order.
//!
//! Publishes (`XADD`, trimmed with `MAXLEN ~`/`MINID ~`) and the mirror of this node's
//! subscriptions (`HSET`/`HDEL`) are queued on one channel and sent as pipelines: everything
//! waiting when the writer wakes (up to [`MAX_BATCH`]) goes in one round trip, so concurrent
//! publishers share round trips as the redb writer's publishers share fsyncs. A publisher's
//! ack resolves when Redis answered the pipeline holding its `XADD`.
//!
//! Invariants:
//! - A publish is acknowledged `Ok` only after Redis answered its `XADD` successfully; on any
//!   error (Redis unreachable, timeout, an error reply) every publish of the batch gets
//!   `WriteError::Store` (the server's 503). A timeout is ambiguous — the entry may have been
//!   stored — so a retrying publisher can cause a duplicate, never a loss.
//! - Order: operations reach Redis in the order they were queued, so a subscription's mirror
//!   entry is written before its "created" event (what the subscription API's consistency
//!   relies on, see `presence`).
//! - While Redis is away the writer does not wait: within the reconnect back-off a batch fails
//!   at once, so publishers get their 503 quickly. After a failure the subscription mirror may
//!   have missed changes: it is rewritten whole from the registry on the next connection.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use tokio::sync::{mpsc, oneshot};

use crate::history::WriteError;
use crate::history::durable::encode_record;
use crate::history::window::now_ms;
use crate::update::Update;

use super::{Backoff, Shared, connect};

/// Most operations in one pipeline.
pub const MAX_BATCH: usize = 512;

pub enum Op {
    Publish { update: Arc<Update>, ack: Option<oneshot::Sender<Result<(), WriteError>>> },
    /// A subscription of this node started: its IRI and JSON document.
    Subscribed { iri: String, doc: String },
    Unsubscribed { iri: String },
    /// Resolves once everything queued before it was handled (shutdown).
    Flush(oneshot::Sender<()>),
}

pub async fn run(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Op>) {
    let mut conn: Option<MultiplexedConnection> = None;
    let mut backoff = Backoff::new();
    let mut batch: Vec<Op> = Vec::with_capacity(MAX_BATCH);
    let mut record = Vec::new();
    loop {
        // While disconnected, reconnect in the background at the back-off's pace, so the node
        // is ready again (and says so) as soon as Redis is, not at its next publish.
        let next = if conn.is_none() && !backoff.ready() {
            tokio::select! {
                op = rx.recv() => op,
                _ = backoff.wait() => {
                    match connect(&shared.client, Some(shared.spec.response_timeout)).await {
                        Ok(c) => {
                            conn = Some(c);
                            backoff.reset();
                            shared.health.writer_ok();
                            tracing::info!("Redis writer reconnected");
                        }
                        Err(e) => {
                            backoff.failed();
                            shared.health.writer_failed(format!("Redis unreachable: {e}"));
                        }
                    }
                    continue;
                }
            }
        } else {
            rx.recv().await
        };
        let Some(first) = next else { break };
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        if conn.is_none() && backoff.ready() {
            match connect(&shared.client, Some(shared.spec.response_timeout)).await {
                Ok(c) => {
                    conn = Some(c);
                    backoff.reset();
                }
                Err(e) => {
                    backoff.failed();
                    shared.health.writer_failed(format!("Redis unreachable: {e}"));
                }
            }
        }
        let had_conn = conn.is_some();
        let mut result = match conn.as_mut() {
            None => Err(Failure::Unsent(shared.health.writer_error().unwrap_or_else(|| "Redis unreachable".into()))),
            Some(c) => write(&shared, c, &mut batch, &mut record).await,
        };
        // A connection that died while idle (Redis restarted) fails before sending anything:
        // one fresh connection and one retry, so the first publish after an outage is not
        // refused for nothing. Never after a timeout (the pipeline may have been applied).
        if let (Err(Failure::Unsent(_)), Some(_)) = (&result, &conn) {
            conn = None;
            if let Ok(mut c) = connect(&shared.client, Some(shared.spec.response_timeout)).await {
                result = write(&shared, &mut c, &mut batch, &mut record).await;
                conn = Some(c);
            }
        }
        let result = result.map_err(Failure::into_message);
        match result {
            Ok(appended) => {
                shared.health.writer_ok();
                shared.counters.appends.fetch_add(appended, Ordering::Relaxed);
            }
            Err(e) => {
                if conn.take().is_some() || had_conn {
                    backoff.failed();
                    tracing::warn!(error = %e, "Redis write failed; publishes answer 503 until it is back");
                }
                shared.health.writer_failed(e.clone());
                shared.resync.store(true, Ordering::Relaxed);
                for op in batch.drain(..) {
                    match op {
                        Op::Publish { ack, .. } => {
                            shared.counters.append_errors.fetch_add(1, Ordering::Relaxed);
                            if let Some(ack) = ack {
                                let _ = ack.send(Err(WriteError::Store(format!("Redis: {e}"))));
                            }
                        }
                        Op::Flush(done) => {
                            let _ = done.send(());
                        }
                        Op::Subscribed { .. } | Op::Unsubscribed { .. } => {}
                    }
                }
            }
        }
        batch.clear();
    }
}

/// Why a batch failed.
enum Failure {
    /// Nothing reached Redis (the connection was already broken): safe to retry.
    Unsent(String),
    /// Redis may or may not have applied it (a timeout, an error reply).
    Unknown(String),
}

impl Failure {
    fn from_redis(e: &redis::RedisError) -> Self {
        if !e.is_timeout() && (e.is_connection_dropped() || e.is_connection_refusal()) {
            Failure::Unsent(e.to_string())
        } else {
            Failure::Unknown(e.to_string())
        }
    }

    fn into_message(self) -> String {
        match self {
            Failure::Unsent(m) | Failure::Unknown(m) => m,
        }
    }
}

/// Sends one batch as one pipeline and resolves its acks. Returns the number of entries
/// appended; on error the batch is left for the caller to fail (or retry).
async fn write(
    shared: &Shared,
    conn: &mut MultiplexedConnection,
    batch: &mut Vec<Op>,
    record: &mut Vec<u8>,
) -> Result<u64, Failure> {
    if shared.resync.swap(false, Ordering::Relaxed)
        && let Err(e) = resync(shared, conn).await
    {
        shared.resync.store(true, Ordering::Relaxed);
        return Err(e);
    }
    let keys = &shared.keys;
    let subscriptions_key = keys.subscriptions(&shared.node);
    let mut pipe = redis::pipe();
    let mut appended = 0;
    for op in batch.iter_mut() {
        match op {
            Op::Publish { update, ack } => {
                record.clear();
                if let Err(e) = encode_record(update, now_ms(), record) {
                    // This update's own fault: fail it alone, keep the batch.
                    if let Some(ack) = ack.take() {
                        let _ = ack.send(Err(WriteError::Encode(e)));
                    }
                    continue;
                }
                let mut cmd = redis::cmd("XADD");
                cmd.arg(&keys.stream);
                if let Some(n) = shared.retention.max_events {
                    cmd.arg("MAXLEN").arg("~").arg(n);
                }
                cmd.arg("*").arg("u").arg(&record[..]).arg("n").arg(&shared.node);
                pipe.add_command(cmd).ignore();
                appended += 1;
            }
            Op::Subscribed { iri, doc } => {
                pipe.cmd("HSET").arg(&subscriptions_key).arg(&*iri).arg(&*doc).ignore();
            }
            Op::Unsubscribed { iri } => {
                pipe.cmd("HDEL").arg(&subscriptions_key).arg(&*iri).ignore();
            }
            Op::Flush(_) => {}
        }
    }
    if let (Some(age), true) = (shared.retention.max_age, appended > 0) {
        let min_ms = now_ms().saturating_sub(age.as_millis() as u64);
        pipe.cmd("XTRIM").arg(&keys.stream).arg("MINID").arg("~").arg(min_ms).ignore();
    }
    if !pipe.is_empty() {
        pipe.query_async::<()>(conn).await.map_err(|e| Failure::from_redis(&e))?;
    }
    for op in batch.drain(..) {
        match op {
            Op::Publish { ack: Some(ack), .. } => {
                let _ = ack.send(Ok(()));
            }
            Op::Flush(done) => {
                let _ = done.send(());
            }
            _ => {}
        }
    }
    Ok(appended)
}

/// Rewrites this node's subscription mirror from the registry (after a failure, or after
/// another node took this one for dead and removed it), and re-announces the node.
async fn resync(shared: &Shared, conn: &mut MultiplexedConnection) -> Result<(), Failure> {
    let Some(hub) = shared.hub.get().and_then(std::sync::Weak::upgrade) else { return Ok(()) };
    let key = shared.keys.subscriptions(&shared.node);
    let mut pipe = redis::pipe();
    pipe.atomic().cmd("DEL").arg(&key).ignore();
    let mut n = 0;
    if hub.options().subscription_events {
        for sub in hub.registry().snapshot() {
            for (iri, doc) in super::mirror_entries(&sub) {
                pipe.cmd("HSET").arg(&key).arg(iri).arg(doc).ignore();
                n += 1;
            }
        }
    }
    let ttl = shared.spec.presence_ttl.as_millis() as u64;
    pipe.cmd("SET").arg(shared.keys.presence(&shared.node)).arg(now_ms()).arg("PX").arg(ttl).ignore();
    pipe.cmd("SADD").arg(&shared.keys.nodes).arg(&shared.node).ignore();
    tokio::time::timeout(Duration::from_secs(30), pipe.query_async::<()>(conn))
        .await
        .map_err(|_| Failure::Unknown("subscription mirror rewrite timed out".to_owned()))?
        .map_err(|e| Failure::from_redis(&e))?;
    tracing::info!(subscriptions = n, "subscription mirror rewritten in Redis");
    Ok(())
}
