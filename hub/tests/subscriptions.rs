//! Active subscriptions (issue 6): subscription events (created, terminated on disconnect, on
//! eviction, on token expiry), payloads, the web API's three routes and their authorization,
//! forged-topic refusal, and the demo endpoint.

mod common;

use std::time::Duration;

use common::{HubProcess, KEY, SseStream, hs256, publish, publish_ok, publisher_token, request, subscribe_path};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

/// The selector that lets a token see every subscription event and document.
const ALL_SUBSCRIPTIONS: &str = "/.well-known/mercure/subscriptions{/topic}{/subscriber}";
const BOOKS: &str = "https://example.com/books/{id}";

fn hub(extra: &str) -> HubProcess {
    HubProcess::with_directives(&format!("anonymous\nsubscriptions\ntransport local\n{extra}"))
}

fn watcher_token() -> String {
    hs256(KEY, &json!({"mercure": {"subscribe": [ALL_SUBSCRIPTIONS]}}))
}

/// A subscriber to every subscription event.
async fn watch(hub: &HubProcess) -> SseStream {
    let auth = format!("Bearer {}", watcher_token());
    SseStream::connect(hub.addr(), &subscribe_path(&[ALL_SUBSCRIPTIONS], &[]), &[("Authorization", &auth)]).await
}

/// The next subscription event about `topic`, as JSON.
async fn next_about(watcher: &mut SseStream, topic: &str) -> Value {
    loop {
        let ev = watcher.next_event_within(Duration::from_secs(10)).await;
        let doc: Value = serde_json::from_str(&ev.data).expect("subscription events are JSON");
        if doc["topic"] == topic {
            return doc;
        }
    }
}

/// RFC 6570 simple-expansion encoding: everything but unreserved characters.
fn encode(s: &str) -> String {
    const SET: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
    percent_encoding::utf8_percent_encode(s, SET).to_string()
}

#[tokio::test]
async fn events_announce_creation_and_termination_with_the_payload() {
    let hub = hub("");
    let mut watcher = watch(&hub).await;
    let token = hs256(KEY, &json!({"mercure": {"subscribe": [], "payload": {"user": "alice"}}}));
    let auth = format!("Bearer {token}");
    let sub = SseStream::connect(hub.addr(), &subscribe_path(&[BOOKS], &[]), &[("Authorization", &auth)]).await;

    let created = next_about(&mut watcher, BOOKS).await;
    assert_eq!(created["@context"], "https://mercure.rocks/");
    assert_eq!(created["type"], "Subscription");
    assert_eq!(created["active"], true);
    assert_eq!(created["payload"], json!({"user": "alice"}));
    let subscriber = created["subscriber"].as_str().expect("subscriber id").to_owned();
    assert!(subscriber.starts_with("urn:uuid:"), "{subscriber}");
    // Both variables percent-encoded once, as RFC 6570 expansion does.
    let expected_id = format!(
        "/.well-known/mercure/subscriptions/{}/{}",
        "https%3A%2F%2Fexample.com%2Fbooks%2F%7Bid%7D",
        subscriber.replace(':', "%3A")
    );
    assert_eq!(created["id"], expected_id);

    drop(sub);
    let ended = next_about(&mut watcher, BOOKS).await;
    assert_eq!((ended["active"].clone(), ended["subscriber"].clone()), (json!(false), json!(subscriber)));
}

#[tokio::test]
async fn one_subscriber_id_across_its_topics() {
    let hub = hub("");
    let mut watcher = watch(&hub).await;
    let _sub =
        SseStream::connect(hub.addr(), &subscribe_path(&["https://a.example/x", "https://a.example/y"], &[]), &[])
            .await;
    let x = next_about(&mut watcher, "https://a.example/x").await;
    let y = next_about(&mut watcher, "https://a.example/y").await;
    assert_eq!(x["subscriber"], y["subscriber"]);
}

#[tokio::test]
async fn anonymous_subscribers_do_not_see_subscription_events() {
    let hub = hub("");
    let mut anonymous = SseStream::connect(hub.addr(), &subscribe_path(&[ALL_SUBSCRIPTIONS], &[]), &[]).await;
    let mut watcher = watch(&hub).await;
    let _other = SseStream::connect(hub.addr(), &subscribe_path(&[BOOKS], &[]), &[]).await;
    // The event exists: an authorized watcher, subscribed after the anonymous one, receives
    // it. One dispatch queues it for every recipient, so the anonymous stream would have it by
    // now if it were a recipient.
    assert_eq!(next_about(&mut watcher, BOOKS).await["active"], true);
    anonymous.expect_silence(Duration::from_millis(500)).await;
}

#[tokio::test]
async fn token_expiry_terminates_the_subscription() {
    let hub = hub("");
    let mut watcher = watch(&hub).await;
    let exp = common::tokens::unix_time(2);
    let token = hs256(KEY, &json!({"mercure": {"subscribe": []}, "exp": exp}));
    let auth = format!("Bearer {token}");
    let mut sub = SseStream::connect(hub.addr(), &subscribe_path(&[BOOKS], &[]), &[("Authorization", &auth)]).await;
    assert_eq!(next_about(&mut watcher, BOOKS).await["active"], true);
    sub.expect_end(Duration::from_secs(5)).await;
    assert_eq!(next_about(&mut watcher, BOOKS).await["active"], false);
}

/// A subscriber that never reads, with a tiny receive window.
async fn stuck_subscriber(hub: &HubProcess, topic: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let mut stream = socket.connect(hub.addr()).await.expect("connect");
    let req = format!("GET {} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", subscribe_path(&[topic], &[]));
    stream.write_all(req.as_bytes()).await.expect("send request");
    stream
}

#[tokio::test]
async fn eviction_terminates_the_subscription() {
    let hub = hub("subscriber_queue_events 8\nsubscriber_queue_bytes 1048576");
    let mut watcher = watch(&hub).await;
    const FLOOD: &str = "https://example.com/flood";
    let _stuck = stuck_subscriber(&hub, FLOOD).await;
    assert_eq!(next_about(&mut watcher, FLOOD).await["active"], true);
    let token = publisher_token(&["*"]);
    let big = "x".repeat(256 * 1024);
    // Far more than kernel buffers and the hub's queue bound can absorb.
    for _ in 0..200 {
        publish_ok(hub.addr(), &token, &[("topic", FLOOD), ("data", &big)]).await;
        if hub.logs().contains("evicted slow subscriber") {
            break;
        }
    }
    let ended = next_about(&mut watcher, FLOOD).await;
    assert_eq!(ended["active"], false, "eviction must announce the end of the subscription");
}

async fn get(hub: &HubProcess, path: &str, token: Option<&str>) -> (u16, Value) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    let resp = request(hub.addr(), "GET", path, &headers, None).await;
    let json = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
    if resp.status == 200 {
        assert_eq!(resp.header("content-type"), Some("application/ld+json"));
    }
    (resp.status, json)
}

#[tokio::test]
async fn the_api_lists_filters_and_finds_subscriptions() {
    let hub = hub("");
    let payload_token = hs256(KEY, &json!({"mercure": {"subscribe": [], "payload": {"n": 1}}}));
    let auth = format!("Bearer {payload_token}");
    let _books = SseStream::connect(hub.addr(), &subscribe_path(&[BOOKS], &[]), &[("Authorization", &auth)]).await;
    let _other = SseStream::connect(hub.addr(), &subscribe_path(&["https://example.com/other"], &[]), &[]).await;
    let token = watcher_token();

    let (status, all) = get(&hub, "/.well-known/mercure/subscriptions", Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(
        (all["type"].clone(), all["id"].clone()),
        (json!("Subscriptions"), json!("/.well-known/mercure/subscriptions"))
    );
    assert!(all["lastEventID"].is_string());
    let subs = all["subscriptions"].as_array().expect("subscriptions array");
    assert_eq!(subs.len(), 2, "{all}");
    let book = subs.iter().find(|s| s["topic"] == BOOKS).expect("books subscription listed");
    assert_eq!(book["payload"], json!({"n": 1}));

    let by_topic = format!("/.well-known/mercure/subscriptions/{}", encode(BOOKS));
    let (status, filtered) = get(&hub, &by_topic, Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(filtered["subscriptions"].as_array().map(Vec::len), Some(1));

    let one = book["id"].as_str().expect("id");
    let (status, single) = get(&hub, one, Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!((single["type"].clone(), single["topic"].clone()), (json!("Subscription"), json!(BOOKS)));
    assert_eq!(single["@context"], "https://mercure.rocks/");

    let missing = format!("{by_topic}/{}", encode("urn:uuid:00000000-0000-0000-0000-000000000000"));
    assert_eq!(get(&hub, &missing, Some(&token)).await.0, 404);
}

#[tokio::test]
async fn the_api_is_authorized_like_the_spec_says() {
    let hub = hub("");
    let _a = SseStream::connect(hub.addr(), &subscribe_path(&["https://example.com/a"], &[]), &[]).await;
    let _b = SseStream::connect(hub.addr(), &subscribe_path(&["https://example.com/b"], &[]), &[]).await;
    let path = "/.well-known/mercure/subscriptions";
    assert_eq!(get(&hub, path, None).await.0, 401, "no token");
    assert_eq!(get(&hub, path, Some("not-a-jwt")).await.0, 401, "invalid token");
    let unrelated = hs256(KEY, &json!({"mercure": {"subscribe": ["https://example.com/a"]}}));
    assert_eq!(get(&hub, path, Some(&unrelated)).await.0, 403, "token not allowed the API");

    // Allowed the listing, but only topic a's subscriptions.
    let only_a = hs256(
        KEY,
        &json!({"mercure": {"subscribe": [path, format!("{path}/{}{{/subscriber}}", encode("https://example.com/a"))]}}),
    );
    let (status, listing) = get(&hub, path, Some(&only_a)).await;
    assert_eq!(status, 200);
    let topics: Vec<_> =
        listing["subscriptions"].as_array().expect("array").iter().map(|s| s["topic"].clone()).collect();
    assert_eq!(topics, vec![json!("https://example.com/a")]);

    let off = HubProcess::with_directives("anonymous\ntransport local");
    assert_eq!(get(&off, path, Some(&watcher_token())).await.0, 404, "directive off");
}

#[tokio::test]
async fn list_then_follow_from_last_event_id_misses_nothing() {
    let hub = hub("");
    let token = watcher_token();
    let _first = SseStream::connect(hub.addr(), &subscribe_path(&["https://example.com/first"], &[]), &[]).await;
    let (_, listing) = get(&hub, "/.well-known/mercure/subscriptions", Some(&token)).await;
    let last = listing["lastEventID"].as_str().expect("lastEventID").to_owned();
    // Someone subscribes between the listing and the follow-up subscription.
    let _second = SseStream::connect(hub.addr(), &subscribe_path(&["https://example.com/second"], &[]), &[]).await;
    let auth = format!("Bearer {token}");
    let mut follow = SseStream::connect(
        hub.addr(),
        &subscribe_path(&[ALL_SUBSCRIPTIONS], &[("lastEventID", &last)]),
        &[("Authorization", &auth)],
    )
    .await;
    let doc = next_about(&mut follow, "https://example.com/second").await;
    assert_eq!(doc["active"], true);
}

#[tokio::test]
async fn publishers_cannot_forge_subscription_events() {
    let hub = hub("");
    let token = publisher_token(&["*"]);
    for topic in ["/.well-known/mercure/subscriptions/x/y", "https://hub.example/.well-known/mercure/subscriptions/x/y"]
    {
        let resp = publish(hub.addr(), &token, &[("topic", topic), ("data", "{}")]).await;
        assert_eq!(resp.status, 403, "{topic}: {}", resp.text());
    }
}

#[tokio::test]
async fn the_demo_endpoint_serves_the_body_links_and_cookie() {
    let hub = HubProcess::with_directives("demo\ntransport local");
    let resp = request(
        hub.addr(),
        "GET",
        "/.well-known/mercure/demo/books/1.jsonld?body=%7B%22a%22%3A1%7D&jwt=abc.def.ghi",
        &[],
        None,
    )
    .await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), r#"{"a":1}"#);
    let links: Vec<_> =
        resp.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case("link")).map(|(_, v)| v.as_str()).collect();
    assert!(links.iter().any(|l| l.contains(r#"</.well-known/mercure>; rel="mercure""#)), "{links:?}");
    assert!(links.iter().any(|l| l.contains(r#"rel="self""#) && l.contains("/demo/books/1.jsonld")), "{links:?}");
    let cookie = resp.header("set-cookie").expect("cookie set");
    assert!(cookie.starts_with("mercureAuthorization=abc.def.ghi;"), "{cookie}");
    assert_eq!(request(hub.addr(), "GET", "/", &[], None).await.status, 200, "demo serves the page too");

    let plain = HubProcess::with_directives("transport local");
    assert_eq!(request(plain.addr(), "GET", "/.well-known/mercure/demo/x?body=1", &[], None).await.status, 404);
}
