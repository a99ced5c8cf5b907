//! What a run logs: the per-iteration metrics METHOD.md asks for (one JSON object per line of
//! `metrics.jsonl`), the held-out results of an evaluation, and the small statistics they are
//! computed with.

use serde::{Deserialize, Serialize};

/// Held-out results of one policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalResult {
    /// Training iterations completed by the evaluated policy.
    pub iteration: usize,
    pub tasks: usize,
    pub success_rate: f64,
    /// Mean of the environment's own score.
    pub mean_score: f64,
    pub mean_turns: f64,
    pub invalid_rate: f64,
    pub seconds: f64,
    /// Judged recipes (SOTOPIA): the mean goal and overall scores of the policy's side;
    /// `success_rate` and `mean_score` are then the judge's success and outcome score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overall: Option<f64>,
}

/// Everything logged for one iteration. Fields a recipe's graph does not run stay `None`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IterationMetrics {
    pub iteration: usize,
    /// Fraction of this iteration's training trajectories that succeeded.
    pub success_rate: f64,
    pub mean_outcome: f64,
    /// Judged rewards (SOTOPIA): mean goal score (0..10) of the policy's side.
    pub judge_goal: Option<f64>,
    /// Judged rewards: mean overall score (per episode, the mean of the seven dimensions).
    pub judge_overall: Option<f64>,
    pub prm_loss: Option<f64>,
    /// Fraction of (success, failure) pairs the pre-update PRM ranks correctly.
    pub prm_pair_accuracy: Option<f64>,
    pub prm_pairs: Option<usize>,
    /// Whether the PRM took an optimiser step (no pairs: skipped).
    pub prm_updated: Option<bool>,
    pub adv_episode_std: Option<f64>,
    pub adv_step_std: Option<f64>,
    pub policy_loss: f64,
    pub clip_fraction: f64,
    pub entropy: f64,
    pub approx_kl: f64,
    pub grad_norm: f64,
    pub value_loss: Option<f64>,
    pub mean_turns: f64,
    pub invalid_rate: f64,
    pub tokens_per_s: f64,
    pub env_steps_per_s: f64,
    pub env_retries: usize,
    pub time_rollout: f64,
    pub time_reward: f64,
    pub time_prm: f64,
    pub time_advantage: f64,
    pub time_update: f64,
    pub time_total: f64,
    /// Held-out success rate, on iterations that evaluated.
    pub eval_success: Option<f64>,
    pub eval_score: Option<f64>,
    /// Held-out mean judged goal and overall scores, on iterations that evaluated.
    pub eval_goal: Option<f64>,
    pub eval_overall: Option<f64>,
}

impl IterationMetrics {
    /// The metrics without wall-clock quantities: what must match exactly between a resumed run
    /// and an uninterrupted one.
    pub fn without_timings(&self) -> IterationMetrics {
        IterationMetrics {
            tokens_per_s: 0.0,
            env_steps_per_s: 0.0,
            time_rollout: 0.0,
            time_reward: 0.0,
            time_prm: 0.0,
            time_advantage: 0.0,
            time_update: 0.0,
            time_total: 0.0,
            ..self.clone()
        }
    }
}

/// Mean of `xs` (0 for none): the advantage maths' own, re-exported for the metric readers.
pub use crate::algo::stats::mean;

/// Population standard deviation of `xs` (0 for fewer than two values).
pub fn std(xs: &[f64]) -> f64 {
    if xs.len() < 2 {
        return 0.0;
    }
    let m = mean(xs);
    (xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / xs.len() as f64).sqrt()
}

/// `n / seconds`, 0 when no time passed.
pub fn rate(n: usize, seconds: f64) -> f64 {
    if seconds > 0.0 {
        n as f64 / seconds
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_population_std() {
        assert_eq!(mean(&[]), 0.0);
        assert_eq!(mean(&[1.0, 2.0, 6.0]), 3.0);
        // deviations -2, -1, 3: squares 4 + 1 + 9 = 14, / 3
        assert!((std(&[1.0, 2.0, 6.0]) - (14.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(std(&[5.0]), 0.0);
    }

    #[test]
    fn metrics_round_trip_through_json() {
        let m = IterationMetrics {
            iteration: 3,
            success_rate: 0.25,
            prm_pairs: Some(4),
            time_total: 1.5,
            ..Default::default()
        };
        let line = serde_json::to_string(&m).unwrap();
        let back: IterationMetrics = serde_json::from_str(&line).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.without_timings().time_total, 0.0);
    }
}
