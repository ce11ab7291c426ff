//! JWT verification for the 0.x token format (the `mercure` claim).
//!
//! One [`Verifier`] per role, built once at start-up with the configured key and algorithm.
//! Pinned to that one algorithm: a token claiming any other (including `none`) is refused, so
//! a public key can never be used as an HMAC secret. No claim is required (Mercure tokens
//! often carry no `exp`); `exp` and `nbf` are enforced when present, with no leeway; `aud` is
//! not checked (the Go hub does not either).

use std::time::{Duration, SystemTime};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::Deserialize;

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
    key: DecodingKey,
    validation: Validation,
}

#[derive(Deserialize)]
struct Claims {
    mercure: Option<MercureClaim>,
    /// The namespaced spelling some older clients use.
    #[serde(rename = "https://mercure.rocks/")]
    namespaced: Option<MercureClaim>,
    exp: Option<serde_json::Value>,
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
    pub fn new(spec: &KeySpec) -> Result<Self, String> {
        let bytes = spec.key.as_bytes();
        let key = match spec.algorithm {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => DecodingKey::from_secret(bytes),
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => DecodingKey::from_rsa_pem(bytes).map_err(|e| format!("RSA public key: {e}"))?,
            Algorithm::ES256 | Algorithm::ES384 => {
                DecodingKey::from_ec_pem(bytes).map_err(|e| format!("EC public key: {e}"))?
            }
            Algorithm::EdDSA => DecodingKey::from_ed_pem(bytes).map_err(|e| format!("Ed25519 public key: {e}"))?,
            other => return Err(format!("unsupported JWT algorithm {other:?}")),
        };
        let mut validation = Validation::new(spec.algorithm);
        validation.required_spec_claims.clear();
        validation.validate_aud = false;
        validation.validate_nbf = true;
        validation.leeway = 0;
        Ok(Verifier { key, validation })
    }

    pub fn verify(&self, token: &str) -> Result<Grants, AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::InvalidSignature => AuthError::Invalid("bad signature".into()),
            ErrorKind::InvalidAlgorithm => AuthError::Invalid("unexpected algorithm".into()),
            ErrorKind::ImmatureSignature => AuthError::Invalid("not valid yet".into()),
            _ => AuthError::Invalid("malformed token".into()),
        })?;
        let claims = data.claims;
        let mercure = claims.namespaced.or(claims.mercure).unwrap_or_default();
        let expires_at = match claims.exp {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => {
                let secs = v.as_f64().ok_or_else(|| AuthError::Invalid("exp is not a number".into()))?;
                Some(SystemTime::UNIX_EPOCH + Duration::from_secs_f64(secs.max(0.0)))
            }
        };
        // jsonwebtoken compares whole seconds and accepts a token during its `exp` second;
        // RFC 7519 says it must be refused on or after `exp`.
        if expires_at.is_some_and(|t| t <= SystemTime::now()) {
            return Err(AuthError::Expired);
        }
        Ok(Grants {
            publish: mercure.publish.unwrap_or_default(),
            subscribe: mercure.subscribe.unwrap_or_default(),
            payload: mercure.payload,
            expires_at,
        })
    }
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
}
