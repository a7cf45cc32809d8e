//! One debug session: requests handled in order, against the plugin's host
//! (`host.rs`) and the last stop: launch, attach and restart; breakpoints of
//! every kind; the stack, scopes and variables of a stopped thread; evaluate,
//! completions and the REPL's `.call`; the calls of a launch. A panic in a
//! handler is an error response, not a dead adapter.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use ax_runtime::debug_host::{
    DebugReply, DebugRequest, WireBreakpoint, WireBreakpointState, WireCall, WireException, WireFrame,
    WireFunctionBreakpoint,
};
use ax_runtime::{BuildOptions, PluginSource, SourceWatcher};
use dap::events::{BreakpointEventBody, Event, LoadedSourceEventBody, ModuleEventBody, ProcessEventBody};
use dap::requests::CompletionsArguments;
use dap::responses::{
    BreakpointLocationsResponse, CompletionsResponse, EvaluateResponse, ExceptionInfoResponse, LoadedSourcesResponse,
    ModulesResponse, ScopesResponse, SetBreakpointsResponse, SetVariableResponse, StackTraceResponse, ThreadsResponse,
    VariablesResponse,
};
use dap::types::{
    Breakpoint, BreakpointEventReason, BreakpointLocation, CompletionItem, CompletionItemType,
    EvaluateArgumentsContext, ExceptionBreakMode, ExceptionDetails, LoadedSourceEventReason, Module, ModuleEventReason,
    ModuleId, ProcessEventStartMethod, Scope, ScopePresentationhint, Source, StackFrame, StackFramePresentationhint,
    Thread, Variable, VariablesArgumentsFilter,
};
use serde_json::{Value, json};

use crate::handles::{Handles, Place, Root, Step, descend};
use crate::host::{DebugHost, ax_binary, connect, spawn_debug_host};
use crate::protocol::{
    AttachArgs, CallArg, Continued, LaunchArgs, Out, Request, RestartArgs, body, capabilities, parse,
};

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
    fn resolve(&self, place: &Place) -> Option<Value> {
        let (first, rest) = match &place.root {
            Root::Evaluated(n) => return descend(self.handles.evaluation(*n)?, &place.path).cloned(),
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
            Root::Evaluated(_) => return None,
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

    fn child(&self) -> Result<&Arc<DebugHost>, String> {
        self.child.as_ref().ok_or_else(|| "no plugin is launched".to_owned())
    }

    fn lock_stopped(&self) -> std::sync::MutexGuard<'_, Stopped> {
        self.stopped.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn handle(&mut self, request: Request) -> Result<Value, String> {
        let done = Ok(json!({}));
        match request {
            Request::Initialize => Ok(capabilities()),
            Request::Launch(args) => {
                self.launch(args).map_err(|e| format!("{e:#}"))?;
                self.out.event(Event::Initialized);
                done
            }
            Request::Attach(args) => {
                self.attach(args).map_err(|e| format!("{e:#}"))?;
                self.out.event(Event::Initialized);
                done
            }
            Request::Restart(args) => self.restart(args).and(done),
            Request::SetBreakpoints(args) => {
                let file = args.source.path.ok_or_else(|| "setBreakpoints without a source path".to_owned())?;
                let breakpoints: Vec<WireBreakpoint> = args
                    .breakpoints
                    .into_iter()
                    .map(|b| WireBreakpoint {
                        id: self.new_breakpoint_id(),
                        line: u32::try_from(b.line).unwrap_or(0),
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
                    DebugReply::Lines { lines } => Ok(body(BreakpointLocationsResponse {
                        breakpoints: lines
                            .into_iter()
                            .map(i64::from)
                            .filter(|l| (args.line..=end).contains(l))
                            .map(|line| BreakpointLocation { line, ..Default::default() })
                            .collect(),
                    })),
                    other => Err(unexpected(other)),
                }
            }
            Request::ConfigurationDone => {
                self.configured = true;
                self.start_calls()?;
                done
            }
            Request::Threads => {
                Ok(body(ThreadsResponse { threads: vec![Thread { id: 1, name: "plugin".to_owned() }] }))
            }
            Request::StackTrace(args) => {
                let stopped = self.lock_stopped();
                let mut frames: Vec<StackFrame> = stopped
                    .frames
                    .iter()
                    .enumerate()
                    .map(|(i, f)| {
                        let source = self.local_path(&f.file).map(|path| Source {
                            name: path.file_name().map(|n| n.to_string_lossy().into_owned()),
                            path: Some(path.display().to_string()),
                            ..Default::default()
                        });
                        let hint = source.is_none().then_some(StackFramePresentationhint::Subtle);
                        StackFrame {
                            id: i as i64,
                            name: f.name.clone(),
                            source,
                            line: i64::from(f.line),
                            column: 1,
                            presentation_hint: hint,
                            ..Default::default()
                        }
                    })
                    .collect();
                if let Some(call) = &stopped.call {
                    frames.push(StackFrame {
                        id: frames.len() as i64,
                        name: format!("ax: call `{}`", call.method),
                        presentation_hint: Some(StackFramePresentationhint::Label),
                        ..Default::default()
                    });
                }
                let total = frames.len() as i64;
                let start = usize::try_from(args.start_frame.unwrap_or(0)).unwrap_or(0);
                let levels = match args.levels {
                    Some(n) if n > 0 => usize::try_from(n).unwrap_or(usize::MAX),
                    _ => usize::MAX,
                };
                let stack_frames = frames.into_iter().skip(start).take(levels).collect();
                Ok(body(StackTraceResponse { stack_frames, total_frames: Some(total) }))
            }
            Request::Scopes(args) => {
                let stopped = self.lock_stopped();
                let frame = usize::try_from(args.frame_id).map_err(|_| format!("no frame {}", args.frame_id))?;
                let mut scopes = Vec::new();
                if frame < stopped.frames.len() {
                    scopes.push(if frame == 0 {
                        Scope {
                            name: "Locals".to_owned(),
                            variables_reference: LOCALS,
                            presentation_hint: Some(ScopePresentationhint::Locals),
                            ..Default::default()
                        }
                    } else {
                        Scope {
                            name: "Span fields".to_owned(),
                            variables_reference: FRAME_FIELDS + args.frame_id,
                            ..Default::default()
                        }
                    });
                }
                if stopped.call.is_some() {
                    scopes.push(Scope {
                        name: "Call".to_owned(),
                        variables_reference: CALL,
                        presentation_hint: Some(ScopePresentationhint::Arguments),
                        ..Default::default()
                    });
                }
                Ok(body(ScopesResponse { scopes }))
            }
            Request::Variables(args) => {
                let mut stopped = self.lock_stopped();
                let indexed_only = matches!(args.filter, Some(VariablesArgumentsFilter::Indexed));
                let named_only = matches!(args.filter, Some(VariablesArgumentsFilter::Named));
                let named = |list: Vec<(String, Value)>| -> Vec<(String, Value, Step)> {
                    list.into_iter().map(|(name, value)| (name.clone(), value, Step::Key(name))).collect()
                };
                let (parent, entries) = match args.variables_reference {
                    LOCALS => (Place { root: Root::Locals, path: Vec::new() }, named(stopped.variables.clone())),
                    CALL => {
                        let entries = stopped.call.as_ref().map_or_else(Vec::new, |call| {
                            vec![("method".to_owned(), json!(call.method)), ("input".to_owned(), call.input.clone())]
                        });
                        (Place { root: Root::Call, path: Vec::new() }, named(entries))
                    }
                    r if (FRAME_FIELDS + 1..EXPANDABLE).contains(&r) => {
                        // Frame i's fields: the probe frame (0) has none of its own.
                        let index = r - FRAME_FIELDS - 1;
                        let offset = usize::from(stopped.frames.len() > stopped.frame_fields.len());
                        let i = usize::try_from(index).ok().and_then(|i| (i + 1).checked_sub(offset));
                        let fields = i.and_then(|i| stopped.frame_fields.get(i)).cloned().unwrap_or_default();
                        (Place { root: Root::Frame(i.unwrap_or(usize::MAX)), path: Vec::new() }, named(fields))
                    }
                    r if r >= EXPANDABLE => {
                        let place = stopped.handles.place(r)?;
                        let entries = match stopped.resolve(&place) {
                            Some(Value::Object(map)) if !indexed_only => {
                                map.into_iter().map(|(k, v)| (k.clone(), v, Step::Key(k))).collect()
                            }
                            Some(Value::Array(items)) if !named_only => items
                                .into_iter()
                                .enumerate()
                                .map(|(i, v)| (format!("[{i}]"), v, Step::Index(i)))
                                .collect(),
                            _ => Vec::new(),
                        };
                        (place, entries)
                    }
                    other => return Err(format!("unknown variablesReference {other}")),
                };
                let start = usize::try_from(args.start.unwrap_or(0)).unwrap_or(0);
                let count = match args.count {
                    Some(n) if n > 0 => usize::try_from(n).unwrap_or(usize::MAX),
                    _ => usize::MAX,
                };
                let variables = entries
                    .into_iter()
                    .skip(start)
                    .take(count)
                    .map(|(name, value, step)| stopped.variable(&name, &value, parent.child(step)))
                    .collect();
                Ok(body(VariablesResponse { variables }))
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
                Ok(body(SetVariableResponse { value: display(&parsed), ..Default::default() }))
            }
            Request::Evaluate(args) => {
                if let Some(rest) = args.expression.trim_start().strip_prefix(".call") {
                    return self.repl_call(rest);
                }
                let repl = matches!(args.context, Some(EvaluateArgumentsContext::Repl));
                // The call's `input` and `method` after the probe's bindings, as in the Call scope.
                let call = self.lock_stopped().call.clone().map(|c| WireCall { method: c.method, input: c.input });
                match self.child()?.ask(DebugRequest::Evaluate { expression: args.expression, call })? {
                    DebugReply::Evaluated { value } => {
                        let mut stopped = self.lock_stopped();
                        let expands = matches!(value, Value::Object(_) | Value::Array(_));
                        // Only a result that expands is kept (bounded), to be expanded.
                        let root = if expands { stopped.handles.evaluated(value.clone()) } else { Root::Evaluated(0) };
                        let variable = stopped.variable("", &value, Place { root, path: Vec::new() });
                        drop(stopped);
                        Ok(body(EvaluateResponse {
                            result: variable.value,
                            variables_reference: variable.variables_reference,
                            named_variables: variable.named_variables,
                            indexed_variables: variable.indexed_variables,
                            ..Default::default()
                        }))
                    }
                    DebugReply::Failed { message } if repl => {
                        Err(format!("{message} (`.call METHOD JSON` calls the plugin)"))
                    }
                    DebugReply::Failed { message } => Err(message),
                    other => Err(unexpected(other)),
                }
            }
            Request::Completions(args) => Ok(body(CompletionsResponse { targets: self.completions(&args) })),
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
                Ok(body(ExceptionInfoResponse {
                    exception_id: exception.filter.clone(),
                    description: Some(exception.description.clone()),
                    break_mode: ExceptionBreakMode::Always,
                    details: Some(ExceptionDetails {
                        message: Some(exception.description.clone()),
                        type_name: Some(exception.filter.clone()),
                        evaluate_name: exception.location.clone(),
                        stack_trace: Some(trace.join("\n")),
                        ..Default::default()
                    }),
                }))
            }
            Request::Modules => {
                let modules: Vec<Module> = self.module.iter().cloned().collect();
                let total_modules = Some(modules.len() as i64);
                Ok(body(ModulesResponse { modules, total_modules }))
            }
            Request::LoadedSources => Ok(body(LoadedSourcesResponse { sources: self.sources()? })),
            Request::Resume(how) => {
                *self.lock_stopped() = Stopped::default();
                self.child()?.command(DebugRequest::Resume { how })?;
                Ok(body(Continued { all_threads_continued: true }))
            }
            Request::Pause => self.child()?.command(DebugRequest::Pause).and(done),
            Request::Disconnect => done,
            Request::Unknown(command) => Err(format!("unsupported request `{command}`")),
        }
    }

    /// Announces the plugin's library as the session's module, and its
    /// source files known at load (its probes') as loaded sources.
    fn new_module(&mut self, module: Module) -> Result<(), String> {
        self.out.event(Event::Module(ModuleEventBody { reason: ModuleEventReason::New, module: module.clone() }));
        self.module = Some(module);
        for source in self.sources()? {
            self.out.event(Event::LoadedSource(LoadedSourceEventBody { reason: LoadedSourceEventReason::New, source }));
        }
        Ok(())
    }

    /// The plugin's source files known so far, as paths on this machine.
    fn sources(&self) -> Result<Vec<Source>, String> {
        match self.child()?.ask(DebugRequest::SourceFiles)? {
            DebugReply::Files { files } => Ok(files
                .iter()
                .filter_map(|file| self.local_path(file))
                .map(|path| Source {
                    name: path.file_name().map(|n| n.to_string_lossy().into_owned()),
                    path: Some(path.display().to_string()),
                    ..Default::default()
                })
                .collect()),
            other => Err(unexpected(other)),
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
            let lines = ax_runtime::read_calls_file(&file).with_context(|| "callsFile".to_owned())?;
            calls.extend(lines.into_iter().map(|c| CallArg { method: c.method, input: c.input }));
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
        let debounce = match &source {
            PluginSource::Manifest { manifest, .. } => manifest.reload.debounce.0,
            PluginSource::Library(_) => Duration::from_millis(300),
        };
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
            reload_debounce_ms: Some(u64::try_from(debounce.as_millis()).unwrap_or(u64::MAX)),
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
        self.out.event(Event::Process(ProcessEventBody {
            name: source.name(),
            system_process_id: child.pid().map(i64::from),
            is_local_process: Some(true),
            start_method: Some(ProcessEventStartMethod::Launch),
            pointer_size: None,
        }));
        self.calls = calls;
        self.sources = match &source {
            PluginSource::Manifest { dir, manifest, .. }
                if args.hot_reload && args.build && manifest.plugin.library.is_none() =>
            {
                Some(rebuild_on_change(dir, &plugin, debounce, self.out.clone())?)
            }
            _ => None,
        };
        self.launched = Some(args);
        self.child = Some(child);
        self.new_module(module(source.name(), Some(&library), None)).map_err(|e| anyhow!(e))
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
        let attached = match child.ask(DebugRequest::Hello).map_err(|e| anyhow!("{e} (is the token right?)"))? {
            DebugReply::Attached { name, library, methods } => {
                self.methods = methods;
                if let Some(dir) = library.parent() {
                    self.base = dir.to_owned();
                }
                module(name, Some(&library), None)
            }
            DebugReply::Failed { message } => bail!(message),
            other => bail!(unexpected(other)),
        };
        self.out.event(Event::Process(ProcessEventBody {
            name: "ax".to_owned(),
            is_local_process: Some(true),
            start_method: Some(ProcessEventStartMethod::Attach),
            ..Default::default()
        }));
        self.source_map = args.source_map;
        self.child = Some(child);
        self.new_module(attached).map_err(|e| anyhow!(e))
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
                let (reason, breakpoint) = (BreakpointEventReason::Changed, breakpoint(state, path));
                self.out.event(Event::Breakpoint(BreakpointEventBody { reason, breakpoint }));
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
        Ok(body(EvaluateResponse { result: shown, ..Default::default() }))
    }

    /// REPL completions: `.call` and the plugin's methods after it, else the
    /// stopped probe's bindings and the expression language's methods.
    fn completions(&self, args: &CompletionsArguments) -> Vec<CompletionItem> {
        let column = usize::try_from(args.column).unwrap_or(0);
        let before: String = args.text.chars().take(column.saturating_sub(1)).collect();
        let word_start = before.rfind(|c: char| !(c.is_alphanumeric() || c == '_')).map_or(0, |i| i + 1);
        let word = &before[word_start..];
        let item = |label: &str, kind: CompletionItemType, start: usize, length: usize| CompletionItem {
            label: label.to_owned(),
            type_field: Some(kind),
            start: Some(start as i64),
            length: Some(length as i64),
            ..Default::default()
        };
        let offer = |labels: &mut dyn Iterator<Item = &str>, kind: CompletionItemType| -> Vec<CompletionItem> {
            labels.filter(|l| l.starts_with(word)).map(|l| item(l, kind.clone(), word_start, word.len())).collect()
        };
        let trimmed = before.trim_start();
        if let Some(after) = trimmed.strip_prefix(".call ") {
            if after.trim_start().contains(char::is_whitespace) {
                return Vec::new();
            }
            offer(&mut self.methods.iter().map(String::as_str), CompletionItemType::Method)
        } else if before[..word_start].ends_with('.') && word_start > 1 {
            let methods = ["len()", "contains(", "starts_with(", "ends_with("];
            offer(&mut methods.into_iter(), CompletionItemType::Function)
        } else if trimmed.starts_with('.') {
            let start = before.find('.').map_or(0, |i| i + 1);
            let typed = &before[start..];
            if "call".starts_with(typed) {
                vec![item("call", CompletionItemType::Keyword, start, typed.len())]
            } else {
                Vec::new()
            }
        } else {
            let stopped = self.lock_stopped();
            let mut items = offer(&mut stopped.variables.iter().map(|(n, _)| n.as_str()), CompletionItemType::Variable);
            items.extend(offer(&mut ["true", "false", "null"].into_iter(), CompletionItemType::Keyword));
            items
        }
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
            out.ended(i64::from(failed > 0));
        });
        Ok(())
    }
}

/// With hot reload on a crate, `ax dev` style: cargo rebuilds it after its
/// sources change and have been quiet for `debounce` (its output in the Debug
/// Console); the new library is what the debug host's watcher reloads. A
/// failed build says so and the running version keeps serving.
fn rebuild_on_change(dir: &Path, plugin: &Path, debounce: Duration, out: Out) -> Result<SourceWatcher> {
    let (tx, rx) = crossbeam_channel::unbounded::<Vec<PathBuf>>();
    let watcher = SourceWatcher::spawn(dir, move |changed| drop(tx.send(changed)))?;
    let plugin = plugin.to_owned();
    std::thread::spawn(move || {
        // Ends when the watcher is dropped (the session ends or restarts).
        while rx.recv().is_ok() {
            loop {
                match rx.recv_timeout(debounce) {
                    Ok(_) => {}
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => break,
                    Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
                }
            }
            out.output("console", "ax-dap: sources changed; building\n");
            let console = out.clone();
            let mut on_output = move |line: &str| console.output("console", format!("{line}\n"));
            let mut build = BuildOptions { build: true, release: false, on_output: Some(&mut on_output) };
            if let Err(e) = PluginSource::resolve(&plugin)
                .map_err(anyhow::Error::from)
                .and_then(|s| s.library(&mut build).map_err(anyhow::Error::from))
            {
                out.output("stderr", format!("ax-dap: the build failed; the running version keeps serving: {e:#}\n"));
            }
        }
    });
    Ok(watcher)
}

/// The body of a setBreakpoints / setFunctionBreakpoints / setExceptionBreakpoints response.
fn breakpoints_body(reply: DebugReply, path: Option<&str>) -> Result<Value, String> {
    let DebugReply::Breakpoints { breakpoints } = reply else { return Err(unexpected(reply)) };
    Ok(body(SetBreakpointsResponse { breakpoints: breakpoints.iter().map(|b| breakpoint(b, path)).collect() }))
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
