//! The C ABI between the ax host and a plugin library.
//!
//! Only the types in this crate cross the plugin boundary. They are `#[repr(C)]`
//! and carry plain data: integers, borrowed byte slices ([`AxStr`]), owned byte
//! buffers that know how to free themselves ([`AxBytes`]) and function pointers.
//! No Rust trait object, `TypeId`, `String` or `Vec` ever crosses: host and plugin
//! are separate images with their own allocator, their own `std` and their own
//! `tracing-core` statics, and may even come from different compilers.
//!
//! The plugin exports one symbol, [`ENTRY_SYMBOL`], a function returning a
//! `&'static` [`PluginVTable`]. The host reads its first two fields
//! ([`PluginVTable::abi_version`], [`PluginVTable::struct_size`]) before
//! anything else, then the [`Canary`], and only then calls into the plugin.
//! When a plugin is created it receives a `&'static` [`HostVTable`]: the
//! callbacks through which its tracing spans, events and probe hits reach the host.
//!
//! This crate has no dependencies so that both sides can link it cheaply and so
//! that its layout can be read at a glance.

#![cfg_attr(not(test), no_std)]

extern crate alloc;

use alloc::vec::Vec;

use core::ffi::c_void;
use core::fmt;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Version of the layout of [`PluginVTable`], [`HostVTable`] and every type they
/// reference. Bumped on any change; the host refuses a plugin whose version differs.
pub const ABI_VERSION: u32 = 3;

/// Name of the one symbol a plugin library exports (NUL-terminated for `dlsym`).
pub const ENTRY_SYMBOL: &[u8] = b"ax_plugin_entry_v1\0";

/// Signature of [`ENTRY_SYMBOL`].
pub type EntryFn = unsafe extern "C" fn() -> *const PluginVTable;

/// Compiler that built this copy of the crate, e.g. `rustc 1.95.0 (…)`.
pub const RUSTC_VERSION: &str = env!("AX_ABI_RUSTC");
/// Target triple this copy of the crate was built for.
pub const TARGET: &str = env!("AX_ABI_TARGET");
/// Written into every [`Canary`]; read back wrong if endianness or layout disagree.
pub const CANARY_MAGIC: u64 = 0x00a1_b2c3_d4e5_f607;

/// Outcome of a call across the boundary.
///
/// A plain `u32` rather than a Rust enum: a plugin built by a newer SDK may return
/// a value this host does not know, and reading an unknown discriminant of a Rust
/// enum would be undefined behaviour.
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Status(pub u32);

impl Status {
    /// Success; any output buffer holds the result.
    pub const OK: Status = Status(0);
    /// The plugin returned an error; the output buffer holds `{"kind", "message"}` JSON.
    pub const ERROR: Status = Status(1);
    /// The plugin panicked; the output buffer holds `{"message", "file", "line", "column"}` JSON.
    pub const PANIC: Status = Status(2);
    /// The host passed something the plugin could not decode (bad UTF-8, bad JSON, null pointer).
    pub const BAD_ARGUMENT: Status = Status(3);
    /// The host asked the call to stop (a budget was exceeded) and the SDK
    /// unwound it at a probe, span or event. No output.
    pub const ABORTED: Status = Status(4);

    /// A short lowercase name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Status::OK => "ok",
            Status::ERROR => "error",
            Status::PANIC => "panic",
            Status::BAD_ARGUMENT => "bad argument",
            Status::ABORTED => "aborted",
            _ => "unknown status",
        }
    }
}

impl fmt::Debug for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Status({} {})", self.0, self.name())
    }
}

/// A borrowed byte slice. Valid only for the duration of the call it is passed to,
/// unless a field documents otherwise (see [`StaticStr`]).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct AxStr {
    pub ptr: *const u8,
    pub len: usize,
}

impl AxStr {
    /// The empty slice.
    pub const EMPTY: AxStr = AxStr { ptr: core::ptr::NonNull::<u8>::dangling().as_ptr(), len: 0 };

    /// Borrows `bytes`.
    pub const fn new(bytes: &[u8]) -> AxStr {
        AxStr { ptr: bytes.as_ptr(), len: bytes.len() }
    }

    /// Borrows `s`.
    pub const fn from_str(s: &str) -> AxStr {
        AxStr::new(s.as_bytes())
    }

    /// The bytes.
    ///
    /// # Safety
    /// `ptr` must be valid for `len` bytes for the chosen lifetime, or `len` must be 0.
    pub unsafe fn as_bytes<'a>(self) -> &'a [u8] {
        if self.len == 0 || self.ptr.is_null() {
            &[]
        } else {
            // SAFETY: the caller promises ptr/len describe live memory.
            unsafe { core::slice::from_raw_parts(self.ptr, self.len) }
        }
    }

    /// The bytes as UTF-8, or `None` if they are not.
    ///
    /// # Safety
    /// As for [`AxStr::as_bytes`].
    pub unsafe fn as_str<'a>(self) -> Option<&'a str> {
        // SAFETY: forwarded to the caller.
        core::str::from_utf8(unsafe { self.as_bytes() }).ok()
    }
}

impl fmt::Debug for AxStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AxStr({} bytes)", self.len)
    }
}

/// A `'static` string inside a plugin image (a string literal). Because ax never
/// unmaps a plugin library, the host may keep these pointers for the life of the process.
#[repr(transparent)]
#[derive(Clone, Copy, Debug)]
pub struct StaticStr(pub AxStr);

// SAFETY: a StaticStr only ever points to immutable 'static data.
unsafe impl Sync for StaticStr {}
// SAFETY: as above.
unsafe impl Send for StaticStr {}

impl StaticStr {
    /// Wraps a literal.
    pub const fn new(s: &'static str) -> StaticStr {
        StaticStr(AxStr::from_str(s))
    }

    /// The string.
    ///
    /// # Safety
    /// The StaticStr must have been made by [`StaticStr::new`] in an image that is still mapped.
    pub unsafe fn get(self) -> &'static str {
        // SAFETY: made from a &'static str.
        unsafe { self.0.as_str() }.unwrap_or("<invalid utf-8>")
    }
}

/// An owned byte buffer that carries the function that frees it.
///
/// Whoever allocates the buffer sets `free` to a function compiled into its own
/// image; whoever receives it drops it, which calls that function. Memory is
/// therefore always returned to the allocator it came from, even though host and
/// plugin each have their own global allocator.
#[repr(C)]
pub struct AxBytes {
    pub ptr: *mut u8,
    pub len: usize,
    pub cap: usize,
    pub free: Option<unsafe extern "C" fn(ptr: *mut u8, len: usize, cap: usize)>,
}

// SAFETY: AxBytes uniquely owns its buffer; the free function may run on any thread.
unsafe impl Send for AxBytes {}

impl AxBytes {
    /// An empty buffer that owns nothing.
    pub const fn empty() -> AxBytes {
        AxBytes { ptr: core::ptr::null_mut(), len: 0, cap: 0, free: None }
    }

    /// Takes ownership of `v`. The free function recorded is the one compiled into
    /// the image that calls this, so the buffer goes back to that image's allocator.
    pub fn from_vec(v: Vec<u8>) -> AxBytes {
        let mut v = core::mem::ManuallyDrop::new(v);
        AxBytes { ptr: v.as_mut_ptr(), len: v.len(), cap: v.capacity(), free: Some(free_vec) }
    }

    /// The contents.
    pub fn as_slice(&self) -> &[u8] {
        if self.ptr.is_null() || self.len == 0 {
            &[]
        } else {
            // SAFETY: ptr/len were set together by the owner and the buffer is alive while self is.
            unsafe { core::slice::from_raw_parts(self.ptr, self.len) }
        }
    }

    /// Borrows the contents as an [`AxStr`].
    pub fn as_ax_str(&self) -> AxStr {
        AxStr::new(self.as_slice())
    }
}

impl Drop for AxBytes {
    fn drop(&mut self) {
        if let Some(free) = self.free.take() {
            // SAFETY: `free` was provided by the allocating side together with ptr/len/cap.
            unsafe { free(self.ptr, self.len, self.cap) }
        }
    }
}

unsafe extern "C" fn free_vec(ptr: *mut u8, len: usize, cap: usize) {
    // SAFETY: ptr/len/cap come from a Vec<u8> leaked by `AxBytes::from_vec` in this image.
    drop(unsafe { Vec::from_raw_parts(ptr, len, cap) });
}

impl fmt::Debug for AxBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AxBytes({} bytes)", self.len)
    }
}

/// Identifies the build of one side, so that a plugin built for another target
/// or layout is refused with a precise message.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Canary {
    /// Must equal [`CANARY_MAGIC`].
    pub magic: u64,
    /// `size_of::<usize>()` of the side that built it.
    pub pointer_width: u32,
    /// `size_of::<Canary>()` of the side that built it.
    pub canary_size: u32,
    /// [`TARGET`] of that side.
    pub target: StaticStr,
    /// [`RUSTC_VERSION`] of that side. A difference is reported, not refused:
    /// nothing Rust-specific crosses the boundary.
    pub rustc: StaticStr,
}

impl Canary {
    /// The canary of the side compiling this crate.
    pub const fn current() -> Canary {
        Canary {
            magic: CANARY_MAGIC,
            pointer_width: core::mem::size_of::<usize>() as u32,
            canary_size: core::mem::size_of::<Canary>() as u32,
            target: StaticStr::new(TARGET),
            rustc: StaticStr::new(RUSTC_VERSION),
        }
    }
}

/// Bits of [`PluginVTable::flags`].
pub mod flags {
    /// The plugin accepts concurrent calls on one instance (`call` may run on
    /// several threads at once; `save_state`, `restore_state` and `destroy`
    /// still run alone).
    pub const CONCURRENT: u32 = 1 << 0;
    /// Every export must run on one dedicated thread of the host's (the
    /// plugin keeps thread-local state across calls). Without it, the host
    /// runs a call on the thread that makes it.
    pub const DEDICATED_THREAD: u32 = 1 << 1;
}

/// Level of a tracing callsite, as in `tracing::Level` (1 = ERROR … 5 = TRACE).
pub mod level {
    pub const ERROR: u8 = 1;
    pub const WARN: u8 = 2;
    pub const INFO: u8 = 3;
    pub const DEBUG: u8 = 4;
    pub const TRACE: u8 = 5;
}

/// What the host wants from a callsite (`tracing_core::Interest`).
pub mod interest {
    /// Never call the host for this callsite until interest is rebuilt.
    pub const NEVER: u32 = 0;
    /// Ask [`super::HostVTable::enabled`] every time.
    pub const SOMETIMES: u32 = 1;
    /// Always forward.
    pub const ALWAYS: u32 = 2;
    /// The callsite id [`super::HostVTable::enabled`] is asked with (no
    /// callsite has it: ids are addresses) to learn whether the call running
    /// on this thread wants the spans of `SOMETIMES` span callsites: the same
    /// answer for every such span, found without looking the callsite up.
    pub const CALL_SPANS: usize = 0;
}

/// Static description of a tracing callsite (span or event) of a plugin. Every
/// pointer is `'static` in the plugin image.
#[repr(C)]
#[derive(Debug)]
pub struct CallsiteMeta {
    /// Identity of the callsite: the address of its `tracing` metadata.
    pub id: usize,
    /// 0 for a span, 1 for an event.
    pub kind: u8,
    /// One of [`level`].
    pub level: u8,
    /// Source line, 0 when unknown.
    pub line: u32,
    pub name: StaticStr,
    pub target: StaticStr,
    pub module_path: StaticStr,
    pub file: StaticStr,
    pub field_names: *const StaticStr,
    pub field_count: usize,
}

/// Kinds of [`FieldValue`] and [`ProbeValue`].
pub mod value_kind {
    pub const I64: u8 = 0;
    pub const U64: u8 = 1;
    pub const F64: u8 = 2;
    pub const BOOL: u8 = 3;
    /// UTF-8 text in `text`.
    pub const STR: u8 = 4;
    /// A `Debug` rendering in `text`.
    pub const DEBUG: u8 = 5;
    /// JSON (from `serde::Serialize`) in `text`.
    pub const JSON: u8 = 6;
}

/// One recorded field of a span or event. `num` holds the bits of an `i64`, `u64`,
/// `f64` or `bool` (0/1); `text` the string forms. Valid for the duration of the call.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FieldValue {
    pub name: AxStr,
    pub kind: u8,
    pub num: u64,
    pub text: AxStr,
}

/// How a new span finds its parent.
pub mod parent {
    /// The current span of the thread.
    pub const CONTEXTUAL: u8 = 0;
    /// No parent.
    pub const ROOT: u8 = 1;
    /// The span id given alongside.
    pub const EXPLICIT: u8 = 2;
}

/// A probe site (`ax_plugin::probe!`), a `static` in the plugin image. The host
/// lists every site as soon as the library is loaded and arms a site by setting
/// `armed`; an unarmed site costs the plugin a load and a branch.
#[repr(C)]
#[derive(Debug)]
pub struct ProbeSite {
    /// Non-zero when the host wants to hear about hits. Written by the host.
    pub armed: AtomicU32,
    pub line: u32,
    pub column: u32,
    pub file: StaticStr,
    pub module_path: StaticStr,
    /// Returns the path of the function containing the probe (computed from a
    /// nested item's type name, which is not available in a `const`).
    pub function: extern "C" fn() -> StaticStr,
    pub var_names: *const StaticStr,
    pub var_count: usize,
}

// SAFETY: all pointers are to 'static immutable data; `armed` is atomic.
unsafe impl Sync for ProbeSite {}

impl ProbeSite {
    /// Whether the host listens to this site: one relaxed load.
    #[inline(always)]
    pub fn is_armed(&self) -> bool {
        self.armed.load(Ordering::Relaxed) != 0
    }

    /// The binding names, in the order written.
    ///
    /// # Safety
    /// The site must live in a mapped image built against this crate.
    pub unsafe fn var_names(&self) -> &[StaticStr] {
        if self.var_count == 0 {
            &[]
        } else {
            // SAFETY: set from a 'static slice by the probe macro.
            unsafe { core::slice::from_raw_parts(self.var_names, self.var_count) }
        }
    }
}

/// The value of one probe binding at a hit. `text` stays valid until the host
/// callback returns. When `set` is present the binding was written `&mut var`
/// and the host may overwrite it, while the hit is in progress, by passing JSON
/// text to `set(target, json, err)`.
#[repr(C)]
#[derive(Debug)]
pub struct ProbeValue {
    pub kind: u8,
    pub num: u64,
    pub text: AxStr,
    pub target: *mut c_void,
    pub set: Option<unsafe extern "C" fn(target: *mut c_void, json: AxStr, err: *mut AxBytes) -> Status>,
}

/// What the plugin exports. Field order is part of the ABI: `abi_version` and
/// `struct_size` come first and keep their place in every version, so a host can
/// always read them and explain a mismatch.
#[repr(C)]
pub struct PluginVTable {
    /// [`ABI_VERSION`] of the SDK that built the plugin.
    pub abi_version: u32,
    /// `size_of::<PluginVTable>()` as the plugin saw it.
    pub struct_size: u32,
    pub canary: Canary,
    /// Version of the `ax-plugin` crate that built the plugin.
    pub sdk_version: StaticStr,
    /// Bits from [`flags`].
    pub flags: u32,

    /// Creates the plugin instance: installs the tracing bridge and runs `Plugin::init`
    /// with `config` (JSON). On success writes the instance pointer to `out_instance`.
    /// On failure writes error JSON to `out_err`.
    pub create: unsafe extern "C" fn(
        host: *const HostVTable,
        config: AxStr,
        out_instance: *mut *mut c_void,
        out_err: *mut AxBytes,
    ) -> Status,
    /// Calls `method` with `input` (JSON). Writes the result JSON, the error JSON or
    /// the panic JSON to `out`, according to the returned status.
    pub call: unsafe extern "C" fn(instance: *mut c_void, method: AxStr, input: AxStr, out: *mut AxBytes) -> Status,
    /// Saves the instance's state: schema version into `out_version`, bytes into `out`
    /// (or error JSON on failure).
    pub save_state: unsafe extern "C" fn(instance: *mut c_void, out_version: *mut u32, out: *mut AxBytes) -> Status,
    /// Restores state saved by `save_state` (possibly by an older build).
    pub restore_state:
        unsafe extern "C" fn(instance: *mut c_void, version: u32, state: AxStr, out_err: *mut AxBytes) -> Status,
    /// Runs `Plugin::shutdown` and frees the instance. The pointer is dead afterwards,
    /// whatever the status.
    pub destroy: unsafe extern "C" fn(instance: *mut c_void, out_err: *mut AxBytes) -> Status,
    /// Writes `{"name", "methods": [...]}` JSON describing the plugin type.
    pub describe: unsafe extern "C" fn(out: *mut AxBytes) -> Status,
    /// Every probe site of the image, as a contiguous array of `ProbeSite`.
    pub probe_sites: unsafe extern "C" fn(out_len: *mut usize) -> *const ProbeSite,
    /// Asks the plugin's `tracing` to query the host again for every callsite's
    /// interest (after the host changed what it listens to).
    pub rebuild_interest: unsafe extern "C" fn(),
    /// The calling thread's allocation counters (valid while that thread lives),
    /// or null when the plugin does not use the SDK's counting allocator.
    pub alloc_counters: unsafe extern "C" fn() -> *const AllocCounters,
}

/// Allocation counters of one thread of a plugin image, written by the SDK's
/// counting global allocator on that thread only and read by the host from any
/// thread. Live bytes are `allocated - freed`.
#[repr(C)]
#[derive(Debug, Default)]
pub struct AllocCounters {
    /// Bytes ever allocated.
    pub allocated: AtomicU64,
    /// Bytes ever freed.
    pub freed: AtomicU64,
    /// Highest live byte count since the host last reset it (to the live count).
    pub peak_live: AtomicU64,
}

impl AllocCounters {
    /// All zero.
    pub const fn new() -> AllocCounters {
        AllocCounters { allocated: AtomicU64::new(0), freed: AtomicU64::new(0), peak_live: AtomicU64::new(0) }
    }

    /// Bytes allocated and not yet freed.
    pub fn live(&self) -> u64 {
        self.allocated.load(Ordering::Relaxed).wrapping_sub(self.freed.load(Ordering::Relaxed))
    }
}

impl fmt::Debug for PluginVTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginVTable")
            .field("abi_version", &self.abi_version)
            .field("struct_size", &self.struct_size)
            .field("canary", &self.canary)
            .field("flags", &self.flags)
            .finish_non_exhaustive()
    }
}

/// What the host gives the plugin at creation. Lives as long as the process
/// (the host leaks it, as it keeps the image mapped). `ctx` is passed back to
/// every callback. Every callback may be called from any plugin thread.
#[repr(C)]
pub struct HostVTable {
    pub abi_version: u32,
    pub struct_size: u32,
    pub ctx: *const c_void,

    /// Registers a callsite; returns one of [`interest`].
    pub register_callsite: unsafe extern "C" fn(ctx: *const c_void, meta: *const CallsiteMeta) -> u32,
    /// For callsites registered `SOMETIMES`: whether to forward this
    /// occurrence; for [`interest::CALL_SPANS`], whether the running call
    /// wants its `SOMETIMES` spans.
    pub enabled: unsafe extern "C" fn(ctx: *const c_void, callsite: usize) -> bool,
    /// A new span; returns its id (never 0).
    pub span_new: unsafe extern "C" fn(
        ctx: *const c_void,
        callsite: usize,
        parent_kind: u8,
        parent: u64,
        fields: *const FieldValue,
        field_count: usize,
    ) -> u64,
    /// Values recorded on an existing span.
    pub span_record: unsafe extern "C" fn(ctx: *const c_void, span: u64, fields: *const FieldValue, field_count: usize),
    pub span_enter: unsafe extern "C" fn(ctx: *const c_void, span: u64),
    pub span_exit: unsafe extern "C" fn(ctx: *const c_void, span: u64),
    /// One more handle to the span exists.
    pub span_clone: unsafe extern "C" fn(ctx: *const c_void, span: u64),
    /// One handle to the span was dropped; returns true when it was the last.
    pub span_close: unsafe extern "C" fn(ctx: *const c_void, span: u64) -> bool,
    /// The innermost entered span of the calling thread (0 if none), and its callsite.
    pub current_span: unsafe extern "C" fn(ctx: *const c_void, out_callsite: *mut usize) -> u64,
    /// An event.
    pub event: unsafe extern "C" fn(
        ctx: *const c_void,
        callsite: usize,
        parent_kind: u8,
        parent: u64,
        fields: *const FieldValue,
        field_count: usize,
    ),
    /// Non-zero while the host wants some current call unwound (a budget was
    /// exceeded). The SDK reads it after every span, event and probe callback
    /// and, when set, asks [`HostVTable::abort_call`] whether the call on its
    /// thread is the one; it unwinds only that call. Lives as long as the host vtable.
    pub abort: *const AtomicU32,
    /// Looks `key` up in the host's query cache for this plugin. On a hit writes
    /// the value (allocated by the host) to `out` and returns 1; else returns 0.
    pub cache_get: unsafe extern "C" fn(ctx: *const c_void, key: AxStr, out: *mut AxBytes) -> u32,
    /// Stores `value` under `key`. `ttl_ms`: 0 for the cache's default, `u64::MAX` for no expiry.
    pub cache_put: unsafe extern "C" fn(ctx: *const c_void, key: AxStr, value: AxStr, ttl_ms: u64),
    /// An armed probe site was reached; `values` follow the site's `var_names`.
    pub probe_hit:
        unsafe extern "C" fn(ctx: *const c_void, site: *const ProbeSite, values: *const ProbeValue, value_count: usize),
    /// A guarded call panicked: called by the SDK's panic hook on the panicking
    /// thread, before it unwinds, so a debugger may stop there with the plugin's
    /// frames still live. `file` is empty and `line` 0 when the location is unknown.
    pub panicked: unsafe extern "C" fn(ctx: *const c_void, message: AxStr, file: AxStr, line: u32, column: u32),
    /// Whether the call running on the calling thread must unwind (its budget
    /// was exceeded). Asked only while [`HostVTable::abort`] is non-zero, so
    /// that with concurrent calls one call's violation stops that call alone.
    pub abort_call: unsafe extern "C" fn(ctx: *const c_void) -> bool,
}

// SAFETY: the host guarantees ctx is usable from any thread.
unsafe impl Sync for HostVTable {}
// SAFETY: as above.
unsafe impl Send for HostVTable {}

impl fmt::Debug for HostVTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostVTable").field("abi_version", &self.abi_version).finish_non_exhaustive()
    }
}

/// The first two fields of every [`PluginVTable`] version: what a host may read of
/// a plugin before it knows the plugin's ABI version.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct VTableHeader {
    pub abi_version: u32,
    pub struct_size: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn header_is_a_prefix_of_both_vtables() {
        assert_eq!(offset_of!(PluginVTable, abi_version), offset_of!(VTableHeader, abi_version));
        assert_eq!(offset_of!(PluginVTable, struct_size), offset_of!(VTableHeader, struct_size));
        assert_eq!(offset_of!(HostVTable, abi_version), 0);
        assert_eq!(offset_of!(HostVTable, struct_size), 4);
    }

    #[test]
    fn canary_describes_this_build() {
        let c = Canary::current();
        assert_eq!(c.magic, CANARY_MAGIC);
        assert_eq!(c.pointer_width as usize, size_of::<usize>());
        // SAFETY: made from literals in this image.
        let target = unsafe { c.target.get() };
        assert!(!target.is_empty() && target != "unknown", "{target}");
        // SAFETY: as above.
        assert!(unsafe { c.rustc.get() }.starts_with("rustc "));
    }

    #[test]
    fn status_names() {
        assert_eq!(Status::PANIC.name(), "panic");
        assert_eq!(Status(77).name(), "unknown status");
        assert_eq!(format!("{:?}", Status::OK), "Status(0 ok)");
    }

    #[test]
    fn bytes_round_trip_and_free() {
        let b = AxBytes::from_vec(b"hello".to_vec());
        assert_eq!(b.as_slice(), b"hello");
        // SAFETY: borrowed from a live buffer.
        assert_eq!(unsafe { b.as_ax_str().as_str() }, Some("hello"));
        drop(b);
    }

    #[test]
    fn empty_bytes_free_nothing() {
        let b = AxBytes::empty();
        assert!(b.as_slice().is_empty());
        drop(b);
    }

    #[test]
    fn empty_str_is_safe_to_read() {
        // SAFETY: EMPTY has length 0.
        assert_eq!(unsafe { AxStr::EMPTY.as_str() }, Some(""));
        let null = AxStr { ptr: core::ptr::null(), len: 0 };
        // SAFETY: length 0.
        assert_eq!(unsafe { null.as_bytes() }, &[] as &[u8]);
    }
}
