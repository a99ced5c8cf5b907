//! Lowering: a checked recipe to the typed [`ExecGraph`]. Every default is already filled in
//! by the checker, and every spec declares its keys (see [`crate::graph`]), so each checked
//! block becomes JSON keyed by spec field and deserialises into its spec; lowering itself only
//! chooses the algorithm's advantage and lays out the iteration's nodes.

use super::checked::{CheckedBlock, CheckedRecipe, CheckedReward, FieldValue};
use super::schema::{KeySchema, JUDGE_ENDPOINT_OPTIONS};
use crate::graph::*;
use indexmap::IndexMap;
use serde::de::DeserializeOwned;
use serde_json::{json, Map};

/// Lowers a complete recipe (env, policy, reward and, under PPO, an advantage present).
/// Returns `None` when one of them is missing, which the checker has already reported.
pub fn lower(recipe: &CheckedRecipe, name: &str) -> Option<ExecGraph> {
    let env_block = recipe.env.as_ref()?;
    let policy_block = recipe.policy.as_ref()?;
    let algorithm = algorithm(&recipe.algorithm);
    let advantage = match algorithm {
        AlgorithmSpec::Ppo { .. } => recipe.advantage.as_ref()?.0.clone(),
        AlgorithmSpec::Prime { .. } => AdvExpr::Prime,
        AlgorithmSpec::PpoGae { .. } => AdvExpr::Gae,
    };
    let prm = recipe.needs_prm().then(|| spec(&recipe.prm));
    let ppo = matches!(algorithm, AlgorithmSpec::Ppo { .. });
    let reads_env_reward = !recipe.advantage_info.reads_env_reward.is_empty() && ppo;
    let gae = algorithm.critic().is_some();
    let nodes = nodes(prm.is_some(), gae, reads_env_reward);
    Some(ExecGraph {
        recipe: name.to_string(),
        env: env(env_block),
        policy: spec(policy_block),
        reward: reward(recipe.reward.as_ref()?),
        prm,
        advantage,
        algorithm,
        train: spec(&recipe.train),
        eval: spec(&recipe.eval),
        output: spec(&recipe.output),
        nodes,
    })
}

/// The nodes of one iteration, in execution order, with ids `n{index}_{op}`.
pub fn nodes(with_prm: bool, gae: bool, reads_env_reward: bool) -> IndexMap<String, Node> {
    let mut ops: Vec<(Op, Vec<Op>)> = vec![
        (Op::Rollout, vec![]),
        (Op::OutcomeReward, vec![Op::Rollout]),
    ];
    if with_prm {
        ops.push((Op::PrmScore, vec![Op::Rollout]));
        ops.push((Op::PrmUpdate, vec![Op::Rollout, Op::OutcomeReward]));
    }
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
        .map(|(i, (op, _))| (*op, format!("n{i}_{}", op.name())))
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

/// A checked value as JSON.
fn value_json(value: &FieldValue) -> serde_json::Value {
    match value {
        FieldValue::Value(value) => value.to_json(),
        FieldValue::Block(block) => serde_json::Value::Object(block_json(block)),
    }
}

/// The fields of `keys` that the block sets, keyed by spec field.
fn fields_json(block: &CheckedBlock, keys: &[KeySchema]) -> Map<String, serde_json::Value> {
    keys.iter()
        .filter_map(|k| {
            Some((
                k.field.to_string(),
                value_json(&block.fields.get(k.key)?.value),
            ))
        })
        .collect()
}

/// A whole block as JSON, tagged with its variant as `kind` when it has one.
fn block_json(block: &CheckedBlock) -> Map<String, serde_json::Value> {
    let mut object = Map::new();
    for group in block.schema.groups {
        object.extend(fields_json(block, group));
    }
    if let Some(variant) = block.variant() {
        object.insert("kind".into(), json!(variant));
    }
    object
}

/// Deserialises JSON built from a checked block: the schema is the spec's, so failure is a bug.
fn from_json<T: DeserializeOwned>(object: Map<String, serde_json::Value>) -> T {
    serde_json::from_value(serde_json::Value::Object(object))
        .expect("a checked block deserialises into the spec that declares its keys")
}

/// The spec of a checked block (a tagged enum when the block has variants).
fn spec<T: DeserializeOwned>(block: &CheckedBlock) -> T {
    from_json(block_json(block))
}

/// The spec of a checked `env` block.
pub(super) fn env(block: &CheckedBlock) -> EnvSpec {
    spec(block)
}

fn reward(reward: &CheckedReward) -> RewardSpec {
    match reward {
        CheckedReward::Verifier { signal, .. } => RewardSpec::Verifier { signal: *signal },
        CheckedReward::Judge { block, .. } => {
            // The judge writes its endpoint's keys flat, `endpoint` for the URL.
            let mut object = fields_json(block, JudgeSpec::KEYS);
            let backend = match object.remove("backend") {
                Some(url) => {
                    let mut endpoint = fields_json(block, JUDGE_ENDPOINT_OPTIONS);
                    endpoint.insert("url".into(), url);
                    endpoint.insert("kind".into(), json!("endpoint"));
                    serde_json::Value::Object(endpoint)
                }
                None => json!({ "kind": "embedded" }),
            };
            object.insert("backend".into(), backend);
            RewardSpec::Judge(from_json(object))
        }
    }
}

/// The algorithm's spec: its variant reads the key groups it has (`critic` or `prime` besides
/// `ppo`) and ignores the others.
fn algorithm(block: &CheckedBlock) -> AlgorithmSpec {
    let group = |keys| serde_json::Value::Object(fields_json(block, keys));
    let mut object = Map::new();
    object.insert("kind".into(), json!(block.variant()));
    object.insert("ppo".into(), group(PpoSpec::KEYS));
    object.insert("critic".into(), group(CriticSpec::KEYS));
    object.insert("prime".into(), group(PrimeSpec::KEYS));
    from_json(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_layout_follows_the_algorithm() {
        let ids = |n: &IndexMap<String, Node>| n.keys().cloned().collect::<Vec<_>>();
        let oprl = nodes(true, false, false);
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
        let rloo = nodes(false, false, false);
        assert_eq!(
            ids(&rloo),
            [
                "n0_rollout",
                "n1_outcome_reward",
                "n2_advantage",
                "n3_policy_update"
            ]
        );
        let gae = nodes(false, true, false);
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
