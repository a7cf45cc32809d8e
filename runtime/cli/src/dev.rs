//! `ax dev PLUGIN`: serve a plugin and hot-reload it as its source changes.
//!
//! For a crate, the sources (`src/`, `Cargo.toml`, `build.rs`) are watched;
//! after a change and the manifest's debounce, cargo rebuilds (its messages are
//! shown) and the new library replaces the serving one through the runtime's
//! reload engine: state carried, rolled back on any failure. A build that fails
//! leaves the running version serving. For a library file, the file itself is
//! watched (someone else builds it). With `--calls FILE` the calls are replayed
//! after the first load and after every reload, so the effect of an edit shows
//! at once.
//!
//! Results go to stdout; one status line per change goes to stderr:
//! `[gen 2] src/lib.rs changed · build 1.42 s · reloaded in 3.1 ms (…) · state 14 B carried`.
//!
//! The loop is explicit: every trigger (a source change, a reload done by the
//! library watcher, Ctrl-C) is a [`DevEvent`] on one channel.

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

use crate::run::{Call, read_calls, run_calls};

#[derive(Debug, Args)]
pub(crate) struct DevArgs {
    /// The plugin: a crate directory with ax-plugin.toml, a manifest, or a library file.
    plugin: PathBuf,
    /// Replay the calls in FILE (JSON lines of {"method", "input"}) after every load.
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
    /// Source files changed (crate mode).
    SourcesChanged(Vec<PathBuf>),
    /// The library watcher finished a reload attempt (library mode).
    Reloaded(Result<ReloadReport, (ReloadStep, String, u64)>),
    /// Ctrl-C.
    Interrupted,
}

pub(crate) fn run(args: DevArgs) -> Result<ExitCode> {
    let log_filter = crate::logging::init()?;
    let calls = args.calls.as_deref().map(read_calls).transpose()?;
    let source = PluginSource::resolve(&args.plugin)?;
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
    let instrumentation = Instrumentation { log_filter, tracer, ..Instrumentation::default() };
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
    eprintln!("watching for changes (debounce {}); Ctrl-C to stop", ms(debounce));
    let dev = Dev { plugin, library, calls, build_release: args.release, crate_dir };
    dev.event_loop(&rx, debounce);
    dev.plugin.current().shutdown()?;
    Ok(ExitCode::SUCCESS)
}

struct Dev {
    plugin: Arc<ReloadablePlugin>,
    library: PathBuf,
    calls: Option<Vec<Call>>,
    build_release: bool,
    crate_dir: Option<PathBuf>,
}

impl Dev {
    fn event_loop(&self, rx: &Receiver<DevEvent>, debounce: Duration) {
        while let Ok(event) = rx.recv() {
            match event {
                DevEvent::Interrupted => return,
                DevEvent::SourcesChanged(mut changed) => {
                    // Debounce: keep collecting until the sources are quiet.
                    loop {
                        match rx.recv_timeout(debounce) {
                            Ok(DevEvent::SourcesChanged(more)) => changed.extend(more),
                            Ok(DevEvent::Interrupted) | Err(RecvTimeoutError::Disconnected) => return,
                            Ok(DevEvent::Reloaded(_)) => {}
                            Err(RecvTimeoutError::Timeout) => break,
                        }
                    }
                    self.rebuild_and_reload(&changed);
                }
                DevEvent::Reloaded(Ok(report)) => {
                    eprintln!("[gen {}] {} changed · {}", report.generation, self.library.display(), report);
                    replay(&self.plugin, self.calls.as_deref());
                }
                DevEvent::Reloaded(Err((step, error, serving))) => {
                    eprintln!(
                        "[gen {serving}] reload rolled back at {step}: {error}; generation {serving} keeps serving"
                    );
                }
            }
        }
    }

    fn rebuild_and_reload(&self, changed: &[PathBuf]) {
        let generation = self.plugin.generation();
        let what = describe_changes(self.crate_dir.as_deref(), changed);
        let Some(dir) = &self.crate_dir else { return };
        let started = Instant::now();
        let source = match PluginSource::resolve(dir) {
            Ok(source) => source,
            Err(e) => {
                eprintln!("[gen {generation}] {what} · {e}; generation {generation} keeps serving");
                return;
            }
        };
        let mut build = BuildOptions { build: true, release: self.build_release, on_output: None };
        let library = match source.library(&mut build) {
            Ok(library) => library,
            Err(e) => {
                eprintln!("[gen {generation}] {what} · build failed ({e}) · generation {generation} keeps serving");
                return;
            }
        };
        let build_time = started.elapsed();
        match self.plugin.reload(&library) {
            Ok(ReloadOutcome::Unchanged) => {
                eprintln!(
                    "[gen {generation}] {what} · build {} · library unchanged, nothing to reload",
                    secs(build_time)
                );
            }
            Ok(ReloadOutcome::Reloaded(report)) => {
                eprintln!("[gen {}] {what} · build {} · {}", report.generation, secs(build_time), report);
                replay(&self.plugin, self.calls.as_deref());
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

fn replay(plugin: &ReloadablePlugin, calls: Option<&[Call]>) {
    if let Some(calls) = calls {
        let current = plugin.current();
        run_calls(current.name(), calls, false, |m, i, b| current.call_with(m, i, b));
    }
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
