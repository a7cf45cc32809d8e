//! Human units in the manifest: sizes (`"64MiB"`) and durations (`"300ms"`).
//!
//! Both parse from strings only, so that `max_memory = 64` (which unit?) is an
//! error that names the expected form rather than a guess.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// A number of bytes, written with a unit: `"512B"`, `"64KiB"`, `"64MiB"`, `"1GiB"`,
/// or decimal `"10KB"`, `"10MB"`, `"1GB"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

/// A duration written with a unit: `"250us"`, `"300ms"`, `"2s"`, `"1.5s"`, `"1m"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(pub Duration);

pub(crate) const SIZE_FORM: &str =
    "a size such as \"64MiB\" (a number followed by one of B, KB, KiB, MB, MiB, GB, GiB)";
pub(crate) const DURATION_FORM: &str = "a duration such as \"300ms\" (a number followed by one of ns, us, ms, s, m)";

/// Splits `"1.5 MiB"` into `(1.5, "MiB")`.
fn split_number(s: &str) -> Option<(f64, &str)> {
    let s = s.trim();
    let end = s.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_')).unwrap_or(s.len());
    let (num, unit) = s.split_at(end);
    if num.is_empty() {
        return None;
    }
    let num: f64 = num.replace('_', "").parse().ok()?;
    (num.is_finite() && num >= 0.0).then_some((num, unit.trim()))
}

impl ByteSize {
    /// Parses a size; the error says what was expected.
    pub fn parse(s: &str) -> Result<ByteSize, String> {
        let bad = || format!("invalid size {s:?}: expected {SIZE_FORM}");
        let (num, unit) = split_number(s).ok_or_else(bad)?;
        let factor: u64 = match unit {
            "B" => 1,
            "KB" | "kB" => 1_000,
            "KiB" => 1 << 10,
            "MB" => 1_000_000,
            "MiB" => 1 << 20,
            "GB" => 1_000_000_000,
            "GiB" => 1 << 30,
            _ => return Err(bad()),
        };
        let bytes = num * factor as f64;
        if bytes > u64::MAX as f64 {
            return Err(bad());
        }
        Ok(ByteSize(bytes.round() as u64))
    }
}

impl HumanDuration {
    /// Parses a duration; the error says what was expected.
    pub fn parse(s: &str) -> Result<HumanDuration, String> {
        let bad = || format!("invalid duration {s:?}: expected {DURATION_FORM}");
        let (num, unit) = split_number(s).ok_or_else(bad)?;
        let nanos_per: f64 = match unit {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" | "min" => 60e9,
            _ => return Err(bad()),
        };
        let nanos = num * nanos_per;
        if nanos > u64::MAX as f64 {
            return Err(bad());
        }
        Ok(HumanDuration(Duration::from_nanos(nanos.round() as u64)))
    }
}

/// Why a limit of zero is refused: it would fail every call.
const ZERO_LIMIT: &str =
    "a limit of zero would stop every call; expected a value above zero (leave the limit out for none)";

impl ByteSize {
    /// Parses a size that is a limit (`max_memory`): zero is refused.
    pub fn parse_limit(s: &str) -> Result<ByteSize, String> {
        let size = ByteSize::parse(s)?;
        if size.0 == 0 {
            return Err(format!("invalid limit {s:?}: {ZERO_LIMIT}"));
        }
        Ok(size)
    }
}

impl HumanDuration {
    /// Parses a duration that is a limit (`max_duration`, `max_cpu_time`): zero is refused.
    pub fn parse_limit(s: &str) -> Result<HumanDuration, String> {
        let duration = HumanDuration::parse(s)?;
        if duration.0.is_zero() {
            return Err(format!("invalid limit {s:?}: {ZERO_LIMIT}"));
        }
        Ok(duration)
    }
}

/// `deserialize_with` for a size limit: as [`ByteSize`], zero refused.
pub(crate) fn size_limit<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ByteSize>, D::Error> {
    d.deserialize_str(UnitVisitor { form: SIZE_FORM, parse: ByteSize::parse_limit }).map(Some)
}

/// `deserialize_with` for a duration limit: as [`HumanDuration`], zero refused.
pub(crate) fn duration_limit<'de, D: Deserializer<'de>>(d: D) -> Result<Option<HumanDuration>, D::Error> {
    d.deserialize_str(UnitVisitor { form: DURATION_FORM, parse: HumanDuration::parse_limit }).map(Some)
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        for (unit, factor) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
            if b >= factor && b.is_multiple_of(factor) {
                return write!(f, "{}{unit}", b / factor);
            }
        }
        write!(f, "{b}B")
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.as_nanos();
        for (unit, factor) in [("s", 1_000_000_000u128), ("ms", 1_000_000), ("us", 1_000)] {
            if n >= factor && n.is_multiple_of(factor) {
                return write!(f, "{}{unit}", n / factor);
            }
        }
        write!(f, "{n}ns")
    }
}

struct UnitVisitor<T> {
    form: &'static str,
    parse: fn(&str) -> Result<T, String>,
}

impl<T> Visitor<'_> for UnitVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.form)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        (self.parse)(v).map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(UnitVisitor { form: SIZE_FORM, parse: ByteSize::parse })
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(UnitVisitor { form: DURATION_FORM, parse: HumanDuration::parse })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_limits_are_refused() {
        assert!(ByteSize::parse_limit("0MiB").unwrap_err().contains("a limit of zero would stop every call"));
        assert!(HumanDuration::parse_limit("0s").unwrap_err().starts_with("invalid limit \"0s\""));
        assert_eq!(HumanDuration::parse_limit("1ns"), Ok(HumanDuration(Duration::from_nanos(1))));
        assert!(HumanDuration::parse_limit("soon").unwrap_err().starts_with("invalid duration"));
    }

    #[test]
    fn sizes() {
        assert_eq!(ByteSize::parse("64MiB"), Ok(ByteSize(64 << 20)));
        assert_eq!(ByteSize::parse("1 GiB"), Ok(ByteSize(1 << 30)));
        assert_eq!(ByteSize::parse("10KB"), Ok(ByteSize(10_000)));
        assert_eq!(ByteSize::parse("1.5KiB"), Ok(ByteSize(1536)));
        assert_eq!(ByteSize::parse("0B"), Ok(ByteSize(0)));
        for bad in ["64", "MiB", "64 mb", "-1MiB", "1e3B", "", "64MiBs"] {
            let err = ByteSize::parse(bad).unwrap_err();
            assert!(err.contains("expected a size such as \"64MiB\""), "{bad}: {err}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(HumanDuration::parse("300ms"), Ok(HumanDuration(Duration::from_millis(300))));
        assert_eq!(HumanDuration::parse("1.5s"), Ok(HumanDuration(Duration::from_millis(1500))));
        assert_eq!(HumanDuration::parse("250us"), Ok(HumanDuration(Duration::from_micros(250))));
        assert_eq!(HumanDuration::parse("1m"), Ok(HumanDuration(Duration::from_secs(60))));
        for bad in ["300", "ms", "3 hours", "1.2.3s", "-5ms"] {
            let err = HumanDuration::parse(bad).unwrap_err();
            assert!(err.contains("expected a duration such as \"300ms\""), "{bad}: {err}");
        }
    }

    #[test]
    fn display_round_trips() {
        for s in ["64MiB", "1GiB", "100B", "3KiB"] {
            assert_eq!(ByteSize::parse(s).unwrap().to_string(), s);
        }
        for s in ["300ms", "2s", "250us", "7ns"] {
            assert_eq!(HumanDuration::parse(s).unwrap().to_string(), s);
        }
    }
}
