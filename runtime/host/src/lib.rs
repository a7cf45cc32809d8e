//! `ax-runtime`: the host side of ax.
//!
//! A [`Host`] loads native plugin libraries (cdylibs built with the `ax-plugin`
//! SDK) and gives back [`Plugin`] instances that run on their own worker thread.
//! Everything that happens is published as an [`Event`] on the host's
//! [`EventBus`]. The host side of the tracing bridge ([`bridge`]) receives the
//! plugin's spans, events and probe hits; [`PluginSource`] turns what a user
//! typed into a library, building it with cargo when needed.
//! [`ReloadablePlugin`] replaces a serving plugin by a new build, carrying its
//! state and rolling back on failure; [`LibraryWatcher`] does so when the
//! library file changes. With [`Instrumentation::profile`] on, the bridge's
//! profiler times every span and call ([`Plugin::profile`]), and
//! [`StartupMonitor`] times the phases of loading ([`Host::load_monitored`]),
//! both in the `ax-profile` file format.
//!
//! This crate knows nothing of DAP, LSP or the command line: the adapter, the
//! server and the CLI translate their protocols into calls on this API.

pub mod bridge;
mod budget;
mod cache;
mod calls_file;
pub mod clock;
#[cfg(unix)]
mod crash;
pub mod debug;
#[cfg(unix)]
pub mod debug_host;
mod error;
mod events;
mod host;
mod lazy;
mod loader;
#[cfg(unix)]
pub mod peer;
mod plugin;
mod profile;
mod reload;
#[cfg(unix)]
pub mod rundir;
mod source;
mod startup;
pub mod trace;
mod watch;
pub mod wire;

pub use ax_manifest as manifest;
pub use bridge::{
    CallsiteInfo, Instrumentation, PanicSite, ProbeHandler, ProbeHit, ProbeSiteInfo, ProbeVar, SandboxDenial,
    StackFrame, sandbox_denied,
};
pub use budget::{
    Budget, BudgetKind, SANDBOX_CAPABILITIES, SandboxDenials, TICK as WATCHDOG_TICK, Usage, Violation, format_bytes,
    format_duration, paused,
};
pub use cache::{CacheConfig, CacheStats, QueryCache};
pub use calls_file::{CallLine, CallsFileError, no_calls, parse_call_line, read_calls_file};
#[cfg(unix)]
pub use crash::{CHILD_CRASH_PREFIX, install_child_crash_reporter, install_crash_reporter};
pub use error::{CallError, LoadError, PluginFailure, SourceLocation};
pub use events::{Event, EventBus, InstanceId, Level, LogLine, SubscriptionId};
pub use host::{Host, HostOptions, StagedLibrary};
pub use lazy::LazyPlugin;
pub use loader::LoadStats;
pub use plugin::{Plugin, SavedState, StateBytes};
pub use profile::ProfileOptions;
pub use reload::{ReadyHook, ReloadError, ReloadOptions, ReloadOutcome, ReloadReport, ReloadStep, ReloadablePlugin};
pub use source::{BuildOptions, PluginSource, SourceError};
pub use startup::{StartupMonitor, resident_bytes, thresholds as startup_thresholds};
pub use trace::{CallEnd, CallStart, CallTrace, CallTracer, FieldRef, Fields, SpanStart, Tracer};
/// The log filter type of [`Instrumentation::log_filter`] (`AX_LOG` syntax).
pub use tracing_subscriber::filter::Targets;
pub use watch::{LibraryWatcher, SourceWatcher, WatchError};
