//! `ax perf ab BASELINE CANDIDATE (--method M [--input JSON] | --calls FILE)`:
//! did the candidate build make a plugin slower? Both builds are loaded into
//! one host (each library is copied to its own path, so two builds of one crate
//! are two images, and each gets its own name, so they share no query cache),
//! warmed up, then called in alternating pairs whose order is drawn at random,
//! so that whatever the machine does at a given moment hits both alike. The
//! run is cut into `--segments` (default 8), each on fresh copies of both
//! libraries, each copy at an address of its own drawing (`placement`): two
//! copies of the *same* build can differ by 5 % from where they land (the
//! perf-ab fixture's debug build, measured here; 0.05 % for its release
//! build), and a verdict must not rest on one such draw. Without the draw, every segment put its two copies at the same
//! distance from each other, and the same build got "slower" or "faster" in
//! 2 runs of 6.
//!
//! Both plugins' worker threads are started pinned to one CPU (Linux), so a
//! core that is busier or slower than the other cannot favour one side for
//! the whole run; the measuring thread itself is not pinned.
//!
//! Each call records the round trip's wall time and the CPU time of the
//! plugin's worker thread during the call (the clock the budgets read). The
//! statistics, the verdict and the renderings come from `ax_perf::ab`; this
//! module only measures. The plugins' log lines are filtered at `warn` while
//! measuring unless `AX_LOG` says otherwise. Exit status: 1 when slower, 3 when
//! inconclusive, 0 otherwise (errors: 1, with one `error:` line).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ax_isolate::{IsolatedPlugin, IsolationOptions};
use ax_perf::Verdict;
use ax_perf::ab::{AbBenchmark, AbReport, Clock, PairedSamples};
use ax_runtime::{BuildOptions, CallError, Host, HostOptions, Instrumentation, Plugin, PluginSource, Usage};
use clap::{Args, ValueEnum};

use super::run::{Spec, specs, time_limit};

#[derive(Debug, Args)]
pub(crate) struct AbArgs {
    /// The baseline: a crate directory with ax-plugin.toml, a manifest, or a
    /// library file; with --against, the crate to measure (the candidate).
    baseline: PathBuf,
    /// The candidate, in any of the same forms (not with --against).
    candidate: Option<PathBuf>,
    /// Compare the crate against itself at git revision REV, built in a cached
    /// worktree under <repository>/target/ax-against/.
    #[arg(long, value_name = "REV")]
    against: Option<String>,
    /// The method to benchmark.
    #[arg(long, value_name = "METHOD", conflicts_with = "calls")]
    method: Option<String>,
    /// The input of every call, as JSON (default: null).
    #[arg(long, value_name = "JSON", requires = "method")]
    input: Option<String>,
    /// Benchmark each distinct call in FILE: one JSON object per line, {"method": …, "input": …}.
    #[arg(long, value_name = "FILE")]
    calls: Option<PathBuf>,
    /// Pairs per benchmark, at most.
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    iterations: usize,
    /// Measuring time per benchmark, at most ("2s", "500ms"); warmup not included.
    #[arg(long, value_name = "DURATION", default_value = "2s")]
    time: String,
    /// Calls to each side before measuring each segment, not recorded.
    #[arg(long, value_name = "N", default_value_t = 50)]
    warmup: u64,
    /// Segments per benchmark, each on fresh copies of both libraries (new
    /// code addresses); the interval accounts for how segments differ.
    #[arg(long, value_name = "N", default_value_t = 8)]
    segments: usize,
    /// The clock the verdict is based on: the plugin thread's CPU time, or wall time.
    #[arg(long, value_enum, default_value_t = ClockArg::Cpu)]
    clock: ClockArg,
    /// Smallest change that counts, as a percentage.
    #[arg(long, default_value = "0.5%", value_name = "PERCENT")]
    threshold: String,
    /// Seed of the random pair order (default: from the clock).
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Print the result as JSON (see docs/perf-report.md).
    #[arg(long, group = "format")]
    json: bool,
    /// Print a Markdown table, for a pull request.
    #[arg(long, group = "format")]
    markdown: bool,
    /// Write the result to FILE (format from the flag, else from the extension:
    /// .json, .md); the table is still printed.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Do not run cargo; use the libraries already built.
    #[arg(long)]
    no_build: bool,
    /// Build and load the release profile.
    #[arg(long)]
    release: bool,
    /// Run each side in its own child host (isolated mode), both children on one CPU.
    #[arg(long)]
    isolate: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ClockArg {
    Cpu,
    Wall,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Output {
    Table,
    Markdown,
    Json,
}

impl AbArgs {
    fn format(&self) -> Output {
        if self.json {
            return Output::Json;
        }
        if self.markdown {
            return Output::Markdown;
        }
        match self.output.as_deref().and_then(Path::extension).and_then(|e| e.to_str()) {
            Some("json") => Output::Json,
            Some("md" | "markdown") => Output::Markdown,
            _ => Output::Table,
        }
    }
}

/// When measuring stops.
#[derive(Clone, Copy, Debug)]
struct Limits {
    warmup: u64,
    segments: usize,
    pairs: usize,
    time: Duration,
}

pub(crate) fn run(args: AbArgs) -> Result<ExitCode> {
    let (log_filter, _) = super::measuring_log_filter()?;
    let Some(specs) = specs(args.calls.as_deref(), args.method.as_deref(), args.input.as_deref())? else {
        bail!("no method given; expected --method METHOD or --calls FILE");
    };
    let time = time_limit(&args.time, "2s")?;
    if args.iterations == 0 {
        bail!("--iterations 0: expected at least 1 pair per benchmark");
    }
    let threshold = super::percentage("--threshold", &args.threshold)?;
    if args.segments == 0 {
        bail!("--segments 0: expected at least 1 segment per benchmark");
    }
    let limits = Limits { warmup: args.warmup, segments: args.segments, pairs: args.iterations, time };
    let clock = match args.clock {
        ClockArg::Cpu => Clock::Cpu,
        ClockArg::Wall => Clock::Wall,
    };

    let instrumentation = Instrumentation { log_filter, call_cpu: true, ..Instrumentation::default() };
    let host = Host::with_options(HostOptions { instrumentation, ..HostOptions::default() })
        .context("cannot set up the plugin host")?;
    crate::logging::print_plugin_logs(&host);
    let mut build = BuildOptions { build: !args.no_build, release: args.release, on_output: None };
    let (baseline_library, candidate_library) = match (&args.against, &args.candidate) {
        (Some(rev), None) => {
            let baseline = super::against::baseline(rev, &args.baseline, &mut build)?;
            (baseline, library(&args.baseline, "candidate", &mut build)?)
        }
        (None, Some(candidate)) => {
            (library(&args.baseline, "baseline", &mut build)?, library(candidate, "candidate", &mut build)?)
        }
        (Some(rev), Some(candidate)) => bail!(
            "--against {rev} with two plugins ({} and {}); expected one crate, compared with itself at {rev}",
            args.baseline.display(),
            candidate.display()
        ),
        (None, None) => {
            bail!("{}: no candidate; expected BASELINE CANDIDATE, or --against REV CRATE", args.baseline.display())
        }
    };
    // Fail on a library that does not load before measuring anything.
    let isolate = match args.isolate {
        true => Some(IsolationOptions {
            host_binary: std::env::current_exe().context("cannot find the ax binary to run the isolated hosts")?,
            sandbox: None,
        }),
        false => None,
    };
    let isolate = isolate.as_ref();
    let mut order = Order::new(args.seed);
    let sides = [(&baseline_library, "baseline"), (&candidate_library, "candidate")];
    super::note_debug_build("ax perf ab", &[&baseline_library.source, &candidate_library.source], args.release);
    let (baseline, candidate) = load_pair(&host, sides, isolate, &mut order)?;
    baseline.shutdown()?;
    candidate.shutdown()?;
    let mut benchmarks = Vec::new();
    for spec in &specs {
        let (samples, elapsed) = measure(&host, sides, isolate, spec, limits, &mut order)?;
        let mut benchmark = AbBenchmark::new(&spec.name, &spec.method, spec.input.clone(), &samples, clock, threshold)
            .with_context(|| format!("benchmark {}", spec.name))?;
        benchmark.warmup_calls = limits.warmup * limits.segments as u64;
        benchmark.elapsed_ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        benchmarks.push(benchmark);
    }

    let tool = format!("ax {}", env!("CARGO_PKG_VERSION"));
    let report = AbReport::new(
        tool,
        baseline_library.path.display().to_string(),
        candidate_library.path.display().to_string(),
        clock,
        threshold,
        benchmarks,
    );
    let render = |format: Output| match format {
        Output::Json => report.to_json(),
        Output::Markdown => ax_perf::render::ab(&report, true),
        Output::Table => ax_perf::render::ab(&report, false),
    };
    let format = args.format();
    match &args.output {
        Some(path) => {
            ax_perf::write_atomically(path, &render(format))
                .with_context(|| format!("{}: cannot write the result", path.display()))?;
            if format != Output::Table {
                print!("{}", render(Output::Table));
            }
        }
        None => print!("{}", render(format)),
    }
    Ok(match report.verdict {
        Verdict::Slower => ExitCode::FAILURE,
        Verdict::Inconclusive => ExitCode::from(3),
        Verdict::Faster | Verdict::NoChange => ExitCode::SUCCESS,
    })
}

/// One side: what the user named, and its library, built unless told not to.
pub(super) struct Side {
    pub(super) path: PathBuf,
    pub(super) source: PluginSource,
    pub(super) library: PathBuf,
}

fn library(path: &Path, side: &str, build: &mut BuildOptions<'_>) -> Result<Side> {
    let source = PluginSource::resolve(path).with_context(|| format!("the {side}"))?;
    crate::run::refuse_unsandboxed(&source, "ax perf ab").with_context(|| format!("the {side}"))?;
    let library = source.library(build).with_context(|| format!("the {side}"))?;
    Ok(Side { path: path.to_owned(), source, library })
}

/// A loaded side: in this process, or in a child host of its own.
enum Subject {
    InProcess(Plugin),
    Isolated(IsolatedPlugin),
}

impl Subject {
    fn call(&self, spec: &Spec) -> (Result<(), CallError>, Usage) {
        match self {
            Subject::InProcess(plugin) => {
                let (result, usage) = plugin.call_raw_with(&spec.method, &spec.input_bytes, None);
                (result.map(drop), usage)
            }
            Subject::Isolated(plugin) => {
                let (result, usage) = plugin.call_with(&spec.method, &spec.input, None);
                (result.map(drop), usage)
            }
        }
    }

    fn shutdown(&self) -> Result<(), CallError> {
        match self {
            Subject::InProcess(plugin) => plugin.shutdown(),
            Subject::Isolated(plugin) => plugin.shutdown(),
        }
    }
}

/// Loads one side, named `NAME@side` so that two builds of one plugin keep
/// apart everything the host keys by name (the query cache); in a child host
/// of its own with `isolate`.
fn load(
    host: &Host,
    side: &Side,
    which: &str,
    isolate: Option<&IsolationOptions>,
    order: &mut Order,
) -> Result<Subject> {
    let name = format!("{}@{which}", side.source.name());
    let context = || format!("the {which} ({})", side.path.display());
    let config = side.source.config_json();
    Ok(match isolate {
        Some(options) => Subject::Isolated(
            IsolatedPlugin::start(host, &side.library, &name, &config, side.source.budget(), options.clone())
                .with_context(context)?,
        ),
        None => {
            placement::shift(order.gap_pages());
            let plugin = host.load_library(&side.library, &name, &config).with_context(context)?;
            plugin.set_budget(side.source.budget());
            Subject::InProcess(plugin)
        }
    })
}

/// Where the next library lands. Libraries are mapped one below the other, so
/// without this each segment would put its two copies at the same distance
/// from each other and from the host's code, and a placement that favours one
/// side would favour it in every segment.
#[cfg(unix)]
mod placement {
    /// Moves the next mapping down by `pages` pages: reserves that much
    /// address space (no memory: nothing may touch it), for the process's life.
    pub(super) fn shift(pages: usize) {
        // SAFETY: sysconf reads a constant.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
        // SAFETY: a new anonymous mapping that is never read, written or unmapped.
        let _ = unsafe { libc::mmap(std::ptr::null_mut(), pages * page, libc::PROT_NONE, flags, -1, 0) };
    }
}

#[cfg(not(unix))]
mod placement {
    pub(super) fn shift(_pages: usize) {}
}

/// Pinning the calling thread, and the threads it starts, to one CPU.
#[cfg(target_os = "linux")]
mod one_cpu {
    /// Restores the thread's CPU set when dropped.
    pub(super) struct Pinned(Option<libc::cpu_set_t>);

    /// Pins the calling thread to the CPU it runs on; threads it starts
    /// inherit that. Best effort: where the kernel refuses, nothing changes.
    pub(super) fn pin() -> Pinned {
        // SAFETY: cpu_set_t is plain data; every pointer is to a live local.
        unsafe {
            let mut old: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut old) != 0 {
                return Pinned(None);
            }
            let cpu = libc::sched_getcpu();
            if cpu < 0 {
                return Pinned(None);
            }
            let mut one: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu as usize, &mut one);
            if libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &one) != 0 {
                return Pinned(None);
            }
            Pinned(Some(old))
        }
    }

    impl Drop for Pinned {
        fn drop(&mut self) {
            if let Some(old) = &self.0 {
                // SAFETY: a CPU set read by sched_getaffinity.
                unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), old) };
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod one_cpu {
    pub(super) struct Pinned;
    pub(super) fn pin() -> Pinned {
        Pinned
    }
}

/// Which side goes first in each pair, and where each copy lands: a
/// xorshift64* stream, seeded.
struct Order(u64);

impl Order {
    fn new(seed: Option<u64>) -> Order {
        let seed = seed.unwrap_or_else(|| {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            now.as_nanos() as u64 ^ u64::from(std::process::id()).rotate_left(32)
        });
        // Never 0: xorshift would stay there.
        Order(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn baseline_first(&mut self) -> bool {
        self.next() >> 63 == 1
    }

    /// A gap before a library: 1 to 512 pages (up to 2 MiB here).
    fn gap_pages(&mut self) -> usize {
        (self.next() >> 32) as usize % 512 + 1
    }
}

/// One timed call: wall time of the round trip and the worker's CPU time, in ns (at least 1).
fn timed(plugin: &Subject, spec: &Spec, side: &str) -> Result<(u64, Option<u64>)> {
    let before = Instant::now();
    let (result, usage) = plugin.call(spec);
    let wall = before.elapsed();
    result.with_context(|| format!("benchmark {}: the {side}'s call failed", spec.name))?;
    let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1);
    Ok((ns(wall), usage.cpu.map(ns)))
}

/// Loads a fresh copy of both sides, both worker threads started on one CPU
/// so that neither gets the quieter or the faster core (this thread goes back
/// to every CPU after).
fn load_pair(
    host: &Host,
    sides: [(&Side, &str); 2],
    isolate: Option<&IsolationOptions>,
    order: &mut Order,
) -> Result<(Subject, Subject)> {
    let pinned = one_cpu::pin();
    let baseline = load(host, sides[0].0, sides[0].1, isolate, order)?;
    let candidate = load(host, sides[1].0, sides[1].1, isolate, order);
    drop(pinned);
    Ok((baseline, candidate?))
}

/// Measures `limits.segments` segments, each on freshly loaded copies of both
/// sides (new addresses, so a lucky or unlucky code layout is one draw among
/// several rather than the whole run), warmed up, then called in pairs for its
/// share of the limits.
fn measure(
    host: &Host,
    sides: [(&Side, &str); 2],
    isolate: Option<&IsolationOptions>,
    spec: &Spec,
    limits: Limits,
    order: &mut Order,
) -> Result<(PairedSamples, Duration)> {
    let capacity = limits.pairs.min(1 << 20);
    let mut samples = PairedSamples {
        baseline_wall_ns: Vec::with_capacity(capacity),
        candidate_wall_ns: Vec::with_capacity(capacity),
        baseline_cpu_ns: Vec::with_capacity(capacity),
        candidate_cpu_ns: Vec::with_capacity(capacity),
        segment_ends: Vec::with_capacity(limits.segments),
    };
    let mut has_cpu = true;
    let mut elapsed = Duration::ZERO;
    let segments = limits.segments.max(1);
    for segment in 0..segments {
        let (baseline, candidate) = load_pair(host, sides, isolate, order)?;
        for _ in 0..limits.warmup {
            timed(&baseline, spec, "baseline")?;
            timed(&candidate, spec, "candidate")?;
        }
        // This segment's share of what is left, so that rounding loses nothing.
        let left = segments - segment;
        let pairs = samples.baseline_wall_ns.len() + (limits.pairs - samples.baseline_wall_ns.len()).div_ceil(left);
        let started = Instant::now();
        let deadline = started + limits.time.saturating_sub(elapsed) / left as u32;
        while samples.baseline_wall_ns.len() < pairs && Instant::now() < deadline {
            let (b, c) = if order.baseline_first() {
                let b = timed(&baseline, spec, "baseline")?;
                (b, timed(&candidate, spec, "candidate")?)
            } else {
                let c = timed(&candidate, spec, "candidate")?;
                (timed(&baseline, spec, "baseline")?, c)
            };
            samples.baseline_wall_ns.push(b.0);
            samples.candidate_wall_ns.push(c.0);
            match (b.1, c.1) {
                (Some(bc), Some(cc)) => {
                    samples.baseline_cpu_ns.push(bc);
                    samples.candidate_cpu_ns.push(cc);
                }
                _ => has_cpu = false,
            }
        }
        elapsed += started.elapsed();
        samples.segment_ends.push(samples.baseline_wall_ns.len());
        baseline.shutdown()?;
        candidate.shutdown()?;
    }
    if !has_cpu {
        samples.baseline_cpu_ns.clear();
        samples.candidate_cpu_ns.clear();
    }
    Ok((samples, elapsed))
}

#[cfg(all(test, unix))]
mod tests {
    /// An anonymous mapping of one page: where the next mapping lands.
    fn probe() -> usize {
        // SAFETY: a new anonymous mapping, unmapped by nothing (the test's address space).
        let at = unsafe {
            libc::mmap(std::ptr::null_mut(), 4096, libc::PROT_NONE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0)
        };
        assert_ne!(at, libc::MAP_FAILED);
        at as usize
    }

    #[test]
    fn a_shift_moves_the_next_mapping_down_by_its_gap() {
        // Other threads of the test process may map too: one clean try of three.
        let page = 4096;
        let moved = (0..3).any(|_| {
            let (a, b) = (probe(), probe());
            super::placement::shift(37);
            let c = probe();
            // Mapped top-down, one below the other; the gap sits between b and c.
            a.checked_sub(b) == Some(page) && b.checked_sub(c) == Some(page + 37 * page)
        });
        assert!(moved, "a 37-page gap did not move the next mapping down by 37 pages");
    }
}
