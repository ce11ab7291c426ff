//! Building responses, and the one place where an error becomes an HTTP status.

use hyper::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::{Response, StatusCode};

use super::body::HubBody;

pub type Resp = Response<HubBody>;

/// A refused request: its status and a short, lowercase, one-line reason for the client.
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    pub reason: String,
    /// An RFC 6750 challenge (Mercure 1.0 requests; see `dialect`).
    pub www_authenticate: Option<HeaderValue>,
}

impl Refusal {
    pub fn new(status: u16, reason: impl Into<String>) -> Self {
        Refusal {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            reason: reason.into(),
            www_authenticate: None,
        }
    }

    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self::new(400, reason)
    }
}

impl From<crate::auth::AuthError> for Refusal {
    fn from(e: crate::auth::AuthError) -> Self {
        Refusal::new(e.status(), e.to_string())
    }
}

pub fn text(status: StatusCode, body: impl Into<bytes::Bytes>) -> Resp {
    let mut r = Response::new(HubBody::full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

pub fn refused(refusal: &Refusal) -> Resp {
    let mut r = text(refusal.status, format!("{}\n", refusal.reason));
    if refusal.status == StatusCode::SERVICE_UNAVAILABLE || refusal.status == StatusCode::TOO_MANY_REQUESTS {
        r.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    if let Some(challenge) = &refusal.www_authenticate {
        r.headers_mut().insert(WWW_AUTHENTICATE, challenge.clone());
    }
    r
}

/// The response written straight to a socket accepted past the connection ceiling: it never
/// reaches hyper, so it costs no task and no buffers.
pub const OVER_CAPACITY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n\
Retry-After: 1\r\nConnection: close\r\nContent-Length: 32\r\n\r\ntoo many connections, try again\n";
