//! The stable diagnostic codes, grouped by the phase that emits them, with the long form that
//! `oprl explain CODE` prints. Codes are never renumbered: a retired code stays reserved.

use serde::Serialize;

/// The compiler phase a code belongs to (its hundreds digit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// E01xx: turning text into an AST.
    Parse,
    /// E02xx: imports, names, overrides, duplicates.
    Resolve,
    /// E03xx: schemas, value types, advantage granularity.
    Type,
    /// E04xx: ranges and rules that tie several fields together.
    Rule,
    /// E05xx: evaluating checked expressions into concrete graph values.
    Lower,
    /// W0xxx: the recipe compiles, but part of it has no effect.
    Warning,
}

macro_rules! codes {
    ($( $variant:ident = $code:literal, $phase:ident, $title:literal, $explain:literal; )*) => {
        /// A diagnostic code. The variant says what went wrong; [`Code::as_str`] is the stable id.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code { $( $variant, )* }

        impl Code {
            /// Every code, in numeric order.
            pub const ALL: &'static [Code] = &[ $( Code::$variant, )* ];

            /// The stable id, e.g. `E0301`.
            pub fn as_str(self) -> &'static str {
                match self { $( Code::$variant => $code, )* }
            }

            pub fn phase(self) -> Phase {
                match self { $( Code::$variant => Phase::$phase, )* }
            }

            /// A short title, e.g. `unknown key`.
            pub fn title(self) -> &'static str {
                match self { $( Code::$variant => $title, )* }
            }

            /// The long form printed by `oprl explain`.
            pub fn explain(self) -> &'static str {
                match self { $( Code::$variant => $explain, )* }
            }
        }
    };
}

impl Code {
    /// Looks a code up by its id, case-insensitively (`e0301` works).
    pub fn parse(id: &str) -> Option<Code> {
        Code::ALL
            .iter()
            .copied()
            .find(|c| c.as_str().eq_ignore_ascii_case(id.trim()))
    }

    pub fn is_warning(self) -> bool {
        self.phase() == Phase::Warning
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

codes! {
    // ----------------------------------------------------------------------------------- parse
    SyntaxError = "E0101", Parse, "syntax error",
"The text does not follow the recipe grammar at this point. The label says what was found and
what the grammar expected there (a value, a name, `=`, `}`, ...).

A recipe is a sequence of statements:

    use std::presets::oprl_rloo          # an import
    env sokoban { room = [6, 6] }        # a block: kind, optional variant, braces
    reward outcome = verifier(env.won)   # a named definition
    advantage = episode(outcome)         # an assignment

Values are numbers, strings, `true`/`false`, lists `[a, b]`, names, dotted references
(`env.won`), calls with positional and named arguments, and `+ - * /` arithmetic.";

    UnterminatedString = "E0102", Parse, "unterminated string",
"A string opened with `\"` is not closed on the same line. Strings cannot span lines; write
`\\n` for a newline inside a string.

    model = \"gpt-4o      # error
    model = \"gpt-4o\"    # ok";

    InvalidEscape = "E0103", Parse, "invalid escape",
"A backslash in a string starts an escape. The known escapes are `\\\\`, `\\\"`, `\\n`, `\\t`,
`\\r`, `\\0` and `\\u{XXXX}` (a Unicode scalar value in hex). Any other escape is rejected
rather than silently kept, so Windows paths must double their backslashes or use `/`.";

    NumberTooLarge = "E0104", Parse, "number out of range",
"An integer literal does not fit in a signed 64-bit integer, or a float literal is too large
to be represented (it would be infinite). Recipe numbers are sizes, counts and rates, so such
a literal is always a typo.";

    UnclosedDelimiter = "E0105", Parse, "unbalanced delimiter",
"A `{`, `[` or `(` is never closed, or is closed by the wrong bracket. The primary label is
on the opening delimiter; when a wrong closing bracket was found, a second label points at it.";

    UseNotAtTopLevel = "E0106", Parse, "`use` inside a block",
"Imports apply to the whole recipe, so `use` may only appear at the top level of a file, not
inside a block. Move the `use` line to the top of the file.";

    NestingTooDeep = "E0107", Parse, "nesting too deep",
"Brackets, blocks and unary minus signs nest more than 32 levels deep, or one expression
has more than 32 operators. No meaningful recipe needs that; the limits keep the depth of
every tree the compiler walks bounded, whatever the input.";

    BadOverride = "E0108", Parse, "malformed `--set`",
"A command-line override must have the form `--set PATH=VALUE`, where PATH is a dotted key
(`train.group`, `policy.sampling.temperature`, `advantage`, `reward.outcome`) and VALUE is
written in recipe syntax (`4`, `3e-4`, `\"runs\"`, `[5, 5]`, `episode(outcome, norm = rloo)`).";

    // --------------------------------------------------------------------------------- resolve
    UnknownModule = "E0201", Resolve, "unknown stdlib module",
"`use std::...` names a module that the standard library does not have. The help lists the
closest names. The stdlib is embedded in the binary; its modules are the files under
`stdlib/` (for example `std::presets::oprl_rloo`, `std::envs::sokoban`).";

    FileNotFound = "E0202", Resolve, "imported file not found",
"`use \"file.oprl\"` names a file that cannot be read. Relative paths are resolved from the
directory of the file that contains the `use`, not from the current directory.";

    ImportCycle = "E0203", Resolve, "import cycle",
"A file imports itself, directly or through other files. Imports are applied before the
importing file's own statements, so a cycle has no meaningful order. The help shows the chain.";

    UnknownName = "E0204", Resolve, "unknown name",
"An expression refers to a name that does not exist here. In an advantage expression the
signals are `outcome` (the outcome reward, episode-level), `prm` (implicit process rewards,
step-level, or token-level under `token(...)`) and `env.reward` (environment step rewards).
A verifier reads `env.won`, `env.score` or `env.return`.";

    DuplicateKey = "E0205", Resolve, "key set twice",
"The same key is set twice in one block of one file. Overriding across files (an import,
then the importing file, then `--set`) is the intended way to change a value; within one
block a second assignment is almost always a mistake, so it is an error.";

    DuplicateBlock = "E0206", Resolve, "block written twice",
"The same block (or named definition, or top-level assignment) appears twice in one file.
Merge the two. Across files, later definitions override earlier ones: a block of the same
kind and variant merges key by key; a block with another variant replaces the earlier one.";

    UnknownBlockKind = "E0207", Resolve, "unknown block kind",
"A top-level statement names a kind of block the language does not have. The kinds are
`env`, `policy`, `reward`, `prm`, `advantage`, `algorithm`, `train`, `eval` and `output`.";

    UnknownOverridePath = "E0208", Resolve, "`--set` path names nothing",
"A `--set` override names a block that the recipe does not have and that cannot be created
from the override alone (a block with variants, such as `env` or `policy`, must be written
in the recipe first), or a path with too many parts.";

    // ------------------------------------------------------------------------------------ type
    UnknownKey = "E0301", Type, "unknown key",
"Every block has a closed schema: a key that is not in it is an error, never silently
ignored. The help suggests the closest valid key and lists all of them. `oprl check
--resolved` prints every key of every block with its value.";

    TypeMismatch = "E0302", Type, "wrong type",
"A value has the wrong type for its key: for example a string where an integer is expected,
or a list of the wrong length. Integers are accepted where a float is expected; the reverse
is not (write `2`, not `2.0`, for a count).";

    UnknownVariant = "E0303", Type, "unknown variant",
"A block's variant is not one the language knows: `env` is `sokoban`, `webshop`, `sotopia`
or `external`; `policy` is `transformer` or `hf`; `algorithm` is `ppo`, `prime` or `ppo_gae`.
RLOO, GRPO and GiGPO are not algorithms but advantage expressions (see the stdlib presets).";

    MissingVariant = "E0304", Type, "missing variant",
"This kind of block needs a variant after its kind, as in `env sokoban { ... }`.";

    UnknownFunction = "E0305", Type, "unknown function",
"A call names a function that does not exist in this position. Advantage expressions use the
estimators `episode(signal, ...)`, `step(signal, ...)`, `token(signal, ...)` and the signal
transform `discounted(signal, gamma)`. Rewards are `verifier(env.SIGNAL)` or `judge { ... }`.";

    Granularity = "E0306", Type, "granularity mismatch",
"Each advantage signal has a granularity: `outcome` is one value per episode, `prm` and
`env.reward` one value per step, and `prm` also one value per token. An estimator must
receive a signal of its own granularity; inside a sum, a coarser term is broadcast to the
finer one (`step(outcome + prm)` is the merged-rewards ablation). So `episode(prm)` and
`step(outcome)` are errors (use `step(prm)` and `episode(outcome)`), `token(env.reward)` is an
error (the environment rewards steps, not tokens), and anchor-state grouping is step-level only.";

    MisplacedTerm = "E0307", Type, "misplaced term",
"The advantage is a sum of estimator terms; each estimator takes a signal. A bare signal at
the top level (`advantage = outcome`) has no normalisation and is rejected: wrap it,
as in `episode(outcome, norm = rloo)`. An estimator inside another estimator, or an advantage
expression where a plain value is expected, is rejected too.";

    NonConstantScale = "E0308", Type, "non-constant factor",
"Advantage terms can be added, subtracted, and scaled by constant numbers. The product or
quotient of two terms (`episode(outcome) * step(prm)`) is not a linear combination and has no
meaning as an advantage; division is only by a constant.";

    BadArguments = "E0309", Type, "bad arguments",
"A call has the wrong arguments: a missing required argument, too many positional arguments,
an unknown or repeated named argument. The help lists the signature.";

    MissingKey = "E0310", Type, "missing required key",
"The block's schema has a key without a default, and the recipe does not set it. For example
`policy hf` needs `path`, and `env external` needs `command`.";

    UnknownValue = "E0311", Type, "unknown value",
"A key that takes one of a fixed set of names got a name outside the set. The help suggests
the closest one and lists them all.";

    MissingItem = "E0312", Type, "missing block",
"The recipe lacks something every run needs: an `env` block, a `policy` block, a
`reward outcome = ...` definition, or (for `algorithm ppo`) an `advantage = ...` line. A stdlib
preset (`use std::presets::oprl_rloo`) provides the advantage and algorithm.";

    LoraNeedsPretrained = "E0313", Type, "LoRA outside a pretrained policy",
"A `lora { ... }` block adapts the frozen weights of a pretrained model, so it belongs in
`policy hf { ... }`. A `policy transformer` starts from random weights and trains all of them;
the PRM, the frozen reference and the critic start from the policy and take its adapters (each
its own copy over the one shared base), so they have no `lora` block of their own.";

    // ------------------------------------------------------------------------------------ rule
    OutOfRange = "E0401", Rule, "value out of range",
"A number is outside the range its key allows, for example `clip` outside (0, 1), `gamma`
outside [0, 1] or a count that must be at least 1. The help gives the range.";

    GroupTooSmall = "E0402", Rule, "group too small for a group baseline",
"Group baselines (`zscore`, `rloo`, `mean`, `mean_whiten`, and PRIME's leave-one-out) compare
the trajectories of one task with each other. With `train.group` below 2 every advantage would
be zero (or divide by zero for RLOO). Raise `group` or use `norm = none`.";

    MinibatchDivides = "E0403", Rule, "minibatch does not divide the batch",
"A PPO epoch splits the `tasks x group` trajectories of an iteration into minibatches of
`minibatch` trajectories. It must divide the batch exactly, so that every trajectory is used
once per epoch with equal weight.";

    NotAUrl = "E0404", Rule, "not a URL",
"An endpoint must be an `http://` or `https://` URL with a host, such as
`http://localhost:8000/v1` (the base of an OpenAI-compatible API).";

    MissingFile = "E0405", Rule, "referenced file not found",
"A key names a file or directory that does not exist. Relative paths are resolved from the
directory of the file that wrote them (the current directory for `--set`).";

    TooManyBoxes = "E0406", Rule, "too many boxes for the room",
"A Sokoban room of `rows x cols` (walls included) has `(rows - 2) x (cols - 2)` floor cells.
The player and every box need a cell each, so `boxes` must be below the floor area.";

    HeadsDivideWidth = "E0407", Rule, "heads do not divide the width",
"A transformer's attention splits `width` into `heads` equal parts, so `width` must be a
multiple of `heads`; rotary positions also need an even head width.";

    ImageNeedsTransformer = "E0408", Rule, "images need the built-in transformer",
"`observation = image` feeds image patches to the policy. Only `policy transformer` has a patch
embedding; a Hugging Face checkpoint (`policy hf`) reads text only.";

    SignalNotProvided = "E0409", Rule, "signal not provided by the environment",
"The reward or advantage reads a signal the chosen environment does not produce: SOTOPIA has
no win flag and no step rewards, so its outcome must come from a `judge`; WebShop has no step
rewards for `env.reward`; a `judge` only understands SOTOPIA episodes.";

    PrimeConflict = "E0410", Rule, "PRIME setting conflict",
"`algorithm prime` trains its PRM with cross-entropy against a frozen reference and needs
binary outcomes (`verifier(env.won)`). A `prm` block that asks for another loss or reference,
or a non-binary outcome, conflicts with it.";

    ContextTooShort = "E0411", Rule, "context too short",
"A turn's prompt and generated action must fit in the transformer's `context`. With
`max_new_tokens` at or above `context` there is no room left for the prompt.";

    NoListedAnswers = "E0412", Rule, "environment lists no answers",
"`sampling { actions = admissible }` samples only the answers the environment lists for the
current state, and scores actions under the same restriction. Sokoban and WebShop list them
with `prompt = compact` (the four moves; the page's clicks or the goal's catalogue terms);
their verl prompts take free text with reasoning, and SOTOPIA and external environments take
free text. Use `prompt = compact`, or `actions = free`.";

    SimilarityWithoutAnchorState = "E0413", Rule, "similarity without anchor-state grouping",
"`step(..., similarity = t)` groups steps whose observations are at least `t` similar (the
difflib ratio, verl-agent's `similarity_thresh`) instead of only identical ones. It refines
anchor-state grouping, so it needs `group = anchor_state`; under `group = pool` every step of a
task group already shares one group.";

    // ----------------------------------------------------------------------------------- lower
    DivisionByZero = "E0501", Lower, "division by zero",
"A constant expression divides by zero. Arithmetic in a recipe is evaluated once, while
lowering to the execution graph; its result must be a finite number.";

    NotFinite = "E0502", Lower, "result is not finite",
"A constant expression overflows to infinity (or is not a number). Check the exponents.";

    IntegerOverflow = "E0503", Lower, "integer overflow",
"Integer arithmetic in a constant expression overflows a signed 64-bit integer.";

    // -------------------------------------------------------------------------------- warnings
    UnusedBlock = "W0001", Warning, "block has no effect",
"A block is set but nothing in the compiled graph reads it: for example a `prm` block when
the advantage reads no `prm` signal and the algorithm is not PRIME. Remove it, or use it.";

    NoEffect = "W0002", Warning, "key has no effect",
"A key is set, but other settings make it irrelevant: `patch` with text observations,
`kl_coef` with `kl = none`, endpoint options of an embedded judge, and so on.";

    AdvantageIgnored = "W0003", Warning, "advantage ignored by the algorithm",
"`algorithm prime` and `algorithm ppo_gae` compute their own advantages (PRIME's leave-one-out
returns; GAE from a critic), so an `advantage = ...` line has no effect under them.";

    DuplicateImport = "W0004", Warning, "module imported twice",
"The same module is imported twice in one file. The second import is ignored.";

    UnusedReward = "W0005", Warning, "reward not used",
"Only the reward named `outcome` feeds the advantage and the success rate. Another named
reward definition has no effect.";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_sorted_and_prefixed_by_phase() {
        let ids: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(ids, sorted);
        for c in Code::ALL {
            let prefix = match c.phase() {
                Phase::Parse => "E01",
                Phase::Resolve => "E02",
                Phase::Type => "E03",
                Phase::Rule => "E04",
                Phase::Lower => "E05",
                Phase::Warning => "W0",
            };
            assert!(c.as_str().starts_with(prefix), "{c}");
            assert!(!c.explain().is_empty() && !c.title().is_empty());
        }
        assert_eq!(Code::parse("e0301"), Some(Code::UnknownKey));
        assert_eq!(Code::parse("E9999"), None);
    }
}
