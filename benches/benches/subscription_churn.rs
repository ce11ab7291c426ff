//! Subscription churn: one subscriber joins a topic that already has N subscribers and leaves
//! again (`new_subscriber` + `subscribe` + `unsubscribe`), for N = 1k, 10k, 100k.
//!
//! Why: connections come and go all the time, and leaving happens under the registry's shard
//! lock, which publishes to topics of that shard wait for. The cost should not grow with N;
//! this bench shows whether it does (`Registry::remove` finds the subscriber by a linear scan
//! of the topic's list). `--quick` skips 100k.

use std::hint::black_box;

use benches::fixtures::{self, TOPIC};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mercure_hub::queue::CloseReason;

fn subscription_churn(c: &mut Criterion) {
    let sizes: &[usize] = if benches::quick() { &[1_000, 10_000] } else { &[1_000, 10_000, 100_000] };
    let mut group = c.benchmark_group("subscription_churn");
    group.throughput(Throughput::Elements(1));
    for &n in sizes {
        let hub = fixtures::hub();
        let _others = fixtures::subscribers_on(&hub, n, TOPIC);
        group.bench_function(format!("existing={n}"), |b| {
            b.iter(|| {
                let sub = hub.new_subscriber(&[TOPIC], None, None).expect("subscriber");
                hub.subscribe(black_box(&sub)).expect("subscribe");
                hub.unsubscribe(&sub, CloseReason::Closed);
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = benches::config();
    targets = subscription_churn
}
criterion_main!(benches);
