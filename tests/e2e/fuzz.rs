//! Both protocol servers, the real binaries, fed thousands of random and
//! mutated frames (bad lengths, missing and overlong headers, bodies that are
//! not JSON or not messages, random bytes), then one valid request: it must be
//! answered. The generator is deterministic (xorshift, as the codec's property
//! tests use), so a failure is reproducible from its seed.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use ax_e2e::binary;
use serde_json::{Value, json};

fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    out.extend_from_slice(body);
    out
}

/// `count` frames built from `bodies`: some as they are, most damaged. No
/// frame declares more bytes than it carries (such a frame would rightly take
/// what follows as its body, whatever the framing does).
fn fuzz(seed: u64, count: usize, bodies: &[Value]) -> Vec<u8> {
    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::new();
    for _ in 0..count {
        let mut body = serde_json::to_vec(&bodies[next(&mut rng) as usize % bodies.len()]).expect("JSON");
        match next(&mut rng) % 10 {
            0 => out.extend(frame(&body)),
            1 => {
                // A byte or a few changed: often not JSON, sometimes the wrong types.
                for _ in 0..1 + next(&mut rng) % 3 {
                    let i = next(&mut rng) as usize % body.len();
                    body[i] = next(&mut rng) as u8;
                }
                out.extend(frame(&body));
            }
            2 => {
                let header: &[u8] = [
                    &b"Content-Length: -1\r\n\r\n"[..],
                    b"Content-Length: x\r\n\r\n",
                    b"Content-Length:\r\n\r\n",
                    b"Content-Type: application/vscode-jsonrpc\r\n\r\n",
                    b"Content-Length: 99999999999\r\n\r\n",
                    b"Content-Length: 0\r\n\r\n",
                    b"Nonsense\r\n\r\n",
                ][next(&mut rng) as usize % 7];
                out.extend_from_slice(header);
                out.extend_from_slice(&body);
            }
            3 => {
                let mut line = vec![b'a'; 9000];
                line.extend_from_slice(b"\r\n\r\n");
                out.extend(line);
                out.extend_from_slice(&body);
            }
            4 => {
                let random: Vec<u8> = (0..next(&mut rng) % 200).map(|_| next(&mut rng) as u8).collect();
                out.extend(random);
            }
            5 => {
                // Truncated: the body is cut, the length says so.
                body.truncate(next(&mut rng) as usize % body.len());
                out.extend(frame(&body));
            }
            6 => out.extend(frame(b"not json")),
            7 => out.extend(frame(&serde_json::to_vec(&json!([1, "two", null])).expect("JSON"))),
            8 => out.extend(frame("\u{feff}{\"é\": \"\u{1F600}\"}".as_bytes())),
            _ => out.extend(frame(b"{}")),
        }
    }
    out
}

/// A server binary on pipes, its output read frame by frame.
struct Server {
    child: Child,
    stdin: std::process::ChildStdin,
    messages: Receiver<Value>,
}

impl Server {
    fn start(name: &str, args: &[&str]) -> Server {
        let mut child = Command::new(binary(name))
            .args(args)
            .env("AX_BIN", binary("ax"))
            .env_remove("AX_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{name} starts: {e}"));
        let stdin = child.stdin.take().expect("piped");
        let messages = ax_e2e::framed_messages(child.stdout.take().expect("piped"));
        Server { child, stdin, messages }
    }

    fn send(&mut self, bytes: &[u8]) {
        // The server may close its input early only by dying, which the test reports below.
        let _ = self.stdin.write_all(bytes);
        let _ = self.stdin.flush();
    }

    /// Waits for the first message `wanted` picks; returns it and how many came before.
    fn wait_for(&mut self, wanted: impl Fn(&Value) -> bool, what: &str) -> (Value, Vec<Value>) {
        let mut before = Vec::new();
        loop {
            match self.messages.recv_timeout(Duration::from_secs(60)) {
                Ok(message) if wanted(&message) => return (message, before),
                Ok(message) => before.push(message),
                Err(_) => panic!(
                    "no {what} (exit status {:?}); {} other messages came, the last: {:?}",
                    self.child.try_wait(),
                    before.len(),
                    before.last()
                ),
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn ax_dap_answers_a_valid_request_after_thousands_of_bad_frames() {
    let bodies = [
        json!({ "seq": 11, "type": "request", "command": "threads" }),
        json!({ "seq": 12, "type": "request", "command": "stackTrace", "arguments": { "threadId": 1 } }),
        json!({ "seq": 13, "type": "request", "command": "evaluate", "arguments": { "expression": "a + 1" } }),
        json!({ "seq": 14, "type": "request", "command": "setBreakpoints", "arguments": { "source": 5 } }),
        json!({ "seq": 15, "type": "request", "command": "frobnicate" }),
        json!({ "seq": 16, "type": "request", "command": "variables", "arguments": { "variablesReference": "x" } }),
        json!({ "seq": 17, "type": "event", "event": "stopped" }),
        json!({ "seq": 18, "type": "request" }),
    ];
    for seed in 1..=3 {
        let mut dap = Server::start("ax-dap", &["--stdio"]);
        dap.send(&fuzz(seed, 1500, &bodies));
        // The trailing blank lines end a header a random tail may have begun.
        dap.send(b"\r\n\r\n");
        let last = json!({ "seq": 777_777_777, "type": "request", "command": "threads" });
        dap.send(&frame(&serde_json::to_vec(&last).expect("JSON")));
        let (reply, before) =
            dap.wait_for(|m| m["request_seq"] == 777_777_777, &format!("answer to the last request (seed {seed})"));
        assert_eq!(reply["success"], true, "seed {seed}: {reply}");
        assert!(before.len() > 1000, "seed {seed}: the bad frames were answered or reported: {}", before.len());
    }
}

#[test]
fn ax_lsp_answers_a_valid_request_after_thousands_of_bad_frames() {
    let bodies = [
        json!({ "jsonrpc": "2.0", "id": 21, "method": "textDocument/hover",
                "params": { "textDocument": { "uri": "file:///nowhere.rs" }, "position": { "line": 1, "character": 2 } } }),
        json!({ "jsonrpc": "2.0", "id": 22, "method": "ax/frobnicate", "params": [1, 2] }),
        json!({ "jsonrpc": "2.0", "method": "$/cancelRequest", "params": { "id": 21 } }),
        json!({ "jsonrpc": "2.0", "method": "textDocument/didOpen", "params": { "textDocument": 5 } }),
        json!({ "jsonrpc": "2.0", "id": 23, "result": { "unasked": true } }),
        json!({ "jsonrpc": "1.0", "id": 24, "method": "initialize" }),
        json!({ "id": 25, "method": "textDocument/inlayHint" }),
    ];
    for seed in 1..=3 {
        let mut lsp = Server::start("ax-lsp", &["--stdio"]);
        let initialize =
            json!({ "jsonrpc": "2.0", "id": "init", "method": "initialize", "params": { "capabilities": {} } });
        lsp.send(&frame(&serde_json::to_vec(&initialize).expect("JSON")));
        lsp.wait_for(|m| m["id"] == "init", "initialize's answer");
        lsp.send(&frame(br#"{"jsonrpc":"2.0","method":"initialized","params":{}}"#));
        lsp.send(&fuzz(seed, 1500, &bodies));
        lsp.send(b"\r\n\r\n");
        lsp.send(&frame(br#"{"jsonrpc":"2.0","id":"last","method":"shutdown"}"#));
        let (reply, before) = lsp.wait_for(|m| m["id"] == "last", &format!("answer to the last request (seed {seed})"));
        assert_eq!(reply["result"], Value::Null, "seed {seed}: {reply}");
        assert!(reply.get("error").is_none(), "seed {seed}: {reply}");
        let parse_errors = before.iter().filter(|m| m["error"]["code"] == -32700).count();
        assert!(parse_errors > 100, "seed {seed}: bad frames are answered with parse errors ({parse_errors})");
    }
}

#[test]
fn ax_lsp_keeps_serving_after_a_body_that_is_not_json() {
    let mut lsp = Server::start("ax-lsp", &["--stdio"]);
    lsp.send(b"Content-Length: 8\r\n\r\nnot json");
    let (parse_error, _) = lsp.wait_for(|m| m.get("error").is_some(), "a parse error");
    assert_eq!(parse_error["error"]["code"], -32700, "{parse_error}");
    assert_eq!(parse_error["id"], Value::Null);
    let initialize = json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": { "capabilities": {} } });
    lsp.send(&frame(&serde_json::to_vec(&initialize).expect("JSON")));
    let (reply, _) = lsp.wait_for(|m| m["id"] == 1, "initialize's answer after the bad frame");
    assert!(reply["result"]["capabilities"].is_object(), "{reply}");
}
