//! Cross-field rules (E04xx) and dead-config warnings (W0001-W0003). They run only on a recipe
//! that type-checked, so every key they read is present. A conflict labels both halves.

use super::checked::{CheckedBlock, CheckedRecipe, CheckedReward};
use super::error::{CheckError, ProvidedSignals};
use crate::diagnostics::Span;
use crate::graph::VerifierSignal;

/// The span of a key's value, or the block head when the value is a default.
fn at(block: &CheckedBlock, key: &str) -> Option<Span> {
    block.span(key).or(block.head)
}

/// The rules' and warnings' findings. `is_user` says whether a span is in the checked file or
/// a `--set` value: dead-config warnings are reported only there.
pub fn check_rules(recipe: &CheckedRecipe, is_user: &dyn Fn(Span) -> bool) -> Vec<CheckError> {
    let mut out = Vec::new();
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
    warnings(recipe, is_user, &mut out);
    out
}

fn group_baselines(recipe: &CheckedRecipe, out: &mut Vec<CheckError>) {
    let group = recipe.train.int("group");
    if group >= 2 {
        return;
    }
    let prime = recipe.algorithm.variant() == Some("prime");
    let baseline = if prime {
        recipe.algorithm.head
    } else if recipe.algorithm.variant() == Some("ppo") {
        match recipe.advantage_info.group_baselines.first() {
            Some(span) => Some(*span),
            None => return,
        }
    } else {
        return;
    };
    out.push(CheckError::GroupTooSmall {
        group,
        at: at(&recipe.train, "group"),
        baseline,
        prime,
    });
}

fn minibatch(recipe: &CheckedRecipe, out: &mut Vec<CheckError>) {
    let (tasks, group) = (recipe.train.int("tasks"), recipe.train.int("group"));
    let minibatch = recipe.algorithm.int("minibatch");
    let batch = tasks.saturating_mul(group);
    if minibatch > 0 && batch % minibatch == 0 {
        return;
    }
    out.push(CheckError::MinibatchDivides {
        minibatch,
        tasks,
        group,
        at: at(&recipe.algorithm, "minibatch"),
        batch_at: at(&recipe.train, "group").or(at(&recipe.train, "tasks")),
    });
}

fn environment(env: &CheckedBlock, recipe: &CheckedRecipe, out: &mut Vec<CheckError>) {
    let kind = env.variant().unwrap_or("");
    if kind == "sokoban" {
        let room = env.int_list("room");
        let floor = (room[0] - 2).max(0) * (room[1] - 2).max(0);
        let boxes = env.int("boxes");
        if boxes >= floor {
            out.push(CheckError::TooManyBoxes {
                boxes,
                room: [room[0], room[1]],
                floor,
                boxes_at: at(env, "boxes"),
                room_at: at(env, "room"),
            });
        }
        if let (Some(policy), "image") = (&recipe.policy, env.str("observation")) {
            if policy.variant() == Some("hf") {
                out.push(CheckError::ImageNeedsTransformer {
                    observation: at(env, "observation"),
                    policy: policy.head,
                });
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
                    out.push(CheckError::SignalNotProvided {
                        env: kind.to_string(),
                        signal: name,
                        span: *span,
                        head: env.head,
                        provided: ProvidedSignals { won, score, ret },
                    });
                }
            }
            CheckedReward::Judge { span, .. } if kind != "sotopia" => {
                out.push(CheckError::JudgeOnEnv {
                    env: kind.to_string(),
                    span: *span,
                    head: env.head,
                });
            }
            CheckedReward::Judge { .. } => {}
        }
    }
    if !step_rewards {
        if let Some(span) = recipe.advantage_info.reads_env_reward.first() {
            out.push(CheckError::NoStepRewards {
                env: kind.to_string(),
                span: *span,
                head: env.head,
            });
        }
    }
}

fn transformer(policy: &CheckedBlock, out: &mut Vec<CheckError>) {
    if policy.variant() != Some("transformer") {
        return;
    }
    let (width, heads) = (policy.int("width"), policy.int("heads"));
    let rope = policy.str("positions") == "rope";
    if width % heads != 0 || (rope && (width / heads) % 2 != 0) {
        out.push(CheckError::HeadsDivideWidth {
            heads,
            width,
            heads_at: at(policy, "heads"),
            width_at: at(policy, "width"),
        });
    }
    let sampling = policy.block("sampling");
    let (max_new, context) = (sampling.int("max_new_tokens"), policy.int("context"));
    if max_new >= context {
        out.push(CheckError::ContextTooShort {
            max_new_tokens: max_new,
            context,
            tokens_at: at(sampling, "max_new_tokens"),
            context_at: at(policy, "context"),
        });
    }
}

/// `sampling.actions = admissible` needs an environment that lists its answers.
fn admissible_actions(recipe: &CheckedRecipe, out: &mut Vec<CheckError>) {
    let (Some(env), Some(policy)) = (&recipe.env, &recipe.policy) else {
        return;
    };
    let sampling = policy.block("sampling");
    if sampling.str("actions") != "admissible" {
        return;
    }
    if crate::env::lists_answers(&super::lower::env(env)) {
        return;
    }
    // An environment with a choice of prompt lists its answers under the compact one.
    let has_prompt = env.schema.key("prompt").is_some();
    out.push(CheckError::NoListedAnswers {
        env: env.variant().unwrap_or("").to_string(),
        actions: at(sampling, "actions"),
        prompt: has_prompt.then(|| at(env, "prompt")),
        head: env.head,
    });
}

fn prime(recipe: &CheckedRecipe, out: &mut Vec<CheckError>) {
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
            out.push(CheckError::PrimeNeedsBinary {
                span: reward.span(),
                head,
            });
        }
    }
    for (key, wanted) in [("loss", "cross_entropy"), ("reference", "frozen")] {
        let value = recipe.prm.str(key);
        if value != wanted {
            out.push(CheckError::PrimeConflict {
                key,
                wanted,
                value: value.to_string(),
                at: at(&recipe.prm, key),
                head,
            });
        }
    }
}

fn warnings(recipe: &CheckedRecipe, is_user: &dyn Fn(Span) -> bool, out: &mut Vec<CheckError>) {
    let user = |span: Option<Span>| span.filter(|s| is_user(*s));
    // A written PRM block that nothing reads.
    if let Some(head) = user(recipe.prm.head) {
        if !recipe.needs_prm() {
            out.push(CheckError::UnusedPrm { head });
        }
    }
    // An advantage expression that the algorithm replaces.
    if let (Some((_, expr)), Some(algorithm @ ("prime" | "ppo_gae"))) =
        (&recipe.advantage, recipe.algorithm.variant())
    {
        if let Some(span) = user(Some(expr.span)) {
            out.push(CheckError::AdvantageIgnored {
                span,
                algorithm,
                head: recipe.algorithm.head,
            });
        }
    }
    let mut no_effect =
        |block: &CheckedBlock, key: &'static str, why: &'static str, cause: Option<Span>| {
            if let Some(span) = user(block.span(key)) {
                out.push(CheckError::NoEffect {
                    span,
                    key,
                    why,
                    cause,
                });
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
}
