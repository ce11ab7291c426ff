//! Topic selectors: what a subscriber (or a token's `publish`/`subscribe` claim) names, and how
//! it is matched against an update's topics.
//!
//! Mercure 0.x has three kinds of selector: `*` (everything), an exact topic, and an RFC 6570
//! URI template ([`template`]). Mercure 1.0 adds URL patterns; they become one more
//! [`Selector`] variant, so the registry and the authorization checks need no change.
//!
//! Compiling a template is far costlier than matching it, and thousands of subscribers usually
//! share a handful of selectors, so compiled templates are interned in a [`SelectorCompiler`]
//! and shared through `Arc`.

pub mod template;

use std::sync::Arc;

use dashmap::DashMap;

pub use template::{TemplateError, UriTemplate};

#[derive(Clone, Debug)]
pub enum Selector {
    /// `*`: every topic.
    Any,
    /// A topic compared byte for byte.
    Exact(Arc<str>),
    /// An RFC 6570 template; it also matches a topic equal to its own text.
    Template(Arc<UriTemplate>),
}

impl Selector {
    pub fn matches(&self, topic: &str) -> bool {
        match self {
            Selector::Any => true,
            Selector::Exact(s) => &**s == topic,
            Selector::Template(t) => t.as_str() == topic || t.is_match(topic),
        }
    }

    /// The selector as the client wrote it.
    pub fn as_str(&self) -> &str {
        match self {
            Selector::Any => "*",
            Selector::Exact(s) => s,
            Selector::Template(t) => t.as_str(),
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

/// Compiles selectors, interning templates so that equal templates share one compiled regex.
pub struct SelectorCompiler {
    /// dashmap: subscribers connect concurrently on every worker thread; sharding keeps them
    /// from contending on one lock. Values are `Arc`s handed out, never borrowed across awaits.
    templates: DashMap<Box<str>, Arc<UriTemplate>>,
    /// Interned grant lists (a token's `subscribe` selectors): subscribers holding the same
    /// claims share one list, which lets a fan-out check a private update once per distinct
    /// grant instead of once per subscriber. Bounded like `templates`.
    grants: DashMap<Box<[Box<str>]>, Arc<[Selector]>>,
    /// Most interned templates. Past it the table is cleared (selectors already compiled keep
    /// their `Arc`), which bounds memory against clients sending endless distinct templates.
    max_templates: usize,
}

impl SelectorCompiler {
    pub fn new(max_templates: usize) -> Self {
        SelectorCompiler { templates: DashMap::new(), grants: DashMap::new(), max_templates }
    }

    /// Compiles a selector. As in the Go hub, a selector that is not a valid template is
    /// matched as a plain string rather than refused: a client's odd topic is not an error.
    pub fn compile_lenient(&self, selector: &str) -> Selector {
        self.compile(selector).unwrap_or_else(|_| Selector::Exact(selector.into()))
    }

    pub fn compile(&self, selector: &str) -> Result<Selector, TemplateError> {
        if selector == "*" {
            return Ok(Selector::Any);
        }
        if !template::is_template(selector) {
            return Ok(Selector::Exact(selector.into()));
        }
        if let Some(t) = self.templates.get(selector) {
            return Ok(Selector::Template(t.clone()));
        }
        let compiled = Arc::new(UriTemplate::compile(selector)?);
        if self.templates.len() >= self.max_templates {
            self.templates.clear();
        }
        self.templates.insert(selector.into(), compiled.clone());
        Ok(Selector::Template(compiled))
    }

    /// Compiles a token's grant list, returning the shared copy when the same list was seen.
    pub fn compile_grants(&self, selectors: &[String]) -> Arc<[Selector]> {
        let key: Box<[Box<str>]> = selectors.iter().map(|s| s.as_str().into()).collect();
        if let Some(g) = self.grants.get(&key) {
            return g.clone();
        }
        let compiled: Arc<[Selector]> = self.compile_all(selectors).into();
        if self.grants.len() >= self.max_templates {
            self.grants.clear();
        }
        self.grants.insert(key, compiled.clone());
        compiled
    }

    pub fn compile_all<S: AsRef<str>>(&self, selectors: &[S]) -> Vec<Selector> {
        selectors.iter().map(|s| self.compile_lenient(s.as_ref())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_matching() {
        let c = SelectorCompiler::new(10);
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
    fn a_broken_template_matches_as_a_string() {
        let c = SelectorCompiler::new(10);
        let s = c.compile_lenient("https://e.com/{");
        assert!(s.matches("https://e.com/{"));
        assert!(!s.matches("https://e.com/x"));
    }

    #[test]
    fn templates_are_interned() {
        let c = SelectorCompiler::new(10);
        let (Selector::Template(a), Selector::Template(b)) = (c.compile("/{x}").unwrap(), c.compile("/{x}").unwrap())
        else {
            panic!("expected templates");
        };
        assert!(Arc::ptr_eq(&a, &b));
    }

    #[test]
    fn publish_and_private_rules() {
        let c = SelectorCompiler::new(10);
        let sels = c.compile_all(&["https://e.com/a", "https://e.com/b/{id}"]);
        let topics: Vec<Box<str>> = vec!["https://e.com/a".into(), "https://e.com/b/1".into()];
        assert!(all_matched(&sels, &topics));
        let topics2: Vec<Box<str>> = vec!["https://e.com/a".into(), "https://e.com/c".into()];
        assert!(!all_matched(&sels, &topics2));
        assert!(any_matches(&sels, &topics2));
    }
}
