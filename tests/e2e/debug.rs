//! The debug agent on word-count: line breakpoints (moved to the probe line),
//! conditions, hit conditions, logpoints, the stopped thread's frames and
//! variables, setVariable changing the call's result, evaluate over the
//! bindings and the call, stepping, pause, and compile errors that make a
//! breakpoint unverified; data breakpoints (stops exactly on changes, old →
//! new, conditions and hit conditions, a binding that is not there) and the
//! probe history (`prev`, `history`, the stop's earlier hits).

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use ax_e2e::{library, marker_line};
use ax_runtime::debug::{
    BreakpointSpec, DataBreakpointSpec, DataId, DebugAgent, DebugEvent, DebugOptions, Resume, Stop, StopReason,
};
use ax_runtime::{Host, Plugin};
use serde_json::{Value, json};

const SOURCE: &str = "/home/someone/ax/examples/word-count/src/lib.rs";

fn setup(host: &Host) -> (Arc<Plugin>, Arc<DebugAgent>) {
    let plugin = Arc::new(host.load_library(library("word-count"), "word-count", "{}").unwrap());
    let agent = DebugAgent::attach(plugin.clone());
    (plugin, agent)
}

fn probe_line() -> u32 {
    marker_line("examples/word-count/src/lib.rs", "PROBE")
}

fn call(plugin: &Arc<Plugin>, text: &str) -> JoinHandle<Value> {
    let (plugin, text) = (plugin.clone(), text.to_owned());
    std::thread::spawn(move || plugin.call("count", &json!({ "text": text })).unwrap())
}

fn next_event(agent: &DebugAgent) -> DebugEvent {
    agent.events().recv_timeout(Duration::from_secs(10)).expect("an event")
}

fn stopped(agent: &DebugAgent) -> Stop {
    match next_event(agent) {
        DebugEvent::Stopped(stop) => *stop,
        other => panic!("expected a stop, got {other:?}"),
    }
}

fn bp(line: u32) -> BreakpointSpec {
    BreakpointSpec { line, ..BreakpointSpec::default() }
}

#[test]
fn a_breakpoint_stops_shows_frames_and_variables_and_set_variable_changes_the_result() {
    let host = Host::new().unwrap();
    let (plugin, agent) = setup(&host);
    let states = agent.set_breakpoints(SOURCE, &[bp(probe_line() - 1)]);
    assert!(states[0].verified, "{states:?}");
    assert_eq!(states[0].line, Some(probe_line()), "moved to the probe line");

    let running = call(&plugin, "a b c");
    let stop = stopped(&agent);
    assert_eq!(stop.reason, StopReason::Breakpoint);
    assert_eq!(stop.breakpoints, [states[0].id]);
    assert_eq!(stop.frames[0].name, "word_count::WordCount::count");
    assert_eq!(stop.frames[0].line, probe_line());
    assert_eq!(stop.frames[1].name, "count", "the span of the instrumented function");
    assert_eq!(stop.variables, [("text".to_owned(), json!("a b c")), ("words".to_owned(), json!(3))]);
    assert_eq!(stop.writable, ["words"]);
    assert_eq!(stop.frame_fields[0], [("len".to_owned(), json!(5))], "span fields of `count`");

    assert!(agent.set_variable("text", "\"x\"").is_err(), "not a &mut binding");
    let err = agent.set_variable("words", "\"many\"").unwrap_err();
    assert!(err.contains("expected a value of type u64"), "{err}");
    agent.set_variable("words", "42").unwrap();
    assert_eq!(agent.stopped().unwrap().variables[1].1, json!(42));
    agent.resume(Resume::Continue);
    assert_eq!(running.join().unwrap(), json!({ "words": 42, "total": 42 }));
}

#[test]
fn evaluate_resolves_the_probe_bindings_first_then_the_call() {
    let host = Host::new().unwrap();
    let (plugin, agent) = setup(&host);
    agent.set_breakpoints(SOURCE, &[bp(probe_line())]);
    let running = call(&plugin, "a b c");
    stopped(&agent);
    let call = [("input".to_owned(), json!({ "text": "a b c" })), ("method".to_owned(), json!("count"))];
    assert_eq!(agent.evaluate_with("input.text", &call).unwrap(), json!("a b c"));
    assert_eq!(agent.evaluate_with("method", &call).unwrap(), json!("count"));
    assert_eq!(agent.evaluate_with("input.text.len() - words", &call).unwrap(), json!(2));
    // A probe binding of the same name wins over the call's.
    let shadowing = [("words".to_owned(), json!("not the probe's"))];
    assert_eq!(agent.evaluate_with("words", &shadowing).unwrap(), json!(3));
    let err = agent.evaluate("input.text").unwrap_err();
    assert!(err.contains("input"), "without the call, `input` is unknown: {err}");
    let err = agent.evaluate_with("input.nope", &call).unwrap_err();
    assert!(err.contains("nope"), "{err}");
    agent.resume(Resume::Continue);
    running.join().unwrap();
}

#[test]
fn conditions_hit_conditions_and_logpoints() {
    let host = Host::new().unwrap();
    let (plugin, agent) = setup(&host);
    let conditional =
        BreakpointSpec { condition: Some("words > 2 && text.starts_with(\"x\")".into()), ..bp(probe_line()) };
    agent.set_breakpoints(SOURCE, &[conditional]);
    assert_eq!(call(&plugin, "x y").join().unwrap()["words"], 2, "false condition: no stop");
    let running = call(&plugin, "x y z");
    assert_eq!(stopped(&agent).variables[1].1, json!(3));
    agent.resume(Resume::Continue);
    running.join().unwrap();

    let third = BreakpointSpec { hit_condition: Some(">= 3".into()), ..bp(probe_line()) };
    agent.set_breakpoints(SOURCE, &[third]);
    call(&plugin, "a").join().unwrap();
    call(&plugin, "b").join().unwrap();
    let running = call(&plugin, "c");
    assert_eq!(stopped(&agent).variables[0].1, json!("c"), "stops from the third hit");
    agent.resume(Resume::Continue);
    running.join().unwrap();

    let log = BreakpointSpec { log_message: Some("counted {words} in {{{text}}}".into()), ..bp(probe_line()) };
    agent.set_breakpoints(SOURCE, &[log]);
    call(&plugin, "p q").join().unwrap();
    assert_eq!(next_event(&agent), DebugEvent::Output("counted 2 in {p q}".into()));
    assert!(agent.events().try_recv().is_err(), "a logpoint does not stop");
}

#[test]
fn errors_make_breakpoints_unverified_with_the_column() {
    let host = Host::new().unwrap();
    let (_plugin, agent) = setup(&host);
    let specs = [
        BreakpointSpec { condition: Some("words > > 3".into()), ..bp(probe_line()) },
        BreakpointSpec { condition: Some("wrods > 3".into()), ..bp(probe_line()) },
        BreakpointSpec { hit_condition: Some("% 0".into()), ..bp(probe_line()) },
    ];
    let states = agent.set_breakpoints(SOURCE, &specs);
    assert!(states.iter().all(|s| !s.verified), "{states:?}");
    let first = states[0].message.as_deref().unwrap();
    assert!(first.starts_with("condition: words > > 3\n") && first.contains('^'), "{first}");
    assert!(states[1].message.as_deref().unwrap().contains("wrods"), "{states:?}");
    let elsewhere = agent.set_breakpoints("/elsewhere/src/main.rs", &[bp(3)]);
    assert!(elsewhere[0].message.as_deref().unwrap().starts_with("no probe site in /elsewhere/src/main.rs"));
}

#[test]
fn step_over_and_pause() {
    let host = Host::new().unwrap();
    let (plugin, agent) = setup(&host);
    agent.set_breakpoints(SOURCE, &[bp(probe_line())]);
    let first = call(&plugin, "one");
    stopped(&agent);
    agent.set_breakpoints(SOURCE, &[]);
    agent.resume(Resume::Next);
    first.join().unwrap();
    // The next probe at the same depth is in the next call (another host thread,
    // the same plugin: its calls are one thread of execution).
    let second = call(&plugin, "two three");
    let stop = stopped(&agent);
    assert_eq!((stop.reason, stop.variables[0].1.clone()), (StopReason::Step, json!("two three")));
    agent.resume(Resume::Continue);
    second.join().unwrap();

    agent.pause();
    let third = call(&plugin, "four");
    assert_eq!(stopped(&agent).reason, StopReason::Pause);
    agent.resume(Resume::Continue);
    third.join().unwrap();
    assert!(call(&plugin, "five").join().is_ok(), "nothing armed any more: runs through");
    agent.detach();
}

/// The dataId of `path` at word-count's probe, as `dataBreakpointInfo` gives it.
fn data_id(plugin: &Plugin, path: &str) -> String {
    let site = plugin.probe_sites().iter().find(|s| s.line == probe_line()).expect("word-count's probe");
    DataId { file: site.file.clone(), line: site.line, function: site.function.clone(), path: path.to_owned() }
        .to_string()
}

fn data(data_id: String) -> DataBreakpointSpec {
    DataBreakpointSpec { data_id, ..DataBreakpointSpec::default() }
}

/// Runs a call that must not stop.
fn through(plugin: &Arc<Plugin>, agent: &DebugAgent, text: &str) {
    call(plugin, text).join().unwrap();
    assert!(agent.events().try_recv().is_err(), "{text:?} ran through without a stop");
}

#[test]
fn a_data_breakpoint_stops_exactly_when_the_value_changes_and_says_from_what_to_what() {
    let host = Host::new().unwrap();
    let (plugin, agent) = setup(&host);
    let states = agent.set_data_breakpoints(&[data(data_id(&plugin, "words"))]);
    assert!(states[0].verified, "{states:?}");
    assert_eq!(states[0].line, Some(probe_line()));

    through(&plugin, &agent, "a b"); // the first hit on this thread only records
    through(&plugin, &agent, "c d"); // unchanged
    let running = call(&plugin, "e f g");
    let stop = stopped(&agent);
    assert_eq!(stop.reason, StopReason::DataBreakpoint);
    assert_eq!(stop.breakpoints, [states[0].id]);
    assert_eq!(stop.message.as_deref(), Some("`words` changed: 2 → 3"));
    // History: the earlier hits of this probe, newest first.
    let hits: Vec<(u64, Value)> = stop.history.iter().map(|h| (h.hit, h.values[0].1.clone())).collect();
    assert_eq!(hits, [(2, json!("c d")), (1, json!("a b"))]);
    assert_eq!(agent.evaluate("prev(words)").unwrap(), json!(2));
    assert_eq!(agent.evaluate("history(text)").unwrap(), json!(["c d", "a b"]));
    assert_eq!(agent.evaluate("prev(prev(text))").unwrap(), json!("a b"));
    assert_eq!(agent.evaluate("words != prev(words) && history(words).len() == 2").unwrap(), json!(true));
    agent.resume(Resume::Continue);
    running.join().unwrap();
    through(&plugin, &agent, "h i j");
    let running = call(&plugin, "k");
    assert_eq!(stopped(&agent).message.as_deref(), Some("`words` changed: 3 → 1"));
    agent.resume(Resume::Continue);
    running.join().unwrap();

    // A path inside a binding, with a condition and a hit condition (counting changes).
    let spec = DataBreakpointSpec {
        data_id: data_id(&plugin, "text.len()"),
        condition: Some("words > 1".into()),
        hit_condition: Some(">= 2".into()),
    };
    agent.set_data_breakpoints(&[spec]);
    through(&plugin, &agent, "aa"); // records
    through(&plugin, &agent, "bbb"); // changed, but one word: the condition is false
    through(&plugin, &agent, "c de"); // changed, condition true: the first counted change
    let running = call(&plugin, "e f g");
    let stop = stopped(&agent);
    assert_eq!(stop.message.as_deref(), Some("`text.len()` changed: 4 → 5"), "the second counted change");
    agent.resume(Resume::Continue);
    running.join().unwrap();
}

#[test]
fn a_data_breakpoint_set_at_a_stop_measures_from_the_value_shown_and_conditions_read_earlier_hits() {
    let host = Host::new().unwrap();
    let (plugin, agent) = setup(&host);
    agent.set_breakpoints(SOURCE, &[bp(probe_line())]);
    let running = call(&plugin, "a b");
    stopped(&agent);
    let target = agent.data_target("words").unwrap();
    assert!(target.description.contains("words at"), "{target:?}");
    assert!(agent.data_target("nope").unwrap_err().contains("unknown variable `nope`"));
    agent.set_data_breakpoints(&[data(target.data_id)]);
    agent.set_breakpoints(SOURCE, &[]);
    agent.resume(Resume::Continue);
    running.join().unwrap();
    let running = call(&plugin, "c"); // 2 → 1, measured from the stop
    assert_eq!(stopped(&agent).message.as_deref(), Some("`words` changed: 2 → 1"));
    agent.resume(Resume::Continue);
    running.join().unwrap();
    agent.set_data_breakpoints(&[]);

    // `prev` in a condition and a logpoint; `null` at the first hit kept.
    let changed = BreakpointSpec { condition: Some("words != prev(words)".into()), ..bp(probe_line()) };
    let log = BreakpointSpec { log_message: Some("{prev(words)} -> {words}".into()), ..bp(probe_line()) };
    agent.set_breakpoints(SOURCE, &[log, changed]);
    let running = call(&plugin, "x y");
    assert_eq!(next_event(&agent), DebugEvent::Output("null -> 2".into()));
    assert_eq!(stopped(&agent).reason, StopReason::Breakpoint, "null != 2");
    agent.resume(Resume::Continue);
    running.join().unwrap();
    call(&plugin, "z w").join().unwrap();
    assert_eq!(next_event(&agent), DebugEvent::Output("2 -> 2".into()));
    assert!(agent.events().try_recv().is_err(), "unchanged: no stop");
}

#[test]
fn without_history_prev_is_refused_and_a_missing_binding_is_unverified_with_the_reason() {
    let host = Host::new().unwrap();
    let plugin = Arc::new(host.load_library(library("word-count"), "word-count", "{}").unwrap());
    let agent = DebugAgent::attach_with(plugin.clone(), DebugOptions { history_size: 0 });
    let states = agent
        .set_breakpoints(SOURCE, &[BreakpointSpec { condition: Some("prev(words) > 1".into()), ..bp(probe_line()) }]);
    assert!(!states[0].verified);
    assert!(states[0].message.as_deref().unwrap().contains("historySize 0"), "{states:?}");
    let states = agent.set_data_breakpoints(&[
        data(data_id(&plugin, "total")),
        data("examples/word-count/src/lib.rs|3|word_count::gone|words".into()),
        data("not an id".into()),
    ]);
    assert!(states.iter().all(|s| !s.verified), "{states:?}");
    let why: Vec<&str> = states.iter().map(|s| s.message.as_deref().unwrap()).collect();
    assert!(
        why[0].contains("`total` is no longer a binding of the probe in `word_count::WordCount::count`"),
        "{why:?}"
    );
    assert!(why[1].contains("no probe in `word_count::gone`"), "{why:?}");
    assert!(why[2].contains("expected file|line|function|path"), "{why:?}");

    // With a data breakpoint and no history, a stop has none.
    agent.set_data_breakpoints(&[data(data_id(&plugin, "words"))]);
    through(&plugin, &agent, "a");
    let running = call(&plugin, "a b");
    let stop = stopped(&agent);
    assert!(stop.history.is_empty());
    assert!(agent.evaluate("prev(words)").unwrap_err().contains("historySize 0"));
    agent.resume(Resume::Continue);
    running.join().unwrap();
}
