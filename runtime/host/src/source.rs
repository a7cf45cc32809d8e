//! From what a user typed (`./word-count`, `ax-plugin.toml`, `libfoo.so`) to a
//! plugin library on disk, building it with cargo when asked.
//!
//! A crate directory is built with `cargo build --message-format=json-render-diagnostics`:
//! cargo's own diagnostics go to the terminal (or to a line callback, for the
//! debug adapter's console) and the cdylib's path is read from cargo's
//! `compiler-artifact` message rather than guessed. Without building, the path is
//! derived from `cargo metadata`.
//!
//! A crate that shares its workspace with other members is built in a target
//! directory of its own, `<target>/ax-plugins`: cargo unifies the features of
//! shared dependencies over the packages it builds, so a workspace build and a
//! build of the plugin alone want different builds of, say, `serde`, and each
//! would rebuild the plugin after the other. Alone in its directory, the
//! plugin is rebuilt only when something changed. (A crate alone in its
//! workspace, as `ax new` makes them, uses the workspace's target directory.)

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ax_manifest::{MANIFEST_FILE, Manifest, ManifestError};
use serde_json::Value;

/// A plugin as the user designated it.
#[derive(Clone, Debug)]
pub enum PluginSource {
    /// A directory holding `ax-plugin.toml`, or that file itself.
    Manifest { dir: PathBuf, manifest_path: PathBuf, manifest: Box<Manifest> },
    /// A library file, loaded as is.
    Library(PathBuf),
}

impl PluginSource {
    /// Interprets `path`: a directory with a manifest, a manifest, or a library.
    pub fn resolve(path: &Path) -> Result<PluginSource, SourceError> {
        if path.is_dir() {
            let manifest_path = path.join(MANIFEST_FILE);
            if !manifest_path.is_file() {
                return Err(SourceError::NoManifest { dir: path.to_owned() });
            }
            return PluginSource::from_manifest(&manifest_path);
        }
        if !path.exists() {
            return Err(SourceError::NotFound { path: path.to_owned() });
        }
        if path.file_name().is_some_and(|n| n == MANIFEST_FILE) || path.extension().is_some_and(|e| e == "toml") {
            return PluginSource::from_manifest(path);
        }
        Ok(PluginSource::Library(path.to_owned()))
    }

    fn from_manifest(manifest_path: &Path) -> Result<PluginSource, SourceError> {
        let manifest = Manifest::load(manifest_path)?;
        let dir = manifest_path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_owned();
        Ok(PluginSource::Manifest { dir, manifest_path: manifest_path.to_owned(), manifest: Box::new(manifest) })
    }

    /// The plugin's name: the manifest's, or the library's file name without `lib` and extension.
    pub fn name(&self) -> String {
        match self {
            PluginSource::Manifest { manifest, .. } => manifest.plugin.name.clone(),
            PluginSource::Library(path) => {
                let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("plugin");
                stem.strip_prefix(std::env::consts::DLL_PREFIX).filter(|s| !s.is_empty()).unwrap_or(stem).to_owned()
            }
        }
    }

    /// The manifest, if the plugin was given by one.
    pub fn manifest(&self) -> Option<&Manifest> {
        match self {
            PluginSource::Manifest { manifest, .. } => Some(manifest),
            PluginSource::Library(_) => None,
        }
    }

    /// The `[config]` JSON to hand to `init`.
    pub fn config_json(&self) -> String {
        match self {
            PluginSource::Manifest { manifest, .. } => manifest.config_json(),
            PluginSource::Library(_) => "{}".to_owned(),
        }
    }

    /// The manifest's `[plugin] isolation` (none for a bare library).
    pub fn isolation(&self) -> ax_manifest::Isolation {
        match self {
            PluginSource::Manifest { manifest, .. } => manifest.plugin.isolation,
            PluginSource::Library(_) => ax_manifest::Isolation::None,
        }
    }

    /// The manifest's `[sandbox]` with its paths resolved against the
    /// manifest's directory, and `[plugin] sandbox` (none for a bare library).
    pub fn sandbox(&self) -> Option<(ax_manifest::SandboxSection, ax_manifest::SandboxMode)> {
        match self {
            PluginSource::Manifest { dir, manifest, .. } => {
                manifest.sandbox.as_ref().map(|s| (s.resolved(dir), manifest.plugin.sandbox))
            }
            PluginSource::Library(_) => None,
        }
    }

    /// Whether the manifest asks for lazy loading (`lazy`, `activation` or `preload`).
    pub fn is_lazy(&self) -> bool {
        match self {
            PluginSource::Manifest { manifest, .. } => {
                manifest.plugin.lazy || !manifest.plugin.activation.is_empty() || manifest.plugin.preload
            }
            PluginSource::Library(_) => false,
        }
    }

    /// The manifest's `[budget]` (unlimited for a bare library).
    pub fn budget(&self) -> crate::budget::Budget {
        match self {
            PluginSource::Manifest { manifest, .. } => crate::budget::Budget::from_manifest(&manifest.budget),
            PluginSource::Library(_) => crate::budget::Budget::UNLIMITED,
        }
    }

    /// The library to load: given, named by the manifest, or built by cargo.
    pub fn library(&self, options: &mut BuildOptions<'_>) -> Result<PathBuf, SourceError> {
        match self {
            PluginSource::Library(path) => Ok(path.clone()),
            PluginSource::Manifest { dir, manifest, .. } => match &manifest.plugin.library {
                Some(lib) => Ok(dir.join(lib)),
                None if options.build => cargo_build(dir, options),
                None => cargo_locate(dir, options.release),
            },
        }
    }
}

/// How to obtain a crate's library.
pub struct BuildOptions<'a> {
    /// Run `cargo build` (otherwise take what is already built).
    pub build: bool,
    /// The release profile instead of dev.
    pub release: bool,
    /// Where cargo's diagnostics go: each line to this callback, or to the
    /// terminal (inherited stderr) when `None`.
    pub on_output: Option<&'a mut dyn FnMut(&str)>,
}

impl std::fmt::Debug for BuildOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildOptions").field("build", &self.build).field("release", &self.release).finish()
    }
}

impl Default for BuildOptions<'_> {
    fn default() -> Self {
        BuildOptions { build: true, release: false, on_output: None }
    }
}

/// Why a plugin could not be found or built.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{}: no such file or directory", path.display())]
    NotFound { path: PathBuf },
    #[error(
        "{}: no {MANIFEST_FILE} here; expected a plugin crate directory containing {MANIFEST_FILE}, a manifest, or a plugin library",
        dir.display()
    )]
    NoManifest { dir: PathBuf },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("{}: cannot run cargo: {source}", dir.display())]
    CargoNotRunnable {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: cargo build failed ({status}); see cargo's messages above", dir.display())]
    BuildFailed { dir: PathBuf, status: std::process::ExitStatus },
    #[error("{}: cargo metadata failed: {message}", dir.display())]
    Metadata { dir: PathBuf, message: String },
    #[error("{}: the crate builds no cdylib; expected `[lib] crate-type = [\"cdylib\"]` in its Cargo.toml", dir.display())]
    NoCdylib { dir: PathBuf },
    #[error("{}: not built yet (expected {}); build it, or drop --no-build", dir.display(), expected.display())]
    NotBuilt { dir: PathBuf, expected: PathBuf },
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn is_cdylib_target(target: &Value) -> bool {
    target.get("kind").and_then(Value::as_array).is_some_and(|kinds| kinds.iter().any(|k| k == "cdylib"))
}

/// Builds the crate in `dir`; returns its cdylib.
fn cargo_build(dir: &Path, options: &mut BuildOptions<'_>) -> Result<PathBuf, SourceError> {
    let crate_manifest = dir.join("Cargo.toml");
    let meta = cargo_metadata(dir)?;
    let mut cmd = cargo();
    cmd.args(["build", "--lib", "--message-format=json-render-diagnostics", "--manifest-path"])
        .arg(&crate_manifest)
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    if meta.shares_workspace {
        cmd.arg("--target-dir").arg(meta.target_dir.join(PLUGIN_TARGET_SUBDIR));
    }
    if options.release {
        cmd.arg("--release");
    }
    let capture = options.on_output.is_some();
    if capture {
        cmd.stderr(Stdio::piped()).env("CARGO_TERM_COLOR", "never").env("CARGO_TERM_PROGRESS_WHEN", "never");
    }
    let mut child = cmd.spawn().map_err(|source| SourceError::CargoNotRunnable { dir: dir.to_owned(), source })?;

    let stdout = child.stdout.take().expect("piped");
    let wanted = crate_manifest.clone();
    let reader = std::thread::spawn(move || {
        let mut artifact = None;
        let mut cdylib_seen = false;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let Ok(msg) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if msg.get("reason").and_then(Value::as_str) != Some("compiler-artifact") {
                continue;
            }
            let ours =
                msg.get("manifest_path").and_then(Value::as_str).is_some_and(|p| same_file(Path::new(p), &wanted));
            if !ours || !msg.get("target").is_some_and(is_cdylib_target) {
                continue;
            }
            cdylib_seen = true;
            let files = msg.get("filenames").and_then(Value::as_array).cloned().unwrap_or_default();
            artifact = files
                .iter()
                .filter_map(Value::as_str)
                .find(|f| f.ends_with(std::env::consts::DLL_SUFFIX))
                .map(PathBuf::from);
        }
        (artifact, cdylib_seen)
    });
    if let (Some(stderr), Some(on_output)) = (child.stderr.take(), options.on_output.as_mut()) {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            on_output(&line);
        }
    }
    let status = child.wait().map_err(|source| SourceError::CargoNotRunnable { dir: dir.to_owned(), source })?;
    let (artifact, _) = reader.join().unwrap_or((None, false));
    if !status.success() {
        return Err(SourceError::BuildFailed { dir: dir.to_owned(), status });
    }
    artifact.ok_or_else(|| SourceError::NoCdylib { dir: dir.to_owned() })
}

/// Where a crate sharing its workspace with other members is built (see the module docs).
const PLUGIN_TARGET_SUBDIR: &str = "ax-plugins";

/// What `cargo metadata` says about the crate in `dir`.
struct CrateMetadata {
    target_dir: PathBuf,
    /// The name of its cdylib target, if it has one.
    lib_name: Option<String>,
    /// Whether its workspace has other members.
    shares_workspace: bool,
}

fn cargo_metadata(dir: &Path) -> Result<CrateMetadata, SourceError> {
    let crate_manifest = dir.join("Cargo.toml");
    let output = cargo()
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline", "--manifest-path"])
        .arg(&crate_manifest)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|source| SourceError::CargoNotRunnable { dir: dir.to_owned(), source })?;
    let metadata_error = |message: String| SourceError::Metadata { dir: dir.to_owned(), message };
    if !output.status.success() {
        return Err(metadata_error(String::from_utf8_lossy(&output.stderr).trim().to_owned()));
    }
    let meta: Value = serde_json::from_slice(&output.stdout).map_err(|e| metadata_error(e.to_string()))?;
    let target_dir = meta.get("target_directory").and_then(Value::as_str).map(PathBuf::from);
    let package = meta.get("packages").and_then(Value::as_array).and_then(|pkgs| {
        pkgs.iter().find(|p| {
            p.get("manifest_path").and_then(Value::as_str).is_some_and(|m| same_file(Path::new(m), &crate_manifest))
        })
    });
    let lib_name = package
        .and_then(|p| p.get("targets").and_then(Value::as_array))
        .and_then(|targets| targets.iter().find(|t| is_cdylib_target(t)))
        .and_then(|t| t.get("name").and_then(Value::as_str))
        .map(str::to_owned);
    let members = meta.get("workspace_members").and_then(Value::as_array).map_or(1, Vec::len);
    let target_dir = target_dir.ok_or_else(|| metadata_error("no target_directory in cargo metadata".to_owned()))?;
    Ok(CrateMetadata { target_dir, lib_name, shares_workspace: members > 1 })
}

/// Finds the already-built cdylib of the crate in `dir` through `cargo metadata`:
/// where `ax` builds it, or where a plain `cargo build` does, the newer of the two.
fn cargo_locate(dir: &Path, release: bool) -> Result<PathBuf, SourceError> {
    let meta = match located::recall(dir) {
        Some(meta) => meta,
        None => {
            // Read before cargo runs: a change meanwhile makes the record stale, not wrong.
            let inputs = located::Inputs::now(dir);
            let meta = cargo_metadata(dir)?;
            if let Some(inputs) = inputs {
                inputs.remember(&meta);
            }
            meta
        }
    };
    let lib_name = meta.lib_name.ok_or_else(|| SourceError::NoCdylib { dir: dir.to_owned() })?;
    let file =
        format!("{}{}{}", std::env::consts::DLL_PREFIX, lib_name.replace('-', "_"), std::env::consts::DLL_SUFFIX);
    let profile = if release { "release" } else { "debug" };
    let expected = meta.target_dir.join(profile).join(&file);
    // Both places, whatever `shares_workspace` says: a member added to the
    // workspace by a glob changes no file the remembered answer depends on.
    let candidates = [meta.target_dir.join(PLUGIN_TARGET_SUBDIR).join(profile).join(&file), expected.clone()];
    candidates
        .into_iter()
        .filter_map(|path| Some((std::fs::metadata(&path).ok()?.modified().ok()?, path)))
        .max_by_key(|(modified, _)| *modified)
        .map(|(_, path)| path)
        .ok_or(SourceError::NotBuilt { dir: dir.to_owned(), expected })
}

/// `cargo metadata`'s answers for `--no-build`, remembered per crate (see the
/// module docs). Any doubt (a file changed, appeared or went, a variable
/// changed, an unreadable record) means asking cargo again.
mod located {
    use std::path::{Path, PathBuf};

    use serde::{Deserialize, Serialize};

    use super::CrateMetadata;

    /// Variables that choose cargo's target directory or configuration.
    const VARIABLES: [&str; 3] = ["CARGO_TARGET_DIR", "CARGO_BUILD_TARGET_DIR", "CARGO_HOME"];

    #[derive(Serialize, Deserialize, PartialEq)]
    struct Record {
        crate_dir: PathBuf,
        /// Each file cargo's answer depends on, with its mtime in ns (`None`: absent).
        inputs: Vec<(PathBuf, Option<i128>)>,
        variables: Vec<Option<String>>,
        target_dir: PathBuf,
        lib_name: Option<String>,
        shares_workspace: bool,
    }

    fn record_path(crate_dir: &Path) -> Option<PathBuf> {
        let key = xxhash_rust::xxh3::xxh3_64(crate_dir.as_os_str().as_encoded_bytes());
        Some(crate::rundir::runtime_dir().ok()?.join(format!("located-{key:016x}.json")))
    }

    fn mtime(path: &Path) -> Option<i128> {
        use std::os::unix::fs::MetadataExt as _;
        let meta = std::fs::metadata(path).ok()?;
        Some(i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()))
    }

    fn inputs(crate_dir: &Path) -> Vec<(PathBuf, Option<i128>)> {
        let mut files = Vec::new();
        for dir in crate_dir.ancestors() {
            files.push(dir.join("Cargo.toml"));
            files.push(dir.join(".cargo/config.toml"));
            files.push(dir.join(".cargo/config"));
        }
        let cargo_home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
        if let Some(home) = cargo_home {
            files.push(home.join("config.toml"));
            files.push(home.join("config"));
        }
        files.into_iter().map(|f| (mtime(&f), f)).map(|(m, f)| (f, m)).collect()
    }

    fn variables() -> Vec<Option<String>> {
        VARIABLES.iter().map(|v| std::env::var(v).ok()).collect()
    }

    /// The remembered answer for the crate in `dir`, if nothing it depends on changed.
    pub(super) fn recall(dir: &Path) -> Option<CrateMetadata> {
        let crate_dir = dir.canonicalize().ok()?;
        let text = std::fs::read(record_path(&crate_dir)?).ok()?;
        let record: Record = serde_json::from_slice(&text).ok()?;
        let current = record.crate_dir == crate_dir
            && record.variables == variables()
            && record.inputs.iter().all(|(file, m)| mtime(file) == *m);
        current.then_some(CrateMetadata {
            target_dir: record.target_dir,
            lib_name: record.lib_name,
            shares_workspace: record.shares_workspace,
        })
    }

    /// What cargo's answer for a crate depends on, as it was before asking.
    pub(super) struct Inputs {
        crate_dir: PathBuf,
        inputs: Vec<(PathBuf, Option<i128>)>,
        variables: Vec<Option<String>>,
    }

    impl Inputs {
        pub(super) fn now(dir: &Path) -> Option<Inputs> {
            let crate_dir = dir.canonicalize().ok()?;
            Some(Inputs { inputs: inputs(&crate_dir), crate_dir, variables: variables() })
        }

        /// Remembers `meta` as cargo's answer given these inputs (best effort: a
        /// record that cannot be written only means asking cargo next time).
        pub(super) fn remember(self, meta: &CrateMetadata) {
            remember(self, meta);
        }
    }

    fn remember(inputs: Inputs, meta: &CrateMetadata) {
        let Some(path) = record_path(&inputs.crate_dir) else { return };
        let record = Record {
            inputs: inputs.inputs,
            crate_dir: inputs.crate_dir,
            variables: inputs.variables,
            target_dir: meta.target_dir.clone(),
            lib_name: meta.lib_name.clone(),
            shares_workspace: meta.shares_workspace,
        };
        let Ok(text) = serde_json::to_vec(&record) else { return };
        let Some(parent) = path.parent() else { return };
        let Ok(tmp) = crate::rundir::unique_path(parent, "located", ".tmp") else { return };
        if crate::rundir::create_new(&tmp, 0o600, &text).is_err() || std::fs::rename(&tmp, &path).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_directories_manifests_and_libraries() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let err = PluginSource::resolve(dir).unwrap_err().to_string();
        assert!(err.ends_with("no ax-plugin.toml here; expected a plugin crate directory containing ax-plugin.toml, a manifest, or a plugin library"), "{err}");

        std::fs::write(dir.join(MANIFEST_FILE), "[plugin]\nname = \"demo\"\nversion = \"0.1.0\"\n[config]\nk = 1\n")
            .unwrap();
        let source = PluginSource::resolve(dir).unwrap();
        assert_eq!(source.name(), "demo");
        assert_eq!(source.config_json(), r#"{"k":1}"#);
        assert!(matches!(PluginSource::resolve(&dir.join(MANIFEST_FILE)).unwrap(), PluginSource::Manifest { .. }));

        let lib = dir.join(format!("{}thing{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX));
        std::fs::write(&lib, b"x").unwrap();
        let source = PluginSource::resolve(&lib).unwrap();
        assert_eq!(source.name(), "thing");
        assert_eq!(source.library(&mut BuildOptions::default()).unwrap(), lib);

        let missing = PluginSource::resolve(&dir.join("nope")).unwrap_err().to_string();
        assert!(missing.ends_with("nope: no such file or directory"), "{missing}");
    }

    #[test]
    fn bad_manifest_is_reported_with_position() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join(MANIFEST_FILE), "[plugin]\nname = \"demo\"\nversion = \"1\"\nbogus = 1\n")
            .unwrap();
        let err = PluginSource::resolve(tmp.path()).unwrap_err().to_string();
        assert!(err.contains("ax-plugin.toml:4:1: unknown field `bogus`"), "{err}");
    }

    #[test]
    fn manifest_library_key_is_relative_to_the_manifest() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(
            tmp.path().join(MANIFEST_FILE),
            "[plugin]\nname = \"demo\"\nversion = \"1\"\nlibrary = \"out/libdemo.so\"\n",
        )
        .unwrap();
        let source = PluginSource::resolve(tmp.path()).unwrap();
        let mut no_build = BuildOptions { build: false, ..BuildOptions::default() };
        assert_eq!(source.library(&mut no_build).unwrap(), tmp.path().join("out/libdemo.so"));
    }
}
