//! Shared fixtures of the hub's benchmarks; the benchmarks themselves live in `benches/benches/`.
//!
//! # Layout
//! - `benches/fanout_enqueue.rs`: one publish until the update sits in every queue (1k–1M).
//! - `benches/fanout_drain.rs`: one publish until every subscriber task has drained it (1k–100k).
//! - `benches/fanout_mixed.rs`: 100k subscribers over 10k Zipf topics, templates, private updates.
//! - `benches/topic_match.rs`: exact, `*` and URI-template selectors, cold and cached.
//! - `benches/publish_path.rs`: form parsing + JWT verification + encoding of one publish.
//! - `benches/sse_encode.rs`: SSE encoding of 100 B and 64 KiB updates.
//! - `benches/subscription_churn.rs`: join + leave a topic that has 1k–100k subscribers.
//! - `benches/idle_memory.rs`: bytes allocated per idle subscriber ([`alloc_count`]).
//! - `benches/gate.rs`: the instruction-count twin (gungraun) that `scripts/bench-regress` gates.
//!
//! Everything goes through the hub's public API: no private copy of its logic.

pub mod alloc_count;
pub mod fixtures;
pub mod latency;
pub mod zipf;

use std::time::Duration;

/// True for a smoke run: `BENCH_QUICK=1 cargo bench -p benches` (the whole suite, gungraun
/// included, which refuses criterion's flags), or one criterion bench run with `-- --quick`.
/// The benches then skip their largest sizes and measure briefly.
pub fn quick() -> bool {
    std::env::args().any(|a| a == "--quick") || std::env::var_os("BENCH_QUICK").is_some_and(|v| v != "0")
}

/// `normal`, or 700 ms in a smoke run.
pub fn measurement(normal: Duration) -> Duration {
    if quick() { Duration::from_millis(700) } else { normal }
}

/// The criterion configuration of every wall-clock bench: the defaults, with a short warm-up
/// and few samples in a smoke run. Command-line flags still apply on top.
pub fn config() -> criterion::Criterion {
    let c = criterion::Criterion::default();
    if quick() {
        c.warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_millis(700)).sample_size(10)
    } else {
        c
    }
}

/// Sampling for a fan-out group at `subscribers`: from 100k up one iteration takes
/// milliseconds, so flat sampling with 10 samples over 8 s; below, `samples` samples over 4 s
/// (10 in quick mode).
pub fn size_fanout_group<M: criterion::measurement::Measurement>(
    group: &mut criterion::BenchmarkGroup<'_, M>,
    subscribers: usize,
    samples: usize,
) {
    if subscribers >= 100_000 {
        group
            .sampling_mode(criterion::SamplingMode::Flat)
            .sample_size(10)
            .measurement_time(measurement(Duration::from_secs(8)));
    } else {
        group
            .sampling_mode(criterion::SamplingMode::Auto)
            .sample_size(if quick() { 10 } else { samples })
            .measurement_time(measurement(Duration::from_secs(4)));
    }
}
