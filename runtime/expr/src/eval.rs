//! The compiled form of an expression, [`Node`], and what each node means
//! when evaluated against an [`Env`].
//!
//! A tree of nodes, walked recursively, generic over the environment so that
//! reading a binding is an inlined `match`, not a virtual call. Conditions run
//! through [`Node::test`], which yields a `bool` directly: `count > 10 &&
//! words < 3` builds no intermediate `Value` for its comparisons or its `&&`.
//! The common case, integers on both sides, is the first arm of every
//! operator; mixed signedness, floats, strings and JSON take the slower arms.
//!
//! Nothing here allocates unless it must: reading a field of a JSON text, or
//! an error, which is built only on the failure path (`#[cold]`).

use std::cmp::Ordering;

use crate::error::{EvalError, EvalErrorKind};
use crate::json::{self, Kind};
use crate::lex::Span;
use crate::parse::BinOp;
use crate::value::{Env, Value, from_json};

/// A node of a compiled expression. Its span locates the source text that
/// error messages quote.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) kind: NodeKind,
    pub(crate) span: Span,
}

#[derive(Debug)]
pub(crate) enum NodeKind {
    Lit(Lit),
    Var(usize),
    Field(Box<Node>, Box<str>),
    Index(Box<Node>, Box<Node>),
    Len(Box<Node>),
    Contains(Box<Node>, Box<Node>),
    StartsWith(Box<Node>, Box<Node>),
    EndsWith(Box<Node>, Box<Node>),
    Not(Box<Node>),
    Neg(Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    /// A comparison: `==`, `!=`, `<`, `<=`, `>`, `>=`.
    Cmp(BinOp, Box<Node>, Box<Node>),
    /// A comparison of a binding with a literal (`count > 10`, or `10 < count`
    /// with the operator flipped), the most common condition: no child nodes
    /// to visit, and two integers compare without building a `Value`.
    /// `flipped` records that the source had the literal first, so that
    /// errors quote the operands in the source's order.
    CmpVarLit {
        op: BinOp,
        slot: usize,
        var: Span,
        lit: Lit,
        flipped: bool,
    },
    /// Arithmetic: `+`, `-`, `*`, `/`, `%`.
    Arith(BinOp, Box<Node>, Box<Node>),
    /// `prev(x)`: `x` evaluated one hit further back (`null` where there
    /// is no such hit).
    Prev(Box<Node>),
    /// `history(x)`: `x` at each earlier hit the environment keeps, newest
    /// first, as an array.
    History(Box<Node>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lit {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(Box<str>),
}

impl Lit {
    fn value(&self) -> Value<'_> {
        match self {
            Lit::Null => Value::Null,
            Lit::Bool(b) => Value::Bool(*b),
            Lit::Int(v) => Value::Int(*v),
            Lit::UInt(v) => Value::UInt(*v),
            Lit::Float(v) => Value::Float(*v),
            Lit::Str(s) => Value::Str(s),
        }
    }
}

/// What evaluation needs besides the node: the bindings, and the source for
/// messages.
pub(crate) struct Cx<'a, E: ?Sized> {
    pub(crate) env: &'a E,
    pub(crate) src: &'a str,
    /// How many hits back bindings are read (0: this hit; inside `prev`, 1).
    pub(crate) back: usize,
}

impl<'a, E: Env + ?Sized> Cx<'a, E> {
    /// Binding `slot` at this context's hit; `null` for an earlier hit the
    /// environment does not have.
    #[inline(always)]
    fn get(&self, slot: usize) -> Option<Value<'a>> {
        if self.back == 0 { self.env.get(slot) } else { Some(self.env.earlier(slot, self.back).unwrap_or(Value::Null)) }
    }

    fn further(&self, by: usize) -> Cx<'a, E> {
        Cx { env: self.env, src: self.src, back: self.back + by }
    }
}

/// Errors are boxed inside the evaluator: a `Result` the size of a `Value`
/// comes back in registers, and the success path never touches the error.
type Result<T> = std::result::Result<T, Box<EvalError>>;

#[cold]
#[inline(never)]
fn fail(cx_src: &str, span: Span, kind: EvalErrorKind) -> Box<EvalError> {
    Box::new(EvalError { expr: span.text(cx_src).trim().to_owned(), kind })
}

impl Node {
    /// Evaluates to a value.
    pub(crate) fn eval<'a, E: Env + ?Sized>(&'a self, cx: &Cx<'a, E>) -> Result<Value<'a>> {
        match &self.kind {
            NodeKind::Lit(lit) => Ok(lit.value()),
            NodeKind::Var(slot) => var(*slot, self.span, cx),
            NodeKind::Cmp(..)
            | NodeKind::CmpVarLit { .. }
            | NodeKind::And(..)
            | NodeKind::Or(..)
            | NodeKind::Not(_) => self.test(cx).map(Value::Bool),
            NodeKind::Contains(..) | NodeKind::StartsWith(..) | NodeKind::EndsWith(..) => {
                self.test(cx).map(Value::Bool)
            }
            NodeKind::Arith(op, l, r) => {
                let (a, b) = (l.operand(cx)?, r.operand(cx)?);
                arith(*op, &a, &b).map_err(|kind| fail(cx.src, self.span, kind))
            }
            NodeKind::Neg(operand) => {
                let v = operand.eval(cx)?;
                neg(&v).map_err(|kind| fail(cx.src, self.span, kind))
            }
            NodeKind::Field(base, name) => {
                let base_value = base.eval(cx)?;
                if let Value::Owned(doc) = &base_value {
                    return field(&Value::Json(doc), name).map(Value::detach).map_err(|k| fail(cx.src, self.span, k));
                }
                field(&base_value, name).map_err(|kind| fail(cx.src, self.span, kind))
            }
            NodeKind::Index(base, index) => {
                let base_value = base.eval(cx)?;
                let index_value = index.eval(cx)?;
                if let Value::Owned(doc) = &base_value {
                    let found = element(&Value::Json(doc), &index_value);
                    return found.map(Value::detach).map_err(|kind| fail(cx.src, self.span, kind));
                }
                element(&base_value, &index_value).map_err(|kind| fail(cx.src, self.span, kind))
            }
            NodeKind::Len(base) => {
                let v = base.eval(cx)?;
                len(&v.as_json()).map(|n| Value::Int(n as i64)).map_err(|kind| fail(cx.src, self.span, kind))
            }
            NodeKind::Prev(inner) => inner.eval(&cx.further(1)),
            NodeKind::History(inner) => {
                let kept = cx.env.kept().saturating_sub(cx.back);
                let items = (1..=kept).map(|back| inner.eval(&cx.further(back)).map(|v| v.to_json()));
                Ok(Value::Owned(Box::new(serde_json::Value::Array(items.collect::<Result<_>>()?))))
            }
        }
    }

    /// Evaluates an operand: leaves (a binding, a literal) inline, anything
    /// else through the recursive [`Node::eval`].
    #[inline(always)]
    fn operand<'a, E: Env + ?Sized>(&'a self, cx: &Cx<'a, E>) -> Result<Value<'a>> {
        match &self.kind {
            NodeKind::Var(slot) => var(*slot, self.span, cx),
            NodeKind::Lit(lit) => Ok(lit.value()),
            _ => self.eval(cx),
        }
    }

    /// Evaluates a condition: a boolean, or an error (never truthiness).
    ///
    /// Only the hot shapes are here (comparisons and boolean operators), so
    /// the recursion keeps a small stack frame; the rest is in `test_other`.
    pub(crate) fn test<E: Env + ?Sized>(&self, cx: &Cx<'_, E>) -> Result<bool> {
        match &self.kind {
            NodeKind::Cmp(op, l, r) => {
                let (a, b) = (l.operand(cx)?, r.operand(cx)?);
                compare(*op, &a, &b).map_err(|kind| fail(cx.src, self.span, kind))
            }
            NodeKind::CmpVarLit { op, slot, var: var_span, lit, flipped } => {
                let a = match cx.get(*slot) {
                    Some(Value::Int(x)) => match lit {
                        Lit::Int(k) => return Ok(holds(*op, x.cmp(k))),
                        _ => Value::Int(x),
                    },
                    Some(v @ (Value::UInt(_) | Value::Float(_) | Value::Bool(_) | Value::Str(_))) => v,
                    other => var_other(other, *var_span, cx)?,
                };
                let b = lit.value();
                compare(*op, &a, &b).map_err(|kind| match (kind, flipped) {
                    (EvalErrorKind::Mismatch { left, right, .. }, true) => {
                        let op = flip(*op).symbol();
                        fail(cx.src, self.span, EvalErrorKind::Mismatch { op, left: right, right: left })
                    }
                    (kind, _) => fail(cx.src, self.span, kind),
                })
            }
            NodeKind::And(l, r) => Ok(l.test(cx)? && r.test(cx)?),
            NodeKind::Or(l, r) => Ok(l.test(cx)? || r.test(cx)?),
            NodeKind::Not(operand) => Ok(!operand.test(cx)?),
            _ => self.test_other(cx),
        }
    }

    #[inline(never)]
    fn test_other<E: Env + ?Sized>(&self, cx: &Cx<'_, E>) -> Result<bool> {
        match &self.kind {
            NodeKind::Lit(Lit::Bool(b)) => Ok(*b),
            NodeKind::Contains(base, arg) => {
                let (haystack, needle) = (base.eval(cx)?, arg.eval(cx)?);
                contains(&haystack.as_json(), &needle).map_err(|kind| fail(cx.src, self.span, kind))
            }
            NodeKind::StartsWith(base, arg) | NodeKind::EndsWith(base, arg) => {
                let (s, affix) = (base.eval(cx)?, arg.eval(cx)?);
                let (s, affix) = match (s.as_str(), affix.as_str()) {
                    (Some(s), Some(affix)) => (s, affix),
                    (None, _) => return Err(fail(cx.src, base.span, expected("a string", &s))),
                    (_, None) => return Err(fail(cx.src, arg.span, expected("a string", &affix))),
                };
                Ok(if matches!(self.kind, NodeKind::StartsWith(..)) {
                    s.starts_with(affix)
                } else {
                    s.ends_with(affix)
                })
            }
            _ => match self.eval(cx)? {
                Value::Bool(b) => Ok(b),
                other => {
                    Err(fail(cx.src, self.span, expected("a boolean (conditions are not truthy or falsy)", &other)))
                }
            },
        }
    }
}

/// Reads binding `slot`; `span` is the variable in the source.
#[inline(always)]
fn var<'a, E: Env + ?Sized>(slot: usize, span: Span, cx: &Cx<'a, E>) -> Result<Value<'a>> {
    match cx.get(slot) {
        Some(v @ (Value::Int(_) | Value::UInt(_) | Value::Float(_) | Value::Bool(_) | Value::Str(_))) => Ok(v),
        other => var_other(other, span, cx),
    }
}

/// A binding that is JSON (read its scalars), or missing.
#[inline(never)]
fn var_other<'a, E: Env + ?Sized>(v: Option<Value<'a>>, span: Span, cx: &Cx<'a, E>) -> Result<Value<'a>> {
    match v {
        Some(v) => v.normalize().map_err(|e| fail(cx.src, span, e.into())),
        None => Err(fail(cx.src, span, EvalErrorKind::Unbound)),
    }
}

/// The comparison with its operands swapped: `a < b` is `b > a`.
pub(crate) fn flip(op: BinOp) -> BinOp {
    match op {
        BinOp::Lt => BinOp::Gt,
        BinOp::Le => BinOp::Ge,
        BinOp::Gt => BinOp::Lt,
        BinOp::Ge => BinOp::Le,
        other => other,
    }
}

/// Whether `order` satisfies the comparison `op`.
#[inline(always)]
fn holds(op: BinOp, order: Ordering) -> bool {
    match op {
        BinOp::Eq => order.is_eq(),
        BinOp::Ne => order.is_ne(),
        BinOp::Lt => order.is_lt(),
        BinOp::Le => order.is_le(),
        BinOp::Gt => order.is_gt(),
        _ => order.is_ge(),
    }
}

fn expected(what: &'static str, found: &Value<'_>) -> EvalErrorKind {
    EvalErrorKind::Expected { expected: what, found: found.type_name() }
}

fn mismatch(op: BinOp, a: &Value<'_>, b: &Value<'_>) -> EvalErrorKind {
    EvalErrorKind::Mismatch { op: op.symbol(), left: a.type_name(), right: b.type_name() }
}

/// An integer of either signedness, widened.
fn int(v: &Value<'_>) -> Option<i128> {
    match *v {
        Value::Int(i) => Some(i128::from(i)),
        Value::UInt(u) => Some(i128::from(u)),
        _ => None,
    }
}

/// Orders an integer and a float exactly (no rounding of the integer to
/// `f64`); `None` when the float is NaN.
fn cmp_int_float(i: i128, f: f64) -> Option<Ordering> {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    const TWO_64: f64 = 18_446_744_073_709_551_616.0;
    if f.is_nan() {
        None
    } else if f >= TWO_64 {
        Some(Ordering::Less)
    } else if f < -TWO_63 {
        Some(Ordering::Greater)
    } else {
        // In range, the integral part is exact as an i128.
        let whole = f.trunc();
        Some(i.cmp(&(whole as i128)).then_with(|| 0.0f64.partial_cmp(&(f - whole)).unwrap_or(Ordering::Equal)))
    }
}

/// How two numbers order, or `None` if either is not a number; the inner
/// `None` is an unordered pair (a NaN).
fn cmp_numbers(a: &Value<'_>, b: &Value<'_>) -> Option<Option<Ordering>> {
    Some(match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::UInt(x), Value::UInt(y)) => Some(x.cmp(y)),
        (Value::Float(x), Value::Float(y)) => x.partial_cmp(y),
        (Value::Float(x), _) => cmp_int_float(int(b)?, *x).map(Ordering::reverse),
        (_, Value::Float(y)) => cmp_int_float(int(a)?, *y),
        _ => int(a)?.partial_cmp(&int(b)?),
    })
}

fn is_composite(v: &Value<'_>) -> bool {
    match v {
        Value::Json(j) => j.is_array() || j.is_object(),
        Value::Owned(j) => j.is_array() || j.is_object(),
        Value::JsonText(_) => true,
        _ => false,
    }
}

/// `a == b`, or an error for values of types that cannot be equal. `null` may
/// be compared with anything; arrays and objects compare structurally.
pub(crate) fn equal(a: &Value<'_>, b: &Value<'_>) -> std::result::Result<bool, ()> {
    if let Some(order) = cmp_numbers(a, b) {
        return Ok(order == Some(Ordering::Equal));
    }
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => Ok(x == y),
        (Value::Null, Value::Null) => Ok(true),
        (Value::Null, _) | (_, Value::Null) => Ok(false),
        _ if is_composite(a) && is_composite(b) => Ok(a.to_json() == b.to_json()),
        _ => match (a.as_str(), b.as_str()) {
            (Some(x), Some(y)) => Ok(x == y),
            _ => Err(()),
        },
    }
}

/// `a op b` for a comparison; two `Int`s inline, anything else out of line.
#[inline(always)]
fn compare(op: BinOp, a: &Value<'_>, b: &Value<'_>) -> std::result::Result<bool, EvalErrorKind> {
    if let (Value::Int(x), Value::Int(y)) = (a, b) {
        return Ok(holds(op, x.cmp(y)));
    }
    compare_slow(op, a, b)
}

#[inline(never)]
fn compare_slow(op: BinOp, a: &Value<'_>, b: &Value<'_>) -> std::result::Result<bool, EvalErrorKind> {
    if matches!(op, BinOp::Eq | BinOp::Ne) {
        let eq = equal(a, b).map_err(|()| mismatch(op, a, b))?;
        return Ok(eq == (op == BinOp::Eq));
    }
    let order = match cmp_numbers(a, b) {
        Some(order) => order,
        None => match (a.as_str(), b.as_str()) {
            (Some(x), Some(y)) => Some(x.cmp(y)),
            _ => return Err(mismatch(op, a, b)),
        },
    };
    // Unordered (NaN): every ordering comparison is false, as in IEEE 754.
    Ok(order.is_some_and(|o| holds(op, o)))
}

/// Narrows an exact integer result to `Int`, or `UInt` above `i64::MAX`.
fn narrow(v: i128) -> std::result::Result<Value<'static>, EvalErrorKind> {
    if let Ok(i) = i64::try_from(v) {
        Ok(Value::Int(i))
    } else if let Ok(u) = u64::try_from(v) {
        Ok(Value::UInt(u))
    } else {
        Err(EvalErrorKind::Overflow)
    }
}

/// Integer arithmetic is exact over the union of `i64` and `u64` and fails
/// outside it; any float operand makes the operation a float one.
fn arith(op: BinOp, a: &Value<'_>, b: &Value<'_>) -> std::result::Result<Value<'static>, EvalErrorKind> {
    if let (Some(x), Some(y)) = (int(a), int(b)) {
        let r = match op {
            BinOp::Add => x.checked_add(y),
            BinOp::Sub => x.checked_sub(y),
            BinOp::Mul => x.checked_mul(y),
            BinOp::Div if y == 0 => return Err(EvalErrorKind::DivisionByZero),
            BinOp::Div => x.checked_div(y),
            BinOp::Rem if y == 0 => return Err(EvalErrorKind::DivisionByZero),
            _ => x.checked_rem(y),
        };
        return r.ok_or(EvalErrorKind::Overflow).and_then(narrow);
    }
    let float = |v: &Value<'_>| match *v {
        Value::Float(f) => Some(f),
        Value::Int(i) => Some(i as f64),
        Value::UInt(u) => Some(u as f64),
        _ => None,
    };
    let (Some(x), Some(y)) = (float(a), float(b)) else {
        return Err(mismatch(op, a, b));
    };
    if matches!(op, BinOp::Div | BinOp::Rem) && y == 0.0 {
        return Err(EvalErrorKind::DivisionByZero);
    }
    let r = match op {
        BinOp::Add => x + y,
        BinOp::Sub => x - y,
        BinOp::Mul => x * y,
        BinOp::Div => x / y,
        _ => x % y,
    };
    if r.is_infinite() && x.is_finite() && y.is_finite() {
        return Err(EvalErrorKind::Overflow);
    }
    Ok(Value::Float(r))
}

fn neg(v: &Value<'_>) -> std::result::Result<Value<'static>, EvalErrorKind> {
    match *v {
        Value::Float(f) => Ok(Value::Float(-f)),
        _ => match int(v) {
            Some(i) => narrow(-i),
            None => Err(expected("a number", v)),
        },
    }
}

fn field<'a>(base: &Value<'a>, name: &str) -> std::result::Result<Value<'a>, EvalErrorKind> {
    match base {
        Value::Json(serde_json::Value::Object(map)) => match map.get(name) {
            Some(v) => Ok(from_json(v)),
            None => Err(EvalErrorKind::NoField { field: name.to_owned(), available: map.keys().cloned().collect() }),
        },
        Value::JsonText(text) if json::kind(text) == Kind::Object => match json::field(text, name)? {
            Some(v) => Ok(json::to_value(v)?),
            None => Err(EvalErrorKind::NoField { field: name.to_owned(), available: json::keys(text)? }),
        },
        other => Err(expected("an object", other)),
    }
}

fn element<'a>(base: &Value<'a>, index: &Value<'_>) -> std::result::Result<Value<'a>, EvalErrorKind> {
    if let Some(key) = index.as_str() {
        return field(base, key);
    }
    let Some(i) = int(index) else {
        return Err(expected("an integer index or a string key", index));
    };
    let out_of_range = |len| EvalErrorKind::OutOfRange { index: i.to_string(), what: "an array", len };
    match base {
        Value::Json(doc) => {
            let Some(items) = doc.as_array() else {
                return Err(expected("an array", base));
            };
            match usize::try_from(i).ok().and_then(|i| items.get(i)) {
                Some(item) => Ok(from_json(item)),
                None => Err(out_of_range(items.len())),
            }
        }
        Value::JsonText(text) if json::kind(text) == Kind::Array => {
            let found = match usize::try_from(i) {
                Ok(i) => json::index(text, i)?,
                Err(_) => None,
            };
            match found {
                Some(v) => Ok(json::to_value(v)?),
                None => Err(out_of_range(json::len(text)?)),
            }
        }
        other => Err(expected("an array", other)),
    }
}

/// Bytes of a string (as Rust's `str::len`), elements of an array, members
/// of an object.
fn len(v: &Value<'_>) -> std::result::Result<usize, EvalErrorKind> {
    if let Some(s) = v.as_str() {
        return Ok(s.len());
    }
    match v {
        Value::Json(serde_json::Value::Array(items)) => Ok(items.len()),
        Value::Json(serde_json::Value::Object(map)) => Ok(map.len()),
        Value::JsonText(text) => Ok(json::len(text)?),
        other => Err(expected("a string, an array or an object", other)),
    }
}

/// A substring of a string, an element of an array, a key of an object.
fn contains(haystack: &Value<'_>, needle: &Value<'_>) -> std::result::Result<bool, EvalErrorKind> {
    // Elements of another type than the needle are simply not equal to it.
    let same = |item: Value<'_>| equal(&item, needle).unwrap_or(false);
    match haystack {
        Value::Str(_) | Value::String(_) => match (haystack.as_str(), needle.as_str()) {
            (Some(s), Some(sub)) => Ok(s.contains(sub)),
            _ => Err(expected("a string argument", needle)),
        },
        Value::Json(serde_json::Value::Array(items)) => Ok(items.iter().any(|item| same(from_json(item)))),
        Value::Json(serde_json::Value::Object(map)) => match needle.as_str() {
            Some(key) => Ok(map.contains_key(key)),
            None => Err(expected("a string key", needle)),
        },
        Value::JsonText(text) if json::kind(text) == Kind::Array => {
            let mut found = false;
            let mut bad = None;
            json::elements(text, |item| match json::to_value(item) {
                Ok(item) => {
                    found = same(item);
                    !found
                }
                Err(e) => {
                    bad = Some(e);
                    false
                }
            })?;
            match bad {
                Some(e) => Err(e.into()),
                None => Ok(found),
            }
        }
        Value::JsonText(text) if json::kind(text) == Kind::Object => match needle.as_str() {
            Some(key) => Ok(json::field(text, key)?.is_some()),
            None => Err(expected("a string key", needle)),
        },
        other => Err(expected("a string, an array or an object", other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_and_floats_order_exactly() {
        let big = (1u64 << 53) + 1; // not representable as f64
        assert_eq!(cmp_numbers(&Value::UInt(big), &Value::Float((1u64 << 53) as f64)), Some(Some(Ordering::Greater)));
        assert_eq!(cmp_numbers(&Value::Int(-1), &Value::Float(-0.5)), Some(Some(Ordering::Less)));
        assert_eq!(cmp_numbers(&Value::Int(2), &Value::Float(1.5)), Some(Some(Ordering::Greater)));
        assert_eq!(cmp_numbers(&Value::Float(1.5), &Value::Int(2)), Some(Some(Ordering::Less)));
        assert_eq!(cmp_numbers(&Value::UInt(u64::MAX), &Value::Float(f64::INFINITY)), Some(Some(Ordering::Less)));
        assert_eq!(cmp_numbers(&Value::Int(i64::MIN), &Value::Float(f64::NEG_INFINITY)), Some(Some(Ordering::Greater)));
        assert_eq!(cmp_numbers(&Value::Int(1), &Value::Float(f64::NAN)), Some(None));
        assert_eq!(cmp_numbers(&Value::Int(3), &Value::Float(3.0)), Some(Some(Ordering::Equal)));
        assert_eq!(cmp_numbers(&Value::UInt(u64::MAX), &Value::Int(-1)), Some(Some(Ordering::Greater)));
        assert_eq!(cmp_numbers(&Value::Str("1"), &Value::Int(1)), None);
    }

    #[test]
    fn arithmetic_is_exact_across_signedness() {
        assert_eq!(arith(BinOp::Sub, &Value::UInt(3), &Value::UInt(5)), Ok(Value::Int(-2)));
        assert_eq!(arith(BinOp::Add, &Value::Int(i64::MAX), &Value::Int(1)), Ok(Value::UInt(1 << 63)));
        assert_eq!(arith(BinOp::Div, &Value::Int(i64::MIN), &Value::Int(-1)), Ok(Value::UInt(1 << 63)));
        assert_eq!(arith(BinOp::Add, &Value::UInt(u64::MAX), &Value::Int(1)), Err(EvalErrorKind::Overflow));
        assert_eq!(arith(BinOp::Sub, &Value::Int(i64::MIN), &Value::UInt(u64::MAX)), Err(EvalErrorKind::Overflow));
        assert_eq!(arith(BinOp::Rem, &Value::Int(-7), &Value::Int(2)), Ok(Value::Int(-1)));
        assert_eq!(neg(&Value::UInt(1 << 63)), Ok(Value::Int(i64::MIN)));
        assert_eq!(neg(&Value::UInt(u64::MAX)), Err(EvalErrorKind::Overflow));
    }
}
