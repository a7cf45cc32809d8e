//! Benchmarks of the plugin boundary, with ratios to plain Rust in the same run.
//!
//! - `call/*`: a whole plugin call round trip (host → plugin → host, on the
//!   calling thread), against a plain function call and against doing
//!   word-count's work natively in the host.
//! - `breakdown/*`: where a call's time goes, each step measured on its own
//!   and printed as a ratio to word-count's work done natively: the plugin's
//!   side alone (its export called through the vtable of a second copy of the
//!   library, with a host vtable that does nothing: the SDK's shim, JSON in
//!   and out, the plugin's code), the host's bookkeeping (the rest of the
//!   round trip) and what it is made of (clock reads), the round trip with the
//!   thread's CPU clock read around it (`call_cpu`, as `ax perf` and the debugger), a JSON `Value` encoded
//!   and decoded by the host, a budget, profiling, and the hand-off to a
//!   dedicated thread that calls used to pay and that only plugins asking for
//!   one (`DEDICATED_THREAD`) still do.
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

use std::ffi::c_void;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

use ax_abi::{
    ABI_VERSION, AxBytes, AxStr, CallsiteMeta, FieldValue, HostVTable, PluginVTable, ProbeSite, ProbeValue, Status,
    interest,
};
use ax_e2e::{marker_line, release_library, workspace_root};
use ax_runtime::debug::{BreakpointSpec, DebugAgent};
use ax_runtime::{Budget, Host, Instrumentation, Plugin, ProbeHandler, ProbeHit, ProfileOptions, Targets};
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
        call_cpu: false,
    }
}

unsafe extern "C" fn no_register(_: *const c_void, _: *const CallsiteMeta) -> u32 {
    interest::NEVER
}
unsafe extern "C" fn no_enabled(_: *const c_void, _: usize) -> bool {
    false
}
unsafe extern "C" fn no_span_new(_: *const c_void, _: usize, _: u8, _: u64, _: *const FieldValue, _: usize) -> u64 {
    0
}
unsafe extern "C" fn no_record(_: *const c_void, _: u64, _: *const FieldValue, _: usize) {}
unsafe extern "C" fn no_span(_: *const c_void, _: u64) {}
unsafe extern "C" fn no_close(_: *const c_void, _: u64) -> bool {
    false
}
unsafe extern "C" fn no_current(_: *const c_void, _: *mut usize) -> u64 {
    0
}
unsafe extern "C" fn no_event(_: *const c_void, _: usize, _: u8, _: u64, _: *const FieldValue, _: usize) {}
unsafe extern "C" fn no_cache_get(_: *const c_void, _: AxStr, _: *mut AxBytes) -> u32 {
    0
}
unsafe extern "C" fn no_cache_put(_: *const c_void, _: AxStr, _: AxStr, _: u64) {}
unsafe extern "C" fn no_probe(_: *const c_void, _: *const ProbeSite, _: *const ProbeValue, _: usize) {}
unsafe extern "C" fn no_panicked(_: *const c_void, _: AxStr, _: AxStr, _: u32, _: u32) {}
unsafe extern "C" fn no_abort_call(_: *const c_void) -> bool {
    false
}

static NO_ABORT: AtomicU32 = AtomicU32::new(0);

/// A host that listens to nothing: what the plugin's side of a call costs alone.
static SILENT_HOST: HostVTable = HostVTable {
    abi_version: ABI_VERSION,
    struct_size: size_of::<HostVTable>() as u32,
    ctx: std::ptr::null(),
    register_callsite: no_register,
    enabled: no_enabled,
    span_new: no_span_new,
    span_record: no_record,
    span_enter: no_span,
    span_exit: no_span,
    span_clone: no_span,
    span_close: no_close,
    current_span: no_current,
    event: no_event,
    abort: &NO_ABORT,
    cache_get: no_cache_get,
    cache_put: no_cache_put,
    probe_hit: no_probe,
    panicked: no_panicked,
    abort_call: no_abort_call,
};

/// A second copy of a plugin library (a new image, with statics of its own),
/// created against [`SILENT_HOST`] and called through its vtable directly.
struct RawPlugin {
    vtable: &'static PluginVTable,
    instance: *mut c_void,
    _library: libloading::Library,
    _dir: tempfile::TempDir,
}

impl RawPlugin {
    fn load(package: &str) -> RawPlugin {
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("raw-copy.so");
        std::fs::copy(release_library(package), &copy).unwrap();
        // SAFETY: a plugin library built from this workspace; its entry symbol has the ABI's signature.
        let (library, vtable) = unsafe {
            let library = libloading::Library::new(&copy).unwrap();
            let entry = *library.get::<ax_abi::EntryFn>(ax_abi::ENTRY_SYMBOL).unwrap();
            let vtable = &*entry();
            (library, vtable)
        };
        let (mut instance, mut err) = (std::ptr::null_mut(), AxBytes::empty());
        // SAFETY: SILENT_HOST lives for the process; the arguments are valid for the call.
        let status = unsafe { (vtable.create)(&SILENT_HOST, AxStr::from_str("{}"), &mut instance, &mut err) };
        assert_eq!(status, Status::OK, "{}", String::from_utf8_lossy(err.as_slice()));
        RawPlugin { vtable, instance, _library: library, _dir: dir }
    }

    fn call(&self, method: &str, input: &[u8]) -> AxBytes {
        let mut out = AxBytes::empty();
        // SAFETY: a live instance, called from one thread at a time.
        let status = unsafe { (self.vtable.call)(self.instance, AxStr::from_str(method), AxStr::new(input), &mut out) };
        assert_eq!(status, Status::OK);
        out
    }
}

fn thread_cpu_now() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The `breakdown/*` benchmarks; see the module docs.
fn breakdown(c: &mut Criterion, host: &Host, input: &[u8]) {
    let raw_count = RawPlugin::load("word-count");
    let raw_bench = RawPlugin::load("fixture-bench-plugin");
    let word_count = load(host, "word-count");
    let bench = load(host, "fixture-bench-plugin");
    let profiled = load(host, "fixture-bench-plugin");
    profiled.set_instrumentation(Instrumentation {
        profile: Some(ProfileOptions { span_cpu: false }),
        ..Instrumentation::default()
    });
    let thread_bound = load(host, "fixture-thread-bound");
    let with_cpu = load(host, "word-count");
    with_cpu.set_measure_cpu(true);
    // Wall time: a CPU budget reads the CPU clock too (the row below it).
    let generous = Budget { max_duration: Some(Duration::from_secs(60)), ..Budget::UNLIMITED };
    let value: Value = serde_json::from_slice(input).unwrap();

    let mut group = c.benchmark_group("breakdown");
    let mut total = 0;
    group.bench_function("native_count", |b| b.iter(|| native_count(black_box(input), &mut total)));
    group.bench_function("plugin_side_count", |b| b.iter(|| raw_count.call("count", black_box(input))));
    group.bench_function("plugin_side_noop", |b| b.iter(|| raw_bench.call("noop", b"null")));
    group.bench_function("round_trip_count", |b| b.iter(|| word_count.call_raw("count", black_box(input)).unwrap()));
    group.bench_function("round_trip_noop", |b| b.iter(|| bench.call_raw("noop", b"null").unwrap()));
    group.bench_function("round_trip_count_cpu_clock", |b| {
        b.iter(|| with_cpu.call_raw("count", black_box(input)).unwrap())
    });
    group.bench_function("round_trip_count_value", |b| b.iter(|| word_count.call("count", &value).unwrap()));
    group.bench_function("thread_cpu_clock_x2", |b| b.iter(|| (thread_cpu_now(), thread_cpu_now())));
    group.bench_function("wall_clock_x2", |b| b.iter(|| (Instant::now(), Instant::now())));
    let counter = quanta::Clock::new();
    group.bench_function("counter_x2", |b| b.iter(|| counter.delta(counter.raw(), counter.raw())));
    group.bench_function("round_trip_noop_budget", |b| {
        b.iter(|| bench.call_raw_with("noop", b"null", Some(&generous)).0.unwrap())
    });
    group.bench_function("round_trip_noop_profiled", |b| b.iter(|| profiled.call_raw("noop", b"null").unwrap()));
    group
        .bench_function("round_trip_dedicated_thread", |b| b.iter(|| thread_bound.call_raw("where", b"null").unwrap()));
    group.finish();
}

fn print_breakdown(out_dir: &Path) {
    let m = |id: &str| median_ns(out_dir, "breakdown", id);
    let Some(native) = m("native_count") else { return };
    let diff = |a: &str, b: &str| Some(m(a)? - m(b)?);
    let rows: [(&str, Option<f64>); 14] = [
        ("native count (JSON in, count, JSON out)", Some(native)),
        ("plugin side of count, no host (shim, JSON, code)", m("plugin_side_count")),
        ("plugin side of a no-op", m("plugin_side_noop")),
        ("round trip, count (call_raw)", m("round_trip_count")),
        ("round trip, no-op (call_raw)", m("round_trip_noop")),
        ("  host bookkeeping: no-op round trip - plugin side", diff("round_trip_noop", "plugin_side_noop")),
        ("    of which 2 clock reads (TSC, after 1000 calls)", m("counter_x2")),
        ("    2 Instant::now (a thread's first 1000 calls)", m("wall_clock_x2")),
        ("host encodes and decodes a Value (call - call_raw)", diff("round_trip_count_value", "round_trip_count")),
        ("a wall-time budget (watchdog watch/unwatch)", diff("round_trip_noop_budget", "round_trip_noop")),
        ("profiling on (reads the CPU clock too)", diff("round_trip_noop_profiled", "round_trip_noop")),
        ("hand-off to a dedicated thread and back", diff("round_trip_dedicated_thread", "round_trip_noop")),
        ("round trip, count, CPU clock on (call_cpu: ax's commands)", m("round_trip_count_cpu_clock")),
        ("  2 thread CPU clock reads (system calls)", m("thread_cpu_clock_x2")),
    ];
    println!("\n{:<54} {:>10} {:>16}", "call breakdown (medians)", "time", "x native count");
    for (what, ns) in rows {
        if let Some(ns) = ns {
            println!("{what:<54} {ns:>7.0} ns {:>15.2}x", ns / native);
        }
    }
    for (what, id) in [("default", "round_trip_count"), ("CPU clock on", "round_trip_count_cpu_clock")] {
        if let Some(count) = m(id) {
            println!(
                "goal: round trip <= 1 us and <= 3x native, {what}: {:.2} us, {:.2}x ({})",
                count / 1000.0,
                count / native,
                if count <= 1000.0 && count <= 3.0 * native { "met" } else { "missed" }
            );
        }
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

    breakdown(&mut c, &host, input);

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
    print_breakdown(&out_dir);
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
