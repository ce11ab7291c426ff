//! The publish request path, without HTTP: JWT verification (HS256, RS256, ES256), form
//! parsing into an `Update` (which encodes the SSE form), and the publish-authorization check.
//!
//! The hub's own form parsing (`server::publish::parse_form` + `validate`) is private, so it
//! cannot be called from here and is not copied. `form` is the composition the handler runs,
//! built from public parts: `form_urlencoded::parse` of the body, then `Update::new` (which
//! encodes). Once the server exposes `parse_publish_form(bytes, limits) -> Result<Update, _>`,
//! this bench should call it instead. `full/*` adds what the handler does around it: verify
//! the token, compile its `mercure.publish` selectors, check every topic is allowed.
//!
//! Why: this is the per-publish CPU cost before the fan-out; RS256/ES256 verification is
//! expected to dominate it.

use std::hint::black_box;

use benches::fixtures::{self, ES256_PRIVATE, ES256_PUBLIC, HMAC_SECRET, RS256_PRIVATE, RS256_PUBLIC};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mercure_hub::auth::{KeySpec, Verifier};
use mercure_hub::topic;
use mercure_hub::update::Update;

fn claims() -> serde_json::Value {
    serde_json::json!({ "mercure": { "publish": ["https://example.com/books/{id}"], "subscribe": [] } })
}

/// (name, verifier, token) for each algorithm the bench covers.
fn verifiers() -> Vec<(&'static str, Verifier, String)> {
    let c = claims();
    let hs = mercure_hub::auth::jwt::sign_hmac(HMAC_SECRET.as_bytes(), Algorithm::HS256, &c).expect("hs256");
    let rs = jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &c,
        &EncodingKey::from_rsa_pem(RS256_PRIVATE.as_bytes()).expect("rsa key"),
    )
    .expect("rs256");
    let es = jsonwebtoken::encode(
        &Header::new(Algorithm::ES256),
        &c,
        &EncodingKey::from_ec_pem(ES256_PRIVATE.as_bytes()).expect("ec key"),
    )
    .expect("es256");
    let v = |key: &str, algorithm| Verifier::new(&KeySpec { key: key.into(), algorithm }).expect("verifier");
    vec![
        ("hs256", v(HMAC_SECRET, Algorithm::HS256), hs),
        ("rs256", v(RS256_PUBLIC, Algorithm::RS256), rs),
        ("es256", v(ES256_PUBLIC, Algorithm::ES256), es),
    ]
}

/// The form body of a typical publish: one topic, 100 bytes of data, an id.
fn form_body() -> Vec<u8> {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("topic", "https://example.com/books/1")
        .append_pair("data", &fixtures::data(100))
        .append_pair("id", "urn:uuid:0b4a8b8e-2f0a-4d3c-9d52-4c3c0e1f2a3b")
        .finish()
        .into_bytes()
}

/// `form_urlencoded::parse` + `Update::new`: the public parts the handler composes.
fn parse(body: &[u8]) -> Update {
    let (mut topics, mut data, mut id, mut private) = (Vec::new(), None, None, false);
    for (k, v) in form_urlencoded::parse(body) {
        match &*k {
            "topic" => topics.push(v.into_owned()),
            "data" => data = Some(v.into_owned()),
            "id" => id = Some(v.into_owned()),
            "private" => private = true,
            _ => {}
        }
    }
    Update::new(id.unwrap_or_else(Update::generate_id), topics, private, None, None, data.unwrap_or_default())
}

fn publish_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("publish_path");
    group.throughput(Throughput::Elements(1));
    let verifiers = verifiers();
    for (name, verifier, token) in &verifiers {
        group
            .bench_function(format!("verify/{name}"), |b| b.iter(|| verifier.verify(black_box(token)).expect("valid")));
    }
    let body = form_body();
    group.bench_function("form", |b| b.iter(|| parse(black_box(&body))));
    let hub = fixtures::hub();
    for (name, verifier, token) in &verifiers {
        group.bench_function(format!("full/{name}"), |b| {
            b.iter(|| {
                let grants = verifier.verify(black_box(token)).expect("valid");
                let update = parse(black_box(&body));
                let allowed = hub.compiler().compile_all(&grants.publish).expect("grants");
                assert!(topic::all_matched(&allowed, &update.topics));
                update
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = benches::config();
    targets = publish_path
}
criterion_main!(benches);
