//! The publish form body (`server::publish::parse_form`).
//!
//! Properties: a body serialized by `form_urlencoded::Serializer` from any list of pairs
//! parses to what a model of the Mercure rules says (every `topic` in order, the first `data`,
//! `id`, `type` and `retry`, `private` when present, unknown fields ignored); and any bytes at
//! all parse without panicking to a form that survives a serialize-and-parse round trip
//! unchanged (decoding and encoding are inverse on whatever the hub keeps, including invalid
//! UTF-8 turned into U+FFFD).

use proptest::collection::vec;
use proptest::prelude::*;

use super::{check, re, run};
use crate::server::publish::{Form, parse_form};

/// The model: what the hub keeps from a list of decoded pairs.
fn model(pairs: &[(String, String)]) -> Form {
    let first = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    Form {
        topics: pairs.iter().filter(|(k, _)| k == "topic").map(|(_, v)| v.clone()).collect(),
        data: first("data"),
        private: pairs.iter().any(|(k, _)| k == "private"),
        id: first("id"),
        event_type: first("type"),
        retry: first("retry"),
    }
}

fn serialize<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

fn pairs() -> impl Strategy<Value = Vec<(String, String)>> {
    let key = prop_oneof![
        6 => re("(topic|data|private|id|type|retry)"),
        1 => re("(Topic|topic |topic\\[\\]|data2|retry=|&id)"),
        1 => any::<String>(),
    ];
    let value = prop_oneof![
        3 => any::<String>(),
        2 => re("[ -~]{0,12}"),
        1 => re("[&=+%; \r\n\u{0}\u{feff}\u{ffff}]{0,8}"),
    ];
    vec((key, value), 0..12)
}

#[test]
fn fuzz_form_serialized_pairs_follow_the_model() {
    run("fuzz::form::fuzz_form_serialized_pairs_follow_the_model", 3000, pairs(), |pairs| {
        let body = serialize(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        prop_assert_eq!(parse_form(body.as_bytes()), model(&pairs), "body {:?}", body);
        Ok(())
    });
}

/// The form's pairs in the order `parse_form` reads them back, so serializing them gives an
/// equivalent body.
fn form_pairs(f: &Form) -> Vec<(&str, &str)> {
    let mut out: Vec<(&str, &str)> = f.topics.iter().map(|t| ("topic", t.as_str())).collect();
    let fields = [("data", &f.data), ("id", &f.id), ("type", &f.event_type), ("retry", &f.retry)];
    out.extend(fields.iter().filter_map(|(k, v)| v.as_deref().map(|v| (*k, v))));
    if f.private {
        out.push(("private", "on"));
    }
    out
}

fn raw_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        2 => vec(any::<u8>(), 0..128),
        // Bytes drawn mostly from the form's own syntax.
        2 => vec(prop_oneof![
            Just(b'&'), Just(b'='), Just(b'+'), Just(b'%'), Just(b'0'), Just(b'f'), Just(b'F'),
            Just(b't'), Just(b'c'), Just(0xff), Just(0xc3), Just(0x80),
        ], 0..64),
        1 => re("(topic|data|id|type|retry|private)=[^&]{0,8}(&(topic|data|id|type|retry|private)=[^&]{0,8}){0,6}")
            .prop_map(String::into_bytes),
    ]
}

#[test]
fn fuzz_form_raw_bytes_round_trip() {
    run("fuzz::form::fuzz_form_raw_bytes_round_trip", 3000, raw_body(), |bytes| {
        let form = parse_form(&bytes);
        let ampersands = bytes.iter().filter(|b| **b == b'&').count();
        check(form.topics.len() <= ampersands + 1, || format!("{} topics from {ampersands} '&'", form.topics.len()))?;
        let again = serialize(form_pairs(&form));
        prop_assert_eq!(parse_form(again.as_bytes()), form, "re-serialized as {:?}", again);
        Ok(())
    });
}
