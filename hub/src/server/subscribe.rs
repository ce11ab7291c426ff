//! `GET /.well-known/mercure` (and 1.0's `QUERY`): authorize, register a subscriber, stream
//! its events.
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
use crate::subscriber::Dialect as SubDialect;
use crate::topic::{MatchKind, MatcherSpec, Selector};

use super::State;
use super::body::{HubBody, SseBody};
use super::dialect::{self, Dialect, Identity};
use super::input::validate_topics;
use super::response::{Refusal, Resp};

/// Sent first, so the client and any proxy see the stream open at once.
const OPENING: &[u8] = b":\n";

pub async fn handle<B>(state: &Arc<State>, req: &Request<B>) -> Result<Resp, Refusal> {
    handle_with_body(state, req, None).await
}

/// A subscription request's parameters, in either dialect (see `dialect` for the rules).
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Params {
    pub(crate) dialect: Option<Dialect>,
    pub(crate) matchers: Vec<MatcherSpec>,
    pub(crate) topics: Vec<String>,
    pub(crate) token: Option<String>,
    pub(crate) last_event_id: Option<String>,
}

/// The 1.0 matcher type a query parameter names, `Err` for another name in the reserved
/// `match` namespace (any ASCII case), `Ok(None)` for a name outside it.
fn matcher_param(name: &str) -> Result<Option<MatchKind>, ()> {
    match name {
        "match" | "match_exact" | "matchExact" => Ok(Some(MatchKind::Exact)),
        "match_urlpattern" | "matchURLPattern" => Ok(Some(MatchKind::UrlPattern)),
        n if n.len() >= 5 && n[..5].eq_ignore_ascii_case("match") => Err(()),
        _ => Ok(None),
    }
}

/// Reads the query string, then the `QUERY` body (its values come after the query's, so for
/// single-valued parameters the query wins). The `Last-Event-ID` header wins over both.
pub(crate) fn parse_params(
    query: Option<&str>,
    body: Option<&[u8]>,
    last_event_id_header: Option<&str>,
) -> Result<Params, (Dialect, Refusal)> {
    let mut p = Params { last_event_id: last_event_id_header.map(str::to_owned), ..Params::default() };
    let sources = [query.map(str::as_bytes), body].into_iter().flatten();
    for source in sources {
        for (k, v) in form_urlencoded::parse(source) {
            match &*k {
                "topic" => p.topics.push(v.into_owned()),
                "authorization" | "access_token" if p.token.is_none() => p.token = Some(v.into_owned()),
                "lastEventID" | "last_event_id" if p.last_event_id.is_none() => p.last_event_id = Some(v.into_owned()),
                name => match matcher_param(name) {
                    Ok(Some(kind)) => p.matchers.push(MatcherSpec::new(kind, v.into_owned())),
                    Ok(None) => {}
                    Err(()) => {
                        let why = format!("unknown topic matcher parameter {name:?} (use match or match_urlpattern)");
                        return Err((Dialect::V1, Refusal::bad_request(why)));
                    }
                },
            }
        }
    }
    p.dialect = match (p.topics.is_empty(), p.matchers.is_empty()) {
        (false, false) => {
            return Err((Dialect::V1, Refusal::bad_request("topic (0.x) and match (1.0) cannot be mixed")));
        }
        (true, false) => Some(Dialect::V1),
        (false, true) => Some(Dialect::Legacy),
        (true, true) if body.is_some() => Some(Dialect::V1),
        (true, true) => None,
    };
    Ok(p)
}

/// The 1.0 checks of a matcher list: count and length bounds, no control characters (C0,
/// DEL and C1, as the 1.0 spec says).
fn validate_matchers(matchers: &[MatcherSpec], limits: &crate::config::Limits) -> Result<(), Refusal> {
    if matchers.is_empty() {
        return Err(Refusal::bad_request("missing match parameter"));
    }
    if matchers.len() > limits.max_topics {
        return Err(Refusal::bad_request(format!("more than {} matchers", limits.max_topics)));
    }
    let max = limits.max_topic_length.min(crate::topic::url_pattern::MAX_PATTERN_LENGTH);
    if matchers.iter().any(|m| m.text.is_empty() || m.text.len() > max) {
        return Err(Refusal::bad_request(format!("matcher empty or longer than {max} bytes")));
    }
    if matchers.iter().any(|m| m.text.chars().any(crate::auth::access::is_forbidden_char)) {
        return Err(Refusal::bad_request("matcher contains a control character"));
    }
    Ok(())
}

/// `GET` (either dialect) or `QUERY` (1.0, with its form `body` merged into the query).
pub async fn handle_with_body<B>(state: &Arc<State>, req: &Request<B>, body: Option<&[u8]>) -> Result<Resp, Refusal> {
    let header_id = req.headers().get("last-event-id").and_then(|v| v.to_str().ok());
    let lazy_identity = || dialect::identity(state, req.headers(), req.uri().authority().map(|a| a.as_str()));
    let params = match parse_params(req.uri().query(), body, header_id) {
        Ok(p) => p,
        Err((d, r)) => return Err(dialect::in_dialect(d, r, &lazy_identity())),
    };
    let dialect = params.dialect.unwrap_or(if state.settings.legacy_dialect { Dialect::Legacy } else { Dialect::V1 });
    // Only 1.0 requests and access tokens need the hub's identity.
    let mut identity = (dialect == Dialect::V1).then(lazy_identity);
    let refuse = |r: Refusal, identity: &Option<Identity>| match identity {
        Some(i) => dialect::in_dialect(dialect, r, i),
        None => r,
    };
    let specs = match dialect {
        Dialect::Legacy if !state.settings.legacy_dialect => {
            let r = Refusal::bad_request("the topic parameter is not served (legacy_dialect off): use match");
            return Err(dialect::in_dialect(Dialect::V1, r, &lazy_identity()));
        }
        Dialect::Legacy => {
            validate_topics(&params.topics, &state.settings.limits)?;
            MatcherSpec::legacy_all(&params.topics)
        }
        Dialect::V1 => {
            validate_matchers(&params.matchers, &state.settings.limits).map_err(|r| refuse(r, &identity))?;
            params.matchers
        }
    };

    let auth_err = |e: auth::AuthError, identity: &mut Option<Identity>| {
        let id = identity.get_or_insert_with(lazy_identity);
        dialect::auth_refusal(dialect, e, id)
    };
    let grants = match auth::extract(req.headers(), params.token.as_deref(), &state.settings.cookie_name) {
        Err(e) => return Err(auth_err(e, &mut identity)),
        Ok(Some((token, _))) => match state.subscriber_for(token).verify_waiting(token).await {
            Ok(g) => Some(g),
            Err(e) => return Err(auth_err(e, &mut identity)),
        },
        Ok(None) if state.settings.anonymous => None,
        Ok(None) => return Err(auth_err(auth::AuthError::Missing, &mut identity)),
    };
    if let Some(g) = &grants
        && (g.access.is_some() || !state.settings.legacy_dialect)
    {
        let id = identity.get_or_insert_with(lazy_identity);
        if let Err(e) = dialect::check_token(state, id, g.access.as_ref()) {
            return Err(dialect::bearer(dialect::BearerError::of(&e), e.to_string(), id));
        }
    }
    let (private_allowed, payload, expires_at, access) = match grants {
        Some(g) => {
            let allowed: Arc<[Selector]> = state.hub.compiler().compile_grants(&g.subscribe_specs()).map_err(|e| {
                if g.access.is_some() {
                    let id = identity.get_or_insert_with(lazy_identity);
                    dialect::bearer(dialect::BearerError::InvalidToken, format!("token subscribe matchers: {e}"), id)
                } else {
                    Refusal::bad_request(format!("token subscribe claim: {e}"))
                }
            })?;
            (Some(allowed), g.payload.map(Arc::new), g.expires_at, g.access)
        }
        None => (None, None, None, None),
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
    let mut sub = state
        .hub
        .build_subscriber(&specs, private_allowed, payload)
        .map_err(|e| refuse(selector_refusal(e), &identity))?
        .in_dialect(match dialect {
            Dialect::Legacy => SubDialect::Legacy,
            Dialect::V1 => SubDialect::V1,
        });
    if let Some(access) = &access {
        let compiler = state.hub.compiler();
        let payloads = specs.iter().map(|s| access.payload_for(&s.text, compiler).map(Arc::new)).collect();
        sub = sub.with_matcher_payloads(payloads);
    }
    let sub = Arc::new(sub);
    let upto = state.hub.subscribe(&sub).map_err(|e| refuse(selector_refusal(e), &identity))?;
    // The body owns the registration from here on: whatever happens next, even a panic,
    // dropping it unregisters the subscriber and gives the slot back.
    let deadline = stream_deadline(expires_at, state.settings.write_timeout);
    let mut body = SseBody::new(state.hub.clone(), sub, vec![Bytes::from_static(OPENING)], deadline, slot);
    super::fault::inject(req.headers(), "subscribe");

    let mut replay_header = None;
    if let Some(from) = params.last_event_id.as_deref() {
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
        // 1.0 names it `Mercure-Last-Event-ID`; 0.x clients read `Last-Event-ID`.
        if dialect == Dialect::Legacy {
            h.insert("last-event-id", id.clone());
        }
        h.insert("mercure-last-event-id", id);
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
