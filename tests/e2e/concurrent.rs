//! Parallel calls: a plugin that declares itself concurrent (`ConcurrentPlugin`,
//! the `CONCURRENT` flag) runs calls from several threads at once, and stays
//! correct doing it — totals and profile counts exact, a budget stopping the
//! one call that exceeded it and no other, hot reload draining every call in
//! flight before it takes the state. Also: a plugin that asks for a dedicated
//! thread gets one.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use ax_e2e::library;
use ax_runtime::{
    Budget, BudgetKind, CallEnd, CallError, CallStart, CallTrace, CallTracer, CallsiteInfo, Fields, Host, HostOptions,
    InstanceId, Instrumentation, Level, Plugin, ProfileOptions, ReloadOptions, ReloadOutcome, ReloadablePlugin,
    SpanStart, Tracer,
};
use serde_json::{Value, json};

const THREADS: usize = 4;

fn concurrent(host: &Host) -> Arc<Plugin> {
    Arc::new(host.load_library(library("fixture-concurrent"), "concurrent", "{}").expect("concurrent loads"))
}

/// Runs `body(thread)` on `THREADS` threads started together.
fn in_parallel(body: impl Fn(usize) + Send + Sync) {
    let start = Barrier::new(THREADS);
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let (start, body) = (&start, &body);
            scope.spawn(move || {
                start.wait();
                body(thread);
            });
        }
    });
}

#[test]
fn calls_run_in_parallel_and_totals_stay_exact() {
    let host = Host::new().unwrap();
    let plugin = concurrent(&host);
    assert!(plugin.is_concurrent());
    in_parallel(|_| {
        // Calls that overlap in time, whatever the scheduling.
        plugin.call("spin", &json!({ "micros": 20_000 })).unwrap();
        for _ in 0..500 {
            let out = plugin.call("count", &json!({ "text": "one two three" })).unwrap();
            assert_eq!(out["words"], 3);
        }
    });
    let stats = plugin.call("stats", &Value::Null).unwrap();
    assert_eq!(stats["total"], 3 * 500 * THREADS as u64, "{stats}");
    assert_eq!(stats["calls"], 501 * THREADS as u64, "{stats}");
    assert!(stats["max_in_flight"].as_u64().unwrap() >= 2, "calls never overlapped: {stats}");
}

#[test]
fn a_budget_stops_the_call_that_exceeded_it_and_no_other() {
    let host = Host::new().unwrap();
    let plugin = concurrent(&host);
    let cpu = |ms| Budget { max_cpu_time: Some(Duration::from_millis(ms)), ..Budget::UNLIMITED };
    let done = AtomicBool::new(false);
    let good_calls = AtomicU64::new(0);
    in_parallel(|thread| {
        if thread == 0 {
            // 3 s of CPU against a 50 ms limit: stopped at its probe.
            let (result, usage) = plugin.call_with("spin", &json!({ "micros": 3_000_000 }), Some(&cpu(50)));
            done.store(true, Ordering::SeqCst);
            match result {
                Err(CallError::BudgetExceeded { violations, .. }) => {
                    assert_eq!(violations.iter().map(|v| v.kind).collect::<Vec<_>>(), [BudgetKind::CpuTime]);
                }
                other => panic!("expected the CPU budget to stop the call, got {other:?}"),
            }
            assert!(usage.cpu.unwrap() < Duration::from_secs(1), "{usage:?}");
            return;
        }
        // The others, with a generous budget of their own and without, all
        // succeed while the first is being stopped.
        while !done.load(Ordering::SeqCst) {
            let budget = (thread == 1).then(|| cpu(5_000));
            let (result, _) = plugin.call_with("spin", &json!({ "micros": 2_000 }), budget.as_ref());
            result.unwrap_or_else(|e| panic!("thread {thread}: a call within its budget failed: {e}"));
            good_calls.fetch_add(1, Ordering::SeqCst);
        }
    });
    assert!(good_calls.load(Ordering::SeqCst) > 0);
    // The abort is over: a later call runs to its end.
    let out = plugin.call("spin", &json!({ "micros": 60_000 })).unwrap();
    assert!(out["rounds"].as_u64().unwrap() > 0);
}

#[test]
fn profile_counts_are_exact_under_parallel_calls() {
    let host = Host::new().unwrap();
    let plugin = concurrent(&host);
    plugin.set_instrumentation(Instrumentation {
        profile: Some(ProfileOptions { span_cpu: false }),
        ..Instrumentation::default()
    });
    const CALLS: u64 = 300;
    in_parallel(|_| {
        for _ in 0..CALLS {
            plugin.call("count", &json!({ "text": "a b" })).unwrap();
        }
    });
    let profile = plugin.profile();
    let expected = CALLS * THREADS as u64;
    let method = profile.methods.iter().find(|m| m.method == "count").expect("count profiled");
    assert_eq!(method.count, expected);
    assert_eq!(method.time.count(), expected);
    let span = profile.callsites.iter().find(|c| c.name == "count_words").expect("count_words profiled");
    assert_eq!(span.count, expected, "{span:?}");
}

#[test]
fn hot_reload_drains_every_call_in_flight() {
    let host = Arc::new(Host::new().unwrap());
    let options = ReloadOptions { drain_timeout: Duration::from_secs(10), ..ReloadOptions::default() };
    let plugin =
        ReloadablePlugin::load(host, library("fixture-concurrent"), "concurrent", "{}", options).expect("loads");
    let stop = AtomicBool::new(false);
    let answered = AtomicU64::new(0);
    let reloads = AtomicU64::new(0);
    in_parallel(|thread| {
        if thread == 0 {
            for generation in 0..5 {
                std::thread::sleep(Duration::from_millis(30));
                // A new config forces a reload of the same library.
                let config = json!({ "generation": generation }).to_string();
                let outcome = plugin.reconfigure(library("fixture-concurrent"), &config);
                assert!(matches!(outcome, Ok(ReloadOutcome::Reloaded(_))), "reload {generation}: {outcome:?}");
                reloads.fetch_add(1, Ordering::SeqCst);
            }
            stop.store(true, Ordering::SeqCst);
            return;
        }
        while !stop.load(Ordering::SeqCst) {
            let method = if thread == 1 { "spin" } else { "count" };
            let input = json!({ "micros": 3_000, "text": "x y" });
            plugin.call(method, &input).unwrap_or_else(|e| panic!("a call during reloads failed: {e}"));
            answered.fetch_add(1, Ordering::SeqCst);
        }
    });
    assert_eq!(reloads.load(Ordering::SeqCst), 5);
    assert_eq!(plugin.generation(), 6);
    let stats = plugin.call("stats", &Value::Null).unwrap();
    assert_eq!(stats["calls"], answered.load(Ordering::SeqCst), "every call counted once, across reloads: {stats}");
}

#[test]
fn a_plugin_that_asks_for_a_dedicated_thread_runs_on_it() {
    let host = Host::new().unwrap();
    let plugin = Arc::new(host.load_library(library("fixture-thread-bound"), "thread-bound", "{}").unwrap());
    assert!(!plugin.is_concurrent());
    let mut seen = Vec::new();
    for _ in 0..3 {
        let plugin = plugin.clone();
        let out = std::thread::spawn(move || plugin.call("where", &Value::Null).unwrap()).join().unwrap();
        seen.push(out);
    }
    for (i, out) in seen.iter().enumerate() {
        assert_eq!(out["thread"], seen[0]["thread"], "every call on one thread: {seen:?}");
        assert_eq!(out["calls"], i as u64 + 1, "one thread-local counter, from three calling threads: {seen:?}");
    }
    plugin.shutdown().unwrap();
    assert!(matches!(plugin.call("where", &Value::Null), Err(CallError::Stopped { .. })));
}

/// What a tracer heard of one span: (`new` or `close`, span id, name, parent).
type Told = (&'static str, u64, String, Option<u64>);

/// What a tracer heard of the plugin's spans.
#[derive(Default)]
struct Heard(Mutex<Vec<Told>>);

impl CallTracer for Heard {
    fn begin_call(&self, _: &CallStart<'_>) -> CallTrace {
        CallTrace(Box::new(()))
    }
    fn enter_call(&self, _: &CallTrace) -> bool {
        true
    }
    fn exit_call(&self, _: &CallTrace) {}
    fn end_call(&self, _: CallTrace, _: &CallEnd<'_>) {}
    fn max_level(&self) -> Level {
        Level::Info
    }
    fn span_new(&self, span: SpanStart<'_>) {
        self.0.lock().unwrap().push(("new", span.span, span.callsite.name.clone(), span.parent));
    }
    fn span_record(&self, _: InstanceId, _: u64, _: Fields<'_>) {}
    fn span_close(&self, _: InstanceId, span: u64) {
        self.0.lock().unwrap().push(("close", span, String::new(), None));
    }
    fn event(&self, _: InstanceId, _: Option<u64>, _: &'static CallsiteInfo, _: Fields<'_>) {}
}

/// A traced span is closed once, when its last handle goes, wherever that
/// is; ids of spans alive together differ, across threads. Checked both ways
/// the host keeps spans: in its span table (span fields kept, as while
/// debugging) and not (only the tracer takes them).
#[test]
fn traced_spans_close_once_at_their_last_handle_on_any_thread() {
    for span_fields in [false, true] {
        let heard = Arc::new(Heard::default());
        let instrumentation =
            Instrumentation { tracer: Some(Tracer(heard.clone())), span_fields, ..Instrumentation::default() };
        let host = Host::with_options(HostOptions { instrumentation, ..HostOptions::default() }).unwrap();
        let plugin = concurrent(&host);
        assert_eq!(plugin.call("handoff", &Value::Null).unwrap(), json!({ "worker": true }));
        in_parallel(|_| {
            for _ in 0..200 {
                plugin.call("count", &json!({ "text": "a b c" })).unwrap();
            }
        });
        let heard = std::mem::take(&mut *heard.0.lock().unwrap());
        let made = |name: &str| heard.iter().filter(|h| h.0 == "new" && h.2 == name).collect::<Vec<_>>();
        let (handoff, in_worker) = (made("handoff"), made("in_worker"));
        let ids: Vec<u64> = handoff.iter().chain(&in_worker).map(|h| h.1).collect();
        let told: Vec<_> = heard.iter().filter(|h| ids.contains(&h.1)).collect();
        assert_eq!((handoff.len(), in_worker.len()), (1, 1), "span_fields {span_fields}: {told:?}");
        assert_eq!(in_worker[0].3, Some(handoff[0].1), "in_worker's parent is handoff, entered on the other thread");
        let closes =
            |id: u64| heard.iter().enumerate().filter(move |(_, h)| h.0 == "close" && h.1 == id).map(|(i, _)| i);
        let (handoff_closed, worker_closed) = (closes(handoff[0].1).collect::<Vec<_>>(), closes(in_worker[0].1));
        assert_eq!(handoff_closed.len(), 1, "closed once, at its last handle (span_fields {span_fields}): {told:?}");
        assert!(worker_closed.max() < Some(handoff_closed[0]), "the child closed before the clone went");
        // `count_words`, 200 times on each thread: each made and closed once,
        // and no id was given to two spans alive at once.
        let mut live = std::collections::HashSet::new();
        for (event, id, name, _) in &heard {
            match *event {
                "new" => assert!(live.insert(*id), "id {id} of {name} given twice while alive"),
                _ => assert!(live.remove(id), "span {id} closed but not alive"),
            }
        }
        assert!(live.is_empty(), "spans never closed (span_fields {span_fields}): {live:?}");
        assert_eq!(made("count_words").len(), THREADS * 200);
    }
}
