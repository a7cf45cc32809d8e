//! Isolated mode: the hostile-plugin suite in a child process. Every crash and
//! every hang ends the child, not the host; the call says what happened; a new
//! child serves the next call with the last state snapshot restored.

use std::time::{Duration, Instant};

use ax_e2e::{binary, library};
use ax_isolate::{IsolatedPlugin, IsolationOptions};
use ax_runtime::{Budget, BudgetKind, CallError, Host};
use serde_json::{Value, json};

fn isolated(host: &Host, package: &str) -> IsolatedPlugin {
    let options = IsolationOptions { host_binary: binary("ax").to_owned(), sandbox: None };
    IsolatedPlugin::start(host, library(package), package, "{}", Budget::UNLIMITED, options).expect("the child starts")
}

fn calls_so_far(plugin: &IsolatedPlugin) -> u64 {
    plugin.call_with("ok", &Value::Null, None).0.expect("ok is served")["calls"].as_u64().unwrap()
}

#[test]
fn crashes_end_the_child_and_the_next_call_finds_the_last_snapshot() {
    let host = Host::new().unwrap();
    let plugin = isolated(&host, "fixture-hostile");
    assert_eq!(calls_so_far(&plugin), 1);
    let faults = [
        ("segfault", "killed by SIGSEGV (segmentation fault)"),
        ("abort", "killed by SIGABRT (abort)"),
        ("stack_overflow", "has overflowed its stack"),
        ("double_panic", "panic"),
    ];
    for (i, (method, cause)) in faults.iter().enumerate() {
        let pid = plugin.pid();
        let err = plugin.call_with(method, &Value::Null, None).0.unwrap_err();
        assert!(matches!(&err, CallError::Crashed { .. }), "{method}: {err:?}");
        assert!(err.to_string().contains(cause), "{method}: {err}");
        assert_ne!(plugin.pid(), pid, "{method}: a new child serves");
        // The call that crashed counted in the dead child only: the snapshot
        // taken after the last good call is what survives.
        assert_eq!(calls_so_far(&plugin), i as u64 + 2, "{method}");
    }
    assert_eq!(plugin.restarts(), faults.len() as u64);
}

#[test]
fn hangs_are_killed_at_their_deadline_and_soft_limits_need_no_kill() {
    let host = Host::new().unwrap();
    let plugin = isolated(&host, "fixture-hostile");
    let budget = Budget { max_duration: Some(Duration::from_millis(100)), ..Budget::UNLIMITED };
    for (method, input) in [("spin_silent", json!({ "ms": 10_000 })), ("deadlock", Value::Null)] {
        let started = Instant::now();
        let err = plugin.call_with(method, &input, Some(&budget)).0.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5), "{method} was cut short");
        let CallError::BudgetExceeded { violations, .. } = &err else { panic!("{method}: {err:?}") };
        assert_eq!(violations[0].kind, BudgetKind::Duration, "{method}");
        calls_so_far(&plugin);
    }
    assert_eq!(plugin.restarts(), 2, "both hangs needed a kill");

    // A loop that reaches probes is stopped inside the child: no kill, no restart.
    let err = plugin.call_with("spin_probe", &Value::Null, Some(&budget)).0.unwrap_err();
    assert!(matches!(err, CallError::BudgetExceeded { .. }), "{err:?}");
    let memory = Budget { max_memory: Some(64 << 20), ..Budget::UNLIMITED };
    let err = plugin.call_with("alloc_unbounded", &Value::Null, Some(&memory)).0.unwrap_err();
    assert!(
        matches!(&err, CallError::BudgetExceeded { violations, .. } if violations[0].kind == BudgetKind::Memory),
        "{err:?}"
    );
    assert_eq!(plugin.restarts(), 2);
    calls_so_far(&plugin);
}

#[test]
fn errors_and_panics_cross_the_process_boundary_intact() {
    let host = Host::new().unwrap();
    let plugin = isolated(&host, "fixture-panic-call");
    let err = plugin.call_with("boom", &json!(4), None).0.unwrap_err();
    let (message, location) = err.panic().expect("a panic, not a crash");
    assert_eq!(message, "index out of bounds: the len is 0 but the index is 4");
    assert!(location.unwrap().file.ends_with("panic-call/src/lib.rs"));
    let err = plugin.call_with("nope", &Value::Null, None).0.unwrap_err().to_string();
    assert!(err.contains("unknown method \"nope\""), "{err}");
    assert_eq!(plugin.restarts(), 0);
    assert_eq!(plugin.methods(), ["echo", "boom", "thread_panic"]);
}

#[test]
fn state_moves_in_and_out_of_the_child() {
    let host = Host::new().unwrap();
    let plugin = isolated(&host, "word-count");
    plugin.call_with("count", &json!({ "text": "a b c" }), None).0.unwrap();
    let saved = plugin.save_state().unwrap();
    let other = isolated(&host, "word-count");
    other.restore_state(&saved).unwrap();
    let out = other.call_with("count", &json!({ "text": "d" }), None).0.unwrap();
    assert_eq!(out, json!({ "words": 1, "total": 4 }));
}
