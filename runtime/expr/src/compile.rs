//! From source to a [`Program`]: parse, resolve every variable to its slot,
//! check the types that are known before any hit, and lower to [`Node`]s.
//!
//! Types known statically are those of literals and of operator results
//! (`count + 1` is a number, `a < b` a boolean); variables, fields and
//! elements are of unknown type until a hit. Anything that could only fail or
//! could only be silently constant is rejected here, with a column: `!5`,
//! `"a" - 1`, `"x" < 3`, `"a" == 1` (always false), `5.len()`, a condition
//! that is a number. What cannot be known (a variable that turns out to be a
//! string) is checked at evaluation and reported as an [`EvalError`].

use crate::error::{CompileError, EvalError};
use crate::eval::{Cx, Lit, Node, NodeKind, flip};
use crate::lex::Span;
use crate::parse::{BinOp, Expr, ExprKind, UnOp, parse};
use crate::value::{Env, Value};

/// A compiled expression, ready to be evaluated any number of times.
///
/// `Send + Sync`: compile it where the breakpoint is set, evaluate it on the
/// plugin's thread.
#[derive(Debug)]
pub struct Program {
    source: Box<str>,
    root: Node,
    /// Whether it reads earlier hits (`prev`, `history`).
    earlier: bool,
}

impl Program {
    /// The expression's source text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the expression reads earlier hits (`prev(x)`, `history(x)`):
    /// its environment must keep them ([`Env::earlier`]).
    pub fn reads_earlier_hits(&self) -> bool {
        self.earlier
    }

    /// Evaluates the expression against `env`. The result may borrow from
    /// both the program (string literals) and the environment.
    pub fn eval<'a, E: Env + ?Sized>(&'a self, env: &'a E) -> Result<Value<'a>, EvalError> {
        self.root.eval(&Cx { env, src: &self.source, back: 0 }).map_err(|e| *e)
    }

    /// Evaluates the expression as a condition: its value must be a boolean
    /// (a number or a string is an error, not "truthy").
    pub fn eval_bool<E: Env + ?Sized>(&self, env: &E) -> Result<bool, EvalError> {
        self.root.test(&Cx { env, src: &self.source, back: 0 }).map_err(|e| *e)
    }
}

/// Compiles an expression for watch, hover and evaluate. `names[i]` is the
/// variable that [`Env::get`] returns for slot `i`; if a name repeats, the
/// first one wins.
pub fn compile<S: AsRef<str>>(source: &str, names: &[S]) -> Result<Program, CompileError> {
    compile_as(source, names, Use::Value)
}

/// Compiles a breakpoint condition: as [`compile`], and an expression that
/// cannot be a boolean (`count + 1`, `"yes"`) is rejected.
pub fn compile_condition<S: AsRef<str>>(source: &str, names: &[S]) -> Result<Program, CompileError> {
    compile_as(source, names, Use::Condition)
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Use {
    Value,
    Condition,
}

pub(crate) fn compile_as<S: AsRef<str>>(source: &str, names: &[S], usage: Use) -> Result<Program, CompileError> {
    let expr = parse(source)?;
    let names: Vec<&str> = names.iter().map(AsRef::as_ref).collect();
    let checker = Checker { src: source, names: &names, earlier: std::cell::Cell::new(false) };
    let (root, ty) = checker.lower(&expr)?;
    if usage == Use::Condition && !matches!(ty, Ty::Bool | Ty::Any) {
        return Err(CompileError::at(
            source,
            0,
            format!("a condition must be a boolean, but this is {}; compare it, as in `x > 0`", ty.name()),
        ));
    }
    Ok(Program { source: source.into(), root, earlier: checker.earlier.get() })
}

/// A type known at compile time; `Any` is a value known only at a hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ty {
    Any,
    Bool,
    Num,
    Str,
    Null,
}

impl Ty {
    fn name(self) -> &'static str {
        match self {
            Ty::Any => "a value",
            Ty::Bool => "a boolean",
            Ty::Num => "a number",
            Ty::Str => "a string",
            Ty::Null => "null",
        }
    }

    /// Whether a value of this type may be one of `allowed`.
    fn may_be(self, allowed: &[Ty]) -> bool {
        self == Ty::Any || allowed.contains(&self)
    }
}

struct Checker<'a> {
    src: &'a str,
    names: &'a [&'a str],
    /// Set when a `prev` or `history` is lowered.
    earlier: std::cell::Cell<bool>,
}

const FUNCTIONS: &str = "`prev(x)` (at the previous hit) and `history(x)` (at earlier hits, newest first)";

const METHODS: &str = "`len()`, `contains(x)`, `starts_with(s)`, `ends_with(s)`";

impl Checker<'_> {
    fn error(&self, at: Span, message: impl Into<String>) -> CompileError {
        CompileError::at(self.src, at.start as usize, message)
    }

    fn text(&self, e: &Expr) -> &str {
        e.span.text(self.src)
    }

    fn lower(&self, e: &Expr) -> Result<(Node, Ty), CompileError> {
        let node = |kind| Node { kind, span: e.span };
        Ok(match &e.kind {
            ExprKind::Null => (node(NodeKind::Lit(Lit::Null)), Ty::Null),
            ExprKind::Bool(b) => (node(NodeKind::Lit(Lit::Bool(*b))), Ty::Bool),
            ExprKind::Int(v) => {
                let lit = i64::try_from(*v).map_or(Lit::UInt(*v), Lit::Int);
                (node(NodeKind::Lit(lit)), Ty::Num)
            }
            ExprKind::Float(v) => (node(NodeKind::Lit(Lit::Float(*v))), Ty::Num),
            ExprKind::Str(s) => (node(NodeKind::Lit(Lit::Str(s.as_str().into()))), Ty::Str),
            ExprKind::Var(name) => (node(NodeKind::Var(self.resolve(name, e.span)?)), Ty::Any),
            ExprKind::Field(base, name) => {
                let (b, ty) = self.lower(base)?;
                if ty != Ty::Any {
                    let dot = self.src[base.span.end as usize..]
                        .find('.')
                        .map_or(base.span.end as usize, |i| i + base.span.end as usize);
                    return Err(CompileError::at(
                        self.src,
                        dot,
                        format!("`{}` is {}, which has no fields", self.text(base), ty.name()),
                    ));
                }
                (node(NodeKind::Field(Box::new(b), name.as_str().into())), Ty::Any)
            }
            ExprKind::Index(base, index) => {
                let (b, ty) = self.lower(base)?;
                if ty != Ty::Any {
                    let message = format!("`{}` is {}, which cannot be indexed", self.text(base), ty.name());
                    return Err(self.error(base.span, message));
                }
                let (i, ity) = self.lower(index)?;
                let bad_literal = match &i.kind {
                    NodeKind::Lit(Lit::Int(v)) if *v < 0 => Some("an index must not be negative"),
                    NodeKind::Lit(Lit::Float(_)) => Some("an index must be an integer"),
                    _ => None,
                };
                if let Some(message) = bad_literal {
                    return Err(self.error(index.span, message));
                }
                if !ity.may_be(&[Ty::Num, Ty::Str]) {
                    let message = format!("an index must be an integer or a string key, not {}", ity.name());
                    return Err(self.error(index.span, message));
                }
                (node(NodeKind::Index(Box::new(b), Box::new(i))), Ty::Any)
            }
            ExprKind::Method { recv, name, name_span, args } => self.method(e, recv, name, *name_span, args)?,
            ExprKind::Call { name, name_span, args } => {
                let history = match name.as_str() {
                    "prev" => false,
                    "history" => true,
                    _ => {
                        let message = format!("unknown function `{name}`; functions are {FUNCTIONS}");
                        return Err(self.error(*name_span, message));
                    }
                };
                if args.len() != 1 {
                    let message = format!("`{name}` takes 1 argument, found {}", args.len());
                    return Err(self.error(*name_span, message));
                }
                let (inner, ty) = self.lower(&args[0])?;
                self.earlier.set(true);
                if history {
                    (node(NodeKind::History(Box::new(inner))), Ty::Any)
                } else {
                    // At the first hit there is no previous value: `null`.
                    (node(NodeKind::Prev(Box::new(inner))), if ty == Ty::Null { Ty::Null } else { Ty::Any })
                }
            }
            ExprKind::Unary(op, operand) => {
                let (o, ty) = self.lower(operand)?;
                match op {
                    UnOp::Not => {
                        if !ty.may_be(&[Ty::Bool]) {
                            let message = format!(
                                "`!` needs a boolean, but `{}` is {} (values are not truthy or falsy)",
                                self.text(operand),
                                ty.name()
                            );
                            return Err(self.error(e.span, message));
                        }
                        (node(NodeKind::Not(Box::new(o))), Ty::Bool)
                    }
                    UnOp::Neg => {
                        if !ty.may_be(&[Ty::Num]) {
                            let message = format!("`-` needs a number, but `{}` is {}", self.text(operand), ty.name());
                            return Err(self.error(e.span, message));
                        }
                        (self.negate(o, e.span)?, Ty::Num)
                    }
                }
            }
            ExprKind::Binary { op, op_span, lhs, rhs } => self.binary(e, *op, *op_span, lhs, rhs)?,
        })
    }

    fn resolve(&self, name: &str, span: Span) -> Result<usize, CompileError> {
        if let Some(slot) = self.names.iter().position(|n| *n == name) {
            return Ok(slot);
        }
        let mut message = format!("unknown variable `{name}`");
        if let Some(close) = self.names.iter().find(|n| edit_distance(n, name) <= name.len().max(3) / 3) {
            message.push_str(&format!(" (did you mean `{close}`?)"));
        }
        if self.names.is_empty() {
            message.push_str("; no variables are available here");
        } else {
            let list: Vec<String> = self.names.iter().map(|n| format!("`{n}`")).collect();
            message.push_str(&format!("; available: {}", list.join(", ")));
        }
        Err(self.error(span, message))
    }

    /// `-x`, folded when `x` is a literal (so `-9223372036854775808` is an
    /// `i64` literal, not an overflow).
    fn negate(&self, operand: Node, span: Span) -> Result<Node, CompileError> {
        let folded = match &operand.kind {
            NodeKind::Lit(Lit::Int(v)) => Some(Lit::Int(-v)),
            NodeKind::Lit(Lit::UInt(v)) if *v == 1 << 63 => Some(Lit::Int(i64::MIN)),
            NodeKind::Lit(Lit::UInt(_)) => {
                return Err(self.error(span, "integer literal is below the smallest integer, -2^63"));
            }
            NodeKind::Lit(Lit::Float(v)) => Some(Lit::Float(-v)),
            _ => None,
        };
        Ok(match folded {
            Some(lit) => Node { kind: NodeKind::Lit(lit), span },
            None => Node { kind: NodeKind::Neg(Box::new(operand)), span },
        })
    }

    fn method(
        &self,
        e: &Expr,
        recv: &Expr,
        name: &str,
        name_span: Span,
        args: &[Expr],
    ) -> Result<(Node, Ty), CompileError> {
        let arity = match name {
            "len" => 0,
            "contains" | "starts_with" | "ends_with" => 1,
            _ => return Err(self.error(name_span, format!("unknown method `{name}`; methods are {METHODS}"))),
        };
        if args.len() != arity {
            let message =
                format!("`{name}` takes {arity} argument{}, found {}", if arity == 1 { "" } else { "s" }, args.len());
            return Err(self.error(name_span, message));
        }
        let (r, rty) = self.lower(recv)?;
        if !rty.may_be(&[Ty::Str]) {
            let what = if name == "len" || name == "contains" { "a string, an array or an object" } else { "a string" };
            let message = format!("`.{name}()` needs {what}, but `{}` is {}", self.text(recv), rty.name());
            return Err(self.error(name_span, message));
        }
        let node = |kind| Node { kind, span: e.span };
        if name == "len" {
            return Ok((node(NodeKind::Len(Box::new(r))), Ty::Num));
        }
        let (a, aty) = self.lower(&args[0])?;
        let needs_string = name != "contains" || rty == Ty::Str;
        if needs_string && !aty.may_be(&[Ty::Str]) {
            let message =
                format!("`.{name}()` needs a string argument, but `{}` is {}", self.text(&args[0]), aty.name());
            return Err(self.error(args[0].span, message));
        }
        let kind = match name {
            "contains" => NodeKind::Contains(Box::new(r), Box::new(a)),
            "starts_with" => NodeKind::StartsWith(Box::new(r), Box::new(a)),
            _ => NodeKind::EndsWith(Box::new(r), Box::new(a)),
        };
        Ok((node(kind), Ty::Bool))
    }

    fn binary(&self, e: &Expr, op: BinOp, op_span: Span, lhs: &Expr, rhs: &Expr) -> Result<(Node, Ty), CompileError> {
        let (l, lty) = self.lower(lhs)?;
        let (r, rty) = self.lower(rhs)?;
        let sym = op.symbol();
        let both = |kind| Node { kind, span: e.span };
        let (l, r) = (Box::new(l), Box::new(r));
        match op {
            BinOp::And | BinOp::Or => {
                for (side, ty) in [(lhs, lty), (rhs, rty)] {
                    if !ty.may_be(&[Ty::Bool]) {
                        let message = format!(
                            "`{sym}` needs a boolean on each side, but `{}` is {} (values are not truthy or falsy)",
                            self.text(side),
                            ty.name()
                        );
                        return Err(self.error(side.span, message));
                    }
                }
                let kind = if op == BinOp::And { NodeKind::And(l, r) } else { NodeKind::Or(l, r) };
                Ok((both(kind), Ty::Bool))
            }
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Rem => {
                for (side, ty) in [(lhs, lty), (rhs, rty)] {
                    if !ty.may_be(&[Ty::Num]) {
                        let message = format!("`{sym}` needs numbers, but `{}` is {}", self.text(side), ty.name());
                        return Err(self.error(op_span, message));
                    }
                }
                Ok((both(NodeKind::Arith(op, l, r)), Ty::Num))
            }
            BinOp::Eq | BinOp::Ne => {
                if lty != Ty::Any && rty != Ty::Any && lty != rty {
                    let message = format!(
                        "`{sym}` between {} and {} is always {}",
                        lty.name(),
                        rty.name(),
                        if op == BinOp::Eq { "false" } else { "true" }
                    );
                    return Err(self.error(op_span, message));
                }
                Ok((both(comparison(op, l, r)), Ty::Bool))
            }
            BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                for ty in [lty, rty] {
                    if !ty.may_be(&[Ty::Num, Ty::Str]) {
                        let message = format!("`{sym}` orders numbers or strings, not {}", ty.name());
                        return Err(self.error(op_span, message));
                    }
                }
                if lty != Ty::Any && rty != Ty::Any && lty != rty {
                    let message = format!("`{sym}` cannot order {} and {}", lty.name(), rty.name());
                    return Err(self.error(op_span, message));
                }
                Ok((both(comparison(op, l, r)), Ty::Bool))
            }
        }
    }
}

/// A comparison node, specialised when it compares a binding with a literal.
fn comparison(op: BinOp, l: Box<Node>, r: Box<Node>) -> NodeKind {
    match (&l.kind, &r.kind) {
        (NodeKind::Var(slot), NodeKind::Lit(lit)) => {
            NodeKind::CmpVarLit { op, slot: *slot, var: l.span, lit: lit.clone(), flipped: false }
        }
        (NodeKind::Lit(lit), NodeKind::Var(slot)) => {
            NodeKind::CmpVarLit { op: flip(op), slot: *slot, var: r.span, lit: lit.clone(), flipped: true }
        }
        _ => NodeKind::Cmp(op, l, r),
    }
}

/// Edit distance counting a swap of neighbours as one edit (`cuont` is one
/// from `count`), for "did you mean". Names are short: a full table is fine.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}
