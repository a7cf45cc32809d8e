//! The startup section of a profile: how long each phase of bringing a plugin
//! up took, how much the process's resident memory grew meanwhile, and the
//! thresholds (the manifest's `[startup]`) it is judged against.

use serde::{Deserialize, Serialize};

/// A phase of bringing a plugin up, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Opening the library file and checking its structure (its headers).
    Read,
    /// Giving it a private path (so a rebuild can replace the original): a
    /// hard link for a cargo output on the same file system, else a copy.
    Copy,
    /// `dlopen`: mapping, relocating, running the library's initialisers.
    Dlopen,
    /// Finding the entry symbol and checking the ABI header and canary.
    Resolve,
    /// Starting the worker thread and running the plugin's `init`.
    Init,
    /// The first call, which pays for whatever the plugin deferred.
    FirstCall,
}

impl Phase {
    /// Every phase, in order.
    pub const ALL: [Phase; 6] =
        [Phase::Read, Phase::Copy, Phase::Dlopen, Phase::Resolve, Phase::Init, Phase::FirstCall];

    /// The name used in the file and in reports (`first_call`).
    pub fn name(self) -> &'static str {
        match self {
            Phase::Read => "read",
            Phase::Copy => "copy",
            Phase::Dlopen => "dlopen",
            Phase::Resolve => "resolve",
            Phase::Init => "init",
            Phase::FirstCall => "first_call",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One phase as measured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseTime {
    pub phase: Phase,
    /// Wall time of the phase.
    pub duration_ns: u64,
    /// Growth of the process's resident memory during the phase, in bytes
    /// (negative when it shrank); absent where the OS does not say (Linux reads
    /// `/proc/self/statm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_growth_bytes: Option<i64>,
}

/// Limits above which startup recommendations are made: the manifest's
/// `[startup]` section, or its defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thresholds {
    /// `max_total`: the whole startup (default 200 ms).
    pub max_total_ns: u64,
    /// `max_phase`: any one phase (default 50 ms).
    pub max_phase_ns: u64,
    /// `max_memory_growth`: resident memory gained by the whole startup (default 50 MiB).
    pub max_memory_growth_bytes: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds { max_total_ns: 200_000_000, max_phase_ns: 50_000_000, max_memory_growth_bytes: 50 << 20 }
    }
}

/// How the plugin came up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Startup {
    /// Sum of the phases.
    pub total_ns: u64,
    /// Sum of the phases' memory growth, when every phase has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_growth_bytes: Option<i64>,
    /// The phases, in the order they ran.
    pub phases: Vec<PhaseTime>,
    /// The three slowest phases, slowest first.
    pub slowest: Vec<Phase>,
    /// What the recommendations were judged against.
    pub thresholds: Thresholds,
}

impl Startup {
    /// A startup of `phases`, with its total, memory growth and slowest phases.
    pub fn new(phases: Vec<PhaseTime>, thresholds: Thresholds) -> Startup {
        let total_ns = phases.iter().map(|p| p.duration_ns).sum();
        let memory_growth_bytes = phases.iter().map(|p| p.memory_growth_bytes).sum::<Option<i64>>();
        let mut by_time: Vec<&PhaseTime> = phases.iter().collect();
        by_time.sort_by(|a, b| b.duration_ns.cmp(&a.duration_ns).then(a.phase.cmp(&b.phase)));
        let slowest = by_time.iter().take(3).map(|p| p.phase).collect();
        Startup { total_ns, memory_growth_bytes, phases, slowest, thresholds }
    }

    /// The measurement of `phase`, if it ran.
    pub fn phase(&self, phase: Phase) -> Option<&PhaseTime> {
        self.phases.iter().find(|p| p.phase == phase)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phase(phase: Phase, ms: u64, growth: Option<i64>) -> PhaseTime {
        PhaseTime { phase, duration_ns: ms * 1_000_000, memory_growth_bytes: growth }
    }

    #[test]
    fn totals_and_the_three_slowest() {
        let startup = Startup::new(
            vec![
                phase(Phase::Read, 2, Some(100)),
                phase(Phase::Copy, 1, Some(0)),
                phase(Phase::Dlopen, 9, Some(4096)),
                phase(Phase::Resolve, 0, Some(0)),
                phase(Phase::Init, 30, Some(-96)),
                phase(Phase::FirstCall, 2, Some(0)),
            ],
            Thresholds::default(),
        );
        assert_eq!(startup.total_ns, 44_000_000);
        assert_eq!(startup.memory_growth_bytes, Some(4100));
        assert_eq!(startup.slowest, [Phase::Init, Phase::Dlopen, Phase::Read], "ties go to the earlier phase");
        assert_eq!(startup.phase(Phase::Init).unwrap().duration_ns, 30_000_000);

        let unknown =
            Startup::new(vec![phase(Phase::Read, 1, None), phase(Phase::Init, 1, Some(5))], Thresholds::default());
        assert_eq!(unknown.memory_growth_bytes, None);
        assert_eq!(unknown.slowest.len(), 2);
    }

    #[test]
    fn phases_are_named_in_snake_case() {
        assert_eq!(serde_json::to_string(&Phase::FirstCall).unwrap(), "\"first_call\"");
        assert_eq!(Phase::ALL.map(Phase::name).join(","), "read,copy,dlopen,resolve,init,first_call");
    }
}
