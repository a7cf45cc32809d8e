//! [`OtelTracer`]: the runtime's [`CallTracer`] hook turned into OpenTelemetry
//! spans and call metrics.
//!
//! A call is a span `plugin.method` (kind server), started on the caller's
//! thread as a child of the caller's current context (a `traceparent` the CLI
//! attached, see [`crate::Telemetry::attach`]). On the plugin's thread the call's
//! context is kept in a thread-local between enter and exit, so the plugin's
//! root spans become its children; the plugin's nested spans find their parent
//! in the table of live spans (keyed by instance and span id). A span's fields
//! are its attributes; events (log lines that passed `AX_LOG`) are span events.
//! Nothing here blocks: ending a span hands it to the batch processor's queue.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Instant;

use ax_runtime::{
    CallEnd, CallError, CallStart, CallTrace, CallTracer, CallsiteInfo, InstanceId, PluginFailure, SpanStart,
};
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue, Value as OtelValue};
use parking_lot::Mutex;
use serde_json::Value;

use crate::metrics::Instruments;

thread_local! {
    /// The context of the call running on this (plugin) thread.
    static CALL: RefCell<Option<Context>> = const { RefCell::new(None) };
}

/// One call in flight.
struct Call {
    cx: Context,
    started: Instant,
}

pub(crate) struct OtelTracer {
    tracer: opentelemetry_sdk::trace::SdkTracer,
    pub(crate) instruments: Instruments,
    /// Live plugin spans: (instance, span id) → the span's context.
    spans: Mutex<HashMap<(InstanceId, u64), Context>>,
    /// The generation each instance serves as (1 unless it came from a reload).
    pub(crate) generations: Mutex<HashMap<InstanceId, u64>>,
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

fn attributes<'a>(fields: &'a [(&'static str, Value)]) -> impl Iterator<Item = KeyValue> + 'a {
    fields.iter().map(|(name, value)| KeyValue::new(*name, attribute(value)))
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

impl OtelTracer {
    pub(crate) fn new(tracer: opentelemetry_sdk::trace::SdkTracer, instruments: Instruments) -> OtelTracer {
        OtelTracer { tracer, instruments, spans: Mutex::new(HashMap::new()), generations: Mutex::new(HashMap::new()) }
    }

    fn generation(&self, instance: InstanceId) -> u64 {
        self.generations.lock().get(&instance).copied().unwrap_or(1)
    }

    /// The context a new span or event of `instance` belongs to.
    fn parent(&self, instance: InstanceId, parent: Option<u64>) -> Context {
        if let Some(cx) = parent.and_then(|p| self.spans.lock().get(&(instance, p)).cloned()) {
            return cx;
        }
        CALL.try_with(|c| c.borrow().clone()).ok().flatten().unwrap_or_default()
    }
}

impl CallTracer for OtelTracer {
    fn begin_call(&self, call: &CallStart<'_>) -> CallTrace {
        let parent = Context::current();
        let span = self
            .tracer
            .span_builder(format!("{}.{}", call.plugin, call.method))
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("ax.plugin", call.plugin.to_owned()),
                KeyValue::new("ax.method", call.method.to_owned()),
                KeyValue::new("ax.instance", call.instance as i64),
                KeyValue::new("ax.generation", self.generation(call.instance) as i64),
                KeyValue::new("ax.call", call.call as i64),
            ])
            .start_with_context(&self.tracer, &parent);
        CallTrace(Box::new(Call { cx: parent.with_span(span), started: Instant::now() }))
    }

    fn enter_call(&self, trace: &CallTrace) {
        if let Some(call) = trace.0.downcast_ref::<Call>() {
            let _ = CALL.try_with(|c| *c.borrow_mut() = Some(call.cx.clone()));
        }
    }

    fn exit_call(&self, _trace: &CallTrace) {
        let _ = CALL.try_with(|c| c.borrow_mut().take());
    }

    fn end_call(&self, trace: CallTrace, end: &CallEnd<'_>) {
        let Ok(call) = trace.0.downcast::<Call>() else { return };
        let elapsed = call.started.elapsed();
        let outcome = outcome(end.error);
        let span = call.cx.span();
        if span.is_recording() {
            let usage = end.usage;
            let mut attrs = vec![
                KeyValue::new("ax.outcome", outcome),
                KeyValue::new("ax.usage.wall_ns", usage.wall.as_nanos() as i64),
            ];
            if let Some(cpu) = usage.cpu {
                attrs.push(KeyValue::new("ax.usage.cpu_ns", cpu.as_nanos() as i64));
            }
            if let Some(bytes) = usage.allocated {
                attrs.push(KeyValue::new("ax.usage.allocated_bytes", bytes as i64));
            }
            if let Some(bytes) = usage.peak {
                attrs.push(KeyValue::new("ax.usage.peak_bytes", bytes as i64));
            }
            span.set_attributes(attrs);
            match end.error {
                None => span.set_status(Status::Ok),
                Some(error) => {
                    if let CallError::BudgetExceeded { violations, .. } = error {
                        for v in violations {
                            span.add_event(
                                "ax.budget_violation",
                                vec![
                                    KeyValue::new("ax.budget", v.kind.to_string()),
                                    KeyValue::new("ax.budget.limit", v.limit as i64),
                                    KeyValue::new("ax.budget.observed", v.observed as i64),
                                    KeyValue::new("ax.budget.noticed_after_ns", v.noticed_after.as_nanos() as i64),
                                ],
                            );
                        }
                    }
                    if let CallError::Plugin { failure: PluginFailure::Panic { message, location }, .. } = error {
                        let mut attrs = vec![
                            KeyValue::new("exception.type", "panic"),
                            KeyValue::new("exception.message", message.clone()),
                        ];
                        if let Some(at) = location {
                            attrs.push(KeyValue::new("code.filepath", at.file.clone()));
                            attrs.push(KeyValue::new("code.lineno", i64::from(at.line)));
                        }
                        span.add_event("exception", attrs);
                    }
                    span.set_status(Status::error(error.to_string()));
                }
            }
        }
        span.end();
        self.instruments.call(end.plugin, end.method, outcome, elapsed, end.error.is_some());
    }

    fn span_new(&self, start: &SpanStart<'_>) {
        // Outside any call (a thread the plugin spawned), a root span: its own trace.
        let parent = self.parent(start.instance, start.parent);
        let info: &CallsiteInfo = start.callsite;
        let mut attrs: Vec<KeyValue> = vec![
            KeyValue::new("code.namespace", info.target.clone()),
            KeyValue::new("code.filepath", info.file.clone()),
            KeyValue::new("code.lineno", i64::from(info.line)),
        ];
        attrs.extend(attributes(start.fields));
        let span = self
            .tracer
            .span_builder(info.name.clone())
            .with_kind(SpanKind::Internal)
            .with_attributes(attrs)
            .start_with_context(&self.tracer, &parent);
        self.spans.lock().insert((start.instance, start.span), parent.with_span(span));
    }

    fn span_record(&self, instance: InstanceId, span: u64, fields: &[(&'static str, Value)]) {
        if let Some(cx) = self.spans.lock().get(&(instance, span)) {
            cx.span().set_attributes(attributes(fields));
        }
    }

    fn span_close(&self, instance: InstanceId, span: u64) {
        let cx = self.spans.lock().remove(&(instance, span));
        if let Some(cx) = cx {
            cx.span().end();
        }
    }

    fn event(
        &self,
        instance: InstanceId,
        parent: Option<u64>,
        callsite: &CallsiteInfo,
        fields: &[(&'static str, Value)],
    ) {
        let cx = self.parent(instance, parent);
        let span = cx.span();
        if !span.is_recording() {
            return;
        }
        let mut name = callsite.name.clone();
        let mut attrs = vec![KeyValue::new("level", callsite.level.as_str())];
        for (field, value) in fields {
            match (*field, value) {
                ("message", Value::String(message)) => name = message.clone(),
                _ => attrs.push(KeyValue::new(*field, attribute(value))),
            }
        }
        span.add_event(name, attrs);
    }
}
