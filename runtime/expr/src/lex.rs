//! Source text to tokens, each with its byte span, so every later error can
//! point at a column.
//!
//! Literals are decoded here (integers up to `u64::MAX`, floats, strings in
//! double or single quotes with Rust's escapes), and the operators a reader
//! might reach for by habit but which this language does not have (`=`, `&`,
//! `|`) get a message saying what to write instead.

use crate::error::CompileError;

/// A byte range in the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) start: u32,
    pub(crate) end: u32,
}

impl Span {
    pub(crate) fn new(start: usize, end: usize) -> Span {
        // Sources are limited to a few KiB (`MAX_SOURCE_LEN`), far below u32.
        Span { start: start as u32, end: end as u32 }
    }

    pub(crate) fn to(self, other: Span) -> Span {
        Span { start: self.start.min(other.start), end: self.end.max(other.end) }
    }

    pub(crate) fn text(self, source: &str) -> &str {
        source.get(self.start as usize..self.end as usize).unwrap_or(source)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Tok {
    Int(u64),
    Float(f64),
    Str(String),
    Ident(String),
    True,
    False,
    Null,
    Dot,
    Comma,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Bang,
    AndAnd,
    OrOr,
    EqEq,
    NotEq,
    Lt,
    Le,
    Gt,
    Ge,
    Eof,
}

impl Tok {
    /// How the token reads in a message.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Int(v) => format!("`{v}`"),
            Tok::Float(v) => format!("`{v:?}`"),
            Tok::Str(_) => "a string".to_owned(),
            Tok::Ident(name) => format!("`{name}`"),
            Tok::Eof => "the end of the input".to_owned(),
            other => format!("`{}`", other.symbol()),
        }
    }

    pub(crate) fn symbol(&self) -> &'static str {
        match self {
            Tok::True => "true",
            Tok::False => "false",
            Tok::Null => "null",
            Tok::Dot => ".",
            Tok::Comma => ",",
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::LBracket => "[",
            Tok::RBracket => "]",
            Tok::Plus => "+",
            Tok::Minus => "-",
            Tok::Star => "*",
            Tok::Slash => "/",
            Tok::Percent => "%",
            Tok::Bang => "!",
            Tok::AndAnd => "&&",
            Tok::OrOr => "||",
            Tok::EqEq => "==",
            Tok::NotEq => "!=",
            Tok::Lt => "<",
            Tok::Le => "<=",
            Tok::Gt => ">",
            Tok::Ge => ">=",
            Tok::Int(_) | Tok::Float(_) | Tok::Str(_) | Tok::Ident(_) | Tok::Eof => "",
        }
    }
}

/// A lexing error: byte offset and message.
pub(crate) type LexError = (usize, String);

/// Splits `src` into tokens, ending with `Eof` (whose span is the end of the input).
pub(crate) fn tokenize(src: &str) -> Result<Vec<(Tok, Span)>, CompileError> {
    Lexer { src, pos: 0 }.run().map_err(|(at, msg)| CompileError::at(src, at, msg))
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

impl Lexer<'_> {
    fn run(mut self) -> Result<Vec<(Tok, Span)>, LexError> {
        let mut out = Vec::new();
        loop {
            self.skip_ws();
            let start = self.pos;
            let Some(c) = self.peek() else {
                out.push((Tok::Eof, Span::new(start, start)));
                return Ok(out);
            };
            let tok = match c {
                '0'..='9' => self.number()?,
                '"' | '\'' => self.string(c)?,
                c if c.is_ascii_alphabetic() || c == '_' => self.ident(),
                _ => self.punct(c)?,
            };
            out.push((tok, Span::new(start, self.pos)));
        }
    }

    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.src[self.pos..].chars().nth(n)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    fn ident(&mut self) -> Tok {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            self.bump();
        }
        match &self.src[start..self.pos] {
            "true" => Tok::True,
            "false" => Tok::False,
            "null" => Tok::Null,
            name => Tok::Ident(name.to_owned()),
        }
    }

    fn number(&mut self) -> Result<Tok, LexError> {
        let start = self.pos;
        if self.peek() == Some('0') && matches!(self.peek_at(1), Some('x' | 'X')) {
            self.pos += 2;
            let digits_start = self.pos;
            while self.peek().is_some_and(|c| c.is_ascii_hexdigit() || c == '_') {
                self.bump();
            }
            let digits: String = self.src[digits_start..self.pos].chars().filter(|&c| c != '_').collect();
            if digits.is_empty() {
                return Err((start, "expected hexadecimal digits after `0x`".to_owned()));
            }
            return u64::from_str_radix(&digits, 16)
                .map(Tok::Int)
                .map_err(|_| (start, "integer literal is larger than 2^64 - 1".to_owned()));
        }
        let mut float = false;
        self.digits();
        // A fraction needs a digit after the dot: `1.len()` is a method call.
        if self.peek() == Some('.') && self.peek_at(1).is_some_and(|c| c.is_ascii_digit()) {
            float = true;
            self.bump();
            self.digits();
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            let sign = usize::from(matches!(self.peek_at(1), Some('+' | '-')));
            if self.peek_at(1 + sign).is_some_and(|c| c.is_ascii_digit()) {
                float = true;
                self.pos += 1 + sign;
                self.digits();
            }
        }
        if self.peek().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') {
            let c = self.peek().unwrap_or('?');
            return Err((self.pos, format!("unexpected `{c}` after a number")));
        }
        let text: String = self.src[start..self.pos].chars().filter(|&c| c != '_').collect();
        if float {
            text.parse().map(Tok::Float).map_err(|_| (start, "invalid float literal".to_owned()))
        } else {
            text.parse().map(Tok::Int).map_err(|_| (start, "integer literal is larger than 2^64 - 1".to_owned()))
        }
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit() || c == '_') {
            self.bump();
        }
    }

    fn string(&mut self, quote: char) -> Result<Tok, LexError> {
        let start = self.pos;
        self.bump();
        let mut out = String::new();
        loop {
            let at = self.pos;
            match self.bump() {
                None => return Err((start, "unterminated string: expected a closing quote".to_owned())),
                Some(c) if c == quote => return Ok(Tok::Str(out)),
                Some('\\') => out.push(self.escape(at)?),
                Some(c) => out.push(c),
            }
        }
    }

    /// The character an escape stands for; `at` is the backslash.
    fn escape(&mut self, at: usize) -> Result<char, LexError> {
        let bad = |what: &str| (at, format!("{what}; valid escapes are \\n \\r \\t \\0 \\\\ \\\" \\' \\u{{…}}"));
        match self.bump() {
            Some('n') => Ok('\n'),
            Some('r') => Ok('\r'),
            Some('t') => Ok('\t'),
            Some('0') => Ok('\0'),
            Some('\\') => Ok('\\'),
            Some('"') => Ok('"'),
            Some('\'') => Ok('\''),
            Some('u') => {
                if self.bump() != Some('{') {
                    return Err(bad("expected `{` after `\\u`"));
                }
                let digits_start = self.pos;
                while self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
                    self.bump();
                }
                let digits = &self.src[digits_start..self.pos];
                if self.bump() != Some('}') || digits.is_empty() || digits.len() > 6 {
                    return Err(bad("expected 1 to 6 hexadecimal digits and `}` in `\\u{…}`"));
                }
                u32::from_str_radix(digits, 16)
                    .ok()
                    .and_then(char::from_u32)
                    .ok_or_else(|| bad("`\\u{…}` is not a Unicode scalar value"))
            }
            Some(c) => Err(bad(&format!("unknown escape `\\{c}`"))),
            None => Err(bad("unterminated escape")),
        }
    }

    fn punct(&mut self, c: char) -> Result<Tok, LexError> {
        let start = self.pos;
        let next = self.peek_at(1);
        let (tok, len) = match (c, next) {
            ('&', Some('&')) => (Tok::AndAnd, 2),
            ('|', Some('|')) => (Tok::OrOr, 2),
            ('=', Some('=')) => (Tok::EqEq, 2),
            ('!', Some('=')) => (Tok::NotEq, 2),
            ('<', Some('=')) => (Tok::Le, 2),
            ('>', Some('=')) => (Tok::Ge, 2),
            ('<', _) => (Tok::Lt, 1),
            ('>', _) => (Tok::Gt, 1),
            ('!', _) => (Tok::Bang, 1),
            ('.', _) => (Tok::Dot, 1),
            (',', _) => (Tok::Comma, 1),
            ('(', _) => (Tok::LParen, 1),
            (')', _) => (Tok::RParen, 1),
            ('[', _) => (Tok::LBracket, 1),
            (']', _) => (Tok::RBracket, 1),
            ('+', _) => (Tok::Plus, 1),
            ('-', _) => (Tok::Minus, 1),
            ('*', _) => (Tok::Star, 1),
            ('/', _) => (Tok::Slash, 1),
            ('%', _) => (Tok::Percent, 1),
            ('=', _) => return Err((start, "`=` is not an operator: expressions cannot assign; use `==`".to_owned())),
            ('&', _) => return Err((start, "`&` is not an operator; use `&&`".to_owned())),
            ('|', _) => return Err((start, "`|` is not an operator; use `||`".to_owned())),
            (c, _) => return Err((start, format!("unexpected character `{c}`"))),
        };
        self.pos += len;
        Ok(tok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<Tok> {
        tokenize(src).unwrap().into_iter().map(|(t, _)| t).collect()
    }

    #[test]
    fn literals() {
        assert_eq!(
            toks("0x_ff 1_000 2.5 1e3 7"),
            [Tok::Int(255), Tok::Int(1000), Tok::Float(2.5), Tok::Float(1e3), Tok::Int(7), Tok::Eof]
        );
        assert_eq!(toks(r#""a\n\"\u{e9}" 'it\'s'"#), [Tok::Str("a\n\"é".into()), Tok::Str("it's".into()), Tok::Eof]);
        assert_eq!(toks("1.len"), [Tok::Int(1), Tok::Dot, Tok::Ident("len".into()), Tok::Eof]);
        assert_eq!(toks("18446744073709551615"), [Tok::Int(u64::MAX), Tok::Eof]);
    }

    #[test]
    fn errors_point_at_the_offending_byte() {
        let err = |src: &str| tokenize(src).unwrap_err();
        assert_eq!(err("a = 1").column, 3);
        assert_eq!(err("\"abc").column, 1);
        assert_eq!(err("'a\\qb'").column, 3);
        assert_eq!(err("18446744073709551616").column, 1);
        assert_eq!(err("a # b").column, 3);
    }
}
