//! The baseline: a profile saved as `.ax/baseline.json` (by `ax perf baseline`
//! or the language server's "accept as new baseline"), and each span's change
//! against it.
//!
//! A change is judged from the two HDR histograms of the span's total time,
//! taken as the samples' distributions (each bucket's count at the bucket's
//! value): a two-sided Mann–Whitney U test, with the normal approximation and
//! its tie correction (ties are samples in the same bucket), computed in one
//! pass over the merged buckets. The change shown is that of the medians.
//! A change is *significant* when p < [`ALPHA`], the medians differ by more
//! than [`MIN_CHANGE`] (twice the histograms' 1 % resolution) and both sides
//! have at least [`MIN_SAMPLES`] intervals; anything else is "not significant".

use std::path::{Path, PathBuf};

use crate::file::{CallsiteKind, CallsiteProfile, Profile, ProfileError};
use crate::time::Time;

/// The default place of a plugin's baseline, relative to its crate directory.
pub const BASELINE_PATH: &str = ".ax/baseline.json";

/// The baseline that goes with the profile at `profile`: `baseline.json` beside it.
pub fn baseline_beside(profile: &Path) -> PathBuf {
    profile.with_file_name("baseline.json")
}

/// The test's significance level.
pub const ALPHA: f64 = 0.01;

/// The smallest change of the median called significant (a fraction).
pub const MIN_CHANGE: f64 = 0.02;

/// Fewer intervals on either side give no verdict.
pub const MIN_SAMPLES: u64 = 8;

/// A span's time against its baseline.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Change {
    /// Median total time in the baseline and now, in ns.
    pub base_p50: u64,
    pub p50: u64,
    /// `p50 / base_p50 - 1`: +0.12 is 12 % slower.
    pub ratio: f64,
    /// Two-sided Mann–Whitney p-value; 1 when the test could not run.
    pub p_value: f64,
    pub significant: bool,
    /// Intervals in the baseline and now.
    pub base_count: u64,
    pub count: u64,
}

impl Change {
    /// `+12%`, `-8.5%` when significant; `±1.2%, not significant` otherwise;
    /// `too few calls` under [`MIN_SAMPLES`] on either side.
    pub fn summary(&self) -> String {
        if self.base_count < MIN_SAMPLES || self.count < MIN_SAMPLES {
            return "too few calls to compare".to_owned();
        }
        let pct = 100.0 * self.ratio.abs();
        let n = if pct >= 10.0 { format!("{pct:.0}%") } else { format!("{pct:.1}%") };
        if self.significant {
            format!("{}{n}", if self.ratio > 0.0 { "+" } else { "-" })
        } else {
            format!("±{n}, not significant")
        }
    }

    /// `p < 0.001`, `p = 0.03`.
    pub fn p_text(&self) -> String {
        if self.p_value < 0.001 { "p < 0.001".to_owned() } else { format!("p = {:.3}", self.p_value) }
    }

    /// Significantly slower.
    pub fn regressed(&self) -> bool {
        self.significant && self.ratio > 0.0
    }
}

/// `now` against `base`; `None` when either has no interval.
pub fn change(base: &Time, now: &Time) -> Option<Change> {
    let (n1, n2) = (base.count(), now.count());
    if n1 == 0 || n2 == 0 {
        return None;
    }
    let (base_p50, p50) = (base.percentile_ns(50.0), now.percentile_ns(50.0));
    let ratio = if base_p50 == 0 { 0.0 } else { p50 as f64 / base_p50 as f64 - 1.0 };
    let p_value = mann_whitney(&base.histogram().buckets(), &now.histogram().buckets());
    let significant = p_value < ALPHA && ratio.abs() > MIN_CHANGE && n1 >= MIN_SAMPLES && n2 >= MIN_SAMPLES;
    Some(Change { base_p50, p50, ratio, p_value, significant, base_count: n1, count: n2 })
}

/// The span of `baseline` that `site` is the later measure of: same name and
/// file, else the only span of that name.
pub fn counterpart<'a>(baseline: &'a Profile, site: &CallsiteProfile) -> Option<&'a CallsiteProfile> {
    let spans = || baseline.callsites.iter().filter(|c| c.kind == CallsiteKind::Span && c.name == site.name);
    spans().find(|c| c.file == site.file).or_else(|| {
        let mut named = spans();
        let first = named.next();
        if named.next().is_some() { None } else { first }
    })
}

/// Two-sided p-value of the Mann–Whitney U test between two bucketed samples
/// (`(value, count)`, ascending), normal approximation with tie correction.
fn mann_whitney(a: &[(u64, u64)], b: &[(u64, u64)]) -> f64 {
    let n1: f64 = a.iter().map(|x| x.1 as f64).sum();
    let n2: f64 = b.iter().map(|x| x.1 as f64).sum();
    let n = n1 + n2;
    let (mut i, mut j) = (0, 0);
    let mut b_below = 0.0;
    let mut u = 0.0;
    let mut ties = 0.0;
    while i < a.len() || j < b.len() {
        let va = a.get(i).map_or(u64::MAX, |x| x.0);
        let vb = b.get(j).map_or(u64::MAX, |x| x.0);
        let v = va.min(vb);
        let ca = if va == v { a[i].1 as f64 } else { 0.0 };
        let cb = if vb == v { b[j].1 as f64 } else { 0.0 };
        // Pairs where the `a` sample is the larger, ties counting a half.
        u += ca * (b_below + cb / 2.0);
        b_below += cb;
        let t = ca + cb;
        ties += t * t * t - t;
        i += usize::from(va == v);
        j += usize::from(vb == v);
    }
    let mean = n1 * n2 / 2.0;
    let var = n1 * n2 / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)).max(1.0));
    if var <= 0.0 {
        return 1.0;
    }
    let z = ((u - mean).abs() - 0.5).max(0.0) / var.sqrt();
    (2.0 * normal_upper_tail(z)).min(1.0)
}

/// P(Z > z) for a standard normal Z (Abramowitz & Stegun 7.1.26, error < 1.5e-7).
fn normal_upper_tail(z: f64) -> f64 {
    let x = z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly =
        t * (0.254_829_592 + t * (-0.284_496_736 + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    0.5 * poly * (-x * x).exp()
}

/// Saves the profile at `profile` as the baseline at `baseline` (read and
/// checked first, then written atomically); returns it.
pub fn save_baseline(profile: &Path, baseline: &Path) -> Result<Profile, ProfileError> {
    let mut read = Profile::read(profile)?;
    read.write(baseline)?;
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(values: impl IntoIterator<Item = u64>) -> Time {
        let mut t = Time::new();
        for v in values {
            t.record(v, v, None);
        }
        t
    }

    /// 200 samples spread ±10 % around `center`.
    fn spread(center: u64) -> Time {
        time((0..200).map(|i| center - center / 10 + center / 5 * i / 200))
    }

    #[test]
    fn a_clear_slowdown_is_significant_and_the_same_distribution_is_not() {
        let c = change(&spread(40_000), &spread(48_000)).unwrap();
        assert!(c.significant && c.regressed(), "{c:?}");
        assert_eq!((c.summary().as_str(), c.p_text().as_str()), ("+20%", "p < 0.001"));
        assert!((c.ratio - 0.2).abs() < 0.03, "{c:?}");
        assert!(c.p_value < 1e-6, "{c:?}");

        let same = change(&spread(40_000), &spread(40_000)).unwrap();
        assert!(!same.significant && same.p_value > 0.5, "{same:?}");
        assert_eq!(same.summary(), "±0.0%, not significant");

        let faster = change(&spread(40_000), &spread(30_000)).unwrap();
        assert!(faster.significant && !faster.regressed() && faster.ratio < 0.0, "{faster:?}");
    }

    #[test]
    fn too_few_or_too_small_is_not_significant() {
        let few = change(&time([1000, 1100, 1200]), &time([5000, 5100, 5200])).unwrap();
        assert!(!few.significant, "{few:?}");
        // 1 % slower: within the histograms' resolution.
        let small = change(&spread(100_000), &spread(101_000)).unwrap();
        assert!(!small.significant, "{small:?}");
        assert_eq!(change(&Time::new(), &spread(1000)), None);
        // Everything in one bucket on both sides: no variance, no verdict.
        let flat = change(&time([500; 20]), &time([500; 20])).unwrap();
        assert_eq!((flat.p_value, flat.significant), (1.0, false));
    }

    #[test]
    fn p_values_match_the_textbook() {
        // Complete separation of 10 vs 10: U = 0, z ≈ 3.74, p ≈ 1.8e-4 (continuity corrected).
        let a: Vec<(u64, u64)> = (1..=10).map(|v| (v, 1)).collect();
        let b: Vec<(u64, u64)> = (11..=20).map(|v| (v, 1)).collect();
        let p = mann_whitney(&a, &b);
        assert!((p - 1.8e-4).abs() < 0.3e-4, "{p}");
        assert!((normal_upper_tail(1.959_964) - 0.025).abs() < 1e-6);
    }
}
