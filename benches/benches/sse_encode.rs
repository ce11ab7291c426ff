//! SSE encoding of one update (`sse::encode`), small (100 B) and large (64 KiB) data, on one
//! line and as pretty-printed JSON (a line break every 80 bytes, so one `data:` line each).
//!
//! Why: every update is encoded once at publish time, so this is per-publish cost, paid before
//! the fan-out; throughput is in bytes of data.

use std::hint::black_box;

use benches::fixtures;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mercure_hub::sse::{self, EventFields};

fn multiline(n: usize) -> String {
    let mut s = fixtures::data(n).into_bytes();
    for i in (79..s.len()).step_by(80) {
        s[i] = b'\n';
    }
    String::from_utf8(s).expect("ascii")
}

fn sse_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("sse_encode");
    for (name, data) in [
        ("bytes=100", fixtures::data(100)),
        ("bytes=65536", fixtures::data(64 * 1024)),
        ("bytes=65536/lines=820", multiline(64 * 1024)),
    ] {
        group.throughput(Throughput::Bytes(data.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                sse::encode(black_box(&EventFields {
                    id: "urn:uuid:0b4a8b8e-2f0a-4d3c-9d52-4c3c0e1f2a3b",
                    event_type: None,
                    retry: None,
                    data: &data,
                }))
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = benches::config();
    targets = sse_encode
}
criterion_main!(benches);
