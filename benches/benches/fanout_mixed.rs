//! Fan-out with a realistic mix: 100k subscribers over 10k topics, topic popularity Zipf
//! (s = 1), 10% of subscribers using a URI-template selector, half of them holding a
//! subscribe grant, and 10% of updates private (so each candidate's grant is checked).
//!
//! Topics are `https://example.com/g{g}/items/{i}` with `g = i % 100`; a template subscriber
//! follows a whole group (`https://example.com/g{g}/items/{id}`, 100 distinct templates), and
//! a granted subscriber may receive private updates of its group. Updates pick their topic by
//! the same Zipf law. One iteration publishes a batch of 200 updates; throughput is in
//! deliveries (recipients summed over the batch). Queues are drained between batches, outside
//! the timing. `--quick` uses 20k subscribers over 2k topics.
//!
//! Two selector dialects over the same population and updates: `template` (0.x: the group is
//! the URI template `…/g{g}/items/{id}`) and `urlpattern` (1.0: the URL pattern
//! `…/g{g}/items/:id`, with a 1.0 access token's matchers as the grant), so the cost of
//! URL-pattern matching in a fan-out reads beside that of templates.

use std::sync::Arc;
use std::time::{Duration, Instant};

use benches::fixtures;
use benches::latency::LatencyLog;
use benches::zipf::{Rng, Zipf};
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};

/// The hub binary's allocator: a fan-out allocates per recipient, so the allocator shows in it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use mercure_hub::topic::{MatchKind, MatcherSpec};
use mercure_hub::update::Update;

const BATCH: usize = 200;

fn topic(i: usize) -> String {
    format!("https://example.com/g{}/items/{i}", i % 100)
}

fn group_template(i: usize) -> String {
    format!("https://example.com/g{}/items/{{id}}", i % 100)
}

fn group_pattern(i: usize) -> String {
    format!("https://example.com/g{}/items/:id", i % 100)
}

/// How a group subscriber names its group, and the kind of its selectors.
#[derive(Clone, Copy)]
enum Dialect {
    Template,
    UrlPattern,
}

impl Dialect {
    fn name(self) -> &'static str {
        match self {
            Dialect::Template => "template",
            Dialect::UrlPattern => "urlpattern",
        }
    }

    fn group(self, t: usize) -> MatcherSpec {
        match self {
            Dialect::Template => MatcherSpec::new(MatchKind::Legacy, group_template(t)),
            Dialect::UrlPattern => MatcherSpec::new(MatchKind::UrlPattern, group_pattern(t)),
        }
    }

    fn exact(self, t: usize) -> MatcherSpec {
        match self {
            Dialect::Template => MatcherSpec::new(MatchKind::Legacy, topic(t)),
            Dialect::UrlPattern => MatcherSpec::new(MatchKind::Exact, topic(t)),
        }
    }
}

fn fanout_mixed(c: &mut Criterion) {
    for dialect in [Dialect::Template, Dialect::UrlPattern] {
        fanout_in(c, dialect);
    }
}

fn fanout_in(c: &mut Criterion, dialect: Dialect) {
    let (n_subs, n_topics) = if benches::quick() { (20_000, 2_000) } else { (100_000, 10_000) };
    let hub = fixtures::hub();
    let zipf = Zipf::new(n_topics, 1.0);
    let mut rng = Rng::new(42);
    let subs: Vec<_> = (0..n_subs)
        .map(|k| {
            let t = zipf.sample(&mut rng);
            let selector = if k % 10 == 0 { dialect.group(t) } else { dialect.exact(t) };
            let grant = (k % 2 == 0).then(|| hub.compiler().compile_grants(&[dialect.group(t)]).expect("grant"));
            let sub = Arc::new(hub.build_subscriber(&[selector], grant, None).expect("subscriber"));
            hub.subscribe(&sub).expect("subscribe");
            sub
        })
        .collect();
    fixtures::drain_and_park(&subs);
    let data = fixtures::data(100);
    let updates: Vec<Arc<Update>> = (0..BATCH)
        .map(|j| {
            let t = zipf.sample(&mut rng);
            Arc::new(Update::new(format!("u{j}"), vec![topic(t)], j % 10 == 0, None, None, data.clone()))
        })
        .collect();
    // A dry run counts the deliveries of one batch (the throughput unit).
    let deliveries: usize = updates.iter().map(|u| fixtures::publish(&hub, u).recipients).sum();
    fixtures::drain_and_park(&subs);

    let mut group = c.benchmark_group("fanout_mixed");
    group.throughput(Throughput::Elements(deliveries as u64));
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(if benches::quick() { 10 } else { 20 })
        .measurement_time(benches::measurement(Duration::from_secs(8)));
    let id = format!("{}/subs={n_subs}/topics={n_topics}/batch={BATCH}", dialect.name());
    let mut log = LatencyLog::default();
    group.bench_function(&id, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let got: usize = updates.iter().map(|u| fixtures::publish(&hub, u).recipients).sum();
                let took = start.elapsed();
                assert_eq!(got, deliveries);
                total += took;
                log.record(took);
                fixtures::drain_and_park(&subs);
            }
            total
        })
    });
    let json = log.write(
        "fanout_mixed",
        &id,
        serde_json::json!({ "subscribers": n_subs, "topics": n_topics, "updates_per_batch": BATCH, "deliveries_per_batch": deliveries }),
    );
    eprintln!("fanout_mixed/{id}: {}", json.replace('\n', " "));
    group.finish();
}

criterion_group! {
    name = benches;
    config = benches::config();
    targets = fanout_mixed
}
criterion_main!(benches);
