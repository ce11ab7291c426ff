//! Mercure 1.0 input: URL patterns (`topic::url_pattern`) and access tokens'
//! `authorization_details` (`auth::access`).
//!
//! Properties:
//! - any string, pattern-shaped or not (groups, regexp groups, modifiers, wildcards, escapes,
//!   non-ASCII, past the length limit), compiles or is refused without panicking, and a
//!   compiled pattern answers arbitrary topics without panicking;
//! - a pattern built from path segments that are literals or named groups (`:name`, optionally
//!   with a `[a-z0-9]+` regexp group) matches every topic made by filling the groups with
//!   matching values, and does not match that topic with one more segment;
//! - `authorization_details` built from valid and defective entries (each defect one the
//!   spec says rejects the token) is accepted exactly when no Mercure entry is defective and
//!   the limits hold, and then reads back as the model; arbitrary JSON never panics the
//!   reader, and whatever it accepts is within the limits.

use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::{check, re, run};
use crate::auth::access::{MAX_MATCH_LENGTH, MAX_TOPICS, read_claims};
use crate::topic::url_pattern::{MAX_PATTERN_LENGTH, UrlPatternMatcher};
use crate::topic::{MatchKind, MatcherSpec};

fn base() -> url::Url {
    url::Url::parse("https://hub.example/.well-known/mercure").expect("base")
}

/// Pattern-shaped strings: the URL Pattern syntax's tokens in any order.
fn pattern_text() -> BoxedStrategy<String> {
    let token = prop_oneof![
        re("[a-z0-9/.:-]{0,6}"),
        re(":[a-z]{1,4}"),
        Just("*".to_owned()),
        re("\\([a-z.*+?|\\\\()\\[\\]^$]{0,8}\\)"),
        re("\\{[a-z/:*]{0,6}\\}[?*+]?"),
        Just("\\".to_owned()),
        re("[?#@\\[\\]%]"),
        re("[^\\x00-\\x1f]{0,3}"),
    ];
    let prefix = prop_oneof![Just(String::new()), Just("https://e.com".to_owned()), Just("/".to_owned())];
    (prefix, vec(token, 0..12)).prop_map(|(p, t)| p + &t.concat()).boxed()
}

#[test]
fn fuzz_url_pattern_any_string_compiles_or_is_refused() {
    let topic = prop_oneof![re("https://e\\.com/[a-z0-9/:().*]{0,20}"), re("[^\\x00]{0,20}")];
    run(
        "fuzz::url_pattern::fuzz_url_pattern_any_string_compiles_or_is_refused",
        400,
        (pattern_text(), topic),
        |(p, t)| {
            if let Ok(m) = UrlPatternMatcher::compile(&p, &base()) {
                let _ = m.is_match(&t);
                let _ = m.is_match(&format!("https://e.com/{}", "a".repeat(2000)));
            }
            Ok(())
        },
    );
    let long = format!("https://e.com/{}", ":a".repeat(MAX_PATTERN_LENGTH));
    assert!(UrlPatternMatcher::compile(&long, &base()).is_err());
}

#[derive(Debug, Clone)]
enum Segment {
    Literal(String),
    Group { name: String, regexp: bool, value: String },
}

fn segments() -> impl Strategy<Value = Vec<Segment>> {
    let seg = prop_oneof![
        re("[a-z0-9_-]{1,8}").prop_map(Segment::Literal),
        (re("[a-z]{1,6}"), any::<bool>(), re("[a-z0-9]{1,8}")).prop_map(|(name, regexp, value)| Segment::Group {
            name,
            regexp,
            value
        }),
    ];
    vec(seg, 1..6)
}

#[test]
fn fuzz_url_pattern_matches_its_expansions() {
    run("fuzz::url_pattern::fuzz_url_pattern_matches_its_expansions", 300, segments(), |segs| {
        let mut pattern = String::from("https://e.com");
        let mut topic = pattern.clone();
        for (i, s) in segs.iter().enumerate() {
            pattern.push('/');
            topic.push('/');
            match s {
                Segment::Literal(l) => {
                    pattern.push_str(l);
                    topic.push_str(l);
                }
                // Group names must be unique within a pattern.
                Segment::Group { name, regexp, value } => {
                    pattern.push_str(&format!(":{name}{i}"));
                    if *regexp {
                        pattern.push_str("([a-z0-9]+)");
                    }
                    topic.push_str(value);
                }
            }
        }
        let m = UrlPatternMatcher::compile(&pattern, &base());
        check(m.is_ok(), || format!("{pattern} did not compile: {m:?}"))?;
        let m = m.map_err(|e| TestCaseError::fail(e.to_string()))?;
        check(m.is_match(&topic), || format!("{pattern} does not match {topic}"))?;
        check(!m.is_match(&format!("{topic}/more")), || format!("{pattern} matches {topic}/more"))
    });
}

/// One authorization detail and whether it must reject the token.
#[derive(Debug, Clone)]
struct Entry {
    json: Value,
    defective: bool,
    /// The topics it grants, when it is a valid Mercure entry.
    topics: Vec<MatcherSpec>,
}

fn entry() -> impl Strategy<Value = Entry> {
    let topic = (re("[a-z:/.*]{1,12}"), prop_oneof![Just(None), Just(Some("exact")), Just(Some("urlpattern"))]);
    let valid = (prop_oneof![Just("mercure"), Just("https://mercure.rocks/authorization-detail")], vec(topic, 1..4))
        .prop_map(|(ty, topics)| {
            let json_topics: Vec<Value> = topics
                .iter()
                .map(|(m, t)| match t {
                    Some(t) => json!({"match": m, "match_type": t}),
                    None => json!({"match": m}),
                })
                .collect();
            let specs = topics
                .iter()
                .map(|(m, t)| {
                    MatcherSpec::new(t.and_then(MatchKind::from_type_name).unwrap_or(MatchKind::Exact), m.as_str())
                })
                .collect();
            Entry {
                json: json!({"type": ty, "actions": ["publish", "subscribe", "other"], "topics": json_topics}),
                defective: false,
                topics: specs,
            }
        });
    let defect = prop_oneof![
        Just(json!({"type": "mercure", "topics": [{"match": "x"}]})),
        Just(json!({"type": "mercure", "actions": ["publish"], "topics": []})),
        Just(json!({"type": "mercure", "actions": ["publish"], "topics": [{"match": ""}]})),
        Just(json!({"type": "mercure", "actions": ["publish"], "topics": [{"match": "x", "match_type": "Regex"}]})),
        Just(json!({"type": "mercure", "actions": [true], "topics": [{"match": "x"}]})),
        Just(json!({"type": "mercure", "actions": ["publish"], "topics": [["x"]]})),
        Just(json!({"actions": ["publish"], "topics": [{"match": "x"}]})),
        Just(json!("mercure")),
    ]
    .prop_map(|json| Entry { json, defective: true, topics: Vec::new() });
    let foreign = Just(Entry { json: json!({"type": "urn:other", "topics": 3}), defective: false, topics: Vec::new() });
    prop_oneof![6 => valid, 1 => defect, 1 => foreign]
}

#[test]
fn fuzz_authorization_details_follow_the_model() {
    run("fuzz::url_pattern::fuzz_authorization_details_follow_the_model", 1500, vec(entry(), 0..40), |entries| {
        let claim = Value::Array(entries.iter().map(|e| e.json.clone()).collect());
        let got = read_claims(Some(&claim), None, None, None);
        let defective = entries.iter().any(|e| e.defective);
        let topics: Vec<MatcherSpec> = entries.iter().flat_map(|e| e.topics.clone()).collect();
        let accept = !defective && topics.len() <= MAX_TOPICS;
        check(got.is_ok() == accept, || format!("accepted {} but the model says {accept}", got.is_ok()))?;
        if let Ok(g) = got {
            let read: Vec<MatcherSpec> = g.details.iter().flat_map(|d| d.topics.clone()).collect();
            check(read == topics, || format!("read {read:?}, model {topics:?}"))?;
            check(g.details.iter().all(|d| d.publish && d.subscribe), || "actions lost".into())?;
        }
        Ok(())
    });
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        prop_oneof![re("[a-z_]{0,8}"), Just("mercure".to_owned()), Just("match".to_owned()), re("[^\\x00]{0,6}")]
            .prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        let keys = prop_oneof![
            Just("type".to_owned()),
            Just("actions".to_owned()),
            Just("topics".to_owned()),
            Just("match".to_owned()),
            Just("match_type".to_owned()),
            Just("payload".to_owned()),
            re("[a-z]{1,5}"),
        ];
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            vec((keys, inner), 0..5).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

#[test]
fn fuzz_authorization_details_arbitrary_json_stays_within_bounds() {
    run("fuzz::url_pattern::fuzz_authorization_details_arbitrary_json_stays_within_bounds", 1500, json_value(), |v| {
        if let Ok(g) = read_claims(Some(&v), Some(&v), Some(&v), Some(&v)) {
            let n: usize = g.details.iter().map(|d| d.topics.len()).sum();
            check(n <= MAX_TOPICS, || format!("{n} topics accepted"))?;
            check(
                g.details.iter().flat_map(|d| &d.topics).all(|t| {
                    !t.text.is_empty() && t.text.len() <= MAX_MATCH_LENGTH && !t.text.chars().any(char::is_control)
                }),
                || "a match outside the bounds was accepted".into(),
            )?;
        }
        Ok(())
    });
}
