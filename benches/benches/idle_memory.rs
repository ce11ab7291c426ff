//! User-space bytes per idle subscriber: what `new_subscriber` + `subscribe` allocate, counted
//! by a global allocator ([`benches::alloc_count`]) for 10k subscribers, in three shapes:
//! all on one topic, each on its own topic (one registry entry per topic), and all on one
//! URI template. A fourth line repeats the first after one publish and drain, to show an idle
//! queue gives its buffer back.
//!
//! Target: ≤ 4 KiB per idle subscriber. Counted: requested bytes (not allocator overhead) of
//! the hub's structures. Not counted: the connection — hyper's per-connection read/write
//! buffers, the tokio task, the socket and kernel buffers — which only the load test sees.
//! Exits non-zero if a shape exceeds the target. Results go to
//! `target/criterion/idle_memory/result.json`.

use benches::alloc_count::{self, CountingAlloc};
use benches::fixtures;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const N: usize = 10_000;
const TARGET: f64 = 4096.0;

fn per_subscriber(shape: &str, topic_of: impl Fn(usize) -> String) -> f64 {
    let hub = fixtures::hub();
    let topics: Vec<String> = (0..N).map(&topic_of).collect();
    let before = alloc_count::live_bytes();
    let subs: Vec<_> = topics
        .iter()
        .map(|t| {
            let sub = hub.new_subscriber(&[t.as_str()], None, None).expect("subscriber");
            hub.subscribe(&sub).expect("subscribe");
            sub
        })
        .collect();
    let bytes = (alloc_count::live_bytes() - before) as f64 / N as f64;
    println!("idle_memory/{shape}/subs={N}: {bytes:.0} bytes per idle subscriber");
    drop(subs);
    bytes
}

fn main() {
    let one = per_subscriber("one_topic", |_| fixtures::TOPIC.to_owned());
    let distinct = per_subscriber("distinct_topics", |i| format!("https://example.com/books/{i}"));
    let template = per_subscriber("one_template", |_| "https://example.com/books/{id}".to_owned());

    // After traffic: one publish, then every writer drains; the queues must shrink back.
    let hub = fixtures::hub();
    let subs = fixtures::subscribers_on(&hub, N, fixtures::TOPIC);
    let update = fixtures::update(fixtures::TOPIC, 100);
    let before = alloc_count::live_bytes();
    fixtures::publish(&hub, &update);
    let queued = (alloc_count::live_bytes() - before) as f64 / N as f64;
    fixtures::drain_and_park(&subs);
    let after = (alloc_count::live_bytes() - before) as f64 / N as f64;
    println!("idle_memory/after_publish: {queued:.0} bytes/subscriber while queued, {after:.0} after drain");

    let result = serde_json::json!({
        "subscribers": N,
        "bytes_per_idle_subscriber": { "one_topic": one, "distinct_topics": distinct, "one_template": template },
        "bytes_per_subscriber_while_one_update_queued": queued,
        "bytes_per_subscriber_after_drain": after,
        "target_bytes": TARGET,
        "counts": "requested bytes of hub structures; excludes hyper connection buffers, the task, the socket",
    });
    let dir = benches::latency::criterion_dir().join("idle_memory");
    if std::fs::create_dir_all(&dir).is_ok() {
        let _ = std::fs::write(dir.join("result.json"), serde_json::to_string_pretty(&result).unwrap_or_default());
    }
    let worst = one.max(distinct).max(template);
    if worst > TARGET {
        eprintln!("idle_memory: {worst:.0} bytes per idle subscriber exceeds the {TARGET} byte target");
        std::process::exit(1);
    }
}
