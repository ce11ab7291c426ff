//! The instruction-count twin of the hub's key single-threaded paths, run by gungraun under
//! valgrind (callgrind). Instruction counts repeat to within a fraction of a percent on a
//! loaded machine, where wall-clock times do not, so these — not the criterion benches — are
//! what `scripts/bench-regress` compares against `results/bench-baseline.json` in CI.
//!
//! Covered: topic matching (exact, template regex, registry cache hit), JWT verification
//! (HS256, RS256, ES256, and an ES256 token already accepted), SSE encoding (100 B, 64 KiB),
//! one queue push, one publish to 1000 subscribers (match + enqueue + wake), publish-form
//! parsing, leaving the registry (one of 1000 subscribers of a topic), one history append (a
//! full window, so it also trims one), and the native stream writer (one chunked frame onto a
//! loopback socket; the kernel's share of the write is not counted). Setup
//! (building hubs, keys, tokens, sockets) runs outside the measured call. Needs `gungraun-runner` 0.20.0 on the PATH.
//!
//! Invariant: every bench hands its inputs back in its return value, so their teardown runs in
//! gungraun's caller, outside the count. A `Hub` travels boxed: moved by value, its memcpy in
//! and out of the measured call was counted, and grew with the struct (+72 Ir when the URL
//! pattern interner and base URL were added), which is not what a bench of matching gates. Teardown is not what these benches gate, and it is
//! machine-dependent: a `Hub`'s dashmaps have 4 × (available CPUs) shards, so dropping one inside
//! the measured call made `match_registry_template` cost +17% on a CI machine with more CPUs
//! than the one that wrote the baseline.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use benches::fixtures::{self, ES256_PRIVATE, ES256_PUBLIC, HMAC_SECRET, RS256_PRIVATE, RS256_PUBLIC, TOPIC};
use bytes::Bytes;
use gungraun::prelude::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mercure_hub::auth::{Grants, KeySpec, Verifier};
use mercure_hub::history::Retention;
use mercure_hub::history::Window;
use mercure_hub::hub::{Dispatched, Hub};
use mercure_hub::queue::{Push, Queue, QueueLimits};
use mercure_hub::sse::{self, EventFields};
use mercure_hub::subscriber::Subscriber;
use mercure_hub::topic::{Selector, SelectorCompiler, TemplateLimits};
use mercure_hub::update::Update;

const TEMPLATE: &str = "https://example.com/books/{id}";

// ---- topic matching ----

fn selector(s: &str) -> Selector {
    SelectorCompiler::new(TemplateLimits::default()).compile(s).expect("selector")
}

#[library_benchmark]
#[bench::exact(selector(TOPIC))]
#[bench::template_regex(selector(TEMPLATE))]
fn match_topic(sel: Selector) -> (bool, Selector) {
    (black_box(sel.matches(black_box("https://example.com/books/1"))), sel)
}

fn registry_with_template() -> (Box<Hub>, Arc<Subscriber>, Arc<Update>) {
    let hub = Box::new(fixtures::hub());
    let sub = hub.new_subscriber(&[TEMPLATE], None, None).expect("subscriber");
    hub.subscribe(&sub).expect("subscribe");
    let update = fixtures::update(TOPIC, 100);
    // Warm the registry's topic → matched cache.
    hub.registry().for_each_candidate(&update, |_| {});
    (hub, sub, update)
}

#[library_benchmark]
#[bench::cached(setup = registry_with_template)]
fn match_registry_template(
    (hub, sub, update): (Box<Hub>, Arc<Subscriber>, Arc<Update>),
) -> (usize, Box<Hub>, Arc<Subscriber>, Arc<Update>) {
    let mut hits = 0;
    hub.registry().for_each_candidate(black_box(&update), |_| hits += 1);
    (hits, hub, sub, update)
}

// ---- JWT verification ----

fn token_claims() -> serde_json::Value {
    serde_json::json!({ "mercure": { "publish": [TEMPLATE], "subscribe": [] } })
}

fn jwt(alg: Algorithm) -> (Verifier, String) {
    let (public, key) = match alg {
        Algorithm::HS256 => (HMAC_SECRET, EncodingKey::from_secret(HMAC_SECRET.as_bytes())),
        Algorithm::RS256 => (RS256_PUBLIC, EncodingKey::from_rsa_pem(RS256_PRIVATE.as_bytes()).expect("rsa")),
        _ => (ES256_PUBLIC, EncodingKey::from_ec_pem(ES256_PRIVATE.as_bytes()).expect("ec")),
    };
    let token = jsonwebtoken::encode(&Header::new(alg), &token_claims(), &key).expect("sign");
    (Verifier::new(&KeySpec { key: public.into(), algorithm: alg }).expect("verifier"), token)
}

#[library_benchmark]
#[bench::hs256(setup = jwt, args = (Algorithm::HS256))]
#[bench::rs256(setup = jwt, args = (Algorithm::RS256))]
#[bench::es256(setup = jwt, args = (Algorithm::ES256))]
fn verify_jwt((verifier, token): (Verifier, String)) -> (Grants, Verifier, String) {
    (black_box(verifier.verify(black_box(&token)).expect("valid")), verifier, token)
}

/// The same, for a token the verifier has already accepted (the hub's default: repeated
/// tokens are remembered, `exp` re-checked): what a publisher's second POST pays.
fn remembered_jwt(alg: Algorithm) -> (Verifier, String) {
    let (verifier, token) = jwt(alg);
    let verifier = verifier.with_cache(16);
    verifier.verify(&token).expect("valid");
    (verifier, token)
}

#[library_benchmark]
#[bench::es256(setup = remembered_jwt, args = (Algorithm::ES256))]
fn verify_jwt_remembered((verifier, token): (Verifier, String)) -> (Grants, Verifier, String) {
    (black_box(verifier.verify(black_box(&token)).expect("valid")), verifier, token)
}

// ---- SSE encoding ----

#[library_benchmark]
#[bench::bytes_100(fixtures::data(100))]
#[bench::bytes_65536(fixtures::data(64 * 1024))]
fn sse_encode(data: String) -> (Bytes, String) {
    let encoded = black_box(sse::encode(black_box(&EventFields {
        id: "urn:uuid:0b4a8b8e-2f0a-4d3c-9d52-4c3c0e1f2a3b",
        event_type: None,
        retry: None,
        data: &data,
    })));
    (encoded, data)
}

// ---- enqueue ----

fn queue() -> (Queue, Bytes, QueueLimits, Instant) {
    (Queue::new(), fixtures::update(TOPIC, 100).encoded.clone(), QueueLimits::default(), Instant::now())
}

#[library_benchmark]
#[bench::one_push(setup = queue)]
fn queue_push((q, event, limits, now): (Queue, Bytes, QueueLimits, Instant)) -> (Queue, Push) {
    let push = q.push(black_box(&event), &limits, now);
    (q, push)
}

fn hub_with(n: usize) -> (Box<Hub>, Vec<Arc<Subscriber>>, Arc<Update>) {
    let hub = Box::new(fixtures::hub());
    let subs = fixtures::subscribers_on(&hub, n, TOPIC);
    let update = fixtures::update(TOPIC, 100);
    // One publish and drain first, so the measured one is in the steady state (writers parked).
    fixtures::publish(&hub, &update);
    fixtures::drain_and_park(&subs);
    (hub, subs, update)
}

#[library_benchmark]
#[bench::subs_1000(setup = hub_with, args = (1000))]
fn publish(
    (hub, subs, update): (Box<Hub>, Vec<Arc<Subscriber>>, Arc<Update>),
) -> (Dispatched, Box<Hub>, Vec<Arc<Subscriber>>) {
    let done = fixtures::publish(&hub, black_box(&update));
    (done, hub, subs)
}

// ---- publish form ----

fn publish_form() -> Vec<u8> {
    format!(
        "topic={}&id=urn%3Auuid%3A1&private=on&data={}",
        "https%3A%2F%2Fexample.com%2Fbooks%2F1",
        fixtures::data(100)
    )
    .into_bytes()
}

#[library_benchmark]
#[bench::bytes_100(setup = publish_form)]
fn parse_form(body: Vec<u8>) -> (usize, Vec<u8>) {
    (black_box(mercure_hub::server::internals::parse_form(black_box(&body))), body)
}

// ---- leaving the registry ----

fn registry_of(n: usize) -> (Box<Hub>, Vec<Arc<Subscriber>>) {
    let hub = Box::new(fixtures::hub());
    let subs = fixtures::subscribers_on(&hub, n, TOPIC);
    (hub, subs)
}

#[library_benchmark]
#[bench::one_of_1000(setup = registry_of, args = (1000))]
fn registry_remove((hub, subs): (Box<Hub>, Vec<Arc<Subscriber>>)) -> (bool, Box<Hub>, Vec<Arc<Subscriber>>) {
    (black_box(hub.registry().remove(black_box(&subs[500]))), hub, subs)
}

// ---- history append ----

fn full_window() -> (Window, Arc<Update>, u64) {
    let retention = Retention { max_events: Some(1000), ..Retention::default() };
    let mut window = Window::new(retention);
    for seq in 1..=1000 {
        window.push(seq, fixtures::update(TOPIC, 100), 0);
    }
    (window, fixtures::update(TOPIC, 100), 1001)
}

#[library_benchmark]
#[bench::full_1000(setup = full_window)]
fn history_append((mut window, update, seq): (Window, Arc<Update>, u64)) -> (u64, Window) {
    (black_box(window.push(seq, black_box(update), 0)), window)
}

// ---- the native stream writer ----

fn socket_pair() -> (tokio::runtime::Runtime, tokio::net::TcpStream, std::net::TcpStream, Bytes) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().build().expect("runtime");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let client = std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    server.set_nonblocking(true).expect("nonblocking");
    let server = rt.block_on(async { tokio::net::TcpStream::from_std(server) }).expect("register");
    (rt, server, client, fixtures::update(TOPIC, 100).encoded.clone())
}

#[library_benchmark]
#[bench::frame_100(setup = socket_pair)]
fn native_write(
    (rt, server, client, frame): (tokio::runtime::Runtime, tokio::net::TcpStream, std::net::TcpStream, Bytes),
) -> (tokio::runtime::Runtime, tokio::net::TcpStream, std::net::TcpStream) {
    rt.block_on(mercure_hub::server::internals::write_frame(&server, black_box(&frame))).expect("write");
    (rt, server, client)
}

library_benchmark_group!(
    name = gate,
    benchmarks = [
        match_topic,
        match_registry_template,
        verify_jwt,
        verify_jwt_remembered,
        sse_encode,
        queue_push,
        publish,
        parse_form,
        registry_remove,
        history_append,
        native_write
    ]
);

main!(library_benchmark_groups = gate);
