//! Fault injection, so tests can prove that a panic inside a request is contained.
//!
//! Only in debug builds (what the integration tests run), and only when the hub was started
//! with `MERCURE_FAULT_INJECTION=1`: a request carrying `X-Mercure-Fault: <point>` panics at
//! that point. A release build compiles every call to nothing.
//!
//! Points: `publish` (after the token check, before the update is built), `subscribe` (after
//! the subscriber was registered, before its stream is built), `route` (first thing in the
//! hyper path, for any request).

use hyper::header::HeaderMap;

/// Panics when `headers` ask for a fault at `point` and injection is enabled.
#[cfg(debug_assertions)]
pub fn inject(headers: &HeaderMap, point: &str) {
    static ENABLED: std::sync::LazyLock<bool> =
        std::sync::LazyLock::new(|| std::env::var_os("MERCURE_FAULT_INJECTION").is_some_and(|v| v == "1"));
    if *ENABLED && headers.get("x-mercure-fault").is_some_and(|v| v.as_bytes() == point.as_bytes()) {
        panic!("fault injected at {point}");
    }
}

/// Release builds: nothing.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn inject(_headers: &HeaderMap, _point: &str) {}
