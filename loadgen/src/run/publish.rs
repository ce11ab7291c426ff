//! Phase 2 of a run: the publishers. Builds the [`Publisher`] (schedule, topics, tokens)
//! and runs goose with it until the schedule is done or Ctrl-C; goose writes its own
//! report beside ours.

use super::plan::Plan;
use crate::arrivals::{Ramp, Schedule};
use crate::config::RunArgs;
use crate::publisher::{PublishSpec, Publisher};
use clap::Parser as _;
use goose::config::GooseConfiguration;
use goose::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Parses extra goose flags.
#[derive(clap::Parser)]
#[command(no_binary_name = true)]
struct GooseCli {
    #[command(flatten)]
    c: GooseConfiguration,
}

/// The run's publisher.
pub fn publisher(args: &RunArgs, plan: &Plan) -> Result<Arc<Publisher>, String> {
    let ramp = Ramp::new(args.publishers_rate_from, args.publishers_rate_to, Duration::from_secs_f64(plan.publish_s));
    Ok(Publisher::new(PublishSpec {
        hub_urls: plan.hub_urls.clone(),
        spread: args.publish_spread,
        jwt: plan.pub_jwt.clone(),
        private: args.private_updates,
        payload_size: args.payload_size,
        run_id: plan.run_id.clone(),
        topics: plan.topics.clone(),
        zipf_s: args.zipf_s,
        seed: plan.seed,
        schedule: Schedule::new(ramp, args.arrivals, plan.seed)?,
        timeout: Duration::from_secs_f64(args.publish_timeout.max(0.001)),
        max_in_flight: args.max_in_flight.max(1),
    }))
}

/// Runs the goose publishers until the schedule is done (or Ctrl-C, which stops claiming
/// publishes and triggers goose's killswitch); returns goose's report files.
pub async fn run_goose(
    args: &RunArgs,
    plan: &Plan,
    publisher: &Arc<Publisher>,
    stop: &mut watch::Receiver<bool>,
) -> Result<Vec<String>, String> {
    let report_base = strip_json(&args.report);
    if let Some(dir) = args.report.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    if publisher.scheduled() == 0 || *stop.borrow() {
        return Ok(Vec::new());
    }
    let mut gc = match &args.goose_args {
        Some(a) => GooseCli::try_parse_from(a.split_whitespace()).map_err(|e| format!("--goose-args: {e}"))?.c,
        None => GooseConfiguration::default(),
    };
    gc.host.get_or_insert(plan.origin.clone());
    gc.users.get_or_insert(args.publishers.max(1));
    // All users at once by default: the schedule starts with the first dispatch, and a user
    // launched late only adds lateness while it is the one to claim the next publish.
    gc.increase_rate
        .get_or_insert(args.hatch_rate.clone().unwrap_or_else(|| (args.publishers.max(1) * 100).to_string()));
    // Safety net: the schedule ends the run through goose's killswitch.
    gc.run_time.get_or_insert(format!("{}s", plan.publish_s.ceil() as u64 + args.publish_timeout.ceil() as u64 + 30));
    gc.no_telnet = true;
    gc.no_websocket = true;
    gc.no_reset_metrics = true;
    gc.no_print_metrics = true;
    if gc.report_file.is_empty() {
        gc.report_file =
            vec![format!("{}.goose.html", report_base.display()), format!("{}.goose.json", report_base.display())];
    }
    let reports = gc.report_file.clone();
    let attack = GooseAttack::initialize_with_config(gc)
        .map_err(|e| format!("goose: {e}"))?
        .register_scenario(publisher.scenario());
    let goose = tokio::spawn(attack.execute());
    tokio::pin!(goose);
    let result = tokio::select! {
        r = &mut goose => r,
        _ = stop.wait_for(|s| *s) => {
            publisher.stop();
            goose::trigger_killswitch("ctrl-c");
            // Keep waiting for goose to wind down and write its report.
            (&mut goose).await
        }
    };
    match result {
        Ok(Ok(_metrics)) => {}
        Ok(Err(e)) => eprintln!("goose ended with an error: {e:?}"),
        Err(e) => eprintln!("goose task failed: {e}"),
    }
    Ok(reports)
}

fn strip_json(p: &Path) -> PathBuf {
    match p.extension() {
        Some(e) if e == "json" => p.with_extension(""),
        _ => p.to_path_buf(),
    }
}
