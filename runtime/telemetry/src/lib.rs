//! `ax-telemetry`: OpenTelemetry export for ax over OTLP.
//!
//! [`Telemetry::start`] sets up, from a [`Config`] resolved from the manifest's
//! `[telemetry]` and the `OTEL_*` variables, OTLP exporters ([`export`]) behind
//! a batch span processor and a meter provider with a periodic reader, and the
//! `ax-otel` thread between them and the hooks. [`Telemetry::tracer`] is the
//! runtime's tracing hook ([`ax_runtime::Tracer`], set in
//! `Instrumentation::tracer`): a span per call with the plugin's forwarded spans
//! as children ([`tracer`]). [`Telemetry::observe`] turns the host's events into
//! metrics and spans (reloads, budget violations, failed loads); the cache,
//! startup and isolated restart metrics are registered by the front end that
//! owns those.
//!
//! The runtime does not depend on this crate: a front end that does not start
//! a `Telemetry` links no OpenTelemetry code paths into its calls, and with no
//! tracer set a call pays one relaxed load and a branch per hook.
//! [`Telemetry::shutdown`] (or dropping it) flushes what is queued, traces and
//! metrics in parallel, for at most the flush timeout (`[telemetry]
//! flush_timeout`, 1 s by default): a collector that accepts connections but
//! never answers delays exit by that much, and what was not sent is counted.

mod config;
mod export;
mod metrics;
mod tracer;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ax_runtime::{Event, Host, InstanceId, QueryCache, Tracer};
use crossbeam_channel::Sender;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SpanProcessor};
use parking_lot::Mutex;

pub use config::{Config, Protocol, Sampler, TraceParent};
/// Returned by [`Telemetry::attach`].
pub use opentelemetry::ContextGuard;

use crate::export::{Health, Signal};
use crate::metrics::Instruments;
use crate::tracer::{Converter, OtelTracer};

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("{what} is invalid: expected {expected}")]
    Config { what: String, expected: String },
    #[error("cannot build the OTLP {signal} exporter: {message}")]
    Exporter { signal: String, message: String },
}

/// What was not delivered, as counted when telemetry shut down.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Spans the collector did not take.
    pub spans: u64,
    /// Metric exports the collector did not take.
    pub metric_exports: u64,
    /// Records (calls, spans, fields, events) dropped because a thread's buffer
    /// to the export thread was full.
    pub queue_full: u64,
    /// Set when the flush at exit did not finish within the flush timeout.
    pub flush_timed_out: Option<FlushTimedOut>,
}

/// The flush at exit ran out of time: what was still unsent then.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlushTimedOut {
    /// The flush timeout.
    pub after: Duration,
    /// The collector's address, as configured.
    pub endpoint: String,
    /// Spans queued or in an export that had not finished.
    pub spans: u64,
    /// Metric data points in an export that had not finished.
    pub metric_points: u64,
}

/// A running export pipeline. See the crate docs.
pub struct Telemetry {
    processor: Arc<BatchSpanProcessor>,
    metrics: SdkMeterProvider,
    tracer: Arc<OtelTracer>,
    instruments: Arc<Instruments>,
    /// Tells the `ax-otel` thread to finish.
    stop: Sender<Sender<()>>,
    converter: Option<JoinHandle<()>>,
    flush_timeout: Duration,
    health: Arc<Health>,
    /// Plugin names by instance, from the host's events.
    names: Arc<Mutex<std::collections::HashMap<InstanceId, String>>>,
    shut_down: bool,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").field("endpoint", &self.health.endpoint).finish_non_exhaustive()
    }
}

impl Telemetry {
    /// Starts the exporters' background threads. Nothing is sent until there
    /// is something to send; a collector that is down is found out (and
    /// warned about, once) at the first export.
    pub fn start(config: &Config) -> Result<Telemetry, TelemetryError> {
        let health = Arc::new(Health::new(config.endpoint_shown.clone(), config.timeout));
        let (span_exporter, metric_exporter) = export::exporters(config, &health)?;

        let mut resource = Resource::builder();
        let named_by_env = std::env::var("OTEL_SERVICE_NAME").is_ok_and(|v| !v.is_empty())
            || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|v| v.contains("service.name="));
        if !named_by_env {
            resource = resource.with_service_name(config.service_name.clone());
        }
        let resource = resource.build();

        // Never block a call: a full queue drops spans (the SDK's default
        // queue, 2048 spans, unless OTEL_BSP_MAX_QUEUE_SIZE says otherwise);
        // an export waits at most the client's timeout.
        let batch = BatchConfigBuilder::default().build();
        let mut processor = BatchSpanProcessor::builder(span_exporter).with_batch_config(batch).build();
        processor.set_resource(&resource);
        let processor = Arc::new(processor);
        let reader = PeriodicReader::builder(metric_exporter).with_interval(config.metrics_interval).build();
        let metrics = SdkMeterProvider::builder().with_reader(reader).with_resource(resource).build();
        let instruments = Arc::new(Instruments::new(opentelemetry::metrics::MeterProvider::meter(&metrics, "ax")));

        let tracer = Arc::new(OtelTracer::new(config.sampler, config.level, health.clone()));
        let (stop, stopping) = crossbeam_channel::bounded(1);
        let converter = {
            let (processor, instruments, converter) = (processor.clone(), instruments.clone(), Converter::new(&tracer));
            std::thread::Builder::new()
                .name("ax-otel".to_owned())
                .spawn(move || converter.run(&stopping, &processor, &instruments))
                .map_err(|e| TelemetryError::Exporter { signal: "traces".to_owned(), message: e.to_string() })?
        };
        Ok(Telemetry {
            tracer,
            processor,
            metrics,
            instruments,
            stop,
            converter: Some(converter),
            flush_timeout: config.flush_timeout,
            health,
            names: Arc::default(),
            shut_down: false,
        })
    }

    /// The hook to set as `Instrumentation::tracer`.
    pub fn tracer(&self) -> Tracer {
        Tracer(self.tracer.clone())
    }

    /// Makes `traceparent` the parent of the calls this thread makes until the
    /// guard is dropped.
    pub fn attach(traceparent: &TraceParent) -> ContextGuard {
        let flags = if traceparent.sampled { TraceFlags::SAMPLED } else { TraceFlags::default() };
        let context = SpanContext::new(
            TraceId::from(traceparent.trace_id),
            SpanId::from(traceparent.span_id),
            flags,
            true,
            TraceState::default(),
        );
        Context::new().with_remote_span_context(context).attach()
    }

    /// Turns `host`'s events into telemetry: budget violations (counted),
    /// reloads (a span each, counted by outcome), failed loads (counted).
    pub fn observe(&self, host: &Host) {
        let (tracer, names, health) = (self.tracer.clone(), self.names.clone(), self.health.clone());
        let (instruments, processor) = (self.instruments.clone(), self.processor.clone());
        host.events().subscribe(move |event| match event {
            Event::PluginLoaded { instance, name, .. } => {
                names.lock().insert(*instance, name.clone());
            }
            Event::BudgetViolation { plugin, method, violation, .. } => {
                instruments.violation(plugin, method, violation.kind);
            }
            Event::ReloadSucceeded { previous, instance, report } => {
                let plugin = names.lock().get(previous).cloned().unwrap_or_default();
                names.lock().insert(*instance, plugin.clone());
                tracer.shared.generations.lock().insert(*instance, report.generation);
                instruments.reload(&plugin, true);
                let mut attrs = vec![
                    KeyValue::new("ax.plugin", plugin.clone()),
                    KeyValue::new("ax.generation", report.generation as i64),
                    KeyValue::new("ax.reload.outcome", "ok"),
                    KeyValue::new("ax.reload.state_bytes", report.state_bytes as i64),
                ];
                for (step, took) in &report.steps {
                    attrs.push(KeyValue::new(format!("ax.reload.step.{step}_ns"), took.as_nanos() as i64));
                }
                tracer::reload_span(&processor, &health, format!("{plugin}.reload"), report.duration, attrs, None);
            }
            Event::ReloadRolledBack { instance, generation, step, error } => {
                let plugin = names.lock().get(instance).cloned().unwrap_or_default();
                instruments.reload(&plugin, false);
                let attrs = vec![
                    KeyValue::new("ax.plugin", plugin.clone()),
                    KeyValue::new("ax.generation", *generation as i64),
                    KeyValue::new("ax.reload.outcome", "rolled_back"),
                    KeyValue::new("ax.reload.failed_step", step.to_string()),
                ];
                let name = format!("{plugin}.reload");
                tracer::reload_span(&processor, &health, name, Duration::ZERO, attrs, Some(error.clone()));
            }
            Event::LoadFailed { name, .. } => instruments.load_failure(name),
            _ => {}
        });
    }

    /// Reports `cache`'s hits, misses and evictions as `plugin`'s.
    pub fn observe_cache(&self, plugin: &str, cache: Arc<QueryCache>) {
        self.instruments.observe_cache(plugin, cache);
    }

    /// Reports the restarts of an isolated plugin's child process.
    pub fn observe_restarts(&self, plugin: &str, restarts: impl Fn() -> u64 + Send + Sync + 'static) {
        self.instruments.observe_restarts(plugin, restarts);
    }

    /// Records the startup phases of `plugin` (name and duration each).
    pub fn record_startup<'a>(&self, plugin: &str, phases: impl IntoIterator<Item = (&'a str, Duration)>) {
        for (phase, duration) in phases {
            self.instruments.startup_phase(plugin, phase, duration);
        }
    }

    /// Spans handed to the exporter and accepted by the collector so far.
    pub fn exported_spans(&self) -> u64 {
        self.health.exported_spans.load(Ordering::Relaxed)
    }

    /// What was not delivered so far (spans and metric exports the collector
    /// did not take, records that did not fit a buffer); a flush has not run.
    pub fn dropped(&self) -> Dropped {
        Dropped {
            spans: self.health.dropped_spans.load(Ordering::Relaxed),
            metric_exports: self.health.dropped_metric_exports.load(Ordering::Relaxed),
            queue_full: self.health.queue_dropped.load(Ordering::Relaxed),
            flush_timed_out: None,
        }
    }

    /// Exports what is queued and stops the background threads; returns what
    /// could not be delivered. Traces and metrics are flushed in parallel, for
    /// at most the flush timeout in all; an export still running then is left
    /// behind (its thread ends with the process) and what it held is counted.
    pub fn shutdown(mut self) -> Dropped {
        self.stop()
    }

    fn stop(&mut self) -> Dropped {
        let mut flush_timed_out = None;
        if !self.shut_down {
            self.shut_down = true;
            let deadline = Instant::now() + self.flush_timeout;
            // The converter only hands records on (never blocks on the network).
            if tracer::stop(&self.stop, &self.tracer.shared, self.flush_timeout)
                && let Some(converter) = self.converter.take()
            {
                let _ = converter.join();
            }
            // Only a refusal during the flush stops the wait for it.
            self.health.clear_refused();
            let processor = self.processor.clone();
            let traces = flush(move || {
                let _ = processor.force_flush();
                let _ = processor.shutdown();
            });
            let metrics = self.metrics.clone();
            let metrics = flush(move || {
                let _ = metrics.shutdown();
            });
            let mut finished_in_time = true;
            for (signal, finished) in [(Signal::Traces, traces), (Signal::Metrics, metrics)] {
                match finished.map(|finished| wait(&finished, deadline, || self.health.refused(signal))) {
                    Some(Waited::Finished) | None => {}
                    Some(Waited::Refused) => self.health.gave_up(signal),
                    Some(Waited::TimedOut) => finished_in_time = false,
                }
            }
            if !finished_in_time {
                let health = &self.health;
                let handed = health.handed_spans.load(Ordering::Relaxed);
                let settled =
                    health.exported_spans.load(Ordering::Relaxed) + health.dropped_spans.load(Ordering::Relaxed);
                flush_timed_out = Some(FlushTimedOut {
                    after: self.flush_timeout,
                    endpoint: health.endpoint.clone(),
                    spans: handed.saturating_sub(settled),
                    metric_points: health.metric_points_in_flight.load(Ordering::Relaxed),
                });
            }
        }
        Dropped {
            spans: self.health.dropped_spans.load(Ordering::Relaxed),
            metric_exports: self.health.dropped_metric_exports.load(Ordering::Relaxed),
            queue_full: self.health.queue_dropped.load(Ordering::Relaxed),
            flush_timed_out,
        }
    }
}

/// Runs `body` on a flush thread; the receiver hears when it has returned
/// (`None`: no thread).
fn flush(body: impl FnOnce() + Send + 'static) -> Option<crossbeam_channel::Receiver<()>> {
    let (done, finished) = crossbeam_channel::bounded(1);
    let spawned = std::thread::Builder::new().name("ax-otel-flush".to_owned()).spawn(move || {
        body();
        let _ = done.send(());
    });
    spawned.ok().map(|_| finished)
}

/// How a wait for a flush ended.
enum Waited {
    Finished,
    /// Its exporter could not connect: it would only retry.
    Refused,
    TimedOut,
}

/// Waits for a flush until `deadline`, looking every few milliseconds whether
/// its exporter was `refused` a connection.
fn wait(finished: &crossbeam_channel::Receiver<()>, deadline: Instant, refused: impl Fn() -> bool) -> Waited {
    loop {
        let look = (Instant::now() + Duration::from_millis(2)).min(deadline);
        if finished.recv_deadline(look).is_ok() {
            return Waited::Finished;
        }
        if refused() {
            return Waited::Refused;
        }
        if Instant::now() >= deadline {
            return Waited::TimedOut;
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;

    #[test]
    fn a_flush_is_waited_for_until_it_ends_its_exporter_is_refused_or_time_is_up() {
        let far = Instant::now() + Duration::from_secs(60);
        let ends = flush(|| std::thread::sleep(Duration::from_millis(20))).expect("a thread");
        assert!(matches!(wait(&ends, far, || false), Waited::Finished));

        // A flush whose exporter cannot connect would retry: not waited for.
        let refused = AtomicBool::new(false);
        let retries = flush(|| std::thread::sleep(Duration::from_secs(30))).expect("a thread");
        let started = Instant::now();
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(20));
                refused.store(true, Ordering::Relaxed);
            });
            assert!(matches!(wait(&retries, far, || refused.load(Ordering::Relaxed)), Waited::Refused));
        });
        assert!(started.elapsed() < Duration::from_secs(30), "the wait ended before the flush");

        let soon = Instant::now() + Duration::from_millis(20);
        assert!(matches!(wait(&retries, soon, || false), Waited::TimedOut));
    }

    /// OTLP over gRPC to a real collector (rotel, which `scripts/test`
    /// installs; `cargo test -p ax-telemetry --features grpc`), and to a port
    /// where nothing listens.
    #[cfg(feature = "grpc")]
    mod grpc {
        use std::net::{TcpListener, TcpStream};
        use std::path::PathBuf;
        use std::process::{Command, Stdio};

        use ax_runtime::{CallEnd, CallStart, Level, Usage};

        use super::*;

        fn config(endpoint: String) -> Config {
            Config {
                protocol: Protocol::Grpc,
                endpoint_shown: endpoint.clone(),
                endpoint: Some(endpoint),
                service_name: "ax-grpc-test".to_owned(),
                headers: Default::default(),
                sampler: Sampler::ParentBased(1.0),
                level: Level::Info,
                metrics_interval: Duration::from_secs(60),
                timeout: Duration::from_secs(5),
                flush_timeout: Duration::from_secs(30),
                certificate: None,
            }
        }

        /// `calls` sampled calls through the tracer's hooks: one span each.
        fn calls(telemetry: &Telemetry, calls: u64) {
            let Tracer(tracer) = telemetry.tracer();
            let usage = Usage::default();
            for call in 0..calls {
                let trace = tracer.begin_call(&CallStart { plugin: "p", method: "m", instance: 1, call });
                tracer.enter_call(&trace);
                tracer.exit_call(&trace);
                let end = CallEnd { plugin: "p", method: "m", instance: 1, usage: &usage, error: None };
                tracer.end_call(trace, &end);
            }
        }

        fn free_port() -> u16 {
            TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
        }

        fn rotel_agent() -> PathBuf {
            if let Some(path) = std::env::var_os("AX_ROTEL") {
                return path.into();
            }
            let lib = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/otel/.venv/lib");
            let found = std::fs::read_dir(&lib).ok().and_then(|dirs| {
                dirs.filter_map(Result::ok)
                    .map(|d| d.path().join("site-packages/rotel/rotel-agent"))
                    .find(|p| p.is_file())
            });
            found.unwrap_or_else(|| panic!("rotel-agent not found under {}: run ./scripts/test", lib.display()))
        }

        /// A child process, killed when dropped (a failing test too).
        struct Killed(std::process::Child);

        impl Drop for Killed {
            fn drop(&mut self) {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }

        /// rotel listening for gRPC: the process and its gRPC port.
        fn rotel(dir: &std::path::Path) -> (Killed, u16) {
            let (http, grpc) = (free_port(), free_port());
            let rotel = Command::new(rotel_agent())
                .args(["start", "--exporter", "blackhole"])
                .arg("--otlp-http-endpoint")
                .arg(format!("127.0.0.1:{http}"))
                .arg("--otlp-grpc-endpoint")
                .arg(format!("127.0.0.1:{grpc}"))
                .arg("--pid-file")
                .arg(dir.join("rotel.pid"))
                .arg("--log-file")
                .arg(dir.join("rotel.log"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("rotel-agent starts");
            let rotel = Killed(rotel);
            let deadline = Instant::now() + Duration::from_secs(10);
            while TcpStream::connect(("127.0.0.1", grpc)).is_err() {
                assert!(Instant::now() < deadline, "rotel did not listen on {grpc} within 10 s");
                std::thread::sleep(Duration::from_millis(20));
            }
            (rotel, grpc)
        }

        /// Five calls exported as `config` says, and flushed: all five spans taken.
        fn five_spans_reach(config: &Config) {
            let mut telemetry = Telemetry::start(config).unwrap();
            calls(&telemetry, 5);
            let dropped = telemetry.stop();
            assert_eq!(telemetry.exported_spans(), 5, "{dropped:?}");
            assert_eq!((dropped.spans, dropped.metric_exports, dropped.queue_full), (0, 0, 0), "{dropped:?}");
            assert!(!telemetry.health.refused(Signal::Traces));
        }

        #[test]
        fn spans_reach_a_real_collector_over_grpc() {
            let dir = tempdir("plain");
            let (_rotel, grpc) = rotel(&dir);
            five_spans_reach(&config(format!("http://127.0.0.1:{grpc}")));
            let _ = std::fs::remove_dir_all(&dir);
        }

        #[test]
        fn spans_reach_a_collector_over_grpc_with_tls_and_the_authority_given() {
            let dir = tempdir("tls");
            let (_rotel, grpc) = rotel(&dir);
            // rotel has no TLS: tests/otel/tls/tls_proxy.py serves it, with a
            // certificate of the test authority.
            let tls = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/otel/tls");
            let mut proxy = Command::new("python3")
                .arg(tls.join("tls_proxy.py"))
                .arg(tls.join("cert.pem"))
                .arg(tls.join("key.pem"))
                .arg(grpc.to_string())
                .stdout(Stdio::piped())
                .spawn()
                .expect("python3 runs the TLS proxy");
            let mut line = String::new();
            std::io::BufRead::read_line(&mut std::io::BufReader::new(proxy.stdout.take().unwrap()), &mut line).unwrap();
            let _proxy = Killed(proxy);
            let port: u16 = line.trim().parse().unwrap_or_else(|_| panic!("the proxy printed {line:?}"));
            let config =
                Config { certificate: Some(tls.join("ca.pem")), ..config(format!("https://127.0.0.1:{port}")) };
            five_spans_reach(&config);
            let _ = std::fs::remove_dir_all(&dir);
        }

        fn tempdir(name: &str) -> PathBuf {
            let dir = std::env::temp_dir().join(format!("ax-grpc-test-{}-{name}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            dir
        }

        #[test]
        fn a_grpc_collector_that_is_not_there_is_given_up_on_at_exit() {
            // A port nothing listens on any more.
            let port = free_port();
            let mut telemetry = Telemetry::start(&config(format!("http://127.0.0.1:{port}"))).unwrap();
            calls(&telemetry, 3);
            let dropped = telemetry.stop();
            // The flush saw the refusal (so it stopped waiting for the
            // exporter's retries) and counted what it held.
            assert!(telemetry.health.refused(Signal::Traces), "{dropped:?}");
            assert_eq!(dropped.spans, 3, "{dropped:?}");
            assert!(dropped.flush_timed_out.is_none(), "{dropped:?}");
        }
    }
}
