//! Benchmarks of `ax-lsp` against its goals (BRIEF.md):
//!
//! - `start_to_initialize`: process start → `initialize` answered (goal ≤ 10 ms),
//!   the real binary over stdio;
//! - `inlay_hints_10k_lines`: inlay hints for a generated 10 000-line file with
//!   1 000 instrumented functions (goal ≤ 5 ms), as a request round trip to the
//!   real server and as the bare computation;
//! - `profile_rewritten_to_diagnostics`: a profile rewritten (temp file +
//!   rename, as ax writes) → the new diagnostics published (goal ≤ 200 ms,
//!   debounce included).
//!
//! Figures are printed by criterion; nothing here asserts a time.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use ax_lsp::plugin::PluginCrate;
use ax_lsp::settings::Settings;
use ax_profile::{CallsiteKind, CallsiteProfile, PluginInfo, Profile, Time};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_ax-lsp");

/// A running `ax-lsp --stdio` with a reader thread splitting its output into messages.
struct Server {
    child: Child,
    stdin: ChildStdin,
    rx: Receiver<Value>,
    next_id: u64,
}

impl Server {
    fn start() -> Server {
        let mut child = Command::new(BIN)
            .arg("--stdio")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn ax-lsp");
        let stdin = child.stdin.take().expect("stdin");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            loop {
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    if out.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let line = line.trim();
                    if line.is_empty() {
                        break;
                    }
                    if let Some(v) = line.strip_prefix("Content-Length:") {
                        len = v.trim().parse().expect("length");
                    }
                }
                let mut body = vec![0; len];
                if out.read_exact(&mut body).is_err() {
                    return;
                }
                if tx.send(serde_json::from_slice(&body).expect("json")).is_err() {
                    return;
                }
            }
        });
        Server { child, stdin, rx, next_id: 0 }
    }

    fn send(&mut self, msg: Value) {
        let body = msg.to_string();
        write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).expect("write");
        self.stdin.flush().expect("flush");
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let msg = self.rx.recv_timeout(Duration::from_secs(10)).expect("response");
            if msg["id"] == id && msg.get("method").is_none() {
                return msg["result"].clone();
            }
        }
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    fn initialize(&mut self, root: Option<&Path>) {
        let root_uri = root.map(|r| format!("file://{}", r.display()));
        self.request("initialize", json!({"processId": null, "rootUri": root_uri, "capabilities": {}}));
        self.notify("initialized", json!({}));
    }

    fn stop(mut self) {
        self.request("shutdown", Value::Null);
        self.notify("exit", Value::Null);
        let _ = self.child.wait();
    }
}

/// A plugin crate with a 10 000-line `src/lib.rs` of 1 000 instrumented
/// functions and a profile of them.
fn generated_crate(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("ax-plugin.toml"), "[plugin]\nname = \"bench\"\nversion = \"0.1.0\"\n").unwrap();
    let mut src = String::from("//! Generated.\n");
    let mut profile = Profile::new(PluginInfo::named("bench"), "bench", "bench");
    for i in 0..1000 {
        let line = src.lines().count() as u32 + 1;
        src.push_str(&format!(
            "\n#[tracing::instrument(skip_all)]\nfn work_{i}(input: &str, n: u64) -> u64 {{\n    let a = input.len() as u64;\n    let b = a * n + {i};\n    // \"fn fake() {{\"\n    let c = b.rotate_left(3);\n    c ^ a\n}}\n\n"
        ));
        let mut time = Time::new();
        for k in 0..20u64 {
            time.record(1_000 + k * 37 * (i + 1), 900 + k * 30 * (i + 1), None);
        }
        profile.callsites.push(CallsiteProfile {
            kind: CallsiteKind::Span,
            name: format!("work_{i}"),
            target: "bench".to_owned(),
            file: "src/lib.rs".to_owned(),
            line: line + 1,
            count: 20,
            budget_violations: 0,
            time: Some(time),
            alloc_bytes: None,
            kept: None,
        });
    }
    assert!(src.lines().count() >= 10_000, "{} lines", src.lines().count());
    let lib = dir.join("src/lib.rs");
    std::fs::write(&lib, src).unwrap();
    profile.write(&dir.join(".ax/profile.json")).unwrap();
    lib
}

fn start_to_initialize(c: &mut Criterion) {
    let mut g = c.benchmark_group("ax-lsp");
    g.sample_size(30);
    g.bench_function("start_to_initialize", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                let mut s = Server::start();
                s.request("initialize", json!({"processId": null, "rootUri": null, "capabilities": {}}));
                total += t.elapsed();
                s.stop();
            }
            total
        })
    });
    g.finish();
}

fn inlay_hints(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let crate_dir = dir.path().canonicalize().unwrap().join("bench");
    let lib = generated_crate(&crate_dir);
    let text = std::fs::read_to_string(&lib).unwrap();

    let mut g = c.benchmark_group("ax-lsp");
    // The bare computation, outline cached (as the server keeps it per document)…
    let plugin = PluginCrate::read(&crate_dir);
    let settings = Settings::default();
    let outline = ax_lsp::scan::scan(&text);
    assert_eq!(ax_lsp::analysis::inlay_hints(&plugin, &lib, &text, &outline, &settings).len(), 1000);
    g.bench_function("inlay_hints_10k_lines/compute", |b| {
        b.iter(|| ax_lsp::analysis::inlay_hints(&plugin, &lib, &text, &outline, &settings))
    });
    // …the scan the server does on each change…
    g.bench_function("scan_10k_lines", |b| b.iter(|| ax_lsp::scan::scan(&text)));
    // …and the request as a client sees it, over stdio.
    let mut s = Server::start();
    s.initialize(Some(&crate_dir));
    let uri = format!("file://{}", lib.display());
    s.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": uri, "languageId": "rust", "version": 1, "text": text}}),
    );
    let params = json!({"textDocument": {"uri": uri}, "range": {"start": {"line": 0, "character": 0}, "end": {"line": 20000, "character": 0}}});
    assert_eq!(s.request("textDocument/inlayHint", params.clone()).as_array().map(Vec::len), Some(1000));
    g.bench_function("inlay_hints_10k_lines/request", |b| {
        b.iter(|| s.request("textDocument/inlayHint", params.clone()))
    });
    g.finish();
    s.stop();
}

fn profile_to_diagnostics(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let crate_dir = dir.path().canonicalize().unwrap().join("bench");
    let lib = generated_crate(&crate_dir);
    let profile_path = crate_dir.join(".ax/profile.json");
    let mut profile = Profile::read(&profile_path).unwrap();
    let mut s = Server::start();
    s.initialize(Some(&crate_dir));
    let uri = format!("file://{}", lib.display());
    // Drain the first round of diagnostics.
    std::thread::sleep(Duration::from_millis(300));
    while s.rx.try_recv().is_ok() {}

    let mut g = c.benchmark_group("ax-lsp");
    g.sample_size(20);
    // From 2 on, so every message reads "N calls were stopped".
    let mut violations = 1;
    g.bench_function("profile_rewritten_to_diagnostics", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                violations += 1;
                profile.callsites[0].budget_violations = violations;
                let expected = format!("{violations} calls were stopped");
                let t = Instant::now();
                profile.write(&profile_path).unwrap();
                loop {
                    let msg = s.rx.recv_timeout(Duration::from_secs(10)).expect("diagnostics");
                    if msg["method"] == "textDocument/publishDiagnostics"
                        && msg["params"]["uri"] == uri.as_str()
                        && msg["params"]["diagnostics"].to_string().contains(&expected)
                    {
                        break;
                    }
                }
                total += t.elapsed();
            }
            total
        })
    });
    g.finish();
    s.stop();
}

criterion_group!(benches, start_to_initialize, inlay_hints, profile_to_diagnostics);
criterion_main!(benches);
