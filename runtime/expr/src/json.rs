//! Reading JSON text in place: the field, element or length an expression
//! asks for, as a slice of the original text, without parsing the rest.
//!
//! A `Serialize` binding reaches the debugger as JSON text. Parsing all of it
//! into a `serde_json::Value` on every hit would allocate for every node of the
//! document, so instead this scanner walks the text: an object's members (all
//! of them, since the last of a repeated key wins, as in `serde_json`), an
//! array's elements up to the one wanted, skipping each value by matching
//! brackets (iteratively, so a hostile `[[[[…` cannot overflow the stack).
//! Results are sub-slices of the text; only strings with escapes are copied.
//!
//! Malformed text never panics: it is an error naming the byte where the
//! scanner gave up.

use crate::value::Value;

/// JSON text that is not what it should be.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid JSON text: {what} at byte {at}")]
pub struct JsonError {
    what: &'static str,
    at: usize,
}

/// The kind of a JSON value, from its first character.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Null,
    Bool,
    Integer,
    Float,
    String,
    Array,
    Object,
    Invalid,
}

impl Kind {
    pub(crate) fn type_name(self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Bool => "a boolean",
            Kind::Integer => "an integer",
            Kind::Float => "a float",
            Kind::String => "a string",
            Kind::Array => "an array",
            Kind::Object => "an object",
            Kind::Invalid => "invalid JSON text",
        }
    }
}

pub(crate) fn kind(text: &str) -> Kind {
    let text = text.trim_start();
    match text.as_bytes().first() {
        Some(b'{') => Kind::Object,
        Some(b'[') => Kind::Array,
        Some(b'"') => Kind::String,
        Some(b't' | b'f') => Kind::Bool,
        Some(b'n') => Kind::Null,
        Some(b'-' | b'0'..=b'9') if text.bytes().any(|b| matches!(b, b'.' | b'e' | b'E')) => Kind::Float,
        Some(b'-' | b'0'..=b'9') => Kind::Integer,
        _ => Kind::Invalid,
    }
}

/// One JSON value as a [`Value`]: scalars are read, composites stay text.
pub(crate) fn to_value(text: &str) -> Result<Value<'_>, JsonError> {
    let start = text.len() - text.trim_start().len();
    let trimmed = text.trim();
    let bad = |what| JsonError { what, at: start };
    match kind(trimmed) {
        Kind::Object | Kind::Array => Ok(Value::JsonText(trimmed)),
        Kind::Null if trimmed == "null" => Ok(Value::Null),
        Kind::Bool if trimmed == "true" => Ok(Value::Bool(true)),
        Kind::Bool if trimmed == "false" => Ok(Value::Bool(false)),
        Kind::String => {
            let mut scan = Scanner { bytes: trimmed.as_bytes(), pos: 0 };
            scan.string().map_err(|e| JsonError { at: e.at + start, ..e })?;
            if scan.pos != trimmed.len() {
                return Err(JsonError { what: "text after the string", at: start + scan.pos });
            }
            let inner = &trimmed[1..trimmed.len() - 1];
            if inner.contains('\\') {
                serde_json::from_str::<String>(trimmed).map(Value::String).map_err(|_| bad("an invalid escape"))
            } else {
                Ok(Value::Str(inner))
            }
        }
        Kind::Integer => {
            if let Ok(v) = trimmed.parse::<i64>() {
                Ok(Value::Int(v))
            } else if let Ok(v) = trimmed.parse::<u64>() {
                Ok(Value::UInt(v))
            } else {
                // Beyond 64 bits: JSON numbers are arbitrary, read it as a float.
                parse_float(trimmed).ok_or_else(|| bad("an invalid number"))
            }
        }
        Kind::Float => parse_float(trimmed).ok_or_else(|| bad("an invalid number")),
        Kind::Null | Kind::Bool | Kind::Invalid => Err(bad("an unexpected character")),
    }
}

fn parse_float(text: &str) -> Option<Value<'static>> {
    let ok = text.bytes().all(|b| matches!(b, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'));
    if ok { text.parse::<f64>().ok().map(Value::Float) } else { None }
}

/// The text of member `name` of the object `text` (the last one, if the key
/// repeats, as `serde_json` would keep), or `None` if there is no such member.
pub(crate) fn field<'a>(text: &'a str, name: &str) -> Result<Option<&'a str>, JsonError> {
    let mut found = None;
    members(text, |key, value| {
        if key_is(key, name) {
            found = Some(value);
        }
        true
    })?;
    Ok(found)
}

/// The text of element `index` of the array `text`.
pub(crate) fn index(text: &str, index: usize) -> Result<Option<&str>, JsonError> {
    let mut found = None;
    let mut i = 0;
    elements(text, |value| {
        if i == index {
            found = Some(value);
            return false;
        }
        i += 1;
        true
    })?;
    Ok(found)
}

/// The number of elements of an array or members of an object.
pub(crate) fn len(text: &str) -> Result<usize, JsonError> {
    let mut n = 0;
    if kind(text) == Kind::Object {
        members(text, |_, _| {
            n += 1;
            true
        })?;
    } else {
        elements(text, |_| {
            n += 1;
            true
        })?;
    }
    Ok(n)
}

/// The keys of an object, unescaped, for messages.
pub(crate) fn keys(text: &str) -> Result<Vec<String>, JsonError> {
    let mut keys = Vec::new();
    members(text, |key, _| {
        keys.push(unescape_key(key));
        true
    })?;
    Ok(keys)
}

fn unescape_key(quoted: &str) -> String {
    if quoted.contains('\\') {
        serde_json::from_str(quoted).unwrap_or_else(|_| quoted.to_owned())
    } else {
        quoted[1..quoted.len() - 1].to_owned()
    }
}

/// Whether the quoted key `quoted` (as it appears in the text) is `name`.
fn key_is(quoted: &str, name: &str) -> bool {
    let inner = &quoted[1..quoted.len() - 1];
    if inner.contains('\\') { unescape_key(quoted) == name } else { inner == name }
}

/// Calls `f(quoted_key, value_text)` for each member of the object `text`
/// until `f` returns false.
pub(crate) fn members<'a>(text: &'a str, mut f: impl FnMut(&'a str, &'a str) -> bool) -> Result<(), JsonError> {
    let mut scan = Scanner { bytes: text.as_bytes(), pos: 0 };
    scan.ws();
    scan.expect(b'{', "expected `{`")?;
    scan.ws();
    if scan.eat(b'}') {
        return Ok(());
    }
    loop {
        scan.ws();
        let key_start = scan.pos;
        scan.string()?;
        let key = &text[key_start..scan.pos];
        scan.ws();
        scan.expect(b':', "expected `:`")?;
        scan.ws();
        let value_start = scan.pos;
        scan.skip_value()?;
        if !f(key, &text[value_start..scan.pos]) {
            return Ok(());
        }
        scan.ws();
        if scan.eat(b'}') {
            return Ok(());
        }
        scan.expect(b',', "expected `,` or `}`")?;
    }
}

/// Calls `f(value_text)` for each element of the array `text` until `f`
/// returns false.
pub(crate) fn elements<'a>(text: &'a str, mut f: impl FnMut(&'a str) -> bool) -> Result<(), JsonError> {
    let mut scan = Scanner { bytes: text.as_bytes(), pos: 0 };
    scan.ws();
    scan.expect(b'[', "expected `[`")?;
    scan.ws();
    if scan.eat(b']') {
        return Ok(());
    }
    loop {
        scan.ws();
        let start = scan.pos;
        scan.skip_value()?;
        if !f(&text[start..scan.pos]) {
            return Ok(());
        }
        scan.ws();
        if scan.eat(b']') {
            return Ok(());
        }
        scan.expect(b',', "expected `,` or `]`")?;
    }
}

struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn expect(&mut self, b: u8, what: &'static str) -> Result<(), JsonError> {
        if self.eat(b) { Ok(()) } else { Err(self.error(what)) }
    }

    fn error(&self, what: &'static str) -> JsonError {
        JsonError { what: if self.pos >= self.bytes.len() { "unexpected end" } else { what }, at: self.pos }
    }

    /// Skips a string, from its opening quote to just past its closing one.
    fn string(&mut self) -> Result<(), JsonError> {
        self.expect(b'"', "expected a string")?;
        loop {
            match self.peek() {
                None => return Err(self.error("unterminated string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'\\') => self.pos += 2,
                Some(_) => self.pos += 1,
            }
        }
    }

    /// Skips one value. Composites are skipped by counting brackets outside
    /// strings, without recursion.
    fn skip_value(&mut self) -> Result<(), JsonError> {
        match self.peek() {
            Some(b'"') => self.string(),
            Some(b'{' | b'[') => {
                let mut depth = 0usize;
                loop {
                    match self.peek() {
                        None => return Err(self.error("unclosed bracket")),
                        Some(b'"') => self.string()?,
                        Some(b'{' | b'[') => {
                            depth += 1;
                            self.pos += 1;
                        }
                        Some(b'}' | b']') => {
                            depth -= 1;
                            self.pos += 1;
                            if depth == 0 {
                                return Ok(());
                            }
                        }
                        Some(_) => self.pos += 1,
                    }
                }
            }
            Some(b'-' | b'0'..=b'9' | b't' | b'f' | b'n') => {
                let start = self.pos;
                while matches!(self.peek(), Some(b'-' | b'+' | b'.' | b'0'..=b'9' | b'a'..=b'z' | b'E')) {
                    self.pos += 1;
                }
                debug_assert!(self.pos > start);
                Ok(())
            }
            _ => Err(self.error("expected a value")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str =
        r#" { "id": 7, "name": "a\"b", "tags": ["x", {"y": [1, 2]}, "]"], "nested": {"k": null}, "id": 8 } "#;

    #[test]
    fn finds_fields_as_slices_and_last_duplicate_wins() {
        assert_eq!(field(DOC, "id").unwrap(), Some("8"));
        assert_eq!(field(DOC, "name").unwrap(), Some(r#""a\"b""#));
        assert_eq!(field(DOC, "tags").unwrap(), Some(r#"["x", {"y": [1, 2]}, "]"]"#));
        assert_eq!(field(DOC, "missing").unwrap(), None);
        assert_eq!(keys(DOC).unwrap(), ["id", "name", "tags", "nested", "id"]);
    }

    #[test]
    fn indexes_and_counts() {
        let tags = field(DOC, "tags").unwrap().unwrap();
        assert_eq!(index(tags, 1).unwrap(), Some(r#"{"y": [1, 2]}"#));
        assert_eq!(index(tags, 2).unwrap(), Some(r#""]""#));
        assert_eq!(index(tags, 3).unwrap(), None);
        assert_eq!(len(tags).unwrap(), 3);
        assert_eq!(len(DOC).unwrap(), 5);
        assert_eq!(len("[]").unwrap(), 0);
        assert_eq!(len("{ }").unwrap(), 0);
    }

    #[test]
    fn reads_scalars() {
        assert_eq!(to_value(" 42 ").unwrap(), Value::Int(42));
        assert_eq!(to_value("18446744073709551615").unwrap(), Value::UInt(u64::MAX));
        assert_eq!(to_value("-1.5e3").unwrap(), Value::Float(-1500.0));
        assert_eq!(to_value(r#""plain""#).unwrap(), Value::Str("plain"));
        assert_eq!(to_value(r#""a\nb""#).unwrap(), Value::String("a\nb".into()));
        assert_eq!(to_value("null").unwrap(), Value::Null);
        assert_eq!(to_value("true").unwrap(), Value::Bool(true));
    }

    #[test]
    fn malformed_text_is_an_error_not_a_panic() {
        for text in ["", "{", "{\"a\"", "{\"a\":", "{\"a\" 1}", "[1,", "\"abc", "\"a\\", "tru", "{1:2}", "[1 2]", "nan"]
        {
            let a = field(text, "a");
            let b = index(text, 0);
            let c = to_value(text);
            assert!(a.is_err() || b.is_err() || c.is_err(), "{text:?} was accepted everywhere");
        }
        let deep = "[".repeat(100_000);
        assert!(index(&format!("[{deep}"), 0).is_err());
    }
}
