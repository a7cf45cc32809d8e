//! The runtime profiler: span intervals, self time, call trees and probe hits
//! of one plugin image, recorded on the threads that run its code.
//!
//! One [`Profiler`] belongs to each bridge. While profiling is on (see
//! [`ProfileOptions`]), the bridge hands it every span enter and exit, every
//! forwarded event, every probe hit, and the start and end of every call. It
//! keeps, per thread, a stack of open intervals (a call's root frame, then the
//! spans entered inside it) with their start time on a monotonic nanosecond
//! clock and the time spent in their children so far; at an exit it records
//! the interval's total and self time into its callsite's [`Time`] (an HDR
//! histogram) and adds the self time to a node of the call tree, whose paths
//! become the folded stacks of flame graphs. Time a thread spends paused (a
//! debugger stopped at a probe) is taken out of every interval open around it.
//! With the SDK's counting allocator, a frame also notes the thread's live
//! bytes (allocated − freed) when it opens; at its exit the difference is what
//! the interval kept, recorded per callsite (less what its child spans kept)
//! and per call (less the output buffer the host frees after the call) into
//! `ax_profile::Kept`, whose trend gives the leak hints.
//!
//! Cost: while on, an enter reads the clock and pushes a frame; an exit reads
//! the clock, pops, and records under one uncontended lock — the call-tree node
//! comes from a one-entry cache in the parent frame, so a loop calling the same
//! span does no hashing. `benches/bridge.rs` measures it (`span_profiled`).
//!
//! **Invariant:** profiling off costs nothing beyond one relaxed load per
//! callback: no clock is read, nothing is recorded, no lock is taken.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use ax_profile::{CallsiteKind, CallsiteProfile, Kept, MethodProfile, Stack, Time};
use parking_lot::Mutex;

use crate::bridge::{CallsiteInfo, ProbeSiteInfo};
use crate::budget::{Usage, Violation};

/// What a profiling run measures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProfileOptions {
    /// Also read the thread's CPU clock at every span enter and exit, for the
    /// spans' `cpu_ns`. On Linux that clock is a system call (≈0.4 µs on a
    /// small VM, against ≈30 ns for the monotonic clock), hence off by default;
    /// the CPU time of whole calls is always measured.
    pub span_cpu: bool,
}

/// Node 0 of the call tree: above every root frame.
const ROOT: u32 = 0;
/// A frame whose call-tree node has not been looked up yet.
const NO_NODE: u32 = u32::MAX;
/// A node of a call's root frame has no span statistics.
const NO_SLOT: u32 = u32::MAX;

/// An open interval on some thread: a call's root frame (`span == 0`) or an
/// entered span.
#[derive(Clone, Copy)]
struct Frame {
    bridge: usize,
    span: u64,
    /// Callsite id of a span (an even address), or a method's key (odd).
    key: usize,
    start_ns: u64,
    /// The thread's paused time when the frame opened.
    paused_at: u64,
    /// The thread's CPU clock when the frame opened, if read.
    cpu_start: Option<u64>,
    /// The thread's allocated-bytes counter when the frame opened, if the plugin counts.
    alloc_start: Option<u64>,
    /// The thread's live bytes (allocated − freed, wrapping) when the frame opened.
    live_start: u64,
    /// Bytes kept by the children closed so far.
    child_kept: i64,
    /// Total time of the children closed so far.
    child_ns: u64,
    node: u32,
    /// The last child closed under this frame: its key and node.
    last_child: (usize, u32),
}

thread_local! {
    static FRAMES: RefCell<Vec<Frame>> = const { RefCell::new(Vec::new()) };
    /// Nanoseconds this thread spent paused, in total.
    static PAUSED_NS: Cell<u64> = const { Cell::new(0) };
}

fn method_key(index: usize) -> usize {
    (index << 1) | 1
}

fn is_method_key(key: usize) -> bool {
    key & 1 == 1
}

/// A monotonic clock in nanoseconds.
#[cfg(unix)]
#[inline]
fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid out-pointer; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(not(unix))]
#[inline]
fn now_ns() -> u64 {
    static EPOCH: OnceLock<std::time::Instant> = OnceLock::new();
    EPOCH.get_or_init(std::time::Instant::now).elapsed().as_nanos() as u64
}

/// The calling thread's CPU clock in nanoseconds.
#[cfg(unix)]
fn thread_cpu_ns() -> Option<u64> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid out-pointer.
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } == 0;
    ok.then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

#[cfg(not(unix))]
fn thread_cpu_ns() -> Option<u64> {
    None
}

/// Fx hashing for keys that are addresses and small integers: a multiply per
/// word instead of SipHash's rounds.
#[derive(Default)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// A node of the call tree: a distinct path of keys from a root.
struct Node {
    parent: u32,
    key: usize,
    count: u64,
    self_ns: u64,
    /// Index in `Data::spans`, or `NO_SLOT` for a call's root.
    slot: u32,
}

struct SpanStats {
    callsite: usize,
    time: Time,
    budget_violations: u64,
    alloc_bytes: Option<u64>,
    kept: Option<Kept>,
}

#[derive(Default)]
struct MethodStats {
    name: String,
    time: Time,
    errors: u64,
    budget_violations: BTreeMap<String, u64>,
    kept: Option<Kept>,
}

struct Data {
    spans: Vec<SpanStats>,
    slots: FxMap<usize, u32>,
    events: FxMap<usize, u64>,
    methods: Vec<MethodStats>,
    method_index: HashMap<String, usize>,
    nodes: Vec<Node>,
    children: FxMap<(u32, usize), u32>,
    /// Whether the spans open when the current call was stopped for its budget
    /// have been charged with it.
    violation_charged: bool,
}

impl Default for Data {
    fn default() -> Self {
        Data {
            spans: Vec::new(),
            slots: FxMap::default(),
            events: FxMap::default(),
            methods: Vec::new(),
            method_index: HashMap::new(),
            nodes: vec![Node { parent: ROOT, key: 0, count: 0, self_ns: 0, slot: NO_SLOT }],
            children: FxMap::default(),
            violation_charged: false,
        }
    }
}

impl Data {
    fn slot(&mut self, callsite: usize) -> u32 {
        if let Some(&slot) = self.slots.get(&callsite) {
            return slot;
        }
        let slot = self.spans.len() as u32;
        self.spans.push(SpanStats { callsite, time: Time::new(), budget_violations: 0, alloc_bytes: None, kept: None });
        self.slots.insert(callsite, slot);
        slot
    }

    fn child(&mut self, parent: u32, key: usize) -> u32 {
        if let Some(&node) = self.children.get(&(parent, key)) {
            return node;
        }
        let slot = if is_method_key(key) { NO_SLOT } else { self.slot(key) };
        let node = self.nodes.len() as u32;
        self.nodes.push(Node { parent, key, count: 0, self_ns: 0, slot });
        self.children.insert((parent, key), node);
        node
    }

    /// The node of `frames[i]`, looked up (with its ancestors') if not yet known.
    fn node_of(&mut self, frames: &mut [Frame], i: usize) -> u32 {
        if frames[i].node != NO_NODE {
            return frames[i].node;
        }
        let bridge = frames[i].bridge;
        let parent = frames[..i].iter().rposition(|f| f.bridge == bridge);
        let node = self.node_under(frames, parent, frames[i].key);
        frames[i].node = node;
        node
    }

    /// The node of a frame with `key` whose parent frame is `frames[parent]`
    /// (a root when `None`), through the parent's one-entry cache.
    fn node_under(&mut self, frames: &mut [Frame], parent: Option<usize>, key: usize) -> u32 {
        let Some(p) = parent else { return self.child(ROOT, key) };
        if frames[p].last_child.0 == key {
            return frames[p].last_child.1;
        }
        let parent_node = self.node_of(frames, p);
        let node = self.child(parent_node, key);
        frames[p].last_child = (key, node);
        node
    }

    /// `alloc`: bytes allocated during the interval and self-kept bytes, if counted.
    fn record(&mut self, node: u32, total_ns: u64, self_ns: u64, cpu_ns: Option<u64>, alloc: Option<(u64, i64)>) {
        let node = &mut self.nodes[node as usize];
        node.count += 1;
        node.self_ns += self_ns;
        if node.slot != NO_SLOT {
            let span = &mut self.spans[node.slot as usize];
            span.time.record(total_ns, self_ns, cpu_ns);
            if let Some((bytes, kept)) = alloc {
                span.alloc_bytes = Some(span.alloc_bytes.unwrap_or(0).saturating_add(bytes));
                span.kept.get_or_insert_with(Kept::new).record(kept);
            }
        }
    }

    fn method(&mut self, name: &str) -> usize {
        if let Some(&i) = self.method_index.get(name) {
            return i;
        }
        self.methods.push(MethodStats { name: name.to_owned(), ..MethodStats::default() });
        self.method_index.insert(name.to_owned(), self.methods.len() - 1);
        self.methods.len() - 1
    }
}

thread_local! {
    /// The allocation counters of the plugin whose call runs on this thread
    /// (set for each call; none elsewhere or without the SDK's counting
    /// allocator).
    static ALLOC_COUNTERS: std::cell::Cell<Option<&'static ax_abi::AllocCounters>> = const { std::cell::Cell::new(None) };
}

/// Tells the profiler which allocation counters belong to the calling
/// (worker) thread; returns the ones before, to put back when the call ends
/// (a call may make another on its thread).
pub(crate) fn set_thread_alloc_counters(
    counters: Option<&'static ax_abi::AllocCounters>,
) -> Option<&'static ax_abi::AllocCounters> {
    ALLOC_COUNTERS.with(|c| c.replace(counters))
}

/// Bytes the plugin has allocated on this thread so far, and its live bytes
/// (allocated − freed, wrapping), if it counts.
#[inline]
fn thread_allocated() -> Option<(u64, u64)> {
    // Set by this thread's worker from the plugin's thread-local counters,
    // which live as long as this thread.
    let counters = ALLOC_COUNTERS.try_with(std::cell::Cell::get).ok()?;
    counters.map(|c| {
        let allocated = c.allocated.load(Ordering::Relaxed);
        (allocated, allocated.wrapping_sub(c.freed.load(Ordering::Relaxed)))
    })
}

/// Bytes kept between two readings of the live counter.
fn kept_between(start: u64, end: u64) -> i64 {
    end.wrapping_sub(start) as i64
}

/// The profiler of one plugin image. See the module docs.
pub(crate) struct Profiler {
    on: AtomicBool,
    span_cpu: AtomicBool,
    data: Mutex<Data>,
    probe_hits: OnceLock<Box<[AtomicU64]>>,
}

impl Profiler {
    pub(crate) fn new(options: Option<ProfileOptions>) -> Profiler {
        let profiler = Profiler {
            on: AtomicBool::new(false),
            span_cpu: AtomicBool::new(false),
            data: Mutex::new(Data::default()),
            probe_hits: OnceLock::new(),
        };
        profiler.configure(options);
        profiler
    }

    /// Turns profiling on (with `options`) or off. What was recorded stays.
    pub(crate) fn configure(&self, options: Option<ProfileOptions>) {
        self.span_cpu.store(options.is_some_and(|o| o.span_cpu), Ordering::Relaxed);
        self.on.store(options.is_some(), Ordering::Relaxed);
    }

    /// Whether profiling is on: the one check every callback makes.
    #[inline]
    pub(crate) fn is_on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    fn cpu_now(&self) -> Option<u64> {
        if self.span_cpu.load(Ordering::Relaxed) { thread_cpu_ns() } else { None }
    }

    /// Sizes the probe hit counters: once, when the probe table is known.
    pub(crate) fn set_probe_count(&self, n: usize) {
        let _ = self.probe_hits.set((0..n).map(|_| AtomicU64::new(0)).collect());
    }

    fn push(&self, bridge: usize, span: u64, key: usize) {
        let cpu_start = self.cpu_now();
        let counted = thread_allocated();
        let frame = Frame {
            bridge,
            span,
            key,
            start_ns: now_ns(),
            paused_at: PAUSED_NS.get(),
            cpu_start,
            alloc_start: counted.map(|c| c.0),
            live_start: counted.map_or(0, |c| c.1),
            child_kept: 0,
            child_ns: 0,
            node: NO_NODE,
            last_child: (usize::MAX, NO_NODE),
        };
        FRAMES.with(|f| f.borrow_mut().push(frame));
    }

    /// A span of `callsite` was entered on this thread.
    #[inline]
    pub(crate) fn enter(&self, bridge: usize, span: u64, callsite: usize) {
        self.push(bridge, span, callsite);
    }

    /// `span` was exited on this thread. `aborting`: the call is being stopped
    /// for its budget, and this is the first exit of the unwinding.
    pub(crate) fn exit(&self, bridge: usize, span: u64, aborting: bool) {
        let now = now_ns();
        let cpu_now = self.cpu_now();
        let alloc_now = thread_allocated();
        FRAMES.with(|frames| {
            let mut frames = frames.borrow_mut();
            // Usually the top; spans may exit out of order.
            let Some(pos) = frames.iter().rposition(|f| f.span == span && f.bridge == bridge) else { return };
            let mut data = self.data.lock();
            if pos + 1 < frames.len() {
                // Spans entered inside this one stay open: fix their place in the
                // call tree while their parent is still on the stack.
                for i in pos + 1..frames.len() {
                    if frames[i].bridge == bridge {
                        data.node_of(&mut frames, i);
                    }
                }
            }
            let frame = frames.remove(pos);
            let paused = PAUSED_NS.get().saturating_sub(frame.paused_at);
            let total = now.saturating_sub(frame.start_ns).saturating_sub(paused);
            let own = total.saturating_sub(frame.child_ns);
            let cpu = frame.cpu_start.zip(cpu_now).map(|(start, end)| end.saturating_sub(start));
            let alloc = frame.alloc_start.zip(alloc_now).map(|(start, (end, live))| {
                let kept = kept_between(frame.live_start, live);
                (end.wrapping_sub(start), kept)
            });
            let below = &mut frames[..pos];
            let parent = below.iter().rposition(|f| f.bridge == bridge);
            if let Some(p) = parent {
                below[p].child_ns += total;
                if let Some((_, kept)) = alloc {
                    below[p].child_kept = below[p].child_kept.wrapping_add(kept);
                }
            }
            let node = match frame.node {
                NO_NODE => data.node_under(below, parent, frame.key),
                known => known,
            };
            let alloc = alloc.map(|(bytes, kept)| (bytes, kept.wrapping_sub(frame.child_kept)));
            data.record(node, total, own, cpu, alloc);
            if aborting && !data.violation_charged {
                data.violation_charged = true;
                charge_violation(&mut data, node);
            }
        });
    }

    /// A call of `method` starts on this thread: opens its root frame.
    pub(crate) fn begin_call(&self, bridge: usize, method: &str) {
        let index = self.data.lock().method(method);
        self.push(bridge, 0, method_key(index));
    }

    /// The call begun last on this thread ended: closes its root frame (and any
    /// span an aborted call left open) and records the call. `returned`: the
    /// bytes of the output buffer the plugin allocated for the host, which the
    /// host frees after this, so they are not the call's to keep.
    pub(crate) fn end_call(
        &self,
        bridge: usize,
        method: &str,
        usage: &Usage,
        violations: &[Violation],
        failed: bool,
        returned: u64,
    ) {
        let wall = u64::try_from(usage.wall.as_nanos()).unwrap_or(u64::MAX);
        let live_now = thread_allocated().map(|c| c.1);
        let cpu = usage.cpu.map(|c| u64::try_from(c.as_nanos()).unwrap_or(u64::MAX));
        FRAMES.with(|frames| {
            let mut frames = frames.borrow_mut();
            let mut data = self.data.lock();
            let index = data.method(method);
            let root = frames.iter().rposition(|f| f.span == 0 && f.bridge == bridge && f.key == method_key(index));
            let mut kept = None;
            let own = match root {
                Some(pos) => {
                    // A call stopped for its budget before any span exited (at a
                    // span's enter, say) is charged to the spans it left open.
                    if !violations.is_empty()
                        && !data.violation_charged
                        && let Some(top) = frames.iter().rposition(|f| f.bridge == bridge)
                    {
                        let node = data.node_of(&mut frames, top);
                        data.violation_charged = true;
                        charge_violation(&mut data, node);
                    }
                    let mut i = frames.len();
                    while i > pos + 1 {
                        i -= 1;
                        if frames[i].bridge == bridge {
                            frames.remove(i);
                        }
                    }
                    let frame = frames.remove(pos);
                    if let (Some(_), Some(live)) = (frame.alloc_start, live_now) {
                        kept = Some(kept_between(frame.live_start, live).wrapping_sub(returned as i64));
                    }
                    let own = wall.saturating_sub(frame.child_ns);
                    let below = &mut frames[..pos];
                    let parent = below.iter().rposition(|f| f.bridge == bridge);
                    let node = data.node_under(below, parent, frame.key);
                    data.record(node, wall, own, None, None);
                    own
                }
                // Profiling was turned on during the call.
                None => wall,
            };
            data.violation_charged = false;
            let stats = &mut data.methods[index];
            stats.time.record(wall, own, cpu);
            stats.errors += u64::from(failed);
            if let Some(kept) = kept {
                stats.kept.get_or_insert_with(Kept::new).record(kept);
            }
            for violation in violations {
                *stats.budget_violations.entry(violation.kind.to_string()).or_default() += 1;
            }
        });
    }

    /// A forwarded event of `callsite`.
    pub(crate) fn event(&self, callsite: usize) {
        *self.data.lock().events.entry(callsite).or_default() += 1;
    }

    /// A hit of probe site `index`.
    pub(crate) fn probe_hit(&self, index: usize) {
        if let Some(hits) = self.probe_hits.get().and_then(|h| h.get(index)) {
            hits.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Starts a pause of this thread (a probe handler that may block).
    pub(crate) fn pause_begin(&self) -> u64 {
        now_ns()
    }

    /// Ends a pause begun at `started`: its time is no interval's.
    pub(crate) fn pause_end(&self, started: u64) {
        let paused = now_ns().saturating_sub(started);
        PAUSED_NS.set(PAUSED_NS.get() + paused);
    }

    /// Forgets this thread's open intervals of `bridge` (after a call).
    pub(crate) fn clear_thread(bridge: usize) {
        let _ = FRAMES.try_with(|f| f.borrow_mut().retain(|f| f.bridge != bridge));
    }

    /// Forgets everything recorded.
    pub(crate) fn reset(&self) {
        *self.data.lock() = Data::default();
        for hits in self.probe_hits.get().into_iter().flatten() {
            hits.store(0, Ordering::Relaxed);
        }
    }

    /// What was recorded, as the profile file's sections. `callsite` names a
    /// callsite id; `plugin` names calls' root frames (`plugin.method`).
    pub(crate) fn snapshot(
        &self,
        callsite: &dyn Fn(usize) -> Option<&'static CallsiteInfo>,
        probes: &[ProbeSiteInfo],
        plugin: &str,
    ) -> Recorded {
        let data = self.data.lock();
        let methods = data
            .methods
            .iter()
            .filter(|m| m.time.count() > 0)
            .map(|m| MethodProfile {
                method: m.name.clone(),
                count: m.time.count(),
                errors: m.errors,
                budget_violations: m.budget_violations.clone(),
                time: m.time.clone(),
                kept: m.kept.clone(),
            })
            .collect();

        let mut callsites: Vec<CallsiteProfile> = data
            .spans
            .iter()
            .filter(|s| s.time.count() > 0)
            .map(|s| {
                let info = callsite(s.callsite);
                let mut profile = describe(info, CallsiteKind::Span, s.time.count());
                profile.budget_violations = s.budget_violations;
                profile.time = Some(s.time.clone());
                profile.alloc_bytes = s.alloc_bytes;
                profile.kept = s.kept.clone();
                profile
            })
            .collect();
        callsites.extend(data.events.iter().map(|(&id, &n)| describe(callsite(id), CallsiteKind::Event, n)));
        let hits = self.probe_hits.get().map_or(&[][..], |h| &h[..]);
        callsites.extend(probes.iter().zip(hits).filter(|(_, n)| n.load(Ordering::Relaxed) > 0).map(|(site, n)| {
            CallsiteProfile {
                kind: CallsiteKind::Probe,
                name: site.function.clone(),
                target: site.module_path.clone(),
                file: site.file.clone(),
                line: site.line,
                count: n.load(Ordering::Relaxed),
                budget_violations: 0,
                time: None,
                alloc_bytes: None,
                kept: None,
            }
        }));

        let frame_name = |key: usize| -> String {
            let name = if is_method_key(key) {
                let method = data.methods.get(key >> 1).map_or("?", |m| m.name.as_str());
                format!("{plugin}.{method}")
            } else {
                callsite(key).map_or_else(|| "?".to_owned(), |c| c.name.clone())
            };
            // `;` separates frames in the folded format; a line holds one stack.
            name.replace(';', ":").replace(['\n', '\r'], " ")
        };
        let names: Vec<String> = data.nodes.iter().map(|n| frame_name(n.key)).collect();
        let stacks = (1..data.nodes.len())
            .filter(|&i| data.nodes[i].count > 0)
            .map(|i| {
                let mut path = Vec::new();
                let mut at = i;
                while at != ROOT as usize {
                    path.push(names[at].as_str());
                    at = data.nodes[at].parent as usize;
                }
                path.reverse();
                Stack { stack: path.join(";"), count: data.nodes[i].count, self_ns: data.nodes[i].self_ns }
            })
            .collect();
        Recorded { methods, callsites, stacks }
    }
}

/// The sections of a profile the profiler fills.
#[derive(Debug, Default)]
pub(crate) struct Recorded {
    pub(crate) methods: Vec<MethodProfile>,
    pub(crate) callsites: Vec<CallsiteProfile>,
    pub(crate) stacks: Vec<Stack>,
}

/// Charges a budget violation to every span on the path of `node`.
fn charge_violation(data: &mut Data, node: u32) {
    let mut at = node;
    let mut charged: Vec<u32> = Vec::new();
    while at != ROOT {
        let n = &data.nodes[at as usize];
        // A recursive span is on the path more than once, charged once.
        if n.slot != NO_SLOT && !charged.contains(&n.slot) {
            charged.push(n.slot);
            data.spans[n.slot as usize].budget_violations += 1;
        }
        at = n.parent;
    }
}

fn describe(info: Option<&CallsiteInfo>, kind: CallsiteKind, count: u64) -> CallsiteProfile {
    CallsiteProfile {
        kind,
        name: info.map_or_else(|| "?".to_owned(), |c| c.name.clone()),
        target: info.map_or_else(String::new, |c| c.target.clone()),
        file: info.map_or_else(String::new, |c| c.file.clone()),
        line: info.map_or(0, |c| c.line),
        count,
        budget_violations: 0,
        time: None,
        alloc_bytes: None,
        kept: None,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::budget::BudgetKind;
    use crate::events::Level;

    const BRIDGE: usize = 0x1000;

    fn info(id: usize, name: &str) -> CallsiteInfo {
        CallsiteInfo {
            id,
            is_span: true,
            level: Level::Info,
            name: name.to_owned(),
            target: "t".to_owned(),
            module_path: "t".to_owned(),
            file: "src/lib.rs".to_owned(),
            line: id as u32,
            fields: Vec::new(),
        }
    }

    /// Span callsites 8 (`outer`), 16 (`inner`), 24 (`leaf`); like the
    /// bridge's, they live as long as the process.
    fn lookup(id: usize) -> Option<&'static CallsiteInfo> {
        static SITES: std::sync::LazyLock<[CallsiteInfo; 3]> =
            std::sync::LazyLock::new(|| [info(8, "outer"), info(16, "inner"), info(24, "leaf")]);
        SITES.iter().find(|site| site.id == id)
    }

    fn busy(micros: u64) {
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_micros(micros) {
            std::hint::spin_loop();
        }
    }

    fn time_of<'a>(recorded: &'a Recorded, name: &str) -> &'a Time {
        recorded.callsites.iter().find(|c| c.name == name).and_then(|c| c.time.as_ref()).unwrap()
    }

    /// outer { busy; inner { busy; leaf; leaf }; inner { leaf } } inside a call.
    #[test]
    fn self_time_is_total_minus_children_on_a_nested_sequence() {
        let p = Profiler::new(Some(ProfileOptions::default()));
        p.begin_call(BRIDGE, "run");
        p.enter(BRIDGE, 1, 8);
        busy(300);
        p.enter(BRIDGE, 2, 16);
        busy(200);
        for span in [3, 4] {
            p.enter(BRIDGE, span, 24);
            busy(100);
            p.exit(BRIDGE, span, false);
        }
        p.exit(BRIDGE, 2, false);
        p.enter(BRIDGE, 5, 16);
        p.enter(BRIDGE, 6, 24);
        busy(100);
        p.exit(BRIDGE, 6, false);
        p.exit(BRIDGE, 5, false);
        p.exit(BRIDGE, 1, false);
        let usage = Usage { wall: Duration::from_millis(2), ..Usage::default() };
        p.end_call(BRIDGE, "run", &usage, &[], false, 0);

        let r = p.snapshot(&lookup, &[], "demo");
        let (outer, inner, leaf) = (time_of(&r, "outer"), time_of(&r, "inner"), time_of(&r, "leaf"));
        assert_eq!((outer.count(), inner.count(), leaf.count()), (1, 2, 3));
        assert_eq!(leaf.self_ns(), leaf.total_ns(), "a leaf's time is all its own");
        assert_eq!(inner.self_ns(), inner.total_ns() - leaf.total_ns());
        assert_eq!(outer.self_ns(), outer.total_ns() - inner.total_ns());
        assert!(leaf.total_ns() >= 300_000 && inner.self_ns() >= 200_000 && outer.self_ns() >= 300_000);

        let method = &r.methods[0];
        assert_eq!((method.method.as_str(), method.count), ("run", 1));
        assert_eq!(method.time.total_ns(), 2_000_000);
        assert_eq!(method.time.self_ns(), 2_000_000 - outer.total_ns(), "the call's time outside any span");

        let stacks: Vec<(&str, u64)> = r.stacks.iter().map(|s| (s.stack.as_str(), s.count)).collect();
        assert_eq!(
            stacks,
            [("demo.run", 1), ("demo.run;outer", 1), ("demo.run;outer;inner", 2), ("demo.run;outer;inner;leaf", 3)]
        );
        let self_sum: u64 = r.stacks.iter().map(|s| s.self_ns).sum();
        assert_eq!(self_sum, 2_000_000, "self times add up to the call's wall time");
    }

    #[test]
    fn out_of_order_exits_and_pauses() {
        let p = Profiler::new(Some(ProfileOptions::default()));
        p.enter(BRIDGE, 1, 8);
        p.enter(BRIDGE, 2, 16);
        // outer exits before inner (tracing allows it): inner's time is still inner's.
        p.exit(BRIDGE, 1, false);
        let pause = p.pause_begin();
        std::thread::sleep(Duration::from_millis(20));
        p.pause_end(pause);
        p.exit(BRIDGE, 2, false);
        let r = p.snapshot(&lookup, &[], "demo");
        assert!(time_of(&r, "inner").total_ns() < 10_000_000, "the pause is not inner's time");
        assert_eq!(time_of(&r, "outer").count(), 1);
        let stacks: Vec<&str> = r.stacks.iter().map(|s| s.stack.as_str()).collect();
        assert_eq!(stacks, ["outer", "outer;inner"]);
        // An exit of a span never entered is ignored.
        p.exit(BRIDGE, 99, false);
    }

    #[test]
    fn an_aborted_call_charges_the_spans_it_was_in() {
        let p = Profiler::new(Some(ProfileOptions::default()));
        p.begin_call(BRIDGE, "run");
        p.enter(BRIDGE, 1, 8);
        p.enter(BRIDGE, 2, 16);
        p.enter(BRIDGE, 3, 16);
        p.exit(BRIDGE, 3, true);
        p.exit(BRIDGE, 2, true);
        let violation = Violation {
            kind: BudgetKind::Duration,
            limit: 1,
            observed: 2,
            noticed_after: Duration::ZERO,
            at_end: None,
        };
        // outer (span 1) never exited: the call ends with it open.
        p.end_call(BRIDGE, "run", &Usage::default(), &[violation], true, 0);
        let r = p.snapshot(&lookup, &[], "demo");
        let charged: Vec<(&str, u64)> = r.callsites.iter().map(|c| (c.name.as_str(), c.budget_violations)).collect();
        assert_eq!(charged, [("inner", 1)], "outer never closed, so it has no interval to show");
        let m = &r.methods[0];
        assert_eq!((m.errors, m.budget_violations.get("max_duration").copied()), (1, Some(1)));
        FRAMES.with(|f| assert!(f.borrow().is_empty(), "the call's leftovers are gone"));

        // Stopped at a span's enter: no exit ever comes; the open spans are charged.
        p.begin_call(BRIDGE, "run");
        p.enter(BRIDGE, 7, 8);
        p.enter(BRIDGE, 8, 24);
        p.end_call(BRIDGE, "run", &Usage::default(), &[violation], true, 0);
        p.enter(BRIDGE, 9, 24);
        p.exit(BRIDGE, 9, false);
        let r = p.snapshot(&lookup, &[], "demo");
        let leaf = r.callsites.iter().find(|c| c.name == "leaf").unwrap();
        assert_eq!((leaf.count, leaf.budget_violations), (1, 1));
    }

    #[test]
    fn probes_events_and_span_cpu() {
        let p = Profiler::new(None);
        assert!(!p.is_on());
        p.configure(Some(ProfileOptions { span_cpu: true }));
        p.set_probe_count(2);
        p.probe_hit(1);
        p.probe_hit(1);
        p.probe_hit(7);
        p.event(24);
        p.enter(BRIDGE, 1, 8);
        busy(50);
        p.exit(BRIDGE, 1, false);
        let site = ProbeSiteInfo {
            index: 1,
            file: "src/lib.rs".into(),
            line: 45,
            column: 9,
            module_path: "demo".into(),
            function: "demo::f".into(),
            vars: Vec::new(),
        };
        let r = p.snapshot(&lookup, &[site.clone(), site], "demo");
        let kinds: Vec<(CallsiteKind, &str, u64)> =
            r.callsites.iter().map(|c| (c.kind, c.name.as_str(), c.count)).collect();
        assert_eq!(
            kinds,
            [(CallsiteKind::Span, "outer", 1), (CallsiteKind::Event, "leaf", 1), (CallsiteKind::Probe, "demo::f", 2)]
        );
        #[cfg(target_os = "linux")]
        assert!(time_of(&r, "outer").cpu_ns().is_some(), "span_cpu reads the thread's CPU clock");
        p.reset();
        assert!(p.snapshot(&lookup, &[], "demo").callsites.is_empty());
    }
}
