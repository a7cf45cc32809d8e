//! The runtime's metrics, as OpenTelemetry instruments. Names and attributes:
//!
//! | metric | kind | attributes |
//! |---|---|---|
//! | `ax.call.duration` (s) | histogram | `ax.plugin`, `ax.method`, `ax.outcome` |
//! | `ax.calls` | counter | `ax.plugin`, `ax.method`, `ax.outcome` |
//! | `ax.call.errors` | counter | `ax.plugin`, `ax.method`, `ax.outcome` |
//! | `ax.budget.violations` | counter | `ax.plugin`, `ax.method`, `ax.budget` |
//! | `ax.reloads` | counter | `ax.plugin`, `ax.reload.outcome` (`ok`, `rolled_back`) |
//! | `ax.load.failures` | counter | `ax.plugin` |
//! | `ax.cache.hits`, `.misses`, `.evictions` | observable counters | `ax.plugin` |
//! | `ax.startup.phase.duration` (s) | histogram | `ax.plugin`, `ax.phase` |
//! | `ax.isolated.restarts` | observable counter | `ax.plugin` |
//!
//! The call metrics are recorded by the `ax-otel` thread from the records the
//! calls' threads left ([`CallTally`]); the other counters and histograms where
//! the thing happens (the event's thread); observable ones are read by the
//! periodic reader's thread when it exports.

use std::sync::Arc;
use std::time::Duration;

use ax_runtime::{BudgetKind, QueryCache};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter, ObservableCounter};
use parking_lot::Mutex;

/// Bucket bounds of `ax.call.duration`, in seconds: 10 µs to 10 s.
const CALL_BOUNDS: [f64; 13] = [1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2, 5e-2, 0.25, 1.0, 10.0];

/// The call metrics the `ax-otel` thread records: each call's duration goes
/// to the histogram as it comes, its counts are summed per (plugin, method,
/// outcome) and added once per drain ([`CallTally::flush`]). Each key's
/// attributes are made once, for the life of the thread. A linear scan finds
/// a key: there are as many as methods times outcomes.
#[derive(Default)]
pub(crate) struct CallTally(Vec<Tally>);

struct Tally {
    plugin: Box<str>,
    method: Box<str>,
    outcome: &'static str,
    attrs: [KeyValue; 3],
    calls: u64,
    errors: u64,
}

impl CallTally {
    pub(crate) fn record(
        &mut self,
        instruments: &Instruments,
        (plugin, method, outcome): (&str, &str, &'static str),
        elapsed: Duration,
        failed: bool,
    ) {
        let at = match self.0.iter().position(|t| t.outcome == outcome && *t.method == *method && *t.plugin == *plugin)
        {
            Some(at) => at,
            None => {
                self.0.push(Tally {
                    plugin: plugin.into(),
                    method: method.into(),
                    outcome,
                    attrs: [
                        KeyValue::new("ax.plugin", plugin.to_owned()),
                        KeyValue::new("ax.method", method.to_owned()),
                        KeyValue::new("ax.outcome", outcome),
                    ],
                    calls: 0,
                    errors: 0,
                });
                self.0.len() - 1
            }
        };
        let tally = &mut self.0[at];
        instruments.call_duration.record(elapsed.as_secs_f64(), &tally.attrs);
        tally.calls += 1;
        tally.errors += u64::from(failed);
    }

    /// Adds the counts recorded since the last flush to the counters.
    pub(crate) fn flush(&mut self, instruments: &Instruments) {
        for tally in &mut self.0 {
            if tally.calls > 0 {
                instruments.calls.add(tally.calls, &tally.attrs);
            }
            if tally.errors > 0 {
                instruments.errors.add(tally.errors, &tally.attrs);
            }
            (tally.calls, tally.errors) = (0, 0);
        }
    }
}

pub(crate) struct Instruments {
    meter: Meter,
    call_duration: Histogram<f64>,
    calls: Counter<u64>,
    errors: Counter<u64>,
    violations: Counter<u64>,
    reloads: Counter<u64>,
    load_failures: Counter<u64>,
    startup: Histogram<f64>,
    /// Keeps observable instruments registered.
    observed: Mutex<Vec<ObservableCounter<u64>>>,
}

impl Instruments {
    pub(crate) fn new(meter: Meter) -> Instruments {
        Instruments {
            call_duration: meter
                .f64_histogram("ax.call.duration")
                .with_unit("s")
                .with_description("Wall time of plugin calls, as budgets measure it (the plugin code's run)")
                .with_boundaries(CALL_BOUNDS.to_vec())
                .build(),
            calls: meter.u64_counter("ax.calls").with_description("Plugin calls answered").build(),
            errors: meter.u64_counter("ax.call.errors").with_description("Plugin calls that failed").build(),
            violations: meter
                .u64_counter("ax.budget.violations")
                .with_description("Limits of a call's budget crossed")
                .build(),
            reloads: meter.u64_counter("ax.reloads").with_description("Hot reloads, done or rolled back").build(),
            load_failures: meter.u64_counter("ax.load.failures").with_description("Failed plugin loads").build(),
            startup: meter
                .f64_histogram("ax.startup.phase.duration")
                .with_unit("s")
                .with_description("Duration of each startup phase of a plugin")
                .with_boundaries(CALL_BOUNDS.to_vec())
                .build(),
            observed: Mutex::new(Vec::new()),
            meter,
        }
    }

    pub(crate) fn violation(&self, plugin: &str, method: &str, kind: BudgetKind) {
        self.violations.add(
            1,
            &[
                KeyValue::new("ax.plugin", plugin.to_owned()),
                KeyValue::new("ax.method", method.to_owned()),
                KeyValue::new("ax.budget", kind.to_string()),
            ],
        );
    }

    pub(crate) fn reload(&self, plugin: &str, ok: bool) {
        let outcome = if ok { "ok" } else { "rolled_back" };
        self.reloads
            .add(1, &[KeyValue::new("ax.plugin", plugin.to_owned()), KeyValue::new("ax.reload.outcome", outcome)]);
    }

    pub(crate) fn load_failure(&self, plugin: &str) {
        self.load_failures.add(1, &[KeyValue::new("ax.plugin", plugin.to_owned())]);
    }

    pub(crate) fn startup_phase(&self, plugin: &str, phase: &str, duration: Duration) {
        self.startup.record(
            duration.as_secs_f64(),
            &[KeyValue::new("ax.plugin", plugin.to_owned()), KeyValue::new("ax.phase", phase.to_owned())],
        );
    }

    /// Reports `cache`'s hits, misses and evictions as `plugin`'s.
    pub(crate) fn observe_cache(&self, plugin: &str, cache: Arc<QueryCache>) {
        type Read = fn(&ax_runtime::CacheStats) -> u64;
        let counters: [(&'static str, &'static str, Read); 3] = [
            ("ax.cache.hits", "Query cache lookups that found a live entry", |s| s.hits),
            ("ax.cache.misses", "Query cache lookups that found none", |s| s.misses),
            ("ax.cache.evictions", "Query cache entries pushed out to make room", |s| s.evictions),
        ];
        let mut observed = self.observed.lock();
        for (name, description, read) in counters {
            let (cache, attrs) = (cache.clone(), [KeyValue::new("ax.plugin", plugin.to_owned())]);
            observed.push(
                self.meter
                    .u64_observable_counter(name)
                    .with_description(description)
                    .with_callback(move |observer| observer.observe(read(&cache.stats()), &attrs))
                    .build(),
            );
        }
    }

    /// Reports `restarts()` as `plugin`'s child restarts.
    pub(crate) fn observe_restarts(&self, plugin: &str, restarts: impl Fn() -> u64 + Send + Sync + 'static) {
        let attrs = [KeyValue::new("ax.plugin", plugin.to_owned())];
        self.observed.lock().push(
            self.meter
                .u64_observable_counter("ax.isolated.restarts")
                .with_description("Restarts of an isolated plugin's child process")
                .with_callback(move |observer| observer.observe(restarts(), &attrs))
                .build(),
        );
    }
}
