//! What OpenTelemetry export costs a call: word-count's `count` on a 4-word
//! text (≈ 2.5 µs; at the default level its two `#[instrument]` spans,
//! `count` and `count_words`, are exported with the call's own span: 3 spans
//! per call) in six cases, each on its own host and plugin:
//!
//! - `off`: no tracer (the baseline);
//! - `spans forwarded`: a tracer that takes the same spans as `export on`
//!   (every call sampled, the `info` level) and does nothing with them: what
//!   a tracer makes the plugin and the bridge do before the tracer's own work;
//! - `sampled out`: `ax-telemetry`'s tracer with `sample_ratio = 0` (metrics only);
//! - `sampled out, no-op`: a tracer that samples every call out and does
//!   nothing: what sampling out costs the plugin and the bridge;
//! - `export on`: the tracer exporting every call to a real collector (rotel,
//!   which `scripts/test` installs in `tests/otel/.venv`, or `AX_ROTEL`);
//! - the same on a 2 000-word text (≈ 30 µs, the same 3 spans).
//!
//! **Paired, on thread CPU time.** Each round runs every case for a block of
//! calls, in an order drawn at random per round, so that whatever the machine
//! does at a given moment hits all cases alike; each case's block is compared
//! with the `off` block of the same round, and `ax_perf::paired` (the
//! statistics of `ax perf ab`) gives the median of those per-round ratios with
//! a 95 % interval. Two clocks: the calling thread's CPU time over the block
//! (a call runs on its caller's thread: the plugin's code, the bridge and all
//! four of the tracer's hooks are on it, whatever else the machine runs), and
//! the caller's wall time. The hosts read no CPU clock per call (the default;
//! ax's own commands do, which makes each call ≈ 1 µs longer here and the
//! shares below smaller). After each `export on` block the bench
//! waits until the collector took every span of it, so that export never
//! backs up (and never spills its work into the other cases' blocks); that
//! wait is in neither clock, and the process's CPU time during it is printed
//! as the export's own cost per span.
//!
//! **The work must have happened.** The bench panics (exit status non-zero)
//! when rotel cannot be started, when the collector did not take exactly 3
//! spans per exported call, when anything was dropped, or when a sampled-out
//! call exported a span.
//!
//! It prints the cost per exported span on the call's thread: its extra CPU
//! time over `off`, over the 3 spans, and how that splits between the plugin
//! and bridge (`spans forwarded`) and the exporter's hooks. It also times the
//! caller's two hooks (`begin_call`, `end_call`) alone, in a loop (which
//! outruns the `ax-otel` thread: sampled out, its ring fills and the records
//! take the lock path). `cargo bench -p ax-e2e --bench telemetry` (`-- --test`: a short
//! run that checks the same things).

use std::hint::black_box;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ax_e2e::{release_library, workspace_root};
use ax_perf::paired::{DEFAULT_THRESHOLD, PairedComparison, compare_paired};
use std::sync::Arc;

use ax_runtime::{
    CallEnd, CallStart, CallTrace, CallTracer, CallsiteInfo, Fields, Host, HostOptions, InstanceId, Instrumentation,
    Level, Plugin, SpanStart, Tracer, Usage,
};
use ax_telemetry::{Config, Protocol, Sampler, Telemetry};

const INPUT: &[u8] = br#"{"text":"the quick brown fox"}"#;

/// Spans exported per word-count call at the `info` level: the call, `count`, `count_words`.
const SPANS_PER_CALL: u64 = 3;

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

/// rotel on loopback, with its blackhole exporter: (process, endpoint).
/// Panics when it is not installed or does not listen.
fn collector() -> (Reaped, String) {
    let lib = workspace_root().join("tests/otel/.venv/lib");
    let agent = std::env::var_os("AX_ROTEL").map(PathBuf::from).or_else(|| {
        std::fs::read_dir(&lib)
            .ok()?
            .filter_map(Result::ok)
            .map(|d| d.path().join("site-packages/rotel/rotel-agent"))
            .find(|p| p.is_file())
    });
    let Some(agent) = agent else {
        panic!(
            "telemetry bench: rotel-agent not found under {}: run ./scripts/test once (it installs it) or set \
             AX_ROTEL; without a collector there is no export to measure",
            lib.display()
        )
    };
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(&agent)
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
        .unwrap_or_else(|e| panic!("telemetry bench: cannot start {}: {e}", agent.display()));
    let reaped = Reaped { child, _dir: dir };
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "telemetry bench: rotel did not listen on 127.0.0.1:{port} within 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    (reaped, format!("http://127.0.0.1:{port}"))
}

fn config(endpoint: &str, ratio: f64) -> Config {
    Config {
        protocol: Protocol::HttpProtobuf,
        endpoint: Some(endpoint.to_owned()),
        endpoint_shown: endpoint.to_owned(),
        service_name: "ax-bench".to_owned(),
        headers: Default::default(),
        sampler: Sampler::ParentBased(ratio),
        // The default: word-count's `#[instrument]` spans, not its trace-level `is_word`.
        level: Level::Info,
        metrics_interval: Duration::from_secs(10),
        timeout: Duration::from_secs(5),
        flush_timeout: Duration::from_secs(5),
        certificate: None,
    }
}

/// A tracer that wants what `ax-telemetry`'s does (spans at `info`) and keeps
/// nothing: of every call (`Kept(true)`), or of none (`Kept(false)`, every
/// call sampled out).
struct Kept(bool);

impl CallTracer for Kept {
    fn begin_call(&self, _: &CallStart<'_>) -> CallTrace {
        CallTrace(Box::new(()))
    }
    fn enter_call(&self, _: &CallTrace) -> bool {
        self.0
    }
    fn exit_call(&self, _: &CallTrace) {}
    fn end_call(&self, _: CallTrace, _: &CallEnd<'_>) {}
    fn max_level(&self) -> Level {
        Level::Info
    }
    fn span_new(&self, span: SpanStart<'_>) {
        black_box(span.span);
    }
    fn span_record(&self, _: InstanceId, _: u64, _: Fields<'_>) {}
    fn span_close(&self, _: InstanceId, span: u64) {
        black_box(span);
    }
    fn event(&self, _: InstanceId, _: Option<u64>, _: &'static CallsiteInfo, _: Fields<'_>) {}
}

struct Case {
    name: &'static str,
    _host: Host,
    plugin: Plugin,
    input: Vec<u8>,
    /// The telemetry whose export this case must have done (export on).
    exports: Option<Telemetry>,
    calls: u64,
    /// The process's CPU time while waiting for the export of its blocks.
    export_cpu: u64,
}

impl Case {
    fn new(name: &'static str, instrumentation: Instrumentation, input: &[u8], exports: Option<Telemetry>) -> Case {
        let host = Host::with_options(HostOptions { instrumentation, ..HostOptions::default() }).unwrap();
        let plugin = host.load_library(release_library("word-count"), "word-count", "{}").expect("plugin loads");
        Case { name, _host: host, plugin, input: input.to_vec(), exports, calls: 0, export_cpu: 0 }
    }

    /// `calls` calls: (wall ns, the calling thread's CPU ns) in all.
    fn block(&mut self, calls: u32) -> (u64, u64) {
        let (cpu, started) = (thread_cpu_ns(), Instant::now());
        for _ in 0..calls {
            let (result, _) = self.plugin.call_raw_with("count", black_box(&self.input), None);
            black_box(result.expect("count succeeds"));
        }
        let (cpu, wall) = (thread_cpu_ns() - cpu, started.elapsed().as_nanos() as u64);
        self.calls += u64::from(calls);
        // Outside the block's time: export is measured by the call's clocks
        // while it runs beside them, not by this wait.
        if let Some(telemetry) = &self.exports {
            let before = cpu_ns(libc::CLOCK_PROCESS_CPUTIME_ID);
            wait_exported(self.name, telemetry, self.calls * SPANS_PER_CALL);
            self.export_cpu += cpu_ns(libc::CLOCK_PROCESS_CPUTIME_ID) - before;
        }
        (wall, cpu)
    }
}

/// Waits until the collector took `expected` spans; panics if any was
/// dropped or if it takes more than 10 s.
fn wait_exported(case: &str, telemetry: &Telemetry, expected: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (exported, dropped) = (telemetry.exported_spans(), telemetry.dropped());
        assert!(
            dropped.spans == 0 && dropped.queue_full == 0,
            "telemetry bench, {case}: spans were dropped ({dropped:?}); {exported} of {expected} exported"
        );
        assert!(exported <= expected, "telemetry bench, {case}: {exported} spans exported, {expected} expected");
        if exported == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "telemetry bench, {case}: the collector took {exported} of {expected} spans within 10 s"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// A small xorshift for the order of the cases in a round.
struct Order(u64);

impl Order {
    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            items.swap(i, (self.0 % (i as u64 + 1)) as usize);
        }
    }
}

/// Per case, per round: (wall ns, calling thread's CPU ns) of its block.
type Rounds = Vec<Vec<(u64, u64)>>;

/// `rounds` rounds of a `calls`-call block of every case, in a random order per round.
fn measure(cases: &mut [Case], rounds: usize, calls: u32, order: &mut Order) -> Rounds {
    let mut out: Rounds = vec![Vec::with_capacity(rounds); cases.len()];
    let mut turn: Vec<usize> = (0..cases.len()).collect();
    for _ in 0..rounds {
        order.shuffle(&mut turn);
        for &i in &turn {
            out[i].push(cases[i].block(calls));
        }
    }
    out
}

fn thread_cpu_ns() -> u64 {
    cpu_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}

fn cpu_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid out pointer.
    let ok = unsafe { libc::clock_gettime(clock, &mut ts) } == 0;
    assert!(ok, "a CPU clock");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The caller's hooks of one call, `begin_call` then `end_call`, in CPU ns
/// per call, for each tracer: the median of 21 runs of 20 000, the tracers'
/// runs taking turns (so that neither gets the warm-up or a quiet moment alone).
fn caller_hooks(tracers: [&Tracer; 2]) -> [f64; 2] {
    let usage = Usage::default();
    let mut runs = [Vec::with_capacity(21), Vec::with_capacity(21)];
    for _ in 0..21 {
        for (Tracer(tracer), runs) in tracers.iter().zip(&mut runs) {
            let start = thread_cpu_ns();
            for call in 0..20_000 {
                let trace = tracer.begin_call(&CallStart { plugin: "word-count", method: "count", instance: 1, call });
                let end = CallEnd { plugin: "word-count", method: "count", instance: 1, usage: &usage, error: None };
                tracer.end_call(black_box(trace), &end);
            }
            runs.push((thread_cpu_ns() - start) as f64 / 20_000.0);
        }
    }
    runs.map(|mut runs| {
        runs.sort_by(f64::total_cmp);
        runs[runs.len() / 2]
    })
}

fn paired(rounds: &Rounds, baseline: usize, candidate: usize, clock: fn(&(u64, u64)) -> u64) -> PairedComparison {
    let side = |i: usize| rounds[i].iter().map(clock).map(|ns| ns.max(1)).collect::<Vec<u64>>();
    compare_paired(&side(baseline), &side(candidate), &[], DEFAULT_THRESHOLD).expect("paired samples")
}

fn percent(ratio: f64) -> String {
    format!("{:+.1} %", (ratio - 1.0) * 100.0)
}

fn row(name: &str, c: &PairedComparison, calls: u32) {
    println!(
        "  {name:<26} {:>8.0} ns {:>8.0} ns   {:>8} [{} … {}]",
        c.baseline_median_ns / f64::from(calls),
        c.candidate_median_ns / f64::from(calls),
        percent(c.ratio.estimate),
        percent(c.ratio.low),
        percent(c.ratio.high),
    );
}

fn main() {
    let smoke = std::env::args().any(|a| a == "--test");
    let (rounds, long_rounds) = if smoke { (20, 10) } else { (400, 200) };
    const CALLS: u32 = 200;
    const LONG_CALLS: u32 = 20;

    // Export a batch 5 ms after its first span rather than 5 s (the SDK's
    // default), so that waiting for a block's spans takes milliseconds.
    // SAFETY: no other thread yet.
    unsafe { std::env::set_var("OTEL_BSP_SCHEDULE_DELAY", "5") };
    let (rotel, endpoint) = collector();
    println!("telemetry bench: exporting to rotel at {endpoint} (blackhole exporter), on this machine");
    let sampled_out = Telemetry::start(&config(&endpoint, 0.0)).expect("telemetry starts");
    let tracer = |t: &Telemetry| Instrumentation { tracer: Some(t.tracer()), ..Instrumentation::default() };
    let sampled_out_instr = tracer(&sampled_out);
    let short_export = Telemetry::start(&config(&endpoint, 1.0)).expect("telemetry starts");
    let short_export_instr = tracer(&short_export);
    let mut cases = vec![
        Case::new("off", Instrumentation::default(), INPUT, None),
        // What a tracer makes the plugin and the bridge do before the tracer
        // itself: the same two plugin spans forwarded, handed to a tracer that
        // drops them.
        Case::new(
            "spans forwarded",
            Instrumentation { tracer: Some(Tracer(Arc::new(Kept(true)))), ..Default::default() },
            INPUT,
            None,
        ),
        Case::new("sampled out", sampled_out_instr, INPUT, None),
        Case::new("export on", short_export_instr, INPUT, Some(short_export)),
        // What sampling out costs the plugin and the bridge, before the
        // tracer's hooks and its `ax-otel` thread's work on the metrics.
        Case::new(
            "sampled out, no-op",
            Instrumentation { tracer: Some(Tracer(Arc::new(Kept(false)))), ..Default::default() },
            INPUT,
            None,
        ),
    ];
    let long_input = format!(r#"{{"text":"{}"}}"#, "the quick brown fox ".repeat(500));
    let long_export = Telemetry::start(&config(&endpoint, 1.0)).expect("telemetry starts");
    let long_export_instr = tracer(&long_export);
    let mut long = vec![
        Case::new("off", Instrumentation::default(), long_input.as_bytes(), None),
        Case::new("export on", long_export_instr, long_input.as_bytes(), Some(long_export)),
    ];

    let mut order = Order(0x9E37_79B9_7F4A_7C15);
    // Warm-up: libraries paged in, buffers grown, the collector's connection made.
    measure(&mut cases, 5, CALLS, &mut order);
    measure(&mut long, 5, LONG_CALLS, &mut order);
    let short = measure(&mut cases, rounds, CALLS, &mut order);
    let long_rounds = measure(&mut long, long_rounds, LONG_CALLS, &mut order);

    // The caller's hooks alone, on tracers of their own (their call spans are not counted above).
    let hooks_out = Telemetry::start(&config(&endpoint, 0.0)).expect("telemetry starts");
    let hooks_on = Telemetry::start(&config(&endpoint, 1.0)).expect("telemetry starts");
    let [hook_out_ns, hook_on_ns] = caller_hooks([&hooks_out.tracer(), &hooks_on.tracer()]);

    assert_eq!(sampled_out.exported_spans(), 0, "telemetry bench: a sampled-out call exported spans");
    for case in cases.iter().chain(&long) {
        if let Some(telemetry) = &case.exports {
            wait_exported(case.name, telemetry, case.calls * SPANS_PER_CALL);
        }
    }
    let export_cpu: u64 = cases.iter().chain(&long).map(|c| c.export_cpu).sum();
    let exported: u64 =
        cases.iter().chain(&long).filter_map(|c| c.exports.as_ref()).map(Telemetry::exported_spans).sum();
    let exported_calls: u64 = cases.iter().chain(&long).filter(|c| c.exports.is_some()).map(|c| c.calls).sum();
    for case in cases.iter().chain(&long) {
        case.plugin.shutdown().unwrap();
    }
    // The hooks' tracers made calls as fast as they could: their spans may
    // overflow the batch queue, and they are not what this checks.
    drop((hooks_out, hooks_on));
    for telemetry in cases.into_iter().chain(long).filter_map(|c| c.exports).chain([sampled_out]) {
        let dropped = telemetry.shutdown();
        assert!(
            dropped.spans == 0 && dropped.queue_full == 0 && dropped.metric_exports == 0,
            "telemetry bench: dropped at shutdown: {dropped:?}"
        );
    }
    drop(rotel);

    let thread = |r: &(u64, u64)| r.1;
    let wall = |r: &(u64, u64)| r.0;
    println!(
        "\n4-word call, {rounds} rounds of {CALLS} calls per case (per call: median off, median case, paired ratio \
         [95 % interval])"
    );
    const ROWS: [(usize, &str); 4] =
        [(1, "spans forwarded"), (4, "sampled out, no-op tracer"), (2, "sampled out"), (3, "export on")];
    println!("calling thread's CPU time (the call, the plugin and every hook run on it):");
    for (i, name) in ROWS {
        row(name, &paired(&short, 0, i, thread), CALLS);
    }
    println!("caller's wall time (the export's work and the collector run on this 2-core machine too):");
    for (i, name) in ROWS {
        row(name, &paired(&short, 0, i, wall), CALLS);
    }
    println!("2 000-word call, {} rounds of {LONG_CALLS} calls:", long_rounds[0].len());
    row("export on, thread CPU", &paired(&long_rounds, 0, 1, thread), LONG_CALLS);
    row("export on, wall", &paired(&long_rounds, 0, 1, wall), LONG_CALLS);

    // Per exported span on the call's thread: its CPU over `off`, over the 3
    // spans; split into what forwarding costs (the plugin's `tracing`, the
    // boundary, the bridge) and the exporter's hooks (the records they append).
    let per_call = |c: &PairedComparison| (c.candidate_median_ns - c.baseline_median_ns) / f64::from(CALLS);
    let (export, forwarded, hooks) =
        (paired(&short, 0, 3, thread), paired(&short, 0, 1, thread), paired(&short, 1, 3, thread));
    let (export_ns, forwarded_ns, hooks_ns) = (per_call(&export), per_call(&forwarded), per_call(&hooks));
    println!(
        "\nper exported span on the call's thread: {:.0} ns ({export_ns:+.0} ns of CPU per call / {SPANS_PER_CALL}; goal \
         <= 100 ns)",
        export_ns / SPANS_PER_CALL as f64
    );
    println!(
        "  of which: forwarding {:.0} ns per plugin span ({} per call: the plugin's tracing, the boundary, the \
         bridge), the exporter's hooks {hooks_ns:.0} ns per call (all {SPANS_PER_CALL} spans and the metrics; export on \
         vs spans forwarded: {} [{} … {}])",
        forwarded_ns / (SPANS_PER_CALL - 1) as f64,
        SPANS_PER_CALL - 1,
        percent(hooks.ratio.estimate),
        percent(hooks.ratio.low),
        percent(hooks.ratio.high)
    );
    println!(
        "the caller's two hooks alone (begin_call + end_call, in a loop), CPU per call: sampled in {hook_on_ns:.0} ns, \
         sampled out {hook_out_ns:.0} ns"
    );
    println!(
        "spans exported {exported} = {SPANS_PER_CALL} x {exported_calls} calls, none dropped (checked); sampled out: \
         none exported (checked)"
    );
    println!(
        "the export's own work after the blocks (converting, batching, protobuf, HTTP; not the collector's): {:.0} ns \
         of CPU per span, at least",
        export_cpu as f64 / exported as f64
    );
    println!("(a shared 2-core VM: rerun before trusting a figure; intervals say how much this run moved)");
}
