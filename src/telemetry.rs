//! One tracing subscriber for the process; tests pick a silent writer.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber (`RUST_LOG` overrides `default_filter`). Safe to call twice.
pub fn init(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
