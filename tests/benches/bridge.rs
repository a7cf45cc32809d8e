//! Benchmarks of the plugin boundary, with ratios to plain Rust in the same run.
//!
//! - `call/*`: a whole plugin call round trip (host thread → worker → plugin →
//!   back), against a plain function call and against doing word-count's work
//!   natively in the host.
//! - `in_plugin/*`: per-use costs inside the plugin, timed by the plugin itself
//!   over N iterations (criterion's `iter_custom`), against a plain
//!   `#[inline(never)]` function call in the same plugin: a probe nobody listens
//!   to, an armed probe, a conditional breakpoint whose condition is false, a
//!   `debug!` event filtered out and forwarded, a span forwarded to the host,
//!   and a span forwarded and profiled (timed into its callsite's histogram and
//!   the call tree), without and with its CPU time. The profiler's cost per span
//!   is `span_profiled − span_forwarded`; its goal is ≤ 100 ns.
//!
//! `cargo bench -p ax-e2e --bench bridge` prints criterion's figures, then a table
//! of medians and ratios. Figures depend on the machine and its load: compare
//! ratios from one run, not absolute numbers across runs.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ax_e2e::{marker_line, release_library, workspace_root};
use ax_runtime::debug::{BreakpointSpec, DebugAgent};
use ax_runtime::{Host, Instrumentation, Plugin, ProbeHandler, ProbeHit, ProfileOptions, Targets};
use criterion::Criterion;
use serde_json::{Value, json};

#[inline(never)]
fn plain(x: u64) -> u64 {
    x.wrapping_add(1)
}

/// word-count's `count`, done natively: decode, count, encode.
#[inline(never)]
fn native_count(input: &[u8], total: &mut u64) -> Vec<u8> {
    let input: Value = serde_json::from_slice(input).unwrap();
    let text = input["text"].as_str().unwrap_or_default();
    let words = text.split_whitespace().filter(|w| w.chars().any(char::is_alphanumeric)).count() as u64;
    *total += words;
    serde_json::to_vec(&json!({ "words": words, "total": *total })).unwrap()
}

struct NoopHandler;

impl ProbeHandler for NoopHandler {
    fn on_probe(&self, hit: &mut ProbeHit<'_>) {
        black_box(hit.len());
    }
}

fn load(host: &Host, package: &str) -> Plugin {
    host.load_library(release_library(package), package, "{}").expect("plugin loads")
}

fn in_plugin(c: &mut Criterion, plugin: &Plugin, id: &str, method: &str) {
    c.benchmark_group("in_plugin").bench_function(id, |b| {
        b.iter_custom(|iters| {
            let out = plugin.call(method, &json!({ "n": iters })).expect("bench call");
            Duration::from_nanos(out["nanos"].as_u64().unwrap_or(0))
        })
    });
}

fn instrumentation(spans: bool, filter: &str) -> Instrumentation {
    Instrumentation {
        spans,
        span_fields: false,
        log_filter: filter.parse::<Targets>().unwrap(),
        profile: None,
        tracer: None,
    }
}

fn main() {
    let out_dir = workspace_root().join("target/criterion");
    let mut c = Criterion::default()
        .output_directory(&out_dir)
        .sample_size(40)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();

    let host = Host::new().unwrap();
    let word_count = load(&host, "word-count");
    let bench = Arc::new(load(&host, "fixture-bench-plugin"));
    let input = br#"{"text":"the quick brown fox jumps over the lazy dog"}"#;

    {
        let mut group = c.benchmark_group("call");
        group.bench_function("plain_fn", |b| b.iter(|| plain(black_box(7))));
        let mut total = 0;
        group.bench_function("native_count", |b| b.iter(|| native_count(black_box(input), &mut total)));
        group.bench_function("plugin_noop", |b| b.iter(|| bench.call_raw("noop", b"null").unwrap()));
        group.bench_function("plugin_count", |b| b.iter(|| word_count.call_raw("count", black_box(input)).unwrap()));
        group.finish();
    }

    bench.set_instrumentation(instrumentation(false, "info"));
    in_plugin(&mut c, &bench, "plain_fn", "plain");
    in_plugin(&mut c, &bench, "probe_unarmed", "probe");
    in_plugin(&mut c, &bench, "event_filtered_out", "event");
    in_plugin(&mut c, &bench, "span_not_forwarded", "span");

    bench.set_probe_handler(Some(Arc::new(NoopHandler)));
    bench.arm_probe(0, true);
    in_plugin(&mut c, &bench, "probe_armed", "probe");
    bench.arm_probe(0, false);

    bench.set_instrumentation(instrumentation(true, "debug"));
    in_plugin(&mut c, &bench, "event_forwarded", "event");
    in_plugin(&mut c, &bench, "span_forwarded", "span");
    let sub = host.events().subscribe(|e| {
        black_box(e);
    });
    in_plugin(&mut c, &bench, "event_to_subscriber", "event");
    host.events().unsubscribe(sub);

    let profiled =
        |span_cpu| Instrumentation { profile: Some(ProfileOptions { span_cpu }), ..instrumentation(true, "info") };
    bench.set_instrumentation(profiled(false));
    in_plugin(&mut c, &bench, "span_profiled", "span");
    bench.set_instrumentation(profiled(true));
    in_plugin(&mut c, &bench, "span_profiled_cpu", "span");
    let spans = bench.profile().callsites.iter().filter_map(|c| c.time.as_ref()).map(|t| t.count()).sum::<u64>();
    black_box(spans);
    bench.set_instrumentation(instrumentation(false, "info"));

    // A conditional breakpoint whose two-variable condition is false: evaluated
    // in the host, on the plugin's thread, at every hit.
    let agent = DebugAgent::attach(bench.clone());
    let line = marker_line("tests/fixtures/bench-plugin/src/lib.rs", "BENCH_PROBE");
    let condition = Some("x > 100000000000 && x < 3".to_owned());
    let states = agent.set_breakpoints(
        "tests/fixtures/bench-plugin/src/lib.rs",
        &[BreakpointSpec { line, condition, ..BreakpointSpec::default() }],
    );
    assert!(states[0].verified, "{states:?}");
    in_plugin(&mut c, &bench, "probe_false_condition", "probe");
    agent.detach();

    c.final_summary();
    print_ratios(&out_dir);
}

/// The median of a finished benchmark, in nanoseconds, from criterion's estimates.
fn median_ns(out_dir: &Path, group: &str, id: &str) -> Option<f64> {
    let path: PathBuf = out_dir.join(group).join(id).join("new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let json: Value = serde_json::from_str(&text).ok()?;
    json["median"]["point_estimate"].as_f64()
}

fn print_ratios(out_dir: &Path) {
    let rows: [(&str, &str, &str); 15] = [
        ("call", "plugin_noop", "plain_fn"),
        ("call", "plugin_count", "plain_fn"),
        ("call", "plugin_count", "native_count"),
        ("in_plugin", "probe_unarmed", "plain_fn"),
        ("in_plugin", "probe_armed", "plain_fn"),
        ("in_plugin", "probe_false_condition", "plain_fn"),
        ("in_plugin", "event_filtered_out", "plain_fn"),
        ("in_plugin", "event_forwarded", "plain_fn"),
        ("in_plugin", "event_to_subscriber", "plain_fn"),
        ("in_plugin", "span_not_forwarded", "plain_fn"),
        ("in_plugin", "span_forwarded", "plain_fn"),
        ("in_plugin", "span_profiled", "plain_fn"),
        ("in_plugin", "span_profiled", "span_forwarded"),
        ("in_plugin", "span_profiled_cpu", "span_forwarded"),
        ("in_plugin", "plain_fn", "plain_fn"),
    ];
    println!("\n{:<32} {:>12} {:>28}", "benchmark (median)", "time", "ratio to baseline");
    for (group, id, baseline) in rows {
        let (Some(t), Some(base)) = (median_ns(out_dir, group, id), median_ns(out_dir, group, baseline)) else {
            continue;
        };
        println!("{:<32} {:>9.2} ns {:>14.1}x {group}/{baseline}", format!("{group}/{id}"), t, t / base);
    }
    let notes = [
        ("span_profiled", "goal: <= 100 ns"),
        ("span_profiled_cpu", "opt-in: two reads of the thread CPU clock, system calls"),
    ];
    for (id, note) in notes {
        if let (Some(profiled), Some(forwarded)) =
            (median_ns(out_dir, "in_plugin", id), median_ns(out_dir, "in_plugin", "span_forwarded"))
        {
            println!("profiler cost per span ({id} - span_forwarded): {:.1} ns ({note})", profiled - forwarded);
        }
    }
    println!("(medians of this run; the machine's load moves absolute figures, ratios less so)");
}
