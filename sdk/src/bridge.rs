//! The plugin side of the tracing bridge.
//!
//! A plugin image has its own copy of `tracing-core`, hence its own global
//! dispatcher. [`install`] sets it to [`HostSubscriber`], which forwards every
//! span and event to the host through the [`HostVTable`]. Which callsites are
//! forwarded at all is the host's decision, taken once per callsite
//! (`register_callsite` → `Interest`) and cached by `tracing` until the host asks
//! for a rebuild: a callsite the host does not want costs what a disabled
//! `tracing` callsite costs.
//!
//! Field values are flattened into [`FieldValue`]s: on the stack when they are
//! a few numbers and flags (most `#[instrument]` spans), else in a thread-local
//! buffer, so forwarding allocates nothing once the buffer has grown.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::mem::MaybeUninit;
use std::sync::OnceLock;

use ax_abi::{
    ABI_VERSION, AxStr, CallsiteMeta, FieldValue, HostVTable, StaticStr, interest, level, parent, value_kind,
};
use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Current, Id, Record};
use tracing_core::{Dispatch, Event, Interest, Level, Metadata, Subscriber};

use crate::PluginError;

static HOST: OnceLock<&'static HostVTable> = OnceLock::new();

/// The host vtable, once a plugin instance has been created in this image.
pub(crate) fn host() -> Option<&'static HostVTable> {
    HOST.get().copied()
}

/// Connects this plugin image to `host`: checks its ABI and installs the
/// forwarding subscriber as the image's global dispatcher. Idempotent.
pub(crate) fn install(host: &'static HostVTable) -> Result<(), PluginError> {
    if host.abi_version != ABI_VERSION || host.struct_size as usize != size_of::<HostVTable>() {
        return Err(PluginError::failed(format!(
            "host ABI version {} (vtable {} bytes), this plugin expects version {ABI_VERSION} ({} bytes)",
            host.abi_version,
            host.struct_size,
            size_of::<HostVTable>()
        )));
    }
    let installed = *HOST.get_or_init(|| host);
    if !std::ptr::eq(installed, host) {
        return Err(PluginError::failed("this plugin library is already connected to another host"));
    }
    // Fails only if already set, by an earlier instance of this image: fine.
    let _ = tracing::dispatcher::set_global_default(Dispatch::new(HostSubscriber { host }));
    // The callsites hit before installation cached "never"; ask again.
    tracing_core::callsite::rebuild_interest_cache();
    Ok(())
}

/// Unwinds the current call if the host asked for it (its budget was exceeded:
/// the abort word is set and the host says this thread's call is the one).
/// Only inside a call guarded by the SDK, and never while already unwinding (a
/// second panic would abort the process).
pub(crate) fn check_abort(host: &HostVTable) {
    // SAFETY: the host's abort word lives as long as its vtable.
    let requested = unsafe { host.abort.as_ref() }.is_some_and(|a| a.load(std::sync::atomic::Ordering::Relaxed) != 0);
    // SAFETY: ctx from the host, valid for the process; asked only while set.
    if requested && crate::shim::in_call() && !std::thread::panicking() && unsafe { (host.abort_call)(host.ctx) } {
        std::panic::resume_unwind(Box::new(crate::shim::BudgetAbort));
    }
}

/// A `tracing` subscriber that forwards everything to the host.
struct HostSubscriber {
    host: &'static HostVTable,
}

fn level_code(level: &Level) -> u8 {
    match *level {
        Level::ERROR => level::ERROR,
        Level::WARN => level::WARN,
        Level::INFO => level::INFO,
        Level::DEBUG => level::DEBUG,
        Level::TRACE => level::TRACE,
    }
}

fn callsite_id(meta: &Metadata<'_>) -> usize {
    meta as *const Metadata<'_> as usize
}

fn parent_of(is_root: bool, parent: Option<&Id>) -> (u8, u64) {
    match (is_root, parent) {
        (true, _) => (parent::ROOT, 0),
        (false, Some(id)) => (parent::EXPLICIT, id.into_u64()),
        (false, None) => (parent::CONTEXTUAL, 0),
    }
}

impl Subscriber for HostSubscriber {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        let names: Vec<StaticStr> = meta.fields().iter().map(|f| StaticStr::new(f.name())).collect();
        let desc = CallsiteMeta {
            id: callsite_id(meta),
            kind: if meta.is_span() { 0 } else { 1 },
            level: level_code(meta.level()),
            line: meta.line().unwrap_or(0),
            name: StaticStr::new(meta.name()),
            target: StaticStr::new(meta.target()),
            module_path: StaticStr::new(meta.module_path().unwrap_or("")),
            file: StaticStr::new(meta.file().unwrap_or("")),
            field_names: names.as_ptr(),
            field_count: names.len(),
        };
        // SAFETY: the host vtable lives for the process; desc is valid for the call.
        match unsafe { (self.host.register_callsite)(self.host.ctx, &desc) } {
            interest::NEVER => Interest::never(),
            interest::ALWAYS => Interest::always(),
            _ => Interest::sometimes(),
        }
    }

    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        // Asked only for callsites the host made `SOMETIMES` (spans only its
        // tracer wants, whose answer is whether it traces the running call)
        // and while another thread registers a callsite. The host answers
        // `CALL_SPANS` from its own thread-locals, which cost less than one of
        // this library's (a call to `__tls_get_addr` in a cdylib).
        let callsite = if meta.is_span() { interest::CALL_SPANS } else { callsite_id(meta) };
        // SAFETY: as above.
        unsafe { (self.host.enabled)(self.host.ctx, callsite) }
    }

    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let (parent_kind, parent) = parent_of(attrs.is_root(), attrs.parent());
        let id = with_fields(
            |v| attrs.record(v),
            |fields| {
                // SAFETY: fields are valid for the call.
                unsafe {
                    (self.host.span_new)(
                        self.host.ctx,
                        callsite_id(attrs.metadata()),
                        parent_kind,
                        parent,
                        fields.as_ptr(),
                        fields.len(),
                    )
                }
            },
        );
        check_abort(self.host);
        // The host never returns 0; guard anyway, as Id::from_u64 panics on 0.
        Id::from_u64(id.max(1))
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        with_fields(
            |v| values.record(v),
            // SAFETY: fields are valid for the call.
            |fields| unsafe { (self.host.span_record)(self.host.ctx, span.into_u64(), fields.as_ptr(), fields.len()) },
        );
    }

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let (parent_kind, parent) = parent_of(event.is_root(), event.parent());
        with_fields(
            |v| event.record(v),
            |fields| {
                // SAFETY: fields are valid for the call.
                unsafe {
                    (self.host.event)(
                        self.host.ctx,
                        callsite_id(event.metadata()),
                        parent_kind,
                        parent,
                        fields.as_ptr(),
                        fields.len(),
                    )
                }
            },
        );
        check_abort(self.host);
    }

    fn enter(&self, span: &Id) {
        // SAFETY: plain call through the host vtable.
        unsafe { (self.host.span_enter)(self.host.ctx, span.into_u64()) };
        check_abort(self.host);
    }

    fn exit(&self, span: &Id) {
        // SAFETY: as above.
        unsafe { (self.host.span_exit)(self.host.ctx, span.into_u64()) }
    }

    fn clone_span(&self, id: &Id) -> Id {
        // SAFETY: as above.
        unsafe { (self.host.span_clone)(self.host.ctx, id.into_u64()) };
        id.clone()
    }

    fn try_close(&self, id: Id) -> bool {
        // SAFETY: as above.
        unsafe { (self.host.span_close)(self.host.ctx, id.into_u64()) }
    }

    fn current_span(&self) -> Current {
        let mut callsite = 0usize;
        // SAFETY: as above; callsite is a valid slot.
        let id = unsafe { (self.host.current_span)(self.host.ctx, &mut callsite) };
        if id == 0 || callsite == 0 {
            return Current::none();
        }
        // SAFETY: the host returns the callsite id this image gave it, which is the
        // address of a `&'static Metadata` in this image.
        let meta: &'static Metadata<'static> = unsafe { &*(callsite as *const Metadata<'static>) };
        Current::new(Id::from_u64(id), meta)
    }
}

/// `Visit`'s methods for numbers and flags, as `self.push(field, kind, bits)`.
macro_rules! numbers {
    () => {
        fn record_i64(&mut self, field: &Field, value: i64) {
            self.push(field, value_kind::I64, value as u64);
        }
        fn record_u64(&mut self, field: &Field, value: u64) {
            self.push(field, value_kind::U64, value);
        }
        fn record_f64(&mut self, field: &Field, value: f64) {
            self.push(field, value_kind::F64, value.to_bits());
        }
        fn record_bool(&mut self, field: &Field, value: bool) {
            self.push(field, value_kind::BOOL, value as u64);
        }
    };
}

/// A field recorded into [`FieldBuf`]; text fields point into `FieldBuf::text`
/// by range, turned into pointers once the text can no longer move.
struct Entry {
    name: &'static str,
    kind: u8,
    num: u64,
    text: (usize, usize),
}

#[derive(Default)]
struct FieldBuf {
    entries: Vec<Entry>,
    text: String,
    out: Vec<FieldValue>,
}

impl FieldBuf {
    fn push(&mut self, field: &Field, kind: u8, num: u64) {
        self.entries.push(Entry { name: field.name(), kind, num, text: (0, 0) });
    }

    fn push_text(&mut self, field: &Field, kind: u8, write: impl FnOnce(&mut String)) {
        let start = self.text.len();
        write(&mut self.text);
        self.entries.push(Entry { name: field.name(), kind, num: 0, text: (start, self.text.len()) });
    }
}

impl Visit for FieldBuf {
    numbers!();
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push_text(field, value_kind::STR, |t| t.push_str(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push_text(field, value_kind::DEBUG, |t| {
            let _ = write!(t, "{value:?}");
        });
    }
}

thread_local! {
    static FIELD_BUF: RefCell<FieldBuf> = RefCell::new(FieldBuf::default());
}

/// Fields of at most [`Inline::MAX`] numbers and flags, recorded on the stack:
/// no thread-local (in a cdylib, reading one is a call to `__tls_get_addr`).
///
/// Its slots are left uninitialised until written: filling all of them first
/// copied 384 bytes per span, for spans that mostly have one field or none.
struct Inline {
    out: [MaybeUninit<FieldValue>; Inline::MAX],
    /// `out[..len]` are initialised.
    len: usize,
    /// A text field, or more than `MAX`: these fields need the [`FieldBuf`].
    spilled: bool,
}

impl Inline {
    const MAX: usize = 8;

    fn new() -> Inline {
        Inline { out: [const { MaybeUninit::uninit() }; Inline::MAX], len: 0, spilled: false }
    }

    fn push(&mut self, field: &Field, kind: u8, num: u64) {
        match self.out.get_mut(self.len) {
            Some(slot) => {
                slot.write(FieldValue { name: AxStr::from_str(field.name()), kind, num, text: AxStr::from_str("") });
                self.len += 1;
            }
            None => self.spilled = true,
        }
    }

    fn fields(&self) -> &[FieldValue] {
        // SAFETY: `push` wrote `out[..len]`; `MaybeUninit<T>` has `T`'s layout.
        unsafe { std::slice::from_raw_parts(self.out.as_ptr().cast::<FieldValue>(), self.len) }
    }
}

impl Visit for Inline {
    numbers!();
    fn record_str(&mut self, _: &Field, _: &str) {
        self.spilled = true;
    }
    fn record_debug(&mut self, _: &Field, _: &dyn fmt::Debug) {
        self.spilled = true;
    }
}

/// Records fields with `record` and hands them to `send`: on the stack if
/// they fit [`Inline`], else (recorded again) in a reusable buffer.
fn with_fields<R>(record: impl Fn(&mut dyn Visit), send: impl FnOnce(&[FieldValue]) -> R) -> R {
    let mut inline = Inline::new();
    record(&mut inline);
    if !inline.spilled {
        return send(inline.fields());
    }
    with_field_buf(|buf| record(buf), send)
}

/// Records fields with `record` into a reusable buffer and hands them to `send`.
fn with_field_buf<R>(record: impl FnOnce(&mut FieldBuf), send: impl FnOnce(&[FieldValue]) -> R) -> R {
    fn run<R>(buf: &mut FieldBuf, record: impl FnOnce(&mut FieldBuf), send: impl FnOnce(&[FieldValue]) -> R) -> R {
        buf.entries.clear();
        buf.text.clear();
        buf.out.clear();
        record(buf);
        let FieldBuf { entries, text, out } = buf;
        out.extend(entries.iter().map(|e| FieldValue {
            name: AxStr::from_str(e.name),
            kind: e.kind,
            num: e.num,
            text: AxStr::from_str(&text[e.text.0..e.text.1]),
        }));
        send(out)
    }
    // A Debug impl that logs re-enters here: it gets a fresh buffer instead.
    let mut record = Some(record);
    let mut send = Some(send);
    let pooled = FIELD_BUF.try_with(|cell| {
        cell.try_borrow_mut().ok().map(|mut buf| run(&mut buf, record.take().unwrap(), send.take().unwrap()))
    });
    match pooled {
        Ok(Some(r)) => r,
        _ => run(&mut FieldBuf::default(), record.take().unwrap(), send.take().unwrap()),
    }
}
