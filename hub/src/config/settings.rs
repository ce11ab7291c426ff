//! The validated settings of a hub, and how each directive maps onto them.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use crate::auth::jwt::parse_algorithm;
use crate::auth::{JwksLimits, JwksSpec, KeySpec};
use crate::history::HistorySpec;
use crate::queue::QueueLimits;
use crate::topic::TemplateLimits;

use super::directives::Directive;
use crate::duration::parse_duration;

/// Every limit of the hub, with its unit and default. All configurable (see the README).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Simultaneous connections; past it new ones get 503 + `Retry-After`. `None`: the
    /// open-file limit minus 64 (kept for history files, logs and listeners).
    pub max_connections: Option<usize>,
    /// Simultaneous subscriptions, HTTP/1 and HTTP/2 together; past it a new subscription gets
    /// 503 + `Retry-After`. Needed because one HTTP/2 connection carries up to
    /// `max_concurrent_streams` subscriptions, so `max_connections` alone does not bound them.
    /// `None`: the connection ceiling (one subscription per connection's worth of fds).
    pub max_subscribers: Option<usize>,
    /// Concurrent streams a client may open on one HTTP/2 connection (announced in the
    /// connection's SETTINGS; the client queues the rest). Default 100, RFC 9113's recommended
    /// minimum and what browsers and Go's server use (hyper's own default is 200).
    pub max_concurrent_streams: u32,
    /// Request body bytes (413 past it). Default 1 MiB.
    pub max_body_size: usize,
    /// Topics in one publish or subscription (400 past it). Default 100.
    pub max_topics: usize,
    /// Bytes in one topic, id or event type (400 past it). Default 2048.
    pub max_topic_length: usize,
    /// Events queued for one subscriber before eviction. Default 1024.
    pub queue_events: usize,
    /// Bytes queued for one subscriber before eviction. Default 4 MiB.
    pub queue_bytes: usize,
    /// How long a queue may stay undrained before eviction; zero disables. Default 5 s.
    pub dispatch_timeout: Duration,
    /// Time allowed to send a request's headers. Default 10 s.
    pub header_read_timeout: Duration,
    /// Time allowed for a publish's whole body to arrive once its headers are in; past it the
    /// hub answers 408 and closes the connection, so a publisher trickling its body cannot
    /// hold a connection (and its buffers) forever. Zero disables. Default 10 s: a 1 MiB body
    /// (`max_body_size`) needs only ~100 KiB/s to make it.
    pub body_read_timeout: Duration,
    /// Idle time of a connection before TCP keepalive probes start (then every third of it, at
    /// least 1 s, 3 probes); zero disables. Default 30 s: a dead peer on a silent stream is
    /// found within about a minute, and a probe every 10 s costs nothing next to a heartbeat.
    /// Many NATs and load balancers drop flows idle for 60 s or more; 30 s keeps them alive.
    pub tcp_keepalive: Duration,
    /// `TCP_USER_TIMEOUT`: how long sent data may stay unacknowledged, or queued data
    /// untransmitted behind a zero window, before the kernel ends the connection; zero leaves
    /// the system default (~15 min of retransmissions). Default 30 s: long enough for a mobile
    /// handover or a Wi-Fi roam, short enough that a vanished subscriber is gone in well under
    /// a minute instead of fifteen. (A peer that stops reading while updates pile up is
    /// evicted sooner by `dispatch_timeout`.)
    pub tcp_user_timeout: Duration,
    /// Time allowed for streams to finish at shutdown before connections are cut. Default 5 s.
    pub shutdown_grace: Duration,
    /// Simultaneous connections to the admin listener (probes, scrapes), apart from
    /// `max_connections`; more are closed at once. Default 64.
    pub admin_max_connections: usize,
    /// Accepted tokens remembered per role, so a repeated token skips the signature check
    /// (`exp` is still enforced); 0 disables. Default 4096.
    pub jwt_cache_entries: usize,
    /// Distinct URI templates subscribed to at once, hub-wide (400 past it). Each costs up to
    /// ~80 KiB with its regex caches warm, so the default bounds that at ~80 MiB. Default 1000.
    pub max_templates: usize,
    /// Distinct URI templates in one subscription (400 past it). Default 16.
    pub max_templates_per_subscription: usize,
    /// Bytes, expressions and variables of one URI template (400 past them). Defaults 1024,
    /// 10 and 20.
    pub template: TemplateLimits,
    /// JWK Set refreshing and its bounds (`jwks_refresh_interval`, `jwks_min_refresh_interval`,
    /// `jwks_fetch_timeout`, `jwks_max_size`); see `auth::jwks`.
    pub jwks: JwksLimits,
}

/// The queue's defaults have one source: `queue::QueueLimits::DEFAULT`.
const QUEUE: QueueLimits = QueueLimits::DEFAULT;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: None,
            max_subscribers: None,
            max_concurrent_streams: 100,
            max_body_size: 1 << 20,
            max_topics: 100,
            max_topic_length: 2048,
            queue_events: QUEUE.max_events,
            queue_bytes: QUEUE.max_bytes,
            dispatch_timeout: QUEUE.stall_timeout,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(5),
            admin_max_connections: 64,
            tcp_keepalive: Duration::from_secs(30),
            tcp_user_timeout: Duration::from_secs(30),
            jwt_cache_entries: 4096,
            max_templates: 1_000,
            max_templates_per_subscription: 16,
            template: TemplateLimits::default(),
            jwks: JwksLimits::default(),
        }
    }
}

/// One address the public listener binds (`SERVER_NAME` may give several).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenAddr {
    /// `:PORT`: every interface, IPv4 and IPv6 (one dual-stack socket, see `server::listen`).
    AnyInterface(u16),
    /// `HOST:PORT` or `http://HOST:PORT`: exactly this address.
    Socket(SocketAddr),
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::AnyInterface(port) => write!(f, ":{port}"),
            ListenAddr::Socket(addr) => write!(f, "{addr}"),
        }
    }
}

/// The certificate chain and private key files (PEM) of the public listeners' TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

/// Where the admin listener (health probes and `/metrics`) binds, like Caddy's admin API.
pub const DEFAULT_ADMIN: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 2019);

/// The keys of one `issuer ID { … }` block (Go hub 1.0).
#[derive(Debug, Clone, Default)]
pub struct IssuerKeys {
    pub id: String,
    pub publisher_key: Option<KeySpec>,
    pub subscriber_key: Option<KeySpec>,
    pub publisher_jwks: Option<crate::auth::JwksSpec>,
    pub subscriber_jwks: Option<crate::auth::JwksSpec>,
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// The public listener's addresses, at least one, no duplicates.
    pub listen: Vec<ListenAddr>,
    /// The admin listener (`admin` directive): `None` when `admin off`. A port already taken at
    /// start-up is logged and the hub serves without it.
    pub admin: Option<SocketAddr>,
    /// TLS on every public listener (`tls CERT KEY`, `MERCURE_TLS_CERT_FILE`/`_KEY_FILE`).
    pub tls: Option<TlsFiles>,
    /// `SERVER_NAME` asked for `https://`: start-up fails unless `tls` is set.
    pub wants_tls: bool,
    /// The hub's name (`name` directive): health is also served at
    /// `/mercure/health/{name}/live` and `…/ready`, as the Go hub does. Default `default`.
    pub name: String,
    pub publisher_key: Option<KeySpec>,
    pub subscriber_key: Option<KeySpec>,
    /// JWK Sets (`publisher_jwks_url`, `subscriber_jwks_url`, an issuer's `jwks_uri`): for its
    /// role, a set takes precedence over a static key, as in the Go hub.
    pub publisher_jwks: Option<JwksSpec>,
    pub subscriber_jwks: Option<JwksSpec>,
    pub anonymous: bool,
    pub cors_origins: Vec<String>,
    pub publish_origins: Vec<String>,
    pub cookie_name: String,
    /// `None`: no heartbeats.
    pub heartbeat: Option<Duration>,
    /// `None`: streams live until the client or the token ends them.
    pub write_timeout: Option<Duration>,
    pub subscriptions: bool,
    /// The history transport (`transport`/`transport_url`).
    pub transport: HistorySpec,
    pub ui: bool,
    pub demo: bool,
    pub limits: Limits,
    /// Mercure 1.0: the hub's OAuth resource identifier, required in access tokens' `aud`
    /// (`resource_identifier`). `None`: derived per request from its host (see
    /// `server::dialect`), restricted to `public_urls` when that is set.
    pub resource_identifier: Option<String>,
    /// Origins this hub is reached through (`public_urls`): the hosts a resource identifier may
    /// be derived from; the first one is also the base of relative URL patterns and topics.
    pub public_urls: Vec<String>,
    /// Issuers whose access tokens are accepted (the `issuer` blocks' ids); empty: any.
    pub trusted_issuers: Vec<String>,
    /// Each `issuer` block's own keys: a token whose `iss` names one is verified with that
    /// issuer's keys (see `server::State`); other tokens with the role's keys.
    pub issuer_keys: Vec<IssuerKeys>,
    /// Authorization servers listed in the protected-resource metadata
    /// (`issuer … { authorization_server }`).
    pub authorization_servers: Vec<String>,
    /// Whether the 0.x dialect is served beside 1.0 (`legacy_dialect on|off`; default on).
    pub legacy_dialect: bool,
    /// Whether publishes write to idle HTTP/1 subscribers' sockets themselves
    /// (`direct_writes on|off`; default on).
    pub direct_writes: bool,
    /// Directives recognized but not active in this version, with the reason, to log once at
    /// start-up.
    pub inactive: Vec<(String, &'static str)>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: vec![ListenAddr::Socket(SocketAddr::from(([127, 0, 0, 1], 3000)))],
            admin: Some(DEFAULT_ADMIN),
            tls: None,
            wants_tls: false,
            name: "default".into(),
            publisher_key: None,
            subscriber_key: None,
            publisher_jwks: None,
            subscriber_jwks: None,
            anonymous: false,
            cors_origins: Vec::new(),
            publish_origins: Vec::new(),
            cookie_name: "mercureAuthorization".into(),
            heartbeat: Some(Duration::from_secs(40)),
            write_timeout: Some(Duration::from_secs(600)),
            subscriptions: false,
            transport: HistorySpec::default(),
            ui: false,
            demo: false,
            limits: Limits::default(),
            resource_identifier: None,
            public_urls: Vec::new(),
            trusted_issuers: Vec::new(),
            issuer_keys: Vec::new(),
            authorization_servers: Vec::new(),
            legacy_dialect: true,
            direct_writes: true,
            inactive: Vec::new(),
        }
    }
}

/// `SERVER_NAME`: one address or several, separated by commas and/or spaces as in a Caddy
/// site address list. Each is `:PORT` (every interface, IPv4 and IPv6, as Caddy reads it),
/// `HOST:PORT`, or `http://HOST[:PORT]`. A host name is resolved and every address it resolves
/// to is bound (`localhost:3000` → `127.0.0.1:3000` and `[::1]:3000`). Duplicates are dropped.
pub fn parse_server_name(name: &str) -> Result<Vec<ListenAddr>, String> {
    let mut out = Vec::new();
    for one in name.split(|c: char| c == ',' || c.is_whitespace()).filter(|s| !s.is_empty()) {
        for addr in parse_one_address(one).map_err(|e| format!("SERVER_NAME {name:?}: {e}"))? {
            if !out.contains(&addr) {
                out.push(addr);
            }
        }
    }
    if out.is_empty() {
        return Err(format!("SERVER_NAME {name:?}: no address"));
    }
    Ok(out)
}

fn parse_one_address(name: &str) -> Result<Vec<ListenAddr>, String> {
    let bare = name.strip_prefix("http://").or_else(|| name.strip_prefix("https://")).unwrap_or(name);
    let bare = bare.trim_end_matches('/');
    if let Some(port) = bare.strip_prefix(':') {
        let port = port.parse::<u16>().map_err(|_| format!("{name:?}: {port:?} is not a port"))?;
        return Ok(vec![ListenAddr::AnyInterface(port)]);
    }
    let with_port = if bare.rsplit_once(':').is_some_and(|(h, p)| p.parse::<u16>().is_ok() && !h.ends_with(':')) {
        bare.to_owned()
    } else if name.starts_with("http://") {
        format!("{bare}:80")
    } else if name.starts_with("https://") {
        format!("{bare}:443")
    } else {
        return Err(format!("{name:?}: expected :PORT, HOST:PORT or http://HOST:PORT"));
    };
    let addrs: Vec<ListenAddr> =
        with_port.to_socket_addrs().map_err(|e| format!("{name:?}: {e}"))?.map(ListenAddr::Socket).collect();
    if addrs.is_empty() {
        return Err(format!("{name:?}: resolves to no address"));
    }
    Ok(addrs)
}

/// `admin ADDRESS` / `admin off` (also `--admin`): the admin listener's address, or none.
pub fn parse_admin(value: &str) -> Result<Option<SocketAddr>, String> {
    let v = value.trim();
    if v.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let full = if v.starts_with(':') { format!("127.0.0.1{v}") } else { v.to_owned() };
    let full = full.strip_prefix("http://").unwrap_or(&full).trim_end_matches('/').to_owned();
    full.to_socket_addrs()
        .map_err(|e| format!("admin {value:?}: {e} (expected HOST:PORT, :PORT or off)"))?
        .next()
        .map(Some)
        .ok_or_else(|| format!("admin {value:?}: resolves to no address"))
}

/// A byte size as Caddy reads it (`max_request_body_size`): a number, optionally followed by a
/// unit: `B`, `KB`/`MB`/`GB` (powers of 1000), `KiB`/`MiB`/`GiB` (powers of 1024); case and a
/// space before the unit do not matter.
pub fn parse_size(value: &str) -> Result<u64, String> {
    let v = value.trim();
    let split = v.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(v.len());
    let (number, unit) = (&v[..split], v[split..].trim());
    let number: f64 = number.parse().map_err(|_| format!("{value:?} is not a size"))?;
    let scale: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "ki" | "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mi" | "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gi" | "gib" => 1 << 30,
        _ => return Err(format!("{value:?}: unknown unit {unit:?}")),
    };
    let bytes = number * scale as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(format!("{value:?} is out of range"));
    }
    Ok(bytes as u64)
}

/// `transport NAME { path P; size N; … }` (the Go hub's block form) → `NAME://P?size=N&…`.
fn transport_block_url(d: &Directive) -> Result<String, String> {
    let name = match d.args.as_slice() {
        [name] => name.as_str(),
        _ => return Err("transport takes one name, e.g. `transport local` or `transport bolt { path x.db }`".into()),
    };
    let mut path = if name == "local" { "local".to_owned() } else { String::new() };
    let mut query = form_urlencoded::Serializer::new(String::new());
    for opt in &d.block {
        let value = one_arg(opt)?;
        match opt.name.as_str() {
            "path" => path = value.to_owned(),
            key => {
                query.append_pair(key, value);
            }
        }
    }
    if path.is_empty() {
        path = if name == "bolt" { "mercure.db".into() } else { "mercure.redb".into() };
    }
    let query = query.finish();
    Ok(if query.is_empty() { format!("{name}://{path}") } else { format!("{name}://{path}?{query}") })
}

pub(super) fn one_arg(d: &Directive) -> Result<&str, String> {
    match d.args.as_slice() {
        [a] => Ok(a),
        _ => Err(format!("{} takes exactly one argument", d.name)),
    }
}

pub(super) fn no_args(d: &Directive) -> Result<(), String> {
    if d.args.is_empty() { Ok(()) } else { Err(format!("{} takes no argument", d.name)) }
}

fn count(d: &Directive) -> Result<usize, String> {
    let a = one_arg(d)?;
    count_or_zero(d).ok().filter(|n| *n > 0).ok_or_else(|| format!("{}: {a:?} is not a positive integer", d.name))
}

/// A count where 0 means "off".
fn count_or_zero(d: &Directive) -> Result<usize, String> {
    let a = one_arg(d)?;
    a.parse::<usize>().map_err(|_| format!("{}: {a:?} is not a non-negative integer", d.name))
}

/// A positive stream count that fits HTTP/2's 31-bit stream space.
fn streams(d: &Directive) -> Result<u32, String> {
    let n = count(d)?;
    u32::try_from(n).ok().filter(|n| *n < 1 << 31).ok_or_else(|| format!("{}: {n} is more than 2^31 - 1", d.name))
}

fn duration(d: &Directive) -> Result<Duration, String> {
    parse_duration(one_arg(d)?).map_err(|e| format!("{}: {e}", d.name))
}

pub(super) fn key_spec(d: &Directive) -> Result<KeySpec, String> {
    match d.args.as_slice() {
        [key] => Ok(KeySpec { key: key.clone(), algorithm: jsonwebtoken::Algorithm::HS256 }),
        [key, alg] => Ok(KeySpec { key: key.clone(), algorithm: parse_algorithm(alg)? }),
        _ => Err(format!("{} takes a key and an optional algorithm", d.name)),
    }
}

/// `*_jwks_url URL [ALG…]` / `jwks_uri URL [ALG…]`: a JWK Set and, optionally, the only
/// algorithms its keys may be used with.
pub(super) fn jwks_spec(d: &Directive) -> Result<JwksSpec, String> {
    let (url, algs) = d.args.split_first().ok_or_else(|| format!("{} takes a URL and optional algorithms", d.name))?;
    let algorithms = algs.iter().map(|a| parse_algorithm(a)).collect::<Result<Vec<_>, _>>()?;
    JwksSpec::new(url, algorithms).map_err(|e| format!("{}: {e}", d.name))
}

fn size(d: &Directive) -> Result<usize, String> {
    let n = parse_size(one_arg(d)?).map_err(|e| format!("{}: {e}", d.name))?;
    usize::try_from(n).ok().filter(|n| *n > 0).ok_or_else(|| format!("{}: must be positive", d.name))
}

impl Settings {
    pub fn apply_directive(&mut self, d: &Directive) -> Result<(), String> {
        if !d.block.is_empty() && d.name != "transport" && d.name != "issuer" {
            return Err(format!("{} takes no block", d.name));
        }
        match d.name.as_str() {
            "anonymous" => {
                no_args(d)?;
                self.anonymous = true;
            }
            "subscriptions" => {
                no_args(d)?;
                self.subscriptions = true;
            }
            // `debugger` is the Go hub 1.0's name for `ui`, `playground` for `demo` (the page is
            // served at `/` here, not under `/.well-known/mercure/debug/`).
            "ui" | "debugger" => {
                no_args(d)?;
                self.ui = true;
            }
            "demo" | "playground" => {
                no_args(d)?;
                self.ui = true;
                self.demo = true;
            }
            "cors_origins" | "publish_origins" => {
                if d.args.is_empty() {
                    return Err(format!("{} needs at least one origin", d.name));
                }
                let list = if d.name == "cors_origins" { &mut self.cors_origins } else { &mut self.publish_origins };
                list.extend(d.args.iter().cloned());
            }
            "cookie_name" => self.cookie_name = one_arg(d)?.to_owned(),
            "heartbeat" => self.heartbeat = Some(duration(d)?).filter(|v| !v.is_zero()),
            "write_timeout" => self.write_timeout = Some(duration(d)?).filter(|v| !v.is_zero()),
            "dispatch_timeout" => self.limits.dispatch_timeout = duration(d)?,
            "transport_url" => self.transport = HistorySpec::parse(one_arg(d)?)?,
            "transport" if d.args.first().is_some_and(|a| a == "redis") => {
                self.transport = HistorySpec::parse(&crate::cluster::spec::block_url(d)?)?
            }
            "transport" => self.transport = HistorySpec::parse(&transport_block_url(d)?)?,
            "publisher_jwt" => self.publisher_key = Some(key_spec(d)?),
            "subscriber_jwt" => self.subscriber_key = Some(key_spec(d)?),
            "publisher_jwks_url" => self.publisher_jwks = Some(jwks_spec(d)?),
            "subscriber_jwks_url" => self.subscriber_jwks = Some(jwks_spec(d)?),
            "jwks_refresh_interval" => self.limits.jwks.refresh_interval = duration(d)?,
            "jwks_min_refresh_interval" => self.limits.jwks.min_refresh_interval = duration(d)?,
            "jwks_fetch_timeout" => self.limits.jwks.fetch_timeout = duration(d)?,
            "jwks_max_size" => self.limits.jwks.max_bytes = size(d)?,
            "max_connections" => self.limits.max_connections = Some(count(d)?),
            "max_subscribers" => self.limits.max_subscribers = Some(count(d)?),
            "max_concurrent_streams" => self.limits.max_concurrent_streams = streams(d)?,
            "max_body_size" => self.limits.max_body_size = count(d)?,
            "max_topics" => self.limits.max_topics = count(d)?,
            "max_topic_length" => self.limits.max_topic_length = count(d)?,
            "subscriber_queue_events" => self.limits.queue_events = count(d)?,
            "subscriber_queue_bytes" => self.limits.queue_bytes = count(d)?,
            "header_read_timeout" => self.limits.header_read_timeout = duration(d)?,
            "body_read_timeout" => self.limits.body_read_timeout = duration(d)?,
            "shutdown_grace" => self.limits.shutdown_grace = duration(d)?,
            "tcp_keepalive" => self.limits.tcp_keepalive = duration(d)?,
            "tcp_user_timeout" => self.limits.tcp_user_timeout = duration(d)?,
            "jwt_cache_entries" => self.limits.jwt_cache_entries = count_or_zero(d)?,
            "max_templates" => self.limits.max_templates = count(d)?,
            "max_templates_per_subscription" => self.limits.max_templates_per_subscription = count(d)?,
            "max_template_length" => self.limits.template.max_length = count(d)?,
            "max_template_expressions" => self.limits.template.max_expressions = count(d)?,
            "max_template_variables" => self.limits.template.max_variables = count(d)?,
            "admin" => self.admin = parse_admin(one_arg(d)?)?,
            "tls" => match d.args.as_slice() {
                [cert, key] => self.tls = Some(TlsFiles { cert: cert.into(), key: key.into() }),
                _ => return Err("tls takes a certificate file and a key file: `tls CERT KEY`".into()),
            },
            "name" => self.name = one_arg(d)?.to_owned(),
            "admin_max_connections" => self.limits.admin_max_connections = count(d)?,
            "max_request_body_size" => match parse_size(one_arg(d)?).map_err(|e| format!("{}: {e}", d.name))? {
                // The Go hub's 0 hands the bound to a proxy; this hub always keeps one.
                0 => self.inactive.push((d.name.clone(), super::go_compat::INACTIVE_BODY_SIZE_ZERO)),
                n => self.limits.max_body_size = usize::try_from(n).unwrap_or(usize::MAX),
            },
            "issuer" => self.apply_issuer(d)?,
            "resource_identifier" => self.resource_identifier = Some(one_arg(d)?.to_owned()),
            "public_urls" | "public_url" => {
                if d.args.is_empty() {
                    return Err(format!("{} needs at least one URL", d.name));
                }
                for u in &d.args {
                    let parsed = url::Url::parse(u).map_err(|e| format!("{}: {u:?}: {e}", d.name))?;
                    if parsed.host_str().is_none() {
                        return Err(format!("{}: {u:?} has no host", d.name));
                    }
                    self.public_urls.push(u.trim_end_matches('/').to_owned());
                }
            }
            "legacy_dialect" => {
                self.legacy_dialect = match one_arg(d)? {
                    "on" | "true" => true,
                    "off" | "false" => false,
                    other => return Err(format!("legacy_dialect takes on or off, not {other:?}")),
                }
            }
            "direct_writes" => {
                self.direct_writes = match one_arg(d)? {
                    "on" | "true" => true,
                    "off" | "false" => false,
                    other => return Err(format!("direct_writes takes on or off, not {other:?}")),
                }
            }
            // The Go hub 1.0 turns its 0.x compatibility on with `protocol_version_compatibility
            // 8` (and 0.x knew `7`); here 0.x is on by default, and this says so explicitly.
            "protocol_version_compatibility" => match one_arg(d)? {
                "7" | "8" => self.legacy_dialect = true,
                other => return Err(format!("protocol_version_compatibility: unsupported version {other:?}")),
            },
            // Go hub directives this hub accepts but does not act on: said once at start-up.
            name => match super::go_compat::inactive_reason(name) {
                Some(reason) => self.inactive.push((d.name.clone(), reason)),
                None => return Err(format!("unknown directive {name:?}")),
            },
        }
        Ok(())
    }
}

impl Settings {
    /// What relative URL patterns and topics are resolved against: the first public URL's
    /// hub path, else `https://localhost/.well-known/mercure`.
    pub fn pattern_base(&self) -> url::Url {
        self.public_urls
            .first()
            .and_then(|u| url::Url::parse(&format!("{u}/.well-known/mercure")).ok())
            .unwrap_or_else(|| url::Url::parse(crate::topic::DEFAULT_BASE).expect("DEFAULT_BASE is a URL"))
    }
}

impl Settings {
    /// Keys from the environment (they override `publisher_jwt`/`subscriber_jwt` directives).
    pub fn set_keys(
        &mut self,
        pub_key: Option<&str>,
        pub_alg: Option<&str>,
        sub_key: Option<&str>,
        sub_alg: Option<&str>,
    ) -> Result<(), String> {
        let alg = |a: Option<&str>| a.filter(|a| !a.is_empty()).map(parse_algorithm).transpose();
        let (pub_alg, sub_alg) = (alg(pub_alg)?, alg(sub_alg)?);
        if let Some(k) = pub_key.filter(|k| !k.is_empty()) {
            self.publisher_key =
                Some(KeySpec { key: k.to_owned(), algorithm: pub_alg.unwrap_or(jsonwebtoken::Algorithm::HS256) });
        }
        if let Some(k) = sub_key.filter(|k| !k.is_empty()) {
            self.subscriber_key =
                Some(KeySpec { key: k.to_owned(), algorithm: sub_alg.unwrap_or(jsonwebtoken::Algorithm::HS256) });
        }
        for (jwks, env_alg, key, role) in [
            (&mut self.publisher_jwks, pub_alg, &self.publisher_key, "publisher"),
            (&mut self.subscriber_jwks, sub_alg, &self.subscriber_key, "subscriber"),
        ] {
            let Some(jwks) = jwks else { continue };
            // `*_JWT_ALG` pins a JWK Set's algorithm when the set's directive lists none and it
            // is asymmetric; the images' default `HS256` cannot apply to a set and is ignored.
            if jwks.algorithms.is_empty()
                && let Some(a) = env_alg.filter(|a| crate::auth::jwk_set::ASYMMETRIC.contains(a))
            {
                jwks.algorithms = vec![a];
            }
            if key.is_some() {
                self.inactive.push((
                    format!("{role}_jwt"),
                    "this role has a JWK Set URL, which takes precedence over its static key (as in the Go hub)",
                ));
            }
        }
        // As in the Go hub: with no key of its own, the subscriber role uses the publisher's.
        if self.subscriber_key.is_none() && self.subscriber_jwks.is_none() {
            self.subscriber_key = self.publisher_key.clone();
            self.subscriber_jwks = self.publisher_jwks.clone();
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.wants_tls && self.tls.is_none() {
            return Err("SERVER_NAME asks for https:// but no certificate is configured: set `tls CERT KEY` \
                        (or MERCURE_TLS_CERT_FILE and MERCURE_TLS_KEY_FILE), or use http:// and terminate TLS in front"
                .into());
        }
        if self.cors_origins.iter().any(|o| o == "*") && self.cors_origins.len() > 1 {
            return Err("cors_origins: `*` cannot be combined with other origins".into());
        }
        let l = &self.limits;
        if [
            l.max_body_size,
            l.admin_max_connections,
            l.queue_events,
            l.queue_bytes,
            l.max_templates,
            l.max_templates_per_subscription,
            l.template.max_length,
            l.template.max_expressions,
            l.template.max_variables,
        ]
        .contains(&0)
            || l.max_concurrent_streams == 0
            || l.max_subscribers == Some(0)
            || l.jwks.max_bytes == 0
            || l.jwks.fetch_timeout.is_zero()
        {
            return Err("limits must be positive".into());
        }
        if self.limits.max_concurrent_streams >= 1 << 31 {
            return Err("max_concurrent_streams: at most 2^31 - 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names() {
        let sock = |s: &str| ListenAddr::Socket(s.parse().unwrap());
        assert_eq!(parse_server_name(":3000").unwrap(), [ListenAddr::AnyInterface(3000)]);
        assert_eq!(parse_server_name("127.0.0.1:0").unwrap(), [sock("127.0.0.1:0")]);
        assert_eq!(parse_server_name("http://127.0.0.1:8080").unwrap(), [sock("127.0.0.1:8080")]);
        assert_eq!(parse_server_name("http://[::1]:8080/").unwrap(), [sock("[::1]:8080")]);
        assert_eq!(
            parse_server_name(":80, 127.0.0.1:3000  [::1]:3001,:80").unwrap(),
            [ListenAddr::AnyInterface(80), sock("127.0.0.1:3000"), sock("[::1]:3001")]
        );
        assert_eq!(parse_server_name("https://127.0.0.1").unwrap(), [sock("127.0.0.1:443")]);
        assert!(parse_server_name("example").is_err());
        assert!(parse_server_name(":http").is_err());
        assert!(parse_server_name(" , ").is_err());
    }

    #[test]
    fn admin_and_sizes() {
        assert_eq!(parse_admin("off").unwrap(), None);
        assert_eq!(parse_admin(":2020").unwrap(), Some("127.0.0.1:2020".parse().unwrap()));
        assert_eq!(parse_admin("0.0.0.0:2019").unwrap(), Some("0.0.0.0:2019".parse().unwrap()));
        assert!(parse_admin("nowhere").is_err());
        assert_eq!(parse_size("512KB").unwrap(), 512_000);
        assert_eq!(parse_size("1MiB").unwrap(), 1 << 20);
        assert_eq!(parse_size("2 kib").unwrap(), 2048);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert!(parse_size("1PB").is_err());
        assert!(parse_size("lots").is_err());
        assert!(parse_size("1e400").is_err());
    }

    #[test]
    fn stream_and_subscriber_ceilings() {
        let apply = |text: &str| {
            let ds = crate::config::directives::parse(text).unwrap();
            let mut s = Settings::default();
            s.apply_directive(&ds[0]).map(|()| s.limits)
        };
        assert_eq!(apply("max_concurrent_streams 7").unwrap().max_concurrent_streams, 7);
        assert_eq!(apply("max_concurrent_streams 2147483647").unwrap().max_concurrent_streams, (1 << 31) - 1);
        assert!(apply("max_concurrent_streams 2147483648").is_err());
        assert!(apply("max_concurrent_streams 0").is_err());
        assert_eq!(apply("max_subscribers 9").unwrap().max_subscribers, Some(9));
        assert!(apply("max_subscribers 0").is_err());
        assert_eq!(apply("tcp_user_timeout 0s").unwrap().tcp_user_timeout, Duration::ZERO);
        assert_eq!(apply("body_read_timeout 250ms").unwrap().body_read_timeout, Duration::from_millis(250));
    }

    #[test]
    fn transport_block_form() {
        let ds = crate::config::directives::parse("transport bolt {\n path /data/m.db\n size 1000\n}").unwrap();
        let mut s = Settings::default();
        s.apply_directive(&ds[0]).unwrap();
        assert_eq!(s.transport.path.as_deref(), Some(std::path::Path::new("/data/m.db")));
        assert_eq!(s.transport.retention.max_events, Some(1000));
        let ds = crate::config::directives::parse("transport local").unwrap();
        s.apply_directive(&ds[0]).unwrap();
        assert_eq!(s.transport.path, None);
    }
}
