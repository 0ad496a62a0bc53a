//! Logging with `tracing`: human-readable by default, JSON when configured.

use tracing_subscriber::EnvFilter;

use crate::config::LogConfig;

/// Installs the global subscriber once; later calls (tests) are ignored.
pub fn init(log: &LogConfig) {
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(&log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = if log.json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
