//! In-process fuzz targets (test builds only), run by plain `cargo test` on stable Rust.
//!
//! Each target is a proptest property over hostile or generated input for one parser or
//! encoder that sees client or operator data: the HTTP head sniffer (`server::native`), the
//! publish form (`server::publish`), URI templates (`topic`), JWTs (`auth::jwt`), the extra
//! directives (`config::directives`), SSE encoding (`sse`), and Mercure 1.0's URL patterns and
//! `authorization_details` (`url_pattern`). Every target asserts a
//! property of the result (a model, a round trip or a bound), never only "did not panic"; a
//! panic inside a target is caught by proptest, shrunk and reported as a failure.
//!
//! Why proptest and not `cargo fuzz`: `cargo fuzz` needs nightly; proptest needs nothing but
//! `cargo test`, generates structured input (grammar-shaped strings as well as raw bytes) and
//! shrinks a failure to a small input, which becomes a named regression test next to its
//! target. Inputs are random, not coverage-guided, so targets mix raw bytes with inputs built
//! near the grammar to reach the deep paths.
//!
//! Run size, from the environment (read once per target):
//! - `MERCURE_FUZZ_CASES`: cases per batch (default: each target's CI size, a few seconds in a
//!   debug build; all targets together stay well under 2 minutes on 2 cores);
//! - `MERCURE_FUZZ_SECONDS`: keep running fresh batches until this many seconds have passed
//!   (long runs: `scripts/fuzz`);
//! - `MERCURE_FUZZ_SEED`: the first batch's seed (every failure prints the seed to replay it).

mod directives;
mod form;
mod http_head;
mod jwt;
mod sse;
mod template;
mod url_pattern;

use std::time::{Duration, Instant};

use proptest::strategy::{BoxedStrategy, Strategy};
use proptest::test_runner::{Config, RngAlgorithm, RngSeed, TestCaseError, TestError, TestRunner};

fn env_u64(name: &str) -> Option<u64> {
    let raw = std::env::var(name).ok()?;
    match raw.trim().parse() {
        Ok(v) => Some(v),
        Err(_) => panic!("{name}={raw:?} is not a non-negative integer"),
    }
}

/// Runs `test` over `ci_cases` inputs from `strategy` (or as the environment says, see the
/// module doc); panics with the seed and the shrunk input on the first failure.
pub(crate) fn run<S: Strategy>(
    name: &str,
    ci_cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let cases = env_u64("MERCURE_FUZZ_CASES").map_or(ci_cases, |c| u32::try_from(c).unwrap_or(u32::MAX).max(1));
    let deadline = env_u64("MERCURE_FUZZ_SECONDS").map(|s| Instant::now() + Duration::from_secs(s));
    let mut seed = env_u64("MERCURE_FUZZ_SEED").unwrap_or_else(rand::random);
    let mut total: u64 = 0;
    loop {
        let config = Config {
            cases,
            rng_seed: RngSeed::Fixed(seed),
            // ChaCha (the default) dominated the profile of a debug build; XorShift is plenty
            // for generating inputs.
            rng_algorithm: RngAlgorithm::XorShift,
            // Findings are kept as named regression tests, not as proptest's side files.
            failure_persistence: None,
            max_global_rejects: cases.saturating_mul(4),
            ..Config::default()
        };
        let mut runner = TestRunner::new(config);
        match runner.run(&strategy, &test) {
            Ok(()) => {}
            Err(TestError::Fail(why, input)) => panic!(
                "fuzz target {name} failed: {why}\nminimal input: {input:?}\n\
                 replay: MERCURE_FUZZ_SEED={seed} MERCURE_FUZZ_CASES={cases} cargo test -p mercure-hub --lib {name}"
            ),
            Err(TestError::Abort(why)) => panic!("fuzz target {name} aborted (seed {seed}): {why}"),
        }
        total += u64::from(cases);
        match deadline {
            Some(d) if Instant::now() < d => seed = rand::random(),
            _ => break,
        }
    }
    if deadline.is_some() {
        eprintln!("fuzz target {name}: {total} cases passed");
    }
}

/// Raw bytes that print as a byte-string literal when a failure is reported.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Raw(pub Vec<u8>);

impl std::fmt::Debug for Raw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}

/// A string strategy from a regex, parsed once (a `&str` used as a strategy is parsed again
/// for every value, which dominated the run time of a debug build).
pub(crate) fn re(pattern: &str) -> BoxedStrategy<String> {
    proptest::string::string_regex(pattern).unwrap_or_else(|e| panic!("generator regex {pattern:?}: {e}")).boxed()
}

/// Fails the case with a message unless `cond` holds (proptest's `prop_assert!` without the
/// macro's stringified source, which reads poorly for long conditions).
pub(crate) fn check(cond: bool, msg: impl FnOnce() -> String) -> Result<(), TestCaseError> {
    if cond { Ok(()) } else { Err(TestCaseError::fail(msg())) }
}
