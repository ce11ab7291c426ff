//! Active subscriptions (the `subscriptions` directive): the events published when a
//! subscription starts or ends, and the JSON-LD documents the web API serves.
//!
//! Every subscriber has one id (`urn:uuid:…`) across all its topics. A subscription is one
//! (subscriber, topic selector) pair; its IRI is
//! `/.well-known/mercure/subscriptions/{topic}/{subscriber}`, both variables percent-encoded
//! once, as RFC 6570 simple expansion does (everything but unreserved characters).
//!
//! Events are private updates on that IRI, so only subscribers whose token allows it receive
//! them; they go through the normal publish path (history included), which is what lets a
//! client list the subscriptions and then follow changes from the listing's `lastEventID`.
//!
//! ## Two shapes
//! Mercure 1.0 moved subscriptions to `/.well-known/mercure/subscriptions/{match_type}/{match}/
//! {subscriber}`, with plain JSON documents (`type: subscription`, `match`, `match_type`) sent
//! as SSE `event: mercure`. Every subscription is announced in both shapes (a 0.x URI template
//! only in the 0.x one: it has no 1.0 matcher type), and each event reaches only the
//! subscribers of its own dialect ([`shape_of`] tells them apart by the topic alone, so the
//! stored history keeps the distinction). A 0.x client sees exactly what it saw before 1.0.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

use crate::subscriber::{Dialect, Subscriber};
use crate::topic::MatchKind;
use crate::update::Update;

/// The prefix of every subscription IRI, and the web API's path.
pub const SUBSCRIPTIONS_PATH: &str = "/.well-known/mercure/subscriptions";

/// The JSON-LD context of every document.
pub const CONTEXT: &str = "https://mercure.rocks/";

/// RFC 3986 unreserved characters are left as they are; everything else is encoded.
const EXPANSION: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

pub fn encode(value: &str) -> String {
    utf8_percent_encode(value, EXPANSION).to_string()
}

/// `/.well-known/mercure/subscriptions/{topic}/{subscriber}`.
pub fn subscription_iri(topic: &str, subscriber: &str) -> String {
    format!("{SUBSCRIPTIONS_PATH}/{}/{}", encode(topic), encode(subscriber))
}

/// The subscriber's public id.
pub fn subscriber_id(sub: &Subscriber) -> String {
    sub.uuid.urn().to_string()
}

/// The JSON-LD object describing one subscription (without `@context`).
pub fn document(sub: &Subscriber, topic: &str, active: bool) -> Value {
    let subscriber = subscriber_id(sub);
    let mut doc = json!({
        "id": subscription_iri(topic, &subscriber),
        "type": "Subscription",
        "subscriber": subscriber,
        "topic": topic,
        "active": active,
    });
    if let (Some(payload), Some(map)) = (&sub.payload, doc.as_object_mut()) {
        map.insert("payload".into(), (**payload).clone());
    }
    doc
}

/// The private updates announcing that `sub`'s subscriptions started (`active`) or ended, in
/// both shapes (see the module docs).
pub fn events(sub: &Subscriber, active: bool) -> Vec<Update> {
    let mut out = Vec::with_capacity(sub.selectors.len() * 2);
    for (i, sel) in sub.selectors.iter().enumerate() {
        let mut doc = document_of(sub, i, sel.as_str(), active);
        if let Some(map) = doc.as_object_mut() {
            map.insert("@context".into(), CONTEXT.into());
        }
        let iri = doc["id"].as_str().unwrap_or_default().to_owned();
        out.push(Update::new(Update::generate_id(), vec![iri], true, None, None, doc.to_string()));
        if sel.kind() != MatchKind::Legacy {
            let doc = v1_document(sub, i, active);
            let iri = doc["id"].as_str().unwrap_or_default().to_owned();
            out.push(Update::new(Update::generate_id(), vec![iri], true, Some(V1_EVENT.into()), None, doc.to_string()));
        }
    }
    out
}

/// The SSE event type of 1.0 subscription events (reserved: publishers may not use it).
pub const V1_EVENT: &str = "mercure";

/// `/.well-known/mercure/subscriptions/{match_type}/{match}/{subscriber}`.
pub fn v1_iri(kind: MatchKind, matcher: &str, subscriber: &str) -> String {
    format!("{SUBSCRIPTIONS_PATH}/{}/{}/{}", kind.name(), encode(matcher), encode(subscriber))
}

/// The 1.0 document of `sub`'s `index`-th subscription (plain JSON, no `@context`).
pub fn v1_document(sub: &Subscriber, index: usize, active: bool) -> Value {
    let subscriber = subscriber_id(sub);
    let (kind, matcher) = sub.selectors.get(index).map_or((MatchKind::Exact, ""), |s| (s.kind(), s.as_str()));
    let mut doc = json!({
        "id": v1_iri(kind, matcher, &subscriber),
        "type": "subscription",
        "match": matcher,
        "match_type": kind.name(),
        "subscriber": subscriber,
        "active": active,
    });
    if let (Some(payload), Some(map)) = (sub.payload_of(index), doc.as_object_mut()) {
        map.insert("payload".into(), (**payload).clone());
    }
    doc
}

/// The 0.x document of `sub`'s `index`-th subscription, with that subscription's payload.
fn document_of(sub: &Subscriber, index: usize, topic: &str, active: bool) -> Value {
    let mut doc = document(sub, topic, active);
    if let Some(map) = doc.as_object_mut() {
        match sub.payload_of(index) {
            Some(p) => map.insert("payload".into(), (**p).clone()),
            None => map.remove("payload"),
        };
    }
    doc
}

/// Which dialect's subscription event `topic` is: `Legacy` for `…/subscriptions/{topic}/{sub}`,
/// `V1` for `…/subscriptions/{match_type}/{match}/{sub}`; `None` for any other topic. Both
/// variables are percent-encoded, so a segment never holds a `/`.
pub fn shape_of(topic: &str) -> Option<Dialect> {
    let rest = topic.strip_prefix(SUBSCRIPTIONS_PATH)?.strip_prefix('/')?;
    let mut parts = rest.split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(_), Some(_), None, None) => Some(Dialect::Legacy),
        (Some(kind), Some(_), Some(_), None) if MatchKind::from_type_name(kind).is_some() => Some(Dialect::V1),
        _ => None,
    }
}

/// Mercure 1.0's reserved hub namespace: `topic`, resolved against `base` as a URI reference
/// (dot segments removed, percent-encoded unreserved characters decoded), has the path
/// `/.well-known/mercure` or one below it, whatever its scheme or authority. Publishing there
/// would forge the hub's own events. A topic that is not a URI reference is not reserved.
pub fn is_reserved_namespace(topic: &str, base: &url::Url) -> bool {
    let Ok(url) = url::Url::options().base_url(Some(base)).parse(topic) else { return false };
    // `Url` removes dot segments but keeps percent-encoding: decode the unreserved characters
    // (RFC 3986 §6.2.2.2) so `/.well-known/%6Dercure` is seen as what it means.
    let path = decode_unreserved(url.path());
    path.strip_prefix(HUB_PATH).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The hub's path (the server's `MERCURE_PATH` is this one).
pub const HUB_PATH: &str = "/.well-known/mercure";

fn decode_unreserved(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(v) = path.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
            && (v.is_ascii_alphanumeric() || matches!(v, b'-' | b'.' | b'_' | b'~'))
        {
            out.push(char::from(v));
            i += 3;
            continue;
        }
        let ch_len = path[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&path[i..i + ch_len]);
        i += ch_len;
    }
    // Decoding can create new dot segments (`%2E%2E`): resolve them once more.
    match url::Url::parse(&format!("http://h{out}")) {
        Ok(u) if u.path() != out => u.path().to_owned(),
        _ => out,
    }
}

/// True when `topic` names a subscription IRI (relative, or absolute on any host): publishers
/// must not be able to forge subscription events.
pub fn is_reserved_topic(topic: &str) -> bool {
    let path = match topic.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("", |i| &rest[i..]),
        None => topic,
    };
    path.starts_with(SUBSCRIPTIONS_PATH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iris_encode_each_variable_once() {
        assert_eq!(
            subscription_iri("https://example.com/{id}", "urn:uuid:1"),
            "/.well-known/mercure/subscriptions/https%3A%2F%2Fexample.com%2F%7Bid%7D/urn%3Auuid%3A1"
        );
        assert_eq!(encode("a b%20"), "a%20b%2520");
    }

    #[test]
    fn shapes_and_the_reserved_namespace() {
        assert_eq!(shape_of("/.well-known/mercure/subscriptions/a/b"), Some(Dialect::Legacy));
        assert_eq!(shape_of("/.well-known/mercure/subscriptions/exact/a/b"), Some(Dialect::V1));
        assert_eq!(shape_of("/.well-known/mercure/subscriptions/urlpattern/a/b"), Some(Dialect::V1));
        assert_eq!(shape_of("/.well-known/mercure/subscriptions/other/a/b"), None);
        assert_eq!(shape_of("https://example.com/books/1"), None);
        let base = url::Url::parse("https://hub.example/.well-known/mercure").unwrap();
        for t in [
            "/.well-known/mercure",
            "/.well-known/mercure/x",
            "https://elsewhere.example/.well-known/mercure/subscriptions/a/b",
            "/.well-known/%6Dercure/x",
            "/a/../.well-known/mercure/x",
            "/.well-known/%2E%2E/.well-known/mercure/x",
            "../.well-known/mercure/x",
        ] {
            assert!(is_reserved_namespace(t, &base), "{t}");
        }
        for t in ["https://example.com/.well-known/mercurial", "https://e.com/books/1", "urn:x:y", "/.well-known/mercure%2Fx"] {
            assert!(!is_reserved_namespace(t, &base), "{t}");
        }
    }

    #[test]
    fn reserved_topics() {
        assert!(is_reserved_topic("/.well-known/mercure/subscriptions/x/y"));
        assert!(is_reserved_topic("https://hub.example/.well-known/mercure/subscriptions"));
        assert!(!is_reserved_topic("https://example.com/.well-known/mercurial"));
        assert!(!is_reserved_topic("https://example.com/books/1"));
    }
}
