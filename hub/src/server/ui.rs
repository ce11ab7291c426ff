//! The page served at `/` when `ui` or `demo` is on: a minimal, self-contained status page
//! (no external assets).

use hyper::StatusCode;
use hyper::header::{CONTENT_TYPE, HeaderValue};

use super::response::{self, Resp};

const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Mercure hub</title></head>
<body><h1>Mercure hub</h1><p>The hub endpoint is <code>/.well-known/mercure</code>.</p></body></html>
"#;

pub fn page() -> Resp {
    let mut r = response::text(StatusCode::OK, PAGE);
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    r
}
