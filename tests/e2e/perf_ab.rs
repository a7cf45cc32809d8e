//! `ax perf ab` through the real binary, on real builds of `fixture-perf-ab`
//! that differ by how much work a call does (`ax_e2e::perf_ab_variant`, release
//! builds).
//!
//! The quick tests check the command's contract: JSON fields, exit statuses,
//! Markdown, bad input. `perf_goals` (ignored; run by `scripts/perf-goals`,
//! which `scripts/test` calls) measures issue 14's goals under a background
//! load that switches on and off at random every 0.3–0.7 s, and prints the
//! counts: the same build against itself, a 10 % slower build, and a 1 %
//! slower build on a quiet machine; and, for comparison, stored reports of the
//! same build under the same load through `ax perf compare`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use ax_e2e::{Output, assert_one_error, ax, perf_ab_variant, run};
use serde_json::Value;

/// Rounds of the mixer per call: about 40 µs in a release build (180 µs in
/// a debug one), so that the loop is nearly all of a call and "1 % more
/// rounds" is about 1 % per call (at 4 000 rounds the call's fixed cost made
/// it 0.8 %).
const INPUT: &str = r#"{"n":16000}"#;

fn path(p: &Path) -> &str {
    p.to_str().expect("paths are UTF-8")
}

fn ab(baseline: &Path, candidate: &Path, extra: &[&str]) -> Output {
    let args = ["perf", "ab", "--no-build", path(baseline), path(candidate), "--method", "mix", "--input", INPUT];
    run(ax().args(args).args(extra))
}

fn json(out: &Output) -> Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {out:?}"))
}

#[test]
fn the_same_build_gets_no_verdict_and_the_json_says_why() {
    let lib = perf_ab_variant(0);
    let out = ab(&lib, &lib, &["--time", "500ms", "--json"]);
    let result = json(&out);
    assert_eq!(result["format"], "ax-perf-ab");
    assert_eq!(result["clock"], "cpu");
    let verdict = result["verdict"].as_str().unwrap();
    assert!(verdict == "no change" || verdict == "inconclusive", "{out:?}");
    assert_eq!(out.code, Some(if verdict == "inconclusive" { 3 } else { 0 }), "{out:?}");
    let ratio = &result["ratio"];
    let (low, estimate, high) =
        (ratio["low"].as_f64().unwrap(), ratio["estimate"].as_f64().unwrap(), ratio["high"].as_f64().unwrap());
    assert!(low <= estimate && estimate <= high && low > 0.9 && high < 1.1, "{out:?}");
    assert!(result["sensitivity"].as_f64().unwrap() > 0.005, "{out:?}");
    let bench = &result["benchmarks"][0];
    assert_eq!(bench["name"], "mix");
    assert!(bench["cpu"]["pairs"].as_u64().unwrap() >= 10, "{out:?}");
    assert_eq!(bench["cpu"]["pairs"], bench["wall"]["pairs"]);
    assert!(bench["wall"]["ratio"]["estimate"].as_f64().is_some(), "{out:?}");
}

#[test]
fn a_slower_build_is_slower_and_fails_the_command() {
    let (base, slow) = (perf_ab_variant(0), perf_ab_variant(10));
    let out = ab(&base, &slow, &["--time", "1s", "--markdown"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stdout.starts_with("| benchmark | pairs | baseline | candidate | change |"), "{out:?}");
    assert!(out.stdout.contains("| `mix` |") && out.stdout.contains("| **slower** |"), "{out:?}");
    // 10 % more rounds of work, less the call's fixed cost that did not grow.
    let ratio = out
        .stdout
        .split_once("Verdict: **slower** (candidate/baseline ")
        .and_then(|(_, rest)| rest.split(',').next())
        .and_then(|r| r.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("a ratio in the verdict: {out:?}"));
    assert!((1.03..=1.12).contains(&ratio), "{ratio} for 10 % more work: {out:?}");

    // The other way round it is faster, and by wall time the verdict says so too.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ab.json");
    let out = ab(&slow, &base, &["--time", "1s", "-o", path(&file)]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.starts_with("benchmark  pairs  baseline"), "the table is printed: {out:?}");
    let result: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(result["verdict"], "faster", "{result}");
    let estimate = result["ratio"]["estimate"].as_f64().unwrap();
    assert!((0.87..0.95).contains(&estimate), "1/1.10 = 0.909: {result}");
}

#[test]
fn isolated_pairs_find_the_slower_build_too() {
    let (base, slow) = (perf_ab_variant(0), perf_ab_variant(10));
    let out = ab(&base, &slow, &["--isolate", "--time", "1s", "--json"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    let result = json(&out);
    assert_eq!(result["verdict"], "slower", "{result}");
    assert!(result["benchmarks"][0]["cpu"]["pairs"].as_u64().unwrap() >= 10, "{result}");
}

#[test]
fn bad_input_gets_one_error_line() {
    let lib = perf_ab_variant(0);
    let lib = path(&lib);
    let cases: [(&[&str], &[&str]); 5] = [
        (&["--method", "mix", "--threshold", "big"], &["--threshold \"big\": not a percentage"]),
        (&["--method", "mix", "--time", "0s"], &["--time \"0s\": expected a duration above zero"]),
        (&["--method", "mix", "--iterations", "0"], &["--iterations 0: expected at least 1 pair"]),
        (&["--method", "mxi"], &["benchmark mxi: the baseline's call failed", "unknown method \"mxi\""]),
        (&[], &["no method given; expected --method METHOD or --calls FILE"]),
    ];
    for (args, fragments) in cases {
        let out = run(ax().args(["perf", "ab", "--no-build", lib, lib]).args(args));
        assert_one_error(&out, fragments);
        assert!(out.stdout.is_empty(), "{out:?}");
    }
    let out = run(ax().args(["perf", "ab", "--no-build", lib, "/nonexistent/b.so", "--method", "mix"]));
    assert_one_error(&out, &["the candidate", "/nonexistent/b.so"]);
}

/// A plugin crate in a fresh git repository: the perf-ab fixture's source,
/// committed, then edited to do 50 % more work per call (not committed).
fn repository_with_a_slower_edit(repo: &Path) -> std::path::PathBuf {
    let krate = repo.join("plugin");
    std::fs::create_dir_all(krate.join("src")).unwrap();
    let sdk = ax_e2e::workspace_root().join("sdk");
    let manifest = format!(
        "[package]\nname = \"against-probe\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
[lib]\ncrate-type = [\"cdylib\"]\n\n[dependencies]\nax-plugin = {{ path = {:?} }}\n\n[workspace]\n",
        sdk.to_str().unwrap()
    );
    std::fs::write(krate.join("Cargo.toml"), manifest).unwrap();
    std::fs::write(krate.join("ax-plugin.toml"), "[plugin]\nname = \"against-probe\"\nversion = \"0.1.0\"\n").unwrap();
    // The workspace's lock file: the same dependency versions, so nothing is fetched.
    std::fs::copy(ax_e2e::workspace_root().join("Cargo.lock"), krate.join("Cargo.lock")).unwrap();
    let source = std::fs::read_to_string(ax_e2e::workspace_root().join("tests/fixtures/perf-ab/src/lib.rs")).unwrap();
    std::fs::write(krate.join("src/lib.rs"), &source).unwrap();
    std::fs::write(repo.join(".gitignore"), "target/\n").unwrap();
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(repo)
            .args(["-c", "user.name=ax", "-c", "user.email=ax@example.invalid"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "the baseline"]);
    let slower = source.replace("n * (100 + EXTRA_PERCENT) / 100", "n * (150 + EXTRA_PERCENT) / 100");
    assert_ne!(slower, source, "the fixture's loop bound moved; update this edit");
    std::fs::write(krate.join("src/lib.rs"), slower).unwrap();
    krate
}

#[test]
fn against_a_revision_builds_it_in_a_cached_worktree() {
    let dir = tempfile::tempdir().unwrap();
    let krate = repository_with_a_slower_edit(dir.path());
    // The candidate builds in the workspace's target directory and the
    // baseline in one kept across test runs: dependencies compile once.
    let target = ax_e2e::workspace_root().join("target");
    let against = |rev: &str| {
        run(ax()
            .env("CARGO_TARGET_DIR", &target)
            .env("AX_AGAINST_TARGET_DIR", target.join("ax-against-test"))
            .args(["perf", "ab", "--against", rev, path(&krate), "--method", "mix", "--input", INPUT])
            .args(["--time", "500ms", "--json"]))
    };
    let out = against("HEAD");
    assert_eq!(out.code, Some(1), "{out:?}");
    let result = json(&out);
    assert_eq!(result["verdict"], "slower", "{result}");
    assert!(result["ratio"]["estimate"].as_f64().unwrap() > 1.2, "{result}");
    assert!(result["baseline"].as_str().unwrap().ends_with("plugin@HEAD"), "{result}");
    let worktrees: Vec<_> = std::fs::read_dir(dir.path().join("target/ax-against")).unwrap().collect();
    assert_eq!(worktrees.len(), 2, "the worktree and the baseline's library: {worktrees:?}");
    // Again: the worktree is reused, and the baseline is not rebuilt.
    let out = against("HEAD");
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(!out.stderr.contains("Compiling against-probe"), "{out:?}");

    let out = against("no-such-rev");
    assert_one_error(&out, &["--against no-such-rev: not a commit of"]);
}

/// Busy threads on every core, switched on and off together at random every
/// 0.3–0.7 s, until dropped.
struct SwitchingLoad {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl SwitchingLoad {
    fn start(seed: u64) -> SwitchingLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let on = Arc::new(AtomicBool::new(false));
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let mut threads: Vec<JoinHandle<()>> = (0..cores)
            .map(|_| {
                let (stop, on) = (stop.clone(), on.clone());
                std::thread::spawn(move || {
                    let mut x = 1u64;
                    while !stop.load(Ordering::Relaxed) {
                        if on.load(Ordering::Relaxed) {
                            for _ in 0..10_000 {
                                x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
                            }
                        } else {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    }
                })
            })
            .collect();
        let switch = stop.clone();
        threads.push(std::thread::spawn(move || {
            let mut state = seed | 1;
            while !switch.load(Ordering::Relaxed) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                on.store(state & 1 == 1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(300 + (state >> 8) % 401));
            }
        }));
        SwitchingLoad { stop, threads }
    }
}

impl Drop for SwitchingLoad {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// A run's verdict and ratio estimate.
type Outcome = (String, f64);

/// Runs `runs` A/B comparisons and returns their verdicts and ratio estimates.
fn ab_runs(base: &Path, candidate: &Path, runs: usize, time: &str) -> Vec<Outcome> {
    (0..runs)
        .map(|_| {
            let out = ab(base, candidate, &["--time", time, "--json"]);
            let result = json(&out);
            (result["verdict"].as_str().unwrap().to_owned(), result["ratio"]["estimate"].as_f64().unwrap())
        })
        .collect()
}

fn count(results: &[Outcome], verdict: &str) -> usize {
    results.iter().filter(|(v, _)| v == verdict).count()
}

fn summary(results: &[Outcome]) -> String {
    let estimates: Vec<String> = results.iter().map(|(_, e)| format!("{e:.3}")).collect();
    format!(
        "slower {}, faster {}, no change {}, inconclusive {}; estimates {}",
        count(results, "slower"),
        count(results, "faster"),
        count(results, "no change"),
        count(results, "inconclusive"),
        estimates.join(" ")
    )
}

/// `runs` pairs of `ax perf run` reports of `lib` (0.5 s each), compared with
/// `ax perf compare --json`; and, when `AX_PERF_GOALS_OLD_AX` names another
/// `ax` binary (an older build), the same reports through its compare, whose
/// verdict is read from its exit status and table.
fn stored_compares(lib: &Path, runs: usize) -> (Vec<Outcome>, Option<Vec<Outcome>>) {
    let dir = tempfile::tempdir().unwrap();
    let old_ax = std::env::var_os("AX_PERF_GOALS_OLD_AX");
    let (mut new, mut old) = (Vec::new(), Vec::new());
    for i in 0..runs {
        let report = |name: &str| {
            let file = dir.path().join(format!("{name}-{i}.json"));
            let args = ["perf", "run", "--no-build", path(lib), "--method", "mix", "--input", INPUT, "--time", "500ms"];
            let out = run(ax().args(args).args(["--json", "-o", path(&file)]));
            assert_eq!(out.code, Some(0), "{out:?}");
            file
        };
        let (base, candidate) = (report("base"), report("new"));
        let out = run(ax().args(["perf", "compare", "--json", path(&base), path(&candidate)]));
        let result = json(&out);
        let ratio = result["benchmarks"][0]["ratio"]["estimate"].as_f64().unwrap();
        new.push((result["verdict"].as_str().unwrap().to_owned(), ratio));
        if let Some(old_ax) = &old_ax {
            let out = run(std::process::Command::new(old_ax).args(["perf", "compare", path(&base), path(&candidate)]));
            let verdict = if out.code == Some(1) {
                "slower"
            } else if out.stdout.contains("slower, 1 faster") {
                "faster"
            } else {
                "no change"
            };
            old.push((verdict.to_owned(), ratio));
        }
    }
    (new, old_ax.map(|_| old))
}

/// Issue 14's goals, measured. Prints the counts; fails when a goal is missed.
#[test]
#[ignore = "slow (about 3 minutes): run by scripts/perf-goals"]
fn perf_goals() {
    let (same, ten, one) = (perf_ab_variant(0), perf_ab_variant(10), perf_ab_variant(1));
    let runs = std::env::var("AX_PERF_GOALS_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(20usize);

    let load_before = load_average();
    let quiet_one = ab_runs(&same, &one, runs / 2, "2s");
    let load_after = load_average();
    eprintln!(
        "perf goals: 1% slower, no added load (load average {load_before:.2} → {load_after:.2}), {} runs of 2 s: {}",
        runs / 2,
        summary(&quiet_one)
    );

    let load = SwitchingLoad::start(14);
    let same_build = ab_runs(&same, &same, runs, "2s");
    eprintln!("perf goals: same build under switching load, {runs} runs: {}", summary(&same_build));
    let ten_slower = ab_runs(&same, &ten, runs, "2s");
    eprintln!("perf goals: 10% slower under switching load, {runs} runs: {}", summary(&ten_slower));
    let stored = stored_compares(&same, runs);
    drop(load);
    eprintln!("perf goals: same build, stored reports under switching load, {runs} compares: {}", summary(&stored.0));
    if let Some(old) = &stored.1 {
        eprintln!("perf goals: the same reports through AX_PERF_GOALS_OLD_AX's compare: {}", summary(old));
    }

    let false_verdicts = count(&same_build, "slower") + count(&same_build, "faster");
    assert_eq!(false_verdicts, 0, "the same build got a verdict: {}", summary(&same_build));
    let false_verdicts = count(&stored.0, "slower") + count(&stored.0, "faster");
    assert_eq!(false_verdicts, 0, "stored reports of the same build got a verdict: {}", summary(&stored.0));
    let found = ten_slower.iter().filter(|(v, e)| v == "slower" && (1.05..=1.15).contains(e)).count();
    assert!(found * 20 >= runs * 19, "10% found (estimate 1.05–1.15) in {found} of {runs} runs");
    // The 1 % goal is for a quiet machine; on one busy with other jobs (a
    // shared CI runner) it is measured and printed, not asserted.
    let cpus = std::thread::available_parallelism().map_or(2, usize::from) as f64;
    let found = count(&quiet_one, "slower");
    if load_before.max(load_after) < 0.5 * cpus {
        assert!(found * 10 >= (runs / 2) * 9, "1% found in {found} of {} runs", runs / 2);
    } else {
        eprintln!(
            "perf goals: the machine was not quiet (load average ≥ {}): the 1% count is not asserted",
            0.5 * cpus
        );
    }
}

/// The 1-minute load average (0 where unreadable).
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}
