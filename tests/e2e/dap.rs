//! `ax-dap` driven over stdio like an editor does: launch word-count, stop at a
//! breakpoint, read the stack and variables, change a variable, evaluate,
//! step, and end; a crashing plugin ends the session with a message; malformed
//! and unknown requests get error responses; data breakpoints and history
//! across hot reloads.

use ax_e2e::{DapClient, library, marker_line, workspace_root};
use serde_json::{Value, json};

fn source() -> String {
    workspace_root().join("examples/word-count/src/lib.rs").display().to_string()
}

fn launch(dap: &mut DapClient, plugin: &std::path::Path, calls: Value) {
    let init = dap.request("initialize", json!({ "adapterID": "ax", "linesStartAt1": true }));
    assert_eq!(init["success"], true, "{init}");
    assert_eq!(init["body"]["supportsConditionalBreakpoints"], true);
    let launched = dap.request("launch", json!({ "plugin": plugin, "calls": calls, "build": false }));
    assert_eq!(launched["success"], true, "{launched}");
    dap.event("initialized");
}

#[test]
fn a_session_stops_shows_variables_sets_one_and_ends() {
    let mut dap = DapClient::start();
    let calls = json!([
        { "method": "count", "input": { "text": "a b c" } },
        { "method": "count", "input": { "text": "d" } },
    ]);
    launch(&mut dap, library("word-count"), calls);
    let line = marker_line("examples/word-count/src/lib.rs", "PROBE");
    let set = dap.request(
        "setBreakpoints",
        json!({ "source": { "path": source() }, "breakpoints": [{ "line": line, "condition": "words > 2" }] }),
    );
    assert_eq!(set["body"]["breakpoints"][0]["verified"], true, "{set}");
    assert_eq!(set["body"]["breakpoints"][0]["line"], line);
    assert_eq!(dap.request("configurationDone", json!({}))["success"], true);

    let stopped = dap.event("stopped");
    assert_eq!(stopped["body"]["reason"], "breakpoint", "{stopped}");
    let threads = dap.request("threads", json!({}));
    assert_eq!(threads["body"]["threads"][0]["id"], 1);
    let stack = dap.request("stackTrace", json!({ "threadId": 1 }));
    let top = &stack["body"]["stackFrames"][0];
    assert_eq!(top["name"], "word_count::WordCount::count");
    assert_eq!(top["line"], line);
    assert_eq!(top["source"]["path"], source(), "the compiler's relative path resolved to a file on disk");
    assert_eq!(stack["body"]["stackFrames"][1]["name"], "count");

    let scopes = dap.request("scopes", json!({ "frameId": 0 }));
    let locals = scopes["body"]["scopes"][0]["variablesReference"].clone();
    let variables = dap.request("variables", json!({ "variablesReference": locals }));
    let shown: Vec<(String, String)> = variables["body"]["variables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["name"].as_str().unwrap().to_owned(), v["value"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(shown, [("text".to_owned(), "\"a b c\"".to_owned()), ("words".to_owned(), "3".to_owned())]);

    let hover = dap.request("evaluate", json!({ "expression": "words * 2", "context": "hover" }));
    assert_eq!(hover["body"]["result"], "6", "{hover}");
    let bad = dap.request("evaluate", json!({ "expression": "wrods", "context": "watch" }));
    assert_eq!(bad["success"], false);
    assert!(bad["message"].as_str().unwrap().contains("wrods"), "{bad}");

    let set = dap.request("setVariable", json!({ "variablesReference": locals, "name": "words", "value": "40" }));
    assert_eq!(set["body"]["value"], "40", "{set}");
    assert_eq!(dap.request("continue", json!({ "threadId": 1 }))["success"], true);

    // The second call ("d", one word) does not meet the condition: it runs through.
    dap.event("terminated");
    let output = dap.output();
    assert!(output.contains("{\"total\":40,\"words\":40}"), "setVariable changed the result: {output}");
    assert!(output.contains("{\"total\":41,\"words\":1}"), "{output}");
    assert_eq!(dap.request("disconnect", json!({}))["success"], true);
    assert!(dap.wait(), "ax-dap exits after disconnect");
}

#[test]
fn logpoints_hit_conditions_and_stepping() {
    let mut dap = DapClient::start();
    let calls: Vec<Value> =
        (0..3).map(|i| json!({ "method": "count", "input": { "text": format!("w{i} x") } })).collect();
    launch(&mut dap, library("word-count"), Value::from(calls));
    let line = marker_line("examples/word-count/src/lib.rs", "PROBE");
    let breakpoints =
        json!([{ "line": line, "logMessage": "saw {words} in {text}" }, { "line": line, "hitCondition": "== 2" }]);
    dap.request("setBreakpoints", json!({ "source": { "path": source() }, "breakpoints": breakpoints }));
    dap.request("configurationDone", json!({}));
    let stopped = dap.event("stopped");
    assert_eq!(stopped["body"]["reason"], "breakpoint", "the hit condition stops at the second hit");
    let stack = dap.request("stackTrace", json!({ "threadId": 1 }));
    let variables = dap.request("variables", json!({ "variablesReference": 1 }));
    assert_eq!(variables["body"]["variables"][0]["value"], "\"w1 x\"", "{stack} {variables}");
    dap.request("next", json!({ "threadId": 1 }));
    let stepped = dap.event("stopped");
    assert_eq!(stepped["body"]["reason"], "step", "{stepped}");
    dap.request("continue", json!({ "threadId": 1 }));
    dap.event("terminated");
    let output = dap.output();
    for i in 0..3 {
        assert!(output.contains(&format!("saw 2 in w{i} x")), "logpoint for call {i}: {output}");
    }
    dap.request("disconnect", json!({}));
}

#[test]
fn a_crashing_plugin_ends_the_session_not_the_adapter() {
    let mut dap = DapClient::start();
    launch(&mut dap, library("fixture-hostile"), json!([{ "method": "segfault" }]));
    dap.request("configurationDone", json!({}));
    dap.event("terminated");
    let output = dap.output();
    assert!(output.contains("the plugin's host process ended: killed by SIGSEGV (segmentation fault)"), "{output}");
    // The adapter still answers.
    assert_eq!(dap.request("threads", json!({}))["success"], true);
    dap.request("disconnect", json!({}));
    assert!(dap.wait());
}

#[test]
fn what_the_plugin_prints_in_its_last_call_comes_before_the_end() {
    // Repeated: the lines and the end used to race, and the end often won.
    for round in 0..5 {
        let mut dap = DapClient::start();
        let calls: Vec<Value> =
            (0..3).map(|i| json!({ "method": "print", "input": { "text": format!("call {i}") } })).collect();
        launch(&mut dap, library("fixture-hostile"), Value::from(calls));
        dap.request("configurationDone", json!({}));
        dap.event("terminated");
        let output = dap.output();
        for line in ["call 2 (stdout)\n", "call 2 (stderr)\n"] {
            assert!(output.contains(line), "round {round}: {line:?} is missing: {output}");
        }
        // A line left unfinished goes out with the next line, the last one
        // when the plugin is shut down after the last call.
        assert!(output.contains("call 1 (unfinished)call 2 (stdout)\n"), "{output}");
        assert!(output.contains("call 2 (unfinished)"), "round {round}: {output}");
        assert!(!output.contains("process ended"), "an ordinary end is not a crash: {output}");
        dap.request("disconnect", json!({}));
        assert!(dap.wait());
    }
}

#[test]
fn malformed_and_unknown_requests_get_error_responses() {
    let mut dap = DapClient::start();
    let unknown = dap.request("frobnicate", json!({}));
    assert_eq!(unknown["success"], false);
    assert_eq!(unknown["message"], "unsupported request `frobnicate`");
    let bad = dap.request("setBreakpoints", json!({ "source": 5 }));
    assert_eq!(bad["success"], false);
    assert!(bad["message"].as_str().unwrap().starts_with("bad arguments to `setBreakpoints`"), "{bad}");
    let early = dap.request("threads", json!({}));
    assert_eq!(early["success"], true);
    let not_launched = dap.request("stackTrace", json!({ "threadId": 1 }));
    assert_eq!(not_launched["body"]["stackFrames"], json!([]));
    dap.send_raw(b"Content-Length: 5\r\n\r\n{oops");
    let missing = dap.request("launch", json!({ "plugin": "/no/such/plugin", "build": false }));
    assert_eq!(missing["success"], false);
    assert!(missing["message"].as_str().unwrap().contains("/no/such/plugin: no such file or directory"), "{missing}");
    assert!(dap.output().contains("ignoring a malformed message: the body is not JSON"));
    dap.request("disconnect", json!({}));
    assert!(dap.wait());
}

#[test]
fn disconnecting_while_stopped_leaves_no_process_behind() {
    let mut dap = DapClient::start();
    launch(&mut dap, library("word-count"), json!([{ "method": "count", "input": { "text": "a" } }]));
    let pid = dap.event("process")["body"]["systemProcessId"].as_u64().expect("the debug host's pid");
    let line = marker_line("examples/word-count/src/lib.rs", "PROBE");
    dap.request("setBreakpoints", json!({ "source": { "path": source() }, "breakpoints": [{ "line": line }] }));
    dap.request("configurationDone", json!({}));
    dap.event("stopped");
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert_eq!(dap.request("disconnect", json!({}))["success"], true);
    assert!(dap.wait(), "ax-dap exits");
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "the debug host {pid} was ended and reaped");
}

#[test]
fn a_function_breakpoint_stops_when_the_span_is_entered() {
    let mut dap = DapClient::start();
    launch(&mut dap, library("word-count"), json!([{ "method": "count", "input": { "text": "a b" } }]));
    let set = dap.request("setFunctionBreakpoints", json!({ "breakpoints": [{ "name": "count_words" }] }));
    assert_eq!(set["success"], true, "{set}");
    assert!(set["body"]["breakpoints"][0]["message"].as_str().unwrap().contains("has run yet"), "{set}");
    dap.request("configurationDone", json!({}));
    let stopped = dap.event("stopped");
    assert_eq!(stopped["body"]["reason"], "function breakpoint", "{stopped}");
    let stack = dap.request("stackTrace", json!({ "threadId": 1 }));
    let names: Vec<&str> =
        stack["body"]["stackFrames"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["count_words", "count", "ax: call `count`"], "innermost span first, the host call last");
    dap.request("continue", json!({ "threadId": 1 }));
    dap.event("terminated");
    assert!(dap.output().contains("{\"total\":2,\"words\":2}"));
    dap.request("disconnect", json!({}));
}

/// The reload fixture's variant `variant`, copied over `to` the way a build
/// replaces a library (a new file renamed into place).
fn replace_library(variant: &str, to: &std::path::Path) {
    let staged = to.with_extension("staged");
    std::fs::copy(ax_e2e::reload_variant(variant, false), &staged).unwrap();
    std::fs::rename(&staged, to).unwrap();
}

#[test]
fn under_hot_reload_breakpoints_hold_in_the_new_code_and_a_bad_build_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let library = dir.path().join("libfixture_reload_counter.so");
    replace_library("v1", &library);
    let source = workspace_root().join("tests/fixtures/reload-counter/src/lib.rs").display().to_string();
    let line = marker_line("tests/fixtures/reload-counter/src/lib.rs", "RELOAD_PROBE");

    let mut dap = DapClient::start();
    dap.request("initialize", json!({ "adapterID": "ax" }));
    let launched = dap.request(
        "launch",
        json!({ "plugin": library, "build": false, "hotReload": true, "keepRunning": true, "calls": [] }),
    );
    assert_eq!(launched["success"], true, "{launched}");
    dap.event("initialized");
    let set = dap.request("setBreakpoints", json!({ "source": { "path": source }, "breakpoints": [{ "line": line }] }));
    let id = set["body"]["breakpoints"][0]["id"].clone();
    assert_eq!(set["body"]["breakpoints"][0]["verified"], true, "{set}");
    dap.request("configurationDone", json!({}));

    let call = |dap: &mut DapClient, text: &str| {
        let expression = format!(".call count {}", json!({ "text": text }));
        let answer = dap.request("evaluate", json!({ "expression": expression, "context": "repl" }));
        assert_eq!(answer["success"], true, "{answer}");
        let stopped = dap.event("stopped");
        assert_eq!(stopped["body"]["hitBreakpointIds"], json!([id]), "{stopped}");
        let scopes = dap.request("scopes", json!({ "frameId": 0 }));
        let locals = dap
            .request("variables", json!({ "variablesReference": scopes["body"]["scopes"][0]["variablesReference"] }));
        let value = |name: &str| {
            locals["body"]["variables"].as_array().unwrap().iter().find(|v| v["name"] == name).unwrap()["value"].clone()
        };
        let seen = (value("version"), value("total"));
        dap.request("continue", json!({ "threadId": 1 }));
        seen
    };
    assert_eq!(call(&mut dap, "a b"), (json!("\"v1\""), json!("2")));
    dap.wait_for_output("count → {\"total\":2");

    replace_library("v2", &library);
    let changed = dap.event("breakpoint");
    assert_eq!(changed["body"]["breakpoint"]["id"], id, "{changed}");
    assert_eq!(changed["body"]["breakpoint"]["verified"], true, "{changed}");
    assert_eq!(dap.event("module")["body"]["reason"], "new", "the launch's module event comes first");
    let module = dap.event("module");
    assert_eq!(module["body"]["reason"], "changed", "{module}");
    assert_eq!(module["body"]["module"]["version"], "generation 2", "{module}");
    dap.wait_for_output("ax: generation 2: reloaded in");
    assert_eq!(call(&mut dap, "c"), (json!("\"v2\""), json!("3")), "the new code, with the state carried");

    // A reload while a call is stopped waits: the call finishes in the old code.
    let answer = dap.request("evaluate", json!({ "expression": ".call count {\"text\": \"f\"}", "context": "repl" }));
    assert_eq!(answer["success"], true, "{answer}");
    dap.event("stopped");
    replace_library("v1", &library);
    std::thread::sleep(std::time::Duration::from_millis(800));
    assert!(!dap.output().contains("generation 3: reloaded"), "no reload while a call is stopped in the old code");
    dap.request("continue", json!({ "threadId": 1 }));
    dap.wait_for_output("count → {\"total\":4,\"version\":\"v2\"");
    dap.wait_for_output("ax: generation 3: reloaded in");
    assert_eq!(call(&mut dap, "g"), (json!("\"v1\""), json!("5")));

    replace_library("panic-init", &library);
    let output = dap.wait_for_output("ax: reload rolled back at step init");
    assert!(output.contains("generation 3 keeps serving"), "{output}");
    assert_eq!(call(&mut dap, "h i"), (json!("\"v1\""), json!("7")), "the session goes on with the old version");
    dap.request("disconnect", json!({}));
}

#[test]
fn with_hot_reload_an_edit_is_rebuilt_and_serves_and_a_broken_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let new = ax_e2e::ax().current_dir(dir.path()).args(["new", "dapdemo"]).output().unwrap();
    assert!(new.status.success(), "{new:?}");
    let lib_rs = dir.path().join("dapdemo/src/lib.rs");
    let edit = |from: &str, to: &str| {
        let text = std::fs::read_to_string(&lib_rs).unwrap();
        assert!(text.contains(from), "{from:?} in the scaffold");
        std::fs::write(&lib_rs, text.replacen(from, to, 1)).unwrap();
    };
    // The e2e target directory shared with the other scaffold tests (their
    // crates have other names): dependencies are built once.
    let target = workspace_root().join("target/e2e-new");
    let mut dap = DapClient::start_with_env(&[("CARGO_TARGET_DIR", &target)]);
    dap.request("initialize", json!({ "adapterID": "ax" }));
    let plugin = dir.path().join("dapdemo");
    let launched = dap.request("launch", json!({ "plugin": plugin, "hotReload": true, "keepRunning": true }));
    assert_eq!(launched["success"], true, "{launched}");
    dap.event("initialized");
    dap.request("configurationDone", json!({}));
    let call = |dap: &mut DapClient, expect: &str| {
        let answer =
            dap.request("evaluate", json!({ "expression": ".call hello {\"name\": \"dap\"}", "context": "repl" }));
        assert_eq!(answer["success"], true, "{answer}");
        dap.wait_for_output(expect);
    };
    call(&mut dap, r#"hello → {"calls":1,"message":"Hello, dap!"}"#);

    edit("{name}!", "{name}!!");
    dap.wait_for_output("ax-dap: sources changed; building");
    dap.wait_for_output("ax: generation 2: reloaded in");
    call(&mut dap, r#"hello → {"calls":2,"message":"Hello, dap!!"}"#);

    edit("{name}!!", "{name}!!\" oops");
    let output = dap.wait_for_output("ax-dap: the build failed; the running version keeps serving");
    assert!(output.contains("error"), "cargo's errors are in the Debug Console: {output}");
    call(&mut dap, r#"hello → {"calls":3,"message":"Hello, dap!!"}"#);
    dap.request("disconnect", json!({}));
}

/// What an editor sees of a session, from `initialize` to the stack at a
/// breakpoint, as a snapshot: the capabilities, the breakpoint as placed, the
/// stop and the frames. Review a changed snapshot like code.
#[test]
fn a_session_transcript() {
    let mut dap = DapClient::start();
    let mut transcript = Vec::new();
    let mut keep = |label: &str, message: &Value| {
        let mut message = message.clone();
        for key in ["seq", "request_seq"] {
            message.as_object_mut().map(|m| m.remove(key));
        }
        transcript.push(format!("── {label}\n{}", serde_json::to_string_pretty(&message).unwrap()));
    };
    keep("initialize", &dap.request("initialize", json!({ "adapterID": "ax" })));
    let calls = json!([{ "method": "count", "input": { "text": "a b c" } }]);
    let launched = dap.request("launch", json!({ "plugin": library("word-count"), "calls": calls, "build": false }));
    keep("launch", &launched);
    dap.event("initialized");
    let line = marker_line("examples/word-count/src/lib.rs", "PROBE");
    let set = dap.request(
        "setBreakpoints",
        json!({ "source": { "path": source() }, "breakpoints": [{ "line": line - 1, "condition": "words > 2" }] }),
    );
    keep("setBreakpoints (a line above the probe)", &set);
    dap.request("configurationDone", json!({}));
    keep("stopped", &dap.event("stopped"));
    keep("stackTrace", &dap.request("stackTrace", json!({ "threadId": 1 })));
    keep("scopes", &dap.request("scopes", json!({ "frameId": 0 })));
    keep("variables", &dap.request("variables", json!({ "variablesReference": 1 })));
    dap.request("disconnect", json!({}));

    let root = workspace_root().display().to_string();
    let text = transcript.join("\n").replace(&root, "<repo>");
    let filters = vec![(r#""line": \d+"#, r#""line": "<n>""#), (r"line \d+", "line <n>")];
    insta::with_settings!({ filters => filters }, {
        insta::assert_snapshot!(text);
    });
}

/// Data breakpoints and history through ax-dap, across hot reloads of an
/// edited crate: set from a stop's Locals (`dataBreakpointInfo`), a stop
/// exactly when the value changes (old → new in the description), the
/// History scope, `prev`, `.history`; after an edit that drops the binding
/// the breakpoint is unverified with the reason, and verified again once the
/// binding is back.
#[test]
fn data_breakpoints_and_history_hold_across_hot_reloads_and_a_binding_that_goes() {
    let dir = tempfile::tempdir().unwrap();
    let new = ax_e2e::ax().current_dir(dir.path()).args(["new", "datademo"]).output().unwrap();
    assert!(new.status.success(), "{new:?}");
    let lib_rs = dir.path().join("datademo/src/lib.rs");
    let edit = |from: &str, to: &str| {
        let text = std::fs::read_to_string(&lib_rs).unwrap();
        assert!(text.contains(from), "{from:?} in the scaffold");
        std::fs::write(&lib_rs, text.replacen(from, to, 1)).unwrap();
    };
    let text = std::fs::read_to_string(&lib_rs).unwrap();
    let line = text.lines().position(|l| l.contains("probe!(")).unwrap() + 1;
    let target = workspace_root().join("target/e2e-new");
    let mut dap = DapClient::start_with_env(&[("CARGO_TARGET_DIR", &target)]);
    let init = dap.request("initialize", json!({ "adapterID": "ax" }));
    assert_eq!(init["body"]["supportsDataBreakpoints"], true, "{init}");
    let plugin = dir.path().join("datademo");
    let launched = dap.request("launch", json!({ "plugin": plugin, "hotReload": true, "keepRunning": true }));
    assert_eq!(launched["success"], true, "{launched}");
    dap.event("initialized");
    let source = lib_rs.display().to_string();
    dap.request("setBreakpoints", json!({ "source": { "path": source }, "breakpoints": [{ "line": line }] }));
    dap.request("configurationDone", json!({}));
    let call = |dap: &mut DapClient, name: &str| {
        let expression = format!(".call hello {}", json!({ "name": name }));
        let answer = dap.request("evaluate", json!({ "expression": expression, "context": "repl" }));
        assert_eq!(answer["success"], true, "{answer}");
    };

    call(&mut dap, "a");
    assert_eq!(dap.event("stopped")["body"]["reason"], "breakpoint");
    let info = dap.request("dataBreakpointInfo", json!({ "variablesReference": 1, "name": "name" }));
    assert_eq!(info["body"]["accessTypes"], json!(["write"]), "{info}");
    let data_id = info["body"]["dataId"].clone();
    assert!(data_id.as_str().unwrap().ends_with("|name"), "{info}");
    let call_scope = dap.request("dataBreakpointInfo", json!({ "variablesReference": 2, "name": "input" }));
    assert_eq!(call_scope["body"]["dataId"], Value::Null, "only Locals: {call_scope}");
    let set =
        dap.request("setDataBreakpoints", json!({ "breakpoints": [{ "dataId": data_id, "accessType": "write" }] }));
    assert_eq!(set["body"]["breakpoints"][0]["verified"], true, "{set}");
    let id = set["body"]["breakpoints"][0]["id"].clone();
    dap.request("setBreakpoints", json!({ "source": { "path": source }, "breakpoints": [] }));
    dap.request("continue", json!({ "threadId": 1 }));
    dap.wait_for_output(r#"hello → {"calls":1"#);

    call(&mut dap, "a"); // the same name: no stop, the call returns
    dap.wait_for_output(r#"hello → {"calls":2"#);
    call(&mut dap, "b");
    let stopped = dap.event("stopped");
    assert_eq!(stopped["body"]["reason"], "data breakpoint", "{stopped}");
    assert_eq!(stopped["body"]["description"], "`name` changed: \"a\" → \"b\"", "{stopped}");
    assert_eq!(stopped["body"]["hitBreakpointIds"], json!([id]), "{stopped}");
    let scopes = dap.request("scopes", json!({ "frameId": 0 }));
    let history = scopes["body"]["scopes"].as_array().unwrap().iter().find(|s| s["name"] == "History").cloned();
    let history = history.unwrap_or_else(|| panic!("a History scope: {scopes}"));
    let entries = dap.request("variables", json!({ "variablesReference": history["variablesReference"] }));
    let entries = entries["body"]["variables"].as_array().unwrap().clone();
    let names: Vec<&str> = entries.iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["#2", "#1"], "newest first: {entries:?}");
    assert!(entries[0]["value"].as_str().unwrap().contains("name=\"a\", calls=2"), "{entries:?}");
    let inside = dap.request("variables", json!({ "variablesReference": entries[1]["variablesReference"] }));
    let calls = inside["body"]["variables"].as_array().unwrap().iter().find(|v| v["name"] == "calls").cloned();
    assert_eq!(calls.unwrap()["value"], "1", "hit #1's calls: {inside}");
    let prev = dap.request("evaluate", json!({ "expression": "prev(calls)", "context": "watch" }));
    assert_eq!(prev["body"]["result"], "2", "{prev}");
    let table = dap.request("evaluate", json!({ "expression": ".history", "context": "repl" }));
    assert!(table["body"]["result"].as_str().unwrap().starts_with("#2 · "), "{table}");
    dap.request("continue", json!({ "threadId": 1 }));
    dap.wait_for_output(r#"hello → {"calls":3"#);

    // The binding goes: unverified, with the reason.
    edit("probe!(&mut name, calls = self.calls);", "probe!(calls = self.calls);");
    let changed = dap.event("breakpoint");
    assert_eq!(changed["body"]["breakpoint"]["id"], id, "{changed}");
    assert_eq!(changed["body"]["breakpoint"]["verified"], false, "{changed}");
    let why = changed["body"]["breakpoint"]["message"].as_str().unwrap();
    assert!(why.contains("`name` is no longer a binding"), "{changed}");
    call(&mut dap, "c");
    dap.wait_for_output(r#"hello → {"calls":4"#);

    // It comes back: verified again, watching the new code.
    edit("probe!(calls = self.calls);", "probe!(&mut name, calls = self.calls);");
    let changed = dap.event("breakpoint");
    assert_eq!(changed["body"]["breakpoint"]["verified"], true, "{changed}");
    call(&mut dap, "d"); // records
    dap.wait_for_output(r#"hello → {"calls":5"#);
    call(&mut dap, "e");
    assert_eq!(dap.event("stopped")["body"]["description"], "`name` changed: \"d\" → \"e\"");
    dap.request("disconnect", json!({}));
}
