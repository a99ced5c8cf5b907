//! The advantage node: hands the batch (outcomes, implicit and environment step rewards, anchor
//! keys, per-token PRM rewards, critic values) to [`crate::algo::evaluate_advantage`] with the
//! graph's expression, and reads back one advantage per action token.

use super::batch::TokenValues;
use super::trainer::{Trainer, Work};
use super::RuntimeError;
use crate::algo::advantage::TermLevel;
use crate::algo::{
    evaluate_advantage, AdvantageInputs, AdvantageParams, StepInput, TrajectoryInput,
};

/// What the advantage node leaves for the updates and the metrics.
pub struct AdvantageResult {
    pub advantages: TokenValues,
    /// PPO+GAE critic targets.
    pub returns: Option<TokenValues>,
    /// Std of the episode-level term (`A_E`).
    pub episode_std: Option<f64>,
    /// Std of the step- or token-level term (`A_S`).
    pub step_std: Option<f64>,
}

fn to_f64(v: Vec<Vec<Vec<f32>>>) -> TokenValues {
    v.into_iter()
        .map(|t| {
            t.into_iter()
                .map(|s| s.into_iter().map(f64::from).collect())
                .collect()
        })
        .collect()
}

/// Runs the graph's advantage expression over this iteration's batch.
pub fn compute(trainer: &Trainer, w: &Work) -> Result<AdvantageResult, RuntimeError> {
    let token_rewards = trainer.token_rewards_for_advantage(w);
    let inputs = AdvantageInputs {
        trajectories: w
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
                        let prm_tokens: Vec<f32> = token_rewards
                            .as_ref()
                            .map(|r| r[t][s].iter().map(|&x| x as f32).collect())
                            .unwrap_or_default();
                        StepInput {
                            tokens: step.action.len(),
                            prm_reward: prm_tokens.iter().map(|&x| x as f64).sum::<f64>() as f32,
                            env_reward: step.env_reward as f32,
                            anchor: step.state_key.clone(),
                            prm_token_rewards: prm_tokens,
                            values: w
                                .values
                                .as_ref()
                                .map(|v| v[t][s].iter().map(|&x| x as f32).collect())
                                .unwrap_or_default(),
                        }
                    })
                    .collect(),
            })
            .collect(),
    };
    let params = AdvantageParams::from_spec(&trainer.graph.algorithm);
    let out = evaluate_advantage(&trainer.graph.advantage, &inputs, &params)?;
    let episode_std = out.std_of(TermLevel::Episode).map(f64::from);
    let step_std = out
        .std_of(TermLevel::Step)
        .or_else(|| out.std_of(TermLevel::Token))
        .map(f64::from);
    Ok(AdvantageResult {
        advantages: to_f64(out.advantages),
        returns: out.returns.map(to_f64),
        episode_std,
        step_std,
    })
}
