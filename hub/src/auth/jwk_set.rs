//! A parsed JWK Set (RFC 7517) and the choice of one of its keys for a token's header.
//!
//! Pure: no I/O, no clock, no lock; [`super::jwks`] owns fetching, caching and refreshing.
//!
//! ## What is kept
//! Only keys this hub can verify signatures with: RSA, EC on P-256 or P-384, OKP on Ed25519,
//! whose `use` is absent or `sig`, whose `key_ops` (when present) include `verify`, and whose
//! own `alg` (when present) is a signature algorithm that fits the key's type. Symmetric
//! (`oct`) keys are never taken from a JWK Set: a set is public material, and an HMAC secret
//! in it would let anyone who can read it sign tokens. Every other entry is counted as
//! skipped, never an error: one key of a type this hub does not know must not throw away the
//! rest of the set. Each key's [`DecodingKey`] is built once, here, not per request.
//!
//! ## Choosing a key
//! A token's `alg` must be one of the configured algorithms, equal the key's own `alg` when it
//! has one, and fit the key's type and curve (`RS*`/`PS*` an RSA key, `ES256` a P-256 key,
//! `ES384` a P-384 key, `EdDSA` an Ed25519 key): `none` does not parse, an HMAC algorithm is
//! never configured for a set, so no public key can be used as a secret.
//!
//! - With a `kid`: the keys of that `kid` that fit. None of that `kid` at all → [`Choice::Unknown`]
//!   (the caller may refresh the set); some but none fitting, or several fitting → refused.
//! - Without a `kid`: accepted only when exactly **one** key of the set fits. Trying every
//!   fitting key instead would multiply the cost of each forged token by the size of the set
//!   and make the choice of key ambiguous; a set with one signing key (the common case of a
//!   small identity provider or a `file://` set) still works with tokens that carry no `kid`.
//!   No key fits → [`Choice::Unknown`].
//!
//! The cost of a choice is a scan of the set (a few keys in practice; bounded by
//! `jwks_max_size`) with one string comparison per key.

use std::sync::Arc;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Header};
use serde::Deserialize;

/// The algorithms a JWK Set may be used with: every asymmetric one this hub verifies.
pub const ASYMMETRIC: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The type (and curve) of a kept key: what decides which algorithms fit it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa,
    P256,
    P384,
    Ed25519,
}

impl KeyKind {
    /// Whether a signature made with `alg` can come from a key of this kind.
    pub fn fits(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        match self {
            KeyKind::Rsa => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            KeyKind::P256 => alg == ES256,
            KeyKind::P384 => alg == ES384,
            KeyKind::Ed25519 => alg == EdDSA,
        }
    }
}

/// One usable key of a set.
struct SetKey {
    kid: Option<Box<str>>,
    /// The key's own `alg`, when it states one: then only that algorithm is accepted with it.
    alg: Option<Algorithm>,
    kind: KeyKind,
    key: Arc<DecodingKey>,
}

impl SetKey {
    fn fits(&self, alg: Algorithm) -> bool {
        self.kind.fits(alg) && self.alg.is_none_or(|a| a == alg)
    }
}

/// The outcome of [`KeySet::choose`].
#[derive(Clone)]
pub enum Choice {
    Key(Arc<DecodingKey>),
    /// No key of the token's `kid` (or, without a `kid`, no fitting key): a newer set may
    /// have it.
    Unknown,
    /// The set cannot verify this token, and a newer set would not change that.
    Refused(&'static str),
}

/// The usable keys of one fetched set.
#[derive(Default)]
pub struct KeySet {
    keys: Vec<SetKey>,
    /// Entries of the document that were not kept (see the module docs).
    skipped: usize,
}

#[derive(Deserialize)]
struct RawSet {
    keys: Vec<serde_json::Value>,
}

impl KeySet {
    /// Parses a JWK Set document. An error only when the document is not a JSON object with a
    /// `keys` array; unusable entries are skipped and counted.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let raw: RawSet = serde_json::from_slice(body).map_err(|e| format!("not a JWK Set: {e}"))?;
        let mut set = KeySet::default();
        for value in raw.keys {
            match serde_json::from_value::<Jwk>(value).ok().as_ref().and_then(usable) {
                Some(k) => set.keys.push(k),
                None => set.skipped += 1,
            }
        }
        Ok(set)
    }

    /// Keys kept.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Entries of the document that were not kept.
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// The key that verifies a token with this header, given the configured `allowed`
    /// algorithms (see the module docs).
    pub fn choose(&self, header: &Header, allowed: &[Algorithm]) -> Choice {
        let alg = header.alg;
        if !allowed.contains(&alg) {
            return Choice::Refused("token algorithm not allowed");
        }
        match header.kid.as_deref() {
            Some(kid) => {
                let mut named = self.keys.iter().filter(|k| k.kid.as_deref() == Some(kid)).peekable();
                if named.peek().is_none() {
                    return Choice::Unknown;
                }
                match only(named.filter(|k| k.fits(alg))) {
                    Only::One(k) => Choice::Key(k.key.clone()),
                    Only::None => Choice::Refused("the key named by the token's kid does not fit its algorithm"),
                    Only::Several => Choice::Refused("several keys share the token's kid"),
                }
            }
            None => match only(self.keys.iter().filter(|k| k.fits(alg))) {
                Only::One(k) => Choice::Key(k.key.clone()),
                Only::None => Choice::Unknown,
                Only::Several => Choice::Refused("the token has no kid and several keys of the JWK Set fit it"),
            },
        }
    }
}

enum Only<T> {
    None,
    One(T),
    Several,
}

fn only<T>(mut it: impl Iterator<Item = T>) -> Only<T> {
    match (it.next(), it.next()) {
        (None, _) => Only::None,
        (Some(one), None) => Only::One(one),
        (Some(_), Some(_)) => Only::Several,
    }
}

/// The key of a JWK, if this hub can verify signatures with it (see the module docs).
fn usable(jwk: &Jwk) -> Option<SetKey> {
    let common = &jwk.common;
    if !matches!(common.public_key_use, None | Some(PublicKeyUse::Signature)) {
        return None;
    }
    if common.key_operations.as_ref().is_some_and(|ops| !ops.contains(&KeyOperations::Verify)) {
        return None;
    }
    let kind = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => KeyKind::Rsa,
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => KeyKind::P256,
            EllipticCurve::P384 => KeyKind::P384,
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => KeyKind::Ed25519,
        // `oct` (symmetric), other curves, unknown key types.
        _ => return None,
    };
    // An `alg` this hub does not verify with (an encryption algorithm, an unknown name) means
    // the key is not for us.
    let alg = match common.key_algorithm {
        None => None,
        Some(a) => Some(Algorithm::try_from(a).ok().filter(|a| kind.fits(*a))?),
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(SetKey { kid: common.key_id.as_deref().map(Box::from), alg, kind, key: Arc::new(key) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // Sample public key components (valid base64url of the right lengths). Parsing only:
    // signatures are checked against real keys in tests/jwks.rs.
    const EC_X: &str = "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4";
    const EC_Y: &str = "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM";
    const RSA_N: &str = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
    const ED_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    fn ec(kid: &str, alg: Option<&str>) -> serde_json::Value {
        let mut k = json!({"kty": "EC", "crv": "P-256", "x": EC_X, "y": EC_Y, "kid": kid});
        if let Some(a) = alg {
            k["alg"] = json!(a);
        }
        k
    }

    fn rsa(kid: &str) -> serde_json::Value {
        json!({"kty": "RSA", "n": RSA_N, "e": "AQAB", "kid": kid})
    }

    fn set(keys: serde_json::Value) -> KeySet {
        KeySet::parse(json!({ "keys": keys }).to_string().as_bytes()).unwrap()
    }

    fn header(alg: Algorithm, kid: Option<&str>) -> Header {
        let mut h = Header::new(alg);
        h.kid = kid.map(str::to_owned);
        h
    }

    fn chosen(c: Choice) -> bool {
        matches!(c, Choice::Key(_))
    }

    #[test]
    fn keeps_signing_keys_and_skips_the_rest() {
        let s = set(json!([
            ec("a", Some("ES256")),
            rsa("b"),
            {"kty": "OKP", "crv": "Ed25519", "x": ED_X, "kid": "c"},
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            {"kty": "RSA", "n": RSA_N, "e": "AQAB", "use": "enc", "kid": "enc"},
            {"kty": "RSA", "n": RSA_N, "e": "AQAB", "alg": "RSA-OAEP", "kid": "oaep"},
            {"kty": "RSA", "n": RSA_N, "e": "AQAB", "alg": "ES256", "kid": "mismatch"},
            {"kty": "RSA", "n": RSA_N, "e": "AQAB", "key_ops": ["encrypt"], "kid": "ops"},
            {"kty": "OKP", "crv": "X25519", "x": ED_X, "kid": "x25519"},
            {"kty": "EC", "crv": "P-521", "x": EC_X, "y": EC_Y},
            {"kty": "weird"},
            "not an object",
        ]));
        assert_eq!((s.len(), s.skipped()), (3, 9));
        assert!(KeySet::parse(b"[]").is_err());
        assert!(KeySet::parse(b"{\"keys\": 3}").is_err());
        assert!(KeySet::parse(b"<html>").is_err());
        assert!(KeySet::parse(b"{\"keys\": []}").unwrap().is_empty());
    }

    #[test]
    fn a_kid_picks_its_key_when_the_algorithm_fits() {
        let s = set(json!([ec("a", Some("ES256")), rsa("b"), ec("loose", None)]));
        let all = &ASYMMETRIC[..];
        assert!(chosen(s.choose(&header(Algorithm::ES256, Some("a")), all)));
        assert!(chosen(s.choose(&header(Algorithm::PS512, Some("b")), all)));
        assert!(chosen(s.choose(&header(Algorithm::ES256, Some("loose")), all)));
        assert!(matches!(s.choose(&header(Algorithm::ES256, Some("zzz")), all), Choice::Unknown));
        // Key type and curve pin the algorithm: no RSA key for ES256, no P-256 key for ES384.
        assert!(matches!(s.choose(&header(Algorithm::ES256, Some("b")), all), Choice::Refused(_)));
        assert!(matches!(s.choose(&header(Algorithm::ES384, Some("loose")), all), Choice::Refused(_)));
        assert!(matches!(s.choose(&header(Algorithm::RS256, Some("a")), all), Choice::Refused(_)));
        // HMAC is never allowed with a set: a public key is not a secret.
        assert!(matches!(s.choose(&header(Algorithm::HS256, Some("b")), all), Choice::Refused(_)));
        // The configured list pins it further.
        assert!(matches!(s.choose(&header(Algorithm::PS512, Some("b")), &[Algorithm::RS256]), Choice::Refused(_)));
    }

    #[test]
    fn the_key_s_own_alg_pins_it() {
        let s = set(json!([{"kty": "RSA", "n": RSA_N, "e": "AQAB", "kid": "r", "alg": "RS256"}]));
        assert!(chosen(s.choose(&header(Algorithm::RS256, Some("r")), &ASYMMETRIC)));
        assert!(matches!(s.choose(&header(Algorithm::PS256, Some("r")), &ASYMMETRIC), Choice::Refused(_)));
    }

    #[test]
    fn no_kid_needs_exactly_one_fitting_key() {
        let one_rsa = set(json!([ec("a", None), rsa("b")]));
        assert!(chosen(one_rsa.choose(&header(Algorithm::RS256, None), &ASYMMETRIC)));
        assert!(chosen(one_rsa.choose(&header(Algorithm::ES256, None), &ASYMMETRIC)));
        assert!(matches!(one_rsa.choose(&header(Algorithm::EdDSA, None), &ASYMMETRIC), Choice::Unknown));
        let two_rsa = set(json!([rsa("a"), rsa("b")]));
        assert!(matches!(two_rsa.choose(&header(Algorithm::RS256, None), &ASYMMETRIC), Choice::Refused(_)));
        assert!(chosen(two_rsa.choose(&header(Algorithm::RS256, Some("a")), &ASYMMETRIC)));
        let same_kid = set(json!([rsa("a"), rsa("a")]));
        assert!(matches!(same_kid.choose(&header(Algorithm::RS256, Some("a")), &ASYMMETRIC), Choice::Refused(_)));
        assert!(matches!(KeySet::default().choose(&header(Algorithm::RS256, None), &ASYMMETRIC), Choice::Unknown));
    }
}
