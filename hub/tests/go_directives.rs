//! Every directive the Go hub documents, for 0.24 (`docs/hub/config.md` at the v0.24.x tags)
//! and for 1.0 (`docs/deployment/configuration.md` on main), fed at once as
//! `MERCURE_EXTRA_DIRECTIVES` to the real binary: start-up must succeed, each directive this
//! hub does not act on must be named once in the start-up logs with its reason, and the ones it
//! maps must act.
//!
//! The arguments are the docs' own examples or defaults. Left out: `transport redis { … }`
//! (needs a Redis server: `tests/cluster.rs` covers it) and Caddy's own directives (outside the
//! `mercure` block, so never in `MERCURE_EXTRA_DIRECTIVES`).

mod common;

use std::time::Duration;

use common::*;

/// The Go hub 0.24's directive table, in the docs' order.
const GO_0_24: &str = r#"
publisher_jwt !ChangeThisMercureHubJWTSecretKey!
subscriber_jwt !ChangeThisMercureHubJWTSecretKey! HS256
publisher_jwks_url https://idp.example.com/.well-known/jwks.json
subscriber_jwks_url https://idp.example.com/.well-known/jwks.json
anonymous
publish_origins https://example.com
cors_origins https://example.com https://admin.example.com
cookie_name mercureAuthorization
subscriptions
heartbeat 40s
transport bolt {
    path mercure.db
    bucket_name updates
    cleanup_frequency 0.3
    size 1000
}
dispatch_timeout 5s
write_timeout 600s
protocol_version_compatibility 7
demo
ui
topic_selector_cache 10000 256
subscriber_list_cache_size 100000
transport_url bolt://mercure.db?bucket_name=demo&size=1000&cleanup_frequency=0.5
lru_cache 100
"#;

/// The Go hub 1.0's directive table (and its issuer block's sub-directives).
const GO_1_0: &str = r#"
issuer https://example.com {
    authorization_server
    publisher {
        jwt !ChangeThisMercureHubJWTSecretKey! HS256
    }
    subscriber {
        jwks_uri https://example.com/jwks RS256 ES256
    }
}
resource_identifier https://hub.example.com/.well-known/mercure
public_urls https://hub.example.com https://hub.example.org
name main
anonymous
publish_origins https://*.example.com
cors_origins https://example.com
cookie_name __Secure-mercure_access_token
protocol_version_compatibility 8
subscriptions
heartbeat 40s
max_request_body_size 512KB
transport local
dispatch_timeout 5s
write_timeout 600s
drain_timeout 0s
topic_matcher_cache 100000
subscriber_list_cache_size 100000
debugger
playground
"#;

fn inactive_logged(hub: &HubProcess, directive: &str) -> bool {
    hub.logs()
        .lines()
        .any(|l| l.contains("directive accepted but not active") && l.contains(&format!("directive={directive} ")))
}

#[tokio::test]
async fn the_go_hub_0_24_directives_start_the_hub() {
    let hub = HubProcess::start(&[("MERCURE_EXTRA_DIRECTIVES", GO_0_24)]);
    for d in ["topic_selector_cache", "subscriber_list_cache_size", "lru_cache"] {
        assert!(inactive_logged(&hub, d), "{d} not reported inactive; logs:\n{}", hub.logs());
    }
    // `*_jwks_url` act: as in the Go hub, a role's JWK Set takes precedence over its
    // `*_jwt` key (said at start-up), so a token signed with that key is refused; the docs'
    // identity provider is not reachable from here, which is logged and does not stop the hub.
    for d in ["publisher_jwt", "subscriber_jwt"] {
        assert!(inactive_logged(&hub, d), "{d} not reported as superseded; logs:\n{}", hub.logs());
    }
    let token = hs256("!ChangeThisMercureHubJWTSecretKey!", &serde_json::json!({"mercure": {"publish": ["*"]}}));
    let r = publish(hub.addr(), &token, &[("topic", "https://example.com/a"), ("data", "x")]).await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(hub.wait_for_log("JWK Set refresh failed", Duration::from_secs(15)), "logs:\n{}", hub.logs());
    // `ui`/`demo` serve the page; `anonymous` lets a subscriber in without a token.
    let sub = SseStream::status_of(hub.addr(), &subscribe_path(&["https://example.com/a"], &[]), &[]).await;
    assert_eq!(sub.0, 200);
    assert_eq!(request(hub.addr(), "GET", "/", &[], None).await.status, 200);
}

#[tokio::test]
async fn the_go_hub_1_0_directives_start_the_hub() {
    let hub = HubProcess::start(&[("MERCURE_EXTRA_DIRECTIVES", GO_1_0)]);
    for d in ["drain_timeout", "topic_matcher_cache", "subscriber_list_cache_size"] {
        assert!(inactive_logged(&hub, d), "{d} not reported inactive; logs:\n{}", hub.logs());
    }
    // The issuer block's publisher key is the key; `name` names the health paths;
    // `playground` serves the page; `max_request_body_size 512KB` bounds publishes.
    let token = hs256("!ChangeThisMercureHubJWTSecretKey!", &serde_json::json!({"mercure": {"publish": ["*"]}}));
    publish_ok(hub.addr(), &token, &[("topic", "https://example.com/a"), ("data", "x")]).await;
    assert_eq!(request(hub.addr(), "GET", "/mercure/health/main/ready", &[], None).await.status, 200);
    assert_eq!(request(hub.addr(), "GET", "/", &[], None).await.status, 200);
    let page = request(hub.addr(), "GET", "/.well-known/mercure/debug/", &[], None).await;
    assert_eq!(page.status, 200, "the 1.0 debugger path");
    assert!(page.text().contains("/ui/app.js"), "{}", page.text());
    let big = "x".repeat(520_000);
    let r = publish(hub.addr(), &token, &[("topic", "https://example.com/a"), ("data", &big)]).await;
    assert_eq!(r.status, 413, "{}", r.text());
    // Logged once each, at start-up.
    let lines = hub.logs().lines().filter(|l| l.contains("directive=drain_timeout ")).count();
    assert_eq!(lines, 1, "logs:\n{}", hub.logs());
}

/// The Go image's other variables: `GLOBAL_OPTIONS` may move the admin API (`admin …`), the
/// rest of it and the Caddy snippets are logged as not read.
#[tokio::test]
async fn the_go_image_global_options_are_read_for_admin_and_logged_otherwise() {
    let hub = HubProcess::start(&[
        ("MERCURE_PUBLISHER_JWT_KEY", KEY),
        ("GLOBAL_OPTIONS", "debug\nadmin 127.0.0.1:0\nservers {\n    metrics\n}"),
        ("CADDY_SERVER_EXTRA_DIRECTIVES", "encode gzip"),
    ]);
    assert!(hub.wait_for_log("admin_addr=", Duration::from_secs(10)), "logs:\n{}", hub.logs());
    let logs = hub.logs();
    let admin: std::net::SocketAddr =
        logs.split("admin_addr=").nth(1).and_then(|r| r.split_whitespace().next()?.parse().ok()).expect("address");
    assert_ne!(admin.port(), 2019, "GLOBAL_OPTIONS moved the admin listener off the default");
    for d in ["GLOBAL_OPTIONS/debug", "GLOBAL_OPTIONS/servers", "CADDY_SERVER_EXTRA_DIRECTIVES"] {
        assert!(inactive_logged(&hub, d), "{d} not reported; logs:\n{}", hub.logs());
    }
    assert!(!inactive_logged(&hub, "GLOBAL_OPTIONS/admin"), "admin is honoured");
}

#[test]
fn an_unknown_directive_still_stops_start_up() {
    let (code, out) = run_to_exit(
        &[("MERCURE_PUBLISHER_JWT_KEY", KEY), ("MERCURE_EXTRA_DIRECTIVES", "anonymous\nno_such_directive 1")],
        &[],
        Duration::from_secs(10),
    );
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("line 2") && out.contains("no_such_directive"), "{out}");
}
