//! OpenTelemetry export, end to end: `ax run` with export on sends OTLP over
//! HTTP to a real collector (rotel, from PyPI, installed by `scripts/test`)
//! listening on loopback, which prints what it received in the Collector's
//! debug-exporter format; the tests read that back and check span names,
//! parent/child links, attributes, statuses and metric points. With the
//! collector down, calls still succeed and ax warns once.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ax_e2e::{Output, assert_one_error, ax, library, run, workspace_root};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// The `rotel-agent` binary: `AX_ROTEL`, else the one `scripts/test` installed.
fn rotel_agent() -> PathBuf {
    if let Some(path) = std::env::var_os("AX_ROTEL") {
        return path.into();
    }
    let lib = workspace_root().join("tests/otel/.venv/lib");
    let found = std::fs::read_dir(&lib).ok().and_then(|dirs| {
        dirs.filter_map(Result::ok).map(|d| d.path().join("site-packages/rotel/rotel-agent")).find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "rotel-agent not found under {}: run ./scripts/test (it installs tests/otel/requirements.txt)",
            lib.display()
        )
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A rotel collector on loopback, printing what it receives.
pub(crate) struct Collector {
    child: Child,
    port: u16,
    received: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

impl Collector {
    /// Starts rotel on two free ports. A port found free can be taken by
    /// another process before rotel binds it (the tests run in parallel,
    /// each with its own collector and clients); rotel then exits, and it is
    /// started again on other ports.
    pub(crate) fn start() -> Collector {
        let mut exits = Vec::new();
        for _ in 0..3 {
            match Collector::try_start() {
                Ok(collector) => return collector,
                Err(exit) => {
                    eprintln!("rotel exited before it listened; started again: {exit}");
                    exits.push(exit);
                }
            }
        }
        panic!("rotel did not start listening, three times: {exits:#?}");
    }

    /// rotel listening, or why it exited.
    fn try_start() -> Result<Collector, String> {
        let dir = tempfile::tempdir().unwrap();
        let (port, grpc) = (free_port(), free_port());
        let mut child = Command::new(rotel_agent())
            .args(["start", "--exporter", "blackhole", "--debug-log", "traces", "--debug-log", "metrics"])
            .args(["--debug-log-verbosity", "detailed", "--batch-timeout", "50ms"])
            .arg("--otlp-http-endpoint")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--otlp-grpc-endpoint")
            .arg(format!("127.0.0.1:{grpc}"))
            .arg("--pid-file")
            .arg(dir.path().join("rotel.pid"))
            .arg("--log-file")
            .arg(dir.path().join("rotel.log"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("rotel-agent starts");
        let received = Arc::new(Mutex::new(String::new()));
        let (stdout, sink) = (child.stdout.take().unwrap(), received.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut all = sink.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(dir.path().join("rotel.log")).unwrap_or_default();
                let printed = received.lock().unwrap().clone();
                return Err(format!("ports {port} and {grpc}: rotel exited ({status}): {log}{printed}"));
            }
            assert!(Instant::now() < deadline, "rotel did not listen on port {port} within 10 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Collector { child, port, received, _dir: dir })
    }

    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Waits until the collector has printed `count` spans and a metric named
    /// `metric`; returns everything it printed.
    pub(crate) fn wait_for(&self, count: usize, metric: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let text = self.received.lock().unwrap().clone();
            if parse_spans(&text).len() >= count && text.contains(&format!("-> Name: {metric}\n")) {
                // Let a batch still being printed finish.
                std::thread::sleep(Duration::from_millis(200));
                return self.received.lock().unwrap().clone();
            }
            assert!(Instant::now() < deadline, "the collector did not receive {count} spans and {metric}:\n{text}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A span as the collector printed it.
#[derive(Debug, Default, Clone)]
pub(crate) struct Span {
    pub(crate) trace: String,
    pub(crate) parent: String,
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) status: String,
    pub(crate) status_message: String,
    /// As the collector prints them.
    pub(crate) start: String,
    pub(crate) end: String,
    pub(crate) attributes: Vec<(String, String)>,
    pub(crate) events: Vec<String>,
}

impl Span {
    pub(crate) fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let rest = line.trim().strip_prefix(name)?;
    Some(rest.trim_start().strip_prefix(':')?.trim())
}

/// Parses the debug exporter's `Span #N` blocks.
pub(crate) fn parse_spans(text: &str) -> Vec<Span> {
    let mut spans = Vec::new();
    let mut in_events = false;
    for line in text.lines() {
        if line.starts_with("Span #") {
            spans.push(Span::default());
            in_events = false;
            continue;
        }
        if line.starts_with("ResourceSpans #") || line.starts_with("ResourceMetrics #") {
            in_events = false;
        }
        let Some(span) = spans.last_mut() else { continue };
        if line.starts_with("Events:") {
            in_events = true;
        } else if let Some(v) = field(line, "Trace ID") {
            span.trace = v.to_owned();
        } else if let Some(v) = field(line, "Parent ID") {
            span.parent = v.to_owned();
        } else if let Some(v) = field(line, "ID") {
            span.id = v.to_owned();
        } else if let Some(v) = field(line, "Name").filter(|_| !line.contains("->")) {
            span.name = v.to_owned();
        } else if let Some(v) = field(line, "Status code") {
            span.status = v.to_owned();
        } else if let Some(v) = field(line, "Status message") {
            span.status_message = v.to_owned();
        } else if let Some(v) = field(line, "Start time") {
            span.start = v.to_owned();
        } else if let Some(v) = field(line, "End time") {
            span.end = v.to_owned();
        } else if let Some(rest) = line.trim().strip_prefix("-> ") {
            if in_events {
                if let Some(name) = rest.strip_prefix("Name: ") {
                    span.events.push(name.to_owned());
                } else if let Some(last) = span.events.last_mut() {
                    last.push(' ');
                    last.push_str(rest.trim_start_matches("-> "));
                }
            } else if let Some((key, value)) = rest.split_once(": ") {
                span.attributes.push((key.to_owned(), value.to_owned()));
            }
        }
    }
    spans.retain(|s| !s.id.is_empty());
    spans
}

/// The data points of metric `name`: each as its attribute lines and values.
pub(crate) fn metric_points(text: &str, name: &str) -> Vec<String> {
    let mut points = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        if let Some(metric) = line.trim().strip_prefix("-> Name: ") {
            inside = metric == name;
            continue;
        }
        if line.starts_with("Metric #") || line.starts_with("ResourceMetrics #") || line.starts_with("Span #") {
            inside = false;
        }
        if !inside {
            continue;
        }
        if line.contains("DataPoints #") {
            points.push(String::new());
        } else if let Some(point) = points.last_mut() {
            point.push_str(line.trim());
            point.push('\n');
        }
    }
    points
}

pub(crate) fn export_env<'a>(cmd: &'a mut Command, endpoint: &str) -> &'a mut Command {
    cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        .env_remove("OTEL_SDK_DISABLED")
        .env_remove("OTEL_SERVICE_NAME")
        .env_remove("OTEL_RESOURCE_ATTRIBUTES")
        .env_remove("OTEL_TRACES_SAMPLER")
        .env_remove("OTEL_TRACES_SAMPLER_ARG")
        .env_remove("OTEL_EXPORTER_OTLP_PROTOCOL")
        .env_remove("TRACEPARENT")
        .env_remove("AX_TELEMETRY_LEVEL")
}

fn calls_file(dir: &Path, lines: &[&str]) -> PathBuf {
    let path = dir.join("calls.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn one<'a>(spans: &'a [Span], what: &str, pick: impl Fn(&Span) -> bool) -> &'a Span {
    let found: Vec<&Span> = spans.iter().filter(|s| pick(s)).collect();
    assert_eq!(found.len(), 1, "expected one {what} span among {spans:#?}");
    found[0]
}

#[test]
fn calls_and_plugin_spans_reach_a_real_collector() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let calls = calls_file(
        dir.path(),
        &[
            &format!(r#"{{"method":"count","input":{{"text":"a b c"}},"traceparent":"{TRACEPARENT}"}}"#),
            r#"{"method":"count","input":{"text":"x y"}}"#,
            r#"{"method":"nope"}"#,
        ],
    );
    let unix_nanos = || SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
    let before = unix_nanos();
    let out: Output = run(export_env(
        ax().args(["run", "--no-build"]).arg(library("word-count")).arg("--calls").arg(&calls),
        &collector.endpoint(),
    )
    .env("AX_LOG", "info,word_count=debug")
    // Trace-level spans too (`is_word`), which the default level leaves out.
    .env("AX_TELEMETRY_LEVEL", "trace"));
    let after = unix_nanos();
    assert_eq!(out.code, Some(1), "the unknown method fails the run: {out:?}");
    assert_eq!(out.stdout, "{\"total\":3,\"words\":3}\n{\"total\":5,\"words\":2}\n", "{out:?}");
    assert!(!out.stderr.contains("cannot export"), "{}", out.stderr);

    // 3 calls; per count call: count, count_words, one is_word per token.
    let text = collector.wait_for(3 + 2 * 2 + 5, "ax.calls");
    let spans = parse_spans(&text);
    // A bare library is named after its file; the service after the plugin.
    assert!(text.contains("service.name: Str(word_count)"), "{text}");

    // The first call continues the caller's trace.
    let call = one(&spans, "continued call", |s| s.name == "word_count.count" && s.trace == TRACEPARENT[3..35]);
    assert_eq!(call.parent, &TRACEPARENT[36..52]);
    assert_eq!(call.status, "STATUS_CODE_OK");
    assert_eq!(call.attr("ax.plugin"), Some("Str(word_count)"));
    assert_eq!(call.attr("ax.method"), Some("Str(count)"));
    assert_eq!(call.attr("ax.generation"), Some("Int(1)"));
    assert_eq!(call.attr("ax.outcome"), Some("Str(ok)"));
    assert!(call.attr("ax.usage.wall_ns").is_some_and(|v| v.starts_with("Int(")), "{call:?}");
    assert!(call.attr("ax.usage.allocated_bytes").is_some(), "{call:?}");

    // The plugin's spans are its children, with their fields as attributes.
    let count = one(&spans, "count", |s| s.name == "count" && s.parent == call.id);
    assert_eq!(count.trace, call.trace);
    assert_eq!(count.attr("len"), Some("Int(5)"));
    assert_eq!(count.attr("code.filepath"), Some("Str(examples/word-count/src/lib.rs)"));
    assert!(count.events.iter().any(|e| e.starts_with("counted") && e.contains("words: Int(3)")), "{count:?}");
    let words = one(&spans, "count_words", |s| s.name == "count_words" && s.parent == count.id);
    // Timestamps (the hooks' raw clock ticks, scaled on the `ax-otel` thread):
    // inside the run, and each span inside its parent.
    let nanos = |t: &str| t.parse::<u64>().unwrap_or_else(|e| panic!("a time in Unix nanoseconds, got {t:?}: {e}"));
    let times: Vec<u64> =
        [&call.start, &count.start, &words.start, &words.end, &count.end, &call.end].map(|t| nanos(t)).to_vec();
    assert!(times.is_sorted(), "spans nest in time (call, count, count_words starts, then ends): {times:?}");
    assert!(before <= times[0] && times[5] <= after, "within the run ({before}..{after}): {times:?}");
    let tokens: Vec<_> =
        spans.iter().filter(|s| s.name == "is_word" && s.parent == words.id).filter_map(|s| s.attr("token")).collect();
    assert_eq!(tokens, ["Str(a)", "Str(b)", "Str(c)"]);

    // The second call starts its own trace.
    let second = one(&spans, "second call", |s| s.name == "word_count.count" && s.trace != call.trace);
    assert_eq!(second.parent, "");
    assert_eq!(second.attr("ax.call"), Some("Int(2)"));

    // The failed call has an error status.
    let failed = one(&spans, "failed call", |s| s.name == "word_count.nope");
    assert_eq!(failed.status, "STATUS_CODE_ERROR");
    assert!(failed.status_message.contains("unknown method"), "{failed:?}");
    assert_eq!(failed.attr("ax.outcome"), Some("Str(error)"));

    // Metrics: calls by outcome, errors, the duration histogram, startup phases, the cache.
    let calls = metric_points(&text, "ax.calls");
    assert!(calls.iter().any(|p| p.contains("ax.outcome: Str(ok)") && p.contains("Value: 2")), "{calls:?}");
    assert!(calls.iter().any(|p| p.contains("ax.outcome: Str(error)") && p.contains("Value: 1")), "{calls:?}");
    let errors = metric_points(&text, "ax.call.errors");
    assert!(errors.iter().any(|p| p.contains("ax.method: Str(nope)") && p.contains("Value: 1")), "{errors:?}");
    let durations = metric_points(&text, "ax.call.duration");
    assert!(durations.iter().any(|p| p.contains("ax.method: Str(count)") && p.contains("Count: 2")), "{durations:?}");
    let phases = metric_points(&text, "ax.startup.phase.duration");
    for phase in ["read", "dlopen", "init", "first_call"] {
        assert!(phases.iter().any(|p| p.contains(&format!("ax.phase: Str({phase})"))), "{phase}: {phases:?}");
    }
    let hits = metric_points(&text, "ax.cache.hits");
    assert!(hits.iter().any(|p| p.contains("ax.plugin: Str(word_count)")), "{hits:?}");
}

#[test]
fn panics_and_budget_violations_are_errors_with_events() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let calls = calls_file(dir.path(), &[r#"{"method":"boom"}"#]);
    let out = run(export_env(
        ax().args(["run", "--no-build"]).arg(library("fixture-panic-call")).arg("--calls").arg(&calls),
        &collector.endpoint(),
    ));
    assert_eq!(out.code, Some(1), "{out:?}");
    let out = run(export_env(
        ax().args(["run", "--no-build"]).arg(library("fixture-hostile")).args(["spin_probe", "--max-duration", "50ms"]),
        &collector.endpoint(),
    ));
    assert_eq!(out.code, Some(1), "{out:?}");

    let text = collector.wait_for(2, "ax.budget.violations");
    let spans = parse_spans(&text);
    let panicked = one(&spans, "panicking call", |s| s.name.ends_with(".boom"));
    assert_eq!(panicked.status, "STATUS_CODE_ERROR");
    assert_eq!(panicked.attr("ax.outcome"), Some("Str(panic)"));
    assert!(
        panicked.events.iter().any(|e| e.starts_with("exception") && e.contains("index out of bounds")),
        "{panicked:?}"
    );
    let stopped = one(&spans, "stopped call", |s| s.name.ends_with(".spin_probe"));
    assert_eq!(stopped.status, "STATUS_CODE_ERROR");
    assert_eq!(stopped.attr("ax.outcome"), Some("Str(budget_exceeded)"));
    assert!(
        stopped.events.iter().any(|e| e.starts_with("ax.budget_violation") && e.contains("duration")),
        "{stopped:?}"
    );
    let violations = metric_points(&text, "ax.budget.violations");
    assert!(
        violations.iter().any(|p| p.contains("ax.method: Str(spin_probe)") && p.contains("Value: 1")),
        "{violations:?}"
    );
}

/// `dir/ax-plugin.toml` for the built word-count, with export on, metrics
/// every 100 ms and `telemetry` (TOML lines) in its `[telemetry]`.
fn word_count_manifest(dir: &Path, telemetry: &str) -> PathBuf {
    let manifest = dir.join("ax-plugin.toml");
    let text = format!(
        "[plugin]\nname = \"word-count\"\nversion = \"0.1.0\"\nlibrary = {:?}\n\n\
         [telemetry]\nenabled = true\nmetrics_interval = \"100ms\"\n{telemetry}",
        library("word-count"),
    );
    std::fs::write(&manifest, text).unwrap();
    manifest
}

#[test]
fn manifest_section_turns_export_on_and_names_the_service() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let telemetry = format!("endpoint = \"{}\"\nservice_name = \"counting-service\"\n", collector.endpoint());
    let manifest = word_count_manifest(dir.path(), &telemetry);
    let mut cmd = ax();
    cmd.args(["run", "--no-build"]).arg(&manifest).args(["count", r#"{"text":"one"}"#]);
    let out = run(export_env(&mut cmd, "").env_remove("OTEL_EXPORTER_OTLP_ENDPOINT").env("TRACEPARENT", TRACEPARENT));
    assert_eq!(out.code, Some(0), "{out:?}");
    let text = collector.wait_for(1, "ax.calls");
    assert!(text.contains("service.name: Str(counting-service)"), "{text}");
    let spans = parse_spans(&text);
    let call = one(&spans, "call", |s| s.name == "word-count.count");
    assert_eq!(call.trace, &TRACEPARENT[3..35], "TRACEPARENT continues the trace");
}

#[test]
fn sampled_out_calls_export_no_plugin_span_and_sampled_in_calls_all_of_theirs() {
    // The plugin skips a sampled-out call's spans at their start (the host
    // answers `enabled` from a per-thread cache): a call sampled in between
    // two sampled out must still export every span, parented as usual.
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let manifest = word_count_manifest(dir.path(), "sample_ratio = 0.0\n");
    let other = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let calls = calls_file(
        dir.path(),
        &[
            r#"{"method":"count","input":{"text":"out one"}}"#,
            &format!(r#"{{"method":"count","input":{{"text":"in one"}},"traceparent":"{TRACEPARENT}"}}"#),
            r#"{"method":"count","input":{"text":"out two"}}"#,
            &format!(r#"{{"method":"count","input":{{"text":"in two"}},"traceparent":"{other}"}}"#),
        ],
    );
    let mut cmd = ax();
    cmd.args(["run", "--no-build"]).arg(&manifest).arg("--calls").arg(&calls);
    let out = run(export_env(&mut cmd, &collector.endpoint()));
    assert_eq!(out.code, Some(0), "{out:?}");
    let text = collector.wait_for(6, "ax.calls");
    let spans = parse_spans(&text);
    let traces: std::collections::BTreeSet<&str> = spans.iter().map(|s| s.trace.as_str()).collect();
    assert_eq!(traces, [&other[3..35], &TRACEPARENT[3..35]].into(), "only the sampled-in traces: {spans:#?}");
    for traceparent in [TRACEPARENT, other] {
        let trace = &traceparent[3..35];
        let call = one(&spans, "call", |s| s.name == "word-count.count" && s.trace == trace);
        let count = one(&spans, "count", |s| s.name == "count" && s.parent == call.id);
        one(&spans, "count_words", |s| s.name == "count_words" && s.parent == count.id);
    }
    assert_eq!(spans.len(), 6, "{spans:#?}");
    // Metrics count every call, sampled or not.
    let counted = metric_points(&text, "ax.calls");
    assert!(counted.iter().any(|p| p.contains("Value: 4")), "{counted:?}");
}

#[test]
fn export_is_off_without_configuration_and_bad_settings_are_errors() {
    let mut cmd = ax();
    cmd.args(["run", "--no-build"]).arg(library("word-count")).args(["count", r#"{"text":"a"}"#]);
    let out = run(export_env(&mut cmd, "").env_remove("OTEL_EXPORTER_OTLP_ENDPOINT"));
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");

    let mut cmd = ax();
    cmd.args(["run", "--no-build", "--traceparent", "00-nope"]).arg(library("word-count")).args(["count", "{}"]);
    let out = run(&mut cmd);
    assert_eq!(out.code, Some(1), "a command-line error is one line, exit 1: {out:?}");
    assert!(out.stderr.contains("traceparent \"00-nope\" is invalid: expected a W3C traceparent"), "{out:?}");

    let mut cmd = ax();
    cmd.args(["run", "--no-build"]).arg(library("word-count")).args(["count", "{}"]);
    let out = run(export_env(&mut cmd, "http://127.0.0.1:9").env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/xml"));
    ax_e2e::assert_one_error(&out, &["OTEL_EXPORTER_OTLP_PROTOCOL=\"http/xml\" is invalid", "\"http/protobuf\""]);

    // A sampler the specification does not name, or a ratio that is not one,
    // is refused (OpenTelemetry's SDK would trace every call instead).
    for (sampler, arg, said) in [
        ("parentbased_traceid", None, "OTEL_TRACES_SAMPLER=\"parentbased_traceid\" is invalid"),
        (
            "traceidratio",
            Some("50%"),
            "OTEL_TRACES_SAMPLER_ARG=\"50%\" (for OTEL_TRACES_SAMPLER=\"traceidratio\") is invalid",
        ),
    ] {
        let mut cmd = ax();
        cmd.args(["run", "--no-build"]).arg(library("word-count")).args(["count", "{}"]);
        let cmd = export_env(&mut cmd, "http://127.0.0.1:9").env("OTEL_TRACES_SAMPLER", sampler);
        if let Some(arg) = arg {
            cmd.env("OTEL_TRACES_SAMPLER_ARG", arg);
        }
        ax_e2e::assert_one_error(&run(cmd), &[said]);
    }
}

#[test]
fn collector_down_calls_succeed_and_ax_warns_once() {
    let port = free_port(); // bound and released: nothing listens there
    let dir = tempfile::tempdir().unwrap();
    let line = r#"{"method":"count","input":{"text":"a b"}}"#;
    let calls = calls_file(dir.path(), &[line; 20]);
    let out = run(export_env(
        ax().args(["run", "--no-build"]).arg(library("word-count")).arg("--calls").arg(&calls),
        &format!("http://127.0.0.1:{port}"),
    ));
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout.lines().count(), 20, "{out:?}");
    let warnings: Vec<&str> = out.stderr.lines().filter(|l| l.contains("cannot export")).collect();
    assert_eq!(warnings.len(), 1, "{}", out.stderr);
    assert!(warnings[0].contains(&format!("http://127.0.0.1:{port}")), "{warnings:?}");
    // Nothing listens: ax says so, and the flush at exit does not wait for the exporter's retries.
    assert!(warnings[0].contains("could not connect"), "{warnings:?}");
    // Every span was counted as dropped: 20 calls of 3 spans each (the call,
    // count, count_words; the trace-level is_word spans are below the default level).
    assert!(out.stderr.contains("telemetry not delivered: 60 span(s)"), "{}", out.stderr);
}

/// `tests/otel/tls/tls_proxy.py`: HTTPS on a port of its own, in front of a
/// collector's plain HTTP port, with a certificate of the test authority
/// (`tests/otel/tls/ca.pem`).
struct TlsProxy {
    child: Child,
    port: u16,
}

impl TlsProxy {
    fn start(target: u16) -> TlsProxy {
        let dir = workspace_root().join("tests/otel/tls");
        let mut child = Command::new("python3")
            .arg(dir.join("tls_proxy.py"))
            .arg(dir.join("cert.pem"))
            .arg(dir.join("key.pem"))
            .arg(target.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the TLS proxy");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().parse().unwrap_or_else(|_| panic!("the TLS proxy printed {line:?}, not its port"));
        TlsProxy { child, port }
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn https_reaches_a_collector_whose_authority_is_given_and_says_why_not_otherwise() {
    let collector = Collector::start();
    let proxy = TlsProxy::start(collector.port);
    let endpoint = format!("https://127.0.0.1:{}", proxy.port);
    let count = |certificate: Option<&Path>| {
        let mut cmd = ax();
        export_env(cmd.args(["run", "--no-build"]).arg(library("word-count")), &endpoint)
            .args(["count", r#"{"text":"a b"}"#])
            .env_remove("OTEL_EXPORTER_OTLP_CERTIFICATE");
        if let Some(certificate) = certificate {
            cmd.env("OTEL_EXPORTER_OTLP_CERTIFICATE", certificate);
        }
        run(&mut cmd)
    };

    // The test authority is no system's: calls go on, and ax says why.
    let out = count(None);
    assert_eq!(out.code, Some(0), "{out:?}");
    let warnings: Vec<&str> = out.stderr.lines().filter(|l| l.contains("cannot export")).collect();
    assert_eq!(warnings.len(), 1, "{}", out.stderr);
    assert!(warnings[0].contains("certificate"), "the warning names the certificate: {warnings:?}");

    // Trusted through OTEL_EXPORTER_OTLP_CERTIFICATE: the spans arrive.
    let out = count(Some(&workspace_root().join("tests/otel/tls/ca.pem")));
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(!out.stderr.contains("cannot export"), "{}", out.stderr);
    let spans = parse_spans(&collector.wait_for(3, "ax.calls"));
    assert!(spans.iter().any(|s| s.name == "word_count.count"), "{spans:?}");

    // A file that holds no certificate: one error line naming the variable.
    let out = count(Some(library("word-count")));
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_one_error(&out, &["OTEL_EXPORTER_OTLP_CERTIFICATE=", "expected a PEM file of the certificate authorities"]);
}

#[test]
fn reloads_are_spans_and_counted_by_outcome_and_calls_carry_the_generation() {
    use ax_runtime::{Host, HostOptions, Instrumentation, ReloadOptions, ReloadOutcome, ReloadablePlugin};
    use ax_telemetry::{Config, Protocol, Telemetry};

    let collector = Collector::start();
    let config = Config {
        protocol: Protocol::HttpProtobuf,
        endpoint: Some(collector.endpoint()),
        endpoint_shown: collector.endpoint(),
        service_name: "reload-test".to_owned(),
        headers: Default::default(),
        sampler: ax_telemetry::Sampler::ParentBased(1.0),
        level: ax_runtime::Level::Info,
        metrics_interval: Duration::from_secs(60),
        timeout: Duration::from_secs(5),
        flush_timeout: Duration::from_secs(1),
        certificate: None,
    };
    let telemetry = Telemetry::start(&config).unwrap();
    let instrumentation = Instrumentation { tracer: Some(telemetry.tracer()), ..Instrumentation::default() };
    let host = Arc::new(Host::with_options(HostOptions { instrumentation, ..HostOptions::default() }).unwrap());
    telemetry.observe(&host);

    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("libfixture_reload_counter.so");
    std::fs::copy(ax_e2e::reload_variant("v1", false), &live).unwrap();
    let options = ReloadOptions { init_timeout: Duration::from_secs(5), drain_timeout: Duration::from_secs(5) };
    let plugin = ReloadablePlugin::load(host.clone(), &live, "reload-counter", "{}", options).unwrap();
    let input = serde_json::json!({ "text": "a b" });
    plugin.call("count", &input).unwrap();
    let outcome = plugin.reload(&ax_e2e::reload_variant("v2", false)).unwrap();
    assert!(matches!(outcome, ReloadOutcome::Reloaded(_)), "{outcome:?}");
    plugin.call("count", &input).unwrap();
    assert!(plugin.reload(&ax_e2e::reload_variant("panic-init", false)).is_err());
    drop(plugin);
    telemetry.shutdown();

    let text = collector.wait_for(4, "ax.reloads");
    let spans = parse_spans(&text);
    let ok = one(&spans, "reload", |s| s.name == "reload-counter.reload" && s.status == "STATUS_CODE_OK");
    assert_eq!(ok.attr("ax.generation"), Some("Int(2)"));
    assert!(ok.attr("ax.reload.step.init_ns").is_some(), "{ok:?}");
    let failed = one(&spans, "rolled back", |s| s.name == "reload-counter.reload" && s.status == "STATUS_CODE_ERROR");
    assert_eq!(failed.attr("ax.reload.outcome"), Some("Str(rolled_back)"));
    assert!(failed.status_message.contains("panic-init"), "{failed:?}");
    let generations: Vec<_> =
        spans.iter().filter(|s| s.name == "reload-counter.count").filter_map(|s| s.attr("ax.generation")).collect();
    assert_eq!(generations.len(), 2, "{spans:#?}");
    assert!(generations.contains(&"Int(1)") && generations.contains(&"Int(2)"), "{generations:?}");
    let reloads = metric_points(&text, "ax.reloads");
    assert!(reloads.iter().any(|p| p.contains("ax.reload.outcome: Str(ok)") && p.contains("Value: 1")), "{reloads:?}");
    assert!(
        reloads.iter().any(|p| p.contains("ax.reload.outcome: Str(rolled_back)") && p.contains("Value: 1")),
        "{reloads:?}"
    );
}

#[test]
fn isolated_calls_are_traced_from_the_parent_and_restarts_counted() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let calls = calls_file(dir.path(), &[r#"{"method":"ok"}"#, r#"{"method":"segfault"}"#, r#"{"method":"ok"}"#]);
    let out = run(export_env(
        ax().args(["run", "--no-build", "--isolate"]).arg(library("fixture-hostile")).arg("--calls").arg(&calls),
        &collector.endpoint(),
    ));
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(out.stdout.lines().count(), 2, "{out:?}");

    let text = collector.wait_for(3, "ax.isolated.restarts");
    let spans = parse_spans(&text);
    let crashed = one(&spans, "crashed call", |s| s.name == "fixture_hostile.segfault");
    assert_eq!(crashed.status, "STATUS_CODE_ERROR");
    assert!(crashed.status_message.contains("killed by SIGSEGV"), "{crashed:?}");
    let served = spans.iter().filter(|s| s.name == "fixture_hostile.ok" && s.status == "STATUS_CODE_OK").count();
    assert_eq!(served, 2, "{spans:#?}");
    let restarts = metric_points(&text, "ax.isolated.restarts");
    assert!(restarts.iter().any(|p| p.contains("Value: 1")), "{restarts:?}");
}

#[test]
fn ax_log_debug_exports_debug_events_and_keeps_stderr_to_ax_and_the_plugin() {
    let collector = Collector::start();
    let mut cmd = ax();
    cmd.args(["run", "--no-build"]).arg(library("word-count")).args(["count", r#"{"text":"a b"}"#]);
    // `[telemetry] level` stays at its default, info: it caps spans, not events.
    let out = run(export_env(&mut cmd, &collector.endpoint()).env("AX_LOG", "debug"));
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stderr.contains("DEBUG word_count: counted words=2 total=2"), "{}", out.stderr);
    assert!(out.stderr.contains("DEBUG ax::telemetry: exporting to"), "{}", out.stderr);
    // The HTTP client's internals are not ax's nor the plugin's.
    for noise in ["hyper", "reqwest", "opentelemetry"] {
        assert!(!out.stderr.contains(noise), "{noise} in stderr:\n{}", out.stderr);
    }

    let text = collector.wait_for(3, "ax.calls");
    let spans = parse_spans(&text);
    let count = one(&spans, "count", |s| s.name == "count");
    assert!(count.events.iter().any(|e| e.starts_with("counted") && e.contains("words: Int(2)")), "{count:?}");
    assert!(!spans.iter().any(|s| s.name == "is_word"), "trace-level spans stay below the default level");

    // Naming a crate still shows its debug output.
    let mut cmd = ax();
    cmd.args(["run", "--no-build"]).arg(library("word-count")).args(["count", r#"{"text":"a"}"#]);
    let out = run(export_env(&mut cmd, &collector.endpoint()).env("AX_LOG", "debug,hyper_util=debug"));
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stderr.contains("DEBUG hyper_util::"), "{}", out.stderr);

    // Without AX_LOG letting it through, the event is neither printed nor exported.
    let mut cmd = ax();
    cmd.args(["run", "--no-build"]).arg(library("word-count")).args(["count", r#"{"text":"quiet"}"#]);
    let out = run(export_env(&mut cmd, &collector.endpoint()).env("AX_TELEMETRY_LEVEL", "debug"));
    assert_eq!(out.code, Some(0), "{out:?}");
    let text = collector.wait_for(9, "ax.calls");
    let spans = parse_spans(&text);
    let quiet = one(&spans, "quiet count", |s| s.name == "count" && s.attr("len") == Some("Int(5)"));
    assert!(quiet.events.is_empty(), "{quiet:?}");
}

/// A collector that accepts connections and never answers; lives until dropped.
struct Stalled {
    port: u16,
    _listener: std::thread::JoinHandle<()>,
}

impl Stalled {
    fn start() -> Stalled {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming().map_while(Result::ok) {
                held.push(conn);
            }
        });
        Stalled { port, _listener: thread }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

#[test]
fn a_collector_that_never_answers_delays_exit_by_the_flush_timeout_and_the_loss_is_told() {
    let stalled = Stalled::start();
    let mut cmd = ax();
    cmd.args(["run", "--no-build"]).arg(library("word-count")).args(["count", r#"{"text":"a b"}"#]);
    let started = Instant::now();
    let out = run(export_env(&mut cmd, &stalled.endpoint()));
    let took = started.elapsed();
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, "{\"total\":2,\"words\":2}\n");
    // The call, count and count_words; metric points of the calls, the cache and startup.
    let told = format!("timed out after 1 s flushing to {}: 3 span(s), ", stalled.endpoint());
    let line = out.stderr.lines().find(|l| l.contains(&told)).unwrap_or_else(|| panic!("{told:?} in {}", out.stderr));
    assert!(line.ends_with("metric point(s) not sent") && !line.contains(", 0 metric"), "{line}");
    // A functional bound (two 5 s exports one after the other took 10 s), not a benchmark.
    assert!(took < Duration::from_secs(5), "exit took {took:?}");

    // Configurable; and an export that outlives its own deadline is said to have timed out.
    let mut cmd = ax();
    cmd.args(["run", "--no-build"]).arg(library("word-count")).args(["count", r#"{"text":"a"}"#]);
    let out = run(export_env(&mut cmd, &stalled.endpoint())
        .env("AX_TELEMETRY_FLUSH_TIMEOUT", "3s")
        .env("OTEL_EXPORTER_OTLP_TIMEOUT", "200"));
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stderr.contains("timed out after 0.2 s without an answer"), "{}", out.stderr);
    assert!(!out.stderr.contains("network error"), "{}", out.stderr);

    let mut cmd = ax();
    cmd.args(["run", "--no-build"]).arg(library("word-count")).args(["count", "{}"]);
    let out = run(export_env(&mut cmd, &stalled.endpoint()).env("AX_TELEMETRY_FLUSH_TIMEOUT", "soon"));
    ax_e2e::assert_one_error(&out, &["AX_TELEMETRY_FLUSH_TIMEOUT=\"soon\" is invalid", "\"300ms\""]);
}

/// Hooks driven by hand, as the runtime drives them, for what no plugin here
/// does on demand: spans outside calls, and spans that end on another thread.
mod hooks {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use ax_e2e::library;
    use ax_runtime::{
        CallEnd, CallStart, CallTrace, CallsiteInfo, Fields, Host, HostOptions, Instrumentation, Level, Plugin,
        ProbeHandler, ProbeHit, SpanStart, Usage,
    };
    use ax_telemetry::{Config, Protocol, Sampler, Telemetry, TraceParent};

    use super::{Collector, Span, metric_points, parse_spans};

    fn telemetry(collector: &Collector, sampler: Sampler) -> Telemetry {
        Telemetry::start(&Config {
            protocol: Protocol::HttpProtobuf,
            endpoint: Some(collector.endpoint()),
            endpoint_shown: collector.endpoint(),
            service_name: "hooks".to_owned(),
            headers: Default::default(),
            sampler,
            level: Level::Info,
            metrics_interval: Duration::from_secs(60),
            timeout: Duration::from_secs(5),
            flush_timeout: Duration::from_secs(5),
            certificate: None,
        })
        .unwrap()
    }

    fn site(name: &str) -> &'static CallsiteInfo {
        Box::leak(Box::new(CallsiteInfo {
            id: Box::leak(Box::new(0u8)) as *const u8 as usize,
            is_span: true,
            level: Level::Info,
            name: name.to_owned(),
            target: "hooks".to_owned(),
            module_path: "hooks".to_owned(),
            file: "hooks.rs".to_owned(),
            line: 1,
            fields: Vec::new(),
        }))
    }

    fn span(span: u64, callsite: &'static CallsiteInfo) -> SpanStart<'static> {
        SpanStart { instance: 1, span, parent: None, callsite, fields: Fields::EMPTY }
    }

    /// A call's `begin_call` on this thread.
    fn begin_only(telemetry: &Telemetry) -> CallTrace {
        telemetry.tracer().0.begin_call(&CallStart { plugin: "p", method: "m", instance: 1, call: 1 })
    }

    /// A call's `begin_call` and `enter_call` on this thread.
    fn begin(telemetry: &Telemetry) -> CallTrace {
        let trace = begin_only(telemetry);
        assert!(telemetry.tracer().0.enter_call(&trace), "the call is sampled");
        trace
    }

    fn end(telemetry: &Telemetry, trace: CallTrace) {
        let tracer = telemetry.tracer();
        tracer.0.exit_call(&trace);
        let usage = Usage::default();
        tracer.0.end_call(trace, &CallEnd { plugin: "p", method: "m", instance: 1, usage: &usage, error: None });
    }

    /// Flushes, then the spans the collector printed (with the call's metrics).
    fn received(collector: &Collector, telemetry: Telemetry, spans: usize) -> Vec<Span> {
        let dropped = telemetry.shutdown();
        assert_eq!(dropped.flush_timed_out, None, "the flush ended in time: {dropped:?}");
        parse_spans(&collector.wait_for(spans, "ax.calls"))
    }

    /// A span outside any call that the sampler turns down is skipped, and
    /// the records after it are still converted (they once were not: the
    /// `ax-otel` thread went round that record forever).
    #[test]
    fn a_span_outside_calls_sampled_out_does_not_stop_the_export() {
        let collector = Collector::start();
        let telemetry = telemetry(&collector, Sampler::ParentBased(0.0));
        let tracer = telemetry.tracer();
        tracer.0.span_new(span(7, site("outside")));
        tracer.0.span_close(1, 7);
        // A call with a sampled parent is sampled: its span and one of the plugin's.
        let parent = TraceParent { trace_id: 0x4bf9_2f35_77b3_4da6, span_id: 0x00f0_67aa_0ba9_02b7, sampled: true };
        let attached = Telemetry::attach(&parent);
        let trace = begin(&telemetry);
        tracer.0.span_new(span(8, site("inside")));
        tracer.0.span_close(1, 8);
        end(&telemetry, trace);
        drop(attached);
        let spans = received(&collector, telemetry, 2);
        let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names.len(), 2, "{spans:?}");
        assert!(names.contains(&"p.m") && names.contains(&"inside"), "{spans:?}");
    }

    /// A span made in a call and closed on another thread, whose buffer the
    /// `ax-otel` thread takes first (it wrote before), is exported once, a
    /// child of the call: the close waits for the span's record.
    #[test]
    fn a_span_closed_on_another_thread_is_exported_whichever_buffer_comes_first() {
        let collector = Collector::start();
        let telemetry = telemetry(&collector, Sampler::ParentBased(1.0));
        let tracer = telemetry.tracer();
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let tracer = &tracer;
        std::thread::scope(|s| {
            s.spawn(move || {
                // This thread's buffer is made first: a span outside any call.
                tracer.0.span_new(span(10, site("earlier")));
                tracer.0.span_close(1, 10);
                let _ = wait.recv();
                tracer.0.span_close(1, 9);
            });
            // The `ax-otel` thread falls asleep for its longest nap (50 ms),
            // so that the span's record and its close come in one drain.
            std::thread::sleep(Duration::from_millis(300));
            let trace = begin(&telemetry);
            tracer.0.span_new(span(9, site("handed")));
            let _ = go.send(());
            std::thread::sleep(Duration::from_millis(5));
            end(&telemetry, trace);
        });
        let spans = received(&collector, telemetry, 3);
        let call = spans.iter().find(|s| s.name == "p.m").unwrap_or_else(|| panic!("the call's span: {spans:?}"));
        let handed: Vec<&Span> = spans.iter().filter(|s| s.name == "handed").collect();
        assert_eq!(handed.len(), 1, "exported once: {spans:?}");
        assert_eq!(handed[0].parent, call.id, "a child of the call: {spans:?}");
    }

    /// A sampled call made inside another on the same thread (a plugin whose
    /// call makes the host call another), and a sampled-out one: both calls'
    /// records, staged until the outer call ends, are exported (the inner
    /// call's span and metric were once dropped with the staged records), and
    /// a span the outer call makes after the inner one returned is the outer
    /// call's (it was once made a trace of its own).
    #[test]
    fn calls_made_inside_a_call_on_its_thread_are_exported() {
        let collector = Collector::start();
        let parent = TraceParent { trace_id: 0x4bf9_2f35_77b3_4da6, span_id: 0x00f0_67aa_0ba9_02b7, sampled: true };
        let telemetry = telemetry(&collector, Sampler::ParentBased(0.0));
        let tracer = telemetry.tracer();
        let usage = Usage::default();
        let attached = Telemetry::attach(&parent);
        let outer = begin(&telemetry);
        // Sampled (its parent is), then sampled out (no parent).
        let inner = tracer.0.begin_call(&CallStart { plugin: "p", method: "inner", instance: 1, call: 2 });
        assert!(tracer.0.enter_call(&inner), "the inner call is sampled");
        tracer.0.span_new(span(13, site("in the inner call")));
        tracer.0.span_close(1, 13);
        tracer.0.exit_call(&inner);
        tracer.0.end_call(inner, &CallEnd { plugin: "p", method: "inner", instance: 1, usage: &usage, error: None });
        drop(attached);
        let out = tracer.0.begin_call(&CallStart { plugin: "p", method: "out", instance: 1, call: 3 });
        assert!(!tracer.0.enter_call(&out), "the last call is sampled out");
        tracer.0.exit_call(&out);
        tracer.0.end_call(out, &CallEnd { plugin: "p", method: "out", instance: 1, usage: &usage, error: None });
        tracer.0.span_new(span(14, site("in the outer call, after the inner")));
        tracer.0.span_close(1, 14);
        end(&telemetry, outer);
        let dropped = telemetry.shutdown();
        assert_eq!(dropped.flush_timed_out, None, "the flush ended in time: {dropped:?}");
        let text = collector.wait_for(4, "ax.calls");
        let spans = parse_spans(&text);
        let named = |name: &str| spans.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("{name}: {spans:?}"));
        let (outer, inner, span) = (named("p.m"), named("p.inner"), named("in the inner call"));
        let after = named("in the outer call, after the inner");
        assert_eq!(after.parent, outer.id, "the span after the inner call is the outer call's: {spans:?}");
        // Both calls' parent is the caller's context: the attached one.
        assert_eq!((&outer.parent, &inner.parent), (&"00f067aa0ba902b7".to_owned(), &outer.parent), "{spans:?}");
        assert_eq!(span.parent, inner.id, "the span is the inner call's: {spans:?}");
        let calls = metric_points(&text, "ax.calls");
        assert!(calls.iter().any(|p| p.contains("ax.method: Str(out)")), "the sampled-out call is counted: {calls:?}");
    }

    /// A sampled call made on the same thread inside a call the tracer
    /// sampled out (here a handler of the outer plugin's span calls another
    /// plugin): once it returns, the outer call's spans are again not traced.
    /// They were: the thread's mark was set to "traced" when the inner call
    /// ended, instead of put back, and the outer call's next span went out
    /// as a trace of its own.
    #[test]
    fn a_sampled_out_call_stays_sampled_out_after_a_sampled_call_inside_it() {
        struct CallOnEnter {
            inner: Arc<Plugin>,
            called: Mutex<bool>,
        }
        impl ProbeHandler for CallOnEnter {
            fn on_probe(&self, _: &mut ProbeHit<'_>) {}
            fn on_span_enter(&self, name: &str) {
                // Once, when the outer call enters `count` (before `count_words`).
                if name != "count" || std::mem::replace(&mut *self.called.lock().unwrap(), true) {
                    return;
                }
                let _sampled = Telemetry::attach(&TraceParent { trace_id: 0x5a, span_id: 0x5b, sampled: true });
                self.inner.call_raw_with("words", br#"{"text":"a b c"}"#, None).0.expect("the inner call");
            }
        }
        let collector = Collector::start();
        let telemetry = telemetry(&collector, Sampler::ParentBased(1.0));
        // Every span forwarded (a debugger's frames): the outer call's too,
        // untraced, so that entering `count` reaches the handler.
        let instrumentation = Instrumentation { spans: true, tracer: Some(telemetry.tracer()), ..Default::default() };
        let host = Host::with_options(HostOptions { instrumentation, ..HostOptions::default() }).expect("host");
        let outer = host.load_library(library("word-count"), "word-count", "{}").expect("word-count loads");
        let inner = Arc::new(host.load_library(library("fixture-concurrent"), "concurrent", "{}").expect("loads"));
        outer.watch_spans(true);
        outer.set_probe_handler(Some(Arc::new(CallOnEnter { inner, called: Mutex::new(false) })));
        {
            let _unsampled = Telemetry::attach(&TraceParent { trace_id: 0x6a, span_id: 0x6b, sampled: false });
            outer.call_raw_with("count", br#"{"text":"one two"}"#, None).0.expect("the outer call");
        }
        let spans = received(&collector, telemetry, 2);
        let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
        assert!(names.contains(&"concurrent.words"), "the inner call is exported: {spans:?}");
        let inner_trace = format!("{:032x}", 0x5a);
        assert!(
            spans.iter().all(|s| s.trace == inner_trace),
            "every span exported is the inner call's trace, none the outer call's: {spans:?}"
        );
    }

    /// Sampled-out calls go to the `ax-otel` thread through a ring per
    /// thread, their names by key: every call is counted under its own
    /// plugin and method, however fast they come and from however many
    /// threads (a full ring goes through the buffer's lock instead: each
    /// thread makes more calls than its ring holds).
    #[test]
    fn every_sampled_out_call_is_counted_under_its_names() {
        every_call_is_counted_under_its_names(0.0, 30_000);
    }

    /// Likewise for sampled calls, whose records go through their thread's
    /// buffer, names and all. Fewer of them: each leaves three records there,
    /// and the buffer must not fill (it would drop, by design).
    #[test]
    fn every_sampled_call_is_counted_under_its_names() {
        every_call_is_counted_under_its_names(1.0, 12_000);
    }

    /// `calls` calls from each of two threads, sampled at `ratio`.
    fn every_call_is_counted_under_its_names(ratio: f64, calls: usize) {
        let collector = Collector::start();
        let telemetry = telemetry(&collector, Sampler::ParentBased(ratio));
        let tracer = &telemetry.tracer();
        let methods = ["alpha", "beta", "gamma"];
        std::thread::scope(|s| {
            for plugin in ["p", "q"] {
                s.spawn(move || {
                    let usage = Usage::default();
                    for call in 0..calls {
                        let method = methods[call % methods.len()];
                        let trace = tracer.0.begin_call(&CallStart { plugin, method, instance: 1, call: call as u64 });
                        assert_eq!(tracer.0.enter_call(&trace), ratio > 0.0, "sampled as the ratio says");
                        tracer.0.exit_call(&trace);
                        let end = CallEnd { plugin, method, instance: 1, usage: &usage, error: None };
                        tracer.0.end_call(trace, &end);
                    }
                });
            }
        });
        let dropped = telemetry.shutdown();
        assert_eq!(dropped.flush_timed_out, None, "the flush ended in time: {dropped:?}");
        assert_eq!(dropped.queue_full, 0, "no buffer was full: {dropped:?}");
        let counts = metric_points(&collector.wait_for(0, "ax.calls"), "ax.calls");
        for plugin in ["p", "q"] {
            for method in methods {
                let counted: Vec<&String> = counts
                    .iter()
                    .filter(|p| p.contains(&format!("ax.plugin: Str({plugin})")))
                    .filter(|p| p.contains(&format!("ax.method: Str({method})")))
                    .collect();
                let expected = format!("Value: {}", calls / methods.len());
                assert!(
                    counted.len() == 1 && counted[0].contains(&expected),
                    "{plugin}.{method}: {expected} expected: {counted:?}"
                );
            }
        }
    }

    /// A call whose plugin code runs on another thread than its caller's (a
    /// plugin with a dedicated thread): its spans are handed over when the
    /// call leaves that thread, which then idles, apart from the call's own
    /// record on the caller's thread.
    #[test]
    fn a_call_run_on_another_thread_than_its_callers_exports_its_spans() {
        let collector = Collector::start();
        let telemetry = telemetry(&collector, Sampler::ParentBased(1.0));
        let tracer = &telemetry.tracer();
        let trace = begin_only(&telemetry);
        let (back, traced) = std::sync::mpsc::channel::<CallTrace>();
        let (idle, done) = std::sync::mpsc::channel::<()>();
        std::thread::scope(|s| {
            s.spawn(move || {
                assert!(tracer.0.enter_call(&trace), "the call is sampled");
                tracer.0.span_new(span(12, site("on the worker")));
                tracer.0.span_close(1, 12);
                tracer.0.exit_call(&trace);
                let _ = back.send(trace);
                // Alive and idle until the spans are in.
                let _ = done.recv();
            });
            let trace = traced.recv().expect("the worker's hooks ran");
            let usage = Usage::default();
            tracer.0.end_call(trace, &CallEnd { plugin: "p", method: "m", instance: 1, usage: &usage, error: None });
            let spans = received(&collector, telemetry, 2);
            drop(idle);
            let call = spans.iter().find(|s| s.name == "p.m").unwrap_or_else(|| panic!("the call's span: {spans:?}"));
            let worker = spans.iter().find(|s| s.name == "on the worker");
            assert_eq!(worker.map(|w| &w.parent), Some(&call.id), "the worker's span, a child of the call: {spans:?}");
        });
    }
}
