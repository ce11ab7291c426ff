//! The debugging page served at `/` (and `/.well-known/mercure/debug/`) when `ui` or `demo`
//! (or the Go hub 1.0's `debugger`, `playground`) is on: subscribe, publish, watch events,
//! list active subscriptions. Self-contained: its few assets are compiled in and served under
//! `/ui/`, nothing comes from a CDN, and a strict Content-Security-Policy keeps it that way (no
//! inline script or style; the page talks to its own origin only).

use hyper::StatusCode;
use hyper::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HeaderName, HeaderValue};

use super::response::{self, Resp};

const INDEX: &str = include_str!("ui/index.html");

/// Where the Go hub 1.0 serves its debugger page; served here too (the page's links are
/// absolute, so it works from either path).
pub const GO_DEBUG_PATH: &str = "/.well-known/mercure/debug/";

/// `/ui/<name>` → (body, content type).
const ASSETS: &[(&str, &str, &str)] = &[
    ("app.js", include_str!("ui/app.js"), "text/javascript; charset=utf-8"),
    ("style.css", include_str!("ui/style.css"), "text/css; charset=utf-8"),
    ("favicon.svg", include_str!("ui/favicon.svg"), "image/svg+xml"),
];

const CSP: &str = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; \
form-action 'self'; frame-ancestors 'none'";

/// `GET /`: the page.
pub fn page() -> Resp {
    let mut r = serve(INDEX, "text/html; charset=utf-8");
    let h = r.headers_mut();
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(HeaderName::from_static("x-frame-options"), HeaderValue::from_static("DENY"));
    h.insert(HeaderName::from_static("referrer-policy"), HeaderValue::from_static("same-origin"));
    r
}

/// `GET /ui/<name>`: one of the page's assets, `None` (a 404 for the caller) for anything else.
/// Takes the request path, with or without its `/ui/` prefix.
pub fn asset(path: &str) -> Option<Resp> {
    let name = path.strip_prefix("/ui/").unwrap_or(path);
    ASSETS.iter().find(|(n, _, _)| *n == name).map(|(_, body, ct)| serve(body, ct))
}

fn serve(body: &'static str, content_type: &'static str) -> Resp {
    let mut r = response::text(StatusCode::OK, body);
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    // The assets change with the binary: revalidate rather than serve a stale page after an upgrade.
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(HeaderName::from_static("x-content-type-options"), HeaderValue::from_static("nosniff"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_are_served_with_their_type() {
        let r = asset("/ui/app.js").unwrap();
        assert_eq!(r.headers()[CONTENT_TYPE], "text/javascript; charset=utf-8");
        assert_eq!(asset("style.css").unwrap().headers()[CONTENT_TYPE], "text/css; charset=utf-8");
        assert!(asset("/ui/../Cargo.toml").is_none());
        assert!(asset("/ui/").is_none());
        assert!(asset("/ui/index.html").is_none());
    }

    #[test]
    fn page_is_self_contained() {
        let r = page();
        assert_eq!(r.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
        assert!(r.headers()[CONTENT_SECURITY_POLICY].to_str().unwrap().starts_with("default-src 'self'"));
        // No inline script or style, no external asset: every src/href is a local /ui/ path.
        assert!(!INDEX.contains("<script>") && !INDEX.contains("<style") && !INDEX.contains(" style="));
        for attr in ["src=\"", "href=\""] {
            for part in INDEX.split(attr).skip(1) {
                assert!(part.starts_with("/ui/"), "non-local asset: {}", &part[..part.len().min(40)]);
            }
        }
        let total: usize = INDEX.len() + ASSETS.iter().map(|(_, b, _)| b.len()).sum::<usize>();
        assert!(total < 32 * 1024, "the page grew to {total} bytes");
    }

    #[test]
    fn app_never_renders_html() {
        let (_, js, _) = ASSETS[0];
        assert!(!js.contains("innerHTML") && !js.contains("outerHTML") && !js.contains("insertAdjacentHTML"));
    }
}
