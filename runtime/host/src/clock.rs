//! The wall clock of calls (their budgets and their `Usage::wall`).
//!
//! A call reads it twice. `Instant::now` costs ~20 ns a read on this
//! project's VM (the vDSO's clock), the CPU's time-stamp counter ~8 ns, but
//! the counter needs a calibration against the monotonic clock first (~0.6 ms
//! of one core, spinning), which a short `ax run` would pay at its start for
//! a handful of calls. So a process calibrates it once one of its threads
//! has made [`CALIBRATE_AFTER`] calls, on a thread of its own, and calls
//! started from then on read the counter. Where the counter is not invariant
//! across cores and frequencies, quanta's clock is the monotonic clock.
//! OpenTelemetry export stamps its records with the same counter once it is
//! calibrated ([`ticks`]): an `ax run` of a few calls never waits for it.

use std::cell::Cell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Calls a thread makes on the monotonic clock before the process calibrates the counter.
const CALIBRATE_AFTER: u32 = 1000;

/// The counter, once calibrated.
static COUNTER: OnceLock<quanta::Clock> = OnceLock::new();
/// Whether a calibration was started (once per process).
static CALIBRATING: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// Calls this thread started on the monotonic clock.
    static CALLS: Cell<u32> = const { Cell::new(0) };
}

/// When a call started, on the clock it was read from: both scale to the
/// monotonic clock's nanoseconds.
#[derive(Clone, Copy)]
pub(crate) enum Started {
    Monotonic(Instant),
    Counter(&'static quanta::Clock, u64),
}

impl Started {
    pub(crate) fn now() -> Started {
        if let Some(counter) = COUNTER.get() {
            return Started::Counter(counter, counter.raw());
        }
        count_call();
        Started::Monotonic(Instant::now())
    }

    /// The time since, on any thread (0 if this core's counter is behind the starting one's).
    pub(crate) fn elapsed(self) -> Duration {
        match self {
            Started::Monotonic(at) => at.elapsed(),
            Started::Counter(counter, at) => counter.delta(at, counter.raw()),
        }
    }
}

/// Counts a call on the monotonic clock; the thread's [`CALIBRATE_AFTER`]th
/// starts the calibration, unless one was started.
fn count_call() {
    let calls = CALLS.try_with(|c| {
        let n = c.get().saturating_add(1);
        c.set(n);
        n
    });
    if calls == Ok(CALIBRATE_AFTER) && !CALIBRATING.swap(true, Ordering::Relaxed) {
        // Without a thread, calls keep the monotonic clock.
        let _ = std::thread::Builder::new().name("ax-clock".into()).spawn(|| COUNTER.get_or_init(quanta::Clock::new));
    }
}

/// A reading of the counter, once the process calibrated it.
pub fn ticks() -> Option<u64> {
    COUNTER.get().map(quanta::Clock::raw)
}

/// The time between two [`ticks`] readings (zero unless `end` is after `start`).
pub fn ticks_between(start: u64, end: u64) -> Duration {
    COUNTER.get().map_or(Duration::ZERO, |counter| counter.delta(start, end))
}

/// Calibrates the counter now, on this thread (~0.6 ms), unless it is: for a
/// test or a benchmark that wants it from the first call.
pub fn calibrate() {
    CALIBRATING.store(true, Ordering::Relaxed);
    COUNTER.get_or_init(quanta::Clock::new);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_clocks_measure_the_same_time() {
        let monotonic = Started::Monotonic(Instant::now());
        calibrate();
        let Started::Counter(..) = Started::now() else { panic!("a calibrated counter is used") };
        let counter = Started::now();
        std::thread::sleep(Duration::from_millis(20));
        let (m, c) = (monotonic.elapsed(), counter.elapsed());
        assert!(c >= Duration::from_millis(20), "the counter measured {c:?} of a 20 ms sleep");
        assert!(m >= c, "the monotonic clock, started first, measured {m:?}, the counter {c:?}");
        // Read on another thread (the watchdog's), the counter measures the same.
        let elsewhere = std::thread::spawn(move || counter.elapsed()).join().expect("thread");
        assert!(elsewhere >= c, "another thread measured {elsewhere:?} after {c:?}");
    }
}
