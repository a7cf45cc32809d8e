//! What expressions compute with: [`Value`], borrowed from the program being
//! debugged wherever possible, and [`Env`], how a probe hit (or anything else)
//! hands its bindings to an expression by slot.
//!
//! Both are deliberately free of any runtime type: `ax-runtime` implements
//! [`Env`] for its probe hits by mapping each binding to a `Value` without
//! allocating. This file also holds the conversions out of a `Value`: text for
//! logpoints ([`std::fmt::Display`]) and owned JSON for watch and hover
//! ([`Value::to_json`]).

use std::fmt;

use crate::json;

/// A value during evaluation. Scalars are held by value, text and JSON are
/// borrowed from the environment (or from the program, for literals).
///
/// Integers keep their signedness (`Int` for `i64`, `UInt` for `u64`), and
/// compare by mathematical value across the two: `UInt(u64::MAX) > Int(-1)`.
#[derive(Clone, Debug, PartialEq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(&'a str),
    /// A string that had to be built during evaluation: a JSON string with
    /// escapes, read out of [`Value::JsonText`].
    String(String),
    /// A parsed JSON value (a span field, a call's input).
    Json(&'a serde_json::Value),
    /// JSON text (a `Serialize` binding), scanned in place by field access and
    /// indexing: never parsed into a tree.
    JsonText(&'a str),
    /// The `Debug` rendering of a value that is not `Serialize`. It can be
    /// shown but not computed with: every operator rejects it.
    Debug(&'a str),
    /// A JSON value built during evaluation (`history(x)`'s array).
    Owned(Box<serde_json::Value>),
}

/// The bindings an expression reads, by the slot [`crate::compile`] resolved
/// each name to (the name's index in the `names` it was given).
///
/// `None` means the binding has no value here; evaluating a variable without
/// a value is an error naming it.
pub trait Env {
    fn get(&self, slot: usize) -> Option<Value<'_>>;

    /// Binding `slot` as it was `back` hits ago (1: the previous hit), for
    /// `prev(x)` and `history(x)`; `None` where that hit is not kept
    /// (`prev` then reads `null`). By default no earlier hit is kept.
    fn earlier(&self, _slot: usize, _back: usize) -> Option<Value<'_>> {
        None
    }

    /// How many earlier hits [`Env::earlier`] has (`history(x)`'s length).
    fn kept(&self) -> usize {
        0
    }
}

impl<T: Env + ?Sized> Env for &T {
    fn get(&self, slot: usize) -> Option<Value<'_>> {
        (**self).get(slot)
    }

    fn earlier(&self, slot: usize, back: usize) -> Option<Value<'_>> {
        (**self).earlier(slot, back)
    }

    fn kept(&self) -> usize {
        (**self).kept()
    }
}

/// Slot `i` is element `i` (pass a `Vec` as a slice: `&values[..]`).
impl Env for [Value<'_>] {
    fn get(&self, slot: usize) -> Option<Value<'_>> {
        <[Value<'_>]>::get(self, slot).cloned()
    }
}

impl Env for [serde_json::Value] {
    fn get(&self, slot: usize) -> Option<Value<'_>> {
        <[serde_json::Value]>::get(self, slot).map(Value::Json)
    }
}

/// An environment with no bindings (for expressions compiled without names).
impl Env for () {
    fn get(&self, _slot: usize) -> Option<Value<'_>> {
        None
    }
}

impl<'a> Value<'a> {
    /// What kind of value this is, with its article, for messages:
    /// "an integer", "a string", "an object".
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) | Value::UInt(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Str(_) | Value::String(_) => "a string",
            Value::Json(v) => match v {
                serde_json::Value::Null => "null",
                serde_json::Value::Bool(_) => "a boolean",
                serde_json::Value::Number(n) if n.is_f64() => "a float",
                serde_json::Value::Number(_) => "an integer",
                serde_json::Value::String(_) => "a string",
                serde_json::Value::Array(_) => "an array",
                serde_json::Value::Object(_) => "an object",
            },
            Value::JsonText(text) => json::kind(text).type_name(),
            Value::Debug(_) => "a Debug rendering (its type is not Serialize)",
            Value::Owned(v) => Value::Json(v).type_name(),
        }
    }

    /// An [`Value::Owned`] value as borrowed JSON, so that every operator
    /// reads it as it reads a span field; anything else as it is.
    pub(crate) fn as_json(&self) -> Value<'_> {
        match self {
            Value::Owned(v) => Value::Json(v),
            other => other.clone(),
        }
    }

    /// The value with nothing borrowed (for what is read out of an
    /// [`Value::Owned`] value, which lives only as long as its node).
    pub(crate) fn detach(self) -> Value<'static> {
        match self {
            Value::Null => Value::Null,
            Value::Bool(b) => Value::Bool(b),
            Value::Int(v) => Value::Int(v),
            Value::UInt(v) => Value::UInt(v),
            Value::Float(v) => Value::Float(v),
            Value::Str(s) | Value::Debug(s) => Value::String(s.to_owned()),
            Value::String(s) => Value::String(s),
            Value::Owned(v) => Value::Owned(v),
            json @ (Value::Json(_) | Value::JsonText(_)) => match json.to_json() {
                serde_json::Value::String(s) => Value::String(s),
                other => match from_json(&other) {
                    Value::Null => Value::Null,
                    Value::Bool(b) => Value::Bool(b),
                    Value::Int(v) => Value::Int(v),
                    Value::UInt(v) => Value::UInt(v),
                    Value::Float(v) => Value::Float(v),
                    _ => Value::Owned(Box::new(other)),
                },
            },
        }
    }

    /// The text of a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// A boolean value.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// Scalars inside JSON become plain values (`Json(5)` → `Int(5)`,
    /// `JsonText("\"a\"")` → `Str("a")`); arrays and objects stay JSON.
    /// Every operator sees normalised values, so JSON and native bindings
    /// behave alike.
    pub(crate) fn normalize(self) -> Result<Value<'a>, json::JsonError> {
        match self {
            Value::Json(v) => Ok(from_json(v)),
            Value::JsonText(text) => json::to_value(text),
            other => Ok(other),
        }
    }

    /// The value as owned JSON, for watch, hover and the REPL.
    ///
    /// A float that JSON cannot hold (`NaN`, infinities) becomes its text;
    /// JSON text that does not parse becomes a string of that text; a `Debug`
    /// rendering becomes a string.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(v) => J::from(*v),
            Value::UInt(v) => J::from(*v),
            Value::Float(v) => serde_json::Number::from_f64(*v).map_or_else(|| J::String(v.to_string()), J::Number),
            Value::Str(s) | Value::Debug(s) => J::String((*s).to_owned()),
            Value::String(s) => J::String(s.clone()),
            Value::Json(v) => (*v).clone(),
            Value::JsonText(text) => serde_json::from_str(text).unwrap_or_else(|_| J::String((*text).to_owned())),
            Value::Owned(v) => (**v).clone(),
        }
    }
}

/// A JSON value as a [`Value`]: scalars become plain values, composites stay JSON.
pub(crate) fn from_json(v: &serde_json::Value) -> Value<'_> {
    use serde_json::Value as J;
    match v {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Int(i)
            } else if let Some(u) = n.as_u64() {
                Value::UInt(u)
            } else {
                Value::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        J::String(s) => Value::Str(s),
        J::Array(_) | J::Object(_) => Value::Json(v),
    }
}

/// How a value reads in a logpoint: strings without quotes, floats always
/// with a fractional part or exponent, JSON compact (JSON text as it came).
impl fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(v) => write!(f, "{v}"),
            Value::UInt(v) => write!(f, "{v}"),
            Value::Float(v) => write!(f, "{v:?}"),
            Value::Str(s) | Value::Debug(s) => f.write_str(s),
            Value::String(s) => f.write_str(s),
            Value::Json(serde_json::Value::String(s)) => f.write_str(s),
            Value::Json(v) => write!(f, "{v}"),
            Value::JsonText(text) => f.write_str(text.trim()),
            Value::Owned(v) => write!(f, "{v}"),
        }
    }
}
