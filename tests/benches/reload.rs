//! Hot reload latency: from the moment a new build replaces the library file to
//! the first call answered by the new version, with 1 MiB of state carried,
//! compile time excluded. Measured at a 10 ms debounce and at the default
//! 300 ms, over 50 reloads each, alternating between two builds.
//!
//! In the same run, for scale: the floor of any reload (copy the file and
//! `dlopen` it) and the reload engine alone (no watcher, no debounce), both
//! with the same library and state. The watched rows replace the file as its
//! producer would: a cargo output as cargo does (it removes the old file and
//! hard-links the linker's; the host links it), any other library by a rename
//! over it (the host copies it). They are split where the time goes: file
//! replaced → engine started (the replacement itself, debounce, the watcher
//! waking, the read), the engine (read → new instance serving), serving →
//! first call answered by it.
//!
//! First, start: `ax run --no-build` of the built debug word-count (the whole
//! process), against `ax --version` in the same run, with the library linked
//! (the default for a cargo output) and copied (`AX_LIB_DIR` on another file
//! system, when `/dev/shm` is one), and the startup monitor's phases of each.
//!
//! `cargo bench -p ax-e2e --bench reload`. Not criterion: what is measured is
//! one event per iteration across threads, not a closure. Figures depend on the
//! machine and its load; compare them within one run.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ax_e2e::{library, release_binary, reload_variant, workspace_root};
use ax_runtime::{Event, Host, LibraryWatcher, ReloadOptions, ReloadOutcome, ReloadStep, ReloadablePlugin};
use serde_json::{Value, json};

const RELOADS: usize = 50;
const STATE: usize = 1 << 20;
const LIB_NAME: &str = "libfixture_reload_counter.so";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    // Linear interpolation between closest ranks.
    let rank = p * (sorted.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    let frac = rank - lo as f64;
    sorted[lo].mul_f64(1.0 - frac) + sorted[hi].mul_f64(frac)
}

fn ms(d: Duration) -> String {
    format!("{:8.3} ms", d.as_secs_f64() * 1e3)
}

fn report(name: &str, mut samples: Vec<Duration>, debounce: Option<Duration>) {
    samples.sort_unstable();
    let (p50, p95) = (percentile(&samples, 0.5), percentile(&samples, 0.95));
    let over = debounce.map(|d| format!("  p50 − debounce {}", ms(p50.saturating_sub(d)))).unwrap_or_default();
    println!(
        "{name:<44} n={:<3} min {}  p50 {}  p95 {}  max {}{over}",
        samples.len(),
        ms(samples[0]),
        ms(p50),
        ms(p95),
        ms(*samples.last().unwrap()),
    );
}

fn load(dir: &Path, host: &Arc<Host>, first: &Path) -> Arc<ReloadablePlugin> {
    let live = dir.join(LIB_NAME);
    std::fs::copy(first, &live).unwrap();
    let plugin = ReloadablePlugin::load(host.clone(), &live, "reload-counter", "{}", ReloadOptions::default()).unwrap();
    plugin.call("grow", &json!({ "bytes": STATE })).unwrap();
    Arc::new(plugin)
}

fn version(plugin: &ReloadablePlugin) -> String {
    let out: Value = plugin.call("state_size", &Value::Null).unwrap();
    assert_eq!(out["bytes"], STATE, "the state is carried");
    out["version"].as_str().unwrap().to_owned()
}

/// Replaces `live` with the contents of `with`, returning the instant the
/// replacement began and how long it took. Writing the new build is the
/// build's time and comes before: for a cargo output (`cargo`), the linker's
/// file in `deps/`, which cargo then puts in place (it removes the old file
/// and hard-links the new one); else a sibling, renamed over `live` (as
/// other build tools do atomically).
fn replace(live: &Path, with: &Path, cargo: bool) -> (Instant, Duration) {
    let dir = live.parent().unwrap();
    let built = if cargo { dir.join("deps").join(LIB_NAME) } else { live.with_extension("tmp") };
    if cargo {
        // The linker writes a new file (the old one stays mapped by ax).
        let _ = std::fs::remove_file(&built);
    }
    std::fs::copy(with, &built).unwrap();
    let start = Instant::now();
    if cargo {
        std::fs::remove_file(live).unwrap();
        std::fs::hard_link(&built, live).unwrap();
    } else {
        std::fs::rename(&built, live).unwrap();
    }
    (start, start.elapsed())
}

/// One watched reload, split: replaced → engine started, the engine (read →
/// serving), serving → answered.
struct Watched {
    total: Duration,
    replacing: Duration,
    /// Read and mapped during the debounce (a linked library).
    mapped_ahead: Option<Duration>,
    to_engine: Duration,
    engine: Duration,
    to_answer: Duration,
    steps: Vec<(ReloadStep, Duration)>,
}

/// The median of each engine step over `runs`, as one line.
fn step_medians(runs: &[Vec<(ReloadStep, Duration)>]) -> String {
    let Some(first) = runs.first() else { return String::new() };
    let medians: Vec<String> = first
        .iter()
        .enumerate()
        .map(|(i, (step, _))| {
            let mut times: Vec<Duration> = runs.iter().filter_map(|s| s.get(i)).map(|s| s.1).collect();
            times.sort_unstable();
            format!("{step} {:.3}", percentile(&times, 0.5).as_secs_f64() * 1e3)
        })
        .collect();
    medians.join(" · ")
}

/// `cargo`: the live file is in a directory cargo manages (holding
/// `.cargo-lock`), so the host links it instead of copying it.
fn watched(debounce: Duration, builds: &[(PathBuf, &str); 2], cargo: bool) -> Vec<Watched> {
    let dir = tempfile::tempdir().unwrap();
    if cargo {
        std::fs::write(dir.path().join(".cargo-lock"), "").unwrap();
        std::fs::create_dir(dir.path().join("deps")).unwrap();
    }
    let host = Arc::new(Host::new().unwrap());
    let plugin = load(dir.path(), &host, &builds[0].0);
    let live = dir.path().join(LIB_NAME);
    // Subscribers run on the publishing thread: these instants are exact.
    let seen = Arc::new(std::sync::Mutex::new(Vec::<(Instant, Event)>::new()));
    let sink = seen.clone();
    host.events().subscribe(move |e| {
        if matches!(e, Event::ReloadStarted { .. } | Event::ReloadSucceeded { .. }) {
            sink.lock().unwrap().push((Instant::now(), e.clone()));
        }
    });
    let _watcher = LibraryWatcher::spawn(plugin.clone(), &live, debounce).unwrap();
    let mut samples = Vec::with_capacity(RELOADS);
    for i in 0..RELOADS {
        let (lib, expected) = &builds[(i + 1) % 2];
        seen.lock().unwrap().clear();
        let (start, replacing) = replace(&live, lib, cargo);
        // Poll gently: a caller spinning on two cores would steal the watcher's CPU.
        while version(&plugin) != *expected {
            assert!(start.elapsed() < Duration::from_secs(30), "reload {i} never served {expected}");
            std::thread::sleep(Duration::from_micros(100));
        }
        let total = start.elapsed();
        let answered = start + total;
        // The success event comes after the old instance's shutdown: wait for it.
        let deadline = Instant::now() + Duration::from_secs(10);
        let (started, report) = loop {
            let events = seen.lock().unwrap();
            let started = events.iter().find(|(_, e)| matches!(e, Event::ReloadStarted { .. })).map(|(t, _)| *t);
            let report = events.iter().find_map(|(_, e)| match e {
                Event::ReloadSucceeded { report, .. } => Some(report.clone()),
                _ => None,
            });
            if let (Some(started), Some(report)) = (started, report) {
                break (started, report);
            }
            drop(events);
            assert!(Instant::now() < deadline, "reload {i}: no ReloadStarted/ReloadSucceeded events");
            std::thread::sleep(Duration::from_millis(1));
        };
        // ReloadStarted is published after the read step.
        let read = report.steps.iter().find(|(s, _)| *s == ReloadStep::Read).map_or(Duration::ZERO, |(_, d)| *d);
        let engine_start = started - read;
        let serving = engine_start + report.duration;
        samples.push(Watched {
            total,
            replacing,
            mapped_ahead: report.mapped_ahead,
            to_engine: engine_start.saturating_duration_since(start),
            engine: report.duration,
            to_answer: answered.saturating_duration_since(serving),
            steps: report.steps.clone(),
        });
    }
    let stats = host.load_stats();
    assert_eq!(stats.linked > 0, cargo && linkable(dir.path()), "{stats:?}");
    samples
}

/// Whether the host links libraries in `dir`: it is on the file system of the
/// per-user runtime directory.
fn linkable(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let runtime = std::env::var_os("XDG_RUNTIME_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    std::fs::metadata(dir).unwrap().dev() == std::fs::metadata(runtime).unwrap().dev()
}

/// Copies of `builds` in directories cargo would manage (each holds `.cargo-lock`).
fn in_cargo_dirs(builds: &[(PathBuf, &'static str); 2], root: &Path) -> [(PathBuf, &'static str); 2] {
    builds.clone().map(|(lib, name)| {
        let dir = root.join(name).join("release");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(".cargo-lock"), "").unwrap();
        let out = dir.join(LIB_NAME);
        std::fs::copy(lib, &out).unwrap();
        (out, name)
    })
}

/// Gives `lib` a new inode with the same contents, as a new build would
/// (`dlopen` recognises an image it mapped by its inode).
fn rebuilt(lib: &Path) {
    let tmp = lib.with_extension("new");
    std::fs::copy(lib, &tmp).unwrap();
    std::fs::rename(&tmp, lib).unwrap();
}

fn p50(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    percentile(&samples, 0.5)
}

/// `ax run --no-build` of the built debug word-count, whole process, against
/// `ax --version`; linked and copied; and the startup phases of each.
fn start(smoke: bool) {
    let ax = release_binary("ax");
    library("word-count");
    let krate = workspace_root().join("examples/word-count");
    let shm = Path::new("/dev/shm");
    let copy_root = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }.unwrap();
    let run = |copy: bool, profile: Option<&Path>| {
        let mut cmd = std::process::Command::new(ax);
        cmd.arg("run").arg("--no-build").arg(&krate).args(["count", r#"{"text":"a b c"}"#]);
        cmd.env_remove("AX_LOG").env_remove("AX_PROFILE").stdout(std::process::Stdio::null());
        if copy {
            cmd.env("AX_LIB_DIR", copy_root.path().join("libs"));
        }
        if let Some(out) = profile {
            // Without its "profile: … written" line on stderr.
            cmd.arg("--profile-out").arg(out).stderr(std::process::Stdio::null());
        }
        let start = Instant::now();
        let status = cmd.status().unwrap();
        let elapsed = start.elapsed();
        assert!(status.success(), "ax run failed");
        elapsed
    };
    let version = || {
        let start = Instant::now();
        let status = std::process::Command::new(ax).arg("--version").stdout(std::process::Stdio::null()).status();
        assert!(status.unwrap().success());
        start.elapsed()
    };
    let rounds = if smoke { 3 } else { 30 };
    for _ in 0..3 {
        run(false, None);
        run(true, None);
    }
    let (mut base, mut linked, mut copied) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        base.push(version());
        linked.push(run(false, None));
        copied.push(run(true, None));
    }
    let (base, linked, copied) = (p50(base), p50(linked), p50(copied));
    println!("start: `ax run --no-build` of the debug word-count, whole process, p50 of {rounds} (interleaved):");
    println!("  ax --version                  {}", ms(base));
    println!(
        "  ax run, library linked        {}  {:.2}× ax --version",
        ms(linked),
        linked.as_secs_f64() / base.as_secs_f64()
    );
    println!(
        "  ax run, library copied        {}  {:.2}× ax --version",
        ms(copied),
        copied.as_secs_f64() / base.as_secs_f64()
    );
    // The startup monitor's phases (a profiled run), medians.
    let profile_dir = tempfile::tempdir().unwrap();
    for (name, copy) in [("linked", false), ("copied", true)] {
        let mut phases: Vec<(String, Vec<Duration>)> = Vec::new();
        for i in 0..rounds.min(10) {
            let out = profile_dir.path().join(format!("{name}-{i}.json"));
            run(copy, Some(&out));
            let profile: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
            for phase in profile["startup"]["phases"].as_array().unwrap() {
                let phase_name = phase["phase"].as_str().unwrap().to_owned();
                let d = Duration::from_nanos(phase["duration_ns"].as_u64().unwrap());
                match phases.iter_mut().find(|(n, _)| *n == phase_name) {
                    Some((_, times)) => times.push(d),
                    None => phases.push((phase_name, vec![d])),
                }
            }
        }
        let line: Vec<String> =
            phases.into_iter().map(|(n, t)| format!("{n} {:.2}", p50(t).as_secs_f64() * 1e3)).collect();
        println!("  startup phases, {name} (ms, p50): {}", line.join(" · "));
    }
    println!();
}

/// The two builds as `strip --strip-debug` leaves them (a release plugin as
/// usually shipped), in `dir`; `None` without binutils' `strip`.
fn stripped(builds: &[(PathBuf, &'static str); 2], dir: &Path) -> Option<[(PathBuf, &'static str); 2]> {
    let strip = |(lib, name): &(PathBuf, &'static str)| {
        let out = dir.join(name).join(LIB_NAME);
        std::fs::create_dir_all(out.parent()?).ok()?;
        let status = std::process::Command::new("strip").arg("--strip-debug").arg(lib).arg("-o").arg(&out).status();
        status.ok()?.success().then_some((out, *name))
    };
    Some([strip(&builds[0])?, strip(&builds[1])?])
}

/// Every row for one pair of builds.
fn rows(builds: &[(PathBuf, &'static str); 2], smoke: bool) {
    let size = std::fs::metadata(&builds[0].0).map(|m| m.len()).unwrap_or(0);
    println!("library {} KiB, state {} KiB, {} reloads per row", size / 1024, STATE / 1024, RELOADS);

    // The floor: copy + dlopen of a fresh path, on the file system the host copies to.
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }.unwrap();
    let floor: Vec<Duration> = (0..RELOADS)
        .map(|i| {
            let copy = dir.path().join(format!("floor-{i}.so"));
            let start = Instant::now();
            std::fs::copy(&builds[i % 2].0, &copy).unwrap();
            // SAFETY: a library of this workspace; it stays mapped, like every plugin image.
            let lib = unsafe { libloading::Library::new(&copy) }.unwrap();
            let elapsed = start.elapsed();
            std::mem::forget(lib);
            elapsed
        })
        .collect();
    report("copy + dlopen (floor)", floor, None);
    // The floor of a link: link + dlopen, on the builds' file system.
    let cargo_root = tempfile::tempdir().unwrap();
    let cargo_builds = in_cargo_dirs(builds, cargo_root.path());
    let links = tempfile::tempdir().unwrap();
    let floor: Vec<Duration> = (0..RELOADS)
        .map(|i| {
            let link = links.path().join(format!("floor-{i}.so"));
            rebuilt(&cargo_builds[i % 2].0);
            let start = Instant::now();
            std::fs::hard_link(&cargo_builds[i % 2].0, &link).unwrap();
            // SAFETY: as above.
            let lib = unsafe { libloading::Library::new(&link) }.unwrap();
            let elapsed = start.elapsed();
            std::mem::forget(lib);
            elapsed
        })
        .collect();
    report("link + dlopen (floor)", floor, None);

    // The engine alone, 1 MiB of state: builds copied, then linked.
    for (how, builds) in [("copied", builds), ("linked", &cargo_builds)] {
        let host = Arc::new(Host::new().unwrap());
        let plugin = load(dir.path(), &host, &builds[0].0);
        let mut steps: Vec<Vec<(ReloadStep, Duration)>> = Vec::new();
        let engine: Vec<Duration> = (0..RELOADS)
            .map(|i| {
                if how == "linked" {
                    rebuilt(&builds[(i + 1) % 2].0);
                }
                let start = Instant::now();
                let outcome = plugin.reload(&builds[(i + 1) % 2].0).unwrap();
                let elapsed = start.elapsed();
                let ReloadOutcome::Reloaded(report) = outcome else { panic!("a new build reloads") };
                steps.push(report.steps);
                elapsed
            })
            .collect();
        let stats = host.load_stats();
        report(&format!("engine reload, 1 MiB state, {how}"), engine, None);
        // Where the engine's time goes: the median of each step.
        println!("  median per step (ms): {}", step_medians(&steps));
        println!("  host: {} linked, {} copied, {} bytes compared", stats.linked, stats.copied, stats.bytes_compared);
    }

    let debounces: &[u64] = if smoke { &[10] } else { &[10, 300] };
    for (&ms_, cargo) in debounces.iter().flat_map(|d| [(d, false), (d, true)]) {
        let debounce = Duration::from_millis(ms_);
        let samples = watched(debounce, builds, cargo);
        let part = |f: fn(&Watched) -> Duration| p50(samples.iter().map(f).collect());
        let (to_engine, engine, to_answer) = (part(|w| w.to_engine), part(|w| w.engine), part(|w| w.to_answer));
        let how = if cargo { "linked, replaced as cargo does" } else { "copied, renamed over" };
        report(
            &format!("file replaced → new code, {ms_} ms, {how}"),
            samples.iter().map(|w| w.total).collect(),
            Some(debounce),
        );
        println!(
            "  p50: replaced → engine started {} (debounce + {}) · engine {} · serving → answered {}",
            ms(to_engine),
            ms(to_engine.saturating_sub(debounce)),
            ms(engine),
            ms(to_answer)
        );
        // Counted in the row from its start: a rename over a file on ext4 first
        // starts writing the new file's blocks out (`auto_da_alloc`).
        println!("  p50 of the replacement itself (the file system's): {}", ms(part(|w| w.replacing)));
        let ahead: Vec<Duration> = samples.iter().filter_map(|w| w.mapped_ahead).collect();
        if !ahead.is_empty() {
            let n = ahead.len();
            println!("  read and mapped during the debounce in {n} of {RELOADS}: p50 {}", ms(p50(ahead)));
        }
        let steps: Vec<_> = samples.iter().map(|w| w.steps.clone()).collect();
        println!("  median per step (ms): {}", step_medians(&steps));
    }
    println!();
}

fn main() {
    // `cargo bench -- --test` (CI's smoke run) skips the slow 300 ms row.
    let smoke = std::env::args().any(|a| a == "--test");
    start(smoke);
    let builds = [(reload_variant("v1", true), "v1"), (reload_variant("v2", true), "v2")];
    println!("release builds with line tables (the workspace's release profile):");
    rows(&builds, smoke);
    let dir = tempfile::tempdir().unwrap();
    match stripped(&builds, dir.path()) {
        Some(stripped) => {
            println!("the same builds, debug info stripped (strip --strip-debug):");
            rows(&stripped, smoke);
        }
        None => println!("(no `strip`: no row for stripped builds in this run)"),
    }
}
