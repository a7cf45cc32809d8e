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

    /// A reader that hands out at most a few bytes at a time, as pipes do.
    struct Trickle<'a> {
        bytes: &'a [u8],
        rng: u64,
    }

    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = (next(&mut self.rng) % 7 + 1) as usize;
            let n = n.min(buf.len()).min(self.bytes.len());
            buf[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            Ok(n)
        }
    }

    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn any_sequence_of_messages_round_trips_through_any_chunking() {
        for seed in 1..200u64 {
            let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let messages: Vec<Value> = (0..next(&mut rng) % 8)
                .map(|i| {
                    let text: String = (0..next(&mut rng) % 40)
                        .map(|_| ['a', 'é', '\r', '\n', ':', '"', '\\', '😀', ' '][(next(&mut rng) % 9) as usize])
                        .collect();
                    serde_json::json!({ "seq": i, "text": text, "n": next(&mut rng) % 1000 })
                })
                .collect();
            let mut stream = Vec::new();
            for message in &messages {
                write_message(&mut stream, message).unwrap();
            }
            let mut input = std::io::BufReader::with_capacity(3, Trickle { bytes: &stream, rng });
            for message in &messages {
                assert_eq!(read_message(&mut input).unwrap().as_ref(), Some(message), "seed {seed}");
            }
            assert_eq!(read_message(&mut input).unwrap(), None, "seed {seed}");
        }
    }

    #[test]
    fn garbage_never_panics_and_always_ends() {
        for seed in 1..300u64 {
            let mut rng = seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1;
            let pieces: [&[u8]; 8] = [
                b"Content-Length: ",
                b"12",
                b"\r\n",
                b"\r\n\r\n",
                b"{}",
                b"\xff\xfe",
                b"x",
                b"Content-Length: 99999999",
            ];
            let bytes: Vec<u8> =
                (0..next(&mut rng) % 30).flat_map(|_| pieces[(next(&mut rng) % 8) as usize].iter().copied()).collect();
            let mut input = std::io::BufReader::new(Trickle { bytes: &bytes, rng });
            // Every read consumes input or ends it: a bounded number of reads reaches the end.
            let mut reads = 0;
            while !matches!(read_message(&mut input), Ok(None)) {
                reads += 1;
                assert!(reads <= bytes.len() + 1, "seed {seed}: reading does not progress");
            }
        }
    }

    #[test]
    fn other_headers_are_ignored() {
        let msg = b"Content-Type: application/vscode-jsonrpc\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(read(msg).unwrap(), Some(serde_json::json!({})));
    }
}
