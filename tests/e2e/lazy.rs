//! Lazy loading: first matching call loads, concurrent first calls share one
//! load, other calls wait for activation, preload, failures once per attempt.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ax_e2e::library;
use ax_runtime::{CallError, Event, Host, LazyPlugin, PluginSource};
use serde_json::{Value, json};

fn lazy(dir: &Path, library: &Path, plugin_keys: &str) -> (Arc<Host>, Arc<LazyPlugin>) {
    let manifest = format!(
        "[plugin]\nname = \"word-count\"\nversion = \"0.1.0\"\nlibrary = {:?}\n{plugin_keys}\n",
        library.display().to_string()
    );
    std::fs::write(dir.join("ax-plugin.toml"), manifest).unwrap();
    let source = PluginSource::resolve(dir).unwrap();
    assert!(source.is_lazy());
    let host = Arc::new(Host::new().unwrap());
    let plugin = LazyPlugin::new(host.clone(), source, library);
    (host, plugin)
}

fn loads(events: &[Event]) -> usize {
    events.iter().filter(|e| matches!(e, Event::PluginLoaded { .. })).count()
}

#[test]
fn concurrent_first_calls_share_one_load_and_other_methods_wait_for_activation() {
    let dir = tempfile::tempdir().unwrap();
    let (host, plugin) = lazy(dir.path(), library("word-count"), "activation = [\"method:count\"]");
    let events = host.events().channel();

    let err = plugin.call_with("stats", &Value::Null, None).0.unwrap_err();
    assert!(matches!(err, CallError::NotActivated { .. }), "{err:?}");
    assert!(err.to_string().ends_with("expected one of its activation methods: count"), "{err}");
    assert!(!plugin.is_loaded());

    let callers: Vec<_> = (0..4)
        .map(|_| {
            let plugin = plugin.clone();
            std::thread::spawn(move || plugin.call_with("count", &json!({ "text": "a b" }), None).0.unwrap())
        })
        .collect();
    let mut totals: Vec<u64> = callers.into_iter().map(|c| c.join().unwrap()["total"].as_u64().unwrap()).collect();
    totals.sort_unstable();
    assert_eq!(totals, [2, 4, 6, 8], "one instance served all four");
    assert_eq!(loads(&events.try_iter().collect::<Vec<_>>()), 1, "one load for four first calls");

    // Loaded now: every method reaches the plugin.
    let err = plugin.call_with("stats", &Value::Null, None).0.unwrap_err().to_string();
    assert!(err.contains("unknown method \"stats\""), "{err}");
}

#[test]
fn preload_loads_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let (_host, plugin) = lazy(dir.path(), library("word-count"), "lazy = true\npreload = true");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !plugin.is_loaded() {
        assert!(Instant::now() < deadline, "preloaded without any call");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(plugin.call_with("count", &json!({ "text": "x" }), None).0.unwrap()["total"], 1);
}

#[test]
fn a_failed_load_is_reported_once_per_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("libmissing.so");
    let (host, plugin) = lazy(dir.path(), &missing, "lazy = true");
    let events = host.events().channel();
    let callers: Vec<_> = (0..3)
        .map(|_| {
            let plugin = plugin.clone();
            std::thread::spawn(move || plugin.call_with("count", &json!({ "text": "a" }), None).0.unwrap_err())
        })
        .collect();
    for caller in callers {
        let err = caller.join().unwrap();
        assert!(matches!(&err, CallError::NotLoaded { cause, .. } if cause.contains("libmissing.so")), "{err:?}");
    }
    let failures = |events: &[Event]| -> Vec<u64> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::LoadFailed { attempt, .. } => Some(*attempt),
                _ => None,
            })
            .collect()
    };
    let first: Vec<Event> = events.try_iter().collect();
    let attempts = failures(&first);
    assert!(!attempts.is_empty() && attempts.len() <= 3, "{attempts:?}");
    assert!(attempts.windows(2).all(|w| w[0] < w[1]), "each attempt reported once: {attempts:?}");

    // The next call tries again, and says so once more.
    assert!(plugin.call_with("count", &json!({ "text": "a" }), None).0.is_err());
    let again = failures(&events.try_iter().collect::<Vec<_>>());
    assert_eq!(again, [attempts.last().unwrap() + 1]);
}
