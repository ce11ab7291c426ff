//! Nodes and their subscriptions, across the cluster (with the `subscriptions` directive).
//!
//! Each node keeps, in Redis: a presence key (`STREAM:node:ID`, expiring `presence_ttl` after
//! its last heartbeat), its id in the set `STREAM:nodes`, and the hash
//! `STREAM:subscriptions:ID` of its active subscriptions (IRI → JSON document), which the
//! writer maintains in the same order as the subscription events it publishes.
//!
//! Heartbeat, every third of the TTL: refresh the presence key, then look for nodes in the set
//! whose presence key expired. The first node to remove such a node from the set (`SREM`
//! returns 1 to exactly one caller) publishes an "inactive" event for each of the dead node's
//! subscriptions and deletes its hash. So a node that dies without a goodbye has its
//! subscriptions reported inactive within `presence_ttl` plus one heartbeat period.
//!
//! A node found in the set missing from it again (a partition outlasted its TTL and another
//! node cleaned it up) asks the writer to rewrite its mirror.
//!
//! Listing (the subscription API on any node): this node's registry plus the hashes of the
//! other nodes whose presence key is alive. Consistency as on one node: the writer writes a
//! subscription's hash entry before its "created" event, so a subscription missing from a
//! listing is announced after the listing's `lastEventID`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use redis::Value;
use serde_json::Value as Json;

use crate::history::window::now_ms;
use crate::subscriptions::CONTEXT;
use crate::update::Update;

use super::log::strings;
use super::writer::Op;
use super::Shared;

pub async fn run(shared: Arc<Shared>) {
    let period = shared.spec.presence_ttl / 3;
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut first = true;
    loop {
        tick.tick().await;
        match beat(&shared, first).await {
            Ok(()) => first = false,
            Err(e) => tracing::debug!(error = %e, "presence heartbeat failed"),
        }
    }
}

async fn beat(shared: &Shared, first: bool) -> Result<(), String> {
    let mut conn = shared.presence_conn().await?;
    let keys = &shared.keys;
    let ttl = shared.spec.presence_ttl.as_millis() as u64;
    let (added, members): (i64, Value) = redis::pipe()
        .cmd("SET")
        .arg(keys.presence(&shared.node))
        .arg(now_ms())
        .arg("PX")
        .arg(ttl)
        .ignore()
        .cmd("SADD")
        .arg(&keys.nodes)
        .arg(&shared.node)
        .cmd("SMEMBERS")
        .arg(&keys.nodes)
        .query_async(&mut conn)
        .await
        .map_err(|e| shared.presence_failed(e))?;
    if added == 1 && !first {
        tracing::warn!("this node had been taken for dead by the cluster; rewriting its subscriptions");
        shared.resync.store(true, Ordering::Relaxed);
    }
    let others: Vec<String> = strings(&members).into_iter().filter(|m| *m != shared.node).collect();
    if others.is_empty() {
        shared.counters.nodes.store(1, Ordering::Relaxed);
        return Ok(());
    }
    let mut pipe = redis::pipe();
    for m in &others {
        pipe.cmd("EXISTS").arg(keys.presence(m));
    }
    let alive: Vec<i64> = pipe.query_async(&mut conn).await.map_err(|e| shared.presence_failed(e))?;
    shared.counters.nodes.store(1 + alive.iter().filter(|a| **a == 1).count() as u64, Ordering::Relaxed);
    for (node, alive) in others.iter().zip(alive) {
        if alive == 0 {
            bury(shared, &mut conn, node).await?;
        }
    }
    Ok(())
}

/// Ends a dead node's subscriptions, if this node is the one that removes it from the set.
async fn bury(shared: &Shared, conn: &mut redis::aio::MultiplexedConnection, node: &str) -> Result<(), String> {
    let keys = &shared.keys;
    let removed: i64 =
        redis::cmd("SREM").arg(&keys.nodes).arg(node).query_async(conn).await.map_err(|e| e.to_string())?;
    if removed != 1 {
        return Ok(());
    }
    let hash = keys.subscriptions(node);
    let docs: Value = redis::cmd("HVALS").arg(&hash).query_async(conn).await.map_err(|e| e.to_string())?;
    let docs = strings(&docs);
    let mut ended = 0;
    for doc in &docs {
        let Some(update) = inactive_event(doc) else { continue };
        let _ = shared.writer.send(Op::Publish { update: Arc::new(update), ack: None });
        ended += 1;
    }
    let _: Result<(), _> = redis::cmd("DEL").arg(&hash).query_async(conn).await;
    shared.counters.buried.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(node, subscriptions = ended, "a node stopped heartbeating; its subscriptions were ended");
    Ok(())
}

/// The "inactive" event for a subscription document taken from a dead node's mirror.
fn inactive_event(doc: &str) -> Option<Update> {
    let mut doc: Json = serde_json::from_str(doc).ok()?;
    let map = doc.as_object_mut()?;
    let iri = map.get("id")?.as_str()?.to_owned();
    if !crate::subscriptions::is_reserved_topic(&iri) {
        return None;
    }
    map.insert("active".into(), Json::Bool(false));
    map.insert("@context".into(), CONTEXT.into());
    Some(Update::new(Update::generate_id(), vec![iri], true, None, None, doc.to_string()))
}

/// The subscription documents of every other live node.
pub async fn remote_documents(shared: &Shared) -> Result<Vec<Json>, String> {
    let mut conn = shared.presence_conn().await?;
    let keys = &shared.keys;
    let members: Value = redis::cmd("SMEMBERS")
        .arg(&keys.nodes)
        .query_async(&mut conn)
        .await
        .map_err(|e| shared.presence_failed(e))?;
    let others: Vec<String> = strings(&members).into_iter().filter(|m| *m != shared.node).collect();
    if others.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for m in &others {
        pipe.cmd("EXISTS").arg(keys.presence(m)).cmd("HVALS").arg(keys.subscriptions(m));
    }
    let replies: Vec<Value> = tokio::time::timeout(Duration::from_secs(10), pipe.query_async(&mut conn))
        .await
        .map_err(|_| "listing subscriptions in Redis timed out".to_owned())?
        .map_err(|e| shared.presence_failed(e))?;
    let mut out = Vec::new();
    for pair in replies.chunks_exact(2) {
        if matches!(pair[0], Value::Int(1)) {
            out.extend(strings(&pair[1]).iter().filter_map(|d| serde_json::from_str::<Json>(d).ok()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_nodes_documents_become_inactive_events() {
        let doc = r#"{"id":"/.well-known/mercure/subscriptions/t/urn%3Auuid%3A1","type":"Subscription","subscriber":"urn:uuid:1","topic":"t","active":true}"#;
        let u = inactive_event(doc).unwrap();
        assert!(u.private);
        assert_eq!(&*u.topics[0], "/.well-known/mercure/subscriptions/t/urn%3Auuid%3A1");
        let wire = String::from_utf8_lossy(&u.encoded);
        assert!(wire.contains(r#""active":false"#) && wire.contains(r#""@context":"https://mercure.rocks/""#), "{wire}");
        // Something else written to the hash cannot make the hub publish on an arbitrary topic.
        assert!(inactive_event(r#"{"id":"https://example.com/books/1"}"#).is_none());
        assert!(inactive_event("not json").is_none());
    }
}
