//! Direct writes (`queue`'s "Direct writes", the `direct_writes` directive): a publish writes
//! to an idle HTTP/1 subscriber's socket itself. What must hold whichever path carried an
//! event: every subscriber gets every update once, intact and in order — also a reader too
//! slow for its socket, where a direct write is taken only in part and the connection's own
//! writer must send the rest before anything else — and HTTP/1.0 streams stay unframed.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const TOPIC: &str = "https://example.com/direct";
const UPDATES: usize = 200;

fn directives(direct: &str) -> String {
    // Nothing but the TCP layer may hold back the slow reader: no stall eviction, room for
    // everything published in its queue, no heartbeats in the byte stream.
    format!(
        "anonymous\ntransport local\ndispatch_timeout 0s\nheartbeat 0s\nsubscriber_queue_bytes 67108864\n\
         subscriber_queue_events 100000\ndirect_writes {direct}"
    )
}

/// Update `i`'s data: its number, then filler of a size that varies from a few bytes to
/// ~12 KB, and every tenth ~300 KB: Linux takes a write whole whenever the socket has any room
/// (it may overshoot the send buffer by an skb), so only a frame larger than that is split.
fn data(i: usize) -> String {
    let filler = if i % 10 == 9 { 300_000 + i } else { (i * 7919) % 12_000 };
    format!("{i}:{}", "x".repeat(filler))
}

async fn read_all(mut s: SseStream, what: &str) -> Vec<String> {
    let mut got = Vec::with_capacity(UPDATES);
    while got.len() < UPDATES {
        let ev = s.next_event_within(Duration::from_secs(30)).await;
        got.push(ev.data);
    }
    assert!(
        got.iter().enumerate().all(|(i, d)| *d == data(i)),
        "{what}: an update is missing, altered or out of order"
    );
    got
}

async fn run(direct: &str) -> (u64, u64) {
    let hub = HubProcess::with_directives(&directives(direct));
    let addr = hub.addr();
    let path = subscribe_path(&[TOPIC], &[]);

    let fast = SseStream::connect(addr, &path, &[]).await;
    let fast = tokio::spawn(async move { read_all(fast, "a reading subscriber").await });
    // A reader with a tiny receive window that reads nothing until every update is published:
    // its socket fills, and the direct write that fills it is taken only in part.
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let slow = socket.connect(addr).await.expect("connect");
    let slow = SseStream::open_on(slow, "GET", &path, &[], None).await;
    assert_eq!(slow.status, 200);
    assert_eq!(hub.metric("mercure_subscribers").await, 2);

    let token = publisher_token(&[TOPIC]);
    for i in 0..UPDATES {
        publish_ok(addr, &token, &[("topic", TOPIC), ("data", &data(i))]).await;
    }
    read_all(slow, "the slow reader").await;
    fast.await.expect("reader task");
    (hub.metric("mercure_direct_writes_total").await, hub.metric("mercure_direct_writes_partial_total").await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_update_arrives_intact_through_whole_and_partial_direct_writes() {
    let (whole, partial) = run("on").await;
    assert!(whole > 0, "the reading subscriber was written to directly");
    assert!(partial > 0, "the slow reader's socket took a direct write only in part");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_direct_writes_off_the_writers_carry_everything() {
    let (whole, partial) = run("off").await;
    assert_eq!((whole, partial), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_1_0_stream_gets_direct_writes_unframed() {
    let hub = HubProcess::with_directives(&directives("on"));
    let addr = hub.addr();
    let mut conn = TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {} HTTP/1.0\r\nAccept: text/event-stream\r\n\r\n", subscribe_path(&[TOPIC], &[]));
    conn.write_all(req.as_bytes()).await.expect("send");
    hub.wait_metric("mercure_subscribers", 1, Duration::from_secs(10)).await;
    // Let the stream's writer send the head and park before publishing.
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf)).await.expect("head").expect("read");
        assert!(n > 0, "closed before the head");
        got.extend_from_slice(&buf[..n]);
    }
    let token = publisher_token(&[TOPIC]);
    for i in 0..3 {
        publish_ok(addr, &token, &[("topic", TOPIC), ("id", &format!("e{i}")), ("data", &format!("d{i}"))]).await;
    }
    let want = b"id: e0\ndata: d0\n\nid: e1\ndata: d1\n\nid: e2\ndata: d2\n\n";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !got.ends_with(want) {
        let n = tokio::time::timeout_at(deadline, conn.read(&mut buf)).await.expect("events").expect("read");
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").expect("head") + 4;
    let head = String::from_utf8_lossy(&got[..head_end]).to_lowercase();
    assert!(head.starts_with("http/1.0 200") && !head.contains("chunked"), "{head}");
    assert!(hub.metric("mercure_direct_writes_total").await >= 1, "at least one event went directly");
}
