//! The Go hub's configuration beyond its plain directives: the 1.0 `issuer` block, the Go
//! image's `GLOBAL_OPTIONS`, and why each Go directive this hub does not act on is accepted
//! (the reasons logged once at start-up and listed in the README's directive table).
//!
//! Invariant: every directive the Go hub 0.24 or 1.0 documents is accepted here (implemented,
//! or logged with its reason); `GLOBAL_OPTIONS` never stops start-up. What stops it is an
//! unknown name or malformed arguments, as in the Go hub.

use super::Settings;
use super::directives::Directive;
use super::settings::{jwks_spec, key_spec, no_args, one_arg, parse_admin};

impl Settings {
    /// `GLOBAL_OPTIONS`, Caddy's global options block as the Go image injects it. `admin
    /// ADDRESS` / `admin off` sets the admin listener (a block after it is ignored); every other
    /// option is logged as inactive. Never fatal: what the Go image accepted must not stop this
    /// hub, so text that does not even parse is logged and ignored.
    pub fn apply_global_options(&mut self, text: &str) {
        const CADDY_ONLY: &str = "a Caddy global option: not read by this hub";
        let parsed = match super::directives::parse(text) {
            Ok(p) => p,
            Err(_) => {
                self.inactive.push(("GLOBAL_OPTIONS".into(), "not understood (Caddyfile syntax error): ignored"));
                return;
            }
        };
        for d in parsed {
            match (d.name.as_str(), d.args.as_slice()) {
                ("admin", [addr]) => match parse_admin(addr) {
                    Ok(a) => self.admin = a,
                    Err(_) => self.inactive.push(("GLOBAL_OPTIONS/admin".into(), "address not understood: ignored")),
                },
                _ => self.inactive.push((format!("GLOBAL_OPTIONS/{}", d.name), CADDY_ONLY)),
            }
        }
    }

    /// `issuer ID { publisher { jwt KEY [ALG] } subscriber { jwt KEY [ALG] } }` (Go hub 1.0).
    /// The keys become the publisher and subscriber keys (the environment still wins), so a
    /// 1.0 configuration with one issuer works as it does with `publisher_jwt`/`subscriber_jwt`;
    /// `jwks_uri URL [ALG…]` becomes the role's JWK Set (`*_jwks_url`). The block's id becomes a
    /// trusted issuer: an access token's `iss` must be one of them (see `auth::access`);
    /// `authorization_server` lists it in the protected-resource metadata. Each block's keys
    /// are also kept as that issuer's own (`issuer_keys`): with several blocks, a token naming
    /// one in `iss` is verified with its keys; the role keys are the last block's.
    pub(super) fn apply_issuer(&mut self, d: &Directive) -> Result<(), String> {
        let id = one_arg(d)?.to_owned();
        self.trusted_issuers.push(id.clone());
        let mut own = super::settings::IssuerKeys { id: id.clone(), ..Default::default() };
        for role in &d.block {
            match role.name.as_str() {
                "authorization_server" => self.authorization_servers.push(id.clone()),
                "publisher" | "subscriber" => {
                    no_args(role)?;
                    for m in &role.block {
                        match m.name.as_str() {
                            "jwt" => {
                                let key = Some(key_spec(m)?);
                                if role.name == "publisher" {
                                    own.publisher_key.clone_from(&key);
                                    self.publisher_key = key;
                                } else {
                                    own.subscriber_key.clone_from(&key);
                                    self.subscriber_key = key;
                                }
                            }
                            "jwks_uri" => {
                                let jwks = Some(jwks_spec(m)?);
                                if role.name == "publisher" {
                                    own.publisher_jwks.clone_from(&jwks);
                                    self.publisher_jwks = jwks;
                                } else {
                                    own.subscriber_jwks.clone_from(&jwks);
                                    self.subscriber_jwks = jwks;
                                }
                            }
                            other => return Err(format!("issuer {}: unknown option {other:?}", role.name)),
                        }
                    }
                }
                other => return Err(format!("issuer: unknown option {other:?}")),
            }
        }
        self.issuer_keys.push(own);
        Ok(())
    }
}
pub(super) const INACTIVE_BODY_SIZE_ZERO: &str =
    "0 (no limit, left to a proxy) is not honoured: the hub keeps max_body_size (default 1 MiB)";

/// Why a Go hub directive is accepted without effect, or `None` for an unknown directive.
/// The README's directive table says the same.
pub(super) fn inactive_reason(name: &str) -> Option<&'static str> {
    Some(match name {
        "topic_selector_cache" | "topic_matcher_cache" | "lru_cache" | "subscriber_list_cache_size" => {
            "matching caches are sized by the hub itself (see max_templates)"
        }
        "drain_timeout" => {
            "at shutdown every stream ends at once (clients resume with Last-Event-ID); shutdown_grace bounds the flush"
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_1_0_directives() {
        let text = "issuer https://example.com {\n authorization_server\n publisher {\n  jwt pub-key HS384\n }\n \
                    subscriber {\n  jwks_uri https://example.com/jwks RS256\n }\n}\nmax_request_body_size 512KB\n\
                    debugger\nname main\ndrain_timeout 5s";
        let mut s = Settings::default();
        for d in crate::config::directives::parse(text).unwrap() {
            s.apply_directive(&d).unwrap();
        }
        let pk = s.publisher_key.as_ref().unwrap();
        assert_eq!((pk.key.as_str(), pk.algorithm), ("pub-key", jsonwebtoken::Algorithm::HS384));
        assert!(s.subscriber_key.is_none(), "the subscriber has a JWK Set, no static key");
        let sj = s.subscriber_jwks.as_ref().unwrap();
        assert_eq!(sj.url, "https://example.com/jwks");
        assert_eq!(sj.algorithms, [jsonwebtoken::Algorithm::RS256]);
        assert_eq!(s.limits.max_body_size, 512_000);
        assert!(s.ui && !s.demo);
        assert_eq!(s.name, "main");
        let inactive: Vec<&str> = s.inactive.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(inactive, ["drain_timeout"]);
        assert_eq!(s.trusted_issuers, ["https://example.com"]);
        assert_eq!(s.authorization_servers, ["https://example.com"]);
        for bad in [
            "issuer x {\n publisher {\n  key k\n }\n}",
            "issuer x {\n publisher {\n  jwks_uri https://a.example/k HS256\n }\n}",
            "issuer x {\n publisher {\n  jwks_uri ftp://a.example/k\n }\n}",
        ] {
            let bad = crate::config::directives::parse(bad).unwrap();
            assert!(Settings::default().apply_directive(&bad[0]).is_err(), "{bad:?}");
        }
    }
}
