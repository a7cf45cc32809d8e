//! Debugger figures, each against a baseline in the same run:
//!
//! - a conditional breakpoint whose condition is false, per hit: ax (evaluated
//!   in the plugin's thread) against gdb on an equivalent compiled C loop
//!   (`break loop.c:N if count > …`), when gdb and gcc are installed;
//! - a probe with no breakpoint while a session is attached, and a logpoint,
//!   against the same loop with no debugger;
//! - a data breakpoint on a scalar that does not change, per hit, against gdb's
//!   software watchpoint on an equivalent C loop (`watch same` with hardware
//!   watchpoints off, which single-steps), when gdb and gcc are installed;
//! - history capture (32 hits kept) on an armed probe with two scalar bindings;
//! - launch → first `stopped` event over DAP, plugin prebuilt (ax-dap starts,
//!   initialize, launch, setBreakpoints, configurationDone, stopped).
//!
//! `cargo bench -p ax-e2e --bench dap`. Figures depend on the machine and its load.

use std::io::Write as _;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ax_e2e::{marker_line, release_binary, release_library};
use ax_runtime::Host;
use ax_runtime::debug::{BreakpointSpec, DataBreakpointSpec, DataId, DebugAgent, DebugOptions};
use serde_json::{Value, json};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = p * (sorted.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    sorted[lo].mul_f64(1.0 - (rank - lo as f64)) + sorted[hi].mul_f64(rank - lo as f64)
}

/// What is at the bench plugin's probe while it loops.
#[derive(Clone, Copy, PartialEq)]
enum AtProbe {
    /// No debugger: the baseline.
    Nothing,
    /// A debug session attached, no breakpoint on this probe.
    Session,
    /// A breakpoint whose two-variable condition is false.
    FalseCondition,
    /// A logpoint (its messages drained by another thread, as the debug host does).
    Logpoint,
    /// A data breakpoint on `same`, which never changes (probe2, history off).
    DataUnchanged,
    /// A breakpoint whose condition is false on probe2, with 32 hits of history kept.
    History,
}

/// ns per probe hit, timed inside the plugin, with `at` on the probe.
fn ax_per_hit_ns(at: AtProbe, hits: u64) -> f64 {
    let host = Host::new().unwrap();
    let plugin = Arc::new(host.load_library(release_library("fixture-bench-plugin"), "bench", "{}").unwrap());
    // History only where it is measured: the other figures are those of a session with `historySize: 0`.
    let history_size = if at == AtProbe::History { 32 } else { 0 };
    let agent =
        (at != AtProbe::Nothing).then(|| DebugAgent::attach_with(plugin.clone(), DebugOptions { history_size }));
    let file = "tests/fixtures/bench-plugin/src/lib.rs";
    let two = matches!(at, AtProbe::DataUnchanged | AtProbe::History);
    let line = marker_line(file, if two { "BENCH_PROBE2" } else { "BENCH_PROBE" });
    let spec = match at {
        AtProbe::History => {
            Some(BreakpointSpec { line, condition: Some("i > 100000000000".to_owned()), ..Default::default() })
        }
        AtProbe::FalseCondition => {
            Some(BreakpointSpec { line, condition: Some("x > 100000000000 && x < 3".to_owned()), ..Default::default() })
        }
        AtProbe::Logpoint => {
            Some(BreakpointSpec { line, log_message: Some("x is {x}".to_owned()), ..Default::default() })
        }
        AtProbe::Nothing | AtProbe::Session | AtProbe::DataUnchanged => None,
    };
    let drain = agent.as_ref().map(|agent| {
        let events = agent.events().clone();
        std::thread::spawn(move || events.iter().count())
    });
    if let (Some(agent), Some(spec)) = (&agent, spec) {
        agent.set_breakpoints(file, &[spec]);
    }
    if let (Some(agent), AtProbe::DataUnchanged) = (&agent, at) {
        let site = plugin.probe_sites().iter().find(|s| s.line == line).expect("the probe2 site");
        let data_id =
            DataId { file: site.file.clone(), line, function: site.function.clone(), path: "same".to_owned() };
        let placed =
            agent.set_data_breakpoints(&[DataBreakpointSpec { data_id: data_id.to_string(), ..Default::default() }]);
        assert!(placed[0].verified, "{placed:?}");
    }
    let out = plugin.call(if two { "probe2" } else { "probe" }, &json!({ "n": hits })).unwrap();
    if let Some(agent) = agent {
        agent.detach();
        drop(agent);
        let _ = plugin.shutdown();
        drop(plugin);
        drop(drain);
    }
    out["nanos"].as_f64().unwrap() / hits as f64
}

/// µs per hit of gdb's `break file:line if count > …` (false) on a C loop, or
/// `None` without gdb or gcc.
fn gdb_false_condition_us(hits: u32) -> Option<f64> {
    let dir = tempfile::tempdir().ok()?;
    let source = dir.path().join("loop.c");
    let mut file = std::fs::File::create(&source).ok()?;
    writeln!(
        file,
        "#include <stdlib.h>\nint main(int argc, char **argv) {{\n  volatile long words = 0;\n  long n = atol(argv[1]);\n  for (long count = 0; count < n; count++) {{\n    words += count; /* BREAK */\n  }}\n  return (int)(words & 1);\n}}"
    )
    .ok()?;
    let binary = dir.path().join("loop");
    let built = Command::new("gcc").args(["-g", "-O0", "-o"]).arg(&binary).arg(&source).status().ok()?;
    if !built.success() {
        return None;
    }
    let run = |with_breakpoint: bool| -> Option<Duration> {
        let mut cmd = Command::new("gdb");
        cmd.args(["-batch", "-nx", "-q"]);
        if with_breakpoint {
            cmd.args(["-ex", "break loop.c:6 if count > 100000000000"]);
        }
        cmd.args(["-ex", "run", "--args"]).arg(&binary).arg(hits.to_string());
        let started = Instant::now();
        let out = cmd.output().ok()?;
        out.status.success().then(|| started.elapsed())
    };
    let (with, without) = (run(true)?, run(false)?);
    Some(with.saturating_sub(without).as_secs_f64() * 1e6 / f64::from(hits))
}

/// µs per iteration of gdb's software watchpoint (`watch same`, hardware
/// watchpoints off) on a C loop that stores the same value each iteration, or
/// `None` without gdb or gcc.
fn gdb_software_watchpoint_us(iterations: u32) -> Option<f64> {
    let dir = tempfile::tempdir().ok()?;
    let source = dir.path().join("watch.c");
    let mut file = std::fs::File::create(&source).ok()?;
    writeln!(
        file,
        "#include <stdlib.h>\nvolatile long same = 7;\nint main(int argc, char **argv) {{\n  volatile long words = 0;\n  long n = atol(argv[1]);\n  for (long count = 0; count < n; count++) {{\n    words += count;\n    same = 7;\n  }}\n  return (int)(words & 1);\n}}"
    )
    .ok()?;
    let binary = dir.path().join("watch");
    let built = Command::new("gcc").args(["-g", "-O0", "-o"]).arg(&binary).arg(&source).status().ok()?;
    if !built.success() {
        return None;
    }
    let run = |watch: bool| -> Option<Duration> {
        let mut cmd = Command::new("gdb");
        cmd.args(["-batch", "-nx", "-q"]);
        if watch {
            cmd.args(["-ex", "set can-use-hw-watchpoints 0", "-ex", "break main", "-ex", "run", "-ex", "watch same"]);
            cmd.args(["-ex", "continue"]);
        } else {
            cmd.args(["-ex", "run"]);
        }
        cmd.arg("--args").arg(&binary).arg(iterations.to_string());
        let started = Instant::now();
        let out = cmd.output().ok()?;
        out.status.success().then(|| started.elapsed())
    };
    let (with, without) = (run(true)?, run(false)?);
    Some(with.saturating_sub(without).as_secs_f64() * 1e6 / f64::from(iterations))
}

/// One DAP session to the first stop; returns how long it took.
/// One session from process start: when `initialize` was answered, and when
/// the first `stopped` came.
fn launch_to_stopped() -> (Duration, Duration) {
    let started = Instant::now();
    let mut dap = std::process::Command::new(release_binary("ax-dap"))
        .arg("--stdio")
        .env("AX_BIN", release_binary("ax"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = dap.stdin.take().unwrap();
    let mut stdout = std::io::BufReader::new(dap.stdout.take().unwrap());
    let mut send = |seq: i64, command: &str, arguments: Value| {
        let body =
            serde_json::to_vec(&json!({ "seq": seq, "type": "request", "command": command, "arguments": arguments }))
                .unwrap();
        write!(stdin, "Content-Length: {}\r\n\r\n", body.len()).unwrap();
        stdin.write_all(&body).unwrap();
        stdin.flush().unwrap();
    };
    let source = ax_e2e::workspace_root().join("examples/word-count/src/lib.rs");
    let line = marker_line("examples/word-count/src/lib.rs", "PROBE");
    send(1, "initialize", json!({ "adapterID": "ax" }));
    let calls = json!([{ "method": "count", "input": { "text": "a b c" } }]);
    send(2, "launch", json!({ "plugin": release_library("word-count"), "build": false, "calls": calls }));
    send(3, "setBreakpoints", json!({ "source": { "path": source }, "breakpoints": [{ "line": line }] }));
    send(4, "configurationDone", json!({}));
    let mut initialized = None;
    let stopped = loop {
        use std::io::{BufRead, Read};
        let mut length = 0;
        let mut ended = false;
        loop {
            let mut header = String::new();
            if stdout.read_line(&mut header).unwrap_or(0) == 0 {
                ended = true;
                break;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some(n) = header.strip_prefix("Content-Length: ") {
                length = n.parse().unwrap();
            }
        }
        if ended {
            break None;
        }
        let mut body = vec![0; length];
        stdout.read_exact(&mut body).unwrap();
        let message: Value = serde_json::from_slice(&body).unwrap();
        if message["command"] == "initialize" && message["type"] == "response" {
            initialized.get_or_insert_with(|| started.elapsed());
        }
        if message["event"] == "stopped" {
            break Some(started.elapsed());
        }
    };
    send(5, "disconnect", json!({}));
    let _ = dap.kill();
    let _ = dap.wait();
    (initialized.expect("initialize answered"), stopped.expect("ax-dap stopped at the breakpoint"))
}

fn main() {
    let smoke = std::env::args().any(|a| a == "--test");
    let hits = if smoke { 100_000 } else { 5_000_000 };
    let baseline = ax_per_hit_ns(AtProbe::Nothing, hits);
    let session = ax_per_hit_ns(AtProbe::Session, hits);
    let ours = ax_per_hit_ns(AtProbe::FalseCondition, hits);
    let logpoint = ax_per_hit_ns(AtProbe::Logpoint, hits / 10);
    let data = ax_per_hit_ns(AtProbe::DataUnchanged, hits);
    let history = ax_per_hit_ns(AtProbe::History, hits);
    println!("probe loop, per iteration: no debugger {baseline:.2} ns (the baseline)");
    println!(
        "  session attached, no breakpoint here: {session:.2} ns ({:+.2} ns over the baseline; goal ≤ 2 ns)",
        session - baseline
    );
    println!("false conditional breakpoint, per hit: ax {ours:.1} ns (goal ≤ 100 ns)");
    println!("logpoint, per hit (message rendered and queued): {logpoint:.1} ns");
    println!("data breakpoint, value unchanged, per hit: ax {data:.1} ns (goal ≤ 100 ns)");
    match gdb_software_watchpoint_us(if smoke { 200 } else { 2_000 }) {
        Some(gdb) => println!(
            "  gdb software watchpoint on a C loop: {gdb:.1} µs per iteration; ax is {:.0}× faster (goal ≥ 10,000×)",
            gdb * 1e3 / data
        ),
        None => println!("  gdb or gcc not installed: no comparison in this run"),
    }
    println!(
        "history capture (32 kept), armed probe with two scalar bindings, per hit: {history:.1} ns (goal ≤ 150 ns)"
    );
    match gdb_false_condition_us(if smoke { 200 } else { 2_000 }) {
        Some(gdb) => println!("  gdb on a C loop: {gdb:.1} µs per hit; ax is {:.0}× faster", gdb * 1e3 / ours),
        None => println!("  gdb or gcc not installed: no comparison in this run"),
    }

    let runs = if smoke { 2 } else { 20 };
    let sessions: Vec<(Duration, Duration)> = (0..runs).map(|_| launch_to_stopped()).collect();
    let mut initialize: Vec<Duration> = sessions.iter().map(|s| s.0).collect();
    initialize.sort_unstable();
    println!(
        "ax-dap process start → initialize answered: p50 {:.2} ms, p95 {:.2} ms (goal ≤ 10 ms)",
        percentile(&initialize, 0.5).as_secs_f64() * 1e3,
        percentile(&initialize, 0.95).as_secs_f64() * 1e3,
    );
    let mut latencies: Vec<Duration> = sessions.iter().map(|s| s.1).collect();
    latencies.sort_unstable();
    println!(
        "ax-dap launch → first stopped (plugin prebuilt): p50 {:.1} ms, p95 {:.1} ms over {runs} sessions (goal ≤ 50 ms)",
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.95).as_secs_f64() * 1e3,
    );
}
