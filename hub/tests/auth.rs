//! Authorization: where tokens are read from, which tokens are refused (401) and which are
//! valid but not allowed (403), the cookie CSRF check, distinct subscriber keys, and
//! asymmetric keys (RS256, ES256, EdDSA) generated with `openssl` at test time (a missing
//! `openssl` fails those tests; `scripts/test` installs it).

mod common;

use common::tokens::{alg_none, key_pair, unix_time};
use common::*;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;

const TOPIC: &str = "https://example.com/books/1";

/// Publishes `TOPIC` with the given extra request headers (and no bearer unless given).
async fn publish_with(hub: &HubProcess, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut all = vec![("Content-Type", "application/x-www-form-urlencoded")];
    all.extend_from_slice(headers);
    let body = form(&[("topic", TOPIC), ("data", "x")]);
    request(hub.addr(), "POST", path, &all, Some(body.as_bytes())).await
}

async fn publish_status(hub: &HubProcess, token: &str) -> u16 {
    publish(hub.addr(), token, &[("topic", TOPIC), ("data", "x")]).await.status
}

async fn subscribe_status(hub: &HubProcess, token: &str) -> u16 {
    let auth = format!("Bearer {token}");
    SseStream::status_of(hub.addr(), &subscribe_path(&[TOPIC], &[]), &[("Authorization", &auth)]).await.0
}

#[tokio::test]
async fn publish_tokens_from_header_query_and_cookie() {
    let hub = HubProcess::with_directives("publish_origins https://app.example\ncookie_name myAuth");
    let token = publisher_token(&["*"]);
    let path = "/.well-known/mercure";

    let bearer = format!("Bearer {token}");
    assert_eq!(publish_with(&hub, path, &[("Authorization", &bearer)]).await.status, 200);
    let query = format!("{path}?{}", form(&[("authorization", &token)]));
    assert_eq!(publish_with(&hub, &query, &[]).await.status, 200);

    let cookie = format!("other=1; myAuth={token}");
    let from_app = publish_with(&hub, path, &[("Cookie", &cookie), ("Origin", "https://app.example")]).await;
    assert_eq!(from_app.status, 200, "{}", from_app.text());
    let referer = publish_with(&hub, path, &[("Cookie", &cookie), ("Referer", "https://app.example/page")]).await;
    assert_eq!(referer.status, 200, "{}", referer.text());
    // CSRF: a cookie rides along with cross-site requests, so the origin must be listed.
    let from_evil = publish_with(&hub, path, &[("Cookie", &cookie), ("Origin", "https://evil.example")]).await;
    assert_eq!(from_evil.status, 403, "{}", from_evil.text());
    let no_origin = publish_with(&hub, path, &[("Cookie", &cookie)]).await;
    assert_eq!(no_origin.status, 403, "{}", no_origin.text());
    // The default cookie name is not read when `cookie_name` renames it.
    let default_name = format!("mercureAuthorization={token}");
    let renamed = publish_with(&hub, path, &[("Cookie", &default_name), ("Origin", "https://app.example")]).await;
    assert_eq!(renamed.status, 401, "{}", renamed.text());
}

#[tokio::test]
async fn a_broken_header_is_refused_even_with_a_good_cookie() {
    let hub = HubProcess::with_directives("publish_origins *");
    let cookie = format!("mercureAuthorization={}", publisher_token(&["*"]));
    let resp =
        publish_with(&hub, "/.well-known/mercure", &[("Authorization", "Basic Zm9vOmJhcg=="), ("Cookie", &cookie)])
            .await;
    assert_eq!(resp.status, 401, "{}", resp.text());
    let ok =
        publish_with(&hub, "/.well-known/mercure", &[("Cookie", &cookie), ("Origin", "https://any.example")]).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
}

#[tokio::test]
async fn invalid_publisher_tokens_are_401_and_logged() {
    let hub = HubProcess::start(&[("MERCURE_PUBLISHER_JWT_KEY", KEY)]);
    let claims = json!({"mercure": {"publish": ["*"]}});
    let no_token = publish_with(&hub, "/.well-known/mercure", &[]).await;
    assert_eq!(no_token.status, 401);

    let cases = [
        ("garbage", "not.a.token".to_owned()),
        ("wrong key", hs256("another-key", &claims)),
        ("expired", hs256(KEY, &json!({"mercure": {"publish": ["*"]}, "exp": unix_time(-60)}))),
        ("not yet valid", hs256(KEY, &json!({"mercure": {"publish": ["*"]}, "nbf": unix_time(600)}))),
        ("alg none", alg_none(&claims)),
        (
            "HS512 with the right key",
            common::tokens::sign(Algorithm::HS512, &EncodingKey::from_secret(KEY.as_bytes()), &claims),
        ),
    ];
    for (what, token) in &cases {
        assert_eq!(publish_status(&hub, token).await, 401, "{what}");
        assert_eq!(subscribe_status(&hub, token).await, 401, "subscribe with {what}");
    }
    assert!(hub.wait_for_log("refused request", std::time::Duration::from_secs(2)), "logs:\n{}", hub.logs());
    assert!(hub.logs().contains("status=401"), "logs:\n{}", hub.logs());
    assert_eq!(hub.metric("mercure_rejected_requests_total").await, 1 + 2 * cases.len() as u64);
}

#[tokio::test]
async fn topics_outside_the_publish_claim_are_403() {
    let hub = HubProcess::with_directives("anonymous");
    let mut sub = SseStream::connect(hub.addr(), &subscribe_path(&["*"], &[]), &[]).await;
    let token = publisher_token(&["https://example.com/books/{id}", "https://example.com/extra"]);
    let publish_topics = |topics: &'static [&'static str]| {
        let token = token.clone();
        let addr = hub.addr();
        async move {
            let fields: Vec<(&str, &str)> = topics.iter().map(|t| ("topic", *t)).collect();
            publish(addr, &token, &fields).await.status
        }
    };
    assert_eq!(publish_topics(&["https://example.com/authors/1"]).await, 403);
    // Every topic, alternates included, must be allowed.
    assert_eq!(publish_topics(&[TOPIC, "https://example.com/authors/1"]).await, 403);
    assert_eq!(publish_status(&hub, &hs256(KEY, &json!({"mercure": {}}))).await, 403, "no publish claim");
    assert_eq!(publish_status(&hub, &hs256(KEY, &json!({}))).await, 403, "no mercure claim");
    assert_eq!(publish_topics(&[TOPIC, "https://example.com/extra"]).await, 200);

    let ev = sub.next_event().await;
    assert_eq!(ev.data, "", "only the allowed publish was dispatched: {ev:?}");
    sub.expect_silence(std::time::Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_distinct_subscriber_key_is_the_only_one_for_subscribers() {
    let sub_key = "integration-test-subscriber-key-9876543210";
    let hub = HubProcess::start(&[("MERCURE_PUBLISHER_JWT_KEY", KEY), ("MERCURE_SUBSCRIBER_JWT_KEY", sub_key)]);
    let both = json!({"mercure": {"publish": ["*"], "subscribe": ["*"]}});
    assert_eq!(publish_status(&hub, &hs256(sub_key, &both)).await, 401, "subscriber key used to publish");
    assert_eq!(subscribe_status(&hub, &hs256(KEY, &both)).await, 401, "publisher key used to subscribe");

    let auth = format!("Bearer {}", hs256(sub_key, &both));
    let mut sub = SseStream::connect(hub.addr(), &subscribe_path(&[TOPIC], &[]), &[("Authorization", &auth)]).await;
    let id = publish_ok(hub.addr(), &hs256(KEY, &both), &[("topic", TOPIC), ("data", "ok"), ("private", "on")]).await;
    assert_event(&sub.next_event().await, &id, "ok");
}

/// Starts a hub whose publisher key is `pair`'s public key for `alg`, and checks: a token
/// signed with the private key publishes and subscribes (private updates included); the
/// classic confusion attack (HS256 keyed with the public PEM), `other_alg` signed with the
/// same key, another key pair and `alg: none` are 401.
async fn asymmetric_round_trip(kind: &str, alg: Algorithm, alg_name: &str, other_alg: Option<Algorithm>) {
    let pair = key_pair(kind);
    let hub =
        HubProcess::start(&[("MERCURE_PUBLISHER_JWT_KEY", &pair.public_pem), ("MERCURE_PUBLISHER_JWT_ALG", alg_name)]);
    let claims = json!({"mercure": {"publish": ["*"], "subscribe": [TOPIC]}});
    let token = pair.sign(alg, &claims);

    let auth = format!("Bearer {token}");
    let mut sub = SseStream::connect(hub.addr(), &subscribe_path(&[TOPIC], &[]), &[("Authorization", &auth)]).await;
    let id = publish_ok(hub.addr(), &token, &[("topic", TOPIC), ("data", kind), ("private", "on")]).await;
    assert_event(&sub.next_event().await, &id, kind);

    let confused = hs256(&pair.public_pem, &claims);
    assert_eq!(publish_status(&hub, &confused).await, 401, "{alg_name}: HS256 keyed with the public key");
    assert_eq!(subscribe_status(&hub, &confused).await, 401, "{alg_name}: HS256 keyed with the public key");
    if let Some(other) = other_alg {
        assert_eq!(publish_status(&hub, &pair.sign(other, &claims)).await, 401, "{alg_name} hub, {other:?} token");
    }
    let stranger = key_pair(kind);
    assert_eq!(publish_status(&hub, &stranger.sign(alg, &claims)).await, 401, "{alg_name}: another key pair");
    assert_eq!(publish_status(&hub, &alg_none(&claims)).await, 401, "{alg_name}: alg none");
}

#[tokio::test]
async fn rs256_public_keys() {
    asymmetric_round_trip("rsa", Algorithm::RS256, "RS256", Some(Algorithm::PS256)).await;
}

#[tokio::test]
async fn es256_public_keys() {
    // ES384 needs a P-384 key; an ES256 hub must refuse it even if the signature is valid.
    let p384 = key_pair("ec384");
    asymmetric_round_trip("ec256", Algorithm::ES256, "ES256", None).await;
    let p256 = key_pair("ec256");
    let hub =
        HubProcess::start(&[("MERCURE_PUBLISHER_JWT_KEY", &p256.public_pem), ("MERCURE_PUBLISHER_JWT_ALG", "ES256")]);
    let claims = json!({"mercure": {"publish": ["*"]}});
    assert_eq!(publish_status(&hub, &p384.sign(Algorithm::ES384, &claims)).await, 401);
    assert_eq!(publish_status(&hub, &p256.sign(Algorithm::ES256, &claims)).await, 200);
}

#[tokio::test]
async fn eddsa_public_keys() {
    asymmetric_round_trip("ed25519", Algorithm::EdDSA, "EdDSA", None).await;
}

#[tokio::test]
async fn subscriber_algorithm_distinct_from_publisher_algorithm() {
    let pair = key_pair("ed25519");
    let hub = HubProcess::start(&[
        ("MERCURE_PUBLISHER_JWT_KEY", KEY),
        ("MERCURE_SUBSCRIBER_JWT_KEY", &pair.public_pem),
        ("MERCURE_SUBSCRIBER_JWT_ALG", "EdDSA"),
    ]);
    let claims = json!({"mercure": {"publish": ["*"], "subscribe": ["*"]}});
    assert_eq!(subscribe_status(&hub, &hs256(KEY, &claims)).await, 401);
    assert_eq!(publish_status(&hub, &pair.sign(Algorithm::EdDSA, &claims)).await, 401);
    assert_eq!(subscribe_status(&hub, &pair.sign(Algorithm::EdDSA, &claims)).await, 200);
    assert_eq!(publish_status(&hub, &hs256(KEY, &claims)).await, 200);
}

#[tokio::test]
async fn a_pem_key_that_does_not_parse_stops_start_up() {
    let (code, out) = run_to_exit(
        &[("MERCURE_PUBLISHER_JWT_KEY", "not a PEM"), ("MERCURE_PUBLISHER_JWT_ALG", "RS256")],
        &[],
        std::time::Duration::from_secs(10),
    );
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("publisher key"), "{out}");
    let (code, out) = run_to_exit(
        &[("MERCURE_PUBLISHER_JWT_KEY", KEY), ("MERCURE_PUBLISHER_JWT_ALG", "HS1024")],
        &[],
        std::time::Duration::from_secs(10),
    );
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("HS1024"), "{out}");
}

/// RFC 7519 §4.1.4: the token must be refused *on or after* its `exp`. The hub accepts a
/// token during the whole second named by `exp` (jsonwebtoken compares `exp < now` in whole
/// seconds), so a just-expired token still publishes, and a subscription opened with it
/// is accepted with a 200 and ends at once.
#[tokio::test]
async fn a_token_is_refused_from_its_exp_second_on() {
    let hub = HubProcess::start(&[("MERCURE_PUBLISHER_JWT_KEY", KEY)]);
    let mut accepted = Vec::new();
    for _ in 0..3 {
        let claims = json!({"mercure": {"publish": ["*"], "subscribe": ["*"]}, "exp": unix_time(0)});
        let token = hs256(KEY, &claims);
        accepted.push((publish_status(&hub, &token).await, subscribe_status(&hub, &token).await));
    }
    assert!(accepted.iter().all(|s| *s == (401, 401)), "(publish, subscribe) statuses with exp = now: {accepted:?}");
}

#[tokio::test]
async fn subscribers_authenticate_by_cookie_and_a_broken_token_is_never_anonymous() {
    let hub = HubProcess::with_directives("anonymous");
    let cookie = format!("mercureAuthorization={}", subscriber_token(&[TOPIC]));
    // No origin check for subscriptions: GET is a safe method.
    let mut sub = SseStream::connect(hub.addr(), &subscribe_path(&[TOPIC], &[]), &[("Cookie", &cookie)]).await;
    let id =
        publish_ok(hub.addr(), &publisher_token(&["*"]), &[("topic", TOPIC), ("data", "p"), ("private", "on")]).await;
    assert_event(&sub.next_event().await, &id, "p");

    // With `anonymous`, no token is fine, but a bad token is still refused.
    let bad = format!("mercureAuthorization={}", hs256("wrong-key", &json!({})));
    let (status, body) = SseStream::status_of(hub.addr(), &subscribe_path(&[TOPIC], &[]), &[("Cookie", &bad)]).await;
    assert_eq!(status, 401, "{body}");
    let query = subscribe_path(&[TOPIC], &[("authorization", "garbage")]);
    assert_eq!(SseStream::status_of(hub.addr(), &query, &[]).await.0, 401);
}

/// The accepted-token cache (`jwt_cache_entries`, on by default) must not outlive a token:
/// the same token, accepted and so remembered, is refused from its `exp` on, for publishing
/// and for subscribing. Also: a token signed with the wrong key is refused on every attempt.
#[tokio::test]
async fn a_remembered_token_is_refused_once_it_expires() {
    let hub = HubProcess::start(&[("MERCURE_PUBLISHER_JWT_KEY", KEY)]);
    let exp = unix_time(2);
    let token = hs256(KEY, &json!({"mercure": {"publish": ["*"], "subscribe": ["*"]}, "exp": exp}));
    for _ in 0..3 {
        assert_eq!(publish_status(&hub, &token).await, 200, "valid before exp, repeatedly");
    }
    assert_eq!(subscribe_status(&hub, &token).await, 200);
    let forged = hs256("not-the-key", &json!({"mercure": {"publish": ["*"]}}));
    for _ in 0..2 {
        assert_eq!(publish_status(&hub, &forged).await, 401);
    }
    while unix_time(0) < exp {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(publish_status(&hub, &token).await, 401, "publish with the remembered token after exp");
    assert_eq!(subscribe_status(&hub, &token).await, 401, "subscribe with the remembered token after exp");
}

#[tokio::test]
async fn jwt_cache_entries_zero_is_accepted_and_auth_still_works() {
    let hub = HubProcess::start_with_args(&[("MERCURE_PUBLISHER_JWT_KEY", KEY)], &["--jwt-cache-entries", "0"]);
    let token = hs256(KEY, &json!({"mercure": {"publish": ["*"]}}));
    assert_eq!(publish_status(&hub, &token).await, 200);
    assert_eq!(publish_status(&hub, &token).await, 200);
    let hub = HubProcess::with_directives("anonymous\njwt_cache_entries 0");
    assert_eq!(subscribe_status(&hub, &subscriber_token(&["*"])).await, 200);
}

/// "Never expires" tokens from PHP, Java and Go libraries carry `exp` values such as 2^63,
/// 2^64 or 1e19. Each must yield a working token (clamped to a far-future expiry) or a 401,
/// never a panic: before the fix these requests got no response at all and the connection
/// gauge drifted up by one per request.
#[tokio::test]
async fn huge_and_odd_numeric_claims_never_break_a_request() {
    let hub = HubProcess::with_directives("");
    let raw_claims = |claim: &str, raw: &str| -> serde_json::Value {
        serde_json::from_str(&format!(r#"{{"mercure":{{"publish":["*"],"subscribe":["*"]}},"{claim}":{raw}}}"#))
            .expect("test claims are JSON")
    };
    // Far-future values: the token works for publishing and for subscribing, and a private
    // update reaches the subscriber holding it.
    for raw in ["9223372036854775807", "9223372036854775808", "18446744073709551616", "1e19", "1e300"] {
        let token = hs256(KEY, &raw_claims("exp", raw));
        let auth = format!("Bearer {token}");
        let mut sub = SseStream::connect(hub.addr(), &subscribe_path(&[TOPIC], &[]), &[("Authorization", &auth)]).await;
        let id = publish_ok(hub.addr(), &token, &[("topic", TOPIC), ("data", raw), ("private", "on")]).await;
        assert_event(&sub.next_event().await, &id, raw);
    }
    // Past or malformed values: a clean 401 on both paths.
    for (claim, raw) in [("exp", "-1"), ("exp", "-1e300"), ("exp", "\"never\""), ("exp", "true"), ("nbf", "1e300")] {
        let token = hs256(KEY, &raw_claims(claim, raw));
        assert_eq!(publish_status(&hub, &token).await, 401, "publish with {claim} {raw}");
        assert_eq!(subscribe_status(&hub, &token).await, 401, "subscribe with {claim} {raw}");
    }
    // Every connection above has ended: the only one open is the scrape's own.
    let open = hub.wait_metric("mercure_connections", 1, std::time::Duration::from_secs(5)).await;
    assert_eq!(open, 1, "the connection gauge is exact");
    assert!(!hub.logs().contains("panicked"), "no request panicked:\n{}", hub.logs());
}
