//! A loaded plugin instance and the worker thread that runs its code.
//!
//! **Invariant:** plugin code runs only on the instance's worker thread
//! (`ax-plugin:<name>`), apart from threads the plugin spawns itself. Calls from
//! any number of host threads are queued to it, which serialises them: the
//! SDK's `Plugin::call` takes `&mut self`. The worker owns the instance pointer;
//! nothing else ever touches it.

use crossbeam_channel::{self as channel, Receiver, RecvError, Sender, TryRecvError};
use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ax_abi::{AllocCounters, AxBytes, AxStr, PluginVTable, Status};
use serde_json::Value;

use crate::bridge::{Bridge, CallsiteInfo, Instrumentation, ProbeHandler, ProbeSiteInfo, StackFrame};
use crate::budget::{ActiveCall, Budget, Usage, Violation, Watchdog};
use crate::cache::{CacheStats, QueryCache};
use crate::error::{CallError, LoadError, PluginFailure};
use crate::events::{Event, EventBus, InstanceId};
use crate::loader::OpenedLibrary;
use crate::trace::{CallEnd, CallStart};

/// Saved plugin state, as the plugin's `save_state` produced it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SavedState {
    pub schema_version: u32,
    pub bytes: Vec<u8>,
}

/// The instance pointer, owned by the worker thread.
struct InstancePtr(*mut c_void);
// SAFETY: the pointer is only ever used on the worker thread it is moved to.
unsafe impl Send for InstancePtr {}

type Job = Box<dyn FnOnce(&mut WorkerState) + Send>;

struct WorkerState {
    instance: InstancePtr,
    vtable: &'static PluginVTable,
    /// The worker thread's allocation counters (`None` when the plugin opted out).
    counters: Option<&'static AllocCounters>,
    destroyed: bool,
}

/// Why a call failed, as the worker sees it.
enum Failure {
    Plugin(PluginFailure),
    Budget(Vec<Violation>),
}

/// What [`Plugin::start`] needs.
pub(crate) struct Start<'a> {
    pub(crate) name: String,
    pub(crate) library: &'a Path,
    pub(crate) opened: OpenedLibrary,
    pub(crate) instance: InstanceId,
    pub(crate) events: Arc<EventBus>,
    pub(crate) instrumentation: Instrumentation,
    pub(crate) config_json: &'a str,
    /// How long `init` may take; `None` waits for ever.
    pub(crate) init_timeout: Option<Duration>,
    pub(crate) watchdog: Arc<Watchdog>,
    pub(crate) cache: Arc<QueryCache>,
}

/// A plugin instance. Cheap to share behind an `Arc`; every method may be called
/// from any thread. Dropping it shuts the instance down.
pub struct Plugin {
    name: String,
    library: PathBuf,
    instance: InstanceId,
    bridge: &'static Bridge,
    methods: Vec<String>,
    sdk_version: String,
    events: Arc<EventBus>,
    budget: std::sync::RwLock<Budget>,
    watchdog: Arc<Watchdog>,
    jobs: Mutex<Option<Sender<Job>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
    next_call: AtomicU64,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("library", &self.library)
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

fn take_bytes(out: &AxBytes) -> Vec<u8> {
    out.as_slice().to_vec()
}

impl Plugin {
    /// Starts the worker thread and creates the instance on it.
    pub(crate) fn start(start: Start<'_>) -> Result<Plugin, LoadError> {
        let Start {
            name,
            library,
            opened,
            instance,
            events,
            instrumentation,
            config_json,
            init_timeout,
            watchdog,
            cache,
        } = start;
        let started = Instant::now();
        let vtable = opened.vtable;
        let bridge = Bridge::new(instance, events.clone(), instrumentation, cache);

        let (job_tx, job_rx) = channel::unbounded::<Job>();
        let (ready_tx, ready_rx) = channel::bounded::<Result<Vec<String>, PluginFailure>>(1);
        let host_vtable = bridge.vtable();
        let config = config_json.to_owned();
        let worker = std::thread::Builder::new()
            .name(format!("ax-plugin:{name}"))
            .spawn(move || {
                // SAFETY: probe_sites returns the image's static PROBE_SITES array,
                // which lives as long as the image: forever.
                let sites = unsafe {
                    let mut len = 0usize;
                    let ptr = (vtable.probe_sites)(&mut len);
                    if ptr.is_null() || len == 0 { &[][..] } else { std::slice::from_raw_parts(ptr, len) }
                };
                // SAFETY: as above.
                unsafe { bridge.set_probe_sites(sites) };
                let mut ptr = std::ptr::null_mut();
                let mut err = AxBytes::empty();
                // SAFETY: vtable checked by the loader; arguments valid for the call.
                let status = unsafe { (vtable.create)(host_vtable, AxStr::from_str(&config), &mut ptr, &mut err) };
                let instance = if status == Status::OK && !ptr.is_null() {
                    InstancePtr(ptr)
                } else {
                    let failure = if status == Status::OK {
                        PluginFailure::Protocol { message: "create returned no instance".to_owned() }
                    } else {
                        PluginFailure::from_status(status, err.as_slice())
                    };
                    let _ = ready_tx.send(Err(failure));
                    return;
                };
                // SAFETY: alloc_counters returns null or the image's static counters.
                let counters = unsafe { (vtable.alloc_counters)().as_ref() };
                crate::profile::set_thread_alloc_counters(counters);
                let mut state = WorkerState { instance, vtable, counters, destroyed: false };
                // Nobody waits any more (init overran its deadline): undo the creation.
                let waited_for = ready_tx.send(Ok(describe(vtable))).is_ok();
                while waited_for && let Ok(job) = recv_spinning(&job_rx) {
                    job(&mut state);
                    if state.destroyed {
                        break;
                    }
                }
                if !state.destroyed {
                    // Every handle is gone without a shutdown: still run it.
                    let mut err = AxBytes::empty();
                    // SAFETY: the instance is live and destroyed exactly once.
                    unsafe { (vtable.destroy)(state.instance.0, &mut err) };
                }
            })
            .map_err(|source| LoadError::Thread { path: library.to_owned(), source })?;

        let ready = match init_timeout {
            Some(timeout) => ready_rx.recv_timeout(timeout).map_err(|e| e.is_timeout()),
            None => ready_rx.recv().map_err(|_| false),
        };
        let methods = match ready {
            Ok(Ok(methods)) => methods,
            Err(true) => {
                // The worker is stuck in the plugin's init; it cleans up if init ever returns.
                return Err(LoadError::InitTimeout {
                    path: library.to_owned(),
                    timeout: init_timeout.unwrap_or_default(),
                });
            }
            Ok(Err(failure)) => {
                let _ = worker.join();
                return Err(LoadError::Init { path: library.to_owned(), failure });
            }
            Err(false) => {
                let _ = worker.join();
                let failure = PluginFailure::Protocol { message: "the worker thread died during init".to_owned() };
                return Err(LoadError::Init { path: library.to_owned(), failure });
            }
        };

        // SAFETY: a literal in the mapped image.
        let sdk_version = unsafe { vtable.sdk_version.get() }.to_owned();
        let plugin = Plugin {
            name,
            library: library.to_owned(),
            instance,
            bridge,
            methods,
            sdk_version,
            events,
            budget: std::sync::RwLock::new(Budget::UNLIMITED),
            watchdog,
            jobs: Mutex::new(Some(job_tx)),
            worker: Mutex::new(Some(worker)),
            next_call: AtomicU64::new(1),
        };
        say_once_how_the_build_differs(&plugin.name, &plugin.sdk_version, opened.compiler_differs.as_deref());
        plugin.events.publish_with(|| Event::PluginLoaded {
            instance,
            name: plugin.name.clone(),
            library: plugin.library.clone(),
            sdk_version: plugin.sdk_version.clone(),
            probe_sites: plugin.probe_sites().len(),
            compiler_differs: opened.compiler_differs,
            duration: started.elapsed(),
        });
        Ok(plugin)
    }

    /// Runs `job` on the worker thread and waits for its answer.
    fn run<R: Send + 'static>(&self, job: impl FnOnce(&mut WorkerState) -> R + Send + 'static) -> Result<R, CallError> {
        let stopped = || CallError::Stopped { plugin: self.name.clone() };
        let (tx, rx) = channel::bounded(1);
        let boxed: Job = Box::new(move |state| {
            let _ = tx.send(job(state));
        });
        {
            let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
            jobs.as_ref().ok_or_else(stopped)?.send(boxed).map_err(|_| stopped())?;
        }
        recv_spinning(&rx).map_err(|_| stopped())
    }

    /// Calls `method` with JSON `input` bytes; returns the JSON output bytes.
    /// The plugin's budget applies (see [`Plugin::set_budget`]).
    pub fn call_raw(&self, method: &str, input: &[u8]) -> Result<Vec<u8>, CallError> {
        self.call_raw_with(method, input, None).0
    }

    /// [`Plugin::call_raw`] with `budget` overriding the plugin's limits it
    /// sets; also returns what the call used.
    pub fn call_raw_with(
        &self,
        method: &str,
        input: &[u8],
        budget: Option<&Budget>,
    ) -> (Result<Vec<u8>, CallError>, Usage) {
        let call = self.next_call.fetch_add(1, Ordering::Relaxed);
        let budget = match budget {
            Some(b) => self.budget().overridden_by(b),
            None => self.budget(),
        };
        let (instance, events, watchdog, bridge) =
            (self.instance, self.events.clone(), self.watchdog.clone(), self.bridge);
        let tracer = bridge.tracer();
        let trace = tracer.as_ref().map(|t| t.begin_call(&CallStart { plugin: &self.name, method, instance, call }));
        let (name, method_owned, input) = (self.name.clone(), method.to_owned(), input.to_vec());
        let result = self.run(move |state| {
            events.publish_with(|| Event::CallStarted { instance, call, method: method_owned.clone() });
            let vtable = state.vtable;
            let active = ActiveCall::begin(
                &name,
                &method_owned,
                instance,
                budget,
                state.counters,
                Box::new(move |violations| bridge.request_abort(vtable, violations)),
            );
            if budget.is_limited() {
                watchdog.watch(&active);
            }
            let profiling = bridge.profiler.is_on();
            if profiling {
                bridge.profiler.begin_call(bridge as *const Bridge as usize, &method_owned);
            }
            let traced = trace.as_ref().zip(bridge.tracer());
            if let Some((trace, tracer)) = &traced {
                crate::bridge::set_call_traced(tracer.enter_call(trace));
            }
            let mut out = AxBytes::empty();
            // SAFETY: the instance is live (not destroyed) and only used on this thread.
            let status = unsafe {
                (state.vtable.call)(state.instance.0, AxStr::from_str(&method_owned), AxStr::new(&input), &mut out)
            };
            if let Some((trace, tracer)) = &traced {
                tracer.exit_call(trace);
                crate::bridge::set_call_traced(true);
            }
            if budget.is_limited() {
                watchdog.unwatch(&active);
            }
            let (usage, violations) = active.finish();
            if profiling {
                let failed = status != Status::OK || !violations.is_empty();
                let me = bridge as *const Bridge as usize;
                bridge.profiler.end_call(me, &method_owned, &usage, &violations, failed, out.cap as u64);
            }
            active.publish_violations(&events);
            bridge.clear_abort(vtable);
            bridge.clear_stack();
            let result = if !violations.is_empty() {
                Err(Failure::Budget(violations))
            } else if status == Status::OK {
                Ok(take_bytes(&out))
            } else {
                Err(Failure::Plugin(PluginFailure::from_status(status, out.as_slice())))
            };
            (result, usage, method_owned, trace)
        });
        let (result, usage, method_owned, trace) = match result {
            Ok(done) => done,
            Err(stopped) => return (Err(stopped), Usage::default()),
        };
        let result = result.map_err(|failure| match failure {
            Failure::Plugin(failure) => {
                CallError::Plugin { plugin: self.name.clone(), method: method.to_owned(), failure }
            }
            Failure::Budget(violations) => {
                CallError::BudgetExceeded { plugin: self.name.clone(), method: method.to_owned(), violations }
            }
        });
        if let (Some(tracer), Some(trace)) = (tracer, trace) {
            let end = CallEnd { plugin: &self.name, method, instance, usage: &usage, error: result.as_ref().err() };
            tracer.end_call(trace, &end);
        }
        self.report_call(call, method_owned, usage, result.as_ref().err());
        (result, usage)
    }

    /// The limits every call gets unless it overrides them.
    pub fn budget(&self) -> Budget {
        *self.budget.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the limits every call gets unless it overrides them.
    pub fn set_budget(&self, budget: Budget) {
        *self.budget.write().unwrap_or_else(|e| e.into_inner()) = budget;
    }

    fn report_call(&self, call: u64, method: String, usage: Usage, error: Option<&CallError>) {
        if let Some(CallError::Plugin { failure: PluginFailure::Panic { message, location }, .. }) = error {
            self.events.publish_with(|| Event::Panic {
                instance: self.instance,
                method: Some(method.clone()),
                message: message.clone(),
                location: location.clone(),
            });
        }
        self.events.publish_with(|| Event::CallFinished {
            instance: self.instance,
            call,
            method,
            duration: usage.wall,
            usage,
            error: error.cloned(),
        });
    }

    /// Calls `method` with `input`; returns the decoded output.
    pub fn call(&self, method: &str, input: &Value) -> Result<Value, CallError> {
        self.call_with(method, input, None).0
    }

    /// [`Plugin::call`] with a budget override; also returns what the call used.
    pub fn call_with(&self, method: &str, input: &Value, budget: Option<&Budget>) -> (Result<Value, CallError>, Usage) {
        let input = serde_json::to_vec(input).expect("a serde_json::Value always serialises");
        let (output, usage) = self.call_raw_with(method, &input, budget);
        let decoded = output.and_then(|output| {
            serde_json::from_slice(&output).map_err(|e| CallError::InvalidOutput {
                plugin: self.name.clone(),
                method: method.to_owned(),
                message: e.to_string(),
            })
        });
        (decoded, usage)
    }

    /// Asks the plugin for its state.
    pub fn save_state(&self) -> Result<SavedState, CallError> {
        let result = self.run(|state| {
            let mut out = AxBytes::empty();
            let mut version = 0u32;
            // SAFETY: as in call_raw.
            let status = unsafe { (state.vtable.save_state)(state.instance.0, &mut version, &mut out) };
            if status == Status::OK {
                Ok(SavedState { schema_version: version, bytes: take_bytes(&out) })
            } else {
                Err(PluginFailure::from_status(status, out.as_slice()))
            }
        })?;
        result.map_err(|failure| self.failure("save_state", failure))
    }

    /// Hands the plugin a state saved earlier (possibly by another build).
    pub fn restore_state(&self, saved: &SavedState) -> Result<(), CallError> {
        let saved = saved.clone();
        let result = self.run(move |state| {
            let mut err = AxBytes::empty();
            // SAFETY: as in call_raw.
            let status = unsafe {
                (state.vtable.restore_state)(state.instance.0, saved.schema_version, AxStr::new(&saved.bytes), &mut err)
            };
            if status == Status::OK { Ok(()) } else { Err(PluginFailure::from_status(status, err.as_slice())) }
        })?;
        result.map_err(|failure| self.failure("restore_state", failure))
    }

    fn failure(&self, method: &str, failure: PluginFailure) -> CallError {
        let error = CallError::Plugin { plugin: self.name.clone(), method: method.to_owned(), failure };
        if let Some((message, location)) = error.panic() {
            self.events.publish_with(|| Event::Panic {
                instance: self.instance,
                method: Some(method.to_owned()),
                message: message.to_owned(),
                location: location.cloned(),
            });
        }
        error
    }

    /// Runs the plugin's `shutdown`, frees the instance and stops the worker.
    /// Later calls fail with [`CallError::Stopped`]. Idempotent.
    pub fn shutdown(&self) -> Result<(), CallError> {
        let result = self.run(|state| {
            let mut err = AxBytes::empty();
            state.destroyed = true;
            // SAFETY: the instance is live and, with `destroyed` set, never used again.
            let status = unsafe { (state.vtable.destroy)(state.instance.0, &mut err) };
            if status == Status::OK { Ok(()) } else { Err(PluginFailure::from_status(status, err.as_slice())) }
        });
        self.jobs.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(worker) = self.worker.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = worker.join();
            self.events.publish_with(|| Event::PluginStopped { instance: self.instance, name: self.name.clone() });
        }
        match result {
            Ok(inner) => inner.map_err(|failure| self.failure("shutdown", failure)),
            Err(CallError::Stopped { .. }) => Ok(()),
            Err(other) => Err(other),
        }
    }

    /// The plugin's name (from its manifest, or its library's file name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The library this instance was loaded from (not the private copy).
    pub fn library(&self) -> &Path {
        &self.library
    }

    /// Identity of this instance within its host.
    pub fn instance_id(&self) -> InstanceId {
        self.instance
    }

    /// The methods the plugin declares (`Plugin::METHODS`).
    pub fn methods(&self) -> &[String] {
        &self.methods
    }

    /// Version of the ax-plugin SDK the plugin was built with.
    pub fn sdk_version(&self) -> &str {
        &self.sdk_version
    }

    /// Every probe site of the library, known from load.
    pub fn probe_sites(&self) -> &[ProbeSiteInfo] {
        self.bridge.probe_sites()
    }

    /// The tracing callsites the plugin has registered so far (tracing registers
    /// a callsite the first time it is reached).
    pub fn callsites(&self) -> Vec<CallsiteInfo> {
        self.bridge.callsites()
    }

    /// Arms or disarms a probe site. Returns false if there is no such site.
    pub fn arm_probe(&self, index: usize, armed: bool) -> bool {
        self.bridge.arm_probe(index, armed)
    }

    /// Whether span enters are handed to the probe handler
    /// ([`ProbeHandler::on_span_enter`]); spans must be forwarded (see
    /// [`Plugin::set_instrumentation`]).
    pub fn watch_spans(&self, on: bool) {
        self.bridge.watch_spans(on);
    }

    /// Sets who receives hits of armed probe sites.
    pub fn set_probe_handler(&self, handler: Option<Arc<dyn ProbeHandler>>) {
        self.bridge.set_probe_handler(handler);
    }

    /// What the plugin forwards now.
    pub fn instrumentation(&self) -> Instrumentation {
        self.bridge.instrumentation()
    }

    /// Changes what the plugin forwards, and has it re-query every callsite.
    pub fn set_instrumentation(&self, instrumentation: Instrumentation) {
        self.bridge.set_instrumentation(instrumentation);
        // On the worker, like all plugin code. A stopped instance has nothing to rebuild.
        let _ = self.run(|state| {
            // SAFETY: rebuild_interest takes no arguments and catches its own panics.
            unsafe { (state.vtable.rebuild_interest)() }
        });
    }

    /// The counters of the plugin's query cache.
    pub fn cache_stats(&self) -> CacheStats {
        self.bridge.cache().stats()
    }

    /// What the profiler recorded since the plugin was loaded (or since
    /// [`Plugin::reset_profile`]) while profiling was on (see
    /// [`Instrumentation::profile`]): per method, per callsite, folded stacks.
    /// `startup` and `recommendations` are left for the caller, which knows how
    /// the plugin was loaded and against which thresholds.
    pub fn profile(&self) -> ax_profile::Profile {
        let plugin = ax_profile::PluginInfo {
            name: self.name.clone(),
            version: None,
            library: self.library.display().to_string(),
            manifest: None,
            sdk_version: self.sdk_version.clone(),
        };
        let tool = format!("ax-runtime {}", env!("CARGO_PKG_VERSION"));
        let mut profile = ax_profile::Profile::new(plugin, tool, String::new());
        let recorded =
            self.bridge.profiler.snapshot(&|id| self.bridge.callsite(id), self.bridge.probe_sites(), &self.name);
        profile.methods = recorded.methods;
        profile.callsites = recorded.callsites;
        profile.stacks = recorded.stacks;
        profile.normalize();
        profile
    }

    /// Forgets what the profiler recorded so far.
    pub fn reset_profile(&self) {
        self.bridge.profiler.reset();
    }

    /// The calling thread's shadow stack of this plugin's spans, outermost first.
    /// Meaningful on the plugin's thread: inside a [`ProbeHandler`], for example.
    pub fn current_stack(&self) -> Vec<StackFrame> {
        self.bridge.current_stack()
    }

    /// How many spans of this plugin the calling thread is inside (cheap: no
    /// allocation; for stepping decisions at a probe).
    pub fn stack_depth(&self) -> usize {
        self.bridge.stack_depth()
    }

    /// The last probe site of this plugin reached on the calling thread.
    pub fn last_probe(&self) -> Option<&ProbeSiteInfo> {
        self.bridge.last_probe()
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// How long a thread waiting for the other side of a call polls before it
/// sleeps. Waking a sleeping thread costs tens of microseconds on a small VM,
/// far more than a plugin call; polling this long makes back-to-back calls
/// cost about a microsecond, and an idle worker still sleeps after 50 µs.
const SPIN: Duration = Duration::from_micros(50);

/// `rx.recv()`, polling for [`SPIN`] before blocking.
fn recv_spinning<T>(rx: &Receiver<T>) -> Result<T, RecvError> {
    let start = Instant::now();
    loop {
        for _ in 0..64 {
            match rx.try_recv() {
                Ok(value) => return Ok(value),
                Err(TryRecvError::Disconnected) => return Err(RecvError),
                Err(TryRecvError::Empty) => std::hint::spin_loop(),
            }
        }
        if start.elapsed() > SPIN {
            return rx.recv();
        }
        std::thread::yield_now();
    }
}

/// Reads `describe` (the plugin's method list); a plugin that fails it simply lists none.
fn describe(vtable: &'static PluginVTable) -> Vec<String> {
    let mut out = AxBytes::empty();
    // SAFETY: describe takes only the output slot.
    let status = unsafe { (vtable.describe)(&mut out) };
    if status != Status::OK {
        return Vec::new();
    }
    serde_json::from_slice::<Value>(out.as_slice())
        .ok()
        .and_then(|v| v.get("methods").and_then(Value::as_array).cloned())
        .map(|m| m.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// Says, once per plugin and difference for the whole process (hot reloads
/// load the same build again and again), that the plugin was built against
/// another SDK release or by another compiler than this host. Neither is an
/// error: the ABI version and the canary matched, and only C types cross.
fn say_once_how_the_build_differs(plugin: &str, sdk_version: &str, compiler_differs: Option<&str>) {
    static SAID: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let host_version = env!("CARGO_PKG_VERSION");
    let sdk_differs = (sdk_version != host_version).then(|| {
        format!("built against ax-plugin {sdk_version}, this host is ax {host_version} (same ABI version, so it loads)")
    });
    let mut said = SAID.lock().unwrap_or_else(|e| e.into_inner());
    for difference in [sdk_differs.as_deref(), compiler_differs].into_iter().flatten() {
        let notice = format!("plugin {plugin}: {difference}");
        if !said.contains(&notice) {
            tracing::info!("{notice}");
            said.push(notice);
        }
    }
}
