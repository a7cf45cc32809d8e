//! `ax perf run PLUGIN (--method M [--input JSON] | --calls FILE)`: load the
//! plugin once, then for each benchmark make `--warmup` unmeasured calls and
//! sample the wall time of each following call until `--iterations` samples or
//! the `--time` budget, whichever comes first.
//!
//! What a sample measures: one `Plugin::call_raw` round trip with the input
//! already serialised, as a host would make it: the hand-off to the plugin's
//! worker thread, the plugin decoding its input, its work, encoding the output,
//! and the hand-back. Nothing else runs in the timed section; the progress bar
//! (drawn only when stderr is a terminal) is updated between calls, and only
//! every few dozen of them.
//!
//! With `--calls FILE` every distinct line of the calls file is its own
//! benchmark, named `METHOD#N` after its position among the distinct calls.
//! Everything a user typed is checked before the plugin is built or loaded. A
//! call that fails ends its benchmark, not the run: the benchmarks measured are
//! reported (and written), each failed one is named in the report's `failed`
//! list and on one `error:` line, and the exit status is 1. When every
//! benchmark fails there is no report, only the first error.
//!
//! The plugin's log lines are filtered at `warn` while measuring (`AX_LOG`
//! overrides), so that no line is formatted and printed inside a timed call;
//! the run's header on stderr says which filter applies.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use ax_manifest::HumanDuration;
use ax_perf::{Benchmark, Conditions, FailedBenchmark, Format, Report};
use ax_runtime::{BuildOptions, Host, HostOptions, Instrumentation, Plugin, PluginSource, StartupMonitor};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

use crate::run::{Call, parse_input, read_calls};

#[derive(Debug, Args)]
pub(crate) struct PerfRunArgs {
    /// The plugin: a crate directory with ax-plugin.toml, a manifest, or a library file.
    plugin: PathBuf,
    /// The method to benchmark.
    #[arg(long, value_name = "METHOD", conflicts_with = "calls")]
    method: Option<String>,
    /// The input of every call, as JSON (default: null).
    #[arg(long, value_name = "JSON", requires = "method")]
    input: Option<String>,
    /// Benchmark each distinct call in FILE: one JSON object per line, {"method": …, "input": …}.
    #[arg(long, value_name = "FILE")]
    calls: Option<PathBuf>,
    /// Samples per benchmark, at most.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    iterations: usize,
    /// Calls per benchmark before sampling starts, not measured.
    #[arg(long, value_name = "N", default_value_t = 100)]
    warmup: u64,
    /// Sampling time per benchmark, at most ("5s", "500ms", "1m"); warmup not included.
    #[arg(long, value_name = "DURATION", default_value = "5s")]
    time: String,
    /// Print the report file (JSON; see docs/perf-report.md).
    #[arg(long, group = "format")]
    json: bool,
    /// Print a Markdown table.
    #[arg(long, group = "format")]
    markdown: bool,
    /// Print CSV: every statistic, in nanoseconds.
    #[arg(long, group = "format")]
    csv: bool,
    /// Write the report to FILE instead of stdout (format from the flag, else from
    /// the extension: .json, .md, .csv); the table is still printed.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Do not run cargo; use the library already built.
    #[arg(long)]
    no_build: bool,
    /// Build and load the release profile.
    #[arg(long)]
    release: bool,
    /// Also profile the benchmarked calls (spans, startup) into a profile file;
    /// the profiler's own cost (about 65 ns per span) is then in the samples.
    #[command(flatten)]
    profile: crate::profile::ProfileArgs,
}

impl PerfRunArgs {
    fn format(&self) -> Format {
        if self.json {
            return Format::Json;
        }
        if self.markdown {
            return Format::Markdown;
        }
        if self.csv {
            return Format::Csv;
        }
        let extension = self.output.as_deref().and_then(Path::extension).and_then(|e| e.to_str());
        match extension {
            Some("json") => Format::Json,
            Some("md" | "markdown") => Format::Markdown,
            Some("csv") => Format::Csv,
            _ => Format::Table,
        }
    }
}

/// One benchmark to run: a method and its input, serialised once.
#[derive(Debug)]
pub(super) struct Spec {
    pub(super) name: String,
    pub(super) method: String,
    pub(super) input: Value,
    pub(super) input_bytes: Vec<u8>,
}

/// When sampling stops.
#[derive(Clone, Copy, Debug)]
struct Limits {
    warmup: u64,
    iterations: usize,
    time: Duration,
}

pub(crate) fn run(args: PerfRunArgs) -> Result<ExitCode> {
    let (log_filter, log_spec) = super::measuring_log_filter()?;
    let Some(specs) = specs(args.calls.as_deref(), args.method.as_deref(), args.input.as_deref())? else {
        bail!("{}: no method given; expected --method METHOD or --calls FILE", args.plugin.display());
    };
    let time = time_limit(&args.time, "5s")?;
    if args.iterations == 0 {
        bail!("--iterations 0: expected at least 1 sample per benchmark");
    }
    let limits = Limits { warmup: args.warmup, iterations: args.iterations, time };
    let format = args.format();

    let source = PluginSource::resolve(&args.plugin)?;
    crate::run::refuse_unsandboxed(&source, "ax perf run")?;
    let mut build = BuildOptions { build: !args.no_build, release: args.release, on_output: None };
    let library = source.library(&mut build)?;
    let profile = args.profile.options();
    let instrumentation = Instrumentation { log_filter, profile, call_cpu: true, ..Instrumentation::default() };
    let host = Host::with_options(HostOptions { instrumentation, ..HostOptions::default() })
        .context("cannot set up the plugin host")?;
    crate::logging::print_plugin_logs(&host);
    let mut monitor = StartupMonitor::new();
    let plugin = match profile {
        Some(_) => host.load_monitored(&source, &library, &mut monitor)?,
        None => host.load(&source, &library)?,
    };

    let mut report = Report::new(format!("ax {}", env!("CARGO_PKG_VERSION")));
    let noun = if specs.len() == 1 { "benchmark" } else { "benchmarks" };
    eprintln!(
        "ax perf run: {} {noun} of {}; plugin log lines at `{log_spec}` while measuring{}",
        specs.len(),
        plugin.name(),
        if std::env::var_os("AX_LOG").is_some() { " (AX_LOG)" } else { " (set AX_LOG to change)" }
    );
    super::note_debug_build("ax perf run", &[&source], args.release);
    let progress = progress_bar();
    let mut errors = Vec::new();
    for spec in &specs {
        match measure(&plugin, spec, limits, &progress) {
            Ok(benchmark) => report.benchmarks.push(benchmark),
            Err(error) => {
                report.failed.push(FailedBenchmark {
                    name: spec.name.clone(),
                    method: spec.method.clone(),
                    input: spec.input.clone(),
                    error: format!("{error:#}").lines().map(str::trim).collect::<Vec<_>>().join(" "),
                });
                errors.push(error);
            }
        }
    }
    progress.finish_and_clear();
    plugin.shutdown()?;
    if report.benchmarks.is_empty()
        && let Some(first) = errors.into_iter().next()
    {
        return Err(first);
    }
    if profile.is_some() {
        crate::profile::write_run_profile(&args.profile, &source, &library, &plugin, &monitor)?;
    }

    let rendered = ax_perf::render::report(&report, format);
    match &args.output {
        Some(path) => {
            ax_perf::write_atomically(path, &rendered)
                .with_context(|| format!("{}: cannot write the report", path.display()))?;
            if format != Format::Table {
                print!("{}", ax_perf::render::report(&report, Format::Table));
            }
        }
        None => print!("{rendered}"),
    }
    for failed in &report.failed {
        eprintln!("error: {}", failed.error);
    }
    Ok(if report.failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// The benchmarks a command asks for: each distinct call of `--calls`, else
/// `--method` with `--input`; `None` when neither is given.
pub(super) fn specs(calls: Option<&Path>, method: Option<&str>, input: Option<&str>) -> Result<Option<Vec<Spec>>> {
    Ok(match (calls, method) {
        (Some(file), _) => Some(distinct(read_calls(file)?)),
        (None, Some(method)) => Some(vec![spec(method.to_owned(), method.to_owned(), parse_input(input)?)]),
        (None, None) => None,
    })
}

/// `--time`, which must be above zero (`example` shows one).
pub(super) fn time_limit(time: &str, example: &str) -> Result<Duration> {
    let limit = HumanDuration::parse(time).map_err(|e| anyhow!("--time: {e}"))?.0;
    if limit.is_zero() {
        bail!("--time {time:?}: expected a duration above zero, such as {example}");
    }
    Ok(limit)
}

pub(super) fn spec(name: String, method: String, input: Value) -> Spec {
    let input_bytes = serde_json::to_vec(&input).expect("a serde_json::Value always serialises");
    Spec { name, method, input, input_bytes }
}

/// One benchmark per distinct call, in order of first appearance, named `METHOD#N`.
pub(super) fn distinct(calls: Vec<Call>) -> Vec<Spec> {
    let mut unique: Vec<Call> = Vec::new();
    for call in calls {
        if !unique.contains(&call) {
            unique.push(call);
        }
    }
    unique
        .into_iter()
        .enumerate()
        .map(|(i, call)| spec(format!("{}#{}", call.method, i + 1), call.method, call.input))
        .collect()
}

/// A progress bar on stderr when it is a terminal, redrawn 4 times a second at
/// most (each redraw is a write between two calls); a hidden one otherwise.
/// Its length is per mille of the budget, whichever limit is nearer.
fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template("{prefix:>16} [{bar:30}] {msg} {elapsed}")
        .expect("the template is valid")
        .progress_chars("=> ");
    ProgressBar::with_draw_target(Some(PER_MILLE), ProgressDrawTarget::stderr_with_hz(4)).with_style(style)
}

const PER_MILLE: u64 = 1000;

/// Samples between two progress bar updates: the bar is cheap, but not free.
const PROGRESS_EVERY: usize = 64;

/// Warms up, then samples one benchmark.
fn measure(plugin: &Plugin, spec: &Spec, limits: Limits, progress: &ProgressBar) -> Result<Benchmark> {
    let failed = |what: String| format!("benchmark {}: {what} failed", spec.name);
    progress.set_prefix(spec.name.clone());
    progress.set_message("warming up");
    progress.set_position(0);
    for i in 1..=limits.warmup {
        plugin.call_raw(&spec.method, &spec.input_bytes).with_context(|| failed(format!("warmup call {i}")))?;
    }

    let mut samples: Vec<u64> = Vec::with_capacity(limits.iterations.min(1 << 20));
    let conditions = Conditions::start();
    // The worker's CPU time against the calls' wall time: how long calls waited off the CPU.
    let (mut cpu_ns, mut wall_ns): (Option<u128>, u128) = (Some(0), 0);
    let started = Instant::now();
    let deadline = started + limits.time;
    while samples.len() < limits.iterations {
        let before = Instant::now();
        if before >= deadline {
            break;
        }
        let (result, usage) = plugin.call_raw_with(&spec.method, &spec.input_bytes, None);
        let nanos = before.elapsed().as_nanos();
        cpu_ns = cpu_ns.zip(usage.cpu).map(|(total, cpu)| total + cpu.as_nanos());
        wall_ns += nanos;
        result.with_context(|| failed(format!("call {}", samples.len() + 1)))?;
        // A call never takes 0 ns; clamp anyway, the statistics refuse zeros.
        samples.push(u64::try_from(nanos).unwrap_or(u64::MAX).max(1));
        if samples.len().is_multiple_of(PROGRESS_EVERY) && !progress.is_hidden() {
            let by_count = samples.len() as f64 / limits.iterations as f64;
            let by_time = before.duration_since(started).as_secs_f64() / limits.time.as_secs_f64();
            progress.set_position((by_count.max(by_time) * PER_MILLE as f64) as u64);
            progress.set_message(format!("{} samples", samples.len()));
        }
    }
    let elapsed = started.elapsed();
    let mut conditions = conditions.finish();
    conditions.off_cpu_share = cpu_ns.filter(|_| wall_ns > 0).map(|cpu| (1.0 - cpu as f64 / wall_ns as f64).max(0.0));

    let mut benchmark = Benchmark::new(&spec.name, plugin.name(), &spec.method, spec.input.clone(), samples)
        .with_context(|| format!("benchmark {}", spec.name))?;
    benchmark.warmup_calls = limits.warmup;
    benchmark.elapsed_ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
    benchmark.conditions = Some(conditions);
    Ok(benchmark)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn distinct_calls_are_named_by_method_and_position() {
        let call =
            |method: &str, input: Value| Call { method: method.to_owned(), input, budget: None, traceparent: None };
        let specs = distinct(vec![
            call("count", json!({"text": "a"})),
            call("count", json!({"text": "a b"})),
            call("count", json!({"text": "a"})),
            call("echo", Value::Null),
        ]);
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["count#1", "count#2", "echo#3"]);
        assert_eq!(specs[1].input_bytes, br#"{"text":"a b"}"#);
    }
}
