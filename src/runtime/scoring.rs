//! Batched scoring of recorded steps: per-token log-probs of many (prompt, action) rows under a
//! model, split into chunks that bound the padded batch size, and the small tensor helpers the
//! updates use to line host values up with the model's right-padded `[rows, A]` outputs.
//! A step's frame, if it has one, travels with its row, so image-reading models score the same
//! (prompt, image, action) the policy sampled from.

use std::sync::Arc;

use candle_core::{Device, Tensor};

use super::batch::Trajectory;
use super::tokens::{TokenLayout, TokenValues};
use super::RuntimeError;
use crate::image::RgbImage;
use crate::model::{Batch, ChoiceSet, LanguageModel, Scored};

/// Padded tokens (rows x longest row) one detached scoring call may hold.
pub const SCORE_TOKEN_BUDGET: usize = 24_576;

/// `(trajectory, step)` of every step of the batch, in batch order.
pub fn all_rows(trajs: &[Trajectory]) -> Vec<(usize, usize)> {
    trajs
        .iter()
        .enumerate()
        .flat_map(|(t, traj)| (0..traj.steps.len()).map(move |s| (t, s)))
        .collect()
}

/// Which rendering of a step a model reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// The policy's prompt with its frame, if any (policy, reference, critic, an image PRM).
    Policy,
    /// The text prompt of the same state where the step has one, without the frame (a PRM
    /// that reads the text rendering); the policy's prompt otherwise.
    Text,
}

/// The model inputs of some rows: prompts, actions, the frame of each row (all `None` on a
/// text batch) and the answers each action was restricted to (all `None` when sampling was
/// free).
pub struct RowInputs {
    pub prompts: Vec<Vec<u32>>,
    pub actions: Vec<Vec<u32>>,
    pub images: Vec<Option<Arc<RgbImage>>>,
    pub choices: Vec<Option<Arc<ChoiceSet>>>,
}

impl RowInputs {
    /// The frames as the model takes them; empty for a text batch.
    pub fn image_refs(&self) -> Vec<Option<&RgbImage>> {
        if self.images.iter().all(Option::is_none) {
            return Vec::new();
        }
        self.images.iter().map(|i| i.as_deref()).collect()
    }

    /// Per-token log-probs (and entropies) of the actions under `model`, restricted as they
    /// were sampled.
    pub fn score(&self, model: &LanguageModel, grad: bool) -> Result<Scored, RuntimeError> {
        let images = self.image_refs();
        let choices: Vec<Option<&ChoiceSet>> = self.choices.iter().map(|c| c.as_deref()).collect();
        let batch = Batch::new(&self.prompts)
            .with_images(&images)
            .with_choices(&choices);
        Ok(model.score(batch, &self.actions, grad)?)
    }
}

/// The prompts, actions and frames of `rows` as `view` renders them.
pub fn row_inputs(trajs: &[Trajectory], rows: &[(usize, usize)], view: View) -> RowInputs {
    let mut out = RowInputs {
        prompts: Vec::with_capacity(rows.len()),
        actions: Vec::with_capacity(rows.len()),
        images: Vec::with_capacity(rows.len()),
        choices: Vec::with_capacity(rows.len()),
    };
    for &(t, s) in rows {
        let step = &trajs[t].steps[s];
        match (view, &step.text_prompt) {
            (View::Text, Some(text)) => {
                out.prompts.push(text.clone());
                out.images.push(None);
            }
            _ => {
                out.prompts.push(step.prompt.clone());
                out.images.push(step.image.clone());
            }
        }
        out.actions.push(step.action.clone());
        out.choices.push(step.choices.clone());
    }
    out
}

/// Splits `rows` into consecutive chunks whose padded size stays within `budget` tokens.
pub fn chunk_rows(
    trajs: &[Trajectory],
    rows: &[(usize, usize)],
    budget: usize,
) -> Vec<Vec<(usize, usize)>> {
    let mut chunks = Vec::new();
    let mut current: Vec<(usize, usize)> = Vec::new();
    let mut widest_prompt = 0;
    let mut widest_action = 0;
    for &(t, s) in rows {
        let step = &trajs[t].steps[s];
        let p = widest_prompt.max(step.prompt.len());
        let a = widest_action.max(step.action.len());
        if !current.is_empty() && (current.len() + 1) * (p + a) > budget {
            chunks.push(std::mem::take(&mut current));
            widest_prompt = step.prompt.len();
            widest_action = step.action.len();
        } else {
            widest_prompt = p;
            widest_action = a;
        }
        current.push((t, s));
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// A per-token quantity of every step of the batch, detached: `forward` maps the model inputs
/// of a chunk of rows to a right-padded `[rows, A]` tensor; chunks bound the padded size.
pub fn per_token(
    trajs: &[Trajectory],
    layout: &TokenLayout,
    view: View,
    forward: impl Fn(&RowInputs) -> Result<Tensor, RuntimeError>,
) -> Result<TokenValues<f32>, RuntimeError> {
    let mut values = Vec::with_capacity(layout.tokens());
    let rows = all_rows(trajs);
    // Chunks keep the batch order, so each row's tokens append in the layout's order.
    for chunk in chunk_rows(trajs, &rows, SCORE_TOKEN_BUDGET) {
        let inputs = row_inputs(trajs, &chunk, view);
        let out = forward(&inputs)?.to_vec2::<f32>()?;
        for (row, action) in out.iter().zip(&inputs.actions) {
            values.extend_from_slice(&row[..action.len()]);
        }
    }
    TokenValues::new(layout.clone(), values)
        .ok_or_else(|| RuntimeError::Config("a scored batch lost tokens".into()))
}

/// Per-token log-probs of every step of the batch under `model`, detached, restricted as the
/// actions were sampled.
pub fn score_steps(
    model: &LanguageModel,
    trajs: &[Trajectory],
    layout: &TokenLayout,
    view: View,
) -> Result<TokenValues<f32>, RuntimeError> {
    per_token(trajs, layout, view, |inputs| {
        Ok(inputs.score(model, false)?.logprobs)
    })
}

/// A `[rows.len(), width]` f32 tensor of per-token values (`value(t, s)` for row `(t, s)`),
/// right-padded with zeros.
pub fn padded_tensor<'a>(
    rows: &[(usize, usize)],
    width: usize,
    value: impl Fn(usize, usize) -> &'a [f32],
    device: &Device,
) -> Result<Tensor, RuntimeError> {
    let mut data = vec![0f32; rows.len() * width];
    for (k, &(t, s)) in rows.iter().enumerate() {
        let v = value(t, s);
        let n = v.len().min(width);
        data[k * width..k * width + n].copy_from_slice(&v[..n]);
    }
    Ok(Tensor::from_vec(data, (rows.len(), width), device)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::{EpisodeOutcome, Split, Task};
    use crate::runtime::batch::Step;

    fn traj(lens: &[(usize, usize)]) -> Trajectory {
        Trajectory {
            group: 0,
            task: Task {
                split: Split::Train,
                index: 0,
            },
            steps: lens
                .iter()
                .map(|&(p, a)| Step {
                    prompt: vec![1; p],
                    action: vec![2; a],
                    text: String::new(),
                    token_logp_old: vec![0.0; a],
                    env_reward: 0.0,
                    valid: true,
                    state_key: String::new(),
                    observation: String::new(),
                    image: None,
                    choices: None,
                    text_prompt: None,
                })
                .collect(),
            outcome: EpisodeOutcome {
                won: false,
                score: 0.0,
                env_return: 0.0,
            },
            final_observation: String::new(),
            final_info: serde_json::Value::Null,
            final_image: None,
            reward: 0.0,
            success: false,
        }
    }

    #[test]
    fn chunks_respect_the_padded_budget_and_keep_order() {
        let trajs = vec![traj(&[(10, 2), (10, 2), (30, 2)]), traj(&[(5, 1)])];
        let rows = all_rows(&trajs);
        assert_eq!(rows, vec![(0, 0), (0, 1), (0, 2), (1, 0)]);
        // budget 40: two rows of width 12 fit (24); adding the 32-wide row gives 3 * 32 = 96
        let chunks = chunk_rows(&trajs, &rows, 40);
        assert_eq!(
            chunks,
            vec![vec![(0, 0), (0, 1)], vec![(0, 2)], vec![(1, 0)]]
        );
        let flat: Vec<_> = chunks.concat();
        assert_eq!(flat, rows);
    }

    #[test]
    fn padded_tensor_right_pads_with_zeros() {
        let rows = vec![(0, 0), (0, 1)];
        let values = [vec![1.0], vec![2.0, 2.0]];
        let t = padded_tensor(&rows, 3, |_, s| &values[s], &Device::Cpu).unwrap();
        assert_eq!(
            t.to_vec2::<f32>().unwrap(),
            vec![vec![1.0, 0.0, 0.0], vec![2.0, 2.0, 0.0]]
        );
    }
}
