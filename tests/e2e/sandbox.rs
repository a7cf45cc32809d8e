//! The sandbox (issue 19): the hostile plugin tries each escape in a
//! sandboxed child and the test looks at the effect — the secret's text did
//! not come back, the file outside `fs_write` does not exist, the loopback
//! listener saw no connection, the exec's marker was not written, the test
//! process is not traced — then checks the same child still serves. The same
//! tries without a sandbox show that each effect would have been seen.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ax_e2e::{DapClient, assert_one_error, ax, binary, library, run};
use ax_isolate::sandbox::Network;
use ax_isolate::{IsolatedPlugin, IsolationOptions, Sandbox};
use ax_runtime::{Budget, Host};
use serde_json::{Value, json};

use crate::telemetry::{Collector, export_env, parse_spans};

/// A place for the secret, the allowed data and output, and the targets.
struct Scene {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Scene {
    fn new() -> Scene {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("home/.ssh")).unwrap();
        std::fs::write(root.join("home/.ssh/id_rsa"), "-----BEGIN OPENSSH PRIVATE KEY-----\nsecret\n").unwrap();
        std::fs::create_dir_all(root.join("data")).unwrap();
        std::fs::write(root.join("data/words.txt"), "allowed").unwrap();
        std::fs::create_dir_all(root.join("out")).unwrap();
        Scene { _dir: dir, root }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn sandbox(&self, network: Network, exec: bool) -> Sandbox {
        Sandbox {
            network,
            fs_read: vec![self.path("data")],
            fs_write: vec![self.path("out")],
            exec,
            best_effort: false,
        }
    }
}

/// A loopback listener counting the connections it accepts.
struct Listener {
    port: u16,
    accepted: Arc<AtomicUsize>,
}

impl Listener {
    fn start() -> Listener {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stream.is_ok() {
                    count.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        Listener { port, accepted }
    }

    fn seen(&self) -> usize {
        std::thread::sleep(Duration::from_millis(100));
        self.accepted.load(Ordering::SeqCst)
    }
}

fn start(host: &Host, sandbox: Option<Sandbox>) -> IsolatedPlugin {
    let options = IsolationOptions { host_binary: binary("ax").to_owned(), sandbox };
    IsolatedPlugin::start(host, library("fixture-hostile"), "hostile", "{}", Budget::UNLIMITED, options)
        .expect("the sandboxed child starts")
}

fn call(plugin: &IsolatedPlugin, method: &str, input: Value) -> Value {
    plugin.call_with(method, &input, None).0.unwrap_or_else(|e| panic!("{method}: {e}"))
}

fn still_serving(plugin: &IsolatedPlugin, after: &str) {
    let answer = call(plugin, "ok", Value::Null);
    assert_eq!(answer["ok"], true, "after {after}");
    assert_eq!(plugin.restarts(), 0, "the same child serves after {after}");
}

fn traced() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status.lines().any(|l| l.starts_with("TracerPid:") && l.split_whitespace().nth(1) != Some("0"))
}

#[test]
fn every_escape_of_the_hostile_plugin_is_denied_and_the_child_keeps_serving() {
    let scene = Scene::new();
    let listener = Listener::start();
    let host = Host::new().unwrap();
    let plugin = start(&host, Some(scene.sandbox(Network::None, false)));
    assert!(plugin.sandbox_unenforced().is_empty(), "{:?}", plugin.sandbox_unenforced());

    // What it is granted works.
    let read = call(&plugin, "read_file", json!({ "path": scene.path("data/words.txt") }));
    assert_eq!(read["text"], "allowed", "{read}");
    call(&plugin, "write_file", json!({ "path": scene.path("out/result.txt") }));
    assert_eq!(std::fs::read_to_string(scene.path("out/result.txt")).unwrap(), "pwned");

    let secret = call(&plugin, "read_file", json!({ "path": scene.path("home/.ssh/id_rsa") }));
    assert!(secret.get("text").is_none(), "the key was read: {secret}");
    still_serving(&plugin, "reading ~/.ssh/id_rsa");

    call(&plugin, "write_file", json!({ "path": scene.path("outside.txt") }));
    assert!(!scene.path("outside.txt").exists(), "a file outside fs_write was written");
    call(&plugin, "write_file", json!({ "path": scene.path("data/words.txt") }));
    assert_eq!(std::fs::read_to_string(scene.path("data/words.txt")).unwrap(), "allowed", "fs_read is read-only");
    still_serving(&plugin, "writing outside fs_write");

    call(&plugin, "connect", json!({ "port": listener.port }));
    assert_eq!(listener.seen(), 0, "the loopback listener was reached");
    still_serving(&plugin, "connecting to loopback");

    let marker = scene.path("out/exec-marker");
    call(&plugin, "exec", json!({ "marker": marker }));
    assert!(!marker.exists(), "/bin/sh ran");
    still_serving(&plugin, "exec /bin/sh");

    let ptrace = call(&plugin, "ptrace_parent", Value::Null);
    assert_eq!(ptrace["ok"], false, "{ptrace}");
    assert!(!traced(), "the test process is being traced");
    still_serving(&plugin, "ptrace of the parent");

    let raw = call(&plugin, "raw_socket", Value::Null);
    assert_eq!(raw["ok"], false, "a raw socket was created: {raw}");
    still_serving(&plugin, "a raw socket");

    let unshare = call(&plugin, "unshare", Value::Null);
    assert_eq!(unshare["changed"], false, "the plugin entered a new user namespace: {unshare}");
    still_serving(&plugin, "unshare");

    let bomb = call(&plugin, "fork_bomb", json!({ "n": 64 }));
    assert_eq!(bomb["forked"], 0, "{bomb}");
    still_serving(&plugin, "a fork bomb");

    let denials: std::collections::BTreeMap<String, u64> = plugin.sandbox_denials().into_iter().collect();
    for capability in ["network", "ptrace", "namespace"] {
        assert!(denials.get(capability).is_some_and(|n| *n > 0), "no {capability} denial counted: {denials:?}");
    }
}

#[test]
fn without_a_sandbox_the_same_tries_have_their_effect() {
    let scene = Scene::new();
    let listener = Listener::start();
    let host = Host::new().unwrap();
    let plugin = start(&host, None);
    let secret = call(&plugin, "read_file", json!({ "path": scene.path("home/.ssh/id_rsa") }));
    assert!(secret["text"].as_str().is_some_and(|t| t.contains("secret")), "{secret}");
    call(&plugin, "write_file", json!({ "path": scene.path("outside.txt") }));
    assert!(scene.path("outside.txt").exists());
    call(&plugin, "connect", json!({ "port": listener.port }));
    assert_eq!(listener.seen(), 1);
    let marker = scene.path("exec-marker");
    call(&plugin, "exec", json!({ "marker": marker }));
    assert!(marker.exists());
    let bomb = call(&plugin, "fork_bomb", json!({ "n": 4 }));
    assert_eq!(bomb["forked"], 4, "{bomb}");
}

#[test]
fn loopback_and_exec_are_granted_when_declared() {
    let scene = Scene::new();
    let listener = Listener::start();
    let host = Host::new().unwrap();
    let plugin = start(&host, Some(scene.sandbox(Network::Loopback, true)));
    call(&plugin, "connect", json!({ "port": listener.port }));
    assert_eq!(listener.seen(), 1, "network = \"loopback\" reaches a loopback listener");
    let marker = scene.path("out/exec-marker");
    let exec = call(&plugin, "exec", json!({ "marker": marker }));
    assert!(marker.exists(), "exec = true runs /bin/sh: {exec}");
    let raw = call(&plugin, "raw_socket", Value::Null);
    assert_eq!(raw["ok"], false, "raw sockets stay denied: {raw}");
    let secret = call(&plugin, "read_file", json!({ "path": scene.path("home/.ssh/id_rsa") }));
    assert!(secret.get("text").is_none(), "the key was read: {secret}");
    still_serving(&plugin, "the granted calls");
}

/// A crate-less plugin directory: a manifest naming the hostile library.
fn manifest_dir(scene: &Scene, extra: &str) -> PathBuf {
    let dir = scene.path("plugin");
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = format!(
        "[plugin]\nname = \"hostile\"\nversion = \"0.1.0\"\nlibrary = {:?}\n{extra}",
        library("fixture-hostile").display().to_string()
    );
    std::fs::write(dir.join("ax-plugin.toml"), manifest).unwrap();
    dir
}

#[test]
fn ax_run_sandboxes_a_manifest_with_a_sandbox_and_reports_its_denials() {
    let scene = Scene::new();
    let dir = manifest_dir(&scene, "[sandbox]\nfs_write = [\"../out\"]\n");
    let marker = scene.path("out/exec-marker");
    let input = json!({ "marker": marker }).to_string();
    let out = run(ax().arg("run").arg(&dir).args(["exec", &input]));
    assert!(out.code == Some(0), "{out:?}");
    assert!(!marker.exists(), "ax run did not sandbox the plugin");
    let listener = Listener::start();
    let input = json!({ "port": listener.port }).to_string();
    let out = run(ax().arg("run").arg(&dir).args(["connect", &input, "--stats"]));
    assert!(out.code == Some(0), "{out:?}");
    assert_eq!(listener.seen(), 0);
    assert!(out.stderr.contains("sandbox denied network ×1"), "{}", out.stderr);
    let marker_input = json!({ "marker": marker }).to_string();

    let out = run(ax().arg("run").arg(&dir).args(["exec", &marker_input, "--no-sandbox"]));
    assert!(out.code == Some(0), "{out:?}");
    assert!(out.stderr.contains("WARNING: --no-sandbox"), "{}", out.stderr);
    assert!(marker.exists(), "--no-sandbox runs the plugin with the user's rights");
}

#[test]
fn recording_denials_keeps_the_profiles_time() {
    // ax-lsp reads a profile's mtime as when it was measured: denials recorded
    // into an older profile must not make its timings look fresh.
    let scene = Scene::new();
    let dir = manifest_dir(&scene, "[sandbox]\n");
    let out = run(ax().arg("run").arg(&dir).args(["ok", "{}", "--no-sandbox", "--profile"]));
    assert!(out.code == Some(0), "{out:?}");
    let profile = dir.join(".ax/profile.json");
    let measured = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options().write(true).open(&profile).unwrap().set_modified(measured).unwrap();

    let listener = Listener::start();
    let input = json!({ "port": listener.port }).to_string();
    let out = run(ax().arg("run").arg(&dir).args(["connect", &input]));
    assert!(out.code == Some(0), "{out:?}");
    let recorded: Value = serde_json::from_str(&std::fs::read_to_string(&profile).unwrap()).unwrap();
    assert_eq!(recorded["sandbox_denials"][0]["capability"], "network", "{recorded}");
    assert_eq!(recorded["methods"][0]["method"], "ok", "the timings are kept: {recorded}");
    let kept = std::fs::metadata(&profile).unwrap().modified().unwrap();
    assert_eq!(kept, measured, "the profile's time moved");
}

#[test]
fn a_calls_denials_are_in_its_usage_and_on_its_otlp_span() {
    let scene = Scene::new();
    let listener = Listener::start();
    let host = Host::new().unwrap();
    let plugin = start(&host, Some(scene.sandbox(Network::None, false)));
    let (result, usage) = plugin.call_with("connect", &json!({ "port": listener.port }), None);
    result.unwrap();
    assert_eq!(usage.denied.iter().collect::<Vec<_>>(), [("network", 1)], "{usage}");
    let (_, usage) = plugin.call_with("ok", &Value::Null, None);
    assert!(usage.denied.is_empty(), "a call denied nothing carries no denial: {usage}");

    let collector = Collector::start();
    let dir = manifest_dir(&scene, "[sandbox]\n");
    let input = json!({ "port": listener.port }).to_string();
    let calls = scene.path("calls.jsonl");
    std::fs::write(&calls, format!("{{\"method\":\"connect\",\"input\":{input}}}\n{{\"method\":\"ok\"}}\n")).unwrap();
    let mut cmd = ax();
    cmd.arg("run").arg(&dir).arg("--calls").arg(&calls).arg("--stats");
    let out = run(export_env(&mut cmd, &collector.endpoint()));
    assert!(out.code == Some(0), "{out:?}");
    assert_eq!(listener.seen(), 0);
    let stats: Vec<&str> = out.stderr.lines().filter(|l| l.starts_with("stats: hostile.")).collect();
    assert!(
        stats[0].starts_with("stats: hostile.connect: ") && stats[0].ends_with(" · sandbox denied network ×1"),
        "{stats:?}"
    );
    assert!(!stats[1].contains("sandbox"), "{stats:?}");

    let spans = parse_spans(&collector.wait_for(2, "ax.calls"));
    let connect: Vec<_> = spans.iter().filter(|s| s.name == "hostile.connect").collect();
    assert_eq!(connect.len(), 1, "{spans:#?}");
    assert_eq!(connect[0].attr("ax.sandbox.denied.network"), Some("Int(1)"), "{:?}", connect[0]);
    let ok = spans.iter().find(|s| s.name == "hostile.ok").expect("the ok call's span");
    assert!(ok.attributes.iter().all(|(k, _)| !k.starts_with("ax.sandbox")), "{ok:?}");
}

#[test]
fn commands_that_run_in_process_refuse_a_sandboxed_plugin() {
    let scene = Scene::new();
    let dir = manifest_dir(&scene, "[sandbox]\n");
    let out = run(ax().arg("perf").arg("run").arg(&dir).args(["--no-build", "--method", "ok", "--iterations", "1"]));
    assert_one_error(&out, &["declares [sandbox]", "`ax perf run` cannot enforce", "AX_NO_SANDBOX=1"]);
}

#[test]
fn the_debugger_confines_a_sandboxed_plugin_and_stops_where_the_sandbox_denies() {
    let scene = Scene::new();
    let dir = manifest_dir(&scene, "[sandbox]\nfs_read = [\"../data\"]\n");
    let listener = Listener::start();
    let mut dap = DapClient::start();
    dap.request("initialize", json!({ "adapterID": "ax", "linesStartAt1": true }));
    let calls = json!([
        { "method": "connect", "input": { "port": listener.port } },
        { "method": "read_file", "input": { "path": scene.path("home/.ssh/id_rsa") } },
        { "method": "read_file", "input": { "path": scene.path("data/words.txt") } },
    ]);
    let launched = dap.request("launch", json!({ "plugin": dir, "calls": calls, "build": false }));
    assert_eq!(launched["success"], true, "{launched}");
    let filters = dap.request("setExceptionBreakpoints", json!({ "filters": ["sandbox"] }));
    assert_eq!(filters["success"], true, "{filters}");
    dap.request("configurationDone", json!({}));

    // Stopped inside the denied `socket`, in the span that made it.
    let stopped = dap.event("stopped");
    assert_eq!(stopped["body"]["reason"], "exception", "{stopped}");
    let thread = stopped["body"]["threadId"].clone();
    let info = dap.request("exceptionInfo", json!({ "threadId": thread }));
    assert_eq!(info["body"]["exceptionId"], "sandbox", "{info}");
    let description = info["body"]["description"].as_str().unwrap_or_default();
    assert!(description.contains("`socket`") && description.contains("network"), "{info}");
    let trace = dap.request("stackTrace", json!({ "threadId": thread }));
    let frames: Vec<&str> =
        trace["body"]["stackFrames"].as_array().unwrap().iter().filter_map(|f| f["name"].as_str()).collect();
    assert!(frames.len() >= 2 && frames[0].contains("socket (denied by the sandbox)"), "{frames:?}");
    assert!(frames[1].contains("connect_out"), "the denying span is the next frame: {frames:?}");
    let frame = trace["body"]["stackFrames"][0]["id"].clone();
    let scopes = dap.request("scopes", json!({ "frameId": frame }));
    let reference = scopes["body"]["scopes"][0]["variablesReference"].clone();
    let variables = dap.request("variables", json!({ "variablesReference": reference }));
    let names: Vec<&str> =
        variables["body"]["variables"].as_array().unwrap().iter().filter_map(|v| v["name"].as_str()).collect();
    assert!(names.contains(&"denied") && names.contains(&"port"), "{names:?}");

    dap.request("continue", json!({ "threadId": thread }));
    dap.event("terminated");
    let output = dap.output();
    assert!(output.contains("Operation not permitted"), "the denied call fails with EPERM: {output}");
    assert!(output.contains("allowed"), "fs_read is readable under the debugger: {output}");
    assert!(!output.contains("secret"), "the debug host read outside fs_read: {output}");
    assert_eq!(listener.seen(), 0, "the debugged plugin reached the listener");
}

#[test]
fn a_sandboxed_plugin_hot_reloads_under_the_debugger() {
    let scene = Scene::new();
    let library = scene.path("build/libfixture_reload_counter.so");
    std::fs::create_dir_all(library.parent().unwrap()).unwrap();
    let replace = |variant: &str| {
        let staged = library.with_extension("staged");
        std::fs::copy(ax_e2e::reload_variant(variant, false), &staged).unwrap();
        std::fs::rename(&staged, &library).unwrap();
    };
    replace("v1");
    let dir = scene.path("plugin");
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = format!("[plugin]\nname = \"counter\"\nversion = \"0.1.0\"\nlibrary = {:?}\n[sandbox]\n", library);
    std::fs::write(dir.join("ax-plugin.toml"), manifest).unwrap();

    let mut dap = DapClient::start();
    dap.request("initialize", json!({ "adapterID": "ax" }));
    let launch = json!({ "plugin": dir, "build": false, "hotReload": true, "keepRunning": true, "calls": [] });
    let launched = dap.request("launch", launch);
    assert_eq!(launched["success"], true, "{launched}");
    dap.request("configurationDone", json!({}));
    let call = |dap: &mut DapClient, text: &str| {
        let expression = format!(".call count {}", json!({ "text": text }));
        let answer = dap.request("evaluate", json!({ "expression": expression, "context": "repl" }));
        assert_eq!(answer["success"], true, "{answer}");
    };
    call(&mut dap, "a b");
    dap.wait_for_output("count → {\"total\":2");
    // The rebuilt library is a new file: the sandbox lets the debug host read
    // its folder (and says so), or the reload could not open it.
    replace("v2");
    let output = dap.wait_for_output("ax: generation 2: reloaded in");
    assert!(output.contains("sandboxed with hot reload"), "{output}");
    call(&mut dap, "c");
    dap.wait_for_output("count → {\"total\":3,\"version\":\"v2\"");
    dap.request("disconnect", json!({}));
}

#[test]
fn the_debugger_runs_a_sandboxed_plugin_unconfined_only_when_told() {
    let scene = Scene::new();
    let dir = manifest_dir(&scene, "[sandbox]\n");
    let mut dap = DapClient::start();
    dap.request("initialize", json!({ "adapterID": "ax", "linesStartAt1": true }));
    let calls = json!([{ "method": "read_file", "input": { "path": scene.path("home/.ssh/id_rsa") } }]);
    let env = json!({ "AX_NO_SANDBOX": "1" });
    let launched = dap.request("launch", json!({ "plugin": dir, "calls": calls, "build": false, "env": env }));
    assert_eq!(launched["success"], true, "{launched}");
    dap.request("configurationDone", json!({}));
    dap.event("terminated");
    let output = dap.wait_for_output("[sandbox] not enforced under the debugger");
    assert!(output.contains("secret"), "AX_NO_SANDBOX runs it with the user's rights: {output}");
}

#[test]
fn a_bad_sandbox_section_is_one_clear_error() {
    let scene = Scene::new();
    for (extra, expected) in [
        ("[sandbox]\nnetwork = \"lo\"\n", "expected one of `none`, `loopback`, `any`"),
        ("[sandbox]\nfs_raed = [\"data\"]\n", "unknown field `fs_raed`"),
    ] {
        let dir = manifest_dir(&scene, extra);
        let out = run(ax().arg("run").arg(&dir).arg("ok"));
        assert_one_error(&out, &[expected, "ax-plugin.toml:"]);
    }
}
