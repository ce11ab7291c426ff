//! `POST /.well-known/mercure`: authorize, validate, encode once, dispatch.
//!
//! Order matters: the token is checked before the body is read, so an unauthenticated client
//! cannot make the hub buffer a body; the body is read through a size limit (413 past it) and
//! must arrive whole within `body_read_timeout` of the handler starting, i.e. of the headers
//! being in (408 past it; the router then closes the HTTP/1 connection).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::{Request, StatusCode};

use crate::auth::{self, TokenSource};
use crate::history::WriteError;
use crate::topic;
use crate::update::Update;

use super::State;
use super::dialect::{self, Dialect};
use super::input::{has_control, validate_topics};
use super::response::{self, Refusal, Resp};

/// Fields of a publish form.
#[derive(Default, Debug, PartialEq)]
pub(crate) struct Form {
    pub(crate) topics: Vec<String>,
    pub(crate) data: Option<String>,
    pub(crate) private: bool,
    pub(crate) id: Option<String>,
    pub(crate) event_type: Option<String>,
    pub(crate) retry: Option<String>,
}

pub async fn handle(state: &Arc<State>, req: Request<Incoming>) -> Result<Resp, Refusal> {
    let body_timeout = state.settings.limits.body_read_timeout;
    let body_deadline = (!body_timeout.is_zero()).then(|| tokio::time::Instant::now() + body_timeout);
    let (parts, body) = req.into_parts();
    let query_token = super::query_param(parts.uri.query(), "authorization")
        .or_else(|| super::query_param(parts.uri.query(), "access_token"));
    let identity = || dialect::identity(state, &parts.headers, parts.uri.authority().map(|a| a.as_str()));
    // The dialect is the token's; a request without one is answered with the 1.0 challenge
    // (a header 0.x clients ignore) and the 0.x body.
    let (token, source) = match auth::extract(&parts.headers, query_token.as_deref(), &state.settings.cookie_name) {
        Ok(Some(found)) => found,
        Ok(None) => return Err(dialect::auth_refusal(Dialect::V1, auth::AuthError::Missing, &identity())),
        Err(e) => return Err(dialect::auth_refusal(Dialect::Legacy, e, &identity())),
    };
    let grants = state.publisher_for(token).verify_waiting(token).await.map_err(|e| {
        let d = if token_looks_like_access_token(token) { Dialect::V1 } else { Dialect::Legacy };
        dialect::auth_refusal(d, e, &identity())
    })?;
    let dialect = if grants.is_access_token() { Dialect::V1 } else { Dialect::Legacy };
    let id = if dialect == Dialect::V1 || !state.settings.legacy_dialect { Some(identity()) } else { None };
    let in_dialect = |r: Refusal| match &id {
        Some(i) => dialect::in_dialect(dialect, r, i),
        None => r,
    };
    if let Some(i) = &id
        && let Err(e) = dialect::check_token(state, i, grants.access.as_ref())
    {
        return Err(dialect::auth_refusal(Dialect::V1, e, i));
    }
    if source == TokenSource::Cookie
        && let Err(e) = auth::check_publish_origin(&parts.headers, &state.settings.publish_origins)
    {
        return Err(match &id {
            Some(i) => dialect::auth_refusal(dialect, e, i),
            None => e.into(),
        });
    }
    super::fault::inject(&parts.headers, "publish");

    if let Some(ct) = parts.headers.get(CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("");
        if !ct.trim_start().to_ascii_lowercase().starts_with("application/x-www-form-urlencoded") {
            return Err(in_dialect(Refusal::bad_request("expected an application/x-www-form-urlencoded body")));
        }
    }
    let bytes = read_body_until(state, body, body_deadline).await.map_err(|r| match r.status.as_u16() {
        400 => in_dialect(r),
        _ => r,
    })?;

    let form = parse_form(&bytes);
    if dialect == Dialect::V1 {
        validate_v1(&form).map_err(&in_dialect)?;
    }
    let update = validate(state, form).map_err(&in_dialect)?;

    let base = state.hub.compiler().base();
    if update.topics.iter().any(|t| crate::subscriptions::is_reserved_namespace(t, base)) {
        return Err(in_dialect(Refusal::new(403, "topics under /.well-known/mercure are reserved for the hub")));
    }
    let allowed = state.hub.compiler().compile_specs(&grants.publish_specs()).map_err(|e| match &id {
        Some(i) if dialect == Dialect::V1 => {
            dialect::bearer(dialect::BearerError::InvalidToken, format!("token publish matchers: {e}"), i)
        }
        _ => Refusal::bad_request(format!("token publish claim: {e}")),
    })?;
    if !topic::all_matched(&allowed, &update.topics) {
        return Err(in_dialect(Refusal::new(403, "token not allowed to publish to these topics")));
    }

    // Under the durable policy the 200 waits for the fsync (live subscribers do not); with
    // several nodes, for the shared log's acknowledgement.
    let permit = state.hub.admit().await;
    let update = Arc::new(update);
    state.heavy_matching.prematch(&state.hub, &update).await;
    if let Some(ack) = state.hub.submit(update.clone()) {
        let failed = match ack.await {
            Ok(Ok(())) => None,
            Ok(Err(e @ WriteError::Encode(_))) => Some(Refusal::new(500, format!("history write failed: {e}"))),
            Ok(Err(e @ WriteError::Store(_))) => Some(Refusal::new(503, format!("history write failed: {e}"))),
            Err(_) => Some(Refusal::new(503, "history writer stopped")),
        };
        if let Some(refusal) = failed {
            state.hub.metrics.updates_failed.fetch_add(1, Ordering::Relaxed);
            return Err(refusal);
        }
    }
    drop(permit);
    Ok(response::text(StatusCode::OK, update.id.to_string()))
}

/// Whether a token's header (decoded without verification: only to choose how to answer a
/// token that failed) says `at+jwt`.
fn token_looks_like_access_token(token: &str) -> bool {
    token.len() <= 16 * 1024
        && jsonwebtoken::decode_header(token).is_ok_and(|h| crate::auth::access::is_access_token_type(h.typ.as_deref()))
}

/// Mercure 1.0's publish rules beyond 0.x's: exactly one topic, free of control and format
/// characters; an id neither `#…` nor `earliest`; a `type` other than the reserved `mercure`;
/// a `retry` of ASCII digits only.
fn validate_v1(f: &Form) -> Result<(), Refusal> {
    if f.topics.len() > 1 {
        return Err(Refusal::bad_request("an update has exactly one topic (publish one update per topic)"));
    }
    if f.topics.iter().any(|t| t.chars().any(|c| c.is_control() || is_format_char(c))) {
        return Err(Refusal::bad_request("topic contains a control or format character"));
    }
    if f.id.as_deref() == Some(crate::history::window::EARLIEST) {
        return Err(Refusal::bad_request("the id earliest is reserved"));
    }
    if f.event_type.as_deref() == Some(crate::subscriptions::V1_EVENT) {
        return Err(Refusal::bad_request("the event type mercure is reserved for the hub"));
    }
    if let Some(r) = &f.retry
        && (r.is_empty() || !r.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(Refusal::bad_request("retry must be ASCII digits only"));
    }
    Ok(())
}

/// Unicode format characters (general category Cf) that make two topics look alike: soft
/// hyphen, Arabic and Syriac marks, zero-width and bidirectional controls, word joiners,
/// the byte-order mark, interlinear annotation marks, and the tag characters.
fn is_format_char(c: char) -> bool {
    matches!(c,
        '\u{ad}' | '\u{600}'..='\u{605}' | '\u{61c}' | '\u{6dd}' | '\u{70f}' | '\u{890}'..='\u{891}' | '\u{8e2}'
        | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}' | '\u{110bd}' | '\u{110cd}'
        | '\u{13430}'..='\u{1343f}' | '\u{1bca0}'..='\u{1bca3}' | '\u{1d173}'..='\u{1d17a}'
        | '\u{e0001}' | '\u{e0020}'..='\u{e007f}')
}

/// Reads a request body within `max_body_size` (413 past it) and `body_read_timeout` from now
/// (408 past it).
pub(crate) async fn read_body(state: &State, body: Incoming) -> Result<bytes::Bytes, Refusal> {
    let timeout = state.settings.limits.body_read_timeout;
    read_body_until(state, body, (!timeout.is_zero()).then(|| tokio::time::Instant::now() + timeout)).await
}

async fn read_body_until(
    state: &State,
    body: Incoming,
    deadline: Option<tokio::time::Instant>,
) -> Result<bytes::Bytes, Refusal> {
    let body_timeout = state.settings.limits.body_read_timeout;
    let read = Limited::new(body, state.settings.limits.max_body_size).collect();
    let collected = match deadline {
        Some(at) => tokio::time::timeout_at(at, read)
            .await
            .map_err(|_| Refusal::new(408, format!("request body not received within {body_timeout:?}")))?,
        None => read.await,
    };
    Ok(collected
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                Refusal::new(413, format!("request body larger than {} bytes", state.settings.limits.max_body_size))
            } else {
                Refusal::bad_request("could not read the request body")
            }
        })?
        .to_bytes())
}

pub(crate) fn parse_form(bytes: &[u8]) -> Form {
    let mut f = Form::default();
    for (k, v) in form_urlencoded::parse(bytes) {
        match &*k {
            "topic" => f.topics.push(v.into_owned()),
            "data" if f.data.is_none() => f.data = Some(v.into_owned()),
            "private" => f.private = true,
            "id" if f.id.is_none() => f.id = Some(v.into_owned()),
            "type" if f.event_type.is_none() => f.event_type = Some(v.into_owned()),
            "retry" if f.retry.is_none() => f.retry = Some(v.into_owned()),
            _ => {}
        }
    }
    f
}

fn validate(state: &State, f: Form) -> Result<Update, Refusal> {
    let limits = &state.settings.limits;
    validate_topics(&f.topics, limits)?;
    if f.topics.iter().any(|t| t == "*") {
        // Reserved since Mercure 0.10: `*` selects every topic and cannot name one.
        return Err(Refusal::bad_request("the topic * is reserved"));
    }
    // As the Go hub reads them (`PostForm.Get`), an empty id or retry means none.
    let id = match f.id.filter(|id| !id.is_empty()) {
        Some(id) if id.starts_with('#') => return Err(Refusal::bad_request("id must not start with #")),
        Some(id) if id.len() > limits.max_topic_length => {
            return Err(Refusal::bad_request(format!("id longer than {} bytes", limits.max_topic_length)));
        }
        Some(id) if has_control(&id) => {
            return Err(Refusal::bad_request("id contains a control character (U+0000-U+001F or U+007F)"));
        }
        Some(id) => id,
        None => Update::generate_id(),
    };
    if let Some(t) = &f.event_type {
        if t.len() > limits.max_topic_length {
            return Err(Refusal::bad_request(format!("type longer than {} bytes", limits.max_topic_length)));
        }
        if has_control(t) {
            return Err(Refusal::bad_request("type contains a control character (U+0000-U+001F or U+007F)"));
        }
    }
    let retry = match f.retry.filter(|r| !r.trim().is_empty()) {
        None => None,
        Some(r) => {
            Some(r.trim().parse::<u64>().map_err(|_| Refusal::bad_request("retry must be a non-negative integer"))?)
        }
    };
    Ok(Update::new(id, f.topics, f.private, f.event_type, retry, f.data.unwrap_or_default()))
}
