//! JWK Sets (`publisher_jwks_url`, `subscriber_jwks_url`, `file://`): served by a small HTTP(S)
//! server inside the test whose set the test changes and whose requests it counts; keys
//! (RSA, EC P-256, Ed25519) generated with `openssl` at test time (`common::tokens::key_pair`).
//!
//! What is checked against the real binary: a token signed with a served key is accepted for
//! each role and only for its role; algorithms are pinned (alg confusion, `none`, a key of the
//! wrong type, a configured algorithm list); a token without `kid` passes only when one key
//! fits; rotation (a new `kid` is fetched on first sight; a removed key is refused after the
//! periodic refresh, even for a token the hub remembered); the rate limit (a flood of unknown
//! `kid`s makes a bounded number of fetches); `file://`; HTTPS with a test CA
//! (`SSL_CERT_FILE`); and failures (unreachable, hanging, garbage, `503`, too big) answered
//! 401 in bounded time while the last good set stays in force.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::tokens::{KeyPair, alg_none, key_pair};
use common::*;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

const TOPIC: &str = "https://example.com/books/1";

// ---- the JWK Set server -------------------------------------------------------------------

/// What the test server answers.
#[derive(Clone)]
enum Answer {
    Json(String),
    Status(u16),
    /// Reads the request and never answers.
    Hang,
}

struct Served {
    answer: Mutex<Answer>,
    hits: AtomicUsize,
}

/// A JWK Set server on loopback: every request (any path) gets the current answer, then the
/// connection closes. Counts requests.
#[derive(Clone)]
struct JwksServer {
    addr: SocketAddr,
    served: Arc<Served>,
    scheme: &'static str,
}

impl JwksServer {
    async fn start(answer: Answer) -> Self {
        Self::start_inner(answer, None).await
    }

    /// The same over TLS, with the leaf certificate of `certs_dir` (see `common::certs`).
    async fn start_tls(answer: Answer, certs_dir: &Path) -> Self {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let chain = CertificateDer::pem_file_iter(certs_dir.join("leaf1.pem"))
            .expect("leaf1.pem")
            .collect::<Result<Vec<_>, _>>()
            .expect("parse leaf1.pem");
        let key = PrivateKeyDer::from_pem_file(certs_dir.join("leaf1.key")).expect("leaf1.key");
        let config =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("protocol versions")
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .expect("server certificate");
        Self::start_inner(answer, Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))).await
    }

    async fn start_inner(answer: Answer, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the JWKS server");
        let addr = listener.local_addr().expect("address");
        let served = Arc::new(Served { answer: Mutex::new(answer), hits: AtomicUsize::new(0) });
        let scheme = if tls.is_some() { "https" } else { "http" };
        let shared = served.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let served = shared.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        None => answer_one(stream, &served).await,
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                answer_one(stream, &served).await;
                            }
                        }
                    }
                });
            }
        });
        JwksServer { addr, served, scheme }
    }

    fn url(&self) -> String {
        format!("{}://{}/.well-known/jwks.json", self.scheme, self.addr)
    }

    fn set(&self, answer: Answer) {
        *self.served.answer.lock().unwrap() = answer;
    }

    fn serve_keys(&self, keys: &[Value]) {
        self.set(Answer::Json(jwk_set(keys)));
    }

    fn hits(&self) -> usize {
        self.served.hits.load(Ordering::SeqCst)
    }

    /// Waits until the server has seen more than `n` requests.
    async fn wait_hits_over(&self, n: usize, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        while self.hits() <= n {
            assert!(Instant::now() < deadline, "the hub did not fetch the JWK Set again within {timeout:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.hits()
    }
}

async fn answer_one<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, served: &Served) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > 16 * 1024 {
            return;
        }
    }
    served.hits.fetch_add(1, Ordering::SeqCst);
    let answer = served.answer.lock().unwrap().clone();
    let response = match answer {
        Answer::Json(body) => format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/jwk-set+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
        Answer::Status(code) => {
            format!("HTTP/1.1 {code} Nope\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnope")
        }
        Answer::Hang => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            return;
        }
    };
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

// ---- keys and tokens ----------------------------------------------------------------------

/// A signing key of the test, its algorithm and the `kid` it is published under.
struct TestKey {
    pair: KeyPair,
    alg: Algorithm,
    kid: &'static str,
}

impl TestKey {
    fn new(kind: &str, alg: Algorithm, kid: &'static str) -> Self {
        TestKey { pair: key_pair(kind), alg, kid }
    }

    /// The public JWK (with `kid` and `alg`).
    fn jwk(&self) -> Value {
        let mut jwk = Jwk::from_encoding_key(&self.pair.encoding_key(self.alg), self.alg).expect("JWK of the key");
        jwk.common.key_id = Some(self.kid.to_owned());
        serde_json::to_value(jwk).expect("JWK as JSON")
    }

    /// The public JWK without its `alg` member.
    fn jwk_without_alg(&self) -> Value {
        let mut v = self.jwk();
        v.as_object_mut().expect("object").remove("alg");
        v
    }

    fn sign(&self, claims: &Value) -> String {
        self.sign_as(Some(self.kid), claims)
    }

    fn sign_as(&self, kid: Option<&str>, claims: &Value) -> String {
        self.sign_with(self.alg, kid, claims)
    }

    /// Signs with this key pair under another algorithm of its type, or another `kid`.
    fn sign_with(&self, alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &self.pair.encoding_key(alg)).expect("sign")
    }

    /// A publisher token for every topic; `n` makes it a distinct token (not remembered).
    fn publisher(&self, n: u32) -> String {
        self.sign(&json!({"mercure": {"publish": ["*"]}, "n": n}))
    }

    fn subscriber(&self, n: u32) -> String {
        self.sign(&json!({"mercure": {"subscribe": ["*"]}, "n": n}))
    }
}

fn jwk_set(keys: &[Value]) -> String {
    json!({ "keys": keys }).to_string()
}

async fn publish_status(hub: &HubProcess, token: &str) -> u16 {
    publish(hub.addr(), token, &[("topic", TOPIC), ("data", "x")]).await.status
}

async fn subscribe_status(hub: &HubProcess, token: &str) -> u16 {
    let auth = format!("Bearer {token}");
    SseStream::status_of(hub.addr(), &subscribe_path(&[TOPIC], &[]), &[("Authorization", &auth)]).await.0
}

fn hub_with(directives: &str) -> HubProcess {
    HubProcess::start(&[("MERCURE_EXTRA_DIRECTIVES", directives)])
}

/// A metric of a JWK Set (labelled by role) from `/metrics`.
async fn jwks_metric(hub: &HubProcess, name: &str, role: &str) -> u64 {
    hub.metric(&format!("{name}{{role=\"{role}\"}}")).await
}

// ---- tests --------------------------------------------------------------------------------

#[tokio::test]
async fn each_role_accepts_the_keys_of_its_own_set_and_pins_algorithms() {
    let rsa = TestKey::new("rsa", Algorithm::RS256, "rsa-1");
    let ec = TestKey::new("ec256", Algorithm::ES256, "ec-1");
    let ed = TestKey::new("ed25519", Algorithm::EdDSA, "ed-1");
    let publishers = JwksServer::start(Answer::Json(jwk_set(&[rsa.jwk_without_alg()]))).await;
    let subscribers = JwksServer::start(Answer::Json(jwk_set(&[ec.jwk(), ed.jwk()]))).await;
    let hub = hub_with(&format!(
        "publisher_jwks_url {}\nsubscriber_jwks_url {}\nanonymous",
        publishers.url(),
        subscribers.url()
    ));

    assert_eq!(publish_status(&hub, &rsa.publisher(1)).await, 200, "RS256 key of the publisher set");
    // The RSA key has no `alg` of its own: any RSA algorithm fits it.
    let ps384 = rsa.sign_with(Algorithm::PS384, Some("rsa-1"), &json!({"mercure": {"publish": ["*"]}}));
    assert_eq!(publish_status(&hub, &ps384).await, 200, "PS384 with the same RSA key");
    assert_eq!(publish_status(&hub, &ec.publisher(3)).await, 401, "a subscriber key cannot publish");
    assert_eq!(subscribe_status(&hub, &ec.subscriber(4)).await, 200, "ES256 key of the subscriber set");
    assert_eq!(subscribe_status(&hub, &ed.subscriber(5)).await, 200, "EdDSA key of the subscriber set");
    assert_eq!(subscribe_status(&hub, &rsa.subscriber(6)).await, 401, "a publisher key cannot subscribe");

    // Algorithm confusion: the RSA public key (as PEM) used as an HMAC secret under its kid.
    let claims = json!({"mercure": {"publish": ["*"]}});
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some("rsa-1".into());
    let confused = jsonwebtoken::encode(&hs, &claims, &EncodingKey::from_secret(rsa.pair.public_pem.as_bytes()))
        .expect("sign HS256");
    assert_eq!(publish_status(&hub, &confused).await, 401, "HS256 with the public key as secret");
    assert_eq!(publish_status(&hub, &alg_none(&claims)).await, 401, "alg none");
    // The EC key's own `alg` is ES256 and its type is EC: an RSA signature under its kid fails.
    let wrong_type = rsa.sign_with(Algorithm::RS256, Some("ec-1"), &json!({"mercure": {"subscribe": ["*"]}}));
    assert_eq!(subscribe_status(&hub, &wrong_type).await, 401, "RS256 under an EC key's kid");
    // A signature by another key under a served kid.
    let impostor = TestKey::new("rsa", Algorithm::RS256, "rsa-1");
    assert_eq!(publish_status(&hub, &impostor.publisher(8)).await, 401, "signed by another RSA key");

    // No kid: the publisher set has one key, so it is the one; the subscriber set has two,
    // but only one fits ES256.
    assert_eq!(publish_status(&hub, &rsa.sign_as(None, &json!({"mercure": {"publish": ["*"]}}))).await, 200);
    assert_eq!(subscribe_status(&hub, &ec.sign_as(None, &json!({"mercure": {"subscribe": ["*"]}}))).await, 200);

    // Anonymous subscribers still get public updates; and both sets were fetched (once each
    // at start, and once per unknown kid at most: rsa-1's impostor was a known kid).
    let mut sub = SseStream::connect(hub.addr(), &subscribe_path(&[TOPIC], &[]), &[]).await;
    let id = publish_ok(hub.addr(), &rsa.publisher(9), &[("topic", TOPIC), ("data", "hello")]).await;
    assert_event(&sub.next_event().await, &id, "hello");
    assert!(publishers.hits() >= 1 && subscribers.hits() >= 1);
    assert_eq!(jwks_metric(&hub, "mercure_jwks_keys", "publisher").await, 1);
    assert_eq!(jwks_metric(&hub, "mercure_jwks_keys", "subscriber").await, 2);
}

#[tokio::test]
async fn a_configured_algorithm_list_and_ambiguous_tokens_without_kid() {
    let rsa1 = TestKey::new("rsa", Algorithm::RS256, "r1");
    let rsa2 = TestKey::new("rsa", Algorithm::RS256, "r2");
    let ec = TestKey::new("ec256", Algorithm::ES256, "e1");
    let server = JwksServer::start(Answer::Json(jwk_set(&[rsa1.jwk(), rsa2.jwk(), ec.jwk()]))).await;
    let hub = hub_with(&format!("publisher_jwks_url {} ES256", server.url()));
    assert_eq!(publish_status(&hub, &ec.publisher(1)).await, 200, "ES256 is the configured algorithm");
    assert_eq!(publish_status(&hub, &rsa1.publisher(2)).await, 401, "RS256 is not configured");

    let hub = hub_with(&format!("publisher_jwks_url {}", server.url()));
    let no_kid = |k: &TestKey| k.sign_as(None, &json!({"mercure": {"publish": ["*"]}}));
    assert_eq!(publish_status(&hub, &no_kid(&rsa1)).await, 401, "two RSA keys fit a token without kid");
    assert_eq!(publish_status(&hub, &no_kid(&ec)).await, 200, "one EC key fits");
    assert_eq!(publish_status(&hub, &rsa2.publisher(3)).await, 200, "with its kid, r2 is found");

    // An HMAC algorithm cannot be configured for a set.
    let (code, out) = run_to_exit(
        &[("MERCURE_EXTRA_DIRECTIVES", &format!("publisher_jwks_url {} HS256", server.url()))],
        &[],
        Duration::from_secs(10),
    );
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("HS256"), "{out}");
}

#[tokio::test]
async fn a_new_key_is_fetched_on_first_sight_and_the_rate_limit_holds_between() {
    let old = TestKey::new("rsa", Algorithm::RS256, "2026-11");
    let new = TestKey::new("ec256", Algorithm::ES256, "2026-12");
    let server = JwksServer::start(Answer::Json(jwk_set(&[old.jwk()]))).await;
    let hub = hub_with(&format!(
        "publisher_jwks_url {}\njwks_min_refresh_interval 1s\njwks_refresh_interval 1h",
        server.url()
    ));
    let old_token = old.publisher(1);
    assert_eq!(publish_status(&hub, &old_token).await, 200);
    let after_start = server.wait_hits_over(0, Duration::from_secs(5)).await;
    assert_eq!(after_start, 1, "one fetch at start");

    // The identity provider rotates: the new key replaces the old one.
    server.serve_keys(&[new.jwk()]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(publish_status(&hub, &new.publisher(2)).await, 200, "the new kid was fetched on first sight");
    assert_eq!(server.hits(), 2, "exactly one refresh for it");
    // The old key is gone from the set now in force: its token (remembered before) is refused,
    // and, inside the rate limit's interval, without another fetch.
    assert_eq!(publish_status(&hub, &old_token).await, 401);
    assert_eq!(publish_status(&hub, &new.sign_as(Some("never-published"), &json!({}))).await, 401);
    assert_eq!(server.hits(), 2, "unknown kids inside the interval fetch nothing");
    assert_eq!(jwks_metric(&hub, "mercure_jwks_refreshes_total", "publisher+subscriber").await, 2);
}

#[tokio::test]
async fn a_removed_key_is_refused_after_the_periodic_refresh() {
    let k1 = TestKey::new("rsa", Algorithm::RS256, "k1");
    let k2 = TestKey::new("ec256", Algorithm::ES256, "k2");
    let server = JwksServer::start(Answer::Json(jwk_set(&[k1.jwk(), k2.jwk()]))).await;
    // The rate limit (an hour) keeps unknown kids from refreshing: only the periodic refresh
    // (every second) can bring the new set.
    let hub = hub_with(&format!(
        "publisher_jwks_url {}\njwks_refresh_interval 1s\njwks_min_refresh_interval 1h",
        server.url()
    ));
    let (pub1, sub1) = (k1.publisher(1), k1.subscriber(1));
    for _ in 0..2 {
        // Twice: the second time from the remembered tokens.
        assert_eq!(publish_status(&hub, &pub1).await, 200);
        assert_eq!(subscribe_status(&hub, &sub1).await, 200, "the subscriber role uses the publisher's set");
        assert_eq!(publish_status(&hub, &k2.publisher(1)).await, 200);
    }
    server.serve_keys(&[k2.jwk()]);
    let seen = server.hits();
    server.wait_hits_over(seen, Duration::from_secs(5)).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while jwks_metric(&hub, "mercure_jwks_keys", "publisher+subscriber").await != 1 {
        assert!(Instant::now() < deadline, "the new set was not installed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(publish_status(&hub, &pub1).await, 401, "a remembered token of the removed key");
    assert_eq!(subscribe_status(&hub, &sub1).await, 401, "for both roles");
    assert_eq!(publish_status(&hub, &k2.publisher(1)).await, 200, "the remaining key still works");
    let periodic = server.hits();
    server.wait_hits_over(periodic, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_flood_of_unknown_kids_makes_at_most_one_fetch_per_interval() {
    let key = TestKey::new("ec256", Algorithm::ES256, "real");
    let server = JwksServer::start(Answer::Json(jwk_set(&[key.jwk()]))).await;
    let started = Instant::now();
    let hub = hub_with(&format!(
        "publisher_jwks_url {}\njwks_min_refresh_interval 1s\njwks_refresh_interval 1h",
        server.url()
    ));
    assert_eq!(publish_status(&hub, &key.publisher(0)).await, 200);

    let flood_for = Duration::from_millis(2500);
    let sent = Arc::new(AtomicUsize::new(0));
    let slowest = Arc::new(Mutex::new(Duration::ZERO));
    let mut tasks = Vec::new();
    for t in 0..16u32 {
        let (sent, slowest, addr) = (sent.clone(), slowest.clone(), hub.addr());
        let tokens: Vec<String> = (0..400u32)
            .map(|i| key.sign_as(Some(&format!("made-up-{t}-{i}")), &json!({"mercure": {"publish": ["*"]}})))
            .collect();
        tasks.push(tokio::spawn(async move {
            let end = Instant::now() + flood_for;
            for token in tokens {
                if Instant::now() >= end {
                    break;
                }
                let at = Instant::now();
                let status = publish(addr, &token, &[("topic", TOPIC), ("data", "x")]).await.status;
                assert_eq!(status, 401);
                let took = at.elapsed();
                let mut s = slowest.lock().unwrap();
                *s = (*s).max(took);
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.expect("flood task");
    }
    let elapsed = started.elapsed();
    let sent = sent.load(Ordering::Relaxed);
    let hits = server.hits();
    // Fetch starts are at least 1 s apart, counting the one at start.
    let allowed = 1 + elapsed.as_secs() as usize;
    assert!(sent >= 50, "only {sent} requests were sent");
    assert!(hits >= 2, "unknown kids never triggered a refresh ({hits} fetches)");
    assert!(hits <= allowed, "{hits} fetches for {sent} unknown kids in {elapsed:?}; at most {allowed} allowed");
    let slowest = *slowest.lock().unwrap();
    assert!(slowest < Duration::from_secs(5), "a request waited {slowest:?} (fetch timeout 5 s)");
    // The real key still works.
    assert_eq!(publish_status(&hub, &key.publisher(1)).await, 200);
}

#[tokio::test]
async fn a_file_set_is_read_and_reread() {
    let k1 = TestKey::new("ed25519", Algorithm::EdDSA, "f1");
    let k2 = TestKey::new("rsa", Algorithm::RS256, "f2");
    let dir = fresh_work_dir();
    let path = dir.join("jwks.json");
    std::fs::write(&path, jwk_set(&[k1.jwk()])).expect("write jwks.json");
    let hub = hub_with(&format!("publisher_jwks_url file://{}\njwks_min_refresh_interval 500ms", path.display()));
    assert_eq!(publish_status(&hub, &k1.publisher(1)).await, 200);
    assert_eq!(subscribe_status(&hub, &k1.subscriber(1)).await, 200);
    assert_eq!(publish_status(&hub, &k2.publisher(1)).await, 401, "not in the file yet");

    std::fs::write(&path, jwk_set(&[k2.jwk()])).expect("rewrite jwks.json");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(publish_status(&hub, &k2.publisher(2)).await, 200, "re-read on an unknown kid");
    assert_eq!(publish_status(&hub, &k1.publisher(1)).await, 401, "f1 was removed from the file");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn https_with_a_trusted_ca_and_not_without() {
    let certs = common::certs::certs();
    let key = TestKey::new("ec256", Algorithm::ES256, "tls");
    let server = JwksServer::start_tls(Answer::Json(jwk_set(&[key.jwk()])), &certs).await;
    let directives = format!("publisher_jwks_url {}", server.url());
    let ca = certs.join("ca.pem");
    let trusted = HubProcess::start(&[
        ("MERCURE_EXTRA_DIRECTIVES", directives.as_str()),
        ("SSL_CERT_FILE", ca.to_str().expect("UTF-8 path")),
    ]);
    assert_eq!(publish_status(&trusted, &key.publisher(1)).await, 200, "logs:\n{}", trusted.logs());

    let untrusted = hub_with(&directives);
    assert_eq!(publish_status(&untrusted, &key.publisher(1)).await, 401);
    assert!(untrusted.wait_for_log("JWK Set refresh failed", Duration::from_secs(5)), "{}", untrusted.logs());
    let _ = std::fs::remove_dir_all(&certs);
}

#[tokio::test]
async fn an_unreachable_or_hanging_set_gives_401_in_bounded_time() {
    let key = TestKey::new("ec256", Algorithm::ES256, "k");
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    let hub = hub_with(&format!("publisher_jwks_url http://{closed}/jwks.json"));
    assert_eq!(publish_status(&hub, &key.publisher(1)).await, 401);
    assert!(hub.wait_for_log("JWK Set refresh failed", Duration::from_secs(5)), "{}", hub.logs());
    assert!(jwks_metric(&hub, "mercure_jwks_refresh_failures_total", "publisher+subscriber").await >= 1);
    assert_eq!(request(hub.addr(), "GET", "/healthz", &[], None).await.status, 200, "the hub serves");

    let hanging = JwksServer::start(Answer::Hang).await;
    let hub = hub_with(&format!("publisher_jwks_url {}\njwks_fetch_timeout 1s", hanging.url()));
    let at = Instant::now();
    assert_eq!(publish_status(&hub, &key.publisher(1)).await, 401);
    assert!(at.elapsed() < Duration::from_secs(4), "waited {:?} with a 1 s fetch timeout", at.elapsed());
    assert!(hub.wait_for_log("no answer within", Duration::from_secs(5)), "{}", hub.logs());
}

#[tokio::test]
async fn a_failing_refresh_keeps_the_last_good_set() {
    let k1 = TestKey::new("ec256", Algorithm::ES256, "k1");
    let k2 = TestKey::new("rsa", Algorithm::RS256, "k2");
    let server = JwksServer::start(Answer::Json(jwk_set(&[k1.jwk()]))).await;
    let hub = hub_with(&format!(
        "publisher_jwks_url {}\njwks_refresh_interval 1s\njwks_min_refresh_interval 300ms\njwks_max_size 64KiB",
        server.url()
    ));
    assert_eq!(publish_status(&hub, &k1.publisher(0)).await, 200);

    let too_big = jwk_set(&vec![k2.jwk(); 200]);
    assert!(too_big.len() > 64 * 1024);
    let failures = [
        ("garbage", Answer::Json("<html>maintenance</html>".into())),
        ("503", Answer::Status(503)),
        ("no keys array", Answer::Json("{\"keys\": 7}".into())),
        ("too big", Answer::Json(too_big)),
    ];
    for (n, (what, answer)) in failures.into_iter().enumerate() {
        let before = jwks_metric(&hub, "mercure_jwks_refresh_failures_total", "publisher+subscriber").await;
        server.set(answer);
        let deadline = Instant::now() + Duration::from_secs(5);
        while jwks_metric(&hub, "mercure_jwks_refresh_failures_total", "publisher+subscriber").await == before {
            assert!(Instant::now() < deadline, "{what}: no failed refresh seen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // A token not seen before, so its signature is checked against the set in force.
        assert_eq!(publish_status(&hub, &k1.publisher(n as u32 + 1)).await, 200, "{what}: last good set kept");
        assert_eq!(publish_status(&hub, &k2.publisher(n as u32 + 1)).await, 401, "{what}");
    }
    assert!(hub.logs().contains("larger than 65536 bytes"), "{}", hub.logs());
    assert!(hub.logs().contains("answered 503"), "{}", hub.logs());

    // Back to a good set (rotated): it is installed and used.
    server.serve_keys(&[k2.jwk()]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while publish_status(&hub, &k2.publisher(99)).await != 200 {
        assert!(Instant::now() < deadline, "the good set never came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(publish_status(&hub, &k1.publisher(99)).await, 401);
}
