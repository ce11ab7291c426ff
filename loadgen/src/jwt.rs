//! Mercure JWTs: minted from a shared secret when the user gives a key instead of tokens.
//!
//! HS256. In the 0.x dialect the claims are `{"mercure":{"publish":[...],"subscribe":[...]}}`
//! with no `exp`, which is what both dunglas/mercure and our hub accept with the default demo
//! key. In the 1.0 dialect ([`Style::Access`]) they are an RFC 9068 access token (`typ:
//! at+jwt`, `aud` naming the hub, `exp` a day away unless given) whose `authorization_details`
//! grant the same actions on `*`.

use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::{Value, json};

/// Which kind of token to mint.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Style {
    /// Mercure 0.x: the `mercure` claim.
    #[default]
    Legacy,
    /// Mercure 1.0: an access token for these resource identifiers (`aud`).
    Access { audience: Vec<String> },
}

/// The 1.0 authorization detail type (the Go hub 1.0's; our hub also reads `mercure`).
const DETAIL_TYPE: &str = "https://mercure.rocks/authorization-detail";

/// How long a 1.0 token without an explicit expiry lives (1.0 requires `exp`).
const ACCESS_LIFE_S: u64 = 24 * 3600;

impl Style {
    /// Claims granting `actions` on every topic, expiring at `exp` (Unix seconds) if given.
    fn claims(&self, actions: &[&str], exp: Option<u64>) -> (Header, Value) {
        match self {
            Style::Legacy => {
                let mut mercure = serde_json::Map::new();
                for a in actions {
                    mercure.insert((*a).to_owned(), json!(["*"]));
                }
                let mut claims = json!({"mercure": mercure});
                if let Some(exp) = exp {
                    claims["exp"] = json!(exp);
                }
                (Header::default(), claims)
            }
            Style::Access { audience } => {
                let exp = exp.unwrap_or_else(|| crate::clock::unix_now_ns() / 1_000_000_000 + ACCESS_LIFE_S);
                let header = Header { typ: Some("at+jwt".into()), ..Header::default() };
                let claims = json!({
                    "aud": audience,
                    "exp": exp,
                    "sub": "mercure-loadgen",
                    "authorization_details": [{"type": DETAIL_TYPE, "actions": actions, "topics": [{"match": "*"}]}],
                });
                (header, claims)
            }
        }
    }
}

/// A token of `style` allowed to publish and subscribe to everything.
pub fn publisher_in(style: &Style, key: &str) -> Result<String, String> {
    let (h, c) = style.claims(&["publish", "subscribe"], None);
    mint_with(h, key, c)
}

/// A token of `style` allowed to receive every private update, expiring at `exp` if given.
pub fn subscriber_in(style: &Style, key: &str, exp: Option<u64>) -> Result<String, String> {
    let (h, c) = style.claims(&["subscribe"], exp);
    mint_with(h, key, c)
}

fn mint_with(header: Header, key: &str, claims: Value) -> Result<String, String> {
    encode(&header, &claims, &EncodingKey::from_secret(key.as_bytes())).map_err(|e| format!("cannot sign JWT: {e}"))
}

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

    #[test]
    fn access_tokens_carry_typ_aud_exp_and_details() {
        use super::*;
        let style = Style::Access { audience: vec!["http://h:1/.well-known/mercure".into()] };
        let t = subscriber_in(&style, DEMO_KEY, Some(42)).unwrap_or_default();
        let header = jsonwebtoken::decode_header(&t).expect("header");
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        v.validate_exp = false;
        v.set_audience(&["http://h:1/.well-known/mercure"]);
        let data = jsonwebtoken::decode::<Value>(&t, &jsonwebtoken::DecodingKey::from_secret(DEMO_KEY.as_bytes()), &v)
            .expect("decodes");
        assert_eq!(data.claims["exp"], 42);
        assert_eq!(data.claims["authorization_details"][0]["actions"], json!(["subscribe"]));
        assert!(data.claims.get("mercure").is_none());
        let p = publisher_in(&Style::Legacy, DEMO_KEY).unwrap_or_default();
        assert_eq!(jsonwebtoken::decode_header(&p).expect("header").typ.as_deref(), Some("JWT"));
    }
}
