//! `ax dev` as a plugin author uses it, on a crate made by `ax new`: calls
//! typed on stdin go to the build serving (the old one after a rollback), the
//! calls file is replayed on demand and when it changes, `[config]` edits
//! re-initialise the plugin through the reload engine (rolled back when
//! `init` rejects them, refused when the manifest does not parse), and every
//! reload attempt, a failed build included, reaches a real OTLP collector.

use std::time::Duration;

use ax_e2e::{Running, ax, run, workspace_root};

use crate::telemetry::{Collector, export_env, metric_points, parse_spans};

#[test]
fn dev_takes_calls_on_stdin_reloads_config_edits_and_reports_every_attempt() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    // Its own crate name: other tests share the target directory.
    assert_eq!(run(ax().current_dir(dir.path()).args(["new", "devloop"])).code, Some(0));
    let calls = dir.path().join("calls.jsonl");
    std::fs::write(&calls, "{\"method\":\"hello\",\"input\":{\"name\":\"dev\"}}\n").unwrap();
    let manifest = dir.path().join("devloop/ax-plugin.toml");
    let lib_rs = dir.path().join("devloop/src/lib.rs");
    let original_manifest = std::fs::read_to_string(&manifest).unwrap();
    let original_lib = std::fs::read_to_string(&lib_rs).unwrap();
    let set_greeting = |value: &str| {
        assert!(original_manifest.contains("greeting = \"Hello\""), "{original_manifest}");
        std::fs::write(&manifest, original_manifest.replace("greeting = \"Hello\"", &format!("greeting = {value}")))
            .unwrap();
    };

    let mut cmd = ax();
    cmd.current_dir(dir.path())
        .env("CARGO_TARGET_DIR", workspace_root().join("target/e2e-new"))
        .args(["dev", "devloop", "--calls", "calls.jsonl", "--debounce", "100ms"])
        .stdin(std::process::Stdio::piped());
    let mut dev = Running::spawn(export_env(&mut cmd, &collector.endpoint()));
    let long = Duration::from_secs(180);
    dev.expect_stdout(r#"{"calls":1,"message":"Hello, dev!"}"#, long);
    dev.expect_stderr(&["watching for changes (debounce 100.0 ms)"], long);

    // Calls on stdin, in both forms; an empty line replays the calls file.
    dev.send(r#"hello {"name": "you"}"#);
    dev.expect_stdout(r#"{"calls":2,"message":"Hello, you!"}"#, long);
    dev.send(r#"{"method": "hello", "input": {"name": "json"}}"#);
    dev.expect_stdout(r#"{"calls":3,"message":"Hello, json!"}"#, long);
    dev.send("");
    dev.expect_stdout(r#"{"calls":4,"message":"Hello, dev!"}"#, long);
    dev.send("hello {nope");
    dev.expect_stderr(&["error: input \"{nope\" is not valid JSON"], long);
    dev.send(":frobnicate");
    dev.expect_stderr(&["error: unknown command \":frobnicate\"", ":replay"], long);

    // A [config] edit re-initialises the plugin, state carried.
    set_greeting("\"Howdy\"");
    let status = dev.expect_stderr(&["[gen 2] ax-plugin.toml changed", "config changed: reloaded in"], long);
    assert!(status.contains("state 1 B carried"), "{status}");
    dev.expect_stdout(r#"{"calls":5,"message":"Howdy, dev!"}"#, long);

    // A config init rejects rolls back; the old build and config keep serving.
    set_greeting("42");
    dev.expect_stderr(
        &["config rejected by init: rolled back, old config serving", "generation 2 keeps serving"],
        long,
    );
    dev.send("hello");
    dev.expect_stdout(r#"{"calls":6,"message":"Howdy, world!"}"#, long);

    // A manifest that does not parse: one clear error, the old instance serves.
    std::fs::write(&manifest, original_manifest.replace("[config]", "[config")).unwrap();
    let status = dev.expect_stderr(&["[gen 2] ax-plugin.toml changed", "generation 2 keeps serving"], long);
    assert!(status.contains("ax-plugin.toml:"), "the error names the file and line: {status}");
    dev.send(":replay");
    dev.expect_stdout(r#"{"calls":7,"message":"Howdy, dev!"}"#, long);
    set_greeting("\"Howdy\"");
    dev.expect_stderr(&["[gen 2] ax-plugin.toml changed", "library unchanged, nothing to reload"], long);

    // A build that fails: the old build answers.
    std::fs::write(&lib_rs, format!("{original_lib}\nthis does not compile\n")).unwrap();
    dev.expect_stderr(&["[gen 2] src/lib.rs changed · build failed", "generation 2 keeps serving"], long);
    dev.send("hello {\"name\": \"still\"}");
    dev.expect_stdout(r#"{"calls":8,"message":"Howdy, still!"}"#, long);

    // The calls file is read again, and replayed, when it changes.
    std::fs::write(&calls, "{\"method\":\"hello\",\"input\":{\"name\":\"file\"}}\n").unwrap();
    dev.expect_stderr(&["calls.jsonl changed: 1 call(s), replayed"], long);
    dev.expect_stdout(r#"{"calls":9,"message":"Howdy, file!"}"#, long);
    std::fs::write(&calls, "not json\n").unwrap();
    dev.expect_stderr(&["calls.jsonl:1: invalid JSON", "the 1 call(s) read before are kept"], long);
    dev.send("");
    dev.expect_stdout(r#"{"calls":10,"message":"Howdy, file!"}"#, long);

    dev.send(":quit");
    assert_eq!(dev.wait(Duration::from_secs(30)), Some(0));

    // Every reload attempt is a span, counted by outcome: the config reload,
    // the config init rejected, the failed build (and 10 calls of 2 spans).
    let text = collector.wait_for(23, "ax.reloads");
    let spans = parse_spans(&text);
    let reloads: Vec<_> = spans.iter().filter(|s| s.name == "devloop.reload").collect();
    assert_eq!(reloads.len(), 3, "{reloads:#?}");
    assert!(reloads.iter().any(|s| s.attr("ax.reload.outcome") == Some("Str(ok)")), "{reloads:#?}");
    let mut failed_steps: Vec<_> = reloads
        .iter()
        .filter(|s| s.attr("ax.reload.outcome") == Some("Str(rolled_back)") && s.status == "STATUS_CODE_ERROR")
        .filter_map(|s| s.attr("ax.reload.failed_step"))
        .collect();
    failed_steps.sort_unstable();
    assert_eq!(failed_steps, ["Str(build)", "Str(init)"], "{reloads:#?}");
    let counted = metric_points(&text, "ax.reloads");
    assert!(
        counted.iter().any(|p| p.contains("ax.reload.outcome: Str(rolled_back)") && p.contains("Value: 2")),
        "{counted:?}"
    );
    assert!(counted.iter().any(|p| p.contains("ax.reload.outcome: Str(ok)") && p.contains("Value: 1")), "{counted:?}");
}
