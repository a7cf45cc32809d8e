//! The perf report: what `ax perf run --json` writes and `ax perf compare`
//! reads. One versioned JSON document, described field by field in
//! `docs/perf-report.md`.
//!
//! The raw samples are the source of truth: `summary` is written for people and
//! tools that do not want to compute it, and `compare` works from `samples_ns`.
//! Reading checks the envelope first (`"format": "ax-perf"`, `"version": 1`),
//! so a file from another tool or a future ax is named as such rather than
//! reported as a missing field; then the layout, then every benchmark's samples.
//! Each error names the file and what was expected. Readers ignore fields they
//! do not know: adding a field keeps the version, removing or changing the
//! meaning of one bumps it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use crate::conditions::{Conditions, Series};
use crate::stats::{StatsError, Summary, sorted_f64};

/// The `format` field of every report.
pub const FORMAT: &str = "ax-perf";

/// The report version this crate writes and reads.
pub const VERSION: u32 = 1;

/// Why a report could not be read or written. Every message starts with the
/// file and is complete in itself: the underlying error is part of the message
/// (`cause`), not chained behind it, so a one-line printer shows it once.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The file could not be read.
    #[error("{}: cannot read perf report: {cause}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
    /// The file could not be written.
    #[error("{}: cannot write perf report: {cause}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
    /// Not JSON at all, or cut short.
    #[error("{}: not valid JSON ({cause}); expected an ax-perf report written by `ax perf run --json`", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's complaint, with line and column.
        cause: serde_json::Error,
    },
    /// JSON, but not an ax-perf report.
    #[error("{}: not an ax-perf report ({found}); expected \"format\": \"{FORMAT}\", as written by `ax perf run --json`", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What the file has instead.
        found: String,
    },
    /// An ax-perf report of a version this ax does not read.
    #[error("{}: ax-perf report version {found}; expected version {VERSION}", path.display())]
    Version {
        /// The file.
        path: PathBuf,
        /// The version found.
        found: String,
    },
    /// The right envelope, the wrong layout (a missing field, a string for a number, …).
    #[error("{}: invalid ax-perf report ({cause}); expected the version {VERSION} layout of docs/perf-report.md", path.display())]
    Layout {
        /// The file.
        path: PathBuf,
        /// The parser's complaint, with line and column.
        cause: serde_json::Error,
    },
    /// A benchmark whose samples cannot be used.
    #[error("{}: benchmark {name:?}: {cause}", path.display())]
    Samples {
        /// The file.
        path: PathBuf,
        /// The benchmark.
        name: String,
        /// What is wrong with its samples.
        cause: StatsError,
    },
    /// Two benchmarks with one name, which `compare` could not tell apart.
    #[error("{}: benchmark name {name:?} appears twice; expected unique names", path.display())]
    DuplicateName {
        /// The file.
        path: PathBuf,
        /// The repeated name.
        name: String,
    },
}

/// Where the benchmarks ran.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    /// Operating system (`linux`, `macos`, …).
    pub os: String,
    /// CPU architecture (`x86_64`, `aarch64`, …).
    pub arch: String,
    /// Logical CPUs available to the process.
    pub cpus: usize,
    /// The CPU's model name, where the OS says (Linux: `/proc/cpuinfo`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_model: Option<String>,
}

impl Machine {
    /// The machine this process runs on.
    pub fn current() -> Machine {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        });
        Machine {
            os: std::env::consts::OS.to_owned(),
            arch: std::env::consts::ARCH.to_owned(),
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            cpu_model,
        }
    }
}

/// One benchmark: a method called with one input, over and over.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Benchmark {
    /// Unique within the report; `compare` matches benchmarks by name.
    pub name: String,
    /// The plugin's name.
    pub plugin: String,
    /// The method called.
    pub method: String,
    /// The input of every call.
    pub input: Value,
    /// Calls made before sampling, not recorded.
    pub warmup_calls: u64,
    /// Wall time of the sampling phase, harness included.
    pub elapsed_ns: u64,
    /// Every call's duration, in the order measured.
    #[serde(serialize_with = "one_line")]
    pub samples_ns: Vec<u64>,
    /// Statistics of `samples_ns`.
    pub summary: Summary,
    /// The stability of `samples_ns` in the order measured (drift,
    /// autocorrelation, spread); recomputed from the samples by `compare`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<Series>,
    /// The machine's load and CPU frequency around the sampling (absent in
    /// reports written before ax recorded them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Conditions>,
}

/// A benchmark whose calls failed: named in the report, not measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FailedBenchmark {
    /// The benchmark's name.
    pub name: String,
    /// The method called.
    pub method: String,
    /// The input of the call.
    pub input: Value,
    /// What failed, as one line.
    pub error: String,
}

impl Benchmark {
    /// A benchmark of `plugin.method(input)` and its summary; `warmup_calls`
    /// and `elapsed_ns` start at 0 for the caller to fill in.
    pub fn new(
        name: impl Into<String>,
        plugin: impl Into<String>,
        method: impl Into<String>,
        input: Value,
        samples_ns: Vec<u64>,
    ) -> Result<Benchmark, StatsError> {
        let summary = Summary::new(&samples_ns)?;
        Ok(Benchmark {
            name: name.into(),
            plugin: plugin.into(),
            method: method.into(),
            input,
            warmup_calls: 0,
            elapsed_ns: 0,
            series: Series::of(&samples_ns),
            samples_ns,
            summary,
            conditions: None,
        })
    }
}

/// Writes the samples on one line, even in a pretty-printed report: a report of
/// 100 000 samples stays readable around them.
fn one_line<S: Serializer>(samples: &[u64], serializer: S) -> Result<S::Ok, S::Error> {
    let text = serde_json::to_string(samples).map_err(serde::ser::Error::custom)?;
    serde_json::value::RawValue::from_string(text).map_err(serde::ser::Error::custom)?.serialize(serializer)
}

/// A whole run of `ax perf run`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// When the run started: RFC 3339, UTC, to the second.
    pub started_at: String,
    /// What wrote the report, with its version (`ax 0.1.0`).
    pub tool: String,
    /// Where it ran.
    pub machine: Machine,
    /// The benchmarks, in the order they ran.
    pub benchmarks: Vec<Benchmark>,
    /// Benchmarks whose calls failed, in the order they ran.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<FailedBenchmark>,
}

/// The envelope as written: format and version first.
#[derive(Serialize)]
struct Envelope<'a> {
    format: &'static str,
    version: u32,
    #[serde(flatten)]
    report: &'a Report,
}

impl Report {
    /// An empty report started now on this machine, written by `tool`.
    pub fn new(tool: impl Into<String>) -> Report {
        Report {
            started_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            tool: tool.into(),
            machine: Machine::current(),
            benchmarks: Vec::new(),
            failed: Vec::new(),
        }
    }

    /// The benchmark called `name`.
    pub fn benchmark(&self, name: &str) -> Option<&Benchmark> {
        self.benchmarks.iter().find(|b| b.name == name)
    }

    /// The report as pretty-printed JSON, ending with a newline.
    pub fn to_json(&self) -> String {
        let envelope = Envelope { format: FORMAT, version: VERSION, report: self };
        let mut text = serde_json::to_string_pretty(&envelope).expect("a report always serialises");
        text.push('\n');
        text
    }

    /// Parses the text of a report; `path` names it in errors.
    pub fn from_json(text: &str, path: &Path) -> Result<Report, ReportError> {
        let path_buf = || path.to_owned();
        // The envelope first, from a generic parse: a wrong format or version is
        // named as such even when the rest has another layout.
        let value: Value =
            serde_json::from_str(text).map_err(|cause| ReportError::Syntax { path: path_buf(), cause })?;
        let Value::Object(object) = &value else {
            return Err(ReportError::Format { path: path_buf(), found: "not a JSON object".to_owned() });
        };
        match object.get("format") {
            Some(Value::String(f)) if f == FORMAT => {}
            None => return Err(ReportError::Format { path: path_buf(), found: "no \"format\" field".to_owned() }),
            Some(other) => return Err(ReportError::Format { path: path_buf(), found: format!("\"format\": {other}") }),
        }
        match object.get("version") {
            Some(Value::Number(v)) if v.as_u64() == Some(u64::from(VERSION)) => {}
            Some(other) => return Err(ReportError::Version { path: path_buf(), found: other.to_string() }),
            None => return Err(ReportError::Version { path: path_buf(), found: "missing".to_owned() }),
        }
        drop(value);
        // Then the layout, from the text again, for errors with line and column.
        let report: Report =
            serde_json::from_str(text).map_err(|cause| ReportError::Layout { path: path_buf(), cause })?;
        let mut names = HashSet::new();
        for b in &report.benchmarks {
            sorted_f64(&b.samples_ns).map_err(|cause| ReportError::Samples {
                path: path_buf(),
                name: b.name.clone(),
                cause,
            })?;
            if !names.insert(b.name.as_str()) {
                return Err(ReportError::DuplicateName { path: path_buf(), name: b.name.clone() });
            }
        }
        Ok(report)
    }

    /// Reads the report in `path`.
    pub fn read(path: &Path) -> Result<Report, ReportError> {
        let text = std::fs::read_to_string(path).map_err(|cause| ReportError::Read { path: path.to_owned(), cause })?;
        Report::from_json(&text, path)
    }

    /// Writes the report to `path` as JSON, atomically.
    pub fn write(&self, path: &Path) -> Result<(), ReportError> {
        ax_profile::write_atomically(path, &self.to_json())
            .map_err(|cause| ReportError::Write { path: path.to_owned(), cause })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn report() -> Report {
        let mut count =
            Benchmark::new("count", "word-count", "count", json!({"text": "a b c"}), vec![1500, 1400, 1600]).unwrap();
        count.warmup_calls = 20;
        count.elapsed_ns = 5000;
        Report {
            started_at: "2026-01-02T03:04:05Z".to_owned(),
            tool: "ax 0.1.0".to_owned(),
            machine: Machine { os: "linux".into(), arch: "x86_64".into(), cpus: 2, cpu_model: None },
            benchmarks: vec![count],
            failed: Vec::new(),
        }
    }

    fn error(text: &str) -> String {
        Report::from_json(text, Path::new("dir/base.json")).unwrap_err().to_string()
    }

    #[test]
    fn round_trips() {
        let report = report();
        let text = report.to_json();
        assert!(text.starts_with("{\n  \"format\": \"ax-perf\",\n  \"version\": 1,\n"), "{text}");
        assert!(text.contains("\"samples_ns\": [1500,1400,1600],"), "samples on one line: {text}");
        assert_eq!(Report::from_json(&text, Path::new("r.json")).unwrap(), report);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        report.write(&path).unwrap();
        assert_eq!(Report::read(&path).unwrap(), report);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let mut value: Value = serde_json::from_str(&report().to_json()).unwrap();
        value["comment"] = json!("added by a newer ax");
        value["benchmarks"][0]["cpu_ns"] = json!([1, 2, 3]);
        assert_eq!(Report::from_json(&value.to_string(), Path::new("r.json")).unwrap(), report());
    }

    #[test]
    fn reports_without_the_newer_fields_still_read() {
        let mut value: Value = serde_json::from_str(&report().to_json()).unwrap();
        assert!(value["benchmarks"][0]["series"].is_object(), "{value}");
        value["benchmarks"][0].as_object_mut().unwrap().remove("series");
        let read = Report::from_json(&value.to_string(), Path::new("old.json")).unwrap();
        assert_eq!((read.benchmarks[0].series, read.benchmarks[0].conditions), (None, None));
        assert!(read.failed.is_empty());
    }

    #[test]
    fn bad_files_name_the_file_and_the_expectation() {
        let err = error("{\"format\": \"ax-perf\", \"version\": 1, \"benchm");
        assert!(err.starts_with("dir/base.json: not valid JSON (EOF while parsing"), "{err}");
        assert!(err.ends_with("expected an ax-perf report written by `ax perf run --json`"), "{err}");

        let err = error("[1, 2]");
        assert!(err.starts_with("dir/base.json: not an ax-perf report (not a JSON object)"), "{err}");
        let err = error("{\"name\": \"x\"}");
        assert!(
            err.starts_with(
                "dir/base.json: not an ax-perf report (no \"format\" field); expected \"format\": \"ax-perf\""
            ),
            "{err}"
        );
        let err = error("{\"format\": \"criterion\"}");
        assert!(err.contains("(\"format\": \"criterion\")"), "{err}");

        let err = error("{\"format\": \"ax-perf\", \"version\": 2}");
        assert_eq!(err, "dir/base.json: ax-perf report version 2; expected version 1");
        let err = error("{\"format\": \"ax-perf\"}");
        assert_eq!(err, "dir/base.json: ax-perf report version missing; expected version 1");

        let mut value: Value = serde_json::from_str(&report().to_json()).unwrap();
        value["benchmarks"][0]["samples_ns"] = json!("fast");
        let err = error(&value.to_string());
        assert!(err.starts_with("dir/base.json: invalid ax-perf report (invalid type: string \"fast\""), "{err}");
        assert!(err.ends_with("expected the version 1 layout of docs/perf-report.md"), "{err}");

        value["benchmarks"][0]["samples_ns"] = json!([]);
        let err = error(&value.to_string());
        assert_eq!(err, "dir/base.json: benchmark \"count\": no samples; expected at least one duration");

        let mut report = report();
        report.benchmarks.push(report.benchmarks[0].clone());
        let err = error(&report.to_json());
        assert_eq!(err, "dir/base.json: benchmark name \"count\" appears twice; expected unique names");

        let err = Report::read(Path::new("/nonexistent/base.json")).unwrap_err().to_string();
        assert!(err.starts_with("/nonexistent/base.json: cannot read perf report: "), "{err}");
    }

    #[test]
    fn a_new_report_describes_this_machine() {
        let report = Report::new("ax test");
        assert!(report.started_at.ends_with('Z') && report.started_at.len() == 20, "{}", report.started_at);
        assert_eq!(report.machine.os, std::env::consts::OS);
        assert!(report.machine.cpus >= 1);
    }
}
