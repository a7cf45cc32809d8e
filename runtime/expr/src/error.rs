//! The two ways an expression fails: [`CompileError`] when it is set (it does
//! not parse, names something that does not exist, or cannot type-check), and
//! [`EvalError`] when it runs against a hit (a value of the wrong type, a
//! missing field, an overflow).
//!
//! A compile error points at a column of the input and renders as the input
//! with a caret under it; an evaluation error names the part of the
//! expression that failed and the types it met. Both are meant to be shown to
//! the user as they are.

use std::fmt;

use crate::json::JsonError;

/// An expression, template or hit condition that cannot be compiled.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{input}`, column {column}: {message}")]
pub struct CompileError {
    /// The whole input that was being compiled.
    pub input: String,
    /// 1-based column, in characters, of what the message is about (one past
    /// the end of the input when something is missing at the end).
    pub column: usize,
    pub message: String,
}

impl CompileError {
    /// An error at byte `offset` of `input`.
    pub(crate) fn at(input: &str, offset: usize, message: impl Into<String>) -> CompileError {
        let offset = offset.min(input.len());
        // Round down to a character boundary: offsets come from the lexer,
        // which only stops on boundaries, but stay safe for any caller.
        let offset = (0..=offset).rev().find(|&i| input.is_char_boundary(i)).unwrap_or(0);
        CompileError { input: input.to_owned(), column: input[..offset].chars().count() + 1, message: message.into() }
    }

    /// The input, and under it a caret at the column followed by the message:
    ///
    /// ```text
    /// count > > 3
    ///         ^ expected an expression after `>`
    /// ```
    ///
    /// Line breaks and tabs in the input are shown as spaces so the caret
    /// lines up.
    pub fn render(&self) -> String {
        let line: String = self.input.chars().map(|c| if c.is_whitespace() { ' ' } else { c }).collect();
        format!("{}\n{:>width$} {}", line.trim_end(), "^", self.message, width = self.column)
    }
}

/// An expression that failed while evaluating: `expr` is the part of the
/// source that failed (`input.user.name`, `a + b`), `kind` says why.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("`{expr}`: {kind}")]
pub struct EvalError {
    pub expr: String,
    pub kind: EvalErrorKind,
}

/// Why an evaluation failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum EvalErrorKind {
    #[error("this variable has no value here")]
    Unbound,
    #[error("expected {expected}, found {found}")]
    Expected { expected: &'static str, found: &'static str },
    #[error("`{op}` cannot be applied to {left} and {right}")]
    Mismatch { op: &'static str, left: &'static str, right: &'static str },
    #[error("integer overflow")]
    Overflow,
    #[error("division by zero")]
    DivisionByZero,
    #[error("no field `{field}` (the object has {})", FieldList(.available))]
    NoField { field: String, available: Vec<String> },
    #[error("index {index} is out of range for {what} of length {len}")]
    OutOfRange { index: String, what: &'static str, len: usize },
    #[error(transparent)]
    Json(#[from] JsonError),
}

struct FieldList<'a>(&'a [String]);

impl fmt::Display for FieldList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 12;
        if self.0.is_empty() {
            return f.write_str("no fields");
        }
        f.write_str("fields ")?;
        for (i, name) in self.0.iter().take(SHOWN).enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "`{name}`")?;
        }
        if self.0.len() > SHOWN {
            write!(f, " and {} more", self.0.len() - SHOWN)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caret_lines_up_under_the_column() {
        let e = CompileError::at("count > > 3", 8, "expected an expression after `>`");
        assert_eq!(e.column, 9);
        assert_eq!(e.render(), "count > > 3\n        ^ expected an expression after `>`");
        assert_eq!(e.to_string(), "`count > > 3`, column 9: expected an expression after `>`");
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let e = CompileError::at("\"é\" ?", 5, "unexpected character `?`");
        assert_eq!(e.column, 5);
    }
}
