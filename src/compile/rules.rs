//! Cross-field rules (E04xx) and dead-config warnings (W0001-W0003). They run only on a recipe
//! that type-checked, so every key they read is present. A conflict labels both halves.

use super::check::{CheckedBlock, CheckedRecipe, CheckedReward, Checker};
use crate::diagnostics::{Code, Diagnostic, Span};
use crate::graph::VerifierSignal;

/// The span of a key's value, or the block head when the value is a default.
fn at(block: &CheckedBlock, key: &str) -> Option<Span> {
    block.span(key).or(block.head)
}

/// Adds a label only when there is a span to put it on.
fn label(d: Diagnostic, span: Option<Span>, message: impl Into<String>) -> Diagnostic {
    match span {
        Some(s) => d.label(s, message),
        None => d,
    }
}

pub fn check_rules(recipe: &CheckedRecipe, checker: &mut Checker) {
    let mut out: Vec<Diagnostic> = Vec::new();
    group_baselines(recipe, &mut out);
    minibatch(recipe, &mut out);
    if let Some(env) = &recipe.env {
        environment(env, recipe, &mut out);
    }
    if let Some(policy) = &recipe.policy {
        transformer(policy, &mut out);
    }
    prime(recipe, &mut out);
    admissible_actions(recipe, &mut out);
    checker.diagnostics.extend(out);
    warnings(recipe, checker);
}

fn group_baselines(recipe: &CheckedRecipe, out: &mut Vec<Diagnostic>) {
    let group = recipe.train.int("group");
    if group >= 2 {
        return;
    }
    let group_span = at(&recipe.train, "group");
    let algorithm = recipe.algorithm.variant();
    let other = if algorithm == Some("prime") {
        Some((
            recipe.algorithm.head,
            "PRIME's leave-one-out baseline".to_string(),
        ))
    } else if algorithm == Some("ppo") {
        recipe
            .advantage_info
            .group_baselines
            .first()
            .map(|s| (Some(*s), "a group baseline".to_string()))
    } else {
        None
    };
    let Some((other_span, what)) = other else {
        return;
    };
    let d = Diagnostic::new(
        Code::GroupTooSmall,
        format!("`group` = {group} is too small for a group baseline"),
    );
    let d = label(d, group_span, "fewer than 2 trajectories per task");
    let d = label(
        d,
        other_span,
        format!("{what} compares trajectories of one task"),
    );
    out.push(d.help("set `train.group` to at least 2, or use `norm = none`"));
}

fn minibatch(recipe: &CheckedRecipe, out: &mut Vec<Diagnostic>) {
    let (tasks, group) = (recipe.train.int("tasks"), recipe.train.int("group"));
    let minibatch = recipe.algorithm.int("minibatch");
    let batch = tasks.saturating_mul(group);
    if minibatch > 0 && batch % minibatch == 0 {
        return;
    }
    let d = Diagnostic::new(
        Code::MinibatchDivides,
        format!("`minibatch` = {minibatch} does not divide the batch of {batch} trajectories"),
    );
    let d = label(
        d,
        at(&recipe.algorithm, "minibatch"),
        format!("{batch} is not a multiple of {minibatch}"),
    );
    let d = label(
        d,
        at(&recipe.train, "group").or(at(&recipe.train, "tasks")),
        format!("the batch is `tasks x group` = {tasks} x {group}"),
    );
    let divisors: Vec<String> = (1..=batch.min(4096))
        .filter(|d| batch % d == 0)
        .map(|d| d.to_string())
        .collect();
    let shown = if divisors.len() > 12 {
        format!("{}, ...", divisors[..12].join(", "))
    } else {
        divisors.join(", ")
    };
    out.push(d.help(format!("use a divisor of {batch}: {shown}")));
}

fn environment(env: &CheckedBlock, recipe: &CheckedRecipe, out: &mut Vec<Diagnostic>) {
    let kind = env.variant().unwrap_or("");
    if kind == "sokoban" {
        let room = env.int_list("room");
        let floor = (room[0] - 2).max(0) * (room[1] - 2).max(0);
        let boxes = env.int("boxes");
        if boxes >= floor {
            let d = Diagnostic::new(
                Code::TooManyBoxes,
                format!("{boxes} boxes do not fit in a {}x{} room", room[0], room[1]),
            );
            let d = label(d, at(env, "boxes"), format!("{boxes} boxes and a player"));
            let d = label(
                d,
                at(env, "room"),
                format!("{floor} floor cells inside the walls"),
            );
            out.push(d.help(format!(
                "use at most {} boxes, or a larger room",
                (floor - 1).max(0)
            )));
        }
        if let (Some(policy), "image") = (&recipe.policy, env.str("observation")) {
            if policy.variant() == Some("hf") {
                let d = Diagnostic::new(
                    Code::ImageNeedsTransformer,
                    "image observations need `policy transformer`",
                );
                let d = label(d, at(env, "observation"), "images");
                let d = label(d, policy.head, "a text-only model");
                out.push(d.help("use `observation = text`, or `policy transformer { ... }` with a patch embedding"));
            }
        }
    }
    // Which signals this environment produces.
    let (won, score, ret, step_rewards) = match kind {
        "sokoban" => (true, false, true, true),
        "webshop" => (true, true, true, true),
        "sotopia" => (false, false, false, false),
        _ => (true, true, true, true),
    };
    if let Some(reward) = &recipe.reward {
        match reward {
            CheckedReward::Verifier { signal, span } => {
                let (ok, name) = match signal {
                    VerifierSignal::Won => (won, "env.won"),
                    VerifierSignal::Score => (score, "env.score"),
                    VerifierSignal::Return => (ret, "env.return"),
                };
                if !ok {
                    let d = Diagnostic::new(
                        Code::SignalNotProvided,
                        format!("`env {kind}` does not provide `{name}`"),
                    )
                    .label(*span, format!("reads `{name}`"));
                    let d = label(d, env.head, format!("`{kind}` has no such signal"));
                    let help = if kind == "sotopia" {
                        "SOTOPIA episodes are scored by a judge: `reward outcome = judge { rubric = sotopia }`".to_string()
                    } else {
                        format!("`{kind}` provides {}", provided(won, score, ret))
                    };
                    out.push(d.help(help));
                }
            }
            CheckedReward::Judge { span, .. } if kind != "sotopia" => {
                let d = Diagnostic::new(
                    Code::SignalNotProvided,
                    format!("a `judge` cannot score `env {kind}` episodes"),
                )
                .label(*span, "the judge's rubric is SOTOPIA's");
                let d = label(d, env.head, format!("a `{kind}` environment"));
                out.push(d.help(
                    "use `reward outcome = verifier(env.won)` (or another environment signal)",
                ));
            }
            CheckedReward::Judge { .. } => {}
        }
    }
    if !step_rewards {
        if let Some(span) = recipe.advantage_info.reads_env_reward.first() {
            let d = Diagnostic::new(
                Code::SignalNotProvided,
                format!("`env {kind}` has no step rewards for `env.reward`"),
            )
            .label(*span, "reads environment step rewards");
            let d = label(d, env.head, "no step rewards");
            out.push(d.help("use `prm` for step-level credit"));
        }
    }
}

fn provided(won: bool, score: bool, ret: bool) -> String {
    let names: Vec<&str> = [
        (won, "`env.won`"),
        (score, "`env.score`"),
        (ret, "`env.return`"),
    ]
    .iter()
    .filter(|(p, _)| *p)
    .map(|(_, n)| *n)
    .collect();
    names.join(", ")
}

fn transformer(policy: &CheckedBlock, out: &mut Vec<Diagnostic>) {
    if policy.variant() != Some("transformer") {
        return;
    }
    let (width, heads) = (policy.int("width"), policy.int("heads"));
    let rope = policy.str("positions") == "rope";
    if width % heads != 0 || (rope && (width / heads) % 2 != 0) {
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
        let d = label(d, at(policy, "heads"), reason);
        let d = label(d, at(policy, "width"), "the model width");
        out.push(d.help("choose `heads` so that `width / heads` is a whole, even number"));
    }
    let sampling = policy.block("sampling");
    let (max_new, context) = (sampling.int("max_new_tokens"), policy.int("context"));
    if max_new >= context {
        let d = Diagnostic::new(
            Code::ContextTooShort,
            format!("`max_new_tokens` = {max_new} leaves no room in a context of {context}"),
        );
        let d = label(
            d,
            at(sampling, "max_new_tokens"),
            "tokens generated per turn",
        );
        let d = label(d, at(policy, "context"), "the whole sequence must fit here");
        out.push(d.help("raise `context` or lower `max_new_tokens`"));
    }
}

/// `sampling.actions = admissible` needs an environment that lists its answers.
fn admissible_actions(recipe: &CheckedRecipe, out: &mut Vec<Diagnostic>) {
    let (Some(env), Some(policy)) = (&recipe.env, &recipe.policy) else {
        return;
    };
    let sampling = policy.block("sampling");
    if sampling.str("actions") != "admissible" {
        return;
    }
    let kind = env.variant().unwrap_or("");
    let has_compact_prompt = matches!(kind, "sokoban" | "webshop");
    if has_compact_prompt && env.opt_str("prompt") == Some("compact") {
        return;
    }
    let d = Diagnostic::new(
        Code::NoListedAnswers,
        format!("`env {kind}` lists no answers to restrict sampling to"),
    );
    let d = label(d, at(sampling, "actions"), "samples only listed answers");
    out.push(if has_compact_prompt {
        label(
            d,
            at(env, "prompt"),
            "this prompt takes free text with reasoning",
        )
        .help("use `prompt = compact`, whose answers the environment lists, or `actions = free`")
    } else {
        label(d, env.head, format!("`{kind}` takes free text")).help("use `actions = free`")
    });
}

fn prime(recipe: &CheckedRecipe, out: &mut Vec<Diagnostic>) {
    if recipe.algorithm.variant() != Some("prime") {
        return;
    }
    let head = recipe.algorithm.head;
    if let Some(reward) = &recipe.reward {
        let binary = matches!(
            reward,
            CheckedReward::Verifier {
                signal: VerifierSignal::Won,
                ..
            }
        );
        if !binary {
            let d = Diagnostic::new(
                Code::PrimeConflict,
                "`algorithm prime` needs a binary outcome",
            )
            .label(reward.span(), "not a win/loss signal");
            let d = label(d, head, "PRIME's cross-entropy PRM loss");
            out.push(d.help("use `reward outcome = verifier(env.won)`"));
        }
    }
    for (key, wanted) in [("loss", "cross_entropy"), ("reference", "frozen")] {
        let value = recipe.prm.str(key);
        if value != wanted {
            let d = Diagnostic::new(
                Code::PrimeConflict,
                format!("`algorithm prime` needs `prm.{key} = {wanted}`, not `{value}`"),
            );
            let d = label(
                d,
                at(&recipe.prm, key),
                format!("`{value}` conflicts with PRIME"),
            );
            let d = label(d, head, "PRIME is chosen here");
            out.push(d.help(format!(
                "remove `{key}` from the `prm` block; PRIME uses `{wanted}`"
            )));
        }
    }
}

fn warnings(recipe: &CheckedRecipe, checker: &mut Checker) {
    let mut out: Vec<Diagnostic> = Vec::new();
    let user = |span: Option<Span>| span.filter(|s| checker.is_user(*s));
    // A written PRM block that nothing reads.
    if let Some(head) = user(recipe.prm.head) {
        if !recipe.needs_prm() {
            out.push(
                Diagnostic::new(Code::UnusedBlock, "the `prm` block has no effect")
                    .label(head, "never read")
                    .help("the advantage reads no `prm` signal and the algorithm is not PRIME; remove the block or add `step(prm)`"),
            );
        }
    }
    // An advantage expression that the algorithm replaces.
    if let (Some((_, expr)), Some(variant @ ("prime" | "ppo_gae"))) =
        (&recipe.advantage, recipe.algorithm.variant())
    {
        if let Some(span) = user(Some(expr.span)) {
            let d = Diagnostic::new(
                Code::AdvantageIgnored,
                format!("`algorithm {variant}` ignores the advantage expression"),
            )
            .label(span, "has no effect");
            let d = label(
                d,
                recipe.algorithm.head,
                format!("`{variant}` computes its own advantages"),
            );
            out.push(d.help("remove the `advantage` line, or use `algorithm ppo`"));
        }
    }
    let mut no_effect = |block: &CheckedBlock, key: &str, why: &str, other: Option<Span>| {
        if let Some(span) = user(block.span(key)) {
            let d = Diagnostic::new(Code::NoEffect, format!("`{key}` has no effect here"))
                .label(span, why.to_string());
            let d = label(d, other, "because of this");
            out.push(d.help(format!("remove `{key}`")));
        }
    };
    if let (Some(env), Some(policy)) = (&recipe.env, &recipe.policy) {
        let text = env.variant() != Some("sokoban") || env.str("observation") == "text";
        if text && policy.variant() == Some("transformer") {
            no_effect(
                policy,
                "patch",
                "only image observations use patches",
                env.span("observation").or(env.head),
            );
        }
        if text && recipe.needs_prm() {
            no_effect(
                &recipe.prm,
                "text_view",
                "only image observations have a text view",
                env.span("observation").or(env.head),
            );
        }
        if env.variant() == Some("webshop") && env.opt_str("products").is_some() {
            no_effect(
                env,
                "catalogue_size",
                "a product file replaces the generated catalogue",
                env.span("products"),
            );
        }
    }
    if recipe.algorithm.str("kl") == "none" {
        no_effect(
            &recipe.algorithm,
            "kl_coef",
            "no KL penalty with `kl = none`",
            recipe.algorithm.span("kl"),
        );
    }
    if let Some(CheckedReward::Judge { block, .. }) = &recipe.reward {
        if block.opt_str("endpoint").is_none() {
            for key in [
                "model",
                "api_key_env",
                "temperature",
                "timeout_s",
                "retries",
                "concurrency",
            ] {
                no_effect(block, key, "the embedded judge makes no requests", None);
            }
        }
    }
    checker.diagnostics.extend(out);
}
