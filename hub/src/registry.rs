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

#[derive(Default)]
pub struct Registry {
    exact: DashMap<Arc<str>, Vec<Arc<Subscriber>>>,
    /// RwLock: read by every publish, written only when a template selector is added or its
    /// last subscriber leaves.
    templates: RwLock<Vec<TemplateSlot>>,
    wildcard: RwLock<Vec<Arc<Subscriber>>>,
    all: DashMap<u64, Arc<Subscriber>>,
}

struct TemplateSlot {
    template: Arc<UriTemplate>,
    subscribers: Vec<Arc<Subscriber>>,
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
                Selector::Any => self.wildcard.write().push(sub.clone()),
                Selector::Exact(topic) => self.exact.entry(topic.clone()).or_default().push(sub.clone()),
                Selector::Template(t) => {
                    let mut slots = self.templates.write();
                    match slots.iter_mut().find(|s| s.template.as_str() == t.as_str()) {
                        Some(slot) => slot.subscribers.push(sub.clone()),
                        None => slots.push(TemplateSlot {
                            template: t.clone(),
                            subscribers: vec![sub.clone()],
                            cache: Mutex::new(HashMap::new()),
                        }),
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
        let drop_from = |list: &mut Vec<Arc<Subscriber>>| {
            if let Some(i) = list.iter().position(|s| s.id == sub.id) {
                list.swap_remove(i);
            }
        };
        for sel in sub.selectors.iter() {
            match sel {
                Selector::Any => drop_from(&mut self.wildcard.write()),
                Selector::Exact(topic) => {
                    self.exact.remove_if_mut(&**topic, |_, list| {
                        drop_from(list);
                        list.is_empty()
                    });
                }
                Selector::Template(t) => {
                    let mut slots = self.templates.write();
                    if let Some(i) = slots.iter().position(|s| s.template.as_str() == t.as_str()) {
                        drop_from(&mut slots[i].subscribers);
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
