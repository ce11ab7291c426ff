//! The verdict of a run: pass only when nothing in it is wrong.
//!
//! Checks, in report order (each failed one is listed with a count and an example):
//!
//! | check | fails when |
//! |---|---|
//! | `p99_from_schedule` | no latency sample, or p99 from the scheduled time ≥ `--slo-ms` |
//! | `loss` | any expected publish did not arrive |
//! | `duplicates` | any publish arrived twice in a session |
//! | `out_of_order` | any publish arrived after one sent once it had been acknowledged |
//! | `unexpected` | anything arrived that was not owed (leaked private update, rejected publish, outside the session, another topic) |
//! | `rejected_publishes` | the hub answered any publish with something other than 200 |
//! | `unanswered_publishes` | any publish got no answer (timeout, connection error) |
//! | `off_schedule` | a due publish waited for the in-flight cap, or was never sent |
//! | `untallied_subscribers` | a subscriber's sessions were not tallied (task panicked, worker vanished) |
//! | `not_connected` | an initial subscriber was not held when publishing started, or one never connected |
//! | `offered_rate` | the hub answered slower than publishes were offered: its answers came at less than 1 − [`RATE_TOLERANCE`] of the pace they were sent |
//! | `interrupted` | Ctrl-C cut the run short |
//!
//! The rate check is about pace, not count (rejected and unanswered publishes have their
//! own checks): the answered publishes were offered over the schedule's length `D`, and
//! answered over the publish phase, from the schedule's origin to the later of `D` and the
//! last answer; the hub kept up if that phase is at most `D / (1 − tolerance)`. Why a
//! tolerance: a hub that keeps up answers the last publish within a round trip of its due
//! time, one gap (1/rate) before the schedule ends, so the phase stretches only when that
//! round trip exceeds the gap. 2% of a 10 s point is ~200 ms, twice the default SLO: a
//! healthy run does not get near it, while a hub whose answers queue up (it acknowledges
//! slower than it is offered publishes) crosses it.

use crate::accounting::{Examples, Tally};
use crate::histo::Summary;
use crate::publisher::PublishExamples;
use crate::report::{Failure, Verdict};

/// The share of the offered publish rate that may be missing (see the module docs).
pub const RATE_TOLERANCE: f64 = 0.02;

/// What the verdict looks at.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// SLO for p99 from the schedule, ms.
    pub slo_ms: f64,
    /// Latency from the schedule.
    pub latency: Summary,
    /// Delivery accounting, and one example per fault.
    pub tally: Tally,
    /// See `tally`.
    pub examples: Examples,
    /// Publishes scheduled, accepted, rejected, unknown, skipped, and cap waits.
    pub scheduled: u64,
    /// See `scheduled`.
    pub accepted: u64,
    /// See `scheduled`.
    pub rejected: u64,
    /// See `scheduled`.
    pub unknown: u64,
    /// See `scheduled`.
    pub skipped: u64,
    /// See `scheduled`.
    pub cap_waits: u64,
    /// The first failed publishes.
    pub publish_examples: PublishExamples,
    /// The schedule's length, s.
    pub schedule_s: f64,
    /// The publish phase: from the schedule's origin to the later of its end and the last
    /// answer, s.
    pub phase_s: f64,
    /// Subscribers not tallied, and why.
    pub untallied: u64,
    /// See `untallied`.
    pub untallied_example: Option<String>,
    /// Initial subscribers asked for, and connected by the time publishing started.
    pub initial_requested: u64,
    /// See `initial_requested`.
    pub initial_connected: u64,
    /// Subscribers that never connected.
    pub never_connected: u64,
    /// Connect errors by kind, for the example.
    pub first_error_kind: Option<String>,
    /// Ctrl-C cut the run short.
    pub interrupted: bool,
}

/// Judges a run.
pub fn judge(i: &Inputs) -> Verdict {
    let mut failures = Vec::new();
    let mut fail = |check: &str, count: u64, example: String| {
        failures.push(Failure { check: check.into(), count, example });
    };
    let ex = |e: &Option<String>| e.clone().unwrap_or_else(|| "no example recorded".into());
    let l = &i.latency;
    let p99_within_slo = l.count > 0 && l.p99 < i.slo_ms;
    if !p99_within_slo {
        let what = if l.count == 0 {
            "no latency sample: nothing was delivered while its subscriber was connected".to_string()
        } else {
            format!(
                "p99 from schedule {:.2} ms ≥ SLO {} ms ({} samples, max {:.2} ms)",
                l.p99, i.slo_ms, l.count, l.max
            )
        };
        fail("p99_from_schedule", 1, what);
    }
    let t = &i.tally;
    let zero_loss = t.lost == 0;
    if !zero_loss {
        fail("loss", t.lost, ex(&i.examples.lost));
    }
    let no_duplicates = t.duplicates == 0;
    if !no_duplicates {
        fail("duplicates", t.duplicates, ex(&i.examples.duplicate));
    }
    let in_order = t.out_of_order == 0;
    if !in_order {
        fail("out_of_order", t.out_of_order, ex(&i.examples.out_of_order));
    }
    let no_unexpected = t.unexpected == 0;
    if !no_unexpected {
        fail("unexpected", t.unexpected, ex(&i.examples.unexpected));
    }
    if i.rejected > 0 {
        fail("rejected_publishes", i.rejected, ex(&i.publish_examples.rejected));
    }
    if i.unknown > 0 {
        fail("unanswered_publishes", i.unknown, ex(&i.publish_examples.unknown));
    }
    let publishes_accepted = i.rejected == 0 && i.unknown == 0;
    let on_schedule = i.cap_waits == 0 && i.skipped == 0;
    if !on_schedule {
        fail(
            "off_schedule",
            i.cap_waits + i.skipped,
            format!(
                "{} publishes waited for a free in-flight slot (--max-in-flight), {} due publishes were never sent",
                i.cap_waits, i.skipped
            ),
        );
    }
    let all_tallied = i.untallied == 0;
    if !all_tallied {
        fail("untallied_subscribers", i.untallied, ex(&i.untallied_example));
    }
    let all_connected = i.initial_connected >= i.initial_requested && i.never_connected == 0;
    if !all_connected {
        fail(
            "not_connected",
            i.initial_requested.saturating_sub(i.initial_connected).max(i.never_connected),
            format!(
                "{} of {} initial subscribers connected before publishing; {} never connected{}",
                i.initial_connected,
                i.initial_requested,
                i.never_connected,
                i.first_error_kind.as_ref().map_or_else(String::new, |k| format!("; most frequent error: {k}"))
            ),
        );
    }
    let answered = i.accepted + i.rejected;
    let rate_met = answered == 0 || i.phase_s * (1.0 - RATE_TOLERANCE) <= i.schedule_s;
    if !rate_met {
        let per_s = |s: f64| answered as f64 / s.max(1e-9);
        fail(
            "offered_rate",
            1,
            format!(
                "{answered} publishes were answered at {:.2}/s but offered at {:.2}/s: the last answer came \
                 {:.3} s after the {:.3} s schedule ended (tolerance {:.0} %)",
                per_s(i.phase_s),
                per_s(i.schedule_s),
                i.phase_s - i.schedule_s,
                i.schedule_s,
                RATE_TOLERANCE * 100.0
            ),
        );
    }
    if i.interrupted {
        fail("interrupted", 1, "Ctrl-C cut the run short; the numbers cover what ran".into());
    }
    Verdict {
        p99_within_slo,
        zero_loss,
        no_duplicates,
        in_order,
        no_unexpected,
        publishes_accepted,
        on_schedule,
        all_tallied,
        all_connected,
        rate_met,
        rate_tolerance: RATE_TOLERANCE,
        pass: failures.is_empty(),
        failures,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean() -> Inputs {
        Inputs {
            slo_ms: 100.0,
            latency: Summary { count: 1000, p50: 5.0, p99: 20.0, max: 30.0, ..Summary::default() },
            tally: Tally { expected: 1000, delivered: 1000, sessions: 10, ..Tally::default() },
            scheduled: 100,
            accepted: 100,
            schedule_s: 10.0,
            phase_s: 10.19,
            initial_requested: 10,
            initial_connected: 10,
            ..Inputs::default()
        }
    }

    /// Each fault alone fails the verdict, under its own check, with its count.
    #[test]
    fn every_fault_alone_fails_with_its_check_and_count() {
        let v = judge(&clean());
        assert!(v.pass && v.failures.is_empty(), "{v:?}");
        type Fault = Box<dyn Fn(&mut Inputs)>;
        let cases: Vec<(&str, u64, Fault)> = vec![
            ("p99_from_schedule", 1, Box::new(|i| i.latency.p99 = 100.0)),
            ("p99_from_schedule", 1, Box::new(|i| i.latency = Summary::default())),
            ("loss", 3, Box::new(|i| i.tally.lost = 3)),
            ("duplicates", 2, Box::new(|i| i.tally.duplicates = 2)),
            ("out_of_order", 1, Box::new(|i| i.tally.out_of_order = 1)),
            ("unexpected", 4, Box::new(|i| i.tally.unexpected = 4)),
            ("rejected_publishes", 1, Box::new(|i| i.rejected = 1)),
            ("unanswered_publishes", 5, Box::new(|i| i.unknown = 5)),
            ("off_schedule", 7, Box::new(|i| i.cap_waits = 7)),
            ("off_schedule", 1, Box::new(|i| i.skipped = 1)),
            ("untallied_subscribers", 1, Box::new(|i| i.untallied = 1)),
            ("not_connected", 1, Box::new(|i| i.initial_connected = 9)),
            ("not_connected", 2, Box::new(|i| i.never_connected = 2)),
            ("offered_rate", 1, Box::new(|i| i.phase_s = 10.25)),
            ("interrupted", 1, Box::new(|i| i.interrupted = true)),
        ];
        for (check, count, fault) in cases {
            let mut i = clean();
            fault(&mut i);
            let v = judge(&i);
            assert!(!v.pass, "{check}: {v:?}");
            assert_eq!(v.failures.len(), 1, "{check}: {:?}", v.failures);
            assert_eq!((v.failures[0].check.as_str(), v.failures[0].count), (check, count));
        }
        // Reordering among publishes in flight together is reported, not failed on.
        let mut i = clean();
        i.tally.reordered_concurrent = 9;
        assert!(judge(&i).pass);
    }

    #[test]
    fn examples_are_carried_into_the_failures() {
        let mut i = clean();
        i.tally.unexpected = 1;
        i.examples.unexpected = Some("subscriber 3: topic 0: seq 1 received but not owed: leak".into());
        i.rejected = 1;
        i.publish_examples.rejected = Some("publish #0 (topic 0, seq 0): status 403: nope".into());
        let v = judge(&i);
        assert_eq!(v.failures[0].example, "subscriber 3: topic 0: seq 1 received but not owed: leak");
        assert!(v.failures[1].example.contains("status 403"));
        assert!(!v.no_unexpected && !v.publishes_accepted && v.zero_loss);
    }
}
