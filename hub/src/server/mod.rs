//! The HTTP server: accepting connections, routing, and shutting down.
//!
//! Public listeners: one per `SERVER_NAME` address (`listen`: `:PORT` is one dual-stack
//! socket), each with its own accept loop and all sharing one connection ceiling, one HTTP
//! configuration and one shutdown; optionally TLS on all of them (`tls`). The admin listener
//! (`admin`) serves only health and metrics, with a ceiling of its own.
//!
//! One tokio task per connection (hyper's `auto` builder serves HTTP/1.1 and h2c on one
//! port, and h2 or HTTP/1.1 over TLS as ALPN chose). The connection ceiling is a semaphore: a connection past it is answered with a
//! static 503 and closed, before any buffer is allocated for it. Accept errors such as
//! EMFILE back off instead of spinning. Every accepted connection gets TCP keepalive and
//! `TCP_USER_TIMEOUT` ([`tcp`]), so a peer that vanished does not stay subscribed.
//! Subscriptions have a ceiling of their own (`max_subscribers`, [`State::subscriber_slots`]):
//! one HTTP/2 connection carries up to `max_concurrent_streams` of them, so the connection
//! ceiling alone does not bound them.
//!
//! ## Shutdown
//! On SIGTERM/SIGINT (or the `shutdown` future): stop accepting, close every subscriber queue
//! (streams write what they have, then end, and clients reconnect elsewhere), ask every
//! connection to finish, and give them `shutdown_grace` before cutting them. Each connection
//! task holds a clone of a channel sender; the channel closing means all have ended.

mod admin;
mod body;
mod cors;
mod demo;
mod dialect;
mod fault;
mod heavy;
pub(crate) mod input;
mod listen;
pub(crate) mod native;
pub(crate) mod publish;
mod response;
mod subscribe;
mod subscriptions_api;
mod tcp;
mod tls;
mod ui;

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::FutureExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, mpsc, watch};

use crate::auth::{KeySource, Verifier};
use crate::config::Settings;
use crate::history::durable::RedbStore;
use crate::hub::{Hub, HubOptions};
use crate::queue::QueueLimits;

pub use body::HubBody;
use response::{Refusal, Resp};

/// The path of the Mercure endpoint.
pub const MERCURE_PATH: &str = crate::subscriptions::HUB_PATH;

/// Everything a request handler needs, shared by every connection.
pub struct State {
    pub hub: Arc<Hub>,
    pub settings: Settings,
    pub publisher: Verifier,
    pub subscriber: Verifier,
    /// With several `issuer` blocks: each issuer's (id, publisher, subscriber) verifiers, for
    /// tokens whose `iss` names it (see [`State::publisher_for`]).
    pub issuers: Vec<(String, Verifier, Verifier)>,
    /// Admission for template matching too heavy for an async worker (see `heavy`).
    pub heavy_matching: heavy::HeavyMatching,
    /// One permit per subscription allowed at once (`max_subscribers`), HTTP/1 and HTTP/2
    /// alike. Each stream's body holds its permit, so it is released exactly once, when the
    /// stream is dropped, whatever ended it.
    pub subscriber_slots: Arc<Semaphore>,
    /// This node's membership of a cluster (`transport_url redis://…`).
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// TLS on every public listener, when configured (`tls`).
    tls: Option<Arc<tls::Tls>>,
}

impl State {
    /// The verifier for a publisher's token: its issuer's, when several `issuer` blocks are
    /// configured and its (not yet verified) `iss` names one; the role's otherwise. Choosing by
    /// `iss` only picks among configured keys: the signature must still verify with them.
    pub fn publisher_for(&self, token: &str) -> &Verifier {
        self.issuer_of(token).map_or(&self.publisher, |(_, p, _)| p)
    }

    /// [`State::publisher_for`] for subscribers.
    pub fn subscriber_for(&self, token: &str) -> &Verifier {
        self.issuer_of(token).map_or(&self.subscriber, |(_, _, s)| s)
    }

    fn issuer_of(&self, token: &str) -> Option<&(String, Verifier, Verifier)> {
        if self.issuers.is_empty() || token.len() > 16 * 1024 {
            return None;
        }
        #[derive(serde::Deserialize)]
        struct Iss {
            iss: Option<String>,
        }
        let iss = jsonwebtoken::dangerous::insecure_decode_claims::<Iss>(token).ok()?.iss?;
        self.issuers.iter().find(|(id, _, _)| *id == iss)
    }

    /// Whether the public listeners serve TLS (the scheme of the hub's derived identity).
    pub fn tls_enabled(&self) -> bool {
        self.tls.is_some()
    }

    /// The state for `settings`, joining the cluster first when the transport is Redis
    /// (waits until Redis answers; see [`crate::cluster::Cluster::connect`]).
    pub async fn start(settings: Settings) -> Result<Self, String> {
        let Some(spec) = settings.transport.redis.clone() else { return Self::new(settings) };
        let (cluster, loaded) = crate::cluster::Cluster::connect(&spec, &settings.transport.retention).await?;
        let relay = cluster.relay();
        let mut state = Self::build(settings, Some((relay, loaded)))?;
        cluster.run(&state.hub);
        state.cluster = Some(Arc::new(cluster));
        Ok(state)
    }

    /// The state of a single node (memory or redb history). A Redis transport needs
    /// [`State::start`].
    pub fn new(settings: Settings) -> Result<Self, String> {
        if settings.transport.redis.is_some() {
            return Err("a Redis transport needs State::start".into());
        }
        Self::build(settings, None)
    }

    fn build(
        settings: Settings,
        relay: Option<(Box<dyn crate::hub::Relay>, Vec<crate::history::durable::Loaded>)>,
    ) -> Result<Self, String> {
        let l = &settings.limits;
        let (publisher_keys, subscriber_keys) = key_sources(&settings)?;
        let publisher = Verifier::with_keys(publisher_keys).with_cache(l.jwt_cache_entries);
        let subscriber = Verifier::with_keys(subscriber_keys).with_cache(l.jwt_cache_entries);
        // One issuer block: its keys are the role keys already. Several: each its own.
        let mut issuers = Vec::new();
        if settings.issuer_keys.len() > 1 {
            for i in &settings.issuer_keys {
                let (p, s) = role_sources(
                    (&i.publisher_jwks, &i.publisher_key),
                    (&i.subscriber_jwks, &i.subscriber_key),
                    settings.limits.jwks,
                )
                .map_err(|e| format!("issuer {}: {e}", i.id))?;
                issuers.push((
                    i.id.clone(),
                    Verifier::with_keys(p).with_cache(l.jwt_cache_entries),
                    Verifier::with_keys(s).with_cache(l.jwt_cache_entries),
                ));
            }
        }
        let options = HubOptions {
            queue: QueueLimits {
                max_events: l.queue_events,
                max_bytes: l.queue_bytes,
                stall_timeout: l.dispatch_timeout,
            },
            retention: settings.transport.retention.clone(),
            subscription_events: settings.subscriptions,
            max_templates: l.max_templates,
            max_templates_per_subscription: l.max_templates_per_subscription,
            template_limits: l.template,
            pattern_base: Some(settings.pattern_base()),
            direct_writes: settings.direct_writes,
            ..HubOptions::default()
        };
        let hub = match (&settings.transport.path, relay) {
            (_, Some((relay, loaded))) => Hub::with_relay(options, relay, loaded),
            (None, None) => Hub::new(options),
            (Some(path), None) => {
                let t = &settings.transport;
                let (store, loaded) = RedbStore::open_with_cache(path, t.fsync, t.cache_bytes)?;
                tracing::info!(file = %path.display(), updates = loaded.len(), "history loaded");
                Hub::with_persistence(options, Some(Box::new(store)), loaded)
            }
        };
        // Unset only when the binary's start-up did not resolve it (library use): no ceiling.
        let slots = settings.limits.max_subscribers.unwrap_or(Semaphore::MAX_PERMITS).min(Semaphore::MAX_PERMITS);
        let subscriber_slots = Arc::new(Semaphore::new(slots));
        let tls = settings.tls.as_ref().map(tls::Tls::load).transpose()?.map(Arc::new);
        Ok(State {
            hub: Arc::new(hub),
            settings,
            publisher,
            subscriber,
            issuers,
            subscriber_slots,
            heavy_matching: heavy::HeavyMatching::new(),
            cluster: None,
            tls,
        })
    }
}

/// Each role's key source: its JWK Set if it has one (it takes precedence, as in the Go hub),
/// else its static key; the subscriber role falls back to the publisher's. A subscriber set
/// identical to the publisher's is the same set, fetched once.
fn key_sources(settings: &Settings) -> Result<(KeySource, KeySource), String> {
    role_sources(
        (&settings.publisher_jwks, &settings.publisher_key),
        (&settings.subscriber_jwks, &settings.subscriber_key),
        settings.limits.jwks,
    )
}

type RoleKeys<'a> = (&'a Option<crate::auth::JwksSpec>, &'a Option<crate::auth::KeySpec>);

/// [`key_sources`] for one (publisher, subscriber) pair of configured keys.
fn role_sources(
    (pj, pk): RoleKeys<'_>,
    (sj, sk): RoleKeys<'_>,
    limits: crate::auth::JwksLimits,
) -> Result<(KeySource, KeySource), String> {
    let shared = pj.is_some() && pj == sj;
    let publisher = match (pj, pk) {
        (Some(j), _) => KeySource::jwks(j, limits, if shared { "publisher+subscriber" } else { "publisher" }),
        (None, Some(k)) => KeySource::from_spec(k),
        (None, None) => Err("no publisher key configured".into()),
    }
    .map_err(|e| format!("publisher key: {e}"))?;
    let subscriber = match (sj, sk) {
        _ if shared => Ok(publisher.clone()),
        (Some(j), _) => KeySource::jwks(j, limits, "subscriber"),
        (None, Some(k)) => KeySource::from_spec(k),
        (None, None) => Ok(publisher.clone()),
    }
    .map_err(|e| format!("subscriber key: {e}"))?;
    Ok((publisher, subscriber))
}

/// A bound, not yet serving, server.
pub struct Server {
    /// The public listeners: one per `SERVER_NAME` address (at least one).
    listeners: Vec<TcpListener>,
    /// The admin listener (health and metrics), when configured and its port was free.
    admin: Option<TcpListener>,
    state: Arc<State>,
    max_connections: usize,
}

impl Server {
    /// Binds every public address (an error names the one that failed) and the admin
    /// address. An admin port that cannot be bound is logged and skipped: probes then use the
    /// public listener, which serves the same paths.
    pub async fn bind(state: State, max_connections: usize) -> std::io::Result<Self> {
        let listeners = listen::bind_public(&state.settings.listen)?;
        let admin = state.settings.admin.and_then(|addr| match listen::bind_admin(addr) {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::warn!(%addr, error = %e, "admin listener not started (health and metrics stay on the public listener)");
                None
            }
        });
        Ok(Server { listeners, admin, state: Arc::new(state), max_connections })
    }

    /// The first public listener's address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listeners.first().ok_or_else(|| std::io::Error::other("no listener"))?.local_addr()
    }

    /// Every public listener's address, in `SERVER_NAME` order.
    pub fn local_addrs(&self) -> std::io::Result<Vec<SocketAddr>> {
        self.listeners.iter().map(|l| l.local_addr()).collect()
    }

    /// The admin listener's address, if it is bound.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// Serves until `shutdown` completes, then drains as described in the module docs.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Server { listeners, admin, state, max_connections } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(state.settings.limits.header_read_timeout)
            .keep_alive(true);
        builder.http2().timer(TokioTimer::new()).max_concurrent_streams(state.settings.limits.max_concurrent_streams);
        let acceptor = Acceptor {
            state: state.clone(),
            builder: Arc::new(builder),
            permits: Arc::new(Semaphore::new(max_connections)),
            max_connections,
            stop: stop_rx.clone(),
            alive: alive_tx.clone(),
        };

        let heartbeat = state.settings.heartbeat.map(|period| {
            let hub = state.hub.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    hub.heartbeat();
                }
            })
        });

        let tls_watch = state.tls.clone().map(|t| tokio::spawn(t.watch()));
        // JWK Sets: first fetch and periodic refresh (not awaited: see `auth::jwks`).
        state.publisher.keys().start();
        state.subscriber.keys().start();
        for (_, p, s) in &state.issuers {
            p.keys().start();
            s.keys().start();
        }

        // One accept loop per listener; each owns its listener, so aborting it stops accepting.
        let mut accepting: Vec<_> = listeners.into_iter().map(|l| tokio::spawn(acceptor.clone().run(l))).collect();
        if let Some(l) = admin {
            let admin = admin::Admin::new(state.clone(), stop_rx.clone(), alive_tx.clone());
            accepting.push(tokio::spawn(admin.run(l)));
        }
        drop(acceptor);
        shutdown.await;

        tracing::info!("shutting down: closing streams");
        for task in &accepting {
            task.abort();
        }
        for task in accepting {
            let _ = task.await;
        }
        for task in [heartbeat, tls_watch].into_iter().flatten() {
            task.abort();
        }
        state.hub.close_all();
        let _ = stop_tx.send(true);
        drop(alive_tx);
        let grace = state.settings.limits.shutdown_grace + Duration::from_secs(1);
        if tokio::time::timeout(grace, alive_rx.recv()).await.is_err() {
            tracing::warn!("some connections did not finish in time; cutting them");
        }
        if let Some(cluster) = &state.cluster {
            cluster.leave().await;
        }
        let hub = state.hub.clone();
        let _ = tokio::task::spawn_blocking(move || hub.close_history()).await;
        tracing::info!("stopped");
    }
}

/// What every public listener's accept loop shares: one connection ceiling, one HTTP
/// configuration, one shutdown signal.
#[derive(Clone)]
struct Acceptor {
    state: Arc<State>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    /// The connection ceiling (`max_connections`), shared by every public listener: a
    /// semaphore, so a slot is released exactly when its connection task ends.
    permits: Arc<Semaphore>,
    max_connections: usize,
    stop: watch::Receiver<bool>,
    /// Cloned into every connection task; see the module docs' `## Shutdown`.
    alive: mpsc::Sender<()>,
}

impl Acceptor {
    /// Accepts until aborted (shutdown).
    async fn run(self, listener: TcpListener) {
        let mut accept_errors_logged_at: Option<tokio::time::Instant> = None;
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE/ENFILE and friends: back off so the loop cannot spin.
                    if accept_errors_logged_at.is_none_or(|t| t.elapsed() > Duration::from_secs(5)) {
                        tracing::error!(error = %e, "accept failed; backing off");
                        accept_errors_logged_at = Some(tokio::time::Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let state = &self.state;
            let Ok(permit) = self.permits.clone().try_acquire_owned() else {
                state.hub.metrics.refused_connections.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%peer, max_connections = self.max_connections, "refused connection: connection ceiling reached");
                tokio::spawn(refuse(stream));
                continue;
            };
            let _ = stream.set_nodelay(true);
            tcp::tune(&stream, &state.settings.limits);
            let conn = Connection {
                state: state.clone(),
                builder: self.builder.clone(),
                stop: self.stop.clone(),
                _alive: self.alive.clone(),
            };
            match &state.tls {
                None => tokio::spawn(async move {
                    conn.serve(stream, peer).await;
                    drop(permit);
                }),
                Some(tls) => {
                    let acceptor = tls.acceptor().clone();
                    tokio::spawn(async move {
                        conn.serve_tls(acceptor, stream, peer).await;
                        drop(permit);
                    })
                }
            };
        }
    }
}

/// Writes the static 503 to a connection past the ceiling, with a short bound on the write.
async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = stream.write_all(response::OVER_CAPACITY).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

struct Connection {
    state: Arc<State>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    stop: watch::Receiver<bool>,
    /// Dropped when this connection ends; see the module docs.
    _alive: mpsc::Sender<()>,
}

impl Connection {
    async fn serve(self, mut stream: TcpStream, peer: SocketAddr) {
        // A guard, not a pair of calls: the gauge stays exact even if this task unwinds.
        let _open = Gauge::up(&self.state.hub.metrics.connections);
        let limits = &self.state.settings.limits;
        match native::sniff(&mut stream, limits.header_read_timeout, MERCURE_PATH).await {
            Ok(native::Sniffed::Subscribe(req)) => {
                let version = req.version();
                let origin = req.headers().get(header::ORIGIN);
                let handled = AssertUnwindSafe(subscribe::handle(&self.state, &req)).catch_unwind().await;
                let resp = match handled {
                    Ok(result) => finish(&self.state, &Method::GET, req.uri().path(), peer, origin, result),
                    Err(_) => panicked(&self.state, origin),
                };
                drop(req);
                let stream = Arc::new(stream);
                let direct = self.state.hub.options().direct_writes;
                native::respond(&stream, version, resp, limits.shutdown_grace, direct).await;
            }
            // Boxed: hyper's connection state is large, and an idle subscriber's task must not
            // be sized for it.
            Ok(native::Sniffed::Other(prefix)) => {
                Box::pin(self.serve_hyper(native::Prefixed::new(prefix, stream), peer)).await
            }
            Err(e) => tracing::debug!(%peer, error = %e, "connection closed before a request"),
        }
    }

    /// A TLS connection: the handshake (bounded by `header_read_timeout`), then hyper (HTTP/2
    /// when ALPN chose it, HTTP/1.1 otherwise). Not the native HTTP/1 path: it reads a plain
    /// socket.
    async fn serve_tls(self, acceptor: tokio_rustls::TlsAcceptor, stream: TcpStream, peer: SocketAddr) {
        let _open = Gauge::up(&self.state.hub.metrics.connections);
        let timeout = self.state.settings.limits.header_read_timeout;
        match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => Box::pin(self.serve_hyper(tls, peer)).await,
            Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
        }
    }

    /// Everything but natively served subscriptions: hyper, HTTP/1.1 or HTTP/2 (h2c, or h2
    /// over TLS).
    async fn serve_hyper<I>(&self, io: I, peer: SocketAddr)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let abort = Arc::new(Notify::new());
        let state = self.state.clone();
        let svc_abort = abort.clone();
        let service = hyper::service::service_fn(move |req| {
            let state = state.clone();
            let abort = svc_abort.clone();
            async move {
                // Only the Origin is kept aside, for the CORS headers of a 500.
                let origin = req.headers().get(header::ORIGIN).cloned();
                let resp = AssertUnwindSafe(route(&state, req, &abort, peer))
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|_| panicked(&state, origin.as_ref()));
                Ok::<_, std::convert::Infallible>(resp)
            }
        });
        let grace = self.state.settings.limits.shutdown_grace;
        let conn = self.builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);
        let mut stop = self.stop.clone();
        tokio::select! {
            _ = conn.as_mut() => {}
            _ = abort.notified() => {
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(grace, conn.as_mut()).await;
            }
            _ = async { let _ = stop.wait_for(|s| *s).await; } => {
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(grace, conn.as_mut()).await;
            }
        }
    }
}

/// The answer to a request whose handler panicked: a 500 with a one-line reason. The panic
/// itself was logged once by the process's panic hook; whatever the handler had registered is
/// released by the guards it was held in (the SSE body, the connection gauge).
fn panicked(state: &State, origin: Option<&HeaderValue>) -> Resp {
    state.hub.metrics.panics.fetch_add(1, Ordering::Relaxed);
    let mut r = response::refused(&Refusal::new(500, "internal error"));
    cors::decorate(&state.settings.cors_origins, origin, r.headers_mut());
    r
}

/// Adds one to a gauge for as long as it lives.
struct Gauge<'a>(&'a AtomicU64);

impl<'a> Gauge<'a> {
    fn up(gauge: &'a AtomicU64) -> Self {
        gauge.fetch_add(1, Ordering::Relaxed);
        Gauge(gauge)
    }
}

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn route(state: &Arc<State>, req: Request<Incoming>, abort: &Arc<Notify>, peer: SocketAddr) -> Resp {
    fault::inject(req.headers(), "route");
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let is_mercure = is_under(&path, MERCURE_PATH);
    // Only the Origin is needed for CORS once the request is consumed: no header-map copy.
    let origin = if is_mercure { req.headers().get(header::ORIGIN).cloned() } else { None };
    let http1 = req.version() < Version::HTTP_2;
    // Health and metrics, served here and on the admin listener.
    let op = if method == Method::GET { admin::Op::of_path(&state.settings.name, &path) } else { None };
    let result: Result<Resp, Refusal> = match (&method, path.as_str()) {
        (m, _) if is_mercure && cors::is_preflight(m) => cors::preflight(&state.settings.cors_origins, req.headers()),
        (&Method::GET | &Method::HEAD, MERCURE_PATH) => {
            subscribe::handle(state, &req).await.inspect(|resp| {
                // HTTP/1 through hyper (HEAD, pipelined requests): when the subscription is
                // over, the connection is shut down even if the client stopped reading. (An
                // HTTP/2 stream simply ends with its body; the connection serves others.)
                if http1 && let Some(sub) = body_subscriber(resp) {
                    let (sub, abort) = (sub.clone(), abort.clone());
                    tokio::spawn(async move {
                        sub.queue.wait_closed().await;
                        abort.notify_one();
                    });
                }
            })
        }
        (&Method::POST, MERCURE_PATH) => publish::handle(state, req).await,
        (m, MERCURE_PATH) if m.as_str() == "QUERY" => query_subscribe(state, req).await,
        (_, MERCURE_PATH) => Err(Refusal::new(405, "method not allowed")),
        (&Method::GET, dialect::METADATA_PATH) => Ok(dialect::metadata(state, &req)),
        (&Method::GET, p) if is_under(p, crate::subscriptions::SUBSCRIPTIONS_PATH) => {
            subscriptions_api::handle(state, &req).await
        }
        (&Method::GET, p) if state.settings.demo && is_under(p, demo::DEMO_PATH) => demo::handle(state, &req),
        (&Method::GET, _) if op.is_some() => {
            op.map_or_else(|| Err(Refusal::new(404, "not found")), |op| op.answer(state))
        }
        // `/.well-known/mercure/debug/`: where the Go hub 1.0's `debugger` serves its page.
        (&Method::GET, "/" | ui::GO_DEBUG_PATH) if state.settings.ui => Ok(ui::page()),
        (&Method::GET, p) if state.settings.ui && p.starts_with("/ui/") => {
            ui::asset(p).ok_or_else(|| Refusal::new(404, "not found"))
        }
        _ => Err(Refusal::new(404, "not found")),
    };
    let mut resp = finish(state, &method, &path, peer, origin.as_ref(), result);
    if http1 && resp.status() == StatusCode::REQUEST_TIMEOUT {
        // The rest of a body that did not arrive in time may still come: do not read it as the
        // next request. (HTTP/2 ends just that stream; `Connection` is not allowed there.)
        resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// Turns a handler's result into the response: refusals are counted, logged (one line each)
/// and given their one-line body; responses under the hub endpoint get CORS headers.
fn finish(
    state: &State,
    method: &Method,
    path: &str,
    peer: SocketAddr,
    origin: Option<&HeaderValue>,
    result: Result<Resp, Refusal>,
) -> Resp {
    let mut resp = match result {
        Ok(r) => r,
        Err(refusal) => {
            state.hub.metrics.rejected_requests.fetch_add(1, Ordering::Relaxed);
            tracing::info!(%peer, %method, path, status = refusal.status.as_u16(), reason = %refusal.reason, "refused request");
            let mut r = response::refused(&refusal);
            if refusal.status == StatusCode::METHOD_NOT_ALLOWED {
                r.headers_mut().insert(header::ALLOW, HeaderValue::from_static(cors::METHODS));
            }
            r
        }
    };
    cors::decorate(&state.settings.cors_origins, origin, resp.headers_mut());
    resp
}

/// What the instruction-count gate (`benches/benches/gate.rs`) measures of this module's
/// private parts: only built with the `internals` feature.
#[cfg(feature = "internals")]
pub mod internals {
    /// Parses a publish form; returns the number of topics and data bytes read (the form type
    /// stays private).
    pub fn parse_form(body: &[u8]) -> usize {
        let f = super::publish::parse_form(body);
        f.topics.len() + f.data.map_or(0, |d| d.len())
    }

    /// The native stream writer: one chunked frame (header, data, CRLF) onto `stream`.
    pub async fn write_frame(stream: &tokio::net::TcpStream, data: &bytes::Bytes) -> std::io::Result<()> {
        super::native::write_frame(stream, data, true).await
    }
}

/// 1.0 `QUERY /.well-known/mercure`: a subscription whose parameters may also come in a form
/// body (read like a publish body: bounded in size and time), merged into the query string.
async fn query_subscribe(state: &Arc<State>, req: Request<Incoming>) -> Result<Resp, Refusal> {
    let (parts, body) = req.into_parts();
    let bytes = publish::read_body(state, body).await?;
    let head = Request::from_parts(parts, ());
    subscribe::handle_with_body(state, &head, Some(&bytes)).await
}

fn body_subscriber(resp: &Resp) -> Option<&Arc<crate::subscriber::Subscriber>> {
    match resp.body() {
        HubBody::Sse(s) => Some(s.subscriber()),
        HubBody::Full(_) => None,
    }
}

/// `path` is `prefix` or below it.
fn is_under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The first value of query parameter `name`, percent-decoded.
pub(crate) fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}
