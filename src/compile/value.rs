//! Checked values: constant evaluation of `+ - * /` (the E05xx lowering errors live here) and
//! the check of one expression against a key's [`Ty`] and [`Range`].

use super::error::{CheckError, Divided, MismatchHint};

/// A checked result; the error is boxed because [`CheckError`] is large and checks are hot.
pub type Checked<T> = Result<T, Box<CheckError>>;
use super::schema::{KeySchema, Ty};
use crate::diagnostics::{backticked_list, SourceMap, Span};
use crate::syntax::ast::{dotted, format_float, quote, BinOp, Expr, ExprKind};
use std::path::{Component, Path, PathBuf};

/// A checked value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    /// A name from a fixed set (`text`, `zscore`).
    Name(String),
    IntList(Vec<i64>),
    StrList(Vec<String>),
    /// Names from a fixed set (`[q_proj, v_proj]`).
    NameList(Vec<String>),
}

impl Value {
    /// The value as the JSON a spec field reads.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Int(i) => (*i).into(),
            Value::Float(x) => (*x).into(),
            Value::Bool(b) => (*b).into(),
            Value::Str(s) | Value::Name(s) => s.as_str().into(),
            Value::IntList(v) => v.as_slice().into(),
            Value::StrList(v) | Value::NameList(v) => v.as_slice().into(),
        }
    }

    /// The value in recipe syntax.
    pub fn to_recipe(&self) -> String {
        match self {
            Value::Int(i) => i.to_string(),
            Value::Float(x) => format_float(*x),
            Value::Bool(b) => b.to_string(),
            Value::Str(s) => quote(s),
            Value::Name(n) => n.clone(),
            Value::IntList(items) => format!(
                "[{}]",
                items
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Value::StrList(items) => format!(
                "[{}]",
                items
                    .iter()
                    .map(|s| quote(s))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Value::NameList(items) => format!("[{}]", items.join(", ")),
        }
    }
}

/// A number computed from a constant expression.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Const {
    Int(i64),
    Float(f64),
}

impl Const {
    pub fn as_f64(self) -> f64 {
        match self {
            Const::Int(i) => i as f64,
            Const::Float(x) => x,
        }
    }
}

/// True when the expression is built only from numbers and arithmetic.
pub fn is_numeric(expr: &Expr) -> bool {
    match &expr.kind {
        ExprKind::Int(_) | ExprKind::Float(_) => true,
        ExprKind::Neg(inner) => is_numeric(inner),
        ExprKind::Binary { lhs, rhs, .. } => is_numeric(lhs) && is_numeric(rhs),
        _ => false,
    }
}

/// Evaluates a numeric constant expression. Integer arithmetic stays integral while exact
/// (`64 / 2` is `32`, `7 / 2` is `3.5`); mixing in a float gives a float.
pub fn eval_const(expr: &Expr) -> Checked<Const> {
    match &expr.kind {
        ExprKind::Int(i) => Ok(Const::Int(*i)),
        ExprKind::Float(x) => Ok(Const::Float(*x)),
        ExprKind::Neg(inner) => match eval_const(inner)? {
            Const::Int(i) => i
                .checked_neg()
                .map(Const::Int)
                .ok_or_else(|| overflow(expr.span)),
            Const::Float(x) => Ok(Const::Float(-x)),
        },
        ExprKind::Binary { op, lhs, rhs } => {
            let (a, b) = (eval_const(lhs)?, eval_const(rhs)?);
            if *op == BinOp::Div && b.as_f64() == 0.0 {
                return Err(Box::new(CheckError::DivisionByZero {
                    zero: rhs.span,
                    dividend: lhs.span,
                    divided: Divided::Constant,
                }));
            }
            let result = match (a, b) {
                (Const::Int(x), Const::Int(y)) => match op {
                    BinOp::Add => x.checked_add(y).map(Const::Int),
                    BinOp::Sub => x.checked_sub(y).map(Const::Int),
                    BinOp::Mul => x.checked_mul(y).map(Const::Int),
                    BinOp::Div if x.checked_rem(y) == Some(0) => x.checked_div(y).map(Const::Int),
                    BinOp::Div => Some(Const::Float(x as f64 / y as f64)),
                }
                .ok_or_else(|| overflow(expr.span))?,
                (a, b) => {
                    let (x, y) = (a.as_f64(), b.as_f64());
                    Const::Float(match op {
                        BinOp::Add => x + y,
                        BinOp::Sub => x - y,
                        BinOp::Mul => x * y,
                        BinOp::Div => x / y,
                    })
                }
            };
            if let Const::Float(x) = result {
                if !x.is_finite() {
                    return Err(Box::new(CheckError::NotFinite { span: expr.span }));
                }
            }
            Ok(result)
        }
        _ => Err(Box::new(type_mismatch("a number", expr))),
    }
}

fn overflow(span: Span) -> Box<CheckError> {
    Box::new(CheckError::IntegerOverflow { span })
}

/// How an expression reads in a "found ..." message.
pub fn describe(expr: &Expr) -> String {
    match &expr.kind {
        ExprKind::Int(_) => "an integer".into(),
        ExprKind::Float(_) => "a float".into(),
        ExprKind::Str(_) => "a string".into(),
        ExprKind::Bool(_) => "a boolean".into(),
        ExprKind::List(_) => "a list".into(),
        ExprKind::Path(p) => format!("the name `{}`", dotted(p)),
        ExprKind::Call { callee, .. } => format!("a call to `{}`", dotted(callee)),
        ExprKind::BlockValue { kind, .. } => format!("a `{}` block", kind.name),
        ExprKind::Neg(_) | ExprKind::Binary { .. } if is_numeric(expr) => "a number".into(),
        ExprKind::Neg(_) | ExprKind::Binary { .. } => "an expression".into(),
    }
}

/// `expected X, found Y`.
pub fn type_mismatch(expected: &str, expr: &Expr) -> CheckError {
    mismatch(expected, expr, MismatchHint::None)
}

/// `expected X, found Y`, with a help line.
pub fn mismatch(expected: &str, expr: &Expr, hint: MismatchHint) -> CheckError {
    CheckError::TypeMismatch {
        span: expr.span,
        expected: expected.to_string(),
        found: describe(expr),
        hint,
    }
}

/// Checks one expression against a key's type and range. `sources` resolves relative paths
/// for file keys (from the directory of the source that wrote the value).
pub fn check_value(key: &KeySchema, expr: &Expr, sources: &SourceMap) -> Checked<Value> {
    match key.ty {
        Ty::Int => {
            let n = int(expr)?;
            in_range(key, n as f64, expr.span)?;
            Ok(Value::Int(n))
        }
        Ty::Float => {
            let x = number(expr)?;
            in_range(key, x, expr.span)?;
            Ok(Value::Float(x))
        }
        Ty::Bool => match expr.kind {
            ExprKind::Bool(b) => Ok(Value::Bool(b)),
            _ => Err(Box::new(type_mismatch("`true` or `false`", expr))),
        },
        Ty::Str => string(expr, key.ty).map(Value::Str),
        Ty::Url => {
            let s = string(expr, key.ty)?;
            check_url(&s, expr.span)?;
            Ok(Value::Str(s))
        }
        Ty::File | Ty::Dir | Ty::Model => {
            let s = string(expr, key.ty)?;
            check_path(&s, key.ty, expr.span, sources).map(Value::Str)
        }
        Ty::Name(options) => name(expr, options).map(Value::Name),
        Ty::IntList(n) => {
            let ExprKind::List(items) = &expr.kind else {
                return Err(Box::new(type_mismatch(&key.ty.describe(), expr)));
            };
            if items.len() != n {
                return Err(Box::new(CheckError::ListLength {
                    span: expr.span,
                    expected: n,
                    found: items.len(),
                }));
            }
            let mut out = Vec::with_capacity(n);
            for item in items {
                let v = int(item)?;
                in_range(key, v as f64, item.span)?;
                out.push(v);
            }
            Ok(Value::IntList(out))
        }
        Ty::StrList => {
            let ExprKind::List(items) = &expr.kind else {
                return Err(Box::new(type_mismatch("a list of strings", expr)));
            };
            items
                .iter()
                .map(|i| string(i, Ty::Str))
                .collect::<Result<_, _>>()
                .map(Value::StrList)
        }
        Ty::NameList(options) => {
            let ExprKind::List(items) = &expr.kind else {
                return Err(Box::new(type_mismatch(&key.ty.describe(), expr)));
            };
            items
                .iter()
                .map(|i| name(i, options))
                .collect::<Result<_, _>>()
                .map(Value::NameList)
        }
        Ty::Block(kind) => Err(Box::new(type_mismatch(&format!("a `{kind}` block"), expr))),
    }
}

fn int(expr: &Expr) -> Checked<i64> {
    if !is_numeric(expr) {
        return Err(Box::new(type_mismatch("an integer", expr)));
    }
    match eval_const(expr)? {
        Const::Int(i) => Ok(i),
        Const::Float(_) => Err(Box::new(mismatch(
            "an integer",
            expr,
            MismatchHint::WholeNumber,
        ))),
    }
}

fn number(expr: &Expr) -> Checked<f64> {
    if !is_numeric(expr) {
        return Err(Box::new(type_mismatch("a number", expr)));
    }
    Ok(eval_const(expr)?.as_f64())
}

fn string(expr: &Expr, ty: Ty) -> Checked<String> {
    match &expr.kind {
        ExprKind::Str(s) => Ok(s.clone()),
        ExprKind::Path(p) => Err(Box::new(mismatch(
            &ty.describe(),
            expr,
            MismatchHint::Quote(dotted(p)),
        ))),
        _ => Err(Box::new(type_mismatch(&ty.describe(), expr))),
    }
}

fn name(expr: &Expr, options: &'static [&'static str]) -> Checked<String> {
    let expected = || format!("one of {}", backticked_list(options.iter().copied()));
    match &expr.kind {
        ExprKind::Path(p) if p.len() == 1 => {
            let n = &p[0].name;
            if options.contains(&n.as_str()) {
                return Ok(n.clone());
            }
            Err(Box::new(CheckError::UnknownValue {
                span: expr.span,
                name: n.clone(),
                options,
            }))
        }
        ExprKind::Str(s) if options.contains(&s.as_str()) => Err(Box::new(mismatch(
            &expected(),
            expr,
            MismatchHint::Unquote(s.clone()),
        ))),
        _ => Err(Box::new(type_mismatch(&expected(), expr))),
    }
}

fn in_range(key: &KeySchema, x: f64, span: Span) -> Checked<()> {
    if key.range.contains(x) {
        return Ok(());
    }
    Err(Box::new(CheckError::OutOfRange {
        span,
        key: key.key.to_string(),
        range: key.range,
        value: x,
    }))
}

/// `http://host[:port][/path]` or `https://...`.
pub fn check_url(s: &str, span: Span) -> Checked<()> {
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"));
    let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or(""));
    let valid = host.is_some_and(|h| {
        let (name, port) = match h.rsplit_once(':') {
            Some((n, p)) if !n.ends_with(']') || h.starts_with('[') => (n, Some(p)),
            _ => (h, None),
        };
        !name.is_empty()
            && !name.contains(char::is_whitespace)
            && port.is_none_or(|p| !p.is_empty() && p.parse::<u16>().is_ok())
    });
    if valid {
        return Ok(());
    }
    Err(Box::new(CheckError::NotAUrl {
        span,
        text: s.to_string(),
    }))
}

/// Checks that the path `s` names what `ty` asks for, and returns it resolved: a relative path
/// is read from the directory of the recipe that writes it (wherever the run starts), and
/// made absolute so that a run directory's graph still finds it later.
fn check_path(s: &str, ty: Ty, span: Span, sources: &SourceMap) -> Checked<String> {
    let path = super::resolve::base_dir(sources, span.source).join(s);
    let (ok, what) = match ty {
        Ty::Dir => (path.is_dir(), "directory"),
        Ty::Model => (
            path.is_dir() || (path.is_file() && crate::model::hf::is_gguf(&path)),
            "model",
        ),
        _ => (path.is_file(), "file"),
    };
    if ok {
        return Ok(absolute(&path).display().to_string());
    }
    Err(Box::new(CheckError::MissingFile {
        span,
        text: s.to_string(),
        looked: path.display().to_string(),
        what,
    }))
}

/// `path` made absolute, with `.` and `..` resolved by name (symbolic links are kept, so a
/// linked model keeps the name the recipe gives it).
fn absolute(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .components()
    {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostics::{Code, SourceId};

    fn expr(text: &str) -> Expr {
        let (file, errors) = crate::syntax::parse_file(SourceId(0), &format!("a = {text}"));
        assert!(errors.is_empty());
        match file.unwrap().statements.remove(0) {
            crate::syntax::ast::Statement::Assignment(a) => a.value,
            _ => unreachable!(),
        }
    }

    #[test]
    fn constant_arithmetic() {
        assert_eq!(eval_const(&expr("64 / 2")).unwrap(), Const::Int(32));
        assert_eq!(eval_const(&expr("7 / 2")).unwrap(), Const::Float(3.5));
        assert_eq!(eval_const(&expr("3e-4 * 2")).unwrap(), Const::Float(6e-4));
        assert_eq!(eval_const(&expr("-(2 + 3) * 4")).unwrap(), Const::Int(-20));
        assert_eq!(
            eval_const(&expr("1 / 0")).unwrap_err().diagnostic().code,
            Code::DivisionByZero
        );
        assert_eq!(
            eval_const(&expr("1e308 * 10"))
                .unwrap_err()
                .diagnostic()
                .code,
            Code::NotFinite
        );
        assert_eq!(
            eval_const(&expr("9223372036854775807 + 1"))
                .unwrap_err()
                .diagnostic()
                .code,
            Code::IntegerOverflow
        );
    }

    #[test]
    fn urls() {
        let span = Span::new(SourceId(0), 0, 0);
        assert!(check_url("http://localhost:8000/v1", span).is_ok());
        assert!(check_url("https://api.example.com", span).is_ok());
        assert!(check_url("localhost:8000", span).is_err());
        assert!(check_url("http://", span).is_err());
        assert!(check_url("http://host:port/v1", span).is_err());
    }
}
