//! Lazy loading: a plugin loaded on its first matching call instead of at
//! startup (manifest `lazy = true`, `activation = ["method:count"]`), or in the
//! background right after startup (`preload = true`).
//!
//! Concurrent first calls share one load: the first caller loads, the others
//! wait for it. A load that fails is reported once (one `LoadFailed` event, the
//! same error to every caller that waited for that attempt); the next call
//! tries again.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use serde_json::Value;

use crate::budget::{Budget, Usage};
use crate::error::{CallError, LoadError};
use crate::events::Event;
use crate::host::Host;
use crate::plugin::Plugin;
use crate::source::PluginSource;

enum State {
    Unloaded,
    /// A load is in progress; `attempt` numbers it.
    Loading {
        attempt: u64,
    },
    Loaded(Arc<Plugin>),
    /// The load numbered `attempt` failed with this message.
    Failed {
        attempt: u64,
        message: String,
    },
}

/// A plugin loaded on demand. See the module docs.
pub struct LazyPlugin {
    host: Arc<Host>,
    source: PluginSource,
    library: PathBuf,
    /// Methods that load the plugin; `None`: any.
    activation: Option<Vec<String>>,
    state: Mutex<State>,
    changed: Condvar,
}

impl std::fmt::Debug for LazyPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyPlugin").field("name", &self.source.name()).finish_non_exhaustive()
    }
}

/// Methods named by `method:NAME` triggers; `None` when any call activates.
fn activation_methods(triggers: &[String]) -> Option<Vec<String>> {
    if triggers.is_empty() || triggers.iter().any(|t| t == "*") {
        return None;
    }
    Some(triggers.iter().filter_map(|t| t.strip_prefix("method:")).map(str::to_owned).collect())
}

impl LazyPlugin {
    /// A lazy plugin of `source`, whose library is `library`. With the
    /// manifest's `preload`, loading starts now in the background.
    pub fn new(host: Arc<Host>, source: PluginSource, library: &Path) -> Arc<LazyPlugin> {
        let (triggers, preload) = match &source {
            PluginSource::Manifest { manifest, .. } => (manifest.plugin.activation.clone(), manifest.plugin.preload),
            PluginSource::Library(_) => (Vec::new(), false),
        };
        let plugin = Arc::new(LazyPlugin {
            host,
            source,
            library: library.to_owned(),
            activation: activation_methods(&triggers),
            state: Mutex::new(State::Unloaded),
            changed: Condvar::new(),
        });
        if preload {
            let background = plugin.clone();
            let _ = std::thread::Builder::new().name("ax-preload".to_owned()).spawn(move || {
                let _ = background.ensure_loaded();
            });
        }
        plugin
    }

    /// Whether the plugin is loaded.
    pub fn is_loaded(&self) -> bool {
        matches!(*self.state.lock().unwrap_or_else(|e| e.into_inner()), State::Loaded(_))
    }

    /// Whether a call of `method` loads the plugin.
    pub fn activates(&self, method: &str) -> bool {
        self.activation.as_ref().is_none_or(|methods| methods.iter().any(|m| m == method))
    }

    /// The loaded plugin, loading it if needed (once, however many callers ask at
    /// the same time).
    pub fn ensure_loaded(&self) -> Result<Arc<Plugin>, LoadError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let attempt = loop {
            match &*state {
                State::Loaded(plugin) => return Ok(plugin.clone()),
                State::Loading { attempt } => {
                    let waiting_for = *attempt;
                    state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
                    if let State::Failed { attempt, message } = &*state
                        && *attempt == waiting_for
                    {
                        return Err(self.failure(message.clone()));
                    }
                }
                State::Unloaded => break 1,
                State::Failed { attempt, .. } => break attempt + 1,
            }
        };
        *state = State::Loading { attempt };
        drop(state);

        let loaded = self.host.load(&self.source, &self.library);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let result = match loaded {
            Ok(plugin) => {
                let plugin = Arc::new(plugin);
                *state = State::Loaded(plugin.clone());
                Ok(plugin)
            }
            Err(error) => {
                let message = error.to_string();
                self.host.events().publish_with(|| Event::LoadFailed {
                    name: self.source.name(),
                    attempt,
                    error: message.clone(),
                });
                *state = State::Failed { attempt, message };
                Err(error)
            }
        };
        self.changed.notify_all();
        result
    }

    fn failure(&self, message: String) -> LoadError {
        LoadError::Init { path: self.library.clone(), failure: crate::error::PluginFailure::Protocol { message } }
    }

    /// Calls `method`, loading the plugin first if this call activates it.
    pub fn call_with(&self, method: &str, input: &Value, budget: Option<&Budget>) -> (Result<Value, CallError>, Usage) {
        let loaded = {
            let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            match &*state {
                State::Loaded(plugin) => Some(plugin.clone()),
                _ => None,
            }
        };
        let plugin = match loaded {
            Some(plugin) => plugin,
            None if !self.activates(method) => {
                let activation = self.activation.clone().unwrap_or_default();
                return (
                    Err(CallError::NotActivated { plugin: self.source.name(), method: method.to_owned(), activation }),
                    Usage::default(),
                );
            }
            None => match self.ensure_loaded() {
                Ok(plugin) => plugin,
                Err(e) => {
                    return (
                        Err(CallError::NotLoaded { plugin: self.source.name(), cause: e.to_string() }),
                        Usage::default(),
                    );
                }
            },
        };
        plugin.call_with(method, input, budget)
    }
}
