//! OpenTelemetry export for `ax run` and `ax dev`: started from the manifest's
//! `[telemetry]` and the `OTEL_*` variables (`ax_telemetry::Config`), off
//! unless one of them asks. [`Export`] flushes what is queued when it is
//! dropped, so a run that ends in an error still delivers its spans, and
//! reports once what could not be delivered. `--traceparent` (or
//! `TRACEPARENT`) and a calls-file line's `"traceparent"` make calls continue
//! a caller's trace.

use anyhow::{Context, Result};
use ax_runtime::{CallEnd, CallError, CallStart, Host, PluginSource, StartupMonitor, Tracer, Usage};
use ax_telemetry::{Config, ContextGuard, Telemetry, TraceParent};

/// A running export; flushes on drop.
pub(crate) struct Export {
    telemetry: Option<Telemetry>,
}

impl Export {
    /// Starts export for `source` if its manifest or the environment asks.
    pub(crate) fn start(source: &PluginSource) -> Result<Option<Export>> {
        let section = source.manifest().map(|m| m.telemetry.clone()).unwrap_or_default();
        let config = Config::resolve(&source.name(), &section).context("telemetry")?;
        let Some(config) = config else { return Ok(None) };
        let telemetry = Telemetry::start(&config).context("cannot start OpenTelemetry export")?;
        tracing::debug!(target: "ax::telemetry", "exporting to {} over {:?}", config.endpoint_shown, config.protocol);
        Ok(Some(Export { telemetry: Some(telemetry) }))
    }

    fn get(&self) -> &Telemetry {
        self.telemetry.as_ref().expect("taken only on drop")
    }

    /// The runtime's tracing hook.
    pub(crate) fn tracer(&self) -> Tracer {
        self.get().tracer()
    }

    /// Subscribes to `host`'s events and reports `plugin`'s query cache.
    pub(crate) fn observe(&self, host: &Host, plugin: &str) {
        self.get().observe(host);
        self.get().observe_cache(plugin, host.cache(plugin));
    }

    /// Reports restarts of an isolated plugin's child.
    pub(crate) fn observe_restarts(&self, plugin: &str, restarts: impl Fn() -> u64 + Send + Sync + 'static) {
        self.get().observe_restarts(plugin, restarts);
    }

    /// Records the startup phases measured by `monitor`.
    pub(crate) fn record_startup(&self, plugin: &str, monitor: &StartupMonitor) {
        let phases = monitor.phases().iter().map(|p| (p.phase.name(), std::time::Duration::from_nanos(p.duration_ns)));
        self.get().record_startup(plugin, phases);
    }
}

impl Drop for Export {
    fn drop(&mut self) {
        if let Some(telemetry) = self.telemetry.take() {
            let dropped = telemetry.shutdown();
            if let Some(lost) = &dropped.flush_timed_out {
                let after = lost.after.as_secs_f64();
                tracing::warn!(
                    target: "ax::telemetry",
                    "timed out after {after} s flushing to {}: {} span(s), {} metric point(s) not sent",
                    lost.endpoint,
                    lost.spans,
                    lost.metric_points
                );
            }
            if dropped.spans > 0 || dropped.metric_exports > 0 || dropped.queue_full > 0 {
                tracing::warn!(
                    target: "ax::telemetry",
                    "telemetry not delivered: {} span(s) and {} metric export(s) dropped, {} call(s) or span(s) \
                     dropped because export could not keep up",
                    dropped.spans,
                    dropped.metric_exports,
                    dropped.queue_full
                );
            }
        }
    }
}

/// Runs `call` under a call span made by `tracer`, for a plugin whose calls
/// do not pass through the runtime's in-process path (isolated mode: its
/// spans stay in the child; the call, its outcome and usage are traced here).
pub(crate) fn traced(
    tracer: Option<&Tracer>,
    plugin: &str,
    method: &str,
    call: u64,
    run: impl FnOnce() -> (Result<serde_json::Value, CallError>, Usage),
) -> (Result<serde_json::Value, CallError>, Usage) {
    let Some(Tracer(tracer)) = tracer else { return run() };
    let trace = tracer.begin_call(&CallStart { plugin, method, instance: 0, call });
    let (result, usage) = run();
    tracer.end_call(trace, &CallEnd { plugin, method, instance: 0, usage: &usage, error: result.as_ref().err() });
    (result, usage)
}

/// Parses `--traceparent` / `TRACEPARENT`.
pub(crate) fn parse_traceparent(text: &str) -> Result<TraceParent, String> {
    TraceParent::parse(text).map_err(|e| e.to_string())
}

/// Makes `traceparent` the parent of this thread's calls while the guard lives.
pub(crate) fn attach(traceparent: Option<&TraceParent>) -> Option<ContextGuard> {
    traceparent.map(Telemetry::attach)
}
