//! Paired comparisons: the statistics behind `ax perf ab`, where a baseline and
//! a candidate were called in alternation, so that pair `i` holds one call of
//! each made at (nearly) the same moment.
//!
//! Pairing is what makes a verdict possible on a noisy machine. Load that comes
//! and goes slows both calls of a pair alike, so it cancels in the pair's
//! log-ratio `dᵢ = ln(candidateᵢ / baselineᵢ)` instead of piling up on whichever
//! side happened to run during the busy second.
//!
//! - **Estimate**: the median of the `dᵢ`, as a ratio `exp(median)`. A median,
//!   not a mean: one call pre-empted for a time slice must not move it.
//! - **Interval**: the distribution-free interval of a median, from the ranks
//!   `n/2 ∓ z·√n/2` of the sorted `dᵢ` (the sign test inverted), with `√n`
//!   widened for dependence between consecutive pairs. The widening factor is
//!   the long-run variance of the signs `[dᵢ > median]` over their variance,
//!   estimated by batch means (batches of `√n` pairs); it is 1 for independent
//!   pairs and grows when pairs come in runs (load that changes *within* a
//!   pair, drift the pairing did not cancel). It is never below 1.
//! - **Segments**: the run is cut into segments, each on fresh copies of both
//!   libraries, because where code lands in memory shifts its speed a little
//!   (two copies of one build differ by up to about 1 %, measured here). The
//!   interval is widened to cover `median ± t·s/√k` over the `k` segments'
//!   medians too, so that a layout bias that happens to persist through one
//!   segment cannot pass for a change.
//! - **Verdict**, against a noise threshold `t` (default 0.5 %): `slower` when
//!   the whole interval lies above `1 + t`, `faster` when it lies below
//!   `1 / (1 + t)`, `no change` when it lies within both, and `inconclusive`
//!   otherwise (or with fewer than [`MIN_PAIRS`] pairs): the data cannot tell.
//! - **Sensitivity**: the smallest change that would have come out `slower`
//!   with this run's interval width, `(1 + t)·exp(half-width) - 1`, so that
//!   "no change" says what it rules out.
//!
//! Everything is deterministic: no resampling, no seed.

use serde::{Deserialize, Serialize};

use crate::compare::Verdict;
use crate::stats::{StatsError, quantile};

/// Fewer pairs than this give no verdict.
pub const MIN_PAIRS: usize = 10;

/// The default noise threshold of a paired comparison: 0.5 %.
pub const DEFAULT_THRESHOLD: f64 = 0.005;

/// Two-sided 95 % normal quantile.
const Z_95: f64 = 1.959_963_984_540_054;

/// A ratio candidate / baseline with its 95 % interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ratio {
    /// The point estimate.
    pub estimate: f64,
    /// Lower bound.
    pub low: f64,
    /// Upper bound.
    pub high: f64,
}

/// One clock's paired comparison.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairedComparison {
    /// Pairs measured.
    pub pairs: usize,
    /// Median of the baseline's calls, in ns.
    pub baseline_median_ns: f64,
    /// Median of the candidate's calls, in ns.
    pub candidate_median_ns: f64,
    /// Candidate / baseline, from the paired log-ratios.
    pub ratio: Ratio,
    /// How much dependence between pairs widened the interval (1: none).
    pub dependence: f64,
    /// Segments (fresh copies of both libraries) whose spread the interval covers.
    pub segments: usize,
    /// The smallest slowdown this run could have called `slower`, as a fraction (0.006 = 0.6 %).
    pub sensitivity: f64,
    /// The decision.
    pub verdict: Verdict,
    /// Why the verdict is `inconclusive`; `None` otherwise.
    pub reason: Option<String>,
}

/// Compares the paired samples `baseline_ns[i]`, `candidate_ns[i]` (same
/// length, durations of at least 1 ns) against the noise `threshold` (a fraction).
///
/// `segment_ends` (ascending pair counts, may be empty) cuts the pairs into
/// segments measured on fresh copies of both libraries; with two or more, the
/// interval is widened to cover the spread of the segments' medians too.
pub fn compare_paired(
    baseline_ns: &[u64],
    candidate_ns: &[u64],
    segment_ends: &[usize],
    threshold: f64,
) -> Result<PairedComparison, StatsError> {
    if !(threshold.is_finite() && threshold >= 0.0) {
        return Err(StatsError::Threshold(threshold));
    }
    let n = baseline_ns.len().min(candidate_ns.len());
    if n == 0 {
        return Err(StatsError::Empty);
    }
    for side in [baseline_ns, candidate_ns] {
        if let Some(index) = side[..n].iter().position(|&x| x == 0) {
            return Err(StatsError::ZeroDuration { index });
        }
    }
    let logs: Vec<f64> = (0..n).map(|i| (candidate_ns[i] as f64 / baseline_ns[i] as f64).ln()).collect();
    let mut sorted = logs.clone();
    sorted.sort_by(f64::total_cmp);
    let median = quantile(&sorted, 0.5);
    let dependence = sign_variance_inflation(&logs, median);
    let spread = Z_95 * dependence.sqrt() / (2.0 * (n as f64).sqrt());
    let (mut low, mut high) = (quantile(&sorted, 0.5 - spread), quantile(&sorted, 0.5 + spread));
    let segment_medians = segment_medians(&logs, segment_ends);
    if let Some((seg_low, seg_high)) = segment_interval(&segment_medians, median) {
        (low, high) = (low.min(seg_low), high.max(seg_high));
    }
    let ratio = Ratio { estimate: median.exp(), low: low.exp(), high: high.exp() };
    let half_width = (median - low).max(high - median);
    let limit = (1.0 + threshold).ln();
    let sensitivity = (limit + half_width).exp() - 1.0;

    let percent = |x: f64| format!("{:.2}%", x * 100.0);
    let (verdict, reason) = if n < MIN_PAIRS {
        (Verdict::Inconclusive, Some(format!("{n} pairs; at least {MIN_PAIRS} are needed")))
    } else if low > limit {
        (Verdict::Slower, None)
    } else if high < -limit {
        (Verdict::Faster, None)
    } else if low >= -limit && high <= limit {
        (Verdict::NoChange, None)
    } else {
        let reason = format!(
            "the 95% interval {}…{} reaches across the ±{} threshold; measure longer (--time) or on a quieter machine",
            signed_percent(ratio.low - 1.0),
            signed_percent(ratio.high - 1.0),
            percent(threshold)
        );
        (Verdict::Inconclusive, Some(reason))
    };
    let median_of = |side: &[u64]| {
        let mut v: Vec<f64> = side[..n].iter().map(|&x| x as f64).collect();
        v.sort_by(f64::total_cmp);
        quantile(&v, 0.5)
    };
    Ok(PairedComparison {
        pairs: n,
        baseline_median_ns: median_of(baseline_ns),
        candidate_median_ns: median_of(candidate_ns),
        ratio,
        dependence,
        segments: segment_medians.len().max(1),
        sensitivity,
        verdict,
        reason,
    })
}

/// Fewest pairs for a segment to count.
const MIN_SEGMENT_PAIRS: usize = 5;

/// The median log-ratio of each segment of at least [`MIN_SEGMENT_PAIRS`] pairs.
fn segment_medians(logs: &[f64], segment_ends: &[usize]) -> Vec<f64> {
    let mut start = 0;
    let mut medians = Vec::new();
    for &end in segment_ends {
        let end = end.min(logs.len());
        if end >= start + MIN_SEGMENT_PAIRS {
            let mut part = logs[start..end].to_vec();
            part.sort_by(f64::total_cmp);
            medians.push(quantile(&part, 0.5));
        }
        start = start.max(end);
    }
    medians
}

/// `center ± t·s/√k` over the segments' medians (Student's t, k - 1 degrees
/// of freedom); `None` with fewer than two segments.
fn segment_interval(medians: &[f64], center: f64) -> Option<(f64, f64)> {
    let k = medians.len();
    if k < 2 {
        return None;
    }
    let mean = medians.iter().sum::<f64>() / k as f64;
    let sd = (medians.iter().map(|m| (m - mean).powi(2)).sum::<f64>() / (k - 1) as f64).sqrt();
    let half = student_t_975(k - 1) * sd / (k as f64).sqrt();
    Some((center - half, center + half))
}

/// The 97.5th percentile of Student's t with `df` degrees of freedom.
pub(crate) fn student_t_975(df: usize) -> f64 {
    const TABLE: [f64; 10] = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228];
    if (1..=TABLE.len()).contains(&df) {
        return TABLE[df - 1];
    }
    // Cornish-Fisher expansion from the normal quantile, close for df > 10.
    let (z, df) = (Z_95, df.max(1) as f64);
    z + (z.powi(3) + z) / (4.0 * df) + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * df * df)
}

fn signed_percent(x: f64) -> String {
    format!("{:+.2}%", x * 100.0)
}

/// The long-run variance of the signs `[x > median]` (ties ½) over their plain
/// variance, by batch means over batches of `⌊√n⌋`; at least 1.
pub(crate) fn sign_variance_inflation(series: &[f64], median: f64) -> f64 {
    let n = series.len();
    let batch = (n as f64).sqrt().floor() as usize;
    let batches = n.checked_div(batch).unwrap_or(0);
    if batch < 2 || batches < 2 {
        return 1.0;
    }
    let sign = |x: f64| match x.total_cmp(&median) {
        std::cmp::Ordering::Greater => 1.0,
        std::cmp::Ordering::Equal => 0.5,
        std::cmp::Ordering::Less => 0.0,
    };
    let signs: Vec<f64> = series[..batches * batch].iter().map(|&x| sign(x)).collect();
    let mean = signs.iter().sum::<f64>() / signs.len() as f64;
    let variance = signs.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / (signs.len() - 1) as f64;
    if variance <= 0.0 {
        return 1.0;
    }
    let means: Vec<f64> = signs.chunks_exact(batch).map(|c| c.iter().sum::<f64>() / batch as f64).collect();
    let between = means.iter().map(|m| (m - mean).powi(2)).sum::<f64>() / (means.len() - 1) as f64;
    (batch as f64 * between / variance).max(1.0)
}

#[cfg(test)]
mod tests {
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    /// Pairs of a workload of `center` ns with ±`jitter` noise per call, the
    /// candidate `factor` times slower, both under a shared `load(i)` factor.
    fn pairs(seed: u64, n: usize, factor: f64, jitter: f64, load: impl Fn(usize) -> f64) -> (Vec<u64>, Vec<u64>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut call = |i: usize, f: f64| (50_000.0 * f * load(i) * (1.0 + rng.random_range(-jitter..jitter))) as u64;
        (0..n).map(|i| (call(i, 1.0), call(i, factor))).unzip()
    }

    /// Load that switches between 1× and 1.6× every 700 pairs.
    fn switching(i: usize) -> f64 {
        if (i / 700).is_multiple_of(2) { 1.0 } else { 1.6 }
    }

    #[test]
    fn the_same_build_is_no_change_even_under_switching_load() {
        let mut covered = 0;
        for seed in 0..20 {
            let (a, b) = pairs(seed, 10_000, 1.0, 0.03, switching);
            let c = compare_paired(&a, &b, &[], DEFAULT_THRESHOLD).unwrap();
            assert_eq!(c.verdict, Verdict::NoChange, "seed {seed}: {c:?}");
            covered += usize::from(c.ratio.low <= 1.0 && 1.0 <= c.ratio.high);
        }
        // A 95 % interval misses the truth about once in 20.
        assert!(covered >= 17, "{covered} of 20 intervals hold 1");
    }

    #[test]
    fn one_percent_is_found_and_ten_percent_estimated() {
        let (a, b) = pairs(1, 10_000, 1.01, 0.03, |_| 1.0);
        let c = compare_paired(&a, &b, &[], DEFAULT_THRESHOLD).unwrap();
        assert_eq!(c.verdict, Verdict::Slower, "{c:?}");
        assert!(c.ratio.low < 1.01 && 1.01 < c.ratio.high, "{c:?}");
        assert!(c.sensitivity < 0.01, "{c:?}");

        let (a, b) = pairs(2, 5_000, 1.10, 0.03, switching);
        let c = compare_paired(&a, &b, &[], DEFAULT_THRESHOLD).unwrap();
        assert_eq!(c.verdict, Verdict::Slower, "{c:?}");
        assert!((c.ratio.estimate - 1.10).abs() < 0.005, "{c:?}");
        let c = compare_paired(&b, &a, &[], DEFAULT_THRESHOLD).unwrap();
        assert_eq!(c.verdict, Verdict::Faster, "{c:?}");
    }

    #[test]
    fn too_few_or_too_noisy_pairs_are_inconclusive() {
        let c = compare_paired(&[100, 100, 100], &[150, 150, 150], &[], DEFAULT_THRESHOLD).unwrap();
        assert_eq!(c.verdict, Verdict::Inconclusive);
        assert_eq!(c.reason.as_deref(), Some("3 pairs; at least 10 are needed"));

        let (a, b) = pairs(3, 40, 1.0, 0.5, |_| 1.0);
        let c = compare_paired(&a, &b, &[], DEFAULT_THRESHOLD).unwrap();
        assert_eq!(c.verdict, Verdict::Inconclusive, "{c:?}");
        assert!(c.reason.as_deref().unwrap().contains("reaches across the ±0.50% threshold"), "{c:?}");
        assert!(c.sensitivity > 0.05, "{c:?}");
    }

    #[test]
    fn pairs_that_come_in_runs_widen_the_interval() {
        // Each log-ratio repeated 50 times: 10 000 pairs carry only 200 pairs' information.
        let (a, b) = pairs(4, 200, 1.0, 0.03, |_| 1.0);
        let repeat = |v: &[u64]| v.iter().flat_map(|&x| std::iter::repeat_n(x, 50)).collect::<Vec<u64>>();
        let independent = compare_paired(&repeat(&a), &repeat(&b), &[], DEFAULT_THRESHOLD).unwrap();
        let (a2, b2) = pairs(4, 10_000, 1.0, 0.03, |_| 1.0);
        let truly = compare_paired(&a2, &b2, &[], DEFAULT_THRESHOLD).unwrap();
        assert!(independent.dependence > 20.0, "{independent:?}");
        assert!(truly.dependence < 2.0, "{truly:?}");
        let width = |c: &PairedComparison| c.ratio.high - c.ratio.low;
        assert!(width(&independent) > 4.0 * width(&truly), "{independent:?} vs {truly:?}");
    }

    #[test]
    fn segments_that_disagree_widen_the_interval() {
        // Eight segments of 1 000 pairs of the same build, each with its own
        // layout bias of ±0.8 %: no segment alone is the truth.
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for (k, bias) in [1.008, 0.992, 1.006, 0.994, 1.008, 0.995, 1.007, 0.992].into_iter().enumerate() {
            let (sa, sb) = pairs(10 + k as u64, 1_000, bias, 0.02, |_| 1.0);
            a.extend(sa);
            b.extend(sb);
        }
        let ends: Vec<usize> = (1..=8).map(|k| k * 1_000).collect();
        let blind = compare_paired(&a, &b, &[], DEFAULT_THRESHOLD).unwrap();
        let aware = compare_paired(&a, &b, &ends, DEFAULT_THRESHOLD).unwrap();
        assert_eq!(aware.segments, 8);
        assert!(aware.ratio.high - aware.ratio.low > 2.0 * (blind.ratio.high - blind.ratio.low), "{aware:?} {blind:?}");
        assert!(aware.ratio.low < 1.0 && 1.0 < aware.ratio.high, "{aware:?}");
        assert_ne!(aware.verdict, Verdict::Slower);
        assert_ne!(aware.verdict, Verdict::Faster);
        assert!((student_t_975(7) - 2.365).abs() < 1e-9 && (student_t_975(30) - 2.042).abs() < 0.002);
    }

    #[test]
    fn bad_samples_are_refused() {
        assert_eq!(compare_paired(&[], &[], &[], DEFAULT_THRESHOLD), Err(StatsError::Empty));
        assert_eq!(
            compare_paired(&[1, 0], &[1, 1], &[], DEFAULT_THRESHOLD),
            Err(StatsError::ZeroDuration { index: 1 })
        );
        assert_eq!(compare_paired(&[1], &[1], &[], -0.1), Err(StatsError::Threshold(-0.1)));
    }
}
