//! Retrieving a JWK Set document: `http://`, `https://` or `file://`, bounded in time and size.
//!
//! Invariants: one retrieval takes at most `timeout` in all (connect, TLS, redirects, body,
//! or the file read) and at most `max_bytes` of body are read (a longer `Content-Length` is
//! refused before reading; a body that grows past it is cut off and refused). Only a `200`
//! answer is a document; up to [`MAX_REDIRECTS`] redirects are followed, never from
//! `https://` to `http://`.
//!
//! HTTPS uses rustls (aws-lc-rs) with the system's trusted CAs, read once per process by
//! rustls-native-certs, which honours `SSL_CERT_FILE` and `SSL_CERT_DIR` (a private identity
//! provider's CA can be added that way). With no CA found, `https://` retrievals fail with a
//! message saying so; `http://` and `file://` still work.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::header::{ACCEPT, CONTENT_LENGTH, LOCATION, USER_AGENT};
use hyper::{Request, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::io::AsyncReadExt;

/// Redirects followed before giving up (the Go hub's HTTP client follows 10; identity
/// providers use at most one or two).
pub const MAX_REDIRECTS: usize = 5;

/// Where a JWK Set lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Http(Uri),
    File(PathBuf),
}

impl Location {
    /// `http://…`, `https://…`, or `file:///absolute/path` (`file://localhost/…` too, as in
    /// the Go hub; percent-escapes in the path are decoded).
    pub fn parse(url: &str) -> Result<Self, String> {
        let url = url.trim();
        if let Some(rest) = url.strip_prefix("file://") {
            let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            if !(host.is_empty() || host.eq_ignore_ascii_case("localhost")) {
                return Err(format!("{url:?}: a file:// URL has no host (file:///path or file://localhost/path)"));
            }
            if path.is_empty() {
                return Err(format!("{url:?}: no file path"));
            }
            let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy().into_owned();
            return Ok(Location::File(PathBuf::from(decoded)));
        }
        let uri: Uri = url.parse().map_err(|e| format!("{url:?}: {e}"))?;
        match (uri.scheme_str(), uri.authority()) {
            (Some("http" | "https"), Some(_)) => Ok(Location::Http(uri)),
            _ => Err(format!("{url:?}: expected an http://, https:// or file:// URL")),
        }
    }
}

type HttpClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// Retrieves one location's document.
pub struct Fetcher {
    location: Location,
    max_bytes: usize,
    timeout: Duration,
}

impl Fetcher {
    pub fn new(location: Location, max_bytes: usize, timeout: Duration) -> Self {
        Fetcher { location, max_bytes, timeout }
    }

    /// The document's bytes, or why there are none.
    ///
    /// # Cancel safety
    /// Dropping the future abandons the retrieval; nothing is left half-done.
    pub async fn fetch(&self) -> Result<Bytes, String> {
        let work = async {
            match &self.location {
                Location::Http(uri) => self.fetch_http(uri.clone()).await,
                Location::File(path) => self.read_file(path).await,
            }
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| format!("no answer within {:?} (jwks_fetch_timeout)", self.timeout))?
    }

    async fn fetch_http(&self, mut uri: Uri) -> Result<Bytes, String> {
        let client = client()?;
        for _ in 0..=MAX_REDIRECTS {
            let req = Request::get(uri.clone())
                .header(ACCEPT, "application/jwk-set+json, application/json")
                .header(USER_AGENT, concat!("mercure-hub/", env!("CARGO_PKG_VERSION")))
                .body(Empty::new())
                .map_err(|e| format!("request: {e}"))?;
            let resp = client.request(req).await.map_err(|e| describe(&e))?;
            let status = resp.status();
            if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
                uri = redirect_target(&uri, resp.headers().get(LOCATION))?;
                continue;
            }
            if status != StatusCode::OK {
                return Err(format!("answered {status}"));
            }
            let announced = resp.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            if announced.is_some_and(|n| n > self.max_bytes as u64) {
                return Err(self.too_big());
            }
            let body = Limited::new(resp.into_body(), self.max_bytes).collect().await.map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() { self.too_big() } else { format!("reading the body: {e}") }
            })?;
            return Ok(body.to_bytes());
        }
        Err(format!("more than {MAX_REDIRECTS} redirects"))
    }

    async fn read_file(&self, path: &PathBuf) -> Result<Bytes, String> {
        let file = tokio::fs::File::open(path).await.map_err(|e| format!("{}: {e}", path.display()))?;
        let mut bytes = Vec::new();
        // One byte more than allowed, to tell "exactly at the limit" from "past it".
        file.take(self.max_bytes as u64 + 1)
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if bytes.len() > self.max_bytes {
            return Err(self.too_big());
        }
        Ok(Bytes::from(bytes))
    }

    fn too_big(&self) -> String {
        format!("larger than {} bytes (jwks_max_size)", self.max_bytes)
    }
}

/// The next URI of a redirect: an absolute `Location`, or a path on the same origin. Never
/// from `https://` down to `http://`.
fn redirect_target(from: &Uri, location: Option<&hyper::header::HeaderValue>) -> Result<Uri, String> {
    let location = location.and_then(|v| v.to_str().ok()).ok_or("a redirect without a usable Location")?;
    let next: Uri = if location.starts_with('/') && !location.starts_with("//") {
        let mut parts = from.clone().into_parts();
        parts.path_and_query = Some(location.parse().map_err(|e| format!("redirect to {location:?}: {e}"))?);
        Uri::from_parts(parts).map_err(|e| format!("redirect to {location:?}: {e}"))?
    } else {
        location.parse().map_err(|e| format!("redirect to {location:?}: {e}"))?
    };
    match (from.scheme_str(), next.scheme_str(), next.authority()) {
        (Some("https"), Some("http"), _) => Err(format!("refused redirect from https:// to {location:?}")),
        (_, Some("http" | "https"), Some(_)) => Ok(next),
        _ => Err(format!("redirect to {location:?}: not an http(s) URL")),
    }
}

/// hyper's client errors print as "client error (Connect)"; the cause says what happened.
fn describe(e: &hyper_util::client::legacy::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The process's one HTTP(S) client: built on first use (it reads the system's CAs), shared by
/// every JWK Set. Keeps at most one idle connection per host between refreshes.
fn client() -> Result<&'static HttpClient, String> {
    static CLIENT: OnceLock<Result<HttpClient, String>> = OnceLock::new();
    CLIENT.get_or_init(build_client).as_ref().map_err(Clone::clone)
}

fn build_client() -> Result<HttpClient, String> {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::warn!(error = %e, "reading the system's trusted CA certificates");
    }
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        tracing::warn!(
            "no trusted CA certificate found (install ca-certificates, or set SSL_CERT_FILE): https:// JWK Set URLs will fail"
        );
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS client: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(1)
        .pool_idle_timeout(Duration::from_secs(90))
        .build(https))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        assert_eq!(Location::parse("file:///etc/jwks.json").unwrap(), Location::File("/etc/jwks.json".into()));
        assert_eq!(Location::parse("file://localhost/a%20b.json").unwrap(), Location::File("/a b.json".into()));
        assert!(Location::parse("file://keys.json").is_err(), "a host is not a path");
        assert!(Location::parse("file://").is_err());
        assert!(matches!(Location::parse("https://idp.example/jwks").unwrap(), Location::Http(_)));
        assert!(matches!(Location::parse("http://127.0.0.1:8080/k").unwrap(), Location::Http(_)));
        assert!(Location::parse("ftp://x/y").is_err());
        assert!(Location::parse("/etc/jwks.json").is_err());
        assert!(Location::parse("https://").is_err());
    }

    #[test]
    fn redirects() {
        let from: Uri = "https://idp.example/a?x=1".parse().unwrap();
        let hv = |s: &'static str| hyper::header::HeaderValue::from_static(s);
        assert_eq!(redirect_target(&from, Some(&hv("/b"))).unwrap(), "https://idp.example/b");
        assert_eq!(redirect_target(&from, Some(&hv("https://other.example/c"))).unwrap(), "https://other.example/c");
        assert!(redirect_target(&from, Some(&hv("http://idp.example/b"))).is_err(), "no downgrade");
        assert!(redirect_target(&from, None).is_err());
        assert!(redirect_target(&from, Some(&hv("file:///etc/passwd"))).is_err());
        let plain: Uri = "http://idp.example/a".parse().unwrap();
        assert!(redirect_target(&plain, Some(&hv("https://idp.example/b"))).is_ok(), "upgrades are fine");
    }
}
