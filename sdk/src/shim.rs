//! The `extern "C"` functions behind [`crate::export_plugin!`] and
//! [`crate::export_concurrent_plugin!`].
//!
//! Every shim runs plugin code inside [`guard`]: `catch_unwind` plus a panic hook
//! (installed once per plugin image) that records the panic's message and
//! location in a thread-local instead of printing it. A panic thus becomes
//! [`Status::PANIC`] with `{"message", "file", "line", "column"}` JSON, and an
//! error returned by the plugin becomes [`Status::ERROR`] with
//! `{"kind", "message"}` JSON. Nothing unwinds across the boundary.
//!
//! The shims are generic over [`Exports`], which says how to reach the
//! instance: a [`Plugin`] through `&mut` (the host runs one export at a time),
//! a [`ConcurrentPlugin`] through `&` (the host may run calls in parallel and
//! says so by the `CONCURRENT` flag).

use std::cell::{Cell, RefCell};
use std::ffi::c_void;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;

use ax_abi::{ABI_VERSION, AxBytes, AxStr, Canary, HostVTable, PluginVTable, ProbeSite, StaticStr, Status, flags};
use serde::Serialize;
use serde_json::Value;

use crate::{ConcurrentPlugin, Plugin, PluginError, SDK_VERSION, State};

/// How the shims reach a plugin type's instance.
pub(crate) trait Exports: 'static {
    type Instance: Send + 'static;
    const METHODS: &'static [&'static str];
    const FLAGS: u32;
    fn init(config: Value) -> Result<Self::Instance, PluginError>;
    /// # Safety
    /// `instance` must come from `create` and not have been destroyed; the host
    /// upholds the exclusivity [`Exports::FLAGS`] asks for.
    unsafe fn call(instance: *mut c_void, method: &str, input: Value) -> Result<Value, PluginError>;
    /// # Safety
    /// As for [`Exports::call`]; the host runs no other export meanwhile.
    unsafe fn save_state(instance: *mut c_void) -> Result<State, PluginError>;
    /// # Safety
    /// As for [`Exports::save_state`].
    unsafe fn restore_state(instance: *mut c_void, state: State) -> Result<(), PluginError>;
    fn shutdown(instance: &mut Self::Instance) -> Result<(), PluginError>;
}

/// A [`Plugin`]: one export at a time, through `&mut`.
pub(crate) struct Serial<T>(PhantomData<T>);

/// A [`ConcurrentPlugin`]: calls in parallel, through `&`.
pub(crate) struct Concurrent<T>(PhantomData<T>);

/// # Safety
/// `instance` must come from `create` for `T` and not have been destroyed.
unsafe fn instance<'a, T>(instance: *mut c_void) -> Result<&'a mut T, PluginError> {
    // SAFETY: forwarded to the caller; the host serialises what needs it.
    unsafe { instance.cast::<T>().as_mut() }.ok_or_else(|| PluginError::failed("null plugin instance"))
}

/// # Safety
/// As for [`instance`]; only shared references exist while it is used.
unsafe fn shared<'a, T>(instance: *mut c_void) -> Result<&'a T, PluginError> {
    // SAFETY: forwarded to the caller.
    unsafe { instance.cast::<T>().as_ref() }.ok_or_else(|| PluginError::failed("null plugin instance"))
}

impl<T: Plugin> Exports for Serial<T> {
    type Instance = T;
    const METHODS: &'static [&'static str] = T::METHODS;
    const FLAGS: u32 = if T::DEDICATED_THREAD { flags::DEDICATED_THREAD } else { 0 };
    fn init(config: Value) -> Result<T, PluginError> {
        T::init(config)
    }
    unsafe fn call(ptr: *mut c_void, method: &str, input: Value) -> Result<Value, PluginError> {
        // SAFETY: without CONCURRENT the host runs one export at a time.
        unsafe { instance::<T>(ptr) }?.call(method, input)
    }
    unsafe fn save_state(ptr: *mut c_void) -> Result<State, PluginError> {
        // SAFETY: as in call.
        unsafe { instance::<T>(ptr) }?.save_state()
    }
    unsafe fn restore_state(ptr: *mut c_void, state: State) -> Result<(), PluginError> {
        // SAFETY: as in call.
        unsafe { instance::<T>(ptr) }?.restore_state(state)
    }
    fn shutdown(instance: &mut T) -> Result<(), PluginError> {
        instance.shutdown()
    }
}

impl<T: ConcurrentPlugin> Exports for Concurrent<T> {
    type Instance = T;
    const METHODS: &'static [&'static str] = T::METHODS;
    const FLAGS: u32 = flags::CONCURRENT;
    fn init(config: Value) -> Result<T, PluginError> {
        T::init(config)
    }
    unsafe fn call(ptr: *mut c_void, method: &str, input: Value) -> Result<Value, PluginError> {
        // SAFETY: calls only ever borrow the instance shared; T is Sync.
        unsafe { shared::<T>(ptr) }?.call(method, input)
    }
    unsafe fn save_state(ptr: *mut c_void) -> Result<State, PluginError> {
        // SAFETY: as in call.
        unsafe { shared::<T>(ptr) }?.save_state()
    }
    unsafe fn restore_state(ptr: *mut c_void, state: State) -> Result<(), PluginError> {
        // SAFETY: as in call.
        unsafe { shared::<T>(ptr) }?.restore_state(state)
    }
    fn shutdown(instance: &mut T) -> Result<(), PluginError> {
        instance.shutdown()
    }
}

/// The vtable for [`Plugin`] type `T`; `export_plugin!` puts it in a `static`.
pub const fn vtable<T: Plugin>() -> PluginVTable {
    exports_vtable::<Serial<T>>()
}

/// The vtable for [`ConcurrentPlugin`] type `T`; `export_concurrent_plugin!`
/// puts it in a `static`.
pub const fn concurrent_vtable<T: ConcurrentPlugin>() -> PluginVTable {
    exports_vtable::<Concurrent<T>>()
}

/// The vtable for the exports `E`.
const fn exports_vtable<E: Exports>() -> PluginVTable {
    PluginVTable {
        abi_version: ABI_VERSION,
        struct_size: size_of::<PluginVTable>() as u32,
        canary: Canary::current(),
        sdk_version: StaticStr::new(SDK_VERSION),
        flags: E::FLAGS,
        create: create::<E>,
        call: call::<E>,
        save_state: save_state::<E>,
        restore_state: restore_state::<E>,
        destroy: destroy::<E>,
        describe: describe::<E>,
        probe_sites,
        rebuild_interest,
        alloc_counters,
    }
}

#[derive(Serialize)]
struct PanicReport {
    message: String,
    file: Option<String>,
    line: Option<u32>,
    column: Option<u32>,
}

thread_local! {
    /// The last panic caught on this thread, recorded by the hook.
    static LAST_PANIC: RefCell<Option<PanicReport>> = const { RefCell::new(None) };
    /// How many guards are active on this thread (a panic outside any is reported as a log event).
    static GUARD_DEPTH: Cell<u32> = const { Cell::new(0) };
}

fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let message = if let Some(s) = info.payload().downcast_ref::<&str>() {
                (*s).to_owned()
            } else if let Some(s) = info.payload().downcast_ref::<String>() {
                s.clone()
            } else {
                "panic with a non-string payload".to_owned()
            };
            let location = info.location();
            let report = PanicReport {
                message,
                file: location.map(|l| l.file().to_owned()),
                line: location.map(|l| l.line()),
                column: location.map(|l| l.column()),
            };
            if GUARD_DEPTH.try_with(Cell::get).unwrap_or(0) > 0
                && let Some(host) = crate::bridge::host()
            {
                let file = report.file.as_deref().unwrap_or("");
                // SAFETY: ctx and the strings are valid for the call; the host
                // catches its own panics.
                unsafe {
                    (host.panicked)(
                        host.ctx,
                        AxStr::from_str(&report.message),
                        AxStr::from_str(file),
                        report.line.unwrap_or(0),
                        report.column.unwrap_or(0),
                    )
                };
            } else if GUARD_DEPTH.try_with(Cell::get).unwrap_or(0) == 0 {
                // A thread the plugin spawned: no call will report it, so log it.
                tracing::error!(
                    target: "ax_plugin::panic",
                    file = report.file.as_deref().unwrap_or("?"),
                    line = report.line.unwrap_or(0),
                    "plugin thread panicked: {}",
                    report.message
                );
            }
            // `try_with`: a panic during thread teardown must not panic again.
            let _ = LAST_PANIC.try_with(|slot| {
                if let Ok(mut slot) = slot.try_borrow_mut() {
                    *slot = Some(report);
                }
            });
        }));
    });
}

/// What a guarded body produces: optional output bytes or an error.
type Outcome = Result<Option<Vec<u8>>, PluginError>;

/// The payload a call is unwound with when the host asks it to stop
/// ([`crate::bridge`] raises it with `resume_unwind`, which skips the panic hook).
pub(crate) struct BudgetAbort;

/// Whether a guarded call is running on this thread (only those may be unwound).
pub(crate) fn in_call() -> bool {
    GUARD_DEPTH.try_with(Cell::get).unwrap_or(0) > 0
}

/// Runs `body` with panics caught; writes its output, error or panic to `out`.
fn guard(out: *mut AxBytes, body: impl FnOnce() -> Outcome) -> Status {
    install_panic_hook();
    GUARD_DEPTH.with(|d| d.set(d.get() + 1));
    let result = catch_unwind(AssertUnwindSafe(body));
    GUARD_DEPTH.with(|d| d.set(d.get() - 1));
    let (status, bytes) = match result {
        Ok(Ok(bytes)) => (Status::OK, bytes),
        Ok(Err(error)) => (Status::ERROR, Some(to_json(&error))),
        Err(payload) if payload.is::<BudgetAbort>() => (Status::ABORTED, None),
        Err(payload) => {
            let report = LAST_PANIC.with(|slot| slot.borrow_mut().take()).unwrap_or_else(|| PanicReport {
                message: "panic (no message recorded)".to_owned(),
                file: None,
                line: None,
                column: None,
            });
            // Dropping a panic payload can itself panic; never let that escape.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
            (Status::PANIC, Some(to_json(&report)))
        }
    };
    if let Some(bytes) = bytes
        && !out.is_null()
    {
        // SAFETY: the host passes a valid, writable AxBytes slot; the old value owns nothing.
        unsafe { out.write(AxBytes::from_vec(bytes)) };
    }
    status
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_else(|_| br#"{"kind":"failed","message":"unserialisable error"}"#.to_vec())
}

/// Reads a UTF-8 JSON argument from the host.
///
/// # Safety
/// `s` must describe live memory for the duration of the call.
unsafe fn json_arg(s: AxStr, what: &str) -> Result<Value, PluginError> {
    // SAFETY: forwarded to the caller.
    let bytes = unsafe { s.as_bytes() };
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(bytes).map_err(|e| PluginError::invalid_input(format!("{what} is not valid JSON: {e}")))
}

unsafe extern "C" fn create<E: Exports>(
    host: *const HostVTable,
    config: AxStr,
    out_instance: *mut *mut c_void,
    out_err: *mut AxBytes,
) -> Status {
    guard(out_err, || {
        // SAFETY: the host passes a vtable that lives for the rest of the process.
        let host = unsafe { host.as_ref() }.ok_or_else(|| PluginError::failed("null host vtable"))?;
        crate::bridge::install(host)?;
        // SAFETY: config is borrowed for this call.
        let config = unsafe { json_arg(config, "plugin config") }?;
        let config = if config.is_null() { Value::Object(Default::default()) } else { config };
        let plugin = E::init(config)?;
        let ptr = Box::into_raw(Box::new(plugin)).cast::<c_void>();
        // SAFETY: out_instance is a valid slot provided by the host.
        unsafe { out_instance.write(ptr) };
        Ok(None)
    })
}

unsafe extern "C" fn call<E: Exports>(
    instance_ptr: *mut c_void,
    method: AxStr,
    input: AxStr,
    out: *mut AxBytes,
) -> Status {
    guard(out, || {
        // SAFETY: borrowed for this call.
        let method = unsafe { method.as_str() }.ok_or_else(|| PluginError::invalid_input("method is not UTF-8"))?;
        // SAFETY: borrowed for this call.
        let input = unsafe { json_arg(input, "call input") }?;
        // SAFETY: the host passes the pointer `create` gave it, as `E::FLAGS` allow.
        let output = unsafe { E::call(instance_ptr, method, input) }?;
        Ok(Some(to_json(&output)))
    })
}

unsafe extern "C" fn save_state<E: Exports>(
    instance_ptr: *mut c_void,
    out_version: *mut u32,
    out: *mut AxBytes,
) -> Status {
    guard(out, || {
        // SAFETY: the host passes the pointer `create` gave it and runs nothing else meanwhile.
        let state = unsafe { E::save_state(instance_ptr) }?;
        if !out_version.is_null() {
            // SAFETY: valid slot from the host.
            unsafe { out_version.write(state.schema_version) };
        }
        Ok(Some(state.bytes))
    })
}

unsafe extern "C" fn restore_state<E: Exports>(
    instance_ptr: *mut c_void,
    version: u32,
    state: AxStr,
    out_err: *mut AxBytes,
) -> Status {
    guard(out_err, || {
        // SAFETY: borrowed for this call.
        let bytes = unsafe { state.as_bytes() }.to_vec();
        // SAFETY: as in save_state.
        unsafe { E::restore_state(instance_ptr, State { schema_version: version, bytes }) }?;
        Ok(None)
    })
}

unsafe extern "C" fn destroy<E: Exports>(instance_ptr: *mut c_void, out_err: *mut AxBytes) -> Status {
    if instance_ptr.is_null() {
        return Status::BAD_ARGUMENT;
    }
    // SAFETY: the pointer came from Box::into_raw in `create` and is destroyed once.
    let mut plugin = unsafe { Box::from_raw(instance_ptr.cast::<E::Instance>()) };
    let status = guard(out_err, || E::shutdown(&mut plugin).map(|()| None));
    // Drop the instance even if shutdown failed; a panicking Drop is reported too.
    let drop_status = guard(out_err, move || {
        drop(plugin);
        Ok(None)
    });
    // The plugin's standard library is its own: nobody else flushes the
    // line it left unfinished on stdout, and the host may exit next.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    if status == Status::OK { drop_status } else { status }
}

unsafe extern "C" fn describe<E: Exports>(out: *mut AxBytes) -> Status {
    guard(out, || {
        let description = serde_json::json!({ "methods": E::METHODS });
        Ok(Some(to_json(&description)))
    })
}

unsafe extern "C" fn probe_sites(out_len: *mut usize) -> *const ProbeSite {
    let sites: &'static [ProbeSite] = &crate::probe::PROBE_SITES;
    if !out_len.is_null() {
        // SAFETY: valid slot from the host.
        unsafe { out_len.write(sites.len()) };
    }
    sites.as_ptr()
}

unsafe extern "C" fn alloc_counters() -> *const ax_abi::AllocCounters {
    crate::alloc::counters()
}

unsafe extern "C" fn rebuild_interest() {
    let _ = catch_unwind(tracing_core::callsite::rebuild_interest_cache);
}
