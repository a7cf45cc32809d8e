//! Baselines and leak hints as a user meets them in the terminal: `ax perf
//! baseline` saving, comparing and clearing (through `ax perf inspect`'s
//! `p50 vs baseline` column), and the `leaky` fixture profiled by `ax run
//! --profile`: the memory its `remember` keeps is reported with its rate and
//! total, its bounded cache is not.
//!
//! No timing is asserted, only verdicts a 100-fold slowdown or an identical
//! profile cannot miss.

use std::path::Path;

use ax_e2e::{Output, assert_one_error, ax, library, run};
use serde_json::Value;

fn path(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

/// A plugin crate directory for the library `lib`: a manifest naming it.
fn crate_dir(dir: &Path, name: &str, lib: &Path) {
    std::fs::write(
        dir.join("ax-plugin.toml"),
        format!("[plugin]\nname = \"{name}\"\nversion = \"0.1.0\"\nlibrary = \"{}\"\n", path(lib)),
    )
    .unwrap();
}

/// `ax run --profile DIR --calls FILE`, the calls given as JSON lines.
fn profile(dir: &Path, calls: &[String]) -> Output {
    let file = dir.join("calls.jsonl");
    std::fs::write(&file, calls.join("\n") + "\n").unwrap();
    let out = run(ax().args(["run", "--profile", "--no-build", path(dir), "--calls", path(&file)]));
    assert_eq!(out.code, Some(0), "{out:?}");
    out
}

fn inspect(dir: &Path) -> String {
    let out = run(ax().args(["perf", "inspect", path(dir)]));
    assert_eq!(out.code, Some(0), "{out:?}");
    out.stdout
}

fn count_calls(text: &str, n: usize) -> Vec<String> {
    (0..n).map(|_| format!(r#"{{"method":"count","input":{{"text":"{text}"}}}}"#)).collect()
}

/// The inspect row of callsite `name` in the hottest-callsites table.
fn row<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("no row {name:?} in:\n{text}"))
}

#[test]
fn perf_baseline_saves_compares_and_clears() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    crate_dir(dir, "word-count", library("word-count"));
    let baseline = dir.join(".ax/baseline.json");

    let out = run(ax().args(["perf", "baseline", path(dir)]));
    assert_one_error(&out, &[".ax/profile.json", "no profile there to save as the baseline"]);

    profile(dir, &count_calls("a b c", 40));
    let out = run(ax().args(["perf", "baseline", path(dir)]));
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stderr.contains("baseline: ") && out.stderr.contains(".ax/baseline.json"), "{out:?}");
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&baseline).unwrap()).unwrap();
    let profiled: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(".ax/profile.json")).unwrap()).unwrap();
    assert_eq!(saved, profiled, "the baseline is the profile, as it was");

    // The same profile against itself: no change, and no verdict claimed.
    let text = inspect(dir);
    assert!(text.contains("p50 vs baseline") && text.contains("  baseline: taken "), "{text}");
    assert!(row(&text, "count_words").ends_with("±0.0%, not significant"), "{text}");

    // A hundred times the words: count_words is slower, with a test to say so.
    let long = vec!["word"; 300].join(" ");
    profile(dir, &count_calls(&long, 40));
    let text = inspect(dir);
    let words = row(&text, "count_words");
    assert!(words.contains("(p < 0.001)") && words.split_whitespace().any(|w| w.starts_with('+')), "{text}");

    let out = run(ax().args(["perf", "baseline", path(dir), "--clear"]));
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(!baseline.exists());
    assert!(!inspect(dir).contains("p50 vs baseline"));
    let out = run(ax().args(["perf", "baseline", path(dir), "--clear"]));
    assert!(out.code == Some(0) && out.stderr.contains("nothing to clear"), "{out:?}");

    // A broken profile never becomes a baseline.
    std::fs::write(dir.join(".ax/profile.json"), "{\"format\": \"ax-profile\", \"vers").unwrap();
    let out = run(ax().args(["perf", "baseline", path(dir)]));
    assert_one_error(&out, &["truncated profile"]);
    assert!(!baseline.exists());
}

#[test]
fn a_leak_into_state_is_reported_and_a_bounded_cache_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    crate_dir(dir, "leaky", library("fixture-leaky"));

    // A bounded cache alone: it fills, then each miss evicts. Nothing to say.
    let lookups: Vec<String> = (0..2000).map(|k| format!(r#"{{"method":"lookup","input":{{"key":{k}}}}}"#)).collect();
    profile(dir, &lookups);
    let text = inspect(dir);
    assert!(text.contains("kept/call"), "{text}");
    assert!(text.contains("memory kept across calls\nnone grows with the number of calls."), "{text}");

    // Both: remember's log grows by 1200 bytes a call; lookup still keeps nothing more.
    let remembers = (0..2000).map(|i| format!(r#"{{"method":"remember","input":{{"text":"entry {i}"}}}}"#));
    let both: Vec<String> = remembers.zip(lookups).flat_map(|(a, b)| [a, b]).collect();
    profile(dir, &both);
    let text = inspect(dir);
    let section = text.split("memory kept across calls\n").nth(1).and_then(|t| t.split("\n\n").next()).unwrap();
    let warnings: Vec<&str> = section.lines().filter(|l| l.starts_with("warning: ")).collect();
    assert_eq!(warnings.len(), 2, "the method and the span that allocates, nothing else: {text}");
    assert!(
        warnings[0].starts_with("warning: calls of remember: keeps ~1.2 KiB per call; 2.3 MiB after 2,000 calls"),
        "{text}"
    );
    assert!(
        warnings[1].starts_with("warning: remember [") && warnings[1].contains("keeps ~1.2 KiB per call"),
        "{text}"
    );
    assert!(row(&text, "remember").contains("1.2 KiB"), "kept/call column: {text}");

    // Stored in the profile for other readers (the HTML report).
    let profile: Value = serde_json::from_str(&std::fs::read_to_string(dir.join(".ax/profile.json")).unwrap()).unwrap();
    let remember = profile["callsites"].as_array().unwrap().iter().find(|c| c["name"] == "remember").unwrap();
    assert_eq!(remember["kept"]["calls"], 2000);
    assert!(remember["kept"]["bytes"].as_i64().unwrap() >= 2000 * 1200, "{}", remember["kept"]);
    let series = remember["kept"]["series"].as_array().unwrap();
    assert!(series.len() <= 64 && series.last().unwrap()[0] == 2000, "{series:?}");
}
