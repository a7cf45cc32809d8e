//! The profile file (`.ax/profile.json`): one versioned JSON document,
//! described field by field in `docs/profile-format.md`.
//!
//! Reading checks the envelope first (`"format": "ax-profile"`, `"version": 1`),
//! so a file from another tool or a future ax is named as such rather than
//! reported as a missing field; then the layout; then the figures' consistency
//! (a span's `count` against its histogram, `self_ns` against `total_ns`).
//! Every error names the file and what was expected. Readers ignore fields they
//! do not know: adding a field keeps the version, removing one or changing its
//! meaning bumps it. Writing goes through a temporary file and a rename, so a
//! reader (an editor watching the file) never sees half a profile.

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::kept::{Kept, Leak};
use crate::recommend::{Recommendation, recommend};
use crate::startup::Startup;
use crate::time::Time;

/// The `format` field of every profile.
pub const FORMAT: &str = "ax-profile";

/// The profile version this crate writes and reads.
pub const VERSION: u32 = 1;

/// The default place of a plugin's profile, relative to its crate directory
/// (or to the directory of a bare library).
pub const DEFAULT_PATH: &str = ".ax/profile.json";

const EXPECTED: &str = "expected an ax profile (docs/profile-format.md) as written by `ax run --profile`";

/// Why a profile could not be read, written or merged. Every message starts
/// with the file and is complete in itself: the cause is part of the message,
/// not chained behind it, so a one-line printer shows it once.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("{}: cannot read profile: {cause}", path.display())]
    Read { path: PathBuf, cause: std::io::Error },
    #[error("{}: cannot write profile: {cause}", path.display())]
    Write { path: PathBuf, cause: std::io::Error },
    /// The text stops in the middle of the document.
    #[error("{}: truncated profile ({cause}); {EXPECTED}, whole", path.display())]
    Truncated { path: PathBuf, cause: serde_json::Error },
    /// Not JSON.
    #[error("{}: not valid JSON ({cause}); {EXPECTED}", path.display())]
    Syntax { path: PathBuf, cause: serde_json::Error },
    /// JSON, but not an ax profile.
    #[error("{}: not an ax profile ({found}); expected \"format\": \"{FORMAT}\", as written by `ax run --profile`", path.display())]
    Format { path: PathBuf, found: String },
    /// An ax profile of a version this ax does not read.
    #[error("{}: ax profile version {found}; expected version {VERSION} (rerun `ax run --profile` to rewrite it)", path.display())]
    Version { path: PathBuf, found: String },
    /// The right envelope, the wrong layout (a missing field, a string for a number, …).
    #[error("{}: invalid ax profile ({cause}); expected the version {VERSION} layout of docs/profile-format.md", path.display())]
    Layout { path: PathBuf, cause: serde_json::Error },
    /// Figures that contradict each other.
    #[error("{}: inconsistent ax profile: {what}", path.display())]
    Inconsistent { path: PathBuf, what: String },
}

/// Two profiles that cannot be merged.
#[derive(Debug, thiserror::Error)]
#[error("the profile is of plugin {older:?}, this run of plugin {newer:?}; expected the same plugin to merge into")]
pub struct MergeError {
    pub older: String,
    pub newer: String,
}

/// The plugin profiled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginInfo {
    /// From the manifest, or the library's file name.
    pub name: String,
    /// The manifest's `[plugin] version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The library loaded, as given to ax.
    pub library: String,
    /// The manifest, when there is one (recommendations' manifest keys refer to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
    /// Version of the ax-plugin SDK the library was built with.
    #[serde(default)]
    pub sdk_version: String,
}

impl PluginInfo {
    /// A plugin known by its name only.
    pub fn named(name: impl Into<String>) -> PluginInfo {
        PluginInfo {
            name: name.into(),
            version: None,
            library: String::new(),
            manifest: None,
            sdk_version: String::new(),
        }
    }
}

/// Calls of one method.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MethodProfile {
    pub method: String,
    /// Calls made (each is one interval of `time`).
    pub count: u64,
    /// Calls that failed (a plugin error, a panic, a budget exceeded).
    pub errors: u64,
    /// Calls stopped by each budget: `{"max_duration": 2}`.
    #[serde(default)]
    pub budget_violations: BTreeMap<String, u64>,
    /// Wall time of each call (pauses excluded); `self_ns` is the time spent
    /// outside any span, `cpu_ns` the CPU time of the thread that ran it.
    pub time: Time,
    /// With the counting allocator: bytes each call kept (allocated minus
    /// freed on its thread, the output it returned excluded), with their trend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept: Option<Kept>,
}

/// What kind of callsite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallsiteKind {
    /// A `tracing` span: timed from enter to exit.
    Span,
    /// A `probe!` site: hits counted.
    Probe,
    /// A `tracing` event: counted when the log filter forwards it.
    Event,
}

/// One callsite of the plugin's source.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CallsiteProfile {
    pub kind: CallsiteKind,
    /// Span name (the function, for `#[instrument]`), event name, or the
    /// function enclosing a probe.
    pub name: String,
    /// `tracing` target (module path by default).
    pub target: String,
    /// Source file as the compiler named it (relative to the workspace the
    /// plugin was built in).
    pub file: String,
    /// 0 when unknown.
    pub line: u32,
    /// Spans: enter→exit intervals; probes and events: hits.
    pub count: u64,
    /// Calls stopped for exceeding a budget while this span was on the stack.
    #[serde(default)]
    pub budget_violations: u64,
    /// Spans only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Time>,
    /// Spans only, when the plugin counts its allocations (the SDK's counting
    /// allocator): bytes allocated on the span's thread while it was entered,
    /// its children's included, summed over its intervals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alloc_bytes: Option<u64>,
    /// Spans only, with the counting allocator: bytes allocated minus bytes
    /// freed on the span's thread while it was entered, less what its child
    /// spans kept (so memory is charged to the span that took it), per
    /// interval, with its trend (`docs/profile-format.md`, "kept").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept: Option<Kept>,
}

impl CallsiteProfile {
    /// Self time, 0 for probes and events.
    pub fn self_ns(&self) -> u64 {
        self.time.as_ref().map_or(0, Time::self_ns)
    }

    /// `file:line`.
    pub fn location(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }

    fn key(&self) -> (CallsiteKind, &str, u32, &str) {
        (self.kind, &self.file, self.line, &self.name)
    }
}

/// A distinct stack of frames, outermost first, joined by `;` (the folded
/// format of flame graph tools), with the self time spent at its top.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stack {
    /// `word-count.count;count;count_words`: a call's root frame is
    /// `plugin.method`, then span names.
    pub stack: String,
    /// Times the top frame ran with exactly this stack.
    pub count: u64,
    /// Self time of the top frame with this stack.
    pub self_ns: u64,
}

/// System calls a sandbox denied to one method, for one capability
/// (`exec`, `ptrace`, `network`, … as `ax-isolate` counts them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxDenial {
    pub method: String,
    pub capability: String,
    pub count: u64,
}

/// A whole profile.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// When it was taken (the last run, when merged): RFC 3339, UTC, to the second.
    pub taken_at: String,
    /// What wrote it, with its version (`ax 0.1.0`).
    pub tool: String,
    /// The command line that took it (the last run's, when merged).
    pub command: String,
    /// How many runs were merged into it (1 when replaced on every run).
    pub runs: u32,
    pub plugin: PluginInfo,
    /// Per method, by name.
    pub methods: Vec<MethodProfile>,
    /// Per callsite, by kind, file and line.
    pub callsites: Vec<CallsiteProfile>,
    /// Folded stacks, for flame graphs.
    pub stacks: Vec<Stack>,
    /// How the plugin came up (the last run's, when merged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup: Option<Startup>,
    /// Derived from the rest by [`recommend`]; recomputed on every write.
    #[serde(default)]
    pub recommendations: Vec<Recommendation>,
    /// What the sandbox denied in the last sandboxed `ax run` of the plugin
    /// (absent when it denied nothing, and in files of earlier ax versions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sandbox_denials: Vec<SandboxDenial>,
}

/// The envelope as written: format and version first.
#[derive(Serialize)]
struct Envelope<'a> {
    format: &'static str,
    version: u32,
    #[serde(flatten)]
    profile: &'a Profile,
}

impl Profile {
    /// An empty profile of `plugin`, taken now by `tool` for `command`.
    pub fn new(plugin: PluginInfo, tool: impl Into<String>, command: impl Into<String>) -> Profile {
        Profile {
            taken_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            tool: tool.into(),
            command: command.into(),
            runs: 1,
            plugin,
            methods: Vec::new(),
            callsites: Vec::new(),
            stacks: Vec::new(),
            startup: None,
            recommendations: Vec::new(),
            sandbox_denials: Vec::new(),
        }
    }

    /// Sorts every list (methods by name, callsites by file and line, stacks by
    /// stack) and recomputes the recommendations: what [`Profile::write`] does
    /// before writing.
    pub fn normalize(&mut self) {
        self.methods.sort_by(|a, b| a.method.cmp(&b.method));
        self.callsites.sort_by(|a, b| (&a.file, a.line, a.kind, &a.name).cmp(&(&b.file, b.line, b.kind, &b.name)));
        self.stacks.sort_by(|a, b| a.stack.cmp(&b.stack));
        self.sandbox_denials.sort_by(|a, b| (&a.method, &a.capability).cmp(&(&b.method, &b.capability)));
        self.recommendations = recommend(self);
    }

    /// Adds a later run of the same plugin: counts, times and histograms add
    /// up; the metadata and the startup become the later run's.
    pub fn merge(&mut self, newer: Profile) -> Result<(), MergeError> {
        if self.plugin.name != newer.plugin.name {
            return Err(MergeError { older: self.plugin.name.clone(), newer: newer.plugin.name });
        }
        for method in newer.methods {
            match self.methods.iter_mut().find(|m| m.method == method.method) {
                Some(m) => {
                    m.count += method.count;
                    m.errors += method.errors;
                    for (budget, n) in method.budget_violations {
                        *m.budget_violations.entry(budget).or_default() += n;
                    }
                    m.time.add(&method.time);
                    add_kept(&mut m.kept, method.kept);
                }
                None => self.methods.push(method),
            }
        }
        for callsite in newer.callsites {
            match self.callsites.iter_mut().find(|c| c.key() == callsite.key()) {
                Some(c) => {
                    c.count += callsite.count;
                    c.budget_violations += callsite.budget_violations;
                    c.alloc_bytes = match (c.alloc_bytes, callsite.alloc_bytes) {
                        (Some(a), Some(b)) => Some(a.saturating_add(b)),
                        (a, b) => a.or(b),
                    };
                    add_kept(&mut c.kept, callsite.kept);
                    c.target = callsite.target;
                    match (&mut c.time, callsite.time) {
                        (Some(mine), Some(theirs)) => mine.add(&theirs),
                        (mine @ None, theirs) => *mine = theirs,
                        (Some(_), None) => {}
                    }
                }
                None => self.callsites.push(callsite),
            }
        }
        let mut stacks: HashMap<String, usize> =
            self.stacks.iter().enumerate().map(|(i, s)| (s.stack.clone(), i)).collect();
        for stack in newer.stacks {
            match stacks.get(&stack.stack) {
                Some(&i) => {
                    self.stacks[i].count += stack.count;
                    self.stacks[i].self_ns += stack.self_ns;
                }
                None => {
                    stacks.insert(stack.stack.clone(), self.stacks.len());
                    self.stacks.push(stack);
                }
            }
        }
        for denial in newer.sandbox_denials {
            let same = |d: &&mut SandboxDenial| d.method == denial.method && d.capability == denial.capability;
            match self.sandbox_denials.iter_mut().find(same) {
                Some(d) => d.count = d.count.saturating_add(denial.count),
                None => self.sandbox_denials.push(denial),
            }
        }
        self.runs = self.runs.saturating_add(newer.runs);
        self.taken_at = newer.taken_at;
        self.tool = newer.tool;
        self.command = newer.command;
        self.plugin = newer.plugin;
        if newer.startup.is_some() {
            self.startup = newer.startup;
        }
        self.normalize();
        Ok(())
    }

    /// The span callsites with the most self time, most first, at most `n`.
    pub fn hottest(&self, n: usize) -> Vec<&CallsiteProfile> {
        let mut spans: Vec<&CallsiteProfile> = self.callsites.iter().filter(|c| c.time.is_some()).collect();
        spans.sort_by(|a, b| b.self_ns().cmp(&a.self_ns()).then_with(|| a.key().cmp(&b.key())));
        spans.truncate(n);
        spans
    }

    /// Self time of every stack added up: everything the profile timed, once.
    /// Methods whose calls keep memory that grows with their number.
    pub fn method_leaks(&self) -> Vec<(&MethodProfile, Leak)> {
        self.methods.iter().filter_map(|m| Some((m, m.kept.as_ref()?.leak()?))).collect()
    }

    /// Spans whose kept memory grows with their calls, named only when (1) the
    /// calls they ran in keep growing memory too (a function that returns what
    /// it allocated keeps it only until its caller is done with it) and (2)
    /// they account for at least a quarter of what those calls kept.
    pub fn span_leaks(&self) -> Vec<(&CallsiteProfile, Leak)> {
        let methods = self.method_leaks();
        if methods.is_empty() {
            return Vec::new();
        }
        let roots: Vec<String> = methods.iter().map(|(m, _)| format!("{}.{}", self.plugin.name, m.method)).collect();
        let total: i64 = methods.iter().map(|(_, l)| l.bytes).sum();
        self.callsites
            .iter()
            .filter_map(|c| Some((c, c.kept.as_ref()?.leak()?)))
            .filter(|(_, leak)| leak.bytes.saturating_mul(4) >= total)
            .filter(|(c, _)| {
                self.stacks.iter().any(|s| {
                    let mut frames = s.stack.split(';');
                    frames.next().is_some_and(|root| roots.iter().any(|r| r == root)) && frames.any(|f| f == c.name)
                })
            })
            .collect()
    }

    pub fn profiled_ns(&self) -> u64 {
        self.stacks.iter().map(|s| s.self_ns).sum()
    }

    /// The stacks in the folded format of flame graph tools: `a;b;c 1234` per
    /// line, self nanoseconds as the weight; stacks with no self time left out.
    pub fn folded(&self) -> String {
        let mut out = String::new();
        for stack in self.stacks.iter().filter(|s| s.self_ns > 0) {
            out.push_str(&stack.stack);
            out.push(' ');
            out.push_str(&stack.self_ns.to_string());
            out.push('\n');
        }
        out
    }

    /// The profile as pretty-printed JSON, ending with a newline.
    pub fn to_json(&self) -> String {
        let envelope = Envelope { format: FORMAT, version: VERSION, profile: self };
        let mut text = serde_json::to_string_pretty(&envelope).expect("a profile always serialises");
        text.push('\n');
        text
    }

    /// Parses the text of a profile; `path` names it in errors.
    pub fn from_json(text: &str, path: &Path) -> Result<Profile, ProfileError> {
        let path_buf = || path.to_owned();
        // The envelope first, from a generic parse: a wrong format or version is
        // named as such even when the rest has another layout.
        let value: Value = serde_json::from_str(text).map_err(|cause| {
            if cause.is_eof() {
                ProfileError::Truncated { path: path_buf(), cause }
            } else {
                ProfileError::Syntax { path: path_buf(), cause }
            }
        })?;
        let Value::Object(object) = &value else {
            return Err(ProfileError::Format { path: path_buf(), found: "not a JSON object".to_owned() });
        };
        match object.get("format") {
            Some(Value::String(f)) if f == FORMAT => {}
            None => return Err(ProfileError::Format { path: path_buf(), found: "no \"format\" field".to_owned() }),
            Some(other) => {
                return Err(ProfileError::Format { path: path_buf(), found: format!("\"format\": {other}") });
            }
        }
        match object.get("version") {
            Some(Value::Number(v)) if v.as_u64() == Some(u64::from(VERSION)) => {}
            Some(other) => return Err(ProfileError::Version { path: path_buf(), found: other.to_string() }),
            None => return Err(ProfileError::Version { path: path_buf(), found: "missing".to_owned() }),
        }
        drop(value);
        // Then the layout, from the text again, for errors with line and column.
        let profile: Profile =
            serde_json::from_str(text).map_err(|cause| ProfileError::Layout { path: path_buf(), cause })?;
        profile.check().map_err(|what| ProfileError::Inconsistent { path: path_buf(), what })?;
        Ok(profile)
    }

    /// What contradicts itself, if anything.
    fn check(&self) -> Result<(), String> {
        for m in &self.methods {
            if m.count != m.time.count() {
                return Err(format!(
                    "method {:?}: count {} but {} timed calls; expected equal",
                    m.method,
                    m.count,
                    m.time.count()
                ));
            }
        }
        for c in &self.callsites {
            match (&c.time, c.kind) {
                (Some(time), _) if time.count() != c.count => {
                    return Err(format!(
                        "callsite {:?} at {}: count {} but {} timed intervals; expected equal",
                        c.name,
                        c.location(),
                        c.count,
                        time.count()
                    ));
                }
                (None, CallsiteKind::Span) if c.count > 0 => {
                    return Err(format!("span {:?} at {}: no \"time\"; expected one for a span", c.name, c.location()));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Reads the profile in `path`.
    pub fn read(path: &Path) -> Result<Profile, ProfileError> {
        let text =
            std::fs::read_to_string(path).map_err(|cause| ProfileError::Read { path: path.to_owned(), cause })?;
        Profile::from_json(&text, path)
    }

    /// Normalizes the profile, then writes it to `path` atomically, creating
    /// the directory if needed.
    pub fn write(&mut self, path: &Path) -> Result<(), ProfileError> {
        self.normalize();
        let write_error = |cause| ProfileError::Write { path: path.to_owned(), cause };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(write_error)?;
        }
        write_atomically(path, &self.to_json()).map_err(write_error)
    }
}

/// Adds a later run's kept bytes to an earlier run's.
fn add_kept(mine: &mut Option<Kept>, theirs: Option<Kept>) {
    match (mine.as_mut(), theirs) {
        (Some(m), Some(t)) => m.add(&t),
        (None, t) => *mine = t,
        (Some(_), None) => {}
    }
}

/// Writes `text` to `path` through a temporary file in the same directory and
/// a rename, so a reader never sees half a file and a failed write leaves the
/// old one.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let name = path.file_name().ok_or_else(|| std::io::Error::other("not a file name"))?;
    let tmp = path.with_file_name(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()));
    let result = std::fs::File::create(&tmp)
        .and_then(|mut file| file.write_all(text.as_bytes()).and_then(|()| file.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::startup::{Phase, PhaseTime, Thresholds};

    fn time(values: &[(u64, u64)]) -> Time {
        let mut t = Time::new();
        for &(total, own) in values {
            t.record(total, own, None);
        }
        t
    }

    fn span(name: &str, line: u32, values: &[(u64, u64)]) -> CallsiteProfile {
        CallsiteProfile {
            kind: CallsiteKind::Span,
            name: name.into(),
            target: "word_count".into(),
            file: "src/lib.rs".into(),
            line,
            count: values.len() as u64,
            budget_violations: 0,
            time: Some(time(values)),
            alloc_bytes: None,
            kept: None,
        }
    }

    fn sample() -> Profile {
        let plugin = PluginInfo {
            name: "word-count".into(),
            version: Some("0.1.0".into()),
            library: "target/debug/libword_count.so".into(),
            manifest: Some("ax-plugin.toml".into()),
            sdk_version: "0.1.0".into(),
        };
        let mut profile = Profile::new(plugin, "ax 0.1.0", "ax run --profile .");
        profile.taken_at = "2026-01-02T03:04:05Z".into();
        profile.methods.push(MethodProfile {
            method: "count".into(),
            count: 2,
            errors: 0,
            budget_violations: BTreeMap::new(),
            time: time(&[(9000, 2000), (11_000, 3000)]),
            kept: None,
        });
        profile.callsites.push(span("count", 41, &[(6000, 2000), (7000, 2500)]));
        profile.callsites.push(span("count_words", 52, &[(4000, 4000), (4500, 4500)]));
        profile.callsites.push(CallsiteProfile {
            kind: CallsiteKind::Probe,
            name: "word_count::WordCount::count".into(),
            target: "word_count".into(),
            file: "src/lib.rs".into(),
            line: 45,
            count: 2,
            budget_violations: 0,
            time: None,
            alloc_bytes: None,
            kept: None,
        });
        profile.stacks = vec![
            Stack { stack: "word-count.count".into(), count: 2, self_ns: 5000 },
            Stack { stack: "word-count.count;count".into(), count: 2, self_ns: 4500 },
            Stack { stack: "word-count.count;count;count_words".into(), count: 2, self_ns: 8500 },
        ];
        let phases = Phase::ALL.map(|phase| PhaseTime { phase, duration_ns: 1000, memory_growth_bytes: Some(4096) });
        profile.startup = Some(Startup::new(phases.to_vec(), Thresholds::default()));
        profile.normalize();
        profile
    }

    fn error(text: &str) -> String {
        Profile::from_json(text, Path::new(".ax/profile.json")).unwrap_err().to_string()
    }

    #[test]
    fn round_trips_through_a_file() {
        let mut profile = sample();
        let text = profile.to_json();
        assert!(text.starts_with("{\n  \"format\": \"ax-profile\",\n  \"version\": 1,\n"), "{text}");
        assert_eq!(Profile::from_json(&text, Path::new("p.json")).unwrap(), profile);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".ax/profile.json");
        profile.write(&path).unwrap();
        assert_eq!(Profile::read(&path).unwrap(), profile);
        let left: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file left: {left:?}");
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let mut value: Value = serde_json::from_str(&sample().to_json()).unwrap();
        value["comment"] = json!("added by a newer ax");
        value["callsites"][0]["allocations"] = json!(12);
        assert_eq!(Profile::from_json(&value.to_string(), Path::new("p.json")).unwrap(), sample());
    }

    #[test]
    fn corrupt_truncated_and_foreign_files_name_the_file_and_the_expectation() {
        let text = sample().to_json();
        let err = error(&text[..text.len() / 2]);
        assert!(err.starts_with(".ax/profile.json: truncated profile (EOF while parsing"), "{err}");
        assert!(
            err.ends_with("expected an ax profile (docs/profile-format.md) as written by `ax run --profile`, whole")
        );

        let err = error("{\"format\": \"ax-profile\", oops}");
        assert!(err.starts_with(".ax/profile.json: not valid JSON (key must be a string at line 1"), "{err}");
        let err = error("\u{0}\u{1}binary");
        assert!(err.starts_with(".ax/profile.json: not valid JSON"), "{err}");

        let err = error("[1]");
        assert!(err.starts_with(".ax/profile.json: not an ax profile (not a JSON object)"), "{err}");
        let err = error("{\"format\": \"ax-perf\", \"version\": 1}");
        assert_eq!(
            err,
            ".ax/profile.json: not an ax profile (\"format\": \"ax-perf\"); expected \"format\": \"ax-profile\", \
             as written by `ax run --profile`"
        );
        let err = error("{\"version\": 1}");
        assert!(err.contains("(no \"format\" field)"), "{err}");

        let err = error("{\"format\": \"ax-profile\", \"version\": 2}");
        assert_eq!(
            err,
            ".ax/profile.json: ax profile version 2; expected version 1 (rerun `ax run --profile` to rewrite it)"
        );
        let err = error("{\"format\": \"ax-profile\"}");
        assert!(err.contains("ax profile version missing; expected version 1"), "{err}");

        let mut value: Value = serde_json::from_str(&text).unwrap();
        value["callsites"][0]["count"] = json!("many");
        let err = error(&value.to_string());
        assert!(err.starts_with(".ax/profile.json: invalid ax profile (invalid type: string \"many\""), "{err}");
        assert!(err.ends_with("expected the version 1 layout of docs/profile-format.md"), "{err}");

        let mut value: Value = serde_json::from_str(&text).unwrap();
        value["callsites"][0]["count"] = json!(3);
        let err = error(&value.to_string());
        assert_eq!(
            err,
            ".ax/profile.json: inconsistent ax profile: callsite \"count\" at src/lib.rs:41: count 3 but 2 timed \
             intervals; expected equal"
        );

        let err = Profile::read(Path::new("/nonexistent/profile.json")).unwrap_err().to_string();
        assert!(err.starts_with("/nonexistent/profile.json: cannot read profile: "), "{err}");
    }

    #[test]
    fn sandbox_denials_are_optional_round_trip_and_add_up_when_merged() {
        let text = sample().to_json();
        assert!(!text.contains("sandbox_denials"), "absent when nothing was denied: {text}");
        assert!(Profile::from_json(&text, Path::new("p.json")).unwrap().sandbox_denials.is_empty());

        let denial = |method: &str, capability: &str, count| SandboxDenial {
            method: method.into(),
            capability: capability.into(),
            count,
        };
        let mut profile = sample();
        profile.sandbox_denials = vec![denial("fetch", "network", 2), denial("fetch", "exec", 1)];
        profile.normalize();
        let read = Profile::from_json(&profile.to_json(), Path::new("p.json")).unwrap();
        assert_eq!(read.sandbox_denials, [denial("fetch", "exec", 1), denial("fetch", "network", 2)]);

        let mut later = sample();
        later.sandbox_denials = vec![denial("fetch", "network", 3), denial("run", "ptrace", 1)];
        profile.merge(later).unwrap();
        assert_eq!(
            profile.sandbox_denials,
            [denial("fetch", "exec", 1), denial("fetch", "network", 5), denial("run", "ptrace", 1)]
        );
    }

    #[test]
    fn merging_adds_up_and_keeps_the_later_metadata() {
        let mut merged = sample();
        let mut later = sample();
        later.taken_at = "2026-01-03T00:00:00Z".into();
        later.command = "ax run --profile --profile-merge .".into();
        later.callsites.push(span("is_word", 58, &[(100, 100)]));
        later.stacks.push(Stack { stack: "word-count.count;count;count_words;is_word".into(), count: 1, self_ns: 100 });
        merged.merge(later).unwrap();

        assert_eq!(merged.runs, 2);
        assert_eq!(merged.taken_at, "2026-01-03T00:00:00Z");
        assert_eq!(merged.command, "ax run --profile --profile-merge .");
        assert_eq!(merged.methods.len(), 1);
        assert_eq!(merged.methods[0].count, 4);
        assert_eq!(merged.methods[0].time.total_ns(), 40_000);
        let count = merged.callsites.iter().find(|c| c.name == "count").unwrap();
        assert_eq!(count.count, 4);
        assert_eq!(count.time.as_ref().unwrap().self_ns(), 9000);
        assert_eq!(count.time.as_ref().unwrap().histogram().len(), 4);
        assert!(merged.callsites.iter().any(|c| c.name == "is_word"));
        let probe = merged.callsites.iter().find(|c| c.kind == CallsiteKind::Probe).unwrap();
        assert_eq!(probe.count, 4);
        assert_eq!(merged.stacks.len(), 4);
        assert_eq!(merged.profiled_ns(), 2 * 18_000 + 100);

        let mut other = sample();
        other.plugin.name = "greeter".into();
        let err = merged.merge(other).unwrap_err().to_string();
        assert_eq!(
            err,
            "the profile is of plugin \"word-count\", this run of plugin \"greeter\"; expected the same plugin to merge into"
        );
    }

    #[test]
    fn hottest_callsites_and_folded_stacks() {
        let profile = sample();
        let hottest: Vec<&str> = profile.hottest(10).iter().map(|c| c.name.as_str()).collect();
        assert_eq!(hottest, ["count_words", "count"], "by self time; probes are not timed");
        assert_eq!(profile.hottest(1).len(), 1);
        assert_eq!(
            profile.folded(),
            "word-count.count 5000\nword-count.count;count 4500\nword-count.count;count;count_words 8500\n"
        );
    }
}
