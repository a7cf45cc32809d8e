//! A loaded plugin instance, and how its code is run.
//!
//! A call runs on the thread that makes it: no hand-off between threads, no
//! waiting thread spinning or sleeping (a hand-off cost about a microsecond per
//! call and, under machine load, a spinning waiter starved the worker it
//! waited for). What the call needs is taken per call, on the thread that runs
//! it: the thread's CPU clock and the plugin's allocation counters of that
//! thread (both thread-local), the budget's [`ActiveCall`], the shadow stack.
//!
//! **Invariant:** the instance is only ever touched under `access`: a call of a
//! plugin without the `CONCURRENT` flag holds it exclusively, a call of a
//! concurrent plugin shared (so its calls run in parallel on their callers'
//! threads, which are the pool); `save_state`, `restore_state` and `destroy`
//! always hold it exclusively, so they wait for every call in flight.
//!
//! **Invariant:** a plugin with the `DEDICATED_THREAD` flag runs every export on
//! its own thread (`ax-plugin:<name>`), the thread that created it; calls are
//! queued to it. Every plugin's `init` runs on a thread of its own, so that an
//! `init` that never returns can be given up on (`init_timeout`).

use crossbeam_channel::{self as channel, Receiver, RecvError, Sender, TryRecvError};
use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ax_abi::{AllocCounters, AxBytes, AxStr, PluginVTable, Status, flags};
use crossbeam_utils::CachePadded;
use crossbeam_utils::atomic::AtomicCell;
use crossbeam_utils::sync::ShardedLock;
use parking_lot::RwLock;
use serde_json::Value;

use crate::bridge::{Bridge, CallsiteInfo, Instrumentation, ProbeHandler, ProbeSiteInfo, StackFrame};
use crate::budget::{ActiveCall, Budget, Usage, Violation, Watchdog};
use crate::cache::{CacheStats, QueryCache};
use crate::error::{CallError, LoadError, PluginFailure};
use crate::events::{Event, EventBus, InstanceId};
use crate::loader::OpenedLibrary;
use crate::trace::{CallEnd, CallStart, CallTrace};

/// Saved plugin state, as the plugin's `save_state` produced it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SavedState {
    pub schema_version: u32,
    pub bytes: StateBytes,
}

/// The bytes of a [`SavedState`]: the buffer the plugin handed over, kept as
/// it is (a hot reload's megabytes are not copied into the host on their way
/// to the next build), or bytes the host holds (`From<Vec<u8>>`: read from a
/// file, received from a child). Reads as a `[u8]`.
pub struct StateBytes(Held);

enum Held {
    Host(Vec<u8>),
    /// Freed by the image that allocated it (images are never unmapped).
    Plugin(AxBytes),
}

impl std::ops::Deref for StateBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.0 {
            Held::Host(bytes) => bytes,
            Held::Plugin(bytes) => bytes.as_slice(),
        }
    }
}

impl AsRef<[u8]> for StateBytes {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl Default for StateBytes {
    fn default() -> StateBytes {
        Vec::new().into()
    }
}

impl From<Vec<u8>> for StateBytes {
    fn from(bytes: Vec<u8>) -> StateBytes {
        StateBytes(Held::Host(bytes))
    }
}

impl Clone for StateBytes {
    fn clone(&self) -> StateBytes {
        self.to_vec().into()
    }
}

impl PartialEq for StateBytes {
    fn eq(&self, other: &StateBytes) -> bool {
        **self == **other
    }
}

impl Eq for StateBytes {}

impl std::fmt::Debug for StateBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StateBytes({} bytes)", self.len())
    }
}

/// The instance pointer; `None` once destroyed.
#[derive(Clone, Copy)]
struct InstancePtr(*mut c_void);
// SAFETY: the pointer is only used under `Plugin::access`, which gives the
// exclusivity the plugin's flags ask for (see the module docs).
unsafe impl Send for InstancePtr {}
// SAFETY: as above.
unsafe impl Sync for InstancePtr {}

/// A job for a dedicated thread.
type Job = Box<dyn FnOnce() + Send>;

/// Why a call failed, as the thread running it sees it.
enum Failure {
    Plugin(PluginFailure),
    Budget(Vec<Violation>),
}

/// What the thread running a call hands back.
type Outcome = (Result<AxBytes, Failure>, Usage, Option<CallTrace>);

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
    pub(crate) init_thread: &'a InitThread,
}

/// What a call needs besides its arguments; shared with a dedicated thread.
struct Core {
    name: String,
    /// `name`, shared with each call's budget bookkeeping.
    shared_name: Arc<str>,
    /// Asks the plugin to unwind a call whose budget was exceeded.
    on_violation: crate::budget::OnViolation,
    instance: InstanceId,
    bridge: &'static Bridge,
    vtable: &'static PluginVTable,
    events: Arc<EventBus>,
    watchdog: Arc<Watchdog>,
    /// The instance; see the module docs.
    access: Access,
}

/// The instance, under the lock its flags call for.
enum Access {
    /// Every call exclusive: one uncontended lock.
    Serial(RwLock<Option<InstancePtr>>),
    /// Calls shared, each reading the shard of its own thread, so that
    /// parallel calls write to no common line (one lock's reader count would be
    /// written by every call of every caller); exclusive access takes every shard.
    Concurrent(ShardedLock<Option<InstancePtr>>),
}

/// A plugin instance. Cheap to share behind an `Arc`; every method may be called
/// from any thread. Dropping it shuts the instance down.
pub struct Plugin {
    core: Arc<Core>,
    library: PathBuf,
    methods: Vec<String>,
    sdk_version: String,
    /// Read at every call without writing to it (a lock's reader count is a
    /// line every caller of a concurrent plugin would write).
    budget: AtomicCell<Budget>,
    /// Whether the plugin runs on a dedicated thread (its `DEDICATED_THREAD` flag).
    dedicated: bool,
    /// The dedicated thread's queue (`DEDICATED_THREAD` plugins only).
    jobs: Mutex<Option<Sender<Job>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
    /// On a line of its own: every call writes it.
    next_call: CachePadded<AtomicU64>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.core.name)
            .field("library", &self.library)
            .field("instance", &self.core.instance)
            .field("concurrent", &self.is_concurrent())
            .finish_non_exhaustive()
    }
}

impl Plugin {
    /// Creates the instance on another thread than the caller's: a thread of
    /// its own for a plugin that asks for one (it stays, as the plugin's
    /// dedicated thread), else the host's [`InitThread`].
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
            init_thread,
        } = start;
        let started = Instant::now();
        let vtable = opened.vtable;
        let dedicated = vtable.flags & flags::DEDICATED_THREAD != 0;
        let bridge = Bridge::new(instance, events.clone(), instrumentation, cache);

        let (job_tx, job_rx) = channel::unbounded::<Job>();
        let (ready_tx, ready_rx) = channel::bounded::<Result<(InstancePtr, Vec<String>), PluginFailure>>(1);
        let host_vtable = bridge.vtable();
        let config = config_json.to_owned();
        let create = move || {
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
            if status != Status::OK || ptr.is_null() {
                let failure = if status == Status::OK {
                    PluginFailure::Protocol { message: "create returned no instance".to_owned() }
                } else {
                    PluginFailure::from_status(status, err.as_slice())
                };
                let _ = ready_tx.send(Err(failure));
                return;
            }
            if ready_tx.send(Ok((InstancePtr(ptr), describe(vtable)))).is_err() {
                // Nobody waits any more (init overran its deadline): undo the creation.
                let mut err = AxBytes::empty();
                // SAFETY: the instance is live, unknown to anyone else, destroyed once.
                unsafe { (vtable.destroy)(ptr, &mut err) };
                return;
            }
            if dedicated {
                while let Ok(job) = recv_spinning(&job_rx) {
                    job();
                }
            }
        };
        let thread_error = |source| LoadError::Thread { path: library.to_owned(), source };
        let (worker, lease) = if dedicated {
            let worker = std::thread::Builder::new().name(format!("ax-plugin:{name}")).spawn(create);
            (Some(worker.map_err(thread_error)?), None)
        } else {
            (None, Some(init_thread.run(Box::new(create)).map_err(thread_error)?))
        };

        let ready = match init_timeout {
            Some(timeout) => ready_rx.recv_timeout(timeout).map_err(|e| e.is_timeout()),
            None => ready_rx.recv().map_err(|_| false),
        };
        // The init thread is given back once `create` returned, never while it
        // is stuck in it (that thread cleans up if init ever returns).
        let give_back = |lease: Option<Lease>| {
            if let Some(lease) = lease {
                init_thread.give_back(lease);
            }
        };
        let (ptr, methods) = match ready {
            Ok(Ok(created)) => {
                give_back(lease);
                created
            }
            Err(true) => {
                return Err(LoadError::InitTimeout {
                    path: library.to_owned(),
                    timeout: init_timeout.unwrap_or_default(),
                });
            }
            Ok(Err(failure)) => {
                give_back(lease);
                if let Some(worker) = worker {
                    let _ = worker.join();
                }
                return Err(LoadError::Init { path: library.to_owned(), failure });
            }
            Err(false) => {
                if let Some(worker) = worker {
                    let _ = worker.join();
                }
                let failure = PluginFailure::Protocol { message: "the worker thread died during init".to_owned() };
                return Err(LoadError::Init { path: library.to_owned(), failure });
            }
        };

        // SAFETY: a literal in the mapped image.
        let sdk_version = unsafe { vtable.sdk_version.get() }.to_owned();
        let core = Core {
            shared_name: Arc::from(name.as_str()),
            on_violation: Arc::new(move |violations: &[Violation]| bridge.request_abort(vtable, violations)),
            name,
            instance,
            bridge,
            vtable,
            events,
            watchdog,
            access: if vtable.flags & flags::CONCURRENT != 0 {
                Access::Concurrent(ShardedLock::new(Some(ptr)))
            } else {
                Access::Serial(RwLock::new(Some(ptr)))
            },
        };
        let plugin = Plugin {
            core: Arc::new(core),
            library: library.to_owned(),
            methods,
            sdk_version,
            budget: AtomicCell::new(Budget::UNLIMITED),
            dedicated,
            jobs: Mutex::new(dedicated.then_some(job_tx)),
            worker: Mutex::new(worker),
            next_call: CachePadded::new(AtomicU64::new(1)),
        };
        say_once_how_the_build_differs(&plugin.core.name, &plugin.sdk_version, opened.compiler_differs.as_deref());
        plugin.core.events.publish_with(|| Event::PluginLoaded {
            instance,
            name: plugin.core.name.clone(),
            library: plugin.library.clone(),
            sdk_version: plugin.sdk_version.clone(),
            probe_sites: plugin.probe_sites().len(),
            compiler_differs: opened.compiler_differs,
            duration: started.elapsed(),
        });
        Ok(plugin)
    }

    /// Whether every call measures the CPU time of its thread (`Usage::cpu`):
    /// [`Instrumentation::call_cpu`] of this instance.
    pub fn set_measure_cpu(&self, on: bool) {
        self.core.bridge.set_call_cpu(on);
    }

    /// Whether the plugin accepts parallel calls (its `CONCURRENT` flag).
    pub fn is_concurrent(&self) -> bool {
        matches!(self.core.access, Access::Concurrent(_))
    }

    /// Runs `job` on the instance — holding `access` shared when `shared`
    /// (and the plugin is concurrent), exclusively otherwise — on the calling
    /// thread, or on the dedicated thread for a plugin that has one.
    fn with_instance<R: Send + 'static>(
        &self,
        shared: bool,
        job: impl FnOnce(&Core, InstancePtr) -> R + Send + 'static,
    ) -> Result<R, CallError> {
        let stopped = || CallError::Stopped { plugin: self.core.name.clone() };
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(jobs) = jobs else {
            return self.core.locked(shared, |ptr| job(&self.core, ptr)).ok_or_else(stopped);
        };
        let (tx, rx) = channel::bounded(1);
        let core = self.core.clone();
        let boxed: Job = Box::new(move || {
            let _ = tx.send(core.locked(shared, |ptr| job(&core, ptr)));
        });
        jobs.send(boxed).map_err(|_| stopped())?;
        recv_spinning(&rx).ok().flatten().ok_or_else(stopped)
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
        let (result, usage) = self.call_bytes(method, input, budget);
        (result.map(|out| out.as_slice().to_vec()), usage)
    }

    /// A call, its output left in the plugin's buffer (decoded or copied by the caller).
    fn call_bytes(&self, method: &str, input: &[u8], budget: Option<&Budget>) -> (Result<AxBytes, CallError>, Usage) {
        let call = self.next_call.fetch_add(1, Ordering::Relaxed);
        let budget = match budget {
            Some(b) => self.budget().overridden_by(b),
            None => self.budget(),
        };
        let core = &self.core;
        let tracer = core.bridge.tracer();
        let trace = tracer
            .as_ref()
            .map(|t| t.begin_call(&CallStart { plugin: &core.name, method, instance: core.instance, call }));
        let outcome = if !self.dedicated {
            // The common case, borrowing method and input: no copy, no hand-off.
            core.locked(true, |ptr| core.invoke(ptr, call, method, input, budget, trace))
                .ok_or_else(|| CallError::Stopped { plugin: core.name.clone() })
        } else {
            let (method, input) = (method.to_owned(), input.to_vec());
            self.with_instance(true, move |core, ptr| core.invoke(ptr, call, &method, &input, budget, trace))
        };
        let (result, usage, trace) = match outcome {
            Ok(done) => done,
            Err(stopped) => return (Err(stopped), Usage::default()),
        };
        let result = result.map_err(|failure| match failure {
            Failure::Plugin(failure) => {
                CallError::Plugin { plugin: core.name.clone(), method: method.to_owned(), failure }
            }
            Failure::Budget(violations) => {
                CallError::BudgetExceeded { plugin: core.name.clone(), method: method.to_owned(), violations }
            }
        });
        if let (Some(tracer), Some(trace)) = (tracer, trace) {
            let end = CallEnd {
                plugin: &core.name,
                method,
                instance: core.instance,
                usage: &usage,
                error: result.as_ref().err(),
            };
            tracer.end_call(trace, &end);
        }
        self.report_call(call, method, usage, result.as_ref().err());
        (result, usage)
    }

    /// The limits every call gets unless it overrides them.
    pub fn budget(&self) -> Budget {
        self.budget.load()
    }

    /// Sets the limits every call gets unless it overrides them.
    pub fn set_budget(&self, budget: Budget) {
        self.budget.store(budget);
    }

    fn report_call(&self, call: u64, method: &str, usage: Usage, error: Option<&CallError>) {
        let core = &self.core;
        if let Some(CallError::Plugin { failure: PluginFailure::Panic { message, location }, .. }) = error {
            core.events.publish_with(|| Event::Panic {
                instance: core.instance,
                method: Some(method.to_owned()),
                message: message.clone(),
                location: location.clone(),
            });
        }
        core.events.publish_with(|| Event::CallFinished {
            instance: core.instance,
            call,
            method: method.to_owned(),
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
        // The input is encoded into a buffer this thread keeps, and the output
        // decoded straight from the plugin's buffer: no copy either way.
        thread_local! {
            static INPUT: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        let encode = |buffer: &mut Vec<u8>| {
            buffer.clear();
            serde_json::to_writer(&mut *buffer, input).expect("a serde_json::Value always serialises");
        };
        // A call made from inside a call on this thread (a probe handler
        // calling a plugin) gets a buffer of its own.
        let (output, usage) = INPUT.with(|cell| match cell.try_borrow_mut() {
            Ok(mut buffer) => {
                encode(&mut buffer);
                self.call_bytes(method, &buffer, budget)
            }
            Err(_) => {
                let mut buffer = Vec::new();
                encode(&mut buffer);
                self.call_bytes(method, &buffer, budget)
            }
        });
        let decoded = output.and_then(|output| {
            serde_json::from_slice(output.as_slice()).map_err(|e| CallError::InvalidOutput {
                plugin: self.core.name.clone(),
                method: method.to_owned(),
                message: e.to_string(),
            })
        });
        (decoded, usage)
    }

    /// Asks the plugin for its state (after every call in flight; calls wait meanwhile).
    pub fn save_state(&self) -> Result<SavedState, CallError> {
        let result = self.with_instance(false, |core, ptr| {
            let mut out = AxBytes::empty();
            let mut version = 0u32;
            // SAFETY: the instance is live and held exclusively.
            let status = unsafe { (core.vtable.save_state)(ptr.0, &mut version, &mut out) };
            if status == Status::OK {
                Ok(SavedState { schema_version: version, bytes: StateBytes(Held::Plugin(out)) })
            } else {
                Err(PluginFailure::from_status(status, out.as_slice()))
            }
        })?;
        result.map_err(|failure| self.failure("save_state", failure))
    }

    /// Hands the plugin a state saved earlier (possibly by another build).
    pub fn restore_state(&self, saved: &SavedState) -> Result<(), CallError> {
        fn restore(core: &Core, ptr: InstancePtr, saved: &SavedState) -> Result<(), PluginFailure> {
            let mut err = AxBytes::empty();
            // SAFETY: the instance is live and held exclusively.
            let status =
                unsafe { (core.vtable.restore_state)(ptr.0, saved.schema_version, AxStr::new(&saved.bytes), &mut err) };
            if status == Status::OK { Ok(()) } else { Err(PluginFailure::from_status(status, err.as_slice())) }
        }
        let result = if self.dedicated {
            let saved = saved.clone();
            self.with_instance(false, move |core, ptr| restore(core, ptr, &saved))?
        } else {
            // On this thread, the state borrowed: a hot reload's megabytes are not copied once more.
            let core = &self.core;
            core.locked(false, |ptr| restore(core, ptr, saved))
                .ok_or_else(|| CallError::Stopped { plugin: core.name.clone() })?
        };
        result.map_err(|failure| self.failure("restore_state", failure))
    }

    fn failure(&self, method: &str, failure: PluginFailure) -> CallError {
        let core = &self.core;
        let error = CallError::Plugin { plugin: core.name.clone(), method: method.to_owned(), failure };
        if let Some((message, location)) = error.panic() {
            core.events.publish_with(|| Event::Panic {
                instance: core.instance,
                method: Some(method.to_owned()),
                message: message.to_owned(),
                location: location.cloned(),
            });
        }
        error
    }

    /// Runs the plugin's `shutdown` (after every call in flight) and frees the
    /// instance; stops the dedicated thread, if any. Later calls fail with
    /// [`CallError::Stopped`]. Idempotent.
    pub fn shutdown(&self) -> Result<(), CallError> {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner()).take();
        let result = match jobs {
            None => self.core.destroy(),
            Some(jobs) => {
                let (tx, rx) = channel::bounded(1);
                let core = self.core.clone();
                let _ = jobs.send(Box::new(move || {
                    let _ = tx.send(core.destroy());
                }));
                drop(jobs);
                rx.recv().ok().flatten()
            }
        };
        if let Some(worker) = self.worker.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = worker.join();
        }
        let Some(result) = result else {
            return Ok(());
        };
        let core = &self.core;
        core.events.publish_with(|| Event::PluginStopped { instance: core.instance, name: core.name.clone() });
        result.map_err(|failure| self.failure("shutdown", failure))
    }

    /// The plugin's name (from its manifest, or its library's file name).
    pub fn name(&self) -> &str {
        &self.core.name
    }

    /// The library this instance was loaded from (not the private copy).
    pub fn library(&self) -> &Path {
        &self.library
    }

    /// Identity of this instance within its host.
    pub fn instance_id(&self) -> InstanceId {
        self.core.instance
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
        self.core.bridge.probe_sites()
    }

    /// The tracing callsites the plugin has registered so far (tracing registers
    /// a callsite the first time it is reached).
    pub fn callsites(&self) -> Vec<CallsiteInfo> {
        self.core.bridge.callsites()
    }

    /// Arms or disarms a probe site. Returns false if there is no such site.
    pub fn arm_probe(&self, index: usize, armed: bool) -> bool {
        self.core.bridge.arm_probe(index, armed)
    }

    /// Whether span enters are handed to the probe handler
    /// ([`ProbeHandler::on_span_enter`]); spans must be forwarded (see
    /// [`Plugin::set_instrumentation`]).
    pub fn watch_spans(&self, on: bool) {
        self.core.bridge.watch_spans(on);
    }

    /// Sets who receives hits of armed probe sites.
    pub fn set_probe_handler(&self, handler: Option<Arc<dyn ProbeHandler>>) {
        self.core.bridge.set_probe_handler(handler);
    }

    /// What the plugin forwards now.
    pub fn instrumentation(&self) -> Instrumentation {
        self.core.bridge.instrumentation()
    }

    /// Changes what the plugin forwards, and has it re-query every callsite.
    pub fn set_instrumentation(&self, instrumentation: Instrumentation) {
        self.core.bridge.set_instrumentation(instrumentation);
        // SAFETY: rebuild_interest takes no arguments and catches its own
        // panics; tracing allows it from any thread.
        unsafe { (self.core.vtable.rebuild_interest)() };
    }

    /// The counters of the plugin's query cache.
    pub fn cache_stats(&self) -> CacheStats {
        self.core.bridge.cache().stats()
    }

    /// What the profiler recorded since the plugin was loaded (or since
    /// [`Plugin::reset_profile`]) while profiling was on (see
    /// [`Instrumentation::profile`]): per method, per callsite, folded stacks.
    /// `startup` and `recommendations` are left for the caller, which knows how
    /// the plugin was loaded and against which thresholds.
    pub fn profile(&self) -> ax_profile::Profile {
        let plugin = ax_profile::PluginInfo {
            name: self.core.name.clone(),
            version: None,
            library: self.library.display().to_string(),
            manifest: None,
            sdk_version: self.sdk_version.clone(),
        };
        let tool = format!("ax-runtime {}", env!("CARGO_PKG_VERSION"));
        let mut profile = ax_profile::Profile::new(plugin, tool, String::new());
        let recorded = self.core.bridge.profiler.snapshot(
            &|id| self.core.bridge.callsite(id),
            self.core.bridge.probe_sites(),
            &self.core.name,
        );
        profile.methods = recorded.methods;
        profile.callsites = recorded.callsites;
        profile.stacks = recorded.stacks;
        profile.normalize();
        profile
    }

    /// Forgets what the profiler recorded so far.
    pub fn reset_profile(&self) {
        self.core.bridge.profiler.reset();
    }

    /// The calling thread's shadow stack of this plugin's spans, outermost first.
    /// Meaningful on the plugin's thread: inside a [`ProbeHandler`], for example.
    pub fn current_stack(&self) -> Vec<StackFrame> {
        self.core.bridge.current_stack()
    }

    /// How many spans of this plugin the calling thread is inside (cheap: no
    /// allocation; for stepping decisions at a probe).
    pub fn stack_depth(&self) -> usize {
        self.core.bridge.stack_depth()
    }

    /// The last probe site of this plugin reached on the calling thread.
    pub fn last_probe(&self) -> Option<&ProbeSiteInfo> {
        self.core.bridge.last_probe()
    }
}

impl Core {
    /// Runs `f` with the live instance, holding `access` shared (a call of a
    /// concurrent plugin) or exclusively; `None` once the instance is destroyed.
    fn locked<R>(&self, shared: bool, f: impl FnOnce(InstancePtr) -> R) -> Option<R> {
        match &self.access {
            Access::Concurrent(lock) if shared => (*lock.read().unwrap_or_else(PoisonError::into_inner)).map(f),
            Access::Concurrent(lock) => (*lock.write().unwrap_or_else(PoisonError::into_inner)).map(f),
            Access::Serial(lock) => (*lock.write()).map(f),
        }
    }

    /// One call, on the thread running it (which holds `access`): budget,
    /// profiling and tracing bookkeeping around the plugin's `call`.
    fn invoke(
        &self,
        ptr: InstancePtr,
        call: u64,
        method: &str,
        input: &[u8],
        budget: Budget,
        trace: Option<CallTrace>,
    ) -> Outcome {
        let (instance, events, bridge, vtable) = (self.instance, &self.events, self.bridge, self.vtable);
        events.publish_with(|| Event::CallStarted { instance, call, method: method.to_owned() });
        // SAFETY: alloc_counters returns null or this thread's static counters in the image.
        let counters: Option<&'static AllocCounters> = unsafe { (vtable.alloc_counters)().as_ref() };
        let outer_counters = crate::profile::set_thread_alloc_counters(counters);
        let profiling = bridge.profiler.is_on();
        let traced = trace.as_ref().zip(bridge.tracer());
        let sampled = traced.as_ref().is_some_and(|(trace, tracer)| tracer.enter_call(trace));
        let outer_traced = traced.is_some().then(|| crate::bridge::set_call_traced(sampled));
        let measure_cpu = profiling || bridge.call_cpu();
        let active =
            ActiveCall::begin(&self.shared_name, method, instance, budget, counters, &self.on_violation, measure_cpu);
        if budget.is_limited() {
            self.watchdog.watch(&active);
        }
        let me = bridge as *const Bridge as usize;
        if profiling {
            bridge.profiler.begin_call(me, method);
        }
        let mut out = AxBytes::empty();
        let outer = crate::bridge::set_call_bridge(me);
        // SAFETY: the instance is live, held as its flags ask; the arguments are
        // valid for the call.
        let status = unsafe { (vtable.call)(ptr.0, AxStr::from_str(method), AxStr::new(input), &mut out) };
        crate::bridge::set_call_bridge(outer);
        if let Some((trace, tracer)) = &traced {
            tracer.exit_call(trace);
        }
        if let Some(outer) = outer_traced {
            crate::bridge::set_call_traced(outer);
        }
        if budget.is_limited() {
            self.watchdog.unwatch(&active);
        }
        let (usage, violations) = active.finish();
        if profiling {
            let failed = status != Status::OK || !violations.is_empty();
            bridge.profiler.end_call(me, method, &usage, &violations, failed, out.cap as u64);
        }
        active.publish_violations(events);
        if active.aborting() {
            bridge.clear_abort(vtable);
        }
        ActiveCall::recycle(active);
        bridge.clear_stack();
        crate::profile::set_thread_alloc_counters(outer_counters);
        let result = if !violations.is_empty() {
            Err(Failure::Budget(violations))
        } else if status == Status::OK {
            Ok(out)
        } else {
            Err(Failure::Plugin(PluginFailure::from_status(status, out.as_slice())))
        };
        (result, usage, trace)
    }

    /// Runs the plugin's `shutdown` and frees the instance, once every call in
    /// flight has returned; `None` if it already was.
    fn destroy(&self) -> Option<Result<(), PluginFailure>> {
        let ptr = match &self.access {
            Access::Concurrent(lock) => lock.write().unwrap_or_else(PoisonError::into_inner).take()?,
            Access::Serial(lock) => lock.write().take()?,
        };
        let mut err = AxBytes::empty();
        // SAFETY: the instance is live; taken out of `access`, it is never used again.
        let status = unsafe { (self.vtable.destroy)(ptr.0, &mut err) };
        Some(if status == Status::OK { Ok(()) } else { Err(PluginFailure::from_status(status, err.as_slice())) })
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// The thread a host runs the `init` of its plugins on (those without a
/// dedicated thread), kept from one init to the next: starting a thread per
/// init took 0.2 ms of a reload on a machine idle since the last one, where
/// waking a waiting thread takes 0.04 ms. An init that overruns its deadline
/// keeps its thread; the next one starts another. The thread ends with the host.
#[derive(Default)]
pub(crate) struct InitThread(Mutex<Option<Lease>>);

/// The init thread, taken by one init until it is given back.
pub(crate) struct Lease(Sender<Job>);

impl std::fmt::Debug for InitThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kept = self.0.lock().unwrap_or_else(PoisonError::into_inner).is_some();
        f.debug_struct("InitThread").field("kept", &kept).finish()
    }
}

impl InitThread {
    /// Runs `job` on the kept thread, or on a new one if it is taken (an init
    /// under way or stuck) or gone; returns the thread to give back.
    fn run(&self, job: Job) -> std::io::Result<Lease> {
        let kept = self.0.lock().unwrap_or_else(PoisonError::into_inner).take();
        let job = match kept {
            Some(lease) => match lease.0.send(job) {
                Ok(()) => return Ok(lease),
                Err(channel::SendError(job)) => job,
            },
            None => job,
        };
        let (tx, rx) = channel::unbounded::<Job>();
        tx.send(job).map_err(|_| std::io::Error::other("init queue closed"))?;
        std::thread::Builder::new().name("ax-init".to_owned()).spawn(move || {
            while let Ok(job) = rx.recv() {
                job();
            }
        })?;
        Ok(Lease(tx))
    }

    /// Keeps `lease`'s thread for the next init.
    fn give_back(&self, lease: Lease) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(lease);
    }
}

/// How long a thread waiting for the other side of a call to a plugin with a
/// dedicated thread polls before it sleeps. Waking a sleeping thread costs tens
/// of microseconds on a small VM, far more than a plugin call; polling this
/// long makes back-to-back calls cost about a microsecond, and an idle
/// dedicated thread still sleeps after 50 µs. Plugins without a dedicated
/// thread (the default) never wait for another thread at all.
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a job on `init` that sends its thread's id, and returns the id and
    /// the lease.
    fn thread_of(init: &InitThread) -> (std::thread::ThreadId, Lease) {
        let (tx, rx) = channel::bounded(1);
        let lease = init.run(Box::new(move || tx.send(std::thread::current().id()).unwrap())).unwrap();
        (rx.recv().unwrap(), lease)
    }

    #[test]
    fn the_init_thread_is_kept_when_given_back_and_replaced_while_taken() {
        let init = InitThread::default();
        let (first, lease) = thread_of(&init);
        init.give_back(lease);
        let (again, lease) = thread_of(&init);
        assert_eq!(again, first, "a thread given back runs the next init");
        init.give_back(lease);

        // Taken by an init that does not return (as one stuck past its
        // deadline, whose lease is dropped): the next init gets another thread.
        let (release, stuck) = channel::bounded::<()>(0);
        drop(
            init.run(Box::new(move || {
                let _ = stuck.recv();
            }))
            .unwrap(),
        );
        let (other, lease) = thread_of(&init);
        assert_ne!(other, first);
        init.give_back(lease);
        assert_eq!(thread_of(&init).0, other);
        drop(release);
    }
}
