//! Raw sockets for misbehaving clients: a subscriber that never reads, and helpers to fill
//! its path with big updates and to see the hub close it.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::http::{form, request};

/// Opens a subscription to `topics` on a socket with a tiny receive buffer, and never reads
/// from it. Returns once the request is sent (not when the hub has registered it).
pub async fn stuck_subscriber(addr: SocketAddr, topics: &[&str]) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    // Set before connecting, so the window advertised to the hub stays tiny.
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let mut stream = socket.connect(addr).await.expect("connect");
    let path = super::http::subscribe_path(topics, &[]);
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n");
    stream.write_all(req.as_bytes()).await.expect("send request");
    stream
}

/// Reads whatever the hub managed to send, until it closes the connection (EOF or reset).
/// Returns the bytes read; panics if the connection is still open after `timeout`.
pub async fn drain_until_closed(stream: &mut TcpStream, timeout: Duration) -> usize {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut total = 0;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => panic!("the connection is still open after {timeout:?} ({total} bytes drained)"),
            Ok(Ok(0)) => return total,
            Ok(Ok(n)) => total += n,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => return total,
            Ok(Err(e)) => panic!("reading the connection: {e}"),
        }
    }
}

/// Publishes `count` updates of `size` bytes of data to `topic`, two at a time, with a token
/// allowed to publish anywhere. The form body is encoded once.
pub async fn publish_big(addr: SocketAddr, topic: &str, size: usize, count: usize) {
    let auth = format!("Bearer {}", super::publisher_token(&["*"]));
    let body = form(&[("topic", topic), ("data", &"x".repeat(size))]);
    let post = || async {
        let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/x-www-form-urlencoded")];
        let resp = request(addr, "POST", "/.well-known/mercure", &headers, Some(body.as_bytes())).await;
        assert_eq!(resp.status, 200, "big update: {}", resp.text());
    };
    for _ in 0..count / 2 {
        tokio::join!(post(), post());
    }
    if count % 2 == 1 {
        post().await;
    }
}
