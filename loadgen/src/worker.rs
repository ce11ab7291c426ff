//! Worker processes: the swarm spread over several processes, and the pipe protocol.
//!
//! Why processes: this machine caps open files at 20,000 per process, so one process
//! cannot hold 19k+ connections next to its other descriptors, and loopback source ports
//! run out at ~28k per source address. The coordinator re-executes its own binary as
//! `mercure-loadgen worker`; each worker gets one source address (127.0.0.2, 127.0.0.3, …
//! when the hub is on IPv4 loopback) and at most `--max-conns-per-worker` subscribers.
//!
//! Protocol: newline-delimited JSON. The coordinator writes [`Control`] messages on the
//! worker's stdin, the worker writes [`WorkerMsg`] lines on its stdout; stderr is
//! inherited for diagnostics. A worker ignores SIGINT (the coordinator owns Ctrl-C and
//! stops workers through the pipe) and treats stdin EOF as `Stop`, so it never outlives
//! its coordinator.

use crate::shard::{Progress, SwarmConfig};
use crate::swarm::{Control, ShardFinal, WorkerMsg, run_shard};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

/// Entry point of `mercure-loadgen worker`: runs one shard on a single-threaded runtime.
pub fn worker_main() -> Result<(), String> {
    // Best effort: soft limit up to the hard limit (no-op where they are equal).
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| format!("runtime: {e}"))?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        tokio::spawn(async {
            // Ignore Ctrl-C: the coordinator stops us through the pipe.
            while tokio::signal::ctrl_c().await.is_ok() {}
        });
        let (ctl_tx, mut ctl_rx) = mpsc::unbounded_channel::<Control>();
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<WorkerMsg>();
        tokio::spawn(async move {
            let mut lines = BufReader::new(tokio::io::stdin()).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                match serde_json::from_str::<Control>(&line) {
                    Ok(c) => {
                        if ctl_tx.send(c).is_err() {
                            break;
                        }
                    }
                    Err(e) => eprintln!("worker: bad control message: {e}"),
                }
            }
        });
        let writer = tokio::spawn(async move {
            let mut stdout = tokio::io::stdout();
            while let Some(msg) = out_rx.recv().await {
                let Ok(mut line) = serde_json::to_vec(&msg) else {
                    continue;
                };
                line.push(b'\n');
                if stdout.write_all(&line).await.is_err() || stdout.flush().await.is_err() {
                    break;
                }
            }
        });
        let cfg = match ctl_rx.recv().await {
            Some(Control::Config(cfg)) => *cfg,
            _ => {
                let _ = out_tx.send(WorkerMsg::Failed { error: "expected a config message first".into() });
                drop(out_tx);
                let _ = writer.await;
                return;
            }
        };
        run_shard(cfg, ctl_rx, out_tx).await;
        let _ = writer.await;
    });
    Ok(())
}

/// What the coordinator knows about one worker.
#[derive(Debug, Default, Clone)]
pub struct WorkerView {
    /// Latest progress.
    pub progress: Progress,
    /// Final report, once sent.
    pub fin: Option<ShardFinal>,
    /// Failure, if the worker reported one or died.
    pub failed: Option<String>,
    /// The worker's stdout closed.
    pub exited: bool,
}

/// Coordinator-side handle of a worker process.
pub struct WorkerHandle {
    child: Child,
    stdin: Option<ChildStdin>,
    /// Shared with the reader task. `std::sync::Mutex`: held for a field copy, never
    /// across `.await`.
    pub view: Arc<Mutex<WorkerView>>,
    /// Process id, for CPU/RSS accounting.
    pub pid: Option<u32>,
}

impl WorkerHandle {
    /// Spawns `exe worker` and sends it its configuration.
    pub async fn spawn(exe: &std::path::Path, cfg: SwarmConfig) -> Result<Self, String> {
        let mut child = Command::new(exe)
            .arg("worker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start worker {}: {e}", exe.display()))?;
        let pid = child.id();
        let stdout = child.stdout.take().ok_or("worker stdout")?;
        let view = Arc::new(Mutex::new(WorkerView::default()));
        let v = view.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let msg = serde_json::from_str::<WorkerMsg>(&line);
                let Ok(mut view) = v.lock() else { break };
                match msg {
                    Ok(WorkerMsg::Progress(p)) => view.progress = *p,
                    Ok(WorkerMsg::Final(f)) => {
                        view.progress = f.progress.clone();
                        view.fin = Some(*f);
                    }
                    Ok(WorkerMsg::Failed { error }) => view.failed = Some(error),
                    Err(e) => view.failed = Some(format!("bad worker message: {e}")),
                }
            }
            if let Ok(mut view) = v.lock() {
                view.exited = true;
                if view.fin.is_none() && view.failed.is_none() {
                    view.failed = Some("worker exited without a final report".into());
                }
            }
        });
        let mut h = Self { stdin: child.stdin.take(), child, view, pid };
        h.send(&Control::Config(Box::new(cfg))).await?;
        Ok(h)
    }

    /// Sends one control message.
    pub async fn send(&mut self, c: &Control) -> Result<(), String> {
        let stdin = self.stdin.as_mut().ok_or("worker stdin closed")?;
        let mut line = serde_json::to_vec(c).map_err(|e| e.to_string())?;
        line.push(b'\n');
        stdin.write_all(&line).await.map_err(|e| format!("worker pipe: {e}"))?;
        stdin.flush().await.map_err(|e| format!("worker pipe: {e}"))
    }

    /// A copy of the current view.
    pub fn view(&self) -> WorkerView {
        self.view.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Closes stdin and waits for the process to exit.
    pub async fn finish(mut self) {
        self.stdin = None;
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), self.child.wait()).await;
    }
}
