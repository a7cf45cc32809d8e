//! Logpoint messages: text with `{expression}` placeholders, each compiled
//! once, rendered into a `String` the caller reuses.
//!
//! `{{` and `}}` are literal braces. A placeholder ends at the first `}`
//! outside a string literal, so `{map["}"]}` works. A placeholder that fails
//! at a hit renders as `<error: …>` in place, and the rest of the line still
//! renders: a log line with one bad field is more use than no line.

use std::fmt::Write as _;

use crate::compile::{Program, Use, compile_as};
use crate::error::CompileError;
use crate::value::Env;

/// The longest template accepted, in bytes.
pub const MAX_TEMPLATE_LEN: usize = 16 * 1024;

/// A compiled logpoint message.
#[derive(Debug)]
pub struct Template {
    source: Box<str>,
    parts: Vec<Part>,
}

#[derive(Debug)]
enum Part {
    Text(Box<str>),
    Expr(Program),
}

/// Compiles a logpoint message such as `"count is {count}, user {input.user.id}"`.
/// Error columns count from the start of the whole message.
pub fn compile_template<S: AsRef<str>>(source: &str, names: &[S]) -> Result<Template, CompileError> {
    if source.len() > MAX_TEMPLATE_LEN {
        let message = format!("log message is longer than {MAX_TEMPLATE_LEN} bytes");
        return Err(CompileError::at(source, MAX_TEMPLATE_LEN, message));
    }
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut chars = source.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '{' if chars.peek().is_some_and(|&(_, n)| n == '{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek().is_some_and(|&(_, n)| n == '}') => {
                chars.next();
                text.push('}');
            }
            '}' => return Err(CompileError::at(source, i, "unmatched `}`; write `}}` for a literal brace")),
            '{' => {
                let Some(end) = placeholder_end(source, i + 1) else {
                    let message = "unclosed `{`: end the expression with `}`, or write `{{` for a literal brace";
                    return Err(CompileError::at(source, i, message));
                };
                let inner = &source[i + 1..end];
                let program = compile_as(inner, names, Use::Value).map_err(|e| rebase(e, source, i + 1))?;
                if !text.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut text).into()));
                }
                parts.push(Part::Expr(program));
                while chars.peek().is_some_and(|&(j, _)| j <= end) {
                    chars.next();
                }
            }
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        parts.push(Part::Text(text.into()));
    }
    Ok(Template { source: source.into(), parts })
}

/// The byte offset of the `}` closing a placeholder that starts at `from`,
/// skipping string literals.
fn placeholder_end(source: &str, from: usize) -> Option<usize> {
    let bytes = source.as_bytes();
    let mut quote = None;
    let mut i = from;
    while i < bytes.len() {
        match (quote, bytes[i]) {
            (Some(_), b'\\') => i += 1,
            (Some(q), b) if b == q => quote = None,
            (None, b'"' | b'\'') => quote = Some(bytes[i]),
            (None, b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// An error in a placeholder, re-pointed into the whole message.
fn rebase(e: CompileError, source: &str, base: usize) -> CompileError {
    let inner = &e.input;
    let byte = inner.char_indices().nth(e.column - 1).map_or(inner.len(), |(b, _)| b);
    CompileError::at(source, base + byte, e.message)
}

impl Template {
    /// The message as it was given.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether a placeholder reads earlier hits (`{prev(total)}`).
    pub fn reads_earlier_hits(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Expr(e) if e.reads_earlier_hits()))
    }

    /// Appends the message for this hit to `out` (which the caller clears
    /// and reuses across hits). Never fails: a placeholder that cannot be
    /// evaluated renders as `<error: …>`.
    pub fn render_into<E: Env + ?Sized>(&self, env: &E, out: &mut String) {
        for part in &self.parts {
            // Writing into a String cannot fail.
            let _ = match part {
                Part::Text(text) => {
                    out.push_str(text);
                    Ok(())
                }
                Part::Expr(program) => match program.eval(env) {
                    Ok(value) => write!(out, "{value}"),
                    Err(e) => write!(out, "<error: {e}>"),
                },
            };
        }
    }

    /// The message for this hit, in a new `String`.
    pub fn render<E: Env + ?Sized>(&self, env: &E) -> String {
        let mut out = String::new();
        self.render_into(env, &mut out);
        out
    }
}
