//! Per-call resource budgets, in-process: wall time, CPU time of the thread
//! running the call, and memory allocated by the plugin.
//!
//! Every call is measured ([`Usage`]): wall and thread CPU time from clocks read
//! on the worker, memory from the counters of the SDK's counting allocator.
//! A call with a budget is also registered with the host's [`Watchdog`], a
//! thread that samples running calls every [`TICK`] and, at the first limit
//! crossed, records a [`Violation`], publishes `Event::BudgetViolation` and asks
//! the plugin to unwind the call (the bridge's abort word, which the SDK checks
//! after every probe, span and event). The call then fails with
//! `CallError::BudgetExceeded` carrying every violation. The watchdog sleeps on a
//! condition variable while no budgeted call runs.
//!
//! These limits are soft: an allocation is never refused (that would abort the
//! host), and code that reaches no probe, span or event cannot be stopped
//! in-process — it is reported when it returns. Time a call spends paused (in a
//! probe handler, such as a debugger stopped at a breakpoint) counts against no
//! budget.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use ax_abi::AllocCounters;

use crate::clock::Started;
use crate::events::{Event, EventBus, InstanceId};

/// How often the watchdog samples running calls.
pub const TICK: Duration = Duration::from_millis(10);

/// What a call does at its first violation (asks the plugin to unwind).
/// Shared by every call of an instance (made once, cloned per call).
pub(crate) type OnViolation = Arc<dyn Fn(&[Violation]) + Send + Sync>;

/// Limits for one call. `None` means unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Budget {
    /// Bytes the plugin may have allocated, at peak, beyond what it held when the call began.
    pub max_memory: Option<u64>,
    /// CPU time of the thread running the call.
    pub max_cpu_time: Option<Duration>,
    /// Wall time from the call's start, pauses excluded.
    pub max_duration: Option<Duration>,
}

impl Budget {
    /// No limit at all.
    pub const UNLIMITED: Budget = Budget { max_memory: None, max_cpu_time: None, max_duration: None };

    /// The manifest's `[budget]`.
    pub fn from_manifest(section: &ax_manifest::BudgetSection) -> Budget {
        Budget {
            max_memory: section.max_memory.map(|b| b.0),
            max_cpu_time: section.max_cpu_time.map(|d| d.0),
            max_duration: section.max_duration.map(|d| d.0),
        }
    }

    /// Whether any limit is set.
    pub fn is_limited(&self) -> bool {
        self.max_memory.is_some() || self.max_cpu_time.is_some() || self.max_duration.is_some()
    }

    /// `self`, with every limit `other` sets taking precedence.
    pub fn overridden_by(&self, other: &Budget) -> Budget {
        Budget {
            max_memory: other.max_memory.or(self.max_memory),
            max_cpu_time: other.max_cpu_time.or(self.max_cpu_time),
            max_duration: other.max_duration.or(self.max_duration),
        }
    }
}

/// Which limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BudgetKind {
    Memory,
    CpuTime,
    Duration,
}

impl fmt::Display for BudgetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BudgetKind::Memory => "max_memory",
            BudgetKind::CpuTime => "max_cpu_time",
            BudgetKind::Duration => "max_duration",
        })
    }
}

/// A limit crossed: `observed` exceeded `limit` (bytes for memory, nanoseconds for times).
///
/// `observed` is the figure when the limit was noticed; a call that reaches no
/// probe, span or event goes on after that, so `at_end` is what it had reached
/// when it returned (the figure `--stats` shows): `None` while the call runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Violation {
    pub kind: BudgetKind,
    pub limit: u64,
    pub observed: u64,
    /// How long after the call's start the watchdog noticed (pauses excluded).
    pub noticed_after: Duration,
    /// The same measure when the call ended (peak memory, CPU time, wall time).
    pub at_end: Option<u64>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: u64| match self.kind {
            BudgetKind::Memory => format_bytes(v),
            _ => format_duration(Duration::from_nanos(v)),
        };
        let (kind, limit, observed) = (self.kind, show(self.limit), show(self.observed));
        let peak = if self.kind == BudgetKind::Memory { "peak " } else { "" };
        match self.at_end {
            // Shown only when the call went on noticeably after the limit was noticed.
            Some(end) if show(end) != show(self.observed) && end > self.observed => write!(
                f,
                "{kind} {limit} exceeded (observed {peak}{observed} when the limit was noticed, {peak}{} by the end of the call)",
                show(end)
            ),
            _ => write!(f, "{kind} {limit} exceeded (observed {observed})"),
        }
    }
}

/// `1.5 MiB`, `512 B`.
pub fn format_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / (1u64 << 10) as f64),
        n => format!("{n} B"),
    }
}

/// `12.3 ms`, `1.20 s`, `850 µs`.
pub fn format_duration(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.1} ms", ns / 1e6)
    } else {
        format!("{:.0} µs", ns / 1e3)
    }
}

/// What one call used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Wall time, pauses excluded.
    pub wall: Duration,
    /// CPU time of the thread that ran the call (`None` where
    /// the platform gives no per-thread clock).
    pub cpu: Option<Duration>,
    /// Bytes allocated during the call (`None` without the counting allocator).
    pub allocated: Option<u64>,
    /// Peak bytes held beyond what was held when the call began.
    pub peak: Option<u64>,
    /// Time spent paused (in probe handlers).
    pub paused: Duration,
    /// System calls a sandbox denied during the call (only a sandboxed
    /// isolated plugin has any: `ax-isolate` fills this in).
    pub denied: SandboxDenials,
}

/// The capabilities a sandbox counts its denials by, in [`SandboxDenials`]
/// order. `ax-isolate` enforces them; the runtime only carries the counts.
pub const SANDBOX_CAPABILITIES: [&str; 8] =
    ["exec", "ptrace", "network", "namespace", "mount", "keyring", "bpf/perf", "kernel"];

/// Denied system calls per capability ([`SANDBOX_CAPABILITIES`]): plain
/// counts, so that [`Usage`] stays `Copy` and allocates nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SandboxDenials([u64; SANDBOX_CAPABILITIES.len()]);

impl SandboxDenials {
    /// Adds `count` denials of `capability`; false (and nothing added) when it
    /// is not one of [`SANDBOX_CAPABILITIES`].
    pub fn add(&mut self, capability: &str, count: u64) -> bool {
        match SANDBOX_CAPABILITIES.iter().position(|c| *c == capability) {
            Some(i) => {
                self.0[i] = self.0[i].saturating_add(count);
                true
            }
            None => false,
        }
    }

    /// `(capability, count)` for each capability denied at least once.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        SANDBOX_CAPABILITIES.iter().zip(&self.0).filter(|(_, n)| **n > 0).map(|(c, n)| (*c, *n))
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|n| *n == 0)
    }

    /// Every denial counted.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

impl fmt::Display for SandboxDenials {
    /// `network ×2, exec ×1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (capability, count)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{capability} ×{count}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "wall {}", format_duration(self.wall))?;
        if let Some(cpu) = self.cpu {
            write!(f, " · cpu {}", format_duration(cpu))?;
        }
        if let (Some(allocated), Some(peak)) = (self.allocated, self.peak) {
            write!(f, " · allocated {} · peak {}", format_bytes(allocated), format_bytes(peak))?;
        }
        if !self.paused.is_zero() {
            write!(f, " · paused {}", format_duration(self.paused))?;
        }
        if !self.denied.is_empty() {
            write!(f, " · sandbox denied {}", self.denied)?;
        }
        Ok(())
    }
}

/// CPU clock of the calling thread.
#[cfg(unix)]
fn thread_cpu_now() -> Option<Duration> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid timespec out-pointer.
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } == 0;
    ok.then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

#[cfg(not(unix))]
fn thread_cpu_now() -> Option<Duration> {
    None
}

/// A CPU clock of a thread, readable from another thread.
#[derive(Clone, Copy, Debug)]
struct CpuClock(#[cfg(unix)] libc::clockid_t);

impl CpuClock {
    /// The calling thread's clock.
    #[cfg(unix)]
    fn current() -> Option<CpuClock> {
        let mut id: libc::clockid_t = 0;
        // SAFETY: pthread_self is always valid; id is a valid out-pointer.
        let ok = unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut id) } == 0;
        ok.then_some(CpuClock(id))
    }

    #[cfg(not(unix))]
    fn current() -> Option<CpuClock> {
        None
    }

    #[cfg(unix)]
    fn read(&self) -> Option<Duration> {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: a clock id from pthread_getcpuclockid of a thread that is alive
        // while its call is registered; a valid out-pointer.
        let ok = unsafe { libc::clock_gettime(self.0, &mut ts) } == 0;
        ok.then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
    }

    #[cfg(not(unix))]
    fn read(&self) -> Option<Duration> {
        None
    }
}

/// A call in progress, as the worker and the watchdog see it.
pub(crate) struct ActiveCall {
    /// What a violation needs; only when the budget limits something (nothing
    /// else can be violated), so that an unlimited call clones nothing another
    /// caller's call shares.
    limited: Option<Limited>,
    pub(crate) instance: InstanceId,
    budget: Budget,
    started: Started,
    cpu_clock: Option<CpuClock>,
    cpu_start: Option<Duration>,
    counters: Option<&'static AllocCounters>,
    allocated_start: u64,
    live_start: u64,
    paused_wall_ns: AtomicU64,
    /// Nanoseconds after `started` at which the current pause began; `NOT_PAUSED` otherwise.
    paused_since_ns: AtomicU64,
    violations: Mutex<Vec<Violation>>,
    /// How many of `violations` have been published.
    published: Mutex<usize>,
    /// Set (under `violations`' lock) just before `on_violation` is called:
    /// this call, and no other running in parallel, is to unwind.
    aborting: AtomicBool,
    /// Whether the probe handler has been told of the abort.
    abort_noticed: AtomicBool,
    /// The call this one was made inside on its thread (a handler of the
    /// outer plugin's span or probe calling another plugin): the thread's
    /// call again once this one finishes.
    outer: Option<Arc<ActiveCall>>,
}

/// What a call with a limited budget keeps for its violations.
struct Limited {
    /// The plugin's name and the method, for violation events.
    plugin: Arc<str>,
    method: String,
    /// Called (once) at the first violation, with it: asks the plugin to unwind.
    on_violation: OnViolation,
}

thread_local! {
    /// The call running on this worker thread, for pause accounting.
    static CURRENT: RefCell<Option<Arc<ActiveCall>>> = const { RefCell::new(None) };
    /// The last call finished on this thread that nothing else held: the next
    /// call here takes its allocation instead of another.
    static SPARE: Cell<Option<Arc<ActiveCall>>> = const { Cell::new(None) };
}

impl ActiveCall {
    /// Starts measuring a call on the thread running it. `plugin`, `method`
    /// and `on_violation` are kept only when `budget` limits something:
    /// nothing else can be violated.
    pub(crate) fn begin(
        plugin: &Arc<str>,
        method: &str,
        instance: InstanceId,
        budget: Budget,
        counters: Option<&'static AllocCounters>,
        on_violation: &OnViolation,
        measure_cpu: bool,
    ) -> Arc<ActiveCall> {
        // The thread's CPU clock is a system call (no vDSO): read only when asked
        // or when a CPU budget needs it.
        let measure_cpu = measure_cpu || budget.max_cpu_time.is_some();
        let (allocated_start, live_start) = counters.map_or((0, 0), |c| {
            let live = c.live();
            c.peak_live.store(live, Ordering::Relaxed);
            (c.allocated.load(Ordering::Relaxed), live)
        });
        let limited = budget.is_limited();
        let outer = CURRENT.with(|c| c.borrow_mut().take());
        let call = ActiveCall {
            limited: limited.then(|| Limited {
                plugin: plugin.clone(),
                method: method.to_owned(),
                on_violation: on_violation.clone(),
            }),
            instance,
            budget,
            started: Started::now(),
            cpu_clock: if measure_cpu { CpuClock::current() } else { None },
            cpu_start: if measure_cpu { thread_cpu_now() } else { None },
            counters,
            allocated_start,
            live_start,
            paused_wall_ns: AtomicU64::new(0),
            paused_since_ns: AtomicU64::new(NOT_PAUSED),
            violations: Mutex::new(Vec::new()),
            published: Mutex::new(0),
            aborting: AtomicBool::new(false),
            abort_noticed: AtomicBool::new(false),
            outer,
        };
        let call = match SPARE.try_with(Cell::take).ok().flatten() {
            Some(mut spare) => match Arc::get_mut(&mut spare) {
                Some(slot) => {
                    *slot = call;
                    spare
                }
                None => Arc::new(call),
            },
            None => Arc::new(call),
        };
        CURRENT.with(|c| *c.borrow_mut() = Some(call.clone()));
        call
    }

    /// Keeps a finished call's allocation for the next call on this thread,
    /// if nothing else holds it (a watchdog that was looking at it drops it).
    pub(crate) fn recycle(mut call: Arc<ActiveCall>) {
        let Some(done) = Arc::get_mut(&mut call) else { return };
        // What it shares with others goes now, not at the next call.
        done.outer = None;
        done.limited = None;
        // An error: this thread is exiting; the call is freed.
        let _ = SPARE.try_with(|spare| spare.set(Some(call)));
    }

    /// This call, then the calls it was made inside, innermost first.
    fn and_outer(&self) -> impl Iterator<Item = &ActiveCall> {
        std::iter::successors(Some(self), |call| call.outer.as_deref())
    }

    /// Stops measuring; returns the usage and the violations recorded.
    pub(crate) fn finish(&self) -> (Usage, Vec<Violation>) {
        CURRENT.with(|c| *c.borrow_mut() = self.outer.clone());
        let paused = Duration::from_nanos(self.paused_wall_ns.load(Ordering::Relaxed));
        let cpu = self.cpu_start.and_then(|start| Some(thread_cpu_now()?.saturating_sub(start)));
        let usage = Usage {
            wall: self.started.elapsed().saturating_sub(paused),
            cpu,
            allocated: self.counters.map(|c| c.allocated.load(Ordering::Relaxed).wrapping_sub(self.allocated_start)),
            peak: self.counters.map(|c| c.peak_live.load(Ordering::Relaxed).saturating_sub(self.live_start)),
            paused,
            denied: SandboxDenials::default(),
        };
        // A limit crossed by a call that returned before the watchdog looked
        // still counts: check once more, with the final figures.
        self.check_with(usage.wall, usage.cpu, usage.peak);
        let mut violations = self.violations.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for violation in &mut violations {
            violation.at_end = match violation.kind {
                BudgetKind::Duration => Some(usage.wall.as_nanos() as u64),
                BudgetKind::CpuTime => usage.cpu.map(|c| c.as_nanos() as u64),
                BudgetKind::Memory => usage.peak,
            };
        }
        (usage, violations)
    }

    /// Samples the call from the watchdog thread.
    fn check(&self) {
        let paused = Duration::from_nanos(self.paused_wall_ns.load(Ordering::Relaxed));
        // While paused, the clock stands where the pause began.
        let now = match self.paused_since_ns.load(Ordering::Relaxed) {
            NOT_PAUSED => self.started.elapsed(),
            since => Duration::from_nanos(since),
        };
        let wall = now.saturating_sub(paused);
        let cpu = match (self.cpu_clock.and_then(|c| c.read()), self.cpu_start) {
            (Some(now), Some(start)) => Some(now.saturating_sub(start)),
            _ => None,
        };
        let peak = self.counters.map(|c| c.peak_live.load(Ordering::Relaxed).saturating_sub(self.live_start));
        self.check_with(wall, cpu, peak);
    }

    fn check_with(&self, wall: Duration, cpu: Option<Duration>, peak: Option<u64>) {
        let mut crossed = Vec::new();
        if let Some(limit) = self.budget.max_duration
            && wall > limit
        {
            crossed.push((BudgetKind::Duration, limit.as_nanos() as u64, wall.as_nanos() as u64));
        }
        if let (Some(limit), Some(cpu)) = (self.budget.max_cpu_time, cpu)
            && cpu > limit
        {
            crossed.push((BudgetKind::CpuTime, limit.as_nanos() as u64, cpu.as_nanos() as u64));
        }
        if let (Some(limit), Some(peak)) = (self.budget.max_memory, peak)
            && peak > limit
        {
            crossed.push((BudgetKind::Memory, limit, peak));
        }
        if crossed.is_empty() {
            return;
        }
        let mut violations = self.violations.lock().unwrap_or_else(|e| e.into_inner());
        let first = violations.is_empty();
        for (kind, limit, observed) in crossed {
            if !violations.iter().any(|v| v.kind == kind) {
                violations.push(Violation { kind, limit, observed, noticed_after: wall, at_end: None });
            }
        }
        if first {
            self.aborting.store(true, Ordering::Release);
            if let Some(limited) = &self.limited {
                (limited.on_violation)(&violations);
            }
        }
    }

    /// Whether this call was asked to unwind (its `on_violation` has run, or
    /// is running under the lock `finish` waits for).
    pub(crate) fn aborting(&self) -> bool {
        self.aborting.load(Ordering::Acquire)
    }

    /// Publishes the violations not published yet (each exactly once, whether
    /// the watchdog or the final check found it).
    pub(crate) fn publish_violations(&self, events: &EventBus) {
        let Some(limited) = &self.limited else { return };
        let mut published = self.published.lock().unwrap_or_else(|e| e.into_inner());
        let violations = self.violations.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for violation in &violations[(*published).min(violations.len())..] {
            events.publish_with(|| Event::BudgetViolation {
                instance: self.instance,
                plugin: limited.plugin.to_string(),
                method: limited.method.clone(),
                violation: *violation,
            });
        }
        *published = violations.len();
    }
}

const NOT_PAUSED: u64 = u64::MAX;

/// Whether the call running on this thread was asked to unwind (the SDK asks,
/// through the host vtable's `abort_call`, when the abort word is set).
pub(crate) fn current_call_aborting() -> bool {
    CURRENT
        .try_with(|c| c.try_borrow().ok().and_then(|c| c.as_ref().map(|c| c.aborting())))
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// Why the call running on this thread is being unwound, the first time it is
/// asked (a debugger breaks on budget violations once per call).
pub(crate) fn take_abort_notice() -> Option<String> {
    let call = CURRENT.try_with(|c| c.try_borrow().ok().and_then(|c| c.clone())).ok().flatten()?;
    if !call.aborting() || call.abort_noticed.swap(true, Ordering::Relaxed) {
        return None;
    }
    let violations = call.violations.lock().unwrap_or_else(|e| e.into_inner());
    Some(violations.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))
}

/// Runs `wait` — a probe handler blocking, as a debugger stopped at a
/// breakpoint does — without counting its time against the current call's
/// wall-time budget. Outside a call it just runs `wait`.
pub fn paused<R>(wait: impl FnOnce() -> R) -> R {
    let pause = Pause::begin();
    let result = wait();
    pause.end();
    result
}

/// Time spent paused inside a call (a probe handler that blocks), excluded
/// from its wall-time budget. Only wall time is taken out: a blocked thread
/// uses no CPU, and reading the thread's CPU clock is a system call (hundreds
/// of nanoseconds here) that every armed probe hit would pay.
pub(crate) struct Pause {
    call: Option<Arc<ActiveCall>>,
    started: Instant,
}

impl Pause {
    /// Starts a pause of the call running on this thread, if any, and of
    /// the calls it was made inside (the pause is theirs too).
    pub(crate) fn begin() -> Pause {
        let call = CURRENT.try_with(|c| c.borrow().clone()).ok().flatten();
        let started = Instant::now();
        for call in call.iter().flat_map(|c| c.and_outer()) {
            call.paused_since_ns.store(call.started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        }
        Pause { call, started }
    }

    pub(crate) fn end(self) {
        let paused = self.started.elapsed().as_nanos() as u64;
        for call in self.call.iter().flat_map(|c| c.and_outer()) {
            call.paused_wall_ns.fetch_add(paused, Ordering::Relaxed);
            call.paused_since_ns.store(NOT_PAUSED, Ordering::Relaxed);
        }
    }
}

struct WatchState {
    calls: Vec<Arc<ActiveCall>>,
    stopping: bool,
    /// The watchdog sleeps with no deadline and must be woken for a new call.
    /// While it ticks, registering a call wakes nothing: waking a thread per
    /// call more than doubled the cost of a short call.
    idle: bool,
}

/// The host's budget watchdog. See the module docs.
pub(crate) struct Watchdog {
    shared: Arc<(Mutex<WatchState>, Condvar)>,
    events: Arc<EventBus>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl fmt::Debug for Watchdog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watchdog").finish_non_exhaustive()
    }
}

impl Watchdog {
    pub(crate) fn new(events: Arc<EventBus>) -> Watchdog {
        let shared =
            Arc::new((Mutex::new(WatchState { calls: Vec::new(), stopping: false, idle: true }), Condvar::new()));
        Watchdog { shared, events, thread: Mutex::new(None) }
    }

    /// Samples `call` until [`Watchdog::unwatch`].
    pub(crate) fn watch(&self, call: &Arc<ActiveCall>) {
        self.ensure_thread();
        let (state, wake) = &*self.shared;
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        state.calls.push(call.clone());
        if state.idle {
            wake.notify_one();
        }
    }

    pub(crate) fn unwatch(&self, call: &Arc<ActiveCall>) {
        let (state, _) = &*self.shared;
        state.lock().unwrap_or_else(|e| e.into_inner()).calls.retain(|c| !Arc::ptr_eq(c, call));
    }

    fn ensure_thread(&self) {
        let mut thread = self.thread.lock().unwrap_or_else(|e| e.into_inner());
        if thread.is_some() {
            return;
        }
        let shared = self.shared.clone();
        let events = self.events.clone();
        *thread = std::thread::Builder::new()
            .name("ax-watchdog".to_owned())
            .spawn(move || watchdog_loop(&shared, &events))
            .ok();
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        let (state, wake) = &*self.shared;
        state.lock().unwrap_or_else(|e| e.into_inner()).stopping = true;
        wake.notify_all();
        if let Some(thread) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = thread.join();
        }
    }
}

fn watchdog_loop(shared: &(Mutex<WatchState>, Condvar), events: &EventBus) {
    let (state, wake) = shared;
    let mut guard = state.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        if guard.stopping {
            return;
        }
        if guard.calls.is_empty() {
            // Idle: sleep until a budgeted call starts.
            guard.idle = true;
            guard = wake.wait(guard).unwrap_or_else(|e| e.into_inner());
            guard.idle = false;
            continue;
        }
        let calls = guard.calls.clone();
        drop(guard);
        for call in &calls {
            call.check();
            call.publish_violations(events);
        }
        guard = state.lock().unwrap_or_else(|e| e.into_inner());
        guard = wake.wait_timeout(guard, TICK).unwrap_or_else(|e| e.into_inner()).0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_merge_and_format() {
        let manifest =
            Budget { max_memory: Some(1 << 20), max_cpu_time: None, max_duration: Some(Duration::from_secs(5)) };
        let cli = Budget { max_duration: Some(Duration::from_millis(50)), ..Budget::UNLIMITED };
        let merged = manifest.overridden_by(&cli);
        assert_eq!(merged.max_duration, Some(Duration::from_millis(50)));
        assert_eq!(merged.max_memory, Some(1 << 20));
        assert!(merged.is_limited() && !Budget::UNLIMITED.is_limited());

        let v = Violation {
            kind: BudgetKind::Duration,
            limit: 50_000_000,
            observed: 62_300_000,
            noticed_after: Duration::ZERO,
            at_end: Some(62_310_000),
        };
        assert_eq!(v.to_string(), "max_duration 50.0 ms exceeded (observed 62.3 ms)", "the same figure, once");
        let cpu = Violation { kind: BudgetKind::CpuTime, observed: 102_700_000, at_end: Some(639_000_000), ..v };
        assert_eq!(
            cpu.to_string(),
            "max_cpu_time 50.0 ms exceeded (observed 102.7 ms when the limit was noticed, 639.0 ms by the end of the call)"
        );
        let m = Violation {
            kind: BudgetKind::Memory,
            limit: 64 << 20,
            observed: 1 << 30,
            noticed_after: Duration::ZERO,
            at_end: None,
        };
        assert_eq!(m.to_string(), "max_memory 64.0 MiB exceeded (observed 1.0 GiB)");
        assert_eq!(format_duration(Duration::from_micros(850)), "850 µs");
        assert_eq!(format_bytes(512), "512 B");
    }

    #[test]
    fn a_call_over_its_duration_is_reported_once_and_asks_for_abort() {
        let aborts = Arc::new(AtomicU64::new(0));
        let counter = aborts.clone();
        let budget = Budget { max_duration: Some(Duration::from_millis(5)), ..Budget::UNLIMITED };
        let call = ActiveCall::begin(
            &Arc::from("p"),
            "m",
            1,
            budget,
            None,
            &(Arc::new(move |_: &[Violation]| {
                counter.fetch_add(1, Ordering::Relaxed);
            }) as OnViolation),
            true,
        );
        std::thread::sleep(Duration::from_millis(15));
        call.check();
        call.check();
        let (usage, violations) = call.finish();
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert_eq!(violations[0].kind, BudgetKind::Duration);
        assert_eq!(aborts.load(Ordering::Relaxed), 1);
        assert!(usage.wall >= Duration::from_millis(15));
        assert!(usage.cpu.is_some_and(|c| c < Duration::from_millis(10)), "sleeping uses no CPU: {usage:?}");
    }

    #[test]
    fn pauses_do_not_count() {
        let budget = Budget { max_duration: Some(Duration::from_millis(20)), ..Budget::UNLIMITED };
        let call = ActiveCall::begin(
            &Arc::from("p"),
            "m",
            1,
            budget,
            None,
            &(Arc::new(|_: &[Violation]| {}) as OnViolation),
            true,
        );
        let pause = Pause::begin();
        std::thread::sleep(Duration::from_millis(40));
        pause.end();
        let (usage, violations) = call.finish();
        assert!(violations.is_empty(), "{violations:?}");
        assert!(usage.paused >= Duration::from_millis(40));
        assert!(usage.wall < Duration::from_millis(20), "{usage:?}");
    }
}
