//! Scoring: per-token log-probs, entropies and values of given actions after given prompts,
//! and next-token logits, each from one full forward pass over a left-padded batch.

use super::batch::Batch;
use super::choices::{self, ChoiceSet};
use super::error::ModelError;
use super::ops;
use super::weights::LanguageModel;
use candle_core::{DType, Device, Result, Tensor, D};

/// Per-token scores of actions given prompts; right-padded on the action axis.
#[derive(Debug, Clone)]
pub struct Scored {
    /// `[B, A]` log-probs of the action tokens (0 on padding).
    pub logprobs: Tensor,
    /// `[B, A]` entropy of the next-token distribution at each action position.
    pub entropy: Tensor,
    /// `[B, A]` f32, 1 on real action tokens.
    pub mask: Tensor,
}

/// The hidden states at the positions that predict each action token (`[B, A, hidden]`), with
/// the right-padded action ids and their mask (`B * A` each).
struct ActionStates {
    hidden: Tensor,
    ids: Vec<u32>,
    mask: Vec<f32>,
    rows: usize,
    width: usize,
}

impl LanguageModel {
    /// Log-probs and entropies of `actions[i]` after row `i` of `batch`, batched. A row with
    /// choices is scored under the restricted distribution, the one [`Self::generate`] samples
    /// from. With `grad` the result carries the autograd graph to the Vars; without, it is
    /// computed on detached weights.
    pub fn score(&self, batch: Batch, actions: &[Vec<u32>], grad: bool) -> Result<Scored> {
        Ok(self.score_rows(batch, actions, grad, false)?.0)
    }

    /// [`Self::score`] and, from the same forward pass, the value head's scalar per action
    /// token (`[B, A]`, 0 on padding; `None` for a model without a value head). The value of
    /// token k is read at the state that predicts it.
    pub fn score_and_values(
        &self,
        batch: Batch,
        actions: &[Vec<u32>],
        grad: bool,
    ) -> Result<(Scored, Option<Tensor>)> {
        self.score_rows(batch, actions, grad, true)
    }

    /// Next-token logits `[B, T, vocab]` at every position of the left-padded batch.
    pub fn logits(&self, batch: Batch, grad: bool) -> Result<Tensor> {
        let prompts = batch.prompts;
        self.check_tokens(prompts)?;
        let padded = self.pad_batch(prompts, None)?;
        let model = self.view(grad);
        let hidden = self.batch_hidden(model, batch, &padded)?;
        model.logits(&hidden)
    }

    fn score_rows(
        &self,
        batch: Batch,
        actions: &[Vec<u32>],
        grad: bool,
        with_values: bool,
    ) -> Result<(Scored, Option<Tensor>)> {
        if batch.prompts.is_empty() {
            let z = Tensor::zeros((0, 0), DType::F32, &self.device)?;
            let scored = Scored {
                logprobs: z.clone(),
                entropy: z.clone(),
                mask: z,
            };
            return Ok((scored, None));
        }
        let states = self.action_states(batch, actions, grad)?;
        let restriction = Restriction {
            actions,
            choices: batch.choices,
        };
        let values = if with_values {
            self.view(grad).values(&states.hidden)?
        } else {
            None
        };
        let a = states.width;
        let scored = self.score_states(states, restriction, grad)?;
        let values = match values {
            Some(v) if a > 0 => Some((v * &scored.mask)?),
            Some(_) => Some(scored.mask.clone()),
            None => None,
        };
        Ok((scored, values))
    }

    fn action_states(
        &self,
        batch: Batch,
        actions: &[Vec<u32>],
        grad: bool,
    ) -> Result<ActionStates> {
        let prompts = batch.prompts;
        if prompts.len() != actions.len() {
            return Err(ModelError::BatchMismatch {
                prompts: prompts.len(),
                actions: actions.len(),
            }
            .into());
        }
        self.check_tokens(prompts)?;
        self.check_tokens(actions)?;
        let a = actions.iter().map(Vec::len).max().unwrap_or(0);
        let p = prompts.iter().map(Vec::len).max().unwrap_or(0);
        // The last action token predicts nothing we score: feed one column fewer.
        let cols = a.saturating_sub(1);
        let padded = self.pad_batch(prompts, Some((actions, cols)))?;
        let hidden = self.batch_hidden(self.view(grad), batch, &padded)?;
        // Column p-1+k predicts action token k.
        let hidden = hidden.narrow(1, p - 1, a)?;
        let mut ids = Vec::with_capacity(actions.len() * a);
        let mut mask = Vec::with_capacity(actions.len() * a);
        for act in actions {
            for k in 0..a {
                ids.push(act.get(k).copied().unwrap_or(0));
                mask.push(if k < act.len() { 1.0 } else { 0.0 });
            }
        }
        Ok(ActionStates {
            hidden,
            ids,
            mask,
            rows: prompts.len(),
            width: a,
        })
    }

    fn score_states(
        &self,
        states: ActionStates,
        restriction: Restriction,
        grad: bool,
    ) -> Result<Scored> {
        let (b, a) = (states.rows, states.width);
        let mask = Tensor::from_vec(states.mask, (b, a), &self.device)?;
        if a == 0 {
            return Ok(Scored {
                logprobs: mask.clone(),
                entropy: mask.clone(),
                mask,
            });
        }
        let logits = self.view(grad).logits(&states.hidden)?;
        let vocab = logits.dim(D::Minus1)?;
        let ids = Tensor::from_vec(states.ids, b * a, &self.device)?;
        let mut logits = logits.reshape((b * a, vocab))?;
        if let Some(bias) = restriction.logit_bias(a, vocab, &self.device)? {
            logits = (logits + bias)?;
        }
        let both = ops::logprob_entropy(&logits, &ids)?;
        let chosen = both.narrow(1, 0, 1)?.reshape((b, a))?;
        let entropy = both.narrow(1, 1, 1)?.reshape((b, a))?;
        Ok(Scored {
            logprobs: (chosen * &mask)?,
            entropy: (entropy * &mask)?,
            mask,
        })
    }
}

/// The answer sets the scored actions were drawn from (an empty `choices`: none).
struct Restriction<'a> {
    actions: &'a [Vec<u32>],
    choices: &'a [Option<&'a ChoiceSet>],
}

impl Restriction<'_> {
    /// The additive `[rows * a, vocab]` logit mask of the restricted rows, or `None` when no
    /// row is restricted.
    fn logit_bias(&self, a: usize, vocab: usize, device: &Device) -> Result<Option<Tensor>> {
        if self.choices.iter().all(Option::is_none) {
            return Ok(None);
        }
        let rows = self.actions.len();
        let mut bias = vec![0f32; rows * a * vocab];
        for (i, (action, c)) in self.actions.iter().zip(self.choices).enumerate() {
            if let Some(c) = c {
                let block = &mut bias[i * a * vocab..(i + 1) * a * vocab];
                choices::fill_mask(c, action, vocab, block);
            }
        }
        Ok(Some(Tensor::from_vec(bias, (rows * a, vocab), device)?))
    }
}
