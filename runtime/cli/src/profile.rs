//! Profiling switches of `ax run` and where profiles live: the `--profile*`
//! arguments, the default path (`.ax/profile.json` in the plugin's crate
//! directory, or beside a bare library), finishing a run's profile (metadata,
//! startup, replace or merge), recording a sandboxed run's denials in it, and
//! finding the profile `ax perf inspect` and `ax perf flamegraph` are pointed at.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use ax_profile::{DEFAULT_PATH, PluginInfo, Profile, SandboxDenial, Thresholds};
use ax_runtime::{Plugin, PluginSource, ProfileOptions, StartupMonitor};
use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct ProfileArgs {
    /// Profile the plugin: time its spans, calls and startup, count its probe
    /// hits, and write the profile (default: .ax/profile.json in the plugin's
    /// crate directory, or beside a bare library). AX_PROFILE=1 does the same; AX_PROFILE=0 is off.
    #[arg(long, env = "AX_PROFILE", value_parser = clap::builder::FalseyValueParser::new())]
    profile: bool,
    /// Write the profile to FILE instead (implies --profile).
    #[arg(long, value_name = "FILE")]
    profile_out: Option<PathBuf>,
    /// Add this run to the profile already in the file instead of replacing it (implies --profile).
    #[arg(long)]
    profile_merge: bool,
    /// Also measure each span's CPU time: a system call at every span enter and exit (implies --profile).
    #[arg(long)]
    profile_cpu: bool,
}

impl ProfileArgs {
    /// What to profile, if profiling at all.
    pub(crate) fn options(&self) -> Option<ProfileOptions> {
        let on = self.profile || self.profile_out.is_some() || self.profile_merge || self.profile_cpu;
        on.then_some(ProfileOptions { span_cpu: self.profile_cpu })
    }
}

/// Where a plugin's profile goes unless told otherwise.
pub(crate) fn default_path(source: &PluginSource, library: &Path) -> PathBuf {
    let dir = match source {
        PluginSource::Manifest { dir, .. } => dir.as_path(),
        PluginSource::Library(_) => library.parent().unwrap_or(Path::new(".")),
    };
    dir.join(DEFAULT_PATH)
}

/// The startup thresholds of `source`: its manifest's `[startup]`, or the defaults.
fn thresholds(source: &PluginSource) -> Thresholds {
    match source {
        PluginSource::Manifest { manifest, .. } => ax_runtime::startup_thresholds(&manifest.startup),
        PluginSource::Library(_) => Thresholds::default(),
    }
}

/// The command line of this process, as a shell would take it back.
fn command_line() -> String {
    let quote = |arg: String| {
        if !arg.is_empty() && arg.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c)) {
            arg
        } else {
            format!("'{}'", arg.replace('\'', r"'\''"))
        }
    };
    std::iter::once("ax".to_owned()).chain(std::env::args().skip(1).map(quote)).collect::<Vec<_>>().join(" ")
}

/// Writes the profile of a finished `ax run`: what `plugin` recorded, the
/// startup `monitor` timed, the run's metadata; replacing the file or merged
/// into it. Says where on stderr.
pub(crate) fn write_run_profile(
    args: &ProfileArgs,
    source: &PluginSource,
    library: &Path,
    plugin: &Plugin,
    monitor: &StartupMonitor,
) -> Result<()> {
    let mut profile = plugin.profile();
    profile.tool = format!("ax {}", env!("CARGO_PKG_VERSION"));
    profile.command = command_line();
    if let PluginSource::Manifest { manifest, manifest_path, .. } = source {
        profile.plugin.version = Some(manifest.plugin.version.clone());
        profile.plugin.manifest = Some(manifest_path.display().to_string());
    }
    profile.startup = Some(monitor.startup(thresholds(source)));
    let path = args.profile_out.clone().unwrap_or_else(|| default_path(source, library));
    if args.profile_merge && path.exists() {
        let mut merged = Profile::read(&path).with_context(|| {
            format!("--profile-merge: cannot add this run to {}; drop --profile-merge to replace it", path.display())
        })?;
        merged.merge(profile).map_err(|e| anyhow!("{}: {e}; drop --profile-merge to replace it", path.display()))?;
        profile = merged;
    }
    profile.write(&path)?;
    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let calls: u64 = profile.methods.iter().map(|m| m.count).sum();
    let runs = if profile.runs == 1 { String::new() } else { format!(", {} runs merged", profile.runs) };
    eprintln!(
        "profile: {} ({}, {}{runs}); see `ax perf inspect {}`",
        path.display(),
        plural(calls, "call", "calls"),
        plural(profile.callsites.len() as u64, "callsite", "callsites"),
        path.display()
    );
    Ok(())
}

/// Records what the sandbox denied in this `ax run` (per method, capability)
/// in the plugin's profile, where ax-lsp shows it on the manifest: it replaces
/// the last sandboxed run's record; a profile is created when there is none and
/// something was denied. A file ax cannot read as a profile is left alone, and
/// a failure to record is a warning: the run itself went as it went.
pub(crate) fn record_sandbox_denials(source: &PluginSource, library: &Path, denials: Vec<SandboxDenial>) {
    let path = default_path(source, library);
    let mut profile = match Profile::read(&path) {
        Ok(profile) if profile.sandbox_denials == denials => return,
        Ok(profile) => profile,
        Err(_) if !path.exists() && denials.is_empty() => return,
        Err(_) if !path.exists() => {
            let mut plugin = PluginInfo::named(source.name());
            plugin.library = library.display().to_string();
            if let PluginSource::Manifest { manifest, manifest_path, .. } = source {
                plugin.version = Some(manifest.plugin.version.clone());
                plugin.manifest = Some(manifest_path.display().to_string());
            }
            Profile::new(plugin, format!("ax {}", env!("CARGO_PKG_VERSION")), command_line())
        }
        Err(e) => {
            eprintln!("ax: WARNING: the sandbox's denials are not recorded: {e}");
            return;
        }
    };
    let denied = !denials.is_empty();
    profile.sandbox_denials = denials;
    // The timings in an existing profile are as old as they were: keep its
    // mtime, which ax-lsp compares with the sources' ("profiled before this edit").
    let measured = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
    let written = profile.write(&path).map_err(|e| e.to_string()).and_then(|()| match measured {
        Some(at) => std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(at))
            .map_err(|e| format!("{}: cannot keep its time: {e}", path.display())),
        None => Ok(()),
    });
    match written {
        Ok(()) if denied => eprintln!("ax: the sandbox's denials are recorded in {}", path.display()),
        Ok(()) => {}
        Err(e) => eprintln!("ax: WARNING: the sandbox's denials are not recorded: {e}"),
    }
}

/// The profile a user pointed at: a profile file, or a plugin (crate
/// directory, manifest or library) whose default profile to read; `None`
/// means `.ax/profile.json` in the current directory.
pub(crate) fn find(target: Option<&Path>) -> Result<(PathBuf, Profile)> {
    let path = locate(target)?;
    if !path.exists() {
        bail!(
            "{}: no profile there; expected one written by `ax run --profile PLUGIN METHOD INPUT` (or --calls FILE)",
            path.display()
        );
    }
    let profile = Profile::read(&path)?;
    Ok((path, profile))
}

/// Where the profile of `target` is (a profile file, or a plugin's default
/// profile path; `.ax/profile.json` here when none), whether or not it exists.
pub(crate) fn locate(target: Option<&Path>) -> Result<PathBuf> {
    Ok(match target {
        None => PathBuf::from(DEFAULT_PATH),
        Some(p) if p.is_file() && p.extension().is_some_and(|e| e == "json") => p.to_owned(),
        Some(p) => {
            let source = PluginSource::resolve(p)?;
            let library = match &source {
                PluginSource::Library(lib) => lib.clone(),
                PluginSource::Manifest { dir, .. } => dir.clone(),
            };
            default_path(&source, &library)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_go_to_the_crate_or_beside_the_library() {
        let lib = PathBuf::from("/x/target/debug/libdemo.so");
        assert_eq!(
            default_path(&PluginSource::Library(lib.clone()), &lib),
            PathBuf::from("/x/target/debug/.ax/profile.json")
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ax-plugin.toml"), "[plugin]\nname = \"demo\"\nversion = \"0.1.0\"\n").unwrap();
        let source = PluginSource::resolve(dir.path()).unwrap();
        assert_eq!(default_path(&source, &lib), dir.path().join(".ax/profile.json"));
        assert_eq!(thresholds(&source), Thresholds::default());
    }

    #[test]
    fn any_profiling_flag_turns_profiling_on() {
        let args = |profile, out: Option<&str>, merge, cpu| ProfileArgs {
            profile,
            profile_out: out.map(PathBuf::from),
            profile_merge: merge,
            profile_cpu: cpu,
        };
        assert_eq!(args(false, None, false, false).options(), None);
        assert_eq!(args(true, None, false, false).options(), Some(ProfileOptions { span_cpu: false }));
        assert!(args(false, Some("p.json"), false, false).options().is_some());
        assert!(args(false, None, true, false).options().is_some());
        assert_eq!(args(false, None, false, true).options(), Some(ProfileOptions { span_cpu: true }));
    }

    #[test]
    fn a_missing_profile_says_how_to_make_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.json");
        std::fs::write(&path, "{}").unwrap();
        std::fs::remove_file(&path).unwrap();
        let err = format!("{:#}", find(Some(&path)).unwrap_err());
        assert!(err.contains("p.json: no such file or directory"), "{err}");
        let lib = dir.path().join("libdemo.so");
        std::fs::write(&lib, "x").unwrap();
        let err = format!("{:#}", find(Some(&lib)).unwrap_err());
        assert!(err.ends_with(".ax/profile.json: no profile there; expected one written by `ax run --profile PLUGIN METHOD INPUT` (or --calls FILE)"), "{err}");
    }
}
