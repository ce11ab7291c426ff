//! Starting and stopping our hub for a capacity sweep.
//!
//! The hub is configured the way the dunglas/mercure Docker image is (`SERVER_NAME`,
//! `MERCURE_PUBLISHER_JWT_KEY`, `MERCURE_SUBSCRIBER_JWT_KEY`,
//! `MERCURE_EXTRA_DIRECTIVES`), on a fixed loopback port, and is ready when `/healthz`
//! answers 200. Its stderr goes to a log file. It is stopped with SIGTERM through
//! `kill <pid>` (its own pid only), then killed if it has not exited in 5 s.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// A hub process we started.
pub struct HubProcess {
    child: Child,
    /// Its pid, for `/proc` sampling.
    pub pid: u32,
    /// Its publish/subscribe URL.
    pub url: String,
}

/// Finds the hub binary: `explicit`, then `MERCURE_HUB_BIN`, then `target/release`
/// under `CARGO_TARGET_DIR` or the workspace.
pub fn locate(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("MERCURE_HUB_BIN") {
        return Some(PathBuf::from(p));
    }
    let mut candidates = Vec::new();
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(t).join("release/mercure-hub"));
    }
    let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    candidates.push(ws.join("target/release/mercure-hub"));
    candidates.into_iter().find(|p| p.is_file())
}

impl HubProcess {
    /// Starts `bin` on `127.0.0.1:port` with the demo keys (or `key`), `anonymous`,
    /// plus `extra_env`; waits until `/healthz` answers.
    pub async fn start(
        bin: &Path,
        port: u16,
        key: &str,
        extra_directives: &str,
        extra_env: &[(String, String)],
        log: &Path,
    ) -> Result<Self, String> {
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let log_file = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut directives = String::from("anonymous");
        if !extra_directives.is_empty() {
            directives.push('\n');
            directives.push_str(extra_directives);
        }
        // A fresh working directory per start: the hub's history file lands there, so
        // points do not replay each other's history and nothing litters the repo.
        let workdir = log.with_extension("d");
        let _ = std::fs::remove_dir_all(&workdir);
        std::fs::create_dir_all(&workdir).map_err(|e| format!("{}: {e}", workdir.display()))?;
        let bin = std::fs::canonicalize(bin).map_err(|e| format!("{}: {e}", bin.display()))?;
        let mut cmd = Command::new(&bin);
        cmd.current_dir(&workdir)
            .env("SERVER_NAME", format!("127.0.0.1:{port}"))
            .env("MERCURE_PUBLISHER_JWT_KEY", key)
            .env("MERCURE_SUBSCRIBER_JWT_KEY", key)
            .env("MERCURE_EXTRA_DIRECTIVES", directives)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .kill_on_drop(true);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let pid = child.id().ok_or("hub exited at once")?;
        let base = format!("http://127.0.0.1:{port}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("hub exited during startup ({status}); see {}", log.display()));
            }
            if let Ok((200, _)) = crate::http::get(&format!("{base}/healthz"), Duration::from_millis(500)).await {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                let _ = child.kill().await;
                return Err(format!("hub not healthy after 20 s; see {}", log.display()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Self { child, pid, url: format!("{base}/.well-known/mercure") })
    }

    /// SIGTERM, wait up to 5 s, then SIGKILL.
    pub async fn stop(mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.pid.to_string()).status().await;
        let waited = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
        if waited.is_err() {
            let _ = self.child.kill().await;
        }
    }
}
