//! What one iteration's rollout produced: trajectories of recorded steps, grouped by task, with
//! the per-step and per-token quantities the later nodes attach to them.

use std::sync::Arc;

use crate::env::{EpisodeOutcome, RgbImage, Task};
use crate::model::ChoiceSet;

/// One turn of one episode.
#[derive(Debug, Clone)]
pub struct Step {
    /// Prompt tokens the action was sampled from (already left-truncated to fit the context).
    pub prompt: Vec<u32>,
    /// The sampled action tokens.
    pub action: Vec<u32>,
    /// The action as decoded text (what the environment received).
    pub text: String,
    /// `log pi_old` of every action token (the sampling policy, temperature 1).
    pub token_logp_old: Vec<f32>,
    /// Environment step reward (invalid-action penalty included).
    pub env_reward: f64,
    /// Whether the action parsed into an admissible move.
    pub valid: bool,
    /// Key of the state the action was taken in (GiGPO anchor).
    pub state_key: String,
    /// The observation the action was taken on (for transcripts).
    pub observation: String,
    /// The frame the action was taken on, once per step (the prompt holds one placeholder
    /// token per patch of it), when the policy reads images.
    pub image: Option<Arc<RgbImage>>,
    /// The prompt of the same state with the text rendering in place of the frame (what a
    /// text-reading PRM scores), when the policy reads images.
    pub text_prompt: Option<Vec<u32>>,
    /// The answers the action was restricted to (`sampling.actions = admissible`), which every
    /// model that scores the step applies again.
    pub choices: Option<Arc<ChoiceSet>>,
}

impl Step {
    /// `log pi_old(a_t | s_t)`: the sum over the action's tokens.
    pub fn logp_old(&self) -> f64 {
        self.token_logp_old.iter().map(|&x| x as f64).sum()
    }
}

/// One episode.
#[derive(Debug, Clone)]
pub struct Trajectory {
    /// Index of the task group (0..tasks).
    pub group: usize,
    pub task: Task,
    pub steps: Vec<Step>,
    /// How the environment judged the episode.
    pub outcome: EpisodeOutcome,
    /// The last observation (after the final action).
    pub final_observation: String,
    /// The `info` of the episode's last step (a SOTOPIA episode's transcript, for the judge);
    /// `null` when no step was taken.
    pub final_info: serde_json::Value,
    /// The last frame, when the policy reads images.
    pub final_image: Option<Arc<RgbImage>>,
    /// `r_o(tau)`, filled by the outcome-reward node.
    pub reward: f64,
    /// `success(tau)`, filled by the outcome-reward node.
    pub success: bool,
}

/// Indices of the trajectories of each task group, in group order.
pub fn groups(trajs: &[Trajectory]) -> Vec<Vec<usize>> {
    let n_groups = trajs.iter().map(|t| t.group + 1).max().unwrap_or(0);
    let mut out = vec![Vec::new(); n_groups];
    for (i, t) in trajs.iter().enumerate() {
        out[t.group].push(i);
    }
    out
}

/// A value for every action token of every step of every trajectory: `[traj][step][token]`.
pub type TokenValues = Vec<Vec<Vec<f64>>>;
/// A value for every step of every trajectory: `[traj][step]`.
pub type StepValues = Vec<Vec<f64>>;

/// A zero-filled [`TokenValues`] shaped like the batch.
pub fn token_zeros(trajs: &[Trajectory]) -> TokenValues {
    trajs
        .iter()
        .map(|t| t.steps.iter().map(|s| vec![0.0; s.action.len()]).collect())
        .collect()
}

/// Broadcasts one value per step to every token of the step's action.
pub fn steps_to_tokens(trajs: &[Trajectory], per_step: &StepValues) -> TokenValues {
    trajs
        .iter()
        .zip(per_step)
        .map(|(t, vs)| {
            t.steps
                .iter()
                .zip(vs)
                .map(|(s, &v)| vec![v; s.action.len()])
                .collect()
        })
        .collect()
}

/// Every value of a [`TokenValues`] in batch order (trajectory, step, token).
pub fn flatten_tokens(values: &TokenValues) -> Vec<f64> {
    values.iter().flatten().flatten().copied().collect()
}
