//! `GET /.well-known/mercure`: authorize, register a subscriber, stream its events.
//!
//! Topics are checked (`input::validate_topics`), then the token, then the subscription takes
//! a `max_subscribers` slot (503 when none is free), held by its body until the stream is
//! dropped. The subscriber is registered before the response is built, so no update published
//! after the request was accepted can be missed. The stream ends at the earliest of: the token's
//! `exp`, `write_timeout`, eviction, shutdown, or the client leaving.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};

use crate::auth;
use crate::topic::Selector;

use super::State;
use super::body::{HubBody, SseBody};
use super::input::validate_topics;
use super::response::{Refusal, Resp};

/// Sent first, so the client and any proxy see the stream open at once.
const OPENING: &[u8] = b":\n";

pub async fn handle<B>(state: &Arc<State>, req: &Request<B>) -> Result<Resp, Refusal> {
    let mut topics = Vec::new();
    let mut query_token = None;
    let mut last_event_id = req.headers().get("last-event-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    if let Some(q) = req.uri().query() {
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            match &*k {
                "topic" => topics.push(v.into_owned()),
                "authorization" if query_token.is_none() => query_token = Some(v.into_owned()),
                // The header wins over the query parameter.
                "lastEventID" if last_event_id.is_none() => last_event_id = Some(v.into_owned()),
                _ => {}
            }
        }
    }
    validate_topics(&topics, &state.settings.limits)?;

    let grants = match auth::extract(req.headers(), query_token.as_deref(), &state.settings.cookie_name)? {
        Some((token, _)) => Some(state.subscriber.verify_waiting(token).await?),
        None if state.settings.anonymous => None,
        None => return Err(auth::AuthError::Missing.into()),
    };
    let (private_allowed, payload, expires_at) = match grants {
        Some(g) => {
            let allowed: Arc<[Selector]> = state
                .hub
                .compiler()
                .compile_grants(&g.subscribe)
                .map_err(|e| Refusal::bad_request(format!("token subscribe claim: {e}")))?;
            (Some(allowed), g.payload.map(Arc::new), g.expires_at)
        }
        None => (None, None, None),
    };

    // After authorization, so an unauthorized client learns 401/403, not that the hub is full.
    let slot = state.subscriber_slots.clone().try_acquire_owned().map_err(|_| {
        Refusal::new(
            503,
            format!(
                "too many subscribers (max_subscribers {}), try again",
                state.settings.limits.max_subscribers.unwrap_or(0)
            ),
        )
    })?;
    let sub = state.hub.new_subscriber(&topics, private_allowed, payload).map_err(selector_refusal)?;
    let upto = state.hub.subscribe(&sub).map_err(selector_refusal)?;
    // The body owns the registration from here on: whatever happens next, even a panic,
    // dropping it unregisters the subscriber and gives the slot back.
    let deadline = stream_deadline(expires_at, state.settings.write_timeout);
    let mut body = SseBody::new(state.hub.clone(), sub, vec![Bytes::from_static(OPENING)], deadline, slot);
    super::fault::inject(req.headers(), "subscribe");

    let mut replay_header = None;
    if let Some(from) = last_event_id.as_deref() {
        let replay = state.hub.replay(from, upto);
        let sub = body.subscriber().clone();
        body.extend_prelude(
            replay.updates.iter().filter(|u| sub.wants(u) && sub.may_receive(u)).map(|u| u.encoded.clone()),
        );
        replay_header = Some(replay.last_event_id);
    }
    let mut resp = Response::new(HubBody::Sse(Box::new(body)));
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    if let Some(id) = replay_header.and_then(|id| HeaderValue::from_str(&id).ok()) {
        h.insert("last-event-id", id);
    }
    Ok(resp)
}

fn selector_refusal(e: crate::hub::SelectorError) -> Refusal {
    Refusal::bad_request(format!("topic selector refused: {e}"))
}

/// The earliest of the token's expiry and the write timeout, as a tokio instant.
fn stream_deadline(expires_at: Option<SystemTime>, write_timeout: Option<Duration>) -> Option<tokio::time::Instant> {
    let now = tokio::time::Instant::now();
    // Checked: a far-future `exp` (clamped to year 9999 by the verifier) or a huge
    // `write_timeout` may not fit an `Instant`; such a bound is no bound.
    let by_token =
        expires_at.and_then(|t| now.checked_add(t.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO)));
    let by_timeout = write_timeout.and_then(|d| now.checked_add(d));
    match (by_token, by_timeout) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
