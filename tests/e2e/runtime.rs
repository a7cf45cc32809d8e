//! The runtime library driving real plugin libraries: calls, state, events,
//! the tracing bridge, probes, and every load and call failure of the fixtures.

use std::sync::{Arc, Mutex};

use ax_e2e::{library, marker_line};
use ax_runtime::{
    CallError, Event, Host, HostOptions, Instrumentation, Level, LoadError, Plugin, PluginFailure, ProbeHandler,
    ProbeHit, ProbeVar, Targets,
};
use serde_json::{Value, json};

fn host_with(instrumentation: Instrumentation) -> Host {
    Host::with_options(HostOptions { instrumentation, ..HostOptions::default() }).expect("host starts")
}

fn load(host: &Host, package: &str) -> Plugin {
    host.load_library(library(package), package, "{}").unwrap_or_else(|e| panic!("{package} loads: {e}"))
}

fn count(plugin: &Plugin, text: &str) -> Value {
    plugin.call("count", &json!({ "text": text })).expect("count succeeds")
}

fn debug_filter() -> Targets {
    "debug".parse().unwrap()
}

#[test]
fn word_count_counts_and_keeps_a_total() {
    let host = Host::new().unwrap();
    let plugin = load(&host, "word-count");
    assert_eq!(plugin.methods(), ["count"]);
    assert_eq!(count(&plugin, "a b c"), json!({ "words": 3, "total": 3 }));
    assert_eq!(count(&plugin, "  one   two  "), json!({ "words": 2, "total": 5 }));
    assert_eq!(count(&plugin, "- a"), json!({ "words": 1, "total": 6 }), "punctuation alone is no word");
    let err = plugin.call("count", &json!({ "txt": "a" })).unwrap_err();
    assert!(
        matches!(&err, CallError::Plugin { failure: PluginFailure::Error { kind, .. }, .. } if kind == "invalid_input"),
        "{err:?}"
    );
    assert!(err.to_string().contains("missing field `text`"), "{err}");
    let err = plugin.call("cnt", &Value::Null).unwrap_err().to_string();
    assert_eq!(err, "word-count.cnt: unknown method \"cnt\", expected one of: count (unknown_method)");
}

#[test]
fn state_moves_to_a_new_instance_and_bad_state_is_refused() {
    let host = Host::new().unwrap();
    let first = load(&host, "word-count");
    count(&first, "a b c d");
    let saved = first.save_state().unwrap();
    assert_eq!(saved.schema_version, 1);
    first.shutdown().unwrap();
    assert!(matches!(first.call("count", &json!({"text": "x"})), Err(CallError::Stopped { .. })));

    // A second load of the same file is a new image (copied to a new path).
    let second = load(&host, "word-count");
    second.restore_state(&saved).unwrap();
    assert_eq!(count(&second, "e"), json!({ "words": 1, "total": 5 }));

    let future = ax_runtime::SavedState { schema_version: 7, bytes: b"{}".to_vec().into() };
    let err = second.restore_state(&future).unwrap_err().to_string();
    assert_eq!(err, "word-count.restore_state: unknown state schema version 7 (state)");
    assert_eq!(count(&second, "f"), json!({ "words": 1, "total": 6 }), "a refused state leaves the old one");
}

#[test]
fn events_arrive_in_order_with_log_lines() {
    let host = host_with(Instrumentation { log_filter: debug_filter(), ..Instrumentation::default() });
    let events = host.events().channel();
    let plugin = load(&host, "word-count");
    count(&plugin, "a b c");
    plugin.shutdown().unwrap();
    let events: Vec<Event> = events.try_iter().collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| match e {
            Event::PluginLoaded { .. } => "loaded",
            Event::CallStarted { .. } => "started",
            Event::Log(_) => "log",
            Event::CallFinished { .. } => "finished",
            Event::PluginStopped { .. } => "stopped",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["loaded", "started", "log", "finished", "stopped"]);
    let Event::PluginLoaded { probe_sites, library: lib, .. } = &events[0] else { unreachable!() };
    assert_eq!(*probe_sites, 1);
    assert_eq!(lib, library("word-count"));
    let Event::Log(line) = &events[2] else { unreachable!() };
    assert_eq!(line.level, Level::Debug);
    assert_eq!(line.target, "word_count");
    assert_eq!(line.message, "counted");
    assert_eq!(line.fields, vec![("words".to_owned(), json!(3)), ("total".to_owned(), json!(3))]);
    assert!(line.location.as_ref().unwrap().file.ends_with("src/lib.rs"));
    let Event::CallFinished { method, error, .. } = &events[3] else { unreachable!() };
    assert_eq!((method.as_str(), error), ("count", &None));
}

#[test]
fn the_log_filter_decides_which_events_cross() {
    let host = Host::new().unwrap(); // default filter: info
    let events = host.events().channel();
    let plugin = load(&host, "word-count");
    count(&plugin, "a");
    assert!(!events.try_iter().any(|e| matches!(e, Event::Log(_))), "debug! is filtered out at info");

    // Changing the filter at run time rebuilds the plugin's interest cache.
    plugin.set_instrumentation(Instrumentation { log_filter: debug_filter(), ..Instrumentation::default() });
    count(&plugin, "a");
    assert!(events.try_iter().any(|e| matches!(e, Event::Log(_))));
}

#[test]
fn probe_sites_are_known_at_load() {
    let host = Host::new().unwrap();
    let plugin = load(&host, "word-count");
    let sites = plugin.probe_sites();
    assert_eq!(sites.len(), 1, "{sites:?}");
    let site = &sites[0];
    assert!(site.file.ends_with("examples/word-count/src/lib.rs"), "{}", site.file);
    assert_eq!(site.line, marker_line("examples/word-count/src/lib.rs", "PROBE"));
    assert_eq!(site.function, "word_count::WordCount::count");
    assert_eq!(site.module_path, "word_count");
    assert_eq!(site.vars, ["text", "words"]);
    assert!(plugin.callsites().is_empty(), "tracing callsites register when first reached");
}

/// One probe hit as recorded: (name, value, writable) per binding, and the span names of the stack.
type RecordedHit = (Vec<(String, Value, bool)>, Vec<String>);

/// Records each hit's bindings and shadow stack, and optionally overwrites a binding.
struct Recorder {
    plugin: Mutex<Option<Arc<Plugin>>>,
    hits: Mutex<Vec<RecordedHit>>,
    overwrite: Option<(&'static str, &'static str)>,
    set_result: Mutex<Option<Result<(), String>>>,
}

impl ProbeHandler for Recorder {
    fn on_probe(&self, hit: &mut ProbeHit<'_>) {
        let values =
            (0..hit.len()).map(|i| (hit.name(i).to_owned(), hit.value(i).to_json(), hit.is_writable(i))).collect();
        let stack = self
            .plugin
            .lock()
            .unwrap()
            .as_ref()
            .map(|p| p.current_stack().into_iter().map(|f| f.name).collect())
            .unwrap_or_default();
        self.hits.lock().unwrap().push((values, stack));
        assert!(matches!(hit.value(0), ProbeVar::Str("a b c") | ProbeVar::Str(_)));
        if let Some((name, json)) = self.overwrite {
            let i = hit.position(name).expect("binding exists");
            *self.set_result.lock().unwrap() = Some(hit.set(i, json));
        }
    }
}

fn recorder(overwrite: Option<(&'static str, &'static str)>) -> Arc<Recorder> {
    Arc::new(Recorder {
        plugin: Mutex::new(None),
        hits: Mutex::new(Vec::new()),
        overwrite,
        set_result: Mutex::new(None),
    })
}

#[test]
fn an_armed_probe_shows_bindings_and_the_shadow_stack() {
    let host = host_with(Instrumentation { spans: true, ..Instrumentation::default() });
    let plugin = Arc::new(load(&host, "word-count"));
    let rec = recorder(None);
    *rec.plugin.lock().unwrap() = Some(plugin.clone());
    plugin.set_probe_handler(Some(rec.clone()));

    count(&plugin, "a b c");
    assert!(rec.hits.lock().unwrap().is_empty(), "an unarmed probe never calls the host");

    assert!(plugin.arm_probe(0, true));
    assert!(!plugin.arm_probe(1, true), "there is no second site");
    assert_eq!(count(&plugin, "a b c"), json!({ "words": 3, "total": 6 }));
    let hits = rec.hits.lock().unwrap().clone();
    assert_eq!(hits.len(), 1);
    let (values, stack) = &hits[0];
    assert_eq!(values, &[("text".to_owned(), json!("a b c"), false), ("words".to_owned(), json!(3), true)]);
    assert_eq!(stack, &["count"], "count_words has returned; count is the only live span");

    let names: Vec<String> = plugin.callsites().into_iter().map(|c| c.name).collect();
    for expected in ["count", "count_words"] {
        assert!(names.iter().any(|n| n == expected), "{expected} in {names:?}");
    }
    plugin.set_probe_handler(None);
    *rec.plugin.lock().unwrap() = None;
}

#[test]
fn a_handler_can_overwrite_a_mut_binding() {
    let host = Host::new().unwrap();
    let plugin = load(&host, "word-count");
    let rec = recorder(Some(("words", "100")));
    plugin.set_probe_handler(Some(rec.clone()));
    plugin.arm_probe(0, true);
    assert_eq!(count(&plugin, "a b c"), json!({ "words": 100, "total": 100 }));
    assert_eq!(*rec.set_result.lock().unwrap(), Some(Ok(())));

    let rec = recorder(Some(("words", "\"many\"")));
    plugin.set_probe_handler(Some(rec.clone()));
    assert_eq!(count(&plugin, "a"), json!({ "words": 1, "total": 101 }), "a refused write changes nothing");
    let err = rec.set_result.lock().unwrap().clone().unwrap().unwrap_err();
    assert!(err.starts_with("cannot set `words`: expected a value of type u64"), "{err}");

    let rec = recorder(Some(("text", "\"x\"")));
    plugin.set_probe_handler(Some(rec.clone()));
    count(&plugin, "a");
    let err = rec.set_result.lock().unwrap().clone().unwrap().unwrap_err();
    assert_eq!(err, "`text` is not a writable (`&mut`) binding");
}

/// Sets the `&mut String` binding `name`, then reads it again.
struct StringSetter {
    seen: Mutex<Vec<String>>,
}

impl ProbeHandler for StringSetter {
    fn on_probe(&self, hit: &mut ProbeHit<'_>) {
        let i = hit.position("name").expect("the binding");
        let before = hit.value(i).to_json();
        // The set frees the String's old buffer; the type system keeps `before`'s
        // borrow (had it been kept as a `ProbeVar`) from reaching past this line.
        hit.set(i, "\"a longer value that needs a new buffer\"").expect("the set");
        let after = hit.value(i).to_json();
        self.seen.lock().unwrap().extend([before.to_string(), after.to_string()]);
    }
}

#[test]
fn a_value_read_after_a_set_is_the_new_one_never_the_freed_one() {
    let host = Host::new().unwrap();
    let plugin = load(&host, "fixture-hostile");
    let setter = Arc::new(StringSetter { seen: Mutex::new(Vec::new()) });
    plugin.set_probe_handler(Some(setter.clone()));
    let site = plugin.probe_sites().iter().find(|s| s.vars == ["name"]).expect("probe_string's probe").index;
    plugin.arm_probe(site, true);
    let out = plugin.call("probe_string", &json!({})).unwrap();
    assert_eq!(out, json!({ "name": "a longer value that needs a new buffer" }));
    assert_eq!(
        *setter.seen.lock().unwrap(),
        ["\"captured\"", "\"a longer value that needs a new buffer\""],
        "read before and after the set"
    );
}

#[test]
fn calls_from_many_threads_are_serialised() {
    let host = Host::new().unwrap();
    let plugin = Arc::new(load(&host, "word-count"));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let plugin = plugin.clone();
            std::thread::spawn(move || {
                (0..25).map(|_| count(&plugin, "a b")["total"].as_u64().unwrap()).collect::<Vec<_>>()
            })
        })
        .collect();
    let mut totals: Vec<u64> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    totals.sort_unstable();
    let expected: Vec<u64> = (1..=100).map(|i| i * 2).collect();
    assert_eq!(totals, expected, "every call saw the one before it: no lost update");
}

#[test]
fn fixtures_that_cannot_load_say_why() {
    let host = Host::new().unwrap();
    type Case = (&'static str, fn(&LoadError) -> bool, &'static str);
    let cases: [Case; 4] = [
        ("fixture-no-entry", |e| matches!(e, LoadError::MissingEntry { .. }), "no `ax_plugin_entry_v1` symbol"),
        (
            "fixture-wrong-abi",
            |e| matches!(e, LoadError::AbiMismatch { expected: ax_abi::ABI_VERSION, found: 999, .. }),
            "plugin ABI version 999, expected 3",
        ),
        ("fixture-panic-init", |e| matches!(e, LoadError::Init { .. }), "init exploded on purpose"),
        ("word-count-missing", |e| matches!(e, LoadError::NotFound { .. }), "no such file"),
    ];
    for (package, is_expected, message) in cases {
        let path = if package == "word-count-missing" {
            library("word-count").with_file_name("libnot-there.so")
        } else {
            library(package).to_owned()
        };
        let err = host.load_library(&path, package, "{}").unwrap_err();
        assert!(is_expected(&err), "{package}: {err:?}");
        let text = err.to_string();
        assert!(text.starts_with(&path.display().to_string()), "{package}: {text}");
        assert!(text.contains(message), "{package}: {text}");
    }
    let init = host.load_library(library("fixture-panic-init"), "p", "{}").unwrap_err();
    let LoadError::Init { failure: PluginFailure::Panic { location: Some(loc), .. }, .. } = init else {
        panic!("{init:?}")
    };
    assert!(loc.file.ends_with("panic-init/src/lib.rs"));
    assert_eq!(loc.line, marker_line("tests/fixtures/panic-init/src/lib.rs", "PANIC_INIT"));

    // The host is unharmed: it still loads and runs a good plugin.
    assert_eq!(count(&load(&host, "word-count"), "ok"), json!({ "words": 1, "total": 1 }));
}

#[test]
fn files_that_are_not_whole_libraries_are_refused_before_dlopen() {
    let host = Host::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = ax_e2e::workspace_root().join("tests/fixtures/not-a-library.so");
    let err = host.load_library(&text, "text", "{}").unwrap_err().to_string();
    assert!(err.contains("not a loadable plugin library"), "{err}");

    let bytes = std::fs::read(library("word-count")).unwrap();
    for keep in [64, 4096, bytes.len() / 2, bytes.len() - 1] {
        let truncated = dir.path().join(format!("libtruncated-{keep}.so"));
        std::fs::write(&truncated, &bytes[..keep]).unwrap();
        let err = host.load_library(&truncated, "truncated", "{}").unwrap_err();
        assert!(matches!(err, LoadError::Incomplete { .. }), "{keep} bytes: {err:?}");
    }
}

#[test]
fn a_panic_in_a_call_is_reported_and_the_instance_keeps_serving() {
    let host = Host::new().unwrap();
    let events = host.events().channel();
    let plugin = load(&host, "fixture-panic-call");
    let err = plugin.call("boom", &json!(3)).unwrap_err();
    let (message, location) = err.panic().expect("a panic");
    assert_eq!(message, "index out of bounds: the len is 0 but the index is 3");
    let location = location.expect("with a location");
    assert!(location.file.ends_with("tests/fixtures/panic-call/src/lib.rs"), "{location}");
    assert_eq!(location.line, marker_line("tests/fixtures/panic-call/src/lib.rs", "PANIC_CALL"));
    assert!(
        events.try_iter().any(|e| matches!(e, Event::Panic { method: Some(m), .. } if m == "boom")),
        "a Panic event is published"
    );
    assert_eq!(plugin.call("echo", &json!("hi")).unwrap(), json!({ "input": "hi", "calls": 2 }));
}

#[test]
fn a_panic_in_save_state_is_reported_and_the_instance_keeps_serving() {
    let host = Host::new().unwrap();
    let plugin = load(&host, "fixture-panic-save");
    let err = plugin.save_state().unwrap_err();
    let (message, location) = err.panic().expect("a panic");
    assert_eq!(message, "save_state exploded on purpose");
    assert_eq!(location.unwrap().line, marker_line("tests/fixtures/panic-save/src/lib.rs", "PANIC_SAVE"));
    assert_eq!(plugin.call("echo", &json!(1)).unwrap(), json!(1));
}

#[test]
fn a_panic_on_a_plugin_thread_is_logged() {
    let host = Host::new().unwrap();
    let events = host.events().channel();
    let plugin = load(&host, "fixture-panic-call");
    assert_eq!(plugin.call("thread_panic", &Value::Null).unwrap(), json!(true), "the call itself succeeds");
    let logged = events.try_iter().find_map(|e| match e {
        Event::Log(line) if line.target == "ax_plugin::panic" => Some(line),
        _ => None,
    });
    let line = logged.expect("the panic is logged");
    assert_eq!(line.level, Level::Error);
    assert_eq!(line.message, "plugin thread panicked: worker thread gave up");
    assert!(line.fields.iter().any(|(k, v)| k == "file" && v.as_str().unwrap().ends_with("panic-call/src/lib.rs")));
}

#[test]
fn the_query_cache_serves_plugins_and_outlives_an_instance() {
    let host = Host::new().unwrap();
    // Sharded: each shard holds its share of the bounds, so leave headroom.
    host.configure_cache("bench", ax_runtime::CacheConfig { max_entries: 4000, max_bytes: 4 << 20, default_ttl: None });
    let plugin = host.load_library(library("fixture-bench-plugin"), "bench", "{}").unwrap();
    plugin.call("cache_fill", &json!({ "n": 900 })).unwrap();
    // Keys 0..1000 over a cache holding 0..900: 90 % hits.
    plugin.call("cache_get", &json!({ "n": 1000, "keys": 900 })).unwrap();
    let stats = plugin.cache_stats();
    assert_eq!(stats.entries, 900);
    assert_eq!(stats.hits + stats.misses, 1000);
    assert!((stats.hit_rate() - 0.9).abs() < 0.02, "{stats:?}");
    assert_eq!(stats.bytes, 900 * (8 + 64));
    plugin.shutdown().unwrap();

    // A new instance of the same plugin (a reload, say) finds the cache warm.
    let again = host.load_library(library("fixture-bench-plugin"), "bench", "{}").unwrap();
    again.call("cache_get", &json!({ "n": 100, "keys": 900 })).unwrap();
    assert!(again.cache_stats().hits >= stats.hits + 80, "{:?}", again.cache_stats());
}
