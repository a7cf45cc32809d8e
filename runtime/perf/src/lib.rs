//! ax-perf: the statistics and the report format behind `ax perf run` and
//! `ax perf compare`, with no knowledge of plugins or of the command line.
//!
//! A benchmark is a sample of call durations in nanoseconds. [`Summary`]
//! describes one sample (interpolated percentiles, MAD, a bootstrap interval of
//! the median, Tukey outliers, throughput); [`compare()`] decides whether a
//! second sample is [`Verdict::Faster`], [`Verdict::Slower`] or neither, from a
//! Mann-Whitney U test *and* a bootstrap interval of the ratio of medians
//! against a noise threshold, and [`compare_benchmarks`] makes such a verdict
//! `Inconclusive` when the runs cannot back it (autocorrelated or drifting
//! series, a load change recorded in [`Conditions`]). [`compare_paired`] is
//! the statistics of `ax perf ab`, two builds measured in alternating pairs,
//! and [`AbReport`] its result. [`Report`] is the versioned JSON file that
//! carries samples between the two commands, and [`render`] turns reports and
//! comparisons into terminal tables, Markdown, CSV or JSON.
//!
//! Everything here is deterministic: bootstraps use a fixed seed, so the same
//! samples always give the same intervals and the same verdicts.

pub mod ab;
pub mod bootstrap;
pub mod compare;
pub mod conditions;
pub mod html;
pub mod paired;
pub mod render;
pub mod report;
pub mod stats;

pub use ab::{AbBenchmark, AbReport, ClockComparison};
pub use ax_profile::write_atomically;
pub use compare::{
    BenchmarkComparison, CompareOptions, Comparison, MannWhitney, ReportComparison, Verdict, compare,
    compare_benchmarks, mann_whitney, relative_change,
};
pub use conditions::{Conditions, ConditionsProbe, Series};
pub use paired::{PairedComparison, Ratio, compare_paired};
pub use render::Format;
pub use report::{Benchmark, FORMAT, FailedBenchmark, Machine, Report, ReportError, VERSION};
pub use stats::{Interval, Outliers, StatsError, Summary, Throughput, percentile};
