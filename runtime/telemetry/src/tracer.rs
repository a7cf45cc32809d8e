//! [`OtelTracer`]: the runtime's [`CallTracer`] hook turned into OpenTelemetry
//! spans and call metrics, with as little as possible on the call's threads.
//!
//! A call is a span `plugin.method` (kind server), a child of the caller's
//! current context (a `traceparent` the CLI attached, see
//! [`crate::Telemetry::attach`]); the sampler decides once, when the call
//! begins, before any span work. The plugin's root spans become the call's
//! children, nested spans their parent's. A span's fields are its attributes;
//! events (log lines that passed `AX_LOG`) are span events. A call a sandbox
//! denied something carries `ax.sandbox.denied.<capability>` = count.
//!
//! The hooks only append fixed-size [`Rec`]ords to a buffer of the calling
//! thread ([`Buffer`], one per thread and tracer): span and callsite ids,
//! timestamps ([`Shared::now`]), field slots (numbers as they are, text copied into the
//! buffer's text arena), and for a call its ids, clocks and usage. Nothing is
//! looked up, allocated (once the buffer has grown), or shared with another
//! call's thread there: the buffer's lock is only ever contended by the
//! `ax-otel` thread swapping it for an empty one. Inside a sampled call they do
//! not even take that lock: the call's records are staged on its thread
//! ([`Local::staged`]) and handed over together when the call exits. A
//! sampled-out call takes no lock at all: its metrics go through a ring with
//! one writer and one reader ([`Counted`], its names by key), unless the ring
//! is full.
//!
//! The `ax-otel` thread ([`convert`]) drains every thread's buffer in turn and
//! does the rest: it keeps the table of live spans, gives each sampled span
//! its OpenTelemetry ids (a thread's records are in order, so a root span
//! finds the call its thread was in), builds attributes and `SpanData` for the
//! batch span processor, and records the call metrics. Across threads there
//! is no order: a span closed on another thread may have its close taken
//! before its own record, and the close then waits for it.
//!
//! **Invariant:** a hook never blocks and never waits for the `ax-otel`
//! thread: a full buffer drops the record (with the fields that follow it)
//! and counts it. A span whose record was dropped is not exported; its close
//! waits for it in vain, and is forgotten after a while.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant, SystemTime};

use ax_runtime::clock;
use ax_runtime::{
    CallEnd, CallError, CallStart, CallTrace, CallTracer, CallsiteInfo, FieldRef, Fields, InstanceId, Level,
    PluginFailure, SandboxDenials, SpanStart,
};
use crossbeam_channel::{Receiver, Sender};
use opentelemetry::trace::{
    Event, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Context, InstrumentationScope, KeyValue, StringValue, Value as OtelValue};
use opentelemetry_sdk::trace::{
    BatchSpanProcessor, IdGenerator, RandomIdGenerator, SpanData, SpanEvents, SpanLinks, SpanProcessor,
};
use parking_lot::Mutex;

use crate::Sampler;
use crate::export::Health;
use crate::metrics::{CallTally, Instruments};

/// Records a thread's buffer holds before it drops: the `ax-otel` thread is
/// woken when a buffer is half full, and drains every buffer at least every
/// [`POLL`]`.1` anyway.
pub(crate) const BUFFER: usize = 64 * 1024;

/// Bytes of field text and names a thread's buffer holds before it drops.
const TEXT: usize = 4 << 20;

/// The ids of a span, and whether it is sampled. The trace id is kept as
/// bytes: a `TraceId` is a `u128`, whose 16-byte alignment made every
/// [`Rec`] 64 bytes long.
#[derive(Clone, Copy, Debug)]
struct Ids {
    trace: [u8; 16],
    span: SpanId,
    sampled: bool,
}

impl Ids {
    fn new(trace: TraceId, span: SpanId, sampled: bool) -> Ids {
        Ids { trace: trace.to_bytes(), span, sampled }
    }

    fn trace(&self) -> TraceId {
        TraceId::from_bytes(self.trace)
    }
}

/// A call the sampler turned down, from `begin_call` to `end_call`.
struct SampledOut;

/// A sampled call from `begin_call` to `end_call`, on its caller's side.
struct CallState {
    ids: Ids,
    parent: SpanId,
    parent_remote: bool,
    /// In [`Shared::now`] ticks.
    start: u64,
    call: u64,
}

/// A range of a [`Batch`]'s text.
#[derive(Clone, Copy, Debug)]
struct Text {
    at: u32,
    len: u32,
}

/// A field value in a record.
#[derive(Clone, Copy, Debug)]
enum Slot {
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
    Text(Text),
}

/// What a hook appends to its thread's buffer. Each `fields` count is the
/// number of [`Rec::Field`]s that follow the record. 48 bytes: the records go
/// from the call's core to the `ax-otel` thread's, a cache line at a time.
#[derive(Clone, Copy)]
enum Rec {
    /// The thread entered a sampled call: its root spans are the call's children.
    Enter(Ids),
    /// The thread left the call.
    Exit,
    SpanNew {
        instance: InstanceId,
        span: u64,
        /// Span ids are never 0.
        parent: Option<NonZeroU64>,
        site: &'static CallsiteInfo,
        at: u64,
        fields: u32,
    },
    SpanRecord {
        instance: InstanceId,
        span: u64,
        fields: u32,
    },
    SpanClose {
        instance: InstanceId,
        span: u64,
        at: u64,
    },
    Event {
        instance: InstanceId,
        parent: u64,
        site: &'static CallsiteInfo,
        at: u64,
        fields: u32,
    },
    Field(&'static str, Slot),
}

/// A sampled call that ended, for its span and its metrics. 136 bytes: what
/// most calls lack (an error, sandbox denials) is boxed, and an absent usage
/// figure is [`NONE`].
struct CallRec {
    ids: Ids,
    parent: SpanId,
    parent_remote: bool,
    plugin: Text,
    method: Text,
    instance: InstanceId,
    call: u64,
    /// In [`Shared::now`] ticks.
    start: u64,
    end: u64,
    wall: u64,
    cpu: u64,
    allocated: u64,
    peak: u64,
    rare: Option<Box<Rare>>,
}

/// A usage figure the call did not measure, in a [`CallRec`].
const NONE: u64 = u64::MAX;

// What the records' docs say of their size.
const _: () = assert!(size_of::<Rec>() == 48 && size_of::<CallRec>() == 136);

/// What a [`CallRec`] has only for some calls.
struct Rare {
    error: Option<CallError>,
    /// Denied system calls of a sandboxed plugin.
    denied: SandboxDenials,
}

impl CallRec {
    fn error(&self) -> Option<&CallError> {
        self.rare.as_ref().and_then(|r| r.error.as_ref())
    }

    fn usage(figure: u64) -> Option<u64> {
        (figure != NONE).then_some(figure)
    }
}

/// A call the sampler turned down, for its metrics only, as it goes to the
/// `ax-otel` thread through its thread's ring ([`Local::counted`]), or its
/// buffer when the ring is full: its plugin and method by key
/// ([`Shared::names`]), half a cache line.
struct Counted {
    wall: u64,
    outcome: &'static str,
    names: u32,
    failed: bool,
}

/// A plugin's name and a method's.
type Names = (Box<str>, Box<str>);

/// Sampled-out calls a thread's ring holds (256 KiB); when it is full they
/// go through the buffer's lock instead. Half of it takes
/// longer to fill than the `ax-otel` thread's shortest nap ([`POLL`]`.0`),
/// even with calls back to back (2.2 ms of 0.55 µs calls here), so that
/// while calls keep coming it drains the ring on its own and is never woken:
/// with 2,048, the wake-up (a system call sending the other core an
/// interrupt) cost every sampled-out call 13 ns on average.
const COUNTED: usize = 8192;

/// A thread's records since the `ax-otel` thread last took them.
#[derive(Default)]
struct Batch {
    recs: Vec<Rec>,
    calls: Vec<CallRec>,
    /// Sampled-out calls, when their thread's ring was full.
    metrics: Vec<Counted>,
    text: Vec<u8>,
    /// The last call's plugin and method names in `text`: the next call of
    /// the same method refers to them instead of copying them again.
    names: Option<(Text, Text)>,
}

impl Batch {
    /// `plugin` and `method` in the text arena.
    fn names(&mut self, plugin: &str, method: &str) -> (Text, Text) {
        match self.names {
            Some((p, m)) if self.bytes(p) == plugin.as_bytes() && self.bytes(m) == method.as_bytes() => (p, m),
            _ => {
                let names = (self.text(plugin), self.text(method));
                self.names = Some(names);
                names
            }
        }
    }

    fn text(&mut self, s: &str) -> Text {
        let at = self.text.len() as u32;
        self.text.extend_from_slice(s.as_bytes());
        Text { at, len: s.len() as u32 }
    }

    fn bytes(&self, t: Text) -> &[u8] {
        &self.text[t.at as usize..(t.at + t.len) as usize]
    }

    fn str(&self, t: Text) -> &str {
        // Copied from a `&str`: always UTF-8.
        std::str::from_utf8(self.bytes(t)).unwrap_or("<invalid utf-8>")
    }

    fn fields(&mut self, fields: Fields<'_>) {
        for (name, value) in fields.iter() {
            let slot = match value {
                FieldRef::I64(i) => Slot::I64(i),
                FieldRef::U64(u) => Slot::U64(u),
                FieldRef::F64(f) => Slot::F64(f),
                FieldRef::Bool(b) => Slot::Bool(b),
                FieldRef::Text(s) => Slot::Text(self.text(s)),
            };
            self.recs.push(Rec::Field(name, slot));
        }
    }

    /// Records of every kind.
    fn len(&self) -> usize {
        self.recs.len() + self.calls.len() + self.metrics.len()
    }

    fn clear(&mut self) {
        self.recs.clear();
        self.calls.clear();
        self.metrics.clear();
        self.text.clear();
        self.names = None;
    }
}

/// One thread's buffer for one tracer.
struct Buffer {
    batch: Mutex<Batch>,
    /// The `ax-otel` thread's end of the thread's ring of sampled-out calls
    /// (only that thread locks it).
    counted: Mutex<rtrb::Consumer<Counted>>,
}

/// One thread's buffer for one tracer, as the thread holds it.
struct Local {
    tracer: u64,
    buffer: Arc<Buffer>,
    /// The records of the sampled call this thread runs, kept here without a
    /// lock until the call exits (or there are [`STAGED`] of them), then
    /// handed over in one go: one lock per call instead of one per record.
    staged: Batch,
    /// How many sampled calls this thread is in (a call may call another).
    calls: u32,
    /// Sampled-out calls, to the `ax-otel` thread without a lock: a ring
    /// with one writer and one reader.
    counted: rtrb::Producer<Counted>,
    /// This thread's plugin and method names with their key in
    /// [`Shared::names`], and the index of the last one used.
    names: (Vec<(Names, u32)>, usize),
    /// Whether the `ax-otel` thread was woken since the ring was last less
    /// than half full.
    woke: bool,
}

/// Records, and bytes of their text, a call keeps on its thread before it
/// hands them over anyway (a record with more text goes straight over).
const STAGED: usize = 1024;
const STAGED_TEXT: usize = 64 << 10;

thread_local! {
    /// This thread's buffers, one per tracer.
    static BUFFERS: RefCell<Vec<Local>> = const { RefCell::new(Vec::new()) };
}

thread_local! {
    /// The last sampled call's state, ended on this thread, for the next
    /// sampled call that begins here: no allocation per call.
    static SPARE_STATE: Cell<Option<Box<CallState>>> = const { Cell::new(None) };
}

/// Tracer ids, for [`BUFFERS`].
static NEXT_TRACER: AtomicU64 = AtomicU64::new(1);

/// The tag of a [`Shared::now`] timestamp read from the monotonic clock (a
/// counter's ticks stay below it for a century of uptime).
const MONOTONIC: u64 = 1 << 63;

/// What the hooks and the `ax-otel` thread share.
pub(crate) struct Shared {
    id: u64,
    /// The buffers of threads that have written, for `ax-otel` to take.
    buffers: Mutex<Vec<Arc<Buffer>>>,
    /// The `ax-otel` thread, to wake when a buffer is half full.
    converter: OnceLock<Thread>,
    stopped: AtomicBool,
    /// The hooks' timestamps ([`Shared::now`]) count from this moment.
    anchor: (Instant, SystemTime),
    /// A reading of the counter and the time since `anchor` at that moment,
    /// taken the first time a counter timestamp is scaled.
    ticks_anchor: OnceLock<(u64, Duration)>,
    health: Arc<Health>,
    /// The generation each instance serves as (1 unless it came from a reload).
    pub(crate) generations: Mutex<HashMap<InstanceId, u64>>,
    /// The plugin and method names of sampled-out calls, by key: a thread
    /// adds a pair the first time it sees it, then sends the key.
    names: Mutex<Vec<Names>>,
}

impl Shared {
    /// A timestamp: the raw ticks of the CPU's time-stamp counter once the
    /// process calibrated it (a read costs ~9 ns here, see
    /// [`ax_runtime::clock`]), else the nanoseconds since `anchor` on the
    /// monotonic clock (~20 ns), tagged [`MONOTONIC`]. The `ax-otel` thread
    /// scales them. Calibrating here would hold up the first call ~0.6 ms.
    fn now(&self) -> u64 {
        clock::ticks().unwrap_or_else(|| MONOTONIC | self.anchor.0.elapsed().as_nanos() as u64)
    }

    /// The time from `anchor` to a [`Shared::now`] timestamp.
    fn since_anchor(&self, at: u64) -> Duration {
        if at & MONOTONIC != 0 {
            return Duration::from_nanos(at & !MONOTONIC);
        }
        // A counter timestamp: the counter was calibrated before it was taken.
        let &(ticks, since) = self.ticks_anchor.get_or_init(|| (clock::ticks().unwrap_or(at), self.anchor.0.elapsed()));
        if at >= ticks {
            since + clock::ticks_between(ticks, at)
        } else {
            since.saturating_sub(clock::ticks_between(at, ticks))
        }
    }

    /// The time of a [`Shared::now`] timestamp.
    fn time(&self, at: u64) -> SystemTime {
        self.anchor.1 + self.since_anchor(at)
    }

    /// The time between two [`Shared::now`] timestamps.
    fn between(&self, start: u64, end: u64) -> Duration {
        self.since_anchor(end).saturating_sub(self.since_anchor(start))
    }

    /// Appends to this thread's buffer with `write`, if `records` more records
    /// and `text` more bytes fit; else drops and counts. Inside a sampled call
    /// the records are staged on the thread instead (see [`Local::staged`]).
    fn append(&self, records: usize, text: usize, write: impl FnOnce(&mut Batch)) {
        self.with_local(|local| {
            // Nothing is staged outside a sampled call.
            if local.calls == 0 {
                self.locked(&local.buffer, records, text, write);
                return;
            }
            if local.staged.len() + records > STAGED || local.staged.text.len() + text > STAGED_TEXT {
                self.hand_over(local);
            }
            if text > STAGED_TEXT {
                self.locked(&local.buffer, records, text, write);
            } else {
                write(&mut local.staged);
            }
        });
    }

    /// This thread's buffer for this tracer, made the first time.
    fn with_local(&self, body: impl FnOnce(&mut Local)) {
        if self.stopped.load(Ordering::Relaxed) {
            return;
        }
        // An error: this thread is exiting, and has nowhere to write.
        let _ = BUFFERS.try_with(|buffers| {
            let mut buffers = buffers.borrow_mut();
            let at = match buffers.iter().position(|local| local.tracer == self.id) {
                Some(at) => at,
                None => {
                    let (counted, taken) = rtrb::RingBuffer::new(COUNTED);
                    let buffer = Arc::new(Buffer { batch: Mutex::default(), counted: Mutex::new(taken) });
                    self.buffers.lock().push(buffer.clone());
                    buffers.push(Local {
                        tracer: self.id,
                        buffer,
                        staged: Batch::default(),
                        calls: 0,
                        counted,
                        names: (Vec::new(), 0),
                        woke: false,
                    });
                    buffers.len() - 1
                }
            };
            body(&mut buffers[at]);
        });
    }

    /// A sampled-out call's metrics, through the thread's ring (through its
    /// buffer's lock if the ring is full).
    fn count(&self, end: &CallEnd<'_>) {
        let (wall, outcome, failed) = (end.usage.wall.as_nanos() as u64, outcome(end.error), end.error.is_some());
        self.with_local(|local| {
            let names = self.names(local, end.plugin, end.method);
            if let Err(rtrb::PushError::Full(counted)) = local.counted.push(Counted { wall, outcome, names, failed }) {
                return self.locked(&local.buffer, 1, 0, |b| b.metrics.push(counted));
            }
            // Half full wakes the `ax-otel` thread, once. The cached count
            // errs on the full side, and costs no atomic read.
            if local.counted.cached_slots() < COUNTED / 2 && local.counted.slots() < COUNTED / 2 {
                if !std::mem::replace(&mut local.woke, true)
                    && let Some(converter) = self.converter.get()
                {
                    converter.unpark();
                }
            } else {
                local.woke = false;
            }
        });
    }

    /// The key of `plugin` and `method` in [`Shared::names`], as this thread knows it.
    fn names(&self, local: &mut Local, plugin: &str, method: &str) -> u32 {
        let same = |(p, m): &Names| **p == *plugin && **m == *method;
        let (known, last) = &mut local.names;
        if let Some((_, key)) = known.get(*last).filter(|(names, _)| same(names)) {
            return *key;
        }
        if let Some(at) = known.iter().position(|(names, _)| same(names)) {
            *last = at;
            return known[at].1;
        }
        let mut names = self.names.lock();
        let key = match names.iter().position(same) {
            Some(key) => key,
            None => {
                names.push((plugin.into(), method.into()));
                names.len() - 1
            }
        } as u32;
        known.push(((plugin.into(), method.into()), key));
        *last = known.len() - 1;
        key
    }

    /// A sampled call begins on this thread: its records are staged from now.
    fn enter(&self, ids: Ids) {
        self.with_local(|local| {
            local.calls += 1;
            local.staged.recs.push(Rec::Enter(ids));
        });
    }

    /// The sampled call ends on this thread: its records are handed over.
    fn exit(&self) {
        self.with_local(|local| {
            local.staged.recs.push(Rec::Exit);
            local.calls = local.calls.saturating_sub(1);
            if local.calls == 0 {
                self.hand_over(local);
            }
        });
    }

    /// Moves the staged records to the thread's buffer, under its lock once
    /// (if they do not all fit, they are dropped together, and counted once).
    fn hand_over(&self, local: &mut Local) {
        let staged = &mut local.staged;
        if staged.len() == 0 {
            return;
        }
        let (records, text) = (staged.len(), staged.text.len());
        self.locked(&local.buffer, records, text, |batch| {
            let base = batch.text.len() as u32;
            batch.text.extend_from_slice(&staged.text);
            let moved = |t: Text| Text { at: t.at + base, len: t.len };
            if staged.text.is_empty() {
                // Most calls: no text to move, the records copied as they are.
                batch.recs.extend_from_slice(&staged.recs);
            } else {
                batch.recs.extend(staged.recs.iter().map(|rec| match *rec {
                    Rec::Field(name, Slot::Text(t)) => Rec::Field(name, Slot::Text(moved(t))),
                    rec => rec,
                }));
            }
            // A call made inside this one on this thread (a sampled-out one's
            // metrics go through the ring, never staged).
            batch.calls.extend(staged.calls.drain(..).map(|call| CallRec {
                plugin: moved(call.plugin),
                method: moved(call.method),
                ..call
            }));
        });
        staged.clear();
    }

    /// Appends to `buffer` under its lock, if `records` more records and
    /// `text` more bytes fit; else drops and counts.
    fn locked(&self, buffer: &Buffer, records: usize, text: usize, write: impl FnOnce(&mut Batch)) {
        let mut batch = buffer.batch.lock();
        let used = batch.len();
        if used + records > BUFFER || batch.text.len() + text > TEXT {
            drop(batch);
            self.health.queue_full();
            return;
        }
        write(&mut batch);
        let half = BUFFER / 2;
        if used < half && batch.len() >= half {
            drop(batch);
            if let Some(converter) = self.converter.get() {
                converter.unpark();
            }
        }
    }
}

fn text_len(fields: Fields<'_>) -> usize {
    fields.iter().map(|(_, v)| if let FieldRef::Text(s) = v { s.len() } else { 0 }).sum()
}

pub(crate) struct OtelTracer {
    sampler: Sampler,
    /// The most detailed plugin spans and events exported.
    level: Level,
    ids: RandomIdGenerator,
    pub(crate) shared: Arc<Shared>,
}

/// A hasher for the tables of the `ax-otel` thread, keyed by pairs of small
/// integers the runtime hands out (not by anything a user controls): one
/// multiply per word instead of SipHash's rounds.
#[derive(Clone, Copy, Default)]
struct Fast;

impl std::hash::BuildHasher for Fast {
    type Hasher = FastHasher;
    fn build_hasher(&self) -> FastHasher {
        FastHasher(0)
    }
}

struct FastHasher(u64);

impl std::hash::Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

/// `ok`, `error`, `panic`, `budget_exceeded`, …: the call's outcome attribute.
pub(crate) fn outcome(error: Option<&CallError>) -> &'static str {
    match error {
        None => "ok",
        Some(CallError::BudgetExceeded { .. }) => "budget_exceeded",
        Some(CallError::Plugin { failure: PluginFailure::Panic { .. }, .. }) => "panic",
        Some(CallError::Plugin { .. }) => "error",
        Some(_) => "failure",
    }
}

fn context(ids: Ids) -> SpanContext {
    let flags = if ids.sampled { TraceFlags::SAMPLED } else { TraceFlags::default() };
    SpanContext::new(ids.trace(), ids.span, flags, false, TraceState::default())
}

impl Sampler {
    /// The trace of a call (or a span outside any call) under `parent` (the
    /// caller's span; invalid: none), and whether it is sampled. A root that
    /// a ratio of 0 turns down draws no trace id: it is never seen.
    fn sample(self, parent: &SpanContext, ids: &RandomIdGenerator) -> (TraceId, bool) {
        let ratio = match self {
            Sampler::ParentBased(_) if parent.is_valid() => return (parent.trace_id(), parent.is_sampled()),
            Sampler::ParentBased(ratio) | Sampler::Ratio(ratio) => ratio,
        };
        if ratio <= 0.0 {
            return (TraceId::INVALID, false);
        }
        let trace = if parent.is_valid() { parent.trace_id() } else { ids.new_trace_id() };
        (trace, ratio >= 1.0 || keeps(ratio, trace))
    }
}

/// The specification's `TraceIdRatioBased` test, as every OpenTelemetry SDK
/// applies it (so that services sharing a trace agree): the trace id's last 8
/// bytes, as a big-endian number without its lowest bit, below `ratio` × 2⁶³.
fn keeps(ratio: f64, trace: TraceId) -> bool {
    let low = u64::from_be_bytes(trace.to_bytes()[8..].try_into().unwrap_or_default());
    (low >> 1) < (ratio * (1u64 << 63) as f64) as u64
}

impl OtelTracer {
    pub(crate) fn new(sampler: Sampler, level: Level, health: Arc<Health>) -> OtelTracer {
        OtelTracer {
            sampler,
            level,
            ids: RandomIdGenerator::default(),
            shared: Arc::new(Shared {
                id: NEXT_TRACER.fetch_add(1, Ordering::Relaxed),
                buffers: Mutex::new(Vec::new()),
                converter: OnceLock::new(),
                stopped: AtomicBool::new(false),
                anchor: (Instant::now(), SystemTime::now()),
                ticks_anchor: OnceLock::new(),
                health,
                generations: Mutex::new(HashMap::new()),
                names: Mutex::new(Vec::new()),
            }),
        }
    }
}

impl CallTracer for OtelTracer {
    fn begin_call(&self, call: &CallStart<'_>) -> CallTrace {
        let (parent, trace, sampled) = Context::map_current(|cx| {
            let span = cx.span();
            let parent = span.span_context();
            let (trace, sampled) = self.sampler.sample(parent, &self.ids);
            ((parent.span_id(), parent.is_remote()), trace, sampled)
        });
        if !sampled {
            // Its metrics need only what `end_call` is told: a zero-sized
            // state, not allocated.
            return CallTrace(Box::new(SampledOut));
        }
        let state = CallState {
            ids: Ids::new(trace, self.ids.new_span_id(), sampled),
            parent: parent.0,
            parent_remote: parent.1,
            start: self.shared.now(),
            call: call.call,
        };
        CallTrace(match SPARE_STATE.try_with(Cell::take).ok().flatten() {
            Some(mut spare) => {
                *spare = state;
                spare
            }
            None => Box::new(state),
        })
    }

    fn enter_call(&self, trace: &CallTrace) -> bool {
        let Some(call) = trace.0.downcast_ref::<CallState>() else { return false };
        if call.ids.sampled {
            self.shared.enter(call.ids);
        }
        call.ids.sampled
    }

    fn max_level(&self) -> Level {
        self.level
    }

    fn exit_call(&self, trace: &CallTrace) {
        if trace.0.is::<CallState>() {
            self.shared.exit();
        }
    }

    fn end_call(&self, trace: CallTrace, end: &CallEnd<'_>) {
        let Ok(call) = trace.0.downcast::<CallState>() else {
            // Sampled out: its metrics only, and no clock read.
            return self.shared.count(end);
        };
        let ns = |d: Duration| d.as_nanos() as u64;
        let (usage, names) = (end.usage, end.plugin.len() + end.method.len());
        let end_at = self.shared.now();
        self.shared.append(1, names, |b| {
            let (plugin, method) = b.names(end.plugin, end.method);
            b.calls.push(CallRec {
                ids: call.ids,
                parent: call.parent,
                parent_remote: call.parent_remote,
                plugin,
                method,
                instance: end.instance,
                call: call.call,
                start: call.start,
                end: end_at,
                wall: ns(usage.wall),
                cpu: usage.cpu.map_or(NONE, ns),
                allocated: usage.allocated.unwrap_or(NONE),
                peak: usage.peak.unwrap_or(NONE),
                rare: (end.error.is_some() || !usage.denied.is_empty())
                    .then(|| Box::new(Rare { error: end.error.cloned(), denied: usage.denied })),
            });
        });
        // An error: this thread is exiting; the box is freed.
        let _ = SPARE_STATE.try_with(|spare| spare.set(Some(call)));
    }

    fn span_new(&self, start: SpanStart<'_>) {
        let at = self.shared.now();
        let fields = start.fields;
        self.shared.append(1 + fields.len(), text_len(fields), |b| {
            b.recs.push(Rec::SpanNew {
                instance: start.instance,
                span: start.span,
                parent: start.parent.and_then(NonZeroU64::new),
                site: start.callsite,
                at,
                fields: fields.len() as u32,
            });
            b.fields(fields);
        });
    }

    fn span_record(&self, instance: InstanceId, span: u64, fields: Fields<'_>) {
        self.shared.append(1 + fields.len(), text_len(fields), |b| {
            b.recs.push(Rec::SpanRecord { instance, span, fields: fields.len() as u32 });
            b.fields(fields);
        });
    }

    fn span_close(&self, instance: InstanceId, span: u64) {
        let at = self.shared.now();
        self.shared.append(1, 0, |b| b.recs.push(Rec::SpanClose { instance, span, at }));
    }

    fn event(&self, instance: InstanceId, parent: Option<u64>, callsite: &'static CallsiteInfo, fields: Fields<'_>) {
        // Kept only inside an exported span.
        let Some(parent) = parent else { return };
        let at = self.shared.now();
        self.shared.append(1 + fields.len(), text_len(fields), |b| {
            b.recs.push(Rec::Event { instance, parent, site: callsite, at, fields: fields.len() as u32 });
            b.fields(fields);
        });
    }
}

/// What every span of one callsite shares.
struct Site {
    name: Cow<'static, str>,
    attributes: Vec<KeyValue>,
}

struct LiveSpan {
    ids: Ids,
    parent: SpanId,
    site: Arc<Site>,
    start: SystemTime,
    fields: Vec<(&'static str, OtelValue)>,
    events: Vec<Event>,
}

/// How long the `ax-otel` thread sleeps between drains: the first while
/// records come, then twice as long each time every buffer was empty, up to
/// the last. A buffer half full wakes it early.
const POLL: (Duration, Duration) = (Duration::from_millis(1), Duration::from_millis(50));

/// How long a close taken before its span's record waits for it.
const EARLY_CLOSE_KEPT: Duration = Duration::from_secs(10);

/// A buffer as the `ax-otel` thread tracks it.
struct Drained {
    buffer: Arc<Buffer>,
    /// The batch swapped in for the buffer's, to be swapped again next time.
    spare: Batch,
    /// The sampled calls the thread is in, innermost last, as its records
    /// say (a call may make another on its thread).
    calls: Vec<Ids>,
    /// The thread had exited when this drain began: what it took were its
    /// last records.
    exited: bool,
}

/// The `ax-otel` thread's state: records in, span data and metric points out.
pub(crate) struct Converter {
    shared: Arc<Shared>,
    sampler: Sampler,
    ids: RandomIdGenerator,
    scope: InstrumentationScope,
    drained: Vec<Drained>,
    /// Live sampled plugin spans: (instance, span id) → the span so far.
    live: HashMap<(InstanceId, u64), LiveSpan, Fast>,
    /// Live plugin spans the sampler turned down (made outside any call).
    unsampled: HashSet<(InstanceId, u64), Fast>,
    /// Closes taken before their span's record (another thread closed it,
    /// and its buffer came first in a drain): the close's time, and when it
    /// came. Forgotten after [`EARLY_CLOSE_KEPT`] (a span whose record was
    /// dropped never comes).
    early_closes: HashMap<(InstanceId, u64), (u64, Instant), Fast>,
    /// Callsites seen: (instance, callsite id) → name and constant attributes.
    sites: HashMap<(InstanceId, usize), Arc<Site>, Fast>,
    /// The call metrics' counts, added to the counters after each drain.
    tally: CallTally,
    /// [`Shared::names`], as far as this thread has read it.
    names: Vec<Names>,
}

impl Converter {
    pub(crate) fn new(tracer: &OtelTracer) -> Converter {
        Converter {
            shared: tracer.shared.clone(),
            sampler: tracer.sampler,
            ids: RandomIdGenerator::default(),
            scope: InstrumentationScope::builder("ax").build(),
            drained: Vec::new(),
            live: HashMap::default(),
            unsampled: HashSet::default(),
            early_closes: HashMap::default(),
            sites: HashMap::default(),
            tally: CallTally::default(),
            names: Vec::new(),
        }
    }

    /// Runs until `stop` is sent; drains everything once more, then answers it.
    pub(crate) fn run(
        mut self,
        stop: &Receiver<Sender<()>>,
        processor: &BatchSpanProcessor,
        instruments: &Instruments,
    ) {
        let _ = self.shared.converter.set(std::thread::current());
        let mut nap = POLL.0;
        loop {
            if let Ok(done) = stop.try_recv() {
                // Hooks append nothing more; what they did append is converted,
                // and the buffers' memory given back (the threads keep an empty one).
                self.shared.stopped.store(true, Ordering::Relaxed);
                self.drain(processor, instruments);
                for d in &self.drained {
                    *d.buffer.batch.lock() = Batch::default();
                }
                let _ = done.send(());
                return;
            }
            // Even while records keep coming, drain at most once a nap (unless
            // a buffer half full wakes it): draining without a pause took each
            // buffer's lock about as often as the calls appended, moving the
            // lock's line and the buffer between the two cores.
            if self.drain(processor, instruments) {
                nap = POLL.0;
                std::thread::park_timeout(nap);
            } else {
                std::thread::park_timeout(nap);
                nap = (nap * 2).min(POLL.1);
            }
        }
    }

    /// Takes every buffer's records and converts them; returns whether there were any.
    fn drain(&mut self, processor: &BatchSpanProcessor, instruments: &Instruments) -> bool {
        {
            let mut new = self.shared.buffers.lock();
            self.drained.extend(new.drain(..).map(|buffer| Drained {
                buffer,
                spare: Batch::default(),
                calls: Vec::new(),
                exited: false,
            }));
        }
        let mut any = false;
        let mut drained = std::mem::take(&mut self.drained);
        for d in &mut drained {
            // Only the `ax-otel` thread holds the buffer: its thread exited
            // (the fence makes its last writes, before its release of the
            // buffer, visible here). Checked before the records are taken: a
            // thread that exits while they are could write after.
            d.exited = Arc::strong_count(&d.buffer) == 1;
            if d.exited {
                std::sync::atomic::fence(Ordering::Acquire);
            }
            std::mem::swap(&mut *d.buffer.batch.lock(), &mut d.spare);
            any |= d.spare.len() > 0;
            any |= self.count(&d.buffer, instruments);
            self.convert(d, processor, instruments);
            d.spare.clear();
        }
        self.tally.flush(instruments);
        if !self.early_closes.is_empty() {
            self.early_closes.retain(|_, (_, came)| came.elapsed() < EARLY_CLOSE_KEPT);
        }
        drained.retain(|d| !d.exited);
        self.drained = drained;
        any
    }

    /// Takes the sampled-out calls in a thread's ring into the call metrics;
    /// returns whether there were any.
    fn count(&mut self, buffer: &Buffer, instruments: &Instruments) -> bool {
        let mut ring = buffer.counted.lock();
        let waiting = ring.slots();
        let Ok(counted) = ring.read_chunk(waiting) else { return false };
        let any = !counted.is_empty();
        counted.into_iter().for_each(|call| self.counted(&call, instruments));
        any
    }

    /// A sampled-out call, into the call metrics.
    fn counted(&mut self, call: &Counted, instruments: &Instruments) {
        let key = call.names as usize;
        if key >= self.names.len() {
            self.names.extend(self.shared.names.lock().iter().skip(self.names.len()).cloned());
        }
        // Every key a thread sends is in `Shared::names` first.
        let Some((plugin, method)) = self.names.get(key) else { return };
        self.tally.record(instruments, (plugin, method, call.outcome), Duration::from_nanos(call.wall), call.failed);
    }

    fn convert(&mut self, d: &mut Drained, processor: &BatchSpanProcessor, instruments: &Instruments) {
        let shared = self.shared.clone();
        let health = &shared.health;
        let batch = &d.spare;
        batch.metrics.iter().for_each(|call| self.counted(call, instruments));
        for call in &batch.calls {
            let (plugin, method) = (batch.str(call.plugin), batch.str(call.method));
            let wall = Duration::from_nanos(call.wall);
            let error = call.error();
            self.tally.record(instruments, (plugin, method, outcome(error)), wall, error.is_some());
            let generation = self.shared.generations.lock().get(&call.instance).copied().unwrap_or(1);
            hand(processor, health, call_span(call, plugin, method, generation, &self.shared, &self.scope));
        }
        let recs = &batch.recs;
        let mut next = 0;
        while let Some(rec) = recs.get(next) {
            // Past this record before anything else: an arm that skips the
            // record must not leave the loop on it (it once went round forever).
            next += 1;
            match rec {
                Rec::Enter(ids) => d.calls.push(*ids),
                Rec::Exit => drop(d.calls.pop()),
                Rec::SpanNew { instance, span, parent, site, at, fields } => {
                    let fields = following(recs, &mut next, *fields);
                    let parent = parent.and_then(|p| self.live.get(&(*instance, p.get())));
                    let ids = match parent.map(|s| s.ids).or(d.calls.last().copied()) {
                        Some(p) => Some((Ids { span: self.ids.new_span_id(), sampled: true, ..p }, p.span)),
                        // Outside any call (a thread the plugin spawned): a
                        // trace of its own, sampled as a call would be.
                        None => {
                            let (trace, sampled) = self.sampler.sample(&SpanContext::empty_context(), &self.ids);
                            sampled.then(|| (Ids::new(trace, self.ids.new_span_id(), sampled), SpanId::INVALID))
                        }
                    };
                    let key = (*instance, *span);
                    let Some((ids, parent)) = ids else {
                        self.unsampled.insert(key);
                        continue;
                    };
                    let live = LiveSpan {
                        ids,
                        parent,
                        site: self.site(*instance, site),
                        start: self.shared.time(*at),
                        fields: attributes(batch, fields).collect(),
                        events: Vec::new(),
                    };
                    match self.early_closes.remove(&key) {
                        Some((end, _)) => {
                            hand(processor, health, plugin_span(live, self.shared.time(end), &self.scope))
                        }
                        None => {
                            self.live.insert(key, live);
                        }
                    }
                }
                Rec::SpanRecord { instance, span, fields } => {
                    let fields = following(recs, &mut next, *fields);
                    if let Some(live) = self.live.get_mut(&(*instance, *span)) {
                        live.fields.extend(attributes(batch, fields));
                    }
                }
                Rec::SpanClose { instance, span, at } => {
                    let key = (*instance, *span);
                    if let Some(live) = self.live.remove(&key) {
                        hand(processor, health, plugin_span(live, self.shared.time(*at), &self.scope));
                    } else if !self.unsampled.remove(&key) {
                        // Closed on another thread, whose buffer was taken
                        // before the buffer of the thread that made the span:
                        // kept for the span's record to come.
                        self.early_closes.insert(key, (*at, Instant::now()));
                    }
                }
                Rec::Event { instance, parent, site, at, fields } => {
                    let fields = following(recs, &mut next, *fields);
                    if !self.live.contains_key(&(*instance, *parent)) {
                        continue;
                    }
                    let level = site.level.as_str();
                    let site = self.site(*instance, site);
                    let event = span_event(batch, &site, level, self.shared.time(*at), fields);
                    if let Some(live) = self.live.get_mut(&(*instance, *parent)) {
                        live.events.push(event);
                    }
                }
                // Fields are taken by the record before them.
                Rec::Field(..) => {}
            }
        }
    }

    /// The span name and constant attributes of a callsite, made once.
    fn site(&mut self, instance: InstanceId, info: &CallsiteInfo) -> Arc<Site> {
        self.sites
            .entry((instance, info.id))
            .or_insert_with(|| {
                let text = |s: &str| OtelValue::String(StringValue::from(Arc::<str>::from(s)));
                Arc::new(Site {
                    name: Cow::Owned(info.name.clone()),
                    attributes: vec![
                        KeyValue::new("code.namespace", text(&info.target)),
                        KeyValue::new("code.filepath", text(&info.file)),
                        KeyValue::new("code.lineno", i64::from(info.line)),
                    ],
                })
            })
            .clone()
    }
}

/// The `n` field records from `*next` on; moves `*next` past them.
fn following<'a>(recs: &'a [Rec], next: &mut usize, n: u32) -> std::slice::Iter<'a, Rec> {
    let at = *next;
    *next = (at + n as usize).min(recs.len());
    recs[at..*next].iter()
}

/// A field slot as an attribute value: integers as integers (a `u64` beyond
/// `i64` as its decimal text), a float that is not finite as `null` (as its
/// JSON form would be), text as text.
fn value(batch: &Batch, slot: Slot) -> OtelValue {
    match slot {
        Slot::I64(i) => OtelValue::I64(i),
        Slot::U64(u) => i64::try_from(u).map_or_else(|_| OtelValue::String(u.to_string().into()), OtelValue::I64),
        Slot::F64(f) if f.is_finite() => OtelValue::F64(f),
        Slot::F64(_) => OtelValue::String("null".into()),
        Slot::Bool(b) => OtelValue::Bool(b),
        Slot::Text(t) => OtelValue::String(batch.str(t).to_owned().into()),
    }
}

/// The field records `fields` as (name, attribute value).
fn attributes<'a>(
    batch: &'a Batch,
    fields: impl Iterator<Item = &'a Rec> + 'a,
) -> impl Iterator<Item = (&'static str, OtelValue)> + 'a {
    fields.filter_map(|rec| match rec {
        Rec::Field(name, slot) => Some((*name, value(batch, *slot))),
        _ => None,
    })
}

/// An event as a span event: named by its `message` field (else its callsite),
/// with its level and other fields as attributes.
fn span_event<'a>(
    batch: &'a Batch,
    site: &Site,
    level: &'static str,
    at: SystemTime,
    fields: impl Iterator<Item = &'a Rec>,
) -> Event {
    let mut name = site.name.clone();
    let mut attrs = vec![KeyValue::new("level", level)];
    for rec in fields {
        let Rec::Field(field, slot) = rec else { continue };
        match (*field, slot) {
            ("message", Slot::Text(t)) => name = Cow::Owned(batch.str(*t).to_owned()),
            _ => attrs.push(KeyValue::new(*field, value(batch, *slot))),
        }
    }
    Event::new(name, at, attrs, 0)
}

/// `ax.sandbox.denied.<capability>`, in the characters attribute names use
/// (`bpf/perf` → `bpf_perf`).
fn denied_key(capability: &str) -> String {
    let name: String = capability.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    format!("ax.sandbox.denied.{name}")
}

fn call_span(
    call: &CallRec,
    plugin: &str,
    method: &str,
    generation: u64,
    shared: &Shared,
    scope: &InstrumentationScope,
) -> SpanData {
    let mut attributes = vec![
        KeyValue::new("ax.plugin", plugin.to_owned()),
        KeyValue::new("ax.method", method.to_owned()),
        KeyValue::new("ax.instance", call.instance as i64),
        KeyValue::new("ax.generation", generation as i64),
        KeyValue::new("ax.outcome", outcome(call.error())),
        KeyValue::new("ax.call", call.call as i64),
        KeyValue::new("ax.usage.wall_ns", call.wall as i64),
    ];
    let usage = [
        ("ax.usage.cpu_ns", call.cpu),
        ("ax.usage.allocated_bytes", call.allocated),
        ("ax.usage.peak_bytes", call.peak),
    ];
    for (name, figure) in usage {
        if let Some(figure) = CallRec::usage(figure) {
            attributes.push(KeyValue::new(name, figure as i64));
        }
    }
    for (capability, count) in call.rare.iter().flat_map(|r| r.denied.iter()) {
        attributes.push(KeyValue::new(denied_key(capability), count as i64));
    }
    let start = shared.time(call.start);
    let end = start + shared.between(call.start, call.end);
    let mut events = SpanEvents::default();
    let status = match call.error() {
        None => Status::Ok,
        Some(error) => {
            if let CallError::BudgetExceeded { violations, .. } = error {
                for v in violations {
                    let attributes = vec![
                        KeyValue::new("ax.budget", v.kind.to_string()),
                        KeyValue::new("ax.budget.limit", v.limit as i64),
                        KeyValue::new("ax.budget.observed", v.observed as i64),
                        KeyValue::new("ax.budget.noticed_after_ns", v.noticed_after.as_nanos() as i64),
                    ];
                    let at = start + v.noticed_after;
                    events.events.push(Event::new("ax.budget_violation", at, attributes, 0));
                }
            }
            if let CallError::Plugin { failure: PluginFailure::Panic { message, location }, .. } = error {
                let mut attributes =
                    vec![KeyValue::new("exception.type", "panic"), KeyValue::new("exception.message", message.clone())];
                if let Some(at) = location {
                    attributes.push(KeyValue::new("code.filepath", at.file.clone()));
                    attributes.push(KeyValue::new("code.lineno", i64::from(at.line)));
                }
                events.events.push(Event::new("exception", end, attributes, 0));
            }
            Status::error(error.to_string())
        }
    };
    SpanData {
        span_context: context(call.ids),
        parent_span_id: call.parent,
        parent_span_is_remote: call.parent_remote,
        span_kind: SpanKind::Server,
        name: format!("{plugin}.{method}").into(),
        start_time: start,
        end_time: end,
        attributes,
        dropped_attributes_count: 0,
        events,
        links: SpanLinks::default(),
        status,
        instrumentation_scope: scope.clone(),
    }
}

fn plugin_span(live: LiveSpan, end: SystemTime, scope: &InstrumentationScope) -> SpanData {
    let mut attributes = live.site.attributes.clone();
    for (name, value) in live.fields {
        // A field recorded again replaces its earlier value.
        match attributes.iter_mut().find(|kv| kv.key.as_str() == name) {
            Some(kv) => *kv = KeyValue::new(name, value),
            None => attributes.push(KeyValue::new(name, value)),
        }
    }
    let mut events = SpanEvents::default();
    events.events = live.events;
    SpanData {
        span_context: context(live.ids),
        parent_span_id: live.parent,
        parent_span_is_remote: false,
        span_kind: SpanKind::Internal,
        name: live.site.name.clone(),
        start_time: live.start,
        end_time: end,
        attributes,
        dropped_attributes_count: 0,
        events,
        links: SpanLinks::default(),
        status: Status::Unset,
        instrumentation_scope: scope.clone(),
    }
}

/// A reload as a span ending now, `took` long; with `error`, its status.
pub(crate) fn reload_span(
    processor: &BatchSpanProcessor,
    health: &Health,
    name: String,
    took: Duration,
    attributes: Vec<KeyValue>,
    error: Option<String>,
) {
    let ids = RandomIdGenerator::default();
    let end = SystemTime::now();
    let span = SpanData {
        span_context: context(Ids::new(ids.new_trace_id(), ids.new_span_id(), true)),
        parent_span_id: SpanId::INVALID,
        parent_span_is_remote: false,
        span_kind: SpanKind::Internal,
        name: name.into(),
        start_time: end.checked_sub(took).unwrap_or(end),
        end_time: end,
        attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: match error {
            Some(error) => Status::error(error),
            None => Status::Ok,
        },
        instrumentation_scope: InstrumentationScope::builder("ax").build(),
    };
    hand(processor, health, span);
}

/// Hands `span` to the batch span processor, and counts it
/// ([`Health::handed_spans`](crate::export::Health)).
fn hand(processor: &BatchSpanProcessor, health: &Health, span: SpanData) {
    health.handed_spans.fetch_add(1, Ordering::Relaxed);
    processor.on_end(span);
}

/// Asks the `ax-otel` thread to convert what is buffered and stop; waits at
/// most `timeout`. Returns whether it finished.
pub(crate) fn stop(stop: &Sender<Sender<()>>, shared: &Shared, timeout: Duration) -> bool {
    let (done, finished) = crossbeam_channel::bounded(1);
    if stop.send(done).is_err() {
        return false;
    }
    if let Some(converter) = shared.converter.get() {
        converter.unpark();
    }
    finished.recv_timeout(timeout).is_ok()
}

impl Health {
    fn queue_full(&self) {
        if self.queue_dropped.fetch_add(1, Ordering::Relaxed) == 0 {
            tracing::warn!(
                target: "ax::telemetry",
                "a thread's telemetry buffer is full ({BUFFER} records): the exporter cannot keep up; calls go on, records \
                 that do not fit are dropped and counted (this warning is not repeated)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::TraceContextExt;
    use opentelemetry_sdk::trace::{Sampler as SdkSampler, SamplingDecision, ShouldSample};

    use super::*;

    fn remote(sampled: bool) -> SpanContext {
        let flags = if sampled { TraceFlags::SAMPLED } else { TraceFlags::default() };
        SpanContext::new(TraceId::from(7u128 << 64 | 3), SpanId::from(9u64), flags, true, TraceState::default())
    }

    #[test]
    fn timestamps_before_and_after_the_counter_is_calibrated_are_on_one_timeline() {
        let shared = OtelTracer::new(Sampler::Ratio(1.0), Level::Info, Arc::default()).shared;
        // Whatever the clock (another test may have calibrated the counter),
        // and one read from the monotonic clock as before calibration.
        let first = shared.now();
        let monotonic = MONOTONIC | shared.anchor.0.elapsed().as_nanos() as u64;
        std::thread::sleep(Duration::from_millis(20));
        clock::calibrate();
        let counter = shared.now();
        assert_eq!(counter & MONOTONIC, 0, "a calibrated counter stamps");
        for before in [first, monotonic] {
            let between = shared.between(before, counter);
            assert!(between >= Duration::from_millis(20) && between < Duration::from_secs(5), "{between:?}");
            assert_eq!(shared.time(counter).duration_since(shared.time(before)).unwrap(), between);
        }
        std::thread::sleep(Duration::from_millis(5));
        let later = shared.now();
        assert!(shared.between(counter, later) >= Duration::from_millis(5));
        assert!(shared.time(first) >= shared.anchor.1);
    }

    #[test]
    fn ratios_decide_as_the_sdk_does() {
        let ids = RandomIdGenerator::default();
        for ratio in [0.0, 0.001, 0.25, 0.5, 0.9, 1.0] {
            let sdk = SdkSampler::TraceIdRatioBased(ratio);
            let mut kept = 0;
            for _ in 0..4000 {
                let trace = ids.new_trace_id();
                let theirs = sdk.should_sample(None, trace, "m", &SpanKind::Server, &[], &[]).decision;
                let ours = ratio >= 1.0 || (ratio > 0.0 && keeps(ratio, trace));
                assert_eq!(ours, theirs == SamplingDecision::RecordAndSample, "ratio {ratio}, trace {trace}");
                kept += usize::from(ours);
            }
            let share = kept as f64 / 4000.0;
            assert!((share - ratio).abs() < 0.05, "ratio {ratio} kept {share}");
        }
    }

    #[test]
    fn a_parent_decides_for_parent_based_samplers_only() {
        let ids = RandomIdGenerator::default();
        let none = SpanContext::empty_context();
        for parent in [remote(true), remote(false)] {
            for ratio in [0.0, 1.0] {
                let (trace, sampled) = Sampler::ParentBased(ratio).sample(&parent, &ids);
                assert_eq!((trace, sampled), (parent.trace_id(), parent.is_sampled()), "parent-based {ratio}");
                assert_eq!(Sampler::Ratio(ratio).sample(&parent, &ids).1, ratio == 1.0, "ratio {ratio}");
            }
        }
        // A sampled root gets a trace of its own; a root turned down needs none.
        let (trace, sampled) = Sampler::ParentBased(1.0).sample(&none, &ids);
        assert!(sampled && trace != TraceId::INVALID && trace != remote(true).trace_id());
        assert_eq!(Sampler::ParentBased(0.0).sample(&none, &ids), (TraceId::INVALID, false));
        // As the SDK's parent-based sampler decides under an attached context.
        let cx = Context::new().with_remote_span_context(remote(false));
        let sdk = SdkSampler::ParentBased(Box::new(SdkSampler::AlwaysOn));
        let theirs = sdk.should_sample(Some(&cx), remote(false).trace_id(), "m", &SpanKind::Server, &[], &[]);
        assert_eq!(theirs.decision, SamplingDecision::Drop);
        assert!(!Sampler::ParentBased(1.0).sample(&remote(false), &ids).1);
    }
}
