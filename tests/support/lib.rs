//! Support for ax's end-to-end tests: the plugin libraries and binaries under
//! test, built once per test run from source through cargo.
//!
//! Fixtures are workspace members (`examples/*`, `tests/fixtures/*`). The first
//! test that needs an artifact runs one `cargo build --message-format=json` for
//! all of them and reads each artifact's path from cargo's messages, so no test
//! guesses a file name or depends on an earlier manual build.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

use serde_json::Value;

/// Packages whose artifacts the tests use.
const PACKAGES: &[&str] = &[
    "word-count",
    "fixture-no-entry",
    "fixture-wrong-abi",
    "fixture-panic-init",
    "fixture-panic-call",
    "fixture-panic-save",
    "fixture-bench-plugin",
    "fixture-hostile",
    "fixture-attacker",
    "fixture-other-sdk",
    "fixture-concurrent",
    "fixture-thread-bound",
    "fixture-leaky",
    "ax-cli",
    "ax-dap",
    "ax-lsp",
];

#[derive(Debug)]
struct Artifacts {
    /// Package name → cdylib.
    libraries: HashMap<String, PathBuf>,
    /// Binary name → executable.
    binaries: HashMap<String, PathBuf>,
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_owned()
}

/// `cargo`, as the test runner was started with.
pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn artifacts() -> &'static Artifacts {
    static ARTIFACTS: OnceLock<Artifacts> = OnceLock::new();
    ARTIFACTS.get_or_init(|| build_all(false))
}

fn release_artifacts() -> &'static Artifacts {
    static ARTIFACTS: OnceLock<Artifacts> = OnceLock::new();
    ARTIFACTS.get_or_init(|| build_all(true))
}

fn build_all(release: bool) -> Artifacts {
    build(PACKAGES, release, &[])
}

/// Runs one `cargo build` of `packages` and collects their artifacts.
fn build(packages: &[&str], release: bool, env: &[(&str, &str)]) -> Artifacts {
    let mut cmd = cargo();
    cmd.current_dir(workspace_root()).args(["build", "--message-format=json-render-diagnostics"]);
    if release {
        cmd.arg("--release");
    }
    for package in packages {
        cmd.args(["-p", package]);
    }
    cmd.envs(env.iter().copied());
    let output = cmd.stderr(Stdio::inherit()).output().expect("cargo runs");
    assert!(output.status.success(), "building the test artifacts failed");
    let mut artifacts = Artifacts { libraries: HashMap::new(), binaries: HashMap::new() };
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<Value>(line) else { continue };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let kinds: Vec<&str> =
            msg["target"]["kind"].as_array().map(|k| k.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        let package = msg["package_id"].as_str().unwrap_or_default();
        let files: Vec<PathBuf> =
            msg["filenames"].as_array().into_iter().flatten().filter_map(Value::as_str).map(PathBuf::from).collect();
        if kinds.contains(&"cdylib") {
            let name = packages.iter().find(|p| package_matches(package, p)).copied().unwrap_or_default();
            if let Some(lib) = files.iter().find(|f| f.to_string_lossy().ends_with(std::env::consts::DLL_SUFFIX)) {
                artifacts.libraries.insert(name.to_owned(), lib.clone());
            }
        }
        if kinds.contains(&"bin")
            && let Some(exe) = msg["executable"].as_str()
        {
            let name = msg["target"]["name"].as_str().unwrap_or_default().to_owned();
            artifacts.binaries.insert(name, PathBuf::from(exe));
        }
    }
    artifacts
}

/// cargo's package ids look like `path+file:///…/word-count#0.1.0`.
fn package_matches(package_id: &str, name: &str) -> bool {
    package_id.contains(&format!("/{name}#")) || package_id.contains(&format!("#{name}@"))
}

/// The cdylib of a workspace package (`word-count`, `fixture-panic-call`, …).
pub fn library(package: &str) -> &'static Path {
    artifacts().libraries.get(package).unwrap_or_else(|| panic!("no cdylib built for {package}"))
}

/// The cdylib of a workspace package, built with the release profile (for benchmarks).
pub fn release_library(package: &str) -> &'static Path {
    release_artifacts().libraries.get(package).unwrap_or_else(|| panic!("no cdylib built for {package}"))
}

/// A variant of the `fixture-reload-counter` plugin (`v1`, `v2`, `panic-init`,
/// `refuse-state`, `slow-init`), built with `AX_RELOAD_VARIANT` set and copied to
/// `target/reload-variants/<profile>/<variant>/` so that variants live side by side.
pub fn reload_variant(variant: &str, release: bool) -> PathBuf {
    built_variant("fixture-reload-counter", ("AX_RELOAD_VARIANT", variant), release, "target/reload-variants")
}

/// The `fixture-perf-ab` plugin built (release) to do `extra_percent` % more
/// work per call than its default build (`AX_PERF_AB_EXTRA_PERCENT`), copied
/// to `target/perf-ab-variants/release/<extra_percent>/` so that builds live
/// side by side. Release builds are the ones to time: two copies of one debug
/// build can differ by several percent from where they land.
pub fn perf_ab_variant(extra_percent: u32) -> PathBuf {
    let value = extra_percent.to_string();
    built_variant("fixture-perf-ab", ("AX_PERF_AB_EXTRA_PERCENT", &value), true, "target/perf-ab-variants")
}

/// `package` built with the compile-time variable `set` and copied to
/// `<dir>/<profile>/<value>/`, once per test process.
fn built_variant(package: &str, set: (&str, &str), release: bool, dir: &str) -> PathBuf {
    static BUILT: Mutex<Vec<(String, PathBuf)>> = Mutex::new(Vec::new());
    let profile = if release { "release" } else { "debug" };
    let key = format!("{package} {}={} {profile}", set.0, set.1);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, path)) = built.iter().find(|(k, _)| *k == key) {
        return path.clone();
    }
    let artifacts = build(&[package], release, &[set]);
    let lib = artifacts.libraries.get(package).unwrap_or_else(|| panic!("{package} builds no cdylib"));
    let dir = workspace_root().join(dir).join(profile).join(set.1);
    std::fs::create_dir_all(&dir).expect("variant directory");
    let copy = dir.join(lib.file_name().expect("a file name"));
    std::fs::copy(lib, &copy).expect("variant copied");
    built.push((key, copy.clone()));
    copy
}

/// A binary of the workspace built with the release profile (for benchmarks).
pub fn release_binary(name: &str) -> &'static Path {
    release_artifacts().binaries.get(name).unwrap_or_else(|| panic!("no binary {name} built"))
}

/// A binary of the workspace (`ax`).
pub fn binary(name: &str) -> &'static Path {
    artifacts().binaries.get(name).unwrap_or_else(|| panic!("no binary {name} built"))
}

/// A command running the `ax` binary, with logs at their default level.
pub fn ax() -> Command {
    let mut cmd = Command::new(binary("ax"));
    cmd.env_remove("AX_LOG").stdin(Stdio::null());
    cmd
}

/// The line of `file` (relative to the workspace root) holding the comment `// #MARKER`.
pub fn marker_line(file: &str, marker: &str) -> u32 {
    let text = std::fs::read_to_string(workspace_root().join(file)).expect("fixture source readable");
    let needle = format!("// #{marker}");
    let index = text.lines().position(|l| l.contains(&needle)).unwrap_or_else(|| panic!("no {needle} in {file}"));
    index as u32 + 1
}

/// What a finished `ax` process printed.
#[derive(Debug)]
pub struct Output {
    pub code: Option<i32>,
    /// The signal that ended the process, if one did.
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// The lines of stderr that start with `error:`.
    pub fn error_lines(&self) -> Vec<&str> {
        self.stderr.lines().filter(|l| l.starts_with("error:")).collect()
    }
}

/// A failure as ax reports one: exit 1 (not an abort's 134), exactly one
/// `error:` line holding every fragment, and no Rust panic output.
pub fn assert_one_error(out: &Output, fragments: &[&str]) {
    assert_eq!(out.code, Some(1), "{out:?}");
    let errors = out.error_lines();
    assert_eq!(errors.len(), 1, "{out:?}");
    for fragment in fragments {
        assert!(errors[0].contains(fragment), "{fragment:?} not in {:?}", errors[0]);
    }
    // ax's own panic would print Rust's `thread 'main' panicked` and a backtrace hint.
    assert!(!out.stderr.contains("thread 'main' panicked") && !out.stderr.contains("RUST_BACKTRACE"), "{}", out.stderr);
}

/// Runs `cmd` to completion.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("process runs");
    #[cfg(unix)]
    let signal = std::os::unix::process::ExitStatusExt::signal(&out.status);
    #[cfg(not(unix))]
    let signal = None;
    Output {
        code: out.status.code(),
        signal,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A process whose output is read line by line as it comes.
#[derive(Debug)]
pub struct Running {
    child: std::process::Child,
    stdout: std::sync::mpsc::Receiver<String>,
    stderr: std::sync::mpsc::Receiver<String>,
    /// The process's stdin, when `cmd` had it piped.
    stdin: Option<std::process::ChildStdin>,
    /// Every stderr line seen so far, for failure messages.
    pub stderr_seen: Vec<String>,
}

impl Running {
    /// Starts `cmd` with piped stdout and stderr (and stdin if `cmd` pipes it:
    /// see [`Running::send`]).
    pub fn spawn(cmd: &mut Command) -> Running {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("process starts");
        fn lines(pipe: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            rx
        }
        let stdout = lines(child.stdout.take().expect("piped"));
        let stderr = lines(child.stderr.take().expect("piped"));
        let stdin = child.stdin.take();
        Running { child, stdout, stderr, stdin, stderr_seen: Vec::new() }
    }

    /// Writes `line` and a newline to the process's stdin (piped by the caller).
    pub fn send(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self.stdin.as_mut().expect("spawned with stdin piped");
        stdin.write_all(format!("{line}\n").as_bytes()).and_then(|()| stdin.flush()).expect("stdin written");
    }

    /// Waits for the process to end, at most `timeout`; its exit code.
    pub fn wait(&mut self, timeout: std::time::Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("process status") {
                return status.code();
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("the process did not end within {timeout:?}; stderr so far:\n{}", self.drain_stderr())
    }

    /// Waits for a stdout line equal to `expected`.
    pub fn expect_stdout(&mut self, expected: &str, timeout: std::time::Duration) {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) if line == expected => return,
                Ok(_) => {}
                Err(_) => panic!("no stdout line {expected:?}; stderr so far:\n{}", self.drain_stderr()),
            }
        }
    }

    /// Waits for a stderr line containing every one of `fragments`; returns it.
    pub fn expect_stderr(&mut self, fragments: &[&str], timeout: std::time::Duration) -> String {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    self.stderr_seen.push(line.clone());
                    if fragments.iter().all(|f| line.contains(f)) {
                        return line;
                    }
                }
                Err(_) => panic!("no stderr line with {fragments:?}; stderr so far:\n{}", self.drain_stderr()),
            }
        }
    }

    fn drain_stderr(&mut self) -> String {
        self.stderr_seen.extend(self.stderr.try_iter());
        self.stderr_seen.join("\n")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads `Content-Length`-framed JSON messages from a server's stdout on a
/// thread of its own; the channel closes when the output ends or stops being
/// framed JSON.
pub fn framed_messages(stdout: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<Value> {
    let (tx, messages) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::{BufRead, Read};
        let mut reader = std::io::BufReader::new(stdout);
        loop {
            let mut length = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                if let Some(n) = line.strip_prefix("Content-Length: ") {
                    length = n.parse::<usize>().ok();
                }
            }
            let mut body = vec![0; length.unwrap_or(0)];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            let Ok(message) = serde_json::from_slice::<Value>(&body) else { return };
            if tx.send(message).is_err() {
                return;
            }
        }
    });
    messages
}

/// A DAP client driving `ax-dap --stdio`: requests numbered, responses matched
/// to them, events kept in order for [`DapClient::event`].
#[derive(Debug)]
pub struct DapClient {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    messages: std::sync::mpsc::Receiver<Value>,
    events: std::collections::VecDeque<Value>,
    seq: i64,
}

impl DapClient {
    /// Starts `ax-dap --stdio`, with the `ax` binary of this build as its host.
    pub fn start() -> DapClient {
        DapClient::start_with_env(&[])
    }

    /// [`DapClient::start`] with more environment variables.
    pub fn start_with_env(env: &[(&str, &Path)]) -> DapClient {
        let mut child = Command::new(binary("ax-dap"))
            .arg("--stdio")
            .envs(env.iter().copied())
            .env("AX_BIN", binary("ax"))
            .env_remove("AX_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("ax-dap starts");
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let messages = framed_messages(stdout);
        DapClient { child, stdin, messages, events: std::collections::VecDeque::new(), seq: 0 }
    }

    /// Sends raw bytes (for malformed-input tests).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        use std::io::Write;
        self.stdin.write_all(bytes).expect("ax-dap reads");
        self.stdin.flush().expect("ax-dap reads");
    }

    /// Sends a request and waits for its response.
    pub fn request(&mut self, command: &str, arguments: Value) -> Value {
        self.seq += 1;
        let seq = self.seq;
        let body = serde_json::to_vec(&serde_json::json!({
            "seq": seq, "type": "request", "command": command, "arguments": arguments
        }))
        .expect("JSON");
        self.send_raw(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        self.send_raw(&body);
        loop {
            let message = self.next_message(std::time::Duration::from_secs(60), &format!("the response to {command}"));
            if message["type"] == "response" && message["request_seq"] == seq {
                return message;
            }
            if message["type"] == "event" {
                self.events.push_back(message);
            }
        }
    }

    fn next_message(&mut self, timeout: std::time::Duration, what: &str) -> Value {
        self.messages
            .recv_timeout(timeout)
            .unwrap_or_else(|_| panic!("no {what} from ax-dap; events so far: {:#?}", self.events))
    }

    /// Waits for the next event called `name` (earlier other events are kept).
    pub fn event(&mut self, name: &str) -> Value {
        if let Some(pos) = self.events.iter().position(|e| e["event"] == name) {
            return self.events.remove(pos).expect("present");
        }
        loop {
            let message = self.next_message(std::time::Duration::from_secs(60), &format!("`{name}` event"));
            if message["type"] == "event" {
                if message["event"] == name {
                    return message;
                }
                self.events.push_back(message);
            }
        }
    }

    /// The text of every `output` event received so far, in order.
    pub fn output(&mut self) -> String {
        while let Ok(message) = self.messages.try_recv() {
            if message["type"] == "event" {
                self.events.push_back(message);
            }
        }
        self.events.iter().filter(|e| e["event"] == "output").filter_map(|e| e["body"]["output"].as_str()).collect()
    }

    /// Waits until the output so far contains `needle`; returns it.
    pub fn wait_for_output(&mut self, needle: &str) -> String {
        loop {
            let output = self.output();
            if output.contains(needle) {
                return output;
            }
            let message = self.next_message(std::time::Duration::from_secs(60), &format!("output {needle:?}"));
            if message["type"] == "event" {
                self.events.push_back(message);
            }
        }
    }

    /// Waits for ax-dap to exit; returns whether it exited successfully.
    pub fn wait(&mut self) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        false
    }
}

impl Drop for DapClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
