//! Publishing: the form fields, what the publisher gets back, what subscribers receive, and
//! the malformed requests that must be refused without dispatching anything.

mod common;

use common::*;

const TOPIC: &str = "https://example.com/books/1";

#[tokio::test]
async fn a_publish_returns_its_id_and_reaches_subscribers_with_every_field() {
    let hub = HubProcess::with_directives("anonymous");
    let mut sub = SseStream::connect(hub.addr(), &subscribe_path(&[TOPIC], &[]), &[]).await;
    let token = publisher_token(&["*"]);

    let resp = publish(
        hub.addr(),
        &token,
        &[("topic", TOPIC), ("data", "hello"), ("id", "book-1-v2"), ("type", "book.updated"), ("retry", "1500")],
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(resp.header("content-type").is_some_and(|v| v.starts_with("text/plain")), "{:?}", resp.headers);
    assert_eq!(resp.text(), "book-1-v2");

    let ev = sub.next_event().await;
    assert_event(&ev, "book-1-v2", "hello");
    assert_eq!(ev.event.as_deref(), Some("book.updated"));
    assert_eq!(ev.retry, Some(1500));
}

#[tokio::test]
async fn generated_ids_are_unique_urn_uuids_and_are_the_ids_subscribers_see() {
    let hub = HubProcess::with_directives("anonymous");
    let mut sub = SseStream::connect(hub.addr(), &subscribe_path(&[TOPIC], &[]), &[]).await;
    let token = publisher_token(&[TOPIC]);

    let first = publish_ok(hub.addr(), &token, &[("topic", TOPIC), ("data", "one")]).await;
    let second = publish_ok(hub.addr(), &token, &[("topic", TOPIC)]).await;
    for id in [&first, &second] {
        let uuid = id.strip_prefix("urn:uuid:").unwrap_or_else(|| panic!("id {id:?} is not a urn:uuid"));
        assert_eq!(uuid.len(), 36, "id {id:?}");
        assert_eq!(uuid.matches('-').count(), 4, "id {id:?}");
    }
    assert_ne!(first, second);

    assert_event(&sub.next_event().await, &first, "one");
    // No `data` field: an event with empty data.
    let ev = sub.next_event().await;
    assert_event(&ev, &second, "");
    assert_eq!((ev.event, ev.retry), (None, None));
}

/// Publishes a refused request, then a marker, and checks the subscriber saw only the marker.
async fn assert_refused_and_not_dispatched(
    hub: &HubProcess,
    sub: &mut SseStream,
    fields: &[(&str, &str)],
    content_type: &str,
    status: u16,
) {
    let token = format!("Bearer {}", publisher_token(&["*"]));
    let body = form(fields);
    let resp = request(
        hub.addr(),
        "POST",
        "/.well-known/mercure",
        &[("Authorization", &token), ("Content-Type", content_type)],
        Some(body.as_bytes()),
    )
    .await;
    assert_eq!(resp.status, status, "publish {fields:?} as {content_type}: {}", resp.text());
    let marker = publish_ok(hub.addr(), &publisher_token(&["*"]), &[("topic", TOPIC), ("data", "marker")]).await;
    assert_event(&sub.next_event().await, &marker, "marker");
}

#[tokio::test]
async fn malformed_publishes_are_refused_with_400_and_dispatch_nothing() {
    let hub = HubProcess::with_directives("anonymous\nmax_topics 2\nmax_topic_length 64");
    let mut sub = SseStream::connect(hub.addr(), &subscribe_path(&["*"], &[]), &[]).await;
    let form_ct = "application/x-www-form-urlencoded";

    // (what, form fields, Content-Type)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        ("missing topic", &[("data", "x")], form_ct),
        ("id starting with #", &[("topic", TOPIC), ("id", "#frag")], form_ct),
        ("non-integer retry", &[("topic", TOPIC), ("retry", "soon")], form_ct),
        ("negative retry", &[("topic", TOPIC), ("retry", "-1")], form_ct),
        ("too many topics", &[("topic", "a"), ("topic", "b"), ("topic", "c")], form_ct),
        ("topic too long", &[("topic", &"x".repeat(65))], form_ct),
        ("multi-line type", &[("topic", TOPIC), ("type", "a\nb")], form_ct),
        // Clients drop an `id:` holding NUL, so their Last-Event-ID would stop advancing.
        ("NUL in id", &[("topic", TOPIC), ("id", "a\0b")], form_ct),
        ("CR in id", &[("topic", TOPIC), ("id", "a\rb")], form_ct),
        ("TAB in id", &[("topic", TOPIC), ("id", "a\tb")], form_ct),
        ("NUL in type", &[("topic", TOPIC), ("type", "a\0b")], form_ct),
        ("DEL in type", &[("topic", TOPIC), ("type", "a\x7fb")], form_ct),
        ("NUL in topic", &[("topic", "https://example.com/a\0b")], form_ct),
        ("LF in a second topic", &[("topic", TOPIC), ("topic", "x\ny")], form_ct),
        ("ESC in topic", &[("topic", "\x1b[31m")], form_ct),
        ("JSON body", &[("topic", TOPIC), ("data", "x")], "application/json"),
    ];
    for (what, fields, ct) in cases {
        eprintln!("case: {what}");
        assert_refused_and_not_dispatched(&hub, &mut sub, fields, ct, 400).await;
    }
    // Nothing refused was published: only the markers were.
    assert_eq!(hub.metric("mercure_updates_published_total").await, cases.len() as u64);
    // At the limits exactly: accepted.
    let id = publish_ok(hub.addr(), &publisher_token(&["*"]), &[("topic", &"x".repeat(64)), ("topic", "b")]).await;
    assert_event(&sub.next_event().await, &id, "");
}

#[tokio::test]
async fn a_body_over_max_body_size_is_refused_with_413() {
    let hub = HubProcess::with_directives("anonymous\nmax_body_size 1024");
    let mut sub = SseStream::connect(hub.addr(), &subscribe_path(&[TOPIC], &[]), &[]).await;
    let big = "x".repeat(2000);
    assert_refused_and_not_dispatched(
        &hub,
        &mut sub,
        &[("topic", TOPIC), ("data", &big)],
        "application/x-www-form-urlencoded",
        413,
    )
    .await;
    let small = "y".repeat(900);
    let id = publish_ok(hub.addr(), &publisher_token(&["*"]), &[("topic", TOPIC), ("data", &small)]).await;
    assert_event(&sub.next_event().await, &id, &small);
}

#[tokio::test]
async fn publish_without_content_type_is_read_as_a_form() {
    let hub = HubProcess::with_directives("anonymous");
    let mut sub = SseStream::connect(hub.addr(), &subscribe_path(&[TOPIC], &[]), &[]).await;
    let auth = format!("Bearer {}", publisher_token(&["*"]));
    let body = form(&[("topic", TOPIC), ("data", "no content type")]);
    let resp =
        request(hub.addr(), "POST", "/.well-known/mercure", &[("Authorization", &auth)], Some(body.as_bytes())).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_event(&sub.next_event().await, &resp.text(), "no content type");
}

#[tokio::test]
async fn endpoints_other_methods_and_unknown_paths() {
    let hub = HubProcess::with_directives("anonymous");
    for method in ["PUT", "DELETE", "PATCH"] {
        let resp = request(hub.addr(), method, "/.well-known/mercure", &[], None).await;
        assert_eq!(resp.status, 405, "{method}");
        assert!(resp.header("allow").is_some_and(|a| a.contains("POST") && a.contains("GET")), "{method}");
    }
    assert_eq!(request(hub.addr(), "GET", "/nope", &[], None).await.status, 404);
    assert_eq!(request(hub.addr(), "POST", "/.well-known/mercure/extra", &[], None).await.status, 404);
    assert_eq!(request(hub.addr(), "GET", "/", &[], None).await.status, 404, "no page without `ui`");
    assert_eq!(request(hub.addr(), "GET", "/healthz", &[], None).await.status, 200);

    let metrics = request(hub.addr(), "GET", "/metrics", &[], None).await;
    assert_eq!(metrics.status, 200);
    let text = metrics.text();
    for name in [
        "mercure_updates_published_total",
        "mercure_deliveries_total",
        "mercure_evictions_total",
        "mercure_subscribers",
        "mercure_connections",
        "mercure_refused_connections_total",
        "mercure_rejected_requests_total",
    ] {
        assert!(text.contains(&format!("# TYPE {name} ")), "{name} missing from:\n{text}");
    }
}

#[tokio::test]
async fn ui_serves_a_page_at_the_root() {
    let hub = HubProcess::with_directives("ui");
    let resp = request(hub.addr(), "GET", "/", &[], None).await;
    assert_eq!(resp.status, 200);
    assert!(resp.header("content-type").is_some_and(|v| v.starts_with("text/html")));
    assert!(resp.text().contains("/.well-known/mercure"));
}

#[tokio::test]
async fn metrics_count_publishes_and_deliveries() {
    let hub = HubProcess::with_directives("anonymous");
    let mut subs = Vec::new();
    for _ in 0..3 {
        subs.push(SseStream::connect(hub.addr(), &subscribe_path(&[TOPIC], &[]), &[]).await);
    }
    assert_eq!(hub.metric("mercure_subscribers").await, 3);
    let token = publisher_token(&["*"]);
    for i in 0..4 {
        let id = publish_ok(hub.addr(), &token, &[("topic", TOPIC), ("data", &i.to_string())]).await;
        for s in &mut subs {
            assert_event(&s.next_event().await, &id, &i.to_string());
        }
    }
    assert_eq!(hub.metric("mercure_updates_published_total").await, 4);
    assert_eq!(hub.metric("mercure_deliveries_total").await, 12);
    drop(subs);
    assert_eq!(hub.wait_metric("mercure_subscribers", 0, std::time::Duration::from_secs(5)).await, 0);
}

/// The Go hub reads form fields with `PostForm.Get`, so an empty `id` means "generate one"
/// (`AssignUUID`) and an empty `retry` means no retry; this hub answers 400 to both. Clients
/// that always send every field (`id=&retry=`) work with the Go hub and fail here.
#[tokio::test]
async fn empty_id_and_retry_fields_behave_as_in_the_go_hub() {
    let hub = HubProcess::with_directives("anonymous");
    let mut sub = SseStream::connect(hub.addr(), &subscribe_path(&[TOPIC], &[]), &[]).await;
    let resp =
        publish(hub.addr(), &publisher_token(&["*"]), &[("topic", TOPIC), ("data", "d"), ("id", ""), ("retry", "")])
            .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(resp.text().starts_with("urn:uuid:"), "generated id expected, got {:?}", resp.text());
    let ev = sub.next_event().await;
    assert_event(&ev, &resp.text(), "d");
    assert_eq!(ev.retry, None);
}

/// Fuzz finding (`fuzz::sse`): an id holding NUL was accepted, but an EventSource ignores an
/// `id:` line containing NUL, so a client's Last-Event-ID stopped advancing.
#[tokio::test]
async fn an_id_with_nul_is_refused_with_400() {
    let hub = HubProcess::with_directives("anonymous");
    let mut sub = SseStream::connect(hub.addr(), &subscribe_path(&["*"], &[]), &[]).await;
    let fields: &[(&str, &str)] = &[("topic", TOPIC), ("id", "a\0b")];
    assert_refused_and_not_dispatched(&hub, &mut sub, fields, "application/x-www-form-urlencoded", 400).await;
}

#[tokio::test]
async fn control_characters_get_a_one_line_reason() {
    let hub = HubProcess::with_directives("anonymous");
    let token = publisher_token(&["*"]);
    for (field, value) in [("id", "x\0y"), ("type", "x\0y"), ("topic", "x\0y")] {
        let mut fields = vec![("topic", TOPIC), (field, value)];
        if field == "topic" {
            fields.remove(0);
        }
        let resp = publish(hub.addr(), &token, &fields).await;
        assert_eq!(resp.status, 400, "{field}: {}", resp.text());
        let reason = resp.text();
        assert!(reason.contains(field) && reason.contains("control character"), "{field}: {reason:?}");
        assert_eq!(reason.trim_end().lines().count(), 1, "{reason:?}");
    }
    assert_eq!(hub.metric("mercure_updates_published_total").await, 0);
}
