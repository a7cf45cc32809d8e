//! The debug host's wire (`ax __debug-host`, JSON lines over a Unix socket)
//! driven the way the adapter drives it, by a test standing in for the
//! adapter: thousands of stops of a plugin looping over a probe, each answered
//! by a burst of continue / setVariable / evaluate / pause written at once
//! (every request answered, in order, and the plugin always resumes after a
//! continue); random and mutated lines, after which the host still answers;
//! and the attach listener of `ax run --debug-listen`, fed garbage handshakes
//! over TCP (each refused), then the real debugger (served).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ax_e2e::{binary, library, marker_line};
use serde_json::{Value, json};

/// A debug host child and its connection, standing in for the adapter.
struct Wire {
    child: Child,
    writer: UnixStream,
    reader: BufReader<UnixStream>,
    next_id: u64,
    /// Messages read but not yet asked for, with their arrival number.
    pending: VecDeque<(u64, Value)>,
    arrived: u64,
    _dir: tempfile::TempDir,
}

impl Wire {
    fn start() -> Wire {
        let dir = tempfile::tempdir().expect("a temp dir");
        let socket = dir.path().join("host.sock");
        let listener = UnixListener::bind(&socket).expect("bind the host socket");
        let child = Command::new(binary("ax"))
            .arg("__debug-host")
            .arg("--socket")
            .arg(&socket)
            .env_remove("AX_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("ax __debug-host starts");
        let (stream, _) = listener.accept().expect("the debug host connects");
        stream.set_read_timeout(Some(Duration::from_secs(20))).expect("a read timeout");
        let reader = BufReader::new(stream.try_clone().expect("a second handle"));
        Wire { child, writer: stream, reader, next_id: 0, pending: VecDeque::new(), arrived: 0, _dir: dir }
    }

    /// Writes `requests` (op objects) in one write; returns their ids.
    fn send_all(&mut self, requests: &[Value]) -> Vec<u64> {
        let mut bytes = Vec::new();
        let mut ids = Vec::new();
        for request in requests {
            self.next_id += 1;
            let mut envelope = request.clone();
            envelope["id"] = json!(self.next_id);
            bytes.extend(serde_json::to_vec(&envelope).expect("JSON"));
            bytes.push(b'\n');
            ids.push(self.next_id);
        }
        self.send_raw(&bytes);
        ids
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("the debug host reads");
    }

    /// Reads one more line from the host into `pending`.
    fn read_one(&mut self, waiting_for: &dyn std::fmt::Display) {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(n) if n > 0 => {
                let message = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"));
                self.arrived += 1;
                self.pending.push_back((self.arrived, message));
            }
            other => panic!("no {waiting_for} from the debug host ({other:?}): lost"),
        }
    }

    /// The first message (read or to come) that `wanted` picks, with its arrival number.
    fn take(&mut self, wanted: impl Fn(&Value) -> bool, what: &dyn std::fmt::Display) -> (u64, Value) {
        loop {
            if let Some(pos) = self.pending.iter().position(|(_, m)| wanted(m)) {
                return self.pending.remove(pos).expect("present");
            }
            self.read_one(what);
        }
    }

    fn reply_to(&mut self, id: u64) -> (u64, Value) {
        self.take(|m| m["id"] == id, &format_args!("reply to request {id}"))
    }

    /// Sends one request and waits for its reply.
    fn request(&mut self, request: Value) -> Value {
        let id = self.send_all(&[request])[0];
        self.reply_to(id).1
    }
}

impl Drop for Wire {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn load_hostile(wire: &mut Wire) {
    let loaded = wire.request(json!({
        "op": "load", "library": library("fixture-hostile"), "name": "hostile", "config": "{}"
    }));
    assert_eq!(loaded["kind"], "loaded", "{loaded}");
}

/// A small deterministic generator (xorshift), as the codec's property tests use.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn ten_thousand_bursts_of_continue_set_variable_evaluate_and_pause_lose_nothing() {
    const HITS: u64 = 10_000;
    let mut wire = Wire::start();
    load_hostile(&mut wire);
    let line = marker_line("tests/fixtures/hostile/src/lib.rs", "LOOP");
    let set = wire.request(json!({
        "op": "set_breakpoints", "file": "tests/fixtures/hostile/src/lib.rs", "breakpoints": [{ "line": line }]
    }));
    assert_eq!(set["breakpoints"][0]["verified"], true, "{set}");
    let call = wire.send_all(&[json!({ "op": "call", "method": "probe_loop", "input": { "n": HITS } })])[0];

    let extra = |rng: &mut u64| match next(rng) % 3 {
        0 => json!({ "op": "set_variable", "name": "step", "value": "2" }),
        1 => json!({ "op": "evaluate", "expression": "i + step" }),
        _ => json!({ "op": "pause" }),
    };
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut stops = 0u64;
    // The hits (numbered from 1) whose `step` a setVariable made 2.
    let mut doubled = std::collections::BTreeSet::new();
    loop {
        let (_, message) = wire.take(
            |m| m["id"] == call || m["kind"] == "stopped",
            &format_args!("stop {} or the call's return", stops + 1),
        );
        if message["id"] == call {
            assert_eq!(message["kind"], "returned", "{message}");
            assert_eq!(message["output"]["sum"], HITS + doubled.len() as u64, "every applied setVariable counted");
            break;
        }
        stops += 1;
        assert_eq!(message["variables"][0], json!(["i", stops - 1]), "one stop per hit, in order");
        // A burst: some requests, a continue, some more, in one write.
        let mut burst: Vec<Value> = (0..next(&mut rng) % 4).map(|_| extra(&mut rng)).collect();
        let resume_at = burst.len();
        burst.push(json!({ "op": "resume", "how": "continue" }));
        burst.extend((0..next(&mut rng) % 3).map(|_| extra(&mut rng)));
        let ids = wire.send_all(&burst);
        let replies: Vec<(u64, Value)> = ids.iter().map(|&id| wire.reply_to(id)).collect();
        for (i, (arrival, reply)) in replies.iter().enumerate() {
            if i > 0 {
                assert!(*arrival > replies[i - 1].0, "stop {stops}: replies in the order sent: {burst:?}");
            }
            let (op, kind) = (&burst[i]["op"], &reply["kind"]);
            if i < resume_at {
                // The thread is stopped: everything before the continue succeeds.
                let expected = if op == "evaluate" { "evaluated" } else { "done" };
                assert_eq!(kind, expected, "stop {stops}: {} answered {reply}", burst[i]);
                if op == "set_variable" {
                    doubled.insert(stops);
                }
            } else if i == resume_at {
                assert_eq!(kind, "done", "stop {stops}: continue answered {reply}");
            } else {
                // After the continue: the next hit may or may not be stopped yet;
                // either way an answer, and a set that succeeded landed on it.
                assert!(kind == "done" || kind == "evaluated" || kind == "failed", "{reply}");
                if op == "set_variable" && kind == "done" {
                    doubled.insert(stops + 1);
                }
            }
        }
    }
    assert_eq!(stops, HITS, "one stop per probe hit");
    let shutdown = wire.request(json!({ "op": "shutdown" }));
    assert_eq!(shutdown["kind"], "done");
}

#[test]
fn random_and_mutated_lines_leave_the_debug_host_serving() {
    let mut wire = Wire::start();
    load_hostile(&mut wire);
    let bodies = [
        json!({ "op": "evaluate", "expression": "i + 1" }),
        json!({ "op": "probe_lines", "file": "tests/fixtures/hostile/src/lib.rs" }),
        json!({ "op": "source_files" }),
        json!({ "op": "set_variable", "name": "step", "value": "2" }),
        json!({ "op": "set_breakpoints", "file": 5, "breakpoints": "none" }),
        json!({ "op": "frobnicate" }),
        json!({ "op": "resume", "how": "sideways" }),
    ];
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut bytes = Vec::new();
    let mut intact = Vec::new();
    for n in 0..3000u64 {
        let mut line = bodies[(next(&mut rng) % bodies.len() as u64) as usize].clone();
        line["id"] = json!(1_000 + n);
        let mut line = serde_json::to_vec(&line).expect("JSON");
        match next(&mut rng) % 4 {
            0 => intact.push(1_000 + n),
            1 => {
                let i = (next(&mut rng) % line.len() as u64) as usize;
                // Any byte but a newline (which would split the line in two).
                line[i] = (next(&mut rng) as u8).max(b'\n' + 1);
            }
            2 => line = (0..next(&mut rng) % 100).map(|_| (next(&mut rng) as u8).max(b'\n' + 1)).collect(),
            _ => line.truncate((next(&mut rng) % line.len() as u64) as usize),
        }
        bytes.extend(line);
        bytes.push(b'\n');
    }
    wire.send_raw(&bytes);
    let reply = wire.request(json!({ "op": "probe_lines", "file": "tests/fixtures/hostile/src/lib.rs" }));
    let line = marker_line("tests/fixtures/hostile/src/lib.rs", "LOOP");
    assert!(reply["lines"].as_array().expect("lines").contains(&json!(line)), "{reply}");
    let answered: std::collections::BTreeSet<u64> = wire.pending.iter().filter_map(|(_, m)| m["id"].as_u64()).collect();
    let unanswered: Vec<&u64> = intact.iter().filter(|id| !answered.contains(id)).collect();
    assert!(unanswered.is_empty(), "every line left intact was answered; not {unanswered:?}");
    assert!(answered.len() > intact.len(), "damaged lines whose id could be read were answered too");
}

#[test]
fn the_attach_listener_refuses_garbage_handshakes_and_then_serves_the_real_debugger() {
    use std::net::{Shutdown, TcpStream};
    let token = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let mut child = Command::new(binary("ax"))
        .arg("run")
        .arg(library("word-count"))
        .arg("count")
        .arg(r#"{"text":"a b"}"#)
        .arg("--debug-listen")
        .arg("127.0.0.1:0")
        .env("AX_DEBUG_TOKEN", token)
        .env_remove("AX_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ax run starts");
    let mut stderr = BufReader::new(child.stderr.take().expect("piped"));
    let address = loop {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).expect("stderr") > 0, "ax run ended before listening");
        if let Some(rest) = line.split("attach to ").nth(1) {
            break rest.split_whitespace().next().expect("an address").to_owned();
        }
    };
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    for n in 0..200 {
        let mut stream = TcpStream::connect(&address).expect("the listener accepts");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("a timeout");
        let attempt: Vec<u8> = match n % 4 {
            0 => (0..next(&mut rng) % 300).map(|_| next(&mut rng) as u8).collect(),
            1 => serde_json::to_vec(&json!({ "token": &token[..(next(&mut rng) % 64) as usize] })).expect("JSON"),
            2 => serde_json::to_vec(&json!({ "token": 42, "id": 1, "op": "hello" })).expect("JSON"),
            _ => {
                let mut offer = serde_json::to_vec(&json!({ "token": token })).expect("JSON");
                let i = (next(&mut rng) % offer.len() as u64) as usize;
                offer[i] ^= 1 + (next(&mut rng) as u8 % 127);
                offer
            }
        };
        let _ = stream.write_all(&attempt);
        let _ = stream.write_all(b"\n");
        let _ = stream.shutdown(Shutdown::Write);
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        assert!(
            !answer.contains("attached"),
            "attempt {n} {:?} was let in: {answer}",
            String::from_utf8_lossy(&attempt)
        );
    }
    // The real debugger still gets in, and the host runs its call.
    let stream = TcpStream::connect(&address).expect("the listener still accepts");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("a timeout");
    let mut writer = stream.try_clone().expect("a second handle");
    let mut reader = BufReader::new(stream);
    let token_line = format!("{}\n", json!({ "token": token }));
    writer.write_all(token_line.as_bytes()).expect("write");
    writer.write_all(b"{\"id\":1,\"op\":\"hello\"}\n").expect("write");
    let mut line = String::new();
    reader.read_line(&mut line).expect("an answer to hello");
    let hello: Value = serde_json::from_str(&line).expect("JSON");
    assert_eq!(hello["kind"], "attached", "{hello}");
    writer.write_all(b"{\"id\":2,\"op\":\"start\"}\n{\"id\":3,\"op\":\"detach\"}\n").expect("write");
    let status = child.wait().expect("ax run ends");
    assert!(status.success(), "the call ran after the debugger detached: {status}");
}
