//! Topic matching: one selector against one topic, for each kind of selector.
//!
//! - `exact`, `any`: `Selector::matches` for an exact topic and for `*`.
//! - `template/compile+match` (cold): a fresh `SelectorCompiler` compiles the template (regex
//!   build) and matches once: the cost of a subscriber bringing a template nobody else uses.
//! - `template/interned`: compiling a template the compiler already holds (a new subscriber
//!   with a popular template).
//! - `template/regex`: `Selector::matches` on a compiled template (the regex runs each time).
//! - `registry/template_cached`: `Registry::for_each_candidate` for one template subscriber
//!   and a topic seen before (the registry's topic → matched cache answers).
//! - `registry/template_uncached`: the same with a new topic each time (cache miss: regex + insert).
//! - `urlpattern/…`, `registry/urlpattern_…`: the same four for a Mercure 1.0 URL pattern
//!   (`https://example.com/books/:id`), the 1.0 counterpart of the template above: matching
//!   parses the topic as a URL then runs one regex per URL component; the registry caches its
//!   answers per topic exactly as for templates.
//!
//! Why: matching runs per publish per selector kind; templates are the expensive kind, and the
//! registry's cache is what keeps them off the per-publish path.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use mercure_hub::topic::{MatchKind, MatcherSpec, SelectorCompiler, TemplateLimits};
use mercure_hub::update::Update;

const TEMPLATE: &str = "https://example.com/books/{id}";
const TOPIC: &str = "https://example.com/books/12345";
const URL_PATTERN: &str = "https://example.com/books/:id";

fn topic_match(c: &mut Criterion) {
    let mut group = c.benchmark_group("topic_match");
    group.throughput(Throughput::Elements(1));
    let compiler = SelectorCompiler::new(TemplateLimits::default());
    let exact = compiler.compile(TOPIC).expect("exact");
    let any = compiler.compile("*").expect("any");
    let template = compiler.compile(TEMPLATE).expect("template");

    group.bench_function("exact", |b| b.iter(|| black_box(&exact).matches(black_box(TOPIC))));
    group.bench_function("any", |b| b.iter(|| black_box(&any).matches(black_box(TOPIC))));
    group.bench_function("template/regex", |b| b.iter(|| black_box(&template).matches(black_box(TOPIC))));
    group.bench_function("template/interned", |b| b.iter(|| compiler.compile(black_box(TEMPLATE))));
    group.bench_function("template/compile+match", |b| {
        b.iter_batched(
            || SelectorCompiler::new(TemplateLimits::default()),
            |fresh| fresh.compile(black_box(TEMPLATE)).map(|s| s.matches(TOPIC)),
            BatchSize::SmallInput,
        )
    });

    let pattern_spec = MatcherSpec::new(MatchKind::UrlPattern, URL_PATTERN);
    let pattern = compiler.compile_spec(&pattern_spec).expect("URL pattern");
    group.bench_function("urlpattern/match", |b| b.iter(|| black_box(&pattern).matches(black_box(TOPIC))));
    group.bench_function("urlpattern/interned", |b| b.iter(|| compiler.compile_spec(black_box(&pattern_spec))));
    group.bench_function("urlpattern/compile+match", |b| {
        b.iter_batched(
            || SelectorCompiler::new(TemplateLimits::default()),
            |fresh| fresh.compile_spec(black_box(&pattern_spec)).map(|s| s.matches(TOPIC)),
            BatchSize::SmallInput,
        )
    });

    for (name, spec) in [("template", MatcherSpec::legacy_all(&[TEMPLATE])), ("urlpattern", vec![pattern_spec.clone()])]
    {
        registry_benches(&mut group, name, &spec);
    }
    group.finish();
}

/// `registry/{name}_cached` and `registry/{name}_uncached` for one subscriber holding `spec`.
fn registry_benches(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    spec: &[MatcherSpec],
) {
    let hub = benches::fixtures::hub();
    let sub = Arc::new(hub.build_subscriber(spec, None, None).expect("subscriber"));
    hub.subscribe(&sub).expect("subscribe");
    let update = benches::fixtures::update(TOPIC, 100);
    // Steady state: the first look-up fills the cache, every measured one reads it.
    hub.registry().for_each_candidate(&update, |_| {});
    group.bench_function(format!("registry/{name}_cached"), |b| {
        b.iter(|| {
            let mut hits = 0;
            hub.registry().for_each_candidate(black_box(&update), |_| hits += 1);
            assert_eq!(hits, 1);
        })
    });
    let mut n = 0u64;
    group.bench_function(format!("registry/{name}_uncached"), |b| {
        b.iter_batched(
            || {
                n += 1;
                let topic = format!("https://example.com/books/{n}");
                Arc::new(Update::new("x".into(), vec![topic], false, None, None, String::new()))
            },
            |update| {
                let mut hits = 0;
                hub.registry().for_each_candidate(&update, |_| hits += 1);
                assert_eq!(hits, 1);
                update
            },
            BatchSize::SmallInput,
        )
    });
}

criterion_group! {
    name = benches;
    config = benches::config();
    targets = topic_match
}
criterion_main!(benches);
