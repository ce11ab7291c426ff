//! The reader: this node's one consumer of the shared stream.
//!
//! `XREAD BLOCK` on a connection of its own (no other command waits behind a blocked read),
//! from the last entry it dispatched; every entry is handed to `Hub::dispatch_remote` in
//! stream order, so every node's subscribers see the same order, and this node's own
//! publishes reach its subscribers the same way as everyone else's.
//!
//! Invariants:
//! - `last` is the id of the last entry dispatched (or skipped as unreadable). After any error
//!   the reader reconnects with back-off and resumes from `last`: nothing appended meanwhile is
//!   skipped, nothing is dispatched twice. Only entries Redis trimmed away while this node was
//!   disconnected can be missed; that is detected and logged.
//! - The blocked read has a response timeout of the block time plus a margin, so a Redis that
//!   vanished without closing the connection is noticed, not waited on forever.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use redis::Value;

use crate::hub::Hub;

use super::log::{StreamId, read_entries};
use super::{Backoff, Shared, connect};

/// How long one `XREAD` blocks in Redis.
const BLOCK: Duration = Duration::from_secs(5);
/// Most entries one `XREAD` returns.
const COUNT: usize = 1024;

pub async fn run(shared: Arc<Shared>, hub: Arc<Hub>, mut last: StreamId) {
    let mut backoff = Backoff::new();
    let mut reconnecting = false;
    loop {
        backoff.wait().await;
        let mut conn = match connect(&shared.client, Some(BLOCK + Duration::from_secs(5))).await {
            Ok(c) => c,
            Err(e) => {
                backoff.failed();
                shared.health.reader_down(format!("Redis unreachable: {e}"));
                continue;
            }
        };
        if reconnecting {
            shared.counters.reconnects.fetch_add(1, Ordering::Relaxed);
            check_gap(&shared, &mut conn, last).await;
        }
        reconnecting = true;
        loop {
            let reply: Result<Value, _> = redis::cmd("XREAD")
                .arg("COUNT")
                .arg(COUNT)
                .arg("BLOCK")
                .arg(BLOCK.as_millis() as u64)
                .arg("STREAMS")
                .arg(&shared.keys.stream)
                .arg(last.to_string())
                .query_async(&mut conn)
                .await;
            let entries = match reply.map_err(|e| e.to_string()).and_then(|v| read_entries(&v)) {
                Ok(entries) => entries,
                Err(e) => {
                    tracing::warn!(error = %e, last = %last, "reading the Redis stream failed; reconnecting");
                    shared.health.reader_down(e);
                    backoff.failed();
                    break;
                }
            };
            shared.health.reader_up();
            backoff.reset();
            for entry in entries {
                if entry.id <= last {
                    continue;
                }
                last = entry.id;
                match entry.update {
                    Ok(update) => {
                        hub.dispatch_remote(Arc::new(update), entry.id.ms);
                        shared.counters.read.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        shared.counters.unreadable.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(entry = %entry.id, error = %e, "skipped an unreadable stream entry");
                    }
                }
            }
        }
    }
}

/// After a reconnection: if Redis deleted (trimmed) an entry newer than the last one
/// dispatched, the stream was trimmed past this node's position while it was away and those
/// updates were never dispatched here. Logged and counted; nothing can bring them back. Exact
/// on Redis 7+ (`max-deleted-entry-id`); older servers are not checked.
async fn check_gap(shared: &Shared, conn: &mut redis::aio::MultiplexedConnection, last: StreamId) {
    if last == StreamId::default() {
        return;
    }
    let reply: Result<Value, _> = redis::cmd("XINFO").arg("STREAM").arg(&shared.keys.stream).query_async(conn).await;
    let Ok(info) = reply else { return };
    let deleted = super::log::info_field(&info, "max-deleted-entry-id").and_then(|s| StreamId::parse(&s));
    if let Some(deleted) = deleted
        && deleted > last
    {
        shared.counters.gaps.fetch_add(1, Ordering::Relaxed);
        tracing::error!(
            last_dispatched = %last,
            trimmed_up_to = %deleted,
            "the Redis stream was trimmed past this node's position while it was disconnected: \
             updates in between were not delivered by this node (raise the stream's retention)"
        );
    }
}
