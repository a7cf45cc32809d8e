//! The protocol's edge: what this adapter advertises (`capabilities`), the
//! requests it understands with their typed arguments ([`Request`], parsed in
//! two steps as CodeLLDB does: the envelope, then the arguments of a known
//! command, so an unknown command or malformed arguments get an error response
//! naming them), the launch and attach arguments and their schema for editors,
//! and [`Out`], which frames and numbers what goes back. DAP's own types come
//! from the `dap` crate; ax's launch and attach arguments are ours.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use ax_runtime::debug::ExceptionFilter;
use ax_runtime::debug_host::WireResume;
use dap::events::{Event, ExitedEventBody, OutputEventBody};
use dap::requests::{
    BreakpointLocationsArguments, CompletionsArguments, DataBreakpointInfoArguments, EvaluateArguments,
    ScopesArguments, SetDataBreakpointsArguments, SetExceptionBreakpointsArguments, SetFunctionBreakpointsArguments,
    SetVariableArguments, StackTraceArguments, VariablesArguments,
};
use dap::types::{Capabilities, ExceptionBreakpointsFilter, OutputEventCategory, Source};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::codec::write_message;

/// The capabilities this adapter has, and only those.
pub(crate) fn capabilities() -> Value {
    let filters = ExceptionFilter::ALL.map(|f| {
        let (label, description) = match f {
            ExceptionFilter::Panic => ("Panics", "Stop where a plugin call panics, before it unwinds"),
            ExceptionFilter::Budget => {
                ("Budget violations", "Stop where a call that exceeded its budget is being unwound")
            }
            ExceptionFilter::Error => ("Errors returned", "Stop when a call returns an error (its own `Err`)"),
            ExceptionFilter::Sandbox => {
                ("Sandbox denials", "Stop where a sandboxed plugin's system call is denied, before it fails with EPERM")
            }
        };
        ExceptionBreakpointsFilter {
            filter: f.name().to_owned(),
            label: label.to_owned(),
            description: Some(description.to_owned()),
            // A denial is a surprise worth stopping for; only sandboxed plugins have them.
            default: Some(matches!(f, ExceptionFilter::Panic | ExceptionFilter::Sandbox)),
            ..Default::default()
        }
    });
    body(Capabilities {
        supports_configuration_done_request: Some(true),
        supports_conditional_breakpoints: Some(true),
        supports_function_breakpoints: Some(true),
        supports_hit_conditional_breakpoints: Some(true),
        supports_log_points: Some(true),
        supports_set_variable: Some(true),
        supports_evaluate_for_hovers: Some(true),
        supports_terminate_request: Some(true),
        supports_restart_request: Some(true),
        supports_exception_info_request: Some(true),
        supports_breakpoint_locations_request: Some(true),
        supports_completions_request: Some(true),
        completion_trigger_characters: Some(vec![".".to_owned()]),
        supports_modules_request: Some(true),
        supports_loaded_sources_request: Some(true),
        supports_delayed_stack_trace_loading: Some(true),
        supports_data_breakpoints: Some(true),
        exception_breakpoint_filters: Some(filters.to_vec()),
        ..Default::default()
    })
}

/// The `launch` and `attach` arguments as VS Code's `configurationAttributes`
/// (JSON schema properties), derived from the types that parse them, so that
/// what editors offer and what ax-dap accepts cannot drift (`ax-dap --schema`).
pub(crate) fn schema() -> Value {
    fn attributes<T: JsonSchema>() -> Value {
        let generator = schemars::generate::SchemaSettings::draft07()
            .with(|s| {
                s.inline_subschemas = true;
                s.meta_schema = None;
            })
            .into_generator();
        let mut schema = generator.into_root_schema_for::<T>().to_value();
        tidy(&mut schema);
        json!({ "required": schema.get("required").cloned().unwrap_or(json!([])),
                "properties": schema.get("properties").cloned().unwrap_or(json!({})) })
    }
    /// As editors want it: an optional value is its type (not "or null"),
    /// "any" is `{}`, and no numeric formats they would not know.
    fn tidy(schema: &mut Value) {
        match schema {
            Value::Bool(true) => *schema = json!({}),
            Value::Object(map) => {
                if let Some(Value::Array(types)) = map.get_mut("type") {
                    types.retain(|t| t != "null");
                    if types.len() == 1 {
                        let only = types[0].clone();
                        map.insert("type".to_owned(), only);
                    }
                }
                for key in ["format", "minimum", "maximum"] {
                    map.remove(key);
                }
                map.iter_mut().filter(|(key, _)| *key != "default").for_each(|(_, value)| tidy(value));
            }
            Value::Array(items) => items.iter_mut().for_each(tidy),
            _ => {}
        }
    }
    json!({ "launch": attributes::<LaunchArgs>(), "attach": attributes::<AttachArgs>() })
}

/// The `launch` request's arguments.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LaunchArgs {
    /// The plugin: a crate directory with ax-plugin.toml, its manifest, or a library file (relative to `cwd`).
    pub(crate) plugin: PathBuf,
    /// The calls to make, in order, once the breakpoints are set.
    #[serde(default)]
    pub(crate) calls: Vec<CallArg>,
    /// A file of calls made after `calls`: one JSON object per line, {"method": …, "input": …}.
    pub(crate) calls_file: Option<PathBuf>,
    /// Build the plugin crate with cargo first; cargo's output goes to the Debug Console.
    #[serde(default = "yes")]
    pub(crate) build: bool,
    /// Stop at the first probe the plugin reaches.
    #[serde(default)]
    pub(crate) stop_on_entry: bool,
    /// The working directory of the plugin's host process, and the base of relative paths.
    pub(crate) cwd: Option<PathBuf>,
    /// Environment variables for the plugin's host process (AX_LOG filters the plugin's log lines).
    #[serde(default)]
    pub(crate) env: BTreeMap<String, String>,
    /// Source path prefixes as the compiler saw them, mapped to where they are on this machine.
    #[serde(default)]
    pub(crate) source_map: BTreeMap<String, String>,
    /// Keep the plugin running after the last call, for `.call METHOD JSON` in the Debug Console.
    #[serde(default)]
    pub(crate) keep_running: bool,
    /// Reload the plugin when its library is rebuilt (state kept, breakpoints re-resolved).
    #[serde(default)]
    pub(crate) hot_reload: bool,
    /// Earlier hits kept per watched probe, for the History scope, `.history`, `prev(x)` and `history(x)` (0: off).
    #[serde(default = "default_history_size")]
    pub(crate) history_size: usize,
}

pub(crate) fn default_history_size() -> usize {
    ax_runtime::debug::DEFAULT_HISTORY_SIZE
}

/// The `attach` request's arguments: an `ax run --debug-listen` host.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AttachArgs {
    /// The port the host listens on (`ax run --debug-listen 127.0.0.1:PORT`).
    pub(crate) port: u16,
    /// The host's address; only loopback is accepted.
    #[serde(default = "loopback")]
    pub(crate) host: String,
    /// The token the host printed when it started listening.
    pub(crate) token: String,
    /// Source path prefixes as the compiler saw them, mapped to where they are on this machine.
    #[serde(default)]
    pub(crate) source_map: BTreeMap<String, String>,
}

pub(crate) fn yes() -> bool {
    true
}

pub(crate) fn loopback() -> String {
    "127.0.0.1".to_owned()
}

/// One plugin call.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
pub(crate) struct CallArg {
    /// The method to call.
    pub(crate) method: String,
    /// Its input (any JSON; null when absent).
    #[serde(default)]
    pub(crate) input: Value,
}

/// `setBreakpoints`' arguments. Ours, not the `dap` crate's: its
/// `SourceBreakpoint` (0.4.1-alpha1) misses `rename_all = "camelCase"`, so
/// `hitCondition` and `logMessage` would be dropped without a word (the test
/// `the_dap_crate_still_drops_hit_conditions` says when that is fixed).
#[derive(Debug, Deserialize)]
pub(crate) struct SetBreakpointsArgs {
    pub(crate) source: Source,
    #[serde(default)]
    pub(crate) breakpoints: Vec<SourceBreakpointArg>,
}

/// A breakpoint of `setBreakpoints`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SourceBreakpointArg {
    pub(crate) line: i64,
    pub(crate) condition: Option<String>,
    pub(crate) hit_condition: Option<String>,
    pub(crate) log_message: Option<String>,
}

/// The body of a `continue` response. Ours for the same reason: the crate's
/// `ContinueResponse` would write `all_threads_continued`.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Continued {
    pub(crate) all_threads_continued: bool,
}

/// `restart`'s arguments: the launch arguments to use this time, if new.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RestartArgs {
    pub(crate) arguments: Option<Value>,
}

/// Every request this adapter understands, with typed arguments; anything else
/// is `Unknown` and gets an error response.
#[derive(Debug)]
pub(crate) enum Request {
    Initialize,
    Launch(LaunchArgs),
    Attach(AttachArgs),
    Restart(RestartArgs),
    SetBreakpoints(SetBreakpointsArgs),
    SetFunctionBreakpoints(SetFunctionBreakpointsArguments),
    SetExceptionBreakpoints(SetExceptionBreakpointsArguments),
    SetDataBreakpoints(SetDataBreakpointsArguments),
    DataBreakpointInfo(DataBreakpointInfoArguments),
    BreakpointLocations(BreakpointLocationsArguments),
    ConfigurationDone,
    Threads,
    StackTrace(StackTraceArguments),
    Scopes(ScopesArguments),
    Variables(VariablesArguments),
    SetVariable(SetVariableArguments),
    Evaluate(EvaluateArguments),
    Completions(CompletionsArguments),
    ExceptionInfo,
    Modules,
    LoadedSources,
    Resume(WireResume),
    Pause,
    Disconnect,
    Unknown(String),
}

pub(crate) fn parse(command: &str, arguments: Value) -> Result<Request, String> {
    fn args<T: for<'de> Deserialize<'de>>(command: &str, arguments: Value) -> Result<T, String> {
        serde_json::from_value(arguments).map_err(|e| format!("bad arguments to `{command}`: {e}"))
    }
    Ok(match command {
        "initialize" => Request::Initialize,
        "launch" => Request::Launch(args(command, arguments)?),
        "attach" => Request::Attach(args(command, arguments)?),
        "restart" if arguments.is_null() => Request::Restart(RestartArgs::default()),
        "restart" => Request::Restart(args(command, arguments)?),
        "setBreakpoints" => Request::SetBreakpoints(args(command, arguments)?),
        "setFunctionBreakpoints" => Request::SetFunctionBreakpoints(args(command, arguments)?),
        "setExceptionBreakpoints" => Request::SetExceptionBreakpoints(args(command, arguments)?),
        "setDataBreakpoints" => Request::SetDataBreakpoints(args(command, arguments)?),
        "dataBreakpointInfo" => Request::DataBreakpointInfo(args(command, arguments)?),
        "breakpointLocations" => Request::BreakpointLocations(args(command, arguments)?),
        "configurationDone" => Request::ConfigurationDone,
        "threads" => Request::Threads,
        "stackTrace" => Request::StackTrace(args(command, arguments)?),
        "scopes" => Request::Scopes(args(command, arguments)?),
        "variables" => Request::Variables(args(command, arguments)?),
        "setVariable" => Request::SetVariable(args(command, arguments)?),
        "evaluate" => Request::Evaluate(args(command, arguments)?),
        "completions" => Request::Completions(args(command, arguments)?),
        "exceptionInfo" => Request::ExceptionInfo,
        "modules" => Request::Modules,
        "loadedSources" => Request::LoadedSources,
        "continue" => Request::Resume(WireResume::Continue),
        "next" => Request::Resume(WireResume::Next),
        "stepIn" => Request::Resume(WireResume::StepIn),
        "stepOut" => Request::Resume(WireResume::StepOut),
        "pause" => Request::Pause,
        "disconnect" | "terminate" => Request::Disconnect,
        other => Request::Unknown(other.to_owned()),
    })
}

/// A DAP body, as JSON. Optional fields left `None` are absent, as DAP wants
/// them, not `null` (some of the `dap` crate's types would write `null`).
pub(crate) fn body(value: impl serde::Serialize) -> Value {
    fn drop_nulls(value: &mut Value) {
        match value {
            Value::Object(map) => {
                map.retain(|_, v| !v.is_null());
                map.values_mut().for_each(drop_nulls);
            }
            Value::Array(items) => items.iter_mut().for_each(drop_nulls),
            _ => {}
        }
    }
    let mut value = serde_json::to_value(value).unwrap_or(Value::Null);
    drop_nulls(&mut value);
    value
}

/// Where DAP messages go; numbers them.
#[derive(Clone)]
pub(crate) struct Out {
    pub(crate) writer: Arc<Mutex<Box<dyn Write + Send>>>,
    pub(crate) seq: Arc<AtomicI64>,
}

impl Out {
    pub(crate) fn new(writer: Box<dyn Write + Send>) -> Out {
        Out { writer: Arc::new(Mutex::new(writer)), seq: Arc::new(AtomicI64::new(1)) }
    }

    pub(crate) fn send(&self, mut message: Value) {
        message["seq"] = json!(self.seq.fetch_add(1, Ordering::Relaxed));
        let _ = write_message(&mut *self.writer.lock().unwrap_or_else(|e| e.into_inner()), &message);
    }

    pub(crate) fn event(&self, event: Event) {
        let mut message = body(event);
        message["type"] = json!("event");
        self.send(message);
    }

    pub(crate) fn respond(&self, request_seq: i64, command: &str, result: Result<Value, String>) {
        let mut message = json!({ "type": "response", "request_seq": request_seq, "command": command });
        match result {
            Ok(body) => {
                message["success"] = json!(true);
                message["body"] = body;
            }
            Err(error) => {
                message["success"] = json!(false);
                message["message"] = json!(error);
            }
        }
        self.send(message);
    }

    pub(crate) fn output(&self, category: &str, text: impl Into<String>) {
        let category = match category {
            "console" => OutputEventCategory::Console,
            "stdout" => OutputEventCategory::Stdout,
            "stderr" => OutputEventCategory::Stderr,
            other => OutputEventCategory::String(other.to_owned()),
        };
        self.event(Event::Output(OutputEventBody {
            category: Some(category),
            output: text.into(),
            ..Default::default()
        }));
    }

    /// The session has ended: `exited` with `exit_code`, then `terminated`.
    pub(crate) fn ended(&self, exit_code: i64) {
        self.event(Event::Exited(ExitedEventBody { exit_code }));
        self.event(Event::Terminated(None));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// When this fails, the `dap` crate reads `hitCondition` and `logMessage`:
    /// `SetBreakpointsArgs` and `Continued` can go back to the crate's types.
    #[test]
    fn the_dap_crate_still_drops_hit_conditions() {
        let theirs: dap::types::SourceBreakpoint =
            serde_json::from_value(json!({ "line": 3, "hitCondition": ">= 2", "logMessage": "x" })).unwrap();
        assert!(theirs.hit_condition.is_none() && theirs.log_message.is_none());
        let ours: SourceBreakpointArg =
            serde_json::from_value(json!({ "line": 3, "hitCondition": ">= 2", "logMessage": "x" })).unwrap();
        assert_eq!((ours.hit_condition.as_deref(), ours.log_message.as_deref()), (Some(">= 2"), Some("x")));
    }

    #[test]
    fn requests_parse_into_typed_arguments_and_bad_ones_are_named() {
        let Ok(Request::SetBreakpoints(args)) =
            parse("setBreakpoints", json!({ "source": { "path": "/a.rs" }, "breakpoints": [{ "line": 4 }] }))
        else {
            panic!("setBreakpoints parses");
        };
        assert_eq!((args.source.path.as_deref(), args.breakpoints[0].line), (Some("/a.rs"), 4));
        let error = parse("scopes", json!({ "frameId": "zero" })).unwrap_err();
        assert!(error.starts_with("bad arguments to `scopes`"), "{error}");
        assert!(matches!(parse("frobnicate", Value::Null), Ok(Request::Unknown(c)) if c == "frobnicate"));
    }

    #[test]
    fn capabilities_use_dap_names() {
        let caps = capabilities();
        assert_eq!(caps["supportsExceptionInfoRequest"], true);
        assert_eq!(caps["exceptionBreakpointFilters"][0]["filter"], "panic");
        assert!(caps.get("supportsStepBack").is_none(), "only what is supported is advertised");
    }
}
