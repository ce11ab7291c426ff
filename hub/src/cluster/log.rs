//! The shared log's entries and keys: how an update is stored in the Redis stream, how stream
//! ids compare, and how replies are read.
//!
//! An entry has two fields: `u`, the update as the durable store's binary record
//! (`history::durable::encode_record`: id, topics, private flag, SSE wire form, publish time),
//! and `n`, the node that received the publish (for operators reading the stream). The record
//! is validated on the way back in (one whole SSE event, sane lengths), so an entry written by
//! something else cannot inject into subscribers' streams: it is skipped with a log line.
//!
//! Replies are parsed from `redis::Value` by hand, accepting both RESP2 (arrays) and RESP3
//! (maps) shapes, so nothing here depends on the client's typed stream helpers.

use redis::Value;

use crate::history::durable::decode_record;
use crate::update::Update;

/// The keys of one shared stream. Every key starts with the stream's name, so several hubs
/// (different streams) can share one Redis database.
#[derive(Debug, Clone)]
pub struct Keys {
    pub stream: String,
    /// Set of node ids that may have subscriptions listed.
    pub nodes: String,
}

impl Keys {
    pub fn new(stream: &str) -> Self {
        Keys { stream: stream.to_owned(), nodes: format!("{stream}:nodes") }
    }

    /// A node's presence key (expires `presence_ttl` after its last heartbeat).
    pub fn presence(&self, node: &str) -> String {
        format!("{}:node:{node}", self.stream)
    }

    /// A node's active subscriptions: hash of subscription IRI → JSON document.
    pub fn subscriptions(&self, node: &str) -> String {
        format!("{}:subscriptions:{node}", self.stream)
    }
}

/// A stream entry id, `MS-SEQ`, ordered as Redis orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub fn parse(s: &str) -> Option<Self> {
        let (ms, seq) = s.split_once('-')?;
        Some(StreamId { ms: ms.parse().ok()?, seq: seq.parse().ok()? })
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// One entry read back from the stream.
pub struct Entry {
    pub id: StreamId,
    /// The update, or why it could not be read (the entry is skipped, its id still counts).
    pub update: Result<Update, String>,
}

fn bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        Value::VerbatimString { text, .. } => Some(text.as_bytes()),
        _ => None,
    }
}

/// Field/value pairs of an entry, whether sent as a flat array or a map.
fn field<'a>(fields: &'a Value, name: &[u8]) -> Option<&'a Value> {
    match fields {
        Value::Array(items) => items.chunks_exact(2).find(|kv| bytes(&kv[0]) == Some(name)).map(|kv| &kv[1]),
        Value::Map(pairs) => pairs.iter().find(|(k, _)| bytes(k) == Some(name)).map(|(_, v)| v),
        _ => None,
    }
}

fn entry(v: &Value) -> Option<Entry> {
    let Value::Array(pair) = v else { return None };
    let [id, fields] = pair.as_slice() else { return None };
    let id = StreamId::parse(std::str::from_utf8(bytes(id)?).ok()?)?;
    let update = match field(fields, b"u").and_then(bytes) {
        Some(record) => decode_record(record).map(|(u, _)| u),
        None => Err("an entry without the `u` field".into()),
    };
    Some(Entry { id, update })
}

/// The entries of an `XRANGE`/`XREVRANGE` reply, in reply order.
pub fn range_entries(reply: &Value) -> Result<Vec<Entry>, String> {
    match reply {
        Value::Nil => Ok(Vec::new()),
        Value::Array(items) => items.iter().map(|v| entry(v).ok_or_else(|| "malformed stream entry".into())).collect(),
        other => Err(format!("unexpected range reply {other:?}")),
    }
}

/// The entries of an `XREAD` reply on one stream (`Nil` when `BLOCK` timed out).
pub fn read_entries(reply: &Value) -> Result<Vec<Entry>, String> {
    let streams: Vec<&Value> = match reply {
        Value::Nil => return Ok(Vec::new()),
        // RESP2: [[key, entries], …]
        Value::Array(items) => items
            .iter()
            .filter_map(|s| match s {
                Value::Array(kv) if kv.len() == 2 => Some(&kv[1]),
                _ => None,
            })
            .collect(),
        // RESP3: {key: entries, …}
        Value::Map(pairs) => pairs.iter().map(|(_, v)| v).collect(),
        other => return Err(format!("unexpected XREAD reply {other:?}")),
    };
    let mut out = Vec::new();
    for s in streams {
        out.extend(range_entries(s)?);
    }
    Ok(out)
}

/// A field of an `XINFO STREAM` reply, as text.
pub fn info_field(reply: &Value, name: &str) -> Option<String> {
    field(reply, name.as_bytes()).and_then(bytes).map(|b| String::from_utf8_lossy(b).into_owned())
}

/// The strings of a `SMEMBERS`/`HVALS` reply.
pub fn strings(reply: &Value) -> Vec<String> {
    match reply {
        Value::Array(items) | Value::Set(items) => {
            items.iter().filter_map(bytes).map(|b| String::from_utf8_lossy(b).into_owned()).collect()
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::durable::encode_record;

    fn bulk(s: &[u8]) -> Value {
        Value::BulkString(s.to_vec())
    }

    #[test]
    fn ids_order_like_redis() {
        let a = StreamId::parse("1700000000000-9").unwrap();
        let b = StreamId::parse("1700000000001-0").unwrap();
        assert!(a < b);
        assert_eq!(a.to_string(), "1700000000000-9");
        assert!(StreamId::parse("x-1").is_none());
        assert!(StreamId::parse("12").is_none());
    }

    #[test]
    fn entries_round_trip_and_bad_ones_are_reported_not_trusted() {
        let u = Update::new("a".into(), vec!["t".into()], true, Some("ty".into()), Some(5), "d\nx".into());
        let mut rec = Vec::new();
        encode_record(&u, 7, &mut rec).unwrap();
        let good = Value::Array(vec![bulk(b"5-1"), Value::Array(vec![bulk(b"u"), bulk(&rec), bulk(b"n"), bulk(b"x")])]);
        let injected = Value::Array(vec![
            bulk(b"6-0"),
            Value::Array(vec![bulk(b"u"), bulk(b"\x02garbage\n\nid: forged\n\n")]),
        ]);
        let missing = Value::Array(vec![bulk(b"7-0"), Value::Array(vec![bulk(b"n"), bulk(b"x")])]);
        let resp2 = Value::Array(vec![Value::Array(vec![
            bulk(b"mercure"),
            Value::Array(vec![good.clone(), injected, missing]),
        ])]);
        let got = read_entries(&resp2).unwrap();
        assert_eq!(got.len(), 3);
        let first = got[0].update.as_ref().unwrap();
        assert_eq!((&*first.id, first.private, &first.encoded[..]), ("a", true, &u.encoded[..]));
        assert_eq!(got[0].id, StreamId { ms: 5, seq: 1 });
        assert!(got[1].update.is_err() && got[2].update.is_err());
        assert_eq!(got[2].id, StreamId { ms: 7, seq: 0 });
        let resp3 = Value::Map(vec![(bulk(b"mercure"), Value::Array(vec![good]))]);
        assert_eq!(read_entries(&resp3).unwrap().len(), 1);
        assert!(read_entries(&Value::Nil).unwrap().is_empty());
        assert!(range_entries(&Value::Int(3)).is_err());
    }
}
