//! A multi-node hub for one capacity point (`--nodes N`, N ≥ 2): one `redis-server`
//! and N of our hubs sharing one Redis stream.
//!
//! Per point: a `redis-server` on a free loopback port, with no persistence
//! (`--save '' --appendonly no`) and its own directory under the sweep's `tmp/`; then N
//! hubs, each on its own free loopback port and working directory, all with
//! `transport_url redis://127.0.0.1:PORT/0?stream=NAME` (a stream name fresh per point,
//! so no point can read another's updates even if a Redis were reused). Stopping: the
//! hubs first (SIGTERM, then SIGKILL after 5 s), then Redis the same way. Every child is
//! also killed if the sweep drops it early (`kill_on_drop`), so a failed start leaves
//! nothing running.
//!
//! Free ports are found by binding `127.0.0.1:0` and releasing the port just before
//! the process binds it: a race with other programs on this machine, acceptable for a
//! benchmark (the start then fails loudly, never silently).

use super::HubProcess;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

/// The Redis server binary, looked up on `PATH`.
pub const REDIS_SERVER: &str = "redis-server";

/// `redis-server` on `PATH`, or an error saying what `--nodes` needs.
pub fn locate_redis(nodes: u32) -> Result<PathBuf, String> {
    find_redis(&std::env::var_os("PATH").unwrap_or_default(), nodes)
}

/// `redis-server` in the directories of `path` (a `PATH`-style list).
fn find_redis(path: &std::ffi::OsStr, nodes: u32) -> Result<PathBuf, String> {
    std::env::split_paths(path).map(|d| d.join(REDIS_SERVER)).find(|p| p.is_file()).ok_or_else(|| {
        format!(
            "--nodes {nodes} needs `{REDIS_SERVER}` on PATH (the hubs share a Redis stream); \
             install Redis (e.g. apt-get install redis-server) or run with --nodes 1"
        )
    })
}

/// A free TCP port on 127.0.0.1 (released before returning: see the module docs).
pub fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| format!("no free port: {e}"))
}

/// A `redis-server` we started.
pub struct RedisProcess {
    child: Child,
    /// Its pid.
    pub pid: u32,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl RedisProcess {
    /// Starts `bin` on a free loopback port with `dir` as its working directory (created)
    /// and its log in `log`; waits until it answers `PING`.
    pub async fn start(bin: &Path, dir: &Path, log: &Path) -> Result<Self, String> {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let log_file = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let port = free_port()?;
        let mut child = Command::new(bin)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir"])
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let pid = child.id().ok_or("redis-server exited at once")?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("redis-server exited during startup ({status}); see {}", log.display()));
            }
            if ping(port).await {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                let _ = child.kill().await;
                return Err(format!("redis-server not answering PING after 10 s; see {}", log.display()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self { child, pid, port })
    }

    /// The hubs' `transport_url` for `stream`.
    pub fn transport_url(&self, stream: &str) -> String {
        format!("redis://127.0.0.1:{}/0?stream={stream}", self.port)
    }

    /// SIGTERM, wait up to 5 s, then SIGKILL.
    pub async fn stop(mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.pid.to_string()).status().await;
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await.is_err() {
            let _ = self.child.kill().await;
        }
    }
}

/// `PING` answered with `+PONG` within 500 ms.
async fn ping(port: u16) -> bool {
    let probe = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        s.write_all(b"PING\r\n").await.ok()?;
        let mut buf = [0u8; 7];
        s.read_exact(&mut buf).await.ok()?;
        (&buf == b"+PONG\r\n").then_some(())
    };
    tokio::time::timeout(Duration::from_millis(500), probe).await.ok().flatten().is_some()
}

/// One point's hub nodes: N hubs sharing one Redis stream.
pub struct Cluster {
    /// The hubs, in node order.
    pub hubs: Vec<HubProcess>,
    redis: RedisProcess,
}

/// How to start one point's cluster.
pub struct ClusterSpec<'a> {
    /// Hub nodes (≥ 2).
    pub nodes: u32,
    /// Our hub's binary and `redis-server`'s.
    pub hub_bin: &'a Path,
    /// See `hub_bin`.
    pub redis_bin: &'a Path,
    /// JWT key for the hubs.
    pub key: &'a str,
    /// Extra directives for every hub (before `transport_url`).
    pub directives: &'a str,
    /// Extra environment for every hub.
    pub env: &'a [(String, String)],
    /// Directory for logs and working directories (`<tag>-redis.log`, `<tag>-node<i>.log`, …).
    pub tmp: &'a Path,
    /// File name prefix for this point.
    pub tag: &'a str,
    /// The Redis stream name, fresh per point.
    pub stream: &'a str,
}

impl Cluster {
    /// Starts Redis, then the hubs; on any failure whatever started is stopped (dropped).
    pub async fn start(spec: &ClusterSpec<'_>) -> Result<Self, String> {
        let redis = RedisProcess::start(
            spec.redis_bin,
            &spec.tmp.join(format!("{}-redis.d", spec.tag)),
            &spec.tmp.join(format!("{}-redis.log", spec.tag)),
        )
        .await?;
        let mut directives = spec.directives.trim().to_string();
        if !directives.is_empty() {
            directives.push('\n');
        }
        directives.push_str(&format!("transport_url {}", redis.transport_url(spec.stream)));
        let mut hubs = Vec::with_capacity(spec.nodes as usize);
        for i in 0..spec.nodes {
            let log = spec.tmp.join(format!("{}-node{i}.log", spec.tag));
            let port = free_port()?;
            hubs.push(HubProcess::start(spec.hub_bin, port, spec.key, &directives, spec.env, &log).await?);
        }
        Ok(Self { hubs, redis })
    }

    /// Node 0's log, for the summary's hub configuration lines.
    pub fn first_log(spec: &ClusterSpec<'_>) -> PathBuf {
        spec.tmp.join(format!("{}-node0.log", spec.tag))
    }

    /// Stops the hubs, then Redis.
    pub async fn stop(self) {
        for h in self.hubs {
            h.stop().await;
        }
        self.redis.stop().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_redis_is_a_clear_error() {
        let msg = find_redis(std::ffi::OsStr::new(""), 3).err().unwrap_or_default();
        assert!(msg.contains("--nodes 3") && msg.contains(REDIS_SERVER), "{msg}");
        let dir = std::env::temp_dir().join(format!("loadgen-fake-redis-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(dir.join(REDIS_SERVER), "");
        let path = std::env::join_paths([Path::new("/nonexistent"), dir.as_path()]).unwrap_or_default();
        assert_eq!(find_redis(&path, 2).ok(), Some(dir.join(REDIS_SERVER)));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn redis_starts_answers_and_stops() {
        // scripts/test installs redis-server (the hub's cluster tests need it too).
        let bin = match locate_redis(2) {
            Ok(b) => b,
            Err(e) => panic!("{e}"),
        };
        let dir = std::env::temp_dir().join(format!("loadgen-redis-test-{}", std::process::id()));
        let r = RedisProcess::start(&bin, &dir.join("d"), &dir.join("redis.log")).await;
        let r = match r {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        };
        assert!(ping(r.port).await);
        assert_eq!(r.transport_url("s1"), format!("redis://127.0.0.1:{}/0?stream=s1", r.port));
        let port = r.port;
        r.stop().await;
        assert!(!ping(port).await);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
