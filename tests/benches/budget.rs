//! Budget figures: how fast a crossed limit is noticed, and what measuring and
//! budgeting cost a plugin call, each against a baseline in the same run.
//!
//! - detection: a call sleeping 100 ms under `max_duration = 20ms`; the time from
//!   the limit being crossed (call start + 20 ms) to the `BudgetViolation` event
//!   (goal ≤ 15 ms; the watchdog ticks every 10 ms).
//! - overhead: word-count's `count` without a budget and with one (the call is
//!   then registered with the watchdog), and a small allocation inside the plugin
//!   (through the SDK's counting allocator) against the same allocation in the
//!   host (system allocator).
//!
//! - isolated: a child that loops without reaching a probe under
//!   `max_duration = 50ms`; the time from the limit crossed to the call
//!   returning, child killed and replaced (goal ≤ 50 ms plus the plugin's init),
//!   next to the time to start a child and load the plugin.
//!
//! - sandbox: an isolated start (child started, plugin loaded) with and
//!   without `[sandbox]` (network none: Landlock, seccomp and a network
//!   namespace), interleaved, and a call round trip in each child (goal:
//!   start ≤ +5 ms, calls unchanged).
//!
//! `cargo bench -p ax-e2e --bench budget`. Figures depend on the machine and its load.

use std::hint::black_box;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ax_e2e::{release_binary, release_library, workspace_root};
use ax_isolate::sandbox::Network;
use ax_isolate::{IsolatedPlugin, IsolationOptions, Sandbox};
use ax_runtime::{Budget, Event, Host};
use criterion::Criterion;
use serde_json::{Value, json};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = p * (sorted.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    sorted[lo].mul_f64(1.0 - (rank - lo as f64)) + sorted[hi].mul_f64(rank - lo as f64)
}

fn detection(host: &Host, runs: usize) -> Vec<Duration> {
    let plugin = host.load_library(release_library("fixture-hostile"), "hostile", "{}").unwrap();
    let (tx, rx) = mpsc::channel();
    let subscription = host.events().subscribe(move |e| match e {
        Event::CallStarted { .. } | Event::BudgetViolation { .. } => {
            let _ = tx.send((Instant::now(), matches!(e, Event::BudgetViolation { .. })));
        }
        _ => {}
    });
    let limit = Duration::from_millis(20);
    let budget = Budget { max_duration: Some(limit), ..Budget::UNLIMITED };
    let latencies = (0..runs)
        .map(|_| {
            let (result, _) = plugin.call_with("sleep", &json!({ "ms": 100 }), Some(&budget));
            assert!(result.is_err());
            let seen: Vec<(Instant, bool)> = rx.try_iter().collect();
            let started = seen.iter().find(|(_, v)| !v).expect("CallStarted").0;
            let noticed = seen.iter().find(|(_, v)| *v).expect("BudgetViolation").0;
            noticed.duration_since(started).saturating_sub(limit)
        })
        .collect();
    host.events().unsubscribe(subscription);
    latencies
}

/// (limit crossed → call returned with a new child serving, child start + load) per run.
fn isolated_kill(host: &Host, runs: usize) -> (Vec<Duration>, Vec<Duration>) {
    let options = IsolationOptions { host_binary: release_binary("ax").to_owned(), sandbox: None };
    let start = || {
        let started = Instant::now();
        let library = release_library("fixture-hostile");
        let plugin = IsolatedPlugin::start(host, library, "hostile", "{}", Budget::UNLIMITED, options.clone()).unwrap();
        (plugin, started.elapsed())
    };
    let (plugin, first_start) = start();
    let mut starts = vec![first_start];
    let limit = Duration::from_millis(50);
    let budget = Budget { max_duration: Some(limit), ..Budget::UNLIMITED };
    let kills = (0..runs)
        .map(|_| {
            let started = Instant::now();
            let (result, _) = plugin.call_with("spin_silent", &json!({ "ms": 10_000 }), Some(&budget));
            assert!(result.is_err());
            started.elapsed().saturating_sub(limit)
        })
        .collect();
    assert_eq!(plugin.restarts(), runs as u64);
    starts.extend((0..runs.min(10)).map(|_| start().1));
    (kills, starts)
}

/// Isolated starts and call round trips, unsandboxed and sandboxed, interleaved:
/// ((starts, calls) unsandboxed, (starts, calls) sandboxed).
#[allow(clippy::type_complexity)]
fn sandbox_cost(host: &Host, runs: usize, calls: usize) -> [(Vec<Duration>, Vec<Duration>); 2] {
    let sandbox =
        Sandbox { network: Network::None, fs_read: Vec::new(), fs_write: Vec::new(), exec: false, best_effort: false };
    let variants = [None, Some(sandbox)];
    let mut figures: [(Vec<Duration>, Vec<Duration>); 2] = Default::default();
    for _ in 0..runs {
        for (variant, (starts, round_trips)) in variants.iter().zip(figures.iter_mut()) {
            let options = IsolationOptions { host_binary: release_binary("ax").to_owned(), sandbox: variant.clone() };
            let started = Instant::now();
            let library = release_library("fixture-hostile");
            let plugin = IsolatedPlugin::start(host, library, "hostile", "{}", Budget::UNLIMITED, options).unwrap();
            starts.push(started.elapsed());
            for _ in 0..calls {
                let started = Instant::now();
                plugin.call_with("ok", &Value::Null, None).0.unwrap();
                round_trips.push(started.elapsed());
            }
        }
    }
    figures
}

fn median_ns(group: &str, id: &str) -> Option<f64> {
    let path = workspace_root().join("target/criterion").join(group).join(id).join("new/estimates.json");
    let json: Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    json["median"]["point_estimate"].as_f64()
}

fn main() {
    let smoke = std::env::args().any(|a| a == "--test");
    let host = Host::new().unwrap();

    let mut latencies = detection(&host, if smoke { 3 } else { 30 });
    latencies.sort_unstable();
    println!(
        "limit crossed → violation event: n={} p50 {:.2} ms  p95 {:.2} ms  max {:.2} ms  (goal ≤ 15 ms)",
        latencies.len(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.95).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3,
    );

    let (mut kills, mut starts) = isolated_kill(&host, if smoke { 2 } else { 20 });
    kills.sort_unstable();
    starts.sort_unstable();
    println!(
        "isolated: limit crossed → killed and replaced: p50 {:.1} ms  p95 {:.1} ms;  child start + load: p50 {:.1} ms",
        percentile(&kills, 0.5).as_secs_f64() * 1e3,
        percentile(&kills, 0.95).as_secs_f64() * 1e3,
        percentile(&starts, 0.5).as_secs_f64() * 1e3,
    );

    let [(mut starts, mut calls), (mut sandboxed_starts, mut sandboxed_calls)] =
        sandbox_cost(&host, if smoke { 2 } else { 20 }, if smoke { 10 } else { 200 });
    for figures in [&mut starts, &mut calls, &mut sandboxed_starts, &mut sandboxed_calls] {
        figures.sort_unstable();
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "sandboxed isolated start: p50 {:.1} ms vs unsandboxed {:.1} ms: {:+.1} ms (goal ≤ +5 ms);  \
         call round trip p50 {:.1} µs vs {:.1} µs (goal: unchanged)",
        ms(percentile(&sandboxed_starts, 0.5)),
        ms(percentile(&starts, 0.5)),
        ms(percentile(&sandboxed_starts, 0.5)) - ms(percentile(&starts, 0.5)),
        ms(percentile(&sandboxed_calls, 0.5)) * 1e3,
        ms(percentile(&calls, 0.5)) * 1e3,
    );

    let mut c = Criterion::default()
        .output_directory(&workspace_root().join("target/criterion"))
        .sample_size(40)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let word_count = host.load_library(release_library("word-count"), "word-count", "{}").unwrap();
    let bench = host.load_library(release_library("fixture-bench-plugin"), "bench", "{}").unwrap();
    let input = br#"{"text":"the quick brown fox jumps over the lazy dog"}"#;
    let limited = Budget {
        max_memory: Some(64 << 20),
        max_cpu_time: Some(Duration::from_secs(2)),
        max_duration: Some(Duration::from_secs(5)),
    };
    {
        let mut group = c.benchmark_group("budget");
        group.bench_function("count_unbudgeted", |b| {
            b.iter(|| word_count.call_raw_with("count", black_box(input), None).0.unwrap())
        });
        group.bench_function("count_budgeted", |b| {
            b.iter(|| word_count.call_raw_with("count", black_box(input), Some(&limited)).0.unwrap())
        });
        let noop = host.events().subscribe(|e| {
            black_box(e);
        });
        group.bench_function("count_with_a_subscriber", |b| {
            b.iter(|| word_count.call_raw_with("count", black_box(input), None).0.unwrap())
        });
        host.events().unsubscribe(noop);
        group.bench_function("alloc_system_in_host", |b| {
            b.iter(|| black_box(Vec::<u8>::with_capacity(64 + (black_box(3usize) & 7))))
        });
        group.bench_function("alloc_counted_in_plugin", |b| {
            b.iter_custom(|iters| {
                let out = bench.call("alloc", &json!({ "n": iters })).unwrap();
                Duration::from_nanos(out["nanos"].as_u64().unwrap_or(0))
            })
        });
        group.finish();
    }
    c.final_summary();
    for (id, base) in [("count_budgeted", "count_unbudgeted"), ("alloc_counted_in_plugin", "alloc_system_in_host")] {
        if let (Some(t), Some(b)) = (median_ns("budget", id), median_ns("budget", base)) {
            println!("budget/{id:<26} {t:>9.1} ns  {:>+6.1}% vs budget/{base} ({b:.1} ns)", (t / b - 1.0) * 100.0);
        }
    }
}
