//! Isolated mode: a plugin in a child `ax` process, with hard limits.
//!
//! [`IsolatedPlugin`] (the parent side) starts `ax __isolated-host --socket P`
//! (any binary that calls [`serve`]; started by `child_host`), which connects back over a Unix socket and
//! runs the plugin in an ordinary in-process [`Host`] — with its soft budgets.
//! Requests and replies are JSON lines ([`Request`], [`Reply`]); the child's
//! log lines and budget violations travel as notifications (id 0) and are
//! republished on the parent's event bus; its stdout and stderr are read line by
//! line (the tail of stderr explains a crash).
//!
//! While a call runs the parent watches the child every [`TICK`]: it exits
//! (SIGSEGV, abort, stack overflow) → the call fails with `CallError::Crashed`
//! naming the signal; it overruns `max_duration` (plus a grace for the soft
//! abort) or `max_cpu_time` (process CPU from procfs) or grows its resident
//! memory beyond `max_memory` → it is killed and the call fails with
//! `CallError::BudgetExceeded`. Either way a new child is started, the plugin
//! loaded and the last state snapshot restored (taken after every successful
//! call), so the next call is served.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use crossbeam_channel::{self as channel, Receiver, RecvTimeoutError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use ax_runtime::wire::{Envelope, send};
use ax_runtime::{
    Budget, BudgetKind, CHILD_CRASH_PREFIX, CallError, Event, EventBus, Host, HostOptions, Level, LoadError, LogLine,
    PluginFailure, SandboxDenials, SavedState, SourceLocation, Usage, Violation, WATCHDOG_TICK as TICK,
};

use crate::child_host::start_child_host_with;
use crate::sandbox::{self, Sandbox};

/// How long the child gets, beyond `max_duration`, to stop a call itself (the
/// soft abort) before it is killed.
const KILL_GRACE: Duration = Duration::from_millis(25);
/// Lines of the child's stderr kept to explain a crash.
const STDERR_TAIL: usize = 20;

// ---------------------------------------------------------------- wire types

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Request {
    Load {
        library: PathBuf,
        name: String,
        config: String,
        #[serde(default)]
        sandbox: Option<Sandbox>,
    },
    Call {
        method: String,
        input: String,
        budget: WireBudget,
    },
    SaveState,
    RestoreState {
        schema_version: u32,
        bytes: String,
    },
    Shutdown,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct WireBudget {
    max_memory: Option<u64>,
    max_cpu_time_ns: Option<u64>,
    max_duration_ns: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Reply {
    Loaded {
        methods: Vec<String>,
        /// The sandbox rules the kernel could not enforce (best-effort only).
        #[serde(default)]
        unenforced: Vec<String>,
    },
    Output {
        output: String,
        usage: WireUsage,
    },
    Failed {
        error: WireError,
        usage: WireUsage,
    },
    State {
        schema_version: u32,
        bytes: String,
    },
    Done,
    /// A notification: a log line of the plugin.
    Log {
        level: u8,
        target: String,
        message: String,
        fields: Vec<(String, Value)>,
        file: Option<String>,
        line: u32,
    },
    /// A notification: the child's watchdog saw a limit crossed.
    Violation {
        method: String,
        violation: WireViolation,
    },
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct WireUsage {
    wall_ns: u64,
    cpu_ns: Option<u64>,
    allocated: Option<u64>,
    peak: Option<u64>,
    /// System calls the sandbox denied during the call, per capability.
    #[serde(default)]
    denials: Vec<(String, u64)>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct WireViolation {
    kind: u8,
    limit: u64,
    observed: u64,
    noticed_after_ns: u64,
    #[serde(default)]
    at_end: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireError {
    Plugin { kind: String, message: String },
    Panic { message: String, file: Option<String>, line: u32, column: Option<u32> },
    Protocol { message: String },
    Budget { violations: Vec<WireViolation> },
    InvalidOutput { message: String },
    Load { message: String },
    Stopped,
}

impl From<&Budget> for WireBudget {
    fn from(b: &Budget) -> Self {
        WireBudget {
            max_memory: b.max_memory,
            max_cpu_time_ns: b.max_cpu_time.map(|d| d.as_nanos() as u64),
            max_duration_ns: b.max_duration.map(|d| d.as_nanos() as u64),
        }
    }
}

impl From<&WireBudget> for Budget {
    fn from(b: &WireBudget) -> Self {
        Budget {
            max_memory: b.max_memory,
            max_cpu_time: b.max_cpu_time_ns.map(Duration::from_nanos),
            max_duration: b.max_duration_ns.map(Duration::from_nanos),
        }
    }
}

impl From<&Usage> for WireUsage {
    fn from(u: &Usage) -> Self {
        WireUsage {
            wall_ns: u.wall.as_nanos() as u64,
            cpu_ns: u.cpu.map(|c| c.as_nanos() as u64),
            allocated: u.allocated,
            peak: u.peak,
            denials: Vec::new(),
        }
    }
}

impl From<&WireUsage> for Usage {
    fn from(u: &WireUsage) -> Self {
        let mut denied = SandboxDenials::default();
        for (capability, count) in &u.denials {
            // A capability this build does not know is still in the totals
            // and the event (`count_denials`), just not in the usage.
            denied.add(capability, *count);
        }
        Usage {
            wall: Duration::from_nanos(u.wall_ns),
            cpu: u.cpu_ns.map(Duration::from_nanos),
            allocated: u.allocated,
            peak: u.peak,
            paused: Duration::ZERO,
            denied,
        }
    }
}

fn kind_code(kind: BudgetKind) -> u8 {
    match kind {
        BudgetKind::Memory => 0,
        BudgetKind::CpuTime => 1,
        BudgetKind::Duration => 2,
    }
}

fn kind_from(code: u8) -> BudgetKind {
    match code {
        0 => BudgetKind::Memory,
        1 => BudgetKind::CpuTime,
        _ => BudgetKind::Duration,
    }
}

impl From<&Violation> for WireViolation {
    fn from(v: &Violation) -> Self {
        WireViolation {
            kind: kind_code(v.kind),
            limit: v.limit,
            observed: v.observed,
            noticed_after_ns: v.noticed_after.as_nanos() as u64,
            at_end: v.at_end,
        }
    }
}

impl From<&WireViolation> for Violation {
    fn from(v: &WireViolation) -> Self {
        Violation {
            kind: kind_from(v.kind),
            limit: v.limit,
            observed: v.observed,
            noticed_after: Duration::from_nanos(v.noticed_after_ns),
            at_end: v.at_end,
        }
    }
}

fn wire_error(error: &CallError) -> WireError {
    match error {
        CallError::Plugin { failure: PluginFailure::Error { kind, message }, .. } => {
            WireError::Plugin { kind: kind.clone(), message: message.clone() }
        }
        CallError::Plugin { failure: PluginFailure::Panic { message, location }, .. } => WireError::Panic {
            message: message.clone(),
            file: location.as_ref().map(|l| l.file.clone()),
            line: location.as_ref().map_or(0, |l| l.line),
            column: location.as_ref().and_then(|l| l.column),
        },
        CallError::Plugin { failure: PluginFailure::Protocol { message }, .. } => {
            WireError::Protocol { message: message.clone() }
        }
        CallError::BudgetExceeded { violations, .. } => {
            WireError::Budget { violations: violations.iter().map(WireViolation::from).collect() }
        }
        CallError::InvalidOutput { message, .. } => WireError::InvalidOutput { message: message.clone() },
        CallError::Crashed { cause, .. } | CallError::NotLoaded { cause, .. } => {
            WireError::Protocol { message: cause.clone() }
        }
        CallError::NotActivated { .. } => WireError::Protocol { message: error.to_string() },
        CallError::Stopped { .. } => WireError::Stopped,
    }
}

fn call_error(plugin: &str, method: &str, error: WireError) -> CallError {
    let (plugin, method) = (plugin.to_owned(), method.to_owned());
    let failure = |failure| CallError::Plugin { plugin: plugin.clone(), method: method.clone(), failure };
    match error {
        WireError::Plugin { kind, message } => failure(PluginFailure::Error { kind, message }),
        WireError::Panic { message, file, line, column } => {
            failure(PluginFailure::Panic { message, location: file.map(|file| SourceLocation { file, line, column }) })
        }
        WireError::Protocol { message } | WireError::Load { message } => failure(PluginFailure::Protocol { message }),
        WireError::Budget { violations } => {
            CallError::BudgetExceeded { plugin, method, violations: violations.iter().map(Violation::from).collect() }
        }
        WireError::InvalidOutput { message } => CallError::InvalidOutput { plugin, method, message },
        WireError::Stopped => CallError::Stopped { plugin },
    }
}

// ---------------------------------------------------------------- the child

/// The child side: connects to `socket` and serves one plugin until told to
/// shut down or the parent goes away. `ax __isolated-host` calls this.
/// It must be called before the process starts a second thread.
pub fn serve(socket: &Path) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    sandbox::enter_own_network_namespace();
    #[cfg(unix)]
    {
        // A crashing plugin must not leave core files behind.
        let no_core = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: a valid rlimit struct.
        unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) };
    }
    let stream = UnixStream::connect(socket)?;
    let writer = Arc::new(Mutex::new(stream.try_clone()?));
    // The parent's AX_LOG (inherited) decides which log lines cross, as in-process.
    let mut options = HostOptions::default();
    // Usage (CPU time included) is shown to the user there.
    options.instrumentation.call_cpu = true;
    if let Some(filter) = std::env::var("AX_LOG").ok().and_then(|f| f.parse().ok()) {
        options.instrumentation.log_filter = filter;
    }
    let host = Host::with_options(options)?;
    let notify = writer.clone();
    host.events().subscribe(move |event| {
        let reply = match event {
            Event::Log(line) => Reply::Log {
                level: match line.level {
                    Level::Error => 1,
                    Level::Warn => 2,
                    Level::Info => 3,
                    Level::Debug => 4,
                    Level::Trace => 5,
                },
                target: line.target.clone(),
                message: line.message.clone(),
                fields: line.fields.clone(),
                file: line.location.as_ref().map(|l| l.file.clone()),
                line: line.location.as_ref().map_or(0, |l| l.line),
            },
            Event::BudgetViolation { method, violation, .. } => {
                Reply::Violation { method: method.clone(), violation: violation.into() }
            }
            _ => return,
        };
        let _ = send(&mut *notify.lock().unwrap_or_else(|e| e.into_inner()), 0, reply);
    });
    let mut plugin = None;
    for line in BufReader::new(stream).lines() {
        let line = line?;
        let Ok(Envelope { id, body }) = serde_json::from_str::<Envelope<Request>>(&line) else { continue };
        let reply = match body {
            Request::Load { library, name, config, sandbox } => {
                // Linked or copied first, then confined, then opened: its
                // constructors run confined, and the sandbox grants only the
                // private path (a link from outside it would be refused).
                let loaded = host.stage_library(&library).map_err(|e| e.to_string()).and_then(|staged| {
                    let unenforced = match &sandbox {
                        Some(rules) => sandbox::apply(rules, staged.private_path(), host.lib_dir())?,
                        None => Vec::new(),
                    };
                    Ok((host.load_staged(staged, &name, &config), unenforced))
                });
                match loaded {
                    Ok((Ok(p), unenforced)) => {
                        let methods = p.methods().to_vec();
                        plugin = Some(p);
                        Reply::Loaded { methods, unenforced }
                    }
                    Ok((Err(e), _)) => {
                        Reply::Failed { error: WireError::Load { message: e.to_string() }, usage: WireUsage::default() }
                    }
                    Err(message) => Reply::Failed { error: WireError::Load { message }, usage: WireUsage::default() },
                }
            }
            Request::Call { method, input, budget } => match &plugin {
                Some(p) => {
                    let before = sandbox::denials();
                    let (result, usage) = p.call_raw_with(&method, input.as_bytes(), Some(&Budget::from(&budget)));
                    let mut usage = WireUsage::from(&usage);
                    usage.denials = sandbox::denials()
                        .into_iter()
                        .map(|(cap, n)| {
                            let was = before.iter().find(|(c, _)| *c == cap).map_or(0, |(_, n)| *n);
                            (cap, n - was)
                        })
                        .filter(|(_, n)| *n > 0)
                        .collect();
                    match result {
                        Ok(output) => Reply::Output { output: String::from_utf8_lossy(&output).into_owned(), usage },
                        Err(e) => Reply::Failed { error: wire_error(&e), usage },
                    }
                }
                None => Reply::Failed { error: WireError::Stopped, usage: WireUsage::default() },
            },
            Request::SaveState => match plugin.as_ref().map(|p| p.save_state()) {
                Some(Ok(saved)) => {
                    Reply::State { schema_version: saved.schema_version, bytes: BASE64.encode(&saved.bytes) }
                }
                Some(Err(e)) => Reply::Failed { error: wire_error(&e), usage: WireUsage::default() },
                None => Reply::Failed { error: WireError::Stopped, usage: WireUsage::default() },
            },
            Request::RestoreState { schema_version, bytes } => {
                let bytes = BASE64.decode(bytes).unwrap_or_default();
                match plugin.as_ref().map(|p| p.restore_state(&SavedState { schema_version, bytes: bytes.into() })) {
                    Some(Ok(())) => Reply::Done,
                    Some(Err(e)) => Reply::Failed { error: wire_error(&e), usage: WireUsage::default() },
                    None => Reply::Failed { error: WireError::Stopped, usage: WireUsage::default() },
                }
            }
            Request::Shutdown => {
                let result = plugin.take().map(|p| p.shutdown());
                let reply = match result {
                    Some(Err(e)) => Reply::Failed { error: wire_error(&e), usage: WireUsage::default() },
                    _ => Reply::Done,
                };
                send(&mut *writer.lock().unwrap_or_else(|e| e.into_inner()), id, reply)?;
                return Ok(());
            }
        };
        send(&mut *writer.lock().unwrap_or_else(|e| e.into_inner()), id, reply)?;
    }
    Ok(())
}

// ---------------------------------------------------------------- the parent

/// How an isolated plugin is run.
#[derive(Clone, Debug)]
pub struct IsolationOptions {
    /// The binary whose `__isolated-host --socket PATH` subcommand calls [`serve`]
    /// (the `ax` binary).
    pub host_binary: PathBuf,
    /// The plugin's `[sandbox]`, enforced in the child; `None` runs it with
    /// the user's rights.
    pub sandbox: Option<Sandbox>,
}

struct ChildProcess {
    process: std::process::Child,
    writer: UnixStream,
    replies: Receiver<(u64, Reply)>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    pid: u32,
}

impl ChildProcess {
    /// The child's exit, as words: `killed by SIGSEGV (segmentation fault)`.
    fn describe_exit(&mut self) -> String {
        let status = self.process.wait();
        let base = match status {
            #[cfg(unix)]
            Ok(status) if std::os::unix::process::ExitStatusExt::signal(&status).is_some() => {
                let signal = std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0);
                format!("killed by {}", signal_name(signal))
            }
            Ok(status) => format!("exited with {status}"),
            Err(e) => format!("vanished ({e})"),
        };
        // Give the stderr reader a moment to catch the last words.
        std::thread::sleep(Duration::from_millis(20));
        let tail = self.stderr_tail.lock().unwrap_or_else(|e| e.into_inner());
        // The child's crash reporter names where the plugin was: ` in `span` (file:line)`.
        let place = tail
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix(CHILD_CRASH_PREFIX))
            .and_then(|rest| rest.find(" in `").map(|at| rest[at..].to_owned()))
            .unwrap_or_default();
        let last: Vec<&str> = tail
            .iter()
            .rev()
            .filter(|l| !l.trim().is_empty() && !l.starts_with(CHILD_CRASH_PREFIX))
            .take(2)
            .map(String::as_str)
            .collect::<Vec<_>>();
        if last.is_empty() {
            format!("{base}{place}")
        } else {
            format!("{base}{place}; it said: {}", last.into_iter().rev().collect::<Vec<_>>().join(" / "))
        }
    }
}

/// Whether a line of the child's stderr is what a dying process says (ax's
/// crash reporter, Rust's runtime): the crash report quotes it, the log does not.
fn is_last_words(line: &str) -> bool {
    line.trim().is_empty()
        || line.starts_with(CHILD_CRASH_PREFIX)
        || line.starts_with("fatal runtime error: ")
        || (line.starts_with("thread '") && line.ends_with("has overflowed its stack"))
}

/// `SIGSEGV (segmentation fault)`, or `signal N` for the rarer ones.
pub fn signal_name(signal: i32) -> String {
    let name = match signal {
        4 => "SIGILL (illegal instruction)",
        6 => "SIGABRT (abort)",
        7 => "SIGBUS (bus error)",
        8 => "SIGFPE (arithmetic error)",
        9 => "SIGKILL",
        11 => "SIGSEGV (segmentation fault)",
        15 => "SIGTERM",
        _ => return format!("signal {signal}"),
    };
    name.to_owned()
}

/// Resident set size and CPU time of a process, from procfs.
#[cfg(target_os = "linux")]
fn process_usage(pid: u32) -> Option<(u64, Duration)> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let resident_pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let (page, hz) = unsafe { (libc::sysconf(libc::_SC_PAGESIZE), libc::sysconf(libc::_SC_CLK_TCK)) };
    let cpu = Duration::from_secs_f64(ticks as f64 / hz.max(1) as f64);
    Some((resident_pages * page.max(1) as u64, cpu))
}

#[cfg(not(target_os = "linux"))]
fn process_usage(_pid: u32) -> Option<(u64, Duration)> {
    None
}

/// A plugin running in a child process. See the module docs.
pub struct IsolatedPlugin {
    name: String,
    library: PathBuf,
    config_json: String,
    options: IsolationOptions,
    events: Arc<EventBus>,
    socket_dir: PathBuf,
    budget: Mutex<Budget>,
    child: Mutex<Option<ChildProcess>>,
    snapshot: Mutex<Option<SavedState>>,
    next_id: AtomicU64,
    restarts: AtomicU64,
    methods: Mutex<Vec<String>>,
    /// What the sandbox reported (boxed: most plugins have none).
    sandbox_report: Box<Mutex<SandboxReport>>,
}

#[derive(Default)]
struct SandboxReport {
    /// Sandbox rules the kernel could not enforce (the last child's word).
    unenforced: Vec<String>,
    /// Denials counted in every child so far, per capability.
    denials: Vec<(String, u64)>,
}

impl std::fmt::Debug for IsolatedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IsolatedPlugin").field("name", &self.name).finish_non_exhaustive()
    }
}

/// What went wrong with the child while waiting for a reply.
enum Lost {
    /// It exited on its own (crash).
    Exited(String),
    /// The parent killed it for crossing a limit.
    Killed(Violation),
}

impl IsolatedPlugin {
    /// Starts a child and loads `library` in it.
    pub fn start(
        host: &Host,
        library: &Path,
        name: &str,
        config_json: &str,
        budget: Budget,
        options: IsolationOptions,
    ) -> Result<IsolatedPlugin, LoadError> {
        let plugin = IsolatedPlugin {
            name: name.to_owned(),
            library: library.to_owned(),
            config_json: config_json.to_owned(),
            options,
            events: host.events().clone(),
            socket_dir: host.lib_dir().to_owned(),
            budget: Mutex::new(budget),
            child: Mutex::new(None),
            snapshot: Mutex::new(None),
            next_id: AtomicU64::new(1),
            restarts: AtomicU64::new(0),
            methods: Mutex::new(Vec::new()),
            sandbox_report: Box::default(),
        };
        let child = plugin.spawn_child()?;
        *plugin.child.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
        Ok(plugin)
    }

    fn load_error(&self, message: String) -> LoadError {
        LoadError::Init { path: self.library.clone(), failure: PluginFailure::Protocol { message } }
    }

    /// Starts a child process, waits for it to connect and loads the plugin.
    fn spawn_child(&self) -> Result<ChildProcess, LoadError> {
        let socket = ax_runtime::rundir::unique_path(&self.socket_dir, "isolated", ".sock")
            .map_err(|e| self.load_error(e.to_string()))?;
        let mut command = std::process::Command::new(&self.options.host_binary);
        if let Some(sandbox) = &self.options.sandbox {
            sandbox.prepare_command(&mut command);
        }
        let (mut process, stream) =
            start_child_host_with(command, "__isolated-host", &socket).map_err(|m| self.load_error(m))?;
        let pid = process.id();
        if let Some(sandbox) = &self.options.sandbox
            && sandbox.lacks_network_namespace(pid)
        {
            self.events.publish_with(|| Event::Log(LogLine {
                instance: 0,
                level: Level::Warn,
                target: "ax::sandbox".to_owned(),
                message: format!(
                    "{}: no network namespace of its own (user namespaces unavailable); its sockets are still denied by seccomp",
                    self.name
                ),
                fields: Vec::new(),
                location: None,
            }));
        }

        let stderr_tail = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL)));
        self.forward_output(&mut process, &stderr_tail);
        let (tx, replies) = channel::unbounded();
        let reader = stream.try_clone().map_err(|e| self.load_error(e.to_string()))?;
        let events = self.events.clone();
        let plugin_name = self.name.clone();
        std::thread::Builder::new()
            .name(format!("ax-isolated:{}", self.name))
            .spawn(move || {
                for line in BufReader::new(reader).lines().map_while(Result::ok) {
                    let Ok(Envelope { id, body }) = serde_json::from_str::<Envelope<Reply>>(&line) else { continue };
                    match body {
                        Reply::Log { level, target, message, fields, file, line } => {
                            events.publish_with(|| {
                                Event::Log(LogLine {
                                    instance: 0,
                                    level: Level::from_abi(level),
                                    target,
                                    message,
                                    fields,
                                    location: file.map(|file| SourceLocation { file, line, column: None }),
                                })
                            });
                        }
                        Reply::Violation { method, violation } => events.publish_with(|| Event::BudgetViolation {
                            instance: 0,
                            plugin: plugin_name.clone(),
                            method,
                            violation: (&violation).into(),
                        }),
                        reply => {
                            if tx.send((id, reply)).is_err() {
                                return;
                            }
                        }
                    }
                }
            })
            .map_err(|e| self.load_error(e.to_string()))?;

        let mut child = ChildProcess { process, writer: stream, replies, stderr_tail, pid };
        let load = Request::Load {
            library: self.library.clone(),
            name: self.name.clone(),
            config: self.config_json.clone(),
            sandbox: self.options.sandbox.clone(),
        };
        match self.request(&mut child, load, None) {
            Ok(Reply::Loaded { methods, unenforced }) => {
                *self.methods.lock().unwrap_or_else(|e| e.into_inner()) = methods;
                self.sandbox_report.lock().unwrap_or_else(|e| e.into_inner()).unenforced = unenforced;
                Ok(child)
            }
            Ok(Reply::Failed { error: WireError::Load { message }, .. }) => {
                let _ = child.process.kill();
                let _ = child.process.wait();
                Err(self.load_error(message))
            }
            Ok(other) => Err(self.load_error(format!("unexpected reply to load: {other:?}"))),
            Err(Lost::Exited(how)) => Err(self.load_error(format!("the isolated host {how} while loading"))),
            Err(Lost::Killed(_)) => Err(self.load_error("the isolated host was killed while loading".to_owned())),
        }
    }

    /// Forwards the child's stdout and stderr as log lines, keeping stderr's tail.
    fn forward_output(&self, process: &mut std::process::Child, tail: &Arc<Mutex<VecDeque<String>>>) {
        type Pipe = Option<Box<dyn std::io::Read + Send>>;
        let streams: [(Pipe, &str, Level); 2] = [
            (
                process.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
                "plugin::stdout",
                Level::Info,
            ),
            (
                process.stderr.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
                "plugin::stderr",
                Level::Warn,
            ),
        ];
        for (stream, target, level) in streams {
            let Some(stream) = stream else { continue };
            let (events, tail) = (self.events.clone(), tail.clone());
            let keep = target.ends_with("stderr");
            let _ = std::thread::Builder::new().name(format!("ax-isolated-{target}")).spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if keep {
                        let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
                        if tail.len() == STDERR_TAIL {
                            tail.pop_front();
                        }
                        tail.push_back(line.clone());
                        // The child's last words go into the crash report, once, not into the log too.
                        if is_last_words(&line) {
                            continue;
                        }
                    }
                    events.publish_with(|| {
                        Event::Log(LogLine {
                            instance: 0,
                            level,
                            target: target.to_owned(),
                            message: line,
                            fields: Vec::new(),
                            location: None,
                        })
                    });
                }
            });
        }
    }

    /// Sends a request and waits for its reply, watching the child. With a
    /// budget, kills the child when it crosses a hard limit.
    fn request(&self, child: &mut ChildProcess, request: Request, budget: Option<&Budget>) -> Result<Reply, Lost> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if send(&mut child.writer, id, request).is_err() {
            return Err(Lost::Exited(child.describe_exit()));
        }
        let started = Instant::now();
        let base = process_usage(child.pid);
        // When resident memory first went over the limit: the child's own
        // (soft) watchdog gets the same grace as for time to stop the call.
        let mut memory_over_since: Option<Instant> = None;
        loop {
            match child.replies.recv_timeout(TICK) {
                Ok((reply_id, reply)) if reply_id == id => return Ok(reply),
                Ok(_) => continue,
                Err(RecvTimeoutError::Disconnected) => return Err(Lost::Exited(child.describe_exit())),
                Err(RecvTimeoutError::Timeout) => {}
            }
            if let Ok(Some(_)) = child.process.try_wait() {
                return Err(Lost::Exited(child.describe_exit()));
            }
            let Some(budget) = budget.filter(|b| b.is_limited()) else { continue };
            let elapsed = started.elapsed();
            let now = process_usage(child.pid);
            let raw = hard_limit_crossed(budget, elapsed, base, now);
            if raw.is_none_or(|v| v.kind != BudgetKind::Memory) {
                memory_over_since = None;
            }
            let crossed = raw.filter(|v| {
                if v.kind != BudgetKind::Memory {
                    return true;
                }
                let since = *memory_over_since.get_or_insert_with(Instant::now);
                since.elapsed() > KILL_GRACE || v.observed > v.limit.saturating_mul(2)
            });
            if let Some(violation) = crossed {
                let _ = child.process.kill();
                let _ = child.process.wait();
                return Err(Lost::Killed(violation));
            }
        }
    }

    /// Replaces a dead or killed child and restores the last snapshot.
    fn restart(&self, guard: &mut Option<ChildProcess>) -> Result<(), LoadError> {
        if let Some(mut old) = guard.take() {
            let _ = old.process.kill();
            let _ = old.process.wait();
        }
        let mut child = self.spawn_child()?;
        self.restarts.fetch_add(1, Ordering::Relaxed);
        let snapshot = self.snapshot.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(saved) = snapshot {
            let restore =
                Request::RestoreState { schema_version: saved.schema_version, bytes: BASE64.encode(&saved.bytes) };
            match self.request(&mut child, restore, None) {
                Ok(Reply::Done) => {}
                _ => return Err(self.load_error("the restarted plugin refused its last state snapshot".to_owned())),
            }
        }
        *guard = Some(child);
        Ok(())
    }

    /// Calls `method` in the child; crashes and hard-limit kills become errors,
    /// after which a new child serves (with the last snapshot restored).
    pub fn call_with(&self, method: &str, input: &Value, budget: Option<&Budget>) -> (Result<Value, CallError>, Usage) {
        let budget = match budget {
            Some(b) => self.budget().overridden_by(b),
            None => self.budget(),
        };
        let mut guard = self.child.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none()
            && let Err(e) = self.restart(&mut guard)
        {
            return (
                Err(CallError::Crashed { plugin: self.name.clone(), method: method.to_owned(), cause: e.to_string() }),
                Usage::default(),
            );
        }
        let child = guard.as_mut().expect("a child was just started");
        let request = Request::Call { method: method.to_owned(), input: input.to_string(), budget: (&budget).into() };
        let started = Instant::now();
        let outcome = self.request(child, request, Some(&budget));
        let (result, usage) = match outcome {
            Ok(Reply::Output { output, usage }) => {
                self.count_denials(method, &usage.denials);
                let decoded = serde_json::from_str(&output).map_err(|e| CallError::InvalidOutput {
                    plugin: self.name.clone(),
                    method: method.to_owned(),
                    message: e.to_string(),
                });
                (decoded, Usage::from(&usage))
            }
            Ok(Reply::Failed { error, usage }) => {
                self.count_denials(method, &usage.denials);
                (Err(call_error(&self.name, method, error)), Usage::from(&usage))
            }
            Ok(other) => (
                Err(CallError::Crashed {
                    plugin: self.name.clone(),
                    method: method.to_owned(),
                    cause: format!("unexpected reply {other:?}"),
                }),
                Usage::default(),
            ),
            Err(lost) => {
                let usage = Usage { wall: started.elapsed(), ..Usage::default() };
                let error = match lost {
                    Lost::Exited(how) => CallError::Crashed {
                        plugin: self.name.clone(),
                        method: method.to_owned(),
                        cause: format!("the plugin's process {how}"),
                    },
                    Lost::Killed(violation) => {
                        self.events.publish_with(|| Event::BudgetViolation {
                            instance: 0,
                            plugin: self.name.clone(),
                            method: method.to_owned(),
                            violation,
                        });
                        CallError::BudgetExceeded {
                            plugin: self.name.clone(),
                            method: method.to_owned(),
                            violations: vec![violation],
                        }
                    }
                };
                if let Err(e) = self.restart(&mut guard) {
                    tracing::warn!(plugin = %self.name, "cannot restart the isolated plugin: {e}");
                }
                return (Err(error), usage);
            }
        };
        if result.is_ok()
            && let Ok(Reply::State { schema_version, bytes }) = self.request(child, Request::SaveState, None)
        {
            let bytes = BASE64.decode(bytes).unwrap_or_default();
            *self.snapshot.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(SavedState { schema_version, bytes: bytes.into() });
        }
        (result, usage)
    }

    /// Adds a call's sandbox denials to the totals and publishes one warning
    /// (target `ax::sandbox`) per capability denied.
    fn count_denials(&self, method: &str, denials: &[(String, u64)]) {
        if denials.is_empty() {
            return;
        }
        {
            let mut report = self.sandbox_report.lock().unwrap_or_else(|e| e.into_inner());
            for (capability, count) in denials {
                match report.denials.iter_mut().find(|(c, _)| c == capability) {
                    Some((_, total)) => *total += count,
                    None => report.denials.push((capability.clone(), *count)),
                }
            }
        }
        // Published with the lock released: subscribers run on this thread.
        for (capability, count) in denials {
            self.events.publish_with(|| {
                Event::Log(LogLine {
                    instance: 0,
                    level: Level::Warn,
                    target: "ax::sandbox".to_owned(),
                    message: format!("the sandbox denied {}.{method} {capability} ×{count}", self.name),
                    fields: vec![
                        ("capability".to_owned(), Value::from(capability.as_str())),
                        ("count".to_owned(), Value::from(*count)),
                    ],
                    location: None,
                })
            });
        }
    }

    /// System calls the sandbox denied so far (every child), per capability.
    pub fn sandbox_denials(&self) -> Vec<(String, u64)> {
        self.sandbox_report.lock().unwrap_or_else(|e| e.into_inner()).denials.clone()
    }

    /// The `[sandbox]` rules this kernel does not enforce (only ever non-empty
    /// with `sandbox = "best-effort"`: otherwise the plugin is refused).
    pub fn sandbox_unenforced(&self) -> Vec<String> {
        self.sandbox_report.lock().unwrap_or_else(|e| e.into_inner()).unenforced.clone()
    }

    /// The limits every call gets unless it overrides them.
    pub fn budget(&self) -> Budget {
        *self.budget.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the limits every call gets unless it overrides them.
    pub fn set_budget(&self, budget: Budget) {
        *self.budget.lock().unwrap_or_else(|e| e.into_inner()) = budget;
    }

    /// The plugin's state, from the child.
    pub fn save_state(&self) -> Result<SavedState, CallError> {
        let mut guard = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let stopped = || CallError::Stopped { plugin: self.name.clone() };
        let child = guard.as_mut().ok_or_else(stopped)?;
        match self.request(child, Request::SaveState, None) {
            Ok(Reply::State { schema_version, bytes }) => {
                Ok(SavedState { schema_version, bytes: BASE64.decode(bytes).unwrap_or_default().into() })
            }
            Ok(Reply::Failed { error, .. }) => Err(call_error(&self.name, "save_state", error)),
            _ => Err(stopped()),
        }
    }

    /// Hands the plugin a saved state; it also becomes the snapshot restored after a crash.
    pub fn restore_state(&self, saved: &SavedState) -> Result<(), CallError> {
        let mut guard = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let stopped = || CallError::Stopped { plugin: self.name.clone() };
        let child = guard.as_mut().ok_or_else(stopped)?;
        let request =
            Request::RestoreState { schema_version: saved.schema_version, bytes: BASE64.encode(&saved.bytes) };
        match self.request(child, request, None) {
            Ok(Reply::Done) => {
                *self.snapshot.lock().unwrap_or_else(|e| e.into_inner()) = Some(saved.clone());
                Ok(())
            }
            Ok(Reply::Failed { error, .. }) => Err(call_error(&self.name, "restore_state", error)),
            _ => Err(stopped()),
        }
    }

    /// How many times the child was replaced after a crash or a kill.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// The methods the plugin declares.
    pub fn methods(&self) -> Vec<String> {
        self.methods.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The child's process id (changes at every restart).
    pub fn pid(&self) -> Option<u32> {
        self.child.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|c| c.pid)
    }

    /// Shuts the plugin down and ends the child. Idempotent.
    pub fn shutdown(&self) -> Result<(), CallError> {
        let mut guard = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let Some(mut child) = guard.take() else { return Ok(()) };
        let result = match self.request(&mut child, Request::Shutdown, None) {
            Ok(Reply::Failed { error, .. }) => Err(call_error(&self.name, "shutdown", error)),
            _ => Ok(()),
        };
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.process.try_wait() {
                return result;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = child.process.kill();
        let _ = child.process.wait();
        result
    }
}

impl Drop for IsolatedPlugin {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// Which hard limit a child crossed, given the time since the request and its
/// process usage at the start and now.
fn hard_limit_crossed(
    budget: &Budget,
    elapsed: Duration,
    base: Option<(u64, Duration)>,
    now: Option<(u64, Duration)>,
) -> Option<Violation> {
    let violation =
        |kind, limit: u64, observed: u64| Violation { kind, limit, observed, noticed_after: elapsed, at_end: None };
    if let Some(limit) = budget.max_duration
        && elapsed > limit + KILL_GRACE
    {
        return Some(violation(BudgetKind::Duration, limit.as_nanos() as u64, elapsed.as_nanos() as u64));
    }
    let ((rss0, cpu0), (rss, cpu)) = (base?, now?);
    if let Some(limit) = budget.max_cpu_time {
        let used = cpu.saturating_sub(cpu0);
        if used > limit + KILL_GRACE {
            return Some(violation(BudgetKind::CpuTime, limit.as_nanos() as u64, used.as_nanos() as u64));
        }
    }
    if let Some(limit) = budget.max_memory {
        let grown = rss.saturating_sub(rss0);
        if grown > limit {
            return Some(violation(BudgetKind::Memory, limit, grown));
        }
    }
    None
}
