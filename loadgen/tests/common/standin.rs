//! A stand-in Mercure hub for tests: just enough of the protocol (form POST publish,
//! SSE subscribe with exact, `{id}`-template and `*` selectors, private updates only to
//! subscribers that sent a token) plus fault injection, so the loadgen's loss, duplicate,
//! reorder, leak, rejected/unanswered-publish and latency measurements can be proven
//! against known, deliberately injected faults. It is not a hub: it checks no token (it
//! only looks whether one was sent), keeps no history, has no limits.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// Faults to inject, per subscriber connection (counted over that connection's events).
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Silently skip every n-th event.
    pub skip_every: Option<u64>,
    /// Send every n-th event twice.
    pub duplicate_every: Option<u64>,
    /// Hold every n-th event back and send it after the next one (a swap).
    pub swap_every: Option<u64>,
    /// End the stream after this many events (the hub "drops" the subscriber).
    pub close_after: Option<u64>,
    /// Added to the subscriber count `/metrics` reports as `mercure_subscribers`: a gauge
    /// that lies (0: the truth).
    pub gauge_offset: i64,
    /// Deliver private updates to subscribers that sent no token too (a leak).
    pub leak_private: bool,
    /// Answer every n-th publish (counted over all publishes) with 400, not taking it.
    pub reject_every: Option<u64>,
    /// Do not answer every n-th publish for `stall_publish_ms`, and do not take it.
    pub stall_publish_every: Option<u64>,
    /// See `stall_publish_every`.
    pub stall_publish_ms: u64,
    /// Answer each publish at once but deliver it this many ms later.
    pub delay_delivery_ms: u64,
    /// Deliver each publish at once but answer it this many ms later.
    pub delay_answer_ms: u64,
}

/// Counters of what the stand-in did.
#[derive(Debug, Default)]
pub struct Stats {
    /// Events skipped on purpose.
    pub skipped: AtomicU64,
    /// Extra copies sent.
    pub duplicated: AtomicU64,
    /// Swaps made.
    pub swapped: AtomicU64,
    /// Streams closed on purpose.
    pub closed: AtomicU64,
    /// Subscriptions that carried a Last-Event-ID header.
    pub resumed: AtomicU64,
    /// Publishes accepted.
    pub published: AtomicU64,
    /// Publishes answered with 400 on purpose.
    pub rejected: AtomicU64,
    /// Publishes left unanswered on purpose.
    pub stalled: AtomicU64,
    /// Private updates delivered to subscribers without a token (with `leak_private`).
    pub leaked: AtomicU64,
    /// Subscription streams open now (incremented on subscribe, decremented when hyper
    /// drops the stream's body).
    pub live: Arc<std::sync::atomic::AtomicI64>,
}

struct Sub {
    selectors: Vec<String>,
    /// The subscription came with an `Authorization` header or `mercureAuthorization` cookie.
    token: bool,
    tx: mpsc::UnboundedSender<Bytes>,
    sent: u64,
    held: Option<Bytes>,
}

struct State {
    faults: Faults,
    subs: Mutex<Vec<Sub>>,
    stats: Arc<Stats>,
    next_id: AtomicU64,
    /// Publishes received, for `reject_every` and `stall_publish_every`.
    posts: AtomicU64,
}

/// A running stand-in.
pub struct StandIn {
    /// Bound address.
    pub addr: SocketAddr,
    /// What it did.
    pub stats: Arc<Stats>,
}

impl StandIn {
    /// The hub URL to give the loadgen.
    pub fn url(&self) -> String {
        format!("http://{}/.well-known/mercure", self.addr)
    }
}

fn matches(selector: &str, topic: &str) -> bool {
    if selector == "*" || selector == topic {
        return true;
    }
    match selector.strip_suffix("{id}") {
        Some(prefix) => topic.starts_with(prefix) && !topic[prefix.len()..].contains('/'),
        None => false,
    }
}

/// Starts a stand-in on 127.0.0.1 with the given faults.
pub async fn start(faults: Faults) -> StandIn {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind stand-in");
    let addr = listener.local_addr().expect("local addr");
    let stats = Arc::new(Stats::default());
    let state = Arc::new(State {
        faults,
        subs: Mutex::new(Vec::new()),
        stats: stats.clone(),
        next_id: AtomicU64::new(1),
        posts: AtomicU64::new(0),
    });
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let state = state.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| handle(state.clone(), req));
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    StandIn { addr, stats }
}

type Resp = Response<Pin<Box<dyn Body<Data = Bytes, Error = Infallible> + Send>>>;

fn full(status: u16, body: &str) -> Resp {
    let mut r = Response::new(Box::pin(Full::new(Bytes::from(body.to_string())))
        as Pin<Box<dyn Body<Data = Bytes, Error = Infallible> + Send>>);
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or_default();
    r
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Resp, Infallible> {
    match *req.method() {
        hyper::Method::POST => {
            let body = req.into_body().collect().await.map(|b| b.to_bytes());
            let Ok(body) = body else {
                return Ok(full(400, "bad body"));
            };
            let (mut topics, mut data, mut private) = (Vec::new(), String::new(), false);
            for (k, v) in form_urlencoded::parse(&body) {
                match &*k {
                    "topic" => topics.push(v.into_owned()),
                    "data" => data = v.into_owned(),
                    "private" => private = true,
                    _ => {}
                }
            }
            let f = state.faults;
            let n = state.posts.fetch_add(1, Ordering::SeqCst) + 1;
            if f.reject_every.is_some_and(|k| n.is_multiple_of(k)) {
                state.stats.rejected.fetch_add(1, Ordering::SeqCst);
                return Ok(full(400, "rejected by the stand-in"));
            }
            if f.stall_publish_every.is_some_and(|k| n.is_multiple_of(k)) {
                state.stats.stalled.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(f.stall_publish_ms)).await;
                return Ok(full(503, "stalled by the stand-in"));
            }
            let id = format!("urn:test:{}", state.next_id.fetch_add(1, Ordering::SeqCst));
            let event = Bytes::from(format!("id: {id}\ndata: {data}\n\n"));
            state.stats.published.fetch_add(1, Ordering::SeqCst);
            if f.delay_delivery_ms > 0 {
                let st = state.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(std::time::Duration::from_millis(f.delay_delivery_ms)).await;
                    fan_out(&st, &topics, private, &event);
                });
            } else {
                fan_out(&state, &topics, private, &event);
            }
            if f.delay_answer_ms > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(f.delay_answer_ms)).await;
            }
            Ok(full(200, &id))
        }
        hyper::Method::GET if req.uri().path() == "/metrics" => {
            let live = state.stats.live.load(Ordering::SeqCst);
            let text = format!(
                "# TYPE mercure_subscribers gauge\nmercure_subscribers {}\n# TYPE mercure_connections gauge\nmercure_connections {}\nmercure_evictions_total 0\n",
                live + state.faults.gauge_offset,
                live + 1
            );
            Ok(full(200, &text))
        }
        hyper::Method::GET => {
            let selectors: Vec<String> = req
                .uri()
                .query()
                .map(|q| {
                    form_urlencoded::parse(q.as_bytes())
                        .filter(|(k, _)| k == "topic")
                        .map(|(_, v)| v.into_owned())
                        .collect()
                })
                .unwrap_or_default();
            if selectors.is_empty() {
                return Ok(full(400, "missing topic"));
            }
            if req.headers().contains_key("last-event-id") {
                state.stats.resumed.fetch_add(1, Ordering::SeqCst);
            }
            let h = req.headers();
            let token = h.contains_key(hyper::header::AUTHORIZATION)
                || h.get_all(hyper::header::COOKIE)
                    .iter()
                    .any(|c| c.to_str().is_ok_and(|c| c.contains("mercureAuthorization=")));
            let (tx, rx) = mpsc::unbounded_channel();
            state.subs.lock().expect("subs").push(Sub { selectors, token, tx, sent: 0, held: None });
            state.stats.live.fetch_add(1, Ordering::SeqCst);
            let live = state.stats.live.clone();
            let mut r = Response::new(
                Box::pin(SseBody { rx, live }) as Pin<Box<dyn Body<Data = Bytes, Error = Infallible> + Send>>
            );
            r.headers_mut()
                .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("text/event-stream"));
            Ok(r)
        }
        _ => Ok(full(405, "method")),
    }
}

/// Sends `event` (published on `topics`) to every matching subscriber, with the faults.
fn fan_out(state: &State, topics: &[String], private: bool, event: &Bytes) {
    let f = state.faults;
    let mut subs = state.subs.lock().expect("subs");
    subs.retain(|s| !s.tx.is_closed());
    for s in subs.iter_mut() {
        if !topics.iter().any(|t| s.selectors.iter().any(|sel| matches(sel, t))) {
            continue;
        }
        if private && !s.token {
            if !f.leak_private {
                continue;
            }
            state.stats.leaked.fetch_add(1, Ordering::SeqCst);
        }
        s.sent += 1;
        let n = s.sent;
        if f.close_after.is_some_and(|c| n > c) {
            continue;
        }
        if f.skip_every.is_some_and(|k| n.is_multiple_of(k)) {
            state.stats.skipped.fetch_add(1, Ordering::SeqCst);
        } else if f.swap_every.is_some_and(|k| n.is_multiple_of(k)) {
            s.held = Some(event.clone());
            state.stats.swapped.fetch_add(1, Ordering::SeqCst);
        } else {
            let _ = s.tx.send(event.clone());
            if let Some(h) = s.held.take() {
                let _ = s.tx.send(h);
            }
            if f.duplicate_every.is_some_and(|k| n.is_multiple_of(k)) {
                let _ = s.tx.send(event.clone());
                state.stats.duplicated.fetch_add(1, Ordering::SeqCst);
            }
        }
        if f.close_after == Some(n) {
            // Replace the sender with a closed one: the body ends.
            let (dead, _) = mpsc::unbounded_channel();
            s.tx = dead;
            state.stats.closed.fetch_add(1, Ordering::SeqCst);
        }
    }
}

struct SseBody {
    rx: mpsc::UnboundedReceiver<Bytes>,
    live: Arc<std::sync::atomic::AtomicI64>,
}

impl Drop for SseBody {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Body for SseBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}
