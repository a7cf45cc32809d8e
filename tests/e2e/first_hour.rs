//! A plugin author's first hour (issue 16): the rough edges a new user hit
//! with the real `ax` binary, each reproduced here first — a closed pipe, a
//! stuck call in the middle of a calls file, an isolated crash, budget figures,
//! command-line mistakes, zero budgets.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Command;

use ax_e2e::{Output, assert_one_error, ax, library, run};

fn ax_run(plugin: &Path, args: &[&str]) -> Output {
    run(ax().arg("run").arg("--no-build").arg(plugin).args(args))
}

/// `CMD 2>&1 | head -LINES`: stdout and stderr into one pipe whose reader
/// goes away after `lines` lines; returns the exit code and signal.
fn into_closed_pipe(cmd: &mut Command, lines: usize) -> (Option<i32>, Option<i32>) {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    cmd.stdout(writer.try_clone().expect("pipe cloned")).stderr(writer);
    let mut child = cmd.spawn().expect("ax starts");
    // The Command holds the write end too: only the child may keep it open.
    drop(std::mem::replace(cmd, Command::new("true")));
    let mut reader = BufReader::new(reader);
    for _ in 0..lines {
        let mut line = String::new();
        reader.read_line(&mut line).expect("a line");
    }
    drop(reader);
    let status = child.wait().expect("ax ends");
    (status.code(), std::os::unix::process::ExitStatusExt::signal(&status))
}

#[test]
fn a_closed_stdout_or_stderr_ends_ax_quietly_without_an_abort() {
    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("calls.jsonl");
    std::fs::write(&calls, "{\"method\":\"count\",\"input\":{\"text\":\"a b c\"}}\n".repeat(2000)).unwrap();
    let word_count = library("word-count");
    // (what, command, lines read before the reader goes away)
    let mut cases: Vec<(&str, Command, usize)> = Vec::new();
    let mut plain = ax();
    plain.arg("run").arg("--no-build").arg(word_count).arg("--calls").arg(&calls);
    cases.push(("results on stdout", plain, 2));
    let mut logged = ax();
    logged.env("AX_LOG", "debug").arg("run").arg("--no-build").arg(word_count).arg("--calls").arg(&calls);
    cases.push(("plugin log lines on stderr (AX_LOG=debug)", logged, 2));
    let mut perf = ax();
    perf.args(["perf", "run", "--no-build"]).arg(word_count).args(["--calls"]).arg(&calls).args(["--time", "200ms"]);
    // The table is one write at the end: the reader is gone before it.
    cases.push(("ax perf run's table", perf, 0));
    for (what, mut cmd, lines) in cases {
        let (code, signal) = into_closed_pipe(&mut cmd, lines);
        assert_eq!((code, signal), (Some(141), None), "{what}: exit 141 as a shell reports SIGPIPE, no abort");
    }
}

#[test]
fn calls_after_a_stuck_call_are_reported_skipped_and_the_state_file_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("calls.jsonl");
    std::fs::write(
        &calls,
        "{\"method\":\"ok\"}\n\
         {\"method\":\"spin_silent\",\"input\":{\"ms\":60000},\"budget\":{\"max_duration\":\"50ms\"}}\n\
         {\"method\":\"ok\"}\n",
    )
    .unwrap();
    let state = dir.path().join("s.state");
    let hostile = library("fixture-hostile");
    let args = ["--calls", calls.to_str().unwrap(), "--state", state.to_str().unwrap()];
    let out = ax_run(hostile, &args);
    assert_one_error(&out, &["fixture_hostile.spin_silent: budget exceeded", "ax gives up on it"]);
    assert_eq!(out.stdout, "{\"calls\":1,\"ok\":true}\n", "the call before ran: {out:?}");
    assert!(
        out.stderr.contains("skipped: call 3 of 3, ok: not run, because call 2 (spin_silent) is stuck"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("s.state not written (a plugin stuck in a call cannot save its state); no state was saved")
    );
    assert!(!state.exists());

    // With a state file from an earlier run, that file is kept as it was.
    let ok = dir.path().join("ok.jsonl");
    std::fs::write(&ok, "{\"method\":\"ok\"}\n").unwrap();
    let out = ax_run(hostile, &["--calls", ok.to_str().unwrap(), "--state", state.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let before = std::fs::read(&state).unwrap();
    let out = ax_run(hostile, &args);
    assert!(out.stderr.contains("it still holds the state from before this run"), "{}", out.stderr);
    assert_eq!(std::fs::read(&state).unwrap(), before);
}

#[test]
fn an_isolated_crash_is_one_message_without_advice_to_isolate() {
    let hostile = library("fixture-hostile");
    for method in ["segfault", "abort", "stack_overflow"] {
        let out = ax_run(hostile, &["--isolate", method]);
        assert_one_error(&out, &[&format!("fixture_hostile.{method}: the plugin's process killed by SIG")]);
        assert!(!out.stderr.contains("cannot survive") && !out.stderr.contains("--isolate"), "{}", out.stderr);
        assert_eq!(
            out.stderr.lines().count(),
            1,
            "{method}: the child's last words only in the report: {}",
            out.stderr
        );
    }
}

#[test]
fn budget_errors_give_what_the_call_reached_by_its_end() {
    let out =
        ax_run(library("fixture-hostile"), &["spin_silent", r#"{"ms":700}"#, "--max-duration", "100ms", "--stats"]);
    assert_one_error(&out, &["max_duration 100.0 ms exceeded (observed ", " ms when the limit was noticed, "]);
    let error = out.error_lines()[0];
    let end: f64 = error
        .split(" ms when the limit was noticed, ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a figure by the end of the call in {error}"));
    assert!(end >= 700.0, "the call ran 700 ms: {error}");
    assert!(error.ends_with(" ms by the end of the call)"), "{error}");
}

#[test]
fn command_line_mistakes_are_one_error_line_with_status_1() {
    let hostile = library("fixture-hostile");
    let hostile = hostile.to_str().unwrap();
    let cases: [(&[&str], &[&str]); 5] = [
        (&["run", "--no-build", hostile, "ok", "--max-memory", "lots"], &["invalid size \"lots\"", "`ax run --help`"]),
        (&["run", "--no-build", hostile, "ok", "--traceparent", "zz"], &["traceparent \"zz\" is invalid"]),
        (&["run", "--no-build", hostile, "ok", "--calls", "c.jsonl"], &["cannot be used with", "`ax run --help`"]),
        (&["run", "--no-build", hostile, "ok", "--bogus"], &["unexpected argument '--bogus'"]),
        (&["perf", "compare", "only-one.json"], &["required", "`ax perf compare --help`"]),
    ];
    for (args, fragments) in cases {
        let out = run(ax().args(args));
        assert_one_error(&out, fragments);
        assert_eq!(out.stderr.lines().count(), 1, "no usage block: {out:?}");
    }
    let help = run(ax().args(["run", "--help"]));
    assert_eq!(help.code, Some(0), "{help:?}");
    assert!(help.stdout.contains("Usage: ax run"), "{help:?}");
    let version = run(ax().arg("--version"));
    assert_eq!((version.code, version.stdout.starts_with("ax ")), (Some(0), true), "{version:?}");
}

#[test]
fn zero_budgets_are_refused_on_the_command_line_in_calls_files_and_in_the_manifest() {
    let hostile = library("fixture-hostile");
    for flag in ["--max-duration=0s", "--max-cpu-time=0ms", "--max-memory=0MiB"] {
        assert_one_error(&ax_run(hostile, &["ok", flag]), &["a limit of zero would stop every call"]);
    }
    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("calls.jsonl");
    std::fs::write(&calls, "{\"method\":\"ok\",\"budget\":{\"max_cpu_time\":\"0s\"}}\n").unwrap();
    assert_one_error(
        &ax_run(hostile, &["--calls", calls.to_str().unwrap()]),
        &["calls.jsonl:1:", "a limit of zero would stop every call"],
    );
    let manifest = dir.path().join("ax-plugin.toml");
    std::fs::write(
        &manifest,
        format!(
            "[plugin]\nname = \"hostile\"\nversion = \"0.1.0\"\nlibrary = {:?}\n\n[budget]\nmax_duration = \"0s\"\n",
            hostile.display().to_string()
        ),
    )
    .unwrap();
    assert_one_error(&ax_run(&manifest, &["ok"]), &["ax-plugin.toml:7:", "a limit of zero would stop every call"]);
}

/// Slow (an install, then a build of a new plugin): `scripts/test` runs it
/// explicitly, `cargo test -p ax-e2e --test e2e -- --ignored installed_ax`.
#[test]
#[ignore = "installs ax and builds a new plugin: run by scripts/test"]
fn an_installed_ax_new_needs_no_checkout() {
    let root = tempfile::tempdir().unwrap();
    let workspace = ax_e2e::workspace_root();
    // The workspace's target directory: only the install's own differences are built.
    let install = ax_e2e::cargo()
        .current_dir(&workspace)
        .env("CARGO_TARGET_DIR", workspace.join("target"))
        .args(["install", "--debug", "--locked", "--offline", "--quiet", "--path", "runtime/cli", "--root"])
        .arg(root.path())
        .status()
        .expect("cargo install runs");
    assert!(install.success(), "cargo install --path runtime/cli");
    let installed = root.path().join("bin/ax");

    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let installed_ax = || {
        let mut cmd = Command::new(&installed);
        cmd.current_dir(work.path())
            .env("XDG_DATA_HOME", home.path())
            .env("CARGO_TARGET_DIR", workspace.join("target/e2e-new"))
            .env_remove("AX_SDK_PATH")
            .env_remove("AX_LOG")
            .stdin(std::process::Stdio::null());
        cmd
    };
    let out = run(installed_ax().args(["new", "installed"]));
    assert_eq!(out.code, Some(0), "{out:?}");
    let cargo_toml = std::fs::read_to_string(work.path().join("installed/Cargo.toml")).unwrap();
    let sdk = cargo_toml.lines().find(|l| l.starts_with("ax-plugin = ")).expect("the SDK dependency");
    assert!(sdk.contains(&home.path().join("ax/sdk-").display().to_string()), "the SDK ax carries: {sdk}");
    assert!(!sdk.contains(&workspace.display().to_string()), "not the checkout: {sdk}");

    let out = run(installed_ax().args(["run", "installed", "hello", r#"{"name":"installed"}"#]));
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, "{\"calls\":1,\"message\":\"Hello, installed!\"}\n");
}

#[test]
fn a_plugin_of_another_sdk_release_loads_with_one_notice() {
    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("calls.jsonl");
    std::fs::write(&calls, "{\"method\":\"echo\",\"input\":1}\n{\"method\":\"echo\",\"input\":2}\n").unwrap();
    let out = ax_run(library("fixture-other-sdk"), &["--calls", calls.to_str().unwrap()]);
    assert_eq!((out.code, out.stdout.as_str()), (Some(0), "1\n2\n"), "{out:?}");
    let notice = "plugin fixture_other_sdk: built against ax-plugin 0.0.1-older, this host is ax ";
    assert_eq!(out.stderr.matches(notice).count(), 1, "{}", out.stderr);
    let same = ax_run(library("fixture-hostile"), &["ok"]);
    assert!(!same.stderr.contains("built against"), "same SDK, no notice: {}", same.stderr);
}

#[test]
fn perf_inspect_names_an_event_by_its_target_not_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("calls.jsonl");
    std::fs::write(&calls, "{\"method\":\"count\",\"input\":{\"text\":\"a b\"}}\n").unwrap();
    let profile = dir.path().join("profile.json");
    let out = run(ax().env("AX_LOG", "debug").arg("run").arg("--no-build").arg(library("word-count")).args([
        "--profile",
        "--profile-out",
        profile.to_str().unwrap(),
        "--calls",
        calls.to_str().unwrap(),
    ]));
    assert_eq!(out.code, Some(0), "{out:?}");
    let out = run(ax().args(["perf", "inspect", profile.to_str().unwrap()]));
    assert_eq!(out.code, Some(0), "{out:?}");
    let event = out.stdout.lines().find(|l| l.starts_with("event ")).unwrap_or_else(|| panic!("{}", out.stdout));
    let columns: Vec<&str> = event.split_whitespace().collect();
    assert_eq!(columns[1], "word_count", "the event's target: {event}");
    assert!(columns[2].starts_with("examples/word-count/src/lib.rs:"), "{event}");
}

#[test]
fn ax_run_does_not_rebuild_a_workspace_member_after_a_workspace_build() {
    // A workspace of two members, where the other one turns on a feature of a
    // dependency the plugin shares (serde_json): built together, cargo unifies
    // the features and builds serde_json (and the plugin) differently.
    let ws = tempfile::tempdir().unwrap();
    let sdk = ax_e2e::workspace_root().join("sdk");
    let files = [
        ("Cargo.toml", "[workspace]\nresolver = \"3\"\nmembers = [\"unified\", \"other\"]\n".to_owned()),
        (
            "unified/Cargo.toml",
            format!(
                "[package]\nname = \"fh-unified\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[lib]\ncrate-type = [\"cdylib\"]\n\n\
                 [dependencies]\nax-plugin = {{ path = {:?} }}\n",
                sdk.display().to_string()
            ),
        ),
        ("unified/ax-plugin.toml", "[plugin]\nname = \"unified\"\nversion = \"0.1.0\"\n".to_owned()),
        (
            "unified/src/lib.rs",
            "//! A plugin in a workspace with another member.\n\
             pub struct Unified;\n\
             impl ax_plugin::Plugin for Unified {\n\
                 fn init(_: ax_plugin::Value) -> Result<Self, ax_plugin::PluginError> { Ok(Unified) }\n\
                 fn call(&mut self, _: &str, input: ax_plugin::Value) -> Result<ax_plugin::Value, ax_plugin::PluginError> { Ok(input) }\n\
             }\n\
             ax_plugin::export_plugin!(Unified);\n"
                .to_owned(),
        ),
        (
            "other/Cargo.toml",
            "[package]\nname = \"fh-other\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
             [dependencies]\nserde_json = { version = \"1\", features = [\"float_roundtrip\"] }\n"
                .to_owned(),
        ),
        ("other/src/lib.rs", "//! The other member.\n".to_owned()),
    ];
    for (path, text) in files {
        let path = ws.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    // Shared with the other scaffold tests (other crate names): dependencies are built once.
    let target = ax_e2e::workspace_root().join("target/e2e-new");
    let ax_run =
        || run(ax().current_dir(ws.path()).env("CARGO_TARGET_DIR", &target).args(["run", "unified", "m", "7"]));
    let first = ax_run();
    assert_eq!((first.code, first.stdout.as_str()), (Some(0), "7\n"), "{first:?}");
    let workspace_build = ax_e2e::cargo()
        .current_dir(ws.path())
        .env("CARGO_TARGET_DIR", &target)
        .args(["build", "--workspace", "--quiet"])
        .status()
        .unwrap();
    assert!(workspace_build.success());
    let second = ax_run();
    assert_eq!((second.code, second.stdout.as_str()), (Some(0), "7\n"), "{second:?}");
    assert!(!second.stderr.contains("Compiling"), "nothing changed, nothing rebuilt: {}", second.stderr);
}
