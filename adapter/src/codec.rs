//! The DAP base protocol: messages framed by `Content-Length: N\r\n\r\n`.
//! Reading fails with a message naming what was wrong (a missing or bad header,
//! a body that is not JSON); the caller answers what it can and goes on.

use std::io::{BufRead, Write};

use serde_json::Value;

/// Reads one framed message. `Ok(None)` at a clean end of input.
pub(crate) fn read_message(input: &mut impl BufRead) -> Result<Option<Value>, String> {
    let mut length: Option<usize> = None;
    loop {
        let mut line = String::new();
        let n = input.read_line(&mut line).map_err(|e| format!("cannot read a header: {e}"))?;
        if n == 0 {
            return if length.is_none() { Ok(None) } else { Err("input ended inside a header".to_owned()) };
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            if length.is_some() {
                break;
            }
            continue;
        }
        let (name, value) =
            line.split_once(':').ok_or_else(|| format!("bad header {line:?}: expected `Content-Length: N`"))?;
        if name.trim().eq_ignore_ascii_case("content-length") {
            let parsed = value
                .trim()
                .parse()
                .map_err(|_| format!("bad Content-Length {:?}: expected a number", value.trim()))?;
            length = Some(parsed);
        }
    }
    let length = length.unwrap_or(0);
    if length > 64 << 20 {
        return Err(format!("a message of {length} bytes: expected at most 64 MiB"));
    }
    let mut body = vec![0u8; length];
    input.read_exact(&mut body).map_err(|e| format!("the body ended early: {e}"))?;
    serde_json::from_slice(&body).map_err(|e| format!("the body is not JSON: {e}"))
}

/// Writes one framed message.
pub(crate) fn write_message(output: &mut impl Write, message: &Value) -> std::io::Result<()> {
    let body = serde_json::to_vec(message)?;
    write!(output, "Content-Length: {}\r\n\r\n", body.len())?;
    output.write_all(&body)?;
    output.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8]) -> Result<Option<Value>, String> {
        read_message(&mut std::io::Cursor::new(bytes))
    }

    #[test]
    fn frames_round_trip() {
        let mut out = Vec::new();
        write_message(&mut out, &serde_json::json!({"a": 1})).unwrap();
        assert_eq!(out, b"Content-Length: 7\r\n\r\n{\"a\":1}");
        assert_eq!(read(&out).unwrap(), Some(serde_json::json!({"a": 1})));
        assert_eq!(read(b"").unwrap(), None);
    }

    #[test]
    fn bad_frames_say_what_is_wrong() {
        assert!(read(b"Content-Length: x\r\n\r\n{}").unwrap_err().contains("bad Content-Length \"x\""));
        assert!(read(b"Nonsense\r\n\r\n").unwrap_err().contains("expected `Content-Length: N`"));
        assert!(read(b"Content-Length: 10\r\n\r\n{}").unwrap_err().contains("ended early"));
        assert!(read(b"Content-Length: 3\r\n\r\n{x}").unwrap_err().contains("not JSON"));
        assert!(read(b"Content-Length: 999999999999\r\n\r\n").unwrap_err().contains("at most 64 MiB"));
    }

    #[test]
    fn other_headers_are_ignored() {
        let msg = b"Content-Type: application/vscode-jsonrpc\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(read(msg).unwrap(), Some(serde_json::json!({})));
    }
}
