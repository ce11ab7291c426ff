//! `GET /.well-known/mercure/demo/…` (the `demo` directive): the Go hub's demo endpoint, for
//! trying browser apps against the hub. It answers with the `body` query parameter as the
//! document, the discovery `Link` headers, and sets the authorization cookie from `jwt`.

use hyper::header::{CONTENT_TYPE, HeaderValue, LINK, SET_COOKIE};
use hyper::{Request, StatusCode};

use super::response::{self, Refusal, Resp};
use super::{MERCURE_PATH, State};

/// The demo endpoint's path prefix.
pub const DEMO_PATH: &str = "/.well-known/mercure/demo";

pub fn handle<B>(state: &State, req: &Request<B>) -> Result<Resp, Refusal> {
    let body = super::query_param(req.uri().query(), "body").unwrap_or_default();
    let jwt = super::query_param(req.uri().query(), "jwt");
    let mut resp = response::text(StatusCode::OK, body);
    let h = resp.headers_mut();
    let content_type = match req.uri().path().rsplit_once('.').map(|(_, ext)| ext) {
        Some("json" | "jsonld") => "application/ld+json",
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("xml") => "application/xml",
        _ => "text/plain; charset=utf-8",
    };
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    let self_link = format!("<{}>; rel=\"self\"", req.uri());
    h.append(LINK, HeaderValue::from_static(r#"</.well-known/mercure>; rel="mercure""#));
    if let Ok(v) = HeaderValue::from_str(&self_link) {
        h.append(LINK, v);
    }
    if let Some(jwt) = jwt {
        let cookie = format!("{}={jwt}; Path={MERCURE_PATH}; SameSite=Strict; HttpOnly", state.settings.cookie_name);
        let v = HeaderValue::from_str(&cookie).map_err(|_| Refusal::bad_request("jwt is not a valid cookie value"))?;
        h.insert(SET_COOKIE, v);
    }
    Ok(resp)
}
