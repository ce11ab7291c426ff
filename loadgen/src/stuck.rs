//! Stuck consumers (the soak's slow-consumer load): subscriptions that never read.
//!
//! A stuck consumer opens a subscription to `*` over a plain socket with a tiny receive
//! buffer, reads the response head, then stops reading for `hold_s`: the hub's socket
//! buffer and then its queue for it fill up, and the hub must evict it
//! (`mercure_evictions_total`) instead of waiting on it or holding memory for it. After
//! the hold it reads again, for at most `drain_s`, to learn whether the hub ended the
//! stream, and how: an end of stream (the hub closed it: an eviction, which
//! `mercure_evictions_total` must count) or a reset (the hub's kernel gave up on the
//! connection, e.g. `TCP_USER_TIMEOUT` behind a zero window, and answers our window update
//! with a reset), or is still streaming (not evicted). Then it closes and starts over
//! after a short pause, so stuck consumers churn for the whole run.
//!
//! They are outside the delivery accounting: they owe nothing and are owed nothing, so
//! an eviction is never counted as loss. Their state feeds the gauge check instead: a
//! stuck consumer counts as open (`stuck_open`) from its connection attempt until we
//! have closed it, an upper bound of the hub's view of it (the hub may have evicted it
//! earlier).
//!
//! With several hub nodes stuck consumer `k` talks to node `k mod N`, like subscribers.

use crate::nodes::NodeAddr;
use crate::shard::Shard;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{Instant, sleep, sleep_until, timeout};

/// The stuck consumers of a run (all workers together).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StuckConfig {
    /// How many are open at once.
    pub count: u64,
    /// Seconds without reading before checking whether the hub evicted it.
    pub hold_s: f64,
    /// Seconds of reading after the hold to see the end of the stream.
    pub drain_s: f64,
    /// Their first connections are spread over this many seconds.
    pub spread_s: f64,
    /// Pause between two stuck connections of one consumer, ms.
    pub pause_ms: u64,
    /// `SO_RCVBUF` asked for, bytes (the kernel doubles it and applies its minimum).
    pub rcvbuf: u32,
    /// Token, if the hub requires one.
    pub jwt: Option<String>,
}

/// Runs stuck consumer `k` from `start_at` until the run stops.
pub async fn run(shard: Rc<Shard>, k: u64, start_at: Instant, cfg: StuckConfig) {
    let mut stop = shard.stop.clone();
    let Some((node, addr)) = shard.node(k) else { return };
    // Counted in total and on its node: the gauge check compares each hub with its own.
    let open_delta = |delta: i64| {
        let apply = |v: &mut u64| *v = v.saturating_add_signed(delta);
        shard.stuck(|p| apply(&mut p.stuck_open));
        shard.on_node(node, |c| apply(&mut c.stuck_open));
    };
    tokio::select! {
        _ = sleep_until(start_at) => {}
        _ = stop.wait_for(|s| *s) => return,
    }
    let mut failures = 0u32;
    while !*stop.borrow() {
        open_delta(1);
        let opened = tokio::select! {
            r = open(&shard, addr, &cfg) => r,
            _ = stop.wait_for(|s| *s) => None,
        };
        let Some(stream) = opened else {
            open_delta(-1);
            shard.stuck(|p| {
                if !*shard.stop.borrow() {
                    p.stuck_errors += 1;
                }
            });
            failures += 1;
            let wait = Duration::from_millis(250u64.saturating_mul(1 << failures.min(5)));
            tokio::select! {
                _ = sleep(wait) => {}
                _ = stop.wait_for(|s| *s) => {}
            }
            continue;
        };
        failures = 0;
        shard.stuck(|p| p.stuck_cycles += 1);
        let held = tokio::select! {
            _ = sleep(Duration::from_secs_f64(cfg.hold_s.max(0.0))) => true,
            _ = stop.wait_for(|s| *s) => false,
        };
        let outcome = if held {
            tokio::select! {
                e = drain(stream, Duration::from_secs_f64(cfg.drain_s.max(0.1))) => Some(e),
                _ = stop.wait_for(|s| *s) => None,
            }
        } else {
            None
        };
        open_delta(-1);
        shard.stuck(|p| match outcome {
            Some(Drained::Eof) => p.stuck_evicted += 1,
            Some(Drained::Reset) => {
                p.stuck_evicted += 1;
                p.stuck_reset += 1;
            }
            Some(Drained::Streaming) => p.stuck_not_evicted += 1,
            None => {}
        });
        tokio::select! {
            _ = sleep(Duration::from_millis(cfg.pause_ms)) => {}
            _ = stop.wait_for(|s| *s) => {}
        }
    }
}

/// Connects with a tiny receive buffer, subscribes to `*`, reads the response head and
/// checks it is a 200. `None` on any failure.
async fn open(shard: &Shard, addr: &NodeAddr, cfg: &StuckConfig) -> Option<TcpStream> {
    let limit = Duration::from_millis(shard.cfg.connect_timeout_ms.max(1));
    let fut = async {
        let target: SocketAddr = addr.target;
        let sock = if target.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }.ok()?;
        // Before connect, so the window it advertises is small from the start.
        sock.set_recv_buffer_size(cfg.rcvbuf).ok()?;
        if let Some(src) = shard.cfg.source_addr {
            sock.bind(SocketAddr::new(src, 0)).ok()?;
        }
        let mut stream = sock.connect(target).await.ok()?;
        let sep = if addr.path.contains('?') { '&' } else { '?' };
        let mut req = format!(
            "GET {}{sep}topic=%2A HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n",
            addr.path, addr.host_header
        );
        if let Some(jwt) = &cfg.jwt {
            req.push_str(&format!("Authorization: Bearer {jwt}\r\n"));
        }
        req.push_str("\r\n");
        stream.write_all(req.as_bytes()).await.ok()?;
        let mut head = Vec::with_capacity(1024);
        let mut buf = [0u8; 512];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await.ok()?;
            if n == 0 || head.len() > 16 * 1024 {
                return None;
            }
            head.extend_from_slice(&buf[..n]);
        }
        head.starts_with(b"HTTP/1.1 200").then_some(stream)
    };
    timeout(limit, fut).await.ok().flatten()
}

/// How a stuck consumer's stream turned out after its hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drained {
    /// End of stream: the hub closed it.
    Eof,
    /// A reset or another error: the hub's side of the connection is gone.
    Reset,
    /// Still streaming at the end of the drain: not evicted.
    Streaming,
}

/// Reads until the end of the stream or `limit`.
async fn drain(mut stream: TcpStream, limit: Duration) -> Drained {
    let deadline = Instant::now() + limit;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match timeout(deadline.saturating_duration_since(Instant::now()), stream.read(&mut buf)).await {
            Err(_) => return Drained::Streaming,
            Ok(Ok(0)) => return Drained::Eof,
            Ok(Err(_)) => return Drained::Reset,
            Ok(Ok(_)) => {}
        }
    }
}
