//! `mercure-loadgen`: load generator and capacity planner for any Mercure hub.
//!
//! It speaks the protocol only (publish = form POST with a JWT, subscribe = SSE GET),
//! so it loads our hub, dunglas/mercure, or any other implementation alike. Its job is
//! fan-out latency and exactness: every update carries its send time and a per-topic
//! sequence number, and every subscriber session is checked against the publish log, so
//! loss, duplicates and reordering are reported, never absorbed.
//!
//! # Layout
//! - [`config`]: CLI flags and the upstream Gatling test's environment variables.
//! - [`nodes`]: several hub nodes in one run (multi-node hubs): who talks to which node,
//!   per-node counts.
//! - [`run`]: the coordinator of one run, split by phase (plan, workers, publish, merge,
//!   verdict, report); [`clock`]: the monotonic clock every process shares.
//! - [`publisher`]: goose users dispatching publishes on an open-model [`arrivals`]
//!   schedule, Zipf [`topics`], with the publish log.
//! - [`worker`]: worker processes and their pipe protocol; [`swarm`]: the subscribers one
//!   worker owns; [`shard`]: the state and types they share; [`subscriber`]: one SSE
//!   connection with lifetime and reconnection; [`sse`]: the event-stream parser;
//!   [`payload`]: the stamp in each update; [`os_priority`]: the workers' scheduling
//!   policy (no wakeup preemption of the hub on shared cores).
//! - [`seqset`] and [`accounting`]: exact expected/delivered/lost bookkeeping.
//! - [`histo`]: latency histograms; [`hubstats`]: hub RSS/CPU/fds sampling;
//!   [`progress`]: the live terminal line; [`report`]: the JSON report and summary.
//! - [`soak`]: the soak's time series, gauge-truth and RSS-drift checks and figure;
//!   [`stuck`]: stuck consumers; [`expiring`]: short-lived subscriber tokens.
//! - [`capacity`]: the capacity sweep behind `scripts/capacity` (hub process, sweep,
//!   summary table, plots).
//! - [`h2cpu`]: hub CPU per delivery, HTTP/2 over TLS against HTTP/1.1 cleartext (the
//!   `h2-cpu` binary).
//!
//! # The path of one update
//! goose user claims publish `i` → waits for its due time → takes an in-flight slot →
//! under topic `k`'s log lock, takes `seq` and the send time `t` → stamps
//! `{run, k, seq, t, late}` → POST on a task of its own (the user claims the next one) →
//! logs `(start, ack, outcome)` → the hub fans out → each worker's subscriber parses the
//! SSE event → latency from the schedule (`t − late`) and from the send into the worker's
//! histograms, `seq` into the session's `SeqSet` → at the end, sessions are tallied against
//! the log and [`run`] judges the run.

pub mod accounting;
pub mod arrivals;
pub mod capacity;
pub mod clock;
pub mod config;
pub mod expiring;
pub mod h2cpu;
pub mod histo;
pub mod http;
pub mod hubstats;
pub mod jwt;
pub mod nodes;
pub mod os_priority;
pub mod payload;
pub mod progress;
pub mod publisher;
pub mod report;
pub mod run;
pub mod seqset;
pub mod shard;
pub mod soak;
pub mod sse;
pub mod stream_client;
pub mod stuck;
pub mod subscriber;
pub mod swarm;
pub mod topics;
pub mod worker;
