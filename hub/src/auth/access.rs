//! Mercure 1.0 access tokens (RFC 9068 JWT access tokens carrying RFC 9396
//! `authorization_details`), read into the same [`Grants`] as 0.x tokens.
//!
//! A token is an access token when its header's `typ` is `at+jwt` (or `application/at+jwt`,
//! RFC 9068 §2.1; compared case-insensitively). Then, beyond the signature and algorithm the
//! [`super::Verifier`] checks for every token:
//! - `exp` is required; `nbf` is enforced (in the verifier);
//! - `aud` (a string or an array of strings) must name the hub's resource identifier, and
//!   `iss` must be a trusted issuer when any is configured: both depend on the hub's
//!   configuration and the request (the resource identifier may be derived from the request's
//!   host), so they are checked by [`check_audience_and_issuer`] at each use, not cached;
//! - `authorization_details` is an array; entries whose `type` is not a Mercure type are
//!   ignored (other resources' details may share the token); a Mercure entry must have an
//!   `actions` array of strings (`publish`, `subscribe`; unknown actions are ignored) and a
//!   non-empty `topics` array of `{match, match_type}` objects; a single malformed Mercure
//!   entry rejects the whole token (no partial acceptance).
//!
//! Bounded cost: at most [`MAX_DETAILS`] Mercure entries and [`MAX_TOPICS`] topics across them,
//! each at most [`MAX_MATCH_LENGTH`] bytes, all counted before anything is compiled.

use std::sync::Arc;

use serde_json::Value;

use super::{AuthError, Grants};
use crate::topic::{MatchKind, MatcherSpec, Selector, SelectorCompiler};

/// The authorization detail types read as Mercure's: the Go hub 1.0's URI and the short name of
/// the later drafts.
pub const DETAIL_TYPES: [&str; 2] = ["https://mercure.rocks/authorization-detail", "mercure"];

/// Most Mercure authorization details in one token.
pub const MAX_DETAILS: usize = 100;
/// Most topic matchers across a token's Mercure details.
pub const MAX_TOPICS: usize = 100;
/// Longest `match` value, in bytes.
pub const MAX_MATCH_LENGTH: usize = crate::topic::url_pattern::MAX_PATTERN_LENGTH;

/// What a 1.0 token grants, detail by detail (order kept: the first matching detail gives a
/// subscription its payload).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccessGrants {
    pub details: Vec<Detail>,
    /// `aud`, as a list.
    pub audience: Vec<String>,
    /// `iss`.
    pub issuer: Option<String>,
    /// `sub`: names the subscriber in subscription events.
    pub subject: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Detail {
    pub publish: bool,
    pub subscribe: bool,
    pub topics: Vec<MatcherSpec>,
    pub payload: Option<Value>,
}

/// Whether a JWT header's `typ` marks an RFC 9068 access token.
pub fn is_access_token_type(typ: Option<&str>) -> bool {
    typ.is_some_and(|t| t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt"))
}

/// Reads the 1.0 claims of an access token whose signature, `exp` and `nbf` were checked.
pub fn read_claims(
    details: Option<&Value>,
    aud: Option<&Value>,
    iss: Option<&Value>,
    sub: Option<&Value>,
) -> Result<AccessGrants, AuthError> {
    let invalid = |why: &str| AuthError::Invalid(why.to_owned());
    let audience = match aud {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or_else(|| invalid("aud holds a non-string")))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(invalid("aud is neither a string nor an array")),
    };
    let string_claim = |v: Option<&Value>, name: &str| match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(AuthError::Invalid(format!("{name} is not a string"))),
    };
    let issuer = string_claim(iss, "iss")?;
    let subject = string_claim(sub, "sub")?;
    let details = match details {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(entries)) => read_details(entries)?,
        Some(_) => return Err(invalid("authorization_details is not an array")),
    };
    Ok(AccessGrants { details, audience, issuer, subject })
}

fn read_details(entries: &[Value]) -> Result<Vec<Detail>, AuthError> {
    let invalid = |why: String| AuthError::Invalid(format!("authorization_details: {why}"));
    let mut details = Vec::new();
    let mut topics_seen = 0usize;
    for entry in entries {
        let Value::Object(obj) = entry else { return Err(invalid("an entry is not an object".into())) };
        match obj.get("type") {
            Some(Value::String(t)) if DETAIL_TYPES.contains(&t.as_str()) => {}
            Some(Value::String(_)) => continue,
            _ => return Err(invalid("an entry has no string type".into())),
        }
        if details.len() == MAX_DETAILS {
            return Err(invalid(format!("more than {MAX_DETAILS} mercure entries")));
        }
        let Some(Value::Array(actions)) = obj.get("actions") else {
            return Err(invalid("a mercure entry has no actions array".into()));
        };
        let (mut publish, mut subscribe) = (false, false);
        for a in actions {
            match a.as_str() {
                Some("publish") => publish = true,
                Some("subscribe") => subscribe = true,
                Some(_) => {} // unknown actions grant nothing
                None => return Err(invalid("an action is not a string".into())),
            }
        }
        let Some(Value::Array(raw_topics)) = obj.get("topics") else {
            return Err(invalid("a mercure entry has no topics array".into()));
        };
        if raw_topics.is_empty() {
            return Err(invalid("a mercure entry has an empty topics array".into()));
        }
        topics_seen += raw_topics.len();
        if topics_seen > MAX_TOPICS {
            return Err(invalid(format!("more than {MAX_TOPICS} topics across mercure entries")));
        }
        let topics = raw_topics.iter().map(read_topic).collect::<Result<Vec<_>, _>>().map_err(invalid)?;
        let payload = match obj.get("payload") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.clone()),
        };
        details.push(Detail { publish, subscribe, topics, payload });
    }
    Ok(details)
}

/// One `{match, match_type}` topic matcher (`matchType` accepted as the later drafts spell it).
fn read_topic(v: &Value) -> Result<MatcherSpec, String> {
    let Value::Object(obj) = v else { return Err("a topic is not an object".into()) };
    let Some(Value::String(text)) = obj.get("match") else { return Err("a topic has no string match".into()) };
    if text.is_empty() {
        return Err("a topic's match is empty".into());
    }
    if text.len() > MAX_MATCH_LENGTH {
        return Err(format!("a topic's match is longer than {MAX_MATCH_LENGTH} bytes"));
    }
    if text.chars().any(is_forbidden_char) {
        return Err("a topic's match contains a control character".into());
    }
    let kind = match obj.get("match_type").or_else(|| obj.get("matchType")) {
        None | Some(Value::Null) => MatchKind::Exact,
        Some(Value::String(name)) => {
            MatchKind::from_type_name(name).ok_or_else(|| format!("unknown match_type {name:?}"))?
        }
        Some(_) => return Err("a topic's match_type is not a string".into()),
    };
    Ok(MatcherSpec::new(kind, text.as_str()))
}

/// C0, DEL and C1 control characters: refused in 1.0 topics and matchers.
pub fn is_forbidden_char(c: char) -> bool {
    c.is_control()
}

impl AccessGrants {
    fn specs(&self, wanted: impl Fn(&Detail) -> bool) -> Vec<MatcherSpec> {
        self.details.iter().filter(|d| wanted(d)).flat_map(|d| d.topics.iter().cloned()).collect()
    }

    pub fn publish_specs(&self) -> Vec<MatcherSpec> {
        self.specs(|d| d.publish)
    }

    pub fn subscribe_specs(&self) -> Vec<MatcherSpec> {
        self.specs(|d| d.subscribe)
    }

    /// The payload of the first `subscribe` detail one of whose topics matches the
    /// subscription's own matcher text (read as if it were a topic; `*` matches every one).
    /// A matcher that does not compile matches nothing here.
    pub fn payload_for(&self, matcher: &str, compiler: &SelectorCompiler) -> Option<Value> {
        for d in self.details.iter().filter(|d| d.subscribe) {
            for spec in &d.topics {
                let hit = match compiler.compile_spec(spec) {
                    Ok(Selector::Any) => true,
                    Ok(sel) => sel.matches(matcher),
                    Err(_) => false,
                };
                if hit {
                    return d.payload.clone();
                }
            }
        }
        None
    }
}

impl Grants {
    /// The publish selectors of either token format.
    pub fn publish_specs(&self) -> Vec<MatcherSpec> {
        match &self.access {
            Some(a) => a.publish_specs(),
            None => MatcherSpec::legacy_all(&self.publish),
        }
    }

    /// The subscribe selectors (private updates allowed) of either token format.
    pub fn subscribe_specs(&self) -> Vec<MatcherSpec> {
        match &self.access {
            Some(a) => a.subscribe_specs(),
            None => MatcherSpec::legacy_all(&self.subscribe),
        }
    }
}

/// The hub's idea of who it is, against which an access token's `aud` and `iss` are checked.
#[derive(Debug, Clone, Copy)]
pub struct Audience<'a> {
    /// The resource identifier for this request (configured, or derived from its host).
    pub resource: Option<&'a str>,
    /// Trusted issuers; empty: any (self-issued tokens).
    pub issuers: &'a [String],
}

/// RFC 9068 §4: the hub's resource identifier must be in `aud`; `iss` must be trusted when a
/// list of trusted issuers is configured.
pub fn check_audience_and_issuer(access: &Arc<AccessGrants>, audience: Audience<'_>) -> Result<(), AuthError> {
    let Some(resource) = audience.resource else {
        return Err(AuthError::Invalid("the hub has no resource identifier for this host".into()));
    };
    if !access.audience.iter().any(|a| a == resource) {
        return Err(AuthError::Invalid(format!("aud does not name {resource}")));
    }
    if !audience.issuers.is_empty() && !access.issuer.as_ref().is_some_and(|i| audience.issuers.contains(i)) {
        return Err(AuthError::Invalid("iss is not a trusted issuer".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(details: Value) -> Result<AccessGrants, AuthError> {
        read_claims(Some(&details), Some(&json!("https://hub/.well-known/mercure")), None, None)
    }

    #[test]
    fn details_are_read_with_their_kinds_and_payloads() {
        let g = read(json!([
            {"type": "https://mercure.rocks/authorization-detail", "actions": ["publish", "subscribe", "fly"],
             "topics": [{"match": "https://e.com/b/:id", "match_type": "urlpattern"}, {"match": "x"}]},
            {"type": "mercure", "actions": ["subscribe"], "topics": [{"match": "*", "matchType": "Exact"}],
             "payload": {"a": 1}},
            {"type": "https://other.example/detail", "topics": "whatever shape"},
        ]))
        .unwrap();
        assert_eq!(g.details.len(), 2, "the foreign detail is ignored");
        assert_eq!(g.details[0].topics[0], MatcherSpec::new(MatchKind::UrlPattern, "https://e.com/b/:id"));
        assert_eq!(g.details[0].topics[1].kind, MatchKind::Exact, "match_type defaults to exact");
        let grants = Grants { access: Some(Arc::new(g)), ..Grants::default() };
        assert_eq!(grants.publish_specs().len(), 2);
        assert_eq!(grants.subscribe_specs().len(), 3);
        let c = SelectorCompiler::new(crate::topic::TemplateLimits::default());
        let access = grants.access.as_ref().unwrap();
        assert_eq!(access.payload_for("https://e.com/b/1", &c), None, "first matching detail has none");
        assert_eq!(access.payload_for("elsewhere", &c), Some(json!({"a": 1})));
    }

    #[test]
    fn one_malformed_mercure_detail_rejects_the_token() {
        let bad = [
            json!({"type": "mercure", "topics": [{"match": "x"}]}),
            json!({"type": "mercure", "actions": "publish", "topics": [{"match": "x"}]}),
            json!({"type": "mercure", "actions": [1], "topics": [{"match": "x"}]}),
            json!({"type": "mercure", "actions": ["publish"], "topics": []}),
            json!({"type": "mercure", "actions": ["publish"], "topics": ["x"]}),
            json!({"type": "mercure", "actions": ["publish"], "topics": [{"match": ""}]}),
            json!({"type": "mercure", "actions": ["publish"], "topics": [{"match": "a\u{7}b"}]}),
            json!({"type": "mercure", "actions": ["publish"], "topics": [{"match": "x", "match_type": "URLPATTERN"}]}),
            json!({"type": "mercure", "actions": ["publish"], "topics": [{"match": "x", "match_type": "template"}]}),
            json!({"actions": ["publish"], "topics": [{"match": "x"}]}),
        ];
        for b in bad {
            let good = json!({"type": "mercure", "actions": ["publish"], "topics": [{"match": "ok"}]});
            assert!(read(json!([good, b.clone()])).is_err(), "{b}");
        }
        assert!(read(json!({"type": "mercure"})).is_err(), "not an array");
    }

    #[test]
    fn limits_are_counted_before_anything_else() {
        let topics: Vec<Value> = (0..=MAX_TOPICS).map(|i| json!({"match": format!("t{i}")})).collect();
        assert!(read(json!([{"type": "mercure", "actions": ["publish"], "topics": topics}])).is_err());
        let many: Vec<Value> =
            (0..=MAX_DETAILS).map(|_| json!({"type": "mercure", "actions": [], "topics": [{"match": "t"}]})).collect();
        assert!(read(Value::Array(many)).is_err());
        let long = "a".repeat(MAX_MATCH_LENGTH + 1);
        assert!(read(json!([{"type": "mercure", "actions": ["publish"], "topics": [{"match": long}]}])).is_err());
    }

    #[test]
    fn audience_and_issuer() {
        let g = Arc::new(
            read_claims(None, Some(&json!(["other", "https://hub/.well-known/mercure"])), Some(&json!("as1")), None)
                .unwrap(),
        );
        let trusted = vec!["as1".to_owned()];
        let ok = Audience { resource: Some("https://hub/.well-known/mercure"), issuers: &trusted };
        assert!(check_audience_and_issuer(&g, ok).is_ok());
        assert!(check_audience_and_issuer(&g, Audience { resource: Some("https://x"), ..ok }).is_err());
        assert!(check_audience_and_issuer(&g, Audience { resource: None, ..ok }).is_err());
        let other = vec!["as2".to_owned()];
        assert!(check_audience_and_issuer(&g, Audience { issuers: &other, ..ok }).is_err());
        assert!(read_claims(None, Some(&json!(7)), None, None).is_err());
        assert!(is_access_token_type(Some("AT+JWT")) && is_access_token_type(Some("application/at+jwt")));
        assert!(!is_access_token_type(Some("JWT")) && !is_access_token_type(None));
    }
}
