//! Lowering: a checked recipe to the typed [`ExecGraph`]. Every default is already filled in
//! by the checker, so lowering only converts names to enums and lays out the iteration's nodes.

use super::check::{CheckedBlock, CheckedRecipe, CheckedReward};
use crate::graph::*;
use indexmap::IndexMap;

/// Lowers a complete recipe (env, policy, reward and, under PPO, an advantage present).
/// Returns `None` when one of them is missing, which the checker has already reported.
pub fn lower(recipe: &CheckedRecipe, name: &str) -> Option<ExecGraph> {
    let env_block = recipe.env.as_ref()?;
    let policy_block = recipe.policy.as_ref()?;
    let algorithm = algorithm(&recipe.algorithm);
    let advantage = match algorithm.kind {
        AlgorithmKind::Ppo => recipe.advantage.as_ref()?.0.clone(),
        AlgorithmKind::Prime => AdvExpr::Prime,
        AlgorithmKind::PpoGae => AdvExpr::Gae,
    };
    let prm = recipe.needs_prm().then(|| prm(&recipe.prm));
    let reads_env_reward =
        !recipe.advantage_info.reads_env_reward.is_empty() && algorithm.kind == AlgorithmKind::Ppo;
    let nodes = nodes(prm.is_some(), algorithm.kind, reads_env_reward);
    Some(ExecGraph {
        recipe: name.to_string(),
        env: env(env_block),
        policy: policy(policy_block),
        reward: reward(recipe.reward.as_ref()?),
        prm,
        advantage,
        algorithm,
        train: train(&recipe.train),
        eval: EvalSpec {
            every: recipe.eval.usize("every"),
            tasks: recipe.eval.usize("tasks"),
            temperature: recipe.eval.float("temperature"),
        },
        output: OutputSpec {
            dir: recipe.output.str("dir").to_string(),
            checkpoint_every: recipe.output.usize("checkpoint_every"),
            transcripts: recipe.output.usize("transcripts"),
        },
        nodes,
    })
}

/// The nodes of one iteration, in execution order, with ids `n{index}_{op}`.
pub fn nodes(
    with_prm: bool,
    kind: AlgorithmKind,
    reads_env_reward: bool,
) -> IndexMap<String, Node> {
    let mut ops: Vec<(Op, Vec<Op>)> = vec![
        (Op::Rollout, vec![]),
        (Op::OutcomeReward, vec![Op::Rollout]),
    ];
    if with_prm {
        ops.push((Op::PrmScore, vec![Op::Rollout]));
        ops.push((Op::PrmUpdate, vec![Op::Rollout, Op::OutcomeReward]));
    }
    let gae = kind == AlgorithmKind::PpoGae;
    if gae {
        ops.push((Op::ValueEstimate, vec![Op::Rollout]));
    }
    let mut advantage_inputs = vec![Op::OutcomeReward];
    if reads_env_reward || gae {
        advantage_inputs.insert(0, Op::Rollout);
    }
    if with_prm {
        advantage_inputs.push(Op::PrmScore);
    }
    if gae {
        advantage_inputs.push(Op::ValueEstimate);
    }
    ops.push((Op::Advantage, advantage_inputs));
    ops.push((Op::PolicyUpdate, vec![Op::Rollout, Op::Advantage]));
    if gae {
        ops.push((
            Op::CriticUpdate,
            vec![Op::Rollout, Op::ValueEstimate, Op::Advantage],
        ));
    }

    let ids: Vec<(Op, String)> = ops
        .iter()
        .enumerate()
        .map(|(i, (op, _))| (*op, format!("n{i}_{}", op_name(*op))))
        .collect();
    let id_of = |op: Op| {
        ids.iter()
            .find(|(o, _)| *o == op)
            .map(|(_, id)| id.clone())
            .expect("inputs precede their readers")
    };
    ops.into_iter()
        .zip(&ids)
        .map(|((op, inputs), (_, id))| {
            (
                id.clone(),
                Node {
                    op,
                    inputs: inputs.into_iter().map(id_of).collect(),
                },
            )
        })
        .collect()
}

/// `prm_score` for [`Op::PrmScore`]: the serde name.
pub fn op_name(op: Op) -> &'static str {
    match op {
        Op::Rollout => "rollout",
        Op::OutcomeReward => "outcome_reward",
        Op::PrmScore => "prm_score",
        Op::PrmUpdate => "prm_update",
        Op::ValueEstimate => "value_estimate",
        Op::Advantage => "advantage",
        Op::PolicyUpdate => "policy_update",
        Op::CriticUpdate => "critic_update",
    }
}

fn prompt(b: &CheckedBlock) -> PromptStyle {
    match b.str("prompt") {
        "compact" => PromptStyle::Compact,
        _ => PromptStyle::Verl,
    }
}

/// The spec of a checked `env` block.
pub(super) fn env(b: &CheckedBlock) -> EnvSpec {
    match b.variant() {
        Some("webshop") => EnvSpec::Webshop(WebshopSpec {
            products: b.opt_str("products").map(str::to_string),
            attributes: b.opt_str("attributes").map(str::to_string),
            catalogue_size: b.usize("catalogue_size"),
            max_turns: b.usize("max_turns"),
            history: b.usize("history"),
            prompt: prompt(b),
            test_goals: b.usize("test_goals"),
            outcome: match b.str("outcome") {
                "binary10" => WebshopOutcome::Binary10,
                _ => WebshopOutcome::Score,
            },
        }),
        Some("sotopia") => EnvSpec::Sotopia(SotopiaSpec {
            scenarios: b.opt_str("scenarios").map(str::to_string),
            hard_only: b.bool("hard_only"),
            partner: partner(b.block("partner")),
            side: match b.str("side") {
                "second" => SotopiaSide::Second,
                "both" => SotopiaSide::Both,
                _ => SotopiaSide::First,
            },
            max_turns: b.usize("max_turns"),
        }),
        Some("external") => EnvSpec::External(ExternalSpec {
            command: b.str("command").to_string(),
            timeout_s: b.float("timeout_s"),
            max_turns: b.usize("max_turns"),
            history: b.usize("history"),
        }),
        _ => {
            let room = b.int_list("room");
            EnvSpec::Sokoban(SokobanSpec {
                room: [room[0] as usize, room[1] as usize],
                boxes: b.usize("boxes"),
                max_turns: b.usize("max_turns"),
                search_depth: b.usize("search_depth"),
                observation: match b.str("observation") {
                    "image" => ObservationKind::Image,
                    _ => ObservationKind::Text,
                },
                prompt: prompt(b),
                history: b.usize("history"),
            })
        }
    }
}

fn partner(b: &CheckedBlock) -> PartnerSpec {
    match b.variant() {
        Some("model") => PartnerSpec::Model {
            path: b.str("path").to_string(),
        },
        Some("endpoint") => PartnerSpec::Endpoint(endpoint(b, b.str("url"))),
        _ => PartnerSpec::SelfPlay,
    }
}

fn endpoint(b: &CheckedBlock, url: &str) -> EndpointSpec {
    EndpointSpec {
        url: url.to_string(),
        model: b.opt_str("model").unwrap_or_default().to_string(),
        api_key_env: b.opt_str("api_key_env").map(str::to_string),
        temperature: b.float("temperature"),
        timeout_s: b.float("timeout_s"),
        retries: b.usize("retries"),
        concurrency: b.usize("concurrency"),
    }
}

fn sampling(b: &CheckedBlock) -> SamplingSpec {
    SamplingSpec {
        temperature: b.float("temperature"),
        top_p: b.float("top_p"),
        max_new_tokens: b.usize("max_new_tokens"),
        stop: b.str_list("stop").to_vec(),
        actions: match b.str("actions") {
            "admissible" => ActionSpace::Admissible,
            _ => ActionSpace::Free,
        },
    }
}

fn policy(b: &CheckedBlock) -> PolicySpec {
    match b.variant() {
        Some("hf") => PolicySpec::Hf(HfSpec {
            path: b.str("path").to_string(),
            sampling: sampling(b.block("sampling")),
        }),
        _ => PolicySpec::Transformer(TransformerSpec {
            layers: b.usize("layers"),
            width: b.usize("width"),
            heads: b.usize("heads"),
            mlp: b.usize("mlp"),
            context: b.usize("context"),
            positions: match b.str("positions") {
                "learned" => Positions::Learned,
                _ => Positions::Rope,
            },
            tie_embeddings: b.bool("tie_embeddings"),
            patch: b.usize("patch"),
            sampling: sampling(b.block("sampling")),
        }),
    }
}

fn reward(r: &CheckedReward) -> RewardSpec {
    match r {
        CheckedReward::Verifier { signal, .. } => RewardSpec::Verifier { signal: *signal },
        CheckedReward::Judge { block, .. } => RewardSpec::Judge(JudgeSpec {
            backend: match block.opt_str("endpoint") {
                Some(url) => JudgeBackend::Endpoint(endpoint(block, url)),
                None => JudgeBackend::Embedded,
            },
            rubric: Rubric::Sotopia,
            outcome: match block.str("outcome") {
                "overall" => JudgeOutcome::Overall,
                _ => JudgeOutcome::Goal,
            },
            threshold: block.float("threshold"),
        }),
    }
}

fn prm(b: &CheckedBlock) -> PrmSpec {
    PrmSpec {
        beta: b.float("beta"),
        score: match b.str("score") {
            "sum" => TrajScore::Sum,
            _ => TrajScore::Mean,
        },
        loss: match b.str("loss") {
            "cross_entropy" => PrmLoss::CrossEntropy,
            _ => PrmLoss::Dpo,
        },
        reference: match b.str("reference") {
            "frozen" => PrmReference::Frozen,
            _ => PrmReference::OldPolicy,
        },
        lr: b.float("lr"),
        grad_clip: b.float("grad_clip"),
        updates: b.usize("updates"),
        text_view: b.bool("text_view"),
    }
}

fn algorithm(b: &CheckedBlock) -> AlgorithmSpec {
    let kind = match b.variant() {
        Some("prime") => AlgorithmKind::Prime,
        Some("ppo_gae") => AlgorithmKind::PpoGae,
        _ => AlgorithmKind::Ppo,
    };
    let kl = match b.str("kl") {
        "k1" => Some(KlKind::K1),
        "abs" => Some(KlKind::Abs),
        "k2" => Some(KlKind::K2),
        "k3" => Some(KlKind::K3),
        _ => None,
    };
    let ppo = PpoSpec {
        lr: b.float("lr"),
        clip_low: b.float("clip"),
        clip_high: b.float("clip_high"),
        dual_clip: b.float("dual_clip"),
        entropy: b.float("entropy"),
        kl: kl.map(|kind| KlSpec {
            kind,
            coef: b.float("kl_coef"),
        }),
        epochs: b.usize("epochs"),
        minibatch: b.usize("minibatch"),
        grad_clip: b.float("grad_clip"),
        loss_agg: match b.str("loss_agg") {
            "seq_mean_token_mean" => LossAgg::SeqMeanTokenMean,
            "seq_mean_token_sum" => LossAgg::SeqMeanTokenSum,
            "seq_mean_token_sum_norm" => LossAgg::SeqMeanTokenSumNorm,
            _ => LossAgg::TokenMean,
        },
        weight_decay: b.float("weight_decay"),
    };
    AlgorithmSpec {
        kind,
        ppo,
        critic: (kind == AlgorithmKind::PpoGae).then(|| CriticSpec {
            lr: b.float("critic_lr"),
            value_clip: b.float("value_clip"),
            gamma: b.float("gamma"),
            lambda: b.float("lambda"),
        }),
        prime: (kind == AlgorithmKind::Prime).then(|| PrimeSpec {
            process_coef: b.float("process_coef"),
            outcome_coef: b.float("outcome_coef"),
        }),
    }
}

fn train(b: &CheckedBlock) -> TrainSpec {
    TrainSpec {
        iterations: b.usize("iterations"),
        tasks: b.usize("tasks"),
        group: b.usize("group"),
        seed: b.int("seed").max(0) as u64,
        device: match b.str("device") {
            "cuda" => Device::Cuda,
            _ => Device::Cpu,
        },
        threads: b.usize("threads"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_layout_follows_the_algorithm() {
        let ids = |n: &IndexMap<String, Node>| n.keys().cloned().collect::<Vec<_>>();
        let oprl = nodes(true, AlgorithmKind::Ppo, false);
        assert_eq!(
            ids(&oprl),
            [
                "n0_rollout",
                "n1_outcome_reward",
                "n2_prm_score",
                "n3_prm_update",
                "n4_advantage",
                "n5_policy_update"
            ]
        );
        assert_eq!(
            oprl["n4_advantage"].inputs,
            ["n1_outcome_reward", "n2_prm_score"]
        );
        let rloo = nodes(false, AlgorithmKind::Ppo, false);
        assert_eq!(
            ids(&rloo),
            [
                "n0_rollout",
                "n1_outcome_reward",
                "n2_advantage",
                "n3_policy_update"
            ]
        );
        let gae = nodes(false, AlgorithmKind::PpoGae, false);
        assert!(gae.contains_key("n2_value_estimate") && gae.contains_key("n5_critic_update"));
        assert_eq!(
            gae["n3_advantage"].inputs,
            ["n0_rollout", "n1_outcome_reward", "n2_value_estimate"]
        );
        // Every input names an earlier node.
        for graph in [oprl, rloo, gae] {
            for (i, (_, node)) in graph.iter().enumerate() {
                for input in &node.inputs {
                    assert!(graph.get_index_of(input).unwrap() < i);
                }
            }
        }
    }
}
