//! `ax-isolate`: the child-process host. A plugin runs in a child `ax`
//! process ([`IsolatedPlugin`], the parent side; [`serve`], the child side),
//! which is killed on a crash or a hard limit and restarted from the last
//! state snapshot; [`child_host`] starts such children (isolated mode and
//! debug sessions) over a peer-checked Unix socket.
//!
//! This crate sits above `ax-runtime`: the child serves the plugin with an
//! ordinary in-process `Host`, and the parent republishes what the child says
//! on the caller's `EventBus`. `ax-runtime` never depends on it.

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
