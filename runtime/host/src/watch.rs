//! [`LibraryWatcher`]: reloads a [`ReloadablePlugin`] when its library file
//! changes on disk.
//!
//! The directory holding the library is watched (with `notify`), not the file:
//! builds replace the file (cargo unlinks and hard-links it; `cp` truncates and
//! writes in chunks), and a watch on the old inode would go quiet. Changes are
//! debounced: a reload starts once the file has been quiet for the debounce
//! time, so a burst of writes becomes one reload. A file found missing or
//! incomplete when the quiet time is over is looked at again shortly (it is
//! probably still being written) instead of being reported as broken. The
//! reload itself skips contents already serving, so touching the file does
//! nothing. The debounce is not idle time: once the file has been quiet for a
//! quarter of it (10 ms at most), the engine reads and maps a library it
//! links, so that the reload at the end starts with its `init`
//! ([`ReloadablePlugin::map_ahead`]).
//!
//! The watcher's thread runs an explicit event loop over [`WatchEvent`] and
//! blocks while idle: no polling, whatever the debounce.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{self as channel, RecvTimeoutError, Sender};
use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{EventKind, RecursiveMode, Watcher};

use crate::reload::ReloadablePlugin;

/// How often to look again at a library found missing or incomplete.
const RETRY_EVERY: Duration = Duration::from_millis(20);
/// How long to keep looking before reporting it.
const RETRY_FOR: Duration = Duration::from_secs(2);

/// What the watcher's loop reacts to.
#[derive(Debug)]
enum WatchEvent {
    /// The library file was written, replaced or removed, seen at this
    /// instant by the notify thread: the quiet time counts from there, not
    /// from when the watcher's thread wakes up.
    Changed(Instant),
    /// The watcher is being dropped.
    Stop,
}

/// Watches a library file and reloads the plugin when it changes. Dropping it
/// stops watching.
pub struct LibraryWatcher {
    events: Sender<WatchEvent>,
    thread: Option<JoinHandle<()>>,
    _watcher: notify::RecommendedWatcher,
}

impl std::fmt::Debug for LibraryWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LibraryWatcher").finish_non_exhaustive()
    }
}

/// Why a watch could not start.
#[derive(Debug, thiserror::Error)]
#[error("{}: cannot watch for changes: {message}", path.display())]
pub struct WatchError {
    pub path: PathBuf,
    pub message: String,
}

impl LibraryWatcher {
    /// Starts watching `library`; reloads `plugin` from it after each change
    /// followed by `debounce` of quiet. Results are published on the host's
    /// event bus (`ReloadStarted`, `ReloadSucceeded`, `ReloadRolledBack`).
    pub fn spawn(
        plugin: Arc<ReloadablePlugin>,
        library: &Path,
        debounce: Duration,
    ) -> Result<LibraryWatcher, WatchError> {
        let watch_error = |message: String| WatchError { path: library.to_owned(), message };
        let library = std::path::absolute(library).map_err(|e| watch_error(e.to_string()))?;
        let dir = library.parent().ok_or_else(|| watch_error("no parent directory".to_owned()))?.to_owned();
        let file_name: OsString = library.file_name().ok_or_else(|| watch_error("no file name".to_owned()))?.into();

        let (tx, rx) = channel::unbounded();
        let notify_tx = tx.clone();
        let mut watcher = notify::recommended_watcher(move |result: notify::Result<notify::Event>| {
            let Ok(event) = result else { return };
            if is_change(&event.kind) && event.paths.iter().any(|p| p.file_name() == Some(file_name.as_os_str())) {
                let _ = notify_tx.send(WatchEvent::Changed(Instant::now()));
            }
        })
        .map_err(|e| watch_error(e.to_string()))?;
        watcher.watch(&dir, RecursiveMode::NonRecursive).map_err(|e| watch_error(e.to_string()))?;

        let thread = std::thread::Builder::new()
            .name("ax-reload-watch".to_owned())
            .spawn(move || {
                precise_timers();
                event_loop(&plugin, &library, debounce, &rx);
            })
            .map_err(|e| watch_error(e.to_string()))?;
        Ok(LibraryWatcher { events: tx, thread: Some(thread), _watcher: watcher })
    }
}

/// Watches a plugin crate's sources — `src/` recursively, `Cargo.toml`,
/// `build.rs` and the plugin's manifest (`ax-plugin.toml`, whose `[config]`
/// a reload can pick up) — and calls a function with the paths of each change
/// (reads do not count). Dropping it stops watching. `ax dev` and the debugger's
/// hot reload rebuild on what it reports.
pub struct SourceWatcher {
    _watcher: notify::RecommendedWatcher,
}

impl std::fmt::Debug for SourceWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceWatcher").finish_non_exhaustive()
    }
}

impl SourceWatcher {
    /// Starts watching the crate in `dir`; `on_change` runs on notify's thread.
    pub fn spawn(dir: &Path, on_change: impl Fn(Vec<PathBuf>) + Send + 'static) -> Result<SourceWatcher, WatchError> {
        let watch_error = |message: String| WatchError { path: dir.to_owned(), message };
        let dir = std::path::absolute(dir).map_err(|e| watch_error(e.to_string()))?;
        let src = dir.join("src");
        let manifests = [dir.join("Cargo.toml"), dir.join("build.rs"), dir.join(crate::manifest::MANIFEST_FILE)];
        let mut watcher = notify::recommended_watcher(move |result: notify::Result<notify::Event>| {
            let Ok(event) = result else { return };
            if matches!(event.kind, EventKind::Access(_)) {
                return;
            }
            let relevant: Vec<PathBuf> =
                event.paths.into_iter().filter(|p| p.starts_with(&src) || manifests.contains(p)).collect();
            if !relevant.is_empty() {
                on_change(relevant);
            }
        })
        .map_err(|e| watch_error(e.to_string()))?;
        watcher
            .watch(&dir.join("src"), RecursiveMode::Recursive)
            .and_then(|()| watcher.watch(&dir, RecursiveMode::NonRecursive))
            .map_err(|e| watch_error(e.to_string()))?;
        Ok(SourceWatcher { _watcher: watcher })
    }
}

impl Drop for LibraryWatcher {
    fn drop(&mut self) {
        let _ = self.events.send(WatchEvent::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Writes, creations, removals and renames count; reads (including ax's own
/// reads of the library) and changes of metadata alone do not: a hard link ax
/// makes to the library changes its link count, `touch` its times, and
/// neither changes what it holds.
/// Lets this thread's timed waits end when asked: the kernel's default timer
/// slack (50 µs) would otherwise be added to every debounce.
fn precise_timers() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_TIMERSLACK takes a plain value (nanoseconds) and changes this thread only.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong);
    }
}

fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(_)) => false,
        _ => true,
    }
}

/// How long the file must have been quiet before the watcher reads and maps
/// it ahead of the reload (see [`ReloadablePlugin::map_ahead`]): a quarter
/// of the debounce, at most 10 ms, so that a file still being written is
/// not read at every write.
fn ahead_after(debounce: Duration) -> Duration {
    (debounce / 4).min(Duration::from_millis(10))
}

fn event_loop(plugin: &ReloadablePlugin, library: &Path, debounce: Duration, rx: &channel::Receiver<WatchEvent>) {
    // When to try a reload, and to map the library ahead of it; `None` while idle.
    let (mut due, mut ahead_due): (Option<Instant>, Option<Instant>) = (None, None);
    // Since when the file has been missing or incomplete.
    let mut unready_since: Option<Instant> = None;
    loop {
        let event = match due.into_iter().chain(ahead_due).min() {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(at) => rx.recv_deadline(at),
        };
        match event {
            Ok(WatchEvent::Changed(at)) => {
                due = Some(at + debounce);
                ahead_due = Some(at + ahead_after(debounce));
            }
            Ok(WatchEvent::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) if due.is_some_and(|at| at > Instant::now()) => {
                ahead_due = None;
                plugin.map_ahead(library);
            }
            Err(RecvTimeoutError::Timeout) => {
                (due, ahead_due) = (None, None);
                match plugin.reload(library) {
                    Err(error) if error.transient => {
                        let since = *unready_since.get_or_insert_with(Instant::now);
                        if since.elapsed() < RETRY_FOR {
                            due = Some(Instant::now() + RETRY_EVERY);
                        } else {
                            unready_since = None;
                            plugin.report_rollback(&error);
                        }
                    }
                    // Success, unchanged, or a failure the engine already published.
                    _ => unready_since = None,
                }
            }
        }
    }
}
