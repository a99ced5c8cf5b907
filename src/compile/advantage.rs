//! Advantage expressions: typed by granularity (episode < step < token) and lowered to
//! [`AdvExpr`]. An expression is a linear combination of estimator terms
//! (`episode(...)`, `step(...)`, `token(...)`); each estimator takes a signal of its own
//! granularity, where a sum inside a signal broadcasts its coarser terms to the finest one.

use super::schema::{self, FunctionContext, NORMS, STEP_GROUPS};
use super::value::{describe, eval_const, is_numeric, type_mismatch};
use crate::diagnostics::{backticked_list, did_you_mean, Code, Diagnostic, Span};
use crate::graph::{AdvExpr, Norm, Signal, StepGroup};
use crate::syntax::ast::{dotted, Arg, BinOp, Expr, ExprKind, Ident};

/// Signal granularity, coarsest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Granularity {
    Episode,
    Step,
    Token,
}

impl Granularity {
    fn word(self) -> &'static str {
        match self {
            Granularity::Episode => "episode-level",
            Granularity::Step => "step-level",
            Granularity::Token => "token-level",
        }
    }
}

/// What a checked advantage expression reads, for the rules and for lowering.
#[derive(Debug, Clone, Default)]
pub struct AdvantageInfo {
    /// Span of every place that reads `prm`.
    pub reads_prm: Vec<Span>,
    /// Span of every place that reads `env.reward`.
    pub reads_env_reward: Vec<Span>,
    /// Spans of episode terms with a group baseline (`zscore`, `rloo`, `mean`, `mean_whiten`):
    /// the norm argument, or the call when the default applies.
    pub group_baselines: Vec<Span>,
}

/// A checked signal: its value, its finest granularity, and whether it exists per token.
struct TypedSignal {
    signal: Signal,
    finest: Granularity,
    /// The first term that has no token-level form (for `token(...)` errors).
    not_token: Option<(String, Span)>,
    /// The first step-or-finer term (for `episode(...)` errors).
    fine_term: Option<(String, Span)>,
}

pub struct AdvantageChecker<'a> {
    pub diagnostics: &'a mut Vec<Diagnostic>,
    pub info: AdvantageInfo,
    /// Names of reward definitions other than `outcome`, for a precise unknown-name help.
    pub other_rewards: Vec<String>,
}

impl AdvantageChecker<'_> {
    /// Checks an advantage expression; `None` after reporting errors.
    pub fn check(&mut self, expr: &Expr) -> Option<AdvExpr> {
        let adv = self.term(expr)?;
        Some(canonical(adv))
    }

    fn term(&mut self, expr: &Expr) -> Option<AdvExpr> {
        match &expr.kind {
            ExprKind::Binary {
                op: op @ (BinOp::Add | BinOp::Sub),
                lhs,
                rhs,
            } => {
                let (l, r) = (self.term(lhs), self.term(rhs));
                let (l, r) = (l?, r?);
                let r = if *op == BinOp::Sub {
                    AdvExpr::Scale {
                        factor: -1.0,
                        expr: Box::new(r),
                    }
                } else {
                    r
                };
                Some(AdvExpr::Add { terms: vec![l, r] })
            }
            ExprKind::Binary {
                op: BinOp::Mul,
                lhs,
                rhs,
            } => {
                let (factor, other) = match (is_numeric(lhs), is_numeric(rhs)) {
                    (true, false) => (lhs, rhs),
                    (false, true) => (rhs, lhs),
                    (true, true) => return self.constant_term(expr),
                    (false, false) => return self.non_constant(expr, lhs, rhs),
                };
                let factor = self.constant(factor)?;
                let inner = self.term(other)?;
                Some(AdvExpr::Scale {
                    factor,
                    expr: Box::new(inner),
                })
            }
            ExprKind::Binary {
                op: BinOp::Div,
                lhs,
                rhs,
            } => {
                if !is_numeric(rhs) {
                    return self.non_constant(expr, lhs, rhs);
                }
                if is_numeric(lhs) {
                    return self.constant_term(expr);
                }
                let divisor = self.constant(rhs)?;
                if divisor == 0.0 {
                    self.diagnostics.push(
                        Diagnostic::new(Code::DivisionByZero, "division by zero")
                            .label(rhs.span, "this is zero")
                            .label(lhs.span, "divided by it")
                            .help("scale a term by a non-zero constant"),
                    );
                    return None;
                }
                let inner = self.term(lhs)?;
                Some(AdvExpr::Scale {
                    factor: 1.0 / divisor,
                    expr: Box::new(inner),
                })
            }
            ExprKind::Neg(inner) => {
                let inner = self.term(inner)?;
                Some(AdvExpr::Scale {
                    factor: -1.0,
                    expr: Box::new(inner),
                })
            }
            ExprKind::Call { callee, args } => {
                let name = dotted(callee);
                match schema::function(&name) {
                    Some(f) if f.context == FunctionContext::Estimator => {
                        self.estimator(&name, callee, args, expr.span)
                    }
                    Some(f) if f.context == FunctionContext::Signal => {
                        self.bare_signal(expr);
                        None
                    }
                    _ => {
                        self.unknown_function(&name, callee, FunctionContext::Estimator);
                        None
                    }
                }
            }
            ExprKind::Path(_) => {
                // Report an unknown name as such; a known signal is misplaced.
                self.signal(expr)?;
                self.bare_signal(expr);
                None
            }
            _ if is_numeric(expr) => self.constant_term(expr),
            _ => {
                self.diagnostics
                    .push(type_mismatch("an advantage expression", expr).help(
                    "an advantage is a sum of `episode(...)`, `step(...)` and `token(...)` terms",
                ));
                None
            }
        }
    }

    fn constant(&mut self, expr: &Expr) -> Option<f64> {
        match eval_const(expr) {
            Ok(c) => Some(c.as_f64()),
            Err(d) => {
                self.diagnostics.push(d);
                None
            }
        }
    }

    fn constant_term(&mut self, expr: &Expr) -> Option<AdvExpr> {
        self.diagnostics.push(
            Diagnostic::new(Code::MisplacedTerm, "a constant is not an advantage term")
                .label(expr.span, "a number on its own")
                .help("a constant shifts every advantage equally; scale a term instead, as in `0.5 * step(prm)`"),
        );
        None
    }

    fn non_constant(&mut self, expr: &Expr, lhs: &Expr, rhs: &Expr) -> Option<AdvExpr> {
        self.diagnostics.push(
            Diagnostic::new(
                Code::NonConstantScale,
                "advantage terms can only be scaled by constants",
            )
            .label(expr.span, "a product or quotient of two terms")
            .label(
                if is_numeric(lhs) { rhs.span } else { lhs.span },
                "not a constant",
            )
            .help(
                "add terms and scale them by numbers, as in `episode(outcome) + 0.5 * step(prm)`",
            ),
        );
        None
    }

    fn bare_signal(&mut self, expr: &Expr) {
        self.diagnostics.push(
            Diagnostic::new(
                Code::MisplacedTerm,
                format!("signal `{expr}` is not an advantage term"),
            )
            .label(expr.span, "a bare signal has no estimator")
            .help(format!(
                "wrap it in an estimator, as in `episode({expr}, norm = rloo)` or `step({expr})`"
            )),
        );
    }

    fn unknown_function(&mut self, name: &str, callee: &[Ident], context: FunctionContext) {
        let span = callee[0].span.to(callee[callee.len() - 1].span);
        let options: Vec<&str> = schema::FUNCTIONS
            .iter()
            .filter(|f| f.context == context)
            .map(|f| f.name)
            .collect();
        let d = Diagnostic::new(Code::UnknownFunction, format!("unknown function `{name}`"))
            .label(span, "not a function here");
        let d = match did_you_mean(name, options.iter().copied()) {
            Some(s) => d.help(format!(
                "did you mean `{s}`? the functions here are {}",
                backticked_list(options.iter().copied())
            )),
            None => d.help(format!(
                "the functions here are {}",
                backticked_list(options.iter().copied())
            )),
        };
        self.diagnostics.push(d);
    }

    /// `episode(signal, norm = ...)`, `step(signal, norm, group, maxabs)`, `token(signal, norm)`.
    fn estimator(
        &mut self,
        name: &str,
        callee: &[Ident],
        args: &[Arg],
        span: Span,
    ) -> Option<AdvExpr> {
        let function = schema::function(name).expect("estimator names come from the table");
        let callee_span = callee[0].span.to(callee[callee.len() - 1].span);
        // Anchor-state grouping on a token signal: say why, rather than "unknown argument".
        if name == "token" {
            if let Some(group) = args
                .iter()
                .find(|a| a.name.as_ref().is_some_and(|n| n.name == "group"))
            {
                self.diagnostics.push(
                    Diagnostic::new(Code::Granularity, "step grouping on a token-level estimator")
                        .label(group.span, "`group` groups steps")
                        .label(callee_span, "this estimator is token-level")
                        .help("anchor-state grouping compares whole steps: use `step(..., group = anchor_state)`"),
                );
                return None;
            }
        }
        let bound = self.bind(function, args, span)?;
        let signal_expr = bound[0].expect("the signal parameter is required");
        let typed = self.signal(signal_expr)?;
        let mut norm = Norm::Zscore;
        let mut norm_span = None;
        if let Some(e) = bound[1] {
            norm = self.enum_arg(e, NORMS, parse_norm)?;
            norm_span = Some(e.span);
        }
        let want = match name {
            "episode" => Granularity::Episode,
            "step" => Granularity::Step,
            _ => Granularity::Token,
        };
        self.check_granularity(name, want, &typed, signal_expr, callee_span)?;
        match name {
            "episode" => {
                if norm != Norm::None {
                    self.info.group_baselines.push(norm_span.unwrap_or(span));
                }
                Some(AdvExpr::Episode {
                    signal: typed.signal,
                    norm,
                })
            }
            "step" => {
                let group = match bound[2] {
                    Some(e) => self.enum_arg(e, STEP_GROUPS, |s| match s {
                        "anchor_state" => StepGroup::AnchorState,
                        _ => StepGroup::Pool,
                    })?,
                    None => StepGroup::Pool,
                };
                let maxabs = match bound[3] {
                    Some(Expr {
                        kind: ExprKind::Bool(b),
                        ..
                    }) => *b,
                    Some(e) => {
                        self.diagnostics.push(type_mismatch("`true` or `false`", e));
                        return None;
                    }
                    None => false,
                };
                Some(AdvExpr::Step {
                    signal: typed.signal,
                    norm,
                    group,
                    maxabs,
                    similarity: None,
                })
            }
            _ => Some(AdvExpr::Token {
                signal: typed.signal,
                norm,
            }),
        }
    }

    fn check_granularity(
        &mut self,
        name: &str,
        want: Granularity,
        typed: &TypedSignal,
        signal: &Expr,
        callee: Span,
    ) -> Option<()> {
        let error = |message: String, label: String, help: String| {
            Diagnostic::new(Code::Granularity, message)
                .label(signal.span, label)
                .label(callee, format!("`{name}` is {}", want.word()))
                .help(help)
        };
        match want {
            Granularity::Episode if typed.finest > Granularity::Episode => {
                let (term, _) = typed
                    .fine_term
                    .clone()
                    .unwrap_or_else(|| (signal.to_string(), signal.span));
                self.diagnostics.push(error(
                    format!("`episode` needs an episode-level signal, but `{term}` is step-level"),
                    "step-level signal".into(),
                    format!("use `step({signal})` for a step-level signal"),
                ));
                None
            }
            Granularity::Step if typed.finest < Granularity::Step => {
                self.diagnostics.push(error(
                    format!("`step` needs a step-level signal, but `{signal}` is episode-level"),
                    "episode-level signal".into(),
                    format!("use `episode({signal})`, or add a step-level signal as in `step({signal} + prm)`"),
                ));
                None
            }
            Granularity::Token if typed.not_token.is_some() => {
                let (term, _) = typed.not_token.clone().expect("checked");
                self.diagnostics.push(error(
                    format!(
                        "`token` needs a token-level signal, but `{term}` has no token-level form"
                    ),
                    "not token-level".into(),
                    "only `prm` exists per token; use `step(...)` for step rewards".into(),
                ));
                None
            }
            Granularity::Token if typed.finest < Granularity::Step => {
                self.diagnostics.push(error(
                    format!("`token` needs a token-level signal, but `{signal}` is episode-level"),
                    "episode-level signal".into(),
                    format!("use `episode({signal})`"),
                ));
                None
            }
            _ => Some(()),
        }
    }

    /// Matches arguments to parameters: positional first, then named. One slot per parameter.
    fn bind<'e>(
        &mut self,
        function: &schema::FunctionSchema,
        args: &'e [Arg],
        span: Span,
    ) -> Option<Vec<Option<&'e Expr>>> {
        let mut slots: Vec<Option<&Expr>> = vec![None; function.params.len()];
        let mut ok = true;
        let mut seen_named = false;
        for (i, arg) in args.iter().enumerate() {
            let problem = match &arg.name {
                None if seen_named => Some((
                    "a positional argument after a named one".to_string(),
                    "positional".to_string(),
                )),
                None if i >= function.params.len() => Some((
                    format!(
                        "`{}` takes at most {} arguments",
                        function.name,
                        function.params.len()
                    ),
                    "extra argument".to_string(),
                )),
                None => {
                    slots[i] = Some(&arg.value);
                    None
                }
                Some(name) => {
                    seen_named = true;
                    match function.params.iter().position(|p| p.name == name.name) {
                        Some(p) if slots[p].is_some() => Some((
                            format!("argument `{}` is given twice", name.name),
                            "repeated".to_string(),
                        )),
                        Some(p) => {
                            slots[p] = Some(&arg.value);
                            None
                        }
                        None => {
                            let names = function.params.iter().map(|p| p.name);
                            let hint = did_you_mean(&name.name, names)
                                .map(|s| format!(" (did you mean `{s}`?)"))
                                .unwrap_or_default();
                            Some((
                                format!(
                                    "`{}` has no argument `{}`{hint}",
                                    function.name, name.name
                                ),
                                "unknown argument".to_string(),
                            ))
                        }
                    }
                }
            };
            if let Some((message, label)) = problem {
                ok = false;
                self.diagnostics.push(
                    Diagnostic::new(Code::BadArguments, message)
                        .label(arg.span, label)
                        .help(format!("the signature is `{}`", function.signature())),
                );
            }
        }
        for (slot, param) in slots.iter().zip(function.params) {
            if slot.is_none() && param.default.is_none() && ok {
                ok = false;
                self.diagnostics.push(
                    Diagnostic::new(
                        Code::BadArguments,
                        format!(
                            "`{}` is missing its `{}` argument",
                            function.name, param.name
                        ),
                    )
                    .label(span, format!("no `{}`", param.name))
                    .help(format!("the signature is `{}`", function.signature())),
                );
            }
        }
        ok.then_some(slots)
    }

    fn enum_arg<T>(
        &mut self,
        expr: &Expr,
        options: &'static [&'static str],
        parse: impl Fn(&str) -> T,
    ) -> Option<T> {
        let key = super::schema::KeySchema {
            key: "argument",
            ty: super::schema::Ty::Name(options),
            default: super::schema::DefaultValue::Required,
            doc: "",
            range: super::schema::Range::ANY,
        };
        match super::value::check_value(&key, expr, &crate::diagnostics::SourceMap::new()) {
            Ok(super::value::Value::Name(n)) => Some(parse(&n)),
            Ok(_) => None,
            Err(d) => {
                self.diagnostics.push(d);
                None
            }
        }
    }

    /// Types a signal expression.
    fn signal(&mut self, expr: &Expr) -> Option<TypedSignal> {
        match &expr.kind {
            ExprKind::Path(p) => {
                let name = dotted(p);
                let (signal, finest, token) = match name.as_str() {
                    "outcome" => (Signal::Outcome, Granularity::Episode, true),
                    "prm" => {
                        self.info.reads_prm.push(expr.span);
                        (Signal::Prm, Granularity::Step, true)
                    }
                    "env.reward" => {
                        self.info.reads_env_reward.push(expr.span);
                        (Signal::EnvReward, Granularity::Step, false)
                    }
                    _ => {
                        self.unknown_signal(&name, expr.span);
                        return None;
                    }
                };
                Some(TypedSignal {
                    signal,
                    finest,
                    not_token: (!token).then(|| (name.clone(), expr.span)),
                    fine_term: (finest > Granularity::Episode).then_some((name, expr.span)),
                })
            }
            ExprKind::Call { callee, args } => {
                let name = dotted(callee);
                match schema::function(&name) {
                    Some(f) if f.context == FunctionContext::Signal => {
                        let bound = self.bind(f, args, expr.span)?;
                        let inner_expr = bound[0].expect("required");
                        let gamma_expr = bound[1].expect("required");
                        let inner = self.signal(inner_expr)?;
                        let gamma = self.constant_checked(gamma_expr)?;
                        if !(0.0..=1.0).contains(&gamma) {
                            self.diagnostics.push(super::value::out_of_range(
                                "gamma",
                                schema::Range::UNIT,
                                gamma,
                                gamma_expr.span,
                            ));
                            return None;
                        }
                        if inner.finest != Granularity::Step {
                            let callee_span = callee[0].span.to(callee[callee.len() - 1].span);
                            self.diagnostics.push(
                                Diagnostic::new(Code::Granularity, format!("`discounted` needs a step-level signal, but `{inner_expr}` is episode-level"))
                                    .label(inner_expr.span, "episode-level signal")
                                    .label(callee_span, "discounts over steps")
                                    .help("discount step rewards, as in `discounted(env.reward, 0.95)`"),
                            );
                            return None;
                        }
                        Some(TypedSignal {
                            signal: Signal::Discounted {
                                signal: Box::new(inner.signal),
                                gamma,
                            },
                            finest: Granularity::Step,
                            not_token: Some((expr.to_string(), expr.span)),
                            fine_term: Some((expr.to_string(), expr.span)),
                        })
                    }
                    Some(f) if f.context == FunctionContext::Estimator => {
                        self.diagnostics.push(
                            Diagnostic::new(Code::MisplacedTerm, format!("estimator `{name}` inside another estimator"))
                                .label(expr.span, "an estimator, not a signal")
                                .help("an estimator takes a signal (`outcome`, `prm`, `env.reward`); add estimators instead of nesting them"),
                        );
                        None
                    }
                    _ => {
                        self.unknown_function(&name, callee, FunctionContext::Signal);
                        None
                    }
                }
            }
            ExprKind::Binary {
                op: op @ (BinOp::Add | BinOp::Sub),
                lhs,
                rhs,
            } => {
                let (l, r) = (self.signal(lhs), self.signal(rhs));
                let (l, r) = (l?, r?);
                let sign = if *op == BinOp::Sub { -1.0 } else { 1.0 };
                let mut terms = sum_terms(l.signal, 1.0);
                terms.extend(sum_terms(r.signal, sign));
                Some(TypedSignal {
                    signal: Signal::Sum { terms },
                    finest: l.finest.max(r.finest),
                    not_token: l.not_token.or(r.not_token),
                    fine_term: l.fine_term.or(r.fine_term),
                })
            }
            ExprKind::Binary {
                op: op @ (BinOp::Mul | BinOp::Div),
                lhs,
                rhs,
            } => {
                let (factor_expr, inner_expr) = match (is_numeric(lhs), is_numeric(rhs), op) {
                    (true, false, BinOp::Mul) => (lhs, rhs),
                    (false, true, _) => (rhs, lhs),
                    _ => {
                        self.non_constant(expr, lhs, rhs);
                        return None;
                    }
                };
                let mut factor = self.constant_checked(factor_expr)?;
                if *op == BinOp::Div {
                    if factor == 0.0 {
                        self.diagnostics.push(
                            Diagnostic::new(Code::DivisionByZero, "division by zero")
                                .label(rhs.span, "this is zero")
                                .label(lhs.span, "divided by it")
                                .help("scale a signal by a non-zero constant"),
                        );
                        return None;
                    }
                    factor = 1.0 / factor;
                }
                let inner = self.signal(inner_expr)?;
                Some(TypedSignal {
                    signal: Signal::Sum {
                        terms: sum_terms(inner.signal, factor),
                    },
                    ..inner
                })
            }
            ExprKind::Neg(inner) => {
                let inner = self.signal(inner)?;
                Some(TypedSignal {
                    signal: Signal::Sum {
                        terms: sum_terms(inner.signal, -1.0),
                    },
                    ..inner
                })
            }
            _ => {
                let found = describe(expr);
                self.diagnostics.push(
                    Diagnostic::new(
                        Code::TypeMismatch,
                        format!("expected a signal, found {found}"),
                    )
                    .label(expr.span, format!("this is {found}"))
                    .help(format!(
                        "the signals are {}",
                        backticked_list(schema::SIGNALS.iter().copied())
                    )),
                );
                None
            }
        }
    }

    fn constant_checked(&mut self, expr: &Expr) -> Option<f64> {
        if !is_numeric(expr) {
            self.diagnostics.push(type_mismatch("a number", expr));
            return None;
        }
        self.constant(expr)
    }

    fn unknown_signal(&mut self, name: &str, span: Span) {
        let d = Diagnostic::new(Code::UnknownName, format!("unknown signal `{name}`"))
            .label(span, "not a signal");
        let d = if self.other_rewards.iter().any(|r| r == name) {
            d.help(format!("`{name}` is a reward definition, but only `reward outcome` feeds advantages; the signals are {}", backticked_list(schema::SIGNALS.iter().copied())))
        } else {
            match did_you_mean(name, schema::SIGNALS.iter().copied()) {
                Some(s) => d.help(format!(
                    "did you mean `{s}`? the signals are {}",
                    backticked_list(schema::SIGNALS.iter().copied())
                )),
                None => d.help(format!(
                    "the signals are {}",
                    backticked_list(schema::SIGNALS.iter().copied())
                )),
            }
        };
        self.diagnostics.push(d);
    }
}

fn parse_norm(s: &str) -> Norm {
    match s {
        "rloo" => Norm::Rloo,
        "mean" => Norm::Mean,
        "mean_whiten" => Norm::MeanWhiten,
        "none" => Norm::None,
        _ => Norm::Zscore,
    }
}

/// A signal as weighted terms, flattening nested sums.
fn sum_terms(signal: Signal, factor: f64) -> Vec<(f64, Signal)> {
    match signal {
        Signal::Sum { terms } => terms.into_iter().map(|(w, s)| (w * factor, s)).collect(),
        other => vec![(factor, other)],
    }
}

/// Canonical form: nested sums flattened, unit scales dropped, nested scales multiplied,
/// and a one-term unit-weight signal sum unwrapped to the signal itself.
pub fn canonical(expr: AdvExpr) -> AdvExpr {
    match expr {
        AdvExpr::Add { terms } => {
            let mut flat = Vec::new();
            for t in terms {
                match canonical(t) {
                    AdvExpr::Add { terms } => flat.extend(terms),
                    other => flat.push(other),
                }
            }
            AdvExpr::Add { terms: flat }
        }
        AdvExpr::Scale { factor, expr } => match canonical(*expr) {
            AdvExpr::Scale {
                factor: inner,
                expr,
            } => canonical(AdvExpr::Scale {
                factor: factor * inner,
                expr,
            }),
            inner if factor == 1.0 => inner,
            inner => AdvExpr::Scale {
                factor,
                expr: Box::new(inner),
            },
        },
        AdvExpr::Episode { signal, norm } => AdvExpr::Episode {
            signal: canonical_signal(signal),
            norm,
        },
        AdvExpr::Step {
            signal,
            norm,
            group,
            maxabs,
            similarity,
        } => AdvExpr::Step {
            signal: canonical_signal(signal),
            norm,
            group,
            maxabs,
            similarity,
        },
        AdvExpr::Token { signal, norm } => AdvExpr::Token {
            signal: canonical_signal(signal),
            norm,
        },
        other => other,
    }
}

fn canonical_signal(signal: Signal) -> Signal {
    match signal {
        Signal::Sum { terms } if terms.len() == 1 && terms[0].0 == 1.0 => {
            canonical_signal(terms.into_iter().next().expect("one term").1)
        }
        Signal::Sum { terms } => Signal::Sum {
            terms: terms
                .into_iter()
                .map(|(w, s)| (w, canonical_signal(s)))
                .collect(),
        },
        Signal::Discounted { signal, gamma } => Signal::Discounted {
            signal: Box::new(canonical_signal(*signal)),
            gamma,
        },
        other => other,
    }
}
