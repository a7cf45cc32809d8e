//! `ax perf ab --against REV CRATE`: the baseline is CRATE as it was at git
//! revision REV, so "did my change slow this down?" is one command.
//!
//! The steps: find the git repository holding CRATE and resolve REV to a
//! commit; check that commit out, detached, in a worktree of its own under
//! `<repository>/target/ax-against/<commit>` (made once per commit and kept);
//! build the crate there with cargo into a target directory of its own,
//! `<repository>/target/ax-against/target` (or `$AX_AGAINST_TARGET_DIR`),
//! shared by every revision, so running again rebuilds nothing and another
//! revision rebuilds only what changed; copy its library beside the worktree
//! (`<commit>-<file>`). Never the candidate's target directory: cargo hashes a
//! path package by its path relative to its workspace, so the same crate from
//! two checkouts would share build state and one build would pass for the
//! other. The working tree is never touched. `git worktree remove` (or deleting
//! the directory and `git worktree prune`) cleans up.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use ax_runtime::{BuildOptions, PluginSource};
use serde_json::Value;

use super::ab::Side;

/// The baseline side: `crate_path` at `rev`, built in its worktree.
pub(super) fn baseline(rev: &str, crate_path: &Path, build: &mut BuildOptions<'_>) -> Result<Side> {
    let candidate = PluginSource::resolve(crate_path).context("the candidate")?;
    let PluginSource::Manifest { dir, manifest, .. } = &candidate else {
        bail!(
            "--against {rev}: {} is a library; expected a plugin crate directory in a git repository",
            crate_path.display()
        );
    };
    if manifest.plugin.library.is_some() {
        bail!(
            "--against {rev}: {}'s manifest names its library; expected a crate that cargo builds (no `library` in [plugin])",
            crate_path.display()
        );
    }
    let dir = dir.canonicalize().with_context(|| format!("{}: cannot resolve the crate directory", dir.display()))?;
    let toplevel =
        PathBuf::from(git(&dir, &["rev-parse", "--show-toplevel"]).map_err(|e| {
            anyhow::anyhow!("--against {rev}: {} is not in a git repository ({e})", crate_path.display())
        })?);
    let commit = git(&toplevel, &["rev-parse", "--verify", "--quiet", &format!("{rev}^{{commit}}")])
        .map_err(|_| anyhow::anyhow!("--against {rev}: not a commit of {}", toplevel.display()))?;
    let relative = dir
        .strip_prefix(toplevel.canonicalize().unwrap_or_else(|_| toplevel.clone()))
        .with_context(|| format!("{} is outside {}", dir.display(), toplevel.display()))?
        .to_owned();

    let cache = toplevel.join("target").join("ax-against");
    let short = &commit[..commit.len().min(12)];
    let worktree = cache.join(short);
    if !worktree.join(".git").exists() {
        std::fs::create_dir_all(&cache).with_context(|| format!("{}: cannot create", cache.display()))?;
        let target = worktree.to_string_lossy().into_owned();
        git(&toplevel, &["worktree", "add", "--detach", "--force", &target, &commit])
            .with_context(|| format!("--against {rev}: cannot check {short} out in {}", worktree.display()))?;
    }
    let crate_then = worktree.join(&relative);
    let source = PluginSource::resolve(&crate_then)
        .with_context(|| format!("--against {rev}: the crate at {short} ({})", crate_then.display()))?;
    let target_dir = std::env::var_os("AX_AGAINST_TARGET_DIR").map_or_else(|| cache.join("target"), PathBuf::from);
    let built = cargo_build(&crate_then, &target_dir, build.release)
        .with_context(|| format!("--against {rev}: building the crate at {short}"))?;
    let file = built.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_else(|| "plugin".to_owned());
    let library = cache.join(format!("{short}-{file}"));
    std::fs::copy(&built, &library)
        .with_context(|| format!("cannot copy {} to {}", built.display(), library.display()))?;
    Ok(Side { path: PathBuf::from(format!("{}@{rev}", crate_path.display())), source, library })
}

/// Builds the cdylib of the crate in `dir` into `target_dir`; returns it.
fn cargo_build(dir: &Path, target_dir: &Path, release: bool) -> Result<PathBuf> {
    let manifest = dir.join("Cargo.toml");
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.args(["build", "--lib", "--message-format=json-render-diagnostics", "--manifest-path"])
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", target_dir)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    if release {
        cmd.arg("--release");
    }
    let out = cmd.output().context("cannot run cargo")?;
    if !out.status.success() {
        bail!("cargo build failed ({}); see cargo's messages above", out.status);
    }
    let manifest = manifest.canonicalize().unwrap_or(manifest);
    let artifact = String::from_utf8_lossy(&out.stdout).lines().find_map(|line| {
        let msg: Value = serde_json::from_str(line).ok()?;
        let ours = msg["reason"] == "compiler-artifact"
            && msg["manifest_path"]
                .as_str()
                .is_some_and(|p| Path::new(p).canonicalize().ok().as_ref() == Some(&manifest))
            && msg["target"]["kind"].as_array().is_some_and(|kinds| kinds.iter().any(|k| k == "cdylib"));
        if !ours {
            return None;
        }
        let files = msg["filenames"].as_array()?;
        files.iter().filter_map(Value::as_str).find(|f| f.ends_with(std::env::consts::DLL_SUFFIX)).map(PathBuf::from)
    });
    artifact.with_context(|| format!("{}: the crate builds no cdylib", dir.display()))
}

/// Runs git in `dir`; its trimmed stdout, or its stderr as the error.
fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git").arg("-C").arg(dir).args(args).output().context("cannot run git")?;
    if !out.status.success() {
        let message = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        bail!("git {}: {}", args.join(" "), if message.is_empty() { out.status.to_string() } else { message });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
