//! The checker's output: blocks with every key checked and every default filled in, the
//! outcome reward, and the recipe they make up. Rules, printing and lowering read these.

use super::advantage::AdvantageInfo;
use super::schema::BlockSchema;
use super::value::Value;
use crate::diagnostics::Span;
use crate::graph::{AdvExpr, VerifierSignal};
use crate::syntax::ast::Expr;
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

    pub(super) fn insert(&mut self, key: &'static str, value: Value) {
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
