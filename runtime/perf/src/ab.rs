//! The result of `ax perf ab`: a baseline and a candidate measured in
//! alternating pairs, each benchmark compared on both clocks ([`paired`]), one
//! of them deciding the verdict.
//!
//! Both clocks are kept because they answer different questions. The plugin
//! thread's CPU time is what the change changes: under load the scheduler's
//! delay adds the same time to both calls of a pair, which pulls a wall-time
//! ratio towards 1 (a true +10 % reads as +2 … +8 % under a load that comes and
//! goes). Wall time is what a caller waits. The verdict uses CPU time unless
//! told otherwise, and the report always says which clock decided.
//!
//! [`AbReport::to_json`] writes `"format": "ax-perf-ab", "version": 1` (see
//! docs/perf-report.md); the pairs' raw durations are not written.
//!
//! [`paired`]: crate::paired

use std::fmt;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::compare::Verdict;
use crate::paired::{PairedComparison, Ratio, compare_paired};
use crate::report::Machine;
use crate::stats::StatsError;

/// The `format` field of an A/B report.
pub const AB_FORMAT: &str = "ax-perf-ab";

/// The A/B report version this crate writes.
pub const AB_VERSION: u32 = 1;

/// A paired comparison on one clock.
pub type ClockComparison = PairedComparison;

/// Which clock a verdict is based on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Clock {
    /// CPU time of the plugin's thread during the call.
    Cpu,
    /// Wall time of the call's round trip, as the caller sees it.
    Wall,
}

impl fmt::Display for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Clock::Cpu => "cpu",
            Clock::Wall => "wall",
        })
    }
}

/// What was measured for one benchmark: per pair, each side's wall time and,
/// where the platform has a thread CPU clock, its CPU time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PairedSamples {
    /// Baseline wall times, ns.
    pub baseline_wall_ns: Vec<u64>,
    /// Candidate wall times, ns.
    pub candidate_wall_ns: Vec<u64>,
    /// Baseline CPU times, ns (empty without a CPU clock).
    pub baseline_cpu_ns: Vec<u64>,
    /// Candidate CPU times, ns (empty without a CPU clock).
    pub candidate_cpu_ns: Vec<u64>,
    /// Where each segment (fresh copies of both libraries) ends: pair counts,
    /// ascending; empty for one segment.
    pub segment_ends: Vec<usize>,
}

/// One benchmark of an A/B run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AbBenchmark {
    /// The benchmark's name (the method, or `METHOD#N` for a calls file).
    pub name: String,
    /// The method called.
    pub method: String,
    /// The input of every call.
    pub input: Value,
    /// Calls made to each side before measuring.
    pub warmup_calls: u64,
    /// Wall time of the measuring phase.
    pub elapsed_ns: u64,
    /// The decision, on [`AbReport::clock`].
    pub verdict: Verdict,
    /// Why the verdict is `inconclusive`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Candidate / baseline on the deciding clock.
    pub ratio: Ratio,
    /// The smallest slowdown the run could have found, on the deciding clock (a fraction).
    pub sensitivity: f64,
    /// The comparison by CPU time (absent without a thread CPU clock).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<ClockComparison>,
    /// The comparison by wall time.
    pub wall: ClockComparison,
}

impl AbBenchmark {
    /// Compares the pairs on both clocks and decides on `clock` (wall when
    /// there are no CPU times).
    pub fn new(
        name: impl Into<String>,
        method: impl Into<String>,
        input: Value,
        samples: &PairedSamples,
        clock: Clock,
        threshold: f64,
    ) -> Result<AbBenchmark, StatsError> {
        let wall =
            compare_paired(&samples.baseline_wall_ns, &samples.candidate_wall_ns, &samples.segment_ends, threshold)?;
        let cpu = if samples.baseline_cpu_ns.is_empty() {
            None
        } else {
            Some(compare_paired(&samples.baseline_cpu_ns, &samples.candidate_cpu_ns, &samples.segment_ends, threshold)?)
        };
        let deciding = match (clock, &cpu) {
            (Clock::Cpu, Some(cpu)) => cpu,
            _ => &wall,
        };
        Ok(AbBenchmark {
            name: name.into(),
            method: method.into(),
            input,
            warmup_calls: 0,
            elapsed_ns: 0,
            verdict: deciding.verdict,
            reason: deciding.reason.clone(),
            ratio: deciding.ratio,
            sensitivity: deciding.sensitivity,
            cpu,
            wall,
        })
    }

    /// The comparison on `clock`, falling back to wall time.
    pub fn on(&self, clock: Clock) -> &ClockComparison {
        match (clock, &self.cpu) {
            (Clock::Cpu, Some(cpu)) => cpu,
            _ => &self.wall,
        }
    }
}

/// A whole `ax perf ab` run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AbReport {
    /// When the run started: RFC 3339, UTC, to the second.
    pub started_at: String,
    /// What wrote the report (`ax 0.1.0`).
    pub tool: String,
    /// Where it ran.
    pub machine: Machine,
    /// The baseline as given.
    pub baseline: String,
    /// The candidate as given.
    pub candidate: String,
    /// The clock the verdicts are based on (wall when no CPU clock was available).
    pub clock: Clock,
    /// The noise threshold, a fraction.
    pub threshold: f64,
    /// The run's verdict: `slower` if any benchmark is, else `inconclusive` if
    /// any is, else `faster` if any is, else `no change`.
    pub verdict: Verdict,
    /// The ratio of the benchmark that decided the verdict.
    pub ratio: Option<Ratio>,
    /// Its sensitivity.
    pub sensitivity: Option<f64>,
    /// The benchmarks, in the order they ran.
    pub benchmarks: Vec<AbBenchmark>,
}

#[derive(Serialize)]
struct Envelope<'a> {
    format: &'static str,
    version: u32,
    #[serde(flatten)]
    report: &'a AbReport,
}

impl AbReport {
    /// A report of `benchmarks`, started now on this machine.
    pub fn new(
        tool: impl Into<String>,
        baseline: impl Into<String>,
        candidate: impl Into<String>,
        clock: Clock,
        threshold: f64,
        benchmarks: Vec<AbBenchmark>,
    ) -> AbReport {
        let verdict = [Verdict::Slower, Verdict::Inconclusive, Verdict::Faster]
            .into_iter()
            .find(|v| benchmarks.iter().any(|b| b.verdict == *v))
            .unwrap_or(Verdict::NoChange);
        // The deciding benchmark: the first with the run's verdict; for "no
        // change", the one that could detect the least.
        let deciding = if verdict == Verdict::NoChange {
            benchmarks.iter().max_by(|a, b| a.sensitivity.total_cmp(&b.sensitivity))
        } else {
            benchmarks.iter().find(|b| b.verdict == verdict)
        };
        // Any benchmark without a CPU clock makes the whole run a wall-time one.
        let clock = if benchmarks.iter().any(|b| b.cpu.is_none()) { Clock::Wall } else { clock };
        AbReport {
            started_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            tool: tool.into(),
            machine: Machine::current(),
            baseline: baseline.into(),
            candidate: candidate.into(),
            clock,
            threshold,
            verdict,
            ratio: deciding.map(|b| b.ratio),
            sensitivity: deciding.map(|b| b.sensitivity),
            benchmarks,
        }
    }

    /// The report as pretty-printed JSON, ending with a newline.
    pub fn to_json(&self) -> String {
        let envelope = Envelope { format: AB_FORMAT, version: AB_VERSION, report: self };
        let mut text = serde_json::to_string_pretty(&envelope).expect("an A/B report always serialises");
        text.push('\n');
        text
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn samples(factor_cpu: f64, factor_wall: f64, cpu: bool) -> PairedSamples {
        let n = 400u64;
        let base: Vec<u64> = (0..n).map(|i| 10_000 + (i * 37) % 101).collect();
        let scaled = |f: f64| base.iter().map(|&x| (x as f64 * f) as u64).collect::<Vec<u64>>();
        PairedSamples {
            baseline_wall_ns: base.clone(),
            candidate_wall_ns: scaled(factor_wall),
            baseline_cpu_ns: if cpu { base.clone() } else { Vec::new() },
            candidate_cpu_ns: if cpu { scaled(factor_cpu) } else { Vec::new() },
            segment_ends: Vec::new(),
        }
    }

    #[test]
    fn the_clock_decides_and_the_worst_benchmark_speaks_for_the_run() {
        let slower = AbBenchmark::new("a", "a", json!(null), &samples(1.10, 1.0, true), Clock::Cpu, 0.005).unwrap();
        assert_eq!(slower.verdict, Verdict::Slower);
        assert_eq!(slower.wall.verdict, Verdict::NoChange);
        let by_wall = AbBenchmark::new("a", "a", json!(null), &samples(1.10, 1.0, true), Clock::Wall, 0.005).unwrap();
        assert_eq!(by_wall.verdict, Verdict::NoChange);
        let same = AbBenchmark::new("b", "b", json!(null), &samples(1.0, 1.0, true), Clock::Cpu, 0.005).unwrap();

        let report = AbReport::new("ax test", "base", "cand", Clock::Cpu, 0.005, vec![same.clone(), slower]);
        assert_eq!(report.verdict, Verdict::Slower);
        assert!((report.ratio.unwrap().estimate - 1.10).abs() < 0.001, "{report:?}");
        let json: Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(json["format"], "ax-perf-ab");
        assert_eq!(json["verdict"], "slower");
        assert_eq!(json["clock"], "cpu");
        assert!(json["ratio"]["low"].as_f64().unwrap() > 1.09);
        assert_eq!(json["benchmarks"][1]["wall"]["verdict"], "no change");

        let report = AbReport::new("ax test", "base", "cand", Clock::Cpu, 0.005, vec![same]);
        assert_eq!(report.verdict, Verdict::NoChange);

        let no_cpu = AbBenchmark::new("c", "c", json!(null), &samples(1.0, 1.2, false), Clock::Cpu, 0.005).unwrap();
        assert_eq!(no_cpu.verdict, Verdict::Slower, "wall decides without a CPU clock");
        let report = AbReport::new("ax test", "base", "cand", Clock::Cpu, 0.005, vec![no_cpu]);
        assert_eq!(report.clock, Clock::Wall);
    }
}
