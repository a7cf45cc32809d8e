//! Parallel plugins and sparse calls, printed as tables (no criterion: these
//! are throughput and CPU figures over seconds, not per-call medians).
//!
//! - **Load test**: N callers × M seconds against `fixture-concurrent` (a
//!   `ConcurrentPlugin`), on two workloads — `spin` (100 µs of CPU per call,
//!   work that parallelises) and `count` (a short call, where the host's
//!   bookkeeping shows; the fixture's own counters, five atomic updates of one
//!   shared line per call, show too) — plain, with a budget on every call, and
//!   with profiling on — and `words` (the same short call touching no shared
//!   state: the host's part alone): calls per second, p50 and p99 latency, and
//!   the speedup of N callers over one. word-count (not concurrent: its calls are
//!   serialised) is the contrast. Goal: ≥ 1.8× with 2 callers on 2 cores.
//! - **Sparse calls**: 10 plugins called once a second each, for a few
//!   seconds: the CPU time the whole process used, which must stay ≈ 0 (a
//!   waiting thread that spins before it sleeps would show here), for plugins
//!   run on the caller's thread (the default) and for plugins with a
//!   dedicated thread.
//!
//! `cargo bench -p ax-e2e --bench parallel`; `AX_BENCH_SECONDS` (default 2)
//! sets M. The machine's load moves every figure: read speedups from one
//! run, and the load average printed first.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ax_e2e::release_library;
use ax_runtime::{Budget, Host, Instrumentation, Plugin, ProfileOptions};
use serde_json::{Value, json};

fn process_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

struct Load {
    calls_per_s: f64,
    p50: Duration,
    p99: Duration,
}

/// `callers` threads call `method(input)` for `seconds`; every call must succeed.
fn load_test(
    plugin: &Arc<Plugin>,
    method: &str,
    input: &Value,
    budget: Option<Budget>,
    callers: usize,
    seconds: f64,
) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let input = serde_json::to_vec(input).unwrap();
    let threads: Vec<_> = (0..callers)
        .map(|_| {
            let (plugin, stop, input, method) = (plugin.clone(), stop.clone(), input.clone(), method.to_owned());
            std::thread::spawn(move || {
                let mut latencies = Vec::with_capacity(1 << 16);
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let (result, _) = plugin.call_raw_with(&method, &input, budget.as_ref());
                    latencies.push(started.elapsed());
                    result.expect("load test call");
                }
                latencies
            })
        })
        .collect();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    let mut all: Vec<Duration> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let at = |q: f64| all.get(((all.len() as f64 - 1.0) * q) as usize).copied().unwrap_or_default();
    Load { calls_per_s: all.len() as f64 / elapsed, p50: at(0.5), p99: at(0.99) }
}

fn show(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    if ns >= 1e6 { format!("{:.2} ms", ns / 1e6) } else { format!("{:.1} µs", ns / 1e3) }
}

fn main() {
    // `--test` (CI's smoke run): every row once, briefly, to keep the bench runnable.
    let smoke = std::env::args().any(|a| a == "--test");
    let seconds: f64 =
        if smoke { 0.05 } else { std::env::var("AX_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(2.0) };
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "machine: {cores} cores, load average {}",
        loadavg.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );

    let host = Host::new().unwrap();
    let load = |package: &str, name: &str| Arc::new(host.load_library(release_library(package), name, "{}").unwrap());
    let concurrent = load("fixture-concurrent", "concurrent");
    let profiled = load("fixture-concurrent", "concurrent-profiled");
    profiled.set_instrumentation(Instrumentation {
        profile: Some(ProfileOptions { span_cpu: false }),
        ..Instrumentation::default()
    });
    let word_count = load("word-count", "word-count");
    let budget = Budget { max_cpu_time: Some(Duration::from_secs(10)), ..Budget::UNLIMITED };
    let spin = json!({ "micros": 100 });
    let text = json!({ "text": "the quick brown fox jumps over the lazy dog" });

    println!("\nload test: N callers x {seconds} s");
    println!(
        "{:<28} {:<10} {:>7} {:>12} {:>10} {:>10} {:>9}",
        "plugin / workload", "config", "callers", "calls/s", "p50", "p99", "speedup"
    );
    /// What is measured, against which plugin, calling what, how.
    type Row<'a> = (&'a str, &'a Arc<Plugin>, &'a str, &'a Value, &'a str, Option<Budget>);
    let rows: [Row<'_>; 8] = [
        ("concurrent / spin 100 µs", &concurrent, "spin", &spin, "plain", None),
        ("concurrent / spin 100 µs", &concurrent, "spin", &spin, "budget", Some(budget)),
        ("concurrent / spin 100 µs", &profiled, "spin", &spin, "profiled", None),
        ("concurrent / count", &concurrent, "count", &text, "plain", None),
        ("concurrent / count", &concurrent, "count", &text, "budget", Some(budget)),
        ("concurrent / count", &profiled, "count", &text, "profiled", None),
        ("concurrent / words", &concurrent, "words", &text, "plain", None),
        ("word-count (serial) / count", &word_count, "count", &text, "plain", None),
    ];
    for (what, plugin, method, input, config, budget) in rows {
        let mut one = None;
        for callers in [1, 2, 4] {
            let load = load_test(plugin, method, input, budget, callers, seconds);
            let base = *one.get_or_insert(load.calls_per_s);
            println!(
                "{what:<28} {config:<10} {callers:>7} {:>12.0} {:>10} {:>10} {:>8.2}x",
                load.calls_per_s,
                show(load.p50),
                show(load.p99),
                load.calls_per_s / base
            );
        }
    }
    println!("goal: >= 1.8x with 2 callers on 2 cores (spin); a serial plugin stays near 1x");

    sparse_calls(&host, if smoke { 0.3 } else { seconds.max(3.0) });
}

/// 10 plugins, one call a second each (one call every 100 ms, round robin):
/// the CPU time of the whole process over the window.
fn sparse_calls(host: &Host, seconds: f64) {
    println!("\nsparse calls: 10 plugins, one call a second each, {seconds} s");
    for (what, package) in
        [("on the caller's thread (default)", "word-count"), ("dedicated threads", "fixture-thread-bound")]
    {
        let plugins: Vec<Plugin> = (0..10)
            .map(|i| host.load_library(release_library(package), &format!("sparse-{i}"), "{}").unwrap())
            .collect();
        let method = if package == "word-count" { "count" } else { "where" };
        let input = br#"{"text":"a b c"}"#;
        // Settle after loading.
        std::thread::sleep(Duration::from_millis(300));
        let (cpu_start, started) = (process_cpu(), Instant::now());
        let mut calls = 0u64;
        while started.elapsed().as_secs_f64() < seconds {
            plugins[calls as usize % plugins.len()].call_raw(method, input).unwrap();
            calls += 1;
            std::thread::sleep(Duration::from_millis(100));
        }
        let (cpu, wall) = (process_cpu() - cpu_start, started.elapsed());
        println!(
            "{what:<34} {calls} calls: process CPU {} over {:.1} s = {:.3} % of a core, {} per call",
            show(cpu),
            wall.as_secs_f64(),
            cpu.as_secs_f64() / wall.as_secs_f64() * 100.0,
            show(cpu / calls.max(1) as u32)
        );
    }
    println!("goal: ≈ 0 (the process sleeps between calls)");
}
