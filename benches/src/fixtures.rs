//! Hubs, subscribers, updates and tokens used by several benches, built through the hub's
//! public API only.

use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use mercure_hub::hub::{Dispatched, Hub, HubOptions};
use mercure_hub::subscriber::Subscriber;
use mercure_hub::topic::Selector;
use mercure_hub::update::Update;

/// The frame cap the SSE body drains with (`server::body::MAX_FRAME`, private to the server).
pub const MAX_FRAME: usize = 64 * 1024;

/// The topic every single-topic fan-out bench publishes to.
pub const TOPIC: &str = "https://example.com/books/1";

/// Test-only keys (generated with openssl for these benches; they protect nothing).
pub const RS256_PRIVATE: &str = include_str!("../keys/rs256.key.pem");
pub const RS256_PUBLIC: &str = include_str!("../keys/rs256.pub.pem");
pub const ES256_PRIVATE: &str = include_str!("../keys/es256.key.pem");
pub const ES256_PUBLIC: &str = include_str!("../keys/es256.pub.pem");
pub const HMAC_SECRET: &str = "!ChangeThisMercureHubJWTSecretKey!";

/// A hub with the default options (the server's defaults: 1024 events / 4 MiB per queue).
pub fn hub() -> Hub {
    Hub::new(HubOptions::default())
}

/// `n` registered subscribers to `topic`, anonymous (no private updates).
pub fn subscribers_on(hub: &Hub, n: usize, topic: &str) -> Vec<Arc<Subscriber>> {
    (0..n)
        .map(|_| {
            let sub = hub.new_subscriber(&[topic], None, None).expect("subscriber");
            hub.subscribe(&sub).expect("subscribe");
            sub
        })
        .collect()
}

/// Drains every queue and leaves a (no-op) waker parked in each, the state of a connection
/// writer waiting for its next event. The next push then takes the `Wake` path, as it would
/// for a real idle connection (waking a no-op waker costs a call, not a reschedule).
pub fn drain_and_park(subs: &[Arc<Subscriber>]) -> usize {
    let mut cx = Context::from_waker(Waker::noop());
    let mut bytes = 0;
    for sub in subs {
        while let Poll::Ready(Some(frame)) = sub.queue.poll_drain(&mut cx, MAX_FRAME) {
            bytes += frame.len();
        }
    }
    bytes
}

/// `n` bytes of JSON-looking data, on one line.
pub fn data(n: usize) -> String {
    let mut s = String::with_capacity(n);
    s.push_str("{\"v\":\"");
    while s.len() + 2 < n {
        s.push((b'a' + (s.len() % 26) as u8) as char);
    }
    s.push_str("\"}");
    s.truncate(n);
    s
}

/// Publishes through `Hub::publish` (the one place that knows its exact signature, which the
/// history work changed from `&Update` to `Arc<Update>`); the `Arc` clone is part of the real path.
pub fn publish(hub: &Hub, update: &Arc<Update>) -> Dispatched {
    hub.publish(update.clone()).dispatched
}

/// A public update of `data_len` bytes on `topic`.
pub fn update(topic: &str, data_len: usize) -> Arc<Update> {
    Arc::new(Update::new(
        "urn:uuid:0b4a8b8e-2f0a-4d3c-9d52-4c3c0e1f2a3b".into(),
        vec![topic.into()],
        false,
        None,
        None,
        data(data_len),
    ))
}

/// A token's `mercure.subscribe` selectors, compiled and interned by the hub as the subscribe
/// handler does (equal grant lists share one `Arc`).
pub fn grants(hub: &Hub, selectors: &[&str]) -> Arc<[Selector]> {
    hub.compiler().compile_grants(&mercure_hub::topic::MatcherSpec::legacy_all(selectors)).expect("grants")
}
