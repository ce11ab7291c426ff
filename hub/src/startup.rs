//! What happens between reading the configuration and serving: raising the open-file limit,
//! the development mode for a hub started with no key, and logging what is configured.

use jsonwebtoken::Algorithm;
use rand::Rng;

use crate::auth::KeySpec;
use crate::auth::jwt::sign_hmac;
use crate::config::Settings;

/// File descriptors kept back from the connection ceiling for listeners, logs and history.
const RESERVED_FDS: u64 = 64;

/// Raises the soft open-file limit to the hard limit and returns the soft limit in force.
/// A hub must know its ceiling: the default connection limit is derived from it.
pub fn raise_open_files_limit() -> u64 {
    match rlimit::Resource::NOFILE.get() {
        Ok((soft, hard)) => {
            let raised =
                if soft < hard { rlimit::Resource::NOFILE.set(hard, hard).map(|_| hard).unwrap_or(soft) } else { soft };
            tracing::info!(soft_before = soft, hard, soft_now = raised, "open-file limit");
            raised
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not read the open-file limit; assuming 1024");
            1024
        }
    }
}

/// The connection ceiling: configured, or derived from the open-file limit.
pub fn max_connections(settings: &Settings, open_files: u64) -> usize {
    settings.limits.max_connections.unwrap_or_else(|| open_files.saturating_sub(RESERVED_FDS).max(16) as usize)
}

/// The subscription ceiling: configured, or the connection ceiling. Written back into the
/// settings so the server and the logs see the value in force.
pub fn resolve_max_subscribers(settings: &mut Settings, max_connections: usize) -> usize {
    *settings.limits.max_subscribers.get_or_insert(max_connections)
}

/// With no key at all, generate one so a developer can try the hub at once, and say loudly
/// that this is not a production setup.
pub fn development_mode(settings: &mut Settings) {
    if settings.publisher_key.is_some() || settings.publisher_jwks.is_some() {
        return;
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill(&mut bytes);
    let key: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let spec = KeySpec { key: key.clone(), algorithm: Algorithm::HS256 };
    settings.publisher_key = Some(spec.clone());
    settings.subscriber_key = Some(spec);
    let claims = serde_json::json!({"mercure": {"publish": ["*"], "subscribe": ["*"]}});
    let token = sign_hmac(key.as_bytes(), Algorithm::HS256, &claims).unwrap_or_default();
    let addr = match settings.listen.first() {
        Some(crate::config::ListenAddr::AnyInterface(port)) => format!("localhost:{port}"),
        Some(crate::config::ListenAddr::Socket(a)) => a.to_string(),
        None => "localhost:3000".into(),
    };
    tracing::warn!(
        "DEVELOPMENT MODE: no MERCURE_PUBLISHER_JWT_KEY set, generated a random key; do not use in production"
    );
    tracing::warn!(key, "development key (HS256)");
    tracing::warn!(token, "development token (publish and subscribe to every topic)");
    tracing::warn!(
        "try: curl -d topic=https://example.com/t -d data=hello -H 'Authorization: Bearer {token}' http://{addr}/.well-known/mercure"
    );
}

/// Logs the configuration that matters when reading a hub's logs later.
pub fn log_settings(settings: &Settings, max_connections: usize) {
    let listen: Vec<String> = settings.listen.iter().map(|a| a.to_string()).collect();
    tracing::info!(
        ?listen,
        admin = ?settings.admin,
        name = %settings.name,
        anonymous = settings.anonymous,
        cors_origins = ?settings.cors_origins,
        publish_origins = ?settings.publish_origins,
        heartbeat = ?settings.heartbeat,
        write_timeout = ?settings.write_timeout,
        dispatch_timeout = ?settings.limits.dispatch_timeout,
        max_connections,
        max_subscribers = ?settings.limits.max_subscribers,
        max_concurrent_streams = settings.limits.max_concurrent_streams,
        queue_events = settings.limits.queue_events,
        queue_bytes = settings.limits.queue_bytes,
        jwt_cache_entries = settings.limits.jwt_cache_entries,
        direct_writes = settings.direct_writes,
        "configuration"
    );
    if settings.publisher_jwks.is_some() || settings.subscriber_jwks.is_some() {
        let j = &settings.limits.jwks;
        tracing::info!(
            publisher = ?settings.publisher_jwks.as_ref().map(|s| (&s.url, s.allowed())),
            subscriber = ?settings.subscriber_jwks.as_ref().map(|s| (&s.url, s.allowed())),
            refresh_interval = ?j.refresh_interval,
            min_refresh_interval = ?j.min_refresh_interval,
            fetch_timeout = ?j.fetch_timeout,
            max_bytes = j.max_bytes,
            "JWK Sets"
        );
    }
    for (name, reason) in &settings.inactive {
        tracing::warn!(directive = %name, reason, "directive accepted but not active in this version");
    }
    let t = &settings.transport;
    tracing::info!(
        transport = %t.url,
        file = ?t.path,
        max_events = ?t.retention.max_events,
        max_bytes = t.retention.max_bytes,
        max_age = ?t.retention.max_age,
        fsync = ?t.fsync,
        "history"
    );
    for opt in &t.ignored {
        tracing::info!(option = %opt, "transport option accepted for compatibility; not needed here");
    }
}
