//! The registry: which subscribers want which topics.
//!
//! Three indexes, chosen so a publish touches only the subscribers it may concern:
//! - **exact** selectors in a sharded map from topic to subscribers (dashmap: publishes and
//!   subscriptions on different topics never contend; a shard's guard is held only while its
//!   list is walked, never across an `.await`);
//! - **pattern** selectors (0.x URI templates and 1.0 URL patterns), one slot per distinct
//!   pattern (at most `max_templates` hub-wide, both kinds counted), each with a bounded cache
//!   of topic → matched, so a hot topic is matched against a pattern once, not per publish;
//! - **`*`** subscribers in their own list.
//!
//! Plus `all`, every subscriber by id, for heartbeats, shutdown and listings.
//!
//! ## Template matching and the dispatch lock
//! Matching a topic against a template runs a regex; the hub calls [`Registry::prematch`]
//! before it takes the dispatch lock, which fills every template's cache for the update's
//! topics. [`Registry::for_each_candidate`], under the lock, then finds its answers in the
//! caches: a regex runs there only for a template that joined, or whose cache was cleared,
//! in between — a few at most, each bounded by the template limits. A topic is first checked
//! against the template's literal prefix and suffix (`UriTemplate::prefilter`), so most
//! templates cost a comparison, not a cache look-up.
//!
//! The registry does not deduplicate: a subscriber reached through several selectors shows up
//! once per selector, and the dispatcher skips repeats (see `Subscriber::claim`).

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, RandomState};
use std::sync::Arc;

use dashmap::DashMap;
use parking_lot::{Mutex, RwLock};

use crate::subscriber::Subscriber;
use crate::topic::{Selector, UriTemplate, UrlPatternMatcher};
use crate::update::Update;

/// Most cached topic → matched answers per template before the cache is cleared. Small on
/// purpose: it bounds each template's memory (~8 KiB) while holding a publisher's hot topics.
const TEMPLATE_CACHE_ENTRIES: usize = 256;

/// A template slot's cache key is already a keyed hash of the topic: hash it no further.
#[derive(Default)]
struct IdentityHasher(u64);

impl std::hash::Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used (keys are u64); fold anything else in case that changes.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A new template would take the hub past `max_templates` distinct templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the hub already serves {0} distinct templates")]
pub struct TooManyTemplates(pub usize);

/// The subscribers of one selector: a dense `Vec` (walked by every publish) plus the position
/// of each subscriber in it, so leaving is O(1) (`swap_remove`, then the moved entry's position
/// is patched) instead of a scan under the shard's write lock.
#[derive(Default)]
pub struct SubscriberList {
    subs: Vec<Arc<Subscriber>>,
    index: HashMap<u64, usize>,
}

impl SubscriberList {
    fn push(&mut self, sub: &Arc<Subscriber>) {
        if self.index.contains_key(&sub.id) {
            return;
        }
        self.index.insert(sub.id, self.subs.len());
        self.subs.push(sub.clone());
    }

    fn remove(&mut self, id: u64) {
        let Some(i) = self.index.remove(&id) else { return };
        self.subs.swap_remove(i);
        if let Some(moved) = self.subs.get(i) {
            self.index.insert(moved.id, i);
        }
    }

    fn iter(&self) -> std::slice::Iter<'_, Arc<Subscriber>> {
        self.subs.iter()
    }

    fn is_empty(&self) -> bool {
        self.subs.is_empty()
    }
}

pub struct Registry {
    exact: DashMap<Arc<str>, SubscriberList>,
    /// RwLock: read by every publish, written only when a template selector is added or its
    /// last subscriber leaves.
    templates: RwLock<TemplateIndex>,
    wildcard: RwLock<SubscriberList>,
    all: DashMap<u64, Arc<Subscriber>>,
    /// Keys the template caches' topic hashes: SipHash with a per-process random key, so a
    /// client cannot aim two topics at one cache entry. A 64-bit collision between two topics
    /// of one template's 256 cached answers is a ~2^-56 event per look-up.
    topic_hasher: RandomState,
    /// Most distinct templates at once, hub-wide (`max_templates`).
    max_templates: usize,
}

/// The pattern slots, and where each pattern's slot is (one table per kind: a template and a
/// URL pattern with the same text are different selectors).
#[derive(Default)]
struct TemplateIndex {
    slots: Vec<TemplateSlot>,
    by_source: [HashMap<Box<str>, usize>; 2],
}

/// What a slot matches topics with.
#[derive(Clone)]
enum SlotPattern {
    Template(Arc<UriTemplate>),
    Url(Arc<UrlPatternMatcher>),
}

impl SlotPattern {
    fn of(sel: &Selector) -> Option<Self> {
        match sel {
            Selector::Template(t) => Some(SlotPattern::Template(t.clone())),
            Selector::UrlPattern(p) => Some(SlotPattern::Url(p.clone())),
            Selector::Any | Selector::Exact(_) => None,
        }
    }

    /// Which of `TemplateIndex::by_source` holds it.
    fn table(&self) -> usize {
        match self {
            SlotPattern::Template(_) => 0,
            SlotPattern::Url(_) => 1,
        }
    }

    /// [`SlotPattern::table`] of a selector's slot, if it has one.
    fn table_of(sel: &Selector) -> Option<usize> {
        match sel {
            Selector::Template(_) => Some(0),
            Selector::UrlPattern(_) => Some(1),
            Selector::Any | Selector::Exact(_) => None,
        }
    }

    fn source(&self) -> &str {
        match self {
            SlotPattern::Template(t) => t.as_str(),
            SlotPattern::Url(p) => p.as_str(),
        }
    }

    #[inline]
    fn is_match(&self, topic: &str) -> bool {
        match self {
            SlotPattern::Template(t) => t.is_match(topic),
            SlotPattern::Url(p) => p.is_match(topic),
        }
    }
}

struct TemplateSlot {
    pattern: SlotPattern,
    subscribers: SubscriberList,
    /// Topic hash → matched. Mutex: concurrent pre-matches of several publishers may fill it;
    /// held for one look-up or insertion, never while a regex runs.
    cache: Mutex<HashMap<u64, bool, BuildHasherDefault<IdentityHasher>>>,
}

impl TemplateSlot {
    fn matches(&self, topic: &str, hasher: &RandomState) -> bool {
        // A template matches its own text, and its literal prefix and suffix alone refuse most
        // topics: both answers come without a cache look-up.
        if let SlotPattern::Template(t) = &self.pattern {
            if t.as_str() == topic {
                return true;
            }
            if !t.prefilter(topic) {
                return false;
            }
        }
        let key = hasher.hash_one(topic);
        if let Some(m) = self.cache.lock().get(&key) {
            return *m;
        }
        let m = self.pattern.is_match(topic);
        let mut cache = self.cache.lock();
        if cache.len() >= TEMPLATE_CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(key, m);
        m
    }
}

impl Registry {
    /// A registry serving at most `max_templates` distinct templates at once.
    pub fn new(max_templates: usize) -> Self {
        Registry {
            exact: DashMap::new(),
            templates: RwLock::new(TemplateIndex::default()),
            wildcard: RwLock::new(SubscriberList::default()),
            all: DashMap::new(),
            topic_hasher: RandomState::new(),
            max_templates,
        }
    }

    /// Adds a subscriber to every index its selectors need. Refused, with nothing changed,
    /// when its templates would take the hub past `max_templates` distinct ones.
    pub fn insert(&self, sub: &Arc<Subscriber>) -> Result<(), TooManyTemplates> {
        let has_templates = sub.selectors.iter().any(|s| SlotPattern::table_of(s).is_some());
        let mut templates = has_templates.then(|| self.templates.write());
        if let Some(index) = templates.as_deref() {
            let mut new: Vec<(usize, &str)> = Vec::new();
            for sel in sub.selectors.iter() {
                let Some(table) = SlotPattern::table_of(sel) else { continue };
                let key = (table, sel.as_str());
                if !index.by_source[table].contains_key(key.1) && !new.contains(&key) {
                    new.push(key);
                }
            }
            if index.slots.len() + new.len() > self.max_templates {
                return Err(TooManyTemplates(self.max_templates));
            }
        }
        self.all.insert(sub.id, sub.clone());
        for sel in sub.selectors.iter() {
            match sel {
                Selector::Any => self.wildcard.write().push(sub),
                Selector::Exact(topic) => self.exact.entry(topic.clone()).or_default().push(sub),
                Selector::Template(_) | Selector::UrlPattern(_) => {
                    let (Some(index), Some(pattern)) = (templates.as_deref_mut(), SlotPattern::of(sel)) else {
                        continue;
                    };
                    let table = pattern.table();
                    match index.by_source[table].get(pattern.source()) {
                        Some(&i) => index.slots[i].subscribers.push(sub),
                        None => {
                            let mut subscribers = SubscriberList::default();
                            subscribers.push(sub);
                            index.by_source[table].insert(pattern.source().into(), index.slots.len());
                            index.slots.push(TemplateSlot { pattern, subscribers, cache: Mutex::new(HashMap::default()) });
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Distinct templates served now.
    pub fn template_count(&self) -> usize {
        self.templates.read().slots.len()
    }

    /// Removes a subscriber from every index. Idempotent: returns false if it was not there.
    pub fn remove(&self, sub: &Subscriber) -> bool {
        if self.all.remove(&sub.id).is_none() {
            return false;
        }
        for sel in sub.selectors.iter() {
            match sel {
                Selector::Any => self.wildcard.write().remove(sub.id),
                Selector::Exact(topic) => {
                    self.exact.remove_if_mut(&**topic, |_, list| {
                        list.remove(sub.id);
                        list.is_empty()
                    });
                }
                Selector::Template(_) | Selector::UrlPattern(_) => {
                    let Some(pattern) = SlotPattern::of(sel) else { continue };
                    let mut index = self.templates.write();
                    let index = &mut *index;
                    let Some(&i) = index.by_source[pattern.table()].get(pattern.source()) else { continue };
                    index.slots[i].subscribers.remove(sub.id);
                    if index.slots[i].subscribers.is_empty() {
                        // The slot (its pattern, regex and cache) is released here.
                        index.by_source[pattern.table()].remove(pattern.source());
                        index.slots.swap_remove(i);
                        if let Some(moved) = index.slots.get(i) {
                            let p = &moved.pattern;
                            index.by_source[p.table()].insert(p.source().into(), i);
                        }
                    }
                }
            }
        }
        true
    }

    /// Matches the update's topics against every template, filling their caches, so that
    /// [`Registry::for_each_candidate`] under the dispatch lock finds the answers there (see the
    /// module docs). Call it before taking the lock.
    pub fn prematch(&self, update: &Update) {
        for slot in self.templates.read().slots.iter() {
            for t in update.topics.iter() {
                slot.matches(t, &self.topic_hasher);
            }
        }
    }

    /// Calls `f` for every subscriber whose selectors match one of the update's topics (a
    /// subscriber may be passed more than once; see the module docs).
    pub fn for_each_candidate(&self, update: &Update, mut f: impl FnMut(&Arc<Subscriber>)) {
        for topic in update.topics.iter() {
            if let Some(list) = self.exact.get(&**topic) {
                list.iter().for_each(&mut f);
            }
        }
        for slot in self.templates.read().slots.iter() {
            if update.topics.iter().any(|t| slot.matches(t, &self.topic_hasher)) {
                slot.subscribers.iter().for_each(&mut f);
            }
        }
        self.wildcard.read().iter().for_each(&mut f);
    }

    /// Calls `f` for every subscriber. Shards are visited one at a time, so this never blocks
    /// publishing for long.
    pub fn for_each(&self, mut f: impl FnMut(&Arc<Subscriber>)) {
        for entry in self.all.iter() {
            f(entry.value());
        }
    }

    /// Empties every index at once and returns who was registered (shutdown): O(subscribers),
    /// where removing them one by one could cost a scan each.
    pub fn drain(&self) -> Vec<Arc<Subscriber>> {
        self.exact.clear();
        *self.templates.write() = TemplateIndex::default();
        *self.wildcard.write() = SubscriberList::default();
        let all: Vec<_> = self.all.iter().map(|e| e.value().clone()).collect();
        self.all.clear();
        all
    }

    /// A point-in-time copy of every subscriber, for listings.
    pub fn snapshot(&self) -> Vec<Arc<Subscriber>> {
        self.all.iter().map(|e| e.value().clone()).collect()
    }

    pub fn len(&self) -> usize {
        self.all.len()
    }

    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic::{SelectorCompiler, TemplateLimits};

    fn sub(id: u64, selectors: &[&str]) -> Arc<Subscriber> {
        let compiler = SelectorCompiler::new(TemplateLimits::default());
        Arc::new(Subscriber::new(id, compiler.compile_all(selectors).unwrap(), None, None))
    }

    fn candidates(r: &Registry, topic: &str) -> Vec<u64> {
        let u = Update::new("x".into(), vec![topic.into()], false, None, None, String::new());
        let mut ids = Vec::new();
        r.for_each_candidate(&u, |s| ids.push(s.id));
        ids.sort_unstable();
        ids
    }

    #[test]
    fn leaving_keeps_every_other_subscriber_reachable() {
        let r = Registry::new(100);
        let subs: Vec<_> = (1..=4).map(|i| sub(i, &["t", "{x}", "*"])).collect();
        subs.iter().for_each(|s| r.insert(s).unwrap());
        assert!(r.remove(&subs[1]));
        assert!(!r.remove(&subs[1]), "removing twice is a no-op");
        // Each of the three indexes still yields 1, 3 and 4 exactly once.
        assert_eq!(candidates(&r, "t"), [1, 1, 1, 3, 3, 3, 4, 4, 4]);
        assert!(r.remove(&subs[3]));
        assert_eq!(candidates(&r, "other"), [1, 1, 3, 3]);
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn drain_empties_every_index() {
        let r = Registry::new(100);
        let subs: Vec<_> = (1..=3).map(|i| sub(i, &["t", "{x}", "*"])).collect();
        subs.iter().for_each(|s| r.insert(s).unwrap());
        assert_eq!(r.drain().len(), 3);
        assert!(r.is_empty());
        assert!(candidates(&r, "t").is_empty());
    }

    #[test]
    fn the_hub_wide_template_cap_refuses_without_changing_anything() {
        let r = Registry::new(3);
        let a = sub(1, &["/a/{x}", "/b/{x}"]);
        r.insert(&a).unwrap();
        let over = sub(2, &["t", "/a/{x}", "/c/{x}", "/d/{x}"]);
        assert_eq!(r.insert(&over), Err(TooManyTemplates(3)));
        assert_eq!(r.len(), 1, "a refused subscriber is in no index");
        assert!(candidates(&r, "t").is_empty());
        // Sharing existing templates costs no new slot.
        r.insert(&sub(3, &["/a/{x}", "/b/{x}", "/c/{x}"])).unwrap();
        assert_eq!(r.template_count(), 3);
        // Slots go with their last subscriber, and the index stays right after swap_remove.
        assert!(r.remove(&a));
        assert_eq!(r.template_count(), 3);
        assert_eq!(candidates(&r, "/c/1"), [3]);
        assert_eq!(candidates(&r, "/a/1"), [3]);
    }

    #[test]
    fn prematch_fills_the_caches_the_locked_pass_reads() {
        let r = Registry::new(10);
        r.insert(&sub(1, &["https://e.com/{x}", "https://other/{y}"])).unwrap();
        let u = Update::new("x".into(), vec!["https://e.com/1".into()], false, None, None, String::new());
        r.prematch(&u);
        let index = r.templates.read();
        let cached: Vec<usize> = index.slots.iter().map(|s| s.cache.lock().len()).collect();
        // The matching template cached its answer; the other was refused by its prefix alone.
        assert_eq!(cached, [1, 0]);
    }
}
