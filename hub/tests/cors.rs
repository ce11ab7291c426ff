//! CORS: only configured origins are echoed (with credentials), `*` is echoed without
//! credentials, preflights are answered 204 or refused 403.

mod common;

use common::*;

const TOPIC: &str = "https://example.com/books/1";
const APP: &str = "https://app.example";

async fn preflight(hub: &HubProcess, origin: &str, method: &str, headers: Option<&str>) -> Response {
    let mut h = vec![("Origin", origin), ("Access-Control-Request-Method", method)];
    if let Some(v) = headers {
        h.push(("Access-Control-Request-Headers", v));
    }
    request(hub.addr(), "OPTIONS", "/.well-known/mercure", &h, None).await
}

#[tokio::test]
async fn allowed_origins_are_echoed_with_credentials_on_streams_publishes_and_refusals() {
    let hub = HubProcess::with_directives(&format!("anonymous\ncors_origins {APP} https://other.example"));
    let sub = SseStream::connect(hub.addr(), &subscribe_path(&[TOPIC], &[]), &[("Origin", APP)]).await;
    assert_eq!(sub.header("access-control-allow-origin"), Some(APP));
    assert_eq!(sub.header("access-control-allow-credentials"), Some("true"));
    assert!(sub.header("vary").is_some_and(|v| v.contains("Origin")), "{:?}", sub.headers);

    let auth = format!("Bearer {}", publisher_token(&["*"]));
    let body = form(&[("topic", TOPIC)]);
    let published = request(
        hub.addr(),
        "POST",
        "/.well-known/mercure",
        &[("Authorization", &auth), ("Origin", "https://other.example")],
        Some(body.as_bytes()),
    )
    .await;
    assert_eq!(published.status, 200);
    assert_eq!(published.header("access-control-allow-origin"), Some("https://other.example"));

    // A browser must be able to read why it was refused.
    let refused = request(hub.addr(), "POST", "/.well-known/mercure", &[("Origin", APP)], Some(body.as_bytes())).await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.header("access-control-allow-origin"), Some(APP));
}

#[tokio::test]
async fn other_origins_get_no_cors_headers() {
    let hub = HubProcess::with_directives(&format!("anonymous\ncors_origins {APP}"));
    let sub =
        SseStream::connect(hub.addr(), &subscribe_path(&[TOPIC], &[]), &[("Origin", "https://evil.example")]).await;
    assert_eq!(sub.header("access-control-allow-origin"), None);
    assert_eq!(sub.header("access-control-allow-credentials"), None);
    // A prefix of an allowed origin is another origin.
    let sub =
        SseStream::connect(hub.addr(), &subscribe_path(&[TOPIC], &[]), &[("Origin", "https://app.example.evil")]).await;
    assert_eq!(sub.header("access-control-allow-origin"), None);

    let unconfigured = HubProcess::with_directives("anonymous");
    let sub = SseStream::connect(unconfigured.addr(), &subscribe_path(&[TOPIC], &[]), &[("Origin", APP)]).await;
    assert_eq!(sub.header("access-control-allow-origin"), None);
    assert_eq!(preflight(&unconfigured, APP, "GET", None).await.status, 403);
}

#[tokio::test]
async fn preflights_are_204_for_allowed_origins_and_403_otherwise() {
    let hub = HubProcess::with_directives(&format!("cors_origins {APP}"));
    let ok = preflight(&hub, APP, "POST", Some("authorization, content-type")).await;
    assert_eq!(ok.status, 204);
    assert_eq!(ok.header("access-control-allow-origin"), Some(APP));
    assert_eq!(ok.header("access-control-allow-credentials"), Some("true"));
    let methods = ok.header("access-control-allow-methods").unwrap_or_default().to_owned();
    assert!(methods.contains("GET") && methods.contains("POST"), "allow-methods {methods:?}");
    let allowed_headers = ok.header("access-control-allow-headers").unwrap_or_default().to_ascii_lowercase();
    assert!(
        allowed_headers.contains("authorization") && allowed_headers.contains("content-type"),
        "allow-headers {allowed_headers:?}"
    );

    let get = preflight(&hub, APP, "GET", None).await;
    assert_eq!(get.status, 204);
    assert!(
        get.header("access-control-allow-headers").is_some_and(|h| h.to_ascii_lowercase().contains("last-event-id"))
    );

    let evil = preflight(&hub, "https://evil.example", "POST", None).await;
    assert_eq!(evil.status, 403);
    assert_eq!(evil.header("access-control-allow-origin"), None);
    assert_eq!(preflight(&hub, APP, "DELETE", None).await.status, 403);
}

#[tokio::test]
async fn a_wildcard_is_echoed_without_credentials() {
    let hub = HubProcess::with_directives("anonymous\ncors_origins *");
    let sub =
        SseStream::connect(hub.addr(), &subscribe_path(&[TOPIC], &[]), &[("Origin", "https://any.example")]).await;
    assert_eq!(sub.header("access-control-allow-origin"), Some("*"));
    assert_eq!(sub.header("access-control-allow-credentials"), None);
    let pre = preflight(&hub, "https://any.example", "GET", None).await;
    assert_eq!(pre.status, 204);
    assert_eq!(pre.header("access-control-allow-origin"), Some("*"));
    assert_eq!(pre.header("access-control-allow-credentials"), None);
}
