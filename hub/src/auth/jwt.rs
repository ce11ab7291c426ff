//! JWT verification for the 0.x token format (the `mercure` claim).
//!
//! One [`Verifier`] per role, built once at start-up with its [`KeySource`]: the configured
//! key and algorithm, or a JWK Set. Pinned to the configured algorithm(s): a token claiming
//! any other (including `none`) is refused, so a public key can never be used as an HMAC
//! secret. No claim is required (Mercure tokens often carry no `exp`); `exp` and `nbf` are
//! enforced when present, with no leeway; `aud` is not checked (the Go hub does not either).
//!
//! Accepted tokens are remembered (see [`Accepted`]) so that presenting the same token again
//! costs a hash lookup instead of a signature check; `exp` is still enforced on every use.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;

use jsonwebtoken::{Algorithm, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::Deserialize;

use super::keys::{KeySource, Resolved};
use super::{AuthError, Grants};

/// A configured key: the text of the secret (HMAC) or PEM public key, and its algorithm.
#[derive(Clone)]
pub struct KeySpec {
    pub key: String,
    pub algorithm: Algorithm,
}

impl std::fmt::Debug for KeySpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySpec").field("key", &"<redacted>").field("algorithm", &self.algorithm).finish()
    }
}

/// Parses an algorithm name as the Go hub spells them (`HS256`, `RS512`, `EdDSA`, …).
pub fn parse_algorithm(name: &str) -> Result<Algorithm, String> {
    let alg = match name.to_ascii_uppercase().as_str() {
        "HS256" => Algorithm::HS256,
        "HS384" => Algorithm::HS384,
        "HS512" => Algorithm::HS512,
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "EDDSA" => Algorithm::EdDSA,
        _ => return Err(format!("unsupported JWT algorithm {name:?}")),
    };
    Ok(alg)
}

pub struct Verifier {
    keys: KeySource,
    /// One validation per algorithm the key source allows (jsonwebtoken checks the token's
    /// `alg` against it), built once.
    validations: Vec<(Algorithm, Validation)>,
    accepted: Option<Accepted>,
}

/// Longest token remembered; longer ones are verified every time (they are unusual, and the
/// cache's memory bound is entries × this).
const MAX_REMEMBERED_TOKEN: usize = 4096;

/// Tokens this verifier accepted, keyed by their exact text, so a client presenting the same
/// token again (a publisher's service token on every POST, a browser reconnecting) skips the
/// signature check: ES256 ~0.75 M instructions, RS256 ~0.33 M, HS256 ~31 k per verification
/// (`results/bench-baseline.json`).
///
/// Invariants: only a token that passed every check is stored, and only with the grants that
/// check produced; `exp` is checked again on every hit, so a remembered token expires on time;
/// at most `entries` tokens of at most [`MAX_REMEMBERED_TOKEN`] bytes; when full it is cleared
/// at once (O(1) bookkeeping, and the working set — a few publisher tokens plus the tokens of
/// subscribers connecting now — refills it). A token's `nbf` was in the past when it was
/// stored and stays so. Every entry was checked with keys of `generation`: when the key
/// source's generation moves on (a JWK Set changed), the whole map is forgotten, and a
/// verification that used keys of an older generation is not stored, so a token accepted
/// with a key since removed is checked again (and refused).
struct Accepted {
    entries: usize,
    map: Mutex<Remembered>,
}

#[derive(Default)]
struct Remembered {
    generation: u64,
    tokens: HashMap<Box<str>, Arc<Grants>>,
}

impl Accepted {
    /// The grants of a remembered token that has not expired, if the keys are still those of
    /// `generation`; an expired one is forgotten (so it stops taking a slot) and reported as
    /// such.
    fn get(&self, token: &str, generation: u64) -> Option<Result<Arc<Grants>, AuthError>> {
        let mut map = self.map.lock();
        if map.generation != generation {
            // Newer keys: forget everything checked with the old ones. (An older generation
            // is a caller that read it just before a refresh: a miss, nothing to forget.)
            if generation > map.generation {
                map.tokens.clear();
                map.generation = generation;
            }
            return None;
        }
        let grants = map.tokens.get(token)?;
        if expired(grants.expires_at) {
            map.tokens.remove(token);
            return Some(Err(AuthError::Expired));
        }
        Some(Ok(grants.clone()))
    }

    fn insert(&self, token: &str, grants: Grants, generation: u64) {
        if token.len() > MAX_REMEMBERED_TOKEN {
            return;
        }
        let mut map = self.map.lock();
        if generation != map.generation {
            if generation < map.generation {
                return;
            }
            map.tokens.clear();
            map.generation = generation;
        }
        if map.tokens.len() >= self.entries {
            map.tokens.clear();
        }
        map.tokens.insert(token.into(), Arc::new(grants));
    }
}

#[derive(Deserialize)]
struct Claims {
    /// Read as any JSON value, then required to be an object (see `mercure_claim`): serde's
    /// derived struct decoding would also accept an array (`[["*"]]`), which the Go hub refuses.
    mercure: Option<serde_json::Value>,
    /// The namespaced spelling some older clients use.
    #[serde(rename = "https://mercure.rocks/")]
    namespaced: Option<serde_json::Value>,
    exp: Option<serde_json::Value>,
    nbf: Option<serde_json::Value>,
    /// Mercure 1.0 access tokens (read only when the header says `at+jwt`; see `access`).
    authorization_details: Option<serde_json::Value>,
    aud: Option<serde_json::Value>,
    iss: Option<serde_json::Value>,
    sub: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
struct MercureClaim {
    #[serde(default)]
    publish: Option<Vec<String>>,
    #[serde(default)]
    subscribe: Option<Vec<String>>,
    #[serde(default)]
    payload: Option<serde_json::Value>,
}

impl Verifier {
    /// A verifier of one static key.
    pub fn new(spec: &KeySpec) -> Result<Self, String> {
        Ok(Self::with_keys(KeySource::from_spec(spec)?))
    }

    /// A verifier of whatever key source (a static key or a JWK Set).
    pub fn with_keys(keys: KeySource) -> Self {
        let validations = keys
            .algorithms()
            .into_iter()
            .map(|alg| {
                let mut validation = Validation::new(alg);
                validation.required_spec_claims.clear();
                validation.validate_aud = false;
                // `exp` and `nbf` are checked here, not by jsonwebtoken: it refuses numbers that
                // do not fit a u64 (2^64, 1e20, negative ones) as malformed, where this hub
                // clamps a far-future `exp` and reads a past `nbf` as past (see `expiry`).
                validation.validate_exp = false;
                validation.validate_nbf = false;
                validation.leeway = 0;
                (alg, validation)
            })
            .collect();
        Verifier { keys, validations, accepted: None }
    }

    /// Where this verifier's keys come from.
    pub fn keys(&self) -> &KeySource {
        &self.keys
    }

    /// Remembers up to `entries` accepted tokens (0: none, every use is verified in full).
    pub fn with_cache(mut self, entries: usize) -> Self {
        self.accepted = (entries > 0).then(|| Accepted { entries, map: Mutex::new(Remembered::default()) });
        self
    }

    /// How many accepted tokens are remembered now.
    pub fn remembered(&self) -> usize {
        self.accepted.as_ref().map_or(0, |a| a.map.lock().tokens.len())
    }

    /// Verifies with the keys held now: never waits. A JWK Set key not loaded yet is refused
    /// (and not fetched); request handlers use [`Verifier::verify_waiting`].
    pub fn verify(&self, token: &str) -> Result<Grants, AuthError> {
        let generation = self.keys.generation();
        if let Some(hit) = self.recall(token, generation) {
            return hit;
        }
        let resolved = self.keys.key_for_token_now(token)?;
        self.check_and_remember(token, &resolved)
    }

    /// Verifies, waiting (at most `jwks_fetch_timeout`) for a JWK Set to refresh when the
    /// token names a key it does not hold yet (see `auth::jwks`).
    pub async fn verify_waiting(&self, token: &str) -> Result<Grants, AuthError> {
        let generation = self.keys.generation();
        if let Some(hit) = self.recall(token, generation) {
            return hit;
        }
        let resolved = self.keys.key_for_token(token).await?;
        self.check_and_remember(token, &resolved)
    }

    fn recall(&self, token: &str, generation: u64) -> Option<Result<Grants, AuthError>> {
        let remembered = self.accepted.as_ref()?.get(token, generation)?;
        Some(remembered.map(|grants| (*grants).clone()))
    }

    fn check_and_remember(&self, token: &str, resolved: &Resolved) -> Result<Grants, AuthError> {
        let grants = self.verify_signed(token, resolved)?;
        if let Some(accepted) = &self.accepted {
            accepted.insert(token, grants.clone(), resolved.generation);
        }
        Ok(grants)
    }

    /// The full check: signature, algorithm, `nbf`, `exp`, and the claims' shape.
    fn verify_signed(&self, token: &str, resolved: &Resolved) -> Result<Grants, AuthError> {
        let validation = self
            .validations
            .iter()
            .find_map(|(alg, v)| (*alg == resolved.algorithm).then_some(v))
            .ok_or_else(|| AuthError::Invalid("unexpected algorithm".into()))?;
        let data = jsonwebtoken::decode::<Claims>(token, &resolved.key, validation).map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::InvalidSignature => AuthError::Invalid("bad signature".into()),
            ErrorKind::InvalidAlgorithm => AuthError::Invalid("unexpected algorithm".into()),
            ErrorKind::ImmatureSignature => AuthError::Invalid("not valid yet".into()),
            _ => AuthError::Invalid("malformed token".into()),
        })?;
        let claims = data.claims;
        let access_token = super::access::is_access_token_type(data.header.typ.as_deref());
        let mercure = match claims.namespaced.or(claims.mercure) {
            None | Some(serde_json::Value::Null) => MercureClaim::default(),
            Some(v @ serde_json::Value::Object(_)) => {
                serde_json::from_value(v).map_err(|_| AuthError::Invalid("malformed mercure claim".into()))?
            }
            Some(_) => return Err(AuthError::Invalid("the mercure claim is not an object".into())),
        };
        let expires_at = match claims.exp {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => Some(expiry(&v, "exp")?),
        };
        if let Some(v) = claims.nbf.filter(|v| !v.is_null())
            && expiry(&v, "nbf")? > SystemTime::now()
        {
            return Err(AuthError::Invalid("not valid yet".into()));
        }
        // jsonwebtoken compares whole seconds and accepts a token during its `exp` second;
        // RFC 7519 says it must be refused on or after `exp`.
        if expired(expires_at) {
            return Err(AuthError::Expired);
        }
        if access_token {
            // RFC 9068: `exp` is required; the `mercure` claim means nothing here.
            if expires_at.is_none() {
                return Err(AuthError::Invalid("an access token must carry exp".into()));
            }
            let access = super::access::read_claims(
                claims.authorization_details.as_ref(),
                claims.aud.as_ref(),
                claims.iss.as_ref(),
                claims.sub.as_ref(),
            )?;
            return Ok(Grants { expires_at, access: Some(Arc::new(access)), ..Grants::default() });
        }
        Ok(Grants {
            publish: mercure.publish.unwrap_or_default(),
            subscribe: mercure.subscribe.unwrap_or_default(),
            payload: mercure.payload,
            expires_at,
            access: None,
        })
    }
}

/// The latest expiry the hub represents: 9999-12-31T23:59:59Z. Later `exp` values (the
/// "never expires" tokens some PHP, Java and Go libraries issue: 2^63, 2^64, 1e19, …) are
/// clamped to it, so no later arithmetic on the expiry can overflow.
pub const MAX_EXPIRY_SECS: u64 = 253_402_300_799;

/// A NumericDate claim (`exp`, `nbf`) as a point in time. Any JSON number is accepted:
/// fractional seconds are kept, a negative one is in the past, one past [`MAX_EXPIRY_SECS`] is
/// clamped to it. Anything else (a string, a boolean, an object) refuses the token. Never
/// panics.
fn expiry(value: &serde_json::Value, claim: &str) -> Result<SystemTime, AuthError> {
    let secs = value.as_f64().ok_or_else(|| AuthError::Invalid(format!("{claim} is not a number")))?;
    // NaN (which JSON cannot carry) falls in the first arm too: `is_nan() || <= 0`.
    let offset = if secs.is_nan() || secs <= 0.0 {
        Duration::ZERO
    } else if secs >= MAX_EXPIRY_SECS as f64 {
        Duration::from_secs(MAX_EXPIRY_SECS)
    } else {
        Duration::try_from_secs_f64(secs).unwrap_or(Duration::from_secs(MAX_EXPIRY_SECS))
    };
    // Cannot fail on any platform Rust supports (SystemTime spans ±292 billion years on 64-bit
    // Unix); clamped again rather than trusted.
    Ok(SystemTime::UNIX_EPOCH.checked_add(offset).unwrap_or(SystemTime::UNIX_EPOCH))
}

/// RFC 7519: a token is refused on or after its `exp`.
fn expired(expires_at: Option<SystemTime>) -> bool {
    expires_at.is_some_and(|t| t <= SystemTime::now())
}

/// Signs an HMAC token with the given claims (development mode and tests).
pub fn sign_hmac(secret: &[u8], algorithm: Algorithm, claims: &serde_json::Value) -> Result<String, String> {
    jsonwebtoken::encode(&Header::new(algorithm), claims, &EncodingKey::from_secret(secret)).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn verifier(key: &str) -> Verifier {
        Verifier::new(&KeySpec { key: key.into(), algorithm: Algorithm::HS256 }).unwrap()
    }

    #[test]
    fn reads_the_mercure_claim() {
        let t = sign_hmac(
            b"k",
            Algorithm::HS256,
            &json!({"mercure": {"publish": ["a"], "subscribe": ["b"], "payload": {"x": 1}}}),
        )
        .unwrap();
        let g = verifier("k").verify(&t).unwrap();
        assert_eq!(g.publish, vec!["a"]);
        assert_eq!(g.subscribe, vec!["b"]);
        assert_eq!(g.payload, Some(json!({"x": 1})));
        assert!(g.expires_at.is_none());
    }

    #[test]
    fn refuses_wrong_key_wrong_alg_none_and_expired() {
        let t = sign_hmac(b"other", Algorithm::HS256, &json!({"mercure": {}})).unwrap();
        assert!(matches!(verifier("k").verify(&t), Err(AuthError::Invalid(_))));
        let t = sign_hmac(b"k", Algorithm::HS512, &json!({"mercure": {}})).unwrap();
        assert!(matches!(verifier("k").verify(&t), Err(AuthError::Invalid(_))));
        // {"alg":"none"} . {"mercure":{"publish":["*"]}} .
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJtZXJjdXJlIjp7InB1Ymxpc2giOlsiKiJdfX0.";
        assert!(verifier("k").verify(none).is_err());
        let t = sign_hmac(b"k", Algorithm::HS256, &json!({"mercure": {}, "exp": 1000})).unwrap();
        assert_eq!(verifier("k").verify(&t).unwrap_err(), AuthError::Expired);
    }

    #[test]
    fn every_exp_value_yields_an_expiry_or_a_clean_refusal() {
        let v = verifier("k");
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(MAX_EXPIRY_SECS);
        // Raw JSON so the numbers reach the parser exactly as a foreign library wrote them.
        let far_values = [
            "9223372036854775807",
            "9223372036854775808",
            "18446744073709551615",
            "18446744073709551616",
            "1e19",
            "1e300",
            "1.7976931348623157e308",
            "99999999999999999999999999999",
        ];
        for raw in far_values {
            let claims: serde_json::Value =
                serde_json::from_str(&format!(r#"{{"mercure":{{"publish":["a"]}},"exp":{raw}}}"#)).unwrap();
            let t = sign_hmac(b"k", Algorithm::HS256, &claims).unwrap();
            let g = v.verify(&t).unwrap_or_else(|e| panic!("exp {raw}: {e}"));
            assert_eq!(g.expires_at, Some(far), "exp {raw} is clamped to the far future");
        }
        for raw in ["-1", "-1e300", "0", "0.5", "1000.25", "-9223372036854775809"] {
            let claims: serde_json::Value =
                serde_json::from_str(&format!(r#"{{"mercure":{{}},"exp":{raw}}}"#)).unwrap();
            let t = sign_hmac(b"k", Algorithm::HS256, &claims).unwrap();
            assert!(v.verify(&t).is_err(), "exp {raw} is in the past");
        }
        for bad in [json!("tomorrow"), json!(true), json!({"a": 1}), json!([1])] {
            let t = sign_hmac(b"k", Algorithm::HS256, &json!({"mercure": {}, "exp": bad})).unwrap();
            assert!(matches!(v.verify(&t), Err(AuthError::Invalid(_))), "exp {bad} is refused");
        }
        for (nbf, ok) in
            [("-1", true), ("0", true), ("1e300", false), ("18446744073709551616", false), ("\"x\"", false)]
        {
            let claims: serde_json::Value =
                serde_json::from_str(&format!(r#"{{"mercure":{{}},"nbf":{nbf}}}"#)).unwrap();
            let t = sign_hmac(b"k", Algorithm::HS256, &claims).unwrap();
            assert_eq!(v.verify(&t).is_ok(), ok, "nbf {nbf}");
        }
        let soon = unix_now() as f64 + 3600.5;
        let t = sign_hmac(b"k", Algorithm::HS256, &json!({"mercure": {}, "exp": soon})).unwrap();
        let at = v.verify(&t).unwrap().expires_at.unwrap();
        assert_eq!(at.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis(), (soon * 1000.0) as u128);
    }

    fn unix_now() -> u64 {
        SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs()
    }

    #[test]
    fn remembers_only_accepted_tokens_and_gives_the_same_grants() {
        let v = verifier("k").with_cache(8);
        let good = sign_hmac(b"k", Algorithm::HS256, &json!({"mercure": {"publish": ["a"]}})).unwrap();
        let forged = sign_hmac(b"other", Algorithm::HS256, &json!({"mercure": {"publish": ["*"]}})).unwrap();
        assert!(v.verify(&forged).is_err());
        assert!(v.verify(&forged).is_err(), "a refused token stays refused");
        assert_eq!(v.remembered(), 0);
        assert_eq!(v.verify(&good).unwrap().publish, vec!["a"]);
        assert_eq!(v.remembered(), 1);
        assert_eq!(v.verify(&good).unwrap().publish, vec!["a"], "a hit gives the grants of the full check");
        // One changed character is another key: verified in full, and refused.
        let mut tampered = good.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        assert!(v.verify(&tampered).is_err());
        assert_eq!(v.remembered(), 1);
    }

    #[test]
    fn a_remembered_token_still_expires_on_time() {
        let v = verifier("k").with_cache(8);
        let exp = unix_now() + 2;
        let t = sign_hmac(b"k", Algorithm::HS256, &json!({"mercure": {"publish": ["a"]}, "exp": exp})).unwrap();
        assert!(v.verify(&t).is_ok());
        assert_eq!(v.remembered(), 1);
        while unix_now() < exp {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(v.verify(&t).unwrap_err(), AuthError::Expired, "served from the cache, refused at exp");
        assert_eq!(v.remembered(), 0, "an expired token is forgotten");
        assert_eq!(v.verify(&t).unwrap_err(), AuthError::Expired, "and refused by the full check after that");
    }

    #[test]
    fn bounded_by_entries_and_token_size_and_off_at_zero() {
        let v = verifier("k").with_cache(2);
        for i in 0..5 {
            let t = sign_hmac(b"k", Algorithm::HS256, &json!({"mercure": {"publish": [format!("t{i}")]}})).unwrap();
            assert_eq!(v.verify(&t).unwrap().publish, vec![format!("t{i}")]);
            assert!(v.remembered() <= 2);
        }
        let big = sign_hmac(b"k", Algorithm::HS256, &json!({"mercure": {"publish": ["x".repeat(5000)]}})).unwrap();
        let before = v.remembered();
        assert!(v.verify(&big).is_ok());
        assert_eq!(v.remembered(), before, "tokens over {MAX_REMEMBERED_TOKEN} bytes are not remembered");
        let off = verifier("k").with_cache(0);
        let t = sign_hmac(b"k", Algorithm::HS256, &json!({"mercure": {}})).unwrap();
        assert!(off.verify(&t).is_ok());
        assert_eq!(off.remembered(), 0);
    }
}
