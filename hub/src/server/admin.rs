//! Health probes and metrics: the paths themselves (served on the public listener too) and
//! the admin listener that serves only them (`admin`, default `127.0.0.1:2019`, where the Go
//! image's health check and the Go docs' probes look).
//!
//! | path | answer |
//! |---|---|
//! | `/healthz` | 200 while the process answers HTTP (legacy; nothing else is checked) |
//! | `/mercure/health/live` | 200, or 503 when the history writer has stopped for good (a restart is the cure) |
//! | `/mercure/health/ready` | 200, or 503 with the reason while the history store fails its writes or has stopped, or a cluster node cannot reach Redis |
//! | `/mercure/health/{name}/live`, `…/ready` | the same, for the hub's `name` (Go hub 1.0) |
//! | `/metrics` | Prometheus text (see `metrics`) |
//!
//! The admin listener has its own small connection ceiling (`admin_max_connections`, default
//! 64), apart from the public one, so probes and scrapes are answered even when the public
//! listener is at `max_connections`; a connection past it is closed at once. It speaks HTTP/1.1
//! only, and stops accepting at shutdown like the public listeners.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};

use super::State;
use super::response::{self, Refusal, Resp};
use crate::history::StoreHealth;

/// One of the operational endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Healthz,
    Live,
    Ready,
    Metrics,
}

impl Op {
    /// The endpoint at `path`, if it is one (`name`: the hub's `name` directive).
    pub fn of_path(name: &str, path: &str) -> Option<Op> {
        match path {
            "/healthz" => return Some(Op::Healthz),
            "/metrics" => return Some(Op::Metrics),
            _ => {}
        }
        let rest = path.strip_prefix("/mercure/health/")?;
        let rest = match rest.split_once('/') {
            Some((n, rest)) if n == name => rest,
            Some(_) => return None,
            None => rest,
        };
        match rest {
            "live" => Some(Op::Live),
            "ready" => Some(Op::Ready),
            _ => None,
        }
    }

    pub fn answer(self, state: &State) -> Result<Resp, Refusal> {
        match self {
            Op::Healthz => Ok(response::text(StatusCode::OK, "ok\n")),
            Op::Live => match state.hub.history_health() {
                StoreHealth::Stopped(e) => Err(Refusal::new(503, format!("not live: {e}"))),
                StoreHealth::Ok | StoreHealth::Failing(_) => Ok(response::text(StatusCode::OK, "ok\n")),
            },
            Op::Ready => ready(state),
            Op::Metrics => {
                let mut text = state.hub.render_metrics();
                if let Some(c) = &state.cluster {
                    text.push_str(&c.render_metrics());
                }
                let sets: Vec<_> =
                    [&state.publisher, &state.subscriber].into_iter().filter_map(|v| v.keys().jwks_set()).collect();
                crate::auth::jwks::render_metrics(&sets, &mut text);
                Ok(response::text(StatusCode::OK, text))
            }
        }
    }
}

/// Readiness: 200 when this node can serve every request it accepts; 503 with the reason
/// while the history store cannot take writes, or a cluster node cannot reach Redis.
fn ready(state: &State) -> Result<Resp, Refusal> {
    match state.hub.history_health() {
        StoreHealth::Ok => {}
        StoreHealth::Failing(e) | StoreHealth::Stopped(e) => return Err(Refusal::new(503, format!("not ready: {e}"))),
    }
    match state.cluster.as_ref().map(|c| c.ready()) {
        None | Some(Ok(())) => Ok(response::text(StatusCode::OK, "ready\n")),
        Some(Err(e)) => Err(Refusal::new(503, format!("not ready: {e}"))),
    }
}

/// The admin listener's accept loop and its connections.
pub struct Admin {
    state: Arc<State>,
    permits: Arc<Semaphore>,
    stop: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
}

impl Admin {
    pub fn new(state: Arc<State>, stop: watch::Receiver<bool>, alive: mpsc::Sender<()>) -> Self {
        let ceiling = state.settings.limits.admin_max_connections.min(Semaphore::MAX_PERMITS);
        Admin { state, permits: Arc::new(Semaphore::new(ceiling)), stop, alive }
    }

    /// Accepts until aborted (shutdown).
    pub async fn run(self, listener: TcpListener) {
        if let Ok(addr) = listener.local_addr() {
            // Not "listening addr=": that line names the public listener.
            tracing::info!(admin_addr = %addr, "admin endpoint (health, metrics) ready");
        }
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(error = %e, "admin accept failed; backing off");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = self.permits.clone().try_acquire_owned() else {
                tracing::debug!(%peer, "admin connection refused: ceiling reached");
                continue;
            };
            let (state, stop, alive) = (self.state.clone(), self.stop.clone(), self.alive.clone());
            tokio::spawn(async move {
                serve(state, stream, peer, stop).await;
                drop((permit, alive));
            });
        }
    }
}

async fn serve(state: Arc<State>, stream: TcpStream, peer: SocketAddr, mut stop: watch::Receiver<bool>) {
    let svc_state = state.clone();
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let state = svc_state.clone();
        async move { Ok::<_, std::convert::Infallible>(route(&state, &req)) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(state.settings.limits.header_read_timeout)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => if let Err(e) = r { tracing::debug!(%peer, error = %e, "admin connection ended") },
        _ = async { let _ = stop.wait_for(|s| *s).await; } => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(state.settings.limits.shutdown_grace, conn.as_mut()).await;
        }
    }
}

fn route(state: &State, req: &Request<Incoming>) -> Resp {
    let op = Op::of_path(&state.settings.name, req.uri().path());
    let result = match (req.method(), op) {
        (&Method::GET | &Method::HEAD, Some(op)) => op.answer(state),
        (_, Some(_)) => Err(Refusal::new(405, "method not allowed")),
        (_, None) => Err(Refusal::new(404, "not found")),
    };
    result.unwrap_or_else(|r| response::refused(&r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(Op::of_path("default", "/healthz"), Some(Op::Healthz));
        assert_eq!(Op::of_path("default", "/metrics"), Some(Op::Metrics));
        assert_eq!(Op::of_path("default", "/mercure/health/live"), Some(Op::Live));
        assert_eq!(Op::of_path("default", "/mercure/health/ready"), Some(Op::Ready));
        assert_eq!(Op::of_path("main", "/mercure/health/main/ready"), Some(Op::Ready));
        assert_eq!(Op::of_path("main", "/mercure/health/other/ready"), None);
        assert_eq!(Op::of_path("main", "/mercure/health/main/x"), None);
        assert_eq!(Op::of_path("main", "/mercure/health/"), None);
    }
}
