//! Launches the real hub for integration tests.
//!
//! The binary is `MERCURE_HUB_BIN` if set, else `target/{release,debug}/mercure-hub`
//! under `CARGO_TARGET_DIR` or the workspace; if none exists it is built once with
//! `cargo build -p mercure-hub --bin mercure-hub` (respecting `CARGO_TARGET_DIR`). The hub
//! runs with `SERVER_NAME=127.0.0.1:0` in a scratch directory, and its bound address is
//! read from its log line containing `listening` and `addr=127.0.0.1:PORT` (plain or
//! ANSI-colored tracing output, or JSON `"addr":"…"`). The process is killed on drop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The demo key both sides use.
pub const KEY: &str = "!ChangeThisMercureHubJWTSecretKey!";

/// A running hub.
pub struct Hub {
    child: Child,
    /// `http://127.0.0.1:PORT/.well-known/mercure`.
    pub url: String,
    /// Its pid.
    pub pid: u32,
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// The hub binary, built if needed (once per test process).
pub fn binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("MERCURE_HUB_BIN") {
            return PathBuf::from(p);
        }
        let t = target_dir();
        // The most recently built of release/debug: the other may be stale.
        let newest = [t.join("release/mercure-hub"), t.join("debug/mercure-hub")]
            .into_iter()
            .filter_map(|p| std::fs::metadata(&p).and_then(|m| m.modified()).ok().map(|m| (m, p)))
            .max_by_key(|(m, _)| *m);
        if let Some((_, p)) = newest {
            return p;
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "mercure-hub", "--bin", "mercure-hub"])
            .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
            .status()
            .expect("run cargo build for the hub");
        assert!(status.success(), "building mercure-hub failed");
        t.join("debug/mercure-hub")
    })
    .clone()
}

/// Extracts `127.0.0.1:PORT` from a `listening` log line.
pub fn parse_addr(line: &str) -> Option<String> {
    // Strip ANSI escapes (ESC [ ... letter).
    let mut clean = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            clean.push(c);
        }
    }
    if !clean.contains("listening") {
        return None;
    }
    let rest = clean.split_once("addr=").map(|(_, r)| r).or_else(|| clean.split_once("\"addr\":\"").map(|(_, r)| r))?;
    let addr: String = rest.chars().take_while(|c| !c.is_whitespace() && *c != '"' && *c != ',').collect();
    (!addr.is_empty()).then_some(addr)
}

/// Starts the hub with the demo keys, `anonymous` and `extra_directives`.
pub fn start(extra_directives: &str, dir: &Path) -> Hub {
    let bin = binary();
    let mut directives = String::from("anonymous");
    if !extra_directives.is_empty() {
        directives.push('\n');
        directives.push_str(extra_directives);
    }
    let mut child = Command::new(&bin)
        .current_dir(dir)
        .env("SERVER_NAME", "127.0.0.1:0")
        .env("MERCURE_PUBLISHER_JWT_KEY", KEY)
        .env("MERCURE_SUBSCRIBER_JWT_KEY", KEY)
        .env("MERCURE_EXTRA_DIRECTIVES", directives)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
    let pid = child.id();
    let stderr = child.stderr.take().expect("hub stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !sent && let Some(a) = parse_addr(&line) {
                let _ = tx.send(a);
                sent = true;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let addr = loop {
        if let Ok(a) = rx.recv_timeout(Duration::from_millis(100)) {
            break a;
        }
        if let Ok(Some(st)) = child.try_wait() {
            panic!("hub {} exited before listening: {st}", bin.display());
        }
        assert!(Instant::now() < deadline, "hub did not log its address in 20 s");
    };
    Hub { child, url: format!("http://{addr}/.well-known/mercure"), pid }
}

#[test]
fn parses_log_formats() {
    let plain = "2026-11-22T04:48:30Z  INFO mercure_hub: listening addr=127.0.0.1:3999";
    assert_eq!(parse_addr(plain).as_deref(), Some("127.0.0.1:3999"));
    let ansi = "\u{1b}[32m INFO\u{1b}[0m \u{1b}[2mmercure_hub\u{1b}[0m\u{1b}[2m:\u{1b}[0m listening \u{1b}[3maddr\u{1b}[0m\u{1b}[2m=\u{1b}[0m127.0.0.1:41234";
    assert_eq!(parse_addr(ansi).as_deref(), Some("127.0.0.1:41234"));
    let json = r#"{"level":"INFO","fields":{"message":"listening","addr":"127.0.0.1:5"}}"#;
    assert_eq!(parse_addr(json).as_deref(), Some("127.0.0.1:5"));
    assert_eq!(parse_addr("addr=1.2.3.4:5 starting"), None);
}
