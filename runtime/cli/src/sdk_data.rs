//! The SDK that `ax new` points new plugins at, carried inside the `ax`
//! binary: an installed `ax` must not depend on the checkout it was built
//! from, which may since have moved or gone.
//!
//! `build.rs` packs the sources of `sdk/` and `runtime/abi/` and the
//! workspace manifest they inherit from. The first `ax new` writes them to
//! `$XDG_DATA_HOME/ax/sdk-<version>-<digest>/` (`~/.local/share/ax/…` without
//! it) as a small workspace of its own: the two crates, and a root manifest
//! keeping only what they inherit (package fields, their dependencies, lints).
//! The directory is written beside its final name and renamed into place, so
//! a reader never sees half of it; it is never changed afterwards (another
//! SDK has another digest, hence another directory).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

include!(concat!(env!("OUT_DIR"), "/embedded_sdk.rs"));

/// The SDK crate inside the data directory, written there first if needed.
pub(crate) fn sdk_dir() -> Result<PathBuf> {
    let data_home = match (std::env::var_os("XDG_DATA_HOME"), std::env::var_os("HOME")) {
        (Some(xdg), _) if !xdg.is_empty() => PathBuf::from(xdg),
        (_, Some(home)) if !home.is_empty() => PathBuf::from(home).join(".local/share"),
        _ => bail!(
            "cannot place the ax-plugin SDK: neither XDG_DATA_HOME nor HOME is set; expected one of them, or --sdk DIR"
        ),
    };
    install(&data_home.join("ax"))
}

/// Writes the packed SDK under `base` unless it is already there; returns its `sdk` directory.
pub(crate) fn install(base: &Path) -> Result<PathBuf> {
    let name = format!("sdk-{}-{}", env!("CARGO_PKG_VERSION"), &DIGEST[..12]);
    let target = base.join(&name);
    let sdk = target.join("sdk");
    if sdk.join("Cargo.toml").is_file() {
        return Ok(sdk);
    }
    let partial = base.join(format!(".{name}.partial-{}", std::process::id()));
    let written = write_tree(&partial);
    let placed = written.and_then(|()| match std::fs::rename(&partial, &target) {
        Ok(()) => Ok(()),
        // Another `ax new` placed it first: theirs is the same.
        Err(_) if sdk.join("Cargo.toml").is_file() => Ok(()),
        Err(e) => Err(e).with_context(|| format!("{}: cannot move the SDK into place", target.display())),
    });
    let _ = std::fs::remove_dir_all(&partial);
    placed?;
    Ok(sdk)
}

fn write_tree(dir: &Path) -> Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    for (relative, contents) in FILES {
        let contents = if *relative == "Cargo.toml" { workspace_manifest(contents) } else { (*contents).to_owned() };
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("{}: cannot create the SDK's directory", parent.display()))?;
        }
        std::fs::write(&path, contents).with_context(|| format!("{}: cannot write the SDK", path.display()))?;
    }
    Ok(())
}

/// The checkout's workspace manifest cut down to what the two crates inherit.
fn workspace_manifest(root: &str) -> String {
    // Dependencies the packed crates take from the workspace (`serde.workspace = true`).
    let inherited: Vec<&str> = FILES
        .iter()
        .filter(|(path, _)| path.ends_with("/Cargo.toml"))
        .flat_map(|(_, text)| text.lines())
        .filter_map(|line| line.trim().strip_suffix(".workspace = true"))
        .collect();
    let mut out = format!(
        "# The ax-plugin SDK as carried by ax {}: written by `ax new`, never edited.\n\n\
         [workspace]\nresolver = \"3\"\nmembers = [\"sdk\", \"runtime/abi\"]\n",
        env!("CARGO_PKG_VERSION")
    );
    let mut section = String::new();
    for line in root.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            section = trimmed.to_owned();
            if keep_section(&section) {
                out.push('\n');
                out.push_str(line);
                out.push('\n');
            }
            continue;
        }
        if !keep_section(&section) || trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if section == "[workspace.dependencies]" {
            let key = trimmed.split(['=', ' ']).next().unwrap_or_default();
            if !inherited.contains(&key) {
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn keep_section(section: &str) -> bool {
    section == "[workspace.package]" || section == "[workspace.dependencies]" || section.starts_with("[workspace.lints")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_workspace_of_the_sdk_and_the_abi_once() {
        let base = tempfile::tempdir().unwrap();
        let sdk = install(base.path()).unwrap();
        assert!(sdk.ends_with("sdk"));
        let text = std::fs::read_to_string(sdk.join("Cargo.toml")).unwrap();
        assert!(text.contains("name = \"ax-plugin\""));
        assert!(sdk.join("src/lib.rs").is_file() && sdk.join("../runtime/abi/src/lib.rs").is_file());
        let root = std::fs::read_to_string(sdk.join("../Cargo.toml")).unwrap();
        assert!(root.contains("members = [\"sdk\", \"runtime/abi\"]"), "{root}");
        assert!(root.contains("ax-abi = { path = \"runtime/abi\" }") && root.contains("\nlinkme = "), "{root}");
        assert!(!root.contains("ax-runtime") && !root.contains("[profile"), "{root}");
        // A second call finds it in place; nothing partial is left behind.
        assert_eq!(install(base.path()).unwrap(), sdk);
        let entries: Vec<_> = std::fs::read_dir(base.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(entries.len(), 1, "{entries:?}");
    }
}
