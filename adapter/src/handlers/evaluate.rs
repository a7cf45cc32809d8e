//! Handlers of the evaluate box and the Debug Console: evaluate (watch,
//! hover, REPL over the stopped probe's bindings, with `prev(x)` and
//! `history(x)`), the REPL's `.call METHOD JSON` and `.history`, and
//! completions. `.call` runs off the request loop (the call may stop).

use ax_runtime::debug_host::{DebugReply, DebugRequest, WireCall};
use dap::requests::{CompletionsArguments, EvaluateArguments};
use dap::responses::EvaluateResponse;
use dap::types::{CompletionItem, CompletionItemType, EvaluateArgumentsContext};
use serde_json::Value;

use crate::handles::{Place, Root};
use crate::protocol::{CallArg, body};
use crate::session::{Session, history_line, unexpected};

impl Session {
    /// `evaluate`: an `ax-expr` expression over the stop, or a REPL command.
    pub(crate) fn evaluate(&mut self, args: EvaluateArguments) -> Result<Value, String> {
        if let Some(rest) = args.expression.trim_start().strip_prefix(".call") {
            return self.repl_call(rest);
        }
        if args.expression.trim() == ".history" {
            return self.repl_history();
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
            DebugReply::Failed { message } if repl => Err(format!("{message} (`.call METHOD JSON` calls the plugin)")),
            DebugReply::Failed { message } => Err(message),
            other => Err(unexpected(other)),
        }
    }

    /// `.history` in the Debug Console: the stopped probe's earlier hits,
    /// newest first, one line each.
    fn repl_history(&self) -> Result<Value, String> {
        let stopped = self.lock_stopped();
        if stopped.frames.is_empty() {
            return Err(".history: no thread is stopped".to_owned());
        }
        if stopped.history.is_empty() {
            let why = "no earlier hits of this probe are kept (history is kept for probes with a breakpoint or a \
                       data breakpoint, unless historySize is 0)";
            return Ok(body(EvaluateResponse { result: why.to_owned(), ..Default::default() }));
        }
        let lines: Vec<String> = stopped.history.iter().map(history_line).collect();
        Ok(body(EvaluateResponse { result: lines.join("\n"), ..Default::default() }))
    }

    /// `.call METHOD JSON` in the Debug Console: calls the plugin off the
    /// request loop (the call may stop at a breakpoint) and prints the result.
    pub(crate) fn repl_call(&self, rest: &str) -> Result<Value, String> {
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
    pub(crate) fn completions(&self, args: &CompletionsArguments) -> Vec<CompletionItem> {
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
}
