//! Socket options set on every accepted connection, so a peer that vanished (a phone that lost
//! its network, a laptop that slept, a NAT that forgot the flow) is noticed by the kernel and
//! its subscription ends, instead of lingering as a "ghost" for the ~15 minutes of
//! `tcp_retries2` retransmissions, or forever on an idle stream (dunglas/mercure#645).
//!
//! Two mechanisms, because each covers a case the other cannot:
//! - **Keepalive** (`tcp_keepalive`): probes a connection with nothing in flight. It is the
//!   only thing that notices a dead peer on a stream with no heartbeat and no updates. The
//!   kernel never sends keepalive probes while data is unacknowledged or queued.
//! - **`TCP_USER_TIMEOUT`** (`tcp_user_timeout`): bounds how long sent data may stay
//!   unacknowledged, and (Linux ≥ 5.11, as `tcp(7)` says) how long buffered data may stay
//!   untransmitted behind a zero window, even while the peer keeps acknowledging the
//!   zero-window probes. The heartbeat of a vanished peer fits in the socket buffer, so the
//!   hub's queue never stalls and `dispatch_timeout` never fires: this is what ends it. With
//!   keepalive on, it also decides when unanswered keepalive probes end the connection.
//!   (Before Linux 5.11 an acknowledged zero-window probe reset the count, so a peer stuck on
//!   a zero window was never timed out; there `dispatch_timeout` is the only bound for it,
//!   once the socket buffer is full and the queue stops draining.)
//!
//! A failure to set an option is logged at debug level and the connection is served anyway:
//! these options only shorten how long a dead peer is kept.

use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::net::TcpStream;

use crate::config::Limits;

/// Keepalive probes sent after the idle time before the connection is declared dead (when
/// `tcp_user_timeout` is off; otherwise that timeout decides).
const KEEPALIVE_RETRIES: u32 = 3;

/// The interval between keepalive probes for an idle time `idle`: a third of it, at least one
/// second, so a dead idle peer is found within about twice `idle`.
pub fn keepalive_interval(idle: Duration) -> Duration {
    (idle / 3).max(Duration::from_secs(1))
}

/// Applies `tcp_keepalive` and `tcp_user_timeout` to an accepted connection (zero: left off).
pub fn tune(stream: &TcpStream, limits: &Limits) {
    let sock = SockRef::from(stream);
    if !limits.tcp_keepalive.is_zero() {
        let idle = limits.tcp_keepalive;
        let params =
            TcpKeepalive::new().with_time(idle).with_interval(keepalive_interval(idle)).with_retries(KEEPALIVE_RETRIES);
        if let Err(e) = sock.set_tcp_keepalive(&params).and_then(|()| sock.set_keepalive(true)) {
            tracing::debug!(error = %e, "could not enable TCP keepalive");
        }
    }
    if !limits.tcp_user_timeout.is_zero()
        && let Err(e) = sock.set_tcp_user_timeout(Some(limits.tcp_user_timeout))
    {
        tracing::debug!(error = %e, "could not set TCP_USER_TIMEOUT");
    }
}
