//! Fan-out: many subscribers on one topic each receive every update exactly once, and all in
//! the same order, while several publishers publish concurrently.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;

const TOPIC: &str = "https://example.com/live/1";
const SUBSCRIBERS: usize = 200;
const PUBLISHERS: usize = 4;
const PER_PUBLISHER: usize = 25;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_subscribers_receive_every_update_once_in_one_order() {
    let hub = HubProcess::with_directives("anonymous");
    let addr = hub.addr();

    // Three ways to reach the same topic; the last two reach it twice (dedup must hold).
    let selector_sets: [&[&str]; 3] =
        [&[TOPIC], &["https://example.com/live/{id}", TOPIC], &["*", "https://example.com/live/{id}"]];
    let mut subs = Vec::with_capacity(SUBSCRIBERS);
    for i in 0..SUBSCRIBERS {
        subs.push(SseStream::connect(addr, &subscribe_path(selector_sets[i % 3], &[]), &[]).await);
    }
    assert_eq!(hub.metric("mercure_subscribers").await, SUBSCRIBERS as u64);

    let readers: Vec<_> = subs
        .into_iter()
        .map(|mut s| {
            tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    let ev = s.next_event_within(Duration::from_secs(20)).await;
                    if ev.data == "end" {
                        return got;
                    }
                    got.push(ev.data);
                }
            })
        })
        .collect();

    let token = publisher_token(&[TOPIC]);
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let token = token.clone();
            tokio::spawn(async move {
                for i in 0..PER_PUBLISHER {
                    publish_ok(addr, &token, &[("topic", TOPIC), ("data", &format!("p{p}-{i}"))]).await;
                }
            })
        })
        .collect();
    for p in publishers {
        p.await.expect("publisher task");
    }
    publish_ok(addr, &token, &[("topic", TOPIC), ("data", "end")]).await;

    let mut first_order: Option<Vec<String>> = None;
    for (n, r) in readers.into_iter().enumerate() {
        let got = tokio::time::timeout(Duration::from_secs(30), r).await.expect("reader timed out").expect("reader");
        assert_eq!(got.len(), PUBLISHERS * PER_PUBLISHER, "subscriber {n} received {} updates", got.len());
        let distinct: HashSet<&String> = got.iter().collect();
        assert_eq!(distinct.len(), got.len(), "subscriber {n} received duplicates");
        // Each publisher's updates arrive in the order it published them.
        for p in 0..PUBLISHERS {
            let mine: Vec<&String> = got.iter().filter(|d| d.starts_with(&format!("p{p}-"))).collect();
            let expected: Vec<String> = (0..PER_PUBLISHER).map(|i| format!("p{p}-{i}")).collect();
            assert_eq!(mine, expected.iter().collect::<Vec<_>>(), "subscriber {n}, publisher {p}");
        }
        // And every subscriber sees the same total order.
        match &first_order {
            None => first_order = Some(got),
            Some(order) => assert_eq!(&got, order, "subscriber {n} saw another order"),
        }
    }
    let expected = (SUBSCRIBERS * (PUBLISHERS * PER_PUBLISHER + 1)) as u64;
    assert_eq!(hub.metric("mercure_deliveries_total").await, expected);
    assert_eq!(hub.metric("mercure_evictions_total").await, 0);
}
