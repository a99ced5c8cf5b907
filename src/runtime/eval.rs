//! Evaluation on the fixed held-out task set: one episode per `Split::Eval` task at the
//! evaluation temperature, with a random stream that is the same at every evaluation, and text
//! transcripts (and, for image observations, captioned contact sheets) of the first few
//! episodes. Judged recipes (SOTOPIA) are scored by the recipe's judge, as in training.

use std::fmt::Write as _;

use super::metrics::EvalResult;

use super::batch::{invalid_rate, Trajectory};
use super::judging::{judge_trajectories, outcome_judge};
use super::rngs::eval_stream;
use super::rollout::{rollout, RetryPolicy, RolloutStats};
use super::setup::{make_envs, max_turns};
use super::RuntimeError;
use crate::env::{Split, Task};
use crate::graph::ExecGraph;
use crate::model::{LanguageModel, SampleOptions, Tokenizer};

/// Evaluates `policy` on the graph's held-out tasks; returns the result and the episodes.
pub fn evaluate(
    graph: &ExecGraph,
    policy: &LanguageModel,
    tokenizer: &Tokenizer,
    opts: &SampleOptions,
    iteration: usize,
    retry: RetryPolicy,
) -> Result<(EvalResult, Vec<Trajectory>), RuntimeError> {
    let started = std::time::Instant::now();
    let n = graph.eval.tasks;
    let tasks: Vec<Task> = (0..n as u64)
        .map(|index| Task {
            split: Split::Eval,
            index,
        })
        .collect();
    let groups: Vec<usize> = (0..n).collect();
    let mut envs = make_envs(&graph.env, n)?;
    let mut rng = eval_stream(graph.train.seed);
    let mut stats = RolloutStats::default();
    let mut trajs = rollout(
        &mut envs,
        &tasks,
        &groups,
        policy,
        tokenizer,
        opts,
        max_turns(&graph.env),
        retry,
        &mut rng,
        &mut stats,
    )?;
    let judged = match outcome_judge(graph)? {
        Some(judge) => Some(judge_trajectories(&judge, &mut trajs)?),
        None => None,
    };
    let count = trajs.len().max(1) as f64;
    let steps: usize = trajs.iter().map(|t| t.steps.len()).sum();
    let result = EvalResult {
        iteration,
        tasks: n,
        success_rate: match judged {
            Some(_) => trajs.iter().filter(|t| t.success).count() as f64 / count,
            None => trajs.iter().filter(|t| t.outcome.won).count() as f64 / count,
        },
        mean_score: match judged {
            Some(_) => trajs.iter().map(|t| t.reward).sum::<f64>() / count,
            None => trajs.iter().map(|t| t.outcome.score).sum::<f64>() / count,
        },
        mean_turns: steps as f64 / count,
        invalid_rate: invalid_rate(&trajs),
        seconds: started.elapsed().as_secs_f64(),
        goal: judged.map(|j| j.goal),
        overall: judged.map(|j| j.overall),
    };
    Ok((result, trajs))
}

/// A readable transcript of one episode: every observation, the model's raw text, the reward.
pub fn transcript(traj: &Trajectory) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "task {:?} #{}", traj.task.split, traj.task.index);
    for (i, s) in traj.steps.iter().enumerate() {
        let _ = writeln!(out, "--- turn {} ---", i + 1);
        let _ = writeln!(out, "{}", s.observation);
        let _ = writeln!(
            out,
            "action: {:?}  reward {:+.2}{}",
            s.text,
            s.env_reward,
            if s.valid { "" } else { "  (invalid)" }
        );
    }
    let _ = writeln!(out, "--- end ---\n{}", traj.final_observation);
    let _ = writeln!(
        out,
        "won: {}  score: {}  return: {:.2}\n",
        traj.outcome.won, traj.outcome.score, traj.outcome.env_return
    );
    out
}

/// Caption ink of a valid action, an invalid one, and the final frame of a won episode.
const INK_VALID: [u8; 3] = [0, 0, 0];
const INK_INVALID: [u8; 3] = [200, 0, 0];
const INK_WON: [u8; 3] = [0, 140, 0];

/// The caption of one turn: its number and the action text up to `</action>`.
fn turn_caption(turn: usize, text: &str) -> String {
    let action = text.split("</action>").next().unwrap_or("").trim();
    format!("{turn} {action}")
}

/// Writes the frames the agent saw in `traj`, each captioned with the action it took on it
/// (invalid ones in red), then the final frame, as one PNG contact sheet. Returns false (and
/// writes nothing) when the episode has no frames.
pub fn write_episode_sheet(
    traj: &Trajectory,
    path: &std::path::Path,
) -> Result<bool, RuntimeError> {
    let mut frames = Vec::with_capacity(traj.steps.len() + 1);
    let mut captions = Vec::with_capacity(traj.steps.len() + 1);
    for (i, s) in traj.steps.iter().enumerate() {
        let Some(image) = &s.image else {
            return Ok(false);
        };
        frames.push((**image).clone());
        let ink = if s.valid { INK_VALID } else { INK_INVALID };
        captions.push((turn_caption(i + 1, &s.text), ink));
    }
    if let Some(image) = &traj.final_image {
        frames.push((**image).clone());
        captions.push(if traj.outcome.won {
            ("won".to_string(), INK_WON)
        } else {
            ("end".to_string(), INK_VALID)
        });
    }
    if frames.is_empty() {
        return Ok(false);
    }
    crate::env::image::write_captioned_sheet(&frames, &captions, path).map_err(|e| {
        RuntimeError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        }
    })?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captions_show_the_turn_and_the_action() {
        assert_eq!(turn_caption(3, "up</action>"), "3 up");
        assert_eq!(turn_caption(12, " left "), "12 left");
    }
}
