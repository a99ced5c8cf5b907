//! The pest parser for `grammar/oprl.pest`, the builder from pest pairs to the AST (with the
//! Pratt parser for `+ - * /`), and the conversion of pest errors into diagnostics with human
//! names for the rules the grammar expected.

use super::ast::*;
use super::lex;
use crate::diagnostics::{Code, Diagnostic, SourceId, Span};
use pest::iterators::Pair;
use pest::pratt_parser::{Assoc, Op, PrattParser};
use pest::Parser as _;
use std::cell::RefCell;
use std::sync::LazyLock;

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/oprl.pest"]
struct RecipeParser;

/// The most binary operators one expression may have.
pub const MAX_OPERATORS: usize = 32;

static PRATT: LazyLock<PrattParser<Rule>> = LazyLock::new(|| {
    PrattParser::new()
        .op(Op::infix(Rule::add, Assoc::Left) | Op::infix(Rule::sub, Assoc::Left))
        .op(Op::infix(Rule::mul, Assoc::Left) | Op::infix(Rule::div, Assoc::Left))
        .op(Op::prefix(Rule::neg))
});

/// Parses a recipe file. On success the AST comes with any non-fatal diagnostics (bad escapes,
/// out-of-range numbers); on a syntax error there is no AST.
pub fn parse_file(source: SourceId, text: &str) -> (Option<File>, Vec<Diagnostic>) {
    if let Some(diagnostic) = lex::prescan(source, text) {
        return (None, vec![diagnostic]);
    }
    match RecipeParser::parse(Rule::file, text) {
        Ok(mut pairs) => {
            let builder = Builder {
                source,
                errors: RefCell::new(Vec::new()),
            };
            let file_pair = pairs
                .next()
                .expect("the `file` rule always produces one pair");
            let span = builder.span(&file_pair);
            let statements = file_pair
                .into_inner()
                .filter(|p| p.as_rule() != Rule::EOI)
                .map(|p| builder.statement(p))
                .collect();
            let mut errors = builder.errors.into_inner();
            let file = File { statements, span };
            check_use_placement(&file, &mut errors);
            (Some(file), errors)
        }
        Err(error) => (None, vec![syntax_error(source, text, Rule::file, error)]),
    }
}

/// A parsed `--set PATH=VALUE`.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    pub path: Vec<Ident>,
    pub value: Expr,
    pub span: Span,
}

/// Parses the text of one `--set` argument (a `<cli>` source).
pub fn parse_override(source: SourceId, text: &str) -> Result<Override, Vec<Diagnostic>> {
    if !text.contains('=') {
        let end = text.len();
        return Err(vec![Diagnostic::new(
            Code::BadOverride,
            format!("`--set {text}` is not `PATH=VALUE`"),
        )
        .label(Span::new(source, 0, end), "missing `=`")
        .help("write an override as `--set train.group=4`")]);
    }
    if let Some(diagnostic) = lex::prescan(source, text) {
        return Err(vec![diagnostic]);
    }
    match RecipeParser::parse(Rule::cli_override, text) {
        Ok(mut pairs) => {
            let builder = Builder {
                source,
                errors: RefCell::new(Vec::new()),
            };
            let pair = pairs
                .next()
                .expect("the `cli_override` rule always produces one pair");
            let span = builder.span(&pair);
            let mut inner = pair.into_inner();
            let path = builder.path_segments(inner.next().expect("grammar: path"));
            let value = builder.expr(inner.next().expect("grammar: expr"));
            let errors = builder.errors.into_inner();
            if errors.is_empty() {
                Ok(Override { path, value, span })
            } else {
                Err(errors)
            }
        }
        Err(error) => Err(vec![syntax_error(source, text, Rule::cli_override, error)]),
    }
}

/// `use` is only allowed at the top level; the grammar accepts it anywhere so that this is a
/// precise error instead of a confusing syntax error.
fn check_use_placement(file: &File, errors: &mut Vec<Diagnostic>) {
    fn visit(statements: &[Statement], errors: &mut Vec<Diagnostic>) {
        for statement in statements {
            match statement {
                Statement::Use(u) => errors.push(
                    Diagnostic::new(
                        Code::UseNotAtTopLevel,
                        "`use` is only allowed at the top level",
                    )
                    .label(u.span, "inside a block")
                    .help("move this line to the top of the file"),
                ),
                Statement::Block(b) => visit(&b.body, errors),
                Statement::Definition(_) | Statement::Assignment(_) => {}
            }
        }
    }
    for statement in &file.statements {
        if let Statement::Block(b) = statement {
            visit(&b.body, errors);
        }
    }
}

struct Builder {
    source: SourceId,
    errors: RefCell<Vec<Diagnostic>>,
}

impl Builder {
    fn span(&self, pair: &Pair<Rule>) -> Span {
        let s = pair.as_span();
        Span::new(self.source, s.start(), s.end())
    }

    fn ident(&self, pair: Pair<Rule>) -> Ident {
        Ident {
            name: pair.as_str().to_string(),
            span: self.span(&pair),
        }
    }

    fn statement(&self, pair: Pair<Rule>) -> Statement {
        let span = self.span(&pair);
        match pair.as_rule() {
            Rule::use_decl => {
                let target = pair
                    .into_inner()
                    .find(|p| p.as_rule() != Rule::kw_use)
                    .expect("grammar: use target");
                let target_span = self.span(&target);
                let target = match target.as_rule() {
                    Rule::module_path => UseTarget::Module {
                        segments: target.into_inner().map(|p| self.ident(p)).collect(),
                        span: target_span,
                    },
                    _ => UseTarget::File {
                        path: self.string(target),
                        span: target_span,
                    },
                };
                Statement::Use(UseDecl { target, span })
            }
            Rule::definition => {
                let mut inner = pair.into_inner();
                let kind = self.ident(inner.next().expect("grammar: kind"));
                let name = self.ident(inner.next().expect("grammar: name"));
                let value = self.expr(inner.next().expect("grammar: value"));
                Statement::Definition(Definition {
                    kind,
                    name,
                    value,
                    span,
                })
            }
            Rule::block => {
                let (kind, variant, body) = self.block_parts(pair);
                Statement::Block(Block {
                    kind,
                    variant,
                    body,
                    span,
                })
            }
            Rule::assignment => {
                let mut inner = pair.into_inner();
                let key = self.ident(inner.next().expect("grammar: key"));
                let value = self.expr(inner.next().expect("grammar: value"));
                Statement::Assignment(Assignment { key, value, span })
            }
            other => unreachable!("grammar: unexpected statement rule {other:?}"),
        }
    }

    /// `kind [variant] { body }` for both blocks and block values.
    fn block_parts(&self, pair: Pair<Rule>) -> (Ident, Option<Ident>, Vec<Statement>) {
        let mut kind = None;
        let mut variant = None;
        let mut body = Vec::new();
        // A block value's idents sit inside its `block_head`.
        let parts = pair.into_inner().flat_map(|p| match p.as_rule() {
            Rule::block_head => p.into_inner().collect::<Vec<_>>(),
            _ => vec![p],
        });
        for p in parts {
            match p.as_rule() {
                Rule::ident if kind.is_none() => kind = Some(self.ident(p)),
                Rule::ident => variant = Some(self.ident(p)),
                Rule::block_body => body = p.into_inner().map(|s| self.statement(s)).collect(),
                other => unreachable!("grammar: unexpected block part {other:?}"),
            }
        }
        (kind.expect("grammar: block kind"), variant, body)
    }

    fn path_segments(&self, pair: Pair<Rule>) -> Vec<Ident> {
        pair.into_inner().map(|p| self.ident(p)).collect()
    }

    fn expr(&self, pair: Pair<Rule>) -> Expr {
        // Long operator chains make deep trees, and every later phase walks trees recursively:
        // bound them like nesting so that no input can exhaust the stack.
        let operators = pair
            .clone()
            .into_inner()
            .filter(|p| matches!(p.as_rule(), Rule::add | Rule::sub | Rule::mul | Rule::div))
            .count();
        if operators > MAX_OPERATORS {
            let span = self.span(&pair);
            self.push(
                Diagnostic::new(
                    Code::NestingTooDeep,
                    format!("expression with {operators} operators"),
                )
                .label(span, format!("more than {MAX_OPERATORS} operators"))
                .help("split the expression; no recipe needs this many operators"),
            );
            return Expr {
                kind: ExprKind::Int(0),
                span,
            };
        }
        PRATT
            .map_primary(|p| self.primary(p))
            .map_prefix(|op, operand| {
                let span = self.span(&op).to(operand.span);
                Expr {
                    kind: ExprKind::Neg(Box::new(operand)),
                    span,
                }
            })
            .map_infix(|lhs, op, rhs| {
                let op = match op.as_rule() {
                    Rule::add => BinOp::Add,
                    Rule::sub => BinOp::Sub,
                    Rule::mul => BinOp::Mul,
                    _ => BinOp::Div,
                };
                let span = lhs.span.to(rhs.span);
                Expr {
                    kind: ExprKind::Binary {
                        op,
                        lhs: Box::new(lhs),
                        rhs: Box::new(rhs),
                    },
                    span,
                }
            })
            .parse(pair.into_inner())
    }

    fn primary(&self, pair: Pair<Rule>) -> Expr {
        let span = self.span(&pair);
        let kind = match pair.as_rule() {
            Rule::integer => {
                let digits: String = pair.as_str().chars().filter(|c| *c != '_').collect();
                match digits.parse::<i64>() {
                    Ok(i) => ExprKind::Int(i),
                    Err(_) => {
                        self.push(
                            Diagnostic::new(
                                Code::NumberTooLarge,
                                format!("integer `{}` is too large", pair.as_str()),
                            )
                            .label(span, "does not fit in 64 bits")
                            .help(format!("the largest integer is {}", i64::MAX)),
                        );
                        ExprKind::Int(0)
                    }
                }
            }
            Rule::float => {
                let digits: String = pair.as_str().chars().filter(|c| *c != '_').collect();
                match digits.parse::<f64>() {
                    Ok(x) if x.is_finite() => ExprKind::Float(x),
                    _ => {
                        self.push(
                            Diagnostic::new(
                                Code::NumberTooLarge,
                                format!("float `{}` is too large", pair.as_str()),
                            )
                            .label(span, "this is infinite as a 64-bit float")
                            .help("the largest float is about 1.8e308"),
                        );
                        ExprKind::Float(0.0)
                    }
                }
            }
            Rule::string => ExprKind::Str(self.string(pair)),
            Rule::boolean => ExprKind::Bool(pair.as_str() == "true"),
            Rule::list => ExprKind::List(pair.into_inner().map(|p| self.expr(p)).collect()),
            Rule::block_value => {
                let (kind, _variant, body) = self.block_parts(pair);
                ExprKind::BlockValue { kind, body }
            }
            Rule::call => {
                let mut inner = pair.into_inner();
                let callee = self.path_segments(inner.next().expect("grammar: callee"));
                let args = inner
                    .map(|arg| {
                        let arg_span = self.span(&arg);
                        match arg.as_rule() {
                            Rule::named_argument => {
                                let mut parts = arg.into_inner();
                                let name =
                                    self.ident(parts.next().expect("grammar: argument name"));
                                let value =
                                    self.expr(parts.next().expect("grammar: argument value"));
                                Arg {
                                    name: Some(name),
                                    value,
                                    span: arg_span,
                                }
                            }
                            _ => Arg {
                                name: None,
                                value: self.expr(arg),
                                span: arg_span,
                            },
                        }
                    })
                    .collect();
                ExprKind::Call { callee, args }
            }
            Rule::path => ExprKind::Path(self.path_segments(pair)),
            Rule::paren => {
                let inner = self.expr(
                    pair.into_inner()
                        .next()
                        .expect("grammar: parenthesised expr"),
                );
                return Expr {
                    kind: inner.kind,
                    span,
                };
            }
            Rule::expr => return self.expr(pair),
            other => unreachable!("grammar: unexpected primary {other:?}"),
        };
        Expr { kind, span }
    }

    /// The value of a string literal, with escapes decoded; unknown escapes are reported.
    fn string(&self, pair: Pair<Rule>) -> String {
        let inner = pair.into_inner().next().expect("grammar: string_inner");
        let base = inner.as_span().start();
        let raw = inner.as_str();
        let mut out = String::with_capacity(raw.len());
        let mut chars = raw.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            let Some((_, e)) = chars.next() else { break };
            let decoded = match e {
                'n' => Some('\n'),
                't' => Some('\t'),
                'r' => Some('\r'),
                '0' => Some('\0'),
                '"' => Some('"'),
                '\\' => Some('\\'),
                'u' => self.unicode_escape(raw, i, &mut chars),
                _ => None,
            };
            match decoded {
                Some(d) => out.push(d),
                None => {
                    let end = chars.peek().map_or(raw.len(), |(j, _)| *j);
                    let end = if e == 'u' { end } else { i + 1 + e.len_utf8() };
                    let shown = &raw[i..end];
                    self.push(
                        Diagnostic::new(Code::InvalidEscape, format!("invalid escape `{shown}` in a string"))
                            .label(Span::new(self.source, base + i, base + end), "unknown escape")
                            .help("the escapes are `\\\\`, `\\\"`, `\\n`, `\\t`, `\\r`, `\\0` and `\\u{XXXX}`"),
                    );
                }
            }
        }
        out
    }

    /// Decodes the `{XXXX}` after `\u`; `None` when it is malformed.
    fn unicode_escape(
        &self,
        raw: &str,
        _start: usize,
        chars: &mut std::iter::Peekable<std::str::CharIndices>,
    ) -> Option<char> {
        if chars.peek().map(|(_, c)| *c) != Some('{') {
            return None;
        }
        let (open, _) = chars.next()?;
        let mut close = None;
        for (j, c) in chars.by_ref() {
            if c == '}' {
                close = Some(j);
                break;
            }
            if !c.is_ascii_hexdigit() {
                return None;
            }
        }
        let hex = &raw[open + 1..close?];
        if hex.is_empty() || hex.len() > 6 {
            return None;
        }
        u32::from_str_radix(hex, 16).ok().and_then(char::from_u32)
    }

    fn push(&self, diagnostic: Diagnostic) {
        self.errors.borrow_mut().push(diagnostic);
    }
}

/// The name a person understands for a grammar rule, or `None` for rules that never appear in
/// an expectation on their own.
fn human_name(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::EOI => "end of file",
        Rule::file | Rule::statement => "a statement",
        Rule::use_decl | Rule::kw_use => "`use`",
        Rule::module_path => "a module path like `std::presets::oprl`",
        Rule::definition | Rule::block | Rule::assignment => "a statement",
        Rule::block_body => "`{`",
        Rule::ident => "a name",
        Rule::path => "a name",
        Rule::cli_override => "`PATH=VALUE`",
        Rule::expr
        | Rule::primary
        | Rule::prefix_op
        | Rule::neg
        | Rule::paren
        | Rule::float
        | Rule::integer
        | Rule::string
        | Rule::boolean
        | Rule::list
        | Rule::block_value
        | Rule::call => "a value",
        Rule::named_argument | Rule::argument => "an argument",
        Rule::string_inner => "the rest of the string",
        Rule::infix_op | Rule::add | Rule::sub | Rule::mul | Rule::div => "an operator",
        _ => return None,
    })
}

/// Turns a pest error into a diagnostic: the span of the offending token, what was found,
/// and what the grammar expected, in words.
fn syntax_error(
    source: SourceId,
    text: &str,
    start_rule: Rule,
    error: pest::error::Error<Rule>,
) -> Diagnostic {
    let pos = match error.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((s, _)) => s,
    };
    let mut expected: Vec<&'static str> = Vec::new();
    let mut add = |name: &'static str| {
        if !expected.contains(&name) {
            expected.push(name);
        }
    };
    if let pest::error::ErrorVariant::ParsingError { positives, .. } = &error.variant {
        for rule in positives {
            if let Some(name) = human_name(*rule) {
                add(name);
            }
        }
    }
    for token in literal_expectations(start_rule, text) {
        add(token);
    }
    // Operators are always possible after a complete value; listing them is noise.
    if expected.len() > 1 {
        expected.retain(|e| *e != "an operator");
    }
    let found = found_token(text, pos);
    let (start, end) = (pos, pos + found.len_in_text);
    let expected_text = join_or(&expected);
    let message = if expected.is_empty() {
        format!("unexpected {}", found.described)
    } else {
        format!("unexpected {}, expected {expected_text}", found.described)
    };
    let label = if expected.is_empty() {
        "unexpected here".to_string()
    } else {
        format!("expected {expected_text}")
    };
    let mut diagnostic =
        Diagnostic::new(Code::SyntaxError, message).label(Span::new(source, start, end), label);
    if let Some(help) = syntax_help(&expected, &found.described) {
        diagnostic = diagnostic.help(help);
    }
    diagnostic
}

/// The literal tokens (`=`, `}`, ...) the parser tried at the error position. pest only
/// records these with error detail on, so the failing input is re-parsed once with it.
fn literal_expectations(start_rule: Rule, text: &str) -> Vec<&'static str> {
    pest::set_error_detail(true);
    let result = RecipeParser::parse(start_rule, text);
    pest::set_error_detail(false);
    let Err(error) = result else {
        return Vec::new();
    };
    let Some(attempts) = error.parse_attempts() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    // `ParsingToken` is not exported by pest; its Display form is the literal for exact tokens.
    for token in attempts.expected_tokens() {
        let name = match token.to_string().as_str() {
            "=" => "`=`",
            "{" => "`{`",
            "}" => "`}`",
            ")" => "`)`",
            "]" => "`]`",
            "," => "`,`",
            "::" => "`::`",
            _ => continue,
        };
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

struct Found {
    described: String,
    len_in_text: usize,
}

/// Describes the token at `pos`: a name, a number, a symbol, or the end of the file.
fn found_token(text: &str, pos: usize) -> Found {
    let pos = crate::diagnostics::floor_char_boundary(text, pos.min(text.len()));
    let rest = &text[pos..];
    let Some(first) = rest.chars().next() else {
        return Found {
            described: "end of file".into(),
            len_in_text: 0,
        };
    };
    if first.is_alphanumeric() || first == '_' {
        let len = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
            .unwrap_or(rest.len());
        let word = &rest[..len];
        let what = if first.is_ascii_digit() {
            "number"
        } else {
            "name"
        };
        return Found {
            described: format!("{what} `{word}`"),
            len_in_text: len,
        };
    }
    if first == '\n' || first == '\r' {
        return Found {
            described: "end of line".into(),
            len_in_text: 0,
        };
    }
    if first == '"' {
        let len = rest[1..].find('"').map_or(1, |i| i + 2);
        return Found {
            described: "a string".into(),
            len_in_text: len,
        };
    }
    Found {
        described: format!("`{first}`"),
        len_in_text: first.len_utf8(),
    }
}

fn join_or(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

fn syntax_help(expected: &[&str], found: &str) -> Option<String> {
    if expected.contains(&"a value") && found == "end of line" {
        return Some("write a value after `=`, e.g. `group = 8`".into());
    }
    if expected.contains(&"a statement") {
        return Some("a statement is `key = value`, `kind [variant] { ... }`, `kind name = value` or `use ...`".into());
    }
    if expected.contains(&"a value") {
        return Some(
            "a value is a number, a string, `true`/`false`, a list `[...]`, a name or a call"
                .into(),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> File {
        let (file, errors) = parse_file(SourceId(0), text);
        assert!(errors.is_empty(), "{errors:?}");
        file.expect("parses")
    }

    fn value(text: &str) -> Expr {
        match parse(&format!("a = {text}")).statements.remove(0) {
            Statement::Assignment(a) => a.value,
            other => panic!("not an assignment: {other:?}"),
        }
    }

    #[test]
    fn precedence_and_associativity() {
        assert_eq!(value("1 + 2 * 3").to_string(), "1 + 2 * 3");
        assert_eq!(value("(1 + 2) * 3").to_string(), "(1 + 2) * 3");
        assert_eq!(value("1 - 2 - 3").to_string(), "1 - 2 - 3");
        assert_eq!(value("1 - (2 - 3)").to_string(), "1 - (2 - 3)");
        assert_eq!(value("8 / 2 / 2").to_string(), "8 / 2 / 2");
        match value("1 - 2 * 3").kind {
            ExprKind::Binary {
                op: BinOp::Sub,
                rhs,
                ..
            } => {
                assert!(matches!(rhs.kind, ExprKind::Binary { op: BinOp::Mul, .. }))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(value("-2 * 3").to_string(), "-2 * 3");
    }

    #[test]
    fn literals_and_spans() {
        assert_eq!(value("3e-4").kind, ExprKind::Float(3e-4));
        assert_eq!(value("1_000").kind, ExprKind::Int(1000));
        assert_eq!(value("1.5E+2").kind, ExprKind::Float(150.0));
        assert_eq!(
            value(r#""a\"b\\c\n\u{e9}""#).kind,
            ExprKind::Str("a\"b\\c\né".into())
        );
        assert_eq!(value("true").kind, ExprKind::Bool(true));
        assert!(matches!(value("trueish").kind, ExprKind::Path(_)));
        let e = value("episode(outcome, norm = zscore)");
        // `a = ` is 4 bytes: the call spans the rest.
        assert_eq!((e.span.start, e.span.end), (4, 35));
        let ExprKind::Call { callee, args } = e.kind else {
            panic!()
        };
        assert_eq!(callee[0].name, "episode");
        assert_eq!(args[1].name.as_ref().unwrap().name, "norm");
        assert_eq!((args[1].span.start, args[1].span.end), (21, 34));
    }

    #[test]
    fn statements() {
        let file = parse(
            "use std::presets::oprl\nuse \"x.oprl\"\nenv sokoban { room = [6, 6], policy_like { a = 1 } }\nreward outcome = judge { rubric = sotopia }\nadvantage = episode(outcome)\n  + step(prm)\n",
        );
        assert_eq!(file.statements.len(), 5);
        assert!(
            matches!(&file.statements[0], Statement::Use(UseDecl { target: UseTarget::Module { segments, .. }, .. }) if segments.len() == 3)
        );
        let Statement::Block(b) = &file.statements[2] else {
            panic!()
        };
        assert_eq!(b.variant.as_ref().unwrap().name, "sokoban");
        assert_eq!(b.body.len(), 2);
        assert!(
            matches!(&file.statements[3], Statement::Definition(d) if matches!(d.value.kind, ExprKind::BlockValue { .. }))
        );
    }

    #[test]
    fn a_block_on_the_next_line_is_not_the_value_of_a_name() {
        let file = parse(
            "policy hf {\n  dtype = bf16\n  lora { rank = 4 }\n  sampling = hf x { a = 1 }\n}\n",
        );
        let Statement::Block(policy) = &file.statements[0] else {
            panic!()
        };
        assert_eq!(policy.body.len(), 3);
        assert!(
            matches!(&policy.body[0], Statement::Assignment(a) if matches!(a.value.kind, ExprKind::Path(_)))
        );
        assert!(matches!(&policy.body[1], Statement::Block(b) if b.kind.name == "lora"));
        assert!(
            matches!(&policy.body[2], Statement::Assignment(a) if matches!(a.value.kind, ExprKind::BlockValue { .. }))
        );
    }

    #[test]
    fn errors_have_codes_and_human_expectations() {
        let (_, errors) = parse_file(SourceId(0), "train { group = }");
        assert_eq!(errors[0].code, Code::SyntaxError);
        assert!(
            errors[0].message.contains("expected a value"),
            "{}",
            errors[0].message
        );
        let (_, errors) = parse_file(SourceId(0), "a = \"\\q\"");
        assert_eq!(errors[0].code, Code::InvalidEscape);
        let (_, errors) = parse_file(SourceId(0), "a = 99999999999999999999");
        assert_eq!(errors[0].code, Code::NumberTooLarge);
        let (_, errors) = parse_file(SourceId(0), "train { use std::presets::oprl }");
        assert_eq!(errors[0].code, Code::UseNotAtTopLevel);
        assert!(parse_override(SourceId(0), "train.group").is_err());
        let o = parse_override(SourceId(0), "train.group=4").unwrap();
        assert_eq!(o.path.len(), 2);
        assert_eq!(o.value.kind, ExprKind::Int(4));
    }
}
