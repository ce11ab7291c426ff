//! Vanished peers (dunglas/mercure#645): every accepted connection has TCP keepalive and
//! `TCP_USER_TIMEOUT`, so a subscriber whose peer stops acknowledging is dropped by the
//! kernel, its subscription ends and its `active: false` event is published, within a bound.
//!
//! A vanished peer is simulated on loopback by a socket with a tiny `SO_RCVBUF` that never
//! reads: its window closes, the hub's send buffer fills and the hub's kernel sends
//! zero-window probes, which the peer acknowledges with a zero window forever. Linux (≥ 5.11)
//! applies `TCP_USER_TIMEOUT` to that state too (measured from the first probe), as `tcp(7)`
//! says ("buffered data may remain untransmitted (due to zero window size)"). A control run
//! with the option off shows the connection would otherwise stay.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::raw::{publish_big, stuck_subscriber};
use common::*;
use serde_json::{Value, json};

const ALL_SUBSCRIPTIONS: &str = "/.well-known/mercure/subscriptions{/topic}{/subscriber}";
const FLOOD: &str = "https://example.com/flood";
/// Bound on the hub noticing the dead peer with `tcp_user_timeout 2s` (probe backoff rounds
/// the 2 s up to the next probe; a debug build on a busy machine adds the rest).
const BOUND: Duration = Duration::from_secs(20);

/// With `dispatch_timeout 0s` the queue-stall eviction is off and the queue is far larger
/// than what is published, so nothing but the TCP layer can end the stuck subscription.
fn hub(user_timeout: &str) -> HubProcess {
    HubProcess::with_directives(&format!(
        "anonymous\nsubscriptions\ntransport local\ndispatch_timeout 0s\nheartbeat 200ms\n\
         subscriber_queue_bytes 67108864\nsubscriber_queue_events 100000\ntcp_user_timeout {user_timeout}"
    ))
}

async fn watch(hub: &HubProcess) -> SseStream {
    let token = hs256(KEY, &json!({"mercure": {"subscribe": [ALL_SUBSCRIPTIONS]}}));
    let auth = format!("Bearer {token}");
    SseStream::connect(hub.addr(), &subscribe_path(&[ALL_SUBSCRIPTIONS], &[]), &[("Authorization", &auth)]).await
}

/// The next subscription event about `topic`, as JSON; panics after `timeout`.
async fn next_about(watcher: &mut SseStream, topic: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let ev = watcher.next_event_within(deadline.saturating_duration_since(Instant::now())).await;
        let doc: Value = serde_json::from_str(&ev.data).expect("subscription events are JSON");
        if doc["topic"] == topic {
            return doc;
        }
    }
}

/// One socket of `/proc/net/tcp`: its state and the kind of its pending timer (0 none,
/// 1 retransmit, 2 keepalive, 4 zero-window probe) with the time left, in clock ticks.
struct ProcTcp {
    state: u8,
    timer: u8,
    when_ticks: u64,
}

/// The hub's end of the connection from `client` (an IPv4 loopback socket) to `hub`.
fn hub_side(hub: SocketAddr, client: SocketAddr) -> Option<ProcTcp> {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    let port = |field: &str| field.rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if port(f[1])? != hub.port() || port(f[2])? != client.port() {
            return None;
        }
        let (timer, when) = f[5].split_once(':')?;
        Some(ProcTcp {
            state: u8::from_str_radix(f[3], 16).ok()?,
            timer: u8::from_str_radix(timer, 16).ok()?,
            when_ticks: u64::from_str_radix(when, 16).ok()?,
        })
    })
}

/// Publishes big updates to the stuck subscriber until the hub's end of its connection is
/// probing a zero window (its send buffer is full and nothing more can be written).
async fn fill_until_zero_window(hub: &HubProcess, client: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        publish_big(hub.addr(), FLOOD, 64 * 1024, 4).await;
        if hub_side(hub.addr(), client).is_some_and(|s| s.timer == 4) {
            return;
        }
        assert!(Instant::now() < deadline, "the hub's socket never reached a zero window");
    }
}

#[tokio::test]
async fn a_peer_stuck_on_a_zero_window_is_dropped_by_tcp_user_timeout() {
    let hub = hub("2s");
    let mut watcher = watch(&hub).await;
    let stuck = stuck_subscriber(hub.addr(), &[FLOOD]).await;
    let client = stuck.local_addr().expect("local addr");
    let created = next_about(&mut watcher, FLOOD, Duration::from_secs(10)).await;
    assert_eq!(created["active"], true);
    assert_eq!(hub.metric("mercure_subscribers").await, 2, "the watcher and the stuck subscriber");

    fill_until_zero_window(&hub, client).await;
    let start = Instant::now();
    let ended = next_about(&mut watcher, FLOOD, BOUND).await;
    let took = start.elapsed();
    assert_eq!((ended["active"].clone(), ended["subscriber"].clone()), (json!(false), created["subscriber"].clone()));
    assert_eq!(hub.wait_metric("mercure_subscribers", 1, Duration::from_secs(5)).await, 1);
    assert_eq!(hub.metric("mercure_evictions_total").await, 0, "ended by TCP, not by the queue");
    // The kernel aborted the connection: the hub's end of it is gone.
    assert!(hub_side(hub.addr(), client).is_none_or(|s| s.state != 1), "still established");
    // No lower bound: the first probe may precede the moment this test saw it by a publish
    // round. The control test below shows what ends the connection.
    eprintln!("subscription ended {took:?} after the zero window was seen (tcp_user_timeout 2s)");
    drop(stuck);
}

/// The control: the same scenario with `TCP_USER_TIMEOUT` off stays subscribed (zero-window
/// probes that are acknowledged never time out), so the test above measures the option.
#[tokio::test]
async fn without_tcp_user_timeout_the_zero_window_peer_stays() {
    let hub = hub("0s");
    let mut watcher = watch(&hub).await;
    let stuck = stuck_subscriber(hub.addr(), &[FLOOD]).await;
    let client = stuck.local_addr().expect("local addr");
    assert_eq!(next_about(&mut watcher, FLOOD, Duration::from_secs(10)).await["active"], true);
    fill_until_zero_window(&hub, client).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(hub.metric("mercure_subscribers").await, 2);
    assert!(hub_side(hub.addr(), client).is_some_and(|s| s.state == 1 && s.timer == 4), "still probing");
    drop(stuck);
}

/// Keepalive is on for every accepted connection, with `tcp_keepalive` as the idle time
/// (a keepalive timer pending on the hub's end of an idle stream), and off with `0s`.
#[tokio::test]
async fn idle_connections_have_a_keepalive_timer() {
    for (setting, want) in [("7s", Some(7u64)), ("0s", None)] {
        let hub = HubProcess::with_directives(&format!("anonymous\nheartbeat 0s\ntcp_keepalive {setting}"));
        let mut sub = SseStream::connect(hub.addr(), &subscribe_path(&[FLOOD], &[]), &[]).await;
        sub.next_comment(Duration::from_secs(2)).await; // the opening: the stream is now idle
        let client = sub.local_addr();
        let side = hub_side(hub.addr(), client).expect("the hub's end in /proc/net/tcp");
        assert_eq!(side.state, 1, "established");
        match want {
            // Clock ticks are USER_HZ (100 on Linux): between 5 s and 7 s left.
            Some(secs) => {
                assert_eq!(side.timer, 2, "tcp_keepalive {setting}: keepalive timer pending");
                assert!((500..=secs * 100).contains(&side.when_ticks), "{} ticks left", side.when_ticks);
            }
            None => assert_eq!(side.timer, 0, "tcp_keepalive 0s: no timer"),
        }
    }
}
