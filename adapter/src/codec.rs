//! The DAP base protocol: messages framed by `Content-Length: N\r\n\r\n`
//! (`ax-framing`, shared with the language server), bodies that are JSON.
//! Reading fails with a message naming what was wrong (a missing or bad header,
//! a body that is not JSON); the caller answers what it can and goes on.
//!
//! A bad frame never swallows the next good one: a frame whose body is not
//! JSON is skipped whole (its length was known) and its `seq` read off it when
//! it can be, so the request gets an error response; after a header that
//! leaves the length unknown the framing layer resynchronises at the next
//! `Content-Length:`. Header lines are capped at 8 KiB, bodies at 64 MiB.

use std::io::{BufRead, Write};

use serde_json::Value;

/// A message that could not be read, and the request's `seq` when it could
/// be found in a body that is not JSON (so the caller can answer that request).
#[derive(Debug)]
pub(crate) struct Malformed {
    pub(crate) message: String,
    pub(crate) seq: Option<i64>,
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Reads DAP messages from `input`, resynchronising after bad frames.
pub(crate) struct Reader<R>(ax_framing::Reader<R>);

impl<R: BufRead> Reader<R> {
    pub(crate) fn new(input: R) -> Reader<R> {
        Reader(ax_framing::Reader::new(input))
    }

    /// Reads one framed message. `Ok(None)` at the end of input.
    pub(crate) fn read(&mut self) -> Result<Option<Value>, Malformed> {
        let Some(body) = self.0.read().map_err(|e| Malformed { message: e.0, seq: None })? else {
            return Ok(None);
        };
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| Malformed { message: format!("the body is not JSON: {e}"), seq: sniff_seq(&body) })
    }
}

/// The `seq` of a request whose body is not JSON, if it can be read off it.
fn sniff_seq(body: &[u8]) -> Option<i64> {
    let text = String::from_utf8_lossy(body);
    let after = &text[text.find("\"seq\"")? + 5..];
    let digits = after.trim_start().strip_prefix(':')?.trim_start();
    let end = digits.find(|c: char| !c.is_ascii_digit()).unwrap_or(digits.len());
    digits[..end].parse().ok()
}

/// Reads one framed message (no resynchronisation state: for one-off reads).
#[cfg(test)]
pub(crate) fn read_message(input: &mut impl BufRead) -> Result<Option<Value>, String> {
    Reader::new(input).read().map_err(|e| e.message)
}

/// Writes one framed message.
pub(crate) fn write_message(output: &mut impl Write, message: &Value) -> std::io::Result<()> {
    ax_framing::write_frame(output, &serde_json::to_vec(message)?)
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

    /// Reads every message of `bytes` with one reader: the good ones and the errors.
    fn read_all(bytes: &[u8]) -> Vec<Result<Value, String>> {
        let mut reader = Reader::new(std::io::BufReader::with_capacity(5, bytes));
        let mut out = Vec::new();
        loop {
            match reader.read() {
                Ok(None) => return out,
                Ok(Some(v)) => out.push(Ok(v)),
                Err(e) => out.push(Err(e.message)),
            }
            assert!(out.len() <= bytes.len() + 1, "reading does not progress");
        }
    }

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut out = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn a_bad_frame_never_swallows_the_next_one() {
        let good = frame(br#"{"seq":2}"#);
        for bad in [
            &b"Content-Length: -1\r\n\r\n{\"seq\":1}"[..],
            b"Content-Length: x\r\n\r\n{\"seq\":1}",
            b"Content-Type: a\r\n\r\n{\"seq\":1}",
            b"Nonsense\r\n\r\n{\"seq\":1}",
            b"Content-Length: 99999999999\r\n\r\n{\"seq\":1}",
            b"Content-Length: 5\r\n\r\n{oops",
            b"junk without a colon\r\n",
        ] {
            let stream = [bad, &good[..]].concat();
            let read = read_all(&stream);
            assert!(read[0].is_err(), "{:?}: {read:?}", String::from_utf8_lossy(bad));
            assert_eq!(read.last(), Some(&Ok(serde_json::json!({"seq": 2}))), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn header_lines_are_capped() {
        let mut stream = vec![b'x'; 1 << 20];
        stream.extend(frame(b"{}"));
        let read = read_all(&stream);
        assert_eq!(read[0], Err(format!("a header line longer than {} bytes", ax_framing::MAX_HEADER_LINE)));
        assert_eq!(read.last(), Some(&Ok(serde_json::json!({}))));
        // Junk glued in front of a header is dropped with it.
        assert_eq!(read_all(&[&b"{\"seq\":1}"[..], &frame(b"{}")].concat()), [Ok(serde_json::json!({}))]);
    }

    #[test]
    fn a_body_that_is_not_json_names_its_seq_when_it_can() {
        let stream = frame(br#"{"seq": 7, "command": oops}"#);
        let mut reader = Reader::new(&stream[..]);
        let error = reader.read().unwrap_err();
        assert_eq!(error.seq, Some(7));
        assert!(error.message.contains("not JSON"), "{error}");
        assert_eq!(Reader::new(&frame(b"{x")[..]).read().unwrap_err().seq, None);
    }

    #[test]
    fn after_any_garbage_a_later_frame_is_read() {
        // Pieces that never declare more bytes than follow them: the next
        // frame can always be found (a length that runs past the garbage would
        // rightly take the next frame as its body).
        let pieces: [&[u8]; 10] = [
            b"Content-Length: -1\r\n\r\n",
            b"Content-Length: zz\r\n",
            b"\r\n",
            b"{\"seq\":1}",
            b"\xff\xfe",
            b"x:y\r\n",
            b"junk",
            b"Content-Length: 2\r\n\r\n{}",
            b"Content-Length: 3\r\n\r\n{x}",
            b"content-length:",
        ];
        for seed in 1..500u64 {
            let mut rng = seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1;
            let mut bytes: Vec<u8> =
                (0..next(&mut rng) % 30).flat_map(|_| pieces[(next(&mut rng) % 10) as usize].iter().copied()).collect();
            // A trailing `content-length:` with its value missing is a header in the making: end it.
            bytes.extend_from_slice(b"\r\n\r\n");
            bytes.extend(frame(br#"{"last":true}"#));
            let read = read_all(&bytes);
            assert_eq!(
                read.last(),
                Some(&Ok(serde_json::json!({"last": true}))),
                "seed {seed}: {:?}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }

    #[test]
    fn other_headers_are_ignored() {
        let msg = b"Content-Type: application/vscode-jsonrpc\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(read(msg).unwrap(), Some(serde_json::json!({})));
    }
}
