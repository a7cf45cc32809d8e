//! The host side of the tracing bridge: the [`HostVTable`] callbacks a plugin's
//! spans, events and probe hits arrive through.
//!
//! One [`Bridge`] exists per loaded plugin image and lives as long as the
//! process (the image is never unmapped and may keep calling, from threads it
//! spawned, after its instance is gone). It
//! - decides per callsite whether the plugin forwards it at all
//!   ([`Instrumentation`]; the plugin caches the answer until told to rebuild),
//! - keeps the live spans and, per thread, the *shadow stack* of entered spans,
//!   which is how ax knows the plugin's call stack without unwinding native frames
//!   (a span only the tracer takes, with no fields to keep, is not kept: its id
//!   says all the host needs, see [`Unslabbed`]),
//! - turns enabled events into [`Event::Log`],
//! - records, per thread, the last probe site reached, and hands armed probe
//!   hits to the instance's [`ProbeHandler`],
//! - while profiling is on, hands span enters and exits, events and probe hits
//!   to the image's [`Profiler`](crate::profile) (one relaxed load when off),
//! - while a [`Tracer`] is set, hands span creation, fields, closing and events
//!   to it (one atomic load when not).
//!
//! Every callback is shielded with `catch_unwind`: a bug here must not abort the
//! process through an `extern "C"` frame.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use ax_abi::{
    ABI_VERSION, AxBytes, AxStr, CallsiteMeta, FieldValue, HostVTable, ProbeSite, ProbeValue, Status, interest,
    value_kind,
};
use serde_json::Value;
use sharded_slab::Slab;
use tracing_subscriber::filter::Targets;

use crate::budget::Violation;
use crate::cache::QueryCache;
use crate::error::SourceLocation;
use crate::events::{Event, EventBus, InstanceId, Level, LogLine};
use crate::profile::{ProfileOptions, Profiler};
use crate::trace::{CallTracer, Fields, SpanStart, Tracer};

/// What the host asks a plugin's instrumentation to forward.
#[derive(Clone, Debug)]
pub struct Instrumentation {
    /// Forward spans: needed for the shadow stack (debugger frames) and profiles.
    pub spans: bool,
    /// Keep span field values, for frames' variables.
    pub span_fields: bool,
    /// Which events become [`Event::Log`] lines, by target and level (the
    /// `AX_LOG` syntax: `info,word_count=debug`).
    pub log_filter: Targets,
    /// Profile the plugin (`None`, the default: no clock is read, nothing is
    /// recorded). Profiling forwards every span and arms every probe site, to
    /// time the one and count the other; see [`crate::Plugin::profile`].
    pub profile: Option<ProfileOptions>,
    /// Trace calls and the plugin's spans and events (`None`, the default:
    /// nothing is traced, every span callback pays one atomic load). Setting
    /// one forwards every span with its fields. See [`crate::trace`].
    pub tracer: Option<Tracer>,
    /// Read the calling thread's CPU clock around every call, for
    /// [`crate::Usage::cpu`] (`false`, the default: `None` there). The clock
    /// is a system call, read twice per call: on this project's VM that was
    /// 1.2 µs, half of a short call's round trip (`benches/bridge.rs`,
    /// `breakdown`). ax's commands turn it on; a call with a CPU budget and
    /// profiling read it anyway; a tracer does not (a traced call's span then
    /// carries no CPU time).
    pub call_cpu: bool,
}

impl Default for Instrumentation {
    fn default() -> Self {
        Instrumentation {
            spans: false,
            span_fields: false,
            log_filter: Targets::new().with_default(tracing::Level::INFO),
            profile: None,
            tracer: None,
            call_cpu: false,
        }
    }
}

/// A callsite the plugin registered: a span or event macro invocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallsiteInfo {
    /// Opaque identity of the callsite within its plugin image.
    pub id: usize,
    pub is_span: bool,
    pub level: Level,
    pub name: String,
    pub target: String,
    pub module_path: String,
    pub file: String,
    /// 0 when unknown.
    pub line: u32,
    pub fields: Vec<String>,
}

/// A probe site of a loaded plugin, known from the moment the library is loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeSiteInfo {
    /// Position in the plugin's probe table; stable for one loaded image.
    pub index: usize,
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub module_path: String,
    /// Path of the enclosing function, e.g. `word_count::WordCount::count`.
    pub function: String,
    /// Binding names, in the order written.
    pub vars: Vec<String>,
}

/// A frame of the shadow stack: an entered span of the calling thread.
#[derive(Clone, Debug, PartialEq)]
pub struct StackFrame {
    pub span: u64,
    pub name: String,
    pub target: String,
    pub file: String,
    pub line: u32,
    /// Field values recorded on the span (empty unless `span_fields` is on).
    pub fields: Vec<(String, Value)>,
}

/// The value of one probe binding at a hit, borrowed from the plugin for the
/// duration of the hit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ProbeVar<'a> {
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
    Str(&'a str),
    /// JSON text of a `Serialize` value.
    Json(&'a str),
    /// `Debug` text of a value that is not `Serialize`, or `<type name>`.
    Debug(&'a str),
}

impl ProbeVar<'_> {
    /// As a JSON value (`Debug` text becomes a string).
    pub fn to_json(&self) -> Value {
        match *self {
            ProbeVar::I64(v) => Value::from(v),
            ProbeVar::U64(v) => Value::from(v),
            ProbeVar::F64(v) => Value::from(v),
            ProbeVar::Bool(v) => Value::from(v),
            ProbeVar::Str(s) | ProbeVar::Debug(s) => Value::from(s),
            ProbeVar::Json(s) => serde_json::from_str(s).unwrap_or_else(|_| Value::from(s)),
        }
    }
}

/// An armed probe site being hit, on the plugin's thread. The plugin waits
/// until the handler returns, so a handler may inspect and overwrite bindings.
///
/// **Invariant:** a value read from a hit never outlives what it borrows. A
/// [`ProbeVar`] borrows the hit (`value(&self)`), and only `set(&mut self)`
/// overwrites a binding, so no value read before a set can be used after it
/// (a `&mut String` binding's old text is freed by the set); after a set,
/// `value` answers with the text that was set (which the plugin accepted),
/// never the captured one.
#[derive(Debug)]
pub struct ProbeHit<'a> {
    pub instance: InstanceId,
    pub site: &'a ProbeSiteInfo,
    raw: &'a [ProbeValue],
    /// Bindings overwritten during this hit: (index, value as set). Empty
    /// (no allocation) unless a handler sets something.
    written: Vec<(usize, String)>,
}

impl<'a> ProbeHit<'a> {
    /// Number of bindings.
    pub fn len(&self) -> usize {
        self.raw.len().min(self.site.vars.len())
    }

    /// Whether the probe has no bindings.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Name of binding `i`.
    pub fn name(&self, i: usize) -> &'a str {
        &self.site.vars[i]
    }

    /// Index of the binding called `name`.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.site.vars.iter().take(self.len()).position(|v| v == name)
    }

    pub(crate) fn new(instance: InstanceId, site: &'a ProbeSiteInfo, raw: &'a [ProbeValue]) -> ProbeHit<'a> {
        ProbeHit { instance, site, raw, written: Vec::new() }
    }

    /// Value of binding `i` (as set, if a handler set it during this hit).
    pub fn value(&self, i: usize) -> ProbeVar<'_> {
        let v = &self.raw[i];
        if let Some((_, text)) = self.written.iter().rev().find(|(j, _)| *j == i) {
            return written_value(v.kind, text);
        }
        // SAFETY: the plugin keeps the text alive until the hit returns, which
        // outlives 'a (a ProbeHit never escapes the handler call).
        let text = || unsafe { v.text.as_str() }.unwrap_or("<invalid utf-8>");
        match v.kind {
            value_kind::I64 => ProbeVar::I64(v.num as i64),
            value_kind::U64 => ProbeVar::U64(v.num),
            value_kind::F64 => ProbeVar::F64(f64::from_bits(v.num)),
            value_kind::BOOL => ProbeVar::Bool(v.num != 0),
            value_kind::STR => ProbeVar::Str(text()),
            value_kind::JSON => ProbeVar::Json(text()),
            _ => ProbeVar::Debug(text()),
        }
    }

    /// All bindings, by name.
    pub fn values(&self) -> Vec<(&'a str, ProbeVar<'_>)> {
        (0..self.len()).map(|i| (self.name(i), self.value(i))).collect()
    }

    /// Whether binding `i` was written `&mut` with a type the host can write.
    pub fn is_writable(&self, i: usize) -> bool {
        self.raw[i].set.is_some()
    }

    /// Overwrites binding `i` with `json`, decoded by the plugin as the binding's type.
    pub fn set(&mut self, i: usize, json: &str) -> Result<(), String> {
        let v = &self.raw[i];
        let Some(set) = v.set else {
            return Err(format!("`{}` is not a writable (`&mut`) binding", self.name(i)));
        };
        let mut err = AxBytes::empty();
        // SAFETY: target and set come from the plugin for this hit, which is in progress.
        let status = unsafe { set(v.target, AxStr::from_str(json), &mut err) };
        if status == Status::OK {
            // The captured text may be freed now (a `&mut String`): answer with what was set.
            let text = match v.kind {
                value_kind::STR => serde_json::from_str::<String>(json).unwrap_or_else(|_| json.to_owned()),
                _ => json.to_owned(),
            };
            self.written.push((i, text));
            Ok(())
        } else {
            Err(format!("cannot set `{}`: {}", self.name(i), String::from_utf8_lossy(err.as_slice())))
        }
    }
}

/// A binding's value after a set, from the text that was set.
fn written_value(kind: u8, text: &str) -> ProbeVar<'_> {
    let number = || serde_json::from_str::<Value>(text).ok();
    match kind {
        value_kind::I64 => number().and_then(|n| n.as_i64()).map_or(ProbeVar::Json(text), ProbeVar::I64),
        value_kind::U64 => number().and_then(|n| n.as_u64()).map_or(ProbeVar::Json(text), ProbeVar::U64),
        value_kind::F64 => number().and_then(|n| n.as_f64()).map_or(ProbeVar::Json(text), ProbeVar::F64),
        value_kind::BOOL => number().and_then(|n| n.as_bool()).map_or(ProbeVar::Json(text), ProbeVar::Bool),
        value_kind::STR => ProbeVar::Str(text),
        _ => ProbeVar::Json(text),
    }
}

/// Receives the hits of armed probe sites of one plugin instance, on the
/// plugin's thread. A handler that blocks (a debugger stopped at a breakpoint)
/// wraps the blocking in [`crate::paused`], so that the time counts against no
/// budget.
pub trait ProbeHandler: Send + Sync {
    fn on_probe(&self, hit: &mut ProbeHit<'_>);

    /// A span of the plugin was entered (only while [`crate::Plugin::watch_spans`]
    /// is on): `name` is its callsite's name (the function, for
    /// `#[instrument]`). Runs on the plugin's thread, after the span is on the
    /// shadow stack.
    fn on_span_enter(&self, name: &str) {
        let _ = name;
    }

    /// The current call is being unwound because a budget was exceeded
    /// (`reason` says which); runs on the plugin's thread before it unwinds.
    fn on_abort(&self, reason: &str) {
        let _ = reason;
    }

    /// The current call panicked; runs on the plugin's thread, in the panic
    /// hook, before it unwinds.
    fn on_panic(&self, panic: &PanicSite<'_>) {
        let _ = panic;
    }

    /// The sandbox denied a system call of the current call; runs on the
    /// plugin's thread, inside the sandbox's `SIGSYS` handler, before the
    /// system call returns `EPERM` (see [`sandbox_denied`]).
    fn on_sandbox_denial(&self, denial: &SandboxDenial<'_>) {
        let _ = denial;
    }
}

/// Where and why a plugin call panicked.
#[derive(Clone, Copy, Debug)]
pub struct PanicSite<'a> {
    pub message: &'a str,
    /// As the compiler named it; empty when unknown.
    pub file: &'a str,
    /// 0 when unknown.
    pub line: u32,
    pub column: u32,
}

struct SpanData {
    callsite: usize,
    refs: AtomicUsize,
    fields: Mutex<Vec<(&'static str, Value)>>,
    /// Whether the tracer was told of the span (it then hears of its records and close).
    traced: bool,
}

struct ProbeTable {
    base: usize,
    sites: &'static [ProbeSite],
    infos: Vec<ProbeSiteInfo>,
}

/// Per-image state behind the host vtable. See the module docs.
pub(crate) struct Bridge {
    pub(crate) instance: InstanceId,
    events: Arc<EventBus>,
    instrumentation: RwLock<Instrumentation>,
    span_fields: AtomicBool,
    /// [`Instrumentation::spans`].
    every_span: AtomicBool,
    /// [`Instrumentation::call_cpu`], read at every call.
    call_cpu: AtomicBool,
    /// Each callsite's info, made once and never freed (like the bridge and
    /// the image), so that hooks hand tracers a `&'static` without counting.
    callsites: RwLock<Callsites>,
    spans: Slab<SpanData, SpanTable>,
    /// Whether any [`Unslabbed`] span of this image was ever cloned: until
    /// then, each has one handle, and its close is its last.
    unslabbed_cloned: AtomicBool,
    /// The clones of [`Unslabbed`] spans not yet closed, by span id.
    unslabbed_clones: Mutex<HashMap<u64, usize>>,
    probes: OnceLock<ProbeTable>,
    probe_handler: RwLock<Option<Arc<dyn ProbeHandler>>>,
    vtable: OnceLock<HostVTable>,
    /// The abort word the SDK reads (see `HostVTable::abort`): how many calls
    /// of this image are being unwound (with parallel calls, several may be);
    /// which ones, the SDK asks `abort_call` on its thread.
    abort: AtomicU32,
    /// Which probe sites the host wants armed, apart from an abort or profiling
    /// (which arm all).
    armed_wanted: Mutex<Vec<bool>>,
    /// The plugin's query cache (`ax_plugin::cache`).
    cache: Arc<QueryCache>,
    /// Whether span enters go to the probe handler (function breakpoints).
    watch_spans: AtomicBool,
    pub(crate) profiler: Profiler,
    /// The tracer's `max_level`.
    tracer_level: AtomicU8,
    /// The tracer (null: none), read by every call and hook. One that is
    /// replaced is never freed, as a call or hook on another thread may still
    /// be using it; the bridge itself is never freed either, and tracers are
    /// replaced only when the instrumentation is.
    tracer: AtomicPtr<Arc<dyn CallTracer>>,
}

/// The span table's layout: the default's, with the top two bits of a key
/// left out, so that a slab span's id (its key + 1) never has bit 63 set,
/// which marks [`Unslabbed`] ids.
struct SpanTable;

impl sharded_slab::Config for SpanTable {
    const RESERVED_BITS: usize = 2;
}

/// The callsites an image registered, by id and in order of registration
/// (the order gives the index an [`Unslabbed`] id carries).
#[derive(Default)]
struct Callsites {
    by_id: HashMap<usize, (&'static CallsiteInfo, u32)>,
    ids: Vec<usize>,
}

/// The id of a span only the tracer takes, inside a call it traces, while no
/// span fields are kept (no debugger): such a span has no entry in the span
/// table, whose insert, look-up and removal cost more than the rest of the
/// bridge's work for it. Its id says what the host needs later: that it is
/// unslabbed and traced (bit 63), its callsite's index (bits 40–62, for an
/// enter that is not the thread's last new span), and a number unique in the
/// process (bits 0–39, handed out to threads in blocks: unique until 2⁴⁰
/// spans were made). Its handles are counted only once one is cloned
/// ([`Bridge::unslabbed_clones`]).
struct Unslabbed;

impl Unslabbed {
    const BIT: u64 = 1 << 63;
    /// A span the host could not keep (its span table full): bit 63 is set,
    /// but no unslabbed id has every site bit set, so none is this.
    const UNTRACKED: u64 = u64::MAX;
    const SITE_SHIFT: u32 = 40;
    const SITES: u32 = 1 << 23;
    const BLOCK: u64 = 1 << 16;

    fn id(site: u32) -> u64 {
        static NEXT_BLOCK: AtomicU64 = AtomicU64::new(0);
        thread_local! {
            /// (next number, end of this thread's block).
            static NUMBERS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
        }
        let number = NUMBERS.with(|n| {
            let (mut next, mut end) = n.get();
            if next == end {
                next = NEXT_BLOCK.fetch_add(Unslabbed::BLOCK, Ordering::Relaxed);
                end = next + Unslabbed::BLOCK;
            }
            n.set((next + 1, end));
            next
        });
        Unslabbed::BIT | u64::from(site) << Unslabbed::SITE_SHIFT | (number & ((1 << Unslabbed::SITE_SHIFT) - 1))
    }

    fn is(id: u64) -> bool {
        id & Unslabbed::BIT != 0 && id != Unslabbed::UNTRACKED
    }

    fn site(id: u64) -> usize {
        ((id & !Unslabbed::BIT) >> Unslabbed::SITE_SHIFT) as usize
    }
}

#[derive(Clone, Copy)]
struct Frame {
    bridge: usize,
    span: u64,
    callsite: usize,
}

/// A probe site reached on some thread: (bridge address, site index).
type LastProbe = Option<(usize, usize)>;

thread_local! {
    static STACK: RefCell<Vec<Frame>> = const { RefCell::new(Vec::new()) };
    static LAST_PROBE: Cell<LastProbe> = const { Cell::new(None) };
    /// False while the call running on this thread was sampled out by the tracer.
    static CALL_TRACED: Cell<bool> = const { Cell::new(true) };
    /// The address of the bridge whose plugin call runs on this thread (0: none).
    static CALL_BRIDGE: Cell<usize> = const { Cell::new(0) };
    /// (bridge address, span id, callsite) of the span this thread made last.
    /// Span ids carry the span table's generation, so a later span of the same
    /// slot has another id (until the generation wraps).
    static LAST_NEW: Cell<(usize, u64, usize)> = const { Cell::new((0, 0, 0)) };
    /// (bridge address, callsite, its info) of spans only the tracer wants,
    /// met on this thread: [`cb_enabled`] turns them down in a sampled-out call
    /// without a lookup, and [`cb_span_new`] finds their info without taking
    /// the callsite table's lock. Bridges are never freed, so an address names
    /// one bridge.
    static SAMPLED_SPANS: RefCell<Vec<(usize, usize, Site)>> = const { RefCell::new(Vec::new()) };
}

/// A callsite's info and its index in [`Callsites::ids`].
type Site = (&'static CallsiteInfo, u32);

/// How many times [`Bridge::site_soon`] yields before it gives up on a
/// callsite (one a plugin never registered).
const REGISTERING_WAIT: usize = 1000;

/// How many span callsites [`SAMPLED_SPANS`] keeps per thread (beyond, the
/// others are looked up each time: correct, slower).
const SAMPLED_SPANS_KEPT: usize = 64;

/// Marks the bridge (its address) whose call runs on this thread from now
/// on; returns the one before, to put back when the call ends.
pub(crate) fn set_call_bridge(bridge: usize) -> usize {
    CALL_BRIDGE.with(|c| c.replace(bridge))
}

/// A system call the plugin's sandbox denied.
#[derive(Clone, Copy, Debug)]
pub struct SandboxDenial<'a> {
    /// The capability it needed, one of [`crate::SANDBOX_CAPABILITIES`].
    pub capability: &'a str,
    /// The system call's name (`socket`, `execve`).
    pub system_call: &'a str,
}

/// Tells the probe handler of the plugin whose call runs on this thread that
/// the sandbox denied one of its system calls ([`ProbeHandler::on_sandbox_denial`]:
/// a debugger stops there). Called by the sandbox's `SIGSYS` handler, on the
/// thread that made the call, inside the signal: it does nothing on a thread
/// outside a plugin call or without a handler. The handler's work (a debugger's
/// stop: allocation, locks, waiting) is sound there because the interrupted
/// code is the plugin's own system call, and none of the calls a sandbox denies
/// is made by the allocator or by ax while it holds a lock.
pub fn sandbox_denied(denial: &SandboxDenial<'_>) {
    let Ok(address) = CALL_BRIDGE.try_with(Cell::get) else { return };
    if address == 0 {
        return;
    }
    shield((), || {
        // SAFETY: bridges are never freed (see `Bridge::new`); the address was
        // set by `Core::invoke` for the call running on this thread.
        let bridge = unsafe { &*(address as *const Bridge) };
        if let Some(handler) = bridge.handler() {
            handler.on_sandbox_denial(denial);
        }
    });
}

/// Marks whether the call running on this thread is traced (`false`: the
/// tracer sampled it out, so its spans and events are not handed over);
/// returns the mark before, to put back when the call ends (a call may make
/// another on its thread).
pub(crate) fn set_call_traced(traced: bool) -> bool {
    CALL_TRACED.with(|c| c.replace(traced))
}

/// Where the calling thread is in plugin code, for the crash reporter: `in
/// `span` (file:line)` for the innermost span and `; last probe file:line`,
/// through `write`. Meant for a signal handler on the crashing thread: it
/// allocates nothing, takes no lock that could be held (only `try_`), and reads
/// data written before the plugin code that crashed was entered. Writes
/// nothing where it knows nothing.
pub(crate) fn crash_context(write: &mut dyn FnMut(&[u8])) {
    fn number(write: &mut dyn FnMut(&[u8]), mut n: u32) {
        let mut digits = [0u8; 10];
        let mut at = digits.len();
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        write(&digits[at..]);
    }
    let _ = STACK.try_with(|stack| {
        let Ok(stack) = stack.try_borrow() else { return };
        let Some(frame) = stack.last() else { return };
        // SAFETY: bridges are never freed (see `Bridge::new`); the frame was
        // pushed by this bridge's span_enter.
        let bridge = unsafe { &*(frame.bridge as *const Bridge) };
        let Ok(callsites) = bridge.callsites.try_read() else { return };
        if let Some((info, _)) = callsites.by_id.get(&frame.callsite) {
            write(b" in `");
            write(info.name.as_bytes());
            write(b"` (");
            write(info.file.as_bytes());
            write(b":");
            number(write, info.line);
            write(b")");
        }
    });
    if let Ok(Some((bridge, index))) = LAST_PROBE.try_with(Cell::get) {
        // SAFETY: as above; the probe table is set once, at load.
        let bridge = unsafe { &*(bridge as *const Bridge) };
        if let Some(site) = bridge.probes.get().and_then(|t| t.infos.get(index)) {
            write(b"; last probe reached ");
            write(site.file.as_bytes());
            write(b":");
            number(write, site.line);
        }
    }
}

/// Runs a callback body, turning a panic into `default` (a panic must not cross
/// an `extern "C"` frame).
fn shield<R>(default: R, body: impl FnOnce() -> R) -> R {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(default)
}

/// # Safety
/// `ctx` must be the `ctx` of a vtable made by [`Bridge::new`].
unsafe fn bridge<'a>(ctx: *const c_void) -> &'a Bridge {
    // SAFETY: bridges are leaked, so the pointer is valid for the process.
    unsafe { &*ctx.cast::<Bridge>() }
}

/// # Safety
/// `ptr`/`len` must describe a live array, or `len` must be 0.
unsafe fn slice<'a, T>(ptr: *const T, len: usize) -> &'a [T] {
    if len == 0 || ptr.is_null() {
        &[]
    } else {
        // SAFETY: forwarded to the caller.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }
}

fn field_json(f: &FieldValue) -> Value {
    // SAFETY: field text is valid for the duration of the callback.
    let text = || unsafe { f.text.as_str() }.unwrap_or("<invalid utf-8>").to_owned();
    match f.kind {
        value_kind::I64 => Value::from(f.num as i64),
        value_kind::U64 => Value::from(f.num),
        value_kind::F64 => Value::from(f64::from_bits(f.num)),
        value_kind::BOOL => Value::from(f.num != 0),
        _ => Value::from(text()),
    }
}

impl Bridge {
    /// A bridge for a new image, leaked: it must outlive every call the image makes.
    pub(crate) fn new(
        instance: InstanceId,
        events: Arc<EventBus>,
        instrumentation: Instrumentation,
        cache: Arc<QueryCache>,
    ) -> &'static Bridge {
        let tracer = instrumentation.tracer.as_ref().map(|t| t.0.clone());
        let bridge: &'static Bridge = Box::leak(Box::new(Bridge {
            instance,
            events,
            tracer_level: AtomicU8::new(tracer.as_ref().map_or(Level::Trace, |t| t.max_level()) as u8),
            tracer: AtomicPtr::new(tracer.map_or(std::ptr::null_mut(), |tracer| Box::into_raw(Box::new(tracer)))),
            span_fields: AtomicBool::new(instrumentation.span_fields),
            every_span: AtomicBool::new(instrumentation.spans),
            call_cpu: AtomicBool::new(instrumentation.call_cpu),
            profiler: Profiler::new(instrumentation.profile),
            instrumentation: RwLock::new(instrumentation),
            callsites: RwLock::new(Callsites::default()),
            spans: Slab::new_with_config::<SpanTable>(),
            unslabbed_cloned: AtomicBool::new(false),
            unslabbed_clones: Mutex::new(HashMap::new()),
            probes: OnceLock::new(),
            probe_handler: RwLock::new(None),
            vtable: OnceLock::new(),
            abort: AtomicU32::new(0),
            armed_wanted: Mutex::new(Vec::new()),
            cache,
            watch_spans: AtomicBool::new(false),
        }));
        let _ = bridge.vtable.set(HostVTable {
            abi_version: ABI_VERSION,
            struct_size: size_of::<HostVTable>() as u32,
            ctx: (bridge as *const Bridge).cast::<c_void>(),
            register_callsite: cb_register_callsite,
            enabled: cb_enabled,
            span_new: cb_span_new,
            span_record: cb_span_record,
            span_enter: cb_span_enter,
            span_exit: cb_span_exit,
            span_clone: cb_span_clone,
            span_close: cb_span_close,
            current_span: cb_current_span,
            event: cb_event,
            abort: &bridge.abort,
            cache_get: cb_cache_get,
            cache_put: cb_cache_put,
            probe_hit: cb_probe_hit,
            panicked: cb_panicked,
            abort_call: cb_abort_call,
        });
        bridge
    }

    pub(crate) fn vtable(&'static self) -> &'static HostVTable {
        self.vtable.get().expect("set in Bridge::new")
    }

    /// Reads the plugin's probe table. Called once, right after load.
    ///
    /// # Safety
    /// `sites` must be the plugin's `PROBE_SITES` array, in a mapped image.
    pub(crate) unsafe fn set_probe_sites(&self, sites: &'static [ProbeSite]) {
        let infos = sites
            .iter()
            .enumerate()
            .map(|(index, site)| {
                // SAFETY: strings of a probe site are 'static in the mapped image;
                // `function` is a plain function returning one.
                unsafe {
                    ProbeSiteInfo {
                        index,
                        file: site.file.get().to_owned(),
                        line: site.line,
                        column: site.column,
                        module_path: site.module_path.get().to_owned(),
                        function: (site.function)().get().to_owned(),
                        vars: site.var_names().iter().map(|n| n.get().to_owned()).collect(),
                    }
                }
            })
            .collect();
        self.profiler.set_probe_count(sites.len());
        let _ = self.probes.set(ProbeTable { base: sites.as_ptr() as usize, sites, infos });
        self.rearm_probes();
    }

    /// Arms every probe site the host wants, or all of them during an abort or
    /// while profiling.
    fn rearm_probes(&self) {
        let all = self.abort.load(Ordering::Relaxed) != 0 || self.profiler.is_on();
        let wanted = self.armed_wanted.lock().unwrap_or_else(|e| e.into_inner());
        for (i, site) in self.probes.get().map_or(&[][..], |t| t.sites).iter().enumerate() {
            site.armed.store(u32::from(all || wanted.get(i).copied().unwrap_or(false)), Ordering::Relaxed);
        }
    }

    pub(crate) fn probe_sites(&self) -> &[ProbeSiteInfo] {
        self.probes.get().map_or(&[], |t| &t.infos)
    }

    /// Arms or disarms probe site `index`; returns false if there is no such site.
    pub(crate) fn arm_probe(&self, index: usize, armed: bool) -> bool {
        let Some(site) = self.probes.get().and_then(|t| t.sites.get(index)) else { return false };
        let mut wanted = self.armed_wanted.lock().unwrap_or_else(|e| e.into_inner());
        if wanted.len() <= index {
            wanted.resize(index + 1, false);
        }
        wanted[index] = armed;
        if self.abort.load(Ordering::Relaxed) == 0 && !self.profiler.is_on() {
            site.armed.store(u32::from(armed), Ordering::Relaxed);
        }
        true
    }

    /// Asks the plugin to unwind a call (the one whose budget reported
    /// `violations`, which the SDK finds through `abort_call`): counts it in the
    /// abort word the SDK checks after span, event and probe callbacks and, for
    /// the first, arms every probe site and has every span forwarded, so that
    /// the next probe or span the call reaches stops it. Code that reaches none
    /// cannot be stopped in-process.
    pub(crate) fn request_abort(&self, plugin_vtable: &ax_abi::PluginVTable, violations: &[Violation]) {
        let _ = violations;
        if self.abort.fetch_add(1, Ordering::AcqRel) != 0 {
            return;
        }
        for site in self.probes.get().map_or(&[][..], |t| t.sites) {
            site.armed.store(1, Ordering::Relaxed);
        }
        // SAFETY: rebuild_interest takes no arguments and catches its own panics;
        // tracing allows it from any thread.
        unsafe { (plugin_vtable.rebuild_interest)() };
    }

    /// Ends one call's abort (once per [`Bridge::request_abort`]); after the
    /// last, restores the probe sites and interest the host wants.
    pub(crate) fn clear_abort(&self, plugin_vtable: &ax_abi::PluginVTable) {
        if self.abort.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        self.rearm_probes();
        // SAFETY: as in request_abort.
        unsafe { (plugin_vtable.rebuild_interest)() };
    }

    /// Drops the calling thread's frames of this image (after a call: spans an
    /// aborted call never exited must not haunt the next one).
    pub(crate) fn clear_stack(&self) {
        let me = self as *const Bridge as usize;
        let _ = STACK.try_with(|s| s.borrow_mut().retain(|f| f.bridge != me));
        Profiler::clear_thread(me);
    }

    /// On the plugin's thread, in a callback after which the SDK will unwind an
    /// aborted call: tells the probe handler, once per aborted call and on its
    /// own thread, while the call's frames are still live (a debugger breaks
    /// on budget violations here).
    fn notice_abort(&self) {
        if self.abort.load(Ordering::Relaxed) == 0 {
            return;
        }
        let Some(reason) = crate::budget::take_abort_notice() else { return };
        if let Some(handler) = self.handler() {
            handler.on_abort(&reason);
        }
    }

    fn handler(&self) -> Option<Arc<dyn ProbeHandler>> {
        self.probe_handler.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn watch_spans(&self, on: bool) {
        self.watch_spans.store(on, Ordering::Relaxed);
    }

    pub(crate) fn set_probe_handler(&self, handler: Option<Arc<dyn ProbeHandler>>) {
        *self.probe_handler.write().unwrap_or_else(|e| e.into_inner()) = handler;
    }

    pub(crate) fn instrumentation(&self) -> Instrumentation {
        self.instrumentation.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn set_instrumentation(&self, instrumentation: Instrumentation) {
        self.span_fields.store(instrumentation.span_fields, Ordering::Relaxed);
        self.every_span.store(instrumentation.spans, Ordering::Relaxed);
        self.call_cpu.store(instrumentation.call_cpu, Ordering::Relaxed);
        let tracer = instrumentation.tracer.as_ref().map(|t| t.0.clone());
        self.tracer_level.store(tracer.as_ref().map_or(Level::Trace, |t| t.max_level()) as u8, Ordering::Relaxed);
        let tracer = tracer.map_or(std::ptr::null_mut(), |tracer| Box::into_raw(Box::new(tracer)));
        // The one before is left as it is: see `Bridge::tracer`.
        self.tracer.store(tracer, Ordering::Release);
        self.profiler.configure(instrumentation.profile);
        *self.instrumentation.write().unwrap_or_else(|e| e.into_inner()) = instrumentation;
        self.rearm_probes();
    }

    /// Sets [`Instrumentation::call_cpu`] alone.
    pub(crate) fn set_call_cpu(&self, on: bool) {
        let mut instrumentation = self.instrumentation.write().unwrap_or_else(|e| e.into_inner());
        instrumentation.call_cpu = on;
        self.call_cpu.store(on, Ordering::Relaxed);
    }

    /// Whether calls read the CPU clock for [`crate::Usage::cpu`].
    pub(crate) fn call_cpu(&self) -> bool {
        self.call_cpu.load(Ordering::Relaxed)
    }

    /// The tracer, if one is set: one load, no lock, nothing counted (the
    /// only thing read when tracing is off).
    pub(crate) fn tracer(&self) -> Option<&'static dyn CallTracer> {
        // SAFETY: null or a tracer that is never freed (see `Bridge::tracer`).
        unsafe { self.tracer.load(Ordering::Acquire).as_ref() }.map(|tracer| &**tracer)
    }

    /// The tracer, if one wants events now (not inside a call it sampled out).
    /// An event reaches the host only when the log filter (`AX_LOG`) let it
    /// through, and the tracer keeps it only inside a span it exports: the
    /// tracer's level caps spans, not events.
    fn tracer_for_event(&self) -> Option<&'static dyn CallTracer> {
        self.tracer().filter(|_| CALL_TRACED.with(Cell::get))
    }

    /// The span the calling thread is in, in this image.
    fn current_span(&self) -> Option<u64> {
        let me = self as *const Bridge as usize;
        STACK.try_with(|s| s.borrow().iter().rev().find(|f| f.bridge == me).map(|f| f.span)).ok().flatten()
    }

    pub(crate) fn cache(&self) -> &QueryCache {
        &self.cache
    }

    pub(crate) fn callsites(&self) -> Vec<CallsiteInfo> {
        let map = self.callsites.read().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<CallsiteInfo> = map.by_id.values().map(|(c, _)| (*c).clone()).collect();
        all.sort_by(|a, b| (&a.file, a.line, &a.name).cmp(&(&b.file, b.line, &b.name)));
        all
    }

    pub(crate) fn callsite(&self, id: usize) -> Option<&'static CallsiteInfo> {
        self.site(id).map(|(info, _)| info)
    }

    fn site(&self, id: usize) -> Option<Site> {
        self.callsites.read().unwrap_or_else(|e| e.into_inner()).by_id.get(&id).copied()
    }

    /// Callsite `id`, waiting a little if it is not registered yet: `tracing`
    /// lets a thread make a span or event while another thread is still
    /// registering its callsite (it asks `enabled` meanwhile), and without
    /// the wait that span was never traced, that event never logged.
    fn site_soon(&self, id: usize) -> Option<Site> {
        for _ in 0..REGISTERING_WAIT {
            if let Some(site) = self.site(id) {
                return Some(site);
            }
            std::thread::yield_now();
        }
        self.site(id)
    }

    /// The entry of span `id` in the span table (none for an [`Unslabbed`] id).
    fn span(&self, id: u64) -> Option<sharded_slab::Entry<'_, SpanData, SpanTable>> {
        if id & Unslabbed::BIT != 0 { None } else { self.spans.get(span_key(id)) }
    }

    /// Closes a handle of [`Unslabbed`] span `id`: whether it was the last.
    /// A handle is closed by whoever holds it, so if this span was ever cloned,
    /// the flag was set before this handle came here (see `cb_span_clone`).
    fn unslabbed_close(&self, id: u64) -> bool {
        if !self.unslabbed_cloned.load(Ordering::Acquire) {
            return true;
        }
        let mut clones = self.unslabbed_clones.lock().unwrap_or_else(|e| e.into_inner());
        match clones.get_mut(&id) {
            Some(1) => {
                clones.remove(&id);
                false
            }
            Some(n) => {
                *n -= 1;
                false
            }
            None => true,
        }
    }

    /// The callsite of span `id`, 0 if unknown.
    fn span_callsite(&self, id: u64) -> usize {
        if Unslabbed::is(id) {
            let callsites = self.callsites.read().unwrap_or_else(|e| e.into_inner());
            callsites.ids.get(Unslabbed::site(id)).copied().unwrap_or(0)
        } else {
            self.span(id).map_or(0, |d| d.callsite)
        }
    }

    /// Whether something other than the tracer wants every span (see
    /// `interest`), without the instrumentation's lock.
    fn spans_always(&self) -> bool {
        self.every_span.load(Ordering::Relaxed) || self.profiler.is_on() || self.abort.load(Ordering::Relaxed) != 0
    }

    /// A span callsite only the tracer wants is `SOMETIMES`: the plugin asks
    /// [`cb_enabled`] at each span, which says no inside a call the tracer
    /// sampled out (then the span costs that question and nothing else).
    fn interest(&self, info: &CallsiteInfo) -> u32 {
        let instr = self.instrumentation.read().unwrap_or_else(|e| e.into_inner());
        if !info.is_span {
            let wanted = instr.log_filter.would_enable(&info.target, &info.level.to_tracing());
            return if wanted { interest::ALWAYS } else { interest::NEVER };
        }
        if self.spans_always() {
            interest::ALWAYS
        } else if instr.tracer.as_ref().is_some_and(|t| info.level <= t.0.max_level()) {
            interest::SOMETIMES
        } else {
            interest::NEVER
        }
    }

    /// The calling thread's shadow stack for this image, outermost first.
    pub(crate) fn current_stack(&self) -> Vec<StackFrame> {
        let me = self as *const Bridge as usize;
        let frames: Vec<Frame> = STACK.with(|s| s.borrow().iter().copied().filter(|f| f.bridge == me).collect());
        frames
            .into_iter()
            .map(|f| {
                let cs = self.callsite(f.callsite);
                let fields = self
                    .span(f.span)
                    .map(|d| {
                        let fields = d.fields.lock().unwrap_or_else(|e| e.into_inner());
                        fields.iter().map(|(n, v)| ((*n).to_owned(), v.clone())).collect()
                    })
                    .unwrap_or_default();
                StackFrame {
                    span: f.span,
                    name: cs.as_ref().map_or_else(|| "?".to_owned(), |c| c.name.clone()),
                    target: cs.as_ref().map_or_else(String::new, |c| c.target.clone()),
                    file: cs.as_ref().map_or_else(String::new, |c| c.file.clone()),
                    line: cs.as_ref().map_or(0, |c| c.line),
                    fields,
                }
            })
            .collect()
    }

    /// How many spans of this image the calling thread has entered.
    pub(crate) fn stack_depth(&self) -> usize {
        let me = self as *const Bridge as usize;
        STACK.try_with(|s| s.borrow().iter().filter(|f| f.bridge == me).count()).unwrap_or(0)
    }

    /// The last probe site of this image reached on the calling thread.
    pub(crate) fn last_probe(&self) -> Option<&ProbeSiteInfo> {
        let me = self as *const Bridge as usize;
        match LAST_PROBE.with(Cell::get) {
            Some((bridge, index)) if bridge == me => self.probe_sites().get(index),
            _ => None,
        }
    }
}

fn span_key(id: u64) -> usize {
    (id as usize).wrapping_sub(1)
}

unsafe extern "C" fn cb_register_callsite(ctx: *const c_void, meta: *const CallsiteMeta) -> u32 {
    shield(interest::NEVER, || {
        // SAFETY: ctx from our vtable; meta valid for the call, its strings 'static in the image.
        let (bridge, meta) = unsafe { (bridge(ctx), &*meta) };
        // SAFETY: as above.
        let names = unsafe { slice(meta.field_names, meta.field_count) };
        // SAFETY: as above.
        let info = unsafe {
            CallsiteInfo {
                id: meta.id,
                is_span: meta.kind == 0,
                level: Level::from_abi(meta.level),
                name: meta.name.get().to_owned(),
                target: meta.target.get().to_owned(),
                module_path: meta.module_path.get().to_owned(),
                file: meta.file.get().to_owned(),
                line: meta.line,
                fields: names.iter().map(|n| n.get().to_owned()).collect(),
            }
        };
        let interest = bridge.interest(&info);
        // Registered again after a rebuild of the plugin's interest cache: the
        // id is the address of the callsite's static metadata in the image,
        // so its info never changes; the one made first is kept.
        let mut callsites = bridge.callsites.write().unwrap_or_else(|e| e.into_inner());
        if !callsites.by_id.contains_key(&meta.id) {
            let index = callsites.ids.len() as u32;
            callsites.ids.push(meta.id);
            callsites.by_id.insert(meta.id, (Box::leak(Box::new(info)), index));
        }
        interest
    })
}

/// Asked for `SOMETIMES` callsites only: spans only the tracer wants, and any
/// callsite while another thread registers it.
unsafe extern "C" fn cb_enabled(ctx: *const c_void, callsite: usize) -> bool {
    shield(false, || {
        let traced = CALL_TRACED.with(Cell::get);
        if callsite == interest::CALL_SPANS {
            // How this SDK asks for every `SOMETIMES` span: no lookup of the
            // callsite (a callsite another thread is registering gets the same
            // answer, which is yes whenever something else needs every span).
            // Below, how a plugin built with an earlier SDK asks.
            // SAFETY: ctx from our vtable.
            return traced || unsafe { bridge(ctx) }.spans_always();
        }
        // The fast way, taken by every span after the first of its callsite on
        // this thread: two thread-local reads; the span is the tracer's to
        // take if the call is traced, and nobody's if it was sampled out.
        if sampled_span(ctx as usize, callsite).is_some() {
            return traced;
        }
        // SAFETY: ctx from our vtable.
        let bridge = unsafe { bridge(ctx) };
        // Unknown: another thread is registering it right now (tracing asks
        // `enabled` meanwhile). Forward it, so that no span of a parallel call
        // goes uncounted; whatever needs its metadata looks it up later.
        let Some(site) = bridge.site(callsite) else { return true };
        let interest = bridge.interest(site.0);
        if site.0.is_span && interest == interest::SOMETIMES {
            remember_sampled_span(ctx as usize, site);
            return traced;
        }
        interest != interest::NEVER
    })
}

/// Notes on this thread that `info` is a span callsite only the tracer wants,
/// for [`sampled_span`].
fn remember_sampled_span(bridge: usize, site: Site) {
    SAMPLED_SPANS.with(|s| {
        let mut known = s.borrow_mut();
        if known.len() < SAMPLED_SPANS_KEPT {
            known.push((bridge, site.0.id, site));
        }
    });
}

/// The info of a span callsite only the tracer wants, if this thread met it.
fn sampled_span(bridge: usize, callsite: usize) -> Option<Site> {
    SAMPLED_SPANS.with(|s| s.borrow().iter().find(|(b, c, _)| (*b, *c) == (bridge, callsite)).map(|(.., i)| *i))
}

fn collect_fields(fields: &[FieldValue]) -> Vec<(&'static str, Value)> {
    // SAFETY: tracing field names are &'static str in the plugin image, which is never unmapped.
    fields.iter().map(|f| (unsafe { f.name.as_str::<'static>() }.unwrap_or("?"), field_json(f))).collect()
}

unsafe extern "C" fn cb_span_new(
    ctx: *const c_void,
    callsite: usize,
    parent_kind: u8,
    parent: u64,
    fields: *const FieldValue,
    field_count: usize,
) -> u64 {
    shield(u64::MAX, || {
        // SAFETY: ctx from our vtable; fields valid for the call.
        let (bridge, raw) = unsafe { (bridge(ctx), slice(fields, field_count)) };
        // Inside a call the tracer sampled out, not even the callsite is looked
        // up; a span finer than the tracer's level is not handed over.
        let traced = bridge.tracer_for_event().and_then(|tracer| {
            let site = sampled_span(ctx as usize, callsite).or_else(|| {
                // The first span of its callsite on this thread (this SDK asks
                // `enabled` without naming the callsite, so this is where the
                // callsite is noted).
                let site = bridge.site_soon(callsite)?;
                // Only the tracer wants it unless something wants every span.
                if !bridge.spans_always() {
                    remember_sampled_span(ctx as usize, site);
                }
                Some(site)
            })?;
            (site.0.level as u8 <= bridge.tracer_level.load(Ordering::Relaxed)).then_some((tracer, site))
        });
        let keep_fields = bridge.span_fields.load(Ordering::Relaxed);
        let id = match traced {
            Some((_, (_, index))) if !keep_fields && index < Unslabbed::SITES - 1 => Unslabbed::id(index),
            _ => {
                let fields = Mutex::new(if keep_fields { collect_fields(raw) } else { Vec::new() });
                let data = SpanData { callsite, refs: AtomicUsize::new(1), fields, traced: traced.is_some() };
                // The slab is full only after ~4 billion live spans; then the span is untracked.
                bridge.spans.insert(data).map_or(Unslabbed::UNTRACKED, |key| key as u64 + 1)
            }
        };
        LAST_NEW.with(|last| last.set((ctx as usize, id, callsite)));
        if let Some((tracer, (info, _))) = traced {
            let parent = match parent_kind {
                ax_abi::parent::ROOT => None,
                ax_abi::parent::EXPLICIT => Some(parent),
                _ => bridge.current_span(),
            };
            // SAFETY: field names are literals of the image, never unmapped; values valid for the call.
            let fields = unsafe { Fields::new(raw) };
            tracer.span_new(SpanStart { instance: bridge.instance, span: id, parent, callsite: info, fields });
        }
        id
    })
}

unsafe extern "C" fn cb_span_record(ctx: *const c_void, span: u64, fields: *const FieldValue, field_count: usize) {
    shield((), || {
        // SAFETY: ctx from our vtable; fields valid for the call.
        let (bridge, fields) = unsafe { (bridge(ctx), slice(fields, field_count)) };
        if let Some(tracer) = bridge.tracer()
            && (Unslabbed::is(span) || bridge.span(span).is_some_and(|d| d.traced))
        {
            // SAFETY: as in `cb_span_new`.
            tracer.span_record(bridge.instance, span, unsafe { Fields::new(fields) });
        }
        if !bridge.span_fields.load(Ordering::Relaxed) {
            return;
        }
        if let Some(data) = bridge.span(span) {
            let mut stored = data.fields.lock().unwrap_or_else(|e| e.into_inner());
            for (name, value) in collect_fields(fields) {
                match stored.iter_mut().find(|(n, _)| *n == name) {
                    Some(slot) => slot.1 = value,
                    None => stored.push((name, value)),
                }
            }
        }
    })
}

unsafe extern "C" fn cb_span_enter(ctx: *const c_void, span: u64) {
    shield((), || {
        // SAFETY: ctx from our vtable.
        let bridge = unsafe { bridge(ctx) };
        // Usually the span this thread just made (`#[instrument]` enters it at
        // once): its callsite without a look in the span table.
        let callsite = match LAST_NEW.with(Cell::get) {
            (b, s, callsite) if (b, s) == (ctx as usize, span) => callsite,
            _ => bridge.span_callsite(span),
        };
        STACK.with(|s| s.borrow_mut().push(Frame { bridge: ctx as usize, span, callsite }));
        if bridge.profiler.is_on() {
            bridge.profiler.enter(ctx as usize, span, callsite);
        }
        if bridge.watch_spans.load(Ordering::Relaxed)
            && let Some(info) = bridge.callsite(callsite)
            && let Some(handler) = bridge.handler()
        {
            handler.on_span_enter(&info.name);
        }
        bridge.notice_abort();
    })
}

unsafe extern "C" fn cb_span_exit(ctx: *const c_void, span: u64) {
    shield((), || {
        // SAFETY: ctx from our vtable.
        let bridge = unsafe { bridge(ctx) };
        if bridge.profiler.is_on() {
            bridge.profiler.exit(ctx as usize, span, bridge.abort.load(Ordering::Relaxed) != 0);
        }
        STACK.with(|s| {
            let mut stack = s.borrow_mut();
            // Usually the top; spans may exit out of order.
            if let Some(pos) = stack.iter().rposition(|f| f.span == span && f.bridge == ctx as usize) {
                stack.remove(pos);
            }
        })
    })
}

unsafe extern "C" fn cb_span_clone(ctx: *const c_void, span: u64) {
    shield((), || {
        // SAFETY: ctx from our vtable.
        let bridge = unsafe { bridge(ctx) };
        if Unslabbed::is(span) {
            // Before the count, so that whoever closes a handle of this span
            // after it (having got it from here) counts too.
            bridge.unslabbed_cloned.store(true, Ordering::Release);
            *bridge.unslabbed_clones.lock().unwrap_or_else(|e| e.into_inner()).entry(span).or_default() += 1;
        } else if let Some(data) = bridge.span(span) {
            data.refs.fetch_add(1, Ordering::Relaxed);
        }
    })
}

unsafe extern "C" fn cb_span_close(ctx: *const c_void, span: u64) -> bool {
    shield(false, || {
        // SAFETY: ctx from our vtable.
        let bridge = unsafe { bridge(ctx) };
        let (last, traced) = if Unslabbed::is(span) {
            (bridge.unslabbed_close(span), true)
        } else {
            let (last, traced) =
                bridge.span(span).map_or((false, false), |d| (d.refs.fetch_sub(1, Ordering::AcqRel) == 1, d.traced));
            if last {
                bridge.spans.remove(span_key(span));
            }
            (last, traced)
        };
        if last
            && traced
            && let Some(tracer) = bridge.tracer()
        {
            tracer.span_close(bridge.instance, span);
        }
        last
    })
}

unsafe extern "C" fn cb_current_span(ctx: *const c_void, out_callsite: *mut usize) -> u64 {
    shield(0, || {
        let top = STACK.with(|s| s.borrow().iter().rev().find(|f| f.bridge == ctx as usize).copied());
        match top {
            Some(frame) => {
                // SAFETY: valid slot from the plugin.
                unsafe { out_callsite.write(frame.callsite) };
                frame.span
            }
            None => 0,
        }
    })
}

unsafe extern "C" fn cb_event(
    ctx: *const c_void,
    callsite: usize,
    parent_kind: u8,
    parent: u64,
    fields: *const FieldValue,
    field_count: usize,
) {
    shield((), || {
        // SAFETY: ctx from our vtable; fields valid for the call.
        let (bridge, fields) = unsafe { (bridge(ctx), slice(fields, field_count)) };
        bridge.notice_abort();
        let Some((info, _)) = bridge.site_soon(callsite) else {
            return;
        };
        if bridge.profiler.is_on() {
            bridge.profiler.event(callsite);
        }
        if let Some(tracer) = bridge.tracer_for_event() {
            let parent = match parent_kind {
                ax_abi::parent::ROOT => None,
                ax_abi::parent::EXPLICIT => Some(parent),
                _ => bridge.current_span(),
            };
            // SAFETY: as in `cb_span_new`.
            tracer.event(bridge.instance, parent, info, unsafe { Fields::new(fields) });
        }
        bridge.events.publish_with(|| {
            let mut message = String::new();
            let mut rest = Vec::new();
            for (name, value) in collect_fields(fields) {
                match (name, value) {
                    ("message", Value::String(s)) => message = s,
                    (name, value) => rest.push((name.to_owned(), value)),
                }
            }
            Event::Log(LogLine {
                instance: bridge.instance,
                level: info.level,
                target: info.target.clone(),
                message,
                fields: rest,
                location: (!info.file.is_empty()).then(|| SourceLocation {
                    file: info.file.clone(),
                    line: info.line,
                    column: None,
                }),
            })
        });
    })
}

unsafe extern "C" fn cb_probe_hit(ctx: *const c_void, site: *const ProbeSite, values: *const ProbeValue, n: usize) {
    shield((), || {
        // SAFETY: ctx from our vtable; values valid for the call.
        let (bridge, raw) = unsafe { (bridge(ctx), slice(values, n)) };
        let Some(table) = bridge.probes.get() else {
            return;
        };
        let offset = (site as usize).wrapping_sub(table.base);
        let index = offset / size_of::<ProbeSite>();
        if offset % size_of::<ProbeSite>() != 0 || index >= table.infos.len() {
            return;
        }
        LAST_PROBE.with(|l| l.set(Some((ctx as usize, index))));
        let profiling = bridge.profiler.is_on();
        if profiling {
            bridge.profiler.probe_hit(index);
        }
        // Armed for profiling only: no one to hand the hit to.
        if profiling
            && !bridge.armed_wanted.lock().unwrap_or_else(|e| e.into_inner()).get(index).copied().unwrap_or(false)
        {
            return;
        }
        bridge.notice_abort();
        if let Some(handler) = bridge.handler() {
            // The handler's time is not any span's (a debugger may stop here; it
            // excludes the stop from budgets itself, see `crate::paused`).
            let profile_pause = profiling.then(|| bridge.profiler.pause_begin());
            handler.on_probe(&mut ProbeHit::new(bridge.instance, &table.infos[index], raw));
            if let Some(started) = profile_pause {
                bridge.profiler.pause_end(started);
            }
        }
    })
}

unsafe extern "C" fn cb_panicked(ctx: *const c_void, message: AxStr, file: AxStr, line: u32, column: u32) {
    shield((), || {
        // SAFETY: ctx from our vtable; the strings are valid for the call.
        let (bridge, message, file) = unsafe { (bridge(ctx), message.as_bytes(), file.as_bytes()) };
        if let Some(handler) = bridge.handler() {
            let (message, file) = (String::from_utf8_lossy(message), String::from_utf8_lossy(file));
            handler.on_panic(&PanicSite { message: &message, file: &file, line, column });
        }
    })
}

unsafe extern "C" fn cb_abort_call(_ctx: *const c_void) -> bool {
    shield(false, crate::budget::current_call_aborting)
}

unsafe extern "C" fn cb_cache_get(ctx: *const c_void, key: AxStr, out: *mut AxBytes) -> u32 {
    shield(0, || {
        // SAFETY: ctx from our vtable; key valid for the call.
        let (bridge, key) = unsafe { (bridge(ctx), key.as_bytes()) };
        match bridge.cache.get(key) {
            Some(value) if !out.is_null() => {
                // SAFETY: a valid slot from the plugin; the bytes carry the host's free function.
                unsafe { out.write(AxBytes::from_vec(value.to_vec())) };
                1
            }
            _ => 0,
        }
    })
}

unsafe extern "C" fn cb_cache_put(ctx: *const c_void, key: AxStr, value: AxStr, ttl_ms: u64) {
    shield((), || {
        // SAFETY: ctx from our vtable; key and value valid for the call.
        let (bridge, key, value) = unsafe { (bridge(ctx), key.as_bytes(), value.as_bytes()) };
        let ttl = match ttl_ms {
            0 => None,
            u64::MAX => Some(std::time::Duration::MAX),
            ms => Some(std::time::Duration::from_millis(ms)),
        };
        bridge.cache.put(key, value, ttl);
    })
}
