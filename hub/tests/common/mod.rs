//! The one helper every integration test goes through: boot the real `mercure-hub` binary on
//! `127.0.0.1:0`, talk HTTP/1.1 and SSE to it over loopback, sign tokens, read its logs.
//!
//! # Layout
//! - [`HubProcess`]: the child process, its address, its logs (drained by a thread), signals.
//! - [`http`]: a minimal HTTP/1.1 client on a raw `TcpStream` (de-chunks, never pools, so
//!   connection counts are exactly what a test opens).
//! - [`sse`]: an SSE client on top of it that yields events and comment lines.
//! - [`tokens`]: JWT signing helpers (HMAC, and PEM keys generated with `openssl`).
//! - [`certs`]: a test CA and leaf certificates generated with `openssl`.
//! - [`raw`]: misbehaving clients (a subscriber that never reads) and big publishes.
//! - [`redis`]: a private `redis-server` per test (cluster tests).
//!
//! Every wait is bounded: a test that does not get what it waits for fails with a message,
//! it never hangs.

// Each test file compiles this module on its own and uses a different subset of it.
#![allow(dead_code, unused_imports)]

pub mod certs;
pub mod http;
pub mod raw;
pub mod redis;
pub mod sse;
pub mod tokens;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub use http::{Response, form, publish, publish_ok, request, subscribe_path};
pub use sse::{Event, SseStream, assert_event};
pub use tokens::{KEY, hs256, publisher_token, subscriber_token};

/// The hub binary built by cargo for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_mercure-hub");

/// How long a hub may take to say it is listening (a debug build on a busy machine).
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The stderr of a hub, filled line by line by a reader thread.
#[derive(Default)]
struct LogBuffer {
    text: Mutex<String>,
    grew: Condvar,
}

/// A running hub. Dropping it kills the process (SIGKILL) and reaps it.
pub struct HubProcess {
    child: Child,
    addr: SocketAddr,
    logs: Arc<LogBuffer>,
    /// The working directory the harness created for this hub (its default history file lives
    /// there), removed on drop; `None` when the caller chose the directory (`start_in`).
    own_dir: Option<PathBuf>,
}

/// A new, empty directory under cargo's per-target temporary directory. Not removed
/// automatically: a test that restarts a hub in it needs it to outlive the first hub.
pub fn fresh_work_dir() -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("hub-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a work dir");
    dir
}

impl HubProcess {
    /// Starts the hub with exactly these environment variables (plus `SERVER_NAME` on an
    /// ephemeral loopback port and text logs at `info`), in a fresh working directory of its
    /// own, and waits until it listens.
    pub fn start(env: &[(&str, &str)]) -> Self {
        Self::start_with_args(env, &[])
    }

    /// A hub with the shared HMAC key [`KEY`] and these `MERCURE_EXTRA_DIRECTIVES`.
    pub fn with_directives(directives: &str) -> Self {
        Self::start(&[("MERCURE_PUBLISHER_JWT_KEY", KEY), ("MERCURE_EXTRA_DIRECTIVES", directives)])
    }

    pub fn start_with_args(env: &[(&str, &str)], args: &[&str]) -> Self {
        let dir = fresh_work_dir();
        let mut hub = Self::start_in(&dir, env, args);
        hub.own_dir = Some(dir);
        hub
    }

    /// Starts the hub in a given working directory (where its default history file lives), so
    /// a test can stop it and start another on the same history. The caller owns `dir`.
    pub fn start_in(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Self {
        let mut child = command(env, args).current_dir(dir).stderr(Stdio::piped()).spawn().expect("spawn mercure-hub");
        let logs = Arc::new(LogBuffer::default());
        let stderr = child.stderr.take().expect("piped stderr");
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut text = sink.text.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
                sink.grew.notify_all();
            }
        });
        let mut hub = HubProcess { child, addr: SocketAddr::from(([127, 0, 0, 1], 0)), logs, own_dir: None };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(addr) = parse_listening(&hub.logs()) {
                hub.addr = addr;
                return hub;
            }
            if let Ok(Some(status)) = hub.child.try_wait() {
                std::thread::sleep(Duration::from_millis(50));
                panic!("mercure-hub exited ({status}) before listening; logs:\n{}", hub.logs());
            }
            assert!(
                Instant::now() < deadline,
                "mercure-hub did not listen within {START_TIMEOUT:?}; logs:\n{}",
                hub.logs()
            );
            hub.wait_log_change(Duration::from_millis(50));
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the hub wrote to stderr so far.
    pub fn logs(&self) -> String {
        self.logs.text.lock().unwrap().clone()
    }

    fn wait_log_change(&self, max: Duration) {
        let text = self.logs.text.lock().unwrap();
        let _ = self.logs.grew.wait_timeout(text, max).unwrap();
    }

    /// Waits until the logs contain `needle`; false after `timeout`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut text = self.logs.text.lock().unwrap();
        loop {
            if text.contains(needle) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            text = self.logs.grew.wait_timeout(text, left.min(Duration::from_millis(100))).unwrap().0;
        }
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status().expect("run kill");
        assert!(status.success(), "kill -TERM {} failed", self.pid());
    }

    /// Waits for the process to exit; `None` after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Resident memory of the hub, in KiB (`VmRSS` of `/proc/PID/status`).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("read /proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// The value of a counter or gauge from `GET /metrics`.
    pub async fn metric(&self, name: &str) -> u64 {
        // A hub at its connection ceiling answers 503 until a slot frees: retry a little.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut resp = request(self.addr, "GET", "/metrics", &[], None).await;
        while resp.status == 503 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            resp = request(self.addr, "GET", "/metrics", &[], None).await;
        }
        assert_eq!(resp.status, 200, "GET /metrics");
        let text = resp.text();
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("metric {name} not found in:\n{text}"))
    }

    /// Polls `metric` until it equals `want`; returns the last value seen.
    pub async fn wait_metric(&self, name: &str, want: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.metric(name).await;
            if v == want || Instant::now() >= deadline {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self.own_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Runs the hub expecting it to stop by itself (bad configuration, `--help`); returns its exit
/// code and everything it printed (stdout then stderr).
pub fn run_to_exit(env: &[(&str, &str)], args: &[&str], timeout: Duration) -> (Option<i32>, String) {
    let dir = fresh_work_dir();
    let mut child = command(env, args)
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mercure-hub");
    let deadline = Instant::now() + timeout;
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            break;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mercure-hub {args:?} did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("collect output");
    let _ = std::fs::remove_dir_all(&dir);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code(), text)
}

fn command(env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("SERVER_NAME", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .env("MERCURE_LOG_FORMAT", "text")
        .envs(env.iter().copied())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cmd
}

/// The address in the `listening addr=127.0.0.1:PORT` log line.
fn parse_listening(logs: &str) -> Option<SocketAddr> {
    let rest = &logs[logs.find("listening addr=")? + "listening addr=".len()..];
    rest.split_whitespace().next()?.parse().ok()
}
