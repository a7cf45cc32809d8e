//! What to export where: the manifest's `[telemetry]` section under the
//! standard `OTEL_*` environment variables.
//!
//! Precedence, per setting: the signal-specific variable
//! (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), the general one
//! (`OTEL_EXPORTER_OTLP_ENDPOINT`), the manifest, the OpenTelemetry default.
//! An operator can so redirect a plugin's telemetry without editing it.
//! Export is on when the manifest says `enabled = true` or an OTLP endpoint
//! variable is set, and off whenever `OTEL_SDK_DISABLED=true`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use ax_manifest::{OtlpProtocol, TelemetryLevel, TelemetrySection};
use ax_runtime::Level;

use crate::TelemetryError;

/// The wire protocol of the exporters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP over HTTP with protobuf bodies (port 4318): the default.
    HttpProtobuf,
    /// OTLP over gRPC (port 4317): needs the `grpc` feature.
    Grpc,
}

impl Protocol {
    pub(crate) fn default_endpoint(self) -> &'static str {
        match self {
            Protocol::HttpProtobuf => "http://localhost:4318",
            Protocol::Grpc => "http://localhost:4317",
        }
    }
}

/// Resolved settings of one exporting process.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub protocol: Protocol,
    /// From the manifest, used only where no endpoint variable is set: the
    /// collector's base URL.
    pub endpoint: Option<String>,
    /// What is reported as the endpoint in warnings.
    pub endpoint_shown: String,
    /// `service.name`, unless `OTEL_SERVICE_NAME` or `OTEL_RESOURCE_ATTRIBUTES` say it.
    pub service_name: String,
    /// From the manifest; `OTEL_EXPORTER_OTLP_HEADERS` is added by the exporter.
    pub headers: BTreeMap<String, String>,
    /// Which calls are traced.
    pub sampler: Sampler,
    /// The most detailed plugin spans exported (events follow the log filter).
    pub level: Level,
    pub metrics_interval: Duration,
    /// One export's deadline.
    pub timeout: Duration,
    /// The bound on the whole flush at exit (traces and metrics in parallel).
    pub flush_timeout: Duration,
    /// A PEM file of certificate authorities to trust for an `https://`
    /// collector besides the system's (`OTEL_EXPORTER_OTLP_CERTIFICATE`).
    pub certificate: Option<PathBuf>,
}

/// Which calls are traced: `OTEL_TRACES_SAMPLER` (with `OTEL_TRACES_SAMPLER_ARG`)
/// if set, else the manifest's `sample_ratio` (parent-based), else every call
/// (parent-based). The samplers of the OpenTelemetry specification that need
/// nothing from outside the process; each is decided without a trace id when
/// its ratio is 0 or 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sampler {
    /// A call whose caller's context has a span (a `traceparent`) is traced
    /// if that span was; another at this ratio. `parentbased_always_on` is 1,
    /// `parentbased_always_off` 0.
    ParentBased(f64),
    /// At this ratio, whatever the caller's context. `always_on` is 1,
    /// `always_off` 0.
    Ratio(f64),
}

impl Sampler {
    /// `OTEL_TRACES_SAMPLER` (and `OTEL_TRACES_SAMPLER_ARG`), as the
    /// specification spells them.
    fn parse(name: &str, arg: Option<&str>) -> Result<Sampler, TelemetryError> {
        let ratio = || {
            let text = arg.unwrap_or("");
            text.trim().parse::<f64>().ok().filter(|r| (0.0..=1.0).contains(r)).ok_or_else(|| TelemetryError::Config {
                what: format!("OTEL_TRACES_SAMPLER_ARG={text:?} (for OTEL_TRACES_SAMPLER={name:?})"),
                expected: "a ratio from 0 to 1, such as 0.25".to_owned(),
            })
        };
        Ok(match name.trim() {
            "always_on" => Sampler::Ratio(1.0),
            "always_off" => Sampler::Ratio(0.0),
            "traceidratio" => Sampler::Ratio(ratio()?),
            "parentbased_always_on" => Sampler::ParentBased(1.0),
            "parentbased_always_off" => Sampler::ParentBased(0.0),
            "parentbased_traceidratio" => Sampler::ParentBased(ratio()?),
            _ => {
                return Err(TelemetryError::Config {
                    what: format!("OTEL_TRACES_SAMPLER={name:?}"),
                    expected: "always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or \
                               parentbased_traceidratio (remote samplers are not supported)"
                        .to_owned(),
                });
            }
        })
    }
}

/// `info`, `DEBUG`, …: a level, as `AX_LOG` spells them.
fn parse_level(text: &str) -> Option<Level> {
    Some(match text.trim().to_ascii_lowercase().as_str() {
        "error" => Level::Error,
        "warn" => Level::Warn,
        "info" => Level::Info,
        "debug" => Level::Debug,
        "trace" => Level::Trace,
        _ => return None,
    })
}

/// Reads a variable, treating an empty value as unset.
pub(crate) fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Config {
    /// The settings for a plugin called `plugin` with manifest section
    /// `section` (the default for a bare library), or `None` when export is off.
    pub fn resolve(plugin: &str, section: &TelemetrySection) -> Result<Option<Config>, TelemetryError> {
        if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        let env_endpoint = ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
            .into_iter()
            .find_map(|name| var(name).map(|v| (name, v)));
        if !section.enabled && env_endpoint.is_none() {
            return Ok(None);
        }
        let protocol = match var("OTEL_EXPORTER_OTLP_PROTOCOL") {
            Some(p) => parse_protocol(&p).ok_or_else(|| TelemetryError::Config {
                what: format!("OTEL_EXPORTER_OTLP_PROTOCOL={p:?}"),
                expected: "\"http/protobuf\" or \"grpc\"".to_owned(),
            })?,
            None => match section.protocol {
                Some(OtlpProtocol::Grpc) => Protocol::Grpc,
                Some(OtlpProtocol::HttpProtobuf) | None => Protocol::HttpProtobuf,
            },
        };
        if protocol == Protocol::Grpc && !cfg!(feature = "grpc") {
            return Err(TelemetryError::Config {
                what: "OTLP protocol \"grpc\"".to_owned(),
                expected: "\"http/protobuf\" (this ax was built without the `grpc` feature of ax-telemetry)".to_owned(),
            });
        }
        let endpoint_shown = match (&env_endpoint, &section.endpoint) {
            (Some((_, v)), _) => v.clone(),
            (None, Some(v)) => v.clone(),
            (None, None) => protocol.default_endpoint().to_owned(),
        };
        let sampler = match var("OTEL_TRACES_SAMPLER") {
            Some(name) => Sampler::parse(&name, var("OTEL_TRACES_SAMPLER_ARG").as_deref())?,
            None => Sampler::ParentBased(section.sample_ratio.unwrap_or(1.0)),
        };
        let timeout = match var("OTEL_EXPORTER_OTLP_TIMEOUT") {
            Some(ms) => Duration::from_millis(ms.trim().parse().map_err(|_| TelemetryError::Config {
                what: format!("OTEL_EXPORTER_OTLP_TIMEOUT={ms:?}"),
                expected: "milliseconds, such as 5000".to_owned(),
            })?),
            None => section.timeout.0,
        };
        let flush_timeout = match var("AX_TELEMETRY_FLUSH_TIMEOUT") {
            Some(text) => {
                ax_manifest::HumanDuration::parse(&text)
                    .map_err(|_| TelemetryError::Config {
                        what: format!("AX_TELEMETRY_FLUSH_TIMEOUT={text:?}"),
                        expected: "a duration such as \"1s\" or \"300ms\"".to_owned(),
                    })?
                    .0
            }
            None => section.flush_timeout.0,
        };
        let metrics_interval = match var("OTEL_METRIC_EXPORT_INTERVAL") {
            Some(ms) => Duration::from_millis(ms.trim().parse().map_err(|_| TelemetryError::Config {
                what: format!("OTEL_METRIC_EXPORT_INTERVAL={ms:?}"),
                expected: "milliseconds, such as 10000".to_owned(),
            })?),
            None => section.metrics_interval.0,
        };
        Ok(Some(Config {
            protocol,
            endpoint: if env_endpoint.is_some() { None } else { section.endpoint.clone() },
            endpoint_shown,
            service_name: section.service_name.clone().unwrap_or_else(|| plugin.to_owned()),
            headers: section.headers.clone(),
            sampler,
            level: match var("AX_TELEMETRY_LEVEL") {
                Some(level) => parse_level(&level).ok_or_else(|| TelemetryError::Config {
                    what: format!("AX_TELEMETRY_LEVEL={level:?}"),
                    expected: "error, warn, info, debug or trace".to_owned(),
                })?,
                None => match section.level {
                    TelemetryLevel::Error => Level::Error,
                    TelemetryLevel::Warn => Level::Warn,
                    TelemetryLevel::Info => Level::Info,
                    TelemetryLevel::Debug => Level::Debug,
                    TelemetryLevel::Trace => Level::Trace,
                },
            },
            metrics_interval,
            timeout,
            flush_timeout,
            certificate: var("OTEL_EXPORTER_OTLP_CERTIFICATE").map(PathBuf::from),
        }))
    }

    /// The URL the exporter of `signal` (`traces`, `metrics`) is given, when the
    /// manifest names the endpoint and no variable does.
    pub(crate) fn signal_endpoint(&self, signal: &str) -> Option<String> {
        let base = self.endpoint.as_deref()?;
        Some(match self.protocol {
            Protocol::HttpProtobuf => format!("{}/v1/{signal}", base.trim_end_matches('/')),
            Protocol::Grpc => base.to_owned(),
        })
    }
}

fn parse_protocol(text: &str) -> Option<Protocol> {
    match text.trim() {
        "http/protobuf" => Some(Protocol::HttpProtobuf),
        "grpc" => Some(Protocol::Grpc),
        _ => None,
    }
}

/// A W3C `traceparent` (`00-<trace id>-<parent id>-<flags>`), checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: u128,
    pub span_id: u64,
    pub sampled: bool,
}

impl TraceParent {
    /// Parses `text`; the error names it and the expected form.
    pub fn parse(text: &str) -> Result<TraceParent, TelemetryError> {
        let bad = || TelemetryError::Config {
            what: format!("traceparent {text:?}"),
            expected: "a W3C traceparent such as \"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\" \
                       (version 00, a 32-hex-digit trace id and a 16-hex-digit parent id, not all zeros, and flags)"
                .to_owned(),
        };
        let parts: Vec<&str> = text.trim().split('-').collect();
        let [version, trace, span, flags] = parts[..] else { return Err(bad()) };
        fn hex(s: &str, len: usize) -> Option<&str> {
            (s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))).then_some(s)
        }
        if hex(version, 2) != Some("00") {
            return Err(bad());
        }
        let trace_id = hex(trace, 32).and_then(|s| u128::from_str_radix(s, 16).ok()).filter(|&v| v != 0);
        let span_id = hex(span, 16).and_then(|s| u64::from_str_radix(s, 16).ok()).filter(|&v| v != 0);
        let flags = hex(flags, 2).and_then(|s| u8::from_str_radix(s, 16).ok());
        match (trace_id, span_id, flags) {
            (Some(trace_id), Some(span_id), Some(flags)) => {
                Ok(TraceParent { trace_id, span_id, sampled: flags & 1 == 1 })
            }
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_parses_and_rejects() {
        let tp = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(tp.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(tp.span_id, 0x00f067aa0ba902b7);
        assert!(tp.sampled);
        assert!(!TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap().sampled);
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            let err = TraceParent::parse(bad).unwrap_err().to_string();
            assert!(err.contains("expected a W3C traceparent"), "{bad}: {err}");
        }
    }

    #[test]
    fn samplers_parse_as_the_specification_names_them() {
        let parse = Sampler::parse;
        assert_eq!(parse("always_on", None).unwrap(), Sampler::Ratio(1.0));
        assert_eq!(parse("always_off", Some("0.5")).unwrap(), Sampler::Ratio(0.0));
        assert_eq!(parse("traceidratio", Some(" 0.25 ")).unwrap(), Sampler::Ratio(0.25));
        assert_eq!(parse("parentbased_always_on", None).unwrap(), Sampler::ParentBased(1.0));
        assert_eq!(parse("parentbased_always_off", None).unwrap(), Sampler::ParentBased(0.0));
        assert_eq!(parse("parentbased_traceidratio", Some("1")).unwrap(), Sampler::ParentBased(1.0));
        for (name, arg) in
            [("traceidratio", None), ("traceidratio", Some("1.5")), ("parentbased_traceidratio", Some("a"))]
        {
            let err = parse(name, arg).unwrap_err().to_string();
            assert!(err.contains("OTEL_TRACES_SAMPLER_ARG=") && err.contains("a ratio from 0 to 1"), "{err}");
            assert!(err.contains(name), "{err}");
        }
        let err = parse("jaeger_remote", None).unwrap_err().to_string();
        assert!(
            err.contains("OTEL_TRACES_SAMPLER=\"jaeger_remote\"") && err.contains("parentbased_traceidratio"),
            "{err}"
        );
    }

    #[test]
    fn manifest_endpoint_gets_signal_paths() {
        let config = Config {
            protocol: Protocol::HttpProtobuf,
            endpoint: Some("http://otel:4318/".to_owned()),
            endpoint_shown: String::new(),
            service_name: "wc".to_owned(),
            headers: BTreeMap::new(),
            sampler: Sampler::ParentBased(1.0),
            level: Level::Info,
            metrics_interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            flush_timeout: Duration::from_secs(1),
            certificate: None,
        };
        assert_eq!(config.signal_endpoint("traces").as_deref(), Some("http://otel:4318/v1/traces"));
        assert_eq!(Config { endpoint: None, ..config }.signal_endpoint("traces"), None);
    }
}
