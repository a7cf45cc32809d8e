//! Descriptive statistics of one sample of call durations: [`Summary`].
//!
//! Durations come in as whole nanoseconds (`u64`), as measured; every derived
//! statistic is an `f64` in nanoseconds. Percentiles interpolate linearly
//! between the two closest ranks (Hyndman & Fan type 7, the default of R, NumPy
//! and `PERCENTILE.INC`): with `n` sorted values the `p` percentile lies at rank
//! `h = (n - 1)·p`, between `x[⌊h⌋]` and `x[⌊h⌋ + 1]`. The naive
//! `sorted[⌊n·p⌋]` jumps from sample to sample and overstates the tail of small
//! samples; interpolation does not. The median is the 50th percentile in that
//! sense, and the quartiles behind the Tukey fences use the same definition.

use serde::{Deserialize, Serialize};

use crate::bootstrap;

/// Why a sample cannot be summarised or compared.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum StatsError {
    /// Nothing to summarise.
    #[error("no samples; expected at least one duration")]
    Empty,
    /// A duration of zero cannot be a measured call, and would make throughput and ratios infinite.
    #[error("sample {index} is 0 ns; expected durations of at least 1 ns")]
    ZeroDuration {
        /// Zero-based position of the sample.
        index: usize,
    },
    /// A significance level outside (0, 1).
    #[error("significance level {0} is out of range; expected a number between 0 and 1, such as 0.01")]
    Alpha(f64),
    /// A negative or non-finite noise threshold.
    #[error("noise threshold {0} is out of range; expected a fraction of at least 0, such as 0.02 for 2%")]
    Threshold(f64),
}

/// A confidence interval `[low, high]` at `level` (0.95 for 95 %).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Lower bound.
    pub low: f64,
    /// Upper bound.
    pub high: f64,
    /// Confidence level, a fraction.
    pub level: f64,
}

impl Interval {
    /// Whether `value` lies within the interval, bounds included.
    pub fn contains(&self, value: f64) -> bool {
        self.low <= value && value <= self.high
    }
}

/// Samples outside Tukey's fences: mild beyond 1.5 IQR from the quartiles,
/// severe beyond 3 IQR. Each sample is counted once, in its worst class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Outliers {
    /// First quartile (25th percentile), in ns.
    pub q1_ns: f64,
    /// Third quartile (75th percentile), in ns.
    pub q3_ns: f64,
    /// Below `q1 - 3·IQR`.
    pub low_severe: usize,
    /// Within `[q1 - 3·IQR, q1 - 1.5·IQR)`.
    pub low_mild: usize,
    /// Within `(q3 + 1.5·IQR, q3 + 3·IQR]`.
    pub high_mild: usize,
    /// Above `q3 + 3·IQR`.
    pub high_severe: usize,
}

impl Outliers {
    /// Classifies an ascending sample.
    fn classify(sorted: &[f64]) -> Outliers {
        let q1 = quantile(sorted, 0.25);
        let q3 = quantile(sorted, 0.75);
        let iqr = q3 - q1;
        let (low_severe, low_mild) = (q1 - 3.0 * iqr, q1 - 1.5 * iqr);
        let (high_mild, high_severe) = (q3 + 1.5 * iqr, q3 + 3.0 * iqr);
        let mut outliers = Outliers { q1_ns: q1, q3_ns: q3, ..Outliers::default() };
        for &x in sorted {
            if x < low_severe {
                outliers.low_severe += 1;
            } else if x < low_mild {
                outliers.low_mild += 1;
            } else if x > high_severe {
                outliers.high_severe += 1;
            } else if x > high_mild {
                outliers.high_mild += 1;
            }
        }
        outliers
    }

    /// All outliers, mild and severe, on both sides.
    pub fn total(&self) -> usize {
        self.low_severe + self.low_mild + self.high_mild + self.high_severe
    }

    /// Severe outliers on both sides.
    pub fn severe(&self) -> usize {
        self.low_severe + self.high_severe
    }
}

/// Calls per second, two ways.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// `1 s / median`: what a typical call sustains, unmoved by outliers.
    pub median_per_s: f64,
    /// `count / Σ durations`: what the whole sample achieved, outliers included.
    /// The sum covers the calls only, not the harness's time between them.
    pub total_per_s: f64,
}

/// What one sample of durations says: location, spread, tail, outliers, throughput.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Number of samples.
    pub count: usize,
    /// Arithmetic mean.
    pub mean_ns: f64,
    /// Median (the interpolated 50th percentile; equal to `p50_ns`).
    pub median_ns: f64,
    /// Bootstrap confidence interval of the median (see [`bootstrap`](crate::bootstrap)).
    pub median_ci_ns: Interval,
    /// 50th percentile.
    pub p50_ns: f64,
    /// 90th percentile.
    pub p90_ns: f64,
    /// 95th percentile.
    pub p95_ns: f64,
    /// 99th percentile.
    pub p99_ns: f64,
    /// Fastest sample.
    pub min_ns: u64,
    /// Slowest sample.
    pub max_ns: u64,
    /// Sample standard deviation (divides by `n - 1`; 0 for a single sample).
    pub std_dev_ns: f64,
    /// Median absolute deviation from the median, unscaled (multiply by 1.4826
    /// for an estimate of the standard deviation of normally distributed data).
    pub mad_ns: f64,
    /// Tukey-fence outliers.
    pub outliers: Outliers,
    /// Calls per second.
    pub throughput: Throughput,
}

impl Summary {
    /// Summarises `samples_ns`, durations in nanoseconds in any order.
    pub fn new(samples_ns: &[u64]) -> Result<Summary, StatsError> {
        let sorted = sorted_f64(samples_ns)?;
        let count = sorted.len();
        let total: u128 = samples_ns.iter().map(|&x| u128::from(x)).sum();
        let mean = total as f64 / count as f64;
        let std_dev = if count > 1 {
            (sorted.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (count - 1) as f64).sqrt()
        } else {
            0.0
        };
        let median = quantile(&sorted, 0.5);
        let mut deviations: Vec<f64> = sorted.iter().map(|x| (x - median).abs()).collect();
        deviations.sort_by(f64::total_cmp);
        Ok(Summary {
            count,
            mean_ns: mean,
            median_ns: median,
            median_ci_ns: bootstrap::median_ci(&sorted),
            p50_ns: median,
            p90_ns: quantile(&sorted, 0.90),
            p95_ns: quantile(&sorted, 0.95),
            p99_ns: quantile(&sorted, 0.99),
            min_ns: samples_ns.iter().copied().min().unwrap_or_default(),
            max_ns: samples_ns.iter().copied().max().unwrap_or_default(),
            std_dev_ns: std_dev,
            mad_ns: quantile(&deviations, 0.5),
            outliers: Outliers::classify(&sorted),
            throughput: Throughput { median_per_s: 1e9 / median, total_per_s: count as f64 * 1e9 / total as f64 },
        })
    }
}

/// The `p` percentile (`p` a fraction in `[0, 1]`) of an ascending sample, interpolated
/// linearly between the closest ranks; `None` for an empty sample.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    (!sorted.is_empty()).then(|| quantile(sorted, p))
}

/// [`percentile`] of a sample known not to be empty.
pub(crate) fn quantile(sorted: &[f64], p: f64) -> f64 {
    debug_assert!(!sorted.is_empty(), "quantile of an empty sample");
    let h = (sorted.len() - 1) as f64 * p.clamp(0.0, 1.0);
    let below = h.floor() as usize;
    let above = (below + 1).min(sorted.len() - 1);
    sorted[below] + (h - below as f64) * (sorted[above] - sorted[below])
}

/// The sample as ascending `f64`s, refusing empty samples and zero durations.
pub(crate) fn sorted_f64(samples_ns: &[u64]) -> Result<Vec<f64>, StatsError> {
    if samples_ns.is_empty() {
        return Err(StatsError::Empty);
    }
    if let Some(index) = samples_ns.iter().position(|&x| x == 0) {
        return Err(StatsError::ZeroDuration { index });
    }
    let mut sorted: Vec<f64> = samples_ns.iter().map(|&x| x as f64).collect();
    sorted.sort_by(f64::total_cmp);
    Ok(sorted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn percentiles_interpolate_between_closest_ranks() {
        let sorted = [10.0, 20.0, 30.0, 40.0];
        // h = 3·p: p50 → 1.5, p90 → 2.7, p99 → 2.97.
        assert_eq!(percentile(&sorted, 0.5), Some(25.0));
        assert!(close(percentile(&sorted, 0.9).unwrap(), 37.0));
        assert!(close(percentile(&sorted, 0.99).unwrap(), 39.7));
        // Not the naive sorted[floor(n·p)], which would say 40 for p90.
        assert_ne!(percentile(&sorted, 0.9), Some(40.0));
        assert_eq!(percentile(&sorted, 0.0), Some(10.0));
        assert_eq!(percentile(&sorted, 1.0), Some(40.0));
        assert_eq!(percentile(&[7.0], 0.99), Some(7.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn summary_of_a_small_sample() {
        // Sorted: 1 2 3 4 100. Mean 22; squared deviations 441 400 361 324 6084 = 7610.
        let s = Summary::new(&[3, 100, 1, 4, 2]).unwrap();
        assert_eq!(s.count, 5);
        assert_eq!(s.mean_ns, 22.0);
        assert_eq!(s.median_ns, 3.0);
        assert_eq!(s.p50_ns, 3.0);
        assert!(close(s.p90_ns, 61.6), "h = 3.6: 4 + 0.6·96 = {}", s.p90_ns);
        assert!(close(s.p95_ns, 80.8));
        assert!(close(s.p99_ns, 96.16));
        assert_eq!((s.min_ns, s.max_ns), (1, 100));
        assert!(close(s.std_dev_ns, (7610.0_f64 / 4.0).sqrt()), "{}", s.std_dev_ns);
        // |x - 3| sorted: 0 1 1 2 97.
        assert_eq!(s.mad_ns, 1.0);
        assert!(close(s.throughput.median_per_s, 1e9 / 3.0));
        assert!(close(s.throughput.total_per_s, 5e9 / 110.0));
    }

    #[test]
    fn tukey_fences() {
        // Q1 = 2, Q3 = 4, IQR = 2: mild above 7, severe above 10; mild below -1.
        let s = Summary::new(&[1, 2, 3, 4, 100]).unwrap();
        assert_eq!((s.outliers.q1_ns, s.outliers.q3_ns), (2.0, 4.0));
        assert_eq!(s.outliers, Outliers { q1_ns: 2.0, q3_ns: 4.0, high_severe: 1, ..Outliers::default() });

        // 100..=119 plus six more: 26 values, Q1 at rank 6.25, Q3 at rank 18.75.
        let mut samples: Vec<u64> = (100..120).collect();
        samples.extend([90, 80, 50, 130, 140, 150]);
        let s = Summary::new(&samples).unwrap();
        let (q1, q3) = (s.outliers.q1_ns, s.outliers.q3_ns);
        assert!(close(q1, 103.25) && close(q3, 115.75), "{q1} {q3}");
        // IQR 12.5: mild below 84.5 / above 134.5, severe below 65.75 / above 153.25.
        // So 50 is low severe, 80 low mild, 90 and 130 inside, 140 and 150 high mild.
        assert_eq!(
            (s.outliers.low_severe, s.outliers.low_mild, s.outliers.high_mild, s.outliers.high_severe),
            (1, 1, 2, 0),
        );
        assert_eq!(s.outliers.total(), 4);
        assert_eq!(s.outliers.severe(), 1);
    }

    #[test]
    fn one_sample_and_bad_samples() {
        let s = Summary::new(&[42]).unwrap();
        assert_eq!((s.median_ns, s.p99_ns, s.std_dev_ns, s.mad_ns), (42.0, 42.0, 0.0, 0.0));
        assert_eq!((s.median_ci_ns.low, s.median_ci_ns.high), (42.0, 42.0));
        assert_eq!(Summary::new(&[]), Err(StatsError::Empty));
        assert_eq!(Summary::new(&[5, 0]), Err(StatsError::ZeroDuration { index: 1 }));
    }

    #[test]
    fn median_ci_brackets_the_median() {
        let samples: Vec<u64> = (1..=101).map(|i| 1000 + (i * 37) % 101).collect();
        let s = Summary::new(&samples).unwrap();
        assert!(s.median_ci_ns.contains(s.median_ns), "{:?}", s.median_ci_ns);
        assert!(s.median_ci_ns.high - s.median_ci_ns.low < 30.0, "{:?}", s.median_ci_ns);
        assert_eq!(s.median_ci_ns.level, 0.95);
        // Deterministic: the bootstrap is seeded.
        assert_eq!(Summary::new(&samples).unwrap(), s);
    }
}
