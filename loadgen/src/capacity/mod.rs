//! Capacity sweep (to do).

/// Capacity arguments (placeholder).
#[derive(Debug, Clone, clap::Args)]
pub struct CapacityArgs {}

/// Runs the sweep (placeholder).
pub async fn run(_a: CapacityArgs, _stop: tokio::sync::watch::Receiver<bool>) -> Result<(), String> {
    Err("not yet".into())
}
