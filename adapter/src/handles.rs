//! Variable references for the values of one stop that expand (objects and
//! arrays): a handle names a value by its path from a root (the probe's
//! bindings, the call, a span frame's fields, an evaluated expression), not by
//! a copy of it, so expanding the same value twice gives the same handle, and
//! the table holds paths, never clones of the values.
//!
//! **Invariant:** the table is bounded: at most [`MAX_HANDLES`] handles and
//! [`MAX_EVALUATED`] evaluated results per stop; past that the least recently
//! used handle goes, and asking for it again is an error that says to expand
//! the value again from its parent.

use std::collections::{HashMap, VecDeque};

use serde_json::Value;

/// The most handles a stop keeps.
pub(crate) const MAX_HANDLES: usize = 4096;
/// The most evaluated results a stop keeps (for expanding them).
pub(crate) const MAX_EVALUATED: usize = 64;

/// Where a handle's path starts.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Root {
    Locals,
    Call,
    /// Span frame `i`'s fields.
    Frame(usize),
    /// The result of evaluation number `n` of this stop.
    Evaluated(u64),
    /// The History scope: entry `i` is the first step.
    History,
}

/// One step down into a value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Step {
    Key(String),
    Index(usize),
}

/// A value's place: its root and the steps from it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Place {
    pub(crate) root: Root,
    pub(crate) path: Vec<Step>,
}

impl Place {
    pub(crate) fn child(&self, step: Step) -> Place {
        let mut path = self.path.clone();
        path.push(step);
        Place { root: self.root.clone(), path }
    }
}

/// The handles of one stop. See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Handles {
    by_place: HashMap<Place, i64>,
    by_handle: HashMap<i64, (Place, u64)>,
    issued: i64,
    clock: u64,
    /// Evaluated results, oldest first: (number, value).
    evaluated: VecDeque<(u64, Value)>,
    evaluations: u64,
}

impl Handles {
    /// The handle of `place` (offset by `base`), the same one each time while it lives.
    pub(crate) fn handle(&mut self, place: Place, base: i64) -> i64 {
        self.clock += 1;
        if let Some(&handle) = self.by_place.get(&place) {
            if let Some(entry) = self.by_handle.get_mut(&handle) {
                entry.1 = self.clock;
            }
            return handle;
        }
        if self.by_handle.len() >= MAX_HANDLES
            && let Some((&oldest, _)) = self.by_handle.iter().min_by_key(|(_, (_, used))| *used)
            && let Some((place, _)) = self.by_handle.remove(&oldest)
        {
            self.by_place.remove(&place);
        }
        let handle = base + self.issued;
        self.issued += 1;
        self.by_place.insert(place.clone(), handle);
        self.by_handle.insert(handle, (place, self.clock));
        handle
    }

    /// The place of `handle`, or why there is none.
    pub(crate) fn place(&mut self, handle: i64) -> Result<Place, String> {
        self.clock += 1;
        let issued_up_to = self.issued_up_to();
        match self.by_handle.get_mut(&handle) {
            Some((place, used)) => {
                *used = self.clock;
                Ok(place.clone())
            }
            None if (crate::session::EXPANDABLE..issued_up_to).contains(&handle) => Err(format!(
                "variablesReference {handle} has expired (more than {MAX_HANDLES} values were expanded \
                 in this stop): expand the value again from its parent"
            )),
            None => Err(format!("unknown variablesReference {handle}")),
        }
    }

    fn issued_up_to(&self) -> i64 {
        crate::session::EXPANDABLE + self.issued
    }

    /// Keeps an evaluated result; returns its root.
    pub(crate) fn evaluated(&mut self, value: Value) -> Root {
        self.evaluations += 1;
        if self.evaluated.len() >= MAX_EVALUATED {
            self.evaluated.pop_front();
        }
        self.evaluated.push_back((self.evaluations, value));
        Root::Evaluated(self.evaluations)
    }

    /// Evaluated result `n`, if still kept.
    pub(crate) fn evaluation(&self, n: u64) -> Option<&Value> {
        self.evaluated.iter().find(|(m, _)| *m == n).map(|(_, v)| v)
    }
}

/// The value at `path` below `value`.
pub(crate) fn descend<'v>(mut value: &'v Value, path: &[Step]) -> Option<&'v Value> {
    for step in path {
        value = match (value, step) {
            (Value::Object(map), Step::Key(key)) => map.get(key)?,
            (Value::Array(items), Step::Index(i)) => items.get(*i)?,
            _ => return None,
        };
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_place_has_the_same_handle_and_the_table_is_bounded() {
        let mut handles = Handles::default();
        let place = Place { root: Root::Locals, path: vec![Step::Key("a".to_owned())] };
        let first = handles.handle(place.clone(), 10_000);
        assert_eq!(handles.handle(place.clone(), 10_000), first);
        for i in 0..MAX_HANDLES * 2 {
            handles.handle(place.child(Step::Index(i)), 10_000);
        }
        assert!(handles.by_handle.len() <= MAX_HANDLES);
        let expired = handles.place(first).unwrap_err();
        assert!(expired.contains("has expired") && expired.contains("expand the value again"), "{expired}");
        assert_eq!(handles.place(99_999_999).unwrap_err(), "unknown variablesReference 99999999");
    }
}
