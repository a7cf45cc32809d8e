//! Hot reload latency: from the moment a new build replaces the library file to
//! the first call answered by the new version, with 1 MiB of state carried,
//! compile time excluded. Measured at a 10 ms debounce and at the default
//! 300 ms, over 50 reloads each, alternating between two builds.
//!
//! In the same run, for scale: the floor of any reload (copy the file and
//! `dlopen` it) and the reload engine alone (no watcher, no debounce), both
//! with the same library and state.
//!
//! `cargo bench -p ax-e2e --bench reload`. Not criterion: what is measured is
//! one event per iteration across threads, not a closure. Figures depend on the
//! machine and its load; compare them within one run.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ax_e2e::reload_variant;
use ax_runtime::{Host, LibraryWatcher, ReloadOptions, ReloadOutcome, ReloadStep, ReloadablePlugin};
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
        "{name:<38} n={:<3} min {}  p50 {}  p95 {}  max {}{over}",
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

/// Replaces `live` atomically (write a sibling, rename over), as build tools do.
/// Returns the instant the rename began: writing the sibling is the build's time,
/// the rename is the replacement (its event fires before the call returns).
fn replace(live: &Path, with: &Path) -> Instant {
    let tmp = live.with_extension("tmp");
    std::fs::copy(with, &tmp).unwrap();
    let start = Instant::now();
    std::fs::rename(&tmp, live).unwrap();
    start
}

fn watched(debounce: Duration, builds: &[(PathBuf, &str); 2]) -> Vec<Duration> {
    let dir = tempfile::tempdir().unwrap();
    let host = Arc::new(Host::new().unwrap());
    let plugin = load(dir.path(), &host, &builds[0].0);
    let live = dir.path().join(LIB_NAME);
    let _watcher = LibraryWatcher::spawn(plugin.clone(), &live, debounce).unwrap();
    let mut samples = Vec::with_capacity(RELOADS);
    for i in 0..RELOADS {
        let (lib, expected) = &builds[(i + 1) % 2];
        let start = replace(&live, lib);
        // Poll gently: a caller spinning on two cores would steal the watcher's CPU.
        while version(&plugin) != *expected {
            assert!(start.elapsed() < Duration::from_secs(30), "reload {i} never served {expected}");
            std::thread::sleep(Duration::from_micros(100));
        }
        samples.push(start.elapsed());
    }
    samples
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

    // The engine alone, 1 MiB of state.
    let host = Arc::new(Host::new().unwrap());
    let plugin = load(dir.path(), &host, &builds[0].0);
    let mut steps: Vec<Vec<(ReloadStep, Duration)>> = Vec::new();
    let engine: Vec<Duration> = (0..RELOADS)
        .map(|i| {
            let start = Instant::now();
            let outcome = plugin.reload(&builds[(i + 1) % 2].0).unwrap();
            let elapsed = start.elapsed();
            let ReloadOutcome::Reloaded(report) = outcome else { panic!("a new build reloads") };
            steps.push(report.steps);
            elapsed
        })
        .collect();
    report("engine reload, 1 MiB state", engine, None);
    // Where the engine's time goes: the median of each step.
    let breakdown: Vec<String> = steps[0]
        .iter()
        .enumerate()
        .map(|(i, (step, _))| {
            let mut times: Vec<Duration> = steps.iter().map(|s| s[i].1).collect();
            times.sort_unstable();
            format!("{step} {:.3}", percentile(&times, 0.5).as_secs_f64() * 1e3)
        })
        .collect();
    println!("  median per step (ms): {}", breakdown.join(" · "));

    let debounces: &[u64] = if smoke { &[10] } else { &[10, 300] };
    for &ms_ in debounces {
        let debounce = Duration::from_millis(ms_);
        report(&format!("file replaced → new code, {ms_} ms"), watched(debounce, builds), Some(debounce));
    }
    println!();
}

fn main() {
    // `cargo bench -- --test` (CI's smoke run) skips the slow 300 ms row.
    let smoke = std::env::args().any(|a| a == "--test");
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
