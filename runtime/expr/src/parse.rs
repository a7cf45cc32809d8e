//! Tokens to a syntax tree, by precedence climbing, with the limits that keep
//! a pathological input from overflowing the stack.
//!
//! Precedence, loosest first: `||`, `&&`, comparisons (`== != < <= > >=`, which
//! do not chain: `a < b < c` is an error, as in Rust), `+ -`, `* / %`, prefix
//! `! -`, then postfix field access, indexing and method calls. Every node
//! records its nesting depth; deeper than [`MAX_DEPTH`] is an error, so the
//! recursive passes after parsing (type checking, evaluation, drop) are bounded
//! too.

use crate::error::CompileError;
use crate::lex::{Span, Tok, tokenize};

/// The longest expression accepted, in bytes.
pub const MAX_SOURCE_LEN: usize = 4096;
/// The deepest nesting accepted (parentheses, operators, accesses, calls).
pub const MAX_DEPTH: usize = 64;

#[derive(Debug)]
pub(crate) struct Expr {
    pub(crate) kind: ExprKind,
    pub(crate) span: Span,
    depth: usize,
}

#[derive(Debug)]
pub(crate) enum ExprKind {
    Null,
    Bool(bool),
    Int(u64),
    Float(f64),
    Str(String),
    Var(String),
    Field(Box<Expr>, String),
    Index(Box<Expr>, Box<Expr>),
    Method {
        recv: Box<Expr>,
        name: String,
        name_span: Span,
        args: Vec<Expr>,
    },
    /// A function call: `prev(x)`, `history(x)`.
    Call {
        name: String,
        name_span: Span,
        args: Vec<Expr>,
    },
    Unary(UnOp, Box<Expr>),
    Binary {
        op: BinOp,
        op_span: Span,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UnOp {
    Not,
    Neg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

impl BinOp {
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            BinOp::Or => "||",
            BinOp::And => "&&",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
        }
    }

    fn binding_power(self) -> u8 {
        match self {
            BinOp::Or => 1,
            BinOp::And => 2,
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => 3,
            BinOp::Add | BinOp::Sub => 4,
            BinOp::Mul | BinOp::Div | BinOp::Rem => 5,
        }
    }

    fn is_comparison(self) -> bool {
        self.binding_power() == 3
    }
}

/// Prefix operators bind tighter than any binary operator: `-a * b` is `(-a) * b`.
const PREFIX_BP: u8 = 6;

fn binop(tok: &Tok) -> Option<BinOp> {
    Some(match tok {
        Tok::OrOr => BinOp::Or,
        Tok::AndAnd => BinOp::And,
        Tok::EqEq => BinOp::Eq,
        Tok::NotEq => BinOp::Ne,
        Tok::Lt => BinOp::Lt,
        Tok::Le => BinOp::Le,
        Tok::Gt => BinOp::Gt,
        Tok::Ge => BinOp::Ge,
        Tok::Plus => BinOp::Add,
        Tok::Minus => BinOp::Sub,
        Tok::Star => BinOp::Mul,
        Tok::Slash => BinOp::Div,
        Tok::Percent => BinOp::Rem,
        _ => return None,
    })
}

/// Parses a whole expression.
pub(crate) fn parse(src: &str) -> Result<Expr, CompileError> {
    if src.len() > MAX_SOURCE_LEN {
        return Err(CompileError::at(src, MAX_SOURCE_LEN, format!("expression is longer than {MAX_SOURCE_LEN} bytes")));
    }
    let toks = tokenize(src)?;
    let mut p = Parser { src, toks, pos: 0 };
    let expr = p.expr(0, 0)?;
    match p.peek() {
        Tok::Eof => Ok(expr),
        Tok::RParen => Err(p.error_here("unmatched `)`")),
        Tok::RBracket => Err(p.error_here("unmatched `]`")),
        tok => {
            let message = format!("expected an operator or the end of the input, found {}", tok.describe());
            Err(p.error_here(message))
        }
    }
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<(Tok, Span)>,
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos].0
    }

    fn span(&self) -> Span {
        self.toks[self.pos].1
    }

    fn next(&mut self) -> (Tok, Span) {
        let (tok, span) = self.toks[self.pos].clone();
        if tok != Tok::Eof {
            self.pos += 1;
        }
        (tok, span)
    }

    fn error_here(&self, message: impl Into<String>) -> CompileError {
        CompileError::at(self.src, self.span().start as usize, message)
    }

    /// The depth of a node over `children`, or an error at `at` past [`MAX_DEPTH`].
    fn depth(&self, children: &[&Expr], at: Span) -> Result<usize, CompileError> {
        let depth = 1 + children.iter().map(|c| c.depth).max().unwrap_or(0);
        if depth > MAX_DEPTH {
            return Err(CompileError::at(
                self.src,
                at.start as usize,
                format!("expression is nested more than {MAX_DEPTH} levels deep"),
            ));
        }
        Ok(depth)
    }

    fn expr(&mut self, min_bp: u8, depth: usize) -> Result<Expr, CompileError> {
        if depth > MAX_DEPTH {
            return Err(self.error_here(format!("expression is nested more than {MAX_DEPTH} levels deep")));
        }
        let mut lhs = self.prefix(depth)?;
        let mut chained_comparison = false;
        while let Some(op) = binop(self.peek()) {
            let bp = op.binding_power();
            if bp < min_bp {
                break;
            }
            if op.is_comparison() && chained_comparison {
                return Err(self.error_here(format!(
                    "comparisons cannot be chained: write `a < b && b < c`, or add parentheses before `{}`",
                    op.symbol()
                )));
            }
            chained_comparison |= op.is_comparison();
            let (_, op_span) = self.next();
            // Left-associative: the right operand binds only tighter operators.
            let rhs = self.expr(bp + 1, depth + 1)?;
            let (span, depth) = (lhs.span.to(rhs.span), self.depth(&[&lhs, &rhs], op_span)?);
            lhs = Expr { kind: ExprKind::Binary { op, op_span, lhs: Box::new(lhs), rhs: Box::new(rhs) }, span, depth };
        }
        Ok(lhs)
    }

    /// A primary expression or a prefix operator, then its postfix accesses.
    fn prefix(&mut self, depth: usize) -> Result<Expr, CompileError> {
        let before = self.pos.checked_sub(1).map(|i| self.toks[i].0.describe());
        let (tok, span) = self.next();
        let leaf = |kind| Expr { kind, span, depth: 1 };
        let mut expr = match tok {
            Tok::Int(v) => leaf(ExprKind::Int(v)),
            Tok::Float(v) => leaf(ExprKind::Float(v)),
            Tok::Str(s) => leaf(ExprKind::Str(s)),
            Tok::True => leaf(ExprKind::Bool(true)),
            Tok::False => leaf(ExprKind::Bool(false)),
            Tok::Null => leaf(ExprKind::Null),
            Tok::Ident(name) if *self.peek() == Tok::LParen => self.call(name, span, depth)?,
            Tok::Ident(name) => leaf(ExprKind::Var(name)),
            Tok::LParen => {
                let inner = self.expr(0, depth + 1)?;
                if *self.peek() != Tok::RParen {
                    let col = CompileError::at(self.src, span.start as usize, "").column;
                    return Err(self.error_here(format!(
                        "expected `)` to close the `(` at column {col}, found {}",
                        self.peek().describe()
                    )));
                }
                let (_, close) = self.next();
                Expr { span: span.to(close), ..inner }
            }
            Tok::Bang | Tok::Minus => {
                let op = if tok == Tok::Bang { UnOp::Not } else { UnOp::Neg };
                let operand = self.expr(PREFIX_BP, depth + 1)?;
                let (whole, depth) = (span.to(operand.span), self.depth(&[&operand], span)?);
                Expr { kind: ExprKind::Unary(op, Box::new(operand)), span: whole, depth }
            }
            tok => {
                // Report at the token we could not use, not past it.
                self.pos -= usize::from(tok != Tok::Eof);
                let message = match before {
                    Some(prev) => format!("expected an expression after {prev}"),
                    None if tok == Tok::Eof => "expected an expression, found nothing".to_owned(),
                    None => format!("expected an expression, found {}", tok.describe()),
                };
                return Err(self.error_here(message));
            }
        };
        loop {
            match self.peek() {
                Tok::Dot => expr = self.member(expr, depth)?,
                Tok::LBracket => {
                    let (_, open) = self.next();
                    let index = self.expr(0, depth + 1)?;
                    if *self.peek() != Tok::RBracket {
                        let message = format!("expected `]` to close the index, found {}", self.peek().describe());
                        return Err(self.error_here(message));
                    }
                    let (_, close) = self.next();
                    let (span, depth) = (expr.span.to(close), self.depth(&[&expr, &index], open)?);
                    expr = Expr { kind: ExprKind::Index(Box::new(expr), Box::new(index)), span, depth };
                }
                _ => return Ok(expr),
            }
        }
    }

    /// `name(args)`, with `name` just read.
    fn call(&mut self, name: String, name_span: Span, depth: usize) -> Result<Expr, CompileError> {
        self.next();
        let args = self.arguments(&name, depth)?;
        let (_, close) = self.next();
        let children: Vec<&Expr> = args.iter().collect();
        let (span, depth) = (name_span.to(close), self.depth(&children, name_span)?);
        Ok(Expr { kind: ExprKind::Call { name, name_span, args }, span, depth })
    }

    /// The arguments of a call up to (not past) its `)`.
    fn arguments(&mut self, name: &str, depth: usize) -> Result<Vec<Expr>, CompileError> {
        let mut args = Vec::new();
        if *self.peek() != Tok::RParen {
            loop {
                args.push(self.expr(0, depth + 1)?);
                match self.peek() {
                    Tok::Comma => {
                        self.next();
                    }
                    Tok::RParen => break,
                    tok => {
                        let message =
                            format!("expected `,` or `)` in the arguments of `{name}`, found {}", tok.describe());
                        return Err(self.error_here(message));
                    }
                }
            }
        }
        Ok(args)
    }

    /// `.name` or `.name(args)` after `expr`.
    fn member(&mut self, expr: Expr, depth: usize) -> Result<Expr, CompileError> {
        let (_, dot) = self.next();
        let name = match self.peek() {
            Tok::Ident(name) => name.clone(),
            tok @ (Tok::True | Tok::False | Tok::Null) => tok.symbol().to_owned(),
            tok => {
                let message = format!("expected a field or method name after `.`, found {}", tok.describe());
                return Err(self.error_here(message));
            }
        };
        let (_, name_span) = self.next();
        if *self.peek() != Tok::LParen {
            let (span, depth) = (expr.span.to(name_span), self.depth(&[&expr], dot)?);
            return Ok(Expr { kind: ExprKind::Field(Box::new(expr), name), span, depth });
        }
        self.next();
        let args = self.arguments(&name, depth)?;
        let (_, close) = self.next();
        let mut children: Vec<&Expr> = args.iter().collect();
        children.push(&expr);
        let (span, depth) = (expr.span.to(close), self.depth(&children, dot)?);
        Ok(Expr { kind: ExprKind::Method { recv: Box::new(expr), name, name_span, args }, span, depth })
    }
}
