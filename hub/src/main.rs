//! The `mercure-hub` binary: configuration from the environment and flags, then serve until
//! SIGTERM/SIGINT.

use clap::Parser;
use mercure_hub::config::Cli;
use mercure_hub::server::{Server, State};
use mercure_hub::startup;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logs(&cli.log_format);
    log_panics();
    let mut settings = match cli.settings() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("configuration: {e}");
            eprintln!("mercure-hub: configuration error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mercure-hub: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        startup::development_mode(&mut settings);
        let open_files = startup::raise_open_files_limit();
        let max_connections = startup::max_connections(&settings, open_files);
        startup::resolve_max_subscribers(&mut settings, max_connections);
        startup::log_settings(&settings, max_connections);
        let state = match State::start(settings).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("mercure-hub: configuration error: {e}");
                return std::process::ExitCode::from(2);
            }
        };
        let server = match Server::bind(state, max_connections).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("mercure-hub: cannot listen: {e}");
                return std::process::ExitCode::FAILURE;
            }
        };
        match server.local_addrs() {
            Ok(addrs) => addrs.iter().for_each(|addr| tracing::info!(%addr, "listening")),
            Err(e) => tracing::warn!(error = %e, "listening on an unknown address"),
        }
        server.run(shutdown_signal()).await;
        std::process::ExitCode::SUCCESS
    })
}

fn init_logs(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if format.eq_ignore_ascii_case("json") {
        builder.json().init();
    } else {
        builder.with_ansi(false).init();
    }
}

/// Every panic becomes one log line (message and location) instead of the default multi-line
/// print: a request handler's panic is caught and answered 500 by the server, and this is
/// where it is reported, once.
fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string payload".to_owned());
        let location = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        tracing::error!(%location, "panicked: {message}");
    }));
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot install signal handlers; stop the hub with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}
