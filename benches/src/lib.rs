//! Benchmarks of the hub live in `benches/benches/`.
