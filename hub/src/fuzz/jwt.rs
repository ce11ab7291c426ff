//! JWT verification (`auth::jwt::Verifier::verify`) on hostile tokens.
//!
//! Properties:
//! - any string, and any token assembled from a JSON header, a JSON (or not JSON) payload and
//!   a signature, is refused with a clean `Expired`/`Invalid` error unless it is signed with
//!   the key under `HS256`, and never panics;
//! - any claims signed with the key — numbers of every size and type in `exp`, `nbf`, `iat`,
//!   junk in `mercure` and its namespaced spelling — give `Ok` or a clean error, never a
//!   panic; a past `exp`, a future `nbf` or a non-numeric `exp`/`nbf` is refused; an accepted
//!   token's expiry is `exp` (in the future) and its grants are its claim's lists;
//! - remembering accepted tokens (`with_cache`) never changes an answer.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde_json::Value;

use super::{Raw, check, re, run};
use crate::auth::jwt::{KeySpec, Verifier, sign_hmac};
use crate::auth::{AuthError, Grants};

const KEY: &str = "fuzz-secret";

fn verifier(cache: usize) -> Verifier {
    match Verifier::new(&KeySpec { key: KEY.into(), algorithm: Algorithm::HS256 }) {
        Ok(v) => v.with_cache(cache),
        Err(e) => panic!("HS256 verifier: {e}"),
    }
}

fn now_secs() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

fn b64url(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ABC[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

/// `header.payload.signature`, the signature made with `key` under HS256.
fn assemble(header: &[u8], payload: &[u8], key: &[u8]) -> String {
    let message = format!("{}.{}", b64url(header), b64url(payload));
    match jsonwebtoken::crypto::sign(message.as_bytes(), &EncodingKey::from_secret(key), Algorithm::HS256) {
        Ok(sig) => format!("{message}.{sig}"),
        Err(e) => panic!("signing: {e}"),
    }
}

/// A clean refusal: what the hub turns into a 401.
fn clean(r: &Result<Grants, AuthError>) -> bool {
    matches!(r, Ok(_) | Err(AuthError::Expired | AuthError::Invalid(_)))
}

/// Same answer, for the cache check.
fn same(a: &Result<Grants, AuthError>, b: &Result<Grants, AuthError>) -> bool {
    match (a, b) {
        (Ok(a), Ok(b)) => {
            a.publish == b.publish
                && a.subscribe == b.subscribe
                && a.payload == b.payload
                && a.expires_at == b.expires_at
        }
        (Err(a), Err(b)) => a == b,
        _ => false,
    }
}

/// Numbers of every size and representation, and values close to now (but never within 3 s of
/// it, so an answer cannot flip between two calls).
fn number() -> impl Strategy<Value = Value> {
    let now = now_secs() as i64;
    let offset = prop_oneof![-100_000i64..-3, 3i64..100_000];
    prop_oneof![
        2 => any::<i64>().prop_map(Value::from),
        2 => any::<u64>().prop_map(Value::from),
        2 => any::<f64>().prop_map(Value::from),
        3 => offset.clone().prop_map(move |o| Value::from(now + o)),
        2 => (offset, 0.0f64..1.0).prop_map(move |(o, f)| Value::from((now + o) as f64 + f)),
        3 => prop::sample::select(vec![
            Value::from(1u64 << 63),
            Value::from(u64::MAX),
            Value::from(i64::MAX),
            Value::from(i64::MIN),
            Value::from(18_446_744_073_709_551_616f64),
            Value::from(1e19),
            Value::from(9.3e18),
            Value::from(253_402_300_800u64),
            Value::from(1e308),
            Value::from(-1e308),
            Value::from(f64::MAX),
            Value::from(f64::MIN_POSITIVE),
            Value::from(-1),
            Value::from(0),
            Value::from(-0.0),
        ]),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        number(),
        re(".{0,8}").prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            btree_map(re("(publish|subscribe|payload|[a-z]{0,4})"), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn selectors() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => vec("(\\*|https://e/[a-z{}]{0,6}|.{0,6})", 0..4).prop_map(Value::from),
        1 => json(),
    ]
}

fn mercure_claim() -> impl Strategy<Value = Value> {
    let object = (proptest::option::of(selectors()), proptest::option::of(selectors()), proptest::option::of(json()))
        .prop_map(|(p, s, payload)| {
            let mut m = serde_json::Map::new();
            m.extend(p.map(|v| ("publish".to_owned(), v)));
            m.extend(s.map(|v| ("subscribe".to_owned(), v)));
            m.extend(payload.map(|v| ("payload".to_owned(), v)));
            Value::Object(m)
        });
    prop_oneof![4 => object, 1 => json()]
}

fn claims() -> impl Strategy<Value = Value> {
    let time = || proptest::option::of(prop_oneof![5 => number(), 1 => json()]);
    (
        time(),
        time(),
        time(),
        proptest::option::of(mercure_claim()),
        proptest::option::of(mercure_claim()),
        btree_map(re("(aud|sub|iss|jti|[a-z]{1,3})"), json(), 0..3),
    )
        .prop_map(|(exp, nbf, iat, mercure, namespaced, extra)| {
            let mut m: serde_json::Map<String, Value> = extra.into_iter().collect();
            let named = [
                ("exp", exp),
                ("nbf", nbf),
                ("iat", iat),
                ("mercure", mercure),
                ("https://mercure.rocks/", namespaced),
            ];
            for (k, v) in named {
                m.extend(v.map(|v| (k.to_owned(), v)));
            }
            Value::Object(m)
        })
}

/// The string list a claim holds under `key`, if that is what it holds (absent or null:
/// empty).
fn list(claim: &Value, key: &str) -> Option<Vec<String>> {
    match claim.get(key) {
        None | Some(Value::Null) => Some(Vec::new()),
        Some(Value::Array(a)) => a.iter().map(|v| v.as_str().map(str::to_owned)).collect(),
        Some(_) => None,
    }
}

fn check_signed_claims(claims: &Value) -> Result<(), TestCaseError> {
    let token = match sign_hmac(KEY.as_bytes(), Algorithm::HS256, claims) {
        Ok(t) => t,
        Err(e) => return Err(TestCaseError::fail(format!("signing failed: {e}"))),
    };
    let r = verifier(0).verify(&token);
    check(clean(&r), || format!("unclean answer {r:?}"))?;
    let cached = verifier(8);
    let (first, second) = (cached.verify(&token), cached.verify(&token));
    check(same(&r, &first) && same(&r, &second), || format!("cache changed {r:?} into {first:?} / {second:?}"))?;

    let now = now_secs();
    let exp = claims.get("exp").filter(|v| !v.is_null());
    let nbf = claims.get("nbf").filter(|v| !v.is_null());
    if let Some(exp) = exp {
        match exp.as_f64() {
            Some(e) => check(e >= now - 2.0 || r.is_err(), || format!("past exp {e} accepted"))?,
            None => check(r.is_err(), || format!("non-numeric exp {exp} accepted"))?,
        }
    }
    if let Some(nbf) = nbf {
        match nbf.as_f64() {
            Some(n) => check(n <= now + 2.0 || r.is_err(), || format!("future nbf {n} accepted"))?,
            None => check(r.is_err(), || format!("non-numeric nbf {nbf} accepted"))?,
        }
    }
    let Ok(g) = r else { return Ok(()) };
    match (exp, g.expires_at) {
        (None, None) => {}
        (Some(_), Some(t)) => {
            check(t + Duration::from_secs(2) > SystemTime::now(), || format!("expiry {t:?} is past"))?
        }
        (e, t) => return Err(TestCaseError::fail(format!("exp {e:?} gave expires_at {t:?}"))),
    }
    // The namespaced claim wins when present; either must be an object to be accepted.
    let claim = match claims.get("https://mercure.rocks/").filter(|v| !v.is_null()) {
        Some(ns) => Some(ns),
        None => claims.get("mercure").filter(|v| !v.is_null()),
    };
    let (publish, subscribe) = match claim {
        Some(c) => (list(c, "publish"), list(c, "subscribe")),
        None => (Some(Vec::new()), Some(Vec::new())),
    };
    check(publish.as_ref() == Some(&g.publish), || format!("publish {:?}, claim {claim:?}", g.publish))?;
    check(subscribe.as_ref() == Some(&g.subscribe), || format!("subscribe {:?}, claim {claim:?}", g.subscribe))?;
    Ok(())
}

#[test]
fn fuzz_jwt_signed_claims() {
    run("fuzz::jwt::fuzz_jwt_signed_claims", 1500, claims(), |claims| check_signed_claims(&claims));
}

/// How the third part of an assembled token is made.
#[derive(Debug, Clone)]
enum Sig {
    /// HS256 with the verifier's key: the only kind that may be accepted, with an HS256 header.
    Valid,
    WrongKey,
    Raw(String),
}

fn header() -> impl Strategy<Value = Vec<u8>> {
    let alg = prop_oneof![
        4 => Just(Value::from("HS256")),
        1 => prop::sample::select(vec!["HS512", "none", "None", "RS256", "ES256", "EdDSA", "hs256", ""]).prop_map(Value::from),
        1 => json(),
    ];
    let object =
        (alg, btree_map(re("(typ|kid|cty|crit|jku|x5u|jwk|[a-z]{1,3})"), json(), 0..3)).prop_map(|(alg, extra)| {
            let mut m: serde_json::Map<String, Value> = extra.into_iter().collect();
            m.insert("alg".into(), alg);
            serde_json::to_vec(&Value::Object(m)).unwrap_or_default()
        });
    prop_oneof![5 => object, 1 => vec(any::<u8>(), 0..24)]
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => claims().prop_map(|c| serde_json::to_vec(&c).unwrap_or_default()),
        // Numbers serde_json cannot hold in a `Value`, and other JSON text a library could
        // stumble on.
        2 => (
            prop::sample::select(vec!["exp", "nbf", "iat", "mercure"]),
            prop::sample::select(vec![
                "1e400", "-1e400", "18446744073709551616", "18446744073709551615", "9223372036854775808",
                "1e19", "-0", "0.5e-400", "1E+19", "123456789012345678901234567890", "[]", "{}", "\"9999999999\"",
            ]),
        )
            .prop_map(|(k, v)| format!("{{\"{k}\":{v},\"mercure\":{{\"publish\":[\"*\"]}}}}").into_bytes()),
        1 => vec(any::<u8>(), 0..32),
    ]
}

fn assembled() -> impl Strategy<Value = (Raw, Raw, Sig)> {
    let sig = prop_oneof![
        4 => Just(Sig::Valid),
        1 => Just(Sig::WrongKey),
        1 => re("[A-Za-z0-9_=+/.-]{0,50}").prop_map(Sig::Raw),
    ];
    (header().prop_map(Raw), payload().prop_map(Raw), sig)
}

#[test]
fn fuzz_jwt_assembled_tokens() {
    run("fuzz::jwt::fuzz_jwt_assembled_tokens", 1500, assembled(), |(Raw(header), Raw(payload), sig)| {
        let token = match &sig {
            Sig::Valid => assemble(&header, &payload, KEY.as_bytes()),
            Sig::WrongKey => assemble(&header, &payload, b"another key"),
            Sig::Raw(s) => format!("{}.{}.{s}", b64url(&header), b64url(&payload)),
        };
        let r = verifier(4).verify(&token);
        check(clean(&r), || format!("unclean answer {r:?}"))?;
        let hs256 = serde_json::from_slice::<Value>(&header).ok().is_some_and(|h| h["alg"] == "HS256");
        check(r.is_err() || (matches!(sig, Sig::Valid) && hs256), || format!("{token:?} accepted"))?;
        // A valid HS256 signature over these claims: the same answer as signing the claims.
        if let (Sig::Valid, true, Ok(claims)) = (&sig, hs256, serde_json::from_slice::<Value>(&payload))
            && claims.is_object()
        {
            check_signed_claims(&claims)?;
        }
        Ok(())
    });
}

#[test]
fn fuzz_jwt_arbitrary_strings() {
    let input = prop_oneof![
        3 => any::<String>(),
        2 => re("[A-Za-z0-9_.=-]{0,80}"),
        1 => re("(eyJ[A-Za-z0-9_-]{0,30}\\.){0,4}[A-Za-z0-9_-]{0,30}"),
    ];
    run("fuzz::jwt::fuzz_jwt_arbitrary_strings", 3000, input, |token| {
        let r = verifier(4).verify(&token);
        check(clean(&r) && r.is_err(), || format!("{token:?} gave {r:?}"))
    });
}

/// Finding (issue 9 item 2, fixed by the lead in `auth/jwt.rs`): an `exp` near or past 2^63
/// seconds panicked in `verify` ("overflow when adding duration to instant", "cannot convert
/// float seconds to Duration"). The minimized inputs, plus the values the issue names. Such
/// "never expires" tokens must give a far-future expiry or a clean refusal.
#[test]
fn fuzz_regression_huge_exp() {
    let values = [
        Value::from(9_223_372_036_854_775_296u64),
        Value::from(u64::MAX),
        Value::from(1u64 << 63),
        Value::from(18_446_744_073_709_551_616f64),
        Value::from(1e19),
    ];
    for exp in values {
        let claims = serde_json::json!({"exp": exp, "mercure": {"publish": ["*"]}});
        let r = std::panic::catch_unwind(|| check_signed_claims(&claims));
        assert!(matches!(r, Ok(Ok(()))), "exp {exp}: {r:?}");
    }
}

/// Finding (in `auth/jwt.rs`, reported to the lead): serde reads a struct from a JSON array
/// too, so a `mercure` claim written as `[publish, subscribe, payload]` was accepted, e.g.
/// `{"https://mercure.rocks/": [[""]]}` granted publish `[""]`. The Go hub refuses a token
/// whose claim is not an object (encoding/json cannot unmarshal an array into a struct).
#[test]
fn fuzz_regression_mercure_claim_as_array() {
    for key in ["mercure", "https://mercure.rocks/"] {
        let claims = serde_json::json!({ key: [["*"], ["*"]] });
        let token = sign_hmac(KEY.as_bytes(), Algorithm::HS256, &claims).expect("sign");
        let r = verifier(0).verify(&token);
        assert!(matches!(r, Err(AuthError::Invalid(_))), "{claims}: {r:?}");
    }
}
