//! The hook a tracing back end (OpenTelemetry export, `ax-telemetry`) plugs
//! into: [`CallTracer`], handed to the runtime in [`Instrumentation::tracer`].
//!
//! The runtime knows no tracing back end. With a tracer set, each call is
//! announced on the caller's thread before it is queued ([`CallTracer::begin_call`],
//! which may read the caller's trace context) and closed there once answered
//! ([`CallTracer::end_call`], with the outcome and what the call used); on the
//! plugin's worker thread the call is entered and left around the plugin code,
//! and the plugin's forwarded spans (their fields included) and events arrive
//! in between, each with its parent span. With no tracer, the bridge and the
//! call path pay one relaxed load and a branch each.
//!
//! Fields are handed over as the plugin sent them, borrowed ([`Fields`]): the
//! runtime neither allocates nor converts them for a tracer, so a tracer that
//! only copies them into a buffer of its own (as `ax-telemetry` does, to build
//! its spans on another thread) pays for nothing else.
//!
//! [`Instrumentation::tracer`]: crate::Instrumentation::tracer

use std::any::Any;
use std::sync::Arc;

use ax_abi::{FieldValue, value_kind};

use crate::bridge::CallsiteInfo;
use crate::budget::Usage;
use crate::error::CallError;
use crate::events::{InstanceId, Level};

/// A call as the tracer sees it begin.
#[derive(Clone, Copy, Debug)]
pub struct CallStart<'a> {
    pub plugin: &'a str,
    pub method: &'a str,
    pub instance: InstanceId,
    /// The call's number within its instance.
    pub call: u64,
}

/// A call as the tracer sees it end.
#[derive(Clone, Copy, Debug)]
pub struct CallEnd<'a> {
    pub plugin: &'a str,
    pub method: &'a str,
    pub instance: InstanceId,
    pub usage: &'a Usage,
    /// `None` when the call succeeded.
    pub error: Option<&'a CallError>,
}

/// A plugin span being created.
#[derive(Debug)]
pub struct SpanStart<'a> {
    pub instance: InstanceId,
    /// The span's id within its image (unique while it lives).
    pub span: u64,
    /// The span it is a child of: its explicit parent, else the span the
    /// thread is in. `None` for a root span of the plugin (the call is then
    /// its parent).
    pub parent: Option<u64>,
    /// Lives as long as the process (keep the reference, no need to clone).
    pub callsite: &'static CallsiteInfo,
    /// The fields given at creation, borrowed for the duration of the hook.
    pub fields: Fields<'a>,
}

/// The fields of a span or event as the plugin sent them, valid for the
/// duration of the hook they are passed to: copy what you keep.
#[derive(Clone, Copy)]
pub struct Fields<'a>(&'a [FieldValue]);

/// One field's value, borrowed from the plugin's call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FieldRef<'a> {
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
    /// A string, or the text form of a value (its `Debug` rendering or its
    /// JSON); `<invalid utf-8>` when the plugin sent bytes that are not UTF-8.
    Text(&'a str),
}

impl<'a> Fields<'a> {
    /// Fields from the plugin's array.
    ///
    /// # Safety
    /// Each field's name must be a `'static` string of a plugin image that is
    /// never unmapped, and its text valid for `'a`.
    pub(crate) unsafe fn new(fields: &'a [FieldValue]) -> Fields<'a> {
        Fields(fields)
    }

    /// No fields.
    pub const EMPTY: Fields<'static> = Fields(&[]);

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `(name, value)` in the order the plugin gave them.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&'static str, FieldRef<'a>)> + 'a {
        self.0.iter().map(|f| {
            // SAFETY: promised by `Fields::new`.
            let name = unsafe { f.name.as_str::<'static>() }.unwrap_or("?");
            let value = match f.kind {
                value_kind::I64 => FieldRef::I64(f.num as i64),
                value_kind::U64 => FieldRef::U64(f.num),
                value_kind::F64 => FieldRef::F64(f64::from_bits(f.num)),
                value_kind::BOOL => FieldRef::Bool(f.num != 0),
                // SAFETY: promised by `Fields::new`.
                _ => FieldRef::Text(unsafe { f.text.as_str::<'a>() }.unwrap_or("<invalid utf-8>")),
            };
            (name, value)
        })
    }
}

impl std::fmt::Debug for Fields<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Whatever a tracer keeps for one call between [`CallTracer::begin_call`]
/// and [`CallTracer::end_call`] (an OpenTelemetry span, say; a zero-sized
/// state is not allocated).
pub struct CallTrace(pub Box<dyn Any + Send>);

impl std::fmt::Debug for CallTrace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallTrace")
    }
}

/// Receives calls and the plugin's spans and events, to trace them.
///
/// Methods run inside calls: they must not block (hand data to a background
/// exporter). Span and event methods run on the plugin's thread, between
/// [`CallTracer::enter_call`] and [`CallTracer::exit_call`] for spans made
/// during a call, or on a thread the plugin spawned.
pub trait CallTracer: Send + Sync {
    /// On the caller's thread, before the call is queued.
    fn begin_call(&self, call: &CallStart<'_>) -> CallTrace;
    /// On the plugin's thread, just before the plugin code runs. Returns
    /// whether the call's spans and events are wanted (a call sampled out
    /// returns false, and its spans cost the bridge nothing more).
    fn enter_call(&self, trace: &CallTrace) -> bool;
    /// On the plugin's thread, just after the plugin code returned.
    fn exit_call(&self, trace: &CallTrace);
    /// On the caller's thread, with the outcome.
    fn end_call(&self, trace: CallTrace, end: &CallEnd<'_>);
    /// The most detailed level of plugin spans wanted; those below it are not
    /// forwarded to the tracer (nor by the plugin, if nothing else in the host
    /// wants them). Events are filtered by the log filter, not by this.
    fn max_level(&self) -> Level {
        Level::Trace
    }
    /// A plugin span was created.
    fn span_new(&self, span: SpanStart<'_>);
    /// Fields were recorded on a live span.
    fn span_record(&self, instance: InstanceId, span: u64, fields: Fields<'_>);
    /// The last handle of a span was dropped.
    fn span_close(&self, instance: InstanceId, span: u64);
    /// A plugin event (that passed the log filter) inside span `parent`, or
    /// outside any span of the plugin.
    fn event(&self, instance: InstanceId, parent: Option<u64>, callsite: &'static CallsiteInfo, fields: Fields<'_>);
}

/// A shared [`CallTracer`], as [`Instrumentation`](crate::Instrumentation) holds it.
#[derive(Clone)]
pub struct Tracer(pub Arc<dyn CallTracer>);

impl std::fmt::Debug for Tracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tracer")
    }
}
