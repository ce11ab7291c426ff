//! Latency is measured right, and from the right moment. Against the stand-in hub:
//! - delivering every update exactly 150 ms after it answered the POST, the measured
//!   latency must sit just above 150 ms (never below: both ends read one monotonic clock
//!   across processes; a wall-clock or sign mistake would be far off) and fail a 100 ms SLO;
//! - a closed publisher (one POST in flight) against a hub that answers in 100 ms falls
//!   behind a 20/s schedule: latency from the send stays small, latency from the schedule
//!   grows with the backlog, and the verdict fails on it — the coordinated omission that
//!   measuring from the send would hide.

mod common;

use common::standin::{self, Faults};
use common::{f, failed, run_loadgen, u};

async fn loadgen(name: &'static str, url: String, args: &'static [&'static str]) -> serde_json::Value {
    tokio::task::spawn_blocking(move || run_loadgen(name, &url, args)).await.expect("loadgen task")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_delivery_delay_is_measured_within_a_few_milliseconds() {
    const DELAY_MS: f64 = 150.0;
    let hub = standin::start(Faults { delay_delivery_ms: DELAY_MS as u64, ..Faults::default() }).await;
    let r = loadgen(
        "latency-delay",
        hub.url(),
        &[
            "--initial-subscribers",
            "20",
            "--publishers-rate-from",
            "20",
            "--publishers-rate-to",
            "20",
            "--duration",
            "3",
            "--settle",
            "1",
        ],
    )
    .await;
    assert_eq!(u(&r, &["delivery", "lost"]), 0);
    assert_eq!(u(&r, &["latency_ms", "count"]), 20 * 60);
    let send = &r["latency_from_send_ms"];
    let sched = &r["latency_ms"];
    eprintln!("from send {send}\nfrom schedule {sched}");
    // Never below the delay: the event left the stand-in 150 ms after the POST arrived,
    // which is after it was sent. (The histogram keeps 3 significant digits: 0.1 %.)
    let floor = DELAY_MS * 0.999;
    let p50 = f(send, &["p50"]);
    assert!(p50 >= floor && p50 <= DELAY_MS + 15.0, "p50 from send {p50} ms");
    assert!(f(send, &["p99"]) >= floor && f(send, &["p99"]) <= DELAY_MS + 60.0, "{send}");
    // From the schedule adds only the dispatcher's own lateness (the timer's millisecond).
    let p50s = f(sched, &["p50"]);
    assert!(p50s >= p50 && p50s <= p50 + 5.0, "p50 from schedule {p50s} ms, from send {p50} ms");
    assert!(f(&r, &["publish", "lag_ms", "p99"]) < 10.0, "{}", r["publish"]["lag_ms"]);
    // 150 ms is over the default 100 ms SLO: that alone fails the run.
    assert_eq!(r["verdict"]["pass"], false);
    assert_eq!(failed(&r), [("p99_from_schedule".to_string(), 1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_that_falls_behind_shows_in_latency_from_the_schedule_only() {
    // 20 publishes due over 1 s; one POST at a time, each answered after 100 ms: they
    // leave at 0, 0.1, 0.2, … 1.9 s instead of 0, 0.05, … 0.95 s.
    let hub = standin::start(Faults { delay_answer_ms: 100, ..Faults::default() }).await;
    let r = loadgen(
        "latency-behind",
        hub.url(),
        &[
            "--initial-subscribers",
            "20",
            "--publishers-rate-from",
            "20",
            "--publishers-rate-to",
            "20",
            "--duration",
            "1",
            "--settle",
            "1",
            "--max-in-flight",
            "1",
        ],
    )
    .await;
    assert_eq!(u(&r, &["delivery", "lost"]), 0);
    let send_p99 = f(&r, &["latency_from_send_ms", "p99"]);
    let sched_p99 = f(&r, &["latency_ms", "p99"]);
    let sched_max = f(&r, &["latency_ms", "max"]);
    let lag_max = f(&r, &["publish", "lag_ms", "max"]);
    eprintln!("from send p99 {send_p99} ms, from schedule p99 {sched_p99} max {sched_max}, lag max {lag_max}");
    // Delivered at once after it arrived: from the send, a few ms.
    assert!(send_p99 < 50.0, "{send_p99}");
    // The last one was due at 0.95 s and left at ~1.9 s: ~950 ms late.
    assert!((850.0..1300.0).contains(&lag_max), "lag max {lag_max}");
    assert!(sched_max >= lag_max && sched_max < lag_max + 50.0, "{sched_max} vs {lag_max}");
    assert!(sched_p99 > 800.0, "{sched_p99}");
    // 19 publishes waited for the one slot.
    assert_eq!(u(&r, &["publish", "cap_waits"]), 19);
    assert_eq!(u(&r, &["publish", "in_flight_max"]), 1);
    let checks: Vec<String> = failed(&r).into_iter().map(|(c, _)| c).collect();
    assert_eq!(checks, ["p99_from_schedule", "off_schedule", "offered_rate"]);
}
