//! What the debug agent keeps per watched probe site: data breakpoints
//! (stop when a binding, or a path inside one, changes between two hits of
//! the site on the same thread) and the history ring (the bindings' values at
//! the last N hits, for the History scope, `prev(x)` and `history(x)`).
//!
//! Both run on the plugin's thread at every hit of a watched site, so the
//! steady state allocates nothing: a stored value is overwritten in place
//! (a string's buffer is reused), a full ring recycles its oldest entry, and
//! "unchanged" is decided by comparing the hit's value with the stored one
//! without building either as JSON.
//!
//! **Invariant:** a data breakpoint's id (`dataId`) names a probe site by
//! file, line and enclosing function, and the watched value by its path from
//! a binding (`input.user.id`), never by anything a build changes (an index in
//! the probe table, an address): it is re-resolved against each library a
//! reload brings, and is unverified, with the reason, when no probe of that
//! function binds that path any more.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ax_expr::{Env, HitCondition, Program, Value as ExprValue};
use parking_lot::Mutex;
use serde_json::Value;

use crate::bridge::{ProbeHit, ProbeSiteInfo, ProbeVar};

/// A value as kept between hits: scalars as themselves, text in a buffer
/// reused from one hit to the next.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) enum Stored {
    /// Nothing seen yet.
    #[default]
    Unset,
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    /// JSON text (a `Serialize` binding or what a path reads in one).
    Json(String),
    /// A `Debug` rendering.
    Debug(String),
    /// The path could not be read at that hit (a field that was absent).
    Missing(String),
}

/// The most bytes of a text value a history entry keeps (larger values are
/// cut, with `…`): history is a preview, not a recording.
pub(crate) const HISTORY_TEXT_LIMIT: usize = 256;

impl Stored {
    /// Overwrites `self` with `text` in `make`'s variant, reusing the buffer.
    fn put_text(&mut self, text: &str, limit: usize, make: fn(String) -> Stored) {
        let text = cut(text, limit);
        if let Stored::Str(buf) | Stored::Json(buf) | Stored::Debug(buf) | Stored::Missing(buf) = self {
            let mut buf = std::mem::take(buf);
            buf.clear();
            buf.push_str(text);
            *self = make(buf);
        } else {
            *self = make(text.to_owned());
        }
    }

    /// Stores a probe binding (text cut at `limit` bytes).
    pub(crate) fn set_var(&mut self, v: &ProbeVar<'_>, limit: usize) {
        match *v {
            ProbeVar::I64(x) => *self = Stored::Int(x),
            ProbeVar::U64(x) => *self = Stored::UInt(x),
            ProbeVar::F64(x) => *self = Stored::Float(x),
            ProbeVar::Bool(x) => *self = Stored::Bool(x),
            ProbeVar::Str(s) => self.put_text(s, limit, Stored::Str),
            ProbeVar::Json(s) => self.put_text(s.trim(), limit, Stored::Json),
            ProbeVar::Debug(s) => self.put_text(s, limit, Stored::Debug),
        }
    }

    /// Stores what an expression read.
    pub(crate) fn set_value(&mut self, v: &ExprValue<'_>) {
        match v {
            ExprValue::Null => *self = Stored::Null,
            ExprValue::Bool(x) => *self = Stored::Bool(*x),
            ExprValue::Int(x) => *self = Stored::Int(*x),
            ExprValue::UInt(x) => *self = Stored::UInt(*x),
            ExprValue::Float(x) => *self = Stored::Float(*x),
            ExprValue::Str(s) => self.put_text(s, usize::MAX, Stored::Str),
            ExprValue::String(s) => self.put_text(s, usize::MAX, Stored::Str),
            ExprValue::JsonText(s) => self.put_text(s.trim(), usize::MAX, Stored::Json),
            ExprValue::Debug(s) => self.put_text(s, usize::MAX, Stored::Debug),
            ExprValue::Json(j) => *self = Stored::Json(j.to_string()),
            other => *self = Stored::Json(other.to_json().to_string()),
        }
    }

    /// Whether `v` is what is stored (no allocation for scalars and text).
    pub(crate) fn holds(&self, v: &ExprValue<'_>) -> bool {
        match (self, v) {
            (Stored::Null, ExprValue::Null) => true,
            (Stored::Bool(a), ExprValue::Bool(b)) => a == b,
            (Stored::Int(a), ExprValue::Int(b)) => a == b,
            (Stored::UInt(a), ExprValue::UInt(b)) => a == b,
            // A value seeded from a stop's JSON reads back as `Int`, the hit as `UInt`.
            (Stored::Int(a), ExprValue::UInt(b)) => u64::try_from(*a) == Ok(*b),
            (Stored::UInt(a), ExprValue::Int(b)) => u64::try_from(*b) == Ok(*a),
            (Stored::Float(a), ExprValue::Float(b)) => a.to_bits() == b.to_bits(),
            (Stored::Str(a), ExprValue::Str(b)) => a == b,
            (Stored::Str(a), ExprValue::String(b)) => a == b,
            (Stored::Json(a), ExprValue::JsonText(b)) => a == b.trim(),
            (Stored::Debug(a), ExprValue::Debug(b)) => a == b,
            (Stored::Json(a), ExprValue::Json(j)) => serde_json::from_str::<Value>(a).is_ok_and(|v| v == **j),
            (Stored::Json(a), ExprValue::Owned(j)) => serde_json::from_str::<Value>(a).is_ok_and(|v| v == **j),
            _ => false,
        }
    }

    /// As an expression value (for `prev(x)` and `history(x)`).
    pub(crate) fn as_expr(&self) -> ExprValue<'_> {
        match self {
            Stored::Unset | Stored::Null | Stored::Missing(_) => ExprValue::Null,
            Stored::Bool(x) => ExprValue::Bool(*x),
            Stored::Int(x) => ExprValue::Int(*x),
            Stored::UInt(x) => ExprValue::UInt(*x),
            Stored::Float(x) => ExprValue::Float(*x),
            Stored::Str(s) => ExprValue::Str(s),
            Stored::Json(s) => ExprValue::JsonText(s),
            Stored::Debug(s) => ExprValue::Debug(s),
        }
    }

    /// As JSON, for the editor.
    pub(crate) fn to_json(&self) -> Value {
        match self {
            Stored::Json(s) => serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone())),
            Stored::Missing(why) => Value::String(format!("<{why}>")),
            other => other.as_expr().to_json(),
        }
    }

    /// As a user reads it in a stop's description: JSON, strings quoted.
    pub(crate) fn show(&self) -> String {
        match self {
            Stored::Missing(why) => format!("<{why}>"),
            Stored::Json(s) => s.clone(),
            other => other.to_json().to_string(),
        }
    }
}

fn cut(text: &str, limit: usize) -> &str {
    if text.len() <= limit {
        return text;
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Where a data breakpoint looks: a probe site (file, line, function) and a
/// path from one of its bindings. Written as `file|line|function|path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataId {
    pub file: String,
    pub line: u32,
    pub function: String,
    pub path: String,
}

impl DataId {
    pub fn parse(text: &str) -> Option<DataId> {
        let mut parts = text.splitn(4, '|');
        let file = parts.next()?.to_owned();
        let line = parts.next()?.parse().ok()?;
        let function = parts.next()?.to_owned();
        let path = parts.next()?.trim().to_owned();
        (!path.is_empty()).then_some(DataId { file, line, function, path })
    }

    /// The site of `sites` this id names: one in the same file and function
    /// whose bindings the path reads, the nearest to the line it was set on.
    pub(crate) fn resolve<'s>(&self, sites: &'s [ProbeSiteInfo]) -> Result<(&'s ProbeSiteInfo, Program), String> {
        let candidates = sites.iter().filter(|s| s.file == self.file && s.function == self.function);
        let mut best: Option<(&ProbeSiteInfo, Program)> = None;
        let mut why = None;
        for site in candidates {
            match ax_expr::compile(&self.path, &site.vars) {
                Ok(program) => {
                    if best.as_ref().is_none_or(|(b, _)| site.line.abs_diff(self.line) < b.line.abs_diff(self.line)) {
                        best = Some((site, program));
                    }
                }
                Err(e) => why = Some(e.render()),
            }
        }
        best.ok_or_else(|| match why {
            Some(_) => format!(
                "`{}` is no longer a binding of the probe in `{}` ({}): the current build does not bind it",
                self.path, self.function, self.file
            ),
            None => format!("no probe in `{}` ({}) in the current build", self.function, self.file),
        })
    }
}

impl std::fmt::Display for DataId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}|{}|{}|{}", self.file, self.line, self.function, self.path)
    }
}

/// A small number per thread, cheaper to read than a `ThreadId`.
pub(crate) fn thread_key() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static KEY: u64 = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    KEY.with(|k| *k)
}

/// One data breakpoint, placed on a site.
#[derive(Debug)]
pub(crate) struct DataWatch {
    pub(crate) id: u64,
    pub(crate) data_id: DataId,
    /// The watched path, compiled over the site's bindings.
    pub(crate) target: Program,
    pub(crate) condition: Option<Program>,
    pub(crate) hit_condition: Option<HitCondition>,
    /// Changes seen (what the hit condition counts).
    pub(crate) hits: AtomicU64,
    /// The value at the last hit, per thread.
    last: Mutex<Vec<(u64, Stored)>>,
}

/// A change a data breakpoint saw: old and new, as the user reads them.
pub(crate) struct Change {
    pub(crate) old: String,
    pub(crate) new: String,
}

impl DataWatch {
    pub(crate) fn new(
        id: u64,
        data_id: DataId,
        target: Program,
        condition: Option<Program>,
        hit_condition: Option<HitCondition>,
    ) -> DataWatch {
        DataWatch {
            id,
            data_id,
            target,
            condition,
            hit_condition,
            hits: AtomicU64::new(0),
            last: Mutex::new(Vec::new()),
        }
    }

    /// Records the value `thread` sees now (when set while stopped there:
    /// the value the user is looking at is the one a change is measured from).
    /// Objects and arrays are not seeded: the stop's JSON is a re-serialisation
    /// (keys reordered), which the first hit's text need not match.
    pub(crate) fn seed(&self, thread: u64, value: &ExprValue<'_>) {
        if matches!(value, ExprValue::Json(_) | ExprValue::JsonText(_) | ExprValue::Owned(_)) {
            return;
        }
        let mut last = self.last.lock();
        match last.iter_mut().find(|(t, _)| *t == thread) {
            Some((_, stored)) => stored.set_value(value),
            None => {
                let mut stored = Stored::Unset;
                stored.set_value(value);
                last.push((thread, stored));
            }
        }
    }

    /// Reads the watched value at this hit and compares it with the last one
    /// `thread` saw; returns the change, if any (the first hit on a thread
    /// only records).
    pub(crate) fn observe(&self, thread: u64, env: &impl Env) -> Option<Change> {
        let now = self.target.eval(env);
        let mut last = self.last.lock();
        let index = match last.iter().position(|(t, _)| *t == thread) {
            Some(i) => i,
            None => {
                last.push((thread, Stored::Unset));
                last.len() - 1
            }
        };
        let stored = &mut last[index].1;
        let same = match &now {
            Ok(v) => stored.holds(v),
            Err(e) => matches!(stored, Stored::Missing(why) if *why == e.to_string()),
        };
        if same {
            return None;
        }
        let first = *stored == Stored::Unset;
        let old = stored.show();
        match &now {
            Ok(v) => stored.set_value(v),
            Err(e) => *stored = Stored::Missing(e.to_string()),
        }
        (!first).then(|| Change { old, new: stored.show() })
    }
}

/// One earlier hit of a site.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) hit: u64,
    pub(crate) at: Instant,
    pub(crate) values: Vec<Stored>,
}

/// The last `capacity` hits of one site, oldest first.
#[derive(Debug)]
pub(crate) struct Ring {
    capacity: usize,
    /// Hits recorded so far (the next one's number is this plus one).
    hits: u64,
    pub(crate) entries: VecDeque<Entry>,
}

impl Ring {
    pub(crate) fn new(capacity: usize) -> Ring {
        Ring { capacity, hits: 0, entries: VecDeque::with_capacity(capacity) }
    }

    /// Records `hit` as the newest entry (recycling the oldest when full).
    pub(crate) fn record(&mut self, hit: &ProbeHit<'_>) {
        self.hits += 1;
        let mut entry = if self.entries.len() >= self.capacity {
            match self.entries.pop_front() {
                Some(entry) => entry,
                None => return,
            }
        } else {
            Entry { hit: 0, at: Instant::now(), values: Vec::with_capacity(hit.len()) }
        };
        entry.hit = self.hits;
        entry.at = Instant::now();
        entry.values.resize(hit.len(), Stored::Unset);
        for (i, stored) in entry.values.iter_mut().enumerate() {
            stored.set_var(&hit.value(i), HISTORY_TEXT_LIMIT);
        }
        self.entries.push_back(entry);
    }

    /// The hit `back` hits before the one being handled (1: the previous).
    pub(crate) fn back(&self, back: usize) -> Option<&Entry> {
        self.entries.len().checked_sub(back).and_then(|i| self.entries.get(i))
    }

    /// The entries as the editor sees them, newest first, with their age at `now`.
    pub(crate) fn snapshot(&self, names: &[String], now: Instant) -> Vec<HistoryEntry> {
        self.entries
            .iter()
            .rev()
            .map(|e| HistoryEntry {
                hit: e.hit,
                age: now.saturating_duration_since(e.at),
                values: names.iter().cloned().zip(e.values.iter().map(Stored::to_json)).collect(),
            })
            .collect()
    }
}

/// An earlier hit of the probe a thread stopped at.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryEntry {
    /// Its number among the hits the history saw (1: the first).
    pub hit: u64,
    /// How long before the stop it happened.
    pub age: Duration,
    /// The bindings then (text longer than 256 bytes cut).
    pub values: Vec<(String, Value)>,
}
