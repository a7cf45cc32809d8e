//! Logging for the CLI: ax's own `tracing` output and the plugin's log lines
//! both go to stderr, filtered by one `AX_LOG` value (`info`,
//! `warn,word_count=debug`, …; the `RUST_LOG` target syntax).

use anyhow::{Context, Result};
use ax_runtime::{Event, Host, Targets};
use tracing_subscriber::prelude::*;

/// Default when `AX_LOG` is unset.
const DEFAULT_FILTER: &str = "info";

/// Parses `AX_LOG` and installs ax's own subscriber; returns the filter for plugins.
pub(crate) fn init() -> Result<Targets> {
    let spec = std::env::var("AX_LOG").unwrap_or_else(|_| DEFAULT_FILTER.to_owned());
    let filter: Targets = spec.parse().with_context(|| {
        format!("AX_LOG={spec:?} is not a valid filter; expected directives such as `info` or `warn,word_count=debug`")
    })?;
    // Colours only for a terminal: piped into a file, an editor or a test they are noise.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt =
        tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi).without_time().with_target(true);
    // A second init (tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry().with(fmt.with_filter(filter.clone())).try_init();
    Ok(filter)
}

/// Prints the plugin's log lines to stderr as they happen.
pub(crate) fn print_plugin_logs(host: &Host) {
    host.events().subscribe(|event| {
        if let Event::Log(line) = event {
            eprintln!("{line}");
        }
    });
}
