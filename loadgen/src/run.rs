//! The coordinator of one load run: plan, workers, publishers, progress, report.
//!
//! Sequence: resolve the hub and mint tokens → start the hub sampler (baseline RSS) →
//! spawn worker processes, which ramp up the initial subscribers → wait until every
//! initial subscriber connected or gave up → `Start` (arrivals begin) → goose publishes
//! on schedule → settle → `Stop` (all subscribers close) → send the publish log →
//! merge the workers' final tallies and histograms → report.
//!
//! Ctrl-C at any point stops publishing (goose's killswitch), skips to settle and
//! `Stop`, and still writes the report, marked `interrupted`. A second Ctrl-C exits at
//! once (handled in `main`).
//!
//! Several hub URLs (a multi-node hub, see [`crate::nodes`]): each is resolved here, the
//! workers get them all and connect subscriber `g` to node `g mod N`, the publisher
//! spreads publishes by `--publish-spread`, and the report adds `nodes[]` (held and
//! delivered per node) to totals that stay what they were: the accounting is per
//! session and never looks at nodes.

use crate::accounting::Tally;
use crate::arrivals::Ramp;
use crate::clock::now_ns;
use crate::config::RunArgs;
use crate::histo;
use crate::hubstats::{self, HubStats, Sample, Source};
use crate::nodes::NodeAddr;
use crate::publisher::{PublishSpec, Publisher};
use crate::report::{ConfigEcho, Connections, Delivery, LoadgenCpu, Phases, Publish, Report, SCHEMA, Verdict};
use crate::shard::{Progress, SwarmConfig};
use crate::swarm::Control;
use crate::topics::TopicSpace;
use crate::worker::WorkerHandle;
use clap::Parser as _;
use goose::config::GooseConfiguration;
use goose::prelude::*;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{Instant, sleep};

/// Parses extra goose flags.
#[derive(clap::Parser)]
#[command(no_binary_name = true)]
struct GooseCli {
    #[command(flatten)]
    c: GooseConfiguration,
}

/// Runs one load run; `stop` becomes `true` on Ctrl-C.
pub async fn run(args: RunArgs, mut stop: watch::Receiver<bool>) -> Result<Report, String> {
    let t_start = Instant::now();
    let started_at_unix_ms = now_ns() / 1_000_000;
    let hub_urls = args.hub_urls();
    let mut nodes: Vec<NodeAddr> = Vec::with_capacity(hub_urls.len());
    let mut origins: Vec<String> = Vec::with_capacity(hub_urls.len());
    for url in &hub_urls {
        let (addr, origin) = node_addr(url).await?;
        nodes.push(addr);
        origins.push(origin);
    }
    let Some(origin) = origins.first().cloned() else {
        return Err("no hub URL (--hub-url / HUB_URL)".into());
    };
    // Soak mode: which hub's gauges to hold against which nodes' subscribers.
    let gauges = match &args.timeseries {
        Some(_) => crate::soak::gauge_groups(
            &if args.hub_gauges_url.is_empty() {
                origins.iter().map(|o| format!("{o}/metrics")).collect::<Vec<_>>()
            } else {
                args.hub_gauges_url.clone()
            },
            nodes.len(),
        )?,
        None => Vec::new(),
    };

    let seed = args.seed.unwrap_or_else(now_ns);
    let run_id = format!("{:08x}", crate::topics::uniform_from(seed, 17).to_bits() as u32);
    let pub_jwt = match &args.jwt {
        Some(j) => j.clone(),
        None => crate::jwt::publisher(&args.jwt_key)?,
    };
    let sub_creds = args.subscriber_credentials()?;
    let topics = TopicSpace { base: args.topic_base.trim_end_matches('/').to_string(), count: args.topics.max(1) };
    let publish_s = args.publish_seconds();
    let arrivals = Ramp::new(
        args.subscribers_rate_from,
        args.subscribers_rate_to,
        Duration::from_secs_f64(args.injection_duration.max(0.0)),
    );
    let total_subs = args.initial_subscribers + arrivals.total();
    let per = args.max_conns_per_worker.max(1);
    let workers = args
        .workers
        .unwrap_or_else(|| {
            let need = total_subs.div_ceil(per) as u32;
            need.max(if total_subs >= 2000 { 2 } else { 1 })
        })
        .max(1);
    let targets: Vec<SocketAddr> = nodes.iter().map(|n| n.target).collect();
    let sources = source_addrs(&args.source_addrs, &targets, workers, args.source_base)?;

    // Hub sampler: baseline first, then every second until told to stop. Several hub
    // processes: their sum (ticks where all answered) and each one's own series.
    let hub_sources: Vec<Source> = if args.hub_pid.is_empty() {
        args.hub_metrics_url.iter().map(|u| Source::Metrics(u.clone())).collect()
    } else {
        args.hub_pid.iter().map(|&p| Source::Pid(p)).collect()
    };
    type Series = (Vec<Sample>, Vec<Vec<Sample>>);
    let samples: Arc<Mutex<Series>> = Arc::new(Mutex::new((Vec::new(), vec![Vec::new(); hub_sources.len()])));
    let (sampler_stop_tx, sampler_stop) = watch::channel(false);
    let sampler = (!hub_sources.is_empty()).then(|| {
        let samples = samples.clone();
        let srcs = hub_sources.clone();
        let mut halt = sampler_stop.clone();
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
    if sampler.is_some() {
        // Let the baseline sample land before anything connects.
        sleep(Duration::from_millis(200)).await;
    }

    // Workers.
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut handles = Vec::new();
    for w in 0..workers {
        let cfg = SwarmConfig {
            worker: w,
            workers,
            nodes: nodes.clone(),
            source_addr: sources.get(w as usize).copied().flatten(),
            run_id: run_id.clone(),
            topics: topics.clone(),
            selector: args.selector,
            subscriber_jwt: sub_creds.as_ref().map(|c| c.0.clone()),
            auth_via: sub_creds.as_ref().map_or(crate::shard::AuthVia::Header, |c| c.1),
            private: args.private_updates,
            initial_total: args.initial_subscribers,
            connect_rate: args.connect_rate,
            arrivals,
            lifetime_s: args.connection_duration.max(0.0),
            random_lifetime: args.random_connection_duration,
            lifetime_end: args.lifetime_end,
            on_drop: args.on_drop,
            reconnect_delay_ms: args.reconnect_delay_ms,
            connect_retries: args.connect_retries,
            connect_timeout_ms: (args.connect_timeout * 1000.0) as u64,
            settle_ns: (args.settle.max(0.0) * 1e9) as u64,
            seed,
            stall_after: args.stall_after,
            stall_ms: args.stall_ms,
            sched: args.worker_sched,
            min_lifetime_s: args.min_connection_duration.max(0.0),
            expiring: (args.expiring_share > 0.0).then(|| crate::expiring::ExpiringTokens {
                key: args.subscriber_jwt_key.clone().unwrap_or_else(|| args.jwt_key.clone()),
                share: args.expiring_share.clamp(0.0, 1.0),
                min_s: args.expiring_min,
                max_s: args.expiring_max,
                seed,
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
        };
        handles.push(WorkerHandle::spawn(&exe, cfg).await?);
    }

    let publisher = Publisher::new(PublishSpec {
        hub_urls: hub_urls.clone(),
        spread: args.publish_spread,
        jwt: pub_jwt,
        private: args.private_updates,
        payload_size: args.payload_size,
        run_id: run_id.clone(),
        topics: topics.clone(),
        zipf_s: args.zipf_s,
        seed,
        ramp: Ramp::new(args.publishers_rate_from, args.publishers_rate_to, Duration::from_secs_f64(publish_s)),
        timeout: Duration::from_secs_f64(args.publish_timeout.max(0.001)),
    });

    let progress = crate::progress::Display::start(
        !args.no_progress,
        handles.iter().map(|h| h.view.clone()).collect(),
        publisher.clone(),
        total_subs,
    );
    // Soak sampling (--timeseries): the phase is shared with the sampler.
    let soak_phase: crate::soak::Phase = Arc::new(Mutex::new("connecting"));
    let set_phase = |p: &'static str| {
        progress.phase(p);
        if let Ok(mut g) = soak_phase.lock() {
            *g = p;
        }
    };
    let soak_sampler = match &args.timeseries {
        Some(path) => Some(crate::soak::Sampler::start(
            crate::soak::SamplerConfig {
                path: path.clone(),
                every: Duration::from_secs_f64(args.sample_every.max(0.5)),
                gauges: gauges.clone(),
                pids: args.hub_pid.clone(),
                // Publishers' keep-alive connections (goose may open a second one per
                // user on a timeout) and the scrape itself.
                extra_connections: 2 * args.publishers as u64 + 2,
            },
            t_start,
            handles.iter().map(|h| h.view.clone()).collect(),
            soak_phase.clone(),
        )?),
        None => None,
    };

    // Phase 1: initial subscribers.
    set_phase("connecting");
    let connect_budget = Duration::from_secs_f64(
        args.initial_subscribers as f64 / args.connect_rate.max(1.0)
            + args.connect_timeout * f64::from(args.connect_retries + 1)
            + 5.0,
    );
    let deadline = Instant::now() + connect_budget;
    loop {
        let agg = aggregate(&handles);
        let settled = agg.initial_connected + agg.initial_failed >= args.initial_subscribers;
        let all_failed = handles.iter().all(|h| h.view().failed.is_some());
        if settled || all_failed || *stop.borrow() || Instant::now() >= deadline {
            break;
        }
        tokio::select! {
            _ = sleep(Duration::from_millis(100)) => {}
            _ = stop.changed() => {}
        }
    }
    if let Some(err) = handles.iter().find_map(|h| h.view().failed) {
        progress.finish();
        return Err(format!("worker failed: {err}"));
    }
    let connect_s = t_start.elapsed().as_secs_f64();
    let at_start = aggregate(&handles);
    let initial_held = at_start.held;
    let initial_held_per_node: Vec<u64> = at_start.nodes.iter().map(|c| c.held).collect();
    let initial_connected = at_start.initial_connected;

    // Phase 2: publish.
    set_phase("publishing");
    for h in &mut handles {
        h.send(&Control::Start).await?;
    }
    let t_pub = Instant::now();
    let pub_window_start = t_start.elapsed().as_secs_f64();
    let report_base = strip_json(&args.report);
    if let Some(dir) = args.report.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let mut goose_reports = Vec::new();
    if publisher.scheduled() > 0 && !*stop.borrow() {
        let mut gc = match &args.goose_args {
            Some(a) => GooseCli::try_parse_from(a.split_whitespace()).map_err(|e| format!("--goose-args: {e}"))?.c,
            None => GooseConfiguration::default(),
        };
        gc.host.get_or_insert(origin.clone());
        gc.users.get_or_insert(args.publishers.max(1));
        gc.increase_rate.get_or_insert(args.hatch_rate.clone().unwrap_or_else(|| args.publishers.max(1).to_string()));
        // Safety net: the schedule ends the run through goose's killswitch.
        gc.run_time.get_or_insert(format!("{}s", publish_s.ceil() as u64 + args.publish_timeout.ceil() as u64 + 30));
        gc.no_telnet = true;
        gc.no_websocket = true;
        gc.no_reset_metrics = true;
        gc.no_print_metrics = true;
        if gc.report_file.is_empty() {
            gc.report_file =
                vec![format!("{}.goose.html", report_base.display()), format!("{}.goose.json", report_base.display())];
        }
        goose_reports.clone_from(&gc.report_file);
        let attack = GooseAttack::initialize_with_config(gc)
            .map_err(|e| format!("goose: {e}"))?
            .register_scenario(publisher.scenario());
        publisher.begin();
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
    }
    let publish_s_real = t_pub.elapsed().as_secs_f64();
    let pub_window_end = t_start.elapsed().as_secs_f64();

    // Phase 3: settle, stop, tally.
    set_phase("settling");
    if !*stop.borrow() {
        tokio::select! {
            _ = sleep(Duration::from_secs_f64(args.settle.max(0.0))) => {}
            _ = stop.wait_for(|s| *s) => {}
        }
    }
    let at_stop = aggregate(&handles);
    let held_at_stop = at_stop.held;
    set_phase("closing");
    for h in &mut handles {
        let _ = h.send(&Control::Stop).await;
    }
    let log = publisher.log().await;
    // The publish phase, for rates: the schedule's span, or longer if the publishes
    // themselves took longer (first send to last acknowledgement).
    let first = log.topics.iter().filter_map(|t| t.start.first()).min().copied();
    let last = log.topics.iter().filter_map(|t| t.ack.last()).max().copied();
    let span_s = match (first, last) {
        (Some(a), Some(b)) if b > a => (b - a) as f64 / 1e9,
        _ => 0.0,
    };
    let publish_s_real = if publisher.finished() > 0 && !*stop.borrow() {
        span_s.max(publish_s)
    } else if publisher.finished() > 0 {
        span_s
    } else {
        publish_s_real
    };
    set_phase("tallying");
    let log_msg = Control::Log(log);
    for h in &mut handles {
        let _ = h.send(&log_msg).await;
    }
    let fin_deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let done = handles.iter().all(|h| h.view().fin.is_some() || h.view().exited);
        if done || Instant::now() >= fin_deadline {
            break;
        }
        sleep(Duration::from_millis(50)).await;
    }
    let _ = sampler_stop_tx.send(true);
    if let Some(s) = sampler {
        let _ = s.await;
    }
    progress.finish();

    // Merge.
    let mut tally = Tally::default();
    let mut hist = histo::new();
    let mut conns = Connections {
        requested: total_subs,
        initial_requested: args.initial_subscribers,
        initial_held,
        initial_connected,
        held_at_stop,
        ..Connections::default()
    };
    let (mut events, mut foreign, mut replayed) = (0, 0, 0);
    let mut soak_counts = Progress::default();
    let mut node_counts: Vec<crate::nodes::NodeCounters> = Vec::new();
    let mut node_tallies = vec![Tally::default(); nodes.len()];
    let mut missing = Vec::new();
    for (i, h) in handles.iter().enumerate() {
        let v = h.view();
        let Some(f) = v.fin else {
            missing.push(format!("worker {i}: {}", v.failed.unwrap_or_else(|| "no final report".into())));
            continue;
        };
        tally.add(&f.tally);
        for (t, ft) in node_tallies.iter_mut().zip(&f.node_tallies) {
            t.add(ft);
        }
        crate::nodes::add_all(&mut node_counts, &f.progress.nodes);
        if let Some(wh) = histo::from_hex(&f.progress.hist) {
            let _ = hist.add(&wh);
        }
        let p = &f.progress;
        conns.peak_held += p.peak_held;
        conns.attempts += p.connect_attempts;
        conns.errors += p.connect_errors;
        conns.server_drops += p.drops;
        conns.reconnects += p.reconnects;
        conns.pending_at_stop += p.pending_at_stop;
        conns.never_connected += f.never_connected;
        for (k, v) in f.error_kinds {
            *conns.error_kinds.entry(k).or_default() += v;
        }
        events += p.events;
        foreign += p.foreign;
        replayed += p.replayed;
        soak_counts.token_expiries += p.token_expiries;
        soak_counts.stuck_cycles += p.stuck_cycles;
        soak_counts.stuck_evicted += p.stuck_evicted;
        soak_counts.stuck_not_evicted += p.stuck_not_evicted;
        soak_counts.stuck_reset += p.stuck_reset;
        soak_counts.stuck_errors += p.stuck_errors;
    }
    // Our own CPU, so a reader can tell whether the loadgen or the hub was the limit
    // (workers are sampled after their final report, before they exit).
    let mut loadgen_cpu = LoadgenCpu { workers: handles.len() as u32, ..LoadgenCpu::default() };
    for h in &handles {
        if let Some(s) = h.pid.and_then(hubstats::sample_pid) {
            loadgen_cpu.workers_cpu_s += s.cpu_s;
            loadgen_cpu.workers_rss_max_bytes = loadgen_cpu.workers_rss_max_bytes.max(s.rss_bytes);
        }
    }
    if let Some(s) = hubstats::sample_pid(std::process::id()) {
        loadgen_cpu.coordinator_cpu_s = s.cpu_s;
    }
    for h in handles {
        h.finish().await;
    }
    // Every subscriber is closed now: the hub's gauges must come back to the truth.
    let soak = match (soak_sampler, &args.timeseries) {
        (Some(sampler), Some(path)) => {
            let (samples, settle_s) = sampler.finish(Duration::from_secs_f64(args.gauge_settle_timeout.max(0.0))).await;
            let evictions = |s: Option<&crate::soak::SoakSample>| {
                s.and_then(|s| s.metric("mercure_evictions_total")).unwrap_or(0.0)
            };
            let first = samples.iter().find(|s| !s.metrics.is_empty());
            let last = samples.iter().rev().find(|s| !s.metrics.is_empty());
            let (final_subscribers, final_connections) =
                samples.last().filter(|s| s.phase == "settled").map_or((None, None), |s| s.final_gauges());
            let warmup_s = args.warmup.unwrap_or(publish_s / 6.0).max(0.0);
            let mut r = crate::soak::judge(
                &samples,
                (pub_window_start, pub_window_end),
                warmup_s,
                args.rss_drift_max,
                crate::soak::VerdictInputs {
                    lost: tally.lost,
                    stuck: args.stuck,
                    stuck_evicted: soak_counts.stuck_evicted,
                    stuck_reset: soak_counts.stuck_reset,
                    stuck_not_evicted: soak_counts.stuck_not_evicted,
                    hub_evictions: evictions(last) - evictions(first),
                    final_subscribers,
                    final_connections,
                },
            );
            r.timeseries = path.display().to_string();
            r.sample_every_s = args.sample_every;
            r.settle_s = settle_s;
            r.stuck_cycles = soak_counts.stuck_cycles;
            r.stuck_errors = soak_counts.stuck_errors;
            r.token_expiries = soak_counts.token_expiries;
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            if let Err(e) = crate::soak::plot::write(dir, &samples, pub_window_start + warmup_s) {
                eprintln!("warning: soak plot: {e}");
            }
            if let Err(e) = std::fs::write(dir.join("verdict.md"), r.human()) {
                eprintln!("warning: verdict.md: {e}");
            }
            Some(r)
        }
        _ => None,
    };
    if !missing.is_empty() {
        return Err(format!("incomplete run, workers missing: {}", missing.join("; ")));
    }
    let (resp_h, lag_h) = publisher.histograms();
    let accepted = publisher.accepted.load(std::sync::atomic::Ordering::Relaxed);
    let latency = histo::summary(&hist);
    let (sum_samples, each_samples) = samples.lock().map(|v| v.clone()).unwrap_or_default();
    if !hub_sources.is_empty() && sum_samples.is_empty() {
        eprintln!(
            "warning: no hub resource sample was taken from {hub_sources:?} (for a metrics URL: it \
             must expose process_resident_memory_bytes, process_cpu_seconds_total, process_open_fds)"
        );
    }
    // A process's own RSS per subscriber needs its node's peak: known when there is one
    // process per node, in the same order.
    let peaks: Vec<u64> =
        if hub_sources.len() == nodes.len() { node_counts.iter().map(|c| c.peak_held).collect() } else { Vec::new() };
    let hub = HubStats::from_processes(
        &hub_sources,
        sum_samples,
        each_samples,
        conns.peak_held,
        &peaks,
        (pub_window_start, pub_window_end),
    );
    let per_node_pub = publisher.per_node();
    let node_reports: Vec<crate::nodes::NodeReport> = hub_urls
        .iter()
        .enumerate()
        .map(|(i, url)| {
            let c = node_counts.get(i).cloned().unwrap_or_default();
            let (sent, accepted) = per_node_pub.get(i).copied().unwrap_or_default();
            crate::nodes::NodeReport {
                url: url.clone(),
                requested: crate::nodes::subscribers_on(i, total_subs, nodes.len()),
                initial_held: initial_held_per_node.get(i).copied().unwrap_or(0),
                peak_held: c.peak_held,
                held_at_stop: at_stop.nodes.get(i).map_or(0, |c| c.held),
                attempts: c.connect_attempts,
                errors: c.connect_errors,
                server_drops: c.drops,
                publishes_sent: sent,
                publishes_accepted: accepted,
                delivery: node_tallies.get(i).copied().unwrap_or_default(),
                events_received: c.events,
            }
        })
        .collect();
    let zero_loss = tally.lost == 0;
    let p99_ok = latency.count > 0 && latency.p99 < args.slo_ms;
    // Connect errors that a retry recovered from are reported, not failed on: what
    // counts is that every initial subscriber was held and none was lost for good.
    let all_connected = initial_connected >= args.initial_subscribers && conns.never_connected == 0;
    let offered_per_s = if publish_s > 0.0 { publisher.scheduled() as f64 / publish_s } else { 0.0 };
    let achieved_per_s = accepted as f64 / publish_s_real.max(1e-9);
    // The hub absorbed the offered publish rate (5 % slack for scheduling noise).
    let rate_met = publisher.scheduled() == 0 || achieved_per_s >= 0.95 * offered_per_s;
    let report = Report {
        schema: SCHEMA.into(),
        loadgen_version: env!("CARGO_PKG_VERSION").into(),
        run_id,
        started_at_unix_ms,
        interrupted: *stop.borrow(),
        config: ConfigEcho {
            hub_url: first_url(&hub_urls),
            hub_urls: hub_urls.clone(),
            publish_spread: args.publish_spread.as_str().into(),
            topics: topics.count,
            zipf_s: args.zipf_s,
            selector: format!("{:?}", args.selector).to_lowercase(),
            private_updates: args.private_updates,
            subscriber_auth: match &sub_creds {
                None => "none".into(),
                Some((_, via)) => format!("{via:?}").to_lowercase(),
            },
            payload_size: args.payload_size,
            publish_rate_from: args.publishers_rate_from,
            publish_rate_to: args.publishers_rate_to,
            publish_duration_s: publish_s,
            initial_subscribers: args.initial_subscribers,
            subscribers_rate_from: args.subscribers_rate_from,
            subscribers_rate_to: args.subscribers_rate_to,
            connection_duration_s: args.connection_duration,
            random_connection_duration: args.random_connection_duration,
            lifetime_end: format!("{:?}", args.lifetime_end).to_lowercase(),
            on_drop: format!("{:?}", args.on_drop).to_lowercase(),
            publishers: args.publishers,
            workers,
            worker_sched: args.worker_sched.as_str().into(),
            source_addrs: sources.iter().map(|s| s.map_or("auto".into(), |a| a.to_string())).collect(),
            settle_s: args.settle,
            slo_ms: args.slo_ms,
        },
        phases: Phases {
            connect_s,
            publish_s: publish_s_real,
            settle_s: args.settle,
            total_s: t_start.elapsed().as_secs_f64(),
        },
        connections: conns,
        publish: Publish {
            scheduled: publisher.scheduled(),
            accepted,
            rejected: publisher.rejected.load(std::sync::atomic::Ordering::Relaxed),
            unknown: publisher.unknown.load(std::sync::atomic::Ordering::Relaxed),
            offered_per_s,
            rate_per_s: achieved_per_s,
            response_ms: histo::summary(&resp_h),
            lag_ms: histo::summary(&lag_h),
        },
        delivery: Delivery {
            loss_ratio: if tally.expected > 0 { tally.lost as f64 / tally.expected as f64 } else { 0.0 },
            deliveries_per_s: tally.delivered as f64 / publish_s_real.max(1e-9),
            tally,
            events_received: events,
            foreign,
            replayed,
        },
        latency_ms: latency,
        hub,
        verdict: Verdict {
            p99_within_slo: p99_ok,
            zero_loss,
            all_connected,
            rate_met,
            pass: p99_ok && zero_loss && all_connected && rate_met,
        },
        goose_reports,
        loadgen: Some(loadgen_cpu),
        soak,
        nodes: node_reports,
    };
    write_report(&args.report, &report)?;
    Ok(report)
}

/// Writes the JSON report, creating parent directories.
pub fn write_report(path: &Path, r: &Report) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let json = serde_json::to_vec_pretty(r).map_err(|e| e.to_string())?;
    std::fs::write(path, json).map_err(|e| format!("{}: {e}", path.display()))
}

fn strip_json(p: &Path) -> PathBuf {
    match p.extension() {
        Some(e) if e == "json" => p.with_extension(""),
        _ => p.to_path_buf(),
    }
}

/// The first hub URL (what `config.hub_url` has always held).
fn first_url(urls: &[String]) -> String {
    urls.first().cloned().unwrap_or_default()
}

/// Parses and resolves one hub URL: where workers connect, and its origin.
async fn node_addr(url: &str) -> Result<(NodeAddr, String), String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("bad HUB_URL {url}: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!(
            "the subscriber swarm speaks plain http:// only (got {url}); point it at the hub's \
             internal http port or a TLS-terminating proxy's backend"
        ));
    }
    let authority = uri.authority().ok_or_else(|| format!("HUB_URL has no host: {url}"))?.clone();
    let port = authority.port_u16().unwrap_or(80);
    let target = resolve(authority.host(), port).await?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    Ok((NodeAddr { target, host_header: authority.to_string(), path }, format!("http://{authority}")))
}

async fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> =
        tokio::net::lookup_host((host, port)).await.map_err(|e| format!("cannot resolve {host}: {e}"))?.collect();
    addrs.iter().find(|a| a.is_ipv4()).or(addrs.first()).copied().ok_or_else(|| format!("{host} resolves to nothing"))
}

/// Source address per worker (`None`: let the system choose). `auto` binds loopback
/// addresses only when every hub node is on IPv4 loopback.
fn source_addrs(spec: &str, targets: &[SocketAddr], workers: u32, base: u8) -> Result<Vec<Option<IpAddr>>, String> {
    let all_loopback_v4 =
        !targets.is_empty() && targets.iter().all(|t| matches!(t.ip(), IpAddr::V4(v4) if v4.is_loopback()));
    match spec {
        "none" => Ok(vec![None; workers as usize]),
        "auto" => Ok((0..workers)
            .map(|w| {
                all_loopback_v4.then(|| {
                    // 127.0.0.base+w within 2..=254, wrapping: each holds ~28k source ports.
                    let base = u32::from(base.clamp(2, 254)) - 2;
                    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + ((base + w) % 253) as u8))
                })
            })
            .collect()),
        list => {
            let parsed: Result<Vec<IpAddr>, _> = list.split(',').map(|s| s.trim().parse::<IpAddr>()).collect();
            let parsed = parsed.map_err(|e| format!("--source-addrs: {e}"))?;
            if parsed.is_empty() {
                return Err("--source-addrs: empty list".into());
            }
            Ok((0..workers as usize).map(|w| Some(parsed[w % parsed.len()])).collect())
        }
    }
}

/// Sum of the workers' live counters.
pub fn aggregate(handles: &[WorkerHandle]) -> Progress {
    let mut a = Progress::default();
    for h in handles {
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
