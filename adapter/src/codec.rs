//! The DAP base protocol: messages framed by `Content-Length: N\r\n\r\n`.
//! Reading fails with a message naming what was wrong (a missing or bad header,
//! a body that is not JSON); the caller answers what it can and goes on.
//!
//! A bad frame never swallows the next good one: a frame whose body is not
//! JSON is skipped whole (its length was known); after a header that leaves
//! the length unknown (missing, negative, not a number, too large, a line
//! longer than [`MAX_HEADER_LINE`]) the reader resynchronises at the next
//! `Content-Length:` in the stream, wherever it starts. Memory stays bounded
//! whatever comes in: header lines are capped, bodies too ([`MAX_BODY`]).

use std::io::{BufRead, Write};

use serde_json::Value;

/// The longest header line read; a longer one is skipped and resynchronised past.
pub(crate) const MAX_HEADER_LINE: usize = 8 << 10;
/// The largest body accepted.
pub(crate) const MAX_BODY: usize = 64 << 20;

/// A frame that could not be read, and the request's `seq` when it could be
/// found in a body that is not JSON (so the caller can answer that request).
#[derive(Debug)]
pub(crate) struct Malformed {
    pub(crate) message: String,
    pub(crate) seq: Option<i64>,
    /// Whether the frame's extent was known (it was skipped whole).
    framed: bool,
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

fn malformed(message: String) -> Malformed {
    Malformed { message, seq: None, framed: false }
}

/// Reads framed messages from `input`, resynchronising after bad frames.
pub(crate) struct Reader<R> {
    input: R,
    /// The last frame's length was unknown: skip to the next `Content-Length:`.
    resync: bool,
}

/// One header line, capped.
enum Line {
    End,
    TooLong,
    Text(String),
}

impl<R: BufRead> Reader<R> {
    pub(crate) fn new(input: R) -> Reader<R> {
        Reader { input, resync: false }
    }

    /// Reads one framed message. `Ok(None)` at the end of input.
    pub(crate) fn read(&mut self) -> Result<Option<Value>, Malformed> {
        let mut first = None;
        if std::mem::take(&mut self.resync) {
            if !self.skip_to_content_length().map_err(|e| malformed(format!("cannot read a header: {e}")))? {
                return Ok(None);
            }
            first = Some("Content-Length:".to_owned());
        }
        let result = self.read_frame(first);
        if let Err(Malformed { framed: false, .. }) = &result {
            // The frame's extent is unknown: find the next one.
            self.resync = true;
        }
        result
    }

    fn read_frame(&mut self, mut first: Option<String>) -> Result<Option<Value>, Malformed> {
        let mut length: Option<usize> = None;
        let mut headers = 0;
        loop {
            let line = match (first.take(), self.line()) {
                (Some(prefix), Ok(Line::Text(rest))) => prefix + &rest,
                (_, Ok(Line::End)) if headers > 0 || length.is_some() => {
                    return Err(malformed("input ended inside a header".to_owned()));
                }
                (_, Ok(Line::End)) => return Ok(None),
                (_, Ok(Line::TooLong)) => {
                    return Err(malformed(format!("a header line longer than {MAX_HEADER_LINE} bytes")));
                }
                (None, Ok(Line::Text(line))) => line,
                (_, Err(e)) => return Err(malformed(format!("cannot read a header: {e}"))),
            };
            let mut line = line.trim_end_matches(['\r', '\n']);
            // Junk glued in front of a header (the unframed tail of a bad
            // message): the frame starts at the header.
            if let Some(start) = line.to_ascii_lowercase().find("content-length:").filter(|&p| p > 0) {
                line = &line[start..];
                (length, headers) = (None, 0);
            }
            if line.is_empty() {
                if length.is_some() {
                    break;
                }
                if headers > 0 {
                    return Err(malformed("a header without `Content-Length: N`".to_owned()));
                }
                continue;
            }
            headers += 1;
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| malformed(format!("bad header {line:?}: expected `Content-Length: N`")))?;
            if name.trim().eq_ignore_ascii_case("content-length") {
                let parsed = value
                    .trim()
                    .parse()
                    .map_err(|_| malformed(format!("bad Content-Length {:?}: expected a number", value.trim())))?;
                length = Some(parsed);
            }
        }
        let length = length.unwrap_or(0);
        if length > MAX_BODY {
            return Err(malformed(format!("a message of {length} bytes: expected at most 64 MiB")));
        }
        let mut body = vec![0u8; length];
        self.input.read_exact(&mut body).map_err(|e| malformed(format!("the body ended early: {e}")))?;
        serde_json::from_slice(&body).map_err(|e| Malformed {
            message: format!("the body is not JSON: {e}"),
            seq: sniff_seq(&body),
            framed: true,
        })
    }

    /// One line (with its end), at most [`MAX_HEADER_LINE`] bytes; of a
    /// longer one, only that much is consumed.
    fn line(&mut self) -> std::io::Result<Line> {
        let mut line = Vec::new();
        let n = std::io::Read::take(&mut self.input, MAX_HEADER_LINE as u64 + 1).read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(Line::End);
        }
        if line.len() > MAX_HEADER_LINE {
            // The caller resynchronises at the next `Content-Length:`, which
            // may come before this line's end.
            return Ok(Line::TooLong);
        }
        Ok(Line::Text(String::from_utf8_lossy(&line).into_owned()))
    }

    /// Consumes input up to and including the next `Content-Length:` (any
    /// case); false if the input ends first.
    fn skip_to_content_length(&mut self) -> std::io::Result<bool> {
        const NEEDLE: &[u8] = b"content-length:";
        let mut matched = 0;
        loop {
            let buf = self.input.fill_buf()?;
            if buf.is_empty() {
                return Ok(false);
            }
            let mut used = 0;
            for &b in buf {
                used += 1;
                let b = b.to_ascii_lowercase();
                // The needle has no proper prefix that is also a suffix: on a
                // mismatch, only its first byte can start a new match.
                matched = if b == NEEDLE[matched] { matched + 1 } else { usize::from(b == NEEDLE[0]) };
                if matched == NEEDLE.len() {
                    self.input.consume(used);
                    return Ok(true);
                }
            }
            self.input.consume(used);
        }
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
        assert_eq!(read[0], Err(format!("a header line longer than {MAX_HEADER_LINE} bytes")));
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
