//! `ax perf flamegraph [PROFILE] -o out.svg`: the profile's folded stacks
//! drawn as an interactive SVG flame graph by `inferno`.
//!
//! Each frame's width is its self time plus its children's: a call's root frame
//! (`plugin.method`) spans the whole call, spans sit on top of the spans they
//! ran in. PROFILE is a profile file or a plugin whose profile to read; without
//! it, `.ax/profile.json` in the current directory.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct FlamegraphArgs {
    /// A profile file (.json), or a plugin whose profile to read (default: .ax/profile.json here).
    profile: Option<PathBuf>,
    /// Where to write the SVG.
    #[arg(short, long, value_name = "FILE", default_value = "flamegraph.svg")]
    output: PathBuf,
}

pub(crate) fn run(args: FlamegraphArgs) -> Result<ExitCode> {
    let (path, profile) = crate::profile::find(args.profile.as_deref())?;
    let folded = profile.folded();
    if folded.is_empty() {
        bail!(
            "{}: no timed stack to draw; expected a profile of at least one call (`ax run --profile PLUGIN METHOD INPUT`)",
            path.display()
        );
    }
    let mut options = inferno::flamegraph::Options::default();
    options.title = format!("{}: {}", profile.plugin.name, profile.command);
    options.subtitle = Some(format!("{}, {} run(s); self time in ns", profile.taken_at, profile.runs));
    options.count_name = "ns".to_owned();
    options.deterministic = true;
    let mut svg = Vec::new();
    inferno::flamegraph::from_lines(&mut options, folded.lines(), &mut svg)
        .with_context(|| format!("{}: cannot draw the flame graph", path.display()))?;
    let svg = String::from_utf8(svg).context("inferno wrote an SVG that is not UTF-8")?;
    ax_profile::write_atomically(&args.output, &svg)
        .with_context(|| format!("{}: cannot write the flame graph", args.output.display()))?;
    println!("{}: flame graph of {} stacks from {}", args.output.display(), folded.lines().count(), path.display());
    Ok(ExitCode::SUCCESS)
}
