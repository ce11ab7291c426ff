//! Topic names, subscriber selectors and the Zipf popularity of topics.
//!
//! The run publishes to `topics` topics named `{base}/{k}` for `k` in `0..topics`. A
//! publish picks topic `k` with probability proportional to `1 / (k + 1)^s` (Zipf with
//! exponent `s`; one topic means always topic 0). A subscriber's selector decides which
//! topics it receives, and therefore which publishes it is *expected* to receive:
//!
//! - `exact`: subscriber `i` subscribes to the one topic `{base}/{i mod topics}`;
//! - `template`: the URI template `{base}/{id}`, matching every topic of the run;
//! - `wildcard`: `*`, matching every topic of the run (and any other traffic on the hub,
//!   which the payload's run id filters out).
//!
//! In the 1.0 dialect (`--dialect 1.0`) the same selectors are sent as `match=` (exact and
//! `*`) and `match_urlpattern={base}/:id` (the URL pattern standing for the template).
//!
//! Invariant: [`Selector::matches`] agrees with what a conforming hub delivers for the
//! topics this module names; the loss accounting relies on it.

use serde::{Deserialize, Serialize};

/// How subscribers choose their `topic` selectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SelectorKind {
    /// One exact topic per subscriber, round-robin over the run's topics.
    Exact,
    /// The URI template `{base}/{id}`: every topic of the run.
    Template,
    /// `*`: everything.
    Wildcard,
}

/// The protocol dialect subscribers and publishers speak.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum Dialect {
    /// Mercure 0.x: `topic=` selectors, the `mercure` JWT claim.
    #[default]
    #[value(name = "0.x")]
    Legacy,
    /// Mercure 1.0: `match=` / `match_urlpattern=`, RFC 9068 access tokens.
    #[value(name = "1.0")]
    V1,
}

/// The run's topic space.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TopicSpace {
    /// Topic IRI prefix; topic `k` is `{base}/{k}`.
    pub base: String,
    /// Number of topics (>= 1).
    pub count: u32,
    /// How selectors are spelled on the wire.
    #[serde(default)]
    pub dialect: Dialect,
}

impl TopicSpace {
    /// Topic `k`'s IRI.
    pub fn topic(&self, k: u32) -> String {
        format!("{}/{}", self.base, k)
    }

    /// The selector strings subscriber number `index` sends, and which topics they match.
    pub fn selector_for(&self, kind: SelectorKind, index: u64) -> Selector {
        let v1 = self.dialect == Dialect::V1;
        let exact = if v1 { "match" } else { "topic" };
        match kind {
            SelectorKind::Exact => {
                let k = (index % u64::from(self.count.max(1))) as u32;
                Selector { param: exact, query: vec![self.topic(k)], topics: Matched::One(k) }
            }
            SelectorKind::Template if v1 => {
                Selector { param: "match_urlpattern", query: vec![format!("{}/:id", self.base)], topics: Matched::All }
            }
            SelectorKind::Template => {
                Selector { param: exact, query: vec![format!("{}/{{id}}", self.base)], topics: Matched::All }
            }
            SelectorKind::Wildcard => Selector { param: exact, query: vec!["*".to_string()], topics: Matched::All },
        }
    }
}

/// Which of the run's topics a selector matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Matched {
    /// Exactly topic `k`.
    One(u32),
    /// Every topic of the run.
    All,
}

/// A subscriber's `topic=` query values and the run topics they match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    /// The query parameter the values go in (`topic`, `match` or `match_urlpattern`).
    pub param: &'static str,
    /// Values of the repeated query parameter.
    pub query: Vec<String>,
    /// Run topics matched.
    pub topics: Matched,
}

impl Selector {
    /// Does this selector match run topic `k`?
    pub fn matches(&self, k: u32) -> bool {
        match self.topics {
            Matched::One(x) => x == k,
            Matched::All => true,
        }
    }
}

/// Samples topic indices with Zipf popularity from a precomputed CDF.
#[derive(Debug, Clone)]
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    /// Zipf over `n` (>= 1) items with exponent `s` (0 = uniform).
    pub fn new(n: u32, s: f64) -> Self {
        let n = n.max(1);
        let s = if s.is_finite() { s.max(0.0) } else { 1.0 };
        let mut acc = 0.0;
        let mut cdf = Vec::with_capacity(n as usize);
        for k in 0..n {
            acc += 1.0 / f64::from(k + 1).powf(s);
            cdf.push(acc);
        }
        for c in &mut cdf {
            *c /= acc;
        }
        Self { cdf }
    }

    /// The item for a uniform draw `u` in `[0, 1)`.
    pub fn sample(&self, u: f64) -> u32 {
        let i = self.cdf.partition_point(|&c| c <= u);
        i.min(self.cdf.len() - 1) as u32
    }
}

/// A deterministic uniform draw in `[0, 1)` from an integer (splitmix64), so the topic of
/// publish number `i` does not depend on which goose user sent it.
pub fn uniform_from(i: u64, seed: u64) -> f64 {
    let mut z = i.wrapping_add(seed).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_prefers_low_ranks() {
        let z = Zipf::new(10, 1.0);
        let mut counts = [0u32; 10];
        for i in 0..100_000 {
            counts[z.sample(uniform_from(i, 7)) as usize] += 1;
        }
        assert!(counts[0] > counts[1] && counts[1] > counts[4] && counts[4] > counts[9]);
        // P(0) = 1/H(10) ~ 0.3414
        assert!((f64::from(counts[0]) / 100_000.0 - 0.3414).abs() < 0.01);
    }

    #[test]
    fn single_topic_always_zero() {
        let z = Zipf::new(1, 1.0);
        assert_eq!(z.sample(0.0), 0);
        assert_eq!(z.sample(0.999_999), 0);
    }

    #[test]
    fn selectors() {
        let t = TopicSpace { base: "https://example.com/lg".into(), count: 3, dialect: Dialect::Legacy };
        let s = t.selector_for(SelectorKind::Exact, 4);
        assert_eq!(s.query, vec!["https://example.com/lg/1".to_string()]);
        assert!(s.matches(1) && !s.matches(0));
        let s = t.selector_for(SelectorKind::Template, 4);
        assert_eq!(s.query, vec!["https://example.com/lg/{id}".to_string()]);
        assert!(s.matches(2));
    }
}
