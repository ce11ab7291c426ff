//! Configuration: the dunglas/mercure environment variables, `MERCURE_EXTRA_DIRECTIVES`, and
//! command-line flags that mirror every setting.
//!
//! Precedence: built-in defaults < environment (including the directives) < flags. Every value
//! ends up in [`Settings`], validated once at start-up; an unknown or malformed directive stops
//! start-up with a message naming its line.

pub mod directives;
mod go_compat;
mod settings;

pub use settings::{DEFAULT_ADMIN, Limits, ListenAddr, Settings, TlsFiles};

use std::time::Duration;

use clap::Parser;

/// Command line (and environment) of `mercure-hub`.
#[derive(Parser, Debug, Default)]
#[command(name = "mercure-hub", version, about = "A fast, drop-in Mercure hub", long_about = None)]
pub struct Cli {
    /// Addresses to listen on, comma- or space-separated: `:PORT` (every interface, IPv4 and IPv6), `HOST:PORT` or `http://HOST:PORT` [default: 127.0.0.1:3000]
    #[arg(long, visible_alias = "listen", env = "SERVER_NAME")]
    pub server_name: Option<String>,
    /// TLS certificate chain (PEM) for every public listener; with `--tls-key` (directive `tls CERT KEY`)
    #[arg(long, env = "MERCURE_TLS_CERT_FILE")]
    pub tls_cert: Option<String>,
    /// TLS private key (PEM) matching `--tls-cert`
    #[arg(long, env = "MERCURE_TLS_KEY_FILE")]
    pub tls_key: Option<String>,
    /// Admin listener for health probes and metrics: `HOST:PORT`, `:PORT` (loopback) or `off` (directive `admin`) [default: 127.0.0.1:2019]
    #[arg(long)]
    pub admin: Option<String>,
    /// Most simultaneous connections to the admin listener (directive `admin_max_connections`) [default: 64]
    #[arg(long)]
    pub admin_max_connections: Option<usize>,
    /// Key verifying publisher tokens (HMAC secret or PEM public key)
    #[arg(long, env = "MERCURE_PUBLISHER_JWT_KEY", hide_env_values = true)]
    pub publisher_jwt_key: Option<String>,
    /// Algorithm of publisher tokens [default: HS256]
    #[arg(long, env = "MERCURE_PUBLISHER_JWT_ALG")]
    pub publisher_jwt_alg: Option<String>,
    /// Key verifying subscriber tokens [default: the publisher key]
    #[arg(long, env = "MERCURE_SUBSCRIBER_JWT_KEY", hide_env_values = true)]
    pub subscriber_jwt_key: Option<String>,
    /// Algorithm of subscriber tokens [default: HS256]
    #[arg(long, env = "MERCURE_SUBSCRIBER_JWT_ALG")]
    pub subscriber_jwt_alg: Option<String>,
    /// JWK Set verifying publisher tokens: http://, https:// or file:// URL; takes precedence over the publisher key (directive `publisher_jwks_url URL [ALG…]`)
    #[arg(long, env = "MERCURE_PUBLISHER_JWKS_URL")]
    pub publisher_jwks_url: Option<String>,
    /// JWK Set verifying subscriber tokens [default: the publisher's keys] (directive `subscriber_jwks_url URL [ALG…]`)
    #[arg(long, env = "MERCURE_SUBSCRIBER_JWKS_URL")]
    pub subscriber_jwks_url: Option<String>,
    /// Extra directives, one a line, as in the Go hub's Caddyfile (`anonymous`, `cors_origins …`)
    #[arg(long, env = "MERCURE_EXTRA_DIRECTIVES")]
    pub extra_directives: Option<String>,

    /// Let subscribers without a token receive public updates (directive `anonymous`)
    #[arg(long)]
    pub anonymous: bool,
    /// Origins allowed by CORS, space-separated, or `*` (directive `cors_origins`)
    #[arg(long, num_args = 1.., value_delimiter = ' ')]
    pub cors_origins: Option<Vec<String>>,
    /// Origins allowed to publish with cookie authorization (directive `publish_origins`)
    #[arg(long, num_args = 1.., value_delimiter = ' ')]
    pub publish_origins: Option<Vec<String>>,
    /// Name of the authorization cookie (directive `cookie_name`) [default: mercureAuthorization]
    #[arg(long)]
    pub cookie_name: Option<String>,
    /// Interval between heartbeat comments, `0s` to disable (directive `heartbeat`) [default: 40s]
    #[arg(long, value_parser = duration_arg)]
    pub heartbeat: Option<Duration>,
    /// How long a subscriber's queue may stay undrained before eviction (directive `dispatch_timeout`) [default: 5s]
    #[arg(long, value_parser = duration_arg)]
    pub dispatch_timeout: Option<Duration>,
    /// Longest life of a stream; the client then reconnects. `0s` disables (directive `write_timeout`) [default: 600s]
    #[arg(long, value_parser = duration_arg)]
    pub write_timeout: Option<Duration>,
    /// Publish subscription events and serve the subscription API (directive `subscriptions`)
    #[arg(long)]
    pub subscriptions: bool,
    /// History transport URL: local://local, redb://PATH, bolt://PATH, redis://HOST:PORT/DB?stream=S (directive `transport_url`) [default: redb://mercure.redb]
    #[arg(long)]
    pub transport_url: Option<String>,
    /// Serve the debugging page at `/` (directive `ui`)
    #[arg(long)]
    pub ui: bool,
    /// Serve the page and the demo endpoint (directive `demo`)
    #[arg(long)]
    pub demo: bool,
    /// Most simultaneous connections; more get 503 (directive `max_connections`) [default: open-file limit − 64]
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// Most simultaneous subscriptions, HTTP/1 and HTTP/2 together; more get 503 (directive `max_subscribers`) [default: the connection ceiling]
    #[arg(long)]
    pub max_subscribers: Option<usize>,
    /// Most concurrent streams on one HTTP/2 connection (directive `max_concurrent_streams`) [default: 100]
    #[arg(long)]
    pub max_concurrent_streams: Option<u32>,
    /// Most bytes in a request body; more get 413 (directive `max_body_size`) [default: 1048576]
    #[arg(long)]
    pub max_body_size: Option<usize>,
    /// Most topics in one publish or subscription (directive `max_topics`) [default: 100]
    #[arg(long)]
    pub max_topics: Option<usize>,
    /// Most bytes in one topic, id or type (directive `max_topic_length`) [default: 2048]
    #[arg(long)]
    pub max_topic_length: Option<usize>,
    /// Most events waiting for one subscriber before it is evicted (directive `subscriber_queue_events`) [default: 1024]
    #[arg(long)]
    pub subscriber_queue_events: Option<usize>,
    /// Most bytes waiting for one subscriber before it is evicted (directive `subscriber_queue_bytes`) [default: 4194304]
    #[arg(long)]
    pub subscriber_queue_bytes: Option<usize>,
    /// Time allowed to send request headers (directive `header_read_timeout`) [default: 10s]
    #[arg(long, value_parser = duration_arg)]
    pub header_read_timeout: Option<Duration>,
    /// Time allowed for a publish's whole body once its headers are in; 408 past it. `0s` disables (directive `body_read_timeout`) [default: 10s]
    #[arg(long, value_parser = duration_arg)]
    pub body_read_timeout: Option<Duration>,
    /// Time streams get to finish at shutdown and after eviction (directive `shutdown_grace`) [default: 5s]
    #[arg(long, value_parser = duration_arg)]
    pub shutdown_grace: Option<Duration>,
    /// Idle time before TCP keepalive probes start on a connection; `0s` disables (directive `tcp_keepalive`) [default: 30s]
    #[arg(long, value_parser = duration_arg)]
    pub tcp_keepalive: Option<Duration>,
    /// TCP_USER_TIMEOUT: longest time sent data may stay unacknowledged before the connection is dropped; `0s`: system default (directive `tcp_user_timeout`) [default: 30s]
    #[arg(long, value_parser = duration_arg)]
    pub tcp_user_timeout: Option<Duration>,
    /// Accepted tokens remembered per role to skip repeated signature checks; 0 disables (directive `jwt_cache_entries`) [default: 4096]
    #[arg(long)]
    pub jwt_cache_entries: Option<usize>,
    /// Most distinct URI templates subscribed to at once, hub-wide (directive `max_templates`) [default: 1000]
    #[arg(long)]
    pub max_templates: Option<usize>,
    /// Most distinct URI templates in one subscription (directive `max_templates_per_subscription`) [default: 16]
    #[arg(long)]
    pub max_templates_per_subscription: Option<usize>,
    /// Most bytes in one URI template (directive `max_template_length`) [default: 1024]
    #[arg(long)]
    pub max_template_length: Option<usize>,
    /// Most `{…}` expressions in one URI template (directive `max_template_expressions`) [default: 10]
    #[arg(long)]
    pub max_template_expressions: Option<usize>,
    /// Most variables in one URI template (directive `max_template_variables`) [default: 20]
    #[arg(long)]
    pub max_template_variables: Option<usize>,
    /// Interval between periodic JWK Set fetches; `0s` disables them (directive `jwks_refresh_interval`) [default: 1h]
    #[arg(long, value_parser = duration_arg)]
    pub jwks_refresh_interval: Option<Duration>,
    /// Least time between two JWK Set fetches triggered by unknown key ids (directive `jwks_min_refresh_interval`) [default: 30s]
    #[arg(long, value_parser = duration_arg)]
    pub jwks_min_refresh_interval: Option<Duration>,
    /// Longest a JWK Set fetch may take, and a token may wait for one (directive `jwks_fetch_timeout`) [default: 5s]
    #[arg(long, value_parser = duration_arg)]
    pub jwks_fetch_timeout: Option<Duration>,
    /// Largest JWK Set document read, in bytes (directive `jwks_max_size`, which takes units) [default: 1048576]
    #[arg(long)]
    pub jwks_max_size: Option<usize>,
    /// Caddy's global options, as the Go image reads them: `admin ADDRESS|off` is honoured,
    /// anything else is logged as inactive
    #[arg(long, env = "GLOBAL_OPTIONS", hide = true)]
    pub global_options: Option<String>,
    /// Caddy configuration the Go image injects (not read here; logged if set)
    #[arg(long, env = "CADDY_EXTRA_CONFIG", hide = true)]
    pub caddy_extra_config: Option<String>,
    /// Caddy site directives the Go image injects (not read here; logged if set)
    #[arg(long, env = "CADDY_SERVER_EXTRA_DIRECTIVES", hide = true)]
    pub caddy_server_extra_directives: Option<String>,
    /// Log format: `text` or `json`
    #[arg(long, env = "MERCURE_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
}

fn duration_arg(s: &str) -> Result<Duration, String> {
    crate::duration::parse_duration(s)
}

impl Cli {
    /// Builds the settings: defaults, then environment and directives, then flags.
    pub fn settings(&self) -> Result<Settings, String> {
        let mut s = Settings::default();
        if let Some(name) = &self.server_name {
            s.listen = settings::parse_server_name(name)?;
            s.wants_tls = name.split(|c: char| c == ',' || c.is_whitespace()).any(|a| a.starts_with("https://"));
        }
        if let Some(text) = self.global_options.as_deref().filter(|t| !t.trim().is_empty()) {
            s.apply_global_options(text);
        }
        for (name, value) in [
            ("CADDY_EXTRA_CONFIG", &self.caddy_extra_config),
            ("CADDY_SERVER_EXTRA_DIRECTIVES", &self.caddy_server_extra_directives),
        ] {
            if value.as_deref().is_some_and(|v| !v.trim().is_empty()) {
                s.inactive.push((name.into(), "Caddy configuration is not read by this hub"));
            }
        }
        if let Some(text) = &self.extra_directives {
            let parsed = directives::parse(text).map_err(|e| format!("MERCURE_EXTRA_DIRECTIVES {e}"))?;
            for d in &parsed {
                s.apply_directive(d).map_err(|e| format!("MERCURE_EXTRA_DIRECTIVES line {}: {e}", d.line))?;
            }
        }
        // Before `set_keys`: it resolves each set's algorithms and the subscriber's fallback.
        for (url, slot) in
            [(&self.publisher_jwks_url, &mut s.publisher_jwks), (&self.subscriber_jwks_url, &mut s.subscriber_jwks)]
        {
            if let Some(u) = url.as_deref().filter(|u| !u.trim().is_empty()) {
                *slot = Some(crate::auth::JwksSpec::new(u, Vec::new())?);
            }
        }
        s.set_keys(
            self.publisher_jwt_key.as_deref(),
            self.publisher_jwt_alg.as_deref(),
            self.subscriber_jwt_key.as_deref(),
            self.subscriber_jwt_alg.as_deref(),
        )?;
        self.apply_flags(&mut s)?;
        Ok(s)
    }

    fn apply_flags(&self, s: &mut Settings) -> Result<(), String> {
        s.anonymous |= self.anonymous;
        s.subscriptions |= self.subscriptions;
        s.ui |= self.ui || self.demo;
        s.demo |= self.demo;
        if let Some(v) = &self.cors_origins {
            s.cors_origins = v.clone();
        }
        if let Some(v) = &self.publish_origins {
            s.publish_origins = v.clone();
        }
        if let Some(v) = &self.cookie_name {
            s.cookie_name = v.clone();
        }
        if let Some(v) = self.heartbeat {
            s.heartbeat = (!v.is_zero()).then_some(v);
        }
        if let Some(v) = self.dispatch_timeout {
            s.limits.dispatch_timeout = v;
        }
        if let Some(v) = self.write_timeout {
            s.write_timeout = (!v.is_zero()).then_some(v);
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => s.tls = Some(TlsFiles { cert: cert.into(), key: key.into() }),
            (None, None) => {}
            _ => {
                return Err(
                    "TLS needs both a certificate and a key (MERCURE_TLS_CERT_FILE and MERCURE_TLS_KEY_FILE)".into()
                );
            }
        }
        if let Some(v) = &self.admin {
            s.admin = settings::parse_admin(v)?;
        }
        if let Some(v) = &self.transport_url {
            s.transport = crate::history::HistorySpec::parse(v)?;
        }
        let l = &mut s.limits;
        l.max_connections = self.max_connections.or(l.max_connections);
        l.max_subscribers = self.max_subscribers.or(l.max_subscribers);
        l.max_concurrent_streams = self.max_concurrent_streams.unwrap_or(l.max_concurrent_streams);
        l.max_body_size = self.max_body_size.unwrap_or(l.max_body_size);
        l.admin_max_connections = self.admin_max_connections.unwrap_or(l.admin_max_connections);
        l.max_topics = self.max_topics.unwrap_or(l.max_topics);
        l.max_topic_length = self.max_topic_length.unwrap_or(l.max_topic_length);
        l.queue_events = self.subscriber_queue_events.unwrap_or(l.queue_events);
        l.queue_bytes = self.subscriber_queue_bytes.unwrap_or(l.queue_bytes);
        l.header_read_timeout = self.header_read_timeout.unwrap_or(l.header_read_timeout);
        l.body_read_timeout = self.body_read_timeout.unwrap_or(l.body_read_timeout);
        l.shutdown_grace = self.shutdown_grace.unwrap_or(l.shutdown_grace);
        l.jwt_cache_entries = self.jwt_cache_entries.unwrap_or(l.jwt_cache_entries);
        l.max_templates = self.max_templates.unwrap_or(l.max_templates);
        l.max_templates_per_subscription =
            self.max_templates_per_subscription.unwrap_or(l.max_templates_per_subscription);
        l.template.max_length = self.max_template_length.unwrap_or(l.template.max_length);
        l.template.max_expressions = self.max_template_expressions.unwrap_or(l.template.max_expressions);
        l.template.max_variables = self.max_template_variables.unwrap_or(l.template.max_variables);
        l.tcp_keepalive = self.tcp_keepalive.unwrap_or(l.tcp_keepalive);
        l.tcp_user_timeout = self.tcp_user_timeout.unwrap_or(l.tcp_user_timeout);
        let j = &mut l.jwks;
        j.refresh_interval = self.jwks_refresh_interval.unwrap_or(j.refresh_interval);
        j.min_refresh_interval = self.jwks_min_refresh_interval.unwrap_or(j.min_refresh_interval);
        j.fetch_timeout = self.jwks_fetch_timeout.unwrap_or(j.fetch_timeout);
        j.max_bytes = self.jwks_max_size.unwrap_or(j.max_bytes);
        s.validate()
    }
}
