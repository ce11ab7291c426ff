//! What a sweep ran on: the commit the load generator was built from, the toolchain, the
//! kernel, the CPU, and the hub binaries, so a summary can be reproduced or discounted.
//!
//! Everything is read at sweep time: the commit with `git` in the workspace this binary
//! was built from (marked `-dirty` when the tree had changes), `rustc -V` from `PATH`,
//! `/proc/sys/kernel/osrelease`, the first `model name` of `/proc/cpuinfo`, and the cores
//! this process may use. A fact that cannot be read says so (`unknown`), never fails the
//! sweep.

use serde::Serialize;
use std::path::Path;
use std::process::Command;

/// The machine and build facts of a sweep.
#[derive(Debug, Clone, Serialize)]
pub struct Provenance {
    /// `git rev-parse HEAD` of the load generator's workspace, `-dirty` if it had changes.
    pub commit: String,
    /// `rustc -V`.
    pub rustc: String,
    /// Kernel release.
    pub kernel: String,
    /// CPU model name.
    pub cpu: String,
    /// Cores available to this process.
    pub cores: usize,
}

impl Provenance {
    /// Reads the facts now.
    pub fn collect() -> Self {
        let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let git = |args: &[&str]| {
            Command::new("git")
                .arg("-C")
                .arg(&ws)
                .args(args)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        };
        let commit = match git(&["rev-parse", "HEAD"]) {
            Some(c) if !c.is_empty() => {
                let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
                if dirty { format!("{c}-dirty") } else { c }
            }
            _ => "unknown".into(),
        };
        let rustc = Command::new("rustc")
            .arg("-V")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "unknown".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|t| {
                t.lines().find_map(|l| {
                    l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim().to_string())
                })
            })
            .unwrap_or_else(|| "unknown".into());
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        Self { commit, rustc, kernel, cpu, cores }
    }

    /// One Markdown paragraph.
    pub fn markdown(&self) -> String {
        format!(
            "Machine and build: commit `{}`, `{}`, kernel {}, {} ({} cores).",
            self.commit, self.rustc, self.kernel, self.cpu, self.cores
        )
    }
}

/// A hub binary as the summary names it: path, size and modification time, so two
/// builds are told apart.
pub fn binary_facts(path: &Path) -> String {
    match std::fs::metadata(path) {
        Ok(m) => {
            let mtime = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or_else(|| "?".into(), |d| crate::clock::utc_date(d.as_secs()) + &format!(" ({} s)", d.as_secs()));
            format!("{} ({} bytes, modified {mtime})", path.display(), m.len())
        }
        Err(e) => format!("{} ({e})", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_are_read_from_this_machine() {
        let p = Provenance::collect();
        // This test runs from a git checkout on Linux with a toolchain on PATH.
        assert!(p.commit.len() >= 40, "{p:?}");
        assert!(p.rustc.starts_with("rustc "), "{p:?}");
        assert!(p.kernel != "unknown" && p.cpu != "unknown" && p.cores > 0, "{p:?}");
        assert!(p.markdown().contains(&p.kernel));
        let me = std::env::current_exe().unwrap_or_default();
        assert!(binary_facts(&me).contains(" bytes, modified "), "{}", binary_facts(&me));
    }
}
