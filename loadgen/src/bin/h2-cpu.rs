//! `h2-cpu`: the hub's CPU per delivery over HTTP/2 + TLS against HTTP/1.1 cleartext (issue
//! 12's measured target). See `mercure_loadgen::h2cpu`.
//!
//! ```text
//! cargo build --release -p mercure-hub -p mercure-loadgen
//! target/release/h2-cpu --out results/h2-tls-DATE
//! ```

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = mercure_loadgen::h2cpu::Args::parse();
    // Two workers: the machine has two cores shared with the hub under test.
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(mercure_loadgen::h2cpu::run(args)) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
