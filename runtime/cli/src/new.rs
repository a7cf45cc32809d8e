//! `ax new NAME`: scaffold a plugin crate that builds and runs as is.
//!
//! The crate depends on the `ax-plugin` SDK by path (the SDK is not published):
//! `--sdk`, then `AX_SDK_PATH`, then the copy of the SDK this binary carries,
//! written once to a versioned data directory (`sdk_data.rs`), so that an
//! installed `ax` keeps working after the checkout it was built from is gone.
//! It declares an empty `[workspace]` so that it builds on its own wherever it
//! is created, even inside another workspace.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct NewArgs {
    /// The plugin's name and directory: lowercase letters, digits, '-' and '_', starting with a letter.
    name: String,
    /// Create it in this directory instead of ./NAME.
    #[arg(long, value_name = "DIR")]
    path: Option<PathBuf>,
    /// The ax-plugin SDK crate to depend on.
    #[arg(long, value_name = "DIR", env = "AX_SDK_PATH")]
    sdk: Option<PathBuf>,
}

pub(crate) fn run(args: NewArgs) -> Result<ExitCode> {
    validate_name(&args.name)?;
    let dir = args.path.unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists() {
        bail!("{}: already exists; expected a path for a new plugin directory", dir.display());
    }
    let sdk = find_sdk(args.sdk)?;
    write_crate(&dir, &args.name, &sdk)?;
    println!("Created plugin `{}` in {}", args.name, dir.display());
    println!("Try: ax run {} hello '{{\"name\":\"ax\"}}'", dir.display());
    Ok(ExitCode::SUCCESS)
}

fn validate_name(name: &str) -> Result<()> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        bail!("invalid plugin name {name:?}: expected lowercase letters, digits, '-' and '_', starting with a letter");
    }
    Ok(())
}

fn find_sdk(given: Option<PathBuf>) -> Result<PathBuf> {
    let (candidate, origin) = match given {
        Some(path) => (path, "--sdk / AX_SDK_PATH"),
        None => (crate::sdk_data::sdk_dir()?, "the SDK this ax carries"),
    };
    let manifest = candidate.join("Cargo.toml");
    let is_sdk = std::fs::read_to_string(&manifest).is_ok_and(|t| t.contains("name = \"ax-plugin\""));
    if !is_sdk {
        bail!(
            "{}: not the ax-plugin SDK (taken from {origin}); expected the `sdk` directory of an ax checkout, given with --sdk or AX_SDK_PATH",
            candidate.display()
        );
    }
    candidate.canonicalize().with_context(|| format!("{}: cannot resolve the SDK path", candidate.display()))
}

fn write_crate(dir: &Path, name: &str, sdk: &Path) -> Result<()> {
    let files = [
        ("Cargo.toml", cargo_toml(name, sdk)),
        ("ax-plugin.toml", manifest(name)),
        ("src/lib.rs", LIB_RS.replace("{{type}}", &type_name(name))),
        (".gitignore", "/target\n/.ax\n".to_owned()),
    ];
    for (file, contents) in files {
        let path = dir.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("{}: cannot create directory", parent.display()))?;
        }
        std::fs::write(&path, contents).with_context(|| format!("{}: cannot write", path.display()))?;
    }
    Ok(())
}

/// `word-count` → `WordCount`.
fn type_name(name: &str) -> String {
    name.split(['-', '_'])
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect()
}

fn cargo_toml(name: &str, sdk: &Path) -> String {
    let sdk = sdk.display().to_string().replace('\\', "\\\\").replace('"', "\\\"");
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
ax-plugin = {{ path = "{sdk}" }}
serde = {{ version = "1", features = ["derive"] }}
serde_json = "1"
tracing = "0.1"

# A plugin crate builds on its own, even when created inside another workspace.
[workspace]
"#
    )
}

fn manifest(name: &str) -> String {
    format!(
        r#"[plugin]
name = "{name}"
version = "0.1.0"

# Per-call limits (human units: "64MiB", "2s", "300ms").
# [budget]
# max_memory = "64MiB"
# max_duration = "5s"

# Passed to Plugin::init as JSON.
[config]
greeting = "Hello"
"#
    )
}

const LIB_RS: &str = r#"//! An ax plugin. `ax run . hello '{"name":"ax"}'` calls it.

use ax_plugin::{Plugin, PluginError, State, Value, probe};
use serde::{Deserialize, Serialize};
use tracing::{debug, instrument};

#[derive(Deserialize, Default)]
#[serde(default)]
struct HelloInput {
    name: Option<String>,
}

#[derive(Serialize)]
struct HelloOutput {
    message: String,
    calls: u64,
}

#[derive(Deserialize)]
struct Config {
    #[serde(default = "default_greeting")]
    greeting: String,
}

fn default_greeting() -> String {
    "Hello".to_owned()
}

pub struct {{type}} {
    greeting: String,
    calls: u64,
}

impl {{type}} {
    #[instrument(skip(self, input))]
    fn hello(&mut self, input: HelloInput) -> HelloOutput {
        self.calls += 1;
        let mut name = input.name.unwrap_or_else(|| "world".to_owned());
        probe!(&mut name, calls = self.calls);
        debug!(calls = self.calls, "greeting {name}");
        HelloOutput { message: format!("{}, {name}!", self.greeting), calls: self.calls }
    }
}

impl Plugin for {{type}} {
    const METHODS: &'static [&'static str] = &["hello"];

    fn init(config: Value) -> Result<Self, PluginError> {
        let config: Config = ax_plugin::input(config)?;
        Ok({{type}} { greeting: config.greeting, calls: 0 })
    }

    fn call(&mut self, method: &str, input: Value) -> Result<Value, PluginError> {
        match method {
            "hello" => {
                let input = if input.is_null() { HelloInput::default() } else { ax_plugin::input(input)? };
                ax_plugin::output(&self.hello(input))
            }
            other => Err(PluginError::unknown_method(other, Self::METHODS)),
        }
    }

    fn save_state(&mut self) -> Result<State, PluginError> {
        State::json(1, &self.calls)
    }

    fn restore_state(&mut self, state: State) -> Result<(), PluginError> {
        if state.schema_version == 1 {
            self.calls = state.decode()?;
        }
        Ok(())
    }
}

ax_plugin::export_plugin!({{type}});
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("demo").is_ok());
        assert!(validate_name("word-count_2").is_ok());
        for bad in ["", "Demo", "2x", "a b", "-x", "dé"] {
            let err = validate_name(bad).unwrap_err().to_string();
            assert!(err.contains("expected lowercase letters"), "{bad}: {err}");
        }
        assert_eq!(type_name("word-count"), "WordCount");
        assert_eq!(type_name("demo"), "Demo");
        assert_eq!(type_name("a_b-c"), "ABC");
    }

    #[test]
    fn refuses_a_directory_that_is_not_the_sdk() {
        let dir = tempfile::tempdir().unwrap();
        let err = find_sdk(Some(dir.path().to_owned())).unwrap_err().to_string();
        assert!(err.contains("not the ax-plugin SDK (taken from --sdk / AX_SDK_PATH)"), "{err}");
    }
}
