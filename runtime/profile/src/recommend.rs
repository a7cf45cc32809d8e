//! Recommendations: what a profile says should change, as data an editor can
//! show where it applies and offer to fix.
//!
//! They are derived from the rest of the profile — the startup phases against
//! their thresholds, the budget violations of methods and callsites — by
//! [`recommend`], so a merged profile gets recommendations recomputed from
//! merged data rather than two runs' lists glued together.

use serde::{Deserialize, Serialize};

use crate::file::{CallsiteKind, Profile};
use crate::startup::{Phase, Startup};

/// What a recommendation is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The whole startup took longer than `[startup] max_total`.
    StartupTotal,
    /// One phase took longer than `[startup] max_phase`.
    SlowPhase,
    /// Resident memory grew by more than `[startup] max_memory_growth`.
    MemoryGrowth,
    /// Calls were stopped for exceeding their `[budget]`.
    BudgetViolation,
}

/// How much it matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Info,
}

/// Where a recommendation applies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "in", rename_all = "lowercase")]
pub enum Location {
    /// A key of the plugin's manifest (`ax-plugin.toml`), dotted: `startup.max_phase`.
    Manifest { key: String },
    /// A line of the plugin's source, as its callsite reports it.
    Source { file: String, line: u32 },
}

/// A concrete change to the manifest that would silence the recommendation
/// (raising a threshold to what was measured, with some margin): the one-click
/// fix of an editor, for when the measured cost is accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEdit {
    /// Dotted key: `startup.max_phase`.
    pub key: String,
    /// The value, in the manifest's human units: `"80ms"`, `"96MiB"`.
    pub value: String,
}

/// One thing to change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recommendation {
    pub kind: Kind,
    pub severity: Severity,
    /// What was observed, against which limit: one sentence.
    pub message: String,
    pub location: Location,
    /// What to do about it: one or two sentences.
    pub fix: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edit: Option<ManifestEdit>,
}

/// Every recommendation `profile` supports, most important first: startup
/// total, slow phases (slowest first), memory growth, then budget violations
/// of methods and of callsites.
pub fn recommend(profile: &Profile) -> Vec<Recommendation> {
    let mut out = Vec::new();
    if let Some(startup) = &profile.startup {
        startup_recommendations(startup, &mut out);
    }
    for method in &profile.methods {
        for (budget, n) in method.budget_violations.iter().filter(|(_, n)| **n > 0) {
            out.push(Recommendation {
                kind: Kind::BudgetViolation,
                severity: Severity::Warning,
                message: format!(
                    "{n} of {} calls of `{}` exceeded {budget} and were stopped",
                    method.count, method.method
                ),
                location: Location::Manifest { key: format!("budget.{budget}") },
                fix: format!(
                    "Make `{}` cheaper (its hottest callsites show where the time goes), or raise `{budget}` in [budget].",
                    method.method
                ),
                edit: None,
            });
        }
    }
    for callsite in profile.callsites.iter().filter(|c| c.budget_violations > 0 && c.kind == CallsiteKind::Span) {
        let n = callsite.budget_violations;
        out.push(Recommendation {
            kind: Kind::BudgetViolation,
            severity: Severity::Warning,
            message: format!(
                "`{}` was running when {n} {} stopped for exceeding {} budget",
                callsite.name,
                if n == 1 { "call was" } else { "calls were" },
                if n == 1 { "its" } else { "their" },
            ),
            location: Location::Source { file: callsite.file.clone(), line: callsite.line },
            fix: "The budget ran out here: make this code cheaper, or give its method a larger [budget].".to_owned(),
            edit: None,
        });
    }
    out
}

fn startup_recommendations(startup: &Startup, out: &mut Vec<Recommendation>) {
    let limits = startup.thresholds;
    let share = |ns: u64| if startup.total_ns == 0 { 0.0 } else { 100.0 * ns as f64 / startup.total_ns as f64 };
    if startup.total_ns > limits.max_total_ns {
        let slowest: Vec<String> = startup
            .slowest
            .iter()
            .filter_map(|p| startup.phase(*p))
            .map(|p| format!("{} {} ({:.0}%)", p.phase, duration(p.duration_ns), share(p.duration_ns)))
            .collect();
        let first = startup.slowest.first().copied().unwrap_or(Phase::Init);
        out.push(Recommendation {
            kind: Kind::StartupTotal,
            severity: Severity::Warning,
            message: format!(
                "startup takes {}, over max_total {}; slowest: {}",
                duration(startup.total_ns),
                duration(limits.max_total_ns),
                slowest.join(", ")
            ),
            location: Location::Manifest { key: "startup.max_total".to_owned() },
            fix: phase_fix(first).to_owned(),
            edit: Some(ManifestEdit {
                key: "startup.max_total".to_owned(),
                value: manifest_duration(startup.total_ns),
            }),
        });
    }
    let mut slow: Vec<_> = startup.phases.iter().filter(|p| p.duration_ns > limits.max_phase_ns).collect();
    slow.sort_by_key(|p| std::cmp::Reverse(p.duration_ns));
    let slowest_slow = slow.first().map(|p| p.duration_ns).unwrap_or(0);
    for p in slow {
        out.push(Recommendation {
            kind: Kind::SlowPhase,
            severity: Severity::Warning,
            message: format!(
                "{} takes {} ({:.0}% of startup), over max_phase {}",
                p.phase,
                duration(p.duration_ns),
                share(p.duration_ns),
                duration(limits.max_phase_ns)
            ),
            location: Location::Manifest { key: "startup.max_phase".to_owned() },
            fix: phase_fix(p.phase).to_owned(),
            // One value that silences every slow phase.
            edit: Some(ManifestEdit { key: "startup.max_phase".to_owned(), value: manifest_duration(slowest_slow) }),
        });
    }
    if let Some(growth) = startup.memory_growth_bytes
        && growth > 0
        && growth as u64 > limits.max_memory_growth_bytes
    {
        let most =
            startup.phases.iter().filter_map(|p| p.memory_growth_bytes.map(|g| (p.phase, g))).max_by_key(|p| p.1);
        let during = most.map(|(phase, g)| format!("; most during {phase} ({})", bytes(g))).unwrap_or_default();
        out.push(Recommendation {
            kind: Kind::MemoryGrowth,
            severity: Severity::Warning,
            message: format!(
                "startup grows resident memory by {}, over max_memory_growth {}{during}",
                bytes(growth),
                bytes(limits.max_memory_growth_bytes as i64)
            ),
            location: Location::Manifest { key: "startup.max_memory_growth".to_owned() },
            fix: "Allocate lazily: tables, caches and buffers built in init or by static initialisers all count \
                  here; build them on first use."
                .to_owned(),
            edit: Some(ManifestEdit {
                key: "startup.max_memory_growth".to_owned(),
                value: manifest_bytes(growth as u64),
            }),
        });
    }
}

/// What usually makes a phase slow, and what to do.
fn phase_fix(phase: Phase) -> &'static str {
    match phase {
        Phase::Read => {
            "Only the library's headers are read and checked before it is loaded: a slow read points at a slow \
             or remote file system; keep the build on a local disk."
        }
        Phase::Copy => {
            "A cargo output is hard-linked to a private path when ax's runtime directory ($XDG_RUNTIME_DIR/ax, \
             else /tmp/ax-<uid>) or AX_LIB_DIR is on its file system, and copied otherwise (and any other \
             library is copied): point AX_LIB_DIR at a directory on the build's file system, or make the \
             library smaller."
        }
        Phase::Dlopen => {
            "The dynamic loader maps and relocates the library and runs its static initialisers: fewer \
             dependencies and no heavy initialisers; a release build has fewer relocations."
        }
        Phase::Resolve => {
            "Finding the entry symbol and checking the ABI takes microseconds normally; a slow resolve points at \
             the dynamic loader (LD_DEBUG=statistics shows where its time goes)."
        }
        Phase::Init => {
            "Move expensive setup out of `Plugin::init`: build it on first use (`std::sync::OnceLock`) or on a \
             background thread, so the plugin serves sooner."
        }
        Phase::FirstCall => {
            "The first call pays for work deferred until then (lazy statics, caches, page faults): warm it up in \
             `init` if the first call's latency matters."
        }
    }
}

/// `observed` with a quarter of margin, rounded up to a whole millisecond (or
/// second), in manifest units: `"78ms"`, `"3s"`.
fn manifest_duration(observed_ns: u64) -> String {
    let with_margin = observed_ns.saturating_add(observed_ns / 4);
    if with_margin >= 10_000_000_000 {
        format!("{}s", with_margin.div_ceil(1_000_000_000))
    } else {
        format!("{}ms", with_margin.div_ceil(1_000_000).max(1))
    }
}

/// `observed` with a quarter of margin, rounded up to a whole MiB: `"96MiB"`.
fn manifest_bytes(observed: u64) -> String {
    let with_margin = observed.saturating_add(observed / 4);
    format!("{}MiB", with_margin.div_ceil(1 << 20).max(1))
}

/// `62.3 ms`, `850 µs`, `1.20 s`.
pub(crate) fn duration(ns: u64) -> String {
    let ns = ns as f64;
    if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.1} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.0} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

/// `1.5 MiB`, `-512 B`.
pub(crate) fn bytes(n: i64) -> String {
    let sign = if n < 0 { "-" } else { "" };
    let m = n.unsigned_abs();
    match m {
        m if m >= 1 << 30 => format!("{sign}{:.1} GiB", m as f64 / (1u64 << 30) as f64),
        m if m >= 1 << 20 => format!("{sign}{:.1} MiB", m as f64 / (1u64 << 20) as f64),
        m if m >= 1 << 10 => format!("{sign}{:.1} KiB", m as f64 / (1u64 << 10) as f64),
        m => format!("{sign}{m} B"),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::file::{CallsiteProfile, MethodProfile, PluginInfo};
    use crate::startup::{PhaseTime, Thresholds};
    use crate::time::Time;

    const MS: u64 = 1_000_000;

    fn profile_with(phases: &[(Phase, u64, i64)], thresholds: Thresholds) -> Profile {
        let mut profile = Profile::new(PluginInfo::named("word-count"), "ax test", "ax run --profile");
        let phases = phases
            .iter()
            .map(|&(phase, ns, growth)| PhaseTime { phase, duration_ns: ns, memory_growth_bytes: Some(growth) })
            .collect();
        profile.startup = Some(Startup::new(phases, thresholds));
        profile
    }

    fn kinds(recs: &[Recommendation]) -> Vec<Kind> {
        recs.iter().map(|r| r.kind).collect()
    }

    #[test]
    fn nothing_to_say_under_the_thresholds() {
        let profile = profile_with(
            &[(Phase::Read, 2 * MS, 0), (Phase::Dlopen, 49 * MS, 1 << 20), (Phase::Init, 50 * MS, 49 << 20)],
            Thresholds::default(),
        );
        assert_eq!(recommend(&profile), []);
    }

    #[test]
    fn a_slow_init_over_the_phase_and_total_limits() {
        let thresholds =
            Thresholds { max_total_ns: 100 * MS, max_phase_ns: 50 * MS, max_memory_growth_bytes: 50 << 20 };
        let profile = profile_with(
            &[
                (Phase::Read, 10 * MS, 0),
                (Phase::Dlopen, 52 * MS, 0),
                (Phase::Init, 62 * MS, 0),
                (Phase::FirstCall, MS, 0),
            ],
            thresholds,
        );
        let recs = recommend(&profile);
        assert_eq!(kinds(&recs), [Kind::StartupTotal, Kind::SlowPhase, Kind::SlowPhase]);
        assert_eq!(
            recs[0].message,
            "startup takes 125.0 ms, over max_total 100.0 ms; slowest: init 62.0 ms (50%), dlopen 52.0 ms (42%), read 10.0 ms (8%)"
        );
        assert_eq!(recs[0].location, Location::Manifest { key: "startup.max_total".into() });
        assert!(recs[0].fix.contains("Plugin::init"), "the slowest phase's fix: {}", recs[0].fix);
        assert_eq!(recs[0].edit.as_ref().unwrap().value, "157ms");
        assert_eq!(recs[1].message, "init takes 62.0 ms (50% of startup), over max_phase 50.0 ms");
        assert_eq!(recs[2].message, "dlopen takes 52.0 ms (42% of startup), over max_phase 50.0 ms");
        assert!(recs[2].fix.contains("dynamic loader"), "{}", recs[2].fix);
        let edit = recs[1].edit.as_ref().unwrap();
        assert_eq!((edit.key.as_str(), edit.value.as_str()), ("startup.max_phase", "78ms"));
        assert_eq!(recs[2].edit, recs[1].edit, "one value silences both");
    }

    #[test]
    fn thresholds_are_exclusive_limits() {
        let exactly = Thresholds { max_total_ns: 10 * MS, max_phase_ns: 10 * MS, max_memory_growth_bytes: 1 << 20 };
        let profile = profile_with(&[(Phase::Init, 10 * MS, 1 << 20)], exactly);
        assert_eq!(recommend(&profile), [], "at the limit is within it");
        let profile = profile_with(&[(Phase::Init, 10 * MS + 1, (1 << 20) + 1)], exactly);
        assert_eq!(kinds(&recommend(&profile)), [Kind::StartupTotal, Kind::SlowPhase, Kind::MemoryGrowth]);
    }

    #[test]
    fn memory_growth_names_the_phase_that_grew_most() {
        let profile = profile_with(
            &[(Phase::Dlopen, MS, 10 << 20), (Phase::Init, MS, 70 << 20), (Phase::FirstCall, MS, -(5 << 20))],
            Thresholds::default(),
        );
        let recs = recommend(&profile);
        assert_eq!(kinds(&recs), [Kind::MemoryGrowth]);
        assert_eq!(
            recs[0].message,
            "startup grows resident memory by 75.0 MiB, over max_memory_growth 50.0 MiB; most during init (70.0 MiB)"
        );
        assert_eq!(recs[0].edit.as_ref().unwrap().value, "94MiB");
    }

    #[test]
    fn budget_violations_point_at_the_manifest_and_the_source() {
        let mut profile = Profile::new(PluginInfo::named("word-count"), "ax test", "ax run --profile");
        let mut time = Time::new();
        time.record(10, 5, None);
        profile.methods.push(MethodProfile {
            method: "count".into(),
            count: 4,
            errors: 2,
            budget_violations: BTreeMap::from([("max_duration".to_owned(), 2)]),
            time: time.clone(),
            kept: None,
        });
        profile.callsites.push(CallsiteProfile {
            kind: CallsiteKind::Span,
            name: "count_words".into(),
            target: "word_count".into(),
            file: "src/lib.rs".into(),
            line: 52,
            count: 1,
            budget_violations: 2,
            time: Some(time),
            alloc_bytes: None,
            kept: None,
        });
        let recs = recommend(&profile);
        assert_eq!(kinds(&recs), [Kind::BudgetViolation, Kind::BudgetViolation]);
        assert_eq!(recs[0].message, "2 of 4 calls of `count` exceeded max_duration and were stopped");
        assert_eq!(recs[0].location, Location::Manifest { key: "budget.max_duration".into() });
        assert_eq!(recs[1].message, "`count_words` was running when 2 calls were stopped for exceeding their budget");
        assert_eq!(recs[1].location, Location::Source { file: "src/lib.rs".into(), line: 52 });
    }

    #[test]
    fn manifest_values_parse_as_manifest_units() {
        assert_eq!(manifest_duration(1), "1ms");
        assert_eq!(manifest_duration(62 * MS), "78ms");
        assert_eq!(manifest_duration(7_000 * MS), "8750ms");
        assert_eq!(manifest_duration(9_000 * MS), "12s");
        assert_eq!(manifest_duration(12_000 * MS), "15s");
        assert_eq!(manifest_bytes(1), "1MiB");
        assert_eq!(bytes(-512), "-512 B");
        assert_eq!(duration(850_000), "850 µs");
    }
}
