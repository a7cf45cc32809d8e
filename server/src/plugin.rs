//! A plugin crate as the server knows it: its directory (the one holding
//! `ax-plugin.toml`), its manifest and its profile, read from disk.
//!
//! Reading never fails: a missing profile is `Missing`, a corrupt, truncated or
//! newer-version one is `Broken` with `ax-profile`'s message (which names the
//! file and what was expected), and a manifest that does not parse keeps its
//! text (for ranges) with `ax-manifest`'s error. A baseline (`.ax/baseline.json`)
//! is read with the profile: each span's change against it and each leak are
//! computed once per load, not per request.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use ax_manifest::{MANIFEST_FILE, Manifest, ManifestError};
use ax_profile::{BASELINE_PATH, Change, DEFAULT_PATH, Leak, Profile};

/// The profile of a plugin crate.
#[derive(Debug)]
pub enum ProfileState {
    /// No profile file yet.
    Missing,
    Loaded(Arc<LoadedProfile>),
    /// The file exists but could not be read as a profile; the message says why.
    Broken(String),
}

/// A profile with its callsites' files resolved to paths on disk.
#[derive(Debug)]
pub struct LoadedProfile {
    pub profile: Profile,
    /// Callsite `file` (as the compiler named it) → the file on disk, for those found.
    pub files: HashMap<String, PathBuf>,
    /// Wall time of everything the profile timed (the stacks' self times added up).
    pub profiled_ns: u64,
    /// When the file was written (its mtime), to tell "source changed since".
    pub written: Option<SystemTime>,
    /// Per callsite (same index as `profile.callsites`): p50, p90, p95, p99, max
    /// in ns, computed once here rather than from the histogram per request.
    pub percentiles: Vec<[u64; 5]>,
    /// Span name → its total time as a share of its callers' total time, from the stacks.
    pub parent_share: HashMap<String, f64>,
    /// The baseline, when there is one: when it was taken and by what.
    pub baseline: Option<BaselineInfo>,
    /// Per callsite (same index): its change against the baseline's span of
    /// the same name (`None` without a baseline, or a span new since).
    pub changes: Vec<Option<Change>>,
    /// Callsite index → the memory it keeps growing with its calls.
    pub leaks: HashMap<usize, Leak>,
}

/// What the hover says of the baseline.
#[derive(Debug)]
pub struct BaselineInfo {
    pub taken_at: String,
    pub command: String,
}

/// A plugin crate: its manifest and profile as last read.
#[derive(Debug)]
pub struct PluginCrate {
    pub dir: PathBuf,
    pub manifest_path: PathBuf,
    pub manifest_text: String,
    pub manifest: Result<Manifest, ManifestError>,
    pub profile_path: PathBuf,
    pub profile: ProfileState,
    pub baseline_path: PathBuf,
    /// Why the baseline file could not be read, when it could not.
    pub baseline_error: Option<String>,
}

impl PluginCrate {
    /// Reads the crate at `dir` (which holds `ax-plugin.toml`).
    pub fn read(dir: &Path) -> PluginCrate {
        let manifest_path = dir.join(MANIFEST_FILE);
        let (manifest_text, manifest) = match std::fs::read_to_string(&manifest_path) {
            Ok(text) => {
                let parsed = Manifest::parse(&text, &manifest_path);
                (text, parsed)
            }
            Err(source) => (String::new(), Err(ManifestError::Io { path: manifest_path.clone(), source })),
        };
        let profile_path = dir.join(DEFAULT_PATH);
        let baseline_path = dir.join(BASELINE_PATH);
        let mut this = PluginCrate {
            dir: dir.to_owned(),
            manifest_path,
            manifest_text,
            manifest,
            profile_path,
            profile: ProfileState::Missing,
            baseline_path,
            baseline_error: None,
        };
        this.reload_profile();
        this
    }

    /// Re-reads the profile file and its baseline.
    pub fn reload_profile(&mut self) {
        self.baseline_error = None;
        let baseline = match Profile::read(&self.baseline_path) {
            Ok(b) => Some(b),
            Err(_) if !self.baseline_path.exists() => None,
            Err(e) => {
                self.baseline_error = Some(e.to_string());
                None
            }
        };
        self.profile = match std::fs::metadata(&self.profile_path) {
            Err(_) => ProfileState::Missing,
            Ok(meta) => match Profile::read(&self.profile_path) {
                Ok(profile) => {
                    ProfileState::Loaded(Arc::new(self.resolve(profile, meta.modified().ok(), baseline.as_ref())))
                }
                Err(e) => ProfileState::Broken(e.to_string()),
            },
        };
    }

    /// Re-reads the manifest, from `text` when the editor has it open.
    pub fn reload_manifest(&mut self, text: Option<&str>) {
        let text = match text {
            Some(t) => t.to_owned(),
            None => std::fs::read_to_string(&self.manifest_path).unwrap_or_default(),
        };
        self.manifest = Manifest::parse(&text, &self.manifest_path);
        self.manifest_text = text;
    }

    fn resolve(&self, profile: Profile, written: Option<SystemTime>, baseline: Option<&Profile>) -> LoadedProfile {
        let mut files = HashMap::new();
        for c in &profile.callsites {
            if files.contains_key(&c.file) {
                continue;
            }
            if let Some(path) = resolve_file(&self.dir, &c.file) {
                files.insert(c.file.clone(), path);
            }
        }
        let profiled_ns = profile.profiled_ns();
        let percentiles = profile
            .callsites
            .iter()
            .map(|c| match &c.time {
                Some(t) => [
                    t.percentile_ns(50.0),
                    t.percentile_ns(90.0),
                    t.percentile_ns(95.0),
                    t.percentile_ns(99.0),
                    t.max_ns(),
                ],
                None => [0; 5],
            })
            .collect();
        let parent_share = parent_shares(&profile);
        let changes = profile
            .callsites
            .iter()
            .map(|c| {
                let base = ax_profile::counterpart(baseline?, c)?;
                ax_profile::baseline::change(base.time.as_ref()?, c.time.as_ref()?)
            })
            .collect();
        let leaks = profile
            .span_leaks()
            .into_iter()
            .filter_map(|(site, leak)| Some((profile.callsites.iter().position(|c| std::ptr::eq(c, site))?, leak)))
            .collect();
        let baseline = baseline.map(|b| BaselineInfo { taken_at: b.taken_at.clone(), command: b.command.clone() });
        LoadedProfile { profile, files, profiled_ns, written, percentiles, parent_share, baseline, changes, leaks }
    }

    pub fn loaded(&self) -> Option<&Arc<LoadedProfile>> {
        match &self.profile {
            ProfileState::Loaded(p) => Some(p),
            _ => None,
        }
    }

    /// The `[budget.functions]` target of span `name`, with where it comes from.
    pub fn function_budget(&self, name: &str) -> Option<(u64, String)> {
        let m = self.manifest.as_ref().ok()?;
        let d = m.budget.functions.get(name)?;
        Some((d.0.as_nanos() as u64, format!("[budget.functions] {name} = \"{d}\"")))
    }

    /// The function budget for span `name`: `[budget.functions] name`, else the
    /// call budget `[budget] max_duration`; with where it comes from.
    pub fn budget_of(&self, name: &str) -> Option<(u64, String)> {
        let m = self.manifest.as_ref().ok()?;
        if let Some(d) = m.budget.functions.get(name) {
            return Some((d.0.as_nanos() as u64, format!("[budget.functions] {name} = \"{d}\"")));
        }
        m.budget.max_duration.map(|d| (d.0.as_nanos() as u64, format!("[budget] max_duration = \"{d}\"")))
    }
}

/// Per span name: the time under it (its inclusive time, every stack through it)
/// over the time under its parent frames, from the folded stacks.
fn parent_shares(profile: &Profile) -> HashMap<String, f64> {
    // Inclusive time of every stack prefix.
    let mut inclusive: HashMap<&str, u64> = HashMap::new();
    for s in &profile.stacks {
        for end in s.stack.match_indices(';').map(|(i, _)| i).chain(std::iter::once(s.stack.len())) {
            *inclusive.entry(&s.stack[..end]).or_default() += s.self_ns;
        }
    }
    let mut sums: HashMap<String, (u64, u64)> = HashMap::new();
    for (&prefix, &ns) in &inclusive {
        let Some(cut) = prefix.rfind(';') else { continue };
        let parent = inclusive.get(&prefix[..cut]).copied().unwrap_or(0);
        let e = sums.entry(prefix[cut + 1..].to_owned()).or_default();
        e.0 += ns;
        e.1 += parent;
    }
    sums.into_iter().filter(|(_, (_, p))| *p > 0).map(|(k, (n, p))| (k, n as f64 / p as f64)).collect()
}

/// A callsite's `file` (relative to the workspace the plugin was built in, or to
/// the crate) → the file on disk inside the crate at `dir`, if it exists.
/// `examples/word-count/src/lib.rs` is found in `/ws/examples/word-count` as
/// itself, and in a copy at `/tmp/wc` as `/tmp/wc/src/lib.rs`.
pub fn resolve_file(dir: &Path, file: &str) -> Option<PathBuf> {
    let rel = Path::new(file);
    if rel.is_absolute() {
        return rel.starts_with(dir).then(|| rel.to_owned()).filter(|p| p.is_file());
    }
    // Relative to an ancestor (the workspace the crate was built in)…
    if let Some(p) = dir.ancestors().map(|a| a.join(rel)).find(|p| p.starts_with(dir) && p.is_file()) {
        return Some(p);
    }
    // …or to where the crate was when profiled (a copy, a moved checkout):
    // the longest tail of the path that exists in the crate.
    let parts: Vec<_> = rel.components().collect();
    (1..parts.len()).map(|skip| dir.join(parts[skip..].iter().collect::<PathBuf>())).find(|p| p.is_file())
}

/// The plugin crate directory holding `path`: the nearest ancestor with an `ax-plugin.toml`.
pub fn crate_dir_of(path: &Path) -> Option<PathBuf> {
    path.ancestors().skip(1).find(|d| d.join(MANIFEST_FILE).is_file()).map(Path::to_owned)
}

/// Plugin crates under `root` (itself included), a few levels deep, skipping
/// build output and dependencies.
pub fn find_crates(root: &Path, depth: u32, out: &mut Vec<PathBuf>) {
    if root.join(MANIFEST_FILE).is_file() {
        out.push(root.to_owned());
    }
    if depth == 0 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(root) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name == "target" || name == "node_modules" {
            continue;
        }
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            find_crates(&e.path(), depth - 1, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ax_profile::{PluginInfo, Stack};

    #[test]
    fn parent_share_from_folded_stacks() {
        let mut p = Profile::new(PluginInfo::named("wc"), "test", "test");
        for (stack, self_ns) in [("wc.count", 100), ("wc.count;count", 300), ("wc.count;count;count_words", 600)] {
            p.stacks.push(Stack { stack: stack.to_owned(), count: 1, self_ns });
        }
        let shares = parent_shares(&p);
        assert_eq!(shares["count"], 0.9, "count: 900 of the call's 1000");
        assert!((shares["count_words"] - 600.0 / 900.0).abs() < 1e-9);
        assert!(!shares.contains_key("wc.count"), "a root frame has no parent");
    }

    #[test]
    fn callsite_files_resolve_in_the_workspace_or_a_copy() {
        let ws = tempfile::tempdir().unwrap();
        let dir = ws.path().join("examples/word-count");
        std::fs::create_dir_all(dir.join("src")).unwrap();
        std::fs::write(dir.join("src/lib.rs"), "").unwrap();
        let lib = dir.join("src/lib.rs");
        assert_eq!(resolve_file(&dir, "examples/word-count/src/lib.rs"), Some(lib.clone()));
        assert_eq!(resolve_file(&dir, "src/lib.rs"), Some(lib.clone()));
        assert_eq!(resolve_file(&dir, "elsewhere/word-count/src/lib.rs"), Some(lib));
        assert_eq!(resolve_file(&dir, "src/main.rs"), None);
        assert_eq!(resolve_file(&dir, "/etc/passwd"), None, "absolute paths outside the crate are not followed");
    }
}
