//! CORS for browser clients.
//!
//! Only configured origins are ever echoed back, never an arbitrary `Origin`. With explicit
//! origins, credentials (the authorization cookie) are allowed; with `*`, they are not (the
//! browser would refuse the combination anyway, and reflecting every origin with credentials
//! would let any site read private updates).

use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Response, StatusCode};

use super::body::HubBody;
use super::response::{Refusal, Resp};

/// Response headers a browser client may read: the 1.0 cursor (`Mercure-Last-Event-ID`) and
/// the 0.x one, discovery (`Link`), the bearer challenge, and the listing's `ETag`.
const EXPOSED: &str = "Link, Mercure-Last-Event-ID, Last-Event-ID, WWW-Authenticate, ETag";

/// Methods the hub endpoint answers: 1.0 adds `QUERY` (a subscription with a form body).
pub const METHODS: &str = "GET, POST, QUERY, OPTIONS";

/// Adds the CORS headers for the request's `Origin` to a response, when it is allowed.
pub fn decorate(allowed: &[String], origin: Option<&HeaderValue>, response: &mut HeaderMap) {
    let Some(origin) = origin else { return };
    if allowed.iter().any(|a| a == "*") {
        response.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        response.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSED));
        return;
    }
    let Ok(o) = origin.to_str() else { return };
    if allowed.iter().any(|a| a.trim_end_matches('/') == o) {
        response.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        response.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        response.append(header::VARY, HeaderValue::from_static("Origin"));
        response.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSED));
    }
}

/// Answers a preflight `OPTIONS` request.
pub fn preflight(allowed: &[String], request: &HeaderMap) -> Result<Resp, Refusal> {
    let mut resp = Response::new(HubBody::empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    if request.get(header::ORIGIN).is_none() {
        // A plain OPTIONS, not a preflight: say what the endpoint supports.
        resp.headers_mut().insert(header::ALLOW, HeaderValue::from_static(METHODS));
        return Ok(resp);
    }
    decorate(allowed, request.get(header::ORIGIN), resp.headers_mut());
    if !resp.headers().contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
        return Err(Refusal::new(403, "origin not allowed by cors_origins"));
    }
    let method = request.get(header::ACCESS_CONTROL_REQUEST_METHOD).and_then(|m| m.to_str().ok());
    if !matches!(method, Some("GET" | "POST" | "QUERY") | None) {
        return Err(Refusal::new(403, "method not allowed by CORS"));
    }
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(METHODS));
    let requested = request.get(header::ACCESS_CONTROL_REQUEST_HEADERS).cloned();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        requested.unwrap_or(HeaderValue::from_static("authorization, cache-control, content-type, last-event-id")),
    );
    h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    Ok(resp)
}

/// Is this a method we answer preflights for?
pub fn is_preflight(method: &Method) -> bool {
    method == Method::OPTIONS
}
