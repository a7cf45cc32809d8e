//! One debug session: DAP requests in, DAP responses and events out, and the
//! debug host child (`ax __debug-host`) that runs the plugin under the
//! runtime's debug agent.
//!
//! Requests are parsed in two steps, as CodeLLDB does: the envelope (`seq`,
//! `command`, `arguments`), then the arguments of a known command into its own
//! type ([`Request`]); an unknown command or malformed arguments get an error
//! response naming them, and the session goes on. The child's replies are
//! routed to the request waiting for them; its notifications (stops, logpoint
//! and log output) become DAP events. If the child dies (the plugin crashed
//! it), the session says how and ends; the adapter itself never goes down with
//! the plugin.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use ax_runtime::child_host::start_child_host_with;
use ax_runtime::debug::ExceptionFilter;
use ax_runtime::debug_host::{
    DebugReply, DebugRequest, WireBreakpoint, WireBreakpointState, WireException, WireFrame, WireFunctionBreakpoint,
    WireResume,
};
use ax_runtime::{BuildOptions, PluginSource};
use crossbeam_channel::{self as channel, Sender};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::codec::write_message;

/// The capabilities this adapter has, and only those.
fn capabilities() -> Value {
    json!({
        "supportsConfigurationDoneRequest": true,
        "supportsConditionalBreakpoints": true,
        "supportsFunctionBreakpoints": true,
        "supportsHitConditionalBreakpoints": true,
        "supportsLogPoints": true,
        "supportsSetVariable": true,
        "supportsEvaluateForHovers": true,
        "supportsTerminateRequest": true,
        "supportsRestartRequest": true,
        "supportsExceptionInfoRequest": true,
        "supportsBreakpointLocationsRequest": true,
        "supportsCompletionsRequest": true,
        "completionTriggerCharacters": ["."],
        "supportsModulesRequest": true,
        "supportsDelayedStackTraceLoading": true,
        "exceptionBreakpointFilters": ExceptionFilter::ALL.map(|f| {
            let (label, description) = match f {
                ExceptionFilter::Panic => ("Panics", "Stop where a plugin call panics, before it unwinds"),
                ExceptionFilter::Budget => ("Budget violations", "Stop where a call that exceeded its budget is being unwound"),
                ExceptionFilter::Error => ("Errors returned", "Stop when a call returns an error (its own `Err`)"),
            };
            json!({ "filter": f.name(), "label": label, "description": description, "default": f == ExceptionFilter::Panic })
        }),
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
struct LaunchArgs {
    /// The plugin: a crate directory with ax-plugin.toml, its manifest, or a library file (relative to `cwd`).
    plugin: PathBuf,
    /// The calls to make, in order, once the breakpoints are set.
    #[serde(default)]
    calls: Vec<CallArg>,
    /// A file of calls made after `calls`: one JSON object per line, {"method": …, "input": …}.
    calls_file: Option<PathBuf>,
    /// Build the plugin crate with cargo first; cargo's output goes to the Debug Console.
    #[serde(default = "yes")]
    build: bool,
    /// Stop at the first probe the plugin reaches.
    #[serde(default)]
    stop_on_entry: bool,
    /// The working directory of the plugin's host process, and the base of relative paths.
    cwd: Option<PathBuf>,
    /// Environment variables for the plugin's host process (AX_LOG filters the plugin's log lines).
    #[serde(default)]
    env: BTreeMap<String, String>,
    /// Source path prefixes as the compiler saw them, mapped to where they are on this machine.
    #[serde(default)]
    source_map: BTreeMap<String, String>,
    /// Keep the plugin running after the last call, for `.call METHOD JSON` in the Debug Console.
    #[serde(default)]
    keep_running: bool,
    /// Reload the plugin when its library is rebuilt (state kept, breakpoints re-resolved).
    #[serde(default)]
    hot_reload: bool,
}

/// The `attach` request's arguments: an `ax run --debug-listen` host.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct AttachArgs {
    /// The port the host listens on (`ax run --debug-listen 127.0.0.1:PORT`).
    port: u16,
    /// The host's address; only loopback is accepted.
    #[serde(default = "loopback")]
    host: String,
    /// The token the host printed when it started listening.
    token: String,
    /// Source path prefixes as the compiler saw them, mapped to where they are on this machine.
    #[serde(default)]
    source_map: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

fn loopback() -> String {
    "127.0.0.1".to_owned()
}

/// One plugin call.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
struct CallArg {
    /// The method to call.
    method: String,
    /// Its input (any JSON; null when absent).
    #[serde(default)]
    input: Value,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SourceArg {
    path: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BreakpointArg {
    line: u32,
    condition: Option<String>,
    hit_condition: Option<String>,
    log_message: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SetBreakpointsArgs {
    source: SourceArg,
    #[serde(default)]
    breakpoints: Vec<BreakpointArg>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FunctionBreakpointArg {
    name: String,
    condition: Option<String>,
    hit_condition: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SetFunctionBreakpointsArgs {
    #[serde(default)]
    breakpoints: Vec<FunctionBreakpointArg>,
}

#[derive(Debug, Deserialize)]
struct SetExceptionBreakpointsArgs {
    #[serde(default)]
    filters: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BreakpointLocationsArgs {
    source: SourceArg,
    line: u32,
    end_line: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StackTraceArgs {
    #[serde(default)]
    start_frame: usize,
    /// 0 or absent: all.
    #[serde(default)]
    levels: usize,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScopesArgs {
    frame_id: i64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VariablesArgs {
    variables_reference: i64,
    /// `indexed` or `named`.
    filter: Option<String>,
    #[serde(default)]
    start: usize,
    /// 0 or absent: all.
    #[serde(default)]
    count: usize,
}

#[derive(Debug, Deserialize)]
struct CompletionsArgs {
    text: String,
    /// 1-based, in UTF-16 code units; ASCII expected.
    column: usize,
}

#[derive(Debug, Default, Deserialize)]
struct RestartArgs {
    arguments: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SetVariableArgs {
    variables_reference: i64,
    name: String,
    value: String,
}

#[derive(Debug, Deserialize)]
struct EvaluateArgs {
    expression: String,
    /// `watch`, `hover`, `repl`, …
    context: Option<String>,
}

/// Every request this adapter understands, with typed arguments; anything else
/// is `Unknown` and gets an error response.
#[derive(Debug)]
enum Request {
    Initialize,
    Launch(LaunchArgs),
    Attach(AttachArgs),
    Restart(RestartArgs),
    SetBreakpoints(SetBreakpointsArgs),
    SetFunctionBreakpoints(SetFunctionBreakpointsArgs),
    SetExceptionBreakpoints(SetExceptionBreakpointsArgs),
    BreakpointLocations(BreakpointLocationsArgs),
    ConfigurationDone,
    Threads,
    StackTrace(StackTraceArgs),
    Scopes(ScopesArgs),
    Variables(VariablesArgs),
    SetVariable(SetVariableArgs),
    Evaluate(EvaluateArgs),
    Completions(CompletionsArgs),
    ExceptionInfo,
    Modules,
    Resume(WireResume),
    Pause,
    Disconnect,
    Unknown(String),
}

fn parse(command: &str, arguments: Value) -> Result<Request, String> {
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
        "breakpointLocations" => Request::BreakpointLocations(args(command, arguments)?),
        "configurationDone" => Request::ConfigurationDone,
        "threads" => Request::Threads,
        "stackTrace" if arguments.is_null() => Request::StackTrace(StackTraceArgs::default()),
        "stackTrace" => Request::StackTrace(args(command, arguments)?),
        "scopes" => Request::Scopes(args(command, arguments)?),
        "variables" => Request::Variables(args(command, arguments)?),
        "setVariable" => Request::SetVariable(args(command, arguments)?),
        "evaluate" => Request::Evaluate(args(command, arguments)?),
        "completions" => Request::Completions(args(command, arguments)?),
        "exceptionInfo" => Request::ExceptionInfo,
        "modules" => Request::Modules,
        "continue" => Request::Resume(WireResume::Continue),
        "next" => Request::Resume(WireResume::Next),
        "stepIn" => Request::Resume(WireResume::StepIn),
        "stepOut" => Request::Resume(WireResume::StepOut),
        "pause" => Request::Pause,
        "disconnect" | "terminate" => Request::Disconnect,
        other => Request::Unknown(other.to_owned()),
    })
}

/// Where DAP messages go; numbers them.
#[derive(Clone)]
pub(crate) struct Out {
    writer: Arc<Mutex<Box<dyn Write + Send>>>,
    seq: Arc<AtomicI64>,
}

impl Out {
    pub(crate) fn new(writer: Box<dyn Write + Send>) -> Out {
        Out { writer: Arc::new(Mutex::new(writer)), seq: Arc::new(AtomicI64::new(1)) }
    }

    fn send(&self, mut message: Value) {
        message["seq"] = json!(self.seq.fetch_add(1, Ordering::Relaxed));
        let _ = write_message(&mut *self.writer.lock().unwrap_or_else(|e| e.into_inner()), &message);
    }

    fn event(&self, event: &str, body: Value) {
        self.send(json!({ "type": "event", "event": event, "body": body }));
    }

    fn respond(&self, request_seq: i64, command: &str, result: Result<Value, String>) {
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

    fn output(&self, category: &str, text: impl Into<String>) {
        self.event("output", json!({ "category": category, "output": text.into() }));
    }
}

/// The last stop, for stackTrace, scopes and variables.
#[derive(Debug, Default)]
struct Stopped {
    frames: Vec<WireFrame>,
    variables: Vec<(String, Value)>,
    frame_fields: Vec<Vec<(String, Value)>>,
    exception: Option<WireException>,
    /// The call that was running when it stopped.
    call: Option<CallArg>,
    /// Values that expand (objects, arrays), by reference minus `EXPANDABLE`.
    expandable: Vec<Value>,
}

impl Stopped {
    /// A variables reference for `value` if it expands, else 0.
    fn reference(&mut self, value: &Value) -> i64 {
        match value {
            Value::Object(_) | Value::Array(_) => {
                self.expandable.push(value.clone());
                EXPANDABLE + self.expandable.len() as i64 - 1
            }
            _ => 0,
        }
    }

    /// A DAP `Variable` (or evaluate result, with `value_key` "result").
    fn variable(&mut self, name: &str, value: &Value, value_key: &str) -> Value {
        let mut variable =
            json!({ "name": name, value_key: display(value), "variablesReference": self.reference(value) });
        match value {
            Value::Array(items) if items.len() > INDEXED_FROM => variable["indexedVariables"] = json!(items.len()),
            Value::Object(map) => variable["namedVariables"] = json!(map.len()),
            _ => {}
        }
        variable
    }
}

/// Variable references: the probe's bindings, the call, a span frame's fields,
/// or an expandable value.
const LOCALS: i64 = 1;
const CALL: i64 = 2;
const FRAME_FIELDS: i64 = 100;
const EXPANDABLE: i64 = 10_000;
/// Arrays longer than this are paged by the client (`indexedVariables`).
const INDEXED_FROM: usize = 100;

/// The debug host (a child, or an `ax` host attached to) and the routes to it.
struct DebugHost {
    /// The child process; `None` when attached to a host someone else started.
    process: Option<Mutex<Child>>,
    writer: Mutex<Box<dyn Write + Send>>,
    /// Closes the connection (both ways).
    shutdown: Box<dyn Fn() + Send + Sync>,
    pending: Arc<Mutex<HashMap<u64, Sender<DebugReply>>>>,
    next_id: AtomicU64,
    /// Set when the session ends it: its end is then not news.
    ending: AtomicBool,
}

impl DebugHost {
    fn ask(&self, request: DebugRequest) -> Result<DebugReply, String> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = channel::bounded(1);
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).insert(id, tx);
        // The envelope: the id beside the request's own fields.
        let mut body = serde_json::to_value(&request).map_err(|e| e.to_string())?;
        body["id"] = json!(id);
        let mut line = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
        line.push(b'\n');
        let gone = || "the plugin's host process has gone".to_owned();
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        writer.write_all(&line).and_then(|()| writer.flush()).map_err(|_| gone())?;
        drop(writer);
        rx.recv().map_err(|_| gone())
    }

    /// Asks for something answered by `Done`.
    fn command(&self, request: DebugRequest) -> Result<(), String> {
        match self.ask(request)? {
            DebugReply::Done => Ok(()),
            DebugReply::Failed { message } => Err(message),
            other => Err(unexpected(other)),
        }
    }

    /// Ends it: kills a child (no process is left behind), closes the connection.
    fn end(&self) {
        self.ending.store(true, Ordering::Relaxed);
        if let Some(process) = &self.process {
            let mut process = process.lock().unwrap_or_else(|e| e.into_inner());
            let _ = process.kill();
            let _ = process.wait();
        }
        (self.shutdown)();
    }

    fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(|p| p.lock().unwrap_or_else(|e| e.into_inner()).id())
    }
}

/// The state of the session.
pub(crate) struct Session {
    out: Out,
    child: Option<Arc<DebugHost>>,
    /// How it was launched (for restart); `None` when attached.
    launched: Option<LaunchArgs>,
    calls: Vec<CallArg>,
    base: PathBuf,
    source_map: BTreeMap<String, String>,
    stopped: Arc<Mutex<Stopped>>,
    /// The call running now, for the Call scope and the host frame.
    current_call: Arc<Mutex<Option<CallArg>>>,
    methods: Vec<String>,
    module: Option<Value>,
    /// What the client set, by source path, with the ids this adapter gave
    /// them: re-sent as they are to a restarted plugin.
    line_breakpoints: BTreeMap<String, Vec<WireBreakpoint>>,
    function_breakpoints: Vec<WireFunctionBreakpoint>,
    exception_filters: Vec<String>,
    next_breakpoint_id: u64,
    configured: bool,
}

impl Session {
    pub(crate) fn new(out: Out) -> Session {
        Session {
            out,
            child: None,
            launched: None,
            calls: Vec::new(),
            base: std::env::current_dir().unwrap_or_default(),
            source_map: BTreeMap::new(),
            stopped: Arc::new(Mutex::new(Stopped::default())),
            current_call: Arc::new(Mutex::new(None)),
            methods: Vec::new(),
            module: None,
            line_breakpoints: BTreeMap::new(),
            function_breakpoints: Vec::new(),
            exception_filters: Vec::new(),
            next_breakpoint_id: 1,
            configured: false,
        }
    }

    /// Serves DAP messages from `input` until disconnect or end of input.
    pub(crate) fn run(mut self, input: &mut impl BufRead) {
        loop {
            let message = match crate::codec::read_message(input) {
                Ok(Some(message)) => message,
                Ok(None) => break,
                Err(error) => {
                    self.out.output("console", format!("ax-dap: ignoring a malformed message: {error}\n"));
                    continue;
                }
            };
            let seq = message.get("seq").and_then(Value::as_i64).unwrap_or(0);
            let Some(command) = message.get("command").and_then(Value::as_str).map(str::to_owned) else {
                self.out.respond(seq, "", Err("a request without a `command`".to_owned()));
                continue;
            };
            let arguments = message.get("arguments").cloned().unwrap_or(Value::Null);
            let request = match parse(&command, arguments) {
                Ok(request) => request,
                Err(error) => {
                    self.out.respond(seq, &command, Err(error));
                    continue;
                }
            };
            let done = matches!(request, Request::Disconnect);
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.handle(request)))
                .unwrap_or_else(|_| Err("internal error in ax-dap (this is a bug)".to_owned()));
            self.out.respond(seq, &command, result);
            if done {
                break;
            }
        }
        self.end();
    }

    /// Ends the debuggee: a launched one is killed (no process is left
    /// behind); an attached one is let go and keeps running.
    fn end(&mut self) {
        if let Some(child) = self.child.take() {
            if child.process.is_none() {
                let _ = child.command(DebugRequest::Detach);
            }
            child.end();
        }
    }

    fn child(&self) -> Result<&Arc<DebugHost>, String> {
        self.child.as_ref().ok_or_else(|| "no plugin is launched".to_owned())
    }

    fn lock_stopped(&self) -> std::sync::MutexGuard<'_, Stopped> {
        self.stopped.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn handle(&mut self, request: Request) -> Result<Value, String> {
        match request {
            Request::Initialize => Ok(capabilities()),
            Request::Launch(args) => {
                self.launch(args).map_err(|e| format!("{e:#}"))?;
                self.out.event("initialized", json!({}));
                Ok(json!({}))
            }
            Request::Attach(args) => {
                self.attach(args).map_err(|e| format!("{e:#}"))?;
                self.out.event("initialized", json!({}));
                Ok(json!({}))
            }
            Request::Restart(args) => self.restart(args).map(|()| json!({})),
            Request::SetBreakpoints(args) => {
                let file = args.source.path.ok_or_else(|| "setBreakpoints without a source path".to_owned())?;
                let breakpoints: Vec<WireBreakpoint> = args
                    .breakpoints
                    .into_iter()
                    .map(|b| WireBreakpoint {
                        id: self.new_breakpoint_id(),
                        line: b.line,
                        condition: b.condition,
                        hit_condition: b.hit_condition,
                        log_message: b.log_message,
                    })
                    .collect();
                self.line_breakpoints.insert(file.clone(), breakpoints.clone());
                let reply = self.child()?.ask(DebugRequest::SetBreakpoints { file: file.clone(), breakpoints })?;
                breakpoints_body(reply, Some(&file))
            }
            Request::SetFunctionBreakpoints(args) => {
                let breakpoints: Vec<WireFunctionBreakpoint> = args
                    .breakpoints
                    .into_iter()
                    .map(|b| WireFunctionBreakpoint {
                        id: self.new_breakpoint_id(),
                        name: b.name,
                        condition: b.condition,
                        hit_condition: b.hit_condition,
                    })
                    .collect();
                self.function_breakpoints = breakpoints.clone();
                breakpoints_body(self.child()?.ask(DebugRequest::SetFunctionBreakpoints { breakpoints })?, None)
            }
            Request::SetExceptionBreakpoints(args) => {
                self.exception_filters = args.filters.clone();
                breakpoints_body(self.child()?.ask(DebugRequest::SetExceptionFilters { filters: args.filters })?, None)
            }
            Request::BreakpointLocations(args) => {
                let file = args.source.path.ok_or_else(|| "breakpointLocations without a source path".to_owned())?;
                let end = args.end_line.unwrap_or(args.line);
                match self.child()?.ask(DebugRequest::ProbeLines { file })? {
                    DebugReply::Lines { lines } => {
                        let lines: Vec<Value> = lines
                            .into_iter()
                            .filter(|l| (args.line..=end).contains(l))
                            .map(|line| json!({ "line": line }))
                            .collect();
                        Ok(json!({ "breakpoints": lines }))
                    }
                    other => Err(unexpected(other)),
                }
            }
            Request::ConfigurationDone => {
                self.configured = true;
                self.start_calls()?;
                Ok(json!({}))
            }
            Request::Threads => Ok(json!({ "threads": [{ "id": 1, "name": "plugin" }] })),
            Request::StackTrace(args) => {
                let stopped = self.lock_stopped();
                let mut frames: Vec<Value> = stopped
                    .frames
                    .iter()
                    .enumerate()
                    .map(|(i, f)| {
                        let mut frame = json!({ "id": i, "name": f.name, "line": f.line, "column": 1 });
                        if let Some(path) = self.local_path(&f.file) {
                            frame["source"] =
                                json!({ "name": path.file_name().map(|n| n.to_string_lossy()), "path": path });
                        } else {
                            frame["presentationHint"] = json!("subtle");
                        }
                        frame
                    })
                    .collect();
                if let Some(call) = &stopped.call {
                    frames.push(json!({ "id": frames.len(), "name": format!("ax: call `{}`", call.method),
                                        "line": 0, "column": 0, "presentationHint": "label" }));
                }
                let total = frames.len();
                let levels = if args.levels == 0 { usize::MAX } else { args.levels };
                let page: Vec<Value> = frames.into_iter().skip(args.start_frame).take(levels).collect();
                Ok(json!({ "stackFrames": page, "totalFrames": total }))
            }
            Request::Scopes(args) => {
                let stopped = self.lock_stopped();
                let frame = usize::try_from(args.frame_id).map_err(|_| format!("no frame {}", args.frame_id))?;
                let mut scopes = Vec::new();
                if frame < stopped.frames.len() {
                    scopes.push(if frame == 0 {
                        json!({ "name": "Locals", "variablesReference": LOCALS, "expensive": false,
                                "presentationHint": "locals" })
                    } else {
                        json!({ "name": "Span fields", "variablesReference": FRAME_FIELDS + args.frame_id,
                                "expensive": false })
                    });
                }
                if stopped.call.is_some() {
                    scopes.push(json!({ "name": "Call", "variablesReference": CALL, "expensive": false,
                                        "presentationHint": "arguments" }));
                }
                Ok(json!({ "scopes": scopes }))
            }
            Request::Variables(args) => {
                let mut stopped = self.lock_stopped();
                let entries: Vec<(String, Value)> = match args.variables_reference {
                    LOCALS => stopped.variables.clone(),
                    CALL => stopped.call.as_ref().map_or_else(Vec::new, |call| {
                        vec![("method".to_owned(), json!(call.method)), ("input".to_owned(), call.input.clone())]
                    }),
                    r if (FRAME_FIELDS + 1..EXPANDABLE).contains(&r) => {
                        // Frame i's fields: the probe frame (0) has none of its own.
                        let index = r - FRAME_FIELDS - 1;
                        let offset = usize::from(stopped.frames.len() > stopped.frame_fields.len());
                        usize::try_from(index)
                            .ok()
                            .and_then(|i| stopped.frame_fields.get(i + 1 - offset))
                            .cloned()
                            .unwrap_or_default()
                    }
                    r if r >= EXPANDABLE => match stopped.expandable.get((r - EXPANDABLE) as usize) {
                        Some(Value::Object(map)) if args.filter.as_deref() != Some("indexed") => {
                            map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
                        }
                        Some(Value::Array(items)) if args.filter.as_deref() != Some("named") => {
                            items.iter().enumerate().map(|(i, v)| (format!("[{i}]"), v.clone())).collect()
                        }
                        _ => Vec::new(),
                    },
                    other => return Err(format!("unknown variablesReference {other}")),
                };
                let count = if args.count == 0 { usize::MAX } else { args.count };
                let variables: Vec<Value> = entries
                    .into_iter()
                    .skip(args.start)
                    .take(count)
                    .map(|(name, value)| stopped.variable(&name, &value, "value"))
                    .collect();
                Ok(json!({ "variables": variables }))
            }
            Request::SetVariable(args) => {
                if args.variables_reference != LOCALS {
                    return Err("only the probe's `&mut` bindings (Locals) can be set".to_owned());
                }
                let value = args.value.clone();
                self.child()?.command(DebugRequest::SetVariable { name: args.name.clone(), value })?;
                let parsed: Value = serde_json::from_str(&args.value).unwrap_or(Value::String(args.value));
                let mut stopped = self.lock_stopped();
                if let Some(slot) = stopped.variables.iter_mut().find(|(n, _)| *n == args.name) {
                    slot.1 = parsed.clone();
                }
                Ok(json!({ "value": display(&parsed) }))
            }
            Request::Evaluate(args) => {
                if let Some(rest) = args.expression.trim_start().strip_prefix(".call") {
                    return self.repl_call(rest);
                }
                match self.child()?.ask(DebugRequest::Evaluate { expression: args.expression })? {
                    DebugReply::Evaluated { value } => Ok(self.lock_stopped().variable("", &value, "result")),
                    DebugReply::Failed { message } if args.context.as_deref() == Some("repl") => {
                        Err(format!("{message} (`.call METHOD JSON` calls the plugin)"))
                    }
                    DebugReply::Failed { message } => Err(message),
                    other => Err(unexpected(other)),
                }
            }
            Request::Completions(args) => Ok(self.completions(&args)),
            Request::ExceptionInfo => {
                let stopped = self.lock_stopped();
                let exception =
                    stopped.exception.as_ref().ok_or_else(|| "the thread did not stop on an exception".to_owned())?;
                let trace: Vec<String> = stopped
                    .frames
                    .iter()
                    .map(|f| {
                        if f.file.is_empty() { f.name.clone() } else { format!("{} at {}:{}", f.name, f.file, f.line) }
                    })
                    .collect();
                let mut details = json!({ "message": exception.description, "typeName": exception.filter,
                                          "stackTrace": trace.join("\n") });
                if let Some(location) = &exception.location {
                    details["evaluateName"] = json!(location);
                }
                Ok(json!({ "exceptionId": exception.filter, "description": exception.description,
                           "breakMode": "always", "details": details }))
            }
            Request::Modules => {
                let modules: Vec<Value> = self.module.iter().cloned().collect();
                Ok(json!({ "modules": modules, "totalModules": modules.len() }))
            }
            Request::Resume(how) => {
                *self.lock_stopped() = Stopped::default();
                self.child()?.command(DebugRequest::Resume { how })?;
                Ok(json!({ "allThreadsContinued": true }))
            }
            Request::Pause => self.child()?.command(DebugRequest::Pause).map(|()| json!({})),
            Request::Disconnect => Ok(json!({})),
            Request::Unknown(command) => Err(format!("unsupported request `{command}`")),
        }
    }

    fn new_breakpoint_id(&mut self) -> u64 {
        self.next_breakpoint_id += 1;
        self.next_breakpoint_id - 1
    }

    /// A file as the compiler named it, as a path on this machine: the
    /// source map applied (longest prefix first), then resolved against the
    /// plugin's directory and its ancestors. `None` for no file.
    fn local_path(&self, file: &str) -> Option<PathBuf> {
        if file.is_empty() {
            return None;
        }
        let mapped = self
            .source_map
            .iter()
            .filter(|(from, _)| file.starts_with(from.as_str()))
            .max_by_key(|(from, _)| from.len())
            .map(|(from, to)| format!("{to}{}", &file[from.len()..]));
        Some(resolve_source(&self.base, mapped.as_deref().unwrap_or(file)))
    }

    fn launch(&mut self, args: LaunchArgs) -> Result<()> {
        if self.child.is_some() {
            bail!("already launched");
        }
        if let Some(cwd) = &args.cwd {
            self.base = cwd.clone();
        }
        self.source_map = args.source_map.clone();
        let plugin = if args.plugin.is_absolute() { args.plugin.clone() } else { self.base.join(&args.plugin) };
        let mut calls = args.calls.clone();
        if let Some(file) = &args.calls_file {
            let file = if file.is_absolute() { file.clone() } else { self.base.join(file) };
            calls.extend(read_calls(&file)?);
        }
        let source = PluginSource::resolve(&plugin)?;
        let out = self.out.clone();
        let mut on_output = move |line: &str| out.output("console", format!("{line}\n"));
        let mut build = BuildOptions { build: args.build, release: false, on_output: Some(&mut on_output) };
        let library = source.library(&mut build)?;
        // Probe files are named relative to where cargo ran: look from the
        // crate (or, for a bare library, from the library, usually in its
        // workspace's target/) upwards.
        let near = match &source {
            PluginSource::Manifest { dir, .. } => dir.clone(),
            _ => library.parent().map(Path::to_owned).unwrap_or_default(),
        };
        self.base = std::path::absolute(&near).unwrap_or(near);
        let mut command = std::process::Command::new(ax_binary()?);
        command.envs(&args.env);
        if let Some(cwd) = &args.cwd {
            command.current_dir(cwd);
        }
        let child = spawn_debug_host(command, self.out.clone(), self.stopped.clone(), self.current_call.clone())?;
        let load = DebugRequest::Load {
            library: library.clone(),
            name: source.name(),
            config: source.config_json(),
            hot_reload: args.hot_reload,
            budget: source.budget().into(),
            reload_debounce_ms: match &source {
                PluginSource::Manifest { manifest, .. } => {
                    Some(u64::try_from(manifest.reload.debounce.0.as_millis()).unwrap_or(u64::MAX))
                }
                PluginSource::Library(_) => None,
            },
        };
        match child.ask(load).map_err(|e| anyhow!(e))? {
            DebugReply::Loaded { methods } => self.methods = methods,
            DebugReply::Failed { message } => {
                child.end();
                bail!(message)
            }
            other => {
                child.end();
                bail!(unexpected(other))
            }
        }
        self.out.event(
            "process",
            json!({ "name": source.name(), "systemProcessId": child.pid(), "isLocalProcess": true, "startMethod": "launch" }),
        );
        let module = json!({ "id": 1, "name": source.name(), "path": library, "symbolStatus": "probe table loaded" });
        self.out.event("module", json!({ "reason": "new", "module": module }));
        self.module = Some(module);
        self.calls = calls;
        self.launched = Some(args);
        self.child = Some(child);
        Ok(())
    }

    fn attach(&mut self, args: AttachArgs) -> Result<()> {
        if self.child.is_some() {
            bail!("already launched");
        }
        let ip: std::net::IpAddr = match args.host.as_str() {
            "localhost" => std::net::Ipv4Addr::LOCALHOST.into(),
            host => host.parse().map_err(|_| anyhow!("host {host:?}: expected a loopback IP address"))?,
        };
        if !ip.is_loopback() {
            bail!("host {ip}: ax hosts listen on loopback only; expected 127.0.0.1 or ::1");
        }
        let stream = std::net::TcpStream::connect((ip, args.port))
            .with_context(|| format!("cannot connect to the ax host on {ip}:{}", args.port))?;
        let _ = stream.set_nodelay(true);
        let mut hello = serde_json::to_vec(&json!({ "token": args.token }))?;
        hello.push(b'\n');
        (&stream).write_all(&hello)?;
        let reader = stream.try_clone()?;
        let closer = stream.try_clone()?;
        let child = connect(
            None,
            Box::new(stream),
            Box::new(reader),
            Box::new(move || {
                let _ = closer.shutdown(std::net::Shutdown::Both);
            }),
            self.out.clone(),
            self.stopped.clone(),
            self.current_call.clone(),
        );
        match child.ask(DebugRequest::Hello).map_err(|e| anyhow!("{e} (is the token right?)"))? {
            DebugReply::Attached { name, library, methods } => {
                self.methods = methods;
                let module = json!({ "id": 1, "name": name, "path": library, "symbolStatus": "probe table loaded" });
                self.out.event("module", json!({ "reason": "new", "module": module }));
                self.module = Some(module);
                if let Some(dir) = library.parent() {
                    self.base = dir.to_owned();
                }
            }
            DebugReply::Failed { message } => bail!(message),
            other => bail!(unexpected(other)),
        }
        self.out.event("process", json!({ "name": "ax", "isLocalProcess": true, "startMethod": "attach" }));
        self.source_map = args.source_map;
        self.child = Some(child);
        Ok(())
    }

    /// Ends the plugin's host and launches it again with the same (or the
    /// given) arguments; breakpoints keep their ids and are re-announced.
    fn restart(&mut self, args: RestartArgs) -> Result<(), String> {
        let launch = match args.arguments {
            Some(arguments) => serde_json::from_value::<LaunchArgs>(arguments)
                .map_err(|e| format!("bad arguments to `restart`: {e}"))?,
            None => self.launched.clone().ok_or_else(|| "only a launched session can restart".to_owned())?,
        };
        if let Some(child) = self.child.take() {
            child.end();
        }
        *self.lock_stopped() = Stopped::default();
        self.out.output("console", "ax-dap: restarting\n");
        self.launch(launch).map_err(|e| format!("{e:#}"))?;
        let child = self.child()?.clone();
        for (file, breakpoints) in &self.line_breakpoints {
            let request = DebugRequest::SetBreakpoints { file: file.clone(), breakpoints: breakpoints.clone() };
            self.announce(child.ask(request)?, Some(file));
        }
        let request = DebugRequest::SetFunctionBreakpoints { breakpoints: self.function_breakpoints.clone() };
        self.announce(child.ask(request)?, None);
        child.ask(DebugRequest::SetExceptionFilters { filters: self.exception_filters.clone() })?;
        if self.configured {
            self.start_calls()?;
        }
        Ok(())
    }

    /// Tells the client what became of breakpoints it set earlier.
    fn announce(&self, reply: DebugReply, path: Option<&str>) {
        if let DebugReply::Breakpoints { breakpoints } = reply {
            for state in &breakpoints {
                self.out
                    .event("breakpoint", json!({ "reason": "changed", "breakpoint": breakpoint_json(state, path) }));
            }
        }
    }

    /// `.call METHOD JSON` in the Debug Console: calls the plugin off the
    /// request loop (the call may stop at a breakpoint) and prints the result.
    fn repl_call(&self, rest: &str) -> Result<Value, String> {
        let rest = rest.trim();
        let (method, input) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        if method.is_empty() {
            return Err(format!(".call METHOD JSON: expected a method, one of {}", self.methods.join(", ")));
        }
        let input: Value = if input.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(input).map_err(|e| format!(".call {method}: the input is not JSON: {e}"))?
        };
        let (child, out, current) = (self.child()?.clone(), self.out.clone(), self.current_call.clone());
        let call = CallArg { method: method.to_owned(), input };
        let shown = format!("calling `{method}`…");
        std::thread::spawn(move || {
            *current.lock().unwrap_or_else(|e| e.into_inner()) = Some(call.clone());
            let answer = child.ask(DebugRequest::Call { method: call.method.clone(), input: call.input });
            *current.lock().unwrap_or_else(|e| e.into_inner()) = None;
            match answer {
                Ok(DebugReply::Returned { output }) => out.output("console", format!("{} → {output}\n", call.method)),
                Ok(DebugReply::Failed { message }) => out.output("stderr", format!("error: {message}\n")),
                Ok(other) => out.output("stderr", format!("{}\n", unexpected(other))),
                Err(_) => {}
            }
        });
        Ok(json!({ "result": shown, "variablesReference": 0 }))
    }

    /// REPL completions: `.call` and the plugin's methods after it, else the
    /// stopped probe's bindings and the expression language's methods.
    fn completions(&self, args: &CompletionsArgs) -> Value {
        let before: String = args.text.chars().take(args.column.saturating_sub(1)).collect();
        let word_start = before.rfind(|c: char| !(c.is_alphanumeric() || c == '_')).map_or(0, |i| i + 1);
        let word = &before[word_start..];
        let mut targets: Vec<Value> = Vec::new();
        let mut offer = |label: &str, kind: &str| {
            if label.starts_with(word) {
                targets.push(json!({ "label": label, "type": kind, "start": word_start, "length": word.len() }));
            }
        };
        let trimmed = before.trim_start();
        if let Some(after) = trimmed.strip_prefix(".call ") {
            if after.trim_start().contains(char::is_whitespace) {
                return json!({ "targets": [] });
            }
            for method in &self.methods {
                offer(method, "method");
            }
        } else if before[..word_start].ends_with('.') && word_start > 1 {
            for method in ["len()", "contains(", "starts_with(", "ends_with("] {
                offer(method, "function");
            }
        } else if before.trim_start().starts_with('.') {
            let word_start = before.find('.').map_or(0, |i| i + 1);
            if "call".starts_with(&before[word_start..]) {
                targets.push(json!({ "label": "call", "type": "keyword", "start": word_start,
                                     "length": before.len() - word_start }));
            }
        } else {
            for (name, _) in &self.lock_stopped().variables {
                offer(name, "variable");
            }
            for keyword in ["true", "false", "null"] {
                offer(keyword, "keyword");
            }
        }
        json!({ "targets": targets })
    }

    /// After configurationDone: runs the launch's calls one after another
    /// (then the debuggee has exited, unless `keepRunning`); an attached host
    /// is told to run its own.
    fn start_calls(&mut self) -> Result<(), String> {
        let child = self.child()?.clone();
        let Some(launched) = &self.launched else {
            return child.command(DebugRequest::Start);
        };
        if launched.stop_on_entry {
            child.command(DebugRequest::StopOnEntry)?;
        }
        let keep_running = launched.keep_running;
        let (calls, out, current) = (self.calls.clone(), self.out.clone(), self.current_call.clone());
        std::thread::spawn(move || {
            let mut failed = 0;
            for call in calls {
                *current.lock().unwrap_or_else(|e| e.into_inner()) = Some(call.clone());
                let answer = child.ask(DebugRequest::Call { method: call.method.clone(), input: call.input });
                *current.lock().unwrap_or_else(|e| e.into_inner()) = None;
                match answer {
                    Ok(DebugReply::Returned { output }) => out.output("stdout", format!("{output}\n")),
                    Ok(DebugReply::Failed { message }) => {
                        failed += 1;
                        out.output("stderr", format!("error: {message}\n"));
                    }
                    Ok(other) => out.output("stderr", format!("{}\n", unexpected(other))),
                    // The host died: the reader thread reports it and ends the session.
                    Err(_) => return,
                }
            }
            if keep_running {
                let text = "ax-dap: the calls are done; the plugin keeps running (`.call METHOD JSON` in the Debug \
                            Console calls it, disconnect ends it)\n";
                out.output("console", text);
                return;
            }
            child.ending.store(true, Ordering::Relaxed);
            out.event("exited", json!({ "exitCode": i32::from(failed > 0) }));
            out.event("terminated", json!({}));
        });
        Ok(())
    }
}

/// Calls from a calls file: one JSON object per line.
fn read_calls(file: &Path) -> Result<Vec<CallArg>> {
    let text = std::fs::read_to_string(file).with_context(|| format!("callsFile {}: cannot read", file.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| {
                anyhow!("{}:{}: expected a JSON object {{\"method\": …, \"input\": …}}: {e}", file.display(), i + 1)
            })
        })
        .collect()
}

/// The body of a setBreakpoints / setFunctionBreakpoints / setExceptionBreakpoints response.
fn breakpoints_body(reply: DebugReply, path: Option<&str>) -> Result<Value, String> {
    let DebugReply::Breakpoints { breakpoints } = reply else { return Err(unexpected(reply)) };
    Ok(json!({ "breakpoints": breakpoints.iter().map(|b| breakpoint_json(b, path)).collect::<Vec<_>>() }))
}

/// A DAP `Breakpoint`.
fn breakpoint_json(state: &WireBreakpointState, path: Option<&str>) -> Value {
    let mut breakpoint =
        json!({ "id": state.id, "verified": state.verified, "line": state.line, "message": state.message });
    if let Some(path) = path {
        breakpoint["source"] = json!({ "path": path });
    }
    breakpoint
}

fn unexpected(reply: DebugReply) -> String {
    format!("unexpected answer from the plugin's host: {reply:?}")
}

/// A value as a debugger shows it: strings quoted, the rest as JSON.
fn display(value: &Value) -> String {
    match value {
        Value::Object(map) => format!("{{…}} ({} fields)", map.len()),
        Value::Array(items) => format!("[…] ({} items)", items.len()),
        other => other.to_string(),
    }
}

/// A probe's file (as the compiler named it, relative to where it ran) as a
/// path on disk: under the plugin's directory or one of its ancestors (or
/// else the working directory's).
fn resolve_source(base: &Path, file: &str) -> PathBuf {
    let relative = Path::new(file);
    if relative.is_absolute() {
        return relative.to_owned();
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    base.ancestors()
        .chain(cwd.ancestors())
        .map(|dir| dir.join(relative))
        .find(|p| p.is_file())
        .unwrap_or_else(|| base.join(relative))
}

/// The `ax` binary that runs the debug host: `AX_BIN`, else beside this adapter.
fn ax_binary() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("AX_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let me = std::env::current_exe().context("cannot find ax-dap's own path")?;
    let beside = me.with_file_name(format!("ax{}", std::env::consts::EXE_SUFFIX));
    if beside.is_file() { Ok(beside) } else { bail!("no `ax` binary beside {}; set AX_BIN", me.display()) }
}

/// Starts `ax __debug-host` from `command` (`ax` with the launch's
/// environment and directory), connects, and routes its output, replies and
/// notifications.
fn spawn_debug_host(
    command: std::process::Command,
    out: Out,
    stopped: Arc<Mutex<Stopped>>,
    current_call: Arc<Mutex<Option<CallArg>>>,
) -> Result<Arc<DebugHost>> {
    let dir = std::env::temp_dir().join(format!("ax-dap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let socket = dir.join("host.sock");
    let started = start_child_host_with(command, "__debug-host", &socket);
    let _ = std::fs::remove_dir_all(&dir);
    let (mut process, stream) = started.map_err(|m| anyhow!("cannot start the plugin's debug host: {m}"))?;
    for (pipe, category) in [
        (process.stdout.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>), "stdout"),
        (process.stderr.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>), "stderr"),
    ] {
        let (Some(pipe), out) = (pipe, out.clone()) else { continue };
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                out.output(category, format!("{line}\n"));
            }
        });
    }
    let reader = stream.try_clone()?;
    let closer = stream.try_clone()?;
    let shutdown = Box::new(move || {
        let _ = closer.shutdown(std::net::Shutdown::Both);
    });
    Ok(connect(Some(process), Box::new(stream), Box::new(reader), shutdown, out, stopped, current_call))
}

/// Routes a debug host connection: replies to the request waiting for them,
/// notifications (stops, output) to DAP events. When the connection closes
/// the session says how the host ended, unless the session ended it.
fn connect(
    process: Option<Child>,
    writer: Box<dyn Write + Send>,
    reader: Box<dyn std::io::Read + Send>,
    shutdown: Box<dyn Fn() + Send + Sync>,
    out: Out,
    stopped: Arc<Mutex<Stopped>>,
    current_call: Arc<Mutex<Option<CallArg>>>,
) -> Arc<DebugHost> {
    let pending: Arc<Mutex<HashMap<u64, Sender<DebugReply>>>> = Arc::default();
    let child = Arc::new(DebugHost {
        process: process.map(Mutex::new),
        writer: Mutex::new(writer),
        shutdown,
        pending: pending.clone(),
        next_id: AtomicU64::new(1),
        ending: AtomicBool::new(false),
    });
    let host = child.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines().map_while(Result::ok) {
            let Ok(message) = serde_json::from_str::<Value>(&line) else { continue };
            let id = message.get("id").and_then(Value::as_u64).unwrap_or(0);
            let Ok(reply) = serde_json::from_value::<DebugReply>(message) else { continue };
            if id != 0 {
                if let Some(tx) = pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&id) {
                    let _ = tx.send(reply);
                }
                continue;
            }
            match reply {
                DebugReply::Output { category, text } => out.output(&category, text),
                DebugReply::Reloaded { generation, name, breakpoints } => {
                    let module = json!({ "id": 1, "name": name, "version": format!("generation {generation}"),
                                         "symbolStatus": "probe table loaded" });
                    out.event("module", json!({ "reason": "changed", "module": module }));
                    for (path, state) in &breakpoints {
                        let breakpoint = breakpoint_json(state, path.as_deref());
                        out.event("breakpoint", json!({ "reason": "changed", "breakpoint": breakpoint }));
                    }
                }
                DebugReply::Stopped {
                    reason,
                    breakpoints,
                    frames,
                    variables,
                    frame_fields,
                    message,
                    exception,
                    ..
                } => {
                    let call = current_call.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    let description = exception.as_ref().map(|e| e.description.clone()).or(message);
                    *stopped.lock().unwrap_or_else(|e| e.into_inner()) =
                        Stopped { frames, variables, frame_fields, exception, call, expandable: Vec::new() };
                    out.event(
                        "stopped",
                        json!({ "reason": reason, "threadId": 1, "allThreadsStopped": true,
                                "hitBreakpointIds": breakpoints, "description": description, "text": description }),
                    );
                }
                _ => {}
            }
        }
        pending.lock().unwrap_or_else(|e| e.into_inner()).clear();
        if host.ending.load(Ordering::Relaxed) {
            return;
        }
        let how = exit_of(&host);
        out.output("stderr", format!("the plugin's host process ended: {how}\n"));
        out.event("exited", json!({ "exitCode": 1 }));
        out.event("terminated", json!({}));
    });
    child
}

/// How the debug host ended, waiting for it briefly.
fn exit_of(host: &DebugHost) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    let Some(process) = &host.process else {
        return "the attached host closed its connection (it finished or was stopped)".to_owned();
    };
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let status = process.lock().unwrap_or_else(|e| e.into_inner()).try_wait();
        match status {
            Ok(Some(status)) => {
                return match status.signal() {
                    Some(signal) => format!("killed by {}", ax_runtime::isolated::signal_name(signal)),
                    None => format!("{status}"),
                };
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => return "it closed its connection".to_owned(),
        }
    }
}
