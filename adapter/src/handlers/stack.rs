//! Handlers that read the stopped thread: threads, stackTrace, scopes
//! (Locals, History, Call, span fields), variables, setVariable and
//! exceptionInfo. They read the session's last stop (`Stopped`) under its
//! lock and answer from it; only setVariable asks the debug host.

use ax_runtime::debug_host::DebugRequest;
use dap::requests::{ScopesArguments, SetVariableArguments, StackTraceArguments, VariablesArguments};
use dap::responses::{
    ExceptionInfoResponse, ScopesResponse, SetVariableResponse, StackTraceResponse, ThreadsResponse, VariablesResponse,
};
use dap::types::{
    ExceptionBreakMode, ExceptionDetails, Scope, ScopePresentationhint, Source, StackFrame, StackFramePresentationhint,
    Thread, VariablesArgumentsFilter,
};
use serde_json::{Value, json};

use crate::handles::{Place, Root, Step};
use crate::protocol::body;
use crate::session::{CALL, EXPANDABLE, FRAME_FIELDS, HISTORY, LOCALS, Session, display};

impl Session {
    /// `threads`: the plugin's one thread.
    pub(crate) fn threads(&mut self) -> Result<Value, String> {
        Ok(body(ThreadsResponse { threads: vec![Thread { id: 1, name: "plugin".to_owned() }] }))
    }

    /// `stackTrace`: the probe, the spans, the call.
    pub(crate) fn stack_trace(&mut self, args: StackTraceArguments) -> Result<Value, String> {
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

    /// `scopes`: Locals (or a span's fields), History, Call.
    pub(crate) fn scopes(&mut self, args: ScopesArguments) -> Result<Value, String> {
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
        if frame == 0 && !stopped.history.is_empty() {
            scopes.push(Scope {
                name: "History".to_owned(),
                variables_reference: HISTORY,
                named_variables: Some(stopped.history.len() as i64),
                ..Default::default()
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

    /// `variables`: a scope's or an expandable value's children, paged.
    pub(crate) fn variables(&mut self, args: VariablesArguments) -> Result<Value, String> {
        let mut stopped = self.lock_stopped();
        let indexed_only = matches!(args.filter, Some(VariablesArgumentsFilter::Indexed));
        let named_only = matches!(args.filter, Some(VariablesArgumentsFilter::Named));
        let named = |list: Vec<(String, Value)>| -> Vec<(String, Value, Step)> {
            list.into_iter().map(|(name, value)| (name.clone(), value, Step::Key(name))).collect()
        };
        let (parent, entries) = match args.variables_reference {
            LOCALS => (Place { root: Root::Locals, path: Vec::new() }, named(stopped.variables.clone())),
            HISTORY => {
                // Each earlier hit, newest first: `#hit · age`, its values inline, expandable.
                let parent = Place { root: Root::History, path: Vec::new() };
                let variables = stopped
                    .history
                    .clone()
                    .iter()
                    .enumerate()
                    .map(|(i, entry)| {
                        let line = crate::session::history_line(entry);
                        let (name, value) = line
                            .split_once(" · ")
                            .map_or((line.clone(), String::new()), |(n, v)| (n.to_owned(), v.to_owned()));
                        let reference = stopped.handles.handle(parent.child(Step::Index(i)), EXPANDABLE);
                        dap::types::Variable {
                            name,
                            value,
                            variables_reference: reference,
                            named_variables: Some(entry.values.len() as i64),
                            ..Default::default()
                        }
                    })
                    .collect();
                return Ok(body(VariablesResponse { variables }));
            }
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
                    Some(Value::Array(items)) if !named_only => {
                        items.into_iter().enumerate().map(|(i, v)| (format!("[{i}]"), v, Step::Index(i))).collect()
                    }
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

    /// `setVariable`: overwrites a `&mut` binding of the stopped probe.
    pub(crate) fn set_variable(&mut self, args: SetVariableArguments) -> Result<Value, String> {
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

    /// `exceptionInfo`: what an exception stop is about.
    pub(crate) fn exception_info(&mut self) -> Result<Value, String> {
        let stopped = self.lock_stopped();
        let exception =
            stopped.exception.as_ref().ok_or_else(|| "the thread did not stop on an exception".to_owned())?;
        let trace: Vec<String> = stopped
            .frames
            .iter()
            .map(|f| if f.file.is_empty() { f.name.clone() } else { format!("{} at {}:{}", f.name, f.file, f.line) })
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
}
