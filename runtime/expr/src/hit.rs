//! Hit conditions, as VS Code sends them in `SourceBreakpoint.hitCondition`:
//! when, counting hits from 1, a breakpoint stops.
//!
//! The accepted forms are CodeLLDB's: `>= N`, `> N`, `== N` (or `= N`),
//! `< N`, `<= N`, `% N` (every Nth hit), and a bare `N`, which like CodeLLDB
//! means `>= N` ("stop from the Nth hit on"). js-debug reads the same
//! operators (a bare number there is an error in older versions); Visual
//! Studio's "is equal to" is spelled `== N` here. A condition that could
//! never stop (`== 0`, `< 1`, `% 0`) is rejected rather than silently
//! disabling the breakpoint.

use crate::error::CompileError;

/// When a breakpoint stops, by its hit count (1 for the first hit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HitCondition {
    Eq(u64),
    Ge(u64),
    Gt(u64),
    Le(u64),
    Lt(u64),
    /// Every Nth hit: hits N, 2N, 3N…
    Every(u64),
}

impl HitCondition {
    /// Whether the `hit_count`-th hit (1-based) stops.
    #[inline]
    pub fn should_stop(&self, hit_count: u64) -> bool {
        match *self {
            HitCondition::Eq(n) => hit_count == n,
            HitCondition::Ge(n) => hit_count >= n,
            HitCondition::Gt(n) => hit_count > n,
            HitCondition::Le(n) => hit_count <= n,
            HitCondition::Lt(n) => hit_count < n,
            HitCondition::Every(n) => n != 0 && hit_count.is_multiple_of(n),
        }
    }
}

/// Parses a hit condition: `5`, `>= 5`, `> 5`, `== 5`, `= 5`, `< 5`, `<= 5`, `% 2`.
pub fn parse_hit_condition(source: &str) -> Result<HitCondition, CompileError> {
    const FORMS: &str =
        "a hit count such as `5` (from the 5th hit on), `>= 5`, `> 5`, `== 5`, `< 5`, `<= 5` or `% 2` (every 2nd hit)";
    let start = source.len() - source.trim_start().len();
    let rest = &source[start..];
    type Make = fn(u64) -> HitCondition;
    let ops: [(&str, Make); 8] = [
        (">=", HitCondition::Ge),
        ("<=", HitCondition::Le),
        ("==", HitCondition::Eq),
        (">", HitCondition::Gt),
        ("<", HitCondition::Lt),
        ("=", HitCondition::Eq),
        ("%", HitCondition::Every),
        ("", HitCondition::Ge),
    ];
    let (op, make) = ops.into_iter().find(|(op, _)| rest.starts_with(op)).unwrap_or(("", HitCondition::Ge));
    let after_op = &rest[op.len()..];
    let number_at = start + op.len() + (after_op.len() - after_op.trim_start().len());
    let digits = source[number_at..].trim_end();
    if digits.is_empty() {
        let message =
            if op.is_empty() { format!("expected {FORMS}") } else { format!("expected a number after `{op}`") };
        return Err(CompileError::at(source, number_at, message));
    }
    if let Some((at, _)) = digits.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        let bad = digits[at..].trim_start();
        let at = number_at + digits.len() - bad.len();
        return Err(CompileError::at(source, at, format!("expected {FORMS}, found `{bad}`")));
    }
    let n: u64 =
        digits.parse().map_err(|_| CompileError::at(source, number_at, "hit count is larger than 2^64 - 1"))?;
    let condition = make(n);
    let never = match condition {
        HitCondition::Eq(0) | HitCondition::Lt(0 | 1) | HitCondition::Le(0) => Some("hits are counted from 1"),
        HitCondition::Every(0) => Some("`% 0` would divide by zero"),
        HitCondition::Gt(u64::MAX) => Some("no hit count is larger than 2^64 - 1"),
        _ => None,
    };
    match never {
        Some(why) => Err(CompileError::at(source, number_at, format!("this condition never stops: {why}"))),
        None => Ok(condition),
    }
}
