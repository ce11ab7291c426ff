//! Listeners: `:PORT` serves IPv4 and IPv6 on one port, `SERVER_NAME` may list several
//! addresses, and every listener shares one connection ceiling.
//!
//! IPv6 loopback (`::1`) is present on the machines these tests run on (`ip -6 addr show lo`);
//! a machine without it fails the IPv6 assertions rather than skipping them.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;

const TOPIC: &str = "https://example.com/books/1";

/// The addresses of the `listening addr=…` lines of the hub's logs, in order, once the
/// `n`th is logged (the harness returns after the first).
fn listening(hub: &HubProcess, n: usize) -> Vec<SocketAddr> {
    let nth = "listening addr=";
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let addrs: Vec<SocketAddr> = hub
            .logs()
            .lines()
            .filter_map(|l| l.split(nth).nth(1))
            .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
            .collect();
        if addrs.len() >= n || std::time::Instant::now() > deadline {
            return addrs;
        }
        hub.wait_for_log("\n", Duration::from_millis(50));
    }
}

#[tokio::test]
async fn any_interface_port_serves_ipv4_and_ipv6_on_one_port() {
    let hub = HubProcess::start(&[
        ("SERVER_NAME", ":0"),
        ("MERCURE_PUBLISHER_JWT_KEY", KEY),
        ("MERCURE_EXTRA_DIRECTIVES", "anonymous\nadmin off"),
    ]);
    let addrs = listening(&hub, 1);
    assert_eq!(addrs.len(), 1, "one dual-stack socket; logs:\n{}", hub.logs());
    assert!(addrs[0].ip().is_unspecified() && addrs[0].is_ipv6(), "bound to [::]: {addrs:?}");
    let port = addrs[0].port();
    let v4 = SocketAddr::from(([127, 0, 0, 1], port));
    let v6: SocketAddr = format!("[::1]:{port}").parse().unwrap();

    assert_eq!(request(v4, "GET", "/healthz", &[], None).await.status, 200);
    assert_eq!(request(v6, "GET", "/healthz", &[], None).await.status, 200);
    // A subscriber over IPv6 receives what a publisher sent over IPv4.
    let mut sub = SseStream::connect(v6, &subscribe_path(&[TOPIC], &[]), &[]).await;
    let id = publish_ok(v4, &publisher_token(&["*"]), &[("topic", TOPIC), ("data", "over both")]).await;
    assert_event(&sub.next_event().await, &id, "over both");
}

#[tokio::test]
async fn several_addresses_share_one_connection_ceiling() {
    let hub = HubProcess::start(&[
        ("SERVER_NAME", "127.0.0.1:0, [::1]:0"),
        ("MERCURE_PUBLISHER_JWT_KEY", KEY),
        ("MERCURE_EXTRA_DIRECTIVES", "anonymous\nadmin off\nmax_connections 1"),
    ]);
    let addrs = listening(&hub, 2);
    assert_eq!(addrs.len(), 2, "logs:\n{}", hub.logs());
    assert!(addrs[0].is_ipv4() && addrs[1].is_ipv6(), "{addrs:?}");
    // With one connection allowed, each request waits for the previous one's slot.
    healthy_within(addrs[0], Duration::from_secs(5)).await;
    healthy_within(addrs[1], Duration::from_secs(5)).await;

    // The one connection allowed, taken on the first listener, is missing on the second.
    let sub = subscribe_within(addrs[0], Duration::from_secs(5)).await;
    let refused = request(addrs[1], "GET", "/healthz", &[], None).await;
    assert_eq!(refused.status, 503, "the ceiling is shared: {}", refused.text());
    drop(sub);
    healthy_within(addrs[1], Duration::from_secs(5)).await;
}

/// Opens a subscription, retrying while the one slot is still held: the hub frees the slot of
/// the previous `/healthz` connection only after it has seen that connection close, which can
/// come after the client has already moved on.
async fn subscribe_within(addr: SocketAddr, timeout: Duration) -> SseStream {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let s = SseStream::open(addr, &subscribe_path(&[TOPIC], &[]), &[]).await;
        if s.status == 200 {
            return s;
        }
        assert_eq!(s.status, 503, "{addr}: only a busy slot may refuse this subscription");
        assert!(tokio::time::Instant::now() < deadline, "{addr}: no slot within {timeout:?}");
        drop(s);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `/healthz` until it answers 200 (a connection slot is free); fails after `timeout`.
async fn healthy_within(addr: SocketAddr, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let status = request(addr, "GET", "/healthz", &[], None).await.status;
        if status == 200 {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{addr}: no slot within {timeout:?} (last status {status})");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn a_taken_address_stops_start_up_naming_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let server_name = format!("127.0.0.1:0 {addr}");
    let (code, out) = run_to_exit(
        &[("SERVER_NAME", &server_name), ("MERCURE_PUBLISHER_JWT_KEY", KEY), ("MERCURE_EXTRA_DIRECTIVES", "admin off")],
        &[],
        Duration::from_secs(10),
    );
    assert_ne!(code, Some(0), "{out}");
    assert!(out.contains(&format!("cannot listen: {addr}")), "{out}");
}

#[test]
fn a_malformed_server_name_is_a_configuration_error() {
    let (code, out) = run_to_exit(&[("SERVER_NAME", ":80, nowhere")], &[], Duration::from_secs(10));
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("SERVER_NAME"), "{out}");
}
