//! Resource sampling during a run: the hub's RSS, CPU and fds once a second (the report's
//! `hub` section), and two exact snapshots of the hub's and the load generator's CPU
//! around the publish phase (the report's `per_delivery`).
//!
//! The once-a-second series is good for RSS and fds, but its CPU at the publish phase's
//! edges is off by up to a sample period, which at 10 s per point is a tenth of the
//! figure; the snapshots are taken exactly when publishing starts and when the settle
//! ends.

use crate::hubstats::{self, Sample, Source};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// The summed series and each process's own.
pub type Series = (Vec<Sample>, Vec<Vec<Sample>>);

/// The hub sampler's task and what it gathered.
pub struct HubSampler {
    samples: Arc<Mutex<Series>>,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl HubSampler {
    /// Starts sampling `sources` every second (nothing without sources); the first sample
    /// (the baseline before any subscriber) has landed when this returns.
    pub async fn start(sources: &[Source], t_start: Instant) -> Self {
        // std Mutex: the sampler pushes and the run reads a copy, never across `.await`.
        let samples: Arc<Mutex<Series>> = Arc::new(Mutex::new((Vec::new(), vec![Vec::new(); sources.len()])));
        let (stop, halt) = watch::channel(false);
        let task = (!sources.is_empty()).then(|| {
            let samples = samples.clone();
            let srcs = sources.to_vec();
            let mut halt = halt.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                let mut last = false;
                loop {
                    if !last {
                        tokio::select! {
                            _ = tick.tick() => {}
                            _ = halt.wait_for(|s| *s) => last = true,
                        }
                    }
                    let (sum, each) = hubstats::sample_each(&srcs).await;
                    let t_s = t_start.elapsed().as_secs_f64();
                    if let Ok(mut v) = samples.lock() {
                        if let Some(s) = sum {
                            v.0.push(Sample { t_s, ..s });
                        }
                        for (series, s) in v.1.iter_mut().zip(each) {
                            if let Some(s) = s {
                                series.push(Sample { t_s, ..s });
                            }
                        }
                    }
                    // The one after the stop signal is the final sample.
                    if last {
                        break;
                    }
                }
            })
        });
        if task.is_some() {
            // Let the baseline sample land before anything connects.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Self { samples, stop, task }
    }

    /// Takes the final sample and returns the series.
    pub async fn finish(mut self) -> Series {
        let _ = self.stop.send(true);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        self.samples.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

/// CPU (and hub RSS) at one moment: the hub processes summed, the worker processes
/// summed, and this process.
#[derive(Debug, Clone, Copy)]
pub struct CpuSnapshot {
    /// When it was taken.
    pub at: Instant,
    /// The hub processes' sum; `None` if any did not answer (or none is sampled).
    pub hub: Option<Sample>,
    /// The workers' CPU seconds; `None` if any worker could not be read.
    pub workers_cpu_s: Option<f64>,
    /// The coordinator's (this process's) CPU seconds.
    pub coordinator_cpu_s: Option<f64>,
}

impl CpuSnapshot {
    /// Samples the hub `sources` and the worker processes `worker_pids` now.
    pub async fn take(sources: &[Source], worker_pids: &[Option<u32>]) -> Self {
        let hub = if sources.is_empty() { None } else { hubstats::sample_each(sources).await.0 };
        let workers_cpu_s = worker_pids
            .iter()
            .map(|p| p.and_then(hubstats::sample_pid).map(|s| s.cpu_s))
            .try_fold(0.0, |acc, s| s.map(|s| acc + s));
        let coordinator_cpu_s = hubstats::sample_pid(std::process::id()).map(|s| s.cpu_s);
        Self { at: Instant::now(), hub, workers_cpu_s, coordinator_cpu_s }
    }
}
