//! `ax`: the command line of the ax plugin runtime.
//!
//! Each subcommand lives in its own module and translates arguments into calls
//! on `ax-runtime`. Errors reach [`main`] as `anyhow` chains and are printed as
//! one `error: …` line with a non-zero exit; a panic in ax itself is a bug, and
//! is reported the same way rather than as a Rust backtrace.

mod dev;
mod logging;
mod new;
mod perf;
mod profile;
mod run;
mod telemetry;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// ax: a plugin runtime for native Rust plugins.
#[derive(Debug, Parser)]
#[command(name = "ax", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a new plugin crate that builds and runs as is.
    New(new::NewArgs),
    /// Build (if needed), load and call a plugin; print each result as JSON.
    Run(run::RunArgs),
    /// Serve a plugin and hot-reload it whenever its source changes.
    Dev(dev::DevArgs),
    /// The child side of a debug session (started by ax-dap).
    #[command(name = "__debug-host", hide = true)]
    DebugHost {
        /// The adapter's socket.
        #[arg(long)]
        socket: std::path::PathBuf,
    },
    /// The child side of isolated mode (started by ax itself).
    #[command(name = "__isolated-host", hide = true)]
    IsolatedHost {
        /// The parent's socket.
        #[arg(long)]
        socket: std::path::PathBuf,
    },
    /// Benchmark a plugin (`ax perf run`) and compare benchmark reports (`ax perf compare`).
    Perf(perf::PerfArgs),
}

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        eprintln!("error: internal error in ax{location}: {message} (this is a bug in ax, please report it)");
    }));
    let cli = Cli::parse();
    #[cfg(unix)]
    ax_runtime::install_crash_reporter();
    let result = std::panic::catch_unwind(|| match cli.command {
        Command::New(args) => new::run(args),
        Command::Run(args) => run::run(args),
        Command::Dev(args) => dev::run(args),
        Command::DebugHost { socket } => {
            ax_runtime::debug_host::serve(&socket).map(|()| ExitCode::SUCCESS).map_err(anyhow::Error::from)
        }
        Command::IsolatedHost { socket } => {
            ax_runtime::isolated::serve(&socket).map(|()| ExitCode::SUCCESS).map_err(anyhow::Error::from)
        }
        Command::Perf(args) => perf::run(args),
    });
    match result {
        Ok(Ok(code)) => code,
        Ok(Err(error)) => {
            eprintln!("error: {}", one_line(&error));
            ExitCode::FAILURE
        }
        Err(_) => ExitCode::from(101),
    }
}

/// `error: outer: inner: innermost`, on one line.
fn one_line(error: &anyhow::Error) -> String {
    let text = format!("{error:#}");
    text.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}
