//! `ax perf`: benchmark a plugin (`ax perf run`), decide whether a change
//! made it slower (`ax perf ab`, two builds side by side in one host, or
//! `ax perf compare`, two stored reports), and read profiles (`ax perf inspect`,
//! `ax perf flamegraph`, `ax perf report`), and keep a baseline to compare them
//! with (`ax perf baseline`).
//!
//! The subcommands only translate arguments: the measuring loop lives in
//! `run.rs`, and every statistic, the report file and its renderings come from
//! `ax-perf`, the profile file from `ax-profile`; neither knows plugins or this
//! command line.

mod ab;
mod against;
mod baseline;
mod compare;
mod flamegraph;
mod inspect;
mod report;
mod run;

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use ax_runtime::Targets;
use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub(crate) struct PerfArgs {
    #[command(subcommand)]
    command: PerfCommand,
}

#[derive(Debug, Subcommand)]
enum PerfCommand {
    /// Benchmark plugin calls: warm up, sample each call's wall time, report the statistics.
    Run(run::PerfRunArgs),
    /// Measure two builds side by side in one host, in alternating pairs;
    /// exit 1 when the candidate is slower, 3 when the run cannot tell.
    Ab(ab::AbArgs),
    /// Compare two reports of `ax perf run --json`; exit 1 when a benchmark got slower.
    Compare(compare::CompareArgs),
    /// Show a profile (from `ax run --profile`): startup, calls, hottest callsites, recommendations.
    Inspect(inspect::InspectArgs),
    /// Draw a profile's stacks as an SVG flame graph.
    Flamegraph(flamegraph::FlamegraphArgs),
    /// Save the current profile as the baseline later profiles are compared with (`--clear` removes it).
    Baseline(baseline::BaselineArgs),
    /// Write a profile as one self-contained HTML page: flame graph, functions, startup, comparisons.
    Report(report::ReportArgs),
}

pub(crate) fn run(args: PerfArgs) -> Result<ExitCode> {
    match args.command {
        PerfCommand::Run(args) => run::run(args),
        PerfCommand::Ab(args) => ab::run(args),
        PerfCommand::Compare(args) => compare::run(args),
        PerfCommand::Inspect(args) => inspect::run(args),
        PerfCommand::Flamegraph(args) => flamegraph::run(args),
        PerfCommand::Baseline(args) => baseline::run(args),
        PerfCommand::Report(args) => report::run(args),
    }
}

/// The plugins' log filter while measuring: `AX_LOG` when set, else `warn`, so
/// that no info or debug line is formatted and printed inside a timed call.
/// Also installs ax's own subscriber (at `AX_LOG`, default info). Returns the
/// filter and its text, for the run's header.
fn measuring_log_filter() -> Result<(Targets, String)> {
    crate::logging::init()?;
    let spec = std::env::var("AX_LOG").unwrap_or_else(|_| MEASURING_LOG_FILTER.to_owned());
    let filter = spec.parse().with_context(|| {
        format!("AX_LOG={spec:?} is not a valid filter; expected directives such as `info` or `warn,word_count=debug`")
    })?;
    Ok((filter, spec))
}

/// The plugins' log filter while measuring, unless `AX_LOG` is set.
const MEASURING_LOG_FILTER: &str = "warn";

/// Says, on stderr, that `command` times a debug build, when one of
/// `sources` is a crate built without `--release` (a bare library's
/// profile is unknown): an unoptimised build says little about the one that
/// ships, and where its code lands alone moved the test fixture's calls by
/// up to 5 % (docs/perf-report.md).
fn note_debug_build(command: &str, sources: &[&ax_runtime::PluginSource], release: bool) {
    let crate_built = sources.iter().any(|s| !matches!(s, ax_runtime::PluginSource::Library(_)));
    if crate_built && !release {
        eprintln!(
            "{command}: timing a debug build (unoptimised, and moved by where its code lands); --release times what \
             you ship"
        );
    }
}

/// `"2%"`, `"0.5"`, `" 3 % "` as a fraction (0.02, 0.005, 0.03); `flag` names it in errors.
fn percentage(flag: &str, text: &str) -> Result<f64> {
    let number = text.trim().strip_suffix('%').unwrap_or(text.trim()).trim();
    match number.parse::<f64>() {
        Ok(p) if p.is_finite() && p >= 0.0 => Ok(p / 100.0),
        _ => bail!("{flag} {text:?}: not a percentage; expected one of at least 0, such as 2% or 0.5%"),
    }
}
