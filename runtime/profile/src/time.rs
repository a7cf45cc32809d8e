//! Durations of one callsite or method: exact sums and extremes, and an HDR
//! histogram for the percentiles.
//!
//! [`Time`] is both the accumulator the runtime records into on the plugin's
//! thread and the `time` object of the profile file. The histogram and the exact
//! figures (`total_ns`, `self_ns`, `cpu_ns`, `min_ns`, `max_ns`) are the source
//! of truth; the mean and percentiles are derived from them when the file is
//! written, for readers that do not want to decode a histogram, and recomputed
//! (not trusted) when it is read. That is what makes merging two profiles exact:
//! histograms add bucket by bucket.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Significant decimal digits the histograms keep: values are recorded to
/// within 1 % (1/128, exactly), in a few kilobytes per callsite.
pub const SIGNIFICANT_FIGURES: u8 = 2;

/// An HDR histogram of durations in nanoseconds, growing as larger values come.
///
/// In the file: `{"significant_figures": 2, "buckets": [[value_ns, count], …]}`,
/// one pair per non-empty bucket, `value_ns` being the highest value the bucket
/// holds (recording it again lands in the same bucket).
#[derive(Clone, Debug)]
pub struct Histogram(hdrhistogram::Histogram<u64>);

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

impl PartialEq for Histogram {
    fn eq(&self, other: &Self) -> bool {
        self.buckets() == other.buckets()
    }
}

impl Histogram {
    /// An empty histogram with [`SIGNIFICANT_FIGURES`].
    pub fn new() -> Histogram {
        Histogram(hdrhistogram::Histogram::new(SIGNIFICANT_FIGURES).expect("2 significant figures are valid"))
    }

    /// Records one value.
    #[inline]
    pub fn record(&mut self, value_ns: u64) {
        // Auto-resizing histograms only fail on values above u64::MAX / 2 ns (146 years).
        let _ = self.0.record(value_ns.min(u64::MAX / 2));
    }

    /// Records `count` occurrences of a value.
    pub fn record_n(&mut self, value_ns: u64, count: u64) {
        let _ = self.0.record_n(value_ns.min(u64::MAX / 2), count);
    }

    /// Adds every value of `other`.
    pub fn add(&mut self, other: &Histogram) {
        for (value, count) in other.buckets() {
            self.record_n(value, count);
        }
    }

    /// Values recorded.
    pub fn len(&self) -> u64 {
        self.0.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value at quantile `q` (0 ≤ q ≤ 1), to the histogram's precision; 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.is_empty() { 0 } else { self.0.value_at_quantile(q.clamp(0.0, 1.0)) }
    }

    /// The non-empty buckets, `(highest value in the bucket, count)`, ascending.
    pub fn buckets(&self) -> Vec<(u64, u64)> {
        self.0.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())).collect()
    }
}

#[derive(Serialize, Deserialize)]
struct HistogramRepr {
    significant_figures: u8,
    /// Written on one line, even in a pretty-printed file.
    #[serde(serialize_with = "one_line")]
    buckets: Vec<(u64, u64)>,
}

fn one_line<S: Serializer>(buckets: &[(u64, u64)], serializer: S) -> Result<S::Ok, S::Error> {
    let text = serde_json::to_string(buckets).map_err(serde::ser::Error::custom)?;
    serde_json::value::RawValue::from_string(text).map_err(serde::ser::Error::custom)?.serialize(serializer)
}

impl Serialize for Histogram {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        HistogramRepr { significant_figures: SIGNIFICANT_FIGURES, buckets: self.buckets() }.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Histogram {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let repr = HistogramRepr::deserialize(deserializer)?;
        if repr.significant_figures != SIGNIFICANT_FIGURES {
            return Err(D::Error::custom(format!(
                "histogram with {} significant figures; expected {SIGNIFICANT_FIGURES}",
                repr.significant_figures
            )));
        }
        let mut histogram = Histogram::new();
        for (value, count) in repr.buckets {
            histogram.record_n(value, count);
        }
        Ok(histogram)
    }
}

/// Timings of one span callsite or method, over every time it ran.
///
/// - `total`: wall time from enter to exit (a method: the whole call), pauses
///   in a debugger excluded;
/// - `self`: `total` minus the time spent in child spans (a method: the time
///   the call spent outside any span);
/// - `cpu`: CPU time of the thread, when it was measured for every interval.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Time {
    total_ns: u64,
    self_ns: u64,
    cpu_ns: Option<u64>,
    min_ns: u64,
    max_ns: u64,
    histogram: Histogram,
}

impl Time {
    /// Nothing recorded yet.
    pub fn new() -> Time {
        Time::default()
    }

    /// Records one interval: its total, its self time and, if measured, its CPU time.
    #[inline]
    pub fn record(&mut self, total_ns: u64, self_ns: u64, cpu_ns: Option<u64>) {
        let first = self.histogram.is_empty();
        self.cpu_ns = match (first, self.cpu_ns, cpu_ns) {
            (true, _, cpu) => cpu,
            (false, Some(sum), Some(cpu)) => Some(sum.saturating_add(cpu)),
            _ => None,
        };
        self.total_ns = self.total_ns.saturating_add(total_ns);
        self.self_ns = self.self_ns.saturating_add(self_ns.min(total_ns));
        self.min_ns = if first { total_ns } else { self.min_ns.min(total_ns) };
        self.max_ns = self.max_ns.max(total_ns);
        self.histogram.record(total_ns);
    }

    /// Adds every interval of `other`. CPU time stays known only if both knew it.
    pub fn add(&mut self, other: &Time) {
        if other.count() == 0 {
            return;
        }
        if self.count() == 0 {
            *self = other.clone();
            return;
        }
        self.cpu_ns = self.cpu_ns.zip(other.cpu_ns).map(|(a, b)| a.saturating_add(b));
        self.total_ns = self.total_ns.saturating_add(other.total_ns);
        self.self_ns = self.self_ns.saturating_add(other.self_ns);
        self.min_ns = self.min_ns.min(other.min_ns);
        self.max_ns = self.max_ns.max(other.max_ns);
        self.histogram.add(&other.histogram);
    }

    /// Intervals recorded.
    pub fn count(&self) -> u64 {
        self.histogram.len()
    }
    pub fn total_ns(&self) -> u64 {
        self.total_ns
    }
    pub fn self_ns(&self) -> u64 {
        self.self_ns
    }
    pub fn cpu_ns(&self) -> Option<u64> {
        self.cpu_ns
    }
    /// Exact shortest interval (0 when empty).
    pub fn min_ns(&self) -> u64 {
        self.min_ns
    }
    /// Exact longest interval.
    pub fn max_ns(&self) -> u64 {
        self.max_ns
    }
    /// Exact mean, rounded to the nanosecond.
    pub fn mean_ns(&self) -> u64 {
        match self.count() {
            0 => 0,
            n => ((self.total_ns as u128 + n as u128 / 2) / n as u128) as u64,
        }
    }
    /// The `p`th percentile (0–100) of `total`, to 1 %, within `[min, max]`.
    pub fn percentile_ns(&self, p: f64) -> u64 {
        if self.count() == 0 {
            return 0;
        }
        self.histogram.quantile(p / 100.0).clamp(self.min_ns, self.max_ns)
    }
    pub fn histogram(&self) -> &Histogram {
        &self.histogram
    }
}

/// The `time` object as written: the figures of [`Time`] plus derived ones.
#[derive(Serialize, Deserialize)]
struct TimeRepr {
    total_ns: u64,
    self_ns: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cpu_ns: Option<u64>,
    min_ns: u64,
    mean_ns: u64,
    p50_ns: u64,
    p90_ns: u64,
    p95_ns: u64,
    p99_ns: u64,
    max_ns: u64,
    histogram: Histogram,
}

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        TimeRepr {
            total_ns: self.total_ns,
            self_ns: self.self_ns,
            cpu_ns: self.cpu_ns,
            min_ns: self.min_ns,
            mean_ns: self.mean_ns(),
            p50_ns: self.percentile_ns(50.0),
            p90_ns: self.percentile_ns(90.0),
            p95_ns: self.percentile_ns(95.0),
            p99_ns: self.percentile_ns(99.0),
            max_ns: self.max_ns,
            histogram: self.histogram.clone(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let r = TimeRepr::deserialize(deserializer)?;
        if r.histogram.is_empty() {
            return Err(D::Error::custom("empty histogram; expected at least one interval"));
        }
        if r.self_ns > r.total_ns {
            return Err(D::Error::custom(format!("self_ns {} exceeds total_ns {}", r.self_ns, r.total_ns)));
        }
        if r.min_ns > r.max_ns {
            return Err(D::Error::custom(format!("min_ns {} exceeds max_ns {}", r.min_ns, r.max_ns)));
        }
        Ok(Time {
            total_ns: r.total_ns,
            self_ns: r.self_ns,
            cpu_ns: r.cpu_ns,
            min_ns: r.min_ns,
            max_ns: r.max_ns,
            histogram: r.histogram,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_exact_sums_and_close_percentiles() {
        let mut time = Time::new();
        for v in 1..=1000u64 {
            time.record(v * 1000, v * 400, Some(v * 900));
        }
        assert_eq!(time.count(), 1000);
        assert_eq!(time.total_ns(), 500_500_000);
        assert_eq!(time.self_ns(), 200_200_000);
        assert_eq!(time.cpu_ns(), Some(450_450_000));
        assert_eq!((time.min_ns(), time.max_ns()), (1000, 1_000_000));
        assert_eq!(time.mean_ns(), 500_500);
        for (p, exact) in [(50.0, 500_000.0), (90.0, 900_000.0), (99.0, 990_000.0)] {
            let got = time.percentile_ns(p) as f64;
            assert!((got - exact).abs() / exact < 0.01, "p{p}: {got} vs {exact}");
        }
        assert_eq!(time.percentile_ns(100.0), 1_000_000, "clamped to the exact max");
    }

    #[test]
    fn self_time_never_exceeds_total_and_cpu_is_all_or_nothing() {
        let mut time = Time::new();
        time.record(100, 150, None);
        assert_eq!(time.self_ns(), 100);
        time.record(100, 50, Some(80));
        assert_eq!(time.cpu_ns(), None, "one interval without CPU time makes the sum unknown");
    }

    #[test]
    fn adding_equals_recording_everything_in_one() {
        let (mut a, mut b, mut all) = (Time::new(), Time::new(), Time::new());
        for v in [5u64, 17, 1200, 99_000] {
            a.record(v, v / 2, None);
            all.record(v, v / 2, None);
        }
        for v in [3u64, 40_000_000] {
            b.record(v, v, None);
            all.record(v, v, None);
        }
        a.add(&b);
        assert_eq!(a, all);
        let mut empty = Time::new();
        empty.add(&all);
        assert_eq!(empty, all);
    }

    #[test]
    fn round_trips_through_json_with_derived_fields() {
        let mut time = Time::new();
        for v in [1000u64, 2000, 3000, 4_000_000] {
            time.record(v, v / 4, Some(v / 2));
        }
        let json = serde_json::to_value(&time).unwrap();
        assert_eq!(json["mean_ns"], 1_001_500);
        assert_eq!(json["max_ns"], 4_000_000);
        assert!(json["histogram"]["buckets"].as_array().unwrap().len() == 4);
        let back: Time = serde_json::from_value(json).unwrap();
        assert_eq!(back, time);
    }

    #[test]
    fn inconsistent_times_are_refused() {
        let mut time = Time::new();
        time.record(10, 5, None);
        let mut json = serde_json::to_value(&time).unwrap();
        json["self_ns"] = 11.into();
        let err = serde_json::from_value::<Time>(json.clone()).unwrap_err().to_string();
        assert_eq!(err, "self_ns 11 exceeds total_ns 10");
        json["self_ns"] = 5.into();
        json["histogram"]["significant_figures"] = 3.into();
        let err = serde_json::from_value::<Time>(json.clone()).unwrap_err().to_string();
        assert_eq!(err, "histogram with 3 significant figures; expected 2");
        json["histogram"] = serde_json::json!({"significant_figures": 2, "buckets": []});
        let err = serde_json::from_value::<Time>(json).unwrap_err().to_string();
        assert_eq!(err, "empty histogram; expected at least one interval");
    }
}
