//! Mercure JWTs: minted from a shared secret when the user gives a key instead of tokens.
//!
//! HS256, claims `{"mercure":{"publish":[...],"subscribe":[...]}}` with no `exp`, which is
//! what both dunglas/mercure and our hub accept with the default demo key.

use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::json;

/// The demo key of the dunglas/mercure Docker image and of our hub's docs.
pub const DEMO_KEY: &str = "!ChangeThisMercureHubJWTSecretKey!";

/// A publisher token allowed to publish (and subscribe) to everything.
pub fn publisher(key: &str) -> Result<String, String> {
    mint(key, json!({"mercure": {"publish": ["*"], "subscribe": ["*"]}}))
}

/// A subscriber token allowed to receive every private update.
pub fn subscriber(key: &str) -> Result<String, String> {
    mint(key, json!({"mercure": {"subscribe": ["*"]}}))
}

/// A subscriber token allowed to receive everything, expiring at `exp` (Unix seconds).
pub fn subscriber_until(key: &str, exp: u64) -> Result<String, String> {
    mint(key, json!({"exp": exp, "mercure": {"subscribe": ["*"]}}))
}

fn mint(key: &str, claims: serde_json::Value) -> Result<String, String> {
    encode(&Header::default(), &claims, &EncodingKey::from_secret(key.as_bytes()))
        .map_err(|e| format!("cannot sign JWT: {e}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn mints_three_part_token() {
        let t = super::publisher(super::DEMO_KEY).unwrap_or_default();
        assert_eq!(t.split('.').count(), 3);
    }
}
