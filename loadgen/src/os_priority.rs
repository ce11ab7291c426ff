//! Scheduling policy of the swarm's worker processes.
//!
//! On a machine where the load generator shares cores with the hub it measures, every
//! delivery wakes a worker that was asleep in `epoll_wait`, and Linux's wakeup preemption
//! lets that worker take the core from the hub mid fan-out: two context switches per
//! delivery, paid by both sides, and a fan-out that finishes later than it would with the
//! clients on other machines. `SCHED_BATCH` turns wakeup preemption off for the workers only:
//! they still get their fair share of CPU (same nice value, same CFS weight) and read as soon
//! as a core is free, but never interrupt the hub. Measured on the 2-core machine in seven
//! alternating pairs: p50 10–20% lower with `batch` in every pair, p99 lower in five
//! (`results/capacity-2026-11-22-r2/worker-sched-ab.md`).
//!
//! Invariant: only the calling thread changes policy (Linux policies are per thread); call it
//! on the worker's runtime thread before connections open, and threads spawned later inherit it.

use serde::{Deserialize, Serialize};

/// Scheduling policy for the worker processes that hold the SSE connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum WorkerSched {
    /// `SCHED_OTHER`: a delivery may preempt the hub on a shared core.
    Normal,
    /// `SCHED_BATCH`: no wakeup preemption (the default).
    #[default]
    Batch,
}

impl WorkerSched {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerSched::Normal => "normal",
            WorkerSched::Batch => "batch",
        }
    }
}

/// Applies `policy` to the calling thread. Errors are returned, not fatal: a run under
/// `normal` is still a valid run, and the report records what was asked.
pub fn apply(policy: WorkerSched) -> Result<(), String> {
    let raw = match policy {
        WorkerSched::Normal => libc::SCHED_OTHER,
        WorkerSched::Batch => libc::SCHED_BATCH,
    };
    // Static priority must be 0 for the normal policies; the nice value is left alone.
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `sched_setscheduler` reads one `sched_param` through the pointer and keeps no
    // reference to it; `param` is a live, initialized stack value for the whole call. pid 0
    // names the calling thread, so no other thread's state is touched, and the call has no
    // memory effects on this process beyond the returned status and errno.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::sched_setscheduler(0, raw, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(format!("sched_setscheduler({}): {}", policy.as_str(), std::io::Error::last_os_error()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Field 41 of `/proc/thread-self/stat` (proc(5)): the scheduling policy.
    fn policy_of_this_thread() -> Option<i32> {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
        // Fields after the command name, which is in parentheses and may contain spaces.
        let rest = &stat[stat.rfind(')')? + 1..];
        rest.split_whitespace().nth(41 - 3).and_then(|f| f.parse().ok())
    }

    #[test]
    fn batch_then_normal_on_a_scratch_thread() {
        // A thread of its own, so the test runner's threads keep their policy.
        std::thread::spawn(|| {
            apply(WorkerSched::Batch).expect("SCHED_BATCH needs no privilege");
            assert_eq!(policy_of_this_thread(), Some(libc::SCHED_BATCH));
            apply(WorkerSched::Normal).expect("back to SCHED_OTHER");
            assert_eq!(policy_of_this_thread(), Some(libc::SCHED_OTHER));
        })
        .join()
        .expect("thread");
    }
}
