//! Mercure 1.0 beside 0.x, against the real binary: matchers, `QUERY`, access tokens, RFC 6750
//! errors, the 1.0 publish rules, discovery, the 1.0 subscription shape, and the dialect rules
//! (README "Dialects").

mod common;

use std::time::Duration;

use common::http::{form, publish, publish_ok, request};
use common::sse::{SseStream, assert_event};
use common::tokens::{KEY, hs256, publisher_token, subscriber_token, unix_time};
use common::{HubProcess, fresh_work_dir};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// The resource identifier the hub derives for the test client (`Host: 127.0.0.1`, no TLS).
const RESOURCE: &str = "http://127.0.0.1/.well-known/mercure";
const METADATA: &str = "http://127.0.0.1/.well-known/oauth-protected-resource/.well-known/mercure";

/// Signs an RFC 9068 access token (`typ: at+jwt`) with [`KEY`].
fn access_token(claims: &Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some("at+jwt".into());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(KEY.as_bytes())).expect("sign")
}

/// An access token for this hub with these `authorization_details`, valid for an hour.
fn token_with(details: Value) -> String {
    access_token(&json!({"aud": RESOURCE, "exp": unix_time(3600), "sub": "user-1", "authorization_details": details}))
}

fn detail(actions: &[&str], topics: Value) -> Value {
    json!({"type": "https://mercure.rocks/authorization-detail", "actions": actions, "topics": topics})
}

fn publisher() -> String {
    token_with(json!([detail(&["publish"], json!([{"match": "*"}]))]))
}

fn hub(extra: &str) -> HubProcess {
    let directives = format!("anonymous\nadmin off\n{extra}");
    HubProcess::start(&[
        ("MERCURE_PUBLISHER_JWT_KEY", KEY),
        ("MERCURE_SUBSCRIBER_JWT_KEY", KEY),
        ("MERCURE_EXTRA_DIRECTIVES", &directives),
    ])
}

/// `/.well-known/mercure?` with these query pairs.
fn path(pairs: &[(&str, &str)]) -> String {
    format!("/.well-known/mercure?{}", form(pairs))
}

fn challenge(resp_header: Option<&str>) -> String {
    resp_header.unwrap_or_default().to_owned()
}

#[tokio::test]
async fn match_is_exact_and_match_urlpattern_is_a_url_pattern() {
    let hub = hub("");
    let a = hub.addr();
    let mut exact = SseStream::connect(a, &path(&[("match", "https://e.com/books/{id}")]), &[]).await;
    let mut pattern = SseStream::connect(a, &path(&[("match_urlpattern", "https://e.com/books/:id")]), &[]).await;
    let mut relative = SseStream::connect(a, &path(&[("matchURLPattern", "/rel/:x")]), &[]).await;
    let mut all = SseStream::connect(a, &path(&[("match_urlpattern", "*")]), &[]).await;
    let p = publisher();
    // No URI template in a 1.0 exact matcher: only the very same bytes match.
    let book = publish_ok(a, &p, &[("topic", "https://e.com/books/1"), ("data", "b1")]).await;
    let literal = publish_ok(a, &p, &[("topic", "https://e.com/books/{id}"), ("data", "lit")]).await;
    let deeper = publish_ok(a, &p, &[("topic", "https://e.com/books/1/pages"), ("data", "deep")]).await;
    let rel = publish_ok(a, &p, &[("topic", "/rel/7"), ("data", "r")]).await;
    assert_event(&exact.next_event().await, &literal, "lit");
    assert_event(&pattern.next_event().await, &book, "b1");
    // `{id}` is a segment too: the pattern takes the literal topic; not the deeper one.
    assert_event(&pattern.next_event().await, &literal, "lit");
    assert_event(&relative.next_event().await, &rel, "r");
    for (id, data) in [(&book, "b1"), (&literal, "lit"), (&deeper, "deep"), (&rel, "r")] {
        assert_event(&all.next_event().await, id, data);
    }
    exact.expect_silence(Duration::from_millis(200)).await;
    pattern.expect_silence(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn the_match_namespace_is_reserved_and_case_sensitive() {
    let hub = hub("");
    for q in [
        path(&[("match_template", "x")]),
        path(&[("Match", "x")]),
        path(&[("MATCH_URLPATTERN", "x")]),
        path(&[("matchurlpattern", "x")]),
        path(&[("match", "a"), ("topic", "b")]),
        path(&[("match", "a\u{85}b")]),
        path(&[("match_urlpattern", "https://e.com/(")]),
    ] {
        let (status, body) = SseStream::status_of(hub.addr(), &q, &[]).await;
        assert_eq!(status, 400, "{q}: {body}");
    }
    // The 400 of a 1.0 request is RFC 6750's invalid_request.
    let r = request(hub.addr(), "GET", &path(&[("matchFoo", "x")]), &[], None).await;
    assert_eq!(r.status, 400);
    assert!(challenge(r.header("www-authenticate")).contains("error=\"invalid_request\""), "{:?}", r.headers);
    // An unrelated parameter is fine.
    let (status, _) = SseStream::status_of(hub.addr(), &path(&[("match", "a"), ("other", "b")]), &[]).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn query_merges_its_body_and_last_event_id_resolves_as_the_spec_says() {
    let hub = hub("");
    let a = hub.addr();
    let p = publisher();
    let first = publish_ok(a, &p, &[("topic", "t"), ("id", "dup"), ("data", "1")]).await;
    let second = publish_ok(a, &p, &[("topic", "t"), ("data", "2")]).await;
    let again = publish_ok(a, &p, &[("topic", "t"), ("id", "dup"), ("data", "3")]).await;
    assert_eq!((first.as_str(), again.as_str()), ("dup", "dup"));

    // QUERY: the matcher in the body; `last_event_id` in the query wins over the body's.
    let body = form(&[("match", "t"), ("last_event_id", "earliest")]);
    let mut q =
        SseStream::connect_with(a, "QUERY", &path(&[("last_event_id", "dup")]), &[], Some(body.as_bytes())).await;
    assert_eq!(q.header("mercure-last-event-id"), Some("dup"));
    assert_eq!(q.header("last-event-id"), None, "1.0 requests get the 1.0 header only");
    // A repeated id resolves to its earliest retained copy.
    assert_event(&q.next_event().await, &second, "2");
    assert_event(&q.next_event().await, "dup", "3");

    // An unknown id is read as `earliest`: everything retained, and the header says so.
    let mut u = SseStream::connect(a, &path(&[("match", "t"), ("lastEventID", "nope")]), &[]).await;
    assert_eq!(u.header("mercure-last-event-id"), Some("earliest"));
    assert_event(&u.next_event().await, "dup", "1");
    // The header wins over the query parameter; a 0.x request gets both response headers.
    let legacy = format!("/.well-known/mercure?{}", form(&[("topic", "t"), ("lastEventID", "nope")]));
    let l = SseStream::connect(a, &legacy, &[("Last-Event-ID", &second)]).await;
    assert_eq!(
        (l.header("last-event-id"), l.header("mercure-last-event-id")),
        (Some(second.as_str()), Some(second.as_str()))
    );
}

#[tokio::test]
async fn access_tokens_grant_what_their_details_say() {
    let hub = hub("subscriptions");
    let a = hub.addr();
    let books = json!([{"match": "https://e.com/books/:id", "match_type": "urlpattern"}]);
    let publisher = token_with(json!([detail(&["publish", "teleport"], books.clone())]));
    let reader = token_with(json!([detail(&["subscribe"], json!([{"match": "https://e.com/books/1"}]))]));
    let auth = format!("Bearer {reader}");
    let mut granted =
        SseStream::connect(a, &path(&[("match_urlpattern", "https://e.com/books/:id")]), &[("Authorization", &auth)])
            .await;
    let mut anonymous = SseStream::connect(a, &path(&[("match_urlpattern", "https://e.com/books/:id")]), &[]).await;
    // Routing selects both books; the token lets the private update of book 1 through only.
    let two = publish_ok(a, &publisher, &[("topic", "https://e.com/books/2"), ("private", ""), ("data", "2")]).await;
    let one = publish_ok(a, &publisher, &[("topic", "https://e.com/books/1"), ("private", "on"), ("data", "1")]).await;
    let public = publish_ok(a, &publisher, &[("topic", "https://e.com/books/3"), ("data", "3")]).await;
    assert_ne!(two, one);
    assert_event(&granted.next_event().await, &one, "1");
    assert_event(&granted.next_event().await, &public, "3");
    assert_event(&anonymous.next_event().await, &public, "3");
    // Outside its details, the publisher gets 403 insufficient_scope.
    let r = publish(a, &publisher, &[("topic", "https://e.com/authors/1"), ("data", "x")]).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(challenge(r.header("www-authenticate")).contains("error=\"insufficient_scope\""));
    // 0.x tokens keep working, on both kinds of request.
    let legacy = format!("/.well-known/mercure?{}", form(&[("topic", "https://e.com/books/{id}")]));
    let auth0 = format!("Bearer {}", subscriber_token(&["https://e.com/books/{id}"]));
    let mut old = SseStream::connect(a, &legacy, &[("Authorization", &auth0)]).await;
    let mut mixed =
        SseStream::connect(a, &path(&[("match_urlpattern", "https://e.com/books/:id")]), &[("Authorization", &auth0)])
            .await;
    let id = publish_ok(a, &publisher_token(&["*"]), &[("topic", "https://e.com/books/9"), ("private", "on")]).await;
    assert_eq!(old.next_event().await.id.as_deref(), Some(id.as_str()));
    assert_eq!(mixed.next_event().await.id.as_deref(), Some(id.as_str()));
}

#[tokio::test]
async fn every_bad_token_is_401_invalid_token_and_no_token_is_a_bare_challenge() {
    let hub = hub("issuer https://as.example {\n publisher {\n  jwt integration-test-publisher-key-0123456789\n }\n}");
    let a = hub.addr();
    let d = json!([detail(&["publish"], json!([{"match": "*"}]))]);
    let base =
        json!({"aud": RESOURCE, "iss": "https://as.example", "exp": unix_time(3600), "authorization_details": d});
    let with = |k: &str, v: Value| {
        let mut c = base.clone();
        c[k] = v;
        access_token(&c)
    };
    let without = |k: &str| {
        let mut c = base.clone();
        c.as_object_mut().unwrap().remove(k);
        access_token(&c)
    };
    assert_eq!(publish(a, &access_token(&base), &[("topic", "x")]).await.status, 200);
    let bad = [
        ("no exp", without("exp")),
        ("expired", with("exp", json!(unix_time(-10)))),
        ("not yet valid", with("nbf", json!(unix_time(600)))),
        ("other audience", with("aud", json!("https://other.example/.well-known/mercure"))),
        ("no audience", without("aud")),
        ("untrusted issuer", with("iss", json!("https://evil.example"))),
        ("no issuer", without("iss")),
        ("malformed detail", with("authorization_details", json!([{"type": "mercure", "actions": ["publish"]}]))),
        (
            "bad pattern",
            with(
                "authorization_details",
                json!([detail(&["publish"], json!([{"match": "(", "match_type": "urlpattern"}]))]),
            ),
        ),
        ("bad signature", format!("{}x", access_token(&base))),
    ];
    for (why, token) in bad {
        let r = publish(a, &token, &[("topic", "x")]).await;
        assert_eq!(r.status, 401, "{why}: {}", r.text());
        let c = challenge(r.header("www-authenticate"));
        assert!(c.starts_with("Bearer ") && c.contains("error=\"invalid_token\""), "{why}: {c}");
        assert!(c.contains(&format!("resource_metadata=\"{METADATA}\"")), "{why}: {c}");
    }
    let r = publish(a, "", &[("topic", "x")]).await;
    let none = request(
        a,
        "POST",
        "/.well-known/mercure",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(b"topic=x"),
    )
    .await;
    assert!(matches!(r.status, 400 | 401));
    assert_eq!(none.status, 401);
    assert_eq!(challenge(none.header("www-authenticate")), format!("Bearer resource_metadata=\"{METADATA}\""));
}

#[tokio::test]
async fn publishes_follow_the_1_0_rules() {
    let hub = hub("");
    let a = hub.addr();
    let p = publisher();
    let ok = publish(a, &p, &[("topic", "https://e.com/a"), ("data", "x"), ("retry", "100")]).await;
    assert_eq!((ok.status, ok.header("content-type")), (200, Some("text/plain; charset=utf-8")));
    for (why, fields, status) in [
        ("two topics", vec![("topic", "a"), ("topic", "b")], 400),
        ("id #", vec![("topic", "a"), ("id", "#1")], 400),
        ("id earliest", vec![("topic", "a"), ("id", "earliest")], 400),
        ("C1 control in topic", vec![("topic", "a\u{85}")], 400),
        ("format char in topic", vec![("topic", "a\u{200b}b")], 400),
        ("type mercure", vec![("topic", "a"), ("type", "mercure")], 400),
        ("retry with a space", vec![("topic", "a"), ("retry", " 5")], 400),
        ("retry not digits", vec![("topic", "a"), ("retry", "1e3")], 400),
        ("topic *", vec![("topic", "*")], 400),
        ("reserved", vec![("topic", "/.well-known/mercure/subscriptions/exact/a/b")], 403),
        ("reserved, encoded", vec![("topic", "/.well-known/%6Dercure/x")], 403),
        ("reserved, dot segments", vec![("topic", "https://any.example/x/../.well-known/mercure")], 403),
    ] {
        let r = publish(a, &p, &fields).await;
        assert_eq!(r.status, status, "{why}: {}", r.text());
        let code = if status == 400 { "invalid_request" } else { "insufficient_scope" };
        assert!(challenge(r.header("www-authenticate")).contains(code), "{why}: {:?}", r.headers);
    }
    // The 0.x dialect keeps its own rules: alternate topics, any type, no challenge on a 400.
    let old = publisher_token(&["*"]);
    assert_eq!(publish(a, &old, &[("topic", "a"), ("topic", "b"), ("type", "mercure")]).await.status, 200);
    let r = publish(a, &old, &[("topic", "a"), ("id", "#1")]).await;
    assert_eq!((r.status, r.header("www-authenticate")), (400, None));
}

#[tokio::test]
async fn discovery_metadata_and_cors() {
    let dir = fresh_work_dir();
    let _ = dir;
    let hub = hub("cors_origins https://app.example\nsubscriptions");
    let a = hub.addr();
    let r = request(a, "GET", "/.well-known/oauth-protected-resource/.well-known/mercure", &[], None).await;
    assert_eq!((r.status, r.header("content-type")), (200, Some("application/json")));
    let doc: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(doc["resource"], RESOURCE);
    assert_eq!(doc["mercure_cookie"], "mercureAuthorization");
    assert_eq!(doc["mercure_subscriptions"], true);
    assert!(doc["bearer_methods_supported"].as_array().unwrap().contains(&json!("header")));
    assert!(doc["authorization_details_types_supported"].as_array().unwrap().contains(&json!("mercure")));
    assert!(doc.get("authorization_servers").is_none(), "self-issued tokens: no server listed");

    let pre = request(
        a,
        "OPTIONS",
        "/.well-known/mercure",
        &[("Origin", "https://app.example"), ("Access-Control-Request-Method", "QUERY")],
        None,
    )
    .await;
    assert_eq!(pre.status, 204, "{}", pre.text());
    assert!(pre.header("access-control-allow-methods").unwrap().contains("QUERY"));
    let s = SseStream::connect(
        a,
        &path(&[("match", "x"), ("lastEventID", "earliest")]),
        &[("Origin", "https://app.example")],
    )
    .await;
    let exposed = s.header("access-control-expose-headers").unwrap_or_default().to_ascii_lowercase();
    assert!(exposed.contains("mercure-last-event-id") && exposed.contains("link"), "{exposed}");

    // A configured resource identifier is what `aud` must name, whatever the Host.
    let pinned = hub_with_resource("https://hub.example/.well-known/mercure");
    let d = json!([detail(&["publish"], json!([{"match": "*"}]))]);
    let good = access_token(
        &json!({"aud": ["x", "https://hub.example/.well-known/mercure"], "exp": unix_time(60), "authorization_details": d}),
    );
    let derived = access_token(&json!({"aud": RESOURCE, "exp": unix_time(60), "authorization_details": d}));
    assert_eq!(publish(pinned.addr(), &good, &[("topic", "a")]).await.status, 200);
    assert_eq!(publish(pinned.addr(), &derived, &[("topic", "a")]).await.status, 401);
}

fn hub_with_resource(resource: &str) -> HubProcess {
    hub(&format!("resource_identifier {resource}"))
}

#[tokio::test]
async fn subscriptions_in_the_1_0_shape_beside_the_0_x_one() {
    let hub = hub("subscriptions");
    let a = hub.addr();
    let watcher_token = token_with(json!([detail(
        &["subscribe"],
        json!([{"match": "/.well-known/mercure/subscriptions/*", "match_type": "urlpattern"}])
    )]));
    let auth = format!("Bearer {watcher_token}");
    let mut v1 = SseStream::connect(
        a,
        &path(&[("match_urlpattern", "/.well-known/mercure/subscriptions/:type/:match/:subscriber")]),
        &[("Authorization", &auth)],
    )
    .await;
    let auth0 = format!("Bearer {}", subscriber_token(&["/.well-known/mercure/subscriptions{/topic}{/subscriber}"]));
    let legacy = format!(
        "/.well-known/mercure?{}",
        form(&[("topic", "/.well-known/mercure/subscriptions{/topic}{/subscriber}")])
    );
    let mut v0 = SseStream::connect(a, &legacy, &[("Authorization", &auth0)]).await;

    // A 1.0 subscriber joins with a payload from its token's matching detail.
    let payload_token = token_with(json!([
        {"type": "mercure", "actions": ["subscribe"], "topics": [{"match": "https://e.com/x"}], "payload": {"room": 7}}
    ]));
    let pauth = format!("Bearer {payload_token}");
    let joined = SseStream::connect(a, &path(&[("match", "https://e.com/x")]), &[("Authorization", &pauth)]).await;

    // Each watcher first sees its own subscription (1.0 and 0.x shape respectively).
    let own = v1.next_event().await;
    assert!(own.data.contains("/:type/:match/:subscriber"), "{own:?}");
    let own0 = v0.next_event().await;
    assert!(own0.data.contains("{/topic}{/subscriber}"), "{own0:?}");
    let ev = v1.next_event().await;
    assert_eq!(ev.event.as_deref(), Some("mercure"), "{ev:?}");
    let doc: Value = serde_json::from_str(&ev.data).unwrap();
    assert_eq!(
        (doc["type"].as_str(), doc["match"].as_str(), doc["match_type"].as_str()),
        (Some("subscription"), Some("https://e.com/x"), Some("exact"))
    );
    assert_eq!((doc["active"].as_bool(), &doc["payload"]), (Some(true), &json!({"room": 7})));
    assert!(doc.get("@context").is_none());
    let iri = doc["id"].as_str().unwrap().to_owned();
    assert!(iri.starts_with("/.well-known/mercure/subscriptions/exact/https%3A%2F%2Fe.com%2Fx/urn%3Auuid%3A"), "{iri}");
    // The 0.x watcher sees the same subscription as JSON-LD on the 0.x path, nothing else.
    let old = v0.next_event().await;
    let old_doc: Value = serde_json::from_str(&old.data).unwrap();
    assert_eq!(
        (old.event, old_doc["type"].as_str(), old_doc["topic"].as_str()),
        (None, Some("Subscription"), Some("https://e.com/x"))
    );
    assert_eq!(old_doc["@context"], "https://mercure.rocks/");
    v0.expect_silence(Duration::from_millis(200)).await;

    // The API in the 1.0 shape: plain JSON, the cursor as ETag, 304 when unchanged.
    let api = "/.well-known/mercure/subscriptions/exact/https%3A%2F%2Fe.com%2Fx";
    let r = request(a, "GET", api, &[("Authorization", &auth)], None).await;
    assert_eq!((r.status, r.header("content-type")), (200, Some("application/mercure+json")), "{}", r.text());
    let list: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(list["type"], "subscriptions");
    assert_eq!(list["subscriptions"][0]["id"], iri.as_str());
    let etag = r.header("etag").unwrap().to_owned();
    assert_eq!(etag, format!("\"{}\"", list["lastEventID"].as_str().unwrap()));
    assert!(r.header("link").unwrap().contains("rel=\"mercure\""));
    let again = request(a, "GET", api, &[("Authorization", &auth), ("If-None-Match", &etag)], None).await;
    assert_eq!(again.status, 304);
    // A token without a grant on the API path: 403 insufficient_scope.
    let r = request(a, "GET", api, &[("Authorization", &pauth)], None).await;
    assert_eq!(r.status, 403);
    assert!(challenge(r.header("www-authenticate")).contains("insufficient_scope"));
    drop(joined);
    let left = v1.next_event().await;
    let left_doc: Value = serde_json::from_str(&left.data).unwrap();
    assert_eq!((left_doc["id"].as_str(), left_doc["active"].as_bool()), (Some(iri.as_str()), Some(false)));
}

#[tokio::test]
async fn legacy_dialect_off_serves_1_0_only() {
    let hub = hub("legacy_dialect off");
    let a = hub.addr();
    let legacy = format!("/.well-known/mercure?{}", form(&[("topic", "t")]));
    let r = request(a, "GET", &legacy, &[], None).await;
    assert_eq!(r.status, 400);
    assert!(challenge(r.header("www-authenticate")).contains("invalid_request"));
    let r = publish(a, &hs256(KEY, &json!({"mercure": {"publish": ["*"]}})), &[("topic", "t")]).await;
    assert_eq!(r.status, 401, "a 0.x token is refused: {}", r.text());
    let mut s = SseStream::connect(a, &path(&[("match", "t")]), &[]).await;
    let id = publish_ok(a, &publisher(), &[("topic", "t"), ("data", "ok")]).await;
    assert_eq!(s.next_event().await.id, Some(id));
}

#[tokio::test]
async fn each_issuer_verifies_its_own_tokens() {
    const KEY_A: &str = "issuer-a-key-0123456789abcdefghijklmnop";
    const KEY_B: &str = "issuer-b-key-0123456789abcdefghijklmnop";
    let directives = format!(
        "anonymous\nadmin off\nissuer https://a.example {{\n publisher {{\n  jwt {KEY_A}\n }}\n}}\n\
         issuer https://b.example {{\n publisher {{\n  jwt {KEY_B}\n }}\n}}"
    );
    let hub = HubProcess::start(&[("MERCURE_EXTRA_DIRECTIVES", &directives)]);
    let sign = |iss: &str, key: &str| {
        let claims = json!({"aud": RESOURCE, "iss": iss, "exp": unix_time(60),
            "authorization_details": [detail(&["publish"], json!([{"match": "*"}]))]});
        let header = Header { typ: Some("at+jwt".into()), ..Header::new(Algorithm::HS256) };
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(key.as_bytes())).expect("sign")
    };
    let a = hub.addr();
    assert_eq!(publish(a, &sign("https://a.example", KEY_A), &[("topic", "t")]).await.status, 200);
    assert_eq!(publish(a, &sign("https://b.example", KEY_B), &[("topic", "t")]).await.status, 200);
    // A token must verify with the keys of the issuer it names.
    assert_eq!(publish(a, &sign("https://a.example", KEY_B), &[("topic", "t")]).await.status, 401);
    assert_eq!(publish(a, &sign("https://b.example", KEY_A), &[("topic", "t")]).await.status, 401);
    // An issuer not configured is refused, whatever key signed it.
    assert_eq!(publish(a, &sign("https://c.example", KEY_B), &[("topic", "t")]).await.status, 401);
}
