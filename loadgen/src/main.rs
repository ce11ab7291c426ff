//! `mercure-loadgen` command line: `run` (the default), `capacity`, and the hidden
//! `worker` used by the coordinator.

use clap::{Parser, Subcommand};
use mercure_loadgen::config::RunArgs;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU32, Ordering};

#[derive(Parser)]
#[command(
    name = "mercure-loadgen",
    about = "Load generator and capacity planner for any Mercure hub",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Cmd {
    /// One load run (the default when no subcommand is given).
    Run(Box<RunArgs>),
    /// Sweep subscriber counts and publish rates; write results/capacity-<date>/.
    Capacity(Box<mercure_loadgen::capacity::CapacityArgs>),
    /// Internal: one worker process of the subscriber swarm.
    #[command(hide = true)]
    Worker,
}

/// Keeps goose's `log` output to errors, on stderr. Installed before goose, whose own
/// logger then fails to install (it logs that at info level, which we drop).
struct ErrorsOnly;

impl log::Log for ErrorsOnly {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Error
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            eprintln!("{}: {}", r.target(), r.args());
        }
    }
    fn flush(&self) {}
}

static LOGGER: ErrorsOnly = ErrorsOnly;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Error);
    }
    match cli.cmd {
        Some(Cmd::Worker) => match mercure_loadgen::worker::worker_main() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("worker: {e}");
                ExitCode::FAILURE
            }
        },
        Some(Cmd::Capacity(a)) => {
            with_runtime(|stop| async move { mercure_loadgen::capacity::run(*a, stop).await.map(|_| true) })
        }
        Some(Cmd::Run(a)) => run(*a),
        None => run(cli.run),
    }
}

fn run(args: RunArgs) -> ExitCode {
    with_runtime(|stop| async move {
        let report = mercure_loadgen::run::run(args.clone(), stop).await?;
        println!("{}", report.human());
        if let Some(soak) = &report.soak {
            println!("{}", soak.human());
        }
        println!("report: {}", args.report.display());
        Ok(report.soak.as_ref().map_or(report.verdict.pass, |s| s.verdict.pass))
    })
}

/// Runs `f` on a multi-thread runtime with the Ctrl-C handler installed: the first
/// Ctrl-C flips the stop signal (the run winds down and still reports), the second
/// exits at once. Exit code: 0 pass, 1 fail, 2 error.
fn with_runtime<F, Fut>(f: F) -> ExitCode
where
    F: FnOnce(tokio::sync::watch::Receiver<bool>) -> Fut,
    Fut: std::future::Future<Output = Result<bool, String>>,
{
    let (tx, rx) = tokio::sync::watch::channel(false);
    static PRESSES: AtomicU32 = AtomicU32::new(0);
    // Installed before goose's own handler, which then declines politely: one handler
    // stops both goose (killswitch, from the run) and the swarm.
    let installed = ctrlc::set_handler(move || {
        if PRESSES.fetch_add(1, Ordering::SeqCst) > 0 {
            eprintln!("second Ctrl-C: exiting now");
            std::process::exit(130);
        }
        eprintln!("Ctrl-C: stopping, the report will still be written (again to abort)");
        let _ = tx.send(true);
    });
    if let Err(e) = installed {
        eprintln!("warning: no Ctrl-C handler: {e}");
    }
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(f(rx)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
