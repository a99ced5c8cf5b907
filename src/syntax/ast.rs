//! The recipe AST. Every node carries the byte [`Span`] of the text it came from.

use crate::diagnostics::Span;
use std::fmt;

/// A parsed recipe file.
#[derive(Debug, Clone, PartialEq)]
pub struct File {
    pub statements: Vec<Statement>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    Use(UseDecl),
    Definition(Definition),
    Block(Block),
    Assignment(Assignment),
}

impl Statement {
    pub fn span(&self) -> Span {
        match self {
            Statement::Use(u) => u.span,
            Statement::Definition(d) => d.span,
            Statement::Block(b) => b.span,
            Statement::Assignment(a) => a.span,
        }
    }
}

/// `use std::presets::oprl` or `use "file.oprl"`.
#[derive(Debug, Clone, PartialEq)]
pub struct UseDecl {
    pub target: UseTarget,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum UseTarget {
    /// `std::presets::oprl_rloo`: the segments, `std` included.
    Module { segments: Vec<Ident>, span: Span },
    /// A path relative to the importing file.
    File { path: String, span: Span },
}

impl UseTarget {
    pub fn span(&self) -> Span {
        match self {
            UseTarget::Module { span, .. } | UseTarget::File { span, .. } => *span,
        }
    }
}

/// A name with its span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// `kind name = value`, e.g. `reward outcome = verifier(env.won)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    pub kind: Ident,
    pub name: Ident,
    pub value: Expr,
    pub span: Span,
}

/// `kind [variant] { body }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub kind: Ident,
    pub variant: Option<Ident>,
    pub body: Vec<Statement>,
    pub span: Span,
}

/// `key = value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    pub key: Ident,
    pub value: Expr,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
        }
    }

    fn precedence(self) -> u8 {
        match self {
            BinOp::Add | BinOp::Sub => 1,
            BinOp::Mul | BinOp::Div => 2,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    List(Vec<Expr>),
    /// A name or dotted reference: `zscore`, `env.won`.
    Path(Vec<Ident>),
    /// `callee(args)`; the callee is a name or dotted path.
    Call {
        callee: Vec<Ident>,
        args: Vec<Arg>,
    },
    /// `kind { body }` used as a value.
    BlockValue {
        kind: Ident,
        body: Vec<Statement>,
    },
    Neg(Box<Expr>),
    Binary {
        op: BinOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
}

/// A call argument: `outcome` or `norm = zscore`.
#[derive(Debug, Clone, PartialEq)]
pub struct Arg {
    pub name: Option<Ident>,
    pub value: Expr,
    pub span: Span,
}

/// `a.b.c`.
pub fn dotted(segments: &[Ident]) -> String {
    segments
        .iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(".")
}

/// Formats a float so that it reads back as a float (`1.0`, `3e-4`, `0.95`).
pub fn format_float(x: f64) -> String {
    if x != 0.0 && (x.abs() < 1e-3 || x.abs() >= 1e7) {
        // `3e-4` and `1e7` are float literals as they stand.
        format!("{x:e}")
    } else {
        let s = format!("{x}");
        if s.contains('.') || s.contains("inf") || s.contains("NaN") {
            s
        } else {
            format!("{s}.0")
        }
    }
}

/// Writes a string literal with the escapes the grammar reads back.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, 0)
    }
}

impl Expr {
    /// Writes the expression in recipe syntax, adding parentheses only where precedence needs them.
    fn write(&self, f: &mut fmt::Formatter<'_>, parent_precedence: u8) -> fmt::Result {
        match &self.kind {
            ExprKind::Int(i) => write!(f, "{i}"),
            ExprKind::Float(x) => f.write_str(&format_float(*x)),
            ExprKind::Str(s) => f.write_str(&quote(s)),
            ExprKind::Bool(b) => write!(f, "{b}"),
            ExprKind::List(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    item.write(f, 0)?;
                }
                f.write_str("]")
            }
            ExprKind::Path(segments) => f.write_str(&dotted(segments)),
            ExprKind::Call { callee, args } => {
                write!(f, "{}(", dotted(callee))?;
                for (i, arg) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    if let Some(name) = &arg.name {
                        write!(f, "{} = ", name.name)?;
                    }
                    arg.value.write(f, 0)?;
                }
                f.write_str(")")
            }
            ExprKind::BlockValue { kind, body } => {
                write!(f, "{} {{", kind.name)?;
                for (i, statement) in body.iter().enumerate() {
                    f.write_str(if i == 0 { " " } else { ", " })?;
                    match statement {
                        Statement::Assignment(a) => write!(f, "{} = {}", a.key.name, a.value)?,
                        other => write!(f, "<{}>", statement_kind(other))?,
                    }
                }
                f.write_str(if body.is_empty() { "}" } else { " }" })
            }
            ExprKind::Neg(inner) => {
                f.write_str("-")?;
                inner.write(f, 3)
            }
            ExprKind::Binary { op, lhs, rhs } => {
                let p = op.precedence();
                if p < parent_precedence {
                    f.write_str("(")?;
                }
                lhs.write(f, p)?;
                write!(f, " {} ", op.symbol())?;
                // Left-associative: the right operand needs parentheses at equal precedence.
                rhs.write(f, p + 1)?;
                if p < parent_precedence {
                    f.write_str(")")?;
                }
                Ok(())
            }
        }
    }
}

fn statement_kind(statement: &Statement) -> &'static str {
    match statement {
        Statement::Use(_) => "use",
        Statement::Definition(_) => "definition",
        Statement::Block(_) => "block",
        Statement::Assignment(_) => "assignment",
    }
}
