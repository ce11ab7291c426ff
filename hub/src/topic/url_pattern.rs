//! WHATWG URL Pattern matchers: the Mercure 1.0 `match_urlpattern` matcher type.
//!
//! Compiled with the `urlpattern` crate (denoland/rust-urlpattern, the implementation Deno
//! ships), instantiated with the `regex` crate as its regular-expression engine: `regex`
//! guarantees matching in time linear in the input, which is what the spec asks of a hub that
//! compiles client-supplied patterns (no backtracking, so no catastrophic pattern). Writing our
//! own compiler would mean re-implementing the standard's tokenizer, part parser and URL
//! canonicalization; the crate follows the standard's own test suite.
//!
//! Invariants:
//! - relative patterns and relative topics are resolved against the same base (the hub's
//!   public URL), so a relative pattern matches the relative topics published on this hub;
//! - `ignoreCase` is never set (the spec forbids it);
//! - a pattern is at most [`MAX_PATTERN_LENGTH`] bytes (checked before compiling) and is
//!   compiled inside `catch_unwind`: a pattern the crate cannot handle is an error for the
//!   request that carried it, never a crashed worker;
//! - a topic that is not a URL, even relative to the base, matches no pattern.

use std::panic::{AssertUnwindSafe, catch_unwind};

use url::Url;
use urlpattern::{UrlPattern, UrlPatternInit, UrlPatternMatchInput, UrlPatternOptions};

/// Longest pattern compiled, in bytes (the Go hub's `maxPatternLength`).
pub const MAX_PATTERN_LENGTH: usize = 4096;

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("URL pattern longer than {MAX_PATTERN_LENGTH} bytes")]
    TooLong,
    #[error("invalid URL pattern: {0}")]
    Invalid(String),
}

/// One compiled URL pattern.
pub struct UrlPatternMatcher {
    source: Box<str>,
    pattern: UrlPattern,
    base: Url,
}

impl std::fmt::Debug for UrlPatternMatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("UrlPatternMatcher").field(&self.source).finish()
    }
}

impl UrlPatternMatcher {
    /// Compiles `source`, resolving it against `base` when it is relative.
    pub fn compile(source: &str, base: &Url) -> Result<Self, PatternError> {
        if source.len() > MAX_PATTERN_LENGTH {
            return Err(PatternError::TooLong);
        }
        let compiled = catch_unwind(AssertUnwindSafe(|| {
            let init = UrlPatternInit::parse_constructor_string::<regex::Regex>(source, Some(base.clone()))?;
            UrlPattern::<regex::Regex>::parse(init, UrlPatternOptions { ignore_case: false, ..Default::default() })
        }));
        match compiled {
            Ok(Ok(pattern)) => Ok(UrlPatternMatcher { source: source.into(), pattern, base: base.clone() }),
            Ok(Err(e)) => Err(PatternError::Invalid(e.to_string())),
            Err(_) => Err(PatternError::Invalid("pattern not supported".into())),
        }
    }

    /// The pattern as the client wrote it.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `topic` (absolute, or relative to the base) matches.
    pub fn is_match(&self, topic: &str) -> bool {
        match Url::options().base_url(Some(&self.base)).parse(topic) {
            Ok(url) => self.is_match_url(url),
            Err(_) => false,
        }
    }

    /// Whether an already parsed topic matches (lets a caller parse a topic once for many
    /// patterns sharing this base).
    pub fn is_match_url(&self, url: Url) -> bool {
        self.pattern.test(UrlPatternMatchInput::Url(url)).unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("https://hub.example/.well-known/mercure").unwrap()
    }

    #[test]
    fn absolute_and_relative_patterns() {
        let p = UrlPatternMatcher::compile("https://example.com/books/:id", &base()).unwrap();
        assert!(p.is_match("https://example.com/books/1"));
        assert!(!p.is_match("https://example.com/books/1/chapters"));
        assert!(!p.is_match("https://example.com/authors/1"));
        assert!(!p.is_match("not a url at all \u{0}"));
        // Host is case-insensitive (URL canonicalization), the path is not.
        assert!(p.is_match("https://EXAMPLE.com/books/2"));
        assert!(!p.is_match("https://example.com/Books/2"));

        let rel = UrlPatternMatcher::compile("/.well-known/mercure/subscriptions/:type/:match/:sub", &base()).unwrap();
        assert!(rel.is_match("/.well-known/mercure/subscriptions/exact/a/b"));
        assert!(rel.is_match("https://hub.example/.well-known/mercure/subscriptions/exact/a/b"));
        assert!(!rel.is_match("https://elsewhere.example/.well-known/mercure/subscriptions/exact/a/b"));
    }

    #[test]
    fn wildcards_and_refusals() {
        let p = UrlPatternMatcher::compile("https://example.com/books/*", &base()).unwrap();
        assert!(p.is_match("https://example.com/books/1/2/3"));
        assert!(matches!(UrlPatternMatcher::compile("https://example.com/(", &base()), Err(PatternError::Invalid(_))));
        let long = format!("https://example.com/{}", "a".repeat(MAX_PATTERN_LENGTH));
        assert_eq!(UrlPatternMatcher::compile(&long, &base()).unwrap_err(), PatternError::TooLong);
    }

    #[test]
    fn hostile_patterns_compile_or_fail_quickly_and_match_in_linear_time() {
        // Nested quantifiers that backtracking engines explode on.
        for src in ["https://e.com/(a+)+b", "https://e.com/((a*)*)*b", "https://e.com/:x(.*.*.*.*.*)z"] {
            if let Ok(p) = UrlPatternMatcher::compile(src, &base()) {
                let topic = format!("https://e.com/{}", "a".repeat(3000));
                assert!(!p.is_match(&topic));
            }
        }
    }
}
