//! Where the key that verifies a token comes from: one configured key, or a JWK Set.
//!
//! [`KeySource`] is what a verifier holds for one role (and, with Mercure 1.0 access tokens,
//! what each trusted issuer holds per role). It answers one question: given a token's header,
//! which key verifies it and under which algorithm ([`Resolved`]). The algorithm is always
//! pinned by configuration: a static key has exactly one; a JWK Set the configured list,
//! narrowed by each key's own `alg` and type (see [`super::jwk_set`]). A token's header only
//! selects among what configuration allows, never widens it.
//!
//! Cloning is cheap and shares the key (an `Arc`): a JWK Set cloned for a second role is
//! fetched once.

use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, Header};

use super::AuthError;
use super::jwks::{Jwks, JwksLimits, JwksSpec};
use super::jwt::KeySpec;

#[derive(Clone)]
pub enum KeySource {
    /// One key and its algorithm (`*_JWT_KEY`/`*_JWT_ALG`, `publisher_jwt`, …): never changes.
    Static { key: Arc<DecodingKey>, algorithm: Algorithm },
    /// A JWK Set (`*_jwks_url`, `jwks_uri`): fetched, cached and refreshed (see [`Jwks`]).
    Jwks(Arc<Jwks>),
}

/// The key that verifies one token, and the algorithm it must be verified under.
pub struct Resolved {
    pub key: Arc<DecodingKey>,
    pub algorithm: Algorithm,
    /// The generation of the key source it came from (always 0 for a static key): anything
    /// remembered about a token verified with it is void once [`KeySource::generation`]
    /// moves on.
    pub generation: u64,
}

impl KeySource {
    /// A static key: an HMAC secret, or a PEM public key for the other algorithms.
    pub fn from_spec(spec: &KeySpec) -> Result<Self, String> {
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
        Ok(KeySource::Static { key: Arc::new(key), algorithm: spec.algorithm })
    }

    /// A JWK Set; nothing is fetched until [`KeySource::start`] or the first token.
    pub fn jwks(spec: &JwksSpec, limits: JwksLimits, role: &'static str) -> Result<Self, String> {
        Ok(KeySource::Jwks(Jwks::new(spec, limits, role)?))
    }

    /// Starts fetching and refreshing a JWK Set (idempotent; nothing for a static key).
    pub fn start(&self) {
        if let KeySource::Jwks(j) = self {
            j.start();
        }
    }

    /// Every algorithm a token verified by this source may use.
    pub fn algorithms(&self) -> Vec<Algorithm> {
        match self {
            KeySource::Static { algorithm, .. } => vec![*algorithm],
            KeySource::Jwks(j) => j.allowed().to_vec(),
        }
    }

    /// Moves on whenever the keys change (never for a static key).
    pub fn generation(&self) -> u64 {
        match self {
            KeySource::Static { .. } => 0,
            KeySource::Jwks(j) => j.generation(),
        }
    }

    /// The key for a token with this header; for a JWK Set that has no key for it, waits
    /// (bounded by `jwks_fetch_timeout`) for a rate-limited refresh, then gives up (401).
    pub async fn decoding_key(&self, header: &Header) -> Result<Resolved, AuthError> {
        match self {
            KeySource::Static { .. } => self.decoding_key_now(header),
            KeySource::Jwks(j) => j.key(header).await.map(|k| Resolved { key: k.key, algorithm: header.alg, generation: k.generation }),
        }
    }

    /// The key for a token with this header from the keys held now: never waits or fetches.
    pub fn decoding_key_now(&self, header: &Header) -> Result<Resolved, AuthError> {
        match self {
            KeySource::Static { key, algorithm } if header.alg == *algorithm => {
                Ok(Resolved { key: key.clone(), algorithm: *algorithm, generation: 0 })
            }
            KeySource::Static { .. } => Err(AuthError::Invalid("unexpected algorithm".into())),
            KeySource::Jwks(j) => {
                j.key_now(header).map(|k| Resolved { key: k.key, algorithm: header.alg, generation: k.generation })
            }
        }
    }

    /// [`KeySource::decoding_key`] for a whole token: a static key is returned without
    /// decoding the header (jsonwebtoken checks the token's algorithm against it).
    pub async fn key_for_token(&self, token: &str) -> Result<Resolved, AuthError> {
        match self {
            KeySource::Static { key, algorithm } => Ok(Resolved { key: key.clone(), algorithm: *algorithm, generation: 0 }),
            KeySource::Jwks(_) => self.decoding_key(&header_of(token)?).await,
        }
    }

    /// [`KeySource::decoding_key_now`] for a whole token.
    pub fn key_for_token_now(&self, token: &str) -> Result<Resolved, AuthError> {
        match self {
            KeySource::Static { key, algorithm } => Ok(Resolved { key: key.clone(), algorithm: *algorithm, generation: 0 }),
            KeySource::Jwks(_) => self.decoding_key_now(&header_of(token)?),
        }
    }

    /// The JWK Set behind this source, if any (for metrics).
    pub fn jwks_set(&self) -> Option<&Arc<Jwks>> {
        match self {
            KeySource::Jwks(j) => Some(j),
            KeySource::Static { .. } => None,
        }
    }
}

/// A token's header; `alg: none` and unknown algorithms do not parse.
fn header_of(token: &str) -> Result<Header, AuthError> {
    jsonwebtoken::decode_header(token).map_err(|_| AuthError::Invalid("malformed token".into()))
}
