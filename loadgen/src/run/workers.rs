//! The worker processes of a run, seen from the coordinator: spawning them with their
//! share of the swarm, phase 1 (waiting until every initial subscriber connected or gave
//! up), the control messages of the later phases, and their live counters summed.

use super::plan::Plan;
use crate::config::RunArgs;
use crate::shard::{AuthVia, Progress, SwarmConfig};
use crate::swarm::Control;
use crate::worker::WorkerHandle;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{Instant, sleep};

/// The run's worker processes, in worker order.
pub struct Workers {
    /// One handle per worker.
    pub handles: Vec<WorkerHandle>,
}

impl Workers {
    /// Spawns `plan.workers` copies of this binary as `worker`s, each with its config;
    /// they start ramping up their initial subscribers at once.
    pub async fn spawn(args: &RunArgs, plan: &Plan) -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let mut handles = Vec::new();
        for w in 0..plan.workers {
            handles.push(WorkerHandle::spawn(&exe, swarm_config(args, plan, w)).await?);
        }
        Ok(Self { handles })
    }

    /// The worker processes' ids (for CPU accounting), in worker order.
    pub fn pids(&self) -> Vec<Option<u32>> {
        self.handles.iter().map(|h| h.pid).collect()
    }

    /// Phase 1: waits until every initial subscriber connected or gave up, every worker
    /// failed, Ctrl-C, or the connect budget ran out. A worker that failed is an error.
    pub async fn wait_connected(&self, args: &RunArgs, stop: &mut watch::Receiver<bool>) -> Result<(), String> {
        let budget = Duration::from_secs_f64(
            args.initial_subscribers as f64 / args.connect_rate.max(1.0)
                + args.connect_timeout * f64::from(args.connect_retries + 1)
                + 5.0,
        );
        let deadline = Instant::now() + budget;
        loop {
            let agg = self.aggregate();
            let settled = agg.initial_connected + agg.initial_failed >= args.initial_subscribers;
            let all_failed = self.handles.iter().all(|h| h.view().failed.is_some());
            if settled || all_failed || *stop.borrow() || Instant::now() >= deadline {
                break;
            }
            tokio::select! {
                _ = sleep(Duration::from_millis(100)) => {}
                _ = stop.changed() => {}
            }
        }
        match self.handles.iter().find_map(|h| h.view().failed) {
            Some(err) => Err(format!("worker failed: {err}")),
            None => Ok(()),
        }
    }

    /// Sends `c` to every worker; the first error is returned after all were tried.
    pub async fn send_all(&mut self, c: &Control) -> Result<(), String> {
        let mut first = Ok(());
        for h in &mut self.handles {
            if let Err(e) = h.send(c).await
                && first.is_ok()
            {
                first = Err(e);
            }
        }
        first
    }

    /// Waits (up to `limit`) until every worker sent its final report or exited.
    pub async fn wait_finals(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let done = self.handles.iter().all(|h| {
                let v = h.view();
                v.fin.is_some() || v.exited
            });
            if done || Instant::now() >= deadline {
                break;
            }
            sleep(Duration::from_millis(50)).await;
        }
    }

    /// Closes every worker's stdin and waits for it to exit.
    pub async fn finish(self) {
        for h in self.handles {
            h.finish().await;
        }
    }

    /// Sum of the workers' live counters.
    pub fn aggregate(&self) -> Progress {
        let mut a = Progress::default();
        for h in &self.handles {
            let p = h.view().progress;
            a.held += p.held;
            a.peak_held += p.peak_held;
            a.initial_connected += p.initial_connected;
            a.initial_failed += p.initial_failed;
            a.connect_attempts += p.connect_attempts;
            a.connects += p.connects;
            a.connect_errors += p.connect_errors;
            a.drops += p.drops;
            a.reconnects += p.reconnects;
            a.events += p.events;
            a.foreign += p.foreign;
            a.replayed += p.replayed;
            crate::nodes::add_all(&mut a.nodes, &p.nodes);
        }
        a
    }
}

/// Worker `w`'s configuration.
fn swarm_config(args: &RunArgs, plan: &Plan, w: u32) -> SwarmConfig {
    let sub_creds = &plan.sub_creds;
    SwarmConfig {
        worker: w,
        workers: plan.workers,
        nodes: plan.nodes.clone(),
        source_addr: plan.sources.get(w as usize).copied().flatten(),
        run_id: plan.run_id.clone(),
        topics: plan.topics.clone(),
        selector: args.selector,
        subscriber_jwt: sub_creds.as_ref().map(|c| c.0.clone()),
        auth_via: sub_creds.as_ref().map_or(AuthVia::Header, |c| c.1),
        private: args.private_updates,
        initial_total: args.initial_subscribers,
        connect_rate: args.connect_rate,
        arrivals: plan.arrivals,
        lifetime_s: args.connection_duration.max(0.0),
        random_lifetime: args.random_connection_duration,
        lifetime_end: args.lifetime_end,
        on_drop: args.on_drop,
        reconnect_delay_ms: args.reconnect_delay_ms,
        connect_retries: args.connect_retries,
        connect_timeout_ms: (args.connect_timeout * 1000.0) as u64,
        settle_ns: (args.settle.max(0.0) * 1e9) as u64,
        seed: plan.seed,
        stall_after: args.stall_after,
        stall_ms: args.stall_ms,
        sched: args.worker_sched,
        min_lifetime_s: args.min_connection_duration.max(0.0),
        expiring: (args.expiring_share > 0.0).then(|| crate::expiring::ExpiringTokens {
            key: args.subscriber_jwt_key.clone().unwrap_or_else(|| args.jwt_key.clone()),
            share: args.expiring_share.clamp(0.0, 1.0),
            min_s: args.expiring_min,
            max_s: args.expiring_max,
            seed: plan.seed,
            style: args.token_style(),
        }),
        stuck: (args.stuck > 0).then(|| crate::stuck::StuckConfig {
            count: args.stuck,
            hold_s: args.stuck_hold,
            drain_s: args.stuck_drain,
            // Over the initial ramp, so they do not all arrive at once.
            spread_s: args.initial_subscribers as f64 / args.connect_rate.max(1.0),
            pause_ms: 500,
            rcvbuf: 2048,
            jwt: sub_creds.as_ref().map(|c| c.0.clone()),
        }),
        anonymous_share: args.anonymous_share.clamp(0.0, 1.0),
    }
}
