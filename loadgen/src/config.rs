//! Command-line and environment configuration of a load run.
//!
//! The upstream Gatling load test's environment variables are accepted with their
//! meaning (`HUB_URL`, `JWT`, `SUBSCRIBER_JWT`, `INITIAL_SUBSCRIBERS`,
//! `SUBSCRIBERS_RATE_FROM/TO`, `PUBLISHERS_RATE_FROM/TO`, `INJECTION_DURATION`,
//! `CONNECTION_DURATION`, `RANDOM_CONNECTION_DURATION`, `PRIVATE_UPDATES`); each also
//! has a flag. Defaults differ where Gatling's suit a one-hour soak rather than a
//! measurement (documented per field and in the README). A flag beats its variable.

use crate::shard::{AuthVia, DropAction, EndAction};
use crate::topics::SelectorKind;
use clap::{ArgAction, Args, ValueEnum};
use std::path::PathBuf;

/// How subscribers authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SubscriberAuth {
    /// A JWT in the `Authorization` header when one applies (`SUBSCRIBER_JWT` given, or
    /// private updates, which fall back to `JWT` or a minted subscriber token).
    Auto,
    /// Always send a JWT in `Authorization: Bearer`.
    Header,
    /// Always send a JWT in the `mercureAuthorization` cookie.
    Cookie,
    /// Anonymous subscribers.
    None,
}

/// Accepts Gatling's `true`/`false` and the usual variants.
fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        other => Err(format!("not a boolean: {other}")),
    }
}

/// `mercure-loadgen run`: one load run against one hub.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Full hub URL, as in the Gatling test. Several (repeat the flag, or separate with
    /// commas) for the nodes of a multi-node hub: subscriber g talks to node g mod N,
    /// publishes follow --publish-spread (see loadgen/README.md).
    #[arg(long, env = "HUB_URL", value_delimiter = ',', default_value = "http://127.0.0.1:3000/.well-known/mercure")]
    pub hub_url: Vec<String>,

    /// With several hub URLs: which node a publish goes to. `round-robin`: publish s on
    /// topic k to node (k + s) mod N, so consecutive publishes of a topic alternate
    /// nodes; `topic`: every publish on topic k to node k mod N.
    #[arg(long, value_enum, default_value_t = crate::nodes::PublishSpread::RoundRobin)]
    pub publish_spread: crate::nodes::PublishSpread,

    /// Publisher JWT; minted from --jwt-key when absent.
    #[arg(long, env = "JWT", hide_env_values = true)]
    pub jwt: Option<String>,

    /// Subscriber JWT; with private updates it falls back to JWT, then to a token minted
    /// from --subscriber-jwt-key.
    #[arg(long, env = "SUBSCRIBER_JWT", hide_env_values = true)]
    pub subscriber_jwt: Option<String>,

    /// HS256 key to mint the publisher JWT with (claim `publish: ["*"]`).
    #[arg(long, env = "MERCURE_PUBLISHER_JWT_KEY", hide_env_values = true,
          default_value = crate::jwt::DEMO_KEY)]
    pub jwt_key: String,

    /// HS256 key to mint the subscriber JWT with (claim `subscribe: ["*"]`); defaults
    /// to --jwt-key.
    #[arg(long, env = "MERCURE_SUBSCRIBER_JWT_KEY", hide_env_values = true)]
    pub subscriber_jwt_key: Option<String>,

    /// How subscribers present their JWT.
    #[arg(long, value_enum, default_value_t = SubscriberAuth::Auto)]
    pub subscriber_auth: SubscriberAuth,

    /// Share of the subscribers (0–1) that connect without any token even when the others
    /// present one: with private updates they are owed nothing, and any private update
    /// they receive is a leak (`unexpected`, which fails the verdict).
    #[arg(long, default_value_t = 0.0)]
    pub anonymous_share: f64,

    /// Subscribers connected before publishing starts (Gatling: at once; here ramped at
    /// --connect-rate).
    #[arg(long, env = "INITIAL_SUBSCRIBERS", default_value_t = 100)]
    pub initial_subscribers: u64,

    /// Additional subscribers per second at the start of the injection (Gatling default 2;
    /// ours 0: a constant population).
    #[arg(long, env = "SUBSCRIBERS_RATE_FROM", default_value_t = 0.0)]
    pub subscribers_rate_from: f64,

    /// Additional subscribers per second at the end of the injection (Gatling default 10;
    /// ours 0).
    #[arg(long, env = "SUBSCRIBERS_RATE_TO", default_value_t = 0.0)]
    pub subscribers_rate_to: f64,

    /// Publishes per second at the start (Gatling default 2).
    #[arg(long, env = "PUBLISHERS_RATE_FROM", default_value_t = 10.0)]
    pub publishers_rate_from: f64,

    /// Publishes per second at the end (Gatling default 20).
    #[arg(long, env = "PUBLISHERS_RATE_TO", default_value_t = 10.0)]
    pub publishers_rate_to: f64,

    /// Seconds of subscriber injection; publishers run for INJECTION_DURATION +
    /// CONNECTION_DURATION, as in Gatling (Gatling default 3600; ours 10).
    #[arg(long, env = "INJECTION_DURATION", default_value_t = 10.0)]
    pub injection_duration: f64,

    /// Seconds a subscriber stays connected; 0 = until the run ends (Gatling default 300).
    #[arg(long, env = "CONNECTION_DURATION", default_value_t = 0.0)]
    pub connection_duration: f64,

    /// Draw each subscriber's lifetime uniformly below CONNECTION_DURATION (Gatling
    /// default true; ours false).
    #[arg(long, env = "RANDOM_CONNECTION_DURATION", default_value = "false",
          value_parser = parse_bool, action = ArgAction::Set)]
    pub random_connection_duration: bool,

    /// Publish private updates (`private=on`); subscribers then get a JWT.
    #[arg(long, env = "PRIVATE_UPDATES", default_value = "false",
          value_parser = parse_bool, action = ArgAction::Set)]
    pub private_updates: bool,

    /// Publish duration in seconds, overriding INJECTION_DURATION + CONNECTION_DURATION.
    #[arg(long)]
    pub duration: Option<f64>,

    /// Initial connection ramp, connections per second over all workers (0 = at once).
    /// 2000/s keeps a hub's accept queue (often 128 deep) from overflowing on 2 cores.
    #[arg(long, default_value_t = 2000.0)]
    pub connect_rate: f64,

    /// Number of topics; publishes pick one with Zipf popularity.
    #[arg(long, default_value_t = 1)]
    pub topics: u32,

    /// Zipf exponent of topic popularity (0 = uniform).
    #[arg(long, default_value_t = 1.0)]
    pub zipf_s: f64,

    /// Topic IRI prefix: topic k is `{base}/{k}`.
    #[arg(long, default_value = "https://example.com/loadgen")]
    pub topic_base: String,

    /// Subscriber selector: one exact topic each (round-robin), the URI template
    /// `{base}/{id}` (in 1.0: the URL pattern `{base}/:id`), or `*`.
    #[arg(long, value_enum, default_value_t = SelectorKind::Exact)]
    pub selector: SelectorKind,

    /// Protocol dialect: `0.x` (`topic=`, the `mercure` claim) or `1.0` (`match=` /
    /// `match_urlpattern=`, RFC 9068 access tokens with `authorization_details`, minted with
    /// `aud` = each hub URL's origin + `/.well-known/mercure` unless `--audience` says).
    #[arg(long, value_enum, default_value_t = crate::topics::Dialect::Legacy)]
    pub dialect: crate::topics::Dialect,

    /// 1.0 access tokens' `aud` (repeat for several); default: derived from `--hub-url`.
    #[arg(long)]
    pub audience: Vec<String>,

    /// Minimum size of each update's `data`, bytes.
    #[arg(long, default_value_t = 64)]
    pub payload_size: usize,

    /// Goose users dispatching publishes. Each due publish is sent on a task of its own
    /// (open model), so this does not limit how many are in flight (--max-in-flight does);
    /// a few users keep dispatch on time when the timer or the CPU is late.
    #[arg(long, default_value_t = 4)]
    pub publishers: usize,

    /// How publishes are placed on the rate ramp: `uniform` (evenly spaced) or `poisson`
    /// (a Poisson process with the same rate and count: exponential gaps, bursts).
    #[arg(long, value_enum, default_value_t = crate::arrivals::Arrivals::Uniform)]
    pub arrivals: crate::arrivals::Arrivals,

    /// Most publish POSTs outstanding at once. A due publish that finds none free waits,
    /// is counted (`publish.cap_waits`) and fails the verdict: the load was no longer
    /// offered as scheduled.
    #[arg(long, default_value_t = 1024)]
    pub max_in_flight: usize,

    /// Goose hatch rate: publishers started per second (default: all within 10 ms).
    #[arg(long)]
    pub hatch_rate: Option<String>,

    /// Extra goose flags, whitespace-separated (e.g. "--request-log pub.log").
    #[arg(long, allow_hyphen_values = true)]
    pub goose_args: Option<String>,

    /// Publish request timeout, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub publish_timeout: f64,

    /// Seconds to wait after the last publish before closing subscribers; also the grace
    /// for subscribers closed by their lifetime (see the accounting rules).
    #[arg(long, default_value_t = 2.0)]
    pub settle: f64,

    /// What a subscriber does when its lifetime ends.
    #[arg(long, value_enum, default_value_t = EndAction::Close)]
    pub lifetime_end: EndAction,

    /// What a subscriber does when the hub ends its stream.
    #[arg(long, value_enum, default_value_t = DropAction::Resume)]
    pub on_drop: DropAction,

    /// Reconnection delay when the hub sent no `retry:`, ms.
    #[arg(long, default_value_t = 250)]
    pub reconnect_delay_ms: u64,

    /// Consecutive failed connection attempts before a subscriber gives up.
    #[arg(long, default_value_t = 3)]
    pub connect_retries: u32,

    /// Connect + response headers timeout, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub connect_timeout: f64,

    /// Worker processes (default: enough for --max-conns-per-worker, and 2 from 2,000
    /// subscribers up).
    #[arg(long)]
    pub workers: Option<u32>,

    /// Most subscribers one worker process holds (open-file cap is per process).
    #[arg(long, default_value_t = 9000)]
    pub max_conns_per_worker: u64,

    /// Source addresses for workers: `auto` (127.0.0.2, .3, … when the hub is on IPv4
    /// loopback, else the system's choice), `none`, or a comma-separated list.
    #[arg(long, default_value = "auto")]
    pub source_addrs: String,

    /// Slow-consumer model: each connection stops reading after this many events…
    #[arg(long)]
    pub stall_after: Option<u64>,

    /// …for this many milliseconds (once per connection), so the hub's queue for it
    /// fills up; a hub that evicts it shows up as hub drops and loss.
    #[arg(long, default_value_t = 5000)]
    pub stall_ms: u64,

    /// Scheduling policy of the worker processes: `batch` (SCHED_BATCH: a delivery never
    /// preempts the hub on a shared core) or `normal`. See loadgen/README.md.
    #[arg(long, value_enum, default_value_t = crate::os_priority::WorkerSched::Batch)]
    pub worker_sched: crate::os_priority::WorkerSched,

    /// With `--source-addrs auto`: worker w binds 127.0.0.(base + w). The capacity sweep
    /// moves the base per point, so a point never reuses source ports still in
    /// TIME_WAIT from the previous one (that showed up as connect errors at 19k).
    #[arg(long, default_value_t = 2)]
    pub source_base: u8,

    /// Hub process id, to sample RSS, CPU and fds from /proc. Several (repeat, or
    /// comma-separated) for a multi-node hub: the report sums them and lists each.
    #[arg(long, value_delimiter = ',')]
    pub hub_pid: Vec<u32>,

    /// Hub Prometheus metrics URL, sampled when --hub-pid is not given. Several like
    /// --hub-pid.
    #[arg(long, value_delimiter = ',')]
    pub hub_metrics_url: Vec<String>,

    /// JSON report path; goose's reports go beside it (`*.goose.html`, `*.goose.json`).
    #[arg(long, default_value = "loadgen-report.json")]
    pub report: PathBuf,

    /// No live progress line.
    #[arg(long)]
    pub no_progress: bool,

    /// Seed for topic choice and random lifetimes (default: from the clock).
    #[arg(long)]
    pub seed: Option<u64>,

    /// Latency SLO in ms: p99 of the latency from each publish's scheduled time must be
    /// under it.
    #[arg(long, default_value_t = 100.0)]
    pub slo_ms: f64,

    /// Shortest random lifetime, seconds: with RANDOM_CONNECTION_DURATION lifetimes are
    /// drawn in `[this, CONNECTION_DURATION)` (default 0, as Gatling). A soak sets it so
    /// no subscriber reconnects many times a second.
    #[arg(long, default_value_t = 0.0)]
    pub min_connection_duration: f64,

    /// Share of the subscribers (0–1) whose tokens expire: each connection gets a token
    /// with an `exp` between --expiring-min and --expiring-max seconds ahead; the hub
    /// ends the stream then and the subscriber reconnects with a fresh token (and
    /// Last-Event-ID with --on-drop resume). Minted from the subscriber key.
    #[arg(long, default_value_t = 0.0)]
    pub expiring_share: f64,

    /// Shortest life of an expiring token, seconds.
    #[arg(long, default_value_t = 30.0)]
    pub expiring_min: f64,

    /// Longest life of an expiring token, seconds.
    #[arg(long, default_value_t = 120.0)]
    pub expiring_max: f64,

    /// Stuck consumers held open besides the subscribers: they subscribe to `*` with a
    /// tiny receive buffer and never read for --stuck-hold seconds, so the hub must evict
    /// them; then they check the stream ended and start over. Not part of the loss
    /// accounting.
    #[arg(long, default_value_t = 0)]
    pub stuck: u64,

    /// Seconds a stuck consumer does not read.
    #[arg(long, default_value_t = 60.0)]
    pub stuck_hold: f64,

    /// Seconds a stuck consumer then reads to see whether the hub ended its stream.
    #[arg(long, default_value_t = 10.0)]
    pub stuck_drain: f64,

    /// Soak mode: sample the hub every --sample-every seconds into this time series
    /// (JSON lines: RSS, fds, CPU, every `mercure_*` metric, the loadgen's truth), check
    /// the hub's gauges against the truth and RSS drift after --warmup, and base the
    /// verdict (and exit code) on loss, gauges and RSS drift. See loadgen/README.md.
    #[arg(long)]
    pub timeseries: Option<PathBuf>,

    /// Soak sampling period, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub sample_every: f64,

    /// The hub's Prometheus metrics, for its gauges (default: each hub URL's origin +
    /// `/metrics`). With several hub URLs: one (a hub serving every URL) or one per URL.
    /// Nodes with the same gauges URL are one hub, checked against their subscribers
    /// together.
    #[arg(long, value_delimiter = ',')]
    pub hub_gauges_url: Vec<String>,

    /// Soak warm-up, seconds of the publish phase not used for the RSS drift check
    /// (default: a sixth of the publish duration).
    #[arg(long)]
    pub warmup: Option<f64>,

    /// Largest RSS growth allowed after the warm-up (0.05 = 5 %): median of the last
    /// quarter of the samples against the median of the first quarter.
    #[arg(long, default_value_t = 0.05)]
    pub rss_drift_max: f64,

    /// Seconds the hub has, once every subscriber closed, to bring `mercure_subscribers`
    /// back to 0 (and `mercure_connections` to at most the scrape's own).
    #[arg(long, default_value_t = 30.0)]
    pub gauge_settle_timeout: f64,
}

impl RunArgs {
    /// The hub URLs (nodes), in order; never empty after parsing (clap's default).
    pub fn hub_urls(&self) -> Vec<String> {
        crate::nodes::split_urls(&self.hub_url)
    }

    /// How minted tokens are shaped: 0.x claims, or 1.0 access tokens for the hubs' resource
    /// identifiers (as a hub derives them from `Host`: origin + `/.well-known/mercure`).
    pub fn token_style(&self) -> crate::jwt::Style {
        if self.dialect == crate::topics::Dialect::Legacy {
            return crate::jwt::Style::Legacy;
        }
        let mut audience = self.audience.clone();
        if audience.is_empty() {
            for u in self.hub_urls() {
                if let Ok(url) = url::Url::parse(&u) {
                    let id = format!("{}/.well-known/mercure", url.origin().ascii_serialization());
                    if !audience.contains(&id) {
                        audience.push(id);
                    }
                }
            }
        }
        crate::jwt::Style::Access { audience }
    }

    /// Publish duration, seconds.
    pub fn publish_seconds(&self) -> f64 {
        self.duration.unwrap_or(self.injection_duration + self.connection_duration).max(0.0)
    }

    /// How subscribers authenticate, if at all: `(jwt, via)`.
    pub fn subscriber_credentials(&self) -> Result<Option<(String, AuthVia)>, String> {
        let via = match self.subscriber_auth {
            SubscriberAuth::None => return Ok(None),
            SubscriberAuth::Cookie => AuthVia::Cookie,
            SubscriberAuth::Auto | SubscriberAuth::Header => AuthVia::Header,
        };
        let needed =
            self.subscriber_auth != SubscriberAuth::Auto || self.subscriber_jwt.is_some() || self.private_updates;
        if !needed {
            return Ok(None);
        }
        let jwt = match (&self.subscriber_jwt, &self.jwt) {
            (Some(s), _) => s.clone(),
            (None, Some(j)) if self.private_updates => j.clone(),
            _ => crate::jwt::subscriber_in(
                &self.token_style(),
                self.subscriber_jwt_key.as_deref().unwrap_or(&self.jwt_key),
                None,
            )?,
        };
        Ok(Some((jwt, via)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        run: RunArgs,
    }

    #[test]
    fn gatling_semantics() {
        let t = T::parse_from([
            "x",
            "--injection-duration",
            "5",
            "--connection-duration",
            "3",
            "--private-updates",
            "true",
            "--jwt",
            "PUB",
        ]);
        assert_eq!(t.run.publish_seconds(), 8.0);
        // Private updates: subscribers fall back to JWT, in a header.
        let c = t.run.subscriber_credentials().ok().flatten();
        assert_eq!(c, Some(("PUB".to_string(), AuthVia::Header)));
    }

    #[test]
    fn several_hub_urls_repeated_or_comma_separated() {
        let one = T::parse_from(["x", "--hub-url", "http://a:1/m"]);
        assert_eq!(one.run.hub_urls(), ["http://a:1/m"]);
        let t = T::parse_from(["x", "--hub-url", "http://a:1/m,http://b:2/m", "--hub-url", "http://a:1/m"]);
        assert_eq!(t.run.hub_urls(), ["http://a:1/m", "http://b:2/m", "http://a:1/m"]);
        let p = T::parse_from(["x", "--hub-pid", "10,11", "--hub-pid", "12"]);
        assert_eq!(p.run.hub_pid, [10, 11, 12]);
        assert_eq!(p.run.publish_spread, crate::nodes::PublishSpread::RoundRobin);
    }

    #[test]
    fn public_runs_are_anonymous_by_default() {
        let t = T::parse_from(["x"]);
        assert_eq!(t.run.subscriber_credentials(), Ok(None));
        assert!(parse_bool("TRUE").unwrap_or(false));
        assert!(parse_bool("maybe").is_err());
    }
}
