//! Memory kept: per interval (a call, a span), the plugin's bytes allocated
//! minus bytes freed on its thread between start and end, and the trend of
//! their running sum across intervals, from which leak hints are drawn.
//!
//! A [`Kept`] holds the running sum and a series of `(intervals, sum)` points
//! sampled at a stride that doubles whenever 64 points are reached, so a
//! function entered a million times costs the same 64 points as one entered a
//! hundred times, evenly spaced over its history.
//!
//! [`Kept::leak`] calls it a leak when the memory keeps growing with the
//! number of intervals through the *later half* of the run: the least-squares
//! slope over that half is at least [`MIN_LEAK_PER_CALL`] bytes per interval,
//! and each of its two quarters grows by at least a quarter of what that slope
//! predicts. A bounded cache fills and then stops growing: its later half is
//! flat, so it gets no hint however much it took while filling.

use serde::{Deserialize, Serialize};

/// Points kept in a series before it is thinned to every other one.
const POINTS: usize = 64;

/// Fewer intervals than this say nothing about a trend.
pub const MIN_LEAK_CALLS: u64 = 32;

/// A slope below this (bytes per interval) is not called a leak: allocator
/// rounding and small bookkeeping drift are not worth a warning.
pub const MIN_LEAK_PER_CALL: f64 = 16.0;

/// Bytes kept by the intervals of one callsite or method.
#[derive(Clone, Debug, PartialEq)]
pub struct Kept {
    bytes: i64,
    calls: u64,
    stride: u64,
    /// The interval count at which the next point is taken: a comparison per
    /// record, not a division (this runs at every profiled span exit).
    next: u64,
    series: Vec<(u64, i64)>,
}

impl Default for Kept {
    fn default() -> Self {
        Kept { bytes: 0, calls: 0, stride: 1, next: 1, series: Vec::new() }
    }
}

/// Memory that grows with the number of calls.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Leak {
    /// Bytes kept per interval over the later half of the run (the slope).
    pub per_call: f64,
    /// Bytes kept by all intervals together at the end.
    pub bytes: i64,
    /// Intervals recorded.
    pub calls: u64,
}

impl Leak {
    /// `keeps ~1.2 KiB per call; 4.7 MiB after 4,000 calls`.
    pub fn describe(&self) -> String {
        format!(
            "keeps ~{} per call; {} after {} calls",
            bytes(self.per_call.round() as i64),
            bytes(self.bytes),
            thousands(self.calls)
        )
    }
}

/// `512 B`, `1.2 KiB`, `4.7 MiB`, `-3.0 KiB`.
pub fn bytes(n: i64) -> String {
    let sign = if n < 0 { "-" } else { "" };
    let v = n.unsigned_abs() as f64;
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if v < 1024.0 {
        return format!("{sign}{} B", n.unsigned_abs());
    }
    let mut scaled = v / 1024.0;
    let mut unit = 0;
    while scaled >= 1024.0 && unit + 1 < UNITS.len() {
        scaled /= 1024.0;
        unit += 1;
    }
    format!("{sign}{scaled:.1} {}", UNITS[unit])
}

/// `4,000`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl Kept {
    pub fn new() -> Kept {
        Kept::default()
    }

    /// One more interval, which kept `delta` bytes (negative: it freed more than it allocated).
    pub fn record(&mut self, delta: i64) {
        self.calls += 1;
        self.bytes = self.bytes.saturating_add(delta);
        if self.calls == self.next {
            self.series.push((self.calls, self.bytes));
            if self.series.len() >= POINTS {
                let stride = self.stride * 2;
                self.series.retain(|&(n, _)| n.is_multiple_of(stride));
                self.stride = stride;
            }
            self.next = (self.calls / self.stride + 1) * self.stride;
        }
    }

    /// Bytes kept by all intervals together.
    pub fn bytes(&self) -> i64 {
        self.bytes
    }

    /// Intervals recorded.
    pub fn calls(&self) -> u64 {
        self.calls
    }

    /// Mean bytes kept per interval.
    pub fn per_call(&self) -> f64 {
        if self.calls == 0 { 0.0 } else { self.bytes as f64 / self.calls as f64 }
    }

    /// The series `(intervals so far, bytes kept so far)`, ending at the last interval.
    pub fn points(&self) -> Vec<(u64, i64)> {
        let mut points = self.series.clone();
        if self.calls > 0 && points.last().is_none_or(|&(n, _)| n != self.calls) {
            points.push((self.calls, self.bytes));
        }
        points
    }

    /// Adds a later run's intervals after this one's (a merged profile).
    pub fn add(&mut self, later: &Kept) {
        let (calls, bytes) = (self.calls, self.bytes);
        let mut series = self.points();
        series.extend(later.points().into_iter().map(|(n, b)| (n + calls, b.saturating_add(bytes))));
        while series.len() >= POINTS {
            let last = series.len() - 1;
            series = series.into_iter().enumerate().filter(|&(i, _)| i % 2 == 1 || i == last).map(|(_, p)| p).collect();
        }
        self.calls += later.calls;
        self.bytes = self.bytes.saturating_add(later.bytes);
        self.stride = u64::MAX;
        self.next = u64::MAX;
        self.series = series;
    }

    /// The leak, if the kept bytes grow with the number of intervals through
    /// the later half of the run (see the module docs).
    pub fn leak(&self) -> Option<Leak> {
        if self.calls < MIN_LEAK_CALLS {
            return None;
        }
        let points = self.points();
        let half = self.calls / 2;
        let later: Vec<(f64, f64)> =
            points.iter().filter(|&&(n, _)| n >= half).map(|&(n, b)| (n as f64, b as f64)).collect();
        if later.len() < 4 {
            return None;
        }
        let slope = slope(&later);
        if slope.is_nan() || slope < MIN_LEAK_PER_CALL {
            return None;
        }
        // Both quarters of the later half grow: not one step, not a fill that stopped.
        let at = |calls: f64| -> f64 {
            later.iter().min_by(|a, b| (a.0 - calls).abs().total_cmp(&(b.0 - calls).abs())).map_or(0.0, |p| p.1)
        };
        let (start, end) = (later[0].0, later[later.len() - 1].0);
        let mid = (start + end) / 2.0;
        let quarter = (end - start) / 2.0;
        let steady = slope * quarter / 4.0;
        if at(mid) - at(start) < steady || at(end) - at(mid) < steady {
            return None;
        }
        Some(Leak { per_call: slope, bytes: self.bytes, calls: self.calls })
    }
}

/// Least-squares slope of `y` over `x`.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx) * (p.0 - mx)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    if sxx == 0.0 { 0.0 } else { sxy / sxx }
}

#[derive(Serialize, Deserialize)]
struct KeptRepr {
    bytes: i64,
    calls: u64,
    series: Vec<(u64, i64)>,
}

impl Serialize for Kept {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        KeptRepr { bytes: self.bytes, calls: self.calls, series: self.points() }.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Kept {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Kept, D::Error> {
        let repr = KeptRepr::deserialize(deserializer)?;
        if repr.series.windows(2).any(|w| w[0].0 >= w[1].0) || repr.series.last().is_some_and(|l| l.0 > repr.calls) {
            return Err(serde::de::Error::custom(
                "kept.series: expected points in increasing order of calls, none past `calls`",
            ));
        }
        // A series read back is never recorded into (the runtime records from
        // scratch); `add` thins it by index.
        Ok(Kept { bytes: repr.bytes, calls: repr.calls, stride: u64::MAX, next: u64::MAX, series: repr.series })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(n: u64, kept: impl Fn(u64) -> i64) -> Kept {
        let mut k = Kept::new();
        for i in 0..n {
            k.record(kept(i));
        }
        k
    }

    #[test]
    fn a_steady_leak_is_found_with_its_rate() {
        let k = run(4000, |_| 1229);
        let leak = k.leak().expect("a leak");
        assert!((leak.per_call - 1229.0).abs() < 1.0, "{leak:?}");
        assert_eq!((leak.bytes, leak.calls), (4000 * 1229, 4000));
        assert!(k.points().len() <= POINTS, "{}", k.points().len());
        assert_eq!(k.points().last(), Some(&(4000, 4000 * 1229)));
        assert_eq!(leak.describe(), "keeps ~1.2 KiB per call; 4.7 MiB after 4,000 calls");
        assert_eq!(
            (bytes(100), bytes(-2048), thousands(1_234_567)),
            ("100 B".into(), "-2.0 KiB".into(), "1,234,567".into())
        );
    }

    #[test]
    fn a_bounded_cache_that_filled_early_is_no_leak() {
        // 64 entries of 200 bytes, then each insert evicts one of the same size.
        assert_eq!(run(4000, |i| if i < 64 { 200 } else { 0 }).leak(), None);
        // Evictions that free a little more or less than they insert: noise around flat.
        assert_eq!(
            run(4000, |i| if i < 64 {
                200
            } else if i % 2 == 0 {
                24
            } else {
                -24
            })
            .leak(),
            None
        );
        // A cache filling until three quarters of the run, then flat: the last quarter does not grow.
        assert_eq!(run(4000, |i| if i < 3000 { 100 } else { 0 }).leak(), None);
        assert_eq!(run(10, |_| 5000).leak(), None, "too few calls to tell");
        assert_eq!(run(4000, |_| 8).leak(), None, "below the smallest rate called a leak");
    }

    #[test]
    fn merging_appends_the_later_run() {
        let mut a = run(100, |_| 100);
        let b = run(300, |_| 100);
        a.add(&b);
        assert_eq!((a.calls(), a.bytes()), (400, 40_000));
        let points = a.points();
        assert!(points.len() < POINTS && points.windows(2).all(|w| w[0].0 < w[1].0), "{points:?}");
        assert_eq!(points.last(), Some(&(400, 40_000)));
        assert!(a.leak().is_some());
        let text = serde_json::to_string(&a).unwrap();
        let back: Kept = serde_json::from_str(&text).unwrap();
        assert_eq!(back.points(), a.points());
        assert!(serde_json::from_str::<Kept>(r#"{"bytes":1,"calls":2,"series":[[2,1],[1,1]]}"#).is_err());
    }
}
