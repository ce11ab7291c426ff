//! Live progress on the terminal: one `indicatif` spinner line refreshed 4 times a
//! second with the phase, connections held, publishes, deliveries and the p99 so far.
//!
//! The p99 merges the workers' latest cumulative histograms (sent every 500 ms), so it
//! is exact up to that delay. When disabled (or stderr is not a terminal, where
//! indicatif draws nothing) a plain line is printed every 5 s instead, for CI logs.

use crate::histo;
use crate::publisher::Publisher;
use crate::worker::WorkerView;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Handle of the progress task.
pub struct Display {
    phase: Arc<Mutex<&'static str>>,
    task: tokio::task::JoinHandle<()>,
    bar: Option<ProgressBar>,
}

impl Display {
    /// Starts refreshing; `fancy` selects the spinner (if stderr is a terminal).
    pub fn start(fancy: bool, views: Vec<Arc<Mutex<WorkerView>>>, publisher: Arc<Publisher>, requested: u64) -> Self {
        let phase: Arc<Mutex<&'static str>> = Arc::new(Mutex::new("starting"));
        let bar = (fancy && std::io::stderr().is_terminal()).then(|| {
            let b = ProgressBar::new_spinner();
            b.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        let b2 = bar.clone();
        let ph = phase.clone();
        let quiet = !fancy;
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            let mut n = 0u64;
            let mut p99 = 0.0;
            let start = std::time::Instant::now();
            loop {
                tick.tick().await;
                n += 1;
                let (mut held, mut errs, mut events) = (0, 0, 0);
                let merge = n.is_multiple_of(4);
                let mut h = histo::new();
                for v in &views {
                    if let Ok(v) = v.lock() {
                        held += v.progress.held;
                        errs += v.progress.connect_errors;
                        events += v.progress.events;
                        if merge && let Some(w) = histo::from_hex(&v.progress.hist) {
                            let _ = h.add(&w);
                        }
                    }
                }
                if merge && !h.is_empty() {
                    p99 = h.value_at_quantile(0.99) as f64 / 1000.0;
                }
                let phase = ph.lock().map(|p| *p).unwrap_or("?");
                let msg = format!(
                    "{phase:<10} held {held}/{requested}  connect errors {errs}  published {} (failed {})  delivered {events}  p99 {p99:.2} ms",
                    publisher.accepted.load(Ordering::Relaxed),
                    publisher.rejected.load(Ordering::Relaxed) + publisher.unknown.load(Ordering::Relaxed),
                );
                match &b2 {
                    Some(b) => b.set_message(msg),
                    None if !quiet && n.is_multiple_of(20) => {
                        eprintln!("[{:>6.1}s] {msg}", start.elapsed().as_secs_f64())
                    }
                    None => {}
                }
            }
        });
        Self { phase, task, bar }
    }

    /// Names the current phase.
    pub fn phase(&self, p: &'static str) {
        if let Ok(mut g) = self.phase.lock() {
            *g = p;
        }
    }

    /// Stops refreshing and clears the line.
    pub fn finish(&self) {
        self.task.abort();
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
