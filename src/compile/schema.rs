//! The one schema table of the recipe language: for every block kind and variant, its keys
//! with type, default, doc and range; the top-level items; and the functions of reward and
//! advantage expressions. The checker, `--resolved`, `oprl explain` and the language server all
//! read this table; nothing else lists keys.

/// The type of a key's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Ty {
    Int,
    Float,
    Bool,
    Str,
    /// An `http://` or `https://` URL.
    Url,
    /// A path to an existing file, relative to the recipe that writes it.
    File,
    /// A path to an existing directory, relative to the recipe that writes it.
    Dir,
    /// One of a fixed set of names, written without quotes.
    Name(&'static [&'static str]),
    /// A list of exactly this many integers.
    IntList(usize),
    StrList,
    /// A nested block of this kind (a `kind [variant] { ... }` statement or a `key = variant { ... }`
    /// value, or just `key = variant` when the variant has no keys).
    Block(&'static str),
}

impl Ty {
    /// How the type reads in a diagnostic: "an integer", "one of `text`, `image`".
    pub fn describe(&self) -> String {
        match self {
            Ty::Int => "an integer".into(),
            Ty::Float => "a number".into(),
            Ty::Bool => "`true` or `false`".into(),
            Ty::Str => "a string".into(),
            Ty::Url => "a URL string".into(),
            Ty::File => "a file path string".into(),
            Ty::Dir => "a directory path string".into(),
            Ty::Name(options) => format!(
                "one of {}",
                crate::diagnostics::backticked_list(options.iter().copied())
            ),
            Ty::IntList(n) => format!("a list of {n} integers"),
            Ty::StrList => "a list of strings".into(),
            Ty::Block(kind) => format!("a `{kind}` block"),
        }
    }
}

/// A key's default.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DefaultValue {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(&'static str),
    Name(&'static str),
    IntList(&'static [i64]),
    StrList(&'static [&'static str]),
    /// A nested block with every key at its default.
    Block,
    /// Computed from other keys after checking; the text says how.
    Derived(&'static str),
    /// May stay unset; the text says what unset means.
    Optional(&'static str),
    /// Must be set.
    Required,
}

/// One end of a numeric range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    Unbounded,
    Incl(f64),
    Excl(f64),
}

/// The numbers a key accepts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    pub min: Bound,
    pub max: Bound,
}

impl Range {
    pub const ANY: Range = Range {
        min: Bound::Unbounded,
        max: Bound::Unbounded,
    };
    /// `>= 0`.
    pub const NON_NEGATIVE: Range = Range {
        min: Bound::Incl(0.0),
        max: Bound::Unbounded,
    };
    /// `> 0`.
    pub const POSITIVE: Range = Range {
        min: Bound::Excl(0.0),
        max: Bound::Unbounded,
    };
    /// `>= 1`.
    pub const AT_LEAST_ONE: Range = Range {
        min: Bound::Incl(1.0),
        max: Bound::Unbounded,
    };
    /// `[0, 1]`.
    pub const UNIT: Range = Range {
        min: Bound::Incl(0.0),
        max: Bound::Incl(1.0),
    };
    /// `(0, 1)`.
    pub const OPEN_UNIT: Range = Range {
        min: Bound::Excl(0.0),
        max: Bound::Excl(1.0),
    };
    /// `(0, 1]`.
    pub const HALF_OPEN_UNIT: Range = Range {
        min: Bound::Excl(0.0),
        max: Bound::Incl(1.0),
    };

    pub const fn between(min: f64, max: f64) -> Range {
        Range {
            min: Bound::Incl(min),
            max: Bound::Incl(max),
        }
    }

    pub fn contains(&self, x: f64) -> bool {
        let above = match self.min {
            Bound::Unbounded => true,
            Bound::Incl(m) => x >= m,
            Bound::Excl(m) => x > m,
        };
        let below = match self.max {
            Bound::Unbounded => true,
            Bound::Incl(m) => x <= m,
            Bound::Excl(m) => x < m,
        };
        above && below
    }

    /// "in (0, 1)", "at least 1", "greater than 0".
    pub fn describe(&self) -> String {
        let num = |x: f64| {
            if x.fract() == 0.0 && x.abs() < 1e15 {
                format!("{}", x as i64)
            } else {
                format!("{x}")
            }
        };
        match (self.min, self.max) {
            (Bound::Unbounded, Bound::Unbounded) => "any number".into(),
            (Bound::Incl(a), Bound::Unbounded) => format!("at least {}", num(a)),
            (Bound::Excl(a), Bound::Unbounded) => format!("greater than {}", num(a)),
            (Bound::Unbounded, Bound::Incl(b)) => format!("at most {}", num(b)),
            (Bound::Unbounded, Bound::Excl(b)) => format!("less than {}", num(b)),
            (lo, hi) => {
                let (l, a) = match lo {
                    Bound::Incl(a) => ('[', a),
                    Bound::Excl(a) => ('(', a),
                    Bound::Unbounded => unreachable!(),
                };
                let (h, b) = match hi {
                    Bound::Incl(b) => (']', b),
                    Bound::Excl(b) => (')', b),
                    Bound::Unbounded => unreachable!(),
                };
                format!("in {l}{}, {}{h}", num(a), num(b))
            }
        }
    }
}

/// One key of a block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeySchema {
    pub key: &'static str,
    pub ty: Ty,
    pub default: DefaultValue,
    pub doc: &'static str,
    /// For numbers, and for every element of an integer list.
    pub range: Range,
}

const fn key(
    key: &'static str,
    ty: Ty,
    default: DefaultValue,
    range: Range,
    doc: &'static str,
) -> KeySchema {
    KeySchema {
        key,
        ty,
        default,
        doc,
        range,
    }
}

/// The schema of one block kind and variant. Its keys come in groups so that blocks share a
/// group (the PPO options, the endpoint options) instead of repeating it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockSchema {
    pub kind: &'static str,
    pub variant: Option<&'static str>,
    pub doc: &'static str,
    pub groups: &'static [&'static [KeySchema]],
}

impl BlockSchema {
    pub fn keys(&self) -> impl Iterator<Item = &'static KeySchema> + '_ {
        self.groups.iter().flat_map(|g| g.iter())
    }

    pub fn key(&self, name: &str) -> Option<&'static KeySchema> {
        self.keys().find(|k| k.key == name)
    }

    /// `env sokoban`, `train`.
    pub fn title(&self) -> String {
        match self.variant {
            Some(v) => format!("{} {v}", self.kind),
            None => self.kind.to_string(),
        }
    }
}

use DefaultValue as D;

const R: Range = Range::ANY;

static SOKOBAN: &[KeySchema] = &[
    key(
        "room",
        Ty::IntList(2),
        D::IntList(&[6, 6]),
        Range::between(3.0, 64.0),
        "`[rows, cols]` of the room, walls included.",
    ),
    key(
        "boxes",
        Ty::Int,
        D::Int(1),
        Range::between(1.0, 16.0),
        "Boxes (and targets) per level.",
    ),
    key(
        "max_turns",
        Ty::Int,
        D::Int(15),
        Range::between(1.0, 1000.0),
        "Steps before the episode ends; also the turn limit.",
    ),
    key(
        "search_depth",
        Ty::Int,
        D::Int(30),
        Range::between(1.0, 10000.0),
        "Reverse-play search depth of the level generator.",
    ),
    key(
        "observation",
        Ty::Name(&["text", "image"]),
        D::Name("text"),
        R,
        "`text` (a character grid) or `image` (VisualSokoban frames).",
    ),
    key(
        "prompt",
        Ty::Name(&["verl", "compact"]),
        D::Name("verl"),
        R,
        "Prompt template: verl-agent's, or a short one for small models.",
    ),
    key(
        "history",
        Ty::Int,
        D::Int(2),
        Range::between(0.0, 100.0),
        "Past observation/action pairs shown in the step prompt.",
    ),
];

static WEBSHOP: &[KeySchema] = &[
    key(
        "products",
        Ty::File,
        D::Optional("the generated catalogue"),
        R,
        "Product file (WebShop raw list or JSONL).",
    ),
    key(
        "attributes",
        Ty::File,
        D::Optional("generated with the catalogue"),
        R,
        "Attribute and instruction file.",
    ),
    key(
        "catalogue_size",
        Ty::Int,
        D::Int(1000),
        Range::between(1.0, 10_000_000.0),
        "Products in the generated catalogue.",
    ),
    key(
        "max_turns",
        Ty::Int,
        D::Int(10),
        Range::between(1.0, 1000.0),
        "Turns before the episode ends.",
    ),
    key(
        "history",
        Ty::Int,
        D::Int(2),
        Range::between(0.0, 100.0),
        "Past observation/action pairs shown in the step prompt.",
    ),
    key(
        "prompt",
        Ty::Name(&["verl", "compact"]),
        D::Name("verl"),
        R,
        "Prompt template.",
    ),
    key(
        "test_goals",
        Ty::Int,
        D::Int(500),
        Range::NON_NEGATIVE,
        "Goals held out for evaluation (verl-agent: the first 500).",
    ),
    key(
        "outcome",
        Ty::Name(&["score", "binary10"]),
        D::Name("score"),
        R,
        "`score`: WebShop's reward in [0, 1]; `binary10`: 10 on success, else 0.",
    ),
];

static SOTOPIA: &[KeySchema] = &[
    key(
        "scenarios",
        Ty::Dir,
        D::Optional("the embedded scenario set"),
        R,
        "Directory with `envs.json`, `agents.json`, `env_agent_combos.json`.",
    ),
    key(
        "hard_only",
        Ty::Bool,
        D::Bool(false),
        R,
        "Restrict to SOTOPIA-hard.",
    ),
    key(
        "partner",
        Ty::Block("partner"),
        D::Name("self_play"),
        R,
        "The other agent: `self_play`, `model { path }` or `endpoint { url, model }`.",
    ),
    key(
        "side",
        Ty::Name(&["first", "second", "both"]),
        D::Name("first"),
        R,
        "Which agent the policy plays.",
    ),
    key(
        "max_turns",
        Ty::Int,
        D::Int(20),
        Range::between(1.0, 1000.0),
        "Turns before the episode ends.",
    ),
];

static EXTERNAL: &[KeySchema] = &[
    key(
        "command",
        Ty::Str,
        D::Required,
        R,
        "Shell command speaking the JSON-lines environment protocol on stdin/stdout.",
    ),
    key(
        "timeout_s",
        Ty::Float,
        D::Float(30.0),
        Range::POSITIVE,
        "Seconds to wait for each reply.",
    ),
    key(
        "max_turns",
        Ty::Int,
        D::Int(20),
        Range::between(1.0, 1000.0),
        "Turns before the episode ends.",
    ),
    key(
        "history",
        Ty::Int,
        D::Int(2),
        Range::between(0.0, 100.0),
        "Past observation/action pairs shown in the step prompt.",
    ),
];

static TRANSFORMER: &[KeySchema] = &[
    key(
        "layers",
        Ty::Int,
        D::Int(2),
        Range::between(1.0, 256.0),
        "Transformer blocks.",
    ),
    key(
        "width",
        Ty::Int,
        D::Int(128),
        Range::between(8.0, 65536.0),
        "Model width (embedding size).",
    ),
    key(
        "heads",
        Ty::Int,
        D::Int(4),
        Range::between(1.0, 256.0),
        "Attention heads; must divide `width`.",
    ),
    key(
        "mlp",
        Ty::Int,
        D::Derived("4 x width"),
        Range::AT_LEAST_ONE,
        "MLP hidden width.",
    ),
    key(
        "context",
        Ty::Int,
        D::Int(512),
        Range::between(16.0, 1_048_576.0),
        "Longest sequence (prompt + action) in tokens.",
    ),
    key(
        "positions",
        Ty::Name(&["rope", "learned"]),
        D::Name("rope"),
        R,
        "Position encoding.",
    ),
    key(
        "tie_embeddings",
        Ty::Bool,
        D::Bool(true),
        R,
        "Share the input embedding and the output projection.",
    ),
    key(
        "patch",
        Ty::Int,
        D::Int(8),
        Range::between(1.0, 256.0),
        "Image patch size in pixels (image observations only).",
    ),
    key(
        "sampling",
        Ty::Block("sampling"),
        D::Block,
        R,
        "Rollout sampling options.",
    ),
];

static HF: &[KeySchema] = &[
    key(
        "path",
        Ty::Dir,
        D::Required,
        R,
        "Directory with `config.json`, `*.safetensors` and `tokenizer.json`.",
    ),
    key(
        "sampling",
        Ty::Block("sampling"),
        D::Block,
        R,
        "Rollout sampling options.",
    ),
];

static SAMPLING: &[KeySchema] = &[
    key(
        "temperature",
        Ty::Float,
        D::Float(1.0),
        Range {
            min: Bound::Excl(0.0),
            max: Bound::Incl(10.0),
        },
        "Training rollout temperature.",
    ),
    key(
        "top_p",
        Ty::Float,
        D::Float(1.0),
        Range::HALF_OPEN_UNIT,
        "Nucleus sampling mass.",
    ),
    key(
        "max_new_tokens",
        Ty::Int,
        D::Int(64),
        Range::between(1.0, 65536.0),
        "Most tokens generated per turn.",
    ),
    key(
        "stop",
        Ty::StrList,
        D::StrList(&[]),
        R,
        "Generation stops after any of these strings (e.g. `</action>`).",
    ),
    key(
        "actions",
        Ty::Name(&["free", "admissible"]),
        D::Name("free"),
        R,
        "`admissible`: sample only the answers the environment lists for the state (WebShop's page \
         actions, Sokoban's moves, with `prompt = compact`), and score actions under the same \
         restriction.",
    ),
];

static ENDPOINT_OPTIONS: &[KeySchema] = &[
    key(
        "model",
        Ty::Str,
        D::Required,
        R,
        "Model name sent to the server.",
    ),
    key(
        "api_key_env",
        Ty::Str,
        D::Optional("no API key"),
        R,
        "Environment variable holding the API key (the key never enters a graph).",
    ),
    key(
        "temperature",
        Ty::Float,
        D::Float(0.0),
        Range::between(0.0, 10.0),
        "Sampling temperature of the served model.",
    ),
    key(
        "timeout_s",
        Ty::Float,
        D::Float(60.0),
        Range::POSITIVE,
        "Seconds to wait for each request.",
    ),
    key(
        "retries",
        Ty::Int,
        D::Int(3),
        Range::between(0.0, 100.0),
        "Retries after a failed request.",
    ),
    key(
        "concurrency",
        Ty::Int,
        D::Int(4),
        Range::between(1.0, 1024.0),
        "Requests in flight at once.",
    ),
];

static ENDPOINT_URL: &[KeySchema] = &[key(
    "url",
    Ty::Url,
    D::Required,
    R,
    "Base URL of an OpenAI-compatible server (`http://host:port/v1`).",
)];

static PARTNER_MODEL: &[KeySchema] = &[key(
    "path",
    Ty::Dir,
    D::Required,
    R,
    "Checkpoint directory of the fixed partner.",
)];

static JUDGE: &[KeySchema] = &[
    key(
        "rubric",
        Ty::Name(&["sotopia"]),
        D::Name("sotopia"),
        R,
        "What the judge scores.",
    ),
    key(
        "outcome",
        Ty::Name(&["goal", "overall"]),
        D::Name("goal"),
        R,
        "Which judged quantity is the outcome reward.",
    ),
    key(
        "threshold",
        Ty::Float,
        D::Float(6.0),
        R,
        "Success iff the outcome is above this.",
    ),
    key(
        "endpoint",
        Ty::Url,
        D::Optional("the embedded rubric judge"),
        R,
        "Base URL of an OpenAI-compatible judge server.",
    ),
];

/// Judge endpoint options: like [`ENDPOINT_OPTIONS`], but `model` is only needed with an endpoint.
static JUDGE_ENDPOINT_OPTIONS: &[KeySchema] = &[
    key(
        "model",
        Ty::Str,
        D::Optional("required with `endpoint`"),
        R,
        "Model name sent to the judge server.",
    ),
    key(
        "api_key_env",
        Ty::Str,
        D::Optional("no API key"),
        R,
        "Environment variable holding the API key.",
    ),
    key(
        "temperature",
        Ty::Float,
        D::Float(0.0),
        Range::between(0.0, 10.0),
        "Judge sampling temperature.",
    ),
    key(
        "timeout_s",
        Ty::Float,
        D::Float(60.0),
        Range::POSITIVE,
        "Seconds to wait for each request.",
    ),
    key(
        "retries",
        Ty::Int,
        D::Int(3),
        Range::between(0.0, 100.0),
        "Retries after a failed request.",
    ),
    key(
        "concurrency",
        Ty::Int,
        D::Int(4),
        Range::between(1.0, 1024.0),
        "Requests in flight at once.",
    ),
];

static PRM: &[KeySchema] = &[
    key(
        "init",
        Ty::Name(&["policy"]),
        D::Name("policy"),
        R,
        "The PRM starts as a copy of the initial policy.",
    ),
    key(
        "beta",
        Ty::Float,
        D::Float(0.05),
        Range::POSITIVE,
        "Scale of the implicit reward `beta * (log pi_phi - log pi_ref)`.",
    ),
    key(
        "score",
        Ty::Name(&["mean", "sum"]),
        D::Name("mean"),
        R,
        "Trajectory score for the pairwise loss: mean or sum over steps.",
    ),
    key(
        "loss",
        Ty::Name(&["dpo", "cross_entropy"]),
        D::Derived("`dpo`; `cross_entropy` under `algorithm prime`"),
        R,
        "PRM training loss.",
    ),
    key(
        "reference",
        Ty::Name(&["old_policy", "frozen"]),
        D::Derived("`old_policy`; `frozen` under `algorithm prime`"),
        R,
        "What `log pi_phi` is compared against.",
    ),
    key(
        "lr",
        Ty::Float,
        D::Float(1e-6),
        Range {
            min: Bound::Excl(0.0),
            max: Bound::Incl(1.0),
        },
        "PRM learning rate (AdamW).",
    ),
    key(
        "grad_clip",
        Ty::Float,
        D::Float(10.0),
        Range::POSITIVE,
        "Gradient-norm clip of the PRM update.",
    ),
    key(
        "updates",
        Ty::Int,
        D::Int(1),
        Range::between(1.0, 100.0),
        "PRM optimiser steps per iteration.",
    ),
    key(
        "text_view",
        Ty::Bool,
        D::Bool(true),
        R,
        "With image observations: the PRM reads the text rendering of each state (true, the \
         paper's choice) or is a copy of the image-reading policy (false).",
    ),
];

static PPO: &[KeySchema] = &[
    key(
        "lr",
        Ty::Float,
        D::Float(5e-7),
        Range {
            min: Bound::Excl(0.0),
            max: Bound::Incl(1.0),
        },
        "Policy learning rate (AdamW).",
    ),
    key(
        "clip",
        Ty::Float,
        D::Float(0.2),
        Range::OPEN_UNIT,
        "PPO clip range: the ratio is clipped to [1 - clip, 1 + clip_high].",
    ),
    key(
        "clip_high",
        Ty::Float,
        D::Derived("`clip`"),
        Range::OPEN_UNIT,
        "Upper clip range (DAPO's clip-higher).",
    ),
    key(
        "dual_clip",
        Ty::Float,
        D::Float(3.0),
        Range {
            min: Bound::Excl(1.0),
            max: Bound::Unbounded,
        },
        "Dual-clip constant for negative advantages.",
    ),
    key(
        "entropy",
        Ty::Float,
        D::Float(0.001),
        Range::NON_NEGATIVE,
        "Entropy bonus coefficient.",
    ),
    key(
        "kl",
        Ty::Name(&["none", "k1", "abs", "k2", "k3"]),
        D::Name("none"),
        R,
        "KL penalty estimator against the old policy (`k3` is low_var_kl).",
    ),
    key(
        "kl_coef",
        Ty::Float,
        D::Float(0.001),
        Range::NON_NEGATIVE,
        "KL penalty coefficient.",
    ),
    key(
        "epochs",
        Ty::Int,
        D::Int(1),
        Range::between(1.0, 100.0),
        "Passes over the batch per iteration.",
    ),
    key(
        "minibatch",
        Ty::Int,
        D::Derived("the whole batch, `tasks x group`"),
        Range::AT_LEAST_ONE,
        "Trajectories per minibatch.",
    ),
    key(
        "grad_clip",
        Ty::Float,
        D::Float(1.0),
        Range::POSITIVE,
        "Gradient-norm clip of the policy update.",
    ),
    key(
        "loss_agg",
        Ty::Name(&[
            "token_mean",
            "seq_mean_token_mean",
            "seq_mean_token_sum",
            "seq_mean_token_sum_norm",
        ]),
        D::Name("token_mean"),
        R,
        "How token losses are averaged.",
    ),
    key(
        "weight_decay",
        Ty::Float,
        D::Float(0.0),
        Range::NON_NEGATIVE,
        "AdamW weight decay.",
    ),
];

static PRIME: &[KeySchema] = &[
    key(
        "process_coef",
        Ty::Float,
        D::Float(5.0),
        Range::NON_NEGATIVE,
        "Weight of the leave-one-out process-reward returns.",
    ),
    key(
        "outcome_coef",
        Ty::Float,
        D::Float(5.0),
        Range::NON_NEGATIVE,
        "Weight of the leave-one-out outcome.",
    ),
];

static GAE: &[KeySchema] = &[
    key(
        "critic_lr",
        Ty::Float,
        D::Float(1e-5),
        Range {
            min: Bound::Excl(0.0),
            max: Bound::Incl(1.0),
        },
        "Critic learning rate.",
    ),
    key(
        "value_clip",
        Ty::Float,
        D::Float(0.5),
        Range::POSITIVE,
        "Value-function clip range.",
    ),
    key(
        "gamma",
        Ty::Float,
        D::Float(1.0),
        Range::UNIT,
        "Discount inside a step row.",
    ),
    key(
        "lambda",
        Ty::Float,
        D::Float(1.0),
        Range::UNIT,
        "GAE lambda.",
    ),
];

static TRAIN: &[KeySchema] = &[
    key(
        "iterations",
        Ty::Int,
        D::Int(200),
        Range::between(1.0, 10_000_000.0),
        "OPRL iterations.",
    ),
    key(
        "tasks",
        Ty::Int,
        D::Int(32),
        Range::between(1.0, 100_000.0),
        "Tasks per iteration (B).",
    ),
    key(
        "group",
        Ty::Int,
        D::Int(8),
        Range::between(1.0, 1024.0),
        "Trajectories per task (N).",
    ),
    key(
        "seed",
        Ty::Int,
        D::Int(0),
        Range::NON_NEGATIVE,
        "Seed of every random stream.",
    ),
    key(
        "device",
        Ty::Name(&["cpu", "cuda"]),
        D::Name("cpu"),
        R,
        "Where models run.",
    ),
    key(
        "threads",
        Ty::Int,
        D::Int(0),
        Range::between(0.0, 1024.0),
        "Worker threads for candle (0 = let oprl choose).",
    ),
];

static EVAL: &[KeySchema] = &[
    key(
        "every",
        Ty::Int,
        D::Int(10),
        Range::NON_NEGATIVE,
        "Evaluate every this many iterations and at the end (0 = only at the end).",
    ),
    key(
        "tasks",
        Ty::Int,
        D::Int(64),
        Range::between(1.0, 100_000.0),
        "Held-out evaluation tasks.",
    ),
    key(
        "temperature",
        Ty::Float,
        D::Float(0.4),
        Range::between(0.0, 10.0),
        "Evaluation sampling temperature.",
    ),
];

static OUTPUT: &[KeySchema] = &[
    key(
        "dir",
        Ty::Str,
        D::Str("runs"),
        R,
        "Parent directory of run directories.",
    ),
    key(
        "checkpoint_every",
        Ty::Int,
        D::Int(5),
        Range::NON_NEGATIVE,
        "Checkpoint every this many iterations and at the end (0 = only at the end). Small \
         models iterate in seconds, so frequent checkpoints cost little and lose little.",
    ),
    key(
        "transcripts",
        Ty::Int,
        D::Int(4),
        Range::NON_NEGATIVE,
        "Full episodes kept as text transcripts per evaluation.",
    ),
];

/// Every block schema. Kinds with variants list one entry per variant.
pub static BLOCKS: &[BlockSchema] = &[
    BlockSchema {
        kind: "env",
        variant: Some("sokoban"),
        doc: "Sokoban puzzles (text grid or VisualSokoban images), generated by reverse play.",
        groups: &[SOKOBAN],
    },
    BlockSchema {
        kind: "env",
        variant: Some("webshop"),
        doc: "WebShop: search a product catalogue and buy what the instruction asks for.",
        groups: &[WEBSHOP],
    },
    BlockSchema {
        kind: "env",
        variant: Some("sotopia"),
        doc: "SOTOPIA social scenarios, scored by a judge.",
        groups: &[SOTOPIA],
    },
    BlockSchema {
        kind: "env",
        variant: Some("external"),
        doc: "Any environment behind the JSON-lines protocol.",
        groups: &[EXTERNAL],
    },
    BlockSchema {
        kind: "policy",
        variant: Some("transformer"),
        doc: "A small decoder-only transformer trained from scratch.",
        groups: &[TRANSFORMER],
    },
    BlockSchema {
        kind: "policy",
        variant: Some("hf"),
        doc: "A Hugging Face Qwen2-family checkpoint.",
        groups: &[HF],
    },
    BlockSchema {
        kind: "sampling",
        variant: None,
        doc: "How rollouts sample actions.",
        groups: &[SAMPLING],
    },
    BlockSchema {
        kind: "partner",
        variant: Some("self_play"),
        doc: "SOTOPIA partner: the current policy (self-chat).",
        groups: &[],
    },
    BlockSchema {
        kind: "partner",
        variant: Some("model"),
        doc: "SOTOPIA partner: a fixed checkpoint.",
        groups: &[PARTNER_MODEL],
    },
    BlockSchema {
        kind: "partner",
        variant: Some("endpoint"),
        doc: "SOTOPIA partner: an OpenAI-compatible chat server.",
        groups: &[ENDPOINT_URL, ENDPOINT_OPTIONS],
    },
    BlockSchema {
        kind: "judge",
        variant: None,
        doc:
            "An episode judge: `reward outcome = judge { ... }`; embedded unless `endpoint` is set.",
        groups: &[JUDGE, JUDGE_ENDPOINT_OPTIONS],
    },
    BlockSchema {
        kind: "prm",
        variant: None,
        doc: "The online process reward model (implicit PRM).",
        groups: &[PRM],
    },
    BlockSchema {
        kind: "algorithm",
        variant: Some("ppo"),
        doc: "PPO with the recipe's advantage expression.",
        groups: &[PPO],
    },
    BlockSchema {
        kind: "algorithm",
        variant: Some("prime"),
        doc: "PRIME: cross-entropy PRM with a frozen reference, leave-one-out returns.",
        groups: &[PPO, PRIME],
    },
    BlockSchema {
        kind: "algorithm",
        variant: Some("ppo_gae"),
        doc: "PPO with a critic and GAE; no grouping.",
        groups: &[PPO, GAE],
    },
    BlockSchema {
        kind: "train",
        variant: None,
        doc: "The training loop.",
        groups: &[TRAIN],
    },
    BlockSchema {
        kind: "eval",
        variant: None,
        doc: "Periodic evaluation on held-out tasks.",
        groups: &[EVAL],
    },
    BlockSchema {
        kind: "output",
        variant: None,
        doc: "Where a run writes its results.",
        groups: &[OUTPUT],
    },
];

/// The schema of `kind variant` (`variant` is `None` for kinds without variants).
pub fn block(kind: &str, variant: Option<&str>) -> Option<&'static BlockSchema> {
    BLOCKS
        .iter()
        .find(|b| b.kind == kind && b.variant == variant)
}

/// The variants of a kind, empty when it has none.
pub fn variants(kind: &str) -> Vec<&'static str> {
    BLOCKS
        .iter()
        .filter(|b| b.kind == kind)
        .filter_map(|b| b.variant)
        .collect()
}

/// True when the kind appears in the table at all.
pub fn is_block_kind(kind: &str) -> bool {
    BLOCKS.iter().any(|b| b.kind == kind)
}

/// How a top-level item is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `kind [variant] { ... }`.
    Block,
    /// `kind NAME = value`.
    Definition,
    /// `kind = value`.
    Assignment,
}

/// A top-level item of a recipe.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TopLevel {
    pub kind: &'static str,
    pub form: Form,
    pub required: bool,
    pub doc: &'static str,
}

/// The top-level items, in the order `--resolved` prints them (the same order as
/// [`crate::syntax::BLOCK_KINDS`]).
pub static TOP_LEVEL: &[TopLevel] = &[
    TopLevel {
        kind: "env",
        form: Form::Block,
        required: true,
        doc: "The environment: `env sokoban|webshop|sotopia|external { ... }`.",
    },
    TopLevel {
        kind: "policy",
        form: Form::Block,
        required: true,
        doc: "The policy model: `policy transformer|hf { ... }`.",
    },
    TopLevel {
        kind: "reward",
        form: Form::Definition,
        required: true,
        doc: "The outcome reward: `reward outcome = verifier(env.won)` or `= judge { ... }`.",
    },
    TopLevel {
        kind: "prm",
        form: Form::Block,
        required: false,
        doc:
            "The online PRM; defaults apply when the advantage reads `prm` and the block is absent.",
    },
    TopLevel {
        kind: "advantage",
        form: Form::Assignment,
        required: false,
        doc: "The advantage expression (required under `algorithm ppo`).",
    },
    TopLevel {
        kind: "algorithm",
        form: Form::Block,
        required: false,
        doc: "The policy update: `algorithm ppo|prime|ppo_gae { ... }` (default `ppo`).",
    },
    TopLevel {
        kind: "train",
        form: Form::Block,
        required: false,
        doc: "The training loop.",
    },
    TopLevel {
        kind: "eval",
        form: Form::Block,
        required: false,
        doc: "Evaluation.",
    },
    TopLevel {
        kind: "output",
        form: Form::Block,
        required: false,
        doc: "Run outputs.",
    },
];

pub fn top_level(kind: &str) -> Option<&'static TopLevel> {
    TOP_LEVEL.iter().find(|t| t.kind == kind)
}

/// A parameter of a function.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Param {
    pub name: &'static str,
    /// `None` for a required positional parameter, else the default as written in a recipe.
    pub default: Option<&'static str>,
    pub doc: &'static str,
}

/// Where a function may be called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunctionContext {
    /// An estimator: a term of the advantage.
    Estimator,
    /// A signal transform inside an estimator.
    Signal,
    /// A reward source.
    Reward,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FunctionSchema {
    pub name: &'static str,
    pub context: FunctionContext,
    pub params: &'static [Param],
    pub doc: &'static str,
}

impl FunctionSchema {
    /// `step(signal, norm = zscore, group = pool, maxabs = false)`.
    pub fn signature(&self) -> String {
        let params: Vec<String> = self
            .params
            .iter()
            .map(|p| match p.default {
                Some(d) => format!("{} = {d}", p.name),
                None => p.name.to_string(),
            })
            .collect();
        format!("{}({})", self.name, params.join(", "))
    }
}

/// The normalisations of an estimator.
pub const NORMS: &[&str] = &["zscore", "rloo", "mean", "mean_whiten", "none"];
/// The step groupings of `step(...)`.
pub const STEP_GROUPS: &[&str] = &["pool", "anchor_state"];
/// The signals of advantage expressions.
pub const SIGNALS: &[&str] = &["outcome", "prm", "env.reward"];
/// The environment signals a verifier reads.
pub const VERIFIER_SIGNALS: &[&str] = &["env.won", "env.score", "env.return"];

const SIGNAL_PARAM: Param = Param {
    name: "signal",
    default: None,
    doc: "`outcome`, `prm`, `env.reward`, a sum of them, or `discounted(...)`.",
};
const NORM_PARAM: Param = Param {
    name: "norm",
    default: Some("zscore"),
    doc: "`zscore`, `rloo`, `mean`, `mean_whiten` or `none`.",
};

pub static FUNCTIONS: &[FunctionSchema] = &[
    FunctionSchema {
        name: "episode",
        context: FunctionContext::Estimator,
        params: &[SIGNAL_PARAM, NORM_PARAM],
        doc: "One value per trajectory, normalised within its task group; broadcast to every action token.",
    },
    FunctionSchema {
        name: "step",
        context: FunctionContext::Estimator,
        params: &[
            SIGNAL_PARAM,
            NORM_PARAM,
            Param { name: "group", default: Some("pool"), doc: "`pool` (all steps of the task group) or `anchor_state` (GiGPO)." },
            Param { name: "maxabs", default: Some("false"), doc: "Divide step rewards by the batch's max |value| first." },
        ],
        doc: "One value per step, normalised within its step group; broadcast to the step's tokens.",
    },
    FunctionSchema {
        name: "token",
        context: FunctionContext::Estimator,
        params: &[SIGNAL_PARAM, NORM_PARAM],
        doc: "One value per action token, normalised over all action tokens of the task group.",
    },
    FunctionSchema {
        name: "discounted",
        context: FunctionContext::Signal,
        params: &[
            Param { name: "signal", default: None, doc: "A step-level signal." },
            Param { name: "gamma", default: None, doc: "Discount in [0, 1]." },
        ],
        doc: "The discounted return-to-go of a step-level signal: `R_t = sum_k gamma^(k-t) r_k`.",
    },
    FunctionSchema {
        name: "verifier",
        context: FunctionContext::Reward,
        params: &[Param { name: "signal", default: None, doc: "`env.won`, `env.score` or `env.return`." }],
        doc: "A rule-based outcome reward read from the environment.",
    },
];

pub fn function(name: &str) -> Option<&'static FunctionSchema> {
    FUNCTIONS.iter().find(|f| f.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        for b in BLOCKS {
            let mut names: Vec<&str> = b.keys().map(|k| k.key).collect();
            let n = names.len();
            names.sort();
            names.dedup();
            assert_eq!(n, names.len(), "duplicate key in {}", b.title());
            for k in b.keys() {
                if let Ty::Block(kind) = k.ty {
                    assert!(is_block_kind(kind), "{kind}");
                }
                if let (Ty::Name(options), DefaultValue::Name(d)) = (k.ty, k.default) {
                    assert!(options.contains(&d), "{}.{}", b.title(), k.key);
                }
                match (k.ty, k.default) {
                    (Ty::Int, DefaultValue::Int(x)) => {
                        assert!(k.range.contains(x as f64), "{}.{}", b.title(), k.key)
                    }
                    (Ty::Float, DefaultValue::Float(x)) => {
                        assert!(k.range.contains(x), "{}.{}", b.title(), k.key)
                    }
                    _ => {}
                }
            }
        }
        let kinds: Vec<&str> = TOP_LEVEL.iter().map(|t| t.kind).collect();
        assert_eq!(kinds, crate::syntax::BLOCK_KINDS);
    }

    #[test]
    fn ranges_describe_themselves() {
        assert_eq!(Range::OPEN_UNIT.describe(), "in (0, 1)");
        assert_eq!(Range::AT_LEAST_ONE.describe(), "at least 1");
        assert_eq!(Range::POSITIVE.describe(), "greater than 0");
        assert!(!Range::OPEN_UNIT.contains(0.0) && Range::OPEN_UNIT.contains(0.2));
        assert!(Range::UNIT.contains(1.0) && !Range::UNIT.contains(1.01));
    }
}
