//! Profiling as a user does it: `ax run --profile` on the word-count example,
//! the profile file it writes (where, what it names, whether its figures hold
//! together), merged runs, `ax perf inspect` and `ax perf flamegraph` on it,
//! and bad profile files answered with one `error:` line naming the file.
//!
//! Nothing here asserts a timing: only counts, names and the relations every
//! profile must satisfy (self ≤ total, percentiles ordered).

use std::path::Path;

use ax_e2e::{Output, assert_one_error, ax, library, run};
use ax_runtime::{Host, HostOptions, Instrumentation, ProfileOptions};
use serde_json::{Value, json};

fn path(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

/// Three calls of word-count: 3 + 9 + 3 tokens (`!` is not a word, but is looked at).
const CALLS: &str = r#"{"method":"count","input":{"text":"a b c"}}
{"method":"count","input":{"text":"the quick brown fox jumps over the lazy dog"}}
{"method":"count","input":{"text":"hello, world !"}}
"#;

/// `ax run --profile --no-build LIBRARY --calls CALLS` with `extra` arguments.
fn profiled_run(dir: &Path, lib: &Path, extra: &[&str]) -> Output {
    let calls = dir.join("calls.jsonl");
    std::fs::write(&calls, CALLS).unwrap();
    run(ax().args(["run", "--profile", "--no-build", path(lib), "--calls", path(&calls)]).args(extra))
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn callsite<'a>(profile: &'a Value, kind: &str, name: &str) -> &'a Value {
    profile["callsites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == kind && c["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name:?} in {profile:#}"))
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// The relations every timed object of a profile satisfies.
fn assert_consistent_time(what: &str, count: u64, time: &Value) {
    let (total, own) = (n(&time["total_ns"]), n(&time["self_ns"]));
    assert!(own <= total, "{what}: self {own} > total {total}");
    let ordered = ["min_ns", "p50_ns", "p90_ns", "p95_ns", "p99_ns", "max_ns"].map(|k| n(&time[k]));
    assert!(ordered.windows(2).all(|w| w[0] <= w[1]), "{what}: percentiles out of order: {ordered:?}");
    assert!(n(&time["max_ns"]) <= total && n(&time["mean_ns"]) * count <= total + count, "{what}: {time}");
    let in_histogram: u64 = time["histogram"]["buckets"].as_array().unwrap().iter().map(|b| n(&b[1])).sum();
    assert_eq!(in_histogram, count, "{what}: the histogram holds every interval");
}

#[test]
fn run_profile_names_the_instrumented_functions_with_plausible_figures() {
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("out/profile.json");
    let out = profiled_run(dir.path(), library("word-count"), &["--profile-out", path(&out_file)]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout.lines().count(), 3, "results still go to stdout: {out:?}");
    let said: Vec<&str> = out.stderr.lines().filter(|l| l.starts_with("profile: ")).collect();
    assert_eq!(said.len(), 1, "one line says where: {out:?}");
    assert!(said[0].contains(path(&out_file)) && said[0].contains("3 calls"), "{said:?}");

    let profile = read_json(&out_file);
    assert_eq!((&profile["format"], &profile["version"]), (&Value::from("ax-profile"), &Value::from(1)));
    assert_eq!(profile["runs"], 1);
    assert!(profile["command"].as_str().unwrap().starts_with("ax run --profile --no-build "), "{}", profile["command"]);
    assert_eq!(profile["plugin"]["library"], path(library("word-count")));

    let methods = profile["methods"].as_array().unwrap();
    assert_eq!(methods.len(), 1);
    assert_eq!(
        (&methods[0]["method"], n(&methods[0]["count"]), n(&methods[0]["errors"])),
        (&Value::from("count"), 3, 0)
    );
    assert_consistent_time("method count", 3, &methods[0]["time"]);
    assert!(methods[0]["time"]["cpu_ns"].is_u64(), "calls' CPU time is always measured");

    let count = callsite(&profile, "span", "count");
    let count_words = callsite(&profile, "span", "count_words");
    let is_word = callsite(&profile, "span", "is_word");
    assert_eq!((n(&count["count"]), n(&count_words["count"]), n(&is_word["count"])), (3, 3, 15));
    assert!(count["file"].as_str().unwrap().ends_with("word-count/src/lib.rs"), "{count}");
    assert!(n(&count["line"]) > 0);
    for c in profile["callsites"].as_array().unwrap() {
        if let Some(time) = c.get("time") {
            assert_consistent_time(c["name"].as_str().unwrap(), n(&c["count"]), time);
        }
    }
    // Allocations per span include the children's: count ⊇ count_words ⊇ is_word (none).
    let alloc = |c: &Value| n(&c["alloc_bytes"]);
    assert!(alloc(count) > alloc(count_words) && alloc(count_words) > 0, "{count} {count_words}");
    assert_eq!(alloc(is_word), 0, "is_word allocates nothing");
    // count's own time excludes count_words, which excludes is_word.
    let total = |c: &Value| n(&c["time"]["total_ns"]);
    assert!(total(count) >= total(count_words) && total(count_words) >= total(is_word));
    assert!(n(&count["time"]["self_ns"]) <= total(count) - total(count_words));
    assert_eq!(
        n(&callsite(&profile, "probe", "word_count::WordCount::count")["count"]),
        3,
        "the #PROBE line, hit once a call"
    );

    let stacks: Vec<&str> =
        profile["stacks"].as_array().unwrap().iter().map(|s| s["stack"].as_str().unwrap()).collect();
    assert!(stacks.contains(&"word_count.count;count;count_words;is_word"), "{stacks:?}");

    let phases: Vec<&str> =
        profile["startup"]["phases"].as_array().unwrap().iter().map(|p| p["phase"].as_str().unwrap()).collect();
    assert_eq!(phases, ["read", "copy", "dlopen", "resolve", "init", "first_call"]);
    assert_eq!(profile["startup"]["slowest"].as_array().unwrap().len(), 3);
    assert_eq!(profile["startup"]["thresholds"]["max_total_ns"], 200_000_000, "defaults for a bare library");
}

#[test]
fn the_profiling_switch_records_only_while_on() {
    let host = Host::with_options(HostOptions::default()).unwrap();
    let plugin = host.load_library(library("word-count"), "word-count", "{}").unwrap();
    let input = json!({"text": "a b"});
    plugin.call("count", &input).unwrap();
    let off = plugin.profile();
    assert!(off.methods.is_empty() && off.callsites.is_empty() && off.stacks.is_empty(), "{off:?}");

    plugin.set_instrumentation(Instrumentation {
        profile: Some(ProfileOptions::default()),
        ..Instrumentation::default()
    });
    plugin.call("count", &input).unwrap();
    plugin.call("count", &input).unwrap();
    let on = plugin.profile();
    assert_eq!(on.methods[0].count, 2);
    let count = |name: &str| on.callsites.iter().find(|c| c.name == name).map(|c| c.count);
    assert_eq!((count("count"), count("count_words"), count("is_word")), (Some(2), Some(2), Some(4)));

    plugin.set_instrumentation(Instrumentation::default());
    plugin.call("count", &input).unwrap();
    assert_eq!(plugin.profile().methods, on.methods, "off again: nothing more recorded");
    plugin.reset_profile();
    assert!(plugin.profile().methods.is_empty());
}

#[test]
fn a_bare_library_is_profiled_beside_it_and_runs_merge() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join(library("word-count").file_name().unwrap());
    std::fs::copy(library("word-count"), &lib).unwrap();
    let out = profiled_run(dir.path(), &lib, &[]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let default = dir.path().join(".ax/profile.json");
    assert!(default.is_file(), "{out:?}");

    let out = profiled_run(dir.path(), &lib, &["--profile-merge"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stderr.contains("2 runs merged"), "{out:?}");
    let profile = read_json(&default);
    assert_eq!(profile["runs"], 2);
    assert_eq!(n(&profile["methods"][0]["count"]), 6);
    assert_eq!(n(&callsite(&profile, "span", "is_word")["count"]), 30);

    let out = profiled_run(dir.path(), &lib, &[]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(read_json(&default)["runs"], 1, "without --profile-merge a run replaces the profile");
}

#[test]
fn a_call_stopped_by_its_budget_is_in_the_profile_and_its_recommendations() {
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("p.json");
    let out = run(ax().args([
        "run",
        "--no-build",
        path(library("fixture-hostile")),
        "spin_span",
        "--max-duration",
        "30ms",
        "--profile-out",
        path(&out_file),
    ]));
    assert_eq!(out.code, Some(1), "{out:?}");
    let profile = read_json(&out_file);
    let method = &profile["methods"][0];
    assert_eq!((n(&method["count"]), n(&method["errors"])), (1, 1), "{method}");
    assert_eq!(method["budget_violations"]["max_duration"], 1);
    assert!(n(&callsite(&profile, "span", "step")["count"]) > 0);
    let recommendation = profile["recommendations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "budget_violation" && r["location"]["in"] == "manifest")
        .unwrap_or_else(|| panic!("{profile:#}"));
    assert_eq!(recommendation["location"]["key"], "budget.max_duration");
    assert_eq!(recommendation["message"], "1 of 1 calls of `spin_span` exceeded max_duration and were stopped");
}

#[test]
fn inspect_and_flamegraph_read_the_profile() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join(library("word-count").file_name().unwrap());
    std::fs::copy(library("word-count"), &lib).unwrap();
    let out = profiled_run(dir.path(), &lib, &[]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let profile = dir.path().join(".ax/profile.json");

    // By the file, and by the plugin whose profile it is.
    for target in [&profile, &lib] {
        let out = run(ax().args(["perf", "inspect", path(target)]));
        assert_eq!(out.code, Some(0), "{out:?}");
        for expected in [
            "profile of word_count (1 run",
            "startup: ",
            "first_call",
            "slowest: ",
            "hottest callsites, by self time",
            "count_words",
            "examples/word-count/src/lib.rs:",
            "probes and events hit",
            "recommendations",
        ] {
            assert!(out.stdout.contains(expected), "{expected:?} not in:\n{}", out.stdout);
        }
    }
    let out = run(ax().args(["perf", "inspect", path(&profile), "--top", "1"]));
    assert!(out.stdout.contains("(1 of 3;"), "{}", out.stdout);

    let svg = dir.path().join("out.svg");
    let out = run(ax().args(["perf", "flamegraph", path(&profile), "-o", path(&svg)]));
    assert_eq!(out.code, Some(0), "{out:?}");
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<?xml") && text.contains("<svg"), "{}", &text[..200.min(text.len())]);
    assert!(text.contains("count_words") && text.contains("word_count.count"), "the frames are named");

    // Without an argument: .ax/profile.json in the current directory.
    let out = run(ax().current_dir(dir.path()).args(["perf", "flamegraph", "-o", "here.svg"]));
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(dir.path().join("here.svg").is_file());
}

#[test]
fn corrupt_truncated_and_foreign_profiles_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.json");
    let out = profiled_run(dir.path(), library("word-count"), &["--profile-out", path(&good)]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let text = std::fs::read_to_string(&good).unwrap();

    let bad = dir.path().join("bad.json");
    let cases: [(&str, String, &str); 4] = [
        ("truncated", text[..text.len() / 3].to_owned(), "truncated profile (EOF while parsing"),
        ("corrupt", text.replacen("\"runs\": 1", "\"runs\": one", 1), "not valid JSON"),
        ("foreign", "{\"format\": \"ax-perf\", \"version\": 1}".to_owned(), "not an ax profile"),
        ("future", text.replacen("\"version\": 1", "\"version\": 9", 1), "ax profile version 9; expected version 1"),
    ];
    for (what, contents, expected) in cases {
        std::fs::write(&bad, contents).unwrap();
        for command in [&["perf", "inspect"][..], &["perf", "flamegraph", "-o", "x.svg"][..]] {
            let out = run(ax().current_dir(dir.path()).args(command).arg(path(&bad)));
            assert_one_error(&out, &[path(&bad), expected]);
            assert!(!out.stderr.contains("panicked"), "{what}: {out:?}");
        }
        // Merging into it is refused too, and says how to go on.
        let out = profiled_run(dir.path(), library("word-count"), &["--profile-out", path(&bad), "--profile-merge"]);
        assert_one_error(&out, &[path(&bad), expected, "drop --profile-merge to replace it"]);
    }

    let out = run(ax().args(["perf", "inspect", path(&dir.path().join("none.json"))]));
    assert_one_error(&out, &["none.json: no such file or directory"]);
    let out = run(ax().args(["run", "--profile", "--isolate", "--no-build", path(library("word-count")), "count"]));
    assert_one_error(&out, &["--profile is not available for a plugin in a child process"]);
}

#[test]
fn perf_run_can_profile_what_it_benchmarks() {
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("perf-profile.json");
    let out = run(ax().args(["perf", "run", "--no-build"]).arg(library("word-count")).args([
        "--method",
        "count",
        "--input",
        r#"{"text":"a b c"}"#,
        "--iterations",
        "20",
        "--warmup",
        "2",
        "--profile-out",
        path(&out_file),
    ]));
    assert_eq!(out.code, Some(0), "{out:?}");
    let profile = read_json(&out_file);
    assert_eq!(n(&callsite(&profile, "span", "count")["count"]), 22, "warmup and samples are profiled");
}
