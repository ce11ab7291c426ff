//! Which protocol a request speaks (Mercure 0.x or 1.0), and the 1.0 ways of answering it:
//! the hub's resource identity and RFC 6750 bearer errors.
//!
//! Rules (the README's "Dialects" section says the same):
//! - a subscription is 1.0 when it names a matcher (`match`, `match_exact`,
//!   `match_urlpattern`, or the later drafts' `matchExact` / `matchURLPattern`) or uses the
//!   `QUERY` method, 0.x when it names a `topic`; naming both is refused (400);
//! - a publish, a subscriptions-API call or any other request is 1.0 when its token is an
//!   access token (`typ: at+jwt`), 0.x otherwise;
//! - either kind of token is accepted on a request of either dialect (a 0.x token keeps its
//!   0.x selectors, URI templates included); with `legacy_dialect off` only 1.0 requests and
//!   access tokens are accepted;
//! - 1.0 requests get RFC 6750 errors (`WWW-Authenticate: Bearer`, with `error=` for a token
//!   that was presented and `resource_metadata=`); 0.x requests keep the 0.x answers.
//!
//! The resource identifier is the `resource_identifier` directive, else
//! `{scheme}://{host}/.well-known/mercure` from the request (scheme `https` when the hub
//! serves TLS), restricted to the `public_urls` origins when that directive is set, so a
//! client cannot make the hub accept a token minted for another hub by changing `Host` unless
//! the operator allows that origin.

use hyper::HeaderMap;
use hyper::header::{HOST, HeaderValue};

use crate::auth::AuthError;
use crate::auth::access::{self, AccessGrants, Audience};

use super::State;
use super::response::Refusal;

/// The protocol a request speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Legacy,
    V1,
}

/// Where the protected-resource metadata of a hub is, relative to its origin (RFC 9728 §3.1).
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource/.well-known/mercure";

/// The hub's identity for one request.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// The resource identifier, required in an access token's `aud`.
    pub resource: Option<String>,
    /// The absolute URL of the protected-resource metadata.
    pub metadata_url: Option<String>,
}

/// The hub's identity as seen by a request with these headers (`:authority` arrives as
/// `Host` through hyper for HTTP/2 too; `authority` is the URI's, when absolute).
pub fn identity(state: &State, headers: &HeaderMap, authority: Option<&str>) -> Identity {
    if let Some(r) = &state.settings.resource_identifier {
        let metadata_url = url::Url::parse(r)
            .ok()
            .filter(|u| u.host_str().is_some())
            .map(|u| format!("{}{METADATA_PATH}", u.origin().ascii_serialization()));
        return Identity { resource: Some(r.clone()), metadata_url };
    }
    let host = authority.or_else(|| headers.get(HOST).and_then(|h| h.to_str().ok())).filter(|h| valid_host(h));
    let Some(host) = host else { return Identity::default() };
    let scheme = if state.tls_enabled() { "https" } else { "http" };
    let origin = format!("{scheme}://{host}");
    let public = &state.settings.public_urls;
    if !public.is_empty() && !public.iter().any(|p| p.eq_ignore_ascii_case(&origin)) {
        return Identity::default();
    }
    Identity {
        resource: Some(format!("{origin}/.well-known/mercure")),
        metadata_url: Some(format!("{origin}{METADATA_PATH}")),
    }
}

/// A host (and port) safe to put in a URL and a header: no path, userinfo or spaces.
fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && h.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']' | b'_'))
}

/// Checks a 1.0 token's `aud` and `iss` against the hub's identity (0.x tokens pass).
pub fn check_token(
    state: &State,
    identity: &Identity,
    access: Option<&std::sync::Arc<AccessGrants>>,
) -> Result<(), AuthError> {
    let Some(access) = access else {
        if state.settings.legacy_dialect {
            return Ok(());
        }
        return Err(AuthError::Invalid("0.x tokens are refused (legacy_dialect off)".into()));
    };
    access::check_audience_and_issuer(
        access,
        Audience { resource: identity.resource.as_deref(), issuers: &state.settings.trusted_issuers },
    )
}

/// RFC 6750 §3 error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BearerError {
    /// No token where one is needed: 401 without an error code.
    Challenge,
    InvalidRequest,
    InvalidToken,
    InsufficientScope,
}

impl BearerError {
    fn code(self) -> Option<&'static str> {
        match self {
            BearerError::Challenge => None,
            BearerError::InvalidRequest => Some("invalid_request"),
            BearerError::InvalidToken => Some("invalid_token"),
            BearerError::InsufficientScope => Some("insufficient_scope"),
        }
    }

    fn status(self) -> u16 {
        match self {
            BearerError::Challenge | BearerError::InvalidToken => 401,
            BearerError::InvalidRequest => 400,
            BearerError::InsufficientScope => 403,
        }
    }

    /// The RFC 6750 reading of an authorization failure.
    pub fn of(e: &AuthError) -> Self {
        match e {
            AuthError::Missing => BearerError::Challenge,
            AuthError::BadHeader | AuthError::NoOrigin | AuthError::OriginNotAllowed(_) => BearerError::InvalidRequest,
            AuthError::Expired | AuthError::Invalid(_) => BearerError::InvalidToken,
        }
    }
}

/// A refusal carrying an RFC 6750 challenge.
pub fn bearer(kind: BearerError, reason: impl Into<String>, identity: &Identity) -> Refusal {
    let mut challenge = String::from("Bearer");
    let mut sep = " ";
    if let Some(code) = kind.code() {
        challenge.push_str(&format!("{sep}error=\"{code}\""));
        sep = ", ";
    }
    if let Some(url) = &identity.metadata_url {
        challenge.push_str(&format!("{sep}resource_metadata=\"{url}\""));
    }
    let mut r = Refusal::new(kind.status(), reason);
    r.www_authenticate = HeaderValue::from_str(&challenge).ok();
    r
}

/// An authorization failure, answered in the request's dialect.
pub fn auth_refusal(dialect: Dialect, e: AuthError, identity: &Identity) -> Refusal {
    match dialect {
        Dialect::Legacy => e.into(),
        Dialect::V1 => bearer(BearerError::of(&e), e.to_string(), identity),
    }
}

/// Any refusal, answered in the request's dialect: a 1.0 400 is `invalid_request`, a 1.0 403 is
/// `insufficient_scope` (both with their challenge); other statuses are unchanged.
pub fn in_dialect(dialect: Dialect, r: Refusal, identity: &Identity) -> Refusal {
    if dialect == Dialect::Legacy || r.www_authenticate.is_some() {
        return r;
    }
    match r.status.as_u16() {
        400 => bearer(BearerError::InvalidRequest, r.reason, identity),
        403 => bearer(BearerError::InsufficientScope, r.reason, identity),
        _ => r,
    }
}

/// RFC 9728 protected-resource metadata for this hub (`GET` [`METADATA_PATH`]): the resource
/// identifier to put in `aud`, the authorization servers (`issuer … { authorization_server }`),
/// how tokens may be presented, and the Mercure extensions this hub implements.
pub fn metadata<B>(state: &State, req: &hyper::Request<B>) -> super::response::Resp {
    let identity = identity(state, req.headers(), req.uri().authority().map(|a| a.as_str()));
    let s = &state.settings;
    let mut doc = serde_json::json!({
        "resource": identity.resource,
        "bearer_methods_supported": ["header", "query"],
        "authorization_details_types_supported": access::DETAIL_TYPES,
        "mercure_cookie": s.cookie_name,
        "mercure_version": 8,
        "mercure_subscriptions": s.subscriptions,
    });
    if !s.authorization_servers.is_empty()
        && let Some(map) = doc.as_object_mut()
    {
        map.insert("authorization_servers".into(), serde_json::json!(s.authorization_servers));
    }
    let mut resp = super::response::text(hyper::StatusCode::OK, doc.to_string());
    resp.headers_mut().insert(hyper::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}
