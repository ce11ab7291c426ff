//! `GET /.well-known/mercure/subscriptions[/{topic}[/{subscriber}]]`: the active
//! subscriptions, as JSON-LD (0.x); `…/subscriptions/{match_type}/{match}[/{subscriber}]`
//! and the bare collection asked for with an access token or `Accept: application/mercure+json`
//! in the 1.0 shape (plain JSON). Every answer carries the cursor: `ETag` is the quoted
//! `lastEventID` (a matching `If-None-Match` gets 304), and `Link: <hub>; rel="mercure";
//! last-event-id="…"` says where to subscribe from.
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

use hyper::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE, ETAG, HeaderValue, IF_NONE_MATCH, LINK};
use hyper::{Request, StatusCode};
use serde_json::{Value, json};

use crate::auth;
use crate::subscriptions::{self, CONTEXT, SUBSCRIPTIONS_PATH};
use crate::topic::{self, MatchKind};

use super::State;
use super::dialect::{self, Dialect};
use super::response::{self, Refusal, Resp};

pub async fn handle<B>(state: &Arc<State>, req: &Request<B>) -> Result<Resp, Refusal> {
    if !state.settings.subscriptions {
        return Err(Refusal::new(404, "not found"));
    }
    let path = req.uri().path();
    let rest = path.strip_prefix(SUBSCRIPTIONS_PATH).unwrap_or_default();
    let segments: Vec<String> = rest
        .split('/')
        .skip(1)
        .map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    // `/subscriptions/{match_type}/{match}[/{subscriber}]` is the 1.0 shape.
    let v1_kind = match segments.as_slice() {
        [kind, _] | [kind, _, _] => MatchKind::from_type_name(kind),
        _ => None,
    };
    let identity = || dialect::identity(state, req.headers(), req.uri().authority().map(|a| a.as_str()));
    let query_token = super::query_param(req.uri().query(), "authorization")
        .or_else(|| super::query_param(req.uri().query(), "access_token"));
    let path_dialect = if v1_kind.is_some() { Dialect::V1 } else { Dialect::Legacy };
    let (token, _) = match auth::extract(req.headers(), query_token.as_deref(), &state.settings.cookie_name) {
        Ok(Some(t)) => t,
        Ok(None) => return Err(dialect::auth_refusal(path_dialect, auth::AuthError::Missing, &identity())),
        Err(e) => return Err(dialect::auth_refusal(path_dialect, e, &identity())),
    };
    let grants = state
        .subscriber_for(token)
        .verify_waiting(token)
        .await
        .map_err(|e| dialect::auth_refusal(path_dialect, e, &identity()))?;
    // The collection is listed in the shape of the token (or of an explicit `Accept`).
    let wants_v1 = grants.is_access_token()
        || req.headers().get(ACCEPT).and_then(|a| a.to_str().ok()).is_some_and(|a| a.contains(V1_MEDIA_TYPE));
    let shape = match segments.as_slice() {
        [] => {
            if wants_v1 {
                Dialect::V1
            } else {
                Dialect::Legacy
            }
        }
        _ => path_dialect,
    };
    let id = identity();
    if let Err(e) = dialect::check_token(state, &id, grants.access.as_ref()) {
        return Err(dialect::auth_refusal(shape, e, &id));
    }
    let allowed =
        state.hub.compiler().compile_specs(&grants.subscribe_specs()).map_err(|e| {
            dialect::in_dialect(shape, Refusal::bad_request(format!("token subscribe claim: {e}")), &id)
        })?;
    if !allowed.iter().any(|s| s.matches(path)) {
        let r = Refusal::new(403, "token not allowed to see these subscriptions");
        return Err(dialect::in_dialect(shape, r, &id));
    }

    let (kind_filter, match_filter, subscriber_filter) = match (v1_kind, segments.as_slice()) {
        (_, []) => (None, None, None),
        (None, [t]) => (None, Some(t.as_str()), None),
        (None, [t, s]) => (None, Some(t.as_str()), Some(s.as_str())),
        (Some(k), [_, m]) => (Some(k), Some(m.as_str()), None),
        (Some(k), [_, m, s]) => (Some(k), Some(m.as_str()), Some(s.as_str())),
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
    let visible = |doc: &Value| {
        let iri: Box<str> = doc["id"].as_str().unwrap_or_default().into();
        topic::any_matches(&allowed, std::slice::from_ref(&iri))
    };
    let mut found = Vec::new();
    for doc in remote {
        // Mirrors carry the 0.x document; in the 1.0 shape their matcher type is not known
        // and they are listed as exact.
        let (Some(topic), Some(subscriber)) = (doc["topic"].as_str(), doc["subscriber"].as_str()) else {
            continue;
        };
        if subscriber_filter.is_some_and(|f| f != subscriber)
            || match_filter.is_some_and(|f| f != topic)
            || kind_filter.is_some_and(|k| k != MatchKind::Exact)
        {
            continue;
        }
        let doc = match shape {
            Dialect::Legacy => doc,
            Dialect::V1 => remote_as_v1(&doc, topic, subscriber),
        };
        if visible(&doc) {
            found.push(doc);
        }
    }
    for sub in state.hub.registry().snapshot() {
        if subscriber_filter.is_some_and(|f| f != subscriptions::subscriber_id(&sub)) {
            continue;
        }
        for (i, sel) in sub.selectors.iter().enumerate() {
            if match_filter.is_some_and(|f| f != sel.as_str()) || kind_filter.is_some_and(|k| k != sel.kind()) {
                continue;
            }
            let doc = match shape {
                Dialect::Legacy => subscriptions::document(&sub, sel.as_str(), true),
                Dialect::V1 if sel.kind() == MatchKind::Legacy => continue,
                Dialect::V1 => subscriptions::v1_document(&sub, i, true),
            };
            if visible(&doc) {
                found.push(doc);
            }
        }
    }

    let etag = format!("\"{last_event_id}\"");
    let body = if subscriber_filter.is_some() {
        let Some(mut doc) = found.into_iter().next() else {
            return Err(Refusal::new(404, "no such subscription"));
        };
        if let Some(map) = doc.as_object_mut() {
            if shape == Dialect::Legacy {
                map.insert("@context".into(), CONTEXT.into());
            }
            map.insert("lastEventID".into(), Value::String(last_event_id.clone()));
        }
        doc
    } else {
        match shape {
            Dialect::Legacy => json!({
                "@context": CONTEXT,
                "id": path,
                "type": "Subscriptions",
                "lastEventID": last_event_id,
                "subscriptions": found,
            }),
            Dialect::V1 => json!({
                "id": path,
                "type": "subscriptions",
                "lastEventID": last_event_id,
                "subscriptions": found,
            }),
        }
    };
    // A client polling the listing revalidates with the cursor it has: unchanged, 304.
    let not_modified = req
        .headers()
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut resp = if not_modified {
        response::text(StatusCode::NOT_MODIFIED, "")
    } else {
        response::text(StatusCode::OK, body.to_string())
    };
    let h = resp.headers_mut();
    let media = if shape == Dialect::V1 { V1_MEDIA_TYPE } else { "application/ld+json" };
    h.insert(CONTENT_TYPE, HeaderValue::from_static(media));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(ETAG, v);
    }
    h.insert(CACHE_CONTROL, HeaderValue::from_static("must-revalidate"));
    let link = format!("<{}>; rel=\"mercure\"; last-event-id=\"{}\"", crate::subscriptions::HUB_PATH, last_event_id);
    if let Ok(v) = HeaderValue::from_str(&link) {
        h.insert(LINK, v);
    }
    Ok(resp)
}

/// The media type of 1.0 subscription documents.
pub const V1_MEDIA_TYPE: &str = "application/mercure+json";

/// A cluster mirror's 0.x document in the 1.0 shape (as an exact matcher).
fn remote_as_v1(doc: &Value, topic: &str, subscriber: &str) -> Value {
    let mut v = json!({
        "id": subscriptions::v1_iri(MatchKind::Exact, topic, subscriber),
        "type": "subscription",
        "match": topic,
        "match_type": MatchKind::Exact.name(),
        "subscriber": subscriber,
        "active": doc["active"].as_bool().unwrap_or(true),
    });
    if let (Some(p), Some(map)) = (doc.get("payload"), v.as_object_mut()) {
        map.insert("payload".into(), p.clone());
    }
    v
}
