//! Budgets in-process, against the hostile-plugin fixture: each limit noticed
//! and reported once, calls that reach a probe or a span stopped, the host and
//! the instance serving afterwards, pauses not counted, usage on every call.

use std::sync::Arc;
use std::time::Duration;

use ax_e2e::library;
use ax_runtime::{
    Budget, BudgetKind, CallError, Event, Host, HostOptions, Instrumentation, Plugin, ProbeHandler, ProbeHit, Violation,
};
use serde_json::{Value, json};

fn hostile(host: &Host) -> Plugin {
    host.load_library(library("fixture-hostile"), "hostile", "{}").expect("hostile loads")
}

fn duration(ms: u64) -> Budget {
    Budget { max_duration: Some(Duration::from_millis(ms)), ..Budget::UNLIMITED }
}

fn violations(result: Result<Value, CallError>) -> Vec<Violation> {
    match result {
        Err(CallError::BudgetExceeded { violations, .. }) => violations,
        other => panic!("expected BudgetExceeded, got {other:?}"),
    }
}

fn kinds(violations: &[Violation]) -> Vec<BudgetKind> {
    violations.iter().map(|v| v.kind).collect()
}

fn assert_still_serving(plugin: &Plugin) {
    let out = plugin.call("ok", &Value::Null).expect("a well-behaved call succeeds after the fault");
    assert_eq!(out["ok"], true);
}

#[test]
fn a_call_sleeping_past_its_duration_gets_exactly_one_violation() {
    let host = Host::new().unwrap();
    let events = host.events().channel();
    let plugin = hostile(&host);
    let (result, usage) = plugin.call_with("sleep", &json!({ "ms": 100 }), Some(&duration(50)));
    let violations = violations(result);
    assert_eq!(kinds(&violations), [BudgetKind::Duration]);
    assert!(violations[0].observed >= 50_000_000 && violations[0].limit == 50_000_000);
    assert!(usage.wall >= Duration::from_millis(100));
    let published: Vec<Violation> = events
        .try_iter()
        .filter_map(|e| match e {
            Event::BudgetViolation { violation, method, .. } if method == "sleep" => Some(violation),
            _ => None,
        })
        .collect();
    assert_eq!(published.len(), 1, "{published:?}");
    let err = plugin.call_with("sleep", &json!({ "ms": 100 }), Some(&duration(50))).0.unwrap_err().to_string();
    assert!(err.starts_with("hostile.sleep: budget exceeded: max_duration 50.0 ms exceeded (observed "), "{err}");
    assert_still_serving(&plugin);
}

#[test]
fn endless_loops_that_reach_a_probe_or_a_span_are_stopped() {
    let host = Host::new().unwrap();
    let plugin = hostile(&host);
    for method in ["spin_probe", "spin_span"] {
        let violations = violations(plugin.call_with(method, &Value::Null, Some(&duration(50))).0);
        assert_eq!(kinds(&violations), [BudgetKind::Duration], "{method}");
        assert_still_serving(&plugin);
    }
    // Probes are back to unarmed and spans to unforwarded: the abort left no trace.
    assert!(plugin.call_with("spin_silent", &json!({ "ms": 1 }), Some(&duration(1000))).0.is_ok());
}

#[test]
fn cpu_time_counts_the_calling_thread_only() {
    let host = Host::new().unwrap();
    let plugin = hostile(&host);
    let cpu = Budget { max_cpu_time: Some(Duration::from_millis(50)), ..Budget::UNLIMITED };
    // A loop that reaches nothing cannot be stopped in-process: reported when it returns.
    let (result, usage) = plugin.call_with("spin_silent", &json!({ "ms": 300 }), Some(&cpu));
    assert_eq!(kinds(&violations(result)), [BudgetKind::CpuTime]);
    assert!(usage.cpu.unwrap() >= Duration::from_millis(50), "{usage:?}");
    // Sleeping uses no CPU.
    assert!(plugin.call_with("sleep", &json!({ "ms": 100 }), Some(&cpu)).0.is_ok());
    assert_still_serving(&plugin);
}

#[test]
fn memory_is_the_plugins_own_and_allocations_are_never_refused() {
    let host = Host::new().unwrap();
    let plugin = hostile(&host);
    let memory = Budget { max_memory: Some(64 << 20), ..Budget::UNLIMITED };
    let violations = violations(plugin.call_with("alloc_unbounded", &Value::Null, Some(&memory)).0);
    assert_eq!(kinds(&violations), [BudgetKind::Memory]);
    assert!(violations[0].observed > 64 << 20);

    let (result, _) = plugin.call_with("alloc_1gib", &Value::Null, Some(&memory));
    let violations = self::violations(result);
    assert_eq!(kinds(&violations), [BudgetKind::Memory]);
    assert!(violations[0].observed >= 1 << 30, "{violations:?}");

    // The unwound calls freed what they held.
    let (result, usage) = plugin.call_with("ok", &Value::Null, Some(&memory));
    assert!(result.is_ok());
    assert!(usage.peak.unwrap() < 1 << 20, "{usage:?}");
}

#[test]
fn every_call_reports_its_usage() {
    let host = Host::new().unwrap();
    let plugin = host.load_library(library("word-count"), "word-count", "{}").unwrap();
    let (result, usage) = plugin.call_with("count", &json!({ "text": "a b c" }), None);
    assert!(result.is_ok());
    assert!(usage.wall > Duration::ZERO);
    assert_eq!(usage.cpu, None, "the CPU clock is read only when asked: {usage:?}");
    plugin.set_measure_cpu(true);
    let (result, usage) = plugin.call_with("count", &json!({ "text": "a b c" }), None);
    assert!(result.is_ok());
    assert!(usage.cpu.is_some(), "{usage:?}");
    assert!(usage.allocated.unwrap() > 0, "decoding the input allocates: {usage:?}");
    assert_eq!(usage.paused, Duration::ZERO);
}

/// Blocks at every hit, as a debugger stopped at a breakpoint does.
struct Pauser(Duration);

impl ProbeHandler for Pauser {
    fn on_probe(&self, _hit: &mut ProbeHit<'_>) {
        ax_runtime::paused(|| std::thread::sleep(self.0));
    }
}

#[test]
fn time_paused_at_a_probe_counts_against_no_budget() {
    let host = Host::new().unwrap();
    let plugin = host.load_library(library("word-count"), "word-count", "{}").unwrap();
    plugin.set_probe_handler(Some(Arc::new(Pauser(Duration::from_millis(400)))));
    plugin.arm_probe(0, true);
    let budget = Budget {
        max_duration: Some(Duration::from_millis(200)),
        max_cpu_time: Some(Duration::from_millis(200)),
        ..Budget::UNLIMITED
    };
    let (result, usage) = plugin.call_with("count", &json!({ "text": "a b" }), Some(&budget));
    assert!(result.is_ok(), "{result:?}");
    assert!(usage.paused >= Duration::from_millis(400), "{usage:?}");
    assert!(usage.wall < Duration::from_millis(200), "{usage:?}");
}

/// Calls `method` of another plugin when `count` is entered, and blocks at
/// every armed probe hit as a debugger stopped at a breakpoint does.
struct CallsThenPauses {
    inner: Plugin,
    method: &'static str,
    pause: Duration,
}

impl ProbeHandler for CallsThenPauses {
    fn on_probe(&self, _hit: &mut ProbeHit<'_>) {
        ax_runtime::paused(|| std::thread::sleep(self.pause));
    }

    fn on_span_enter(&self, name: &str) {
        if name == "count" {
            self.inner.call_with(self.method, &Value::Null, None).0.expect("the inner call");
        }
    }
}

/// word-count, under a 200 ms budget, calls `method` of the hostile fixture
/// when its `count` is entered; a pause of 400 ms at an armed probe (word-count's
/// if `outer_probe`, the fixture's if not) must count against no budget.
fn pause_in_a_nested_call_counts_against_no_budget(method: &'static str, outer_probe: bool) {
    // Every span forwarded, so that entering `count` reaches the handler.
    let instrumentation = Instrumentation { spans: true, ..Instrumentation::default() };
    let host = Host::with_options(HostOptions { instrumentation, ..HostOptions::default() }).unwrap();
    let pause = Duration::from_millis(400);
    let inner = hostile(&host);
    inner.set_probe_handler(Some(Arc::new(Pauser(pause))));
    if !outer_probe {
        for site in inner.probe_sites() {
            inner.arm_probe(site.index, true);
        }
    }
    let outer = host.load_library(library("word-count"), "word-count", "{}").unwrap();
    outer.set_probe_handler(Some(Arc::new(CallsThenPauses { inner, method, pause })));
    outer.watch_spans(true);
    outer.arm_probe(0, outer_probe);
    let (result, usage) = outer.call_with("count", &json!({ "text": "a b" }), Some(&duration(200)));
    assert!(result.is_ok(), "{result:?}");
    assert!(usage.paused >= pause, "{usage:?}");
    assert!(usage.wall < Duration::from_millis(200), "{usage:?}");
}

/// A call made inside another on its thread (here by a handler of the outer
/// plugin's span) gives the thread back to the outer call when it ends: the
/// outer call's pause at its probe, after the inner call, still counts against
/// no budget. The inner call's end once left the thread with no call, and the
/// pause went into the outer call's time, over its budget.
#[test]
fn a_call_made_inside_another_gives_the_thread_back_to_it() {
    pause_in_a_nested_call_counts_against_no_budget("ok", true);
}

/// A pause inside a call made inside another (a debugger stopped in the
/// inner plugin) is the outer call's pause too: it counts against neither
/// call's budget.
#[test]
fn a_pause_in_a_call_made_inside_another_counts_against_neither() {
    pause_in_a_nested_call_counts_against_no_budget("probe_string", false);
}

#[test]
fn a_deadlocked_call_is_reported_while_it_hangs() {
    let host = Host::new().unwrap();
    let events = host.events().channel();
    let plugin = Arc::new(hostile(&host));
    let caller = plugin.clone();
    // The call never returns: it must not hold up the test.
    std::thread::spawn(move || caller.call_with("deadlock", &Value::Null, Some(&duration(50))));
    let violation = loop {
        match events.recv_timeout(Duration::from_secs(10)).expect("a violation is published") {
            Event::BudgetViolation { violation, method, .. } if method == "deadlock" => break violation,
            _ => {}
        }
    };
    assert_eq!(violation.kind, BudgetKind::Duration);
    // The instance is stuck for good (in-process code cannot be pre-empted);
    // leave it behind rather than wait for its shutdown.
    std::mem::forget(plugin);
}

#[test]
fn a_thread_that_outlives_its_call_is_no_error() {
    let host = Host::new().unwrap();
    let events = host.events().channel();
    let plugin = hostile(&host);
    let (result, _) = plugin.call_with("outlive", &json!({ "ms": 50 }), Some(&duration(20)));
    assert!(result.is_ok(), "the call itself returned in time: {result:?}");
    let logged = loop {
        match events.recv_timeout(Duration::from_secs(5)).expect("the thread logs") {
            Event::Log(line) if line.target == "hostile" => break line,
            _ => {}
        }
    };
    assert_eq!(logged.message, "still here after the call");
    assert_still_serving(&plugin);
}
