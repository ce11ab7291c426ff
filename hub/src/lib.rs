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
//! - [`auth`]: token extraction and verification → [`auth::Grants`].
//! - [`topic`]: selectors (`*`, exact, URI templates) and their matching.
//! - [`update`], [`sse`]: the update and its wire form.
//! - [`queue`]: the per-subscriber bounded queue; slow-consumer eviction.
//! - [`subscriber`], [`registry`], [`hub`]: who wants what, and the fan-out.
//! - [`subscriptions`]: active-subscription events and documents (`subscriptions` directive).
//! - [`history`]: the retained window for `Last-Event-ID` replay, and its durable store.
//! - [`server`]: HTTP (hyper), connection ceiling, CORS, graceful shutdown.
//! - [`startup`]: what the binary does before serving (limits, development mode).
//! - [`metrics`]: counters served at `/metrics`.
//! - `fuzz` (test builds only): in-process fuzz targets for every parser of client input; long
//!   runs with `scripts/fuzz`.

// What the binary uses is public; everything else is crate-private, so an item nothing uses
// is reported as dead code. The benches reach the internals through the `internals` feature
// (the benches crate turns it on); `cargo clippy -p mercure-hub` builds without it.
pub mod config;
pub mod server;
pub mod startup;

#[cfg(feature = "internals")]
pub mod auth;
#[cfg(not(feature = "internals"))]
pub(crate) mod auth;
#[cfg(feature = "internals")]
pub mod duration;
#[cfg(not(feature = "internals"))]
pub(crate) mod duration;
#[cfg(feature = "internals")]
pub mod history;
#[cfg(not(feature = "internals"))]
pub(crate) mod history;
#[cfg(feature = "internals")]
pub mod hub;
#[cfg(not(feature = "internals"))]
pub(crate) mod hub;
#[cfg(feature = "internals")]
pub mod metrics;
#[cfg(not(feature = "internals"))]
pub(crate) mod metrics;
#[cfg(feature = "internals")]
pub mod queue;
#[cfg(not(feature = "internals"))]
pub(crate) mod queue;
#[cfg(feature = "internals")]
pub mod registry;
#[cfg(not(feature = "internals"))]
pub(crate) mod registry;
#[cfg(feature = "internals")]
pub mod sse;
#[cfg(not(feature = "internals"))]
pub(crate) mod sse;
#[cfg(feature = "internals")]
pub mod subscriber;
#[cfg(not(feature = "internals"))]
pub(crate) mod subscriber;
#[cfg(feature = "internals")]
pub mod subscriptions;
#[cfg(not(feature = "internals"))]
pub(crate) mod subscriptions;
#[cfg(feature = "internals")]
pub mod topic;
#[cfg(not(feature = "internals"))]
pub(crate) mod topic;
#[cfg(feature = "internals")]
pub mod update;
#[cfg(not(feature = "internals"))]
pub(crate) mod update;

#[cfg(test)]
mod fuzz;
