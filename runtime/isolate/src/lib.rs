//! `ax-isolate`: the child-process host. A plugin runs in a child `ax`
//! process ([`IsolatedPlugin`], the parent side; [`serve`], the child side),
//! which is killed on a crash or a hard limit and restarted from the last
//! state snapshot; [`child_host`] starts such children (isolated mode and
//! debug sessions) over a peer-checked Unix socket.
//!
//! This crate sits above `ax-runtime`: the child serves the plugin with an
//! ordinary in-process `Host`, and the parent republishes what the child says
//! on the caller's `EventBus`. `ax-runtime` never depends on it.
//! [`sandbox`] confines the child to what the manifest's `[sandbox]` grants.
//!
//! Invariants:
//! - `ax-runtime` never depends on this crate; the only things the two share
//!   about children are `ax_runtime::wire` and `CHILD_CRASH_PREFIX`.
//! - A child is accepted only from the process just started (uid and pid,
//!   `SO_PEERCRED`), on a socket created exclusively in the private directory.
//! - A sandboxed plugin's library is never opened before the child has
//!   confined itself; a rule the kernel cannot enforce refuses the load
//!   unless the manifest says `sandbox = "best-effort"`, and then every
//!   unenforced rule is reported ([`IsolatedPlugin::sandbox_unenforced`]).
//! - A denial is an error inside the plugin (`EPERM`/`EACCES`), never a kill
//!   of a child that did not change its own `SIGSYS` handling.
//! - Whatever the child does, the parent keeps serving: a dead or killed
//!   child is replaced and given the last state snapshot.

#[cfg(unix)]
pub mod child_host;
#[cfg(unix)]
pub mod isolated;
#[cfg(target_os = "linux")]
pub mod sandbox;

#[cfg(unix)]
pub use isolated::{IsolatedPlugin, IsolationOptions, serve, signal_name};
#[cfg(target_os = "linux")]
pub use sandbox::Sandbox;
