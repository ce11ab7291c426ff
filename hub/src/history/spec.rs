//! The history settings, parsed from the `transport`/`transport_url` directive.
//!
//! Accepted URLs:
//! - `local://local[?size=N&max_bytes=N&max_age=D]`: memory only.
//! - `redb://PATH[?size=N&max_bytes=N&max_age=D&fsync=always|interval&fsync_interval=D&cache_size=N]`:
//!   the embedded durable store (the default is `redb://mercure.redb`).
//! - `bolt://PATH[?size=N&cleanup_frequency=F&cache_size=N]`: the Go hub's spelling, mapped
//!   onto redb (`size` is honoured; `cleanup_frequency` is accepted and unneeded: trimming
//!   happens on every commit).
//! - `redis://…` / `rediss://…`: several nodes sharing one Redis stream (see `cluster` and
//!   `cluster::spec` for the options).
//!
//! Retention is bounded by default (10 000 updates and 64 MiB), unlike the Go hub's default
//! of keeping everything. `size=0` lifts the count bound; the byte bound always applies.
//!
//! `cache_size` bounds the durable store's page cache (see [`DEFAULT_CACHE_BYTES`]); it is
//! memory on top of the retained window, which already holds every retained update.

use std::path::PathBuf;
use std::time::Duration;

use crate::duration::parse_duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// Most updates kept (`size`). `None`: no count bound. Default 10 000.
    pub max_events: Option<usize>,
    /// Most bytes of encoded updates kept (`max_bytes`). Default 64 MiB.
    pub max_bytes: usize,
    /// Oldest update kept (`max_age`). Default: no age bound.
    pub max_age: Option<Duration>,
}

impl Default for Retention {
    fn default() -> Self {
        Retention { max_events: Some(10_000), max_bytes: 64 << 20, max_age: None }
    }
}

/// The durable store's page cache by default: 4 MiB. redb's own default is 1 GiB, which fills
/// with every page written (they move to the read cache on commit), so a hub would grow by the
/// size of its file. The hub reads the file only at start-up, in one sequential scan that a
/// cache does not speed up; at run time it touches the B-tree's root-to-newest path on insert
/// and root-to-oldest path on trim, a few pages. Half of the cache is redb's write buffer: a
/// group commit larger than 2 MiB writes its oldest pages early, which costs no extra I/O (the
/// commit writes them anyway).
pub const DEFAULT_CACHE_BYTES: usize = 4 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Every acknowledged publish is on disk (group commit). The default.
    Always,
    /// Commits are fsynced at most this often; a machine crash can lose that long.
    Interval(Duration),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistorySpec {
    /// `None`: memory only (or Redis).
    pub path: Option<PathBuf>,
    /// Several nodes sharing a Redis stream; `path` is then `None`.
    pub redis: Option<crate::cluster::spec::RedisSpec>,
    pub retention: Retention,
    pub fsync: FsyncPolicy,
    /// The durable store's page cache, in bytes (`cache_size`). Default
    /// [`DEFAULT_CACHE_BYTES`]; unused without a file.
    pub cache_bytes: usize,
    /// Options accepted for compatibility but not needed here (logged at start-up).
    pub ignored: Vec<String>,
    /// The URL as given, for logs.
    pub url: String,
}

impl Default for HistorySpec {
    fn default() -> Self {
        Self::parse("redb://mercure.redb").unwrap_or_else(|_| HistorySpec {
            path: None,
            redis: None,
            retention: Retention::default(),
            fsync: FsyncPolicy::Always,
            cache_bytes: DEFAULT_CACHE_BYTES,
            ignored: Vec::new(),
            url: "local://local".into(),
        })
    }
}

impl HistorySpec {
    pub fn parse(url: &str) -> Result<Self, String> {
        let (scheme, rest) = url.split_once("://").ok_or_else(|| format!("transport URL {url:?} has no scheme"))?;
        let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut spec = HistorySpec {
            path: None,
            redis: None,
            retention: Retention::default(),
            fsync: FsyncPolicy::Always,
            cache_bytes: DEFAULT_CACHE_BYTES,
            ignored: Vec::new(),
            url: url.to_owned(),
        };
        match scheme {
            "redis" | "rediss" => {
                spec.redis = Some(crate::cluster::spec::parse(url, &mut spec.retention, &mut spec.ignored)?);
                return Ok(spec);
            }
            "local" => {}
            "redb" | "bolt" => {
                if location.is_empty() {
                    return Err(format!("transport URL {url:?} needs a file path"));
                }
                spec.path = Some(PathBuf::from(location));
            }
            other => return Err(format!("unknown transport scheme {other:?} (expected local, redb, bolt, redis or rediss)")),
        }
        let mut interval = Duration::from_millis(100);
        let mut fsync_mode = "always".to_owned();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            let bad = |what: &str| format!("transport URL option {k}={v:?}: {what}");
            match &*k {
                "size" => {
                    let n: usize = v.parse().map_err(|_| bad("expected a count"))?;
                    spec.retention.max_events = (n > 0).then_some(n);
                }
                "max_bytes" => {
                    spec.retention.max_bytes =
                        v.parse().ok().filter(|n| *n > 0).ok_or_else(|| bad("expected a positive byte count"))?
                }
                "max_age" => spec.retention.max_age = Some(parse_duration(&v).map_err(|e| bad(&e))?),
                "cache_size" => spec.cache_bytes = v.parse().map_err(|_| bad("expected a byte count"))?,
                "fsync" => fsync_mode = v.into_owned(),
                "fsync_interval" => interval = parse_duration(&v).map_err(|e| bad(&e))?,
                "cleanup_frequency" | "bucket_name" => spec.ignored.push(k.into_owned()),
                _ => return Err(bad("unknown option")),
            }
        }
        spec.fsync = match fsync_mode.as_str() {
            "always" => FsyncPolicy::Always,
            "interval" if !interval.is_zero() => FsyncPolicy::Interval(interval),
            _ => return Err(format!("transport URL: fsync must be `always` or `interval` (got {fsync_mode:?})")),
        };
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let d = HistorySpec::default();
        assert_eq!(d.path, Some(PathBuf::from("mercure.redb")));
        assert_eq!(d.retention.max_events, Some(10_000));
        let l = HistorySpec::parse("local://local?size=5").unwrap();
        assert_eq!((l.path, l.retention.max_events), (None, Some(5)));
        let b = HistorySpec::parse("bolt://mercure.db?size=1000&cleanup_frequency=0.3").unwrap();
        assert_eq!(b.path, Some(PathBuf::from("mercure.db")));
        assert_eq!(b.retention.max_events, Some(1000));
        assert_eq!(b.ignored, vec!["cleanup_frequency"]);
        let r = HistorySpec::parse("redb:///tmp/x.redb?fsync=interval&fsync_interval=50ms&max_age=1h").unwrap();
        assert_eq!(r.fsync, FsyncPolicy::Interval(Duration::from_millis(50)));
        assert_eq!(r.retention.max_age, Some(Duration::from_secs(3600)));
        assert_eq!(d.cache_bytes, DEFAULT_CACHE_BYTES);
        let c = HistorySpec::parse("bolt://mercure.db?cache_size=1048576").unwrap();
        assert_eq!(c.cache_bytes, 1 << 20);
        assert!(HistorySpec::parse("redb://x?cache_size=4MiB").is_err());
        assert!(HistorySpec::parse("redb://x?bogus=1").is_err());
        assert!(HistorySpec::parse("redb://").is_err());
        assert!(HistorySpec::parse("ftp://x").is_err());
        assert!(HistorySpec::parse("redb://x?fsync=sometimes").is_err());
    }
}
