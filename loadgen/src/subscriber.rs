//! One simulated subscriber: a long-lived SSE connection, with lifetime and reconnection.
//!
//! A subscriber connects (a `TcpStream` bound to the worker's source address, with the lean
//! client of [`crate::stream_client`]), checks for `200 text/event-stream`, then reads events
//! until one of:
//! the run stops, its lifetime ends, or the hub ends the stream. What happens next is
//! configured: at lifetime end `close` (the Gatling model: the subscriber leaves),
//! `reconnect` (a fresh connection: a new session) or `resume` (reconnect with
//! `Last-Event-ID`: same session, replay owed); when the hub drops it, `resume`,
//! `reconnect` or `stop`.
//!
//! Per event it decodes the payload stamp, records latency in the worker's histograms,
//! from the publish's scheduled time and from its send time (only for updates published
//! while this connection was up: replays are counted, not timed; both ends read the
//! host's monotonic clock, [`crate::clock`]), and inserts the sequence number in the session's
//! [`SeqSet`](crate::seqset::SeqSet). All shared state lives in the single-threaded
//! worker's [`Shard`], borrowed briefly and never across an `.await`.
//!
//! With several hub nodes, subscriber `index` always connects to node `index mod N`
//! ([`crate::nodes::subscriber_node`]); its counters go to that node as well.

use crate::accounting::SessionRecord;
use crate::clock::mono_ns;
use crate::nodes::NodeAddr;
use crate::payload;
use crate::shard::{AuthVia, DropAction, EndAction, Shard};
use crate::sse::Parser;
use crate::stream_client::{self, Body, Read};
use crate::topics::Selector;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{Instant, sleep, sleep_until, timeout};

/// What a subscriber hands back when it is done.
#[derive(Debug)]
pub struct SubscriberResult {
    /// Global subscriber index.
    pub index: u64,
    /// Its sessions, oldest first.
    pub sessions: Vec<SessionRecord>,
}

/// Why a connection ended.
enum Ended {
    /// The run is stopping.
    Stop,
    /// The subscriber's lifetime is over.
    Lifetime,
    /// The hub ended the stream (or it broke).
    Dropped,
}

/// Runs one subscriber from its start time to the end of the run.
///
/// Session rules (what the accounting relies on): a session opens at the first
/// connection's headers and is ended only by the subscriber's own choices — the run
/// stopping, or its lifetime ending without `resume` — at that moment minus the grace.
/// A hub drop never ends a session: the subscriber meant to stay, so what it misses
/// until it is back (or until its intended end, with `--on-drop stop`, or after its
/// reconnections failed) is the hub's loss, unless a `Last-Event-ID` replay brings it.
pub async fn run(
    shard: Rc<Shard>,
    index: u64,
    selector: Selector,
    start_at: Instant,
    lifetime: Option<Duration>,
    initial: bool,
) -> SubscriberResult {
    let mut stop = shard.stop.clone();
    let mut sessions: Vec<SessionRecord> = Vec::new();
    let mut result = SubscriberResult { index, sessions: Vec::new() };
    tokio::select! {
        _ = sleep_until(start_at) => {}
        _ = stop.wait_for(|s| *s) => return result,
    }
    let Some((node, addr)) = shard.node(index) else {
        // No node at all: the coordinator never sends an empty list.
        shard.gave_up(initial);
        return result;
    };
    let grace = shard.cfg.settle_ns;
    let mut last_id: Option<String> = None;
    // Send Last-Event-ID on the next connection.
    let mut resume = false;
    // The next connection opens a new session.
    let mut fresh = true;
    let mut deadline: Option<Instant> = None;
    let mut failures = 0u32;
    // Short-lived tokens (soak): a fresh one per connection, so the hub ends the
    // stream at its expiry and the reconnection (with Last-Event-ID) must lose nothing.
    let anonymous = shard.cfg.anonymous(index);
    let expiring = shard.cfg.expiring.as_ref().filter(|e| !anonymous && e.applies(index));
    let mut conn_no = 0u64;
    loop {
        if *stop.borrow() {
            end_session(&mut sessions, fresh, mono_ns(), grace);
            break;
        }
        let minted = expiring.and_then(|e| e.mint(index, conn_no).ok());
        conn_no += 1;
        let jwt =
            minted.as_ref().map(|m| m.jwt.as_str()).or(shard.cfg.subscriber_jwt.as_deref()).filter(|_| !anonymous);
        let connected = tokio::select! {
            c = connect(&shard, node, addr, &selector, jwt, if resume { last_id.as_deref() } else { None }) => c,
            _ = stop.wait_for(|s| *s) => {
                // The hub had not answered this subscription when the run stopped.
                shard.pending_at_stop();
                continue;
            }
        };
        let mut body = match connected {
            Ok(x) => {
                failures = 0;
                x
            }
            Err(kind) => {
                shard.connect_failed(node, &kind);
                failures += 1;
                if failures > shard.cfg.connect_retries {
                    // Gave up. An open session stays owed until its intended end.
                    if !fresh {
                        let end = intended_end(&mut stop, deadline).await;
                        end_session(&mut sessions, fresh, end, grace);
                    }
                    break;
                }
                let wait = backoff(shard.cfg.reconnect_delay_ms, failures);
                tokio::select! {
                    _ = sleep(wait) => {}
                    _ = stop.wait_for(|s| *s) => {}
                }
                continue;
            }
        };
        let connected_at = mono_ns();
        if sessions.is_empty() {
            shard.first_connect(initial);
        }
        if fresh {
            sessions.push(SessionRecord {
                start: connected_at,
                end: connected_at,
                closed: connected_at,
                received: Default::default(),
            });
            fresh = false;
        }
        if deadline.is_none() {
            deadline = lifetime.map(|l| Instant::now() + l);
        }
        shard.connected(node);
        let mut parser = Parser::new();
        let mut n_events = 0u64;
        let mut stalled = false;
        let ended = {
            // Both futures are created once per connection: re-arming a timer per
            // event would cost a timer-wheel insertion per delivery.
            let stop_wait = stop.wait_for(|s| *s);
            tokio::pin!(stop_wait);
            let life = sleep_until(deadline.unwrap_or_else(far_future));
            tokio::pin!(life);
            loop {
                let Some(session) = sessions.last_mut() else {
                    break Ended::Dropped;
                };
                let mut malformed = false;
                let read = tokio::select! {
                    biased;
                    _ = &mut stop_wait => break Ended::Stop,
                    _ = &mut life => break Ended::Lifetime,
                    r = body.read(|data| {
                        let fed = parser.feed(data, |ev, _id| {
                            n_events += 1;
                            on_event(&shard, node, session, connected_at, ev)
                        });
                        malformed |= fed.is_err();
                    }) => r,
                };
                if malformed || !matches!(read, Ok(Read::More)) {
                    break Ended::Dropped;
                }
                if !stalled && shard.cfg.stall_after.is_some_and(|k| n_events >= k) {
                    // Slow-consumer model: stop reading; the hub's buffers fill up.
                    stalled = true;
                    tokio::select! {
                        _ = sleep(Duration::from_millis(shard.cfg.stall_ms)) => {}
                        _ = &mut stop_wait => break Ended::Stop,
                    }
                }
            }
        };
        if let Some(id) = parser.last_event_id() {
            last_id = Some(id.to_owned());
        }
        drop(body);
        let closed_at = mono_ns();
        shard.disconnected(node);
        match ended {
            Ended::Stop => {
                end_session(&mut sessions, false, closed_at, grace);
                break;
            }
            Ended::Lifetime => {
                // The next connection's lifetime starts when it is established (not
                // now: the reconnect delay would eat a short lifetime whole).
                deadline = None;
                match shard.cfg.lifetime_end {
                    EndAction::Close => {
                        end_session(&mut sessions, false, closed_at, grace);
                        break;
                    }
                    EndAction::Resume if last_id.is_some() => {
                        // Same session: the hub owes the replay of the gap.
                        resume = true;
                    }
                    EndAction::Resume | EndAction::Reconnect => {
                        end_session(&mut sessions, false, closed_at, grace);
                        resume = false;
                        fresh = true;
                        last_id = None;
                    }
                }
            }
            Ended::Dropped => {
                shard.dropped(node);
                if minted
                    .as_ref()
                    .is_some_and(|m| crate::expiring::ended_by_expiry(crate::clock::unix_now_ns(), m.exp_ns))
                {
                    shard.token_expired();
                }
                match shard.cfg.on_drop {
                    DropAction::Stop => {
                        let end = intended_end(&mut stop, deadline).await;
                        end_session(&mut sessions, false, end, grace);
                        break;
                    }
                    DropAction::Reconnect => resume = false,
                    DropAction::Resume => resume = last_id.is_some(),
                }
            }
        }
        shard.reconnecting();
        let wait = Duration::from_millis(parser.retry_ms.unwrap_or(shard.cfg.reconnect_delay_ms));
        tokio::select! {
            _ = sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => {}
        }
    }
    if sessions.is_empty() {
        shard.gave_up(initial);
    }
    result.sessions = sessions;
    result
}

/// Ends the current session (unless none is open) at `closed`: owed until `closed - grace`.
fn end_session(sessions: &mut [SessionRecord], fresh: bool, closed: u64, grace: u64) {
    if fresh {
        return;
    }
    if let Some(s) = sessions.last_mut() {
        s.end = closed.saturating_sub(grace).max(s.start);
        s.closed = closed.max(s.start);
    }
}

/// Waits until the subscriber would have closed by itself (run stop or lifetime end);
/// returns that time.
async fn intended_end(stop: &mut tokio::sync::watch::Receiver<bool>, deadline: Option<Instant>) -> u64 {
    tokio::select! {
        _ = stop.wait_for(|s| *s) => {}
        _ = sleep_until(deadline.unwrap_or_else(far_future)) => {}
    }
    mono_ns()
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

fn backoff(base_ms: u64, failures: u32) -> Duration {
    Duration::from_millis(base_ms.saturating_mul(1 << failures.min(6)).min(10_000))
}

fn on_event(shard: &Shard, node: usize, session: &mut SessionRecord, connected_at: u64, data: &[u8]) {
    let now = mono_ns();
    let mut live = shard.live.borrow_mut();
    live.p.events += 1;
    if let Some(c) = live.p.nodes.get_mut(node) {
        c.events += 1;
    }
    let Some(stamp) = payload::decode(data) else {
        live.p.foreign += 1;
        return;
    };
    if stamp.run != shard.cfg.run_id.as_bytes() {
        live.p.foreign += 1;
        return;
    }
    if stamp.sent_ns >= connected_at {
        crate::histo::record(&mut live.hist, now.saturating_sub(stamp.due_ns()) / 1000);
        crate::histo::record(&mut live.hist_send, now.saturating_sub(stamp.sent_ns) / 1000);
    } else {
        live.p.replayed += 1;
    }
    let set = session.received.entry(stamp.topic).or_default();
    set.insert_with(stamp.seq, &mut || {
        let keep = live.late_budget > 0;
        live.late_budget = live.late_budget.saturating_sub(1);
        keep
    });
}

/// Opens the SSE stream: TCP connect (from the worker's source address), GET with
/// selectors and credentials, status and content-type check.
async fn connect(
    shard: &Shard,
    node: usize,
    addr: &NodeAddr,
    selector: &Selector,
    jwt: Option<&str>,
    last_event_id: Option<&str>,
) -> Result<Body, String> {
    let cfg = &shard.cfg;
    shard.attempt(node);
    let limit = Duration::from_millis(cfg.connect_timeout_ms);
    let fut = async {
        let mut uri = addr.path.clone();
        for (i, q) in selector.query.iter().enumerate() {
            uri.push(if i == 0 && !addr.path.contains('?') { '?' } else { '&' });
            uri.push_str(selector.param);
            uri.push('=');
            uri.extend(form_urlencoded::byte_serialize(q.as_bytes()));
        }
        let auth = jwt.map(|jwt| match cfg.auth_via {
            AuthVia::Header => ("Authorization", format!("Bearer {jwt}")),
            AuthVia::Cookie => ("Cookie", format!("mercureAuthorization={jwt}")),
        });
        let mut headers: Vec<(&str, &str)> = Vec::with_capacity(2);
        if let Some((name, value)) = &auth {
            headers.push((name, value));
        }
        if let Some(id) = last_event_id {
            headers.push(("Last-Event-ID", id));
        }
        let head =
            stream_client::request_head(&uri, &addr.host_header, &headers).ok_or_else(|| "request".to_string())?;
        let stream = tcp_connect(addr.target, cfg.source_addr).await?;
        stream_client::open(stream, &head).await
    };
    match timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err("timeout".to_string()),
    }
}

async fn tcp_connect(target: SocketAddr, source: Option<std::net::IpAddr>) -> Result<TcpStream, String> {
    let sock =
        if target.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }.map_err(|e| io_kind("socket", &e))?;
    if let Some(src) = source {
        sock.bind(SocketAddr::new(src, 0)).map_err(|e| io_kind("bind", &e))?;
    }
    let stream = sock.connect(target).await.map_err(|e| io_kind("connect", &e))?;
    stream.set_nodelay(true).ok();
    Ok(stream)
}

fn io_kind(what: &str, e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(24) => format!("{what}: too many open files"),
        Some(99) => format!("{what}: no free source port"),
        Some(111) => format!("{what}: refused"),
        _ => format!("{what}: {:?}", e.kind()),
    }
}
