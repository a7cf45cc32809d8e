//! [`OtelTracer`]: the runtime's [`CallTracer`] hook turned into OpenTelemetry
//! spans and call metrics, with as little as possible on the call's path.
//!
//! A call is a span `plugin.method` (kind server), a child of the caller's
//! current context (a `traceparent` the CLI attached, see
//! [`crate::Telemetry::attach`]); the sampler decides once, at the call. On the
//! plugin's thread the call's ids are kept in a thread-local between enter and
//! exit, so the plugin's root spans become its children; nested spans find
//! their parent in the table of live spans (keyed by instance and span id). A
//! span's fields are its attributes; events (log lines that passed `AX_LOG`)
//! are span events.
//!
//! **Invariant:** the hooks only take ids, clocks and the values the bridge
//! already collected, and hand a compact [`Record`] to a bounded queue
//! (`try_send`: a full queue drops the record and counts it, it never blocks).
//! The `ax-otel` thread turns records into `SpanData` for the batch span
//! processor and into metric points: attribute building, the SDK's
//! bookkeeping and the exporters all run off the call's thread.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use ax_runtime::{
    CallEnd, CallError, CallStart, CallTrace, CallTracer, CallsiteInfo, InstanceId, Level, PluginFailure, SpanStart,
    Usage,
};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use opentelemetry::trace::{
    Event, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Context, InstrumentationScope, KeyValue, StringValue, Value as OtelValue};
use opentelemetry_sdk::trace::{
    BatchSpanProcessor, IdGenerator, RandomIdGenerator, SamplingDecision, ShouldSample, SpanData, SpanEvents,
    SpanLinks, SpanProcessor,
};
use parking_lot::{Mutex, RwLock};
use serde_json::Value;

use crate::export::Health;
use crate::metrics::Instruments;

/// Records queued between the hooks and the `ax-otel` thread.
pub(crate) const QUEUE: usize = 16 * 1024;

/// The ids of a span, and whether it is sampled.
#[derive(Clone, Copy, Debug)]
struct Ids {
    trace: TraceId,
    span: SpanId,
    sampled: bool,
}

thread_local! {
    /// The call running on this (plugin) thread.
    static CALL: Cell<Option<Ids>> = const { Cell::new(None) };
}

/// One call in flight.
struct CallState {
    ids: Ids,
    parent: SpanId,
    parent_remote: bool,
    start: SystemTime,
    started: Instant,
    generation: u64,
    call: u64,
}

/// What every span of one callsite shares.
pub(crate) struct Site {
    name: Cow<'static, str>,
    attributes: Vec<KeyValue>,
}

pub(crate) struct LiveSpan {
    ids: Ids,
    parent: SpanId,
    site: Arc<Site>,
    start: SystemTime,
    fields: Vec<(&'static str, Value)>,
    events: Vec<EventRecord>,
}

pub(crate) struct EventRecord {
    at: SystemTime,
    level: &'static str,
    name: Option<String>,
    site: Arc<Site>,
    fields: Vec<(&'static str, Value)>,
}

pub(crate) struct CallRecord {
    ids: Ids,
    parent: SpanId,
    parent_remote: bool,
    plugin: String,
    method: String,
    instance: InstanceId,
    call: u64,
    generation: u64,
    start: SystemTime,
    elapsed: Duration,
    usage: Usage,
    outcome: &'static str,
    error: Option<CallError>,
}

/// What the hooks hand to the `ax-otel` thread.
pub(crate) enum Record {
    Call(Box<CallRecord>),
    Span(Box<LiveSpan>, SystemTime),
    /// Finished by the sender: everything before it is processed.
    Stop(Sender<()>),
}

pub(crate) struct OtelTracer {
    sampler: Box<dyn ShouldSample>,
    /// The most detailed plugin spans and events exported.
    level: Level,
    ids: RandomIdGenerator,
    queue: Sender<Record>,
    health: Arc<Health>,
    /// Live sampled plugin spans: (instance, span id) → the span so far.
    spans: Mutex<HashMap<(InstanceId, u64), Box<LiveSpan>, Fast>>,
    /// The generation each instance serves as (1 unless it came from a reload).
    pub(crate) generations: Mutex<HashMap<InstanceId, u64>>,
    /// Callsites seen: (instance, callsite id) → name and constant attributes.
    sites: RwLock<HashMap<(InstanceId, usize), Arc<Site>, Fast>>,
}

/// A hasher for the tables above, keyed by pairs of small integers the
/// runtime hands out (not by anything a user controls): one multiply per word
/// instead of SipHash's rounds.
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

/// A JSON field value as an attribute value.
fn attribute(value: &Value) -> OtelValue {
    match value {
        Value::Bool(b) => OtelValue::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => OtelValue::I64(i),
            (None, Some(f)) if n.is_f64() => OtelValue::F64(f),
            // A u64 beyond i64: exact as text.
            _ => OtelValue::String(n.to_string().into()),
        },
        Value::String(s) => OtelValue::String(s.clone().into()),
        other => OtelValue::String(other.to_string().into()),
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
    SpanContext::new(ids.trace, ids.span, flags, false, TraceState::default())
}

impl OtelTracer {
    pub(crate) fn new(
        sampler: Box<dyn ShouldSample>,
        level: Level,
        queue: Sender<Record>,
        health: Arc<Health>,
    ) -> OtelTracer {
        OtelTracer {
            sampler,
            level,
            ids: RandomIdGenerator::default(),
            queue,
            health,
            spans: Mutex::new(HashMap::default()),
            generations: Mutex::new(HashMap::new()),
            sites: RwLock::new(HashMap::default()),
        }
    }

    fn send(&self, record: Record) {
        match self.queue.try_send(record) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => self.health.queue_full(),
            // Shut down: nothing is exported any more.
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// The span name and constant attributes of a callsite, made once.
    fn site(&self, instance: InstanceId, info: &CallsiteInfo) -> Arc<Site> {
        if let Some(site) = self.sites.read().get(&(instance, info.id)) {
            return site.clone();
        }
        let text = |s: &str| OtelValue::String(StringValue::from(Arc::<str>::from(s)));
        let site = Arc::new(Site {
            name: Cow::Owned(info.name.clone()),
            attributes: vec![
                KeyValue::new("code.namespace", text(&info.target)),
                KeyValue::new("code.filepath", text(&info.file)),
                KeyValue::new("code.lineno", i64::from(info.line)),
            ],
        });
        self.sites.write().insert((instance, info.id), site.clone());
        site
    }

    fn generation(&self, instance: InstanceId) -> u64 {
        self.generations.lock().get(&instance).copied().unwrap_or(1)
    }
}

impl CallTracer for OtelTracer {
    fn begin_call(&self, call: &CallStart<'_>) -> CallTrace {
        let cx = Context::current();
        let parent = cx.span().span_context().clone();
        let trace = if parent.is_valid() { parent.trace_id() } else { self.ids.new_trace_id() };
        let sampled = matches!(
            self.sampler.should_sample(Some(&cx), trace, call.method, &SpanKind::Server, &[], &[]).decision,
            SamplingDecision::RecordAndSample
        );
        CallTrace(Box::new(CallState {
            ids: Ids { trace, span: self.ids.new_span_id(), sampled },
            parent: if parent.is_valid() { parent.span_id() } else { SpanId::INVALID },
            parent_remote: parent.is_remote(),
            start: SystemTime::now(),
            started: Instant::now(),
            generation: self.generation(call.instance),
            call: call.call,
        }))
    }

    fn enter_call(&self, trace: &CallTrace) -> bool {
        let Some(call) = trace.0.downcast_ref::<CallState>() else { return false };
        let _ = CALL.try_with(|c| c.set(Some(call.ids)));
        call.ids.sampled
    }

    fn max_level(&self) -> Level {
        self.level
    }

    fn exit_call(&self, _trace: &CallTrace) {
        let _ = CALL.try_with(|c| c.set(None));
    }

    fn end_call(&self, trace: CallTrace, end: &CallEnd<'_>) {
        let Ok(call) = trace.0.downcast::<CallState>() else { return };
        let elapsed = call.started.elapsed();
        self.send(Record::Call(Box::new(CallRecord {
            ids: call.ids,
            parent: call.parent,
            parent_remote: call.parent_remote,
            plugin: end.plugin.to_owned(),
            method: end.method.to_owned(),
            instance: end.instance,
            call: call.call,
            generation: call.generation,
            start: call.start,
            elapsed,
            usage: *end.usage,
            outcome: outcome(end.error),
            error: end.error.cloned(),
        })));
    }

    fn span_new(&self, start: SpanStart<'_>) {
        let key = (start.instance, start.span);
        let mut spans = self.spans.lock();
        let parent = start
            .parent
            .and_then(|p| spans.get(&(start.instance, p)).map(|s| s.ids))
            .or_else(|| CALL.try_with(Cell::get).ok().flatten());
        let ids = match parent {
            // The call was sampled out: so are its spans, which cost no more
            // than this (their fields and close find nothing).
            Some(p) if !p.sampled => return,
            Some(p) => Ids { trace: p.trace, span: self.ids.new_span_id(), sampled: true },
            // Outside any call (a thread the plugin spawned): a trace of its
            // own, sampled as a call would be.
            None => {
                let trace = self.ids.new_trace_id();
                let name = &start.callsite.name;
                let decision = self.sampler.should_sample(None, trace, name, &SpanKind::Internal, &[], &[]).decision;
                if decision != SamplingDecision::RecordAndSample {
                    return;
                }
                Ids { trace, span: self.ids.new_span_id(), sampled: true }
            }
        };
        let live = Box::new(LiveSpan {
            ids,
            parent: parent.map_or(SpanId::INVALID, |p| p.span),
            site: self.site(start.instance, start.callsite),
            start: SystemTime::now(),
            fields: start.fields,
            events: Vec::new(),
        });
        spans.insert(key, live);
    }

    fn span_record(&self, instance: InstanceId, span: u64, fields: Vec<(&'static str, Value)>) {
        if let Some(live) = self.spans.lock().get_mut(&(instance, span)) {
            live.fields.extend(fields);
        }
    }

    fn span_close(&self, instance: InstanceId, span: u64) {
        let live = self.spans.lock().remove(&(instance, span));
        if let Some(live) = live {
            self.send(Record::Span(live, SystemTime::now()));
        }
    }

    fn event(
        &self,
        instance: InstanceId,
        parent: Option<u64>,
        callsite: &CallsiteInfo,
        fields: Vec<(&'static str, Value)>,
    ) {
        let Some(parent) = parent else { return };
        if !self.spans.lock().contains_key(&(instance, parent)) {
            return;
        }
        let record = EventRecord {
            at: SystemTime::now(),
            level: callsite.level.as_str(),
            name: None,
            site: self.site(instance, callsite),
            fields,
        };
        if let Some(live) = self.spans.lock().get_mut(&(instance, parent)) {
            live.events.push(record);
        }
    }
}

/// How long the `ax-otel` thread sleeps when the queue is empty: the first
/// time, then twice as long each time it is still empty, up to the last.
const POLL: (Duration, Duration) = (Duration::from_millis(1), Duration::from_millis(50));

/// The `ax-otel` thread: records in, span data and metric points out.
///
/// It polls rather than blocks: a sender that finds a receiver parked must
/// wake it (a system call, microseconds on a small VM) and that would be paid
/// by the call's threads, once per span. Polling backs off while idle (20
/// wake-ups a second at most) and delays export by at most `POLL.1`.
pub(crate) fn convert(
    records: &Receiver<Record>,
    processor: &BatchSpanProcessor,
    instruments: &Instruments,
    health: &Health,
) {
    let scope = InstrumentationScope::builder("ax").build();
    let mut nap = POLL.0;
    loop {
        let record = match records.try_recv() {
            Ok(record) => {
                nap = POLL.0;
                record
            }
            Err(crossbeam_channel::TryRecvError::Empty) => {
                std::thread::sleep(nap);
                nap = (nap * 2).min(POLL.1);
                continue;
            }
            Err(crossbeam_channel::TryRecvError::Disconnected) => return,
        };
        match record {
            Record::Call(call) => {
                instruments.call(&call.plugin, &call.method, call.outcome, call.elapsed, call.error.is_some());
                if call.ids.sampled {
                    health.handed_spans.fetch_add(1, Ordering::Relaxed);
                    processor.on_end(call_span(&call, &scope));
                }
            }
            Record::Span(live, end) => {
                health.handed_spans.fetch_add(1, Ordering::Relaxed);
                processor.on_end(plugin_span(*live, end, &scope));
            }
            Record::Stop(done) => {
                let _ = done.send(());
                return;
            }
        }
    }
}

fn call_span(call: &CallRecord, scope: &InstrumentationScope) -> SpanData {
    let usage = &call.usage;
    let mut attributes = vec![
        KeyValue::new("ax.plugin", call.plugin.clone()),
        KeyValue::new("ax.method", call.method.clone()),
        KeyValue::new("ax.instance", call.instance as i64),
        KeyValue::new("ax.generation", call.generation as i64),
        KeyValue::new("ax.outcome", call.outcome),
        KeyValue::new("ax.call", call.call as i64),
        KeyValue::new("ax.usage.wall_ns", usage.wall.as_nanos() as i64),
    ];
    if let Some(cpu) = usage.cpu {
        attributes.push(KeyValue::new("ax.usage.cpu_ns", cpu.as_nanos() as i64));
    }
    if let Some(bytes) = usage.allocated {
        attributes.push(KeyValue::new("ax.usage.allocated_bytes", bytes as i64));
    }
    if let Some(bytes) = usage.peak {
        attributes.push(KeyValue::new("ax.usage.peak_bytes", bytes as i64));
    }
    let end = call.start + call.elapsed;
    let mut events = SpanEvents::default();
    let status = match &call.error {
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
                    let at = call.start + v.noticed_after;
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
        name: format!("{}.{}", call.plugin, call.method).into(),
        start_time: call.start,
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
    for (name, value) in &live.fields {
        // A field recorded again replaces its earlier value.
        match attributes.iter_mut().find(|kv| kv.key.as_str() == *name) {
            Some(kv) => *kv = KeyValue::new(*name, attribute(value)),
            None => attributes.push(KeyValue::new(*name, attribute(value))),
        }
    }
    let mut events = SpanEvents::default();
    for event in live.events {
        let mut name = event.name.map_or_else(|| event.site.name.clone(), Cow::Owned);
        let mut attrs = vec![KeyValue::new("level", event.level)];
        for (field, value) in &event.fields {
            match (*field, value) {
                ("message", Value::String(message)) => name = Cow::Owned(message.clone()),
                _ => attrs.push(KeyValue::new(*field, attribute(value))),
            }
        }
        events.events.push(Event::new(name, event.at, attrs, 0));
    }
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
    health.handed_spans.fetch_add(1, Ordering::Relaxed);
    processor.on_end(SpanData {
        span_context: context(Ids { trace: ids.new_trace_id(), span: ids.new_span_id(), sampled: true }),
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
    });
}

/// Asks the `ax-otel` thread to finish what is queued; waits at most `timeout`.
/// Returns whether it finished.
pub(crate) fn stop(queue: &Sender<Record>, timeout: Duration) -> bool {
    let (done, finished) = crossbeam_channel::bounded(1);
    queue.send_timeout(Record::Stop(done), timeout).is_ok() && finished.recv_timeout(timeout).is_ok()
}

impl Health {
    fn queue_full(&self) {
        if self.queue_dropped.fetch_add(1, Ordering::Relaxed) == 0 {
            tracing::warn!(
                target: "ax::telemetry",
                "the telemetry queue is full ({QUEUE} records): the exporter cannot keep up; calls go on, records \
                 that do not fit are dropped and counted (this warning is not repeated)"
            );
        }
    }
}
