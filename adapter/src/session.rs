//! One debug session: its state (the plugin's host, what the client set, the
//! last stop) and its loop, which reads requests and runs each one's handler
//! (`handlers/`, grouped by concern) in order. A panic in a handler is an
//! error response, not a dead adapter.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ax_runtime::SourceWatcher;
use ax_runtime::debug_host::{
    DebugReply, DebugRequest, WireBreakpoint, WireBreakpointState, WireDataBreakpoint, WireException, WireFrame,
    WireFunctionBreakpoint, WireHistoryEntry,
};
use dap::responses::CompletionsResponse;
use dap::types::{Breakpoint, Module, ModuleId, Source, Variable};
use serde_json::{Value, json};

use crate::handles::{Handles, Place, Root, Step, descend};
use crate::host::DebugHost;
use crate::protocol::{CallArg, LaunchArgs, Out, Request, body, capabilities, parse};

/// The last stop, for stackTrace, scopes and variables.
#[derive(Debug, Default)]
pub(crate) struct Stopped {
    pub(crate) frames: Vec<WireFrame>,
    pub(crate) variables: Vec<(String, Value)>,
    pub(crate) frame_fields: Vec<Vec<(String, Value)>>,
    pub(crate) exception: Option<WireException>,
    /// The call that was running when it stopped.
    pub(crate) call: Option<CallArg>,
    /// The references of values that expand (objects, arrays), from `EXPANDABLE` on.
    pub(crate) handles: Handles,
    /// Earlier hits of the probe stopped at, newest first.
    pub(crate) history: Vec<WireHistoryEntry>,
}

impl Stopped {
    /// A variables reference for `value`, found at `place`, if it expands, else 0.
    pub(crate) fn reference(&mut self, value: &Value, place: Place) -> i64 {
        match value {
            Value::Object(_) | Value::Array(_) => self.handles.handle(place, EXPANDABLE),
            _ => 0,
        }
    }

    /// The value at `place` (a copy of that one value, for expanding it).
    pub(crate) fn resolve(&self, place: &Place) -> Option<Value> {
        let (first, rest) = match &place.root {
            Root::Evaluated(n) => return descend(self.handles.evaluation(*n)?, &place.path).cloned(),
            Root::History => {
                let (Step::Index(i), rest) = place.path.split_first()? else { return None };
                let values: serde_json::Map<String, Value> = self.history.get(*i)?.values.iter().cloned().collect();
                return descend(&Value::Object(values), rest).cloned();
            }
            _ => place.path.split_first()?,
        };
        let Step::Key(name) = first else { return None };
        let top = match &place.root {
            Root::Locals => self.variables.iter().find(|(n, _)| n == name)?.1.clone(),
            Root::Call => {
                let call = self.call.as_ref()?;
                match name.as_str() {
                    "method" => json!(call.method),
                    "input" => call.input.clone(),
                    _ => return None,
                }
            }
            Root::Frame(i) => self.frame_fields.get(*i)?.iter().find(|(n, _)| n == name)?.1.clone(),
            Root::Evaluated(_) | Root::History => return None,
        };
        descend(&top, rest).cloned()
    }

    /// A DAP `Variable` for `value`, found at `place`: arrays longer than
    /// `INDEXED_FROM` are paged by the client.
    pub(crate) fn variable(&mut self, name: &str, value: &Value, place: Place) -> Variable {
        let (named, indexed) = match value {
            Value::Array(items) if items.len() > INDEXED_FROM => (None, Some(items.len() as i64)),
            Value::Object(map) => (Some(map.len() as i64), None),
            _ => (None, None),
        };
        Variable {
            name: name.to_owned(),
            value: display(value),
            variables_reference: self.reference(value, place),
            named_variables: named,
            indexed_variables: indexed,
            ..Default::default()
        }
    }
}

/// Variable references: the probe's bindings, the call, a span frame's fields,
/// or an expandable value.
pub(crate) const LOCALS: i64 = 1;
pub(crate) const CALL: i64 = 2;
pub(crate) const HISTORY: i64 = 3;
pub(crate) const FRAME_FIELDS: i64 = 100;
pub(crate) const EXPANDABLE: i64 = 10_000;
/// Arrays longer than this are paged by the client (`indexedVariables`).
pub(crate) const INDEXED_FROM: usize = 100;

/// The state of the session.
pub(crate) struct Session {
    pub(crate) out: Out,
    pub(crate) child: Option<Arc<DebugHost>>,
    /// How it was launched (for restart); `None` when attached.
    pub(crate) launched: Option<LaunchArgs>,
    pub(crate) calls: Vec<CallArg>,
    pub(crate) base: PathBuf,
    pub(crate) source_map: BTreeMap<String, String>,
    pub(crate) stopped: Arc<Mutex<Stopped>>,
    /// The call running now, for the Call scope and the host frame.
    pub(crate) current_call: Arc<Mutex<Option<CallArg>>>,
    pub(crate) methods: Vec<String>,
    pub(crate) module: Option<Module>,
    /// What the client set, by source path, with the ids this adapter gave
    /// them: re-sent as they are to a restarted plugin.
    pub(crate) line_breakpoints: BTreeMap<String, Vec<WireBreakpoint>>,
    pub(crate) function_breakpoints: Vec<WireFunctionBreakpoint>,
    pub(crate) data_breakpoints: Vec<WireDataBreakpoint>,
    pub(crate) exception_filters: Vec<String>,
    pub(crate) next_breakpoint_id: u64,
    pub(crate) configured: bool,
    /// With hot reload on a crate: rebuilds it when its sources change.
    pub(crate) sources: Option<SourceWatcher>,
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
            data_breakpoints: Vec::new(),
            exception_filters: Vec::new(),
            next_breakpoint_id: 1,
            configured: false,
            sources: None,
        }
    }

    /// Serves DAP messages from `input` until disconnect or end of input.
    pub(crate) fn run(mut self, input: &mut impl BufRead) {
        let mut input = crate::codec::Reader::new(input);
        loop {
            let message = match input.read() {
                Ok(Some(message)) => message,
                Ok(None) => break,
                Err(crate::codec::Malformed { message, seq: Some(seq), .. }) => {
                    self.out.respond(seq, "", Err(format!("a malformed message: {message}")));
                    continue;
                }
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
    pub(crate) fn end(&mut self) {
        if let Some(child) = self.child.take() {
            if child.process.is_none() {
                let _ = child.command(DebugRequest::Detach);
            }
            child.end();
        }
    }

    pub(crate) fn child(&self) -> Result<&Arc<DebugHost>, String> {
        self.child.as_ref().ok_or_else(|| "no plugin is launched".to_owned())
    }

    pub(crate) fn lock_stopped(&self) -> std::sync::MutexGuard<'_, Stopped> {
        self.stopped.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs one request's handler (see `handlers`), in request order.
    fn handle(&mut self, request: Request) -> Result<Value, String> {
        match request {
            Request::Initialize => Ok(capabilities()),
            Request::Launch(args) => self.on_launch(args),
            Request::Attach(args) => self.on_attach(args),
            Request::Restart(args) => self.restart(args).map(|()| json!({})),
            Request::ConfigurationDone => self.on_configuration_done(),
            Request::SetBreakpoints(args) => self.set_breakpoints(args),
            Request::SetFunctionBreakpoints(args) => self.set_function_breakpoints(args),
            Request::SetExceptionBreakpoints(args) => self.set_exception_breakpoints(args),
            Request::SetDataBreakpoints(args) => self.set_data_breakpoints(args),
            Request::DataBreakpointInfo(args) => self.data_breakpoint_info(args),
            Request::BreakpointLocations(args) => self.breakpoint_locations(args),
            Request::Threads => self.threads(),
            Request::StackTrace(args) => self.stack_trace(args),
            Request::Scopes(args) => self.scopes(args),
            Request::Variables(args) => self.variables(args),
            Request::SetVariable(args) => self.set_variable(args),
            Request::Evaluate(args) => self.evaluate(args),
            Request::Completions(args) => Ok(body(CompletionsResponse { targets: self.completions(&args) })),
            Request::ExceptionInfo => self.exception_info(),
            Request::Modules => self.modules(),
            Request::LoadedSources => self.loaded_sources(),
            Request::Resume(how) => self.on_resume(how),
            Request::Pause => self.child()?.command(DebugRequest::Pause).map(|()| json!({})),
            Request::Disconnect => Ok(json!({})),
            Request::Unknown(command) => Err(format!("unsupported request `{command}`")),
        }
    }
}

/// The session's one module: the plugin's library.
pub(crate) fn module(name: String, library: Option<&Path>, version: Option<String>) -> Module {
    Module {
        id: ModuleId::String("1".to_owned()),
        name,
        path: library.map(|l| l.display().to_string()),
        is_optimized: None,
        is_user_code: Some(true),
        version,
        symbol_status: Some("probe table loaded".to_owned()),
        symbol_file_path: None,
        date_time_stamp: None,
        address_range: None,
    }
}

/// A DAP `Breakpoint`.
pub(crate) fn breakpoint(state: &WireBreakpointState, path: Option<&str>) -> Breakpoint {
    Breakpoint {
        id: i64::try_from(state.id).ok(),
        verified: state.verified,
        message: state.message.clone(),
        source: path.map(|path| Source { path: Some(path.to_owned()), ..Default::default() }),
        line: state.line.map(i64::from),
        ..Default::default()
    }
}

/// An earlier hit as one line: `#41 · 12.3 µs before · words=3, text="a b c"`.
pub(crate) fn history_line(entry: &WireHistoryEntry) -> String {
    let values: Vec<String> = entry.values.iter().map(|(n, v)| format!("{n}={}", display(v))).collect();
    format!("#{} · {} before · {}", entry.hit, age(entry.age_ns), values.join(", "))
}

/// A duration in the unit that reads best.
fn age(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns} ns"),
        1_000..1_000_000 => format!("{:.1} µs", ns as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} ms", ns as f64 / 1e6),
        _ => format!("{:.1} s", ns as f64 / 1e9),
    }
}

pub(crate) fn unexpected(reply: DebugReply) -> String {
    format!("unexpected answer from the plugin's host: {reply:?}")
}

/// A value as a debugger shows it: strings quoted, the rest as JSON.
pub(crate) fn display(value: &Value) -> String {
    match value {
        Value::Object(map) => format!("{{…}} ({} fields)", map.len()),
        Value::Array(items) => format!("[…] ({} items)", items.len()),
        other => other.to_string(),
    }
}

/// A probe's file (as the compiler named it, relative to where it ran) as a
/// path on disk: under the plugin's directory or one of its ancestors (or
/// else the working directory's).
pub(crate) fn resolve_source(base: &Path, file: &str) -> PathBuf {
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
