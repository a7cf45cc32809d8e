//! `ax perf`: benchmark a plugin (`ax perf run`), decide whether a change
//! made it slower (`ax perf compare`), and read profiles (`ax perf inspect`,
//! `ax perf flamegraph`).
//!
//! The subcommands only translate arguments: the measuring loop lives in
//! `run.rs`, and every statistic, the report file and its renderings come from
//! `ax-perf`, the profile file from `ax-profile`; neither knows plugins or this
//! command line.

mod compare;
mod flamegraph;
mod inspect;
mod run;

use std::process::ExitCode;

use anyhow::Result;
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
    /// Compare two reports of `ax perf run --json`; exit 1 when a benchmark got slower.
    Compare(compare::CompareArgs),
    /// Show a profile (from `ax run --profile`): startup, calls, hottest callsites, recommendations.
    Inspect(inspect::InspectArgs),
    /// Draw a profile's stacks as an SVG flame graph.
    Flamegraph(flamegraph::FlamegraphArgs),
}

pub(crate) fn run(args: PerfArgs) -> Result<ExitCode> {
    match args.command {
        PerfCommand::Run(args) => run::run(args),
        PerfCommand::Compare(args) => compare::run(args),
        PerfCommand::Inspect(args) => inspect::run(args),
        PerfCommand::Flamegraph(args) => flamegraph::run(args),
    }
}
