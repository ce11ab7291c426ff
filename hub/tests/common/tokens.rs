//! Signing tokens for tests: HMAC with a shared key, PEM key pairs made with the `openssl`
//! command at test time, and hand-built tokens (`alg: none`).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// The HMAC key most tests configure as `MERCURE_PUBLISHER_JWT_KEY`.
pub const KEY: &str = "integration-test-publisher-key-0123456789";

/// Signs `claims` with HS256.
pub fn hs256(key: &str, claims: &Value) -> String {
    sign(Algorithm::HS256, &EncodingKey::from_secret(key.as_bytes()), claims)
}

pub fn sign(alg: Algorithm, key: &EncodingKey, claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, key).expect("sign token")
}

/// A token allowed to publish to `selectors`, signed with [`KEY`].
pub fn publisher_token(selectors: &[&str]) -> String {
    hs256(KEY, &json!({"mercure": {"publish": selectors}}))
}

/// A token allowed to receive private updates matching `selectors`, signed with [`KEY`].
pub fn subscriber_token(selectors: &[&str]) -> String {
    hs256(KEY, &json!({"mercure": {"subscribe": selectors}}))
}

/// Seconds since the epoch, `offset` from now (negative: in the past).
pub fn unix_time(offset: i64) -> i64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs() as i64;
    now + offset
}

/// The instant an integer `exp` claim designates.
pub fn exp_instant(exp: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(exp as u64)
}

/// An unsigned token (`{"alg":"none"}`) carrying `claims`.
pub fn alg_none(claims: &Value) -> String {
    let header = base64url(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = base64url(claims.to_string().as_bytes());
    format!("{header}.{payload}.")
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// A PEM key pair written by `openssl` into a temporary directory (removed on drop).
pub struct KeyPair {
    dir: PathBuf,
    pub private_pem: String,
    pub public_pem: String,
}

impl Drop for KeyPair {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether the `openssl` command is available.
pub fn has_openssl() -> bool {
    Command::new("openssl").arg("version").output().is_ok_and(|o| o.status.success())
}

/// Generates a key pair: `kind` is `rsa`, `ec256`, `ec384` or `ed25519`. Panics when `openssl`
/// is missing or fails: a test that needs keys must not pass without them (`scripts/test`
/// installs `openssl` when it is missing).
pub fn key_pair(kind: &str) -> KeyPair {
    assert!(
        has_openssl(),
        "the `openssl` command is not installed, so no {kind} key can be generated: run `scripts/test` \
         (it installs openssl) or `apt-get install openssl`"
    );
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("mercure-hub-test-{}-{n}-{kind}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create key dir");
    let private = dir.join("private.pem");
    let public = dir.join("public.pem");
    let gen_args: &[&str] = match kind {
        "rsa" => &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        "ec256" => &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "ec384" => &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
        "ed25519" => &["-algorithm", "ed25519"],
        other => panic!("unknown key kind {other}"),
    };
    let out = Command::new("openssl")
        .arg("genpkey")
        .args(gen_args)
        .arg("-out")
        .arg(&private)
        .output()
        .expect("run openssl genpkey");
    assert!(out.status.success(), "openssl genpkey {kind}: {}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&private)
        .arg("-out")
        .arg(&public)
        .output()
        .expect("run openssl pkey");
    assert!(out.status.success(), "openssl pkey -pubout {kind}: {}", String::from_utf8_lossy(&out.stderr));
    let read = |p: &PathBuf| std::fs::read_to_string(p).expect("read PEM");
    KeyPair { private_pem: read(&private), public_pem: read(&public), dir }
}

impl KeyPair {
    /// The signing key for `alg`.
    pub fn encoding_key(&self, alg: Algorithm) -> EncodingKey {
        let pem = self.private_pem.as_bytes();
        match alg {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => EncodingKey::from_rsa_pem(pem),
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(pem),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(pem),
            other => panic!("no PEM signing for {other:?}"),
        }
        .expect("parse private PEM")
    }

    pub fn sign(&self, alg: Algorithm, claims: &Value) -> String {
        sign(alg, &self.encoding_key(alg), claims)
    }
}
