//! The base protocol DAP and LSP share: messages framed by
//! `Content-Length: N\r\n\r\n` and a body of N bytes. [`Reader`] hands out
//! bodies as bytes; what they mean is the caller's (only `adapter` knows DAP,
//! only `server` knows LSP).
//!
//! A bad frame never swallows the next good one: after a header that leaves
//! the length unknown (missing, negative, not a number, too large, a line
//! longer than [`MAX_HEADER_LINE`]) the reader resynchronises at the next
//! `Content-Length:` in the stream, wherever it starts, and junk glued in front
//! of a header is dropped with it. Memory stays bounded whatever comes in:
//! header lines are capped, bodies too ([`MAX_BODY`]).
//!
//! **Invariant:** every read consumes input or reports its end, and no input
//! makes the reader hold more than [`MAX_HEADER_LINE`] + [`MAX_BODY`] bytes.

use std::io::{BufRead, Write};

/// The longest header line read; a longer one is skipped and resynchronised past.
pub const MAX_HEADER_LINE: usize = 8 << 10;
/// The largest body accepted.
pub const MAX_BODY: usize = 64 << 20;

/// A frame that could not be read: what was wrong with it, in a sentence
/// naming what was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadFrame(pub String);

impl std::fmt::Display for BadFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadFrame {}

fn malformed(message: String) -> BadFrame {
    BadFrame(message)
}

/// Reads framed messages from `input`, resynchronising after bad frames.
pub struct Reader<R> {
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
    pub fn new(input: R) -> Reader<R> {
        Reader { input, resync: false }
    }

    /// Reads one frame's body. `Ok(None)` at the end of input.
    pub fn read(&mut self) -> Result<Option<Vec<u8>>, BadFrame> {
        let mut first = None;
        if std::mem::take(&mut self.resync) {
            if !self.skip_to_content_length().map_err(|e| malformed(format!("cannot read a header: {e}")))? {
                return Ok(None);
            }
            first = Some("Content-Length:".to_owned());
        }
        let result = self.read_frame(first);
        if result.is_err() {
            // The frame's extent is unknown: find the next one.
            self.resync = true;
        }
        result
    }

    fn read_frame(&mut self, mut first: Option<String>) -> Result<Option<Vec<u8>>, BadFrame> {
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
        Ok(Some(body))
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

/// Writes one frame.
pub fn write_frame(output: &mut impl Write, body: &[u8]) -> std::io::Result<()> {
    write!(output, "Content-Length: {}\r\n\r\n", body.len())?;
    output.write_all(body)?;
    output.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_frame(&mut out, body).unwrap();
        out
    }

    fn read_all(bytes: &[u8]) -> Vec<Result<Vec<u8>, BadFrame>> {
        let mut reader = Reader::new(std::io::BufReader::with_capacity(3, bytes));
        let mut out = Vec::new();
        while let Some(next) = reader.read().transpose() {
            out.push(next);
            assert!(out.len() <= bytes.len() + 1, "reading does not progress");
        }
        out
    }

    #[test]
    fn good_frames_after_bad_ones_are_all_read() {
        let bad: [&[u8]; 6] = [
            b"Content-Length: -1\r\n\r\nbody",
            b"Content-Length: nine\r\n\r\nbody",
            b"X: y\r\n\r\nbody",
            b"no colon\r\n",
            b"Content-Length: 99999999999\r\n\r\n",
            b"junk",
        ];
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for round in 0..300 {
            let mut stream = Vec::new();
            let mut good = Vec::new();
            for i in 0..next() % 12 {
                stream.extend_from_slice(bad[(next() % 6) as usize]);
                let body = format!("{{\"round\":{round},\"i\":{i}}}").into_bytes();
                stream.extend(frame(&body));
                good.push(body);
            }
            let read: Vec<Vec<u8>> = read_all(&stream).into_iter().filter_map(Result::ok).collect();
            assert_eq!(read, good, "round {round}: {:?}", String::from_utf8_lossy(&stream));
        }
    }

    #[test]
    fn a_header_line_is_capped() {
        let mut stream = vec![b'h'; 4 << 20];
        stream.extend(frame(b"{}"));
        let read = read_all(&stream);
        assert_eq!(read[0], Err(BadFrame(format!("a header line longer than {MAX_HEADER_LINE} bytes"))));
        assert_eq!(read.last(), Some(&Ok(b"{}".to_vec())));
    }
}
