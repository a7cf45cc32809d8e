//! Whether a benchmark got faster or slower: [`compare`] two samples, or
//! [`ReportComparison::new`] two reports benchmark by benchmark.
//!
//! A verdict needs two things, as in criterion. The change must be
//! *significant*: a two-sided Mann-Whitney U test (no assumption about the
//! shape of the distributions, robust to the long right tail of timings) gives
//! `p < alpha`, default 0.01. And it must be *large enough to matter*: the whole
//! bootstrap 95 % confidence interval of the ratio of medians, new / base, lies
//! beyond the noise threshold, default ±2 %. Significance alone is not enough
//! with large samples: ten thousand calls make a 0.3 % drift from frequency
//! scaling "significant". A threshold alone is not enough with noisy samples: a
//! 5 % difference of medians can be chance.
//!
//! The p-value uses the normal approximation of U with the tie correction of
//! the variance and a continuity correction of 0.5. It is accurate for samples
//! of 20 or more on each side, which every `ax perf run` produces unless told
//! otherwise; below that it is only indicative, and [`Comparison::small_sample`]
//! says so.
//!
//! With the defaults, a 3 % shift of a stable workload (±0.5 % jitter, 100
//! samples each) comes out `Slower` at p < 10⁻³⁰, and samples of the same
//! generator never differ (tests below).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::bootstrap;
use crate::conditions::Series;
use crate::report::{Benchmark, Report};
use crate::stats::{Interval, StatsError, quantile, sorted_f64};

/// Fewer samples than this on either side make the p-value approximate.
pub const MIN_SAMPLES_FOR_NORMAL_APPROXIMATION: usize = 20;

/// When a difference counts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CompareOptions {
    /// Significance level of the Mann-Whitney test.
    pub alpha: f64,
    /// Relative change of the median the whole confidence interval must exceed (0.02 = 2 %).
    pub threshold: f64,
}

impl Default for CompareOptions {
    fn default() -> CompareOptions {
        CompareOptions { alpha: 0.01, threshold: 0.02 }
    }
}

impl CompareOptions {
    /// Checked options: `alpha` in (0, 1), `threshold` finite and at least 0.
    pub fn new(alpha: f64, threshold: f64) -> Result<CompareOptions, StatsError> {
        if !(alpha > 0.0 && alpha < 1.0) {
            return Err(StatsError::Alpha(alpha));
        }
        if !(threshold.is_finite() && threshold >= 0.0) {
            return Err(StatsError::Threshold(threshold));
        }
        Ok(CompareOptions { alpha, threshold })
    }
}

/// The outcome for one benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Significantly faster, by more than the threshold.
    Faster,
    /// Significantly slower, by more than the threshold.
    Slower,
    /// Not significant, or within the threshold.
    #[serde(rename = "no change")]
    NoChange,
    /// The data cannot back any of the others (see the comparison's reason).
    Inconclusive,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Faster => "faster",
            Verdict::Slower => "slower",
            Verdict::NoChange => "no change",
            Verdict::Inconclusive => "inconclusive",
        })
    }
}

/// A Mann-Whitney U test of two samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MannWhitney {
    /// U of the first sample: how many (first, second) pairs have the first larger, ties counting ½.
    pub u: f64,
    /// Standardised |U - mean|, after the continuity correction; 0 when every value is tied.
    pub z: f64,
    /// Two-sided p-value (normal approximation).
    pub p_value: f64,
}

/// Two-sided Mann-Whitney U test of `a` against `b` (any order, neither empty).
pub fn mann_whitney(a: &[f64], b: &[f64]) -> MannWhitney {
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    let mut all: Vec<(f64, bool)> = a.iter().map(|&x| (x, true)).chain(b.iter().map(|&x| (x, false))).collect();
    all.sort_by(|x, y| x.0.total_cmp(&y.0));
    let (mut rank_sum_a, mut ties) = (0.0, 0.0);
    let mut start = 0;
    while start < all.len() {
        let end = start + all[start..].iter().take_while(|(x, _)| *x == all[start].0).count();
        let t = (end - start) as f64;
        // Ranks start..end (1-based start+1..=end) share their mean.
        let mid_rank = (start + 1 + end) as f64 / 2.0;
        rank_sum_a += mid_rank * all[start..end].iter().filter(|(_, from_a)| *from_a).count() as f64;
        ties += t * t * t - t;
        start = end;
    }
    let n = n1 + n2;
    let u = rank_sum_a - n1 * (n1 + 1.0) / 2.0;
    let mean = n1 * n2 / 2.0;
    let variance = n1 * n2 / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)));
    if variance <= 0.0 {
        return MannWhitney { u, z: 0.0, p_value: 1.0 };
    }
    let z = ((u - mean).abs() - 0.5).max(0.0) / variance.sqrt();
    MannWhitney { u, z, p_value: libm::erfc(z / std::f64::consts::SQRT_2).min(1.0) }
}

/// `(new - base) / base`: -0.2 when a mean goes from 100 to 80, a 20 % improvement.
pub fn relative_change(base: f64, new: f64) -> f64 {
    (new - base) / base
}

/// One benchmark, base against new.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    /// Samples in the base.
    pub base_count: usize,
    /// Samples in the new run.
    pub new_count: usize,
    /// Median of the base, in ns.
    pub base_median_ns: f64,
    /// Median of the new run, in ns.
    pub new_median_ns: f64,
    /// `new_median_ns / base_median_ns`: below 1 is faster.
    pub ratio: f64,
    /// Bootstrap confidence interval of the ratio.
    pub ratio_ci: Interval,
    /// Two-sided Mann-Whitney p-value.
    pub p_value: f64,
    /// The decision.
    pub verdict: Verdict,
    /// `NoChange`, but the interval reaches beyond the threshold: a change that
    /// large is not ruled out, the samples are too few or too noisy to tell.
    pub inconclusive: bool,
    /// The interval of the ratio from batch medians, which allows for
    /// dependence between consecutive samples (see [`ReportComparison::new`]);
    /// `None` when not computed or with too few samples.
    pub dependent_ci: Option<Interval>,
    /// Why the verdict is [`Verdict::Inconclusive`]: what would have been a
    /// verdict, and what the runs show that it cannot be backed.
    pub reasons: Vec<String>,
}

impl Comparison {
    /// Relative change of the median (`ratio - 1`): +0.03 is 3 % slower.
    pub fn change(&self) -> f64 {
        self.ratio - 1.0
    }

    /// Whether either side has too few samples for the p-value's normal approximation.
    pub fn small_sample(&self) -> bool {
        self.base_count.min(self.new_count) < MIN_SAMPLES_FOR_NORMAL_APPROXIMATION
    }
}

/// Compares two samples of durations in nanoseconds.
pub fn compare(base_ns: &[u64], new_ns: &[u64], options: &CompareOptions) -> Result<Comparison, StatsError> {
    let (base, new) = (sorted_f64(base_ns)?, sorted_f64(new_ns)?);
    let (base_median, new_median) = (quantile(&base, 0.5), quantile(&new, 0.5));
    let ratio = new_median / base_median;
    let ratio_ci = bootstrap::ratio_ci(&base, &new);
    let p_value = mann_whitney(&base, &new).p_value;
    let significant = p_value < options.alpha;
    let verdict = if significant && ratio_ci.low > 1.0 + options.threshold {
        Verdict::Slower
    } else if significant && ratio_ci.high < 1.0 - options.threshold {
        Verdict::Faster
    } else {
        Verdict::NoChange
    };
    let inconclusive = verdict == Verdict::NoChange
        && (ratio_ci.low < 1.0 - options.threshold || ratio_ci.high > 1.0 + options.threshold);
    Ok(Comparison {
        base_count: base.len(),
        new_count: new.len(),
        base_median_ns: base_median,
        new_median_ns: new_median,
        ratio,
        ratio_ci,
        p_value,
        verdict,
        inconclusive,
        dependent_ci: None,
        reasons: Vec::new(),
    })
}

/// Batches per side of the dependence-aware interval.
const BATCHES: usize = 20;

/// Fewest samples per batch for that interval.
const MIN_BATCH: usize = 5;

/// A change of the 1-minute load average beyond this many per CPU, across the
/// two runs, makes a verdict inconclusive.
pub const LOAD_CHANGE_PER_CPU: f64 = 0.5;

/// A change of the CPUs other processes kept busy, per CPU, between the two
/// samplings beyond which a verdict is inconclusive (0.25 of a CPU on 2).
pub const OTHER_CPU_CHANGE_PER_CPU: f64 = 0.125;

/// Logs of the medians of [`BATCHES`] consecutive batches; `None` when batches would be too small.
fn batch_log_medians(samples_ns: &[u64]) -> Option<Vec<f64>> {
    let size = samples_ns.len() / BATCHES;
    if size < MIN_BATCH {
        return None;
    }
    let medians = samples_ns
        .chunks_exact(size)
        .take(BATCHES)
        .map(|batch| {
            let mut v: Vec<f64> = batch.iter().map(|&x| x.max(1) as f64).collect();
            v.sort_by(f64::total_cmp);
            quantile(&v, 0.5).ln()
        })
        .collect();
    Some(medians)
}

/// The 95 % interval of `ratio` from the spread of each side's batch medians
/// (Welch's t on their logs): batches far longer than the samples' correlation
/// are nearly independent, so drift and autocorrelation widen it as they should.
fn dependent_ratio_ci(base_ns: &[u64], new_ns: &[u64], ratio: f64) -> Option<Interval> {
    let (base, new) = (batch_log_medians(base_ns)?, batch_log_medians(new_ns)?);
    let moments = |v: &[f64]| {
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (v.len() - 1) as f64;
        (var / v.len() as f64, v.len() as f64 - 1.0)
    };
    let ((sb, db), (sn, dn)) = (moments(&base), moments(&new));
    let se = (sb + sn).sqrt();
    let df = if se > 0.0 { (sb + sn).powi(2) / (sb * sb / db + sn * sn / dn) } else { db + dn };
    let z: f64 = 1.959_963_984_540_054;
    // Student's t quantile from the normal one (Cornish-Fisher, ample for df ≥ 10).
    let t = z + (z.powi(3) + z) / (4.0 * df) + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * df * df);
    let center = ratio.ln();
    Some(Interval { low: (center - t * se).exp(), high: (center + t * se).exp(), level: 0.95 })
}

/// The quantiles of the faster calls that must move with the median.
const FAST_SIDE: [f64; 2] = [0.1, 0.25];

/// `new`'s [`FAST_SIDE`] quantiles over `base`'s; `None` with fewer than 20 samples a side.
fn fast_side_ratios(base_ns: &[u64], new_ns: &[u64]) -> Option<[f64; 2]> {
    if base_ns.len().min(new_ns.len()) < 20 {
        return None;
    }
    let (base, new) = (sorted_f64(base_ns).ok()?, sorted_f64(new_ns).ok()?);
    Some(FAST_SIDE.map(|p| quantile(&new, p) / quantile(&base, p)))
}

/// Compares two benchmarks of two reports: [`compare`] their samples, then
/// doubt a `Faster` or `Slower` verdict that the runs cannot back, making it
/// `Inconclusive` with its reasons: the interval that allows for dependence
/// between samples does not lie beyond the threshold, the fastest tenth or
/// quarter of the calls did not move with the median, a series drifts by more
/// than the threshold, the load average changed by more than
/// [`LOAD_CHANGE_PER_CPU`] per CPU across the runs, the CPUs other jobs kept
/// busy changed by more than [`OTHER_CPU_CHANGE_PER_CPU`] per CPU, or the calls
/// waited differently for a CPU.
pub fn compare_benchmarks(
    base: &Benchmark,
    new: &Benchmark,
    cpus: usize,
    options: &CompareOptions,
) -> Result<Comparison, StatsError> {
    let mut c = compare(&base.samples_ns, &new.samples_ns, options)?;
    c.dependent_ci = dependent_ratio_ci(&base.samples_ns, &new.samples_ns, c.ratio);
    if !matches!(c.verdict, Verdict::Slower | Verdict::Faster) {
        return Ok(c);
    }
    let t = options.threshold;
    let percent = |x: f64| format!("{:+.1}%", x * 100.0);
    let mut reasons = Vec::new();
    if let Some(ci) = c.dependent_ci {
        let backed = if c.verdict == Verdict::Slower { ci.low > 1.0 + t } else { ci.high < 1.0 - t };
        if !backed {
            let lag1 = |b: &Benchmark| Series::of(&b.samples_ns).map_or(0.0, |s| s.lag1_autocorrelation);
            reasons.push(format!(
                "the samples are not independent (lag-1 autocorrelation: base {:.2}, new {:.2}) and the \
interval that allows for it, {} … {}, does not lie beyond ±{}%",
                lag1(base),
                lag1(new),
                percent(ci.low - 1.0),
                percent(ci.high - 1.0),
                t * 100.0
            ));
        }
    }
    // A change in the code moves the whole distribution, its faster calls
    // too; interference from other jobs (preemption, a core shared) moves
    // the median and leaves the faster calls where they were, or moves them
    // less, or reshapes the distribution: each of the fastest tenth and
    // quarter must move by at least half as much as the median. (1 false
    // verdict in 150 compares of one build under switching load each time: a
    // run 7 % faster throughout whose p10 moved 2.7 %; later a run 3 % faster
    // whose p10 moved 6.3 % and p25 0.8 %, its base's calls spread 12× wider.)
    if let Some(ratios) = fast_side_ratios(&base.samples_ns, &new.samples_ns) {
        let moved = |r: f64| {
            let beyond = if c.verdict == Verdict::Slower { r > 1.0 + t / 2.0 } else { r < 1.0 - t / 2.0 };
            beyond && r.ln() / c.ratio.ln() >= 0.5
        };
        if !ratios.iter().all(|&r| moved(r)) {
            reasons.push(format!(
                "the faster calls did not move with the median (p10 {}, p25 {}, median {}): the \
difference is the machine's, not the code's",
                percent(ratios[0] - 1.0),
                percent(ratios[1] - 1.0),
                percent(c.ratio - 1.0)
            ));
        }
    }
    for (side, benchmark) in [("base", base), ("new", new)] {
        if let Some(series) = Series::of(&benchmark.samples_ns)
            && series.drift.abs() > t
        {
            reasons
                .push(format!("the {side} series drifts {} from its first to its last third", percent(series.drift)));
        }
    }
    if let (Some(b), Some(n)) = (&base.conditions, &new.conditions)
        && let Some((low, high)) = b.load_range(n)
        && high - low > LOAD_CHANGE_PER_CPU * cpus.max(1) as f64
    {
        reasons.push(format!("the load changed (1-minute load average from {low:.2} to {high:.2} across the runs)"));
    }
    // Other jobs that came or went between the runs share caches, memory
    // bandwidth and (in a VM) the host's cores even when the calls never wait
    // for a CPU.
    if let (Some(b), Some(n)) = (base.conditions.and_then(|c| c.other_cpu), new.conditions.and_then(|c| c.other_cpu))
        && (n - b).abs() > OTHER_CPU_CHANGE_PER_CPU * cpus.max(1) as f64
    {
        reasons.push(format!(
            "other jobs kept {b:.2} CPUs busy while the base ran and {n:.2} while the new one ran (of {})",
            cpus.max(1)
        ));
    }
    // Calls that spent a different share of their time off the CPU: the
    // difference of wall times is the scheduler's, not the code's.
    if let (Some(b), Some(n)) =
        (base.conditions.and_then(|c| c.off_cpu_share), new.conditions.and_then(|c| c.off_cpu_share))
        && ((1.0 - n).max(1e-9) / (1.0 - b).max(1e-9)).ln().abs() > (1.0 + t).ln()
    {
        reasons.push(format!(
            "the calls waited differently for a CPU (share of their time off the CPU: base {:.0}%, new {:.0}%)",
            b * 100.0,
            n * 100.0
        ));
    }
    if !reasons.is_empty() {
        c.verdict = Verdict::Inconclusive;
        c.reasons = reasons;
    }
    Ok(c)
}

/// A benchmark present in both reports, compared.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchmarkComparison {
    /// The benchmark's name.
    pub name: String,
    /// The comparison.
    pub comparison: Comparison,
}

/// Two reports compared benchmark by benchmark, matched by name.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportComparison {
    /// The options used.
    pub options: CompareOptions,
    /// Benchmarks in both reports, in the base's order.
    pub benchmarks: Vec<BenchmarkComparison>,
    /// Names present only in the base.
    pub only_in_base: Vec<String>,
    /// Names present only in the new report.
    pub only_in_new: Vec<String>,
}

impl ReportComparison {
    /// Compares every benchmark present in both reports.
    pub fn new(base: &Report, new: &Report, options: CompareOptions) -> Result<ReportComparison, StatsError> {
        let mut benchmarks = Vec::new();
        let mut only_in_base = Vec::new();
        for b in &base.benchmarks {
            match new.benchmark(&b.name) {
                Some(n) => benchmarks.push(BenchmarkComparison {
                    name: b.name.clone(),
                    comparison: compare_benchmarks(b, n, base.machine.cpus.max(new.machine.cpus), &options)?,
                }),
                None => only_in_base.push(b.name.clone()),
            }
        }
        let only_in_new =
            new.benchmarks.iter().filter(|n| base.benchmark(&n.name).is_none()).map(|n| n.name.clone()).collect();
        Ok(ReportComparison { options, benchmarks, only_in_base, only_in_new })
    }

    /// The verdict of the whole comparison: `slower` if any benchmark is,
    /// else `inconclusive` if any is, else `faster` if any is, else `no change`.
    pub fn verdict(&self) -> Verdict {
        [Verdict::Slower, Verdict::Inconclusive, Verdict::Faster]
            .into_iter()
            .find(|v| self.with_verdict(*v).next().is_some())
            .unwrap_or(Verdict::NoChange)
    }

    /// Benchmarks with the given verdict.
    pub fn with_verdict(&self, verdict: Verdict) -> impl Iterator<Item = &BenchmarkComparison> {
        self.benchmarks.iter().filter(move |b| b.comparison.verdict == verdict)
    }
}

#[cfg(test)]
mod tests {
    use rand::seq::SliceRandom;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::conditions::Conditions;

    /// `n` durations around `center_ns`, uniform jitter of ±`jitter` (a fraction).
    fn noisy(seed: u64, n: usize, center_ns: f64, jitter: f64) -> Vec<u64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n).map(|_| (center_ns * (1.0 + rng.random_range(-jitter..jitter))).round() as u64).collect()
    }

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance
    }

    #[test]
    fn mann_whitney_known_values() {
        // SciPy's documented example, `mannwhitneyu(males, females, method="asymptotic")`:
        // U = 17, p = 0.11134688653314041.
        let males = [19.0, 22.0, 16.0, 29.0, 24.0];
        let females = [20.0, 11.0, 17.0, 12.0];
        let test = mann_whitney(&males, &females);
        assert_eq!(test.u, 17.0);
        assert!(close(test.p_value, 0.111_346_886_533_140_41, 1e-12), "{test:?}");
        // Symmetric: the other sample's U is n1·n2 - U, the p-value the same.
        let other = mann_whitney(&females, &males);
        assert_eq!(other.u, 3.0);
        assert!(close(other.p_value, test.p_value, 1e-15));

        // Complete separation of 3 and 3: U = 0, σ² = 9/12·7, z = 4/√5.25, p = 0.0808556.
        let test = mann_whitney(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]);
        assert_eq!(test.u, 0.0);
        assert!(close(test.p_value, 0.080_855_598_370_052_3, 1e-12), "{test:?}");
    }

    #[test]
    fn mann_whitney_ties() {
        // a = 1 2 2 3, b = 2 3 4 5. Midranks: 1→1, 2→3 (three tied), 3→5.5 (two), 4→7, 5→8.
        // R(a) = 1 + 3 + 3 + 5.5 = 12.5, U = 12.5 - 10 = 2.5.
        // Ties: (27 - 3) + (8 - 2) = 30; σ² = 16/12·(9 - 30/56) = 11.2857…
        // z = (|2.5 - 8| - 0.5)/σ = 1.48835…, p = erfc(z/√2) = 0.136661…
        let test = mann_whitney(&[1.0, 2.0, 2.0, 3.0], &[2.0, 3.0, 4.0, 5.0]);
        assert_eq!(test.u, 2.5);
        let sigma = (16.0_f64 / 12.0 * (9.0 - 30.0 / 56.0)).sqrt();
        assert!(close(test.z, 5.0 / sigma, 1e-12), "{test:?}");
        assert!(close(test.p_value, libm::erfc(5.0 / sigma / std::f64::consts::SQRT_2), 1e-15));
        assert!(close(test.p_value, 0.136_66, 1e-5), "{test:?}");

        // Everything tied: no evidence at all.
        let test = mann_whitney(&[7.0; 5], &[7.0; 9]);
        assert_eq!((test.z, test.p_value), (0.0, 1.0));
    }

    #[test]
    fn relative_change_of_the_prototype() {
        // The prototype's expectation: a mean from 100 to 80 is a 20 % improvement.
        assert!(close(relative_change(100.0, 80.0), -0.20, 1e-12));
        assert!(close(relative_change(100.0, 125.0), 0.25, 1e-12));

        let base = noisy(1, 100, 100_000.0, 0.005);
        let new = noisy(2, 100, 80_000.0, 0.005);
        let c = compare(&base, &new, &CompareOptions::default()).unwrap();
        assert_eq!(c.verdict, Verdict::Faster);
        assert!(close(c.change(), -0.20, 0.002), "{c:?}");
        let mean = |s: &[u64]| s.iter().sum::<u64>() as f64 / s.len() as f64;
        assert!(close(relative_change(mean(&base), mean(&new)), -0.20, 0.002));
    }

    #[test]
    fn a_three_percent_shift_is_a_significant_regression() {
        let base = noisy(10, 100, 1_000_000.0, 0.005);
        let new = noisy(11, 100, 1_030_000.0, 0.005);
        let c = compare(&base, &new, &CompareOptions::default()).unwrap();
        assert_eq!(c.verdict, Verdict::Slower, "{c:?}");
        assert!(c.p_value < 0.01, "{c:?}");
        assert!(c.ratio_ci.contains(c.ratio) && c.ratio_ci.low > 1.02, "{c:?}");
        assert!(close(c.change(), 0.03, 0.003), "{c:?}");
        assert!(!c.small_sample());

        // And the other way round, faster.
        let c = compare(&new, &base, &CompareOptions::default()).unwrap();
        assert_eq!(c.verdict, Verdict::Faster, "{c:?}");
    }

    #[test]
    fn the_same_workload_never_regresses() {
        for seed in 0..10 {
            let base = noisy(100 + seed, 100, 1_000_000.0, 0.005);
            let new = noisy(200 + seed, 100, 1_000_000.0, 0.005);
            let c = compare(&base, &new, &CompareOptions::default()).unwrap();
            assert_eq!(c.verdict, Verdict::NoChange, "seed {seed}: {c:?}");
            assert!(!c.inconclusive, "seed {seed}: {c:?}");
            assert!(c.ratio_ci.contains(1.0) || c.change().abs() < 0.005, "seed {seed}: {c:?}");
        }
    }

    #[test]
    fn significant_but_within_threshold_is_no_change() {
        // 1 % slower, clearly significant with 2000 samples of ±0.5 % jitter, but under 2 %.
        let base = noisy(20, 2000, 1_000_000.0, 0.005);
        let new = noisy(21, 2000, 1_010_000.0, 0.005);
        let c = compare(&base, &new, &CompareOptions::default()).unwrap();
        assert!(c.p_value < 1e-10, "{c:?}");
        assert_eq!(c.verdict, Verdict::NoChange);
        assert!(!c.inconclusive, "a 1 % change is ruled in, and anything beyond 2 % out: {c:?}");
        // With a 0.5 % threshold it is a regression.
        let c = compare(&base, &new, &CompareOptions::new(0.01, 0.005).unwrap()).unwrap();
        assert_eq!(c.verdict, Verdict::Slower);
    }

    #[test]
    fn large_but_not_significant_is_no_change() {
        // Medians 5 % apart, but three samples each of wild noise.
        let c = compare(&[100, 300, 200], &[210, 95, 310], &CompareOptions::default()).unwrap();
        assert_eq!(c.verdict, Verdict::NoChange, "{c:?}");
        assert!(c.inconclusive && c.small_sample(), "{c:?}");
    }

    fn benchmark(samples: Vec<u64>) -> Benchmark {
        Benchmark::new("count", "p", "count", serde_json::Value::Null, samples).unwrap()
    }

    #[test]
    fn a_median_that_moved_twice_as_far_as_the_fastest_calls_is_inconclusive() {
        let options = CompareOptions::default();
        // The base's slower calls spread out (p10 −6.4 % of its median), the
        // new run's not: the median moved −6.8 %, the fastest tenth −2.8 %.
        let base = benchmark(noisy(40, 400, 1_000_000.0, 0.08));
        let narrow = benchmark(noisy(41, 400, 932_000.0, 0.03));
        let c = compare_benchmarks(&base, &narrow, 2, &options).unwrap();
        assert_eq!(c.verdict, Verdict::Inconclusive, "{c:?}");
        assert!(c.reasons.iter().any(|r| r.starts_with("the faster calls did not move")), "{c:?}");
        // The same 6.8 % for every call, the fastest ones too: a verdict.
        let shifted = benchmark(noisy(41, 400, 932_000.0, 0.08));
        let c = compare_benchmarks(&base, &shifted, 2, &options).unwrap();
        assert_eq!(c.verdict, Verdict::Faster, "{c:?}");
    }

    #[test]
    fn a_median_whose_fastest_quarter_stayed_put_is_inconclusive() {
        let options = CompareOptions::default();
        // As a pair of runs of one build did: the base's calls spread wide,
        // the new run's bunched 3.5 % lower but for a fast tail, so its p10
        // moved −5.7 % and its p25 only −1 %.
        let base = benchmark(noisy(50, 400, 81_000.0, 0.06));
        let mut reshaped = noisy(51, 340, 77_900.0, 0.003);
        reshaped.extend(noisy(52, 60, 72_000.0, 0.03));
        reshaped.shuffle(&mut ChaCha8Rng::seed_from_u64(53));
        let c = compare_benchmarks(&base, &benchmark(reshaped), 2, &options).unwrap();
        assert_eq!(c.verdict, Verdict::Inconclusive, "{c:?}");
        assert_eq!(c.reasons.len(), 1, "{c:?}");
        assert!(c.reasons[0].starts_with("the faster calls did not move with the median (p10 -5"), "{c:?}");
    }

    #[test]
    fn a_verdict_the_runs_cannot_back_is_inconclusive_and_says_why() {
        let options = CompareOptions::default();
        let base = benchmark(noisy(30, 400, 1_000_000.0, 0.005));
        // 3 % slower and steady: a verdict, backed.
        let steady = benchmark(noisy(31, 400, 1_030_000.0, 0.005));
        let c = compare_benchmarks(&base, &steady, 2, &options).unwrap();
        assert_eq!(c.verdict, Verdict::Slower, "{c:?}");
        assert!(c.reasons.is_empty() && c.dependent_ci.unwrap().low > 1.02, "{c:?}");

        // A median shift made of a slow first two thirds and a fast last third
        // (load that went away): the pointwise test says slower, the runs do not back it.
        let mut drifting = noisy(32, 400, 1_000_000.0, 0.005);
        for x in &mut drifting[..260] {
            *x = *x * 112 / 100;
        }
        let c = compare(&base.samples_ns, &drifting, &options).unwrap();
        assert_eq!(c.verdict, Verdict::Slower, "{c:?}");
        let c = compare_benchmarks(&base, &benchmark(drifting), 2, &options).unwrap();
        assert_eq!(c.verdict, Verdict::Inconclusive, "{c:?}");
        assert!(c.reasons.iter().any(|r| r.starts_with("the new series drifts -1")), "{c:?}");

        // A steady 3 % slower run, but the load went from 0.2 to 3.9 between the runs.
        let quiet = Conditions { load_before: Some(0.2), load_after: Some(0.3), ..Conditions::default() };
        let busy = Conditions { load_before: Some(3.9), load_after: Some(3.1), ..Conditions::default() };
        let (mut base, mut steady) = (base, steady);
        base.conditions = Some(quiet);
        steady.conditions = Some(busy);
        let c = compare_benchmarks(&base, &steady, 2, &options).unwrap();
        assert_eq!(c.verdict, Verdict::Inconclusive, "{c:?}");
        assert_eq!(c.reasons, ["the load changed (1-minute load average from 0.20 to 3.90 across the runs)"]);
        // On a machine with 8 CPUs that change is within bounds.
        assert_eq!(compare_benchmarks(&base, &steady, 8, &options).unwrap().verdict, Verdict::Slower);

        // Calls off the CPU 10 % of their time in one run and 40 % in the other.
        base.conditions = Some(Conditions { off_cpu_share: Some(0.10), ..Conditions::default() });
        steady.conditions = Some(Conditions { off_cpu_share: Some(0.40), ..Conditions::default() });
        let c = compare_benchmarks(&base, &steady, 8, &options).unwrap();
        assert_eq!(c.verdict, Verdict::Inconclusive, "{c:?}");
        assert_eq!(
            c.reasons,
            ["the calls waited differently for a CPU (share of their time off the CPU: base 10%, new 40%)"]
        );
        steady.conditions = Some(Conditions { off_cpu_share: Some(0.11), ..Conditions::default() });
        assert_eq!(compare_benchmarks(&base, &steady, 8, &options).unwrap().verdict, Verdict::Slower);

        // Other jobs kept 0.1 CPU busy during one run and 1.2 during the other.
        base.conditions = Some(Conditions { other_cpu: Some(0.1), ..Conditions::default() });
        steady.conditions = Some(Conditions { other_cpu: Some(1.2), ..Conditions::default() });
        let c = compare_benchmarks(&base, &steady, 2, &options).unwrap();
        assert_eq!(c.verdict, Verdict::Inconclusive, "{c:?}");
        assert_eq!(
            c.reasons,
            ["other jobs kept 0.10 CPUs busy while the base ran and 1.20 while the new one ran (of 2)"]
        );
        steady.conditions = Some(Conditions { other_cpu: Some(0.3), ..Conditions::default() });
        assert_eq!(compare_benchmarks(&base, &steady, 2, &options).unwrap().verdict, Verdict::Slower);
    }

    #[test]
    fn options_are_checked() {
        assert_eq!(CompareOptions::new(0.0, 0.02), Err(StatsError::Alpha(0.0)));
        assert_eq!(CompareOptions::new(1.0, 0.02), Err(StatsError::Alpha(1.0)));
        assert_eq!(CompareOptions::new(0.05, -0.1), Err(StatsError::Threshold(-0.1)));
        assert!(CompareOptions::new(f64::NAN, 0.02).is_err());
        assert_eq!(CompareOptions::new(0.01, 0.02), Ok(CompareOptions::default()));
        assert_eq!(compare(&[], &[1], &CompareOptions::default()), Err(StatsError::Empty));
    }
}
