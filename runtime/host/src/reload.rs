//! Hot reload: replace a serving plugin by a new build of it, carrying its
//! state, and roll back to the old one on any failure.
//!
//! [`ReloadablePlugin`] routes calls to the current instance. A reload
//! 1. opens the new library, checks its headers, and skips it if its contents
//!    did not change: the same file (device, inode, size, mtime) as the one
//!    serving, or as the last one that failed, is skipped without reading it;
//!    another file of the same size is compared byte by byte until the first
//!    difference (a touched file is unchanged); a new size is a change,
//! 2. loads it beside the old one (a link or a copy at a unique path, see
//!    `loader`; ABI checked),
//! 3. creates the new instance under a deadline (`init`),
//! 4. stops routing new calls to the old instance and waits for the calls in
//!    flight to finish, with a deadline (`drain`),
//! 5. moves the state: `save_state` on the old, `restore_state` on the new,
//! 6. swaps the route, then shuts the old instance down.
//!
//! Until step 6 the old instance is the one serving; a failure at any step
//! leaves it serving, shuts the new one down and says which step failed.
//!
//! [`ReloadablePlugin::reconfigure`] runs the same steps with a new `[config]`
//! for `init`, even when the library did not change (the same image is loaded
//! again, as a new copy): a config that `init` rejects rolls back, and the old
//! instance goes on serving with the old config. A build that failed before
//! any of this ([`ReloadablePlugin::report_build_failure`]) is published as a
//! reload rolled back at [`ReloadStep::Build`].
//!
//! The library watcher does steps 1 and 2 ahead, while it waits out its
//! debounce, for a library the host links ([`ReloadablePlugin::map_ahead`]):
//! a cargo output, whose file is never rewritten once in place. The next
//! reload (the watcher's at the end of the debounce, or any other) takes the
//! library mapped ahead if the file at its path is still that one (the same
//! device, inode, size and mtime), and starts at step 3.
//!
//! Calls that arrive during steps 4–6 wait (for the length of a state
//! transfer) and are answered by the new instance: there is never a moment
//! without a serving version, and no call is answered by a half-initialised one.
//!
//! Old images stay mapped (see `loader`): their memory is not reclaimed.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use serde_json::Value;

use crate::error::{CallError, LoadError};
use crate::events::Event;
use crate::host::Host;
use crate::loader::{self, FileId, Image, OpenedLibrary};
use crate::plugin::Plugin;

/// Deadlines of a reload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReloadOptions {
    /// How long the new instance's `init` may take.
    pub init_timeout: Duration,
    /// How long to wait for calls in flight on the old instance.
    pub drain_timeout: Duration,
}

impl Default for ReloadOptions {
    fn default() -> Self {
        ReloadOptions { init_timeout: Duration::from_secs(5), drain_timeout: Duration::from_secs(5) }
    }
}

/// A step of a reload, for timings and for saying where one failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReloadStep {
    /// Building the new library (cargo): reported by the front end that builds,
    /// before the engine's own steps.
    Build,
    /// Reading the new library and checking it is whole.
    Read,
    /// Copy, `dlopen`, ABI checks.
    Load,
    /// The new instance's `init`.
    Init,
    /// Waiting for the old instance's calls in flight.
    Drain,
    /// `save_state` on the old instance.
    SaveState,
    /// `restore_state` on the new instance.
    RestoreState,
    /// Routing calls to the new instance.
    Swap,
    /// Shutting the old instance down (after the swap: its failure is reported, not rolled back).
    ShutdownOld,
}

impl fmt::Display for ReloadStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReloadStep::Build => "build",
            ReloadStep::Read => "read",
            ReloadStep::Load => "load",
            ReloadStep::Init => "init",
            ReloadStep::Drain => "drain",
            ReloadStep::SaveState => "save_state",
            ReloadStep::RestoreState => "restore_state",
            ReloadStep::Swap => "swap",
            ReloadStep::ShutdownOld => "shutdown_old",
        })
    }
}

/// What a successful reload did.
#[derive(Clone, Debug, PartialEq)]
pub struct ReloadReport {
    /// The generation now serving (the first load is generation 1).
    pub generation: u64,
    pub library: PathBuf,
    /// Time per step, in order.
    pub steps: Vec<(ReloadStep, Duration)>,
    /// Size of the state carried over.
    pub state_bytes: usize,
    /// From the start of the read to the new instance serving.
    pub duration: Duration,
    /// Set if the old instance's shutdown failed (the reload stands).
    pub shutdown_error: Option<String>,
    /// The new instance was initialised with a new `[config]`.
    pub config_changed: bool,
    /// How long reading and mapping the library took when the library
    /// watcher did it ahead, during its debounce (see the module docs); the
    /// steps `read` and `load` then count only the check that the file is
    /// still the one mapped.
    pub mapped_ahead: Option<Duration>,
}

/// `reloaded in 3.1 ms (read 0.2 ms · load 0.9 ms · …) · state 14 B carried`
impl fmt::Display for ReloadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
        let steps: Vec<String> = self
            .steps
            .iter()
            .filter(|(step, _)| *step != ReloadStep::Swap)
            .map(|(step, d)| format!("{step} {}", ms(*d)))
            .collect();
        write!(
            f,
            "reloaded in {} ({}) · state {} carried",
            ms(self.duration),
            steps.join(" · "),
            crate::budget::format_bytes(self.state_bytes as u64)
        )?;
        if let Some(ahead) = self.mapped_ahead {
            write!(f, " · read and mapped ahead in {}", ms(ahead))?;
        }
        if let Some(e) = &self.shutdown_error {
            write!(f, " · the old build's shutdown failed: {e}")?;
        }
        Ok(())
    }
}

/// The result of a reload that did not fail.
#[derive(Clone, Debug, PartialEq)]
pub enum ReloadOutcome {
    Reloaded(ReloadReport),
    /// The library's contents are those already serving (or of the last build that
    /// failed): nothing to do.
    Unchanged,
}

/// A reload that was rolled back: the old instance keeps serving.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("reload of {} failed at {step}: {message}; generation {serving} keeps serving", library.display())]
pub struct ReloadError {
    pub library: PathBuf,
    pub step: ReloadStep,
    pub message: String,
    /// The generation still serving.
    pub serving: u64,
    /// The library was missing or incomplete: it may be mid-write, so another
    /// look after the next change is worthwhile.
    pub transient: bool,
}

/// A plugin whose calls survive reloads. See the module docs.
pub struct ReloadablePlugin {
    host: Arc<Host>,
    name: String,
    /// The `[config]` the serving instance was initialised with.
    config_json: RwLock<String>,
    options: ReloadOptions,
    current: RwLock<Arc<Plugin>>,
    generation: AtomicU64,
    /// The library serving and the last one that failed to load.
    /// Held during a reload: one reload at a time.
    known: Mutex<Known>,
    /// Called with a new instance once it holds the state, before it serves.
    on_ready: RwLock<Option<ReadyHook>>,
}

/// Library versions a reload compares a new file with.
#[derive(Debug)]
struct Known {
    serving: Seen,
    failed: Option<Seen>,
    /// A library mapped ahead of its reload, taken by the next reload.
    ahead: Option<Ahead>,
}

/// A library version this plugin saw.
#[derive(Debug)]
struct Seen {
    id: FileId,
    /// Its identity was taken too soon after its mtime to vouch for it alone.
    racy: bool,
    /// Its private path (a link or a copy, never rewritten), to compare
    /// contents with; `None` if it failed before it got one.
    private: Option<PathBuf>,
}

impl Seen {
    /// Whether `image` holds the contents seen: the same file, unmodified, or
    /// another with the same bytes.
    fn holds(&self, image: &Image, host: &Host) -> bool {
        if image.id == self.id && !self.racy {
            return true;
        }
        match &self.private {
            Some(private) if image.id.len == self.id.len => host.same_contents(image, private),
            _ => false,
        }
    }
}

/// A library read and mapped ahead of its reload ([`ReloadablePlugin::map_ahead`]).
#[derive(Debug)]
struct Ahead {
    image: Image,
    /// The load, or why it failed: the reload reports it as its own.
    opened: Result<OpenedLibrary, LoadError>,
    took: Duration,
}

/// See [`ReloadablePlugin::on_ready`].
pub type ReadyHook = Box<dyn Fn(&Arc<Plugin>, u64) + Send + Sync>;

impl fmt::Debug for ReloadablePlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadablePlugin")
            .field("name", &self.name)
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}

impl ReloadablePlugin {
    /// Loads generation 1 from `library`.
    pub fn load(
        host: Arc<Host>,
        library: &Path,
        name: &str,
        config_json: &str,
        options: ReloadOptions,
    ) -> Result<ReloadablePlugin, LoadError> {
        let image = loader::read(library)?;
        let opened = host.open(library, &image)?;
        let serving = Seen { id: image.id, racy: image.racy, private: Some(opened.private.clone()) };
        let plugin = host.start_opened(library, opened, name, config_json, Some(options.init_timeout))?;
        Ok(ReloadablePlugin {
            host,
            name: name.to_owned(),
            config_json: RwLock::new(config_json.to_owned()),
            options,
            current: RwLock::new(Arc::new(plugin)),
            generation: AtomicU64::new(1),
            known: Mutex::new(Known { serving, failed: None, ahead: None }),
            on_ready: RwLock::new(None),
        })
    }

    /// Has `hook` called with each new instance (and its generation) after
    /// its state is restored and before any call reaches it — while the old
    /// one has no call in flight. A debugger attaches to it there, so its
    /// breakpoints hold from the new version's first call.
    pub fn on_ready(&self, hook: ReadyHook) {
        *self.on_ready.write() = Some(hook);
    }

    /// Calls the instance currently serving. During a reload's drain and state
    /// transfer the call waits, then goes to the new instance.
    pub fn call(&self, method: &str, input: &Value) -> Result<Value, CallError> {
        self.current.read().call(method, input)
    }

    /// [`ReloadablePlugin::call`] with JSON bytes.
    pub fn call_raw(&self, method: &str, input: &[u8]) -> Result<Vec<u8>, CallError> {
        self.current.read().call_raw(method, input)
    }

    /// The instance serving now (for probes, callsites, state). It may be
    /// replaced at any time; a call on a replaced instance fails with
    /// [`CallError::Stopped`].
    pub fn current(&self) -> Arc<Plugin> {
        self.current.read().clone()
    }

    /// The generation serving: 1 for the first load, one more per successful reload.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Replaces the serving instance with one loaded from `library`. See the
    /// module docs for the steps; on error the old instance keeps serving.
    pub fn reload(&self, library: &Path) -> Result<ReloadOutcome, ReloadError> {
        self.reload_with(library, None)
    }

    /// Reads and maps `library` ahead of its reload, when the host would link
    /// it (see the module docs), for the next reload (by whichever caller) to
    /// take if the file at the path is still that one. Does nothing if it is
    /// already mapped ahead, or if there is nothing to do ahead: a file
    /// missing, incomplete, unchanged or to be copied (the reload then does it
    /// all, and reports what it finds).
    pub(crate) fn map_ahead(&self, library: &Path) {
        let started = Instant::now();
        let mut known = self.known.lock();
        if known.ahead.as_ref().is_some_and(|ahead| FileId::at(library) == Some(ahead.image.id)) {
            return;
        }
        known.ahead = None;
        let Ok(image) = loader::read(library) else { return };
        if known.serving.holds(&image, &self.host)
            || known.failed.as_ref().is_some_and(|f| f.holds(&image, &self.host))
            || !self.host.would_link(library, &image)
        {
            return;
        }
        match self.host.open(library, &image) {
            Err(e) if e.is_transient() => {}
            opened => known.ahead = Some(Ahead { image, opened, took: started.elapsed() }),
        }
    }

    /// Like [`ReloadablePlugin::reload`], initialising the new instance with
    /// `config_json`. When it differs from the serving instance's config, the
    /// reload happens even if the library is unchanged; if `init` (or any
    /// later step) fails, the old instance keeps serving with its old config.
    pub fn reconfigure(&self, library: &Path, config_json: &str) -> Result<ReloadOutcome, ReloadError> {
        self.reload_with(library, Some(config_json))
    }

    /// The `[config]` JSON the serving instance was initialised with.
    pub fn config_json(&self) -> String {
        self.config_json.read().clone()
    }

    /// Publishes a build that failed as a reload rolled back at
    /// [`ReloadStep::Build`] (for telemetry and other observers); the serving
    /// instance is untouched.
    pub fn report_build_failure(&self, library: &Path, message: &str) {
        self.report_rollback(&ReloadError {
            library: library.to_owned(),
            step: ReloadStep::Build,
            message: message.to_owned(),
            serving: self.generation(),
            transient: false,
        });
    }

    fn reload_with(&self, library: &Path, config_json: Option<&str>) -> Result<ReloadOutcome, ReloadError> {
        let mut known = self.known.lock();
        let started = Instant::now();
        let mut steps = Vec::with_capacity(8);
        let serving = self.generation();
        let fail = |step: ReloadStep, message: String, transient: bool| ReloadError {
            library: library.to_owned(),
            step,
            message,
            serving,
            transient,
        };

        let (image, opened_ahead, mapped_ahead) = match known.ahead.take() {
            Some(ahead) if FileId::at(library) == Some(ahead.image.id) => {
                (ahead.image, Some(ahead.opened), Some(ahead.took))
            }
            _ => {
                let image = loader::read(library);
                (image.map_err(|e| fail(ReloadStep::Read, e.to_string(), e.is_transient()))?, None, None)
            }
        };
        let serving_config = self.config_json();
        let new_config = config_json.filter(|c| *c != serving_config).map(str::to_owned);
        let config_changed = new_config.is_some();
        if !config_changed
            && (known.serving.holds(&image, &self.host)
                || known.failed.as_ref().is_some_and(|f| f.holds(&image, &self.host)))
        {
            return Ok(ReloadOutcome::Unchanged);
        }
        let config_json = new_config.unwrap_or(serving_config);
        // A library that failed with a new config may serve with another one:
        // only a failure under the serving config marks the library as failed.
        let mark_failed = |known: &mut Known, private: Option<PathBuf>| {
            if !config_changed {
                known.failed = Some(Seen { id: image.id, racy: image.racy, private });
            }
        };
        steps.push((ReloadStep::Read, started.elapsed()));
        let old_instance = self.current().instance_id();
        let events = self.host.events();
        events.publish_with(|| Event::ReloadStarted {
            instance: old_instance,
            library: library.to_owned(),
            generation: serving + 1,
        });
        let rolled_back = |error: ReloadError| {
            events.publish_with(|| Event::ReloadRolledBack {
                instance: old_instance,
                generation: serving,
                step: error.step,
                error: error.message.clone(),
            });
            error
        };
        let mut last = Instant::now();
        let mut lap = |step: ReloadStep, steps: &mut Vec<(ReloadStep, Duration)>| {
            let now = Instant::now();
            steps.push((step, now - last));
            last = now;
        };

        let opened = match opened_ahead.unwrap_or_else(|| self.host.open(library, &image)) {
            Ok(opened) => opened,
            Err(e) => {
                if !e.is_transient() {
                    mark_failed(&mut known, None);
                }
                return Err(rolled_back(fail(ReloadStep::Load, e.to_string(), e.is_transient())));
            }
        };
        let private = opened.private.clone();
        lap(ReloadStep::Load, &mut steps);
        let init_timeout = Some(self.options.init_timeout);
        let new = match self.host.start_opened(library, opened, &self.name, &config_json, init_timeout) {
            Ok(new) => Arc::new(new),
            Err(e) => {
                mark_failed(&mut known, Some(private));
                return Err(rolled_back(fail(ReloadStep::Init, e.to_string(), false)));
            }
        };
        lap(ReloadStep::Init, &mut steps);

        let Some(mut route) = self.current.try_write_for(self.options.drain_timeout) else {
            let _ = new.shutdown();
            let message = format!("calls in flight did not finish within {:?}", self.options.drain_timeout);
            return Err(rolled_back(fail(ReloadStep::Drain, message, false)));
        };
        lap(ReloadStep::Drain, &mut steps);

        let saved = match route.save_state() {
            Ok(saved) => saved,
            Err(e) => {
                drop(route);
                let _ = new.shutdown();
                return Err(rolled_back(fail(ReloadStep::SaveState, e.to_string(), false)));
            }
        };
        lap(ReloadStep::SaveState, &mut steps);
        if let Err(e) = new.restore_state(&saved) {
            drop(route);
            let _ = new.shutdown();
            mark_failed(&mut known, Some(private));
            return Err(rolled_back(fail(ReloadStep::RestoreState, e.to_string(), false)));
        }
        lap(ReloadStep::RestoreState, &mut steps);

        new.set_budget(route.budget());
        let new_instance = new.instance_id();
        if let Some(hook) = &*self.on_ready.read() {
            hook(&new, serving + 1);
        }
        let old = std::mem::replace(&mut *route, new);
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        if config_changed {
            *self.config_json.write() = config_json;
        }
        drop(route);
        lap(ReloadStep::Swap, &mut steps);
        let duration = started.elapsed();
        known.serving = Seen { id: image.id, racy: image.racy, private: Some(private) };
        known.failed = None;

        let shutdown_error = old.shutdown().err().map(|e| e.to_string());
        lap(ReloadStep::ShutdownOld, &mut steps);
        let report = ReloadReport {
            generation,
            library: library.to_owned(),
            steps,
            state_bytes: saved.bytes.len(),
            duration,
            shutdown_error,
            config_changed,
            mapped_ahead,
        };
        events.publish_with(|| Event::ReloadSucceeded {
            previous: old_instance,
            instance: new_instance,
            report: report.clone(),
        });
        Ok(ReloadOutcome::Reloaded(report))
    }

    /// Publishes a failure found outside [`ReloadablePlugin::reload`] (a watcher
    /// that gave up waiting for a file to be complete).
    pub(crate) fn report_rollback(&self, error: &ReloadError) {
        self.host.events().publish_with(|| Event::ReloadRolledBack {
            instance: self.current().instance_id(),
            generation: error.serving,
            step: error.step,
            error: error.message.clone(),
        });
    }

    /// The host this plugin was loaded by.
    pub fn host(&self) -> &Arc<Host> {
        &self.host
    }
}
