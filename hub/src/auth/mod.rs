//! Authorization: where a token is found, how it is verified, and what it grants.
//!
//! Every token format ends up as [`Grants`]: the publish selectors, the subscribe selectors
//! and the payload. The 0.x format (the `mercure` claim) is parsed in [`jwt`]; the 1.0
//! `authorization_details` format becomes a second parser producing the same `Grants`, so the
//! publish and subscribe handlers never look at claims themselves.
//!
//! Keys: [`keys::KeySource`] gives the key (and pinned algorithm) that verifies a token, from
//! a static key or a JWK Set ([`jwks`]: fetched by [`fetch`], parsed and matched to a token's
//! header by [`jwk_set`]); a [`Verifier`] holds one per role.
//!
//! Token sources, in order (the first present wins, and a broken one is an error, never a
//! fall-through to the next): the `Authorization: Bearer` header, the `authorization` query
//! parameter, the cookie (`mercureAuthorization` unless `cookie_name` says otherwise). A cookie
//! rides along with cross-site requests, so a publish authenticated by cookie must come from an
//! origin listed in `publish_origins` (CSRF protection); safe methods need no such check.

pub mod access;
mod fetch;
pub mod jwk_set;
pub mod jwks;
pub mod jwt;
pub mod keys;

use std::time::SystemTime;

use hyper::header::{AUTHORIZATION, COOKIE, HeaderMap, ORIGIN, REFERER};

pub use jwks::{JwksLimits, JwksSpec};
pub use jwt::{KeySpec, Verifier};
pub use keys::KeySource;

/// What a verified token allows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grants {
    /// `mercure.publish`: selectors of the topics its bearer may publish to.
    pub publish: Vec<String>,
    /// `mercure.subscribe`: selectors of the topics whose private updates its bearer may receive.
    pub subscribe: Vec<String>,
    /// `mercure.payload`: opaque data attached to subscription events.
    pub payload: Option<serde_json::Value>,
    /// `exp`: when the token stops being valid (a subscription ends then).
    pub expires_at: Option<SystemTime>,
    /// A Mercure 1.0 access token's grants (then `publish`, `subscribe` and `payload` are
    /// empty); `None` for a 0.x token. See [`access`].
    pub access: Option<std::sync::Arc<access::AccessGrants>>,
}

impl Grants {
    /// Whether the token was a Mercure 1.0 access token.
    pub fn is_access_token(&self) -> bool {
        self.access.is_some()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no authorization token")]
    Missing,
    #[error("invalid Authorization header: expected \"Bearer <token>\"")]
    BadHeader,
    #[error("token expired")]
    Expired,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("an Origin or Referer header is required with cookie authorization")]
    NoOrigin,
    #[error("origin {0} is not allowed to publish")]
    OriginNotAllowed(String),
}

impl AuthError {
    /// 403 for a valid credential used from the wrong place; 401 for everything else.
    pub fn status(&self) -> u16 {
        match self {
            AuthError::NoOrigin | AuthError::OriginNotAllowed(_) => 403,
            _ => 401,
        }
    }
}

/// Where a token was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    Header,
    Query,
    Cookie,
}

/// Finds the token of a request; `Ok(None)` when there is none (anonymous).
pub fn extract<'a>(
    headers: &'a HeaderMap,
    query_token: Option<&'a str>,
    cookie_name: &str,
) -> Result<Option<(&'a str, TokenSource)>, AuthError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    if let Some(value) = values.next() {
        if values.next().is_some() {
            return Err(AuthError::BadHeader);
        }
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::BadHeader)?;
        return Ok(Some((token, TokenSource::Header)));
    }
    if let Some(t) = query_token {
        return Ok(Some((t, TokenSource::Query)));
    }
    Ok(cookie(headers, cookie_name).map(|t| (t, TokenSource::Cookie)))
}

/// The value of cookie `name`, from any `Cookie` header.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
}

/// The CSRF check for cookie-authenticated publishes: the request's origin (its `Origin`
/// header, else the scheme and authority of its `Referer`) must be listed, or `*` listed.
pub fn check_publish_origin(headers: &HeaderMap, allowed: &[String]) -> Result<(), AuthError> {
    let origin = match headers.get(ORIGIN).and_then(|v| v.to_str().ok()) {
        Some(o) => o.to_owned(),
        None => {
            let referer = headers.get(REFERER).and_then(|v| v.to_str().ok()).ok_or(AuthError::NoOrigin)?;
            origin_of(referer).ok_or(AuthError::NoOrigin)?
        }
    };
    if allowed.iter().any(|a| a == "*" || a.trim_end_matches('/') == origin) {
        Ok(())
    } else {
        Err(AuthError::OriginNotAllowed(origin))
    }
}

/// `scheme://authority` of an absolute URL.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    (!authority.is_empty()).then(|| format!("{scheme}://{authority}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    #[test]
    fn header_wins_then_query_then_cookie() {
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_static("a=1; mercureAuthorization=c"));
        assert_eq!(extract(&h, None, "mercureAuthorization").unwrap(), Some(("c", TokenSource::Cookie)));
        assert_eq!(extract(&h, Some("q"), "mercureAuthorization").unwrap(), Some(("q", TokenSource::Query)));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer hdr"));
        assert_eq!(extract(&h, Some("q"), "mercureAuthorization").unwrap(), Some(("hdr", TokenSource::Header)));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(extract(&h, None, "x"), Err(AuthError::BadHeader));
    }

    #[test]
    fn origin_check() {
        let allowed = vec!["https://a.example".to_owned()];
        let mut h = HeaderMap::new();
        assert_eq!(check_publish_origin(&h, &allowed), Err(AuthError::NoOrigin));
        h.insert(REFERER, HeaderValue::from_static("https://a.example/page?x=1"));
        assert_eq!(check_publish_origin(&h, &allowed), Ok(()));
        h.insert(ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert!(matches!(check_publish_origin(&h, &allowed), Err(AuthError::OriginNotAllowed(_))));
    }
}
