//! word-count: the ax example plugin.
//!
//! `count` takes `{"text": "..."}` and returns `{"words": <words in text>,
//! "total": <words counted by this instance so far>}`. `total` is the plugin's
//! state: it is saved and restored through the state contract, so it survives a
//! hot reload. The code is instrumented the way ax expects plugin authors to
//! instrument theirs: `#[tracing::instrument]` spans on nested functions, a
//! `debug!` event with fields, and a `probe!` with a `&mut` binding the debugger
//! may change.
//!
//! This contract is relied on by the runtime's, the debugger's and the profiler's
//! tests: keep it stable.

use ax_plugin::{Plugin, PluginError, State, Value, probe};
use serde::{Deserialize, Serialize};
use tracing::{debug, instrument};

/// State schema version 1: the running total.
#[derive(Serialize, Deserialize)]
struct SavedState {
    total: u64,
}

#[derive(Deserialize)]
struct CountInput {
    text: String,
}

#[derive(Serialize)]
struct CountOutput {
    words: u64,
    total: u64,
}

#[derive(Debug, Default)]
pub struct WordCount {
    total: u64,
}

impl WordCount {
    #[instrument(skip(self, input), fields(len = input.text.len()))]
    fn count(&mut self, input: CountInput) -> CountOutput {
        let mut words = count_words(&input.text);
        let text = input.text.as_str();
        probe!(text, &mut words); // #PROBE
        self.total += words;
        debug!(words, total = self.total, "counted");
        CountOutput { words, total: self.total }
    }
}

#[instrument(skip_all)]
fn count_words(text: &str) -> u64 {
    text.split_whitespace().filter(|w| is_word(w)).count() as u64
}

#[instrument(level = "trace")]
fn is_word(token: &str) -> bool {
    token.chars().any(char::is_alphanumeric)
}

impl Plugin for WordCount {
    const METHODS: &'static [&'static str] = &["count"];

    fn init(_config: Value) -> Result<Self, PluginError> {
        Ok(WordCount::default())
    }

    fn call(&mut self, method: &str, input: Value) -> Result<Value, PluginError> {
        match method {
            "count" => ax_plugin::output(&self.count(ax_plugin::input(input)?)),
            other => Err(PluginError::unknown_method(other, Self::METHODS)),
        }
    }

    fn save_state(&mut self) -> Result<State, PluginError> {
        State::json(1, &SavedState { total: self.total })
    }

    fn restore_state(&mut self, state: State) -> Result<(), PluginError> {
        match state.schema_version {
            0 if state.bytes.is_empty() => Ok(()),
            1 => {
                self.total = state.decode::<SavedState>()?.total;
                Ok(())
            }
            v => Err(PluginError::new(ax_plugin::ErrorKind::State, format!("unknown state schema version {v}"))),
        }
    }
}

ax_plugin::export_plugin!(WordCount);
