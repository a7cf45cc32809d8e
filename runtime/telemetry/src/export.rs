//! The OTLP exporters, built from a [`Config`], each wrapped in [`Guarded`],
//! which counts what could not be delivered and warns once.
//!
//! The exporters run on the SDK's own threads (the batch span processor's and
//! the periodic metric reader's), never on a plugin's or a caller's. Over
//! HTTP the client is reqwest's blocking one, which drives its own runtime, so
//! nothing depends on a Tokio reactor being present where the SDK exports (the
//! "no reactor running" trap, in which every span is silently dropped); it is
//! wrapped in [`Watched`], which notes a refused connection for the flush at
//! exit. Over
//! gRPC (feature `grpc`) tonic needs one: `Guarded` owns a small Tokio runtime
//! and runs every export on it; tonic's channel connects through
//! [`WatchedConnector`], which notes a refused connection the same way.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

use crate::TelemetryError;
use crate::config::{Config, Protocol, var};

/// What could not be delivered, shared by the exporters of one [`crate::Telemetry`].
#[derive(Debug, Default)]
pub(crate) struct Health {
    pub(crate) endpoint: String,
    /// One export's deadline: an export failing after it timed out.
    timeout: Duration,
    warned: AtomicBool,
    pub(crate) dropped_spans: AtomicU64,
    pub(crate) dropped_metric_exports: AtomicU64,
    pub(crate) exported_spans: AtomicU64,
    /// Spans handed to the batch processor (exported, dropped, or still queued).
    pub(crate) handed_spans: AtomicU64,
    /// Metric data points in exports not finished yet.
    pub(crate) metric_points_in_flight: AtomicU64,
    /// Records that did not fit the queue to the `ax-otel` thread.
    pub(crate) queue_dropped: AtomicU64,
    /// Per [`Signal`]: a request of its exporter could not connect (nothing
    /// listens, or no route) since [`Health::clear_refused`].
    refused: [AtomicBool; 2],
    /// Why the first connection that failed did (its innermost error: a
    /// refused connection, a certificate not trusted, …).
    refused_because: parking_lot::Mutex<Option<String>>,
}

/// The two kinds of telemetry an exporter sends.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Signal {
    Traces = 0,
    Metrics = 1,
}

impl Signal {
    /// Its name in OTLP's paths and variables.
    #[cfg(feature = "grpc")]
    fn otlp_name(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Metrics => "metrics",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Signal::Traces => "spans",
            Signal::Metrics => "metrics",
        }
    }
}

impl Health {
    pub(crate) fn new(endpoint: String, timeout: Duration) -> Health {
        Health { endpoint, timeout, ..Health::default() }
    }

    /// Notes that a connection of `signal`'s exporter failed, and why.
    fn refuse(&self, signal: Signal, error: &(dyn std::error::Error + 'static)) {
        let mut because = self.refused_because.lock();
        if because.is_none() {
            let mut innermost = error;
            while let Some(source) = innermost.source() {
                innermost = source;
            }
            *because = Some(innermost.to_string());
        }
        drop(because);
        self.refused[signal as usize].store(true, Ordering::Relaxed);
    }

    /// Forgets the connections refused so far.
    pub(crate) fn clear_refused(&self) {
        self.refused.iter().for_each(|r| r.store(false, Ordering::Relaxed));
    }

    /// Whether a request of `signal`'s exporter could not connect since [`Health::clear_refused`].
    pub(crate) fn refused(&self, signal: Signal) -> bool {
        self.refused[signal as usize].load(Ordering::Relaxed)
    }

    /// Counts what `signal`'s unfinished flush held as dropped, and warns
    /// (once) that the collector could not be reached: the flush at exit stops
    /// waiting for the exporter's retries when nothing listens.
    pub(crate) fn gave_up(&self, signal: Signal) {
        match signal {
            Signal::Traces => {
                let settled = self.exported_spans.load(Ordering::Relaxed) + self.dropped_spans.load(Ordering::Relaxed);
                let unsent = self.handed_spans.load(Ordering::Relaxed).saturating_sub(settled);
                self.dropped_spans.fetch_add(unsent, Ordering::Relaxed);
            }
            Signal::Metrics => {
                self.dropped_metric_exports.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.warn(signal.name(), &self.could_not_connect().unwrap_or_else(|| "could not connect".to_owned()));
    }

    /// "could not connect (why)", once a connection failed.
    fn could_not_connect(&self) -> Option<String> {
        self.refused_because.lock().as_ref().map(|because| format!("could not connect ({because})"))
    }

    /// Warns (once) that an export that took `took` failed with `error`.
    fn failed(&self, what: &str, took: Duration, error: &dyn std::fmt::Display) {
        // The HTTP client reports its own deadline as a "network error", and
        // a failed connection (a certificate not trusted) deep in its chain.
        if took >= self.timeout {
            self.warn(what, &format!("timed out after {} s without an answer", self.timeout.as_secs_f64()));
        } else if let Some(could_not_connect) = self.could_not_connect() {
            self.warn(what, &could_not_connect);
        } else {
            self.warn(what, error);
        }
    }

    /// Warns, the first time only, that `what` could not be exported.
    fn warn(&self, what: &str, error: &dyn std::fmt::Display) {
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                target: "ax::telemetry",
                "cannot export {what} to the OpenTelemetry collector at {}: {error}; calls go on, telemetry that \
                 cannot be delivered is dropped and counted (this warning is not repeated)",
                self.endpoint
            );
        }
    }
}

/// An exporter that counts its failures. See the module docs.
#[derive(Debug)]
pub(crate) struct Guarded<E> {
    inner: E,
    health: Arc<Health>,
    #[cfg(feature = "grpc")]
    runtime: Option<Arc<tokio::runtime::Runtime>>,
}

impl<E> Guarded<E> {
    /// Runs `export` on the gRPC runtime when there is one, else in place.
    async fn run<F: std::future::Future<Output = OTelSdkResult>>(&self, export: F) -> OTelSdkResult {
        #[cfg(feature = "grpc")]
        if let Some(runtime) = &self.runtime {
            return runtime.block_on(export);
        }
        export.await
    }
}

impl<E: SpanExporter> SpanExporter for Guarded<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let count = batch.len() as u64;
        let started = Instant::now();
        let result = self.run(self.inner.export(batch)).await;
        match &result {
            Ok(()) => self.health.exported_spans.fetch_add(count, Ordering::Relaxed),
            Err(error) => {
                self.health.failed(Signal::Traces.name(), started.elapsed(), error);
                self.health.dropped_spans.fetch_add(count, Ordering::Relaxed)
            }
        };
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The number of data points in `metrics`.
fn data_points(metrics: &ResourceMetrics) -> u64 {
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
    fn count<T>(data: &MetricData<T>) -> usize {
        match data {
            MetricData::Gauge(g) => g.data_points().count(),
            MetricData::Sum(s) => s.data_points().count(),
            MetricData::Histogram(h) => h.data_points().count(),
            MetricData::ExponentialHistogram(h) => h.data_points().count(),
        }
    }
    let points = metrics.scope_metrics().flat_map(|scope| scope.metrics()).map(|metric| match metric.data() {
        AggregatedMetrics::F64(data) => count(data),
        AggregatedMetrics::U64(data) => count(data),
        AggregatedMetrics::I64(data) => count(data),
    });
    points.sum::<usize>() as u64
}

impl<E: PushMetricExporter> PushMetricExporter for Guarded<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let points = data_points(metrics);
        self.health.metric_points_in_flight.fetch_add(points, Ordering::Relaxed);
        let started = Instant::now();
        let result = self.run(self.inner.export(metrics)).await;
        self.health.metric_points_in_flight.fetch_sub(points, Ordering::Relaxed);
        if let Err(error) = &result {
            self.health.failed(Signal::Metrics.name(), started.elapsed(), error);
            self.health.dropped_metric_exports.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}

/// Two retries, 50 ms then 100 ms apart (plus jitter): a blip is ridden out,
/// a collector that is down costs an export about 0.2 s rather than the
/// recommended policy's 0.8 s, and at exit nothing when nothing listens there
/// ([`Watched`]).
fn retries() -> opentelemetry_otlp::RetryPolicy {
    opentelemetry_otlp::RetryPolicy::recommended()
        .with_max_retries(2)
        .with_initial_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_millis(400))
        .with_max_jitter(Duration::from_millis(20))
}

fn build_error(signal: &str, error: impl std::fmt::Display) -> TelemetryError {
    TelemetryError::Exporter { signal: signal.to_owned(), message: error.to_string() }
}

/// The HTTP client of an exporter: reqwest's blocking client, as the exporter
/// would make itself (one for both signals here), noting in [`Health`] a
/// request that could not connect. Then the flush at exit stops waiting for
/// that signal: its exporter would retry twice, 50 and 100 ms apart, for a
/// collector that is not there (an `ax run` took 183 ms instead of 3 ms).
#[derive(Debug)]
struct Watched {
    inner: reqwest::blocking::Client,
    health: Arc<Health>,
    signal: Signal,
}

#[async_trait::async_trait]
impl HttpClient for Watched {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let result = self.inner.send_bytes(request).await;
        if let Err(error) = &result
            && let Some(error) = error.downcast_ref::<reqwest::Error>().filter(|e| e.is_connect())
        {
            self.health.refuse(self.signal, error);
        }
        result
    }
}

/// reqwest's blocking client with `timeout`, made on a thread of its own (as
/// the exporter does): made or dropped inside a Tokio runtime it panics.
/// HTTPS trusts the system's certificate authorities, and those of the PEM
/// file `OTEL_EXPORTER_OTLP_CERTIFICATE` names (a private CA, a test's).
/// Reading the system's took 15 ms of every `ax run`: they are read only
/// when an endpoint is `https:`.
fn http_client(config: &Config) -> Result<reqwest::blocking::Client, TelemetryError> {
    let timeout = config.timeout;
    let (_, authorities) = certificate_authorities(config)?;
    let https = [
        Some(config.endpoint_shown.clone()),
        var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
        var("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"),
    ]
    .into_iter()
    .flatten()
    .any(|url| url.trim().to_ascii_lowercase().starts_with("https:"));
    std::thread::Builder::new()
        .name("ax-otel-client".to_owned())
        .spawn(move || {
            let builder = reqwest::blocking::Client::builder().timeout(timeout);
            let builder =
                if https { builder.tls_certs_merge(authorities) } else { builder.tls_certs_only(authorities) };
            builder.build()
        })
        .map_err(|e| build_error("traces", e))?
        .join()
        .map_err(|_| build_error("traces", "making the HTTP client panicked"))?
        .map_err(|e| build_error("traces", e))
}

/// The certificates of `config.certificate` (`OTEL_EXPORTER_OTLP_CERTIFICATE`),
/// if set: the file's PEM text and what reqwest read of it.
fn certificate_authorities(config: &Config) -> Result<(Vec<u8>, Vec<reqwest::Certificate>), TelemetryError> {
    let Some(path) = &config.certificate else { return Ok(Default::default()) };
    let invalid = |problem: String| TelemetryError::Config {
        what: format!("OTEL_EXPORTER_OTLP_CERTIFICATE={:?} ({problem})", path.display().to_string()),
        expected: "a PEM file of the certificate authorities to trust".to_owned(),
    };
    let pem = std::fs::read(path).map_err(|e| invalid(format!("cannot read it: {e}")))?;
    let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| invalid(e.to_string()))?;
    if certificates.is_empty() {
        return Err(invalid("no certificate in it".to_owned()));
    }
    Ok((pem, certificates))
}

/// The span and metric exporters for `config`.
pub(crate) fn exporters(
    config: &Config,
    health: &Arc<Health>,
) -> Result<(Guarded<opentelemetry_otlp::SpanExporter>, Guarded<opentelemetry_otlp::MetricExporter>), TelemetryError> {
    let headers: HashMap<String, String> = config.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    match config.protocol {
        Protocol::HttpProtobuf => {
            let client = http_client(config)?;
            let watched = |signal| Watched { inner: client.clone(), health: health.clone(), signal };
            let mut spans = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_http_client(watched(Signal::Traces))
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_timeout(config.timeout)
                .with_retry_policy(retries())
                .with_headers(headers.clone());
            if let Some(url) = config.signal_endpoint("traces") {
                spans = spans.with_endpoint(url);
            }
            let mut metrics = opentelemetry_otlp::MetricExporter::builder()
                .with_http()
                .with_http_client(watched(Signal::Metrics))
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_timeout(config.timeout)
                .with_retry_policy(retries())
                .with_headers(headers);
            if let Some(url) = config.signal_endpoint("metrics") {
                metrics = metrics.with_endpoint(url);
            }
            let spans = spans.build().map_err(|e| build_error("traces", e))?;
            let metrics = metrics.build().map_err(|e| build_error("metrics", e))?;
            Ok((guard(spans, health, None), guard(metrics, health, None)))
        }
        #[cfg(feature = "grpc")]
        Protocol::Grpc => grpc_exporters(config, health, headers),
        #[cfg(not(feature = "grpc"))]
        Protocol::Grpc => Err(build_error("traces", "this ax was built without the `grpc` feature")),
    }
}

#[cfg(feature = "grpc")]
type Runtime = Option<Arc<tokio::runtime::Runtime>>;
#[cfg(not(feature = "grpc"))]
type Runtime = Option<()>;

fn guard<E>(inner: E, health: &Arc<Health>, runtime: Runtime) -> Guarded<E> {
    #[cfg(not(feature = "grpc"))]
    let _ = runtime;
    Guarded {
        inner,
        health: health.clone(),
        #[cfg(feature = "grpc")]
        runtime,
    }
}

#[cfg(feature = "grpc")]
fn grpc_exporters(
    config: &Config,
    health: &Arc<Health>,
    headers: HashMap<String, String>,
) -> Result<(Guarded<opentelemetry_otlp::SpanExporter>, Guarded<opentelemetry_otlp::MetricExporter>), TelemetryError> {
    use opentelemetry_otlp::WithTonicConfig;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("ax-otlp-grpc")
        .enable_all()
        .build()
        .map_err(|e| build_error("traces", e))?;
    let runtime = Arc::new(runtime);
    let _entered = runtime.enter();
    let mut metadata = tonic::metadata::MetadataMap::new();
    for (key, value) in &headers {
        if let (Ok(k), Ok(v)) = (key.parse::<tonic::metadata::MetadataKey<_>>(), value.parse()) {
            metadata.insert(k, v);
        }
    }
    let mut spans = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_timeout(config.timeout)
        .with_retry_policy(retries())
        .with_metadata(metadata.clone());
    let mut metrics = opentelemetry_otlp::MetricExporter::builder()
        .with_tonic()
        .with_timeout(config.timeout)
        .with_retry_policy(retries())
        .with_metadata(metadata);
    if let Some(url) = config.signal_endpoint("traces") {
        spans = spans.with_endpoint(url.clone());
        metrics = metrics.with_endpoint(url);
    }
    // ax makes the connections (see `WatchedConnector`), with TLS for an
    // `https://` endpoint: the system's authorities and those of
    // `OTEL_EXPORTER_OTLP_CERTIFICATE`. An endpoint without a scheme is left
    // to the exporter.
    let (pem, _) = certificate_authorities(config)?;
    let channel = |signal| -> Result<Option<tonic::transport::Channel>, TelemetryError> {
        let Some(url) = grpc_endpoint(config, signal) else { return Ok(None) };
        let invalid = |e: tonic::transport::Error| build_error(signal.otlp_name(), format!("{url}: {e}"));
        let mut endpoint = tonic::transport::Endpoint::from_shared(url.clone()).map_err(invalid)?;
        if url.starts_with("https://") {
            let mut tls = tonic::transport::ClientTlsConfig::new().with_native_roots();
            if !pem.is_empty() {
                tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(&pem));
            }
            endpoint = endpoint.tls_config(tls).map_err(invalid)?;
        }
        let mut inner = Connector::new();
        inner.set_nodelay(true);
        inner.enforce_http(false);
        let watched = WatchedConnector { inner, health: health.clone(), signal };
        Ok(Some(endpoint.timeout(config.timeout).connect_with_connector_lazy(watched)))
    };
    if let Some(channel) = channel(Signal::Traces)? {
        spans = spans.with_channel(channel);
    }
    if let Some(channel) = channel(Signal::Metrics)? {
        metrics = metrics.with_channel(channel);
    }
    let spans = spans.build().map_err(|e| build_error("traces", e))?;
    let metrics = metrics.build().map_err(|e| build_error("metrics", e))?;
    Ok((guard(spans, health, Some(runtime.clone())), guard(metrics, health, Some(runtime))))
}

/// The `http://` or `https://` URL the gRPC exporter of `signal` would
/// connect to, found as it finds it: ax's configuration,
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (or `…_METRICS_…`),
/// `OTEL_EXPORTER_OTLP_ENDPOINT`, the default. `None` for any other URL.
#[cfg(feature = "grpc")]
fn grpc_endpoint(config: &Config, signal: Signal) -> Option<String> {
    let name = signal.otlp_name();
    let url = config
        .signal_endpoint(name)
        .or_else(|| var(&format!("OTEL_EXPORTER_OTLP_{}_ENDPOINT", name.to_ascii_uppercase())))
        .or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT"))
        .unwrap_or_else(|| "http://localhost:4317".to_owned());
    (url.starts_with("http://") || url.starts_with("https://")).then_some(url)
}

/// tonic's connection to the collector for `signal`, noting in [`Health`] one
/// that could not be made, as [`Watched`] does over HTTP. A gRPC `ax run`
/// whose collector was not there took 190 ms instead of 11 ms, waiting at
/// exit for the exporters' retries.
#[cfg(feature = "grpc")]
#[derive(Clone)]
struct WatchedConnector {
    inner: Connector,
    health: Arc<Health>,
    signal: Signal,
}

#[cfg(feature = "grpc")]
type Connector = hyper_util::client::legacy::connect::HttpConnector;

#[cfg(feature = "grpc")]
impl tower_service::Service<http::Uri> for WatchedConnector {
    type Response = <Connector as tower_service::Service<http::Uri>>::Response;
    type Error = <Connector as tower_service::Service<http::Uri>>::Error;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let (connecting, health, signal) = (self.inner.call(uri), self.health.clone(), self.signal);
        Box::pin(async move {
            let connected = connecting.await;
            if let Err(error) = &connected {
                health.refuse(signal, error);
            }
            connected
        })
    }
}
