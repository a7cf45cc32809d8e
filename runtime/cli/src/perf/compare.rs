//! `ax perf compare BASE.json NEW.json`: each benchmark present in both
//! reports, its median ratio with a 95 % confidence interval, the Mann-Whitney
//! p-value and a verdict, as a terminal table or Markdown for a pull request.
//!
//! Benchmarks present in one report only are listed, not errors: adding a
//! benchmark must not fail CI. The exit status is 1 when any benchmark is
//! slower, so `ax perf compare` can gate a merge; the line saying which goes to
//! stderr, the table to stdout. A verdict the runs cannot back (the load
//! changed, a series drifts, autocorrelated samples) is `inconclusive`, named
//! with its reasons, and exits 3 when nothing is slower.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, anyhow, bail};
use ax_perf::{CompareOptions, Report, ReportComparison, Verdict};
use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct CompareArgs {
    /// The report to compare against (from `ax perf run --json -o BASE.json`).
    base: PathBuf,
    /// The report of the change.
    new: PathBuf,
    /// Smallest change of the median that counts, as a percentage.
    #[arg(long, default_value = "2%", value_name = "PERCENT")]
    threshold: String,
    /// Significance level of the Mann-Whitney U test.
    #[arg(long, default_value = "0.01", value_name = "ALPHA")]
    alpha: String,
    /// Print a Markdown table (for a pull request) instead of a terminal table.
    #[arg(long, conflicts_with = "json")]
    markdown: bool,
    /// Print the comparison as JSON: `verdict` and each benchmark's ratio, interval and reasons.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: CompareArgs) -> Result<ExitCode> {
    let options = options(&args.alpha, &args.threshold)?;
    let base = Report::read(&args.base)?;
    let new = Report::read(&args.new)?;
    let comparison = ReportComparison::new(&base, &new, options)?;
    if args.json {
        print!("{}", ax_perf::render::comparison_json(&comparison));
    } else {
        print!("{}", ax_perf::render::comparison(&comparison, args.markdown));
    }

    let slower: Vec<String> = comparison
        .with_verdict(Verdict::Slower)
        .map(|b| format!("{} ({})", b.name, ax_perf::render::percent(b.comparison.change())))
        .collect();
    if slower.is_empty() {
        // A verdict the runs could not back: neither pass nor fail (see `ax perf ab`).
        let doubted = comparison.with_verdict(Verdict::Inconclusive).count();
        return Ok(if doubted > 0 { ExitCode::from(3) } else { ExitCode::SUCCESS });
    }
    let noun = if slower.len() == 1 { "benchmark is" } else { "benchmarks are" };
    eprintln!(
        "error: {} {noun} slower in {} than in {}: {}",
        slower.len(),
        args.new.display(),
        args.base.display(),
        slower.join(", ")
    );
    Ok(ExitCode::FAILURE)
}

fn options(alpha: &str, threshold: &str) -> Result<CompareOptions> {
    let alpha_value: f64 = alpha.trim().parse().map_err(|_| {
        anyhow!("--alpha {alpha:?}: not a number; expected a significance level between 0 and 1, such as 0.01")
    })?;
    let percent = threshold.trim().strip_suffix('%').unwrap_or(threshold.trim()).trim();
    let Ok(threshold_percent) = percent.parse::<f64>() else {
        bail!("--threshold {threshold:?}: not a percentage; expected one such as 2% or 0.5%");
    };
    CompareOptions::new(alpha_value, threshold_percent / 100.0).map_err(|e| match e {
        ax_perf::StatsError::Threshold(_) => {
            anyhow!("--threshold {threshold:?}: expected a percentage of at least 0, such as 2% or 0.5%")
        }
        other => anyhow!("--alpha {alpha:?}: {other}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_percentages() {
        assert_eq!(options("0.01", "2%").unwrap(), CompareOptions::default());
        assert_eq!(options("0.05", "0.5").unwrap(), CompareOptions { alpha: 0.05, threshold: 0.005 });
        assert_eq!(options("0.01", " 3 % ").unwrap().threshold, 0.03);
        let err = options("0.01", "2x").unwrap_err().to_string();
        assert_eq!(err, "--threshold \"2x\": not a percentage; expected one such as 2% or 0.5%");
        let err = options("0.01", "-1%").unwrap_err().to_string();
        assert!(err.starts_with("--threshold \"-1%\": expected a percentage of at least 0"), "{err}");
        let err = options("1.5", "2%").unwrap_err().to_string();
        assert!(err.starts_with("--alpha \"1.5\": significance level 1.5 is out of range"), "{err}");
        let err = options("often", "2%").unwrap_err().to_string();
        assert!(err.starts_with("--alpha \"often\": not a number"), "{err}");
    }
}
