//! Logging for the CLI: ax's own `tracing` output and the plugin's log lines
//! both go to stderr, filtered by one `AX_LOG` value (`info`,
//! `warn,word_count=debug`, …; the `RUST_LOG` target syntax).
//!
//! A bare level (`AX_LOG=debug`) means ax and the plugin: the crates ax is
//! built on (reqwest, hyper, opentelemetry, …) log at `warn` unless `AX_LOG`
//! names them (`AX_LOG=debug,hyper_util=debug`). The plugin's events never
//! reach ax's own subscriber (they come through the bridge), so the plugin's
//! filter is `AX_LOG` as written.

use anyhow::{Context, Result};
use ax_runtime::{Event, Host, Targets};
use tracing_subscriber::filter::LevelFilter;
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
    let _ = tracing_subscriber::registry().with(fmt.with_filter(own_filter(&filter))).try_init();
    Ok(filter)
}

/// ax's own filter: `filter` with a bare level finer than `warn` applied to
/// ax's crates only (every target starting with `ax`: `ax_runtime`,
/// `ax_telemetry`, `ax::telemetry`, …), other crates at `warn` unless named.
fn own_filter(filter: &Targets) -> Targets {
    let named = |name: &str| filter.iter().any(|(target, _)| target == name);
    let mut own = match filter.default_level().filter(|l| *l > LevelFilter::WARN) {
        None => filter.clone(),
        Some(level) => {
            let own = Targets::new().with_targets(filter.iter()).with_default(LevelFilter::WARN);
            if named(OWN_TARGETS) { own } else { own.with_target(OWN_TARGETS, level) }
        }
    };
    if !named(CERTIFICATE_VERIFIER) {
        own = own.with_target(CERTIFICATE_VERIFIER, LevelFilter::OFF);
    }
    own
}

/// The prefix of every target ax's crates log under.
const OWN_TARGETS: &str = "ax";

/// Logs an error per certificate it rejects; ax's export warning says it
/// once, with the cause.
const CERTIFICATE_VERIFIER: &str = "rustls_platform_verifier";

/// Prints the plugin's log lines to stderr as they happen.
pub(crate) fn print_plugin_logs(host: &Host) {
    host.events().subscribe(|event| {
        if let Event::Log(line) = event {
            eprintln!("{line}");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_level_is_scoped_to_ax_and_named_targets_stay() {
        let own = own_filter(&"debug".parse().unwrap());
        assert!(own.would_enable("ax_runtime::reload", &tracing::Level::DEBUG));
        assert!(own.would_enable("ax::telemetry", &tracing::Level::DEBUG));
        assert!(!own.would_enable("hyper_util::client", &tracing::Level::DEBUG));
        assert!(own.would_enable("hyper_util::client", &tracing::Level::WARN));
        let own = own_filter(&"debug,hyper_util=trace".parse().unwrap());
        assert!(own.would_enable("hyper_util::client", &tracing::Level::TRACE));
        let own = own_filter(&"debug,ax=info".parse().unwrap());
        assert!(!own.would_enable("ax_runtime", &tracing::Level::DEBUG));
        let own = own_filter(&"warn,word_count=debug".parse().unwrap());
        assert!(!own.would_enable("reqwest", &tracing::Level::INFO));
        assert!(own.would_enable("word_count", &tracing::Level::DEBUG));
        assert!(!own.would_enable("rustls_platform_verifier::verification", &tracing::Level::ERROR));
        let own = own_filter(&"warn,rustls_platform_verifier=debug".parse().unwrap());
        assert!(own.would_enable("rustls_platform_verifier::verification", &tracing::Level::ERROR));
    }
}
