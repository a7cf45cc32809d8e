//! `ax perf run` and `ax perf compare` as CI would use them: a real plugin
//! benchmarked into a JSON report, reports compared, and every kind of bad
//! input answered with one `error:` line and exit status 1.
//!
//! Nothing here asserts a timing: regressions are made by editing a real
//! report's samples, so the verdicts are deterministic.

use std::path::{Path, PathBuf};

use ax_e2e::{Output, assert_one_error, ax, library, run};
use serde_json::Value;

fn perf(args: &[&str]) -> Output {
    run(ax().arg("perf").args(args))
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

/// Benchmarks word-count's `count` into `dir/base.json`, 200 samples after 20 warmup calls.
fn base_report(dir: &Path) -> (PathBuf, Value) {
    let base = dir.join("base.json");
    let out = perf(&[
        "run",
        "--no-build",
        path(library("word-count")),
        "--method",
        "count",
        "--input",
        r#"{"text":"a b c"}"#,
        "--iterations",
        "200",
        "--warmup",
        "20",
        "--json",
        "-o",
        path(&base),
    ]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.starts_with("benchmark  samples"), "the table is printed too: {out:?}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&base).unwrap()).unwrap();
    (base, report)
}

fn write_json(path: &Path, value: &Value) {
    std::fs::write(path, serde_json::to_string_pretty(value).unwrap()).unwrap();
}

#[test]
fn run_writes_a_report_with_every_sample() {
    let dir = tempfile::tempdir().unwrap();
    let (_, report) = base_report(dir.path());
    assert_eq!(report["format"], "ax-perf");
    assert_eq!(report["version"], 1);
    assert!(report["started_at"].as_str().unwrap().ends_with('Z'));
    assert!(report["machine"]["cpus"].as_u64().unwrap() >= 1);
    let benchmarks = report["benchmarks"].as_array().unwrap();
    assert_eq!(benchmarks.len(), 1);
    let count = &benchmarks[0];
    assert_eq!((&count["name"], &count["method"]), (&Value::from("count"), &Value::from("count")));
    assert_eq!(count["input"]["text"], "a b c");
    assert_eq!(count["warmup_calls"], 20);
    let samples = count["samples_ns"].as_array().unwrap();
    assert_eq!(samples.len(), 200);
    assert!(samples.iter().all(|s| s.as_u64().is_some_and(|ns| ns > 0)));
    let summary = &count["summary"];
    assert_eq!(summary["count"], 200);
    let median = summary["median_ns"].as_f64().unwrap();
    let (p99, min) = (summary["p99_ns"].as_f64().unwrap(), summary["min_ns"].as_f64().unwrap());
    assert!(min <= median && median <= p99, "{summary}");
    let ci = &summary["median_ci_ns"];
    assert!(ci["low"].as_f64().unwrap() <= median && median <= ci["high"].as_f64().unwrap(), "{summary}");
}

#[test]
fn comparing_a_report_with_itself_is_no_change() {
    let dir = tempfile::tempdir().unwrap();
    let (base, _) = base_report(dir.path());
    let out = perf(&["compare", path(&base), path(&base)]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("no change"), "{out:?}");
    // A noisy sample compared with itself may be "unchanged (1 inconclusive)": still no verdict.
    assert!(out.stdout.contains("0 slower, 0 faster, 1 unchanged"), "{out:?}");
    assert!(out.error_lines().is_empty(), "{out:?}");
}

#[test]
fn a_slower_benchmark_fails_compare_and_a_faster_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut report) = base_report(dir.path());
    // A real report, with its samples replaced by a stable made-up workload
    // (10 µs ± 5 %) and then by the same 10 % slower: the call round trip of a
    // debug build can switch between two speeds from one run to the next, which
    // would make a verdict on real samples a timing assertion.
    let (base, slower) = (dir.path().join("stable.json"), dir.path().join("slower.json"));
    for (file, factor) in [(&base, 1.0), (&slower, 1.10)] {
        let samples: Vec<u64> = (0..200u64).map(|i| ((10_000 + (i * 37) % 101 * 10) as f64 * factor) as u64).collect();
        report["benchmarks"][0]["samples_ns"] = Value::from(samples);
        write_json(file, &report);
    }

    let out = perf(&["compare", path(&base), path(&slower), "--markdown"]);
    assert_one_error(&out, &["1 benchmark is slower", "slower.json", "stable.json", "count (+10.00%)"]);
    assert!(out.stdout.starts_with("| benchmark | base median | new median |"), "{out:?}");
    assert!(out.stdout.contains("| `count` |") && out.stdout.contains("| **slower** |"), "{out:?}");

    // The same change, the other way round, is an improvement: exit 0.
    let out = perf(&["compare", path(&slower), path(&base)]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("faster"), "{out:?}");

    // Within a 15 % threshold, the 10 % change does not count.
    let out = perf(&["compare", path(&base), path(&slower), "--threshold", "15%"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("no change"), "{out:?}");
}

#[test]
fn benchmarks_in_one_report_only_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let (base, mut report) = base_report(dir.path());
    report["benchmarks"][0]["name"] = Value::from("count-renamed");
    let renamed = dir.path().join("renamed.json");
    write_json(&renamed, &report);
    let out = perf(&["compare", path(&base), path(&renamed)]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("No benchmark is in both reports."), "{out:?}");
    assert!(out.stdout.contains("Only in base: count.\nOnly in new: count-renamed."), "{out:?}");
}

#[test]
fn a_corrupt_or_foreign_report_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (base, _) = base_report(dir.path());
    let text = std::fs::read_to_string(&base).unwrap();
    let truncated = dir.path().join("truncated.json");
    std::fs::write(&truncated, &text.as_bytes()[..text.len() / 2]).unwrap();
    let out = perf(&["compare", path(&base), path(&truncated)]);
    assert_one_error(&out, &["truncated.json: not valid JSON", "expected an ax-perf report"]);

    let foreign = dir.path().join("foreign.json");
    std::fs::write(&foreign, r#"{"format": "criterion", "benchmarks": []}"#).unwrap();
    let out = perf(&["compare", path(&foreign), path(&base)]);
    assert_one_error(&out, &["foreign.json: not an ax-perf report", r#"expected "format": "ax-perf""#]);

    let future = dir.path().join("future.json");
    std::fs::write(&future, text.replace("\"version\": 1", "\"version\": 7")).unwrap();
    let out = perf(&["compare", path(&base), path(&future)]);
    assert_one_error(&out, &["future.json: ax-perf report version 7; expected version 1"]);

    let out = perf(&["compare", path(&base), path(&dir.path().join("missing.json"))]);
    assert_one_error(&out, &["missing.json: cannot read perf report"]);
}

#[test]
fn each_distinct_line_of_a_calls_file_is_a_benchmark() {
    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("calls.jsonl");
    let short = r#"{"method":"count","input":{"text":"a b c"}}"#;
    let long = r#"{"method":"count","input":{"text":"the quick brown fox jumps over the lazy dog"}}"#;
    std::fs::write(&calls, format!("{short}\n{long}\n\n{short}\n")).unwrap();
    let out = perf(&[
        "run",
        "--no-build",
        path(library("word-count")),
        "--calls",
        path(&calls),
        "--iterations",
        "50",
        "--warmup",
        "5",
        "--json",
    ]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    let benchmarks = report["benchmarks"].as_array().unwrap();
    let names: Vec<&str> = benchmarks.iter().map(|b| b["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["count#1", "count#2"]);
    assert_eq!(benchmarks[1]["input"]["text"], "the quick brown fox jumps over the lazy dog");
    assert!(benchmarks.iter().all(|b| b["samples_ns"].as_array().unwrap().len() == 50));
}

#[test]
fn a_failing_call_keeps_the_benchmarks_measured_and_plugin_logs_stay_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("calls.jsonl");
    let good = r#"{"method":"count","input":{"text":"a b c"}}"#;
    let bad = r#"{"method":"cuont","input":{"text":"a"}}"#;
    let later = r#"{"method":"count","input":{"text":"d e"}}"#;
    std::fs::write(&calls, format!("{good}\n{bad}\n{later}\n")).unwrap();
    let report = dir.path().join("report.json");
    let out = perf(&[
        "run",
        "--no-build",
        path(library("word-count")),
        "--calls",
        path(&calls),
        "--iterations",
        "30",
        "--warmup",
        "2",
        "-o",
        path(&report),
    ]);
    assert_one_error(&out, &["benchmark cuont#2: warmup call 1 failed", "unknown method \"cuont\""]);
    assert!(out.stdout.contains("count#1") && out.stdout.contains("count#3"), "{out:?}");
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let names: Vec<&str> =
        written["benchmarks"].as_array().unwrap().iter().map(|b| b["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["count#1", "count#3"]);
    assert_eq!(written["failed"][0]["name"], "cuont#2");
    assert!(written["benchmarks"][0]["conditions"].is_object(), "{written}");
    assert!(written["benchmarks"][0]["series"]["lag1_autocorrelation"].is_number(), "{written}");
    // No plugin log line inside timed calls, and the header says why.
    assert!(out.stderr.contains("plugin log lines at `warn` while measuring (set AX_LOG to change)"), "{out:?}");
    assert!(!out.stderr.contains("word_count:"), "{out:?}");

    // The report still compares: with itself, nothing changed.
    let out = perf(&["compare", "--json", path(&report), path(&report)]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let result: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(result["verdict"], "no change", "{result}");
}

#[test]
fn other_formats_by_flag_and_by_extension() {
    let dir = tempfile::tempdir().unwrap();
    let lib = path(library("word-count"));
    let input = r#"{"text":"a"}"#;
    let args = ["run", "--no-build", lib, "--method", "count", "--input", input, "--iterations", "30", "--warmup", "0"];
    let out = perf(&[&args[..], &["--csv"]].concat());
    assert_eq!(out.code, Some(0), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].starts_with("benchmark,plugin,method,samples,"), "{out:?}");
    assert!(lines[1].starts_with("count,word_count,count,30,0,"), "{out:?}");

    let md = dir.path().join("report.md");
    let out = perf(&[&args[..], &["-o", path(&md)]].concat());
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(std::fs::read_to_string(&md).unwrap().starts_with("| benchmark | samples | median |"));
}

#[test]
fn bad_input_gets_one_error_line() {
    let lib = path(library("word-count"));
    let cases: [(&[&str], &[&str]); 6] = [
        (&["--method", "count", "--input", "{text"], &["input \"{text\" is not valid JSON", "expected a JSON value"]),
        (&["--method", "count", "--time", "5x"], &["--time: invalid duration \"5x\"", "expected a duration"]),
        (&["--method", "count", "--iterations", "0"], &["--iterations 0: expected at least 1"]),
        (&[], &["no method given; expected --method METHOD or --calls FILE"]),
        (&["--method", "cuont"], &["benchmark cuont: warmup call 1 failed", "unknown method \"cuont\""]),
        (&["--calls", "/nonexistent/calls.jsonl"], &["/nonexistent/calls.jsonl: cannot read calls file"]),
    ];
    for (args, fragments) in cases {
        let out = perf(&[&["run", "--no-build", lib][..], args].concat());
        assert_one_error(&out, fragments);
        assert!(out.stdout.is_empty(), "{out:?}");
    }
    let out = perf(&["run", "--no-build", "/nonexistent/plugin.so", "--method", "count"]);
    assert_one_error(&out, &["/nonexistent/plugin.so"]);

    let out = perf(&["compare", "a.json", "b.json", "--alpha", "2"]);
    assert_one_error(&out, &["--alpha \"2\"", "expected a number between 0 and 1"]);
}
