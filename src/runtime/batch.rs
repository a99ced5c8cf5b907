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
    /// The sampler's log-prob of every action token (temperature 1); the trainer's `log pi_old`
    /// is a batched re-scoring of the same tokens.
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

/// Share of the steps of `trajs` whose action was invalid (0 when no step was taken), as both
/// training metrics and evaluation report it.
pub fn invalid_rate(trajs: &[Trajectory]) -> f64 {
    let steps: usize = trajs.iter().map(|t| t.steps.len()).sum();
    let invalid = trajs
        .iter()
        .flat_map(|t| &t.steps)
        .filter(|s| !s.valid)
        .count();
    if steps > 0 {
        invalid as f64 / steps as f64
    } else {
        0.0
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
