//! The verdict has no holes: against the stand-in hub, each injected fault alone must make
//! `pass` false, under its own check, with its exact count and an example that names it —
//! a leaked private update, a rejected publish, an unanswered publish, a hub that
//! acknowledges slower than it is offered publishes, and a worker process that vanishes
//! (its subscribers untallied). Loss, duplicates and reordering are in
//! `accounting_standin.rs`, latency in `latency_standin.rs`.

mod common;

use common::standin::{self, Faults};
use common::{example, failed, loadgen_command, read_report, run_loadgen, u};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// 40 subscribers, 50 publishes/s for 2 s: 100 publishes.
const BASE: &[&str] = &[
    "--initial-subscribers",
    "40",
    "--publishers-rate-from",
    "50",
    "--publishers-rate-to",
    "50",
    "--duration",
    "2",
    "--settle",
    "1",
    "--publishers",
    "2",
];

async fn loadgen(name: &'static str, url: String, extra: &'static [&'static str]) -> serde_json::Value {
    tokio::task::spawn_blocking(move || {
        let mut args: Vec<&str> = BASE.to_vec();
        args.extend_from_slice(extra);
        run_loadgen(name, &url, &args)
    })
    .await
    .expect("loadgen task")
}

fn checks(failures: &[(String, u64)]) -> Vec<&str> {
    failures.iter().map(|(c, _)| c.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_update_leaked_to_a_subscriber_without_a_token_fails() {
    // Private updates; a third of the subscribers present no token. The honest stand-in
    // passes (the tokenless are owed nothing and get nothing); the leaking one fails.
    const PRIVATE: &[&str] = &["--private-updates", "true", "--anonymous-share", "0.33", "--seed", "5"];
    let honest = standin::start(Faults::default()).await;
    let r = loadgen("leak-control", honest.url(), PRIVATE).await;
    assert_eq!(r["verdict"]["pass"], true, "{:?}", failed(&r));
    let owed = u(&r, &["delivery", "expected"]);
    assert!(owed > 0 && owed < 40 * 100, "only the subscribers with a token are owed: {owed}");
    assert_eq!(owed % 100, 0);

    let leaky = standin::start(Faults { leak_private: true, ..Faults::default() }).await;
    let r = loadgen("leak", leaky.url(), PRIVATE).await;
    let leaked = leaky.stats.leaked.load(Ordering::SeqCst);
    assert_eq!(leaked, 40 * 100 - owed, "every tokenless subscriber got every update");
    assert_eq!(u(&r, &["delivery", "unexpected"]), leaked);
    assert_eq!(u(&r, &["delivery", "lost"]), 0);
    assert_eq!(r["verdict"]["pass"], false);
    assert_eq!(r["verdict"]["no_unexpected"], false);
    assert_eq!(failed(&r), [("unexpected".to_string(), leaked)]);
    let ex = example(&r, "unexpected");
    assert!(ex.contains("a private update to a subscriber without a token"), "{ex}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_publish_fails() {
    let hub = standin::start(Faults { reject_every: Some(10), ..Faults::default() }).await;
    let r = loadgen("rejected", hub.url(), &[]).await;
    assert_eq!(hub.stats.rejected.load(Ordering::SeqCst), 10);
    assert_eq!((u(&r, &["publish", "accepted"]), u(&r, &["publish", "rejected"])), (90, 10));
    // Nothing owed was lost: rejected publishes are not owed.
    assert_eq!((u(&r, &["delivery", "expected"]), u(&r, &["delivery", "lost"])), (40 * 90, 0));
    assert_eq!(r["verdict"]["pass"], false);
    assert_eq!(failed(&r), [("rejected_publishes".to_string(), 10)]);
    let ex = example(&r, "rejected_publishes");
    assert!(ex.contains("status 400: rejected by the stand-in"), "{ex}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_publish_fails() {
    // Every 25th publish hangs for 3 s; the loadgen gives up after 0.5 s.
    let hub =
        standin::start(Faults { stall_publish_every: Some(25), stall_publish_ms: 3000, ..Faults::default() }).await;
    let r = loadgen("unanswered", hub.url(), &["--publish-timeout", "0.5"]).await;
    assert_eq!(hub.stats.stalled.load(Ordering::SeqCst), 4);
    assert_eq!((u(&r, &["publish", "accepted"]), u(&r, &["publish", "unknown"])), (96, 4));
    assert_eq!(u(&r, &["delivery", "lost"]), 0);
    assert_eq!(r["verdict"]["pass"], false);
    assert_eq!(failed(&r), [("unanswered_publishes".to_string(), 4)]);
    let ex = example(&r, "unanswered_publishes");
    assert!(ex.contains("no answer within 0.5 s"), "{ex}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_that_acknowledges_slower_than_offered_fails_the_rate() {
    // Deliveries are immediate, answers take 400 ms: every publish is sent on time (the
    // open model keeps ~20 in flight) and delivered fast, but the last answer comes 0.4 s
    // after the schedule's end, so 100 publishes were answered over ~2.4 s: ~42/s while
    // they were offered at 50/s.
    let hub = standin::start(Faults { delay_answer_ms: 400, ..Faults::default() }).await;
    let r = loadgen("slow-answers", hub.url(), &[]).await;
    assert_eq!(u(&r, &["publish", "accepted"]), 100);
    assert!(u(&r, &["publish", "in_flight_max"]) >= 15, "open model: {}", r["publish"]);
    assert_eq!(u(&r, &["publish", "cap_waits"]), 0);
    assert_eq!(u(&r, &["delivery", "lost"]), 0);
    let rate = r["publish"]["rate_per_s"].as_f64().unwrap_or(0.0);
    assert!(rate < 45.0, "{rate}");
    assert_eq!(r["verdict"]["rate_met"], false);
    assert_eq!(checks(&failed(&r)), ["offered_rate"]);
    let ex = example(&r, "offered_rate");
    assert!(ex.contains("but offered at 50.00/s"), "{ex}");
}

/// Pids of the processes whose parent is `parent`.
fn children(parent: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // Field 4, after the parenthesized command name.
            let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1));
            ppid.and_then(|p| p.parse::<u32>().ok()) == Some(parent)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_vanishes_leaves_its_subscribers_untallied_and_fails() {
    let hub = standin::start(Faults::default()).await;
    let url = hub.url();
    let r = tokio::task::spawn_blocking(move || {
        let (mut cmd, report) = loadgen_command(
            "vanish",
            &url,
            &[
                "--initial-subscribers",
                "40",
                "--workers",
                "2",
                "--publishers-rate-from",
                "20",
                "--publishers-rate-to",
                "20",
                "--duration",
                "4",
                "--settle",
                "1",
            ],
        );
        let child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn();
        let child = child.expect("start mercure-loadgen");
        // Its two worker processes; kill the second one (ours: a child of the run we
        // started) in the middle of the publish phase, before its final tally.
        let deadline = Instant::now() + Duration::from_secs(20);
        let workers = loop {
            let w = children(child.id());
            if w.len() >= 2 || Instant::now() > deadline {
                break w;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(workers.len(), 2, "two worker processes: {workers:?}");
        std::thread::sleep(Duration::from_millis(2500));
        let mut sorted = workers.clone();
        sorted.sort_unstable();
        let victim = sorted[1].to_string();
        let killed = std::process::Command::new("kill").args(["-KILL", &victim]).status();
        assert!(killed.is_ok_and(|s| s.success()), "kill {victim}");
        let out = child.wait_with_output().expect("wait for mercure-loadgen");
        read_report(&report, &out)
    })
    .await
    .expect("loadgen task");
    // One worker tallied its 20 subscribers, clean; the other's 20 are untallied.
    assert_eq!(u(&r, &["delivery", "tallied_subscribers"]), 20);
    assert_eq!(u(&r, &["delivery", "untallied_subscribers"]), 20);
    assert_eq!(u(&r, &["delivery", "lost"]), 0);
    assert_eq!(r["verdict"]["pass"], false);
    assert_eq!(r["verdict"]["all_tallied"], false);
    assert_eq!(failed(&r), [("untallied_subscribers".to_string(), 20)]);
    let ex = example(&r, "untallied_subscribers");
    assert!(ex.contains("ended without its final report") && ex.contains("20 subscribers"), "{ex}");
}
