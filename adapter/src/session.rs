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

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use ax_runtime::child_host::start_child_host;
use ax_runtime::debug_host::{DebugReply, DebugRequest, WireBreakpoint, WireFrame, WireFunctionBreakpoint, WireResume};
use ax_runtime::{BuildOptions, PluginSource};
use crossbeam_channel::{self as channel, Sender};
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
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LaunchArgs {
    plugin: PathBuf,
    #[serde(default)]
    calls: Vec<CallArg>,
    /// Build the plugin crate with cargo first (default true).
    #[serde(default = "yes")]
    build: bool,
    cwd: Option<PathBuf>,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, Deserialize)]
struct CallArg {
    method: String,
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
#[serde(rename_all = "camelCase")]
struct ScopesArgs {
    frame_id: i64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VariablesArgs {
    variables_reference: i64,
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
}

/// Every request this adapter understands, with typed arguments; anything else
/// is `Unknown` and gets an error response.
#[derive(Debug)]
enum Request {
    Initialize,
    Launch(LaunchArgs),
    SetBreakpoints(SetBreakpointsArgs),
    SetFunctionBreakpoints(SetFunctionBreakpointsArgs),
    SetExceptionBreakpoints,
    ConfigurationDone,
    Threads,
    StackTrace,
    Scopes(ScopesArgs),
    Variables(VariablesArgs),
    SetVariable(SetVariableArgs),
    Evaluate(EvaluateArgs),
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
        "setBreakpoints" => Request::SetBreakpoints(args(command, arguments)?),
        "setFunctionBreakpoints" => Request::SetFunctionBreakpoints(args(command, arguments)?),
        "setExceptionBreakpoints" => Request::SetExceptionBreakpoints,
        "configurationDone" => Request::ConfigurationDone,
        "threads" => Request::Threads,
        "stackTrace" => Request::StackTrace,
        "scopes" => Request::Scopes(args(command, arguments)?),
        "variables" => Request::Variables(args(command, arguments)?),
        "setVariable" => Request::SetVariable(args(command, arguments)?),
        "evaluate" => Request::Evaluate(args(command, arguments)?),
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
    /// Values that expand (objects, arrays), by reference minus `EXPANDABLE`.
    expandable: Vec<Value>,
}

/// Variable references: the probe's bindings, a span frame's fields, or an
/// expandable value.
const LOCALS: i64 = 1;
const FRAME_FIELDS: i64 = 100;
const EXPANDABLE: i64 = 10_000;

/// The debug host child and the routes to it.
struct DebugHost {
    process: Mutex<Child>,
    writer: Mutex<UnixStream>,
    pending: Arc<Mutex<HashMap<u64, Sender<DebugReply>>>>,
    next_id: AtomicU64,
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
        self.writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write_all(&line)
            .map_err(|_| "the plugin's host process has gone".to_owned())?;
        rx.recv().map_err(|_| "the plugin's host process has gone".to_owned())
    }
}

/// The state of the session.
pub(crate) struct Session {
    out: Out,
    child: Option<Arc<DebugHost>>,
    calls: Vec<CallArg>,
    base: PathBuf,
    stopped: Arc<Mutex<Stopped>>,
}

impl Session {
    pub(crate) fn new(out: Out) -> Session {
        Session {
            out,
            child: None,
            calls: Vec::new(),
            base: std::env::current_dir().unwrap_or_default(),
            stopped: Arc::new(Mutex::new(Stopped::default())),
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

    /// Ends the debuggee: no process is left behind.
    fn end(&mut self) {
        if let Some(child) = self.child.take() {
            let mut process = child.process.lock().unwrap_or_else(|e| e.into_inner());
            let _ = process.kill();
            let _ = process.wait();
            drop(process);
            let _ = child.writer.lock().map(|w| w.shutdown(std::net::Shutdown::Both));
        }
    }

    fn child(&self) -> Result<&Arc<DebugHost>, String> {
        self.child.as_ref().ok_or_else(|| "no plugin is launched".to_owned())
    }

    fn handle(&mut self, request: Request) -> Result<Value, String> {
        match request {
            Request::Initialize => Ok(capabilities()),
            Request::Launch(args) => {
                self.launch(args).map_err(|e| format!("{e:#}"))?;
                self.out.event("initialized", json!({}));
                Ok(json!({}))
            }
            Request::SetBreakpoints(args) => {
                let file = args.source.path.ok_or_else(|| "setBreakpoints without a source path".to_owned())?;
                let path = file.clone();
                let breakpoints = args
                    .breakpoints
                    .into_iter()
                    .map(|b| WireBreakpoint {
                        line: b.line,
                        condition: b.condition,
                        hit_condition: b.hit_condition,
                        log_message: b.log_message,
                    })
                    .collect();
                breakpoints_body(self.child()?.ask(DebugRequest::SetBreakpoints { file, breakpoints })?, Some(&path))
            }
            Request::SetFunctionBreakpoints(args) => {
                let breakpoints = args
                    .breakpoints
                    .into_iter()
                    .map(|b| WireFunctionBreakpoint {
                        name: b.name,
                        condition: b.condition,
                        hit_condition: b.hit_condition,
                    })
                    .collect();
                breakpoints_body(self.child()?.ask(DebugRequest::SetFunctionBreakpoints { breakpoints })?, None)
            }
            Request::SetExceptionBreakpoints => Ok(json!({ "breakpoints": [] })),
            Request::ConfigurationDone => {
                self.start_calls()?;
                Ok(json!({}))
            }
            Request::Threads => Ok(json!({ "threads": [{ "id": 1, "name": "plugin" }] })),
            Request::StackTrace => {
                let stopped = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
                let frames: Vec<Value> = stopped
                    .frames
                    .iter()
                    .enumerate()
                    .map(|(i, f)| {
                        let path = resolve_source(&self.base, &f.file);
                        json!({ "id": i, "name": f.name, "line": f.line, "column": 1,
                                "source": { "name": path.file_name().map(|n| n.to_string_lossy()), "path": path } })
                    })
                    .collect();
                Ok(json!({ "stackFrames": frames, "totalFrames": frames.len() }))
            }
            Request::Scopes(args) => {
                let scope = if args.frame_id == 0 {
                    json!({ "name": "Locals", "variablesReference": LOCALS, "expensive": false })
                } else {
                    json!({ "name": "Span fields", "variablesReference": FRAME_FIELDS + args.frame_id, "expensive": false })
                };
                Ok(json!({ "scopes": [scope] }))
            }
            Request::Variables(args) => {
                let mut stopped = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
                let entries: Vec<(String, Value)> = match args.variables_reference {
                    LOCALS => stopped.variables.clone(),
                    r if (FRAME_FIELDS + 1..EXPANDABLE).contains(&r) => {
                        stopped.frame_fields.get((r - FRAME_FIELDS - 1) as usize).cloned().unwrap_or_default()
                    }
                    r if r >= EXPANDABLE => match stopped.expandable.get((r - EXPANDABLE) as usize) {
                        Some(Value::Object(map)) => map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                        Some(Value::Array(items)) => {
                            items.iter().enumerate().map(|(i, v)| (format!("[{i}]"), v.clone())).collect()
                        }
                        _ => Vec::new(),
                    },
                    other => return Err(format!("unknown variablesReference {other}")),
                };
                let variables: Vec<Value> = entries
                    .into_iter()
                    .map(|(name, value)| {
                        let reference = match &value {
                            Value::Object(_) | Value::Array(_) => {
                                stopped.expandable.push(value.clone());
                                EXPANDABLE + stopped.expandable.len() as i64 - 1
                            }
                            _ => 0,
                        };
                        json!({ "name": name, "value": display(&value), "variablesReference": reference })
                    })
                    .collect();
                Ok(json!({ "variables": variables }))
            }
            Request::SetVariable(args) => {
                if args.variables_reference != LOCALS {
                    return Err("only the probe's `&mut` bindings (Locals) can be set".to_owned());
                }
                let value = args.value.clone();
                match self.child()?.ask(DebugRequest::SetVariable { name: args.name.clone(), value })? {
                    DebugReply::Done => {
                        let parsed: Value = serde_json::from_str(&args.value).unwrap_or(Value::String(args.value));
                        let mut stopped = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
                        if let Some(slot) = stopped.variables.iter_mut().find(|(n, _)| *n == args.name) {
                            slot.1 = parsed.clone();
                        }
                        Ok(json!({ "value": display(&parsed) }))
                    }
                    DebugReply::Failed { message } => Err(message),
                    other => Err(unexpected(other)),
                }
            }
            Request::Evaluate(args) => match self
                .child()?
                .ask(DebugRequest::Evaluate { expression: args.expression })?
            {
                DebugReply::Evaluated { value } => Ok(json!({ "result": display(&value), "variablesReference": 0 })),
                DebugReply::Failed { message } => Err(message),
                other => Err(unexpected(other)),
            },
            Request::Resume(how) => {
                *self.stopped.lock().unwrap_or_else(|e| e.into_inner()) = Stopped::default();
                match self.child()?.ask(DebugRequest::Resume { how })? {
                    DebugReply::Done => Ok(json!({ "allThreadsContinued": true })),
                    other => Err(unexpected(other)),
                }
            }
            Request::Pause => match self.child()?.ask(DebugRequest::Pause)? {
                DebugReply::Done => Ok(json!({})),
                other => Err(unexpected(other)),
            },
            Request::Disconnect => Ok(json!({})),
            Request::Unknown(command) => Err(format!("unsupported request `{command}`")),
        }
    }

    fn launch(&mut self, args: LaunchArgs) -> Result<()> {
        if self.child.is_some() {
            bail!("already launched");
        }
        if let Some(cwd) = &args.cwd {
            self.base = cwd.clone();
        }
        let plugin = if args.plugin.is_absolute() { args.plugin.clone() } else { self.base.join(&args.plugin) };
        let source = PluginSource::resolve(&plugin)?;
        let out = self.out.clone();
        let mut on_output = move |line: &str| out.output("console", format!("{line}\n"));
        let mut build = BuildOptions { build: args.build, release: false, on_output: Some(&mut on_output) };
        let library = source.library(&mut build)?;
        if let PluginSource::Manifest { dir, .. } = &source {
            self.base = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
        }
        let child = spawn_debug_host(self.out.clone(), self.stopped.clone())?;
        let load = DebugRequest::Load { library, name: source.name(), config: source.config_json() };
        match child.ask(load).map_err(|e| anyhow!(e))? {
            DebugReply::Loaded { .. } => {}
            DebugReply::Failed { message } => bail!(message),
            other => bail!(unexpected(other)),
        }
        let pid = child.process.lock().unwrap_or_else(|e| e.into_inner()).id();
        self.out.event(
            "process",
            json!({ "name": source.name(), "systemProcessId": pid, "isLocalProcess": true, "startMethod": "launch" }),
        );
        self.calls = args.calls;
        self.child = Some(child);
        Ok(())
    }

    /// Runs the launch's calls one after another; then the debuggee has exited.
    fn start_calls(&mut self) -> Result<(), String> {
        let child = self.child()?.clone();
        let (calls, out) = (self.calls.clone(), self.out.clone());
        std::thread::spawn(move || {
            let mut failed = 0;
            for call in calls {
                match child.ask(DebugRequest::Call { method: call.method.clone(), input: call.input }) {
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
            out.event("exited", json!({ "exitCode": i32::from(failed > 0) }));
            out.event("terminated", json!({}));
        });
        Ok(())
    }
}

/// The body of a setBreakpoints / setFunctionBreakpoints response.
fn breakpoints_body(reply: DebugReply, path: Option<&str>) -> Result<Value, String> {
    let DebugReply::Breakpoints { breakpoints } = reply else { return Err(unexpected(reply)) };
    let breakpoints: Vec<Value> = breakpoints
        .iter()
        .map(|b| {
            let mut breakpoint = json!({ "id": b.id, "verified": b.verified, "line": b.line, "message": b.message });
            if let Some(path) = path {
                breakpoint["source"] = json!({ "path": path });
            }
            breakpoint
        })
        .collect();
    Ok(json!({ "breakpoints": breakpoints }))
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
/// path on disk: under the plugin's directory or one of its ancestors.
fn resolve_source(base: &Path, file: &str) -> PathBuf {
    let relative = Path::new(file);
    if relative.is_absolute() {
        return relative.to_owned();
    }
    base.ancestors().map(|dir| dir.join(relative)).find(|p| p.is_file()).unwrap_or_else(|| base.join(relative))
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

/// Starts `ax __debug-host`, connects, and routes its replies and notifications.
fn spawn_debug_host(out: Out, stopped: Arc<Mutex<Stopped>>) -> Result<Arc<DebugHost>> {
    let dir = std::env::temp_dir().join(format!("ax-dap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let socket = dir.join("host.sock");
    let started = start_child_host(&ax_binary()?, "__debug-host", &socket);
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
    let pending: Arc<Mutex<HashMap<u64, Sender<DebugReply>>>> = Arc::default();
    let reader = stream.try_clone()?;
    let child = Arc::new(DebugHost {
        process: Mutex::new(process),
        writer: Mutex::new(stream),
        pending: pending.clone(),
        next_id: AtomicU64::new(1),
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
                DebugReply::Stopped { reason, breakpoints, frames, variables, frame_fields, message, .. } => {
                    *stopped.lock().unwrap_or_else(|e| e.into_inner()) =
                        Stopped { frames, variables, frame_fields, expandable: Vec::new() };
                    out.event(
                        "stopped",
                        json!({ "reason": reason, "threadId": 1, "allThreadsStopped": true,
                                "hitBreakpointIds": breakpoints, "description": message, "text": message }),
                    );
                }
                _ => {}
            }
        }
        // The socket closed: the host is gone. Say why, unless the session ended it.
        pending.lock().unwrap_or_else(|e| e.into_inner()).clear();
        let how = exit_of(&host);
        out.output("stderr", format!("the plugin's host process ended: {how}\n"));
        out.event("exited", json!({ "exitCode": 1 }));
        out.event("terminated", json!({}));
    });
    Ok(child)
}

/// How the debug host ended, waiting for it briefly.
fn exit_of(host: &DebugHost) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let status = host.process.lock().unwrap_or_else(|e| e.into_inner()).try_wait();
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
