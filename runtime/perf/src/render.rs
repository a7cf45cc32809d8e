//! Renderers: a report as a terminal table, Markdown (for pull requests), CSV
//! (every statistic, in raw nanoseconds, for spreadsheets) or JSON (the report
//! file itself); a comparison as a terminal table or Markdown.
//!
//! Tables for people show durations with three significant digits and a unit
//! chosen per value (`812 ns`, `1.52 µs`, `10.3 ms`), and say under the table
//! what their columns mean; CSV and JSON keep every number as computed.

use std::fmt::Write as _;

use crate::ab::AbReport;
use crate::compare::{ReportComparison, Verdict};
use crate::report::Report;
use crate::stats::Summary;

/// How to render a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns for a terminal.
    Table,
    /// A GitHub-flavoured Markdown table.
    Markdown,
    /// Comma-separated values with a header line.
    Csv,
    /// The report file (see `docs/perf-report.md`).
    Json,
}

/// Renders `report` as `format`.
pub fn report(report: &Report, format: Format) -> String {
    match format {
        Format::Table => {
            let mut out = report_table(report).text();
            out.push('\n');
            out.push_str(REPORT_LEGEND);
            out.push('\n');
            out
        }
        Format::Markdown => {
            let mut out = report_table(report).markdown();
            let _ = write!(out, "\n{REPORT_LEGEND} {} on {}.\n", report.tool, machine_line(report));
            out
        }
        Format::Csv => csv(report),
        Format::Json => report.to_json(),
    }
}

const REPORT_LEGEND: &str = "Median with its 95% bootstrap confidence interval; \
outliers beyond Tukey's fences (1.5 IQR; severe: 3 IQR); calls/s = 1 s / median.";

fn machine_line(report: &Report) -> String {
    let m = &report.machine;
    let cpu = m.cpu_model.as_deref().map(|c| format!(", {c}")).unwrap_or_default();
    format!("{} {}, {} CPUs{cpu}, {}", m.os, m.arch, m.cpus, report.started_at)
}

fn report_table(report: &Report) -> Table {
    use Align::{Left, Right};
    let mut table = Table::new(&[
        ("benchmark", Left),
        ("samples", Right),
        ("median", Right),
        ("95% CI", Right),
        ("mean", Right),
        ("p95", Right),
        ("p99", Right),
        ("min", Right),
        ("max", Right),
        ("outliers", Right),
        ("calls/s", Right),
    ]);
    for b in &report.benchmarks {
        let s = &b.summary;
        table.row(vec![
            b.name.clone(),
            s.count.to_string(),
            duration(s.median_ns),
            format!("{} – {}", duration(s.median_ci_ns.low), duration(s.median_ci_ns.high)),
            duration(s.mean_ns),
            duration(s.p95_ns),
            duration(s.p99_ns),
            duration(s.min_ns as f64),
            duration(s.max_ns as f64),
            outliers(s),
            rate(s.throughput.median_per_s),
        ]);
    }
    table
}

fn outliers(s: &Summary) -> String {
    let total = s.outliers.total();
    if total == 0 {
        return "0".to_owned();
    }
    let share = 100.0 * total as f64 / s.count as f64;
    match s.outliers.severe() {
        0 => format!("{total} ({share:.1}%)"),
        severe => format!("{total} ({share:.1}%, {severe} severe)"),
    }
}

/// Every statistic of every benchmark, one line each, durations in ns.
fn csv(report: &Report) -> String {
    let mut out = String::from(
        "benchmark,plugin,method,samples,warmup_calls,elapsed_ns,mean_ns,median_ns,median_ci_low_ns,\
median_ci_high_ns,p50_ns,p90_ns,p95_ns,p99_ns,min_ns,max_ns,std_dev_ns,mad_ns,outliers_low_severe,\
outliers_low_mild,outliers_high_mild,outliers_high_severe,calls_per_s_median,calls_per_s_total\n",
    );
    for b in &report.benchmarks {
        let s = &b.summary;
        let o = &s.outliers;
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{:.1},{:.1},{:.1},{:.1},{:.1},{:.1},{:.1},{:.1},{},{},{:.1},{:.1},{},{},{},{},{:.1},{:.1}",
            csv_field(&b.name),
            csv_field(&b.plugin),
            csv_field(&b.method),
            s.count,
            b.warmup_calls,
            b.elapsed_ns,
            s.mean_ns,
            s.median_ns,
            s.median_ci_ns.low,
            s.median_ci_ns.high,
            s.p50_ns,
            s.p90_ns,
            s.p95_ns,
            s.p99_ns,
            s.min_ns,
            s.max_ns,
            s.std_dev_ns,
            s.mad_ns,
            o.low_severe,
            o.low_mild,
            o.high_mild,
            o.high_severe,
            s.throughput.median_per_s,
            s.throughput.total_per_s,
        );
    }
    out
}

/// RFC 4180: quoted when it holds a comma, a quote or a line break; quotes doubled.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text.to_owned() }
}

/// Renders a comparison as a terminal table (`markdown: false`) or Markdown.
pub fn comparison(comparison: &ReportComparison, markdown: bool) -> String {
    use Align::{Left, Right};
    let mut table = Table::new(&[
        ("benchmark", Left),
        ("base median", Right),
        ("new median", Right),
        ("change", Right),
        ("95% CI", Right),
        ("p-value", Right),
        ("verdict", Left),
    ]);
    let (mut approximate, mut unclear) = (false, false);
    for b in &comparison.benchmarks {
        let c = &b.comparison;
        let mut p = p_value(c.p_value);
        if c.small_sample() {
            approximate = true;
            p.push('*');
        }
        let mut verdict = match (c.verdict, markdown) {
            (Verdict::NoChange | Verdict::Inconclusive, _) | (_, false) => c.verdict.to_string(),
            (verdict, true) => format!("**{verdict}**"),
        };
        if c.inconclusive {
            unclear = true;
            verdict.push('?');
        }
        table.row(vec![
            if markdown { code(&b.name) } else { b.name.clone() },
            duration(c.base_median_ns),
            duration(c.new_median_ns),
            percent(c.change()),
            format!("{} … {}", percent(c.ratio_ci.low - 1.0), percent(c.ratio_ci.high - 1.0)),
            p,
            verdict,
        ]);
    }

    let count = |v| comparison.with_verdict(v).count();
    let (slower, faster, unchanged) = (count(Verdict::Slower), count(Verdict::Faster), count(Verdict::NoChange));
    let name = |n: &String| if markdown { code(n) } else { n.clone() };
    let list = |names: &[String]| names.iter().map(name).collect::<Vec<_>>().join(", ");
    let inconclusive = comparison.benchmarks.iter().filter(|b| b.comparison.inconclusive).count();
    let unchanged = match inconclusive {
        0 => format!("{unchanged} unchanged"),
        n => format!("{unchanged} unchanged ({n} inconclusive)"),
    };
    let doubted = count(Verdict::Inconclusive);
    let unchanged = match doubted {
        0 => unchanged,
        n => format!("{unchanged}, {n} without a verdict (inconclusive)"),
    };
    let mut notes = Vec::new();
    notes.push(if markdown && slower > 0 {
        format!("**{slower} slower**, {faster} faster, {unchanged}.")
    } else {
        format!("{slower} slower, {faster} faster, {unchanged}.")
    });
    for b in comparison.with_verdict(Verdict::Inconclusive) {
        notes.push(format!("{} is inconclusive: {}.", name(&b.name), b.comparison.reasons.join("; ")));
    }
    if !comparison.only_in_base.is_empty() {
        notes.push(format!("Only in base: {}.", list(&comparison.only_in_base)));
    }
    if !comparison.only_in_new.is_empty() {
        notes.push(format!("Only in new: {}.", list(&comparison.only_in_new)));
    }
    let rule = format!(
        "A benchmark is faster or slower when the two-sided Mann-Whitney U test gives p < {} \
and the whole 95% bootstrap confidence interval of the ratio of medians lies beyond ±{}. \
It is inconclusive instead when the runs cannot back that: the interval from batch medians \
(which allows for autocorrelated samples) reaches within ±{}, a series drifts by more than \
that, or the load average changed by more than {} per CPU.",
        comparison.options.alpha,
        fraction(comparison.options.threshold),
        fraction(comparison.options.threshold),
        crate::compare::LOAD_CHANGE_PER_CPU,
    );

    let mut out = if comparison.benchmarks.is_empty() {
        String::from("No benchmark is in both reports.\n")
    } else if markdown {
        table.markdown()
    } else {
        table.text()
    };
    let _ = write!(out, "\n{}\n", notes.join(if markdown { " " } else { "\n" }));
    if markdown {
        out.push('\n');
    }
    let _ = writeln!(out, "{rule}");
    // In Markdown each note is a paragraph, and a line starting with `* ` would start a list.
    let (gap, star) = if markdown { ("\n", "\\*") } else { ("", "*") };
    if unclear {
        let _ = writeln!(
            out,
            "{gap}? the 95% CI reaches beyond ±{}: a change that large is not ruled out; \
the samples are too few or too noisy to tell.",
            fraction(comparison.options.threshold)
        );
    }
    if approximate {
        let _ = writeln!(
            out,
            "{gap}{star} fewer than {} samples on a side: the p-value's normal approximation is only indicative.",
            crate::compare::MIN_SAMPLES_FOR_NORMAL_APPROXIMATION
        );
    }
    out
}

/// A comparison as JSON: the overall `verdict` (as `ax perf ab` writes it) and
/// each benchmark's ratio, interval, p-value, verdict and reasons.
pub fn comparison_json(comparison: &ReportComparison) -> String {
    let benchmarks: Vec<serde_json::Value> = comparison
        .benchmarks
        .iter()
        .map(|b| {
            let c = &b.comparison;
            serde_json::json!({
                "name": b.name,
                "verdict": c.verdict,
                "ratio": {"estimate": c.ratio, "low": c.ratio_ci.low, "high": c.ratio_ci.high},
                "dependent_ratio": c.dependent_ci.map(|ci| serde_json::json!({"low": ci.low, "high": ci.high})),
                "p_value": c.p_value,
                "base_median_ns": c.base_median_ns,
                "new_median_ns": c.new_median_ns,
                "reasons": c.reasons,
            })
        })
        .collect();
    let value = serde_json::json!({
        "verdict": comparison.verdict(),
        "alpha": comparison.options.alpha,
        "threshold": comparison.options.threshold,
        "benchmarks": benchmarks,
        "only_in_base": comparison.only_in_base,
        "only_in_new": comparison.only_in_new,
    });
    let mut text = serde_json::to_string_pretty(&value).expect("a comparison always serialises");
    text.push('\n');
    text
}

/// Renders an `ax perf ab` run as a terminal table (`markdown: false`) or Markdown.
pub fn ab(report: &AbReport, markdown: bool) -> String {
    use Align::{Left, Right};
    let clock = report.clock;
    let mut table = Table::new(&[
        ("benchmark", Left),
        ("pairs", Right),
        ("baseline", Right),
        ("candidate", Right),
        ("change", Right),
        ("95% CI", Right),
        ("detects", Right),
        ("wall change", Right),
        ("verdict", Left),
    ]);
    for b in &report.benchmarks {
        let on = b.on(clock);
        let verdict = match (b.verdict, markdown) {
            (Verdict::Slower | Verdict::Faster, true) => format!("**{}**", b.verdict),
            _ => b.verdict.to_string(),
        };
        table.row(vec![
            if markdown { code(&b.name) } else { b.name.clone() },
            on.pairs.to_string(),
            duration(on.baseline_median_ns),
            duration(on.candidate_median_ns),
            percent(b.ratio.estimate - 1.0),
            format!("{} … {}", percent(b.ratio.low - 1.0), percent(b.ratio.high - 1.0)),
            format!("≥{:.2}%", b.sensitivity * 100.0),
            percent(b.wall.ratio.estimate - 1.0),
            verdict,
        ]);
    }
    let mut out = if markdown { table.markdown() } else { table.text() };
    let gap = if markdown { "\n" } else { "" };
    let clock_name = match clock {
        crate::ab::Clock::Cpu => "the plugin thread's CPU time",
        crate::ab::Clock::Wall => "wall time",
    };
    let headline = match report.verdict {
        Verdict::Slower | Verdict::Faster if markdown => format!("**{}**", report.verdict),
        v => v.to_string(),
    };
    let _ = writeln!(
        out,
        "\nVerdict: {headline}{}, by {clock_name}.",
        report
            .ratio
            .map(|r| format!(" (candidate/baseline {:.4}, 95% CI {:.4} … {:.4})", r.estimate, r.low, r.high))
            .unwrap_or_default(),
    );
    for b in &report.benchmarks {
        if let Some(reason) = &b.reason {
            let name = if markdown { code(&b.name) } else { b.name.clone() };
            let _ = writeln!(out, "{gap}{name} is inconclusive: {reason}.");
        }
    }
    let _ = writeln!(
        out,
        "{gap}Baseline and candidate ran in one host, called in alternating pairs in random order, \
in segments on fresh copies of both libraries. Change: median of the pairs' candidate/baseline \
ratios, by {clock_name}; its 95% CI widened for dependence between pairs and for the spread \
between segments. Slower or faster when the whole CI lies beyond ±{}; \
\"detects\": the smallest slowdown this run could have called slower. Medians per call; \
wall change for comparison.",
        fraction(report.threshold)
    );
    out
}

/// A duration in ns with three significant digits and a fitting unit.
pub fn duration(ns: f64) -> String {
    const UNITS: [(f64, &str); 4] = [(1.0, "ns"), (1e3, "µs"), (1e6, "ms"), (1e9, "s")];
    let mut i = 0;
    // Move up a unit when the value would print as 1000 or more.
    while i + 1 < UNITS.len() && ns / UNITS[i].0 >= 999.5 {
        i += 1;
    }
    let (scale, unit) = UNITS[i];
    format!("{} {unit}", three_digits(ns / scale))
}

/// Calls per second: `950/s`, `12.3k/s`, `1.52M/s`.
pub fn rate(per_s: f64) -> String {
    const UNITS: [(f64, &str); 4] = [(1.0, ""), (1e3, "k"), (1e6, "M"), (1e9, "G")];
    let mut i = 0;
    while i + 1 < UNITS.len() && per_s / UNITS[i].0 >= 999.5 {
        i += 1;
    }
    let (scale, unit) = UNITS[i];
    format!("{}{unit}/s", three_digits(per_s / scale))
}

fn three_digits(x: f64) -> String {
    if x >= 99.95 {
        format!("{x:.0}")
    } else if x >= 9.995 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// A relative change with its sign: `+3.00%`, `-20.00%`.
pub fn percent(change: f64) -> String {
    format!("{:+.2}%", change * 100.0)
}

/// A fraction as a percentage without trailing zeros: 0.02 → `2%`, 0.025 → `2.5%`.
fn fraction(x: f64) -> String {
    let text = format!("{:.3}", x * 100.0);
    format!("{}%", text.trim_end_matches('0').trim_end_matches('.'))
}

fn p_value(p: f64) -> String {
    if p < 0.001 { "<0.001".to_owned() } else { format!("{p:.3}") }
}

/// A Markdown code span, unless the text holds a backtick.
fn code(text: &str) -> String {
    if text.contains('`') { text.to_owned() } else { format!("`{text}`") }
}

/// How a column's cells line up.
#[derive(Clone, Copy, Debug)]
pub enum Align {
    Left,
    Right,
}

/// A table rendered as aligned text or as Markdown (also used by `ax perf inspect`).
#[derive(Debug)]
pub struct Table {
    columns: Vec<(&'static str, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(columns: &[(&'static str, Align)]) -> Table {
        Table { columns: columns.to_vec(), rows: Vec::new() }
    }

    /// Adds a row: one cell per column.
    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.columns.len());
        self.rows.push(cells);
    }

    /// Aligned columns under a header and a rule, each line ending with a newline.
    pub fn text(&self) -> String {
        let width = |i: usize| {
            let header = self.columns[i].0.chars().count();
            self.rows.iter().map(|r| r[i].chars().count()).fold(header, usize::max)
        };
        let widths: Vec<usize> = (0..self.columns.len()).map(width).collect();
        let line = |cells: Vec<&str>| {
            let mut out = String::new();
            for (i, cell) in cells.iter().enumerate() {
                let pad = " ".repeat(widths[i] - cell.chars().count());
                let sep = if i == 0 { "" } else { "  " };
                match self.columns[i].1 {
                    Align::Left => {
                        let _ = write!(out, "{sep}{cell}{pad}");
                    }
                    Align::Right => {
                        let _ = write!(out, "{sep}{pad}{cell}");
                    }
                }
            }
            out.trim_end().to_owned() + "\n"
        };
        let mut out = line(self.columns.iter().map(|c| c.0).collect());
        let rules: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
        out += &line(rules.iter().map(String::as_str).collect());
        for row in &self.rows {
            out += &line(row.iter().map(String::as_str).collect());
        }
        out
    }

    /// A GitHub-flavoured Markdown table.
    pub fn markdown(&self) -> String {
        let escape = |cell: &str| cell.replace('|', "\\|");
        let mut out = String::new();
        let headers: Vec<&str> = self.columns.iter().map(|c| c.0).collect();
        let _ = writeln!(out, "| {} |", headers.join(" | "));
        let aligns: Vec<&str> =
            self.columns.iter().map(|c| if matches!(c.1, Align::Left) { ":--" } else { "--:" }).collect();
        let _ = writeln!(out, "| {} |", aligns.join(" | "));
        for row in &self.rows {
            let cells: Vec<String> = row.iter().map(|c| escape(c)).collect();
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use serde_json::json;

    use super::*;
    use crate::compare::CompareOptions;
    use crate::report::{Benchmark, Machine};

    fn noisy(seed: u64, n: usize, center_ns: f64, jitter: f64) -> Vec<u64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n).map(|_| (center_ns * (1.0 + rng.random_range(-jitter..jitter))).round() as u64).collect()
    }

    fn make_report(benchmarks: &[(&str, Vec<u64>)]) -> Report {
        Report {
            started_at: "2026-01-02T03:04:05Z".to_owned(),
            tool: "ax 0.1.0".to_owned(),
            machine: Machine { os: "linux".into(), arch: "x86_64".into(), cpus: 2, cpu_model: None },
            benchmarks: benchmarks
                .iter()
                .map(|(name, samples)| {
                    Benchmark::new(*name, "word-count", "count", json!({}), samples.clone()).unwrap()
                })
                .collect(),
            failed: Vec::new(),
        }
    }

    /// Base and new reports: one benchmark 3 % slower, one 20 % faster, one the
    /// same, one with too few samples, and one on each side only.
    fn reports() -> (Report, Report) {
        let base = make_report(&[
            ("count", noisy(1, 100, 1_000_000.0, 0.005)),
            ("count#2", noisy(2, 100, 100_000.0, 0.005)),
            ("echo", noisy(3, 100, 2_500.0, 0.005)),
            ("tiny", vec![900, 1000, 1100]),
            ("removed", vec![10, 20]),
        ]);
        let new = make_report(&[
            ("count", noisy(11, 100, 1_030_000.0, 0.005)),
            ("count#2", noisy(12, 100, 80_000.0, 0.005)),
            ("echo", noisy(13, 100, 2_500.0, 0.005)),
            ("tiny", vec![950, 1050, 1150]),
            ("added", vec![10, 20]),
        ]);
        (base, new)
    }

    #[test]
    fn compare_markdown_table() {
        let (base, new) = reports();
        let comparison = ReportComparison::new(&base, &new, CompareOptions::default()).unwrap();
        insta::assert_snapshot!(super::comparison(&comparison, true));
    }

    #[test]
    fn compare_text_table() {
        let (base, new) = reports();
        let comparison = ReportComparison::new(&base, &new, CompareOptions::default()).unwrap();
        let text = super::comparison(&comparison, false);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("benchmark  base median  new median   change"), "{text}");
        assert!(lines[2].starts_with("count          1.00 ms     1.03 ms   +2.89%    +2.75% … +3.01%"), "{text}");
        assert!(lines[2].ends_with("<0.001  slower"), "{text}");
        assert!(
            text.contains(
                "1 slower, 1 faster, 2 unchanged (1 inconclusive).\nOnly in base: removed.\nOnly in new: added.\n"
            ),
            "{text}"
        );
        assert!(text.contains("beyond ±2%."), "{text}");

        let same = ReportComparison::new(&base, &base, CompareOptions::default()).unwrap();
        let text = super::comparison(&same, false);
        assert!(text.contains("+0.00%") && text.contains("no change"), "{text}");
        assert!(
            !text.contains("slower  ") && text.contains("0 slower, 0 faster, 5 unchanged (2 inconclusive)."),
            "{text}"
        );
    }

    #[test]
    fn report_table_and_markdown() {
        let (base, _) = reports();
        let text = report(&base, Format::Table);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("benchmark  samples   median"), "{text}");
        assert!(lines[2].starts_with("count          100  1.00 ms  "), "{text}");
        assert_eq!(lines.len(), 2 + 5 + 2, "{text}");
        assert!(lines[8].starts_with("Median with its 95% bootstrap confidence interval"), "{text}");

        let md = report(&base, Format::Markdown);
        assert!(md.starts_with("| benchmark | samples | median | 95% CI |"), "{md}");
        assert!(md.lines().nth(1).unwrap().starts_with("| :-- | --: |"), "{md}");
        assert!(md.contains("ax 0.1.0 on linux x86_64, 2 CPUs, 2026-01-02T03:04:05Z."), "{md}");
    }

    #[test]
    fn csv_has_every_statistic() {
        let mut r = make_report(&[("a,\"b\"", vec![1, 2, 3, 4, 100])]);
        r.benchmarks[0].warmup_calls = 7;
        let text = report(&r, Format::Csv);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].split(',').count(), 24);
        let fields: Vec<&str> = lines[1].split(',').collect();
        assert_eq!(lines[1].split_once(",word-count").unwrap().0, "\"a,\"\"b\"\"\"", "{text}");
        // After the quoted name (which holds one comma): samples, warmup, elapsed, mean, median, …
        assert_eq!(&fields[4..10], ["5", "7", "0", "22.0", "3.0", fields[9]], "{text}");
        assert_eq!(&fields[11..21], ["3.0", "61.6", "80.8", "96.2", "1", "100", "43.6", "1.0", "0", "0"], "{text}");
        assert_eq!(&fields[21..23], ["0", "1"], "{text}");
    }

    #[test]
    fn json_is_the_report_file() {
        let (base, _) = reports();
        assert_eq!(report(&base, Format::Json), base.to_json());
    }

    #[test]
    fn units() {
        assert_eq!(duration(812.0), "812 ns");
        assert_eq!(duration(8.123), "8.12 ns");
        assert_eq!(duration(1520.0), "1.52 µs");
        assert_eq!(duration(999_600.0), "1.00 ms");
        assert_eq!(duration(10_340_000.0), "10.3 ms");
        assert_eq!(duration(2.5e9), "2.50 s");
        assert_eq!(duration(3.6e12), "3600 s");
        assert_eq!(rate(950.0), "950/s");
        assert_eq!(rate(657_894.7), "658k/s");
        assert_eq!(rate(1_520_000.0), "1.52M/s");
        assert_eq!(percent(0.03), "+3.00%");
        assert_eq!(percent(-0.2), "-20.00%");
        assert_eq!(fraction(0.02), "2%");
        assert_eq!(fraction(0.025), "2.5%");
        assert_eq!(p_value(0.0004), "<0.001");
        assert_eq!(p_value(0.0123), "0.012");
        assert_eq!(code("a`b"), "a`b");
    }
}
