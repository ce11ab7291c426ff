//! The registry: which subscribers want which topics.
//!
//! Three indexes, chosen so a publish touches only the subscribers it may concern:
//! - **exact** selectors in a sharded map from topic to subscribers (dashmap: publishes and
//!   subscriptions on different topics never contend; a shard's guard is held only while its
//!   list is walked, never across an `.await`);
//! - **template** selectors, one slot per distinct template, each with a bounded cache of
//!   topic → matched, so a hot topic is matched against a template once, not per publish;
//! - **`*`** subscribers in their own list.
//!
//! Plus `all`, every subscriber by id, for heartbeats, shutdown and listings.
//!
//! The registry does not deduplicate: a subscriber reached through several selectors shows up
//! once per selector, and the dispatcher skips repeats (see `Subscriber::claim`).

use std::collections::HashMap;
use std::sync::Arc;

use dashmap::DashMap;
use parking_lot::{Mutex, RwLock};

use crate::subscriber::Subscriber;
use crate::topic::{Selector, UriTemplate};
use crate::update::Update;

/// Most cached topic → matched answers per template before the cache is cleared.
const TEMPLATE_CACHE_ENTRIES: usize = 4096;

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

#[derive(Default)]
pub struct Registry {
    exact: DashMap<Arc<str>, SubscriberList>,
    /// RwLock: read by every publish, written only when a template selector is added or its
    /// last subscriber leaves.
    templates: RwLock<Vec<TemplateSlot>>,
    wildcard: RwLock<SubscriberList>,
    all: DashMap<u64, Arc<Subscriber>>,
}

struct TemplateSlot {
    template: Arc<UriTemplate>,
    subscribers: SubscriberList,
    /// Mutex: taken only by the publish path, which is already serialized by the dispatch lock.
    cache: Mutex<HashMap<Box<str>, bool>>,
}

impl TemplateSlot {
    fn matches(&self, topic: &str) -> bool {
        let mut cache = self.cache.lock();
        if let Some(m) = cache.get(topic) {
            return *m;
        }
        let m = self.template.as_str() == topic || self.template.is_match(topic);
        if cache.len() >= TEMPLATE_CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(topic.into(), m);
        m
    }
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&self, sub: &Arc<Subscriber>) {
        self.all.insert(sub.id, sub.clone());
        for sel in sub.selectors.iter() {
            match sel {
                Selector::Any => self.wildcard.write().push(sub),
                Selector::Exact(topic) => self.exact.entry(topic.clone()).or_default().push(sub),
                Selector::Template(t) => {
                    let mut slots = self.templates.write();
                    match slots.iter_mut().find(|s| s.template.as_str() == t.as_str()) {
                        Some(slot) => slot.subscribers.push(sub),
                        None => {
                            let mut subscribers = SubscriberList::default();
                            subscribers.push(sub);
                            slots.push(TemplateSlot {
                                template: t.clone(),
                                subscribers,
                                cache: Mutex::new(HashMap::new()),
                            });
                        }
                    }
                }
            }
        }
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
                Selector::Template(t) => {
                    let mut slots = self.templates.write();
                    if let Some(i) = slots.iter().position(|s| s.template.as_str() == t.as_str()) {
                        slots[i].subscribers.remove(sub.id);
                        if slots[i].subscribers.is_empty() {
                            slots.swap_remove(i);
                        }
                    }
                }
            }
        }
        true
    }

    /// Calls `f` for every subscriber whose selectors match one of the update's topics (a
    /// subscriber may be passed more than once; see the module docs).
    pub fn for_each_candidate(&self, update: &Update, mut f: impl FnMut(&Arc<Subscriber>)) {
        for topic in update.topics.iter() {
            if let Some(list) = self.exact.get(&**topic) {
                list.iter().for_each(&mut f);
            }
        }
        for slot in self.templates.read().iter() {
            if update.topics.iter().any(|t| slot.matches(t)) {
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
        self.templates.write().clear();
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
    use crate::topic::SelectorCompiler;

    fn sub(id: u64, selectors: &[&str]) -> Arc<Subscriber> {
        Arc::new(Subscriber::new(id, SelectorCompiler::new(8).compile_all(selectors), None, None))
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
        let r = Registry::new();
        let subs: Vec<_> = (1..=4).map(|i| sub(i, &["t", "{x}", "*"])).collect();
        subs.iter().for_each(|s| r.insert(s));
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
        let r = Registry::new();
        let subs: Vec<_> = (1..=3).map(|i| sub(i, &["t", "{x}", "*"])).collect();
        subs.iter().for_each(|s| r.insert(s));
        assert_eq!(r.drain().len(), 3);
        assert!(r.is_empty());
        assert!(candidates(&r, "t").is_empty());
    }
}
