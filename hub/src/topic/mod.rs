//! Topic selectors: what a subscriber (or a token's `publish`/`subscribe` claim) names, and how
//! it is matched against an update's topics.
//!
//! Mercure 0.x has three kinds of selector: `*` (everything), an exact topic, and an RFC 6570
//! URI template ([`template`]); which one a `topic=` value is, is guessed from its text
//! ([`MatchKind::Legacy`]). Mercure 1.0 names the kind instead: `match=` is exact, byte for
//! byte, and `match_urlpattern=` a WHATWG URL pattern ([`url_pattern`]); `*` is every topic
//! whatever the kind. All of them are [`Selector`]s, so the registry and the authorization
//! checks treat both dialects alike.
//!
//! Compiling a template is far costlier than matching it, and thousands of subscribers usually
//! share a handful of selectors, so compiled templates are interned in a [`SelectorCompiler`]
//! and shared through `Arc`. The interning tables hold only weak references: a template's
//! memory is released when the last subscription or token grant using it is gone, so a client
//! cycling through distinct templates cannot make the hub keep them.
//!
//! A template past its [`TemplateLimits`] is refused ([`TemplateError::is_limit`]), and the
//! request that carried it gets a 400; a template that is merely malformed is matched as a
//! plain string, as the Go hub does.

pub mod template;
pub mod url_pattern;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use dashmap::DashMap;

pub use template::{TemplateError, TemplateLimits, UriTemplate};
pub use url_pattern::{PatternError, UrlPatternMatcher};

/// How a selector's text is to be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatchKind {
    /// Mercure 0.x (`topic=`, the `mercure` claim): `*`, else a URI template when the text
    /// holds an expression, else exact.
    Legacy,
    /// Mercure 1.0 `exact`: byte-for-byte comparison (`*` is still every topic).
    Exact,
    /// Mercure 1.0 `urlpattern`: a WHATWG URL pattern (`*` is still every topic).
    UrlPattern,
}

impl MatchKind {
    /// The 1.0 `match_type` name (`topic` for a 0.x selector, which has none).
    pub fn name(self) -> &'static str {
        match self {
            MatchKind::Legacy => "topic",
            MatchKind::Exact => "exact",
            MatchKind::UrlPattern => "urlpattern",
        }
    }

    /// Reads a 1.0 `match_type` value: the names of the Go hub 1.0 (`exact`, `urlpattern`)
    /// and the spelling of the later drafts (`Exact`, `URLPattern`). Case-sensitive.
    pub fn from_type_name(name: &str) -> Option<Self> {
        match name {
            "exact" | "Exact" => Some(MatchKind::Exact),
            "urlpattern" | "URLPattern" => Some(MatchKind::UrlPattern),
            _ => None,
        }
    }
}

/// A selector before compilation: its kind and its text.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MatcherSpec {
    pub kind: MatchKind,
    pub text: String,
}

impl MatcherSpec {
    pub fn new(kind: MatchKind, text: impl Into<String>) -> Self {
        MatcherSpec { kind, text: text.into() }
    }

    /// 0.x selectors (a `topic=` list, a `mercure` claim).
    pub fn legacy_all<S: AsRef<str>>(texts: &[S]) -> Vec<MatcherSpec> {
        texts.iter().map(|t| MatcherSpec::new(MatchKind::Legacy, t.as_ref())).collect()
    }
}

/// Why a selector could not be compiled (the request or token carrying it is refused).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Pattern(#[from] PatternError),
}

#[derive(Clone, Debug)]
pub enum Selector {
    /// `*`: every topic.
    Any,
    /// A topic compared byte for byte.
    Exact(Arc<str>),
    /// An RFC 6570 template; it also matches a topic equal to its own text.
    Template(Arc<UriTemplate>),
    /// A WHATWG URL pattern (Mercure 1.0).
    UrlPattern(Arc<UrlPatternMatcher>),
}

impl Selector {
    pub fn matches(&self, topic: &str) -> bool {
        match self {
            Selector::Any => true,
            Selector::Exact(s) => &**s == topic,
            Selector::Template(t) => t.as_str() == topic || t.is_match(topic),
            Selector::UrlPattern(p) => p.is_match(topic),
        }
    }

    /// The 1.0 matcher type this selector is reported under (`*` and exact topics are
    /// `exact`; a 0.x template has none and reports `topic`).
    pub fn kind(&self) -> MatchKind {
        match self {
            Selector::Any | Selector::Exact(_) => MatchKind::Exact,
            Selector::Template(_) => MatchKind::Legacy,
            Selector::UrlPattern(_) => MatchKind::UrlPattern,
        }
    }

    /// The selector as the client wrote it.
    pub fn as_str(&self) -> &str {
        match self {
            Selector::Any => "*",
            Selector::Exact(s) => s,
            Selector::Template(t) => t.as_str(),
            Selector::UrlPattern(p) => p.as_str(),
        }
    }
}

/// True when any selector matches any of the topics (the 0.x rule for private updates and for
/// a subscription matching an update through a canonical or alternate topic).
pub fn any_matches(selectors: &[Selector], topics: &[Box<str>]) -> bool {
    selectors.iter().any(|s| topics.iter().any(|t| s.matches(t)))
}

/// True when every topic is matched by at least one selector (the rule for publishing).
pub fn all_matched(selectors: &[Selector], topics: &[Box<str>]) -> bool {
    topics.iter().all(|t| selectors.iter().any(|s| s.matches(t)))
}

/// Fewest entries an interning table may hold before it is swept of dead entries.
const MIN_SWEEP: usize = 1024;

/// Compiles selectors, interning templates so that equal templates share one compiled regex.
pub struct SelectorCompiler {
    /// dashmap: subscribers connect concurrently on every worker thread; sharding keeps them
    /// from contending on one lock. Weak values: the table never keeps a template alive.
    templates: DashMap<Box<str>, Weak<UriTemplate>>,
    /// Interned URL patterns, like `templates`.
    patterns: DashMap<Box<str>, Weak<UrlPatternMatcher>>,
    /// What relative URL patterns and relative topics are resolved against: the hub's URL.
    base: url::Url,
    /// Interned grant lists (a token's `subscribe` selectors): subscribers holding the same
    /// claims share one list, which lets a fan-out check a private update once per distinct
    /// grant instead of once per subscriber. Weak values, like `templates`.
    grants: DashMap<Box<[MatcherSpec]>, Weak<[Selector]>>,
    /// What one template may contain (checked before compiling it).
    limits: TemplateLimits,
    /// Table size at which dead entries are next swept: twice the live count after the last
    /// sweep (at least [`MIN_SWEEP`]), so sweeping costs O(1) amortized per insertion and a
    /// table holds at most about twice the entries still in use.
    sweep_templates_at: AtomicUsize,
    sweep_patterns_at: AtomicUsize,
    sweep_grants_at: AtomicUsize,
}

/// The base URL when none is configured (`public_url`).
pub const DEFAULT_BASE: &str = "https://localhost/.well-known/mercure";

impl SelectorCompiler {
    pub fn new(limits: TemplateLimits) -> Self {
        Self::with_base(limits, url::Url::parse(DEFAULT_BASE).expect("DEFAULT_BASE is a URL"))
    }

    /// A compiler resolving relative URL patterns and topics against `base`.
    pub fn with_base(limits: TemplateLimits, base: url::Url) -> Self {
        SelectorCompiler {
            templates: DashMap::new(),
            patterns: DashMap::new(),
            base,
            grants: DashMap::new(),
            limits,
            sweep_templates_at: AtomicUsize::new(MIN_SWEEP),
            sweep_patterns_at: AtomicUsize::new(MIN_SWEEP),
            sweep_grants_at: AtomicUsize::new(MIN_SWEEP),
        }
    }

    /// The URL relative patterns and topics are resolved against.
    pub fn base(&self) -> &url::Url {
        &self.base
    }

    /// Compiles a selector of any kind. 0.x selectors are read leniently (see
    /// [`SelectorCompiler::compile_lenient`]); a 1.0 URL pattern that does not compile is an
    /// error.
    pub fn compile_spec(&self, spec: &MatcherSpec) -> Result<Selector, CompileError> {
        let text = spec.text.as_str();
        if text == "*" {
            return Ok(Selector::Any);
        }
        match spec.kind {
            MatchKind::Legacy => Ok(self.compile_lenient(text)?),
            MatchKind::Exact => Ok(Selector::Exact(text.into())),
            MatchKind::UrlPattern => {
                if let Some(p) = self.patterns.get(text).and_then(|w| w.upgrade()) {
                    return Ok(Selector::UrlPattern(p));
                }
                let compiled = Arc::new(UrlPatternMatcher::compile(text, &self.base)?);
                sweep_if_due(&self.patterns, &self.sweep_patterns_at);
                self.patterns.insert(text.into(), Arc::downgrade(&compiled));
                Ok(Selector::UrlPattern(compiled))
            }
        }
    }

    pub fn compile_specs(&self, specs: &[MatcherSpec]) -> Result<Vec<Selector>, CompileError> {
        specs.iter().map(|s| self.compile_spec(s)).collect()
    }

    pub fn limits(&self) -> &TemplateLimits {
        &self.limits
    }

    /// Compiles a selector. As in the Go hub, a selector that is not a valid template is
    /// matched as a plain string rather than refused: a client's odd topic is not an error. A
    /// template past the limits is an error (the request gets a 400).
    pub fn compile_lenient(&self, selector: &str) -> Result<Selector, TemplateError> {
        match self.compile(selector) {
            Err(e) if !e.is_limit() => Ok(Selector::Exact(selector.into())),
            other => other,
        }
    }

    pub fn compile(&self, selector: &str) -> Result<Selector, TemplateError> {
        if selector == "*" {
            return Ok(Selector::Any);
        }
        if !template::is_template(selector) {
            return Ok(Selector::Exact(selector.into()));
        }
        if let Some(t) = self.templates.get(selector).and_then(|w| w.upgrade()) {
            return Ok(Selector::Template(t));
        }
        let compiled = Arc::new(UriTemplate::compile_within(selector, &self.limits)?);
        sweep_if_due(&self.templates, &self.sweep_templates_at);
        self.templates.insert(selector.into(), Arc::downgrade(&compiled));
        Ok(Selector::Template(compiled))
    }

    /// Compiles a token's grant list, returning the shared copy when the same list is in use.
    pub fn compile_grants(&self, selectors: &[MatcherSpec]) -> Result<Arc<[Selector]>, CompileError> {
        if let Some(g) = self.grants.get(selectors).and_then(|w| w.upgrade()) {
            return Ok(g);
        }
        let key: Box<[MatcherSpec]> = selectors.into();
        let compiled: Arc<[Selector]> = self.compile_specs(selectors)?.into();
        sweep_if_due(&self.grants, &self.sweep_grants_at);
        self.grants.insert(key, Arc::downgrade(&compiled));
        Ok(compiled)
    }

    pub fn compile_all<S: AsRef<str>>(&self, selectors: &[S]) -> Result<Vec<Selector>, TemplateError> {
        selectors.iter().map(|s| self.compile_lenient(s.as_ref())).collect()
    }

    /// Interned templates still in use (for tests and metrics).
    pub fn live_templates(&self) -> usize {
        self.templates.iter().filter(|e| e.value().strong_count() > 0).count()
    }

    /// Interned URL patterns still in use (for tests and metrics).
    pub fn live_patterns(&self) -> usize {
        self.patterns.iter().filter(|e| e.value().strong_count() > 0).count()
    }
}

/// Drops the dead entries of an interning table once it has grown to `at`, then sets the next
/// threshold to twice what is left (see `SelectorCompiler::sweep_templates_at`).
fn sweep_if_due<K: Eq + std::hash::Hash, V: ?Sized>(table: &DashMap<K, Weak<V>>, at: &AtomicUsize) {
    if table.len() < at.load(Ordering::Relaxed) {
        return;
    }
    table.retain(|_, w| w.strong_count() > 0);
    at.store((table.len() * 2).max(MIN_SWEEP), Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_matching() {
        let c = SelectorCompiler::new(TemplateLimits::default());
        assert!(matches!(c.compile("*").unwrap(), Selector::Any));
        let exact = c.compile("https://example.com/a").unwrap();
        assert!(exact.matches("https://example.com/a"));
        assert!(!exact.matches("https://example.com/b"));
        let t = c.compile("https://example.com/books/{id}").unwrap();
        assert!(t.matches("https://example.com/books/1"));
        assert!(t.matches("https://example.com/books/{id}"));
        assert!(!t.matches("https://example.com/authors/1"));
    }

    #[test]
    fn kinds_of_1_0_matchers() {
        let c = SelectorCompiler::new(TemplateLimits::default());
        let exact = c.compile_spec(&MatcherSpec::new(MatchKind::Exact, "https://e.com/{id}")).unwrap();
        assert!(exact.matches("https://e.com/{id}") && !exact.matches("https://e.com/1"), "no template in 1.0 exact");
        assert!(matches!(c.compile_spec(&MatcherSpec::new(MatchKind::UrlPattern, "*")).unwrap(), Selector::Any));
        let p = c.compile_spec(&MatcherSpec::new(MatchKind::UrlPattern, "https://e.com/:id")).unwrap();
        assert!(p.matches("https://e.com/1") && !p.matches("https://e.com/1/2"));
        assert_eq!(p.kind(), MatchKind::UrlPattern);
        assert!(c.compile_spec(&MatcherSpec::new(MatchKind::UrlPattern, "https://e.com/(")).is_err());
        let again = c.compile_spec(&MatcherSpec::new(MatchKind::UrlPattern, "https://e.com/:id")).unwrap();
        let (Selector::UrlPattern(a), Selector::UrlPattern(b)) = (&p, &again) else { panic!("patterns") };
        assert!(Arc::ptr_eq(a, b), "interned");
        assert_eq!(c.live_patterns(), 1);
        assert_eq!(MatchKind::from_type_name("URLPattern"), Some(MatchKind::UrlPattern));
        assert_eq!(MatchKind::from_type_name("URLPATTERN"), None, "case-sensitive");
    }

    #[test]
    fn a_broken_template_matches_as_a_string() {
        let c = SelectorCompiler::new(TemplateLimits::default());
        let s = c.compile_lenient("https://e.com/{").unwrap();
        assert!(s.matches("https://e.com/{"));
        assert!(!s.matches("https://e.com/x"));
    }

    #[test]
    fn templates_are_interned() {
        let c = SelectorCompiler::new(TemplateLimits::default());
        let (Selector::Template(a), Selector::Template(b)) = (c.compile("/{x}").unwrap(), c.compile("/{x}").unwrap())
        else {
            panic!("expected templates");
        };
        assert!(Arc::ptr_eq(&a, &b));
    }

    #[test]
    fn publish_and_private_rules() {
        let c = SelectorCompiler::new(TemplateLimits::default());
        let sels = c.compile_all(&["https://e.com/a", "https://e.com/b/{id}"]).unwrap();
        let topics: Vec<Box<str>> = vec!["https://e.com/a".into(), "https://e.com/b/1".into()];
        assert!(all_matched(&sels, &topics));
        let topics2: Vec<Box<str>> = vec!["https://e.com/a".into(), "https://e.com/c".into()];
        assert!(!all_matched(&sels, &topics2));
        assert!(any_matches(&sels, &topics2));
    }

    #[test]
    fn interned_templates_are_released_with_their_last_user() {
        let c = SelectorCompiler::new(TemplateLimits::default());
        let a = c.compile("/{x}").unwrap();
        let grants = c.compile_grants(&MatcherSpec::legacy_all(&["/{y}"])).unwrap();
        assert_eq!(c.live_templates(), 2);
        drop(a);
        assert_eq!(c.live_templates(), 1, "the table does not keep an unused template alive");
        drop(grants);
        assert_eq!(c.live_templates(), 0);
        // Dead entries are swept as the table grows: it stays near twice the live count.
        let keep: Vec<_> = (0..10).map(|i| c.compile(&format!("/keep/{i}/{{x}}")).unwrap()).collect();
        for i in 0..5 * MIN_SWEEP {
            c.compile(&format!("/gone/{i}/{{x}}")).unwrap();
        }
        assert!(c.templates.len() <= 2 * MIN_SWEEP, "{} entries", c.templates.len());
        assert_eq!(c.live_templates(), keep.len());
    }

    #[test]
    fn templates_past_the_limits_are_errors_not_strings() {
        let c = SelectorCompiler::new(TemplateLimits { max_length: 64, max_expressions: 2, max_variables: 2 });
        assert!(c.compile_lenient("/{a}/{b}/{c}").unwrap_err().is_limit());
        assert!(c.compile_all(&["/ok/{a}", &format!("/{}{{x}}", "a".repeat(64))]).is_err());
        assert!(matches!(c.compile_lenient("/{a").unwrap(), Selector::Exact(_)));
    }
}
