//! Short-lived subscriber tokens (the soak's token-expiry churn).
//!
//! A share of the subscribers (chosen by index, reproducibly from the seed) present a
//! JWT minted per connection with an `exp` a random 30–120 s (configurable) ahead. The
//! hub ends such a stream at the expiry; the subscriber then reconnects like after any
//! hub drop (`--on-drop resume`: with `Last-Event-ID`), with a freshly minted token, and
//! the accounting owes it everything published meanwhile: no loss is allowed across an
//! expiry. The other subscribers keep the run's ordinary token.

use crate::clock::unix_now_ns;
use crate::topics::uniform_from;
use serde::{Deserialize, Serialize};

/// Which subscribers get short-lived tokens, and how short.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExpiringTokens {
    /// HS256 key the hub verifies subscriber tokens with.
    pub key: String,
    /// Share of the subscribers, `0..=1`.
    pub share: f64,
    /// Shortest token life, seconds.
    pub min_s: f64,
    /// Longest token life, seconds.
    pub max_s: f64,
    /// Seed of the choice and of the lives.
    pub seed: u64,
    /// 0.x claims or 1.0 access tokens.
    #[serde(default)]
    pub style: crate::jwt::Style,
}

/// A token minted for one connection.
#[derive(Debug, Clone)]
pub struct Minted {
    /// The JWT.
    pub jwt: String,
    /// Its `exp`, Unix nanoseconds (whole seconds, as the claim).
    pub exp_ns: u64,
}

impl ExpiringTokens {
    /// Whether subscriber `index` uses short-lived tokens.
    pub fn applies(&self, index: u64) -> bool {
        uniform_from(index, self.seed ^ 0x00e7_17e5) < self.share
    }

    /// Life of the token for connection `conn` of subscriber `index`, seconds.
    pub fn life_s(&self, index: u64, conn: u64) -> f64 {
        let (lo, hi) = (self.min_s.max(1.0), self.max_s.max(self.min_s.max(1.0)));
        lo + (hi - lo) * uniform_from(index.wrapping_mul(1_000_003).wrapping_add(conn), self.seed ^ 0x11fe)
    }

    /// Mints the token for connection `conn` of subscriber `index`, valid from now.
    pub fn mint(&self, index: u64, conn: u64) -> Result<Minted, String> {
        let exp_s = unix_now_ns() / 1_000_000_000 + self.life_s(index, conn).round() as u64;
        let jwt = crate::jwt::subscriber_in(&self.style, &self.key, Some(exp_s))?;
        Ok(Minted { jwt, exp_ns: exp_s * 1_000_000_000 })
    }
}

/// Whether a stream the hub ended at `ended_ns` was ended by its token's expiry at
/// `exp_ns`: at or after it (the hub's timer may fire a little early on a whole-second
/// `exp`, so one second of slack before it).
pub fn ended_by_expiry(ended_ns: u64, exp_ns: u64) -> bool {
    ended_ns + 1_000_000_000 >= exp_ns
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(share: f64) -> ExpiringTokens {
        ExpiringTokens {
            key: crate::jwt::DEMO_KEY.into(),
            share,
            min_s: 30.0,
            max_s: 120.0,
            seed: 7,
            style: crate::jwt::Style::Legacy,
        }
    }

    #[test]
    fn share_and_lives() {
        let e = t(0.25);
        let n = (0..10_000).filter(|&i| e.applies(i)).count();
        assert!((2_200..2_800).contains(&n), "{n}");
        assert_eq!((0..100).filter(|&i| t(0.0).applies(i)).count(), 0);
        assert_eq!((0..100).filter(|&i| t(1.0).applies(i)).count(), 100);
        for i in 0..1000 {
            let l = e.life_s(i, i % 7);
            assert!((30.0..=120.0).contains(&l), "{l}");
        }
        // Lives differ between connections of one subscriber.
        assert_ne!(e.life_s(5, 0), e.life_s(5, 1));
    }

    #[test]
    fn mints_exp_claim() {
        let m = t(1.0).mint(3, 0);
        let Ok(m) = m else { panic!("mint failed: {m:?}") };
        let now = unix_now_ns();
        assert!(m.exp_ns >= now + 29_000_000_000 && m.exp_ns <= now + 121_000_000_000);
        assert_eq!(m.jwt.split('.').count(), 3);
        assert!(ended_by_expiry(m.exp_ns, m.exp_ns));
        assert!(ended_by_expiry(m.exp_ns - 500_000_000, m.exp_ns));
        assert!(!ended_by_expiry(m.exp_ns - 5_000_000_000, m.exp_ns));
    }
}
