//! `ax-plugin.toml`: the manifest of an ax plugin.
//!
//! The schema is closed (`deny_unknown_fields` on every table) and uses human
//! units, so a typo or a bare number is an error with the file, the line and
//! column, and the form that was expected — never a silently ignored key.
//!
//! ```toml
//! [plugin]
//! name = "word-count"
//! version = "0.1.0"
//! # library = "target/debug/libword_count.so"   # default: found through cargo
//! # isolation = "process"                        # default: "none" (in the host process)
//! # lazy = true                                  # load on the first call
//! # activation = ["method:count"]                # …on the first call of these (implies lazy)
//! # preload = true                               # …or in the background at startup
//! # sandbox = "best-effort"                      # run even where [sandbox] cannot be fully enforced
//!
//! [sandbox]          # what the plugin may do; implies isolation = "process"
//! network = "none"                               # "none" (default) | "loopback" | "any"
//! fs_read = ["data"]                             # relative to this file's directory, or absolute
//! fs_write = ["out"]                             # (writable paths are readable too)
//! exec = false                                   # may it start programs (default false)
//!
//! [budget]           # per call
//! max_memory = "64MiB"
//! max_cpu_time = "2s"
//! max_duration = "5s"
//!
//! [budget.functions] # p95 targets the editor checks (ax-lsp), by span name
//! count_words = "2ms"
//!
//! [reload]
//! debounce = "300ms"
//! init_timeout = "5s"
//! drain_timeout = "5s"
//!
//! [startup]
//! max_total = "200ms"
//! max_phase = "50ms"
//! max_memory_growth = "50MiB"
//!
//! [cache]            # the host's query cache for this plugin
//! max_entries = 10000
//! max_bytes = "64MiB"
//! default_ttl = "60s"
//!
//! [telemetry]        # OpenTelemetry export (off by default; OTEL_* variables win)
//! enabled = true
//! endpoint = "http://localhost:4318"
//! protocol = "http/protobuf"                     # or "grpc" (ax built with its `grpc` feature)
//! service_name = "word-count"                    # default: the plugin's name
//! headers = { "x-api-key" = "secret" }
//! sample_ratio = 0.25                            # share of calls traced (default 1)
//! level = "info"                                 # most detailed plugin spans exported (default info)
//! metrics_interval = "10s"
//! timeout = "5s"
//! flush_timeout = "1s"                          # bound on the flush at exit (default 1s)
//!
//! [config]           # free-form, passed to Plugin::init as JSON
//! language = "en"
//! ```

mod units;

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use units::{ByteSize, HumanDuration};

/// The file name ax looks for in a plugin directory.
pub const MANIFEST_FILE: &str = "ax-plugin.toml";

/// A parsed manifest.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub plugin: PluginSection,
    #[serde(default)]
    pub budget: BudgetSection,
    #[serde(default)]
    pub reload: ReloadSection,
    #[serde(default)]
    pub startup: StartupSection,
    #[serde(default)]
    pub cache: CacheSection,
    #[serde(default)]
    pub telemetry: TelemetrySection,
    /// What the plugin may do, enforced by the kernel in its child process
    /// (`ax-isolate`). Its presence alone sandboxes the plugin.
    #[serde(default)]
    pub sandbox: Option<SandboxSection>,
    /// Free-form configuration handed to the plugin's `init`.
    #[serde(default)]
    pub config: toml::Table,
}

/// `[plugin]`: what the plugin is and where its library is.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PluginSection {
    /// Lowercase letters, digits, `-` and `_`.
    #[serde(deserialize_with = "de_name")]
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub description: Option<String>,
    /// The plugin library, relative to the manifest's directory. Without it, ax
    /// builds the crate beside the manifest with cargo and takes its cdylib.
    #[serde(default)]
    pub library: Option<PathBuf>,
    /// Where the plugin runs: in the host process (`"none"`, the default) or in
    /// a child process with hard limits, restarted after a crash (`"process"`).
    #[serde(default)]
    pub isolation: Isolation,
    /// Load the plugin on its first call rather than at startup.
    #[serde(default)]
    pub lazy: bool,
    /// Calls that load a lazy plugin: `"method:NAME"` or `"*"` (any call, the
    /// default). Implies `lazy`.
    #[serde(default, deserialize_with = "de_activation")]
    pub activation: Vec<String>,
    /// For a lazy plugin: load it in the background right after startup, so the
    /// first call does not wait (when it has finished).
    #[serde(default)]
    pub preload: bool,
    /// What to do where the kernel cannot enforce every rule of `[sandbox]`:
    /// refuse to run (`"enforced"`, the default) or run and list what is not
    /// enforced (`"best-effort"`).
    #[serde(default)]
    pub sandbox: SandboxMode,
}

/// `[plugin] sandbox`.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum SandboxMode {
    #[default]
    Enforced,
    BestEffort,
}

/// `[sandbox]`: the capabilities a plugin is granted; everything else is
/// denied. Its own library and what the runtime needs are implied.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SandboxSection {
    #[serde(default)]
    pub network: Network,
    /// Files and directories (with everything below) the plugin may read.
    #[serde(default, deserialize_with = "de_paths")]
    pub fs_read: Vec<PathBuf>,
    /// Files and directories the plugin may read, create, write and remove.
    #[serde(default, deserialize_with = "de_paths")]
    pub fs_write: Vec<PathBuf>,
    /// Whether the plugin may start programs (fork and exec).
    #[serde(default)]
    pub exec: bool,
}

/// `[sandbox] network`.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// No sockets but the runtime's own connection.
    #[default]
    None,
    /// TCP/UDP and Unix sockets; no raw or packet sockets.
    Loopback,
    /// Any address; still no raw or packet sockets.
    Any,
}

impl Network {
    /// `none`, `loopback`, `any`: as written in the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            Network::None => "none",
            Network::Loopback => "loopback",
            Network::Any => "any",
        }
    }
}

impl SandboxSection {
    /// The same rules with relative paths made relative to `dir` (the
    /// manifest's directory).
    pub fn resolved(&self, dir: &Path) -> SandboxSection {
        let resolve = |paths: &[PathBuf]| paths.iter().map(|p| dir.join(p)).collect();
        SandboxSection { fs_read: resolve(&self.fs_read), fs_write: resolve(&self.fs_write), ..self.clone() }
    }
}

fn de_paths<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
    let paths = Vec::<String>::deserialize(d)?;
    for path in &paths {
        if path.is_empty() || path.contains('\0') {
            return Err(serde::de::Error::custom(format!(
                "invalid path {path:?}: expected a file or directory, relative to the manifest's directory or absolute"
            )));
        }
    }
    Ok(paths.into_iter().map(PathBuf::from).collect())
}

fn de_activation<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let triggers = Vec::<String>::deserialize(d)?;
    for trigger in &triggers {
        let valid = trigger == "*" || trigger.strip_prefix("method:").is_some_and(|m| !m.is_empty());
        if !valid {
            return Err(serde::de::Error::custom(format!(
                "invalid activation trigger {trigger:?}: expected \"method:NAME\" or \"*\""
            )));
        }
    }
    Ok(triggers)
}

/// `[plugin] isolation`.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    #[default]
    None,
    Process,
}

/// `[budget]`: per-call resource limits. Parsed and validated here; enforced by
/// the runtime's budget watchdog.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BudgetSection {
    /// Limits are above zero: a zero limit would fail every call.
    #[serde(default, deserialize_with = "units::size_limit")]
    pub max_memory: Option<ByteSize>,
    #[serde(default, deserialize_with = "units::duration_limit")]
    pub max_cpu_time: Option<HumanDuration>,
    #[serde(default, deserialize_with = "units::duration_limit")]
    pub max_duration: Option<HumanDuration>,
    /// `[budget.functions]`: a wall-time budget per instrumented function (span
    /// name → duration) that the language server checks each span's p95
    /// against. Not enforced at run time: it is a target, not a limit.
    #[serde(default)]
    pub functions: std::collections::BTreeMap<String, HumanDuration>,
}

/// `[reload]`: hot reload settings for `ax dev`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReloadSection {
    /// Quiet time after the last file change before reloading.
    #[serde(default = "ReloadSection::default_debounce")]
    pub debounce: HumanDuration,
    /// How long the new build's `init` may take before the reload is rolled back.
    #[serde(default = "ReloadSection::default_timeout")]
    pub init_timeout: HumanDuration,
    /// How long to wait for calls in flight on the old build before rolling back.
    #[serde(default = "ReloadSection::default_timeout")]
    pub drain_timeout: HumanDuration,
}

impl ReloadSection {
    fn default_debounce() -> HumanDuration {
        HumanDuration(std::time::Duration::from_millis(300))
    }
    fn default_timeout() -> HumanDuration {
        HumanDuration(std::time::Duration::from_secs(5))
    }
}

impl Default for ReloadSection {
    fn default() -> Self {
        ReloadSection {
            debounce: Self::default_debounce(),
            init_timeout: Self::default_timeout(),
            drain_timeout: Self::default_timeout(),
        }
    }
}

/// `[startup]`: thresholds above which the startup monitor recommends a change.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StartupSection {
    #[serde(default = "StartupSection::default_total")]
    pub max_total: HumanDuration,
    #[serde(default = "StartupSection::default_phase")]
    pub max_phase: HumanDuration,
    #[serde(default = "StartupSection::default_memory_growth")]
    pub max_memory_growth: ByteSize,
}

impl StartupSection {
    fn default_total() -> HumanDuration {
        HumanDuration(std::time::Duration::from_millis(200))
    }
    fn default_phase() -> HumanDuration {
        HumanDuration(std::time::Duration::from_millis(50))
    }
    fn default_memory_growth() -> ByteSize {
        ByteSize(50 << 20)
    }
}

impl Default for StartupSection {
    fn default() -> Self {
        StartupSection {
            max_total: Self::default_total(),
            max_phase: Self::default_phase(),
            max_memory_growth: Self::default_memory_growth(),
        }
    }
}

/// `[cache]`: the query cache the host offers the plugin (`ax_plugin::cache`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CacheSection {
    /// At most this many entries.
    #[serde(default = "CacheSection::default_entries")]
    pub max_entries: u64,
    /// At most this many bytes of keys and values.
    #[serde(default = "CacheSection::default_bytes")]
    pub max_bytes: ByteSize,
    /// Time to live of entries stored without one (default: until evicted).
    #[serde(default)]
    pub default_ttl: Option<HumanDuration>,
}

impl CacheSection {
    fn default_entries() -> u64 {
        10_000
    }
    fn default_bytes() -> ByteSize {
        ByteSize(64 << 20)
    }
}

impl Default for CacheSection {
    fn default() -> Self {
        CacheSection { max_entries: Self::default_entries(), max_bytes: Self::default_bytes(), default_ttl: None }
    }
}

/// `[telemetry]`: OpenTelemetry export of calls, plugin spans and runtime
/// metrics over OTLP. Off unless `enabled` or `OTEL_EXPORTER_OTLP_ENDPOINT`
/// is set; the standard `OTEL_*` environment variables override these keys.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySection {
    /// Export even when no `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
    #[serde(default)]
    pub enabled: bool,
    /// The collector's base URL (`http://localhost:4318` for HTTP,
    /// `http://localhost:4317` for gRPC by default); `/v1/traces` and
    /// `/v1/metrics` are appended for HTTP.
    #[serde(default, deserialize_with = "de_endpoint")]
    pub endpoint: Option<String>,
    /// `"http/protobuf"` (the default) or `"grpc"`.
    #[serde(default)]
    pub protocol: Option<OtlpProtocol>,
    /// The `service.name` resource attribute (default: the plugin's name).
    #[serde(default)]
    pub service_name: Option<String>,
    /// Headers sent with every export (authentication, tenant).
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// Share of calls traced, from 0 to 1 (default 1: every call); a call that
    /// continues a sampled `traceparent` is always traced.
    #[serde(default, deserialize_with = "de_ratio")]
    pub sample_ratio: Option<f64>,
    /// The most detailed plugin spans exported: `error`, `warn`, `info` (the
    /// default, as `#[instrument]` spans are), `debug` or `trace`. Finer ones
    /// are not exported; their time stays in their parents'. Events are not
    /// capped by it: those `AX_LOG` lets through go out with the span they
    /// happen in.
    #[serde(default)]
    pub level: TelemetryLevel,
    /// How often metrics are exported.
    #[serde(default = "TelemetrySection::default_interval")]
    pub metrics_interval: HumanDuration,
    /// How long one export may take before it is given up (and counted as dropped).
    #[serde(default = "TelemetrySection::default_timeout")]
    pub timeout: HumanDuration,
    /// How long ax may spend, at exit, flushing what is still queued (traces
    /// and metrics in parallel); what is not sent by then is counted and reported.
    #[serde(default = "TelemetrySection::default_flush_timeout")]
    pub flush_timeout: HumanDuration,
}

impl TelemetrySection {
    fn default_interval() -> HumanDuration {
        HumanDuration(std::time::Duration::from_secs(10))
    }
    fn default_timeout() -> HumanDuration {
        HumanDuration(std::time::Duration::from_secs(5))
    }
    fn default_flush_timeout() -> HumanDuration {
        HumanDuration(std::time::Duration::from_secs(1))
    }
}

impl Default for TelemetrySection {
    fn default() -> Self {
        TelemetrySection {
            enabled: false,
            endpoint: None,
            protocol: None,
            service_name: None,
            headers: Default::default(),
            sample_ratio: None,
            level: TelemetryLevel::default(),
            metrics_interval: Self::default_interval(),
            timeout: Self::default_timeout(),
            flush_timeout: Self::default_flush_timeout(),
        }
    }
}

/// `[telemetry] level`.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TelemetryLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

/// `[telemetry] protocol`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
pub enum OtlpProtocol {
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    #[serde(rename = "grpc")]
    Grpc,
}

fn de_endpoint<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let endpoint = String::deserialize(d)?;
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        return Err(serde::de::Error::custom(format!(
            "invalid endpoint {endpoint:?}: expected a URL such as \"http://localhost:4318\""
        )));
    }
    Ok(Some(endpoint))
}

fn de_ratio<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let ratio = f64::deserialize(d)?;
    if !(0.0..=1.0).contains(&ratio) {
        return Err(serde::de::Error::custom(format!(
            "invalid sample_ratio {ratio}: expected a number from 0 to 1, such as 0.25"
        )));
    }
    Ok(Some(ratio))
}

fn de_name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let name = String::deserialize(d)?;
    let valid =
        !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if valid {
        Ok(name)
    } else {
        Err(serde::de::Error::custom(format!(
            "invalid plugin name {name:?}: expected lowercase letters, digits, '-' and '_'"
        )))
    }
}

/// A manifest that could not be read or parsed. `Display` gives
/// `path:line:column: message`, the way compilers report.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{}: cannot read manifest: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: {message}", path.display())]
    Invalid { path: PathBuf, line: usize, column: usize, message: String },
}

impl Manifest {
    /// Reads and parses the manifest at `path`.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ManifestError::Io { path: path.to_owned(), source })?;
        Manifest::parse(&text, path)
    }

    /// Parses manifest text; `path` is used in errors only.
    pub fn parse(text: &str, path: &Path) -> Result<Manifest, ManifestError> {
        toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map_or((1, 1), |span| line_column(text, span.start));
            ManifestError::Invalid { path: path.to_owned(), line, column, message: e.message().trim().to_owned() }
        })
    }

    /// The `[config]` table as JSON, for `Plugin::init`.
    pub fn config_json(&self) -> String {
        fn to_json(v: &toml::Value) -> String {
            match v {
                toml::Value::String(s) => json_string(s),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) if f.is_finite() => f.to_string(),
                toml::Value::Float(_) => "null".to_owned(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Datetime(d) => json_string(&d.to_string()),
                toml::Value::Array(a) => {
                    format!("[{}]", a.iter().map(to_json).collect::<Vec<_>>().join(","))
                }
                toml::Value::Table(t) => table_json(t),
            }
        }
        fn table_json(t: &toml::Table) -> String {
            let fields: Vec<String> = t.iter().map(|(k, v)| format!("{}:{}", json_string(k), to_json(v))).collect();
            format!("{{{}}}", fields.join(","))
        }
        table_json(&self.config)
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn parse(text: &str) -> Result<Manifest, String> {
        Manifest::parse(text, Path::new("ax-plugin.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn minimal_manifest_gets_defaults() {
        let m = parse("[plugin]\nname = \"word-count\"\nversion = \"0.1.0\"\n").unwrap();
        assert_eq!(m.plugin.name, "word-count");
        assert_eq!(m.plugin.library, None);
        assert_eq!(m.reload.debounce.0, Duration::from_millis(300));
        assert_eq!(m.reload.init_timeout.0, Duration::from_secs(5));
        assert_eq!(m.startup.max_total.0, Duration::from_millis(200));
        assert_eq!(m.startup.max_memory_growth, ByteSize(50 << 20));
        assert_eq!(m.budget, BudgetSection::default());
        assert_eq!(m.config_json(), "{}");
    }

    #[test]
    fn full_manifest() {
        let m = parse(
            r#"
[plugin]
name = "wc"
version = "1.2.3"
library = "lib/libwc.so"

[budget]
max_memory = "64MiB"
max_cpu_time = "2s"
max_duration = "5s"

[reload]
debounce = "100ms"

[config]
lang = "en"
limits = [1, 2.5, true]
nested = { quote = "a\"b" }
"#,
        )
        .unwrap();
        assert_eq!(m.budget.max_memory, Some(ByteSize(64 << 20)));
        assert_eq!(m.budget.max_cpu_time, Some(HumanDuration(Duration::from_secs(2))));
        assert_eq!(m.reload.debounce.0, Duration::from_millis(100));
        assert_eq!(m.plugin.library.as_deref(), Some(Path::new("lib/libwc.so")));
        assert_eq!(m.config_json(), r#"{"lang":"en","limits":[1,2.5,true],"nested":{"quote":"a\"b"}}"#);
    }

    #[test]
    fn function_budgets() {
        let m = parse("[plugin]\nname = \"wc\"\nversion = \"1\"\n[budget.functions]\ncount_words = \"2ms\"\n").unwrap();
        assert_eq!(m.budget.functions["count_words"], HumanDuration(Duration::from_millis(2)));
        let err = parse("[plugin]\nname = \"wc\"\nversion = \"1\"\n[budget.functions]\ncount_words = 2\n").unwrap_err();
        assert!(err.starts_with("ax-plugin.toml:5:15:"), "{err}");
    }

    #[test]
    fn lazy_loading_keys() {
        let m =
            parse("[plugin]\nname = \"wc\"\nversion = \"1\"\nactivation = [\"method:count\", \"*\"]\npreload = true\n")
                .unwrap();
        assert_eq!(m.plugin.activation, ["method:count", "*"]);
        assert!(m.plugin.preload && !m.plugin.lazy);
        let err = parse("[plugin]\nname = \"wc\"\nversion = \"1\"\nactivation = [\"count\"]\n").unwrap_err();
        assert!(
            err.contains(
                "ax-plugin.toml:4:14: invalid activation trigger \"count\": expected \"method:NAME\" or \"*\""
            ),
            "{err}"
        );
    }

    #[test]
    fn sandbox_section() {
        let m = parse(
            "[plugin]\nname = \"wc\"\nversion = \"1\"\nsandbox = \"best-effort\"\n[sandbox]\nnetwork = \"loopback\"\nfs_read = [\"data\", \"/etc/hosts\"]\nfs_write = [\"out\"]\nexec = true\n",
        )
        .unwrap();
        assert_eq!(m.plugin.sandbox, SandboxMode::BestEffort);
        let sandbox = m.sandbox.unwrap();
        assert_eq!(sandbox.network, Network::Loopback);
        assert!(sandbox.exec);
        let resolved = sandbox.resolved(Path::new("/p"));
        assert_eq!(resolved.fs_read, [PathBuf::from("/p/data"), PathBuf::from("/etc/hosts")]);
        assert_eq!(resolved.fs_write, [PathBuf::from("/p/out")]);

        let m = parse("[plugin]\nname = \"wc\"\nversion = \"1\"\n[sandbox]\n").unwrap();
        assert_eq!(m.sandbox, Some(SandboxSection::default()), "an empty [sandbox] denies everything");
        assert_eq!(m.plugin.sandbox, SandboxMode::Enforced);
        assert_eq!(parse("[plugin]\nname = \"wc\"\nversion = \"1\"\n").unwrap().sandbox, None);
    }

    #[test]
    fn sandbox_errors_name_the_key_and_the_expected_form() {
        let base = "[plugin]\nname = \"wc\"\nversion = \"1\"\n";
        let err = |extra: &str| parse(&format!("{base}{extra}")).unwrap_err().to_string();
        let e = err("[sandbox]\nnetwork = \"lo\"\n");
        assert!(e.contains(":5:") && e.contains("`none`, `loopback`, `any`"), "{e}");
        let e = err("[sandbox]\nnet = \"none\"\n");
        assert!(e.contains("unknown field `net`") && e.contains("network"), "{e}");
        let e = err("[sandbox]\nfs_read = \"data\"\n");
        assert!(e.contains("expected a sequence"), "{e}");
        let e = err("[sandbox]\nfs_write = [\"\"]\n");
        assert!(e.contains("invalid path \"\"") && e.contains("relative to the manifest's directory"), "{e}");
        let e = err("[sandbox]\nexec = \"no\"\n");
        assert!(e.contains("expected a boolean"), "{e}");
        let e = parse("[plugin]\nname = \"wc\"\nversion = \"1\"\nsandbox = \"loose\"\n").unwrap_err().to_string();
        assert!(e.contains("`enforced` or `best-effort`"), "{e}");
    }

    #[test]
    fn isolation_values() {
        let m = parse("[plugin]\nname = \"wc\"\nversion = \"1\"\nisolation = \"process\"\n").unwrap();
        assert_eq!(m.plugin.isolation, Isolation::Process);
        let err = parse("[plugin]\nname = \"wc\"\nversion = \"1\"\nisolation = \"proces\"\n").unwrap_err();
        assert!(err.contains("ax-plugin.toml:4:13: unknown variant `proces`, expected `none` or `process`"), "{err}");
    }

    #[test]
    fn unknown_key_names_line_and_expected_keys() {
        let err = parse("[plugin]\nname = \"wc\"\nversion = \"1\"\nlibary = \"x.so\"\n").unwrap_err();
        assert!(err.starts_with("ax-plugin.toml:4:1: unknown field `libary`, expected one of"), "{err}");
        assert!(err.contains("`library`"), "{err}");
    }

    #[test]
    fn unknown_table_is_an_error() {
        let err = parse("[plugin]\nname = \"wc\"\nversion = \"1\"\n[budgett]\n").unwrap_err();
        assert!(err.contains("ax-plugin.toml:4:"), "{err}");
        assert!(err.contains("unknown field `budgett`"), "{err}");
    }

    #[test]
    fn bad_unit_names_the_expected_form() {
        let err =
            parse("[plugin]\nname = \"wc\"\nversion = \"1\"\n[budget]\nmax_memory = \"64 potatoes\"\n").unwrap_err();
        assert!(err.starts_with("ax-plugin.toml:5:14:"), "{err}");
        assert!(err.contains("expected a size such as \"64MiB\""), "{err}");
    }

    #[test]
    fn bare_number_is_not_a_size() {
        let err = parse("[plugin]\nname = \"wc\"\nversion = \"1\"\n[budget]\nmax_duration = 5\n").unwrap_err();
        assert!(err.starts_with("ax-plugin.toml:5:16:"), "{err}");
        assert!(err.contains("expected a duration such as \"300ms\""), "{err}");
    }

    #[test]
    fn missing_plugin_table_and_bad_name() {
        let err = parse("[budget]\n").unwrap_err();
        assert!(err.contains("missing field `plugin`"), "{err}");
        let err = parse("[plugin]\nname = \"Word Count\"\nversion = \"1\"\n").unwrap_err();
        assert!(err.starts_with("ax-plugin.toml:2:8:"), "{err}");
        assert!(err.contains("expected lowercase letters"), "{err}");
    }

    #[test]
    fn syntax_error_has_position() {
        let err = parse("[plugin\nname = 1\n").unwrap_err();
        assert!(err.starts_with("ax-plugin.toml:1:"), "{err}");
    }

    #[test]
    fn telemetry_section() {
        let m = parse("[plugin]\nname = \"wc\"\nversion = \"1\"\n").unwrap();
        assert_eq!(m.telemetry, TelemetrySection::default());
        assert!(!m.telemetry.enabled);
        let m = parse(
            "[plugin]\nname = \"wc\"\nversion = \"1\"\n[telemetry]\nenabled = true\nendpoint = \"http://otel:4318\"\n\
             protocol = \"grpc\"\nservice_name = \"svc\"\nheaders = { \"x-key\" = \"k\" }\nsample_ratio = 0.5\n\
             level = \"trace\"\nmetrics_interval = \"2s\"\ntimeout = \"300ms\"\nflush_timeout = \"250ms\"\n",
        )
        .unwrap();
        let t = m.telemetry;
        assert!(t.enabled);
        assert_eq!(t.endpoint.as_deref(), Some("http://otel:4318"));
        assert_eq!(t.protocol, Some(OtlpProtocol::Grpc));
        assert_eq!(t.service_name.as_deref(), Some("svc"));
        assert_eq!(t.headers.get("x-key").map(String::as_str), Some("k"));
        assert_eq!(t.sample_ratio, Some(0.5));
        assert_eq!(t.level, TelemetryLevel::Trace);
        assert_eq!(TelemetrySection::default().level, TelemetryLevel::Info);
        assert_eq!(t.metrics_interval.0, Duration::from_secs(2));
        assert_eq!(t.timeout.0, Duration::from_millis(300));
        assert_eq!(t.flush_timeout.0, Duration::from_millis(250));
        assert_eq!(TelemetrySection::default().flush_timeout.0, Duration::from_secs(1));
    }

    #[test]
    fn telemetry_bad_values_name_the_expected_form() {
        let head = "[plugin]\nname = \"wc\"\nversion = \"1\"\n[telemetry]\n";
        let err = parse(&format!("{head}protocol = \"http/json\"\n")).unwrap_err();
        assert!(
            err.contains("ax-plugin.toml:5:12: unknown variant `http/json`, expected `http/protobuf` or `grpc`"),
            "{err}"
        );
        let err = parse(&format!("{head}endpoint = \"localhost:4318\"\n")).unwrap_err();
        assert!(err.contains("expected a URL such as \"http://localhost:4318\""), "{err}");
        let err = parse(&format!("{head}sample_ratio = 2.0\n")).unwrap_err();
        assert!(err.contains("invalid sample_ratio 2: expected a number from 0 to 1"), "{err}");
        let err = parse(&format!("{head}level = \"verbose\"\n")).unwrap_err();
        assert!(
            err.contains("unknown variant `verbose`, expected one of `error`, `warn`, `info`, `debug`, `trace`"),
            "{err}"
        );
        let err = parse(&format!("{head}metrics_interval = 10\n")).unwrap_err();
        assert!(err.contains("expected a duration such as \"300ms\""), "{err}");
        let err = parse(&format!("{head}endpoints = \"http://x\"\n")).unwrap_err();
        assert!(err.contains("unknown field `endpoints`"), "{err}");
    }

    #[test]
    fn line_column_counts_characters() {
        assert_eq!(line_column("ab\ncdé\nx", 0), (1, 1));
        assert_eq!(line_column("ab\ncdé\nx", 3), (2, 1));
        assert_eq!(line_column("ab\ncdé\nx", 8), (3, 1));
        assert_eq!(line_column("ab\ncdé\nx", 7), (2, 4));
    }
}
