//! OPRL's step level (METHOD.md step 5): implicit step rewards
//! `r_phi = beta * (logp_prm - logp_old)`, the optional `maxabs` pre-scaling, pooled
//! normalisation over all steps (or all action tokens) of a task group, merged step rewards, and
//! discounted return-to-go within a trajectory.

use super::stats::{normalise_by_group, Singleton};
use super::{check_len, AlgoError};
use crate::graph::Norm;
use std::hash::Hash;

/// One action's implicit reward: `beta * (logp_prm - logp_old)`, where each log-prob is the sum
/// over the action's tokens.
pub fn implicit_step_reward(logp_prm: f32, logp_old: f32, beta: f32) -> f32 {
    (beta as f64 * (logp_prm as f64 - logp_old as f64)) as f32
}

/// [`implicit_step_reward`] for many actions (or, per token, for the token-level ablation).
pub fn implicit_step_rewards(
    logp_prm: &[f32],
    logp_old: &[f32],
    beta: f32,
) -> Result<Vec<f32>, AlgoError> {
    check_len("logp_old", logp_old.len(), logp_prm.len())?;
    Ok(logp_prm
        .iter()
        .zip(logp_old)
        .map(|(&p, &o)| implicit_step_reward(p, o, beta))
        .collect())
}

/// The released code's pre-scaling: every value divided by the batch's max `|value|`. A batch
/// of zeros (iteration 1, when the PRM equals the old policy) stays zero.
pub fn maxabs_scale(values: &[f64]) -> Vec<f64> {
    let max = values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if max > 0.0 {
        values.iter().map(|v| v / max).collect()
    } else {
        values.to_vec()
    }
}

/// Pooled normalisation: every entry (a step, or an action token) is normalised against all
/// entries of its task group, ignoring which trajectory it belongs to:
/// `zscore` `(x - mean) / (std + eps)` (unbiased std), `rloo` `x` minus the mean of the other
/// entries, `mean` `x - mean`, `none` `x`. `mean_whiten` centres here; its batch whitening is
/// the caller's job. A pool of one entry passes through as veRL's outcome estimators do.
pub fn pooled_normalise<G: Hash + Eq>(
    values: &[f64],
    groups: &[G],
    norm: Norm,
    eps: f64,
) -> Result<Vec<f64>, AlgoError> {
    normalise_by_group(values, groups, norm, eps, Singleton::PassThrough)
}

/// Merged-rewards ablation: `m_t = r_o(tau) + alpha * r_phi(a_t)` for each step, given the
/// outcome of each step's trajectory; the result is then normalised with one pooled RLOO.
pub fn merged_step_rewards(
    step_outcomes: &[f32],
    step_prm: &[f32],
    alpha: f32,
) -> Result<Vec<f32>, AlgoError> {
    check_len("step PRM rewards", step_prm.len(), step_outcomes.len())?;
    Ok(step_outcomes
        .iter()
        .zip(step_prm)
        .map(|(&o, &p)| (o as f64 + alpha as f64 * p as f64) as f32)
        .collect())
}

/// Return-to-go within one trajectory: `R_t = r_t + gamma * R_{t+1}`, accumulated in f64.
pub fn discounted_returns(rewards: &[f64], gamma: f64) -> Vec<f64> {
    let mut out = vec![0.0; rewards.len()];
    let mut running = 0.0f64;
    for t in (0..rewards.len()).rev() {
        running = rewards[t] + gamma * running;
        out[t] = running;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implicit_rewards_by_hand() {
        assert!((implicit_step_reward(-3.0, -5.0, 0.05) - 0.1).abs() < 1e-7);
        let r = implicit_step_rewards(&[-1.0, -2.0], &[-1.0, -1.0], 0.5).unwrap();
        assert_eq!(r, vec![0.0, -0.5]);
        assert!(implicit_step_rewards(&[-1.0], &[], 0.5).is_err());
    }

    #[test]
    fn maxabs_by_hand_and_zero_batch() {
        assert_eq!(maxabs_scale(&[0.5, -2.0, 1.0]), vec![0.25, -1.0, 0.5]);
        assert_eq!(maxabs_scale(&[0.0, 0.0]), vec![0.0, 0.0]);
    }

    #[test]
    fn pooled_zscore_ignores_trajectories() {
        // group 0 pools steps of two trajectories: 1, 2 | 3 ; group 1: 10, 10 (std 0 -> 0)
        let v = [1.0, 2.0, 3.0, 10.0, 10.0];
        let g = [0, 0, 0, 1, 1];
        let z = pooled_normalise(&v, &g, Norm::Zscore, 1e-6).unwrap();
        let sd = 1.0 + 1e-6; // unbiased std of 1, 2, 3 is 1
        assert!((z[0] + 1.0 / sd).abs() < 1e-12 && z[1].abs() < 1e-12);
        assert!((z[2] - 1.0 / sd).abs() < 1e-12);
        assert_eq!(&z[3..], &[0.0, 0.0]);
        let r = pooled_normalise(&v, &g, Norm::Rloo, 1e-6).unwrap();
        // 1 - mean(2, 3) = -1.5
        assert!((r[0] + 1.5).abs() < 1e-12);
    }

    #[test]
    fn merged_rewards_by_hand() {
        let m = merged_step_rewards(&[1.0, 1.0, 0.0], &[0.5, -0.5, 0.25], 2.0).unwrap();
        assert_eq!(m, vec![2.0, 0.0, 0.5]);
    }

    #[test]
    fn discounted_by_hand() {
        let r = discounted_returns(&[-0.1, -0.1, 1.0], 0.5);
        // R2 = 1, R1 = -0.1 + 0.5 = 0.4, R0 = -0.1 + 0.2 = 0.1
        assert!((r[2] - 1.0).abs() < 1e-12 && (r[1] - 0.4).abs() < 1e-12);
        assert!((r[0] - 0.1).abs() < 1e-12);
    }
}
