//! tracing set-up: an env-filter from `RUST_LOG` or `log.filter`, text or JSON lines on stderr.

use rudder_core::config::{LogConfig, LogFormat};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// Installs the global subscriber. Returns an error naming `log.filter` if its directives are invalid.
pub fn init(config: &LogConfig) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.is_empty() => EnvFilter::try_new(&directives)
            .map_err(|err| anyhow::anyhow!("RUST_LOG={directives:?} is not a valid log filter: {err}"))?,
        _ => EnvFilter::try_new(&config.filter).map_err(|err| {
            anyhow::anyhow!("log.filter = {:?} is not a valid log filter: {err}", config.filter)
        })?,
    };
    let registry = tracing_subscriber::registry().with(filter);
    // Colours only for a person at a terminal, never into a log file.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let installed = match config.format {
        LogFormat::Text => {
            registry.with(fmt::layer().with_ansi(ansi).with_writer(std::io::stderr)).try_init()
        }
        LogFormat::Json => registry.with(fmt::layer().json().with_writer(std::io::stderr)).try_init(),
    };
    // A second init (tests starting several servers) keeps the first subscriber: not an error.
    drop(installed);
    Ok(())
}
