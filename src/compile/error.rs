//! The checker's findings as data, and the one place that words them. Every phase after
//! resolution (schemas and values, advantage expressions, cross-field rules, dead config)
//! returns [`CheckError`] variants that hold what went wrong and where; [`CheckError::diagnostic`]
//! turns each into a [`Diagnostic`] with its code, message, labels and help.

use super::schema::Range;
use crate::diagnostics::{backticked_list, did_you_mean, Code, Diagnostic, Span};

/// What a type mismatch's help line suggests.
#[derive(Debug, Clone, PartialEq)]
pub enum MismatchHint {
    None,
    /// A bare name where a string is wanted: quote it.
    Quote(String),
    /// A quoted name where a bare name is wanted.
    Unquote(String),
    /// A fraction where an integer is wanted.
    WholeNumber,
    RewardSource,
    AdvantageTerm,
}

/// What a division by zero divided.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Divided {
    Constant,
    Term,
    Signal,
}

/// Which required top-level item a recipe lacks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MissingItem {
    Env,
    Policy,
    Reward,
    Advantage,
}

/// How an estimator's signal has the wrong granularity (`text` is the signal as written).
#[derive(Debug, Clone, PartialEq)]
pub enum GranularityProblem {
    /// `episode(...)` of a step-level term.
    EpisodeOfStep { term: String, signal: String },
    /// `step(...)` of an episode-level signal.
    StepOfEpisode { signal: String },
    /// `token(...)` of a term without a token-level form.
    TokenWithoutForm { term: String },
    /// `token(...)` of an episode-level signal.
    TokenOfEpisode { signal: String },
}

/// What is wrong with the arguments of a call.
#[derive(Debug, Clone, PartialEq)]
pub enum ArgumentProblem {
    PositionalAfterNamed,
    TooMany {
        function: &'static str,
        max: usize,
    },
    Repeated {
        name: String,
    },
    Unknown {
        function: &'static str,
        name: String,
        suggestion: Option<&'static str>,
    },
    Missing {
        function: &'static str,
        name: &'static str,
    },
}

/// The environment signals a verifier may read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProvidedSignals {
    pub won: bool,
    pub score: bool,
    pub ret: bool,
}

/// One finding of the checker.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckError {
    // ------------------------------------------------------------------------- values (E03xx, E04xx, E05xx)
    TypeMismatch {
        span: Span,
        expected: String,
        found: String,
        hint: MismatchHint,
    },
    ListLength {
        span: Span,
        expected: usize,
        found: usize,
    },
    UnknownValue {
        span: Span,
        name: String,
        options: &'static [&'static str],
    },
    OutOfRange {
        span: Span,
        key: String,
        range: Range,
        value: f64,
    },
    NotAUrl {
        span: Span,
        text: String,
    },
    MissingFile {
        span: Span,
        text: String,
        looked: String,
        /// What the key names: "file", "directory" or "model".
        what: &'static str,
    },
    DivisionByZero {
        zero: Span,
        dividend: Span,
        divided: Divided,
    },
    NotFinite {
        span: Span,
    },
    IntegerOverflow {
        span: Span,
    },
    // ------------------------------------------------------------------------- blocks (E02xx, E03xx)
    DuplicateKey {
        again: Span,
        first: Span,
        key: String,
    },
    UnknownKey {
        span: Span,
        block: String,
        key: String,
        candidates: Vec<&'static str>,
        /// The block of another variant of the same kind that has this key.
        owner: Option<String>,
    },
    MissingKey {
        head: Span,
        block: String,
        key: &'static str,
        doc: &'static str,
    },
    MissingVariant {
        span: Span,
        kind: &'static str,
        variants: Vec<&'static str>,
    },
    VariantNotAllowed {
        span: Span,
        kind: &'static str,
    },
    UnknownVariant {
        span: Span,
        kind: &'static str,
        name: String,
        variants: Vec<&'static str>,
    },
    NotABlockKey {
        span: Span,
        key: &'static str,
        expected: String,
    },
    NotKeyValue {
        span: Span,
    },
    MissingItem {
        span: Span,
        item: MissingItem,
    },
    /// A `lora` block anywhere but `policy hf`.
    LoraNeedsPretrained {
        span: Span,
        block: String,
    },
    // ------------------------------------------------------------------------- rewards
    VerifierArity {
        span: Span,
        count: usize,
        signature: String,
    },
    UnknownVerifierSignal {
        span: Span,
        name: String,
        signals: &'static [&'static str],
    },
    UnknownRewardSource {
        span: Span,
        name: String,
    },
    JudgeNeedsModel {
        endpoint: Span,
        judge: Span,
    },
    UnusedReward {
        span: Span,
        name: String,
    },
    // ------------------------------------------------------------------------- advantage
    ConstantTerm {
        span: Span,
    },
    NonConstantScale {
        span: Span,
        operand: Span,
    },
    BareSignal {
        span: Span,
        text: String,
    },
    UnknownFunction {
        span: Span,
        name: String,
        options: Vec<&'static str>,
    },
    TokenGrouping {
        group: Span,
        callee: Span,
    },
    Granularity {
        signal: Span,
        callee: Span,
        estimator: String,
        level: &'static str,
        problem: GranularityProblem,
    },
    DiscountedEpisode {
        inner: Span,
        callee: Span,
        text: String,
    },
    BadArguments {
        span: Span,
        problem: ArgumentProblem,
        signature: String,
    },
    NestedEstimator {
        span: Span,
        name: String,
    },
    NotASignal {
        span: Span,
        found: String,
        signals: &'static [&'static str],
    },
    UnknownSignal {
        span: Span,
        name: String,
        signals: &'static [&'static str],
        is_other_reward: bool,
    },
    SimilarityWithoutAnchorState {
        similarity: Span,
        group: Option<Span>,
        callee: Span,
    },
    // ------------------------------------------------------------------------- rules (E04xx)
    GroupTooSmall {
        group: i64,
        at: Option<Span>,
        baseline: Option<Span>,
        prime: bool,
    },
    MinibatchDivides {
        minibatch: i64,
        tasks: i64,
        group: i64,
        at: Option<Span>,
        batch_at: Option<Span>,
    },
    TooManyBoxes {
        boxes: i64,
        room: [i64; 2],
        floor: i64,
        boxes_at: Option<Span>,
        room_at: Option<Span>,
    },
    ImageNeedsTransformer {
        observation: Option<Span>,
        policy: Option<Span>,
    },
    SignalNotProvided {
        env: String,
        signal: &'static str,
        span: Span,
        head: Option<Span>,
        provided: ProvidedSignals,
    },
    JudgeOnEnv {
        env: String,
        span: Span,
        head: Option<Span>,
    },
    NoStepRewards {
        env: String,
        span: Span,
        head: Option<Span>,
    },
    HeadsDivideWidth {
        heads: i64,
        width: i64,
        heads_at: Option<Span>,
        width_at: Option<Span>,
    },
    ContextTooShort {
        max_new_tokens: i64,
        context: i64,
        tokens_at: Option<Span>,
        context_at: Option<Span>,
    },
    /// `actions = admissible` with an environment that lists no answers; `prompt` is present
    /// when the environment has a compact prompt (and holds where the free-text one is chosen).
    NoListedAnswers {
        env: String,
        actions: Option<Span>,
        prompt: Option<Option<Span>>,
        head: Option<Span>,
    },
    PrimeNeedsBinary {
        span: Span,
        head: Option<Span>,
    },
    PrimeConflict {
        key: &'static str,
        wanted: &'static str,
        value: String,
        at: Option<Span>,
        head: Option<Span>,
    },
    // ------------------------------------------------------------------------- warnings (W0xxx)
    UnusedPrm {
        head: Span,
    },
    AdvantageIgnored {
        span: Span,
        algorithm: &'static str,
        head: Option<Span>,
    },
    NoEffect {
        span: Span,
        key: &'static str,
        why: &'static str,
        cause: Option<Span>,
    },
}

/// "did you mean `x`? the NOUN are ..." or just "the NOUN are ...".
fn suggest(word: &str, options: &[&str], noun: &str) -> String {
    let all = format!(
        "the {noun} are {}",
        backticked_list(options.iter().copied())
    );
    match did_you_mean(word, options.iter().copied()) {
        Some(s) => format!("did you mean `{s}`? {all}"),
        None => all,
    }
}

/// Adds a label only when there is a span to put it on.
fn label(d: Diagnostic, span: Option<Span>, message: impl Into<String>) -> Diagnostic {
    match span {
        Some(s) => d.label(s, message),
        None => d,
    }
}

/// A schema doc sentence as a phrase inside a help line: lower-case start, no final period.
fn doc_phrase(doc: &str) -> String {
    let trimmed = doc.trim().trim_end_matches('.');
    let mut chars = trimmed.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

/// Advantage presets that people write as algorithms.
const PRESET_NAMES: &[&str] = &["rloo", "grpo", "gigpo", "reinforce_pp"];

impl CheckError {
    pub fn is_error(&self) -> bool {
        self.diagnostic().is_error()
    }

    /// The finding in words.
    pub fn diagnostic(&self) -> Diagnostic {
        use CheckError as E;
        match self {
            E::TypeMismatch { span, expected, found, hint } => {
                let d = Diagnostic::new(Code::TypeMismatch, format!("expected {expected}, found {found}"))
                    .label(*span, format!("this is {found}"));
                match hint {
                    MismatchHint::None => d,
                    MismatchHint::Quote(name) => d.help(format!("quote it: `\"{name}\"`")),
                    MismatchHint::Unquote(name) => d.help(format!("write `{name}` without quotes")),
                    MismatchHint::WholeNumber => d.help("counts and sizes are integers: drop the fraction"),
                    MismatchHint::RewardSource => d.help("a reward is `verifier(env.won)` or `judge { ... }`"),
                    MismatchHint::AdvantageTerm => d.help(
                        "an advantage is a sum of `episode(...)`, `step(...)` and `token(...)` terms",
                    ),
                }
            }
            E::ListLength { span, expected, found } => Diagnostic::new(
                Code::TypeMismatch,
                format!("expected a list of {expected} integers, found {found} items"),
            )
            .label(*span, format!("{found} items")),
            E::UnknownValue { span, name, options } => {
                Diagnostic::new(Code::UnknownValue, format!("unknown value `{name}`"))
                    .label(*span, "not one of the allowed names")
                    .help(suggest(name, options, "values"))
            }
            E::OutOfRange { span, key, range, value } => {
                let must = format!("must be {}", range.describe());
                Diagnostic::new(Code::OutOfRange, format!("`{key}` = {} is out of range", number(*value)))
                    .label(*span, must.clone())
                    .help(format!("`{key}` {must}"))
            }
            E::NotAUrl { span, text } => Diagnostic::new(Code::NotAUrl, format!("`{text}` is not a URL"))
                .label(*span, "expected `http://host[:port]/path` or `https://...`")
                .help("an OpenAI-compatible base URL looks like `http://localhost:8000/v1`"),
            E::MissingFile { span, text, looked, what } => {
                Diagnostic::new(Code::MissingFile, format!("{what} `{text}` does not exist"))
                    .label(*span, format!("looked for `{looked}`"))
                    .help("relative paths are resolved from the directory of the file that writes them")
            }
            E::DivisionByZero { zero, dividend, divided } => Diagnostic::new(Code::DivisionByZero, "division by zero")
                .label(*zero, "this is zero")
                .label(*dividend, "divided by it")
                .help(match divided {
                    Divided::Constant => "the divisor of a constant expression must not be zero",
                    Divided::Term => "scale a term by a non-zero constant",
                    Divided::Signal => "scale a signal by a non-zero constant",
                }),
            E::NotFinite { span } => Diagnostic::new(Code::NotFinite, "constant expression is not finite")
                .label(*span, "this overflows to infinity")
                .help("check the exponents; recipe numbers are finite"),
            E::IntegerOverflow { span } => {
                Diagnostic::new(Code::IntegerOverflow, "integer overflow in a constant expression")
                    .label(*span, "overflows a 64-bit integer")
                    .help("use smaller numbers, or a float (`1e20`)")
            }
            E::DuplicateKey { again, first, key } => {
                Diagnostic::new(Code::DuplicateKey, format!("`{key}` is set twice in this block"))
                    .label(*again, "set again here")
                    .label(*first, "first set here")
                    .help("remove one of them")
            }
            E::UnknownKey { span, block, key, candidates, owner } => {
                let valid = if candidates.is_empty() {
                    format!("`{block}` has no keys")
                } else {
                    format!("the keys of `{block}` are {}", backticked_list(candidates.iter().copied()))
                };
                let help = match (owner, did_you_mean(key, candidates.iter().copied())) {
                    (Some(o), _) => format!("`{key}` is a key of `{o}`; {valid}"),
                    (None, Some(s)) => format!("did you mean `{s}`? {valid}"),
                    (None, None) => valid,
                };
                Diagnostic::new(Code::UnknownKey, format!("unknown key `{key}` in `{block}`"))
                    .label(*span, "unknown key")
                    .help(help)
            }
            E::MissingKey { head, block, key, doc } => {
                Diagnostic::new(Code::MissingKey, format!("`{block}` needs `{key}`"))
                    .label(*head, format!("no `{key}` here"))
                    .help(format!("add `{key} = ...`: {}", doc_phrase(doc)))
            }
            E::MissingVariant { span, kind, variants } => {
                Diagnostic::new(Code::MissingVariant, format!("`{kind}` needs a variant"))
                    .label(*span, format!("which `{kind}`?"))
                    .help(format!(
                        "write `{kind} VARIANT {{ ... }}` with one of {}",
                        backticked_list(variants.iter().copied())
                    ))
            }
            E::VariantNotAllowed { span, kind } => {
                Diagnostic::new(Code::UnknownVariant, format!("`{kind}` has no variants"))
                    .label(*span, "unexpected variant")
                    .help(format!("write `{kind} {{ ... }}`"))
            }
            E::UnknownVariant { span, kind, name, variants } => {
                let help = if *kind == "algorithm" && PRESET_NAMES.contains(&name.as_str()) {
                    format!("`{name}` is an advantage expression, not an algorithm: `use std::presets::{name}`")
                } else {
                    suggest(name, variants, "variants")
                };
                Diagnostic::new(Code::UnknownVariant, format!("unknown `{kind}` variant `{name}`"))
                    .label(*span, "not a variant")
                    .help(help)
            }
            E::NotABlockKey { span, key, expected } => {
                Diagnostic::new(Code::TypeMismatch, format!("expected {expected}, found a block"))
                    .label(*span, format!("`{key}` is not a block"))
                    .help(format!("write `{key} = ...`"))
            }
            E::NotKeyValue { span } => {
                Diagnostic::new(Code::TypeMismatch, "expected `key = value` inside a block value")
                    .label(*span, "not a `key = value`")
                    .help("a block value holds `key = value` entries")
            }
            E::MissingItem { span, item } => {
                let (what, help) = match item {
                    MissingItem::Env => (
                        "`env` block",
                        "add one, e.g. `env sokoban { }`, or `use std::envs::sokoban`",
                    ),
                    MissingItem::Policy => {
                        ("`policy` block", "add one, e.g. `policy transformer { layers = 2 }`")
                    }
                    MissingItem::Reward => (
                        "`reward outcome`",
                        "add `reward outcome = verifier(env.won)`, or `use std::envs::sokoban`",
                    ),
                    MissingItem::Advantage => (
                        "`advantage` expression",
                        "add one, e.g. `advantage = episode(outcome, norm = rloo)`, or `use std::presets::oprl_rloo`",
                    ),
                };
                Diagnostic::new(Code::MissingItem, format!("the recipe has no {what}"))
                    .label(*span, format!("no {what} in this recipe"))
                    .help(help)
            }
            E::LoraNeedsPretrained { span, block } => {
                let help = if block.starts_with("policy") {
                    "LoRA adapts a pretrained model: `policy hf { path = ..., lora { rank = 8 } }`; a `policy transformer` trains every weight"
                } else {
                    "the models that start from the policy take its adapters: set `lora { ... }` in `policy hf`"
                };
                Diagnostic::new(Code::LoraNeedsPretrained, format!("`lora` in `{block}`"))
                    .label(*span, "only `policy hf` takes LoRA adapters")
                    .help(help)
            }
            E::VerifierArity { span, count, signature } => {
                Diagnostic::new(Code::BadArguments, "`verifier` takes one positional argument")
                    .label(*span, format!("{count} arguments"))
                    .help(format!("the signature is `{signature}`"))
            }
            E::UnknownVerifierSignal { span, name, signals } => {
                Diagnostic::new(Code::UnknownName, format!("unknown verifier signal `{name}`"))
                    .label(*span, "not an environment signal")
                    .help(suggest(name, signals, "signals"))
            }
            E::UnknownRewardSource { span, name } => {
                let sources = "a reward is `verifier(env.won)` or `judge { ... }`";
                Diagnostic::new(Code::UnknownFunction, format!("unknown reward source `{name}`"))
                    .label(*span, "not a reward source")
                    .help(match did_you_mean(name, ["verifier", "judge"]) {
                        Some(s) => format!("did you mean `{s}`? {sources}"),
                        None => sources.to_string(),
                    })
            }
            E::JudgeNeedsModel { endpoint, judge } => {
                Diagnostic::new(Code::MissingKey, "a judge with an `endpoint` needs `model`")
                    .label(*endpoint, "requests go here")
                    .label(*judge, "no `model` in this judge")
                    .help("add `model = \"...\"`: the model name the server expects")
            }
            E::UnusedReward { span, name } => {
                Diagnostic::new(Code::UnusedReward, format!("reward `{name}` is never used"))
                    .label(*span, "not the outcome reward")
                    .help("only `reward outcome` feeds the advantage; rename it to `outcome` or remove it")
            }
            E::ConstantTerm { span } => Diagnostic::new(Code::MisplacedTerm, "a constant is not an advantage term")
                .label(*span, "a number on its own")
                .help("a constant shifts every advantage equally; scale a term instead, as in `0.5 * step(prm)`"),
            E::NonConstantScale { span, operand } => {
                Diagnostic::new(Code::NonConstantScale, "advantage terms can only be scaled by constants")
                    .label(*span, "a product or quotient of two terms")
                    .label(*operand, "not a constant")
                    .help("add terms and scale them by numbers, as in `episode(outcome) + 0.5 * step(prm)`")
            }
            E::BareSignal { span, text } => {
                Diagnostic::new(Code::MisplacedTerm, format!("signal `{text}` is not an advantage term"))
                    .label(*span, "a bare signal has no estimator")
                    .help(format!(
                        "wrap it in an estimator, as in `episode({text}, norm = rloo)` or `step({text})`"
                    ))
            }
            E::UnknownFunction { span, name, options } => {
                Diagnostic::new(Code::UnknownFunction, format!("unknown function `{name}`"))
                    .label(*span, "not a function here")
                    .help(suggest(name, options, "functions here"))
            }
            E::TokenGrouping { group, callee } => {
                Diagnostic::new(Code::Granularity, "step grouping on a token-level estimator")
                    .label(*group, "`group` groups steps")
                    .label(*callee, "this estimator is token-level")
                    .help("anchor-state grouping compares whole steps: use `step(..., group = anchor_state)`")
            }
            E::Granularity { signal, callee, estimator, level, problem } => {
                let (message, label, help) = match problem {
                    GranularityProblem::EpisodeOfStep { term, signal } => (
                        format!("`episode` needs an episode-level signal, but `{term}` is step-level"),
                        "step-level signal",
                        format!("use `step({signal})` for a step-level signal"),
                    ),
                    GranularityProblem::StepOfEpisode { signal } => (
                        format!("`step` needs a step-level signal, but `{signal}` is episode-level"),
                        "episode-level signal",
                        format!("use `episode({signal})`, or add a step-level signal as in `step({signal} + prm)`"),
                    ),
                    GranularityProblem::TokenWithoutForm { term } => (
                        format!("`token` needs a token-level signal, but `{term}` has no token-level form"),
                        "not token-level",
                        "only `prm` exists per token; use `step(...)` for step rewards".to_string(),
                    ),
                    GranularityProblem::TokenOfEpisode { signal } => (
                        format!("`token` needs a token-level signal, but `{signal}` is episode-level"),
                        "episode-level signal",
                        format!("use `episode({signal})`"),
                    ),
                };
                Diagnostic::new(Code::Granularity, message)
                    .label(*signal, label)
                    .label(*callee, format!("`{estimator}` is {level}"))
                    .help(help)
            }
            E::DiscountedEpisode { inner, callee, text } => Diagnostic::new(
                Code::Granularity,
                format!("`discounted` needs a step-level signal, but `{text}` is episode-level"),
            )
            .label(*inner, "episode-level signal")
            .label(*callee, "discounts over steps")
            .help("discount step rewards, as in `discounted(env.reward, 0.95)`"),
            E::BadArguments { span, problem, signature } => {
                let (message, label) = match problem {
                    ArgumentProblem::PositionalAfterNamed => {
                        ("a positional argument after a named one".to_string(), "positional".to_string())
                    }
                    ArgumentProblem::TooMany { function, max } => {
                        (format!("`{function}` takes at most {max} arguments"), "extra argument".to_string())
                    }
                    ArgumentProblem::Repeated { name } => {
                        (format!("argument `{name}` is given twice"), "repeated".to_string())
                    }
                    ArgumentProblem::Unknown { function, name, suggestion } => {
                        let hint = suggestion.map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default();
                        (format!("`{function}` has no argument `{name}`{hint}"), "unknown argument".to_string())
                    }
                    ArgumentProblem::Missing { function, name } => {
                        (format!("`{function}` is missing its `{name}` argument"), format!("no `{name}`"))
                    }
                };
                Diagnostic::new(Code::BadArguments, message)
                    .label(*span, label)
                    .help(format!("the signature is `{signature}`"))
            }
            E::NestedEstimator { span, name } => {
                Diagnostic::new(Code::MisplacedTerm, format!("estimator `{name}` inside another estimator"))
                    .label(*span, "an estimator, not a signal")
                    .help("an estimator takes a signal (`outcome`, `prm`, `env.reward`); add estimators instead of nesting them")
            }
            E::NotASignal { span, found, signals } => {
                Diagnostic::new(Code::TypeMismatch, format!("expected a signal, found {found}"))
                    .label(*span, format!("this is {found}"))
                    .help(format!("the signals are {}", backticked_list(signals.iter().copied())))
            }
            E::UnknownSignal { span, name, signals, is_other_reward } => {
                let help = if *is_other_reward {
                    format!(
                        "`{name}` is a reward definition, but only `reward outcome` feeds advantages; the signals are {}",
                        backticked_list(signals.iter().copied())
                    )
                } else {
                    suggest(name, signals, "signals")
                };
                Diagnostic::new(Code::UnknownName, format!("unknown signal `{name}`"))
                    .label(*span, "not a signal")
                    .help(help)
            }
            E::SimilarityWithoutAnchorState { similarity, group, callee } => {
                let d = Diagnostic::new(
                    Code::SimilarityWithoutAnchorState,
                    "`similarity` needs `group = anchor_state`",
                )
                .label(*similarity, "groups similar observations");
                let d = match group {
                    Some(group) => d.label(*group, "pool grouping ignores observations"),
                    None => d.label(*callee, "groups by `pool`, the default"),
                };
                d.help("add `group = anchor_state`, or remove `similarity`")
            }
            E::GroupTooSmall { group, at, baseline, prime } => {
                let what = if *prime { "PRIME's leave-one-out baseline" } else { "a group baseline" };
                let d = Diagnostic::new(
                    Code::GroupTooSmall,
                    format!("`group` = {group} is too small for a group baseline"),
                );
                let d = label(d, *at, "fewer than 2 trajectories per task");
                let d = label(d, *baseline, format!("{what} compares trajectories of one task"));
                d.help("set `train.group` to at least 2, or use `norm = none`")
            }
            E::MinibatchDivides { minibatch, tasks, group, at, batch_at } => {
                let batch = tasks.saturating_mul(*group);
                let d = Diagnostic::new(
                    Code::MinibatchDivides,
                    format!("`minibatch` = {minibatch} does not divide the batch of {batch} trajectories"),
                );
                let d = label(d, *at, format!("{batch} is not a multiple of {minibatch}"));
                let d = label(d, *batch_at, format!("the batch is `tasks x group` = {tasks} x {group}"));
                let divisors: Vec<String> = (1..=batch.min(4096))
                    .filter(|d| batch % d == 0)
                    .map(|d| d.to_string())
                    .collect();
                let shown = if divisors.len() > 12 {
                    format!("{}, ...", divisors[..12].join(", "))
                } else {
                    divisors.join(", ")
                };
                d.help(format!("use a divisor of {batch}: {shown}"))
            }
            E::TooManyBoxes { boxes, room, floor, boxes_at, room_at } => {
                let d = Diagnostic::new(
                    Code::TooManyBoxes,
                    format!("{boxes} boxes do not fit in a {}x{} room", room[0], room[1]),
                );
                let d = label(d, *boxes_at, format!("{boxes} boxes and a player"));
                let d = label(d, *room_at, format!("{floor} floor cells inside the walls"));
                d.help(format!("use at most {} boxes, or a larger room", (floor - 1).max(0)))
            }
            E::ImageNeedsTransformer { observation, policy } => {
                let d = Diagnostic::new(Code::ImageNeedsTransformer, "image observations need `policy transformer`");
                let d = label(d, *observation, "images");
                let d = label(d, *policy, "a text-only model");
                d.help("use `observation = text`, or `policy transformer { ... }` with a patch embedding")
            }
            E::SignalNotProvided { env, signal, span, head, provided } => {
                let d = Diagnostic::new(Code::SignalNotProvided, format!("`env {env}` does not provide `{signal}`"))
                    .label(*span, format!("reads `{signal}`"));
                let d = label(d, *head, format!("`{env}` has no such signal"));
                d.help(if env == "sotopia" {
                    "SOTOPIA episodes are scored by a judge: `reward outcome = judge { rubric = sotopia }`".to_string()
                } else {
                    let names: Vec<&str> = [
                        (provided.won, "`env.won`"),
                        (provided.score, "`env.score`"),
                        (provided.ret, "`env.return`"),
                    ]
                    .iter()
                    .filter(|(p, _)| *p)
                    .map(|(_, n)| *n)
                    .collect();
                    format!("`{env}` provides {}", names.join(", "))
                })
            }
            E::JudgeOnEnv { env, span, head } => {
                let d = Diagnostic::new(Code::SignalNotProvided, format!("a `judge` cannot score `env {env}` episodes"))
                    .label(*span, "the judge's rubric is SOTOPIA's");
                label(d, *head, format!("a `{env}` environment"))
                    .help("use `reward outcome = verifier(env.won)` (or another environment signal)")
            }
            E::NoStepRewards { env, span, head } => {
                let d = Diagnostic::new(Code::SignalNotProvided, format!("`env {env}` has no step rewards for `env.reward`"))
                    .label(*span, "reads environment step rewards");
                label(d, *head, "no step rewards").help("use `prm` for step-level credit")
            }
            E::HeadsDivideWidth { heads, width, heads_at, width_at } => {
                let reason = if width % heads != 0 {
                    format!("{width} is not a multiple of {heads}")
                } else {
                    format!(
                        "rotary positions need an even head width, and {width} / {heads} = {} is odd",
                        width / heads
                    )
                };
                let d = Diagnostic::new(
                    Code::HeadsDivideWidth,
                    format!("`heads` = {heads} does not split `width` = {width} into even heads"),
                );
                let d = label(d, *heads_at, reason);
                let d = label(d, *width_at, "the model width");
                d.help("choose `heads` so that `width / heads` is a whole, even number")
            }
            E::ContextTooShort { max_new_tokens, context, tokens_at, context_at } => {
                let d = Diagnostic::new(
                    Code::ContextTooShort,
                    format!("`max_new_tokens` = {max_new_tokens} leaves no room in a context of {context}"),
                );
                let d = label(d, *tokens_at, "tokens generated per turn");
                let d = label(d, *context_at, "the whole sequence must fit here");
                d.help("raise `context` or lower `max_new_tokens`")
            }
            E::NoListedAnswers { env, actions, prompt, head } => {
                let d = Diagnostic::new(Code::NoListedAnswers, format!("`env {env}` lists no answers to restrict sampling to"));
                let d = label(d, *actions, "samples only listed answers");
                match prompt {
                    Some(prompt) => label(d, *prompt, "this prompt takes free text with reasoning").help(
                        "use `prompt = compact`, whose answers the environment lists, or `actions = free`",
                    ),
                    None => label(d, *head, format!("`{env}` takes free text")).help("use `actions = free`"),
                }
            }
            E::PrimeNeedsBinary { span, head } => {
                let d = Diagnostic::new(Code::PrimeConflict, "`algorithm prime` needs a binary outcome")
                    .label(*span, "not a win/loss signal");
                label(d, *head, "PRIME's cross-entropy PRM loss").help("use `reward outcome = verifier(env.won)`")
            }
            E::PrimeConflict { key, wanted, value, at, head } => {
                let d = Diagnostic::new(
                    Code::PrimeConflict,
                    format!("`algorithm prime` needs `prm.{key} = {wanted}`, not `{value}`"),
                );
                let d = label(d, *at, format!("`{value}` conflicts with PRIME"));
                label(d, *head, "PRIME is chosen here")
                    .help(format!("remove `{key}` from the `prm` block; PRIME uses `{wanted}`"))
            }
            E::UnusedPrm { head } => Diagnostic::new(Code::UnusedBlock, "the `prm` block has no effect")
                .label(*head, "never read")
                .help("the advantage reads no `prm` signal and the algorithm is not PRIME; remove the block or add `step(prm)`"),
            E::AdvantageIgnored { span, algorithm, head } => {
                let d = Diagnostic::new(
                    Code::AdvantageIgnored,
                    format!("`algorithm {algorithm}` ignores the advantage expression"),
                )
                .label(*span, "has no effect");
                label(d, *head, format!("`{algorithm}` computes its own advantages"))
                    .help("remove the `advantage` line, or use `algorithm ppo`")
            }
            E::NoEffect { span, key, why, cause } => {
                let d = Diagnostic::new(Code::NoEffect, format!("`{key}` has no effect here")).label(*span, *why);
                label(d, *cause, "because of this").help(format!("remove `{key}`"))
            }
        }
    }
}

impl From<CheckError> for Diagnostic {
    fn from(error: CheckError) -> Diagnostic {
        error.diagnostic()
    }
}
