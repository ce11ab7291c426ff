//! The Redis transport's settings, from `transport_url redis://…` or the `transport redis { … }`
//! block (which `config` turns into the same URL, see [`block_url`]).
//!
//! Accepted: `redis://[USER[:PASSWORD]@]HOST[:PORT][/DB][?OPTIONS]`, and `rediss://` for TLS.
//! Our options (removed from the URL before it reaches the Redis client; anything else in the
//! query is the client's own, e.g. `protocol=resp3`):
//!
//! | option | meaning | default |
//! |---|---|---|
//! | `stream` | the stream every node shares | `mercure` |
//! | `size`, `max_len`, `max_length`, `max_len_approx` | updates retained (stream `MAXLEN ~` and each node's window); `0`: no count bound | 10 000 |
//! | `max_age` | oldest update retained (stream `MINID ~` and the window) | none |
//! | `max_bytes` | each node's window, in bytes (the stream has no byte bound) | 64 MiB |
//! | `tls` | `1`/`true`: same as `rediss://` | off |
//! | `response_timeout` | how long a publish waits for Redis before answering 503 | `5s` |
//! | `presence_ttl` | a node not heard from for this long is dead (its subscriptions end) | `15s` |
//! | `gob` | accepted for the Go hub's configurations; entries are always our binary record | |

use std::time::Duration;

use crate::config::directives::Directive;
use crate::duration::parse_duration;
use crate::history::Retention;

/// The stream name when none is given (the Go hub's default too).
pub const DEFAULT_STREAM: &str = "mercure";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSpec {
    /// What the Redis client connects to: the URL without our options.
    pub url: String,
    /// The stream's key; the other keys are derived from it (see `keys`).
    pub stream: String,
    /// How long a publish waits for Redis (`response_timeout`).
    pub response_timeout: Duration,
    /// After this long without a heartbeat a node is dead (`presence_ttl`).
    pub presence_ttl: Duration,
}

/// Parses a `redis://`/`rediss://` transport URL: the Redis settings, and the retention our
/// options set (applied to both the stream and each node's window). `ignored` receives the
/// options accepted for compatibility only.
pub fn parse(url: &str, retention: &mut Retention, ignored: &mut Vec<String>) -> Result<RedisSpec, String> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| format!("transport URL {url:?} has no scheme"))?;
    let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
    if location.is_empty() || location.starts_with('/') {
        return Err(format!("transport URL {url:?} needs a Redis host"));
    }
    let mut spec = RedisSpec {
        url: String::new(),
        stream: DEFAULT_STREAM.to_owned(),
        response_timeout: Duration::from_secs(5),
        presence_ttl: Duration::from_secs(15),
    };
    let mut tls = scheme == "rediss";
    let mut passthrough = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        let bad = |what: &str| format!("transport URL option {k}={v:?}: {what}");
        match &*k {
            "stream" => {
                if v.is_empty() || v.len() > 256 {
                    return Err(bad("expected a stream name of 1 to 256 bytes"));
                }
                spec.stream = v.into_owned();
            }
            "size" | "max_len" | "max_length" | "max_len_approx" => {
                let n: usize = v.parse().map_err(|_| bad("expected a count"))?;
                retention.max_events = (n > 0).then_some(n);
            }
            "max_bytes" => {
                retention.max_bytes =
                    v.parse().ok().filter(|n| *n > 0).ok_or_else(|| bad("expected a positive byte count"))?
            }
            "max_age" => retention.max_age = Some(parse_duration(&v).map_err(|e| bad(&e))?),
            "tls" => tls = matches!(&*v, "1" | "true" | "on" | "yes" | ""),
            "response_timeout" => {
                spec.response_timeout =
                    parse_duration(&v).ok().filter(|d| !d.is_zero()).ok_or_else(|| bad("expected a duration"))?
            }
            "presence_ttl" => {
                spec.presence_ttl = parse_duration(&v)
                    .ok()
                    .filter(|d| *d >= Duration::from_secs(1))
                    .ok_or_else(|| bad("expected a duration of at least 1s"))?
            }
            "gob" => ignored.push(k.into_owned()),
            _ => {
                passthrough.append_pair(&k, &v);
            }
        }
    }
    let passthrough = passthrough.finish();
    let scheme = if tls { "rediss" } else { "redis" };
    spec.url = if passthrough.is_empty() {
        format!("{scheme}://{location}")
    } else {
        format!("{scheme}://{location}?{passthrough}")
    };
    // Catch a malformed URL at start-up rather than at the first connection.
    redis::Client::open(spec.url.as_str()).map_err(|e| format!("transport URL {url:?}: {e}"))?;
    Ok(spec)
}

/// `transport redis { url U | address H:P; stream S; username U; password P; tls; db N; … }`
/// (the Go hub's block) → a `redis://` URL for [`parse`]. Options other than the connection
/// ones become query options.
pub fn block_url(d: &Directive) -> Result<String, String> {
    let mut base: Option<String> = None;
    let (mut user, mut password, mut db, mut tls) = (None, None, None, false);
    let mut query = form_urlencoded::Serializer::new(String::new());
    for opt in &d.block {
        let value = || match opt.args.as_slice() {
            [a] => Ok(a.as_str()),
            _ => Err(format!("transport redis: {} takes exactly one argument", opt.name)),
        };
        match opt.name.as_str() {
            "url" => base = Some(value()?.to_owned()),
            "address" => base = Some(format!("redis://{}", value()?)),
            "addresses" => match opt.args.as_slice() {
                [one] => base = Some(format!("redis://{one}")),
                _ => {
                    return Err("transport redis: several addresses (Redis Cluster) are not supported: one \
                                stream's order needs one primary; give one address"
                        .into());
                }
            },
            "username" => user = Some(value()?.to_owned()),
            "password" => password = Some(value()?.to_owned()),
            "db" => db = Some(value()?.to_owned()),
            "tls" => tls = opt.args.is_empty() || matches!(value()?, "1" | "true" | "on" | "yes"),
            "gob" => {
                query.append_pair("gob", opt.args.first().map_or("1", String::as_str));
            }
            key => {
                query.append_pair(key, value()?);
            }
        }
    }
    let base = base.ok_or("transport redis needs `url` or `address`")?;
    let (scheme, rest) = base.split_once("://").ok_or_else(|| format!("transport redis: {base:?} has no scheme"))?;
    let scheme = if tls { "rediss" } else { scheme };
    let (mut location, base_query) = match rest.split_once('?') {
        Some((l, q)) => (l.to_owned(), Some(q)),
        None => (rest.to_owned(), None),
    };
    if user.is_some() || password.is_some() {
        let enc = |s: &str| percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string();
        let host = location.rsplit_once('@').map_or(location.as_str(), |(_, h)| h).to_owned();
        let userinfo = match (&user, &password) {
            (Some(u), Some(p)) => format!("{}:{}", enc(u), enc(p)),
            (Some(u), None) => enc(u),
            (None, Some(p)) => format!(":{}", enc(p)),
            (None, None) => String::new(),
        };
        location = format!("{userinfo}@{host}");
    }
    if let Some(db) = db {
        let host = location.split('/').next().unwrap_or_default().to_owned();
        location = format!("{host}/{db}");
    }
    let mut all = base_query.map(str::to_owned).unwrap_or_default();
    let ours = query.finish();
    if !ours.is_empty() {
        if !all.is_empty() {
            all.push('&');
        }
        all.push_str(&ours);
    }
    Ok(if all.is_empty() { format!("{scheme}://{location}") } else { format!("{scheme}://{location}?{all}") })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(url: &str) -> Result<(RedisSpec, Retention, Vec<String>), String> {
        let mut r = Retention::default();
        let mut ignored = Vec::new();
        parse(url, &mut r, &mut ignored).map(|s| (s, r, ignored))
    }

    #[test]
    fn urls() {
        let (s, r, _) = parsed("redis://127.0.0.1:6379/2?stream=s1&max_len=500&max_age=1h").unwrap();
        assert_eq!(s.url, "redis://127.0.0.1:6379/2");
        assert_eq!(s.stream, "s1");
        assert_eq!(r.max_events, Some(500));
        assert_eq!(r.max_age, Some(Duration::from_secs(3600)));
        let (s, r, ignored) = parsed("redis://u:p@h:1?tls=1&max_length=0&gob=1&protocol=resp3").unwrap();
        assert_eq!(s.url, "rediss://u:p@h:1?protocol=resp3");
        assert_eq!(r.max_events, None);
        assert_eq!(ignored, ["gob"]);
        assert_eq!(s.stream, DEFAULT_STREAM);
        assert!(parsed("redis://h?stream=").is_err());
        assert!(parsed("redis://h?max_len=x").is_err());
        assert!(parsed("redis://h?presence_ttl=10ms").is_err());
        assert!(parsed("redis://").is_err());
        assert!(parsed("redis:///x").is_err());
    }

    #[test]
    fn the_go_block_becomes_a_url() {
        let ds = crate::config::directives::parse(
            "transport redis {\n address 127.0.0.1:7000\n stream s\n username u\n password p@ss\n tls\n max_length 10\n db 3\n}",
        )
        .unwrap();
        let url = block_url(&ds[0]).unwrap();
        assert_eq!(url, "rediss://u:p%40ss@127.0.0.1:7000/3?stream=s&max_length=10");
        let (s, r, _) = parsed(&url).unwrap();
        assert_eq!((s.stream.as_str(), r.max_events), ("s", Some(10)));
        let ds = crate::config::directives::parse("transport redis {\n url redis://h:1/0?stream=x\n}").unwrap();
        assert_eq!(block_url(&ds[0]).unwrap(), "redis://h:1/0?stream=x");
        let ds = crate::config::directives::parse("transport redis {\n addresses a:1 b:2\n}").unwrap();
        assert!(block_url(&ds[0]).is_err());
        let ds = crate::config::directives::parse("transport redis {\n stream x\n}").unwrap();
        assert!(block_url(&ds[0]).is_err());
    }
}
