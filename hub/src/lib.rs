//! A fast, drop-in [Mercure](https://mercure.rocks) hub.
//!
//! # Architecture
//! The path of an update: **publish** (`server::publish`: authorize, validate) → **encode once**
//! (`update`, `sse`: one shared `Bytes`) → **match** (`registry`: exact topics in a sharded
//! map, templates in their own cached index, `*` apart) → **enqueue** (`queue`: one bounded
//! queue per subscriber, pushed under the hub's short dispatch lock, never waiting on a
//! subscriber) → **write** (`server::body`: the connection drains its whole queue into one
//! frame). A subscriber whose queue overflows is evicted, not waited for.
//!
//! # Layout
//! - [`config`]: environment, `MERCURE_EXTRA_DIRECTIVES`, flags → [`config::Settings`].
//! - [`duration`]: Go-style durations (`40s`, `1m30s`), read by `config` and `history` alike.
//! - [`auth`]: token extraction, key sources (a static key, or a JWK Set fetched and refreshed)
//!   and verification → [`auth::Grants`].
//! - [`topic`]: selectors (`*`, exact, URI templates) and their matching.
//! - [`update`], [`sse`]: the update and its wire form.
//! - [`queue`]: the per-subscriber bounded queue; slow-consumer eviction.
//! - [`subscriber`], [`registry`], [`hub`]: who wants what, and the fan-out.
//! - [`subscriptions`]: active-subscription events and documents (`subscriptions` directive).
//! - [`history`]: the retained window for `Last-Event-ID` replay, and its durable store.
//! - [`cluster`]: several nodes as one hub on a Redis stream (`transport_url redis://…`).
//! - [`server`]: HTTP (hyper), listeners (dual-stack, several addresses, TLS with reload), the
//!   connection ceiling, CORS, health probes and the admin listener, graceful shutdown.
//! - [`startup`]: what the binary does before serving (limits, development mode).
//! - [`metrics`]: counters, gauges and a histogram served at `/metrics` (ours and the Go hub's
//!   names).
//! - `fuzz` (test builds only): in-process fuzz targets for every parser of client input; long
//!   runs with `scripts/fuzz`.

// What the binary uses is public; everything else is crate-private, so an item nothing uses
// is reported as dead code. The benches reach the internals through the `internals` feature
// (the benches crate turns it on); `cargo clippy -p mercure-hub` builds without it.
pub mod config;
pub mod server;
pub mod startup;

/// Declares modules public with the `internals` feature, crate-private without it.
macro_rules! internal_mods {
    ($($name:ident),* $(,)?) => {$(
        #[cfg(feature = "internals")]
        pub mod $name;
        #[cfg(not(feature = "internals"))]
        pub(crate) mod $name;
    )*};
}

internal_mods!(
    auth,
    cluster,
    duration,
    history,
    hub,
    metrics,
    queue,
    registry,
    sse,
    subscriber,
    subscriptions,
    topic,
    update
);

#[cfg(test)]
mod fuzz;
