//! Calls files: one JSON object per line, `{"method": …, "input": …}`, with
//! an optional `"budget"` (limits of that call alone) and `"traceparent"` (the
//! caller's W3C trace context, checked by whoever traces). `ax run`, `ax dev`,
//! `ax perf run` and the debugger's `callsFile` read the same format, here.
//! Errors name the file and line and show the expected form.

use std::path::Path;

use serde_json::Value;

use crate::budget::Budget;
use crate::manifest::{ByteSize, HumanDuration};

/// One line of a calls file.
#[derive(Clone, Debug, PartialEq)]
pub struct CallLine {
    /// 1-based, for messages.
    pub line: usize,
    pub method: String,
    /// `null` when absent.
    pub input: Value,
    pub budget: Option<Budget>,
    /// As written; not checked here.
    pub traceparent: Option<String>,
}

/// What is wrong with a calls file: the message names the file and the line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CallsFileError(String);

const EXPECTED: &str = r#"expected one JSON object per line, such as {"method":"count","input":{"text":"a b"}}"#;

/// Reads the calls of `path`, failing on the first bad line. An empty file
/// gives no calls (the caller decides whether that is an error).
pub fn read_calls_file(path: &Path) -> Result<Vec<CallLine>, CallsFileError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CallsFileError(format!("{}: cannot read calls file: {e}", path.display())))?;
    let mut calls = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let call = parse_call_line(line, i + 1)
            .map_err(|what| CallsFileError(format!("{}:{}: {what}", path.display(), i + 1)))?;
        calls.push(call);
    }
    Ok(calls)
}

/// Parses one line of a calls file (numbered `line`, for messages); the
/// error says what is wrong and the expected form, without file or line.
pub fn parse_call_line(text: &str, line: usize) -> Result<CallLine, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON ({e}); {EXPECTED}"))?;
    let Value::Object(mut object) = value else { return Err(format!("not an object; {EXPECTED}")) };
    let method = match object.remove("method") {
        Some(Value::String(m)) if !m.is_empty() => m,
        _ => return Err(format!("missing \"method\" string; {EXPECTED}")),
    };
    let input = object.remove("input").unwrap_or(Value::Null);
    let budget = object.remove("budget").map(|b| parse_budget(&b)).transpose()?;
    let traceparent = match object.remove("traceparent") {
        None => None,
        Some(Value::String(text)) => Some(text),
        Some(_) => return Err("\"traceparent\" is not a string; expected a W3C traceparent string".into()),
    };
    if let Some(key) = object.keys().next() {
        return Err(format!("unknown key {key:?}; {EXPECTED}"));
    }
    Ok(CallLine { line, method, input, budget, traceparent })
}

/// The error for a file with no calls, for callers that need some.
pub fn no_calls(path: &Path) -> CallsFileError {
    CallsFileError(format!("{}: no calls; {EXPECTED}", path.display()))
}

/// A call's `"budget"`: `{"max_memory": "64MiB", "max_cpu_time": "2s", "max_duration": "5s"}`.
fn parse_budget(value: &Value) -> Result<Budget, String> {
    let expected =
        r#"expected "budget": {"max_memory": "64MiB", "max_cpu_time": "2s", "max_duration": "5s"} (any of them)"#;
    let Value::Object(fields) = value else { return Err(format!("\"budget\" is not an object; {expected}")) };
    let mut budget = Budget::UNLIMITED;
    for (key, value) in fields {
        let text = value.as_str().ok_or_else(|| format!("\"budget\".{key} is not a string; {expected}"))?;
        match key.as_str() {
            "max_memory" => budget.max_memory = Some(ByteSize::parse_limit(text)?.0),
            "max_cpu_time" => budget.max_cpu_time = Some(HumanDuration::parse_limit(text)?.0),
            "max_duration" => budget.max_duration = Some(HumanDuration::parse_limit(text)?.0),
            other => return Err(format!("unknown budget key {other:?}; {expected}")),
        }
    }
    Ok(budget)
}
