//! The checker: every block against its schema (closed: unknown keys are errors), rewards,
//! the advantage expression, derived defaults, then the cross-field rules and dead-config
//! warnings. Its output, a [`CheckedRecipe`], has every key of every block filled in.

use super::advantage::{AdvantageChecker, AdvantageInfo};
use super::checked::{CheckedBlock, CheckedRecipe, CheckedReward, Field, FieldValue};
use super::error::{CheckError, MismatchHint, MissingItem};
use super::resolve::{BlockNode, Entry, Item, Recipe, ValueNode};
use super::schema::{self, BlockSchema, DefaultValue, KeySchema, Ty};
use super::value::{check_value, mismatch, type_mismatch, Value};
use crate::diagnostics::{backticked_list, Origin, SourceId, SourceMap, Span};
use crate::graph::{from_name, VerifierSignal};
use crate::syntax::ast::{dotted, Expr, ExprKind, Ident, Statement};
use indexmap::IndexMap;

pub struct Checker<'a> {
    pub sources: &'a SourceMap,
    /// Every finding, in the order found.
    pub errors: Vec<CheckError>,
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
                        self.errors.push(CheckError::UnusedReward {
                            span: v.key.span,
                            name: v.key.name.clone(),
                        });
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
            errors: &mut self.errors,
            info: AdvantageInfo::default(),
            other_rewards,
        };
        let advantage = advantage_expr.and_then(|e| checker.check(e).map(|a| (a, e.clone())));
        let advantage_info = checker.info;

        if !self.fragment {
            let root_span = Span::new(self.root.unwrap_or(SourceId(0)), 0, 0);
            let mut missing = |item| {
                self.errors.push(CheckError::MissingItem {
                    span: root_span,
                    item,
                })
            };
            if env.is_none() && !recipe.items.contains_key("env") {
                missing(MissingItem::Env);
            }
            if policy.is_none() && !recipe.items.contains_key("policy") {
                missing(MissingItem::Policy);
            }
            if reward.is_none() && !recipe.items.contains_key("reward.outcome") {
                missing(MissingItem::Reward);
            }
            if algorithm.variant() == Some("ppo") && advantage_expr.is_none() {
                missing(MissingItem::Advantage);
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
            let findings = super::rules::check_rules(&recipe, &|span| self.is_user(span));
            self.errors.extend(findings);
        }
        Some(recipe)
    }

    fn error_count(&self) -> usize {
        self.errors.iter().filter(|e| e.is_error()).count()
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
                self.errors.push(CheckError::MissingVariant {
                    span: node.kind.span,
                    kind,
                    variants,
                });
                return None;
            }
            None => None,
            Some(v) if variants.is_empty() => {
                self.errors
                    .push(CheckError::VariantNotAllowed { span: v.span, kind });
                return None;
            }
            Some(v) => match variants.iter().find(|x| **x == v.name) {
                Some(found) => Some(*found),
                None => {
                    self.errors.push(CheckError::UnknownVariant {
                        span: v.span,
                        kind,
                        name: v.name.clone(),
                        variants,
                    });
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
                    self.errors.push(CheckError::MissingKey {
                        head: node.head_span(),
                        block: schema.title(),
                        key: key.key,
                        doc: key.doc,
                    });
                }
                None => {}
            }
        }
        checked
    }

    fn unknown_key(&mut self, schema: &BlockSchema, name: &str, span: Span) {
        if name == "lora" {
            self.errors.push(CheckError::LoraNeedsPretrained {
                span,
                block: schema.title(),
            });
            return;
        }
        // A key of another variant of the same kind is a common slip: say which.
        let owner = schema::BLOCKS.iter().find(|b| {
            b.kind == schema.kind && b.variant != schema.variant && b.key(name).is_some()
        });
        self.errors.push(CheckError::UnknownKey {
            span,
            block: schema.title(),
            key: name.to_string(),
            candidates: schema.keys().map(|k| k.key).collect(),
            owner: owner.map(BlockSchema::title),
        });
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
                self.errors.push(CheckError::NotABlockKey {
                    span: b.head_span(),
                    key: key.key,
                    expected: key.ty.describe(),
                });
                None
            }
            (_, Entry::Value(v)) => match check_value(key, &v.expr, self.sources) {
                Ok(value) => Some(Field {
                    span: Some(v.expr.span),
                    value: FieldValue::Value(value),
                }),
                Err(e) => {
                    self.errors.push(*e);
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
                self.errors.push(type_mismatch(&expected, &v.expr));
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
                    self.errors.push(CheckError::NotKeyValue {
                        span: statement.span(),
                    });
                    continue;
                }
            };
            self.errors.extend(node.insert_entry(name, entry));
        }
        node
    }

    /// `verifier(env.SIGNAL)` or `judge { ... }`.
    fn reward(&mut self, v: &ValueNode) -> Option<CheckedReward> {
        let expr = &v.expr;
        match &expr.kind {
            ExprKind::Call { callee, args } if dotted(callee) == "verifier" => {
                let function = schema::function("verifier").expect("in the table");
                if args.len() != 1 || args[0].name.is_some() {
                    self.errors.push(CheckError::VerifierArity {
                        span: expr.span,
                        count: args.len(),
                        signature: function.signature(),
                    });
                    return None;
                }
                let arg = &args[0].value;
                let signal = match &arg.kind {
                    ExprKind::Path(p) => dotted(p)
                        .strip_prefix("env.")
                        .and_then(from_name::<VerifierSignal>),
                    _ => None,
                };
                match signal {
                    Some(signal) => Some(CheckedReward::Verifier {
                        signal,
                        span: expr.span,
                    }),
                    None => {
                        self.errors.push(CheckError::UnknownVerifierSignal {
                            span: arg.span,
                            name: arg.to_string(),
                            signals: schema::VERIFIER_SIGNALS,
                        });
                        None
                    }
                }
            }
            ExprKind::BlockValue { kind, body } if kind.name == "judge" => {
                let node = self.node_from_body(kind.clone(), None, body);
                let block = self
                    .block_with_schema(schema::block("judge", None).expect("in the table"), &node);
                if block.opt_str("endpoint").is_some() && block.opt_str("model").is_none() {
                    self.errors.push(CheckError::JudgeNeedsModel {
                        endpoint: block.span("endpoint").unwrap_or(kind.span),
                        judge: kind.span,
                    });
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
                self.errors
                    .push(CheckError::UnknownRewardSource { span, name });
                None
            }
            _ => {
                self.errors.push(mismatch(
                    "a reward source",
                    expr,
                    MismatchHint::RewardSource,
                ));
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
        DefaultValue::NameList(v) => Value::NameList(v.iter().map(|s| s.to_string()).collect()),
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
