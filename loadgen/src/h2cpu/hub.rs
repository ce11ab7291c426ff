//! The hub under test for `h2-cpu`: a test certificate, one hub process per run (cleartext or
//! TLS), its CPU counters, and its metrics through the admin listener.
//!
//! The hub is started with `SERVER_NAME` on a free loopback port, `anonymous`, the in-memory
//! history (`transport local`: no disk in the measurement), no heartbeats and no stream
//! lifetime (`heartbeat 0s`, `write_timeout 0s`: nothing but the updates), and an admin
//! listener on another free loopback port, cleartext in both modes, for `/metrics`. It is
//! stopped with SIGTERM to its own pid, then killed after 5 s.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// A CA and a leaf for `127.0.0.1`, made with the `openssl` command line in `dir`:
/// `ca.pem`, `leaf.pem`, `leaf.key`.
pub fn make_certs(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").map_err(|e| e.to_string())?;
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    let steps: [Vec<&str>; 3] = [
        [&["req", "-x509"][..], &ec, &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=h2-cpu CA"]]
            .concat(),
        [&["req"][..], &ec, &["-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=127.0.0.1"]].concat(),
        vec![
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "leaf.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    ];
    for args in steps {
        let out = std::process::Command::new("openssl")
            .args(&args)
            .current_dir(dir)
            .output()
            .map_err(|e| format!("openssl (is it installed?): {e}"))?;
        if !out.status.success() {
            return Err(format!("openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr)));
        }
    }
    Ok(())
}

/// A free loopback port (bound, then released).
pub fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

pub struct Hub {
    child: Child,
    /// The hub's working directory (empty: the history is in memory), removed at stop.
    workdir: PathBuf,
    pub pid: u32,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
}

/// How to start one hub.
pub struct HubConfig<'a> {
    pub bin: &'a Path,
    pub key: &'a str,
    /// `Some(dir)`: TLS with `dir/leaf.pem` and `dir/leaf.key`.
    pub tls: Option<&'a Path>,
    pub max_concurrent_streams: usize,
    pub subscribers: usize,
    pub log: PathBuf,
}

impl Hub {
    pub async fn start(c: &HubConfig<'_>) -> Result<Self, String> {
        let (port, admin_port) = (free_port()?, free_port()?);
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let admin: SocketAddr = ([127, 0, 0, 1], admin_port).into();
        let headroom = c.subscribers + 1000;
        let directives = format!(
            "anonymous\ntransport local\nheartbeat 0s\nwrite_timeout 0s\nadmin {admin}\n\
             max_concurrent_streams {}\nmax_connections {headroom}\nmax_subscribers {headroom}",
            c.max_concurrent_streams
        );
        let log = std::fs::File::create(&c.log).map_err(|e| format!("{}: {e}", c.log.display()))?;
        let workdir = c.log.with_extension("d");
        std::fs::create_dir_all(&workdir).map_err(|e| format!("{}: {e}", workdir.display()))?;
        let mut cmd = Command::new(c.bin);
        cmd.current_dir(&workdir)
            .env_clear()
            .env("SERVER_NAME", addr.to_string())
            .env("MERCURE_PUBLISHER_JWT_KEY", c.key)
            .env("MERCURE_SUBSCRIBER_JWT_KEY", c.key)
            .env("MERCURE_EXTRA_DIRECTIVES", directives)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        if let Some(dir) = c.tls {
            cmd.env("MERCURE_TLS_CERT_FILE", dir.join("leaf.pem")).env("MERCURE_TLS_KEY_FILE", dir.join("leaf.key"));
        }
        let mut child = cmd.spawn().map_err(|e| format!("cannot start {}: {e}", c.bin.display()))?;
        let pid = child.id().ok_or("the hub exited at once")?;
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let text = std::fs::read_to_string(&c.log).unwrap_or_default();
            if text.contains("admin endpoint (health, metrics) ready") && text.contains("listening addr=") {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("the hub exited ({status}); see {}", c.log.display()));
            }
            if Instant::now() > deadline {
                return Err(format!("the hub did not listen within 15 s; see {}", c.log.display()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Hub { child, workdir, pid, addr, admin })
    }

    /// User + system CPU of the whole process, in clock ticks (`/proc/PID/stat`).
    pub fn cpu_ticks(&self) -> Result<u64, String> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).map_err(|e| e.to_string())?;
        let after = stat.rsplit_once(')').ok_or("unexpected /proc/PID/stat")?.1;
        let f: Vec<&str> = after.split_whitespace().collect();
        let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).ok_or("unexpected /proc/PID/stat");
        // utime and stime are fields 14 and 15 of the line, 12th and 13th after the name.
        Ok(field(11)? + field(12)?)
    }

    /// On-CPU time of every live thread, in nanoseconds (`/proc/PID/task/*/schedstat`): a
    /// finer cross-check of the ticks (threads that exited are not counted).
    pub fn cpu_ns(&self) -> u64 {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", self.pid)) else { return 0 };
        tasks
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
            .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .sum()
    }

    /// Resident memory, KiB.
    pub fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .ok()
            .and_then(|s| s.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// A counter or gauge from the admin listener's `/metrics`.
    pub async fn metric(&self, name: &str) -> Result<u64, String> {
        let text = super::clients::get_text(self.admin, "/metrics").await?;
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .ok_or_else(|| format!("metric {name} not found"))
    }

    pub async fn stop(mut self) {
        let _ = std::process::Command::new("kill").args(["-TERM", &self.pid.to_string()]).status();
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await.is_err() {
            let _ = self.child.kill().await;
        }
        let _ = std::fs::remove_dir_all(&self.workdir);
    }
}
