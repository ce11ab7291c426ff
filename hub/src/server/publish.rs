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
    let query_token = super::query_param(parts.uri.query(), "authorization");
    let (token, source) = auth::extract(&parts.headers, query_token.as_deref(), &state.settings.cookie_name)?
        .ok_or(auth::AuthError::Missing)?;
    if source == TokenSource::Cookie {
        auth::check_publish_origin(&parts.headers, &state.settings.publish_origins)?;
    }
    let grants = state.publisher.verify_waiting(token).await?;
    super::fault::inject(&parts.headers, "publish");

    if let Some(ct) = parts.headers.get(CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("");
        if !ct.trim_start().to_ascii_lowercase().starts_with("application/x-www-form-urlencoded") {
            return Err(Refusal::bad_request("expected an application/x-www-form-urlencoded body"));
        }
    }
    let read = Limited::new(body, state.settings.limits.max_body_size).collect();
    let collected = match body_deadline {
        Some(at) => tokio::time::timeout_at(at, read)
            .await
            .map_err(|_| Refusal::new(408, format!("request body not received within {body_timeout:?}")))?,
        None => read.await,
    };
    let bytes = collected
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                Refusal::new(413, format!("request body larger than {} bytes", state.settings.limits.max_body_size))
            } else {
                Refusal::bad_request("could not read the request body")
            }
        })?
        .to_bytes();

    let form = parse_form(&bytes);
    let update = validate(state, form)?;

    if update.topics.iter().any(|t| crate::subscriptions::is_reserved_topic(t)) {
        return Err(Refusal::new(403, "topics under /.well-known/mercure/subscriptions are reserved for the hub"));
    }
    let allowed = state
        .hub
        .compiler()
        .compile_all(&grants.publish)
        .map_err(|e| Refusal::bad_request(format!("token publish claim: {e}")))?;
    if !topic::all_matched(&allowed, &update.topics) {
        return Err(Refusal::new(403, "token not allowed to publish to these topics"));
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
