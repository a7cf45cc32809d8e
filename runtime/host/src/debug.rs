//! The debug agent: breakpoints, logpoints and stepping on a plugin's probe
//! sites, evaluated in the host on the plugin's own thread.
//!
//! A [`DebugAgent`] is the plugin's [`ProbeHandler`]. Breakpoints are resolved
//! against the probe table known at load (a line without a probe moves to the
//! nearest probe line of the file) and their conditions, hit conditions and log
//! messages are compiled once, when set, with `ax-expr` — an error makes the
//! breakpoint unverified with a message pointing at the column. Only the sites
//! with breakpoints are armed, so every other probe still costs a load and a
//! branch; a hit whose condition is false costs one evaluation and never leaves
//! the plugin's thread. A hit that must stop publishes [`DebugEvent::Stopped`]
//! with a snapshot (frames from the shadow stack, the probe's bindings) and
//! blocks the plugin's thread until [`DebugAgent::resume`] — time that counts
//! against no budget. While stopped, [`DebugAgent::set_variable`] overwrites a
//! `&mut` binding, on the stopped thread.
//!
//! Data breakpoints ([`DebugAgent::set_data_breakpoints`]) stop when a
//! binding, or a path inside one, differs from its value at the previous hit
//! of the same site on the same thread (a plugin without parallel calls is
//! one thread); each watched site also keeps a ring of its last hits
//! ([`DebugOptions::history_size`]), shown at a stop
//! ([`Stop::history`]) and read by `prev(x)` and `history(x)` (`watch.rs`).
//!
//! The hot path, a hit of an armed site whose breakpoints do not stop, takes
//! the table's read lock, indexes it by site (no hashing), and touches no
//! other shared word unless a pause or step is pending; its history, when on,
//! costs one uncontended lock and a clock read.
//!
//! This is the runtime side of the debugger; the DAP adapter that drives it from
//! an editor is separate work.

mod watch;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::ThreadId;

use ax_expr::{CompileError, Env, HitCondition, Program, Template, Value as ExprValue};
use crossbeam_channel::{self as channel, Receiver, Sender};
use serde_json::Value;
pub use watch::{DataId, HistoryEntry};
use watch::{DataWatch, Ring, Stored, thread_key};

use crate::bridge::{Instrumentation, PanicSite, ProbeHandler, ProbeHit, ProbeSiteInfo, ProbeVar, SandboxDenial};
use crate::plugin::Plugin;

/// A breakpoint as an editor asks for it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BreakpointSpec {
    pub line: u32,
    pub condition: Option<String>,
    /// `>= 3`, `== 5`, `% 2`, or a bare number (same as `>=`).
    pub hit_condition: Option<String>,
    /// A logpoint: `{expr}` placeholders; logs instead of stopping.
    pub log_message: Option<String>,
}

/// A function breakpoint: stops when a span with this name (the function, for
/// `#[instrument]`) is entered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FunctionBreakpointSpec {
    pub name: String,
    /// Over the span's fields (known once the span has run).
    pub condition: Option<String>,
    pub hit_condition: Option<String>,
}

/// A data breakpoint as an editor asks for it: stop when the value `data_id`
/// names changes (see [`DataId`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DataBreakpointSpec {
    pub data_id: String,
    /// Over the site's bindings, checked when the value changed.
    pub condition: Option<String>,
    /// Counts changes.
    pub hit_condition: Option<String>,
}

/// What can be watched at the stopped probe (the answer to DAP's `dataBreakpointInfo`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataTarget {
    pub data_id: String,
    /// For the editor's list of data breakpoints.
    pub description: String,
}

/// How an agent runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DebugOptions {
    /// Earlier hits each watched probe site keeps (0: no history, and
    /// `prev()`/`history()` are refused).
    pub history_size: usize,
}

/// Hits kept per watched site unless the session says otherwise.
pub const DEFAULT_HISTORY_SIZE: usize = 32;

impl Default for DebugOptions {
    fn default() -> Self {
        DebugOptions { history_size: DEFAULT_HISTORY_SIZE }
    }
}

/// What became of a [`BreakpointSpec`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BreakpointState {
    pub id: u64,
    pub verified: bool,
    /// The probe line it was placed on (may differ from the line asked for).
    pub line: Option<u32>,
    /// Why it is unverified, or where it moved.
    pub message: Option<String>,
}

/// Why a thread stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    Breakpoint,
    FunctionBreakpoint,
    Step,
    Pause,
    /// A watched value changed (a data breakpoint).
    DataBreakpoint,
    /// The first probe of a session started with stop-on-entry.
    Entry,
    /// A condition could not be evaluated (never silently true or false).
    ConditionError,
    /// An exception breakpoint: a panic, a budget violation or an error return.
    Exception,
}

/// What an exception stop is about, for the editor's exception widget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExceptionStop {
    /// The filter that caught it: `panic`, `budget`, `error` or `sandbox`.
    pub filter: ExceptionFilter,
    /// One line: the panic message, the budget exceeded, the error.
    pub description: String,
    /// Where it happened (file:line:column), when known.
    pub location: Option<String>,
}

/// The exception breakpoint filters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExceptionFilter {
    /// A call panicked: stops in the panic hook, before unwinding, frames live.
    Panic,
    /// A call exceeded its budget: stops where the call is being unwound.
    Budget,
    /// A call returned an error (`Err(PluginError)`; panics and budgets have their own filters).
    Error,
    /// A sandboxed plugin's system call was denied: stops inside the denied
    /// call, before it returns `EPERM`, frames live.
    Sandbox,
}

impl ExceptionFilter {
    pub const ALL: [ExceptionFilter; 4] =
        [ExceptionFilter::Panic, ExceptionFilter::Budget, ExceptionFilter::Error, ExceptionFilter::Sandbox];

    pub fn name(self) -> &'static str {
        match self {
            ExceptionFilter::Panic => "panic",
            ExceptionFilter::Budget => "budget",
            ExceptionFilter::Error => "error",
            ExceptionFilter::Sandbox => "sandbox",
        }
    }

    pub fn from_name(name: &str) -> Option<ExceptionFilter> {
        ExceptionFilter::ALL.into_iter().find(|f| f.name() == name)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A frame of a stopped thread, innermost first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub name: String,
    pub file: String,
    pub line: u32,
}

/// What a stopped thread looks like.
#[derive(Clone, Debug, PartialEq)]
pub struct Stop {
    pub reason: StopReason,
    /// The breakpoints that caused it.
    pub breakpoints: Vec<u64>,
    pub thread: String,
    /// The probe site on top, then the entered spans, innermost first.
    pub frames: Vec<Frame>,
    /// The probe's bindings.
    pub variables: Vec<(String, Value)>,
    /// Which of them may be overwritten.
    pub writable: Vec<String>,
    /// Span fields, per span frame (innermost first).
    pub frame_fields: Vec<Vec<(String, Value)>>,
    /// For a condition error: the error.
    pub message: Option<String>,
    /// For an exception stop: what it is about.
    pub exception: Option<ExceptionStop>,
    /// The probe site stopped at (its index in the probe table), if at a probe.
    pub site: Option<usize>,
    /// Earlier hits of that site, newest first (empty unless it is watched
    /// with history on).
    pub history: Vec<HistoryEntry>,
}

/// What the agent tells its driver.
#[derive(Clone, Debug, PartialEq)]
pub enum DebugEvent {
    Stopped(Box<Stop>),
    /// A logpoint's message.
    Output(String),
}

/// How a stopped thread goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resume {
    Continue,
    /// Stop at the next probe at the same or an outer span depth.
    Next,
    /// Stop at the next probe.
    StepIn,
    /// Stop at the next probe in an outer span.
    StepOut,
}

struct Breakpoint {
    id: u64,
    condition: Option<Program>,
    hit_condition: Option<HitCondition>,
    log: Option<Template>,
    hits: AtomicU64,
}

enum Command {
    Resume(Resume),
    Set { name: String, json: String, reply: Sender<Result<(), String>> },
}

/// The commands for the stopped thread, in the order the driver sent them.
///
/// **Invariant:** a command is queued only while a thread is stopped
/// (`stopped`), under the same lock the stopped thread takes to leave; when it
/// takes a resume it answers every command queued after it ("resumed") before
/// it lets go of the lock. So no command is lost, none is answered out of
/// order, and none outlives the stop it was meant for.
#[derive(Default)]
struct Commands {
    /// Whether a thread is stopped and serving the queue.
    stopped: bool,
    queue: std::collections::VecDeque<Command>,
}

/// Everything armed at one probe site, as the hot path reads it.
#[derive(Default)]
struct Watched {
    breakpoints: Vec<Arc<Breakpoint>>,
    data: Vec<Arc<DataWatch>>,
    ring: Option<Arc<parking_lot::Mutex<Ring>>>,
}

/// Why a hit stops.
struct Decision {
    reason: StopReason,
    breakpoints: Vec<u64>,
    message: Option<String>,
    history: Vec<HistoryEntry>,
}

impl Decision {
    fn new(reason: StopReason, breakpoints: Vec<u64>, message: Option<String>) -> Decision {
        Decision { reason, breakpoints, message, history: Vec::new() }
    }
}

struct Step {
    mode: Resume,
    depth: usize,
    thread: ThreadId,
}

/// The debug agent of one plugin instance. See the module docs.
pub struct DebugAgent {
    plugin: Arc<Plugin>,
    options: DebugOptions,
    /// Line breakpoints per probe site index.
    breakpoints: Mutex<HashMap<usize, Vec<Arc<Breakpoint>>>>,
    /// Data breakpoints, with the site each is placed on.
    data: Mutex<Vec<(usize, Arc<DataWatch>)>>,
    /// History rings of the watched sites.
    rings: Mutex<HashMap<usize, Arc<parking_lot::Mutex<Ring>>>>,
    /// The hot path's table, by site index: rebuilt from the three above
    /// whenever they change.
    watched: RwLock<Vec<Option<Arc<Watched>>>>,
    /// Function breakpoints per span name.
    functions: RwLock<HashMap<String, Vec<Arc<Breakpoint>>>>,
    /// Sites that hold breakpoints, per source file as the client named it.
    by_file: Mutex<HashMap<String, Vec<usize>>>,
    next_id: AtomicU64,
    /// `NO_PAUSE`, `PAUSE` or `ENTRY`: stop the next probe any thread reaches.
    pause_requested: AtomicU8,
    /// The exception filters on, as `ExceptionFilter::bit`s.
    exceptions: AtomicU8,
    /// Set while `step` holds a step: lets a hit skip the lock when nobody steps.
    stepping: AtomicBool,
    step: Mutex<Option<Step>>,
    commands: Mutex<Commands>,
    /// Signalled when a command is queued and when a stopped thread leaves.
    wake: Condvar,
    /// Set by `detach`: threads waiting for their turn to stop go on instead.
    detached: AtomicBool,
    stopped: Mutex<Option<Stop>>,
    /// [`DebugAgent::watch_thread`] of the stopped thread.
    stopped_thread: AtomicU64,
    events: Sender<DebugEvent>,
    receiver: Receiver<DebugEvent>,
    /// Where logpoint lines go instead of `events`, when set.
    output: RwLock<Option<OutputSink>>,
}

/// Takes a logpoint's line on the thread that hit it.
pub type OutputSink = Box<dyn Fn(String) + Send + Sync>;

impl std::fmt::Debug for DebugAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DebugAgent").field("plugin", &self.plugin.name()).finish_non_exhaustive()
    }
}

/// A probe hit as an `ax-expr` environment: slot `i` is binding `i`; earlier
/// hits come from the site's history ring, if it has one.
struct HitEnv<'h, 'a>(&'h ProbeHit<'a>, Option<&'h Ring>);

impl Env for HitEnv<'_, '_> {
    fn earlier(&self, slot: usize, back: usize) -> Option<ExprValue<'_>> {
        self.1?.back(back)?.values.get(slot).map(Stored::as_expr)
    }

    fn kept(&self) -> usize {
        self.1.map_or(0, |r| r.entries.len())
    }

    fn get(&self, slot: usize) -> Option<ExprValue<'_>> {
        (slot < self.0.len()).then(|| match self.0.value(slot) {
            ProbeVar::I64(v) => ExprValue::Int(v),
            ProbeVar::U64(v) => ExprValue::UInt(v),
            ProbeVar::F64(v) => ExprValue::Float(v),
            ProbeVar::Bool(v) => ExprValue::Bool(v),
            ProbeVar::Str(s) => ExprValue::Str(s),
            ProbeVar::Json(s) => ExprValue::JsonText(s),
            ProbeVar::Debug(s) => ExprValue::Debug(s),
        })
    }
}

/// Whether the source path a client sent names the file a probe site was compiled from.
pub fn same_file(client: &str, site: &str) -> bool {
    let client: Vec<&str> = client.split(['/', '\\']).filter(|c| !c.is_empty() && *c != ".").collect();
    let site: Vec<&str> = site.split(['/', '\\']).filter(|c| !c.is_empty() && *c != ".").collect();
    !site.is_empty() && client.len() >= site.len() && client[client.len() - site.len()..] == site[..]
}

const NO_PAUSE: u8 = 0;
const PAUSE: u8 = 1;
const ENTRY: u8 = 2;

fn unverified(id: u64, message: String) -> BreakpointState {
    BreakpointState { id, verified: false, line: None, message: Some(message) }
}

impl DebugAgent {
    /// Attaches to `plugin`: becomes its probe handler and has spans (with their
    /// fields) forwarded, for frames.
    pub fn attach(plugin: Arc<Plugin>) -> Arc<DebugAgent> {
        DebugAgent::attach_with(plugin, DebugOptions::default())
    }

    /// [`DebugAgent::attach`] with `options`.
    pub fn attach_with(plugin: Arc<Plugin>, options: DebugOptions) -> Arc<DebugAgent> {
        let (events, receiver) = channel::unbounded();
        let agent = Arc::new(DebugAgent {
            plugin: plugin.clone(),
            options,
            breakpoints: Mutex::new(HashMap::new()),
            data: Mutex::new(Vec::new()),
            rings: Mutex::new(HashMap::new()),
            watched: RwLock::new(Vec::new()),
            functions: RwLock::new(HashMap::new()),
            by_file: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            pause_requested: AtomicU8::new(NO_PAUSE),
            exceptions: AtomicU8::new(0),
            stepping: AtomicBool::new(false),
            step: Mutex::new(None),
            commands: Mutex::new(Commands::default()),
            wake: Condvar::new(),
            detached: AtomicBool::new(false),
            stopped: Mutex::new(None),
            stopped_thread: AtomicU64::new(0),
            events,
            receiver,
            output: RwLock::new(None),
        });
        let current = plugin.instrumentation();
        plugin.set_instrumentation(Instrumentation { spans: true, span_fields: true, ..current });
        plugin.set_probe_handler(Some(agent.clone()));
        agent
    }

    /// The agent's events (stops and logpoint output).
    pub fn events(&self) -> &Receiver<DebugEvent> {
        &self.receiver
    }

    /// Hands logpoint lines to `sink` on the thread that hit them, before
    /// that thread goes on, instead of queueing them as events: whatever the
    /// call's caller says after the call returns comes after its lines. A
    /// later sink replaces it (a debugger that attaches again).
    pub fn set_output(&self, sink: OutputSink) {
        *self.output.write().unwrap_or_else(|e| e.into_inner()) = Some(sink);
    }

    /// Replaces the breakpoints of `file` with `specs`; says what became of each.
    pub fn set_breakpoints(&self, file: &str, specs: &[BreakpointSpec]) -> Vec<BreakpointState> {
        self.set_breakpoints_as(file, specs, &[])
    }

    /// [`DebugAgent::set_breakpoints`] with the ids the driver chose (`ids[i]`
    /// for `specs[i]`; new ones where missing), so that a breakpoint keeps its
    /// id when a session re-sends it to a restarted or reloaded plugin.
    pub fn set_breakpoints_as(&self, file: &str, specs: &[BreakpointSpec], ids: &[u64]) -> Vec<BreakpointState> {
        let sites: Vec<&ProbeSiteInfo> =
            self.plugin.probe_sites().iter().filter(|s| same_file(file, &s.file)).collect();
        let mut table = self.breakpoints.lock().unwrap_or_else(|e| e.into_inner());
        let mut by_file = self.by_file.lock().unwrap_or_else(|e| e.into_inner());
        for site in by_file.remove(file).unwrap_or_default() {
            table.remove(&site);
        }
        let mut placed = Vec::new();
        let states = specs
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let id = self.id_for(ids.get(i));
                let Some(site) = sites.iter().min_by_key(|s| (s.line.abs_diff(spec.line), s.line < spec.line)) else {
                    return unverified(id, format!("no probe site in {file}; ax stops only at probe!() sites"));
                };
                match self.compile(id, spec, site) {
                    Ok(breakpoint) => {
                        table.entry(site.index).or_default().push(Arc::new(breakpoint));
                        placed.push(site.index);
                        let moved = (site.line != spec.line)
                            .then(|| format!("moved from line {} to the probe on line {}", spec.line, site.line));
                        BreakpointState { id, verified: true, line: Some(site.line), message: moved }
                    }
                    Err(message) => unverified(id, message),
                }
            })
            .collect();
        by_file.insert(file.to_owned(), placed);
        drop(by_file);
        drop(table);
        self.rebuild();
        states
    }

    /// Replaces every data breakpoint with `specs`.
    pub fn set_data_breakpoints(&self, specs: &[DataBreakpointSpec]) -> Vec<BreakpointState> {
        self.set_data_breakpoints_as(specs, &[])
    }

    /// [`DebugAgent::set_data_breakpoints`] with the driver's ids, as
    /// [`DebugAgent::set_breakpoints_as`]. Each is resolved against this
    /// library's probes ([`DataId`]); one set while a thread is stopped at its
    /// site measures changes from the value shown there.
    pub fn set_data_breakpoints_as(&self, specs: &[DataBreakpointSpec], ids: &[u64]) -> Vec<BreakpointState> {
        let sites = self.plugin.probe_sites();
        let stop = self.stopped();
        let mut placed = Vec::new();
        let states = specs
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let id = self.id_for(ids.get(i));
                let Some(data_id) = DataId::parse(&spec.data_id) else {
                    return unverified(
                        id,
                        format!(
                            "dataId {:?}: expected file|line|function|path, as dataBreakpointInfo gives",
                            spec.data_id
                        ),
                    );
                };
                let (site, target) = match data_id.resolve(sites) {
                    Ok(found) => found,
                    Err(message) => return unverified(id, message),
                };
                let line = BreakpointSpec {
                    line: site.line,
                    condition: spec.condition.clone(),
                    hit_condition: spec.hit_condition.clone(),
                    log_message: None,
                };
                let compiled = match self.compile(id, &line, site) {
                    Ok(compiled) => compiled,
                    Err(message) => return unverified(id, message),
                };
                let watch = DataWatch::new(id, data_id.clone(), target, compiled.condition, compiled.hit_condition);
                if let Some(stop) = stop.as_ref().filter(|s| s.site == Some(site.index)) {
                    let values: Vec<Value> = stop.variables.iter().map(|(_, v)| v.clone()).collect();
                    if let Ok(now) = watch.target.eval(&values[..]) {
                        watch.seed(self.stopped_thread.load(Ordering::Relaxed), &now);
                    }
                }
                placed.push((site.index, Arc::new(watch)));
                let moved = (site.line != data_id.line)
                    .then(|| format!("the probe moved from line {} to line {}", data_id.line, site.line));
                BreakpointState { id, verified: true, line: Some(site.line), message: moved }
            })
            .collect();
        *self.data.lock().unwrap_or_else(|e| e.into_inner()) = placed;
        self.rebuild();
        states
    }

    /// What `path` (a binding of the stopped probe, or a path inside one:
    /// `input.user.id`) would be watched as.
    pub fn data_target(&self, path: &str) -> Result<DataTarget, String> {
        let stop = self.stopped().ok_or_else(|| "no thread is stopped".to_owned())?;
        let site = stop
            .site
            .and_then(|i| self.plugin.probe_sites().get(i))
            .ok_or_else(|| "only a probe's bindings can be watched; this stop is not at a probe".to_owned())?;
        ax_expr::compile(path, &site.vars).map_err(|e| e.render())?;
        let data_id =
            DataId { file: site.file.clone(), line: site.line, function: site.function.clone(), path: path.to_owned() };
        let description = format!("{path} at {}:{}", site.file, site.line);
        Ok(DataTarget { data_id: data_id.to_string(), description })
    }

    /// Rebuilds the hot path's table (and the history rings) from the
    /// breakpoints and data breakpoints, then arms exactly the sites watched.
    fn rebuild(&self) {
        let lines = self.breakpoints.lock().unwrap_or_else(|e| e.into_inner());
        let data = self.data.lock().unwrap_or_else(|e| e.into_inner());
        let mut rings = self.rings.lock().unwrap_or_else(|e| e.into_inner());
        let mut table: Vec<Option<Watched>> = Vec::new();
        table.resize_with(self.plugin.probe_sites().len(), || None);
        for (site, bps) in lines.iter() {
            if let Some(slot) = table.get_mut(*site) {
                slot.get_or_insert_with(Watched::default).breakpoints.extend(bps.iter().cloned());
            }
        }
        for (site, watch) in data.iter() {
            if let Some(slot) = table.get_mut(*site) {
                slot.get_or_insert_with(Watched::default).data.push(watch.clone());
            }
        }
        rings.retain(|site, _| table.get(*site).is_some_and(Option::is_some));
        if self.options.history_size > 0 {
            for (site, slot) in table.iter_mut().enumerate() {
                if let Some(watched) = slot {
                    let size = self.options.history_size;
                    let ring = rings.entry(site).or_insert_with(|| Arc::new(parking_lot::Mutex::new(Ring::new(size))));
                    watched.ring = Some(ring.clone());
                }
            }
        }
        drop((lines, data, rings));
        *self.watched.write().unwrap_or_else(|e| e.into_inner()) = table.into_iter().map(|w| w.map(Arc::new)).collect();
        self.rearm();
    }

    /// Replaces every function breakpoint with `specs`.
    pub fn set_function_breakpoints(&self, specs: &[FunctionBreakpointSpec]) -> Vec<BreakpointState> {
        self.set_function_breakpoints_as(specs, &[])
    }

    /// [`DebugAgent::set_function_breakpoints`] with the driver's ids, as
    /// [`DebugAgent::set_breakpoints_as`].
    pub fn set_function_breakpoints_as(&self, specs: &[FunctionBreakpointSpec], ids: &[u64]) -> Vec<BreakpointState> {
        let callsites = self.plugin.callsites();
        let mut table = self.functions.write().unwrap_or_else(|e| e.into_inner());
        table.clear();
        let states = specs
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let id = self.id_for(ids.get(i));
                let known = callsites.iter().find(|c| c.is_span && c.name == spec.name);
                let fields = known.map(|c| c.fields.clone()).unwrap_or_default();
                if spec.condition.as_deref().is_some_and(|c| !c.trim().is_empty()) && known.is_none() {
                    return unverified(
                        id,
                        format!(
                            "no span `{}` has run yet, so its fields are unknown; set the condition once it has",
                            spec.name
                        ),
                    );
                }
                let line = BreakpointSpec {
                    line: known.map_or(0, |c| c.line),
                    condition: spec.condition.clone(),
                    hit_condition: spec.hit_condition.clone(),
                    log_message: None,
                };
                match self.compile_with(id, &line, &fields) {
                    Ok(breakpoint) => {
                        table.entry(spec.name.clone()).or_default().push(Arc::new(breakpoint));
                        let message = known
                            .is_none()
                            .then(|| format!("no span `{}` has run yet; ax stops when one does", spec.name));
                        BreakpointState { id, verified: known.is_some(), line: known.map(|c| c.line), message }
                    }
                    Err(message) => unverified(id, message),
                }
            })
            .collect();
        self.plugin.watch_spans(!table.is_empty());
        states
    }

    fn id_for(&self, chosen: Option<&u64>) -> u64 {
        match chosen {
            Some(&id) if id != 0 => id,
            _ => self.next_id.fetch_add(1, Ordering::Relaxed),
        }
    }

    fn compile(&self, id: u64, spec: &BreakpointSpec, site: &ProbeSiteInfo) -> Result<Breakpoint, String> {
        self.compile_with(id, spec, &site.vars)
    }

    fn compile_with(&self, id: u64, spec: &BreakpointSpec, names: &[String]) -> Result<Breakpoint, String> {
        let explain = |what: &str, e: CompileError| format!("{what}: {}", e.render());
        let condition = spec
            .condition
            .as_deref()
            .filter(|c| !c.trim().is_empty())
            .map(|c| ax_expr::compile_condition(c, names))
            .transpose()
            .map_err(|e| explain("condition", e))?;
        let hit_condition = spec
            .hit_condition
            .as_deref()
            .filter(|c| !c.trim().is_empty())
            .map(ax_expr::parse_hit_condition)
            .transpose()
            .map_err(|e| explain("hit condition", e))?;
        let log = spec
            .log_message
            .as_deref()
            .map(|m| ax_expr::compile_template(m, names))
            .transpose()
            .map_err(|e| explain("log message", e))?;
        let earlier = condition.as_ref().is_some_and(Program::reads_earlier_hits)
            || log.as_ref().is_some_and(Template::reads_earlier_hits);
        if earlier && self.options.history_size == 0 {
            return Err("prev() and history() read the probe's history, which this session turned off (historySize 0)"
                .to_owned());
        }
        Ok(Breakpoint { id, condition, hit_condition, log, hits: AtomicU64::new(0) })
    }

    /// Arms exactly the sites that need to be: those with breakpoints, or all
    /// while a step or a pause is pending.
    fn rearm(&self) {
        let everything = self.pause_requested.load(Ordering::Relaxed) != NO_PAUSE
            || self.step.lock().unwrap_or_else(|e| e.into_inner()).is_some();
        let table = self.watched.read().unwrap_or_else(|e| e.into_inner());
        for site in self.plugin.probe_sites() {
            let watched = table.get(site.index).is_some_and(Option::is_some);
            self.plugin.arm_probe(site.index, everything || watched);
        }
    }

    /// Stops the next probe any plugin thread reaches.
    pub fn pause(&self) {
        self.pause_requested.store(PAUSE, Ordering::Relaxed);
        self.rearm();
    }

    /// Stops the first probe any plugin thread reaches, as an entry stop.
    pub fn stop_on_entry(&self) {
        self.pause_requested.store(ENTRY, Ordering::Relaxed);
        self.rearm();
    }

    /// Replaces the exception filters on; says what became of each name
    /// (an unknown one is unverified and names the known ones).
    pub fn set_exception_filters(&self, names: &[String]) -> Vec<BreakpointState> {
        let mut bits = 0;
        let states = names
            .iter()
            .map(|name| {
                let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                match ExceptionFilter::from_name(name) {
                    Some(filter) => {
                        bits |= filter.bit();
                        BreakpointState { id, verified: true, line: None, message: None }
                    }
                    None => unverified(
                        id,
                        format!("unknown exception filter `{name}`; expected panic, budget, error or sandbox"),
                    ),
                }
            })
            .collect();
        self.exceptions.store(bits, Ordering::Relaxed);
        states
    }

    fn catches(&self, filter: ExceptionFilter) -> bool {
        self.exceptions.load(Ordering::Relaxed) & filter.bit() != 0
    }

    /// A call returned: with the `error` filter on and the call's own error
    /// (not a panic or a budget, which stop where they happen), stops the
    /// calling thread — which is not the plugin's — until resumed.
    pub fn call_returned(&self, method: &str, input: &Value, result: &Result<Value, crate::CallError>) {
        let Err(crate::CallError::Plugin { failure: crate::PluginFailure::Error { kind, message }, .. }) = result
        else {
            return;
        };
        if !self.catches(ExceptionFilter::Error) {
            return;
        }
        let stop = Stop {
            reason: StopReason::Exception,
            breakpoints: Vec::new(),
            thread: "plugin".to_owned(),
            frames: vec![Frame { name: format!("{method} (returned an error)"), file: String::new(), line: 0 }],
            variables: vec![
                ("error".to_owned(), serde_json::json!({ "kind": kind, "message": message })),
                ("method".to_owned(), Value::String(method.to_owned())),
                ("input".to_owned(), input.clone()),
            ],
            writable: Vec::new(),
            frame_fields: Vec::new(),
            message: Some(format!("{kind}: {message}")),
            exception: Some(ExceptionStop {
                filter: ExceptionFilter::Error,
                description: format!("`{method}` returned an error: {kind}: {message}"),
                location: None,
            }),
            site: None,
            history: Vec::new(),
        };
        let how = self.stop_and_serve(stop, None);
        // The plugin's frames are gone: a step goes to the next probe reached.
        if how != Resume::Continue {
            self.pause();
        }
    }

    /// The stopped thread's snapshot, if one is stopped.
    pub fn stopped(&self) -> Option<Stop> {
        self.stopped.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Lets the stopped thread go on, after the commands sent before this one;
    /// returns whether a thread was stopped (if none is, nothing happens: a
    /// resume never carries over to a later stop).
    pub fn resume(&self, how: Resume) -> bool {
        let mut commands = self.commands.lock().unwrap_or_else(|e| e.into_inner());
        if !commands.stopped {
            return false;
        }
        commands.queue.push_back(Command::Resume(how));
        self.wake.notify_all();
        true
    }

    /// Overwrites the stopped thread's `&mut` binding `name` with `json`,
    /// after the commands sent before this one.
    pub fn set_variable(&self, name: &str, json: &str) -> Result<(), String> {
        let (reply, answer) = channel::bounded(1);
        {
            let mut commands = self.commands.lock().unwrap_or_else(|e| e.into_inner());
            if !commands.stopped {
                return Err("no thread is stopped".to_owned());
            }
            commands.queue.push_back(Command::Set { name: name.to_owned(), json: json.to_owned(), reply });
            self.wake.notify_all();
        }
        answer.recv().unwrap_or_else(|_| Err("the stopped thread went away".to_owned()))
    }

    /// Evaluates `expression` (the `ax-expr` language) over the stopped
    /// thread's bindings: for watch, hover and the REPL.
    pub fn evaluate(&self, expression: &str) -> Result<Value, String> {
        self.evaluate_with(expression, &[])
    }

    /// As [`evaluate`](Self::evaluate), with `more` bindings after the
    /// probe's (the call's `method` and `input`): a name resolves to the
    /// probe's binding first, then to the first of `more` that has it.
    pub fn evaluate_with(&self, expression: &str, more: &[(String, Value)]) -> Result<Value, String> {
        let stop = self.stopped().ok_or_else(|| "no thread is stopped: nothing to evaluate against".to_owned())?;
        /// The stop's bindings, and its history for `prev` and `history`.
        struct StopEnv<'s>(&'s [Value], &'s [HistoryEntry]);
        impl Env for StopEnv<'_> {
            fn get(&self, slot: usize) -> Option<ExprValue<'_>> {
                self.0.get(slot).map(ExprValue::Json)
            }
            fn earlier(&self, slot: usize, back: usize) -> Option<ExprValue<'_>> {
                let entry = self.1.get(back.checked_sub(1)?)?;
                entry.values.get(slot).map(|(_, v)| ExprValue::Json(v))
            }
            fn kept(&self) -> usize {
                self.1.len()
            }
        }
        let mut names: Vec<&str> = stop.variables.iter().map(|(n, _)| n.as_str()).collect();
        let mut values: Vec<Value> = stop.variables.iter().map(|(_, v)| v.clone()).collect();
        for (name, value) in more {
            if !names.contains(&name.as_str()) {
                names.push(name);
                values.push(value.clone());
            }
        }
        let program = ax_expr::compile(expression, &names).map_err(|e| e.render())?;
        if program.reads_earlier_hits() && self.options.history_size == 0 {
            return Err("prev() and history() read the probe's history, which this session turned off (historySize 0)"
                .to_owned());
        }
        let env = StopEnv(&values, &stop.history);
        program.eval(&env).map(|v| v.to_json()).map_err(|e| e.to_string())
    }

    /// Detaches: removes every breakpoint and lets a stopped thread go on.
    pub fn detach(&self) {
        self.breakpoints.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.data.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.rings.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.watched.write().unwrap_or_else(|e| e.into_inner()).clear();
        self.functions.write().unwrap_or_else(|e| e.into_inner()).clear();
        self.plugin.watch_spans(false);
        self.pause_requested.store(NO_PAUSE, Ordering::Relaxed);
        self.exceptions.store(0, Ordering::Relaxed);
        *self.step.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.stepping.store(false, Ordering::Relaxed);
        self.rearm();
        self.plugin.set_probe_handler(None);
        self.detached.store(true, Ordering::Relaxed);
        self.resume(Resume::Continue);
        self.wake.notify_all();
    }

    /// The thread a data breakpoint compares hits within: the calling thread
    /// for a plugin with parallel calls; one for a plugin without them, whose
    /// calls follow one another whichever host thread makes them.
    fn watch_thread(&self) -> u64 {
        if self.plugin.is_concurrent() { thread_key() } else { 0 }
    }

    /// Why this hit must stop, if it must (logpoints are written on the way,
    /// the hit goes into its site's history). The common case — a false
    /// condition, an unchanged value — allocates nothing and takes no lock
    /// but the table's read lock (and the site's history lock).
    fn decide(&self, hit: &ProbeHit<'_>) -> Option<Decision> {
        if self.pause_requested.load(Ordering::Relaxed) != NO_PAUSE {
            match self.pause_requested.swap(NO_PAUSE, Ordering::Relaxed) {
                PAUSE => return Some(Decision::new(StopReason::Pause, Vec::new(), None)),
                ENTRY => return Some(Decision::new(StopReason::Entry, Vec::new(), None)),
                _ => {}
            }
        }
        let stepped = self.stepping.load(Ordering::Relaxed)
            && self.step.lock().unwrap_or_else(|e| e.into_inner()).as_ref().is_some_and(|step| {
                let depth = self.plugin.stack_depth();
                // A step follows its thread; a plugin without parallel calls
                // is one thread, whichever host thread makes its next call.
                (!self.plugin.is_concurrent() || step.thread == std::thread::current().id())
                    && match step.mode {
                        Resume::Next => depth <= step.depth,
                        Resume::StepIn => true,
                        Resume::StepOut => depth < step.depth,
                        Resume::Continue => false,
                    }
            });
        let step = || stepped.then(|| Decision::new(StopReason::Step, Vec::new(), None));
        let table = self.watched.read().unwrap_or_else(|e| e.into_inner());
        let Some(watched) = table.get(hit.site.index).and_then(Option::as_ref) else {
            return step();
        };
        let mut ring = watched.ring.as_ref().map(|r| r.lock());
        let env = HitEnv(hit, ring.as_deref());
        let mut decision = self.check(watched, &env).or_else(step);
        if let (Some(decision), Some(ring)) = (decision.as_mut(), ring.as_ref()) {
            decision.history = ring.snapshot(&hit.site.vars, std::time::Instant::now());
        }
        if let Some(ring) = ring.as_mut() {
            ring.record(hit);
        }
        decision
    }

    /// The breakpoints and data breakpoints of a watched site at this hit.
    fn check(&self, watched: &Watched, env: &HitEnv<'_, '_>) -> Option<Decision> {
        let mut ids = Vec::new();
        for bp in &watched.breakpoints {
            if let Some(condition) = &bp.condition {
                match condition.eval_bool(env) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => {
                        let message = format!("condition `{}` failed: {e}", condition.source());
                        return Some(Decision::new(StopReason::ConditionError, vec![bp.id], Some(message)));
                    }
                }
            }
            let hits = bp.hits.fetch_add(1, Ordering::Relaxed) + 1;
            if bp.hit_condition.is_some_and(|h| !h.should_stop(hits)) {
                continue;
            }
            if let Some(log) = &bp.log {
                let line = log.render(env);
                match &*self.output.read().unwrap_or_else(|e| e.into_inner()) {
                    Some(sink) => sink(line),
                    None => drop(self.events.send(DebugEvent::Output(line))),
                }
                continue;
            }
            ids.push(bp.id);
        }
        let mut changes = Vec::new();
        for watch in &watched.data {
            let Some(change) = watch.observe(self.watch_thread(), env) else { continue };
            if let Some(condition) = &watch.condition {
                match condition.eval_bool(env) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => {
                        let message = format!("condition `{}` failed: {e}", condition.source());
                        return Some(Decision::new(StopReason::ConditionError, vec![watch.id], Some(message)));
                    }
                }
            }
            let hits = watch.hits.fetch_add(1, Ordering::Relaxed) + 1;
            if watch.hit_condition.is_some_and(|h| !h.should_stop(hits)) {
                continue;
            }
            changes.push(format!("`{}` changed: {} → {}", watch.data_id.path, change.old, change.new));
            ids.push(watch.id);
        }
        if !changes.is_empty() {
            Some(Decision::new(StopReason::DataBreakpoint, ids, Some(changes.join("; "))))
        } else if !ids.is_empty() {
            Some(Decision::new(StopReason::Breakpoint, ids, None))
        } else {
            None
        }
    }
}

impl ProbeHandler for DebugAgent {
    fn on_span_enter(&self, name: &str) {
        let Some(candidates) = self.functions.read().unwrap_or_else(|e| e.into_inner()).get(name).cloned() else {
            return;
        };
        let stack = self.plugin.current_stack();
        let fields = stack.last().map(|f| f.fields.clone()).unwrap_or_default();
        let values: Vec<Value> = fields.iter().map(|(_, v)| v.clone()).collect();
        let mut ids = Vec::new();
        for bp in candidates {
            if let Some(condition) = &bp.condition
                && condition.eval_bool(&values[..]) != Ok(true)
            {
                continue;
            }
            let hits = bp.hits.fetch_add(1, Ordering::Relaxed) + 1;
            if bp.hit_condition.is_some_and(|h| !h.should_stop(hits)) {
                continue;
            }
            ids.push(bp.id);
        }
        if ids.is_empty() {
            return;
        }
        let stop = Stop {
            reason: StopReason::FunctionBreakpoint,
            breakpoints: ids,
            thread: current_thread_name(),
            frames: span_frames(&stack),
            variables: fields,
            writable: Vec::new(),
            frame_fields: stack.iter().rev().map(|f| f.fields.clone()).collect(),
            message: None,
            exception: None,
            site: None,
            history: Vec::new(),
        };
        self.halt(stop, None, stack.len());
    }

    fn on_probe(&self, hit: &mut ProbeHit<'_>) {
        let Some(Decision { reason, breakpoints, message, history }) = self.decide(hit) else { return };
        let stack = self.plugin.current_stack();
        let mut frames =
            vec![Frame { name: hit.site.function.clone(), file: hit.site.file.clone(), line: hit.site.line }];
        frames.extend(span_frames(&stack));
        let stop = Stop {
            reason,
            breakpoints,
            thread: current_thread_name(),
            frames,
            variables: hit.values().into_iter().map(|(n, v)| (n.to_owned(), v.to_json())).collect(),
            writable: (0..hit.len()).filter(|&i| hit.is_writable(i)).map(|i| hit.name(i).to_owned()).collect(),
            frame_fields: stack.iter().rev().map(|f| f.fields.clone()).collect(),
            message,
            exception: None,
            site: Some(hit.site.index),
            history,
        };
        self.halt(stop, Some(hit), stack.len());
    }

    fn on_abort(&self, reason: &str) {
        if !self.catches(ExceptionFilter::Budget) {
            return;
        }
        let stack = self.plugin.current_stack();
        let description = format!("budget exceeded: {reason}");
        let stop = exception_stop(&stack, Vec::new(), Vec::new(), ExceptionFilter::Budget, description, None);
        self.halt(stop, None, stack.len());
    }

    fn on_sandbox_denial(&self, denial: &SandboxDenial<'_>) {
        if !self.catches(ExceptionFilter::Sandbox) {
            return;
        }
        let stack = self.plugin.current_stack();
        let SandboxDenial { capability, system_call } = *denial;
        let description = format!(
            "the sandbox denied `{system_call}` (capability {capability}): the call fails with EPERM when resumed"
        );
        let name = format!("{system_call} (denied by the sandbox)");
        let frames = vec![Frame { name, file: String::new(), line: 0 }];
        let denied = serde_json::json!({ "system_call": system_call, "capability": capability });
        let variables = vec![("denied".to_owned(), denied)];
        let stop = exception_stop(&stack, frames, variables, ExceptionFilter::Sandbox, description, None);
        self.halt(stop, None, stack.len());
    }

    fn on_panic(&self, panic: &PanicSite<'_>) {
        if !self.catches(ExceptionFilter::Panic) {
            return;
        }
        let stack = self.plugin.current_stack();
        let location = (!panic.file.is_empty()).then(|| format!("{}:{}:{}", panic.file, panic.line, panic.column));
        let mut frames = Vec::new();
        if location.is_some() {
            let name = stack.last().map_or_else(|| "panic".to_owned(), |f| format!("{} (panicked)", f.name));
            frames.push(Frame { name, file: panic.file.to_owned(), line: panic.line });
        }
        let variables = vec![("panic".to_owned(), Value::String(panic.message.to_owned()))];
        let description = format!("panicked: {}", panic.message);
        let stop = exception_stop(&stack, frames, variables, ExceptionFilter::Panic, description, location);
        self.halt(stop, None, stack.len());
    }
}

/// An exception stop on the plugin's thread, inside `stack`: `frames` on top
/// of the spans', `variables` before the innermost span's fields.
fn exception_stop(
    stack: &[crate::bridge::StackFrame],
    mut frames: Vec<Frame>,
    mut variables: Vec<(String, Value)>,
    filter: ExceptionFilter,
    description: String,
    location: Option<String>,
) -> Stop {
    frames.extend(span_frames(stack));
    variables.extend(stack.last().map(|f| f.fields.clone()).unwrap_or_default());
    Stop {
        reason: StopReason::Exception,
        breakpoints: Vec::new(),
        thread: current_thread_name(),
        frames,
        variables,
        writable: Vec::new(),
        frame_fields: stack.iter().rev().map(|f| f.fields.clone()).collect(),
        message: Some(description.clone()),
        exception: Some(ExceptionStop { filter, description, location }),
        site: None,
        history: Vec::new(),
    }
}

fn current_thread_name() -> String {
    std::thread::current().name().unwrap_or("plugin").to_owned()
}

/// The shadow stack's spans as frames, innermost first.
fn span_frames(stack: &[crate::bridge::StackFrame]) -> Vec<Frame> {
    stack.iter().rev().map(|f| Frame { name: f.name.clone(), file: f.file.clone(), line: f.line }).collect()
}

impl DebugAgent {
    /// Stops the calling plugin thread with `stop` until resumed (the time
    /// counts against no budget), serving setVariable on `hit`'s bindings; then
    /// sets up the step asked for, from span depth `depth`.
    fn halt(&self, stop: Stop, hit: Option<&mut ProbeHit<'_>>, depth: usize) {
        *self.step.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.stepping.store(false, Ordering::Relaxed);
        let how = crate::budget::paused(|| self.stop_and_serve(stop, hit));
        if how != Resume::Continue {
            *self.step.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(Step { mode: how, depth, thread: std::thread::current().id() });
            self.stepping.store(true, Ordering::Relaxed);
        }
        self.rearm();
    }

    /// Becomes the stopped thread (after any other one has been resumed:
    /// one stop at a time), publishes `stop`, and serves the commands in order
    /// until a resume; returns how to go on. After a detach, returns at once.
    fn stop_and_serve(&self, stop: Stop, mut hit: Option<&mut ProbeHit<'_>>) -> Resume {
        let mut commands = self.commands.lock().unwrap_or_else(|e| e.into_inner());
        while commands.stopped && !self.detached.load(Ordering::Relaxed) {
            commands = self.wake.wait(commands).unwrap_or_else(|e| e.into_inner());
        }
        if self.detached.load(Ordering::Relaxed) {
            return Resume::Continue;
        }
        commands.stopped = true;
        self.stopped_thread.store(self.watch_thread(), Ordering::Relaxed);
        *self.stopped.lock().unwrap_or_else(|e| e.into_inner()) = Some(stop.clone());
        let _ = self.events.send(DebugEvent::Stopped(Box::new(stop)));
        let how = loop {
            match commands.queue.pop_front() {
                Some(Command::Resume(how)) => break how,
                Some(Command::Set { name, json, reply }) => {
                    drop(commands);
                    let _ = reply.send(self.set_binding(hit.as_deref_mut(), &name, &json));
                    commands = self.commands.lock().unwrap_or_else(|e| e.into_inner());
                }
                None => commands = self.wake.wait(commands).unwrap_or_else(|e| e.into_inner()),
            }
        };
        // Sent after the resume: they find the thread running.
        for command in commands.queue.drain(..) {
            if let Command::Set { reply, .. } = command {
                let _ = reply.send(Err("no thread is stopped: it was resumed before this request".to_owned()));
            }
        }
        commands.stopped = false;
        *self.stopped.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.wake.notify_all();
        how
    }

    /// Overwrites binding `name` of `hit` (the stopped thread's) with `json`,
    /// and the stop's snapshot with it.
    fn set_binding(&self, hit: Option<&mut ProbeHit<'_>>, name: &str, json: &str) -> Result<(), String> {
        let result = match hit.map(|hit| {
            let i = hit.position(name);
            (hit, i)
        }) {
            Some((hit, Some(i))) => hit.set(i, json),
            Some((_, None)) => Err(format!("no binding `{name}` at this probe")),
            None => Err("only the `&mut` bindings of a probe can be set; this stop is a span's".to_owned()),
        };
        if result.is_ok()
            && let Some(stop) = self.stopped.lock().unwrap_or_else(|e| e.into_inner()).as_mut()
            && let Some(slot) = stop.variables.iter_mut().find(|(n, _)| *n == name)
        {
            slot.1 = serde_json::from_str(json).unwrap_or_else(|_| Value::String(json.to_owned()));
        }
        result
    }
}
