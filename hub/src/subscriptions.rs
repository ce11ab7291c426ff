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

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

use crate::subscriber::Subscriber;
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

/// The private updates announcing that `sub`'s subscriptions started (`active`) or ended.
pub fn events(sub: &Subscriber, active: bool) -> Vec<Update> {
    sub.selectors
        .iter()
        .map(|sel| {
            let mut doc = document(sub, sel.as_str(), active);
            if let Some(map) = doc.as_object_mut() {
                map.insert("@context".into(), CONTEXT.into());
            }
            let iri = doc["id"].as_str().unwrap_or_default().to_owned();
            Update::new(Update::generate_id(), vec![iri], true, None, None, doc.to_string())
        })
        .collect()
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
    fn reserved_topics() {
        assert!(is_reserved_topic("/.well-known/mercure/subscriptions/x/y"));
        assert!(is_reserved_topic("https://hub.example/.well-known/mercure/subscriptions"));
        assert!(!is_reserved_topic("https://example.com/.well-known/mercurial"));
        assert!(!is_reserved_topic("https://example.com/books/1"));
    }
}
