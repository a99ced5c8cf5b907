//! The checker: every block against its schema (closed: unknown keys are errors), rewards,
//! the advantage expression, derived defaults, then the cross-field rules and dead-config
//! warnings. Its output, a [`CheckedRecipe`], has every key of every block filled in.

use super::advantage::{AdvantageChecker, AdvantageInfo};
use super::resolve::{BlockNode, Entry, Item, Recipe, ValueNode};
use super::schema::{self, BlockSchema, DefaultValue, KeySchema, Ty};
use super::value::{check_value, type_mismatch, Value};
use crate::diagnostics::{
    backticked_list, did_you_mean, Code, Diagnostic, Origin, SourceId, SourceMap, Span,
};
use crate::graph::{AdvExpr, VerifierSignal};
use crate::syntax::ast::{dotted, Expr, ExprKind, Ident, Statement};
use indexmap::IndexMap;

/// A block with every key checked and every default filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedBlock {
    pub schema: &'static BlockSchema,
    /// `kind variant` as written; `None` for a block made of defaults only.
    pub head: Option<Span>,
    pub fields: IndexMap<&'static str, Field>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    Value(Value),
    Block(CheckedBlock),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub value: FieldValue,
    /// The value's span when written in a recipe; `None` for defaults.
    pub span: Option<Span>,
}

impl CheckedBlock {
    fn value(&self, key: &str) -> &Value {
        match self.fields.get(key).map(|f| &f.value) {
            Some(FieldValue::Value(v)) => v,
            other => panic!(
                "checker invariant: `{}.{key}` is a value, found {other:?}",
                self.schema.title()
            ),
        }
    }

    pub fn int(&self, key: &str) -> i64 {
        match self.value(key) {
            Value::Int(i) => *i,
            other => panic!("checker invariant: `{key}` is an integer, found {other:?}"),
        }
    }

    /// A count or size: ranges keep these non-negative.
    pub fn usize(&self, key: &str) -> usize {
        usize::try_from(self.int(key)).unwrap_or(0)
    }

    pub fn float(&self, key: &str) -> f64 {
        match self.value(key) {
            Value::Float(x) => *x,
            Value::Int(i) => *i as f64,
            other => panic!("checker invariant: `{key}` is a number, found {other:?}"),
        }
    }

    pub fn bool(&self, key: &str) -> bool {
        match self.value(key) {
            Value::Bool(b) => *b,
            other => panic!("checker invariant: `{key}` is a boolean, found {other:?}"),
        }
    }

    /// A string, name or path.
    pub fn str(&self, key: &str) -> &str {
        match self.value(key) {
            Value::Str(s) | Value::Name(s) => s,
            other => panic!("checker invariant: `{key}` is a string, found {other:?}"),
        }
    }

    /// An optional string: `None` when unset.
    pub fn opt_str(&self, key: &str) -> Option<&str> {
        self.fields.contains_key(key).then(|| self.str(key))
    }

    pub fn int_list(&self, key: &str) -> &[i64] {
        match self.value(key) {
            Value::IntList(v) => v,
            other => panic!("checker invariant: `{key}` is an integer list, found {other:?}"),
        }
    }

    pub fn str_list(&self, key: &str) -> &[String] {
        match self.value(key) {
            Value::StrList(v) => v,
            other => panic!("checker invariant: `{key}` is a string list, found {other:?}"),
        }
    }

    pub fn block(&self, key: &str) -> &CheckedBlock {
        match self.fields.get(key).map(|f| &f.value) {
            Some(FieldValue::Block(b)) => b,
            other => panic!("checker invariant: `{key}` is a block, found {other:?}"),
        }
    }

    /// The span of a written value; `None` for defaults.
    pub fn span(&self, key: &str) -> Option<Span> {
        self.fields.get(key).and_then(|f| f.span)
    }

    pub fn variant(&self) -> Option<&'static str> {
        self.schema.variant
    }

    fn insert(&mut self, key: &'static str, value: Value) {
        self.fields.insert(
            key,
            Field {
                value: FieldValue::Value(value),
                span: None,
            },
        );
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum CheckedReward {
    Verifier { signal: VerifierSignal, span: Span },
    Judge { block: CheckedBlock, span: Span },
}

impl CheckedReward {
    pub fn span(&self) -> Span {
        match self {
            CheckedReward::Verifier { span, .. } | CheckedReward::Judge { span, .. } => *span,
        }
    }
}

/// A checked recipe. In a complete recipe `env`, `policy` and `reward` are present.
#[derive(Debug, Clone)]
pub struct CheckedRecipe {
    pub env: Option<CheckedBlock>,
    pub policy: Option<CheckedBlock>,
    pub reward: Option<CheckedReward>,
    /// The PRM block, written or all defaults.
    pub prm: CheckedBlock,
    pub advantage: Option<(AdvExpr, Expr)>,
    pub advantage_info: AdvantageInfo,
    pub algorithm: CheckedBlock,
    pub train: CheckedBlock,
    pub eval: CheckedBlock,
    pub output: CheckedBlock,
}

impl CheckedRecipe {
    /// True when the compiled graph needs a PRM: the advantage reads `prm`, or the algorithm is PRIME.
    pub fn needs_prm(&self) -> bool {
        self.algorithm.variant() == Some("prime")
            || (self.algorithm.variant() == Some("ppo")
                && !self.advantage_info.reads_prm.is_empty())
    }
}

pub struct Checker<'a> {
    pub sources: &'a SourceMap,
    pub diagnostics: &'a mut Vec<Diagnostic>,
    /// The source the user asked to check: dead-config warnings are reported only for what it
    /// (or `--set`) writes, not for imported presets.
    pub root: Option<SourceId>,
    /// Checking a module on its own: missing top-level items are not errors.
    pub fragment: bool,
}

impl Checker<'_> {
    pub fn check(&mut self, recipe: &Recipe) -> Option<CheckedRecipe> {
        let errors_before = self.error_count();
        let mut env = None;
        let mut policy = None;
        let mut reward = None;
        let mut blocks: IndexMap<&str, CheckedBlock> = IndexMap::new();
        let mut advantage_expr: Option<&Expr> = None;
        let other_rewards: Vec<String> = recipe
            .items
            .keys()
            .filter_map(|k| k.strip_prefix("reward."))
            .filter(|n| *n != "outcome")
            .map(str::to_string)
            .collect();
        for (slot, item) in &recipe.items {
            match (slot.as_str(), item) {
                ("advantage", Item::Value(v)) => advantage_expr = Some(&v.expr),
                (slot, Item::Value(v)) if slot.starts_with("reward.") => {
                    let checked = self.reward(v);
                    if v.key.name == "outcome" {
                        reward = checked;
                    } else if self.is_user(v.key.span) {
                        self.diagnostics.push(
                            Diagnostic::new(Code::UnusedReward, format!("reward `{}` is never used", v.key.name))
                                .label(v.key.span, "not the outcome reward")
                                .help("only `reward outcome` feeds the advantage; rename it to `outcome` or remove it"),
                        );
                    }
                }
                (kind, Item::Block(b)) => {
                    let kind = schema::TOP_LEVEL
                        .iter()
                        .find(|t| t.kind == kind)
                        .map(|t| t.kind)
                        .unwrap_or("env");
                    if let Some(checked) = self.block(kind, b) {
                        match kind {
                            "env" => env = Some(checked),
                            "policy" => policy = Some(checked),
                            _ => {
                                blocks.insert(kind, checked);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        let default_block = |kind: &str, variant: Option<&str>| {
            default_block(schema::block(kind, variant).expect("schema has it"))
        };
        let mut prm = blocks
            .shift_remove("prm")
            .unwrap_or_else(|| default_block("prm", None));
        let mut algorithm = blocks
            .shift_remove("algorithm")
            .unwrap_or_else(|| default_block("algorithm", Some("ppo")));
        let train = blocks
            .shift_remove("train")
            .unwrap_or_else(|| default_block("train", None));
        let eval = blocks
            .shift_remove("eval")
            .unwrap_or_else(|| default_block("eval", None));
        let output = blocks
            .shift_remove("output")
            .unwrap_or_else(|| default_block("output", None));

        let mut checker = AdvantageChecker {
            diagnostics: self.diagnostics,
            info: AdvantageInfo::default(),
            other_rewards,
        };
        let advantage = advantage_expr.and_then(|e| checker.check(e).map(|a| (a, e.clone())));
        let advantage_info = checker.info;

        if !self.fragment {
            let root_span = Span::new(self.root.unwrap_or(SourceId(0)), 0, 0);
            let missing = |what: &str, help: &str| {
                Diagnostic::new(Code::MissingItem, format!("the recipe has no {what}"))
                    .label(root_span, format!("no {what} in this recipe"))
                    .help(help.to_string())
            };
            if env.is_none() && !recipe.items.contains_key("env") {
                self.diagnostics.push(missing(
                    "`env` block",
                    "add one, e.g. `env sokoban { }`, or `use std::envs::sokoban`",
                ));
            }
            if policy.is_none() && !recipe.items.contains_key("policy") {
                self.diagnostics.push(missing(
                    "`policy` block",
                    "add one, e.g. `policy transformer { layers = 2 }`",
                ));
            }
            if reward.is_none() && !recipe.items.contains_key("reward.outcome") {
                self.diagnostics.push(missing(
                    "`reward outcome`",
                    "add `reward outcome = verifier(env.won)`, or `use std::envs::sokoban`",
                ));
            }
            if algorithm.variant() == Some("ppo") && advantage_expr.is_none() {
                self.diagnostics.push(missing(
                    "`advantage` expression",
                    "add one, e.g. `advantage = episode(outcome, norm = rloo)`, or `use std::presets::oprl_rloo`",
                ));
            }
        }

        fill_derived(policy.as_mut(), &mut algorithm, &train, &mut prm);
        let recipe = CheckedRecipe {
            env,
            policy,
            reward,
            prm,
            advantage,
            advantage_info,
            algorithm,
            train,
            eval,
            output,
        };
        if self.error_count() == errors_before {
            super::rules::check_rules(&recipe, self);
        }
        Some(recipe)
    }

    fn error_count(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }

    /// True when a span is in the checked file or a `--set` value.
    pub fn is_user(&self, span: Span) -> bool {
        Some(span.source) == self.root || self.sources.get(span.source).origin == Origin::Cli
    }

    /// Checks a block of `kind` against the schema of its variant.
    fn block(&mut self, kind: &'static str, node: &BlockNode) -> Option<CheckedBlock> {
        let variants = schema::variants(kind);
        let variant = match &node.variant {
            None if !variants.is_empty() => {
                self.diagnostics.push(
                    Diagnostic::new(Code::MissingVariant, format!("`{kind}` needs a variant"))
                        .label(node.kind.span, format!("which `{kind}`?"))
                        .help(format!(
                            "write `{kind} VARIANT {{ ... }}` with one of {}",
                            backticked_list(variants.iter().copied())
                        )),
                );
                return None;
            }
            None => None,
            Some(v) if variants.is_empty() => {
                self.diagnostics.push(
                    Diagnostic::new(Code::UnknownVariant, format!("`{kind}` has no variants"))
                        .label(v.span, "unexpected variant")
                        .help(format!("write `{kind} {{ ... }}`")),
                );
                return None;
            }
            Some(v) => match variants.iter().find(|x| **x == v.name) {
                Some(found) => Some(*found),
                None => {
                    let d = Diagnostic::new(
                        Code::UnknownVariant,
                        format!("unknown `{kind}` variant `{}`", v.name),
                    )
                    .label(v.span, "not a variant");
                    let d = match did_you_mean(&v.name, variants.iter().copied()) {
                        Some(s) => d.help(format!(
                            "did you mean `{s}`? the variants are {}",
                            backticked_list(variants.iter().copied())
                        )),
                        None => d.help(format!(
                            "the variants are {}",
                            backticked_list(variants.iter().copied())
                        )),
                    };
                    let d = if kind == "algorithm"
                        && ["rloo", "grpo", "gigpo", "reinforce_pp"].contains(&v.name.as_str())
                    {
                        Diagnostic { help: Some(format!("`{}` is an advantage expression, not an algorithm: `use std::presets::{}`", v.name, v.name)), ..d }
                    } else {
                        d
                    };
                    self.diagnostics.push(d);
                    return None;
                }
            },
        };
        let schema = schema::block(kind, variant).expect("variant found in the table");
        Some(self.block_with_schema(schema, node))
    }

    fn block_with_schema(
        &mut self,
        schema: &'static BlockSchema,
        node: &BlockNode,
    ) -> CheckedBlock {
        let mut checked = CheckedBlock {
            schema,
            head: Some(node.head_span()),
            fields: IndexMap::new(),
        };
        for (name, entry) in &node.entries {
            let key_span = match entry {
                Entry::Value(v) => v.key.span,
                Entry::Block(b) => b.kind.span,
            };
            let Some(key) = schema.key(name) else {
                self.unknown_key(schema, name, key_span);
                continue;
            };
            if let Some(field) = self.field(key, entry) {
                checked.fields.insert(key.key, field);
            } else if let Some(value) = default_value(key) {
                // Keep the block complete after an error so later phases can still read it.
                checked.fields.insert(key.key, Field { value, span: None });
            }
        }
        for key in schema.keys() {
            if checked.fields.contains_key(key.key) {
                continue;
            }
            match default_value(key) {
                Some(value) => {
                    checked.fields.insert(key.key, Field { value, span: None });
                }
                None if key.default == DefaultValue::Required => {
                    self.diagnostics.push(
                        Diagnostic::new(
                            Code::MissingKey,
                            format!("`{}` needs `{}`", schema.title(), key.key),
                        )
                        .label(node.head_span(), format!("no `{}` here", key.key))
                        .help(format!(
                            "add `{} = ...`: {}",
                            key.key,
                            doc_phrase(key.doc)
                        )),
                    );
                }
                None => {}
            }
        }
        checked
    }

    fn unknown_key(&mut self, schema: &BlockSchema, name: &str, span: Span) {
        let keys: Vec<&str> = schema.keys().map(|k| k.key).collect();
        let mut d = Diagnostic::new(
            Code::UnknownKey,
            format!("unknown key `{name}` in `{}`", schema.title()),
        )
        .label(span, "unknown key");
        let valid = if keys.is_empty() {
            format!("`{}` has no keys", schema.title())
        } else {
            format!(
                "the keys of `{}` are {}",
                schema.title(),
                backticked_list(keys.iter().copied())
            )
        };
        // A key of another variant of the same kind is a common slip: say which.
        let owner = schema::BLOCKS.iter().find(|b| {
            b.kind == schema.kind && b.variant != schema.variant && b.key(name).is_some()
        });
        d = match (owner, did_you_mean(name, keys.iter().copied())) {
            (Some(o), _) => d.help(format!("`{name}` is a key of `{}`; {valid}", o.title())),
            (None, Some(s)) => d.help(format!("did you mean `{s}`? {valid}")),
            (None, None) => d.help(valid),
        };
        self.diagnostics.push(d);
    }

    fn field(&mut self, key: &'static KeySchema, entry: &Entry) -> Option<Field> {
        match (key.ty, entry) {
            (Ty::Block(kind), Entry::Block(b)) => {
                let block = self.block(kind, b)?;
                Some(Field {
                    span: Some(b.head_span()),
                    value: FieldValue::Block(block),
                })
            }
            (Ty::Block(kind), Entry::Value(v)) => {
                let node = self.block_from_value(kind, v)?;
                let block = self.block(kind, &node)?;
                Some(Field {
                    span: Some(v.expr.span),
                    value: FieldValue::Block(block),
                })
            }
            (_, Entry::Block(b)) => {
                self.diagnostics.push(
                    Diagnostic::new(
                        Code::TypeMismatch,
                        format!("expected {}, found a block", key.ty.describe()),
                    )
                    .label(b.head_span(), format!("`{}` is not a block", key.key))
                    .help(format!("write `{} = ...`", key.key)),
                );
                None
            }
            (_, Entry::Value(v)) => match check_value(key, &v.expr, self.sources) {
                Ok(value) => Some(Field {
                    span: Some(v.expr.span),
                    value: FieldValue::Value(value),
                }),
                Err(d) => {
                    self.diagnostics.push(d);
                    None
                }
            },
        }
    }

    /// `key = variant { ... }` or `key = variant` as a nested block of `kind`.
    fn block_from_value(&mut self, kind: &'static str, v: &ValueNode) -> Option<BlockNode> {
        let has_variants = !schema::variants(kind).is_empty();
        match &v.expr.kind {
            ExprKind::BlockValue { kind: head, body } => {
                let (kind_ident, variant) = if has_variants {
                    (
                        Ident {
                            name: kind.to_string(),
                            span: head.span,
                        },
                        Some(head.clone()),
                    )
                } else {
                    (head.clone(), None)
                };
                Some(self.node_from_body(kind_ident, variant, body))
            }
            ExprKind::Path(p) if p.len() == 1 && has_variants => Some(BlockNode {
                kind: Ident {
                    name: kind.to_string(),
                    span: p[0].span,
                },
                variant: Some(p[0].clone()),
                entries: IndexMap::new(),
            }),
            _ => {
                let variants = schema::variants(kind);
                let expected = if has_variants {
                    format!(
                        "one of {} (optionally with `{{ ... }}`)",
                        backticked_list(variants.iter().copied())
                    )
                } else {
                    format!("a `{kind}` block")
                };
                self.diagnostics.push(type_mismatch(&expected, &v.expr));
                None
            }
        }
    }

    /// The statements of a block value as a block node (keys set twice are errors).
    fn node_from_body(
        &mut self,
        kind: Ident,
        variant: Option<Ident>,
        body: &[Statement],
    ) -> BlockNode {
        let mut node = BlockNode {
            kind,
            variant,
            entries: IndexMap::new(),
        };
        for statement in body {
            let (name, entry) = match statement {
                Statement::Assignment(a) => (
                    a.key.name.clone(),
                    Entry::Value(ValueNode {
                        key: a.key.clone(),
                        expr: a.value.clone(),
                    }),
                ),
                Statement::Block(b) => {
                    let inner = self.node_from_body(b.kind.clone(), b.variant.clone(), &b.body);
                    (b.kind.name.clone(), Entry::Block(inner))
                }
                Statement::Use(_) | Statement::Definition(_) => {
                    self.diagnostics.push(
                        Diagnostic::new(
                            Code::TypeMismatch,
                            "expected `key = value` inside a block value",
                        )
                        .label(statement.span(), "not a `key = value`")
                        .help("a block value holds `key = value` entries"),
                    );
                    continue;
                }
            };
            self.diagnostics.extend(node.insert_entry(name, entry));
        }
        node
    }

    /// `verifier(env.SIGNAL)` or `judge { ... }`.
    fn reward(&mut self, v: &ValueNode) -> Option<CheckedReward> {
        let expr = &v.expr;
        match &expr.kind {
            ExprKind::Call { callee, args } if dotted(callee) == "verifier" => {
                let function = schema::function("verifier").expect("in the table");
                let help = format!("the signature is `{}`", function.signature());
                if args.len() != 1 || args[0].name.is_some() {
                    self.diagnostics.push(
                        Diagnostic::new(
                            Code::BadArguments,
                            "`verifier` takes one positional argument",
                        )
                        .label(expr.span, format!("{} arguments", args.len()))
                        .help(help),
                    );
                    return None;
                }
                let arg = &args[0].value;
                let signal = match &arg.kind {
                    ExprKind::Path(p) => match dotted(p).as_str() {
                        "env.won" => Some(VerifierSignal::Won),
                        "env.score" => Some(VerifierSignal::Score),
                        "env.return" => Some(VerifierSignal::Return),
                        _ => None,
                    },
                    _ => None,
                };
                match signal {
                    Some(signal) => Some(CheckedReward::Verifier {
                        signal,
                        span: expr.span,
                    }),
                    None => {
                        let shown = arg.to_string();
                        let d = Diagnostic::new(
                            Code::UnknownName,
                            format!("unknown verifier signal `{shown}`"),
                        )
                        .label(arg.span, "not an environment signal");
                        let d = match did_you_mean(&shown, schema::VERIFIER_SIGNALS.iter().copied())
                        {
                            Some(s) => d.help(format!(
                                "did you mean `{s}`? the signals are {}",
                                backticked_list(schema::VERIFIER_SIGNALS.iter().copied())
                            )),
                            None => d.help(format!(
                                "the signals are {}",
                                backticked_list(schema::VERIFIER_SIGNALS.iter().copied())
                            )),
                        };
                        self.diagnostics.push(d);
                        None
                    }
                }
            }
            ExprKind::BlockValue { kind, body } if kind.name == "judge" => {
                let node = self.node_from_body(kind.clone(), None, body);
                let block = self
                    .block_with_schema(schema::block("judge", None).expect("in the table"), &node);
                if block.opt_str("endpoint").is_some() && block.opt_str("model").is_none() {
                    self.diagnostics.push(
                        Diagnostic::new(
                            Code::MissingKey,
                            "a judge with an `endpoint` needs `model`",
                        )
                        .label(
                            block.span("endpoint").unwrap_or(kind.span),
                            "requests go here",
                        )
                        .label(kind.span, "no `model` in this judge")
                        .help("add `model = \"...\"`: the model name the server expects"),
                    );
                }
                Some(CheckedReward::Judge {
                    block,
                    span: expr.span,
                })
            }
            ExprKind::Path(p) if dotted(p) == "judge" => Some(CheckedReward::Judge {
                block: default_block(schema::block("judge", None).expect("in the table")),
                span: expr.span,
            }),
            ExprKind::Call { .. } | ExprKind::BlockValue { .. } => {
                let (name, span) = match &expr.kind {
                    ExprKind::Call { callee, .. } => (
                        dotted(callee),
                        callee[0].span.to(callee[callee.len() - 1].span),
                    ),
                    ExprKind::BlockValue { kind, .. } => (kind.name.clone(), kind.span),
                    _ => unreachable!("matched above"),
                };
                let d = Diagnostic::new(
                    Code::UnknownFunction,
                    format!("unknown reward source `{name}`"),
                )
                .label(span, "not a reward source");
                let d = match did_you_mean(&name, ["verifier", "judge"]) {
                    Some(s) => d.help(format!(
                        "did you mean `{s}`? a reward is `verifier(env.won)` or `judge {{ ... }}`"
                    )),
                    None => d.help("a reward is `verifier(env.won)` or `judge { ... }`"),
                };
                self.diagnostics.push(d);
                None
            }
            _ => {
                self.diagnostics.push(
                    type_mismatch("a reward source", expr)
                        .help("a reward is `verifier(env.won)` or `judge { ... }`"),
                );
                None
            }
        }
    }
}

/// The value a key takes when the recipe does not set it (`None` for derived, optional and
/// required keys, which are handled separately).
fn default_value(key: &KeySchema) -> Option<FieldValue> {
    let value = match key.default {
        DefaultValue::Int(i) => Value::Int(i),
        DefaultValue::Float(x) => Value::Float(x),
        DefaultValue::Bool(b) => Value::Bool(b),
        DefaultValue::Str(s) => Value::Str(s.to_string()),
        DefaultValue::Name(n) => match key.ty {
            Ty::Block(kind) => {
                return Some(FieldValue::Block(default_block(schema::block(
                    kind,
                    Some(n),
                )?)))
            }
            _ => Value::Name(n.to_string()),
        },
        DefaultValue::IntList(v) => Value::IntList(v.to_vec()),
        DefaultValue::StrList(v) => Value::StrList(v.iter().map(|s| s.to_string()).collect()),
        DefaultValue::Block => match key.ty {
            Ty::Block(kind) => {
                return Some(FieldValue::Block(default_block(schema::block(kind, None)?)))
            }
            _ => return None,
        },
        DefaultValue::Derived(_) | DefaultValue::Optional(_) | DefaultValue::Required => {
            return None
        }
    };
    Some(FieldValue::Value(value))
}

/// A block with every key at its default (derived keys are filled by [`fill_derived`]).
pub fn default_block(schema: &'static BlockSchema) -> CheckedBlock {
    let mut block = CheckedBlock {
        schema,
        head: None,
        fields: IndexMap::new(),
    };
    for key in schema.keys() {
        if let Some(value) = default_value(key) {
            block.fields.insert(key.key, Field { value, span: None });
        }
    }
    block
}

/// Fills the keys whose defaults derive from other keys.
fn fill_derived(
    policy: Option<&mut CheckedBlock>,
    algorithm: &mut CheckedBlock,
    train: &CheckedBlock,
    prm: &mut CheckedBlock,
) {
    if let Some(policy) = policy {
        if policy.variant() == Some("transformer")
            && !policy.fields.contains_key("mlp")
            && policy.fields.contains_key("width")
        {
            let width = policy.int("width");
            policy.insert("mlp", Value::Int(width.saturating_mul(4)));
        }
    }
    if !algorithm.fields.contains_key("clip_high") && algorithm.fields.contains_key("clip") {
        let clip = algorithm.float("clip");
        algorithm.insert("clip_high", Value::Float(clip));
    }
    if !algorithm.fields.contains_key("minibatch") {
        let batch = train.int("tasks").saturating_mul(train.int("group"));
        algorithm.insert("minibatch", Value::Int(batch));
    }
    let prime = algorithm.variant() == Some("prime");
    if !prm.fields.contains_key("loss") {
        prm.insert(
            "loss",
            Value::Name(if prime { "cross_entropy" } else { "dpo" }.into()),
        );
    }
    if !prm.fields.contains_key("reference") {
        prm.insert(
            "reference",
            Value::Name(if prime { "frozen" } else { "old_policy" }.into()),
        );
    }
}

/// A schema doc sentence as a phrase inside a help line: lower-case start, no final period.
fn doc_phrase(doc: &str) -> String {
    let trimmed = doc.trim_end_matches('.');
    let mut chars = trimmed.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}
