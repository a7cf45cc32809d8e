//! The debug host: the child process a debug adapter starts (`ax __debug-host
//! --socket P`), running one plugin under a [`DebugAgent`].
//!
//! The adapter talks to it in JSON lines over a Unix socket: [`DebugRequest`]s
//! with an id, replies with the same id, and notifications (id 0) for stops,
//! logpoint output and the plugin's log lines. Calls run on their own thread,
//! so the request loop keeps serving — resume, setVariable, evaluate — while a
//! call is stopped at a breakpoint. Only the adapter's side knows DAP; this side
//! knows the agent.
//!
//! The same protocol serves a debugger attached to an `ax run --debug-listen`
//! host ([`DebugListener`]): that host runs its own calls and announces each,
//! and its exit code, as notifications.
//!
//! If the plugin crashes this process, the adapter sees the socket close and
//! the exit status, and ends the session with a message; it does not die with it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::budget::Budget;
use crate::debug::{
    BreakpointSpec, BreakpointState, DataBreakpointSpec, DebugAgent, DebugEvent, DebugOptions, FunctionBreakpointSpec,
    HistoryEntry, Resume, Stop, StopReason, same_file,
};
use crate::events::{Event, Level};
use crate::host::{Host, HostOptions};
use crate::plugin::Plugin;
use crate::reload::{ReloadOptions, ReloadablePlugin};
use crate::watch::LibraryWatcher;
use crate::wire::{Envelope, send};

/// What the adapter asks the debug host.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum DebugRequest {
    Load {
        library: PathBuf,
        name: String,
        config: String,
        /// Reload the plugin when the library file changes.
        #[serde(default)]
        hot_reload: bool,
        /// The plugin's budget (its manifest's).
        #[serde(default)]
        budget: WireBudget,
        /// Quiet time after a library change before reloading (default 300 ms).
        #[serde(default)]
        reload_debounce_ms: Option<u64>,
        /// Earlier hits each watched probe keeps (default 32; 0: none).
        #[serde(default)]
        history_size: Option<usize>,
        /// The plugin's `[sandbox]` rules, as the [`Confine`] function reads
        /// them: applied to the whole debug host before the library is opened.
        #[serde(default)]
        sandbox: Option<Value>,
    },
    /// The first request on an attach connection (after the token line).
    Hello,
    /// Attach: the breakpoints are set, the host may run its calls.
    Start,
    /// Attach: the debugger goes away; the host runs on without it.
    Detach,
    SetBreakpoints {
        file: String,
        breakpoints: Vec<WireBreakpoint>,
    },
    SetFunctionBreakpoints {
        breakpoints: Vec<WireFunctionBreakpoint>,
    },
    /// Replaces the data breakpoints.
    SetDataBreakpoints {
        breakpoints: Vec<WireDataBreakpoint>,
    },
    /// What `path` (a binding of the stopped probe, or a path inside one)
    /// would be watched as.
    DataBreakpointInfo {
        path: String,
    },
    /// Which exception filters are on (`panic`, `budget`, `error`).
    SetExceptionFilters {
        filters: Vec<String>,
    },
    /// The probe lines of `file` (for breakpointLocations).
    ProbeLines {
        file: String,
    },
    /// Stop at the first probe reached, as an entry stop.
    StopOnEntry,
    /// The plugin's source files known so far: its probes' and its spans'.
    SourceFiles,
    /// Runs a call; the reply comes when it returns.
    Call {
        method: String,
        input: Value,
    },
    Resume {
        how: WireResume,
    },
    Pause,
    SetVariable {
        name: String,
        value: String,
    },
    /// Evaluates an expression over the stopped thread's bindings, then
    /// the call's (`method`, `input`) when the adapter knows it.
    Evaluate {
        expression: String,
        #[serde(default)]
        call: Option<WireCall>,
    },
    Shutdown,
}

/// A call of the plugin: its method and JSON input.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct WireCall {
    pub method: String,
    pub input: Value,
}

/// A call budget as the adapter sends it: nanoseconds and bytes.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct WireBudget {
    pub max_memory: Option<u64>,
    pub max_cpu_time_ns: Option<u64>,
    pub max_duration_ns: Option<u64>,
}

impl From<Budget> for WireBudget {
    fn from(b: Budget) -> Self {
        let ns = |d: Option<Duration>| d.map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        WireBudget {
            max_memory: b.max_memory,
            max_cpu_time_ns: ns(b.max_cpu_time),
            max_duration_ns: ns(b.max_duration),
        }
    }
}

impl From<WireBudget> for Budget {
    fn from(b: WireBudget) -> Self {
        Budget {
            max_memory: b.max_memory,
            max_cpu_time: b.max_cpu_time_ns.map(Duration::from_nanos),
            max_duration: b.max_duration_ns.map(Duration::from_nanos),
        }
    }
}

/// A breakpoint as the adapter sends it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct WireBreakpoint {
    /// The adapter's id for it (0: the agent picks one).
    #[serde(default)]
    pub id: u64,
    pub line: u32,
    pub condition: Option<String>,
    pub hit_condition: Option<String>,
    pub log_message: Option<String>,
}

/// A function breakpoint as the adapter sends it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct WireFunctionBreakpoint {
    #[serde(default)]
    pub id: u64,
    pub name: String,
    pub condition: Option<String>,
    pub hit_condition: Option<String>,
}

/// A data breakpoint as the adapter sends it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct WireDataBreakpoint {
    #[serde(default)]
    pub id: u64,
    pub data_id: String,
    pub condition: Option<String>,
    pub hit_condition: Option<String>,
}

/// An earlier hit of the probe a thread stopped at.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct WireHistoryEntry {
    pub hit: u64,
    /// How long before the stop, in nanoseconds.
    pub age_ns: u64,
    pub values: Vec<(String, Value)>,
}

impl From<HistoryEntry> for WireHistoryEntry {
    fn from(e: HistoryEntry) -> Self {
        WireHistoryEntry { hit: e.hit, age_ns: u64::try_from(e.age.as_nanos()).unwrap_or(u64::MAX), values: e.values }
    }
}

/// How a stopped thread goes on.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WireResume {
    Continue,
    Next,
    StepIn,
    StepOut,
}

/// A frame of a stopped thread.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct WireFrame {
    pub name: String,
    pub file: String,
    pub line: u32,
}

/// What the debug host tells the adapter.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DebugReply {
    Loaded {
        methods: Vec<String>,
    },
    /// The answer to `Hello`: the plugin the attached host runs.
    Attached {
        name: String,
        library: PathBuf,
        methods: Vec<String>,
    },
    Breakpoints {
        breakpoints: Vec<WireBreakpointState>,
    },
    Returned {
        output: Value,
    },
    Failed {
        message: String,
    },
    Evaluated {
        value: Value,
    },
    Lines {
        lines: Vec<u32>,
    },
    Files {
        files: Vec<String>,
    },
    /// The answer to `DataBreakpointInfo`: the id to watch it by, or why it cannot be.
    DataTarget {
        data_id: Option<String>,
        description: String,
    },
    Done,
    /// Notification: a thread stopped.
    Stopped {
        reason: WireStopReason,
        breakpoints: Vec<u64>,
        thread: String,
        frames: Vec<WireFrame>,
        variables: Vec<(String, Value)>,
        writable: Vec<String>,
        frame_fields: Vec<Vec<(String, Value)>>,
        message: Option<String>,
        exception: Option<WireException>,
        /// Earlier hits of the probe, newest first.
        #[serde(default)]
        history: Vec<WireHistoryEntry>,
    },
    /// Notification: a reload brought generation `generation`; what became
    /// of each breakpoint (with its file, for line breakpoints) in it.
    Reloaded {
        generation: u64,
        name: String,
        breakpoints: Vec<(Option<String>, WireBreakpointState)>,
    },
    /// Notification: a logpoint's message, or a plugin log line.
    Output {
        category: String,
        text: String,
    },
    /// Notification from an attached host: it starts one of its own calls.
    CallStarted {
        call: WireCall,
    },
    /// Notification from an attached host: its call returned.
    CallEnded,
    /// Notification from an attached host: its calls are done and it exits
    /// with `exit_code` (the connection closes next).
    Finished {
        exit_code: i32,
    },
}

/// Why a thread stopped, as the adapter is told (it chooses the words its
/// protocol uses).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WireStopReason {
    Breakpoint,
    FunctionBreakpoint,
    Step,
    Pause,
    Entry,
    /// A watched value changed.
    DataBreakpoint,
    /// A condition could not be evaluated.
    ConditionError,
    /// A panic, a budget violation or an error return.
    Exception,
}

/// What an exception stop is about.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct WireException {
    /// The filter: `panic`, `budget` or `error`.
    pub filter: String,
    pub description: String,
    pub location: Option<String>,
}

/// What became of a breakpoint.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct WireBreakpointState {
    pub id: u64,
    pub verified: bool,
    pub line: Option<u32>,
    pub message: Option<String>,
}

impl From<BreakpointState> for WireBreakpointState {
    fn from(s: BreakpointState) -> Self {
        WireBreakpointState { id: s.id, verified: s.verified, line: s.line, message: s.message }
    }
}

fn stopped(stop: Stop) -> DebugReply {
    DebugReply::Stopped {
        reason: match stop.reason {
            StopReason::Breakpoint => WireStopReason::Breakpoint,
            StopReason::FunctionBreakpoint => WireStopReason::FunctionBreakpoint,
            StopReason::Step => WireStopReason::Step,
            StopReason::Pause => WireStopReason::Pause,
            StopReason::Entry => WireStopReason::Entry,
            StopReason::DataBreakpoint => WireStopReason::DataBreakpoint,
            StopReason::ConditionError => WireStopReason::ConditionError,
            StopReason::Exception => WireStopReason::Exception,
        },
        breakpoints: stop.breakpoints,
        thread: stop.thread,
        frames: stop.frames.into_iter().map(|f| WireFrame { name: f.name, file: f.file, line: f.line }).collect(),
        variables: stop.variables,
        writable: stop.writable,
        frame_fields: stop.frame_fields,
        message: stop.message,
        exception: stop.exception.map(|e| WireException {
            filter: e.filter.name().to_owned(),
            description: e.description,
            location: e.location,
        }),
        history: stop.history.into_iter().map(Into::into).collect(),
    }
}

type Writer = Arc<Mutex<Box<dyn Write + Send>>>;

fn reply(writer: &Writer, id: u64, body: DebugReply) -> std::io::Result<()> {
    let mut writer = writer.lock().unwrap_or_else(|e| e.into_inner());
    send(&mut *writer, id, body)?;
    writer.flush()
}

/// The plugin instance a connection debugs, and its agent.
#[derive(Clone)]
struct Debuggee {
    plugin: Arc<Plugin>,
    agent: Arc<DebugAgent>,
}

/// What the adapter set, re-applied to each new instance after a reload.
#[derive(Default)]
struct Breakpoints {
    lines: BTreeMap<String, Vec<WireBreakpoint>>,
    functions: Vec<WireFunctionBreakpoint>,
    data: Vec<WireDataBreakpoint>,
    exception_filters: Vec<String>,
}

/// The plugin a connection debugs: one instance, or with hot reload the one
/// serving now (replaced, with a new agent, on each reload).
#[derive(Clone)]
struct Target {
    current: Arc<RwLock<Debuggee>>,
    reloadable: Option<Arc<ReloadablePlugin>>,
    watcher: Option<Arc<LibraryWatcher>>,
    set: Arc<Mutex<Breakpoints>>,
}

/// A `Load` request's contents.
struct LoadSpec {
    library: PathBuf,
    name: String,
    config: String,
    budget: Budget,
    hot_reload: bool,
    debounce: Duration,
    options: DebugOptions,
}

impl Target {
    fn fixed(debuggee: Debuggee) -> Target {
        Target { current: Arc::new(RwLock::new(debuggee)), reloadable: None, watcher: None, set: Arc::default() }
    }

    fn current(&self) -> Debuggee {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Calls the instance serving now.
    fn call(&self, method: &str, input: &Value) -> Result<Value, crate::CallError> {
        match &self.reloadable {
            Some(reloadable) => reloadable.call(method, input),
            None => self.current().plugin.call(method, input),
        }
    }

    /// Loads a plugin for a debug session: with hot reload, as a reloadable
    /// plugin whose library is watched; each new instance gets a new agent
    /// holding the session's breakpoints before its first call, and the
    /// adapter is told (`Reloaded`).
    fn load(host: &Arc<Host>, load: LoadSpec, writer: &Writer) -> Result<Target, String> {
        let LoadSpec { library, name, config, budget, hot_reload, debounce, options: debug } = load;
        if !hot_reload {
            let plugin = Arc::new(patiently(|| host.load_library(&library, &name, &config))?);
            plugin.set_budget(budget);
            let agent = DebugAgent::attach_with(plugin.clone(), debug);
            forward_agent_events(&agent, writer.clone());
            return Ok(Target::fixed(Debuggee { plugin, agent }));
        }
        // A thread paused at a breakpoint finishes its call in the old code:
        // the reload waits for it (the drain) as long as it takes.
        let options = ReloadOptions { drain_timeout: Duration::from_secs(24 * 3600), ..ReloadOptions::default() };
        let reloadable =
            Arc::new(patiently(|| ReloadablePlugin::load(host.clone(), &library, &name, &config, options))?);
        let plugin = reloadable.current();
        plugin.set_budget(budget);
        let agent = DebugAgent::attach_with(plugin.clone(), debug);
        forward_agent_events(&agent, writer.clone());
        let mut target = Target::fixed(Debuggee { plugin, agent });
        let (current, set, writer) = (target.current.clone(), target.set.clone(), writer.clone());
        reloadable.on_ready(Box::new(move |plugin, generation| {
            let agent = DebugAgent::attach_with(plugin.clone(), debug);
            let set = set.lock().unwrap_or_else(|e| e.into_inner());
            let mut states = Vec::new();
            for (file, wire) in &set.lines {
                let (ids, specs) = line_specs(wire);
                let placed = agent.set_breakpoints_as(file, &specs, &ids);
                states.extend(placed.into_iter().map(|s| (Some(file.clone()), s.into())));
            }
            let (ids, specs) = function_specs(&set.functions);
            states.extend(agent.set_function_breakpoints_as(&specs, &ids).into_iter().map(|s| (None, s.into())));
            let (ids, specs) = data_specs(&set.data);
            states.extend(agent.set_data_breakpoints_as(&specs, &ids).into_iter().map(|s| (None, s.into())));
            agent.set_exception_filters(&set.exception_filters);
            drop(set);
            forward_agent_events(&agent, writer.clone());
            // The old instance has no call in flight: the reload drained it.
            let debuggee = Debuggee { plugin: plugin.clone(), agent };
            let old = std::mem::replace(&mut *current.write().unwrap_or_else(|e| e.into_inner()), debuggee);
            old.agent.detach();
            let name = plugin.name().to_owned();
            let _ = reply(&writer, 0, DebugReply::Reloaded { generation, name, breakpoints: states });
        }));
        let watcher = LibraryWatcher::spawn(reloadable.clone(), &library, debounce).map_err(|e| e.to_string())?;
        target.reloadable = Some(reloadable);
        target.watcher = Some(Arc::new(watcher));
        Ok(target)
    }
}

/// Loads with `load`, looking again for a while at a library that is missing
/// or incomplete: a build may be replacing it as the session starts.
fn patiently<T>(load: impl Fn() -> Result<T, crate::LoadError>) -> Result<T, String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        match load() {
            Err(e) if e.is_transient() && std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            result => return result.map_err(|e| e.to_string()),
        }
    }
}

fn line_specs(wire: &[WireBreakpoint]) -> (Vec<u64>, Vec<BreakpointSpec>) {
    let specs = wire
        .iter()
        .map(|b| BreakpointSpec {
            line: b.line,
            condition: b.condition.clone(),
            hit_condition: b.hit_condition.clone(),
            log_message: b.log_message.clone(),
        })
        .collect();
    (wire.iter().map(|b| b.id).collect(), specs)
}

fn function_specs(wire: &[WireFunctionBreakpoint]) -> (Vec<u64>, Vec<FunctionBreakpointSpec>) {
    let specs = wire
        .iter()
        .map(|b| FunctionBreakpointSpec {
            name: b.name.clone(),
            condition: b.condition.clone(),
            hit_condition: b.hit_condition.clone(),
        })
        .collect();
    (wire.iter().map(|b| b.id).collect(), specs)
}

fn data_specs(wire: &[WireDataBreakpoint]) -> (Vec<u64>, Vec<DataBreakpointSpec>) {
    let specs = wire
        .iter()
        .map(|b| DataBreakpointSpec {
            data_id: b.data_id.clone(),
            condition: b.condition.clone(),
            hit_condition: b.hit_condition.clone(),
        })
        .collect();
    (wire.iter().map(|b| b.id).collect(), specs)
}

/// Confines the debug host before it opens a sandboxed plugin's library:
/// (the `[sandbox]` rules as the adapter sent them, the library, the host's
/// private library folder) → the rules this kernel does not enforce, or why
/// it refused. The sandbox lives above this crate (`ax_isolate`): the `ax`
/// binary passes its `apply` to [`serve`].
pub type Confine = fn(&Value, &Path, &Path) -> Result<Vec<String>, String>;

/// What a connection serves: a child loads its plugin when told (`Load`);
/// an attached host has one already and runs its own calls after `Start`.
enum Mode {
    Child { host: Arc<Host>, confine: Confine },
    Attached { name: String, library: PathBuf, start: Option<Sender<()>> },
}

/// The child side: connects to `socket` and serves one plugin under a debug
/// agent until told to shut down or the adapter goes away. A sandboxed
/// plugin's rules go through `confine` on the thread that then serves the
/// requests, before the library is opened: the threads that run its calls and
/// reloads start from that thread afterwards, so they are confined too (a
/// Landlock domain is inherited by new threads, not given to running ones).
pub fn serve(socket: &Path, confine: Confine) -> std::io::Result<()> {
    let stream = UnixStream::connect(socket)?;
    let writer: Writer = Arc::new(Mutex::new(Box::new(stream.try_clone()?)));
    let mut options = HostOptions::default();
    // Usage (CPU time included) is shown to the user there.
    options.instrumentation.call_cpu = true;
    if let Some(filter) = std::env::var("AX_LOG").ok().and_then(|f| f.parse().ok()) {
        options.instrumentation.log_filter = filter;
    }
    let host = Arc::new(Host::with_options(options)?);
    let logs = writer.clone();
    host.events().subscribe(move |event| {
        let (category, text) = match event {
            // Errors and warnings where the editor shows them as such.
            Event::Log(line) if line.level <= Level::Warn => ("stderr", format!("{line}\n")),
            Event::Log(line) => ("console", format!("{line}\n")),
            Event::ReloadStarted { library, generation, .. } => {
                ("console", format!("ax: {} changed; loading generation {generation}\n", library.display()))
            }
            Event::ReloadSucceeded { report, .. } => {
                ("console", format!("ax: generation {}: {report}\n", report.generation))
            }
            Event::ReloadRolledBack { generation, step, error, .. } => (
                "stderr",
                format!("ax: reload rolled back at step {step}: {error}; generation {generation} keeps serving\n"),
            ),
            _ => return,
        };
        let _ = reply(&logs, 0, DebugReply::Output { category: category.to_owned(), text });
    });
    serve_connection(stream, &writer, &mut Mode::Child { host, confine }, None)
}

/// How long a connection has to present its token line.
pub const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(2);
/// The longest token line read; a longer one is refused unread.
pub const HANDSHAKE_LIMIT: usize = 4096;
/// The shortest token accepted: 32 characters (128 bits as hex digits).
pub const MIN_TOKEN_LEN: usize = 32;
/// Handshakes served at once; connections beyond are closed at once.
const MAX_HANDSHAKES: usize = 256;

/// Checks that `token` is long enough to guard a debug listener.
pub fn check_token(token: &str) -> Result<(), String> {
    if token.len() < MIN_TOKEN_LEN {
        return Err(format!(
            "a debug token of {} characters is too short: expected at least {MIN_TOKEN_LEN} (128 bits, e.g. 32 hex digits)",
            token.len()
        ));
    }
    Ok(())
}

/// A debug listener in an `ax` host (`ax run --debug-listen`): a debugger
/// attaches over TCP on loopback, proving it knows the token with its first
/// line (`{"token": "…"}`); a wrong token is refused.
///
/// Each connection's handshake runs on its own thread, within
/// [`HANDSHAKE_DEADLINE`] and [`HANDSHAKE_LIMIT`] bytes, so a connection that
/// stalls or floods delays nobody; the token is compared in constant time.
/// One debugger is served at a time (the next waits for it to leave). The
/// host tells the debugger connected (if any) which of its own calls runs
/// (`call_started`, `call_ended`) and how it ends (`finished`).
pub struct DebugListener {
    pub address: std::net::SocketAddr,
    started: Receiver<()>,
    /// The connected debugger's end of the connection, while one is.
    debugger: Arc<Mutex<Option<Writer>>>,
}

impl std::fmt::Debug for DebugListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DebugListener").field("address", &self.address).finish_non_exhaustive()
    }
}

/// What every handshake thread shares.
struct Attach {
    token: String,
    plugin: Arc<Plugin>,
    library: PathBuf,
    start: Mutex<Option<Sender<()>>>,
    /// Held while a debugger is attached.
    session: Mutex<()>,
    handshakes: std::sync::atomic::AtomicUsize,
    /// The attached debugger's end of the connection, while one is.
    connected: Arc<Mutex<Option<Writer>>>,
}

impl DebugListener {
    /// Listens on `address` (loopback only) for debuggers of `plugin`; `token`
    /// must pass [`check_token`].
    pub fn start(
        address: std::net::SocketAddr,
        token: String,
        plugin: Arc<Plugin>,
        library: PathBuf,
    ) -> std::io::Result<DebugListener> {
        if !address.ip().is_loopback() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("debug listener address {address}: expected a loopback address such as 127.0.0.1:0"),
            ));
        }
        check_token(&token).map_err(|m| std::io::Error::new(std::io::ErrorKind::InvalidInput, m))?;
        let listener = TcpListener::bind(address)?;
        let address = listener.local_addr()?;
        let (start, started) = crossbeam_channel::bounded(1);
        let debugger: Arc<Mutex<Option<Writer>>> = Arc::default();
        let attach = Arc::new(Attach {
            token,
            plugin,
            library,
            start: Mutex::new(Some(start)),
            session: Mutex::new(()),
            handshakes: Default::default(),
            connected: debugger.clone(),
        });
        std::thread::Builder::new().name("ax-debug-listener".to_owned()).spawn(move || {
            use std::sync::atomic::Ordering::Relaxed;
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                if attach.handshakes.fetch_add(1, Relaxed) >= MAX_HANDSHAKES {
                    attach.handshakes.fetch_sub(1, Relaxed);
                    continue;
                }
                let attach = attach.clone();
                let spawned = std::thread::Builder::new().name("ax-debug-handshake".to_owned()).spawn({
                    let attach = attach.clone();
                    move || serve_attach(stream, &attach)
                });
                if spawned.is_err() {
                    attach.handshakes.fetch_sub(1, Relaxed);
                }
            }
        })?;
        Ok(DebugListener { address, started, debugger })
    }

    /// Waits until the first debugger has set its breakpoints (or gone).
    pub fn wait_for_start(&self) {
        let _ = self.started.recv();
    }

    /// The host starts its call `method(input)`: a stop in it shows the call
    /// (its scope, its frame) and can evaluate `input`.
    pub fn call_started(&self, method: &str, input: &Value) {
        self.tell(DebugReply::CallStarted { call: WireCall { method: method.to_owned(), input: input.clone() } });
    }

    /// The call announced by [`call_started`](Self::call_started) returned.
    pub fn call_ended(&self) {
        self.tell(DebugReply::CallEnded);
    }

    /// The host is done and exits with `exit_code`: the debugger reports
    /// that code rather than a lost connection.
    pub fn finished(&self, exit_code: i32) {
        self.tell(DebugReply::Finished { exit_code });
    }

    /// Sends a notification to the connected debugger, if one is.
    fn tell(&self, note: DebugReply) {
        let debugger = self.debugger.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(writer) = debugger {
            let _ = reply(&writer, 0, note);
        }
    }
}

/// One connection: its token line, then (if right) its session.
fn serve_attach(stream: std::net::TcpStream, attach: &Attach) {
    let token = read_token_line(&stream);
    attach.handshakes.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(HANDSHAKE_DEADLINE));
    let Ok(writer) = stream.try_clone() else { return };
    let writer: Writer = Arc::new(Mutex::new(Box::new(writer)));
    let Some((offered, reader)) = token else {
        let message = format!(
            "no token line within {HANDSHAKE_DEADLINE:?} and {HANDSHAKE_LIMIT} bytes: expected {{\"token\": …}} first"
        );
        let _ = reply(&writer, 0, DebugReply::Failed { message });
        return;
    };
    if !same_token(offered.as_bytes(), attach.token.as_bytes()) {
        let message = "wrong or missing token: expected the one `ax run --debug-listen` printed".to_owned();
        let _ = reply(&writer, 0, DebugReply::Failed { message });
        return;
    }
    let _ = stream.set_write_timeout(None);
    let _session = attach.session.lock().unwrap_or_else(|e| e.into_inner());
    let plugin = &attach.plugin;
    let agent = DebugAgent::attach(plugin.clone());
    let start = attach.start.lock().unwrap_or_else(|e| e.into_inner()).take();
    let mut mode = Mode::Attached { name: plugin.name().to_owned(), library: attach.library.clone(), start };
    let debuggee = Debuggee { plugin: plugin.clone(), agent: agent.clone() };
    *attach.connected.lock().unwrap_or_else(|e| e.into_inner()) = Some(writer.clone());
    let _ = serve_connection(reader, &writer, &mut mode, Some(Target::fixed(debuggee)));
    *attach.connected.lock().unwrap_or_else(|e| e.into_inner()) = None;
    agent.detach();
    // A debugger that left before `Start` still lets the calls run.
    if let Mode::Attached { start: Some(tx), .. } = mode {
        let _ = tx.send(());
    }
}

/// Reads the first line (`{"token": "…"}`) within [`HANDSHAKE_DEADLINE`] and
/// [`HANDSHAKE_LIMIT`] bytes; returns the token offered (empty if the line
/// has none) and the reader, positioned after the line.
fn read_token_line(stream: &std::net::TcpStream) -> Option<(String, BufReader<std::net::TcpStream>)> {
    let deadline = std::time::Instant::now() + HANDSHAKE_DEADLINE;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = Vec::new();
    loop {
        let left = deadline.checked_duration_since(std::time::Instant::now()).filter(|d| !d.is_zero())?;
        stream.set_read_timeout(Some(left)).ok()?;
        let available = reader.fill_buf().ok()?;
        if available.is_empty() {
            return None;
        }
        let room = HANDSHAKE_LIMIT - line.len();
        if let Some(end) = available.iter().take(room).position(|&b| b == b'\n') {
            line.extend_from_slice(&available[..end]);
            reader.consume(end + 1);
            break;
        }
        let taken = available.len().min(room);
        line.extend_from_slice(&available[..taken]);
        reader.consume(taken);
        if line.len() >= HANDSHAKE_LIMIT {
            return None;
        }
    }
    stream.set_read_timeout(None).ok()?;
    let offered = serde_json::from_slice::<Value>(&line)
        .ok()
        .and_then(|v| v.get("token").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default();
    Some((offered, reader))
}

/// Compares two tokens in time that depends only on the expected one's length.
fn same_token(offered: &[u8], expected: &[u8]) -> bool {
    let mut difference = offered.len() ^ expected.len();
    for (i, &byte) in expected.iter().enumerate() {
        difference |= usize::from(byte ^ offered.get(i).copied().unwrap_or(!byte));
    }
    std::hint::black_box(difference) == 0
}

/// The longest request line served (a `Load` carries paths and a config).
const MAX_REQUEST_LINE: usize = 64 << 20;

/// Serves one connection's requests until shutdown, detach or its end.
/// A line that is not a request is answered `Failed` when its id can be read
/// and skipped otherwise; bytes that are not UTF-8 end nothing.
fn serve_connection(
    stream: impl std::io::Read,
    writer: &Writer,
    mode: &mut Mode,
    mut session: Option<Target>,
) -> std::io::Result<()> {
    if let Some(target) = &session {
        forward_agent_events(&target.current().agent, writer.clone());
    }
    let mut lines = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        if (&mut lines).take(MAX_REQUEST_LINE as u64 + 1).read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        if line.len() > MAX_REQUEST_LINE {
            // Too long to be a request: skip to its end, unanswered (its id is unknown).
            if line.last() != Some(&b'\n') {
                lines.skip_until(b'\n')?;
            }
            continue;
        }
        let Envelope { id, body } = match serde_json::from_slice::<Envelope<DebugRequest>>(&line) {
            Ok(envelope) => envelope,
            Err(e) => {
                // Answered when its id can be read; the next line is served either way.
                let id = serde_json::from_slice::<Value>(&line).ok().and_then(|v| v.get("id")?.as_u64());
                if let Some(id) = id.filter(|&id| id != 0) {
                    reply(writer, id, DebugReply::Failed { message: format!("bad request: {e}") })?;
                }
                continue;
            }
        };
        let failed = |message: String| DebugReply::Failed { message };
        let answer = match (body, &session, &mut *mode) {
            (
                DebugRequest::Load {
                    library,
                    name,
                    config,
                    hot_reload,
                    budget,
                    reload_debounce_ms,
                    history_size,
                    sandbox,
                },
                None,
                Mode::Child { host, confine },
            ) => {
                if let Some(rules) = &sandbox {
                    match confine(rules, &library, host.lib_dir()) {
                        Ok(unenforced) => {
                            for rule in unenforced {
                                let text = format!("ax: sandbox = \"best-effort\": not enforced: {rule}\n");
                                reply(writer, 0, DebugReply::Output { category: "stderr".to_owned(), text })?;
                            }
                        }
                        Err(message) => {
                            reply(writer, id, failed(message))?;
                            continue;
                        }
                    }
                }
                let debounce = Duration::from_millis(reload_debounce_ms.unwrap_or(300));
                let options =
                    DebugOptions { history_size: history_size.unwrap_or(DebugOptions::default().history_size) };
                let spec = LoadSpec { library, name, config, budget: budget.into(), hot_reload, debounce, options };
                match Target::load(host, spec, writer) {
                    Ok(target) => {
                        let methods = target.current().plugin.methods().to_vec();
                        session = Some(target);
                        DebugReply::Loaded { methods }
                    }
                    Err(message) => failed(message),
                }
            }
            (DebugRequest::Load { .. }, _, _) => failed("a plugin is loaded already".to_owned()),
            (DebugRequest::Hello, Some(target), Mode::Attached { name, library, .. }) => DebugReply::Attached {
                name: name.clone(),
                library: library.clone(),
                methods: target.current().plugin.methods().to_vec(),
            },
            (DebugRequest::Start, _, Mode::Attached { start, .. }) => {
                if let Some(start) = start.take() {
                    let _ = start.send(());
                }
                DebugReply::Done
            }
            (DebugRequest::Hello | DebugRequest::Start | DebugRequest::Detach, _, Mode::Child { .. }) => {
                failed("not an attached host".to_owned())
            }
            (DebugRequest::Detach, _, Mode::Attached { .. }) => {
                reply(writer, id, DebugReply::Done)?;
                return Ok(());
            }
            (DebugRequest::Shutdown, _, _) => {
                if let Some(target) = session.take() {
                    let Debuggee { plugin, agent } = target.current();
                    agent.detach();
                    if matches!(mode, Mode::Child { .. }) {
                        let _ = plugin.shutdown();
                    }
                }
                reply(writer, id, DebugReply::Done)?;
                return Ok(());
            }
            (_, None, _) => failed("no plugin is loaded".to_owned()),
            (DebugRequest::Call { method, input }, Some(target), _) => {
                // Off the request loop: a stopped call must not stop the serving.
                let (target, writer) = (target.clone(), writer.clone());
                std::thread::spawn(move || {
                    let result = target.call(&method, &input);
                    target.current().agent.call_returned(&method, &input, &result);
                    let answer = match result {
                        Ok(output) => DebugReply::Returned { output },
                        Err(e) => DebugReply::Failed { message: e.to_string() },
                    };
                    let _ = reply(&writer, id, answer);
                });
                continue;
            }
            (DebugRequest::Resume { how }, Some(target), _) => {
                // Answered before the thread goes on: a call that then ends
                // the host (an attached `ax run` exits after its last call)
                // must not beat the answer to the debugger.
                reply(writer, id, DebugReply::Done)?;
                target.current().agent.resume(match how {
                    WireResume::Continue => Resume::Continue,
                    WireResume::Next => Resume::Next,
                    WireResume::StepIn => Resume::StepIn,
                    WireResume::StepOut => Resume::StepOut,
                });
                continue;
            }
            (request, Some(target), _) => {
                remember(&target.set, &request);
                let Debuggee { plugin, agent } = target.current();
                answer_agent(request, &plugin, &agent)
            }
        };
        reply(writer, id, answer)?;
    }
}

/// Keeps what the adapter sets, for the instances a reload brings.
fn remember(set: &Mutex<Breakpoints>, request: &DebugRequest) {
    let mut set = set.lock().unwrap_or_else(|e| e.into_inner());
    match request {
        DebugRequest::SetBreakpoints { file, breakpoints } => {
            set.lines.insert(file.clone(), breakpoints.clone());
        }
        DebugRequest::SetFunctionBreakpoints { breakpoints } => set.functions = breakpoints.clone(),
        DebugRequest::SetDataBreakpoints { breakpoints } => set.data = breakpoints.clone(),
        DebugRequest::SetExceptionFilters { filters } => set.exception_filters = filters.clone(),
        _ => {}
    }
}

/// The requests the agent answers at once.
fn answer_agent(request: DebugRequest, plugin: &Plugin, agent: &DebugAgent) -> DebugReply {
    let failed = |message: String| DebugReply::Failed { message };
    let breakpoints = |states: Vec<BreakpointState>| DebugReply::Breakpoints {
        breakpoints: states.into_iter().map(Into::into).collect(),
    };
    match request {
        DebugRequest::SetBreakpoints { file, breakpoints: wire } => {
            let (ids, specs) = line_specs(&wire);
            breakpoints(agent.set_breakpoints_as(&file, &specs, &ids))
        }
        DebugRequest::SetFunctionBreakpoints { breakpoints: wire } => {
            let (ids, specs) = function_specs(&wire);
            breakpoints(agent.set_function_breakpoints_as(&specs, &ids))
        }
        DebugRequest::SetDataBreakpoints { breakpoints: wire } => {
            let (ids, specs) = data_specs(&wire);
            breakpoints(agent.set_data_breakpoints_as(&specs, &ids))
        }
        DebugRequest::DataBreakpointInfo { path } => match agent.data_target(&path) {
            Ok(target) => DebugReply::DataTarget { data_id: Some(target.data_id), description: target.description },
            Err(description) => DebugReply::DataTarget { data_id: None, description },
        },
        DebugRequest::SetExceptionFilters { filters } => breakpoints(agent.set_exception_filters(&filters)),
        DebugRequest::ProbeLines { file } => {
            let mut lines: Vec<u32> =
                plugin.probe_sites().iter().filter(|s| same_file(&file, &s.file)).map(|s| s.line).collect();
            lines.sort_unstable();
            lines.dedup();
            DebugReply::Lines { lines }
        }
        DebugRequest::StopOnEntry => {
            agent.stop_on_entry();
            DebugReply::Done
        }
        DebugRequest::SourceFiles => {
            let probes = plugin.probe_sites().iter().map(|s| s.file.clone());
            let spans = plugin.callsites().into_iter().filter(|c| c.is_span).map(|c| c.file.clone());
            let files: std::collections::BTreeSet<String> = probes.chain(spans).filter(|f| !f.is_empty()).collect();
            DebugReply::Files { files: files.into_iter().collect() }
        }
        DebugRequest::Pause => {
            agent.pause();
            DebugReply::Done
        }
        DebugRequest::SetVariable { name, value } => match agent.set_variable(&name, &value) {
            Ok(()) => DebugReply::Done,
            Err(message) => failed(message),
        },
        DebugRequest::Evaluate { expression, call } => {
            let more: Vec<(String, Value)> = call
                .map(|c| vec![("input".to_owned(), c.input), ("method".to_owned(), Value::String(c.method))])
                .unwrap_or_default();
            match agent.evaluate_with(&expression, &more) {
                Ok(value) => DebugReply::Evaluated { value },
                Err(message) => failed(message),
            }
        }
        other => failed(format!("unexpected request {other:?}")),
    }
}

/// Sends the agent's stops and logpoint lines to the adapter as they happen.
/// A logpoint's line is written on the thread that hit it, so a call's answer
/// never overtakes its last lines.
fn forward_agent_events(agent: &Arc<DebugAgent>, writer: Writer) {
    let lines = writer.clone();
    agent.set_output(Box::new(move |text| {
        let _ = reply(&lines, 0, logpoint_line(text));
    }));
    let events = agent.events().clone();
    std::thread::spawn(move || {
        for event in events.iter() {
            let note = match event {
                DebugEvent::Stopped(stop) => stopped(*stop),
                DebugEvent::Output(text) => logpoint_line(text),
            };
            if reply(&writer, 0, note).is_err() {
                return;
            }
        }
    });
}

fn logpoint_line(text: String) -> DebugReply {
    DebugReply::Output { category: "console".to_owned(), text: text + "\n" }
}
