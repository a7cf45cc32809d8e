//! `ax`: the command line of the ax plugin runtime.
//!
//! Each subcommand lives in its own module and translates arguments into calls
//! on `ax-runtime`. Errors reach [`main`] as `anyhow` chains and are printed as
//! one `error: …` line with a non-zero exit; a panic in ax itself is a bug, and
//! is reported the same way rather than as a Rust backtrace. Command-line
//! mistakes are errors like any other: one `error:` line (with a pointer to
//! `--help`), exit status 1; `--help` and `--version` print as clap prints them.
//! A closed stdout or stderr ends ax quietly (`pipe.rs`).

mod dev;
mod logging;
mod new;
mod perf;
mod pipe;
mod profile;
mod run;
mod sdk_data;
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
        use std::io::Write as _;
        let location = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        if pipe::is_closed_pipe_panic(&message) {
            pipe::exit_on_closed_pipe();
        }
        // Never `eprintln!` here: a failing write would panic inside the hook, and abort.
        let _ = writeln!(
            std::io::stderr(),
            "error: internal error in ax{location}: {message} (this is a bug in ax, please report it)"
        );
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage_error(error),
    };
    #[cfg(unix)]
    match cli.command {
        // A child host's plugin already runs apart: its last words are for the parent.
        Command::DebugHost { .. } | Command::IsolatedHost { .. } => ax_runtime::install_child_crash_reporter(),
        _ => ax_runtime::install_crash_reporter(),
    }
    let result = std::panic::catch_unwind(|| match cli.command {
        Command::New(args) => new::run(args),
        Command::Run(args) => run::run(args),
        Command::Dev(args) => dev::run(args),
        Command::DebugHost { socket } => {
            // First, while ax has one thread (see `enter_own_network_namespace`).
            ax_isolate::sandbox::enter_own_network_namespace();
            ax_runtime::debug_host::serve(&socket, ax_isolate::sandbox::apply_sent)
                .map(|()| ExitCode::SUCCESS)
                .map_err(anyhow::Error::from)
        }
        Command::IsolatedHost { socket } => {
            ax_isolate::serve(&socket).map(|()| ExitCode::SUCCESS).map_err(anyhow::Error::from)
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

/// A command-line mistake as one `error:` line and exit status 1; `--help`,
/// `--version` and a bare `ax` print what clap prints.
fn usage_error(error: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = error.print();
        return ExitCode::from(error.exit_code() as u8);
    }
    let text = error.render().to_string();
    eprintln!("{}", one_line_usage_error(&text, &command_path(std::env::args().skip(1))));
    ExitCode::FAILURE
}

/// The (sub)command the arguments name, `ax perf run`, for the pointer to its `--help`.
fn command_path(args: impl Iterator<Item = String>) -> String {
    let mut command = <Cli as clap::CommandFactory>::command();
    let mut path = vec!["ax".to_owned()];
    for arg in args {
        if arg.starts_with('-') {
            continue;
        }
        let Some(sub) = command.find_subcommand(&arg).cloned() else { break };
        path.push(sub.get_name().to_owned());
        command = sub;
    }
    path.join(" ")
}

/// clap's rendering (`error: …`, maybe a tip, a blank line, `Usage: ax run …`,
/// a blank line, `For more information, try '--help'.`) as
/// `error: … (see `ax run --help`)`.
fn one_line_usage_error(text: &str, command: &str) -> String {
    let mut message = Vec::new();
    let mut in_usage = false;
    for line in text.lines().map(str::trim) {
        if line.is_empty() {
            in_usage = false;
        } else if line.starts_with("Usage: ") {
            in_usage = true;
        } else if !in_usage && !line.starts_with("For more information") {
            message.push(line.strip_prefix("error: ").unwrap_or(line));
        }
    }
    format!("error: {} (see `{command} --help`)", message.join("; "))
}

/// `error: outer: inner: innermost`, on one line.
fn one_line(error: &anyhow::Error) -> String {
    let text = format!("{error:#}");
    text.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_errors_fold_into_one_line() {
        let text = "error: the argument '[METHOD]' cannot be used with '--calls <FILE>'\n\n\
                    Usage: ax run --calls <FILE> <PLUGIN> [METHOD] [INPUT]\n       ax run other\n\n\
                    For more information, try '--help'.\n";
        assert_eq!(
            one_line_usage_error(text, "ax run"),
            "error: the argument '[METHOD]' cannot be used with '--calls <FILE>' (see `ax run --help`)"
        );
        let args = ["--verbose", "perf", "run", "plugin", "inspect"].map(String::from);
        assert_eq!(command_path(args.into_iter()), "ax perf run");
    }
}
