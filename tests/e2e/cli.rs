//! The `ax` command line, as a user runs it: results on stdout, one `error:`
//! line on stderr and a non-zero exit for every kind of bad input.

use std::path::Path;

use ax_e2e::{Output, assert_one_error, ax, library, marker_line, run, workspace_root};

fn ax_run(plugin: &Path, args: &[&str]) -> Output {
    run(ax().arg("run").arg("--no-build").arg(plugin).args(args))
}

#[test]
fn run_builds_the_crate_and_prints_the_result() {
    let out =
        run(ax().current_dir(workspace_root()).args(["run", "examples/word-count", "count", r#"{"text":"a b c"}"#]));
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, "{\"total\":3,\"words\":3}\n");
}

#[test]
fn calls_file_runs_against_one_instance() {
    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("calls.jsonl");
    let line = r#"{"method":"count","input":{"text":"a b c"}}"#;
    std::fs::write(&calls, format!("{line}\n{line}\n\n{line}\n")).unwrap();
    let out = ax_run(library("word-count"), &["--calls", calls.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines, [r#"{"total":3,"words":3}"#, r#"{"total":6,"words":3}"#, r#"{"total":9,"words":3}"#]);
}

#[test]
fn a_failing_call_does_not_stop_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("calls.jsonl");
    std::fs::write(
        &calls,
        "{\"method\":\"echo\",\"input\":1}\n{\"method\":\"boom\"}\n{\"method\":\"echo\",\"input\":2}\n",
    )
    .unwrap();
    let out = ax_run(library("fixture-panic-call"), &["--calls", calls.to_str().unwrap()]);
    let line = marker_line("tests/fixtures/panic-call/src/lib.rs", "PANIC_CALL");
    assert_one_error(&out, &[&format!("tests/fixtures/panic-call/src/lib.rs:{line}:"), "index out of bounds"]);
    assert_eq!(out.stdout.lines().count(), 2, "both echo calls ran: {out:?}");
    assert!(out.stdout.contains("\"calls\":3"));
}

#[test]
fn bad_libraries_get_one_error_line_naming_file_and_cause() {
    let not_a_library = workspace_root().join("tests/fixtures/not-a-library.so");
    let cases: [(&Path, &[&str]); 4] = [
        (&not_a_library, &["not-a-library.so", "not a loadable plugin library"]),
        (library("fixture-no-entry"), &["libfixture_no_entry", "no `ax_plugin_entry_v1` symbol"]),
        (library("fixture-wrong-abi"), &["libfixture_wrong_abi", "plugin ABI version 999, expected 3"]),
        (library("fixture-panic-init"), &["libfixture_panic_init", "init failed", "init exploded on purpose"]),
    ];
    for (path, fragments) in cases {
        assert_one_error(&ax_run(path, &["echo", "1"]), fragments);
    }
    let line = marker_line("tests/fixtures/panic-init/src/lib.rs", "PANIC_INIT");
    let out = ax_run(library("fixture-panic-init"), &["echo"]);
    assert_one_error(&out, &[&format!("tests/fixtures/panic-init/src/lib.rs:{line}:")]);
}

#[test]
fn a_truncated_library_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(library("word-count")).unwrap();
    let truncated = dir.path().join("libtruncated.so");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    assert_one_error(&ax_run(&truncated, &["count"]), &["libtruncated.so", "incomplete or truncated library"]);
}

#[test]
fn panics_in_call_and_save_state_report_message_and_location() {
    let line = marker_line("tests/fixtures/panic-call/src/lib.rs", "PANIC_CALL");
    let out = ax_run(library("fixture-panic-call"), &["boom", "5"]);
    assert_one_error(
        &out,
        &[
            "fixture_panic_call.boom: panicked at",
            &format!("tests/fixtures/panic-call/src/lib.rs:{line}:"),
            "the len is 0 but the index is 5",
        ],
    );

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("s.state");
    let line = marker_line("tests/fixtures/panic-save/src/lib.rs", "PANIC_SAVE");
    let out = ax_run(library("fixture-panic-save"), &["echo", "1", "--state", state.to_str().unwrap()]);
    assert_one_error(
        &out,
        &[
            "save_state: panicked at",
            &format!("tests/fixtures/panic-save/src/lib.rs:{line}:"),
            "save_state exploded on purpose",
        ],
    );
    assert_eq!(out.stdout, "1\n", "the call itself ran");
    assert!(!state.exists(), "no state file from a failed save");
}

#[test]
fn state_file_carries_the_total_between_runs() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("wc.state");
    let state_arg = state.to_str().unwrap();
    let first = ax_run(library("word-count"), &["count", r#"{"text":"a b"}"#, "--state", state_arg]);
    assert_eq!(first.stdout, "{\"total\":2,\"words\":2}\n", "{first:?}");
    let second = ax_run(library("word-count"), &["count", r#"{"text":"c"}"#, "--state", state_arg]);
    assert_eq!(second.stdout, "{\"total\":3,\"words\":1}\n", "{second:?}");

    std::fs::write(&state, b"garbage").unwrap();
    let out = ax_run(library("word-count"), &["count", r#"{"text":"c"}"#, "--state", state_arg]);
    assert_one_error(&out, &["wc.state: not an ax state file"]);
}

#[test]
fn usage_errors_say_what_was_expected() {
    let wc = library("word-count");
    assert_one_error(&ax_run(wc, &[]), &["no method given; expected a METHOD (one of: count) or --calls FILE"]);
    assert_one_error(&ax_run(wc, &["count", "{text"]), &["input \"{text\" is not valid JSON", "expected a JSON value"]);
    assert_one_error(
        &ax_run(wc, &["cnt"]),
        &["word_count.cnt: unknown method \"cnt\", expected one of: count (unknown_method)"],
    );
    assert_one_error(
        &ax_run(Path::new("/no/such/plugin"), &["count"]),
        &["/no/such/plugin: no such file or directory"],
    );
    let out = run(ax().env("AX_LOG", "a=b=c").args(["run", "--no-build"]).arg(wc).arg("count"));
    assert_one_error(&out, &["AX_LOG=\"a=b=c\" is not a valid filter"]);

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ax-plugin.toml"), "[plugin]\nname = \"x\"\nversion = \"1\"\nnaem = 2\n").unwrap();
    assert_one_error(&ax_run(dir.path(), &["count"]), &["ax-plugin.toml:4:1: unknown field `naem`, expected one of"]);
}

#[test]
fn plugin_logs_go_to_stderr_filtered_by_ax_log() {
    let wc = library("word-count");
    let quiet = ax_run(wc, &["count", r#"{"text":"a"}"#]);
    assert!(!quiet.stderr.contains("counted"), "{quiet:?}");
    let out = run(ax()
        .env("AX_LOG", "warn,word_count=debug")
        .args(["run", "--no-build"])
        .arg(wc)
        .args(["count", r#"{"text":"a b"}"#]));
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, "{\"total\":2,\"words\":2}\n", "stdout holds only results");
    assert!(out.stderr.contains("DEBUG word_count: counted words=2 total=2"), "{out:?}");
}

#[test]
fn new_scaffolds_a_plugin_that_builds_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(ax().current_dir(dir.path()).args(["new", "demo"]));
    assert_eq!(out.code, Some(0), "{out:?}");
    for file in ["Cargo.toml", "ax-plugin.toml", "src/lib.rs", ".gitignore"] {
        assert!(dir.path().join("demo").join(file).is_file(), "{file}");
    }
    // Share the workspace's target directory so the SDK's dependencies are not rebuilt.
    let target = workspace_root().join("target/e2e-new");
    let out = run(ax().current_dir(dir.path()).env("CARGO_TARGET_DIR", &target).args(["run", "demo", "hello"]));
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, "{\"calls\":1,\"message\":\"Hello, world!\"}\n");
    let out = run(ax().current_dir(dir.path()).env("CARGO_TARGET_DIR", &target).args([
        "run",
        "--no-build",
        "demo",
        "hello",
        r#"{"name":"ax"}"#,
    ]));
    assert_eq!(out.stdout, "{\"calls\":1,\"message\":\"Hello, ax!\"}\n", "{out:?}");

    let again = run(ax().current_dir(dir.path()).args(["new", "demo"]));
    assert_one_error(&again, &["demo: already exists"]);
    let bad = run(ax().current_dir(dir.path()).args(["new", "Bad Name"]));
    assert_one_error(&bad, &["invalid plugin name \"Bad Name\""]);
}

#[test]
fn dev_rebuilds_reloads_with_state_and_survives_bad_edits() {
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(run(ax().current_dir(dir.path()).args(["new", "livedemo"])).code, Some(0));
    std::fs::write(dir.path().join("calls.jsonl"), "{\"method\":\"hello\",\"input\":{\"name\":\"dev\"}}\n").unwrap();
    let lib_rs = dir.path().join("livedemo/src/lib.rs");
    let original = std::fs::read_to_string(&lib_rs).unwrap();
    let edit = |from: &str, to: &str| {
        let text = std::fs::read_to_string(&lib_rs).unwrap();
        assert!(text.contains(from), "{from:?} in the scaffold");
        std::fs::write(&lib_rs, text.replacen(from, to, 1)).unwrap();
    };

    // Its own crate name: the `ax new` test shares the target directory, and
    // two crates called `demo` would overwrite each other's library.
    let mut dev = ax_e2e::Running::spawn(
        ax().current_dir(dir.path()).env("CARGO_TARGET_DIR", workspace_root().join("target/e2e-new")).args([
            "dev",
            "livedemo",
            "--calls",
            "calls.jsonl",
            "--debounce",
            "100ms",
        ]),
    );
    let long = Duration::from_secs(180);
    dev.expect_stdout(r#"{"calls":1,"message":"Hello, dev!"}"#, long);
    dev.expect_stderr(&["watching for changes (debounce 100.0 ms)"], long);

    edit("{name}!", "{name}!!");
    dev.expect_stdout(r#"{"calls":2,"message":"Hello, dev!!"}"#, long);
    let status = dev.expect_stderr(&["[gen 2] src/lib.rs changed · build"], long);
    assert!(status.contains("reloaded in") && status.contains("state 1 B carried"), "{status}");

    std::fs::write(&lib_rs, format!("{}\nthis does not compile\n", original.replacen("{name}!", "{name}!!", 1)))
        .unwrap();
    dev.expect_stderr(&["[gen 2] src/lib.rs changed · build failed", "generation 2 keeps serving"], long);

    std::fs::write(
        &lib_rs,
        original.replacen("Ok(Livedemo {", "panic!(\"init refused\"); #[allow(unreachable_code)] Ok(Livedemo {", 1),
    )
    .unwrap();
    dev.expect_stderr(&["reload rolled back at init", "init refused", "generation 2 keeps serving"], long);

    std::fs::write(&lib_rs, original.replacen("{name}!", "{name}?", 1)).unwrap();
    dev.expect_stdout(r#"{"calls":3,"message":"Hello, dev?"}"#, long);
}

#[test]
fn budgets_from_flags_and_calls_files_and_usage_with_stats() {
    let hostile = library("fixture-hostile");
    let out = ax_run(hostile, &["spin_probe", "--max-duration", "50ms"]);
    assert_one_error(&out, &["fixture_hostile.spin_probe: budget exceeded: max_duration 50.0 ms exceeded"]);

    let out = ax_run(hostile, &["alloc_1gib", "--max-memory", "64MiB", "--stats"]);
    assert_one_error(&out, &["max_memory 64.0 MiB exceeded (observed 1.0 GiB)"]);
    assert!(out.stderr.contains("stats: fixture_hostile.alloc_1gib: wall "), "{out:?}");

    let out = ax_run(hostile, &["ok", "--max-duration", "5 fortnights"]);
    assert_eq!(out.code, Some(1), "clap rejects the value, as one error line: {out:?}");
    assert!(out.stderr.contains("invalid duration \"5 fortnights\""), "{out:?}");

    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("calls.jsonl");
    std::fs::write(
        &calls,
        "{\"method\":\"sleep\",\"input\":{\"ms\":100},\"budget\":{\"max_duration\":\"30ms\"}}\n{\"method\":\"ok\"}\n",
    )
    .unwrap();
    let out = ax_run(hostile, &["--calls", calls.to_str().unwrap(), "--stats"]);
    assert_one_error(&out, &["fixture_hostile.sleep: budget exceeded: max_duration 30.0 ms"]);
    assert!(out.stdout.contains("\"ok\":true"), "the next call ran: {out:?}");
    assert_eq!(out.stderr.matches("stats: ").count(), 2, "{out:?}");
    // ax run reads a call's CPU clock only when something shows it: --stats does.
    assert_eq!(out.stderr.matches(" · cpu ").count(), 2, "{out:?}");
}

#[test]
fn hostile_crashes_kill_an_in_process_host_with_a_last_word_and_an_isolated_one_survives() {
    let hostile = library("fixture-hostile");
    let cases = [
        ("segfault", "SIGSEGV (segmentation fault)"),
        ("abort", "SIGABRT (abort)"),
        ("stack_overflow", "SIGSEGV (segmentation fault)"),
        ("double_panic", "SIGABRT (abort)"),
        ("panic_in_hook", "SIGABRT (abort)"),
    ];
    for (method, signal) in cases {
        let out = ax_run(hostile, &[method]);
        assert!(out.signal.is_some(), "{method}: in-process, the host dies of the signal: {out:?}");
        assert!(
            out.stderr.contains(&format!(
                "error: the process is crashing with {signal}; a plugin running in-process cannot survive this"
            )),
            "{method}: {}",
            out.stderr
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("calls.jsonl");
    let lines: String = cases.iter().map(|(m, _)| format!("{{\"method\":\"{m}\"}}\n{{\"method\":\"ok\"}}\n")).collect();
    std::fs::write(&calls, lines).unwrap();
    let out = ax_run(hostile, &["--isolate", "--calls", calls.to_str().unwrap()]);
    assert_eq!(out.code, Some(1), "{out:?}");
    let errors = out.error_lines();
    assert_eq!(errors.len(), cases.len(), "{out:?}");
    for (error, (method, _)) in errors.iter().zip(cases) {
        assert!(
            error.starts_with(&format!("error: fixture_hostile.{method}: the plugin's process killed by SIG")),
            "{error}"
        );
    }
    let served: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(served.len(), cases.len(), "every ok after a crash was served: {out:?}");
    assert_eq!(served[4], r#"{"calls":5,"ok":true}"#, "the snapshot after each good call survived the crashes");
}

#[test]
fn ax_run_gives_up_on_a_call_stuck_past_its_budget() {
    let started = std::time::Instant::now();
    let out = ax_run(library("fixture-hostile"), &["deadlock", "--max-duration", "50ms"]);
    assert_one_error(
        &out,
        &[
            "fixture_hostile.deadlock: budget exceeded: max_duration 50.0 ms",
            "cannot be stopped in-process",
            "--isolate",
        ],
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "it gave up instead of waiting for ever");
}
