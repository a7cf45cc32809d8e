//! `ax perf baseline PLUGIN_OR_PROFILE`: saves the current profile as the
//! baseline (`baseline.json` beside it, `.ax/baseline.json` for a crate),
//! which `ax perf inspect` and the language server compare every later
//! profile with; `--clear` removes it.
//!
//! The profile is read and checked before it is copied (atomically), so a
//! broken profile never becomes a baseline.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use ax_profile::{baseline_beside, save_baseline};
use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct BaselineArgs {
    /// A profile file (.json), or a plugin — crate directory, manifest or library —
    /// whose profile (.ax/profile.json) becomes its baseline (.ax/baseline.json).
    target: Option<PathBuf>,
    /// Remove the baseline instead.
    #[arg(long)]
    clear: bool,
}

pub(crate) fn run(args: BaselineArgs) -> Result<ExitCode> {
    let profile = crate::profile::locate(args.target.as_deref())?;
    let baseline = baseline_beside(&profile);
    if args.clear {
        match std::fs::remove_file(&baseline) {
            Ok(()) => eprintln!("baseline: {} removed", baseline.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                eprintln!("baseline: none at {}; nothing to clear", baseline.display());
            }
            Err(e) => return Err(e).with_context(|| format!("{}: cannot remove the baseline", baseline.display())),
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !profile.exists() {
        bail!(
            "{}: no profile there to save as the baseline; expected one written by `ax run --profile` (or `ax perf run --profile`)",
            profile.display()
        );
    }
    let saved = save_baseline(&profile, &baseline)?;
    let spans = saved.callsites.iter().filter(|c| c.time.is_some()).count();
    eprintln!(
        "baseline: {} ({} of {}, taken {}, {spans} timed callsites); `ax perf inspect` and ax-lsp now compare with it",
        baseline.display(),
        profile.display(),
        saved.plugin.name,
        saved.taken_at
    );
    Ok(ExitCode::SUCCESS)
}
