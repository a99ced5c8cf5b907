//! The judged outcome reward (`reward outcome = judge {...}`): rebuilds each SOTOPIA episode
//! from its trajectory's last step `info`, has the recipe's judge (the embedded rubric judge or
//! an LLM endpoint) score the batch, and sets each trajectory's reward (the goal or overall
//! score) and success (`score > threshold`), keeping the batch's mean goal and overall scores
//! for the metrics. Training and evaluation share it.

use super::batch::Trajectory;
use super::metrics::mean;
use super::RuntimeError;
use crate::graph::{EnvSpec, ExecGraph, RewardSpec};
use crate::reward::judge::{episode_from_info, OutcomeJudge};

/// The batch's mean judged scores of the policy's side.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JudgedMeans {
    /// Mean goal score (0..10).
    pub goal: f64,
    /// Mean overall score: per episode the mean of the seven dimensions.
    pub overall: f64,
}

/// The graph's judge, when its outcome reward is judged (`None` for a verifier).
pub fn outcome_judge(graph: &ExecGraph) -> Result<Option<OutcomeJudge>, RuntimeError> {
    let RewardSpec::Judge(spec) = &graph.reward else {
        return Ok(None);
    };
    match &graph.env {
        EnvSpec::Sotopia(env) => Ok(Some(OutcomeJudge::new(spec, env)?)),
        _ => Err(RuntimeError::Config(
            "a judged outcome reward scores SOTOPIA conversations; use `env sotopia` or a verifier"
                .into(),
        )),
    }
}

/// Judges every trajectory's finished episode and writes its reward and success.
pub fn judge_trajectories(
    judge: &OutcomeJudge,
    trajs: &mut [Trajectory],
) -> Result<JudgedMeans, RuntimeError> {
    let episodes = trajs
        .iter()
        .enumerate()
        .map(|(i, t)| {
            episode_from_info(&t.final_info).ok_or_else(|| {
                RuntimeError::Config(format!(
                    "episode {i} has no finished SOTOPIA transcript in its last step's info; \
                     the judge scores finished conversations only"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let outcomes = judge.outcomes(&episodes)?;
    for (t, o) in trajs.iter_mut().zip(&outcomes) {
        t.reward = o.score;
        t.success = o.success;
    }
    Ok(JudgedMeans {
        goal: mean(&outcomes.iter().map(|o| o.scores.goal).collect::<Vec<_>>()),
        overall: mean(
            &outcomes
                .iter()
                .map(|o| o.scores.overall())
                .collect::<Vec<_>>(),
        ),
    })
}
