//! Bootstrap confidence intervals of a median and of a ratio of medians,
//! seeded (the same samples always give the same interval) and in constant time
//! per resample, whatever the sample size.
//!
//! The percentile bootstrap draws [`RESAMPLES`] resamples of the data (`n`
//! values with replacement), takes the median of each, and reads the interval
//! from the 2.5th and 97.5th percentiles of those medians. Done literally that is
//! `O(n)` per resample, too slow for the hundreds of thousands of samples a fast
//! plugin call produces in a few seconds. It need not be: a resample draws `n`
//! indices `⌊n·Uᵢ⌋` into the *sorted* sample with `Uᵢ` uniform on `[0, 1)`,
//! and since both the floor and the sorted sample are monotone, the resample's
//! `k`-th smallest value is the sample at index `⌊n·U₍ₖ₎⌋`, where `U₍ₖ₎` is the
//! `k`-th order statistic of `n` uniforms, distributed `Beta(k, n + 1 - k)`.
//! For an even `n` the median also needs `U₍ₖ₊₁₎`: given `U₍ₖ₎ = u`, the other
//! `n - k` uniforms lie uniformly on `(u, 1)`, so
//! `U₍ₖ₊₁₎ = u + (1 - u)·Beta(1, n - k)`. One or two draws per resample give
//! exactly the distribution of the literal bootstrap; a test checks the two
//! against each other.
//!
//! Like criterion's, this bootstrap treats samples as independent. Consecutive
//! calls are not quite (caches, frequency scaling, other load), so the interval
//! is a lower bound on the real run-to-run uncertainty; `compare` therefore also
//! requires a change to exceed a noise threshold.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Beta, Distribution};

use crate::stats::{Interval, quantile};

/// Resamples per interval.
pub const RESAMPLES: usize = 10_000;

/// Confidence level of every interval ax-perf reports.
pub const LEVEL: f64 = 0.95;

/// Seed of every bootstrap: results are reproducible, run to run and machine to machine.
const SEED: u64 = 0x6178_7065_7266; // "axperf"

fn rng() -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(SEED)
}

/// Draws the median of a bootstrap resample of an ascending, non-empty sample.
pub(crate) struct MedianResampler<'a> {
    sorted: &'a [f64],
    /// Distribution of `U₍ₖ₎`, or `None` when the sample has one value.
    order_statistic: Option<Beta<f64>>,
    /// `1 / (n - k)`, the exponent turning a uniform into `Beta(1, n - k)`; 0 for odd `n`.
    next_exponent: f64,
}

impl<'a> MedianResampler<'a> {
    pub(crate) fn new(sorted: &'a [f64]) -> MedianResampler<'a> {
        let n = sorted.len();
        // k: the 1-based rank of the (lower) middle value.
        let k = n.div_ceil(2);
        let order_statistic =
            (n > 1).then(|| Beta::new(k as f64, (n + 1 - k) as f64).expect("both shape parameters are at least 1"));
        let next_exponent = if n.is_multiple_of(2) && n > 0 { 1.0 / (n - k) as f64 } else { 0.0 };
        MedianResampler { sorted, order_statistic, next_exponent }
    }

    pub(crate) fn draw(&self, rng: &mut ChaCha8Rng) -> f64 {
        let Some(order_statistic) = &self.order_statistic else {
            return self.sorted[0];
        };
        let u = order_statistic.sample(rng);
        let lower = self.at(u);
        if self.next_exponent == 0.0 {
            return lower;
        }
        let v: f64 = rng.random(); // [0, 1), so 1 - v is in (0, 1].
        let next = u + (1.0 - u) * (1.0 - (1.0 - v).powf(self.next_exponent));
        (lower + self.at(next)) / 2.0
    }

    /// The sample at index `⌊n·u⌋`.
    fn at(&self, u: f64) -> f64 {
        let n = self.sorted.len();
        self.sorted[((u * n as f64) as usize).min(n - 1)]
    }
}

/// The [`LEVEL`] percentile interval of `draws`, which it sorts.
fn interval(draws: &mut [f64]) -> Interval {
    draws.sort_by(f64::total_cmp);
    let tail = (1.0 - LEVEL) / 2.0;
    Interval { low: quantile(draws, tail), high: quantile(draws, 1.0 - tail), level: LEVEL }
}

/// Bootstrap interval of the median of an ascending, non-empty sample.
pub(crate) fn median_ci(sorted: &[f64]) -> Interval {
    let resampler = MedianResampler::new(sorted);
    let mut rng = rng();
    let mut draws: Vec<f64> = (0..RESAMPLES).map(|_| resampler.draw(&mut rng)).collect();
    interval(&mut draws)
}

/// Bootstrap interval of `median(new) / median(base)`, each resampled independently.
/// Both samples are ascending, non-empty and positive.
pub(crate) fn ratio_ci(base_sorted: &[f64], new_sorted: &[f64]) -> Interval {
    let (base, new) = (MedianResampler::new(base_sorted), MedianResampler::new(new_sorted));
    let mut rng = rng();
    let mut draws: Vec<f64> = (0..RESAMPLES).map(|_| new.draw(&mut rng) / base.draw(&mut rng)).collect();
    interval(&mut draws)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::quantile;

    /// The literal bootstrap: `n` indices with replacement, then the interpolated median.
    fn literal_median(sorted: &[f64], rng: &mut ChaCha8Rng) -> f64 {
        let mut resample: Vec<f64> = (0..sorted.len()).map(|_| sorted[rng.random_range(0..sorted.len())]).collect();
        resample.sort_by(f64::total_cmp);
        quantile(&resample, 0.5)
    }

    /// The order-statistic shortcut draws the same distribution as the literal bootstrap:
    /// its quantiles agree within a rank or so, for odd and even sizes.
    #[test]
    fn shortcut_matches_literal_bootstrap() {
        for n in [7usize, 50, 51, 200] {
            // Values equal to their rank (×10), so a quantile reads as a rank.
            let sorted: Vec<f64> = (0..n).map(|i| i as f64 * 10.0).collect();
            let resampler = MedianResampler::new(&sorted);
            let mut rng = ChaCha8Rng::seed_from_u64(1);
            let mut fast: Vec<f64> = (0..20_000).map(|_| resampler.draw(&mut rng)).collect();
            let mut slow: Vec<f64> = (0..20_000).map(|_| literal_median(&sorted, &mut rng)).collect();
            fast.sort_by(f64::total_cmp);
            slow.sort_by(f64::total_cmp);
            for p in [0.025, 0.1, 0.25, 0.5, 0.75, 0.9, 0.975] {
                let (f, s) = (quantile(&fast, p), quantile(&slow, p));
                assert!((f - s).abs() <= 10.0, "n = {n}, p = {p}: shortcut {f}, literal {s}");
            }
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
            assert!((mean(&fast) - mean(&slow)).abs() < 2.0, "n = {n}: {} vs {}", mean(&fast), mean(&slow));
        }
    }

    #[test]
    fn intervals_are_deterministic_and_sensible() {
        let sorted: Vec<f64> = (0..1001).map(|i| 1000.0 + i as f64).collect();
        let ci = median_ci(&sorted);
        assert_eq!(ci, median_ci(&sorted));
        // Median 1500; its standard error is 1/(2·f(m)·√n) = 1000/(2·√1001) ≈ 15.8, so ±1.96·SE ≈ ±31.
        assert!(ci.contains(1500.0) && ci.low > 1460.0 && ci.high < 1540.0, "{ci:?}");

        let shifted: Vec<f64> = sorted.iter().map(|x| x * 1.1).collect();
        let ratio = ratio_ci(&sorted, &shifted);
        assert!(ratio.contains(1.1) && ratio.low > 1.05 && ratio.high - ratio.low < 0.08, "{ratio:?}");
        assert_eq!(ratio_ci(&[5.0], &[10.0]), Interval { low: 2.0, high: 2.0, level: LEVEL });
    }
}
