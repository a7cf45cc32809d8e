//! Handlers that place breakpoints of every kind: source lines, functions,
//! exception filters, data breakpoints (`dataBreakpointInfo`,
//! `setDataBreakpoints`), and where breakpoints can go
//! (`breakpointLocations`). Each mutates the session in request order: what
//! the client set is remembered (re-sent to a restarted plugin) before the
//! debug host is asked.

use ax_runtime::debug_host::{DebugReply, DebugRequest, WireBreakpoint, WireDataBreakpoint, WireFunctionBreakpoint};
use dap::requests::{
    BreakpointLocationsArguments, DataBreakpointInfoArguments, SetDataBreakpointsArguments,
    SetExceptionBreakpointsArguments, SetFunctionBreakpointsArguments,
};
use dap::responses::{BreakpointLocationsResponse, SetBreakpointsResponse};
use dap::types::BreakpointLocation;
use serde_json::{Value, json};

use crate::handles::{Root, Step};
use crate::protocol::{SetBreakpointsArgs, body};
use crate::session::{EXPANDABLE, LOCALS, Session, breakpoint, unexpected};

impl Session {
    /// `setBreakpoints`: one source file's line breakpoints.
    pub(crate) fn set_breakpoints(&mut self, args: SetBreakpointsArgs) -> Result<Value, String> {
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

    /// `setFunctionBreakpoints`: stops when a span of that name is entered.
    pub(crate) fn set_function_breakpoints(&mut self, args: SetFunctionBreakpointsArguments) -> Result<Value, String> {
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

    /// `setExceptionBreakpoints`: panic, budget, error, sandbox.
    pub(crate) fn set_exception_breakpoints(
        &mut self,
        args: SetExceptionBreakpointsArguments,
    ) -> Result<Value, String> {
        self.exception_filters = args.filters.clone();
        breakpoints_body(self.child()?.ask(DebugRequest::SetExceptionFilters { filters: args.filters })?, None)
    }

    /// `breakpointLocations`: the probe lines of a range.
    pub(crate) fn breakpoint_locations(&mut self, args: BreakpointLocationsArguments) -> Result<Value, String> {
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

    /// `dataBreakpointInfo`: a binding of the stopped probe's Locals, or a
    /// value inside one (`input.user.id`, `items[2]`), as a `dataId` the
    /// debug host can watch; anything else has no `dataId`, with the reason.
    pub(crate) fn data_breakpoint_info(&mut self, args: DataBreakpointInfoArguments) -> Result<Value, String> {
        let path = match args.variables_reference {
            Some(LOCALS) => Ok(args.name.clone()),
            Some(r) if r >= EXPANDABLE => {
                let place = self.lock_stopped().handles.place(r)?;
                match place.root {
                    Root::Locals => Ok(binding_path(&place.path, &args.name)),
                    _ => Err("only a probe's bindings (Locals) and the values inside them can be watched".to_owned()),
                }
            }
            // No container: the name is an expression over the probe's bindings.
            None => Ok(args.name.clone()),
            Some(_) => Err("only a probe's bindings (Locals) and the values inside them can be watched".to_owned()),
        };
        let (data_id, description) = match path {
            Ok(path) => match self.child()?.ask(DebugRequest::DataBreakpointInfo { path })? {
                DebugReply::DataTarget { data_id, description } => (data_id, description),
                other => return Err(unexpected(other)),
            },
            Err(why) => (None, why),
        };
        // Not through `body`: `dataId` is null, not absent, when there is none.
        let access = if data_id.is_some() { json!(["write"]) } else { Value::Null };
        let mut answer = json!({ "dataId": data_id, "description": description, "canPersist": false });
        if !access.is_null() {
            answer["accessTypes"] = access;
        }
        Ok(answer)
    }

    /// `setDataBreakpoints`: replaces every data breakpoint.
    pub(crate) fn set_data_breakpoints(&mut self, args: SetDataBreakpointsArguments) -> Result<Value, String> {
        let breakpoints: Vec<WireDataBreakpoint> = args
            .breakpoints
            .into_iter()
            .map(|b| WireDataBreakpoint {
                id: self.new_breakpoint_id(),
                data_id: b.data_id,
                condition: b.condition,
                hit_condition: b.hit_condition,
            })
            .collect();
        self.data_breakpoints = breakpoints.clone();
        breakpoints_body(self.child()?.ask(DebugRequest::SetDataBreakpoints { breakpoints })?, None)
    }

    pub(crate) fn new_breakpoint_id(&mut self) -> u64 {
        self.next_breakpoint_id += 1;
        self.next_breakpoint_id - 1
    }
}

/// The expression naming child `name` of the value at `steps` under Locals:
/// `input.user.id`, `items[2]`, `map["a key"]`.
fn binding_path(steps: &[Step], name: &str) -> String {
    let mut path = String::new();
    let push_key = |path: &mut String, key: &str| {
        let plain = key.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_alphanumeric() || c == '_');
        if path.is_empty() {
            path.push_str(key);
        } else if plain {
            path.push('.');
            path.push_str(key);
        } else {
            path.push_str(&format!("[{}]", json!(key)));
        }
    };
    for step in steps {
        match step {
            Step::Key(key) => push_key(&mut path, key),
            Step::Index(i) => path.push_str(&format!("[{i}]")),
        }
    }
    // Array elements are shown as `[i]`.
    match name.strip_prefix('[').and_then(|n| n.strip_suffix(']')).and_then(|n| n.parse::<usize>().ok()) {
        Some(i) => path.push_str(&format!("[{i}]")),
        None => push_key(&mut path, name),
    }
    path
}

/// The body of a setBreakpoints / setFunctionBreakpoints / setExceptionBreakpoints response.
pub(crate) fn breakpoints_body(reply: DebugReply, path: Option<&str>) -> Result<Value, String> {
    let DebugReply::Breakpoints { breakpoints } = reply else { return Err(unexpected(reply)) };
    Ok(body(SetBreakpointsResponse { breakpoints: breakpoints.iter().map(|b| breakpoint(b, path)).collect() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_paths_read_as_expressions() {
        assert_eq!(binding_path(&[], "words"), "words");
        let steps = [Step::Key("input".to_owned()), Step::Key("user".to_owned())];
        assert_eq!(binding_path(&steps, "id"), "input.user.id");
        assert_eq!(binding_path(&[Step::Key("items".to_owned())], "[2]"), "items[2]");
        assert_eq!(binding_path(&[Step::Key("map".to_owned())], "a key"), "map[\"a key\"]");
    }
}
