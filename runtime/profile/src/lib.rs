//! ax-profile: the profile file of ax (`.ax/profile.json`) and the analyses
//! over it, without the runtime.
//!
//! The runtime records into these types while a plugin runs; `ax run --profile`
//! writes them; `ax perf inspect`, `ax perf flamegraph` and the language server
//! read them. A [`Profile`] holds, per span callsite, [`Time`]s (count, total,
//! self and CPU time, an HDR histogram for the percentiles), per probe and event
//! a hit count, per method the calls' times, folded [`Stack`]s for flame graphs,
//! the [`Startup`] phases and the [`Recommendation`]s derived from all that.
//! The format is versioned and documented in `docs/profile-format.md`.
//!
//! This crate must not know plugins, the runtime or the command line: it gets
//! figures and returns files, merges and recommendations.

pub mod baseline;
mod file;
pub mod kept;
pub mod recommend;
pub mod startup;
mod time;

pub use baseline::{BASELINE_PATH, Change, baseline_beside, counterpart, save_baseline};
pub use file::{
    CallsiteKind, CallsiteProfile, DEFAULT_PATH, FORMAT, MergeError, MethodProfile, PluginInfo, Profile, ProfileError,
    SandboxDenial, Stack, VERSION, write_atomically,
};
pub use kept::{Kept, Leak};
pub use recommend::{Location, ManifestEdit, Recommendation, recommend};
pub use startup::{Phase, PhaseTime, Startup, Thresholds};
pub use time::{Histogram, SIGNIFICANT_FIGURES, Time};
