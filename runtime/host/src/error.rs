//! Errors of the runtime's public API. Every message names the input (the
//! plugin's path, the method) and what was expected, so the CLI can print it as
//! one line and an editor can show it as is.

use std::fmt;
use std::path::PathBuf;

use serde_json::Value;

/// A place in plugin source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceLocation {
    pub file: String,
    pub line: u32,
    pub column: Option<u32>,
}

impl fmt::Display for SourceLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.column {
            Some(c) => write!(f, "{}:{}:{c}", self.file, self.line),
            None => write!(f, "{}:{}", self.file, self.line),
        }
    }
}

/// What went wrong inside plugin code: an error it returned, or a panic caught
/// at the boundary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PluginFailure {
    /// The plugin returned an error (`kind` is the SDK's `ErrorKind` in snake case).
    Error { kind: String, message: String },
    /// The plugin panicked.
    Panic { message: String, location: Option<SourceLocation> },
    /// The plugin broke the protocol (bad JSON, unknown status).
    Protocol { message: String },
}

impl PluginFailure {
    /// Decodes the JSON a plugin wrote for a non-OK status.
    pub(crate) fn from_status(status: ax_abi::Status, bytes: &[u8]) -> PluginFailure {
        let json: Option<Value> = serde_json::from_slice(bytes).ok();
        let text = |key: &str| json.as_ref().and_then(|j| j.get(key)).and_then(Value::as_str).map(str::to_owned);
        match status {
            ax_abi::Status::ERROR => PluginFailure::Error {
                kind: text("kind").unwrap_or_else(|| "failed".to_owned()),
                message: text("message").unwrap_or_else(|| String::from_utf8_lossy(bytes).into_owned()),
            },
            ax_abi::Status::PANIC => {
                let num = |key: &str| json.as_ref().and_then(|j| j.get(key)).and_then(Value::as_u64);
                let location = text("file").map(|file| SourceLocation {
                    file,
                    line: num("line").unwrap_or(0) as u32,
                    column: num("column").map(|c| c as u32),
                });
                PluginFailure::Panic {
                    message: text("message").unwrap_or_else(|| "panic without a message".to_owned()),
                    location,
                }
            }
            ax_abi::Status::BAD_ARGUMENT => PluginFailure::Protocol {
                message: format!("plugin rejected the host's arguments: {}", String::from_utf8_lossy(bytes)),
            },
            other => PluginFailure::Protocol { message: format!("plugin returned unknown status {}", other.0) },
        }
    }
}

impl fmt::Display for PluginFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PluginFailure::Error { kind, message } => write!(f, "{message} ({kind})"),
            PluginFailure::Panic { message, location: Some(loc) } => write!(f, "panicked at {loc}: {message}"),
            PluginFailure::Panic { message, location: None } => write!(f, "panicked: {message}"),
            PluginFailure::Protocol { message } => f.write_str(message),
        }
    }
}

/// A plugin that could not be loaded. Nothing of it stays loaded but its mapped
/// image (see ARCHITECTURE.md, "Images are never unmapped").
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{}: no such file", path.display())]
    NotFound { path: PathBuf },
    #[error("{}: cannot read the library: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: cannot copy the library to {}: {source}", path.display(), copy.display())]
    Copy {
        path: PathBuf,
        copy: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a loadable plugin library ({message}); expected a cdylib built with the ax-plugin SDK", path.display())]
    Open { path: PathBuf, message: String },
    #[error("{}: incomplete or truncated library ({message}); expected a whole cdylib (was it still being written?)", path.display())]
    Incomplete { path: PathBuf, message: String },
    #[error(
        "{}: no `{symbol}` symbol; expected a cdylib that calls ax_plugin::export_plugin!",
        path.display()
    )]
    MissingEntry { path: PathBuf, symbol: &'static str },
    #[error("{}: plugin ABI version {found}, expected {expected}; rebuild the plugin against this ax-plugin SDK", path.display())]
    AbiMismatch { path: PathBuf, expected: u32, found: u32 },
    #[error("{}: plugin vtable is {found} bytes, expected {expected} for ABI version {abi}; the plugin's ax-abi crate does not match its declared version", path.display())]
    SizeMismatch { path: PathBuf, abi: u32, expected: u32, found: u32 },
    #[error("{}: plugin was built for {what} {found}, this host is {expected}", path.display())]
    CanaryMismatch { path: PathBuf, what: &'static str, expected: String, found: String },
    #[error("{}: plugin init failed: {failure}", path.display())]
    Init { path: PathBuf, failure: PluginFailure },
    #[error("{}: plugin init did not finish within {timeout:?}", path.display())]
    InitTimeout { path: PathBuf, timeout: std::time::Duration },
    #[error("{}: cannot start the plugin's worker thread: {source}", path.display())]
    Thread {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl LoadError {
    /// Whether the file may simply not be ready yet (missing, or still being
    /// written): worth another look after the next change, not a broken build.
    pub fn is_transient(&self) -> bool {
        matches!(self, LoadError::NotFound { .. } | LoadError::Incomplete { .. })
    }
}

/// A call that did not produce a result. The instance keeps serving after any of
/// these: a panic is caught at the boundary and the instance stays usable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("{plugin}.{method}: {failure}")]
    Plugin { plugin: String, method: String, failure: PluginFailure },
    #[error("{plugin}.{method}: plugin returned invalid JSON: {message}")]
    InvalidOutput { plugin: String, method: String, message: String },
    #[error("{plugin}.{method}: budget exceeded: {}", violations.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    BudgetExceeded { plugin: String, method: String, violations: Vec<crate::budget::Violation> },
    #[error("{plugin}.{method}: {cause}")]
    Crashed { plugin: String, method: String, cause: String },
    #[error(
        "{plugin}.{method}: the plugin is not loaded yet and `{method}` does not load it; expected one of its activation methods: {}",
        activation.join(", ")
    )]
    NotActivated { plugin: String, method: String, activation: Vec<String> },
    #[error("{plugin}: the plugin could not be loaded: {cause}")]
    NotLoaded { plugin: String, cause: String },
    #[error("{plugin}: the plugin instance has shut down")]
    Stopped { plugin: String },
}

impl CallError {
    /// The panic message and location, if the call panicked.
    pub fn panic(&self) -> Option<(&str, Option<&SourceLocation>)> {
        match self {
            CallError::Plugin { failure: PluginFailure::Panic { message, location }, .. } => {
                Some((message, location.as_ref()))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ax_abi::Status;

    #[test]
    fn decodes_errors_and_panics() {
        let e = PluginFailure::from_status(Status::ERROR, br#"{"kind":"invalid_input","message":"need text"}"#);
        assert_eq!(e, PluginFailure::Error { kind: "invalid_input".into(), message: "need text".into() });
        assert_eq!(e.to_string(), "need text (invalid_input)");

        let p =
            PluginFailure::from_status(Status::PANIC, br#"{"message":"boom","file":"src/lib.rs","line":7,"column":9}"#);
        assert_eq!(p.to_string(), "panicked at src/lib.rs:7:9: boom");

        let garbage = PluginFailure::from_status(Status::ERROR, b"not json");
        assert_eq!(garbage, PluginFailure::Error { kind: "failed".into(), message: "not json".into() });

        let unknown = PluginFailure::from_status(Status(42), b"");
        assert_eq!(unknown.to_string(), "plugin returned unknown status 42");
    }
}
