//! Hot reload: state carried across builds, every failure rolled back with the
//! failing step named, no call lost or answered by a half-initialised instance,
//! and a watcher that reloads once per change and sleeps when idle.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ax_e2e::{ax, library, reload_variant, workspace_root};
use ax_runtime::{
    Event, Host, HostOptions, LibraryWatcher, ReloadOptions, ReloadOutcome, ReloadStep, ReloadablePlugin,
};
use serde_json::{Value, json};

const LIB_NAME: &str = "libfixture_reload_counter.so";

/// A live library file in a temporary directory, loaded as generation 1 (variant v1).
struct Setup {
    dir: tempfile::TempDir,
    host: Arc<Host>,
    plugin: Arc<ReloadablePlugin>,
}

impl Setup {
    fn new(options: ReloadOptions) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(reload_variant("v1", false), dir.path().join(LIB_NAME)).unwrap();
        let host = Arc::new(Host::new().unwrap());
        let plugin =
            ReloadablePlugin::load(host.clone(), &dir.path().join(LIB_NAME), "reload-counter", "{}", options).unwrap();
        Setup { dir, host, plugin: Arc::new(plugin) }
    }

    fn live(&self) -> PathBuf {
        self.dir.path().join(LIB_NAME)
    }

    fn count(&self, text: &str) -> Value {
        self.plugin.call("count", &json!({ "text": text })).expect("count is answered")
    }
}

fn reload_events(events: &[Event]) -> (usize, usize) {
    let ok = events.iter().filter(|e| matches!(e, Event::ReloadSucceeded { .. })).count();
    let rolled_back = events.iter().filter(|e| matches!(e, Event::ReloadRolledBack { .. })).count();
    (ok, rolled_back)
}

/// Collects events until `done` holds or `timeout` passes.
fn wait_for(rx: &std::sync::mpsc::Receiver<Event>, timeout: Duration, done: impl Fn(&[Event]) -> bool) -> Vec<Event> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    while !done(&seen) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(event) => seen.push(event),
            Err(_) => break,
        }
    }
    seen
}

/// Keeps collecting for `quiet` more, to see that nothing else happens.
fn and_then_quiet(rx: &std::sync::mpsc::Receiver<Event>, mut seen: Vec<Event>, quiet: Duration) -> Vec<Event> {
    let deadline = Instant::now() + quiet;
    while let Ok(event) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        seen.push(event);
    }
    seen
}

#[test]
fn state_survives_a_reload_and_unchanged_contents_are_skipped() {
    let s = Setup::new(ReloadOptions::default());
    s.plugin.call("grow", &json!({ "bytes": 1000 })).unwrap();
    assert_eq!(s.count("a b"), json!({ "words": 2, "total": 2, "version": "v1" }));

    let ReloadOutcome::Reloaded(report) = s.plugin.reload(&reload_variant("v2", false)).unwrap() else {
        panic!("v2 differs from v1")
    };
    assert_eq!(report.generation, 2);
    assert_eq!(report.state_bytes, 8 + 1000);
    let steps: Vec<ReloadStep> = report.steps.iter().map(|(s, _)| *s).collect();
    use ReloadStep::*;
    assert_eq!(steps, [Read, Load, Init, Drain, SaveState, RestoreState, Swap, ShutdownOld]);
    assert_eq!(report.shutdown_error, None);
    assert_eq!(s.count("c"), json!({ "words": 1, "total": 3, "version": "v2" }));
    assert_eq!(s.plugin.call("state_size", &Value::Null).unwrap()["bytes"], 1000);

    assert_eq!(s.plugin.reload(&reload_variant("v2", false)).unwrap(), ReloadOutcome::Unchanged);
    assert_eq!(s.plugin.generation(), 2);
}

#[test]
fn every_failure_rolls_back_and_names_the_step() {
    let s = Setup::new(ReloadOptions { init_timeout: Duration::from_millis(300), ..ReloadOptions::default() });
    let events = s.host.events().channel();
    s.count("a");
    let not_a_library = workspace_root().join("tests/fixtures/not-a-library.so");
    let cases: [(PathBuf, ReloadStep, &str); 5] = [
        (reload_variant("panic-init", false), ReloadStep::Init, "variant panic-init panics in init"),
        (reload_variant("refuse-state", false), ReloadStep::RestoreState, "refuses every state"),
        (reload_variant("slow-init", false), ReloadStep::Init, "did not finish within 300ms"),
        (
            library("fixture-wrong-abi").to_owned(),
            ReloadStep::Load,
            &format!("plugin ABI version 999, expected {}", ax_abi::ABI_VERSION),
        ),
        (not_a_library, ReloadStep::Read, "not a loadable plugin library"),
    ];
    for (i, (lib, step, message)) in cases.iter().enumerate() {
        let err = s.plugin.reload(lib).unwrap_err();
        assert_eq!(err.step, *step, "{err}");
        assert!(err.message.contains(message), "{err}");
        assert!(err.to_string().ends_with("generation 1 keeps serving"), "{err}");
        assert!(!err.transient);
        assert_eq!(s.plugin.generation(), 1);
        assert_eq!(s.count("b"), json!({ "words": 1, "total": i + 2, "version": "v1" }), "the old build serves");
    }
    let seen: Vec<Event> = events.try_iter().collect();
    let steps: Vec<ReloadStep> = seen
        .iter()
        .filter_map(|e| match e {
            Event::ReloadRolledBack { step, generation: 1, .. } => Some(*step),
            _ => None,
        })
        .collect();
    // A file that is not a library never starts a reload: nothing to roll back.
    assert_eq!(steps, [ReloadStep::Init, ReloadStep::RestoreState, ReloadStep::Init, ReloadStep::Load]);

    // The last build that failed to load is not retried until the file changes...
    assert_eq!(s.plugin.reload(library("fixture-wrong-abi")).unwrap(), ReloadOutcome::Unchanged);
    // ...and a good one still goes through afterwards.
    assert!(matches!(s.plugin.reload(&reload_variant("v2", false)).unwrap(), ReloadOutcome::Reloaded(_)));
    assert_eq!(s.count("c")["version"], "v2");
}

#[test]
fn calls_during_reloads_are_all_answered_in_order() {
    let s = Setup::new(ReloadOptions::default());
    let stop = Arc::new(AtomicBool::new(false));
    let callers: Vec<_> = (0..3)
        .map(|_| {
            let (plugin, stop) = (s.plugin.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut totals = Vec::new();
                while !stop.load(Ordering::Relaxed) || totals.len() < 50 {
                    let out = plugin.call("count", &json!({ "text": "w" })).expect("no call is lost");
                    totals.push(out["total"].as_u64().unwrap());
                }
                totals
            })
        })
        .collect();
    let variants = [reload_variant("v2", false), reload_variant("v1", false)];
    for i in 0..6 {
        let outcome = s.plugin.reload(&variants[i % 2]).unwrap();
        assert!(matches!(outcome, ReloadOutcome::Reloaded(_)));
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for caller in callers {
        let totals = caller.join().unwrap();
        assert!(totals.windows(2).all(|w| w[0] < w[1]), "each caller sees the total grow");
        all.extend(totals);
    }
    all.sort_unstable();
    let expected: Vec<u64> = (1..=all.len() as u64).collect();
    assert_eq!(all, expected, "every count landed exactly once, across 6 reloads");
    assert_eq!(s.plugin.generation(), 7);
}

fn write_in_chunks(from: &Path, to: &Path, chunks: usize, pause: Duration) {
    use std::io::Write;
    let bytes = std::fs::read(from).unwrap();
    let mut file = std::fs::File::create(to).unwrap(); // truncates, like cp
    for chunk in bytes.chunks(bytes.len().div_ceil(chunks)) {
        file.write_all(chunk).unwrap();
        file.flush().unwrap();
        std::thread::sleep(pause);
    }
}

#[test]
fn a_chunked_copy_reloads_exactly_once() {
    let s = Setup::new(ReloadOptions::default());
    let events = s.host.events().channel();
    let _watcher = LibraryWatcher::spawn(s.plugin.clone(), &s.live(), Duration::from_millis(100)).unwrap();
    write_in_chunks(&reload_variant("v2", false), &s.live(), 4, Duration::from_millis(15));
    let seen = wait_for(&events, Duration::from_secs(10), |e| reload_events(e).0 > 0);
    let seen = and_then_quiet(&events, seen, Duration::from_millis(500));
    assert_eq!(reload_events(&seen), (1, 0), "{seen:#?}");
    assert_eq!(s.count("x")["version"], "v2");
}

#[test]
fn a_copy_caught_half_written_is_waited_for_not_reported() {
    let s = Setup::new(ReloadOptions::default());
    let events = s.host.events().channel();
    // No debounce: the watcher looks while the file is still being written.
    let _watcher = LibraryWatcher::spawn(s.plugin.clone(), &s.live(), Duration::ZERO).unwrap();
    write_in_chunks(&reload_variant("v2", false), &s.live(), 5, Duration::from_millis(30));
    let seen = wait_for(&events, Duration::from_secs(10), |e| reload_events(e).0 > 0);
    let seen = and_then_quiet(&events, seen, Duration::from_millis(300));
    assert_eq!(reload_events(&seen), (1, 0), "{seen:#?}");
}

#[test]
fn a_cargo_style_replacement_never_leaves_a_moment_without_service() {
    let s = Setup::new(ReloadOptions::default());
    let events = s.host.events().channel();
    let _watcher = LibraryWatcher::spawn(s.plugin.clone(), &s.live(), Duration::from_millis(50)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let caller = {
        let (plugin, stop) = (s.plugin.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut versions = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let out = plugin.call("count", &json!({ "text": "w" })).expect("always served");
                versions.push(out["version"].as_str().unwrap().to_owned());
            }
            versions
        })
    };
    // What cargo does: unlink the old file, hard-link the new one in its place.
    // (The build first: building the variant can take longer than the watcher
    // waits for a missing file.)
    let v2 = reload_variant("v2", false);
    std::thread::sleep(Duration::from_millis(20));
    std::fs::remove_file(s.live()).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    std::fs::hard_link(v2, s.live()).unwrap();
    let seen = wait_for(&events, Duration::from_secs(10), |e| reload_events(e).0 > 0);
    let seen = and_then_quiet(&events, seen, Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let versions = caller.join().unwrap();
    assert_eq!(reload_events(&seen), (1, 0), "{seen:#?}");
    let first_v2 = versions.iter().position(|v| v == "v2").expect("v2 served in the end");
    assert!(versions[..first_v2].iter().all(|v| v == "v1") && versions[first_v2..].iter().all(|v| v == "v2"));
}

#[test]
fn rapid_writes_collapse_into_one_reload_and_a_touch_into_none() {
    let s = Setup::new(ReloadOptions::default());
    let events = s.host.events().channel();
    let _watcher = LibraryWatcher::spawn(s.plugin.clone(), &s.live(), Duration::from_millis(150)).unwrap();
    for _ in 0..5 {
        std::fs::copy(reload_variant("v2", false), s.live()).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    let seen = wait_for(&events, Duration::from_secs(10), |e| reload_events(e).0 > 0);
    let seen = and_then_quiet(&events, seen, Duration::from_millis(400));
    assert_eq!(reload_events(&seen), (1, 0), "{seen:#?}");

    // Same contents written again: no reload at all.
    std::fs::copy(reload_variant("v2", false), s.live()).unwrap();
    let seen = and_then_quiet(&events, Vec::new(), Duration::from_millis(500));
    assert!(!seen.iter().any(|e| matches!(e, Event::ReloadStarted { .. })), "{seen:#?}");
    assert_eq!(s.plugin.generation(), 2);
}

/// utime + stime, in clock ticks, of the process's threads whose name starts with one of `names`.
#[cfg(target_os = "linux")]
fn cpu_ticks_of_threads(names: &[&str], only: &[String]) -> u64 {
    let mut ticks = 0;
    for entry in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let tid = entry.file_name().to_string_lossy().into_owned();
        if !only.contains(&tid) {
            continue;
        }
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if !names.iter().any(|n| comm.starts_with(n)) {
            continue;
        }
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // Fields after the parenthesised name: state is field 3, utime 14, stime 15.
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after.split_whitespace().collect();
        ticks += fields.get(11).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
        ticks += fields.get(12).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    }
    ticks
}

#[cfg(target_os = "linux")]
#[test]
fn an_idle_watcher_uses_no_cpu_even_without_debounce() {
    let tids = || -> Vec<String> {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    let s = Setup::new(ReloadOptions::default());
    let before = tids();
    let _watcher = LibraryWatcher::spawn(s.plugin.clone(), &s.live(), Duration::ZERO).unwrap();
    let ours: Vec<String> = tids().into_iter().filter(|t| !before.contains(t)).collect();
    let names = ["ax-reload-watch", "notify-rs"];
    let start = cpu_ticks_of_threads(&names, &ours);
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks_of_threads(&names, &ours) - start;
    assert!(used <= 1, "the idle watcher used {used} clock ticks in 1 s");
}

/// A directory that cargo manages (it holds cargo's `.cargo-lock`), with v1
/// in it, and a host whose private paths are on the same file system.
struct CargoDir {
    dir: tempfile::TempDir,
    host: Arc<Host>,
}

impl CargoDir {
    fn new(lib_root: Option<PathBuf>) -> CargoDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("debug")).unwrap();
        std::fs::write(dir.path().join("debug/.cargo-lock"), "").unwrap();
        std::fs::copy(reload_variant("v1", false), dir.path().join("debug").join(LIB_NAME)).unwrap();
        let lib_root = lib_root.unwrap_or_else(|| dir.path().join("libs"));
        let host =
            Arc::new(Host::with_options(HostOptions { lib_root: Some(lib_root), ..HostOptions::default() }).unwrap());
        CargoDir { dir, host }
    }

    fn live(&self) -> PathBuf {
        self.dir.path().join("debug").join(LIB_NAME)
    }

    /// Replaces the library as cargo does: a new file, linked into place after the old name is removed.
    fn rebuild(&self, variant: &str) {
        self.replace_with(&reload_variant(variant, false));
    }

    /// [`CargoDir::rebuild`] with the contents of `build`.
    fn replace_with(&self, build: &Path) {
        let new = self.dir.path().join("new.so");
        std::fs::copy(build, &new).unwrap();
        std::fs::remove_file(self.live()).unwrap();
        std::fs::hard_link(&new, self.live()).unwrap();
        std::fs::remove_file(&new).unwrap();
    }

    /// v1 loaded from a new cargo directory, its events, and a watcher with `debounce`.
    fn watched(
        debounce: Duration,
    ) -> (CargoDir, Arc<ReloadablePlugin>, std::sync::mpsc::Receiver<Event>, LibraryWatcher) {
        let c = CargoDir::new(None);
        let plugin = Arc::new(c.load());
        let events = c.host.events().channel();
        let watcher = LibraryWatcher::spawn(plugin.clone(), &c.live(), debounce).unwrap();
        (c, plugin, events, watcher)
    }

    /// Waits until the host has linked `n` libraries.
    fn wait_until_linked(&self, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.host.load_stats().linked < n {
            assert!(Instant::now() < deadline, "{n} never linked: {:?}", self.host.load_stats());
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn load(&self) -> ReloadablePlugin {
        ReloadablePlugin::load(self.host.clone(), &self.live(), "reload-counter", "{}", ReloadOptions::default())
            .unwrap()
    }
}

/// Whether a file with this inode is mapped into this process.
fn mapped_inode(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let ino = std::fs::metadata(path).unwrap().ino().to_string();
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    // Fields: address perms offset dev inode path.
    maps.lines().any(|line| line.split_whitespace().nth(4) == Some(ino.as_str()))
}

fn version_of(plugin: &ReloadablePlugin) -> Value {
    plugin.call("count", &json!({ "text": "a" })).unwrap()["version"].clone()
}

#[test]
fn a_cargo_output_is_linked_and_a_reload_through_a_link_serves_the_new_code() {
    let c = CargoDir::new(None);
    let plugin = c.load();
    assert_eq!(version_of(&plugin), "v1");
    let stats = c.host.load_stats();
    assert_eq!((stats.linked, stats.copied), (1, 0), "{stats:?}");
    assert!(mapped_inode(&c.live()), "the mapped image is the build's own file, not a copy");

    c.rebuild("v2");
    let ReloadOutcome::Reloaded(report) = plugin.reload(&c.live()).unwrap() else { panic!("v2 differs from v1") };
    assert_eq!(report.generation, 2);
    assert_eq!(version_of(&plugin), "v2");
    let stats = c.host.load_stats();
    assert_eq!((stats.linked, stats.copied), (2, 0), "{stats:?}");
    assert!(mapped_inode(&c.live()));
}

#[test]
fn an_unchanged_library_is_recognised_without_reading_it() {
    let c = CargoDir::new(None);
    // Built a while ago: an mtime of just now is "racy" and compared anyway.
    let file = std::fs::File::options().write(true).open(c.live()).unwrap();
    file.set_modified(std::time::SystemTime::now() - Duration::from_secs(60)).unwrap();
    drop(file);
    let plugin = c.load();
    assert_eq!(plugin.reload(&c.live()).unwrap(), ReloadOutcome::Unchanged);
    assert_eq!(c.host.load_stats().bytes_compared, 0, "same file, size and mtime: nothing read");

    // Touched: same bytes, new mtime; compared, still unchanged.
    let file = std::fs::File::options().write(true).open(c.live()).unwrap();
    file.set_modified(std::time::SystemTime::now() + Duration::from_secs(5)).unwrap();
    drop(file);
    assert_eq!(plugin.reload(&c.live()).unwrap(), ReloadOutcome::Unchanged);
    let len = std::fs::metadata(c.live()).unwrap().len();
    assert_eq!(c.host.load_stats().bytes_compared, 2 * len, "both files read once, whole");

    // Another build: a new file of another size is a change without comparing
    // anything; of the same size, compared until the first difference, which
    // in two builds is in their first kilobyte (the ELF build id): 4 KiB each.
    c.rebuild("v2");
    let before = c.host.load_stats().bytes_compared;
    assert!(matches!(plugin.reload(&c.live()).unwrap(), ReloadOutcome::Reloaded(_)));
    let (old, new) = (std::fs::read(reload_variant("v1", false)).unwrap(), std::fs::read(c.live()).unwrap());
    let compared = c.host.load_stats().bytes_compared - before;
    if old.len() != new.len() {
        assert_eq!(compared, 0);
    } else if old[..4096] != new[..4096] {
        assert_eq!(compared, 2 * 4096, "stopped at the first 4 KiB, which differ");
    }
    assert_eq!(c.host.load_stats().linked, 2);
}

#[test]
fn across_file_systems_the_library_is_copied() {
    use std::os::unix::fs::MetadataExt as _;
    let shm = Path::new("/dev/shm");
    let Ok(other) = tempfile::tempdir_in(shm) else {
        eprintln!("skipped: no /dev/shm");
        return;
    };
    let c = CargoDir::new(Some(other.path().join("libs")));
    if std::fs::metadata(other.path()).unwrap().dev() == std::fs::metadata(c.dir.path()).unwrap().dev() {
        eprintln!("skipped: /dev/shm and the temp dir are one file system here");
        return;
    }
    let plugin = c.load();
    assert_eq!(version_of(&plugin), "v1");
    c.rebuild("v2");
    assert!(matches!(plugin.reload(&c.live()).unwrap(), ReloadOutcome::Reloaded(_)));
    assert_eq!(version_of(&plugin), "v2");
    let stats = c.host.load_stats();
    assert_eq!((stats.linked, stats.copied), (0, 2), "{stats:?}");
    assert!(!mapped_inode(&c.live()));
}

#[test]
fn on_a_desktop_a_cargo_output_is_linked_beside_it_never_through_a_planted_link() {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    // A desktop: the per-user runtime directory and /dev/shm are memory, the
    // project on disk, so neither can hold a link to its cargo output.
    let Ok(runtime) = tempfile::tempdir_in("/dev/shm") else {
        eprintln!("skipped: no /dev/shm");
        return;
    };
    std::fs::set_permissions(runtime.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let c = CargoDir::new(None);
    if std::fs::metadata(runtime.path()).unwrap().dev() == std::fs::metadata(c.dir.path()).unwrap().dev() {
        eprintln!("skipped: /dev/shm and the temp dir are one file system here");
        return;
    }
    let run = || {
        let out = ax()
            .arg("run")
            .arg(c.live())
            .args(["count", r#"{"text":"a b"}"#])
            .env("XDG_RUNTIME_DIR", runtime.path())
            .env_remove("AX_LIB_DIR")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains(r#""version":"v1""#));
    };
    run();
    let links = c.dir.path().join("debug/.ax-links");
    let meta = std::fs::symlink_metadata(&links).expect("linked beside the library, in .ax-links");
    assert!(meta.is_dir() && meta.mode() & 0o777 == 0o700, "{meta:?}");
    assert_eq!(std::fs::read_dir(&links).unwrap().count(), 0, "the process's directory is removed at exit");

    // Planted: `.ax-links` a symbolic link to a directory someone else chose.
    std::fs::remove_dir(&links).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), &links).unwrap();
    run();
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0, "nothing made through the link");
}

#[test]
fn a_library_outside_cargo_is_copied_so_rewriting_it_in_place_is_harmless() {
    let s = Setup::new(ReloadOptions::default());
    assert_eq!(s.count("a")["version"], "v1");
    let stats = s.host.load_stats();
    assert_eq!((stats.linked, stats.copied), (0, 1), "{stats:?}");
    // `cp` onto the file rewrites its inode: the serving image is a copy, untouched.
    std::fs::copy(reload_variant("v2", false), s.live()).unwrap();
    assert_eq!(s.count("a b")["version"], "v1");
    assert!(matches!(s.plugin.reload(&s.live()).unwrap(), ReloadOutcome::Reloaded(_)));
    assert_eq!(s.count("a b")["version"], "v2");
}

#[test]
fn a_linked_library_loaded_again_is_copied_since_dlopen_would_return_the_mapped_image() {
    let c = CargoDir::new(None);
    let plugin = c.load();
    // The same file with a new config: the image must be a new one.
    let outcome = plugin.reconfigure(&c.live(), r#"{"again":true}"#).unwrap();
    assert!(matches!(outcome, ReloadOutcome::Reloaded(_)), "{outcome:?}");
    assert_eq!(version_of(&plugin), "v1");
    let stats = c.host.load_stats();
    assert_eq!((stats.linked, stats.copied), (1, 1), "{stats:?}");
}

/// The report of the first reload that succeeded in `events`, if any.
fn succeeded(events: &[Event]) -> Option<&ax_runtime::ReloadReport> {
    events.iter().find_map(|e| match e {
        Event::ReloadSucceeded { report, .. } => Some(report),
        _ => None,
    })
}

#[test]
fn the_watcher_maps_a_cargo_output_during_its_debounce_and_the_reload_takes_it() {
    let (c, plugin, events, _watcher) = CargoDir::watched(Duration::from_millis(300));
    c.rebuild("v2");
    let seen = wait_for(&events, Duration::from_secs(10), |e| reload_events(e) != (0, 0));
    let report = succeeded(&seen).unwrap_or_else(|| panic!("{seen:#?}"));
    let ahead = report.mapped_ahead.expect("read and mapped during the debounce");
    assert!(report.to_string().contains("read and mapped ahead in"), "{report}");
    // The reload itself only checked that the file is still the one mapped.
    let load = report.steps.iter().find(|(step, _)| *step == ReloadStep::Load).unwrap().1;
    assert!(load < ahead, "load {load:?} after mapping ahead in {ahead:?}");
    assert_eq!(version_of(&plugin), "v2");
    let stats = c.host.load_stats();
    assert_eq!((stats.linked, stats.copied), (2, 0), "{stats:?}");
}

#[test]
fn a_build_replaced_after_it_was_mapped_ahead_is_not_the_one_reloaded() {
    let (c, plugin, events, _watcher) = CargoDir::watched(Duration::from_millis(400));
    c.rebuild("v2");
    // Mapped ahead 10 ms after the change; the reload would come at 400 ms.
    c.wait_until_linked(2);
    // v1 again, as the build serving: the debounce ends with nothing to reload.
    c.rebuild("v1");
    let seen = and_then_quiet(&events, Vec::new(), Duration::from_millis(800));
    assert!(!seen.iter().any(|e| matches!(e, Event::ReloadStarted { .. })), "{seen:#?}");
    assert_eq!((plugin.generation(), version_of(&plugin)), (1, json!("v1")));
}

#[test]
fn a_reload_asked_for_during_the_debounce_takes_the_build_mapped_ahead() {
    // As `ax dev` does: it reloads as soon as its build returns.
    let (c, plugin, events, _watcher) = CargoDir::watched(Duration::from_millis(400));
    c.rebuild("v2");
    c.wait_until_linked(2);
    let ReloadOutcome::Reloaded(report) = plugin.reload(&c.live()).unwrap() else { panic!("v2 differs from v1") };
    assert!(report.mapped_ahead.is_some(), "{report}");
    assert_eq!(version_of(&plugin), "v2");
    // Linked once, not copied for a second mapping; and the debounce's end finds nothing new.
    let seen = and_then_quiet(&events, Vec::new(), Duration::from_millis(800));
    assert_eq!(reload_events(&seen), (1, 0), "{seen:#?}");
    let stats = c.host.load_stats();
    assert_eq!((stats.linked, stats.copied), (2, 0), "{stats:?}");
}

#[test]
fn a_build_that_fails_to_load_when_mapped_ahead_rolls_back_at_the_load() {
    let (c, plugin, events, _watcher) = CargoDir::watched(Duration::from_millis(100));
    c.replace_with(library("fixture-wrong-abi"));
    let seen = wait_for(&events, Duration::from_secs(10), |e| reload_events(e) != (0, 0));
    let rolled_back = seen.iter().find_map(|e| match e {
        Event::ReloadRolledBack { step, error, .. } => Some((*step, error.clone())),
        _ => None,
    });
    let (step, error) = rolled_back.unwrap_or_else(|| panic!("{seen:#?}"));
    assert_eq!(step, ReloadStep::Load);
    assert!(error.contains(&format!("plugin ABI version 999, expected {}", ax_abi::ABI_VERSION)), "{error}");
    assert_eq!((plugin.generation(), version_of(&plugin)), (1, json!("v1")));
}
