//! TLS with rustls: certificate and key from PEM files (`tls CERT KEY`, or
//! `MERCURE_TLS_CERT_FILE` / `MERCURE_TLS_KEY_FILE`), ALPN `h2` then `http/1.1`, and reloads
//! that never drop a connection.
//!
//! ## Reload
//! The server configuration is built once; its certificate comes from a resolver holding the
//! current [`CertifiedKey`] behind a lock. A reload (SIGHUP, or a change of either file's
//! modification time or size, checked every [`WATCH_INTERVAL`]) reads and checks both files
//! and swaps the key: handshakes from then on use the new certificate, established
//! connections (and their streams) keep the session they negotiated. A reload that fails
//! (unreadable file, key not matching the certificate) is logged and the current certificate
//! stays.
//!
//! ## Handshake
//! Inside the connection's own task, bounded by `header_read_timeout` (a client that opens a
//! connection and sends nothing holds a connection slot no longer than one that sends no
//! headers). After it, the connection is served by hyper: HTTP/2 when ALPN chose `h2`,
//! HTTP/1.1 otherwise, with the same queues, eviction and limits as cleartext connections.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::RwLock;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

use crate::config::TlsFiles;

/// How often the certificate and key files are checked for a change.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(5);

/// The current certificate, swapped whole by a reload.
#[derive(Debug)]
struct Current {
    /// parking_lot: read once per handshake, written once per reload; never held across I/O.
    key: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.key.read().clone())
    }
}

/// The TLS side of the public listeners.
pub struct Tls {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: Arc<Current>,
    acceptor: TlsAcceptor,
}

impl Tls {
    /// Loads the files and builds the server configuration; an error names the file.
    pub fn load(files: &TlsFiles) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let key = load_key(files, &provider)?;
        let current = Arc::new(Current { key: RwLock::new(Arc::new(key)) });
        let mut config = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("tls: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        Ok(Tls { files: files.clone(), provider, current, acceptor })
    }

    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// Reads the files again and, if they hold a valid pair, makes it the certificate of every
    /// later handshake.
    pub fn reload(&self, why: &str) {
        match load_key(&self.files, &self.provider) {
            Ok(key) => {
                *self.current.key.write() = Arc::new(key);
                tracing::info!(cert = %self.files.cert.display(), why, "TLS certificate reloaded");
            }
            Err(e) => tracing::error!(error = %e, why, "TLS certificate not reloaded; keeping the current one"),
        }
    }

    /// Reloads on SIGHUP and when either file changes, until the task is aborted.
    pub async fn watch(self: Arc<Self>) {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "no SIGHUP handler: TLS files are reloaded when they change only");
                None
            }
        };
        let mut seen = stamp(&self.files);
        let mut tick = tokio::time::interval(WATCH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                    seen = stamp(&self.files);
                    self.reload("SIGHUP");
                }
                _ = tick.tick() => {
                    let now = stamp(&self.files);
                    if now != seen {
                        seen = now;
                        self.reload("files changed");
                    }
                }
            }
        }
    }
}

/// What tells a changed file: modification time and size of both.
type Stamp = [Option<(SystemTime, u64)>; 2];

fn stamp(files: &TlsFiles) -> Stamp {
    let of = |p: &Path| std::fs::metadata(p).ok().and_then(|m| Some((m.modified().ok()?, m.len())));
    [of(&files.cert), of(&files.key)]
}

fn load_key(files: &TlsFiles, provider: &CryptoProvider) -> Result<CertifiedKey, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| format!("tls certificate {}: {e}", files.cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls certificate {}: {e}", files.cert.display()))?;
    if certs.is_empty() {
        return Err(format!("tls certificate {}: no certificate in the file", files.cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| format!("tls key {}: {e}", files.key.display()))?;
    CertifiedKey::from_der(certs, key, provider).map_err(|e| {
        format!("tls: the key {} does not fit the certificate {}: {e}", files.key.display(), files.cert.display())
    })
}
