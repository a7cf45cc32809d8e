//! `ax-plugin`: what a plugin author depends on.
//!
//! A plugin is a `cdylib` crate with a type implementing [`Plugin`] and one line,
//! [`export_plugin!`], that generates the library's single exported symbol and
//! every `extern "C"` shim behind it. Each shim runs the plugin's code under
//! `catch_unwind`, so a panic becomes an error status carrying the panic message
//! and location; it never unwinds into the host.
//!
//! Instrumentation is ordinary `tracing`: `#[tracing::instrument]` spans and
//! `debug!(count, ...)` events. The SDK installs, inside the plugin image, a
//! subscriber that forwards them to the host (the plugin has its own copy of
//! `tracing-core` and therefore its own global dispatcher). [`probe!`] adds what
//! `tracing` cannot do: sites the host can list as soon as the library is loaded,
//! and `&mut` bindings the host may overwrite.
//!
//! ```ignore
//! use ax_plugin::{Plugin, PluginError, State};
//! use serde_json::{json, Value};
//!
//! #[derive(Default)]
//! struct Echo;
//!
//! impl Plugin for Echo {
//!     const METHODS: &'static [&'static str] = &["echo"];
//!     fn init(_config: Value) -> Result<Self, PluginError> { Ok(Echo) }
//!     fn call(&mut self, method: &str, input: Value) -> Result<Value, PluginError> {
//!         match method {
//!             "echo" => Ok(input),
//!             other => Err(PluginError::unknown_method(other, Self::METHODS)),
//!         }
//!     }
//! }
//! ax_plugin::export_plugin!(Echo);
//! ```

mod alloc;
mod bridge;
pub mod cache;
mod probe;
mod shim;

use std::fmt;

use serde::{Deserialize, Serialize, de::DeserializeOwned};
pub use serde_json::{Value, json};

/// The ABI crate, for the macros and for hosts written against the SDK's types.
pub use ax_abi as abi;
/// Re-exported so that plugins use the same `tracing` the bridge is installed in.
pub use tracing;
/// Re-exported for the README's and the scaffold's examples: a plugin made by
/// `ax new` can (de)serialise cache entries and state without adding them.
pub use {serde, serde_json};

pub use alloc::CountingAllocator;

/// Version of this SDK, reported to the host at load.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// A native ax plugin.
///
/// The host creates one instance per loaded library with [`Plugin::init`], then
/// calls [`Plugin::call`], on the thread that makes the call (or on one
/// dedicated thread, see [`Plugin::DEDICATED_THREAD`]); calls into one instance
/// are serialised, hence `&mut self`. Inputs and outputs are JSON. A plugin
/// whose calls may run in parallel implements [`ConcurrentPlugin`] instead.
pub trait Plugin: Send + Sized + 'static {
    /// The methods [`Plugin::call`] accepts, for listings, completions and error messages.
    const METHODS: &'static [&'static str] = &[];

    /// Run every export of this plugin on one thread of the host's, for a
    /// plugin that keeps thread-local state across calls. Off by default: a
    /// call then runs on the host thread that makes it, which saves the
    /// hand-off between threads (about a microsecond per call).
    const DEDICATED_THREAD: bool = false;

    /// Creates the instance. `config` is the manifest's `[config]` table as JSON
    /// (an empty object when there is none).
    fn init(config: Value) -> Result<Self, PluginError>;

    /// Handles one call.
    fn call(&mut self, method: &str, input: Value) -> Result<Value, PluginError>;

    /// The state to carry over to a new build of the plugin (hot reload) or a
    /// restarted host. The default carries nothing.
    fn save_state(&mut self) -> Result<State, PluginError> {
        Ok(State::empty())
    }

    /// Takes over state saved by [`Plugin::save_state`], possibly by an older build
    /// (see [`State::schema_version`]). Refusing returns an error of kind `State`.
    fn restore_state(&mut self, state: State) -> Result<(), PluginError> {
        let _ = state;
        Ok(())
    }

    /// Called once before the instance is dropped.
    fn shutdown(&mut self) -> Result<(), PluginError> {
        Ok(())
    }
}

/// A native ax plugin whose calls may run in parallel: every method takes
/// `&self` and the type is `Sync`, so the host runs calls on the threads that
/// make them, several at once (the library's `CONCURRENT` flag, set by
/// [`export_concurrent_plugin!`]). Mutable state goes behind atomics or locks
/// of the plugin's choosing. `save_state`, `restore_state` and `shutdown` run
/// alone: the host waits for the calls in flight and holds new ones meanwhile.
pub trait ConcurrentPlugin: Send + Sync + Sized + 'static {
    /// The methods [`ConcurrentPlugin::call`] accepts.
    const METHODS: &'static [&'static str] = &[];

    /// Creates the instance, as [`Plugin::init`].
    fn init(config: Value) -> Result<Self, PluginError>;

    /// Handles one call; other calls may run at the same time.
    fn call(&self, method: &str, input: Value) -> Result<Value, PluginError>;

    /// As [`Plugin::save_state`]; no call runs meanwhile.
    fn save_state(&self) -> Result<State, PluginError> {
        Ok(State::empty())
    }

    /// As [`Plugin::restore_state`]; no call runs meanwhile.
    fn restore_state(&self, state: State) -> Result<(), PluginError> {
        let _ = state;
        Ok(())
    }

    /// Called once before the instance is dropped, after every call returned.
    fn shutdown(&mut self) -> Result<(), PluginError> {
        Ok(())
    }
}

/// Saved plugin state: opaque bytes and the version of their schema, so that a
/// new build can migrate old state or refuse it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    pub schema_version: u32,
    pub bytes: Vec<u8>,
}

impl State {
    /// No state.
    pub fn empty() -> State {
        State::default()
    }

    /// `value` serialised as JSON, tagged with `schema_version`.
    pub fn json<T: Serialize>(schema_version: u32, value: &T) -> Result<State, PluginError> {
        let bytes = serde_json::to_vec(value)
            .map_err(|e| PluginError::new(ErrorKind::State, format!("cannot serialise state: {e}")))?;
        Ok(State { schema_version, bytes })
    }

    /// Decodes JSON state saved by [`State::json`].
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, PluginError> {
        serde_json::from_slice(&self.bytes).map_err(|e| {
            PluginError::new(
                ErrorKind::State,
                format!("cannot decode state (schema version {}): {e}", self.schema_version),
            )
        })
    }
}

/// What kind of failure a [`PluginError`] is. Serialised in snake case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The input did not have the expected shape.
    InvalidInput,
    /// The method does not exist.
    UnknownMethod,
    /// State could not be saved or was refused.
    State,
    /// Anything else the plugin reports.
    Failed,
}

/// An error a plugin returns: a kind and a message for the user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginError {
    pub kind: ErrorKind,
    pub message: String,
}

impl PluginError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> PluginError {
        PluginError { kind, message: message.into() }
    }

    /// The input did not have the expected shape.
    pub fn invalid_input(message: impl Into<String>) -> PluginError {
        PluginError::new(ErrorKind::InvalidInput, message)
    }

    /// `method` is not one of `known`.
    pub fn unknown_method(method: &str, known: &[&str]) -> PluginError {
        let expected =
            if known.is_empty() { String::new() } else { format!(", expected one of: {}", known.join(", ")) };
        PluginError::new(ErrorKind::UnknownMethod, format!("unknown method {method:?}{expected}"))
    }

    /// A failure of the plugin's own.
    pub fn failed(message: impl Into<String>) -> PluginError {
        PluginError::new(ErrorKind::Failed, message)
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PluginError {}

/// Decodes a call's input into `T`, with an error that says what was expected.
pub fn input<T: DeserializeOwned>(input: Value) -> Result<T, PluginError> {
    serde_json::from_value(input).map_err(|e| {
        PluginError::invalid_input(format!("invalid input: {e} (expected {})", std::any::type_name::<T>()))
    })
}

/// Encodes a call's output.
pub fn output<T: Serialize>(value: &T) -> Result<Value, PluginError> {
    serde_json::to_value(value).map_err(|e| PluginError::failed(format!("cannot encode output: {e}")))
}

/// Generates the plugin library's entry symbol for the [`Plugin`] type `T`.
///
/// Use it once per `cdylib`.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        /// The ax plugin entry point.
        #[unsafe(no_mangle)]
        pub extern "C" fn ax_plugin_entry_v1() -> *const $crate::abi::PluginVTable {
            static VTABLE: $crate::abi::PluginVTable = $crate::__private::vtable::<$plugin>();
            &VTABLE
        }
    };
}

/// Generates the plugin library's entry symbol for the [`ConcurrentPlugin`]
/// type `T`, with the `CONCURRENT` flag set: the host may run its calls in parallel.
///
/// Use it once per `cdylib`, instead of [`export_plugin!`].
#[macro_export]
macro_rules! export_concurrent_plugin {
    ($plugin:ty) => {
        /// The ax plugin entry point.
        #[unsafe(no_mangle)]
        pub extern "C" fn ax_plugin_entry_v1() -> *const $crate::abi::PluginVTable {
            static VTABLE: $crate::abi::PluginVTable = $crate::__private::concurrent_vtable::<$plugin>();
            &VTABLE
        }
    };
}

/// A probe site: a place in the plugin the host can list at load time, break or
/// log at, and whose `&mut` bindings it may overwrite.
///
/// ```ignore
/// let mut words = count(text);
/// ax_plugin::probe!(text, first = words > 0, &mut words);
/// ```
///
/// Bindings are `name` (read), `name = expr` (an expression, evaluated only when
/// the host listens) and `&mut name` (read and writable by the host; the type
/// must implement `Serialize` and `Deserialize`). Any type can be bound: numbers,
/// booleans and strings travel as themselves, `Serialize` types as JSON, other
/// `Debug` types as their `Debug` text, anything else as its type name.
///
/// When the host does not listen, a probe costs one relaxed load and a branch.
#[macro_export]
macro_rules! probe {
    ($($bindings:tt)*) => {
        $crate::__probe_munch!(@names [] @values [] $($bindings)*)
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __probe_munch {
    (@names [$($n:expr),*] @values [$($v:expr),*] &mut $id:ident $(, $($rest:tt)*)?) => {
        $crate::__probe_munch!(
            @names [$($n,)* stringify!($id)]
            @values [$($v,)* (&&&&$crate::__private::CapMut(&mut $id as *mut _)).ax_capture()]
            $($($rest)*)?
        )
    };
    (@names [$($n:expr),*] @values [$($v:expr),*] $id:ident = $e:expr $(, $($rest:tt)*)?) => {
        $crate::__probe_munch!(
            @names [$($n,)* stringify!($id)]
            @values [$($v,)* (&&&&$crate::__private::Cap(&$e)).ax_capture()]
            $($($rest)*)?
        )
    };
    (@names [$($n:expr),*] @values [$($v:expr),*] $id:ident $(, $($rest:tt)*)?) => {
        $crate::__probe_munch!(
            @names [$($n,)* stringify!($id)]
            @values [$($v,)* (&&&&$crate::__private::Cap(&$id)).ax_capture()]
            $($($rest)*)?
        )
    };
    (@names [$($n:expr),*] @values [$($v:expr),*]) => {{
        #[allow(unused_imports)]
        use $crate::__private::{CaptureAny as _, CaptureDebug as _, CaptureFast as _, CaptureSerde as _};
        const __AX_NAMES: &[$crate::abi::StaticStr] = &[$($crate::abi::StaticStr::new($n)),*];
        #[$crate::__private::linkme::distributed_slice($crate::__private::PROBE_SITES)]
        #[linkme(crate = $crate::__private::linkme)]
        static __AX_PROBE: $crate::abi::ProbeSite = $crate::abi::ProbeSite {
            armed: ::core::sync::atomic::AtomicU32::new(0),
            line: line!(),
            column: column!(),
            file: $crate::abi::StaticStr::new(file!()),
            module_path: $crate::abi::StaticStr::new(module_path!()),
            function: {
                extern "C" fn __ax_probe_fn() -> $crate::abi::StaticStr {
                    fn __ax_marker() {}
                    $crate::__private::function_name(__ax_marker)
                }
                __ax_probe_fn
            },
            var_names: __AX_NAMES.as_ptr(),
            var_count: __AX_NAMES.len(),
        };
        if __AX_PROBE.is_armed() {
            $crate::__private::probe_hit(&__AX_PROBE, &mut [$($v),*]);
        }
    }};
}

/// Implementation details used by the macros. Not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::probe::{
        Cap, CapMut, CaptureAny, CaptureDebug, CaptureFast, CaptureSerde, Captured, PROBE_SITES, function_name,
        probe_hit,
    };
    pub use crate::shim::{concurrent_vtable, vtable};
    pub use linkme;
}
