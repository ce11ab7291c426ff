//! A JWK Set kept fresh: fetched at start, refreshed periodically and when a token names a key
//! it does not hold, with a rate limit; the last good set is kept when a refresh fails.
//!
//! ## Refreshing
//! - **At start** ([`Jwks::start`], called when the server starts serving, or by the first
//!   token): one fetch, not awaited by start-up. A token arriving before it completes waits
//!   for it, as for any refresh in flight.
//! - **Periodically**, every `jwks_refresh_interval` (default 1 h, as the Go hub; `0s`
//!   disables) after the previous periodic fetch ended; after a failed fetch the next try
//!   comes `jwks_min_refresh_interval` later instead (at least 1 s).
//! - **On an unknown `kid`** (or a token without `kid` that no key fits): a fetch is started
//!   unless one started less than `jwks_min_refresh_interval` ago (default 30 s; `0s` removes
//!   the limit). So a flood of made-up `kid`s costs at most one fetch per interval. The token
//!   then waits for that fetch, or for the one already in flight, at most `jwks_fetch_timeout`
//!   (default 5 s), and is checked once more against the set it brought. A token arriving
//!   inside the interval with no fetch in flight is refused at once (401).
//!
//! One fetch at a time (single flight): a second trigger joins the running one. Fetches run
//! in their own task, so a request that gives up (client gone, wait over) does not cancel
//! the fetch others wait on.
//!
//! ## Failures
//! A fetch that fails (unreachable, timeout, not `200`, too big, not a JWK Set) changes
//! nothing: the last good set stays in force, the failure is logged with the URL and counted
//! (`mercure_jwks_refresh_failures_total`). At start-up an unreachable set does not stop the
//! hub (the Go hub does the same): it serves, and refuses the tokens of that role (401) until
//! a fetch succeeds. A set that parses but has no usable key replaces the old one: that is
//! what the identity provider publishes (every key revoked), and keeping revoked keys would be
//! worse.
//!
//! ## Generations
//! Every installed set that differs from the one before gets the next generation number. The
//! verifier's remembered tokens are tagged with the generation of the key that checked them,
//! and forgotten when it changes, so a token accepted with a key that was since removed is
//! checked again, and refused.
//!
//! ## Locks
//! `current` (parking_lot `RwLock<Arc<…>>`): read on every token to clone an `Arc`, written
//! once per installed set; never held across an `.await` or a parse. `refresh` (a short
//! mutex): the single-flight flag and the rate limit's clock; never held across an `.await`.
//! Completion is broadcast on a `watch` channel (a counter), which waiters subscribe to
//! before they look at the flag, so none misses the end of the fetch it joined.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use jsonwebtoken::{Algorithm, DecodingKey, Header};
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use super::AuthError;
use super::fetch::{Fetcher, Location};
use super::jwk_set::{ASYMMETRIC, Choice, KeySet};

/// A configured JWK Set: where it is, and the algorithms its keys may be used with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksSpec {
    pub url: String,
    /// Allowed token algorithms, all asymmetric (checked at configuration). Empty: every
    /// asymmetric algorithm this hub verifies ([`ASYMMETRIC`]).
    pub algorithms: Vec<Algorithm>,
}

impl JwksSpec {
    /// Checks the URL and that no algorithm is symmetric.
    pub fn new(url: &str, algorithms: Vec<Algorithm>) -> Result<Self, String> {
        Location::parse(url)?;
        if let Some(a) = algorithms.iter().find(|a| !ASYMMETRIC.contains(a)) {
            return Err(format!(
                "{a:?} cannot be used with a JWK Set: an HMAC secret is not published; use an asymmetric algorithm"
            ));
        }
        Ok(JwksSpec { url: url.trim().to_owned(), algorithms })
    }

    /// The algorithms in force: the configured ones, or every asymmetric one.
    pub fn allowed(&self) -> Vec<Algorithm> {
        if self.algorithms.is_empty() { ASYMMETRIC.to_vec() } else { self.algorithms.clone() }
    }
}

/// The refresh policy and bounds of every JWK Set (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JwksLimits {
    /// Between periodic fetches; zero disables them. Default 1 h.
    pub refresh_interval: Duration,
    /// Least time between the starts of two fetches triggered by unknown `kid`s (the rate
    /// limit); zero removes it. Default 30 s.
    pub min_refresh_interval: Duration,
    /// Longest one fetch may take, and longest a token waits for one. Default 5 s.
    pub fetch_timeout: Duration,
    /// Largest document read. Default 1 MiB.
    pub max_bytes: usize,
}

impl Default for JwksLimits {
    fn default() -> Self {
        JwksLimits {
            refresh_interval: Duration::from_secs(3600),
            min_refresh_interval: Duration::from_secs(30),
            fetch_timeout: Duration::from_secs(5),
            max_bytes: 1 << 20,
        }
    }
}

/// The key chosen for a token, with the generation of the set it came from.
pub struct JwksKey {
    pub key: Arc<DecodingKey>,
    pub generation: u64,
}

/// The set in force.
struct Snapshot {
    set: KeySet,
    /// The document it was parsed from: an identical document is not parsed again and does
    /// not change the generation.
    raw: Bytes,
    generation: u64,
}

/// The single-flight flag and the rate limit's clock.
#[derive(Default)]
struct RefreshState {
    running: bool,
    last_start: Option<Instant>,
    last_ok: bool,
}

pub struct Jwks {
    /// `publisher`, `subscriber` or `publisher+subscriber`: for logs and metric labels.
    role: &'static str,
    url: String,
    fetcher: Fetcher,
    allowed: Vec<Algorithm>,
    limits: JwksLimits,
    current: RwLock<Arc<Snapshot>>,
    refresh: Mutex<RefreshState>,
    /// Counts finished fetches; see "Locks" in the module docs.
    done: watch::Sender<u64>,
    started: AtomicBool,
    fetches: AtomicU64,
    failures: AtomicU64,
}

/// Ends a fetch however its task ends (even by a panic): clears the flag, wakes the waiters.
struct Running<'a> {
    jwks: &'a Jwks,
    ok: bool,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        {
            let mut st = self.jwks.refresh.lock();
            st.running = false;
            st.last_ok = self.ok;
        }
        self.jwks.done.send_modify(|n| *n += 1);
    }
}

impl Jwks {
    pub fn new(spec: &JwksSpec, limits: JwksLimits, role: &'static str) -> Result<Arc<Self>, String> {
        let location = Location::parse(&spec.url)?;
        let empty = Snapshot { set: KeySet::default(), raw: Bytes::new(), generation: 0 };
        Ok(Arc::new(Jwks {
            role,
            url: spec.url.clone(),
            fetcher: Fetcher::new(location, limits.max_bytes, limits.fetch_timeout),
            allowed: spec.allowed(),
            limits,
            current: RwLock::new(Arc::new(empty)),
            refresh: Mutex::new(RefreshState::default()),
            done: watch::channel(0).0,
            started: AtomicBool::new(false),
            fetches: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }))
    }

    pub fn role(&self) -> &'static str {
        self.role
    }

    /// The algorithms tokens verified by this set may use.
    pub fn allowed(&self) -> &[Algorithm] {
        &self.allowed
    }

    /// The generation of the set in force (0 until one is installed).
    pub fn generation(&self) -> u64 {
        self.current.read().generation
    }

    /// Starts the first fetch and the periodic refresh, once; later calls do nothing. Needs a
    /// tokio runtime: without one it does nothing (and a later call starts it).
    pub fn start(self: &Arc<Self>) {
        if self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.started.store(false, Ordering::Release);
            return;
        };
        // The first fetch begins here, before any token can look at the (empty) set: a token
        // arriving now joins it instead of starting a second one.
        let first = self.begin_refresh(true);
        // Weak: the task must not keep a dropped verifier's set alive (and fetching) forever.
        runtime.spawn(periodic(Arc::downgrade(self), first));
    }

    /// The key for a token with this header in the set held now: never waits, never fetches.
    pub fn key_now(&self, header: &Header) -> Result<JwksKey, AuthError> {
        match self.choose(header) {
            (Choice::Key(key), generation) => Ok(JwksKey { key, generation }),
            (Choice::Unknown, _) => Err(unknown()),
            (Choice::Refused(why), _) => Err(AuthError::Invalid(why.into())),
        }
    }

    /// The key for a token with this header; when the set has none for it, a refresh (rate
    /// limited, see the module docs) and a wait of at most `jwks_fetch_timeout` for it.
    ///
    /// # Cancel safety
    /// Dropping the future only stops waiting: the fetch goes on in its own task.
    pub async fn key(self: &Arc<Self>, header: &Header) -> Result<JwksKey, AuthError> {
        self.start();
        match self.choose(header) {
            (Choice::Key(key), generation) => return Ok(JwksKey { key, generation }),
            (Choice::Refused(why), _) => return Err(AuthError::Invalid(why.into())),
            (Choice::Unknown, _) => {}
        }
        if let Some(mut finished) = self.begin_refresh(false) {
            let _ = tokio::time::timeout(self.limits.fetch_timeout, finished.changed()).await;
        }
        self.key_now(header)
    }

    fn choose(&self, header: &Header) -> (Choice, u64) {
        let snapshot = self.current.read().clone();
        (snapshot.set.choose(header, &self.allowed), snapshot.generation)
    }

    /// Starts a fetch unless one is running (`force`: regardless of the rate limit). Returns
    /// a receiver that changes when the fetch (started or joined) ends, or `None` when the
    /// rate limit refused a new one.
    fn begin_refresh(self: &Arc<Self>, force: bool) -> Option<watch::Receiver<u64>> {
        let finished = self.done.subscribe();
        let start = {
            let mut st = self.refresh.lock();
            if st.running {
                false
            } else if !force && st.last_start.is_some_and(|t| t.elapsed() < self.limits.min_refresh_interval) {
                return None;
            } else {
                st.running = true;
                st.last_start = Some(Instant::now());
                true
            }
        };
        if start {
            let me = self.clone();
            tokio::spawn(async move { me.fetch_and_install().await });
        }
        Some(finished)
    }

    async fn fetch_and_install(&self) {
        let mut running = Running { jwks: self, ok: false };
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let outcome = match self.fetcher.fetch().await {
            Ok(body) => self.install(body),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(()) => running.ok = true,
            Err(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                let kept = self.current.read().set.len();
                tracing::warn!(role = self.role, url = %self.url, error = %e, keys_kept = kept,
                    "JWK Set refresh failed; the last good set stays in force");
            }
        }
    }

    /// Parses and installs a fetched document, unless it is the one in force.
    fn install(&self, body: Bytes) -> Result<(), String> {
        let (unchanged, generation) = {
            let cur = self.current.read();
            (cur.raw == body, cur.generation)
        };
        if unchanged {
            return Ok(());
        }
        let set = KeySet::parse(&body)?;
        let (keys, skipped, empty) = (set.len(), set.skipped(), set.is_empty());
        let next = Arc::new(Snapshot { set, raw: body, generation: generation + 1 });
        // Only the refresh task installs sets and one runs at a time, so `generation` is
        // still the one in force.
        *self.current.write() = next;
        if empty {
            tracing::warn!(role = self.role, url = %self.url, skipped,
                "JWK Set loaded with no usable key: tokens of this role are refused");
        } else {
            tracing::info!(role = self.role, url = %self.url, keys, skipped, generation = generation + 1,
                "JWK Set loaded");
        }
        Ok(())
    }

    /// Appends this set's lines of the metric families (see [`render_metrics`]).
    fn metric_values(&self) -> [u64; 3] {
        [self.fetches.load(Ordering::Relaxed), self.failures.load(Ordering::Relaxed), self.current.read().set.len() as u64]
    }
}

fn unknown() -> AuthError {
    AuthError::Invalid("no key of the JWK Set matches the token (unknown kid)".into())
}

/// After the first fetch (`pending`), one every `refresh_interval` (sooner after a failure).
/// Ends when the set is dropped.
async fn periodic(weak: Weak<Jwks>, mut pending: Option<watch::Receiver<u64>>) {
    loop {
        if let Some(mut finished) = pending.take() {
            // Each fetch is bounded by `fetch_timeout`; the margin only guards this loop.
            let timeout = weak.upgrade().map_or(Duration::ZERO, |j| j.limits.fetch_timeout * 2);
            let _ = tokio::time::timeout(timeout, finished.changed()).await;
        }
        let Some(jwks) = weak.upgrade() else { return };
        let ok = jwks.refresh.lock().last_ok;
        let interval = jwks.limits.refresh_interval;
        if ok && interval.is_zero() {
            return;
        }
        let delay = if ok { interval } else { jwks.limits.min_refresh_interval.max(Duration::from_secs(1)) };
        drop(jwks);
        tokio::time::sleep(delay).await;
        let Some(jwks) = weak.upgrade() else { return };
        pending = jwks.begin_refresh(true);
    }
}

/// Metric families over every distinct set (a set shared by both roles is listed once):
/// fetches, failed fetches, and keys in force, labelled by role.
pub fn render_metrics(sets: &[&Arc<Jwks>], out: &mut String) {
    use std::fmt::Write;
    let mut distinct: Vec<&Arc<Jwks>> = Vec::new();
    for s in sets {
        if !distinct.iter().any(|d| Arc::ptr_eq(d, s)) {
            distinct.push(s);
        }
    }
    if distinct.is_empty() {
        return;
    }
    let families = [
        ("mercure_jwks_refreshes_total", "counter", "JWK Set fetches started."),
        ("mercure_jwks_refresh_failures_total", "counter", "JWK Set fetches that failed (the last good set was kept)."),
        ("mercure_jwks_keys", "gauge", "Usable keys in the JWK Set in force."),
    ];
    for (i, (name, kind, help)) in families.iter().enumerate() {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for s in &distinct {
            let _ = writeln!(out, "{name}{{role=\"{}\"}} {}", s.role, s.metric_values()[i]);
        }
    }
}
