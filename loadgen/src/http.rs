//! A minimal one-shot HTTP/1.1 GET over hyper, for `/metrics` and `/healthz` probes.
//! Plain `http://` only; the body is capped at 16 MiB.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use std::time::Duration;

/// GETs `url` and returns the status and body text.
pub async fn get(url: &str, limit: Duration) -> Result<(u16, String), String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("bad url {url}: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("only http:// is supported here: {url}"));
    }
    let authority = uri.authority().ok_or("url without host")?.clone();
    let port = authority.port_u16().unwrap_or(80);
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let fut = async move {
        let stream =
            tokio::net::TcpStream::connect((authority.host(), port)).await.map_err(|e| format!("connect: {e}"))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(conn);
        let req = hyper::Request::get(path)
            .header(hyper::header::HOST, authority.as_str())
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| format!("request: {e}"))?;
        let status = resp.status().as_u16();
        let body =
            Limited::new(resp.into_body(), 16 << 20).collect().await.map_err(|e| format!("body: {e}"))?.to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    };
    tokio::time::timeout(limit, fut).await.map_err(|_| "timeout".to_string())?
}

/// GETs `url`, requiring a 2xx status.
pub async fn get_text(url: &str, limit: Duration) -> Result<String, String> {
    let (status, body) = get(url, limit).await?;
    if (200..300).contains(&status) { Ok(body) } else { Err(format!("status {status}")) }
}
