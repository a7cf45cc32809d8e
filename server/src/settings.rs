//! The server's settings (interfaces.md): how inlay hints read and how many hot
//! spots become diagnostics.
//!
//! Parsed by hand from the JSON the client sends (`initializationOptions`, or
//! `{"settings": {"ax": …}}` on `workspace/didChangeConfiguration`) so that an
//! unknown key or a bad value is a warning naming it, with the default kept,
//! rather than the whole object rejected.

use serde_json::Value;

/// A percentile shown in hints, in display order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Percentile {
    P50,
    P90,
    P95,
    P99,
    Max,
}

impl Percentile {
    pub const ALL: [Percentile; 5] =
        [Percentile::P50, Percentile::P90, Percentile::P95, Percentile::P99, Percentile::Max];

    pub fn name(self) -> &'static str {
        match self {
            Percentile::P50 => "p50",
            Percentile::P90 => "p90",
            Percentile::P95 => "p95",
            Percentile::P99 => "p99",
            Percentile::Max => "max",
        }
    }
}

/// What the percentage in a hint is a share of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Share {
    /// The function's total time over everything the profile timed.
    Profile,
    /// The function's total time over its callers' total time.
    Parent,
    None,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub hints_enabled: bool,
    pub percentiles: Vec<Percentile>,
    pub calls: bool,
    pub share: Share,
    pub hot_spots: usize,
    /// A significant slowdown of a function's median by at least this
    /// fraction against the baseline is a warning (`baseline.threshold`, in %).
    pub regression_threshold: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            hints_enabled: true,
            percentiles: vec![Percentile::P50, Percentile::P95],
            calls: true,
            share: Share::Profile,
            hot_spots: 5,
            regression_threshold: 0.10,
        }
    }
}

impl Settings {
    /// Settings from the client's object; `warnings` gets one line per ignored
    /// key or bad value. `null` (no options) is the defaults, silently.
    pub fn from_json(value: &Value, warnings: &mut Vec<String>) -> Settings {
        let mut s = Settings::default();
        let Some(obj) = value.as_object() else {
            if !value.is_null() {
                warnings.push(format!("ax settings: expected an object, got {value}; using the defaults"));
            }
            return s;
        };
        for (key, v) in obj {
            match key.as_str() {
                "inlayHints" => s.read_hints(v, warnings),
                "hotSpots" => match v.as_u64() {
                    Some(n) => s.hot_spots = n.min(1000) as usize,
                    None => warnings
                        .push(format!("ax settings: hotSpots: expected a whole number (0 = off), got {v}; using 5")),
                },
                "baseline" => s.read_baseline(v, warnings),
                other => warnings.push(format!(
                    "ax settings: unknown key {other:?} ignored; expected \"inlayHints\", \"hotSpots\" or \"baseline\""
                )),
            }
        }
        s
    }

    fn read_baseline(&mut self, v: &Value, warnings: &mut Vec<String>) {
        let Some(obj) = v.as_object() else {
            warnings.push(format!("ax settings: baseline: expected an object, got {v}; using the defaults"));
            return;
        };
        for (key, v) in obj {
            match key.as_str() {
                "threshold" => match v.as_f64() {
                    Some(p) if p.is_finite() && p >= 0.0 => self.regression_threshold = p / 100.0,
                    _ => warnings.push(format!(
                        "ax settings: baseline.threshold: expected a percentage of at least 0, such as 10, got {v}; using 10"
                    )),
                },
                other => warnings.push(format!(
                    "ax settings: unknown key \"baseline.{other}\" ignored; expected threshold"
                )),
            }
        }
    }

    fn read_hints(&mut self, v: &Value, warnings: &mut Vec<String>) {
        let Some(obj) = v.as_object() else {
            warnings.push(format!("ax settings: inlayHints: expected an object, got {v}; using the defaults"));
            return;
        };
        for (key, v) in obj {
            match key.as_str() {
                "enabled" => match v.as_bool() {
                    Some(b) => self.hints_enabled = b,
                    None => warnings.push(format!("ax settings: inlayHints.enabled: expected true or false, got {v}")),
                },
                "calls" => match v.as_bool() {
                    Some(b) => self.calls = b,
                    None => warnings.push(format!("ax settings: inlayHints.calls: expected true or false, got {v}")),
                },
                "share" => match v.as_str() {
                    Some("profile") => self.share = Share::Profile,
                    Some("parent") => self.share = Share::Parent,
                    Some("none") => self.share = Share::None,
                    _ => warnings.push(format!(
                        "ax settings: inlayHints.share: expected \"profile\", \"parent\" or \"none\", got {v}; using \"profile\""
                    )),
                },
                "percentiles" => {
                    let Some(items) = v.as_array() else {
                        warnings.push(format!(
                            "ax settings: inlayHints.percentiles: expected an array such as [\"p50\", \"p95\"], got {v}"
                        ));
                        continue;
                    };
                    let mut chosen = Vec::new();
                    for item in items {
                        match Percentile::ALL.iter().find(|p| Some(p.name()) == item.as_str()) {
                            Some(&p) if !chosen.contains(&p) => chosen.push(p),
                            Some(_) => {}
                            None => warnings.push(format!(
                                "ax settings: inlayHints.percentiles: unknown percentile {item} ignored; expected p50, p90, p95, p99 or max"
                            )),
                        }
                    }
                    chosen.sort();
                    self.percentiles = chosen;
                }
                other => warnings.push(format!(
                    "ax settings: unknown key \"inlayHints.{other}\" ignored; expected enabled, percentiles, calls or share"
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_every_key_and_orders_percentiles() {
        let mut w = Vec::new();
        let s = Settings::from_json(
            &json!({"inlayHints": {"enabled": false, "percentiles": ["max", "p99", "p50"], "calls": false, "share": "parent"}, "hotSpots": 2}),
            &mut w,
        );
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(s.percentiles, [Percentile::P50, Percentile::P99, Percentile::Max]);
        assert_eq!((s.hints_enabled, s.calls, s.share, s.hot_spots), (false, false, Share::Parent, 2));
    }

    #[test]
    fn bad_values_and_unknown_keys_warn_and_keep_defaults() {
        let mut w = Vec::new();
        let s = Settings::from_json(
            &json!({"inlayHint": {}, "hotSpots": "many", "inlayHints": {"share": "caller", "percentiles": ["p42", "p95"]}}),
            &mut w,
        );
        assert_eq!(w.len(), 4, "{w:?}");
        assert!(w.iter().any(|l| l.contains("\"inlayHint\"")), "{w:?}");
        assert_eq!(s.share, Share::Profile);
        assert_eq!(s.hot_spots, 5);
        assert_eq!(s.percentiles, [Percentile::P95]);
    }
}
