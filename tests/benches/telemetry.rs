//! What OpenTelemetry export costs a call: word-count's `count` (a call
//! span, three plugin spans per call for its nested `#[instrument]`
//! functions, one per word) with export off, with the plugin's spans merely
//! forwarded to the host, with export on (`ax-telemetry`'s tracer: a call
//! span and every plugin span as OTLP spans, plus the call metrics), and with
//! export on but the call sampled out (`sample_ratio = 0`: metrics only). The
//! goal is ≤ 5 % over export off per call. A word-count call of four words
//! takes a few microseconds, so exporting even its three spans is far more
//! than 5 % of it; the last figures are for a 2 000-word text, a call with
//! more work than spans.
//!
//! Export goes to a real collector when one is installed (rotel, which
//! `scripts/test` puts in `tests/otel/.venv`), with its blackhole exporter;
//! otherwise to a closed port on loopback (said in the output). On a 2-core
//! machine the bench's caller and the plugin's worker already take both cores,
//! so the export's own work (encoding, HTTP, and the collector itself when it
//! runs here) shows up in the call's time; `call_export_on_no_collector`
//! exports nowhere, so that the batch queue fills and drops, and measures what
//! remains: the cost on the call's own threads.
//!
//! `cargo bench -p ax-e2e --bench telemetry` prints criterion's figures, then
//! the medians and the ratio of export on to off.

use std::hint::black_box;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ax_e2e::{release_library, workspace_root};
use ax_runtime::{Host, HostOptions, Instrumentation, Level, Plugin};
use ax_telemetry::{Config, Protocol, Telemetry};
use criterion::Criterion;
use serde_json::Value;

const INPUT: &[u8] = br#"{"text":"the quick brown fox"}"#;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The collector's process, killed when dropped (a panicking bench too).
struct Reaped {
    child: Child,
    /// Its pid and log files.
    _dir: tempfile::TempDir,
}

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// rotel on loopback when installed: (process, endpoint).
fn collector() -> (Option<Reaped>, String) {
    let lib = workspace_root().join("tests/otel/.venv/lib");
    let agent = std::env::var_os("AX_ROTEL").map(PathBuf::from).or_else(|| {
        std::fs::read_dir(&lib)
            .ok()?
            .filter_map(Result::ok)
            .map(|d| d.path().join("site-packages/rotel/rotel-agent"))
            .find(|p| p.is_file())
    });
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let Some(agent) = agent else {
        println!("telemetry bench: rotel not installed (./scripts/test installs it); exporting to a closed port");
        return (None, endpoint);
    };
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(agent)
        .args(["start", "--exporter", "blackhole"])
        .arg("--otlp-http-endpoint")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--otlp-grpc-endpoint")
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--pid-file")
        .arg(dir.path().join("rotel.pid"))
        .arg("--log-file")
        .arg(dir.path().join("rotel.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("rotel-agent starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    println!("telemetry bench: exporting to rotel at {endpoint}");
    (Some(Reaped { child, _dir: dir }), endpoint)
}

fn load(instrumentation: Instrumentation) -> (Host, Plugin) {
    let host = Host::with_options(HostOptions { instrumentation, ..HostOptions::default() }).unwrap();
    let plugin = host.load_library(release_library("word-count"), "word-count", "{}").expect("plugin loads");
    (host, plugin)
}

fn main() {
    let out_dir = workspace_root().join("target/criterion");
    let mut c = Criterion::default()
        .output_directory(&out_dir)
        .sample_size(40)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();

    let (rotel, endpoint) = collector();
    let config = |endpoint: String| Config {
        protocol: Protocol::HttpProtobuf,
        endpoint: Some(endpoint.clone()),
        endpoint_shown: endpoint,
        service_name: "ax-bench".to_owned(),
        headers: Default::default(),
        sample_ratio: None,
        // The default: word-count's `#[instrument]` spans, not its trace-level `is_word`.
        level: Level::Info,
        metrics_interval: Duration::from_secs(10),
        timeout: Duration::from_secs(5),
        flush_timeout: Duration::from_secs(1),
    };
    let telemetry = Telemetry::start(&config(endpoint.clone())).expect("telemetry starts");
    let sampled_out =
        Telemetry::start(&Config { sample_ratio: Some(0.0), ..config(endpoint) }).expect("telemetry starts");
    // Nothing listens there: the batch processor's queue fills and drops, so
    // what remains is the cost on the call's threads, without the export's CPU.
    let nowhere = Telemetry::start(&config(format!("http://127.0.0.1:{}", free_port()))).expect("telemetry starts");

    // The case exporting to the collector goes last: the export's work (and
    // the collector's, on this machine) goes on for a while after it.
    let cases = [
        ("call_export_off", Instrumentation::default()),
        ("call_spans_forwarded", Instrumentation { spans: true, span_fields: true, ..Instrumentation::default() }),
        ("call_sampled_out", Instrumentation { tracer: Some(sampled_out.tracer()), ..Instrumentation::default() }),
        (
            "call_export_on_no_collector",
            Instrumentation { tracer: Some(nowhere.tracer()), ..Instrumentation::default() },
        ),
        ("call_export_on", Instrumentation { tracer: Some(telemetry.tracer()), ..Instrumentation::default() }),
    ];
    let plugins: Vec<(&str, Host, Plugin)> = cases
        .into_iter()
        .map(|(id, instrumentation)| {
            let (host, plugin) = load(instrumentation);
            (id, host, plugin)
        })
        .collect();
    let mut group = c.benchmark_group("telemetry");
    for (id, _, plugin) in &plugins {
        group.bench_function(*id, |b| b.iter(|| plugin.call_raw("count", black_box(INPUT)).unwrap()));
    }
    group.finish();
    c.final_summary();
    let smoke = std::env::args().any(|a| a == "--test");
    // Interleaved without the collector case, whose export would load the others.
    let all: Vec<&(&str, Host, Plugin)> = plugins.iter().collect();
    let interleaved = if smoke { Vec::new() } else { interleave(&all[..all.len() - 1], INPUT, 1000) };
    // A call with more work than spans: the same three exported spans over a
    // 2 000-word text (its trace-level `is_word` spans are below the level).
    let long_input = format!(r#"{{"text":"{}"}}"#, "the quick brown fox ".repeat(500));
    let long = if smoke { Vec::new() } else { interleave(&[all[0], all[3]], long_input.as_bytes(), 100) };
    for (_, _, plugin) in &plugins {
        plugin.shutdown().unwrap();
    }

    let exported = telemetry.exported_spans();
    let dropped = telemetry.shutdown();
    sampled_out.shutdown();
    nowhere.shutdown();
    drop(rotel);
    if !smoke {
        print_ratios(&out_dir, exported, dropped.spans);
        print_interleaved("interleaved (median of 41 rounds of 1000 calls per case, cases in turn)", &interleaved);
        print_interleaved("a 2 000-word text (median of 41 rounds of 100 calls per case, in turn)", &long);
    }
}

/// Medians of per-call means over rounds that run every case in turn, so that
/// the machine's load drifts over all cases alike.
fn interleave(plugins: &[&(&str, Host, Plugin)], input: &[u8], calls: u32) -> Vec<(String, f64)> {
    const ROUNDS: usize = 41;
    let mut means: Vec<Vec<f64>> = vec![Vec::new(); plugins.len()];
    for _ in 0..ROUNDS {
        for (i, (_, _, plugin)) in plugins.iter().enumerate() {
            let started = Instant::now();
            for _ in 0..calls {
                black_box(plugin.call_raw("count", black_box(input)).unwrap());
            }
            means[i].push(started.elapsed().as_nanos() as f64 / f64::from(calls));
        }
    }
    plugins
        .iter()
        .zip(means)
        .map(|((id, _, _), mut m)| {
            m.sort_by(f64::total_cmp);
            ((*id).to_owned(), m[m.len() / 2])
        })
        .collect()
}

fn print_interleaved(title: &str, rows: &[(String, f64)]) {
    let Some(&(_, off)) = rows.first() else { return };
    println!("\n{title}");
    for (id, t) in rows {
        println!(
            "{:<34} {:>9.0} ns {:>9.3}x  {:+.1} %",
            format!("telemetry/{id}"),
            t,
            t / off,
            (t / off - 1.0) * 100.0
        );
    }
}

fn median_ns(out_dir: &Path, id: &str) -> Option<f64> {
    let text = std::fs::read_to_string(out_dir.join("telemetry").join(id).join("new/estimates.json")).ok()?;
    serde_json::from_str::<Value>(&text).ok()?["median"]["point_estimate"].as_f64()
}

fn print_ratios(out_dir: &Path, exported: u64, dropped: u64) {
    let Some(off) = median_ns(out_dir, "call_export_off") else { return };
    println!("\n{:<34} {:>12} {:>10}", "benchmark (median)", "time", "vs off");
    for id in
        ["call_export_off", "call_spans_forwarded", "call_sampled_out", "call_export_on_no_collector", "call_export_on"]
    {
        if let Some(t) = median_ns(out_dir, id) {
            println!("{:<34} {:>9.0} ns {:>9.3}x", format!("telemetry/{id}"), t, t / off);
        }
    }
    for (id, what) in [
        ("call_export_on", "export on, collector on this machine"),
        ("call_export_on_no_collector", "export on, the call's threads only"),
    ] {
        if let Some(on) = median_ns(out_dir, id) {
            println!("{what}: {:+.0} ns per call, {:+.1} % (goal: <= 5 %)", on - off, (on / off - 1.0) * 100.0);
        }
    }
    println!("spans exported {exported}, dropped {dropped} (a full queue drops rather than block a call)");
    println!("(medians of this run; the machine's load moves absolute figures, ratios less so)");
}
