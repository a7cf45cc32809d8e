//! The debug agent on word-count: line breakpoints (moved to the probe line),
//! conditions, hit conditions, logpoints, the stopped thread's frames and
//! variables, setVariable changing the call's result, evaluate over the
//! bindings and the call, stepping, pause, and compile errors that make a
//! breakpoint unverified.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use ax_e2e::{library, marker_line};
use ax_runtime::debug::{BreakpointSpec, DebugAgent, DebugEvent, Resume, Stop, StopReason};
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
