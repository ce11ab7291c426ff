//! Binding the public listeners (`SERVER_NAME`, `--listen`) and the admin listener.
//!
//! `:PORT` means every interface of both IP versions, as it does for Caddy and Go's
//! `net.Listen`. It is bound as **one dual-stack socket** on `[::]:PORT` with `IPV6_V6ONLY`
//! cleared, not as two sockets (`0.0.0.0` and `[::]`):
//! - one port, so `:0` gets a single ephemeral port reachable over `127.0.0.1` and `[::1]`
//!   (two sockets would each draw their own);
//! - no dependence on the `net.ipv6.bindv6only` sysctl (an explicit `IPV6_V6ONLY=0` wins);
//! - IPv4 peers appear as `::ffff:a.b.c.d`, which only the logs see.
//!
//! A machine without IPv6 (no `AF_INET6`, or IPv6 disabled) gets `0.0.0.0:PORT` instead, with
//! a log line. Explicit addresses (`127.0.0.1:3000`, `[::1]:3000`, a resolved host name) are
//! bound exactly as given. Every listener feeds the same accept logic, connection ceiling and
//! shutdown (`server::Server::run`).

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;

use crate::config::ListenAddr;

/// Pending connections the kernel queues per listener before `accept` (the same as
/// `tokio::net::TcpListener::bind`); the kernel caps it at `net.core.somaxconn`.
const BACKLOG: i32 = 1024;

/// Binds every public address, in order. The first failure stops start-up, naming the address.
pub fn bind_public(addrs: &[ListenAddr]) -> io::Result<Vec<TcpListener>> {
    addrs.iter().map(|a| bind_one(*a).map_err(|e| io::Error::new(e.kind(), format!("{a}: {e}")))).collect()
}

fn bind_one(addr: ListenAddr) -> io::Result<TcpListener> {
    let std = match addr {
        ListenAddr::Socket(a) => bind_socket(a, None)?,
        ListenAddr::AnyInterface(port) => {
            match bind_socket(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)), Some(false)) {
                Ok(l) => l,
                Err(e) if ipv6_unavailable(&e) => {
                    tracing::warn!(port, error = %e, "IPv6 unavailable on this machine: listening on IPv4 only");
                    bind_socket(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)), None)?
                }
                Err(e) => return Err(e),
            }
        }
    };
    TcpListener::from_std(std)
}

/// Binds the admin listener. Not fatal: the caller logs a failure and serves without it.
pub fn bind_admin(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::from_std(bind_socket(addr, None)?)
}

/// A listening, non-blocking socket on `addr` with `SO_REUSEADDR` (a restarted hub rebinds
/// while old connections sit in TIME_WAIT). `only_v6`: set `IPV6_V6ONLY` to this value.
fn bind_socket(addr: SocketAddr, only_v6: Option<bool>) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if let Some(v6) = only_v6 {
        socket.set_only_v6(v6)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// The errors of a machine without usable IPv6: no `AF_INET6` support (`EAFNOSUPPORT`), or
/// IPv6 disabled so `[::]` is not a local address (`EADDRNOTAVAIL`).
fn ipv6_unavailable(e: &io::Error) -> bool {
    const EAFNOSUPPORT: i32 = 97; // Linux
    e.kind() == io::ErrorKind::AddrNotAvailable || e.raw_os_error() == Some(EAFNOSUPPORT)
}
