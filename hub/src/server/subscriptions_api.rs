//! `GET /.well-known/mercure/subscriptions[/{topic}[/{subscriber}]]`: the active
//! subscriptions, as JSON-LD.
//!
//! Access: a valid subscriber token is required (401 otherwise), and its `mercure.subscribe`
//! selectors must match the requested URL (403 otherwise); a listing then shows only the
//! subscriptions whose IRI the token may see. 404 when the `subscriptions` directive is off or
//! nothing matches a single-subscription request.
//!
//! Consistency: `lastEventID` is read *before* the registry is walked, so a subscription that
//! starts while the listing is built is either listed or announced after `lastEventID` (or
//! both): a client that lists, then subscribes from `lastEventID`, misses nothing. The walk
//! copies the registry shard by shard and never takes the dispatch lock, so it does not stall
//! publishing however many subscribers there are. In a cluster, the other nodes' subscriptions
//! come from their mirrors in Redis (see `cluster::presence`), read after `lastEventID` too.

use std::sync::Arc;

use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Request, StatusCode};
use serde_json::{Value, json};

use crate::auth;
use crate::subscriptions::{self, CONTEXT, SUBSCRIPTIONS_PATH};
use crate::topic;

use super::State;
use super::response::{self, Refusal, Resp};

pub async fn handle<B>(state: &Arc<State>, req: &Request<B>) -> Result<Resp, Refusal> {
    if !state.settings.subscriptions {
        return Err(Refusal::new(404, "not found"));
    }
    let path = req.uri().path();
    let query_token = super::query_param(req.uri().query(), "authorization");
    let (token, _) = auth::extract(req.headers(), query_token.as_deref(), &state.settings.cookie_name)?
        .ok_or(auth::AuthError::Missing)?;
    let grants = state.subscriber.verify_waiting(token).await?;
    let allowed = state
        .hub
        .compiler()
        .compile_all(&grants.subscribe)
        .map_err(|e| Refusal::bad_request(format!("token subscribe claim: {e}")))?;
    if !allowed.iter().any(|s| s.matches(path)) {
        return Err(Refusal::new(403, "token not allowed to see these subscriptions"));
    }

    let rest = path.strip_prefix(SUBSCRIPTIONS_PATH).unwrap_or_default();
    let segments: Vec<String> = rest
        .split('/')
        .skip(1)
        .map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let (topic_filter, subscriber_filter) = match segments.as_slice() {
        [] => (None, None),
        [t] => (Some(t.as_str()), None),
        [t, s] => (Some(t.as_str()), Some(s.as_str())),
        _ => return Err(Refusal::new(404, "not found")),
    };

    let last_event_id = state.hub.last_event_id().unwrap_or_else(|| "earliest".into());
    // Other nodes' subscriptions (cluster), read after `lastEventID` like the registry.
    let remote = match &state.cluster {
        Some(c) => c
            .remote_subscriptions()
            .await
            .map_err(|e| Refusal::new(503, format!("cannot list the cluster's subscriptions: {e}")))?,
        None => Vec::new(),
    };
    let mut found = Vec::new();
    for doc in remote {
        let (Some(iri), Some(topic), Some(subscriber)) =
            (doc["id"].as_str(), doc["topic"].as_str(), doc["subscriber"].as_str())
        else {
            continue;
        };
        if subscriber_filter.is_some_and(|f| f != subscriber) || topic_filter.is_some_and(|f| f != topic) {
            continue;
        }
        let iri: Box<str> = iri.into();
        if topic::any_matches(&allowed, std::slice::from_ref(&iri)) {
            found.push(doc);
        }
    }
    for sub in state.hub.registry().snapshot() {
        if subscriber_filter.is_some_and(|f| f != subscriptions::subscriber_id(&sub)) {
            continue;
        }
        for sel in sub.selectors.iter() {
            if topic_filter.is_some_and(|f| f != sel.as_str()) {
                continue;
            }
            let doc = subscriptions::document(&sub, sel.as_str(), true);
            let iri: Box<str> = doc["id"].as_str().unwrap_or_default().into();
            if topic::any_matches(&allowed, std::slice::from_ref(&iri)) {
                found.push(doc);
            }
        }
    }

    let body = if subscriber_filter.is_some() {
        let Some(mut doc) = found.into_iter().next() else {
            return Err(Refusal::new(404, "no such subscription"));
        };
        if let Some(map) = doc.as_object_mut() {
            map.insert("@context".into(), CONTEXT.into());
            map.insert("lastEventID".into(), Value::String(last_event_id));
        }
        doc
    } else {
        json!({
            "@context": CONTEXT,
            "id": path,
            "type": "Subscriptions",
            "lastEventID": last_event_id,
            "subscriptions": found,
        })
    };
    let mut resp = response::text(StatusCode::OK, body.to_string());
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/ld+json"));
    Ok(resp)
}
