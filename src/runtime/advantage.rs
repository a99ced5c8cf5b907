//! The advantage stage: hands the batch (outcomes, implicit and environment step rewards, anchor
//! keys, per-token PRM rewards, critic values) to [`crate::algo::evaluate_advantage`] with the
//! graph's expression, and reads back one advantage per action token.

use super::batch::Trajectory;
use super::tokens::{TokenLayout, TokenValues};
use super::RuntimeError;
use crate::algo::advantage::TermLevel;
use crate::algo::{
    evaluate_advantage, AdvantageInputs, AdvantageParams, StepInput, TrajectoryInput,
};
use crate::graph::AdvExpr;

/// What the advantage stage leaves for the updates and the metrics.
pub struct Advantages {
    pub advantages: TokenValues<f32>,
    /// PPO+GAE critic targets.
    pub returns: Option<TokenValues<f32>>,
    /// Std of the episode-level term (`A_E`).
    pub episode_std: Option<f64>,
    /// Std of the step- or token-level term (`A_S`).
    pub step_std: Option<f64>,
}

/// What the advantage stage reads from the earlier ones.
pub struct AdvantageSources<'a> {
    /// The trajectories with their outcomes.
    pub trajs: &'a [Trajectory],
    pub layout: &'a TokenLayout,
    /// The PRM's per-token process rewards, when the graph has a PRM.
    pub process_rewards: Option<&'a TokenValues<f64>>,
    /// The critic's per-token values (PPO+GAE).
    pub values: Option<&'a TokenValues<f32>>,
}

/// Runs the advantage expression `expr` over this iteration's batch.
pub fn compute(
    expr: &AdvExpr,
    params: &AdvantageParams,
    sources: &AdvantageSources,
) -> Result<Advantages, RuntimeError> {
    let inputs = AdvantageInputs {
        trajectories: sources
            .trajs
            .iter()
            .enumerate()
            .map(|(t, traj)| TrajectoryInput {
                group: traj.group,
                outcome: traj.reward as f32,
                success: traj.success,
                steps: traj
                    .steps
                    .iter()
                    .enumerate()
                    .map(|(s, step)| {
                        let prm_tokens: Vec<f32> = sources
                            .process_rewards
                            .map(|r| r.step(t, s).iter().map(|&x| x as f32).collect())
                            .unwrap_or_default();
                        StepInput {
                            tokens: step.action.len(),
                            prm_reward: prm_tokens.iter().map(|&x| x as f64).sum::<f64>() as f32,
                            env_reward: step.env_reward as f32,
                            anchor: step.state_key.clone(),
                            prm_token_rewards: prm_tokens,
                            values: sources
                                .values
                                .map(|v| v.step(t, s).to_vec())
                                .unwrap_or_default(),
                        }
                    })
                    .collect(),
            })
            .collect(),
    };
    let out = evaluate_advantage(expr, &inputs, params)?;
    let episode_std = out.std_of(TermLevel::Episode).map(f64::from);
    let step_std = out
        .std_of(TermLevel::Step)
        .or_else(|| out.std_of(TermLevel::Token))
        .map(f64::from);
    let flat = |nested: Vec<Vec<Vec<f32>>>| {
        TokenValues::new(
            sources.layout.clone(),
            nested.into_iter().flatten().flatten().collect(),
        )
        .ok_or_else(|| RuntimeError::Config("the advantages do not match the batch".into()))
    };
    Ok(Advantages {
        advantages: flat(out.advantages)?,
        returns: out.returns.map(flat).transpose()?,
        episode_std,
        step_std,
    })
}
