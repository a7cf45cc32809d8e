//! `ax dev PLUGIN`: serve a plugin, hot-reload it as its source changes, and
//! take calls typed on stdin meanwhile.
//!
//! For a crate, the sources (`src/`, `Cargo.toml`, `build.rs`) and the
//! manifest (`ax-plugin.toml`) are watched; after a change and the manifest's
//! debounce, cargo rebuilds (its messages are shown) and the new library
//! replaces the serving one through the runtime's reload engine: state
//! carried, rolled back on any failure. A changed `[config]` is handed to the
//! new instance's `init` even when the library did not change; a config that
//! `init` rejects rolls back and the old config goes on serving. A build that
//! fails, or a manifest that no longer parses, leaves the running version
//! serving. For a library file, the file itself is watched (someone else
//! builds it). With `--calls FILE` the calls are replayed after the first
//! load and after every reload, so the effect of an edit shows at once; the
//! file is read again (and replayed) whenever it changes.
//!
//! Stdin takes one command a line (see [`INTERACTIVE`]): a call as a calls-file
//! line or as `METHOD JSON`, an empty line or `:replay` to replay the calls
//! file. Calls go to whichever build is serving, so after a rollback they
//! show the old build still at work. Stdin closing (or never open) only stops
//! reading it; Ctrl-C or `:quit` ends `ax dev`.
//!
//! Results go to stdout; one status line per change goes to stderr:
//! `[gen 2] src/lib.rs changed · build 1.42 s · reloaded in 3.1 ms (…) · state 14 B carried`.
//!
//! The loop is explicit: every trigger (a source change, a reload done by the
//! library watcher, a line on stdin, a calls-file change, Ctrl-C) is a
//! [`DevEvent`] on one channel, and the debounces are deadlines of that loop.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ax_runtime::{
    BuildOptions, Event, Host, HostOptions, Instrumentation, LibraryWatcher, PluginSource, ReloadOptions,
    ReloadOutcome, ReloadReport, ReloadStep, ReloadablePlugin, SourceWatcher,
};
use clap::Args;
use crossbeam_channel::{self as channel, Receiver, RecvTimeoutError, Sender};

use crate::run::{Call, parse_input, read_calls, run_calls};

/// What `ax dev` reads on stdin; also shown by `ax dev --help` and `:help`.
const INTERACTIVE: &str = "\
While it runs, ax dev reads commands on stdin, one a line:
  {\"method\": \"hello\", \"input\": {\"name\": \"ax\"}}   call the serving build (a calls-file line)
  hello {\"name\": \"ax\"}                           the same: METHOD, then its input as JSON (default null)
  (an empty line) or :replay                     replay the calls file (--calls)
  :help                                          this list
  :quit                                          stop (as Ctrl-C does)
Results go to stdout, errors to stderr. The calls file is read again, and
replayed, whenever it changes.";

#[derive(Debug, Args)]
#[command(after_help = INTERACTIVE)]
pub(crate) struct DevArgs {
    /// The plugin: a crate directory with ax-plugin.toml, a manifest, or a library file.
    plugin: PathBuf,
    /// Replay the calls in FILE (JSON lines of {"method", "input"}) after every load, and whenever FILE changes.
    #[arg(long, value_name = "FILE")]
    calls: Option<PathBuf>,
    /// Build and load the release profile.
    #[arg(long)]
    release: bool,
    /// Quiet time after a change before rebuilding (default: the manifest's [reload] debounce, or 300ms).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    debounce: Option<Duration>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    ax_runtime::manifest::HumanDuration::parse(s).map(|d| d.0)
}

/// Everything the dev loop reacts to.
#[derive(Debug)]
enum DevEvent {
    /// Source files or the manifest changed (crate mode).
    SourcesChanged(Vec<PathBuf>),
    /// The library watcher finished a reload attempt (library mode).
    Reloaded(Result<ReloadReport, (ReloadStep, String, u64)>),
    /// A line typed on stdin.
    Input(String),
    /// The calls file was written.
    CallsChanged,
    /// Ctrl-C.
    Interrupted,
}

pub(crate) fn run(args: DevArgs) -> Result<ExitCode> {
    let log_filter = crate::logging::init()?;
    let calls = args.calls.as_deref().map(read_calls).transpose()?;
    let source = PluginSource::resolve(&args.plugin)?;
    crate::run::refuse_unsandboxed(&source, "ax dev")?;
    let (crate_dir, reload_settings) = match &source {
        PluginSource::Manifest { dir, manifest, .. } => {
            (manifest.plugin.library.is_none().then(|| dir.clone()), Some(manifest.reload.clone()))
        }
        PluginSource::Library(_) => (None, None),
    };
    let debounce =
        args.debounce.or(reload_settings.as_ref().map(|r| r.debounce.0)).unwrap_or(Duration::from_millis(300));
    let options = reload_settings.map_or_else(ReloadOptions::default, |r| ReloadOptions {
        init_timeout: r.init_timeout.0,
        drain_timeout: r.drain_timeout.0,
    });

    let mut build = BuildOptions { build: true, release: args.release, on_output: None };
    let library = source.library(&mut build)?;
    let export = crate::telemetry::Export::start(&source)?;
    let tracer = export.as_ref().map(crate::telemetry::Export::tracer);
    // A call's CPU time (two system calls per call) only where it is shown:
    // on its exported span.
    let call_cpu = tracer.is_some();
    let instrumentation = Instrumentation { log_filter, tracer, call_cpu, ..Instrumentation::default() };
    let host = Arc::new(
        Host::with_options(HostOptions { instrumentation, ..HostOptions::default() })
            .context("cannot set up the plugin host")?,
    );
    crate::logging::print_plugin_logs(&host);
    if let Some(export) = &export {
        export.observe(&host, &source.name());
    }
    let started = Instant::now();
    let plugin =
        Arc::new(ReloadablePlugin::load(host.clone(), &library, &source.name(), &source.config_json(), options)?);
    eprintln!("[gen 1] serving {} from {} (loaded in {})", source.name(), library.display(), ms(started.elapsed()));
    replay(&plugin, calls.as_deref());

    let (tx, rx) = channel::unbounded();
    let interrupt = tx.clone();
    ctrlc::set_handler(move || {
        let _ = interrupt.send(DevEvent::Interrupted);
    })
    .context("cannot install the Ctrl-C handler")?;

    // The watchers live as long as the loop runs.
    let (_sources, _library) = match &crate_dir {
        Some(dir) => {
            let tx = tx.clone();
            (Some(SourceWatcher::spawn(dir, move |changed| drop(tx.send(DevEvent::SourcesChanged(changed))))?), None)
        }
        None => (None, Some(watch_library(&plugin, &library, debounce, tx.clone())?)),
    };
    let _calls_watcher = args.calls.as_deref().map(|path| watch_calls_file(path, tx.clone())).transpose()?;
    read_stdin(tx);
    eprintln!(
        "watching for changes (debounce {}); type a call (METHOD JSON), an empty line to replay the calls, :help; \
         Ctrl-C to stop",
        ms(debounce)
    );
    let mut dev = Dev { plugin, library, calls, calls_path: args.calls, build_release: args.release, crate_dir };
    dev.event_loop(&rx, debounce);
    dev.plugin.current().shutdown()?;
    Ok(ExitCode::SUCCESS)
}

struct Dev {
    plugin: Arc<ReloadablePlugin>,
    library: PathBuf,
    calls: Option<Vec<Call>>,
    calls_path: Option<PathBuf>,
    build_release: bool,
    crate_dir: Option<PathBuf>,
}

impl Dev {
    fn event_loop(&mut self, rx: &Receiver<DevEvent>, debounce: Duration) {
        // Source changes waiting for the sources to be quiet, and when that is.
        let mut changed: Vec<PathBuf> = Vec::new();
        let mut rebuild_at: Option<Instant> = None;
        let mut reread_calls_at: Option<Instant> = None;
        loop {
            let due = [rebuild_at, reread_calls_at].into_iter().flatten().min();
            let event = match due {
                Some(at) => rx.recv_deadline(at),
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            match event {
                Ok(DevEvent::Interrupted) | Err(RecvTimeoutError::Disconnected) => return,
                Ok(DevEvent::SourcesChanged(more)) => {
                    changed.extend(more);
                    rebuild_at = Some(Instant::now() + debounce);
                }
                Ok(DevEvent::CallsChanged) => reread_calls_at = Some(Instant::now() + debounce),
                Ok(DevEvent::Input(line)) => {
                    if !self.command(&line) {
                        return;
                    }
                }
                Ok(DevEvent::Reloaded(Ok(report))) => {
                    eprintln!("[gen {}] {} changed · {}", report.generation, self.library.display(), report);
                    replay(&self.plugin, self.calls.as_deref());
                }
                Ok(DevEvent::Reloaded(Err((step, error, serving)))) => {
                    eprintln!(
                        "[gen {serving}] reload rolled back at {step}: {error}; generation {serving} keeps serving"
                    );
                }
                Err(RecvTimeoutError::Timeout) => {
                    let now = Instant::now();
                    if rebuild_at.is_some_and(|at| at <= now) {
                        rebuild_at = None;
                        self.rebuild_and_reload(&std::mem::take(&mut changed));
                    }
                    if reread_calls_at.is_some_and(|at| at <= now) {
                        reread_calls_at = None;
                        self.reread_calls();
                    }
                }
            }
        }
    }

    /// Runs one line typed on stdin; false to stop.
    fn command(&self, line: &str) -> bool {
        let text = line.trim();
        match text {
            "" | ":replay" => match &self.calls {
                Some(calls) => replay(&self.plugin, Some(calls)),
                None => eprintln!("error: no calls file to replay; expected ax dev started with --calls FILE"),
            },
            ":help" => eprintln!("{INTERACTIVE}"),
            ":quit" => return false,
            _ if text.starts_with(':') => {
                eprintln!("error: unknown command {text:?}; expected :replay, :help or :quit, or a call (METHOD JSON)");
            }
            _ => match parse_call(text) {
                Ok(call) => replay(&self.plugin, Some(std::slice::from_ref(&call))),
                Err(e) => eprintln!("error: {e}"),
            },
        }
        true
    }

    fn reread_calls(&mut self) {
        let Some(path) = &self.calls_path else { return };
        match read_calls(path) {
            Ok(calls) => {
                eprintln!("{} changed: {} call(s), replayed", path.display(), calls.len());
                replay(&self.plugin, Some(&calls));
                self.calls = Some(calls);
            }
            Err(e) => {
                let kept = self.calls.as_ref().map_or(0, Vec::len);
                eprintln!("error: {e:#}; the {kept} call(s) read before are kept");
            }
        }
    }

    fn rebuild_and_reload(&mut self, changed: &[PathBuf]) {
        let generation = self.plugin.generation();
        let what = describe_changes(self.crate_dir.as_deref(), changed);
        let Some(dir) = &self.crate_dir else { return };
        let started = Instant::now();
        let source = match PluginSource::resolve(dir) {
            Ok(source) => source,
            Err(e) => {
                eprintln!(
                    "[gen {generation}] {what} · {e}; generation {generation} keeps serving (with the manifest read \
                     before)"
                );
                return;
            }
        };
        let mut build = BuildOptions { build: true, release: self.build_release, on_output: None };
        let library = match source.library(&mut build) {
            Ok(library) => library,
            Err(e) => {
                eprintln!("[gen {generation}] {what} · build failed ({e}) · generation {generation} keeps serving");
                self.plugin.report_build_failure(&self.library, &e.to_string());
                return;
            }
        };
        self.library = library.clone();
        let build_time = started.elapsed();
        let config = source.config_json();
        let config_changed = config != self.plugin.config_json();
        match self.plugin.reconfigure(&library, &config) {
            Ok(ReloadOutcome::Unchanged) => {
                eprintln!(
                    "[gen {generation}] {what} · build {} · library unchanged, nothing to reload",
                    secs(build_time)
                );
            }
            Ok(ReloadOutcome::Reloaded(report)) => {
                let config = if report.config_changed { "config changed: " } else { "" };
                eprintln!("[gen {}] {what} · build {} · {config}{report}", report.generation, secs(build_time));
                replay(&self.plugin, self.calls.as_deref());
            }
            Err(e) if config_changed && e.step == ReloadStep::Init => {
                eprintln!(
                    "[gen {}] {what} · build {} · config rejected by init: rolled back, old config serving: {} · \
                     generation {} keeps serving",
                    e.serving,
                    secs(build_time),
                    e.message,
                    e.serving
                );
            }
            Err(e) => {
                eprintln!(
                    "[gen {}] {what} · build {} · reload rolled back at {}: {} · generation {} keeps serving",
                    e.serving,
                    secs(build_time),
                    e.step,
                    e.message,
                    e.serving
                );
            }
        }
    }
}

/// A call typed on stdin: a calls-file line (`{"method": …}`) or `METHOD JSON`.
fn parse_call(text: &str) -> Result<Call> {
    if text.starts_with('{') {
        let line = ax_runtime::parse_call_line(text, 1).map_err(|e| anyhow::anyhow!("call {text:?}: {e}"))?;
        let traceparent = line
            .traceparent
            .map(|t| crate::telemetry::parse_traceparent(&t))
            .transpose()
            .map_err(|e| anyhow::anyhow!("call {text:?}: {e}"))?;
        return Ok(Call { method: line.method, input: line.input, budget: line.budget, traceparent });
    }
    let (method, input) = match text.split_once(char::is_whitespace) {
        Some((method, input)) => (method, Some(input.trim())),
        None => (text, None),
    };
    let input = parse_input(input)?;
    Ok(Call { method: method.to_owned(), input, budget: None, traceparent: None })
}

fn replay(plugin: &ReloadablePlugin, calls: Option<&[Call]>) {
    if let Some(calls) = calls {
        let current = plugin.current();
        run_calls(current.name(), calls, false, |m, i, b| current.call_with(m, i, b));
    }
}

/// Forwards stdin's lines to the loop. At its end (or with no stdin) it stops
/// quietly: `ax dev` goes on watching.
fn read_stdin(tx: Sender<DevEvent>) {
    let spawned = std::thread::Builder::new().name("ax-dev-stdin".to_owned()).spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { return };
            if tx.send(DevEvent::Input(line)).is_err() {
                return;
            }
        }
    });
    if let Err(e) = spawned {
        tracing::warn!(target: "ax::dev", "cannot read commands on stdin: {e}");
    }
}

/// Watches the calls file (its directory, for editors that replace the file).
fn watch_calls_file(path: &Path, tx: Sender<DevEvent>) -> Result<notify::RecommendedWatcher> {
    use notify::Watcher;
    use notify::event::{AccessKind, AccessMode, EventKind};
    let path = std::path::absolute(path).with_context(|| format!("{}: cannot watch", path.display()))?;
    let dir = path.parent().map(Path::to_owned).unwrap_or_else(|| PathBuf::from("."));
    let name = path.file_name().map(ToOwned::to_owned);
    let mut watcher = notify::recommended_watcher(move |result: notify::Result<notify::Event>| {
        let Ok(event) = result else { return };
        let write = match event.kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
            EventKind::Access(_) => false,
            _ => true,
        };
        if write && event.paths.iter().any(|p| p.file_name() == name.as_deref()) {
            let _ = tx.send(DevEvent::CallsChanged);
        }
    })
    .with_context(|| format!("{}: cannot watch", path.display()))?;
    watcher
        .watch(&dir, notify::RecursiveMode::NonRecursive)
        .with_context(|| format!("{}: cannot watch the calls file's directory", dir.display()))?;
    Ok(watcher)
}

fn describe_changes(root: Option<&Path>, changed: &[PathBuf]) -> String {
    // Editors and sed write through temporary files that are gone by now.
    let existing: Vec<&PathBuf> = changed.iter().filter(|p| p.exists()).collect();
    let shown = if existing.is_empty() { changed.iter().collect() } else { existing };
    let root = root.and_then(|r| std::path::absolute(r).ok());
    let mut names: Vec<String> = shown
        .iter()
        .map(|p| root.as_deref().and_then(|r| p.strip_prefix(r).ok()).unwrap_or(p).display().to_string())
        .collect();
    names.sort();
    names.dedup();
    match names.len() {
        0 => "sources changed".to_owned(),
        1..=3 => format!("{} changed", names.join(", ")),
        n => format!("{}, {} and {} more changed", names[0], names[1], n - 2),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn watch_library(
    plugin: &Arc<ReloadablePlugin>,
    library: &Path,
    debounce: Duration,
    tx: Sender<DevEvent>,
) -> Result<LibraryWatcher> {
    plugin.host().events().subscribe(move |event| {
        let event = match event {
            Event::ReloadSucceeded { report, .. } => DevEvent::Reloaded(Ok(report.clone())),
            Event::ReloadRolledBack { step, error, generation, .. } => {
                DevEvent::Reloaded(Err((*step, error.clone(), *generation)))
            }
            _ => return,
        };
        let _ = tx.send(event);
    });
    Ok(LibraryWatcher::spawn(plugin.clone(), library, debounce)?)
}
