//! Advantage expressions: typed by granularity (episode < step < token) and lowered to
//! [`AdvExpr`]. An expression is a linear combination of estimator terms
//! (`episode(...)`, `step(...)`, `token(...)`); each estimator takes a signal of its own
//! granularity, where a sum inside a signal broadcasts its coarser terms to the finest one.

use super::error::{ArgumentProblem, CheckError, Divided, GranularityProblem, MismatchHint};
use super::schema::{self, FunctionContext};
use super::value::{check_value, describe, eval_const, is_numeric, mismatch, type_mismatch};
use crate::diagnostics::{did_you_mean, SourceMap, Span};
use crate::graph::{default_json, AdvExpr, Norm, Signal, StepGroup};
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
    pub errors: &'a mut Vec<CheckError>,
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
                    self.errors.push(CheckError::DivisionByZero {
                        zero: rhs.span,
                        dividend: lhs.span,
                        divided: Divided::Term,
                    });
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
                self.errors.push(mismatch(
                    "an advantage expression",
                    expr,
                    MismatchHint::AdvantageTerm,
                ));
                None
            }
        }
    }

    fn constant(&mut self, expr: &Expr) -> Option<f64> {
        match eval_const(expr) {
            Ok(c) => Some(c.as_f64()),
            Err(e) => {
                self.errors.push(*e);
                None
            }
        }
    }

    fn constant_term(&mut self, expr: &Expr) -> Option<AdvExpr> {
        self.errors
            .push(CheckError::ConstantTerm { span: expr.span });
        None
    }

    fn non_constant(&mut self, expr: &Expr, lhs: &Expr, rhs: &Expr) -> Option<AdvExpr> {
        self.errors.push(CheckError::NonConstantScale {
            span: expr.span,
            operand: if is_numeric(lhs) { rhs.span } else { lhs.span },
        });
        None
    }

    fn bare_signal(&mut self, expr: &Expr) {
        self.errors.push(CheckError::BareSignal {
            span: expr.span,
            text: expr.to_string(),
        });
    }

    fn unknown_function(&mut self, name: &str, callee: &[Ident], context: FunctionContext) {
        self.errors.push(CheckError::UnknownFunction {
            span: callee[0].span.to(callee[callee.len() - 1].span),
            name: name.to_string(),
            options: schema::FUNCTIONS
                .iter()
                .filter(|f| f.context == context)
                .map(|f| f.name)
                .collect(),
        });
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
                self.errors.push(CheckError::TokenGrouping {
                    group: group.span,
                    callee: callee_span,
                });
                return None;
            }
        }
        let bound = self.bind(function, args, span)?;
        let signal_expr = bound[0].expect("the signal parameter is required");
        let typed = self.signal(signal_expr)?;
        // The options are checked like block keys; with the signal they are the variant's JSON.
        let mut object = serde_json::Map::new();
        object.insert("kind".into(), name.into());
        object.insert("signal".into(), serde_json::to_value(&typed.signal).ok()?);
        let options = function.options.iter().zip(&bound[function.params.len()..]);
        let mut failed = false;
        for (key, expr) in options.clone() {
            let value = match expr {
                Some(e) => match check_value(key, e, &SourceMap::new()) {
                    Ok(value) => Some(value.to_json()),
                    Err(error) => {
                        self.errors.push(*error);
                        failed = true;
                        continue;
                    }
                },
                None => default_json(key),
            };
            object.extend(value.map(|v| (key.field.to_string(), v)));
        }
        if failed {
            return None;
        }
        let written = |option: &str| {
            options
                .clone()
                .find(|(k, _)| k.key == option)
                .and_then(|(_, e)| e.map(|e| e.span))
        };
        let want = match name {
            "episode" => Granularity::Episode,
            "step" => Granularity::Step,
            _ => Granularity::Token,
        };
        self.check_granularity(name, want, &typed, signal_expr, callee_span)?;
        let estimator: AdvExpr = serde_json::from_value(object.into())
            .expect("an estimator's options deserialise into its variant");
        match &estimator {
            AdvExpr::Episode { norm, .. } if *norm != Norm::None => {
                self.info
                    .group_baselines
                    .push(written("norm").unwrap_or(span));
            }
            AdvExpr::Step {
                group: StepGroup::Pool,
                similarity: Some(_),
                ..
            } => {
                self.errors.push(CheckError::SimilarityWithoutAnchorState {
                    similarity: written("similarity").unwrap_or(span),
                    group: written("group"),
                    callee: callee_span,
                });
                return None;
            }
            _ => {}
        }
        Some(estimator)
    }

    fn check_granularity(
        &mut self,
        name: &str,
        want: Granularity,
        typed: &TypedSignal,
        signal: &Expr,
        callee: Span,
    ) -> Option<()> {
        let problem = match want {
            Granularity::Episode if typed.finest > Granularity::Episode => {
                GranularityProblem::EpisodeOfStep {
                    term: typed
                        .fine_term
                        .as_ref()
                        .map_or_else(|| signal.to_string(), |(term, _)| term.clone()),
                    signal: signal.to_string(),
                }
            }
            Granularity::Step if typed.finest < Granularity::Step => {
                GranularityProblem::StepOfEpisode {
                    signal: signal.to_string(),
                }
            }
            Granularity::Token if typed.not_token.is_some() => {
                GranularityProblem::TokenWithoutForm {
                    term: typed.not_token.clone().expect("checked").0,
                }
            }
            Granularity::Token if typed.finest < Granularity::Step => {
                GranularityProblem::TokenOfEpisode {
                    signal: signal.to_string(),
                }
            }
            _ => return Some(()),
        };
        self.errors.push(CheckError::Granularity {
            signal: signal.span,
            callee,
            estimator: name.to_string(),
            level: want.word(),
            problem,
        });
        None
    }

    /// Matches arguments to parameters: positional first, then named. One slot per parameter.
    fn bind<'e>(
        &mut self,
        function: &schema::FunctionSchema,
        args: &'e [Arg],
        span: Span,
    ) -> Option<Vec<Option<&'e Expr>>> {
        let names: Vec<&str> = function.parameters().map(|(name, _)| name).collect();
        let mut slots: Vec<Option<&Expr>> = vec![None; names.len()];
        let mut ok = true;
        let mut seen_named = false;
        let signature = || function.signature();
        for (i, arg) in args.iter().enumerate() {
            let problem = match &arg.name {
                None if seen_named => Some(ArgumentProblem::PositionalAfterNamed),
                None if i >= names.len() => Some(ArgumentProblem::TooMany {
                    function: function.name,
                    max: names.len(),
                }),
                None => {
                    slots[i] = Some(&arg.value);
                    None
                }
                Some(name) => {
                    seen_named = true;
                    match names.iter().position(|p| *p == name.name) {
                        Some(p) if slots[p].is_some() => Some(ArgumentProblem::Repeated {
                            name: name.name.clone(),
                        }),
                        Some(p) => {
                            slots[p] = Some(&arg.value);
                            None
                        }
                        None => Some(ArgumentProblem::Unknown {
                            function: function.name,
                            name: name.name.clone(),
                            suggestion: did_you_mean(&name.name, names.iter().copied()),
                        }),
                    }
                }
            };
            if let Some(problem) = problem {
                ok = false;
                self.errors.push(CheckError::BadArguments {
                    span: arg.span,
                    problem,
                    signature: signature(),
                });
            }
        }
        for (slot, param) in slots.iter().zip(function.params) {
            if slot.is_none() && ok {
                ok = false;
                self.errors.push(CheckError::BadArguments {
                    span,
                    problem: ArgumentProblem::Missing {
                        function: function.name,
                        name: param.name,
                    },
                    signature: signature(),
                });
            }
        }
        ok.then_some(slots)
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
                            self.errors.push(CheckError::OutOfRange {
                                span: gamma_expr.span,
                                key: "gamma".into(),
                                range: schema::Range::UNIT,
                                value: gamma,
                            });
                            return None;
                        }
                        if inner.finest != Granularity::Step {
                            self.errors.push(CheckError::DiscountedEpisode {
                                inner: inner_expr.span,
                                callee: callee[0].span.to(callee[callee.len() - 1].span),
                                text: inner_expr.to_string(),
                            });
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
                        self.errors.push(CheckError::NestedEstimator {
                            span: expr.span,
                            name,
                        });
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
                        self.errors.push(CheckError::DivisionByZero {
                            zero: rhs.span,
                            dividend: lhs.span,
                            divided: Divided::Signal,
                        });
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
                self.errors.push(CheckError::NotASignal {
                    span: expr.span,
                    found: describe(expr),
                    signals: schema::SIGNALS,
                });
                None
            }
        }
    }

    fn constant_checked(&mut self, expr: &Expr) -> Option<f64> {
        if !is_numeric(expr) {
            self.errors.push(type_mismatch("a number", expr));
            return None;
        }
        self.constant(expr)
    }

    fn unknown_signal(&mut self, name: &str, span: Span) {
        self.errors.push(CheckError::UnknownSignal {
            span,
            name: name.to_string(),
            signals: schema::SIGNALS,
            is_other_reward: self.other_rewards.iter().any(|r| r == name),
        });
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
        mut term => {
            if let Some(signal) = term.signal_mut() {
                *signal = canonical_signal(signal.clone());
            }
            term
        }
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
