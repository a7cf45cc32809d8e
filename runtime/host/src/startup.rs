//! The startup monitor: wall time and resident-memory growth of each phase of
//! bringing a plugin up — read, copy, `dlopen`, symbol resolution and ABI
//! checks, `init`, the first call.
//!
//! [`Host::load_monitored`](crate::Host::load_monitored) marks the loading
//! phases; the caller times the first call with [`StartupMonitor::time`]. Memory
//! is the process's resident set (`/proc/self/statm` on Linux, read between
//! phases, outside the timed spans): a plugin's allocations, its mapped pages
//! and the worker thread's stack all count. Elsewhere it is absent.
//! [`StartupMonitor::startup`] gives the profile file's startup section, to be
//! judged against the manifest's `[startup]` thresholds.

use std::time::Instant;

use ax_profile::{Phase, PhaseTime, Startup, Thresholds};

/// Times the phases of one plugin's startup, in the order they run.
#[derive(Debug)]
pub struct StartupMonitor {
    last: Instant,
    last_rss: Option<u64>,
    phases: Vec<PhaseTime>,
}

impl Default for StartupMonitor {
    fn default() -> Self {
        StartupMonitor::new()
    }
}

impl StartupMonitor {
    /// Starts the clock of the first phase.
    pub fn new() -> StartupMonitor {
        let last_rss = resident_bytes();
        StartupMonitor { last: Instant::now(), last_rss, phases: Vec::new() }
    }

    /// Restarts the clock: what ran since the last mark belongs to no phase.
    pub fn restart(&mut self) {
        self.last_rss = resident_bytes();
        self.last = Instant::now();
    }

    /// Ends `phase`, which ran since the last mark (or restart).
    pub fn mark(&mut self, phase: Phase) {
        let duration = self.last.elapsed();
        let rss = resident_bytes();
        let memory_growth_bytes = rss.zip(self.last_rss).map(|(now, before)| now as i64 - before as i64);
        self.phases.push(PhaseTime {
            phase,
            duration_ns: u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX),
            memory_growth_bytes,
        });
        self.last_rss = rss;
        self.last = Instant::now();
    }

    /// Runs `work` as `phase`.
    pub fn time<R>(&mut self, phase: Phase, work: impl FnOnce() -> R) -> R {
        self.restart();
        let result = work();
        self.mark(phase);
        result
    }

    /// The phases measured so far.
    pub fn phases(&self) -> &[PhaseTime] {
        &self.phases
    }

    /// The startup section of a profile, judged against `thresholds`.
    pub fn startup(&self, thresholds: Thresholds) -> Startup {
        Startup::new(self.phases.clone(), thresholds)
    }
}

/// The manifest's `[startup]` section as thresholds.
pub fn thresholds(section: &ax_manifest::StartupSection) -> Thresholds {
    let ns = |d: std::time::Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    Thresholds {
        max_total_ns: ns(section.max_total.0),
        max_phase_ns: ns(section.max_phase.0),
        max_memory_growth_bytes: section.max_memory_growth.0,
    }
}

/// The process's resident memory in bytes, where the OS says.
#[cfg(target_os = "linux")]
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(page).ok().map(|page| pages * page)
}

/// The process's resident memory in bytes, where the OS says.
#[cfg(not(target_os = "linux"))]
pub fn resident_bytes() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_are_timed_in_order_with_memory_growth() {
        let mut monitor = StartupMonitor::new();
        std::thread::sleep(std::time::Duration::from_millis(2));
        monitor.mark(Phase::Read);
        let held = monitor.time(Phase::Init, || {
            let mut big = vec![0u8; 8 << 20];
            // Touch every page so it is resident.
            for i in (0..big.len()).step_by(4096) {
                big[i] = 1;
            }
            big
        });
        let phases = monitor.phases();
        assert_eq!(phases.iter().map(|p| p.phase).collect::<Vec<_>>(), [Phase::Read, Phase::Init]);
        assert!(phases[0].duration_ns >= 2_000_000, "{phases:?}");
        #[cfg(target_os = "linux")]
        assert!(phases[1].memory_growth_bytes.is_some_and(|g| g >= 7 << 20), "{phases:?}");
        drop(held);
        let startup = monitor.startup(Thresholds::default());
        assert_eq!(startup.total_ns, phases[0].duration_ns + phases[1].duration_ns);
    }

    #[test]
    fn manifest_thresholds() {
        let defaults = thresholds(&ax_manifest::StartupSection::default());
        assert_eq!(defaults, Thresholds::default());
    }
}
